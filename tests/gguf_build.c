/* gguf_build.c: the GGUF writer of the tests and benchmarks (gguf_build.h). */
#include "config.h"

#include "gguf_build.h"

#include <stdlib.h>
#include <string.h>

#include "lm_gguf.h"
#include "lm_quant.h"

#define GB_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */

/* ---- life cycle ----------------------------------------------------------- */

void gb_writer_init_mem(gb_writer *w)
{
    memset(w, 0, sizeof *w);
    w->align = LM_GGUF_DEFAULT_ALIGNMENT;
}

void gb_writer_init_file(gb_writer *w, FILE *f)
{
    gb_writer_init_mem(w);
    w->f = f;
}

void gb_writer_free(gb_writer *w)
{
    if (!w)
        return;
    free(w->p);
    w->p = NULL;
    w->cap = 0;
}

/* ---- raw pieces ----------------------------------------------------------- */

/* Grows the buffer geometrically, so building a file byte by byte stays
 * linear. */
static int gb_reserve(gb_writer *w, size_t n)
{
    if (w->n + n <= w->cap)
        return 1;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->n + n) {
        if (cap > SIZE_MAX / 2)
            return 0;
        cap *= 2;
    }
    unsigned char *p = realloc(w->p, cap);
    if (!p)
        return 0;
    w->p = p;
    w->cap = cap;
    return 1;
}

void gb_bytes(gb_writer *w, const void *p, size_t n)
{
    if (w->failed || n == 0)
        return;
    if (w->f) {
        if (fwrite(p, 1, n, w->f) != n) {
            w->failed = 1;
            return;
        }
    } else {
        if (w->n > SIZE_MAX - n || !gb_reserve(w, n)) {
            w->failed = 1;
            return;
        }
        memcpy(w->p + w->n, p, n);
    }
    w->n += n;
}

void gb_u8(gb_writer *w, uint8_t v) { gb_bytes(w, &v, 1); }
void gb_u32(gb_writer *w, uint32_t v) { gb_bytes(w, &v, 4); }
void gb_u64(gb_writer *w, uint64_t v) { gb_bytes(w, &v, 8); }

void gb_strn(gb_writer *w, const char *s, size_t n)
{
    gb_u64(w, n);
    gb_bytes(w, s, n);
}

void gb_str(gb_writer *w, const char *s)
{
    gb_strn(w, s, strlen(s));
}

void gb_pad(gb_writer *w)
{
    static const unsigned char zero[256];
    if (w->align == 0) {
        w->failed = 1;
        return;
    }
    uint64_t left = (w->align - w->n % w->align) % w->align;
    while (left > 0 && !w->failed) {
        size_t k = left < sizeof zero ? (size_t)left : sizeof zero;
        gb_bytes(w, zero, k);
        left -= k;
    }
}

/* ---- header --------------------------------------------------------------- */

void gb_header(gb_writer *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gb_u32(w, GB_MAGIC);
    gb_u32(w, version);
    gb_u64(w, n_tensors);
    gb_u64(w, n_kv);
}

void gb_header_counts(gb_writer *w, uint64_t n_tensors, uint64_t n_kv)
{
    if (w->failed || w->f || w->n < 24) {
        w->failed = 1;
        return;
    }
    memcpy(w->p + 8, &n_tensors, 8);
    memcpy(w->p + 16, &n_kv, 8);
}

/* ---- metadata ------------------------------------------------------------- */

void gb_key(gb_writer *w, const char *key, uint32_t type)
{
    gb_str(w, key);
    gb_u32(w, type);
    w->n_kv++;
}

/* Width in the file of a numeric or BOOL value type; 0 for the others. */
static size_t gb_num_width(uint32_t type)
{
    switch (type) {
    case LM_GGUF_TYPE_UINT8: case LM_GGUF_TYPE_INT8: case LM_GGUF_TYPE_BOOL:
        return 1;
    case LM_GGUF_TYPE_UINT16: case LM_GGUF_TYPE_INT16:
        return 2;
    case LM_GGUF_TYPE_UINT32: case LM_GGUF_TYPE_INT32: case LM_GGUF_TYPE_FLOAT32:
        return 4;
    case LM_GGUF_TYPE_UINT64: case LM_GGUF_TYPE_INT64: case LM_GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

void gb_kv_num(gb_writer *w, const char *key, uint32_t type, const void *v)
{
    size_t width = gb_num_width(type);
    if (width == 0) {
        w->failed = 1;
        return;
    }
    gb_key(w, key, type);
    gb_bytes(w, v, width);
}

void gb_kv_u32(gb_writer *w, const char *key, uint32_t v)
{
    gb_kv_num(w, key, LM_GGUF_TYPE_UINT32, &v);
}

void gb_kv_f32(gb_writer *w, const char *key, float v)
{
    gb_kv_num(w, key, LM_GGUF_TYPE_FLOAT32, &v);
}

void gb_kv_bool(gb_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    gb_kv_num(w, key, LM_GGUF_TYPE_BOOL, &b);
}

void gb_kv_str(gb_writer *w, const char *key, const char *v)
{
    gb_key(w, key, LM_GGUF_TYPE_STRING);
    gb_str(w, v);
}

void gb_kv_arr(gb_writer *w, const char *key, uint32_t elem_type, uint64_t n)
{
    gb_key(w, key, LM_GGUF_TYPE_ARRAY);
    gb_u32(w, elem_type);
    gb_u64(w, n);
}

void gb_kv_arr_str(gb_writer *w, const char *key, const char *const *v, uint64_t n)
{
    gb_kv_arr(w, key, LM_GGUF_TYPE_STRING, n);
    for (uint64_t i = 0; i < n; i++)
        gb_str(w, v[i]);
}

void gb_kv_arr_num(gb_writer *w, const char *key, uint32_t elem_type, const void *v,
                   uint64_t n)
{
    size_t width = gb_num_width(elem_type);
    if (width == 0 || n > SIZE_MAX / width) {
        w->failed = 1;
        return;
    }
    gb_kv_arr(w, key, elem_type, n);
    gb_bytes(w, v, (size_t)n * width);
}

/* ---- tensors -------------------------------------------------------------- */

uint64_t gb_tensor_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne)
{
    if (n_dims < 1 || n_dims > LM_GGUF_MAX_DIMS)
        return 0;
    uint64_t bytes = lm_quant_row_size(type, ne[0]);
    for (uint32_t d = 1; d < n_dims && bytes; d++) {
        if (ne[d] < 1 || bytes > UINT64_MAX / (uint64_t)ne[d])
            return 0;
        bytes *= (uint64_t)ne[d];
    }
    return bytes;
}

void gb_tensor_info(gb_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                    uint32_t type, uint64_t offset)
{
    gb_str(w, name);
    gb_u32(w, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        gb_u64(w, (uint64_t)ne[d]);
    gb_u32(w, type);
    gb_u64(w, offset);
}

uint64_t gb_tensor(gb_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                   uint32_t type)
{
    uint64_t at = w->next_offset, bytes = gb_tensor_nbytes(type, n_dims, ne);
    if (bytes == 0 || w->align == 0 || at > UINT64_MAX - w->align ||
        bytes > UINT64_MAX - at - w->align) {
        w->failed = 1;
        return at;
    }
    gb_tensor_info(w, name, n_dims, ne, type, at);
    w->next_offset = (at + bytes + w->align - 1) / w->align * w->align;
    return at;
}

void gb_tensor_data(gb_writer *w, const void *p, size_t n)
{
    gb_bytes(w, p, n);
    gb_pad(w);
}
