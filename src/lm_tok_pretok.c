/* lm_tok_pretok.c: the BPE pre-tokenizers, hand-written equivalents of the
 * regex lists llama.cpp applies per tokenizer.ggml.pre (no regex engine).
 *
 * A list is applied in sequence: each stage runs inside every piece the
 * previous stage left, and text a stage does not match stays a piece of its
 * own.  Pieces are lengths in code points.  Two stages are llama.cpp's
 * custom matchers, ported by behaviour:
 *   GPT2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
 *   LLAMA3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (QWEN2 is LLAMA3 with \p{N} instead of \p{N}{1,3}); the others are a
 * character class matched once, as runs, or as runs after an optional
 * whitespace.  \s is Unicode White_Space, \p{X} the general category (see
 * lm_unicode.h); a whitespace character never counts as a member of a
 * literal class, as in llama.cpp, which rewrites non-ASCII whitespace to
 * U+000B before running std::regex.
 */
#include "config.h"

#include <string.h>

#include "lm_tok_int.h"
#include "lm_unicode.h"

/* Class of a position outside the piece being split: no category, no bit. */
#define OUTSIDE 0x10u

static int is_letter(unsigned c) { return c != OUTSIDE && (c & 7u) == LM_UNICODE_LETTER; }
static int is_number(unsigned c) { return c != OUTSIDE && (c & 7u) == LM_UNICODE_NUMBER; }
static int is_space(unsigned c) { return c != OUTSIDE && (c & LM_UNICODE_WHITESPACE); }
/* [^\s\p{L}\p{N}] inside the piece. */
static int is_other(unsigned c)
{
    return c != OUTSIDE && !(c & LM_UNICODE_WHITESPACE) && !is_letter(c) && !is_number(c);
}

typedef struct piece {
    const uint32_t *cps;
    const uint8_t *cls;
    int64_t lo, hi; /* the piece being split: [lo, hi) */
    int64_t *out;   /* lengths of the new pieces */
    int64_t n_out;
    int64_t done;   /* end of the last emitted piece */
} piece;

static unsigned cls_at(const piece *p, int64_t i)
{
    return (i >= p->lo && i < p->hi) ? p->cls[i] : OUTSIDE;
}

static uint32_t cp_at(const piece *p, int64_t i)
{
    return (i >= p->lo && i < p->hi) ? p->cps[i] : 0xFFFFFFFFu;
}

/* Ends a piece at end (nothing when empty). */
static void emit(piece *p, int64_t end)
{
    if (end > p->done) {
        p->out[p->n_out++] = end - p->done;
        p->done = end;
    }
}

static uint32_t ascii_lower(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at pos: returns the match length (0 when none). */
static int64_t contraction(const piece *p, int64_t pos, int any_case)
{
    if (p->cps[pos] != '\'' || pos + 1 >= p->hi)
        return 0;
    uint32_t a = p->cps[pos + 1], b = pos + 2 < p->hi ? p->cps[pos + 2] : 0;
    if (any_case) {
        a = ascii_lower(a);
        b = ascii_lower(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S) then \s+ at pos: the new position, or pos when no whitespace. */
static int64_t spaces(const piece *p, int64_t pos)
{
    int64_t n = 0;
    while (is_space(cls_at(p, pos + n)))
        n++;
    if (n > 1 && pos + n < p->hi)
        return pos + n - 1; /* leave the last one to prefix the next word */
    return pos + n;
}

static void split_gpt2(piece *p)
{
    for (int64_t pos = p->lo; pos < p->hi;) {
        uint32_t cp = p->cps[pos];
        int64_t k = contraction(p, pos, 0);
        if (k) {
            emit(p, pos += k);
            continue;
        }
        unsigned c2 = cp == ' ' ? cls_at(p, pos + 1) : p->cls[pos];
        int (*run)(unsigned) = is_letter(c2) ? is_letter
                             : is_number(c2) ? is_number
                             : is_other(c2)  ? is_other
                                             : NULL;
        if (run) { /* ' ?' then a run of letters, digits or other */
            pos += cp == ' ';
            while (run(cls_at(p, pos)))
                pos++;
            emit(p, pos);
            continue;
        }
        int64_t next = spaces(p, pos);
        emit(p, pos = next > pos ? next : pos + 1);
    }
}

static void split_llama3(piece *p, int64_t max_digits)
{
    for (int64_t pos = p->lo; pos < p->hi;) {
        uint32_t cp = p->cps[pos];
        unsigned c = p->cls[pos];
        int64_t k = contraction(p, pos, 1);
        if (k) {
            emit(p, pos += k);
            continue;
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (cp != '\r' && cp != '\n' && !is_number(c) &&
            (is_letter(c) || is_letter(cls_at(p, pos + 1)))) {
            pos++;
            while (is_letter(cls_at(p, pos)))
                pos++;
            emit(p, pos);
            continue;
        }
        if (is_number(c)) { /* \p{N}{1,max_digits}, repeatedly */
            int64_t start = pos;
            while (is_number(cls_at(p, pos)))
                if (++pos - start >= max_digits) {
                    emit(p, pos);
                    start = pos;
                }
            emit(p, pos);
            continue;
        }
        /* ' ?[^\s\p{L}\p{N}]+[\r\n]*'; a lone space at the end also lands
         * here, as in llama.cpp (same result as the whitespace rules). */
        unsigned c2 = cp == ' ' ? cls_at(p, pos + 1) : c;
        if (!(c2 & LM_UNICODE_WHITESPACE) && !is_letter(c2) && !is_number(c2)) {
            pos += cp == ' ';
            while (is_other(cls_at(p, pos)))
                pos++;
            while (cp_at(p, pos) == '\r' || cp_at(p, pos) == '\n')
                pos++;
            emit(p, pos);
            continue;
        }
        /* \s*[\r\n]+ : whitespace up to its last line break */
        int64_t n = 0, after_break = -1;
        for (; is_space(cls_at(p, pos + n)); n++)
            if (p->cps[pos + n] == '\r' || p->cps[pos + n] == '\n')
                after_break = pos + n + 1;
        if (after_break > 0) {
            emit(p, pos = after_break);
            continue;
        }
        int64_t next = spaces(p, pos);
        emit(p, pos = next > pos ? next : pos + 1);
    }
}

/* ---- character classes of the simple stages ------------------------------ */

typedef enum pred {
    PRED_NUMBER,         /* \p{N} */
    PRED_LETTER,         /* \p{L} */
    PRED_PUNCT,          /* \p{P} */
    PRED_PUNCT_DEFAULT,  /* [\p{P}\$\+<=>\^~\|] */
    PRED_PUNCT_FALCON,   /* [\p{P}\$\+<=>\^~\|`] */
    PRED_CRLF,           /* [\r\n] */
    PRED_CJK,            /* [一-龥ࠀ-一가-퟿] */
    PRED_DS_LETTER,      /* DEEPSEEK_LLM's cased-letter list */
    PRED_DS_PUNCT        /* [!-/:-~！-／：-～‘-‟　-。] */
} pred;

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

/* From llama.cpp's DEEPSEEK_LLM regex (MIT): tests/gen/gen_pretok_classes.py
 * prints this list from ../shared/tokenizers/pretokenizer-regexes.json. */
static const cp_range ds_letters[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6},
    {0x00D8, 0x00F6}, {0x00F8, 0x01BA}, {0x01BC, 0x01BF}, {0x01C4, 0x0293},
    {0x0295, 0x02AF}, {0x0370, 0x0373}, {0x0376, 0x0376}, {0x0377, 0x0377},
    {0x037B, 0x037D}, {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A},
    {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5}, {0x03F7, 0x0481},
    {0x048A, 0x052F}, {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5},
    {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B},
    {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139},
    {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2183},
    {0x2184, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF2}, {0x2CF3, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B},
    {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A},
    {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2},
    {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

static const cp_range ds_punct[] = {
    {0x0021, 0x002F}, {0x003A, 0x007E}, {0x2018, 0x201F},
    {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};

static const cp_range cjk[] = {{0x0800, 0x9FA5}, {0xAC00, 0xD7FF}};

static int in_ranges(const cp_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int matches(pred k, uint32_t cp, unsigned c)
{
    if (c == OUTSIDE || (c & LM_UNICODE_WHITESPACE))
        return 0; /* no class here contains whitespace */
    switch (k) {
    case PRED_NUMBER: return is_number(c);
    case PRED_LETTER: return is_letter(c);
    case PRED_PUNCT: return (c & 7u) == LM_UNICODE_PUNCTUATION;
    case PRED_PUNCT_DEFAULT:
    case PRED_PUNCT_FALCON:
        if ((c & 7u) == LM_UNICODE_PUNCTUATION)
            return 1;
        if (cp == '`')
            return k == PRED_PUNCT_FALCON;
        return cp != 0 && cp < 0x80 && strchr("$+<=>^~|", (int)cp) != NULL;
    case PRED_CRLF: return 0; /* whitespace: handled by the caller */
    case PRED_CJK: return in_ranges(cjk, N_OF(cjk), cp);
    case PRED_DS_LETTER: return in_ranges(ds_letters, N_OF(ds_letters), cp);
    case PRED_DS_PUNCT: return in_ranges(ds_punct, N_OF(ds_punct), cp);
    }
    return 0;
}

static int match_at(const piece *p, pred k, int64_t i)
{
    if (i < p->lo || i >= p->hi)
        return 0;
    if (k == PRED_CRLF)
        return p->cps[i] == '\r' || p->cps[i] == '\n';
    return matches(k, p->cps[i], p->cls[i]);
}

/* ---- stages ----------------------------------------------------------------- */

typedef enum stage_kind {
    ST_END = 0,
    ST_GPT2,
    ST_LLAMA3,      /* arg: the longest digit run */
    ST_ONE,         /* X      : each member alone */
    ST_RUN,         /* X+     */
    ST_SPACE_RUN,   /* \s?X+  */
    ST_DIGITS3,     /* [0-9][0-9][0-9] */
    ST_TRAIL_SPACE  /* \s+$   */
} stage_kind;

typedef struct stage {
    stage_kind kind;
    int arg; /* pred, or the digit run of ST_LLAMA3 */
} stage;

static void split_class(piece *p, stage_kind kind, pred k)
{
    for (int64_t pos = p->lo; pos < p->hi;) {
        int64_t start = pos;
        if (kind == ST_ONE && match_at(p, k, pos)) {
            pos++;
        } else if (kind != ST_ONE && match_at(p, k, pos)) {
            while (match_at(p, k, pos))
                pos++;
        } else if (kind == ST_SPACE_RUN && is_space(p->cls[pos]) && match_at(p, k, pos + 1)) {
            pos++;
            while (match_at(p, k, pos))
                pos++;
        } else {
            pos++;
            continue; /* unmatched: joins the gap before the next match */
        }
        emit(p, start);
        emit(p, pos);
    }
    emit(p, p->hi);
}

static int ascii_digit(const piece *p, int64_t i)
{
    return i < p->hi && p->cps[i] >= '0' && p->cps[i] <= '9';
}

static void run_stage(piece *p, const stage *s)
{
    switch (s->kind) {
    case ST_GPT2: split_gpt2(p); break;
    case ST_LLAMA3: split_llama3(p, s->arg); break;
    case ST_ONE:
    case ST_RUN:
    case ST_SPACE_RUN: split_class(p, s->kind, (pred)s->arg); break;
    case ST_DIGITS3:
        for (int64_t pos = p->lo; pos < p->hi;) {
            if (ascii_digit(p, pos) && ascii_digit(p, pos + 1) && ascii_digit(p, pos + 2)) {
                emit(p, pos);
                emit(p, pos += 3);
            } else {
                pos++;
            }
        }
        break;
    case ST_TRAIL_SPACE: {
        int64_t t = p->hi;
        while (t > p->lo && is_space(p->cls[t - 1]))
            t--;
        emit(p, t);
        break;
    }
    case ST_END: break;
    }
    emit(p, p->hi);
}

/* The lists, after llama.cpp's llm_tokenizer_bpe constructor. */
static const stage pre_default[] = {{ST_RUN, PRED_PUNCT_DEFAULT}, {ST_GPT2, 0},
                                    {ST_RUN, PRED_NUMBER}, {ST_DIGITS3, 0}, {ST_END, 0}};
static const stage pre_gpt2[] = {{ST_GPT2, 0}, {ST_END, 0}};
static const stage pre_llama3[] = {{ST_LLAMA3, 3}, {ST_END, 0}};
static const stage pre_qwen2[] = {{ST_LLAMA3, 1}, {ST_END, 0}};
static const stage pre_smollm[] = {{ST_ONE, PRED_NUMBER}, {ST_GPT2, 0}, {ST_END, 0}};
static const stage pre_falcon[] = {{ST_RUN, PRED_PUNCT_FALCON}, {ST_GPT2, 0}, {ST_DIGITS3, 0},
                                   {ST_END, 0}};
static const stage pre_ds_coder[] = {{ST_ONE, PRED_CRLF}, {ST_SPACE_RUN, PRED_LETTER},
                                     {ST_SPACE_RUN, PRED_PUNCT}, {ST_RUN, PRED_CJK},
                                     {ST_ONE, PRED_NUMBER}, {ST_END, 0}};
static const stage pre_ds_llm[] = {{ST_ONE, PRED_CRLF}, {ST_SPACE_RUN, PRED_DS_LETTER},
                                   {ST_SPACE_RUN, PRED_DS_PUNCT}, {ST_TRAIL_SPACE, 0},
                                   {ST_RUN, PRED_CJK}, {ST_RUN, PRED_NUMBER}, {ST_END, 0}};

static const stage *stages_of(lm_tok_pre pre)
{
    switch (pre) {
    case LM_TOK_PRE_DEFAULT: return pre_default;
    case LM_TOK_PRE_GPT2: return pre_gpt2;
    case LM_TOK_PRE_LLAMA3: return pre_llama3;
    case LM_TOK_PRE_QWEN2: return pre_qwen2;
    case LM_TOK_PRE_SMOLLM: return pre_smollm;
    case LM_TOK_PRE_FALCON: return pre_falcon;
    case LM_TOK_PRE_DEEPSEEK_CODER: return pre_ds_coder;
    case LM_TOK_PRE_DEEPSEEK_LLM: return pre_ds_llm;
    case LM_TOK_PRE_NONE: break;
    }
    return pre_gpt2;
}

int64_t *lm_tok_pretok_split(lm_tok_pre pre, const uint32_t *cps, const uint8_t *cls, int64_t n,
                             int64_t *a, int64_t *b, int64_t *n_pieces)
{
    int64_t *cur = a, n_cur = 0;
    if (n > 0)
        cur[n_cur++] = n;
    for (const stage *s = stages_of(pre); s->kind != ST_END; s++) {
        int64_t *next = cur == a ? b : a;
        piece p = {cps, cls, 0, 0, next, 0, 0};
        for (int64_t i = 0, start = 0; i < n_cur; start += cur[i], i++) {
            p.lo = p.done = start;
            p.hi = start + cur[i];
            run_stage(&p, s);
        }
        cur = next;
        n_cur = p.n_out;
    }
    *n_pieces = n_cur;
    return cur;
}

/* ---- names ------------------------------------------------------------------------ */

typedef struct pre_name {
    const char *name;
    lm_tok_pre pre;
    int ignore_merges;
} pre_name;

/* tokenizer.ggml.pre strings, as llama.cpp's llama_vocab::load maps them. */
static const pre_name pre_names[] = {
    {"default", LM_TOK_PRE_DEFAULT, 0},
    {"llama3", LM_TOK_PRE_LLAMA3, 1},
    {"llama-v3", LM_TOK_PRE_LLAMA3, 1},
    {"llama-bpe", LM_TOK_PRE_LLAMA3, 1},
    {"dbrx", LM_TOK_PRE_LLAMA3, 0},
    {"qwen2", LM_TOK_PRE_QWEN2, 0},
    {"deepseek-r1-qwen", LM_TOK_PRE_QWEN2, 0},
    {"stablelm2", LM_TOK_PRE_QWEN2, 0},
    {"smollm", LM_TOK_PRE_SMOLLM, 0},
    {"starcoder", LM_TOK_PRE_SMOLLM, 0},
    {"refact", LM_TOK_PRE_SMOLLM, 0},
    {"gpt-2", LM_TOK_PRE_GPT2, 0},
    {"mpt", LM_TOK_PRE_GPT2, 0},
    {"falcon", LM_TOK_PRE_FALCON, 0},
    {"deepseek-coder", LM_TOK_PRE_DEEPSEEK_CODER, 0},
    {"deepseek-llm", LM_TOK_PRE_DEEPSEEK_LLM, 0},
};

int lm_tok_pre_parse(const char *name, int *ignore_merges)
{
    *ignore_merges = 0;
    if (!name || !*name)
        return LM_TOK_PRE_DEFAULT;
    for (size_t i = 0; i < N_OF(pre_names); i++) {
        if (!strcmp(name, pre_names[i].name)) {
            *ignore_merges = pre_names[i].ignore_merges;
            return (int)pre_names[i].pre;
        }
    }
    return -1;
}

const char *lm_tok_pre_family(lm_tok_pre pre)
{
    switch (pre) {
    case LM_TOK_PRE_NONE: return "";
    case LM_TOK_PRE_DEFAULT: return "default";
    case LM_TOK_PRE_GPT2: return "gpt2";
    case LM_TOK_PRE_LLAMA3: return "llama3";
    case LM_TOK_PRE_QWEN2: return "qwen2";
    case LM_TOK_PRE_SMOLLM: return "smollm";
    case LM_TOK_PRE_FALCON: return "falcon";
    case LM_TOK_PRE_DEEPSEEK_CODER: return "deepseek-coder";
    case LM_TOK_PRE_DEEPSEEK_LLM: return "deepseek-llm";
    }
    return "";
}
