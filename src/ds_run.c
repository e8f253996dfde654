/* ds_run.c: the selection pipeline (ds.h, docs/pipeline.md): inputs, model,
 * pairs, utility kernels, greedy selection, outputs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dl_file.h"
#include "dl_sha256.h"
#include "ds.h"
#include "ds_int.h"
#include "knn.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"
#include "sel.h"
#include "sel_npy.h"
#include "sel_npz.h"
#include "ut.h"
#include "ut_cache.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the run's state --------------------------------------------------------- */

typedef struct ds_kernel {
    const char *name;   /* "S", "Q", "P" */
    int64_t rows, cols; /* as sel sees it */
    float *dense;       /* rows x cols, or NULL */
    int64_t *indptr;    /* CSR, or NULL */
    int64_t *indices;
    float *values;
    double u_min, u_max; /* U range before scaling */
    sel_kernel view;
} ds_kernel;

typedef struct ds_state {
    const ds_params *p;
    ds_summary sum;
    rec_pool *pool, *target, *existing;
    uint8_t pool_hash[32], target_hash[32], existing_hash[32], model_hash[32];
    lm_model *model;
    lm_tok *tok;
    lm_ctx *ctx;
    ut_cache *cache;
    ut_scorer *scorer;
    ut_set *s_pool, *s_target, *s_existing;
    double *dn_pool, *dn_target;
    ds_kernel S, Q, P;
    int64_t knn_k;
    sel_fn_kind fn;
    sel_result res;
    int64_t budget;
    double t_start, t_score, t_select;
    const char *pairs_mode; /* what was used, for the manifest */
} ds_state;

static void kernel_free(ds_kernel *k)
{
    free(k->dense);
    free(k->indptr);
    free(k->indices);
    free(k->values);
}

static void progress(ds_state *st, const char *phase, int64_t done, int64_t total)
{
    if (st->p->progress)
        st->p->progress(st->p->progress_ctx, phase, done, total);
}

static dl_status check_cancel(ds_state *st, dl_error *err)
{
    if (st->p->cancel && atomic_load(st->p->cancel))
        return dl_error_set(err, DL_ERR_CANCELLED, "cancelled");
    return DL_OK;
}

/* ---- inputs ------------------------------------------------------------------- */

static dl_status load_set(ds_state *st, const char *path, const char *role, rec_pool **out,
                          uint8_t hash[32], dl_error *err)
{
    dl_status s = rec_pool_load(path, &st->p->rec_opts, out, err);
    if (!s && (*out)->n == 0)
        s = dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, -1, role,
                            "the %s set has no usable record", role);
    if (!s)
        s = ds_hash_file(path, hash, err);
    return s;
}

static dl_status load_inputs(ds_state *st, dl_error *err)
{
    const ds_params *p = st->p;
    progress(st, "load", 0, 1);
    if (!p->model_path || !p->pool_path) {
        dl_status s = dl_error_set(err, DL_ERR_USAGE, "a model and a pool are required");
        dl_error_locate(err, NULL, 0, p->model_path ? "pool" : "model");
        return s;
    }
    if ((p->stage == DS_STAGE_TASK) != (p->target_path != NULL)) {
        dl_status s = dl_error_set(err, DL_ERR_USAGE, p->target_path
                                   ? "a target set is only used by the task stage"
                                   : "the task stage needs a target set");
        dl_error_locate(err, NULL, 0, "target");
        return s;
    }
    if ((p->stage == DS_STAGE_CONTINUAL) != (p->existing_path != NULL)) {
        dl_status s = dl_error_set(err, DL_ERR_USAGE, p->existing_path
                                   ? "an existing set is only used by the continual stage"
                                   : "the continual stage needs an existing set");
        dl_error_locate(err, NULL, 0, "existing");
        return s;
    }
    dl_status s = load_set(st, p->pool_path, "pool", &st->pool, st->pool_hash, err);
    if (!s && p->target_path)
        s = load_set(st, p->target_path, "target", &st->target, st->target_hash, err);
    if (!s && p->existing_path)
        s = load_set(st, p->existing_path, "existing", &st->existing, st->existing_hash, err);
    if (s)
        return s;
    st->sum.n_pool = st->pool->n;
    st->sum.n_target = st->target ? st->target->n : 0;
    st->sum.n_existing = st->existing ? st->existing->n : 0;
    /* the budget, checked before any model work */
    double b = p->budget;
    int64_t n = st->pool->n;
    if (!(b > 0) || !isfinite(b) || (b >= 1 && b != floor(b))) {
        s = dl_error_set(err, DL_ERR_USAGE,
                         "budget must be a whole count >= 1 or a fraction in (0, 1), not %g", b);
    } else {
        st->budget = b >= 1 ? (int64_t)b : (int64_t)floor(b * (double)n);
        if (st->budget < 1)
            st->budget = 1;
        if (st->budget > n)
            s = dl_error_set(err, DL_ERR_USAGE, "budget %lld is larger than the pool (%lld records)",
                             (long long)st->budget, (long long)n);
    }
    if (s)
        dl_error_locate(err, NULL, 0, "budget");
    if (!s)
        s = sel_fn_kind_parse(p->function ? p->function : ds_stage_default_fn(p->stage), &st->fn,
                              err);
    if (s && !err->field[0])
        dl_error_locate(err, NULL, 0, "function");
    progress(st, "load", 1, 1);
    return s;
}

static dl_status load_model(ds_state *st, dl_error *err)
{
    const ds_params *p = st->p;
    progress(st, "model", 0, 1);
    dl_status s = ds_engine_open(p->model_path, p->backend, p->threads, p->fast, &st->model, &st->tok,
                                 &st->ctx, st->model_hash, err);
    if (!s && p->cache_path)
        s = ut_cache_open(p->cache_path, &st->cache, err);
    if (!s)
        s = ut_scorer_new(st->ctx, st->tok, &p->ut, st->model_hash, st->cache, &st->scorer, err);
    if (!s)
        s = ut_set_from_pool(st->pool, st->tok, &st->s_pool, err);
    if (!s && st->target)
        s = ut_set_from_pool(st->target, st->tok, &st->s_target, err);
    if (!s && st->existing)
        s = ut_set_from_pool(st->existing, st->tok, &st->s_existing, err);
    progress(st, "model", 1, 1);
    return s;
}

/* ---- pairs and kernels -------------------------------------------------------- */

static void ut_progress_bridge(void *ctx, const char *phase, int64_t done, int64_t total)
{
    progress((ds_state *)ctx, phase, done, total);
}

/* CSR pairs rows = targets, cols = the k nearest examples (ascending). */
static dl_status knn_pairs(ds_state *st, const float *emb_t, int64_t n_t, const float *emb_e,
                           int64_t n_e, int64_t **row_ptr, int64_t **cols, dl_error *err)
{
    int64_t k = st->knn_k < n_e ? st->knn_k : n_e;
    *row_ptr = malloc((size_t)(n_t + 1) * sizeof **row_ptr);
    *cols = malloc((size_t)(n_t * k) * sizeof **cols);
    if (!*row_ptr || !*cols)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld x %lld neighbours",
                            (long long)n_t, (long long)k);
    int64_t dim = st->model->hp.n_embd;
    dl_status s = knn_search(emb_t, n_t, emb_e, n_e, dim, k, *cols, NULL, err);
    if (s)
        return s;
    for (int64_t i = 0; i <= n_t; i++)
        (*row_ptr)[i] = i * k;
    for (int64_t i = 0; i < n_t; i++) /* ascending columns: canonical CSR */
        ds_sort_i64(*cols + i * k, k);
    return DL_OK;
}

/* Fills kernel k with U(targets, examples), dense or knn-sparse; d_noicl
 * of the targets is given.  When transpose, the kernel is stored with rows
 * = examples (Q[i][q] = U(target q, example i)). */
static dl_status build_kernel(ds_state *st, ds_kernel *k, const char *name, const ut_set *tg,
                              const ut_set *ex, const double *dn, const float *emb_t,
                              const float *emb_e, int transpose, dl_error *err)
{
    ut_hooks h = {ut_progress_bridge, st, st->p->cancel};
    int64_t n_t = tg->n, n_e = ex->n, *rp = NULL, *cols = NULL;
    double *d = NULL;
    float *u = NULL;
    dl_status s = DL_OK;
    k->name = name;
    if (st->knn_k > 0)
        s = knn_pairs(st, emb_t, n_t, emb_e, n_e, &rp, &cols, err);
    int64_t nnz = rp ? rp[n_t] : n_t * n_e;
    if (!s && (!(d = malloc((size_t)nnz * sizeof *d)) || !(u = malloc((size_t)nnz * sizeof *u))))
        s = dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld utilities", (long long)nnz);
    ut_pairs pairs = {rp, cols};
    if (!s)
        s = ut_score_icl(st->scorer, tg, ex, rp ? &pairs : NULL, d, &h, err);
    if (!s)
        ut_kernel_from_d(dn, d, n_t, n_e, rp, u, &k->u_min, &k->u_max);
    free(d);
    if (s) {
        free(u);
        free(rp);
        free(cols);
        return s;
    }
    k->rows = transpose ? n_e : n_t;
    k->cols = transpose ? n_t : n_e;
    if (!rp && !transpose) {
        k->dense = u;
    } else if (!rp) {
        k->dense = malloc((size_t)nnz * sizeof *k->dense);
        if (!k->dense) {
            free(u);
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        }
        for (int64_t i = 0; i < n_t; i++)
            for (int64_t j = 0; j < n_e; j++)
                k->dense[j * n_t + i] = u[i * n_e + j];
        free(u);
    } else if (!transpose) {
        k->indptr = rp;
        k->indices = cols;
        k->values = u;
        rp = cols = NULL;
    } else {
        s = ds_csr_transpose(n_t, n_e, rp, cols, u, &k->indptr, &k->indices, &k->values, err);
        free(u);
    }
    free(rp);
    free(cols);
    if (s)
        return s;
    if (k->dense)
        sel_kernel_dense(&k->view, k->dense, k->rows, k->cols, k->cols);
    else
        sel_kernel_csr(&k->view, k->rows, k->cols, k->indptr, k->indices, SEL_INDEX_I64,
                       k->values);
    return DL_OK;
}

static dl_status embed_set(ds_state *st, const ut_set *set, float **out, dl_error *err)
{
    int64_t dim = st->model->hp.n_embd;
    *out = malloc((size_t)(set->n * dim) * sizeof **out);
    if (!*out)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld embeddings",
                            (long long)set->n);
    ut_hooks h = {ut_progress_bridge, st, st->p->cancel};
    return ut_embed(st->scorer, set, *out, &h, err);
}

/* A set none of whose records fits the context cannot be represented. */
static dl_status check_scorable(const double *dn, int64_t n, const char *path, const char *role,
                                int64_t n_ctx, dl_error *err)
{
    for (int64_t i = 0; i < n; i++)
        if (!isnan(dn[i]))
            return DL_OK;
    return dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, -1, role,
                           "no record of the %s set can be scored: every response is longer "
                           "than the model's context of %lld tokens",
                           role, (long long)n_ctx);
}

static dl_status compute_kernels(ds_state *st, dl_error *err)
{
    const ds_params *p = st->p;
    double t0 = now_s();
    int64_t n = st->pool->n;
    st->knn_k = p->pairs == DS_PAIRS_AUTO ? (n <= DS_AUTO_DENSE_MAX ? 0 : DS_AUTO_K) : p->pairs;
    st->sum.knn_k = st->knn_k;
    float *e_pool = NULL, *e_other = NULL;
    ut_hooks h = {ut_progress_bridge, st, p->cancel};
    dl_status s = DL_OK;
    if (st->knn_k > 0) {
        s = embed_set(st, st->s_pool, &e_pool, err);
        if (!s && st->s_target)
            s = embed_set(st, st->s_target, &e_other, err);
        if (!s && st->s_existing)
            s = embed_set(st, st->s_existing, &e_other, err);
    }
    if (!s && !(st->dn_pool = malloc((size_t)n * sizeof *st->dn_pool)))
        s = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (!s)
        s = ut_score_noicl(st->scorer, st->s_pool, st->dn_pool, &h, err);
    if (!s)
        s = check_scorable(st->dn_pool, n, p->pool_path, "pool", lm_ctx_n_ctx(st->ctx), err);
    /* S is needed by every function but gcmi and flqmi (query only). */
    int need_s = st->fn != SEL_FN_GCMI && st->fn != SEL_FN_FLQMI;
    if (!s && (need_s || p->skip_select))
        s = build_kernel(st, &st->S, "S", st->s_pool, st->s_pool, st->dn_pool, e_pool, e_pool, 0,
                         err);
    if (!s && st->s_target) {
        if (!(st->dn_target = malloc((size_t)st->s_target->n * sizeof *st->dn_target)))
            s = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        if (!s)
            s = ut_score_noicl(st->scorer, st->s_target, st->dn_target, &h, err);
        if (!s)
            s = check_scorable(st->dn_target, st->s_target->n, p->target_path, "target",
                               lm_ctx_n_ctx(st->ctx), err);
        if (!s) /* Q[i][q] = U(target q, example pool i) */
            s = build_kernel(st, &st->Q, "Q", st->s_target, st->s_pool, st->dn_target, e_other,
                             e_pool, 1, err);
    }
    if (!s && st->s_existing) /* P[i][p] = U(pool i, example existing p) */
        s = build_kernel(st, &st->P, "P", st->s_pool, st->s_existing, st->dn_pool, e_pool,
                         e_other, 0, err);
    free(e_pool);
    free(e_other);
    const ut_stats *us = ut_scorer_stats(st->scorer);
    st->sum.pairs_total = us->pairs_total;
    st->sum.pairs_cached = us->pairs_cached;
    st->sum.pairs_scored = us->pairs_scored;
    st->sum.unscorable = us->unscorable;
    st->t_score = now_s() - t0;
    return s;
}

/* ---- selection ------------------------------------------------------------------ */

static dl_status run_select(ds_state *st, dl_error *err)
{
    const ds_params *p = st->p;
    double t0 = now_s();
    progress(st, "select", 0, st->budget);
    sel_problem pr;
    sel_problem_init(&pr);
    pr.fn = st->fn;
    pr.lambda = p->lambda;
    pr.eta = p->eta;
    pr.nu = p->nu;
    /* Each function reads the kernels it needs (sel.h): give exactly those. */
    switch (st->fn) {
    case SEL_FN_FL:
    case SEL_FN_GC:
        pr.kernel = &st->S.view;
        break;
    case SEL_FN_FLMI:
        pr.kernel = &st->S.view;
        pr.query = &st->Q.view;
        break;
    case SEL_FN_FLQMI:
    case SEL_FN_GCMI:
        pr.query = &st->Q.view;
        break;
    case SEL_FN_FLCG:
    case SEL_FN_GCCG:
        pr.kernel = &st->S.view;
        pr.priv = &st->P.view;
        break;
    }
    dl_status s = DL_OK;
    if ((pr.query && !st->Q.rows) || (pr.priv && !st->P.rows)) {
        s = dl_error_set(err, DL_ERR_USAGE, "function %s needs a %s set (stage %s has none)",
                         sel_fn_kind_name(st->fn), pr.query ? "target" : "existing",
                         ds_stage_name(p->stage));
        dl_error_locate(err, NULL, 0, "function");
        return s;
    }
    sel_options o;
    sel_options_init(&o);
    if (p->optimizer && (s = sel_opt_kind_parse(p->optimizer, &o.optimizer, err))) {
        dl_error_locate(err, NULL, 0, "optimizer");
        return s;
    }
    o.budget_kind = SEL_BUDGET_COUNT;
    o.budget = st->budget;
    o.stop_if_zero_gain = p->stop_at_zero != 0;
    o.stop_if_negative_gain = p->stop_at_zero != 0;
    o.gain_tolerance = p->stop_at_zero ? 1e-12 : 0.0;
    o.epsilon = p->epsilon;
    o.seed = p->seed;
    o.threads = 1;
    sel_result_init(&st->res);
    s = sel_maximize(&pr, &o, &st->res, err);
    st->t_select = now_s() - t0;
    st->sum.n_selected = st->res.count;
    progress(st, "select", st->res.count, st->budget);
    return s;
}

/* ---- outputs --------------------------------------------------------------------- */

static dl_status write_subset(ds_state *st, dl_error *err)
{
    dl_file_atomic a;
    dl_status s = dl_file_atomic_begin(&a, st->p->out_subset, err);
    for (int64_t r = 0; !s && r < st->res.count; r++) {
        const rec_record *rec = &st->pool->records[st->res.indices[r]];
        s = dl_file_atomic_write(&a, rec->raw, rec->raw_len, err);
        if (!s && (rec->raw_len == 0 || rec->raw[rec->raw_len - 1] != '\n'))
            s = dl_file_atomic_write(&a, "\n", 1, err);
    }
    if (!s)
        return dl_file_atomic_commit(&a, err);
    dl_file_atomic_abort(&a);
    return s;
}

static dl_status write_ranking(ds_state *st, dl_error *err)
{
    dl_file_atomic a;
    dl_status s = dl_file_atomic_begin(&a, st->p->out_ranking, err);
    for (int64_t r = 0; !s && r < st->res.count; r++) {
        const rec_record *rec = &st->pool->records[st->res.indices[r]];
        json_t *o = json_pack("{s:I,s:s,s:I,s:f}", "rank", (json_int_t)r, "id", rec->id,
                              "index", (json_int_t)st->res.indices[r], "gain", st->res.gains[r]);
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!line) {
            s = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
            break;
        }
        s = dl_file_atomic_write(&a, line, strlen(line), err);
        if (!s)
            s = dl_file_atomic_write(&a, "\n", 1, err);
        free(line);
    }
    if (!s)
        return dl_file_atomic_commit(&a, err);
    dl_file_atomic_abort(&a);
    return s;
}

static dl_status write_kernel_file(ds_state *st, const ds_kernel *k, dl_error *err)
{
    char path[4096];
    int dense = k->dense != NULL;
    if (snprintf(path, sizeof path, "%s/%s.%s", st->p->out_kernel_dir, k->name,
                 dense ? "npy" : "npz") >= (int)sizeof path)
        return dl_error_set(err, DL_ERR_USAGE, "kernel directory path too long");
    if (dense) {
        int64_t shape[2] = {k->rows, k->cols};
        return sel_npy_write(path, SEL_NPY_F32, 2, shape, k->dense, 0, err);
    }
    return sel_npz_csr_write(path, k->rows, k->cols, k->indptr, k->indices, 8, k->values, err);
}

static dl_status write_kernels(ds_state *st, dl_error *err)
{
    const char *dir = st->p->out_kernel_dir;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dl_error_set_at(err, DL_ERR_IO, dir, 0, 0, -1, NULL, "cannot create: %s",
                               strerror(errno));
    dl_status s = DL_OK;
    const ds_kernel *ks[3] = {&st->S, &st->Q, &st->P};
    for (int i = 0; !s && i < 3; i++)
        if (ks[i]->rows)
            s = write_kernel_file(st, ks[i], err);
    char path[4096];
    if (!s && snprintf(path, sizeof path, "%s/d_noicl.npy", dir) < (int)sizeof path) {
        int64_t shape[1] = {st->pool->n};
        s = sel_npy_write(path, SEL_NPY_F64, 1, shape, st->dn_pool, 0, err);
    }
    return s;
}

/* ---- manifest ------------------------------------------------------------------- */

static const char *shown_path(const ds_state *st, const char *path)
{
    if (!path || !st->p->manifest_hide_paths)
        return path;
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static json_t *input_json(const ds_state *st, const char *path, const rec_pool *pool,
                          const uint8_t hash[32])
{
    char hex[65];
    dl_sha256_hex(hash, hex);
    return json_pack("{s:s,s:s,s:I,s:I,s:s}", "path", shown_path(st, path), "sha256", hex,
                     "records", (json_int_t)pool->n, "skipped", (json_int_t)pool->n_skipped,
                     "shape", rec_shape_name(pool->map.shape));
}

static json_t *kernel_json(const ds_kernel *k)
{
    if (!k->rows)
        return json_null();
    return json_pack("{s:I,s:I,s:s,s:I,s:f,s:f}", "rows", (json_int_t)k->rows, "cols",
                     (json_int_t)k->cols, "storage", k->dense ? "dense" : "csr", "nnz",
                     (json_int_t)(k->dense ? k->rows * k->cols : k->indptr[k->rows]), "u_min",
                     k->u_min, "u_max", k->u_max);
}

static json_t *deviations_json(const ds_state *st)
{
    json_t *a = json_array();
    const ut_stats *us = ut_scorer_stats(st->scorer);
    json_array_append_new(a, json_sprintf(
        "sequences longer than the context lose prompt tokens from the left (header and "
        "example first) instead of response tokens (spec/DELIFT.md §2); the number cut is "
        "rounded up to a multiple of %lld tokens so that pairs share work",
        (long long)ut_config_trunc_quantum(&st->p->ut)));
    if (us->pairs_truncated)
        json_array_append_new(a, json_sprintf("%lld pairs were scored with a truncated prompt",
                                              (long long)us->pairs_truncated));
    if (us->unscorable)
        json_array_append_new(a, json_sprintf(
            "%lld targets could not be scored (response longer than the context): their "
            "kernel rows are 0", (long long)us->unscorable));
    if (st->knn_k > 0)
        json_array_append_new(a, json_sprintf(
            "only the %lld nearest examples of each target were scored (knn); missing pairs "
            "count as 0 after scaling", (long long)st->knn_k));
    if (st->Q.rows)
        json_array_append_new(a, json_string(
            "the query kernel is computed against the target set, as the paper describes (the "
            "reference code uses the source dataset's train split)"));
    if (st->p->stop_at_zero)
        json_array_append_new(a, json_string(
            "stopping at zero gain uses a real tolerance (1e-12), not the reference's integer "
            "truncation"));
    return a;
}

static dl_status write_manifest(ds_state *st, dl_error *err)
{
    const ds_params *p = st->p;
    char when[32], mh[65];
    ds_utc_now(when);
    dl_sha256_hex(st->model_hash, mh);
    const ut_stats *us = ut_scorer_stats(st->scorer);
    json_t *inputs = json_object();
    json_object_set_new(inputs, "pool", input_json(st, p->pool_path, st->pool, st->pool_hash));
    if (st->target)
        json_object_set_new(inputs, "target",
                            input_json(st, p->target_path, st->target, st->target_hash));
    if (st->existing)
        json_object_set_new(inputs, "existing",
                            input_json(st, p->existing_path, st->existing, st->existing_hash));
    char pairs[32];
    if (st->knn_k > 0)
        snprintf(pairs, sizeof pairs, "knn:%lld", (long long)st->knn_k);
    else
        snprintf(pairs, sizeof pairs, "all");
    json_t *m = json_pack(
        "{s:s,s:s,s:s,s:o,"
        "s:{s:s,s:s,s:s,s:I,s:I,s:I},"
        "s:{s:s,s:s,s:s,s:I,s:f,s:s,s:s,s:f,s:f,s:f,s:f,s:I,s:b,s:{s:s,s:s},s:b},"
        "s:{s:s,s:b,s:I,s:s*,s:s}}",
        "tool", "delift", "version", PACKAGE_VERSION, "created", when, "inputs", inputs,
        "model", "path", shown_path(st, p->model_path), "sha256", mh, "arch",
        lm_arch_name(st->model->hp.arch), "n_params", (json_int_t)st->model->n_params, "n_ctx",
        (json_int_t)lm_ctx_n_ctx(st->ctx), "n_embd", (json_int_t)st->model->hp.n_embd,
        "method", "stage", ds_stage_name(p->stage), "function", sel_fn_kind_name(st->fn),
        "optimizer", p->optimizer ? p->optimizer : "lazy", "budget", (json_int_t)st->budget,
        "budget_requested", p->budget, "pairs", pairs, "pairs_requested",
        p->pairs == DS_PAIRS_AUTO ? "auto" : p->pairs == DS_PAIRS_ALL ? "all" : "knn", "eta",
        p->eta, "nu", p->nu, "lambda", p->lambda, "epsilon", p->epsilon, "seed",
        (json_int_t)p->seed, "stop_at_zero", p->stop_at_zero != 0, "templates", "noicl",
        p->ut.tpl_noicl ? p->ut.tpl_noicl : UT_TPL_NOICL_DEFAULT, "icl",
        p->ut.tpl_icl ? p->ut.tpl_icl : UT_TPL_ICL_DEFAULT, "add_bos", p->ut.add_bos != 0,
        "engine", "backend", lm_ctx_backend_name(st->ctx), "fast", lm_ctx_q8_act(st->ctx) != 0,
        "threads", (json_int_t)lm_ctx_n_lanes(st->ctx), "cache",
        p->cache_path ? shown_path(st, p->cache_path) : NULL, "cache_scope",
        ut_scorer_scope_hex(st->scorer));
    if (!m)
        return dl_error_set(err, DL_ERR_NOMEM, "cannot build the manifest");
    json_object_set_new(m, "kernels", json_pack("{s:o,s:o,s:o}", "S", kernel_json(&st->S), "Q",
                                                kernel_json(&st->Q), "P", kernel_json(&st->P)));
    if (!p->skip_select)
        json_object_set_new(m, "result",
                            json_pack("{s:I,s:f,s:I}", "selected", (json_int_t)st->res.count,
                                      "value", st->res.value, "evaluations",
                                      (json_int_t)st->res.evaluations));
    json_object_set_new(
        m, "stats",
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "pairs_total",
                  (json_int_t)us->pairs_total, "pairs_cached", (json_int_t)us->pairs_cached,
                  "pairs_scored", (json_int_t)us->pairs_scored, "pairs_truncated",
                  (json_int_t)us->pairs_truncated, "unscorable", (json_int_t)us->unscorable,
                  "tokens_prefix", (json_int_t)us->tokens_prefix, "tokens_scored",
                  (json_int_t)us->tokens_scored, "tokens_unshared",
                  (json_int_t)us->tokens_unshared));
    json_object_set_new(m, "seconds",
                        json_pack("{s:f,s:f,s:f,s:f}", "total", now_s() - st->t_start, "score",
                                  st->t_score, "model", us->seconds_model, "select",
                                  st->t_select));
    json_object_set_new(json_object_get(m, "method"), "truncate_quantum",
                        json_integer((json_int_t)ut_config_trunc_quantum(&p->ut)));
    json_object_set_new(m, "deviations", deviations_json(st));
    if (p->version_extra)
        json_object_set_new(m, "via", json_string(p->version_extra));
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(m);
    if (!text)
        return dl_error_set(err, DL_ERR_NOMEM, "cannot write the manifest");
    size_t n = strlen(text);
    text[n] = '\n'; /* the NUL becomes the final newline; it is not written */
    dl_status s = dl_file_write_atomic(p->out_manifest, text, n + 1, err);
    free(text);
    return s;
}

dl_status ds_run(const ds_params *p, ds_summary *summary, dl_error *err)
{
    ds_state st;
    memset(&st, 0, sizeof st);
    st.p = p;
    st.t_start = now_s();
    sel_result_init(&st.res);
    dl_status s = ut_config_check(&p->ut, err);
    if (!s)
        s = load_inputs(&st, err);
    if (!s)
        s = check_cancel(&st, err);
    if (!s)
        s = load_model(&st, err);
    if (!s)
        s = compute_kernels(&st, err);
    if (!s && !p->skip_select)
        s = run_select(&st, err);
    if (!s)
        progress(&st, "write", 0, 1);
    if (!s && p->out_kernel_dir)
        s = write_kernels(&st, err);
    if (!s && !p->skip_select && p->out_subset)
        s = write_subset(&st, err);
    if (!s && !p->skip_select && p->out_ranking)
        s = write_ranking(&st, err);
    st.sum.seconds_total = now_s() - st.t_start;
    st.sum.seconds_score = st.t_score;
    st.sum.seconds_select = st.t_select;
    if (!s && p->out_manifest)
        s = write_manifest(&st, err);
    if (!s)
        progress(&st, "write", 1, 1);
    if (summary)
        *summary = st.sum;
    sel_result_free(&st.res);
    kernel_free(&st.S);
    kernel_free(&st.Q);
    kernel_free(&st.P);
    free(st.dn_pool);
    free(st.dn_target);
    ut_set_free(st.s_pool);
    ut_set_free(st.s_target);
    ut_set_free(st.s_existing);
    ut_scorer_free(st.scorer);
    ut_cache_close(st.cache);
    lm_ctx_free(st.ctx);
    lm_tok_free(st.tok);
    lm_model_free(st.model);
    rec_pool_free(st.pool);
    rec_pool_free(st.target);
    rec_pool_free(st.existing);
    return s;
}
