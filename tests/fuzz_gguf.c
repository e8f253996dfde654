/* fuzz_gguf.c: libFuzzer target for the GGUF reader.  Whatever the bytes,
 * lm_gguf_open_buffer returns a handle or a coded error; with a handle,
 * every key, array element and tensor byte it describes must be readable
 * (ASan reports any byte outside the input). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lm_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every element of an array value. */
static unsigned walk_array(const lm_gguf_array *a)
{
    unsigned acc = 0;
    for (int64_t i = 0; i < a->n; i++) {
        if (a->type == LM_GGUF_TYPE_STRING) {
            size_t len;
            const char *s = lm_gguf_arr_str(a, i, &len);
            if (len)
                acc += (unsigned char)s[0] + (unsigned char)s[len - 1];
        } else {
            acc += (unsigned)(lm_gguf_arr_f64(a, i) != 0);
        }
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dl_error err;
    dl_error_clear(&err);
    lm_gguf *g = lm_gguf_open_buffer(data, size, &err);
    if (!g) {
        assert(err.code != DL_OK && err.message[0]);
        return 0;
    }
    unsigned acc = 0;
    for (int64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        const lm_gguf_kv *kv = lm_gguf_kv_at(g, i);
        assert(lm_gguf_find_kv(g, kv->key) == kv);
        if (kv->type == LM_GGUF_TYPE_ARRAY)
            acc += walk_array(&kv->arr);
        else if (kv->type == LM_GGUF_TYPE_STRING)
            acc += (unsigned)strlen(kv->str);
    }
    float row[512];
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        assert(lm_gguf_find_tensor(g, t->name) == t);
        const unsigned char *p = t->data;
        acc += p[0] + p[t->nbytes - 1];
        /* Dequantise the first row when it is small and has kernels. */
        if (lm_quant_supported(t->type) && t->ne[0] <= 512)
            lm_quant_dequant_row(t->type, p, row, t->ne[0]);
    }
    lm_gguf_free(g);
    return (int)(acc & 0);
}
