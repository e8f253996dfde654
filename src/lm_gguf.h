/* lm_gguf.h: a read-only, memory-mapped reader for GGUF files (v2 and v3).
 *
 * GGUF layout (little-endian throughout):
 *   uint32 magic "GGUF"; uint32 version (2 or 3; 1 is rejected);
 *   uint64 n_tensors; uint64 n_kv;
 *   n_kv times:      string key; uint32 value type; value
 *   n_tensors times: string name; uint32 n_dims (1..4); uint64 ne[n_dims];
 *                    uint32 ggml type; uint64 offset (from the data start)
 *   zero padding up to general.alignment (default 32, a power of two);
 *   tensor data: each tensor at data_start + offset, offset a multiple of
 *   the alignment.
 * A string is uint64 length + that many bytes (no NUL).  A value is a
 * scalar of lm_gguf_type, or an array: uint32 element type, uint64 count,
 * then the elements (arrays of arrays are rejected as unsupported).
 * ne[0] is the innermost, contiguous dimension (the row length).
 *
 * The file is treated as hostile: every count, length, offset, dimension and
 * size is checked against the bytes present and against overflow before use,
 * nothing is allocated in proportion to a claimed count before that count is
 * checked against the bytes left, and duplicate keys or tensor names, unknown
 * value types, misaligned or overlapping-the-end tensor data all fail.  A bad
 * file gives DL_ERR_INPUT (or DL_ERR_UNSUPPORTED for an unknown tensor type,
 * a nested array or version 1) with err->offset at the offending byte and
 * err->field naming the key or tensor when one is known.
 *
 * Ownership: lm_gguf_open* return an owned handle (lm_gguf_free); every
 * pointer obtained from it is borrowed and lives until lm_gguf_free.
 * Thread-safety: opening is reentrant; an open handle is immutable, so any
 * number of threads may read it concurrently.
 */
#ifndef LM_GGUF_H
#define LM_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "lm_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types (on-disk ids, stable). */
typedef enum lm_gguf_type {
    LM_GGUF_TYPE_UINT8 = 0,
    LM_GGUF_TYPE_INT8 = 1,
    LM_GGUF_TYPE_UINT16 = 2,
    LM_GGUF_TYPE_INT16 = 3,
    LM_GGUF_TYPE_UINT32 = 4,
    LM_GGUF_TYPE_INT32 = 5,
    LM_GGUF_TYPE_FLOAT32 = 6,
    LM_GGUF_TYPE_BOOL = 7,
    LM_GGUF_TYPE_STRING = 8,
    LM_GGUF_TYPE_ARRAY = 9,
    LM_GGUF_TYPE_UINT64 = 10,
    LM_GGUF_TYPE_INT64 = 11,
    LM_GGUF_TYPE_FLOAT64 = 12
} lm_gguf_type;

#define LM_GGUF_MAX_DIMS 4
#define LM_GGUF_DEFAULT_ALIGNMENT 32

typedef struct lm_gguf lm_gguf;

/* An array value.  Numeric elements are packed little-endian at `data`,
 * which is NOT aligned in general: read them with lm_gguf_arr_* below (or
 * memcpy), never through a cast pointer.  Fields after `n` are private. */
typedef struct lm_gguf_array {
    lm_gguf_type type;       /* element type (never ARRAY) */
    int64_t n;               /* element count */
    const void *data;        /* borrowed: first element in the mapping */
    const uint64_t *str_off; /* private: STRING arrays, file offset of each */
    const unsigned char *base; /* private: the mapping */
} lm_gguf_array;

/* One metadata entry, by value (see lm_gguf_kv_at). */
typedef struct lm_gguf_kv {
    const char *key;       /* borrowed, NUL-terminated (keys hold no NUL) */
    lm_gguf_type type;
    int64_t offset;        /* file offset of the value */
    /* Scalars, widened: integers in u64 (unsigned) or i64 (signed), floats
     * in f64, BOOL as 0/1 in u64. */
    uint64_t u64;
    int64_t i64;
    double f64;
    const char *str;       /* STRING: borrowed, NUL-terminated copy */
    size_t str_len;        /* STRING: length in bytes (may hold NULs) */
    lm_gguf_array arr;     /* ARRAY */
} lm_gguf_kv;

typedef struct lm_gguf_tensor {
    const char *name;      /* borrowed, NUL-terminated */
    uint32_t type;         /* ggml type id (lm_quant_info() knows it) */
    int n_dims;            /* 1..4 */
    int64_t ne[LM_GGUF_MAX_DIMS]; /* ne[0] = row length; unused dims are 1 */
    int64_t n_elements;    /* product of ne, checked for overflow */
    int64_t n_rows;        /* n_elements / ne[0] */
    size_t row_bytes;      /* bytes of one row (lm_quant_row_size) */
    size_t nbytes;         /* bytes of the whole tensor */
    uint64_t offset;       /* absolute byte offset of the data in the file */
    const void *data;      /* borrowed pointer into the mapping; aligned to
                              general.alignment relative to the file start */
} lm_gguf_tensor;

/* ---- open / close ----------------------------------------------------- */

/* Maps `path` read-only and parses it.  NULL on failure with err filled
 * (DL_ERR_IO: cannot open/map; DL_ERR_INPUT: malformed; DL_ERR_UNSUPPORTED;
 * DL_ERR_NOMEM); err->file is the path.  Owned: lm_gguf_free. */
lm_gguf *lm_gguf_open(const char *path, dl_error *err);

/* Parses a caller-owned buffer without copying it: the buffer must outlive
 * the handle.  For tests and fuzzing; same checks as lm_gguf_open. */
lm_gguf *lm_gguf_open_buffer(const void *buf, size_t size, dl_error *err);

/* Unmaps and frees.  NULL is a no-op. */
void lm_gguf_free(lm_gguf *g);

/* Lets the kernel drop the resident pages of the mapped bytes [p, p + n)
 * (the whole pages inside the range: MADV_DONTNEED) after a caller has made
 * its own copy of them; reading them later stays correct (the pages come
 * back from the file).  A no-op for lm_gguf_open_buffer handles and for
 * ranges outside the file.  Thread-safe (changes no state of g). */
void lm_gguf_release(const lm_gguf *g, const void *p, size_t n);

/* ---- file facts ------------------------------------------------------- */

uint32_t lm_gguf_version(const lm_gguf *g);
size_t lm_gguf_file_size(const lm_gguf *g);
size_t lm_gguf_alignment(const lm_gguf *g);
/* Offset of the tensor data section (aligned). */
size_t lm_gguf_data_offset(const lm_gguf *g);
/* The whole file (borrowed). */
const void *lm_gguf_base(const lm_gguf *g);
/* general.architecture, or "" when absent or not a string.  Borrowed. */
const char *lm_gguf_arch(const lm_gguf *g);

/* ---- metadata --------------------------------------------------------- */

int64_t lm_gguf_n_kv(const lm_gguf *g);
/* Entry i (0 <= i < n_kv, in file order); asserts on a bad index.
 * Borrowed. */
const lm_gguf_kv *lm_gguf_kv_at(const lm_gguf *g, int64_t i);
/* Entry named key, or NULL. Borrowed. O(log n_kv). */
const lm_gguf_kv *lm_gguf_find_kv(const lm_gguf *g, const char *key);
/* "UINT32", "STRING", ... for a value type; "unknown" otherwise. */
const char *lm_gguf_type_name(lm_gguf_type t);

/* Typed getters.  Each returns DL_OK and stores *out, or:
 *   DL_ERR_NOT_FOUND when the key is absent (out untouched: callers with a
 *                    default set it first and accept NOT_FOUND);
 *   DL_ERR_INPUT     when the stored type does not convert or the value is
 *                    out of range.
 * err->field is the key.  Conversion rules:
 *   u32/i32/u64/i64: any integer type (UINT8..INT64) whose value fits the
 *                    target exactly; BOOL and floats are refused;
 *   f32:             FLOAT32, FLOAT64 (finite results only if finite input;
 *                    a finite FLOAT64 beyond float range is refused), and
 *                    any integer type (converted to nearest float);
 *   bool:            BOOL only;
 *   str:             STRING only; *out is borrowed and NUL-terminated, and
 *                    *len (if len is non-NULL) its length in bytes. */
dl_status lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out, dl_error *err);
dl_status lm_gguf_get_i32(const lm_gguf *g, const char *key, int32_t *out, dl_error *err);
dl_status lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out, dl_error *err);
dl_status lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out, dl_error *err);
dl_status lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out, dl_error *err);
dl_status lm_gguf_get_bool(const lm_gguf *g, const char *key, int *out, dl_error *err);
dl_status lm_gguf_get_str(const lm_gguf *g, const char *key, const char **out,
                          size_t *len, dl_error *err);
/* ARRAY only; *out describes it (borrowed). */
dl_status lm_gguf_get_arr(const lm_gguf *g, const char *key, lm_gguf_array *out,
                          dl_error *err);

/* ---- array elements (a from lm_gguf_get_arr or a kv; 0 <= i < a->n) ---- */

/* String i of a STRING array: borrowed, NOT NUL-terminated, *len bytes.
 * Asserts on a non-string array or a bad index. */
const char *lm_gguf_arr_str(const lm_gguf_array *a, int64_t i, size_t *len);

/* Element i of a numeric (or BOOL) array, converted: integers exactly into
 * double, floats as stored.  Asserts on STRING arrays or a bad index. */
double lm_gguf_arr_f64(const lm_gguf_array *a, int64_t i);

/* Copies all elements into dst[0..a->n) with the getters' rules: _f32 takes
 * FLOAT32/FLOAT64/integer arrays, _i32 integer arrays whose every element
 * fits int32.  DL_ERR_INPUT (err->offset at the element) otherwise; dst may
 * then be partly written. */
dl_status lm_gguf_arr_copy_f32(const lm_gguf_array *a, float *dst, dl_error *err);
dl_status lm_gguf_arr_copy_i32(const lm_gguf_array *a, int32_t *dst, dl_error *err);

/* ---- tensors ---------------------------------------------------------- */

int64_t lm_gguf_n_tensors(const lm_gguf *g);
/* Tensor i in file order; asserts on a bad index.  Borrowed. */
const lm_gguf_tensor *lm_gguf_tensor_at(const lm_gguf *g, int64_t i);
/* Tensor named name, or NULL.  Borrowed.  O(log n_tensors). */
const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* LM_GGUF_H */
