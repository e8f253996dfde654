/* sel_gc.c: graph cut (gc, gccg) on dense kernels: the column sums, the
 * symmetry test and the per-pick subset sums.
 *
 * Gains are kept exact and O(1) (sel_fn.c, gain_gc_family):
 *   g_j = T_j - lambda (R_j + C_j) - lambda S[j][j],
 *   T_j = sum_i S[i][j], R_j = sum_{a in A} S[a][j], C_j = sum_{a in A} S[j][a],
 * every sum in double in a fixed order (rows ascending for T, picks in pick
 * order for R and C), so any optimiser sees the same bits as a direct sum.
 *
 * Column sums, one read of the kernel:
 * - a symmetric kernel is found and summed in the same pass: the kernel is
 *   walked by pairs of 64 x 64 tiles (I, J >= I) in lexicographic order;
 *   tile (I, J) is compared with the transpose of (J, I) and each adds its
 *   rows to the columns it covers.  Column c then receives row block r at
 *   pair (min(r, c), max(r, c)): in ascending r, so T has the bits of the
 *   plain row-order sum.  A symmetric kernel has C_j = R_j bit for bit (the
 *   same terms in the same order), so a pick costs one row.
 * - at the first mismatch (or non-finite value) the pass stops and the sums
 *   are formed row-major instead (on a non-symmetric kernel that is at the
 *   first tile).  A non-symmetric kernel keeps C_j PENDING (sel_fn.c): the
 *   picks C_j lacks are gathered from row j, in pick order, when j's gain is
 *   asked for.  Adding column a to every C_x at each pick instead (n
 *   strided reads, prefetched) reads as many elements but one page per
 *   element: measured 1.3-1.9x slower over the whole gc-uniform run on the
 *   shared VM (0.33-0.41 s against 0.21-0.26 s CPU, interleaved runs).
 *
 * Threads: columns (the tiled pass: column blocks, interleaved; the plain
 * pass and a pick's row: contiguous slices) are split between threads; each
 * output double has one writer and the same operation order, so the answer
 * never depends on the thread count.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sel.h"
#include "sel_impl.h"

/* Side of the square tiles of the symmetric pass (a multiple of 8). */
#define GC_TILE 128

/* Below this n the pool is not started (low enough that the tests run the
 * threaded passes). */
#define GC_POOL_MIN_N 256

/* A pick's row (n doubles) goes to the pool only from this n: below it the
 * two barrier waits cost more than the row (10,000 doubles: a few us). */
#define GC_POOL_ADD_MIN_N 65536

/* The row-major passes ask for each row this many floats (1 KB) ahead of
 * the loads: eight rows are read side by side, each crossing a 4 KB page
 * every 1,024 floats, where the hardware prefetcher stops.  Halved the
 * plain pass (0.048-0.063 s to 0.023-0.036 s at n = 10,000); 128 and 384
 * ahead measured alike or slower, 512-1,024 slower. */
#define GC_ROW_AHEAD 256

/* ---- adding rows to column sums -----------------------------------------------
 *
 * out[j] += row_0[j]; out[j] += row_1[j]; ... for nr rows stride apart,
 * j in [0, w): the same double additions in the same order as one row at a
 * time (a few rows per pass only save loads and stores of out); portable,
 * AVX2 and AVX-512 instances, chosen by sel_isa_now().  Returns 1
 * when a value is NaN or Inf (out is then partly updated), else 0. */

static int rows_add_scalar(double *out, const float *rows, int64_t stride, int64_t nr,
                           int64_t w)
{
    int finite = 1;
    for (int64_t r = 0; r < nr; r++) {
        const float *row = rows + r * stride;
        for (int64_t j = 0; j < w; j++) {
            finite &= fabsf(row[j]) <= FLT_MAX; /* false for NaN and Inf */
            out[j] += (double)row[j];
        }
    }
    return !finite;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GC_HAVE_AVX2 1

__attribute__((target("avx2"))) static int rows_add_avx2(double *out, const float *rows,
                                                         int64_t stride, int64_t nr, int64_t w)
{
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    int64_t w8 = w & ~(int64_t)7;
    for (int64_t r0 = 0; r0 < nr; r0 += 8) {
        int64_t r1 = r0 + 8 < nr ? r0 + 8 : nr;
        for (int64_t j = 0; j < w8; j += 8) {
            __m256d lo = _mm256_loadu_pd(out + j), hi = _mm256_loadu_pd(out + j + 4);
            for (int64_t r = r0; r < r1; r++) {
                __m256 v = _mm256_loadu_ps(rows + r * stride + j);
                if (j + GC_ROW_AHEAD < w)
                    __builtin_prefetch(rows + r * stride + j + GC_ROW_AHEAD);
                ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_and_ps(v, absmask), big,
                                                     _CMP_LE_OQ));
                lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
                hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
            }
            _mm256_storeu_pd(out + j, lo);
            _mm256_storeu_pd(out + j + 4, hi);
        }
    }
    int bad = _mm256_movemask_ps(ok) != 0xff;
    if (w8 < w)
        bad |= rows_add_scalar(out + w8, rows + w8, stride, nr, w - w8);
    return bad;
}
#endif

#ifdef GC_HAVE_AVX2
/* rows_add_avx2 with 16 lanes; the same additions in the same order. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) static int
rows_add_avx512(double *out, const float *rows, int64_t stride, int64_t nr, int64_t w)
{
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    __mmask16 ok = 0xffff;
    int64_t w16 = w & ~(int64_t)15;
    for (int64_t r0 = 0; r0 < nr; r0 += 8) {
        int64_t r1 = r0 + 8 < nr ? r0 + 8 : nr;
        for (int64_t j = 0; j < w16; j += 16) {
            __m512d lo = _mm512_loadu_pd(out + j), hi = _mm512_loadu_pd(out + j + 8);
            for (int64_t r = r0; r < r1; r++) {
                __m512 v = _mm512_loadu_ps(rows + r * stride + j);
                if (j + GC_ROW_AHEAD < w)
                    __builtin_prefetch(rows + r * stride + j + GC_ROW_AHEAD);
                /* |v| <= FLT_MAX is false for NaN and Inf */
                ok &= _mm512_cmp_ps_mask(_mm512_abs_ps(v), big, _CMP_LE_OQ);
                lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
                hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
            }
            _mm512_storeu_pd(out + j, lo);
            _mm512_storeu_pd(out + j + 8, hi);
        }
    }
    int bad = ok != 0xffff;
    if (w16 < w)
        bad |= rows_add_avx2(out + w16, rows + w16, stride, nr, w - w16);
    return bad;
}
#endif

static int rows_add(double *out, const float *rows, int64_t stride, int64_t nr, int64_t w)
{
#ifdef GC_HAVE_AVX2
    if (sel_isa_now() >= SEL_ISA_AVX512)
        return rows_add_avx512(out, rows, stride, nr, w);
    if (sel_isa_now() >= SEL_ISA_AVX2)
        return rows_add_avx2(out, rows, stride, nr, w);
#endif
    return rows_add_scalar(out, rows, stride, nr, w);
}

/* ---- the symmetry test of a pair of tiles --------------------------------------- */

/* 1 when S[i][j] == S[j][i] for i in [i0, i1), j in [j0, j1) (float ==, so
 * NaN never matches and -0 matches +0); diag: the tile is on the diagonal
 * (i0 == j0), compare j > i only. */
static int tile_mirrors_scalar(const float *d, int64_t st, int64_t i0, int64_t i1,
                               int64_t j0, int64_t j1, int diag)
{
    int same = 1;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = diag ? i + 1 : j0; j < j1; j++)
            same &= d[i * st + j] == d[j * st + i];
    return same;
}

#ifdef GC_HAVE_AVX2
/* r[q] becomes column q of the 8 x 8 block whose rows were r[0..7]. */
__attribute__((target("avx2"))) static inline void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int q = 0; q < 8; q += 2) {
        t[q] = _mm256_unpacklo_ps(r[q], r[q + 1]);
        t[q + 1] = _mm256_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 8; q += 4) {
        u[q] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
    }
}

/* tile_mirrors_scalar for an off-diagonal pair, 8 x 8 blocks at a time. */
__attribute__((target("avx2"))) static int tile_mirrors_avx2(const float *d, int64_t st,
                                                             int64_t i0, int64_t i1,
                                                             int64_t j0, int64_t j1)
{
    int64_t ie = i0 + ((i1 - i0) & ~(int64_t)7), je = j0 + ((j1 - j0) & ~(int64_t)7);
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (int64_t ib = i0; ib < ie; ib += 8)
        for (int64_t jb = j0; jb < je; jb += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) /* rows jb.. of the mirror, columns ib.. */
                r[q] = _mm256_loadu_ps(d + (jb + q) * st + ib);
            transpose8(r); /* r[q][p] = S[jb + p][ib + q] */
            for (int q = 0; q < 8; q++)
                ok = _mm256_and_ps(ok, _mm256_cmp_ps(r[q], _mm256_loadu_ps(d + (ib + q) * st + jb),
                                                     _CMP_EQ_OQ));
        }
    int same = _mm256_movemask_ps(ok) == 0xff;
    if (same && je < j1)
        same = tile_mirrors_scalar(d, st, i0, ie, je, j1, 0);
    if (same && ie < i1)
        same = tile_mirrors_scalar(d, st, ie, i1, j0, j1, 0);
    return same;
}
#endif

static int tile_mirrors(const float *d, int64_t st, int64_t i0, int64_t i1, int64_t j0,
                        int64_t j1)
{
    if (i0 == j0)
        return tile_mirrors_scalar(d, st, i0, i1, j0, j1, 1);
#ifdef GC_HAVE_AVX2
    if (sel_isa_now() >= SEL_ISA_AVX2)
        return tile_mirrors_avx2(d, st, i0, i1, j0, j1);
#endif
    return tile_mirrors_scalar(d, st, i0, i1, j0, j1, 0);
}

/* ---- the column sums --------------------------------------------------------------- */

typedef struct colsum_job {
    const sel_kernel *k;
    double *out;      /* (n) T */
    int quit;         /* tiled pass: a mismatch or a non-finite value (atomic) */
    int64_t bad_row[64], bad_col[64]; /* row-major pass: first non-finite per thread */
} colsum_job;

/* Asks for the w-float segments at column c0 of rows [r0, r1): a tile's
 * rows are 40 KB apart at n = 10,000, too far for the hardware prefetcher. */
static void tile_prefetch(const float *d, int64_t st, int64_t r0, int64_t r1, int64_t c0,
                          int64_t w)
{
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < w; c += 16) /* one 64-byte line per 16 floats */
            __builtin_prefetch(d + r * st + c0 + c);
}

/* The fused pass (see the file comment); thread tid owns the column blocks
 * b with b % nt == tid.  Stops everyone at the first mismatch. */
static void colsum_tiled(void *arg, int tid, int nt)
{
    colsum_job *jb = arg;
    const float *d = jb->k->data;
    int64_t n = jb->k->rows, st = jb->k->stride, nb = (n + GC_TILE - 1) / GC_TILE;
    for (int64_t bi = 0; bi < nb; bi++) {
        int64_t i0 = bi * GC_TILE, i1 = i0 + GC_TILE < n ? i0 + GC_TILE : n;
        for (int64_t bj = bi; bj < nb; bj++) {
            int own_j = bj % nt == tid, own_i = bi != bj && bi % nt == tid;
            if (!own_j && !own_i)
                continue;
            if (__atomic_load_n(&jb->quit, __ATOMIC_RELAXED))
                return;
            int64_t j0 = bj * GC_TILE, j1 = j0 + GC_TILE < n ? j0 + GC_TILE : n;
            if (j1 < n) { /* the next pair's two tiles, while this one is worked */
                int64_t j2 = j1 + GC_TILE < n ? j1 + GC_TILE : n;
                tile_prefetch(d, st, i0, i1, j1, j2 - j1);
                tile_prefetch(d, st, j1, j2, i0, i1 - i0);
            }
            int fail = 0;
            if (own_j) /* tile (I, J): compare with its mirror, add to columns J */
                fail = !tile_mirrors(d, st, i0, i1, j0, j1) ||
                       rows_add(jb->out + j0, d + i0 * st + j0, st, i1 - i0, j1 - j0);
            if (!fail && own_i) /* its mirror (J, I): add to columns I */
                fail = rows_add(jb->out + i0, d + j0 * st + i0, st, j1 - j0, i1 - i0);
            if (fail) {
                __atomic_store_n(&jb->quit, 1, __ATOMIC_RELAXED);
                return;
            }
        }
    }
}

/* The plain pass: every row in order over this thread's column slice,
 * eight rows per sweep of out. */
static void colsum_rows(void *arg, int tid, int nt)
{
    colsum_job *jb = arg;
    const float *d = jb->k->data;
    int64_t n = jb->k->rows, st = jb->k->stride, lo, hi;
    sel_pool_slice(jb->k->cols, tid, nt, &lo, &hi);
    jb->bad_row[tid] = -1;
    for (int64_t i = 0; i < n && lo < hi; i += 8) {
        int64_t nr = i + 8 < n ? 8 : n - i;
        if (!rows_add(jb->out + lo, d + i * st + lo, st, nr, hi - lo))
            continue;
        for (int64_t r = i; r < i + nr; r++) /* the first bad value, row-major */
            for (int64_t j = lo; j < hi; j++)
                if (!isfinite(d[r * st + j])) {
                    jb->bad_row[tid] = r;
                    jb->bad_col[tid] = j;
                    return;
                }
    }
}

dl_status sel_gc_init(sel_fn *f, dl_error *err)
{
    const sel_kernel *k = f->p.kernel;
    int64_t n = f->n;
    if (f->threads > 1 && !f->pool && n >= GC_POOL_MIN_N)
        f->pool = sel_pool_new(f->threads > 64 ? 64 : f->threads); /* NULL: one thread */
    colsum_job jb;
    memset(&jb, 0, sizeof jb);
    jb.k = k;
    jb.out = f->colsum;
    memset(f->colsum, 0, (size_t)n * sizeof *f->colsum);
    sel_pool_run(f->pool, colsum_tiled, &jb);
    f->gc_mode = SEL_GC_SYMMETRIC;
    if (jb.quit) {
        f->gc_mode = SEL_GC_PENDING;
        memset(f->colsum, 0, (size_t)n * sizeof *f->colsum);
        sel_pool_run(f->pool, colsum_rows, &jb);
        dl_status st = sel_first_nonfinite(jb.bad_row, jb.bad_col, sel_pool_threads(f->pool),
                                           err);
        if (st != DL_OK)
            return st;
    }
    for (int64_t j = 0; j < n; j++) /* a float product, as the reference */
        f->diag[j] = (double)(f->lambda * k->data[j * k->stride + j]);
    return DL_OK;
}

/* ---- a pick ------------------------------------------------------------------------- */

typedef struct add_job {
    sel_fn *f;
    int64_t a;
} add_job;

/* R += row a (gccg: float products lambda * S). */
static void gc_add_slice(void *arg, int tid, int nt)
{
    add_job *jb = arg;
    sel_fn *f = jb->f;
    const sel_kernel *k = f->p.kernel;
    int64_t lo, hi;
    sel_pool_slice(f->n, tid, nt, &lo, &hi);
    const float *row = k->data + jb->a * k->stride;
    double *rp = f->rowpick;
    float lam = f->lambda;
    int scaled = f->p.fn == SEL_FN_GCCG;
    if (scaled)
        for (int64_t x = lo; x < hi; x++)
            rp[x] += (double)(lam * row[x]);
    else
        for (int64_t x = lo; x < hi; x++)
            rp[x] += (double)row[x];
}

void sel_gc_add(sel_fn *f, int64_t a)
{
    add_job jb = {f, a};
    sel_pool_run(f->n >= GC_POOL_ADD_MIN_N ? f->pool : NULL, gc_add_slice, &jb);
}
