/* ut_cache.c: the SQLite score cache / checkpoint (see ut_cache.h).
 *
 * Every transaction is explicit: get runs in one deferred (read)
 * transaction, put in one BEGIN IMMEDIATE transaction, so a writer takes
 * the write lock before its first row and never has to upgrade a read lock
 * (the upgrade is what deadlocks two writers into SQLITE_BUSY at once).
 * The hot statements are prepared once per handle; the rare ones (stat,
 * clear, the scope list) are prepared per call.
 */
#include "config.h"

#include "ut_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define UT_CACHE_SCHEMA_VERSION 1
#define UT_CACHE_BUSY_MS 60000

static const char UT_CACHE_ADVICE[] = "delete it or pass --no-cache";

/* The schema of version 1 (ut_cache.h spells out why d has no type). */
static const char UT_CACHE_SCHEMA_SQL[] =
    "CREATE TABLE scope("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " key BLOB UNIQUE NOT NULL CHECK(length(key) = 32),"
    " description TEXT,"
    " created INTEGER);"
    "CREATE TABLE score("
    " scope INTEGER NOT NULL REFERENCES scope(id) ON DELETE CASCADE,"
    " kind INTEGER NOT NULL CHECK(kind IN (0, 1)),"
    " target BLOB NOT NULL CHECK(length(target) = 32),"
    " example BLOB NOT NULL CHECK(length(example) = 32),"
    " d,"
    " n_scored INTEGER NOT NULL,"
    " n_cut INTEGER NOT NULL,"
    " PRIMARY KEY(scope, kind, example, target)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

enum {
    ST_BEGIN,     /* deferred: a read snapshot from the first SELECT on */
    ST_BEGIN_IMM, /* write lock now */
    ST_COMMIT,
    ST_ROLLBACK,
    ST_GET,
    ST_PUT,
    ST_SCOPE_GET,
    ST_SCOPE_ADD,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_BEGIN_IMM] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT d, n_scored, n_cut FROM score"
               " WHERE scope = ?1 AND kind = ?2 AND target = ?3 AND example = ?4",
    [ST_PUT] = "INSERT OR REPLACE INTO score(scope, kind, target, example, d, n_scored, n_cut)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_SCOPE_GET] = "SELECT id FROM scope WHERE key = ?1",
    [ST_SCOPE_ADD] = "INSERT OR IGNORE INTO scope(key, description, created) VALUES (?1, ?2, ?3)",
};

struct ut_cache {
    sqlite3 *db;
    char *path;                 /* owned copy of the path given to open */
    sqlite3_stmt *st[ST_COUNT]; /* owned, prepared once */
};

/* ---- errors ------------------------------------------------------------------- */

/* Maps a SQLite result code to our status, with SQLite's message: damage
 * to the file is bad input (the user must act), everything else about the
 * file system is I/O. */
static dl_status cache_fail(const char *path, sqlite3 *db, int rc, const char *what, dl_error *err)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return dl_error_set_at(err, DL_ERR_NOMEM, path, 0, 0, -1, NULL, "%s: out of memory", what);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FORMAT:
        return dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, -1, NULL,
                               "%s: not a delift score cache or damaged (%s): %s", what, msg,
                               UT_CACHE_ADVICE);
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_AUTH:
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "%s: %s", what, msg);
    default:
        return dl_error_set_at(err, DL_ERR_INTERNAL, path, 0, 0, -1, NULL, "%s: %s (SQLite %d)",
                               what, msg, rc);
    }
}

static dl_status cache_bad_input(const char *path, dl_error *err, const char *why)
{
    return dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, -1, NULL, "%s: %s", why, UT_CACHE_ADVICE);
}

/* Steps a statement that returns no rows we need, then resets it. */
static int stmt_run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Ends a failed transaction, if SQLite has not already rolled it back (it
 * does so itself after some I/O and memory errors). */
static void cache_abort(ut_cache *c)
{
    if (!sqlite3_get_autocommit(c->db) && stmt_run(c->st[ST_ROLLBACK]) != SQLITE_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- opening -------------------------------------------------------------------- */

/* mkdir -p of the directory part of path, new directories mode 0700. */
static dl_status cache_mkdirs(const char *path, dl_error *err)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return DL_OK;
    size_t len = (size_t)(slash - path);
    char *dir = malloc(len + 1);
    if (!dir)
        return dl_error_set_at(err, DL_ERR_NOMEM, path, 0, 0, -1, NULL, "out of memory");
    memcpy(dir, path, len);
    dir[len] = '\0';
    dl_status st = DL_OK;
    for (size_t i = 1; i <= len && st == DL_OK; i++) {
        if (i < len && dir[i] != '/')
            continue;
        dir[i] = '\0';
        struct stat sb;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            st = dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL,
                                 "cannot create the directory '%s': %s", dir, strerror(errno));
        else if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "'%s' is not a directory",
                                 dir);
        if (i < len)
            dir[i] = '/';
    }
    free(dir);
    return st;
}

/* Runs a one-row, one-column query (a PRAGMA) and returns its integer. */
static int cache_query_i64(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_CORRUPT; /* a count or pragma always has a row */
        }
    }
    sqlite3_finalize(s);
    return rc;
}

/* WAL mode (readers never block the writer, commits are appends) with a
 * sync at every commit; foreign keys keep entries from outliving scopes. */
static dl_status cache_configure(ut_cache *c, dl_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    /* Switching a new file to WAL needs the exclusive lock, and SQLite
     * answers SQLITE_BUSY at once, without the busy handler, when another
     * process opening the same new file holds a lock: retry, backing off,
     * for as long as the busy timeout. */
    long waited_us = 0, pause_us = 1000;
    while (rc == SQLITE_OK && ((rc = sqlite3_step(s)) & 0xff) == SQLITE_BUSY
           && waited_us < UT_CACHE_BUSY_MS * 1000L) {
        sqlite3_reset(s);
        struct timespec ts = {0, pause_us * 1000L};
        nanosleep(&ts, NULL);
        waited_us += pause_us;
        pause_us = pause_us < 50000 ? pause_us * 2 : pause_us;
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        if (!mode || strcmp(mode, "wal") != 0) {
            dl_status st = dl_error_set_at(err, DL_ERR_IO, c->path, 0, 0, -1, NULL,
                                           "cannot use write-ahead logging (journal mode '%s')",
                                           mode ? mode : "?");
            sqlite3_finalize(s);
            return st;
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        dl_status st = cache_fail(c->path, c->db, rc, "cannot open the score cache", err);
        sqlite3_finalize(s);
        return st;
    }
    sqlite3_finalize(s);
    rc = sqlite3_exec(c->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", NULL, NULL,
                      NULL);
    return rc == SQLITE_OK ? DL_OK : cache_fail(c->path, c->db, rc, "cannot configure", err);
}

/* Creates the schema in an empty file; refuses other databases and newer
 * schemas.  The creation re-reads the version under the write lock: two
 * processes may open a new file at once. */
static dl_status cache_schema(ut_cache *c, dl_error *err)
{
    int64_t ver = 0, n_objects = 0, n_tables = 0;
    int rc = cache_query_i64(c->db, "PRAGMA user_version", &ver);
    if (rc == SQLITE_OK && ver == 0) {
        rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = cache_query_i64(c->db, "PRAGMA user_version", &ver);
        if (rc == SQLITE_OK && ver == 0)
            rc = cache_query_i64(c->db, "SELECT count(*) FROM sqlite_master", &n_objects);
        if (rc == SQLITE_OK && ver == 0 && n_objects == 0) {
            rc = sqlite3_exec(c->db, UT_CACHE_SCHEMA_SQL, NULL, NULL, NULL);
            ver = UT_CACHE_SCHEMA_VERSION;
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            dl_status st = cache_fail(c->path, c->db, rc, "cannot create the score cache", err);
            if (!sqlite3_get_autocommit(c->db))
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
    }
    if (rc != SQLITE_OK)
        return cache_fail(c->path, c->db, rc, "cannot read the score cache", err);
    if (ver > UT_CACHE_SCHEMA_VERSION)
        return dl_error_set_at(err, DL_ERR_INPUT, c->path, 0, 0, -1, NULL,
                               "the score cache has schema version %" PRId64
                               ", newer than this delift reads (%d): %s",
                               ver, UT_CACHE_SCHEMA_VERSION, UT_CACHE_ADVICE);
    if (ver != UT_CACHE_SCHEMA_VERSION)
        return cache_bad_input(c->path, err, "an SQLite database, but not a delift score cache");
    rc = cache_query_i64(c->db,
                         "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                         " AND name IN ('scope', 'score')",
                         &n_tables);
    if (rc != SQLITE_OK)
        return cache_fail(c->path, c->db, rc, "cannot read the score cache", err);
    if (n_tables != 2)
        return cache_bad_input(c->path, err, "a damaged delift score cache (tables missing)");
    return DL_OK;
}

dl_status ut_cache_default_path(char *buf, size_t n, dl_error *err)
{
    if (!buf || n == 0)
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_default_path: no buffer");
    const char *env = getenv("DELIFT_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int len;
    if (env && *env)
        len = snprintf(buf, n, "%s", env);
    else if (xdg && xdg[0] == '/')
        len = snprintf(buf, n, "%s/delift/scores.sqlite", xdg);
    else if (home && *home)
        len = snprintf(buf, n, "%s/.cache/delift/scores.sqlite", home);
    else
        return dl_error_set(err, DL_ERR_USAGE,
                            "no cache path: set DELIFT_CACHE, XDG_CACHE_HOME or HOME");
    if (len < 0 || (size_t)len >= n) {
        buf[0] = '\0';
        return dl_error_set(err, DL_ERR_USAGE, "the cache path is longer than %zu bytes", n - 1);
    }
    return DL_OK;
}

dl_status ut_cache_open(const char *path, ut_cache **out, dl_error *err)
{
    if (!out)
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_open: out is NULL");
    *out = NULL;
    if (!path || !*path || !strcmp(path, ":memory:"))
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_open: a file path is required");
    dl_status st = cache_mkdirs(path, err);
    if (st != DL_OK)
        return st;
    ut_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return dl_error_set_at(err, DL_ERR_NOMEM, path, 0, 0, -1, NULL, "out of memory");
    }
    /* NOMUTEX: one thread per handle (ut_cache.h); no URI names, so a path
     * is only ever a path. */
    int rc = sqlite3_open_v2(path, &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        st = cache_fail(path, c->db, rc, "cannot open the score cache", err);
    if (st == DL_OK) {
        sqlite3_busy_timeout(c->db, UT_CACHE_BUSY_MS);
        st = cache_configure(c, err);
    }
    if (st == DL_OK)
        st = cache_schema(c, err);
    for (int i = 0; i < ST_COUNT && st == DL_OK; i++) {
        rc = sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL);
        if (rc != SQLITE_OK)
            st = cache_fail(path, c->db, rc, "cannot prepare the score cache", err);
    }
    if (st != DL_OK) {
        ut_cache_close(c);
        return st;
    }
    *out = c;
    return DL_OK;
}

void ut_cache_close(ut_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db); /* every statement is finalized: cannot be busy */
    free(c->path);
    free(c);
}

const char *ut_cache_path(const ut_cache *c)
{
    return c ? c->path : NULL;
}

/* ---- scopes ------------------------------------------------------------------------ */

/* Looks key up: SQLITE_OK with *id set, SQLITE_DONE when absent. */
static int scope_find(ut_cache *c, const uint8_t *key, int64_t *id)
{
    sqlite3_stmt *s = c->st[ST_SCOPE_GET];
    sqlite3_bind_blob(s, 1, key, UT_CACHE_KEY_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_reset(s);
    return rc;
}

dl_status ut_cache_scope(ut_cache *c, const uint8_t key[UT_CACHE_KEY_LEN], const char *description,
                         int64_t *scope, dl_error *err)
{
    if (!c || !key || !scope)
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_scope: NULL argument");
    int rc = scope_find(c, key, scope);
    if (rc == SQLITE_OK)
        return DL_OK;
    if (rc == SQLITE_DONE) {
        /* Absent: insert under the write lock (another process may insert
         * the same key meanwhile: OR IGNORE, then read whichever won). */
        sqlite3_stmt *add = c->st[ST_SCOPE_ADD];
        rc = stmt_run(c->st[ST_BEGIN_IMM]);
        if (rc == SQLITE_OK) {
            sqlite3_bind_blob(add, 1, key, UT_CACHE_KEY_LEN, SQLITE_STATIC);
            if (description)
                sqlite3_bind_text(add, 2, description, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(add, 2);
            sqlite3_bind_int64(add, 3, (int64_t)time(NULL));
            rc = stmt_run(add);
        }
        if (rc == SQLITE_OK)
            rc = scope_find(c, key, scope);
        if (rc == SQLITE_OK)
            rc = stmt_run(c->st[ST_COMMIT]);
        else if (rc == SQLITE_DONE)
            rc = SQLITE_INTERNAL; /* inserted or present, yet not found */
    }
    if (rc == SQLITE_OK)
        return DL_OK;
    dl_status st = cache_fail(c->path, c->db, rc, "cannot add a scope to the score cache", err);
    cache_abort(c);
    return st;
}

dl_status ut_cache_scope_each(ut_cache *c, int (*fn)(void *ctx, const ut_cache_scope_info *info),
                              void *ctx, dl_error *err)
{
    if (!c || !fn)
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_scope_each: NULL argument");
    static const char sql[] =
        "SELECT s.id, s.key, s.description, s.created,"
        " (SELECT count(*) FROM score WHERE scope = s.id AND kind = 0),"
        " (SELECT count(*) FROM score WHERE scope = s.id AND kind = 1)"
        " FROM scope s ORDER BY s.id";
    sqlite3_stmt *s = NULL;
    int rc = stmt_run(c->st[ST_BEGIN]);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(c->db, sql, -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ut_cache_scope_info info = {0};
        info.id = sqlite3_column_int64(s, 0);
        const void *key = sqlite3_column_blob(s, 1);
        if (!key || sqlite3_column_bytes(s, 1) != UT_CACHE_KEY_LEN) {
            rc = SQLITE_CORRUPT;
            break;
        }
        memcpy(info.key, key, UT_CACHE_KEY_LEN);
        const char *desc = (const char *)sqlite3_column_text(s, 2);
        info.description = desc ? desc : "";
        info.created = sqlite3_column_int64(s, 3);
        info.n_noicl = sqlite3_column_int64(s, 4);
        info.n_icl = sqlite3_column_int64(s, 5);
        if (fn(ctx, &info) != 0)
            rc = SQLITE_DONE;
        else
            rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_finalize(s);
    if (rc == SQLITE_OK)
        rc = stmt_run(c->st[ST_COMMIT]);
    if (rc == SQLITE_OK)
        return DL_OK;
    dl_status st = cache_fail(c->path, c->db, rc, "cannot list the scopes", err);
    cache_abort(c);
    return st;
}

/* ---- entries -------------------------------------------------------------------------- */

static const uint8_t zero_key[UT_CACHE_KEY_LEN];

/* The table's key order (kind, example, target) and then the position in
 * the caller's array, so that of equal keys the last one is written last. */
static int key_cmp(const void *a, const void *b)
{
    const ut_cache_key *x = *(const ut_cache_key *const *)a, *y = *(const ut_cache_key *const *)b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    int c = memcmp(x->example, y->example, UT_CACHE_KEY_LEN);
    if (!c)
        c = memcmp(x->target, y->target, UT_CACHE_KEY_LEN);
    return c ? c : (x > y) - (x < y);
}

/* keys in table order: each statement then lands on the page the previous
 * one left in the page cache, and the pages a block writes are written once
 * (random hashes in the caller's order would visit them at random).
 * Owned by the caller (free), NULL when out of memory. */
static const ut_cache_key **keys_sorted(const ut_cache_key *keys, int64_t n)
{
    const ut_cache_key **order = malloc((size_t)n * sizeof *order);
    if (!order)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        order[i] = &keys[i];
    qsort(order, (size_t)n, sizeof *order, key_cmp);
    return order;
}

static dl_status keys_check(const ut_cache *c, const ut_cache_key *keys, int64_t n,
                            const char *fn, dl_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        if (keys[i].kind != UT_CACHE_NOICL && keys[i].kind != UT_CACHE_ICL)
            return dl_error_set_at(err, DL_ERR_USAGE, c->path, 0, 0, -1, NULL,
                                   "%s: keys[%" PRId64 "] has kind %d", fn, i, keys[i].kind);
        if (keys[i].kind == UT_CACHE_NOICL && memcmp(keys[i].example, zero_key, UT_CACHE_KEY_LEN))
            return dl_error_set_at(err, DL_ERR_USAGE, c->path, 0, 0, -1, NULL,
                                   "%s: keys[%" PRId64 "] is NOICL with an example", fn, i);
    }
    return DL_OK;
}

static void key_bind(sqlite3_stmt *s, int64_t scope, const ut_cache_key *k)
{
    sqlite3_bind_int64(s, 1, scope);
    sqlite3_bind_int(s, 2, k->kind);
    sqlite3_bind_blob(s, 3, k->target, UT_CACHE_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, k->example, UT_CACHE_KEY_LEN, SQLITE_STATIC);
}

/* Reads the row of ST_GET into v; 0, or -1 when the row is not ours. */
static int value_read(sqlite3_stmt *s, ut_cache_value *v)
{
    int type = sqlite3_column_type(s, 0);
    if (type == SQLITE_FLOAT)
        v->d = sqlite3_column_double(s, 0);
    else if (type == SQLITE_NULL)
        v->d = NAN; /* how NaN is stored: SQLite turns a NaN REAL into NULL anyway */
    else
        return -1;
    int64_t n_scored = sqlite3_column_int64(s, 1), n_cut = sqlite3_column_int64(s, 2);
    if (sqlite3_column_type(s, 1) != SQLITE_INTEGER || sqlite3_column_type(s, 2) != SQLITE_INTEGER
        || n_scored < INT32_MIN || n_scored > INT32_MAX || n_cut < INT32_MIN || n_cut > INT32_MAX)
        return -1;
    v->n_scored = (int32_t)n_scored;
    v->n_cut = (int32_t)n_cut;
    return 0;
}

dl_status ut_cache_get(ut_cache *c, int64_t scope, const ut_cache_key *keys, int64_t n,
                       ut_cache_value *values, uint8_t *found, dl_error *err)
{
    if (!c || n < 0 || (n > 0 && (!keys || !values || !found)))
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_get: bad arguments");
    dl_status st = keys_check(c, keys, n, "ut_cache_get", err);
    if (st != DL_OK || n == 0)
        return st;
    const ut_cache_key **order = keys_sorted(keys, n);
    if (!order)
        return dl_error_set_at(err, DL_ERR_NOMEM, c->path, 0, 0, -1, NULL, "out of memory");
    sqlite3_stmt *s = c->st[ST_GET];
    int rc = stmt_run(c->st[ST_BEGIN]);
    for (int64_t j = 0; j < n && rc == SQLITE_OK; j++) {
        int64_t i = order[j] - keys;
        key_bind(s, scope, &keys[i]);
        rc = sqlite3_step(s);
        found[i] = 0;
        if (rc == SQLITE_ROW) {
            if (value_read(s, &values[i]) != 0) {
                sqlite3_reset(s);
                st = cache_bad_input(c->path, err, "a damaged delift score cache (bad entry)");
                break;
            }
            found[i] = 1;
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
        sqlite3_reset(s);
    }
    free(order);
    if (st == DL_OK && rc == SQLITE_OK)
        rc = stmt_run(c->st[ST_COMMIT]);
    if (st == DL_OK && rc == SQLITE_OK)
        return DL_OK;
    if (st == DL_OK)
        st = cache_fail(c->path, c->db, rc, "cannot read the score cache", err);
    cache_abort(c);
    return st;
}

dl_status ut_cache_put(ut_cache *c, int64_t scope, const ut_cache_key *keys,
                       const ut_cache_value *values, int64_t n, dl_error *err)
{
    if (!c || n < 0 || (n > 0 && (!keys || !values)))
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_put: bad arguments");
    dl_status st = keys_check(c, keys, n, "ut_cache_put", err);
    if (st != DL_OK || n == 0)
        return st;
    const ut_cache_key **order = keys_sorted(keys, n);
    if (!order)
        return dl_error_set_at(err, DL_ERR_NOMEM, c->path, 0, 0, -1, NULL, "out of memory");
    sqlite3_stmt *s = c->st[ST_PUT];
    int rc = stmt_run(c->st[ST_BEGIN_IMM]);
    for (int64_t j = 0; j < n && rc == SQLITE_OK; j++) {
        int64_t i = order[j] - keys;
        key_bind(s, scope, &keys[i]);
        if (isnan(values[i].d))
            sqlite3_bind_null(s, 5);
        else
            sqlite3_bind_double(s, 5, values[i].d);
        sqlite3_bind_int(s, 6, values[i].n_scored);
        sqlite3_bind_int(s, 7, values[i].n_cut);
        rc = stmt_run(s);
    }
    free(order);
    if (rc == SQLITE_OK)
        rc = stmt_run(c->st[ST_COMMIT]);
    if (rc == SQLITE_OK)
        return DL_OK;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) /* keys are checked: only the scope can fail */
        st = dl_error_set_at(err, DL_ERR_NOT_FOUND, c->path, 0, 0, -1, NULL,
                             "scope %" PRId64 " is not in the score cache (cleared meanwhile?)",
                             scope);
    else
        st = cache_fail(c->path, c->db, rc, "cannot write to the score cache", err);
    cache_abort(c);
    return st;
}

/* ---- the whole file -------------------------------------------------------------------- */

static int64_t file_size(const char *path, const char *suffix)
{
    size_t len = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(len);
    struct stat sb;
    int64_t size = 0;
    if (p) {
        snprintf(p, len, "%s%s", path, suffix);
        if (stat(p, &sb) == 0)
            size = (int64_t)sb.st_size;
        free(p);
    }
    return size;
}

dl_status ut_cache_stat(ut_cache *c, ut_cache_stats *out, dl_error *err)
{
    if (!c || !out)
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_stat: NULL argument");
    int64_t n_scopes = 0, n_entries = 0;
    int rc = stmt_run(c->st[ST_BEGIN]);
    if (rc == SQLITE_OK)
        rc = cache_query_i64(c->db, "SELECT count(*) FROM scope", &n_scopes);
    if (rc == SQLITE_OK)
        rc = cache_query_i64(c->db, "SELECT count(*) FROM score", &n_entries);
    if (rc == SQLITE_OK)
        rc = stmt_run(c->st[ST_COMMIT]);
    if (rc != SQLITE_OK) {
        dl_status st = cache_fail(c->path, c->db, rc, "cannot read the score cache", err);
        cache_abort(c);
        return st;
    }
    out->n_scopes = n_scopes;
    out->n_entries = n_entries;
    out->file_bytes = file_size(c->path, "") + file_size(c->path, "-wal");
    return DL_OK;
}

dl_status ut_cache_clear(ut_cache *c, dl_error *err)
{
    if (!c)
        return dl_error_set(err, DL_ERR_USAGE, "ut_cache_clear: NULL argument");
    int rc = stmt_run(c->st[ST_BEGIN_IMM]);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, "DELETE FROM score; DELETE FROM scope;", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = stmt_run(c->st[ST_COMMIT]);
    if (rc != SQLITE_OK) {
        dl_status st = cache_fail(c->path, c->db, rc, "cannot clear the score cache", err);
        cache_abort(c);
        return st;
    }
    /* Outside the transaction: VACUUM cannot run inside one.  The entries
     * are gone already; a failure here only leaves the file large. */
    rc = sqlite3_exec(c->db, "VACUUM; PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return cache_fail(c->path, c->db, rc, "cleared, but cannot compact the score cache", err);
    return DL_OK;
}
