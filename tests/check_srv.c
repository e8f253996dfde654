/* check_srv.c: unit tests of delift-server's own parsers and stores:
 * routing, API keys, job specs and request headers, settings, metrics,
 * the dataset store and the job table.  The daemon as a whole is tested
 * end to end by tests/srv_e2e.sh. */
#include "config.h"

#include <dirent.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dl_sha256.h"
#include "dl_test.h"
#include "srv_auth.h"
#include "srv_config.h"
#include "srv_error.h"
#include "srv_jobs.h"
#include "srv_metrics.h"
#include "srv_route.h"
#include "srv_spec.h"
#include "srv_store.h"

/* ---- routes ---------------------------------------------------------------- */

typedef struct route_case {
    const char *method, *path;
    srv_match_status status;
    srv_route_id route;
    const char *id;
} route_case;

static const route_case route_cases[] = {
    {"GET", "/healthz", SRV_MATCH_OK, SRV_ROUTE_HEALTHZ, ""},
    {"HEAD", "/healthz", SRV_MATCH_OK, SRV_ROUTE_HEALTHZ, ""},
    {"GET", "/v1/datasets", SRV_MATCH_OK, SRV_ROUTE_DATASET_LIST, ""},
    {"POST", "/v1/datasets", SRV_MATCH_OK, SRV_ROUTE_DATASET_CREATE, ""},
    {"GET", "/v1/datasets/abc_DEF-9", SRV_MATCH_OK, SRV_ROUTE_DATASET_GET, "abc_DEF-9"},
    {"DELETE", "/v1/datasets/x", SRV_MATCH_OK, SRV_ROUTE_DATASET_DELETE, "x"},
    {"POST", "/v1/selections/j1/cancel", SRV_MATCH_OK, SRV_ROUTE_JOB_CANCEL, "j1"},
    {"GET", "/v1/selections/j1/records", SRV_MATCH_OK, SRV_ROUTE_JOB_RECORDS, "j1"},
    {"DELETE", "/v1/selections/j1", SRV_MATCH_OK, SRV_ROUTE_JOB_DELETE, "j1"},
    {"PUT", "/v1/datasets", SRV_MATCH_BAD_METHOD, SRV_ROUTE_NONE, ""},
    {"POST", "/healthz", SRV_MATCH_BAD_METHOD, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/datasets/", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/datasets//", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/datasets/..", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/datasets/a.b", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/datasets/a%2fb", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/datasetsX", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "//v1/datasets", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "v1/datasets", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"GET", "/v1/selections/j1/result/x", SRV_MATCH_NOT_FOUND, SRV_ROUTE_NONE, ""},
    {"get", "/healthz", SRV_MATCH_BAD_METHOD, SRV_ROUTE_NONE, ""},
};

START_TEST(test_route_table)
{
    const route_case *c = &route_cases[_i];
    srv_match m;
    srv_match_status st = srv_route_match(c->method, c->path, &m);
    ck_assert_msg(st == c->status, "%s %s: status %d", c->method, c->path, st);
    ck_assert_int_eq(m.route, c->route);
    ck_assert_str_eq(m.id, c->id);
}
END_TEST

START_TEST(test_route_details)
{
    srv_match m;
    ck_assert_int_eq(srv_route_match("PATCH", "/v1/datasets/x", &m), SRV_MATCH_BAD_METHOD);
    ck_assert_str_eq(m.allow, "GET, DELETE");
    char path[128] = "/v1/datasets/";
    memset(path + 13, 'a', SRV_ROUTE_ID_MAX);
    ck_assert_int_eq(srv_route_match("GET", path, &m), SRV_MATCH_OK);
    path[13 + SRV_ROUTE_ID_MAX] = 'a';
    ck_assert_int_eq(srv_route_match("GET", path, &m), SRV_MATCH_NOT_FOUND);
    ck_assert(srv_route_is_open(SRV_ROUTE_HEALTHZ) && srv_route_is_open(SRV_ROUTE_READYZ));
    for (int r = SRV_ROUTE_METRICS; r < SRV_ROUTE_COUNT; r++)
        ck_assert_msg(!srv_route_is_open((srv_route_id)r), "%s is open",
                      srv_route_pattern((srv_route_id)r));
    ck_assert_str_eq(srv_route_pattern(SRV_ROUTE_NONE), "unmatched");
}
END_TEST

/* ---- API keys -------------------------------------------------------------------- */

START_TEST(test_auth_keys)
{
    static const char text[] = "# keys\r\n  first-key-0123456789  \r\n\nsecond-key-abcdefghij\n";
    srv_auth *a = NULL;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(srv_auth_load_text(text, sizeof text - 1, &a, &e), DL_OK);
    ck_assert_int_eq(srv_auth_count(a), 2);
    ck_assert(srv_auth_check(a, "Bearer first-key-0123456789"));
    ck_assert(srv_auth_check(a, "bEaReR   second-key-abcdefghij"));
    ck_assert(!srv_auth_check(a, "Bearer first-key-012345678"));   /* prefix */
    ck_assert(!srv_auth_check(a, "Bearer first-key-0123456789x")); /* longer */
    ck_assert(!srv_auth_check(a, "Bearer first-key-0123456789 "));
    ck_assert(!srv_auth_check(a, "Bearerfirst-key-0123456789"));
    ck_assert(!srv_auth_check(a, "Basic first-key-0123456789"));
    ck_assert(!srv_auth_check(a, "Bearer "));
    ck_assert(!srv_auth_check(a, ""));
    ck_assert(!srv_auth_check(a, NULL));
    ck_assert(srv_auth_check(NULL, NULL)); /* no keys configured: open */
    srv_auth_free(a);
    srv_auth_free(NULL);

    static const struct { const char *text; int64_t line; } bad[] = {
        {"short\n", 1},
        {"# only comments\n\n", 0},
        {"good-key-0123456789\nbad key with spaces here\n", 2},
        {"good-key-0123456789\n\xc3\xa9-non-ascii-key-000000\n", 2},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dl_error_clear(&e);
        a = NULL;
        ck_assert_int_eq(srv_auth_load_text(bad[i].text, strlen(bad[i].text), &a, &e),
                         DL_ERR_INPUT);
        ck_assert_ptr_null(a);
        ck_assert_int_eq(e.line, bad[i].line);
    }
    dl_error_clear(&e);
    ck_assert_int_eq(srv_auth_load("/nonexistent/keys", &a, &e), DL_ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_auth_ct_equal)
{
    uint8_t x[32], y[32];
    for (int i = 0; i < 32; i++)
        x[i] = y[i] = (uint8_t)(i * 7);
    ck_assert(srv_auth_ct_equal(x, y, 32));
    for (int i = 0; i < 32; i++) {
        y[i] ^= 0x80;
        ck_assert(!srv_auth_ct_equal(x, y, 32));
        y[i] ^= 0x80;
    }
    ck_assert(srv_auth_ct_equal(x, y, 0));
}
END_TEST

/* ---- job specs ----------------------------------------------------------------------- */

static int only_mini(void *ctx, const char *name)
{
    (void)ctx;
    return !strcmp(name, "mini");
}

#define POOL "\"pool\":\"p1\""

typedef struct spec_case {
    const char *json;
    const char *field; /* NULL: valid */
} spec_case;

static const spec_case spec_cases[] = {
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL "}", NULL},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":0.5," POOL "}", NULL},
    {"{\"model\":\"mini\",\"stage\":\"task\",\"budget\":3," POOL ",\"target\":\"t\"}", NULL},
    {"{\"model\":\"mini\",\"stage\":\"continual\",\"budget\":3," POOL ",\"existing\":\"e\","
     "\"function\":\"gccg\",\"pairs\":\"knn:16\",\"options\":{\"seed\":1,\"bos\":true}}",
     NULL},
    {"[1]", ""},
    {"{}", "model"},
    {"{\"model\":7}", "model"},
    {"{\"model\":\"big\",\"stage\":\"instruction\",\"budget\":3," POOL "}", "model"},
    {"{\"model\":\"mini\",\"budget\":3," POOL "}", "stage"},
    {"{\"model\":\"mini\",\"stage\":\"x\",\"budget\":3," POOL "}", "stage"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\"," POOL "}", "budget"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":0," POOL "}", "budget"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":-2," POOL "}", "budget"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":1.0," POOL "}", "budget"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":\"3\"," POOL "}", "budget"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3}", "pool"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3,\"pool\":\"../x\"}", "pool"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"target\":\"t\"}",
     "target"},
    {"{\"model\":\"mini\",\"stage\":\"task\",\"budget\":3," POOL "}", "target"},
    {"{\"model\":\"mini\",\"stage\":\"task\",\"budget\":3," POOL ",\"target\":\"t\","
     "\"existing\":\"e\"}", "existing"},
    {"{\"model\":\"mini\",\"stage\":\"continual\",\"budget\":3," POOL "}", "existing"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"function\":\"x\"}",
     "function"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"pairs\":\"knn:\"}",
     "pairs"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"pairs\":\"knn:4097\"}",
     "pairs"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"pairs\":\"knn:1x\"}",
     "pairs"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"pairs\":\"some\"}",
     "pairs"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"options\":[]}",
     "options"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL
     ",\"options\":{\"a\":{}}}", "options.a"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL
     ",\"options\":{\"a-b\":1}}", "options"},
    {"{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":3," POOL ",\"extra\":1}", "extra"},
};

START_TEST(test_spec_table)
{
    const spec_case *c = &spec_cases[_i];
    json_error_t je;
    json_t *in = json_loads(c->json, 0, &je);
    ck_assert_msg(in != NULL, "case %d: %s", _i, je.text);
    json_t *out = NULL;
    dl_error e;
    dl_error_clear(&e);
    dl_status st = srv_spec_validate(in, only_mini, NULL, &out, &e);
    if (!c->field) {
        ck_assert_msg(st == DL_OK, "case %d: %s", _i, e.message);
        ck_assert_ptr_nonnull(out);
    } else {
        ck_assert_msg(st == DL_ERR_USAGE, "case %d accepted", _i);
        ck_assert_ptr_null(out);
        ck_assert_msg(!strcmp(e.field, c->field), "case %d: field '%s', want '%s'", _i, e.field,
                      c->field);
    }
    json_decref(out);
    json_decref(in);
}
END_TEST

START_TEST(test_spec_normalised)
{
    json_t *a = json_loads("{\"pool\":\"p\",\"budget\":2,\"stage\":\"task\",\"target\":\"t\","
                           "\"model\":\"m\"}", 0, NULL);
    json_t *b = json_loads("{\"model\":\"m\",\"stage\":\"task\",\"budget\":2,\"pool\":\"p\","
                           "\"target\":\"t\",\"function\":\"flmi\",\"pairs\":\"auto\","
                           "\"options\":{},\"existing\":null}", 0, NULL);
    json_t *c = json_loads("{\"model\":\"m\",\"stage\":\"task\",\"budget\":3,\"pool\":\"p\","
                           "\"target\":\"t\"}", 0, NULL);
    json_t *na, *nb, *nc;
    ck_assert_int_eq(srv_spec_validate(a, NULL, NULL, &na, NULL), DL_OK);
    ck_assert_int_eq(srv_spec_validate(b, NULL, NULL, &nb, NULL), DL_OK);
    ck_assert_int_eq(srv_spec_validate(c, NULL, NULL, &nc, NULL), DL_OK);
    /* defaults are the stage's: task -> flmi */
    ck_assert_str_eq(json_string_value(json_object_get(na, "function")), "flmi");
    ck_assert(json_is_null(json_object_get(na, "existing")));
    ck_assert(json_equal(na, nb));
    char ha[65], hb[65], hc[65];
    srv_spec_hash(na, ha, NULL);
    srv_spec_hash(nb, hb, NULL);
    srv_spec_hash(nc, hc, NULL);
    ck_assert_str_eq(ha, hb);
    ck_assert_str_ne(ha, hc);
    json_decref(a), json_decref(b), json_decref(c);
    json_decref(na), json_decref(nb), json_decref(nc);
}
END_TEST

START_TEST(test_headers)
{
    ck_assert(srv_spec_idem_key_valid("k"));
    ck_assert(srv_spec_idem_key_valid("~!#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}"));
    ck_assert(!srv_spec_idem_key_valid(""));
    ck_assert(!srv_spec_idem_key_valid(NULL));
    ck_assert(!srv_spec_idem_key_valid("a b"));
    ck_assert(!srv_spec_idem_key_valid("a\tb"));
    ck_assert(!srv_spec_idem_key_valid("\xc3\xa9"));
    char k[300];
    memset(k, 'k', sizeof k);
    k[255] = '\0';
    ck_assert(srv_spec_idem_key_valid(k));
    k[255] = 'k';
    k[256] = '\0';
    ck_assert(!srv_spec_idem_key_valid(k));
    ck_assert(srv_spec_request_id_valid("abc-123_x.y"));
    ck_assert(!srv_spec_request_id_valid("a/b"));
    ck_assert(!srv_spec_request_id_valid(""));
    k[128] = '\0';
    ck_assert(srv_spec_request_id_valid(k));
    k[128] = 'k';
    k[129] = '\0';
    ck_assert(!srv_spec_request_id_valid(k));
}
END_TEST

/* ---- error bodies (the extension of srv_error.h) ---------------------------- */

START_TEST(test_error_members)
{
    dl_error e;
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_INPUT, "/srv/data/tmp/upload-x", 4, 9, 120, "messages[1].role",
                    "not a string");
    json_t *body = srv_error_body_new(&e, 0);
    json_t *in = json_object_get(body, "error");
    ck_assert_int_eq(json_integer_value(json_object_get(in, "line")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(in, "column")), 9);
    ck_assert_str_eq(json_string_value(json_object_get(in, "field")), "messages[1].role");
    char *text = json_dumps(body, 0);
    ck_assert_ptr_null(strstr(text, "/srv/data")); /* never the server's path */
    free(text);
    json_decref(body);
    /* internal errors carry no detail at all */
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_IO, "/srv/x", 4, 0, -1, "f", "disk full at /srv/x");
    body = srv_error_body_new(&e, 0);
    in = json_object_get(body, "error");
    ck_assert_ptr_null(json_object_get(in, "line"));
    ck_assert_ptr_null(json_object_get(in, "field"));
    ck_assert_str_eq(json_string_value(json_object_get(in, "message")), "internal error");
    json_decref(body);
    body = srv_error_body_msg(429, DL_ERR_USAGE, "queue full");
    in = json_object_get(body, "error");
    ck_assert_int_eq(json_integer_value(json_object_get(in, "code")), 429);
    ck_assert_str_eq(json_string_value(json_object_get(in, "type")), "usage");
    ck_assert_str_eq(json_string_value(json_object_get(in, "message")), "queue full");
    json_decref(body);
}
END_TEST

/* ---- settings ------------------------------------------------------------------------- */

START_TEST(test_config)
{
    srv_config c;
    srv_config_init(&c);
    dl_error e;
    dl_error_clear(&e);
    ck_assert_str_eq(c.listen_host, "127.0.0.1"); /* loopback by default */
    ck_assert_int_eq(srv_config_set(&c, "listen", "[::1]:0", &e), DL_OK);
    ck_assert_str_eq(c.listen_host, "::1");
    ck_assert_uint_eq(c.port, 0);
    ck_assert_int_eq(srv_config_set(&c, "listen", "0.0.0.0:65535", &e), DL_OK);
    ck_assert_uint_eq(c.port, 65535);
    static const char *const bad_listen[] = {"127.0.0.1", "127.0.0.1:65536", ":80",
                                             "127.0.0.1:-1", "127.0.0.1:8o", "127.0.0.1: 80"};
    for (size_t i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++) {
        dl_error_clear(&e);
        ck_assert_int_eq(srv_config_set(&c, "listen", bad_listen[i], &e), DL_ERR_USAGE);
        ck_assert_str_eq(e.field, "listen");
    }
    ck_assert_int_eq(srv_config_set(&c, "workers", "4", &e), DL_OK);
    ck_assert_int_eq(c.workers, 4);
    ck_assert_int_eq(srv_config_set(&c, "timeout", "7", &e), DL_OK);
    ck_assert_uint_eq(c.timeout_s, 7);
    ck_assert_int_eq(srv_config_set(&c, "max-body", "1099511627776", &e), DL_OK);
    ck_assert_int_eq(c.max_body, (int64_t)1 << 40);
    static const char *const bad_num[][2] = {{"workers", "0"},   {"workers", "65"},
                                             {"workers", "+1"},  {"workers", " 1"},
                                             {"workers", "1 "},  {"queue-max", ""},
                                             {"max-body", "1e9"}, {"timeout", "99999999999999999999"},
                                             {"frobs", "1"}};
    for (size_t i = 0; i < sizeof bad_num / sizeof bad_num[0]; i++) {
        dl_error_clear(&e);
        ck_assert_msg(srv_config_set(&c, bad_num[i][0], bad_num[i][1], &e) == DL_ERR_USAGE,
                      "%s=%s accepted", bad_num[i][0], bad_num[i][1]);
    }
    ck_assert_int_eq(c.workers, 4);
    ck_assert_int_eq(srv_config_set(&c, "model", "mini=/m/a.gguf", &e), DL_OK);
    dl_error_clear(&e);
    ck_assert_int_eq(srv_config_set(&c, "model", "mini=/m/b.gguf", &e), DL_ERR_USAGE);
    ck_assert_int_eq(srv_config_set(&c, "model", "a b=/x", &e), DL_ERR_USAGE);
    ck_assert_int_eq(srv_config_set(&c, "model", "=/x", &e), DL_ERR_USAGE);
    ck_assert_int_eq(srv_config_set(&c, "model", "x=", &e), DL_ERR_USAGE);
    ck_assert_str_eq(srv_config_model(&c, "mini")->path, "/m/a.gguf");
    ck_assert_ptr_null(srv_config_model(&c, "other"));
    dl_error_clear(&e);
    ck_assert_int_eq(srv_config_check(&c, &e), DL_ERR_USAGE);
    ck_assert_str_eq(e.field, "data-dir");

    static const char file[] = "# delift-server\n\n  data-dir = /srv/d \r\nmodel = big=/m/big.gguf\n"
                               "workers=2\n";
    ck_assert_int_eq(srv_config_load_text(&c, file, sizeof file - 1, &e), DL_OK);
    ck_assert_str_eq(c.data_dir, "/srv/d");
    ck_assert_int_eq(c.workers, 2);
    ck_assert_uint_eq(c.n_models, 2);
    static const char bad_file[] = "workers = 2\nno equals sign\n";
    dl_error_clear(&e);
    ck_assert_int_eq(srv_config_load_text(&c, bad_file, sizeof bad_file - 1, &e), DL_ERR_USAGE);
    ck_assert_int_eq(e.line, 2);
    static const char bad_value[] = "\n\nqueue-max = lots\n";
    dl_error_clear(&e);
    ck_assert_int_eq(srv_config_load_text(&c, bad_value, sizeof bad_value - 1, &e),
                     DL_ERR_USAGE);
    ck_assert_int_eq(e.line, 3);
    ck_assert_str_eq(e.field, "queue-max");
    srv_config_free(&c);
    srv_config_free(NULL);
}
END_TEST

/* ---- metrics ----------------------------------------------------------------------------- */

/* Value of the exposition line that starts with prefix, -1 when absent. */
static double metric(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

START_TEST(test_metrics)
{
    srv_metrics *m = srv_metrics_new();
    static const double d[] = {0.0001, 0.0009, 0.003, 0.003, 0.07, 0.4, 3.0, 42.0};
    const size_t nd = sizeof d / sizeof d[0];
    for (size_t i = 0; i < nd; i++)
        srv_metrics_observe(m, i % 2 ? SRV_ROUTE_JOB_GET : SRV_ROUTE_HEALTHZ, i < 6 ? 200 : 404,
                            d[i]);
    srv_metrics_observe(m, SRV_ROUTE_NONE, 418, 0.0);
    srv_metrics_add_pairs(m, 123);
    srv_metrics_gauges g = {1, 2, 3, 4, 5, 6, 7};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(srv_metrics_write(m, &g, f), 0);
    fclose(f);
    ck_assert(metric(text, "delift_http_requests_total{method=\"GET\",route=\"/healthz\","
                           "status=\"200\"}") == 3);
    ck_assert(metric(text, "delift_http_requests_total{method=\"GET\",route="
                           "\"/v1/selections/{id}\",status=\"404\"}") == 1);
    ck_assert(metric(text, "delift_http_requests_total{method=\"\",route=\"unmatched\","
                           "status=\"other\"}") == 1);
    /* Cumulative buckets against a brute-force count of the observations. */
    static const char *const le[] = {"0.0005", "0.001", "0.005", "0.1", "0.5", "5", "10"};
    static const double bound[] = {0.0005, 0.001, 0.005, 0.1, 0.5, 5, 10};
    for (size_t b = 0; b < sizeof bound / sizeof bound[0]; b++) {
        double want = 1; /* the 0.0 observation */
        for (size_t i = 0; i < nd; i++)
            want += d[i] <= bound[b];
        char name[96];
        snprintf(name, sizeof name, "delift_http_request_duration_seconds_bucket{le=\"%s\"}",
                 le[b]);
        ck_assert_msg(metric(text, name) == want, "%s: %g, want %g", name, metric(text, name),
                      want);
    }
    ck_assert(metric(text, "delift_http_request_duration_seconds_bucket{le=\"+Inf\"}") == 9);
    ck_assert(metric(text, "delift_http_request_duration_seconds_count") == 9);
    ck_assert(metric(text, "delift_queue_depth") == 6);
    ck_assert(metric(text, "delift_jobs{state=\"cancelled\"}") == 5);
    ck_assert(metric(text, "delift_pairs_scored_total") == 123);
    free(text);
    srv_metrics_free(m);
    srv_metrics_free(NULL);
}
END_TEST

/* ---- dataset store -------------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/check_srv.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                            : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

static int count_files(const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, sub);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static dl_status upload(srv_store *s, const char *text, size_t chunk, int *created, json_t **sum,
                        dl_error *e)
{
    srv_upload *u;
    dl_status st = srv_upload_begin(s, &u, e);
    ck_assert_int_eq(st, DL_OK);
    size_t n = strlen(text);
    for (size_t off = 0; off < n; off += chunk)
        ck_assert_int_eq(srv_upload_write(u, text + off, off + chunk > n ? n - off : chunk, e),
                         DL_OK);
    ck_assert_int_eq(srv_upload_bytes(u), (int64_t)n);
    return srv_upload_finish(u, created, sum, e);
}

static const char pool_text[] = "{\"instruction\":\"a\",\"output\":\"b\"}\n"
                                "{\"prompt\":\"ignored\",\"instruction\":\"c\",\"output\":\"d\"}\n"
                                "{\"instruction\":\"e\",\"input\":\"f\",\"output\":\"g\"}\n";

START_TEST(test_store)
{
    make_tmpdir();
    srv_store *s;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(srv_store_open(tmpdir, &s, &e), DL_OK);
    int created = -1;
    json_t *sum = NULL;
    ck_assert_int_eq(upload(s, pool_text, 7, &created, &sum, &e), DL_OK);
    ck_assert_int_eq(created, 1);
    uint8_t d[32];
    char hex[65];
    dl_sha256(pool_text, strlen(pool_text), d); /* one shot vs the streamed digest */
    dl_sha256_hex(d, hex);
    ck_assert_str_eq(json_string_value(json_object_get(sum, "id")), hex);
    ck_assert_int_eq(json_integer_value(json_object_get(sum, "records")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(sum, "bytes")), (json_int_t)strlen(pool_text));
    json_decref(sum);
    ck_assert_int_eq(upload(s, pool_text, 1000, &created, &sum, &e), DL_OK);
    ck_assert_int_eq(created, 0);
    ck_assert_str_eq(json_string_value(json_object_get(sum, "id")), hex);
    json_decref(sum);
    ck_assert_int_eq(srv_store_count(s), 1);
    ck_assert_int_eq(count_files("tmp"), 0);

    /* malformed: the line and field of the client's upload, nothing kept */
    dl_error_clear(&e);
    ck_assert_int_eq(upload(s, "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":1,"
                               "\"output\":\"x\"}\n", 5, &created, &sum, &e), DL_ERR_INPUT);
    ck_assert_ptr_null(sum);
    ck_assert_int_eq(e.line, 2);
    ck_assert_str_eq(e.field, "instruction");
    ck_assert_ptr_null(strstr(e.file, tmpdir));
    dl_error_clear(&e);
    ck_assert_int_eq(upload(s, "", 1, &created, &sum, &e), DL_ERR_INPUT);
    ck_assert_int_eq(count_files("tmp"), 0);
    ck_assert_int_eq(count_files("datasets"), 2);

    char path[4200];
    ck_assert_int_eq(srv_store_path(s, hex, path, sizeof path, NULL), DL_OK);
    ck_assert_int_eq(srv_store_path(s, "nope", path, sizeof path, NULL), DL_ERR_NOT_FOUND);
    ck_assert_int_eq(srv_store_get(s, "../../etc", &sum, NULL), DL_ERR_NOT_FOUND);
    json_t *list;
    ck_assert_int_eq(srv_store_list(s, &list, NULL), DL_OK);
    ck_assert_uint_eq(json_array_size(list), 1);
    json_decref(list);
    ck_assert_int_eq(srv_store_delete(s, hex, NULL), DL_OK);
    ck_assert_int_eq(srv_store_delete(s, hex, NULL), DL_ERR_NOT_FOUND);
    ck_assert_int_eq(count_files("datasets"), 0);
    srv_store_free(s);

    /* crash leftovers are cleaned at open: an upload in tmp/, a data file
     * without its summary, a half-written summary */
    char f[600];
    static const char *const junk[] = {
        "tmp/upload-abc123",
        "datasets/00000000000000000000000000000000000000000000000000000000000000ab.jsonl",
        "datasets/00000000000000000000000000000000000000000000000000000000000000ab.json.Xy12Zq"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "%s/%s", tmpdir, junk[i]);
        FILE *fp = fopen(f, "w");
        ck_assert_ptr_nonnull(fp);
        fclose(fp);
    }
    ck_assert_int_eq(srv_store_open(tmpdir, &s, &e), DL_OK);
    ck_assert_int_eq(count_files("tmp"), 0);
    ck_assert_int_eq(count_files("datasets"), 0);
    srv_store_free(s);
    srv_store_free(NULL);
    rm_rf(tmpdir);
}
END_TEST

/* ---- job table (no executor: jobs stay queued) ----------------------------------------- */

static srv_jobs *jobs_open(srv_store *s)
{
    srv_jobs_config c = {.data_dir = tmpdir, .workers = 1, .queue_max = 2, .store = s};
    srv_jobs *j = NULL;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(srv_jobs_open(&c, &j, &e) == DL_OK, "%s", e.message);
    return j;
}

static json_t *norm_spec(const char *pool, int budget)
{
    json_t *in = json_pack("{s:s, s:s, s:i, s:s}", "model", "m", "stage", "instruction",
                           "budget", budget, "pool", pool);
    json_t *out = NULL;
    ck_assert_int_eq(srv_spec_validate(in, NULL, NULL, &out, NULL), DL_OK);
    json_decref(in);
    return out;
}

static dl_status create(srv_jobs *j, json_t *spec, const char *key, unsigned *http, char *id,
                        int *replayed)
{
    json_t *job = NULL;
    int rep = 0;
    dl_error e;
    dl_error_clear(&e);
    dl_status st = srv_jobs_create(j, spec, key, &job, &rep, http, &e);
    if (st == DL_OK) {
        snprintf(id, 64, "%s", json_string_value(json_object_get(job, "id")));
        ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "queued");
    } else {
        ck_assert_ptr_null(job);
    }
    if (replayed)
        *replayed = rep;
    json_decref(job);
    json_decref(spec);
    return st;
}

static const char *state(srv_jobs *j, const char *id, char *buf)
{
    json_t *job;
    ck_assert_int_eq(srv_jobs_get(j, id, &job, NULL), DL_OK);
    snprintf(buf, 32, "%s", json_string_value(json_object_get(job, "state")));
    json_decref(job);
    return buf;
}

START_TEST(test_jobs_table)
{
    make_tmpdir();
    srv_store *s;
    ck_assert_int_eq(srv_store_open(tmpdir, &s, NULL), DL_OK);
    int created;
    json_t *sum;
    ck_assert_int_eq(upload(s, pool_text, 64, &created, &sum, NULL), DL_OK);
    char pool[65], a[64], b[64], c[64], buf[32];
    snprintf(pool, sizeof pool, "%s", json_string_value(json_object_get(sum, "id")));
    json_decref(sum);

    srv_jobs *j = jobs_open(s);
    ck_assert(!srv_jobs_can_run(j));
    unsigned http = 0;
    int rep = -1;
    ck_assert_int_eq(create(j, norm_spec(pool, 2), "key-1", &http, a, &rep), DL_OK);
    ck_assert_uint_eq(http, 202);
    ck_assert_int_eq(rep, 0);
    ck_assert_int_eq(create(j, norm_spec(pool, 2), "key-1", &http, b, &rep), DL_OK);
    ck_assert_int_eq(rep, 1);
    ck_assert_str_eq(a, b);
    ck_assert_int_eq(create(j, norm_spec(pool, 3), "key-1", &http, b, NULL), DL_ERR_USAGE);
    ck_assert_uint_eq(http, 422);
    ck_assert_int_eq(create(j, norm_spec("nope", 3), NULL, &http, b, NULL), DL_ERR_NOT_FOUND);
    ck_assert_uint_eq(http, 404);
    ck_assert_int_eq(create(j, norm_spec(pool, 3), NULL, &http, b, NULL), DL_OK);
    ck_assert_int_eq(create(j, norm_spec(pool, 4), NULL, &http, c, NULL), DL_ERR_USAGE);
    ck_assert_uint_eq(http, 429); /* queue-max 2 */
    ck_assert_int_eq(srv_jobs_dataset_users(j, pool), 2);
    ck_assert_int_eq(srv_jobs_dataset_users(j, "other"), 0);

    json_t *job;
    ck_assert_int_eq(srv_jobs_cancel(j, b, &job, &http, NULL), DL_OK);
    ck_assert_uint_eq(http, 200);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "cancelled");
    json_decref(job);
    ck_assert_int_eq(srv_jobs_cancel(j, b, &job, &http, NULL), DL_ERR_USAGE);
    ck_assert_uint_eq(http, 409);
    ck_assert_int_eq(srv_jobs_cancel(j, "jnope", &job, &http, NULL), DL_ERR_NOT_FOUND);
    ck_assert_uint_eq(http, 404);
    ck_assert_int_eq(srv_jobs_output(j, a, SRV_OUT_RANKING, buf, sizeof buf, &http, NULL),
                     DL_ERR_USAGE);
    ck_assert_uint_eq(http, 409);
    ck_assert_int_eq(srv_jobs_get(j, "jnope", &job, NULL), DL_ERR_NOT_FOUND);
    srv_jobs_free(j);

    /* A crash while jobs ran: a is put back in the queue, c (whose cancel
     * was asked for) ends cancelled. */
    j = jobs_open(s);
    ck_assert_int_eq(create(j, norm_spec(pool, 5), NULL, &http, c, NULL), DL_OK);
    srv_jobs_free(j);
    char db[400], sql[600];
    snprintf(db, sizeof db, "%s/jobs.db", tmpdir);
    snprintf(sql, sizeof sql, "UPDATE jobs SET state='running' WHERE id='%s';"
             "UPDATE jobs SET state='running', cancel_requested=1 WHERE id='%s';", a, c);
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    j = jobs_open(s);
    ck_assert_str_eq(state(j, a, buf), "queued");
    ck_assert_str_eq(state(j, b, buf), "cancelled");
    ck_assert_str_eq(state(j, c, buf), "cancelled");
    srv_metrics_gauges g;
    memset(&g, 0, sizeof g);
    srv_jobs_gauges(j, &g);
    ck_assert_int_eq(g.queue_depth, 1);
    ck_assert_int_eq(g.jobs_queued, 1);
    ck_assert_int_eq(g.jobs_cancelled, 2);
    json_t *list;
    ck_assert_int_eq(srv_jobs_list(j, 10, &list, NULL), DL_OK);
    ck_assert_uint_eq(json_array_size(list), 3);
    /* newest first */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "id")), c);
    json_decref(list);
    srv_jobs_free(j);
    srv_jobs_free(NULL);
    srv_store_free(s);
    rm_rf(tmpdir);
}
END_TEST

static Suite *srv_suite(void)
{
    Suite *s = suite_create("srv");
    TCase *tc = tcase_create("parsers");
    tcase_add_loop_test(tc, test_route_table, 0, (int)(sizeof route_cases / sizeof route_cases[0]));
    tcase_add_test(tc, test_route_details);
    tcase_add_test(tc, test_auth_keys);
    tcase_add_test(tc, test_auth_ct_equal);
    tcase_add_loop_test(tc, test_spec_table, 0, (int)(sizeof spec_cases / sizeof spec_cases[0]));
    tcase_add_test(tc, test_spec_normalised);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_error_members);
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_metrics);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("storage");
    tcase_set_timeout(st, 60);
    tcase_add_test(st, test_store);
    tcase_add_test(st, test_jobs_table);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    return dl_test_run(srv_suite());
}
