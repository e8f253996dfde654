/* sel.h: submodular set functions and greedy optimisers over borrowed kernels.
 *
 * The selection half of DELIFT (../shared/spec/DELIFT.md §4-§5).  A kernel is
 * a matrix of float32 similarities the caller owns: row i is a represented
 * target, column j a candidate.  sel never copies a kernel, never frees it and
 * never writes to it; the caller keeps it alive and unchanged for the whole
 * call.  Dense kernels are row-major with a row stride in elements (so an
 * mmapped .npy or a slice of a wider matrix works as is); sparse kernels are
 * CSR (typically the k nearest neighbours of each row), and a stored-absent
 * entry means 0.
 *
 * Functions (n = ground set size = number of candidates):
 *   fl    facility location            S: m x n     f(A) = sum_i max(0, max_{a in A} S[i][a])
 *   flmi  FL mutual information, min   S: m x n, Q: m x q (row i of S and of Q is the same target)
 *         form (submodlib's FLMI)      f(A) = sum_i min(m_i, eta * max_q Q[i][q])
 *   flqmi FL variant mutual            Q: n x q, row j = candidate j, column = query item
 *         information (submodlib's     f(A) = sum_q max(0, max_{j in A} Q[j][q])
 *         FacilityLocationVariantMI)          + eta * sum_{j in A} max_q Q[j][q]
 *   flcg  FL conditional gain          S: m x n, P: m x p
 *                                      f(A) = sum_i max(0, m_i - max(0, nu * max_p P[i][p]))
 *   gc    graph cut                    S: n x n  f(A) = sum_i sum_{j in A} S[i][j]
 *                                                       - lambda * sum_{a,b in A} S[a][b]
 *   gcmi  GC mutual information        Q: n x q  f(A) = sum_{j in A} sum_q Q[j][q]
 *   gccg  GC conditional gain          S: n x n, P: n x p
 *                                      f(A) = GC(A) - 2 lambda nu sum_{j in A} sum_p P[j][p]
 * with m_i = max(0, max_{a in A} S[i][a]).  Values and gains follow the
 * reference library's arithmetic (float32 kernel and memo, gains summed in
 * double in row order), so selections match it index for index.
 * docs/selectors.md lists where we knowingly differ (zero-gain test, graph
 * cut on a non-symmetric kernel).
 *
 * Errors: every call that can fail returns dl_status and fills an optional
 * caller-owned dl_error (dl_error.h).  DL_ERR_USAGE: bad argument or shape;
 * DL_ERR_INPUT: malformed CSR structure; DL_ERR_NUMERIC: NaN/Inf in a kernel
 * (the message names the kernel, row and column); DL_ERR_NOMEM;
 * DL_ERR_CANCELLED when the caller's cancel flag is raised.
 *
 * Thread safety: calls on distinct objects may run concurrently; kernels are
 * only read, so many calls may share one.  A sel_fn is not thread-safe.
 */
#ifndef DL_SEL_H
#define DL_SEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kernels ------------------------------------------------------------ */

typedef enum sel_kernel_kind {
    SEL_KERNEL_DENSE = 0, /* row-major float32 with a row stride */
    SEL_KERNEL_CSR = 1    /* compressed sparse rows, float32 values */
} sel_kernel_kind;

typedef enum sel_index_type {
    SEL_INDEX_I32 = 0, /* CSR column indices are int32_t */
    SEL_INDEX_I64 = 1  /* CSR column indices are int64_t */
} sel_index_type;

/* A borrowed view of a rows x cols kernel.  Fill it with sel_kernel_dense()
 * or sel_kernel_csr(); every pointer is borrowed from the caller. */
typedef struct sel_kernel {
    sel_kernel_kind kind;
    int64_t rows; /* represented targets (or ground items, for Q and P) */
    int64_t cols; /* candidates (or query / private items) */
    /* SEL_KERNEL_DENSE: element (i, j) is data[i * stride + j]. */
    const float *data; /* (rows, stride), borrowed */
    int64_t stride;    /* elements between row starts, >= cols */
    /* SEL_KERNEL_CSR: row i holds entries indptr[i] .. indptr[i+1]-1. */
    const int64_t *indptr;     /* (rows + 1), indptr[0] = 0, non-decreasing */
    const void *indices;       /* (nnz) int32_t or int64_t, in [0, cols) */
    sel_index_type index_type; /* the element type of indices */
    const float *values;       /* (nnz) */
    int64_t nnz;               /* indptr[rows] */
} sel_kernel;

/* Fills k as a dense view; checks nothing (sel_kernel_check does). */
void sel_kernel_dense(sel_kernel *k, const float *data, int64_t rows,
                      int64_t cols, int64_t stride);

/* Fills k as a CSR view; nnz is read from indptr[rows] (indptr must be
 * readable when rows >= 0).  Checks nothing else. */
void sel_kernel_csr(sel_kernel *k, int64_t rows, int64_t cols,
                    const int64_t *indptr, const void *indices,
                    sel_index_type index_type, const float *values);

/* Validates shape and structure (non-negative sizes, stride >= cols, NULL
 * data, indptr monotone from 0, indices in range, duplicate columns in a
 * row) and that every value is finite.  name ("kernel", "query", "private")
 * goes into the message and the error's field.  O(stored entries). */
dl_status sel_kernel_check(const sel_kernel *k, const char *name, dl_error *err);

/* ---- problems: a function and its kernels -------------------------------- */

typedef enum sel_fn_kind {
    SEL_FN_FL = 0,
    SEL_FN_FLMI = 1,
    SEL_FN_FLQMI = 2,
    SEL_FN_FLCG = 3,
    SEL_FN_GC = 4,
    SEL_FN_GCMI = 5,
    SEL_FN_GCCG = 6
} sel_fn_kind;

#define SEL_FN_COUNT 7

/* What to maximise.  Which kernels a function reads (the others must be
 * NULL, so a forgotten or misplaced kernel is a usage error, not a silent
 * default):
 *   fl: kernel; flmi: kernel + query; flqmi: query; flcg: kernel + private;
 *   gc: kernel (square); gcmi: query; gccg: kernel (square) + private.
 * Row counts must agree (S, Q and P rows all index the same targets, or
 * for gc/gcmi/gccg/flqmi the same ground items).  All parameters are rounded
 * to float32 as the reference stores them. */
typedef struct sel_problem {
    sel_fn_kind fn;
    const sel_kernel *kernel;  /* S, borrowed, or NULL */
    const sel_kernel *query;   /* Q, borrowed, or NULL */
    const sel_kernel *priv;    /* P, borrowed, or NULL */
    double lambda; /* gc, gccg: >= 0; monotone for lambda < 0.5 on symmetric S */
    double eta;    /* flmi, flqmi: >= 0, default 1 */
    double nu;     /* flcg, gccg: >= 0, default 1 */
} sel_problem;

/* fn = SEL_FN_FL, no kernels, lambda = 0.5, eta = nu = 1. */
void sel_problem_init(sel_problem *p);

/* Ground set size n (number of candidates) of a well-formed problem; -1 if
 * the kernels it needs are missing. */
int64_t sel_problem_size(const sel_problem *p);

/* Validates the whole problem: the right kernels for fn, shapes, parameter
 * ranges, finiteness (sel_kernel_check on each kernel).  O(kernel entries). */
dl_status sel_problem_check(const sel_problem *p, dl_error *err);

/* "fl", "flmi", ... <-> enum.  parse returns DL_ERR_USAGE for an unknown
 * name; name returns a static string ("?" for an invalid value). */
dl_status sel_fn_kind_parse(const char *name, sel_fn_kind *out, dl_error *err);
const char *sel_fn_kind_name(sel_fn_kind kind);

/* ---- evaluation and marginal gains ---------------------------------------- */

/* A function instance with its memo (running maxima or subset sums) for a
 * growing set A.  Borrows the problem's kernels; owns O(n + m) memory. */
typedef struct sel_fn sel_fn;

/* Checks p (sel_problem_check) and returns a new instance with A empty.
 * *out is owned by the caller (sel_fn_free). */
dl_status sel_fn_new(const sel_problem *p, sel_fn **out, dl_error *err);
void sel_fn_free(sel_fn *f); /* NULL is a no-op */

int64_t sel_fn_size(const sel_fn *f); /* n */

/* Marginal gain f(A + j) - f(A), 0 <= j < n, in the reference's arithmetic.
 * A j already in A has gain 0 for the facility-location family; asserting
 * j in range is the caller's job (checked with assert). */
double sel_fn_gain(const sel_fn *f, int64_t j);

/* Adds j to A (updates the memo).  DL_ERR_USAGE if j is out of range or
 * already in A. */
dl_status sel_fn_add(sel_fn *f, int64_t j, dl_error *err);

/* Empties A. */
void sel_fn_reset(sel_fn *f);

/* f(A) for the current A, computed from scratch (not from the memo). */
double sel_fn_value(const sel_fn *f);

/* f(set) for an arbitrary set (duplicates and order ignored), from scratch.
 * DL_ERR_USAGE for an index out of range or count < 0. */
dl_status sel_evaluate(const sel_problem *p, const int64_t *set, int64_t count,
                       double *value, dl_error *err);

/* ---- optimisers ------------------------------------------------------------ */

typedef enum sel_opt_kind {
    SEL_OPT_NAIVE = 0,      /* every step evaluates every candidate */
    SEL_OPT_LAZY = 1,       /* Minoux, with the reference's heap tie-breaking */
    SEL_OPT_STOCHASTIC = 2, /* Mirzasoleiman et al. 2015, caller's seed */
    SEL_OPT_LAZIER = 3      /* lazier than lazy: stochastic + lazy bounds */
} sel_opt_kind;

#define SEL_OPT_COUNT 4

dl_status sel_opt_kind_parse(const char *name, sel_opt_kind *out, dl_error *err);
const char *sel_opt_kind_name(sel_opt_kind kind); /* "naive", "lazy", ... */

typedef enum sel_budget_kind {
    SEL_BUDGET_COUNT = 0,   /* exactly `budget` items (fewer only on a stop) */
    SEL_BUDGET_FRACTION = 1 /* floor(budget_fraction * n) items */
} sel_budget_kind;

typedef enum sel_stop_reason {
    SEL_STOP_BUDGET = 0,        /* picked the whole budget */
    SEL_STOP_ZERO_GAIN = 1,     /* best gain within gain_tolerance of 0 */
    SEL_STOP_NEGATIVE_GAIN = 2, /* best gain below -gain_tolerance */
    SEL_STOP_COST = 3           /* no remaining item fits the cost budget */
} sel_stop_reason;

typedef struct sel_options {
    sel_opt_kind optimizer; /* default SEL_OPT_LAZY */
    sel_budget_kind budget_kind;
    int64_t budget;         /* SEL_BUDGET_COUNT: 0 <= budget <= n */
    double budget_fraction; /* SEL_BUDGET_FRACTION: 0 <= fraction <= 1 */
    /* Stops (the reference always returns `budget` items when both are
     * false).  A best gain g with |g| <= gain_tolerance is "zero"; with
     * g < -gain_tolerance it is "negative".  The stopping pick is not
     * included.  gain_tolerance >= 0, default 0 (an exact test). */
    bool stop_if_zero_gain;
    bool stop_if_negative_gain;
    double gain_tolerance;
    /* Stochastic and lazier: each step samples
     * s = ceil((n / budget) * ln(1 / epsilon)) candidates, 0 < epsilon < 1,
     * default 0.01; seed makes runs reproducible (same seed, same result). */
    double epsilon;
    uint64_t seed;
    /* Optional per-item costs (n values, finite and > 0, borrowed): the
     * greedy then takes the best gain / cost among the items that still fit
     * cost_budget (> 0), and also stops after `budget` items.  NULL: unit
     * costs and the plain gain order. */
    const double *costs;
    double cost_budget;
    /* Worker threads for the dense sweeps, >= 1 (default 1).  The answer
     * does not depend on it. */
    int threads;
    /* Optional: polled between steps; nonzero stops with DL_ERR_CANCELLED. */
    const volatile int *cancel;
} sel_options;

/* optimizer lazy, budget count 0, no stops, tolerance 0, epsilon 0.01,
 * seed 0, no costs, threads 1, no cancel flag. */
void sel_options_init(sel_options *o);

/* Resolves the budget to a count for ground size n (floor for fractions);
 * DL_ERR_USAGE when out of range. */
dl_status sel_options_budget(const sel_options *o, int64_t n, int64_t *count,
                             dl_error *err);

/* The selection, in greedy order.  Owned by the struct: sel_result_free. */
typedef struct sel_result {
    int64_t count;    /* items picked */
    int64_t *indices; /* (count) ground indices, owned */
    double *gains;    /* (count) marginal gain of each pick when taken, owned */
    double value;     /* f(A) of the picked set (FL family: from the final memo,
                       * which equals the from-scratch value bit for bit) */
    sel_stop_reason stop;
    int64_t evaluations; /* gain evaluations done (a cost statistic) */
    int64_t gathered;    /* graph cut, non-symmetric kernel: elements S[x][a] read
                          * for the pending sums sum_{a in A} S[x][a] (a cost
                          * statistic; 0 on a symmetric kernel) */
} sel_result;

void sel_result_init(sel_result *r);  /* empty result, safe to free */
void sel_result_free(sel_result *r);  /* frees the arrays, re-inits; NULL no-op */

/* Maximises p under o.  Checks everything first (sel_problem_check, option
 * ranges, budget <= n); on error *out is left empty.  out must be
 * initialised (sel_result_init) and is overwritten.  Reentrant. */
dl_status sel_maximize(const sel_problem *p, const sel_options *o,
                       sel_result *out, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DL_SEL_H */
