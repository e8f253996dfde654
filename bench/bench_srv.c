/* bench_srv.c: delift-server under load: GET of a running job's state
 * against GET /healthz in the same run.
 *
 * Usage: bench_srv [connections [seconds]]   (defaults 200 and 3)
 *
 * The server is the real HTTP layer (srv_http_start, thread per connection,
 * JSON request logs, metrics), run in this process with a bench executor
 * whose job runs (and reports progress) until the end.  Logs go to
 * /dev/null so the terminal is not the bottleneck; they are still
 * formatted and written.  Each client connection is a thread with a
 * keep-alive socket sending one request at a time; latencies are kept in
 * arrays allocated before the clock starts.  Printed: requests per second,
 * p50 and p99 latency, errors, and the ratio of the job route to the
 * healthz baseline.  Issue 6's goal: >= 10,000 requests/s for a job's state
 * on the 2-core machine and no error at 200 connections.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "srv_app.h"
#include "srv_spec.h"

#define SAMPLES_MAX 200000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the bench executor: runs until cancelled ------------------------------ */

static dl_status forever_run(void *self, const srv_job_run *job, dl_error *err)
{
    (void)self;
    for (int64_t i = 0; !atomic_load(job->cancel); i++) {
        job->progress(job->progress_ctx, "pairs", i, 1000000);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return dl_error_set(err, DL_ERR_CANCELLED, "cancelled");
}

/* ---- clients ---------------------------------------------------------------- */

typedef struct client {
    unsigned port;
    const char *request;
    size_t request_len;
    double deadline;
    double *lat; /* SAMPLES_MAX / n_clients of them */
    int64_t cap, n, errors;
} client;

/* Reads one response; returns its status, -1 on a broken connection. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t got = recv(fd, buf + have, cap - have - 1, 0);
        if (got <= 0)
            return -1;
        have += (size_t)got;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (!end && have >= cap - 1)
            return -1;
    }
    int status = atoi(buf + 9);
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t body = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
    size_t got_body = have - (size_t)(end + 4 - buf);
    while (got_body < body) {
        ssize_t got = recv(fd, buf, cap - 1, 0);
        if (got <= 0)
            return -1;
        got_body += (size_t)got;
    }
    return status;
}

static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *client_main(void *arg)
{
    client *c = arg;
    char buf[8192];
    int fd = connect_to(c->port);
    while (now() < c->deadline) {
        if (fd < 0) {
            c->errors++;
            fd = connect_to(c->port);
            continue;
        }
        double t0 = now();
        int st = send(fd, c->request, c->request_len, MSG_NOSIGNAL) == (ssize_t)c->request_len
                     ? read_response(fd, buf, sizeof buf)
                     : -1;
        double dt = now() - t0;
        if (st != 200) {
            c->errors++;
            close(fd);
            fd = -1;
            continue;
        }
        if (c->n < c->cap)
            c->lat[c->n] = dt;
        c->n++;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs n_clients against path for seconds; returns requests per second. */
static double run_phase(const char *name, unsigned port, const char *path, int n_clients,
                        double seconds, double *all)
{
    char request[256];
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n", path);
    client *cs = calloc((size_t)n_clients, sizeof *cs);
    pthread_t *th = calloc((size_t)n_clients, sizeof *th);
    int64_t per = SAMPLES_MAX / n_clients;
    double t0 = now(), deadline = t0 + seconds;
    for (int i = 0; i < n_clients; i++) {
        cs[i] = (client){port, request, (size_t)len, deadline, all + i * per, per, 0, 0};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    int64_t total = 0, errors = 0, kept = 0;
    for (int i = 0; i < n_clients; i++) {
        pthread_join(th[i], NULL);
        total += cs[i].n;
        errors += cs[i].errors;
    }
    double wall = now() - t0;
    /* Compact the kept samples and sort them for the percentiles. */
    for (int i = 0; i < n_clients; i++) {
        int64_t k = cs[i].n < per ? cs[i].n : per;
        memmove(all + kept, cs[i].lat, (size_t)k * sizeof *all);
        kept += k;
    }
    qsort(all, (size_t)kept, sizeof *all, cmp_double);
    double rps = (double)total / wall;
    printf("%-22s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %lld requests, %lld errors\n", name,
           rps, kept ? all[kept / 2] * 1e3 : 0.0, kept ? all[kept * 99 / 100] * 1e3 : 0.0,
           (long long)total, (long long)errors);
    free(cs);
    free(th);
    return rps;
}

/* ---- the in-process server ---------------------------------------------------- */

static int start_server(srv_app *app, const srv_executor *exec, char *dir, unsigned *port,
                        char *job_id)
{
    memset(app, 0, sizeof *app);
    srv_config_init(&app->cfg);
    app->exec = exec;
    pthread_mutex_init(&app->log_mu, NULL);
    snprintf(app->cfg.data_dir, sizeof app->cfg.data_dir, "%s", dir);
    app->cfg.port = 0;
    app->cfg.max_connections = 2048;
    app->cfg.per_ip_connections = 2048;
    dl_error e;
    dl_error_clear(&e);
    srv_upload *u;
    int created;
    json_t *sum = NULL, *job = NULL;
    static const char pool[] = "{\"instruction\":\"a\",\"output\":\"b\"}\n";
    app->metrics = srv_metrics_new();
    srv_jobs_config jc = {.data_dir = dir, .workers = 1, .queue_max = 8, .exec = exec,
                          .metrics = app->metrics};
    int ok = srv_store_open(dir, &app->store, &e) == DL_OK &&
             srv_upload_begin(app->store, &u, &e) == DL_OK &&
             srv_upload_write(u, pool, sizeof pool - 1, &e) == DL_OK &&
             srv_upload_finish(u, &created, &sum, &e) == DL_OK;
    jc.store = app->store;
    ok = ok && srv_jobs_open(&jc, &app->jobs, &e) == DL_OK;
    json_t *spec = NULL;
    json_t *raw = sum ? json_pack("{s:s, s:s, s:i, s:O}", "model", "m", "stage", "instruction",
                                  "budget", 1, "pool", json_object_get(sum, "id"))
                      : NULL;
    int replayed;
    unsigned http;
    ok = ok && srv_spec_validate(raw, NULL, NULL, &spec, &e) == DL_OK &&
         srv_jobs_create(app->jobs, spec, NULL, &job, &replayed, &http, &e) == DL_OK &&
         srv_http_start(app, port, &e) == DL_OK;
    if (ok)
        snprintf(job_id, 64, "%s", json_string_value(json_object_get(job, "id")));
    else
        fprintf(stderr, "bench_srv: cannot start: %s\n", e.message);
    json_decref(raw);
    json_decref(spec);
    json_decref(sum);
    json_decref(job);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    int n_clients = argc > 1 ? atoi(argv[1]) : 200;
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    if (n_clients < 1 || n_clients > 1000 || !(seconds > 0)) {
        fprintf(stderr, "usage: bench_srv [connections (1..1000) [seconds]]\n");
        return 1;
    }
    char dir[] = "/tmp/bench_srv.XXXXXX";
    if (!mkdtemp(dir) || !freopen("/dev/null", "w", stderr))
        return 1;
    static const srv_executor exec = {"bench", NULL, forever_run};
    srv_app app;
    unsigned port = 0;
    char job[64], path[128];
    double *samples = malloc(SAMPLES_MAX * sizeof *samples);
    if (!samples || start_server(&app, &exec, dir, &port, job) != 0)
        return 1;
    snprintf(path, sizeof path, "/v1/selections/%s", job);
    printf("bench_srv: %d keep-alive connections, %.1f s per route, a job running\n", n_clients,
           seconds);
    double base = run_phase("GET /healthz", port, "/healthz", n_clients, seconds, samples);
    double rps = run_phase("GET /v1/selections/{id}", port, path, n_clients, seconds, samples);
    printf("ratio job-state / healthz: %.2f; goal >= 10000 req/s: %s\n", rps / base,
           rps >= 10000 ? "met" : "NOT met");
    srv_jobs_drain(app.jobs);
    srv_http_stop(&app, 5);
    srv_jobs_free(app.jobs);
    srv_metrics_free(app.metrics);
    srv_store_free(app.store);
    srv_config_free(&app.cfg);
    free(samples);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
