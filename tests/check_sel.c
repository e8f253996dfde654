/* check_sel.c: the selectors against the reference library's golden
 * selections (../shared/golden/submodlib), the reference quirks we do not
 * copy, the DELIFT-shaped 10 x 10 case, and every error path.
 *
 * Properties against brute force and between optimisers live in
 * check_sel_prop.c.
 */
#include <dirent.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "dl_test.h"
#include "sel.h"

/* ---- golden cases ---------------------------------------------------------- */

typedef struct golden {
    json_t *root;
    float *k, *q, *p;       /* dense row-major kernels (owned) */
    int64_t n, nq, np;
    sel_kernel kk, kq, kp;
    sel_problem prob;
    sel_options opt;
    const char *quirk;      /* reference_quirk text or NULL */
    json_t *expected;       /* [[index, gain], ...] */
    json_t *exact;          /* full-double gains */
    double f_value;
} golden;

static float *matrix(json_t *a, int64_t *rows, int64_t *cols)
{
    if (!json_is_array(a))
        return NULL;
    *rows = (int64_t)json_array_size(a);
    *cols = (int64_t)json_array_size(json_array_get(a, 0));
    float *m = malloc((size_t)(*rows * *cols + 1) * sizeof *m);
    ck_assert_ptr_nonnull(m);
    for (int64_t i = 0; i < *rows; i++) {
        json_t *row = json_array_get(a, (size_t)i);
        ck_assert_int_eq((int64_t)json_array_size(row), *cols);
        for (int64_t j = 0; j < *cols; j++)
            m[i * *cols + j] = (float)json_number_value(json_array_get(row, (size_t)j));
    }
    return m;
}

static void golden_load(golden *g, const char *path)
{
    memset(g, 0, sizeof *g);
    json_error_t jerr;
    g->root = json_load_file(path, 0, &jerr);
    ck_assert_msg(g->root != NULL, "%s: %s", path, jerr.text);
    json_t *r = g->root;
    int64_t rows;
    g->k = matrix(json_object_get(r, "kernel"), &rows, &g->n);
    g->q = matrix(json_object_get(r, "query_kernel"), &rows, &g->nq);
    g->p = matrix(json_object_get(r, "private_kernel"), &rows, &g->np);
    int64_t n = json_integer_value(json_object_get(r, "n"));
    if (g->k)
        sel_kernel_dense(&g->kk, g->k, n, n, n);
    if (g->q)
        sel_kernel_dense(&g->kq, g->q, n, g->nq, g->nq);
    if (g->p)
        sel_kernel_dense(&g->kp, g->p, n, g->np, g->np);
    sel_problem_init(&g->prob);
    const char *fn = json_string_value(json_object_get(r, "function"));
    json_t *params = json_object_get(r, "params");
    static const struct { const char *name; sel_fn_kind kind; unsigned kernels; } map[] = {
        {"FL", SEL_FN_FL, 1}, {"FLMI", SEL_FN_FLMI, 3}, {"FLCG", SEL_FN_FLCG, 5},
        {"GC", SEL_FN_GC, 1}, {"GCMI", SEL_FN_GCMI, 2}, {"GCCG", SEL_FN_GCCG, 5},
    };
    int found = 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(fn, map[i].name) == 0) {
            g->prob.fn = map[i].kind;
            g->prob.kernel = (map[i].kernels & 1) ? &g->kk : NULL;
            g->prob.query = (map[i].kernels & 2) ? &g->kq : NULL;
            g->prob.priv = (map[i].kernels & 4) ? &g->kp : NULL;
            found = 1;
        }
    ck_assert_msg(found, "%s: unknown function %s", path, fn);
    if (json_object_get(params, "lambda"))
        g->prob.lambda = json_number_value(json_object_get(params, "lambda"));
    if (json_object_get(params, "eta"))
        g->prob.eta = json_number_value(json_object_get(params, "eta"));
    if (json_object_get(params, "nu"))
        g->prob.nu = json_number_value(json_object_get(params, "nu"));
    sel_options_init(&g->opt);
    const char *opt = json_string_value(json_object_get(r, "optimizer"));
    g->opt.optimizer = strcmp(opt, "NaiveGreedy") == 0 ? SEL_OPT_NAIVE : SEL_OPT_LAZY;
    g->opt.budget = json_integer_value(json_object_get(r, "budget"));
    g->opt.stop_if_zero_gain = json_is_true(json_object_get(r, "stopIfZeroGain"));
    g->opt.stop_if_negative_gain = json_is_true(json_object_get(r, "stopIfNegativeGain"));
    g->quirk = json_string_value(json_object_get(r, "reference_quirk"));
    g->expected = json_object_get(r, "expected");
    g->exact = json_object_get(r, "expected_gains_exact");
    g->f_value = json_number_value(json_object_get(r, "f_value"));
}

static void golden_free(golden *g)
{
    free(g->k);
    free(g->q);
    free(g->p);
    json_decref(g->root);
}

static int tol_eq(double a, double b)
{
    return fabs(a - b) <= 1e-5 * fmax(1.0, fabs(b));
}

/* Asserts that res reproduces the expected list exactly (indices) and to
 * 1e-5 relative (gains); returns how many gains match bit for bit. */
static int assert_matches(const char *name, const golden *g, const sel_result *res,
                          int prefix_only)
{
    size_t ne = json_array_size(g->expected), upto = ne;
    if (prefix_only)
        ck_assert_int_ge(res->count, (int64_t)ne);
    else
        ck_assert_msg((size_t)res->count == ne, "%s: %lld picks, expected %zu", name,
                      (long long)res->count, ne);
    int bits = 0;
    for (size_t t = 0; t < upto; t++) {
        json_t *e = json_array_get(g->expected, t);
        int64_t idx = json_integer_value(json_array_get(e, 0));
        double gx = json_number_value(json_array_get(g->exact, t));
        ck_assert_msg(res->indices[t] == idx, "%s: pick %zu is %lld, expected %lld", name,
                      t, (long long)res->indices[t], (long long)idx);
        ck_assert_msg(tol_eq(res->gains[t], gx), "%s: gain %zu is %.17g, expected %.17g",
                      name, t, res->gains[t], gx);
        bits += res->gains[t] == gx;
    }
    return bits;
}

static void run_ok(const sel_problem *p, const sel_options *o, sel_result *res)
{
    dl_error err;
    dl_error_clear(&err);
    sel_result_init(res);
    dl_status st = sel_maximize(p, o, res, &err);
    ck_assert_msg(st == DL_OK, "sel_maximize: %s", err.message);
}

/* Our answer for the graph-cut family checked against the spec's f itself:
 * each gain is f(A + j) - f(A) by sel_evaluate, and it is the best one. */
static void assert_true_greedy(const golden *g, const sel_result *res)
{
    int64_t n = sel_problem_size(&g->prob);
    int64_t *set = malloc((size_t)(n + 1) * sizeof *set);
    ck_assert_ptr_nonnull(set);
    double fa = 0;
    for (int64_t t = 0; t < res->count; t++) {
        double best = -INFINITY;
        for (int64_t j = 0; j < n; j++) {
            int in = 0;
            for (int64_t u = 0; u < t; u++)
                in |= set[u] == j;
            if (in)
                continue;
            set[t] = j;
            double v;
            ck_assert_int_eq(sel_evaluate(&g->prob, set, t + 1, &v, NULL), DL_OK);
            best = fmax(best, v - fa);
            if (j == res->indices[t])
                ck_assert_msg(fabs((v - fa) - res->gains[t]) <= 1e-7 * fmax(1, fabs(v)),
                              "gain %lld: %.17g vs f difference %.17g", (long long)t,
                              res->gains[t], v - fa);
        }
        /* lambda * S[j][j] is a float32 product, as in the reference:
         * near-ties within that rounding may go either way */
        ck_assert_msg(res->gains[t] >= best - 1e-7 * fmax(1, fabs(best)),
                      "pick %lld is not the best: %.17g < %.17g", (long long)t,
                      res->gains[t], best);
        set[t] = res->indices[t];
        ck_assert_int_eq(sel_evaluate(&g->prob, set, t + 1, &fa, NULL), DL_OK);
    }
    free(set);
}

static void check_quirk(const char *name, golden *g)
{
    sel_result res;
    if (g->opt.stop_if_zero_gain) {
        /* The reference stops at the first best gain below 1 in magnitude
         * (an integer abs).  We stop only at a real zero: the expected picks
         * are our first picks, and we go on past them. */
        run_ok(&g->prob, &g->opt, &res);
        assert_matches(name, g, &res, 1);
        ck_assert_msg((size_t)res.count > json_array_size(g->expected),
                      "%s: stopped with the reference's truncated zero test", name);
        ck_assert_msg(fabs(res.gains[json_array_size(g->expected)]) < 1.0,
                      "%s: the reference stopped at a gain >= 1?", name);
        for (int64_t t = 0; t < res.count; t++)
            ck_assert(res.gains[t] != 0.0);
        sel_result_free(&res);
        return;
    }
    /* Graph cut on a non-symmetric kernel: the reference mixes a column
     * sum with row j; we compute the gain of the f the spec defines. */
    run_ok(&g->prob, &g->opt, &res);
    ck_assert_int_eq(res.count, g->opt.budget);
    assert_true_greedy(g, &res);
    sel_result_free(&res);
}

START_TEST(test_golden_cases)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", dl_test_shared("golden/submodlib"));
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int cases = 0, quirks = 0, gains = 0, bitexact = 0;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "case", 4) != 0 || !strstr(de->d_name, ".json"))
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        golden g;
        golden_load(&g, path);
        if (g.quirk) {
            check_quirk(de->d_name, &g);
            quirks++;
        } else {
            sel_result res;
            run_ok(&g.prob, &g.opt, &res);
            int bits = assert_matches(de->d_name, &g, &res, 0);
            if (bits < res.count)
                printf("%s: %d/%lld gains bit-exact\n", de->d_name, bits,
                       (long long)res.count);
            bitexact += bits;
            gains += (int)res.count;
            ck_assert_msg(tol_eq(res.value, g.f_value), "%s: f %.17g, expected %.17g",
                          de->d_name, res.value, g.f_value);
            sel_result_free(&res);
        }
        golden_free(&g);
        cases++;
    }
    closedir(d);
    printf("golden: %d cases (%d reference quirks), %d/%d gains bit-exact\n", cases,
           quirks, bitexact, gains);
    ck_assert_int_ge(cases, 40);
    ck_assert_int_eq(quirks, 2);
    /* The sums are exact in double, so every gain matches bit for bit. */
    ck_assert_int_eq(bitexact, gains);
}
END_TEST

/* The reference's zero-gain quirk does not decide our stops: with the flag
 * and a tolerance we stop at the first best gain within it. */
START_TEST(test_golden_zero_stop_with_tolerance)
{
    golden g;
    golden_load(&g, dl_test_shared("golden/submodlib/case038.json"));
    g.opt.gain_tolerance = 1.0; /* reproduces the reference's stop */
    sel_result res;
    run_ok(&g.prob, &g.opt, &res);
    assert_matches("case038/tol1", &g, &res, 0);
    ck_assert_int_eq(res.stop, SEL_STOP_ZERO_GAIN);
    sel_result_free(&res);
    golden_free(&g);
}
END_TEST

/* ---- the DELIFT-shaped 10 x 10 case ----------------------------------------- */

/* Reads "name = [[...], ...]" from the text file into a row-major matrix. */
static int read_txt_matrix(const char *text, const char *name, double *out,
                           int64_t *rows, int64_t *cols)
{
    const char *s = strstr(text, name);
    if (!s)
        return -1;
    s = strchr(s, '[');
    int depth = 0;
    int64_t r = 0, c = 0, cnt = 0;
    *cols = 0;
    for (; *s; s++) {
        if (*s == '[') {
            depth++;
            c = 0;
        } else if (*s == ']') {
            if (depth == 2) {
                *cols = c;
                r++;
            }
            if (--depth == 0)
                break;
        } else if (depth == 2 && (*s == '-' || (*s >= '0' && *s <= '9'))) {
            char *end;
            out[cnt++] = strtod(s, &end);
            s = end - 1;
            c++;
        }
    }
    *rows = r;
    return 0;
}

/* DELIFT min-max scales each kernel it hands the library: (x - min) / range
 * in double, then float32. */
static void minmax(const double *in, float *out, int64_t count)
{
    double lo = in[0], hi = in[0];
    for (int64_t i = 1; i < count; i++) {
        lo = fmin(lo, in[i]);
        hi = fmax(hi, in[i]);
    }
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)((in[i] - lo) / (hi - lo));
}

START_TEST(test_delift_10x10)
{
    FILE *fp = fopen(dl_test_shared("golden/submodlib/delift-10x10.txt"), "r");
    ck_assert_ptr_nonnull(fp);
    static char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, fp);
    text[len] = 0;
    fclose(fp);
    double raw[100];
    float s[100], pk[40], qk[30];
    int64_t r, c;
    ck_assert_int_eq(read_txt_matrix(text, "raw_data_sijs", raw, &r, &c), 0);
    ck_assert(r == 10 && c == 10);
    minmax(raw, s, 100);
    ck_assert_int_eq(read_txt_matrix(text, "raw_private_sijs", raw, &r, &c), 0);
    ck_assert(r == 10 && c == 4);
    minmax(raw, pk, 40);
    ck_assert_int_eq(read_txt_matrix(text, "raw_query_sijs", raw, &r, &c), 0);
    ck_assert(r == 10 && c == 3);
    minmax(raw, qk, 30);
    sel_kernel ks, kq, kp;
    sel_kernel_dense(&ks, s, 10, 10, 10);
    sel_kernel_dense(&kq, qk, 10, 3, 3);
    sel_kernel_dense(&kp, pk, 10, 4, 4);
    static const struct {
        sel_fn_kind fn;
        sel_opt_kind opt;
        int64_t idx[3];
        double gain[3];
    } want[] = {
        {SEL_FN_FL, SEL_OPT_LAZY, {2, 0, 3}, {4.97445424, 1.47432458, 0.61601451}},
        {SEL_FN_FL, SEL_OPT_NAIVE, {2, 0, 3}, {4.97445424, 1.47432458, 0.61601451}},
        {SEL_FN_FLMI, SEL_OPT_LAZY, {3, 2, 0}, {4.91536336, 0.997076958, 0.504820526}},
        {SEL_FN_FLCG, SEL_OPT_LAZY, {3, 0, 2}, {0.659843445, 0.248706043, 0.144274473}},
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        sel_problem p;
        sel_problem_init(&p);
        p.fn = want[w].fn;
        p.kernel = &ks;
        p.query = p.fn == SEL_FN_FLMI ? &kq : NULL;
        p.priv = p.fn == SEL_FN_FLCG ? &kp : NULL;
        sel_options o;
        sel_options_init(&o);
        o.optimizer = want[w].opt;
        o.budget = 3;
        sel_result res;
        run_ok(&p, &o, &res);
        ck_assert_int_eq(res.count, 3);
        for (int t = 0; t < 3; t++) {
            ck_assert_msg(res.indices[t] == want[w].idx[t], "case %zu pick %d: %lld", w, t,
                          (long long)res.indices[t]);
            ck_assert_msg(fabs(res.gains[t] - want[w].gain[t]) <= 1e-7 * fmax(1, want[w].gain[t]),
                          "case %zu gain %d: %.9g", w, t, res.gains[t]);
        }
        sel_result_free(&res);
    }
}
END_TEST

/* All-equal 10 x 10 kernel, budget 3: lazy 9, 0, 8 (gains 5, 0, 0) as the
 * reference's heap gives it; naive 9, 8, 7. */
START_TEST(test_all_ties)
{
    float s[100];
    for (int i = 0; i < 100; i++)
        s[i] = 0.5f;
    sel_kernel k;
    sel_kernel_dense(&k, s, 10, 10, 10);
    sel_problem p;
    sel_problem_init(&p);
    p.kernel = &k;
    sel_options o;
    sel_options_init(&o);
    o.budget = 3;
    sel_result res;
    run_ok(&p, &o, &res);
    ck_assert_int_eq(res.count, 3);
    ck_assert_int_eq(res.indices[0], 9);
    ck_assert_int_eq(res.indices[1], 0);
    ck_assert_int_eq(res.indices[2], 8);
    ck_assert(res.gains[0] == 5.0 && res.gains[1] == 0.0 && res.gains[2] == 0.0);
    sel_result_free(&res);
    o.optimizer = SEL_OPT_NAIVE;
    run_ok(&p, &o, &res);
    ck_assert_int_eq(res.indices[0], 9);
    ck_assert_int_eq(res.indices[1], 8);
    ck_assert_int_eq(res.indices[2], 7);
    sel_result_free(&res);
    /* Zero-gain stop, exact test: one pick, then the best gain is 0. */
    o.optimizer = SEL_OPT_LAZY;
    o.stop_if_zero_gain = true;
    run_ok(&p, &o, &res);
    ck_assert_int_eq(res.count, 1);
    ck_assert_int_eq(res.stop, SEL_STOP_ZERO_GAIN);
    sel_result_free(&res);
    /* budget n with lazy: the last pop finds an empty heap and accepts. */
    o.stop_if_zero_gain = false;
    o.budget = 10;
    run_ok(&p, &o, &res);
    ck_assert_int_eq(res.count, 10);
    sel_result_free(&res);
}
END_TEST

/* ---- errors ------------------------------------------------------------------- */

static float g_small[36];

static void small_setup(sel_kernel *k, sel_problem *p, sel_options *o)
{
    for (int i = 0; i < 36; i++)
        g_small[i] = (float)((i * 7) % 11) / 11.0f;
    sel_kernel_dense(k, g_small, 6, 6, 6);
    sel_problem_init(p);
    p->kernel = k;
    sel_options_init(o);
    o->budget = 2;
}

static dl_status run_err(const sel_problem *p, const sel_options *o, dl_error *err)
{
    dl_error_clear(err);
    sel_result res;
    sel_result_init(&res);
    dl_status st = sel_maximize(p, o, &res, err);
    ck_assert_int_eq(res.count, 0); /* left empty on error */
    ck_assert_ptr_null(res.indices);
    sel_result_free(&res);
    return st;
}

START_TEST(test_usage_errors)
{
    sel_kernel k, q, bad;
    sel_problem p;
    sel_options o;
    dl_error err;
    small_setup(&k, &p, &o);
    o.budget = 7;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "budget 7"));
    o.budget = -1;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    o.budget_kind = SEL_BUDGET_FRACTION;
    o.budget_fraction = 1.5;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    o.budget_fraction = NAN;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    small_setup(&k, &p, &o);
    p.fn = SEL_FN_GC;
    p.lambda = -0.1;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "lambda"));
    p.lambda = 0.4;
    sel_kernel_dense(&q, g_small, 6, 5, 6); /* non-square for gc */
    p.kernel = &q;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "square"));
    small_setup(&k, &p, &o);
    p.fn = SEL_FN_FLMI; /* no query */
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "query"));
    sel_kernel_dense(&q, g_small, 5, 2, 6); /* query with 5 rows, kernel 6 */
    p.query = &q;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "rows"));
    small_setup(&k, &p, &o);
    p.query = &k; /* fl takes no query */
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    small_setup(&k, &p, &o);
    sel_kernel_dense(&bad, g_small, 6, 6, 5); /* stride < cols */
    p.kernel = &bad;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "stride"));
    small_setup(&k, &p, &o);
    o.optimizer = SEL_OPT_STOCHASTIC;
    o.epsilon = 0;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    small_setup(&k, &p, &o);
    o.threads = 0;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    small_setup(&k, &p, &o);
    double costs[6] = {1, 1, 1, 0, 1, 1};
    o.costs = costs;
    o.cost_budget = 2;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "item 3"));
    costs[3] = 1;
    o.cost_budget = 0;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    small_setup(&k, &p, &o);
    o.gain_tolerance = -1;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    small_setup(&k, &p, &o);
    p.fn = (sel_fn_kind)42;
    ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_USAGE);
    ck_assert_int_eq(sel_maximize(NULL, &o, NULL, &err), DL_ERR_USAGE);
}
END_TEST

START_TEST(test_names)
{
    for (int i = 0; i < SEL_FN_COUNT; i++) {
        sel_fn_kind k;
        ck_assert_int_eq(sel_fn_kind_parse(sel_fn_kind_name((sel_fn_kind)i), &k, NULL), DL_OK);
        ck_assert_int_eq(k, i);
    }
    for (int i = 0; i < SEL_OPT_COUNT; i++) {
        sel_opt_kind k;
        ck_assert_int_eq(sel_opt_kind_parse(sel_opt_kind_name((sel_opt_kind)i), &k, NULL), DL_OK);
        ck_assert_int_eq(k, i);
    }
    dl_error err;
    dl_error_clear(&err);
    sel_fn_kind k;
    ck_assert_int_eq(sel_fn_kind_parse("facloc", &k, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.message, "facloc"));
    ck_assert_int_eq(sel_fn_kind_parse(NULL, &k, NULL), DL_ERR_USAGE);
    sel_opt_kind o;
    ck_assert_int_eq(sel_opt_kind_parse("Lazy", &o, NULL), DL_ERR_USAGE);
    ck_assert_str_eq(sel_fn_kind_name((sel_fn_kind)99), "?");
}
END_TEST

/* NaN or Inf anywhere in any kernel: DL_ERR_NUMERIC naming kernel, row and
 * column, for every function and both layouts, never a hang. */
START_TEST(test_nonfinite)
{
    enum { N = 8, Q = 3 };
    static float s[N * N], q[N * Q], pr[N * Q];
    static const struct { sel_fn_kind fn; int which; const char *name; } cases[] = {
        {SEL_FN_FL, 0, "kernel"},   {SEL_FN_FLMI, 0, "kernel"}, {SEL_FN_FLMI, 1, "query"},
        {SEL_FN_FLQMI, 1, "query"}, {SEL_FN_FLCG, 0, "kernel"}, {SEL_FN_FLCG, 2, "private"},
        {SEL_FN_GC, 0, "kernel"},   {SEL_FN_GCMI, 1, "query"},  {SEL_FN_GCCG, 0, "kernel"},
        {SEL_FN_GCCG, 2, "private"},
    };
    const float bads[2] = {NAN, INFINITY};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int b = 0; b < 2; b++)
            for (int opt = 0; opt < SEL_OPT_COUNT; opt++) {
                for (int i = 0; i < N * N; i++)
                    s[i] = (float)((i * 13) % 17) / 17.0f;
                for (int i = 0; i < N * Q; i++)
                    q[i] = pr[i] = (float)((i * 5) % 7) / 7.0f;
                float *target = cases[c].which == 0 ? s : cases[c].which == 1 ? q : pr;
                int64_t cols = cases[c].which == 0 ? N : Q;
                target[5 * cols + 2] = bads[b] * (b ? -1.0f : 1.0f);
                sel_kernel ks, kq, kp;
                sel_kernel_dense(&ks, s, N, N, N);
                sel_kernel_dense(&kq, q, N, Q, Q);
                sel_kernel_dense(&kp, pr, N, Q, Q);
                sel_problem p;
                sel_problem_init(&p);
                p.fn = cases[c].fn;
                p.lambda = 0.3;
                int fl = p.fn == SEL_FN_FL || p.fn == SEL_FN_FLMI || p.fn == SEL_FN_FLCG ||
                         p.fn == SEL_FN_GC || p.fn == SEL_FN_GCCG;
                p.kernel = fl ? &ks : NULL;
                p.query = (p.fn == SEL_FN_FLMI || p.fn == SEL_FN_FLQMI || p.fn == SEL_FN_GCMI)
                              ? &kq : NULL;
                p.priv = (p.fn == SEL_FN_FLCG || p.fn == SEL_FN_GCCG) ? &kp : NULL;
                sel_options o;
                sel_options_init(&o);
                o.optimizer = (sel_opt_kind)opt;
                o.budget = 3;
                o.threads = 1 + (opt & 1);
                dl_error err;
                ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_NUMERIC);
                ck_assert_msg(strstr(err.message, "row 5, column 2") != NULL, "%s", err.message);
                ck_assert_str_eq(err.field, cases[c].name);
                ck_assert_int_eq(sel_problem_check(&p, NULL), DL_ERR_NUMERIC);
            }
}
END_TEST

/* A wider kernel, so the vectorised sweep (8 lanes, 64-column blocks) meets
 * the bad value, not the scalar tail. */
START_TEST(test_nonfinite_wide)
{
    enum { N = 150 };
    static float s[N * N];
    const float bads[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int fn = 0; fn < 2; fn++) {
            for (int i = 0; i < N * N; i++)
                s[i] = (float)((i * 13) % 17) / 17.0f;
            s[70 * N + 77] = bads[b];
            sel_kernel k;
            sel_kernel_dense(&k, s, N, N, N);
            sel_problem p;
            sel_problem_init(&p);
            p.fn = fn ? SEL_FN_GC : SEL_FN_FL;
            p.kernel = &k;
            sel_options o;
            sel_options_init(&o);
            o.budget = 5;
            o.threads = 1 + b % 2;
            dl_error err;
            ck_assert_int_eq(run_err(&p, &o, &err), DL_ERR_NUMERIC);
            ck_assert_msg(strstr(err.message, "row 70, column 77") != NULL, "%s", err.message);
        }
}
END_TEST

START_TEST(test_csr_errors)
{
    float v[4] = {1, 2, 3, NAN};
    int64_t indptr[4] = {0, 2, 3, 4};
    int32_t idx[4] = {0, 1, 2, 0};
    sel_kernel k;
    dl_error err;
    sel_kernel_csr(&k, 3, 3, indptr, idx, SEL_INDEX_I32, v);
    dl_error_clear(&err);
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", &err), DL_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(err.message, "row 2, column 0"));
    v[3] = 4;
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", NULL), DL_OK);
    idx[1] = 3; /* out of range */
    dl_error_clear(&err);
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", &err), DL_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.message, "column 3"));
    idx[1] = 0; /* duplicate in row 0 */
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", NULL), DL_ERR_INPUT);
    idx[1] = 1;
    indptr[2] = 1; /* decreasing */
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", NULL), DL_ERR_INPUT);
    indptr[2] = 3;
    indptr[0] = 1;
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", NULL), DL_ERR_INPUT);
    indptr[0] = 0;
    int64_t idx64[4] = {0, 1, 2, -1};
    sel_kernel_csr(&k, 3, 3, indptr, idx64, SEL_INDEX_I64, v);
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", NULL), DL_ERR_INPUT);
    idx64[3] = 0;
    ck_assert_int_eq(sel_kernel_check(&k, "kernel", NULL), DL_OK);
    ck_assert_int_eq(sel_kernel_check(NULL, "kernel", NULL), DL_ERR_USAGE);
}
END_TEST

/* sel_fn: gains, adding, values, reset. */
START_TEST(test_fn_api)
{
    sel_kernel k;
    sel_problem p;
    sel_options o;
    small_setup(&k, &p, &o);
    sel_fn *f = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_int_eq(sel_fn_new(&p, &f, &err), DL_OK);
    ck_assert_int_eq(sel_fn_size(f), 6);
    double g2 = sel_fn_gain(f, 2);
    ck_assert_int_eq(sel_fn_add(f, 2, &err), DL_OK);
    ck_assert(fabs(sel_fn_value(f) - g2) < 1e-12);
    ck_assert(sel_fn_gain(f, 2) == 0.0); /* already in A: nothing to add */
    ck_assert_int_eq(sel_fn_add(f, 2, &err), DL_ERR_USAGE);
    ck_assert_int_eq(sel_fn_add(f, 6, NULL), DL_ERR_USAGE);
    double g4 = sel_fn_gain(f, 4);
    ck_assert_int_eq(sel_fn_add(f, 4, NULL), DL_OK);
    ck_assert(fabs(sel_fn_value(f) - (g2 + g4)) < 1e-12);
    int64_t set[3] = {4, 2, 4};
    double v;
    ck_assert_int_eq(sel_evaluate(&p, set, 3, &v, NULL), DL_OK);
    ck_assert(fabs(v - (g2 + g4)) < 1e-12);
    set[0] = -1;
    ck_assert_int_eq(sel_evaluate(&p, set, 3, &v, NULL), DL_ERR_USAGE);
    sel_fn_reset(f);
    ck_assert(sel_fn_value(f) == 0.0);
    ck_assert(sel_fn_gain(f, 2) == g2);
    sel_fn_free(f);
    sel_fn_free(NULL);
    sel_result_free(NULL);
    p.fn = SEL_FN_FLMI;
    ck_assert_int_eq(sel_fn_new(&p, &f, NULL), DL_ERR_USAGE);
    ck_assert_ptr_null(f);
}
END_TEST

static Suite *sel_suite(void)
{
    Suite *s = suite_create("sel");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 120);
    /* The golden cases live in ../shared: without it they are left out
     * (the rest still runs). */
    if (dl_test_shared("golden/submodlib/README.md")) {
        tcase_add_test(tc, test_golden_cases);
        tcase_add_test(tc, test_golden_zero_stop_with_tolerance);
        tcase_add_test(tc, test_delift_10x10);
    } else {
        printf("SKIP: ../shared/golden/submodlib not present; golden cases left out\n");
    }
    tcase_add_test(tc, test_all_ties);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_test(te, test_usage_errors);
    tcase_add_test(te, test_names);
    tcase_add_test(te, test_nonfinite);
    tcase_add_test(te, test_nonfinite_wide);
    tcase_add_test(te, test_csr_errors);
    tcase_add_test(te, test_fn_api);
    suite_add_tcase(s, te);
    return s;
}

int main(void)
{
    return dl_test_run(sel_suite());
}
