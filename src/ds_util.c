/* ds_util.c: small helpers of the pipeline (ds_int.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dl_sha256.h"
#include "ds_int.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void ds_sort_i64(int64_t *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
}

dl_status ds_csr_transpose(int64_t rows, int64_t cols, const int64_t *indptr,
                           const int64_t *indices, const float *values, int64_t **t_indptr,
                           int64_t **t_indices, float **t_values, dl_error *err)
{
    int64_t nnz = indptr[rows];
    int64_t *tp = calloc((size_t)cols + 1, sizeof *tp);
    int64_t *ti = malloc((size_t)(nnz ? nnz : 1) * sizeof *ti);
    float *tv = malloc((size_t)(nnz ? nnz : 1) * sizeof *tv);
    int64_t *fill = malloc((size_t)(cols ? cols : 1) * sizeof *fill);
    if (!tp || !ti || !tv || !fill) {
        free(tp), free(ti), free(tv), free(fill);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for a %lld-entry transpose",
                            (long long)nnz);
    }
    for (int64_t k = 0; k < nnz; k++)
        tp[indices[k] + 1]++;
    for (int64_t j = 0; j < cols; j++)
        tp[j + 1] += tp[j];
    for (int64_t j = 0; j < cols; j++)
        fill[j] = tp[j];
    /* rows ascend, so each transposed row's columns come out ascending */
    for (int64_t i = 0; i < rows; i++)
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++) {
            int64_t w = fill[indices[k]]++;
            ti[w] = i;
            tv[w] = values[k];
        }
    free(fill);
    *t_indptr = tp;
    *t_indices = ti;
    *t_values = tv;
    return DL_OK;
}

void ds_utc_now(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

dl_status ds_hash_file(const char *path, uint8_t out[32], dl_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "cannot open: %s",
                               strerror(errno));
    dl_sha256_ctx h;
    dl_sha256_init(&h);
    static __thread uint8_t buf[1 << 16];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "cannot read: %s",
                                   strerror(e));
        }
        if (r == 0)
            break;
        dl_sha256_update(&h, buf, (size_t)r);
    }
    close(fd);
    dl_sha256_final(&h, out);
    return DL_OK;
}

dl_status ds_engine_open(const char *path, const char *backend, int64_t threads, int fast,
                         lm_model **model, lm_tok **tok, lm_ctx **ctx, uint8_t hash[32],
                         dl_error *err)
{
    /* load first: a missing or malformed model is bad input (exit 2), not I/O */
    dl_status s = lm_model_load(path, model, err);
    if (!s)
        s = ds_hash_file(path, hash, err);
    if (!s && !(*tok = lm_tok_from_gguf((*model)->gguf, err))) {
        s = err && err->code ? err->code : DL_ERR_INPUT;
        dl_error_locate(err, path, 0, NULL);
    }
    if (!s) {
        lm_ctx_params cp = lm_ctx_params_default();
        cp.backend = backend;
        cp.n_threads = threads;
        cp.q8_act = fast;
        cp.max_batch_tokens = (*model)->hp.n_ctx_train > 2048 ? (*model)->hp.n_ctx_train : 2048;
        s = lm_ctx_new(*model, &cp, ctx, err);
    }
    return s;
}
