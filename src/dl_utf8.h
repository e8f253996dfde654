/* dl_utf8.h: strict UTF-8 validation and code point counting.
 *
 * Strict means RFC 3629: no overlong forms, no UTF-16 surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequences, no stray
 * continuation bytes.  NUL (U+0000) is valid UTF-8; callers that forbid it
 * check for it themselves.
 *
 * Thread-safety: all functions are pure and reentrant.
 */
#ifndef DL_UTF8_H
#define DL_UTF8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 1 when the n bytes at s are valid UTF-8, 0 otherwise; on failure
 * *bad_at (when non-NULL) receives the offset of the first byte of the
 * invalid sequence.  s may be NULL when n == 0. */
int dl_utf8_valid(const void *s, size_t n, size_t *bad_at);

/* Number of code points in n bytes of VALID UTF-8 (counts the bytes that are
 * not continuation bytes, so it is only meaningful after dl_utf8_valid). */
size_t dl_utf8_count(const void *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* DL_UTF8_H */
