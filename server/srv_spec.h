/* srv_spec.h: the selection job spec and the request headers delift-server
 * parses itself (Idempotency-Key, X-Request-Id).
 *
 * A job spec is the JSON body of POST /v1/selections:
 *   model     string, required: a name given with --model
 *   stage     "instruction" | "task" | "continual", required
 *   budget    integer >= 1 (records) or a number in (0, 1) (a fraction)
 *   function  optional selector name (sel_fn_kind_parse: "fl", "flmi",
 *             "flcg", ...); default by stage: fl, flmi, flcg
 *   pool      dataset id, required
 *   target    dataset id: required for stage task, refused otherwise
 *   existing  dataset id: required for stage continual, refused otherwise
 *   pairs     "auto" (default) | "all" | "knn:K" with 1 <= K <= 4096
 *   options   optional object of at most 32 members, each a string (at
 *             most 1024 bytes), number or boolean, keys 1..64 bytes of
 *             [A-Za-z0-9_]; passed to the executor as they are
 * Any other member is an error.  Validation returns the NORMALISED spec
 * (defaults filled in, every member present, target/existing null when
 * absent), whose compact, key-sorted dump is what the idempotency check
 * hashes, so that {"budget":10,"stage":...} and a reordered copy match.
 *
 * Errors are DL_ERR_USAGE with err->field naming the member ("budget",
 * "options.seed").  Pure functions: reentrant.
 */
#ifndef SRV_SPEC_H
#define SRV_SPEC_H

#include <jansson.h>
#include <stddef.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Validates spec (borrowed).  model_known(ctx, name) says whether a model
 * name is configured (NULL: every name is accepted).  On success *out is a
 * new normalised spec (owned: json_decref). */
dl_status srv_spec_validate(const json_t *spec, int (*model_known)(void *ctx, const char *name),
                            void *ctx, json_t **out, dl_error *err);

/* SHA-256 hex (65 bytes with the NUL) of the compact, key-sorted dump of a
 * normalised spec.  DL_ERR_NOMEM only. */
dl_status srv_spec_hash(const json_t *spec, char hex[65], dl_error *err);

/* Idempotency-Key: 1..255 bytes of visible ASCII (0x21..0x7e).  NULL -> 0. */
int srv_spec_idem_key_valid(const char *key);

/* X-Request-Id from a client: 1..128 bytes of [A-Za-z0-9._-].  NULL -> 0. */
int srv_spec_request_id_valid(const char *id);

#ifdef __cplusplus
}
#endif

#endif /* SRV_SPEC_H */
