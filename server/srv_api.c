/* srv_api.c: the request handlers of delift-server (see srv_app.h and
 * docs/openapi.yaml). */
#include "config.h"

#include "srv_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_file.h"
#include "srv_error.h"
#include "srv_spec.h"

srv_body_kind srv_api_body_kind(srv_route_id route)
{
    switch (route) {
    case SRV_ROUTE_DATASET_CREATE: return SRV_BODY_UPLOAD;
    case SRV_ROUTE_JOB_CREATE: return SRV_BODY_JSON;
    default: return SRV_BODY_NONE;
    }
}

static const char *header(srv_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* ---- health ------------------------------------------------------------- */

static enum MHD_Result healthz(srv_req *r)
{
    return srv_http_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* Writes, fsyncs and removes a probe file under the data directory. */
static int storage_writable(srv_app *app)
{
    char path[SRV_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/tmp/.readyz", app->cfg.data_dir);
    int ok = dl_file_write_atomic(path, "ok\n", 3, NULL) == DL_OK;
    unlink(path);
    return ok;
}

static enum MHD_Result readyz(srv_req *r)
{
    srv_app *app = r->app;
    json_t *models = json_object();
    const char *bad_model = NULL;
    for (size_t i = 0; i < app->cfg.n_models; i++) {
        int ok = access(app->cfg.models[i].path, R_OK) == 0;
        json_object_set_new(models, app->cfg.models[i].name,
                            json_string(ok ? "ok" : "unreadable"));
        if (!ok && !bad_model)
            bad_model = app->cfg.models[i].name;
    }
    int storage = storage_writable(app);
    int db = srv_jobs_check(app->jobs, NULL) == DL_OK;
    if (!storage || !db || bad_model) {
        json_decref(models);
        char msg[160];
        snprintf(msg, sizeof msg, "not ready: %s",
                 !storage ? "the data directory is not writable"
                 : !db    ? "the job database does not answer"
                          : "a model file is not readable");
        if (storage && db)
            snprintf(msg, sizeof msg, "not ready: model '%s' is not readable", bad_model);
        return srv_http_error_msg(r, 503, DL_ERR_IO, msg);
    }
    return srv_http_json(r, 200, json_pack("{s:s, s:{s:s, s:s, s:o, s:s?}}", "status", "ready",
                                           "checks", "storage", "ok", "database", "ok",
                                           "models", models, "executor",
                                           app->exec ? app->exec->name : NULL));
}

static enum MHD_Result metrics(srv_req *r)
{
    srv_app *app = r->app;
    srv_metrics_gauges g;
    memset(&g, 0, sizeof g);
    srv_jobs_gauges(app->jobs, &g);
    g.datasets = srv_store_count(app->store);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return srv_http_error_msg(r, 500, DL_ERR_NOMEM, "out of memory");
    int rc = srv_metrics_write(app->metrics, &g, f);
    fclose(f);
    enum MHD_Result res =
        rc == 0 ? srv_http_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, n)
                : srv_http_error_msg(r, 500, DL_ERR_NOMEM, "out of memory");
    free(text);
    return res;
}

static enum MHD_Result models(srv_req *r)
{
    srv_app *app = r->app;
    json_t *list = json_array();
    for (size_t i = 0; i < app->cfg.n_models; i++)
        json_array_append_new(list, json_pack("{s:s, s:b}", "name", app->cfg.models[i].name,
                                              "readable",
                                              access(app->cfg.models[i].path, R_OK) == 0));
    return srv_http_json(r, 200, json_pack("{s:o}", "models", list));
}

/* ---- datasets ------------------------------------------------------------ */

static enum MHD_Result dataset_create(srv_req *r)
{
    srv_upload *u = r->upload;
    r->upload = NULL;
    if (r->body_err.code != DL_OK) {
        srv_upload_abort(u);
        return srv_http_error(r, 0, &r->body_err);
    }
    dl_error e;
    dl_error_clear(&e);
    int created = 0;
    json_t *sum = NULL;
    dl_status st = srv_upload_finish(u, &created, &sum, &e);
    if (st != DL_OK)
        return srv_http_error(r, 0, &e);
    char loc[128];
    snprintf(loc, sizeof loc, "/v1/datasets/%s", json_string_value(json_object_get(sum, "id")));
    srv_http_header(r, "Location", loc);
    return srv_http_json(r, created ? 201 : 200, sum);
}

static enum MHD_Result dataset_list(srv_req *r)
{
    dl_error e;
    dl_error_clear(&e);
    json_t *list;
    if (srv_store_list(r->app->store, &list, &e) != DL_OK) {
        json_decref(list);
        return srv_http_error(r, 0, &e);
    }
    return srv_http_json(r, 200, json_pack("{s:o}", "datasets", list));
}

static enum MHD_Result dataset_get(srv_req *r)
{
    dl_error e;
    dl_error_clear(&e);
    json_t *sum;
    if (srv_store_get(r->app->store, r->match.id, &sum, &e) != DL_OK)
        return srv_http_error(r, 0, &e);
    return srv_http_json(r, 200, sum);
}

static enum MHD_Result dataset_delete(srv_req *r)
{
    srv_app *app = r->app;
    dl_error e;
    dl_error_clear(&e);
    srv_store_lock(app->store);
    int64_t users = srv_jobs_dataset_users(app->jobs, r->match.id);
    dl_status st = users ? DL_OK : srv_store_delete(app->store, r->match.id, &e);
    srv_store_unlock(app->store);
    if (users) {
        char msg[128];
        snprintf(msg, sizeof msg, "the dataset is used by %lld queued or running job(s)",
                 (long long)users);
        return srv_http_error_msg(r, 409, DL_ERR_USAGE, msg);
    }
    if (st != DL_OK)
        return srv_http_error(r, 0, &e);
    return srv_http_text(r, 204, NULL, "", 0);
}

/* ---- selections ------------------------------------------------------------ */

static int model_known(void *ctx, const char *name)
{
    return srv_config_model(ctx, name) != NULL;
}

static enum MHD_Result job_create(srv_req *r)
{
    srv_app *app = r->app;
    dl_error e;
    dl_error_clear(&e);
    json_error_t jerr;
    json_t *body = r->json ? json_loadb(r->json, r->json_len, JSON_REJECT_DUPLICATES, &jerr)
                           : NULL;
    if (!body) {
        char msg[256];
        snprintf(msg, sizeof msg, "the body is not valid JSON: %s", r->json ? jerr.text
                                                                            : "it is empty");
        return srv_http_error_msg(r, 400, DL_ERR_INPUT, msg);
    }
    const char *key = header(r, "Idempotency-Key");
    if (key && !srv_spec_idem_key_valid(key)) {
        json_decref(body);
        dl_error_set_at(&e, DL_ERR_USAGE, NULL, 0, 0, -1, "Idempotency-Key",
                        "1 to 255 visible ASCII characters");
        return srv_http_error(r, 400, &e);
    }
    json_t *spec = NULL;
    dl_status st = srv_spec_validate(body, model_known, &app->cfg, &spec, &e);
    json_decref(body);
    if (st != DL_OK)
        return srv_http_error(r, 400, &e);
    if (!srv_jobs_can_run(app->jobs)) {
        json_decref(spec);
        return srv_http_error_msg(r, 501, DL_ERR_UNSUPPORTED,
                                  "this server runs no selection executor: it cannot run "
                                  "selection jobs");
    }
    if (app->exec && app->exec->check && app->exec->check(app->exec->self, spec, &e) != DL_OK) {
        json_decref(spec);
        return srv_http_error(r, 400, &e);
    }
    json_t *job = NULL;
    int replayed = 0;
    unsigned http = 500;
    st = srv_jobs_create(app->jobs, spec, key, &job, &replayed, &http, &e);
    json_decref(spec);
    if (st != DL_OK) {
        if (http == 429) {
            char ra[16];
            snprintf(ra, sizeof ra, "%u", app->cfg.retry_after_s);
            srv_http_header(r, "Retry-After", ra);
        }
        return srv_http_error(r, http, &e);
    }
    char loc[128];
    snprintf(loc, sizeof loc, "/v1/selections/%s", json_string_value(json_object_get(job, "id")));
    srv_http_header(r, "Location", loc);
    if (replayed)
        srv_http_header(r, "Idempotent-Replayed", "true");
    return srv_http_json(r, 202, job);
}

static enum MHD_Result job_get(srv_req *r)
{
    dl_error e;
    dl_error_clear(&e);
    json_t *job;
    if (srv_jobs_get(r->app->jobs, r->match.id, &job, &e) != DL_OK)
        return srv_http_error(r, 0, &e);
    return srv_http_json(r, 200, job);
}

static enum MHD_Result job_list(srv_req *r)
{
    dl_error e;
    dl_error_clear(&e);
    json_t *list;
    if (srv_jobs_list(r->app->jobs, 100, &list, &e) != DL_OK) {
        json_decref(list);
        return srv_http_error(r, 0, &e);
    }
    return srv_http_json(r, 200, json_pack("{s:o}", "selections", list));
}

static enum MHD_Result job_cancel(srv_req *r)
{
    dl_error e;
    dl_error_clear(&e);
    json_t *job;
    unsigned http = 500;
    if (srv_jobs_cancel(r->app->jobs, r->match.id, &job, &http, &e) != DL_OK)
        return srv_http_error(r, http, &e);
    return srv_http_json(r, http, job);
}

static enum MHD_Result job_output(srv_req *r, const char *name, const char *type)
{
    dl_error e;
    dl_error_clear(&e);
    char path[SRV_PATH_MAX + 128];
    unsigned http = 500;
    if (srv_jobs_output(r->app->jobs, r->match.id, name, path, sizeof path, &http, &e) != DL_OK)
        return srv_http_error(r, http, &e);
    return srv_http_file(r, path, type);
}

enum MHD_Result srv_api_dispatch(srv_req *r)
{
    if (r->too_large) /* closed in take_body already; never reached */
        return MHD_NO;
    switch (r->match.route) {
    case SRV_ROUTE_HEALTHZ: return healthz(r);
    case SRV_ROUTE_READYZ: return readyz(r);
    case SRV_ROUTE_METRICS: return metrics(r);
    case SRV_ROUTE_MODELS: return models(r);
    case SRV_ROUTE_DATASET_CREATE: return dataset_create(r);
    case SRV_ROUTE_DATASET_LIST: return dataset_list(r);
    case SRV_ROUTE_DATASET_GET: return dataset_get(r);
    case SRV_ROUTE_DATASET_DELETE: return dataset_delete(r);
    case SRV_ROUTE_JOB_CREATE: return job_create(r);
    case SRV_ROUTE_JOB_LIST: return job_list(r);
    case SRV_ROUTE_JOB_GET: return job_get(r);
    case SRV_ROUTE_JOB_DELETE:
    case SRV_ROUTE_JOB_CANCEL: return job_cancel(r);
    case SRV_ROUTE_JOB_RESULT: return job_output(r, SRV_OUT_RANKING, "application/json");
    case SRV_ROUTE_JOB_RECORDS: return job_output(r, SRV_OUT_RECORDS, "application/x-ndjson");
    case SRV_ROUTE_JOB_MANIFEST: return job_output(r, SRV_OUT_MANIFEST, "application/json");
    default: return srv_http_error_msg(r, 404, DL_ERR_NOT_FOUND, "no such route");
    }
}
