/* cli_cache.c: `delift cache path|info|clear`, the score cache seen from
 * the shell (src/ut_cache.h).
 *
 * info and clear never create a cache: a missing file is reported as empty
 * (exit 0), so that scripts can ask before the first run.  Flag mistakes
 * exit 1, a file that is not a delift cache 2, I/O failures 3.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "ut_cache.h"

static const char *const CMD = "cache";

static void cache_usage(FILE *out)
{
    fprintf(out,
"Usage: delift cache path|info|clear [--cache PATH] [--json]\n"
"\n"
"The score cache keeps every d_noICL and d_ICL a run computes, keyed by the\n"
"model, the settings and the two records' content hashes, in one SQLite file;\n"
"it is also the checkpoint a killed run resumes from.\n"
"\n"
"Commands:\n"
"  path    print the path used when --cache is not given: $DELIFT_CACHE, else\n"
"          $XDG_CACHE_HOME/delift/scores.sqlite, else\n"
"          $HOME/.cache/delift/scores.sqlite\n"
"  info    the file's size, its scopes (one per model and settings) and how\n"
"          many entries each holds\n"
"  clear   delete every entry and scope; the file stays, emptied and\n"
"          compacted (runs using it meanwhile fail and must be restarted)\n"
"\n"
"Options:\n"
"  --cache PATH   the cache file (info, clear); a missing file is an empty\n"
"                 cache and is not created\n"
"  --json         one JSON object on stdout instead of text\n"
"  -h, --help     this help\n"
"\n"
"Exit codes: 0 ok, 1 usage error, 2 the file is not a delift cache, is\n"
"damaged or is newer than this delift (delete it or pass --no-cache to the\n"
"run), 3 I/O failure.\n");
}

typedef struct cache_opts {
    const char *verb;
    const char *cache;
    int json;
} cache_opts;

/* Returns -1 to go on, else an exit code. */
static int cache_parse(int argc, char **argv, cache_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cache_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strncmp(a, "--cache", 7) && (a[7] == '\0' || a[7] == '=')) {
            const char *val = a[7] == '=' ? a + 8 : NULL;
            if (!val && i + 1 >= argc)
                return cli_usage_error(CMD, "--cache needs a value");
            if (!val)
                val = argv[++i];
            if (o->cache)
                return cli_usage_error(CMD, "--cache given twice");
            if (!*val)
                return cli_usage_error(CMD, "--cache needs a non-empty path");
            o->cache = val;
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (o->verb) {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        } else if (!strcmp(a, "path") || !strcmp(a, "info") || !strcmp(a, "clear")) {
            o->verb = a;
        } else {
            return cli_usage_error(CMD, "unknown subcommand '%s'", a);
        }
    }
    if (!o->verb)
        return cli_usage_error(CMD, "missing subcommand (path, info or clear)");
    if (o->cache && !strcmp(o->verb, "path"))
        return cli_usage_error(CMD, "path takes no --cache (it prints the default)");
    return -1;
}

/* ---- output ---------------------------------------------------------------- */

static int print_json(json_t *o, dl_error *err)
{
    int rc = o ? json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) : -1;
    json_decref(o);
    if (rc != 0 || printf("\n") < 0) {
        dl_error_set(err, DL_ERR_IO, "cannot write the output");
        return -1;
    }
    return 0;
}

/* Machines reading --json get one object even when the command fails. */
static int cache_fail(const cache_opts *o, const char *path, const dl_error *err)
{
    if (o->json) {
        char buf[2048];
        dl_error ignored;
        print_json(json_pack("{s:s?, s:b, s:{s:s, s:s, s:s}}", "path", path, "ok", 0, "error",
                             "code", dl_status_name(err->code), "message", err->message, "text",
                             dl_error_format(err, buf, sizeof buf)),
                   &ignored);
    }
    return cli_report(err);
}

static void hex_key(const uint8_t *key, char out[2 * UT_CACHE_KEY_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < UT_CACHE_KEY_LEN; i++) {
        out[2 * i] = digits[key[i] >> 4];
        out[2 * i + 1] = digits[key[i] & 15];
    }
    out[2 * UT_CACHE_KEY_LEN] = '\0';
}

static void utc_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "%" PRId64, t);
}

typedef struct info_ctx {
    json_t *scopes; /* --json: the array being built; NULL: text */
    int nomem;
} info_ctx;

static int info_scope(void *ctx, const ut_cache_scope_info *s)
{
    info_ctx *ic = ctx;
    char hex[2 * UT_CACHE_KEY_LEN + 1], when[32];
    hex_key(s->key, hex);
    utc_time(s->created, when);
    if (ic->scopes) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I}", "id", (json_int_t)s->id, "key", hex,
                              "description", s->description, "created", when, "n_noicl",
                              (json_int_t)s->n_noicl, "n_icl", (json_int_t)s->n_icl);
        if (!o || json_array_append_new(ic->scopes, o) != 0) {
            ic->nomem = 1;
            return 1;
        }
        return 0;
    }
    printf("scope %" PRId64 ": %" PRId64 " no-ICL, %" PRId64 " ICL entries, created %s\n"
           "  key %s\n",
           s->id, s->n_noicl, s->n_icl, when, hex);
    if (*s->description)
        printf("  %s\n", s->description);
    return 0;
}

/* ---- commands ---------------------------------------------------------------- */

/* 1 when the file exists, 0 when it does not; other stat failures count as
 * existing, for open to report them properly. */
static int cache_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 || errno != ENOENT;
}

static int cache_info(const cache_opts *o, const char *path, ut_cache *c, dl_error *err)
{
    ut_cache_stats st = {0};
    if (c && ut_cache_stat(c, &st, err) != DL_OK)
        return -1;
    info_ctx ic = {0};
    if (o->json && !(ic.scopes = json_array())) {
        dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        return -1;
    }
    if (!o->json) {
        printf("cache: %s%s\n", path, c ? "" : " (no file yet)");
        printf("scopes: %" PRId64 ", entries: %" PRId64 ", bytes: %" PRId64 "\n", st.n_scopes,
               st.n_entries, st.file_bytes);
    }
    if (c && ut_cache_scope_each(c, info_scope, &ic, err) != DL_OK) {
        json_decref(ic.scopes);
        return -1;
    }
    if (ic.nomem) {
        json_decref(ic.scopes);
        dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        return -1;
    }
    if (o->json)
        return print_json(json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:o}", "path", path, "ok", 1,
                                    "exists", c != NULL, "n_scopes", (json_int_t)st.n_scopes,
                                    "n_entries", (json_int_t)st.n_entries, "file_bytes",
                                    (json_int_t)st.file_bytes, "scopes", ic.scopes),
                          err);
    return 0;
}

static int cache_clear(const cache_opts *o, const char *path, ut_cache *c, dl_error *err)
{
    ut_cache_stats st = {0};
    if (c && (ut_cache_stat(c, &st, err) != DL_OK || ut_cache_clear(c, err) != DL_OK))
        return -1;
    if (o->json)
        return print_json(json_pack("{s:s, s:b, s:b, s:I, s:I}", "path", path, "ok", 1, "exists",
                                    c != NULL, "removed_scopes", (json_int_t)st.n_scopes,
                                    "removed_entries", (json_int_t)st.n_entries),
                          err);
    if (c)
        printf("cleared %s: %" PRId64 " entries in %" PRId64 " scopes removed\n", path,
               st.n_entries, st.n_scopes);
    else
        printf("no cache at %s: nothing to clear\n", path);
    return 0;
}

int cli_cache_main(int argc, char **argv)
{
    cache_opts o = {0};
    int rc = cache_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    dl_error err;
    dl_error_clear(&err);
    char def[PATH_MAX];
    const char *path = o.cache;
    if (!path) {
        if (ut_cache_default_path(def, sizeof def, &err) != DL_OK)
            return cache_fail(&o, NULL, &err);
        path = def;
    }
    if (!strcmp(o.verb, "path")) {
        if (o.json) {
            if (print_json(json_pack("{s:s, s:b}", "path", path, "ok", 1), &err) != 0)
                return cli_report(&err);
        } else if (printf("%s\n", path) < 0) {
            dl_error_set(&err, DL_ERR_IO, "cannot write the output");
            return cli_report(&err);
        }
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
    }
    ut_cache *c = NULL;
    if (cache_exists(path) && ut_cache_open(path, &c, &err) != DL_OK)
        return cache_fail(&o, path, &err);
    int failed = !strcmp(o.verb, "info") ? cache_info(&o, path, c, &err)
                                         : cache_clear(&o, path, c, &err);
    ut_cache_close(c);
    if (!failed && (fflush(stdout) != 0 || ferror(stdout))) {
        dl_error_set(&err, DL_ERR_IO, "cannot write the output");
        failed = 1;
    }
    return failed ? cache_fail(&o, path, &err) : CLI_EXIT_OK;
}
