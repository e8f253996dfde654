/* bench_knn.c: knn_search (FAISS) against the brute-force backend, same run.
 *
 * Usage: bench_knn [n ...]   (default: 2000 20000)
 *   Environment: BENCH_KNN_BRUTE_MAX (default 2000), the most queries the
 *   brute-force baseline runs per size.
 *
 * DELIFT's `--pairs knn:K` setting: a pool of n embeddings of dimension 256
 * searched against itself, k = 16.  The pool is "blobs" (64 random centres
 * plus uniform noise, fixed seed), so that neighbours mean something, as
 * for real embeddings.  knn_search runs every query; the brute-force
 * baseline (knn_search_brute, what knn_search runs --without-faiss) runs
 * the first min(n, BENCH_KNN_BRUTE_MAX) queries against the whole pool,
 * its time scaled by n / that count (its cost is linear in the queries:
 * the full 20000^2 x 256 scalar run takes minutes).  The two must agree bit
 * for bit on those queries; the bench fails if they do not.
 *
 * Printed per size: wall and process-CPU seconds of both (FAISS uses every
 * core through OpenMP and OpenBLAS, the baseline one), the ratio of each,
 * and how many queries FAISS's candidates could not settle (rescans).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "knn.h"
#include "knn_int.h"

enum { DIM = 256, K = 16, CENTRES = 64 };

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t g_rng = 42;

/* Uniform in [-1, 1) (splitmix64). */
static float rnd(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * 0x1.0p-52 - 1.0);
}

/* The pool [n, DIM]: each row a random centre plus noise of a third of its
 * scale. */
static float *pool_new(int64_t n)
{
    float *c = malloc((size_t)CENTRES * DIM * sizeof *c);
    float *x = malloc((size_t)n * DIM * sizeof *x);
    if (!c || !x) {
        free(c);
        free(x);
        return NULL;
    }
    for (int64_t i = 0; i < (int64_t)CENTRES * DIM; i++)
        c[i] = rnd();
    for (int64_t i = 0; i < n; i++) {
        const float *ci = c + (int64_t)((rnd() + 1.0f) * 0.5f * (CENTRES - 1) + 0.5f) * DIM;
        for (int64_t t = 0; t < DIM; t++)
            x[i * DIM + t] = ci[t] + rnd() / 3.0f;
    }
    free(c);
    return x;
}

/* One size; returns 0 when both ran and agree. */
static int bench_one(int64_t n, int64_t brute_max)
{
    float *x = pool_new(n);
    int64_t nb = n < brute_max ? n : brute_max;
    int64_t *idx = malloc((size_t)(n * K) * sizeof *idx);
    int64_t *idx_b = malloc((size_t)(nb * K) * sizeof *idx_b);
    float *sim = malloc((size_t)(n * K) * sizeof *sim);
    float *sim_b = malloc((size_t)(nb * K) * sizeof *sim_b);
    int rc = 1;
    if (!x || !idx || !idx_b || !sim || !sim_b) {
        fprintf(stderr, "bench_knn: out of memory at n = %lld\n", (long long)n);
        goto done;
    }
    dl_error err = {0};
    int64_t rescans = 0;
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    dl_status st = knn_search_counted(x, n, x, n, DIM, K, idx, sim, &rescans, &err);
    double w1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (st == DL_OK)
        st = knn_search_brute(x, nb, x, n, DIM, K, idx_b, sim_b, &err);
    double w2 = clock_s(CLOCK_MONOTONIC), c2 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (st != DL_OK) {
        fprintf(stderr, "bench_knn: %s\n", err.message);
        goto done;
    }
    if (memcmp(idx, idx_b, (size_t)(nb * K) * sizeof *idx) != 0 ||
        memcmp(sim, sim_b, (size_t)(nb * K) * sizeof *sim) != 0) {
        fprintf(stderr, "bench_knn: %s and brute force disagree at n = %lld\n",
                knn_backend_name(), (long long)n);
        goto done;
    }
    double scale = (double)n / (double)nb;
    double bw = (w2 - w1) * scale, bc = (c2 - c1) * scale;
    printf("n %6lld dim %d k %d | %-11s wall %8.3f s cpu %8.3f s (rescans %lld) | "
           "brute-force wall %8.3f s cpu %8.3f s%s | ratio wall %6.1fx cpu %6.1fx\n",
           (long long)n, DIM, K, knn_backend_name(), w1 - w0, c1 - c0, (long long)rescans, bw,
           bc, nb < n ? " (scaled)" : "", bw / (w1 - w0), bc / (c1 - c0));
    if (nb < n)
        printf("  brute force ran %lld of %lld queries (x %.0f); agreement checked on those\n",
               (long long)nb, (long long)n, scale);
    rc = 0;
done:
    free(x);
    free(idx);
    free(idx_b);
    free(sim);
    free(sim_b);
    return rc;
}

int main(int argc, char **argv)
{
    static const int64_t sizes[] = {2000, 20000};
    const char *env = getenv("BENCH_KNN_BRUTE_MAX");
    int64_t brute_max = env ? strtoll(env, NULL, 10) : 2000;
    if (brute_max < 1)
        brute_max = 1;
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            int64_t n = strtoll(argv[i], NULL, 10);
            if (n < K) {
                fprintf(stderr, "usage: bench_knn [n ...] (n >= %d)\n", K);
                return 1;
            }
            rc |= bench_one(n, brute_max);
        }
    } else {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            rc |= bench_one(sizes[i], brute_max);
    }
    return rc;
}
