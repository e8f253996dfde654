/* srv_auth.h: API keys (Authorization: Bearer) for delift-server.
 *
 * The key file holds one key per line; blank lines and lines starting with
 * '#' are ignored, surrounding spaces and a CR are trimmed.  A key is 16 to
 * 256 bytes of visible ASCII without spaces (the RFC 6750 token68 set is a
 * subset).  Keys are kept only as SHA-256 digests, and a presented token is
 * hashed and compared with every digest without an early exit, so the time
 * taken does not depend on where, or whether, a key matched.
 *
 * Thread-safety: a loaded srv_auth is read-only, shared by all threads.
 */
#ifndef SRV_AUTH_H
#define SRV_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SRV_AUTH_KEY_MIN 16
#define SRV_AUTH_KEY_MAX 256

typedef struct srv_auth srv_auth;

/* Reads the key file at path.  *out is owned (srv_auth_free).  Errors:
 * DL_ERR_NOT_FOUND / DL_ERR_IO for the file, DL_ERR_INPUT (with the line)
 * for a malformed key or a file without any key. */
dl_status srv_auth_load(const char *path, srv_auth **out, dl_error *err);

/* Keys from memory (text in the file's format, n bytes); same errors. */
dl_status srv_auth_load_text(const char *text, size_t n, srv_auth **out, dl_error *err);

void srv_auth_free(srv_auth *a); /* NULL is a no-op */

int64_t srv_auth_count(const srv_auth *a);

/* Extracts the token of an Authorization header value "Bearer <token>"
 * (scheme case-insensitive, one or more spaces, no trailing garbage).
 * On success returns 1 and sets *tok / *tok_len to the borrowed token inside
 * header; returns 0 for anything else (NULL header included). */
int srv_auth_bearer_parse(const char *header, const char **tok, size_t *tok_len);

/* Nonzero when the Authorization header value carries a configured key.
 * a NULL (no keys configured) allows everything. */
int srv_auth_check(const srv_auth *a, const char *header);

/* Constant-time equality of two n-byte buffers. */
int srv_auth_ct_equal(const uint8_t *x, const uint8_t *y, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SRV_AUTH_H */
