/* check_lm_model.c: the inference engine against independent references.
 *
 * References: ../shared/models/golden/<model>/logits*.json, written by an
 * independent float64 numpy forward that reads the GGUF itself.  Tolerance
 * for logits and log-probabilities: |ours - golden| <= 1e-4 * max(1, |golden|)
 * per value.  The F16 and Q8_0 goldens dequantise the weights exactly as we
 * do (fp16 -> f32, d * q) before their float64 forward, so the only error
 * left is our float32 arithmetic, as for F32: the same bound applies.
 * Greedy tokens are compared where the golden top-1/top-2 margin is > 1e-3
 * (our logit error is ~1e-5), teacher-forced on the golden continuation so
 * one flip cannot hide the rest.  Other tests compare the backends with each
 * other (ref: double accumulation; blas: OpenBLAS sgemm) and the scoring
 * API with itself (batch vs alone: bit-identical; prefix vs full: 1e-5).
 * Skips (77) without ../shared.
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "lm_test.h"
#include "gguf_build.h"
#include "lm_backend.h"
#include "lm_gguf.h"
#include "lm_model.h"
#include "lm_quant.h"
#include "lm_score.h"
#include "lm_tok.h"

#define TOL_REL 1e-4
#define MARGIN_MIN 1e-3

static lm_ctx *new_ctx(const lm_model *m, const char *backend, int64_t threads, int64_t batch)
{
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = backend;
    p.n_threads = threads;
    p.max_batch_tokens = batch;
    lm_ctx *ctx = NULL;
    dl_error err;
    dl_error_clear(&err);
    dl_status st = lm_ctx_new(m, &p, &ctx, &err);
    ck_assert_msg(st == DL_OK, "lm_ctx_new: %s", err.message);
    return ctx;
}

static int32_t *json_ids(json_t *arr, int64_t *n)
{
    *n = (int64_t)json_array_size(arr);
    int32_t *ids = malloc((size_t)(*n + 64) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int64_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

static void assert_close(double ours, double ref, const char *what, int64_t a, int64_t b)
{
    double bound = TOL_REL * (fabs(ref) > 1.0 ? fabs(ref) : 1.0);
    ck_assert_msg(fabs(ours - ref) <= bound, "%s [%lld][%lld]: %.9g vs golden %.9g", what,
                  (long long)a, (long long)b, ours, ref);
}

/* Checks one golden sequence: logits at the stored positions, every
 * next-token log-probability, and the clear-margin greedy tokens.  The
 * golden continuation is appended to the tokens (teacher forcing: one flip
 * cannot hide the later steps), and one forward pass gives the logits at
 * the stored positions (unaffected by later tokens: attention is causal)
 * and at every greedy step. */
static void check_sequence(lm_ctx *ctx, json_t *seq, int64_t si)
{
    int64_t V = lm_ctx_model(ctx)->hp.n_vocab, n;
    int32_t *ids = json_ids(json_object_get(seq, "tokens"), &n);
    dl_error err;
    dl_error_clear(&err);
    json_t *lg = json_object_get(seq, "logits"), *positions = json_object_get(seq, "positions");
    json_t *g = json_object_get(seq, "greedy32");
    json_t *mg = json_object_get(seq, "greedy32_top1_minus_top2_logit");
    int64_t n_pos = (int64_t)json_array_size(positions), n_g = (int64_t)json_array_size(g);
    if (n_g > 31)
        n_g = 31; /* the 32nd greedy token is predicted, never fed */
    if (n + n_g > lm_ctx_n_ctx(ctx))
        n_g = lm_ctx_n_ctx(ctx) - n;
    for (int64_t i = 0; i < n_g; i++)
        ids[n + i] = (int32_t)json_integer_value(json_array_get(g, (size_t)i));
    int64_t pos[64], n_all = 0;
    for (int64_t j = 0; j < n_pos; j++)
        pos[n_all++] = json_integer_value(json_array_get(positions, (size_t)j));
    for (int64_t i = 0; i <= n_g; i++)
        pos[n_all++] = n - 1 + i; /* predicts greedy token i */
    float *out = malloc(sizeof(float) * (size_t)(V * n_all));
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(lm_ctx_logits(ctx, ids, n + n_g, pos, n_all, out, &err), DL_OK);
    for (int64_t j = 0; j < n_pos; j++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)pos[j]);
        json_t *ref = json_object_get(lg, key);
        ck_assert_int_eq((int64_t)json_array_size(ref), V);
        for (int64_t t = 0; t < V; t++)
            assert_close(out[j * V + t], json_real_value(json_array_get(ref, (size_t)t)), "logit",
                         si, t);
    }
    int64_t checked = 0;
    for (int64_t i = 0; i <= n_g; i++) {
        if (json_real_value(json_array_get(mg, (size_t)i)) <= MARGIN_MIN)
            continue;
        const float *row = out + (n_pos + i) * V;
        int64_t best = 0;
        for (int64_t t = 1; t < V; t++)
            if (row[t] > row[best])
                best = t;
        ck_assert_msg(best == json_integer_value(json_array_get(g, (size_t)i)),
                      "seq %lld greedy step %lld: %lld", (long long)si, (long long)i,
                      (long long)best);
        checked++;
    }
    ck_assert_int_gt(checked, 0);
    /* next-token log-probabilities: one scored span [1, n) */
    if (n > 1) {
        lm_seq q = {ids, n, 1, n};
        float *lp = malloc(sizeof(float) * (size_t)n);
        ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_OK);
        json_t *ref = json_object_get(seq, "next_token_logprobs");
        ck_assert_int_eq((int64_t)json_array_size(ref), n - 1);
        for (int64_t t = 0; t < n - 1; t++)
            assert_close(lp[t], json_real_value(json_array_get(ref, (size_t)t)), "logprob", si, t);
        free(lp);
    }
    free(out);
    free(ids);
}

/* All golden sequences of `golden` up to max_tokens long, on `backend`. */
static void check_golden(const char *model_rel, const char *golden_rel, const char *backend,
                         int64_t max_tokens)
{
    lm_model *m = lm_test_load_model(model_rel);
    lm_ctx *ctx = new_ctx(m, backend, 2, 0);
    json_t *j = lm_test_load_json(golden_rel);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "vocab_size")), m->hp.n_vocab);
    json_t *seqs = json_object_get(j, "sequences");
    int64_t done = 0;
    for (size_t i = 0; i < json_array_size(seqs); i++) {
        json_t *s = json_array_get(seqs, i);
        if (json_integer_value(json_object_get(s, "n_tokens")) > max_tokens)
            continue;
        check_sequence(ctx, s, (int64_t)i);
        done++;
    }
    ck_assert_int_gt(done, 0);
    json_decref(j);
    lm_ctx_free(ctx);
    lm_model_free(m);
}

START_TEST(test_hparams)
{
    lm_model *m = lm_test_load_model("models/delift-mini-f32.gguf");
    const lm_hparams *hp = &m->hp;
    /* README: dim 256, 6 layers, 8/4 heads, FFN 704, vocab 4096, ctx 512, tied output */
    ck_assert_int_eq(hp->n_embd, 256);
    ck_assert_int_eq(hp->n_layer, 6);
    ck_assert_int_eq(hp->n_head, 8);
    ck_assert_int_eq(hp->n_head_kv, 4);
    ck_assert_int_eq(hp->head_dim, 32);
    ck_assert_int_eq(hp->n_ff, 704);
    ck_assert_int_eq(hp->n_vocab, 4096);
    ck_assert_int_eq(hp->n_ctx_train, 512);
    ck_assert_int_eq(hp->bos_id, 1);
    ck_assert_int_eq(hp->eos_id, 2);
    ck_assert_int_eq(hp->rope_style, LM_ROPE_ADJACENT);
    ck_assert(m->output == m->tok_embd);
    ck_assert_int_eq(m->n_params, 5475584);
    lm_model_free(m);
    m = lm_test_load_model("models/stories260K.gguf");
    ck_assert_int_eq(m->hp.n_embd, 64);
    ck_assert_int_eq(m->hp.n_rot, 8);
    ck_assert(m->output != m->tok_embd);
    lm_model_free(m);
}
END_TEST

START_TEST(test_golden_stories_ref)
{
    check_golden("models/stories260K.gguf", "models/golden/stories260K/logits.json", "ref", 1 << 20);
}
END_TEST

START_TEST(test_golden_stories_blas)
{
    check_golden("models/stories260K.gguf", "models/golden/stories260K/logits.json", "blas", 1 << 20);
}
END_TEST

START_TEST(test_golden_mini_f32_ref)
{
    /* the ref backend is slow: sequences up to 100 tokens */
    check_golden("models/delift-mini-f32.gguf", "models/golden/delift-mini/logits.json", "ref", 100);
}
END_TEST

START_TEST(test_golden_mini_f32_blas)
{
    check_golden("models/delift-mini-f32.gguf", "models/golden/delift-mini/logits.json", "blas",
                 1 << 20);
}
END_TEST

START_TEST(test_golden_mini_f16_blas)
{
    check_golden("models/delift-mini-f16.gguf", "models/golden/delift-mini/logits_f16.json", "blas",
                 1 << 20);
}
END_TEST

START_TEST(test_golden_mini_q8_blas)
{
    check_golden("models/delift-mini-q8_0.gguf", "models/golden/delift-mini/logits_q8_0.json",
                 "blas", 1 << 20);
}
END_TEST

/* The story of the README: greedy from BOS, 64 tokens after it, decoded
 * (63 stop at "L" of the last "Lily"). */
START_TEST(test_stories_greedy_story)
{
    static const char story[] =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
        "Lily";
    lm_model *m = lm_test_load_model("models/stories260K.gguf");
    lm_ctx *ctx = new_ctx(m, "blas", 1, 0);
    dl_error err;
    dl_error_clear(&err);
    int32_t bos = 1, ids[65];
    lm_prefix *p = NULL;
    ck_assert_int_eq(lm_prefix_new(ctx, &bos, 1, 65, &p, &err), DL_OK);
    float *logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
    int64_t n = 0;
    while (lm_prefix_len(p) < 65) {
        ck_assert_int_eq(lm_prefix_logits(ctx, p, logits, &err), DL_OK);
        int32_t best = 0;
        for (int32_t t = 1; t < m->hp.n_vocab; t++)
            if (logits[t] > logits[best])
                best = t;
        ids[n++] = best;
        ck_assert_int_eq(lm_prefix_append(ctx, p, &best, 1, &err), DL_OK);
    }
    lm_tok *tok = lm_tok_from_gguf(m->gguf, &err);
    ck_assert_ptr_nonnull(tok);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(lm_tok_decode(tok, ids, n, LM_TOK_DECODE_STRIP_SPACE, &text, &len, &err), DL_OK);
    ck_assert_str_eq(text, story);
    free(text);
    lm_tok_free(tok);
    free(logits);
    lm_prefix_free(p);
    lm_ctx_free(ctx);
    lm_model_free(m);
}
END_TEST

/* The golden sequences of a file, as lm_seq spans [1, n). */
static lm_seq *golden_seqs(const char *golden_rel, int64_t max_tokens, int64_t *n_seqs)
{
    json_t *j = lm_test_load_json(golden_rel);
    json_t *arr = json_object_get(j, "sequences");
    lm_seq *q = calloc(json_array_size(arr), sizeof *q);
    int64_t k = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        if (json_integer_value(json_object_get(s, "n_tokens")) > max_tokens)
            continue;
        int64_t n;
        int32_t *ids = json_ids(json_object_get(s, "tokens"), &n);
        q[k++] = (lm_seq){ids, n, n > 1 ? 1 : n, n};
    }
    json_decref(j);
    *n_seqs = k;
    return q;
}

static void free_seqs(lm_seq *q, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        free((void *)q[i].tokens);
    free(q);
}

static int64_t n_targets(const lm_seq *q, int64_t n)
{
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++)
        t += q[i].target_end - q[i].target_start;
    return t;
}

/* ref vs blas on every model file: log-probs and embeddings within 1e-4. */
static void check_backends_agree(const char *model_rel, const char *golden_rel, int64_t max_tokens)
{
    lm_model *m = lm_test_load_model(model_rel);
    int64_t n_seqs, d = m->hp.n_embd;
    lm_seq *q = golden_seqs(golden_rel, max_tokens, &n_seqs);
    int64_t nt = n_targets(q, n_seqs);
    float *lp[2], *emb[2];
    const char *names[2] = {"ref", "blas"};
    dl_error err;
    dl_error_clear(&err);
    for (int b = 0; b < 2; b++) {
        lm_ctx *ctx = new_ctx(m, names[b], 2, 0);
        lp[b] = malloc(sizeof(float) * (size_t)(nt + 1));
        emb[b] = malloc(sizeof(float) * (size_t)(n_seqs * d));
        ck_assert_int_eq(lm_ctx_score(ctx, NULL, q, n_seqs, lp[b], emb[b], &err), DL_OK);
        lm_ctx_free(ctx);
    }
    for (int64_t i = 0; i < nt; i++)
        assert_close(lp[1][i], lp[0][i], "blas vs ref logprob", 0, i);
    for (int64_t i = 0; i < n_seqs * d; i++)
        assert_close(emb[1][i], emb[0][i], "blas vs ref embedding", 0, i);
    for (int b = 0; b < 2; b++) {
        free(lp[b]);
        free(emb[b]);
    }
    free_seqs(q, n_seqs);
    lm_model_free(m);
}

START_TEST(test_backends_agree)
{
    check_backends_agree("models/stories260K.gguf", "models/golden/stories260K/logits.json", 1 << 20);
    check_backends_agree("models/delift-mini-f32.gguf", "models/golden/delift-mini/logits.json", 100);
    check_backends_agree("models/delift-mini-f16.gguf", "models/golden/delift-mini/logits_f16.json",
                         100);
    check_backends_agree("models/delift-mini-q8_0.gguf",
                         "models/golden/delift-mini/logits_q8_0.json", 100);
}
END_TEST

/* A batch of mixed lengths (and spans) gives bit-identical log-probs and
 * embeddings to each sequence alone, whatever the lanes and batch size. */
static void check_batch_identity(const char *backend)
{
    lm_model *m = lm_test_load_model("models/delift-mini-f32.gguf");
    int64_t n_seqs, d = m->hp.n_embd;
    lm_seq *q = golden_seqs("models/golden/delift-mini/logits.json", 100, &n_seqs);
    q[n_seqs - 1].target_start = q[n_seqs - 1].n_tokens / 2; /* a partial span too */
    int64_t nt = n_targets(q, n_seqs);
    float *lp = malloc(sizeof(float) * (size_t)(nt + 1)), *emb = malloc(sizeof(float) * (size_t)(n_seqs * d));
    float *lp1 = malloc(sizeof(float) * (size_t)(nt + 1)), *emb1 = malloc(sizeof(float) * (size_t)d);
    dl_error err;
    dl_error_clear(&err);
    int64_t batches[2] = {0, 128};
    for (int c = 0; c < 2; c++) {
        lm_ctx *ctx = new_ctx(m, backend, 2, batches[c]);
        ck_assert_int_eq(lm_ctx_score(ctx, NULL, q, n_seqs, lp, emb, &err), DL_OK);
        lm_ctx *alone = new_ctx(m, backend, 1, 0);
        int64_t off = 0;
        for (int64_t i = 0; i < n_seqs; i++) {
            int64_t k = q[i].target_end - q[i].target_start;
            ck_assert_int_eq(lm_ctx_score(alone, NULL, &q[i], 1, lp1, emb1, &err), DL_OK);
            ck_assert_msg(!memcmp(lp1, lp + off, sizeof(float) * (size_t)k), "seq %lld logprobs",
                          (long long)i);
            ck_assert_msg(!memcmp(emb1, emb + i * d, sizeof(float) * (size_t)d),
                          "seq %lld embedding", (long long)i);
            off += k;
        }
        lm_ctx_free(alone);
        lm_ctx_free(ctx);
    }
    free(lp);
    free(emb);
    free(lp1);
    free(emb1);
    free_seqs(q, n_seqs);
    lm_model_free(m);
}

START_TEST(test_batch_identity_blas)
{
    check_batch_identity("blas");
}
END_TEST

START_TEST(test_batch_identity_ref)
{
    check_batch_identity("ref");
}
END_TEST

/* The blas backend's portable kernels (forced with lm_backend_blas_set_isa)
 * meet the goldens and keep batches invisible too; on an AVX2 CPU the
 * default tests above cover the AVX2 instances. */
START_TEST(test_blas_generic_kernels)
{
    ck_assert_int_eq(lm_backend_blas_set_isa(LM_QUANT_ISA_GENERIC), LM_QUANT_ISA_GENERIC);
    check_golden("models/stories260K.gguf", "models/golden/stories260K/logits.json", "blas", 1 << 20);
    check_golden("models/delift-mini-f32.gguf", "models/golden/delift-mini/logits.json", "blas",
                 1 << 20);
    check_batch_identity("blas");
    check_backends_agree("models/delift-mini-f32.gguf", "models/golden/delift-mini/logits.json", 100);
    lm_backend_blas_set_isa(LM_QUANT_ISA_AUTO);
}
END_TEST

/* log_softmax and SwiGLU of the blas backend, each kernel instance, against
 * double libm on rows of every tail length 1..40 (the vector loops take 4, 8
 * and 16 lanes) with a large spread of values, and exp underflow. */
START_TEST(test_blas_elementwise)
{
    lm_model *m = lm_test_load_model("models/stories260K.gguf");
    enum { NV = 40, NR = 3 };
    float logits[NR * NV], lp[NR], gate[NV], up[NV];
    int32_t tgt[NR];
    for (int isa = LM_QUANT_ISA_GENERIC; isa <= LM_QUANT_ISA_AVX2; isa++) {
        if ((int)lm_backend_blas_set_isa((lm_quant_isa)isa) != isa)
            continue; /* no AVX2 on this CPU */
        lm_backend_params bp = {.max_rows = 64, .max_ctx = 64, .max_logit_rows = NR};
        lm_backend *be = NULL;
        dl_error err;
        dl_error_clear(&err);
        ck_assert_int_eq(lm_backend_blas_ops.create(m, &bp, &be, &err), DL_OK);
        for (int64_t n = 1; n <= NV; n++) {
            double ref[NR];
            for (int64_t r = 0; r < NR; r++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < n; j++) {
                    /* values in about [-60, 30]; row 2 puts one far below exp's range */
                    float v = (float)(30.0 * sin(0.7 * (double)(j + 1) * (double)(r + 2)) - 15.0 * (double)r);
                    if (r == 2 && j == n / 2)
                        v = -200.0f;
                    logits[r * n + j] = v;
                    mx = v > mx ? v : mx;
                }
                for (int64_t j = 0; j < n; j++)
                    sum += exp((double)logits[r * n + j] - mx);
                tgt[r] = (int32_t)((r * 7 + n) % n);
                ref[r] = (double)logits[r * n + tgt[r]] - mx - log(sum);
            }
            lm_backend_blas_ops.logprob(be, logits, NR, n, tgt, lp);
            for (int64_t r = 0; r < NR; r++)
                ck_assert_msg(fabs(lp[r] - ref[r]) <= 1e-5 * fmax(1.0, fabs(ref[r])),
                              "isa %d n %lld row %lld: %.9g vs %.9g", isa, (long long)n,
                              (long long)r, (double)lp[r], ref[r]);
            for (int64_t j = 0; j < n; j++) {
                gate[j] = (float)(12.0 * sin(1.3 * (double)(j + n)));
                up[j] = (float)(0.5 + 0.01 * (double)j);
            }
            gate[0] = n > 1 ? -95.0f : 95.0f; /* exp(-95) underflows: silu -> -0 / identity */
            float g0[NV];
            memcpy(g0, gate, sizeof(float) * (size_t)n);
            lm_backend_blas_ops.swiglu(be, gate, up, n);
            for (int64_t j = 0; j < n; j++) {
                double g = g0[j], want = g / (1.0 + exp(-g)) * up[j];
                ck_assert_msg(fabs(gate[j] - want) <= 1e-6 * fmax(1.0, fabs(want)),
                              "isa %d swiglu n %lld j %lld: %.9g vs %.9g", isa, (long long)n,
                              (long long)j, (double)gate[j], want);
            }
        }
        lm_backend_blas_ops.destroy(be);
    }
    lm_backend_blas_set_isa(LM_QUANT_ISA_AUTO);
    lm_model_free(m);
}
END_TEST

/* Scoring continuations against a prefix cache equals scoring the whole
 * sequences (1e-5 absolute), embeddings included. */
static void check_prefix(const char *backend)
{
    lm_model *m = lm_test_load_model("models/delift-mini-f32.gguf");
    int64_t n_seqs, d = m->hp.n_embd;
    lm_seq *q = golden_seqs("models/golden/delift-mini/logits.json", 100, &n_seqs);
    const lm_seq *full = &q[n_seqs - 1]; /* the 100-token sequence */
    lm_ctx *ctx = new_ctx(m, backend, 2, 0);
    dl_error err;
    dl_error_clear(&err);
    int64_t P = 40, n = full->n_tokens;
    lm_prefix *pre = NULL;
    ck_assert_int_eq(lm_prefix_new(ctx, full->tokens, P, P, &pre, &err), DL_OK);
    /* three continuations of the same prefix: the real one and two cut short */
    lm_seq cont[3] = {{full->tokens + P, n - P, 0, n - P},
                      {full->tokens + P, 30, 0, 30},
                      {full->tokens + P, 10, 5, 10}};
    lm_seq whole[3] = {{full->tokens, n, P, n}, {full->tokens, P + 30, P, P + 30},
                       {full->tokens, P + 10, P + 5, P + 10}};
    int64_t nt = n_targets(cont, 3);
    float lp_a[200], lp_b[200], *ea = malloc(sizeof(float) * 3 * (size_t)d), *eb = malloc(sizeof(float) * 3 * (size_t)d);
    ck_assert_int_eq(lm_ctx_score(ctx, pre, cont, 3, lp_a, ea, &err), DL_OK);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, whole, 3, lp_b, eb, &err), DL_OK);
    for (int64_t i = 0; i < nt; i++)
        ck_assert_msg(fabs(lp_a[i] - lp_b[i]) <= 1e-5, "logprob %lld: %.9g vs %.9g", (long long)i,
                      lp_a[i], lp_b[i]);
    for (int64_t i = 0; i < 3 * d; i++)
        ck_assert_msg(fabs(ea[i] - eb[i]) <= 1e-5, "embedding %lld", (long long)i);
    free(ea);
    free(eb);
    lm_prefix_free(pre);
    lm_ctx_free(ctx);
    free_seqs(q, n_seqs);
    lm_model_free(m);
}

START_TEST(test_prefix_blas)
{
    check_prefix("blas");
}
END_TEST

START_TEST(test_prefix_ref)
{
    check_prefix("ref");
}
END_TEST

/* Bad calls fail cleanly with the documented codes. */
START_TEST(test_bad_input)
{
    lm_model *m = lm_test_load_model("models/stories260K.gguf");
    dl_error err;
    lm_ctx *ctx = NULL;
    lm_ctx_params p = lm_ctx_params_default();
    p.backend = "nope";
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_new(m, &p, &ctx, &err), DL_ERR_USAGE);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(err.message, "blas"));
    ctx = new_ctx(m, "blas", 1, 16);
    int32_t ids[40] = {1, 403, 407, 2};
    float lp[64];
    lm_seq q = {ids, 4, 0, 4}; /* target 0 has no predecessor */
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_ERR_USAGE);
    q = (lm_seq){ids, 4, 2, 5};
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_ERR_USAGE);
    ids[2] = 512; /* out of the vocabulary */
    q = (lm_seq){ids, 4, 1, 4};
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_ERR_INPUT);
    ck_assert_str_eq(err.field, "seq[0]");
    ids[2] = -1;
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_ERR_INPUT);
    ids[2] = 5;
    q = (lm_seq){ids, 40, 1, 40}; /* longer than the 16-token batch */
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_ERR_INPUT);
    q = (lm_seq){ids, 0, 0, 0};
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err), DL_ERR_USAGE);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, NULL, 0, lp, NULL, &err), DL_OK);
    int64_t pos = 4;
    dl_error_clear(&err);
    ck_assert_int_eq(lm_ctx_logits(ctx, ids, 4, &pos, 1, lp, &err), DL_ERR_USAGE);
    lm_prefix *pre = NULL;
    dl_error_clear(&err);
    ck_assert_int_eq(lm_prefix_new(ctx, ids, 4, 3, &pre, &err), DL_ERR_USAGE);
    ck_assert_int_eq(lm_prefix_new(ctx, ids, 0, 4, &pre, &err), DL_OK);
    dl_error_clear(&err);
    ck_assert_int_eq(lm_prefix_logits(ctx, pre, lp, &err), DL_ERR_USAGE);
    dl_error_clear(&err);
    ck_assert_int_eq(lm_prefix_append(ctx, pre, ids, 5, &err), DL_ERR_USAGE);
    lm_prefix_free(pre);
    lm_prefix_free(NULL);
    lm_ctx_free(ctx);
    lm_ctx_free(NULL);
    lm_model_free(NULL);
    /* a GGUF that is not a model: missing tensors / unsupported arch */
    lm_model *bad = NULL;
    dl_error_clear(&err);
    ck_assert_int_ne(lm_model_load("/nonexistent.gguf", &bad, &err), DL_OK);
    ck_assert_ptr_null(bad);
    lm_model_free(m);
}
END_TEST

/* ---- DELIFT utilities (utility.json): tokenizer + engine end to end ---- */

/* Appends template t with {p_i}, {p_j}, {r_j} substituted into buf. */
static void fill_template(const char *t, const char *pi, const char *pj, const char *rj, char *buf,
                          size_t cap)
{
    size_t n = 0;
    while (*t) {
        const char *sub = NULL;
        if (!strncmp(t, "{p_i}", 5))
            sub = pi;
        else if (!strncmp(t, "{p_j}", 5))
            sub = pj;
        else if (!strncmp(t, "{r_j}", 5))
            sub = rj;
        if (sub) {
            size_t l = strlen(sub);
            ck_assert(n + l < cap);
            memcpy(buf + n, sub, l);
            n += l;
            t += 5;
        } else {
            ck_assert(n + 1 < cap);
            buf[n++] = *t++;
        }
    }
    buf[n] = '\0';
}

/* tokens(prompt) EOS tokens(response) EOS, [BOS] first; *start = first target. */
static void delift_sequence(const lm_tok *tok, const char *prompt, const char *resp, int bos,
                            lm_tok_ids *ids, int64_t *start)
{
    dl_error err;
    dl_error_clear(&err);
    if (bos)
        ck_assert_int_eq(lm_tok_ids_push(ids, lm_tok_bos(tok), &err), DL_OK);
    ck_assert_int_eq(lm_tok_encode(tok, prompt, strlen(prompt), 0, ids, &err), DL_OK);
    ck_assert_int_eq(lm_tok_ids_push(ids, lm_tok_eos(tok), &err), DL_OK);
    *start = ids->n;
    ck_assert_int_eq(lm_tok_encode(tok, resp, strlen(resp), 0, ids, &err), DL_OK);
    ck_assert_int_eq(lm_tok_ids_push(ids, lm_tok_eos(tok), &err), DL_OK);
}

static double distance(const float *lp, int64_t n)
{
    double sq = 0;
    for (int64_t i = 0; i < n; i++)
        sq += (1.0 - exp((double)lp[i])) * (1.0 - exp((double)lp[i]));
    return sqrt(sq / (double)n);
}

/* d_noicl (both BOS variants) and 22 of the 64 d_icl of utility.json (the
 * diagonal, row 0 and row 5: GSM8K and MBPP targets), the ICL pairs scored
 * as one batch: |d - golden| <= 1e-5 (d is in [0, 1]). */
START_TEST(test_delift_utility)
{
    lm_model *m = lm_test_load_model("models/delift-mini-f32.gguf");
    dl_error err;
    dl_error_clear(&err);
    lm_tok *tok = lm_tok_from_gguf(m->gguf, &err);
    ck_assert_ptr_nonnull(tok);
    lm_ctx *ctx = new_ctx(m, "blas", 2, 0);
    json_t *j = lm_test_load_json("models/golden/delift-mini/utility.json");
    json_t *recs = json_object_get(j, "records"), *tpl = json_object_get(j, "templates");
    const char *t_no = json_string_value(json_object_get(tpl, "noicl"));
    const char *t_icl = json_string_value(json_object_get(tpl, "icl"));
    int64_t n = (int64_t)json_array_size(recs);
    ck_assert_int_eq(n, 8);
    static char buf[1 << 16];
    lm_tok_ids ids[64];
    lm_seq q[64];
    float *lp = malloc(sizeof(float) * 64 * 512);
    memset(ids, 0, sizeof ids);
    for (int bos = 0; bos < 2; bos++) {
        json_t *g = json_object_get(j, bos ? "with_bos" : "no_bos");
        for (int64_t i = 0; i < n; i++) {
            json_t *ri = json_array_get(recs, (size_t)i);
            fill_template(t_no, json_string_value(json_object_get(ri, "prompt")), "", "", buf,
                          sizeof buf);
            int64_t start;
            delift_sequence(tok, buf, json_string_value(json_object_get(ri, "response")), bos,
                            &ids[i], &start);
            ck_assert_int_eq(ids[i].n, json_integer_value(json_array_get(
                                           json_object_get(g, "seq_len_noicl"), (size_t)i)));
            q[i] = (lm_seq){ids[i].ids, ids[i].n, start, ids[i].n};
        }
        ck_assert_int_eq(lm_ctx_score(ctx, NULL, q, n, lp, NULL, &err), DL_OK);
        for (int64_t i = 0, off = 0; i < n; i++) {
            int64_t T = q[i].target_end - q[i].target_start;
            double ref = json_real_value(json_array_get(json_object_get(g, "d_noicl"), (size_t)i));
            ck_assert_msg(fabs(distance(lp + off, T) - ref) <= 1e-5, "d_noicl[%lld] %.8f vs %.8f",
                          (long long)i, distance(lp + off, T), ref);
            off += T;
            lm_tok_ids_free(&ids[i]);
        }
    }
    /* every ICL pair of the default (no BOS) block, in one batch */
    json_t *g = json_object_get(j, "no_bos");
    int64_t pair[64][2], n_pairs = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < n; k++)
            if (i == k || i == 0 || i == 5) {
                pair[n_pairs][0] = i;
                pair[n_pairs++][1] = k;
            }
    for (int64_t p = 0; p < n_pairs; p++) {
        json_t *ri = json_array_get(recs, (size_t)pair[p][0]);
        json_t *rk = json_array_get(recs, (size_t)pair[p][1]);
        fill_template(t_icl, json_string_value(json_object_get(ri, "prompt")),
                      json_string_value(json_object_get(rk, "prompt")),
                      json_string_value(json_object_get(rk, "response")), buf, sizeof buf);
        int64_t start;
        delift_sequence(tok, buf, json_string_value(json_object_get(ri, "response")), 0, &ids[p],
                        &start);
        q[p] = (lm_seq){ids[p].ids, ids[p].n, start, ids[p].n};
    }
    ck_assert_int_eq(n_pairs, 22);
    ck_assert_int_eq(lm_ctx_score(ctx, NULL, q, n_pairs, lp, NULL, &err), DL_OK);
    for (int64_t p = 0, off = 0; p < n_pairs; p++) {
        int64_t T = q[p].target_end - q[p].target_start;
        json_t *row = json_array_get(json_object_get(g, "d_icl"), (size_t)pair[p][0]);
        double ref = json_real_value(json_array_get(row, (size_t)pair[p][1]));
        ck_assert_msg(fabs(distance(lp + off, T) - ref) <= 1e-5, "d_icl[%lld][%lld] %.8f vs %.8f",
                      (long long)pair[p][0], (long long)pair[p][1], distance(lp + off, T), ref);
        off += T;
        lm_tok_ids_free(&ids[p]);
    }
    free(lp);
    json_decref(j);
    lm_ctx_free(ctx);
    lm_tok_free(tok);
    lm_model_free(m);
}
END_TEST

/* ---- synthetic GGUF models: qwen2, llama with rope_freqs, bad files ----
 * The tests' GGUF writer (gguf_build.h) builds models with random F32
 * weights in memory; a naive float64 forward written here from the
 * equations (independent of the engine's code) is their reference. */

typedef struct syn_tensor {
    char name[64];
    int64_t ne0, ne1; /* ne1 == 0: 1-D */
    float *data;
    uint32_t type;    /* 0 F32, 1 F16 (written from data) */
} syn_tensor;

typedef struct syn_model {
    const char *arch;
    int64_t E, H, HKV, F, L, V, R; /* n_embd, heads, kv heads, ffn, layers, vocab, n_rot */
    int biases, rope_freqs, tied;
    const char *drop_key;        /* malformations */
    const char *drop_tensor;
    const char *bad_shape;
    const char *f16_tensor;
    float rope_freq_value;       /* when != 0: every rope_freqs factor */
    int64_t kv_heads_key;        /* written as head_count_kv when > 0 */
    int64_t rot_key;             /* written as rope.dimension_count when > 0 */
    syn_tensor t[64];
    int n_t;
    uint64_t rng;
} syn_model;

static float syn_rand(syn_model *s)
{
    s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(s->rng >> 40) / (double)(1ull << 24) - 0.5);
}

static void syn_add(syn_model *s, const char *name, int64_t ne0, int64_t ne1, float base, float amp)
{
    if (s->drop_tensor && !strcmp(name, s->drop_tensor))
        return;
    syn_tensor *t = &s->t[s->n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ne0 = ne0;
    t->ne1 = ne1;
    if (s->bad_shape && !strcmp(name, s->bad_shape))
        t->ne0 += 1;
    t->type = s->f16_tensor && !strcmp(name, s->f16_tensor) ? 1 : 0;
    int64_t n = t->ne0 * (ne1 ? ne1 : 1);
    t->data = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        t->data[i] = base + amp * syn_rand(s);
    if (s->rope_freq_value != 0 && !strcmp(name, "rope_freqs.weight"))
        for (int64_t i = 0; i < n; i++)
            t->data[i] = s->rope_freq_value;
}

static const float *syn_get(const syn_model *s, const char *name)
{
    for (int i = 0; i < s->n_t; i++)
        if (!strcmp(s->t[i].name, name))
            return s->t[i].data;
    return NULL;
}

static void syn_build(syn_model *s)
{
    int64_t Q = s->H * (s->E / s->H), KV = s->HKV * (s->E / s->H);
    char nm[64];
    s->rng = 12345;
    syn_add(s, "token_embd.weight", s->E, s->V, 0, 1.0f);
    syn_add(s, "output_norm.weight", s->E, 0, 1, 0.2f);
    if (!s->tied)
        syn_add(s, "output.weight", s->E, s->V, 0, 0.5f);
    if (s->rope_freqs)
        syn_add(s, "rope_freqs.weight", s->R / 2, 0, 2.5f, 3.0f);
    for (int64_t l = 0; l < s->L; l++) {
#define SYN(suffix, a, b, base, amp)                                  \
    snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)l, suffix);    \
    syn_add(s, nm, a, b, base, amp)
        SYN("attn_norm.weight", s->E, 0, 1, 0.2f);
        SYN("attn_q.weight", s->E, Q, 0, 0.5f);
        SYN("attn_k.weight", s->E, KV, 0, 0.5f);
        SYN("attn_v.weight", s->E, KV, 0, 0.5f);
        if (s->biases) {
            SYN("attn_q.bias", Q, 0, 0, 0.3f);
            SYN("attn_k.bias", KV, 0, 0, 0.3f);
            SYN("attn_v.bias", KV, 0, 0, 0.3f);
        }
        SYN("attn_output.weight", Q, s->E, 0, 0.5f);
        SYN("ffn_norm.weight", s->E, 0, 1, 0.2f);
        SYN("ffn_gate.weight", s->E, s->F, 0, 0.5f);
        SYN("ffn_up.weight", s->E, s->F, 0, 0.5f);
        SYN("ffn_down.weight", s->F, s->E, 0, 0.5f);
#undef SYN
    }
}

/* Serialises s as GGUF v3 (alignment 32) into w (gguf_build.h). */
static void syn_write(const syn_model *s, gb_writer *w)
{
    char key[96];
    struct { const char *name; int64_t v; } ints[] = {
        {"embedding_length", s->E}, {"block_count", s->L}, {"feed_forward_length", s->F},
        {"attention.head_count", s->H}, {"attention.head_count_kv", s->kv_heads_key ? s->kv_heads_key : s->HKV},
        {"context_length", 64}, {"rope.dimension_count", s->rot_key ? s->rot_key : s->R}};
    gb_header(w, 3, (uint64_t)s->n_t, 0); /* n_kv: the keys counted below */
    gb_kv_str(w, "general.architecture", s->arch);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (s->drop_key && !strcmp(s->drop_key, ints[i].name))
            continue;
        snprintf(key, sizeof key, "%s.%s", s->arch, ints[i].name);
        gb_kv_u32(w, key, (uint32_t)ints[i].v);
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", s->arch);
    gb_kv_f32(w, key, 500.0f);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", s->arch);
    gb_kv_f32(w, key, 1e-6f);
    gb_header_counts(w, (uint64_t)s->n_t, (uint64_t)w->n_kv);
    for (int i = 0; i < s->n_t; i++) {
        const syn_tensor *t = &s->t[i];
        const int64_t ne[2] = {t->ne0, t->ne1};
        gb_tensor(w, t->name, t->ne1 ? 2 : 1, ne, t->type);
    }
    gb_pad(w);
    for (int i = 0; i < s->n_t; i++) {
        const syn_tensor *t = &s->t[i];
        int64_t n = t->ne0 * (t->ne1 ? t->ne1 : 1);
        if (t->type == LM_QTYPE_F16) {
            for (int64_t k = 0; k < n; k++) {
                uint16_t h = lm_quant_f32_to_f16(t->data[k]);
                gb_bytes(w, &h, 2);
            }
            gb_pad(w);
        } else {
            gb_tensor_data(w, t->data, sizeof(float) * (size_t)n);
        }
    }
    ck_assert_msg(!w->failed, "synthetic GGUF: the writer failed");
}

static void syn_free(syn_model *s)
{
    for (int i = 0; i < s->n_t; i++)
        free(s->t[i].data);
    s->n_t = 0;
}

static void naive_rmsnorm(const double *x, const float *g, int64_t n, double *y)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / (double)n + 1e-6);
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * r * g[i];
}

/* y[o] = sum_i W[o][i] x[i] (+ b[o]); W stored with rows of n_in values. */
static void naive_mv(const float *W, const float *b, const double *x, int64_t n_in, int64_t n_out,
                     double *y)
{
    for (int64_t o = 0; o < n_out; o++) {
        double acc = b ? b[o] : 0.0;
        for (int64_t i = 0; i < n_in; i++)
            acc += (double)W[o * n_in + i] * x[i];
        y[o] = acc;
    }
}

static void naive_rope(double *v, int64_t pos, const syn_model *s)
{
    int64_t half = s->R / 2;
    const float *ff = syn_get(s, "rope_freqs.weight");
    for (int64_t p = 0; p < half; p++) {
        double th = (double)pos * pow(500.0, -2.0 * (double)p / (double)s->R);
        if (s->rope_freqs)
            th /= ff[p];
        int neox = !strcmp(s->arch, "qwen2");
        int64_t a = neox ? p : 2 * p, b = neox ? p + half : 2 * p + 1;
        double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
}

/* Logits [n, V] of the synthetic model, float64, straight from the equations. */
static void naive_forward(const syn_model *s, const int32_t *tok, int64_t n, double *logits)
{
    int64_t E = s->E, hd = E / s->H, Q = s->H * hd, KV = s->HKV * hd;
    double *x = calloc((size_t)(n * E), sizeof *x), *h = malloc(sizeof(double) * (size_t)(E + s->F));
    double *q = malloc(sizeof(double) * (size_t)(n * Q)), *k = malloc(sizeof(double) * (size_t)(n * KV));
    double *v = malloc(sizeof(double) * (size_t)(n * KV)), *o = malloc(sizeof(double) * (size_t)Q);
    double *a = malloc(sizeof(double) * (size_t)s->F), *u = malloc(sizeof(double) * (size_t)s->F);
    double *y = malloc(sizeof(double) * (size_t)E), *sc = malloc(sizeof(double) * (size_t)n);
    char nm[64];
#define W(suffix) (snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)l, suffix), syn_get(s, nm))
    for (int64_t t = 0; t < n; t++)
        for (int64_t e = 0; e < E; e++)
            x[t * E + e] = syn_get(s, "token_embd.weight")[tok[t] * E + e];
    for (int64_t l = 0; l < s->L; l++) {
        for (int64_t t = 0; t < n; t++) {
            naive_rmsnorm(x + t * E, W("attn_norm.weight"), E, h);
            naive_mv(W("attn_q.weight"), W("attn_q.bias"), h, E, Q, q + t * Q);
            naive_mv(W("attn_k.weight"), W("attn_k.bias"), h, E, KV, k + t * KV);
            naive_mv(W("attn_v.weight"), W("attn_v.bias"), h, E, KV, v + t * KV);
            for (int64_t hh = 0; hh < s->H; hh++)
                naive_rope(q + t * Q + hh * hd, t, s);
            for (int64_t hh = 0; hh < s->HKV; hh++)
                naive_rope(k + t * KV + hh * hd, t, s);
        }
        for (int64_t t = 0; t < n; t++) {
            for (int64_t hh = 0; hh < s->H; hh++) {
                int64_t g = hh / (s->H / s->HKV);
                double mx = -1e300, sum = 0;
                for (int64_t j = 0; j <= t; j++) {
                    sc[j] = 0;
                    for (int64_t d = 0; d < hd; d++)
                        sc[j] += q[t * Q + hh * hd + d] * k[j * KV + g * hd + d];
                    sc[j] /= sqrt((double)hd);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int64_t j = 0; j <= t; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int64_t d = 0; d < hd; d++) {
                    o[hh * hd + d] = 0;
                    for (int64_t j = 0; j <= t; j++)
                        o[hh * hd + d] += sc[j] / sum * v[j * KV + g * hd + d];
                }
            }
            naive_mv(W("attn_output.weight"), NULL, o, Q, E, y);
            for (int64_t e = 0; e < E; e++)
                x[t * E + e] += y[e];
        }
        for (int64_t t = 0; t < n; t++) {
            naive_rmsnorm(x + t * E, W("ffn_norm.weight"), E, h);
            naive_mv(W("ffn_gate.weight"), NULL, h, E, s->F, a);
            naive_mv(W("ffn_up.weight"), NULL, h, E, s->F, u);
            for (int64_t i = 0; i < s->F; i++)
                a[i] = a[i] / (1.0 + exp(-a[i])) * u[i];
            naive_mv(W("ffn_down.weight"), NULL, a, s->F, E, y);
            for (int64_t e = 0; e < E; e++)
                x[t * E + e] += y[e];
        }
    }
#undef W
    const float *out = s->tied ? syn_get(s, "token_embd.weight") : syn_get(s, "output.weight");
    for (int64_t t = 0; t < n; t++) {
        naive_rmsnorm(x + t * E, syn_get(s, "output_norm.weight"), E, h);
        naive_mv(out, NULL, h, E, s->V, logits + t * s->V);
    }
    free(x); free(h); free(q); free(k); free(v); free(o); free(a); free(u); free(y); free(sc);
}

/* Loads s from memory; returns the status, *m set on success. */
static dl_status syn_load(syn_model *s, gb_writer *b, lm_gguf **g, lm_model **m, dl_error *err)
{
    syn_build(s);
    gb_writer_init_mem(b);
    syn_write(s, b);
    *m = NULL;
    *g = lm_gguf_open_buffer(b->p, b->n, err);
    ck_assert_msg(*g != NULL, "synthetic GGUF rejected by the reader: %s", err->message);
    return lm_model_from_gguf(*g, m, err);
}

static void check_synthetic(const char *arch, int biases, int rope_freqs, int tied)
{
    syn_model s = {.arch = arch, .E = 32, .H = 4, .HKV = 2, .F = 48, .L = 2, .V = 40, .R = 6,
                   .biases = biases, .rope_freqs = rope_freqs, .tied = tied};
    gb_writer b;
    lm_gguf *g;
    lm_model *m;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(syn_load(&s, &b, &g, &m, &err) == DL_OK, "%s", err.message);
    ck_assert_int_eq(m->hp.rope_style, !strcmp(arch, "qwen2") ? LM_ROPE_NEOX : LM_ROPE_ADJACENT);
    ck_assert_int_eq(m->rope_freqs != NULL, rope_freqs);
    int32_t tok[20];
    for (int i = 0; i < 20; i++)
        tok[i] = (int32_t)((i * 7 + 3) % s.V);
    double *ref = malloc(sizeof(double) * (size_t)(20 * s.V));
    naive_forward(&s, tok, 20, ref);
    float *out = malloc(sizeof(float) * (size_t)(20 * s.V));
    int64_t pos[20];
    for (int i = 0; i < 20; i++)
        pos[i] = i;
    const char *names[2] = {"ref", "blas"};
    for (int k = 0; k < 2; k++) {
        lm_ctx *ctx = new_ctx(m, names[k], 1, 0);
        ck_assert_int_eq(lm_ctx_logits(ctx, tok, 20, pos, 20, out, &err), DL_OK);
        for (int64_t i = 0; i < 20 * s.V; i++)
            assert_close(out[i], ref[i], names[k], i / s.V, i % s.V);
        lm_ctx_free(ctx);
    }
    free(ref);
    free(out);
    lm_model_free(m);
    lm_gguf_free(g);
    gb_writer_free(&b);
    syn_free(&s);
}

START_TEST(test_synthetic_qwen2)
{
    check_synthetic("qwen2", 1, 0, 0);
}
END_TEST

START_TEST(test_synthetic_llama3)
{
    check_synthetic("llama", 0, 1, 0);
    check_synthetic("llama", 0, 0, 1);
}
END_TEST

/* Files a reader accepts but that are no usable model: clear errors. */
START_TEST(test_bad_models)
{
    struct {
        syn_model s;
        dl_status want;
        const char *field;
    } cases[] = {
        {{.arch = "gpt2"}, DL_ERR_UNSUPPORTED, "general.architecture"},
        {{.arch = "llama", .drop_key = "block_count"}, DL_ERR_INPUT, "llama.block_count"},
        {{.arch = "llama", .drop_key = "embedding_length"}, DL_ERR_INPUT, "llama.embedding_length"},
        {{.arch = "llama", .kv_heads_key = 3}, DL_ERR_INPUT, "attention.head_count_kv"},
        {{.arch = "llama", .rot_key = 5}, DL_ERR_INPUT, "rope.dimension_count"},
        {{.arch = "llama", .rot_key = 16}, DL_ERR_INPUT, "rope.dimension_count"},
        {{.arch = "llama", .drop_tensor = "blk.1.ffn_up.weight"}, DL_ERR_INPUT, "blk.1.ffn_up.weight"},
        {{.arch = "llama", .drop_tensor = "token_embd.weight"}, DL_ERR_INPUT, "token_embd.weight"},
        {{.arch = "llama", .bad_shape = "blk.0.attn_q.weight"}, DL_ERR_INPUT, "blk.0.attn_q.weight"},
        {{.arch = "llama", .bad_shape = "output.weight"}, DL_ERR_INPUT, "output.weight"},
        {{.arch = "llama", .f16_tensor = "blk.0.ffn_norm.weight"}, DL_ERR_UNSUPPORTED,
         "blk.0.ffn_norm.weight"},
        {{.arch = "qwen2", .drop_tensor = "blk.0.attn_k.bias"}, DL_ERR_INPUT, "blk.0.attn_k.bias"},
        {{.arch = "llama", .rope_freqs = 1, .rope_freq_value = -1}, DL_ERR_INPUT, "rope_freqs.weight"},
        {{.arch = "llama", .bad_shape = "rope_freqs.weight", .rope_freqs = 1}, DL_ERR_INPUT,
         "rope_freqs.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        syn_model *s = &cases[i].s;
        s->E = 16;
        s->H = 2;
        s->HKV = 2;
        s->F = 8;
        s->L = 2;
        s->V = 10;
        s->R = 8;
        s->biases = !strcmp(s->arch, "qwen2");
        gb_writer b;
        lm_gguf *g;
        lm_model *m;
        dl_error err;
        dl_error_clear(&err);
        dl_status st = syn_load(s, &b, &g, &m, &err);
        ck_assert_msg(st == cases[i].want, "case %zu: status %d (%s)", i, (int)st, err.message);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.field, cases[i].field) != NULL, "case %zu: field '%s', want '%s'",
                      i, err.field, cases[i].field);
        lm_gguf_free(g);
        gb_writer_free(&b);
        syn_free(s);
    }
}
END_TEST

static Suite *lm_model_suite(void)
{
    Suite *s = suite_create("lm_model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_hparams);
    tcase_add_test(tc, test_golden_stories_ref);
    tcase_add_test(tc, test_golden_stories_blas);
    tcase_add_test(tc, test_golden_mini_f32_ref);
    tcase_add_test(tc, test_golden_mini_f32_blas);
    tcase_add_test(tc, test_golden_mini_f16_blas);
    tcase_add_test(tc, test_golden_mini_q8_blas);
    tcase_add_test(tc, test_stories_greedy_story);
    tcase_add_test(tc, test_backends_agree);
    tcase_add_test(tc, test_batch_identity_blas);
    tcase_add_test(tc, test_batch_identity_ref);
    tcase_add_test(tc, test_blas_generic_kernels);
    tcase_add_test(tc, test_blas_elementwise);
    tcase_add_test(tc, test_prefix_blas);
    tcase_add_test(tc, test_prefix_ref);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_delift_utility);
    tcase_add_test(tc, test_synthetic_qwen2);
    tcase_add_test(tc, test_synthetic_llama3);
    tcase_add_test(tc, test_bad_models);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    dl_test_require_shared("models/delift-mini-f32.gguf");
    return dl_test_run(lm_model_suite());
}
