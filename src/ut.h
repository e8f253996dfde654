/* ut.h: DELIFT's in-context utility (spec/DELIFT.md §1-§3, docs/pipeline.md).
 *
 * For a target record i and an example record j the engine scores, teacher
 * forced, the sequence
 *     [BOS if add_bos] tokens(prompt) EOS tokens(r_i) EOS
 * where prompt is the no-ICL template filled with p_i, or the ICL template
 * filled with p_j, r_j and p_i; prompt and response are tokenised
 * separately.  d = sqrt(mean_t (1 - p_t)^2) over the response tokens and
 * the final EOS, and U[i][j] = d_noICL(i) - d_ICL(i, j).
 *
 * Sharing.  Every target scored with example j has a prompt that starts
 * with the same text (the template up to {p_i}); its tokens are evaluated
 * once as a key/value prefix and each target continues from it.  Because a
 * tokenizer may merge across that text boundary, the split is made on the
 * TOKENS: the prefix of pair (i, j) is the longest common prefix of
 * tokens(prompt(i, j)) and tokens(template text before {p_i}), which
 * depends on i and j only.  A pair's score is therefore a pure function of
 * (model, configuration, backend, i, j), whatever else is scored with it:
 * a resumed or cached run is bit-identical to an uninterrupted one.
 *
 * Truncation (our documented deviation from the reference): a sequence
 * longer than the context loses tokens from the left of the prompt (after
 * BOS): the template header and the example go first.  The number cut is
 * the overflow rounded up to a multiple of the quantum (ut_config), so the
 * targets of one example whose overflows round alike still share a prefix:
 * [BOS] tokens [cut, split) of the prompt.  A cut that reaches p_i leaves
 * nothing to share and is scored whole.  A target whose response alone
 * (with BOS and the two EOS) does not fit is not scored: its d is NaN, and
 * it is counted in ut_stats.
 *
 * Thread-safety: a ut_scorer is used by one thread at a time (the engine
 * context it borrows runs its own threads).  ut_set is immutable once built.
 */
#ifndef DL_UT_H
#define DL_UT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "lm_score.h"
#include "lm_tok.h"
#include "rec.h"
#include "ut_cache.h"

#ifdef __cplusplus
extern "C" {
#endif

/* spec/DELIFT.md §2; placeholders {p_i} (target prompt), {p_j} and {r_j}
 * (example prompt and response). */
#define UT_TPL_NOICL_DEFAULT                                                                       \
    "Instruction: Please generate a response to the following query.\n\n\nQuery: {p_i}\n"
#define UT_TPL_ICL_DEFAULT                                                                         \
    "Instruction:\nUse the following example as a guide to answer the query in the same "       \
    "format and style, providing a clear and concise response.\n\n\nExample:\n{p_j}\n{r_j}"     \
    "\n\n\nQuery:\n{p_i}\n"

typedef struct ut_config {
    const char *tpl_noicl; /* NULL: UT_TPL_NOICL_DEFAULT; must hold {p_i} once, nothing after
                              it may be another placeholder */
    const char *tpl_icl;   /* NULL: UT_TPL_ICL_DEFAULT; {p_j}, {r_j} (any order, each at most
                              once) before exactly one {p_i} */
    int add_bos;           /* prepend BOS (the reference does not) */
    int64_t trunc_quantum; /* 0: UT_TRUNC_QUANTUM_DEFAULT; 1..UT_TRUNC_QUANTUM_MAX: a cut to
                              fit the context rounds up to a multiple of it (1: exact) */
} ut_config;

#define UT_TRUNC_QUANTUM_DEFAULT 32
#define UT_TRUNC_QUANTUM_MAX 4096

/* Checks both templates (NULL fields mean the defaults) and the quantum.
 * DL_ERR_USAGE with err->field "template.noicl" / "template.icl" /
 * "truncate_quantum". */
dl_status ut_config_check(const ut_config *c, dl_error *err);

/* The quantum c stands for (c may be NULL: the default). */
int64_t ut_config_trunc_quantum(const ut_config *c);

/* ---- records prepared for scoring ------------------------------------------ */

/* One record as the utility sees it (§1): prompt p = "Instruction: {instruction}\nInput:
 * {input}\n", response r = " {output}", and tokens(r) + EOS. */
typedef struct ut_item {
    char *prompt;       /* owned, NUL-terminated */
    char *response;     /* owned */
    int32_t *resp_ids;  /* owned: tokens(r) followed by EOS */
    int64_t n_resp;     /* including the EOS */
    uint8_t hash[REC_HASH_LEN]; /* rec content hash: the cache key */
} ut_item;

typedef struct ut_set {
    ut_item *items; /* owned, n */
    int64_t n;
} ut_set;

/* Builds the items of pool (borrowed) with tok.  DL_ERR_INPUT when the
 * tokenizer has no EOS token; DL_ERR_NOMEM.  *out owned: ut_set_free. */
dl_status ut_set_from_pool(const rec_pool *pool, const lm_tok *tok, ut_set **out, dl_error *err);
void ut_set_free(ut_set *s); /* NULL is a no-op */

/* ---- scoring ------------------------------------------------------------------ */

/* Progress and cancellation, polled between blocks. */
typedef void (*ut_progress_fn)(void *ctx, const char *phase, int64_t done, int64_t total);
typedef struct ut_hooks {
    ut_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    const atomic_int *cancel; /* may be NULL; nonzero: stop with DL_ERR_CANCELLED */
} ut_hooks;

/* Counters of one scorer, accumulated over its calls. */
typedef struct ut_stats {
    int64_t pairs_total;    /* (target, example) pairs and no-ICL targets asked for */
    int64_t pairs_cached;   /* found in the cache */
    int64_t pairs_scored;   /* computed by the model */
    int64_t pairs_truncated;/* computed with prompt tokens cut to fit */
    int64_t unscorable;     /* NaN: the response does not fit the context */
    int64_t tokens_prefix;  /* tokens evaluated as shared prefixes */
    int64_t tokens_scored;  /* tokens evaluated as continuations */
    int64_t tokens_unshared;/* tokens all those sequences would have cost unshared */
    double seconds_model;   /* wall time inside the engine */
} ut_stats;

typedef struct ut_scorer ut_scorer;

/* A scorer on ctx (borrowed; its model and tok must match), with cache (borrowed,
 * may be NULL: nothing is stored and nothing resumes).  model_hash is the
 * SHA-256 of the model file (part of the cache scope).  *out owned. */
dl_status ut_scorer_new(lm_ctx *ctx, const lm_tok *tok, const ut_config *cfg,
                        const uint8_t model_hash[32], ut_cache *cache, ut_scorer **out,
                        dl_error *err);
void ut_scorer_free(ut_scorer *s); /* NULL is a no-op */

/* The cache scope key of this scorer (hex, 65 bytes with NUL), for manifests. */
const char *ut_scorer_scope_hex(const ut_scorer *s);
const ut_stats *ut_scorer_stats(const ut_scorer *s);

/* Prefix sharing is on by default.  Off, every prompt token is evaluated
 * with its own sequence (only a BOS is shared): the benchmark's baseline.
 * Scores agree to float rounding, not bit for bit, so a scorer without
 * sharing must not write to a cache that one with sharing reads: turning
 * it off is refused (-1) for a scorer with a cache; 0 otherwise. */
int ut_scorer_set_sharing(ut_scorer *s, int on);

/* d_noICL of every target: d[i], i < targets->n (NaN: unscorable). */
dl_status ut_score_noicl(ut_scorer *s, const ut_set *targets, double *d, const ut_hooks *h,
                         dl_error *err);

/* Which (target, example) pairs to score: CSR over targets.  Row i lists
 * the examples cols[row_ptr[i] .. row_ptr[i+1]).  NULL: every pair (dense). */
typedef struct ut_pairs {
    const int64_t *row_ptr; /* [n_targets + 1] */
    const int64_t *cols;    /* [row_ptr[n_targets]], each in [0, n_examples) */
} ut_pairs;

/* d_ICL of the pairs: dense (pairs NULL): d[i * examples->n + j]; sparse:
 * d[k] for the k-th entry of pairs->cols.  Work is done example by example
 * in blocks, each block looked up in and then committed to the cache as one
 * transaction.  Phase name for progress: "pairs". */
dl_status ut_score_icl(ut_scorer *s, const ut_set *targets, const ut_set *examples,
                       const ut_pairs *pairs, double *d, const ut_hooks *h, dl_error *err);

/* As ut_score_noicl and ut_score_icl, also giving ll: the mean
 * log-probability (natural log) over each one's scored positions (NaN when
 * unscorable).  These never read or write the cache (it holds d only). */
dl_status ut_score_noicl_ll(ut_scorer *s, const ut_set *targets, double *d, double *ll,
                            const ut_hooks *h, dl_error *err);
dl_status ut_score_icl_ll(ut_scorer *s, const ut_set *targets, const ut_set *examples,
                          const ut_pairs *pairs, double *d, double *ll, const ut_hooks *h,
                          dl_error *err);

/* The pooled embedding (lm_score.h) of each item's sequence
 * tokens(p) EOS tokens(r) EOS: out caller-owned [set->n, n_embd]. */
dl_status ut_embed(ut_scorer *s, const ut_set *set, float *out, const ut_hooks *h,
                   dl_error *err);

/* ---- kernels ------------------------------------------------------------------ */

/* U = d_noicl[i] - d_icl over n entries of row i (row_of[k] gives the row of
 * entry k; NULL means dense rows of n_cols), then min-max scaled to [0, 1]
 * over the finite entries (all equal: all 0).  NaN entries (unscorable)
 * become 0.  out float32 [n].  Returns the min and max before scaling. */
void ut_kernel_from_d(const double *d_noicl, const double *d_icl, int64_t n_rows, int64_t n_cols,
                      const int64_t *row_ptr, float *out, double *min_out, double *max_out);

#ifdef __cplusplus
}
#endif

#endif /* DL_UT_H */
