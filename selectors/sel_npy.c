/* sel_npy.c: .npy header parser, memory-mapped reader and atomic writer
 * (format and contracts in sel_npy.h). */
#include "config.h"

#include "sel_npy.h"
#include "dl_file.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* ---- the header dict: a tiny lexer over a Python literal ----------------- */

/* s[0..n) is the dict text, which starts at byte `base` of the file. */
typedef struct npy_lex {
    const char *s;
    size_t n;
    size_t pos;
    size_t base;
    const char *name;
    dl_error *err;
} npy_lex;

static dl_status lex_fail(npy_lex *lx, dl_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static dl_status lex_fail(npy_lex *lx, dl_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_status s = dl_error_vset_at(lx->err, code, lx->name, 0, 0,
                                   (int64_t)(lx->base + lx->pos), NULL, fmt, ap);
    va_end(ap);
    return s;
}

static void lex_ws(npy_lex *lx)
{
    while (lx->pos < lx->n && (lx->s[lx->pos] == ' ' || lx->s[lx->pos] == '\t' ||
                               lx->s[lx->pos] == '\n' || lx->s[lx->pos] == '\r'))
        lx->pos++;
}

/* Describes the next character for messages ("end of header", "'x'"). */
static const char *lex_what(const npy_lex *lx, char buf[16])
{
    if (lx->pos >= lx->n)
        return "the end of the header";
    unsigned char c = (unsigned char)lx->s[lx->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static dl_status lex_expect(npy_lex *lx, char want, const char *context)
{
    lex_ws(lx);
    if (lx->pos < lx->n && lx->s[lx->pos] == want) {
        lx->pos++;
        return DL_OK;
    }
    char b[16];
    return lex_fail(lx, DL_ERR_INPUT, "header: expected '%c' %s, found %s", want,
                    context, lex_what(lx, b));
}

/* A quoted string without escapes (no numpy header string needs one).
 * On success out[0..cap) holds it NUL-terminated. */
static dl_status lex_string(npy_lex *lx, char *out, size_t cap, const char *context)
{
    lex_ws(lx);
    char b[16];
    if (lx->pos >= lx->n || (lx->s[lx->pos] != '\'' && lx->s[lx->pos] != '"'))
        return lex_fail(lx, DL_ERR_INPUT, "header: expected a quoted string %s, found %s",
                        context, lex_what(lx, b));
    char q = lx->s[lx->pos++];
    size_t len = 0;
    while (lx->pos < lx->n && lx->s[lx->pos] != q) {
        unsigned char c = (unsigned char)lx->s[lx->pos];
        if (c == '\\' || c < 0x20 || c >= 0x7f)
            return lex_fail(lx, DL_ERR_INPUT, "header: unexpected %s inside a string",
                            lex_what(lx, b));
        if (len + 1 >= cap)
            return lex_fail(lx, DL_ERR_INPUT, "header: string %s longer than %zu bytes",
                            context, cap - 1);
        out[len++] = (char)c;
        lx->pos++;
    }
    if (lx->pos >= lx->n)
        return lex_fail(lx, DL_ERR_INPUT, "header: unterminated string %s", context);
    lx->pos++;
    out[len] = '\0';
    return DL_OK;
}

static int lex_word(npy_lex *lx, const char *w)
{
    size_t k = strlen(w);
    if (lx->n - lx->pos < k || memcmp(lx->s + lx->pos, w, k) != 0)
        return 0;
    /* The word must end here: "Falsey" is not False. */
    if (lx->pos + k < lx->n) {
        char c = lx->s[lx->pos + k];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_')
            return 0;
    }
    lx->pos += k;
    return 1;
}

/* A non-negative decimal dimension; Python 2's long suffix 'L' is allowed
 * because old numpy wrote (3L, 4L). */
static dl_status lex_dim(npy_lex *lx, int64_t *out)
{
    lex_ws(lx);
    char b[16];
    if (lx->pos >= lx->n || lx->s[lx->pos] < '0' || lx->s[lx->pos] > '9')
        return lex_fail(lx, DL_ERR_INPUT,
                        "header: expected a non-negative integer in 'shape', found %s",
                        lex_what(lx, b));
    int64_t v = 0;
    while (lx->pos < lx->n && lx->s[lx->pos] >= '0' && lx->s[lx->pos] <= '9') {
        int d = lx->s[lx->pos] - '0';
        if (v > (INT64_MAX - d) / 10)
            return lex_fail(lx, DL_ERR_INPUT, "header: dimension in 'shape' overflows int64");
        v = v * 10 + d;
        lx->pos++;
    }
    if (lx->pos < lx->n && lx->s[lx->pos] == 'L')
        lx->pos++;
    *out = v;
    return DL_OK;
}

#define NPY_NDIM_PARSE 32

/* '(' [dim (',' dim)* [',']] ')', with Python's rule that one dimension
 * needs its trailing comma: (3) is the integer 3, not a shape. */
static dl_status lex_shape(npy_lex *lx, int64_t *dims, int *ndim)
{
    dl_status s = lex_expect(lx, '(', "to open the 'shape' tuple");
    if (s)
        return s;
    int k = 0, trailing_comma = 0;
    lex_ws(lx);
    while (lx->pos < lx->n && lx->s[lx->pos] != ')') {
        if (k == NPY_NDIM_PARSE)
            return lex_fail(lx, DL_ERR_UNSUPPORTED, "header: more than %d dimensions",
                            NPY_NDIM_PARSE);
        if ((s = lex_dim(lx, &dims[k])) != DL_OK)
            return s;
        k++;
        trailing_comma = 0;
        lex_ws(lx);
        if (lx->pos < lx->n && lx->s[lx->pos] == ',') {
            lx->pos++;
            trailing_comma = 1;
            lex_ws(lx);
        } else if (lx->pos < lx->n && lx->s[lx->pos] != ')') {
            char b[16];
            return lex_fail(lx, DL_ERR_INPUT,
                            "header: expected ',' or ')' in 'shape', found %s", lex_what(lx, b));
        }
    }
    if (lx->pos >= lx->n)
        return lex_fail(lx, DL_ERR_INPUT, "header: unterminated 'shape' tuple");
    if (k == 1 && !trailing_comma)
        return lex_fail(lx, DL_ERR_INPUT,
                        "header: 'shape' (n) is not a tuple; a 1-D shape is written (n,)");
    lx->pos++; /* ')' */
    *ndim = k;
    return DL_OK;
}

/* '<f4' and friends; fills dtype, big_endian and itemsize. */
static dl_status npy_descr_decode(npy_lex *lx, const char *d, sel_npy_header *h)
{
    char order = d[0];
    if (order != '<' && order != '>' && order != '|')
        return lex_fail(lx, DL_ERR_UNSUPPORTED,
                        "header: 'descr' '%s' is not a simple dtype with a '<', '>' or '|' byte "
                        "order (expected '<f4', '<f8', '<i4' or '<i8')", d);
    char kind = d[1];
    const char *num = d + 2;
    if (!*num || strspn(num, "0123456789") != strlen(num) || strlen(num) > 7)
        return lex_fail(lx, DL_ERR_UNSUPPORTED,
                        "header: unsupported 'descr' '%s' (expected '<f4', '<f8', '<i4' or '<i8')",
                        d);
    long size = strtol(num, NULL, 10);
    h->big_endian = order == '>';
    if ((kind == 'f' || kind == 'i') && (size == 4 || size == 8) && order != '|') {
        h->dtype = kind == 'f' ? (size == 4 ? SEL_NPY_F32 : SEL_NPY_F64)
                               : (size == 4 ? SEL_NPY_I32 : SEL_NPY_I64);
        h->itemsize = (size_t)size;
        return DL_OK;
    }
    if (kind == 'S' && order == '|' && size >= 1) {
        h->dtype = SEL_NPY_BYTES;
        h->itemsize = (size_t)size;
        return DL_OK;
    }
    if (kind == 'U' && order != '|' && size >= 1) {
        h->dtype = SEL_NPY_UNICODE;
        h->itemsize = (size_t)size * 4;
        return DL_OK;
    }
    return lex_fail(lx, DL_ERR_UNSUPPORTED,
                    "header: unsupported dtype '%s' (expected '<f4', '<f8', '<i4' or '<i8')", d);
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

/* One "key: value" pair; *seen collects the keys found so far. */
static dl_status npy_dict_item(npy_lex *lx, sel_npy_header *h, int64_t *dims, int *ndim,
                               int *seen)
{
    char key[32], val[32];
    size_t key_pos = lx->pos;
    dl_status s = lex_string(lx, key, sizeof key, "as a dict key");
    if (s)
        return s;
    int which = !strcmp(key, "descr") ? KEY_DESCR
              : !strcmp(key, "fortran_order") ? KEY_FORTRAN
              : !strcmp(key, "shape") ? KEY_SHAPE : 0;
    if (!which) {
        lx->pos = key_pos;
        return lex_fail(lx, DL_ERR_INPUT,
                        "header: unknown key '%s' (expected 'descr', 'fortran_order', 'shape')",
                        key);
    }
    if (*seen & which) {
        lx->pos = key_pos;
        return lex_fail(lx, DL_ERR_INPUT, "header: duplicate key '%s'", key);
    }
    *seen |= which;
    if ((s = lex_expect(lx, ':', "after a dict key")) != DL_OK)
        return s;
    lex_ws(lx);
    size_t val_pos = lx->pos;
    if (which == KEY_DESCR) {
        if ((s = lex_string(lx, val, sizeof val, "for 'descr'")) != DL_OK)
            return s;
        size_t end = lx->pos;
        lx->pos = val_pos; /* errors about the dtype point at its value */
        if ((s = npy_descr_decode(lx, val, h)) != DL_OK)
            return s;
        lx->pos = end;
        return DL_OK;
    }
    if (which == KEY_FORTRAN) {
        if (lex_word(lx, "False"))
            return DL_OK;
        if (lex_word(lx, "True")) {
            lx->pos = val_pos;
            return lex_fail(lx, DL_ERR_UNSUPPORTED,
                            "header: fortran_order True (column-major) is not supported; "
                            "save a C-order array (np.ascontiguousarray)");
        }
        char b[16];
        return lex_fail(lx, DL_ERR_INPUT,
                        "header: expected True or False for 'fortran_order', found %s",
                        lex_what(lx, b));
    }
    return lex_shape(lx, dims, ndim);
}

/* The dict itself, then only padding. */
static dl_status npy_dict_parse(npy_lex *lx, sel_npy_header *h, int64_t *dims, int *ndim)
{
    dl_status s = lex_expect(lx, '{', "at the start of the header dict");
    if (s)
        return s;
    int seen = 0;
    for (;;) {
        lex_ws(lx);
        if (lx->pos < lx->n && lx->s[lx->pos] == '}') {
            lx->pos++;
            break;
        }
        if ((s = npy_dict_item(lx, h, dims, ndim, &seen)) != DL_OK)
            return s;
        lex_ws(lx);
        if (lx->pos < lx->n && lx->s[lx->pos] == ',') {
            lx->pos++;
            continue;
        }
        if ((s = lex_expect(lx, '}', "or ',' after a dict value")) != DL_OK)
            return s;
        break;
    }
    if (seen != (KEY_DESCR | KEY_FORTRAN | KEY_SHAPE))
        return lex_fail(lx, DL_ERR_INPUT, "header: missing key '%s'",
                        !(seen & KEY_DESCR) ? "descr"
                        : !(seen & KEY_FORTRAN) ? "fortran_order" : "shape");
    lex_ws(lx);
    if (lx->pos != lx->n) {
        char b[16];
        return lex_fail(lx, DL_ERR_INPUT, "header: unexpected %s after the dict",
                        lex_what(lx, b));
    }
    return DL_OK;
}

/* ---- the header --------------------------------------------------------- */

static dl_status npy_preamble(const uint8_t *buf, size_t len, const char *name,
                              sel_npy_header *h, size_t *dict_off, size_t *dict_len,
                              dl_error *err)
{
    size_t at = 0; /* how much of the magic matches */
    while (at < len && at < 6 && buf[at] == npy_magic[at])
        at++;
    if (at < 6 && at < len)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, (int64_t)at, NULL,
                               "not a .npy file: expected the magic \\x93NUMPY at byte 0");
    if (len < 10)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, (int64_t)len, NULL,
                               "truncated .npy preamble: %zu bytes, expected at least 10", len);
    int major = buf[6], minor = buf[7];
    if (major < 1 || major > 3 || minor != 0)
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, name, 0, 0, 6, NULL,
                               ".npy version %d.%d: expected 1.0, 2.0 or 3.0", major, minor);
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)buf[8] | (size_t)buf[9] << 8;
        off = 10;
    } else {
        if (len < 12)
            return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, (int64_t)len, NULL,
                                   "truncated .npy %d.0 preamble: expected 12 bytes", major);
        hl = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
             (size_t)buf[11] << 24;
        off = 12;
    }
    if (hl > SEL_NPY_HEADER_MAX)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, 8, NULL,
                               "header length %zu exceeds the limit of %zu bytes", hl,
                               SEL_NPY_HEADER_MAX);
    if (hl > len - off)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, 8, NULL,
                               "header length %zu runs past the end of the file (%zu bytes)", hl,
                               len);
    h->version = major;
    *dict_off = off;
    *dict_len = hl;
    return DL_OK;
}

/* Size checks: overflow of prod(shape) * itemsize, truncation, trailing bytes. */
static dl_status npy_check_size(const int64_t *dims, int ndim, size_t len, const char *name,
                                sel_npy_header *h, dl_error *err)
{
    uint64_t count = 1, bytes;
    for (int k = 0; k < ndim; k++)
        if (__builtin_mul_overflow(count, (uint64_t)dims[k], &count) || count > INT64_MAX)
            return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, (int64_t)h->data_offset, NULL,
                                   "shape overflows: the element count exceeds 2^63");
    if (__builtin_mul_overflow(count, (uint64_t)h->itemsize, &bytes) || bytes > SIZE_MAX)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, (int64_t)h->data_offset, NULL,
                               "shape overflows: %" PRIu64 " elements of %zu bytes", count,
                               h->itemsize);
    size_t avail = len - h->data_offset;
    if (bytes > avail)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, (int64_t)len, NULL,
                               "truncated data: the shape needs %" PRIu64
                               " bytes from byte %zu, the file has %zu", bytes, h->data_offset,
                               avail);
    if (bytes < avail)
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0,
                               (int64_t)(h->data_offset + bytes), NULL,
                               "%zu bytes after the data: the shape needs only %" PRIu64,
                               avail - (size_t)bytes, bytes);
    h->count = (int64_t)count;
    h->data_bytes = (size_t)bytes;
    return DL_OK;
}

dl_status sel_npy_header_parse(const uint8_t *buf, size_t len, const char *name,
                               sel_npy_header *hdr, dl_error *err)
{
    if (!name)
        name = "<buffer>";
    if (!buf && len)
        return dl_error_set(err, DL_ERR_USAGE, "sel_npy_header_parse: NULL buffer");
    sel_npy_header h;
    memset(&h, 0, sizeof h);
    size_t off = 0, hl = 0;
    dl_status s = npy_preamble(buf, len, name, &h, &off, &hl, err);
    if (s)
        return s;
    npy_lex lx = {(const char *)buf + off, hl, 0, off, name, err};
    int64_t dims[NPY_NDIM_PARSE];
    int ndim = -1;
    if ((s = npy_dict_parse(&lx, &h, dims, &ndim)) != DL_OK)
        return s;
    if (ndim > 2) {
        char txt[96];
        size_t used = 0;
        for (int k = 0; k < ndim && used < sizeof txt - 24; k++)
            used += (size_t)snprintf(txt + used, sizeof txt - used, "%s%" PRId64,
                                     k ? ", " : "", dims[k]);
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, name, 0, 0, (int64_t)off, NULL,
                               "%d-D array (shape (%s)): expected 2-D (or 1-D) data", ndim, txt);
    }
    h.ndim = ndim;
    h.shape[0] = h.shape[1] = 1;
    for (int k = 0; k < ndim; k++)
        h.shape[k] = dims[k];
    h.data_offset = off + hl;
    if ((s = npy_check_size(dims, ndim, len, name, &h, err)) != DL_OK)
        return s;
    *hdr = h;
    return DL_OK;
}

/* ---- element access ------------------------------------------------------ */

static uint64_t npy_load(const uint8_t *p, size_t size, int big)
{
    uint64_t v = 0;
    for (size_t k = 0; k < size; k++)
        v |= (uint64_t)p[big ? size - 1 - k : k] << (8 * k);
    return v;
}

int64_t sel_npy_get_i64(const uint8_t *buf, const sel_npy_header *hdr, int64_t i)
{
    assert(i >= 0 && i < hdr->count);
    assert(hdr->dtype == SEL_NPY_I32 || hdr->dtype == SEL_NPY_I64);
    const uint8_t *p = buf + hdr->data_offset + (size_t)i * hdr->itemsize;
    uint64_t v = npy_load(p, hdr->itemsize, hdr->big_endian);
    if (hdr->itemsize == 4)
        return (int64_t)(int32_t)(uint32_t)v;
    return (int64_t)v;
}

double sel_npy_get_f64(const uint8_t *buf, const sel_npy_header *hdr, int64_t i)
{
    assert(i >= 0 && i < hdr->count);
    assert(hdr->dtype == SEL_NPY_F32 || hdr->dtype == SEL_NPY_F64);
    const uint8_t *p = buf + hdr->data_offset + (size_t)i * hdr->itemsize;
    uint64_t v = npy_load(p, hdr->itemsize, hdr->big_endian);
    if (hdr->itemsize == 4) {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* ---- dense matrices ------------------------------------------------------- */

/* Converts the data to an owned float32 array (float64, big-endian or
 * unaligned input).  A finite float64 beyond float32's range is an error:
 * it would silently become Inf. */
static dl_status npy_mat_convert(sel_npy_mat *m, const uint8_t *buf, const sel_npy_header *h,
                                 const char *name, dl_error *err)
{
    size_t n = (size_t)h->count;
    float *dst = malloc(n ? n * sizeof *dst : 1);
    if (!dst)
        return dl_error_set_at(err, DL_ERR_NOMEM, name, 0, 0, -1, NULL,
                               "out of memory converting %zu elements to float32", n);
    for (size_t i = 0; i < n; i++) {
        double v = sel_npy_get_f64(buf, h, (int64_t)i);
        if (isfinite(v) && (v > FLT_MAX || v < -FLT_MAX)) {
            free(dst);
            return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0,
                                   (int64_t)(h->data_offset + i * h->itemsize), NULL,
                                   "element %zu (%g) is beyond float32's range", i, v);
        }
        dst[i] = (float)v;
    }
    m->owned_ = dst;
    m->data = dst;
    m->borrowed = 0;
    return DL_OK;
}

dl_status sel_npy_mat_from_buffer(const void *buf, size_t len, const char *name,
                                  unsigned flags, sel_npy_mat **out, dl_error *err)
{
    if (!out)
        return dl_error_set(err, DL_ERR_USAGE, "sel_npy_mat_from_buffer: NULL out");
    *out = NULL;
    if (!name)
        name = "<buffer>";
    sel_npy_header h;
    dl_status s = sel_npy_header_parse(buf, len, name, &h, err);
    if (s)
        return s;
    if (h.dtype != SEL_NPY_F32 && h.dtype != SEL_NPY_F64)
        return dl_error_set_at(err, DL_ERR_UNSUPPORTED, name, 0, 0, h.version == 1 ? 10 : 12,
                               NULL, "header: dtype is not float32 or float64 (expected '<f4' or "
                               "'<f8')");
    if (h.ndim != 2 && !(h.ndim == 1 && (flags & SEL_NPY_ALLOW_1D)))
        return dl_error_set_at(err, DL_ERR_INPUT, name, 0, 0, h.version == 1 ? 10 : 12, NULL,
                               "header: %d-D array: expected a 2-D matrix%s", h.ndim,
                               (flags & SEL_NPY_ALLOW_1D) ? " or a 1-D vector" : "");
    sel_npy_mat *m = calloc(1, sizeof *m);
    if (!m)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    m->rows = h.shape[0];
    m->cols = h.ndim == 2 ? h.shape[1] : 1;
    m->stride = m->cols;
    m->file_dtype = h.dtype;
    m->file_big_endian = h.big_endian;
    const uint8_t *data = (const uint8_t *)buf + h.data_offset;
    if (h.dtype == SEL_NPY_F32 && !h.big_endian && ((uintptr_t)data % sizeof(float)) == 0) {
        m->data = (const float *)(const void *)data;
        m->borrowed = 1;
    } else if ((s = npy_mat_convert(m, buf, &h, name, err)) != DL_OK) {
        free(m);
        return s;
    }
    *out = m;
    return DL_OK;
}

dl_status sel_npy_mat_open(const char *path, unsigned flags, sel_npy_mat **out, dl_error *err)
{
    if (!out || !path)
        return dl_error_set(err, DL_ERR_USAGE, "sel_npy_mat_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dl_error_set_at(err, errno == ENOENT ? DL_ERR_NOT_FOUND : DL_ERR_IO, path, 0, 0,
                               -1, NULL, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "%s",
                               S_ISREG(st.st_mode) ? strerror(e) : "not a regular file");
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "mmap failed: %s",
                                   strerror(e));
        }
    }
    close(fd); /* the mapping keeps the file */
    dl_status s = sel_npy_mat_from_buffer(map, len, path, flags, out, err);
    if (s || !(*out)->borrowed) {
        if (map)
            munmap(map, len);
        return s;
    }
    (*out)->map_ = map;
    (*out)->map_len_ = len;
    return DL_OK;
}

void sel_npy_mat_free(sel_npy_mat *m)
{
    if (!m)
        return;
    if (m->map_)
        munmap(m->map_, m->map_len_);
    free(m->owned_);
    free(m);
}

/* ---- writing -------------------------------------------------------------- */

static const char *npy_descr_of(sel_npy_dtype t, size_t *itemsize)
{
    switch (t) {
    case SEL_NPY_F32: *itemsize = 4; return "<f4";
    case SEL_NPY_F64: *itemsize = 8; return "<f8";
    case SEL_NPY_I32: *itemsize = 4; return "<i4";
    case SEL_NPY_I64: *itemsize = 8; return "<i8";
    default: return NULL;
    }
}

size_t sel_npy_header_encode(sel_npy_dtype dtype, int ndim, const int64_t *shape, uint8_t *out,
                             size_t cap)
{
    size_t itemsize;
    const char *descr = npy_descr_of(dtype, &itemsize);
    if (!descr || ndim < 0 || ndim > 2 || (ndim && !shape))
        return 0;
    char shp[64];
    if (ndim == 0)
        snprintf(shp, sizeof shp, "()");
    else if (ndim == 1)
        snprintf(shp, sizeof shp, "(%" PRId64 ",)", shape[0]);
    else
        snprintf(shp, sizeof shp, "(%" PRId64 ", %" PRId64 ")", shape[0], shape[1]);
    char dict[160];
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                      descr, shp);
    /* magic(6) + version(2) + len(2) + dict + spaces + '\n', a multiple of 64 */
    size_t total = (10 + (size_t)dl + 1 + 63) / 64 * 64;
    if (dl < 0 || total > cap || total - 10 > 65535)
        return 0;
    memcpy(out, npy_magic, 6);
    out[6] = 1;
    out[7] = 0;
    out[8] = (uint8_t)((total - 10) & 0xff);
    out[9] = (uint8_t)((total - 10) >> 8);
    memcpy(out + 10, dict, (size_t)dl);
    memset(out + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    out[total - 1] = '\n';
    return total;
}

dl_status sel_npy_write(const char *path, sel_npy_dtype dtype, int ndim, const int64_t *shape,
                        const void *data, int64_t stride, dl_error *err)
{
    uint8_t hdr[256];
    size_t itemsize = 0;
    if (!npy_descr_of(dtype, &itemsize) || ndim < 0 || ndim > 2 || (ndim && !shape))
        return dl_error_set(err, DL_ERR_USAGE, "sel_npy_write: bad dtype or shape");
    for (int k = 0; k < ndim; k++)
        if (shape[k] < 0)
            return dl_error_set(err, DL_ERR_USAGE, "sel_npy_write: negative dimension");
    int64_t rows = ndim == 2 ? shape[0] : 1;
    int64_t row_len = ndim == 0 ? 1 : shape[ndim - 1];
    if (ndim == 2 && stride == 0)
        stride = row_len;
    if (ndim != 2)
        stride = row_len;
    if (stride < row_len || (rows * row_len > 0 && !data))
        return dl_error_set(err, DL_ERR_USAGE, "sel_npy_write: bad stride or NULL data");
    size_t hl = sel_npy_header_encode(dtype, ndim, shape, hdr, sizeof hdr);
    if (!hl)
        return dl_error_set(err, DL_ERR_USAGE, "sel_npy_write: cannot encode the header");
    dl_file_atomic a;
    dl_status s = dl_file_atomic_begin(&a, path, err);
    if (s)
        return s;
    s = dl_file_atomic_write(&a, hdr, hl, err);
    const uint8_t *p = data;
    for (int64_t r = 0; r < rows && s == DL_OK && row_len > 0; r++)
        s = dl_file_atomic_write(&a, p + (size_t)r * (size_t)stride * itemsize,
                                 (size_t)row_len * itemsize, err);
    if (s == DL_OK)
        return dl_file_atomic_commit(&a, err);
    dl_file_atomic_abort(&a);
    return s;
}
