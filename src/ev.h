/* ev.h: how well a subset serves as a pool of in-context examples
 * (`delift eval`, issue 5 item 7, docs/quality.md).
 *
 * For each held-out record h the example e(h) is the subset record whose
 * pooled embedding (ut_embed) has the largest cosine similarity with h's
 * (knn_search, k = 1; ties go to the smaller subset index).  h's response
 * is then scored twice with the DELIFT utility's templates (ut.h):
 *     d_icl(h)   = d_ICL(h, e(h))      ll_icl(h)   its mean log-likelihood
 *     d_noicl(h) = d_noICL(h)          ll_noicl(h) its mean log-likelihood
 * d is the RMS of (1 - p) over the response tokens and the final EOS
 * (lower is better); ll is the mean natural-log probability of those tokens
 * (higher is better).  h is "helped" when d_icl(h) < d_noicl(h).
 *
 * The summary averages over the held-out records whose four numbers are all
 * finite (a response that does not fit the context is NaN in ut.h and is
 * counted in n_unscorable instead); std is the population standard
 * deviation (divide by n).
 *
 * Thread-safety: ev_run is reentrant (each call loads its own model and
 * context, whose threads it uses).  Nothing is cached: eval is a
 * measurement, every pair is computed.
 */
#ifndef DL_EV_H
#define DL_EV_H

#include <stdatomic.h>
#include <stdint.h>

#include "dl_error.h"
#include "rec.h"
#include "ut.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*ev_progress_fn)(void *ctx, const char *phase, int64_t done, int64_t total);

/* Everything one evaluation needs.  Strings are borrowed for the call. */
typedef struct ev_params {
    const char *model_path;   /* required */
    const char *subset_path;  /* required: the examples */
    const char *heldout_path; /* required: the records to answer */
    rec_reader_opts rec_opts; /* both files are read with these */
    ut_config ut;             /* templates, BOS */
    const char *backend;      /* NULL: the engine's default */
    int64_t threads;          /* 0: all online CPUs */
    int fast;                 /* 1: the engine's fast mode (lm_ctx_params.q8_act) */
    ev_progress_fn progress;  /* phases "load", "model", "embed", "noicl", "pairs"; may be NULL */
    void *progress_ctx;
    const atomic_int *cancel; /* may be NULL; nonzero: DL_ERR_CANCELLED */
} ev_params;

/* Defaults: no paths, auto-detected record shape, default templates, no BOS. */
void ev_params_init(ev_params *p);

/* One held-out record's result. */
typedef struct ev_record {
    char *heldout_id;      /* owned (rec.h identity) */
    char *example_id;      /* owned */
    int64_t heldout_index; /* 0-based in the held-out file */
    int64_t example_index; /* 0-based in the subset file */
    double similarity;     /* cosine of the two embeddings */
    double d_icl, d_noicl; /* NaN: unscorable */
    double ll_icl, ll_noicl;
} ev_record;

/* Mean and population standard deviation over n values. */
typedef struct ev_stat {
    double mean, std;
} ev_stat;

typedef struct ev_summary {
    int64_t n_subset, n_heldout;
    int64_t n_scored;     /* held-out records with all four numbers finite */
    int64_t n_unscorable; /* n_heldout - n_scored */
    int64_t n_helped;     /* among n_scored: d_icl < d_noicl */
    double frac_helped;   /* n_helped / n_scored (NaN when n_scored is 0) */
    ev_stat d_icl, d_noicl;
    ev_stat d_diff;       /* d_icl - d_noicl: negative means the example helps */
    ev_stat ll_icl, ll_noicl;
    ev_stat ll_diff;      /* ll_icl - ll_noicl: positive means the example helps */
    double seconds;       /* wall time of the whole run */
} ev_summary;

typedef struct ev_report {
    ev_summary sum;
    ev_record *records; /* owned, sum.n_heldout of them, in held-out order */
    char model_sha256[65];
} ev_report;

/* ---- functions ----------------------------------------------------------------- */

/* Summarises n records (pure: no I/O).  Records with a non-finite number are
 * counted as unscorable; n_subset and seconds are left at 0. */
void ev_summarize(const ev_record *recs, int64_t n, ev_summary *out);

/* Runs the evaluation.  On success *out is owned (ev_report_free).
 * Errors: rec.h's for either file (an empty file or one with no usable
 * record is DL_ERR_INPUT naming it, err->field "subset" or "heldout");
 * lm_model_load's and lm_ctx_new's (DL_ERR_USAGE for an unknown backend);
 * ut.h's (DL_ERR_USAGE for bad templates, err->field "template.*");
 * DL_ERR_CANCELLED; DL_ERR_NOMEM. */
dl_status ev_run(const ev_params *p, ev_report **out, dl_error *err);

/* NULL is a no-op. */
void ev_report_free(ev_report *r);

#ifdef __cplusplus
}
#endif

#endif /* DL_EV_H */
