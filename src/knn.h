/* knn.h: exact k-nearest-neighbour search by cosine similarity, through the
 * FAISS C API (a flat inner-product index over L2-normalised vectors).
 *
 * DELIFT's `--pairs knn:K` mode (docs/pipeline.md) scores only the K
 * examples nearest to each target; `delift eval` retrieves the one nearest
 * example.  Both need the same thing: for each query row, the K base rows
 * of largest cosine similarity, best first.
 *
 * Exactness and ties: the search is exhaustive (IndexFlatIP).  FAISS only
 * proposes candidates: the similarity reported and ranked is recomputed in
 * double, dot(q, b) / (|q| |b|) clamped to [-1, 1], and FAISS is asked for
 * a few more rows than K; a query whose ties (or near ties, within FAISS's
 * float rounding) reach past that list is rescanned exactly.  So the result
 * is the true top K under that similarity, with equal similarities ordered
 * by the smaller base index first, whatever FAISS returned: reproducible
 * across FAISS versions, BLAS libraries and thread counts.  A zero vector
 * has similarity 0 with everything (a zero query gets base rows 0..K-1).
 *
 * Built --without-faiss, the same function runs a plain C brute-force
 * search (same contract, same similarities and tie order, bit for bit);
 * knn_backend_name() says which.
 *
 * Thread-safety: knn_search is reentrant (no global state besides FAISS's
 * own OpenMP pool and OpenBLAS's thread pool, which it uses in turn; small
 * searches run on the calling thread only).  Callers that search from
 * several threads at once should lower OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS.
 */
#ifndef DL_KNN_H
#define DL_KNN_H

#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For each of the n_query rows of query ([n_query, dim], row-major,
 * borrowed), the k base rows ([n_base, dim], borrowed) of largest cosine
 * similarity, best first: out_idx[q * k + r] (0-based base row) and
 * out_sim[q * k + r] (the cosine similarity; may be NULL).  Both outputs
 * are caller-owned [n_query * k].  k must satisfy 1 <= k <= n_base.
 * n_query may be 0 (query and out_idx may then be NULL).  Neither input
 * is modified (normalised copies are made internally).  Memory: FAISS's
 * float copy of the base, n_base doubles, and bounded scratch (~4 MiB here
 * plus FAISS's own ~16 MiB search blocks), whatever n_query.
 * DL_ERR_USAGE: bad sizes or k, a NULL array, sizes that overflow;
 * DL_ERR_INPUT: a NaN or infinite value (err->field "query[i]" or
 * "base[i]", i the 0-based row; the message names the column);
 * DL_ERR_NOMEM; DL_ERR_INTERNAL: a FAISS failure (its message is
 * included).  Outputs are untouched on USAGE/INPUT errors, unspecified on
 * the others. */
dl_status knn_search(const float *query, int64_t n_query, const float *base, int64_t n_base,
                     int64_t dim, int64_t k, int64_t *out_idx, float *out_sim, dl_error *err);

/* "faiss" or "brute-force": what knn_search uses in this build.  Static. */
const char *knn_backend_name(void);

#ifdef __cplusplus
}
#endif

#endif /* DL_KNN_H */
