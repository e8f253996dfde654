/* lm_quant.c: ggml tensor types: the size table, fp16/bf16 conversion, row
 * dequantisation and dot products (layouts in lm_quant.h).
 *
 * Two instances of the row kernels: portable C (the block bodies below,
 * written so the compiler can vectorise them; the reference), and on x86-64
 * an AVX2+FMA+F16C instance with intrinsics for the common types, chosen at
 * the first call when the CPU has those extensions.  Dequantised values are
 * bit-identical between the two (tests/check_lm_quant.c checks it); dot
 * products differ by summation order only.
 */
#include "config.h"

#include "lm_quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* No fused multiply-add contraction anywhere in this file: d * q + m must
 * round twice, as ggml's own dequantisation does, whatever -march says. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* ---- type table --------------------------------------------------------- */

/* ggml's type ids with their block geometry; retired ids (4, 5, 31-33,
 * 36-38) are NULL.  Sizes follow ggml-common.h's block structs. */
static const lm_qtype_info type_table[] = {
    [0] = {"F32", 1, 4, 1},        [1] = {"F16", 1, 2, 1},
    [2] = {"Q4_0", 32, 18, 1},     [3] = {"Q4_1", 32, 20, 1},
    [6] = {"Q5_0", 32, 22, 1},     [7] = {"Q5_1", 32, 24, 1},
    [8] = {"Q8_0", 32, 34, 1},     [9] = {"Q8_1", 32, 36, 0},
    [10] = {"Q2_K", 256, 84, 0},   [11] = {"Q3_K", 256, 110, 0},
    [12] = {"Q4_K", 256, 144, 1},  [13] = {"Q5_K", 256, 176, 1},
    [14] = {"Q6_K", 256, 210, 1},  [15] = {"Q8_K", 256, 292, 0},
    [16] = {"IQ2_XXS", 256, 66, 0}, [17] = {"IQ2_XS", 256, 74, 0},
    [18] = {"IQ3_XXS", 256, 98, 0}, [19] = {"IQ1_S", 256, 50, 0},
    [20] = {"IQ4_NL", 32, 18, 0},  [21] = {"IQ3_S", 256, 110, 0},
    [22] = {"IQ2_S", 256, 82, 0},  [23] = {"IQ4_XS", 256, 136, 0},
    [24] = {"I8", 1, 1, 0},        [25] = {"I16", 1, 2, 0},
    [26] = {"I32", 1, 4, 0},       [27] = {"I64", 1, 8, 0},
    [28] = {"F64", 1, 8, 0},       [29] = {"IQ1_M", 256, 56, 0},
    [30] = {"BF16", 1, 2, 1},      [34] = {"TQ1_0", 256, 54, 0},
    [35] = {"TQ2_0", 256, 66, 0},  [39] = {"MXFP4", 32, 17, 0},
};

const lm_qtype_info *lm_quant_info(uint32_t type)
{
    if (type >= sizeof type_table / sizeof type_table[0] || !type_table[type].name)
        return NULL;
    return &type_table[type];
}

const char *lm_quant_name(uint32_t type)
{
    const lm_qtype_info *qi = lm_quant_info(type);
    return qi ? qi->name : "unknown";
}

int lm_quant_supported(uint32_t type)
{
    const lm_qtype_info *qi = lm_quant_info(type);
    return qi && qi->supported;
}

size_t lm_quant_row_size(uint32_t type, int64_t n)
{
    const lm_qtype_info *qi = lm_quant_info(type);
    if (!qi || n < 0 || n % qi->block)
        return 0;
    uint64_t blocks = (uint64_t)(n / qi->block), bytes;
    if (__builtin_mul_overflow(blocks, (uint64_t)qi->type_size, &bytes) || bytes > SIZE_MAX)
        return 0;
    return (size_t)bytes;
}

/* ---- fp16 / bf16 -------------------------------------------------------- */

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Branch-free so that row loops vectorise.  two_w holds the half's exponent
 * and mantissa at the top of a word.  Normal, Inf and NaN halfs: shifted
 * right by 4 they sit in float position with exponent e (bias 15); adding
 * 224 to the exponent and multiplying by 2^-112 rebiases to 127, and e = 31
 * becomes 255 (Inf/NaN) before the multiply keeps it there.  Subnormal
 * halfs: the mantissa under the exponent of 0.5, minus 0.5, is exactly
 * m * 2^-24. */
static inline float f16_to_f32_inline(uint16_t h)
{
    uint32_t w = (uint32_t)h << 16;
    uint32_t sign = w & 0x80000000u;
    uint32_t two_w = w + w; /* exponent and mantissa, sign dropped */
    float normal = bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1p-112f;
    float subnormal = bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
    uint32_t r = two_w < (1u << 27) ? f32_bits(subnormal) : f32_bits(normal);
    return bits_f32(sign | r);
}

static inline float bf16_to_f32_inline(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

float lm_quant_f16_to_f32(uint16_t h)
{
    return f16_to_f32_inline(h);
}

float lm_quant_bf16_to_f32(uint16_t h)
{
    return bf16_to_f32_inline(h);
}

uint16_t lm_quant_f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) /* NaN: keep it quiet and non-zero */
        return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    if (a >= 0x477FF000u) /* >= 65520 rounds to Inf */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 0x38800000u) { /* below 2^-14: subnormal half or zero */
        if (a < 0x33000000u) /* below 2^-25: rounds to zero */
            return sign;
        uint32_t e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* Normal: rebias, then round the 13 dropped bits to nearest even; a carry
     * into the exponent is the correct result. */
    uint32_t r = a - (112u << 23);
    uint32_t q = r >> 13, rem = r & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1)))
        q++;
    return (uint16_t)(sign | q);
}

uint16_t lm_quant_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline uint16_t load_u16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float load_f16(const unsigned char *p)
{
    return f16_to_f32_inline(load_u16(p));
}

/* ---- block dequantisation (shared by rows and dots) --------------------- */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void deq_q8_0(const unsigned char *b, float *y)
{
    float d = load_f16(b);
    const int8_t *q = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++)
        y[j] = d * (float)q[j];
}

ALWAYS_INLINE void deq_q4_0(const unsigned char *b, float *y)
{
    float d = load_f16(b);
    const unsigned char *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((int)(qs[j] & 0xF) - 8);
        y[j + 16] = d * (float)((int)(qs[j] >> 4) - 8);
    }
}

ALWAYS_INLINE void deq_q4_1(const unsigned char *b, float *y)
{
    float d = load_f16(b), m = load_f16(b + 2);
    const unsigned char *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0xF) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

/* Q5_0 / Q5_1: the fifth bit of value j (0..31) is bit j of the 32-bit
 * little-endian word qh. */
ALWAYS_INLINE uint32_t load_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

ALWAYS_INLINE void deq_q5_0(const unsigned char *b, float *y)
{
    float d = load_f16(b);
    uint32_t qh = load_u32(b + 2);
    const unsigned char *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (int)((qs[j] & 0xF) | ((qh >> j) & 1) << 4);
        int hi = (int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

ALWAYS_INLINE void deq_q5_1(const unsigned char *b, float *y)
{
    float d = load_f16(b), m = load_f16(b + 2);
    uint32_t qh = load_u32(b + 4);
    const unsigned char *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (int)((qs[j] & 0xF) | ((qh >> j) & 1) << 4);
        int hi = (int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

/* Q4_K's 12 scale bytes hold eight 6-bit scales and eight 6-bit mins:
 * sub-blocks 0-3 use the low 6 bits of bytes 0-3 (scale) and 4-7 (min);
 * sub-blocks 4-7 take their low 4 bits from bytes 8-11 (scale: low nibble,
 * min: high nibble) and their top 2 bits from the spare top bits of bytes
 * 0-3 (scale) and 4-7 (min). */
ALWAYS_INLINE void q4k_scale_min(const unsigned char *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K and Q5_K: eight sub-blocks of 32 with 6-bit scales and mins; values
 * of sub-blocks 2k and 2k+1 are the low and high nibbles of qs[32k ..
 * 32k+31]; Q5_K (qh not NULL) adds 16 to value l of sub-block s when bit s
 * of qh[l] is set. */
ALWAYS_INLINE void deq_q45_k(const unsigned char *b, const unsigned char *qh,
                             const unsigned char *qs, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    const unsigned char *sc = b + 4;
    for (int k = 0; k < 4; k++) { /* 64 values per pair of sub-blocks */
        int s0, m0, s1, m1;
        q4k_scale_min(sc, 2 * k, &s0, &m0);
        q4k_scale_min(sc, 2 * k + 1, &s1, &m1);
        float d0 = d * (float)s0, o0 = dmin * (float)m0;
        float d1 = d * (float)s1, o1 = dmin * (float)m1;
        const unsigned char *q = qs + 32 * k;
        for (int l = 0; l < 32; l++) {
            int lo = q[l] & 0xF, hi = q[l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * k)) & 1) << 4;
                hi |= ((qh[l] >> (2 * k + 1)) & 1) << 4;
            }
            y[64 * k + l] = d0 * (float)lo - o0;
            y[64 * k + 32 + l] = d1 * (float)hi - o1;
        }
    }
}

ALWAYS_INLINE void deq_q4_k(const unsigned char *b, float *y)
{
    deq_q45_k(b, NULL, b + 16, y);
}

ALWAYS_INLINE void deq_q5_k(const unsigned char *b, float *y)
{
    deq_q45_k(b, b + 16, b + 48, y);
}

/* Q6_K: each half (128 values) uses 64 ql bytes, 32 qh bytes, 8 scales.
 * Value l + 32 i (i = 0..3) of the half takes its low nibble from
 * ql[l + 32 (i & 1)] (low nibble for i < 2, high for i >= 2) and its top two
 * bits from bits 2i..2i+1 of qh[l]; its scale is sc[l / 16 + 2 i]. */
ALWAYS_INLINE void deq_q6_k(const unsigned char *b, float *y)
{
    const unsigned char *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = load_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q0 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q1 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q2 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q3 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * ((float)sc[is] * (float)q0);
            y[l + 32] = d * ((float)sc[is + 2] * (float)q1);
            y[l + 64] = d * ((float)sc[is + 4] * (float)q2);
            y[l + 96] = d * ((float)sc[is + 6] * (float)q3);
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

/* ---- row bodies --------------------------------------------------------- */

/* The n / vals blocks of a row, bs bytes each, expanded by fn. */
#define DEQ_BLOCKS(fn, bs, vals)                                                                   \
    for (int64_t i = 0; i < n / (vals); i++)                                                       \
        fn(s + (size_t)(bs) * (size_t)i, y + (vals) * i);                                          \
    break

ALWAYS_INLINE void row_dequant_body(uint32_t type, const unsigned char *s, float *y, int64_t n)
{
    switch (type) {
    case LM_QTYPE_F32:
        memcpy(y, s, (size_t)n * sizeof *y);
        break;
    case LM_QTYPE_F16:
        for (int64_t i = 0; i < n; i++)
            y[i] = f16_to_f32_inline(load_u16(s + 2 * i));
        break;
    case LM_QTYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            y[i] = bf16_to_f32_inline(load_u16(s + 2 * i));
        break;
    case LM_QTYPE_Q8_0:
        DEQ_BLOCKS(deq_q8_0, 34, 32);
    case LM_QTYPE_Q4_0:
        DEQ_BLOCKS(deq_q4_0, 18, 32);
    case LM_QTYPE_Q4_1:
        DEQ_BLOCKS(deq_q4_1, 20, 32);
    case LM_QTYPE_Q5_0:
        DEQ_BLOCKS(deq_q5_0, 22, 32);
    case LM_QTYPE_Q5_1:
        DEQ_BLOCKS(deq_q5_1, 24, 32);
    case LM_QTYPE_Q4_K:
        DEQ_BLOCKS(deq_q4_k, 144, 256);
    case LM_QTYPE_Q5_K:
        DEQ_BLOCKS(deq_q5_k, 176, 256);
    case LM_QTYPE_Q6_K:
        DEQ_BLOCKS(deq_q6_k, 210, 256);
    default:
        assert(!"lm_quant: unsupported type");
    }
}

/* acc[0..8) += a[0..n) * b[0..n), n a multiple of 8: eight independent
 * lanes, so no reassociation is needed to vectorise. */
ALWAYS_INLINE void lanes_fma(float *acc, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
}

ALWAYS_INLINE float lanes_sum(const float *acc)
{
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Dot of a quantised row with x: each block is expanded into a small stack
 * buffer and folded into the lanes, so nothing is allocated. */
ALWAYS_INLINE float row_dot_body(uint32_t type, const unsigned char *s, const float *x, int64_t n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float buf[256];
    int64_t i = 0;
    switch (type) {
    case LM_QTYPE_F32: {
        for (; i + 8 <= n; i += 8) {
            float w[8];
            memcpy(w, s + 4 * i, sizeof w);
            lanes_fma(acc, w, x + i, 8);
        }
        float tail = 0;
        for (; i < n; i++) {
            float w;
            memcpy(&w, s + 4 * i, sizeof w);
            tail += w * x[i];
        }
        return lanes_sum(acc) + tail;
    }
    case LM_QTYPE_F16:
    case LM_QTYPE_BF16: {
        for (; i < n; i += 256) {
            int64_t m = n - i < 256 ? n - i : 256;
            row_dequant_body(type, s + 2 * i, buf, m);
            int64_t m8 = m & ~(int64_t)7;
            lanes_fma(acc, buf, x + i, m8);
            for (int64_t k = m8; k < m; k++)
                acc[k & 7] += buf[k] * x[i + k];
        }
        return lanes_sum(acc);
    }
    case LM_QTYPE_Q8_0:
        for (; i < n; i += 32) {
            deq_q8_0(s + 34 * (i / 32), buf);
            lanes_fma(acc, buf, x + i, 32);
        }
        return lanes_sum(acc);
    case LM_QTYPE_Q4_0:
        for (; i < n; i += 32) {
            deq_q4_0(s + 18 * (i / 32), buf);
            lanes_fma(acc, buf, x + i, 32);
        }
        return lanes_sum(acc);
    case LM_QTYPE_Q4_K:
        for (; i < n; i += 256) {
            deq_q4_k(s + 144 * (i / 256), buf);
            lanes_fma(acc, buf, x + i, 256);
        }
        return lanes_sum(acc);
    case LM_QTYPE_Q4_1:
    case LM_QTYPE_Q5_0:
    case LM_QTYPE_Q5_1:
    case LM_QTYPE_Q5_K: {
        const lm_qtype_info *qi = lm_quant_info(type);
        for (; i < n; i += qi->block) {
            row_dequant_body(type, s + qi->type_size * (size_t)(i / qi->block), buf, qi->block);
            lanes_fma(acc, buf, x + i, qi->block);
        }
        return lanes_sum(acc);
    }
    case LM_QTYPE_Q6_K:
        for (; i < n; i += 256) {
            deq_q6_k(s + 210 * (i / 256), buf);
            lanes_fma(acc, buf, x + i, 256);
        }
        return lanes_sum(acc);
    default:
        assert(!"lm_quant: unsupported type");
        return 0;
    }
}

/* ---- baseline and AVX2 instances, chosen once at run time ----------------- */

/* noinline: the AVX2 instance calls these for the types it has no code of
 * its own for, and inlined into an FMA-enabled function the compiler could
 * contract d * q + m into one fused operation, which rounds differently. */
__attribute__((noinline)) static void dequant_generic(uint32_t t, const unsigned char *s,
                                                      float *y, int64_t n)
{
    row_dequant_body(t, s, y, n);
}

__attribute__((noinline)) static float dot_generic(uint32_t t, const unsigned char *s,
                                                   const float *x, int64_t n)
{
    return row_dot_body(t, s, x, n);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define LM_QUANT_HAVE_AVX2 1
#include <immintrin.h>

/* AVX2 instances: explicit intrinsics for the common types, the shared C
 * bodies (compiled for AVX2) for the rest.  Sums use four 8-lane
 * accumulators (latency hiding), so they round differently from the
 * baseline instance by reassociation only. */
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

AVX2_FN static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 fp16 / bf16 / int8 values at p as floats. */
AVX2_FN static inline __m256 ld_f16(const unsigned char *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
AVX2_FN static inline __m256 ld_bf16(const unsigned char *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
AVX2_FN static inline __m256 ld_i8(const unsigned char *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* The 32 values of a Q4_0 block, minus 8, as four vectors. */
AVX2_FN static inline void ld_q4_0(const unsigned char *qs, __m256 v[4])
{
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0F);
    __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
    __m256 eight = _mm256_set1_ps(8.0f);
    v[0] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), eight);
    v[1] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), eight);
    v[2] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), eight);
    v[3] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), eight);
}

/* 32 bytes as four vectors of 8 floats: signed (int8) or unsigned. */
AVX2_FN static inline void i8x32_to_ps(__m256i v, int is_signed, __m256 out[4])
{
    __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    __m128i part[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int c = 0; c < 4; c++)
        out[c] = _mm256_cvtepi32_ps(is_signed ? _mm256_cvtepi8_epi32(part[c])
                                              : _mm256_cvtepu8_epi32(part[c]));
}

/* deq_q45_k with intrinsics: the same products, same order per value.  The
 * fifth bit of value l of sub-block s (Q5_K, qh not NULL) is bit s of
 * qh[l]: shifts within 16-bit lanes keep each byte's own bits in its low
 * bit. */
AVX2_FN static inline void deq_q45_k_avx2(const unsigned char *b, const unsigned char *qh,
                                          const unsigned char *qs, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        int s0, m0, s1, m1;
        q4k_scale_min(b + 4, 2 * k, &s0, &m0);
        q4k_scale_min(b + 4, 2 * k + 1, &s1, &m1);
        __m256 d0 = _mm256_set1_ps(d * (float)s0), o0 = _mm256_set1_ps(dmin * (float)m0);
        __m256 d1 = _mm256_set1_ps(d * (float)s1), o1 = _mm256_set1_ps(dmin * (float)m1);
        __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        __m256i vlo = _mm256_and_si256(q, m4), vhi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (qh) {
            __m256i h0 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * k)), one);
            __m256i h1 = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(2 * k + 1)), one);
            vlo = _mm256_or_si256(vlo, _mm256_slli_epi16(h0, 4));
            vhi = _mm256_or_si256(vhi, _mm256_slli_epi16(h1, 4));
        }
        __m256 lo[4], hi[4];
        i8x32_to_ps(vlo, 0, lo);
        i8x32_to_ps(vhi, 0, hi);
        for (int c = 0; c < 4; c++) {
            _mm256_storeu_ps(y + 64 * k + 8 * c, _mm256_sub_ps(_mm256_mul_ps(d0, lo[c]), o0));
            _mm256_storeu_ps(y + 64 * k + 32 + 8 * c, _mm256_sub_ps(_mm256_mul_ps(d1, hi[c]), o1));
        }
    }
}

AVX2_FN static inline void deq_q4_k_avx2(const unsigned char *b, float *y)
{
    deq_q45_k_avx2(b, NULL, b + 16, y);
}

AVX2_FN static inline void deq_q5_k_avx2(const unsigned char *b, float *y)
{
    deq_q45_k_avx2(b, b + 16, b + 48, y);
}

/* deq_q6_k with intrinsics: 32 lanes of a half at once, bytes assembled as
 * in deq_q6_k, then d * (scale * (q - 32)) with the same rounding (the
 * product in brackets is exact in float, -0 included). */
AVX2_FN static inline void deq_q6_k_avx2(const unsigned char *b, float *y)
{
    const unsigned char *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    __m256 d = _mm256_set1_ps(load_f16(b + 208));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const __m256i off = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
        __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
        __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                               _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
        for (int g = 0; g < 4; g++) {
            __m256 v[4];
            i8x32_to_ps(_mm256_sub_epi8(q[g], off), 1, v);
            for (int c = 0; c < 4; c++) {
                __m256 prod = _mm256_mul_ps(_mm256_set1_ps((float)sc[2 * g + c / 2]), v[c]);
                _mm256_storeu_ps(y + 32 * g + 8 * c, _mm256_mul_ps(d, prod));
            }
        }
    }
}

/* The 32 4-bit values of a Q4_1/Q5_0/Q5_1 block (qs: value j < 16 the low
 * nibble of qs[j], j + 16 its high nibble) as 32 bytes in value order, with
 * bit j of qh (when has_qh) added as 16. */
AVX2_FN static inline __m256i q5_bytes(const unsigned char *qs, uint32_t qh, int has_qh)
{
    __m128i b = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
    if (!has_qh)
        return q;
    const __m256i pick = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                           0x0101010101010101LL, 0x0000000000000000LL);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), pick); /* byte j: qh byte j/8 */
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

/* Q4_1 (kind 0), Q5_0 (1) and Q5_1 (2) blocks: d * (q - 16) or d * q + m,
 * as deq_q4_1 / deq_q5_0 / deq_q5_1. */
AVX2_FN static inline void deq_q451_avx2(int kind, const unsigned char *b, float *y)
{
    __m256 d = _mm256_set1_ps(load_f16(b)), v[4];
    if (kind == 1) {
        i8x32_to_ps(_mm256_sub_epi8(q5_bytes(b + 6, load_u32(b + 2), 1), _mm256_set1_epi8(16)), 1,
                    v);
        for (int c = 0; c < 4; c++)
            _mm256_storeu_ps(y + 8 * c, _mm256_mul_ps(d, v[c]));
        return;
    }
    __m256 m = _mm256_set1_ps(load_f16(b + 2));
    i8x32_to_ps(kind == 0 ? q5_bytes(b + 4, 0, 0) : q5_bytes(b + 8, load_u32(b + 4), 1), 0, v);
    for (int c = 0; c < 4; c++)
        _mm256_storeu_ps(y + 8 * c, _mm256_add_ps(_mm256_mul_ps(d, v[c]), m));
}

/* sum a[i] b[i], n a multiple of 8. */
AVX2_FN static inline __m256 dot8_acc(const float *a, const float *b, int64_t n, __m256 acc)
{
    for (int64_t i = 0; i < n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    return acc;
}

AVX2_FN static void dequant_avx2(uint32_t t, const unsigned char *s, float *y, int64_t n)
{
    int64_t i = 0;
    switch (t) {
    case LM_QTYPE_F16:
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, ld_f16(s + 2 * i));
        for (; i < n; i++)
            y[i] = f16_to_f32_inline(load_u16(s + 2 * i));
        return;
    case LM_QTYPE_BF16:
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, ld_bf16(s + 2 * i));
        for (; i < n; i++)
            y[i] = bf16_to_f32_inline(load_u16(s + 2 * i));
        return;
    case LM_QTYPE_Q8_0:
        for (; i < n; i += 32, s += 34) {
            __m256 d = _mm256_set1_ps(load_f16(s));
            for (int g = 0; g < 4; g++)
                _mm256_storeu_ps(y + i + 8 * g, _mm256_mul_ps(d, ld_i8(s + 2 + 8 * g)));
        }
        return;
    case LM_QTYPE_Q4_0:
        for (; i < n; i += 32, s += 18) {
            __m256 d = _mm256_set1_ps(load_f16(s)), v[4];
            ld_q4_0(s + 2, v);
            for (int g = 0; g < 4; g++)
                _mm256_storeu_ps(y + i + 8 * g, _mm256_mul_ps(d, v[g]));
        }
        return;
    case LM_QTYPE_Q4_K:
        for (; i < n; i += 256, s += 144)
            deq_q4_k_avx2(s, y + i);
        return;
    case LM_QTYPE_Q6_K:
        for (; i < n; i += 256, s += 210)
            deq_q6_k_avx2(s, y + i);
        return;
    case LM_QTYPE_Q5_K:
        for (; i < n; i += 256, s += 176)
            deq_q5_k_avx2(s, y + i);
        return;
    case LM_QTYPE_Q4_1:
    case LM_QTYPE_Q5_0:
    case LM_QTYPE_Q5_1: {
        int kind = t == LM_QTYPE_Q4_1 ? 0 : t == LM_QTYPE_Q5_0 ? 1 : 2;
        size_t bs = lm_quant_info(t)->type_size;
        for (; i < n; i += 32, s += bs)
            deq_q451_avx2(kind, s, y + i);
        return;
    }
    default:
        dequant_generic(t, s, y, n);
    }
}

AVX2_FN static float dot_avx2(uint32_t t, const unsigned char *s, const float *x, int64_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    float buf[256], tail = 0;
    int64_t i = 0;
    switch (t) {
    case LM_QTYPE_F32:
        for (; i + 32 <= n; i += 32) {
            const float *w = (const float *)(const void *)(s + 4 * i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8), _mm256_loadu_ps(x + i + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 16), _mm256_loadu_ps(x + i + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 24), _mm256_loadu_ps(x + i + 24), a3);
        }
        for (; i < n; i++) {
            float w;
            memcpy(&w, s + 4 * i, sizeof w);
            tail += w * x[i];
        }
        break;
    case LM_QTYPE_F16:
    case LM_QTYPE_BF16:
        for (; i + 16 <= n; i += 16) {
            const unsigned char *p = s + 2 * i;
            __m256 w0 = t == LM_QTYPE_F16 ? ld_f16(p) : ld_bf16(p);
            __m256 w1 = t == LM_QTYPE_F16 ? ld_f16(p + 16) : ld_bf16(p + 16);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
        }
        for (; i < n; i++) {
            uint16_t h = load_u16(s + 2 * i);
            tail += (t == LM_QTYPE_F16 ? f16_to_f32_inline(h) : bf16_to_f32_inline(h)) * x[i];
        }
        break;
    case LM_QTYPE_Q8_0:
        for (; i < n; i += 32, s += 34) {
            __m256 b = _mm256_mul_ps(ld_i8(s + 2), _mm256_loadu_ps(x + i));
            b = _mm256_fmadd_ps(ld_i8(s + 10), _mm256_loadu_ps(x + i + 8), b);
            b = _mm256_fmadd_ps(ld_i8(s + 18), _mm256_loadu_ps(x + i + 16), b);
            b = _mm256_fmadd_ps(ld_i8(s + 26), _mm256_loadu_ps(x + i + 24), b);
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(load_f16(s)), b, a0);
        }
        break;
    case LM_QTYPE_Q4_0:
        for (; i < n; i += 32, s += 18) {
            __m256 v[4];
            ld_q4_0(s + 2, v);
            __m256 b = _mm256_mul_ps(v[0], _mm256_loadu_ps(x + i));
            b = _mm256_fmadd_ps(v[1], _mm256_loadu_ps(x + i + 8), b);
            b = _mm256_fmadd_ps(v[2], _mm256_loadu_ps(x + i + 16), b);
            b = _mm256_fmadd_ps(v[3], _mm256_loadu_ps(x + i + 24), b);
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(load_f16(s)), b, a0);
        }
        break;
    case LM_QTYPE_Q4_K:
        for (; i < n; i += 256, s += 144) {
            deq_q4_k_avx2(s, buf);
            a0 = dot8_acc(buf, x + i, 256, a0);
        }
        break;
    case LM_QTYPE_Q6_K:
        for (; i < n; i += 256, s += 210) {
            deq_q6_k_avx2(s, buf);
            a0 = dot8_acc(buf, x + i, 256, a0);
        }
        break;
    default:
        return dot_generic(t, s, x, n);
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + tail;
}
#endif

typedef struct kernels {
    void (*dequant)(uint32_t, const unsigned char *, float *, int64_t);
    float (*dot)(uint32_t, const unsigned char *, const float *, int64_t);
    lm_quant_isa isa;
} kernels;

static const kernels generic_kernels = {dequant_generic, dot_generic, LM_QUANT_ISA_GENERIC};
#ifdef LM_QUANT_HAVE_AVX2
static const kernels avx2_kernels = {dequant_avx2, dot_avx2, LM_QUANT_ISA_AVX2};
#endif

static const kernels *pick_kernels(lm_quant_isa want)
{
#ifdef LM_QUANT_HAVE_AVX2
    __builtin_cpu_init();
    int ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#ifndef __clang__
    /* clang's builtin does not know "f16c"; every AVX2 CPU has it. */
    ok = ok && __builtin_cpu_supports("f16c");
#endif
    if (want != LM_QUANT_ISA_GENERIC && ok)
        return &avx2_kernels;
#endif
    (void)want;
    return &generic_kernels;
}

/* The automatic choice depends only on the CPU: threads racing to make it
 * store the same pointer. */
static const kernels *chosen;

static const kernels *get_kernels(void)
{
    const kernels *k = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (!k) {
        k = pick_kernels(LM_QUANT_ISA_AUTO);
        __atomic_store_n(&chosen, k, __ATOMIC_RELAXED);
    }
    return k;
}

lm_quant_isa lm_quant_set_isa(lm_quant_isa isa)
{
    const kernels *k = pick_kernels(isa);
    __atomic_store_n(&chosen, k, __ATOMIC_RELAXED);
    return k->isa;
}

static void check_row(uint32_t type, int64_t n)
{
    const lm_qtype_info *qi = lm_quant_info(type);
    (void)qi;
    assert(qi && qi->supported && n >= 0 && n % qi->block == 0);
}

void lm_quant_dequant_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    check_row(type, n);
    get_kernels()->dequant(type, src, dst, n);
}

void lm_quant_dequant_rows(uint32_t type, const void *src, size_t row_bytes, int64_t n_rows,
                           int64_t n_cols, float *dst, int64_t ld)
{
    check_row(type, n_cols);
    assert(ld >= n_cols);
    const kernels *k = get_kernels();
    for (int64_t r = 0; r < n_rows; r++)
        k->dequant(type, (const unsigned char *)src + (size_t)r * row_bytes, dst + r * ld, n_cols);
}

float lm_quant_dot_f32(uint32_t type, const void *row, const float *x, int64_t n)
{
    check_row(type, n);
    return get_kernels()->dot(type, row, x, n);
}

void lm_quant_matvec_f32(uint32_t type, const void *w, size_t row_bytes, int64_t n_rows,
                         const float *x, int64_t n, float *y)
{
    check_row(type, n);
    const kernels *k = get_kernels();
    for (int64_t r = 0; r < n_rows; r++)
        y[r] = k->dot(type, (const unsigned char *)w + (size_t)r * row_bytes, x, n);
}

void lm_quant_quantize_row_q8_0(const float *x, void *dst, int64_t n)
{
    unsigned char *o = dst;
    assert(n >= 0 && n % LM_QK_0 == 0);
    for (int64_t b = 0; b < n / LM_QK_0; b++, x += LM_QK_0, o += 34) {
        float amax = 0.0f;
        int finite = 1;
        for (int j = 0; j < LM_QK_0; j++) {
            finite &= isfinite(x[j]) != 0;
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        }
        float d = finite ? amax / 127.0f : NAN, id = finite && d > 0.0f ? 1.0f / d : 0.0f;
        uint16_t h = lm_quant_f32_to_f16(d);
        memcpy(o, &h, 2);
        for (int j = 0; j < LM_QK_0; j++) {
            float v = x[j] * id; /* |v| <= 127 up to rounding (id = +Inf: d is 0 in fp16) */
            int q = finite && isfinite(v) ? (int)roundf(v) : 0;
            o[2 + j] = (unsigned char)(int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
    }
}
