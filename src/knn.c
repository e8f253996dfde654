/* knn.c: exact cosine k-nearest neighbours (knn.h), FAISS or brute force.
 *
 * One definition of the answer, shared by both backends so that they agree
 * bit for bit:
 *   sim(q, b) = dot(q, b) / (|q| |b|), computed in double from the caller's
 *   float rows (a product of two floats is exact in double; the sums are
 *   four fixed-order partial sums, knn_dot), 0 when either norm is 0,
 *   clamped to [-1, 1]; neighbours ordered by sim descending, then base
 *   index ascending.
 *
 * Brute force (knn_search_brute, and knn_search --without-faiss): every
 * pair, a bounded heap of the k best per query, queries in blocks of
 * KNN_QBLOCK so that each base row is read once per block.
 *
 * FAISS: an exhaustive IndexFlatIP over float L2-normalised copies proposes
 * kk = min(n_base, k + KNN_EXTRA) candidates per query; their exact sims
 * are recomputed as above and sorted.  FAISS's float score f of a pair is
 * within tol = (dim + 4) * FLT_EPSILON of the exact sim: rounding the
 * copies to float moves it by at most ~FLT_EPSILON, and a float dot
 * product of two unit vectors of length dim is off by at most
 * ~(dim + 1) * FLT_EPSILON / 2 whatever its summation order (SIMD, BLAS,
 * FMA): tol is about twice their sum.  A row FAISS did
 * not return has f <= m, the lowest score it did return, hence exact sim
 * <= m + tol.  So when the k-th best candidate's exact sim is > m + tol,
 * the candidates' top k is the true top k, ties included; otherwise (a tie
 * group or near ties reaching past the list: duplicates, zero vectors) that
 * one query is rescanned exactly by the brute-force code.
 *
 * Memory: besides FAISS's own copy of the normalised base (n_base * dim
 * floats), scratch is O(n_base + KNN_CHUNK_BYTES): the base is added and
 * the queries are normalised and searched a chunk of rows at a time.
 *
 * Threads: FAISS runs each search on its OpenMP pool and, from 20 queries
 * up, calls OpenBLAS's sgemm between its parallel regions (Debian's
 * OpenBLAS has its own pthread pool; the two take turns, they do not
 * nest).  Both default to one thread per core; small searches
 * (KNN_SERIAL_WORK) use one OpenMP thread, set for the calling thread only
 * and restored after.  Callers that run knn_search from several threads at
 * once should lower OMP_NUM_THREADS and OPENBLAS_NUM_THREADS.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knn.h"
#include "knn_int.h"

#ifdef HAVE_FAISS
/* error_c.h declares faiss_get_last_error() without a prototype. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#pragma GCC diagnostic pop
/* FAISS_LIBS links libgomp; omp.h only declares its API. */
#if defined(__has_include)
#if __has_include(<omp.h>)
#include <omp.h>
#define KNN_HAVE_OMP 1
#endif
#endif
#endif
#ifndef KNN_HAVE_OMP
#define KNN_HAVE_OMP 0
#endif

enum {
    KNN_QBLOCK = 8, /* brute force: queries sharing one pass over the base */
    KNN_EXTRA = 8   /* FAISS: candidates asked beyond k to settle boundary ties */
};

/* FAISS: bytes of per-chunk scratch (normalised rows, scores, labels). */
#define KNN_CHUNK_BYTES ((size_t)4 << 20)

/* FAISS: below this many multiply-adds (n_query * n_base * dim, ~1 ms on
 * one core) the search runs on the calling thread alone: waking OpenMP's
 * team costs more than it saves, and on a loaded machine its spinning
 * barriers wait for descheduled threads. */
#define KNN_SERIAL_WORK ((double)(1 << 22))

typedef struct knn_cand {
    double sim;
    int64_t idx;
} knn_cand;

/* ---- the exact similarity ------------------------------------------------- */

/* dot(a, b) over dim floats, in double, in a fixed order (lane i % 4, then
 * (s0 + s1) + (s2 + s3)): both backends call this one function, so they
 * get the same bits; the four lanes break the add latency chain. */
static double knn_dot(const float *a, const float *b, int64_t dim)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2];
        s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < dim; i++)
        s0 += (double)a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* norm[i] = |row i| of x [n, dim]. */
static void knn_norms(const float *x, int64_t n, int64_t dim, double *norm)
{
    for (int64_t i = 0; i < n; i++)
        norm[i] = sqrt(knn_dot(x + i * dim, x + i * dim, dim));
}

/* The cosine similarity of rows q and b with norms qn and bn (see top). */
static double knn_sim(const float *q, double qn, const float *b, double bn, int64_t dim)
{
    if (qn == 0 || bn == 0)
        return 0;
    double s = knn_dot(q, b, dim) / (qn * bn);
    return s > 1 ? 1 : s < -1 ? -1 : s;
}

/* ---- ordering --------------------------------------------------------------- */

/* The answer's total order: higher sim first, then the smaller index. */
static int knn_cand_better(const knn_cand *a, const knn_cand *b)
{
    return a->sim > b->sim || (a->sim == b->sim && a->idx < b->idx);
}

static int knn_cand_cmp(const void *pa, const void *pb)
{
    const knn_cand *a = pa, *b = pb;
    return knn_cand_better(a, b) ? -1 : knn_cand_better(b, a) ? 1 : 0;
}

/* A bounded heap of the best candidates seen, its root the worst of them:
 * every parent is no better than its children. */
static void knn_heap_sift_down(knn_cand *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && knn_cand_better(&h[w], &h[l]))
            w = l;
        if (r < n && knn_cand_better(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        knn_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Offers c to heap h holding *n of at most k candidates. */
static void knn_heap_offer(knn_cand *h, int64_t *n, int64_t k, knn_cand c)
{
    if (*n < k) {
        int64_t i = (*n)++;
        h[i] = c;
        while (i > 0 && knn_cand_better(&h[(i - 1) / 2], &h[i])) {
            knn_cand t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (knn_cand_better(&c, &h[0])) {
        h[0] = c;
        knn_heap_sift_down(h, k, 0);
    }
}

/* The first k of cand, sorted best first, into one output row; out_sim may
 * be NULL. */
static void knn_row_write(const knn_cand *cand, int64_t k, int64_t *out_idx, float *out_sim)
{
    for (int64_t r = 0; r < k; r++) {
        out_idx[r] = cand[r].idx;
        if (out_sim)
            out_sim[r] = (float)cand[r].sim;
    }
}

/* ---- validation ------------------------------------------------------------- */

static dl_status knn_args_check(const float *query, int64_t n_query, const float *base,
                                int64_t n_base, int64_t dim, int64_t k, const int64_t *out_idx,
                                dl_error *err)
{
    if (n_query < 0 || n_base < 1 || dim < 1)
        return dl_error_set(err, DL_ERR_USAGE,
                            "knn: bad sizes (n_query %lld, n_base %lld, dim %lld)",
                            (long long)n_query, (long long)n_base, (long long)dim);
    if (k < 1 || k > n_base)
        return dl_error_set(err, DL_ERR_USAGE, "knn: k = %lld is not in 1..n_base (%lld)",
                            (long long)k, (long long)n_base);
    /* FAISS keeps the dimension in an int; the sizes must also fit memory. */
    uint64_t max_elems = SIZE_MAX / sizeof(double);
    if (dim > INT32_MAX || (uint64_t)n_base > max_elems / (uint64_t)dim ||
        (uint64_t)n_query > max_elems / (uint64_t)dim ||
        (uint64_t)n_query > max_elems / (uint64_t)k)
        return dl_error_set(err, DL_ERR_USAGE,
                            "knn: sizes too large (n_query %lld, n_base %lld, dim %lld, k %lld)",
                            (long long)n_query, (long long)n_base, (long long)dim, (long long)k);
    if (!base || (n_query > 0 && (!query || !out_idx)))
        return dl_error_set(err, DL_ERR_USAGE, "knn: NULL %s",
                            !base ? "base" : !query ? "query" : "out_idx");
    return DL_OK;
}

/* DL_ERR_INPUT, field "<name>[row]", at the first NaN or infinity of x. */
static dl_status knn_rows_check(const float *x, int64_t n, int64_t dim, const char *name,
                                dl_error *err)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++) {
            float v = x[i * dim + j];
            if (isfinite(v))
                continue;
            char field[64];
            snprintf(field, sizeof field, "%s[%lld]", name, (long long)i);
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, field,
                                   "knn: %s row %lld, column %lld is %s", name, (long long)i,
                                   (long long)j, isnan(v) ? "NaN" : "infinite");
        }
    return DL_OK;
}

static dl_status knn_inputs_check(const float *query, int64_t n_query, const float *base,
                                  int64_t n_base, int64_t dim, int64_t k,
                                  const int64_t *out_idx, dl_error *err)
{
    dl_status st = knn_args_check(query, n_query, base, n_base, dim, k, out_idx, err);
    if (st == DL_OK)
        st = knn_rows_check(query, n_query, dim, "query", err);
    if (st == DL_OK)
        st = knn_rows_check(base, n_base, dim, "base", err);
    return st;
}

/* ---- brute force ------------------------------------------------------------ */

/* The k best base rows for nq <= KNN_QBLOCK query rows q [nq, dim] with
 * norms qn [nq]; bn [n_base] are the base norms.  heap: scratch [nq, k].
 * Writes output rows [nq, k], best first. */
static void knn_brute_block(const float *q, const double *qn, int64_t nq, const float *base,
                            const double *bn, int64_t n_base, int64_t dim, int64_t k,
                            knn_cand *heap, int64_t *out_idx, float *out_sim)
{
    int64_t fill[KNN_QBLOCK] = {0};
    for (int64_t j = 0; j < n_base; j++) {
        const float *b = base + j * dim;
        for (int64_t t = 0; t < nq; t++) {
            knn_cand c = {knn_sim(q + t * dim, qn[t], b, bn[j], dim), j};
            knn_heap_offer(heap + t * k, &fill[t], k, c);
        }
    }
    for (int64_t t = 0; t < nq; t++) {
        qsort(heap + t * k, (size_t)k, sizeof *heap, knn_cand_cmp);
        knn_row_write(heap + t * k, k, out_idx + t * k, out_sim ? out_sim + t * k : NULL);
    }
}

dl_status knn_search_brute(const float *query, int64_t n_query, const float *base,
                           int64_t n_base, int64_t dim, int64_t k, int64_t *out_idx,
                           float *out_sim, dl_error *err)
{
    dl_status st = knn_inputs_check(query, n_query, base, n_base, dim, k, out_idx, err);
    if (st != DL_OK || n_query == 0)
        return st;
    double *bn = malloc((size_t)n_base * sizeof *bn);
    knn_cand *heap = malloc((size_t)KNN_QBLOCK * (size_t)k * sizeof *heap);
    if (!bn || !heap) {
        free(bn);
        free(heap);
        return dl_error_set(err, DL_ERR_NOMEM, "knn: out of memory (n_base %lld, k %lld)",
                            (long long)n_base, (long long)k);
    }
    knn_norms(base, n_base, dim, bn);
    for (int64_t q0 = 0; q0 < n_query; q0 += KNN_QBLOCK) {
        int64_t nq = n_query - q0 < KNN_QBLOCK ? n_query - q0 : KNN_QBLOCK;
        double qn[KNN_QBLOCK];
        knn_norms(query + q0 * dim, nq, dim, qn);
        knn_brute_block(query + q0 * dim, qn, nq, base, bn, n_base, dim, k, heap,
                        out_idx + q0 * k, out_sim ? out_sim + q0 * k : NULL);
    }
    free(bn);
    free(heap);
    return DL_OK;
}

/* ---- FAISS ------------------------------------------------------------------ */

#ifdef HAVE_FAISS

/* Scratch of one FAISS search, allocated once per call. */
typedef struct knn_faiss_work {
    int64_t chunk;   /* rows per add/search call */
    int64_t kk;      /* candidates asked of FAISS per query */
    float *rows;     /* [chunk, dim] normalised rows */
    float *score;    /* [chunk, kk] FAISS's inner products */
    int64_t *label;  /* [chunk, kk] FAISS's base rows */
    double *qn;      /* [chunk] query norms */
    double *bn;      /* [n_base] base norms */
    knn_cand *cand;  /* [kk] one query's candidates */
    knn_cand *heap;  /* [k] a rescan's heap */
} knn_faiss_work;

static dl_status knn_faiss_error(dl_error *err, const char *what)
{
    const char *msg = faiss_get_last_error();
    return dl_error_set(err, DL_ERR_INTERNAL, "knn: FAISS %s failed: %s", what,
                        msg ? msg : "(no message)");
}

/* Rows x [n, dim] with norms [n] into dst [n, dim] as float unit vectors;
 * zero rows stay zero. */
static void knn_normalise(const float *x, const double *norm, int64_t n, int64_t dim, float *dst)
{
    for (int64_t i = 0; i < n; i++) {
        double inv = norm[i] > 0 ? 1.0 / norm[i] : 0.0;
        for (int64_t j = 0; j < dim; j++)
            dst[i * dim + j] = (float)(x[i * dim + j] * inv);
    }
}

/* Settles query row q (norm qn) from FAISS's kk candidates label/score [kk]
 * (see the top of the file); writes one output row [k].  Returns 1 when the
 * candidates could not prove the top k and the query was rescanned.
 * Cost: kk exact sims, or n_base of them on a rescan. */
static int knn_faiss_settle(const float *q, double qn, const float *base, int64_t n_base,
                            int64_t dim, int64_t k, const knn_faiss_work *w,
                            const int64_t *label, const float *score, int64_t *out_idx,
                            float *out_sim)
{
    double low = INFINITY, tol = (double)(dim + 4) * FLT_EPSILON;
    int proven = 1;
    for (int64_t r = 0; r < w->kk; r++) {
        /* FAISS pads with -1 only when asked for more rows than it holds,
         * which kk <= n_base rules out: never trust a label unchecked. */
        if (label[r] < 0 || label[r] >= n_base) {
            proven = 0;
            break;
        }
        w->cand[r].idx = label[r];
        w->cand[r].sim = knn_sim(q, qn, base + label[r] * dim, w->bn[label[r]], dim);
        if (score[r] < low)
            low = score[r];
    }
    if (proven) {
        qsort(w->cand, (size_t)w->kk, sizeof *w->cand, knn_cand_cmp);
        proven = w->kk == n_base || w->cand[k - 1].sim > low + tol;
    }
    if (!proven) {
        knn_brute_block(q, &qn, 1, base, w->bn, n_base, dim, k, w->heap, out_idx, out_sim);
        return 1;
    }
    knn_row_write(w->cand, k, out_idx, out_sim);
    return 0;
}

/* The index over the normalised base, added a chunk at a time. */
static dl_status knn_faiss_build(const float *base, int64_t n_base, int64_t dim,
                                 knn_faiss_work *w, FaissIndex **out, dl_error *err)
{
    FaissIndexFlatIP *index = NULL;
    if (faiss_IndexFlatIP_new_with(&index, dim) != 0)
        return knn_faiss_error(err, "IndexFlatIP_new_with");
    for (int64_t b0 = 0; b0 < n_base; b0 += w->chunk) {
        int64_t nb = n_base - b0 < w->chunk ? n_base - b0 : w->chunk;
        knn_normalise(base + b0 * dim, w->bn + b0, nb, dim, w->rows);
        if (faiss_Index_add(index, nb, w->rows) != 0) {
            dl_status st = knn_faiss_error(err, "Index_add");
            faiss_Index_free(index);
            return st;
        }
    }
    *out = index;
    return DL_OK;
}

static dl_status knn_faiss_work_init(knn_faiss_work *w, int64_t n_query, int64_t n_base,
                                     int64_t dim, int64_t k, dl_error *err)
{
    memset(w, 0, sizeof *w);
    w->kk = n_base - k > KNN_EXTRA ? k + KNN_EXTRA : n_base;
    size_t row_bytes = sizeof(float) * (size_t)(dim + w->kk) +
                       sizeof(int64_t) * (size_t)w->kk + sizeof(double);
    int64_t most = n_query > n_base ? n_query : n_base;
    w->chunk = (int64_t)(KNN_CHUNK_BYTES / row_bytes);
    w->chunk = w->chunk < 1 ? 1 : w->chunk > most ? most : w->chunk;
    size_t c = (size_t)w->chunk;
    w->rows = malloc(c * (size_t)dim * sizeof *w->rows);
    w->score = malloc(c * (size_t)w->kk * sizeof *w->score);
    w->label = malloc(c * (size_t)w->kk * sizeof *w->label);
    w->qn = malloc(c * sizeof *w->qn);
    w->bn = malloc((size_t)n_base * sizeof *w->bn);
    w->cand = malloc((size_t)w->kk * sizeof *w->cand);
    w->heap = malloc((size_t)k * sizeof *w->heap);
    if (!w->rows || !w->score || !w->label || !w->qn || !w->bn || !w->cand || !w->heap)
        return dl_error_set(err, DL_ERR_NOMEM, "knn: out of memory (n_base %lld, dim %lld)",
                            (long long)n_base, (long long)dim);
    return DL_OK;
}

static void knn_faiss_work_free(knn_faiss_work *w)
{
    free(w->rows);
    free(w->score);
    free(w->label);
    free(w->qn);
    free(w->bn);
    free(w->cand);
    free(w->heap);
}

/* FAISS's search of nq normalised rows w->rows, on one OpenMP thread when
 * the work is small (KNN_SERIAL_WORK).  Returns FAISS's status. */
static int knn_faiss_search_rows(const FaissIndex *index, int64_t nq, int64_t n_base,
                                 int64_t dim, knn_faiss_work *w)
{
#if KNN_HAVE_OMP
    if ((double)nq * (double)n_base * (double)dim < KNN_SERIAL_WORK) {
        /* nthreads-var is per thread in OpenMP: callers elsewhere keep theirs. */
        int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        int rc = faiss_Index_search(index, nq, w->rows, w->kk, w->score, w->label);
        omp_set_num_threads(saved);
        return rc;
    }
#endif
    return faiss_Index_search(index, nq, w->rows, w->kk, w->score, w->label);
}

/* knn_search over FAISS, arguments already validated, n_query >= 1. */
static dl_status knn_search_faiss(const float *query, int64_t n_query, const float *base,
                                  int64_t n_base, int64_t dim, int64_t k, int64_t *out_idx,
                                  float *out_sim, int64_t *n_rescans, dl_error *err)
{
    knn_faiss_work w;
    FaissIndex *index = NULL;
    int64_t rescans = 0;
    dl_status st = knn_faiss_work_init(&w, n_query, n_base, dim, k, err);
    if (st == DL_OK) {
        knn_norms(base, n_base, dim, w.bn);
        st = knn_faiss_build(base, n_base, dim, &w, &index, err);
    }
    for (int64_t q0 = 0; st == DL_OK && q0 < n_query; q0 += w.chunk) {
        int64_t nq = n_query - q0 < w.chunk ? n_query - q0 : w.chunk;
        const float *q = query + q0 * dim;
        knn_norms(q, nq, dim, w.qn);
        knn_normalise(q, w.qn, nq, dim, w.rows);
        if (knn_faiss_search_rows(index, nq, n_base, dim, &w) != 0) {
            st = knn_faiss_error(err, "Index_search");
            break;
        }
        for (int64_t t = 0; t < nq; t++)
            rescans += knn_faiss_settle(q + t * dim, w.qn[t], base, n_base, dim, k, &w,
                                        w.label + t * w.kk, w.score + t * w.kk,
                                        out_idx + (q0 + t) * k,
                                        out_sim ? out_sim + (q0 + t) * k : NULL);
    }
    if (index)
        faiss_Index_free(index);
    knn_faiss_work_free(&w);
    if (n_rescans)
        *n_rescans = rescans;
    return st;
}

#endif /* HAVE_FAISS */

/* ---- public ----------------------------------------------------------------- */

dl_status knn_search_counted(const float *query, int64_t n_query, const float *base,
                             int64_t n_base, int64_t dim, int64_t k, int64_t *out_idx,
                             float *out_sim, int64_t *n_rescans, dl_error *err)
{
    if (n_rescans)
        *n_rescans = 0;
#ifdef HAVE_FAISS
    dl_status st = knn_inputs_check(query, n_query, base, n_base, dim, k, out_idx, err);
    if (st != DL_OK || n_query == 0)
        return st;
    return knn_search_faiss(query, n_query, base, n_base, dim, k, out_idx, out_sim, n_rescans,
                            err);
#else
    return knn_search_brute(query, n_query, base, n_base, dim, k, out_idx, out_sim, err);
#endif
}

dl_status knn_search(const float *query, int64_t n_query, const float *base, int64_t n_base,
                     int64_t dim, int64_t k, int64_t *out_idx, float *out_sim, dl_error *err)
{
    return knn_search_counted(query, n_query, base, n_base, dim, k, out_idx, out_sim, NULL,
                              err);
}

const char *knn_backend_name(void)
{
#ifdef HAVE_FAISS
    return "faiss";
#else
    return "brute-force";
#endif
}
