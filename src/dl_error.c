/* dl_error.c: the error model (see dl_error.h). */
#include "dl_error.h"

#include <stdio.h>
#include <string.h>

void dl_error_clear(dl_error *err)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->offset = -1;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

dl_status dl_error_vset_at(dl_error *err, dl_status code, const char *file,
                           int64_t line, int64_t column, int64_t offset,
                           const char *field, const char *fmt, va_list ap)
{
    if (!err || err->code != DL_OK || code == DL_OK)
        return code;
    err->code = code;
    err->line = line > 0 ? line : 0;
    err->column = column > 0 ? column : 0;
    err->offset = offset >= 0 ? offset : -1;
    copy_str(err->file, sizeof err->file, file);
    copy_str(err->field, sizeof err->field, field);
    if (fmt)
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    else
        err->message[0] = '\0';
    return code;
}

dl_status dl_error_set_at(dl_error *err, dl_status code, const char *file,
                          int64_t line, int64_t column, int64_t offset,
                          const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_status s = dl_error_vset_at(err, code, file, line, column, offset,
                                   field, fmt, ap);
    va_end(ap);
    return s;
}

dl_status dl_error_set(dl_error *err, dl_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_status s = dl_error_vset_at(err, code, NULL, 0, 0, -1, NULL, fmt, ap);
    va_end(ap);
    return s;
}

void dl_error_locate(dl_error *err, const char *file, int64_t line,
                     const char *field)
{
    if (!err || err->code == DL_OK)
        return;
    if (file && !err->file[0])
        copy_str(err->file, sizeof err->file, file);
    if (line > 0 && err->line == 0)
        err->line = line;
    if (field && !err->field[0])
        copy_str(err->field, sizeof err->field, field);
}

char *dl_error_format(const dl_error *err, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    buf[0] = '\0';
    if (!err)
        return buf;
    size_t used = 0;
#define DL_APPEND(...)                                                       \
    do {                                                                     \
        if (used < n) {                                                      \
            int w_ = snprintf(buf + used, n - used, __VA_ARGS__);            \
            if (w_ > 0)                                                      \
                used += (size_t)w_;                                          \
        }                                                                    \
    } while (0)
    if (err->file[0]) {
        DL_APPEND("%s:", err->file);
        if (err->line > 0) {
            DL_APPEND("%lld:", (long long)err->line);
            if (err->column > 0)
                DL_APPEND("%lld:", (long long)err->column);
        }
        DL_APPEND(" ");
    } else if (err->line > 0) {
        DL_APPEND("line %lld: ", (long long)err->line);
    }
    if (err->field[0])
        DL_APPEND("field '%s': ", err->field);
    if (err->message[0])
        DL_APPEND("%s", err->message);
    else
        DL_APPEND("%s error", dl_status_name(err->code));
    if (err->offset >= 0 && !err->line)
        DL_APPEND(" (at byte %lld)", (long long)err->offset);
#undef DL_APPEND
    return buf;
}

const char *dl_status_name(dl_status code)
{
    switch (code) {
    case DL_OK: return "ok";
    case DL_ERR_USAGE: return "usage";
    case DL_ERR_INPUT: return "input";
    case DL_ERR_IO: return "io";
    case DL_ERR_NOMEM: return "nomem";
    case DL_ERR_UNSUPPORTED: return "unsupported";
    case DL_ERR_NUMERIC: return "numeric";
    case DL_ERR_CANCELLED: return "cancelled";
    case DL_ERR_INTERNAL: return "internal";
    case DL_ERR_NOT_FOUND: return "not_found";
    }
    return "unknown";
}

int dl_status_exit_code(dl_status code)
{
    switch (code) {
    case DL_OK: return 0;
    case DL_ERR_USAGE: return 1;
    case DL_ERR_INPUT:
    case DL_ERR_UNSUPPORTED:
    case DL_ERR_NOT_FOUND: return 2;
    case DL_ERR_CANCELLED: return 130;
    default: return 3;
    }
}
