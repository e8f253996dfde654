/* srv_store.h: the dataset store of delift-server.
 *
 * Layout under the data directory:
 *   datasets/<id>.jsonl   the uploaded bytes, exactly as received
 *   datasets/<id>.json    its summary (written after the data file)
 *   tmp/                  uploads in progress; emptied when the store opens
 * where <id> is the lowercase hex SHA-256 of the uploaded bytes, so the
 * same bytes always get the same id.  An upload is streamed to a temporary
 * file as it arrives (never held in memory), hashed on the way, fsynced,
 * validated with the records reader (src/rec.h), then renamed into place
 * and the directory fsynced; a dataset exists once its summary exists.  A
 * data file without a summary (a crash between the two renames) is removed
 * at open.
 *
 * Summary (JSON): {"id", "records", "bytes", "form" ("jsonl"|"array"),
 * "mapping": {"shape", "description"}, "created" (RFC 3339, UTC)}.
 *
 * Thread-safety: every function may be called from any thread; the store
 * serialises the steps that publish, list and delete.  An srv_upload is
 * used by one thread at a time.
 */
#ifndef SRV_STORE_H
#define SRV_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct srv_store srv_store;
typedef struct srv_upload srv_upload;

/* Opens (creating as needed) the store under data_dir.  *out is owned
 * (srv_store_free).  DL_ERR_IO when the directories cannot be made. */
dl_status srv_store_open(const char *data_dir, srv_store **out, dl_error *err);
void srv_store_free(srv_store *s); /* NULL is a no-op */

/* Starts an upload (a new temporary file).  *out is owned: it ends with
 * srv_upload_finish or srv_upload_abort. */
dl_status srv_upload_begin(srv_store *s, srv_upload **out, dl_error *err);

/* Appends n bytes. DL_ERR_IO when the disk refuses them. */
dl_status srv_upload_write(srv_upload *u, const void *data, size_t n, dl_error *err);

int64_t srv_upload_bytes(const srv_upload *u);

/* Completes and frees u (whatever the outcome): fsync, validate, publish.
 * On DL_OK *created is 1 for a new dataset, 0 when the same bytes were
 * already stored, and *summary is the dataset's summary (owned).  Invalid
 * records give DL_ERR_INPUT with the line and field; nothing is left
 * behind on any error. */
dl_status srv_upload_finish(srv_upload *u, int *created, json_t **summary, dl_error *err);

/* Deletes the temporary file and frees u.  NULL is a no-op. */
void srv_upload_abort(srv_upload *u);

/* Summary of dataset id (owned), DL_ERR_NOT_FOUND when absent. */
dl_status srv_store_get(srv_store *s, const char *id, json_t **summary, dl_error *err);

/* A JSON array of every summary, sorted by id (owned). */
dl_status srv_store_list(srv_store *s, json_t **list, dl_error *err);

/* Removes dataset id; DL_ERR_NOT_FOUND when absent.  The caller checks
 * that no job uses it (see srv_jobs). */
dl_status srv_store_delete(srv_store *s, const char *id, dl_error *err);

/* Writes the path of dataset id's data file into buf (n bytes);
 * DL_ERR_NOT_FOUND when the dataset does not exist. */
dl_status srv_store_path(srv_store *s, const char *id, char *buf, size_t n, dl_error *err);

/* Number of stored datasets. */
int64_t srv_store_count(srv_store *s);

/* Serialises callers that must see "dataset exists" and act on it
 * atomically (job creation against deletion).  Not recursive. */
void srv_store_lock(srv_store *s);
void srv_store_unlock(srv_store *s);

/* fsyncs the directory at path. */
dl_status srv_dir_sync(const char *path, dl_error *err);

/* Now as RFC 3339 UTC ("2026-11-26T22:15:39Z") into buf (>= 21 bytes). */
void srv_time_rfc3339(char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* SRV_STORE_H */
