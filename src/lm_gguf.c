/* lm_gguf.c: the hostile-file GGUF reader (see lm_gguf.h for the format).
 *
 * Parsing is one forward pass with a bounds-checked cursor.  Strings that
 * callers want NUL-terminated (keys, tensor names, scalar string values) are
 * copied into one arena; since the arena may move while it grows, entries
 * record arena offsets during the pass and pointers are fixed up at the end.
 * String arrays (vocabularies) stay in the mapping: only a table of their
 * element offsets is built, after the count has been checked against the
 * bytes left.
 */
#include "config.h"

#include "lm_gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as little-endian uint32 */
/* Smallest possible encodings, used to bound claimed counts by the bytes
 * left before anything is allocated for them. */
#define MIN_KV_BYTES 13     /* key length 8 + type 4 + 1-byte value */
#define MIN_TENSOR_BYTES 32 /* name length 8 + n_dims 4 + ne 8 + type 4 + offset 8 */
/* Keys and tensor names longer than this are refused (ggml's own limit for
 * tensor names is 64; real keys are short). */
#define MAX_NAME_BYTES 65535
#define MAX_ALIGNMENT (1u << 30)

typedef struct kv_slot {
    lm_gguf_kv pub;
    size_t key_at;  /* arena offset of the key */
    size_t str_at;  /* arena offset of a STRING value */
    uint64_t *offs; /* owned: offsets of a STRING array's elements */
} kv_slot;

typedef struct tensor_slot {
    lm_gguf_tensor pub;
    size_t name_at;
} tensor_slot;

struct lm_gguf {
    const unsigned char *base;
    size_t size;
    int mapped; /* 1: base is our mmap; 0: a caller's buffer */
    uint32_t version;
    size_t alignment;
    size_t data_offset;
    int64_t n_kv;
    int64_t n_tensors;
    kv_slot *kv;          /* [n_kv], file order */
    int64_t *kv_sorted;   /* [n_kv] indices sorted by key */
    tensor_slot *tensors; /* [n_tensors], file order */
    int64_t *t_sorted;    /* [n_tensors] indices sorted by name */
    char *arena;
    size_t arena_len, arena_cap;
    const char *arch;
};

/* ---- the cursor --------------------------------------------------------- */

typedef struct rd {
    const unsigned char *p;
    size_t size;
    size_t pos;
    dl_error *err;
    const char *file;
    char field[DL_ERROR_FIELD_MAX]; /* current key or tensor name, for errors */
} rd;

static dl_status rd_fail(rd *r, dl_status code, size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static dl_status rd_fail(rd *r, dl_status code, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dl_error_vset_at(r->err, code, r->file, 0, 0, (int64_t)off,
                     r->field[0] ? r->field : NULL, fmt, ap);
    va_end(ap);
    return code;
}

static void rd_set_field(rd *r, const char *s, size_t n)
{
    size_t k = n < sizeof r->field - 1 ? n : sizeof r->field - 1;
    memcpy(r->field, s, k);
    r->field[k] = '\0';
}

/* Fails unless n more bytes are present at the cursor. */
static dl_status rd_need(rd *r, uint64_t n, const char *what)
{
    if (n > r->size - r->pos)
        return rd_fail(r, DL_ERR_INPUT, r->pos,
                       "truncated: %s needs %llu bytes, %zu left in the file", what,
                       (unsigned long long)n, r->size - r->pos);
    return DL_OK;
}

static uint32_t load_u32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t load_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static dl_status rd_u32(rd *r, uint32_t *out, const char *what)
{
    dl_status st = rd_need(r, 4, what);
    if (st)
        return st;
    *out = load_u32(r->p + r->pos);
    r->pos += 4;
    return DL_OK;
}

static dl_status rd_u64(rd *r, uint64_t *out, const char *what)
{
    dl_status st = rd_need(r, 8, what);
    if (st)
        return st;
    *out = load_u64(r->p + r->pos);
    r->pos += 8;
    return DL_OK;
}

/* Reads a GGUF string: *at = offset of its bytes, *len = their count. */
static dl_status rd_str(rd *r, size_t *at, uint64_t *len, const char *what)
{
    size_t start = r->pos;
    dl_status st = rd_u64(r, len, what);
    if (st)
        return st;
    if (*len > r->size - r->pos)
        return rd_fail(r, DL_ERR_INPUT, start,
                       "%s length %llu runs past the end of the file (%zu bytes left)",
                       what, (unsigned long long)*len, r->size - r->pos);
    *at = r->pos;
    r->pos += (size_t)*len;
    return DL_OK;
}

/* ---- the arena ---------------------------------------------------------- */

/* Appends n bytes and a NUL; *at receives their offset. */
static dl_status arena_add(lm_gguf *g, const void *s, size_t n, size_t *at, dl_error *err)
{
    if (g->arena_len + n + 1 > g->arena_cap) {
        size_t cap = g->arena_cap ? g->arena_cap : 4096;
        while (cap < g->arena_len + n + 1)
            cap *= 2;
        char *na = realloc(g->arena, cap);
        if (!na)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory for GGUF names");
        g->arena = na;
        g->arena_cap = cap;
    }
    memcpy(g->arena + g->arena_len, s, n);
    g->arena[g->arena_len + n] = '\0';
    *at = g->arena_len;
    g->arena_len += n + 1;
    return DL_OK;
}

/* ---- metadata values ---------------------------------------------------- */

/* Bytes of a scalar of type t; 0 for STRING/ARRAY, -1 for unknown types. */
static int scalar_size(uint32_t t)
{
    switch (t) {
    case LM_GGUF_TYPE_UINT8: case LM_GGUF_TYPE_INT8: case LM_GGUF_TYPE_BOOL: return 1;
    case LM_GGUF_TYPE_UINT16: case LM_GGUF_TYPE_INT16: return 2;
    case LM_GGUF_TYPE_UINT32: case LM_GGUF_TYPE_INT32: case LM_GGUF_TYPE_FLOAT32: return 4;
    case LM_GGUF_TYPE_UINT64: case LM_GGUF_TYPE_INT64: case LM_GGUF_TYPE_FLOAT64: return 8;
    case LM_GGUF_TYPE_STRING: case LM_GGUF_TYPE_ARRAY: return 0;
    default: return -1;
    }
}

static int type_is_signed(lm_gguf_type t)
{
    return t == LM_GGUF_TYPE_INT8 || t == LM_GGUF_TYPE_INT16 || t == LM_GGUF_TYPE_INT32 ||
           t == LM_GGUF_TYPE_INT64;
}

static int type_is_int(lm_gguf_type t)
{
    return t == LM_GGUF_TYPE_UINT8 || t == LM_GGUF_TYPE_UINT16 || t == LM_GGUF_TYPE_UINT32 ||
           t == LM_GGUF_TYPE_UINT64 || type_is_signed(t);
}

/* Decodes the scalar at p into the widened fields of kv. */
static void scalar_load(lm_gguf_type t, const unsigned char *p, lm_gguf_kv *kv)
{
    kv->u64 = 0;
    kv->i64 = 0;
    kv->f64 = 0;
    switch (t) {
    case LM_GGUF_TYPE_UINT8: case LM_GGUF_TYPE_BOOL: kv->u64 = p[0]; break;
    case LM_GGUF_TYPE_INT8: kv->i64 = (int8_t)p[0]; break;
    case LM_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); kv->u64 = v; break; }
    case LM_GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); kv->i64 = v; break; }
    case LM_GGUF_TYPE_UINT32: kv->u64 = load_u32(p); break;
    case LM_GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); kv->i64 = v; break; }
    case LM_GGUF_TYPE_UINT64: kv->u64 = load_u64(p); break;
    case LM_GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); kv->i64 = v; break; }
    case LM_GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); kv->f64 = v; break; }
    case LM_GGUF_TYPE_FLOAT64: memcpy(&kv->f64, p, 8); break;
    default: break;
    }
    if (type_is_signed(t))
        kv->u64 = (uint64_t)kv->i64;
    else if (type_is_int(t) || t == LM_GGUF_TYPE_BOOL)
        kv->i64 = (int64_t)kv->u64;
}

static dl_status parse_array(rd *r, kv_slot *s, dl_error *err)
{
    size_t start = r->pos;
    uint32_t et;
    uint64_t n;
    dl_status st = rd_u32(r, &et, "array element type");
    if (!st)
        st = rd_u64(r, &n, "array length");
    if (st)
        return st;
    int esz = scalar_size(et);
    if (et == LM_GGUF_TYPE_ARRAY)
        return rd_fail(r, DL_ERR_UNSUPPORTED, start, "arrays of arrays are not supported");
    if (esz < 0)
        return rd_fail(r, DL_ERR_INPUT, start, "unknown array element type %u", et);
    size_t left = r->size - r->pos;
    /* Each element takes at least esz bytes (a string at least its 8-byte
     * length), so a count beyond left / that is a lie: checked before any
     * allocation or multiplication. */
    size_t min_el = esz > 0 ? (size_t)esz : 8;
    if (n > left / min_el)
        return rd_fail(r, DL_ERR_INPUT, start + 4,
                       "array length %llu cannot fit in the %zu bytes left",
                       (unsigned long long)n, left);
    s->pub.arr.type = (lm_gguf_type)et;
    s->pub.arr.n = (int64_t)n;
    s->pub.arr.data = r->p + r->pos;
    s->pub.arr.base = r->p;
    if (esz > 0) {
        if (et == LM_GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (r->p[r->pos + i] > 1)
                    return rd_fail(r, DL_ERR_INPUT, r->pos + i,
                                   "bool array element %llu is %u, not 0 or 1",
                                   (unsigned long long)i, r->p[r->pos + i]);
        r->pos += (size_t)n * (size_t)esz;
        return DL_OK;
    }
    s->offs = malloc((n ? (size_t)n : 1) * sizeof *s->offs);
    if (!s->offs)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for a %llu-string array",
                            (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        size_t at;
        uint64_t len;
        if ((st = rd_str(r, &at, &len, "array string")))
            return st;
        s->offs[i] = at;
    }
    s->pub.arr.str_off = s->offs;
    return DL_OK;
}

/* Parses one key/value pair into slot s. */
static dl_status parse_kv(rd *r, lm_gguf *g, kv_slot *s, dl_error *err)
{
    size_t start = r->pos, at;
    uint64_t len;
    uint32_t t;
    dl_status st = rd_str(r, &at, &len, "metadata key");
    if (st)
        return st;
    if (len == 0 || len > MAX_NAME_BYTES || memchr(r->p + at, 0, (size_t)len))
        return rd_fail(r, DL_ERR_INPUT, start,
                       "metadata key of %llu bytes is empty, too long or holds a NUL",
                       (unsigned long long)len);
    rd_set_field(r, (const char *)r->p + at, (size_t)len);
    if ((st = arena_add(g, r->p + at, (size_t)len, &s->key_at, err)))
        return st;
    size_t tpos = r->pos;
    if ((st = rd_u32(r, &t, "value type")))
        return st;
    int sz = scalar_size(t);
    if (sz < 0)
        return rd_fail(r, DL_ERR_INPUT, tpos, "unknown value type %u", t);
    s->pub.type = (lm_gguf_type)t;
    s->pub.offset = (int64_t)r->pos;
    if (t == LM_GGUF_TYPE_ARRAY)
        return parse_array(r, s, err);
    if (t == LM_GGUF_TYPE_STRING) {
        if ((st = rd_str(r, &at, &len, "string value")))
            return st;
        s->pub.str_len = (size_t)len;
        return arena_add(g, r->p + at, (size_t)len, &s->str_at, err);
    }
    if ((st = rd_need(r, (uint64_t)sz, "scalar value")))
        return st;
    if (t == LM_GGUF_TYPE_BOOL && r->p[r->pos] > 1)
        return rd_fail(r, DL_ERR_INPUT, r->pos, "bool value is %u, not 0 or 1", r->p[r->pos]);
    scalar_load((lm_gguf_type)t, r->p + r->pos, &s->pub);
    r->pos += (size_t)sz;
    return DL_OK;
}

/* ---- tensor infos ------------------------------------------------------- */

static dl_status parse_tensor_info(rd *r, lm_gguf *g, tensor_slot *ts, dl_error *err)
{
    lm_gguf_tensor *t = &ts->pub;
    size_t start = r->pos, at;
    uint64_t len;
    uint32_t nd;
    dl_status st = rd_str(r, &at, &len, "tensor name");
    if (st)
        return st;
    if (len == 0 || len > MAX_NAME_BYTES || memchr(r->p + at, 0, (size_t)len))
        return rd_fail(r, DL_ERR_INPUT, start,
                       "tensor name of %llu bytes is empty, too long or holds a NUL",
                       (unsigned long long)len);
    rd_set_field(r, (const char *)r->p + at, (size_t)len);
    if ((st = arena_add(g, r->p + at, (size_t)len, &ts->name_at, err)))
        return st;
    size_t ndpos = r->pos;
    if ((st = rd_u32(r, &nd, "tensor n_dims")))
        return st;
    if (nd < 1 || nd > LM_GGUF_MAX_DIMS)
        return rd_fail(r, DL_ERR_INPUT, ndpos, "tensor has %u dimensions (1 to %d allowed)",
                       nd, LM_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    int64_t total = 1;
    for (int d = 0; d < LM_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= (int)nd)
            continue;
        uint64_t ne;
        size_t nepos = r->pos;
        if ((st = rd_u64(r, &ne, "tensor dimension")))
            return st;
        if (ne == 0 || ne > (uint64_t)INT64_MAX)
            return rd_fail(r, DL_ERR_INPUT, nepos, "tensor dimension %d is %llu", d,
                           (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        if (__builtin_mul_overflow(total, t->ne[d], &total))
            return rd_fail(r, DL_ERR_INPUT, nepos, "tensor element count overflows");
    }
    t->n_elements = total;
    t->n_rows = total / t->ne[0];
    size_t tpos = r->pos;
    if ((st = rd_u32(r, &t->type, "tensor type")))
        return st;
    const lm_qtype_info *qi = lm_quant_info(t->type);
    if (!qi)
        return rd_fail(r, DL_ERR_UNSUPPORTED, tpos, "unknown tensor type %u", t->type);
    if (t->ne[0] % qi->block)
        return rd_fail(r, DL_ERR_INPUT, tpos,
                       "row length %lld is not a multiple of %s's block of %lld",
                       (long long)t->ne[0], qi->name, (long long)qi->block);
    t->row_bytes = lm_quant_row_size(t->type, t->ne[0]);
    if (t->row_bytes == 0 || __builtin_mul_overflow(t->row_bytes, (size_t)t->n_rows, &t->nbytes))
        return rd_fail(r, DL_ERR_INPUT, tpos, "tensor byte size overflows");
    size_t opos = r->pos;
    if ((st = rd_u64(r, &t->offset, "tensor offset")))
        return st;
    /* Relative for now; made absolute and range-checked once the data
     * section's start is known.  Stash the info's position for errors. */
    t->data = (const void *)(r->p + opos);
    return DL_OK;
}

/* Range and alignment checks that need the data section's start. */
static dl_status place_tensors(rd *r, lm_gguf *g)
{
    for (int64_t i = 0; i < g->n_tensors; i++) {
        lm_gguf_tensor *t = &g->tensors[i].pub;
        size_t opos = (size_t)((const unsigned char *)t->data - r->p);
        rd_set_field(r, g->arena + g->tensors[i].name_at, strlen(g->arena + g->tensors[i].name_at));
        uint64_t rel = t->offset, abs, end;
        if (rel % g->alignment)
            return rd_fail(r, DL_ERR_INPUT, opos, "tensor offset %llu is not a multiple of the "
                           "alignment %zu", (unsigned long long)rel, g->alignment);
        if (__builtin_add_overflow(rel, (uint64_t)g->data_offset, &abs) ||
            __builtin_add_overflow(abs, (uint64_t)t->nbytes, &end) || end > g->size)
            return rd_fail(r, DL_ERR_INPUT, opos,
                           "tensor data (offset %llu, %zu bytes) runs past the end of the "
                           "file (%zu bytes of data)", (unsigned long long)rel, t->nbytes,
                           g->size > g->data_offset ? g->size - g->data_offset : 0);
        t->offset = abs;
        t->data = r->p + abs;
    }
    r->field[0] = '\0';
    return DL_OK;
}


/* ---- sorting and lookup ------------------------------------------------- */

typedef struct name_ix {
    const char *name;
    int64_t ix;
} name_ix;

static int cmp_name_ix(const void *a, const void *b)
{
    return strcmp(((const name_ix *)a)->name, ((const name_ix *)b)->name);
}

/* Fills idx[0..n) with 0..n-1 sorted by names (n entries, stride bytes
 * apart, first at names0).  Returns the first index (in file order) of a
 * duplicate name, or -1. */
static int64_t sort_names(int64_t *idx, int64_t n, const char *const *names0, size_t stride,
                          name_ix *tmp)
{
    for (int64_t i = 0; i < n; i++) {
        tmp[i].name = *(const char *const *)((const char *)names0 + (size_t)i * stride);
        tmp[i].ix = i;
    }
    if (n > 1)
        qsort(tmp, (size_t)n, sizeof *tmp, cmp_name_ix);
    int64_t dup = -1;
    for (int64_t i = 0; i < n; i++) {
        idx[i] = tmp[i].ix;
        if (i > 0 && !strcmp(tmp[i].name, tmp[i - 1].name)) {
            int64_t later = tmp[i].ix > tmp[i - 1].ix ? tmp[i].ix : tmp[i - 1].ix;
            if (dup < 0 || later < dup)
                dup = later;
        }
    }
    return dup;
}

typedef struct extent {
    uint64_t start, end;
    int64_t ix;
} extent;

static int cmp_extent(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

/* Tensor data may not overlap: two tensors sharing bytes is either a broken
 * writer or an attempt to alias weights. */
static dl_status check_overlap(rd *r, lm_gguf *g, dl_error *err)
{
    if (g->n_tensors < 2)
        return DL_OK;
    extent *ex = malloc((size_t)g->n_tensors * sizeof *ex);
    if (!ex)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory checking tensor extents");
    for (int64_t i = 0; i < g->n_tensors; i++) {
        ex[i].start = g->tensors[i].pub.offset;
        ex[i].end = ex[i].start + g->tensors[i].pub.nbytes;
        ex[i].ix = i;
    }
    qsort(ex, (size_t)g->n_tensors, sizeof *ex, cmp_extent);
    dl_status st = DL_OK;
    for (int64_t i = 1; i < g->n_tensors && !st; i++) {
        if (ex[i].start < ex[i - 1].end) {
            const lm_gguf_tensor *t = &g->tensors[ex[i].ix].pub;
            rd_set_field(r, t->name, strlen(t->name));
            st = rd_fail(r, DL_ERR_INPUT, (size_t)ex[i].start,
                         "tensor data overlaps tensor '%s'", g->tensors[ex[i - 1].ix].pub.name);
        }
    }
    free(ex);
    return st;
}

/* Binary search of a sorted index; -1 when absent. */
static int64_t find_sorted(const int64_t *idx, int64_t n, const char *key,
                           const char *(*name_of)(const lm_gguf *, int64_t), const lm_gguf *g)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name_of(g, idx[mid]), key);
        if (c == 0)
            return idx[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static const char *kv_name(const lm_gguf *g, int64_t i)
{
    return g->kv[i].pub.key;
}

static const char *tensor_name(const lm_gguf *g, int64_t i)
{
    return g->tensors[i].pub.name;
}

/* ---- open / close ------------------------------------------------------- */

static dl_status parse_header(rd *r, lm_gguf *g)
{
    uint32_t magic;
    uint64_t nt, nkv;
    dl_status st = rd_u32(r, &magic, "magic");
    if (st)
        return st;
    if (magic != GGUF_MAGIC)
        return rd_fail(r, DL_ERR_INPUT, 0, "not a GGUF file (magic %02x %02x %02x %02x)",
                       r->p[0], r->p[1], r->p[2], r->p[3]);
    if ((st = rd_u32(r, &g->version, "version")))
        return st;
    if (g->version == 1)
        return rd_fail(r, DL_ERR_UNSUPPORTED, 4,
                       "GGUF version 1 is not supported (versions 2 and 3 are)");
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return rd_fail(r, DL_ERR_UNSUPPORTED, 4, "big-endian GGUF files are not supported");
    if (g->version != 2 && g->version != 3)
        return rd_fail(r, g->version > 3 ? DL_ERR_UNSUPPORTED : DL_ERR_INPUT, 4,
                       "GGUF version %u is not supported (versions 2 and 3 are)", g->version);
    if ((st = rd_u64(r, &nt, "tensor count")) || (st = rd_u64(r, &nkv, "metadata count")))
        return st;
    size_t left = r->size - r->pos;
    if (nkv > left / MIN_KV_BYTES || nt > left / MIN_TENSOR_BYTES ||
        nkv * MIN_KV_BYTES + nt * MIN_TENSOR_BYTES > left)
        return rd_fail(r, DL_ERR_INPUT, 8,
                       "%llu tensors and %llu metadata entries cannot fit in the %zu bytes left",
                       (unsigned long long)nt, (unsigned long long)nkv, left);
    g->n_tensors = (int64_t)nt;
    g->n_kv = (int64_t)nkv;
    return DL_OK;
}

/* general.alignment: any integer type holding a power of two. */
static dl_status read_alignment(rd *r, lm_gguf *g)
{
    g->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    const lm_gguf_kv *kv = lm_gguf_find_kv(g, "general.alignment");
    if (!kv)
        return DL_OK;
    rd_set_field(r, kv->key, strlen(kv->key));
    if (!type_is_int(kv->type) || (type_is_signed(kv->type) && kv->i64 < 0))
        return rd_fail(r, DL_ERR_INPUT, (size_t)kv->offset,
                       "general.alignment must be a non-negative integer, not %s",
                       lm_gguf_type_name(kv->type));
    uint64_t a = kv->u64;
    if (a == 0 || (a & (a - 1)) || a > MAX_ALIGNMENT)
        return rd_fail(r, DL_ERR_INPUT, (size_t)kv->offset,
                       "general.alignment %llu is not a power of two up to 2^30",
                       (unsigned long long)a);
    g->alignment = (size_t)a;
    r->field[0] = '\0';
    return DL_OK;
}

/* Fixes arena pointers and builds the sorted indexes. */
static dl_status index_names(rd *r, lm_gguf *g, dl_error *err)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        g->kv[i].pub.key = g->arena + g->kv[i].key_at;
        if (g->kv[i].pub.type == LM_GGUF_TYPE_STRING)
            g->kv[i].pub.str = g->arena + g->kv[i].str_at;
    }
    for (int64_t i = 0; i < g->n_tensors; i++)
        g->tensors[i].pub.name = g->arena + g->tensors[i].name_at;
    int64_t nmax = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    name_ix *tmp = malloc((size_t)(nmax ? nmax : 1) * sizeof *tmp);
    g->kv_sorted = malloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof *g->kv_sorted);
    g->t_sorted = malloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof *g->t_sorted);
    if (!tmp || !g->kv_sorted || !g->t_sorted) {
        free(tmp);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory indexing GGUF names");
    }
    dl_status st = DL_OK;
    int64_t dup = sort_names(g->kv_sorted, g->n_kv, &g->kv[0].pub.key, sizeof g->kv[0], tmp);
    if (dup >= 0) {
        rd_set_field(r, g->kv[dup].pub.key, strlen(g->kv[dup].pub.key));
        st = rd_fail(r, DL_ERR_INPUT, (size_t)g->kv[dup].pub.offset, "duplicate metadata key");
    }
    dup = st ? -1 : sort_names(g->t_sorted, g->n_tensors, &g->tensors[0].pub.name,
                               sizeof g->tensors[0], tmp);
    if (dup >= 0) {
        const lm_gguf_tensor *t = &g->tensors[dup].pub;
        rd_set_field(r, t->name, strlen(t->name));
        st = rd_fail(r, DL_ERR_INPUT, (size_t)((const unsigned char *)t->data - r->p),
                     "duplicate tensor name");
    }
    free(tmp);
    return st;
}

static dl_status parse_all(rd *r, lm_gguf *g, dl_error *err)
{
    dl_status st = parse_header(r, g);
    if (st)
        return st;
    g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
    g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for GGUF tables");
    for (int64_t i = 0; i < g->n_kv; i++)
        if ((st = parse_kv(r, g, &g->kv[i], err)))
            return st;
    r->field[0] = '\0';
    for (int64_t i = 0; i < g->n_tensors; i++)
        if ((st = parse_tensor_info(r, g, &g->tensors[i], err)))
            return st;
    r->field[0] = '\0';
    if ((st = index_names(r, g, err)) || (st = read_alignment(r, g)))
        return st;
    /* The data section starts at the next multiple of the alignment; a file
     * without tensors may end before it. */
    size_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    g->data_offset = r->pos + pad;
    if ((st = place_tensors(r, g)) || (st = check_overlap(r, g, err)))
        return st;
    const lm_gguf_kv *arch = lm_gguf_find_kv(g, "general.architecture");
    g->arch = arch && arch->type == LM_GGUF_TYPE_STRING ? arch->str : "";
    return DL_OK;
}

static lm_gguf *open_common(const unsigned char *p, size_t size, int mapped, const char *file,
                            dl_error *err)
{
    lm_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        dl_error_set(err, DL_ERR_NOMEM, "out of memory opening a GGUF file");
        return NULL;
    }
    g->base = p;
    g->size = size;
    rd r = {.p = p, .size = size, .pos = 0, .err = err, .file = file, .field = ""};
    if (parse_all(&r, g, err)) {
        lm_gguf_free(g);
        return NULL;
    }
    g->mapped = mapped; /* from here on, lm_gguf_free unmaps */
    return g;
}

lm_gguf *lm_gguf_open_buffer(const void *buf, size_t size, dl_error *err)
{
    static const unsigned char empty[1] = {0};
    return open_common(buf ? buf : empty, buf ? size : 0, 0, NULL, err);
}

lm_gguf *lm_gguf_open(const char *path, dl_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dl_error_set_at(err, errno == ENOENT ? DL_ERR_NOT_FOUND : DL_ERR_IO, path, 0, 0, -1,
                        NULL, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "not a regular file");
        close(fd);
        return NULL;
    }
    if (sb.st_size == 0) {
        close(fd);
        dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, 0, NULL,
                        "truncated: empty file, not a GGUF file");
        return NULL;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        dl_error_set_at(err, DL_ERR_UNSUPPORTED, path, 0, 0, -1, NULL, "file too large to map");
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (p == MAP_FAILED) {
        dl_error_set_at(err, DL_ERR_IO, path, 0, 0, -1, NULL, "cannot map: %s",
                        strerror(map_errno));
        return NULL;
    }
    lm_gguf *g = open_common(p, size, 1, path, err);
    if (!g)
        munmap(p, size);
    return g;
}

void lm_gguf_release(const lm_gguf *g, const void *p, size_t n)
{
    const unsigned char *c = p;
    if (!g || !g->mapped || !p || c < g->base || n > g->size || (size_t)(c - g->base) > g->size - n)
        return;
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
    uintptr_t lo = ((uintptr_t)c + page - 1) & ~(page - 1), hi = ((uintptr_t)c + n) & ~(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: a failure changes nothing */
}

void lm_gguf_free(lm_gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].offs);
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->t_sorted);
    free(g->arena);
    if (g->mapped)
        munmap((void *)g->base, g->size);
    free(g);
}

/* ---- file facts --------------------------------------------------------- */

uint32_t lm_gguf_version(const lm_gguf *g) { return g->version; }
size_t lm_gguf_file_size(const lm_gguf *g) { return g->size; }
size_t lm_gguf_alignment(const lm_gguf *g) { return g->alignment; }
size_t lm_gguf_data_offset(const lm_gguf *g) { return g->data_offset; }
const void *lm_gguf_base(const lm_gguf *g) { return g->base; }
const char *lm_gguf_arch(const lm_gguf *g) { return g->arch; }
int64_t lm_gguf_n_kv(const lm_gguf *g) { return g->n_kv; }
int64_t lm_gguf_n_tensors(const lm_gguf *g) { return g->n_tensors; }

const lm_gguf_kv *lm_gguf_kv_at(const lm_gguf *g, int64_t i)
{
    assert(i >= 0 && i < g->n_kv);
    return &g->kv[i].pub;
}

const lm_gguf_kv *lm_gguf_find_kv(const lm_gguf *g, const char *key)
{
    int64_t i = find_sorted(g->kv_sorted, g->n_kv, key, kv_name, g);
    return i < 0 ? NULL : &g->kv[i].pub;
}

const lm_gguf_tensor *lm_gguf_tensor_at(const lm_gguf *g, int64_t i)
{
    assert(i >= 0 && i < g->n_tensors);
    return &g->tensors[i].pub;
}

const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name)
{
    int64_t i = find_sorted(g->t_sorted, g->n_tensors, name, tensor_name, g);
    return i < 0 ? NULL : &g->tensors[i].pub;
}

const char *lm_gguf_type_name(lm_gguf_type t)
{
    static const char *const names[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32",
                                        "INT32", "FLOAT32", "BOOL", "STRING", "ARRAY",
                                        "UINT64", "INT64", "FLOAT64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* ---- typed getters ------------------------------------------------------ */

static const lm_gguf_kv *get_kv(const lm_gguf *g, const char *key, dl_status *st, dl_error *err)
{
    const lm_gguf_kv *kv = lm_gguf_find_kv(g, key);
    *st = kv ? DL_OK
             : dl_error_set_at(err, DL_ERR_NOT_FOUND, NULL, 0, 0, -1, key,
                               "metadata key not found");
    return kv;
}

static dl_status bad_type(const lm_gguf_kv *kv, const char *want, dl_error *err)
{
    return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, kv->offset, kv->key,
                           "expected %s, found %s", want, lm_gguf_type_name(kv->type));
}

/* Integer value of kv within [lo, hi] (signed view) or [0, uhi] (unsigned
 * view); the two views keep u64 values above INT64_MAX exact. */
static dl_status get_int(const lm_gguf *g, const char *key, int64_t lo, int64_t hi,
                         uint64_t uhi, uint64_t *uout, int64_t *iout, dl_error *err)
{
    dl_status st;
    const lm_gguf_kv *kv = get_kv(g, key, &st, err);
    if (!kv)
        return st;
    if (!type_is_int(kv->type))
        return bad_type(kv, "an integer", err);
    int neg = type_is_signed(kv->type) && kv->i64 < 0;
    int ok = neg ? kv->i64 >= lo : (kv->u64 <= uhi && (hi < 0 || kv->u64 <= (uint64_t)hi));
    if (!ok) {
        if (neg)
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, kv->offset, kv->key,
                                   "value %lld is out of range", (long long)kv->i64);
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, kv->offset, kv->key,
                               "value %llu is out of range", (unsigned long long)kv->u64);
    }
    if (uout)
        *uout = kv->u64;
    if (iout)
        *iout = kv->i64;
    return DL_OK;
}

dl_status lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out, dl_error *err)
{
    uint64_t v;
    dl_status st = get_int(g, key, 0, -1, UINT32_MAX, &v, NULL, err);
    if (!st)
        *out = (uint32_t)v;
    return st;
}

dl_status lm_gguf_get_i32(const lm_gguf *g, const char *key, int32_t *out, dl_error *err)
{
    int64_t v;
    dl_status st = get_int(g, key, INT32_MIN, INT32_MAX, INT32_MAX, NULL, &v, err);
    if (!st)
        *out = (int32_t)v;
    return st;
}

dl_status lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out, dl_error *err)
{
    return get_int(g, key, 0, -1, UINT64_MAX, out, NULL, err);
}

dl_status lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out, dl_error *err)
{
    return get_int(g, key, INT64_MIN, INT64_MAX, INT64_MAX, NULL, out, err);
}

/* A widened numeric value as double (integers exactly up to 2^53). */
static double kv_as_double(const lm_gguf_kv *kv)
{
    if (kv->type == LM_GGUF_TYPE_FLOAT32 || kv->type == LM_GGUF_TYPE_FLOAT64)
        return kv->f64;
    return type_is_signed(kv->type) ? (double)kv->i64 : (double)kv->u64;
}

dl_status lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out, dl_error *err)
{
    dl_status st;
    const lm_gguf_kv *kv = get_kv(g, key, &st, err);
    if (!kv)
        return st;
    if (!type_is_int(kv->type) && kv->type != LM_GGUF_TYPE_FLOAT32 &&
        kv->type != LM_GGUF_TYPE_FLOAT64)
        return bad_type(kv, "a number", err);
    double v = kv_as_double(kv);
    if (isfinite(v) && fabs(v) > 3.4028234663852886e38)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, kv->offset, kv->key,
                               "value %g is out of float range", v);
    *out = (float)v;
    return DL_OK;
}

dl_status lm_gguf_get_bool(const lm_gguf *g, const char *key, int *out, dl_error *err)
{
    dl_status st;
    const lm_gguf_kv *kv = get_kv(g, key, &st, err);
    if (!kv)
        return st;
    if (kv->type != LM_GGUF_TYPE_BOOL)
        return bad_type(kv, "BOOL", err);
    *out = kv->u64 != 0;
    return DL_OK;
}

dl_status lm_gguf_get_str(const lm_gguf *g, const char *key, const char **out, size_t *len,
                          dl_error *err)
{
    dl_status st;
    const lm_gguf_kv *kv = get_kv(g, key, &st, err);
    if (!kv)
        return st;
    if (kv->type != LM_GGUF_TYPE_STRING)
        return bad_type(kv, "STRING", err);
    *out = kv->str;
    if (len)
        *len = kv->str_len;
    return DL_OK;
}

dl_status lm_gguf_get_arr(const lm_gguf *g, const char *key, lm_gguf_array *out, dl_error *err)
{
    dl_status st;
    const lm_gguf_kv *kv = get_kv(g, key, &st, err);
    if (!kv)
        return st;
    if (kv->type != LM_GGUF_TYPE_ARRAY)
        return bad_type(kv, "ARRAY", err);
    *out = kv->arr;
    return DL_OK;
}

/* ---- array elements ----------------------------------------------------- */

const char *lm_gguf_arr_str(const lm_gguf_array *a, int64_t i, size_t *len)
{
    assert(a->type == LM_GGUF_TYPE_STRING && i >= 0 && i < a->n);
    uint64_t at = a->str_off[i];
    if (len)
        *len = (size_t)load_u64(a->base + at - 8);
    return (const char *)a->base + at;
}

double lm_gguf_arr_f64(const lm_gguf_array *a, int64_t i)
{
    int sz = scalar_size(a->type);
    assert(sz > 0 && i >= 0 && i < a->n);
    lm_gguf_kv tmp = {.type = a->type};
    scalar_load(a->type, (const unsigned char *)a->data + (size_t)i * (size_t)sz, &tmp);
    return kv_as_double(&tmp);
}

static int64_t elem_offset(const lm_gguf_array *a, int64_t i)
{
    return (int64_t)((const unsigned char *)a->data - a->base) +
           i * (int64_t)scalar_size(a->type);
}

dl_status lm_gguf_arr_copy_f32(const lm_gguf_array *a, float *dst, dl_error *err)
{
    if (!type_is_int(a->type) && a->type != LM_GGUF_TYPE_FLOAT32 &&
        a->type != LM_GGUF_TYPE_FLOAT64)
        return dl_error_set(err, DL_ERR_INPUT, "expected a numeric array, found %s elements",
                            lm_gguf_type_name(a->type));
    if (a->type == LM_GGUF_TYPE_FLOAT32) {
        memcpy(dst, a->data, (size_t)a->n * sizeof *dst);
        return DL_OK;
    }
    for (int64_t i = 0; i < a->n; i++) {
        double v = lm_gguf_arr_f64(a, i);
        if (isfinite(v) && fabs(v) > 3.4028234663852886e38)
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, elem_offset(a, i), NULL,
                                   "array element %lld is out of float range", (long long)i);
        dst[i] = (float)v;
    }
    return DL_OK;
}

dl_status lm_gguf_arr_copy_i32(const lm_gguf_array *a, int32_t *dst, dl_error *err)
{
    if (!type_is_int(a->type))
        return dl_error_set(err, DL_ERR_INPUT, "expected an integer array, found %s elements",
                            lm_gguf_type_name(a->type));
    int sz = scalar_size(a->type);
    for (int64_t i = 0; i < a->n; i++) {
        lm_gguf_kv tmp;
        scalar_load(a->type, (const unsigned char *)a->data + (size_t)i * (size_t)sz, &tmp);
        int neg = type_is_signed(a->type) && tmp.i64 < 0;
        if (neg ? tmp.i64 < INT32_MIN : tmp.u64 > INT32_MAX)
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, elem_offset(a, i), NULL,
                                   "array element %lld does not fit int32", (long long)i);
        dst[i] = (int32_t)tmp.i64;
    }
    return DL_OK;
}
