/* sel_npz.c: scipy CSR .npz reader (hostile zip + .npy members) and writer
 * (format and contracts in sel_npz.h). */
#include "config.h"

#include "sel_npz.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "sel_npy.h"
#include "dl_file.h"

#define ZIP_SIG_LOCAL 0x04034b50u
#define ZIP_SIG_CENTRAL 0x02014b50u
#define ZIP_SIG_EOCD 0x06054b50u
#define ZIP_SIG_EOCD64_LOC 0x07064b50u
#define ZIP_EOCD_LEN 22
#define ZIP_CENTRAL_LEN 46
#define ZIP_LOCAL_LEN 30
#define ZIP_DEFLATE_MAX_RATIO 1032u /* deflate cannot expand more than this */

static uint32_t rd16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* The members a CSR archive needs, in the order they are validated. */
enum { M_FORMAT, M_SHAPE, M_INDPTR, M_INDICES, M_DATA, M_COUNT };
static const char *const member_names[M_COUNT] = {"format.npy", "shape.npy", "indptr.npy",
                                                  "indices.npy", "data.npy"};

/* One member as the central directory describes it. */
typedef struct npz_member {
    int found;
    size_t central_off; /* of its central directory entry */
    uint32_t flags, method, crc, csize, usize;
    size_t local_off;
    size_t data_off; /* filled by npz_local_check */
} npz_member;

typedef struct npz_ctx {
    const uint8_t *buf;
    size_t len;
    const char *name;
    dl_error *err;
    size_t cd_off, cd_size, eocd_off;
    uint32_t entries;
    npz_member m[M_COUNT];
} npz_ctx;

static dl_status zip_fail(npz_ctx *z, dl_status code, size_t off, const char *field,
                          const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static dl_status zip_fail(npz_ctx *z, dl_status code, size_t off, const char *field,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_status s = dl_error_vset_at(z->err, code, z->name, 0, 0, (int64_t)off, field, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- zip structure ----------------------------------------------------------- */

/* Finds and checks the end-of-central-directory record (searching back over
 * at most a 65,535-byte comment). */
static dl_status npz_eocd(npz_ctx *z)
{
    if (z->len < ZIP_EOCD_LEN)
        return zip_fail(z, DL_ERR_INPUT, 0, NULL,
                        "not a zip archive: %zu bytes, too short for the end record", z->len);
    size_t lo = z->len - ZIP_EOCD_LEN > 65535 ? z->len - ZIP_EOCD_LEN - 65535 : 0;
    size_t at = z->len - ZIP_EOCD_LEN;
    int found = 0;
    for (;;) {
        const uint8_t *p = z->buf + at;
        if (rd32(p) == ZIP_SIG_EOCD && at + ZIP_EOCD_LEN + rd16(p + 20) == z->len) {
            found = 1;
            break;
        }
        if (at == lo)
            break;
        at--;
    }
    if (!found)
        return zip_fail(z, DL_ERR_INPUT, z->len, NULL,
                        "not a zip archive: no end-of-central-directory record (an .npz "
                        "file is a zip archive)");
    const uint8_t *e = z->buf + at;
    z->eocd_off = at;
    if (at >= 20 && rd32(e - 20) == ZIP_SIG_EOCD64_LOC)
        return zip_fail(z, DL_ERR_UNSUPPORTED, at - 20, NULL,
                        "zip64 archive: not supported (archives over 4 GiB)");
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10))
        return zip_fail(z, DL_ERR_UNSUPPORTED, at + 4, NULL, "multi-disk zip archive");
    z->entries = rd16(e + 10);
    z->cd_size = rd32(e + 12);
    z->cd_off = rd32(e + 16);
    if (z->entries == 0xffff || z->cd_size == 0xffffffffu || z->cd_off == 0xffffffffu)
        return zip_fail(z, DL_ERR_UNSUPPORTED, at + 10, NULL,
                        "zip64 archive: not supported (archives over 4 GiB or 65,535 members)");
    if (z->cd_off > at || z->cd_size != at - z->cd_off)
        return zip_fail(z, DL_ERR_INPUT, at + 12, NULL,
                        "central directory (offset %zu, %zu bytes) does not end at the end "
                        "record (byte %zu)", z->cd_off, z->cd_size, at);
    return DL_OK;
}

/* Walks the central directory, recording the members we need. */
static dl_status npz_central(npz_ctx *z)
{
    size_t off = z->cd_off, end = z->cd_off + z->cd_size;
    for (uint32_t k = 0; k < z->entries; k++) {
        if (end - off < ZIP_CENTRAL_LEN || rd32(z->buf + off) != ZIP_SIG_CENTRAL)
            return zip_fail(z, DL_ERR_INPUT, off, NULL,
                            "central directory entry %u of %u: expected signature PK\\1\\2",
                            k + 1, z->entries);
        const uint8_t *c = z->buf + off;
        size_t nlen = rd16(c + 28), total = ZIP_CENTRAL_LEN + nlen + rd16(c + 30) + rd16(c + 32);
        if (total > end - off)
            return zip_fail(z, DL_ERR_INPUT, off, NULL,
                            "central directory entry %u runs past the directory", k + 1);
        const char *nm = (const char *)c + ZIP_CENTRAL_LEN;
        for (int i = 0; i < M_COUNT; i++) {
            if (strlen(member_names[i]) != nlen || memcmp(nm, member_names[i], nlen) != 0)
                continue;
            npz_member *m = &z->m[i];
            if (m->found)
                return zip_fail(z, DL_ERR_INPUT, off, member_names[i], "duplicate member");
            m->found = 1;
            m->central_off = off;
            m->flags = rd16(c + 8);
            m->method = rd16(c + 10);
            m->crc = rd32(c + 16);
            m->csize = rd32(c + 20);
            m->usize = rd32(c + 24);
            m->local_off = rd32(c + 42);
            if (m->csize == 0xffffffffu || m->usize == 0xffffffffu || m->local_off == 0xffffffffu)
                return zip_fail(z, DL_ERR_UNSUPPORTED, off, member_names[i],
                                "zip64 member: not supported (members over 4 GiB)");
            if (rd16(c + 34) != 0)
                return zip_fail(z, DL_ERR_UNSUPPORTED, off + 34, member_names[i],
                                "multi-disk zip archive");
        }
        off += total;
    }
    if (off != end)
        return zip_fail(z, DL_ERR_INPUT, off, NULL,
                        "%zu unexplained bytes at the end of the central directory", end - off);
    return DL_OK;
}

/* Reads the sizes from a local header's zip64 extra field (numpy writes one)
 * where the header's own fields hold 0xffffffff. */
static int npz_local_zip64(const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                           int need_u, int need_c)
{
    while (xlen >= 4) {
        size_t id = rd16(x), sz = rd16(x + 2);
        if (sz > xlen - 4)
            return -1;
        if (id == 1) {
            size_t want = 8 * (size_t)(need_u + need_c);
            if (sz < want)
                return -1;
            if (need_u)
                *usize = rd64(x + 4);
            if (need_c)
                *csize = rd64(x + 4 + 8 * need_u);
            return 0;
        }
        x += 4 + sz;
        xlen -= 4 + sz;
    }
    return -1;
}

/* Checks member i's local header against its central entry. */
static dl_status npz_local_check(npz_ctx *z, int i)
{
    npz_member *m = &z->m[i];
    const char *f = member_names[i];
    size_t off = m->local_off;
    if (off > z->cd_off || z->cd_off - off < ZIP_LOCAL_LEN || rd32(z->buf + off) != ZIP_SIG_LOCAL)
        return zip_fail(z, DL_ERR_INPUT, off, f, "expected a local file header (PK\\3\\4) here");
    const uint8_t *l = z->buf + off;
    size_t nlen = rd16(l + 26), xlen = rd16(l + 28);
    if (z->cd_off - off - ZIP_LOCAL_LEN < nlen + xlen)
        return zip_fail(z, DL_ERR_INPUT, off, f, "local header runs into the central directory");
    if (nlen != strlen(f) || memcmp(l + ZIP_LOCAL_LEN, f, nlen) != 0)
        return zip_fail(z, DL_ERR_INPUT, off + ZIP_LOCAL_LEN, f,
                        "local header names another member than the central directory");
    if (m->flags & 0x41)
        return zip_fail(z, DL_ERR_UNSUPPORTED, m->central_off + 8, f, "encrypted member");
    if (m->method != 0 && m->method != 8)
        return zip_fail(z, DL_ERR_UNSUPPORTED, m->central_off + 10, f,
                        "compression method %u: expected 0 (stored) or 8 (deflated)", m->method);
    if (rd16(l + 8) != m->method)
        return zip_fail(z, DL_ERR_INPUT, off + 8, f,
                        "local header method %u differs from the central directory's %u",
                        rd16(l + 8), m->method);
    if (!(rd16(l + 6) & 0x8)) { /* no data descriptor: the local fields must agree */
        uint64_t cs = rd32(l + 18), us = rd32(l + 22);
        int nu = us == 0xffffffffu, nc = cs == 0xffffffffu;
        if ((nu || nc) &&
            npz_local_zip64(l + ZIP_LOCAL_LEN + nlen, xlen, &us, &cs, nu, nc) != 0)
            return zip_fail(z, DL_ERR_INPUT, off + 28, f, "bad zip64 extra field");
        if (rd32(l + 14) != m->crc || cs != m->csize || us != m->usize)
            return zip_fail(z, DL_ERR_INPUT, off + 14, f,
                            "local header CRC/sizes differ from the central directory");
    }
    m->data_off = off + ZIP_LOCAL_LEN + nlen + xlen;
    if (m->csize > z->cd_off - m->data_off)
        return zip_fail(z, DL_ERR_INPUT, m->data_off, f,
                        "member data (%u bytes) runs into the central directory", m->csize);
    if (m->method == 0 && m->csize != m->usize)
        return zip_fail(z, DL_ERR_INPUT, m->central_off + 20, f,
                        "stored member with different compressed (%u) and plain (%u) sizes",
                        m->csize, m->usize);
    if (m->method == 8 && (uint64_t)m->usize > (uint64_t)m->csize * ZIP_DEFLATE_MAX_RATIO + 64)
        return zip_fail(z, DL_ERR_INPUT, m->central_off + 24, f,
                        "claims %u bytes from %u deflated ones: beyond deflate's ratio",
                        m->usize, m->csize);
    return DL_OK;
}

/* Produces member i's plain bytes: borrowed from the archive when stored,
 * inflated into *owned otherwise.  Checks the CRC either way. */
static dl_status npz_member_bytes(npz_ctx *z, int i, const uint8_t **out, uint8_t **owned)
{
    npz_member *m = &z->m[i];
    const char *f = member_names[i];
    const uint8_t *src = z->buf + m->data_off;
    *owned = NULL;
    if (m->method == 0) {
        *out = src;
    } else {
        uint8_t *dst = malloc(m->usize ? m->usize : 1);
        if (!dst)
            return zip_fail(z, DL_ERR_NOMEM, m->data_off, f, "out of memory inflating");
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            free(dst);
            return zip_fail(z, DL_ERR_NOMEM, m->data_off, f, "inflateInit2 failed");
        }
        zs.next_in = (Bytef *)(uintptr_t)src;
        zs.avail_in = m->csize;
        zs.next_out = dst;
        zs.avail_out = m->usize;
        int rc = inflate(&zs, Z_FINISH);
        size_t used = m->csize - zs.avail_in, made = m->usize - zs.avail_out;
        inflateEnd(&zs);
        if (rc != Z_STREAM_END || zs.avail_in != 0 || zs.avail_out != 0) {
            free(dst);
            return zip_fail(z, DL_ERR_INPUT, m->data_off + used, f,
                            "deflate stream %s after %zu of %u input bytes, %zu of %u output "
                            "bytes", rc == Z_STREAM_END ? "ended early or with trailing data"
                                     : rc == Z_DATA_ERROR ? "is corrupt"
                                                          : "is incomplete or too long",
                            used, m->csize, made, m->usize);
        }
        *owned = dst;
        *out = dst;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, *out, m->usize);
    if ((uint32_t)crc != m->crc) {
        free(*owned);
        *owned = NULL;
        return zip_fail(z, DL_ERR_INPUT, m->data_off, f,
                        "CRC-32 mismatch: the directory says %08x, the data gives %08x", m->crc,
                        (unsigned)crc);
    }
    return DL_OK;
}

/* ---- the CSR members ----------------------------------------------------------- */

/* A member's bytes and parsed .npy header. */
typedef struct npz_array {
    const uint8_t *p;
    uint8_t *owned;
    sel_npy_header h;
} npz_array;

static dl_status npz_array_load(npz_ctx *z, int i, npz_array *a)
{
    memset(a, 0, sizeof *a);
    const char *f = member_names[i];
    if (!z->m[i].found)
        return zip_fail(z, DL_ERR_INPUT, z->cd_off, f,
                        "member missing: a scipy CSR .npz has data.npy, indices.npy, "
                        "indptr.npy, shape.npy and format.npy");
    dl_status s = npz_local_check(z, i);
    if (!s)
        s = npz_member_bytes(z, i, &a->p, &a->owned);
    if (!s)
        s = sel_npy_header_parse(a->p, z->m[i].usize, z->name, &a->h, z->err);
    if (s) {
        dl_error_locate(z->err, z->name, 0, f);
        free(a->owned);
        a->owned = NULL;
    }
    return s;
}

/* Checks a 1-D integer (or float) array of the expected length. */
static dl_status npz_expect_vec(npz_ctx *z, int i, const npz_array *a, int want_float,
                                int64_t len)
{
    const sel_npy_header *h = &a->h;
    int ok_type = want_float ? (h->dtype == SEL_NPY_F32 || h->dtype == SEL_NPY_F64)
                             : (h->dtype == SEL_NPY_I32 || h->dtype == SEL_NPY_I64);
    if (!ok_type)
        return zip_fail(z, DL_ERR_UNSUPPORTED, 10, member_names[i], "dtype: expected %s",
                        want_float ? "'<f4' or '<f8'" : "'<i4' or '<i8'");
    if (h->ndim != 1 || (len >= 0 && h->shape[0] != len))
        return zip_fail(z, DL_ERR_INPUT, 10, member_names[i],
                        "shape: expected (%" PRId64 ",), found a %d-D array of %" PRId64
                        " elements", len, h->ndim, h->count);
    return DL_OK;
}

static dl_status npz_format_shape(npz_ctx *z, sel_npz_csr *c)
{
    npz_array a;
    dl_status s = npz_array_load(z, M_FORMAT, &a);
    if (s)
        return s;
    /* The value: "csr" as bytes or as UCS-4, NUL padded. */
    char fmt[8] = {0};
    int text = a.h.ndim == 0 && (a.h.dtype == SEL_NPY_BYTES || a.h.dtype == SEL_NPY_UNICODE);
    size_t unit = a.h.dtype == SEL_NPY_UNICODE ? 4 : 1;
    for (size_t k = 0; text && k < a.h.itemsize / unit && k < sizeof fmt - 1; k++) {
        const uint8_t *q = a.p + a.h.data_offset + k * unit;
        uint32_t ch = unit == 4 ? (a.h.big_endian ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
                                                        (uint32_t)q[2] << 8 | q[3]
                                                  : rd32(q))
                                : q[0];
        fmt[k] = ch >= 0x20 && ch < 0x7f ? (char)ch : (ch ? '?' : '\0');
    }
    int is_csr = text && !strcmp(fmt, "csr");
    free(a.owned);
    if (!text)
        return zip_fail(z, DL_ERR_INPUT, 10, member_names[M_FORMAT],
                        "expected a 0-D string ('|S3' or '<U3')");
    if (!is_csr)
        return zip_fail(z, DL_ERR_UNSUPPORTED, a.h.data_offset, member_names[M_FORMAT],
                        "sparse format '%s': only 'csr' is supported (convert with .tocsr())",
                        fmt);
    if ((s = npz_array_load(z, M_SHAPE, &a)) != DL_OK)
        return s;
    if (!(s = npz_expect_vec(z, M_SHAPE, &a, 0, 2))) {
        c->rows = sel_npy_get_i64(a.p, &a.h, 0);
        c->cols = sel_npy_get_i64(a.p, &a.h, 1);
        if (c->rows < 0 || c->cols < 0)
            s = zip_fail(z, DL_ERR_INPUT, a.h.data_offset, member_names[M_SHAPE],
                         "negative dimension in shape (%" PRId64 ", %" PRId64 ")", c->rows,
                         c->cols);
    }
    free(a.owned);
    return s;
}

static dl_status npz_indptr(npz_ctx *z, sel_npz_csr *c)
{
    npz_array a;
    dl_status s = npz_array_load(z, M_INDPTR, &a);
    if (s)
        return s;
    if (c->rows == INT64_MAX)
        s = zip_fail(z, DL_ERR_INPUT, 0, member_names[M_SHAPE], "row count overflows");
    if (!s)
        s = npz_expect_vec(z, M_INDPTR, &a, 0, c->rows + 1);
    if (!s && !(c->indptr = malloc((size_t)(c->rows + 1) * sizeof *c->indptr)))
        s = zip_fail(z, DL_ERR_NOMEM, 0, member_names[M_INDPTR], "out of memory");
    for (int64_t r = 0; !s && r <= c->rows; r++) {
        int64_t v = sel_npy_get_i64(a.p, &a.h, r);
        int64_t prev = r ? c->indptr[r - 1] : 0;
        if ((r == 0 && v != 0) || v < prev)
            s = zip_fail(z, DL_ERR_INPUT, a.h.data_offset + (size_t)r * a.h.itemsize,
                         member_names[M_INDPTR],
                         r == 0 ? "indptr[0] is %" PRId64 ", expected 0"
                                : "indptr[%" PRId64 "] decreases", r == 0 ? v : r);
        c->indptr[r] = v;
    }
    if (!s)
        c->nnz = c->indptr[c->rows];
    free(a.owned);
    return s;
}

static dl_status npz_indices(npz_ctx *z, sel_npz_csr *c)
{
    npz_array a;
    dl_status s = npz_array_load(z, M_INDICES, &a);
    if (s)
        return s;
    if (!(s = npz_expect_vec(z, M_INDICES, &a, 0, c->nnz))) {
        c->index_size = (int)a.h.itemsize;
        c->indices = malloc(c->nnz ? (size_t)c->nnz * a.h.itemsize : 1);
        if (!c->indices)
            s = zip_fail(z, DL_ERR_NOMEM, 0, member_names[M_INDICES], "out of memory");
    }
    for (int64_t e = 0; !s && e < c->nnz; e++) {
        int64_t v = sel_npy_get_i64(a.p, &a.h, e);
        if (v < 0 || v >= c->cols)
            s = zip_fail(z, DL_ERR_INPUT, a.h.data_offset + (size_t)e * a.h.itemsize,
                         member_names[M_INDICES],
                         "indices[%" PRId64 "] = %" PRId64 " is outside [0, %" PRId64 ")", e, v,
                         c->cols);
        else if (c->index_size == 4)
            ((int32_t *)c->indices)[e] = (int32_t)v;
        else
            ((int64_t *)c->indices)[e] = v;
    }
    free(a.owned);
    return s;
}

static dl_status npz_values(npz_ctx *z, sel_npz_csr *c)
{
    npz_array a;
    dl_status s = npz_array_load(z, M_DATA, &a);
    if (s)
        return s;
    if (!(s = npz_expect_vec(z, M_DATA, &a, 1, c->nnz)) &&
        !(c->values = malloc(c->nnz ? (size_t)c->nnz * sizeof(float) : 1)))
        s = zip_fail(z, DL_ERR_NOMEM, 0, member_names[M_DATA], "out of memory");
    for (int64_t e = 0; !s && e < c->nnz; e++) {
        double v = sel_npy_get_f64(a.p, &a.h, e);
        if (isfinite(v) && (v > FLT_MAX || v < -FLT_MAX))
            s = zip_fail(z, DL_ERR_INPUT, a.h.data_offset + (size_t)e * a.h.itemsize,
                         member_names[M_DATA], "data[%" PRId64 "] = %g is beyond float32's range",
                         e, v);
        c->values[e] = (float)v;
    }
    free(a.owned);
    return s;
}

dl_status sel_npz_csr_from_buffer(const void *buf, size_t len, const char *name,
                                  sel_npz_csr **out, dl_error *err)
{
    if (!out || (!buf && len))
        return dl_error_set(err, DL_ERR_USAGE, "sel_npz_csr_from_buffer: NULL argument");
    *out = NULL;
    npz_ctx z;
    memset(&z, 0, sizeof z);
    z.buf = buf;
    z.len = len;
    z.name = name ? name : "<buffer>";
    z.err = err;
    sel_npz_csr *c = calloc(1, sizeof *c);
    if (!c)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    dl_status s = npz_eocd(&z);
    if (!s)
        s = npz_central(&z);
    if (!s)
        s = npz_format_shape(&z, c);
    if (!s)
        s = npz_indptr(&z, c);
    if (!s)
        s = npz_indices(&z, c);
    if (!s)
        s = npz_values(&z, c);
    if (s) {
        sel_npz_csr_free(c);
        return s;
    }
    *out = c;
    return DL_OK;
}

dl_status sel_npz_csr_read(const char *path, sel_npz_csr **out, dl_error *err)
{
    if (!out || !path)
        return dl_error_set(err, DL_ERR_USAGE, "sel_npz_csr_read: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dl_error_set_at(err, errno == ENOENT ? DL_ERR_NOT_FOUND : DL_ERR_IO, path, 0, 0,
                               -1, NULL, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "not a regular file");
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0 && (map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        int e = errno;
        close(fd);
        return dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "mmap failed: %s",
                               strerror(e));
    }
    close(fd);
    dl_status s = sel_npz_csr_from_buffer(map, len, path, out, err);
    if (map)
        munmap(map, len);
    return s;
}

void sel_npz_csr_free(sel_npz_csr *m)
{
    if (!m)
        return;
    free(m->indptr);
    free(m->indices);
    free(m->values);
    free(m);
}

/* ---- writing ------------------------------------------------------------------- */

typedef struct npz_writer {
    dl_file_atomic a;
    size_t off;        /* bytes written so far */
    uint8_t *central;  /* the central directory being built */
    size_t central_len, central_cap;
    unsigned entries;
    dl_error *err;
} npz_writer;

static void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, v & 0xffff);
    wr16(p + 2, v >> 16);
}

/* Appends one stored member made of hdr[0..hlen) followed by body[0..blen). */
static dl_status npz_put(npz_writer *w, const char *name, const uint8_t *hdr, size_t hlen,
                         const void *body, size_t blen)
{
    size_t nlen = strlen(name);
    if (hlen + blen > 0xfffffffeu || w->off > 0xfffffffeu)
        return dl_error_set(w->err, DL_ERR_UNSUPPORTED,
                            "member %s: over 4 GiB needs zip64, which is not written", name);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, hdr, (uInt)hlen);
    if (blen)
        crc = crc32(crc, body, (uInt)blen);
    uint8_t l[ZIP_LOCAL_LEN];
    memset(l, 0, sizeof l);
    wr32(l, ZIP_SIG_LOCAL);
    wr16(l + 4, 20);
    wr16(l + 12, 0x21); /* 1980-01-01, like numpy */
    wr32(l + 14, (uint32_t)crc);
    wr32(l + 18, (uint32_t)(hlen + blen));
    wr32(l + 22, (uint32_t)(hlen + blen));
    wr16(l + 26, (uint32_t)nlen);
    if (w->central_cap - w->central_len < ZIP_CENTRAL_LEN + nlen) {
        size_t cap = w->central_cap * 2 + ZIP_CENTRAL_LEN + nlen + 256;
        uint8_t *nc = realloc(w->central, cap);
        if (!nc)
            return dl_error_set(w->err, DL_ERR_NOMEM, "out of memory");
        w->central = nc;
        w->central_cap = cap;
    }
    uint8_t *c = w->central + w->central_len;
    memset(c, 0, ZIP_CENTRAL_LEN);
    wr32(c, ZIP_SIG_CENTRAL);
    wr16(c + 4, 20);
    memcpy(c + 6, l + 4, 26); /* version needed .. name length, as in the local header */
    wr32(c + 38, 0x81a40000u); /* -rw-r--r-- for unix extractors */
    wr32(c + 42, (uint32_t)w->off);
    memcpy(c + ZIP_CENTRAL_LEN, name, nlen);
    w->central_len += ZIP_CENTRAL_LEN + nlen;
    w->entries++;
    dl_status s = dl_file_atomic_write(&w->a, l, sizeof l, w->err);
    if (!s)
        s = dl_file_atomic_write(&w->a, name, nlen, w->err);
    if (!s)
        s = dl_file_atomic_write(&w->a, hdr, hlen, w->err);
    if (!s && blen)
        s = dl_file_atomic_write(&w->a, body, blen, w->err);
    w->off += ZIP_LOCAL_LEN + nlen + hlen + blen;
    return s;
}

static dl_status npz_put_array(npz_writer *w, const char *name, sel_npy_dtype t, int64_t len,
                               const void *body, size_t itemsize)
{
    uint8_t hdr[128];
    size_t hl = sel_npy_header_encode(t, 1, &len, hdr, sizeof hdr);
    if (!hl)
        return dl_error_set(w->err, DL_ERR_INTERNAL, "cannot encode the %s header", name);
    return npz_put(w, name, hdr, hl, body, (size_t)len * itemsize);
}

static dl_status npz_check_csr(int64_t rows, int64_t cols, const int64_t *indptr,
                               const void *indices, int index_size, const float *values,
                               dl_error *err)
{
    if (rows < 0 || cols < 0 || !indptr || (index_size != 4 && index_size != 8))
        return dl_error_set(err, DL_ERR_USAGE, "sel_npz_csr_write: bad shape or index size");
    if (indptr[0] != 0)
        return dl_error_set(err, DL_ERR_USAGE, "sel_npz_csr_write: indptr[0] != 0");
    for (int64_t r = 0; r < rows; r++)
        if (indptr[r + 1] < indptr[r])
            return dl_error_set(err, DL_ERR_USAGE, "sel_npz_csr_write: indptr decreases at %" PRId64,
                                r + 1);
    int64_t nnz = indptr[rows];
    if (nnz > 0 && (!indices || !values))
        return dl_error_set(err, DL_ERR_USAGE, "sel_npz_csr_write: NULL indices or values");
    for (int64_t e = 0; e < nnz; e++) {
        int64_t v = index_size == 4 ? ((const int32_t *)indices)[e] : ((const int64_t *)indices)[e];
        if (v < 0 || v >= cols)
            return dl_error_set(err, DL_ERR_USAGE,
                                "sel_npz_csr_write: indices[%" PRId64 "] out of range", e);
    }
    return DL_OK;
}

static dl_status npz_write_members(npz_writer *w, int64_t rows, int64_t cols,
                                   const int64_t *indptr, const void *indices, int index_size,
                                   const float *values)
{
    int64_t nnz = indptr[rows];
    int narrow = index_size == 4 && nnz <= INT32_MAX;
    dl_status s = npz_put_array(w, "indices.npy", index_size == 4 ? SEL_NPY_I32 : SEL_NPY_I64,
                                nnz, indices, (size_t)index_size);
    if (!s && narrow) {
        int32_t *p32 = malloc((size_t)(rows + 1) * sizeof *p32);
        if (!p32)
            return dl_error_set(w->err, DL_ERR_NOMEM, "out of memory");
        for (int64_t r = 0; r <= rows; r++)
            p32[r] = (int32_t)indptr[r];
        s = npz_put_array(w, "indptr.npy", SEL_NPY_I32, rows + 1, p32, 4);
        free(p32);
    } else if (!s) {
        s = npz_put_array(w, "indptr.npy", SEL_NPY_I64, rows + 1, indptr, 8);
    }
    if (!s) {
        static const char fmt_hdr[] =
            "{'descr': '|S3', 'fortran_order': False, 'shape': (), }";
        uint8_t hdr[128]; /* 10 + 118 header bytes, as numpy pads it */
        memset(hdr, ' ', sizeof hdr);
        memcpy(hdr, "\x93NUMPY\x01\x00\x76\x00", 10);
        memcpy(hdr + 10, fmt_hdr, sizeof fmt_hdr - 1);
        hdr[sizeof hdr - 1] = '\n';
        s = npz_put(w, "format.npy", hdr, sizeof hdr, "csr", 3);
    }
    if (!s) {
        int64_t shp[2] = {rows, cols};
        s = npz_put_array(w, "shape.npy", SEL_NPY_I64, 2, shp, 8);
    }
    if (!s)
        s = npz_put_array(w, "data.npy", SEL_NPY_F32, nnz, values, 4);
    return s;
}

dl_status sel_npz_csr_write(const char *path, int64_t rows, int64_t cols,
                            const int64_t *indptr, const void *indices, int index_size,
                            const float *values, dl_error *err)
{
    dl_status s = npz_check_csr(rows, cols, indptr, indices, index_size, values, err);
    if (s)
        return s;
    npz_writer w;
    memset(&w, 0, sizeof w);
    w.err = err;
    if ((s = dl_file_atomic_begin(&w.a, path, err)) != DL_OK)
        return s;
    s = npz_write_members(&w, rows, cols, indptr, indices, index_size, values);
    if (!s && w.off > 0xfffffffeu)
        s = dl_error_set(err, DL_ERR_UNSUPPORTED, "archive over 4 GiB needs zip64, not written");
    if (!s) {
        uint8_t e[ZIP_EOCD_LEN];
        memset(e, 0, sizeof e);
        wr32(e, ZIP_SIG_EOCD);
        wr16(e + 8, w.entries);
        wr16(e + 10, w.entries);
        wr32(e + 12, (uint32_t)w.central_len);
        wr32(e + 16, (uint32_t)w.off);
        s = dl_file_atomic_write(&w.a, w.central, w.central_len, err);
        if (!s)
            s = dl_file_atomic_write(&w.a, e, sizeof e, err);
    }
    free(w.central);
    if (!s)
        return dl_file_atomic_commit(&w.a, err);
    dl_file_atomic_abort(&w.a);
    return s;
}
