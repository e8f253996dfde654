/* rec_reader.c: the streaming records reader (JSONL or one JSON array).
 *
 * Bytes come through a fixed 64 KiB window over the stream; one record's
 * bytes (a JSONL line, an array element) are gathered into `span`, never
 * more than max_record_bytes of them, then checked (NUL, UTF-8), parsed with
 * json_loadb and mapped.  The JSON-array form is split into elements by a
 * small scanner that tracks strings and bracket depth only: the element's
 * own grammar is jansson's business.
 */
#include "config.h"

#include "rec_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dl_utf8.h"

#define RD_WINDOW (1 << 16)

/* Where the array scanner stands between calls. */
typedef enum rd_array_state {
    RD_ARRAY_FIRST,    /* just after '[' */
    RD_ARRAY_AFTER_EL, /* after an element: ',' or ']' next */
    RD_ARRAY_CLOSED    /* after ']': only whitespace may follow */
} rd_array_state;

/* Ids seen so far: open addressing over entries whose text lives in one
 * arena, so a record costs no allocation of its own. */
typedef struct rd_id_entry {
    uint64_t hash;
    size_t off; /* into arena */
    int64_t line;
} rd_id_entry;

typedef struct rd_idset {
    size_t *slots; /* entry index + 1; 0 is empty */
    size_t n_slots;
    rd_id_entry *ents;
    size_t n, cap;
    rec_buf arena;
} rd_idset;

struct rec_reader {
    rec_reader_opts opts;
    FILE *f;
    int owns_f;
    char *name;

    uint8_t win[RD_WINDOW];
    size_t wpos, wlen;
    int eof;
    int io_errno;       /* errno of a failed read, 0 if none */
    int64_t pos;        /* file offset of win[wpos] */
    int64_t line;       /* line of win[wpos] */
    int64_t line_start; /* file offset where that line starts */

    int started, finished;
    dl_status failed;
    rec_form form;
    rd_array_state astate;
    int64_t n_elements; /* array elements or JSONL lines with a record seen */

    rec_map map;
    int64_t detected_line;
    int64_t n_records, n_skipped;

    rec_buf span; /* current record's raw bytes */
    rec_buf fold; /* folded chat input */
    char idtext[32];
    json_t *cur;
    rec_record rec;
    rd_idset ids;
};

/* ---- the byte window --------------------------------------------------- */

/* Ensures at least `want` unread bytes in the window unless the stream ends.
 * Returns the number available (<= want), 0 at EOF or on error. */
static size_t rd_ensure(rec_reader *r, size_t want)
{
    while (r->wlen - r->wpos < want && !r->eof) {
        if (r->wpos > 0) {
            memmove(r->win, r->win + r->wpos, r->wlen - r->wpos);
            r->wlen -= r->wpos;
            r->wpos = 0;
        }
        size_t got = fread(r->win + r->wlen, 1, sizeof r->win - r->wlen, r->f);
        r->wlen += got;
        if (got == 0) {
            if (ferror(r->f))
                r->io_errno = errno ? errno : EIO;
            r->eof = 1;
        }
    }
    size_t have = r->wlen - r->wpos;
    return have < want ? have : want;
}

static int rd_peek(rec_reader *r)
{
    if (r->wpos == r->wlen && !rd_ensure(r, 1))
        return -1;
    return r->win[r->wpos];
}

static int rd_getc(rec_reader *r)
{
    int c = rd_peek(r);
    if (c < 0)
        return c;
    r->wpos++;
    r->pos++;
    if (c == '\n') {
        r->line++;
        r->line_start = r->pos;
    }
    return c;
}

static int rd_is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Skips JSON whitespace; returns the next byte (not consumed) or -1. */
static int rd_skip_ws(rec_reader *r)
{
    int c;
    while ((c = rd_peek(r)) >= 0 && rd_is_ws(c))
        rd_getc(r);
    return c;
}

static int64_t rd_column(const rec_reader *r)
{
    return r->pos - r->line_start + 1;
}

/* A structural failure at the current position. */
static dl_status rd_fail_here(rec_reader *r, dl_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static dl_status rd_fail_here(rec_reader *r, dl_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_status st = dl_error_vset_at(err, DL_ERR_INPUT, r->name, r->line, rd_column(r), r->pos,
                                    NULL, fmt, ap);
    va_end(ap);
    return st;
}

static dl_status rd_io_error(rec_reader *r, dl_error *err)
{
    return dl_error_set_at(err, DL_ERR_IO, r->name, 0, 0, r->pos, NULL, "read failed: %s",
                           strerror(r->io_errno));
}

/* Appends one byte to span unless the record is already over the limit. */
static dl_status rd_keep(rec_reader *r, int c, int *too_long, dl_error *err)
{
    if (*too_long)
        return DL_OK;
    if (r->span.n >= r->opts.max_record_bytes) {
        *too_long = 1;
        return DL_OK;
    }
    if (r->span.n + 1 >= r->span.cap) {
        dl_status st = rec_buf_reserve(&r->span, r->span.n + 2, err);
        if (st != DL_OK)
            return st;
    }
    r->span.p[r->span.n++] = (char)c;
    return DL_OK;
}

/* ---- ids ----------------------------------------------------------------- */

static uint64_t rd_fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static size_t *rd_idset_find(rd_idset *set, const char *id, uint64_t h)
{
    size_t mask = set->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        size_t *slot = &set->slots[i];
        if (*slot == 0)
            return slot;
        const rd_id_entry *e = &set->ents[*slot - 1];
        if (e->hash == h && !strcmp(set->arena.p + e->off, id))
            return slot;
    }
}

static dl_status rd_idset_grow(rd_idset *set, dl_error *err)
{
    size_t n_slots = set->n_slots ? set->n_slots * 2 : 1024;
    size_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (id table)");
    free(set->slots);
    set->slots = slots;
    set->n_slots = n_slots;
    for (size_t k = 0; k < set->n; k++) {
        size_t mask = n_slots - 1, i = set->ents[k].hash & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = k + 1;
    }
    return DL_OK;
}

/* Returns the line of an earlier record with this id, or 0 after adding it. */
static dl_status rd_idset_add(rd_idset *set, const char *id, int64_t line, int64_t *prev_line,
                              dl_error *err)
{
    *prev_line = 0;
    dl_status st = DL_OK;
    if ((set->n + 1) * 2 > set->n_slots && (st = rd_idset_grow(set, err)) != DL_OK)
        return st;
    uint64_t h = rd_fnv1a(id);
    size_t *slot = rd_idset_find(set, id, h);
    if (*slot) {
        *prev_line = set->ents[*slot - 1].line;
        return DL_OK;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 1024;
        rd_id_entry *ents = realloc(set->ents, cap * sizeof *ents);
        if (!ents)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory (id table)");
        set->ents = ents;
        set->cap = cap;
    }
    size_t off = set->arena.n;
    if ((st = rec_buf_append(&set->arena, id, strlen(id) + 1, err)) != DL_OK)
        return st;
    set->ents[set->n] = (rd_id_entry){h, off, line};
    *slot = ++set->n;
    return DL_OK;
}

static void rd_idset_free(rd_idset *set)
{
    free(set->slots);
    free(set->ents);
    rec_buf_free(&set->arena);
}

/* ---- one record: checks, parse, map -------------------------------------- */

/* Line and column of byte k of span, given where the span starts. */
static void rd_locate(const char *span, size_t k, const rec_loc *start, rec_loc *at)
{
    *at = *start;
    at->offset = start->offset + (int64_t)k;
    for (size_t i = 0; i < k; i++) {
        if (span[i] == '\n') {
            at->line++;
            at->column = 0;
        }
        at->column++;
    }
}

/* "a, b, c" (at most a few keys) for the detection error. */
static void rd_list_keys(json_t *obj, char *buf, size_t n)
{
    const char *key;
    json_t *v;
    size_t used = 0, count = 0;
    buf[0] = '\0';
    json_object_foreach(obj, key, v) {
        (void)v;
        if (count == 6) {
            snprintf(buf + used, n - used, ", ...");
            break;
        }
        int w = snprintf(buf + used, n - used, "%s'%.32s'", count ? ", " : "", key);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
        count++;
    }
    if (count == 0)
        snprintf(buf, n, "none");
}

/* Checks the bytes of a record: no NUL, valid UTF-8, then parses them. */
static dl_status rd_parse(rec_reader *r, const rec_loc *loc, json_t **out, dl_error *err)
{
    rec_loc at;
    const char *s = r->span.p;
    size_t n = r->span.n;
    const char *nul = memchr(s, '\0', n);
    if (nul) {
        rd_locate(s, (size_t)(nul - s), loc, &at);
        return dl_error_set_at(err, DL_ERR_INPUT, at.file, at.line, at.column, at.offset, NULL,
                               "NUL byte in the record");
    }
    size_t bad;
    if (!dl_utf8_valid(s, n, &bad)) {
        rd_locate(s, bad, loc, &at);
        return dl_error_set_at(err, DL_ERR_INPUT, at.file, at.line, at.column, at.offset, NULL,
                               "invalid UTF-8 (byte 0x%02X)", (unsigned)(uint8_t)s[bad]);
    }
    json_error_t jerr;
    *out = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!*out) {
        /* jansson's position counts the bytes read, the bad one included. */
        size_t k = jerr.position > 0 ? (size_t)jerr.position - 1 : 0;
        if (k > n)
            k = n;
        rd_locate(s, k, loc, &at);
        /* jansson reports a failed allocation either with its code or, when
         * its lexer cannot even start, with no message at all. */
        if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0])
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory parsing a record");
        return dl_error_set_at(err, DL_ERR_INPUT, at.file, at.line, at.column, at.offset, NULL,
                               "invalid JSON: %s", jerr.text);
    }
    if (!json_is_object(*out))
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               NULL, "a record must be a JSON object, got %s",
                               rec_json_type_name(*out));
    return DL_OK;
}

/* The record's id text (rec.h): its id field, else auto_id. */
static dl_status rd_id(rec_reader *r, const rec_map *m, int64_t auto_id, const rec_loc *loc,
                       const char **id, dl_error *err)
{
    json_t *v = json_object_get(r->cur, m->id);
    if (!v) {
        snprintf(r->idtext, sizeof r->idtext, "%" PRId64, auto_id);
        *id = r->idtext;
    } else if (json_is_integer(v)) {
        snprintf(r->idtext, sizeof r->idtext, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *id = r->idtext;
    } else if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column,
                                   loc->offset, m->id, "empty id");
        *id = json_string_value(v);
    } else {
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               m->id, "expected a string or an integer id, got %s",
                               rec_json_type_name(v));
    }
    return DL_OK;
}

/* Turns the gathered span into r->rec.  DL_ERR_INPUT for a bad record. */
static dl_status rd_process(rec_reader *r, const rec_loc *loc, int too_long, int64_t auto_id,
                            dl_error *err)
{
    if (too_long)
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               NULL, "record longer than %zu bytes (the limit; see "
                               "--max-line-bytes)", r->opts.max_record_bytes);
    dl_status st = rd_parse(r, loc, &r->cur, err);
    if (st != DL_OK)
        return st;
    rec_map map = r->map;
    if (map.shape == REC_SHAPE_AUTO && !rec_map_detect(r->cur, &map)) {
        char keys[256];
        rd_list_keys(r->cur, keys, sizeof keys);
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               NULL, "cannot detect the record shape from its keys (%s): "
                               "expected messages, instruction/output, prompt/completion or "
                               "question/answer; pass --fields", keys);
    }
    rec_fields fl;
    if ((st = rec_map_extract(&map, r->cur, &r->fold, &fl, loc, err)) != DL_OK)
        return st;
    const char *id = NULL;
    if ((st = rd_id(r, &map, auto_id, loc, &id, err)) != DL_OK)
        return st;
    if (!r->opts.allow_duplicate_ids) {
        int64_t prev;
        if ((st = rd_idset_add(&r->ids, id, loc->line, &prev, err)) != DL_OK)
            return st;
        if (prev)
            return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column,
                                   loc->offset, map.id, "duplicate id '%.64s' (first seen at "
                                   "line %" PRId64 ")", id, prev);
    }
    if (r->map.shape == REC_SHAPE_AUTO) {
        r->map = map; /* detection is committed by the first good record */
        r->detected_line = loc->line;
    }
    rec_record *rec = &r->rec;
    rec->id = id;
    rec->instruction = fl.instruction;
    rec->instruction_len = fl.instruction_len;
    rec->input = fl.input;
    rec->input_len = fl.input_len;
    rec->output = fl.output;
    rec->output_len = fl.output_len;
    r->span.p[r->span.n] = '\0';
    rec->raw = r->span.p;
    rec->raw_len = r->span.n;
    rec->index = r->n_records;
    rec->line = loc->line;
    rec->offset = loc->offset;
    rec_hash_content(fl.instruction, fl.instruction_len, fl.input, fl.input_len, fl.output,
                     fl.output_len, rec->hash);
    return DL_OK;
}

/* ---- JSONL ------------------------------------------------------------- */

/* Reads the next line that is not blank into span, trimmed of surrounding
 * whitespace, with loc at its first byte.  Returns 1 with a line, 0 at the
 * end, -1 on error (err set). */
static int rd_jsonl_line(rec_reader *r, rec_loc *loc, int *too_long, dl_error *err)
{
    for (;;) {
        int c = rd_peek(r);
        while (c == ' ' || c == '\t' || c == '\r') { /* leading blanks, not newlines */
            rd_getc(r);
            c = rd_peek(r);
        }
        if (c < 0)
            return 0;
        if (c == '\n') { /* blank line */
            rd_getc(r);
            continue;
        }
        *loc = (rec_loc){r->name, r->line, rd_column(r), r->pos};
        r->span.n = 0;
        *too_long = 0;
        for (;;) {
            if (r->wpos == r->wlen && !rd_ensure(r, 1))
                break;
            uint8_t *p = r->win + r->wpos;
            size_t avail = r->wlen - r->wpos;
            uint8_t *nl = memchr(p, '\n', avail);
            size_t chunk = nl ? (size_t)(nl - p) : avail;
            if (!*too_long && chunk > r->opts.max_record_bytes - r->span.n)
                *too_long = 1;
            if (!*too_long && rec_buf_append(&r->span, p, chunk, err) != DL_OK)
                return -1;
            r->wpos += chunk;
            r->pos += chunk;
            if (*too_long && !r->opts.skip_invalid)
                return 1; /* the reader stops here: do not read the rest */
            if (nl) {
                rd_getc(r);
                break;
            }
        }
        while (r->span.n && rd_is_ws((uint8_t)r->span.p[r->span.n - 1]))
            r->span.n--; /* CR of a CRLF, trailing blanks */
        return 1;
    }
}

/* ---- the JSON array ------------------------------------------------------- */

/* Gathers one element (the scanner is at its first byte) into span. */
static dl_status rd_array_element(rec_reader *r, rec_loc *loc, int *too_long, dl_error *err)
{
    *loc = (rec_loc){r->name, r->line, rd_column(r), r->pos};
    r->span.n = 0;
    *too_long = 0;
    int c = rd_peek(r);
    if (c == ',' || c == ']')
        return rd_fail_here(r, err, "expected a record in the JSON array, got '%c'", c);
    int depth = 0, in_str = 0, esc = 0;
    dl_status st = DL_OK;
    int scalar = c != '{' && c != '[' && c != '"';
    while ((c = rd_peek(r)) >= 0) {
        if (scalar && (rd_is_ws(c) || c == ',' || c == ']'))
            return DL_OK; /* the terminator stays for the caller */
        rd_getc(r);
        if ((st = rd_keep(r, c, too_long, err)) != DL_OK)
            return st;
        if (*too_long && !r->opts.skip_invalid)
            return DL_OK; /* the reader stops here: do not read the rest */
        if (scalar)
            continue;
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
        if (!in_str && depth == 0)
            return DL_OK; /* a closed container or string */
    }
    if (r->io_errno)
        return rd_io_error(r, err);
    if (scalar)
        return DL_OK;
    return dl_error_set_at(err, DL_ERR_INPUT, r->name, r->line, rd_column(r), r->pos, NULL,
                           "unexpected end of file inside the record that starts at line %"
                           PRId64 " (the JSON array is not closed)", loc->line);
}

/* Moves to the next element.  Returns 1 with an element in span, 0 after a
 * clean end, -1 on a structural error (err set). */
static int rd_array_next(rec_reader *r, rec_loc *loc, int *too_long, dl_error *err)
{
    int c = rd_skip_ws(r);
    if (r->astate == RD_ARRAY_AFTER_EL) {
        if (c == ',') {
            rd_getc(r);
            c = rd_skip_ws(r);
            if (c == ']') {
                rd_fail_here(r, err, "%s", "trailing ',' before ']' in the JSON array");
                return -1;
            }
        } else if (c == ']') {
            rd_getc(r);
            r->astate = RD_ARRAY_CLOSED;
            c = rd_skip_ws(r);
        } else if (c >= 0) {
            char got[8];
            snprintf(got, sizeof got, c >= 0x20 && c < 0x7F ? "'%c'" : "0x%02X", c);
            rd_fail_here(r, err, "expected ',' or ']' after a record in the JSON array, got %s",
                         got);
            return -1;
        }
    } else if (r->astate == RD_ARRAY_FIRST && c == ']') {
        rd_getc(r);
        r->astate = RD_ARRAY_CLOSED;
        c = rd_skip_ws(r);
    }
    if (c < 0) {
        if (r->io_errno)
            rd_io_error(r, err);
        else if (r->astate != RD_ARRAY_CLOSED)
            rd_fail_here(r, err, "%s", "unexpected end of file: the JSON array is not closed");
        return r->io_errno || r->astate != RD_ARRAY_CLOSED ? -1 : 0;
    }
    if (r->astate == RD_ARRAY_CLOSED) {
        rd_fail_here(r, err, "%s", "trailing data after the JSON array");
        return -1;
    }
    if (rd_array_element(r, loc, too_long, err) != DL_OK)
        return -1;
    r->astate = RD_ARRAY_AFTER_EL;
    return 1;
}

/* ---- opening and the main loop -------------------------------------------- */

void rec_reader_opts_init(rec_reader_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    rec_map_init(&opts->map, REC_SHAPE_AUTO);
    opts->max_record_bytes = REC_MAX_RECORD_BYTES_DEFAULT;
}

dl_status rec_reader_open_stream(FILE *stream, const char *name, const rec_reader_opts *opts,
                                 rec_reader **out, dl_error *err)
{
    *out = NULL;
    rec_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name ? name : "<stream>"))) {
        free(r);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory opening a reader");
    }
    if (opts)
        r->opts = *opts;
    else
        rec_reader_opts_init(&r->opts);
    if (r->opts.max_record_bytes == 0)
        r->opts.max_record_bytes = REC_MAX_RECORD_BYTES_DEFAULT;
    r->f = stream;
    r->line = 1;
    r->map = r->opts.map;
    *out = r;
    return DL_OK;
}

dl_status rec_reader_open(const char *path, const rec_reader_opts *opts, rec_reader **out,
                          dl_error *err)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        dl_status code = errno == ENOENT || errno == ENOTDIR ? DL_ERR_NOT_FOUND : DL_ERR_IO;
        return dl_error_set_at(err, code, path, 0, 0, -1, NULL, "cannot open: %s",
                               strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL,
                               "is a directory, not a records file");
    FILE *f = fopen(path, "rb");
    if (!f)
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "cannot open: %s",
                               strerror(errno));
    dl_status st = rec_reader_open_stream(f, path, opts, out, err);
    if (st != DL_OK) {
        fclose(f);
        return st;
    }
    (*out)->owns_f = 1;
    return DL_OK;
}

/* Skips a BOM and decides the form from the first non-space byte. */
static dl_status rd_start(rec_reader *r, dl_error *err)
{
    r->started = 1;
    if (rd_ensure(r, 3) == 3 && r->win[0] == 0xEF && r->win[1] == 0xBB && r->win[2] == 0xBF) {
        r->wpos += 3;
        r->pos += 3;
    }
    int c = rd_skip_ws(r);
    if (c < 0) {
        if (r->io_errno)
            return rd_io_error(r, err);
        return dl_error_set_at(err, DL_ERR_INPUT, r->name, 0, 0, -1, NULL,
                               r->pos == 0 ? "empty file: no records"
                                           : "no records: the file holds only whitespace");
    }
    if (c == '[') {
        rd_getc(r);
        r->form = REC_FORM_ARRAY;
        r->astate = RD_ARRAY_FIRST;
    } else {
        r->form = REC_FORM_JSONL;
    }
    return DL_OK;
}

/* The end of the pool: fine unless no record came through. */
static dl_status rd_finish(rec_reader *r, dl_error *err)
{
    r->finished = 1;
    if (r->io_errno)
        return rd_io_error(r, err);
    if (r->n_records > 0)
        return DL_OK;
    if (r->n_skipped > 0)
        return dl_error_set_at(err, DL_ERR_INPUT, r->name, 0, 0, -1, NULL,
                               "no valid records (%" PRId64 " skipped)", r->n_skipped);
    return dl_error_set_at(err, DL_ERR_INPUT, r->name, 0, 0, -1, NULL,
                           r->form == REC_FORM_ARRAY ? "no records: the JSON array is empty"
                                                     : "no records");
}

dl_status rec_reader_next(rec_reader *r, const rec_record **rec, dl_error *err)
{
    *rec = NULL;
    json_decref(r->cur);
    r->cur = NULL;
    if (r->failed)
        return dl_error_set(err, r->failed, "the reader already failed");
    if (r->finished)
        return DL_OK;
    dl_error local; /* collects the error; the caller's err may be NULL */
    dl_error_clear(&local);
    dl_status st = r->started ? DL_OK : rd_start(r, &local);
    while (st == DL_OK) {
        rec_loc loc;
        int too_long = 0;
        int got = r->form == REC_FORM_JSONL ? rd_jsonl_line(r, &loc, &too_long, &local)
                                            : rd_array_next(r, &loc, &too_long, &local);
        if (got < 0) {
            st = local.code;
            break;
        }
        if (got == 0) {
            st = rd_finish(r, &local);
            break;
        }
        r->n_elements++;
        int64_t auto_id = r->form == REC_FORM_JSONL ? loc.line : r->n_elements;
        st = rd_process(r, &loc, too_long, auto_id, &local);
        if (st == DL_OK) {
            r->n_records++;
            *rec = &r->rec;
            return DL_OK;
        }
        json_decref(r->cur);
        r->cur = NULL;
        if (st == DL_ERR_INPUT && r->opts.skip_invalid) {
            r->n_skipped++;
            if (r->opts.on_problem)
                r->opts.on_problem(r->opts.problem_ctx, &local);
            dl_error_clear(&local);
            st = DL_OK;
        }
    }
    if (st != DL_OK) {
        r->failed = st;
        if (err && err->code == DL_OK)
            *err = local;
    }
    return st;
}

const rec_map *rec_reader_map(const rec_reader *r)
{
    return &r->map;
}

int64_t rec_reader_detected_line(const rec_reader *r)
{
    return r->detected_line;
}

rec_form rec_reader_form(const rec_reader *r)
{
    return r->form;
}

int64_t rec_reader_n_records(const rec_reader *r)
{
    return r->n_records;
}

int64_t rec_reader_n_skipped(const rec_reader *r)
{
    return r->n_skipped;
}

void rec_reader_free(rec_reader *r)
{
    if (!r)
        return;
    json_decref(r->cur);
    if (r->owns_f)
        fclose(r->f);
    free(r->name);
    rec_buf_free(&r->span);
    rec_buf_free(&r->fold);
    rd_idset_free(&r->ids);
    free(r);
}
