/* srv_store.c: the dataset store (see srv_store.h). */
#include "config.h"

#include "srv_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dl_file.h"
#include "dl_sha256.h"
#include "rec.h"
#include "srv_route.h"

#define PATH_MAX_LEN 4096

struct srv_store {
    char root[PATH_MAX_LEN];     /* datasets/ */
    char tmp[PATH_MAX_LEN];      /* tmp/ */
    pthread_mutex_t mu;          /* publish / list / delete */
    pthread_mutex_t ref_mu;      /* srv_store_lock */
};

struct srv_upload {
    srv_store *store;
    int fd;
    char path[PATH_MAX_LEN + 32];
    dl_sha256_ctx sha;
    int64_t bytes;
};

void srv_time_rfc3339(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

dl_status srv_dir_sync(const char *path, dl_error *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return dl_error_set(err, DL_ERR_IO, "cannot open a directory to sync: %s",
                            strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0)
        return dl_error_set(err, DL_ERR_IO, "fsync of a directory failed: %s", strerror(errno));
    return DL_OK;
}

static dl_status write_all(int fd, const void *data, size_t n, dl_error *err)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dl_error_set(err, DL_ERR_IO, "write failed: %s",
                                w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
    }
    return DL_OK;
}

static dl_status make_dir(const char *path, dl_error *err)
{
    if (mkdir(path, 0750) != 0 && errno != EEXIST)
        return dl_error_set(err, DL_ERR_IO, "cannot create a data directory: %s",
                            strerror(errno));
    return DL_OK;
}

/* Id of a file name "<64 hex>.<ext>", or 0 when the name is not one. */
static int name_id(const char *name, const char *ext, char id[65])
{
    size_t n = strlen(name), e = strlen(ext);
    if (n != 64 + 1 + e || name[64] != '.' || strcmp(name + 65, ext) != 0)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return 0;
    memcpy(id, name, 64);
    id[64] = '\0';
    return 1;
}

/* Empties tmp/ and removes data files that never got a summary. */
static void store_recover(srv_store *s)
{
    char path[PATH_MAX_LEN * 2];
    DIR *d = opendir(s->tmp);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", s->tmp, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    d = opendir(s->root);
    while (d && (e = readdir(d))) {
        char id[65];
        struct stat st;
        if (!name_id(e->d_name, "jsonl", id)) {
            /* Anything but a data file or a summary is a leftover of an
             * interrupted dl_file_write_atomic ("<id>.json.tmp.<pid>.<n>"). */
            if (e->d_name[0] != '.' && !name_id(e->d_name, "json", id)) {
                snprintf(path, sizeof path, "%s/%s", s->root, e->d_name);
                unlink(path);
            }
            continue;
        }
        snprintf(path, sizeof path, "%s/%s.json", s->root, id);
        if (stat(path, &st) != 0) {
            snprintf(path, sizeof path, "%s/%s", s->root, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
}

dl_status srv_store_open(const char *data_dir, srv_store **out, dl_error *err)
{
    *out = NULL;
    srv_store *s = calloc(1, sizeof *s);
    if (!s)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (snprintf(s->root, sizeof s->root, "%s/datasets", data_dir) >= (int)sizeof s->root ||
        snprintf(s->tmp, sizeof s->tmp, "%s/tmp", data_dir) >= (int)sizeof s->tmp) {
        free(s);
        return dl_error_set(err, DL_ERR_USAGE, "data directory path too long");
    }
    dl_status st = make_dir(data_dir, err);
    if (st == DL_OK)
        st = make_dir(s->root, err);
    if (st == DL_OK)
        st = make_dir(s->tmp, err);
    if (st != DL_OK) {
        free(s);
        return st;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->ref_mu, NULL);
    store_recover(s);
    *out = s;
    return DL_OK;
}

void srv_store_free(srv_store *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->ref_mu);
    free(s);
}

void srv_store_lock(srv_store *s)
{
    pthread_mutex_lock(&s->ref_mu);
}

void srv_store_unlock(srv_store *s)
{
    pthread_mutex_unlock(&s->ref_mu);
}

dl_status srv_upload_begin(srv_store *s, srv_upload **out, dl_error *err)
{
    *out = NULL;
    srv_upload *u = calloc(1, sizeof *u);
    if (!u)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    u->store = s;
    snprintf(u->path, sizeof u->path, "%s/upload-XXXXXX", s->tmp);
    u->fd = mkstemp(u->path);
    if (u->fd < 0) {
        free(u);
        return dl_error_set(err, DL_ERR_IO, "cannot create an upload file: %s",
                            strerror(errno));
    }
    dl_sha256_init(&u->sha);
    *out = u;
    return DL_OK;
}

dl_status srv_upload_write(srv_upload *u, const void *data, size_t n, dl_error *err)
{
    dl_status st = write_all(u->fd, data, n, err);
    if (st != DL_OK)
        return st;
    dl_sha256_update(&u->sha, data, n);
    u->bytes += (int64_t)n;
    return DL_OK;
}

int64_t srv_upload_bytes(const srv_upload *u)
{
    return u->bytes;
}

void srv_upload_abort(srv_upload *u)
{
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    if (u->path[0])
        unlink(u->path);
    free(u);
}

/* Reads the whole temporary file with the records reader; builds the
 * summary (without id and created). */
static dl_status upload_validate(srv_upload *u, json_t **summary, dl_error *err)
{
    FILE *f = fopen(u->path, "rb");
    if (!f)
        return dl_error_set(err, DL_ERR_IO, "cannot reopen an upload: %s", strerror(errno));
    rec_reader *r = NULL;
    /* "upload" is what errors call the file: the client's, not our path. */
    dl_status st = rec_reader_open_stream(f, "upload", NULL, &r, err);
    const rec_record *rec = NULL;
    while (st == DL_OK && (st = rec_reader_next(r, &rec, err)) == DL_OK && rec)
        ;
    if (st == DL_OK) {
        char desc[1024];
        const rec_map *m = rec_reader_map(r);
        rec_map_describe(m, desc, sizeof desc);
        *summary = json_pack("{s:I, s:I, s:s, s:{s:s, s:s}}", "records",
                             (json_int_t)rec_reader_n_records(r), "bytes",
                             (json_int_t)u->bytes, "form", rec_form_name(rec_reader_form(r)),
                             "mapping", "shape", rec_shape_name(m->shape), "description", desc);
        if (!*summary)
            st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    rec_reader_free(r);
    fclose(f);
    return st;
}

dl_status srv_upload_finish(srv_upload *u, int *created, json_t **summary, dl_error *err)
{
    srv_store *s = u->store;
    *summary = NULL;
    *created = 0;
    dl_status st = DL_OK;
    if (fsync(u->fd) != 0)
        st = dl_error_set(err, DL_ERR_IO, "fsync of an upload failed: %s", strerror(errno));
    close(u->fd);
    u->fd = -1;
    json_t *sum = NULL;
    if (st == DL_OK)
        st = upload_validate(u, &sum, err);
    uint8_t digest[DL_SHA256_DIGEST_LEN];
    char id[DL_SHA256_HEX_LEN], data[PATH_MAX_LEN + 80], meta[PATH_MAX_LEN + 80];
    dl_sha256_final(&u->sha, digest);
    dl_sha256_hex(digest, id);
    snprintf(data, sizeof data, "%s/%s.jsonl", s->root, id);
    snprintf(meta, sizeof meta, "%s/%s.json", s->root, id);
    if (st != DL_OK) {
        srv_upload_abort(u);
        json_decref(sum);
        return st;
    }
    pthread_mutex_lock(&s->mu);
    json_t *old = NULL;
    json_error_t jerr;
    if ((old = json_load_file(meta, 0, &jerr)) != NULL) {
        /* Same bytes already stored: same id, nothing new. */
        pthread_mutex_unlock(&s->mu);
        srv_upload_abort(u);
        json_decref(sum);
        *summary = old;
        return DL_OK;
    }
    char when[32];
    srv_time_rfc3339(when, sizeof when);
    json_object_set_new(sum, "id", json_string(id));
    json_object_set_new(sum, "created", json_string(when));
    char *text = json_dumps(sum, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (st == DL_OK && rename(u->path, data) != 0)
        st = dl_error_set(err, DL_ERR_IO, "cannot publish an upload: %s", strerror(errno));
    else if (st == DL_OK)
        u->path[0] = '\0'; /* renamed: the name may be reused by another upload */
    if (st == DL_OK)
        st = srv_dir_sync(s->root, err);
    if (st == DL_OK)
        st = dl_file_write_atomic(meta, text, strlen(text), err);
    if (st != DL_OK)
        unlink(data);
    pthread_mutex_unlock(&s->mu);
    free(text);
    srv_upload_abort(u);
    if (st != DL_OK) {
        json_decref(sum);
        return st;
    }
    *created = 1;
    *summary = sum;
    return DL_OK;
}

dl_status srv_store_get(srv_store *s, const char *id, json_t **summary, dl_error *err)
{
    *summary = NULL;
    if (!srv_route_id_valid(id, strlen(id)))
        return dl_error_set(err, DL_ERR_NOT_FOUND, "no such dataset");
    char meta[PATH_MAX_LEN + 80];
    snprintf(meta, sizeof meta, "%s/%s.json", s->root, id);
    pthread_mutex_lock(&s->mu);
    json_error_t jerr;
    *summary = json_load_file(meta, 0, &jerr);
    pthread_mutex_unlock(&s->mu);
    if (!*summary)
        return dl_error_set(err, DL_ERR_NOT_FOUND, "no such dataset");
    return DL_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ids of every dataset (sorted); *ids owned (free each and the array). */
static dl_status list_ids(srv_store *s, char ***ids, size_t *n, dl_error *err)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    DIR *d = opendir(s->root);
    if (!d)
        return dl_error_set(err, DL_ERR_IO, "cannot list datasets: %s", strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        char id[65];
        if (!name_id(e->d_name, "json", id))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(*ids, cap * sizeof *p);
            if (!p)
                break;
            *ids = p;
        }
        if (!((*ids)[*n] = strdup(id)))
            break;
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*ids, *n, sizeof **ids, cmp_str);
    return DL_OK;
}

dl_status srv_store_list(srv_store *s, json_t **list, dl_error *err)
{
    *list = json_array();
    if (!*list)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    char **ids;
    size_t n;
    pthread_mutex_lock(&s->mu);
    dl_status st = list_ids(s, &ids, &n, err);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        json_t *sum;
        if (st == DL_OK && srv_store_get(s, ids[i], &sum, NULL) == DL_OK)
            json_array_append_new(*list, sum);
        free(ids[i]);
    }
    free(ids);
    return st;
}

int64_t srv_store_count(srv_store *s)
{
    char **ids;
    size_t n;
    pthread_mutex_lock(&s->mu);
    dl_status st = list_ids(s, &ids, &n, NULL);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return st == DL_OK ? (int64_t)n : 0;
}

dl_status srv_store_delete(srv_store *s, const char *id, dl_error *err)
{
    if (!srv_route_id_valid(id, strlen(id)))
        return dl_error_set(err, DL_ERR_NOT_FOUND, "no such dataset");
    char meta[PATH_MAX_LEN + 80], data[PATH_MAX_LEN + 80];
    snprintf(meta, sizeof meta, "%s/%s.json", s->root, id);
    snprintf(data, sizeof data, "%s/%s.jsonl", s->root, id);
    pthread_mutex_lock(&s->mu);
    /* Summary first: the dataset stops existing at once, and a crash
     * leaves only an orphan data file that the next open removes. */
    dl_status st = DL_OK;
    if (unlink(meta) != 0)
        st = errno == ENOENT ? dl_error_set(err, DL_ERR_NOT_FOUND, "no such dataset")
                             : dl_error_set(err, DL_ERR_IO, "cannot delete a dataset: %s",
                                            strerror(errno));
    if (st == DL_OK) {
        unlink(data);
        st = srv_dir_sync(s->root, err);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

dl_status srv_store_path(srv_store *s, const char *id, char *buf, size_t n, dl_error *err)
{
    if (!srv_route_id_valid(id, strlen(id)))
        return dl_error_set(err, DL_ERR_NOT_FOUND, "no such dataset");
    char meta[PATH_MAX_LEN + 80];
    snprintf(meta, sizeof meta, "%s/%s.json", s->root, id);
    snprintf(buf, n, "%s/%s.jsonl", s->root, id);
    if (access(meta, F_OK) != 0)
        return dl_error_set(err, DL_ERR_NOT_FOUND, "no such dataset");
    return DL_OK;
}
