/* bench_ut.c: the utility phase of DELIFT (src/ut.c), against baselines
 * measured in the same run.
 *
 *  1. OpenBLAS's large-sgemm rate on all cores: the ceiling (bench_common.h).
 *  2. The dense utility kernel of the first N GSM8K train records
 *     (../shared/datasets) with delift-mini F32: d_noICL of every record and
 *     d_ICL of every pair, prefix sharing on, no cache.  Printed: pairs/s,
 *     tokens/s and model FLOPs utilisation = (2 x projection parameters x
 *     tokens evaluated + 2 x n_embd x n_vocab x scored positions) / time /
 *     ceiling (attention FLOPs left out: the MFU is a lower bound).
 *  3. The same pairs with sharing off (every prompt token evaluated with its
 *     own sequence): the time ratio shared / unshared, and the largest
 *     difference of d between the two (float rounding only).
 *  3b. The same pairs shared but with the truncation quantum 1 (exact cuts,
 *     so truncated pairs share nothing): the time ratio default / quantum 1,
 *     what the default quantum buys.
 *  3c. The shared run again in the fast mode (lm_ctx_params.q8_act: 8-bit
 *     weights and activations): pairs/s, the time ratio fast / exact, and
 *     the largest |d fast - d exact| (d is in [0, 1]).
 *  4. Projections from the measured pairs/s to the two goals: a
 *     dense 200-record GSM8K pool (40,200 sequences) <= 15 minutes, and
 *     knn:16 over 2,000 records (34,000 sequences) <= 20 minutes.  They are
 *     projections (pair cost measured on the same kind of records), said so.
 *
 * Usage: bench_ut [N] [threads]     (N default 24; needs ../shared; exits 0
 * with a message without it)
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "dl_sha256.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"
#include "rec.h"
#include "ut.h"

#ifndef DL_TOP_SRCDIR
#define DL_TOP_SRCDIR "."
#endif

static const char *shared_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("DELIFT_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : DL_TOP_SRCDIR "/../shared", rel);
    FILE *f = fopen(buf, "rb");
    if (!f)
        return NULL;
    fclose(f);
    return buf;
}

typedef struct run_out {
    double seconds, pairs_per_s, tokens_per_s, gflops;
    ut_stats st;
} run_out;

static int run_once(lm_ctx *ctx, const lm_tok *tok, const ut_set *set, int sharing,
                    int64_t quantum, double *d, run_out *o)
{
    dl_error err = {0};
    ut_scorer *s = NULL;
    uint8_t mh[32] = {0};
    ut_config cfg = {.trunc_quantum = quantum};
    if (ut_scorer_new(ctx, tok, &cfg, mh, NULL, &s, &err)) {
        fprintf(stderr, "bench_ut: %s\n", err.message);
        return -1;
    }
    ut_scorer_set_sharing(s, sharing);
    int64_t n = set->n;
    double t = now();
    if (ut_score_noicl(s, set, d, NULL, &err) || ut_score_icl(s, set, set, NULL, d + n, NULL, &err)) {
        fprintf(stderr, "bench_ut: %s\n", err.message);
        ut_scorer_free(s);
        return -1;
    }
    o->seconds = now() - t;
    o->st = *ut_scorer_stats(s);
    ut_scorer_free(s);
    const lm_model *m = lm_ctx_model(ctx);
    double out = 2.0 * (double)m->hp.n_embd * (double)m->hp.n_vocab;
    double proj = lm_model_flops_per_token(m) - out;
    /* scored positions: the response tokens and EOS of every sequence */
    double targets = 0;
    for (int64_t i = 0; i < n; i++)
        targets += (double)set->items[i].n_resp * (double)(n + 1);
    double tokens = (double)(o->st.tokens_prefix + o->st.tokens_scored);
    o->gflops = (proj * tokens + out * targets) / o->seconds / 1e9;
    o->pairs_per_s = (double)(n * n + n) / o->seconds;
    o->tokens_per_s = tokens / o->seconds;
    return 0;
}

/* max |a[k] - b[k]| over the k where either is finite (unscorable pairs are
 * NaN in both). */
static double max_abs_diff(const double *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t k = 0; k < n; k++)
        if (isfinite(a[k]) || isfinite(b[k]))
            m = fmax(m, fabs(a[k] - b[k]));
    return m;
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 24, threads = argc > 2 ? atoll(argv[2]) : 0;
    char data[4096], model_file[4096];
    const char *dp = shared_path("datasets/gsm8k/train.jsonl"); /* a static buffer */
    snprintf(data, sizeof data, "%s", dp ? dp : "");
    const char *mp = dp ? shared_path("models/delift-mini-f32.gguf") : NULL;
    if (!dp || !mp || n < 2) {
        printf("bench_ut: ../shared (datasets/gsm8k, models/delift-mini-f32.gguf) not found; "
               "set DELIFT_SHARED.  Nothing measured.\n");
        return 0;
    }
    snprintf(model_file, sizeof model_file, "%s", mp);
    dl_error err = {0};
    rec_reader_opts ro;
    rec_reader_opts_init(&ro);
    rec_reader *r = NULL;
    rec_pool pool = {0};
    if (rec_reader_open(data, &ro, &r, &err)) {
        fprintf(stderr, "bench_ut: %s\n", err.message);
        return 1;
    }
    /* the first n records (rec_pool_load would read the whole file) */
    pool.records = calloc((size_t)n, sizeof *pool.records);
    char **own = calloc((size_t)n * 3, sizeof *own);
    const rec_record *rec;
    while (pool.n < n && rec_reader_next(r, &rec, &err) == DL_OK && rec) {
        /* keep the fields the utility reads; the reader owns the rest */
        rec_record *x = &pool.records[pool.n];
        *x = *rec;
        x->instruction = own[3 * pool.n] = strndup(rec->instruction, rec->instruction_len);
        x->input = own[3 * pool.n + 1] = strndup(rec->input, rec->input_len);
        x->output = own[3 * pool.n + 2] = strndup(rec->output, rec->output_len);
        pool.n++;
    }
    rec_reader_free(r);
    if (pool.n < n) {
        fprintf(stderr, "bench_ut: %s: %s\n", data, err.code ? err.message : "too few records");
        return 1;
    }
    lm_model *m = NULL;
    lm_tok *tok = NULL;
    lm_ctx *ctx = NULL;
    ut_set *set = NULL;
    if (lm_model_load(model_file, &m, &err) || !(tok = lm_tok_from_gguf(m->gguf, &err)) ||
        ut_set_from_pool(&pool, tok, &set, &err)) {
        fprintf(stderr, "bench_ut: %s\n", err.message);
        return 1;
    }
    lm_ctx_params cp = lm_ctx_params_default();
    cp.n_threads = threads;
    if (lm_ctx_new(m, &cp, &ctx, &err)) {
        fprintf(stderr, "bench_ut: %s\n", err.message);
        return 1;
    }
    double ceiling = sgemm_gflops((int)lm_ctx_n_lanes(ctx));
    printf("OpenBLAS sgemm 2048^3 on %lld threads: %.1f GFLOP/s (the ceiling)\n",
           (long long)lm_ctx_n_lanes(ctx), ceiling);
    int64_t n_d = n + n * n;
    double *d1 = malloc((size_t)n_d * sizeof *d1), *d0 = malloc((size_t)n_d * sizeof *d0);
    run_out sh, un, q1;
    if (run_once(ctx, tok, set, 1, 0, d1, &sh) || run_once(ctx, tok, set, 0, 0, d0, &un))
        return 1;
    double worst = max_abs_diff(d1, d0, n_d);
    printf("utility, %lld GSM8K records, delift-mini F32, %lld lanes: %lld sequences "
           "(%lld truncated to the 512-token context)\n",
           (long long)n, (long long)lm_ctx_n_lanes(ctx), (long long)n_d,
           (long long)sh.st.pairs_truncated);
    printf("  shared prefixes : %7.2f s  %7.1f pairs/s  %8.0f tokens/s  %6.1f GFLOP/s  "
           "MFU %5.1f %% of sgemm\n",
           sh.seconds, sh.pairs_per_s, sh.tokens_per_s, sh.gflops, 100 * sh.gflops / ceiling);
    printf("  no sharing      : %7.2f s  %7.1f pairs/s  %8.0f tokens/s  %6.1f GFLOP/s  "
           "MFU %5.1f %% of sgemm\n",
           un.seconds, un.pairs_per_s, un.tokens_per_s, un.gflops, 100 * un.gflops / ceiling);
    printf("  sharing: time ratio %.3f (shared / unshared), tokens evaluated %lld vs %lld; "
           "max |d difference| %.2g\n",
           sh.seconds / un.seconds, (long long)(sh.st.tokens_prefix + sh.st.tokens_scored),
           (long long)(un.st.tokens_prefix + un.st.tokens_scored), worst);
    if (run_once(ctx, tok, set, 1, 1, d0, &q1))
        return 1;
    printf("  quantum 1       : %7.2f s  %7.1f pairs/s  (exact cuts: truncated pairs share "
           "nothing)\n", q1.seconds, q1.pairs_per_s);
    printf("  truncation quantum %d: time ratio %.3f (quantum %d / quantum 1), tokens "
           "evaluated %lld vs %lld\n", UT_TRUNC_QUANTUM_DEFAULT, sh.seconds / q1.seconds,
           UT_TRUNC_QUANTUM_DEFAULT, (long long)(sh.st.tokens_prefix + sh.st.tokens_scored),
           (long long)(q1.st.tokens_prefix + q1.st.tokens_scored));
    lm_ctx *fctx = NULL;
    cp.q8_act = 1;
    if (lm_ctx_new(m, &cp, &fctx, &err)) {
        printf("  fast mode       : not measured (%s)\n", err.message);
    } else {
        run_out fa;
        if (run_once(fctx, tok, set, 1, 0, d0, &fa))
            return 1;
        double dmax = max_abs_diff(d1, d0, n_d);
        printf("  fast mode       : %7.2f s  %7.1f pairs/s  %8.0f tokens/s  time ratio %.3f "
               "(fast / exact, shared); max |d fast - d exact| %.2g\n",
               fa.seconds, fa.pairs_per_s, fa.tokens_per_s, fa.seconds / sh.seconds, dmax);
        lm_ctx_free(fctx);
    }
    double dense200 = 40200.0 / sh.pairs_per_s, knn2000 = (2000.0 * 16 + 2000) / sh.pairs_per_s;
    printf("projection at this pair rate: dense 200-record pool %.1f min (goal <= 15: %s); "
           "knn:16 on 2,000 records %.1f min + embeddings (goal <= 20: %s)\n",
           dense200 / 60, dense200 <= 900 ? "met" : "NOT met", knn2000 / 60,
           knn2000 <= 1200 ? "met" : "NOT met");
    free(d0);
    free(d1);
    ut_set_free(set);
    lm_ctx_free(ctx);
    lm_tok_free(tok);
    lm_model_free(m);
    for (int64_t i = 0; i < 3 * n; i++)
        free(own[i]);
    free(own);
    free(pool.records);
    return 0;
}
