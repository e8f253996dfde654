/* check_knn.c: knn_search against a naive brute force written here.
 *
 * The oracle (ref_cos) is the textbook cosine in double with one running
 * sum per term, independent of knn.c's four-lane sums and its FAISS
 * candidates.  ref_check() asserts, for every query, the complete contract
 * of knn.h: k distinct valid rows, each reported sim within float rounding
 * of the oracle's, sims non-increasing, equal sims (within 1e-12: only
 * exact ties come that close on this data) in ascending index order, and
 * no row left out that beats or ties-with-a-smaller-index the k-th.
 *
 * Exact ties are built so that any arithmetic sees them: duplicate rows,
 * rows scaled by powers of two (cosine bits unchanged), zero vectors
 * (sim 0 with everything), one-hot vectors.  Hand-derived expected arrays
 * pin the tie rule down independently of the oracle.  Built with FAISS,
 * the suite also proves that FAISS and the brute-force backend agree bit
 * for bit, that the candidate path alone settles generic data, and that
 * wide tie groups go through the exact rescan.  Allocation failures are
 * injected through a malloc wrapper.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "dl_test.h"
#include "knn.h"
#include "knn_int.h"

/* ---- failing allocations ------------------------------------------------- */

/* The program is linked with -Wl,--wrap=malloc (src/knn.mk): delift's own
 * (static) code allocates through here.  Armed, the first g_oom_budget
 * allocations succeed and the rest fail. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);

static int g_oom_armed;
static int64_t g_oom_budget;

void *__wrap_malloc(size_t n)
{
    if (g_oom_armed && g_oom_budget-- <= 0)
        return NULL;
    return __real_malloc(n);
}

/* ---- data --------------------------------------------------------------- */

static uint64_t g_rng;

static uint64_t rng_next(void)
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) * 0x1.0p-52 - 1.0);
}

static float *rand_rows(int64_t n, int64_t dim)
{
    float *x = malloc((size_t)(n * dim + 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < n * dim; i++)
        x[i] = rng_float();
    return x;
}

/* ---- the oracle --------------------------------------------------------- */

static double ref_cos(const float *a, const float *b, int64_t dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < dim; i++) {
        ab += (double)a[i] * (double)b[i];
        aa += (double)a[i] * (double)a[i];
        bb += (double)b[i] * (double)b[i];
    }
    if (aa == 0 || bb == 0)
        return 0;
    return ab / (sqrt(aa) * sqrt(bb));
}

#define TIE_EPS 1e-12

/* ck_assert_msg reports every passing check through Check's pipe (a
 * syscall each): in the per-element loops below, only failures may. */
#define KNN_CHECK(cond, ...)                                                             \
    do {                                                                                 \
        if (!(cond))                                                                     \
            ck_abort_msg(__VA_ARGS__);                                                   \
    } while (0)

/* Asserts the whole contract for every query row (see the top). */
static void ref_check(const float *q, int64_t nq, const float *b, int64_t nb, int64_t dim,
                      int64_t k, const int64_t *idx, const float *sim)
{
    size_t nbz = nb > 0 ? (size_t)nb : 1;
    double *ref = malloc(nbz * sizeof *ref);
    char *taken = malloc(nbz);
    ck_assert(ref && taken);
    for (int64_t i = 0; i < nq; i++) {
        const int64_t *row = idx + i * k;
        for (int64_t j = 0; j < nb; j++)
            ref[j] = ref_cos(q + i * dim, b + j * dim, dim);
        memset(taken, 0, nbz);
        for (int64_t r = 0; r < k; r++) {
            KNN_CHECK(row[r] >= 0 && row[r] < nb, "q%lld r%lld: index %lld", (long long)i,
                      (long long)r, (long long)row[r]);
            KNN_CHECK(!taken[row[r]], "q%lld: index %lld twice", (long long)i, (long long)row[r]);
            taken[row[r]] = 1;
            if (sim)
                KNN_CHECK(fabs(sim[i * k + r] - ref[row[r]]) <= 1e-6,
                          "q%lld r%lld: sim %.9g, oracle %.9g", (long long)i, (long long)r,
                          (double)sim[i * k + r], ref[row[r]]);
            if (r == 0)
                continue;
            double prev = ref[row[r - 1]], cur = ref[row[r]];
            KNN_CHECK(prev >= cur - TIE_EPS, "q%lld r%lld: %.17g after %.17g", (long long)i,
                      (long long)r, cur, prev);
            if (fabs(prev - cur) <= TIE_EPS)
                KNN_CHECK(row[r - 1] < row[r], "q%lld r%lld: tie order %lld before %lld",
                          (long long)i, (long long)r, (long long)row[r - 1], (long long)row[r]);
        }
        double last = ref[row[k - 1]];
        for (int64_t j = 0; j < nb; j++) {
            if (taken[j])
                continue;
            KNN_CHECK(ref[j] <= last + TIE_EPS, "q%lld: row %lld (%.17g) beats the k-th (%.17g)",
                      (long long)i, (long long)j, ref[j], last);
            if (fabs(ref[j] - last) <= TIE_EPS)
                KNN_CHECK(j > row[k - 1], "q%lld: tied row %lld left out for %lld",
                          (long long)i, (long long)j, (long long)row[k - 1]);
        }
    }
    free(ref);
    free(taken);
}

/* Runs knn_search, checks it against the oracle and against the
 * brute-force backend, which must give the same bits (with FAISS: a real
 * differential test; --without-faiss: the same code twice).  Returns the
 * rescan count. */
static int64_t run_checked(const float *q, int64_t nq, const float *b, int64_t nb, int64_t dim,
                           int64_t k)
{
    size_t n = (size_t)(nq * k + 1);
    int64_t *idx = malloc(n * sizeof *idx), *idx2 = malloc(n * sizeof *idx2);
    float *sim = malloc(n * sizeof *sim), *sim2 = malloc(n * sizeof *sim2);
    ck_assert(idx && idx2 && sim && sim2);
    dl_error err = {0};
    int64_t rescans = -1;
    dl_status st = knn_search_counted(q, nq, b, nb, dim, k, idx, sim, &rescans, &err);
    ck_assert_msg(st == DL_OK, "nb %lld dim %lld k %lld: %s", (long long)nb, (long long)dim,
                  (long long)k, err.message);
    ref_check(q, nq, b, nb, dim, k, idx, sim);
    st = knn_search_brute(q, nq, b, nb, dim, k, idx2, sim2, &err);
    ck_assert_int_eq(st, DL_OK);
    ck_assert_msg(memcmp(idx, idx2, (size_t)(nq * k) * sizeof *idx) == 0,
                  "backends disagree on indices (nb %lld dim %lld k %lld)", (long long)nb,
                  (long long)dim, (long long)k);
    ck_assert_msg(memcmp(sim, sim2, (size_t)(nq * k) * sizeof *sim) == 0,
                  "backends disagree on sims (nb %lld dim %lld k %lld)", (long long)nb,
                  (long long)dim, (long long)k);
    /* out_sim is optional and must not change the answer. */
    st = knn_search(q, nq, b, nb, dim, k, idx2, NULL, &err);
    ck_assert_int_eq(st, DL_OK);
    ck_assert(memcmp(idx, idx2, (size_t)(nq * k) * sizeof *idx) == 0);
    free(idx);
    free(idx2);
    free(sim);
    free(sim2);
    return rescans;
}

static int have_faiss(void)
{
    return strcmp(knn_backend_name(), "faiss") == 0;
}

/* ---- random shapes ---------------------------------------------------------- */

START_TEST(test_random_shapes)
{
    static const int64_t nbs[] = {1, 2, 3, 7, 16, 33, 100, 300};
    static const int64_t dims[] = {1, 2, 3, 5, 17, 64};
    g_rng = 1;
    int64_t rescans = 0, runs = 0;
    for (size_t a = 0; a < sizeof nbs / sizeof nbs[0]; a++)
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            int64_t nb = nbs[a], dim = dims[d];
            int64_t ks[] = {1, 1 + (int64_t)(rng_next() % (uint64_t)nb), (nb + 1) / 2, nb};
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
                int64_t nq = 1 + (int64_t)(rng_next() % 24);
                float *q = rand_rows(nq, dim), *b = rand_rows(nb, dim);
                int64_t r = run_checked(q, nq, b, nb, dim, ks[c]);
                if (dim >= 5) {
                    rescans += r;
                    runs += nq;
                }
                free(q);
                free(b);
            }
        }
    /* Generic data in 5+ dimensions has no near ties: the FAISS candidates
     * settle almost every query by themselves (a rescan is still correct,
     * just slower, so this only guards against the fast path never being
     * taken). */
    if (have_faiss())
        ck_assert_msg(rescans * 20 < runs, "%lld rescans in %lld queries", (long long)rescans,
                      (long long)runs);
    else
        ck_assert_int_eq(rescans, 0);
}
END_TEST

/* The base itself as the queries: each row is its own nearest neighbour
 * (sim 1; random rows have no duplicates). */
START_TEST(test_self_query)
{
    g_rng = 2;
    int64_t nb = 200, dim = 32, k = 5;
    float *b = rand_rows(nb, dim);
    int64_t *idx = malloc((size_t)(nb * k) * sizeof *idx);
    float *sim = malloc((size_t)(nb * k) * sizeof *sim);
    ck_assert(idx && sim);
    ck_assert_int_eq(knn_search(b, nb, b, nb, dim, k, idx, sim, NULL), DL_OK);
    for (int64_t i = 0; i < nb; i++) {
        ck_assert_int_eq(idx[i * k], i);
        ck_assert_float_eq_tol(sim[i * k], 1.0f, 1e-6f);
    }
    run_checked(b, nb, b, nb, dim, nb); /* k == n_base: a full ranking */
    free(b);
    free(idx);
    free(sim);
}
END_TEST

/* ---- ties ------------------------------------------------------------------- */

/* Hand-derived: base {e1, e2, e1, 0, -e1, 2 e1, e2 / 4} against e1 gives
 * sims {1, 0, 1, 0, -1, 1, 0}: rows 0 2 5, then 1 3 6, then 4. */
START_TEST(test_ties_hand)
{
    static const float base[7][2] = {{1, 0}, {0, 1}, {1, 0}, {0, 0}, {-1, 0}, {2, 0}, {0, 0.25f}};
    static const float e1[2] = {1, 0}, zero[2] = {0, 0};
    static const int64_t want[7] = {0, 2, 5, 1, 3, 6, 4};
    static const float want_sim[7] = {1, 1, 1, 0, 0, 0, -1};
    for (int64_t k = 1; k <= 7; k++) {
        int64_t idx[7];
        float sim[7];
        ck_assert_int_eq(knn_search(e1, 1, &base[0][0], 7, 2, k, idx, sim, NULL), DL_OK);
        for (int64_t r = 0; r < k; r++) {
            ck_assert_int_eq(idx[r], want[r]);
            ck_assert_float_eq(sim[r], want_sim[r]);
        }
        /* A zero query ties with everything at 0: rows in index order. */
        ck_assert_int_eq(knn_search(zero, 1, &base[0][0], 7, 2, k, idx, sim, NULL), DL_OK);
        for (int64_t r = 0; r < k; r++) {
            ck_assert_int_eq(idx[r], r);
            ck_assert_float_eq(sim[r], 0.0f);
        }
    }
}
END_TEST

/* G prototypes, each copied into 25 scattered rows (some scaled by powers
 * of two, some replaced by zero rows): tie groups wider than the FAISS
 * candidate list, at every k. */
START_TEST(test_ties_duplicates)
{
    g_rng = 3;
    enum { G = 6, COPIES = 25, NB = G * COPIES, DIM = 24, NQ = 12 };
    float *proto = rand_rows(G, DIM), *q = rand_rows(NQ, DIM);
    float *b = malloc((size_t)NB * DIM * sizeof *b);
    ck_assert_ptr_nonnull(b);
    static const float scale[4] = {1.0f, 2.0f, 0.5f, 0.0f};
    for (int64_t j = 0; j < NB; j++) {
        int64_t g = (int64_t)(rng_next() % G);
        float s = scale[rng_next() % 4];
        for (int64_t t = 0; t < DIM; t++)
            b[j * DIM + t] = s * proto[g * DIM + t];
    }
    /* Two queries are copies of prototypes (sim exactly 1 with a group). */
    memcpy(q, proto, DIM * sizeof *q);
    memcpy(q + DIM, proto + 3 * DIM, DIM * sizeof *q);
    int64_t rescans = 0;
    for (int64_t k = 1; k <= NB; k += (k < 40 ? 1 : 17))
        rescans += run_checked(q, NQ, b, NB, DIM, k);
    rescans += run_checked(q, NQ, b, NB, DIM, NB);
    if (have_faiss())
        ck_assert_msg(rescans > 0, "the tie rescan path was never taken");
    free(proto);
    free(q);
    free(b);
}
END_TEST

/* Near ties: rows p + 1e-3 * noise around one prototype, queries p and
 * its neighbours.  Their exact sims (~1 - 5e-7) differ by 1e-8 to 1e-7,
 * far above the oracle's tie threshold but within FAISS's float rounding,
 * so FAISS's own order among them is partly noise: only the exact
 * recomputation with the rounding bound (tol) and the rescan find the true
 * top k.  (Without tol, knn.c fails this test.) */
START_TEST(test_near_ties)
{
    g_rng = 7;
    enum { NB = 60, DIM = 32, NQ = 6 };
    float *p = rand_rows(1, DIM), *b = rand_rows(NB, DIM), *q = rand_rows(NQ, DIM);
    for (int64_t j = 0; j < NB; j++)
        for (int64_t t = 0; t < DIM; t++)
            b[j * DIM + t] = p[t] + 1e-3f * b[j * DIM + t];
    for (int64_t i = 0; i < NQ; i++)
        for (int64_t t = 0; t < DIM; t++)
            q[i * DIM + t] = p[t] + (i == 0 ? 0.0f : 1e-3f * q[i * DIM + t]);
    int64_t rescans = 0;
    for (int64_t k = 1; k <= 12; k++)
        rescans += run_checked(q, NQ, b, NB, DIM, k);
    if (have_faiss())
        ck_assert_msg(rescans > 0, "near ties never rescanned");
    free(p);
    free(b);
    free(q);
}
END_TEST

/* One-hot rows in 8 dimensions: sims are exactly 0 or 1. */
START_TEST(test_ties_onehot)
{
    enum { NB = 40, DIM = 8 };
    float b[NB * DIM] = {0}, q[DIM * DIM] = {0};
    for (int64_t j = 0; j < NB; j++)
        b[j * DIM + (j * 5) % DIM] = (float)(1 + j % 3);
    for (int64_t i = 0; i < DIM; i++)
        q[i * DIM + i] = 1;
    for (int64_t k = 1; k <= NB; k++)
        run_checked(q, DIM, b, NB, DIM, k);
}
END_TEST

/* ---- size ------------------------------------------------------------------- */

/* Enough queries, then enough base rows, to cross the FAISS backend's
 * chunks (4 MiB of scratch: ~32k rows at this dim and k). */
START_TEST(test_chunks)
{
    g_rng = 4;
    int64_t dim = 3;
    float *b = rand_rows(70000, dim), *q = rand_rows(70000, dim);
    run_checked(q, 5, b, 70000, dim, 4);
    run_checked(q, 70000, b, 40, dim, 4);
    free(b);
    free(q);
}
END_TEST

/* ---- errors ------------------------------------------------------------------ */

static void expect_usage(const float *q, int64_t nq, const float *b, int64_t nb, int64_t dim,
                         int64_t k, int64_t *idx)
{
    dl_error err = {0};
    ck_assert_int_eq(knn_search(q, nq, b, nb, dim, k, idx, NULL, &err), DL_ERR_USAGE);
    ck_assert_int_eq(err.code, DL_ERR_USAGE);
    ck_assert(err.message[0] != '\0');
    ck_assert_int_eq(knn_search_brute(q, nq, b, nb, dim, k, idx, NULL, NULL), DL_ERR_USAGE);
}

START_TEST(test_bad_args)
{
    float q[4] = {1, 2, 3, 4}, b[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    int64_t idx[4] = {-7, -7, -7, -7};
    expect_usage(q, 1, b, 2, 4, 0, idx);      /* k = 0 */
    expect_usage(q, 1, b, 2, 4, 3, idx);      /* k > n_base */
    expect_usage(q, 1, b, 2, 4, -1, idx);     /* k < 0 */
    expect_usage(q, 1, b, 0, 4, 1, idx);      /* no base */
    expect_usage(q, 1, b, -2, 4, 1, idx);
    expect_usage(q, 1, b, 2, 0, 1, idx);      /* dim 0 */
    expect_usage(q, -1, b, 2, 4, 1, idx);     /* n_query < 0 */
    expect_usage(NULL, 1, b, 2, 4, 1, idx);
    expect_usage(q, 1, NULL, 2, 4, 1, idx);
    expect_usage(q, 1, b, 2, 4, 1, NULL);
    expect_usage(q, 1, b, 2, INT64_MAX / 2, 1, idx);      /* sizes overflow */
    expect_usage(q, INT64_MAX / 2, b, 2, 4, 2, idx);
    expect_usage(q, 1, b, 2, (int64_t)INT32_MAX + 1, 1, idx); /* FAISS's int dim */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(idx[i], -7); /* untouched on error */
    /* No queries is not an error, even without query or output arrays. */
    ck_assert_int_eq(knn_search(NULL, 0, b, 2, 4, 2, NULL, NULL, NULL), DL_OK);
    ck_assert_int_eq(knn_search_brute(NULL, 0, b, 2, 4, 2, NULL, NULL, NULL), DL_OK);
}
END_TEST

static void expect_input(float *q, int64_t nq, float *b, int64_t nb, int64_t dim,
                         const char *field)
{
    int64_t idx[64];
    dl_error err = {0};
    ck_assert_int_eq(knn_search(q, nq, b, nb, dim, 1, idx, NULL, &err), DL_ERR_INPUT);
    ck_assert_str_eq(err.field, field);
    ck_assert(err.message[0] != '\0');
    dl_error_clear(&err);
    ck_assert_int_eq(knn_search_brute(q, nq, b, nb, dim, 1, idx, NULL, &err), DL_ERR_INPUT);
    ck_assert_str_eq(err.field, field);
    ck_assert_int_eq(knn_search(q, nq, b, nb, dim, 1, idx, NULL, NULL), DL_ERR_INPUT);
}

START_TEST(test_non_finite)
{
    g_rng = 5;
    float *q = rand_rows(6, 4), *b = rand_rows(9, 4);
    q[3 * 4 + 2] = NAN;
    expect_input(q, 6, b, 9, 4, "query[3]");
    q[3 * 4 + 2] = INFINITY;
    expect_input(q, 6, b, 9, 4, "query[3]");
    q[3 * 4 + 2] = 0.5f;
    b[7 * 4 + 0] = -INFINITY;
    expect_input(q, 6, b, 9, 4, "base[7]");
    b[7 * 4 + 0] = 0.25f;
    b[8 * 4 + 3] = NAN;
    expect_input(q, 6, b, 9, 4, "base[8]");
    b[8 * 4 + 3] = 1.0f;
    /* Finite extremes are fine: huge and subnormal rows normalise. */
    q[0] = FLT_MAX;
    q[1] = -FLT_MAX;
    b[4] = FLT_TRUE_MIN;
    b[5] = b[6] = b[7] = 0;
    run_checked(q, 6, b, 9, 4, 9);
    free(q);
    free(b);
}
END_TEST

/* Every allocation failure ends in DL_ERR_NOMEM, nothing leaks (LSan under
 * --enable-sanitizers), and once allocations succeed the answer is the
 * unhindered one. */
START_TEST(test_oom)
{
    g_rng = 6;
    enum { NQ = 30, NB = 50, DIM = 16, K = 5 };
    float *q = rand_rows(NQ, DIM), *b = rand_rows(NB, DIM);
    int64_t want[NQ * K], got[NQ * K];
    ck_assert_int_eq(knn_search(q, NQ, b, NB, DIM, K, want, NULL, NULL), DL_OK);
    for (int pass = 0; pass < 2; pass++) {
        int64_t budget = 0;
        for (;; budget++) {
            dl_error err = {0};
            g_oom_budget = budget;
            g_oom_armed = 1;
            dl_status st = pass == 0 ? knn_search(q, NQ, b, NB, DIM, K, got, NULL, &err)
                                     : knn_search_brute(q, NQ, b, NB, DIM, K, got, NULL, &err);
            g_oom_armed = 0;
            if (st == DL_OK)
                break;
            ck_assert_int_eq(st, DL_ERR_NOMEM);
            ck_assert_int_eq(err.code, DL_ERR_NOMEM);
            ck_assert_int_lt(budget, 64);
        }
        ck_assert_int_gt(budget, 0); /* some allocation was made, and failed */
        ck_assert(memcmp(got, want, sizeof want) == 0);
    }
    free(q);
    free(b);
}
END_TEST

START_TEST(test_backend_name)
{
    const char *name = knn_backend_name();
#ifdef HAVE_FAISS
    ck_assert_str_eq(name, "faiss");
#else
    ck_assert_str_eq(name, "brute-force");
#endif
}
END_TEST

static Suite *knn_suite(void)
{
    Suite *s = suite_create("knn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_random_shapes);
    tcase_add_test(tc, test_self_query);
    tcase_add_test(tc, test_ties_hand);
    tcase_add_test(tc, test_ties_duplicates);
    tcase_add_test(tc, test_near_ties);
    tcase_add_test(tc, test_ties_onehot);
    tcase_add_test(tc, test_chunks);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_non_finite);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_backend_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(knn_suite());
}
