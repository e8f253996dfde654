/* sel_fast.c: incremental marginal gains for fl, flmi and flcg.
 *
 * The gain of candidate j is a column sum, g_j = sum_i t(S[i][j], m_i), but
 * the kernel is row-major and may not be copied.  So gains are kept in a
 * table and moved row by row: a pick raises the memo m_i of some rows; for
 * each such row the table gets g_j -= t(S[i][j], m_old) and
 * g_j += t(S[i][j], m_new), reading row i in its own order.  Every kernel
 * byte is read once at the start; afterwards only rows whose memo rises are
 * read again, and for most kernels that is a small and shrinking set.
 *
 * Exactness: t() is the reference's float32 term and the table is double,
 * each term added or subtracted on its own.  A double sum of float32 terms
 * is exact while the terms' bits fit in 53 bits (values of a few orders of
 * magnitude and n up to millions), and then g_j equals the reference's
 * column sum bit for bit whatever the order.  tests/check_sel.c compares the
 * table with the direct column sums after every pick.
 *
 * Threads: the table is split by columns, every thread walks the same
 * changed rows over its own slice, so no two threads write one double and
 * the result does not depend on the thread count.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "sel.h"
#include "sel_impl.h"

/* Row updates ask for this many of the blocks they will read (SEL_BLOCK
 * floats each) ahead of the one being worked; the first half of them are
 * asked for while the previous changed row is worked. */
#ifndef SEL_PREFETCH_BLOCKS
#define SEL_PREFETCH_BLOCKS 16
#endif

static inline float fl_term(float s, float m)
{
    return s > m ? s - m : 0.0f;
}

static inline float flmi_term(float s, float m, float cap)
{
    float hi = s > m ? s : m;
    return (hi < cap ? hi : cap) - (m < cap ? m : cap);
}

/* ---- instruction sets ------------------------------------------------------------
 *
 * The dense kernels here and in sel_gc.c exist as portable C, AVX2 and
 * AVX-512 (F, BW, VL, DQ) instances, built with target attributes so the
 * file compiles for baseline x86-64.  Every instance does the same float32
 * and double operations per element in the same order, so they give the
 * same bits (tests/check_sel_prop.c runs each one); the choice only changes
 * speed.  The best the CPU has is used unless sel_isa_set caps it. */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SEL_HAVE_AVX2 1
#define SEL_HAVE_AVX512 1
#define SEL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#endif

static int isa_active = -1; /* resolved sel_isa, or -1 (atomic) */

static int isa_cpu_best(void)
{
#ifdef SEL_HAVE_AVX2
    /* libgcc's checks include the OS's saving of the vector state (XCR0) */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return SEL_ISA_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return SEL_ISA_AVX2;
#endif
    return SEL_ISA_SCALAR;
}

sel_isa sel_isa_set(sel_isa want)
{
    int best = isa_cpu_best();
    int isa = want == SEL_ISA_AUTO || (int)want > best ? best : (int)want;
    isa = isa < SEL_ISA_SCALAR ? SEL_ISA_SCALAR : isa;
    __atomic_store_n(&isa_active, isa, __ATOMIC_RELAXED);
    return (sel_isa)isa;
}

sel_isa sel_isa_now(void)
{
    /* pool threads ask too: relaxed atomics (every writer stores the same value) */
    int c = __atomic_load_n(&isa_active, __ATOMIC_RELAXED);
    if (c < 0) {
        c = isa_cpu_best();
        __atomic_store_n(&isa_active, c, __ATOMIC_RELAXED);
    }
    return (sel_isa)c;
}

/* ---- the row kernels ----------------------------------------------------------
 *
 * g[j] += t(row[j], m0) over [lo, hi) (the initial sweep), and the update of
 * a row whose memo rose from mo to mn: g[j] -= t(row[j], mo); g[j] += t(row[j],
 * mn).  The AVX2 and AVX-512 versions do the same float32 operations and the
 * same two double operations per element, so they give the scalar code's
 * bits; they also skip 8 or 16 columns at a time when none is above mo (then
 * both terms are 0), which is most of a row once the memo is high.  flmi: the
 * FLMI term with cap; else the facility-location term (cap unused).
 */

static void row_add_scalar(double *g, const float *row, int64_t lo, int64_t hi,
                           float m0, float cap, int flmi)
{
    if (flmi)
        for (int64_t j = lo; j < hi; j++)
            g[j] += flmi_term(row[j], m0, cap);
    else
        for (int64_t j = lo; j < hi; j++)
            g[j] += fl_term(row[j], m0);
}

static void row_update_scalar(double *g, const float *row, int64_t lo, int64_t hi,
                              float mo, float mn, float cap, int flmi, int32_t *touched,
                              int32_t step)
{
    if (flmi) {
        for (int64_t j = lo; j < hi; j++) {
            float s = row[j];
            if (s > mo) {
                g[j] -= flmi_term(s, mo, cap);
                g[j] += flmi_term(s, mn, cap);
                touched[j] = step;
            }
        }
    } else {
        for (int64_t j = lo; j < hi; j++) {
            float s = row[j];
            if (s > mo) {
                g[j] -= fl_term(s, mo);
                g[j] += fl_term(s, mn);
                touched[j] = step;
            }
        }
    }
}

#ifdef SEL_HAVE_AVX2

/* t(s, m) for 8 lanes, as fl_term / flmi_term (same operand order in the
 * min/max so equal values resolve the same way). */
__attribute__((target("avx2"))) static inline __m256 term8(__m256 s, __m256 m, __m256 cap,
                                                           int flmi)
{
    if (flmi) {
        __m256 hi = _mm256_max_ps(s, m);
        return _mm256_sub_ps(_mm256_min_ps(hi, cap), _mm256_min_ps(m, cap));
    }
    __m256 gt = _mm256_cmp_ps(s, m, _CMP_GT_OQ);
    return _mm256_and_ps(gt, _mm256_sub_ps(s, m));
}

__attribute__((target("avx2"))) static void row_add_avx2(double *g, const float *row,
                                                         int64_t lo, int64_t hi, float m0,
                                                         float cap, int flmi)
{
    __m256 vm = _mm256_set1_ps(m0), vc = _mm256_set1_ps(cap);
    int64_t j = lo;
    for (; j + 8 <= hi; j += 8) {
        __m256 t = term8(_mm256_loadu_ps(row + j), vm, vc, flmi);
        __m256d t0 = _mm256_cvtps_pd(_mm256_castps256_ps128(t));
        __m256d t1 = _mm256_cvtps_pd(_mm256_extractf128_ps(t, 1));
        _mm256_storeu_pd(g + j, _mm256_add_pd(_mm256_loadu_pd(g + j), t0));
        _mm256_storeu_pd(g + j + 4, _mm256_add_pd(_mm256_loadu_pd(g + j + 4), t1));
    }
    row_add_scalar(g, row, j, hi, m0, cap, flmi);
}

__attribute__((target("avx2"))) static void row_update_avx2(double *g, const float *row,
                                                            int64_t lo, int64_t hi, float mo,
                                                            float mn, float cap, int flmi,
                                                            int32_t *touched, int32_t step)
{
    __m256 vo = _mm256_set1_ps(mo), vn = _mm256_set1_ps(mn), vc = _mm256_set1_ps(cap);
    int64_t j = lo;
    for (; j + 8 <= hi; j += 8) {
        __m256 s = _mm256_loadu_ps(row + j);
        __m256 above = _mm256_cmp_ps(s, vo, _CMP_GT_OQ);
        if (_mm256_testz_ps(above, above))
            continue; /* every s <= mo <= mn: both terms are 0 */
        _mm256_maskstore_epi32((int *)(touched + j), _mm256_castps_si256(above),
                               _mm256_set1_epi32(step));
        __m256 to = term8(s, vo, vc, flmi), tn = term8(s, vn, vc, flmi);
        __m256d o0 = _mm256_cvtps_pd(_mm256_castps256_ps128(to));
        __m256d o1 = _mm256_cvtps_pd(_mm256_extractf128_ps(to, 1));
        __m256d n0 = _mm256_cvtps_pd(_mm256_castps256_ps128(tn));
        __m256d n1 = _mm256_cvtps_pd(_mm256_extractf128_ps(tn, 1));
        __m256d g0 = _mm256_sub_pd(_mm256_loadu_pd(g + j), o0);
        __m256d g1 = _mm256_sub_pd(_mm256_loadu_pd(g + j + 4), o1);
        _mm256_storeu_pd(g + j, _mm256_add_pd(g0, n0));
        _mm256_storeu_pd(g + j + 4, _mm256_add_pd(g1, n1));
    }
    row_update_scalar(g, row, j, hi, mo, mn, cap, flmi, touched, step);
}

#endif

/* Block maxima of row[lo, hi) into bmax[lo / SEL_BLOCK ...] (lo is a block
 * start); returns the first non-finite column, or -1.  A block whose
 * maximum is <= a row's old memo holds no column a memo rise can change, so
 * updates skip it without reading it. */
static int64_t row_blocks_scalar(const float *row, int64_t lo, int64_t hi, float *bmax)
{
    for (int64_t b0 = lo; b0 < hi; b0 += SEL_BLOCK) {
        int64_t b1 = b0 + SEL_BLOCK < hi ? b0 + SEL_BLOCK : hi;
        float mx = -INFINITY;
        int finite = 1;
        for (int64_t j = b0; j < b1; j++) {
            float v = row[j];
            finite &= fabsf(v) <= FLT_MAX; /* false for NaN and Inf */
            mx = v > mx ? v : mx;
        }
        if (!finite) {
            for (int64_t j = b0; j < b1; j++)
                if (!isfinite(row[j]))
                    return j;
        }
        bmax[b0 / SEL_BLOCK] = mx;
    }
    return -1;
}

/* The prefetch cursor of a row update from memo mo: moves pb (a block
 * start) to the next block of row[pb, hi) whose maximum says the update will
 * read it, asks the memory for that block when `ask`, and returns the start
 * of the block after it.  Counting only the blocks to be read keeps the
 * distance ahead when the maxima skip most of a row (a fixed distance in
 * columns had shrunk to nothing there). */
static inline int64_t cursor_next(const float *row, const float *bmax, int64_t pb, int64_t hi,
                                  float mo, int ask)
{
    while (pb < hi && bmax[pb / SEL_BLOCK] <= mo)
        pb += SEL_BLOCK;
    if (pb >= hi)
        return hi;
    if (ask)
        for (int q = 0; q < SEL_BLOCK; q += 16) /* a 64-byte line per 16 floats */
            __builtin_prefetch(row + pb + q);
    return pb + SEL_BLOCK;
}

/* The cursor for an update of row[lo, hi) starts SEL_PREFETCH_BLOCKS blocks
 * to be read ahead; row_prefetch has asked for the first half. */
static inline int64_t cursor_start(const float *row, const float *bmax, int64_t lo, int64_t hi,
                                   float mo)
{
    int64_t pb = lo;
    for (int q = 0; q < SEL_PREFETCH_BLOCKS; q++)
        pb = cursor_next(row, bmax, pb, hi, mo, q >= SEL_PREFETCH_BLOCKS / 2);
    return pb;
}

#ifdef SEL_HAVE_AVX512
/* The AVX-512 instances: 16 lanes, masks instead of blends. */

/* t(s, m) for 16 lanes, as term8 (fl: +0 where s <= m, as the scalar code). */
SEL_AVX512 static inline __attribute__((always_inline)) __m512 term16(__m512 s, __m512 m,
                                                                      __m512 cap, int flmi)
{
    if (flmi) {
        __m512 hi = _mm512_max_ps(s, m);
        return _mm512_sub_ps(_mm512_min_ps(hi, cap), _mm512_min_ps(m, cap));
    }
    return _mm512_maskz_sub_ps(_mm512_cmp_ps_mask(s, m, _CMP_GT_OQ), s, m);
}

SEL_AVX512 static inline __m512d lo8(__m512 t)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(t));
}

SEL_AVX512 static inline __m512d hi8(__m512 t)
{
    return _mm512_cvtps_pd(_mm512_extractf32x8_ps(t, 1));
}

SEL_AVX512 static void row_add_avx512(double *g, const float *row, int64_t lo, int64_t hi,
                                      float m0, float cap, int flmi)
{
    __m512 vm = _mm512_set1_ps(m0), vc = _mm512_set1_ps(cap);
    int64_t j = lo;
    for (; j + 16 <= hi; j += 16) {
        __m512 t = term16(_mm512_loadu_ps(row + j), vm, vc, flmi);
        _mm512_storeu_pd(g + j, _mm512_add_pd(_mm512_loadu_pd(g + j), lo8(t)));
        _mm512_storeu_pd(g + j + 8, _mm512_add_pd(_mm512_loadu_pd(g + j + 8), hi8(t)));
    }
    row_add_scalar(g, row, j, hi, m0, cap, flmi);
}

/* g[0, 16) -= t(s, mo), then += t(s, mn), for the 16 lanes of s; `above`
 * (s > mo) marks touched[].  Lanes not above have both terms +0, which
 * leaves g's bits as they are (g is never -0: it starts at +0 and x - x is
 * +0), so they need no mask, as in the AVX2 instance. */
SEL_AVX512 static inline __attribute__((always_inline)) void
update16(double *g, int32_t *touched, __m512 s, __mmask16 above, __m512 vo, __m512 vn,
         __m512 vc, __m512i vstep, int flmi)
{
    _mm512_mask_storeu_epi32(touched, above, vstep);
    __m512 to = term16(s, vo, vc, flmi), tn = term16(s, vn, vc, flmi);
    __m512d g0 = _mm512_sub_pd(_mm512_loadu_pd(g), lo8(to));
    __m512d g1 = _mm512_sub_pd(_mm512_loadu_pd(g + 8), hi8(to));
    _mm512_storeu_pd(g, _mm512_add_pd(g0, lo8(tn)));
    _mm512_storeu_pd(g + 8, _mm512_add_pd(g1, hi8(tn)));
}

/* row_update_blocks for AVX-512: whole blocks 16 lanes at a time, a
 * ragged last block by the scalar code.  Inlined twice with flmi a
 * constant, so the term's branch leaves the loop. */
SEL_AVX512 static inline __attribute__((always_inline)) void
row_update_avx512_body(double *g, const float *row, const float *bmax, int64_t lo, int64_t hi,
                       float mo, float mn, float cap, const int flmi, int32_t *touched,
                       int32_t step)
{
    __m512 vo = _mm512_set1_ps(mo), vn = _mm512_set1_ps(mn), vc = _mm512_set1_ps(cap);
    __m512i vstep = _mm512_set1_epi32(step);
    int64_t pb = cursor_start(row, bmax, lo, hi, mo);
    for (int64_t b0 = lo; b0 < hi; b0 += SEL_BLOCK) {
        if (bmax[b0 / SEL_BLOCK] <= mo)
            continue; /* nothing in the block is above the old memo */
        pb = cursor_next(row, bmax, pb, hi, mo, 1);
        if (b0 + SEL_BLOCK > hi) {
            row_update_scalar(g, row, b0, hi, mo, mn, cap, flmi, touched, step);
            break;
        }
        for (int64_t j = b0; j < b0 + SEL_BLOCK; j += 16) {
            __m512 s = _mm512_loadu_ps(row + j);
            __mmask16 above = _mm512_cmp_ps_mask(s, vo, _CMP_GT_OQ);
            if (above) /* else every s <= mo <= mn: both terms are 0 */
                update16(g + j, touched + j, s, above, vo, vn, vc, vstep, flmi);
        }
    }
}

SEL_AVX512 static void row_update_avx512(double *g, const float *row, const float *bmax,
                                         int64_t lo, int64_t hi, float mo, float mn,
                                         float cap, int flmi, int32_t *touched, int32_t step)
{
    if (flmi)
        row_update_avx512_body(g, row, bmax, lo, hi, mo, mn, cap, 1, touched, step);
    else
        row_update_avx512_body(g, row, bmax, lo, hi, mo, mn, cap, 0, touched, step);
}

/* 0xffff when |v| <= FLT_MAX in every lane (false for NaN and Inf). */
SEL_AVX512 static inline __mmask16 finite16(__m512 v)
{
    return _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(FLT_MAX), _CMP_LE_OQ);
}

SEL_AVX512 static int64_t row_blocks_avx512(const float *row, int64_t lo, int64_t hi,
                                            float *bmax)
{
    int64_t b0 = lo;
    for (; b0 + SEL_BLOCK <= hi; b0 += SEL_BLOCK) {
        __m512 v0 = _mm512_loadu_ps(row + b0), v1 = _mm512_loadu_ps(row + b0 + 16);
        __m512 v2 = _mm512_loadu_ps(row + b0 + 32), v3 = _mm512_loadu_ps(row + b0 + 48);
        __mmask16 ok = finite16(v0) & finite16(v1) & finite16(v2) & finite16(v3);
        if (ok != 0xffff)
            return row_blocks_scalar(row, b0, b0 + SEL_BLOCK, bmax);
        /* any order of the maxima: bmax is only compared, so -0 or +0 alike */
        __m512 mx = _mm512_max_ps(_mm512_max_ps(v0, v1), _mm512_max_ps(v2, v3));
        bmax[b0 / SEL_BLOCK] = _mm512_reduce_max_ps(mx);
    }
    return b0 < hi ? row_blocks_scalar(row, b0, hi, bmax) : -1;
}

SEL_AVX512 static int row_finite_avx512(const float *row, int64_t n)
{
    __mmask16 ok = 0xffff;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        ok &= finite16(_mm512_loadu_ps(row + j));
    int fine = ok == 0xffff;
    for (; j < n; j++)
        fine &= fabsf(row[j]) <= FLT_MAX;
    return fine;
}
#endif

#ifdef SEL_HAVE_AVX2
__attribute__((target("avx2"))) static int64_t row_blocks_avx2(const float *row, int64_t lo,
                                                              int64_t hi, float *bmax)
{
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    int64_t b0 = lo;
    for (; b0 + SEL_BLOCK <= hi; b0 += SEL_BLOCK) {
        __m256 mx = _mm256_loadu_ps(row + b0), ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (int64_t j = b0; j < b0 + SEL_BLOCK; j += 8) {
            __m256 v = _mm256_loadu_ps(row + j);
            /* |v| <= FLT_MAX is false for NaN and Inf */
            ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_and_ps(v, absmask), big, _CMP_LE_OQ));
            mx = _mm256_max_ps(v, mx);
        }
        if (_mm256_movemask_ps(ok) != 0xff)
            return row_blocks_scalar(row, b0, b0 + SEL_BLOCK, bmax);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        bmax[b0 / SEL_BLOCK] = _mm_cvtss_f32(m4);
    }
    return b0 < hi ? row_blocks_scalar(row, b0, hi, bmax) : -1;
}
#endif

static int64_t row_blocks(const float *row, int64_t lo, int64_t hi, float *bmax)
{
#ifdef SEL_HAVE_AVX512
    if (sel_isa_now() >= SEL_ISA_AVX512)
        return row_blocks_avx512(row, lo, hi, bmax);
#endif
#ifdef SEL_HAVE_AVX2
    if (sel_isa_now() >= SEL_ISA_AVX2)
        return row_blocks_avx2(row, lo, hi, bmax);
#endif
    return row_blocks_scalar(row, lo, hi, bmax);
}

#ifdef SEL_HAVE_AVX2
__attribute__((target("avx2"))) static int row_finite_avx2(const float *row, int64_t n)
{
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_and_ps(_mm256_loadu_ps(row + j), absmask);
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(v, big, _CMP_LE_OQ));
    }
    int fine = _mm256_movemask_ps(ok) == 0xff;
    for (; j < n; j++)
        fine &= fabsf(row[j]) <= FLT_MAX;
    return fine;
}
#endif

int64_t sel_row_nonfinite(const float *row, int64_t n)
{
    int fine = 0; /* 1: no NaN or Inf (vector check); 0: search below */
#ifdef SEL_HAVE_AVX512
    if (sel_isa_now() >= SEL_ISA_AVX512)
        fine = row_finite_avx512(row, n);
    else if (sel_isa_now() >= SEL_ISA_AVX2)
        fine = row_finite_avx2(row, n);
#endif
    if (fine)
        return -1;
    for (int64_t j = 0; j < n; j++)
        if (!isfinite(row[j]))
            return j;
    return -1;
}

static void row_add(double *g, const float *row, int64_t lo, int64_t hi, float m0,
                    float cap, int flmi)
{
#ifdef SEL_HAVE_AVX512
    if (sel_isa_now() >= SEL_ISA_AVX512) {
        row_add_avx512(g, row, lo, hi, m0, cap, flmi);
        return;
    }
    if (sel_isa_now() >= SEL_ISA_AVX2) {
        row_add_avx2(g, row, lo, hi, m0, cap, flmi);
        return;
    }
#endif
    row_add_scalar(g, row, lo, hi, m0, cap, flmi);
}

/* Asks for the first SEL_PREFETCH_BLOCKS / 2 blocks of row[lo, hi) that an
 * update from memo mo reads: the hardware prefetcher stops at every 4 KB
 * page (a row of 10,000 floats spans ten) and knows nothing of the blocks
 * the maxima skip. */
static void row_prefetch(const float *row, const float *bmax, int64_t lo, int64_t hi,
                         float mo)
{
    int64_t pb = lo;
    for (int q = 0; q < SEL_PREFETCH_BLOCKS / 2; q++)
        pb = cursor_next(row, bmax, pb, hi, mo, 1);
}

/* The update of a row whose memo rose from mo to mn over columns [lo, hi)
 * (lo a block start), skipping the blocks whose maximum bmax[b] is <= mo:
 * nothing in them is above the old memo, so no term changes. */
static void row_update_blocks(double *g, const float *row, const float *bmax, int64_t lo,
                              int64_t hi, float mo, float mn, float cap, int flmi,
                              int32_t *touched, int32_t step)
{
    sel_isa isa = sel_isa_now();
    (void)isa; /* portable builds have one instance */
#ifdef SEL_HAVE_AVX512
    if (isa >= SEL_ISA_AVX512) {
        row_update_avx512(g, row, bmax, lo, hi, mo, mn, cap, flmi, touched, step);
        return;
    }
#endif
    int64_t pb = cursor_start(row, bmax, lo, hi, mo);
    for (int64_t b0 = lo; b0 < hi; b0 += SEL_BLOCK) {
        if (bmax[b0 / SEL_BLOCK] <= mo)
            continue;
        pb = cursor_next(row, bmax, pb, hi, mo, 1);
        int64_t b1 = b0 + SEL_BLOCK < hi ? b0 + SEL_BLOCK : hi;
#ifdef SEL_HAVE_AVX2
        if (isa >= SEL_ISA_AVX2) {
            row_update_avx2(g, row, b0, b1, mo, mn, cap, flmi, touched, step);
            continue;
        }
#endif
        row_update_scalar(g, row, b0, b1, mo, mn, cap, flmi, touched, step);
    }
}

/* ---- a tiny fork-join pool ---------------------------------------------- */

/* Sense-reversing barrier that spins a little, then yields.  A dense pick
 * crosses three of them a few microseconds apart; a futex sleep and wake per
 * crossing (pthread barriers) measured about 9,000 context switches and 40%
 * more CPU for fl uniform on two threads. */
typedef struct spin_barrier {
    int n;     /* threads that cross it (atomic: set before the first use) */
    int count; /* arrived in this round (atomic) */
    int sense; /* flips when a round completes (atomic) */
} spin_barrier;

/* Spins of the pause loop before a waiter starts to yield its core. */
#define SEL_SPIN_LIMIT 4000

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* *local is the caller's own sense, flipped every crossing. */
static void barrier_wait(spin_barrier *b, int *local)
{
    int s = !*local;
    *local = s;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) ==
        __atomic_load_n(&b->n, __ATOMIC_ACQUIRE)) {
        /* the reset happens before the release, so early arrivals of the
         * next round count from 0 */
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->sense, s, __ATOMIC_RELEASE);
        return;
    }
    for (long spins = 0; __atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) != s; spins++) {
        if (spins < SEL_SPIN_LIMIT)
            cpu_relax();
        else
            sched_yield(); /* a shared machine: the other thread may wait for a core */
    }
}

/* Every thread crosses the one barrier in the same order: go, the job's own
 * pool_sync calls, done.  job, arg and quit are written before a crossing
 * and read after it. */
#define SEL_POOL_MAX 64

struct sel_pool {
    int nthreads; /* including the caller, <= SEL_POOL_MAX */
    pthread_t *th;
    spin_barrier bar;
    struct {
        int v;
        char pad[60]; /* one cache line each: no false sharing */
    } sense[SEL_POOL_MAX]; /* each thread's own barrier sense, by tid */
    sel_pool_job job;
    void *arg;
    int quit;
};

typedef struct worker_arg {
    struct sel_pool *pool;
    int tid;
} worker_arg;

static void *pool_worker(void *p)
{
    worker_arg *w = p;
    struct sel_pool *pool = w->pool;
    int tid = w->tid;
    int *sense = &pool->sense[tid].v;
    free(w);
    for (;;) {
        barrier_wait(&pool->bar, sense); /* go */
        if (pool->quit)
            break;
        pool->job(pool->arg, tid, pool->nthreads);
        barrier_wait(&pool->bar, sense); /* done */
    }
    return NULL;
}

static void pool_free(struct sel_pool *pool)
{
    if (!pool)
        return;
    pool->quit = 1;
    if (pool->nthreads > 1)
        barrier_wait(&pool->bar, &pool->sense[0].v);
    for (int t = 1; t < pool->nthreads; t++)
        pthread_join(pool->th[t], NULL);
    free(pool->th);
    free(pool);
}

struct sel_pool *sel_pool_new(int nthreads)
{
    struct sel_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    nthreads = nthreads > SEL_POOL_MAX ? SEL_POOL_MAX : nthreads;
    pool->nthreads = nthreads;
    pool->th = calloc((size_t)nthreads, sizeof *pool->th);
    if (!pool->th) {
        free(pool);
        return NULL;
    }
    pool->bar.n = nthreads;
    for (int t = 1; t < nthreads; t++) {
        worker_arg *w = malloc(sizeof *w);
        if (w) {
            w->pool = pool;
            w->tid = t;
        }
        if (!w || pthread_create(&pool->th[t], NULL, pool_worker, w) != 0) {
            free(w);
            /* run with the threads that started: none can cross before
             * the caller's first arrival, which comes after this */
            __atomic_store_n(&pool->bar.n, t, __ATOMIC_RELEASE);
            pool->nthreads = t;
            break;
        }
    }
    return pool;
}

void sel_pool_run(struct sel_pool *pool, sel_pool_job job, void *arg)
{
    if (!pool || pool->nthreads == 1) {
        job(arg, 0, 1);
        return;
    }
    pool->job = job;
    pool->arg = arg;
    barrier_wait(&pool->bar, &pool->sense[0].v); /* go */
    job(arg, 0, pool->nthreads);
    barrier_wait(&pool->bar, &pool->sense[0].v); /* done */
}

/* Inside a job run by sel_pool_run on thread tid: returns when every thread
 * has got here. */
static void pool_sync(struct sel_pool *pool, int nthreads, int tid)
{
    if (pool && nthreads > 1)
        barrier_wait(&pool->bar, &pool->sense[tid].v);
}

int sel_pool_threads(const struct sel_pool *pool)
{
    return pool ? pool->nthreads : 1;
}

void sel_fast_pool_free(sel_fn *f)
{
    pool_free(f->pool);
    f->pool = NULL;
}

void sel_pool_slice(int64_t n, int tid, int nt, int64_t *lo, int64_t *hi)
{
    int64_t per = (n + nt - 1) / nt;
    per = (per + SEL_BLOCK - 1) / SEL_BLOCK * SEL_BLOCK;
    *lo = per * tid < n ? per * tid : n;
    *hi = per * (tid + 1) < n ? per * (tid + 1) : n;
}

/* ---- the initial sweep ------------------------------------------------------ */

typedef struct init_job {
    sel_fn *f;
    int64_t bad_row[64], bad_col[64]; /* first non-finite per thread */
} init_job;

static void init_dense(void *arg, int tid, int nt)
{
    init_job *jb = arg;
    sel_fn *f = jb->f;
    const sel_kernel *k = f->p.kernel;
    int64_t lo, hi;
    sel_pool_slice(f->n, tid, nt, &lo, &hi);
    double *g = f->gain;
    int flmi = f->p.fn == SEL_FN_FLMI;
    jb->bad_row[tid] = -1;
    for (int64_t j = lo; j < hi; j++)
        g[j] = 0;
    for (int64_t i = 0; i < f->m && lo < hi; i++) {
        const float *row = k->data + i * k->stride;
        float m0 = f->memo[i];
        float *bm = f->bmax + i * f->nblocks;
        int64_t bad = row_blocks(row, lo, hi, bm);
        if (bad >= 0) {
            jb->bad_row[tid] = i;
            jb->bad_col[tid] = bad;
            return;
        }
        for (int64_t b = lo / SEL_BLOCK; b * SEL_BLOCK < hi; b++)
            f->bmaxt[b * f->m + i] = bm[b];
        float cap = flmi ? f->cap[i] : 0.0f;
        if (flmi && m0 >= cap)
            continue; /* the row can add nothing */
        row_add(g, row, lo, hi, m0, cap, flmi);
    }
}

static dl_status init_csr(sel_fn *f, dl_error *err)
{
    const sel_kernel *k = f->p.kernel;
    memset(f->gain, 0, (size_t)f->n * sizeof *f->gain);
    for (int64_t i = 0; i < f->m; i++) {
        float m0 = f->memo[i];
        for (int64_t e = k->indptr[i]; e < k->indptr[i + 1]; e++) {
            float s = k->values[e];
            int64_t j = sel_csr_col(k, e);
            if (!isfinite(s))
                return dl_error_set_at(err, DL_ERR_NUMERIC, NULL, 0, 0, -1, "kernel",
                                       "kernel: non-finite value at row %lld, column %lld",
                                       (long long)i, (long long)j);
            f->gain[j] += f->p.fn == SEL_FN_FLMI ? flmi_term(s, m0, f->cap[i])
                                                 : fl_term(s, m0);
        }
    }
    /* The column view: which rows store column j. */
    if (f->m > INT32_MAX)
        return dl_error_set(err, DL_ERR_UNSUPPORTED,
                            "sparse kernels with more than 2^31 rows are not supported");
    if (!f->log_head)
        f->log_head = malloc((size_t)(f->m ? f->m : 1) * sizeof *f->log_head);
    if (!f->log_head)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the memo log");
    for (int64_t i = 0; i < f->m; i++)
        f->log_head[i] = -1; /* no rise yet (a reset empties the log too) */
    sel_csc *c = &f->csc;
    c->colptr = calloc((size_t)f->n + 1, sizeof *c->colptr);
    c->rows = malloc((size_t)(k->nnz ? k->nnz : 1) * sizeof *c->rows);
    if (!c->colptr || !c->rows)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the sparse column view");
    for (int64_t e = 0; e < k->nnz; e++)
        c->colptr[sel_csr_col(k, e) + 1]++;
    for (int64_t j = 0; j < f->n; j++)
        c->colptr[j + 1] += c->colptr[j];
    int64_t *cursor = malloc((size_t)(f->n ? f->n : 1) * sizeof *cursor);
    if (!cursor)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the sparse column view");
    memcpy(cursor, c->colptr, (size_t)f->n * sizeof *cursor);
    for (int64_t i = 0; i < f->m; i++)
        for (int64_t e = k->indptr[i]; e < k->indptr[i + 1]; e++)
            c->rows[cursor[sel_csr_col(k, e)]++] = (int32_t)i;
    free(cursor);
    return DL_OK;
}

void sel_csc_free(sel_csc *c)
{
    free(c->colptr);
    free(c->rows);
    c->colptr = NULL;
    c->rows = NULL;
}

dl_status sel_fast_init(sel_fn *f, dl_error *err)
{
    if (f->p.kernel->kind == SEL_KERNEL_CSR)
        return init_csr(f, err);
    f->nblocks = (f->n + SEL_BLOCK - 1) / SEL_BLOCK;
    if (!f->bmax)
        f->bmax = malloc((size_t)(f->m * f->nblocks + 1) * sizeof *f->bmax);
    if (!f->bmaxt)
        f->bmaxt = malloc((size_t)(f->m * f->nblocks + 1) * sizeof *f->bmaxt);
    if (!f->bmax || !f->bmaxt)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the block maxima");
    if (f->threads > 1 && !f->pool) {
        int nt = f->threads > 64 ? 64 : f->threads;
        f->pool = sel_pool_new(nt); /* NULL: fall back to one thread */
    }
    init_job jb;
    jb.f = f;
    sel_pool_run(f->pool, init_dense, &jb);
    int nt = f->pool ? f->pool->nthreads : 1;
    return sel_first_nonfinite(jb.bad_row, jb.bad_col, nt, err);
}

dl_status sel_first_nonfinite(const int64_t *rows, const int64_t *cols, int nt, dl_error *err)
{
    int64_t br = -1, bc = -1;
    for (int t = 0; t < nt; t++)
        if (rows[t] >= 0 && (br < 0 || rows[t] < br || (rows[t] == br && cols[t] < bc))) {
            br = rows[t];
            bc = cols[t];
        }
    if (br >= 0)
        return dl_error_set_at(err, DL_ERR_NUMERIC, NULL, 0, 0, -1, "kernel",
                               "kernel: non-finite value at row %lld, column %lld",
                               (long long)br, (long long)bc);
    return DL_OK;
}

/* ---- a pick ------------------------------------------------------------------- */

typedef struct add_job {
    sel_fn *f;
    int64_t nchanged;
    int64_t a;                   /* the pick (threaded pick) */
    int64_t rlo[64], cnt[64];    /* threaded pick: thread t's rows start at rlo[t];
                                  * its risen rows are changed[rlo[t] ..] (cnt[t]) */
} add_job;

/* gain[lo, hi) for the rows[0..cnt) whose memo rose from old[] to memo[]
 * (flmi: a row already at its cap changes no gain). */
static void update_rows(sel_fn *f, const int64_t *rows, const float *old, int64_t cnt,
                        int64_t lo, int64_t hi)
{
    const sel_kernel *k = f->p.kernel;
    double *g = f->gain;
    int flmi = f->p.fn == SEL_FN_FLMI;
    for (int64_t c = 0; c < cnt; c++) {
        int64_t i = rows[c];
        const float *row = k->data + i * k->stride;
        const float *bmax = f->bmax + i * f->nblocks;
        float mo = old[c], mn = f->memo[i], cap = flmi ? f->cap[i] : 0.0f;
        if (flmi && !(mo < cap))
            continue;
        if (c + 1 < cnt) /* the next row's first blocks, while this one is worked */
            row_prefetch(k->data + rows[c + 1] * k->stride, f->bmax + rows[c + 1] * f->nblocks,
                         lo, hi, old[c + 1]);
        row_update_blocks(g, row, bmax, lo, hi, mo, mn, cap, flmi, f->touched, f->step);
    }
}

static void update_dense(void *arg, int tid, int nt)
{
    add_job *jb = arg;
    int64_t lo, hi;
    sel_pool_slice(jb->f->n, tid, nt, &lo, &hi);
    update_rows(jb->f, jb->f->changed, jb->f->changed_old, jb->nchanged, lo, hi);
}

/* Rows of [r0, r1) whose memo a pick a raises: changed[r0 ..] and their old
 * memo changed_old[r0 ..], in row order; raises the memo; returns how many.
 * Only the rows whose memo is below the maximum of a's block can rise: a
 * contiguous, branch-free pass over one line of the transposed block maxima
 * finds them, and only they read S[i][a] (a cache and TLB miss each). */
static int64_t scan_rows(sel_fn *f, int64_t a, int64_t r0, int64_t r1)
{
    const sel_kernel *k = f->p.kernel;
    const float *col = k->data + a;
    const float *bt = f->bmaxt + (a / SEL_BLOCK) * f->m;
    int64_t *cand = f->changed + r0, ncand = 0, nc = 0;
    float *old = f->changed_old + r0;
    for (int64_t i = r0; i < r1; i++) {
        cand[ncand] = i;
        ncand += bt[i] > f->memo[i];
    }
    /* one line (and page) per row: ask for rows ahead so the misses overlap */
    enum { AHEAD = 16 };
    for (int64_t c = 0; c < ncand && c < AHEAD; c++)
        __builtin_prefetch(col + cand[c] * k->stride);
    for (int64_t c = 0; c < ncand; c++) {
        int64_t i = cand[c];
        if (c + AHEAD < ncand)
            __builtin_prefetch(col + cand[c + AHEAD] * k->stride);
        float s = col[i * k->stride];
        if (s > f->memo[i]) {
            cand[nc] = i; /* nc <= c: never overwrites a candidate ahead */
            old[nc++] = f->memo[i];
            f->memo[i] = s;
        }
    }
    return nc;
}

/* A whole dense pick on the pool: each thread scans its rows, then (after
 * all have) updates its column slice of gain[] for every thread's risen
 * rows, in row order. */
static void pick_dense(void *arg, int tid, int nt)
{
    add_job *jb = arg;
    sel_fn *f = jb->f;
    int64_t per = (f->m + nt - 1) / nt, r0 = per * tid < f->m ? per * tid : f->m;
    int64_t r1 = r0 + per < f->m ? r0 + per : f->m;
    jb->rlo[tid] = r0;
    jb->cnt[tid] = scan_rows(f, jb->a, r0, r1);
    pool_sync(f->pool, nt, tid);
    int64_t lo, hi;
    sel_pool_slice(f->n, tid, nt, &lo, &hi);
    for (int t = 0; t < nt; t++)
        update_rows(f, f->changed + jb->rlo[t], f->changed_old + jb->rlo[t], jb->cnt[t], lo,
                    hi);
}

static void update_csr(sel_fn *f, int64_t nchanged)
{
    const sel_kernel *k = f->p.kernel;
    int flmi = f->p.fn == SEL_FN_FLMI;
    for (int64_t c = 0; c < nchanged; c++) {
        int64_t i = f->changed[c];
        float mo = f->changed_old[c], mn = f->memo[i];
        float cap = flmi ? f->cap[i] : 0.0f;
        for (int64_t e = k->indptr[i]; e < k->indptr[i + 1]; e++) {
            float s = k->values[e];
            int64_t j = sel_csr_col(k, e);
            if (!(s > mo))
                continue;
            f->touched[j] = f->step;
            if (flmi) {
                f->gain[j] -= flmi_term(s, mo, cap);
                f->gain[j] += flmi_term(s, mn, cap);
            } else {
                f->gain[j] -= fl_term(s, mo);
                f->gain[j] += fl_term(s, mn);
            }
        }
    }
}

/* Records a memo rise of row i (old value mo) at the current step; on
 * out of memory the log is dropped (log_cap < 0) and the lazy settling falls
 * back to the reference's gain now (see sel_fn_gain_at_step). */
static void memo_log(sel_fn *f, int64_t i, float mo)
{
    if (f->log_cap < 0)
        return;
    if (f->log_len == f->log_cap) {
        /* entries are indexed by int32 (rows, chains): stop logging beyond */
        int64_t cap = f->log_cap ? 2 * f->log_cap : 1024;
        cap = cap > INT32_MAX ? INT32_MAX : cap;
        int32_t *r = cap > f->log_cap ? realloc(f->log_row, (size_t)cap * sizeof *r) : NULL;
        if (r)
            f->log_row = r;
        int32_t *st = r ? realloc(f->log_step, (size_t)cap * sizeof *st) : NULL;
        if (st)
            f->log_step = st;
        float *o = st ? realloc(f->log_old, (size_t)cap * sizeof *o) : NULL;
        if (o)
            f->log_old = o;
        int32_t *pv = o && f->log_head ? realloc(f->log_prev, (size_t)cap * sizeof *pv) : NULL;
        if (pv)
            f->log_prev = pv;
        if (!o || (f->log_head && !pv)) {
            f->log_cap = -1;
            return;
        }
        f->log_cap = cap;
    }
    int64_t e = f->log_len++;
    f->log_row[e] = (int32_t)i;
    f->log_step[e] = f->step;
    f->log_old[e] = mo;
    if (f->log_head) {
        f->log_prev[e] = f->log_head[i];
        f->log_head[i] = (int32_t)e;
    }
}

/* Work below this many kernel elements is not worth waking the pool. */
#define SEL_POOL_MIN_WORK 65536

/* A dense pick scans its rows on the pool from this many rows (low, so that
 * the tests' small kernels run the threaded scan too). */
#define SEL_POOL_MIN_ROWS 32

void sel_fast_add(sel_fn *f, int64_t a)
{
    const sel_kernel *k = f->p.kernel;
    int flmi = f->p.fn == SEL_FN_FLMI;
    int64_t nc = 0;
    f->step++;
    if (k->kind == SEL_KERNEL_DENSE && f->pool && f->m >= SEL_POOL_MIN_ROWS) {
        add_job jb;
        jb.f = f;
        jb.a = a;
        sel_pool_run(f->pool, pick_dense, &jb);
        for (int t = 0; t < sel_pool_threads(f->pool); t++) /* log in row order */
            for (int64_t c = jb.rlo[t]; c < jb.rlo[t] + jb.cnt[t]; c++)
                memo_log(f, f->changed[c], f->changed_old[c]);
    } else if (k->kind == SEL_KERNEL_DENSE) {
        nc = scan_rows(f, a, 0, f->m);
        for (int64_t c = 0; c < nc; c++)
            memo_log(f, f->changed[c], f->changed_old[c]);
        add_job jb = {f, nc, a, {0}, {0}};
        if (f->pool && nc * f->n >= SEL_POOL_MIN_WORK)
            sel_pool_run(f->pool, update_dense, &jb);
        else
            update_dense(&jb, 0, 1);
    } else {
        const sel_csc *c = &f->csc;
        for (int64_t e = c->colptr[a]; e < c->colptr[a + 1]; e++) {
            int64_t i = c->rows[e];
            float s = sel_kernel_at(k, i, a);
            if (s > f->memo[i]) {
                if (!flmi || f->memo[i] < f->cap[i]) {
                    f->changed[nc] = i;
                    f->changed_old[nc++] = f->memo[i];
                }
                memo_log(f, i, f->memo[i]);
                f->memo[i] = s;
            }
        }
        update_csr(f, nc);
    }
}
