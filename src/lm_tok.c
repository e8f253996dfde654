/* lm_tok.c: building a tokenizer, its lookups, special-token partitioning,
 * encode dispatch and decoding.  The merge loops are in lm_tok_spm.c and
 * lm_tok_bpe.c, the pre-tokenizers in lm_tok_pretok.c. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_tok_int.h"
#include "lm_unicode.h"

/* ---- hashing ------------------------------------------------------------ */

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv_add(uint64_t h, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* Table of at least 2n slots (load <= 1/2), a power of two; -1 = empty. */
static int32_t *map_alloc(int64_t n, uint64_t *mask)
{
    uint64_t size = 16;
    while (size < (uint64_t)n * 2)
        size *= 2;
    int32_t *m = malloc(size * sizeof *m);
    if (m)
        memset(m, 0xff, size * sizeof *m);
    *mask = size - 1;
    return m;
}

int32_t lm_tok_lookup(const lm_tok *tok, const char *s, size_t n)
{
    uint64_t h = fnv_add(FNV_OFFSET, s, n);
    for (uint64_t i = h & tok->token_mask;; i = (i + 1) & tok->token_mask) {
        int32_t id = tok->token_map[i];
        if (id < 0)
            return -1;
        const lm_tok_entry *e = &tok->entries[id];
        if (e->text_len == n && !memcmp(tok->arena + e->text_off, s, n))
            return id;
    }
}

/* A merge "l r" hashes as the bytes l, ' ', r, so lookups need no copy. */
static uint64_t merge_hash(const char *l, size_t ln, const char *r, size_t rn)
{
    return fnv_add(fnv_add(fnv_add(FNV_OFFSET, l, ln), " ", 1), r, rn);
}

int32_t lm_tok_merge_rank(const lm_tok *tok, const char *l, size_t ln, const char *r, size_t rn)
{
    if (!tok->merge_map)
        return -1;
    uint64_t h = merge_hash(l, ln, r, rn);
    for (uint64_t i = h & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
        int32_t k = tok->merge_map[i];
        if (k < 0)
            return -1;
        const lm_tok_merge *m = &tok->merges[k];
        const char *ms = tok->arena + m->off;
        if (m->left_len == ln && m->right_len == rn && !memcmp(ms, l, ln) &&
            !memcmp(ms + ln + 1, r, rn))
            return k;
    }
}

/* ---- building ----------------------------------------------------------- */

void lm_tok_vocab_init(lm_tok_vocab *v)
{
    memset(v, 0, sizeof *v);
    v->kind = LM_TOK_KIND_SPM;
    v->bos_id = v->eos_id = v->unk_id = -1;
    v->add_space_prefix = 1;
}

/* "<0xXX>" -> XX, else -1. */
static int parse_byte_token(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4])
        return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

/* Writes the decoded piece of token e (text t) to out; returns its length
 * (never more than the text's: SPM shrinks U+2581 to ' ', BPE maps each
 * 2-byte code point back to one byte). */
static size_t make_piece(lm_tok_kind kind, int32_t type, const char *t, size_t n, char *out)
{
    if (type == LM_TOK_TYPE_USER_DEFINED) {
        memcpy(out, t, n);
        return n;
    }
    if (type == LM_TOK_TYPE_CONTROL || type == LM_TOK_TYPE_UNKNOWN || type == LM_TOK_TYPE_UNUSED)
        return 0;
    if (kind == LM_TOK_KIND_SPM && type == LM_TOK_TYPE_BYTE) {
        int b = parse_byte_token(t, n);
        if (b >= 0) {
            out[0] = (char)b;
            return 1;
        }
    }
    size_t k = 0;
    if (kind == LM_TOK_KIND_SPM) {
        for (size_t i = 0; i < n; i++) {
            if (i + 2 < n && !memcmp(t + i, "\xe2\x96\x81", 3)) {
                out[k++] = ' ';
                i += 2;
            } else {
                out[k++] = t[i];
            }
        }
        return k;
    }
    if (type == LM_TOK_TYPE_BYTE)
        return 0; /* as llama.cpp: BPE renders only NORMAL tokens' bytes */
    for (size_t pos = 0; pos < n;) {
        size_t start = pos;
        int b = lm_unicode_cp_to_byte(lm_unicode_decode(t, n, &pos));
        if (b >= 0) {
            out[k++] = (char)b;
        } else { /* no byte's image: keep the UTF-8 as stored */
            memcpy(out + k, t + start, pos - start);
            k += pos - start;
        }
    }
    return k;
}

static dl_status check_vocab(const lm_tok_vocab *v, dl_error *err)
{
    if (v->kind != LM_TOK_KIND_SPM && v->kind != LM_TOK_KIND_BPE)
        return dl_error_set(err, DL_ERR_UNSUPPORTED, "unknown tokenizer kind %d", (int)v->kind);
    if (v->n_tokens < 1 || v->n_tokens > INT32_MAX || !v->tokens)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "tokenizer.ggml.tokens",
                               "vocabulary has %lld tokens (need 1 .. 2^31-1)",
                               (long long)v->n_tokens);
    if (v->kind == LM_TOK_KIND_BPE && (v->n_merges < 1 || !v->merges))
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "tokenizer.ggml.merges",
                               "a BPE vocabulary needs merges");
    if (v->n_merges < 0 || v->n_merges > INT32_MAX)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "tokenizer.ggml.merges",
                               "bad merge count %lld", (long long)v->n_merges);
    const int32_t ids[3] = {v->bos_id, v->eos_id, v->unk_id};
    static const char *const names[3] = {"tokenizer.ggml.bos_token_id",
                                         "tokenizer.ggml.eos_token_id",
                                         "tokenizer.ggml.unknown_token_id"};
    for (int i = 0; i < 3; i++)
        if (ids[i] < -1 || ids[i] >= v->n_tokens)
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, names[i],
                                   "token id %ld out of range (vocabulary of %lld)",
                                   (long)ids[i], (long long)v->n_tokens);
    for (int64_t i = 0; i < v->n_tokens; i++) {
        if (!v->tokens[i].ptr || v->tokens[i].len == 0 || v->tokens[i].len > UINT32_MAX)
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "tokenizer.ggml.tokens",
                                   "token %lld is empty or too long", (long long)i);
        if (v->types && (v->types[i] < 0 || v->types[i] > LM_TOK_TYPE_BYTE))
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "tokenizer.ggml.token_type",
                                   "token %lld has type %ld (0..6 expected)", (long long)i,
                                   (long)v->types[i]);
    }
    return DL_OK;
}

/* Copies the texts and pieces into the arena and fills the token map. */
static dl_status build_tokens(lm_tok *tok, const lm_tok_vocab *v, char *arena, size_t *used,
                              dl_error *err)
{
    tok->token_map = map_alloc(v->n_tokens, &tok->token_mask);
    if (!tok->token_map)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the token map");
    size_t at = *used;
    for (int64_t i = 0; i < v->n_tokens; i++) {
        lm_tok_entry *e = &tok->entries[i];
        const char *t = v->tokens[i].ptr;
        size_t n = v->tokens[i].len;
        e->type = v->types ? v->types[i] : LM_TOK_TYPE_NORMAL;
        e->score = v->scores ? v->scores[i] : 0.0f;
        if (isnan(e->score))
            e->score = -INFINITY;
        e->text_off = (int64_t)at;
        e->text_len = (uint32_t)n;
        memcpy(arena + at, t, n);
        at += n;
        e->piece_off = (int64_t)at;
        e->piece_len = (uint32_t)make_piece(v->kind, e->type, t, n, arena + at);
        at += e->piece_len;
        /* Insert; a duplicate text takes the later id, as llama.cpp's map. */
        uint64_t h = fnv_add(FNV_OFFSET, t, n);
        for (uint64_t s = h & tok->token_mask;; s = (s + 1) & tok->token_mask) {
            int32_t old = tok->token_map[s];
            if (old < 0 || (tok->entries[old].text_len == n &&
                            !memcmp(arena + tok->entries[old].text_off, t, n))) {
                tok->token_map[s] = (int32_t)i;
                break;
            }
        }
    }
    *used = at;
    return DL_OK;
}

/* Splits each merge at its first space after byte 0 (llama.cpp's rule);
 * rules without one can never match and are left out of the map. */
static dl_status build_merges(lm_tok *tok, const lm_tok_vocab *v, char *arena, size_t *used,
                              dl_error *err)
{
    if (v->n_merges == 0)
        return DL_OK;
    tok->merges = calloc((size_t)v->n_merges, sizeof *tok->merges);
    tok->merge_map = map_alloc(v->n_merges, &tok->merge_mask);
    if (!tok->merges || !tok->merge_map)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld merges",
                            (long long)v->n_merges);
    tok->n_merges = v->n_merges;
    size_t at = *used;
    for (int64_t i = 0; i < v->n_merges; i++) {
        const char *s = v->merges[i].ptr;
        size_t n = v->merges[i].len;
        const char *sp = (s && n > 1) ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp || n > UINT32_MAX)
            continue;
        lm_tok_merge *m = &tok->merges[i];
        m->off = (int64_t)at;
        m->left_len = (uint32_t)(sp - s);
        m->right_len = (uint32_t)(n - m->left_len - 1);
        memcpy(arena + at, s, n);
        at += n;
        uint64_t h = merge_hash(s, m->left_len, sp + 1, m->right_len);
        for (uint64_t k = h & tok->merge_mask;; k = (k + 1) & tok->merge_mask) {
            int32_t old = tok->merge_map[k];
            if (old < 0) {
                tok->merge_map[k] = (int32_t)i;
                break;
            }
            const lm_tok_merge *o = &tok->merges[old];
            if (o->left_len == m->left_len && o->right_len == m->right_len &&
                !memcmp(arena + o->off, s, n))
                break; /* duplicate: the first (lower) rank stays */
        }
    }
    *used = at;
    return DL_OK;
}

typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

static int special_cmp(const void *a, const void *b)
{
    const special_key *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int is_special_type(int32_t t)
{
    return t == LM_TOK_TYPE_USER_DEFINED || t == LM_TOK_TYPE_CONTROL || t == LM_TOK_TYPE_UNKNOWN;
}

/* Tokens matched in raw text: longest first, ties by id (llama.cpp's sort is
 * unstable there; equal-length texts rarely overlap). */
static dl_status build_specials(lm_tok *tok, dl_error *err)
{
    int64_t n = 0;
    for (int64_t i = 0; i < tok->n_tokens; i++)
        n += is_special_type(tok->entries[i].type);
    if (n == 0)
        return DL_OK;
    special_key *keys = malloc((size_t)n * sizeof *keys);
    tok->special = malloc((size_t)n * sizeof *tok->special);
    if (!keys || !tok->special) {
        free(keys);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for special tokens");
    }
    for (int64_t i = 0, k = 0; i < tok->n_tokens; i++)
        if (is_special_type(tok->entries[i].type))
            keys[k++] = (special_key){tok->entries[i].text_len, (int32_t)i};
    qsort(keys, (size_t)n, sizeof *keys, special_cmp);
    for (int64_t k = 0; k < n; k++)
        tok->special[k] = keys[k].id;
    tok->n_special = n;
    free(keys);
    return DL_OK;
}

static void build_byte_tokens(lm_tok *tok)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char one = (char)b;
        int32_t id = lm_tok_lookup(tok, name, sizeof name);
        if (id < 0)
            id = lm_tok_lookup(tok, &one, 1);
        tok->byte_token[b] = id >= 0 ? id : tok->unk_id;
    }
}

lm_tok *lm_tok_new(const lm_tok_vocab *v, dl_error *err)
{
    if (!v) {
        dl_error_set(err, DL_ERR_USAGE, "lm_tok_new: NULL vocabulary");
        return NULL;
    }
    if (check_vocab(v, err) != DL_OK)
        return NULL;
    int ignore_merges = 0;
    int pre = LM_TOK_PRE_NONE;
    if (v->kind == LM_TOK_KIND_BPE && (pre = lm_tok_pre_parse(v->pre, &ignore_merges)) < 0) {
        dl_error_set_at(err, DL_ERR_UNSUPPORTED, NULL, 0, 0, -1, "tokenizer.ggml.pre",
                        "unsupported pre-tokenizer '%s' (docs/tokenizers.md lists the known ones)",
                        v->pre);
        return NULL;
    }
    size_t arena_size = 1;
    for (int64_t i = 0; i < v->n_tokens; i++)
        arena_size += 2 * v->tokens[i].len;
    for (int64_t i = 0; i < v->n_merges; i++)
        arena_size += v->merges[i].len;
    lm_tok *tok = calloc(1, sizeof *tok);
    if (!tok) {
        dl_error_set(err, DL_ERR_NOMEM, "out of memory for the tokenizer");
        return NULL;
    }
    tok->kind = v->kind;
    tok->pre = (lm_tok_pre)pre;
    tok->ignore_merges = ignore_merges;
    tok->add_space_prefix = v->add_space_prefix != 0;
    tok->add_bos = v->add_bos != 0;
    tok->add_eos = v->add_eos != 0;
    tok->bos_id = v->bos_id;
    tok->eos_id = v->eos_id;
    tok->unk_id = v->unk_id;
    tok->n_tokens = v->n_tokens;
    tok->entries = calloc((size_t)v->n_tokens, sizeof *tok->entries);
    tok->arena = malloc(arena_size);
    size_t used = 0;
    if (!tok->entries || !tok->arena) {
        dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld tokens", (long long)v->n_tokens);
        lm_tok_free(tok);
        return NULL;
    }
    if (build_tokens(tok, v, tok->arena, &used, err) != DL_OK ||
        build_merges(tok, v, tok->arena, &used, err) != DL_OK || build_specials(tok, err) != DL_OK) {
        lm_tok_free(tok);
        return NULL;
    }
    build_byte_tokens(tok);
    return tok;
}

void lm_tok_free(lm_tok *tok)
{
    if (!tok)
        return;
    free(tok->entries);
    free(tok->arena);
    free(tok->token_map);
    free(tok->merges);
    free(tok->merge_map);
    free(tok->special);
    free(tok);
}

/* ---- scratch and the merge queue ---------------------------------------- */

dl_status lm_tok_work_text(lm_tok_work *w, size_t n, dl_error *err)
{
    if (n <= w->text_cap)
        return DL_OK;
    size_t cap = w->text_cap ? w->text_cap : 256;
    while (cap < n)
        cap *= 2;
    char *t = realloc(w->text, cap);
    if (!t)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (tokenizer text of %zu bytes)", n);
    w->text = t;
    w->text_cap = cap;
    return DL_OK;
}

dl_status lm_tok_work_syms(lm_tok_work *w, int64_t n, dl_error *err)
{
    if (n <= w->syms_cap)
        return DL_OK;
    int64_t cap = w->syms_cap ? w->syms_cap : 64;
    while (cap < n)
        cap *= 2;
    lm_tok_sym *s = realloc(w->syms, (size_t)cap * sizeof *s);
    if (!s)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (%lld symbols)", (long long)n);
    w->syms = s;
    w->syms_cap = cap;
    return DL_OK;
}

void lm_tok_heap_clear(lm_tok_work *w)
{
    w->heap_n = 0;
}

/* a pops before b: smaller key, then the leftmost pair. */
static int bigram_before(const lm_tok_bigram *a, const lm_tok_bigram *b)
{
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

dl_status lm_tok_heap_push(lm_tok_work *w, const lm_tok_bigram *b, dl_error *err)
{
    if (w->heap_n == w->heap_cap) {
        int64_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        lm_tok_bigram *h = realloc(w->heap, (size_t)cap * sizeof *h);
        if (!h)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory (merge queue)");
        w->heap = h;
        w->heap_cap = cap;
    }
    int64_t i = w->heap_n++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!bigram_before(b, &w->heap[parent]))
            break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = *b;
    return DL_OK;
}

int lm_tok_heap_pop(lm_tok_work *w, lm_tok_bigram *out)
{
    if (w->heap_n == 0)
        return 0;
    *out = w->heap[0];
    lm_tok_bigram last = w->heap[--w->heap_n];
    int64_t i = 0, n = w->heap_n;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!bigram_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0)
        w->heap[i] = last;
    return 1;
}

static void work_free(lm_tok_work *w)
{
    free(w->text);
    free(w->syms);
    free(w->heap);
    free(w->cps);
    free(w->cls);
    free(w->piece_a);
    free(w->piece_b);
}

/* ---- ids ------------------------------------------------------------------ */

void lm_tok_ids_free(lm_tok_ids *v)
{
    if (!v)
        return;
    free(v->ids);
    memset(v, 0, sizeof *v);
}

dl_status lm_tok_ids_push(lm_tok_ids *v, int32_t id, dl_error *err)
{
    if (v->n == v->cap) {
        int64_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *ids = realloc(v->ids, (size_t)cap * sizeof *ids);
        if (!ids)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory (%lld token ids)",
                                (long long)cap);
        v->ids = ids;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return DL_OK;
}

/* ---- special-token partitioning -------------------------------------------- */

/* A piece of the input: raw text [off, off+len) when token < 0, else a
 * matched special token. */
typedef struct frag {
    int64_t off, len;
    int32_t token;
} frag;

typedef struct frag_list {
    frag *v;
    int64_t n, cap;
} frag_list;

static dl_status frag_push(frag_list *l, int64_t off, int64_t len, int32_t token, dl_error *err)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? l->cap * 2 : 16;
        frag *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory (text fragments)");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (frag){off, len, token};
    return DL_OK;
}

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m > n)
        return NULL;
    const char *end = hay + (n - m) + 1;
    for (const char *p = hay; p < end;) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p)
            return NULL;
        if (!memcmp(p, needle, m))
            return p;
        p++;
    }
    return NULL;
}

/* Cuts *cur's raw fragments at every occurrence of special token id, left
 * to right, into *next; then swaps.  llama.cpp's tokenizer_st_partition does
 * the same one token at a time. */
static dl_status split_on(const lm_tok *tok, const char *text, int32_t id, frag_list *cur,
                          frag_list *next, dl_error *err)
{
    const lm_tok_entry *e = &tok->entries[id];
    const char *t = tok->arena + e->text_off;
    int found = 0;
    next->n = 0;
    for (int64_t i = 0; i < cur->n; i++) {
        frag f = cur->v[i];
        while (f.token < 0 && f.len > 0) {
            const char *hit = find_bytes(text + f.off, (size_t)f.len, t, e->text_len);
            if (!hit)
                break;
            int64_t at = hit - text;
            found = 1;
            if (at > f.off && frag_push(next, f.off, at - f.off, -1, err) != DL_OK)
                return err ? err->code : DL_ERR_NOMEM;
            if (frag_push(next, 0, 0, id, err) != DL_OK)
                return err ? err->code : DL_ERR_NOMEM;
            f.len -= at + (int64_t)e->text_len - f.off;
            f.off = at + (int64_t)e->text_len;
        }
        if ((f.token >= 0 || f.len > 0) && frag_push(next, f.off, f.len, f.token, err) != DL_OK)
            return err ? err->code : DL_ERR_NOMEM;
    }
    if (found) {
        frag_list tmp = *cur;
        *cur = *next;
        *next = tmp;
    }
    return DL_OK;
}

static dl_status partition(const lm_tok *tok, const char *text, size_t len, unsigned flags,
                            frag_list *cur, frag_list *next, dl_error *err)
{
    if (frag_push(cur, 0, (int64_t)len, -1, err) != DL_OK)
        return DL_ERR_NOMEM;
    unsigned char present[256] = {0};
    for (size_t i = 0; i < len; i++)
        present[(unsigned char)text[i]] = 1;
    for (int64_t k = 0; k < tok->n_special; k++) {
        int32_t id = tok->special[k];
        const lm_tok_entry *e = &tok->entries[id];
        if (e->type != LM_TOK_TYPE_USER_DEFINED && !(flags & LM_TOK_PARSE_SPECIAL))
            continue;
        if (e->text_len > len || !present[(unsigned char)tok->arena[e->text_off]])
            continue;
        dl_status st = split_on(tok, text, id, cur, next, err);
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

/* ---- encoding ------------------------------------------------------------------ */

static dl_status encode_frags(const lm_tok *tok, lm_tok_work *w, const char *text,
                              const frag_list *frags, lm_tok_ids *out, dl_error *err)
{
    int prev_special = 1; /* SPM: the text start counts as after a special */
    for (int64_t i = 0; i < frags->n; i++) {
        const frag *f = &frags->v[i];
        dl_status st;
        if (f->token >= 0) {
            st = lm_tok_ids_push(out, f->token, err);
            prev_special = 1;
        } else if (tok->kind == LM_TOK_KIND_SPM) {
            st = lm_tok_spm_encode(tok, w, text + f->off, (size_t)f->len,
                                   tok->add_space_prefix && prev_special, out, err);
            prev_special = 0;
        } else {
            st = lm_tok_bpe_encode(tok, w, text + f->off, (size_t)f->len, out, err);
        }
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

dl_status lm_tok_encode(const lm_tok *tok, const char *text, size_t len, unsigned flags,
                        lm_tok_ids *out, dl_error *err)
{
    if (!tok || !out || (!text && len > 0))
        return dl_error_set(err, DL_ERR_USAGE, "lm_tok_encode: NULL argument");
    int64_t n0 = out->n;
    dl_status st = DL_OK;
    frag_list cur = {0}, next = {0};
    lm_tok_work w = {0};
    if ((flags & LM_TOK_ADD_BOS) && tok->bos_id >= 0)
        st = lm_tok_ids_push(out, tok->bos_id, err);
    if (st == DL_OK && len > 0)
        st = partition(tok, text, len, flags, &cur, &next, err);
    if (st == DL_OK && len > 0)
        st = encode_frags(tok, &w, text, &cur, out, err);
    if (st == DL_OK && (flags & LM_TOK_ADD_EOS) && tok->eos_id >= 0)
        st = lm_tok_ids_push(out, tok->eos_id, err);
    if (st != DL_OK)
        out->n = n0;
    free(cur.v);
    free(next.v);
    work_free(&w);
    return st;
}

/* ---- decoding and facts ------------------------------------------------------------ */

const char *lm_tok_piece(const lm_tok *tok, int32_t id, unsigned flags, size_t *len)
{
    if (!tok || id < 0 || id >= tok->n_tokens) {
        if (len)
            *len = 0;
        return NULL;
    }
    const lm_tok_entry *e = &tok->entries[id];
    if ((flags & LM_TOK_DECODE_SPECIAL) &&
        (e->type == LM_TOK_TYPE_CONTROL || e->type == LM_TOK_TYPE_UNKNOWN)) {
        if (len)
            *len = e->text_len;
        return tok->arena + e->text_off;
    }
    if (len)
        *len = e->piece_len;
    return tok->arena + e->piece_off;
}

dl_status lm_tok_decode(const lm_tok *tok, const int32_t *ids, int64_t n, unsigned flags,
                        char **out, size_t *out_len, dl_error *err)
{
    if (!tok || !out || !out_len || n < 0 || (!ids && n > 0))
        return dl_error_set(err, DL_ERR_USAGE, "lm_tok_decode: bad argument");
    size_t total = 0, len;
    for (int64_t i = 0; i < n; i++) {
        if (!lm_tok_piece(tok, ids[i], flags, &len))
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, i, NULL,
                                   "token id %ld out of range (vocabulary of %lld)",
                                   (long)ids[i], (long long)tok->n_tokens);
        total += len;
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (%zu decoded bytes)", total);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *p = lm_tok_piece(tok, ids[i], flags, &len);
        memcpy(buf + at, p, len);
        at += len;
    }
    buf[at] = '\0';
    if ((flags & LM_TOK_DECODE_STRIP_SPACE) && tok->kind == LM_TOK_KIND_SPM &&
        tok->add_space_prefix && at > 0 && buf[0] == ' ') {
        memmove(buf, buf + 1, at);
        at--;
    }
    *out = buf;
    *out_len = at;
    return DL_OK;
}

int64_t lm_tok_n_vocab(const lm_tok *tok) { return tok->n_tokens; }
lm_tok_kind lm_tok_kind_of(const lm_tok *tok) { return tok->kind; }
const char *lm_tok_pre_name(const lm_tok *tok) { return lm_tok_pre_family(tok->pre); }
int32_t lm_tok_bos(const lm_tok *tok) { return tok->bos_id; }
int32_t lm_tok_eos(const lm_tok *tok) { return tok->eos_id; }
int32_t lm_tok_unk(const lm_tok *tok) { return tok->unk_id; }
int lm_tok_add_bos_default(const lm_tok *tok) { return tok->add_bos; }
int lm_tok_add_eos_default(const lm_tok *tok) { return tok->add_eos; }

const char *lm_tok_text(const lm_tok *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_tokens) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = tok->entries[id].text_len;
    return tok->arena + tok->entries[id].text_off;
}

lm_tok_type lm_tok_type_of(const lm_tok *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_tokens)
        return LM_TOK_TYPE_UNDEFINED;
    return (lm_tok_type)tok->entries[id].type;
}

int32_t lm_tok_find(const lm_tok *tok, const char *text, size_t len)
{
    return lm_tok_lookup(tok, text, len);
}
