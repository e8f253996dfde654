/* srv_error.h: HTTP error responses of delift-server.
 *
 * Every error the daemon returns has the body
 *   {"error":{"code":<http status>,"type":"<dl_status name>","message":"..."}}
 * The message is the dl_error's text without file-system paths (clients see
 * the field and line of their own upload, never our directories).  When the
 * error has them, the inner object also carries "line", "column" (1-based)
 * and "field" as separate members, for programs.  I/O and internal errors
 * are reported as "internal error" only (their text may name our files).
 */
#ifndef SRV_ERROR_H
#define SRV_ERROR_H

#include <jansson.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* HTTP status for a library status: 400 usage/input, 404 not found,
 * 415 unsupported, 499-style cancel as 409, everything else 500. */
unsigned srv_error_http_status(dl_status code);

/* New JSON error body for err (owned by the caller; NULL only on OOM).
 * http_status 0 means "derive from err->code". */
json_t *srv_error_body_new(const dl_error *err, unsigned http_status);

/* New JSON error body with a message the caller vouches for (it must not
 * hold paths): for errors that have no dl_error (401, 405, 429, 503...).
 * Owned by the caller; NULL only on OOM. */
json_t *srv_error_body_msg(unsigned http_status, dl_status code, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* SRV_ERROR_H */
