/* check_lm_tok.c: the GGUF tokenizers and their Unicode tables.
 *
 * References, all independent of the code under test:
 * - llama.cpp's tokenizer suite (../shared/tokenizers): every case of every
 *   vocabulary with an .inp/.out pair and a GGUF, the reconstructed
 *   llama-bpe and qwen2 vocabularies included;
 * - the models' golden tokenize.json (SentencePiece itself for delift-mini,
 *   a Python re-implementation checked against llama2.c for stories260K);
 * - brute-force O(n^2) merge loops written here, on random vocabularies;
 * - Unicode facts known independently of the generated table.
 * Without ../shared the unit tests still run, then the program exits 77.
 */
#include <jansson.h>
#include <stdint.h>

#include "dl_test.h"
#include "gguf_build.h"
#include "lm_gguf.h"
#include "lm_tok.h"
#include "lm_unicode.h"

/* ---- helpers ------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(buf != NULL);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static lm_tok *load_tok(const char *rel)
{
    const char *path = dl_test_shared(rel);
    ck_assert_msg(path != NULL, "missing ../shared/%s", rel);
    dl_error err = {0};
    lm_gguf *g = lm_gguf_open(path, &err);
    ck_assert_msg(g != NULL, "%s: %s", rel, err.message);
    lm_tok *tok = lm_tok_from_gguf(g, &err);
    ck_assert_msg(tok != NULL, "%s: %s", rel, err.message);
    lm_gguf_free(g);
    return tok;
}

/* Formats ids like llama.cpp's .out lines (" 1 2 3"), for messages. */
static void ids_str(const int32_t *ids, int64_t n, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < n && at + 16 < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, " %ld", (long)ids[i]);
}

/* Equal id lists (memcmp must not see the NULL of an empty list). */
static int same_ids(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static lm_tok_ids encode(const lm_tok *tok, const char *s, size_t n, unsigned flags)
{
    lm_tok_ids ids = {0};
    dl_error err = {0};
    ck_assert_msg(lm_tok_encode(tok, s, n, flags, &ids, &err) == DL_OK, "%s", err.message);
    return ids;
}

/* ---- Unicode --------------------------------------------------------------- */

START_TEST(test_unicode_classes)
{
    /* General categories from the Unicode standard (independent facts). */
    static const struct {
        uint32_t cp;
        unsigned cls;
    } facts[] = {
        {'A', LM_UNICODE_LETTER}, {'z', LM_UNICODE_LETTER}, {'0', LM_UNICODE_NUMBER},
        {'9', LM_UNICODE_NUMBER}, {'!', LM_UNICODE_PUNCTUATION}, {'_', LM_UNICODE_PUNCTUATION},
        {'$', LM_UNICODE_SYMBOL}, {'+', LM_UNICODE_SYMBOL}, {'^', LM_UNICODE_SYMBOL},
        {' ', LM_UNICODE_SEPARATOR | LM_UNICODE_WHITESPACE},
        {'\t', LM_UNICODE_CONTROL | LM_UNICODE_WHITESPACE},
        {'\n', LM_UNICODE_CONTROL | LM_UNICODE_WHITESPACE},
        {0x1C, LM_UNICODE_CONTROL}, /* not White_Space (unlike Python's isspace) */
        {0x85, LM_UNICODE_CONTROL | LM_UNICODE_WHITESPACE},
        {0xA0, LM_UNICODE_SEPARATOR | LM_UNICODE_WHITESPACE},
        {0xB2, LM_UNICODE_NUMBER},     /* SUPERSCRIPT TWO, No */
        {0xBD, LM_UNICODE_NUMBER},     /* VULGAR FRACTION ONE HALF */
        {0xC4, LM_UNICODE_LETTER},     /* A WITH DIAERESIS */
        {0xAD, LM_UNICODE_CONTROL},    /* SOFT HYPHEN, Cf */
        {0x0301, LM_UNICODE_MARK},     /* COMBINING ACUTE ACCENT */
        {0x0378, LM_UNICODE_UNDEFINED}, /* unassigned */
        {0x0660, LM_UNICODE_NUMBER},   /* ARABIC-INDIC DIGIT ZERO */
        {0x1680, LM_UNICODE_SEPARATOR | LM_UNICODE_WHITESPACE},
        {0x200B, LM_UNICODE_CONTROL},  /* ZERO WIDTH SPACE is Cf, not White_Space */
        {0x200D, LM_UNICODE_CONTROL},  /* ZWJ */
        {0x2028, LM_UNICODE_SEPARATOR | LM_UNICODE_WHITESPACE},
        {0x3000, LM_UNICODE_SEPARATOR | LM_UNICODE_WHITESPACE},
        {0x4E00, LM_UNICODE_LETTER},   /* first CJK ideograph (a First/Last range) */
        {0x9FA5, LM_UNICODE_LETTER},
        {0xAC00, LM_UNICODE_LETTER},   /* Hangul syllables range */
        {0xD7A3, LM_UNICODE_LETTER},
        {0xD800, LM_UNICODE_CONTROL},  /* surrogate, Cs */
        {0xE000, LM_UNICODE_CONTROL},  /* private use, Co */
        {0xFE0F, LM_UNICODE_MARK},     /* VARIATION SELECTOR-16, Mn */
        {0xFF5E, LM_UNICODE_SYMBOL},   /* FULLWIDTH TILDE */
        {0xFFFD, LM_UNICODE_SYMBOL},
        {0x1F600, LM_UNICODE_SYMBOL},  /* GRINNING FACE, So */
        {0x20000, LM_UNICODE_LETTER},  /* CJK Extension B */
        {0x10FFFD, LM_UNICODE_CONTROL}, /* plane 16 private use */
        {0x10FFFF, LM_UNICODE_UNDEFINED},
        {0x110000, LM_UNICODE_UNDEFINED},
    };
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++)
        ck_assert_msg(lm_unicode_class(facts[i].cp) == facts[i].cls, "U+%04X: class %u, want %u",
                      (unsigned)facts[i].cp, lm_unicode_class(facts[i].cp), facts[i].cls);
    /* The table: sorted runs from U+0000, adjacent runs differ. */
    ck_assert_uint_eq(lm_unicode_runs[0] >> 4, 0);
    for (int64_t i = 1; i < lm_unicode_n_runs; i++) {
        ck_assert_uint_lt(lm_unicode_runs[i - 1] >> 4, lm_unicode_runs[i] >> 4);
        ck_assert_uint_ne(lm_unicode_runs[i - 1] & 15u, lm_unicode_runs[i] & 15u);
    }
    ck_assert_str_eq(lm_unicode_data_version, "15.0.0");
    /* White_Space has exactly 25 code points (PropList.txt, since 6.x). */
    int n_space = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++)
        n_space += (lm_unicode_class(cp) & LM_UNICODE_WHITESPACE) != 0;
    ck_assert_int_eq(n_space, 25);
}
END_TEST

START_TEST(test_unicode_utf8)
{
    char buf[4];
    /* Every code point survives encode + decode (counted, not asserted one
     * by one: each Check assertion costs a write to a pipe). */
    int64_t n_bad = 0;
    uint32_t first_bad = 0;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = lm_unicode_encode(cp, buf), pos = 0;
        int ok = n == (cp < 0x80 ? 1u : cp < 0x800 ? 2u : cp < 0x10000 ? 3u : 4u) &&
                 lm_unicode_decode(buf, n, &pos) == cp && pos == n &&
                 lm_unicode_lead_len((unsigned char)buf[0]) == n &&
                 lm_unicode_seq_len(buf, n, 0) == n;
        if (!ok && n_bad++ == 0)
            first_bad = cp;
    }
    ck_assert_msg(n_bad == 0, "%lld code points fail, first U+%04X", (long long)n_bad,
                  (unsigned)first_bad);
    /* Malformed: one byte consumed, U+FFFD. */
    static const char *const bad[] = {"\x80", "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xFF",
                                      "\xC3(", "\xF4\x90\x80\x80" /* > U+10FFFF */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t pos = 0;
        ck_assert_uint_eq(lm_unicode_decode(bad[i], strlen(bad[i]), &pos), LM_UNICODE_REPLACEMENT);
        ck_assert_uint_eq(pos, 1);
    }
    ck_assert_uint_eq(lm_unicode_encode(0x110000, buf), 3); /* U+FFFD */
    ck_assert(!memcmp(buf, "\xEF\xBF\xBD", 3));
}
END_TEST

START_TEST(test_unicode_gpt2_bytes)
{
    /* GPT-2's bytes_to_unicode, rebuilt the way encoder.py states it. */
    uint32_t want[256];
    int keep[256] = {0};
    for (int b = '!'; b <= '~'; b++)
        keep[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++)
        keep[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++)
        keep[b] = 1;
    uint32_t next = 256;
    for (int b = 0; b < 256; b++)
        want[b] = keep[b] ? (uint32_t)b : next++;
    ck_assert_uint_eq(next, 256 + 68);
    for (int b = 0; b < 256; b++) {
        ck_assert_uint_eq(lm_unicode_byte_to_cp((unsigned char)b), want[b]);
        ck_assert_int_eq(lm_unicode_cp_to_byte(want[b]), b);
    }
    ck_assert_int_eq(lm_unicode_cp_to_byte(' '), -1);
    ck_assert_int_eq(lm_unicode_cp_to_byte(0x144), -1);
    ck_assert_uint_eq(lm_unicode_byte_to_cp(' '), 0x120); /* the famous 'Ġ' */
}
END_TEST

/* ---- synthetic vocabularies --------------------------------------------------- */

/* A tiny deterministic generator (the tests must not depend on rand()). */
static uint64_t rng_state;
static uint32_t rng_next(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

#define MAXV 1024
typedef struct synth {
    char text[MAXV][16];
    lm_tok_bytes tokens[MAXV];
    float scores[MAXV];
    int32_t types[MAXV];
    char merge_text[MAXV][40];
    lm_tok_bytes merges[MAXV];
    int n, n_merges;
} synth;

static int synth_find(const synth *s, const char *t, size_t n)
{
    int found = -1; /* linear scan: independent of the hash map; last wins */
    for (int i = 0; i < s->n; i++)
        if (s->tokens[i].len == n && !memcmp(s->tokens[i].ptr, t, n))
            found = i;
    return found;
}

static int synth_add(synth *s, const char *t, size_t n, float score, int32_t type)
{
    if (synth_find(s, t, n) >= 0 || s->n == MAXV)
        return -1;
    memcpy(s->text[s->n], t, n);
    s->tokens[s->n] = (lm_tok_bytes){s->text[s->n], n};
    s->scores[s->n] = score;
    s->types[s->n] = type;
    return s->n++;
}

/* SPM: <unk> <s> </s>, optional byte tokens, then "a" "b" "c" "▁" and
 * random 2..4-symbol strings over them with random scores. */
static void synth_spm(synth *s, int with_bytes)
{
    static const char *const sym[] = {"a", "b", "c", "\xe2\x96\x81"};
    memset(s, 0, sizeof *s);
    synth_add(s, "<unk>", 5, 0, LM_TOK_TYPE_UNKNOWN);
    synth_add(s, "<s>", 3, 0, LM_TOK_TYPE_CONTROL);
    synth_add(s, "</s>", 4, 0, LM_TOK_TYPE_CONTROL);
    for (int b = 0; with_bytes && b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        synth_add(s, name, 6, 0, LM_TOK_TYPE_BYTE);
    }
    for (int i = 0; i < 4; i++)
        synth_add(s, sym[i], strlen(sym[i]), -100, LM_TOK_TYPE_NORMAL);
    for (int k = 0; k < 120; k++) {
        char t[16];
        size_t n = 0;
        int len = 2 + (int)(rng_next() % 3);
        for (int j = 0; j < len; j++) {
            const char *p = sym[rng_next() % 4];
            memcpy(t + n, p, strlen(p));
            n += strlen(p);
        }
        /* Few distinct scores, so ties (leftmost wins) happen often. */
        synth_add(s, t, n, -(float)(rng_next() % 8), LM_TOK_TYPE_NORMAL);
    }
}

static lm_tok *synth_spm_tok(synth *s)
{
    lm_tok_vocab v;
    lm_tok_vocab_init(&v);
    v.n_tokens = s->n;
    v.tokens = s->tokens;
    v.scores = s->scores;
    v.types = s->types;
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    dl_error err = {0};
    lm_tok *tok = lm_tok_new(&v, &err);
    ck_assert_msg(tok != NULL, "%s", err.message);
    return tok;
}

/* The SPM algorithm by brute force: merge the best pair, rescan, repeat. */
static int64_t brute_spm(const synth *s, const char *text, int32_t *out)
{
    char esc[512];
    size_t n = 0;
    memcpy(esc, "\xe2\x96\x81", 3);
    n = 3;
    for (const char *p = text; *p; p++) {
        if (*p == ' ') {
            memcpy(esc + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            esc[n++] = *p;
        }
    }
    size_t start[512], len[512];
    int k = 0;
    for (size_t i = 0; i < n;) {
        size_t l = lm_unicode_lead_len((unsigned char)esc[i]);
        for (size_t j = 1; j < l; j++) /* a malformed sequence: one byte */
            if (i + j >= n || ((unsigned char)esc[i + j] & 0xC0) != 0x80)
                l = 1;
        start[k] = i;
        len[k++] = l;
        i += l;
    }
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (int i = 0; i + 1 < k; i++) {
            int id = synth_find(s, esc + start[i], len[i] + len[i + 1]);
            if (id >= 0 && (best < 0 || s->scores[id] > best_score)) {
                best = i;
                best_score = s->scores[id];
            }
        }
        if (best < 0)
            break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (size_t)(k - best - 2) * sizeof *start);
        memmove(len + best + 1, len + best + 2, (size_t)(k - best - 2) * sizeof *len);
        k--;
    }
    int64_t m = 0;
    for (int i = 0; i < k; i++) {
        int id = synth_find(s, esc + start[i], len[i]);
        if (id >= 0) {
            out[m++] = id;
            continue;
        }
        for (size_t j = 0; j < len[i]; j++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)esc[start[i] + j]);
            out[m++] = synth_find(s, name, 6);
        }
    }
    return m;
}

START_TEST(test_spm_matches_brute_force)
{
    rng_state = 42;
    static synth s;
    synth_spm(&s, 1);
    lm_tok *tok = synth_spm_tok(&s);
    static const char alphabet[] = "abc abc\xc3\xa9x";
    for (int iter = 0; iter < 200; iter++) {
        char text[64];
        int n = (int)(rng_next() % 28);
        for (int i = 0; i < n; i++)
            text[i] = alphabet[rng_next() % (sizeof alphabet - 1)];
        text[n] = '\0';
        int32_t want[1024];
        int64_t n_want = n ? brute_spm(&s, text, want) : 0;
        lm_tok_ids got = encode(tok, text, (size_t)n, 0);
        char a[4096], b[4096];
        ids_str(want, n_want, a, sizeof a);
        ids_str(got.ids, got.n, b, sizeof b);
        ck_assert_msg(same_ids(got.ids, got.n, want, n_want),
                      "'%s': got%s want%s", text, b, a);
        lm_tok_ids_free(&got);
    }
    lm_tok_free(tok);
}
END_TEST

START_TEST(test_spm_bytes_and_edges)
{
    rng_state = 7;
    static synth s;
    synth_spm(&s, 1);
    lm_tok *tok = synth_spm_tok(&s);
    /* Empty: nothing, or just BOS/EOS. */
    lm_tok_ids ids = encode(tok, "", 0, 0);
    ck_assert_int_eq(ids.n, 0);
    ck_assert_int_eq(lm_tok_encode(tok, NULL, 0, LM_TOK_ADD_BOS | LM_TOK_ADD_EOS, &ids, NULL),
                     DL_OK);
    ck_assert_int_eq(ids.n, 2);
    ck_assert_int_eq(ids.ids[0], 1);
    ck_assert_int_eq(ids.ids[1], 2);
    lm_tok_ids_free(&ids);
    /* Unknown characters and malformed UTF-8 come back byte for byte. */
    static const char raw[] = "a\xff\x80z\xe6\x97\xa5\xc3 \x00q";
    ids = encode(tok, raw, sizeof raw - 1, 0);
    char *out;
    size_t out_len;
    ck_assert_int_eq(lm_tok_decode(tok, ids.ids, ids.n, 0, &out, &out_len, NULL), DL_OK);
    ck_assert_uint_eq(out_len, sizeof raw);
    ck_assert(out[0] == ' ' && !memcmp(out + 1, raw, sizeof raw - 1));
    free(out);
    ck_assert_int_eq(
        lm_tok_decode(tok, ids.ids, ids.n, LM_TOK_DECODE_STRIP_SPACE, &out, &out_len, NULL), DL_OK);
    ck_assert(out_len == sizeof raw - 1 && !memcmp(out, raw, out_len));
    free(out);
    /* 'z' is no token: its byte token <0x7A> stands for it. */
    int32_t z = (int32_t)synth_find(&s, "<0x7A>", 6);
    int seen = 0;
    for (int64_t i = 0; i < ids.n; i++)
        seen |= ids.ids[i] == z;
    ck_assert(seen);
    lm_tok_ids_free(&ids);
    /* Out-of-range ids are refused by decode; pieces of specials are "". */
    int32_t badid = 99999;
    dl_error err = {0};
    ck_assert_int_eq(lm_tok_decode(tok, &badid, 1, 0, &out, &out_len, &err), DL_ERR_INPUT);
    size_t len;
    ck_assert_ptr_null(lm_tok_piece(tok, -1, 0, &len));
    ck_assert_ptr_nonnull(lm_tok_piece(tok, 1, 0, &len)); /* CONTROL: "" */
    ck_assert_uint_eq(len, 0);
    ck_assert(!memcmp(lm_tok_piece(tok, 1, LM_TOK_DECODE_SPECIAL, &len), "<s>", 3) && len == 3);
    lm_tok_free(tok);
}
END_TEST

START_TEST(test_spm_unknown_without_bytes)
{
    rng_state = 9;
    static synth s;
    synth_spm(&s, 0);
    lm_tok *tok = synth_spm_tok(&s);
    lm_tok_ids ids = encode(tok, "z", 1, 0);
    /* "▁z": "▁" is a token, "z" has no byte token: the unknown token. */
    ck_assert_int_eq(ids.n, 2);
    ck_assert_int_eq(ids.ids[0], synth_find(&s, "\xe2\x96\x81", 3));
    ck_assert_int_eq(ids.ids[1], 0);
    lm_tok_ids_free(&ids);
    lm_tok_free(tok);
}
END_TEST

START_TEST(test_special_tokens)
{
    rng_state = 11;
    static synth s;
    synth_spm(&s, 1);
    int ud = synth_add(&s, "<tool>", 6, 0, LM_TOK_TYPE_USER_DEFINED);
    lm_tok *tok = synth_spm_tok(&s);
    /* USER_DEFINED text is always matched; the text after it gets the
     * space prefix again.  CONTROL text only with LM_TOK_PARSE_SPECIAL. */
    lm_tok_ids a = encode(tok, "ab<tool>ab</s>", 14, 0);
    lm_tok_ids p1 = encode(tok, "ab", 2, 0);
    lm_tok_ids p2 = encode(tok, "ab</s>", 6, 0);
    ck_assert_int_eq(a.n, p1.n + 1 + p2.n);
    ck_assert(!memcmp(a.ids, p1.ids, (size_t)p1.n * 4));
    ck_assert_int_eq(a.ids[p1.n], ud);
    ck_assert(!memcmp(a.ids + p1.n + 1, p2.ids, (size_t)p2.n * 4));
    lm_tok_ids b = encode(tok, "ab</s>", 6, LM_TOK_PARSE_SPECIAL);
    ck_assert_int_eq(b.n, p1.n + 1);
    ck_assert_int_eq(b.ids[p1.n], 2);
    lm_tok_ids_free(&a);
    lm_tok_ids_free(&b);
    lm_tok_ids_free(&p1);
    lm_tok_ids_free(&p2);
    lm_tok_free(tok);
}
END_TEST

/* BPE over the 256 GPT-2 characters plus random merges of existing tokens. */
static void synth_bpe(synth *s)
{
    memset(s, 0, sizeof *s);
    for (int b = 0; b < 256; b++) {
        char t[4];
        size_t n = lm_unicode_encode(lm_unicode_byte_to_cp((unsigned char)b), t);
        synth_add(s, t, n, 0, LM_TOK_TYPE_NORMAL);
    }
    static const char base[] = "abcd";
    while (s->n_merges < 150) {
        /* Pairs drawn from a, b, c, d and the tokens merged so far. */
        int pool = 4 + s->n_merges;
        int i = (int)(rng_next() % (unsigned)pool), j = (int)(rng_next() % (unsigned)pool);
        int li = i < 4 ? base[i] : 256 + (i - 4), ri = j < 4 ? base[j] : 256 + (j - 4);
        const lm_tok_bytes *l = &s->tokens[li], *r = &s->tokens[ri];
        char cat[32];
        if (l->len + r->len > 15)
            continue;
        memcpy(cat, l->ptr, l->len);
        memcpy(cat + l->len, r->ptr, r->len);
        if (synth_add(s, cat, l->len + r->len, 0, LM_TOK_TYPE_NORMAL) < 0)
            continue;
        char *m = s->merge_text[s->n_merges];
        memcpy(m, l->ptr, l->len);
        m[l->len] = ' ';
        memcpy(m + l->len + 1, r->ptr, r->len);
        s->merges[s->n_merges] = (lm_tok_bytes){m, l->len + 1 + r->len};
        s->n_merges++;
    }
}

static int64_t brute_bpe(const synth *s, const char *word, int32_t *out)
{
    size_t start[256], len[256], n = strlen(word);
    int k = 0;
    for (size_t i = 0; i < n; i++) { /* a..d map to themselves */
        start[k] = i;
        len[k++] = 1;
    }
    for (;;) {
        int best = -1, best_rank = 0;
        for (int i = 0; i + 1 < k; i++) {
            for (int r = 0; r < s->n_merges; r++) {
                const lm_tok_bytes *m = &s->merges[r];
                if (m->len == len[i] + len[i + 1] + 1 &&
                    !memcmp(m->ptr, word + start[i], len[i]) && m->ptr[len[i]] == ' ' &&
                    !memcmp(m->ptr + len[i] + 1, word + start[i + 1], len[i + 1])) {
                    if (best < 0 || r < best_rank) {
                        best = i;
                        best_rank = r;
                    }
                    break;
                }
            }
        }
        if (best < 0)
            break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (size_t)(k - best - 2) * sizeof *start);
        memmove(len + best + 1, len + best + 2, (size_t)(k - best - 2) * sizeof *len);
        k--;
    }
    for (int i = 0; i < k; i++)
        out[i] = synth_find(s, word + start[i], len[i]);
    return k;
}

static lm_tok *synth_bpe_tok(const synth *s, const char *pre)
{
    lm_tok_vocab v;
    lm_tok_vocab_init(&v);
    v.kind = LM_TOK_KIND_BPE;
    v.pre = pre;
    v.n_tokens = s->n;
    v.tokens = s->tokens;
    v.n_merges = s->n_merges;
    v.merges = s->merges;
    dl_error err = {0};
    lm_tok *tok = lm_tok_new(&v, &err);
    ck_assert_msg(tok != NULL, "%s", err.message);
    return tok;
}

START_TEST(test_bpe_matches_brute_force)
{
    rng_state = 3;
    static synth s;
    synth_bpe(&s);
    lm_tok *tok = synth_bpe_tok(&s, "gpt-2");
    for (int iter = 0; iter < 200; iter++) {
        char word[64];
        int n = 1 + (int)(rng_next() % 28);
        for (int i = 0; i < n; i++)
            word[i] = "abcd"[rng_next() % 4];
        word[n] = '\0';
        int32_t want[64];
        int64_t n_want = brute_bpe(&s, word, want);
        lm_tok_ids got = encode(tok, word, (size_t)n, 0);
        char a[2048], b[2048];
        ids_str(want, n_want, a, sizeof a);
        ids_str(got.ids, got.n, b, sizeof b);
        ck_assert_msg(same_ids(got.ids, got.n, want, n_want),
                      "'%s': got%s want%s", word, b, a);
        lm_tok_ids_free(&got);
    }
    /* Malformed UTF-8 becomes U+FFFD (EF BF BD), as in llama.cpp. */
    lm_tok_ids ids = encode(tok, "a\xff", 2, 0);
    char *out;
    size_t out_len;
    ck_assert_int_eq(lm_tok_decode(tok, ids.ids, ids.n, 0, &out, &out_len, NULL), DL_OK);
    ck_assert_uint_eq(out_len, 4);
    ck_assert(!memcmp(out, "a\xef\xbf\xbd", 4));
    free(out);
    lm_tok_ids_free(&ids);
    lm_tok_free(tok);
}
END_TEST

START_TEST(test_long_inputs)
{
    /* 256 KiB in one word, then one run of spaces: each is a single merge
     * problem; a quadratic loop (~10^11 steps) would not finish in time. */
    rng_state = 5;
    static synth s, t;
    synth_bpe(&s);
    synth_spm(&t, 1);
    lm_tok *bpe = synth_bpe_tok(&s, "gpt-2");
    lm_tok *spm = synth_spm_tok(&t);
    size_t n = 1u << 18;
    char *text = malloc(n);
    ck_assert(text != NULL);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++)
            text[i] = pass == 0 ? "abcd"[rng_next() % 4] : ' ';
        lm_tok *toks[2] = {bpe, spm};
        for (int k = 0; k < 2; k++) {
            lm_tok_ids ids = encode(toks[k], text, n, 0);
            char *out;
            size_t out_len;
            ck_assert_int_eq(lm_tok_decode(toks[k], ids.ids, ids.n, LM_TOK_DECODE_STRIP_SPACE,
                                           &out, &out_len, NULL),
                             DL_OK);
            ck_assert(out_len == n && !memcmp(out, text, n));
            ck_assert_int_le(ids.n, (int64_t)n + 1);
            free(out);
            lm_tok_ids_free(&ids);
        }
    }
    free(text);
    lm_tok_free(bpe);
    lm_tok_free(spm);
}
END_TEST

START_TEST(test_bad_vocab)
{
    rng_state = 13;
    static synth s;
    synth_bpe(&s);
    lm_tok_vocab v;
    dl_error err = {0};
    lm_tok_vocab_init(&v);
    ck_assert_ptr_null(lm_tok_new(&v, &err)); /* no tokens */
    ck_assert_int_eq(err.code, DL_ERR_INPUT);
    ck_assert_str_eq(err.field, "tokenizer.ggml.tokens");
    v.kind = LM_TOK_KIND_BPE;
    v.n_tokens = s.n;
    v.tokens = s.tokens;
    dl_error_clear(&err);
    ck_assert_ptr_null(lm_tok_new(&v, &err)); /* BPE without merges */
    ck_assert_str_eq(err.field, "tokenizer.ggml.merges");
    v.n_merges = s.n_merges;
    v.merges = s.merges;
    v.pre = "no-such-pre";
    dl_error_clear(&err);
    ck_assert_ptr_null(lm_tok_new(&v, &err));
    ck_assert_int_eq(err.code, DL_ERR_UNSUPPORTED);
    v.pre = NULL;
    v.eos_id = (int32_t)s.n;
    dl_error_clear(&err);
    ck_assert_ptr_null(lm_tok_new(&v, &err));
    ck_assert_str_eq(err.field, "tokenizer.ggml.eos_token_id");
    v.eos_id = -1;
    lm_tok_bytes saved = s.tokens[5];
    s.tokens[5].len = 0;
    dl_error_clear(&err);
    ck_assert_ptr_null(lm_tok_new(&v, &err));
    ck_assert_int_eq(err.code, DL_ERR_INPUT);
    s.tokens[5] = saved;
    int32_t types[MAXV] = {0};
    types[3] = 9;
    v.types = types;
    dl_error_clear(&err);
    ck_assert_ptr_null(lm_tok_new(&v, &err));
    ck_assert_str_eq(err.field, "tokenizer.ggml.token_type");
    lm_tok_free(NULL);
    lm_tok_ids_free(NULL);
    ck_assert_int_eq(lm_tok_encode(NULL, "a", 1, 0, NULL, NULL), DL_ERR_USAGE);
}
END_TEST

/* ---- tiny GGUF files built in memory (hostile-input tests) ---------------------- */

/* Starts a GGUF v3 file with no tensors (gguf_build.h); g_load sets its key
 * count from the keys written. */
static void g_begin(gb_writer *w)
{
    gb_writer_init_mem(w);
    gb_header(w, 3, 0, 0);
}

/* Opens the file w holds and loads its tokenizer; frees w. */
static lm_tok *g_load(gb_writer *w, dl_error *err)
{
    gb_header_counts(w, 0, (uint64_t)w->n_kv);
    ck_assert(!w->failed);
    lm_gguf *g = lm_gguf_open_buffer(w->p, w->n, err);
    ck_assert_msg(g != NULL, "%s", err->message);
    lm_tok *tok = lm_tok_from_gguf(g, err);
    lm_gguf_free(g);
    gb_writer_free(w);
    return tok;
}

START_TEST(test_gguf_loader)
{
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a",
                                       "\xe2\x96\x81" "a"};
    static const char *const bpe_toks[] = {"a", "b", "ab"};
    static const char *const merges[] = {"a b"};
    dl_error err;
    /* A minimal SPM vocabulary: tokens only, llama.cpp's default ids. */
    gb_writer kv;
    g_begin(&kv);
    gb_kv_str(&kv, "tokenizer.ggml.model", "llama");
    gb_kv_arr_str(&kv, "tokenizer.ggml.tokens", toks, 6);
    dl_error_clear(&err);
    lm_tok *tok = g_load(&kv, &err);
    ck_assert_msg(tok != NULL, "%s", err.message);
    ck_assert_int_eq(lm_tok_bos(tok), 1);
    ck_assert_int_eq(lm_tok_eos(tok), 2);
    lm_tok_ids ids = encode(tok, "a", 1, 0);
    ck_assert_int_eq(ids.n, 1);
    ck_assert_int_eq(ids.ids[0], 5);
    lm_tok_ids_free(&ids);
    lm_tok_free(tok);
    /* Unsupported model, missing tokens, mistyped scores, wrong count. */
    struct {
        const char *model;
        int tokens;
        uint32_t score_type;
        int n_scores;
        dl_status want;
        const char *field;
    } cases[] = {
        {"bert", 1, 0, 0, DL_ERR_UNSUPPORTED, "tokenizer.ggml.model"},
        {"llama", 0, 0, 0, DL_ERR_INPUT, "tokenizer.ggml.tokens"},
        {"llama", 1, LM_GGUF_TYPE_STRING, 6, DL_ERR_INPUT, "tokenizer.ggml.scores"},
        {"llama", 1, LM_GGUF_TYPE_FLOAT32, 5, DL_ERR_INPUT, "tokenizer.ggml.scores"},
        {"gpt2", 1, 0, 0, DL_ERR_INPUT, "tokenizer.ggml.merges"},
        {NULL, 1, 0, 0, DL_ERR_INPUT, "tokenizer.ggml.model"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gb_writer b;
        g_begin(&b);
        if (cases[c].model)
            gb_kv_str(&b, "tokenizer.ggml.model", cases[c].model);
        if (cases[c].tokens)
            gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, 6);
        if (cases[c].n_scores) {
            gb_kv_arr(&b, "tokenizer.ggml.scores", cases[c].score_type,
                      (uint64_t)cases[c].n_scores);
            for (int i = 0; i < cases[c].n_scores; i++) {
                if (cases[c].score_type == LM_GGUF_TYPE_STRING)
                    gb_str(&b, "x");
                else
                    gb_u32(&b, 0);
            }
        }
        dl_error_clear(&err);
        ck_assert_ptr_null(g_load(&b, &err));
        ck_assert_msg(err.code == cases[c].want, "case %zu: %s", c, err.message);
        ck_assert_msg(!strcmp(err.field, cases[c].field), "case %zu: field '%s'", c, err.field);
    }
    /* A BPE vocabulary without a pre key gets "default". */
    gb_writer b;
    g_begin(&b);
    gb_kv_str(&b, "tokenizer.ggml.model", "gpt2");
    gb_kv_arr_str(&b, "tokenizer.ggml.tokens", bpe_toks, 3);
    gb_kv_arr_str(&b, "tokenizer.ggml.merges", merges, 1);
    dl_error_clear(&err);
    tok = g_load(&b, &err);
    ck_assert_msg(tok != NULL, "%s", err.message);
    ck_assert_str_eq(lm_tok_pre_name(tok), "default");
    ids = encode(tok, "ab", 2, 0);
    ck_assert_int_eq(ids.n, 1);
    ck_assert_int_eq(ids.ids[0], 2);
    lm_tok_ids_free(&ids);
    lm_tok_free(tok);
}
END_TEST

/* ---- ../shared: llama.cpp's suite and the models' golden files ------------------ */

#define SEP "\n__ggml_vocab_test__\n"

/* Checks every case of NAME.inp/.out against the tokenizer; also that
 * decoding gives the text back (SPM: minus the space prefix).  Returns the
 * number of cases. */
static int check_suite(const lm_tok *tok, const char *vocab_name, const char *label)
{
    char rel[256];
    size_t inp_len, out_len;
    snprintf(rel, sizeof rel, "tokenizers/vocab/ggml-vocab-%s.gguf.inp", vocab_name);
    char *inp = read_file(dl_test_shared(rel), &inp_len);
    snprintf(rel, sizeof rel, "tokenizers/vocab/ggml-vocab-%s.gguf.out", vocab_name);
    char *out = read_file(dl_test_shared(rel), &out_len);
    char *text = inp, *line = out;
    int n_cases = 0, n_bad = 0;
    char first_bad[2048] = "";
    for (;;) {
        char *sep = strstr(text, SEP);
        if (!sep)
            break;
        char *eol = strchr(line, '\n');
        ck_assert_msg(eol != NULL, "%s: .out has fewer lines than .inp cases", label);
        *eol = '\0';
        lm_tok_ids want = {0};
        for (char *p = line, *end; *p; p = end) {
            long id = strtol(p, &end, 10);
            if (end == p)
                break;
            lm_tok_ids_push(&want, (int32_t)id, NULL);
        }
        size_t len = (size_t)(sep - text);
        lm_tok_ids got = encode(tok, text, len, 0);
        if (!same_ids(got.ids, got.n, want.ids, want.n)) {
            if (n_bad++ == 0) {
                char a[900], b[900];
                ids_str(got.ids, got.n, a, sizeof a);
                ids_str(want.ids, want.n, b, sizeof b);
                snprintf(first_bad, sizeof first_bad, "case %d '%.*s':\n got%s\nwant%s", n_cases,
                         (int)(len < 60 ? len : 60), text, a, b);
            }
        }
        char *dec;
        size_t dec_len;
        ck_assert_int_eq(lm_tok_decode(tok, got.ids, got.n, LM_TOK_DECODE_STRIP_SPACE, &dec,
                                       &dec_len, NULL),
                         DL_OK);
        ck_assert_msg(dec_len == len && !memcmp(dec, text, len), "%s case %d: no round trip",
                      label, n_cases);
        free(dec);
        lm_tok_ids_free(&got);
        lm_tok_ids_free(&want);
        text = sep + strlen(SEP);
        line = eol + 1;
        n_cases++;
    }
    ck_assert_msg(n_bad == 0, "%s: %d of %d cases differ; first: %s", label, n_bad, n_cases,
                  first_bad);
    free(inp);
    free(out);
    return n_cases;
}

static const struct {
    const char *gguf, *cases, *pre;
} suite[] = {
    {"tokenizers/vocab/ggml-vocab-llama-spm.gguf", "llama-spm", ""},
    {"tokenizers/vocab/ggml-vocab-phi-3.gguf", "phi-3", ""},
    {"tokenizers/vocab/ggml-vocab-gpt-2.gguf", "gpt-2", "gpt2"},
    {"tokenizers/vocab/ggml-vocab-mpt.gguf", "mpt", "gpt2"},
    {"tokenizers/vocab/ggml-vocab-starcoder.gguf", "starcoder", "smollm"},
    {"tokenizers/vocab/ggml-vocab-refact.gguf", "refact", "smollm"},
    {"tokenizers/vocab/ggml-vocab-falcon.gguf", "falcon", "falcon"},
    {"tokenizers/vocab/ggml-vocab-deepseek-coder.gguf", "deepseek-coder", "deepseek-coder"},
    {"tokenizers/vocab/ggml-vocab-deepseek-llm.gguf", "deepseek-llm", "deepseek-llm"},
    {"tokenizers/reconstructed/ggml-vocab-llama-bpe.reconstructed.gguf", "llama-bpe", "llama3"},
    {"tokenizers/reconstructed/ggml-vocab-qwen2.reconstructed.gguf", "qwen2", "qwen2"},
};

START_TEST(test_llama_cpp_suite)
{
    lm_tok *tok = load_tok(suite[_i].gguf);
    ck_assert_str_eq(lm_tok_pre_name(tok), suite[_i].pre);
    ck_assert_int_eq(check_suite(tok, suite[_i].cases, suite[_i].cases), 46);
    lm_tok_free(tok);
}
END_TEST

/* Vocabularies without expected ids: they load, and decoding inverts
 * encoding on every suite string. */
START_TEST(test_round_trip_only)
{
    static const char *const files[] = {"tokenizers/vocab/ggml-vocab-gpt-neox.gguf",
                                        "tokenizers/vocab/ggml-vocab-baichuan.gguf"};
    size_t inp_len;
    char *inp = read_file(dl_test_shared("tokenizers/vocab/ggml-vocab-gpt-2.gguf.inp"), &inp_len);
    for (int f = 0; f < 2; f++) {
        lm_tok *tok = load_tok(files[f]);
        int n = 0;
        for (char *text = inp, *sep; (sep = strstr(text, SEP)); text = sep + strlen(SEP), n++) {
            size_t len = (size_t)(sep - text);
            lm_tok_ids ids = encode(tok, text, len, 0);
            char *dec;
            size_t dec_len;
            ck_assert_int_eq(lm_tok_decode(tok, ids.ids, ids.n, LM_TOK_DECODE_STRIP_SPACE, &dec,
                                           &dec_len, NULL),
                             DL_OK);
            ck_assert_msg(dec_len == len && !memcmp(dec, text, len), "%s case %d", files[f], n);
            free(dec);
            lm_tok_ids_free(&ids);
        }
        ck_assert_int_eq(n, 46);
        lm_tok_free(tok);
    }
    free(inp);
}
END_TEST

static const char *const golden[][2] = {
    {"models/stories260K.gguf", "models/golden/stories260K/tokenize.json"},
    {"models/delift-mini-f32.gguf", "models/golden/delift-mini/tokenize.json"},
};

START_TEST(test_model_golden)
{
    lm_tok *tok = load_tok(golden[_i][0]);
    ck_assert_int_eq(lm_tok_kind_of(tok), LM_TOK_KIND_SPM);
    json_error_t jerr;
    json_t *root = json_load_file(dl_test_shared(golden[_i][1]), 0, &jerr);
    ck_assert_msg(root != NULL, "%s", jerr.text);
    json_t *cases = json_object_get(root, "cases");
    ck_assert_int_eq(json_array_size(cases), 40);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        const char *text = json_string_value(json_object_get(cs, "text"));
        size_t len = json_string_length(json_object_get(cs, "text"));
        json_t *want = json_object_get(cs, "ids");
        lm_tok_ids got = encode(tok, text, len, 0);
        ck_assert_msg((size_t)got.n == json_array_size(want), "%s case %zu '%s': %lld ids, want %zu",
                      golden[_i][1], c, text, (long long)got.n, json_array_size(want));
        for (int64_t k = 0; k < got.n; k++)
            ck_assert_msg(got.ids[k] == json_integer_value(json_array_get(want, (size_t)k)),
                          "%s case %zu '%s' id %lld", golden[_i][1], c, text, (long long)k);
        lm_tok_ids_free(&got);
    }
    json_decref(root);
    /* delift-mini: bos 1, eos 2, unk 0 (README); BOS/EOS on request only. */
    ck_assert_int_eq(lm_tok_bos(tok), 1);
    ck_assert_int_eq(lm_tok_eos(tok), 2);
    ck_assert_int_eq(lm_tok_unk(tok), 0);
    lm_tok_ids ids = encode(tok, "a", 1, LM_TOK_ADD_BOS | LM_TOK_ADD_EOS);
    ck_assert_int_eq(ids.ids[0], 1);
    ck_assert_int_eq(ids.ids[ids.n - 1], 2);
    lm_tok_ids_free(&ids);
    lm_tok_free(tok);
}
END_TEST

int main(void)
{
    int have_shared = dl_test_shared("tokenizers/vocab") && dl_test_shared("models/golden");
    Suite *s = suite_create("lm_tok");
    TCase *unit = tcase_create("unit");
    tcase_set_timeout(unit, 60);
    tcase_add_test(unit, test_unicode_classes);
    tcase_add_test(unit, test_unicode_utf8);
    tcase_add_test(unit, test_unicode_gpt2_bytes);
    tcase_add_test(unit, test_spm_matches_brute_force);
    tcase_add_test(unit, test_spm_bytes_and_edges);
    tcase_add_test(unit, test_spm_unknown_without_bytes);
    tcase_add_test(unit, test_special_tokens);
    tcase_add_test(unit, test_bpe_matches_brute_force);
    tcase_add_test(unit, test_long_inputs);
    tcase_add_test(unit, test_bad_vocab);
    tcase_add_test(unit, test_gguf_loader);
    suite_add_tcase(s, unit);
    if (have_shared) {
        TCase *shared = tcase_create("shared");
        tcase_set_timeout(shared, 120);
        tcase_add_loop_test(shared, test_llama_cpp_suite, 0, (int)(sizeof suite / sizeof suite[0]));
        tcase_add_test(shared, test_round_trip_only);
        tcase_add_loop_test(shared, test_model_golden, 0, 2);
        suite_add_tcase(s, shared);
    }
    int rc = dl_test_run(s);
    if (rc == EXIT_SUCCESS && !have_shared) {
        printf("SKIP: ../shared/tokenizers or ../shared/models absent (unit tests passed)\n");
        return DL_TEST_SKIP;
    }
    return rc;
}
