/* check_lm_ggml.c: our GGUF reader and quantised-tensor kernels against
 * llama.cpp / ggml themselves.
 *
 * data/delift-mini-q4_k_m.gguf and data/delift-mini-q5_k_m.gguf were written
 * by llama.cpp's own quantiser (scripts/ggml-fixtures), and
 * tests/data/ggml/dequant.sha256 holds, per tensor, the SHA-256 of the
 * float32 values ggml's own dequantize_row_* functions give for it.  Here
 * every tensor is found by our reader and expanded by our kernels (portable
 * and AVX2 instances), and must hash the same: bit-identical values, for
 * Q4_K, Q5_K, Q6_K, Q5_0, Q5_1, Q8_0 and F32.
 *
 * Then the two files run as models: the ref and blas backends agree, and
 * the next-token log-probabilities stay near delift-mini F32's golden ones
 * (quantisation noise only; a wrong kernel gives errors of whole nats).
 */
#include "config.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_sha256.h"
#include "dl_test.h"
#include "lm_gguf.h"
#include "lm_model.h"
#include "lm_quant.h"
#include "lm_score.h"

static const char *const files[] = {"delift-mini-q4_k_m.gguf", "delift-mini-q5_k_m.gguf"};
#define N_FILES 2

static lm_gguf *open_data(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "data/%s", name);
    dl_error err;
    dl_error_clear(&err);
    lm_gguf *g = lm_gguf_open(dl_test_src(rel), &err);
    ck_assert_msg(g != NULL, "%s: %s", rel, err.message);
    return g;
}

/* SHA-256 of a tensor's values as our kernels expand them, in hex. */
static void our_hash(const lm_gguf_tensor *t, char hex[DL_SHA256_HEX_LEN])
{
    float *y = malloc((size_t)t->n_elements * sizeof *y);
    ck_assert_ptr_nonnull(y);
    lm_quant_dequant_rows(t->type, t->data, t->row_bytes, t->n_rows, t->ne[0], y, t->ne[0]);
    uint8_t dg[DL_SHA256_DIGEST_LEN];
    dl_sha256(y, (size_t)t->n_elements * sizeof *y, dg);
    dl_sha256_hex(dg, hex);
    free(y);
}

START_TEST(test_dequant_matches_ggml)
{
    lm_quant_isa want = _i ? LM_QUANT_ISA_AVX2 : LM_QUANT_ISA_GENERIC;
    if (lm_quant_set_isa(want) != want) {
        lm_quant_set_isa(LM_QUANT_ISA_AUTO);
        return; /* no AVX2 here: the portable run covers it */
    }
    FILE *f = fopen(dl_test_src("tests/data/ggml/dequant.sha256"), "r");
    ck_assert_ptr_nonnull(f);
    lm_gguf *g[N_FILES] = {open_data(files[0]), open_data(files[1])};
    char line[512];
    int64_t checked = 0, per_type[40] = {0}, per_file[N_FILES] = {0};
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char file[128], name[128], sum[80];
        unsigned type;
        long long n;
        ck_assert_int_eq(sscanf(line, "%127s %127s %u %lld %79s", file, name, &type, &n, sum), 5);
        int fi = !strcmp(file, files[0]) ? 0 : !strcmp(file, files[1]) ? 1 : -1;
        ck_assert_msg(fi >= 0, "unknown file %s", file);
        const lm_gguf_tensor *t = lm_gguf_find_tensor(g[fi], name);
        ck_assert_msg(t != NULL, "%s: no tensor %s", file, name);
        ck_assert_uint_eq(t->type, type);
        ck_assert_int_eq(t->n_elements, n);
        char hex[DL_SHA256_HEX_LEN];
        our_hash(t, hex);
        ck_assert_msg(!strcmp(hex, sum), "%s %s (%s): our values differ from ggml's", file, name,
                      lm_quant_name(type));
        checked++;
        per_file[fi]++;
        per_type[type < 40 ? type : 39]++;
    }
    fclose(f);
    /* every tensor of both files, and each type the files hold */
    for (int i = 0; i < N_FILES; i++) {
        ck_assert_int_eq(per_file[i], lm_gguf_n_tensors(g[i]));
        lm_gguf_free(g[i]);
    }
    static const uint32_t types[] = {LM_QTYPE_F32, LM_QTYPE_Q5_0, LM_QTYPE_Q5_1, LM_QTYPE_Q8_0,
                                     LM_QTYPE_Q4_K, LM_QTYPE_Q5_K, LM_QTYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        ck_assert_msg(per_type[types[i]] > 0, "no %s tensor checked", lm_quant_name(types[i]));
    ck_assert_int_eq(checked, 112);
    lm_quant_set_isa(LM_QUANT_ISA_AUTO);
}
END_TEST

/* Next-token log-probabilities of `ids` (one span [1, n)) on `backend`. */
static float *score_all(const lm_model *m, const char *backend, const int32_t *ids, int64_t n)
{
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = backend;
    p.n_threads = 2;
    lm_ctx *ctx = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(lm_ctx_new(m, &p, &ctx, &err) == DL_OK, "%s", err.message);
    float *lp = malloc((size_t)n * sizeof *lp);
    lm_seq q = {ids, n, 1, n};
    ck_assert_msg(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err) == DL_OK, "%s", err.message);
    lm_ctx_free(ctx);
    return lp;
}

START_TEST(test_models_run)
{
    const char *golden = dl_test_shared("models/golden/delift-mini/logits.json");
    if (!golden) {
        printf("SKIP part: ../shared golden logits absent\n");
        return;
    }
    json_error_t je;
    json_t *j = json_load_file(golden, 0, &je);
    ck_assert_msg(j != NULL, "%s", je.text);
    json_t *seqs = json_object_get(j, "sequences");
    char rel[256];
    snprintf(rel, sizeof rel, "data/%s", files[_i]);
    lm_model *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(lm_model_load(dl_test_src(rel), &m, &err) == DL_OK, "%s", err.message);
    double sum = 0, worst = 0, ref_blas = 0;
    int64_t count = 0;
    for (size_t s = 0; s < json_array_size(seqs); s++) {
        json_t *toks = json_object_get(json_array_get(seqs, s), "tokens");
        json_t *ref = json_object_get(json_array_get(seqs, s), "next_token_logprobs");
        int64_t n = (int64_t)json_array_size(toks);
        if (n < 2 || n > 100)
            continue;
        int32_t *ids = malloc((size_t)n * sizeof *ids);
        for (int64_t i = 0; i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(toks, (size_t)i));
        float *b = score_all(m, "blas", ids, n), *r = score_all(m, "ref", ids, n);
        for (int64_t t = 0; t < n - 1; t++) {
            ck_assert(isfinite(b[t]) && b[t] <= 0);
            double d = fabs(b[t] - json_real_value(json_array_get(ref, (size_t)t)));
            double e = fabs(b[t] - r[t]) / (fabs(r[t]) > 1 ? fabs(r[t]) : 1);
            sum += d;
            worst = d > worst ? d : worst;
            ref_blas = e > ref_blas ? e : ref_blas;
            count++;
        }
        free(b);
        free(r);
        free(ids);
    }
    printf("%s: %lld next-token log-probabilities, |ours - F32 golden| mean %.4f max %.4f nats; "
           "ref vs blas %.2g relative\n", files[_i], (long long)count, sum / (double)count, worst,
           ref_blas);
    ck_assert_int_gt(count, 50);
    ck_assert_msg(ref_blas <= 1e-4, "ref and blas differ by %g", ref_blas);
    ck_assert_msg(sum / (double)count <= 0.1, "mean deviation %g nats", sum / (double)count);
    lm_model_free(m);
    json_decref(j);
}
END_TEST

/* The quantised files cut short anywhere (header, tensor infos, the data of
 * a Q5_K / Q4_K / Q5_0 tensor, the last byte) are refused with a clear
 * error, never read past their end. */
START_TEST(test_truncated_refused)
{
    char rel[256];
    snprintf(rel, sizeof rel, "data/%s", files[_i]);
    FILE *f = fopen(dl_test_src(rel), "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    rewind(f);
    unsigned char *buf = malloc((size_t)size);
    ck_assert_int_eq((long)fread(buf, 1, (size_t)size, f), size);
    fclose(f);
    dl_error err;
    dl_error_clear(&err);
    lm_gguf *g = lm_gguf_open_buffer(buf, (size_t)size, &err);
    ck_assert_ptr_nonnull(g);
    size_t cuts[16];
    int nc = 0;
    cuts[nc++] = 3;
    cuts[nc++] = 24;
    cuts[nc++] = lm_gguf_data_offset(g) - 1;
    for (int64_t t = 0; t < lm_gguf_n_tensors(g) && nc < 14; t++) {
        const lm_gguf_tensor *ti = lm_gguf_tensor_at(g, t);
        if (ti->type != LM_QTYPE_F32) /* inside a quantised tensor's data */
            cuts[nc++] = (size_t)ti->offset + ti->nbytes / 2;
    }
    cuts[nc++] = (size_t)size - 1;
    lm_gguf_free(g);
    for (int c = 0; c < nc; c++) {
        dl_error_clear(&err);
        g = lm_gguf_open_buffer(buf, cuts[c], &err);
        ck_assert_msg(g == NULL, "%s cut at %zu bytes was accepted", files[_i], cuts[c]);
        ck_assert_int_eq(err.code, DL_ERR_INPUT);
        ck_assert(err.message[0] != '\0');
    }
    free(buf);
}
END_TEST

static Suite *ggml_suite(void)
{
    Suite *s = suite_create("lm_ggml");
    TCase *tc = tcase_create("ggml");
    tcase_add_loop_test(tc, test_dequant_matches_ggml, 0, 2);
    tcase_add_loop_test(tc, test_models_run, 0, N_FILES);
    tcase_add_loop_test(tc, test_truncated_refused, 0, N_FILES);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(ggml_suite());
}
