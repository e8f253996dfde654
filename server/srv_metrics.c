/* srv_metrics.c: Prometheus counters (see srv_metrics.h). */
#include "config.h"

#include "srv_metrics.h"

#include <pthread.h>
#include <stdlib.h>

/* Statuses the server answers; index N_STATUS is "other". */
static const unsigned statuses[] = {200, 201, 202, 204, 304, 400, 401, 403, 404, 405,
                                    409, 413, 415, 422, 429, 500, 501, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])

/* Upper bounds of the latency buckets, seconds; +Inf is implicit. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define N_BUCKET (sizeof buckets / sizeof buckets[0])

struct srv_metrics {
    pthread_mutex_t lock;
    uint64_t requests[SRV_ROUTE_COUNT + 1][N_STATUS + 1];
    uint64_t hist[N_BUCKET + 1]; /* per bucket, not cumulative; last = +Inf */
    double sum_seconds;
    uint64_t count;
    int64_t pairs;
};

srv_metrics *srv_metrics_new(void)
{
    srv_metrics *m = calloc(1, sizeof *m);
    if (m && pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void srv_metrics_free(srv_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void srv_metrics_observe(srv_metrics *m, srv_route_id route, unsigned status, double seconds)
{
    size_t s = N_STATUS, b = N_BUCKET;
    for (size_t i = 0; i < N_STATUS; i++)
        if (statuses[i] == status)
            s = i;
    for (size_t i = N_BUCKET; i-- > 0;)
        if (seconds <= buckets[i])
            b = i;
    if (route > SRV_ROUTE_COUNT)
        route = SRV_ROUTE_NONE;
    pthread_mutex_lock(&m->lock);
    m->requests[route][s]++;
    m->hist[b]++;
    m->sum_seconds += seconds;
    m->count++;
    pthread_mutex_unlock(&m->lock);
}

void srv_metrics_add_pairs(srv_metrics *m, int64_t n)
{
    pthread_mutex_lock(&m->lock);
    m->pairs += n;
    pthread_mutex_unlock(&m->lock);
}

static void write_requests(const srv_metrics *m, FILE *out)
{
    fprintf(out, "# HELP delift_http_requests_total HTTP requests answered, by route and status.\n"
                 "# TYPE delift_http_requests_total counter\n");
    for (int r = 0; r <= SRV_ROUTE_COUNT; r++)
        for (size_t s = 0; s <= N_STATUS; s++) {
            if (!m->requests[r][s])
                continue;
            char code[16];
            if (s < N_STATUS)
                snprintf(code, sizeof code, "%u", statuses[s]);
            else
                snprintf(code, sizeof code, "other");
            fprintf(out,
                    "delift_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
                    r < SRV_ROUTE_COUNT ? srv_route_method((srv_route_id)r) : "",
                    srv_route_pattern((srv_route_id)r), code,
                    (unsigned long long)m->requests[r][s]);
        }
}

static void write_histogram(const srv_metrics *m, FILE *out)
{
    fprintf(out, "# HELP delift_http_request_duration_seconds Time from the request line to "
                 "the end of the response.\n"
                 "# TYPE delift_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKET; i++) {
        cum += m->hist[i];
        fprintf(out, "delift_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
                (unsigned long long)cum);
    }
    cum += m->hist[N_BUCKET];
    fprintf(out,
            "delift_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
            "delift_http_request_duration_seconds_sum %.6f\n"
            "delift_http_request_duration_seconds_count %llu\n",
            (unsigned long long)cum, m->sum_seconds, (unsigned long long)m->count);
}

int srv_metrics_write(srv_metrics *m, const srv_metrics_gauges *g, FILE *out)
{
    pthread_mutex_lock(&m->lock);
    write_requests(m, out);
    write_histogram(m, out);
    int64_t pairs = m->pairs;
    pthread_mutex_unlock(&m->lock);
    fprintf(out,
            "# HELP delift_jobs Selection jobs by state.\n"
            "# TYPE delift_jobs gauge\n"
            "delift_jobs{state=\"queued\"} %lld\n"
            "delift_jobs{state=\"running\"} %lld\n"
            "delift_jobs{state=\"succeeded\"} %lld\n"
            "delift_jobs{state=\"failed\"} %lld\n"
            "delift_jobs{state=\"cancelled\"} %lld\n"
            "# HELP delift_queue_depth Jobs waiting for a worker.\n"
            "# TYPE delift_queue_depth gauge\n"
            "delift_queue_depth %lld\n"
            "# HELP delift_datasets Stored datasets.\n"
            "# TYPE delift_datasets gauge\n"
            "delift_datasets %lld\n"
            "# HELP delift_pairs_scored_total Work units (pairs) reported done by jobs.\n"
            "# TYPE delift_pairs_scored_total counter\n"
            "delift_pairs_scored_total %lld\n",
            (long long)g->jobs_queued, (long long)g->jobs_running, (long long)g->jobs_succeeded,
            (long long)g->jobs_failed, (long long)g->jobs_cancelled, (long long)g->queue_depth,
            (long long)g->datasets, (long long)pairs);
    return ferror(out) ? -1 : 0;
}
