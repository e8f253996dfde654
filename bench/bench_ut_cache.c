/* bench_ut_cache.c: throughput of the score cache (src/ut_cache.h).
 *
 * Usage: bench_ut_cache [n [blocks [dir]]]
 *   n       entries per block (default 100000)
 *   blocks  blocks put one after another into the same file (default 3:
 *           the later ones land in a table that already holds the earlier
 *           ones, as in a long run)
 *   dir     where the scratch databases go (default $TMPDIR or /tmp); the
 *           figures depend on its file system's fsync
 *
 * Two key patterns, each in its own file:
 *   pairs   what ut_score_icl writes: block b is 10 examples (new ones each
 *           block) x n/10 targets (the same targets every block), ICL keys
 *   random  every key random (the worst case for locality), half NOICL
 * Each block is one ut_cache_put (one durable transaction), then one
 * ut_cache_get of the same n keys (all hits) and one of n absent keys (all
 * misses).  Printed per block: entries per second (wall clock: the commit's
 * fsync is part of the cost) and the ratio get/put.  A cache has no external
 * baseline; the in-run reference is the durable write of the same block.
 */
#include "config.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ut_cache.h"

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t g_rng = 0x5EED;

static uint64_t next_u64(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void fill_key(uint8_t *p)
{
    for (int w = 0; w < UT_CACHE_KEY_LEN; w += 8) {
        uint64_t r = next_u64();
        memcpy(p + w, &r, 8);
    }
}

/* Block b of pattern "pairs" (targets: the fixed target hashes) or
 * "random" (targets NULL). */
static void make_block(ut_cache_key *k, ut_cache_value *v, int64_t n, const uint8_t *targets)
{
    uint8_t example[UT_CACHE_KEY_LEN];
    int64_t per_example = n / 10 > 0 ? n / 10 : 1;
    for (int64_t i = 0; i < n; i++) {
        memset(&k[i], 0, sizeof k[i]);
        if (targets) {
            if (i % per_example == 0)
                fill_key(example);
            k[i].kind = UT_CACHE_ICL;
            memcpy(k[i].target, targets + (i % per_example) * UT_CACHE_KEY_LEN, UT_CACHE_KEY_LEN);
            memcpy(k[i].example, example, UT_CACHE_KEY_LEN);
        } else {
            k[i].kind = (uint8_t)(i & 1);
            fill_key(k[i].target);
            if (k[i].kind == UT_CACHE_ICL)
                fill_key(k[i].example);
        }
        v[i].d = (double)(next_u64() >> 11) * 0x1p-53;
        v[i].n_scored = (int32_t)(i % 500);
        v[i].n_cut = 0;
    }
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int fail(const dl_error *e)
{
    char buf[1024];
    fprintf(stderr, "bench_ut_cache: %s\n", dl_error_format(e, buf, sizeof buf));
    return 1;
}

typedef struct bench_buf {
    ut_cache_key *k, *miss;
    ut_cache_value *v, *got;
    uint8_t *found;
    uint8_t *targets; /* [n / 10][32] for "pairs" */
} bench_buf;

/* One pattern: blocks x (put, get hits, get misses) in a fresh file. */
static int bench_pattern(const char *path, const char *name, int64_t n, int64_t blocks,
                         bench_buf *bb, int pairs)
{
    dl_error e;
    dl_error_clear(&e);
    ut_cache *c = NULL;
    uint8_t scope_key[UT_CACHE_KEY_LEN] = {1};
    int64_t scope = 0;
    if (ut_cache_open(path, &c, &e) != DL_OK || ut_cache_scope(c, scope_key, name, &scope, &e)) {
        ut_cache_close(c);
        return fail(&e);
    }
    printf("%-7s %-6s %10s %12s %12s %12s %8s\n", "pattern", "block", "table", "put/s",
           "get-hit/s", "get-miss/s", "get/put");
    int rc = 0;
    for (int64_t b = 0; b < blocks && !rc; b++) {
        make_block(bb->k, bb->v, n, pairs ? bb->targets : NULL);
        make_block(bb->miss, bb->got, n, pairs ? bb->targets : NULL);
        double t0 = wall_now();
        if (ut_cache_put(c, scope, bb->k, bb->v, n, &e) != DL_OK) {
            rc = fail(&e);
            break;
        }
        double t1 = wall_now();
        if (ut_cache_get(c, scope, bb->k, n, bb->got, bb->found, &e) != DL_OK) {
            rc = fail(&e);
            break;
        }
        double t2 = wall_now();
        for (int64_t i = 0; i < n && !rc; i++)
            if (!bb->found[i] || memcmp(&bb->got[i].d, &bb->v[i].d, sizeof bb->got[i].d)) {
                fprintf(stderr, "bench_ut_cache: entry %" PRId64 " read back wrong\n", i);
                rc = 1;
            }
        if (!rc && ut_cache_get(c, scope, bb->miss, n, bb->got, bb->found, &e) != DL_OK)
            rc = fail(&e);
        double t3 = wall_now();
        for (int64_t i = 0; i < n && !rc; i++)
            if (bb->found[i]) {
                fprintf(stderr, "bench_ut_cache: absent entry %" PRId64 " found\n", i);
                rc = 1;
            }
        if (rc)
            break;
        double put_s = (double)n / (t1 - t0), get_s = (double)n / (t2 - t1);
        printf("%-7s %-6" PRId64 " %10" PRId64 " %12.0f %12.0f %12.0f %8.2f\n", name, b,
               (b + 1) * n, put_s, get_s, (double)n / (t3 - t2), get_s / put_s);
    }
    ut_cache_stats st;
    if (!rc && ut_cache_stat(c, &st, &e) == DL_OK)
        printf("%-7s file: %" PRId64 " bytes (with the log) for %" PRId64
               " entries, %.1f bytes/entry\n",
               name, st.file_bytes, st.n_entries, (double)st.file_bytes / (double)st.n_entries);
    ut_cache_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? strtoll(argv[1], NULL, 10) : 100000;
    int64_t blocks = argc > 2 ? strtoll(argv[2], NULL, 10) : 3;
    const char *base = argc > 3 ? argv[3] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (n <= 0 || blocks <= 0 || n > INT64_C(100000000)) {
        fprintf(stderr, "usage: bench_ut_cache [n [blocks [dir]]]\n");
        return 1;
    }
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/bench_ut_cache.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    bench_buf bb = {
        .k = malloc((size_t)n * sizeof *bb.k),
        .miss = malloc((size_t)n * sizeof *bb.miss),
        .v = malloc((size_t)n * sizeof *bb.v),
        .got = malloc((size_t)n * sizeof *bb.got),
        .found = malloc((size_t)n),
        .targets = malloc((size_t)(n / 10 + 1) * UT_CACHE_KEY_LEN),
    };
    int rc = !bb.k || !bb.miss || !bb.v || !bb.got || !bb.found || !bb.targets;
    if (rc)
        fprintf(stderr, "bench_ut_cache: out of memory\n");
    for (int64_t t = 0; !rc && t <= n / 10; t++)
        fill_key(bb.targets + t * UT_CACHE_KEY_LEN);
    printf("bench_ut_cache: %" PRId64 " blocks of %" PRId64 " entries under %s\n", blocks, n, dir);
    snprintf(path, sizeof path, "%s/pairs.sqlite", dir);
    if (!rc)
        rc = bench_pattern(path, "pairs", n, blocks, &bb, 1);
    snprintf(path, sizeof path, "%s/random.sqlite", dir);
    if (!rc)
        rc = bench_pattern(path, "random", n, blocks, &bb, 0);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(bb.k);
    free(bb.miss);
    free(bb.v);
    free(bb.got);
    free(bb.found);
    free(bb.targets);
    return rc;
}
