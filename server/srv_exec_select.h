/* srv_exec_select.h: the executor that runs a real DELIFT selection
 * (ds_run, src/ds.h) for delift-server's jobs (srv_exec.h).
 *
 * A job spec (srv_spec.h, normalised) maps onto ds_params member by member:
 *   model, pool, target, existing   the files the runner resolved
 *   stage, budget, function, pairs  ds_stage_parse, as is, as is, ds_pairs_parse
 *   options                         optimizer (string), eta, nu, lambda,
 *                                   epsilon (numbers), seed (integer >= 0),
 *                                   stop_at_zero (boolean), bos (boolean:
 *                                   ut.add_bos), threads (integer 0..4096,
 *                                   0: all CPUs), backend (string),
 *                                   template_noicl, template_icl (strings)
 * Any other option name, or a value of the wrong type, is DL_ERR_USAGE with
 * err->field "options.NAME".
 *
 * Scores live in ONE cache file shared by every job (given at creation):
 * it is also the checkpoint, so a job interrupted by kill -9 or a drain and
 * run again finds every committed block and scores only the rest, and a
 * second job over the same records reuses the first one's scores.
 *
 * Outputs (job->output_dir): selected.jsonl (written by ds_run), ranking.json
 * ({"selected":[{"rank","id","index","gain"},...],"n","k"}, converted from
 * the ranking JSONL ds_run writes into the checkpoint directory) and
 * manifest.json (ds_run's manifest with every server path replaced by the
 * dataset id, model name or output name it stands for, plus "executor",
 * "job" and "spec").  All three are written atomically.
 *
 * Errors: whatever ds_run reports, with server paths scrubbed from the
 * message (replaced by "pool", "target", "existing", "model", ...), the
 * file name dropped, the role prefixed to the message when the file was
 * one of the inputs, and pipeline field names ("eta", "template.icl")
 * translated to spec members ("options.eta", "options.template_icl").
 *
 * Thread-safety: an srv_select_exec is immutable after srv_select_exec_new;
 * its run() is reentrant (ds_run is, and jobs share the cache through
 * SQLite's locking).
 */
#ifndef SRV_EXEC_SELECT_H
#define SRV_EXEC_SELECT_H

#include <jansson.h>
#include <stdint.h>

#include "dl_error.h"
#include "ds.h"
#include "srv_exec.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SRV_SELECT_EXEC_NAME "delift-select"

typedef struct srv_select_config {
    const char *cache_path;   /* the shared score cache; NULL: none (no resume, no reuse) */
    const char *private_root; /* a directory (the data dir) whose paths never reach a
                                 client: any left in a message become "<data>"; may be NULL */
    int64_t threads;          /* threads of a job without options.threads (0: every CPU);
                                 with several workers, a share of the CPUs */
} srv_select_config;

typedef struct srv_select_exec srv_select_exec;

/* Copies cfg's strings; opens nothing (the cache is opened per job by
 * ds_run).  DL_ERR_NOMEM only.  *out owned: srv_select_exec_free. */
dl_status srv_select_exec_new(const srv_select_config *cfg, srv_select_exec **out, dl_error *err);
void srv_select_exec_free(srv_select_exec *x); /* NULL is a no-op */

/* The executor to hand to srv_app_main (borrowed: valid while x lives). */
const srv_executor *srv_select_exec_executor(const srv_select_exec *x);

/* ---- the pieces of run(), exported for tests ----------------------------- */

/* Fills the method members of *p (stage, budget, function, pairs and the
 * options) from a normalised spec (borrowed; p's strings point into it, so
 * it must outlive p).  p must have been ds_params_init'ed; paths, hooks and
 * outputs are left alone. */
dl_status srv_select_params_from_spec(const json_t *spec, ds_params *p, dl_error *err);

/* Converts ds_run's ranking JSONL at jsonl_path into the ranking.json object
 * at json_path (written atomically), with "n" = n_pool.  DL_ERR_INTERNAL when
 * a line is not a ranking entry (a pipeline bug, not client input). */
dl_status srv_select_ranking_convert(const char *jsonl_path, int64_t n_pool,
                                     const char *json_path, dl_error *err);

/* One server path and what a client may see instead. */
typedef struct srv_select_alias {
    const char *path;  /* NULL or "": ignored */
    const char *label; /* "pool", a dataset id, a model name */
} srv_select_alias;

/* A new string (owned: free) equal to s with every occurrence of each
 * alias path replaced by its label (longest paths first), then of
 * private_root (may be NULL) by "<data>".  NULL when out of memory. */
char *srv_select_scrub(const char *s, const srv_select_alias *aliases, size_t n_aliases,
                       const char *private_root);

#ifdef __cplusplus
}
#endif

#endif /* SRV_EXEC_SELECT_H */
