/* bench_q8mm.c: the integer Q8_0 product (lm_q8mm) against the BLAS
 * backend's paths, one thread, measured in the same run.
 *
 * For M = 128 activation rows and (N, K) weight shapes of delift-mini and a
 * Qwen2.5-0.5B-like model, GFLOP/s (2 M N K / seconds) of
 *   a  sgemm:  cblas_sgemm on weights dequantised beforehand (the ceiling
 *              of the float path);
 *   b  panel:  lm_quant_dequant_rows of 256-row panels + cblas_sgemm each
 *              (what src/lm_backend_blas.c does for Q8_0 today);
 *   c  q8mm:   lm_q8mm_act_quantize + lm_q8mm_gemm (weights packed once,
 *              outside the timing, as a backend would at load);
 * then c/a and c/b, and the largest |c - a| relative to max |a| (the 8-bit
 * activation error, a sanity check).  Each repetition times a, b and c in
 * turn (batches of about 10 ms); the best of the repetitions is reported,
 * so a noisy shared machine penalises all three alike.
 * Usage: bench_q8mm [reps [generic|avx2|avx512vnni]]   (default 5, auto)
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "lm_q8mm.h"
#include "lm_quant.h"

#define M 128
#define PANEL 256

static uint64_t rng = 0x853C49E6748FEA9Bu;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 20);
}

typedef struct shape {
    const char *model;
    int n, k;
} shape;

static const shape shapes[] = {
    {"delift-mini", 256, 256}, {"delift-mini", 128, 256},  {"delift-mini", 704, 256},
    {"delift-mini", 256, 704}, {"delift-mini", 4096, 256}, {"qwen0.5b", 896, 896},
    {"qwen0.5b", 4864, 896},   {"qwen0.5b", 896, 4864},
};

typedef struct bufs {
    int n, k;
    size_t row_bytes;
    unsigned char *wq, *act;
    float *wf, *x, *y, *panel;
    lm_q8mm_weights *w;
} bufs;

static void run_a(bufs *b)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, b->n, b->k, 1.0f, b->x, b->k, b->wf,
                b->k, 0.0f, b->y, b->n);
}

static void run_b(bufs *b)
{
    for (int j0 = 0; j0 < b->n; j0 += PANEL) {
        int nc = b->n - j0 < PANEL ? b->n - j0 : PANEL;
        lm_quant_dequant_rows(LM_QTYPE_Q8_0, b->wq + (size_t)j0 * b->row_bytes, b->row_bytes, nc,
                              b->k, b->panel, b->k);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nc, b->k, 1.0f, b->x, b->k,
                    b->panel, b->k, 0.0f, b->y + j0, b->n);
    }
}

static void run_c(bufs *b)
{
    lm_q8mm_act_quantize(b->x, b->k, M, b->k, b->act);
    lm_q8mm_gemm(b->w, b->act, M, 0, b->n, b->y, b->n);
}

/* Seconds per call of fn over a batch of iters calls. */
static double time_batch(void (*fn)(bufs *), bufs *b, int iters)
{
    double t = now();
    for (int i = 0; i < iters; i++)
        fn(b);
    return (now() - t) / iters;
}

static int bufs_init(bufs *b, int n, int k)
{
    memset(b, 0, sizeof *b);
    b->n = n, b->k = k;
    b->row_bytes = lm_quant_row_size(LM_QTYPE_Q8_0, k);
    b->wq = malloc((size_t)n * b->row_bytes);
    b->wf = malloc((size_t)n * k * sizeof(float));
    b->x = malloc((size_t)M * k * sizeof(float));
    b->y = malloc((size_t)M * n * sizeof(float));
    b->panel = malloc((size_t)PANEL * k * sizeof(float));
    b->act = malloc((size_t)M * lm_q8mm_act_row_bytes(k));
    if (!b->wq || !b->wf || !b->x || !b->y || !b->panel || !b->act)
        return -1;
    for (size_t i = 0; i < (size_t)n * b->row_bytes; i++)
        b->wq[i] = (unsigned char)rnd();
    for (size_t blk = 0; blk < (size_t)n * b->row_bytes; blk += 34) {
        uint16_t h = (uint16_t)(0x2000 | (rnd() & 0x83FF)); /* tame scales */
        memcpy(b->wq + blk, &h, 2);
    }
    lm_quant_dequant_rows(LM_QTYPE_Q8_0, b->wq, b->row_bytes, n, k, b->wf, k);
    for (size_t i = 0; i < (size_t)M * k; i++)
        b->x[i] = (float)rnd() / 2048.0f - 1.0f;
    return lm_q8mm_weights_new(b->wq, b->row_bytes, n, k, &b->w, NULL) == DL_OK ? 0 : -1;
}

static void bufs_free(bufs *b)
{
    lm_q8mm_weights_free(b->w);
    free(b->wq);
    free(b->wf);
    free(b->x);
    free(b->y);
    free(b->panel);
    free(b->act);
}

/* Largest |c - a| over max |a|. */
static double rel_err(bufs *b)
{
    float *ya = malloc((size_t)M * b->n * sizeof(float));
    if (!ya)
        return NAN;
    run_a(b);
    memcpy(ya, b->y, (size_t)M * b->n * sizeof(float));
    run_c(b);
    double emax = 0, amax = 0;
    for (size_t i = 0; i < (size_t)M * b->n; i++) {
        emax = fmax(emax, fabs((double)b->y[i] - ya[i]));
        amax = fmax(amax, fabs((double)ya[i]));
    }
    free(ya);
    return emax / amax;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    lm_q8mm_isa want = LM_Q8MM_ISA_AUTO;
    if (argc > 2) {
        for (int i = LM_Q8MM_ISA_GENERIC; i <= LM_Q8MM_ISA_AVXVNNI; i++)
            if (!strcmp(argv[2], lm_q8mm_isa_name((lm_q8mm_isa)i)))
                want = (lm_q8mm_isa)i;
        if (want == LM_Q8MM_ISA_AUTO) {
            fprintf(stderr, "bench_q8mm: unknown instance '%s'\n", argv[2]);
            return 1;
        }
    }
    if (reps < 1 || argc > 3) {
        fprintf(stderr, "usage: bench_q8mm [reps [generic|avx2|avxvnni|avx512vnni]]\n");
        return 1;
    }
    openblas_set_num_threads(1);
    lm_q8mm_isa isa = lm_q8mm_set_isa(want);
    printf("bench_q8mm: M = %d, one thread, best of %d, instance %s\n", M, reps,
           lm_q8mm_isa_name(isa));
    printf("%-12s %5s %5s %9s %9s %9s %6s %6s %9s\n", "model", "N", "K", "a:sgemm", "b:panel",
           "c:q8mm", "c/a", "c/b", "rel.err");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        bufs b;
        if (bufs_init(&b, shapes[s].n, shapes[s].k)) {
            fprintf(stderr, "bench_q8mm: out of memory\n");
            bufs_free(&b);
            return 3;
        }
        double err = rel_err(&b);
        /* Batch size: about 10 ms of the sgemm. */
        double t1 = time_batch(run_a, &b, 1);
        int iters = (int)(0.01 / (t1 > 1e-6 ? t1 : 1e-6)) + 1;
        double best[3] = {1e30, 1e30, 1e30};
        void (*fns[3])(bufs *) = {run_a, run_b, run_c};
        for (int r = 0; r < reps; r++)
            for (int f = 0; f < 3; f++) {
                double t = time_batch(fns[f], &b, iters);
                best[f] = t < best[f] ? t : best[f];
            }
        double flop = 2.0 * M * shapes[s].n * (double)shapes[s].k, g[3];
        for (int f = 0; f < 3; f++)
            g[f] = flop / best[f] / 1e9;
        printf("%-12s %5d %5d %9.1f %9.1f %9.1f %6.2f %6.2f %9.2e\n", shapes[s].model,
               shapes[s].n, shapes[s].k, g[0], g[1], g[2], g[2] / g[0], g[2] / g[1], err);
        bufs_free(&b);
    }
    printf("(GFLOP/s; a: sgemm on f32 weights, b: 256-row Q8_0 panels + sgemm, "
           "c: act_quantize + lm_q8mm_gemm)\n");
    return 0;
}
