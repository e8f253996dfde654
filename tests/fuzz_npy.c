/* fuzz_npy.c: fuzz target for the .npy header/body parser and the CSR .npz
 * (zip + deflate + .npy members) parser, from memory.
 *
 * Every input goes through all three entry points: the bare header parser
 * (any dtype, 0-2 dimensions, with element reads over the whole payload),
 * the float32 matrix reader (1-D allowed) and the .npz reader.  They must
 * never crash, leak, read outside [data, data + size) or hang; a refusal
 * must carry a message.  Linked with tests/fuzz_main.c it runs over
 * tests/data/npy/ in `make check` (tests/fuzz_npy.sh).
 */
#include <stdint.h>
#include <stdlib.h>

#include "sel_npy.h"
#include "sel_npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_explain(dl_status s, const dl_error *err)
{
    if (s != DL_OK && (err->code != s || err->message[0] == '\0'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dl_error err;
    dl_error_clear(&err);
    sel_npy_header h;
    dl_status s = sel_npy_header_parse(data, size, "fuzz", &h, &err);
    must_explain(s, &err);
    if (s == DL_OK) {
        /* Touch every element: the parser promised they are all in bounds. */
        volatile double sink = 0;
        for (int64_t i = 0; i < h.count; i++) {
            if (h.dtype == SEL_NPY_F32 || h.dtype == SEL_NPY_F64)
                sink += sel_npy_get_f64(data, &h, i);
            else if (h.dtype == SEL_NPY_I32 || h.dtype == SEL_NPY_I64)
                sink += (double)sel_npy_get_i64(data, &h, i);
        }
        (void)sink;
    }

    dl_error_clear(&err);
    sel_npy_mat *m = NULL;
    s = sel_npy_mat_from_buffer(data, size, "fuzz", SEL_NPY_ALLOW_1D, &m, &err);
    must_explain(s, &err);
    if (s == DL_OK) {
        /* stride == cols; looping over the element count keeps a shape
         * like (10^15, 0) from spinning on empty rows. */
        volatile float sink = 0;
        for (int64_t i = 0; i < m->rows * m->cols; i++)
            sink += m->data[i];
        (void)sink;
    }
    sel_npy_mat_free(m);

    dl_error_clear(&err);
    sel_npz_csr *c = NULL;
    s = sel_npz_csr_from_buffer(data, size, "fuzz", &c, &err);
    must_explain(s, &err);
    if (s == DL_OK) {
        /* The structure the reader promised. */
        if (c->indptr[0] != 0 || c->indptr[c->rows] != c->nnz)
            abort();
        for (int64_t e = 0; e < c->nnz; e++) {
            int64_t col = c->index_size == 4 ? ((const int32_t *)c->indices)[e]
                                             : ((const int64_t *)c->indices)[e];
            if (col < 0 || col >= c->cols)
                abort();
        }
    }
    sel_npz_csr_free(c);
    return 0;
}
