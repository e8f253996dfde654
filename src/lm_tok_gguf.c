/* lm_tok_gguf.c: lm_tok_from_gguf, the thin loader from tokenizer.ggml.*
 * keys to an lm_tok_vocab. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "lm_tok.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

/* A STRING array as borrowed byte ranges; *out owned (free()). */
static dl_status read_strings(const lm_gguf *g, const char *key, lm_tok_bytes **out, int64_t *n,
                              dl_error *err)
{
    lm_gguf_array a;
    dl_error local = {0};
    dl_status st = lm_gguf_get_arr(g, key, &a, &local);
    if (st == DL_ERR_NOT_FOUND)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key, "key missing");
    if (st != DL_OK) {
        if (err && err->code == DL_OK)
            *err = local;
        return st;
    }
    if (a.type != LM_GGUF_TYPE_STRING)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key,
                               "expected an array of strings, found %s elements",
                               lm_gguf_type_name(a.type));
    lm_tok_bytes *v = malloc((size_t)(a.n > 0 ? a.n : 1) * sizeof *v);
    if (!v)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld strings", (long long)a.n);
    for (int64_t i = 0; i < a.n; i++)
        v[i].ptr = lm_gguf_arr_str(&a, i, &v[i].len);
    *out = v;
    *n = a.n;
    return DL_OK;
}

/* A numeric array of exactly n elements, copied; absent: *out stays NULL. */
static dl_status read_numbers(const lm_gguf *g, const char *key, int64_t n, int as_float,
                              void **out, dl_error *err)
{
    lm_gguf_array a;
    dl_error local = {0};
    dl_status st = lm_gguf_get_arr(g, key, &a, &local);
    if (st == DL_ERR_NOT_FOUND)
        return DL_OK;
    if (st != DL_OK) {
        if (err && err->code == DL_OK)
            *err = local;
        return st;
    }
    if (a.n != n)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, key,
                               "has %lld entries for %lld tokens", (long long)a.n, (long long)n);
    void *v = malloc((size_t)(n > 0 ? n : 1) * 4);
    if (!v)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %s", key);
    st = as_float ? lm_gguf_arr_copy_f32(&a, v, err) : lm_gguf_arr_copy_i32(&a, v, err);
    if (st != DL_OK) {
        free(v);
        dl_error_locate(err, NULL, 0, key);
        return st;
    }
    *out = v;
    return DL_OK;
}

/* An optional token id: absent keeps *id; out of range keeps it too (as
 * llama.cpp, which warns); a mistyped value is an error. */
static dl_status read_id(const lm_gguf *g, const char *key, int64_t n_tokens, int32_t *id,
                         dl_error *err)
{
    int64_t v;
    dl_error local = {0};
    dl_status st = lm_gguf_get_i64(g, key, &v, &local);
    if (st == DL_ERR_NOT_FOUND)
        return DL_OK;
    if (st == DL_ERR_INPUT && lm_gguf_find_kv(g, key) &&
        lm_gguf_find_kv(g, key)->type == LM_GGUF_TYPE_UINT64)
        return DL_OK; /* a huge UINT64 such as 2^64-1: no such token */
    if (st != DL_OK) {
        if (err && err->code == DL_OK)
            *err = local;
        return st;
    }
    if (v >= 0 && v < n_tokens)
        *id = (int32_t)v;
    return DL_OK;
}

static dl_status read_flag(const lm_gguf *g, const char *key, int *flag, dl_error *err)
{
    dl_error local = {0};
    dl_status st = lm_gguf_get_bool(g, key, flag, &local);
    if (st == DL_ERR_NOT_FOUND)
        return DL_OK;
    if (st != DL_OK && err && err->code == DL_OK)
        *err = local;
    return st;
}

static dl_status read_kind(const lm_gguf *g, lm_tok_vocab *v, dl_error *err)
{
    const char *model;
    dl_error local = {0};
    dl_status st = lm_gguf_get_str(g, KEY_MODEL, &model, NULL, &local);
    if (st == DL_ERR_NOT_FOUND)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, KEY_MODEL,
                               "the file has no tokenizer (key missing)");
    if (st != DL_OK) {
        if (err && err->code == DL_OK)
            *err = local;
        return st;
    }
    if (!strcmp(model, "llama")) {
        v->kind = LM_TOK_KIND_SPM;
    } else if (!strcmp(model, "gpt2")) {
        v->kind = LM_TOK_KIND_BPE;
    } else {
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, NULL, 0, 0, -1, KEY_MODEL,
                               "tokenizer '%s' is not supported (llama and gpt2 are)", model);
    }
    if (v->kind == LM_TOK_KIND_BPE) {
        dl_error_clear(&local);
        st = lm_gguf_get_str(g, KEY_PRE, &v->pre, NULL, &local);
        if (st == DL_ERR_NOT_FOUND) {
            v->pre = NULL; /* llama.cpp's "default" */
        } else if (st != DL_OK) {
            if (err && err->code == DL_OK)
                *err = local;
            return st;
        }
    }
    return DL_OK;
}

lm_tok *lm_tok_from_gguf(const lm_gguf *g, dl_error *err)
{
    if (!g) {
        dl_error_set(err, DL_ERR_USAGE, "lm_tok_from_gguf: NULL file");
        return NULL;
    }
    lm_tok_vocab v;
    lm_tok_vocab_init(&v);
    lm_tok_bytes *tokens = NULL, *merges = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    lm_tok *tok = NULL;
    dl_status st = read_kind(g, &v, err);
    if (st == DL_OK)
        st = read_strings(g, KEY_TOKENS, &tokens, &v.n_tokens, err);
    if (st == DL_OK && v.kind == LM_TOK_KIND_BPE)
        st = read_strings(g, KEY_MERGES, &merges, &v.n_merges, err);
    if (st == DL_OK)
        st = read_numbers(g, KEY_SCORES, v.n_tokens, 1, (void **)&scores, err);
    if (st == DL_OK)
        st = read_numbers(g, KEY_TYPES, v.n_tokens, 0, (void **)&types, err);
    if (v.kind == LM_TOK_KIND_SPM) { /* llama.cpp's SPM defaults */
        v.unk_id = v.n_tokens > 0 ? 0 : -1;
        v.bos_id = v.n_tokens > 1 ? 1 : -1;
        v.eos_id = v.n_tokens > 2 ? 2 : -1;
    }
    if (st == DL_OK)
        st = read_id(g, "tokenizer.ggml.bos_token_id", v.n_tokens, &v.bos_id, err);
    if (st == DL_OK)
        st = read_id(g, "tokenizer.ggml.eos_token_id", v.n_tokens, &v.eos_id, err);
    if (st == DL_OK)
        st = read_id(g, "tokenizer.ggml.unknown_token_id", v.n_tokens, &v.unk_id, err);
    if (st == DL_OK)
        st = read_flag(g, "tokenizer.ggml.add_space_prefix", &v.add_space_prefix, err);
    if (st == DL_OK)
        st = read_flag(g, "tokenizer.ggml.add_bos_token", &v.add_bos, err);
    if (st == DL_OK)
        st = read_flag(g, "tokenizer.ggml.add_eos_token", &v.add_eos, err);
    if (st == DL_OK) {
        v.tokens = tokens;
        v.merges = merges;
        v.scores = scores;
        v.types = types;
        tok = lm_tok_new(&v, err);
    }
    free(tokens);
    free(merges);
    free(scores);
    free(types);
    return tok;
}
