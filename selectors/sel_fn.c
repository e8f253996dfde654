/* sel_fn.c: the set functions, their memo and their marginal gains.
 *
 * Arithmetic follows the reference library (submodlib, decile-team, commit
 * 72ae33a) so that golden selections match index for index: kernel values,
 * per-row memo and per-element terms are float32; terms are summed in double
 * in row order.  Graph cut keeps its column sums and subset sums in double
 * and rounds lambda * S[j][j] to float32, as the reference does.
 */
#include "config.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sel.h"
#include "sel_impl.h"

static int is_fl_family(sel_fn_kind k)
{
    return k == SEL_FN_FL || k == SEL_FN_FLMI || k == SEL_FN_FLCG;
}

static int is_gc_family(sel_fn_kind k)
{
    return k == SEL_FN_GC || k == SEL_FN_GCCG;
}

void sel_fn_free(sel_fn *f)
{
    if (!f)
        return;
    sel_fast_pool_free(f);
    free(f->memo);
    free(f->start);
    free(f->cap);
    free(f->colsum);
    free(f->rowpick);
    free(f->colpick);
    free(f->colpick_n);
    free(f->diag);
    free(f->psum);
    free(f->qbest);
    free(f->in);
    free(f->picks);
    free(f->gain);
    free(f->touched);
    free(f->bmax);
    free(f->bmaxt);
    free(f->changed);
    free(f->changed_old);
    free(f->log_row);
    free(f->log_step);
    free(f->log_old);
    free(f->log_head);
    free(f->log_prev);
    sel_csc_free(&f->csc);
    free(f);
}

int64_t sel_fn_size(const sel_fn *f)
{
    return f->n;
}

/* Row i of k as (columns, values): dense rows are contiguous, CSR rows are
 * their stored entries.  Calls fn for every stored entry. */
#define SEL_ROW_FOREACH(k, i, J, V, BODY)                                          \
    do {                                                                         \
        if ((k)->kind == SEL_KERNEL_DENSE) {                                     \
            const float *row_ = (k)->data + (i) * (k)->stride;                  \
            for (int64_t J = 0; J < (k)->cols; J++) {                            \
                float V = row_[J];                                               \
                (void)J;                                                         \
                BODY;                                                            \
            }                                                                    \
        } else {                                                                 \
            for (int64_t e_ = (k)->indptr[i]; e_ < (k)->indptr[(i) + 1]; e_++) { \
                int64_t J = sel_csr_col((k), e_);                                \
                float V = (k)->values[e_];                                       \
                (void)J;                                                         \
                BODY;                                                            \
            }                                                                    \
        }                                                                        \
    } while (0)

static dl_status numeric_error(dl_error *err, const char *name, int64_t i, int64_t j)
{
    return dl_error_set_at(err, DL_ERR_NUMERIC, NULL, 0, 0, -1, name,
                           "%s: non-finite value at row %lld, column %lld", name,
                           (long long)i, (long long)j);
}

/* A dense row is scanned before use so that NaN/Inf stops the call. */
static dl_status row_check(const sel_kernel *k, int64_t i, const char *name,
                           dl_error *err)
{
    if (k->kind == SEL_KERNEL_DENSE) {
        int64_t j = sel_row_nonfinite(k->data + i * k->stride, k->cols);
        return j >= 0 ? numeric_error(err, name, i, j) : DL_OK;
    }
    int64_t bad = -1;
    SEL_ROW_FOREACH(k, i, j, v, if (!isfinite(v) && bad < 0) bad = j);
    return bad >= 0 ? numeric_error(err, name, i, bad) : DL_OK;
}

/* Row maxima of Q or P, scaled as the reference does (float product). */
static dl_status row_max_scaled(const sel_kernel *k, float scale, float init,
                                float *out, const char *name, dl_error *err)
{
    for (int64_t i = 0; i < k->rows; i++) {
        dl_status st = row_check(k, i, name, err);
        if (st != DL_OK)
            return st;
        float mx = init;
        int64_t stored = 0;
        SEL_ROW_FOREACH(k, i, j, v, {
            float s = scale != 1.0f ? scale * v : v;
            if (s > mx)
                mx = s;
            stored++;
        });
        if (stored < k->cols && 0.0f > mx) /* an absent CSR entry is 0 */
            mx = 0.0f;
        out[i] = mx;
    }
    return DL_OK;
}

static dl_status row_sums(const sel_kernel *k, double *out, const char *name,
                          dl_error *err)
{
    for (int64_t i = 0; i < k->rows; i++) {
        dl_status st = row_check(k, i, name, err);
        if (st != DL_OK)
            return st;
        double s = 0;
        SEL_ROW_FOREACH(k, i, j, v, s += v);
        out[i] = s;
    }
    return DL_OK;
}

/* gc/gccg: T_j = sum_i S[i][j] in double, rows in order (also the value
 * check), the diagonal terms and how colpick is kept.  Dense kernels:
 * sel_gc.c (one read when S is symmetric).  CSR: one row-wise sweep;
 * colpick gathers pending picks from row x when x's gain is asked for,
 * which reads only the rows the greedy asks about. */
static dl_status gc_sums(sel_fn *f, dl_error *err)
{
    const sel_kernel *k = f->p.kernel;
    if (k->kind == SEL_KERNEL_DENSE)
        return sel_gc_init(f, err);
    f->gc_mode = SEL_GC_PENDING;
    double *out = f->colsum;
    memset(out, 0, (size_t)k->cols * sizeof *out);
    for (int64_t i = 0; i < k->rows; i++) {
        dl_status st = row_check(k, i, "kernel", err);
        if (st != DL_OK)
            return st;
        SEL_ROW_FOREACH(k, i, j, v, out[j] += v);
    }
    for (int64_t j = 0; j < f->n; j++) /* a float product, as the reference */
        f->diag[j] = (double)(f->lambda * sel_kernel_at(k, j, j));
    return DL_OK;
}

static void *xcalloc(size_t n, size_t size, int *fail)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        *fail = 1;
    return p;
}

static void reset_memo(sel_fn *f);

static dl_status alloc_memo(sel_fn *f, int incremental)
{
    int fail = 0;
    size_t n = (size_t)f->n, m = (size_t)f->m;
    sel_fn_kind k = f->p.fn;
    f->in = xcalloc(n, 1, &fail);
    f->picks = xcalloc(n, sizeof *f->picks, &fail);
    if (is_fl_family(k)) {
        f->memo = xcalloc(m, sizeof *f->memo, &fail);
        f->start = xcalloc(m, sizeof *f->start, &fail);
        if (k == SEL_FN_FLMI)
            f->cap = xcalloc(m, sizeof *f->cap, &fail);
        if (incremental) {
            f->gain = xcalloc(n, sizeof *f->gain, &fail);
            f->touched = xcalloc(n, sizeof *f->touched, &fail);
            f->changed = xcalloc(m, sizeof *f->changed, &fail);
            f->changed_old = xcalloc(m, sizeof *f->changed_old, &fail);
        }
    } else if (k == SEL_FN_FLQMI) {
        f->memo = xcalloc((size_t)f->q, sizeof *f->memo, &fail);
        f->qbest = xcalloc(n, sizeof *f->qbest, &fail);
    } else {
        f->colsum = xcalloc(n, sizeof *f->colsum, &fail);
        if (is_gc_family(k)) {
            f->rowpick = xcalloc(n, sizeof *f->rowpick, &fail);
            f->colpick = xcalloc(n, sizeof *f->colpick, &fail);
            f->colpick_n = xcalloc(n, sizeof *f->colpick_n, &fail);
            f->diag = xcalloc(n, sizeof *f->diag, &fail);
        }
        if (k == SEL_FN_GCCG)
            f->psum = xcalloc(n, sizeof *f->psum, &fail);
    }
    return fail ? DL_ERR_NOMEM : DL_OK;
}

/* The per-function constants: start memo, caps, column and row sums. */
static dl_status fill_constants(sel_fn *f, dl_error *err)
{
    const sel_problem *p = &f->p;
    dl_status st = DL_OK;
    switch (p->fn) {
    case SEL_FN_FL:
        break;
    case SEL_FN_FLMI:
        /* qmax_i starts at the smallest positive float, as the reference's
         * std::numeric_limits<float>::min(). */
        st = row_max_scaled(p->query, f->eta, FLT_MIN, f->cap, "query", err);
        break;
    case SEL_FN_FLCG:
        st = row_max_scaled(p->priv, f->nu, 0.0f, f->start, "private", err);
        break;
    case SEL_FN_FLQMI:
        st = row_max_scaled(p->query, 1.0f, FLT_MIN, f->qbest, "query", err);
        for (int64_t j = 0; st == DL_OK && j < f->n; j++)
            f->qbest[j] = f->eta * f->qbest[j];
        break;
    case SEL_FN_GC:
        st = gc_sums(f, err);
        break;
    case SEL_FN_GCMI:
        st = row_sums(p->query, f->colsum, "query", err);
        break;
    case SEL_FN_GCCG:
        st = gc_sums(f, err);
        if (st == DL_OK)
            st = row_sums(p->priv, f->psum, "private", err);
        for (int64_t j = 0; st == DL_OK && j < f->n; j++)
            f->psum[j] = (float)(f->psum[j] * (double)f->nu); /* a float, as the reference keeps it */
        break;
    }
    return st;
}

dl_status sel_fn_create(const sel_problem *p, int incremental, int threads,
                        sel_fn **out, dl_error *err)
{
    *out = NULL;
    dl_status st = sel_problem_check_shape(p, err);
    if (st != DL_OK)
        return st;
    sel_fn *f = calloc(1, sizeof *f);
    if (!f)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the function state");
    f->p = *p;
    f->n = sel_problem_size(p);
    f->m = p->kernel ? p->kernel->rows : p->query->rows;
    f->q = p->query ? p->query->cols : (p->priv ? p->priv->cols : 0);
    f->lambda = (float)p->lambda;
    f->eta = (float)p->eta;
    f->nu = (float)p->nu;
    f->threads = threads < 1 ? 1 : threads;
    st = alloc_memo(f, incremental && is_fl_family(p->fn));
    if (st != DL_OK) {
        sel_fn_free(f);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the function state (n = %lld)",
                            (long long)f->n);
    }
    st = fill_constants(f, err); /* checks Q and P while it reads them */
    if (st == DL_OK && is_fl_family(p->fn) && !f->gain) {
        int64_t r, c;
        if (sel_kernel_find_nonfinite(p->kernel, &r, &c))
            st = numeric_error(err, "kernel", r, c);
    }
    if (st == DL_OK) {
        reset_memo(f);
        if (f->gain)
            st = sel_fast_init(f, err); /* checks S while it sweeps it */
    }
    if (st != DL_OK) {
        sel_fn_free(f);
        return st;
    }
    *out = f;
    return DL_OK;
}

dl_status sel_fn_new(const sel_problem *p, sel_fn **out, dl_error *err)
{
    if (!out)
        return dl_error_set(err, DL_ERR_USAGE, "NULL output pointer");
    return sel_fn_create(p, 0, 1, out, err);
}

static void reset_memo(sel_fn *f)
{
    if (f->memo && is_fl_family(f->p.fn))
        memcpy(f->memo, f->start, (size_t)f->m * sizeof *f->memo);
    else if (f->memo)
        memset(f->memo, 0, (size_t)f->q * sizeof *f->memo);
    if (f->rowpick) {
        memset(f->rowpick, 0, (size_t)f->n * sizeof *f->rowpick);
        memset(f->colpick, 0, (size_t)f->n * sizeof *f->colpick);
        memset(f->colpick_n, 0, (size_t)f->n * sizeof *f->colpick_n);
        f->colpick_all = 0;
    }
    memset(f->in, 0, (size_t)f->n);
    f->count = 0;
}

void sel_fn_reset(sel_fn *f)
{
    reset_memo(f);
    if (f->gain) {
        memset(f->touched, 0, (size_t)f->n * sizeof *f->touched);
        f->step = 0;
        f->log_len = 0;
        sel_csc_free(&f->csc);
        (void)sel_fast_init(f, NULL); /* values were checked at creation */
    }
}

/* ---- gains ------------------------------------------------------------------ */

/* One facility-location term in float, as the reference forms it. */
static inline float fl_term(float s, float m)
{
    return s > m ? s - m : 0.0f;
}

static inline float flmi_term(float s, float m, float cap)
{
    float hi = s > m ? s : m;
    return (hi < cap ? hi : cap) - (m < cap ? m : cap);
}

/* The same sum over a CSR column view: only the rows that store column j,
 * in increasing row order.  Every other row adds a +0 term (memo >= 0), which
 * leaves a double sum of non-negative terms unchanged, so the bits are those
 * of the all-rows sum.  undo: form it over the memo as it was after the
 * first `steps` picks (the memo log's per-row chains), else the memo now. */
static double gain_fl_csc(const sel_fn *f, int64_t j, int undo, int64_t steps)
{
    const sel_kernel *k = f->p.kernel;
    const sel_csc *c = &f->csc;
    int flmi = f->p.fn == SEL_FN_FLMI;
    double g = 0;
    for (int64_t e = c->colptr[j]; e < c->colptr[j + 1]; e++) {
        int64_t i = c->rows[e];
        float m = f->memo[i];
        /* undo row i's rises after pick `steps`, newest first: the oldest
         * undone one holds the memo of then */
        for (int32_t l = undo ? f->log_head[i] : -1; l >= 0 && f->log_step[l] > steps;
             l = f->log_prev[l])
            m = f->log_old[l];
        float s = sel_kernel_at(k, i, j);
        g += flmi ? flmi_term(s, m, f->cap[i]) : fl_term(s, m);
    }
    return g;
}

static double gain_fl_family(const sel_fn *f, int64_t j)
{
    const sel_kernel *k = f->p.kernel;
    double g = 0;
    if (f->csc.colptr)
        return gain_fl_csc(f, j, 0, 0);
    if (f->p.fn == SEL_FN_FLMI) {
        for (int64_t i = 0; i < f->m; i++)
            g += flmi_term(sel_kernel_at(k, i, j), f->memo[i], f->cap[i]);
    } else {
        for (int64_t i = 0; i < f->m; i++)
            g += fl_term(sel_kernel_at(k, i, j), f->memo[i]);
    }
    return g;
}

/* FL family: the reference's gain of j after only the first `steps` picks:
 * the memo log undone back to then (newest first) into changed_old, then the
 * same terms in the same order as gain_fl_family.  Without a log (out of
 * memory) the gain now, a lower bound of it. */
double sel_fn_gain_at_step(sel_fn *f, int64_t j, int64_t steps)
{
    if (f->log_cap < 0 || !f->changed_old)
        return gain_fl_family(f, j);
    if (f->csc.colptr)
        return gain_fl_csc(f, j, 1, steps);
    float *m = f->changed_old;
    memcpy(m, f->memo, (size_t)f->m * sizeof *m);
    /* log_step is the step count after the rise's pick began: picks
     * [steps, count) are those with log_step > steps */
    for (int64_t e = f->log_len - 1; e >= 0 && f->log_step[e] > steps; e--)
        m[f->log_row[e]] = f->log_old[e];
    const sel_kernel *k = f->p.kernel;
    int flmi = f->p.fn == SEL_FN_FLMI;
    double g = 0;
    for (int64_t i = 0; i < f->m; i++) {
        float s = sel_kernel_at(k, i, j);
        g += flmi ? flmi_term(s, m[i], f->cap[i]) : fl_term(s, m[i]);
    }
    return g;
}

/* sum_{a in A} S[x][a] from the picks colpick[x] has not folded in yet. */
static double colpick_now(const sel_fn *f, int64_t x)
{
    if (f->gc_mode == SEL_GC_SYMMETRIC)
        return f->rowpick[x];
    double c = f->colpick[x];
    const sel_kernel *k = f->p.kernel;
    if (k->kind == SEL_KERNEL_DENSE) {
        /* the same terms in the same order as below, straight from row x */
        const float *row = k->data + x * k->stride;
        if (f->p.fn == SEL_FN_GCCG)
            for (int64_t t = f->colpick_n[x]; t < f->count; t++)
                c += (double)(f->lambda * row[f->picks[t]]);
        else
            for (int64_t t = f->colpick_n[x]; t < f->count; t++)
                c += (double)row[f->picks[t]];
        return c;
    }
    for (int64_t t = f->colpick_n[x]; t < f->count; t++) {
        float v = sel_kernel_at(f->p.kernel, x, f->picks[t]);
        c += f->p.fn == SEL_FN_GCCG ? (double)(f->lambda * v) : (double)v;
    }
    return c;
}

static double gain_gc_family(const sel_fn *f, int64_t j, double colpick)
{
    if (f->p.fn == SEL_FN_GC) {
        /* reference: T_j - 2 lambda sum_a S[j][a] - (float)(lambda S[j][j]);
         * rowpick + colpick equals 2 sum_a S[j][a] on a symmetric S. */
        return f->colsum[j] - (double)f->lambda * (f->rowpick[j] + colpick) - f->diag[j];
    }
    /* gccg: pick terms are float products lambda * S, as the reference
     * subtracts (float)(lambda * 2 * S[a][j]) one by one. */
    return f->colsum[j] - (f->rowpick[j] + colpick) - f->diag[j] -
           (double)(2.0f * f->lambda * (float)f->psum[j]);
}

double sel_fn_gain(const sel_fn *f, int64_t j)
{
    assert(j >= 0 && j < f->n);
    switch (f->p.fn) {
    case SEL_FN_FL:
    case SEL_FN_FLMI:
    case SEL_FN_FLCG:
        return gain_fl_family(f, j);
    case SEL_FN_FLQMI: {
        double g = 0;
        const sel_kernel *qk = f->p.query;
        if (qk->kind == SEL_KERNEL_DENSE) {
            const float *row = qk->data + j * qk->stride;
            for (int64_t c = 0; c < f->q; c++)
                g += fl_term(row[c], f->memo[c]);
        } else {
            SEL_ROW_FOREACH(qk, j, c, v, g += fl_term(v, f->memo[c]));
        }
        return g + (double)f->qbest[j];
    }
    case SEL_FN_GC:
    case SEL_FN_GCCG:
        return gain_gc_family(f, j, colpick_now(f, j));
    case SEL_FN_GCMI:
        return f->colsum[j];
    }
    return 0;
}

/* The optimisers' gain: the incremental table for the FL family; for graph
 * cut it also folds the pending picks into colpick[j] (same order, same
 * bits as colpick_now). */
double sel_fn_gain_update(sel_fn *f, int64_t j)
{
    if (f->gain)
        return f->gain[j];
    if (f->colpick && f->gc_mode != SEL_GC_PENDING)
        return gain_gc_family(f, j, colpick_now(f, j));
    if (f->colpick) {
        f->gathered += f->count - f->colpick_n[j];
        f->colpick[j] = colpick_now(f, j);
        f->colpick_n[j] = f->count;
        return gain_gc_family(f, j, f->colpick[j]);
    }
    return sel_fn_gain(f, j);
}

void sel_fn_gain_prefetch(const sel_fn *f, int64_t j)
{
    if (!f->colpick || f->gc_mode != SEL_GC_PENDING || f->p.kernel->kind != SEL_KERNEL_DENSE)
        return;
    const float *row = f->p.kernel->data + j * f->p.kernel->stride;
    for (int64_t t = f->colpick_n[j]; t < f->count; t++)
        __builtin_prefetch(row + f->picks[t]);
}

/* ---- adding ------------------------------------------------------------------ */

static void add_memo(sel_fn *f, int64_t j)
{
    const sel_problem *p = &f->p;
    if (is_fl_family(p->fn)) {
        if (f->gain) {
            sel_fast_add(f, j);
            return;
        }
        for (int64_t i = 0; i < f->m; i++) {
            float s = sel_kernel_at(p->kernel, i, j);
            if (s > f->memo[i])
                f->memo[i] = s;
        }
    } else if (p->fn == SEL_FN_FLQMI) {
        SEL_ROW_FOREACH(p->query, j, c, v, if (v > f->memo[c]) f->memo[c] = v);
    } else if (is_gc_family(p->fn) && p->kernel->kind == SEL_KERNEL_DENSE) {
        sel_gc_add(f, j);
    } else if (is_gc_family(p->fn)) {
        /* row j of S joins every rowpick[x] = sum_a S[a][x] */
        int scaled = p->fn == SEL_FN_GCCG;
        SEL_ROW_FOREACH(p->kernel, j, x, v,
                        f->rowpick[x] += scaled ? (double)(f->lambda * v) : (double)v);
    }
}

/* Folds the pending picks into every colpick[x] in one row-wise pass (a
 * gather of at most SEL_GC_BATCH columns from each row), so that a gain asks
 * for at most that many pending picks; same order, same bits as one by
 * one.  Cheaper than a column walk per pick and than long pending lists. */
static void colpick_flush(sel_fn *f)
{
    for (int64_t x = 0; x < f->n; x++) {
        f->gathered += f->count - f->colpick_n[x];
        f->colpick[x] = colpick_now(f, x);
        f->colpick_n[x] = f->count;
    }
    f->colpick_all = f->count;
}

dl_status sel_fn_add(sel_fn *f, int64_t j, dl_error *err)
{
    if (j < 0 || j >= f->n)
        return dl_error_set(err, DL_ERR_USAGE, "item %lld is outside [0, %lld)",
                            (long long)j, (long long)f->n);
    if (f->in[j])
        return dl_error_set(err, DL_ERR_USAGE, "item %lld is already selected",
                            (long long)j);
    add_memo(f, j);
    f->in[j] = 1;
    f->picks[f->count++] = j;
    /* CSR: a gather is a row search, so keep the pending lists short */
    if (f->colpick && f->gc_mode == SEL_GC_PENDING && f->p.kernel->kind == SEL_KERNEL_CSR &&
        f->count - f->colpick_all >= SEL_GC_BATCH)
        colpick_flush(f);
    return DL_OK;
}

/* ---- values from scratch -------------------------------------------------- */

/* max(init, max over the set of row i); in[] marks the set. */
static float row_max_over(const sel_kernel *k, int64_t i, const unsigned char *in,
                          const int64_t *set, int64_t count, float init)
{
    float mx = init;
    if (k->kind == SEL_KERNEL_DENSE) {
        const float *row = k->data + i * k->stride;
        for (int64_t t = 0; t < count; t++)
            if (row[set[t]] > mx)
                mx = row[set[t]];
        return mx;
    }
    int64_t stored = 0;
    for (int64_t e = k->indptr[i]; e < k->indptr[i + 1]; e++) {
        int64_t j = sel_csr_col(k, e);
        if (in[j]) {
            stored++;
            if (k->values[e] > mx)
                mx = k->values[e];
        }
    }
    if (stored < count && 0.0f > mx) /* a set member this row does not store */
        mx = 0.0f;
    return mx;
}

/* sum_{a,b in set} S[a][b]; in[] marks the set. */
static double pair_sum(const sel_kernel *k, const unsigned char *in, const int64_t *set,
                       int64_t count)
{
    double v = 0;
    for (int64_t t = 0; t < count; t++) {
        int64_t a = set[t];
        if (k->kind == SEL_KERNEL_DENSE) {
            for (int64_t u = 0; u < count; u++)
                v += k->data[a * k->stride + set[u]];
        } else {
            for (int64_t e = k->indptr[a]; e < k->indptr[a + 1]; e++)
                if (in[sel_csr_col(k, e)])
                    v += k->values[e];
        }
    }
    return v;
}

/* f(set) from scratch; f->in must mark exactly the set (no duplicates). */
static double value_of(const sel_fn *f, const int64_t *set, int64_t count)
{
    const sel_problem *p = &f->p;
    double v = 0;
    switch (p->fn) {
    case SEL_FN_FL:
    case SEL_FN_FLMI:
    case SEL_FN_FLCG:
        for (int64_t i = 0; i < f->m; i++) {
            float mx = row_max_over(p->kernel, i, f->in, set, count, f->start[i]);
            if (p->fn == SEL_FN_FLMI)
                v += mx < f->cap[i] ? mx : f->cap[i];
            else
                v += (double)mx - (double)f->start[i];
        }
        return v;
    case SEL_FN_FLQMI:
        for (int64_t c = 0; c < f->q; c++) {
            float mx = 0.0f;
            for (int64_t t = 0; t < count; t++) {
                float s = sel_kernel_at(p->query, set[t], c);
                if (s > mx)
                    mx = s;
            }
            v += mx;
        }
        for (int64_t t = 0; t < count; t++)
            v += f->qbest[set[t]];
        return v;
    case SEL_FN_GC:
    case SEL_FN_GCCG:
        for (int64_t t = 0; t < count; t++) {
            v += f->colsum[set[t]];
            if (p->fn == SEL_FN_GCCG)
                v -= 2.0 * (double)f->lambda * f->psum[set[t]];
        }
        return v - (double)f->lambda * pair_sum(p->kernel, f->in, set, count);
    case SEL_FN_GCMI:
        for (int64_t t = 0; t < count; t++)
            v += f->colsum[set[t]];
        return v;
    }
    return 0;
}

double sel_fn_value_memo(const sel_fn *f)
{
    if (f->p.fn != SEL_FN_FL && f->p.fn != SEL_FN_FLMI && f->p.fn != SEL_FN_FLCG)
        return sel_fn_value(f);
    /* the memo is max(start, max_A S[i][a]) exactly: the same sum as value_of */
    double v = 0;
    for (int64_t i = 0; i < f->m; i++) {
        float mx = f->memo[i];
        if (f->p.fn == SEL_FN_FLMI)
            v += mx < f->cap[i] ? mx : f->cap[i];
        else
            v += (double)mx - (double)f->start[i];
    }
    return v;
}

double sel_fn_value(const sel_fn *f)
{
    return value_of(f, f->picks, f->count);
}

dl_status sel_evaluate(const sel_problem *p, const int64_t *set, int64_t count,
                       double *value, dl_error *err)
{
    if (!value || count < 0 || (count > 0 && !set))
        return dl_error_set(err, DL_ERR_USAGE, "sel_evaluate: bad set or output");
    sel_fn *f;
    dl_status st = sel_fn_create(p, 0, 1, &f, err);
    if (st != DL_OK)
        return st;
    /* Duplicates count once: de-duplicate through the membership bytes. */
    int64_t *uniq = calloc((size_t)(count ? count : 1), sizeof *uniq);
    if (!uniq) {
        sel_fn_free(f);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    int64_t u = 0;
    for (int64_t t = 0; t < count; t++) {
        if (set[t] < 0 || set[t] >= f->n) {
            int64_t n = f->n;
            free(uniq);
            sel_fn_free(f);
            return dl_error_set(err, DL_ERR_USAGE, "item %lld is outside [0, %lld)",
                                (long long)set[t], (long long)n);
        }
        if (!f->in[set[t]]) {
            f->in[set[t]] = 1;
            uniq[u++] = set[t];
        }
    }
    *value = value_of(f, uniq, u);
    free(uniq);
    sel_fn_free(f);
    return DL_OK;
}
