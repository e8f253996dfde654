/* ds_int.h: helpers shared by the pipeline's files (not a public API). */
#ifndef DL_DS_INT_H
#define DL_DS_INT_H

#include <stdint.h>

#include "dl_error.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"

/* SHA-256 of a whole file.  DL_ERR_IO naming path. */
dl_status ds_hash_file(const char *path, uint8_t out[32], dl_error *err);

/* Loads the model at path (a missing or malformed file is bad input that
 * names it), reads its tokenizer (a model without one is DL_ERR_INPUT),
 * hashes the file, and makes an engine context (backend and threads as
 * given, NULL/0 for the defaults; fast: lm_ctx_params.q8_act; batches as
 * long as the model's context).
 * On failure whatever was made is left in *model, *tok, *ctx for the
 * caller's usual cleanup (lm_*_free, all NULL-safe). */
dl_status ds_engine_open(const char *path, const char *backend, int64_t threads, int fast,
                         lm_model **model, lm_tok **tok, lm_ctx **ctx, uint8_t hash[32],
                         dl_error *err);

/* Sorts v[0..n) ascending. */
void ds_sort_i64(int64_t *v, int64_t n);

/* Transposes a rows x cols CSR matrix (columns ascending within each row of
 * the result).  Outputs owned by the caller (free). */
dl_status ds_csr_transpose(int64_t rows, int64_t cols, const int64_t *indptr,
                           const int64_t *indices, const float *values, int64_t **t_indptr,
                           int64_t **t_indices, float **t_values, dl_error *err);

/* "2026-11-27T01:02:03Z" for now, into buf[32]. */
void ds_utc_now(char buf[32]);

#endif /* DL_DS_INT_H */
