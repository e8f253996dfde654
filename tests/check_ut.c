/* check_ut.c: the DELIFT utility (src/ut.c) against the golden file of the
 * shared models (an independent float64 numpy implementation), plus the
 * properties the pipeline relies on: sharing and caching never change a
 * score's bits, templates are validated, truncation follows the spec's
 * deviation. */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_sha256.h"
#include "dl_test.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"
#include "ut.h"
#include "ut_cache.h"

typedef struct fixture {
    json_t *golden;
    lm_model *model;
    lm_tok *tok;
    lm_ctx *ctx;
    rec_pool pool;
    ut_set *set;
    uint8_t model_hash[32];
} fixture;

static void fixture_load(fixture *f, int with_ctx)
{
    memset(f, 0, sizeof *f);
    json_error_t je;
    f->golden = json_load_file(dl_test_shared("models/golden/delift-mini/utility.json"), 0, &je);
    ck_assert_ptr_nonnull(f->golden);
    dl_error err = {0};
    ck_assert_int_eq(lm_model_load(dl_test_shared("models/delift-mini-f32.gguf"), &f->model, &err),
                     DL_OK);
    f->tok = lm_tok_from_gguf(f->model->gguf, &err);
    ck_assert_ptr_nonnull(f->tok);
    json_t *recs = json_object_get(f->golden, "records");
    f->pool.n = (int64_t)json_array_size(recs);
    f->pool.records = calloc((size_t)f->pool.n, sizeof *f->pool.records);
    for (int64_t i = 0; i < f->pool.n; i++) {
        json_t *r = json_array_get(recs, (size_t)i);
        rec_record *x = &f->pool.records[i];
        x->instruction = json_string_value(json_object_get(r, "instruction"));
        x->input = json_string_value(json_object_get(r, "input"));
        x->output = json_string_value(json_object_get(r, "output"));
        x->instruction_len = strlen(x->instruction);
        x->input_len = strlen(x->input);
        x->output_len = strlen(x->output);
        rec_hash_content(x->instruction, x->instruction_len, x->input, x->input_len, x->output,
                         x->output_len, x->hash);
    }
    ck_assert_int_eq(ut_set_from_pool(&f->pool, f->tok, &f->set, &err), DL_OK);
    /* The golden file names the model by its SHA-256: use it (and check it
     * is the file's, by hashing the file once). */
    const char *hex = json_string_value(json_object_get(f->golden, "model_sha256"));
    ck_assert_ptr_nonnull(hex);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        f->model_hash[i] = (uint8_t)v;
    }
    if (with_ctx) {
        lm_ctx_params p = lm_ctx_params_default();
        p.n_threads = 2;
        ck_assert_int_eq(lm_ctx_new(f->model, &p, &f->ctx, &err), DL_OK);
    }
}

static void fixture_free(fixture *f)
{
    ut_set_free(f->set);
    free(f->pool.records);
    lm_ctx_free(f->ctx);
    lm_tok_free(f->tok);
    lm_model_free(f->model);
    json_decref(f->golden);
}

static double jnum(json_t *a, size_t i)
{
    return json_number_value(json_array_get(a, i));
}

START_TEST(test_strings_match_golden)
{
    fixture f;
    fixture_load(&f, 0);
    json_t *recs = json_object_get(f.golden, "records");
    for (int64_t i = 0; i < f.set->n; i++) {
        json_t *r = json_array_get(recs, (size_t)i);
        ck_assert_str_eq(f.set->items[i].prompt, json_string_value(json_object_get(r, "prompt")));
        ck_assert_str_eq(f.set->items[i].response,
                         json_string_value(json_object_get(r, "response")));
    }
    /* The scored positions: response tokens plus the final EOS. */
    json_t *sp = json_object_get(json_object_get(f.golden, "no_bos"), "scored_positions");
    for (int64_t i = 0; i < f.set->n; i++)
        ck_assert_int_eq(f.set->items[i].n_resp, (int64_t)json_integer_value(json_array_get(sp, (size_t)i)));
    json_t *tpl = json_object_get(f.golden, "templates");
    ck_assert_str_eq(UT_TPL_NOICL_DEFAULT, json_string_value(json_object_get(tpl, "noicl")));
    ck_assert_str_eq(UT_TPL_ICL_DEFAULT, json_string_value(json_object_get(tpl, "icl")));
    fixture_free(&f);
}
END_TEST

/* d_noICL, d_ICL, U and the min-max kernel against the golden file, for the
 * default and the BOS variant. */
static void check_variant(int bos)
{
    fixture f;
    fixture_load(&f, 1);
    json_t *g = json_object_get(f.golden, bos ? "with_bos" : "no_bos");
    ut_config cfg = {0};
    cfg.add_bos = bos;
    dl_error err = {0};
    ut_scorer *s = NULL;
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, &cfg, f.model_hash, NULL, &s, &err), DL_OK);
    int64_t n = f.set->n;
    double *dn = calloc((size_t)n, sizeof *dn), *di = calloc((size_t)(n * n), sizeof *di);
    ck_assert_int_eq(ut_score_noicl(s, f.set, dn, NULL, &err), DL_OK);
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, di, NULL, &err), DL_OK);
    double worst = 0.0;
    json_t *gdn = json_object_get(g, "d_noicl"), *gdi = json_object_get(g, "d_icl");
    json_t *gu = json_object_get(g, "U"), *gum = json_object_get(g, "U_minmax");
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(dn[i] - jnum(gdn, (size_t)i)));
        for (int64_t j = 0; j < n; j++) {
            json_t *row = json_array_get(gdi, (size_t)i);
            worst = fmax(worst, fabs(di[i * n + j] - jnum(row, (size_t)j)));
            double u = dn[i] - di[i * n + j];
            ck_assert_double_eq_tol(u, jnum(json_array_get(gu, (size_t)i), (size_t)j), 1e-4);
        }
    }
    ck_assert_double_lt(worst, 1e-4);
    float *k = calloc((size_t)(n * n), sizeof *k);
    double lo, hi;
    ut_kernel_from_d(dn, di, n, n, NULL, k, &lo, &hi);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            ck_assert_double_eq_tol(k[i * n + j], jnum(json_array_get(gum, (size_t)i), (size_t)j),
                                    2e-3);
    const ut_stats *st = ut_scorer_stats(s);
    ck_assert_int_eq(st->pairs_scored, n + n * n);
    ck_assert_int_eq(st->unscorable, 0);
    ck_assert_int_lt(st->tokens_scored, st->tokens_unshared); /* sharing saved something */
    fprintf(stderr, "ut golden %s: max |d - golden| = %.3g\n", bos ? "with_bos" : "no_bos", worst);
    free(k);
    free(dn);
    free(di);
    ut_scorer_free(s);
    fixture_free(&f);
}

START_TEST(test_golden_no_bos)
{
    check_variant(0);
}
END_TEST

START_TEST(test_golden_with_bos)
{
    check_variant(1);
}
END_TEST

/* A pair's score does not depend on what else is scored with it: the
 * dense run, single pairs and a sparse subset agree bit for bit. */
START_TEST(test_sharing_is_invisible)
{
    fixture f;
    fixture_load(&f, 1);
    dl_error err = {0};
    ut_scorer *s = NULL;
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, NULL, f.model_hash, NULL, &s, &err), DL_OK);
    int64_t n = f.set->n;
    double *dense = calloc((size_t)(n * n), sizeof *dense);
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, dense, NULL, &err), DL_OK);
    /* sparse: row i gets examples (i + 1) % n and (3 i) % n when distinct */
    int64_t row_ptr[64], cols[128], m = 0;
    row_ptr[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        cols[m++] = (i + 1) % n;
        if ((3 * i) % n != (i + 1) % n)
            cols[m++] = (3 * i) % n;
        row_ptr[i + 1] = m;
    }
    ut_pairs pairs = {row_ptr, cols};
    double sparse[128];
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, &pairs, sparse, NULL, &err), DL_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = row_ptr[i]; k < row_ptr[i + 1]; k++)
            ck_assert(memcmp(&sparse[k], &dense[i * n + cols[k]], sizeof(double)) == 0);
    /* one target alone */
    ut_set one = {&f.set->items[5], 1};
    double alone[8];
    ck_assert_int_eq(ut_score_icl(s, &one, f.set, NULL, alone, NULL, &err), DL_OK);
    for (int64_t j = 0; j < n; j++)
        ck_assert(memcmp(&alone[j], &dense[5 * n + j], sizeof(double)) == 0);
    free(dense);
    ut_scorer_free(s);
    fixture_free(&f);
}
END_TEST

/* The cache returns exactly what was computed; a second run computes
 * nothing; a different configuration (BOS) is a different scope. */
START_TEST(test_cache_resume_bit_identical)
{
    fixture f;
    fixture_load(&f, 1);
    char dir[] = "/tmp/check_ut_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/c.sqlite", dir);
    dl_error err = {0};
    ut_cache *c = NULL;
    ck_assert_int_eq(ut_cache_open(path, &c, &err), DL_OK);
    int64_t n = f.set->n;
    double a[64], b[64], x[64];
    ut_scorer *s = NULL;
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, NULL, f.model_hash, NULL, &s, &err), DL_OK);
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, x, NULL, &err), DL_OK);
    ut_scorer_free(s);
    /* half the targets first (an interrupted run), then all */
    ut_set half = {f.set->items, n / 2};
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, NULL, f.model_hash, c, &s, &err), DL_OK);
    ck_assert_int_eq(ut_score_icl(s, &half, f.set, NULL, a, NULL, &err), DL_OK);
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, a, NULL, &err), DL_OK);
    ck_assert_int_eq(ut_scorer_stats(s)->pairs_cached, (n / 2) * n);
    ut_scorer_free(s);
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, NULL, f.model_hash, c, &s, &err), DL_OK);
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, b, NULL, &err), DL_OK);
    ck_assert_int_eq(ut_scorer_stats(s)->pairs_scored, 0);
    ck_assert_int_eq(ut_scorer_stats(s)->pairs_cached, n * n);
    ut_scorer_free(s);
    ck_assert(memcmp(a, x, (size_t)(n * n) * sizeof *a) == 0);
    ck_assert(memcmp(b, x, (size_t)(n * n) * sizeof *b) == 0);
    ut_config cfg = {.add_bos = 1};
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, &cfg, f.model_hash, c, &s, &err), DL_OK);
    ck_assert_int_eq(ut_score_noicl(s, f.set, b, NULL, &err), DL_OK);
    ck_assert_int_eq(ut_scorer_stats(s)->pairs_cached, 0);
    ut_scorer_free(s);
    ut_cache_close(c);
    unlink(path);
    char aux[300];
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
    rmdir(dir);
    fixture_free(&f);
}
END_TEST

/* A context too short for the sequences: prompts lose tokens from the left
 * (the pair is counted as truncated), and a response that cannot fit is NaN. */
START_TEST(test_truncation)
{
    fixture f;
    fixture_load(&f, 0);
    dl_error err = {0};
    lm_ctx_params p = lm_ctx_params_default();
    p.n_threads = 1;
    p.n_ctx = 100; /* GSM8K responses here are 54..65 tokens, MBPP 20..34 */
    ck_assert_int_eq(lm_ctx_new(f.model, &p, &f.ctx, &err), DL_OK);
    ut_scorer *s = NULL;
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, NULL, f.model_hash, NULL, &s, &err), DL_OK);
    int64_t n = f.set->n;
    double d[64];
    ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, d, NULL, &err), DL_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = d[i * n + j];
            ck_assert(isfinite(v) && v >= 0.0 && v <= 1.0);
        }
    ck_assert_int_eq(ut_scorer_stats(s)->pairs_truncated, n * n);
    ut_scorer_free(s);
    lm_ctx_free(f.ctx);
    /* 40 positions: every GSM8K response (>= 54 tokens) is unscorable */
    p.n_ctx = 40;
    ck_assert_int_eq(lm_ctx_new(f.model, &p, &f.ctx, &err), DL_OK);
    ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, NULL, f.model_hash, NULL, &s, &err), DL_OK);
    double dn[8];
    ck_assert_int_eq(ut_score_noicl(s, f.set, dn, NULL, &err), DL_OK);
    int64_t nan = 0;
    for (int64_t i = 0; i < n; i++)
        nan += isnan(dn[i]) ? 1 : 0;
    ck_assert_int_eq(nan, ut_scorer_stats(s)->unscorable);
    ck_assert_int_ge(nan, 4);
    ut_scorer_free(s);
    fixture_free(&f);
}
END_TEST

/* Replaces the one occurrence of ph in *s by v (the test's own template
 * filling, written apart from src/ut.c). */
static void fill_ph(char **s, const char *ph, const char *v)
{
    char *at = strstr(*s, ph);
    if (!at)
        return;
    size_t a = (size_t)(at - *s), lp = strlen(ph), lv = strlen(v), n = strlen(*s);
    char *o = malloc(n - lp + lv + 1);
    ck_assert_ptr_nonnull(o);
    memcpy(o, *s, a);
    memcpy(o + a, v, lv);
    memcpy(o + a + lv, *s + a + lp, n - a - lp + 1);
    free(*s);
    *s = o;
}

/* d of pair (i, j) computed the plain way: the whole ICL prompt tokenised,
 * `over` = what overflows n_ctx, the cut rounded up to quantum q (at most
 * every prompt token), and the sequence f[cut..) EOS r scored whole. */
static double d_oracle(fixture *f, int64_t i, int64_t j, int64_t n_ctx, int64_t q,
                       int64_t *cut_out)
{
    const ut_item *t = &f->set->items[i], *e = &f->set->items[j];
    char *text = strdup(UT_TPL_ICL_DEFAULT);
    fill_ph(&text, "{p_j}", e->prompt);
    fill_ph(&text, "{r_j}", e->response);
    fill_ph(&text, "{p_i}", t->prompt);
    lm_tok_ids ids = {0};
    dl_error err = {0};
    ck_assert_int_eq(lm_tok_encode(f->tok, text, strlen(text), 0, &ids, &err), DL_OK);
    int64_t over = ids.n + 1 + t->n_resp - n_ctx;
    int64_t cut = over > 0 ? (over + q - 1) / q * q : 0;
    if (cut > ids.n)
        cut = ids.n;
    int64_t n = ids.n - cut + 1 + t->n_resp;
    int32_t *seq = malloc((size_t)n * sizeof *seq);
    memcpy(seq, ids.ids + cut, (size_t)(ids.n - cut) * sizeof *seq);
    seq[ids.n - cut] = lm_tok_eos(f->tok);
    memcpy(seq + ids.n - cut + 1, t->resp_ids, (size_t)t->n_resp * sizeof *seq);
    lm_seq one = {seq, n, ids.n - cut + 1, n};
    float lp[512];
    ck_assert_int_le(t->n_resp, 512);
    ck_assert_int_eq(lm_ctx_score(f->ctx, NULL, &one, 1, lp, NULL, &err), DL_OK);
    double acc = 0.0;
    for (int64_t k = 0; k < t->n_resp; k++)
        acc += (1.0 - exp((double)lp[k])) * (1.0 - exp((double)lp[k]));
    *cut_out = cut;
    free(seq);
    lm_tok_ids_free(&ids);
    free(text);
    return sqrt(acc / (double)t->n_resp);
}

/* The truncation quantum: every pair equals the plain computation with the
 * cut rounded up (and the untruncated ones the plain computation);
 * truncated pairs share prefixes, so a coarser quantum evaluates fewer
 * tokens; and a pair's bits still do not depend on what else is scored. */
START_TEST(test_truncation_quantum)
{
    fixture f;
    fixture_load(&f, 0);
    dl_error err = {0};
    lm_ctx_params p = lm_ctx_params_default();
    p.n_threads = 2;
    p.n_ctx = 200; /* some pairs fit, most overflow by 1..150 tokens */
    ck_assert_int_eq(lm_ctx_new(f.model, &p, &f.ctx, &err), DL_OK);
    int64_t n = f.set->n, cost[2] = {0, 0}, quanta[2] = {1, 32};
    double d[2][64];
    ck_assert_int_le(n * n, 64);
    for (int v = 0; v < 2; v++) {
        ut_config cfg = {.trunc_quantum = quanta[v]};
        ut_scorer *s = NULL;
        ck_assert_int_eq(ut_scorer_new(f.ctx, f.tok, &cfg, f.model_hash, NULL, &s, &err), DL_OK);
        ck_assert_int_eq(ut_score_icl(s, f.set, f.set, NULL, d[v], NULL, &err), DL_OK);
        const ut_stats *st = ut_scorer_stats(s);
        cost[v] = st->tokens_prefix + st->tokens_scored;
        int64_t truncated = 0, whole = 0;
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t cut = 0;
                double want = d_oracle(&f, i, j, p.n_ctx, quanta[v], &cut);
                worst = fmax(worst, fabs(d[v][i * n + j] - want));
                truncated += cut > 0;
                whole += cut == 0;
            }
        ck_assert_double_lt(worst, 1e-5);
        ck_assert_int_eq(st->pairs_truncated, truncated);
        ck_assert_int_gt(truncated, n); /* the case is exercised */
        ck_assert_int_gt(whole, 0);
        fprintf(stderr, "quantum %lld: %lld truncated, max |d - oracle| = %.3g, %lld tokens\n",
                (long long)quanta[v], (long long)truncated, worst, (long long)cost[v]);
        if (v == 1) { /* one target alone, bit for bit */
            ut_set one = {&f.set->items[3], 1};
            double alone[8];
            ck_assert_int_eq(ut_score_icl(s, &one, f.set, NULL, alone, NULL, &err), DL_OK);
            for (int64_t j = 0; j < n; j++)
                ck_assert(memcmp(&alone[j], &d[v][3 * n + j], sizeof(double)) == 0);
        }
        ut_scorer_free(s);
    }
    ck_assert_int_lt(cost[1], cost[0]); /* the coarser quantum shared more */
    int64_t differ = 0;
    for (int64_t k = 0; k < n * n; k++)
        differ += d[0][k] != d[1][k];
    ck_assert_int_gt(differ, 0);
    /* out of range */
    ut_config bad = {.trunc_quantum = -1};
    ck_assert_int_eq(ut_config_check(&bad, &err), DL_ERR_USAGE);
    ck_assert_str_eq(err.field, "truncate_quantum");
    bad.trunc_quantum = UT_TRUNC_QUANTUM_MAX + 1;
    ck_assert_int_eq(ut_config_check(&bad, &err), DL_ERR_USAGE);
    fixture_free(&f);
}
END_TEST

START_TEST(test_templates_checked)
{
    dl_error err = {0};
    ut_config c = {0};
    ck_assert_int_eq(ut_config_check(&c, &err), DL_OK);
    c.tpl_noicl = "no placeholder";
    ck_assert_int_eq(ut_config_check(&c, &err), DL_ERR_USAGE);
    ck_assert_str_eq(err.field, "template.noicl");
    const char *bad_icl[] = {"{p_i}{p_i}", "{p_i} {p_j}", "{p_j}{p_j}{p_i}", "{r_j}", ""};
    for (size_t k = 0; k < sizeof bad_icl / sizeof *bad_icl; k++) {
        dl_error e2 = {0};
        ut_config c2 = {.tpl_icl = bad_icl[k]};
        ck_assert_int_eq(ut_config_check(&c2, &e2), DL_ERR_USAGE);
        ck_assert_str_eq(e2.field, "template.icl");
    }
    ut_config ok = {.tpl_noicl = "Q: {p_i}", .tpl_icl = "{r_j} then {p_j} then {p_i}."};
    dl_error e3 = {0};
    ck_assert_int_eq(ut_config_check(&ok, &e3), DL_OK);
    ut_config nb = {.tpl_noicl = "{p_j} {p_i}"};
    ck_assert_int_eq(ut_config_check(&nb, &e3), DL_ERR_USAGE);
}
END_TEST

START_TEST(test_kernel_scaling)
{
    double dn[2] = {0.5, NAN};
    double di[4] = {0.25, 0.75, 0.1, 0.2};
    float k[4];
    double lo, hi;
    ut_kernel_from_d(dn, di, 2, 2, NULL, k, &lo, &hi);
    ck_assert_double_eq(lo, -0.25);
    ck_assert_double_eq(hi, 0.25);
    ck_assert_float_eq(k[0], 1.0f);
    ck_assert_float_eq(k[1], 0.0f);
    ck_assert_float_eq(k[2], 0.0f); /* unscorable row */
    ck_assert_float_eq(k[3], 0.0f);
    int64_t rp[3] = {0, 1, 1};
    double d1[1] = {0.4};
    float k1[1];
    ut_kernel_from_d(dn, d1, 2, 2, rp, k1, &lo, &hi);
    ck_assert_float_eq(k1[0], 0.0f); /* one value: range 0 */
}
END_TEST

static Suite *ut_suite(int shared)
{
    Suite *s = suite_create("ut");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, test_templates_checked);
    tcase_add_test(pure, test_kernel_scaling);
    suite_add_tcase(s, pure);
    if (!shared)
        return s;
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_strings_match_golden);
    tcase_add_test(tc, test_golden_no_bos);
    tcase_add_test(tc, test_golden_with_bos);
    tcase_add_test(tc, test_sharing_is_invisible);
    tcase_add_test(tc, test_cache_resume_bit_identical);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_truncation_quantum);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Without ../shared only the pure cases run, and the test reports a skip. */
    int shared = dl_test_shared("models/golden/delift-mini/utility.json") &&
                 dl_test_shared("models/delift-mini-f32.gguf");
    int rc = dl_test_run(ut_suite(shared));
    if (rc == EXIT_SUCCESS && !shared) {
        printf("SKIP: ../shared/models not present (model cases not run)\n");
        return DL_TEST_SKIP;
    }
    return rc;
}
