/* lm_score.h: inference contexts and the scoring API of the engine.
 *
 * A context (lm_ctx) binds a model to a backend and owns every buffer a
 * forward pass needs, allocated once at creation and sized by its params:
 * per lane (one per thread for CPU backends) the activations of
 * max_batch_tokens rows and the logits of a block of target rows; nothing
 * is allocated while scoring (docs/engine.md, "Memory plan").
 *
 * Scoring is teacher forcing: the log-probability of token t of a sequence
 * is log_softmax(logits after token t-1)[token t].  A batch of sequences of
 * mixed lengths is scored without padding, each sequence attending only to
 * itself (and to a shared prefix), and with a backend that has
 * exact_segments (ref, blas) every result is bit-identical to what that
 * sequence gets when scored alone, in any batch, on any lane.
 *
 * Shared prefix: lm_prefix_new evaluates tokens once and keeps their
 * key/value cache; lm_ctx_score with that prefix scores each sequence as
 * the continuation of the prefix (positions continue after it) without
 * recomputing it.  The results equal those of scoring prefix + sequence
 * as one sequence up to float rounding (the attention sums group the
 * prefix and the continuation differently): |diff| < 1e-5 in our tests.
 *
 * Embedding: the mean, over every token of the sequence (the prefix's
 * included), of the hidden state after the final RMSNorm (the vector the
 * output projection reads), summed in double in position order.
 *
 * Thread-safety: a context is used by one thread at a time (it runs its
 * own lane threads inside a call); contexts sharing one model may run
 * concurrently.  A prefix belongs to the context that made it and must be
 * freed before that context.
 */
#ifndef LM_SCORE_H
#define LM_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "lm_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_ctx lm_ctx;
typedef struct lm_prefix lm_prefix;

typedef struct lm_ctx_params {
    const char *backend;       /* "ref", "blas", ...; NULL: the default (blas) */
    int64_t n_threads;         /* lanes, for backends that allow several; 0: online CPUs */
    int64_t max_batch_tokens;  /* rows of one forward pass of one lane; 0: 2048 */
    int64_t n_ctx;             /* longest sequence, prefix included; 0: the model's
                                  context_length */
    int q8_act;                /* 1: the fast mode, below (backends with it: blas) */
} lm_ctx_params;

/* The fast mode (q8_act).  Every matrix product quantises its input rows to
 * 8 bits per 32-value block (d = max|x| / 127, q = round(x / d)) and
 * multiplies them with 8-bit weights in integers (lm_q8mm.h), as llama.cpp
 * does on Q8_0 files.  Q8_0 weights are used as they are; other types are
 * encoded as Q8_0 once, when the context is made (a second copy of the
 * matrices, about 1.2x the Q8_0 size).  About 3x faster on delift-mini
 * (docs/engine.md); the log-probabilities differ from the exact path's by
 * ~0.005 nats on average (0.09 at most on the goldens).  Results still do
 * not depend on the batch, the thread count, the lane or the CPU's
 * instruction set.  Needs AVX2 and FMA (else DL_ERR_USAGE); off by default. */

/* One sequence to score: tokens[target_start .. target_end) are scored.
 * Without a prefix target_start >= 1 (token 0 has no predecessor); with a
 * non-empty prefix target_start may be 0 (predicted from the prefix's last
 * token).  Indices are into `tokens`, which never includes the prefix. */
typedef struct lm_seq {
    const int32_t *tokens; /* borrowed, n_tokens ids in [0, n_vocab) */
    int64_t n_tokens;      /* >= 1 */
    int64_t target_start;
    int64_t target_end;    /* target_start <= target_end <= n_tokens */
} lm_seq;

/* ---- contexts -------------------------------------------------------------- */

/* Zeroed params: every field at its default. */
lm_ctx_params lm_ctx_params_default(void);

/* New context for m (borrowed: must outlive the context).  DL_ERR_USAGE for
 * an unknown backend or bad params (message lists the backends),
 * DL_ERR_NOMEM.  Owned: lm_ctx_free. */
dl_status lm_ctx_new(const lm_model *m, const lm_ctx_params *p, lm_ctx **out, dl_error *err);

/* NULL is a no-op.  Free the context's prefixes first. */
void lm_ctx_free(lm_ctx *ctx);

const lm_model *lm_ctx_model(const lm_ctx *ctx);          /* borrowed */
const char *lm_ctx_backend_name(const lm_ctx *ctx);       /* borrowed static */
int64_t lm_ctx_n_lanes(const lm_ctx *ctx);
int lm_ctx_q8_act(const lm_ctx *ctx);                      /* 1 in the fast mode */
int64_t lm_ctx_n_ctx(const lm_ctx *ctx);
int64_t lm_ctx_max_batch_tokens(const lm_ctx *ctx);

/* ---- scoring ---------------------------------------------------------------- */

/* Scores n_seqs sequences, as continuations of `prefix` when it is not NULL.
 * logprobs (caller-owned) receives, sequence after sequence, the
 * target_end - target_start log-probabilities (natural log) of each one's
 * targets.  embeddings (caller-owned [n_seqs, n_embd], or NULL to skip)
 * receives the pooled embedding of each.  Sequences are spread over the
 * lanes and packed into forward passes of <= max_batch_tokens rows.
 * DL_ERR_USAGE: a bad span; DL_ERR_INPUT: a token id out of range, or a
 * sequence longer than max_batch_tokens or (with the prefix) n_ctx
 * (err->field "seq[i]"); DL_ERR_NUMERIC from a backend. */
dl_status lm_ctx_score(lm_ctx *ctx, const lm_prefix *prefix, const lm_seq *seqs, int64_t n_seqs,
                       float *logprobs, float *embeddings, dl_error *err);

/* The full logit vectors after tokens[positions[j]], j < n_pos, of one
 * sequence of n tokens (no prefix): out is caller-owned [n_pos, n_vocab].
 * For tests and tools; scoring never materialises whole logit rows. */
dl_status lm_ctx_logits(lm_ctx *ctx, const int32_t *tokens, int64_t n, const int64_t *positions,
                        int64_t n_pos, float *out, dl_error *err);

/* ---- shared prefixes ------------------------------------------------------- */

/* Evaluates tokens[0..n) (n >= 0) and keeps their key/value cache, with room
 * for `capacity` >= n tokens in all (lm_prefix_append; capacity <= n_ctx).
 * Owned: lm_prefix_free. */
dl_status lm_prefix_new(lm_ctx *ctx, const int32_t *tokens, int64_t n, int64_t capacity,
                        lm_prefix **out, dl_error *err);

/* Evaluates n more tokens after the prefix and appends them to it (the
 * incremental decoding of `delift generate`).  DL_ERR_USAGE when they do
 * not fit the capacity. */
dl_status lm_prefix_append(lm_ctx *ctx, lm_prefix *p, const int32_t *tokens, int64_t n,
                           dl_error *err);

/* The logits after the prefix's last token: out caller-owned [n_vocab].
 * DL_ERR_USAGE on an empty prefix. */
dl_status lm_prefix_logits(lm_ctx *ctx, const lm_prefix *p, float *out, dl_error *err);

int64_t lm_prefix_len(const lm_prefix *p);

/* NULL is a no-op. */
void lm_prefix_free(lm_prefix *p);

#ifdef __cplusplus
}
#endif

#endif /* LM_SCORE_H */
