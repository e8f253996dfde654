/* dl_file.h: files that appear whole or not at all.
 *
 * A file being written goes to a temporary name beside its final path (same
 * directory, so rename() cannot cross file systems) and appears at the path
 * only on commit: fsync, rename over the path, fsync of the directory.  A
 * failure or an abort removes the temporary file, so no partial file is ever
 * left behind.  Temporary names are "<path>.tmp.<pid>.<n>".
 */
#ifndef DL_FILE_H
#define DL_FILE_H

#include <stddef.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One file being written.  Not thread-safe per object. */
typedef struct dl_file_atomic {
    int fd;
    char *path;     /* owned copies */
    char *tmp_path;
} dl_file_atomic;

/* Creates the temporary file (O_EXCL).  DL_ERR_USAGE for an empty path,
 * DL_ERR_IO when the directory refuses it. */
dl_status dl_file_atomic_begin(dl_file_atomic *a, const char *path, dl_error *err);
/* Appends n bytes; DL_ERR_IO naming the final path on failure. */
dl_status dl_file_atomic_write(dl_file_atomic *a, const void *p, size_t n, dl_error *err);
/* fsyncs, renames over path and fsyncs the directory; aborts on failure. */
dl_status dl_file_atomic_commit(dl_file_atomic *a, dl_error *err);
/* Removes the temporary file; safe after commit and on a zeroed object. */
void dl_file_atomic_abort(dl_file_atomic *a);

/* The whole sequence for one buffer. */
dl_status dl_file_write_atomic(const char *path, const void *data, size_t n, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DL_FILE_H */
