/* cli_optimize.c: `delift optimize`, greedy subset selection over kernel files.
 *
 * Loads the kernels a function needs (.npy memory-mapped and borrowed, or a
 * scipy CSR .npz), checks flags before touching files and files before
 * optimising, runs sel_maximize and prints one JSON line per pick.  Flag
 * mistakes exit 1, bad or mismatched files exit 2 (naming the file and the
 * byte offset), I/O and internal failures 3, an interrupt 130.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "dl_file.h"
#include "sel.h"
#include "sel_npy.h"
#include "sel_npz.h"

static const char *const CMD = "optimize";

static void optimize_usage(FILE *out)
{
    fprintf(out,
"Usage: delift optimize --function F --budget N|0.F KERNELS [options]\n"
"\n"
"Greedy maximisation of a submodular function over similarity kernels\n"
"(../shared/spec/DELIFT.md 4-5, the semantics of submodlib).  Prints one JSON\n"
"line per pick, in greedy order:\n"
"  {\"rank\":0,\"index\":2,\"gain\":4.974454}\n"
"rank counts from 0; index is the 0-based candidate (kernel column); gain is\n"
"the marginal gain f(A + index) - f(A) when picked, printed with the fewest\n"
"digits that read back as the same double (at most 17 significant digits).\n"
"\n"
"Kernels (.npy: float32 or float64, C order, 2-D; float32 little-endian files\n"
"are memory-mapped, never copied; S[i][j]: row i a represented target,\n"
"column j a candidate):\n"
"  --kernel K.npy     S, dense (m x n; square for gc and gccg)\n"
"  --sparse K.npz     S as a scipy CSR .npz (scipy.sparse.save_npz), instead\n"
"                     of --kernel; absent entries are 0\n"
"  --query Q.npy      Q (flmi: m x q, rows as S; flqmi, gcmi: n x q)\n"
"  --private P.npy    P (flcg: m x p, rows as S; gccg: n x p)\n"
"\n"
"Functions (--function) and the kernels each needs (others are refused):\n"
"  fl     facility location              --kernel\n"
"  flmi   FL mutual information (min)    --kernel --query    [--eta]\n"
"  flqmi  FL variant mutual information  --query             [--eta]\n"
"  flcg   FL conditional gain            --kernel --private  [--nu]\n"
"  gc     graph cut                      --kernel            [--lambda]\n"
"  gcmi   graph-cut mutual information   --query\n"
"  gccg   graph-cut conditional gain     --kernel --private  [--lambda --nu]\n"
"\n"
"Options:\n"
"  --budget N|0.F     N items (0 <= N <= n), or a fraction 0.F of n rounded down\n"
"                     (the argument has a '.', 0 <= F <= 1)\n"
"  --optimizer O      naive, lazy (default), stochastic or lazier\n"
"  --lambda L         gc, gccg: >= 0 (default 0.5)\n"
"  --eta E            flmi, flqmi: >= 0 (default 1)\n"
"  --nu V             flcg, gccg: >= 0 (default 1)\n"
"  --epsilon E        stochastic, lazier: 0 < E < 1 (default 0.01)\n"
"  --seed S           stochastic, lazier: 0 <= S < 2^63 (default 0)\n"
"  --threads T        worker threads, 1..256 (default 1); same answer for any T\n"
"  --stop-if-zero-gain      stop when the best gain is within the tolerance of 0\n"
"  --stop-if-negative-gain  stop when the best gain is below -tolerance\n"
"  --gain-tolerance T >= 0 (default 0: exact tests; submodlib truncates to an\n"
"                     integer instead, which stops at any |gain| < 1)\n"
"  --costs C.npy      per-candidate costs (n values, 1-D or n x 1, > 0): picks\n"
"                     the best gain/cost that fits --cost-budget\n"
"  --cost-budget B    total cost allowed, > 0 (required with --costs)\n"
"  -o, --output FILE  write the JSON lines to FILE (atomically) instead of stdout\n"
"  --summary          end the output with one line\n"
"                     {\"summary\":{\"function\":..,\"optimizer\":..,\"n\":..,\"count\":..,\n"
"                     \"value\":f(A),\"stop\":..,\"evaluations\":..,\"seconds\":..}}\n"
"  --quiet            no summary on stderr\n"
"  -h, --help         this text\n"
"\n"
"A summary (count, f(A), stop reason, time) goes to stderr unless --quiet.\n"
"\n"
"Exit codes: 0 ok; 1 bad flags (unknown flag, bad number, a kernel the\n"
"function does not use or lacks, a budget above n); 2 bad input files (the\n"
"message names the file and byte offset: malformed .npy/.npz, NaN or Inf,\n"
"shapes that do not fit together); 3 I/O or internal failure; 130 interrupted.\n");
}

/* ---- flags ---------------------------------------------------------------- */

typedef struct opt_args {
    const char *kernel, *sparse, *query, *priv, *costs, *output;
    const char *function, *budget, *optimizer;
    double lambda, eta, nu, epsilon, tolerance, cost_budget;
    int has_lambda, has_eta, has_nu, has_epsilon, has_seed, has_tolerance, has_cost_budget;
    int64_t seed, threads;
    int stop_zero, stop_negative, summary, quiet;
    sel_fn_kind fn;
    sel_opt_kind opt;
} opt_args;

/* The value of a flag: "--flag=v" or the next argument. */
static const char *flag_value(int argc, char **argv, int *i, const char *arg, size_t nlen)
{
    if (arg[nlen] == '=')
        return arg + nlen + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static int parse_dbl_flag(const char *flag, const char *v, double lo, int lo_open, double hi,
                          int hi_open, double *out, int *has)
{
    double d;
    if (cli_parse_double(v, &d) != 0 || d < lo || (lo_open && d == lo) || d > hi ||
        (hi_open && d == hi))
        return cli_usage_error(CMD, "%s '%s': expected a number %s %g%s", flag, v,
                               lo_open ? ">" : ">=", lo,
                               hi < 1e300 ? (hi_open ? " and < 1" : " and <= 1") : "");
    *out = d;
    if (has)
        *has = 1;
    return 0;
}

/* Matches --name or --name=...; returns the name length or 0. */
static size_t flag_is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && (arg[n] == '\0' || arg[n] == '=') ? n : 0;
}

static int parse_value_flag(opt_args *a, const char *arg, const char *v)
{
    static const double BIG = 1e308;
    if (flag_is(arg, "--lambda"))
        return parse_dbl_flag("--lambda", v, 0, 0, BIG, 0, &a->lambda, &a->has_lambda);
    if (flag_is(arg, "--eta"))
        return parse_dbl_flag("--eta", v, 0, 0, BIG, 0, &a->eta, &a->has_eta);
    if (flag_is(arg, "--nu"))
        return parse_dbl_flag("--nu", v, 0, 0, BIG, 0, &a->nu, &a->has_nu);
    if (flag_is(arg, "--epsilon"))
        return parse_dbl_flag("--epsilon", v, 0, 1, 1, 1, &a->epsilon, &a->has_epsilon);
    if (flag_is(arg, "--gain-tolerance"))
        return parse_dbl_flag("--gain-tolerance", v, 0, 0, BIG, 0, &a->tolerance,
                              &a->has_tolerance);
    if (flag_is(arg, "--cost-budget"))
        return parse_dbl_flag("--cost-budget", v, 0, 1, BIG, 0, &a->cost_budget,
                              &a->has_cost_budget);
    if (flag_is(arg, "--seed")) {
        if (cli_parse_i64(v, 0, INT64_MAX, &a->seed) != 0)
            return cli_usage_error(CMD, "--seed '%s': expected an integer 0 <= S < 2^63", v);
        a->has_seed = 1;
        return 0;
    }
    if (flag_is(arg, "--threads")) {
        if (cli_parse_i64(v, 1, 256, &a->threads) != 0)
            return cli_usage_error(CMD, "--threads '%s': expected an integer 1..256", v);
        return 0;
    }
    static const struct { const char *name; size_t off; } paths[] = {
        {"--kernel", offsetof(opt_args, kernel)},   {"--sparse", offsetof(opt_args, sparse)},
        {"--query", offsetof(opt_args, query)},     {"--private", offsetof(opt_args, priv)},
        {"--costs", offsetof(opt_args, costs)},     {"--output", offsetof(opt_args, output)},
        {"--function", offsetof(opt_args, function)}, {"--budget", offsetof(opt_args, budget)},
        {"--optimizer", offsetof(opt_args, optimizer)},
    };
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
        if (!flag_is(arg, paths[k].name))
            continue;
        const char **slot = (const char **)(void *)((char *)a + paths[k].off);
        if (*slot)
            return cli_usage_error(CMD, "%s given twice", paths[k].name);
        if (!*v)
            return cli_usage_error(CMD, "%s: empty value", paths[k].name);
        *slot = v;
        return 0;
    }
    return cli_usage_error(CMD, "unknown option '%s'", arg);
}

static const char *const value_flags[] = {
    "--kernel", "--sparse", "--query", "--private", "--costs", "--output", "--function",
    "--budget", "--optimizer", "--lambda", "--eta", "--nu", "--epsilon", "--seed",
    "--threads", "--gain-tolerance", "--cost-budget"};

/* Returns -1 to go on, else an exit code (0 after --help). */
static int parse_flags(int argc, char **argv, opt_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            optimize_usage(stdout);
            return CLI_EXIT_OK;
        }
        int *bool_slot = !strcmp(arg, "--stop-if-zero-gain")       ? &a->stop_zero
                         : !strcmp(arg, "--stop-if-negative-gain") ? &a->stop_negative
                         : !strcmp(arg, "--summary")               ? &a->summary
                         : !strcmp(arg, "--quiet")                 ? &a->quiet
                                                                   : NULL;
        if (bool_slot) {
            *bool_slot = 1;
            continue;
        }
        const char *name = !strcmp(arg, "-o") ? "--output" : arg;
        size_t nlen = 0;
        for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0] && !nlen; k++)
            nlen = flag_is(arg, value_flags[k]);
        if (!nlen && strcmp(arg, "-o") != 0)
            return cli_usage_error(CMD, arg[0] == '-' ? "unknown option '%s'"
                                                      : "unexpected argument '%s'", arg);
        if (!nlen)
            nlen = 2;
        const char *v = flag_value(argc, argv, &i, arg, nlen);
        if (!v)
            return cli_usage_error(CMD, "%s needs a value", name);
        int rc = parse_value_flag(a, name == arg ? arg : "--output", v);
        if (rc)
            return rc;
    }
    return -1;
}

/* Which kernels and parameters each function reads. */
enum { NEED_S = 1, NEED_Q = 2, NEED_P = 4, USE_LAMBDA = 8, USE_ETA = 16, USE_NU = 32 };
static const unsigned fn_needs[SEL_FN_COUNT] = {
    [SEL_FN_FL] = NEED_S,
    [SEL_FN_FLMI] = NEED_S | NEED_Q | USE_ETA,
    [SEL_FN_FLQMI] = NEED_Q | USE_ETA,
    [SEL_FN_FLCG] = NEED_S | NEED_P | USE_NU,
    [SEL_FN_GC] = NEED_S | USE_LAMBDA,
    [SEL_FN_GCMI] = NEED_Q,
    [SEL_FN_GCCG] = NEED_S | NEED_P | USE_LAMBDA | USE_NU,
};

static int check_kernel_flags(const opt_args *a, unsigned need, const char *fname)
{
    const char *s_flag = a->kernel ? "--kernel" : "--sparse";
    if (a->kernel && a->sparse)
        return cli_usage_error(CMD, "--kernel and --sparse both give S: use one");
    if ((need & NEED_S) && !a->kernel && !a->sparse)
        return cli_usage_error(CMD, "--function %s needs --kernel K.npy (or --sparse K.npz)",
                               fname);
    if (!(need & NEED_S) && (a->kernel || a->sparse))
        return cli_usage_error(CMD, "--function %s does not use %s", fname, s_flag);
    if ((need & NEED_Q) && !a->query)
        return cli_usage_error(CMD, "--function %s needs --query Q.npy", fname);
    if (!(need & NEED_Q) && a->query)
        return cli_usage_error(CMD, "--function %s does not use --query", fname);
    if ((need & NEED_P) && !a->priv)
        return cli_usage_error(CMD, "--function %s needs --private P.npy", fname);
    if (!(need & NEED_P) && a->priv)
        return cli_usage_error(CMD, "--function %s does not use --private", fname);
    return 0;
}

/* Everything that can be checked before opening a file. */
static int check_flags(opt_args *a)
{
    dl_error err;
    dl_error_clear(&err);
    if (!a->function)
        return cli_usage_error(CMD, "--function is required (fl, flmi, flqmi, flcg, gc, gcmi, "
                                    "gccg)");
    if (sel_fn_kind_parse(a->function, &a->fn, &err) != DL_OK)
        return cli_usage_error(CMD, "--function '%s': expected fl, flmi, flqmi, flcg, gc, gcmi "
                                    "or gccg", a->function);
    if (!a->budget)
        return cli_usage_error(CMD, "--budget is required (a count N or a fraction 0.F)");
    a->opt = SEL_OPT_LAZY;
    if (a->optimizer && sel_opt_kind_parse(a->optimizer, &a->opt, &err) != DL_OK)
        return cli_usage_error(CMD, "--optimizer '%s': expected naive, lazy, stochastic or "
                                    "lazier", a->optimizer);
    unsigned need = fn_needs[a->fn];
    int rc = check_kernel_flags(a, need, a->function);
    if (rc)
        return rc;
    const struct { int given; unsigned use; const char *flag; } params[] = {
        {a->has_lambda, USE_LAMBDA, "--lambda"},
        {a->has_eta, USE_ETA, "--eta"},
        {a->has_nu, USE_NU, "--nu"},
    };
    for (size_t k = 0; k < sizeof params / sizeof params[0]; k++)
        if (params[k].given && !(need & params[k].use))
            return cli_usage_error(CMD, "%s is not a parameter of --function %s",
                                   params[k].flag, a->function);
    int sampled = a->opt == SEL_OPT_STOCHASTIC || a->opt == SEL_OPT_LAZIER;
    if (!sampled && (a->has_epsilon || a->has_seed))
        return cli_usage_error(CMD, "%s only applies to --optimizer stochastic or lazier",
                               a->has_epsilon ? "--epsilon" : "--seed");
    if (a->has_tolerance && !a->stop_zero && !a->stop_negative)
        return cli_usage_error(CMD, "--gain-tolerance needs --stop-if-zero-gain or "
                                    "--stop-if-negative-gain");
    if (!a->costs != !a->has_cost_budget)
        return cli_usage_error(CMD, "--costs and --cost-budget go together");
    return 0;
}

/* Fills the budget fields of o from the --budget text. */
static int parse_budget(const char *s, sel_options *o)
{
    if (strchr(s, '.')) {
        double f;
        if (cli_parse_double(s, &f) != 0 || f < 0 || f > 1)
            return cli_usage_error(CMD, "--budget '%s': a fraction must be 0 <= F <= 1", s);
        o->budget_kind = SEL_BUDGET_FRACTION;
        o->budget_fraction = f;
        return 0;
    }
    int64_t n;
    if (cli_parse_i64(s, 0, INT64_MAX, &n) != 0)
        return cli_usage_error(CMD, "--budget '%s': expected a count N >= 0 or a fraction 0.F",
                               s);
    o->budget_kind = SEL_BUDGET_COUNT;
    o->budget = n;
    return 0;
}

/* ---- kernels ----------------------------------------------------------------- */

enum { K_S, K_Q, K_P, K_COUNT };
static const char *const kernel_role[K_COUNT] = {"kernel", "query", "private"};

typedef struct opt_data {
    sel_npy_mat *dense[K_COUNT];
    sel_npz_csr *csr;
    sel_kernel k[K_COUNT];
    const char *path[K_COUNT];
    int have[K_COUNT];
    sel_npy_mat *costs_mat;
    double *costs; /* (n) */
} opt_data;

static void opt_data_free(opt_data *d)
{
    for (int i = 0; i < K_COUNT; i++)
        sel_npy_mat_free(d->dense[i]);
    sel_npz_csr_free(d->csr);
    sel_npy_mat_free(d->costs_mat);
    free(d->costs);
}

/* Reads (maps) one kernel; its values are checked by check_values. */
static dl_status load_kernel(opt_data *d, int which, const char *path, int sparse, dl_error *err)
{
    dl_status s;
    d->path[which] = path;
    if (sparse) {
        if ((s = sel_npz_csr_read(path, &d->csr, err)) != DL_OK)
            return s;
        sel_kernel_csr(&d->k[which], d->csr->rows, d->csr->cols, d->csr->indptr,
                       d->csr->indices, d->csr->index_size == 4 ? SEL_INDEX_I32 : SEL_INDEX_I64,
                       d->csr->values);
    } else {
        if ((s = sel_npy_mat_open(path, 0, &d->dense[which], err)) != DL_OK)
            return s;
        sel_npy_mat *m = d->dense[which];
        sel_kernel_dense(&d->k[which], m->data, m->rows, m->cols, m->stride);
    }
    d->have[which] = 1;
    return DL_OK;
}

/* Scans one loaded kernel's values (after the shapes passed, so an absurd
 * shape never drives a long scan). */
static dl_status check_values(const opt_data *d, int which, dl_error *err)
{
    dl_status s = sel_kernel_check(&d->k[which], kernel_role[which], err);
    if (s) {
        /* NaN/Inf or a broken structure in a file is the file's fault. */
        if (s == DL_ERR_NUMERIC || s == DL_ERR_USAGE)
            err->code = s = DL_ERR_INPUT;
        dl_error_locate(err, d->path[which], 0, NULL);
    }
    return s;
}

static dl_status shape_error(dl_error *err, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static dl_status shape_error(dl_error *err, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_status s = dl_error_vset_at(err, DL_ERR_INPUT, path, 0, 0, -1, NULL, fmt, ap);
    va_end(ap);
    return s;
}

/* Shapes that must agree across files, per function (sel.h, "problems"). */
static dl_status check_shapes(const opt_data *d, sel_fn_kind fn, dl_error *err)
{
    const sel_kernel *S = &d->k[K_S], *Q = &d->k[K_Q], *P = &d->k[K_P];
    for (int i = 0; i < K_COUNT; i++)
        if (d->have[i] && (d->k[i].rows == 0 || d->k[i].cols == 0))
            return shape_error(err, d->path[i], "empty %s (%" PRId64 " x %" PRId64 ")",
                               kernel_role[i], d->k[i].rows, d->k[i].cols);
    if ((fn == SEL_FN_GC || fn == SEL_FN_GCCG) && S->rows != S->cols)
        return shape_error(err, d->path[K_S], "%s needs a square kernel, this one is %" PRId64
                           " x %" PRId64, sel_fn_kind_name(fn), S->rows, S->cols);
    if (d->have[K_S] && d->have[K_Q] && Q->rows != S->rows)
        return shape_error(err, d->path[K_Q], "%" PRId64 " rows, but the kernel %s has %" PRId64
                           " (rows are the same targets)", Q->rows, d->path[K_S], S->rows);
    if (d->have[K_S] && d->have[K_P] && P->rows != S->rows)
        return shape_error(err, d->path[K_P], "%" PRId64 " rows, but the kernel %s has %" PRId64
                           " (rows are the same targets)", P->rows, d->path[K_S], S->rows);
    return DL_OK;
}

static dl_status load_costs(opt_data *d, const char *path, int64_t n, dl_error *err)
{
    dl_status s = sel_npy_mat_open(path, SEL_NPY_ALLOW_1D, &d->costs_mat, err);
    if (s)
        return s;
    const sel_npy_mat *m = d->costs_mat;
    if (m->cols != 1 || m->rows != n)
        return shape_error(err, path, "%" PRId64 " x %" PRId64 " costs: expected %" PRId64
                           " values, one per candidate", m->rows, m->cols, n);
    if (!(d->costs = malloc((size_t)(n ? n : 1) * sizeof *d->costs)))
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < n; j++) {
        d->costs[j] = m->data[j * m->stride];
        if (!(d->costs[j] > 0) || d->costs[j] > 1e308)
            return shape_error(err, path, "cost[%" PRId64 "] = %g: costs must be finite and > 0",
                               j, d->costs[j]);
    }
    return DL_OK;
}

static dl_status load_all(opt_data *d, const opt_args *a, dl_error *err)
{
    dl_status s = DL_OK;
    if (a->kernel || a->sparse)
        s = load_kernel(d, K_S, a->kernel ? a->kernel : a->sparse, a->sparse != NULL, err);
    if (!s && a->query)
        s = load_kernel(d, K_Q, a->query, 0, err);
    if (!s && a->priv)
        s = load_kernel(d, K_P, a->priv, 0, err);
    if (!s)
        s = check_shapes(d, a->fn, err);
    for (int i = 0; i < K_COUNT && !s; i++)
        if (d->have[i])
            s = check_values(d, i, err);
    return s;
}

/* ---- output -------------------------------------------------------------------- */

/* The shortest "%.Ng" that reads back as v (round-trip digits are monotone
 * in N, so a binary search finds it). */
static void fmt_double(char *buf, size_t n, double v)
{
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(buf, n, "%.*g", mid, v);
        if (strtod(buf, NULL) == v)
            hi = mid;
        else
            lo = mid + 1;
    }
    snprintf(buf, n, "%.*g", lo, v);
}

/* A growable text buffer for -o (written atomically at the end). */
typedef struct opt_out {
    FILE *stream; /* stdout, or NULL when buffering for a file */
    char *buf;
    size_t len, cap;
    int nomem;
} opt_out;

static void out_printf(opt_out *o, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void out_printf(opt_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (o->stream) {
        vfprintf(o->stream, fmt, ap);
    } else if (!o->nomem) {
        char line[512];
        int w = vsnprintf(line, sizeof line, fmt, ap);
        size_t need = w > 0 ? (size_t)w : 0;
        if (o->len + need + 1 > o->cap) {
            size_t cap = (o->cap ? o->cap * 2 : 4096) + need;
            char *nb = realloc(o->buf, cap);
            if (!nb)
                o->nomem = 1;
            else {
                o->buf = nb;
                o->cap = cap;
            }
        }
        if (!o->nomem) {
            memcpy(o->buf + o->len, line, need < sizeof line ? need : sizeof line - 1);
            o->len += need < sizeof line ? need : sizeof line - 1;
        }
    }
    va_end(ap);
}

static const char *stop_name(sel_stop_reason r)
{
    switch (r) {
    case SEL_STOP_BUDGET: return "budget";
    case SEL_STOP_ZERO_GAIN: return "zero_gain";
    case SEL_STOP_NEGATIVE_GAIN: return "negative_gain";
    case SEL_STOP_COST: return "cost";
    }
    return "?";
}

static void print_result(opt_out *o, const opt_args *a, const sel_result *r, int64_t n,
                         double seconds)
{
    char g[40];
    for (int64_t k = 0; k < r->count; k++) {
        fmt_double(g, sizeof g, r->gains[k]);
        out_printf(o, "{\"rank\":%" PRId64 ",\"index\":%" PRId64 ",\"gain\":%s}\n", k,
                   r->indices[k], g);
    }
    fmt_double(g, sizeof g, r->value);
    if (a->summary)
        out_printf(o, "{\"summary\":{\"function\":\"%s\",\"optimizer\":\"%s\",\"n\":%" PRId64
                   ",\"count\":%" PRId64 ",\"value\":%s,\"stop\":\"%s\",\"evaluations\":%"
                   PRId64 ",\"seconds\":%.6f}}\n", sel_fn_kind_name(a->fn),
                   sel_opt_kind_name(a->opt), n, r->count, g, stop_name(r->stop),
                   r->evaluations, seconds);
    if (!a->quiet)
        fprintf(stderr, "delift optimize: %s, %s: picked %" PRId64 " of %" PRId64
                ", f(A) = %s, stop: %s, %" PRId64 " gain evaluations, %.3f s\n",
                sel_fn_kind_name(a->fn), sel_opt_kind_name(a->opt), r->count, n, g,
                stop_name(r->stop), r->evaluations, seconds);
}

/* Sends the buffered lines to -o FILE atomically, or flushes stdout. */
static int finish_output(opt_out *o, const char *path)
{
    dl_error err;
    dl_error_clear(&err);
    if (o->stream) {
        if (fflush(o->stream) != 0 || ferror(o->stream)) {
            fprintf(stderr, "delift: error: writing the output failed\n");
            return CLI_EXIT_RUNTIME;
        }
        return CLI_EXIT_OK;
    }
    if (o->nomem) {
        dl_error_set(&err, DL_ERR_NOMEM, "out of memory buffering the output");
        return cli_report(&err);
    }
    dl_file_atomic at;
    if (dl_file_atomic_begin(&at, path, &err) != DL_OK)
        return cli_report(&err);
    if (dl_file_atomic_write(&at, o->buf ? o->buf : "", o->len, &err) != DL_OK) {
        dl_file_atomic_abort(&at);
        return cli_report(&err);
    }
    if (dl_file_atomic_commit(&at, &err) != DL_OK)
        return cli_report(&err);
    return CLI_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------------ */

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill_options(const opt_args *a, const opt_data *d, sel_options *o)
{
    o->optimizer = a->opt;
    o->stop_if_zero_gain = a->stop_zero;
    o->stop_if_negative_gain = a->stop_negative;
    o->gain_tolerance = a->tolerance;
    if (a->has_epsilon)
        o->epsilon = a->epsilon;
    o->seed = (uint64_t)a->seed;
    o->threads = (int)a->threads;
    o->costs = d->costs;
    o->cost_budget = a->cost_budget;
    o->cancel = &cancel_flag;
}

/* Loads, solves and prints; returns the exit code. */
static int run(const opt_args *a, opt_data *d, sel_options *o)
{
    dl_error err;
    dl_error_clear(&err);
    if (load_all(d, a, &err) != DL_OK)
        return cli_report(&err);
    sel_problem p;
    sel_problem_init(&p);
    p.fn = a->fn;
    p.kernel = d->have[K_S] ? &d->k[K_S] : NULL;
    p.query = d->have[K_Q] ? &d->k[K_Q] : NULL;
    p.priv = d->have[K_P] ? &d->k[K_P] : NULL;
    if (a->has_lambda)
        p.lambda = a->lambda;
    if (a->has_eta)
        p.eta = a->eta;
    if (a->has_nu)
        p.nu = a->nu;
    int64_t n = sel_problem_size(&p), count;
    if (a->costs && load_costs(d, a->costs, n, &err) != DL_OK)
        return cli_report(&err);
    fill_options(a, d, o);
    if (sel_options_budget(o, n, &count, &err) != DL_OK)
        return cli_usage_error(CMD, "--budget %s: %s (n = %" PRId64 ")", a->budget, err.message,
                               n);
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sel_result r;
    sel_result_init(&r);
    double t0 = now_seconds();
    dl_status s = sel_maximize(&p, o, &r, &err);
    double secs = now_seconds() - t0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (s) {
        sel_result_free(&r);
        return s == DL_ERR_USAGE ? cli_usage_error(CMD, "%s", err.message) : cli_report(&err);
    }
    opt_out out = {a->output ? NULL : stdout, NULL, 0, 0, 0};
    print_result(&out, a, &r, n, secs);
    sel_result_free(&r);
    int rc = finish_output(&out, a->output);
    free(out.buf);
    return rc;
}

int cli_optimize_main(int argc, char **argv)
{
    opt_args a;
    memset(&a, 0, sizeof a);
    a.threads = 1;
    int rc = parse_flags(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if ((rc = check_flags(&a)) != 0)
        return rc;
    sel_options o;
    sel_options_init(&o);
    if ((rc = parse_budget(a.budget, &o)) != 0)
        return rc;
    opt_data d;
    memset(&d, 0, sizeof d);
    rc = run(&a, &d, &o);
    opt_data_free(&d);
    return rc;
}
