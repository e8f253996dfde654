/* bench_quant.c: the tensor-type kernels' throughput, single thread, against
 * OpenBLAS's single-threaded sgemv on the same weights in float32, measured
 * in the same run.
 *
 * For each type with kernels: a (rows x n) weight matrix of random values,
 * quantised by rounding the float32 matrix through that type's dequantiser
 * (random blocks with tame scales), then
 *   matvec: lm_quant_matvec_f32, GFLOP/s (2 rows*n per call) and its ratio to
 *           cblas_sgemv on the F32 matrix;
 *   panel:  lm_quant_dequant_rows into a float panel, values per second (the
 *           cost the BLAS backend adds before each sgemm).
 * Usage: bench_quant [rows n]   (default 2048 2048)
 */
#include "config.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lm_quant.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 88172645463325252u;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 20);
}

/* Random bytes with every fp16 scale set to a small finite value. */
static void fill(uint32_t type, unsigned char *p, size_t bytes)
{
    const lm_qtype_info *qi = lm_quant_info(type);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (unsigned char)rnd();
    for (size_t b = 0; b + qi->type_size <= bytes; b += qi->type_size) {
        unsigned char *k = p + b;
        uint16_t h = (uint16_t)(0x2000 | (rnd() & 0x3FF));
        switch (type) {
        case LM_QTYPE_F32: { float f = (float)rnd() / 4096.0f - 0.5f; memcpy(k, &f, 4); break; }
        case LM_QTYPE_F16: case LM_QTYPE_BF16: k[1] = (unsigned char)((k[1] & 0x80) | 0x38); break;
        case LM_QTYPE_Q8_0: case LM_QTYPE_Q4_0: memcpy(k, &h, 2); break;
        case LM_QTYPE_Q4_K: memcpy(k, &h, 2); memcpy(k + 2, &h, 2); break;
        case LM_QTYPE_Q6_K: memcpy(k + 208, &h, 2); break;
        }
    }
}

/* Repeats fn until at least 0.3 s have passed; seconds per call. */
#define TIME_IT(secs, body)                                                \
    do {                                                                   \
        int reps_ = 0;                                                     \
        double t0_ = now(), t_;                                            \
        do {                                                               \
            body;                                                          \
            reps_++;                                                       \
        } while ((t_ = now() - t0_) < 0.3);                                \
        (secs) = t_ / reps_;                                               \
    } while (0)

int main(int argc, char **argv)
{
    int64_t rows = argc > 2 ? atoll(argv[1]) : 2048, n = argc > 2 ? atoll(argv[2]) : 2048;
    if (rows <= 0 || n <= 0 || n % 256) {
        fprintf(stderr, "bench_quant: rows > 0 and n a multiple of 256 expected\n");
        return 1;
    }
    openblas_set_num_threads(1);
    float *wf = malloc((size_t)(rows * n) * sizeof *wf), *x = malloc((size_t)n * sizeof *x);
    float *y = malloc((size_t)rows * sizeof *y), *panel = malloc((size_t)(64 * n) * sizeof *panel);
    unsigned char *wq = malloc(lm_quant_row_size(LM_QTYPE_F32, n) * (size_t)rows);
    if (!wf || !x || !y || !panel || !wq)
        return 1;
    fill(LM_QTYPE_F32, (unsigned char *)wf, (size_t)(rows * n) * 4);
    fill(LM_QTYPE_F32, (unsigned char *)x, (size_t)n * 4);
    double flop = 2.0 * (double)rows * (double)n, base;
    TIME_IT(base, cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)n, 1.0f, wf, (int)n, x,
                              1, 0.0f, y, 1));
    printf("matrix %lld x %lld, one thread\n", (long long)rows, (long long)n);
    printf("baseline cblas_sgemv F32: %.2f GFLOP/s\n", flop / base * 1e-9);
    printf("%-5s %12s %9s %16s\n", "type", "matvec GF/s", "vs sgemv", "panel Mvalues/s");
    static const uint32_t types[] = {LM_QTYPE_F32, LM_QTYPE_F16, LM_QTYPE_BF16, LM_QTYPE_Q8_0,
                                     LM_QTYPE_Q4_0, LM_QTYPE_Q4_K, LM_QTYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint32_t t = types[i];
        size_t rb = lm_quant_row_size(t, n);
        fill(t, wq, rb * (size_t)rows);
        double mv, pn;
        TIME_IT(mv, lm_quant_matvec_f32(t, wq, rb, rows, x, n, y));
        TIME_IT(pn, for (int64_t r0 = 0; r0 + 64 <= rows; r0 += 64)
                        lm_quant_dequant_rows(t, wq + (size_t)r0 * rb, rb, 64, n, panel, n));
        printf("%-5s %12.2f %9.2f %16.1f\n", lm_quant_name(t), flop / mv * 1e-9, base / mv,
               (double)(rows / 64 * 64) * (double)n / pn * 1e-6);
    }
    free(wf);
    free(x);
    free(y);
    free(panel);
    free(wq);
    return 0;
}
