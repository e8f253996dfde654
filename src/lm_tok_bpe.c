/* lm_tok_bpe.c: byte-level BPE (GPT-2 style; llama.cpp's llm_tokenizer_bpe).
 *
 * A fragment is decoded to code points (malformed bytes become U+FFFD), cut
 * into words by the pre-tokenizer, and each word's UTF-8 bytes are mapped
 * through GPT-2's byte table, so every word is printable text made of
 * vocabulary characters.  Inside a word, symbols (characters) form a linked
 * list and adjacent pairs with a merge rank wait in a priority queue (lowest
 * rank first, then leftmost); popping a pair merges it unless stale.
 * O(m log m) per word of m characters.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "lm_tok_int.h"
#include "lm_unicode.h"

static dl_status try_pair(const lm_tok *tok, lm_tok_work *w, int32_t left, int32_t right,
                          dl_error *err)
{
    if (left < 0 || right < 0)
        return DL_OK;
    const lm_tok_sym *l = &w->syms[left], *r = &w->syms[right];
    int32_t rank = lm_tok_merge_rank(tok, w->text + l->off, (size_t)l->n, w->text + r->off,
                                     (size_t)r->n);
    if (rank < 0)
        return DL_OK;
    lm_tok_bigram b = {(double)rank, left, right, l->n + r->n};
    return lm_tok_heap_push(w, &b, err);
}

/* Appends the tokens of a symbol that is not itself a token: one per byte
 * that is a one-byte token, else the unknown token (llama.cpp drops such a
 * byte silently; a byte-level vocabulary always has all 256). */
static dl_status emit_bytes(const lm_tok *tok, const char *s, int64_t n, lm_tok_ids *out,
                            dl_error *err)
{
    for (int64_t k = 0; k < n; k++) {
        int32_t id = lm_tok_lookup(tok, s + k, 1);
        if (id < 0)
            id = tok->unk_id;
        if (id >= 0 && lm_tok_ids_push(out, id, err) != DL_OK)
            return DL_ERR_NOMEM;
    }
    return DL_OK;
}

/* Merges the n mapped bytes in w->text and appends the word's tokens. */
static dl_status encode_word(const lm_tok *tok, lm_tok_work *w, size_t n, lm_tok_ids *out,
                             dl_error *err)
{
    if (tok->ignore_merges) {
        int32_t id = lm_tok_lookup(tok, w->text, n);
        if (id >= 0)
            return lm_tok_ids_push(out, id, err);
    }
    if (lm_tok_work_syms(w, (int64_t)n, err) != DL_OK)
        return DL_ERR_NOMEM;
    int32_t n_sym = 0;
    for (size_t off = 0; off < n; n_sym++) {
        size_t l = lm_unicode_lead_len((unsigned char)w->text[off]);
        if (l > n - off)
            l = n - off;
        w->syms[n_sym] = (lm_tok_sym){(int64_t)off, (int64_t)l, n_sym - 1, -1};
        off += l;
        if (off < n)
            w->syms[n_sym].next = n_sym + 1;
    }
    lm_tok_heap_clear(w);
    for (int32_t i = 1; i < n_sym; i++)
        if (try_pair(tok, w, i - 1, i, err) != DL_OK)
            return DL_ERR_NOMEM;
    lm_tok_bigram b;
    while (lm_tok_heap_pop(w, &b)) {
        lm_tok_sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = b.left;
        if (try_pair(tok, w, l->prev, b.left, err) != DL_OK ||
            try_pair(tok, w, b.left, l->next, err) != DL_OK)
            return DL_ERR_NOMEM;
    }
    for (int32_t i = 0; i != -1; i = w->syms[i].next) {
        const lm_tok_sym *s = &w->syms[i];
        int32_t id = lm_tok_lookup(tok, w->text + s->off, (size_t)s->n);
        dl_status st = id >= 0 ? lm_tok_ids_push(out, id, err)
                               : emit_bytes(tok, w->text + s->off, s->n, out, err);
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

/* Grows the code point buffers of w to hold n entries. */
static dl_status work_cps(lm_tok_work *w, int64_t n, dl_error *err)
{
    if (n <= w->cps_cap)
        return DL_OK;
    free(w->cps);
    free(w->cls);
    free(w->piece_a);
    free(w->piece_b);
    w->cps = malloc((size_t)n * sizeof *w->cps);
    w->cls = malloc((size_t)n);
    w->piece_a = malloc((size_t)n * sizeof *w->piece_a);
    w->piece_b = malloc((size_t)n * sizeof *w->piece_b);
    w->cps_cap = n;
    if (!w->cps || !w->cls || !w->piece_a || !w->piece_b) {
        w->cps_cap = 0;
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (%lld code points)", (long long)n);
    }
    return DL_OK;
}

/* Writes word cps[0..n) as GPT-2-mapped UTF-8 into w->text; returns bytes. */
static dl_status map_word(lm_tok_work *w, const uint32_t *cps, int64_t n, size_t *out_len,
                          dl_error *err)
{
    /* Each code point is at most 4 bytes, each mapping to at most 2. */
    if (lm_tok_work_text(w, (size_t)n * 8, err) != DL_OK)
        return DL_ERR_NOMEM;
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        char utf8[4];
        size_t m = lm_unicode_encode(cps[i], utf8);
        for (size_t j = 0; j < m; j++)
            k += lm_unicode_encode(lm_unicode_byte_to_cp((unsigned char)utf8[j]), w->text + k);
    }
    *out_len = k;
    return DL_OK;
}

dl_status lm_tok_bpe_encode(const lm_tok *tok, lm_tok_work *w, const char *text, size_t len,
                            lm_tok_ids *out, dl_error *err)
{
    if (len == 0)
        return DL_OK;
    if (len > INT32_MAX / 8)
        return dl_error_set(err, DL_ERR_UNSUPPORTED, "text of %zu bytes is too long to tokenise",
                            len);
    if (work_cps(w, (int64_t)len, err) != DL_OK)
        return DL_ERR_NOMEM;
    int64_t n_cp = 0;
    for (size_t pos = 0; pos < len; n_cp++) {
        w->cps[n_cp] = lm_unicode_decode(text, len, &pos);
        w->cls[n_cp] = (uint8_t)lm_unicode_class(w->cps[n_cp]);
    }
    int64_t n_pieces;
    const int64_t *pieces =
        lm_tok_pretok_split(tok->pre, w->cps, w->cls, n_cp, w->piece_a, w->piece_b, &n_pieces);
    int64_t start = 0;
    for (int64_t p = 0; p < n_pieces; p++) {
        size_t n;
        if (map_word(w, w->cps + start, pieces[p], &n, err) != DL_OK)
            return DL_ERR_NOMEM;
        dl_status st = encode_word(tok, w, n, out, err);
        if (st != DL_OK)
            return st;
        start += pieces[p];
    }
    return DL_OK;
}
