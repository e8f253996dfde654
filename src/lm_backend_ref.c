/* lm_backend_ref.c: the reference backend (lm_backend.h), the test oracle.
 *
 * Plain loops over host memory, written to be read against the maths, with
 * every reduction in double and in a fixed order, so its results depend on
 * nothing but its inputs (no threads, no blocking, no BLAS).  Dot products
 * keep four double partial sums (element k goes to sum k % 4, combined as
 * (s0 + s1) + (s2 + s3)): the order is fixed, and the four chains keep the
 * loop from being latency-bound.  Weights are dequantised one row at a time
 * by lm_quant_dequant_row, the same exact conversion every backend uses.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_backend.h"
#include "lm_quant.h"

typedef struct ref_backend {
    lm_backend base;
    const lm_model *model;
    float *wrow;       /* [max_cols]: one dequantised weight row */
    double *scores;    /* [max_ctx]: one query's attention weights */
    int64_t max_ctx;
    dl_status failure; /* sticky, reported by sync */
} ref_backend;

static dl_status ref_create(const lm_model *m, const lm_backend_params *p, lm_backend **out,
                            dl_error *err)
{
    const lm_hparams *hp = &m->hp;
    int64_t max_cols = hp->n_embd;
    if (hp->n_head * hp->head_dim > max_cols)
        max_cols = hp->n_head * hp->head_dim;
    if (hp->n_ff > max_cols)
        max_cols = hp->n_ff;
    ref_backend *be = calloc(1, sizeof *be);
    if (be) {
        be->wrow = malloc((size_t)max_cols * sizeof *be->wrow);
        be->scores = malloc((size_t)p->max_ctx * sizeof *be->scores);
    }
    if (!be || !be->wrow || !be->scores) {
        if (be) {
            free(be->wrow);
            free(be->scores);
        }
        free(be);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory creating the ref backend");
    }
    be->base.ops = &lm_backend_ref_ops;
    be->model = m;
    be->max_ctx = p->max_ctx;
    *out = &be->base;
    return DL_OK;
}

static void ref_destroy(lm_backend *b)
{
    ref_backend *be = (ref_backend *)b;
    if (!be)
        return;
    free(be->wrow);
    free(be->scores);
    free(be);
}

static dl_status ref_sync(lm_backend *b, dl_error *err)
{
    ref_backend *be = (ref_backend *)b;
    if (be->failure != DL_OK)
        return dl_error_set(err, be->failure, "ref backend: an operation failed");
    return DL_OK;
}

static float *ref_buf_alloc(lm_backend *b, int64_t n)
{
    (void)b;
    return n > 0 ? malloc((size_t)n * sizeof(float)) : NULL;
}

static void ref_buf_free(lm_backend *b, float *buf)
{
    (void)b;
    free(buf);
}

static void ref_copy(lm_backend *b, float *dst, const float *src, int64_t n)
{
    (void)b;
    memmove(dst, src, (size_t)n * sizeof *dst);
}

/* Fixed-order dot product: four double partial sums. */
static double dot4(const float *a, const float *b, int64_t n)
{
    double s[4] = {0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 4 <= n; k += 4)
        for (int l = 0; l < 4; l++)
            s[l] += (double)a[k + l] * (double)b[k + l];
    for (int l = 0; k < n; k++, l++)
        s[l] += (double)a[k] * (double)b[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static void ref_embed(lm_backend *b, const lm_weight *tok, const int32_t *ids, int64_t n, float *x)
{
    (void)b;
    const unsigned char *base = tok->data;
    for (int64_t i = 0; i < n; i++)
        lm_quant_dequant_row(tok->type, base + (size_t)ids[i] * tok->row_bytes, x + i * tok->n_cols,
                             tok->n_cols);
}

static void ref_rmsnorm(lm_backend *b, const float *x, const lm_weight *w, int64_t n, float eps,
                        float *y)
{
    (void)b;
    int64_t d = w->n_cols;
    const float *g = w->data;
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double ss = dot4(xi, xi, d);
        double r = 1.0 / sqrt(ss / (double)d + (double)eps);
        for (int64_t j = 0; j < d; j++)
            y[i * d + j] = (float)((double)xi[j] * r * (double)g[j]);
    }
}

/* One weight row at a time, dequantised once and applied to every input
 * row: segments do not matter, every output is one dot4. */
static void ref_matmul(lm_backend *b, const float *x, int64_t ldx, const int64_t *seg,
                       int64_t n_seg, const lm_weight *w, const lm_weight *bias, float *y)
{
    ref_backend *be = (ref_backend *)b;
    int64_t n = seg[n_seg];
    const unsigned char *base = w->data;
    const float *bv = bias ? bias->data : NULL;
    for (int64_t j = 0; j < w->n_rows; j++) {
        lm_quant_dequant_row(w->type, base + (size_t)j * w->row_bytes, be->wrow, w->n_cols);
        for (int64_t i = 0; i < n; i++) {
            double s = dot4(x + i * ldx, be->wrow, w->n_cols);
            if (bv)
                s += (double)bv[j];
            y[i * w->n_rows + j] = (float)s;
        }
    }
}

static void ref_rope(lm_backend *b, float *x, int64_t n, int64_t n_heads, int64_t head_dim,
                     int64_t n_rot, lm_rope_style style, const int32_t *pos, const float *cs)
{
    (void)b;
    int64_t half = n_rot / 2;
    for (int64_t i = 0; i < n; i++) {
        const float *c = cs + (int64_t)pos[i] * half * 2;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + i * n_heads * head_dim + h * head_dim;
            for (int64_t p = 0; p < half; p++) {
                int64_t a = style == LM_ROPE_NEOX ? p : 2 * p;
                int64_t bi = style == LM_ROPE_NEOX ? p + half : 2 * p + 1;
                double x0 = v[a], x1 = v[bi], co = c[2 * p], si = c[2 * p + 1];
                v[a] = (float)(x0 * co - x1 * si);
                v[bi] = (float)(x0 * si + x1 * co);
            }
        }
    }
}

/* Key/value row t (0 <= t < n_past + own) of a segment: the past first. */
static const float *kv_row(const float *past, const float *own, int64_t n_past, int64_t t,
                           int64_t kv_dim)
{
    return t < n_past ? past + t * kv_dim : own + (t - n_past) * kv_dim;
}

static void ref_attention(lm_backend *b, const lm_attn_args *a)
{
    ref_backend *be = (ref_backend *)b;
    int64_t hd = a->head_dim, q_dim = a->n_head * hd, kv_dim = a->n_head_kv * hd;
    int64_t group = a->n_head / a->n_head_kv;
    double *sc = be->scores;
    for (int64_t s = 0; s < a->n_seg; s++) {
        int64_t r0 = a->seg[s], len = a->seg[s + 1] - r0;
        const float *k = a->k + r0 * kv_dim, *v = a->v + r0 * kv_dim;
        for (int64_t i = 0; i < len; i++) {
            int64_t n_keys = a->n_past + i + 1;
            for (int64_t h = 0; h < a->n_head; h++) {
                const float *q = a->q + (r0 + i) * q_dim + h * hd;
                int64_t off = (h / group) * hd;
                double mx = -INFINITY, sum = 0;
                for (int64_t t = 0; t < n_keys; t++) {
                    const float *kr = kv_row(a->past_k, k, a->n_past, t, kv_dim) + off;
                    sc[t] = dot4(q, kr, hd) * (double)a->scale;
                    if (sc[t] > mx)
                        mx = sc[t];
                }
                for (int64_t t = 0; t < n_keys; t++) {
                    sc[t] = exp(sc[t] - mx);
                    sum += sc[t];
                }
                float *o = a->out + (r0 + i) * q_dim + h * hd;
                for (int64_t d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int64_t t = 0; t < n_keys; t++)
                        acc += sc[t] * (double)kv_row(a->past_v, v, a->n_past, t, kv_dim)[off + d];
                    o[d] = (float)(acc / sum);
                }
            }
        }
    }
}

static void ref_swiglu(lm_backend *b, float *gate, const float *up, int64_t n)
{
    (void)b;
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        gate[i] = (float)(g / (1.0 + exp(-g)) * (double)up[i]);
    }
}

static void ref_add(lm_backend *b, float *x, const float *y, int64_t n)
{
    (void)b;
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

static void ref_logprob(lm_backend *b, float *logits, int64_t n, int64_t n_vocab,
                        const int32_t *targets, float *out)
{
    (void)b;
    for (int64_t i = 0; i < n; i++) {
        const float *l = logits + i * n_vocab;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n_vocab; j++)
            if (l[j] > mx)
                mx = l[j];
        for (int64_t j = 0; j < n_vocab; j++)
            sum += exp((double)l[j] - mx);
        out[i] = (float)((double)l[targets[i]] - mx - log(sum));
    }
}

static void ref_row_sum(lm_backend *b, const float *x, int64_t n, int64_t dim, double *sum)
{
    (void)b;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            sum[j] += (double)x[i * dim + j];
}

const lm_backend_ops lm_backend_ref_ops = {
    .name = "ref",
    .exact_segments = 1,
    .concurrent_lanes = 1,
    .create = ref_create,
    .destroy = ref_destroy,
    .sync = ref_sync,
    .buf_alloc = ref_buf_alloc,
    .buf_free = ref_buf_free,
    .upload = ref_copy,
    .download = ref_copy,
    .copy = ref_copy,
    .embed = ref_embed,
    .rmsnorm = ref_rmsnorm,
    .matmul = ref_matmul,
    .rope = ref_rope,
    .attention = ref_attention,
    .swiglu = ref_swiglu,
    .add = ref_add,
    .logprob = ref_logprob,
    .row_sum = ref_row_sum,
};
