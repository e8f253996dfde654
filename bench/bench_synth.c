/* bench_synth.c: the synthetic qwen2 GGUF writer (bench_synth.h). */
#include "config.h"

#include "bench_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_build.h"
#include "lm_gguf.h"
#include "lm_quant.h"

#define SYN_N_LETTER_MERGES (26 * 26)
#define SYN_N_KV 19

typedef enum syn_kind { SYN_MATRIX, SYN_BIAS, SYN_NORM } syn_kind;

typedef struct syn_tensor {
    char name[48];
    int64_t ne0;    /* row length */
    int64_t ne1;    /* rows; 0 for a 1-D tensor */
    syn_kind kind;
    uint32_t type;  /* lm_qtype */
} syn_tensor;

/* ---- values ---------------------------------------------------------------- */

/* splitmix64: a fast generator whose every seed gives an independent-looking
 * stream; one per tensor. */
static uint64_t syn_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [center - half, center + half). */
static void syn_fill(float *x, int64_t n, float center, float half, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(syn_next(state) >> 40) * (1.0 / 16777216.0);
        x[i] = center + half * (float)(2.0 * u - 1.0);
    }
}

/* Encodes one row of n values as `type` into dst (lm_quant_row_size bytes). */
static void syn_encode_row(uint32_t type, const float *x, int64_t n, unsigned char *dst)
{
    if (type == LM_QTYPE_F32) {
        memcpy(dst, x, sizeof(float) * (size_t)n);
    } else if (type == LM_QTYPE_F16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = lm_quant_f32_to_f16(x[i]);
            memcpy(dst + 2 * i, &h, 2);
        }
    } else {
        lm_quant_quantize_row_q8_0(x, dst, n);
    }
}

/* ---- tokenizer ------------------------------------------------------------- */

/* GPT-2's byte-level alphabet: printable bytes stand for themselves, the
 * others for code points 256, 257, ... in byte order.  Writes the UTF-8 of
 * byte b's symbol; returns its length. */
static size_t syn_byte_symbol(unsigned b, char *out)
{
    unsigned cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        unsigned k = 0;
        for (unsigned c = 0; c < b; c++)
            k += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

static const char *const syn_controls[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

/* Token id's text into buf (>= 32 bytes); returns its length. */
static size_t syn_token(int64_t id, int64_t n_vocab, char *buf)
{
    if (id < 256)
        return syn_byte_symbol((unsigned)id, buf);
    if (id < 256 + SYN_N_LETTER_MERGES) {
        buf[0] = (char)('a' + (id - 256) / 26);
        buf[1] = (char)('a' + (id - 256) % 26);
        return 2;
    }
    if (id >= n_vocab - 3) {
        strcpy(buf, syn_controls[id - (n_vocab - 3)]);
        return strlen(buf);
    }
    return (size_t)snprintf(buf, 32, "[s%lld]", (long long)id);
}

/* Streams the tokenizer keys (7 of the SYN_N_KV): the vocabulary is
 * generated token by token, never held whole. */
static void syn_write_tokenizer(gb_writer *w, int64_t n_vocab)
{
    char buf[32];
    gb_kv_str(w, "tokenizer.ggml.model", "gpt2");
    gb_kv_str(w, "tokenizer.ggml.pre", "qwen2");
    gb_kv_arr(w, "tokenizer.ggml.tokens", LM_GGUF_TYPE_STRING, (uint64_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; i++)
        gb_strn(w, buf, syn_token(i, n_vocab, buf));
    gb_kv_arr(w, "tokenizer.ggml.token_type", LM_GGUF_TYPE_INT32, (uint64_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; i++)
        gb_u32(w, i >= n_vocab - 3 ? 3u : 1u); /* control : normal */
    gb_kv_arr(w, "tokenizer.ggml.merges", LM_GGUF_TYPE_STRING, SYN_N_LETTER_MERGES);
    for (int k = 0; k < SYN_N_LETTER_MERGES; k++) {
        buf[0] = (char)('a' + k / 26);
        buf[1] = ' ';
        buf[2] = (char)('a' + k % 26);
        gb_strn(w, buf, 3);
    }
    gb_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n_vocab - 3));
    gb_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n_vocab - 3));
    gb_kv_bool(w, "tokenizer.ggml.add_bos_token", 0);
}

/* ---- layout ---------------------------------------------------------------- */

bench_synth_shape bench_synth_qwen25_05b(void)
{
    return (bench_synth_shape){.name = "synthetic Qwen2.5-0.5B shape",
                               .n_vocab = 151936,
                               .n_embd = 896,
                               .n_layer = 24,
                               .n_head = 14,
                               .n_head_kv = 2,
                               .n_ff = 4864,
                               .n_ctx = 32768,
                               .rope_freq_base = 1e6f,
                               .rms_eps = 1e-6f};
}

static int64_t syn_n_tensors(const bench_synth_shape *s)
{
    return 2 + 12 * s->n_layer;
}

/* Fills t[syn_n_tensors(s)] in file order with names, shapes and types
 * (gb_tensor places them one after the other, aligned). */
static void syn_layout(const bench_synth_shape *s, uint32_t type, syn_tensor *t)
{
    int64_t E = s->n_embd, KV = s->n_head_kv * (s->n_embd / s->n_head), n = 0;
    t[n++] = (syn_tensor){"token_embd.weight", E, s->n_vocab, SYN_MATRIX, type};
    for (int64_t l = 0; l < s->n_layer; l++) {
        static const struct {
            const char *suffix;
            int rows, cols; /* 0: n_embd, 1: KV, 2: n_ff, -1: 1-D */
            syn_kind kind;
        } per[12] = {{"attn_norm.weight", -1, 0, SYN_NORM},  {"attn_q.weight", 0, 0, SYN_MATRIX},
                     {"attn_q.bias", -1, 0, SYN_BIAS},       {"attn_k.weight", 1, 0, SYN_MATRIX},
                     {"attn_k.bias", -1, 1, SYN_BIAS},       {"attn_v.weight", 1, 0, SYN_MATRIX},
                     {"attn_v.bias", -1, 1, SYN_BIAS},       {"attn_output.weight", 0, 0, SYN_MATRIX},
                     {"ffn_norm.weight", -1, 0, SYN_NORM},   {"ffn_gate.weight", 2, 0, SYN_MATRIX},
                     {"ffn_up.weight", 2, 0, SYN_MATRIX},    {"ffn_down.weight", 0, 2, SYN_MATRIX}};
        const int64_t dim[3] = {E, KV, s->n_ff};
        for (int k = 0; k < 12; k++) {
            syn_tensor *x = &t[n++];
            snprintf(x->name, sizeof x->name, "blk.%lld.%s", (long long)l, per[k].suffix);
            x->ne0 = dim[per[k].cols];
            x->ne1 = per[k].rows < 0 ? 0 : dim[per[k].rows];
            x->kind = per[k].kind;
            x->type = per[k].kind == SYN_MATRIX ? type : LM_QTYPE_F32;
        }
    }
    t[n++] = (syn_tensor){"output_norm.weight", E, 0, SYN_NORM, LM_QTYPE_F32};
}

int64_t bench_synth_n_params(const bench_synth_shape *s)
{
    int64_t E = s->n_embd, KV = s->n_head_kv * (s->n_embd / s->n_head);
    int64_t layer = 2 * E + (E * E + E) + 2 * (KV * E + KV) + E * E + 3 * E * s->n_ff;
    return s->n_vocab * E + E + s->n_layer * layer;
}

static dl_status syn_check(const bench_synth_shape *s, uint32_t type, dl_error *err)
{
    if (type != LM_QTYPE_F32 && type != LM_QTYPE_F16 && type != LM_QTYPE_Q8_0)
        return dl_error_set(err, DL_ERR_USAGE, "bench_synth: type %u: only F32, F16, Q8_0", type);
    if (s->n_vocab <= 256 + SYN_N_LETTER_MERGES + 3 || s->n_vocab > INT32_MAX || s->n_layer < 1 ||
        s->n_layer > 999 || s->n_head < 1 || s->n_head_kv < 1 || s->n_head % s->n_head_kv ||
        s->n_embd < 32 || s->n_embd % 32 || s->n_embd % s->n_head || s->n_ff < 32 ||
        s->n_ff % 32 || s->n_ctx < 1 || s->n_ctx > UINT32_MAX)
        return dl_error_set(err, DL_ERR_USAGE, "bench_synth: unsupported shape");
    return DL_OK;
}

static void syn_write_header(gb_writer *w, const bench_synth_shape *s, uint32_t type)
{
    gb_header(w, 3, (uint64_t)syn_n_tensors(s), SYN_N_KV);
    gb_kv_str(w, "general.architecture", "qwen2");
    gb_kv_str(w, "general.name", s->name);
    /* llama.cpp's ftype */
    gb_kv_u32(w, "general.file_type", type == LM_QTYPE_F32 ? 0u : type == LM_QTYPE_F16 ? 1u : 7u);
    const struct {
        const char *key;
        int64_t v;
    } ints[] = {{"qwen2.context_length", s->n_ctx},
                {"qwen2.embedding_length", s->n_embd},
                {"qwen2.block_count", s->n_layer},
                {"qwen2.feed_forward_length", s->n_ff},
                {"qwen2.attention.head_count", s->n_head},
                {"qwen2.attention.head_count_kv", s->n_head_kv}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        gb_kv_u32(w, ints[i].key, (uint32_t)ints[i].v);
    gb_kv_f32(w, "qwen2.rope.freq_base", s->rope_freq_base);
    gb_kv_f32(w, "qwen2.attention.layer_norm_rms_epsilon", s->rms_eps);
    syn_write_tokenizer(w, s->n_vocab);
}

/* Tensor i's values, row by row, encoded; rows and buffers hold n_embd /
 * n_ff values (the longest row). */
static void syn_write_tensor(gb_writer *w, const syn_tensor *t, int64_t i, uint64_t seed,
                             float *row, unsigned char *enc)
{
    uint64_t state = seed ^ (0x2545f4914f6cdd1dull * (uint64_t)(i + 1));
    size_t rb = lm_quant_row_size(t->type, t->ne0);
    const float sd = 0.02f, half = sd * 1.7320508f; /* uniform: sd = half / sqrt(3) */
    for (int64_t r = 0; r < (t->ne1 ? t->ne1 : 1); r++) {
        if (t->kind == SYN_NORM)
            syn_fill(row, t->ne0, 1.0f, 0.1f, &state);
        else
            syn_fill(row, t->ne0, 0.0f, half, &state);
        syn_encode_row(t->type, row, t->ne0, enc);
        gb_bytes(w, enc, rb);
    }
    gb_pad(w);
}

dl_status bench_synth_write(const char *path, const bench_synth_shape *s, uint32_t type,
                            uint64_t seed, dl_error *err)
{
    dl_status st = syn_check(s, type, err);
    if (st != DL_OK)
        return st;
    int64_t nt = syn_n_tensors(s), cols = s->n_ff > s->n_embd ? s->n_ff : s->n_embd;
    syn_tensor *t = malloc(sizeof *t * (size_t)nt);
    float *row = malloc(sizeof(float) * (size_t)cols);
    unsigned char *enc = malloc(sizeof(float) * (size_t)cols);
    FILE *f = fopen(path, "wb");
    gb_writer w;
    gb_writer_init_file(&w, f);
    if (!t || !row || !enc) {
        st = dl_error_set(err, DL_ERR_NOMEM, "bench_synth: out of memory");
    } else if (!f) {
        st = dl_error_set(err, DL_ERR_IO, "bench_synth: cannot create %s", path);
    } else {
        syn_layout(s, type, t);
        syn_write_header(&w, s, type);
        for (int64_t i = 0; i < nt; i++) {
            const int64_t ne[2] = {t[i].ne0, t[i].ne1};
            gb_tensor(&w, t[i].name, t[i].ne1 ? 2 : 1, ne, t[i].type);
        }
        gb_pad(&w);
        for (int64_t i = 0; i < nt; i++)
            syn_write_tensor(&w, &t[i], i, seed, row, enc);
    }
    if (f && fclose(f) != 0)
        w.failed = 1;
    if (st == DL_OK && w.failed)
        st = dl_error_set(err, DL_ERR_IO, "bench_synth: writing %s failed", path);
    free(t);
    free(row);
    free(enc);
    return st;
}
