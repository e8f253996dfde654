/* check_ut_cache.c: the SQLite score cache (src/ut_cache.h).
 *
 * Values are checked against what the test itself put (bit patterns, not
 * approximate equality) and the on-disk format against SQLite's own reading
 * of the file (typeof(d), integrity_check), never against ut_cache's output
 * alone.  Durability is tested with real processes: a writer SIGKILLed at
 * random points inside a 200k-entry transaction, a writer whose file-size
 * limit runs out (a full disk), and a writer racing a reader.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "dl_test.h"
#include "ut_cache.h"

/* ---- helpers ------------------------------------------------------------------ */

static char g_dir[256]; /* this test's scratch directory */

static void scratch_make(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/dl_ut_cache.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static void scratch_remove(void)
{
    if (g_dir[0])
        nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
}

/* A path under the scratch directory; static buffer, one at a time. */
static const char *scratch(const char *rel)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, rel);
    return buf;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void fill_bytes(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = mix64(seed * 1000003u + i);
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}

/* Entry i of block b: a distinct key and a value both derived from (b, i)
 * alone, so any process can recompute them.  As in ut_score_icl's blocks,
 * most keys are ICL and share their example with many others (i / 1024);
 * every 8th is NOICL. */
static void entry_make(uint64_t b, int64_t i, ut_cache_key *k, ut_cache_value *v)
{
    memset(k, 0, sizeof *k);
    k->kind = (uint8_t)(i % 8 ? UT_CACHE_ICL : UT_CACHE_NOICL);
    uint64_t seed = (b << 32) ^ (uint64_t)i;
    fill_bytes(k->target, UT_CACHE_KEY_LEN, seed * 2);
    if (k->kind == UT_CACHE_ICL)
        fill_bytes(k->example, UT_CACHE_KEY_LEN, ((b << 32) ^ (uint64_t)(i / 1024)) * 2 + 1);
    if (v) {
        v->d = (double)(mix64(seed) >> 11) * 0x1p-53 * 10.0;
        v->n_scored = (int32_t)(i % 1000);
        v->n_cut = (int32_t)(b % 7);
    }
}

static void block_make(uint64_t b, int64_t n, ut_cache_key *keys, ut_cache_value *vals)
{
    for (int64_t i = 0; i < n; i++)
        entry_make(b, i, &keys[i], vals ? &vals[i] : NULL);
}

static int same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static ut_cache *open_ok(const char *path)
{
    ut_cache *c = NULL;
    dl_error e;
    dl_error_clear(&e);
    dl_status st = ut_cache_open(path, &c, &e);
    ck_assert_msg(st == DL_OK, "open %s: %s", path, e.message);
    return c;
}

static int64_t scope_ok(ut_cache *c, uint8_t tag, const char *desc)
{
    uint8_t key[UT_CACHE_KEY_LEN];
    memset(key, tag, sizeof key);
    int64_t id = -1;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(ut_cache_scope(c, key, desc, &id, &e) == DL_OK, "scope: %s", e.message);
    return id;
}

static void put_ok(ut_cache *c, int64_t scope, const ut_cache_key *k, const ut_cache_value *v,
                   int64_t n)
{
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(ut_cache_put(c, scope, k, v, n, &e) == DL_OK, "put: %s", e.message);
}

/* How many of the n keys are present; values checked against want. */
static int64_t count_found(ut_cache *c, int64_t scope, const ut_cache_key *k,
                           const ut_cache_value *want, int64_t n)
{
    ut_cache_value *got = calloc((size_t)n, sizeof *got);
    uint8_t *found = calloc((size_t)n, 1);
    ck_assert(got && found);
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(ut_cache_get(c, scope, k, n, got, found, &e) == DL_OK, "get: %s", e.message);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!found[i])
            continue;
        hits++;
        if (want) {
            ck_assert_msg(same_bits(got[i].d, want[i].d), "entry %" PRId64 ": d differs", i);
            ck_assert_int_eq(got[i].n_scored, want[i].n_scored);
            ck_assert_int_eq(got[i].n_cut, want[i].n_cut);
        }
    }
    free(got);
    free(found);
    return hits;
}

static ut_cache_stats stat_ok(ut_cache *c)
{
    ut_cache_stats s;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(ut_cache_stat(c, &s, &e) == DL_OK, "stat: %s", e.message);
    return s;
}

/* One integer or text answer from SQLite itself, outside ut_cache. */
static int64_t raw_query_i64(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* Rows whose d SQLite itself reads back as -0.0. */
static int64_t raw_count_negzero(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT d FROM score WHERE d = 0", -1, &s, NULL),
                     SQLITE_OK);
    int64_t n = 0;
    while (sqlite3_step(s) == SQLITE_ROW)
        n += signbit(sqlite3_column_double(s, 0)) != 0;
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static int raw_integrity_ok(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    int ok = sqlite3_step(s) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    sqlite3_close(db);
    return ok;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

/* ---- round trips ------------------------------------------------------------------ */

START_TEST(test_roundtrip_bits)
{
    scratch_make();
    /* Three missing levels: open makes them, mode 0700. */
    char path[512];
    snprintf(path, sizeof path, "%s", scratch("a/b/c/scores.sqlite"));
    ut_cache *c = open_ok(path);
    ck_assert_str_eq(ut_cache_path(c), path);
    struct stat sb;
    ck_assert_int_eq(stat(scratch("a/b/c"), &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0700);
    ck_assert_int_eq(stat(scratch("a"), &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0700);
    int64_t scope = scope_ok(c, 1, "bits");

    /* Random bit patterns of every finite double and the infinities, plus
     * the corner cases REAL affinity or a text round trip would break. */
    enum { N = 4000 };
    static ut_cache_key keys[N];
    static ut_cache_value vals[N];
    block_make(7, N, keys, vals);
    const double special[] = {-0.0, 0.0, INFINITY, -INFINITY, 0x1p-1074, -0x1p-1074, DBL_MAX,
                              -DBL_MAX, 0x1p60, -0x1p63, 1.0, 3.0, 0x1.fffffffffffffp-1, 1e-310};
    size_t n_special = sizeof special / sizeof special[0];
    for (int64_t i = 0; i < N; i++) {
        if ((size_t)i < n_special) {
            vals[i].d = special[i];
        } else {
            uint64_t bits = mix64((uint64_t)i * 77u + 5u);
            memcpy(&vals[i].d, &bits, sizeof bits);
            if (isnan(vals[i].d)) /* NaN has its own test */
                vals[i].d = (double)i;
        }
        vals[i].n_scored = i % 3 == 0 ? INT32_MAX : (int32_t)i;
        vals[i].n_cut = i % 5 == 0 ? INT32_MIN : -(int32_t)i;
    }
    put_ok(c, scope, keys, vals, N);
    ck_assert_int_eq(count_found(c, scope, keys, vals, N), N);

    /* Absent keys: found 0 and the value left untouched. */
    ut_cache_key miss[3];
    block_make(8, 3, miss, NULL);
    ut_cache_value got[3] = {{.d = 42.0, .n_scored = 9, .n_cut = 9}};
    uint8_t found[3] = {9, 9, 9};
    ck_assert_int_eq(ut_cache_get(c, scope, miss, 3, got, found, NULL), DL_OK);
    ck_assert(!found[0] && !found[1] && !found[2]);
    ck_assert(got[0].d == 42.0 && got[0].n_scored == 9);
    ut_cache_close(c);

    /* The file as SQLite itself reads it: d is a REAL, -0.0 kept. */
    ck_assert_int_eq(raw_query_i64(path, "SELECT count(*) FROM score"), N);
    ck_assert_int_eq(raw_query_i64(path, "SELECT count(*) FROM score WHERE typeof(d) <> 'real'"), 0);
    ck_assert_int_eq(raw_query_i64(path, "PRAGMA user_version"), 1);
    ck_assert_int_eq(raw_count_negzero(path), 1);

    /* Reopened: everything still there, bit for bit. */
    c = open_ok(path);
    ck_assert_int_eq(count_found(c, scope, keys, vals, N), N);
    ut_cache_close(c);
    ut_cache_close(NULL);
    scratch_remove();
}
END_TEST

START_TEST(test_nan)
{
    scratch_make();
    const char *path = scratch("nan.sqlite");
    ut_cache *c = open_ok(path);
    int64_t scope = scope_ok(c, 2, NULL);
    ut_cache_key k[3];
    ut_cache_value v[3], got[3];
    uint8_t found[3];
    block_make(1, 3, k, v);
    uint64_t payload = 0xFFF8000000001234ULL; /* negative quiet NaN with a payload */
    v[0].d = NAN;
    v[1].d = -NAN;
    memcpy(&v[2].d, &payload, sizeof payload);
    put_ok(c, scope, k, v, 3);
    ck_assert_int_eq(ut_cache_get(c, scope, k, 3, got, found, NULL), DL_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert(found[i]);
        ck_assert_msg(isnan(got[i].d), "entry %d: not NaN", i);
        ck_assert_int_eq(got[i].n_scored, v[i].n_scored);
    }
    ut_cache_close(c);
    /* Stored as SQL NULL, as the header says. */
    ck_assert_int_eq(raw_query_i64(path, "SELECT count(*) FROM score WHERE d IS NULL"), 3);
    scratch_remove();
}
END_TEST

START_TEST(test_replace)
{
    scratch_make();
    ut_cache *c = open_ok(scratch("r.sqlite"));
    int64_t scope = scope_ok(c, 3, "replace");
    ut_cache_key k[3];
    ut_cache_value v[3];
    block_make(2, 1, k, v);
    k[1] = k[2] = k[0];
    v[0].d = 1.5;
    put_ok(c, scope, k, v, 1);
    v[0].d = 2.5;
    v[0].n_scored = 77;
    put_ok(c, scope, k, v, 1);
    ck_assert_int_eq(count_found(c, scope, k, v, 1), 1);
    ck_assert_int_eq(stat_ok(c).n_entries, 1);
    /* Equal keys within one call: the last wins. */
    v[1] = v[0];
    v[2] = v[0];
    v[1].d = 3.5;
    v[2].d = 4.5;
    put_ok(c, scope, k, v, 3);
    ck_assert_int_eq(count_found(c, scope, k, &v[2], 1), 1);
    ck_assert_int_eq(stat_ok(c).n_entries, 1);
    ut_cache_close(c);
    scratch_remove();
}
END_TEST

/* ---- scopes, clear ---------------------------------------------------------------------- */

typedef struct scope_seen {
    int n;
    ut_cache_scope_info info[4];
    char desc[4][32];
} scope_seen;

static int scope_collect(void *ctx, const ut_cache_scope_info *info)
{
    scope_seen *s = ctx;
    if (s->n < 4) {
        s->info[s->n] = *info;
        snprintf(s->desc[s->n], sizeof s->desc[0], "%s", info->description);
        s->info[s->n].description = s->desc[s->n];
    }
    s->n++;
    return 0;
}

static int scope_stop(void *ctx, const ut_cache_scope_info *info)
{
    (void)info;
    ++*(int *)ctx;
    return 1;
}

START_TEST(test_scopes)
{
    scratch_make();
    const char *path = scratch("s.sqlite");
    ut_cache *c = open_ok(path);
    ut_cache *c2 = open_ok(path);
    int64_t s1 = scope_ok(c, 0x11, "model A");
    int64_t s2 = scope_ok(c, 0x22, NULL);
    ck_assert_int_ne(s1, s2);
    ck_assert_int_eq(scope_ok(c, 0x11, "other text"), s1);
    ck_assert_int_eq(scope_ok(c2, 0x11, NULL), s1);

    /* The same entry key in both scopes holds two values. */
    enum { N = 50 };
    ut_cache_key k[N];
    ut_cache_value v1[N], v2[N];
    block_make(3, N, k, v1);
    for (int i = 0; i < N; i++) {
        v2[i] = v1[i];
        v2[i].d = -v1[i].d - 1.0;
    }
    put_ok(c, s1, k, v1, N);
    ck_assert_int_eq(count_found(c2, s2, k, NULL, N), 0);
    put_ok(c2, s2, k, v2, N - 10);
    ck_assert_int_eq(count_found(c, s1, k, v1, N), N);
    ck_assert_int_eq(count_found(c, s2, k, v2, N), N - 10);
    ck_assert_int_eq(count_found(c, s2 + 1000, k, NULL, N), 0); /* unknown scope: nothing */

    ut_cache_stats st = stat_ok(c2);
    ck_assert_int_eq(st.n_scopes, 2);
    ck_assert_int_eq(st.n_entries, 2 * N - 10);
    ck_assert_int_gt(st.file_bytes, 0);

    scope_seen seen = {0};
    ck_assert_int_eq(ut_cache_scope_each(c, scope_collect, &seen, NULL), DL_OK);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_int_eq(seen.info[0].id, s1);
    ck_assert_str_eq(seen.info[0].description, "model A"); /* the first description stays */
    ck_assert_int_eq(seen.info[0].key[31], 0x11);
    int64_t n_noicl = 0;
    for (int i = 0; i < N; i++)
        n_noicl += k[i].kind == UT_CACHE_NOICL;
    ck_assert_int_gt(n_noicl, 0);
    ck_assert_int_eq(seen.info[0].n_noicl, n_noicl);
    ck_assert_int_eq(seen.info[0].n_icl, N - n_noicl);
    ck_assert_str_eq(seen.info[1].description, "");
    ck_assert_int_eq(seen.info[1].n_noicl + seen.info[1].n_icl, N - 10);
    ck_assert(llabs((long long)(seen.info[1].created - (int64_t)time(NULL))) < 600);
    int calls = 0;
    ck_assert_int_eq(ut_cache_scope_each(c, scope_stop, &calls, NULL), DL_OK);
    ck_assert_int_eq(calls, 1);
    ut_cache_close(c2);
    ut_cache_close(c);
    scratch_remove();
}
END_TEST

START_TEST(test_clear)
{
    scratch_make();
    const char *path = scratch("c.sqlite");
    ut_cache *c = open_ok(path);
    ut_cache *other = open_ok(path);
    int64_t s1 = scope_ok(c, 0x31, "to clear");
    enum { N = 20000 };
    ut_cache_key *k = malloc(N * sizeof *k);
    ut_cache_value *v = malloc(N * sizeof *v);
    ck_assert(k && v);
    block_make(4, N, k, v);
    put_ok(c, s1, k, v, N);
    int64_t big = stat_ok(c).file_bytes;
    ck_assert_int_eq(ut_cache_clear(c, NULL), DL_OK);
    ut_cache_stats st = stat_ok(other);
    ck_assert_int_eq(st.n_scopes, 0);
    ck_assert_int_eq(st.n_entries, 0);
    ck_assert_int_lt(st.file_bytes, big / 4); /* compacted, log emptied */
    ck_assert_int_eq(count_found(other, s1, k, NULL, N), 0);

    /* A scope id held across the clear is unknown, never reused. */
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_put(other, s1, k, v, 10, &e), DL_ERR_NOT_FOUND);
    ck_assert_str_eq(e.file, path);
    int64_t s2 = scope_ok(c, 0x31, "again");
    ck_assert_int_ne(s2, s1);
    put_ok(other, s2, k, v, 10);
    ck_assert_int_eq(stat_ok(c).n_entries, 10);
    free(k);
    free(v);
    ut_cache_close(other);
    ut_cache_close(c);
    scratch_remove();
}
END_TEST

/* ---- arguments, default path -------------------------------------------------------------------------- */

START_TEST(test_usage)
{
    scratch_make();
    ut_cache *c = NULL;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_open(NULL, &c, &e), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_open("", &c, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_open(":memory:", &c, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_open(scratch("x.sqlite"), NULL, NULL), DL_ERR_USAGE);
    ck_assert_ptr_null(c);

    c = open_ok(scratch("u.sqlite"));
    int64_t scope = scope_ok(c, 4, NULL);
    ut_cache_key k[4];
    ut_cache_value v[4];
    uint8_t found[4];
    block_make(5, 4, k, v);
    ck_assert_int_eq(ut_cache_put(c, scope, k, v, -1, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_put(c, scope, NULL, v, 4, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_put(c, scope, k, NULL, 4, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_put(c, scope, NULL, NULL, 0, NULL), DL_OK);
    ck_assert_int_eq(ut_cache_get(c, scope, k, 4, v, NULL, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_get(c, scope, NULL, 0, NULL, NULL, NULL), DL_OK);
    ck_assert_int_eq(ut_cache_scope(c, NULL, NULL, &scope, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_stat(c, NULL, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_scope_each(c, NULL, NULL, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(ut_cache_clear(NULL, NULL), DL_ERR_USAGE);

    /* A bad key anywhere refuses the whole call: nothing stored. */
    k[3].kind = 2;
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_put(c, scope, k, v, 4, &e), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(e.message, "keys[3]"));
    ck_assert_int_eq(ut_cache_get(c, scope, k, 4, v, found, NULL), DL_ERR_USAGE);
    block_make(5, 4, k, v);
    k[2].kind = UT_CACHE_NOICL;
    k[2].example[5] = 1; /* NOICL with an example */
    ck_assert_int_eq(ut_cache_put(c, scope, k, v, 4, NULL), DL_ERR_USAGE);
    ck_assert_int_eq(stat_ok(c).n_entries, 0);
    ut_cache_close(c);
    scratch_remove();
}
END_TEST

START_TEST(test_default_path)
{
    char buf[256];
    dl_error e;
    setenv("DELIFT_CACHE", "/x/y.sqlite", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    ck_assert_int_eq(ut_cache_default_path(buf, sizeof buf, NULL), DL_OK);
    ck_assert_str_eq(buf, "/x/y.sqlite");
    setenv("DELIFT_CACHE", "", 1); /* empty: as if unset */
    ck_assert_int_eq(ut_cache_default_path(buf, sizeof buf, NULL), DL_OK);
    ck_assert_str_eq(buf, "/xdg/delift/scores.sqlite");
    setenv("XDG_CACHE_HOME", "relative", 1); /* the XDG spec: ignore it */
    ck_assert_int_eq(ut_cache_default_path(buf, sizeof buf, NULL), DL_OK);
    ck_assert_str_eq(buf, "/home/u/.cache/delift/scores.sqlite");
    unsetenv("XDG_CACHE_HOME");
    ck_assert_int_eq(ut_cache_default_path(buf, 36, NULL), DL_OK); /* exactly fits */
    ck_assert_str_eq(buf, "/home/u/.cache/delift/scores.sqlite");
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_default_path(buf, 35, &e), DL_ERR_USAGE);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(ut_cache_default_path(NULL, 10, NULL), DL_ERR_USAGE);
    unsetenv("HOME");
    unsetenv("DELIFT_CACHE");
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_default_path(buf, sizeof buf, &e), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(e.message, "DELIFT_CACHE"));
}
END_TEST

/* ---- files that are not ours ------------------------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Opening path fails with DL_ERR_INPUT naming it, with the advice. */
static void expect_input(const char *path, const char *why)
{
    ut_cache *c = NULL;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_open(path, &c, &e), DL_ERR_INPUT);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(e.file, path);
    ck_assert_msg(strstr(e.message, "--no-cache") && strstr(e.message, why), "message: %s",
                  e.message);
}

START_TEST(test_not_a_cache)
{
    scratch_make();
    /* Garbage: refused, and left as it was. */
    static uint8_t junk[8192], back[8192];
    fill_bytes(junk, sizeof junk, 99);
    const char *p = scratch("junk.sqlite");
    write_file(p, junk, sizeof junk);
    expect_input(p, "not a delift score cache");
    FILE *f = fopen(p, "rb");
    ck_assert_int_eq(fread(back, 1, sizeof back, f), sizeof back);
    ck_assert_int_eq(fgetc(f), EOF);
    fclose(f);
    ck_assert(!memcmp(junk, back, sizeof junk));

    /* A SQLite header on garbage pages. */
    memcpy(junk, "SQLite format 3", 16);
    p = scratch("header.sqlite");
    write_file(p, junk, sizeof junk);
    expect_input(p, "not a delift score cache");

    /* Somebody else's database. */
    p = scratch("other.sqlite");
    raw_exec(p, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    expect_input(p, "not a delift score cache");
    ck_assert_int_eq(raw_query_i64(p, "SELECT count(*) FROM t"), 1);

    /* Our version, tables gone. */
    p = scratch("v1-empty.sqlite");
    raw_exec(p, "PRAGMA user_version = 1; CREATE TABLE t(x);");
    expect_input(p, "tables missing");

    /* A newer schema. */
    p = scratch("v2.sqlite");
    ut_cache_close(open_ok(p));
    raw_exec(p, "PRAGMA user_version = 2;");
    expect_input(p, "newer");
    scratch_remove();
}
END_TEST

START_TEST(test_damaged)
{
    scratch_make();
    const char *p = scratch("damaged.sqlite");
    ut_cache *c = open_ok(p);
    int64_t scope = scope_ok(c, 5, NULL);
    enum { N = 20000 };
    ut_cache_key *k = malloc(N * sizeof *k);
    ut_cache_value *v = malloc(N * sizeof *v);
    ck_assert(k && v);
    block_make(6, N, k, v);
    put_ok(c, scope, k, v, N);
    ut_cache_close(c); /* the last close checkpoints the log into the file */
    struct stat sb;
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_gt(sb.st_size, 65536);

    /* Keep page 1 (header, schema), scramble the rest. */
    int fd = open(p, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    static uint8_t junk[4096];
    for (off_t off = 4096; off < sb.st_size; off += (off_t)sizeof junk) {
        fill_bytes(junk, sizeof junk, (uint64_t)off);
        ck_assert_int_eq(pwrite(fd, junk, sizeof junk, off), (ssize_t)sizeof junk);
    }
    close(fd);

    /* Either open notices, or the first read does: bad input either way. */
    dl_error e;
    dl_error_clear(&e);
    dl_status st = ut_cache_open(p, &c, &e);
    if (st == DL_OK) {
        ut_cache_value *got = malloc(N * sizeof *got);
        uint8_t *found = malloc(N);
        st = ut_cache_get(c, scope, k, N, got, found, &e);
        free(got);
        free(found);
        ut_cache_close(c);
    }
    ck_assert_int_eq(st, DL_ERR_INPUT);
    ck_assert_str_eq(e.file, p);
    ck_assert_ptr_nonnull(strstr(e.message, "--no-cache"));
    free(k);
    free(v);
    scratch_remove();
}
END_TEST

/* Rows another program wrote with the right schema but wrong values: get
 * refuses them as bad input rather than returning garbage. */
START_TEST(test_tampered)
{
    scratch_make();
    const char *p = scratch("tampered.sqlite");
    ut_cache *c = open_ok(p);
    int64_t scope = scope_ok(c, 10, NULL);
    ut_cache_key k[3];
    ut_cache_value v[3], got;
    uint8_t found;
    block_make(9, 3, k, v);
    put_ok(c, scope, k, v, 3);
    ut_cache_close(c);
    char sql[512], hex[2][2 * UT_CACHE_KEY_LEN + 1];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < UT_CACHE_KEY_LEN; j++)
            snprintf(hex[i] + 2 * j, 3, "%02x", k[i].target[j]);
    snprintf(sql, sizeof sql,
             "UPDATE score SET d = 'text' WHERE target = X'%s';"
             "UPDATE score SET n_scored = 4294967296 WHERE target = X'%s';",
             hex[0], hex[1]);
    raw_exec(p, sql);
    c = open_ok(p);
    for (int i = 0; i < 3; i++) {
        dl_error e;
        dl_error_clear(&e);
        dl_status st = ut_cache_get(c, scope, &k[i], 1, &got, &found, &e);
        if (i < 2) { /* the text d, the n_scored past int32 */
            ck_assert_int_eq(st, DL_ERR_INPUT);
            ck_assert_str_eq(e.file, p);
            ck_assert_ptr_nonnull(strstr(e.message, "--no-cache"));
        } else {
            ck_assert_int_eq(st, DL_OK);
            ck_assert(found && same_bits(got.d, v[i].d));
        }
    }
    /* The handle stays usable after a refused read. */
    ck_assert_int_eq(stat_ok(c).n_entries, 3);
    ut_cache_close(c);
    scratch_remove();
}
END_TEST

START_TEST(test_io_errors)
{
    scratch_make();
    /* A parent "directory" that is a file. */
    write_file(scratch("plain"), "x", 1);
    char path[512];
    snprintf(path, sizeof path, "%s", scratch("plain/sub/scores.sqlite"));
    ut_cache *c = NULL;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_open(path, &c, &e), DL_ERR_IO);
    ck_assert_str_eq(e.file, path);
    ck_assert_ptr_null(c);

    /* A directory where the file should be. */
    snprintf(path, sizeof path, "%s", scratch("adir"));
    ck_assert_int_eq(mkdir(path, 0700), 0);
    dl_error_clear(&e);
    ck_assert_int_eq(ut_cache_open(path, &c, &e), DL_ERR_IO);
    ck_assert_str_eq(e.file, path);

    /* An unwritable directory (root ignores permissions: not testable). */
    if (geteuid() != 0) {
        ck_assert_int_eq(mkdir(scratch("ro"), 0500), 0);
        snprintf(path, sizeof path, "%s", scratch("ro/scores.sqlite"));
        dl_error_clear(&e);
        ck_assert_int_eq(ut_cache_open(path, &c, &e), DL_ERR_IO);
        ck_assert_str_eq(e.file, path);
        snprintf(path, sizeof path, "%s", scratch("ro/deeper/scores.sqlite"));
        dl_error_clear(&e);
        ck_assert_int_eq(ut_cache_open(path, &c, &e), DL_ERR_IO);
        ck_assert_ptr_nonnull(strstr(e.message, "cannot create the directory"));
    }
    scratch_remove();
}
END_TEST

/* ---- processes --------------------------------------------------------------------------------- */

enum { TWO_BLOCKS = 20, TWO_N = 2000 };

/* A second process writes blocks while this one reads: every read sees a
 * block wholly or not at all, and sees it once it is committed. */
START_TEST(test_two_processes)
{
    scratch_make();
    const char *p = scratch("two.sqlite");
    ut_cache *c = open_ok(p);
    int64_t scope = scope_ok(c, 6, "two");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ut_cache *w = NULL;
        static ut_cache_key k[TWO_N];
        static ut_cache_value v[TWO_N];
        int bad = ut_cache_open(p, &w, NULL) != DL_OK;
        for (uint64_t b = 0; b < TWO_BLOCKS && !bad; b++) {
            block_make(100 + b, TWO_N, k, v);
            bad = ut_cache_put(w, scope, k, v, TWO_N, NULL) != DL_OK;
        }
        ut_cache_close(w);
        _exit(bad);
    }
    static ut_cache_key k[TWO_N];
    static ut_cache_value v[TWO_N];
    int done = 0, partial = 0, status = 0, reads = 0;
    while (!done) {
        done = waitpid(pid, &status, WNOHANG) == pid;
        for (uint64_t b = 0; b < TWO_BLOCKS; b++) {
            block_make(100 + b, TWO_N, k, v);
            int64_t hits = count_found(c, scope, k, v, TWO_N);
            partial += hits != 0 && hits != TWO_N;
            reads++;
        }
        struct timespec pause = {0, 2000000}; /* leave the writer some CPU */
        nanosleep(&pause, NULL);
    }
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(partial == 0, "%d of %d reads saw part of a block", partial, reads);
    ck_assert_int_eq(stat_ok(c).n_entries, TWO_BLOCKS * TWO_N);
    ut_cache_close(c);
    scratch_remove();
}
END_TEST

/* Several processes create one new file at once: one creates the schema,
 * all of them write.  The race is lost only now and then (it was once in
 * about 17 runs of one round, before the WAL switch retried), so it runs
 * several rounds, each on a new file. */
START_TEST(test_concurrent_create)
{
    scratch_make();
    enum { KIDS = 4, N = 1000, ROUNDS = 12 };
    for (int round = 0; round < ROUNDS; round++) {
        char name[64];
        snprintf(name, sizeof name, "new%d/race.sqlite", round);
        const char *p = scratch(name);
        int gate[2];
        ck_assert_int_eq(pipe(gate), 0);
        pid_t kids[KIDS];
        for (int i = 0; i < KIDS; i++) {
            kids[i] = fork();
            ck_assert_int_ge(kids[i], 0);
            if (kids[i] == 0) {
                char ch;
                close(gate[1]);
                (void)!read(gate[0], &ch, 1); /* EOF when the parent lets go */
                static ut_cache_key k[N];
                static ut_cache_value v[N];
                block_make(200 + (uint64_t)i, N, k, v);
                ut_cache *w = NULL;
                uint8_t key[UT_CACHE_KEY_LEN] = {7};
                int64_t scope = 0;
                dl_error e;
                dl_error_clear(&e);
                int bad = ut_cache_open(p, &w, &e) != DL_OK
                       || ut_cache_scope(w, key, "race", &scope, &e) != DL_OK
                       || ut_cache_put(w, scope, k, v, N, &e) != DL_OK;
                if (bad)
                    fprintf(stderr, "writer %d: %s\n", i, e.message);
                ut_cache_close(w);
                _exit(bad);
            }
        }
        close(gate[0]);
        close(gate[1]);
        for (int i = 0; i < KIDS; i++) {
            int status = 0;
            ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                          "round %d: writer %d failed", round, i);
        }
        ck_assert_int_eq(raw_query_i64(p, "SELECT count(*) FROM score"), KIDS * N);
        ck_assert_int_eq(raw_query_i64(p, "SELECT count(*) FROM scope"), 1);
    }
    scratch_remove();
}
END_TEST

enum { KILL_N = 200000, KILL_ROUNDS = 3 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The writer of the kill test: puts blocks round*1000 + 0, 1, ... of
 * KILL_N entries, writing 'S' before each put and 'C' after it. */
static void kill_writer(const char *p, int64_t scope, uint64_t round, int out)
{
    ut_cache_key *k = malloc(KILL_N * sizeof *k);
    ut_cache_value *v = malloc(KILL_N * sizeof *v);
    ut_cache *w = NULL;
    if (!k || !v || ut_cache_open(p, &w, NULL) != DL_OK)
        _exit(1);
    for (uint64_t b = round * 1000;; b++) {
        block_make(b, KILL_N, k, v);
        if (write(out, "S", 1) != 1 || ut_cache_put(w, scope, k, v, KILL_N, NULL) != DL_OK
            || write(out, "C", 1) != 1)
            _exit(1);
    }
}

/* Entries of block b present, checked on every 97th entry (the exact
 * total comes from the row count). */
static int64_t sample_found(ut_cache *c, int64_t scope, uint64_t b, ut_cache_key *k,
                            ut_cache_value *v)
{
    int64_t n = 0;
    for (int64_t i = 0; i < KILL_N; i += 97, n++)
        entry_make(b, i, &k[n], &v[n]);
    return count_found(c, scope, k, v, n) == n ? KILL_N : count_found(c, scope, k, NULL, n);
}

START_TEST(test_kill_atomic)
{
    scratch_make();
    const char *p = scratch("kill.sqlite");
    ut_cache *c = open_ok(p);
    int64_t scope = scope_ok(c, 8, "kill");
    ut_cache_close(c);
    ut_cache_key k[KILL_N / 97 + 1];
    ut_cache_value v[KILL_N / 97 + 1];
    int64_t total = 0, rolled_back = 0;
    double put_s = -1; /* one put's duration, measured in the first round */
    uint64_t rng = (uint64_t)time(NULL);
    for (uint64_t round = 0; round < KILL_ROUNDS; round++) {
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            kill_writer(p, scope, round, fds[1]);
        }
        close(fds[1]);
        char ch;
        ck_assert_int_eq(read(fds[0], &ch, 1), 1);
        ck_assert_int_eq(ch, 'S');
        if (put_s < 0) {
            double t0 = now_s();
            ck_assert_int_eq(read(fds[0], &ch, 1), 1);
            ck_assert_int_eq(ch, 'C');
            put_s = now_s() - t0;
            ck_assert_int_eq(read(fds[0], &ch, 1), 1);
            ck_assert_int_eq(ch, 'S');
        }
        /* A random point of the put now running (or just after it). */
        rng = mix64(rng);
        double wait = 1.1 * put_s * (double)(rng % 1000) / 1000.0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        int64_t reported = round == 0; /* commits the writer reported */
        while (read(fds[0], &ch, 1) == 1)
            reported += ch == 'C';
        close(fds[0]);

        /* Blocks before `reported` whole; the one being written when the
         * kill came whole or absent; the row count says nothing else is
         * there (no part of a block). */
        c = open_ok(p);
        for (int64_t j = 0; j < reported; j++)
            ck_assert_int_eq(sample_found(c, scope, round * 1000 + (uint64_t)j, k, v), KILL_N);
        int64_t last = sample_found(c, scope, round * 1000 + (uint64_t)reported, k, v);
        ck_assert_msg(last == 0 || last == KILL_N, "round %" PRIu64 ": a partial block", round);
        rolled_back += last == 0;
        total += reported * KILL_N + last;
        ck_assert_int_eq(stat_ok(c).n_entries, total);
        ut_cache_close(c);
    }
    ck_assert(raw_integrity_ok(p));
    /* Most kills land inside the transaction (the rest cannot fail this test). */
    printf("test_kill_atomic: %" PRId64 " of %d killed blocks rolled back\n", rolled_back,
           KILL_ROUNDS);
    scratch_remove();
}
END_TEST

/* A full disk, as RLIMIT_FSIZE: writes past the limit fail with EFBIG
 * (SIGXFSZ ignored).  The put fails with DL_ERR_IO, stores nothing, and the
 * file stays readable. */
START_TEST(test_disk_full)
{
    scratch_make();
    const char *p = scratch("full.sqlite");
    enum { SMALL = 1000, BIG = 200000 };
    ut_cache_key *k = malloc(BIG * sizeof *k);
    ut_cache_value *v = malloc(BIG * sizeof *v);
    ck_assert(k && v);
    ut_cache *c = open_ok(p);
    int64_t scope = scope_ok(c, 9, "full");
    block_make(300, SMALL, k, v);
    put_ok(c, scope, k, v, SMALL);
    ut_cache_close(c);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1 << 20, 1 << 20};
        ut_cache *w = NULL;
        dl_error e;
        dl_error_clear(&e);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0 || ut_cache_open(p, &w, NULL) != DL_OK)
            _exit(10);
        block_make(301, BIG, k, v);
        if (ut_cache_put(w, scope, k, v, BIG, &e) != DL_ERR_IO || strcmp(e.file, p) != 0)
            _exit(11);
        /* The handle goes on: nothing of the block, the old block whole. */
        uint8_t found[SMALL];
        ut_cache_value got[SMALL];
        if (ut_cache_get(w, scope, k, SMALL, got, found, NULL) != DL_OK
            || memchr(found, 1, SMALL) != NULL)
            _exit(12);
        block_make(300, SMALL, k, v);
        if (ut_cache_get(w, scope, k, SMALL, got, found, NULL) != DL_OK
            || memchr(found, 0, SMALL) != NULL)
            _exit(13);
        ut_cache_close(w);
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert(raw_integrity_ok(p));
    c = open_ok(p);
    ck_assert_int_eq(stat_ok(c).n_entries, SMALL);
    block_make(300, SMALL, k, v);
    ck_assert_int_eq(count_found(c, scope, k, v, SMALL), SMALL);
    ut_cache_close(c);
    free(k);
    free(v);
    scratch_remove();
}
END_TEST

static Suite *ut_cache_suite(void)
{
    Suite *s = suite_create("ut_cache");
    TCase *tc = tcase_create("basic");
    tcase_add_test(tc, test_roundtrip_bits);
    tcase_add_test(tc, test_nan);
    tcase_add_test(tc, test_replace);
    tcase_add_test(tc, test_scopes);
    tcase_add_test(tc, test_clear);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_default_path);
    tcase_add_test(tc, test_not_a_cache);
    tcase_add_test(tc, test_damaged);
    tcase_add_test(tc, test_tampered);
    tcase_add_test(tc, test_io_errors);
    suite_add_tcase(s, tc);
    /* One case each, so that CK_RUN_CASE can pick one. */
    const struct {
        const char *name;
        const TTest *test;
    } slow[] = {{"two_processes", test_two_processes},
                {"concurrent_create", test_concurrent_create},
                {"kill_atomic", test_kill_atomic},
                {"disk_full", test_disk_full}};
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        TCase *tp = tcase_create(slow[i].name);
        tcase_set_timeout(tp, 180);
        tcase_add_test(tp, slow[i].test);
        suite_add_tcase(s, tp);
    }
    return s;
}

int main(void)
{
    return dl_test_run(ut_cache_suite());
}
