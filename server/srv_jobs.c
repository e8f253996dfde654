/* srv_jobs.c: durable jobs, queue and workers (see srv_jobs.h). */
#include "config.h"

#include "srv_jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "srv_error.h"
#include "srv_route.h"
#include "srv_spec.h"

#define PATH_LEN 4096
#define JOB_ID_LEN 26 /* "j" + 24 hex + NUL */

enum { CANCEL_NONE = 0, CANCEL_USER = 1, CANCEL_DRAIN = 2 };

/* One worker's running job; guarded by srv_jobs.mu except `cancel`. */
typedef struct job_slot {
    char id[JOB_ID_LEN];     /* "" when idle */
    atomic_int cancel;       /* what the executor polls */
    int reason;              /* CANCEL_* */
    char phase[32];
    int64_t done, total;
    double phase_start;      /* monotonic seconds */
    srv_jobs *owner;
} job_slot;

struct srv_jobs {
    srv_jobs_config cfg;
    char dir[PATH_LEN];      /* <data-dir>/jobs */
    sqlite3 *db;
    sqlite3_stmt *get_stmt;  /* SELECT of one job: the hot path, prepared once */
    pthread_mutex_t mu;      /* db, queue, slots, get_stmt */
    pthread_cond_t cv;
    char (*queue)[JOB_ID_LEN]; /* FIFO: queue[head .. head+n) */
    size_t q_head, q_n, q_cap;
    job_slot *slots;         /* cfg.workers */
    pthread_t *threads;
    int n_threads;
    int stopping;
};

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static dl_status db_fail(srv_jobs *j, dl_error *err)
{
    return dl_error_set(err, DL_ERR_IO, "job database: %s", sqlite3_errmsg(j->db));
}

/* Runs sql with text parameters (NULL binds NULL); returns DL_OK. */
static dl_status db_exec(srv_jobs *j, const char *sql, int n, const char *const *args,
                         dl_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(j, err);
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? DL_OK : db_fail(j, err);
}

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " state TEXT NOT NULL,"
    " spec TEXT NOT NULL,"
    " spec_hash TEXT NOT NULL,"
    " idem_key TEXT UNIQUE,"
    " pool TEXT NOT NULL, target TEXT, existing TEXT,"
    " error TEXT,"
    " created TEXT NOT NULL, started TEXT, finished TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);";

/* ---- queue (under mu) ---------------------------------------------------- */

static int queue_push(srv_jobs *j, const char *id)
{
    if (j->q_head + j->q_n == j->q_cap) {
        if (j->q_head > 0) { /* compact before growing */
            memmove(j->queue, j->queue + j->q_head, j->q_n * sizeof *j->queue);
            j->q_head = 0;
        }
        if (j->q_n == j->q_cap) {
            size_t cap = j->q_cap ? j->q_cap * 2 : 64;
            void *p = realloc(j->queue, cap * sizeof *j->queue);
            if (!p)
                return -1;
            j->queue = p;
            j->q_cap = cap;
        }
    }
    snprintf(j->queue[j->q_head + j->q_n++], JOB_ID_LEN, "%s", id);
    return 0;
}

static int queue_remove(srv_jobs *j, const char *id)
{
    for (size_t i = 0; i < j->q_n; i++) {
        if (strcmp(j->queue[j->q_head + i], id) != 0)
            continue;
        memmove(j->queue + j->q_head + i, j->queue + j->q_head + i + 1,
                (j->q_n - i - 1) * sizeof *j->queue);
        j->q_n--;
        return 1;
    }
    return 0;
}

static job_slot *slot_of(srv_jobs *j, const char *id)
{
    for (int i = 0; i < j->cfg.workers; i++)
        if (!strcmp(j->slots[i].id, id))
            return &j->slots[i];
    return NULL;
}

/* ---- files --------------------------------------------------------------- */

/* Removes path recursively (job directories only: no symlink following). */
static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[PATH_LEN + 256];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static dl_status fsync_path(const char *path, dl_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return dl_error_set(err, DL_ERR_INTERNAL, "the executor wrote no %s",
                            strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? DL_OK : dl_error_set(err, DL_ERR_IO, "fsync failed: %s", strerror(errno));
}

/* fsyncs the three outputs in out.tmp and renames it to out. */
static dl_status publish_outputs(const char *jobdir, dl_error *err)
{
    static const char *const names[] = {SRV_OUT_RANKING, SRV_OUT_RECORDS, SRV_OUT_MANIFEST};
    char tmp[PATH_LEN + 64], out[PATH_LEN + 64], f[PATH_LEN + 96];
    snprintf(tmp, sizeof tmp, "%s/out.tmp", jobdir);
    snprintf(out, sizeof out, "%s/out", jobdir);
    for (size_t i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "%s/%s", tmp, names[i]);
        dl_status st = fsync_path(f, err);
        if (st != DL_OK)
            return st;
    }
    dl_status st = srv_dir_sync(tmp, err);
    if (st != DL_OK)
        return st;
    rm_tree(out);
    if (rename(tmp, out) != 0)
        return dl_error_set(err, DL_ERR_IO, "cannot publish outputs: %s", strerror(errno));
    return srv_dir_sync(jobdir, err);
}

/* ---- rows -> JSON (under mu) --------------------------------------------- */

#define JOB_COLS "id, state, spec, error, created, started, finished, attempts, cancel_requested"

static json_t *col_json_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? json_string((const char *)s) : json_null();
}

static json_t *col_json_parsed(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    json_t *v = s ? json_loads((const char *)s, 0, NULL) : NULL;
    return v ? v : json_null();
}

static void add_progress(json_t *o, const job_slot *s)
{
    double elapsed = now_mono() - s->phase_start;
    json_t *eta = json_null();
    if (s->done > 0 && s->total > s->done && elapsed > 0)
        eta = json_real(elapsed * (double)(s->total - s->done) / (double)s->done);
    json_object_set_new(o, "progress", json_pack("{s:s, s:I, s:I, s:o}", "phase", s->phase,
                                                 "done", (json_int_t)s->done, "total",
                                                 (json_int_t)s->total, "eta_seconds", eta));
}

/* State JSON of the row at st's current position. */
static json_t *row_json(srv_jobs *j, sqlite3_stmt *st)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *state = (const char *)sqlite3_column_text(st, 1);
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:I, s:b}", "id", id, "state", state,
                          "spec", col_json_parsed(st, 2), "created", col_json_text(st, 4),
                          "started", col_json_text(st, 5), "finished", col_json_text(st, 6),
                          "attempts", (json_int_t)sqlite3_column_int64(st, 7),
                          "cancel_requested", sqlite3_column_int(st, 8) != 0);
    if (!o)
        return NULL;
    if (!strcmp(state, "failed"))
        json_object_set_new(o, "error", col_json_parsed(st, 3));
    const job_slot *slot = slot_of(j, id);
    if (!strcmp(state, "running") && slot)
        add_progress(o, slot);
    char self[128];
    snprintf(self, sizeof self, "/v1/selections/%s", id);
    json_t *links = json_pack("{s:s}", "self", self);
    if (links && !strcmp(state, "succeeded")) {
        char l[160];
        snprintf(l, sizeof l, "%s/result", self);
        json_object_set_new(links, "result", json_string(l));
        snprintf(l, sizeof l, "%s/records", self);
        json_object_set_new(links, "records", json_string(l));
        snprintf(l, sizeof l, "%s/manifest", self);
        json_object_set_new(links, "manifest", json_string(l));
    }
    json_object_set_new(o, "links", links ? links : json_null());
    return o;
}

static dl_status job_json(srv_jobs *j, const char *id, json_t **out, dl_error *err)
{
    *out = NULL;
    sqlite3_stmt *st = j->get_stmt;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    dl_status s = DL_OK;
    if (rc == SQLITE_ROW) {
        *out = row_json(j, st);
        if (!*out)
            s = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        s = dl_error_set(err, DL_ERR_NOT_FOUND, "no such selection job");
    } else {
        s = db_fail(j, err);
    }
    sqlite3_reset(st); /* ends the read transaction */
    return s;
}

/* ---- workers ------------------------------------------------------------- */

static void on_progress(void *ctx, const char *phase, int64_t done, int64_t total)
{
    job_slot *s = ctx;
    srv_jobs *j = s->owner;
    pthread_mutex_lock(&j->mu);
    int64_t delta = 0;
    if (strcmp(s->phase, phase) != 0) {
        snprintf(s->phase, sizeof s->phase, "%s", phase);
        s->phase_start = now_mono();
        s->done = 0;
    }
    if (!strcmp(phase, "pairs") && done > s->done)
        delta = done - s->done;
    s->done = done;
    s->total = total;
    pthread_mutex_unlock(&j->mu);
    if (delta && j->cfg.metrics)
        srv_metrics_add_pairs(j->cfg.metrics, delta);
}

/* What a worker needs of a job row, copied out under mu. */
typedef struct job_input {
    char id[JOB_ID_LEN];
    json_t *spec;
    char pool[72], target[72], existing[72];
} job_input;

static dl_status load_input(srv_jobs *j, job_input *in, dl_error *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT spec, pool, target, existing FROM jobs WHERE id = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(j, err);
    sqlite3_bind_text(st, 1, in->id, -1, SQLITE_TRANSIENT);
    dl_status s = DL_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t;
        in->spec = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
        snprintf(in->pool, sizeof in->pool, "%s", sqlite3_column_text(st, 1));
        t = (const char *)sqlite3_column_text(st, 2);
        snprintf(in->target, sizeof in->target, "%s", t ? t : "");
        t = (const char *)sqlite3_column_text(st, 3);
        snprintf(in->existing, sizeof in->existing, "%s", t ? t : "");
        if (!in->spec)
            s = dl_error_set(err, DL_ERR_INTERNAL, "stored spec unreadable");
    } else {
        s = db_fail(j, err);
    }
    sqlite3_finalize(st);
    return s;
}

typedef struct job_paths {
    char jobdir[PATH_LEN + 32], ckpt[PATH_LEN + 48], out[PATH_LEN + 48];
    char pool[PATH_LEN], target[PATH_LEN], existing[PATH_LEN];
} job_paths;

/* Resolves files and prepares the job's directories (no lock held). */
static dl_status prepare(srv_jobs *j, const job_input *in, job_paths *p, dl_error *err)
{
    snprintf(p->jobdir, sizeof p->jobdir, "%s/%s", j->dir, in->id);
    snprintf(p->ckpt, sizeof p->ckpt, "%s/checkpoint", p->jobdir);
    snprintf(p->out, sizeof p->out, "%s/out.tmp", p->jobdir);
    p->target[0] = p->existing[0] = '\0';
    dl_status st = srv_store_path(j->cfg.store, in->pool, p->pool, sizeof p->pool, err);
    if (st == DL_OK && in->target[0])
        st = srv_store_path(j->cfg.store, in->target, p->target, sizeof p->target, err);
    if (st == DL_OK && in->existing[0])
        st = srv_store_path(j->cfg.store, in->existing, p->existing, sizeof p->existing, err);
    if (st != DL_OK)
        return st;
    rm_tree(p->out);
    if ((mkdir(p->jobdir, 0750) != 0 && errno != EEXIST) ||
        (mkdir(p->ckpt, 0750) != 0 && errno != EEXIST) || mkdir(p->out, 0750) != 0)
        return dl_error_set(err, DL_ERR_IO, "cannot create a job directory: %s",
                            strerror(errno));
    return DL_OK;
}

/* Records the outcome of a run (under mu). */
static void finish(srv_jobs *j, job_slot *slot, dl_status st, const dl_error *e,
                   const char *jobdir)
{
    char when[32];
    srv_time_rfc3339(when, sizeof when);
    const char *id = slot->id;
    if (st == DL_ERR_CANCELLED && slot->reason == CANCEL_DRAIN) {
        const char *a[] = {id};
        db_exec(j, "UPDATE jobs SET state = 'queued', started = NULL WHERE id = ?", 1, a, NULL);
        return;
    }
    if (st == DL_OK) {
        const char *a[] = {when, id};
        db_exec(j, "UPDATE jobs SET state = 'succeeded', finished = ? WHERE id = ?", 2, a, NULL);
    } else if (st == DL_ERR_CANCELLED && slot->reason == CANCEL_USER) {
        const char *a[] = {when, id};
        db_exec(j, "UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ?", 2, a, NULL);
    } else {
        json_t *body = srv_error_body_new(e, 0);
        char *text = body ? json_dumps(json_object_get(body, "error"), JSON_COMPACT) : NULL;
        const char *a[] = {when, text ? text : "{}", id};
        db_exec(j, "UPDATE jobs SET state = 'failed', finished = ?, error = ? WHERE id = ?", 3,
                a, NULL);
        free(text);
        json_decref(body);
    }
    /* A final state: the checkpoint has served its purpose. */
    char ckpt[PATH_LEN + 64];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", jobdir);
    if (jobdir[0])
        rm_tree(ckpt);
}

static void run_one(srv_jobs *j, job_slot *slot, job_input *in)
{
    dl_error e;
    dl_error_clear(&e);
    job_paths *p = calloc(1, sizeof *p);
    dl_status st = p ? prepare(j, in, p, &e) : dl_error_set(&e, DL_ERR_NOMEM, "out of memory");
    const char *model = json_string_value(json_object_get(in->spec, "model"));
    const char *model_path = j->cfg.model_path ? j->cfg.model_path(j->cfg.model_ctx, model) : NULL;
    if (st == DL_OK && !model_path)
        st = dl_error_set(&e, DL_ERR_NOT_FOUND, "model '%s' is no longer configured", model);
    if (st == DL_OK) {
        srv_job_run run = {
            .job_id = in->id, .spec = in->spec, .model_path = model_path,
            .pool_path = p->pool, .target_path = p->target[0] ? p->target : NULL,
            .existing_path = p->existing[0] ? p->existing : NULL,
            .checkpoint_dir = p->ckpt, .output_dir = p->out, .cancel = &slot->cancel,
            .progress = on_progress, .progress_ctx = slot,
        };
        st = j->cfg.exec->run(j->cfg.exec->self, &run, &e);
        if (st == DL_ERR_CANCELLED && slot->reason == CANCEL_NONE)
            st = DL_ERR_INTERNAL; /* cancelled without being asked: a failure */
        if (st == DL_OK)
            st = publish_outputs(p->jobdir, &e);
        else
            rm_tree(p->out);
    }
    pthread_mutex_lock(&j->mu);
    finish(j, slot, st, &e, p ? p->jobdir : "");
    slot->id[0] = '\0';
    pthread_mutex_unlock(&j->mu);
    free(p);
}

static void *worker_main(void *arg)
{
    job_slot *slot = arg;
    srv_jobs *j = slot->owner;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stopping && j->q_n == 0)
            pthread_cond_wait(&j->cv, &j->mu);
        if (j->stopping)
            break;
        job_input in;
        memset(&in, 0, sizeof in);
        snprintf(in.id, sizeof in.id, "%s", j->queue[j->q_head]);
        j->q_head++;
        j->q_n--;
        char when[32];
        srv_time_rfc3339(when, sizeof when);
        const char *a[] = {when, in.id};
        dl_error e;
        dl_error_clear(&e);
        if (db_exec(j, "UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1"
                       " WHERE id = ?", 2, a, &e) != DL_OK ||
            load_input(j, &in, &e) != DL_OK) {
            json_decref(in.spec);
            continue; /* the row stays queued in the database: retried at restart */
        }
        snprintf(slot->id, sizeof slot->id, "%s", in.id);
        atomic_store(&slot->cancel, 0);
        slot->reason = CANCEL_NONE;
        slot->phase[0] = '\0';
        snprintf(slot->phase, sizeof slot->phase, "starting");
        slot->done = slot->total = 0;
        slot->phase_start = now_mono();
        pthread_mutex_unlock(&j->mu);
        run_one(j, slot, &in);
        json_decref(in.spec);
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ---- open / drain / free ------------------------------------------------- */

/* Jobs interrupted by a crash: a cancel that was asked for wins, the rest
 * go back to the queue in their original order. */
static dl_status recover(srv_jobs *j, dl_error *err)
{
    char when[32];
    srv_time_rfc3339(when, sizeof when);
    const char *a[] = {when};
    dl_status st = db_exec(j, "UPDATE jobs SET state = 'cancelled', finished = ? "
                              "WHERE state = 'running' AND cancel_requested = 1", 1, a, err);
    if (st == DL_OK)
        st = db_exec(j, "UPDATE jobs SET state = 'queued', started = NULL "
                        "WHERE state = 'running'", 0, NULL, err);
    if (st != DL_OK)
        return st;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(j->db, "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        return db_fail(j, err);
    while (sqlite3_step(q) == SQLITE_ROW)
        if (queue_push(j, (const char *)sqlite3_column_text(q, 0)) != 0) {
            sqlite3_finalize(q);
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        }
    sqlite3_finalize(q);
    return DL_OK;
}

static dl_status open_db(srv_jobs *j, dl_error *err)
{
    char path[PATH_LEN + 16];
    snprintf(path, sizeof path, "%s/jobs.db", j->cfg.data_dir);
    if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                          SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return db_fail(j, err);
    sqlite3_busy_timeout(j->db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(j->db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        dl_status st = dl_error_set(err, DL_ERR_IO, "job database: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return st;
    }
    if (sqlite3_prepare_v3(j->db, "SELECT " JOB_COLS " FROM jobs WHERE id = ?", -1,
                           SQLITE_PREPARE_PERSISTENT, &j->get_stmt, NULL) != SQLITE_OK)
        return db_fail(j, err);
    return DL_OK;
}

dl_status srv_jobs_open(const srv_jobs_config *cfg, srv_jobs **out, dl_error *err)
{
    *out = NULL;
    if (cfg->workers < 1 || cfg->queue_max < 1)
        return dl_error_set(err, DL_ERR_USAGE, "workers and queue size must be at least 1");
    srv_jobs *j = calloc(1, sizeof *j);
    if (!j)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    j->cfg = *cfg;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    snprintf(j->dir, sizeof j->dir, "%s/jobs", cfg->data_dir);
    dl_status st = DL_OK;
    if (mkdir(j->dir, 0750) != 0 && errno != EEXIST)
        st = dl_error_set(err, DL_ERR_IO, "cannot create the jobs directory: %s",
                          strerror(errno));
    j->slots = calloc((size_t)cfg->workers, sizeof *j->slots);
    j->threads = calloc((size_t)cfg->workers, sizeof *j->threads);
    if (st == DL_OK && (!j->slots || !j->threads))
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (st == DL_OK)
        st = open_db(j, err);
    if (st == DL_OK)
        st = recover(j, err);
    for (int i = 0; st == DL_OK && cfg->exec && i < cfg->workers; i++) {
        j->slots[i].owner = j;
        atomic_init(&j->slots[i].cancel, 0);
        if (pthread_create(&j->threads[i], NULL, worker_main, &j->slots[i]) != 0)
            st = dl_error_set(err, DL_ERR_INTERNAL, "cannot start a worker thread");
        else
            j->n_threads++;
    }
    if (st != DL_OK) {
        srv_jobs_free(j);
        return st;
    }
    *out = j;
    return DL_OK;
}

void srv_jobs_drain(srv_jobs *j)
{
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    for (int i = 0; i < j->cfg.workers; i++) {
        if (!j->slots[i].id[0])
            continue;
        if (j->slots[i].reason == CANCEL_NONE)
            j->slots[i].reason = CANCEL_DRAIN;
        atomic_store(&j->slots[i].cancel, 1);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->n_threads; i++)
        pthread_join(j->threads[i], NULL);
    j->n_threads = 0;
}

void srv_jobs_free(srv_jobs *j)
{
    if (!j)
        return;
    if (j->slots)
        srv_jobs_drain(j);
    sqlite3_finalize(j->get_stmt);
    sqlite3_close(j->db);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->queue);
    free(j->slots);
    free(j->threads);
    free(j);
}

/* ---- requests ------------------------------------------------------------ */

static void new_job_id(char id[JOB_ID_LEN])
{
    uint8_t r[12];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    }
    if (got < sizeof r) { /* no entropy source: time and address, still unique enough */
        uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)id << 16) ^ (uint64_t)clock();
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)i;
    }
    id[0] = 'j';
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(id + 1 + 2 * i, 3, "%02x", r[i]);
}

/* Existing job for idem_key: 1 found (id copied, *same = spec hash equal),
 * 0 none, -1 database error. */
static int idem_lookup(srv_jobs *j, const char *key, const char *hash, char id[JOB_ID_LEN],
                       int *same)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT id, spec_hash FROM jobs WHERE idem_key = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        snprintf(id, JOB_ID_LEN, "%s", sqlite3_column_text(st, 0));
        *same = !strcmp((const char *)sqlite3_column_text(st, 1), hash);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        found = -1;
    }
    sqlite3_finalize(st);
    return found;
}

static dl_status check_datasets(srv_jobs *j, const json_t *spec, dl_error *err)
{
    static const char *const keys[] = {"pool", "target", "existing"};
    char path[PATH_LEN];
    for (size_t i = 0; i < 3; i++) {
        const char *id = json_string_value(json_object_get(spec, keys[i]));
        if (id && srv_store_path(j->cfg.store, id, path, sizeof path, NULL) != DL_OK)
            return dl_error_set_at(err, DL_ERR_NOT_FOUND, NULL, 0, 0, -1, keys[i],
                                   "no such dataset");
    }
    return DL_OK;
}

/* Inserts the row and queues it (under mu). */
static dl_status insert_job(srv_jobs *j, const json_t *spec, const char *hash,
                            const char *idem_key, char id[JOB_ID_LEN], dl_error *err)
{
    char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    char when[32];
    srv_time_rfc3339(when, sizeof when);
    new_job_id(id);
    const char *a[] = {id, text, hash, idem_key,
                       json_string_value(json_object_get(spec, "pool")),
                       json_string_value(json_object_get(spec, "target")),
                       json_string_value(json_object_get(spec, "existing")), when};
    dl_status st = db_exec(j, "INSERT INTO jobs (id, state, spec, spec_hash, idem_key, pool,"
                              " target, existing, created) VALUES (?, 'queued', ?, ?, ?, ?, ?,"
                              " ?, ?)", 8, a, err);
    free(text);
    if (st == DL_OK && queue_push(j, id) != 0) {
        const char *b[] = {id};
        db_exec(j, "DELETE FROM jobs WHERE id = ?", 1, b, NULL);
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    if (st == DL_OK)
        pthread_cond_signal(&j->cv);
    return st;
}

dl_status srv_jobs_create(srv_jobs *j, const json_t *spec, const char *idem_key, json_t **job,
                          int *replayed, unsigned *http, dl_error *err)
{
    *job = NULL;
    *replayed = 0;
    *http = 500;
    char hash[65], id[JOB_ID_LEN];
    dl_status st = srv_spec_hash(spec, hash, err);
    if (st != DL_OK)
        return st;
    srv_store_lock(j->cfg.store); /* datasets must not vanish before the row exists */
    pthread_mutex_lock(&j->mu);
    int same = 0, found = idem_key ? idem_lookup(j, idem_key, hash, id, &same) : 0;
    if (found < 0) {
        st = db_fail(j, err);
    } else if (found && !same) {
        *http = 422;
        st = dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "Idempotency-Key",
                             "this key was used for a different selection spec");
    } else if (found) {
        *replayed = 1;
    } else if ((st = check_datasets(j, spec, err)) != DL_OK) {
        *http = 404;
    } else if ((int64_t)j->q_n >= j->cfg.queue_max) {
        *http = 429;
        st = dl_error_set(err, DL_ERR_USAGE, "the job queue is full (%lld queued); retry later",
                          (long long)j->q_n);
    } else {
        st = insert_job(j, spec, hash, idem_key, id, err);
    }
    if (st == DL_OK)
        st = job_json(j, id, job, err);
    pthread_mutex_unlock(&j->mu);
    srv_store_unlock(j->cfg.store);
    if (st == DL_OK)
        *http = 202;
    else if (*http == 500)
        *http = srv_error_http_status(st);
    return st;
}

dl_status srv_jobs_get(srv_jobs *j, const char *id, json_t **job, dl_error *err)
{
    pthread_mutex_lock(&j->mu);
    dl_status st = job_json(j, id, job, err);
    pthread_mutex_unlock(&j->mu);
    return st;
}

dl_status srv_jobs_list(srv_jobs *j, int64_t limit, json_t **list, dl_error *err)
{
    *list = json_array();
    if (!*list)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&j->mu);
    sqlite3_stmt *st;
    dl_status s = DL_OK;
    if (sqlite3_prepare_v2(j->db, "SELECT " JOB_COLS " FROM jobs ORDER BY seq DESC LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        s = db_fail(j, err);
    } else {
        sqlite3_bind_int64(st, 1, limit);
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_t *o = row_json(j, st);
            if (o)
                json_array_append_new(*list, o);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&j->mu);
    return s;
}

/* Current state name of id into buf, 0 when unknown (under mu). */
static int state_of(srv_jobs *j, const char *id, char *buf, size_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT state FROM jobs WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        snprintf(buf, n, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return found;
}

dl_status srv_jobs_cancel(srv_jobs *j, const char *id, json_t **job, unsigned *http,
                          dl_error *err)
{
    *job = NULL;
    char state[16], when[32];
    srv_time_rfc3339(when, sizeof when);
    dl_status st = DL_OK;
    pthread_mutex_lock(&j->mu);
    job_slot *slot = slot_of(j, id);
    if (!state_of(j, id, state, sizeof state)) {
        *http = 404;
        st = dl_error_set(err, DL_ERR_NOT_FOUND, "no such selection job");
    } else if (slot) {
        const char *a[] = {id};
        st = db_exec(j, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", 1, a, err);
        slot->reason = CANCEL_USER;
        atomic_store(&slot->cancel, 1);
        *http = 202;
    } else if (!strcmp(state, "queued")) {
        queue_remove(j, id);
        const char *a[] = {when, id};
        st = db_exec(j, "UPDATE jobs SET state = 'cancelled', cancel_requested = 1,"
                        " finished = ? WHERE id = ?", 2, a, err);
        *http = 200;
    } else {
        *http = 409;
        st = dl_error_set(err, DL_ERR_USAGE, "the job has already finished (%s)", state);
    }
    if (st == DL_OK)
        st = job_json(j, id, job, err);
    if (st != DL_OK && *http < 300)
        *http = 500;
    pthread_mutex_unlock(&j->mu);
    return st;
}

dl_status srv_jobs_output(srv_jobs *j, const char *id, const char *name, char *buf, size_t n,
                          unsigned *http, dl_error *err)
{
    char state[16];
    pthread_mutex_lock(&j->mu);
    int found = srv_route_id_valid(id, strlen(id)) && state_of(j, id, state, sizeof state);
    pthread_mutex_unlock(&j->mu);
    if (!found) {
        *http = 404;
        return dl_error_set(err, DL_ERR_NOT_FOUND, "no such selection job");
    }
    if (strcmp(state, "succeeded") != 0) {
        *http = 409;
        return dl_error_set(err, DL_ERR_USAGE, "the job has no result: it is %s", state);
    }
    snprintf(buf, n, "%s/%s/out/%s", j->dir, id, name);
    *http = 200;
    return DL_OK;
}

int64_t srv_jobs_dataset_users(srv_jobs *j, const char *id)
{
    int64_t n = 0;
    pthread_mutex_lock(&j->mu);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT count(*) FROM jobs WHERE state IN ('queued',"
                                  " 'running') AND (pool = ?1 OR target = ?1 OR existing = ?1)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        else
            n = 1; /* cannot tell: refuse rather than break a job */
        sqlite3_finalize(st);
    } else {
        n = 1;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

void srv_jobs_gauges(srv_jobs *j, srv_metrics_gauges *g)
{
    pthread_mutex_lock(&j->mu);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT state, count(*) FROM jobs GROUP BY state", -1, &st,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *s = (const char *)sqlite3_column_text(st, 0);
            int64_t c = sqlite3_column_int64(st, 1);
            if (!strcmp(s, "queued"))
                g->jobs_queued = c;
            else if (!strcmp(s, "running"))
                g->jobs_running = c;
            else if (!strcmp(s, "succeeded"))
                g->jobs_succeeded = c;
            else if (!strcmp(s, "failed"))
                g->jobs_failed = c;
            else if (!strcmp(s, "cancelled"))
                g->jobs_cancelled = c;
        }
        sqlite3_finalize(st);
    }
    g->queue_depth = (int64_t)j->q_n;
    pthread_mutex_unlock(&j->mu);
}

dl_status srv_jobs_check(srv_jobs *j, dl_error *err)
{
    pthread_mutex_lock(&j->mu);
    dl_status st = db_exec(j, "SELECT count(*) FROM jobs", 0, NULL, err);
    pthread_mutex_unlock(&j->mu);
    return st;
}

int srv_jobs_can_run(const srv_jobs *j)
{
    return j->cfg.exec != NULL;
}
