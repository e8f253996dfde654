/* knn_int.h: knn.c's internals, shared with tests/check_knn.c only.
 *
 * Not part of the library's API: nothing outside src/knn.c and its test
 * may include it.
 */
#ifndef DL_KNN_INT_H
#define DL_KNN_INT_H

#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plain C brute-force backend, present in every build (it is what
 * knn_search runs --without-faiss, and the FAISS path's fallback for one
 * query whose ties straddle its candidate list).  Same arguments, contract,
 * errors, similarities and tie order as knn_search (knn.h), bit for bit:
 * a test that both agree exactly is meaningful.  Reentrant. */
dl_status knn_search_brute(const float *query, int64_t n_query, const float *base,
                           int64_t n_base, int64_t dim, int64_t k, int64_t *out_idx,
                           float *out_sim, dl_error *err);

/* knn_search, also counting in *n_rescans (NULL: not wanted) the queries
 * that were settled by the exact per-query scan because FAISS's candidate
 * list could not prove their top k (ties or near ties at its boundary).
 * Always 0 --without-faiss.  For the tests and the benchmark. */
dl_status knn_search_counted(const float *query, int64_t n_query, const float *base,
                             int64_t n_base, int64_t dim, int64_t k, int64_t *out_idx,
                             float *out_sim, int64_t *n_rescans, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DL_KNN_INT_H */
