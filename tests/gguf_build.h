/* gguf_build.h: the one GGUF writer of the tests and benchmarks.
 *
 * Tests build small GGUF files in memory (valid ones, and broken ones by
 * writing raw pieces out of order or by corrupting the bytes afterwards);
 * bench/bench_synth.c streams a model of hundreds of megabytes to a FILE.
 * Both go through this writer, so there is one encoding of the format
 * (docs/gguf.md) outside the reader.
 *
 * What it writes, little-endian as the host (x86-64 and arm64 are):
 *   header   "GGUF", u32 version, u64 n_tensors, u64 n_kv
 *   kv       string key (u64 length + bytes), u32 value type, value
 *            (scalars at their width, bool one byte, string as above,
 *            array: u32 element type, u64 count, the elements)
 *   tensor   string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
 *            u64 offset relative to the data section
 *   data     zero padding to the alignment, then each tensor's bytes,
 *            each followed by zero padding to the alignment
 * The writer does not enforce that order or check counts: the caller
 * states n_kv and n_tensors, and a test may write a wrong one on purpose.
 *
 * Errors: a write that fails (fwrite short, out of memory, a tensor whose
 * size the writer cannot compute, gb_header_counts in file mode) sets
 * `failed`, after which every write is a no-op; check it once at the end.
 * Nothing aborts or prints.
 *
 * Thread-safety: a writer belongs to one thread; distinct writers are
 * independent.
 */
#ifndef DL_GGUF_BUILD_H
#define DL_GGUF_BUILD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gb_writer {
    FILE *f;              /* file mode: the stream, borrowed (never closed) */
    unsigned char *p;     /* memory mode: the bytes so far, owned */
    size_t cap;           /* memory mode: bytes allocated at p */
    uint64_t n;           /* bytes written: the file offset of the next one */
    uint64_t align;       /* padding unit, 32 by default; set it to the value
                             of a general.alignment key the caller writes
                             (0 makes gb_pad and gb_tensor fail) */
    uint64_t next_offset; /* gb_tensor: the next tensor's offset in the data */
    int64_t n_kv;         /* keys written with gb_key / gb_kv_* */
    int failed;           /* sticky failure flag (see above) */
} gb_writer;

/* ---- life cycle --------------------------------------------------------- */

/* In memory: the file accumulates at w->p[0..w->n), owned by the writer
 * until gb_writer_free (a caller may take w->p and set it to NULL). */
void gb_writer_init_mem(gb_writer *w);
/* Streaming to f (borrowed, opened for binary writing by the caller, who
 * also closes it and checks fclose). */
void gb_writer_init_file(gb_writer *w, FILE *f);
/* Frees the memory buffer; does not touch f.  NULL is a no-op. */
void gb_writer_free(gb_writer *w);

/* ---- raw pieces (for layouts a test wants exactly, broken ones included) */

void gb_bytes(gb_writer *w, const void *p, size_t n);
void gb_u8(gb_writer *w, uint8_t v);
void gb_u32(gb_writer *w, uint32_t v);
void gb_u64(gb_writer *w, uint64_t v);
/* A GGUF string: u64 length, then the bytes (no NUL). */
void gb_strn(gb_writer *w, const char *s, size_t n);
void gb_str(gb_writer *w, const char *s);
/* Zero bytes up to the next multiple of w->align (absolute file offset:
 * the data section starts aligned, so this also aligns within it). */
void gb_pad(gb_writer *w);

/* ---- header ------------------------------------------------------------- */

void gb_header(gb_writer *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv);
/* Memory mode only: rewrites the counts of a header already written at
 * offset 0 (for callers that count keys as they go, e.g. with w->n_kv). */
void gb_header_counts(gb_writer *w, uint64_t n_tensors, uint64_t n_kv);

/* ---- metadata ----------------------------------------------------------- */

/* A key and its value type (lm_gguf_type); the value follows from raw
 * pieces.  Counts the key in w->n_kv, as do all gb_kv_* below. */
void gb_key(gb_writer *w, const char *key, uint32_t type);

/* A scalar of any numeric or BOOL value type: v points to it at the type's
 * width in the file (1, 2, 4 or 8 bytes; BOOL one byte, written as given,
 * so a test may store a 2).  STRING/ARRAY/unknown set failed. */
void gb_kv_num(gb_writer *w, const char *key, uint32_t type, const void *v);
/* The common ones, typed. */
void gb_kv_u32(gb_writer *w, const char *key, uint32_t v);
void gb_kv_f32(gb_writer *w, const char *key, float v);
/* v is written as one byte, 1 when non-zero. */
void gb_kv_bool(gb_writer *w, const char *key, int v);
void gb_kv_str(gb_writer *w, const char *key, const char *v);

/* An array's key, element type and count; the caller then writes exactly
 * n elements with raw pieces (gb_str for STRING), streaming if it likes. */
void gb_kv_arr(gb_writer *w, const char *key, uint32_t elem_type, uint64_t n);
/* A STRING array of n NUL-terminated strings (borrowed). */
void gb_kv_arr_str(gb_writer *w, const char *key, const char *const *v, uint64_t n);
/* A numeric or BOOL array: v holds n packed elements of elem_type's width
 * (1, 2, 4 or 8 bytes, as in the file).  STRING/ARRAY/unknown set failed. */
void gb_kv_arr_num(gb_writer *w, const char *key, uint32_t elem_type, const void *v,
                   uint64_t n);

/* ---- tensors ------------------------------------------------------------ */

/* Bytes of a tensor of ggml `type` and shape ne[0..n_dims) (ne[0] the row
 * length): lm_quant_row_size * rows; 0 when the type is unknown, the row
 * length is not a multiple of the block, or n_dims is 0 or above 4. */
uint64_t gb_tensor_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne);

/* One tensor info with the given offset (relative to the data section),
 * written as is: any n_dims, type and offset, for broken files. */
void gb_tensor_info(gb_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                    uint32_t type, uint64_t offset);

/* One tensor info placed at w->next_offset, which then moves past the
 * tensor's bytes rounded up to w->align: the layout of tensors written in
 * info order with gb_tensor_data.  Returns the offset used; a size
 * gb_tensor_nbytes cannot compute sets failed. */
uint64_t gb_tensor(gb_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                   uint32_t type);

/* A whole tensor's bytes followed by padding to w->align.  Large tensors
 * may instead be streamed with gb_bytes (row by row) and then gb_pad. */
void gb_tensor_data(gb_writer *w, const void *p, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* DL_GGUF_BUILD_H */
