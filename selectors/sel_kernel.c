/* sel_kernel.c: kernel views, problem validation and the name tables. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sel.h"
#include "sel_impl.h"

void sel_kernel_dense(sel_kernel *k, const float *data, int64_t rows,
                      int64_t cols, int64_t stride)
{
    memset(k, 0, sizeof *k);
    k->kind = SEL_KERNEL_DENSE;
    k->data = data;
    k->rows = rows;
    k->cols = cols;
    k->stride = stride;
}

void sel_kernel_csr(sel_kernel *k, int64_t rows, int64_t cols,
                    const int64_t *indptr, const void *indices,
                    sel_index_type index_type, const float *values)
{
    memset(k, 0, sizeof *k);
    k->kind = SEL_KERNEL_CSR;
    k->rows = rows;
    k->cols = cols;
    k->indptr = indptr;
    k->indices = indices;
    k->index_type = index_type;
    k->values = values;
    k->nnz = (indptr && rows >= 0) ? indptr[rows] : 0;
}

int sel_kernel_find_nonfinite(const sel_kernel *k, int64_t *row, int64_t *col)
{
    for (int64_t i = 0; i < k->rows; i++) {
        if (k->kind == SEL_KERNEL_DENSE) {
            int64_t j = sel_row_nonfinite(k->data + i * k->stride, k->cols);
            if (j >= 0) {
                *row = i;
                *col = j;
                return 1;
            }
        } else {
            for (int64_t e = k->indptr[i]; e < k->indptr[i + 1]; e++)
                if (!isfinite(k->values[e])) {
                    *row = i;
                    *col = sel_csr_col(k, e);
                    return 1;
                }
        }
    }
    return 0;
}

static dl_status check_csr_structure(const sel_kernel *k, const char *name,
                                     dl_error *err)
{
    if (!k->indptr || (k->nnz > 0 && (!k->indices || !k->values)))
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, name,
                               "%s: CSR kernel without indptr/indices/data", name);
    if (k->indptr[0] != 0)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, name,
                               "%s: indptr[0] is %lld, not 0", name,
                               (long long)k->indptr[0]);
    /* Duplicates would be counted twice by row sweeps: one bit per column,
     * set while a row is scanned and cleared after it (O(stored entries)). */
    uint64_t *seen = calloc((size_t)(k->cols / 64 + 1), sizeof *seen);
    if (!seen)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory checking %s", name);
    dl_status st = DL_OK;
    for (int64_t i = 0; i < k->rows && st == DL_OK; i++) {
        int64_t a = k->indptr[i], b = k->indptr[i + 1], e;
        if (b < a || b > k->nnz) {
            st = dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, name,
                                 "%s: indptr is not non-decreasing within nnz at row %lld",
                                 name, (long long)i);
            break;
        }
        for (e = a; e < b && st == DL_OK; e++) {
            int64_t c = sel_csr_col(k, e);
            if (c < 0 || c >= k->cols)
                st = dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, name,
                                     "%s: row %lld has column %lld outside [0, %lld)", name,
                                     (long long)i, (long long)c, (long long)k->cols);
            else if (seen[c / 64] & (UINT64_C(1) << (c % 64)))
                st = dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, name,
                                     "%s: row %lld stores column %lld twice", name,
                                     (long long)i, (long long)c);
            else
                seen[c / 64] |= UINT64_C(1) << (c % 64);
        }
        for (int64_t u = a; u < e; u++) { /* clear what this row set */
            int64_t c = sel_csr_col(k, u);
            if (c >= 0 && c < k->cols)
                seen[c / 64] &= ~(UINT64_C(1) << (c % 64));
        }
    }
    free(seen);
    return st;
}

static dl_status check_shape(const sel_kernel *k, const char *name, dl_error *err)
{
    if (k->rows < 0 || k->cols < 0)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, name,
                               "%s: negative shape %lld x %lld", name,
                               (long long)k->rows, (long long)k->cols);
    if (k->kind == SEL_KERNEL_DENSE) {
        if (k->stride < k->cols)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, name,
                                   "%s: row stride %lld is smaller than %lld columns",
                                   name, (long long)k->stride, (long long)k->cols);
        if (!k->data && k->rows > 0 && k->cols > 0)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, name,
                                   "%s: NULL data", name);
        return DL_OK;
    }
    if (k->kind == SEL_KERNEL_CSR)
        return check_csr_structure(k, name, err);
    return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, name,
                           "%s: unknown kernel kind %d", name, (int)k->kind);
}

dl_status sel_kernel_check(const sel_kernel *k, const char *name, dl_error *err)
{
    if (!name)
        name = "kernel";
    if (!k)
        return dl_error_set(err, DL_ERR_USAGE, "%s: NULL kernel", name);
    dl_status st = check_shape(k, name, err);
    if (st != DL_OK)
        return st;
    int64_t r, c;
    if (sel_kernel_find_nonfinite(k, &r, &c))
        return dl_error_set_at(err, DL_ERR_NUMERIC, NULL, 0, 0, -1, name,
                               "%s: non-finite value at row %lld, column %lld", name,
                               (long long)r, (long long)c);
    return DL_OK;
}

/* ---- problems ------------------------------------------------------------ */

void sel_problem_init(sel_problem *p)
{
    memset(p, 0, sizeof *p);
    p->fn = SEL_FN_FL;
    p->lambda = 0.5;
    p->eta = 1.0;
    p->nu = 1.0;
}

/* Which kernels each function reads: bit 0 kernel, 1 query, 2 private. */
static const unsigned fn_needs[SEL_FN_COUNT] = {
    [SEL_FN_FL] = 1, [SEL_FN_FLMI] = 3, [SEL_FN_FLQMI] = 2, [SEL_FN_FLCG] = 5,
    [SEL_FN_GC] = 1, [SEL_FN_GCMI] = 2, [SEL_FN_GCCG] = 5,
};

int64_t sel_problem_size(const sel_problem *p)
{
    if (!p || (unsigned)p->fn >= SEL_FN_COUNT)
        return -1;
    if (p->fn == SEL_FN_GCMI || p->fn == SEL_FN_FLQMI)
        return p->query ? p->query->rows : -1;
    return p->kernel ? p->kernel->cols : -1;
}

static dl_status check_param(double v, const char *name, int64_t used, dl_error *err)
{
    if (!used)
        return DL_OK;
    if (!isfinite(v) || v < 0 || v > 3.0e38)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, name,
                               "%s must be finite and >= 0 (got %g)", name, v);
    return DL_OK;
}

dl_status sel_problem_check_shape(const sel_problem *p, dl_error *err)
{
    if (!p)
        return dl_error_set(err, DL_ERR_USAGE, "NULL problem");
    if ((unsigned)p->fn >= SEL_FN_COUNT)
        return dl_error_set(err, DL_ERR_USAGE, "unknown function kind %d", (int)p->fn);
    const char *fname = sel_fn_kind_name(p->fn);
    unsigned need = fn_needs[p->fn];
    const sel_kernel *ks[3] = {p->kernel, p->query, p->priv};
    static const char *const kname[3] = {"kernel", "query", "private"};
    for (int b = 0; b < 3; b++) {
        int needed = (need >> b) & 1;
        if (needed && !ks[b])
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, kname[b],
                                   "%s needs a %s kernel", fname, kname[b]);
        if (!needed && ks[b])
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, kname[b],
                                   "%s takes no %s kernel", fname, kname[b]);
        if (needed) {
            dl_status st = check_shape(ks[b], kname[b], err);
            if (st != DL_OK)
                return st;
        }
    }
    int square = p->fn == SEL_FN_GC || p->fn == SEL_FN_GCCG;
    if (square && p->kernel->rows != p->kernel->cols)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "kernel",
                               "%s needs a square kernel, got %lld x %lld", fname,
                               (long long)p->kernel->rows, (long long)p->kernel->cols);
    const sel_kernel *base = p->kernel ? p->kernel : p->query;
    for (int b = 1; b < 3; b++)
        if (ks[b] && ks[b]->rows != base->rows)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, kname[b],
                                   "%s: %s kernel has %lld rows, the kernel %lld",
                                   fname, kname[b], (long long)ks[b]->rows,
                                   (long long)base->rows);
    dl_status st = check_param(p->lambda, "lambda",
                               p->fn == SEL_FN_GC || p->fn == SEL_FN_GCCG, err);
    if (st == DL_OK)
        st = check_param(p->eta, "eta", p->fn == SEL_FN_FLMI || p->fn == SEL_FN_FLQMI, err);
    if (st == DL_OK)
        st = check_param(p->nu, "nu", p->fn == SEL_FN_FLCG || p->fn == SEL_FN_GCCG, err);
    return st;
}

dl_status sel_problem_check(const sel_problem *p, dl_error *err)
{
    dl_status st = sel_problem_check_shape(p, err);
    if (st != DL_OK)
        return st;
    const sel_kernel *ks[3] = {p->kernel, p->query, p->priv};
    static const char *const kname[3] = {"kernel", "query", "private"};
    for (int b = 0; b < 3; b++) {
        int64_t r, c;
        if (ks[b] && sel_kernel_find_nonfinite(ks[b], &r, &c))
            return dl_error_set_at(err, DL_ERR_NUMERIC, NULL, 0, 0, -1, kname[b],
                                   "%s: non-finite value at row %lld, column %lld",
                                   kname[b], (long long)r, (long long)c);
    }
    return DL_OK;
}

/* ---- names ------------------------------------------------------------------ */

static const char *const fn_names[SEL_FN_COUNT] = {
    "fl", "flmi", "flqmi", "flcg", "gc", "gcmi", "gccg",
};

static const char *const opt_names[SEL_OPT_COUNT] = {
    "naive", "lazy", "stochastic", "lazier",
};

const char *sel_fn_kind_name(sel_fn_kind kind)
{
    return (unsigned)kind < SEL_FN_COUNT ? fn_names[kind] : "?";
}

const char *sel_opt_kind_name(sel_opt_kind kind)
{
    return (unsigned)kind < SEL_OPT_COUNT ? opt_names[kind] : "?";
}

dl_status sel_fn_kind_parse(const char *name, sel_fn_kind *out, dl_error *err)
{
    for (int i = 0; name && i < SEL_FN_COUNT; i++)
        if (strcmp(name, fn_names[i]) == 0) {
            *out = (sel_fn_kind)i;
            return DL_OK;
        }
    return dl_error_set(err, DL_ERR_USAGE,
                        "unknown function '%s' (fl, flmi, flqmi, flcg, gc, gcmi, gccg)",
                        name ? name : "(null)");
}

dl_status sel_opt_kind_parse(const char *name, sel_opt_kind *out, dl_error *err)
{
    for (int i = 0; name && i < SEL_OPT_COUNT; i++)
        if (strcmp(name, opt_names[i]) == 0) {
            *out = (sel_opt_kind)i;
            return DL_OK;
        }
    return dl_error_set(err, DL_ERR_USAGE,
                        "unknown optimizer '%s' (naive, lazy, stochastic, lazier)",
                        name ? name : "(null)");
}
