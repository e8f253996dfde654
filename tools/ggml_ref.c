/* ggml_ref.c: makes the fixtures that check our quantised-tensor kernels
 * against llama.cpp / ggml themselves (scripts/ggml-fixtures builds and runs
 * it; it is not part of the normal build and needs no header of theirs).
 *
 *   ggml_ref quantize LIBLLAMA IN.gguf OUT.gguf FTYPE
 *       OUT = IN quantised by libllama's llama_model_quantize (FTYPE is
 *       llama.cpp's llama_ftype number, e.g. 15 = Q4_K_M, 17 = Q5_K_M).
 *   ggml_ref dequant LIBGGML_BASE FILE.gguf
 *       For every tensor of FILE, located by ggml's own GGUF parser and
 *       expanded by ggml's own dequantize_row_* functions, prints one line
 *       "name type_id n_elements sha256" where sha256 is that of the float32
 *       values (little-endian) in storage order.
 *
 * Only functions with plain arguments are called, except
 * llama_model_quantize_default_params (a struct returned by value: received
 * into a larger buffer) whose first two fields, nthread and ftype, are
 * stable across llama.cpp versions. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_sha256.h"

typedef struct {
    unsigned char b[1024];
} big_struct;

static void *need(void *lib, const char *name)
{
    void *f = dlsym(lib, name);
    if (!f) {
        fprintf(stderr, "ggml_ref: %s not found\n", name);
        exit(1);
    }
    return f;
}

static int do_quantize(void *lib, const char *in, const char *out, int32_t ftype)
{
    void (*init)(void) = (void (*)(void))need(lib, "llama_backend_init");
    big_struct (*defaults)(void) = (big_struct(*)(void))need(lib, "llama_model_quantize_default_params");
    uint32_t (*quantize)(const char *, const char *, const void *) =
        (uint32_t(*)(const char *, const char *, const void *))need(lib, "llama_model_quantize");
    init();
    big_struct p = defaults();
    int32_t nthread = 2;
    memcpy(p.b, &nthread, 4);
    memcpy(p.b + 4, &ftype, 4);
    return quantize(in, out, &p) == 0 ? 0 : 1;
}

struct gguf_params { /* ggml's gguf_init_params: {bool no_alloc; struct ggml_context **ctx;} */
    _Bool no_alloc;
    void **ctx;
};

static int do_dequant(void *lib, const char *path)
{
    void *(*g_open)(const char *, struct gguf_params) =
        (void *(*)(const char *, struct gguf_params))need(lib, "gguf_init_from_file");
    int64_t (*g_n)(const void *) = (int64_t(*)(const void *))need(lib, "gguf_get_n_tensors");
    const char *(*g_name)(const void *, int64_t) =
        (const char *(*)(const void *, int64_t))need(lib, "gguf_get_tensor_name");
    size_t (*g_off)(const void *, int64_t) = (size_t(*)(const void *, int64_t))need(lib, "gguf_get_tensor_offset");
    size_t (*g_size)(const void *, int64_t) = (size_t(*)(const void *, int64_t))need(lib, "gguf_get_tensor_size");
    int (*g_type)(const void *, int64_t) = (int (*)(const void *, int64_t))need(lib, "gguf_get_tensor_type");
    size_t (*g_data)(const void *) = (size_t(*)(const void *))need(lib, "gguf_get_data_offset");
    int64_t (*blck)(int) = (int64_t(*)(int))need(lib, "ggml_blck_size");
    size_t (*tsize)(int) = (size_t(*)(int))need(lib, "ggml_type_size");
    static const struct {
        int type;
        const char *fn;
    } deq[] = {{2, "dequantize_row_q4_0"}, {3, "dequantize_row_q4_1"}, {6, "dequantize_row_q5_0"},
               {7, "dequantize_row_q5_1"}, {8, "dequantize_row_q8_0"}, {12, "dequantize_row_q4_K"},
               {13, "dequantize_row_q5_K"}, {14, "dequantize_row_q6_K"}};
    struct gguf_params gp = {1, NULL};
    void *g = g_open(path, gp);
    FILE *f = fopen(path, "rb");
    if (!g || !f) {
        fprintf(stderr, "ggml_ref: cannot open %s\n", path);
        return 1;
    }
    for (int64_t t = 0; t < g_n(g); t++) {
        int type = g_type(g, t);
        size_t bytes = g_size(g, t);
        int64_t n = (int64_t)(bytes / tsize(type)) * blck(type);
        unsigned char *raw = malloc(bytes);
        float *y = malloc((size_t)n * sizeof *y);
        if (!raw || !y || fseek(f, (long)(g_data(g) + g_off(g, t)), SEEK_SET) != 0 ||
            fread(raw, 1, bytes, f) != bytes) {
            fprintf(stderr, "ggml_ref: cannot read tensor %lld\n", (long long)t);
            return 1;
        }
        if (type == 0) {
            memcpy(y, raw, bytes);
        } else {
            void (*fn)(const void *, float *, int64_t) = NULL;
            for (size_t i = 0; i < sizeof deq / sizeof deq[0]; i++)
                if (deq[i].type == type)
                    fn = (void (*)(const void *, float *, int64_t))need(lib, deq[i].fn);
            if (!fn) {
                fprintf(stderr, "ggml_ref: tensor type %d not handled\n", type);
                return 1;
            }
            fn(raw, y, n);
        }
        uint8_t dg[DL_SHA256_DIGEST_LEN];
        char hex[DL_SHA256_HEX_LEN];
        dl_sha256(y, (size_t)n * sizeof *y, dg);
        dl_sha256_hex(dg, hex);
        printf("%s %d %lld %s\n", g_name(g, t), type, (long long)n, hex);
        free(raw);
        free(y);
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3) {
        void *lib = dlopen(argv[2], RTLD_NOW | RTLD_GLOBAL);
        if (!lib) {
            fprintf(stderr, "ggml_ref: %s\n", dlerror());
            return 1;
        }
        if (!strcmp(argv[1], "quantize") && argc == 6)
            return do_quantize(lib, argv[3], argv[4], (int32_t)atoi(argv[5]));
        if (!strcmp(argv[1], "dequant") && argc == 4)
            return do_dequant(lib, argv[3]);
    }
    fprintf(stderr, "usage: ggml_ref quantize LIBLLAMA IN OUT FTYPE | dequant LIBGGML_BASE FILE\n");
    return 2;
}
