/* ut_cache.h: the score cache of the utility computation, which is also its
 * checkpoint (docs/pipeline.md, "Durability").
 *
 * One SQLite database file holds distances d (spec/DELIFT.md §2) keyed by
 *   scope    a 32-byte key naming everything a score depends on besides the
 *            two records (model file hash, templates, BOS flag, context
 *            length, backend, engine version): computed by the caller;
 *   kind     UT_CACHE_NOICL (d_noICL of a target) or UT_CACHE_ICL
 *            (d_ICL of a target with an example);
 *   target   the target record's content hash (rec.h, 32 bytes);
 *   example  the example record's content hash (all zero for NOICL).
 * A value is the distance as a double (stored bit-exactly: SQLite REAL is an
 * IEEE binary64) plus the number of scored positions and the number of
 * prompt tokens cut to fit the context.  Every double but NaN round-trips bit
 * for bit, -0.0 included; NaN (SQLite cannot store it) is kept as SQL NULL
 * and read back as the quiet NaN of <math.h>, sign and payload not kept.
 *
 * On disk (PRAGMA user_version = 1):
 *   scope(id INTEGER PRIMARY KEY AUTOINCREMENT, key BLOB UNIQUE NOT NULL,
 *         description TEXT, created INTEGER)          -- created: Unix seconds
 *   score(scope, kind, target BLOB, example BLOB, d, n_scored, n_cut,
 *         PRIMARY KEY(scope, kind, example, target)) WITHOUT ROWID
 * d has no declared type on purpose: REAL affinity would store integral
 * values as integers and turn -0.0 into 0.  The key puts example before
 * target because ut_score_icl writes a block per few examples: its entries
 * are then neighbours in the table, and a block rewrites a few pages, not
 * pages all over the file (bench/bench_ut_cache).  Scope ids are never
 * reused, so an id held across a `delift cache clear` fails cleanly instead
 * of writing into somebody else's scope.
 *
 * Durability: the database runs in WAL mode with synchronous=FULL; every
 * ut_cache_put is ONE transaction, so a block of scores is either wholly
 * there or wholly absent after a crash, kill -9 or a full disk, and a value
 * once returned by put is on stable storage.  A run that is killed and
 * started again finds every committed block and computes only the rest,
 * which is how resumption works: there is no other checkpoint.
 *
 * Sharing: several processes may use one file at once (SQLite locking;
 * a writer waits up to 60 s for another's transaction before
 * DL_ERR_IO "database is locked").  One ut_cache handle is used by one
 * thread at a time.
 *
 * Errors: DL_ERR_IO (cannot create/open/write, disk full: err->file is the
 * database path), DL_ERR_INPUT (the file is not a delift cache, is corrupt,
 * or has a newer schema: the message says to delete it or use --no-cache),
 * DL_ERR_NOMEM, DL_ERR_USAGE (bad arguments).  Every error from a handle
 * names its path in err->file.
 */
#ifndef DL_UT_CACHE_H
#define DL_UT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UT_CACHE_KEY_LEN 32

typedef struct ut_cache ut_cache;

enum { UT_CACHE_NOICL = 0, UT_CACHE_ICL = 1 };

typedef struct ut_cache_key {
    uint8_t kind;                     /* UT_CACHE_NOICL or UT_CACHE_ICL */
    uint8_t target[UT_CACHE_KEY_LEN];
    uint8_t example[UT_CACHE_KEY_LEN]; /* all zero for UT_CACHE_NOICL */
} ut_cache_key;

typedef struct ut_cache_value {
    double d;         /* may be NaN (a target that could not be scored) */
    int32_t n_scored; /* positions scored (response tokens + EOS) */
    int32_t n_cut;    /* prompt tokens dropped to fit the context */
} ut_cache_value;

/* The default database path: $DELIFT_CACHE if set and non-empty, else
 * $XDG_CACHE_HOME/delift/scores.sqlite (when absolute: the XDG spec says to
 * ignore a relative one), else $HOME/.cache/delift/scores.sqlite.
 * Writes at most n bytes (NUL included) to buf.  DL_ERR_USAGE when no
 * variable is set or the path does not fit.  Reads the environment: not
 * thread-safe against setenv. */
dl_status ut_cache_default_path(char *buf, size_t n, dl_error *err);

/* Opens the cache at path, creating the file and any missing parent
 * directories (mode 0700) when absent; an existing file is checked to be a
 * delift cache of a schema this code reads (DL_ERR_INPUT otherwise, the
 * file left untouched).  *out owned: ut_cache_close; NULL on failure. */
dl_status ut_cache_open(const char *path, ut_cache **out, dl_error *err);

/* NULL is a no-op. */
void ut_cache_close(ut_cache *c);

/* The path given to open.  Borrowed. */
const char *ut_cache_path(const ut_cache *c);

/* The numeric id of scope `key`, created on first use; description is a
 * human-readable summary stored with it when it is created (for `delift
 * cache info`; may be NULL; a later call does not change it).  The id is
 * valid for this handle only. */
dl_status ut_cache_scope(ut_cache *c, const uint8_t key[UT_CACHE_KEY_LEN], const char *description,
                         int64_t *scope, dl_error *err);

/* Looks up n keys in one read transaction (one consistent snapshot, even
 * while another process writes): found[i] = 1 and values[i] filled when
 * present, found[i] = 0 (values[i] untouched) otherwise.  keys, values and
 * found are caller-owned arrays of n; n = 0 does nothing.  An unknown scope
 * finds nothing.  DL_ERR_USAGE for a kind that is neither NOICL nor ICL or a
 * NOICL key with a non-zero example. */
dl_status ut_cache_get(ut_cache *c, int64_t scope, const ut_cache_key *keys, int64_t n,
                       ut_cache_value *values, uint8_t *found, dl_error *err);

/* Stores n entries in ONE durable transaction (replacing equal keys; of
 * equal keys within one call the last wins).  On any failure nothing of this
 * call is stored and the handle stays usable.  n = 0 does nothing.  Keys are
 * checked as for get (DL_ERR_USAGE); DL_ERR_NOT_FOUND when scope does not
 * exist (any more: the cache was cleared since ut_cache_scope). */
dl_status ut_cache_put(ut_cache *c, int64_t scope, const ut_cache_key *keys,
                       const ut_cache_value *values, int64_t n, dl_error *err);

/* Statistics over the whole file: scopes and entries (counted in one read
 * transaction: a full scan, meant for `delift cache info`). */
typedef struct ut_cache_stats {
    int64_t n_scopes;
    int64_t n_entries;
    int64_t file_bytes; /* the database file plus its write-ahead log */
} ut_cache_stats;
dl_status ut_cache_stat(ut_cache *c, ut_cache_stats *out, dl_error *err);

/* One scope as ut_cache_scope_each reports it. */
typedef struct ut_cache_scope_info {
    int64_t id;
    uint8_t key[UT_CACHE_KEY_LEN];
    const char *description; /* borrowed for the callback; "" when none */
    int64_t created;         /* Unix time, seconds */
    int64_t n_noicl;         /* entries of kind UT_CACHE_NOICL */
    int64_t n_icl;           /* entries of kind UT_CACHE_ICL */
} ut_cache_scope_info;

/* Calls fn for every scope in id order, inside one read transaction; fn
 * must not use c, and returns non-zero to stop early (still DL_OK). */
dl_status ut_cache_scope_each(ut_cache *c, int (*fn)(void *ctx, const ut_cache_scope_info *info),
                              void *ctx, dl_error *err);

/* Deletes every entry and every scope in one transaction (the file remains,
 * emptied), then compacts the file (VACUUM) and empties the log.  Scope ids
 * that handles still hold become unknown (put: DL_ERR_NOT_FOUND). */
dl_status ut_cache_clear(ut_cache *c, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DL_UT_CACHE_H */
