/* srv_metrics.h: request counters and the latency histogram of
 * delift-server, written out in the Prometheus text format (0.0.4).
 *
 * Requests are counted by route and by status; the status set is the fixed
 * list the server can answer (anything else counts as "other").  Latency is
 * one histogram over all routes (seconds, cumulative buckets).
 *
 * Thread-safety: srv_metrics_observe and srv_metrics_write may be called
 * from any thread (one mutex, held for a few additions).
 */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "srv_route.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct srv_metrics srv_metrics;

/* Owned (srv_metrics_free); NULL only on OOM. */
srv_metrics *srv_metrics_new(void);
void srv_metrics_free(srv_metrics *m); /* NULL is a no-op */

/* Counts one finished request. */
void srv_metrics_observe(srv_metrics *m, srv_route_id route, unsigned status, double seconds);

/* Counts work units of a running job (pairs scored), for the total. */
void srv_metrics_add_pairs(srv_metrics *m, int64_t n);

/* The gauges the caller owns (job states, queue depth) are passed in. */
typedef struct srv_metrics_gauges {
    int64_t jobs_queued, jobs_running, jobs_succeeded, jobs_failed, jobs_cancelled;
    int64_t queue_depth;
    int64_t datasets;
} srv_metrics_gauges;

/* Writes the whole exposition to out; returns 0, or -1 on a write error. */
int srv_metrics_write(srv_metrics *m, const srv_metrics_gauges *g, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* SRV_METRICS_H */
