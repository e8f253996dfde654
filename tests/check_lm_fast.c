/* check_lm_fast.c: the engine's fast mode (lm_ctx_params.q8_act) end to end.
 *
 * The fast mode multiplies Q8_0 weights with activations rounded to 8 bits
 * per 32-value block (lm_q8mm.h), so it cannot meet the exact path's 1e-4.
 * References:
 *  - ../shared/models/golden/delift-mini/logits_q8_0.json, written by an
 *    independent float64 forward over the same Q8_0 weights: every
 *    next-token log-probability of the six sequences, and the greedy tokens
 *    whose golden top-1/top-2 margin is clear (> FAST_MARGIN_MIN);
 *  - the exact path on the same file (the utilities of utility.json's
 *    records, fast against exact);
 *  - the fast mode itself under other batchings and thread counts: an output
 *    element depends on its own row only, so these are bit-identical.
 * The tolerances are explained where they are defined.  Skips (77) without
 * ../shared.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "lm_test.h"
#include "lm_model.h"
#include "lm_q8mm.h"
#include "lm_quant.h"
#include "lm_score.h"
#include "lm_tok.h"

/* Rounding an activation to 8 bits moves it by at most half a step, 1/254
 * of its block's largest magnitude.  Through six layers and the 4096-way
 * softmax this gives, measured on the golden sequences, a mean |delta log p|
 * of 0.0049 nats and a largest one of 0.070 (the prefix continuation:
 * 0.0063 and 0.047; F16 and F32, whose weights are rounded to 8 bits as
 * well: 0.0063 and 0.086).  Every CPU instance of lm_q8mm gives the same bits, so
 * the bounds only need room for other compilers' float code: about 3x.  They
 * still catch an error of 1 % in every product (measured: mean 0.018, max
 * 0.34), the size of a wrong scale (1/128 for 1/127). */
#define FAST_TOL_MEAN 0.015
#define FAST_TOL_MAX 0.2
/* Greedy tokens are compared where the golden margin exceeds what the
 * rounding can move a logit difference (largest measured logit error x 2
 * with room). */
#define FAST_MARGIN_MIN 0.5

static dl_status try_ctx(const lm_model *m, const char *backend, int64_t threads, int fast,
                         lm_ctx **ctx, dl_error *err)
{
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = backend;
    p.n_threads = threads;
    p.q8_act = fast;
    return lm_ctx_new(m, &p, ctx, err);
}

static lm_ctx *new_ctx(const lm_model *m, int64_t threads, int fast)
{
    lm_ctx *ctx = NULL;
    dl_error err;
    dl_error_clear(&err);
    dl_status st = try_ctx(m, "blas", threads, fast, &ctx, &err);
    ck_assert_msg(st == DL_OK, "lm_ctx_new: %s", err.message);
    ck_assert_int_eq(lm_ctx_q8_act(ctx), fast);
    return ctx;
}

/* The golden sequences as scoring requests: every next token. */
typedef struct golden_set {
    json_t *json;
    int64_t n;
    lm_seq q[16];
    int32_t *ids[16];
    int64_t n_lp; /* sum of the spans */
} golden_set;

static void golden_load(golden_set *g, const char *rel)
{
    memset(g, 0, sizeof *g);
    g->json = lm_test_load_json(rel);
    json_t *seqs = json_object_get(g->json, "sequences");
    g->n = (int64_t)json_array_size(seqs);
    ck_assert(g->n > 0 && g->n <= 16);
    for (int64_t i = 0; i < g->n; i++) {
        json_t *t = json_object_get(json_array_get(seqs, (size_t)i), "tokens");
        int64_t n = (int64_t)json_array_size(t);
        g->ids[i] = malloc(sizeof(int32_t) * (size_t)n);
        ck_assert_ptr_nonnull(g->ids[i]);
        for (int64_t k = 0; k < n; k++)
            g->ids[i][k] = (int32_t)json_integer_value(json_array_get(t, (size_t)k));
        g->q[i] = (lm_seq){g->ids[i], n, 1, n};
        g->n_lp += n - 1;
    }
}

static void golden_free(golden_set *g)
{
    for (int64_t i = 0; i < g->n; i++)
        free(g->ids[i]);
    json_decref(g->json);
}

/* Scores the set's sequences [s0, s1) as one call into lp. */
static void score_range(lm_ctx *ctx, const golden_set *g, int64_t s0, int64_t s1, float *lp)
{
    dl_error err;
    dl_error_clear(&err);
    dl_status st = lm_ctx_score(ctx, NULL, g->q + s0, s1 - s0, lp, NULL, &err);
    ck_assert_msg(st == DL_OK, "score: %s", err.message);
}

START_TEST(test_fast_refused_by_ref)
{
    lm_model *m = lm_test_load_model("models/delift-mini-q8_0.gguf");
    lm_ctx *ctx = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_int_eq(try_ctx(m, "ref", 1, 1, &ctx, &err), DL_ERR_USAGE);
    ck_assert_ptr_null(ctx);
    ck_assert_msg(strstr(err.message, "fast") != NULL, "%s", err.message);
    lm_model_free(m);
}
END_TEST

/* The fast mode against a float64 golden of the same file: log-probabilities
 * and clear greedy tokens; the exact path on the same data as a control
 * (<= 1e-4).  Returns the mean |delta|. */
static double check_fast_golden(const char *model_rel, const char *golden_rel, double tol_mean,
                                double tol_max)
{
    lm_model *m = lm_test_load_model(model_rel);
    golden_set g;
    golden_load(&g, golden_rel);
    float *lp = malloc(sizeof(float) * (size_t)g.n_lp), *ex = malloc(sizeof(float) * (size_t)g.n_lp);
    lm_ctx *fast = new_ctx(m, 2, 1), *exact = new_ctx(m, 2, 0);
    score_range(fast, &g, 0, g.n, lp);
    score_range(exact, &g, 0, g.n, ex);
    json_t *seqs = json_object_get(g.json, "sequences");
    double sum = 0, mx = 0, differ = 0;
    int64_t at = 0, greedy_checked = 0;
    int64_t V = m->hp.n_vocab;
    float *row = malloc(sizeof(float) * (size_t)V);
    dl_error err;
    dl_error_clear(&err);
    for (int64_t i = 0; i < g.n; i++) {
        json_t *s = json_array_get(seqs, (size_t)i);
        json_t *ref = json_object_get(s, "next_token_logprobs");
        for (int64_t t = 0; t + 1 < g.q[i].n_tokens; t++, at++) {
            double r = json_real_value(json_array_get(ref, (size_t)t));
            double d = fabs((double)lp[at] - r);
            ck_assert_msg(fabs((double)ex[at] - r) <= 1e-4 * (fabs(r) > 1 ? fabs(r) : 1),
                          "exact control seq %lld tok %lld", (long long)i, (long long)t);
            sum += d;
            mx = d > mx ? d : mx;
            differ += lp[at] != ex[at];
        }
        /* greedy: the first step of the golden continuation, from the logits */
        json_t *gr = json_object_get(s, "greedy32");
        json_t *mg = json_object_get(s, "greedy32_top1_minus_top2_logit");
        if (json_real_value(json_array_get(mg, 0)) > FAST_MARGIN_MIN) {
            int64_t pos = g.q[i].n_tokens - 1;
            ck_assert_int_eq(lm_ctx_logits(fast, g.ids[i], g.q[i].n_tokens, &pos, 1, row, &err),
                             DL_OK);
            int64_t best = 0;
            for (int64_t t = 1; t < V; t++)
                if (row[t] > row[best])
                    best = t;
            ck_assert_int_eq(best, json_integer_value(json_array_get(gr, 0)));
            greedy_checked++;
        }
    }
    double mean = sum / (double)g.n_lp;
    fprintf(stderr, "fast vs golden, %s: %lld log-probs, mean |d| %.5f, max %.5f, %lld greedy\n",
            model_rel, (long long)g.n_lp, mean, mx, (long long)greedy_checked);
    ck_assert_msg(mean <= tol_mean, "mean |d| %.5f > %.3f", mean, tol_mean);
    ck_assert_msg(mx <= tol_max, "max |d| %.5f > %.3f", mx, tol_max);
    /* the mode is really on: most values differ from the exact path's */
    ck_assert_msg(differ > 0.9 * (double)g.n_lp, "only %.0f of %lld differ", differ,
                  (long long)g.n_lp);
    ck_assert_int_gt(greedy_checked, 0);
    free(row);
    free(lp);
    free(ex);
    lm_ctx_free(fast);
    lm_ctx_free(exact);
    golden_free(&g);
    lm_model_free(m);
    return mean;
}

START_TEST(test_fast_golden_q8)
{
    check_fast_golden("models/delift-mini-q8_0.gguf", "models/golden/delift-mini/logits_q8_0.json",
                      FAST_TOL_MEAN, FAST_TOL_MAX);
}
END_TEST

/* F16 and F32 files: the weights are rounded to 8 bits too (once, when the
 * context is made), which adds an error of the same kind: the same bounds
 * (see FAST_TOL_MEAN) against their own goldens. */
START_TEST(test_fast_golden_f16_f32)
{
    check_fast_golden("models/delift-mini-f16.gguf", "models/golden/delift-mini/logits_f16.json",
                      FAST_TOL_MEAN, FAST_TOL_MAX);
    check_fast_golden("models/delift-mini-f32.gguf", "models/golden/delift-mini/logits.json",
                      FAST_TOL_MEAN, FAST_TOL_MAX);
}
END_TEST

/* The K-quant files of data/ (written by llama.cpp; Q4_K, Q5_K, Q6_K, Q5_0,
 * Q5_1, Q8_0 matrices), whose every matrix is encoded as Q8_0 for the fast
 * mode: fast against exact on the same file, within the golden bounds (their
 * own error against F32 is ten times larger: check_lm_ggml). */
START_TEST(test_fast_kquants)
{
    static const char *const files[] = {"data/delift-mini-q4_k_m.gguf",
                                        "data/delift-mini-q5_k_m.gguf"};
    golden_set g;
    golden_load(&g, "models/golden/delift-mini/logits.json");
    float *a = malloc(sizeof(float) * (size_t)g.n_lp), *b = malloc(sizeof(float) * (size_t)g.n_lp);
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        lm_model *m = NULL;
        dl_error err;
        dl_error_clear(&err);
        ck_assert_msg(lm_model_load(dl_test_src(files[f]), &m, &err) == DL_OK, "%s", err.message);
        lm_ctx *exact = new_ctx(m, 2, 0), *fast = new_ctx(m, 2, 1);
        score_range(exact, &g, 0, g.n, a);
        score_range(fast, &g, 0, g.n, b);
        double sum = 0, mx = 0;
        for (int64_t i = 0; i < g.n_lp; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            sum += d;
            mx = d > mx ? d : mx;
        }
        fprintf(stderr, "fast vs exact, %s: mean |d| %.5f, max %.5f\n", files[f],
                sum / (double)g.n_lp, mx);
        ck_assert(sum > 0); /* the mode is on */
        ck_assert_msg(sum / (double)g.n_lp <= FAST_TOL_MEAN, "mean %.5f", sum / (double)g.n_lp);
        ck_assert_msg(mx <= FAST_TOL_MAX, "max %.5f", mx);
        lm_ctx_free(exact);
        lm_ctx_free(fast);
        lm_model_free(m);
    }
    free(a);
    free(b);
    golden_free(&g);
}
END_TEST

/* The Q8_0 encoder that the fast mode applies to other types
 * (lm_quant_quantize_row_q8_0) against an independent one: the converter
 * that wrote ../shared's delift-mini-q8_0.gguf from the F32 file.  Every
 * block of every matrix must come out byte for byte the same. */
START_TEST(test_q8_0_encoder_matches_file)
{
    lm_model *f32 = lm_test_load_model("models/delift-mini-f32.gguf");
    lm_model *q8 = lm_test_load_model("models/delift-mini-q8_0.gguf");
    int64_t blocks = 0, differ = 0;
    for (int32_t i = 0; i < q8->n_weights; i++) {
        const lm_weight *w = &q8->weights[i], *src = NULL;
        if (w->type != LM_QTYPE_Q8_0)
            continue;
        for (int32_t k = 0; k < f32->n_weights && !src; k++)
            if (!strcmp(f32->weights[k].name, w->name))
                src = &f32->weights[k];
        ck_assert_msg(src && src->type == LM_QTYPE_F32 && src->n_cols == w->n_cols &&
                          src->n_rows == w->n_rows, "%s", w->name);
        unsigned char *row = malloc(w->row_bytes);
        for (int64_t r = 0; r < w->n_rows; r++) {
            lm_quant_quantize_row_q8_0((const float *)src->data + r * src->n_cols, row, w->n_cols);
            const unsigned char *want = (const unsigned char *)w->data + (size_t)r * w->row_bytes;
            for (int64_t b = 0; b < w->n_cols / 32; b++, blocks++)
                differ += memcmp(row + 34 * b, want + 34 * b, 34) != 0;
        }
        free(row);
    }
    fprintf(stderr, "Q8_0 encoder: %lld blocks, %lld differ from the file\n", (long long)blocks,
            (long long)differ);
    ck_assert_int_gt(blocks, 100000);
    ck_assert_int_eq(differ, 0);
    lm_model_free(f32);
    lm_model_free(q8);
}
END_TEST

/* The same bits scored one by one on one thread, as one batch over two
 * lanes, and one long sequence alone on a two-thread team. */
START_TEST(test_fast_batch_threads_identical)
{
    lm_model *m = lm_test_load_model("models/delift-mini-q8_0.gguf");
    golden_set g;
    golden_load(&g, "models/golden/delift-mini/logits_q8_0.json");
    size_t bytes = sizeof(float) * (size_t)g.n_lp;
    float *one = malloc(bytes), *batch = malloc(bytes), *team = malloc(bytes);
    lm_ctx *c1 = new_ctx(m, 1, 1), *c2 = new_ctx(m, 2, 1);
    for (int64_t i = 0, off = 0; i < g.n; off += g.q[i].n_tokens - 1, i++) {
        score_range(c1, &g, i, i + 1, one + off);
        score_range(c2, &g, i, i + 1, team + off); /* alone: the lane borrows a team */
    }
    score_range(c2, &g, 0, g.n, batch);
    ck_assert(memcmp(one, batch, bytes) == 0);
    ck_assert(memcmp(one, team, bytes) == 0);
    lm_ctx_free(c1);
    lm_ctx_free(c2);
    free(one);
    free(batch);
    free(team);
    golden_free(&g);
    lm_model_free(m);
}
END_TEST

/* Packing on several threads (each takes the next matrix) gives the packs
 * of one thread: on the F16 file (every matrix converted to Q8_0 first),
 * a context of 4 threads scores every golden sequence with the bits of a
 * 1-thread context. */
START_TEST(test_fast_pack_threads_identical)
{
    lm_model *m = lm_test_load_model("models/delift-mini-f16.gguf");
    golden_set g;
    golden_load(&g, "models/golden/delift-mini/logits_f16.json");
    size_t bytes = sizeof(float) * (size_t)g.n_lp;
    float *one = malloc(bytes), *four = malloc(bytes);
    lm_ctx *c1 = new_ctx(m, 1, 1), *c4 = new_ctx(m, 4, 1);
    score_range(c1, &g, 0, g.n, one);
    score_range(c4, &g, 0, g.n, four);
    ck_assert(memcmp(one, four, bytes) == 0);
    lm_ctx_free(c1);
    lm_ctx_free(c4);
    free(one);
    free(four);
    golden_free(&g);
    lm_model_free(m);
}
END_TEST

/* A shared prefix and its continuation.  The attention over a cached past
 * sums in another grouping than over the whole sequence, and an activation
 * that lands near a rounding boundary may then take the other 8-bit value:
 * so the continuation is held to the golden tolerances (as the whole
 * sequence is), not to the exact path's prefix bound of 1e-5. */
START_TEST(test_fast_prefix)
{
    lm_model *m = lm_test_load_model("models/delift-mini-q8_0.gguf");
    golden_set g;
    golden_load(&g, "models/golden/delift-mini/logits_q8_0.json");
    lm_ctx *ctx = new_ctx(m, 2, 1);
    dl_error err;
    dl_error_clear(&err);
    int64_t longest = 0;
    for (int64_t i = 1; i < g.n; i++)
        if (g.q[i].n_tokens > g.q[longest].n_tokens)
            longest = i;
    const lm_seq *s = &g.q[longest];
    json_t *ref = json_object_get(json_array_get(json_object_get(g.json, "sequences"),
                                                 (size_t)longest), "next_token_logprobs");
    int64_t cut = s->n_tokens / 2, n = s->n_tokens;
    float *cont = malloc(sizeof(float) * (size_t)n);
    lm_prefix *p = NULL;
    ck_assert_int_eq(lm_prefix_new(ctx, s->tokens, cut, cut, &p, &err), DL_OK);
    lm_seq c = {s->tokens + cut, n - cut, 0, n - cut};
    ck_assert_int_eq(lm_ctx_score(ctx, p, &c, 1, cont, NULL, &err), DL_OK);
    double mx = 0, sum = 0;
    for (int64_t t = 0; t < n - cut; t++) { /* cont[t]: token cut + t */
        double d = fabs((double)cont[t] -
                        json_real_value(json_array_get(ref, (size_t)(cut + t - 1))));
        sum += d;
        mx = d > mx ? d : mx;
    }
    fprintf(stderr, "fast prefix (%lld + %lld tokens) vs golden: mean |d| %.5f, max %.5f\n",
            (long long)cut, (long long)(n - cut), sum / (double)(n - cut), mx);
    ck_assert_msg(sum / (double)(n - cut) <= FAST_TOL_MEAN, "prefix mean |d| %.5f",
                  sum / (double)(n - cut));
    ck_assert_msg(mx <= FAST_TOL_MAX, "prefix max |d| %.5f", mx);
    lm_prefix_free(p);
    lm_ctx_free(ctx);
    free(cont);
    golden_free(&g);
    lm_model_free(m);
}
END_TEST

/* The integer kernel's instances (lm_q8mm.h) give the same bits through the
 * whole model: the two shortest golden sequences under each instance this
 * CPU runs (the portable one is slow: not the long ones). */
START_TEST(test_fast_instances_agree)
{
    lm_model *m = lm_test_load_model("models/delift-mini-q8_0.gguf");
    golden_set g;
    golden_load(&g, "models/golden/delift-mini/logits_q8_0.json");
    int64_t a = 0, b = 1; /* the two shortest */
    if (g.q[b].n_tokens < g.q[a].n_tokens)
        a = 1, b = 0;
    for (int64_t i = 2; i < g.n; i++) {
        if (g.q[i].n_tokens < g.q[a].n_tokens)
            b = a, a = i;
        else if (g.q[i].n_tokens < g.q[b].n_tokens)
            b = i;
    }
    size_t n_lp = (size_t)(g.q[a].n_tokens + g.q[b].n_tokens - 2);
    float *want = malloc(sizeof(float) * n_lp), *got = malloc(sizeof(float) * n_lp);
    lm_ctx *ctx = new_ctx(m, 2, 1);
    lm_q8mm_isa best = lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
    score_range(ctx, &g, a, a + 1, want);
    score_range(ctx, &g, b, b + 1, want + g.q[a].n_tokens - 1);
    const lm_q8mm_isa others[] = {LM_Q8MM_ISA_AVXVNNI, LM_Q8MM_ISA_AVX2, LM_Q8MM_ISA_GENERIC};
    int compared = 0;
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (others[i] == best || lm_q8mm_set_isa(others[i]) != others[i])
            continue;
        score_range(ctx, &g, a, a + 1, got);
        score_range(ctx, &g, b, b + 1, got + g.q[a].n_tokens - 1);
        ck_assert_msg(memcmp(want, got, sizeof(float) * n_lp) == 0, "%s differs from %s",
                      lm_q8mm_isa_name(others[i]), lm_q8mm_isa_name(best));
        compared++;
    }
    lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
    ck_assert_int_gt(compared, 0); /* at least the portable one */
    lm_ctx_free(ctx);
    free(want);
    free(got);
    golden_free(&g);
    lm_model_free(m);
}
END_TEST

static Suite *lm_fast_suite(void)
{
    Suite *s = suite_create("lm_fast");
    TCase *tc = tcase_create("fast");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fast_refused_by_ref);
    tcase_add_test(tc, test_fast_golden_q8);
    tcase_add_test(tc, test_fast_golden_f16_f32);
    tcase_add_test(tc, test_fast_kquants);
    tcase_add_test(tc, test_q8_0_encoder_matches_file);
    tcase_add_test(tc, test_fast_batch_threads_identical);
    tcase_add_test(tc, test_fast_pack_threads_identical);
    tcase_add_test(tc, test_fast_prefix);
    tcase_add_test(tc, test_fast_instances_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    dl_test_require_shared("models/delift-mini-q8_0.gguf");
    if (lm_q8mm_isa_best() == LM_Q8MM_ISA_GENERIC) {
        printf("SKIP: the fast mode needs AVX2 and FMA\n");
        return 77;
    }
    return dl_test_run(lm_fast_suite());
}
