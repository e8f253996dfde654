/* bench_pp.c: prompt processing as llama.cpp's benchmarks measure it, for
 * the side-by-side comparison of bench/vs_llamacpp.sh.
 *
 * Usage: bench_pp MODEL.gguf [threads [tokens [runs [batch [all|last [exact|fast]]]]]]
 *   Scores `batch` sequences (default 1) of `tokens` (default 256)
 *   pseudo-random token ids (the generator of bench/vs_llamacpp.mjs, so both
 *   sides see the same ids) on the blas backend, `runs` times after one
 *   warm-up, and prints one line with the best and the median tokens/s.
 *   "all" (the default): every position's next-token log-probability (the
 *   output layer at all `tokens` positions, what DELIFT needs); "last": the
 *   last position's only, the work llama.cpp's prompt processing does.
 *   The time lm_ctx_new took goes to stderr (fast mode: the packing).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_model.h"
#include "lm_score.h"
#include "bench_common.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_pp MODEL.gguf [threads [tokens [runs [batch [all|last "
                        "[exact|fast]]]]]]\n");
        return 2;
    }
    int64_t threads = argc > 2 ? atoll(argv[2]) : 2, n = argc > 3 ? atoll(argv[3]) : 256;
    int64_t runs = argc > 4 ? atoll(argv[4]) : 10, batch = argc > 5 ? atoll(argv[5]) : 1;
    const char *mode = argc > 6 ? argv[6] : "all";
    const char *arith = argc > 7 ? argv[7] : "exact";
    int last = !strcmp(mode, "last"), fast = !strcmp(arith, "fast");
    if (threads < 1 || n < 2 || runs < 1 || runs > 1000 || batch < 1 || batch > 256 ||
        (!last && strcmp(mode, "all") != 0) || (!fast && strcmp(arith, "exact") != 0)) {
        fprintf(stderr, "bench_pp: bad arguments\n");
        return 2;
    }
    dl_error err;
    dl_error_clear(&err);
    lm_model *m = NULL;
    if (lm_model_load(argv[1], &m, &err) != DL_OK) {
        fprintf(stderr, "bench_pp: %s\n", err.message);
        return 1;
    }
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = "blas";
    p.n_threads = threads;
    p.n_ctx = n;
    p.q8_act = fast;
    lm_ctx *ctx = NULL;
    double tc = now();
    if (lm_ctx_new(m, &p, &ctx, &err) != DL_OK) {
        fprintf(stderr, "bench_pp: %s\n", err.message);
        return 1;
    }
    /* stderr: the result line on stdout keeps its format (vs_llamacpp.sh);
     * in fast mode this is mostly the packing of the weights */
    fprintf(stderr, "bench_pp: context created in %.3f s\n", now() - tc);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *lp = malloc((size_t)(n * batch) * sizeof *lp);
    lm_seq *seqs = malloc((size_t)batch * sizeof *seqs);
    double *tps = malloc((size_t)runs * sizeof *tps);
    uint32_t x = 12345, nv = (uint32_t)m->hp.n_vocab;
    for (int64_t i = 0; i < n; i++) { /* as vs_llamacpp.mjs: ids 3 .. n_vocab-1 */
        x = x * 1103515245u + 12345u;
        ids[i] = (int32_t)(3 + x % (nv - 3));
    }
    for (int64_t b = 0; b < batch; b++)
        seqs[b] = (lm_seq){ids, n, last ? n - 1 : 1, n};
    for (int64_t r = -1; r < runs; r++) {
        double t0 = now();
        if (lm_ctx_score(ctx, NULL, seqs, batch, lp, NULL, &err) != DL_OK) {
            fprintf(stderr, "bench_pp: %s\n", err.message);
            return 1;
        }
        if (r >= 0) /* r = -1: the warm-up */
            tps[r] = (double)(n * batch) / (now() - t0);
    }
    qsort(tps, (size_t)runs, sizeof *tps, cmp_double);
    printf("delift%-4s %-26s pp%lld x %lld threads %lld: best %6.0f tok/s, median %6.0f tok/s "
           "(%lld runs)\n", last ? (fast ? "-1F" : "-1") : (fast ? "-F" : ""), argv[1], (long long)n, (long long)batch,
           (long long)threads, tps[runs - 1], tps[runs / 2], (long long)runs);
    free(tps);
    free(seqs);
    free(lp);
    free(ids);
    lm_ctx_free(ctx);
    lm_model_free(m);
    return 0;
}
