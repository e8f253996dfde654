/* dl_file.c: atomic file writing (see dl_file.h). */
#include "config.h"

#include "dl_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

dl_status dl_file_atomic_begin(dl_file_atomic *a, const char *path, dl_error *err)
{
    static unsigned counter; /* distinct names per call; O_EXCL catches any collision */
    memset(a, 0, sizeof *a);
    a->fd = -1;
    if (!path || !*path)
        return dl_error_set(err, DL_ERR_USAGE, "empty output path");
    size_t n = strlen(path);
    a->path = malloc(n + 1);
    a->tmp_path = malloc(n + 48);
    if (!a->path || !a->tmp_path) {
        free(a->path);
        free(a->tmp_path);
        memset(a, 0, sizeof *a);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    memcpy(a->path, path, n + 1);
    for (int attempt = 0; attempt < 100; attempt++) {
        /* Same directory as path, so rename() cannot cross file systems. */
        snprintf(a->tmp_path, n + 48, "%s.tmp.%ld.%u", path, (long)getpid(),
                 __atomic_fetch_add(&counter, 1u, __ATOMIC_RELAXED));
        a->fd = open(a->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (a->fd >= 0 || errno != EEXIST)
            break;
    }
    if (a->fd < 0) {
        int e = errno;
        free(a->path);
        free(a->tmp_path);
        memset(a, 0, sizeof *a);
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL,
                               "cannot create a temporary file beside it: %s", strerror(e));
    }
    return DL_OK;
}

dl_status dl_file_atomic_write(dl_file_atomic *a, const void *p, size_t n, dl_error *err)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(a->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dl_error_set_at(err, DL_ERR_IO, a->path, 0, 0, -1, NULL, "write failed: %s",
                                   w < 0 ? strerror(errno) : "no progress");
        b += w;
        n -= (size_t)w;
    }
    return DL_OK;
}

dl_status dl_file_atomic_commit(dl_file_atomic *a, dl_error *err)
{
    const char *what = NULL;
    if (fsync(a->fd) != 0)
        what = "fsync";
    else if (close(a->fd) != 0) {
        a->fd = -1;
        what = "close";
    } else {
        a->fd = -1;
        if (rename(a->tmp_path, a->path) != 0)
            what = "rename";
    }
    if (what) {
        int e = errno;
        dl_error_set_at(err, DL_ERR_IO, a->path, 0, 0, -1, NULL, "%s failed: %s", what,
                        strerror(e));
        dl_file_atomic_abort(a);
        return DL_ERR_IO;
    }
    /* Make the rename itself durable. */
    char *slash = strrchr(a->path, '/');
    int dfd;
    if (slash == a->path)
        dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    else if (slash) {
        *slash = '\0';
        dfd = open(a->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
    } else
        dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(a->tmp_path);
    a->tmp_path = NULL;
    dl_file_atomic_abort(a);
    return DL_OK;
}

void dl_file_atomic_abort(dl_file_atomic *a)
{
    if (!a || (!a->tmp_path && !a->path))
        return;
    if (a->fd >= 0 && a->tmp_path)
        close(a->fd);
    if (a->tmp_path)
        unlink(a->tmp_path);
    free(a->tmp_path);
    free(a->path);
    memset(a, 0, sizeof *a);
    a->fd = -1;
}

dl_status dl_file_write_atomic(const char *path, const void *data, size_t n, dl_error *err)
{
    dl_file_atomic a;
    dl_status st = dl_file_atomic_begin(&a, path, err);
    if (st != DL_OK)
        return st;
    if ((st = dl_file_atomic_write(&a, data, n, err)) != DL_OK) {
        dl_file_atomic_abort(&a);
        return st;
    }
    return dl_file_atomic_commit(&a, err);
}
