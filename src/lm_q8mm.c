/* lm_q8mm.c: Q8_0 weights times 8-bit activations in integer arithmetic
 * (contract and layouts in lm_q8mm.h).
 *
 * Four instances of the product, the same bits each (tests/check_lm_q8mm.c
 * checks it): portable C (the reference), AVX2 (maddubs with the sign trick),
 * AVX-VNNI (256-bit vpdpbusd) and AVX-512 VNNI (vpdpbusd).  They differ only
 * in how the exact int32 block sums are formed; the float steps are one
 * multiply (dx * dw) and one fused multiply-add per block and output, in
 * block order, in every instance.
 *
 * Packed tile (16 weight rows, padded with zero rows) of nb blocks: for block
 * b at byte b * 640 of the tile, q[8][16][4] (group g holds values 4g..4g+3
 * of each of the 16 rows, row after row), float32 dw[16] at byte 512, int32
 * corr[16] = 128 * sum(q) at byte 576.  One vpdpbusd of a 64-byte group with
 * 4 broadcast activation bytes adds 4 products to each of the 16 rows' lanes:
 * no horizontal sums anywhere.
 */
#include "config.h"

#include "lm_q8mm.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_quant.h"

/* No contraction: dx * dw must round on its own before the fused step. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define TILE LM_Q8MM_TILE
#define BLK 32                 /* values per block */
#define TB_Q 0                 /* byte offsets inside a (tile, block) record */
#define TB_DW 512
#define TB_CORR 576
#define TB_BYTES 640
#define Q8_0_BYTES 34

struct lm_q8mm_weights {
    int64_t n_rows, n_cols;
    int64_t nb;          /* blocks per row */
    int64_t n_tiles;     /* ceil(n_rows / 16) */
    size_t tile_bytes;   /* nb * TB_BYTES */
    size_t data_bytes;
    unsigned char *data; /* [n_tiles][nb][TB_BYTES], 64-byte aligned */
};

/* ---- packing ------------------------------------------------------------- */

static void pack_row(lm_q8mm_weights *w, const unsigned char *src, int64_t row)
{
    unsigned char *tile = w->data + (size_t)(row / TILE) * w->tile_bytes;
    int lane = (int)(row % TILE);
    for (int64_t b = 0; b < w->nb; b++) {
        const unsigned char *blk = src + (size_t)b * Q8_0_BYTES;
        unsigned char *rec = tile + (size_t)b * TB_BYTES;
        uint16_t h;
        memcpy(&h, blk, 2);
        float dw = lm_quant_f16_to_f32(h);
        int32_t sum = 0;
        for (int i = 0; i < BLK; i++) {
            rec[TB_Q + (i / 4) * 64 + lane * 4 + i % 4] = blk[2 + i];
            sum += (int8_t)blk[2 + i];
        }
        int32_t corr = 128 * sum;
        memcpy(rec + TB_DW + 4 * lane, &dw, 4);
        memcpy(rec + TB_CORR + 4 * lane, &corr, 4);
    }
}

dl_status lm_q8mm_weights_new(const void *q8_0, size_t row_bytes, int64_t n_rows,
                              int64_t n_cols, lm_q8mm_weights **out, dl_error *err)
{
    if (out)
        *out = NULL;
    if (!q8_0 || !out)
        return dl_error_set(err, DL_ERR_USAGE, "lm_q8mm_weights_new: NULL argument");
    if (n_rows < 1 || n_cols < BLK || n_cols % BLK)
        return dl_error_set(err, DL_ERR_USAGE,
                            "lm_q8mm_weights_new: bad shape %lld x %lld (rows >= 1, "
                            "columns a positive multiple of 32)",
                            (long long)n_rows, (long long)n_cols);
    int64_t nb = n_cols / BLK, n_tiles = (n_rows + TILE - 1) / TILE;
    if ((uint64_t)nb > SIZE_MAX / Q8_0_BYTES || row_bytes < (size_t)nb * Q8_0_BYTES)
        return dl_error_set(err, DL_ERR_USAGE,
                            "lm_q8mm_weights_new: row_bytes %zu < %lld for %lld columns",
                            row_bytes, (long long)nb * Q8_0_BYTES, (long long)n_cols);
    uint64_t tile_bytes, bytes;
    if (__builtin_mul_overflow((uint64_t)nb, (uint64_t)TB_BYTES, &tile_bytes) ||
        __builtin_mul_overflow(tile_bytes, (uint64_t)n_tiles, &bytes) || bytes > SIZE_MAX / 2)
        return dl_error_set(err, DL_ERR_NOMEM, "lm_q8mm_weights_new: %lld x %lld too large",
                            (long long)n_rows, (long long)n_cols);
    lm_q8mm_weights *w = calloc(1, sizeof *w);
    /* bytes is a multiple of 640, hence of 64, as aligned_alloc wants. */
    unsigned char *data = w ? aligned_alloc(64, (size_t)bytes) : NULL;
    if (!data) {
        free(w);
        return dl_error_set(err, DL_ERR_NOMEM, "lm_q8mm_weights_new: out of memory (%llu bytes)",
                            (unsigned long long)bytes);
    }
    memset(data, 0, (size_t)bytes); /* padding rows: q = 0, dw = 0, corr = 0 */
    *w = (lm_q8mm_weights){n_rows, n_cols, nb, n_tiles, (size_t)tile_bytes, (size_t)bytes, data};
    for (int64_t r = 0; r < n_rows; r++)
        pack_row(w, (const unsigned char *)q8_0 + (size_t)r * row_bytes, r);
    *out = w;
    return DL_OK;
}

void lm_q8mm_weights_free(lm_q8mm_weights *w)
{
    if (!w)
        return;
    free(w->data);
    free(w);
}

size_t lm_q8mm_weights_bytes(const lm_q8mm_weights *w)
{
    return w ? w->data_bytes + sizeof *w : 0;
}

int64_t lm_q8mm_weights_rows(const lm_q8mm_weights *w)
{
    return w->n_rows;
}

int64_t lm_q8mm_weights_cols(const lm_q8mm_weights *w)
{
    return w->n_cols;
}

/* ---- activations --------------------------------------------------------- */

size_t lm_q8mm_act_row_bytes(int64_t k)
{
    if (k < BLK || k % BLK || (uint64_t)k > SIZE_MAX / 4)
        return 0;
    size_t nb = (size_t)(k / BLK);
    return (LM_Q8MM_ACT_QOFF(nb) + nb * BLK + 63) & ~(size_t)63;
}

/* One block of the reference quantiser (the x86 instances repeat these
 * steps lane by lane): the rounding is exact (truncation, then the exactly
 * computed fraction decides), NaN never reaches the float-to-int conversion
 * (undefined in C), and the clamps also map +-Inf products (id = +Inf for a
 * denormal amax, or Inf * 0 = NaN -> 0) into range. */
static float quantize_block(const float *x, unsigned char *u)
{
    float amax = 0.0f;
    int nan = 0;
    for (int i = 0; i < BLK; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax; /* NaN compares false: ignored here */
        nan |= x[i] != x[i];
    }
    if (amax == 0.0f) {
        memset(u, 128, BLK);
        return nan ? NAN : 0.0f;    /* a NaN input keeps its row NaN */
    }
    float id = 127.0f / amax;
    for (int i = 0; i < BLK; i++) {
        float v = x[i] * id;
        v = v > 127.0f ? 127.0f : v;
        v = v < -127.0f ? -127.0f : v;
        v = v == v ? v : 0.0f;
        int32_t t = (int32_t)v;           /* toward zero, exact here */
        float f = v - (float)t;           /* exact: |f| < 1, same sign as v */
        t += (f >= 0.5f) - (f <= -0.5f);  /* half away from zero */
        u[i] = (unsigned char)(t + 128);
    }
    return nan ? NAN : amax / 127.0f;
}

/* Row r of the quantised activations: nb blocks of x into d[nb] at row and
 * u[nb * 32] at row + LM_Q8MM_ACT_QOFF(nb). */
static void quant_row_generic(const float *x, int64_t nb, unsigned char *row)
{
    unsigned char *u = row + LM_Q8MM_ACT_QOFF(nb);
    for (int64_t b = 0; b < nb; b++) {
        float d = quantize_block(x + b * BLK, u + b * BLK);
        memcpy(row + 4 * b, &d, 4);
    }
}

/* ---- the portable instance (the reference) ------------------------------ */

static inline float act_d(const unsigned char *row, int64_t b)
{
    float d;
    memcpy(&d, row + 4 * b, 4);
    return d;
}

static inline float rec_dw(const unsigned char *rec, int lane)
{
    float d;
    memcpy(&d, rec + TB_DW + 4 * lane, 4);
    return d;
}

static void gemm_generic(const lm_q8mm_weights *w, const unsigned char *act, size_t rb,
                         int64_t m, int64_t c0, int64_t c1, float *y, int64_t ldy)
{
    size_t qoff = LM_Q8MM_ACT_QOFF(w->nb);
    for (int64_t r = 0; r < m; r++) {
        const unsigned char *row = act + (size_t)r * rb;
        for (int64_t c = c0; c < c1; c++) {
            const unsigned char *tile = w->data + (size_t)(c / TILE) * w->tile_bytes;
            int lane = (int)(c % TILE);
            float acc = 0.0f;
            for (int64_t b = 0; b < w->nb; b++) {
                const unsigned char *rec = tile + (size_t)b * TB_BYTES;
                const unsigned char *u = row + qoff + b * BLK;
                int32_t isum = 0;
                for (int i = 0; i < BLK; i++)
                    isum += ((int32_t)u[i] - 128) *
                            (int32_t)(int8_t)rec[TB_Q + (i / 4) * 64 + lane * 4 + i % 4];
                float s = act_d(row, b) * rec_dw(rec, lane);
                acc = fmaf(s, (float)isum, acc);
            }
            y[r * ldy + c] = acc;
        }
    }
}

/* ---- x86-64 instances ---------------------------------------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#define LM_Q8MM_HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>

static inline int32_t load_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Which lanes of a tile whose first column is base fall in [c0, c1). */
static inline void lane_range(int64_t base, int64_t c0, int64_t c1, int *lo, int *hi)
{
    *lo = c0 > base ? (int)(c0 - base) : 0;
    *hi = c1 - base < TILE ? (int)(c1 - base) : TILE;
}

/* AVX-512 VNNI.  A call computes R activation rows (R <= VNNI_R) against NT
 * (1 or 2) adjacent tiles over all k: R x NT int32 block sums and as many
 * float accumulators live in registers (27 of 32 zmm at 6 x 2), the tiles'
 * 64-byte groups are loaded once per block for all R rows.  vpdpbusd takes
 * unsigned activations u = q + 128 times signed weights, so the block sum is
 * sum(u * w) - 128 * sum(w): exact in int32 (|sum| < 2^24). */
#define VNNI_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define VNNI_R 6

static inline __attribute__((always_inline)) VNNI_FN void
vnni_tiles(const lm_q8mm_weights *w, int64_t t, const unsigned char *act, size_t rb, int64_t c0,
           int64_t c1, float *y, int64_t ldy, const int R, const int NT)
{
    const size_t tb = w->tile_bytes, qoff = LM_Q8MM_ACT_QOFF(w->nb);
    const unsigned char *tile = w->data + (size_t)t * tb;
    __m512 acc[VNNI_R][2];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < w->nb; b++) {
        const unsigned char *rec = tile + (size_t)b * TB_BYTES, *ab = act + qoff + b * BLK;
        __m512i s[VNNI_R][2];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            s[r][0] = s[r][1] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m512i wa = _mm512_load_si512((const void *)(rec + TB_Q + g * 64));
            __m512i wb = NT > 1 ? _mm512_load_si512((const void *)(rec + tb + TB_Q + g * 64)) : wa;
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m512i av = _mm512_set1_epi32(load_i32(ab + (size_t)r * rb + g * 4));
                s[r][0] = _mm512_dpbusd_epi32(s[r][0], av, wa);
                if (NT > 1)
                    s[r][1] = _mm512_dpbusd_epi32(s[r][1], av, wb);
            }
        }
#pragma GCC unroll 2
        for (int j = 0; j < NT; j++) {
            const unsigned char *rj = rec + (size_t)j * tb;
            __m512i corr = _mm512_load_si512((const void *)(rj + TB_CORR));
            __m512 dw = _mm512_load_ps((const void *)(rj + TB_DW));
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(s[r][j], corr));
                __m512 sc = _mm512_mul_ps(_mm512_set1_ps(act_d(act + (size_t)r * rb, b)), dw);
                acc[r][j] = _mm512_fmadd_ps(sc, f, acc[r][j]);
            }
        }
    }
#pragma GCC unroll 2
    for (int j = 0; j < NT; j++) {
        int64_t base = (t + j) * TILE;
        int lo, hi;
        lane_range(base, c0, c1, &lo, &hi);
        __mmask16 k = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
            _mm512_mask_storeu_ps(y + r * ldy + base, k, acc[r][j]);
    }
}

/* The activation quantiser with AVX-512: the same operations as
 * quantize_block lane by lane (maxps returns its second operand when the
 * first is NaN, so NaN lanes never enter amax; NaN products are zeroed
 * before the clamps), hence the same bytes. */
static VNNI_FN void quant_row_avx512(const float *x, int64_t nb, unsigned char *row)
{
    unsigned char *u = row + LM_Q8MM_ACT_QOFF(nb);
    const __m512 lim = _mm512_set1_ps(127.0f), half = _mm512_set1_ps(0.5f);
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(128);
    for (int64_t b = 0; b < nb; b++) {
        __m512 x0 = _mm512_loadu_ps(x + b * BLK), x1 = _mm512_loadu_ps(x + b * BLK + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps());
        m = _mm512_max_ps(_mm512_abs_ps(x1), m);
        float amax = _mm512_reduce_max_ps(m), d = 0.0f;
        if (amax == 0.0f) {
            memset(u + b * BLK, 128, BLK);
        } else {
            __m512 id = _mm512_set1_ps(127.0f / amax);
            d = amax / 127.0f;
            for (int h = 0; h < 2; h++) {
                __m512 v = _mm512_mul_ps(h ? x1 : x0, id);
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
                v = _mm512_max_ps(_mm512_min_ps(v, lim), _mm512_sub_ps(_mm512_setzero_ps(), lim));
                __m512i t = _mm512_cvttps_epi32(v);
                __m512 f = _mm512_sub_ps(v, _mm512_cvtepi32_ps(t));
                t = _mm512_mask_add_epi32(t, _mm512_cmp_ps_mask(f, half, _CMP_GE_OQ), t, one);
                t = _mm512_mask_sub_epi32(t, _mm512_cmp_ps_mask(f, _mm512_sub_ps(_mm512_setzero_ps(), half), _CMP_LE_OQ), t, one);
                _mm_storeu_si128((__m128i *)(void *)(u + b * BLK + 16 * h),
                                 _mm512_cvtepi32_epi8(_mm512_add_epi32(t, bias)));
            }
        }
        if (_mm512_cmp_ps_mask(x0, x0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(x1, x1, _CMP_UNORD_Q))
            d = NAN; /* as quantize_block */
        memcpy(row + 4 * b, &d, 4);
    }
}

typedef void (*x86_kernel)(const lm_q8mm_weights *, int64_t, const unsigned char *, size_t,
                           int64_t, int64_t, float *, int64_t);

#define VNNI_INST(R, NT)                                                                  \
    static VNNI_FN void vnni_##R##_##NT(const lm_q8mm_weights *w, int64_t t,              \
                                        const unsigned char *act, size_t rb, int64_t c0,  \
                                        int64_t c1, float *y, int64_t ldy)                \
    {                                                                                     \
        vnni_tiles(w, t, act, rb, c0, c1, y, ldy, R, NT);                                 \
    }
VNNI_INST(1, 1) VNNI_INST(2, 1) VNNI_INST(3, 1) VNNI_INST(4, 1) VNNI_INST(5, 1) VNNI_INST(6, 1)
VNNI_INST(1, 2) VNNI_INST(2, 2) VNNI_INST(3, 2) VNNI_INST(4, 2) VNNI_INST(5, 2) VNNI_INST(6, 2)

static const x86_kernel vnni_table[2][VNNI_R] = {
    {vnni_1_1, vnni_2_1, vnni_3_1, vnni_4_1, vnni_5_1, vnni_6_1},
    {vnni_1_2, vnni_2_2, vnni_3_2, vnni_4_2, vnni_5_2, vnni_6_2},
};

/* Tile pairs outside, row groups inside: a pair's packed panel (nb * 1280
 * bytes) stays in L1/L2 while every activation row group passes over it. */
static void gemm_vnni(const lm_q8mm_weights *w, const unsigned char *act, size_t rb, int64_t m,
                      int64_t c0, int64_t c1, float *y, int64_t ldy)
{
    int64_t t1 = (c1 + TILE - 1) / TILE;
    for (int64_t t = c0 / TILE; t < t1; t += 2) {
        int nt = t1 - t >= 2 ? 2 : 1;
        for (int64_t r0 = 0; r0 < m; r0 += VNNI_R) {
            int R = m - r0 >= VNNI_R ? VNNI_R : (int)(m - r0);
            vnni_table[nt - 1][R - 1](w, t, act + (size_t)r0 * rb, rb, c0, c1, y + r0 * ldy, ldy);
        }
    }
}

/* AVX2.  Half a tile (8 weight rows: bytes 32h..32h+31 of each group) times
 * R <= AVX2_R rows.  maddubs needs an unsigned operand and saturates its
 * int16 pair sums, so it gets |w| (as uint8: 0..128, -128 -> 128 exactly)
 * and the signed activation with w's sign applied, q * sign(w) (|.| <= 127,
 * since the quantiser never writes u = 0): each pair sum is at most
 * 2 * 128 * 127 = 32512 < 32767, never saturated; madd with ones widens the
 * pairs to int32 exactly. */
#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX2_R 4

/* The R rows of output of half a tile (8 columns from t * 16 + h * 8) that
 * fall in [c0, c1). */
static inline __attribute__((always_inline)) AVX2_FN void
store_half(const __m256 *acc, int64_t t, int h, int64_t c0, int64_t c1, float *y, int64_t ldy,
           const int R)
{
    int64_t base = t * TILE + h * 8;
    int lo, hi;
    lane_range(base, c0, c1, &lo, &hi);
    hi = hi > 8 ? 8 : hi;
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        if (lo == 0 && hi == 8) {
            _mm256_storeu_ps(y + r * ldy + base, acc[r]);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[r]);
            for (int i = lo; i < hi; i++)
                y[r * ldy + base + i] = tmp[i];
        }
    }
}

static inline __attribute__((always_inline)) AVX2_FN void
avx2_half(const lm_q8mm_weights *w, int64_t t, int h, const unsigned char *act, size_t rb,
          int64_t c0, int64_t c1, float *y, int64_t ldy, const int R)
{
    const size_t qoff = LM_Q8MM_ACT_QOFF(w->nb);
    const unsigned char *tile = w->data + (size_t)t * w->tile_bytes;
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256 acc[AVX2_R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
        acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < w->nb; b++) {
        const unsigned char *rec = tile + (size_t)b * TB_BYTES, *ab = act + qoff + b * BLK;
        __m256i s[AVX2_R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            s[r] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int g = 0; g < 8; g++) {
            __m256i wv = _mm256_load_si256((const void *)(rec + TB_Q + g * 64 + h * 32));
            __m256i aw = _mm256_abs_epi8(wv);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* u ^ 0x80 is q + 128 - 128 as int8 */
                __m256i av = _mm256_xor_si256(_mm256_set1_epi32(load_i32(ab + (size_t)r * rb + g * 4)),
                                              flip);
                __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, wv));
                s[r] = _mm256_add_epi32(s[r], _mm256_madd_epi16(p, ones));
            }
        }
        __m256 dw = _mm256_load_ps((const void *)(rec + TB_DW + h * 32));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m256 sc = _mm256_mul_ps(_mm256_set1_ps(act_d(act + (size_t)r * rb, b)), dw);
            acc[r] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(s[r]), acc[r]);
        }
    }
    store_half(acc, t, h, c0, c1, y, ldy, R);
}

/* The activation quantiser with AVX2, as quant_row_avx512 (maxps, NaN
 * zeroing, clamps, truncation and the exact fraction test). */
static AVX2_FN void quant_row_avx2(const float *x, int64_t nb, unsigned char *row)
{
    unsigned char *u = row + LM_Q8MM_ACT_QOFF(nb);
    const __m256 lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
    const __m256 half = _mm256_set1_ps(0.5f), nhalf = _mm256_set1_ps(-0.5f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i bias = _mm256_set1_epi32(128), order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < nb; b++) {
        __m256 xv[4], m = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            xv[j] = _mm256_loadu_ps(x + b * BLK + 8 * j);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, xv[j]), m);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4), d = 0.0f;
        if (amax == 0.0f) {
            memset(u + b * BLK, 128, BLK);
        } else {
            __m256 id = _mm256_set1_ps(127.0f / amax);
            __m256i t[4];
            d = amax / 127.0f;
            for (int j = 0; j < 4; j++) {
                __m256 v = _mm256_mul_ps(xv[j], id);
                v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
                v = _mm256_max_ps(_mm256_min_ps(v, lim), nlim);
                t[j] = _mm256_cvttps_epi32(v);
                __m256 f = _mm256_sub_ps(v, _mm256_cvtepi32_ps(t[j]));
                /* compare masks are -1 where true */
                t[j] = _mm256_sub_epi32(t[j], _mm256_castps_si256(_mm256_cmp_ps(f, half, _CMP_GE_OQ)));
                t[j] = _mm256_add_epi32(t[j], _mm256_castps_si256(_mm256_cmp_ps(f, nhalf, _CMP_LE_OQ)));
                t[j] = _mm256_add_epi32(t[j], bias);
            }
            /* values 1..255: the saturating packs are exact; fix the lane order */
            __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(t[0], t[1]),
                                            _mm256_packs_epi32(t[2], t[3]));
            _mm256_storeu_si256((__m256i *)(void *)(u + b * BLK),
                                _mm256_permutevar8x32_epi32(p, order));
        }
        int nan = 0;
        for (int j = 0; j < 4; j++)
            nan |= _mm256_movemask_ps(_mm256_cmp_ps(xv[j], xv[j], _CMP_UNORD_Q));
        if (nan)
            d = NAN; /* as quantize_block */
        memcpy(row + 4 * b, &d, 4);
    }
}

typedef void (*avx2_kernel)(const lm_q8mm_weights *, int64_t, int, const unsigned char *, size_t,
                            int64_t, int64_t, float *, int64_t);

#define AVX2_INST(R)                                                                     \
    static AVX2_FN void avx2_##R(const lm_q8mm_weights *w, int64_t t, int h,             \
                                 const unsigned char *act, size_t rb, int64_t c0,        \
                                 int64_t c1, float *y, int64_t ldy)                      \
    {                                                                                    \
        avx2_half(w, t, h, act, rb, c0, c1, y, ldy, R);                                  \
    }
AVX2_INST(1) AVX2_INST(2) AVX2_INST(3) AVX2_INST(4)

static const avx2_kernel avx2_table[AVX2_R] = {avx2_1, avx2_2, avx2_3, avx2_4};

/* Half tiles of 8 columns (skipping halves wholly outside [c0, c1)), row
 * groups of at most rmax rows, table[R - 1] for R rows. */
static void gemm_halves(const avx2_kernel *table, int rmax, const lm_q8mm_weights *w,
                        const unsigned char *act, size_t rb, int64_t m, int64_t c0, int64_t c1,
                        float *y, int64_t ldy)
{
    for (int64_t hb = c0 / 8; hb * 8 < c1; hb++) {
        for (int64_t r0 = 0; r0 < m; r0 += rmax) {
            int R = m - r0 >= rmax ? rmax : (int)(m - r0);
            table[R - 1](w, hb / 2, (int)(hb % 2), act + (size_t)r0 * rb, rb, c0, c1,
                         y + r0 * ldy, ldy);
        }
    }
}

static void gemm_avx2(const lm_q8mm_weights *w, const unsigned char *act, size_t rb, int64_t m,
                      int64_t c0, int64_t c1, float *y, int64_t ldy)
{
    gemm_halves(avx2_table, AVX2_R, w, act, rb, m, c0, c1, y, ldy);
}

/* AVX-VNNI (the 256-bit VEX form of vpdpbusd, on CPUs that have it without
 * AVX-512: Intel's client cores since Alder Lake).  Half a tile, as the
 * AVX2 instance, with the block sums of the AVX-512 one: sum(u * w) minus
 * the packed 128 * sum(w), exact in int32; then the same float steps. */
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11)
#define LM_Q8MM_HAVE_AVXVNNI 1
#define AVXVNNI_FN __attribute__((target("avx2,fma,avxvnni")))
#define AVXVNNI_R 6

static inline __attribute__((always_inline)) AVXVNNI_FN void
avxvnni_half(const lm_q8mm_weights *w, int64_t t, int h, const unsigned char *act, size_t rb,
             int64_t c0, int64_t c1, float *y, int64_t ldy, const int R)
{
    const size_t qoff = LM_Q8MM_ACT_QOFF(w->nb);
    const unsigned char *tile = w->data + (size_t)t * w->tile_bytes;
    __m256 acc[AVXVNNI_R];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
        acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < w->nb; b++) {
        const unsigned char *rec = tile + (size_t)b * TB_BYTES, *ab = act + qoff + b * BLK;
        __m256i s[AVXVNNI_R];
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
            s[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            __m256i wv = _mm256_load_si256((const void *)(rec + TB_Q + g * 64 + h * 32));
#pragma GCC unroll 6
            for (int r = 0; r < R; r++)
                s[r] = _mm256_dpbusd_avx_epi32(
                    s[r], _mm256_set1_epi32(load_i32(ab + (size_t)r * rb + g * 4)), wv);
        }
        __m256i corr = _mm256_load_si256((const void *)(rec + TB_CORR + h * 32));
        __m256 dw = _mm256_load_ps((const void *)(rec + TB_DW + h * 32));
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(s[r], corr));
            __m256 sc = _mm256_mul_ps(_mm256_set1_ps(act_d(act + (size_t)r * rb, b)), dw);
            acc[r] = _mm256_fmadd_ps(sc, f, acc[r]);
        }
    }
    store_half(acc, t, h, c0, c1, y, ldy, R);
}

#define AVXVNNI_INST(R)                                                                  \
    static AVXVNNI_FN void avxvnni_##R(const lm_q8mm_weights *w, int64_t t, int h,       \
                                       const unsigned char *act, size_t rb, int64_t c0,  \
                                       int64_t c1, float *y, int64_t ldy)                \
    {                                                                                    \
        avxvnni_half(w, t, h, act, rb, c0, c1, y, ldy, R);                               \
    }
AVXVNNI_INST(1) AVXVNNI_INST(2) AVXVNNI_INST(3) AVXVNNI_INST(4) AVXVNNI_INST(5) AVXVNNI_INST(6)

static const avx2_kernel avxvnni_table[AVXVNNI_R] = {avxvnni_1, avxvnni_2, avxvnni_3,
                                                     avxvnni_4, avxvnni_5, avxvnni_6};

static void gemm_avxvnni(const lm_q8mm_weights *w, const unsigned char *act, size_t rb,
                         int64_t m, int64_t c0, int64_t c1, float *y, int64_t ldy)
{
    gemm_halves(avxvnni_table, AVXVNNI_R, w, act, rb, m, c0, c1, y, ldy);
}

/* AVX-VNNI is CPUID leaf 7, sub-leaf 1, EAX bit 4 (the compiler's
 * __builtin_cpu_supports does not know it before GCC 13); the caller has
 * checked AVX2, hence the OS's saving of the ymm state. */
static int cpu_has_avxvnni(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (a < 1) /* the highest sub-leaf of leaf 7 */
        return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 4) & 1;
}
#endif
#endif /* x86-64 */

/* ---- dispatch ------------------------------------------------------------ */

typedef void (*gemm_fn)(const lm_q8mm_weights *, const unsigned char *, size_t, int64_t,
                        int64_t, int64_t, float *, int64_t);

typedef struct instance {
    gemm_fn gemm;
    void (*quant_row)(const float *x, int64_t nb, unsigned char *row);
    lm_q8mm_isa isa;
} instance;

static const instance inst_generic = {gemm_generic, quant_row_generic, LM_Q8MM_ISA_GENERIC};
#ifdef LM_Q8MM_HAVE_X86
static const instance inst_avx2 = {gemm_avx2, quant_row_avx2, LM_Q8MM_ISA_AVX2};
static const instance inst_vnni = {gemm_vnni, quant_row_avx512, LM_Q8MM_ISA_AVX512VNNI};
#ifdef LM_Q8MM_HAVE_AVXVNNI
static const instance inst_avxvnni = {gemm_avxvnni, quant_row_avx2, LM_Q8MM_ISA_AVXVNNI};
#endif
#endif

static const instance *pick_instance(lm_q8mm_isa want)
{
#ifdef LM_Q8MM_HAVE_X86
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int vnni = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    if ((want == LM_Q8MM_ISA_AUTO || want == LM_Q8MM_ISA_AVX512VNNI) && vnni)
        return &inst_vnni;
#ifdef LM_Q8MM_HAVE_AVXVNNI
    /* below AVX-512 VNNI: asked for, or the best of a CPU without it */
    if (want != LM_Q8MM_ISA_GENERIC && want != LM_Q8MM_ISA_AVX2 && avx2 && cpu_has_avxvnni())
        return &inst_avxvnni;
#endif
    if (want != LM_Q8MM_ISA_GENERIC && avx2)
        return &inst_avx2;
#endif
    (void)want;
    return &inst_generic;
}

/* The automatic choice depends only on the CPU: racing threads store the
 * same pointer. */
static const instance *chosen;

static const instance *get_instance(void)
{
    const instance *in = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (!in) {
        in = pick_instance(LM_Q8MM_ISA_AUTO);
        __atomic_store_n(&chosen, in, __ATOMIC_RELAXED);
    }
    return in;
}

lm_q8mm_isa lm_q8mm_set_isa(lm_q8mm_isa isa)
{
    const instance *in = pick_instance(isa);
    __atomic_store_n(&chosen, in, __ATOMIC_RELAXED);
    return in->isa;
}

lm_q8mm_isa lm_q8mm_isa_best(void)
{
    return pick_instance(LM_Q8MM_ISA_AUTO)->isa;
}

const char *lm_q8mm_isa_name(lm_q8mm_isa isa)
{
    switch (isa) {
    case LM_Q8MM_ISA_AUTO: return "auto";
    case LM_Q8MM_ISA_GENERIC: return "generic";
    case LM_Q8MM_ISA_AVX2: return "avx2";
    case LM_Q8MM_ISA_AVX512VNNI: return "avx512vnni";
    case LM_Q8MM_ISA_AVXVNNI: return "avxvnni";
    }
    return "unknown";
}

void lm_q8mm_gemm(const lm_q8mm_weights *w, const void *act, int64_t m, int64_t c0, int64_t c1,
                  float *y, int64_t ldy)
{
    if (m <= 0 || c0 >= c1)
        return;
    assert(w && act && y && c0 >= 0 && c1 <= w->n_rows && ldy >= c1);
    get_instance()->gemm(w, act, lm_q8mm_act_row_bytes(w->n_cols), m, c0, c1, y, ldy);
}

void lm_q8mm_act_quantize(const float *x, int64_t ldx, int64_t m, int64_t k, void *act)
{
    size_t rb = lm_q8mm_act_row_bytes(k);
    assert(rb && ldx >= k);
    int64_t nb = k / BLK;
    size_t qoff = LM_Q8MM_ACT_QOFF(nb), used = qoff + (size_t)nb * BLK;
    const instance *in = get_instance();
    for (int64_t r = 0; r < m; r++) {
        unsigned char *row = (unsigned char *)act + (size_t)r * rb;
        in->quant_row(x + r * ldx, nb, row);
        /* The padding is never read; zero it for tidy (hashable) buffers. */
        memset(row + 4 * nb, 0, qoff - 4 * (size_t)nb);
        memset(row + used, 0, rb - used);
    }
}
