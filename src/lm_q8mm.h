/* lm_q8mm.h: matrix products of Q8_0 weights (lm_quant.h) with activations
 * quantised to 8 bits, in integer arithmetic, for the CPU backends.
 *
 *   y (m, n) = X (m, k) W^T, W (n, k) Q8_0, X float32 quantised per 32-block.
 *
 * The weights are repacked once (lm_q8mm_weights_new) into tiles of
 * LM_Q8MM_TILE rows; the activations are quantised once per product
 * (lm_q8mm_act_quantize); lm_q8mm_gemm then computes any (row range, column
 * range) piece of y, so a caller can split one product between threads.
 *
 * The arithmetic is fixed, so every kernel instance gives the same bits:
 *   activation block (32 floats x): amax = max |x_i| over the non-NaN x_i;
 *     amax == 0: d = 0, q = 0; else d = amax / 127 and, with id = 127 / amax
 *     (one float32 division), q_i = round-half-away(x_i * id) clamped to
 *     [-127, 127].  d stays float32.
 *   weight block: dw = its fp16 scale as float32, q as stored (-128 too).
 *   y = acc after acc = 0; for blocks b = 0, 1, ...: isum = exact integer
 *     dot of the 32 q pairs; acc = fmaf(dx_b * dw_b, (float)isum, acc), the
 *     product dx_b * dw_b rounded to float32 on its own.
 * Non-finite activations: a block holding a NaN gets d = NaN (its NaN
 * elements quantise to 0 and amax is taken over the others), so the outputs
 * of that row become NaN, as in float arithmetic: a NaN is never hidden; an
 * infinite element makes amax and d infinite and every q of its block 0, so
 * the outputs of that row become NaN too.  A block whose amax is so small that 127 / amax overflows (below
 * about 3.7e-37) gets id = +Inf and q_i = sign(x_i) * 127 (0 for zeros).
 * Non-finite weight scales propagate to y as IEEE arithmetic says.  Nothing
 * traps or loops on such values.
 *
 * Quantised activation rows (lm_q8mm_act_row_bytes(k) bytes each; k / 32
 * blocks nb): float32 d[nb] at byte 0, then at byte LM_Q8MM_ACT_QOFF(nb)
 * uint8 u[nb * 32] with u = q + 128 (so u is in [1, 255]); the row length
 * is a multiple of 64 bytes.  Buffers need no particular alignment, but only
 * rows written by lm_q8mm_act_quantize are valid input to lm_q8mm_gemm
 * (u == 0 breaks the AVX2 instance's exactness argument).
 *
 * Packed weights hold, per tile of 16 rows and block, 16 x 32 int8 values
 * (4-byte groups interleaved by row), 16 float32 scales and 16 int32 sums
 * 128 * sum(q): 640 bytes against 16 * 34 = 544 of Q8_0 (about 1.18x, plus
 * the padding of the last tile).
 *
 * Thread-safety: lm_q8mm_weights is read-only after _new, so any number of
 * threads may call lm_q8mm_gemm on it at once (on disjoint outputs).
 * lm_q8mm_set_isa changes process-wide state: call it while no kernel runs.
 */
#ifndef LM_Q8MM_H
#define LM_Q8MM_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Weight rows per packed tile. */
#define LM_Q8MM_TILE 16
/* Byte offset of the quantised values in an activation row of nb blocks. */
#define LM_Q8MM_ACT_QOFF(nb) ((((size_t)(nb) * 4) + 63) & ~(size_t)63)

/* ---- packed weights ------------------------------------------------------ */

typedef struct lm_q8mm_weights lm_q8mm_weights; /* opaque, read-only after _new */

/* Repacks n_rows x n_cols Q8_0 weights (rows row_bytes apart, as in a GGUF
 * mapping; n_cols a positive multiple of 32; n_rows >= 1; row_bytes >=
 * n_cols / 32 * 34) into the kernel's layout.  On DL_OK *out is a new object
 * owned by the caller (lm_q8mm_weights_free); else *out is NULL and err (may
 * be NULL) says why: DL_ERR_USAGE for a bad shape or NULL pointer,
 * DL_ERR_NOMEM.  q8_0 is borrowed for the call only. */
dl_status lm_q8mm_weights_new(const void *q8_0, size_t row_bytes, int64_t n_rows,
                              int64_t n_cols, lm_q8mm_weights **out, dl_error *err);

/* Frees w; NULL is a no-op. */
void lm_q8mm_weights_free(lm_q8mm_weights *w);

/* Heap bytes held by w (the packed tiles and the struct). */
size_t lm_q8mm_weights_bytes(const lm_q8mm_weights *w);

/* Rows and columns of the original matrix. */
int64_t lm_q8mm_weights_rows(const lm_q8mm_weights *w);
int64_t lm_q8mm_weights_cols(const lm_q8mm_weights *w);

/* ---- activations --------------------------------------------------------- */

/* Bytes per quantised row of k values (a multiple of 64); 0 when k is not a
 * positive multiple of 32 or the size overflows. */
size_t lm_q8mm_act_row_bytes(int64_t k);

/* Quantises m rows of k floats (row r at x + r * ldx; k a positive multiple
 * of 32, ldx >= k) into act, m rows of lm_q8mm_act_row_bytes(k) bytes each
 * (caller-owned, no alignment needed).  Pure; thread-safe. */
void lm_q8mm_act_quantize(const float *x, int64_t ldx, int64_t m, int64_t k, void *act);

/* ---- products ------------------------------------------------------------ */

/* y[r * ldy + c] = the product of quantised activation row r (r < m, rows
 * lm_q8mm_act_row_bytes(k) apart from act, k == the weights' n_cols) and
 * weight row c, for c in [c0, c1) (0 <= c0 < c1 <= n_rows); writes only
 * those elements (ldy >= c1).  m <= 0 or c0 >= c1: nothing.  Asserts on
 * other contract violations.  Thread-safe on disjoint outputs. */
void lm_q8mm_gemm(const lm_q8mm_weights *w, const void *act, int64_t m, int64_t c0, int64_t c1,
                  float *y, int64_t ldy);

/* ---- kernel instances ---------------------------------------------------- */

/* All instances give the same bits (the contract above). */
typedef enum lm_q8mm_isa {
    LM_Q8MM_ISA_AUTO = 0,       /* the best instance this CPU runs */
    LM_Q8MM_ISA_GENERIC = 1,    /* portable C: the reference */
    LM_Q8MM_ISA_AVX2 = 2,       /* AVX2 + FMA: maddubs with the sign trick */
    LM_Q8MM_ISA_AVX512VNNI = 3, /* AVX-512 F/BW/VL + VNNI: vpdpbusd */
    LM_Q8MM_ISA_AVXVNNI = 4     /* AVX2 + FMA + AVX-VNNI: 256-bit vpdpbusd; between
                                   AVX2 and AVX-512 VNNI in the automatic choice */
} lm_q8mm_isa;

/* Selects the instance for the whole process; an instance the CPU (or the
 * compiler) lacks falls back to the best lower one.  Returns the instance
 * now in use (never AUTO). */
lm_q8mm_isa lm_q8mm_set_isa(lm_q8mm_isa isa);

/* The instance lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO) would pick on this CPU and
 * build (a query: changes nothing).  Thread-safe. */
lm_q8mm_isa lm_q8mm_isa_best(void);

/* "generic", "avx2", "avxvnni", "avx512vnni" or "auto"; "unknown"
 * otherwise.  Static. */
const char *lm_q8mm_isa_name(lm_q8mm_isa isa);

#ifdef __cplusplus
}
#endif

#endif /* LM_Q8MM_H */
