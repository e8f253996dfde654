/* dl_error.h: the one error model of delift.
 *
 * Every function that can fail on input or on the environment returns a
 * dl_status and, when the caller passes one, fills a caller-owned dl_error
 * with context: the file, 1-based line and column, the record field and the
 * byte offset where they apply.  The first error wins: once err->code is not
 * DL_OK, later dl_error_set* calls leave it untouched, so the innermost,
 * most specific failure is the one reported.
 *
 * Library code never prints and never exits; only main() and the server's
 * logger write.  Broken invariants (bugs, not input) assert.
 */
#ifndef DL_ERROR_H
#define DL_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Stable result codes: values never change once released. */
typedef enum dl_status {
    DL_OK = 0,
    DL_ERR_USAGE = 1,       /* invalid argument or option from the caller */
    DL_ERR_INPUT = 2,       /* malformed input data (JSONL, GGUF, .npy, HTTP body) */
    DL_ERR_IO = 3,          /* the file system or a stream failed */
    DL_ERR_NOMEM = 4,       /* an allocation failed */
    DL_ERR_UNSUPPORTED = 5, /* well-formed but not supported (a tensor type, an arch) */
    DL_ERR_NUMERIC = 6,     /* NaN/Inf or another numerical failure */
    DL_ERR_CANCELLED = 7,   /* stopped on request (signal, job cancel) */
    DL_ERR_INTERNAL = 8,    /* anything else that is our fault */
    DL_ERR_NOT_FOUND = 9    /* a named thing (file, dataset, job, key) does not exist */
} dl_status;

#define DL_ERROR_FILE_MAX 512
#define DL_ERROR_FIELD_MAX 128
#define DL_ERROR_MSG_MAX 512

/* Caller-owned; zero it or call dl_error_clear() before use.
 * line/column are 1-based, 0 when not applicable; offset is a byte offset
 * into the file, -1 when not applicable.  file and field are "" when unset. */
typedef struct dl_error {
    dl_status code;
    int64_t line;
    int64_t column;
    int64_t offset;
    char file[DL_ERROR_FILE_MAX];
    char field[DL_ERROR_FIELD_MAX];
    char message[DL_ERROR_MSG_MAX];
} dl_error;

/* ---- filling -------------------------------------------------------- */

/* Resets err to DL_OK with no context.  NULL is a no-op. */
void dl_error_clear(dl_error *err);

/* Records code and a printf-style message if err is non-NULL and holds no
 * error yet.  Returns code either way, so `return dl_error_set(...)` works. */
dl_status dl_error_set(dl_error *err, dl_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* As dl_error_set, with location context.  file/field may be NULL; line,
 * column 0 and offset -1 mean "not applicable". */
dl_status dl_error_set_at(dl_error *err, dl_status code, const char *file,
                          int64_t line, int64_t column, int64_t offset,
                          const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 8, 9)))
#endif
    ;

dl_status dl_error_vset_at(dl_error *err, dl_status code, const char *file,
                           int64_t line, int64_t column, int64_t offset,
                           const char *field, const char *fmt, va_list ap);

/* Adds location context to an error that was set without it (a lower layer
 * knows the byte problem, the caller knows the file and line).  Only fills
 * the parts that are still unset.  NULL or DL_OK errors are left alone. */
void dl_error_locate(dl_error *err, const char *file, int64_t line,
                     const char *field);

/* ---- reading -------------------------------------------------------- */

/* "file:line:column: field 'f': message" with absent parts left out.
 * Always NUL-terminates buf when n > 0.  Returns buf. */
char *dl_error_format(const dl_error *err, char *buf, size_t n);

/* Short stable name ("input", "io", ...) for logs and JSON error bodies.
 * Borrowed static string. */
const char *dl_status_name(dl_status code);

/* Process exit code for the CLI's documented scheme (README, "Exit codes"):
 * 0 ok, 1 usage, 2 bad input, 3 runtime failure, 130 cancelled. */
int dl_status_exit_code(dl_status code);

#ifdef __cplusplus
}
#endif

#endif /* DL_ERROR_H */
