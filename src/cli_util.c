/* cli_util.c: helpers shared by the delift subcommands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ut.h"

int cli_report(const dl_error *err)
{
    char buf[2048];
    fprintf(stderr, "delift: error: %s\n", dl_error_format(err, buf, sizeof buf));
    return dl_status_exit_code(err ? err->code : DL_ERR_INTERNAL);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "delift %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'delift %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int cli_isatty(FILE *stream)
{
    return isatty(fileno(stream));
}

dl_status cli_read_file(const char *path, char **buf, size_t *len, dl_error *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return dl_error_set_at(err, errno == ENOENT ? DL_ERR_NOT_FOUND : DL_ERR_IO, path, 0, 0,
                               -1, NULL, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    int failed = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!b)
        return dl_error_set_at(err, DL_ERR_NOMEM, path, 0, 0, -1, NULL, "out of memory");
    if (failed) {
        free(b);
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "read error");
    }
    b[n] = '\0'; /* n < cap here: the buffer grows as soon as it is full */
    *buf = b;
    *len = n;
    return DL_OK;
}

int cli_templates_load(const char *cmd, const char *const files[2], char *text[2],
                       struct ut_config *ut)
{
    dl_error err;
    dl_error_clear(&err);
    for (int k = 0; k < 2; k++) {
        size_t len;
        if (files[k] && cli_read_file(files[k], &text[k], &len, &err))
            return cli_usage_error(cmd, "%s: cannot read: %s", files[k], err.message);
    }
    ut->tpl_noicl = text[0];
    ut->tpl_icl = text[1];
    if (ut_config_check(ut, &err))
        return cli_usage_error(cmd, "--%s: %s",
                               !strcmp(err.field, "template.noicl") ? "template-noicl"
                               : !strcmp(err.field, "template.icl") ? "template-icl"
                                                                     : "truncate-quantum",
                               err.message);
    return -1;
}
