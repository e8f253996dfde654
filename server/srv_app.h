/* srv_app.h: the delift-server program: its state, the HTTP layer and the
 * request handlers.
 *
 * srv_app_main() is the whole program (flags, start, signals, drain) so
 * that delift-server (srv_main.c) and the test daemon (tests/srv_testd.c)
 * run the same code and differ only in the executor they pass: the
 * selection pipeline's in delift-server (srv_exec_select.h), a test
 * executor in the test daemon; with NULL, selection jobs are refused with
 * 501.
 *
 * HTTP layer (srv_http.c): libmicrohttpd with one thread per connection, so
 * a slow or stalled client blocks only its own thread; connection, per-IP
 * and idle-timeout limits from the config.  Each request owns an srv_req
 * (created when the request line arrives, freed when the connection
 * reports the request complete); nothing per-request is shared.  Every
 * response carries X-Request-Id; every request is logged as one JSON line
 * on stderr.
 *
 * Thread-safety: an srv_app is built before the daemon starts; afterwards
 * its members are either read-only or thread-safe objects (store, jobs,
 * metrics); `draining` is atomic; the log is serialised by log_mu.
 */
#ifndef SRV_APP_H
#define SRV_APP_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dl_error.h"
#include "srv_auth.h"
#include "srv_config.h"
#include "srv_exec.h"
#include "srv_jobs.h"
#include "srv_metrics.h"
#include "srv_route.h"
#include "srv_store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct srv_app {
    srv_config cfg;
    const srv_executor *exec; /* borrowed, NULL: no selection pipeline */
    srv_auth *auth;           /* NULL: no keys configured */
    srv_store *store;
    srv_jobs *jobs;
    srv_metrics *metrics;
    struct MHD_Daemon *mhd;
    atomic_int draining;
    pthread_mutex_t log_mu;
} srv_app;

typedef enum srv_body_kind {
    SRV_BODY_NONE = 0, /* a body, if any, is read and dropped */
    SRV_BODY_JSON,     /* buffered up to cfg.max_json */
    SRV_BODY_UPLOAD    /* streamed to an srv_upload */
} srv_body_kind;

/* Per-request state (owned by the connection, see srv_http.c). */
typedef struct srv_req {
    srv_app *app;
    struct MHD_Connection *conn;
    double t0;                 /* monotonic seconds at the request line */
    char request_id[129];
    char method[16];
    srv_match match;
    int started;               /* the first handler call has run */
    unsigned status;           /* answered status, 0 until then */
    srv_body_kind body;
    char *json;                /* SRV_BODY_JSON: bytes so far (NUL-terminated) */
    size_t json_len;
    srv_upload *upload;        /* SRV_BODY_UPLOAD */
    dl_error body_err;         /* a write failure while streaming */
    int too_large;             /* the body passed its limit */
    int64_t body_bytes;
    int n_hdr;                 /* extra response headers (srv_http_header) */
    const char *hdr_name[4];   /* static strings */
    char hdr_value[4][128];
} srv_req;

/* ---- the program ---------------------------------------------------- */

/* Runs delift-server: parses argv, serves until SIGTERM/SIGINT, drains.
 * Returns the process exit code (0, 1 usage, 3 runtime). */
int srv_app_main(int argc, char **argv, const srv_executor *exec);

/* ---- HTTP layer (srv_http.c) ---------------------------------------- */

/* Starts libmicrohttpd on cfg.listen_host:port; *port_out gets the bound
 * port (useful with port 0). */
dl_status srv_http_start(srv_app *app, unsigned *port_out, dl_error *err);

/* Stops accepting, waits up to wait_s for open connections, stops. */
void srv_http_stop(srv_app *app, unsigned wait_s);

/* Queues a JSON response (body is stolen; NULL answers a bare 500). */
enum MHD_Result srv_http_json(srv_req *r, unsigned status, json_t *body);

/* Queues an error response from err (status 0: derived from err->code). */
enum MHD_Result srv_http_error(srv_req *r, unsigned status, const dl_error *err);

/* Queues an error response with a fixed message (no paths in it!). */
enum MHD_Result srv_http_error_msg(srv_req *r, unsigned status, dl_status code,
                                   const char *msg);

/* Queues the file at path as the body (streamed from the fd), with
 * content_type.  404 when it cannot be opened. */
enum MHD_Result srv_http_file(srv_req *r, const char *path, const char *content_type);

/* Queues a text body (copied). */
enum MHD_Result srv_http_text(srv_req *r, unsigned status, const char *content_type,
                              const char *text, size_t n);

/* Adds a header to the response being built for r (applied by the next
 * srv_http_* call; at most 4). */
void srv_http_header(srv_req *r, const char *name, const char *value);

/* Writes one JSON log line (object stolen) to stderr with "ts" and
 * "level" added. */
void srv_log(srv_app *app, const char *level, json_t *fields);

/* ---- handlers (srv_api.c) ------------------------------------------- */

/* Answers a routed request whose body (if any) is complete. */
enum MHD_Result srv_api_dispatch(srv_req *r);

/* Which body a route takes. */
srv_body_kind srv_api_body_kind(srv_route_id route);

#ifdef __cplusplus
}
#endif

#endif /* SRV_APP_H */
