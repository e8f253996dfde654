/* lm_backend.h: the compute backends of the inference engine.
 *
 * A backend is a struct of function pointers (lm_backend_ops) plus one
 * instance per "lane" (lm_backend).  The engine (lm_ctx.c) writes the
 * transformer once, as a sequence of calls to these ops; each backend
 * implements them on its own memory:
 *
 *   ref   reference C: naive loops, double accumulation in a fixed order.
 *         Slow, simple, kept forever: the oracle of every other backend.
 *   blas  OpenBLAS: one single-threaded sgemm per (sequence, weight), on
 *         weights dequantised to f32 panels when they are not F32;
 *         attention by sgemm over 64-row blocks.  The engine runs one lane
 *         per thread, so all cores work on different sequences.
 *   cuda  (issue 7) device buffers, cuBLAS GEMMs; one lane.
 *
 * Buffer contract (what lets a GPU backend slot in):
 *  - Every `float *` an op takes is a *backend buffer*: memory obtained from
 *    buf_alloc (host memory for CPU backends, device memory for CUDA).  The
 *    engine never dereferences one; it moves data with upload/download/copy.
 *    Pointer arithmetic inside a buffer (row offsets) is allowed.
 *  - Integer metadata (token ids, positions, segment offsets, targets) are
 *    small *host* arrays; a device backend stages them itself.
 *  - Ops may run asynchronously; `sync` waits and returns the first failure
 *    since the last sync (a sticky error: ops themselves return nothing,
 *    because their inputs were validated by the engine).
 *  - Weights are lm_weight (borrowed file mapping).  A device backend
 *    uploads them at create time and finds its copy by weight->slot.
 *
 * Segments: activations hold the rows of several sequences back to back;
 * seg[0..n_seg] are the row offsets (seg[0] = 0, seg[n_seg] = n rows).
 * A backend with `exact_segments` computes every row of a segment with
 * exactly the same arithmetic whatever the other segments are, so a
 * sequence scored in a batch gets bit-identical results to the sequence
 * scored alone (OpenBLAS's results for a row depend on the row count of
 * the call and on the row's position in it, so the blas backend issues
 * one sgemm per segment).
 *
 * Lanes: a backend with `concurrent_lanes` may have several instances used
 * at once from different threads (each with its own buffers); buffers of
 * one instance may be read by ops of a sibling (the engine keeps shared-
 * prefix caches in lane 0's buffers).  CUDA will set it to 0: one lane.
 *
 * Thread-safety: one instance is used by one thread at a time.
 */
#ifndef LM_BACKEND_H
#define LM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "lm_model.h"
#include "lm_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_backend lm_backend;

/* What the engine tells a backend instance at creation. */
typedef struct lm_backend_params {
    int64_t max_rows;   /* most activation rows of one forward (all segments) */
    int64_t max_ctx;    /* most positions one sequence reaches, prefix included */
    int64_t max_logit_rows; /* most rows handed to one output matmul */
    int q8_act;         /* 1: the fast mode (lm_ctx_params.q8_act); only backends
                           with ops->q8_act are given it */
    void *shared;       /* what ops->shared_new made for this context, or NULL;
                           borrowed: outlives every instance */
    int threads;        /* threads shared_new may use (the context's lanes;
                           create ignores it); <= 1: the calling thread only */
} lm_backend_params;

/* Arguments of causal attention over segments, with an optional shared past
 * (the KV of a prefix that precedes every segment).  Row i of segment s
 * (0-based within the segment) attends to all n_past past rows and to rows
 * 0..i of its own segment, in that order.  Query head h reads key/value
 * head h / (n_head / n_head_kv). */
typedef struct lm_attn_args {
    const float *q;        /* [n, n_head*head_dim], rotated */
    const float *k;        /* [n, n_head_kv*head_dim], rotated */
    const float *v;        /* [n, n_head_kv*head_dim] */
    const float *past_k;   /* [n_past, n_head_kv*head_dim], or NULL when n_past == 0 */
    const float *past_v;   /* [n_past, n_head_kv*head_dim] */
    int64_t n_past;
    const int64_t *seg;    /* host [n_seg + 1] */
    int64_t n_seg;
    int64_t n_head, n_head_kv, head_dim;
    float scale;           /* 1/sqrt(head_dim) */
    float *out;            /* [n, n_head*head_dim] */
} lm_attn_args;

typedef struct lm_backend_ops {
    const char *name;
    int exact_segments;    /* see "Segments" above */
    int concurrent_lanes;  /* see "Lanes" above */
    int q8_act;            /* 1: offers the fast mode: matmuls multiply 8-bit
                              weights and activations quantised per 32-block,
                              in integers (see lm_score.h) */

    /* ---- lifecycle ---- */
    /* New instance for model m (borrowed: outlives the instance). */
    dl_status (*create)(const lm_model *m, const lm_backend_params *p, lm_backend **out,
                        dl_error *err);
    void (*destroy)(lm_backend *be);          /* NULL is a no-op */
    dl_status (*sync)(lm_backend *be, dl_error *err);

    /* ---- memory ---- */
    float *(*buf_alloc)(lm_backend *be, int64_t n_floats); /* NULL when out of memory */
    void (*buf_free)(lm_backend *be, float *buf);          /* NULL is a no-op */
    void (*upload)(lm_backend *be, float *dst, const float *host_src, int64_t n);
    void (*download)(lm_backend *be, float *host_dst, const float *src, int64_t n);
    void (*copy)(lm_backend *be, float *dst, const float *src, int64_t n);

    /* ---- ops (all float pointers are backend buffers) ---- */
    /* x[i] = row ids[i] of tok (dequantised).  x: [n, tok->n_cols]. */
    void (*embed)(lm_backend *be, const lm_weight *tok, const int32_t *ids, int64_t n, float *x);
    /* y[i] = x[i] / sqrt(mean(x[i]^2) + eps) * w.  x, y: [n, w->n_cols]; may alias. */
    void (*rmsnorm)(lm_backend *be, const float *x, const lm_weight *w, int64_t n, float eps,
                    float *y);
    /* y = x W^T (+ bias): x [n, w->n_cols] with row stride ldx, y [n, w->n_rows]
     * (row stride w->n_rows); rows segmented by seg (host, n_seg + 1). */
    void (*matmul)(lm_backend *be, const float *x, int64_t ldx, const int64_t *seg, int64_t n_seg,
                   const lm_weight *w, const lm_weight *bias, float *y);
    /* Rotates, in place, the first n_rot values of each of n_heads heads of
     * the n rows of x ([n, n_heads*head_dim]); row i is at position pos[i]
     * (host).  cs: [max_ctx, n_rot/2, 2] (cos, sin) table built by the engine. */
    void (*rope)(lm_backend *be, float *x, int64_t n, int64_t n_heads, int64_t head_dim,
                 int64_t n_rot, lm_rope_style style, const int32_t *pos, const float *cs);
    void (*attention)(lm_backend *be, const lm_attn_args *a);
    /* gate[i] = silu(gate[i]) * up[i], i < n. */
    void (*swiglu)(lm_backend *be, float *gate, const float *up, int64_t n);
    /* x[i] += y[i], i < n. */
    void (*add)(lm_backend *be, float *x, const float *y, int64_t n);
    /* host out[i] = log_softmax(logits[i])[targets[i]]: logits [n, n_vocab],
     * which the op may overwrite (scratch). */
    void (*logprob)(lm_backend *be, float *logits, int64_t n, int64_t n_vocab,
                    const int32_t *targets, float *host_out);
    /* host sum[j] += x[i][j] over the n rows, i in order, in double.  x: [n, dim]. */
    void (*row_sum)(lm_backend *be, const float *x, int64_t n, int64_t dim, double *host_sum);

    /* ---- optional (NULL: not offered) ---- */
    /* Lends the instance up to n threads for its ops while its lane works
     * alone (the engine calls it with 1 again before the other lanes run).
     * Results must be the same bits whatever n; returns the threads used. */
    int (*set_threads)(lm_backend *be, int n);
    /* State every instance of one context shares (read-only while ops run),
     * made once before the first create and freed after the last destroy:
     * the blas backend's repacked weights in fast mode.  *out may be NULL
     * (nothing to share).  Errors: DL_ERR_NOMEM; DL_ERR_USAGE when the
     * params ask for what this machine cannot do (the fast mode without
     * AVX2). */
    dl_status (*shared_new)(const lm_model *m, const lm_backend_params *p, void **out,
                            dl_error *err);
    void (*shared_free)(void *shared); /* NULL is a no-op */
} lm_backend_ops;

/* Every instance starts with the ops it belongs to. */
struct lm_backend {
    const lm_backend_ops *ops;
};

/* ---- registry (the only place that knows which backends are built) ---- */

/* The backend called `name` ("ref", "blas"; "cuda" once built), or NULL.
 * Borrowed static. */
const lm_backend_ops *lm_backend_find(const char *name);

/* Comma-separated names of the built backends, for --help.  Static. */
const char *lm_backend_names(void);

/* The default backend: blas. */
const lm_backend_ops *lm_backend_default(void);

/* The blas backend's softmax, log-softmax and SwiGLU kernels exist as
 * portable C (4-lane vector extensions) and, on x86-64 CPUs with AVX2 and
 * FMA, as AVX2 (8 lanes, fused multiply-adds), chosen automatically.  They
 * agree to float rounding, not bit for bit.  This selects the instance of
 * blas backends created afterwards, for the whole process (tests and
 * benchmarks compare them); AVX2 on a CPU without it falls back to GENERIC.
 * Returns the instance now selected (never AUTO).  Thread-safe (atomic);
 * instances already created keep theirs. */
lm_quant_isa lm_backend_blas_set_isa(lm_quant_isa isa);

/* The backends themselves (registry use only). */
extern const lm_backend_ops lm_backend_ref_ops;
extern const lm_backend_ops lm_backend_blas_ops;

#ifdef __cplusplus
}
#endif

#endif /* LM_BACKEND_H */
