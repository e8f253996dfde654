/* lm_tok_spm.c: SentencePiece-style tokenisation by merge score (llama.cpp's
 * llm_tokenizer_spm, the algorithm of llama2.c's encode()).
 *
 * The escaped text is cut into UTF-8 characters, kept as a doubly linked
 * list of symbols.  Every adjacent pair whose concatenation is a token goes
 * into a priority queue keyed by that token's score (highest first, then
 * leftmost).  Popping a pair merges it unless it is stale (one side already
 * merged elsewhere: the sizes no longer add up), then queues the new pairs
 * with its two neighbours.  O(n log n) for n characters.
 *
 * A final symbol that is not a token was never merged, so it is a single
 * character: it becomes one byte token per byte.  One deviation from
 * llama.cpp, on malformed UTF-8 only: a byte that does not start a complete
 * sequence is a symbol of its own (llama.cpp takes as many bytes as the lead
 * byte announces, swallowing e.g. the U+2581 of a following space), so
 * decoding always gives the input back.
 */
#include "config.h"

#include <string.h>

#include "lm_tok_int.h"
#include "lm_unicode.h"

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */

/* Queues the pair (left, right) if their concatenation is a token. */
static dl_status try_pair(const lm_tok *tok, lm_tok_work *w, int32_t left, int32_t right,
                          dl_error *err)
{
    if (left < 0 || right < 0)
        return DL_OK;
    const lm_tok_sym *l = &w->syms[left], *r = &w->syms[right];
    int64_t size = l->n + r->n;
    int32_t id = lm_tok_lookup(tok, w->text + l->off, (size_t)size);
    if (id < 0)
        return DL_OK;
    lm_tok_bigram b = {-(double)tok->entries[id].score, left, right, size};
    return lm_tok_heap_push(w, &b, err);
}

/* Writes the escaped text into w->text; returns its length. */
static dl_status escape_text(lm_tok_work *w, const char *text, size_t len, int space_prefix,
                             size_t *out_len, dl_error *err)
{
    size_t n_space = 0;
    for (size_t i = 0; i < len; i++)
        n_space += text[i] == ' ';
    size_t n = len + 2 * n_space + (space_prefix ? 3 : 0);
    if (lm_tok_work_text(w, n, err) != DL_OK)
        return DL_ERR_NOMEM;
    size_t k = 0;
    if (space_prefix) {
        memcpy(w->text, SPM_SPACE, 3);
        k = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(w->text + k, SPM_SPACE, 3);
            k += 3;
        } else {
            w->text[k++] = text[i];
        }
    }
    *out_len = k;
    return DL_OK;
}

static dl_status emit(const lm_tok *tok, const lm_tok_work *w, lm_tok_ids *out, dl_error *err)
{
    for (int32_t i = 0; i != -1; i = w->syms[i].next) {
        const lm_tok_sym *s = &w->syms[i];
        int32_t id = lm_tok_lookup(tok, w->text + s->off, (size_t)s->n);
        if (id >= 0) {
            if (lm_tok_ids_push(out, id, err) != DL_OK)
                return DL_ERR_NOMEM;
            continue;
        }
        for (int64_t k = 0; k < s->n; k++) {
            unsigned char byte = (unsigned char)w->text[s->off + k];
            if (tok->byte_token[byte] < 0)
                return dl_error_set(err, DL_ERR_UNSUPPORTED,
                                    "the vocabulary cannot represent byte 0x%02X (no byte "
                                    "token, no one-byte token, no unknown token)",
                                    byte);
            if (lm_tok_ids_push(out, tok->byte_token[byte], err) != DL_OK)
                return DL_ERR_NOMEM;
        }
    }
    return DL_OK;
}

dl_status lm_tok_spm_encode(const lm_tok *tok, lm_tok_work *w, const char *text, size_t len,
                            int space_prefix, lm_tok_ids *out, dl_error *err)
{
    size_t n;
    if (escape_text(w, text, len, space_prefix, &n, err) != DL_OK)
        return DL_ERR_NOMEM;
    if (n == 0)
        return DL_OK;
    if (n > INT32_MAX)
        return dl_error_set(err, DL_ERR_UNSUPPORTED, "text of %zu bytes is too long to tokenise", n);
    if (lm_tok_work_syms(w, (int64_t)n, err) != DL_OK)
        return DL_ERR_NOMEM;
    int32_t n_sym = 0;
    for (size_t off = 0; off < n; n_sym++) {
        size_t l = lm_unicode_seq_len(w->text, n, off);
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
            continue; /* stale: a side was merged since this pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->syms[r->next].prev = b.left;
        if (try_pair(tok, w, l->prev, b.left, err) != DL_OK ||
            try_pair(tok, w, b.left, l->next, err) != DL_OK)
            return DL_ERR_NOMEM;
    }
    return emit(tok, w, out, err);
}
