/* cli_records.c: `delift records inspect`, a report on a pool of records.
 *
 * Inspect always reads in skip-invalid mode so that it can list every
 * problem; --skip-invalid only decides whether problems make the exit code
 * 2.  It keeps a few numbers per record (lengths, hash, id, line), never the
 * records themselves.
 */
#include "config.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dl_sha256.h"
#include "dl_utf8.h"
#include "rec.h"

#define INSPECT_MAX_PROBLEMS 100 /* listed; the rest are counted */
#define INSPECT_MAX_GROUPS 20    /* duplicate groups in the text report */

enum { F_INSTR_CHARS, F_INSTR_BYTES, F_INPUT_CHARS, F_INPUT_BYTES, F_OUTPUT_CHARS,
       F_OUTPUT_BYTES, F_COUNT };

/* What inspect keeps per record. */
typedef struct inspect_row {
    size_t id_off; /* into inspect.ids */
    int64_t line;
    int64_t offset;
    uint8_t hash[REC_HASH_LEN];
    int64_t len[F_COUNT];
} inspect_row;

typedef struct inspect {
    const char *path;
    inspect_row *rows;
    size_t n, cap;
    char *ids; /* NUL-separated id texts */
    size_t ids_n, ids_cap;
    dl_error problems[INSPECT_MAX_PROBLEMS];
    int64_t n_problems;
    int64_t n_empty_input;
    int nomem;
} inspect;

static void inspect_problem(void *ctx, const dl_error *problem)
{
    inspect *in = ctx;
    if (in->n_problems < INSPECT_MAX_PROBLEMS)
        in->problems[in->n_problems] = *problem;
    in->n_problems++;
}

static int inspect_add(inspect *in, const rec_record *rec)
{
    size_t id_len = strlen(rec->id) + 1;
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 256;
        inspect_row *rows = realloc(in->rows, cap * sizeof *rows);
        if (!rows)
            return -1;
        in->rows = rows;
        in->cap = cap;
    }
    if (in->ids_n + id_len > in->ids_cap) {
        size_t cap = in->ids_cap ? in->ids_cap * 2 : 4096;
        while (cap < in->ids_n + id_len)
            cap *= 2;
        char *ids = realloc(in->ids, cap);
        if (!ids)
            return -1;
        in->ids = ids;
        in->ids_cap = cap;
    }
    inspect_row *row = &in->rows[in->n++];
    row->id_off = in->ids_n;
    memcpy(in->ids + in->ids_n, rec->id, id_len);
    in->ids_n += id_len;
    row->line = rec->line;
    row->offset = rec->offset;
    memcpy(row->hash, rec->hash, REC_HASH_LEN);
    row->len[F_INSTR_CHARS] = (int64_t)dl_utf8_count(rec->instruction, rec->instruction_len);
    row->len[F_INSTR_BYTES] = (int64_t)rec->instruction_len;
    row->len[F_INPUT_CHARS] = (int64_t)dl_utf8_count(rec->input, rec->input_len);
    row->len[F_INPUT_BYTES] = (int64_t)rec->input_len;
    row->len[F_OUTPUT_CHARS] = (int64_t)dl_utf8_count(rec->output, rec->output_len);
    row->len[F_OUTPUT_BYTES] = (int64_t)rec->output_len;
    in->n_empty_input += rec->input_len == 0;
    return 0;
}

/* ---- statistics and duplicate groups -------------------------------------- */

typedef struct inspect_stat {
    int64_t min, max;
    double mean, median; /* median of an even count: mean of the middle two */
} inspect_stat;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int inspect_stats(const inspect *in, inspect_stat st[F_COUNT])
{
    int64_t *v = malloc((in->n ? in->n : 1) * sizeof *v);
    if (!v)
        return -1;
    for (int f = 0; f < F_COUNT; f++) {
        double sum = 0;
        for (size_t i = 0; i < in->n; i++) {
            v[i] = in->rows[i].len[f];
            sum += (double)v[i];
        }
        qsort(v, in->n, sizeof *v, cmp_i64);
        size_t h = in->n / 2;
        st[f].min = v[0];
        st[f].max = v[in->n - 1];
        st[f].mean = sum / (double)in->n;
        st[f].median = in->n % 2 ? (double)v[h] : ((double)v[h - 1] + (double)v[h]) / 2.0;
    }
    free(v);
    return 0;
}

/* qsort has no context argument: the comparators read the rows through this
 * file-scope pointer, set only around the sort (single-threaded CLI). */
static const inspect *sort_ctx;

static int cmp_by_hash(const void *a, const void *b)
{
    const inspect_row *x = &sort_ctx->rows[*(const size_t *)a];
    const inspect_row *y = &sort_ctx->rows[*(const size_t *)b];
    int c = memcmp(x->hash, y->hash, REC_HASH_LEN);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int cmp_by_id(const void *a, const void *b)
{
    const inspect_row *x = &sort_ctx->rows[*(const size_t *)a];
    const inspect_row *y = &sort_ctx->rows[*(const size_t *)b];
    int c = strcmp(sort_ctx->ids + x->id_off, sort_ctx->ids + y->id_off);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Row indices sorted so that equal keys are adjacent, in line order. */
static size_t *inspect_sorted(const inspect *in, int (*cmp)(const void *, const void *))
{
    size_t *ix = malloc((in->n ? in->n : 1) * sizeof *ix);
    if (!ix)
        return NULL;
    for (size_t i = 0; i < in->n; i++)
        ix[i] = i;
    sort_ctx = in;
    qsort(ix, in->n, sizeof *ix, cmp);
    sort_ctx = NULL;
    return ix;
}

static int same_hash(const inspect *in, size_t a, size_t b)
{
    return !memcmp(in->rows[a].hash, in->rows[b].hash, REC_HASH_LEN);
}

static int same_id(const inspect *in, size_t a, size_t b)
{
    return !strcmp(in->ids + in->rows[a].id_off, in->ids + in->rows[b].id_off);
}

/* Adds a problem for every repeat of an id (ix sorted by id, then line). */
static void inspect_dup_id_problems(inspect *in, const size_t *ix, const char *id_key)
{
    for (size_t k = 1; k < in->n; k++) {
        size_t first = k - 1;
        while (first > 0 && same_id(in, ix[first - 1], ix[k]))
            first--;
        if (!same_id(in, ix[k - 1], ix[k]))
            continue;
        const inspect_row *row = &in->rows[ix[k]];
        dl_error e;
        dl_error_clear(&e);
        dl_error_set_at(&e, DL_ERR_INPUT, in->path, row->line, 0, row->offset, id_key,
                        "duplicate id '%.64s' (first seen at line %" PRId64 ")",
                        in->ids + row->id_off, in->rows[ix[first]].line);
        inspect_problem(in, &e);
    }
}

/* ---- output ---------------------------------------------------------------- */

static const char *const field_names[3] = {"instruction", "input", "output"};

static void print_text_groups(const inspect *in, const size_t *ix, int by_hash)
{
    size_t groups = 0, shown = 0;
    for (size_t k = 0; k < in->n;) {
        size_t end = k + 1;
        while (end < in->n && (by_hash ? same_hash(in, ix[k], ix[end]) : same_id(in, ix[k], ix[end])))
            end++;
        if (end - k > 1) {
            groups++;
            if (shown < INSPECT_MAX_GROUPS) {
                shown++;
                if (by_hash) {
                    char hex[DL_SHA256_HEX_LEN];
                    printf("  %zu records, sha256 %.16s..., ids:", end - k,
                           dl_sha256_hex(in->rows[ix[k]].hash, hex));
                    for (size_t j = k; j < end; j++)
                        printf(" %s", in->ids + in->rows[ix[j]].id_off);
                } else {
                    printf("  id '%s' at lines", in->ids + in->rows[ix[k]].id_off);
                    for (size_t j = k; j < end; j++)
                        printf(" %" PRId64, in->rows[ix[j]].line);
                }
                printf("\n");
            }
        }
        k = end;
    }
    if (groups == 0)
        printf("  none\n");
    else if (groups > shown)
        printf("  ... and %zu more groups\n", groups - shown);
}

static void print_text(const inspect *in, const rec_reader *r, const inspect_stat *st,
                       const size_t *by_hash, const size_t *by_id, const dl_error *fatal)
{
    char map[512], buf[2048];
    printf("file: %s\n", in->path);
    printf("format: %s\n", rec_form_name(rec_reader_form(r)));
    rec_map_describe(rec_reader_map(r), map, sizeof map);
    if (rec_reader_detected_line(r) > 0)
        printf("mapping: %s, detected at line %" PRId64 "\n", map, rec_reader_detected_line(r));
    else
        printf("mapping: %s\n", map);
    printf("records: %zu\n", in->n);
    printf("skipped: %" PRId64 "\n", rec_reader_n_skipped(r));
    if (st) {
        printf("lengths:              min       mean     median        max\n");
        for (int f = 0; f < F_COUNT; f++)
            printf("  %-11s %-5s %8" PRId64 " %10.1f %10.1f %10" PRId64 "\n",
                   f % 2 ? "" : field_names[f / 2], f % 2 ? "bytes" : "chars", st[f].min,
                   st[f].mean, st[f].median, st[f].max);
        printf("empty input: %" PRId64 " of %zu\n", in->n_empty_input, in->n);
    }
    printf("duplicate content:\n");
    print_text_groups(in, by_hash, 1);
    printf("duplicate ids:\n");
    print_text_groups(in, by_id, 0);
    printf("problems: %" PRId64 "\n", in->n_problems);
    int64_t listed = in->n_problems < INSPECT_MAX_PROBLEMS ? in->n_problems : INSPECT_MAX_PROBLEMS;
    for (int64_t i = 0; i < listed; i++)
        printf("  %s\n", dl_error_format(&in->problems[i], buf, sizeof buf));
    if (in->n_problems > listed)
        printf("  ... and %" PRId64 " more\n", in->n_problems - listed);
    if (fatal)
        printf("stopped: %s\n", dl_error_format(fatal, buf, sizeof buf));
}

static json_t *json_error_obj(const dl_error *e)
{
    char buf[2048];
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "code", dl_status_name(e->code),
                     "file", e->file, "line", (json_int_t)e->line, "column",
                     (json_int_t)e->column, "offset", (json_int_t)e->offset, "field", e->field,
                     "message", e->message, "text", dl_error_format(e, buf, sizeof buf));
}

static json_t *json_groups(const inspect *in, const size_t *ix, int by_hash)
{
    json_t *arr = json_array();
    for (size_t k = 0; arr && k < in->n;) {
        size_t end = k + 1;
        while (end < in->n && (by_hash ? same_hash(in, ix[k], ix[end]) : same_id(in, ix[k], ix[end])))
            end++;
        if (end - k > 1) {
            char hex[DL_SHA256_HEX_LEN];
            json_t *members = json_array();
            for (size_t j = k; j < end; j++) {
                const inspect_row *row = &in->rows[ix[j]];
                json_array_append_new(members, by_hash ? json_string(in->ids + row->id_off)
                                                       : json_integer(row->line));
            }
            json_array_append_new(arr, by_hash ? json_pack("{s:s, s:o}", "hash",
                                                           dl_sha256_hex(in->rows[ix[k]].hash, hex),
                                                           "ids", members)
                                               : json_pack("{s:s, s:o}", "id",
                                                           in->ids + in->rows[ix[k]].id_off,
                                                           "lines", members));
        }
        k = end;
    }
    return arr;
}

static int print_json(const inspect *in, const rec_reader *r, const inspect_stat *st,
                      const size_t *by_hash, const size_t *by_id, const dl_error *fatal, int ok)
{
    const rec_map *m = rec_reader_map(r);
    char desc[512];
    json_t *lengths = json_null();
    if (st) {
        lengths = json_object();
        for (int k = 0; k < 3; k++) {
            json_t *per[2];
            for (int u = 0; u < 2; u++) {
                const inspect_stat *s = &st[2 * k + u];
                per[u] = json_pack("{s:I, s:f, s:f, s:I}", "min", (json_int_t)s->min, "mean",
                                   s->mean, "median", s->median, "max", (json_int_t)s->max);
            }
            json_object_set_new(lengths, field_names[k],
                                json_pack("{s:o, s:o}", "chars", per[0], "bytes", per[1]));
        }
    }
    json_t *problems = json_array();
    int64_t listed = in->n_problems < INSPECT_MAX_PROBLEMS ? in->n_problems : INSPECT_MAX_PROBLEMS;
    for (int64_t i = 0; i < listed; i++)
        json_array_append_new(problems, json_error_obj(&in->problems[i]));
    json_t *root = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:b, s:I, s:s, s:s, s:s, s:s, s:s}, s:I, s:I, s:o, s:I, "
        "s:o, s:o, s:o, s:I, s:I, s:o, s:b}",
        "file", in->path, "format", rec_form_name(rec_reader_form(r)), "mapping", "shape",
        rec_shape_name(m->shape), "description", rec_map_describe(m, desc, sizeof desc),
        "detected", rec_reader_detected_line(r) > 0, "detected_line",
        (json_int_t)rec_reader_detected_line(r), "instruction", m->instruction, "input", m->input,
        "output", m->output, "messages", m->messages, "id", m->id, "records", (json_int_t)in->n,
        "skipped", (json_int_t)rec_reader_n_skipped(r), "lengths", lengths, "empty_input",
        (json_int_t)in->n_empty_input, "duplicate_content", json_groups(in, by_hash, 1),
        "duplicate_ids", json_groups(in, by_id, 0), "problems", problems, "problems_total",
        (json_int_t)in->n_problems, "problems_listed", (json_int_t)listed, "error",
        fatal ? json_error_obj(fatal) : json_null(), "ok", ok);
    if (!root)
        return -1;
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    printf("\n");
    json_decref(root);
    return rc;
}

/* ---- the subcommand ------------------------------------------------------------ */

static void inspect_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift records inspect FILE [--fields MAP] [--skip-invalid] [--json]\n"
            "                              [--max-line-bytes N]\n"
            "\n"
            "Reads a pool of records (JSONL, or one JSON array of objects) and reports the\n"
            "record count, the field mapping, length statistics, duplicates and every problem.\n"
            "\n"
            "  --fields MAP          how JSON keys map to instruction/input/output: a preset\n"
            "                        (auto, alpaca, prompt-completion, question-answer,\n"
            "                        messages) or TARGET=KEY pairs, e.g.\n"
            "                        'instruction=question,output=answer' or\n"
            "                        'instruction=text,output=code,id=task_id'\n"
            "                        (targets: instruction, input, output, id, messages);\n"
            "                        default: detected from the first valid record\n"
            "  --skip-invalid        bad records and duplicate ids are still listed, but do\n"
            "                        not make the exit code 2\n"
            "  --json                print one JSON object (for machines) instead of text\n"
            "  --max-line-bytes N    longest record accepted, in bytes (default 67108864)\n"
            "  -h, --help            this text\n"
            "\n"
            "Reported: format (jsonl or json-array), mapping, record count, skipped count;\n"
            "characters and bytes of instruction, input and output (min, mean, median,\n"
            "max); records with an empty input; groups of records with the same content\n"
            "hash (SHA-256 of instruction, input, output); ids used more than once; every\n"
            "problem as FILE:LINE:COLUMN: field 'F': message (the first %d, then a count).\n"
            "\n"
            "Exit codes: 0 clean (or every problem skipped with --skip-invalid); 1 usage\n"
            "error; 2 a bad record or duplicate id without --skip-invalid, an empty file,\n"
            "no valid record, a broken JSON array, or FILE does not exist; 3 FILE is a\n"
            "directory or cannot be read, or memory ran out.\n"
            "See docs/records.md for the accepted shapes and the id and hash definitions.\n",
            INSPECT_MAX_PROBLEMS);
}

typedef struct inspect_args {
    const char *path;
    rec_reader_opts opts;
    int json;
    int skip_invalid;
} inspect_args;

/* Returns -1 to go on, else the exit code. */
static int inspect_parse_args(int argc, char **argv, inspect_args *a)
{
    static const char *const cmd = "records inspect";
    rec_reader_opts_init(&a->opts);
    int no_more_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (no_more_flags || arg[0] != '-' || !arg[1]) {
            if (a->path)
                return cli_usage_error(cmd, "more than one FILE given ('%s')", arg);
            a->path = arg;
        } else if (!strcmp(arg, "--")) {
            no_more_flags = 1;
        } else if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            inspect_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(arg, "--json")) {
            a->json = 1;
        } else if (!strcmp(arg, "--skip-invalid")) {
            a->skip_invalid = 1;
        } else if (!strncmp(arg, "--fields", 8) || !strncmp(arg, "--max-line-bytes", 16)) {
            /* "--flag VALUE" or "--flag=VALUE" */
            int is_fields = arg[2] == 'f';
            size_t flag_len = is_fields ? 8 : 16;
            const char *val;
            if (arg[flag_len] == '=') {
                val = arg + flag_len + 1;
            } else if (arg[flag_len] != '\0') {
                return cli_usage_error(cmd, "unknown option '%s'", arg);
            } else if (i + 1 >= argc) {
                return cli_usage_error(cmd, "%s needs a value", arg);
            } else {
                val = argv[++i];
            }
            if (is_fields) {
                dl_error e;
                dl_error_clear(&e);
                if (rec_map_parse(val, &a->opts.map, &e) != DL_OK) {
                    char buf[1024];
                    return cli_usage_error(cmd, "--fields: %s", dl_error_format(&e, buf, sizeof buf));
                }
            } else {
                int64_t v;
                if (cli_parse_i64(val, 1, INT64_C(1) << 40, &v))
                    return cli_usage_error(cmd, "--max-line-bytes: expected a whole number of "
                                           "bytes from 1 to 2^40, got '%s'", val);
                a->opts.max_record_bytes = (size_t)v;
            }
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", arg);
        }
    }
    if (!a->path)
        return cli_usage_error(cmd, "missing FILE");
    return -1;
}

/* Reads the whole pool; returns the fatal status (DL_OK when none). */
static dl_status inspect_read(inspect *in, rec_reader *r, dl_error *fatal)
{
    const rec_record *rec;
    dl_status st;
    while ((st = rec_reader_next(r, &rec, fatal)) == DL_OK && rec) {
        if (inspect_add(in, rec))
            return dl_error_set(fatal, DL_ERR_NOMEM, "out of memory");
    }
    return st;
}

static int records_inspect(int argc, char **argv)
{
    inspect_args a = {0};
    int rc = inspect_parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    /* Inspect lists every problem; duplicate ids are found here, not by the reader. */
    inspect *in = calloc(1, sizeof *in);
    dl_error fatal;
    dl_error_clear(&fatal);
    if (!in) {
        dl_error_set(&fatal, DL_ERR_NOMEM, "out of memory");
        return cli_report(&fatal);
    }
    in->path = a.path;
    a.opts.skip_invalid = 1;
    a.opts.allow_duplicate_ids = 1;
    a.opts.on_problem = inspect_problem;
    a.opts.problem_ctx = in;
    rec_reader *r = NULL;
    dl_status st = rec_reader_open(a.path, &a.opts, &r, &fatal);
    if (st != DL_OK) {
        if (a.json) { /* machines still get one object */
            json_t *root = json_pack("{s:s, s:o, s:b}", "file", a.path, "error",
                                     json_error_obj(&fatal), "ok", 0);
            if (root && json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0)
                printf("\n");
            json_decref(root);
        }
        free(in);
        return cli_report(&fatal);
    }
    st = inspect_read(in, r, &fatal);
    size_t *by_hash = inspect_sorted(in, cmp_by_hash);
    size_t *by_id = inspect_sorted(in, cmp_by_id);
    inspect_stat stats[F_COUNT];
    int have_stats = in->n > 0 && by_hash && by_id && inspect_stats(in, stats) == 0;
    if (!by_hash || !by_id || (in->n > 0 && !have_stats)) {
        dl_error_set(&fatal, DL_ERR_NOMEM, "out of memory");
        st = fatal.code;
    } else {
        inspect_dup_id_problems(in, by_id, rec_reader_map(r)->id);
        int ok = st == DL_OK && (a.skip_invalid || in->n_problems == 0);
        const dl_error *stop = st == DL_OK ? NULL : &fatal;
        if (a.json)
            print_json(in, r, have_stats ? stats : NULL, by_hash, by_id, stop, ok);
        else
            print_text(in, r, have_stats ? stats : NULL, by_hash, by_id, stop);
    }
    rc = CLI_EXIT_OK;
    if (in->n_problems > 0 && !a.skip_invalid) {
        char buf[2048];
        fprintf(stderr, "delift: error: %" PRId64 " problem%s in %s (first: %s); "
                "--skip-invalid skips them\n", in->n_problems, in->n_problems == 1 ? "" : "s",
                a.path, dl_error_format(&in->problems[0], buf, sizeof buf));
        rc = CLI_EXIT_INPUT;
    }
    if (st != DL_OK)
        rc = cli_report(&fatal);
    free(by_hash);
    free(by_id);
    rec_reader_free(r);
    free(in->rows);
    free(in->ids);
    free(in);
    return rc;
}

static void records_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift records <subcommand> [<args>]\n"
            "\n"
            "Subcommands:\n"
            "  inspect FILE   validate a pool (JSONL or a JSON array) and report counts,\n"
            "                 mapping, lengths, duplicates and problems\n"
            "\n"
            "Run 'delift records <subcommand> --help' for its options.\n");
}

int cli_records_main(int argc, char **argv)
{
    if (argc < 2) {
        records_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        records_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "inspect"))
        return records_inspect(argc - 1, argv + 1);
    return cli_usage_error("records", "unknown subcommand '%s' (expected inspect)", argv[1]);
}
