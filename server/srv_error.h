/* srv_error.h: HTTP error responses of delift-server.
 *
 * Every error the daemon returns has the body
 *   {"error":{"code":<http status>,"type":"<dl_status name>","message":"..."}}
 * The message is the dl_error's text without file-system paths (clients see
 * the field and line of their own upload, never our directories).
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

#ifdef __cplusplus
}
#endif

#endif /* SRV_ERROR_H */
