/* lm_model.c: hyperparameters from GGUF keys and weight binding (lm_model.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_model.h"
#include "lm_quant.h"

/* Sanity bounds: far above any real model, low enough that products of
 * two of them (buffer sizes) cannot overflow int64. */
#define LM_MAX_DIM ((int64_t)1 << 20)
#define LM_MAX_LAYERS 4096
#define LM_MAX_VOCAB ((int64_t)1 << 24)

const char *lm_arch_name(lm_arch a)
{
    return a == LM_ARCH_QWEN2 ? "qwen2" : "llama";
}

/* Reads "<arch>.<name>" as a positive integer into *out.  An absent key keeps
 * the default already in *out unless `required`. */
static dl_status hp_get_i64(const lm_gguf *g, const char *arch, const char *name, int required,
                            int64_t lo, int64_t hi, int64_t *out, dl_error *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    int64_t v = 0;
    dl_error local;
    dl_error_clear(&local);
    dl_status st = lm_gguf_get_i64(g, key, &v, &local);
    if (st == DL_ERR_NOT_FOUND && !required)
        return DL_OK;
    if (st == DL_ERR_NOT_FOUND)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key, "required key is missing");
    if (st != DL_OK) {
        if (err && err->code == DL_OK)
            *err = local;
        return st;
    }
    if (v < lo || v > hi)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key,
                               "value %lld is outside [%lld, %lld]", (long long)v, (long long)lo,
                               (long long)hi);
    *out = v;
    return DL_OK;
}

static dl_status hp_get_f32(const lm_gguf *g, const char *arch, const char *name, float lo,
                            float hi, float *out, dl_error *err)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    float v = 0;
    dl_error local;
    dl_error_clear(&local);
    dl_status st = lm_gguf_get_f32(g, key, &v, &local);
    if (st == DL_ERR_NOT_FOUND)
        return DL_OK;
    if (st != DL_OK) {
        if (err && err->code == DL_OK)
            *err = local;
        return st;
    }
    if (!(v >= lo && v <= hi))
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key,
                               "value %g is outside [%g, %g]", (double)v, (double)lo, (double)hi);
    *out = v;
    return DL_OK;
}

static int32_t token_id_or(const lm_gguf *g, const char *key, int64_t n_vocab)
{
    uint32_t v = 0;
    if (lm_gguf_get_u32(g, key, &v, NULL) != DL_OK || (int64_t)v >= n_vocab)
        return -1;
    return (int32_t)v;
}

static dl_status read_hparams(const lm_gguf *g, lm_hparams *hp, dl_error *err)
{
    const char *arch = lm_gguf_arch(g);
    memset(hp, 0, sizeof *hp);
    if (!strcmp(arch, "llama")) {
        hp->arch = LM_ARCH_LLAMA;
        hp->rope_style = LM_ROPE_ADJACENT;
        hp->rms_eps = 1e-5f;
    } else if (!strcmp(arch, "qwen2")) {
        hp->arch = LM_ARCH_QWEN2;
        hp->rope_style = LM_ROPE_NEOX;
        hp->rms_eps = 1e-6f;
    } else {
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, NULL, 0, 0, -1, "general.architecture",
                               "architecture '%s' is not supported (llama, qwen2)", arch);
    }
    dl_status st;
    if ((st = hp_get_i64(g, arch, "embedding_length", 1, 1, LM_MAX_DIM, &hp->n_embd, err)) ||
        (st = hp_get_i64(g, arch, "block_count", 1, 1, LM_MAX_LAYERS, &hp->n_layer, err)) ||
        (st = hp_get_i64(g, arch, "feed_forward_length", 1, 1, LM_MAX_DIM, &hp->n_ff, err)) ||
        (st = hp_get_i64(g, arch, "attention.head_count", 1, 1, LM_MAX_DIM, &hp->n_head, err)))
        return st;
    hp->n_head_kv = hp->n_head;
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_ctx_train = 2048;
    if ((st = hp_get_i64(g, arch, "attention.head_count_kv", 0, 1, LM_MAX_DIM, &hp->n_head_kv, err)) ||
        (st = hp_get_i64(g, arch, "attention.key_length", 0, 1, LM_MAX_DIM, &hp->head_dim, err)) ||
        (st = hp_get_i64(g, arch, "context_length", 0, 1, LM_MAX_DIM, &hp->n_ctx_train, err)))
        return st;
    hp->n_rot = hp->head_dim;
    hp->rope_freq_base = 10000.0f;
    if ((st = hp_get_i64(g, arch, "rope.dimension_count", 0, 0, LM_MAX_DIM, &hp->n_rot, err)) ||
        (st = hp_get_f32(g, arch, "rope.freq_base", 1e-3f, 1e30f, &hp->rope_freq_base, err)) ||
        (st = hp_get_f32(g, arch, "attention.layer_norm_rms_epsilon", 0.0f, 1.0f, &hp->rms_eps,
                         err)))
        return st;
    if (hp->n_head % hp->n_head_kv != 0)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "attention.head_count_kv",
                               "%lld query heads are not a multiple of %lld key/value heads",
                               (long long)hp->n_head, (long long)hp->n_head_kv);
    if (hp->head_dim < 1 || hp->n_head * hp->head_dim > LM_MAX_DIM)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "attention.head_count",
                               "head dimension %lld is invalid", (long long)hp->head_dim);
    if (hp->n_rot % 2 != 0 || hp->n_rot > hp->head_dim)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "rope.dimension_count",
                               "%lld rotary dimensions: must be even and <= head dim %lld",
                               (long long)hp->n_rot, (long long)hp->head_dim);
    return DL_OK;
}

/* Binds tensor `name` with the expected shape (n_rows x n_cols; n_rows == 1
 * for a 1-D tensor).  Absent + optional -> *out = NULL. */
static dl_status bind(lm_model *m, const char *name, int64_t n_rows, int64_t n_cols, int optional,
                      const lm_weight **out, dl_error *err)
{
    *out = NULL;
    const lm_gguf_tensor *t = lm_gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (optional)
            return DL_OK;
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, name, "tensor is missing");
    }
    int want_dims = n_rows == 1 && optional != 2 ? 1 : 2;
    int64_t got_rows = t->n_dims >= 2 ? t->ne[1] : 1;
    if (t->n_dims > 2 || (t->n_dims == 2 && want_dims == 1 && t->ne[1] != 1) ||
        t->ne[0] != n_cols || got_rows != n_rows)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, (int64_t)t->offset, name,
                               "shape [%lld, %lld] (ne0, ne1), expected [%lld, %lld]",
                               (long long)t->ne[0], (long long)got_rows, (long long)n_cols,
                               (long long)n_rows);
    if (!lm_quant_supported(t->type))
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, NULL, 0, 0, (int64_t)t->offset, name,
                               "tensor type %s has no kernels", lm_quant_name(t->type));
    if (want_dims == 1 && t->type != LM_QTYPE_F32)
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, NULL, 0, 0, (int64_t)t->offset, name,
                               "1-D tensor of type %s: only F32 is supported",
                               lm_quant_name(t->type));
    if (t->row_bytes == 0 || t->row_bytes != lm_quant_row_size(t->type, t->ne[0]))
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, (int64_t)t->offset, name,
                               "row of %lld values is not whole blocks of %s",
                               (long long)t->ne[0], lm_quant_name(t->type));
    if (((uintptr_t)t->data % sizeof(float)) != 0)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, (int64_t)t->offset, name,
                               "tensor data is not 4-byte aligned");
    lm_weight *w = &m->weights[m->n_weights];
    w->name = t->name;
    w->type = t->type;
    w->n_cols = n_cols;
    w->n_rows = n_rows;
    w->row_bytes = t->row_bytes;
    w->data = t->data;
    w->slot = m->n_weights++;
    m->n_params += n_rows * n_cols;
    *out = w;
    return DL_OK;
}

static dl_status bind_layer(lm_model *m, int64_t il, lm_layer *L, dl_error *err)
{
    const lm_hparams *hp = &m->hp;
    int64_t q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    int bias_opt = hp->arch == LM_ARCH_QWEN2 ? 0 : 1;
    char name[96];
    dl_status st;
#define BIND(field, suffix, rows, cols, opt)                                      \
    do {                                                                        \
        snprintf(name, sizeof name, "blk.%lld.%s", (long long)il, suffix);      \
        if ((st = bind(m, name, rows, cols, opt, &L->field, err)) != DL_OK)     \
            return st;                                                          \
    } while (0)
    BIND(attn_norm, "attn_norm.weight", 1, hp->n_embd, 0);
    BIND(wq, "attn_q.weight", q_dim, hp->n_embd, 0);
    BIND(wk, "attn_k.weight", kv_dim, hp->n_embd, 0);
    BIND(wv, "attn_v.weight", kv_dim, hp->n_embd, 0);
    BIND(bq, "attn_q.bias", 1, q_dim, bias_opt);
    BIND(bk, "attn_k.bias", 1, kv_dim, bias_opt);
    BIND(bv, "attn_v.bias", 1, kv_dim, bias_opt);
    BIND(wo, "attn_output.weight", hp->n_embd, q_dim, 0);
    BIND(ffn_norm, "ffn_norm.weight", 1, hp->n_embd, 0);
    BIND(w_gate, "ffn_gate.weight", hp->n_ff, hp->n_embd, 0);
    BIND(w_up, "ffn_up.weight", hp->n_ff, hp->n_embd, 0);
    BIND(w_down, "ffn_down.weight", hp->n_embd, hp->n_ff, 0);
#undef BIND
    return DL_OK;
}

static dl_status bind_all(lm_model *m, dl_error *err)
{
    lm_hparams *hp = &m->hp;
    const lm_gguf_tensor *te = lm_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te || te->n_dims != 2)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "token_embd.weight",
                               "tensor is missing or not 2-D");
    int64_t n_vocab = te->ne[1];
    char key[96];
    snprintf(key, sizeof key, "%s.vocab_size", lm_arch_name(hp->arch));
    dl_status st = hp_get_i64(m->gguf, lm_arch_name(hp->arch), "vocab_size", 0, 1, LM_MAX_VOCAB,
                              &n_vocab, err);
    if (st != DL_OK)
        return st;
    if (n_vocab != te->ne[1] || n_vocab > LM_MAX_VOCAB)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key,
                               "vocabulary %lld does not match token_embd.weight (%lld rows)",
                               (long long)n_vocab, (long long)te->ne[1]);
    hp->n_vocab = n_vocab;
    /* At most 16 tensors per layer plus 4 globals. */
    m->weights = calloc((size_t)(hp->n_layer * 16 + 8), sizeof *m->weights);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->weights || !m->layers)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory binding %lld layers",
                            (long long)hp->n_layer);
    if ((st = bind(m, "token_embd.weight", n_vocab, hp->n_embd, 2, &m->tok_embd, err)) ||
        (st = bind(m, "output_norm.weight", 1, hp->n_embd, 0, &m->output_norm, err)) ||
        (st = bind(m, "output.weight", n_vocab, hp->n_embd, 1, &m->output, err)) ||
        (st = bind(m, "rope_freqs.weight", 1, hp->n_rot / 2, 1, &m->rope_freqs, err)))
        return st;
    if (!m->output)
        m->output = m->tok_embd;
    for (int64_t i = 0; m->rope_freqs && i < hp->n_rot / 2; i++) {
        float f = ((const float *)m->rope_freqs->data)[i];
        if (!(f > 0.0f && f < 1e30f)) /* divides the rotary frequencies */
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "rope_freqs.weight",
                                   "factor %lld is %g: must be positive and finite", (long long)i,
                                   (double)f);
    }
    for (int64_t il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(m, il, &m->layers[il], err)) != DL_OK)
            return st;
    m->weight_type = m->layers[0].wq->type;
    hp->bos_id = token_id_or(m->gguf, "tokenizer.ggml.bos_token_id", n_vocab);
    hp->eos_id = token_id_or(m->gguf, "tokenizer.ggml.eos_token_id", n_vocab);
    return DL_OK;
}

dl_status lm_model_from_gguf(lm_gguf *g, lm_model **out, dl_error *err)
{
    *out = NULL;
    lm_model *m = calloc(1, sizeof *m);
    if (!m)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    m->gguf = g;
    dl_status st = read_hparams(g, &m->hp, err);
    if (st == DL_OK)
        st = bind_all(m, err);
    if (st != DL_OK) {
        lm_model_free(m);
        return st;
    }
    *out = m;
    return DL_OK;
}

dl_status lm_model_load(const char *path, lm_model **out, dl_error *err)
{
    *out = NULL;
    lm_gguf *g = lm_gguf_open(path, err);
    if (!g)
        return err && err->code != DL_OK ? err->code : DL_ERR_IO;
    dl_status st = lm_model_from_gguf(g, out, err);
    if (st != DL_OK) {
        dl_error_locate(err, path, 0, NULL);
        lm_gguf_free(g);
        return st;
    }
    (*out)->owns_gguf = 1;
    return DL_OK;
}

void lm_model_free(lm_model *m)
{
    if (!m)
        return;
    if (m->owns_gguf)
        lm_gguf_free(m->gguf);
    free(m->weights);
    free(m->layers);
    free(m);
}

double lm_model_flops_per_token(const lm_model *m)
{
    const lm_hparams *hp = &m->hp;
    double q_dim = (double)(hp->n_head * hp->head_dim);
    double kv_dim = (double)(hp->n_head_kv * hp->head_dim);
    double d = (double)hp->n_embd;
    double per_layer = d * q_dim * 2 + d * kv_dim * 2 + d * (double)hp->n_ff * 3;
    return 2.0 * (per_layer * (double)hp->n_layer + d * (double)hp->n_vocab);
}
