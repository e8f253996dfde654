/* srv_exec.h: the executor interface between delift-server's job runner and
 * the code that actually performs a selection.
 *
 * The runner (srv_jobs.h) owns queueing, state, durability and results; an
 * executor only turns one job into three output files.  The real executor
 * runs the selection pipeline, the code of `delift select`
 * (srv_exec_select.h); a server started with no executor refuses selection
 * jobs with 501.  Tests register their own executor (tests/srv_testd.c) to
 * exercise the runner.
 *
 * Contract of run():
 *   - called on a worker thread; several jobs may run at once, so run()
 *     must be reentrant (self is shared and must not be mutated unlocked);
 *   - reads the inputs named in *job (all borrowed for the call);
 *   - writes SRV_OUT_RANKING, SRV_OUT_RECORDS and SRV_OUT_MANIFEST into
 *     job->output_dir (a fresh, empty directory; the runner fsyncs and
 *     publishes it only when run() returns DL_OK);
 *   - may keep resumable state in job->checkpoint_dir: the directory
 *     survives restarts, so a job interrupted by kill -9 or SIGTERM and
 *     run again with the same spec can resume from it; the runner deletes
 *     it only when the job reaches a final state;
 *   - polls *job->cancel often (at least every second of work) and, once it
 *     is nonzero, stops and returns DL_ERR_CANCELLED (leaving its
 *     checkpoint consistent);
 *   - reports progress through job->progress (phase name, units done, units
 *     total; phase "pairs" counts towards delift_pairs_scored_total);
 *   - returns DL_OK, or a status with err filled: the error (message, line,
 *     field, never a server path) becomes the failed job's "error".
 *
 * Output files:
 *   ranking.json    {"selected": [{"id", "rank", "gain"}, ...], ...}
 *   selected.jsonl  the selected records, as they were in the pool, in rank order
 *   manifest.json   inputs and their hashes, model, parameters, version, timings
 */
#ifndef SRV_EXEC_H
#define SRV_EXEC_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SRV_OUT_RANKING "ranking.json"
#define SRV_OUT_RECORDS "selected.jsonl"
#define SRV_OUT_MANIFEST "manifest.json"

typedef void (*srv_progress_fn)(void *ctx, const char *phase, int64_t done, int64_t total);

/* One job as the executor sees it.  Every pointer is borrowed for the call. */
typedef struct srv_job_run {
    const char *job_id;
    const json_t *spec;         /* the normalised spec (srv_spec.h) */
    const char *model_path;     /* the file behind spec.model */
    const char *pool_path;      /* dataset files (JSONL or JSON array) */
    const char *target_path;    /* NULL unless stage task */
    const char *existing_path;  /* NULL unless stage continual */
    const char *checkpoint_dir; /* survives restarts */
    const char *output_dir;     /* fresh and empty */
    const atomic_int *cancel;   /* nonzero: stop, return DL_ERR_CANCELLED */
    srv_progress_fn progress;
    void *progress_ctx;
} srv_job_run;

typedef struct srv_executor {
    const char *name; /* for logs and /readyz ("test", "delift-select") */
    void *self;       /* executor state, borrowed by the runner */
    dl_status (*run)(void *self, const srv_job_run *job, dl_error *err);
    /* Optional (NULL: none): checks a normalised spec before the job is
     * accepted, so that what can be known without running (options, their
     * types and ranges, templates) is a 400 at POST instead of a failed job.
     * Same error rules as run(); reentrant; must not touch the inputs. */
    dl_status (*check)(void *self, const json_t *spec, dl_error *err);
} srv_executor;

#ifdef __cplusplus
}
#endif

#endif /* SRV_EXEC_H */
