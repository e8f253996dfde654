/* dl_sha256.h: SHA-256 (FIPS 180-4), for content hashes of records.
 *
 * A small, dependency-free implementation: the records module hashes every
 * record's (instruction, input, output) so that duplicates can be found and
 * a selection can be checked against the pool it came from.  Tested against
 * the FIPS 180 example vectors and against sha256sum(1).
 *
 * Thread-safety: a context is used by one thread at a time; the one-shot
 * functions are reentrant.
 */
#ifndef DL_SHA256_H
#define DL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DL_SHA256_DIGEST_LEN 32
#define DL_SHA256_HEX_LEN 65 /* 64 hex digits and a NUL */

/* Caller-owned; no heap memory, nothing to free. */
typedef struct dl_sha256_ctx {
    uint32_t state[8];
    uint64_t n_bytes;  /* total bytes fed so far */
    uint8_t block[64]; /* pending partial block */
    size_t n_block;    /* bytes used in block */
} dl_sha256_ctx;

/* Starts a new digest in ctx. */
void dl_sha256_init(dl_sha256_ctx *ctx);

/* Feeds n bytes of data (data may be NULL when n == 0). */
void dl_sha256_update(dl_sha256_ctx *ctx, const void *data, size_t n);

/* Finishes the digest into out; ctx must be re-initialised before reuse. */
void dl_sha256_final(dl_sha256_ctx *ctx, uint8_t out[DL_SHA256_DIGEST_LEN]);

/* One-shot digest of n bytes. */
void dl_sha256(const void *data, size_t n, uint8_t out[DL_SHA256_DIGEST_LEN]);

/* Writes the digest as 64 lowercase hex digits and a NUL into hex. Returns hex. */
char *dl_sha256_hex(const uint8_t digest[DL_SHA256_DIGEST_LEN],
                    char hex[DL_SHA256_HEX_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* DL_SHA256_H */
