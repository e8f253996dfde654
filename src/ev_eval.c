/* ev_eval.c: `delift eval`'s measurement (ev.h): nearest example by
 * embedding, then d and mean log-likelihood with and without it. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ds_int.h"
#include "ev.h"
#include "knn.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void ev_params_init(ev_params *p)
{
    memset(p, 0, sizeof *p);
    rec_reader_opts_init(&p->rec_opts);
}

/* ---- summary ------------------------------------------------------------------- */

/* The k-th summarised quantity of r (k < EV_N_COLS), in ev_summary's order. */
enum { EV_N_COLS = 6 };
static double col_of(const ev_record *r, int k)
{
    switch (k) {
    case 0: return r->d_icl;
    case 1: return r->d_noicl;
    case 2: return r->d_icl - r->d_noicl;
    case 3: return r->ll_icl;
    case 4: return r->ll_noicl;
    default: return r->ll_icl - r->ll_noicl;
    }
}

static int scored(const ev_record *r)
{
    return isfinite(r->d_icl) && isfinite(r->d_noicl) && isfinite(r->ll_icl) &&
           isfinite(r->ll_noicl);
}

void ev_summarize(const ev_record *recs, int64_t n, ev_summary *out)
{
    memset(out, 0, sizeof *out);
    out->n_heldout = n;
    for (int64_t i = 0; i < n; i++)
        if (scored(&recs[i])) {
            out->n_scored++;
            out->n_helped += recs[i].d_icl < recs[i].d_noicl;
        }
    int64_t m = out->n_scored;
    out->n_unscorable = n - m;
    out->frac_helped = m > 0 ? (double)out->n_helped / (double)m : NAN;
    ev_stat *dst[EV_N_COLS] = {&out->d_icl, &out->d_noicl, &out->d_diff,
                               &out->ll_icl, &out->ll_noicl, &out->ll_diff};
    for (int k = 0; k < EV_N_COLS; k++) {
        /* two passes (mean, then squared deviations): no cancellation */
        double sum = 0, ss = 0;
        for (int64_t i = 0; i < n; i++)
            if (scored(&recs[i]))
                sum += col_of(&recs[i], k);
        double mean = m > 0 ? sum / (double)m : NAN;
        for (int64_t i = 0; i < n; i++)
            if (scored(&recs[i])) {
                double dv = col_of(&recs[i], k) - mean;
                ss += dv * dv;
            }
        dst[k]->mean = mean;
        dst[k]->std = m > 0 ? sqrt(ss / (double)m) : NAN;
    }
}

/* ---- the run ------------------------------------------------------------------- */

typedef struct ev_state {
    const ev_params *p;
    rec_pool *subset, *heldout;
    lm_model *model;
    lm_tok *tok;
    lm_ctx *ctx;
    ut_scorer *scorer;
    ut_set *s_subset, *s_heldout;
    uint8_t model_hash[32];
} ev_state;

static void progress(const ev_state *st, const char *phase, int64_t done, int64_t total)
{
    if (st->p->progress)
        st->p->progress(st->p->progress_ctx, phase, done, total);
}

static void ut_progress_bridge(void *ctx, const char *phase, int64_t done, int64_t total)
{
    progress((const ev_state *)ctx, phase, done, total);
}

static dl_status load_set(const ev_state *st, const char *path, const char *role,
                          rec_pool **out, dl_error *err)
{
    if (!path) {
        dl_status s = dl_error_set(err, DL_ERR_USAGE, "the %s file is required", role);
        dl_error_locate(err, NULL, 0, role);
        return s;
    }
    dl_status s = rec_pool_load(path, &st->p->rec_opts, out, err);
    if (s) {
        /* rec.h names the file; the role says which flag it came from */
        if (err && !err->field[0])
            dl_error_locate(err, path, 0, role);
        return s;
    }
    if ((*out)->n == 0)
        return dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, -1, role,
                               "the %s set has no usable record", role);
    return DL_OK;
}

static dl_status load_model(ev_state *st, dl_error *err)
{
    const ev_params *p = st->p;
    progress(st, "model", 0, 1);
    if (!p->model_path) {
        dl_status s = dl_error_set(err, DL_ERR_USAGE, "a model is required");
        dl_error_locate(err, NULL, 0, "model");
        return s;
    }
    dl_status s = ds_engine_open(p->model_path, p->backend, p->threads, p->fast, &st->model, &st->tok,
                                 &st->ctx, st->model_hash, err);
    if (!s)
        s = ut_scorer_new(st->ctx, st->tok, &p->ut, st->model_hash, NULL, &st->scorer, err);
    if (!s)
        s = ut_set_from_pool(st->subset, st->tok, &st->s_subset, err);
    if (!s)
        s = ut_set_from_pool(st->heldout, st->tok, &st->s_heldout, err);
    progress(st, "model", 1, 1);
    return s;
}

/* example[h]: the subset record nearest to held-out record h, and the cosine. */
static dl_status nearest(ev_state *st, int64_t *example, float *sim, dl_error *err)
{
    int64_t dim = st->model->hp.n_embd, ns = st->s_subset->n, nh = st->s_heldout->n;
    float *es = malloc((size_t)(ns * dim) * sizeof *es); /* [ns, dim] */
    float *eh = malloc((size_t)(nh * dim) * sizeof *eh); /* [nh, dim] */
    ut_hooks h = {ut_progress_bridge, st, st->p->cancel};
    dl_status s = es && eh ? DL_OK
                           : dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld embeddings",
                                          (long long)(ns + nh));
    if (!s)
        s = ut_embed(st->scorer, st->s_subset, es, &h, err);
    if (!s)
        s = ut_embed(st->scorer, st->s_heldout, eh, &h, err);
    if (!s)
        s = knn_search(eh, nh, es, ns, dim, 1, example, sim, err);
    free(es);
    free(eh);
    return s;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Scores every held-out record with and without its example; fills r->records. */
static dl_status measure(ev_state *st, ev_report *r, dl_error *err)
{
    int64_t nh = st->s_heldout->n;
    int64_t *example = malloc((size_t)nh * sizeof *example);
    int64_t *row_ptr = malloc((size_t)(nh + 1) * sizeof *row_ptr);
    float *sim = malloc((size_t)nh * sizeof *sim);
    double *v = malloc((size_t)(4 * nh) * sizeof *v); /* d_icl, ll_icl, d_noicl, ll_noicl: [4][nh] */
    r->records = calloc((size_t)nh, sizeof *r->records);
    dl_status s = example && row_ptr && sim && v && r->records
                      ? DL_OK
                      : dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld records",
                                     (long long)nh);
    if (!s)
        s = nearest(st, example, sim, err);
    ut_hooks h = {ut_progress_bridge, st, st->p->cancel};
    if (!s)
        s = ut_score_noicl_ll(st->scorer, st->s_heldout, v + 2 * nh, v + 3 * nh, &h, err);
    if (!s) {
        /* one pair per row: (h, example[h]) */
        for (int64_t i = 0; i <= nh; i++)
            row_ptr[i] = i;
        ut_pairs pairs = {row_ptr, example};
        s = ut_score_icl_ll(st->scorer, st->s_heldout, st->s_subset, &pairs, v, v + nh, &h, err);
    }
    for (int64_t i = 0; !s && i < nh; i++) {
        ev_record *e = &r->records[i];
        e->heldout_index = i;
        e->example_index = example[i];
        e->similarity = sim[i];
        e->d_icl = v[i];
        e->ll_icl = v[nh + i];
        e->d_noicl = v[2 * nh + i];
        e->ll_noicl = v[3 * nh + i];
        e->heldout_id = dup_str(st->heldout->records[i].id);
        e->example_id = dup_str(st->subset->records[example[i]].id);
        if (!e->heldout_id || !e->example_id)
            s = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    free(example);
    free(row_ptr);
    free(sim);
    free(v);
    return s;
}

static void hex32(const uint8_t h[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[64] = '\0';
}

dl_status ev_run(const ev_params *p, ev_report **out, dl_error *err)
{
    double t0 = now_s();
    *out = NULL;
    ev_state st;
    memset(&st, 0, sizeof st);
    st.p = p;
    ev_report *r = calloc(1, sizeof *r);
    dl_status s = r ? DL_OK : dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (!s) {
        s = ut_config_check(&p->ut, err);
        if (!s && !p->model_path) {
            s = dl_error_set(err, DL_ERR_USAGE, "a model is required");
            dl_error_locate(err, NULL, 0, "model");
        }
    }
    progress(&st, "load", 0, 1);
    if (!s)
        s = load_set(&st, p->subset_path, "subset", &st.subset, err);
    if (!s)
        s = load_set(&st, p->heldout_path, "heldout", &st.heldout, err);
    progress(&st, "load", 1, 1);
    if (!s)
        s = load_model(&st, err);
    if (!s)
        r->sum.n_heldout = st.heldout->n; /* for ev_report_free, even on failure below */
    if (!s)
        s = measure(&st, r, err);
    if (!s) {
        ev_summarize(r->records, st.heldout->n, &r->sum);
        r->sum.n_subset = st.subset->n;
        hex32(st.model_hash, r->model_sha256);
        r->sum.seconds = now_s() - t0;
    }
    ut_set_free(st.s_subset);
    ut_set_free(st.s_heldout);
    ut_scorer_free(st.scorer);
    lm_ctx_free(st.ctx);
    lm_tok_free(st.tok);
    lm_model_free(st.model);
    rec_pool_free(st.subset);
    rec_pool_free(st.heldout);
    if (s) {
        ev_report_free(r);
        return s;
    }
    *out = r;
    return DL_OK;
}

void ev_report_free(ev_report *r)
{
    if (!r)
        return;
    if (r->records)
        for (int64_t i = 0; i < r->sum.n_heldout; i++) {
            free(r->records[i].heldout_id);
            free(r->records[i].example_id);
        }
    free(r->records);
    free(r);
}
