/* bench_lm.c: the inference engine's throughput, against baselines measured
 * in the same run.
 *
 *  1. OpenBLAS's own large-sgemm rate (2048^3, all cores): the ceiling.
 *  2. Teacher-forced scoring of batches of 256-token sequences on
 *     delift-mini F32 (blas backend, all cores): tokens/s and model FLOPs
 *     utilisation = model FLOP/s / (1).  Model FLOPs per sequence:
 *     2 x (projection parameters) x tokens + 2 x n_embd x n_vocab x targets
 *     (the output layer, at target positions only) + causal attention
 *     4 x n_head x head_dim x L(L+1)/2 per layer.  Target: >= 70 %.
 *  3. The same with the blas backend's portable softmax/SwiGLU kernels
 *     instead of the AVX2 ones (lm_backend_blas_set_isa; "blas-c"), on F16
 *     and Q8_0, on stories260K, and on the ref backend.
 *  4. 64 continuations of 128 tokens against one shared 256-token prefix
 *     vs the 64 full 384-token sequences: the ratio (target <= 0.6).
 *
 * Models come from $DELIFT_SHARED/models (default: ../shared beside the
 * source tree, whose path the build passes as DL_TOP_SRCDIR), else data/;
 * without them the benchmark says so and exits 0.
 * Usage: bench_lm [n_threads]
 */
#include "config.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lm_backend.h"
#include "lm_model.h"
#include "lm_score.h"
#include "bench_common.h"

#ifndef DL_TOP_SRCDIR
#define DL_TOP_SRCDIR "."
#endif

static char *model_path(const char *name)
{
    static char buf[4096];
    const char *root = getenv("DELIFT_SHARED");
    snprintf(buf, sizeof buf, "%s/models/%s", root ? root : DL_TOP_SRCDIR "/../shared", name);
    if (access(buf, R_OK) != 0)
        snprintf(buf, sizeof buf, "data/%s", name);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Model FLOPs of scoring one sequence of L tokens with targets [1, L). */
static double seq_flops(const lm_model *m, int64_t L)
{
    const lm_hparams *hp = &m->hp;
    double out = 2.0 * (double)hp->n_embd * (double)hp->n_vocab;
    double proj = lm_model_flops_per_token(m) - out;
    double att = 4.0 * (double)(hp->n_head * hp->head_dim) * (double)L * (double)(L + 1) / 2 *
                 (double)hp->n_layer;
    return proj * (double)L + out * (double)(L - 1) + att;
}

/* Random ids in [3, n_vocab) from a fixed LCG. */
static void fill_tokens(int32_t *t, int64_t n, int64_t n_vocab, uint64_t *state)
{
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int32_t)(3 + (int64_t)((*state >> 33) % (uint64_t)(n_vocab - 3)));
    }
}

/* Scores n_seqs random sequences of L tokens `reps` times; returns seconds
 * per pass (best of reps). */
static double time_scoring(lm_ctx *ctx, int64_t n_seqs, int64_t L, int reps)
{
    const lm_model *m = lm_ctx_model(ctx);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n_seqs * L));
    lm_seq *q = malloc(sizeof *q * (size_t)n_seqs);
    float *lp = malloc(sizeof(float) * (size_t)(n_seqs * L));
    uint64_t st = 42;
    fill_tokens(tok, n_seqs * L, m->hp.n_vocab, &st);
    for (int64_t i = 0; i < n_seqs; i++)
        q[i] = (lm_seq){tok + i * L, L, 1, L};
    double best = 1e30;
    dl_error err;
    for (int r = 0; r < reps; r++) {
        dl_error_clear(&err);
        double t = now();
        if (lm_ctx_score(ctx, NULL, q, n_seqs, lp, NULL, &err) != DL_OK) {
            fprintf(stderr, "bench_lm: %s\n", err.message);
            exit(1);
        }
        t = now() - t;
        best = t < best ? t : best;
    }
    free(tok);
    free(q);
    free(lp);
    return best;
}

static lm_ctx *open_ctx(const lm_model *m, const char *backend, int64_t threads)
{
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = backend;
    p.n_threads = threads;
    lm_ctx *ctx = NULL;
    dl_error err;
    dl_error_clear(&err);
    if (lm_ctx_new(m, &p, &ctx, &err) != DL_OK) {
        fprintf(stderr, "bench_lm: %s\n", err.message);
        exit(1);
    }
    return ctx;
}

static void bench_file(const char *name, const char *backend, lm_quant_isa isa, int64_t threads,
                       int64_t n_seqs, double *sgemm)
{
    const char *path = model_path(name);
    if (!path) {
        printf("%-24s %-5s skipped (file not found)\n", name, backend);
        return;
    }
    lm_model *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    if (lm_model_load(path, &m, &err) != DL_OK) {
        fprintf(stderr, "bench_lm: %s\n", err.message);
        exit(1);
    }
    lm_quant_isa got = lm_backend_blas_set_isa(isa);
    lm_ctx *ctx = open_ctx(m, backend, threads);
    lm_backend_blas_set_isa(LM_QUANT_ISA_AUTO);
    const char *label = strcmp(backend, "blas") ? backend
                        : got == LM_QUANT_ISA_AVX2 ? "blas" : "blas-c";
    int64_t L = 256;
    /* Baseline and engine alternate, best of 5 each: the machine may be
     * shared, and the ratio should compare like with like. */
    double t = 1e30;
    for (int r = 0; r < (strcmp(backend, "ref") ? 5 : 1); r++) {
        double g = sgemm_gflops((int)threads);
        *sgemm = g > *sgemm ? g : *sgemm;
        double tr = time_scoring(ctx, n_seqs, L, 1);
        t = tr < t ? tr : t;
    }
    double gf = seq_flops(m, L) * (double)n_seqs / t / 1e9;
    printf("%-24s %-5s %3lld x %lld tokens: %9.0f tokens/s  %6.1f GFLOP/s  MFU %5.1f %% of sgemm\n",
           name, label, (long long)n_seqs, (long long)L, (double)(n_seqs * L) / t, gf,
           100 * gf / *sgemm);
    lm_ctx_free(ctx);
    lm_model_free(m);
}

/* 64 continuations of 128 tokens after one 256-token prefix, against the
 * 64 full sequences. */
static void bench_prefix(int64_t threads)
{
    const char *path = model_path("delift-mini-f32.gguf");
    if (!path)
        return;
    lm_model *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    if (lm_model_load(path, &m, &err) != DL_OK)
        return;
    lm_ctx *ctx = open_ctx(m, "blas", threads);
    int64_t P = 256, C = 128, N = 64;
    int32_t *full = malloc(sizeof(int32_t) * (size_t)(N * (P + C)));
    lm_seq *qf = malloc(sizeof *qf * (size_t)N), *qc = malloc(sizeof *qc * (size_t)N);
    float *lp = malloc(sizeof(float) * (size_t)(N * C));
    uint64_t st = 7;
    fill_tokens(full, P, m->hp.n_vocab, &st);
    for (int64_t i = 0; i < N; i++) {
        int32_t *s = full + i * (P + C);
        memcpy(s, full, sizeof(int32_t) * (size_t)P);
        fill_tokens(s + P, C, m->hp.n_vocab, &st);
        qf[i] = (lm_seq){s, P + C, P, P + C};
        qc[i] = (lm_seq){s + P, C, 0, C};
    }
    double best_full = 1e30, best_pre = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = now();
        lm_ctx_score(ctx, NULL, qf, N, lp, NULL, &err);
        t = now() - t;
        best_full = t < best_full ? t : best_full;
        t = now();
        lm_prefix *pre = NULL;
        lm_prefix_new(ctx, full, P, P, &pre, &err);
        lm_ctx_score(ctx, pre, qc, N, lp, NULL, &err);
        lm_prefix_free(pre);
        t = now() - t;
        best_pre = t < best_pre ? t : best_pre;
    }
    printf("shared prefix: 64 x (256 + 128) full %.3f s, prefix once + 64 x 128 %.3f s: "
           "ratio %.2f (target <= 0.6)\n",
           best_full, best_pre, best_pre / best_full);
    free(full);
    free(qf);
    free(qc);
    free(lp);
    lm_ctx_free(ctx);
    lm_model_free(m);
}

int main(int argc, char **argv)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t threads = argc > 1 ? atoll(argv[1]) : (online > 0 ? online : 1);
    if (!model_path("delift-mini-f32.gguf")) {
        printf("bench_lm: delift-mini-f32.gguf not found ($DELIFT_SHARED/models or data/): "
               "skipped\n");
        return 0;
    }
    double sgemm = 0;
    const lm_quant_isa a = LM_QUANT_ISA_AUTO;
    bench_file("delift-mini-f32.gguf", "blas", a, threads, 16, &sgemm);
    bench_file("delift-mini-f32.gguf", "blas", LM_QUANT_ISA_GENERIC, threads, 16, &sgemm);
    bench_file("delift-mini-f16.gguf", "blas", a, threads, 16, &sgemm);
    bench_file("delift-mini-q8_0.gguf", "blas", a, threads, 16, &sgemm);
    bench_file("stories260K.gguf", "blas", a, threads, 16, &sgemm);
    bench_file("delift-mini-f32.gguf", "ref", a, threads, 2, &sgemm);
    printf("OpenBLAS sgemm 2048^3, %lld threads, best seen: %.1f GFLOP/s (the MFU baseline; "
           "each line's MFU uses the best seen up to it)\n",
           (long long)threads, sgemm);
    bench_prefix(threads);
    return 0;
}
