/* lm_ctx.c: inference contexts, the forward pass and the scoring API
 * (lm_score.h).  The transformer is written once here as calls to the
 * backend ops (lm_backend.h); see docs/engine.md for the memory plan. */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lm_backend.h"
#include "lm_score.h"

#define LM_DEFAULT_BATCH_TOKENS 2048
#define LM_MAX_LANES 256
/* Floats of one lane's logit block: rows = this / n_vocab, at most 256. */
#define LM_LOGIT_BLOCK_FLOATS ((int64_t)1 << 24)

/* Work of one lane in one lm_ctx_score call. */
typedef struct lane_job {
    const lm_prefix *prefix;
    const lm_seq *seqs;
    int64_t first, count;   /* sequences [first, first + count) */
    const int64_t *lp_off;  /* [n_seqs]: offset of each sequence's log-probs */
    float *logprobs;
    float *embeddings;
} lane_job;

/* One lane: a backend instance and its buffers.  Shapes in rows x floats;
 * R = max_batch_tokens, G = max_logit_rows. */
typedef struct lm_lane {
    lm_ctx *ctx;
    lm_backend *be;
    float *x;      /* [R, n_embd] residual stream */
    float *xn;     /* [R, n_embd] normed input of a sub-layer / its output;
                      after the last layer: final-norm hidden states */
    float *q;      /* [R, q_dim] */
    float *k, *v;  /* [R, kv_dim] this forward's keys and values */
    float *att;    /* [R, q_dim] attention output */
    float *gate;   /* [R, n_ff] */
    float *up;     /* [R, n_ff] */
    float *logits; /* [G, n_vocab] */
    float *cs;     /* [n_ctx, n_rot/2, 2] rotary table */
    int32_t *tok;  /* host [R] */
    int32_t *pos;  /* host [R] */
    int64_t *seg;  /* host [R + 1] */
    int32_t *tgt;  /* host [G] */
    double *pool;  /* host [n_embd] */
    lane_job job;
    dl_error err;
    dl_status st;
} lm_lane;

struct lm_ctx {
    const lm_model *model;
    const lm_backend_ops *ops;
    int64_t n_lanes;
    int64_t max_rows;
    int64_t max_logit_rows;
    int64_t n_ctx;
    int q8_act;     /* the fast mode (lm_ctx_params.q8_act) */
    void *shared;   /* ops->shared_new's state for every lane, or NULL */
    lm_lane *lanes;
};

struct lm_prefix {
    lm_ctx *ctx;
    int64_t n, cap;
    float *k, *v;  /* lane 0 buffers [n_layer, cap, kv_dim] */
    float *last;   /* lane 0 buffer [n_embd]: final-norm hidden of token n-1 */
    double *pool;  /* host [n_embd]: sum of final-norm hidden states */
};

lm_ctx_params lm_ctx_params_default(void)
{
    lm_ctx_params p;
    memset(&p, 0, sizeof p);
    return p;
}

/* ---- the forward pass ------------------------------------------------------ */

/* Runs the lane's n rows (lane->tok/pos, segments lane->seg[0..n_seg]) through
 * the model, after `past` (may be NULL); leaves the final-norm hidden states
 * in lane->xn.  With `save`, the rows' keys and values are also written to
 * save's cache at rows save->n.. (one segment only). */
static void lane_forward(lm_lane *ln, const lm_prefix *past, int64_t n, int64_t n_seg,
                         lm_prefix *save)
{
    const lm_model *m = ln->ctx->model;
    const lm_hparams *hp = &m->hp;
    const lm_backend_ops *op = ln->be->ops;
    lm_backend *be = ln->be;
    int64_t d = hp->n_embd, q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    op->embed(be, m->tok_embd, ln->tok, n, ln->x);
    for (int64_t il = 0; il < hp->n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        /* attention block: x += Wo attn(rope(Wq xn), rope(Wk xn), Wv xn) */
        op->rmsnorm(be, ln->x, L->attn_norm, n, hp->rms_eps, ln->xn);
        op->matmul(be, ln->xn, d, ln->seg, n_seg, L->wq, L->bq, ln->q);
        op->matmul(be, ln->xn, d, ln->seg, n_seg, L->wk, L->bk, ln->k);
        op->matmul(be, ln->xn, d, ln->seg, n_seg, L->wv, L->bv, ln->v);
        op->rope(be, ln->q, n, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_style, ln->pos, ln->cs);
        op->rope(be, ln->k, n, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_style, ln->pos,
                 ln->cs);
        if (save) {
            int64_t at = (il * save->cap + save->n) * kv_dim;
            op->copy(be, save->k + at, ln->k, n * kv_dim);
            op->copy(be, save->v + at, ln->v, n * kv_dim);
        }
        lm_attn_args a = {
            .q = ln->q, .k = ln->k, .v = ln->v,
            .past_k = past && past->n ? past->k + il * past->cap * kv_dim : NULL,
            .past_v = past && past->n ? past->v + il * past->cap * kv_dim : NULL,
            .n_past = past ? past->n : 0,
            .seg = ln->seg, .n_seg = n_seg,
            .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
            .scale = (float)(1.0 / sqrt((double)hp->head_dim)),
            .out = ln->att,
        };
        op->attention(be, &a);
        op->matmul(be, ln->att, q_dim, ln->seg, n_seg, L->wo, NULL, ln->xn);
        op->add(be, ln->x, ln->xn, n * d);
        /* feed-forward block: x += W_down (silu(W_gate xn) * (W_up xn)) */
        op->rmsnorm(be, ln->x, L->ffn_norm, n, hp->rms_eps, ln->xn);
        op->matmul(be, ln->xn, d, ln->seg, n_seg, L->w_gate, NULL, ln->gate);
        op->matmul(be, ln->xn, d, ln->seg, n_seg, L->w_up, NULL, ln->up);
        op->swiglu(be, ln->gate, ln->up, n * hp->n_ff);
        op->matmul(be, ln->gate, hp->n_ff, ln->seg, n_seg, L->w_down, NULL, ln->xn);
        op->add(be, ln->x, ln->xn, n * d);
    }
    op->rmsnorm(be, ln->x, m->output_norm, n, hp->rms_eps, ln->xn);
}

/* ---- contexts ------------------------------------------------------------------ */

/* cs[p][i] = (cos, sin)(p * theta_i), theta_i = base^(-2i/n_rot) / freq_factor_i,
 * computed in double. */
static void rope_table(const lm_model *m, int64_t n_ctx, float *cs)
{
    const lm_hparams *hp = &m->hp;
    int64_t half = hp->n_rot / 2;
    const float *ff = m->rope_freqs ? m->rope_freqs->data : NULL;
    for (int64_t i = 0; i < half; i++) {
        double theta = pow((double)hp->rope_freq_base, -2.0 * (double)i / (double)hp->n_rot);
        if (ff)
            theta /= (double)ff[i];
        for (int64_t p = 0; p < n_ctx; p++) {
            cs[(p * half + i) * 2] = (float)cos((double)p * theta);
            cs[(p * half + i) * 2 + 1] = (float)sin((double)p * theta);
        }
    }
}

/* What ctx tells its backend: shared_new and every lane's create. */
static lm_backend_params ctx_backend_params(const lm_ctx *ctx)
{
    return (lm_backend_params){.max_rows = ctx->max_rows,
                               .max_ctx = ctx->n_ctx,
                               .max_logit_rows = ctx->max_logit_rows,
                               .q8_act = ctx->q8_act,
                               .shared = ctx->shared,
                               .threads = (int)ctx->n_lanes};
}

static dl_status lane_init(lm_ctx *ctx, lm_lane *ln, const float *cs_host, dl_error *err)
{
    const lm_hparams *hp = &ctx->model->hp;
    lm_backend_params bp = ctx_backend_params(ctx);
    dl_status st = ctx->ops->create(ctx->model, &bp, &ln->be, err);
    if (st != DL_OK)
        return st;
    lm_backend *be = ln->be;
    int64_t R = ctx->max_rows, q_dim = hp->n_head * hp->head_dim;
    int64_t kv_dim = hp->n_head_kv * hp->head_dim, n_cs = ctx->n_ctx * (hp->n_rot / 2) * 2;
    ln->ctx = ctx;
    ln->x = be->ops->buf_alloc(be, R * hp->n_embd);
    ln->xn = be->ops->buf_alloc(be, R * hp->n_embd);
    ln->q = be->ops->buf_alloc(be, R * q_dim);
    ln->k = be->ops->buf_alloc(be, R * kv_dim);
    ln->v = be->ops->buf_alloc(be, R * kv_dim);
    ln->att = be->ops->buf_alloc(be, R * q_dim);
    ln->gate = be->ops->buf_alloc(be, R * hp->n_ff);
    ln->up = be->ops->buf_alloc(be, R * hp->n_ff);
    ln->logits = be->ops->buf_alloc(be, ctx->max_logit_rows * hp->n_vocab);
    ln->cs = be->ops->buf_alloc(be, n_cs > 0 ? n_cs : 1);
    ln->tok = malloc((size_t)R * sizeof *ln->tok);
    ln->pos = malloc((size_t)R * sizeof *ln->pos);
    ln->seg = malloc((size_t)(R + 1) * sizeof *ln->seg);
    ln->tgt = malloc((size_t)ctx->max_logit_rows * sizeof *ln->tgt);
    ln->pool = malloc((size_t)hp->n_embd * sizeof *ln->pool);
    if (!ln->x || !ln->xn || !ln->q || !ln->k || !ln->v || !ln->att || !ln->gate || !ln->up ||
        !ln->logits || !ln->cs || !ln->tok || !ln->pos || !ln->seg || !ln->tgt || !ln->pool)
        return dl_error_set(err, DL_ERR_NOMEM,
                            "out of memory allocating the activations of %lld tokens",
                            (long long)R);
    if (n_cs > 0)
        be->ops->upload(be, ln->cs, cs_host, n_cs);
    return DL_OK;
}

static void lane_free(lm_lane *ln)
{
    if (!ln->be)
        return;
    lm_backend *be = ln->be;
    float *bufs[] = {ln->x, ln->xn, ln->q, ln->k, ln->v, ln->att, ln->gate, ln->up, ln->logits, ln->cs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->ops->buf_free(be, bufs[i]);
    free(ln->tok);
    free(ln->pos);
    free(ln->seg);
    free(ln->tgt);
    free(ln->pool);
    be->ops->destroy(be);
    ln->be = NULL;
}

static dl_status ctx_check_params(const lm_model *m, const lm_ctx_params *p, lm_ctx *ctx,
                                  dl_error *err)
{
    ctx->ops = p->backend ? lm_backend_find(p->backend) : lm_backend_default();
    if (!ctx->ops)
        return dl_error_set(err, DL_ERR_USAGE, "unknown backend '%s' (built: %s)", p->backend,
                            lm_backend_names());
    int64_t n_threads = p->n_threads;
    if (n_threads <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 ? online : 1;
    }
    if (n_threads > LM_MAX_LANES)
        return dl_error_set(err, DL_ERR_USAGE, "%lld threads: at most %d", (long long)n_threads,
                            LM_MAX_LANES);
    ctx->n_lanes = ctx->ops->concurrent_lanes ? n_threads : 1;
    ctx->n_ctx = p->n_ctx > 0 ? p->n_ctx : m->hp.n_ctx_train;
    ctx->max_rows = p->max_batch_tokens > 0 ? p->max_batch_tokens : LM_DEFAULT_BATCH_TOKENS;
    if (ctx->n_ctx > ((int64_t)1 << 24) || ctx->max_rows > ((int64_t)1 << 24) || p->n_ctx < 0 ||
        p->max_batch_tokens < 0)
        return dl_error_set(err, DL_ERR_USAGE, "n_ctx %lld / max_batch_tokens %lld out of range",
                            (long long)p->n_ctx, (long long)p->max_batch_tokens);
    int64_t g = LM_LOGIT_BLOCK_FLOATS / m->hp.n_vocab;
    ctx->max_logit_rows = g < 1 ? 1 : g > 256 ? 256 : g;
    if (p->q8_act && !ctx->ops->q8_act)
        return dl_error_set(err, DL_ERR_USAGE, "the %s backend has no fast mode (8-bit activations)",
                            ctx->ops->name);
    ctx->q8_act = p->q8_act != 0;
    return DL_OK;
}

dl_status lm_ctx_new(const lm_model *m, const lm_ctx_params *p, lm_ctx **out, dl_error *err)
{
    *out = NULL;
    lm_ctx_params defaults = lm_ctx_params_default();
    if (!p)
        p = &defaults;
    lm_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    ctx->model = m;
    dl_status st = ctx_check_params(m, p, ctx, err);
    float *cs = NULL;
    if (st == DL_OK) {
        int64_t n_cs = ctx->n_ctx * (m->hp.n_rot / 2) * 2;
        ctx->lanes = calloc((size_t)ctx->n_lanes, sizeof *ctx->lanes);
        cs = malloc((size_t)(n_cs > 0 ? n_cs : 1) * sizeof *cs);
        if (!ctx->lanes || !cs)
            st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        else
            rope_table(m, ctx->n_ctx, cs);
    }
    if (st == DL_OK && ctx->ops->shared_new) {
        lm_backend_params bp = ctx_backend_params(ctx); /* shared is still NULL */
        st = ctx->ops->shared_new(m, &bp, &ctx->shared, err);
    }
    for (int64_t l = 0; st == DL_OK && l < ctx->n_lanes; l++)
        st = lane_init(ctx, &ctx->lanes[l], cs, err);
    free(cs);
    if (st != DL_OK) {
        lm_ctx_free(ctx);
        return st;
    }
    *out = ctx;
    return DL_OK;
}

void lm_ctx_free(lm_ctx *ctx)
{
    if (!ctx)
        return;
    for (int64_t l = 0; ctx->lanes && l < ctx->n_lanes; l++)
        lane_free(&ctx->lanes[l]);
    free(ctx->lanes);
    if (ctx->ops && ctx->ops->shared_free)
        ctx->ops->shared_free(ctx->shared);
    free(ctx);
}

const lm_model *lm_ctx_model(const lm_ctx *ctx) { return ctx->model; }
const char *lm_ctx_backend_name(const lm_ctx *ctx) { return ctx->ops->name; }
int64_t lm_ctx_n_lanes(const lm_ctx *ctx) { return ctx->n_lanes; }
int lm_ctx_q8_act(const lm_ctx *ctx) { return ctx->q8_act; }
int64_t lm_ctx_n_ctx(const lm_ctx *ctx) { return ctx->n_ctx; }
int64_t lm_ctx_max_batch_tokens(const lm_ctx *ctx) { return ctx->max_rows; }

/* ---- scoring ----------------------------------------------------------------------- */

/* Log-probabilities of seq's targets, its rows starting at row r0 of lane->xn,
 * into out.  Logit rows are computed in blocks of max_logit_rows counted
 * from the sequence's first target, one segment each, so the arithmetic of
 * a sequence does not depend on its batch. */
static void lane_targets(lm_lane *ln, const lm_prefix *prefix, const lm_seq *seq, int64_t r0,
                         float *out)
{
    const lm_model *m = ln->ctx->model;
    const lm_backend_ops *op = ln->be->ops;
    int64_t d = m->hp.n_embd, V = m->hp.n_vocab, G = ln->ctx->max_logit_rows;
    int64_t t = seq->target_start;
    if (t == 0 && t < seq->target_end) {
        int64_t seg1[2] = {0, 1};
        op->matmul(ln->be, prefix->last, d, seg1, 1, m->output, NULL, ln->logits);
        ln->tgt[0] = seq->tokens[0];
        op->logprob(ln->be, ln->logits, 1, V, ln->tgt, out++);
        t++;
    }
    while (t < seq->target_end) {
        int64_t cnt = seq->target_end - t < G ? seq->target_end - t : G;
        int64_t segc[2] = {0, cnt};
        op->matmul(ln->be, ln->xn + (r0 + t - 1) * d, d, segc, 1, m->output, NULL, ln->logits);
        for (int64_t i = 0; i < cnt; i++)
            ln->tgt[i] = seq->tokens[t + i];
        op->logprob(ln->be, ln->logits, cnt, V, ln->tgt, out);
        out += cnt;
        t += cnt;
    }
}

/* Mean final-norm hidden state over prefix + sequence (rows r0..r0+len). */
static void lane_embed(lm_lane *ln, const lm_prefix *prefix, int64_t r0, int64_t len, float *out)
{
    int64_t d = ln->ctx->model->hp.n_embd, n_past = prefix ? prefix->n : 0;
    for (int64_t j = 0; j < d; j++)
        ln->pool[j] = n_past ? prefix->pool[j] : 0.0;
    ln->be->ops->row_sum(ln->be, ln->xn + r0 * d, len, d, ln->pool);
    for (int64_t j = 0; j < d; j++)
        out[j] = (float)(ln->pool[j] / (double)(n_past + len));
}

/* Scores the lane's job: its sequences packed greedily, in order, into
 * forward passes of at most max_rows rows. */
static dl_status lane_score(lm_lane *ln)
{
    const lane_job *j = &ln->job;
    int64_t d = ln->ctx->model->hp.n_embd, n_past = j->prefix ? j->prefix->n : 0;
    int64_t s = j->first, end = j->first + j->count;
    dl_error_clear(&ln->err);
    while (s < end) {
        int64_t n = 0, n_seg = 0, s0 = s;
        ln->seg[0] = 0;
        while (s < end && n + j->seqs[s].n_tokens <= ln->ctx->max_rows) {
            const lm_seq *q = &j->seqs[s++];
            memcpy(ln->tok + n, q->tokens, (size_t)q->n_tokens * sizeof *ln->tok);
            for (int64_t i = 0; i < q->n_tokens; i++)
                ln->pos[n + i] = (int32_t)(n_past + i);
            n += q->n_tokens;
            ln->seg[++n_seg] = n;
        }
        lane_forward(ln, j->prefix, n, n_seg, NULL);
        for (int64_t t = 0; t < n_seg; t++) {
            const lm_seq *q = &j->seqs[s0 + t];
            lane_targets(ln, j->prefix, q, ln->seg[t], j->logprobs + j->lp_off[s0 + t]);
            if (j->embeddings)
                lane_embed(ln, j->prefix, ln->seg[t], q->n_tokens, j->embeddings + (s0 + t) * d);
        }
        dl_status st = ln->be->ops->sync(ln->be, &ln->err);
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

/* Lane ln is about to work while every other lane is idle: lend it their
 * cores (a no-op for backends without set_threads, and for one lane).  The
 * backend's results are the same bits either way (lm_backend.h). */
static void solo_begin(lm_ctx *ctx, lm_lane *ln)
{
    if (ctx->n_lanes > 1 && ln->be->ops->set_threads)
        ln->be->ops->set_threads(ln->be, (int)ctx->n_lanes);
}

static void solo_end(lm_ctx *ctx, lm_lane *ln)
{
    if (ctx->n_lanes > 1 && ln->be->ops->set_threads)
        ln->be->ops->set_threads(ln->be, 1);
}

static void *lane_thread(void *arg)
{
    lm_lane *ln = arg;
    ln->st = lane_score(ln);
    return NULL;
}

static dl_status check_tokens(const lm_ctx *ctx, const int32_t *tokens, int64_t n, int64_t idx,
                              dl_error *err)
{
    char field[48];
    snprintf(field, sizeof field, "seq[%lld]", (long long)idx);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= ctx->model->hp.n_vocab)
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, field,
                                   "token %lld is id %ld, outside the vocabulary [0, %lld)",
                                   (long long)i, (long)tokens[i], (long long)ctx->model->hp.n_vocab);
    return DL_OK;
}

static dl_status check_seq(const lm_ctx *ctx, const lm_prefix *prefix, const lm_seq *q,
                           int64_t idx, dl_error *err)
{
    char field[48];
    snprintf(field, sizeof field, "seq[%lld]", (long long)idx);
    int64_t n_past = prefix ? prefix->n : 0;
    if (!q->tokens || q->n_tokens < 1)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, field, "no tokens");
    if (q->target_start < (n_past ? 0 : 1) || q->target_start > q->target_end ||
        q->target_end > q->n_tokens)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, field,
                               "target span [%lld, %lld) is not inside [%d, %lld]",
                               (long long)q->target_start, (long long)q->target_end,
                               n_past ? 0 : 1, (long long)q->n_tokens);
    if (q->n_tokens > ctx->max_rows || n_past + q->n_tokens > ctx->n_ctx)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, field,
                               "%lld tokens (after a prefix of %lld) do not fit: batch %lld, "
                               "context %lld",
                               (long long)q->n_tokens, (long long)n_past, (long long)ctx->max_rows,
                               (long long)ctx->n_ctx);
    return check_tokens(ctx, q->tokens, q->n_tokens, idx, err);
}

dl_status lm_ctx_score(lm_ctx *ctx, const lm_prefix *prefix, const lm_seq *seqs, int64_t n_seqs,
                       float *logprobs, float *embeddings, dl_error *err)
{
    if (n_seqs < 0 || (n_seqs > 0 && !seqs) || (prefix && prefix->ctx != ctx))
        return dl_error_set(err, DL_ERR_USAGE, "bad arguments to lm_ctx_score");
    int64_t *lp_off = malloc((size_t)(n_seqs + 1) * sizeof *lp_off);
    if (!lp_off)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    int64_t total = 0;
    lp_off[0] = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        dl_status st = check_seq(ctx, prefix, &seqs[i], i, err);
        if (st != DL_OK) {
            free(lp_off);
            return st;
        }
        lp_off[i + 1] = lp_off[i] + seqs[i].target_end - seqs[i].target_start;
        total += seqs[i].n_tokens;
    }
    /* Contiguous runs of sequences, about total / n_lanes tokens each. */
    int64_t s = 0, cum = 0, used = 0, busy = 0, solo = 0;
    pthread_t tid[LM_MAX_LANES];
    int started[LM_MAX_LANES] = {0};
    for (int64_t l = 0; l < ctx->n_lanes; l++) {
        lm_lane *ln = &ctx->lanes[l];
        int64_t first = s;
        while (s < n_seqs && (l == ctx->n_lanes - 1 ||
                              (cum + seqs[s].n_tokens / 2) * ctx->n_lanes < total * (l + 1)))
            cum += seqs[s++].n_tokens;
        ln->job = (lane_job){prefix, seqs, first, s - first, lp_off, logprobs, embeddings};
        ln->st = DL_OK;
        if (s > first) {
            used = l + 1;
            busy++;
            solo = l;
        }
    }
    if (busy == 1) { /* one lane has all the work: it gets every core */
        lm_lane *ln = &ctx->lanes[solo];
        solo_begin(ctx, ln);
        ln->st = lane_score(ln);
        solo_end(ctx, ln);
        dl_status st = ln->st;
        if (st != DL_OK && err && err->code == DL_OK)
            *err = ln->err;
        free(lp_off);
        return st;
    }
    for (int64_t l = 1; l < used; l++)
        started[l] = pthread_create(&tid[l], NULL, lane_thread, &ctx->lanes[l]) == 0;
    for (int64_t l = 1; l < used; l++)
        if (!started[l]) /* no thread to be had: run it here */
            ctx->lanes[l].st = lane_score(&ctx->lanes[l]);
    ctx->lanes[0].st = used > 0 ? lane_score(&ctx->lanes[0]) : DL_OK;
    dl_status st = DL_OK;
    for (int64_t l = 0; l < used; l++) {
        if (l > 0 && started[l])
            pthread_join(tid[l], NULL);
        if (st == DL_OK && ctx->lanes[l].st != DL_OK) {
            st = ctx->lanes[l].st;
            if (err && err->code == DL_OK)
                *err = ctx->lanes[l].err;
        }
    }
    free(lp_off);
    return st;
}

dl_status lm_ctx_logits(lm_ctx *ctx, const int32_t *tokens, int64_t n, const int64_t *positions,
                        int64_t n_pos, float *out, dl_error *err)
{
    lm_seq q = {tokens, n, 1, 1};
    dl_status st = check_seq(ctx, NULL, &q, 0, err);
    if (st != DL_OK)
        return st;
    for (int64_t j = 0; j < n_pos; j++)
        if (positions[j] < 0 || positions[j] >= n)
            return dl_error_set(err, DL_ERR_USAGE, "position %lld is outside [0, %lld)",
                                (long long)positions[j], (long long)n);
    lm_lane *ln = &ctx->lanes[0];
    const lm_model *m = ctx->model;
    int64_t d = m->hp.n_embd, V = m->hp.n_vocab;
    memcpy(ln->tok, tokens, (size_t)n * sizeof *tokens);
    for (int64_t i = 0; i < n; i++)
        ln->pos[i] = (int32_t)i;
    ln->seg[0] = 0;
    ln->seg[1] = n;
    solo_begin(ctx, ln);
    lane_forward(ln, NULL, n, 1, NULL);
    solo_end(ctx, ln);
    for (int64_t j = 0; j < n_pos; j++) {
        int64_t seg1[2] = {0, 1};
        ln->be->ops->matmul(ln->be, ln->xn + positions[j] * d, d, seg1, 1, m->output, NULL,
                            ln->logits);
        ln->be->ops->download(ln->be, out + j * V, ln->logits, V);
    }
    return ln->be->ops->sync(ln->be, err);
}

/* ---- shared prefixes ------------------------------------------------------- */

dl_status lm_prefix_new(lm_ctx *ctx, const int32_t *tokens, int64_t n, int64_t capacity,
                        lm_prefix **out, dl_error *err)
{
    *out = NULL;
    if (n < 0 || capacity < n || capacity < 1 || capacity > ctx->n_ctx)
        return dl_error_set(err, DL_ERR_USAGE,
                            "prefix of %lld tokens, capacity %lld: need n <= capacity <= %lld",
                            (long long)n, (long long)capacity, (long long)ctx->n_ctx);
    const lm_hparams *hp = &ctx->model->hp;
    lm_backend *be = ctx->lanes[0].be;
    int64_t kv = hp->n_layer * capacity * hp->n_head_kv * hp->head_dim;
    lm_prefix *p = calloc(1, sizeof *p);
    if (!p)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    p->ctx = ctx;
    p->cap = capacity;
    p->k = be->ops->buf_alloc(be, kv);
    p->v = be->ops->buf_alloc(be, kv);
    p->last = be->ops->buf_alloc(be, hp->n_embd);
    p->pool = calloc((size_t)hp->n_embd, sizeof *p->pool);
    if (!p->k || !p->v || !p->last || !p->pool) {
        lm_prefix_free(p);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for a prefix cache of %lld tokens",
                            (long long)capacity);
    }
    dl_status st = lm_prefix_append(ctx, p, tokens, n, err);
    if (st != DL_OK) {
        lm_prefix_free(p);
        return st;
    }
    *out = p;
    return DL_OK;
}

dl_status lm_prefix_append(lm_ctx *ctx, lm_prefix *p, const int32_t *tokens, int64_t n,
                           dl_error *err)
{
    if (p->ctx != ctx || n < 0 || n > p->cap - p->n)
        return dl_error_set(err, DL_ERR_USAGE, "%lld tokens do not fit the prefix (%lld of %lld)",
                            (long long)n, (long long)p->n, (long long)p->cap);
    dl_status st = check_tokens(ctx, tokens, n, 0, err);
    if (st != DL_OK)
        return st;
    lm_lane *ln = &ctx->lanes[0];
    const lm_backend_ops *op = ln->be->ops;
    int64_t d = ctx->model->hp.n_embd;
    for (int64_t done = 0; done < n;) {
        int64_t c = n - done < ctx->max_rows ? n - done : ctx->max_rows;
        memcpy(ln->tok, tokens + done, (size_t)c * sizeof *tokens);
        for (int64_t i = 0; i < c; i++)
            ln->pos[i] = (int32_t)(p->n + i);
        ln->seg[0] = 0;
        ln->seg[1] = c;
        solo_begin(ctx, ln);
        lane_forward(ln, p, c, 1, p);
        solo_end(ctx, ln);
        op->copy(ln->be, p->last, ln->xn + (c - 1) * d, d);
        op->row_sum(ln->be, ln->xn, c, d, p->pool);
        p->n += c;
        done += c;
        if ((st = op->sync(ln->be, err)) != DL_OK)
            return st;
    }
    return DL_OK;
}

dl_status lm_prefix_logits(lm_ctx *ctx, const lm_prefix *p, float *out, dl_error *err)
{
    if (p->ctx != ctx || p->n < 1)
        return dl_error_set(err, DL_ERR_USAGE, "empty prefix has no logits");
    lm_lane *ln = &ctx->lanes[0];
    int64_t seg1[2] = {0, 1};
    ln->be->ops->matmul(ln->be, p->last, ctx->model->hp.n_embd, seg1, 1, ctx->model->output, NULL,
                        ln->logits);
    ln->be->ops->download(ln->be, out, ln->logits, ctx->model->hp.n_vocab);
    return ln->be->ops->sync(ln->be, err);
}

int64_t lm_prefix_len(const lm_prefix *p)
{
    return p->n;
}

void lm_prefix_free(lm_prefix *p)
{
    if (!p)
        return;
    lm_backend *be = p->ctx->lanes[0].be;
    be->ops->buf_free(be, p->k);
    be->ops->buf_free(be, p->v);
    be->ops->buf_free(be, p->last);
    free(p->pool);
    free(p);
}
