/* lm_tok_int.h: private to the lm_tok*.c files: the tokenizer's layout and
 * the pieces its two algorithms and the pre-tokenizer share. */
#ifndef LM_TOK_INT_H
#define LM_TOK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "lm_tok.h"

/* One vocabulary entry.  Texts and pieces live in lm_tok.arena. */
typedef struct lm_tok_entry {
    int64_t text_off;   /* stored text */
    int64_t piece_off;  /* decoded bytes (lm_tok_piece without flags) */
    uint32_t text_len;
    uint32_t piece_len;
    float score;        /* SPM merge priority; NaN read as -inf */
    int32_t type;       /* lm_tok_type */
} lm_tok_entry;

/* One merge rule: arena[off .. off+left_len) and the part after the space. */
typedef struct lm_tok_merge {
    int64_t off;
    uint32_t left_len;
    uint32_t right_len;
} lm_tok_merge;

/* Pre-tokenizer families (lm_tok_pretok.c). */
typedef enum lm_tok_pre {
    LM_TOK_PRE_NONE = 0, /* SPM */
    LM_TOK_PRE_DEFAULT,
    LM_TOK_PRE_GPT2,
    LM_TOK_PRE_LLAMA3,
    LM_TOK_PRE_QWEN2,
    LM_TOK_PRE_SMOLLM,
    LM_TOK_PRE_FALCON,
    LM_TOK_PRE_DEEPSEEK_CODER,
    LM_TOK_PRE_DEEPSEEK_LLM
} lm_tok_pre;

struct lm_tok {
    lm_tok_kind kind;
    lm_tok_pre pre;
    int ignore_merges;     /* llama3: a word that is a token is kept whole */
    int add_space_prefix;
    int add_bos, add_eos;
    int32_t bos_id, eos_id, unk_id;
    int64_t n_tokens;
    lm_tok_entry *entries; /* [n_tokens] */
    char *arena;           /* texts, pieces, merge strings */
    int32_t *token_map;    /* open addressing, token_mask + 1 slots, -1 empty */
    uint64_t token_mask;
    int64_t n_merges;
    lm_tok_merge *merges;  /* [n_merges] */
    int32_t *merge_map;    /* slots hold merge indices (= ranks), -1 empty */
    uint64_t merge_mask;
    int32_t byte_token[256]; /* SPM byte fallback: <0xXX>, else the one-byte
                                token, else unk (-1 when none) */
    int64_t n_special;     /* USER_DEFINED, CONTROL and UNKNOWN tokens, */
    int32_t *special;      /* longest first, then by id */
};

/* Scratch for one encode call, grown as needed and freed at its end. */
typedef struct lm_tok_sym {
    int64_t off;  /* start in the work text */
    int64_t n;    /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
} lm_tok_sym;

typedef struct lm_tok_bigram {
    double key;   /* smaller pops first: -score (SPM) or rank (BPE) */
    int32_t left, right;
    int64_t size; /* bytes of the merged pair when pushed (staleness check) */
} lm_tok_bigram;

typedef struct lm_tok_work {
    char *text;          /* the escaped (SPM) or byte-mapped (BPE) text */
    size_t text_cap;
    lm_tok_sym *syms;
    int64_t syms_cap;
    lm_tok_bigram *heap;
    int64_t heap_n, heap_cap;
    uint32_t *cps;       /* BPE: code points of a fragment */
    uint8_t *cls;        /* BPE: their classes */
    int64_t *piece_a, *piece_b; /* BPE: pre-tokenizer piece lengths */
    int64_t cps_cap;
} lm_tok_work;

/* lm_tok.c */
int32_t lm_tok_lookup(const lm_tok *tok, const char *s, size_t n);
int32_t lm_tok_merge_rank(const lm_tok *tok, const char *l, size_t ln, const char *r, size_t rn);
dl_status lm_tok_work_text(lm_tok_work *w, size_t n, dl_error *err);
dl_status lm_tok_work_syms(lm_tok_work *w, int64_t n, dl_error *err);
void lm_tok_heap_clear(lm_tok_work *w);
dl_status lm_tok_heap_push(lm_tok_work *w, const lm_tok_bigram *b, dl_error *err);
int lm_tok_heap_pop(lm_tok_work *w, lm_tok_bigram *out);

/* lm_tok_spm.c: appends the ids of one raw fragment. */
dl_status lm_tok_spm_encode(const lm_tok *tok, lm_tok_work *w, const char *text, size_t len,
                            int space_prefix, lm_tok_ids *out, dl_error *err);

/* lm_tok_bpe.c: appends the ids of one raw fragment. */
dl_status lm_tok_bpe_encode(const lm_tok *tok, lm_tok_work *w, const char *text, size_t len,
                            lm_tok_ids *out, dl_error *err);

/* lm_tok_pretok.c */
/* Family for a tokenizer.ggml.pre string (NULL or "" = default); -1 when
 * unknown.  *ignore_merges is set for the llama3 family. */
int lm_tok_pre_parse(const char *name, int *ignore_merges);
const char *lm_tok_pre_family(lm_tok_pre pre);
/* Splits n code points (classes cls) into words.  a and b have room for n
 * lengths each; the result (lengths in code points, each > 0, summing to
 * n) is in a or b, returned, with its count in *n_pieces. */
int64_t *lm_tok_pretok_split(lm_tok_pre pre, const uint32_t *cps, const uint8_t *cls, int64_t n,
                             int64_t *a, int64_t *b, int64_t *n_pieces);

#endif /* LM_TOK_INT_H */
