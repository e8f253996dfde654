/* rec.h: the records of an instruction-tuning pool, read one at a time.
 *
 * A pool is a file of JSON objects, either JSONL (one object per line) or one
 * JSON array of objects; the first non-space byte decides ('[' means an
 * array, anything else JSONL).  A UTF-8 byte order mark at the start is
 * skipped; in JSONL, CRLF line endings are accepted and blank lines (only
 * spaces, tabs, CR) are skipped.  The reader streams: it holds one record at
 * a time and never more than max_record_bytes of one record, whatever the
 * size of the file.
 *
 * Each object is mapped onto a record (instruction, input, output) as
 * DELIFT.md section 1 defines it, by one of these shapes (docs/records.md):
 *
 *   alpaca             instruction, input (optional, missing means ""), output
 *   prompt-completion  instruction <- prompt, output <- completion, input ""
 *   question-answer    instruction <- question, output <- answer, input ""
 *   messages           a chat: "messages": [{"role","content"}, ...] where
 *                      output = the last message (must be role "assistant"),
 *                      instruction = the message before it (must be "user"),
 *                      input = every earlier message, in order, each written
 *                      as "System: ", "User: " or "Assistant: " + content,
 *                      joined by "\n" ("" for a single exchange)
 *   custom             explicit keys: "instruction=KEY,output=KEY[,input=KEY]
 *                      [,id=KEY]" or "messages=KEY[,id=KEY]"
 *
 * With REC_SHAPE_AUTO the shape is detected from the first record that is a
 * JSON object, trying in order: "messages" is an array, then instruction and
 * output present, then prompt and completion, then question and answer.
 * Every later record must then have that shape.
 *
 * Mapped fields must be JSON strings (a missing input is ""; anything else
 * missing or not a string is an error naming the field).  Strings may not
 * contain U+0000.
 *
 * Identity of a record:
 *   id      its id field (the map's id key, "id" by default) when present: a
 *           non-empty string, or an integer written in decimal; otherwise its
 *           1-based line number (JSONL) or 1-based element index (array),
 *           written in decimal.  Ids are unique within a pool unless
 *           allow_duplicate_ids is set.
 *   hash    SHA-256 over an unambiguous encoding of the content:
 *             "delift-record-v1" 0x00
 *             u64be(len(instruction)) instruction
 *             u64be(len(input))       input
 *             u64be(len(output))      output
 *           where u64be is an 8-byte big-endian byte count and the strings are
 *           the mapped UTF-8 bytes (after JSON unescaping).  Equal hashes mean
 *           equal (instruction, input, output), whatever the file's layout,
 *           key order or id.
 *   raw     the record's bytes exactly as in the file: for JSONL the line
 *           without its "\n" or "\r\n" terminator and without surrounding
 *           spaces/tabs, for an array the element from its first to its last
 *           byte.  Writing raw back reproduces the record "as it was".
 *   line, offset   where raw starts (1-based line, 0-based byte offset).
 *
 * Errors: every failure goes through dl_error with the file name, the 1-based
 * line, the 1-based BYTE column where known, the byte offset and the field
 * ("instruction", "messages[2].role", "id", ...).  Malformed input is
 * DL_ERR_INPUT; a missing file DL_ERR_NOT_FOUND; a directory or a read
 * failure DL_ERR_IO; memory DL_ERR_NOMEM.
 *
 * Per-record problems (invalid JSON, invalid UTF-8, NUL bytes, a record
 * longer than the limit, a bad or missing field, a duplicate id) stop the
 * reader unless skip_invalid is set, in which case each is passed to the
 * on_problem callback and the record is skipped (a too-long record is read
 * past, but never held: memory stays bounded by max_record_bytes).  Structural problems of the
 * file (an empty file, a broken JSON array, garbage after the array, no
 * valid record at all) and I/O failures always stop it.
 *
 * Thread-safety: a reader is used by one thread at a time; distinct readers
 * are independent.  The map and hash functions are reentrant.
 */
#ifndef DL_REC_H
#define DL_REC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default limit on the bytes of one record (one JSONL line, one element). */
#define REC_MAX_RECORD_BYTES_DEFAULT ((size_t)64 << 20)

#define REC_HASH_LEN 32
#define REC_KEY_MAX 128 /* longest JSON key a map holds, with its NUL */

/* ---- shapes and field maps ------------------------------------------ */

typedef enum rec_shape {
    REC_SHAPE_AUTO = 0,          /* detect from the first record */
    REC_SHAPE_ALPACA,            /* instruction, input?, output */
    REC_SHAPE_PROMPT_COMPLETION, /* prompt, completion */
    REC_SHAPE_QUESTION_ANSWER,   /* question, answer */
    REC_SHAPE_MESSAGES,          /* messages: [{role, content}, ...] */
    REC_SHAPE_CUSTOM             /* keys given explicitly */
} rec_shape;

typedef enum rec_form {
    REC_FORM_UNKNOWN = 0, /* nothing read yet */
    REC_FORM_JSONL,
    REC_FORM_ARRAY
} rec_form;

/* Which JSON keys feed which record field.  Plain data: copy freely, no
 * free needed.  An empty key ("") means "not used": input "" means the
 * input is always "", messages is used only by REC_SHAPE_MESSAGES (and by a
 * custom map that names it, whose shape then becomes REC_SHAPE_MESSAGES). */
typedef struct rec_map {
    rec_shape shape;
    char instruction[REC_KEY_MAX];
    char input[REC_KEY_MAX];
    char output[REC_KEY_MAX];
    char messages[REC_KEY_MAX];
    char id[REC_KEY_MAX]; /* "id" unless a custom map says otherwise */
} rec_map;

/* Fills m with the preset keys of shape (REC_SHAPE_AUTO and
 * REC_SHAPE_CUSTOM leave every content key empty; id is "id"). */
void rec_map_init(rec_map *m, rec_shape shape);

/* Parses a --fields value into m.  Accepted: a preset name ("auto",
 * "alpaca", "prompt-completion", "question-answer", "messages"), or a
 * comma-separated list of TARGET=KEY with TARGET one of instruction, input,
 * output, id, messages; spaces around names are ignored.  A list needs
 * instruction and output, or messages (not both).  Errors (DL_ERR_USAGE,
 * err->field = the offending target): an unknown target, an empty target or
 * key, a target given twice, a key longer than REC_KEY_MAX - 1 bytes, a
 * missing required target.  m is untouched on error. */
dl_status rec_map_parse(const char *spec, rec_map *m, dl_error *err);

/* Writes a one-line description, e.g.
 * "alpaca (instruction=instruction, input=input?, output=output, id=id)"
 * ('?' marks the optional input).  NUL-terminates when n > 0.  Returns buf. */
char *rec_map_describe(const rec_map *m, char *buf, size_t n);

/* Stable lowercase names ("alpaca", "jsonl", ...).  Borrowed static strings. */
const char *rec_shape_name(rec_shape shape);
const char *rec_form_name(rec_form form);

/* ---- content hash --------------------------------------------------- */

/* The content hash defined above, over three byte strings (any may be
 * NULL when its length is 0). */
void rec_hash_content(const char *instruction, size_t instruction_len,
                      const char *input, size_t input_len,
                      const char *output, size_t output_len,
                      uint8_t out[REC_HASH_LEN]);

/* ---- records -------------------------------------------------------- */

/* One record.  From rec_reader_next it is BORROWED (owned by the reader,
 * valid until the next call or rec_reader_free); in a rec_pool it is owned
 * by the pool.  All strings are NUL-terminated and contain no NUL. */
typedef struct rec_record {
    const char *id;
    const char *instruction;
    size_t instruction_len;
    const char *input;
    size_t input_len;
    const char *output;
    size_t output_len;
    const char *raw; /* NUL-terminated copy of the raw bytes */
    size_t raw_len;
    int64_t index;  /* 0-based position among the records delivered */
    int64_t line;   /* 1-based line where the record starts */
    int64_t offset; /* byte offset of its first byte (a BOM counts) */
    uint8_t hash[REC_HASH_LEN];
} rec_record;

/* ---- the streaming reader ------------------------------------------- */

/* Called once per skipped record in skip_invalid mode, with the error that
 * describes it (borrowed, valid during the call).  Must not call back into
 * the reader. */
typedef void (*rec_problem_fn)(void *ctx, const dl_error *problem);

typedef struct rec_reader_opts {
    rec_map map;             /* REC_SHAPE_AUTO (the default) detects */
    size_t max_record_bytes; /* 0 means REC_MAX_RECORD_BYTES_DEFAULT */
    int skip_invalid;        /* report bad records and go on */
    int allow_duplicate_ids; /* do not check ids for uniqueness */
    rec_problem_fn on_problem; /* may be NULL */
    void *problem_ctx;
} rec_reader_opts;

typedef struct rec_reader rec_reader;

/* Defaults: auto-detection, 64 MiB limit, stop at the first bad record,
 * ids must be unique, no callback. */
void rec_reader_opts_init(rec_reader_opts *opts);

/* Opens the file at path for reading.  opts NULL means the defaults (they
 * are copied).  On success *out is an owned reader (rec_reader_free).
 * DL_ERR_NOT_FOUND when path does not exist, DL_ERR_IO when it is a
 * directory or cannot be opened. */
dl_status rec_reader_open(const char *path, const rec_reader_opts *opts,
                          rec_reader **out, dl_error *err);

/* As rec_reader_open over an open stream (BORROWED: not closed by the
 * reader; it must stay open until rec_reader_free).  name is what errors
 * call the input (copied; NULL means "<stream>"). */
dl_status rec_reader_open_stream(FILE *stream, const char *name,
                                 const rec_reader_opts *opts,
                                 rec_reader **out, dl_error *err);

/* Reads the next record.  On DL_OK, *rec is the record (borrowed, see
 * rec_record) or NULL at the end of the pool.  An empty pool (no record at
 * all, or every record skipped) is DL_ERR_INPUT at the first end.  After an
 * error the reader is finished: later calls return the same code. */
dl_status rec_reader_next(rec_reader *r, const rec_record **rec, dl_error *err);

/* The map in use: the detected one after the first record (shape
 * REC_SHAPE_AUTO before).  Borrowed, valid for the reader's life. */
const rec_map *rec_reader_map(const rec_reader *r);

/* Line of the record the shape was detected from; 0 when the map was given
 * or nothing has been detected yet. */
int64_t rec_reader_detected_line(const rec_reader *r);

rec_form rec_reader_form(const rec_reader *r);

/* Records delivered so far, and records skipped as problems so far. */
int64_t rec_reader_n_records(const rec_reader *r);
int64_t rec_reader_n_skipped(const rec_reader *r);

/* Closes the reader (and the file it opened itself).  NULL is a no-op. */
void rec_reader_free(rec_reader *r);

/* ---- a whole pool in memory ----------------------------------------- */

typedef struct rec_pool {
    rec_record *records; /* n of them, each owning its strings */
    int64_t n;
    rec_map map;         /* the map used (detected or given) */
    rec_form form;
    int64_t n_skipped;   /* records skipped in skip_invalid mode */
} rec_pool;

/* Reads every record of path into a new pool (*out, owned: rec_pool_free).
 * Same options and errors as the reader; memory grows with the pool. */
dl_status rec_pool_load(const char *path, const rec_reader_opts *opts,
                        rec_pool **out, dl_error *err);

/* NULL is a no-op. */
void rec_pool_free(rec_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* DL_REC_H */
