/* check_lm_team.c: a lone lane borrowing the idle lanes' cores (lm_team,
 * the blas backend's set_threads) gives the same bits as working alone.
 *
 * - The blas matmul op on a real weight, for one and for several segments
 *   longer than a row chunk: one thread vs a team of two vs three,
 *   bit-identical.
 * - End to end through lm_ctx: a 300-token sequence scored alone with 2
 *   threads (the lane gets a team) equals the same with 1 thread and the
 *   same inside a batch (lanes, no team); a 200-token prefix built with a
 *   team plus a continuation; lm_ctx_logits; bit for bit.
 * - The chunked blas path against the ref backend (the oracle) on the
 *   300-token sequence, within the engine's 1e-4.
 * Models: data/delift-mini-q8_0.gguf and data/delift-mini-q4_k_m.gguf
 * (always here), delift-mini F32 from ../shared when present.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "lm_backend.h"
#include "lm_model.h"
#include "lm_score.h"

static const char *model_path(int i)
{
    static const char *const rel[] = {"data/delift-mini-q8_0.gguf", "data/delift-mini-q4_k_m.gguf"};
    if (i < 2)
        return dl_test_src(rel[i]);
    return dl_test_shared("models/delift-mini-f32.gguf"); /* NULL when absent */
}

static lm_model *load(int i)
{
    const char *p = model_path(i);
    if (!p)
        return NULL;
    lm_model *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(lm_model_load(p, &m, &err) == DL_OK, "%s: %s", p, err.message);
    return m;
}

static uint32_t rng = 99;
static int32_t rnd_token(int64_t n_vocab)
{
    rng = rng * 1103515245u + 12345u;
    return (int32_t)(3 + (rng >> 8) % (uint32_t)(n_vocab - 3));
}

START_TEST(test_matmul_op_team)
{
    lm_model *m = load(_i);
    if (!m)
        return;
    const lm_backend_ops *ops = lm_backend_find("blas");
    ck_assert_ptr_nonnull(ops);
    ck_assert_ptr_nonnull(ops->set_threads);
    lm_backend_params bp = {.max_rows = 300, .max_ctx = 512, .max_logit_rows = 256};
    lm_backend *be = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_int_eq(ops->create(m, &bp, &be, &err), DL_OK);
    const lm_weight *w[] = {m->layers[0].w_gate, m->layers[1].wq, m->layers[2].w_down, m->output};
    int64_t K_max = m->hp.n_ff, N_max = m->hp.n_vocab;
    float *x = ops->buf_alloc(be, 300 * K_max);
    float *y1 = ops->buf_alloc(be, 300 * N_max), *y2 = ops->buf_alloc(be, 300 * N_max);
    for (int64_t i = 0; i < 300 * K_max; i++)
        x[i] = (float)((int)(rnd_token(1000) % 200) - 100) / 64.0f;
    static const int64_t segs[2][5] = {{0, 300}, {0, 130, 140, 297, 300}};
    static const int64_t n_segs[2] = {1, 4};
    for (size_t wi = 0; wi < sizeof w / sizeof w[0]; wi++) {
        for (int sv = 0; sv < 2; sv++) {
            int64_t n = segs[sv][n_segs[sv]], N = w[wi]->n_rows;
            ck_assert_int_eq(ops->set_threads(be, 1), 1);
            ops->matmul(be, x, w[wi]->n_cols, segs[sv], n_segs[sv], w[wi], NULL, y1);
            for (int t = 2; t <= 3; t++) {
                memset(y2, 0xFF, (size_t)(n * N) * sizeof *y2);
                int got = ops->set_threads(be, t);
                ck_assert_int_ge(got, 2); /* the team of the first call: 2 members */
                ops->matmul(be, x, w[wi]->n_cols, segs[sv], n_segs[sv], w[wi], NULL, y2);
                ck_assert_msg(memcmp(y1, y2, (size_t)(n * N) * sizeof *y1) == 0,
                              "weight %zu segments %d team %d: results differ", wi, sv, got);
            }
        }
    }
    ops->set_threads(be, 1);
    ops->buf_free(be, x);
    ops->buf_free(be, y1);
    ops->buf_free(be, y2);
    ops->destroy(be);
    lm_model_free(m);
}
END_TEST

static lm_ctx *ctx_new(const lm_model *m, const char *backend, int64_t threads)
{
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = backend;
    p.n_threads = threads;
    lm_ctx *ctx = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(lm_ctx_new(m, &p, &ctx, &err) == DL_OK, "%s", err.message);
    return ctx;
}

static void score(lm_ctx *ctx, const lm_prefix *pre, const lm_seq *q, int64_t n, float *out)
{
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(lm_ctx_score(ctx, pre, q, n, out, NULL, &err) == DL_OK, "%s", err.message);
}

START_TEST(test_scores_same_bits)
{
    lm_model *m = load(_i);
    if (!m)
        return;
    int64_t V = m->hp.n_vocab;
    int32_t a[300], b[150], c[90], pre[200], d[150];
    for (int i = 0; i < 300; i++)
        a[i] = rnd_token(V);
    for (int i = 0; i < 150; i++)
        b[i] = d[i] = rnd_token(V);
    for (int i = 0; i < 90; i++)
        c[i] = rnd_token(V);
    for (int i = 0; i < 200; i++)
        pre[i] = rnd_token(V);
    lm_ctx *one = ctx_new(m, "blas", 1), *two = ctx_new(m, "blas", 2);
    ck_assert_int_eq(lm_ctx_n_lanes(two), 2);
    lm_seq qa = {a, 300, 1, 300};
    float lp1[299], lp2[299], batch[299 + 149 + 89];
    score(one, NULL, &qa, 1, lp1);
    score(two, NULL, &qa, 1, lp2); /* alone: one lane with a team of two */
    ck_assert(memcmp(lp1, lp2, sizeof lp1) == 0);
    lm_seq qs[3] = {{b, 150, 1, 150}, {a, 300, 1, 300}, {c, 90, 1, 90}};
    score(two, NULL, qs, 3, batch); /* two lanes, no team */
    ck_assert(memcmp(lp1, batch + 149, sizeof lp1) == 0);
    /* a prefix evaluated by a team, then a continuation */
    dl_error err;
    dl_error_clear(&err);
    lm_prefix *p1 = NULL, *p2 = NULL;
    ck_assert_int_eq(lm_prefix_new(one, pre, 200, 350, &p1, &err), DL_OK);
    ck_assert_int_eq(lm_prefix_new(two, pre, 200, 350, &p2, &err), DL_OK);
    lm_seq qd = {d, 150, 0, 150};
    float c1[150], c2[150];
    score(one, p1, &qd, 1, c1);
    score(two, p2, &qd, 1, c2);
    ck_assert(memcmp(c1, c2, sizeof c1) == 0);
    lm_prefix_free(p1);
    lm_prefix_free(p2);
    /* logits at a few positions */
    int64_t pos[3] = {0, 170, 299};
    float *l1 = malloc((size_t)(3 * V) * sizeof *l1), *l2 = malloc((size_t)(3 * V) * sizeof *l2);
    ck_assert_int_eq(lm_ctx_logits(one, a, 300, pos, 3, l1, &err), DL_OK);
    ck_assert_int_eq(lm_ctx_logits(two, a, 300, pos, 3, l2, &err), DL_OK);
    ck_assert(memcmp(l1, l2, (size_t)(3 * V) * sizeof *l1) == 0);
    free(l1);
    free(l2);
    /* the chunked blas path against the ref backend */
    lm_ctx *ref = ctx_new(m, "ref", 2);
    float lr[299];
    score(ref, NULL, &qa, 1, lr);
    double worst = 0;
    for (int i = 0; i < 299; i++) {
        ck_assert(isfinite(lp2[i]) && lp2[i] <= 0);
        double e = fabs(lp2[i] - lr[i]) / (fabs(lr[i]) > 1 ? fabs(lr[i]) : 1);
        worst = e > worst ? e : worst;
    }
    ck_assert_msg(worst <= 1e-4, "blas vs ref: %g", worst);
    lm_ctx_free(ref);
    lm_ctx_free(one);
    lm_ctx_free(two);
    lm_model_free(m);
}
END_TEST

static Suite *team_suite(void)
{
    Suite *s = suite_create("lm_team");
    TCase *tc = tcase_create("team");
    tcase_add_loop_test(tc, test_matmul_op_team, 0, 3);
    tcase_add_loop_test(tc, test_scores_same_bits, 0, 3);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(team_suite());
}
