/* srv_route.c: the routing table (see srv_route.h). */
#include "config.h"

#include "srv_route.h"

#include <string.h>

typedef struct route_def {
    const char *method;
    const char *pattern;
    int open; /* no API key needed */
} route_def;

/* Indexed by srv_route_id. */
static const route_def routes[SRV_ROUTE_COUNT] = {
    [SRV_ROUTE_HEALTHZ] = {"GET", "/healthz", 1},
    [SRV_ROUTE_READYZ] = {"GET", "/readyz", 1},
    [SRV_ROUTE_METRICS] = {"GET", "/metrics", 0},
    [SRV_ROUTE_MODELS] = {"GET", "/v1/models", 0},
    [SRV_ROUTE_DATASET_CREATE] = {"POST", "/v1/datasets", 0},
    [SRV_ROUTE_DATASET_LIST] = {"GET", "/v1/datasets", 0},
    [SRV_ROUTE_DATASET_GET] = {"GET", "/v1/datasets/{id}", 0},
    [SRV_ROUTE_DATASET_DELETE] = {"DELETE", "/v1/datasets/{id}", 0},
    [SRV_ROUTE_JOB_CREATE] = {"POST", "/v1/selections", 0},
    [SRV_ROUTE_JOB_LIST] = {"GET", "/v1/selections", 0},
    [SRV_ROUTE_JOB_GET] = {"GET", "/v1/selections/{id}", 0},
    [SRV_ROUTE_JOB_DELETE] = {"DELETE", "/v1/selections/{id}", 0},
    [SRV_ROUTE_JOB_CANCEL] = {"POST", "/v1/selections/{id}/cancel", 0},
    [SRV_ROUTE_JOB_RESULT] = {"GET", "/v1/selections/{id}/result", 0},
    [SRV_ROUTE_JOB_RECORDS] = {"GET", "/v1/selections/{id}/records", 0},
    [SRV_ROUTE_JOB_MANIFEST] = {"GET", "/v1/selections/{id}/manifest", 0},
};

int srv_route_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > SRV_ROUTE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Matches path against pattern segment by segment; the "{id}" segment is
 * copied into id.  Returns 1 on a match. */
static int pattern_match(const char *pattern, const char *path, char *id)
{
    id[0] = '\0';
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");
        if (plen == 4 && !memcmp(p, "{id}", 4)) {
            if (!srv_route_id_valid(s, slen))
                return 0;
            memcpy(id, s, slen);
            id[slen] = '\0';
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
    }
    return *p == '\0' && *s == '\0';
}

srv_match_status srv_route_match(const char *method, const char *path, srv_match *m)
{
    char id[SRV_ROUTE_ID_MAX + 1];
    int path_seen = 0;
    m->route = SRV_ROUTE_NONE;
    m->id[0] = '\0';
    m->allow[0] = '\0';
    for (int r = 0; r < SRV_ROUTE_COUNT; r++) {
        if (!pattern_match(routes[r].pattern, path, id))
            continue;
        if (!strcmp(method, routes[r].method) ||
            (!strcmp(method, "HEAD") && !strcmp(routes[r].method, "GET"))) {
            m->route = (srv_route_id)r;
            memcpy(m->id, id, sizeof id);
            m->allow[0] = '\0';
            return SRV_MATCH_OK;
        }
        /* Collect the allowed methods for a 405's Allow header. */
        size_t used = strlen(m->allow);
        size_t need = strlen(routes[r].method) + (path_seen ? 2 : 0);
        if (used + need < sizeof m->allow) {
            if (path_seen)
                strcat(m->allow, ", ");
            strcat(m->allow, routes[r].method);
        }
        path_seen = 1;
    }
    return path_seen ? SRV_MATCH_BAD_METHOD : SRV_MATCH_NOT_FOUND;
}

const char *srv_route_pattern(srv_route_id route)
{
    return route < SRV_ROUTE_COUNT ? routes[route].pattern : "unmatched";
}

const char *srv_route_method(srv_route_id route)
{
    return route < SRV_ROUTE_COUNT ? routes[route].method : "";
}

int srv_route_is_open(srv_route_id route)
{
    return route < SRV_ROUTE_COUNT && routes[route].open;
}
