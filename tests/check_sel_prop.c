/* check_sel_prop.c: properties of the selectors against independent
 * references: lazy == naive on continuous kernels of many shapes for every
 * function; the incremental gain table == the direct column sums; dense ==
 * CSR == strided == two threads; greedy vs the brute-force optimum and the
 * 1 - 1/e bound (n <= 12); f(A) == the sum of the greedy gains; stochastic
 * runs reproducible per seed; costs and stops against a plain greedy
 * written here; the memo log (sel_fn_gain_at_step, behind the lazy tie
 * settling) against gains formed without it.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "dl_test.h"
#include "sel.h"
#include "sel_impl.h" /* sel_fn_create, sel_fn_gain_at_step: the memo log */

/* ---- random kernels (the tests' own generator, independent of sel) -------- */

static uint64_t g_state;

static double urand(void)
{
    g_state ^= g_state << 13;
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return (double)(g_state >> 11) * 0x1.0p-53;
}

/* rows x cols in [lo, hi); symmetric when asked (square only). */
static float *rand_matrix(int64_t rows, int64_t cols, double lo, double hi, int sym)
{
    float *m = malloc((size_t)(rows * cols + 1) * sizeof *m);
    ck_assert_ptr_nonnull(m);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            m[i * cols + j] = (float)(lo + (hi - lo) * urand());
    if (sym)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < i; j++)
                m[i * cols + j] = m[j * cols + i];
    return m;
}

/* A problem over freshly generated kernels; owns them. */
typedef struct prob {
    float *s, *q, *p;
    sel_kernel ks, kq, kp;
    sel_problem pb;
} prob;

static const int64_t NQ = 4;

static void prob_make(prob *x, sel_fn_kind fn, int64_t m, int64_t n, double lo)
{
    memset(x, 0, sizeof *x);
    int gc = fn == SEL_FN_GC || fn == SEL_FN_GCCG;
    if (gc)
        m = n;
    sel_problem_init(&x->pb);
    x->pb.fn = fn;
    /* graph cut: symmetric non-negative kernels, where it is submodular */
    x->s = rand_matrix(m, n, gc ? 0.0 : lo, 1.0, gc);
    x->q = rand_matrix(fn == SEL_FN_FLQMI || fn == SEL_FN_GCMI ? n : m, NQ, lo, 1.0, 0);
    x->p = rand_matrix(m, NQ, lo, 0.7, 0);
    sel_kernel_dense(&x->ks, x->s, m, n, n);
    sel_kernel_dense(&x->kq, x->q, fn == SEL_FN_FLQMI || fn == SEL_FN_GCMI ? n : m, NQ, NQ);
    sel_kernel_dense(&x->kp, x->p, m, NQ, NQ);
    if (fn != SEL_FN_FLQMI && fn != SEL_FN_GCMI)
        x->pb.kernel = &x->ks;
    if (fn == SEL_FN_FLMI || fn == SEL_FN_FLQMI || fn == SEL_FN_GCMI)
        x->pb.query = &x->kq;
    if (fn == SEL_FN_FLCG || fn == SEL_FN_GCCG)
        x->pb.priv = &x->kp;
    x->pb.lambda = 0.2 + 0.25 * urand(); /* < 0.5: monotone */
    x->pb.eta = 0.5 + urand();
    x->pb.nu = 0.5 + urand();
}

static void prob_free(prob *x)
{
    free(x->s);
    free(x->q);
    free(x->p);
}

static void solve(const sel_problem *p, const sel_options *o, sel_result *r)
{
    dl_error err;
    dl_error_clear(&err);
    sel_result_init(r);
    ck_assert_msg(sel_maximize(p, o, r, &err) == DL_OK, "%s", err.message);
}

static void assert_same(const sel_result *a, const sel_result *b, const char *what)
{
    ck_assert_msg(a->count == b->count, "%s: %lld vs %lld picks", what, (long long)a->count,
                  (long long)b->count);
    for (int64_t t = 0; t < a->count; t++) {
        ck_assert_msg(a->indices[t] == b->indices[t], "%s: pick %lld: %lld vs %lld", what,
                      (long long)t, (long long)a->indices[t], (long long)b->indices[t]);
        ck_assert_msg(a->gains[t] == b->gains[t], "%s: gain %lld: %.17g vs %.17g", what,
                      (long long)t, a->gains[t], b->gains[t]);
    }
}

/* Replays r with a fresh sel_fn: every recorded gain must equal the direct
 * (column-sum) gain at that step bit for bit, every pick must be a best
 * naive pick, and f(A) the sum of the gains. */
static void assert_replay(const sel_problem *p, const sel_result *r, int check_best)
{
    sel_fn *f;
    ck_assert_int_eq(sel_fn_new(p, &f, NULL), DL_OK);
    int64_t n = sel_fn_size(f);
    double sum = 0;
    for (int64_t t = 0; t < r->count; t++) {
        double g = sel_fn_gain(f, r->indices[t]);
        ck_assert_msg(g == r->gains[t], "replay gain %lld: %.17g vs %.17g", (long long)t, g,
                      r->gains[t]);
        if (check_best) {
            unsigned char *in = calloc((size_t)n, 1);
            for (int64_t u = 0; u < t; u++)
                in[r->indices[u]] = 1;
            for (int64_t j = 0; j < n; j++)
                if (!in[j])
                    ck_assert_msg(sel_fn_gain(f, j) <= g, "pick %lld is not a best gain",
                                  (long long)t);
            free(in);
        }
        ck_assert_int_eq(sel_fn_add(f, r->indices[t], NULL), DL_OK);
        sum += g;
    }
    /* Gains are sums of float32 differences (the reference's terms), f(A)
     * sums float32 maxima: they agree to float precision, not to the bit. */
    ck_assert_msg(fabs(sel_fn_value(f) - sum) <= 1e-6 * fmax(1, fabs(sum)),
                  "f(A) %.17g vs sum of gains %.17g", sel_fn_value(f), sum);
    ck_assert_msg(r->value == sel_fn_value(f), "value %.17g vs %.17g", r->value,
                  sel_fn_value(f));
    sel_fn_free(f);
}

/* ---- lazy == naive, every function, many shapes --------------------------- */

/* lazy and naive agree pick for pick until the first exact tie for the best
 * gain (after that they may break it differently: DELIFT.md §5); returns
 * the number of picks compared. */
static int64_t assert_same_until_tie(const sel_problem *p, const sel_result *naive,
                                     const sel_result *lazy, const char *what)
{
    sel_fn *f;
    ck_assert_int_eq(sel_fn_new(p, &f, NULL), DL_OK);
    int64_t n = sel_fn_size(f), t;
    unsigned char *in = calloc((size_t)n, 1);
    for (t = 0; t < naive->count; t++) {
        double best = -INFINITY;
        int64_t ties = 0;
        for (int64_t j = 0; j < n; j++) {
            if (in[j])
                continue;
            double g = sel_fn_gain(f, j);
            if (g > best) {
                best = g;
                ties = 1;
            } else if (g == best) {
                ties++;
            }
        }
        if (ties > 1)
            break;
        ck_assert_msg(t < lazy->count && lazy->indices[t] == naive->indices[t] &&
                          lazy->gains[t] == naive->gains[t],
                      "%s: pick %lld differs without a tie", what, (long long)t);
        in[naive->indices[t]] = 1;
        ck_assert_int_eq(sel_fn_add(f, naive->indices[t], NULL), DL_OK);
    }
    ck_assert_int_eq(naive->count, lazy->count);
    free(in);
    sel_fn_free(f);
    return t;
}

START_TEST(test_lazy_equals_naive)
{
    static const int64_t shapes[][3] = {/* m, n, budget */
                                        {1, 1, 1},   {3, 2, 2},    {5, 5, 5},   {17, 9, 4},
                                        {9, 17, 9},  {40, 40, 12}, {64, 33, 33}, {120, 150, 45}};
    int runs = 0;
    int64_t compared = 0;
    for (int fn = 0; fn < SEL_FN_COUNT; fn++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int neg = 0; neg < 2; neg++) {
                g_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(fn * 1000 + (int)s * 10 + neg);
                prob x;
                prob_make(&x, (sel_fn_kind)fn, shapes[s][0], shapes[s][1], neg ? -0.5 : 0.0);
                int64_t n = sel_problem_size(&x.pb);
                sel_options o;
                sel_options_init(&o);
                o.budget = shapes[s][2] < n ? shapes[s][2] : n;
                sel_result naive, lazy;
                o.optimizer = SEL_OPT_NAIVE;
                solve(&x.pb, &o, &naive);
                o.optimizer = SEL_OPT_LAZY;
                solve(&x.pb, &o, &lazy);
                char what[64];
                snprintf(what, sizeof what, "%s shape %zu neg %d",
                         sel_fn_kind_name((sel_fn_kind)fn), s, neg);
                compared += assert_same_until_tie(&x.pb, &naive, &lazy, what);
                assert_replay(&x.pb, &naive, 1);
                assert_replay(&x.pb, &lazy, 0);
                sel_result_free(&naive);
                sel_result_free(&lazy);
                prob_free(&x);
                runs++;
            }
    ck_assert_int_eq(runs, SEL_FN_COUNT * 8 * 2);
    /* most picks are tie-free on continuous kernels */
    ck_assert_int_gt(compared, SEL_FN_COUNT * 2 * (1 + 2 + 5 + 4 + 9 + 12 + 33 + 45) * 8 / 10);
}
END_TEST

/* ---- layouts: strided, CSR (int32 and int64), two threads ----------------- */

/* CSR copy of a dense matrix keeping entries with |v| > 0 (others are 0). */
typedef struct csr {
    int64_t *indptr;
    void *indices;
    float *values;
} csr;

static void csr_from_dense(csr *c, const float *d, int64_t rows, int64_t cols, int wide)
{
    c->indptr = calloc((size_t)rows + 1, sizeof *c->indptr);
    c->indices = calloc((size_t)(rows * cols + 1), wide ? 8 : 4);
    c->values = calloc((size_t)(rows * cols + 1), sizeof *c->values);
    int64_t e = 0;
    for (int64_t i = 0; i < rows; i++) {
        /* store a row's columns in a scrambled order: order must not matter */
        for (int64_t t = 0; t < cols; t++) {
            int64_t j = (t * 7 + i) % cols;
            if (cols % 7 == 0)
                j = t;
            if (d[i * cols + j] == 0.0f)
                continue;
            if (wide)
                ((int64_t *)c->indices)[e] = j;
            else
                ((int32_t *)c->indices)[e] = (int32_t)j;
            c->values[e++] = d[i * cols + j];
        }
        c->indptr[i + 1] = e;
    }
}

static void csr_free(csr *c)
{
    free(c->indptr);
    free(c->indices);
    free(c->values);
}

START_TEST(test_layouts_agree)
{
    for (int fn = 0; fn < SEL_FN_COUNT; fn++)
        for (int opt = 0; opt < 2; opt++) {
            g_state = 0xD1B54A32D192ED03ULL + (uint64_t)fn;
            int64_t n = 70, m = fn == SEL_FN_GC || fn == SEL_FN_GCCG ? 70 : 50;
            prob x;
            prob_make(&x, (sel_fn_kind)fn, m, n, -0.3);
            int64_t rows = x.pb.kernel ? x.ks.rows : x.kq.rows;
            /* sparsify S (or Q): about 60% zeros, kept symmetric for GC */
            float *dense = x.pb.kernel ? x.s : x.q;
            int64_t cols = x.pb.kernel ? x.ks.cols : x.kq.cols;
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < cols; j++) {
                    int64_t a = i < j ? i : j, b = i < j ? j : i;
                    if (((a * 31 + b * 17) % 5) < 3)
                        dense[i * cols + j] = 0.0f;
                }
            sel_options o;
            sel_options_init(&o);
            o.optimizer = opt ? SEL_OPT_LAZY : SEL_OPT_NAIVE;
            o.budget = 20;
            sel_result base, other;
            solve(&x.pb, &o, &base);
            assert_replay(&x.pb, &base, opt == 0);
            /* strided: the same matrix inside a wider buffer */
            int64_t stride = cols + 3;
            float *wide = malloc((size_t)(rows * stride) * sizeof *wide);
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j < stride; j++)
                    wide[i * stride + j] = j < cols ? dense[i * cols + j] : NAN;
            sel_kernel kw, kc32, kc64;
            sel_kernel_dense(&kw, wide, rows, cols, stride);
            sel_problem pw = x.pb;
            if (x.pb.kernel)
                pw.kernel = &kw;
            else
                pw.query = &kw;
            solve(&pw, &o, &other);
            assert_same(&base, &other, "strided");
            sel_result_free(&other);
            /* two threads */
            o.threads = 2;
            solve(&x.pb, &o, &other);
            assert_same(&base, &other, "threads");
            sel_result_free(&other);
            o.threads = 1;
            /* CSR with int32 and int64 indices */
            csr c32, c64;
            csr_from_dense(&c32, dense, rows, cols, 0);
            csr_from_dense(&c64, dense, rows, cols, 1);
            sel_kernel_csr(&kc32, rows, cols, c32.indptr, c32.indices, SEL_INDEX_I32, c32.values);
            sel_kernel_csr(&kc64, rows, cols, c64.indptr, c64.indices, SEL_INDEX_I64, c64.values);
            ck_assert_int_eq(sel_kernel_check(&kc32, "kernel", NULL), DL_OK);
            sel_problem pc = x.pb;
            for (int w = 0; w < 2; w++) {
                if (x.pb.kernel)
                    pc.kernel = w ? &kc64 : &kc32;
                else
                    pc.query = w ? &kc64 : &kc32;
                solve(&pc, &o, &other);
                assert_same(&base, &other, w ? "csr64" : "csr32");
                sel_result_free(&other);
            }
            csr_free(&c32);
            csr_free(&c64);
            free(wide);
            sel_result_free(&base);
            prob_free(&x);
        }
}
END_TEST

/* ---- brute force on n <= 12 -------------------------------------------------- */

START_TEST(test_brute_force_bound)
{
    static const sel_fn_kind monotone[] = {SEL_FN_FL,   SEL_FN_FLMI, SEL_FN_FLQMI, SEL_FN_FLCG,
                                           SEL_FN_GC,   SEL_FN_GCMI, SEL_FN_GCCG};
    const double bound = 1.0 - exp(-1.0);
    for (size_t f = 0; f < sizeof monotone / sizeof monotone[0]; f++)
        for (int64_t n = 4; n <= 12; n += 4)
            for (int64_t k = 1; k <= 4; k++) {
                g_state = 0x2545F4914F6CDD1DULL + (uint64_t)(f * 100 + (size_t)n * 10 + (size_t)k);
                prob x;
                prob_make(&x, monotone[f], n + 3, n, 0.0);
                if (monotone[f] == SEL_FN_GCCG)
                    x.pb.nu = 0.0; /* the private term makes it non-monotone */
                sel_options o;
                sel_options_init(&o);
                o.budget = k;
                sel_result r;
                solve(&x.pb, &o, &r);
                /* every k-subset, as a bit mask */
                double opt = -INFINITY;
                int64_t set[12];
                for (uint32_t mask = 0; mask < (1u << n); mask++) {
                    if (__builtin_popcount(mask) != k)
                        continue;
                    int64_t c = 0;
                    for (int64_t j = 0; j < n; j++)
                        if (mask & (1u << j))
                            set[c++] = j;
                    double v;
                    ck_assert_int_eq(sel_evaluate(&x.pb, set, c, &v, NULL), DL_OK);
                    opt = fmax(opt, v);
                }
                ck_assert_msg(r.value <= opt + 1e-9 * fmax(1, opt), "%s: greedy above optimum",
                              sel_fn_kind_name(monotone[f]));
                ck_assert_msg(r.value >= bound * opt - 1e-9,
                              "%s n=%lld k=%lld: greedy %.9g < (1-1/e) * %.9g",
                              sel_fn_kind_name(monotone[f]), (long long)n, (long long)k,
                              r.value, opt);
                sel_result_free(&r);
                prob_free(&x);
            }
}
END_TEST

/* ---- stochastic and lazier -------------------------------------------------------- */

START_TEST(test_stochastic_reproducible)
{
    g_state = 77;
    prob x;
    prob_make(&x, SEL_FN_FL, 200, 200, 0.0);
    for (int lazier = 0; lazier < 2; lazier++) {
        sel_options o;
        sel_options_init(&o);
        o.optimizer = lazier ? SEL_OPT_LAZIER : SEL_OPT_STOCHASTIC;
        o.budget = 20;
        o.epsilon = 0.3;
        o.seed = 12345;
        sel_result a, b;
        solve(&x.pb, &o, &a);
        solve(&x.pb, &o, &b);
        assert_same(&a, &b, "same seed");
        assert_replay(&x.pb, &a, 0);
        int differs = 0;
        for (uint64_t seed = 1; seed <= 5; seed++) {
            o.seed = seed;
            sel_result c;
            solve(&x.pb, &o, &c);
            for (int64_t t = 0; t < c.count; t++)
                differs |= c.indices[t] != a.indices[t];
            assert_replay(&x.pb, &c, 0);
            sel_result_free(&c);
        }
        ck_assert_msg(differs, "every seed gave the same selection");
        /* a sample as large as the pool is plain greedy */
        o.epsilon = 1e-300;
        sel_result_free(&b);
        solve(&x.pb, &o, &b);
        o.optimizer = SEL_OPT_NAIVE;
        sel_result_free(&a);
        solve(&x.pb, &o, &a);
        assert_same(&a, &b, "full sample");
        sel_result_free(&a);
        sel_result_free(&b);
    }
    prob_free(&x);
}
END_TEST

/* ---- costs: against a plain cost-scaled greedy written here ---------------- */

START_TEST(test_costs)
{
    for (int fn = 0; fn < SEL_FN_COUNT; fn++) {
        g_state = 4242 + (uint64_t)fn;
        prob x;
        prob_make(&x, (sel_fn_kind)fn, 30, 30, 0.0);
        int64_t n = sel_problem_size(&x.pb);
        double costs[30];
        for (int64_t j = 0; j < n; j++)
            costs[j] = 0.5 + 2.0 * urand();
        /* the reference: best gain / cost among items that still fit */
        sel_fn *f;
        ck_assert_int_eq(sel_fn_new(&x.pb, &f, NULL), DL_OK);
        double left = 6.0;
        int64_t want[30], nw = 0;
        unsigned char in[30] = {0};
        for (;;) {
            int64_t best = -1;
            double bs = 0;
            for (int64_t j = 0; j < n; j++) {
                if (in[j] || costs[j] > left)
                    continue;
                double s = sel_fn_gain(f, j) / costs[j];
                if (best < 0 || s >= bs) {
                    best = j;
                    bs = s;
                }
            }
            if (best < 0 || nw == 10)
                break;
            ck_assert_int_eq(sel_fn_add(f, best, NULL), DL_OK);
            in[best] = 1;
            want[nw++] = best;
            left -= costs[best];
        }
        sel_fn_free(f);
        for (int opt = 0; opt < 2; opt++) {
            sel_options o;
            sel_options_init(&o);
            o.optimizer = opt ? SEL_OPT_LAZY : SEL_OPT_NAIVE;
            o.budget = 10;
            o.costs = costs;
            o.cost_budget = 6.0;
            sel_result r;
            solve(&x.pb, &o, &r);
            ck_assert_int_eq(r.count, nw);
            double spent = 0;
            for (int64_t t = 0; t < nw; t++) {
                ck_assert_int_eq(r.indices[t], want[t]);
                spent += costs[r.indices[t]];
            }
            ck_assert(spent <= 6.0);
            ck_assert(r.count == 10 || r.stop == SEL_STOP_COST);
            assert_replay(&x.pb, &r, 0);
            sel_result_free(&r);
        }
        prob_free(&x);
    }
}
END_TEST

/* ---- stops ------------------------------------------------------------------------- */

START_TEST(test_negative_stop)
{
    g_state = 99;
    prob x;
    prob_make(&x, SEL_FN_GC, 40, 40, 0.0);
    x.pb.lambda = 0.9; /* gains turn negative */
    for (int opt = 0; opt < 2; opt++) {
        sel_options o;
        sel_options_init(&o);
        o.optimizer = opt ? SEL_OPT_LAZY : SEL_OPT_NAIVE;
        o.budget = 39;
        sel_result full, stopped;
        solve(&x.pb, &o, &full);
        o.stop_if_negative_gain = true;
        solve(&x.pb, &o, &stopped);
        ck_assert_int_eq(stopped.stop, SEL_STOP_NEGATIVE_GAIN);
        ck_assert_int_lt(stopped.count, full.count);
        for (int64_t t = 0; t < stopped.count; t++) {
            ck_assert_int_eq(stopped.indices[t], full.indices[t]);
            ck_assert(stopped.gains[t] >= 0);
        }
        ck_assert(full.gains[stopped.count] < 0);
        /* a tolerance lets small negative gains through */
        o.gain_tolerance = fabs(full.gains[stopped.count]);
        sel_result tol;
        solve(&x.pb, &o, &tol);
        ck_assert_int_gt(tol.count, stopped.count);
        sel_result_free(&tol);
        sel_result_free(&full);
        sel_result_free(&stopped);
    }
    prob_free(&x);
}
END_TEST

START_TEST(test_budget_fraction)
{
    g_state = 5;
    prob x;
    prob_make(&x, SEL_FN_FL, 37, 37, 0.0);
    sel_options o;
    sel_options_init(&o);
    o.budget_kind = SEL_BUDGET_FRACTION;
    o.budget_fraction = 0.3;
    sel_result r;
    solve(&x.pb, &o, &r);
    ck_assert_int_eq(r.count, 11); /* floor(0.3 * 37) */
    sel_result_free(&r);
    int64_t c;
    o.budget_fraction = 1.0;
    ck_assert_int_eq(sel_options_budget(&o, 37, &c, NULL), DL_OK);
    ck_assert_int_eq(c, 37);
    o.budget_fraction = 0.0;
    solve(&x.pb, &o, &r);
    ck_assert_int_eq(r.count, 0);
    ck_assert(r.value == 0.0);
    sel_result_free(&r);
    prob_free(&x);
}
END_TEST

static volatile int g_cancel = 1;

START_TEST(test_cancel)
{
    g_state = 6;
    prob x;
    prob_make(&x, SEL_FN_FL, 20, 20, 0.0);
    for (int opt = 0; opt < SEL_OPT_COUNT; opt++) {
        sel_options o;
        sel_options_init(&o);
        o.optimizer = (sel_opt_kind)opt;
        o.budget = 5;
        o.cancel = &g_cancel;
        sel_result r;
        sel_result_init(&r);
        ck_assert_int_eq(sel_maximize(&x.pb, &o, &r, NULL), DL_ERR_CANCELLED);
        ck_assert_int_eq(r.count, 0);
    }
    prob_free(&x);
}
END_TEST

/* ---- graph cut against sums formed here --------------------------------------- */

/* The gc gain of j after the picks in a[0..na), from scratch in the test:
 * T_j - lambda (sum_a S[a][j] + sum_a S[j][a]) - (float)(lambda S[j][j]),
 * column and pick sums in double in row and pick order (the reference's). */
static double gc_direct(const float *s, int64_t n, float lambda, const int64_t *a,
                        int64_t na, int64_t j)
{
    double t = 0, rsum = 0, csum = 0;
    for (int64_t i = 0; i < n; i++)
        t += s[i * n + j];
    for (int64_t u = 0; u < na; u++) {
        rsum += s[a[u] * n + j];
        csum += s[j * n + a[u]];
    }
    return t - (double)lambda * (rsum + csum) - (double)(lambda * s[j * n + j]);
}

/* gccg's gain of j, formed the same way: T_j - (sum_a lambda S[a][j] +
 * sum_a lambda S[j][a]) - lambda S[j][j] - 2 lambda (nu sum_p P[j][p]),
 * every product a float one, as the reference; the two pick sums apart
 * (the reference's one column sum of 2 lambda S[a][j] on a symmetric S). */
static double gccg_direct(const float *s, const float *pv, int64_t n, int64_t np, float lambda,
                          float nu, const int64_t *a, int64_t na, int64_t j)
{
    double t = 0, rsum = 0, csum = 0, psum = 0;
    for (int64_t i = 0; i < n; i++)
        t += s[i * n + j];
    for (int64_t u = 0; u < na; u++) {
        rsum += (double)(lambda * s[a[u] * n + j]);
        csum += (double)(lambda * s[j * n + a[u]]);
    }
    for (int64_t c = 0; c < np; c++)
        psum += pv[j * np + c];
    float pf = (float)(psum * (double)nu);
    return t - (rsum + csum) - (double)(lambda * s[j * n + j]) - (double)(2.0f * lambda * pf);
}

/* One graph-cut kernel of side n: variant 0 symmetric, 1 random, 2
 * symmetric but for one pair in the last tile, 3 mirror pairs that differ
 * only as -0 / +0, 4 symmetric but for one pair off the diagonal (n > 128:
 * in an off-diagonal tile pair), 5 symmetric with twelve orders of magnitude
 * (the double sums round, so their order shows in the bits). */
static float *gc_kernel(int64_t n, int variant)
{
    float *s = rand_matrix(n, n, 0.0, 1.0, variant != 1);
    if (variant == 2)
        s[(n - 2) * n + n - 1] += 0.25f;
    if (variant == 3)
        for (int64_t i = 0; i < n; i += 7) {
            s[i * n + (i + 3) % n] = -0.0f;
            s[((i + 3) % n) * n + i] = 0.0f;
        }
    if (variant == 4)
        s[(n - 9) * n + 5] += 0.125f;
    if (variant == 5)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j <= i; j++)
                s[i * n + j] = s[j * n + i] = powf(10.0f, -12.0f * s[i * n + j]);
    return s;
}

/* Every gain the lazy greedy reports and every candidate's gain after
 * every pick (a sel_fn replaying the picks) equal the direct sums bit for
 * bit, for gc and gccg, on kernels of one symmetry tile (70) and of several
 * with ragged edges (300 = 2 x 128 + 44); two threads give the same bits. */
START_TEST(test_gc_direct_sums)
{
    const int64_t sizes[] = {70, 300}, np = 3;
    for (int si = 0; si < 2; si++)
        for (int variant = 0; variant < 6; variant++)
            for (int gccg = 0; gccg < 2; gccg++) {
                int64_t n = sizes[si];
                float *s = gc_kernel(n, variant);
                float *pv = rand_matrix(n, np, 0.0, 0.5, 0);
                sel_kernel k, kp;
                sel_kernel_dense(&k, s, n, n, n);
                sel_kernel_dense(&kp, pv, n, np, np);
                sel_problem p;
                sel_problem_init(&p);
                p.fn = gccg ? SEL_FN_GCCG : SEL_FN_GC;
                p.kernel = &k;
                p.priv = gccg ? &kp : NULL;
                p.lambda = 0.3 + 0.02 * variant;
                p.nu = 0.75;
                float lambda = (float)p.lambda, nu = (float)p.nu;
                sel_options o;
                sel_options_init(&o);
                o.budget = 40;
                sel_result r, r2;
                solve(&p, &o, &r);
                ck_assert_int_eq(r.count, 40);
                o.threads = 2;
                solve(&p, &o, &r2);
                assert_same(&r, &r2, "gc threads");
                sel_fn *f;
                ck_assert_int_eq(sel_fn_new(&p, &f, NULL), DL_OK);
                for (int64_t t = 0; t < r.count; t++) {
                    int64_t x = r.indices[t];
                    double want = gccg ? gccg_direct(s, pv, n, np, lambda, nu, r.indices, t, x)
                                       : gc_direct(s, n, lambda, r.indices, t, x);
                    ck_assert_msg(r.gains[t] == want, "n %lld variant %d gccg %d pick %lld: %.17g",
                                  (long long)n, variant, gccg, (long long)t, r.gains[t]);
                    for (int64_t j = 0; j < n; j++) {
                        want = gccg ? gccg_direct(s, pv, n, np, lambda, nu, r.indices, t, j)
                                    : gc_direct(s, n, lambda, r.indices, t, j);
                        ck_assert_msg(sel_fn_gain(f, j) == want,
                                      "n %lld variant %d gccg %d step %lld item %lld",
                                      (long long)n, variant, gccg, (long long)t, (long long)j);
                    }
                    ck_assert_int_eq(sel_fn_add(f, x, NULL), DL_OK);
                }
                sel_fn_free(f);
                sel_result_free(&r);
                sel_result_free(&r2);
                free(pv);
                free(s);
            }
}
END_TEST

/* result.gathered counts the S[x][a] read for the pending sums: naive greedy
 * evaluates every remaining item at every step, so from the second step on
 * each folds in exactly the one pick made since: sum_{t=1}^{b-1} (n - t).
 * A symmetric kernel never gathers (colpick is rowpick); a lazy run gathers
 * no more than naive does. */
START_TEST(test_gc_gathered_count)
{
    const int64_t n = 300, budget = 25;
    g_state = 0x5eed6a7;
    for (int variant = 0; variant < 2; variant++) {
        float *s = gc_kernel(n, variant); /* 0 symmetric, 1 random */
        sel_kernel k;
        sel_kernel_dense(&k, s, n, n, n);
        sel_problem p;
        sel_problem_init(&p);
        p.fn = SEL_FN_GC;
        p.kernel = &k;
        p.lambda = 0.4;
        sel_options o;
        sel_options_init(&o);
        o.budget = budget;
        o.optimizer = SEL_OPT_NAIVE;
        sel_result naive, lazy;
        solve(&p, &o, &naive);
        o.optimizer = SEL_OPT_LAZY;
        solve(&p, &o, &lazy);
        int64_t want = 0;
        for (int64_t t = 1; t < budget; t++)
            want += n - t;
        if (variant == 0) {
            ck_assert_int_eq(naive.gathered, 0);
            ck_assert_int_eq(lazy.gathered, 0);
        } else {
            ck_assert_int_eq(naive.gathered, want);
            ck_assert_int_gt(lazy.gathered, 0);
            ck_assert_int_le(lazy.gathered, want);
        }
        sel_result_free(&naive);
        sel_result_free(&lazy);
        free(s);
    }
}
END_TEST

/* A NaN or Inf in a graph-cut kernel is reported at its first place in
 * row-major order whether or not the kernel is symmetric (the one-read
 * symmetric pass stops there and the plain pass names it), with one or two
 * threads. */
START_TEST(test_gc_nonfinite_first)
{
    const int64_t n = 300;
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++)
        for (int sym = 0; sym < 2; sym++)
            for (int threads = 1; threads <= 2; threads++) {
                float *s = rand_matrix(n, n, 0.0, 1.0, sym);
                s[200 * n + 150] = bad[b]; /* below the diagonal */
                s[150 * n + 200] = bad[b]; /* its mirror, first in row order */
                s[290 * n + 3] = bad[b];
                sel_kernel k;
                sel_kernel_dense(&k, s, n, n, n);
                sel_problem p;
                sel_problem_init(&p);
                p.fn = SEL_FN_GC;
                p.kernel = &k;
                p.lambda = 0.4;
                sel_options o;
                sel_options_init(&o);
                o.budget = 5;
                o.threads = threads;
                sel_result r;
                sel_result_init(&r);
                dl_error err;
                dl_error_clear(&err);
                ck_assert_int_eq(sel_maximize(&p, &o, &r, &err), DL_ERR_NUMERIC);
                ck_assert_msg(strstr(err.message, "row 150, column 200") != NULL, "%s",
                              err.message);
                ck_assert_int_eq(r.count, 0);
                free(s);
            }
}
END_TEST

/* ---- the memo log behind the lazy tie settling ------------------------------ */

/* fl's gain of j over the memo of the first `steps` picks, formed here from
 * the kernel alone (memo from scratch, float32 terms, double sum in row
 * order: the reference's arithmetic). */
static double fl_direct(const float *s, int64_t m, int64_t n, const int64_t *picks,
                        int64_t steps, int64_t j)
{
    double g = 0;
    for (int64_t i = 0; i < m; i++) {
        float mx = 0.0f;
        for (int64_t t = 0; t < steps; t++)
            mx = s[i * n + picks[t]] > mx ? s[i * n + picks[t]] : mx;
        float v = s[i * n + j];
        g += v > mx ? v - mx : 0.0f;
    }
    return g;
}

/* sel_fn_gain_at_step (the memo log undone back to an earlier pick, used by
 * the lazy greedy to form the reference's stored heap keys) against gains
 * formed without any log: a plain sel_fn replaying the same picks, and for
 * fl the direct sum above.  Kernels with a wide dynamic range (where the
 * incremental table itself may round differently) and negative entries,
 * n not a multiple of the block width, dense and CSR, after a reset too. */
START_TEST(test_memo_log_gain_at_step)
{
    const sel_fn_kind fns[] = {SEL_FN_FL, SEL_FN_FLMI, SEL_FN_FLCG};
    for (size_t v = 0; v < sizeof fns / sizeof fns[0]; v++)
        for (int layout = 0; layout < 2; layout++) {
            g_state = 0x9E3779B97F4A7C15ULL + v * 2 + (uint64_t)layout;
            const int64_t m = 45, n = 131, picks = 25;
            prob x;
            prob_make(&x, fns[v], m, n, -0.2);
            for (int64_t e = 0; e < m * n; e++) /* 1 down to about 1e-26 */
                if (x.s[e] > 0.0f)
                    x.s[e] = (float)exp(-60.0 * urand());
            csr c = {0};
            sel_kernel kc;
            if (layout == 1) {
                for (int64_t e = 0; e < m * n; e++)
                    if (urand() < 0.4)
                        x.s[e] = 0.0f;
                csr_from_dense(&c, x.s, m, n, 0);
                sel_kernel_csr(&kc, m, n, c.indptr, c.indices, SEL_INDEX_I32, c.values);
                x.pb.kernel = &kc;
            }
            sel_fn *f;
            dl_error err;
            dl_error_clear(&err);
            ck_assert_msg(sel_fn_create(&x.pb, 1, 1, &f, &err) == DL_OK, "%s", err.message);
            ck_assert_ptr_nonnull(f->gain); /* the incremental path, with its log */
            for (int round = 0; round < 2; round++) {
                int64_t order[131];
                for (int64_t j = 0; j < n; j++)
                    order[j] = j;
                for (int64_t j = n - 1; j > 0; j--) { /* a random pick order */
                    int64_t r = (int64_t)(urand() * (double)(j + 1)), t = order[j];
                    order[j] = order[r];
                    order[r] = t;
                }
                for (int64_t t = 0; t < picks; t++)
                    ck_assert_int_eq(sel_fn_add(f, order[t], NULL), DL_OK);
                ck_assert_int_gt(f->log_len, 0);
                sel_fn *ref;
                ck_assert_int_eq(sel_fn_new(&x.pb, &ref, NULL), DL_OK);
                for (int64_t st = 0; st <= picks; st++) {
                    for (int64_t j = 0; j < n; j++) {
                        double g = sel_fn_gain_at_step(f, j, st);
                        ck_assert_msg(g == sel_fn_gain(ref, j),
                                      "fn %d layout %d round %d: gain of %lld after %lld "
                                      "picks %.17g vs %.17g", (int)fns[v], layout, round,
                                      (long long)j, (long long)st, g, sel_fn_gain(ref, j));
                        if (fns[v] == SEL_FN_FL && !ref->in[j])
                            ck_assert_msg(g == fl_direct(x.s, m, n, order, st, j),
                                          "fl direct, item %lld step %lld", (long long)j,
                                          (long long)st);
                    }
                    if (st < picks)
                        ck_assert_int_eq(sel_fn_add(ref, order[st], NULL), DL_OK);
                }
                /* undoing nothing is the memo now */
                for (int64_t j = 0; j < n; j++)
                    ck_assert(sel_fn_gain_at_step(f, j, picks) == sel_fn_gain(f, j));
                sel_fn_free(ref);
                sel_fn_reset(f); /* the log must start again */
                ck_assert_int_eq(f->log_len, 0);
            }
            sel_fn_free(f);
            if (layout == 1)
                csr_free(&c);
            prob_free(&x);
        }
}
END_TEST

/* ---- every instance of the dense kernels gives the same bits --------------- */

/* S of m x n for the ISA test: kind 0 uniform in [-0.3, 1), 1 twelve orders
 * of magnitude (the double sums round, so any change of order shows in the
 * bits), 2 eight levels (exact ties everywhere); gc: symmetric. */
static float *isa_kernel(int64_t m, int64_t n, int kind, int sym)
{
    float *s = rand_matrix(m, n, kind == 0 ? -0.3 : 0.0, 1.0, sym);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = sym ? i : 0; j < n; j++) {
            float v = s[i * n + j];
            if (kind == 1)
                v = powf(10.0f, -12.0f * v);
            if (kind == 2)
                v = floorf(v * 8.0f) / 8.0f;
            s[i * n + j] = v;
            if (sym)
                s[j * n + i] = v;
        }
    return s;
}

/* Every candidate's gain as the optimisers see it (the incremental table of
 * the FL family, graph cut's column sums) before each of the picks, on
 * `threads` threads with the instances now set: (count + 1) x n, owned. */
static double *isa_table(const sel_problem *p, const sel_result *r, int threads)
{
    sel_fn *f;
    ck_assert_int_eq(sel_fn_create(p, 1, threads, &f, NULL), DL_OK);
    int64_t n = sel_fn_size(f);
    double *g = malloc((size_t)((r->count + 1) * n) * sizeof *g);
    ck_assert_ptr_nonnull(g);
    for (int64_t t = 0; t <= r->count; t++) {
        for (int64_t j = 0; j < n; j++)
            g[t * n + j] = sel_fn_gain_update(f, j);
        if (t < r->count)
            ck_assert_int_eq(sel_fn_add(f, r->indices[t], NULL), DL_OK);
    }
    sel_fn_free(f);
    return g;
}

/* The portable, AVX2 and AVX-512 instances (those the CPU has: sel_isa_set
 * caps at what it finds) select the same items with the same gain bits and
 * hold every candidate's gain with the same bits before every pick,
 * for fl, flmi, flcg, gc and gccg, lazy and naive, one and two threads, on
 * shapes with ragged 16- and 64-column tails (203) and rows long enough
 * for the row prefetch (1,000).  The portable run is the oracle; on kind 0
 * it is also replayed against the direct column sums. */
START_TEST(test_isa_instances_agree)
{
    const sel_fn_kind fns[] = {SEL_FN_FL, SEL_FN_FLMI, SEL_FN_FLCG, SEL_FN_GC, SEL_FN_GCCG};
    const int64_t shapes[][2] = {{90, 203}, {40, 1000}};
    for (int fi = 0; fi < 5; fi++)
        for (int sh = 0; sh < 2; sh++)
            for (int kind = 0; kind < 3; kind++) {
                g_state = 0x9E3779B97F4A7C15ULL + (uint64_t)(fi * 16 + sh * 4 + kind);
                prob x;
                prob_make(&x, fns[fi], shapes[sh][0], shapes[sh][1], -0.3);
                int gc = fns[fi] == SEL_FN_GC || fns[fi] == SEL_FN_GCCG;
                int64_t m = x.ks.rows, n = x.ks.cols;
                free(x.s);
                x.s = isa_kernel(m, n, kind, gc);
                sel_kernel_dense(&x.ks, x.s, m, n, n);
                for (int opt = 0; opt < 2; opt++)
                    for (int threads = 1; threads <= 2; threads++) {
                        sel_options o;
                        sel_options_init(&o);
                        o.optimizer = opt ? SEL_OPT_LAZY : SEL_OPT_NAIVE;
                        o.budget = 40;
                        o.threads = threads;
                        sel_result base, other;
                        ck_assert_int_eq(sel_isa_set(SEL_ISA_SCALAR), SEL_ISA_SCALAR);
                        solve(&x.pb, &o, &base);
                        if (kind == 0 && threads == 1)
                            assert_replay(&x.pb, &base, opt == 0);
                        double *want = opt ? isa_table(&x.pb, &base, threads) : NULL;
                        for (int isa = SEL_ISA_AVX2; isa <= SEL_ISA_AVX512; isa++) {
                            sel_isa got = sel_isa_set((sel_isa)isa);
                            ck_assert(got <= (sel_isa)isa && got == sel_isa_now());
                            const char *what = isa == SEL_ISA_AVX2 ? "avx2" : "avx512";
                            solve(&x.pb, &o, &other);
                            assert_same(&base, &other, what);
                            sel_result_free(&other);
                            if (!want)
                                continue;
                            /* every table entry, not only the picks' */
                            double *have = isa_table(&x.pb, &base, threads);
                            for (int64_t e = 0; e < (base.count + 1) * n; e++)
                                ck_assert_msg(have[e] == want[e], "%s fn %d: step %lld item %lld",
                                              what, (int)fns[fi], (long long)(e / n),
                                              (long long)(e % n));
                            free(have);
                        }
                        free(want);
                        sel_result_free(&base);
                    }
                prob_free(&x);
            }
    sel_isa_set(SEL_ISA_AUTO);
}
END_TEST

/* NaN / Inf: the first in row-major order, in a full vector (column 37), a
 * 16-column tail (column 200 of 203) or a 64-block tail (column 194), is
 * found at its place by the kernel check, the facility-location sweep and
 * the graph-cut column sums of every instance. */
START_TEST(test_isa_nonfinite_same_place)
{
    const int64_t n = 203, cols[] = {37, 200, 194};
    for (int c = 0; c < 3; c++)
        for (int isa = SEL_ISA_SCALAR; isa <= SEL_ISA_AVX512; isa++) {
            sel_isa_set((sel_isa)isa);
            float *s = rand_matrix(n, n, 0.0, 1.0, 1);
            s[120 * n + cols[c]] = c == 1 ? INFINITY : NAN;
            s[121 * n + 5] = -INFINITY;
            sel_kernel k;
            sel_kernel_dense(&k, s, n, n, n);
            char want[64];
            snprintf(want, sizeof want, "row 120, column %lld", (long long)cols[c]);
            dl_error err;
            dl_error_clear(&err);
            ck_assert_int_eq(sel_kernel_check(&k, "kernel", &err), DL_ERR_NUMERIC);
            ck_assert_msg(strstr(err.message, want) != NULL, "%s", err.message);
            for (int gc = 0; gc < 2; gc++) {
                sel_problem p;
                sel_problem_init(&p);
                p.fn = gc ? SEL_FN_GC : SEL_FN_FL;
                p.kernel = &k;
                p.lambda = 0.4;
                sel_options o;
                sel_options_init(&o);
                o.budget = 5;
                sel_result r;
                sel_result_init(&r);
                dl_error_clear(&err);
                ck_assert_int_eq(sel_maximize(&p, &o, &r, &err), DL_ERR_NUMERIC);
                ck_assert_msg(strstr(err.message, want) != NULL, "isa %d gc %d: %s", isa, gc,
                              err.message);
                sel_result_free(&r);
            }
            free(s);
        }
    sel_isa_set(SEL_ISA_AUTO);
}
END_TEST

static Suite *prop_suite(void)
{
    Suite *s = suite_create("sel_prop");
    TCase *tc = tcase_create("properties");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_lazy_equals_naive);
    tcase_add_test(tc, test_layouts_agree);
    tcase_add_test(tc, test_brute_force_bound);
    tcase_add_test(tc, test_stochastic_reproducible);
    tcase_add_test(tc, test_costs);
    tcase_add_test(tc, test_negative_stop);
    tcase_add_test(tc, test_budget_fraction);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_gc_direct_sums);
    tcase_add_test(tc, test_gc_nonfinite_first);
    tcase_add_test(tc, test_gc_gathered_count);
    tcase_add_test(tc, test_memo_log_gain_at_step);
    tcase_add_test(tc, test_isa_instances_agree);
    tcase_add_test(tc, test_isa_nonfinite_same_place);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(prop_suite());
}
