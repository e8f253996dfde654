/* check_lm_q8mm.c: the integer Q8_0 products against references written
 * here from the contract in lm_q8mm.h, reading the original Q8_0 bytes (not
 * the packed layout) and sharing no code with src/lm_q8mm.c:
 *   - a quantiser that rounds in double (floor(|v| + 1/2));
 *   - the product formula in float (bit-exact oracle for GENERIC) and in
 *     double (GENERIC within float rounding of it);
 *   - the exact float product, within the bound 8-bit activations imply;
 *   - every instance equal to GENERIC bit for bit, writing only [c0, c1). */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "lm_q8mm.h"

#define U (0x1p-24) /* unit roundoff of float32 */

/* For inner loops: a passing ck_assert costs a message to Check's parent
 * process; this one costs a branch. */
#define REQUIRE(cond, ...)                \
    do {                                  \
        if (!(cond))                      \
            ck_abort_msg(__VA_ARGS__);    \
    } while (0)

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static int64_t rnd_in(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rnd() % (uint32_t)(hi - lo + 1));
}
static float rnd_unit(void) /* [-1, 1) */
{
    return (float)(rnd() & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* IEEE binary16 by its definition. */
static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static uint16_t blk_h(const unsigned char *w, size_t row_bytes, int64_t c, int64_t b)
{
    const unsigned char *p = w + (size_t)c * row_bytes + (size_t)b * 34;
    return (uint16_t)(p[0] | p[1] << 8);
}
static int8_t blk_q(const unsigned char *w, size_t row_bytes, int64_t c, int64_t b, int i)
{
    return (int8_t)w[(size_t)c * row_bytes + (size_t)b * 34 + 2 + i];
}

/* Weights modes: random q in [-128, 127] with tame scales; all -128; all 127;
 * random with a few scales zero, subnormal, or large. */
enum { W_RANDOM, W_MIN, W_MAX, W_ODD_SCALES, W_MODES };

static unsigned char *make_weights(int64_t n, int64_t k, size_t row_bytes, int mode)
{
    unsigned char *w = malloc((size_t)n * row_bytes);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < (size_t)n * row_bytes; i++)
        w[i] = (unsigned char)rnd();
    for (int64_t c = 0; c < n; c++)
        for (int64_t b = 0; b < k / 32; b++) {
            unsigned char *p = w + (size_t)c * row_bytes + (size_t)b * 34;
            uint16_t h = (uint16_t)(0x1800 | (rnd() & 0x83FF)); /* +-2^-9 .. 2^-8 */
            if (mode == W_ODD_SCALES) {
                uint32_t z = rnd() % 8;
                h = z == 0 ? 0 : z == 1 ? (uint16_t)(rnd() & 0x3FF) : z == 2 ? 0x7BFF : h;
            }
            p[0] = (unsigned char)h;
            p[1] = (unsigned char)(h >> 8);
            if (mode == W_MIN || mode == W_MAX)
                memset(p + 2, mode == W_MIN ? 0x80 : 0x7F, 32);
        }
    return w;
}

/* Activation modes: random; each block at +-amax; zero blocks mixed in;
 * denormal and tiny blocks; one huge value per block. */
enum { X_RANDOM, X_EXTREME, X_ZEROS, X_DENORMAL, X_HUGE, X_MODES };

static float *make_acts(int64_t m, int64_t k, int64_t ldx, int mode)
{
    float *x = malloc((size_t)(m * ldx) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (int64_t i = 0; i < m * ldx; i++)
        x[i] = rnd_unit() * 4.0f;
    for (int64_t r = 0; r < m; r++)
        for (int64_t b = 0; b < k / 32; b++) {
            float *p = x + r * ldx + b * 32;
            for (int i = 0; i < 32; i++) {
                switch (mode) {
                case X_EXTREME: p[i] = rnd() & 1 ? 3.0f : -3.0f; break;
                case X_ZEROS: if (b % 2 || rnd() % 3 == 0) p[i] = 0.0f; break;
                case X_DENORMAL: p[i] *= b % 2 ? 1e-39f : 1e-30f; break;
                case X_HUGE: if (i == (int)(b % 32)) p[i] = 1e30f; break;
                default: break;
                }
            }
        }
    return x;
}

/* The contract's quantiser, rounding in double: q = sign(v) floor(|v| + 1/2). */
static float ref_quant_block(const float *x, int *q)
{
    float amax = 0.0f;
    int nan = 0;
    for (int i = 0; i < 32; i++) {
        if (fabsf(x[i]) > amax)
            amax = fabsf(x[i]);
        nan |= isnan(x[i]) != 0;
    }
    if (amax == 0.0f) {
        for (int i = 0; i < 32; i++)
            q[i] = 0;
        return nan ? NAN : 0.0f;
    }
    float id = 127.0f / amax;
    for (int i = 0; i < 32; i++) {
        float v = x[i] * id;
        if (isnan(v)) {
            q[i] = 0;
            continue;
        }
        double r = floor(fabs((double)v) + 0.5);
        r = r > 127.0 ? 127.0 : r;
        q[i] = (int)(v < 0 ? -r : r);
    }
    return nan ? NAN : amax / 127.0f; /* a NaN is never hidden */
}

static unsigned char *quantize(const float *x, int64_t ldx, int64_t m, int64_t k)
{
    unsigned char *act = malloc((size_t)m * lm_q8mm_act_row_bytes(k));
    ck_assert_ptr_nonnull(act);
    lm_q8mm_act_quantize(x, ldx, m, k, act);
    return act;
}

/* Checks act against the reference quantiser through the documented layout. */
static void check_act(const float *x, int64_t ldx, int64_t m, int64_t k, const unsigned char *act)
{
    size_t rb = lm_q8mm_act_row_bytes(k), nb = (size_t)k / 32;
    for (int64_t r = 0; r < m; r++)
        for (size_t b = 0; b < nb; b++) {
            int q[32];
            float d = ref_quant_block(x + r * ldx + b * 32, q), got;
            memcpy(&got, act + r * rb + 4 * b, 4);
            REQUIRE(memcmp(&d, &got, 4) == 0 || (isnan(d) && isnan(got)),
                          "row %lld block %zu: d %a, want %a", (long long)r, b, got, d);
            for (int i = 0; i < 32; i++)
                REQUIRE((int)act[r * rb + LM_Q8MM_ACT_QOFF(nb) + b * 32 + i] - 128 == q[i],
                        "row %lld block %zu value %d: q %d, want %d", (long long)r, b, i,
                        (int)act[r * rb + LM_Q8MM_ACT_QOFF(nb) + b * 32 + i] - 128, q[i]);
        }
}

/* The contract's product in float from the original Q8_0 bytes. */
static float ref_formula(const unsigned char *w, size_t row_bytes, const float *x, int64_t k,
                         int64_t c)
{
    float acc = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        int q[32];
        float dx = ref_quant_block(x + b * 32, q);
        int64_t isum = 0;
        for (int i = 0; i < 32; i++)
            isum += (int64_t)q[i] * blk_q(w, row_bytes, c, b, i);
        float s = dx * (float)ref_f16(blk_h(w, row_bytes, c, b));
        acc = fmaf(s, (float)isum, acc);
    }
    return acc;
}

static int same_float(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

/* ---- quantisation ----------------------------------------------------------- */

/* Loop tests over instances: _i % N_ISAS picks one; 0 when this CPU lacks it. */
static const lm_q8mm_isa all_isas[] = {LM_Q8MM_ISA_GENERIC, LM_Q8MM_ISA_AVX2,
                                       LM_Q8MM_ISA_AVXVNNI, LM_Q8MM_ISA_AVX512VNNI};
#define N_ISAS 4
static int use_isa(int i)
{
    lm_q8mm_isa want = all_isas[i % N_ISAS];
    return lm_q8mm_set_isa(want) == want;
}

START_TEST(test_quant_rounding)
{
    if (!use_isa(_i))
        return;
    /* amax = 127: id = 1 exactly, so x * id = x and the halves are exact. */
    float x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f,
                   0.49999997f, -0.49999997f, 2.4999998f, 3.5000002f, 0.0f, -0.0f, 1e-40f};
    int want[32] = {127, 3, -3, 1, -1, 2, -2, 127, -127, 0, 0, 2, 4, 0, 0, 0};
    for (int i = 16; i < 32; i++) {
        x[i] = (float)(i - 16) - 7.5f; /* -7.5 .. 7.5 by 1: all halves */
        want[i] = x[i] < 0 ? -(int)(-x[i] + 0.5f) : (int)(x[i] + 0.5f);
    }
    unsigned char *act = quantize(x, 32, 1, 32);
    float d;
    memcpy(&d, act, 4);
    ck_assert(d == 1.0f);
    for (int i = 0; i < 32; i++)
        ck_assert_msg((int)act[64 + i] - 128 == want[i], "x %a: q %d, want %d", x[i],
                      (int)act[64 + i] - 128, want[i]);
    free(act);
}
END_TEST

START_TEST(test_quant_special_blocks)
{
    if (!use_isa(_i))
        return;
    float x[5 * 32];
    for (int i = 0; i < 5 * 32; i++)
        x[i] = (float)(i % 32) - 16.0f;
    for (int i = 0; i < 32; i++)
        x[i] = 0.0f;          /* block 0: amax 0 */
    x[32 + 5] = 1e30f;        /* block 1: one huge value swamps the rest */
    x[64 + 3] = NAN;          /* block 2: a NaN gives d = NaN, quantises to 0 */
    x[96 + 7] = -INFINITY;    /* block 3: Inf gives d = Inf and q = 0 */
    for (int i = 0; i < 32; i++)
        x[128 + i] = i % 2 ? 1e-44f : -3e-44f; /* block 4: denormal amax, id = Inf */
    unsigned char *act = quantize(x, 5 * 32, 1, 5 * 32);
    check_act(x, 5 * 32, 1, 5 * 32, act);
    float d[5];
    memcpy(d, act, sizeof d);
    size_t qo = LM_Q8MM_ACT_QOFF(5);
    ck_assert(d[0] == 0.0f && d[1] == 1e30f / 127.0f && isnan(d[2]) && isinf(d[3]));
    for (int i = 0; i < 32; i++) {
        ck_assert_int_eq(act[qo + i], 128);
        ck_assert_int_eq((int)act[qo + 32 + i] - 128, i == 5 ? 127 : 0);
        ck_assert_int_eq((int)act[qo + 96 + i] - 128, 0);
        ck_assert_int_eq((int)act[qo + 128 + i] - 128, i % 2 ? 127 : -127);
    }
    ck_assert_int_eq(act[qo + 64 + 3], 128);
    ck_assert_int_eq((int)act[qo + 64 + 0] - 128, -127); /* -16 is the amax */
    free(act);
}
END_TEST

START_TEST(test_quant_random)
{
    if (!use_isa(_i))
        return;
    rng_state = 0x9E3779B97F4A7C15u + (uint64_t)_i;
    for (int mode = 0; mode < X_MODES; mode++) {
        int64_t m = rnd_in(1, 9), k = 32 * rnd_in(1, 20), ldx = k + rnd_in(0, 5);
        float *x = make_acts(m, k, ldx, mode);
        unsigned char *act = quantize(x, ldx, m, k);
        check_act(x, ldx, m, k, act);
        free(x);
        free(act);
    }
}
END_TEST

START_TEST(test_act_row_bytes)
{
    ck_assert_uint_eq(lm_q8mm_act_row_bytes(0), 0);
    ck_assert_uint_eq(lm_q8mm_act_row_bytes(48), 0);
    ck_assert_uint_eq(lm_q8mm_act_row_bytes(-32), 0);
    for (int64_t k = 32; k <= 4096; k += 32) {
        size_t rb = lm_q8mm_act_row_bytes(k), nb = (size_t)k / 32;
        ck_assert(rb % 64 == 0 && rb >= LM_Q8MM_ACT_QOFF(nb) + 32 * nb &&
                  LM_Q8MM_ACT_QOFF(nb) >= 4 * nb && rb < 36 * nb + 128);
    }
}
END_TEST

/* ---- weights ---------------------------------------------------------------- */

START_TEST(test_weights_bad_shapes)
{
    unsigned char buf[34 * 4] = {0};
    struct { size_t rb; int64_t n, k; } bad[] = {
        {34, 1, 48}, {34, 1, 0}, {34, 1, -32}, {34, 0, 32}, {34, -1, 32}, {33, 1, 32},
        {67, 2, 64}, {0, 1, 32},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_q8mm_weights *w = (lm_q8mm_weights *)buf; /* must be reset to NULL */
        dl_error err = {0};
        ck_assert_int_eq(lm_q8mm_weights_new(buf, bad[i].rb, bad[i].n, bad[i].k, &w, &err),
                         DL_ERR_USAGE);
        ck_assert_ptr_null(w);
        ck_assert_int_eq(err.code, DL_ERR_USAGE);
        ck_assert(err.message[0] != '\0');
        ck_assert_int_eq(lm_q8mm_weights_new(buf, bad[i].rb, bad[i].n, bad[i].k, &w, NULL),
                         DL_ERR_USAGE);
    }
    lm_q8mm_weights *w = NULL;
    ck_assert_int_eq(lm_q8mm_weights_new(NULL, 34, 1, 32, &w, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(lm_q8mm_weights_new(buf, 34, 1, 32, NULL, NULL), DL_ERR_USAGE);
    /* Good shapes, padded rows included. */
    ck_assert_int_eq(lm_q8mm_weights_new(buf, 34, 4, 32, &w, NULL), DL_OK);
    ck_assert_int_eq(lm_q8mm_weights_rows(w), 4);
    ck_assert_int_eq(lm_q8mm_weights_cols(w), 32);
    ck_assert_uint_ge(lm_q8mm_weights_bytes(w), 640);
    lm_q8mm_weights_free(w);
    ck_assert_int_eq(lm_q8mm_weights_new(buf, 68, 2, 32, &w, NULL), DL_OK);
    lm_q8mm_weights_free(w);
    lm_q8mm_weights_free(NULL);
    ck_assert_uint_eq(lm_q8mm_weights_bytes(NULL), 0);
}
END_TEST

/* ---- products ---------------------------------------------------------------- */

typedef struct prob {
    int64_t m, n, k, ldx, ldy, c0, c1;
    size_t row_bytes;
    unsigned char *wq, *act;
    float *x;
    lm_q8mm_weights *w;
} prob;

static void prob_make(prob *p, int64_t m, int64_t n, int64_t k, int wmode, int xmode)
{
    p->m = m, p->n = n, p->k = k;
    p->ldx = k + rnd_in(0, 3);
    p->row_bytes = (size_t)(k / 32 * 34 + rnd_in(0, 1) * rnd_in(1, 40));
    p->c0 = rnd_in(0, n - 1);
    p->c1 = rnd_in(p->c0 + 1, n);
    if (rnd() % 3 == 0)
        p->c0 = 0, p->c1 = n;
    p->ldy = n + rnd_in(0, 1) * rnd_in(1, 20);
    p->wq = make_weights(n, k, p->row_bytes, wmode);
    p->x = make_acts(m, k, p->ldx, xmode);
    p->act = quantize(p->x, p->ldx, m, k);
    dl_error err = {0};
    ck_assert_int_eq(lm_q8mm_weights_new(p->wq, p->row_bytes, n, k, &p->w, &err), DL_OK);
}

static void prob_free(prob *p)
{
    lm_q8mm_weights_free(p->w);
    free(p->wq);
    free(p->x);
    free(p->act);
}

static const uint32_t CANARY = 0x7FA5C0DEu; /* a NaN no kernel produces */

/* y of the problem under the current instance, canaries around [c0, c1). */
static float *prob_run(const prob *p)
{
    size_t len = (size_t)(p->m * p->ldy + 16);
    float *y = malloc(len * sizeof *y);
    ck_assert_ptr_nonnull(y);
    for (size_t i = 0; i < len; i++)
        memcpy(&y[i], &CANARY, 4);
    lm_q8mm_gemm(p->w, p->act, p->m, p->c0, p->c1, y, p->ldy);
    for (size_t i = 0; i < len; i++) {
        int64_t r = (int64_t)i / p->ldy, c = (int64_t)i % p->ldy;
        int inside = r < p->m && c >= p->c0 && c < p->c1;
        uint32_t bits;
        memcpy(&bits, &y[i], 4);
        REQUIRE(inside || bits == CANARY, "element (%lld, %lld) outside [%lld, %lld) written",
                      (long long)r, (long long)c, (long long)p->c0, (long long)p->c1);
    }
    return y;
}

/* GENERIC == the float formula bit for bit, and within float rounding of the
 * same formula evaluated in double; the whole product within the 8-bit
 * activation bound of the exact product of the float inputs. */
static void check_against_refs(const prob *p, const float *y)
{
    int64_t nb = p->k / 32;
    for (int64_t r = 0; r < p->m; r++) {
        const float *x = p->x + r * p->ldx;
        for (int64_t c = p->c0; c < p->c1; c++) {
            float got = y[r * p->ldy + c];
            float want = ref_formula(p->wq, p->row_bytes, x, p->k, c);
            REQUIRE(same_float(got, want), "(%lld, %lld): %a, formula %a", (long long)r,
                          (long long)c, got, want);
            /* Double evaluation; the float one rounds each of 2 nb
             * operations: |err| <= (2 nb + 1) u sum |terms| (first order). */
            double dsum = 0, dabs = 0, exact = 0, qbound = 0;
            for (int64_t b = 0; b < nb; b++) {
                int q[32];
                float dx = ref_quant_block(x + b * 32, q), amax = 0.0f;
                double dw = ref_f16(blk_h(p->wq, p->row_bytes, c, b)), wabs = 0;
                int64_t isum = 0;
                for (int i = 0; i < 32; i++) {
                    int wq = blk_q(p->wq, p->row_bytes, c, b, i);
                    isum += (int64_t)q[i] * wq;
                    exact += (double)x[b * 32 + i] * (dw * wq);
                    wabs += fabs(dw * wq);
                    amax = fmaxf(amax, fabsf(x[b * 32 + i]));
                }
                double term = (double)dx * dw * (double)isum;
                dsum += term;
                dabs += fabs(term);
                /* |x_i - dx q_i| <= amax/127 (1/2 + 4 * 127 u): the 1/2 of
                 * rounding, plus three roundings (id, x id, dx) on |q| <= 127;
                 * a subnormal dx adds 2^-150 |q|.  A denormal amax (id =
                 * +Inf, q = +-127): |x_i - dx q_i| <= amax + dx 127. */
                if (amax != 0.0f && isinf(127.0f / amax))
                    qbound += 2.5 * (double)amax * wabs;
                else
                    qbound += ((double)amax / 127.0 * (0.5 + 4 * 127 * U) + 127 * 0x1p-150) * wabs;
            }
            /* Plus underflow: each s = dx dw may lose 2^-150 absolutely,
             * times |isum| < 2^19. */
            double fl = (2.0 * (double)nb + 2.0) * U * dabs + (double)nb * 0x1p-130;
            REQUIRE(fabs((double)got - dsum) <= fl, "(%lld, %lld): %a vs double %a",
                          (long long)r, (long long)c, got, dsum);
            REQUIRE(fabs((double)got - exact) <= qbound + fl,
                          "(%lld, %lld): %g vs exact %g, bound %g", (long long)r, (long long)c,
                          (double)got, exact, qbound + fl);
        }
    }
}

/* Random problems under GENERIC against the references (finite, tame data). */
START_TEST(test_generic_refs)
{
    rng_state = 0xD1B54A32D192ED03u + (uint64_t)_i * 7919;
    ck_assert_int_eq(lm_q8mm_set_isa(LM_Q8MM_ISA_GENERIC), LM_Q8MM_ISA_GENERIC);
    for (int it = 0; it < 6; it++) {
        prob p;
        int wmode = it % 3, xmode = (int)(rnd() % X_MODES);
        prob_make(&p, rnd_in(1, 20), rnd_in(1, 70), 32 * rnd_in(1, 24), wmode, xmode);
        float *y = prob_run(&p);
        check_against_refs(&p, y);
        free(y);
        prob_free(&p);
    }
    lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
}
END_TEST

/* Every instance == GENERIC bit for bit.  _i: instance (AVX2, AVX-VNNI,
 * AVX-512 VNNI) times rounds of random shapes and modes; an instance this
 * CPU lacks is skipped. */
static const lm_q8mm_isa other_isas[] = {LM_Q8MM_ISA_AVX2, LM_Q8MM_ISA_AVXVNNI,
                                         LM_Q8MM_ISA_AVX512VNNI};
#define N_OTHER_ISAS 3
#define ROUNDS 8

START_TEST(test_instances_agree)
{
    lm_q8mm_isa isa = other_isas[_i / ROUNDS];
    if (lm_q8mm_set_isa(isa) != isa) {
        lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
        return; /* not on this CPU */
    }
    rng_state = 0x2545F4914F6CDD1Du + (uint64_t)_i * 104729;
    for (int it = 0; it < 8; it++) {
        prob p;
        int64_t m = it == 0 ? 130 : rnd_in(1, 130), n = it == 1 ? 300 : rnd_in(1, 300);
        int64_t k = 32 * rnd_in(1, it == 2 ? 32 : rnd_in(1, 32));
        prob_make(&p, m, n, k, (int)(rnd() % W_MODES), (int)(rnd() % X_MODES));
        lm_q8mm_set_isa(isa);
        float *y = prob_run(&p);
        lm_q8mm_set_isa(LM_Q8MM_ISA_GENERIC);
        float *ref = prob_run(&p);
        for (int64_t r = 0; r < m; r++)
            for (int64_t c = p.c0; c < p.c1; c++)
                REQUIRE(same_float(y[r * p.ldy + c], ref[r * p.ldy + c]),
                              "%s m %lld n %lld k %lld (%lld, %lld): %a, generic %a",
                              lm_q8mm_isa_name(isa), (long long)m, (long long)n, (long long)k,
                              (long long)r, (long long)c, y[r * p.ldy + c], ref[r * p.ldy + c]);
        free(y);
        free(ref);
        prob_free(&p);
    }
    lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
}
END_TEST

/* Every (c0, c1) of a small problem: tile boundaries and tails everywhere. */
START_TEST(test_all_ranges)
{
    lm_q8mm_isa isa = _i == 0 ? LM_Q8MM_ISA_GENERIC : other_isas[_i - 1];
    if (lm_q8mm_set_isa(isa) != isa)
        return;
    rng_state = 0x94D049BB133111EBu;
    prob p;
    prob_make(&p, 7, 37, 64, W_MIN, X_EXTREME);
    float ref[7][37];
    for (int64_t r = 0; r < p.m; r++)
        for (int64_t c = 0; c < p.n; c++)
            ref[r][c] = ref_formula(p.wq, p.row_bytes, p.x + r * p.ldx, p.k, c);
    for (int64_t c0 = 0; c0 < p.n; c0++)
        for (int64_t c1 = c0 + 1; c1 <= p.n; c1++) {
            p.c0 = c0, p.c1 = c1;
            float *y = prob_run(&p);
            for (int64_t r = 0; r < p.m; r++)
                for (int64_t c = c0; c < c1; c++)
                    REQUIRE(same_float(y[r * p.ldy + c], ref[r][c]), "[%lld, %lld) (%lld, %lld)",
                            (long long)c0, (long long)c1, (long long)r, (long long)c);
            free(y);
        }
    prob_free(&p);
    lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
}
END_TEST

/* Non-finite activations and scales: no crash, instances still agree, and
 * an Inf or NaN activation turns its row to NaN (the documented behaviour:
 * a NaN is never hidden). */
START_TEST(test_non_finite)
{
    rng_state = 0xBF58476D1CE4E5B9u;
    prob p;
    prob_make(&p, 5, 40, 96, W_ODD_SCALES, X_RANDOM);
    p.c0 = 0, p.c1 = p.n;
    p.x[0 * p.ldx + 40] = INFINITY;
    p.x[1 * p.ldx + 3] = NAN;
    for (int i = 0; i < 32; i++)
        p.x[2 * p.ldx + 32 + i] = NAN;
    lm_q8mm_act_quantize(p.x, p.ldx, p.m, p.k, p.act);
    check_act(p.x, p.ldx, p.m, p.k, p.act);
    lm_q8mm_set_isa(LM_Q8MM_ISA_GENERIC);
    float *ref = prob_run(&p);
    for (int64_t c = 0; c < p.n; c++) {
        ck_assert(isnan(ref[c]) && isnan(ref[p.ldy + c]) && isnan(ref[2 * p.ldy + c]));
        for (int64_t r = 1; r < p.m; r++)
            REQUIRE(same_float(ref[r * p.ldy + c],
                               ref_formula(p.wq, p.row_bytes, p.x + r * p.ldx, p.k, c)),
                    "(%lld, %lld)", (long long)r, (long long)c);
    }
    for (size_t i = 0; i < sizeof other_isas / sizeof other_isas[0]; i++) {
        if (lm_q8mm_set_isa(other_isas[i]) != other_isas[i])
            continue;
        float *y = prob_run(&p);
        for (int64_t r = 0; r < p.m; r++)
            for (int64_t c = 0; c < p.n; c++)
                REQUIRE(same_float(y[r * p.ldy + c], ref[r * p.ldy + c]), "%s (%lld, %lld)",
                        lm_q8mm_isa_name(other_isas[i]), (long long)r, (long long)c);
        free(y);
    }
    free(ref);
    prob_free(&p);
    lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
}
END_TEST

/* The activation bound of check_against_refs is tight, not a loose guess:
 * with amax = 127 (d = id = 1) and every other x_i just below a half-integer,
 * each rounds down by almost 1/2 and, all weights being +127, the errors add
 * up to 31/32 of the bound. */
START_TEST(test_bound_is_tight)
{
    if (!use_isa(_i))
        return;
    unsigned char wq[34];
    wq[0] = 0x00, wq[1] = 0x3C; /* fp16 1.0 */
    memset(wq + 2, 127, 32);
    float x[32];
    x[0] = 127.0f;
    for (int i = 1; i < 32; i++)
        x[i] = (float)i + 0.4999f;
    lm_q8mm_weights *w = NULL;
    ck_assert_int_eq(lm_q8mm_weights_new(wq, 34, 1, 32, &w, NULL), DL_OK);
    unsigned char *act = quantize(x, 32, 1, 32);
    float y;
    lm_q8mm_gemm(w, act, 1, 0, 1, &y, 1);
    double exact = 0;
    for (int i = 0; i < 32; i++)
        exact += 127.0 * x[i];
    double bound = (127.0 / 127.0) * (0.5 + 4 * 127 * U) * 32 * 127 + 4 * U * fabs((double)y);
    double err = fabs((double)y - exact);
    ck_assert_msg(err <= bound && err >= 0.9 * bound, "error %g, bound %g", err, bound);
    lm_q8mm_weights_free(w);
    free(act);
    lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO);
}
END_TEST

/* Threads sharing one packed matrix, each on its own column range (the way
 * the BLAS backend splits a product), give the single call's result. */
typedef struct piece {
    const prob *p;
    int64_t r0, m, c0, c1;
    float *y;
} piece;

static void *piece_run(void *arg)
{
    const piece *pc = arg;
    size_t rb = lm_q8mm_act_row_bytes(pc->p->k);
    lm_q8mm_gemm(pc->p->w, pc->p->act + (size_t)pc->r0 * rb, pc->m, pc->c0, pc->c1,
                 pc->y + pc->r0 * pc->p->ldy, pc->p->ldy);
    return NULL;
}

START_TEST(test_threads)
{
    rng_state = 0x5851F42D4C957F2Du;
    prob p;
    prob_make(&p, 100, 250, 320, W_RANDOM, X_RANDOM);
    p.c0 = 0, p.c1 = p.n;
    float *ref = prob_run(&p);
    float *y = malloc((size_t)(p.m * p.ldy) * sizeof *y);
    ck_assert_ptr_nonnull(y);
    /* Four pieces: rows split at 37, columns at 101 (mid-tile). */
    piece pcs[4] = {{&p, 0, 37, 0, 101, y}, {&p, 0, 37, 101, 250, y},
                    {&p, 37, 63, 0, 101, y}, {&p, 37, 63, 101, 250, y}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, piece_run, &pcs[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int64_t r = 0; r < p.m; r++)
        for (int64_t c = 0; c < p.n; c++)
            REQUIRE(same_float(y[r * p.ldy + c], ref[r * p.ldy + c]), "(%lld, %lld)",
                    (long long)r, (long long)c);
    free(y);
    free(ref);
    prob_free(&p);
}
END_TEST

START_TEST(test_isa_names)
{
    ck_assert_str_eq(lm_q8mm_isa_name(LM_Q8MM_ISA_GENERIC), "generic");
    ck_assert_str_eq(lm_q8mm_isa_name(LM_Q8MM_ISA_AVX2), "avx2");
    ck_assert_str_eq(lm_q8mm_isa_name(LM_Q8MM_ISA_AVX512VNNI), "avx512vnni");
    ck_assert_str_eq(lm_q8mm_isa_name(LM_Q8MM_ISA_AVXVNNI), "avxvnni");
    ck_assert_str_eq(lm_q8mm_isa_name((lm_q8mm_isa)42), "unknown");
    ck_assert_int_eq(lm_q8mm_set_isa(LM_Q8MM_ISA_GENERIC), LM_Q8MM_ISA_GENERIC);
    ck_assert_int_ne(lm_q8mm_set_isa(LM_Q8MM_ISA_AUTO), LM_Q8MM_ISA_AUTO);
}
END_TEST

static Suite *q8mm_suite(void)
{
    Suite *s = suite_create("lm_q8mm");
    TCase *tq = tcase_create("quantise");
    tcase_add_loop_test(tq, test_quant_rounding, 0, N_ISAS);
    tcase_add_loop_test(tq, test_quant_special_blocks, 0, N_ISAS);
    tcase_add_loop_test(tq, test_quant_random, 0, 3 * N_ISAS);
    tcase_add_test(tq, test_act_row_bytes);
    tcase_add_test(tq, test_weights_bad_shapes);
    tcase_add_test(tq, test_isa_names);
    suite_add_tcase(s, tq);
    TCase *tp = tcase_create("products");
    tcase_add_loop_test(tp, test_generic_refs, 0, 4);
    tcase_add_loop_test(tp, test_instances_agree, 0, N_OTHER_ISAS * ROUNDS);
    tcase_add_loop_test(tp, test_all_ranges, 0, 1 + N_OTHER_ISAS);
    tcase_add_test(tp, test_non_finite);
    tcase_add_loop_test(tp, test_bound_is_tight, 0, N_ISAS);
    tcase_add_test(tp, test_threads);
    tcase_set_timeout(tp, 120);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    return dl_test_run(q8mm_suite());
}
