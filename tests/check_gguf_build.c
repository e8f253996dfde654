/* check_gguf_build.c: the tests' and benchmarks' GGUF writer (gguf_build.h).
 *
 * A file holding every value type, arrays of every element type, a
 * non-default alignment and tensors of 1 to 4 dimensions is read back by
 * src/lm_gguf's reader and every key and tensor checked against the values
 * written, with offsets and sizes recomputed here from ggml's block sizes;
 * the same file streamed to a FILE is byte-identical to the one built in
 * memory; a tokenizer file equals, byte for byte, the seed that an
 * independent writer (tests/gen/gen_tok_seeds.py, Python's struct module)
 * produced; failures are sticky and reported, never fatal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "gguf_build.h"
#include "lm_gguf.h"
#include "lm_quant.h"

/* ---- the file with everything ------------------------------------------- */

#define ALL_ALIGN 64

typedef struct num_arr {
    const char *key;
    uint32_t type;
    const void *v;
    int64_t n;
    double want[3]; /* the elements as the reader converts them */
} num_arr;

static const uint8_t a_u8[] = {0, 255, 7};
static const int8_t a_i8[] = {-128, 127, 0};
static const uint16_t a_u16[] = {65535, 1};
static const int16_t a_i16[] = {-32768, 5};
static const uint32_t a_u32[] = {4000000000u, 3};
static const int32_t a_i32[] = {-2000000000, 9, 0};
static const uint64_t a_u64[] = {(uint64_t)1 << 53, 11};
static const int64_t a_i64[] = {-((int64_t)1 << 53), 12};
static const float a_f32[] = {1.5f, -0.25f};
static const double a_f64[] = {1e-300, 2.5};
static const uint8_t a_bool[] = {1, 0, 1};

static const num_arr num_arrs[] = {
    {"arr.u8", LM_GGUF_TYPE_UINT8, a_u8, 3, {0, 255, 7}},
    {"arr.i8", LM_GGUF_TYPE_INT8, a_i8, 3, {-128, 127, 0}},
    {"arr.u16", LM_GGUF_TYPE_UINT16, a_u16, 2, {65535, 1}},
    {"arr.i16", LM_GGUF_TYPE_INT16, a_i16, 2, {-32768, 5}},
    {"arr.u32", LM_GGUF_TYPE_UINT32, a_u32, 2, {4000000000.0, 3}},
    {"arr.i32", LM_GGUF_TYPE_INT32, a_i32, 3, {-2000000000.0, 9, 0}},
    {"arr.u64", LM_GGUF_TYPE_UINT64, a_u64, 2, {9007199254740992.0, 11}},
    {"arr.i64", LM_GGUF_TYPE_INT64, a_i64, 2, {-9007199254740992.0, 12}},
    {"arr.f32", LM_GGUF_TYPE_FLOAT32, a_f32, 2, {1.5, -0.25}},
    {"arr.f64", LM_GGUF_TYPE_FLOAT64, a_f64, 2, {1e-300, 2.5}},
    {"arr.bool", LM_GGUF_TYPE_BOOL, a_bool, 3, {1, 0, 1}},
};
#define N_NUM_ARRS ((int)(sizeof num_arrs / sizeof num_arrs[0]))

static const char *const strs[] = {"a", "", "\xe2\x96\x81x"};

/* Tensors, and their sizes from ggml's block structs (written here, not
 * taken from lm_quant): F32 4 bytes, F16 2, Q8_0 34 per 32 values, Q4_K
 * 144 per 256. */
typedef struct tensor_spec {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    uint64_t nbytes;
} tensor_spec;

static const tensor_spec tensors[] = {
    {"w.f32", LM_QTYPE_F32, 2, {8, 3, 1, 1}, 8 * 3 * 4},
    {"w.f16", LM_QTYPE_F16, 1, {5, 1, 1, 1}, 5 * 2},
    {"w.q8_0", LM_QTYPE_Q8_0, 4, {32, 2, 1, 3}, 6 * 34},
    {"w.q4_k", LM_QTYPE_Q4_K, 3, {256, 1, 2, 1}, 2 * 144},
};
#define N_TENSORS ((int)(sizeof tensors / sizeof tensors[0]))
/* 12 scalars, the numeric arrays, 2 string arrays, general.alignment */
#define N_KV (12 + N_NUM_ARRS + 2 + 1)

static unsigned char pattern(int t, uint64_t k)
{
    return (unsigned char)(k * 31u + (uint64_t)t * 101u + 1u);
}

static void build_all(gb_writer *w)
{
    gb_header(w, 3, N_TENSORS, N_KV);
    gb_kv_u32(w, "general.alignment", ALL_ALIGN);
    w->align = ALL_ALIGN;
    gb_kv_num(w, "s.u8", LM_GGUF_TYPE_UINT8, &(uint8_t){200});
    gb_kv_num(w, "s.i8", LM_GGUF_TYPE_INT8, &(int8_t){-100});
    gb_kv_num(w, "s.u16", LM_GGUF_TYPE_UINT16, &(uint16_t){60000});
    gb_kv_num(w, "s.i16", LM_GGUF_TYPE_INT16, &(int16_t){-30000});
    gb_kv_u32(w, "s.u32", 4000000000u);
    gb_kv_num(w, "s.i32", LM_GGUF_TYPE_INT32, &(int32_t){-2000000000});
    gb_kv_num(w, "s.u64", LM_GGUF_TYPE_UINT64, &(uint64_t){UINT64_MAX - 5});
    gb_kv_num(w, "s.i64", LM_GGUF_TYPE_INT64, &(int64_t){INT64_MIN + 7});
    gb_kv_f32(w, "s.f32", 0.1f);
    gb_kv_num(w, "s.f64", LM_GGUF_TYPE_FLOAT64, &(double){-1e300});
    gb_kv_bool(w, "s.bool", 5);
    gb_kv_str(w, "s.str", "h\xc3\xa9llo");
    for (int i = 0; i < N_NUM_ARRS; i++)
        gb_kv_arr_num(w, num_arrs[i].key, num_arrs[i].type, num_arrs[i].v,
                      (uint64_t)num_arrs[i].n);
    gb_kv_arr_str(w, "arr.str", strs, 3);
    gb_kv_arr(w, "arr.streamed", LM_GGUF_TYPE_STRING, 2); /* elements by hand */
    gb_strn(w, "a\0b", 3);
    gb_str(w, "end");
    for (int t = 0; t < N_TENSORS; t++)
        gb_tensor(w, tensors[t].name, tensors[t].n_dims, tensors[t].ne, tensors[t].type);
    gb_pad(w);
    for (int t = 0; t < N_TENSORS; t++) {
        unsigned char data[512];
        ck_assert_uint_le(tensors[t].nbytes, sizeof data);
        for (uint64_t k = 0; k < tensors[t].nbytes; k++)
            data[k] = pattern(t, k);
        gb_tensor_data(w, data, (size_t)tensors[t].nbytes);
    }
    ck_assert_int_eq(w->n_kv, N_KV);
}

static void check_scalar(const lm_gguf *g, int64_t i, const char *key, lm_gguf_type type)
{
    const lm_gguf_kv *kv = lm_gguf_kv_at(g, i);
    ck_assert_str_eq(kv->key, key);
    ck_assert_int_eq(kv->type, type);
}

static void check_keys(const lm_gguf *g)
{
    ck_assert_int_eq(lm_gguf_n_kv(g), N_KV);
    check_scalar(g, 0, "general.alignment", LM_GGUF_TYPE_UINT32);
    ck_assert_uint_eq(lm_gguf_kv_at(g, 0)->u64, ALL_ALIGN);
    check_scalar(g, 1, "s.u8", LM_GGUF_TYPE_UINT8);
    ck_assert_uint_eq(lm_gguf_kv_at(g, 1)->u64, 200);
    check_scalar(g, 2, "s.i8", LM_GGUF_TYPE_INT8);
    ck_assert_int_eq(lm_gguf_kv_at(g, 2)->i64, -100);
    check_scalar(g, 3, "s.u16", LM_GGUF_TYPE_UINT16);
    ck_assert_uint_eq(lm_gguf_kv_at(g, 3)->u64, 60000);
    check_scalar(g, 4, "s.i16", LM_GGUF_TYPE_INT16);
    ck_assert_int_eq(lm_gguf_kv_at(g, 4)->i64, -30000);
    check_scalar(g, 5, "s.u32", LM_GGUF_TYPE_UINT32);
    ck_assert_uint_eq(lm_gguf_kv_at(g, 5)->u64, 4000000000u);
    check_scalar(g, 6, "s.i32", LM_GGUF_TYPE_INT32);
    ck_assert_int_eq(lm_gguf_kv_at(g, 6)->i64, -2000000000);
    check_scalar(g, 7, "s.u64", LM_GGUF_TYPE_UINT64);
    ck_assert(lm_gguf_kv_at(g, 7)->u64 == UINT64_MAX - 5);
    check_scalar(g, 8, "s.i64", LM_GGUF_TYPE_INT64);
    ck_assert(lm_gguf_kv_at(g, 8)->i64 == INT64_MIN + 7);
    check_scalar(g, 9, "s.f32", LM_GGUF_TYPE_FLOAT32);
    ck_assert(lm_gguf_kv_at(g, 9)->f64 == (double)0.1f);
    check_scalar(g, 10, "s.f64", LM_GGUF_TYPE_FLOAT64);
    ck_assert(lm_gguf_kv_at(g, 10)->f64 == -1e300);
    check_scalar(g, 11, "s.bool", LM_GGUF_TYPE_BOOL);
    ck_assert_uint_eq(lm_gguf_kv_at(g, 11)->u64, 1);
    check_scalar(g, 12, "s.str", LM_GGUF_TYPE_STRING);
    ck_assert_str_eq(lm_gguf_kv_at(g, 12)->str, "h\xc3\xa9llo");
    ck_assert_uint_eq(lm_gguf_kv_at(g, 12)->str_len, 6);
    for (int i = 0; i < N_NUM_ARRS; i++) {
        const lm_gguf_kv *kv = lm_gguf_kv_at(g, 13 + i);
        ck_assert_str_eq(kv->key, num_arrs[i].key);
        ck_assert_int_eq(kv->type, LM_GGUF_TYPE_ARRAY);
        ck_assert_int_eq(kv->arr.type, num_arrs[i].type);
        ck_assert_int_eq(kv->arr.n, num_arrs[i].n);
        for (int64_t k = 0; k < num_arrs[i].n; k++)
            ck_assert_msg(lm_gguf_arr_f64(&kv->arr, k) == num_arrs[i].want[k], "%s[%lld]",
                          num_arrs[i].key, (long long)k);
    }
    lm_gguf_array a;
    size_t len;
    ck_assert_int_eq(lm_gguf_get_arr(g, "arr.str", &a, NULL), DL_OK);
    ck_assert_int_eq(a.type, LM_GGUF_TYPE_STRING);
    ck_assert_int_eq(a.n, 3);
    for (int k = 0; k < 3; k++) {
        const char *s = lm_gguf_arr_str(&a, k, &len);
        ck_assert_uint_eq(len, strlen(strs[k]));
        ck_assert(memcmp(s, strs[k], len) == 0);
    }
    ck_assert_int_eq(lm_gguf_get_arr(g, "arr.streamed", &a, NULL), DL_OK);
    ck_assert_int_eq(a.n, 2);
    ck_assert(memcmp(lm_gguf_arr_str(&a, 0, &len), "a\0b", 3) == 0 && len == 3);
    ck_assert(memcmp(lm_gguf_arr_str(&a, 1, &len), "end", 3) == 0 && len == 3);
    ck_assert_str_eq(lm_gguf_kv_at(g, N_KV - 1)->key, "arr.streamed");
}

static void check_tensors(const lm_gguf *g, uint64_t file_size)
{
    ck_assert_int_eq(lm_gguf_alignment(g), ALL_ALIGN);
    ck_assert_int_eq(lm_gguf_n_tensors(g), N_TENSORS);
    size_t data = lm_gguf_data_offset(g);
    ck_assert_uint_eq(data % ALL_ALIGN, 0);
    uint64_t at = 0; /* each tensor starts at the previous end, aligned up */
    for (int t = 0; t < N_TENSORS; t++) {
        const lm_gguf_tensor *x = lm_gguf_tensor_at(g, t);
        ck_assert_str_eq(x->name, tensors[t].name);
        ck_assert_uint_eq(x->type, tensors[t].type);
        ck_assert_int_eq(x->n_dims, (int)tensors[t].n_dims);
        for (int d = 0; d < 4; d++)
            ck_assert_int_eq(x->ne[d], tensors[t].ne[d]);
        ck_assert_uint_eq(x->nbytes, tensors[t].nbytes);
        ck_assert_uint_eq(x->offset, data + at);
        const unsigned char *p = x->data;
        for (uint64_t k = 0; k < tensors[t].nbytes; k++)
            ck_assert_msg(p[k] == pattern(t, k), "%s byte %llu", x->name, (unsigned long long)k);
        at = (at + tensors[t].nbytes + ALL_ALIGN - 1) / ALL_ALIGN * ALL_ALIGN;
    }
    ck_assert_uint_eq(file_size, data + at); /* the last tensor is padded too */
}

/* The file w built, opened by the reader (which borrows w's bytes). */
static lm_gguf *open_mem(const gb_writer *w)
{
    ck_assert(!w->failed);
    dl_error e;
    dl_error_clear(&e);
    lm_gguf *g = lm_gguf_open_buffer(w->p, w->n, &e);
    ck_assert_msg(g != NULL, "%s", e.message);
    return g;
}

START_TEST(test_memory_reads_back)
{
    gb_writer w;
    gb_writer_init_mem(&w);
    build_all(&w);
    lm_gguf *g = open_mem(&w);
    ck_assert_uint_eq(lm_gguf_version(g), 3);
    check_keys(g);
    check_tensors(g, w.n);
    lm_gguf_free(g);
    gb_writer_free(&w);
    gb_writer_free(NULL);
}
END_TEST

/* The same calls streamed to a file: the same bytes, and the file opens
 * through the mmap path. */
START_TEST(test_file_equals_memory)
{
    gb_writer m;
    gb_writer_init_mem(&m);
    build_all(&m);
    char path[] = "/tmp/check_gguf_build.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(f);
    gb_writer w;
    gb_writer_init_file(&w, f);
    build_all(&w);
    ck_assert(!w.failed);
    ck_assert_ptr_null(w.p);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_uint_eq(w.n, m.n);
    f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char *disk = malloc((size_t)m.n + 1);
    ck_assert_uint_eq(fread(disk, 1, (size_t)m.n + 1, f), m.n);
    fclose(f);
    ck_assert(memcmp(disk, m.p, (size_t)m.n) == 0);
    dl_error e;
    dl_error_clear(&e);
    lm_gguf *g = lm_gguf_open(path, &e);
    ck_assert_msg(g != NULL, "%s", e.message);
    check_keys(g);
    check_tensors(g, lm_gguf_file_size(g));
    lm_gguf_free(g);
    unlink(path);
    free(disk);
    gb_writer_free(&w);
    gb_writer_free(&m);
}
END_TEST

/* Counts fixed after the keys: what callers that count as they go do. */
START_TEST(test_header_counts)
{
    gb_writer w;
    gb_writer_init_mem(&w);
    gb_header(&w, 3, 0, 0);
    gb_kv_str(&w, "a", "x");
    gb_kv_num(&w, "b", LM_GGUF_TYPE_INT64, &(int64_t){-1});
    gb_header_counts(&w, 0, (uint64_t)w.n_kv);
    lm_gguf *g = open_mem(&w);
    ck_assert_int_eq(lm_gguf_n_kv(g), 2);
    ck_assert_int_eq(lm_gguf_n_tensors(g), 0);
    ck_assert_str_eq(lm_gguf_kv_at(g, 1)->key, "b");
    lm_gguf_free(g);
    gb_writer_free(&w);
}
END_TEST

/* ---- against an independent writer ---------------------------------------- */

/* spm(n_scores) of tests/gen/gen_tok_seeds.py, written with this writer. */
static void build_seed_spm(gb_writer *w, uint64_t n_scores)
{
    static const char *const tail[] = {"\xe2\x96\x81", "\xe2\x96\x81t", "he", "\xe2\x96\x81the",
                                       "e", "t", "h"};
    static const float tail_scores[] = {-1.0f, -2.0f, -2.0f, -0.5f, -3.0f, -3.0f, -3.0f};
    const char *toks[266];
    char bytes[256][8];
    float scores[266];
    int32_t types[266];
    toks[0] = "<unk>";
    toks[1] = "<s>";
    toks[2] = "</s>";
    types[0] = 2;
    types[1] = types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = 6;
    }
    for (int i = 0; i < 259; i++)
        scores[i] = 0.0f;
    for (int i = 0; i < 7; i++) {
        toks[259 + i] = tail[i];
        scores[259 + i] = tail_scores[i];
        types[259 + i] = 1;
    }
    gb_header(w, 3, 0, 6);
    gb_kv_str(w, "tokenizer.ggml.model", "llama");
    gb_kv_arr_str(w, "tokenizer.ggml.tokens", toks, 266);
    gb_kv_arr_num(w, "tokenizer.ggml.scores", LM_GGUF_TYPE_FLOAT32, scores, n_scores);
    gb_kv_arr_num(w, "tokenizer.ggml.token_type", LM_GGUF_TYPE_INT32, types, 266);
    gb_kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gb_kv_bool(w, "tokenizer.ggml.add_space_prefix", 1);
}

static void expect_same_as_seed(const gb_writer *w, const char *rel)
{
    FILE *f = fopen(dl_test_src(rel), "rb");
    ck_assert_msg(f != NULL, "%s", rel);
    unsigned char *disk = malloc((size_t)w->n + 1);
    size_t n = fread(disk, 1, (size_t)w->n + 1, f);
    fclose(f);
    ck_assert_msg(n == w->n, "%s: %zu bytes on disk, %llu written", rel, n,
                  (unsigned long long)w->n);
    ck_assert_msg(memcmp(disk, w->p, n) == 0, "%s differs", rel);
    free(disk);
}

START_TEST(test_python_seeds)
{
    gb_writer w;
    gb_writer_init_mem(&w);
    build_seed_spm(&w, 266);
    ck_assert(!w.failed);
    expect_same_as_seed(&w, "tests/data/lm_tok/gguf-spm.gguf");
    gb_writer_free(&w);
    gb_writer_init_mem(&w);
    build_seed_spm(&w, 265);
    expect_same_as_seed(&w, "tests/data/lm_tok/gguf-bad-scores.gguf");
    gb_writer_free(&w);
}
END_TEST

/* ---- failures --------------------------------------------------------------- */

START_TEST(test_failures_are_sticky)
{
    /* A stream that refuses writes: the first failure stops the count. */
    FILE *f = fopen(dl_test_src("tests/data/lm_tok/gguf-spm.gguf"), "rb");
    ck_assert_ptr_nonnull(f);
    gb_writer w;
    gb_writer_init_file(&w, f);
    gb_header(&w, 3, 0, 0);
    ck_assert(w.failed);
    ck_assert_uint_eq(w.n, 0);
    gb_kv_u32(&w, "k", 1);
    ck_assert_uint_eq(w.n, 0);
    fclose(f);

    /* Misuse: counts rewritten in file mode, or before a header exists. */
    gb_writer_init_file(&w, stdout);
    gb_header_counts(&w, 1, 1);
    ck_assert(w.failed);
    gb_writer_init_mem(&w);
    gb_u32(&w, 7);
    gb_header_counts(&w, 1, 1);
    ck_assert(w.failed);
    gb_u32(&w, 8); /* sticky in memory too */
    ck_assert_uint_eq(w.n, 4);
    gb_writer_free(&w);

    /* Scalar and array element types without a fixed width. */
    static const uint32_t bad_elem[] = {LM_GGUF_TYPE_STRING, LM_GGUF_TYPE_ARRAY, 13};
    for (int i = 0; i < 3; i++) {
        gb_writer_init_mem(&w);
        gb_kv_arr_num(&w, "a", bad_elem[i], "xxxx", 1);
        ck_assert(w.failed);
        ck_assert_uint_eq(w.n, 0);
        gb_writer_free(&w);
        gb_writer_init_mem(&w);
        gb_kv_num(&w, "s", bad_elem[i], "xxxx");
        ck_assert(w.failed);
        ck_assert_uint_eq(w.n, 0);
        gb_writer_free(&w);
    }

    /* Tensors whose size cannot be computed. */
    const int64_t ne31[1] = {31}, ne32[2] = {32, 0}, big[2] = {INT64_MAX, INT64_MAX};
    ck_assert_uint_eq(gb_tensor_nbytes(LM_QTYPE_Q8_0, 1, ne31), 0);
    ck_assert_uint_eq(gb_tensor_nbytes(99, 1, ne31), 0);
    ck_assert_uint_eq(gb_tensor_nbytes(LM_QTYPE_F32, 0, ne31), 0);
    ck_assert_uint_eq(gb_tensor_nbytes(LM_QTYPE_F32, 5, big), 0);
    ck_assert_uint_eq(gb_tensor_nbytes(LM_QTYPE_F32, 2, ne32), 0);
    ck_assert_uint_eq(gb_tensor_nbytes(LM_QTYPE_F32, 2, big), 0);
    ck_assert_uint_eq(gb_tensor_nbytes(LM_QTYPE_Q8_0, 2, (const int64_t[]){64, 3}), 3 * 2 * 34);
    gb_writer_init_mem(&w);
    gb_tensor(&w, "t", 1, ne31, LM_QTYPE_Q8_0);
    ck_assert(w.failed);
    ck_assert_uint_eq(w.n, 0);
    gb_writer_free(&w);

    /* Raw infos are written as given, for broken files. */
    gb_writer_init_mem(&w);
    const int64_t five[5] = {1, 2, 3, 4, 5};
    gb_tensor_info(&w, "t", 5, five, 99, 3);
    ck_assert(!w.failed);
    ck_assert_uint_eq(w.n, 8 + 1 + 4 + 5 * 8 + 4 + 8);
    gb_writer_free(&w);
}
END_TEST

static Suite *gguf_build_suite(void)
{
    Suite *s = suite_create("gguf_build");
    TCase *tc = tcase_create("writer");
    tcase_add_test(tc, test_memory_reads_back);
    tcase_add_test(tc, test_file_equals_memory);
    tcase_add_test(tc, test_header_counts);
    tcase_add_test(tc, test_python_seeds);
    tcase_add_test(tc, test_failures_are_sticky);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(gguf_build_suite());
}
