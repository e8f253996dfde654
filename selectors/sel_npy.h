/* sel_npy.h: NumPy .npy files for dense kernels: a hostile-input reader that
 * memory-maps float32 data and hands out a borrowed view, and a writer
 * (atomic, through dl_file.h).
 *
 * On-disk format (numpy.lib.format, versions 1.0, 2.0 and 3.0):
 *   offset 0   6 bytes  magic "\x93NUMPY"
 *   offset 6   1 byte   major version: 1, 2 or 3
 *   offset 7   1 byte   minor version: 0
 *   offset 8   HEADER_LEN: uint16 little-endian (1.0) or uint32 (2.0, 3.0)
 *   offset 10 (1.0) or 12 (2.0, 3.0): HEADER_LEN bytes of a Python dict literal,
 *       {'descr': '<f4', 'fortran_order': False, 'shape': (rows, cols), }
 *     keys in any order, single or double quotes, any spaces, an optional
 *     trailing comma; padded with spaces and ending in '\n'.  ASCII for 1.0
 *     and 2.0, UTF-8 for 3.0 (only ASCII can be valid here either way).
 *   then the data: prod(shape) items in C (row-major) order, nothing after.
 *
 * What is accepted: descr '<f4' '>f4' '<f8' '>f8' '<i4' '>i4' '<i8' '>i8'
 * (and '|S<n>' '<U<n>' strings, which scipy's .npz uses for the format
 * member); fortran_order False; 0, 1 or 2 dimensions (0 and 1 only through
 * sel_npy_header_parse or the SEL_NPY_ALLOW_1D flag).  Everything else is
 * an error naming the file, the byte offset and what was expected:
 * DL_ERR_INPUT for a malformed file (magic, version, header length, dict
 * syntax, truncated or trailing data, shape overflow), DL_ERR_UNSUPPORTED
 * for a well-formed file we do not read (another dtype, fortran_order True,
 * 3-D and higher).
 *
 * Zero copy: a little-endian float32 C-order file is memory-mapped and the
 * matrix points into the mapping (borrowed == 1).  The documented
 * exceptions, which produce an owned float32 copy (borrowed == 0): float64
 * files (converted; a finite value beyond float32's range is an error),
 * big-endian '>f4'/'>f8' files (byte-swapped), and a float32 payload whose
 * offset is not a multiple of 4 (numpy always aligns to 64; other writers
 * may not, and an unaligned float pointer is undefined behaviour).
 *
 * A mapped file must not be truncated while the matrix lives (the kernel
 * would take SIGBUS on the lost pages, as with any mmap reader).
 *
 * Thread-safety: every function here is reentrant; a sel_npy_mat is
 * read-only after it is opened and may be shared by threads.
 */
#ifndef SEL_NPY_H
#define SEL_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types the reader knows.  Values are stable. */
typedef enum sel_npy_dtype {
    SEL_NPY_F32 = 0, /* 'f4' */
    SEL_NPY_F64 = 1, /* 'f8' */
    SEL_NPY_I32 = 2, /* 'i4' */
    SEL_NPY_I64 = 3, /* 'i8' */
    SEL_NPY_BYTES = 4, /* '|S<n>': n bytes, NUL padded */
    SEL_NPY_UNICODE = 5 /* '<U<n>': n UCS-4 code units */
} sel_npy_dtype;

/* The largest header we accept (numpy itself refuses more than 10,000
 * characters by default; a 2-D array needs about 120). */
#define SEL_NPY_HEADER_MAX ((size_t)1 << 20)

/* A parsed header.  Only filled by a successful sel_npy_header_parse. */
typedef struct sel_npy_header {
    int version;          /* major version: 1, 2 or 3 */
    sel_npy_dtype dtype;
    int big_endian;       /* 1 for a '>' descr */
    size_t itemsize;      /* bytes per element */
    int ndim;             /* 0, 1 or 2 */
    int64_t shape[2];     /* shape[0..ndim-1]; unused entries are 1 */
    int64_t count;        /* product of the shape (1 for 0-D) */
    size_t data_offset;   /* bytes from the start of the buffer to the data */
    size_t data_bytes;    /* count * itemsize == len - data_offset */
} sel_npy_header;

/* Options for sel_npy_mat_open/_from_buffer. */
enum {
    SEL_NPY_ALLOW_1D = 1u << 0 /* accept shape (n,) as an n x 1 matrix */
};

/* A dense float32 matrix read from a .npy file: element (r, c) is
 * data[r * stride + c], rows x cols, stride == cols (C order). */
typedef struct sel_npy_mat {
    const float *data;      /* borrowed from the mapping/buffer, or owned (see borrowed) */
    int64_t rows;
    int64_t cols;
    int64_t stride;         /* elements between consecutive rows */
    int borrowed;           /* 1: data points into the file mapping or caller's buffer */
    sel_npy_dtype file_dtype; /* the dtype stored in the file */
    int file_big_endian;
    /* private */
    void *map_;             /* the file mapping (open only), or NULL */
    size_t map_len_;
    float *owned_;          /* the converted copy, or NULL */
} sel_npy_mat;

/* ---- parsing ---------------------------------------------------------- */

/* Parses and validates the header of a .npy image buf[0..len) and checks
 * that the data fills the rest of it exactly.  name labels errors (NULL:
 * "<buffer>").  Accepts 0, 1 and 2 dimensions of any dtype above. */
dl_status sel_npy_header_parse(const uint8_t *buf, size_t len, const char *name,
                               sel_npy_header *hdr, dl_error *err);

/* Converts element i of the data of a parsed image to int64 (integer
 * dtypes only) or float (float dtypes only), handling byte order and
 * alignment.  i must be < hdr->count (asserted). */
int64_t sel_npy_get_i64(const uint8_t *buf, const sel_npy_header *hdr, int64_t i);
double sel_npy_get_f64(const uint8_t *buf, const sel_npy_header *hdr, int64_t i);

/* ---- dense matrices --------------------------------------------------- */

/* Memory-maps path and returns the matrix in *out (owned; free with
 * sel_npy_mat_free).  Zero copy for little-endian aligned float32 (see the
 * file comment for the copies).  Errors: DL_ERR_NOT_FOUND (no such file),
 * DL_ERR_IO, DL_ERR_INPUT, DL_ERR_UNSUPPORTED, DL_ERR_NOMEM. */
dl_status sel_npy_mat_open(const char *path, unsigned flags, sel_npy_mat **out,
                           dl_error *err);

/* As sel_npy_mat_open on an in-memory image.  When (*out)->borrowed, the
 * matrix points into buf, which must outlive it. */
dl_status sel_npy_mat_from_buffer(const void *buf, size_t len, const char *name,
                                  unsigned flags, sel_npy_mat **out, dl_error *err);

/* Unmaps and frees.  NULL is a no-op. */
void sel_npy_mat_free(sel_npy_mat *m);

/* ---- writing ------------------------------------------------------------ */

/* Writes a .npy file (version 1.0, header padded to 64 bytes like numpy)
 * atomically: a temporary file in the same directory, fsync, rename.  On
 * failure nothing is left at path or beside it.  dtype is SEL_NPY_F32,
 * F64, I32 or I64 (little-endian); ndim 0..2; data holds the elements in C
 * order, except that for ndim 2 row r starts at element r * stride
 * (stride >= shape[1]; 0 means shape[1]).  Errors: DL_ERR_USAGE, DL_ERR_IO. */
dl_status sel_npy_write(const char *path, sel_npy_dtype dtype, int ndim,
                        const int64_t *shape, const void *data, int64_t stride,
                        dl_error *err);

/* Encodes the header of such a file into out[0..cap); returns its length
 * (a multiple of 64), or 0 when cap is too small or the arguments are bad. */
size_t sel_npy_header_encode(sel_npy_dtype dtype, int ndim, const int64_t *shape,
                             uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* SEL_NPY_H */
