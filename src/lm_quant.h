/* lm_quant.h: tensor element types of GGUF files (ggml's type ids) and
 * their CPU kernels: row dequantisation to float32 and dot products.
 *
 * A tensor row of n elements (n a multiple of the type's block size) is
 * n / block blocks of type_size bytes each, packed without padding.  Layouts
 * (all little-endian, "fp16" an IEEE binary16, d/dmin block scales):
 *
 *   F32   1 value,  4 bytes: float32.
 *   F16   1 value,  2 bytes: fp16.
 *   BF16  1 value,  2 bytes: the high 16 bits of a float32.
 *   Q8_0  32 values, 34 bytes: fp16 d; int8 q[32].            x = d * q
 *   Q4_0  32 values, 18 bytes: fp16 d; uint8 qs[16]; value j < 16 is the low
 *         nibble of qs[j], value j + 16 the high nibble.        x = d * (q - 8)
 *   Q4_1  32 values, 20 bytes: fp16 d, fp16 m; uint8 qs[16] (nibbles as
 *         Q4_0).                                               x = d * q + m
 *   Q5_0  32 values, 22 bytes: fp16 d; uint32 qh (bit j: the fifth bit of
 *         value j); uint8 qs[16] (low 4 bits as Q4_0).       x = d * (q - 16)
 *   Q5_1  32 values, 24 bytes: fp16 d, fp16 m; uint32 qh; uint8 qs[16] (as
 *         Q5_0).                                               x = d * q + m
 *   Q4_K  256 values, 144 bytes: fp16 d, fp16 dmin; uint8 scales[12] (eight
 *         6-bit scale/min pairs, see lm_quant.c); uint8 qs[128].  Sub-block s
 *         (32 values) has x = d * sc[s] * q - dmin * m[s]; values of sub-blocks
 *         2k and 2k+1 are the low and high nibbles of qs[32k .. 32k+31].
 *   Q5_K  256 values, 176 bytes: Q4_K's d, dmin and scales[12], then uint8
 *         qh[32], then Q4_K's qs[128]; value l of sub-block s (l < 32) adds
 *         16 to its nibble when bit s of qh[l] is set.
 *   Q6_K  256 values, 210 bytes: uint8 ql[128] (low 4 bits), uint8 qh[64]
 *         (high 2 bits), int8 scales[16] (one per 16 values), fp16 d.
 *         x = d * scales[j / 16] * (q - 32), q in [0, 63].
 *
 * Other ggml types are known by size only (so a GGUF holding them can be
 * opened and described) but have no kernels: lm_quant_supported() is 0.
 *
 * Thread-safety: every function here is pure (no state) and thread-safe.
 */
#ifndef LM_QUANT_H
#define LM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ggml's on-disk type ids (stable; GGUF stores them as uint32).  Only the ids
 * with kernels get names here; others are reached through lm_quant_info(). */
typedef enum lm_qtype {
    LM_QTYPE_F32 = 0,
    LM_QTYPE_F16 = 1,
    LM_QTYPE_Q4_0 = 2,
    LM_QTYPE_Q4_1 = 3,
    LM_QTYPE_Q5_0 = 6,
    LM_QTYPE_Q5_1 = 7,
    LM_QTYPE_Q8_0 = 8,
    LM_QTYPE_Q4_K = 12,
    LM_QTYPE_Q5_K = 13,
    LM_QTYPE_Q6_K = 14,
    LM_QTYPE_BF16 = 30
} lm_qtype;

/* Values per super-block of the K quantisations. */
#define LM_QK_K 256
/* Values per block of Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0. */
#define LM_QK_0 32

typedef struct lm_qtype_info {
    const char *name;  /* "F32", "Q4_K", ...: ggml's spelling; borrowed static */
    int64_t block;     /* values per block (1 for plain floats) */
    size_t type_size;  /* bytes per block */
    int supported;     /* 1 when this file has kernels for it */
} lm_qtype_info;

/* ---- type table ------------------------------------------------------- */

/* Layout of ggml type id `type`, or NULL for an id unknown to us (including
 * ids ggml retired).  Borrowed static storage. */
const lm_qtype_info *lm_quant_info(uint32_t type);

/* Name of `type`, or "unknown".  Borrowed static string. */
const char *lm_quant_name(uint32_t type);

/* 1 when dequantisation and dot kernels exist for `type`. */
int lm_quant_supported(uint32_t type);

/* Bytes of a row of n values: (n / block) * type_size.  Returns 0 when the
 * type is unknown, n < 0, n is not a multiple of the block size, or the size
 * does not fit size_t (n == 0 also gives 0). */
size_t lm_quant_row_size(uint32_t type, int64_t n);

/* ---- fp16 / bf16 scalars ---------------------------------------------- */

/* Exact conversions: every fp16 / bf16 value (NaN payloads included, up to
 * quieting) maps to the float32 of the same value. */
float lm_quant_f16_to_f32(uint16_t h);
float lm_quant_bf16_to_f32(uint16_t h);
/* Round to nearest even; overflow gives +-Inf; NaN stays NaN. */
uint16_t lm_quant_f32_to_f16(float f);
uint16_t lm_quant_f32_to_bf16(float f);

/* ---- row kernels (types with lm_quant_supported() only) -------------- */

/* dst[0..n) = the n values of the row at src.  n must be a multiple of the
 * block size; src needs no alignment.  Asserts on unsupported types or a
 * bad n (callers validate tensors at load time). */
void lm_quant_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

/* Dequantises n_rows rows of n_cols values each, rows row_bytes apart in src
 * (normally lm_quant_row_size(type, n_cols)), into dst, row-major with
 * leading dimension ld >= n_cols floats: the panel a BLAS sgemm consumes. */
void lm_quant_dequant_rows(uint32_t type, const void *src, size_t row_bytes,
                           int64_t n_rows, int64_t n_cols, float *dst, int64_t ld);

/* sum_i row[i] * x[i] over the n values of one quantised row, accumulated
 * in float32 lanes (the order differs from a sequential sum by rounding
 * only).  Same preconditions as lm_quant_dequant_row. */
float lm_quant_dot_f32(uint32_t type, const void *row, const float *x, int64_t n);

/* y[r] = dot(row r, x) for n_rows rows row_bytes apart: a matrix-vector
 * product W x with W of shape (n_rows, n). */
void lm_quant_matvec_f32(uint32_t type, const void *w, size_t row_bytes,
                         int64_t n_rows, const float *x, int64_t n, float *y);

/* Encodes n values (a multiple of 32) as Q8_0 blocks into dst
 * (lm_quant_row_size(LM_QTYPE_Q8_0, n) bytes), ggml's rule: per block,
 * d = max|x| / 127 (stored as fp16), q = round-half-away(x / d) computed as
 * x * (1 / d); an all-zero block has d = 0 and q = 0.  A block holding a NaN
 * or an infinity gets d = NaN and q = 0, so products with it are NaN: a
 * non-finite weight is never hidden. */
void lm_quant_quantize_row_q8_0(const float *x, void *dst, int64_t n);

/* ---- kernel instances ---------------------------------------------------- */

/* The row kernels exist as portable C and, on x86-64 CPUs with AVX2, FMA and
 * F16C, as an AVX2 instance chosen automatically on first use.  Both give
 * the same dequantised values bit for bit; dot products differ by summation
 * order only. */
typedef enum lm_quant_isa {
    LM_QUANT_ISA_AUTO = 0,    /* the best instance this CPU runs */
    LM_QUANT_ISA_GENERIC = 1, /* portable C */
    LM_QUANT_ISA_AVX2 = 2
} lm_quant_isa;

/* Selects the instance for the whole process (tests and benchmarks compare
 * them); AVX2 on a CPU without it falls back to GENERIC.  Returns the
 * instance now in use (never AUTO).  Call it while no other thread runs a
 * kernel. */
lm_quant_isa lm_quant_set_isa(lm_quant_isa isa);

#ifdef __cplusplus
}
#endif

#endif /* LM_QUANT_H */
