/* srv_jobs.h: selection jobs of delift-server: durable state, a bounded
 * queue and a worker pool around an executor (srv_exec.h).
 *
 * State lives in SQLite at <data-dir>/jobs.db (WAL, synchronous=FULL), one
 * row per job; outputs under <data-dir>/jobs/<id>/:
 *   checkpoint/   the executor's resumable state (kept across restarts)
 *   out.tmp/      outputs being written by a running job
 *   out/          published outputs (renamed from out.tmp after fsync)
 * Life of a job: queued -> running -> succeeded | failed | cancelled
 * (queued -> cancelled directly).  A row is written (committed, fsynced)
 * before 202 is answered, so an accepted job survives a crash.  At open,
 * jobs found "running" (the process died under them) go back to the queue,
 * in their original order, and resume through their checkpoint directory.
 * SIGTERM (srv_jobs_drain) interrupts running jobs the same way: they are
 * stored as queued again and resume at the next start.
 *
 * Idempotency: a job created with an Idempotency-Key remembers it with the
 * hash of its normalised spec; the same key with the same spec returns the
 * first job, with another spec is refused (422).  Keys are global to the
 * server (all API keys are one tenant).
 *
 * Errors come as dl_status plus the HTTP status to answer (*http), since
 * some outcomes (429 queue full, 422 key reuse, 409 wrong state) have no
 * dl_status of their own.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef SRV_JOBS_H
#define SRV_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "srv_exec.h"
#include "srv_metrics.h"
#include "srv_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Resolves a model name of a spec to its file (borrowed for the call);
 * NULL when unknown. */
typedef const char *(*srv_model_path_fn)(void *ctx, const char *name);

typedef struct srv_jobs_config {
    const char *data_dir;
    int workers;                /* >= 1 */
    int64_t queue_max;          /* queued jobs beyond which create answers 429 */
    const srv_executor *exec;   /* borrowed; NULL: no worker runs */
    srv_store *store;           /* borrowed: dataset ids -> files */
    srv_metrics *metrics;       /* borrowed, may be NULL */
    srv_model_path_fn model_path;
    void *model_ctx;
} srv_jobs_config;

typedef struct srv_jobs srv_jobs;

/* Opens the database (creating it), re-queues interrupted jobs and starts
 * the workers.  *out is owned (srv_jobs_free). */
dl_status srv_jobs_open(const srv_jobs_config *cfg, srv_jobs **out, dl_error *err);

/* Stops taking jobs, interrupts running ones (stored as queued again) and
 * joins the workers.  Idempotent. */
void srv_jobs_drain(srv_jobs *j);

/* Drains and frees.  NULL is a no-op. */
void srv_jobs_free(srv_jobs *j);

/* Creates a job from a normalised spec (srv_spec_validate).  idem_key may be
 * NULL.  The datasets it names must exist (404 otherwise).  On DL_OK *job is
 * the job's state (owned) and *http is 202, with *replayed 1 when an
 * earlier job with the same key and spec was returned.  Failures: 404
 * unknown dataset, 422 key reused with another spec, 429 queue full. */
dl_status srv_jobs_create(srv_jobs *j, const json_t *spec, const char *idem_key, json_t **job,
                          int *replayed, unsigned *http, dl_error *err);

/* State of job id (owned JSON), DL_ERR_NOT_FOUND when unknown. */
dl_status srv_jobs_get(srv_jobs *j, const char *id, json_t **job, dl_error *err);

/* The most recent jobs, newest first, at most limit (owned JSON array). */
dl_status srv_jobs_list(srv_jobs *j, int64_t limit, json_t **list, dl_error *err);

/* Cancels job id: a queued job becomes cancelled at once (*http 200), a
 * running one is asked to stop (*http 202, state still running with
 * "cancel_requested": true).  A finished job: 409.  *job is the new state. */
dl_status srv_jobs_cancel(srv_jobs *j, const char *id, json_t **job, unsigned *http,
                          dl_error *err);

/* Path of output file name (SRV_OUT_*) of a succeeded job into buf.
 * 404 unknown job, 409 not (yet) succeeded. */
dl_status srv_jobs_output(srv_jobs *j, const char *id, const char *name, char *buf, size_t n,
                          unsigned *http, dl_error *err);

/* Number of queued or running jobs that use dataset id (pool, target or
 * existing).  Call under srv_store_lock to act on the answer. */
int64_t srv_jobs_dataset_users(srv_jobs *j, const char *id);

/* Fills the job gauges of g. */
void srv_jobs_gauges(srv_jobs *j, srv_metrics_gauges *g);

/* DL_OK when the database answers. */
dl_status srv_jobs_check(srv_jobs *j, dl_error *err);

/* Nonzero when an executor is registered (jobs can run). */
int srv_jobs_can_run(const srv_jobs *j);

#ifdef __cplusplus
}
#endif

#endif /* SRV_JOBS_H */
