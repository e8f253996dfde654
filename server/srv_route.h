/* srv_route.h: the routing table of delift-server.
 *
 * A route is a method and a path pattern whose segments are literals or the
 * placeholder "{id}".  Matching is exact (no trailing slash, no "." or ".."
 * segments, no percent-decoding: ids are plain [A-Za-z0-9_-] strings).  The
 * query string, if any, must already be cut off by the caller (libmicrohttpd
 * does that).  Pure functions over borrowed strings: reentrant, no allocation.
 */
#ifndef SRV_ROUTE_H
#define SRV_ROUTE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum srv_route_id {
    SRV_ROUTE_HEALTHZ = 0,
    SRV_ROUTE_READYZ,
    SRV_ROUTE_METRICS,
    SRV_ROUTE_MODELS,
    SRV_ROUTE_DATASET_CREATE,
    SRV_ROUTE_DATASET_LIST,
    SRV_ROUTE_DATASET_GET,
    SRV_ROUTE_DATASET_DELETE,
    SRV_ROUTE_JOB_CREATE,
    SRV_ROUTE_JOB_LIST,
    SRV_ROUTE_JOB_GET,
    SRV_ROUTE_JOB_DELETE,       /* DELETE /v1/selections/{id}: cancel */
    SRV_ROUTE_JOB_CANCEL,       /* POST /v1/selections/{id}/cancel */
    SRV_ROUTE_JOB_RESULT,       /* ranking JSON */
    SRV_ROUTE_JOB_RECORDS,      /* selected records, JSONL */
    SRV_ROUTE_JOB_MANIFEST,
    SRV_ROUTE_COUNT,
    SRV_ROUTE_NONE = SRV_ROUTE_COUNT /* unmatched: 404 or 405 */
} srv_route_id;

/* Longest id a placeholder accepts (bytes, without the NUL). */
#define SRV_ROUTE_ID_MAX 64

typedef enum srv_match_status {
    SRV_MATCH_OK = 0,        /* route and id filled */
    SRV_MATCH_NOT_FOUND,     /* no pattern has this path */
    SRV_MATCH_BAD_METHOD     /* the path exists, not with this method: 405 */
} srv_match_status;

typedef struct srv_match {
    srv_route_id route;
    char id[SRV_ROUTE_ID_MAX + 1]; /* the "{id}" segment, "" when none */
    char allow[64];                /* on SRV_MATCH_BAD_METHOD: "GET, DELETE" */
} srv_match;

/* Matches method and path (both NUL-terminated, borrowed).  Fills *m on
 * every outcome (route SRV_ROUTE_NONE unless SRV_MATCH_OK). */
srv_match_status srv_route_match(const char *method, const char *path, srv_match *m);

/* The route's pattern for logs and metrics labels ("/v1/datasets/{id}"),
 * "unmatched" for SRV_ROUTE_NONE.  Borrowed static string. */
const char *srv_route_pattern(srv_route_id route);

/* The route's method ("GET", ...); "" for SRV_ROUTE_NONE.  Static string. */
const char *srv_route_method(srv_route_id route);

/* Nonzero for routes that need no API key (/healthz, /readyz). */
int srv_route_is_open(srv_route_id route);

/* Nonzero when s (n bytes) is a valid id: 1..SRV_ROUTE_ID_MAX bytes of
 * [A-Za-z0-9_-]. */
int srv_route_id_valid(const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SRV_ROUTE_H */
