/* ds.h: the DELIFT selection pipeline, one code path for `delift select`,
 * `delift score` and delift-server's jobs (docs/pipeline.md).
 *
 *   load   the pool (and the target or existing set) with rec.h
 *   model  load the GGUF, open the score cache, build the scorer (ut.h)
 *   pairs  all pairs, or knn:K pairs from pooled embeddings (knn.h)
 *   score  d_noICL and d_ICL (cached, resumable), kernels U min-max scaled
 *   select the stage's submodular function, greedily (sel.h)
 *   write  subset JSONL, ranking JSONL, manifest JSON, kernels .npy/.npz;
 *          each file written atomically (dl_file.h): all or nothing
 *
 * Stages (spec/DELIFT.md §3): instruction (S = U(pool, pool), fl), task
 * (S and Q[i][q] = U(target q, example pool i), flmi), continual (S and
 * P[i][p] = U(pool i, example existing p), flcg).
 *
 * Errors: everything from rec.h, lm_*.h, ut.h, sel.h, with the file named;
 * DL_ERR_USAGE for inconsistent parameters (err->field names the flag, as
 * "budget", "target"); DL_ERR_CANCELLED when *cancel became nonzero (the
 * cache keeps every finished block: the same call resumes).
 *
 * Thread-safety: ds_run is reentrant; concurrent runs may share a cache
 * file.
 */
#ifndef DL_DS_H
#define DL_DS_H

#include <stdatomic.h>
#include <stdint.h>

#include "dl_error.h"
#include "rec.h"
#include "ut.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ds_stage {
    DS_STAGE_INSTRUCTION = 0,
    DS_STAGE_TASK = 1,
    DS_STAGE_CONTINUAL = 2
} ds_stage;

dl_status ds_stage_parse(const char *name, ds_stage *out, dl_error *err);
const char *ds_stage_name(ds_stage s); /* "instruction", "task", "continual" */
const char *ds_stage_default_fn(ds_stage s); /* "fl", "flmi", "flcg" */

/* Pairs mode: DS_PAIRS_AUTO chooses all pairs for pools of at most
 * DS_AUTO_DENSE_MAX records and knn:DS_AUTO_K above (the manifest says which). */
enum { DS_PAIRS_AUTO = -1, DS_PAIRS_ALL = 0 };
#define DS_AUTO_DENSE_MAX 1000
#define DS_AUTO_K 32
/* "auto", "all" or "knn:K" (1 <= K <= 4096) into *k (DS_PAIRS_* or K). */
dl_status ds_pairs_parse(const char *s, int64_t *k, dl_error *err);

typedef void (*ds_progress_fn)(void *ctx, const char *phase, int64_t done, int64_t total);

/* Everything a run needs.  Strings are borrowed for the call.  Zero or NULL
 * fields take the defaults (ds_params_init). */
typedef struct ds_params {
    /* inputs */
    const char *model_path;    /* required */
    const char *pool_path;     /* required */
    const char *target_path;   /* stage task */
    const char *existing_path; /* stage continual */
    rec_reader_opts rec_opts;  /* field map, skip_invalid, limits */
    /* method */
    ds_stage stage;
    const char *function;  /* NULL: the stage's default */
    const char *optimizer; /* NULL: "lazy" */
    double budget;         /* >= 1: a count; in (0, 1): a fraction (floor, at least 1) */
    double eta, nu, lambda, epsilon; /* as sel.h (defaults 1, 1, 0.4, 0.01) */
    uint64_t seed;
    int stop_at_zero;      /* stop when the best gain is <= 0 */
    int64_t pairs;         /* DS_PAIRS_AUTO, DS_PAIRS_ALL or K */
    ut_config ut;
    /* engine */
    const char *backend;   /* NULL: default */
    int64_t threads;       /* 0: all online CPUs */
    int fast;              /* 1: the engine's fast mode (lm_ctx_params.q8_act) */
    const char *cache_path;/* NULL: no cache (no resume) */
    /* outputs (NULL: not written) */
    const char *out_subset;   /* the selected records as they were, in greedy order */
    const char *out_ranking;  /* JSONL: {"rank","id","index","gain"} per selected record */
    const char *out_manifest; /* JSON */
    const char *out_kernel_dir; /* kernels: S.npy|S.npz, Q.*, P.*, d_noicl.npy */
    int skip_select;          /* `delift score`: stop after the kernels */
    /* hooks */
    ds_progress_fn progress;
    void *progress_ctx;
    const atomic_int *cancel;
    const char *version_extra; /* free text recorded in the manifest (e.g. "server") */
    int manifest_hide_paths;   /* record file names without their directories */
} ds_params;

void ds_params_init(ds_params *p);

/* What a run did, for the CLI's summary line and the server's metrics. */
typedef struct ds_summary {
    int64_t n_pool, n_target, n_existing;
    int64_t n_selected;
    int64_t knn_k;          /* 0: all pairs */
    int64_t pairs_total, pairs_cached, pairs_scored, unscorable;
    double seconds_total, seconds_score, seconds_select;
} ds_summary;

/* Runs the pipeline.  *summary may be NULL. */
dl_status ds_run(const ds_params *p, ds_summary *summary, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DL_DS_H */
