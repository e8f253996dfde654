/* check_lm_quant.c: tensor types against references written here from the
 * format definitions, in the most direct form (ldexp arithmetic, value by
 * value packing), sharing no code with src/lm_quant.c. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "lm_quant.h"

/* ---- independent references ------------------------------------------- */

/* IEEE binary16 by its definition: (-1)^s 2^(e-15) (1 + m/1024), subnormal
 * 2^-14 (m/1024), e = 31 Inf/NaN. */
static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* bfloat16: 8-bit exponent (bias 127), 7-bit mantissa. */
static double ref_bf16(uint16_t h)
{
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 0)
        v = ldexp(m, -133);
    else if (e == 255)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(128 + m, e - 134);
    return s ? -v : v;
}

/* Nearest half to x (ties to even mantissa) by search over the ordered
 * positive halfs; beyond the largest finite half + half an ulp: Inf. */
static uint16_t ref_to_f16(double x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x);
    if (a >= 65520.0)
        return sign | 0x7C00;
    int lo = 0, hi = 0x7BFF; /* largest h with ref_f16(h) <= a */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ref_f16((uint16_t)mid) <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    double below = ref_f16((uint16_t)lo), above = ref_f16((uint16_t)(lo + 1));
    int pick = lo;
    if (a - below > above - a || (a - below == above - a && (lo & 1)))
        pick = lo + 1;
    return sign | (uint16_t)pick;
}

static uint64_t rng = 0x243F6A8885A308D3u;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rnd_unit(void) { return (float)rnd() / 4294967296.0f * 2.0f - 1.0f; }

/* Loop index -> kernel instance: every kernel test runs on both. */
static void use_isa(int i)
{
    lm_quant_isa got = lm_quant_set_isa(i ? LM_QUANT_ISA_AVX2 : LM_QUANT_ISA_GENERIC);
    if (i && got != LM_QUANT_ISA_AVX2)
        printf("note: no AVX2 on this CPU, the AVX2 runs test the generic kernels again\n");
}

/* ---- fp16 / bf16 -------------------------------------------------------- */

START_TEST(test_f16_all_halfs)
{
    use_isa(_i);
    /* Plain ifs in the loop: a ck_assert per value costs a pipe write. */
    int bad = 0;
    uint32_t first = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = ref_f16((uint16_t)h);
        float got = lm_quant_f16_to_f32((uint16_t)h);
        int ok;
        if (isnan(want))
            ok = isnan(got) && !!signbit(got) == (int)(h >> 15);
        else /* the value, its sign (zeros), and back exactly */
            ok = (double)got == want && !!signbit(got) == !!signbit(want) &&
                 lm_quant_f32_to_f16(got) == h;
        /* Row dequantisation agrees with the scalar (bitwise, NaNs aside). */
        uint16_t hv = (uint16_t)h;
        float row;
        lm_quant_dequant_row(LM_QTYPE_F16, &hv, &row, 1);
        ok = ok && (isnan(want) ? isnan(row) : memcmp(&row, &got, 4) == 0);
        if (!ok && bad++ == 0)
            first = h;
    }
    ck_assert_msg(bad == 0, "%d halfs wrong, first %04x", bad, first);
}
END_TEST

START_TEST(test_bf16_all)
{
    use_isa(_i);
    int bad = 0;
    uint32_t first = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = ref_bf16((uint16_t)h);
        float got = lm_quant_bf16_to_f32((uint16_t)h);
        int ok = isnan(want) ? isnan(got) : (double)got == want && lm_quant_f32_to_bf16(got) == h;
        if (!ok && bad++ == 0)
            first = h;
    }
    ck_assert_msg(bad == 0, "%d bf16 values wrong, first %04x", bad, first);
    /* Rounding to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7. */
    ck_assert_uint_eq(lm_quant_f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);
    ck_assert_uint_eq(lm_quant_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
    ck_assert_uint_eq(lm_quant_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);
}
END_TEST

START_TEST(test_f32_to_f16_rounding)
{
    /* Random floats over the whole half range and beyond, plus every
     * midpoint between neighbouring halfs (the ties). */
    int bad = 0, ties = 0;
    float first = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = rnd();
        /* exponents 2^-30 .. 2^17 */
        u = (u & 0x807FFFFFu) | ((uint32_t)(97 + rnd() % 48) << 23);
        float f;
        memcpy(&f, &u, 4);
        if (lm_quant_f32_to_f16(f) != ref_to_f16(f) && bad++ == 0)
            first = f;
    }
    ck_assert_msg(bad == 0, "%d roundings wrong, first %a", bad, (double)first);
    for (uint32_t h = 0; h < 0x7BFF; h++) {
        double mid = (ref_f16((uint16_t)h) + ref_f16((uint16_t)(h + 1))) / 2;
        float f = (float)mid;
        if ((double)f != mid)
            continue; /* not representable in float: no exact tie */
        ties++;
        if ((lm_quant_f32_to_f16(f) != ref_to_f16(mid) || lm_quant_f32_to_f16(-f) != ref_to_f16(-mid)) &&
            bad++ == 0)
            first = f;
    }
    ck_assert_msg(bad == 0, "%d ties wrong, first %a", bad, (double)first);
    ck_assert_int_gt(ties, 30000);
    ck_assert_uint_eq(lm_quant_f32_to_f16(65519.0f), 0x7BFF);
    ck_assert_uint_eq(lm_quant_f32_to_f16(65520.0f), 0x7C00);
    ck_assert_uint_eq(lm_quant_f32_to_f16(-INFINITY), 0xFC00);
    ck_assert(isnan(lm_quant_f16_to_f32(lm_quant_f32_to_f16(NAN))));
    ck_assert_uint_eq(lm_quant_f32_to_f16(0x1p-25f), 0);      /* tie to even zero */
    ck_assert_uint_eq(lm_quant_f32_to_f16(0x1.01p-25f), 1);   /* just above the tie */
}
END_TEST

/* ---- the type table ----------------------------------------------------- */

START_TEST(test_type_table)
{
    static const struct { uint32_t t; int64_t block; size_t size; int sup; } want[] = {
        {LM_QTYPE_F32, 1, 4, 1},      {LM_QTYPE_F16, 1, 2, 1},     {LM_QTYPE_BF16, 1, 2, 1},
        {LM_QTYPE_Q8_0, 32, 34, 1},   {LM_QTYPE_Q4_0, 32, 18, 1},  {LM_QTYPE_Q4_K, 256, 144, 1},
        {LM_QTYPE_Q6_K, 256, 210, 1}, {LM_QTYPE_Q5_K, 256, 176, 1}, {LM_QTYPE_Q4_1, 32, 20, 1},
        {LM_QTYPE_Q5_0, 32, 22, 1},   {LM_QTYPE_Q5_1, 32, 24, 1},  {10, 256, 84, 0},
        {20, 32, 18, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const lm_qtype_info *qi = lm_quant_info(want[i].t);
        ck_assert_ptr_nonnull(qi);
        ck_assert_int_eq(qi->block, want[i].block);
        ck_assert_uint_eq(qi->type_size, want[i].size);
        ck_assert_int_eq(lm_quant_supported(want[i].t), want[i].sup);
    }
    ck_assert_ptr_null(lm_quant_info(4));
    ck_assert_ptr_null(lm_quant_info(31));
    ck_assert_ptr_null(lm_quant_info(1000));
    ck_assert_str_eq(lm_quant_name(LM_QTYPE_Q6_K), "Q6_K");
    ck_assert_str_eq(lm_quant_name(77), "unknown");
    ck_assert_uint_eq(lm_quant_row_size(LM_QTYPE_Q4_K, 512), 288);
    ck_assert_uint_eq(lm_quant_row_size(LM_QTYPE_Q8_0, 31), 0);
    ck_assert_uint_eq(lm_quant_row_size(LM_QTYPE_F32, -1), 0);
    ck_assert_uint_eq(lm_quant_row_size(LM_QTYPE_F32, INT64_MAX), 0); /* overflow */
}
END_TEST

/* ---- quantised blocks built from the definitions ------------------------ */

static void put_f16(unsigned char *p, uint16_t h) { memcpy(p, &h, 2); }

START_TEST(test_q8_0_block)
{
    use_isa(_i);
    unsigned char blk[2 * 34];
    put_f16(blk, 0x3800);      /* 0.5 */
    put_f16(blk + 34, 0xB400); /* -0.25 */
    for (int j = 0; j < 32; j++) {
        blk[2 + j] = (unsigned char)(int8_t)(j * 8 - 128);
        blk[36 + j] = (unsigned char)(int8_t)(127 - j);
    }
    float y[64];
    lm_quant_dequant_row(LM_QTYPE_Q8_0, blk, y, 64);
    for (int j = 0; j < 32; j++) {
        ck_assert(y[j] == 0.5f * (float)(j * 8 - 128));
        ck_assert(y[32 + j] == -0.25f * (float)(127 - j));
    }
}
END_TEST

START_TEST(test_q4_0_block)
{
    use_isa(_i);
    unsigned char blk[18];
    put_f16(blk, 0x3400); /* 0.25 */
    int q[32];
    for (int j = 0; j < 32; j++)
        q[j] = (j * 7 + 3) % 16;
    for (int j = 0; j < 16; j++) /* value j: low nibble, value j+16: high */
        blk[2 + j] = (unsigned char)(q[j] | (q[j + 16] << 4));
    float y[32];
    lm_quant_dequant_row(LM_QTYPE_Q4_0, blk, y, 32);
    for (int j = 0; j < 32; j++)
        ck_assert_msg(y[j] == 0.25f * (float)(q[j] - 8), "value %d", j);
}
END_TEST

/* Q4_K packing, value by value from the definition: eight sub-blocks of 32;
 * scale/min s < 4 in the low 6 bits of bytes s / s+4; s >= 4 split into
 * low nibbles in byte s+4 (scale low, min high) and top 2 bits in the top of
 * bytes s-4 (scale) and s (min); value i of the 256 in sub-block i/32,
 * stored in qs[32 (i/64) + i%32], low nibble when (i/32) is even. */
static void pack_q4_k(unsigned char *blk, uint16_t d, uint16_t dmin, const int *sc, const int *mn,
                      const int *q)
{
    memset(blk, 0, 144);
    put_f16(blk, d);
    put_f16(blk + 2, dmin);
    unsigned char *s = blk + 4, *qs = blk + 16;
    for (int b = 0; b < 8; b++) {
        if (b < 4) {
            s[b] |= (unsigned char)(sc[b] & 63);
            s[b + 4] |= (unsigned char)(mn[b] & 63);
        } else {
            s[b + 4] |= (unsigned char)((sc[b] & 15) | ((mn[b] & 15) << 4));
            s[b - 4] |= (unsigned char)((sc[b] >> 4) << 6);
            s[b] |= (unsigned char)((mn[b] >> 4) << 6);
        }
    }
    for (int i = 0; i < 256; i++) {
        int byte = 32 * (i / 64) + i % 32;
        qs[byte] |= (unsigned char)((i / 32) % 2 == 0 ? q[i] : q[i] << 4);
    }
}

START_TEST(test_q4_k_block)
{
    use_isa(_i);
    unsigned char blk[2 * 144];
    int sc[8], mn[8], q[256];
    double want[512];
    for (int k = 0; k < 2; k++) {
        uint16_t d = k ? 0x2E66 : 0x3C00, dmin = k ? 0x2A00 : 0x3800; /* ~0.1, 0.046875; 1, 0.5 */
        for (int b = 0; b < 8; b++) {
            sc[b] = (int)(rnd() % 64);
            mn[b] = (int)(rnd() % 64);
        }
        sc[7] = 63; mn[7] = 63; sc[4] = 0; mn[5] = 0; /* extremes of the 6-bit range */
        for (int i = 0; i < 256; i++)
            q[i] = (int)(rnd() % 16);
        pack_q4_k(blk + 144 * k, d, dmin, sc, mn, q);
        for (int i = 0; i < 256; i++)
            want[256 * k + i] = ref_f16(d) * sc[i / 32] * q[i] - ref_f16(dmin) * mn[i / 32];
    }
    float y[512];
    lm_quant_dequant_row(LM_QTYPE_Q4_K, blk, y, 512);
    for (int i = 0; i < 512; i++)
        ck_assert_msg(fabs(y[i] - want[i]) <= 1e-6 * (1 + fabs(want[i])), "value %d: %g vs %g", i,
                      y[i], want[i]);
}
END_TEST

/* Q6_K packing from the definition: value i (of 256) in half h = i/128,
 * group g = (i%128)/32, lane l = i%32; its low nibble in ql[64h + l + 32(g&1)]
 * (high nibble when g >= 2), its top 2 bits at bits 2g of qh[32h + l]; its
 * scale scales[i/16]; x = d * scale * (q - 32). */
static void pack_q6_k(unsigned char *blk, uint16_t d, const int *scales, const int *q)
{
    memset(blk, 0, 210);
    unsigned char *ql = blk, *qh = blk + 128;
    for (int i = 0; i < 256; i++) {
        int h = i / 128, g = (i % 128) / 32, l = i % 32;
        int lo = q[i] & 15, hi = q[i] >> 4;
        ql[64 * h + l + 32 * (g & 1)] |= (unsigned char)(g >= 2 ? lo << 4 : lo);
        qh[32 * h + l] |= (unsigned char)(hi << (2 * g));
    }
    for (int j = 0; j < 16; j++)
        blk[192 + j] = (unsigned char)(int8_t)scales[j];
    put_f16(blk + 208, d);
}

START_TEST(test_q6_k_block)
{
    use_isa(_i);
    unsigned char blk[2 * 210];
    int scales[16], q[256];
    double want[512];
    for (int k = 0; k < 2; k++) {
        uint16_t d = k ? 0x1E00 : 0x3C00; /* 2^-8 * 1.5, 1 */
        for (int j = 0; j < 16; j++)
            scales[j] = (int)(rnd() % 256) - 128;
        scales[0] = -128; scales[15] = 127;
        for (int i = 0; i < 256; i++)
            q[i] = (int)(rnd() % 64);
        q[0] = 0; q[255] = 63;
        pack_q6_k(blk + 210 * k, d, scales, q);
        for (int i = 0; i < 256; i++)
            want[256 * k + i] = ref_f16(d) * scales[i / 16] * (q[i] - 32);
    }
    float y[512];
    lm_quant_dequant_row(LM_QTYPE_Q6_K, blk, y, 512);
    for (int i = 0; i < 512; i++)
        ck_assert_msg(fabs(y[i] - want[i]) <= 1e-6 * (1 + fabs(want[i])), "value %d: %g vs %g", i,
                      y[i], want[i]);
}
END_TEST

/* Q4_1, Q5_0 and Q5_1 from the definitions: 32 values; value j < 16 in the
 * low nibble of qs[j], value j + 16 in its high nibble; Q5's fifth bit of
 * value j is bit j of the little-endian uint32 qh.  kind 0: Q4_1 (d, m, qs),
 * 1: Q5_0 (d, qh, qs; q - 16), 2: Q5_1 (d, m, qh, qs). */
static void pack_q5(int kind, unsigned char *blk, uint16_t d, uint16_t m, const int *q)
{
    int has_m = kind != 1, has_h = kind != 0;
    size_t size = kind == 0 ? 20 : kind == 1 ? 22 : 24;
    memset(blk, 0, size);
    put_f16(blk, d);
    if (has_m)
        put_f16(blk + 2, m);
    unsigned char *qh = blk + (has_m ? 4 : 2), *qs = qh + (has_h ? 4 : 0);
    for (int j = 0; j < 32; j++) {
        int nib = q[j] & 15;
        qs[j % 16] |= (unsigned char)(j < 16 ? nib : nib << 4);
        if (has_h && (q[j] & 16))
            qh[j / 8] |= (unsigned char)(1u << (j % 8));
    }
}

START_TEST(test_q4_1_q5_blocks)
{
    use_isa(_i % 2);
    int kind = _i / 2;
    static const uint32_t types[] = {LM_QTYPE_Q4_1, LM_QTYPE_Q5_0, LM_QTYPE_Q5_1};
    const size_t size[] = {20, 22, 24};
    unsigned char blk[3 * 24];
    int q[32];
    double want[96];
    for (int k = 0; k < 3; k++) {
        uint16_t d = k == 0 ? 0x3400 : k == 1 ? 0xB266 : 0x1C01; /* 0.25, ~-0.2, ~0.0039 */
        uint16_t m = k == 0 ? 0xBC00 : k == 1 ? 0x3555 : 0x0001; /* -1, ~0.333, a subnormal */
        for (int j = 0; j < 32; j++)
            q[j] = (int)(rnd() % (kind == 0 ? 16 : 32));
        q[0] = 0;
        q[31] = kind == 0 ? 15 : 31;
        pack_q5(kind, blk + size[kind] * k, d, m, q);
        for (int j = 0; j < 32; j++)
            want[32 * k + j] = kind == 1 ? ref_f16(d) * (q[j] - 16) : ref_f16(d) * q[j] + ref_f16(m);
    }
    float y[96];
    lm_quant_dequant_row(types[kind], blk, y, 96);
    for (int i = 0; i < 96; i++)
        ck_assert_msg(fabs(y[i] - want[i]) <= 1e-6 * (1 + fabs(want[i])), "%s value %d: %g vs %g",
                      lm_quant_name(types[kind]), i, y[i], want[i]);
}
END_TEST

/* Q5_K from the definition: Q4_K's header, scales and nibbles (pack_q4_k),
 * with qh[32] inserted before the nibbles; value i of sub-block s = i / 32
 * sets bit s of qh[i % 32] when q >= 16. */
START_TEST(test_q5_k_block)
{
    use_isa(_i);
    unsigned char blk[2 * 176], q4[144];
    int sc[8], mn[8], q[256], lo[256];
    double want[512];
    for (int k = 0; k < 2; k++) {
        uint16_t d = k ? 0x2E66 : 0x3C00, dmin = k ? 0x2A00 : 0x3800;
        for (int b = 0; b < 8; b++) {
            sc[b] = (int)(rnd() % 64);
            mn[b] = (int)(rnd() % 64);
        }
        sc[6] = 63; mn[6] = 63; sc[3] = 0; mn[2] = 0;
        for (int i = 0; i < 256; i++) {
            q[i] = (int)(rnd() % 32);
            lo[i] = q[i] & 15;
        }
        q[0] = 31; lo[0] = 15; q[255] = 0; lo[255] = 0;
        pack_q4_k(q4, d, dmin, sc, mn, lo);
        unsigned char *b = blk + 176 * k;
        memcpy(b, q4, 16);          /* d, dmin, scales */
        memset(b + 16, 0, 32);      /* qh */
        memcpy(b + 48, q4 + 16, 128); /* nibbles */
        for (int i = 0; i < 256; i++) {
            if (q[i] & 16)
                b[16 + i % 32] |= (unsigned char)(1u << (i / 32));
            want[256 * k + i] = ref_f16(d) * sc[i / 32] * q[i] - ref_f16(dmin) * mn[i / 32];
        }
    }
    float y[512];
    lm_quant_dequant_row(LM_QTYPE_Q5_K, blk, y, 512);
    for (int i = 0; i < 512; i++)
        ck_assert_msg(fabs(y[i] - want[i]) <= 1e-6 * (1 + fabs(want[i])), "value %d: %g vs %g", i,
                      y[i], want[i]);
}
END_TEST

/* ---- dot products and panels -------------------------------------------- */

/* Random bytes make valid blocks of every type as long as the fp16 scales
 * are tamed (no Inf/NaN): rewrite them to small finite values. */
static void random_row(uint32_t type, unsigned char *p, int64_t n)
{
    const lm_qtype_info *qi = lm_quant_info(type);
    size_t bytes = lm_quant_row_size(type, n);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (unsigned char)rnd();
    int64_t nb = n / qi->block;
    for (int64_t b = 0; b < nb; b++) {
        unsigned char *blk = p + (size_t)b * qi->type_size;
        switch (type) {
        case LM_QTYPE_F32:
            { float f = rnd_unit(); memcpy(blk, &f, 4); } break;
        case LM_QTYPE_F16: case LM_QTYPE_BF16:
            blk[1] = (unsigned char)((blk[1] & 0x80) | 0x38); break; /* |x| ~ 0.5..1 */
        case LM_QTYPE_Q8_0: case LM_QTYPE_Q4_0:
            put_f16(blk, (uint16_t)(0x2000 | (rnd() & 0x3FF))); break;
        case LM_QTYPE_Q4_K: case LM_QTYPE_Q5_K: case LM_QTYPE_Q4_1: case LM_QTYPE_Q5_1:
            put_f16(blk, (uint16_t)(0x2000 | (rnd() & 0x3FF)));
            put_f16(blk + 2, (uint16_t)(0x1C00 | (rnd() & 0x3FF))); break;
        case LM_QTYPE_Q5_0:
            put_f16(blk, (uint16_t)(0x2000 | (rnd() & 0x3FF))); break;
        case LM_QTYPE_Q6_K:
            put_f16(blk + 208, (uint16_t)(0x1C00 | (rnd() & 0x3FF))); break;
        }
    }
}

static const uint32_t kernel_types[] = {LM_QTYPE_F32,  LM_QTYPE_F16,  LM_QTYPE_BF16,
                                        LM_QTYPE_Q8_0, LM_QTYPE_Q4_0, LM_QTYPE_Q4_1,
                                        LM_QTYPE_Q5_0, LM_QTYPE_Q5_1, LM_QTYPE_Q4_K,
                                        LM_QTYPE_Q5_K, LM_QTYPE_Q6_K};

START_TEST(test_dot_matches_dequant)
{
    use_isa(_i % 2);
    uint32_t type = kernel_types[_i / 2];
    int64_t block = lm_quant_info(type)->block;
    static const int64_t lens[] = {256, 512, 1024 + 256, 4096};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        int64_t n = lens[li];
        if (block == 1 && li == 0)
            n = 37; /* plain floats: a length that is not a multiple of 8 */
        unsigned char *row = malloc(lm_quant_row_size(type, n));
        float *w = malloc((size_t)n * sizeof *w), *x = malloc((size_t)n * sizeof *x);
        random_row(type, row, n);
        lm_quant_dequant_row(type, row, w, n);
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            x[i] = rnd_unit();
            ref += (double)w[i] * x[i];
            mag += fabs((double)w[i] * x[i]);
        }
        float got = lm_quant_dot_f32(type, row, x, n);
        ck_assert_msg(fabs(got - ref) <= 1e-6 * mag + 1e-30, "%s n=%lld: %g vs %g",
                      lm_quant_name(type), (long long)n, (double)got, ref);
        free(row);
        free(w);
        free(x);
    }
}
END_TEST

START_TEST(test_rows_and_matvec)
{
    use_isa(_i % 2);
    uint32_t type = kernel_types[_i / 2];
    const int64_t rows = 5, n = 512, ld = 520;
    size_t rb = lm_quant_row_size(type, n);
    unsigned char *w = malloc(rb * rows);
    for (int64_t r = 0; r < rows; r++)
        random_row(type, w + r * rb, n);
    float *panel = malloc((size_t)(rows * ld) * sizeof *panel);
    float *one = malloc((size_t)n * sizeof *one), *x = malloc((size_t)n * sizeof *x), y[5];
    for (int64_t i = 0; i < rows * ld; i++)
        panel[i] = -7.0f;
    for (int64_t i = 0; i < n; i++)
        x[i] = rnd_unit();
    lm_quant_dequant_rows(type, w, rb, rows, n, panel, ld);
    lm_quant_matvec_f32(type, w, rb, rows, x, n, y);
    for (int64_t r = 0; r < rows; r++) {
        lm_quant_dequant_row(type, w + r * rb, one, n);
        ck_assert(memcmp(one, panel + r * ld, (size_t)n * sizeof *one) == 0);
        for (int64_t c = n; c < ld; c++)
            ck_assert(panel[r * ld + c] == -7.0f); /* padding untouched */
        ck_assert(y[r] == lm_quant_dot_f32(type, w + r * rb, x, n));
    }
    free(w);
    free(panel);
    free(one);
    free(x);
}
END_TEST

/* The two instances dequantise identically, and their dots agree up to
 * summation order. */
START_TEST(test_instances_agree)
{
    if (lm_quant_set_isa(LM_QUANT_ISA_AVX2) != LM_QUANT_ISA_AVX2)
        return;
    uint32_t type = kernel_types[_i];
    const int64_t n = 4096;
    unsigned char *row = malloc(lm_quant_row_size(type, n));
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *x = malloc(n * sizeof *x);
    random_row(type, row, n);
    double mag = 0;
    for (int64_t i = 0; i < n; i++)
        x[i] = rnd_unit();
    lm_quant_dequant_row(type, row, a, n);
    float da = lm_quant_dot_f32(type, row, x, n);
    lm_quant_set_isa(LM_QUANT_ISA_GENERIC);
    lm_quant_dequant_row(type, row, b, n);
    float db = lm_quant_dot_f32(type, row, x, n);
    ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "%s: dequantised values differ",
                  lm_quant_name(type));
    for (int64_t i = 0; i < n; i++)
        mag += fabs((double)a[i] * x[i]);
    ck_assert_msg(fabs(da - db) <= 1e-6 * mag, "%s: %g vs %g", lm_quant_name(type), da, db);
    lm_quant_set_isa(LM_QUANT_ISA_AUTO);
    free(row);
    free(a);
    free(b);
    free(x);
}
END_TEST

/* lm_quant_quantize_row_q8_0 on special blocks: half-way values round away
 * from zero, an all-zero block is zeros, a NaN or an infinity makes the
 * block's scale NaN and its values 0 (never a silent finite block). */
START_TEST(test_q8_0_encoder_special)
{
    float x[4 * 32];
    for (int i = 0; i < 32; i++) {
        x[i] = i == 0 ? 127.0f : (i % 2 ? 2.5f : -2.5f); /* d = 1 exactly */
        x[32 + i] = 0.0f;
        x[64 + i] = (float)i;
        x[96 + i] = (float)i;
    }
    x[64 + 7] = NAN;
    x[96 + 9] = -INFINITY;
    unsigned char q[4 * 34];
    lm_quant_quantize_row_q8_0(x, q, 4 * 32);
    uint16_t h[4];
    for (int b = 0; b < 4; b++)
        memcpy(&h[b], q + 34 * b, 2);
    ck_assert(lm_quant_f16_to_f32(h[0]) == 1.0f && h[1] == 0);
    ck_assert(isnan(lm_quant_f16_to_f32(h[2])) && isnan(lm_quant_f16_to_f32(h[3])));
    for (int i = 0; i < 32; i++) {
        int8_t v = (int8_t)q[2 + i];
        ck_assert_int_eq(v, i == 0 ? 127 : (i % 2 ? 3 : -3));
        ck_assert_int_eq(q[34 + 2 + i], 0);
        ck_assert_int_eq(q[68 + 2 + i], 0);
        ck_assert_int_eq(q[102 + 2 + i], 0);
    }
    /* and a random row decodes back within half a step of each block */
    float y[256], back[256];
    for (int i = 0; i < 256; i++)
        y[i] = (float)sin(i * 0.37) * (float)(1 + i / 32);
    unsigned char r[8 * 34];
    lm_quant_quantize_row_q8_0(y, r, 256);
    lm_quant_dequant_row(LM_QTYPE_Q8_0, r, back, 256);
    for (int b = 0; b < 8; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(y[32 * b + i]));
        for (int i = 0; i < 32; i++) /* half a step, plus the fp16 scale's rounding */
            ck_assert_float_le(fabsf(back[32 * b + i] - y[32 * b + i]),
                               amax / 254.0f * 1.01f + amax * 1e-3f);
    }
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("lm_quant");
    TCase *tc = tcase_create("conversions");
    tcase_add_loop_test(tc, test_f16_all_halfs, 0, 2);
    tcase_add_loop_test(tc, test_bf16_all, 0, 2);
    tcase_add_test(tc, test_f32_to_f16_rounding);
    tcase_add_test(tc, test_type_table);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    TCase *tb = tcase_create("blocks");
    tcase_add_loop_test(tb, test_q8_0_block, 0, 2);
    tcase_add_loop_test(tb, test_q4_0_block, 0, 2);
    tcase_add_loop_test(tb, test_q4_k_block, 0, 2);
    tcase_add_loop_test(tb, test_q6_k_block, 0, 2);
    tcase_add_loop_test(tb, test_q4_1_q5_blocks, 0, 6);
    tcase_add_loop_test(tb, test_q5_k_block, 0, 2);
    tcase_add_test(tb, test_q8_0_encoder_special);
    int nk = (int)(sizeof kernel_types / sizeof kernel_types[0]);
    tcase_add_loop_test(tb, test_dot_matches_dequant, 0, 2 * nk);
    tcase_add_loop_test(tb, test_rows_and_matvec, 0, 2 * nk);
    tcase_add_loop_test(tb, test_instances_agree, 0, nk);
    suite_add_tcase(s, tb);
    return s;
}

int main(void)
{
    return dl_test_run(quant_suite());
}
