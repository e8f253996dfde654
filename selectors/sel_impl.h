/* sel_impl.h: private to selectors/sel_*.c (not installed, not for callers).
 *
 * Element access for borrowed kernels, the function instance's layout and
 * the incremental gain engine the optimisers share.  See sel.h for the
 * public contract and docs/selectors.md for the design.
 */
#ifndef DL_SEL_IMPL_H
#define DL_SEL_IMPL_H

#include <stdint.h>

#include "sel.h"

/* Entries of one CSR row, indices of either width. */
static inline int64_t sel_csr_col(const sel_kernel *k, int64_t e)
{
    return k->index_type == SEL_INDEX_I32 ? (int64_t)((const int32_t *)k->indices)[e]
                                          : ((const int64_t *)k->indices)[e];
}

/* Element (i, j); 0 for an entry a CSR row does not store.  CSR rows are
 * searched linearly (k-nearest rows are short). */
static inline float sel_kernel_at(const sel_kernel *k, int64_t i, int64_t j)
{
    if (k->kind == SEL_KERNEL_DENSE)
        return k->data[i * k->stride + j];
    for (int64_t e = k->indptr[i]; e < k->indptr[i + 1]; e++)
        if (sel_csr_col(k, e) == j)
            return k->values[e];
    return 0.0f;
}

/* The column view of a CSR kernel: for column j, the rows that store it, in
 * increasing row order (a value is then found by a search of that row, which
 * k-nearest rows keep short).  Built only by the optimisers for the
 * facility-location family on CSR. */
/* Graph cut on CSR folds pending picks into every column sum after this many. */
#define SEL_GC_BATCH 32

/* How gc/gccg keep colpick[x] = sum_{a in A} S[x][a] (sel_fn.c, sel_gc.c):
 * PENDING: picks not yet folded in are gathered from row x when x's gain is
 * asked for (CSR also folds every pending pick in after SEL_GC_BATCH);
 * SYMMETRIC: a dense S equal to its transpose element for element, so
 * colpick[x] is rowpick[x] bit for bit and is never formed. */
typedef enum sel_gc_mode { SEL_GC_PENDING, SEL_GC_SYMMETRIC } sel_gc_mode;

/* Columns per block of the dense block maxima: 1/64 of the kernel's bytes. */
#define SEL_BLOCK 64

typedef struct sel_csc {
    int64_t *colptr; /* (cols + 1) */
    int32_t *rows;   /* (nnz) row of each entry, column-major */
} sel_csc;

struct sel_fn {
    sel_problem p; /* copy; kernel pointers stay borrowed */
    int64_t n;     /* ground set size (candidates) */
    int64_t m;     /* represented rows (FL family) or ground rows (GC family) */
    int64_t q;     /* query/private columns where used */
    float lambda, eta, nu; /* parameters as the reference stores them */
    float *memo;   /* (m) running max (FL family) or (q) per query (flqmi) */
    float *start;  /* (m) flcg: the memo of the empty set, max(0, nu * pmax) */
    float *cap;    /* (m) flmi: qmax_i = max(FLT_MIN, max_q eta * Q[i][q]) */
    double *colsum;   /* (n) gc/gccg: T_j = sum_i S[i][j]; gcmi: sum_q Q[j][q] */
    double *rowpick;  /* (n) gc/gccg: sum_{a in A} S[a][j] (row a added at a pick) */
    double *colpick;  /* (n) gc/gccg: sum_{a in A} S[j][a], brought up to date lazily */
    int64_t *colpick_n; /* (n) how many picks colpick[j] includes */
    int64_t colpick_all; /* every colpick[j] includes at least this many */
    sel_gc_mode gc_mode; /* gc/gccg: how colpick is kept (see above) */
    int64_t gathered;    /* gc/gccg: terms folded into colpick by the optimisers
                          * (sel_fn_gain_update, the CSR flush); a cost
                          * statistic, reported as result.gathered */
    double *diag;     /* (n) gc/gccg: (double)(lambda * S[j][j]), a float product */
    double *psum;     /* (n) gccg: (float)(nu * sum_p P[j][p]), as the reference */
    float *qbest;     /* (n) flqmi: eta * max(FLT_MIN, max_q Q[j][q]) */
    unsigned char *in; /* (n) 1 when j is in A */
    int64_t *picks;    /* (n) A in insertion order */
    int64_t count;     /* |A| */
    /* Incremental gains (FL family, optimisers only): gain[j] is kept equal
     * to the marginal gain of j, updated row by row as the memo changes. */
    double *gain;      /* (n) or NULL */
    int32_t *touched;  /* (n) with gain: the last pick (step) that changed gain[j] */
    int32_t step;      /* picks applied to the table */
    sel_csc csc;       /* CSR column view, or all NULL */
    float *bmax;       /* (m, nblocks) dense: max of each SEL_BLOCK columns of a row */
    float *bmaxt;      /* (nblocks, m) dense: bmax transposed, so that a pick's
                        * column scan reads one contiguous line of it */
    int64_t nblocks;
    int threads;
    struct sel_pool *pool; /* worker threads for the dense sweeps, or NULL */
    /* Every memo rise, in pick order (FL family with gain): row, old memo,
     * pick (step) that raised it; lets sel_fn_gain_at_step undo picks. */
    int32_t *log_row, *log_step;
    float *log_old;
    int64_t log_len, log_cap;
    /* CSR only: each row's rises chained newest first (log_head[i], then
     * log_prev[e]; -1 ends), so that a column's memo of then costs its
     * rows' rises since, not O(m).  NULL for dense kernels. */
    int32_t *log_head; /* (m) */
    int32_t *log_prev; /* (log_cap) */
    int64_t *changed;  /* (m) scratch: rows whose memo a pick raises */
    float *changed_old; /* (m) scratch: their old memo */
};

/* Validates shapes and parameters only (no value scan). */
dl_status sel_problem_check_shape(const sel_problem *p, dl_error *err);

/* First non-finite value of kernel k: returns 1 and sets *row, *col, else 0. */
int sel_kernel_find_nonfinite(const sel_kernel *k, int64_t *row, int64_t *col);

/* Builds f's memo arrays for p, scanning every kernel once (and failing with
 * DL_ERR_NUMERIC on the first NaN/Inf).  incremental: also build gain[]
 * for the facility-location family. */
dl_status sel_fn_create(const sel_problem *p, int incremental, int threads,
                        sel_fn **out, dl_error *err);

/* The optimisers' gain of j: the incremental table for the FL family; for
 * graph cut it also folds pending picks into colpick[j].  Same bits as
 * sel_fn_gain. */
double sel_fn_gain_update(sel_fn *f, int64_t j);

/* Asks the memory for what sel_fn_gain_update(f, j) will read that may be
 * far: graph cut on a dense non-symmetric kernel, row j's elements at the
 * picks colpick[j] still lacks; nothing otherwise.  Changes no state. */
void sel_fn_gain_prefetch(const sel_fn *f, int64_t j);

/* FL family, optimisers only: the reference's (column-sum) gain of j as it
 * was after the first `steps` picks (steps <= |A|): the memo of then, undone
 * from the memo log, then one column sum.  Dense: O(m + memo rises since),
 * with changed_old as scratch; CSR: O(entries of column j times their row
 * lengths + those rows' rises since). */
double sel_fn_gain_at_step(sel_fn *f, int64_t j, int64_t steps);

/* f(A) from the memo (FL family: equal to sel_fn_value bit for bit, O(m));
 * sel_fn_value for the others. */
double sel_fn_value_memo(const sel_fn *f);

/* ---- sel_fast.c: instruction sets of the dense kernels ------------------------ */

/* Which instances the dense kernels (sel_fast.c, sel_gc.c) run.  All do the
 * same float32 and double operations per element in the same order, so the
 * answer is the same bit for bit; only the speed differs. */
typedef enum sel_isa {
    SEL_ISA_AUTO = -1,  /* the best the CPU and OS support */
    SEL_ISA_SCALAR = 0, /* portable C */
    SEL_ISA_AVX2 = 1,
    SEL_ISA_AVX512 = 2  /* AVX-512 F, BW, VL and DQ */
} sel_isa;

/* Caps the instances used from now on at `want` (AUTO: no cap); returns
 * the set that will run, lower than `want` when the CPU lacks it.
 * Process-wide, for tests and benchmarks: not while a selection runs. */
sel_isa sel_isa_set(sel_isa want);

/* The set in effect (the CPU's best unless capped); thread-safe, cheap. */
sel_isa sel_isa_now(void);

/* ---- sel_fast.c: the incremental engine for fl / flmi / flcg ------------ */

/* Fills f->gain[] for the empty memo state (start values) with one
 * row-wise sweep, checking every value of S; O(stored entries of S). */
dl_status sel_fast_init(sel_fn *f, dl_error *err);

/* Raises the memo for a pick of j and updates gain[] for every row whose
 * memo changed (row-wise, so the kernel is read in its own order). */
void sel_fast_add(sel_fn *f, int64_t j);

void sel_csc_free(sel_csc *c);

/* First non-finite element of a dense row of n, or -1 (vectorised). */
int64_t sel_row_nonfinite(const float *row, int64_t n);

/* ---- sel_gc.c: graph cut on a dense square kernel -------------------------- */

/* Column sums T (f->colsum), the diagonal terms (f->diag) and the mode
 * (SYMMETRIC when S equals its transpose element for element, float ==,
 * else PENDING), in one read of S when it is symmetric; DL_ERR_NUMERIC names
 * the first NaN/Inf in row-major order.  Starts f's pool for f->threads > 1. */
dl_status sel_gc_init(sel_fn *f, dl_error *err);

/* A pick of a: rowpick += row a (threaded by column slices). */
void sel_gc_add(sel_fn *f, int64_t a);

/* Stops and joins f's worker threads (NULL pool: no-op). */
void sel_fast_pool_free(sel_fn *f);

/* A fork-join pool: job(arg, tid, nthreads) runs once on each thread (tid 0
 * is the caller) and sel_pool_run returns when all have finished.  NULL pool
 * or one thread: job(arg, 0, 1) on the caller. */
typedef void (*sel_pool_job)(void *arg, int tid, int nthreads);
struct sel_pool *sel_pool_new(int nthreads); /* NULL when out of memory */
void sel_pool_run(struct sel_pool *pool, sel_pool_job job, void *arg);
int sel_pool_threads(const struct sel_pool *pool); /* 1 for NULL */
/* Column slice [*lo, *hi) of thread tid of nt over n columns, aligned to
 * whole SEL_BLOCK blocks. */
void sel_pool_slice(int64_t n, int tid, int nt, int64_t *lo, int64_t *hi);
/* The first (row-major) of the per-thread first non-finite positions
 * rows[t], cols[t] (row -1: none) of nt threads: DL_ERR_NUMERIC naming it,
 * or DL_OK. */
dl_status sel_first_nonfinite(const int64_t *rows, const int64_t *cols, int nt, dl_error *err);

#endif /* DL_SEL_IMPL_H */
