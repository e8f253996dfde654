/* srv_http.c: the libmicrohttpd layer of delift-server (see srv_app.h). */
#include "config.h"

#include "srv_app.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "srv_error.h"
#include "srv_spec.h"

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- logging ------------------------------------------------------------ */

void srv_log(srv_app *app, const char *level, json_t *fields)
{
    if (!fields)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40], stamp[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof stamp, "%s.%03dZ", when, (int)(ts.tv_nsec / 1000000));
    json_object_set_new(fields, "ts", json_string(stamp));
    json_object_set_new(fields, "level", json_string(level));
    char *line = json_dumps(fields, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(fields);
    if (!line)
        return;
    pthread_mutex_lock(&app->log_mu);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    pthread_mutex_unlock(&app->log_mu);
    free(line);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    srv_log(cls, "warn", json_pack("{s:s, s:s}", "event", "http", "message", msg));
}

/* ---- responses ------------------------------------------------------------ */

void srv_http_header(srv_req *r, const char *name, const char *value)
{
    if (r->n_hdr >= 4)
        return;
    r->hdr_name[r->n_hdr] = name;
    snprintf(r->hdr_value[r->n_hdr], sizeof r->hdr_value[0], "%s", value);
    r->n_hdr++;
}

static enum MHD_Result queue(srv_req *r, unsigned status, struct MHD_Response *resp,
                             const char *content_type)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    for (int i = 0; i < r->n_hdr; i++)
        MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
    r->n_hdr = 0;
    enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES)
        r->status = status;
    return ok;
}

enum MHD_Result srv_http_text(srv_req *r, unsigned status, const char *content_type,
                              const char *text, size_t n)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)text, MHD_RESPMEM_MUST_COPY);
    return queue(r, status, resp, content_type);
}

enum MHD_Result srv_http_json(srv_req *r, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"code\":500,\"type\":\"nomem\",\"message\":\"out of memory\"}}";
        return srv_http_text(r, 500, "application/json", oom, sizeof oom - 1);
    }
    size_t n = strlen(text);
    text[n] = '\0';
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return queue(r, status, resp, "application/json");
}

enum MHD_Result srv_http_error(srv_req *r, unsigned status, const dl_error *err)
{
    json_t *body = srv_error_body_new(err, status);
    if (!body && err) { /* a message jansson refuses (not UTF-8): keep the status */
        dl_error plain = *err;
        plain.message[0] = plain.field[0] = '\0';
        body = srv_error_body_new(&plain, status);
    }
    if (!status)
        status = srv_error_http_status(err ? err->code : DL_ERR_INTERNAL);
    return srv_http_json(r, status, body);
}

enum MHD_Result srv_http_error_msg(srv_req *r, unsigned status, dl_status code,
                                   const char *msg)
{
    return srv_http_json(r, status, srv_error_body_msg(status, code, msg));
}

enum MHD_Result srv_http_file(srv_req *r, const char *path, const char *content_type)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return srv_http_error_msg(r, 404, DL_ERR_NOT_FOUND, "the output file is missing");
    }
    /* The response owns fd and streams from it: the file is never loaded. */
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    return queue(r, 200, resp, content_type);
}

/* ---- request lifecycle ----------------------------------------------------- */

static void new_request_id(char out[129])
{
    uint8_t b[8] = {0};
    if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
        uint64_t t = (uint64_t)(now_mono() * 1e9);
        memcpy(b, &t, sizeof b);
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Called with the request line, before any header: starts the clock. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    srv_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->app = cls;
    r->conn = conn;
    r->t0 = now_mono();
    r->match.route = SRV_ROUTE_NONE;
    dl_error_clear(&r->body_err);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    srv_app *app = cls;
    srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    srv_upload_abort(r->upload); /* unfinished upload: a client that left */
    if (r->started) {
        double dt = now_mono() - r->t0;
        srv_metrics_observe(app->metrics, r->match.route, r->status, dt);
        json_t *line = json_pack("{s:s, s:s, s:s, s:I, s:f, s:s, s:I}", "event", "request",
                                 "method", r->method, "route", srv_route_pattern(r->match.route),
                                 "status", (json_int_t)r->status, "duration_ms", round(dt * 1e6) / 1e3,
                                 "request_id", r->request_id, "bytes_in",
                                 (json_int_t)r->body_bytes);
        if (line && r->match.id[0])
            json_object_set_new(line, "id", json_string(r->match.id));
        if (line && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(line, "terminated",
                                json_string(toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
                                                ? "timeout"
                                                : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT
                                                      ? "client closed"
                                                      : "aborted"));
        srv_log(app, "info", line);
    }
    free(r->json);
    free(r);
}

/* Content-Length as a number, -1 when absent or unreadable. */
static int64_t content_length(struct MHD_Connection *c)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (!v)
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return (errno || *end || n < 0) ? -1 : n;
}

/* First call: headers are in.  Routes, authenticates, checks limits and
 * prepares the body.  Returns MHD_YES with nothing queued to go on. */
static enum MHD_Result begin(srv_req *r, const char *url, const char *method)
{
    srv_app *app = r->app;
    const char *rid = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (srv_spec_request_id_valid(rid))
        snprintf(r->request_id, sizeof r->request_id, "%s", rid);
    else
        new_request_id(r->request_id);
    snprintf(r->method, sizeof r->method, "%s", method);
    srv_match_status ms = srv_route_match(method, url, &r->match);
    if (ms == SRV_MATCH_NOT_FOUND)
        return srv_http_error_msg(r, 404, DL_ERR_NOT_FOUND, "no such route");
    if (ms == SRV_MATCH_BAD_METHOD) {
        srv_http_header(r, "Allow", r->match.allow);
        return srv_http_error_msg(r, 405, DL_ERR_USAGE, "method not allowed on this route");
    }
    if (atomic_load(&app->draining) && r->match.route != SRV_ROUTE_HEALTHZ) {
        srv_http_header(r, "Retry-After", "5");
        return srv_http_error_msg(r, 503, DL_ERR_CANCELLED, "the server is shutting down");
    }
    if (!srv_route_is_open(r->match.route) &&
        !srv_auth_check(app->auth, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                                "Authorization"))) {
        srv_http_header(r, "WWW-Authenticate", "Bearer realm=\"delift\"");
        return srv_http_error_msg(r, 401, DL_ERR_USAGE, "a valid API key is required "
                                                        "(Authorization: Bearer KEY)");
    }
    r->body = srv_api_body_kind(r->match.route);
    int64_t len = content_length(r->conn);
    int64_t limit = r->body == SRV_BODY_UPLOAD ? app->cfg.max_body : app->cfg.max_json;
    if (len > limit) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than the limit of %lld bytes",
                 (long long)limit);
        return srv_http_error_msg(r, 413, DL_ERR_USAGE, msg);
    }
    if (r->body == SRV_BODY_UPLOAD) {
        dl_error e;
        dl_error_clear(&e);
        if (srv_upload_begin(app->store, &r->upload, &e) != DL_OK)
            return srv_http_error(r, 0, &e);
    }
    return MHD_YES;
}

/* A piece of the body.  Returns MHD_NO to close the connection. */
static enum MHD_Result take_body(srv_req *r, const char *data, size_t n)
{
    srv_app *app = r->app;
    r->body_bytes += (int64_t)n;
    int64_t limit = r->body == SRV_BODY_UPLOAD ? app->cfg.max_body : app->cfg.max_json;
    if (r->body_bytes > limit) {
        /* A chunked body past its limit: libmicrohttpd cannot answer in
         * the middle of a body, so the connection is closed (logged 413). */
        r->too_large = 1;
        r->status = 413;
        return MHD_NO;
    }
    if (r->body == SRV_BODY_JSON) {
        char *p = realloc(r->json, r->json_len + n + 1);
        if (!p)
            return MHD_NO;
        memcpy(p + r->json_len, data, n);
        r->json = p;
        r->json_len += n;
        r->json[r->json_len] = '\0';
    } else if (r->body == SRV_BODY_UPLOAD && r->body_err.code == DL_OK) {
        srv_upload_write(r->upload, data, n, &r->body_err);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    srv_req *r = *con_cls;
    if (!r)
        return MHD_NO; /* on_uri could not allocate */
    if (!r->started) {
        r->started = 1;
        return begin(r, url, method);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return take_body(r, upload_data, n);
    }
    return srv_api_dispatch(r);
}

/* ---- start / stop ---------------------------------------------------------- */

dl_status srv_http_start(srv_app *app, unsigned *port_out, dl_error *err)
{
    const srv_config *c = &app->cfg;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, c->listen_host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)c->port);
    } else if (inet_pton(AF_INET6, c->listen_host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)c->port);
        flags |= MHD_USE_IPv6;
    } else {
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "listen",
                               "the listen address must be a numeric IPv4 or IPv6 address");
    }
    app->mhd = MHD_start_daemon(
        flags, (uint16_t)c->port, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_logger, app, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->timeout_s, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, app, MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_END);
    if (!app->mhd)
        return dl_error_set(err, DL_ERR_IO, "cannot listen on %s:%u (in use, or no permission)",
                            c->listen_host, c->port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(app->mhd, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info ? info->port : c->port;
    return DL_OK;
}

void srv_http_stop(srv_app *app, unsigned wait_s)
{
    if (!app->mhd)
        return;
    MHD_socket s = MHD_quiesce_daemon(app->mhd);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    /* Let requests in flight finish (bounded), then stop. */
    for (unsigned i = 0; i < wait_s * 10; i++) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(app->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || info->num_connections == 0)
            break;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(app->mhd);
    app->mhd = NULL;
}
