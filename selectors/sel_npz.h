/* sel_npz.h: sparse kernels in scipy's .npz CSR format (scipy.sparse.save_npz
 * and load_npz), read from hostile files and written atomically.
 *
 * Format: a zip archive (PKWARE APPNOTE 6.3) whose members are .npy files
 * (sel_npy.h):
 *   data.npy     (nnz,)      '<f4' or '<f8'  the stored values
 *   indices.npy  (nnz,)      '<i4' or '<i8'  column of each value, in [0, cols)
 *   indptr.npy   (rows + 1,) '<i4' or '<i8'  row r is indptr[r] .. indptr[r+1]-1;
 *                                            indptr[0] = 0, non-decreasing, ends at nnz
 *   shape.npy    (2,)        '<i4' or '<i8'  (rows, cols)
 *   format.npy   ()          '|S3' or '<U3'  "csr" (scipy writes b'csr')
 * Members are stored (method 0, np.savez, save_npz(compressed=False)) or
 * deflated (method 8, savez_compressed, scipy's default).  Other members
 * are ignored; a duplicate member name is an error.
 *
 * Validation: the end-of-central-directory record, the central directory
 * and each local header (signature, bounds, name, method, CRC-32 and sizes
 * must agree; numpy's zip64 extra field in local headers is understood),
 * inflation to exactly the recorded size (at most 1032:1, deflate's limit,
 * so a zip bomb is refused before allocating), the CRC-32 of every member
 * used, each member's .npy header, and the CSR structure above.  Zip64
 * archives (over 4 GiB or 65,535 members), encryption, multi-disk archives
 * and other compression methods are rejected (DL_ERR_UNSUPPORTED).  Errors
 * name the file, the member (the error's field) and a byte offset: into the
 * archive for zip structure, into the (inflated) member for .npy content.
 *
 * Memory: the result is an owned copy (indptr widened to int64, values to
 * float32, indices kept at their stored width); while reading, the archive
 * is mapped and one inflated member at a time is held beside the result.
 *
 * Thread-safety: reentrant; a sel_npz_csr is read-only once returned.
 */
#ifndef SEL_NPZ_H
#define SEL_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A CSR matrix rows x cols: row r holds values[indptr[r] .. indptr[r+1]-1]
 * at columns indices[...].  All arrays owned by the struct. */
typedef struct sel_npz_csr {
    int64_t rows;
    int64_t cols;
    int64_t nnz;
    int64_t *indptr;  /* (rows + 1) */
    void *indices;    /* (nnz) int32_t when index_size == 4, int64_t when 8 */
    int index_size;   /* 4 or 8: the width stored in the file */
    float *values;    /* (nnz) */
} sel_npz_csr;

/* Reads a CSR .npz file.  *out is owned (sel_npz_csr_free).  Errors:
 * DL_ERR_NOT_FOUND, DL_ERR_IO, DL_ERR_INPUT, DL_ERR_UNSUPPORTED,
 * DL_ERR_NOMEM. */
dl_status sel_npz_csr_read(const char *path, sel_npz_csr **out, dl_error *err);

/* As sel_npz_csr_read on an in-memory archive; buf is only read during the
 * call.  name labels errors (NULL: "<buffer>"). */
dl_status sel_npz_csr_from_buffer(const void *buf, size_t len, const char *name,
                                  sel_npz_csr **out, dl_error *err);

/* Frees all arrays and the struct.  NULL is a no-op. */
void sel_npz_csr_free(sel_npz_csr *m);

/* Writes a CSR .npz that scipy.sparse.load_npz reads, with stored (not
 * deflated) members, atomically (dl_file.h).  indices has index_size
 * (4 or 8) bytes per entry; indptr is written at the same width (int64
 * when nnz does not fit int32); values as '<f4'.  The structure is checked
 * first (DL_ERR_USAGE when it is not valid CSR); DL_ERR_IO on write. */
dl_status sel_npz_csr_write(const char *path, int64_t rows, int64_t cols,
                            const int64_t *indptr, const void *indices, int index_size,
                            const float *values, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SEL_NPZ_H */
