/* check_lm_gguf.c: the GGUF reader against files built here byte by byte
 * (valid and broken ones), and against the real files in ../shared. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "gguf_build.h"
#include "lm_gguf.h"

/* ---- the minimal file, built with the tests' writer (gguf_build.h) ---- */

/* Byte positions of interesting fields in the minimal file, for mutation. */
typedef struct layout {
    size_t n_tensors, n_kv;        /* header counts */
    size_t align_val;              /* general.alignment's value */
    size_t bos_type;               /* tokenizer.ggml.bos_token_id's value type */
    size_t tokens_len;             /* tokenizer.ggml.tokens array length */
    size_t tok1_len;               /* length of the second token string */
    size_t arr_type;               /* tokens array element type */
    size_t flag_val;               /* the bool value */
    size_t t0_ndims, t0_ne0, t0_ne1, t0_type, t0_off; /* tensor "a" */
    size_t t1_name, t1_ne0, t1_type, t1_off;           /* tensor "b" */
    size_t data;                   /* data section start */
} layout;

/* A valid v3 file: 9 keys, tensor "a" F32 [8, 2] at data+0 and tensor "b"
 * Q8_0 [32] at data+64 ending exactly at the end of the file.  Raw pieces
 * where a field's position is recorded; the caller frees with
 * gb_writer_free. */
static gb_writer build_minimal(layout *L)
{
    gb_writer b;
    layout l;
    gb_writer_init_mem(&b);
    gb_header(&b, 3, 2, 9);
    l.n_tensors = 8; /* magic, version, then the counts */
    l.n_kv = 16;
    gb_kv_str(&b, "general.architecture", "llama");
    gb_key(&b, "general.alignment", LM_GGUF_TYPE_UINT32); l.align_val = b.n; gb_u32(&b, 32);
    gb_kv_num(&b, "llama.block_count", LM_GGUF_TYPE_UINT64, &(uint64_t){6});
    gb_kv_f32(&b, "llama.rope.freq_base", 10000.0f);
    gb_kv_num(&b, "neg", LM_GGUF_TYPE_INT32, &(int32_t){-7});
    gb_str(&b, "tokenizer.ggml.bos_token_id");
    l.bos_type = b.n; gb_u32(&b, LM_GGUF_TYPE_UINT32); gb_u32(&b, 1);
    gb_key(&b, "tokenizer.ggml.tokens", LM_GGUF_TYPE_ARRAY);
    l.arr_type = b.n; gb_u32(&b, LM_GGUF_TYPE_STRING);
    l.tokens_len = b.n; gb_u64(&b, 3);
    gb_str(&b, "<s>"); l.tok1_len = b.n; gb_str(&b, "a\xe2\x96\x81"); gb_str(&b, "");
    static const float scores[3] = {0.0f, -1.5f, -2.25f};
    gb_kv_arr_num(&b, "tokenizer.ggml.scores", LM_GGUF_TYPE_FLOAT32, scores, 3);
    gb_key(&b, "tokenizer.ggml.add_space_prefix", LM_GGUF_TYPE_BOOL);
    l.flag_val = b.n; gb_u8(&b, 1);
    /* Tensor infos: name (u64 length + bytes), n_dims, ne[], type, offset. */
    static const int64_t ne_a[2] = {8, 2}, ne_b[1] = {32};
    l.t0_ndims = b.n + 8 + 1;
    l.t0_ne0 = l.t0_ndims + 4;
    l.t0_ne1 = l.t0_ne0 + 8;
    l.t0_type = l.t0_ne1 + 8;
    l.t0_off = l.t0_type + 4;
    ck_assert_uint_eq(gb_tensor(&b, "a", 2, ne_a, LM_QTYPE_F32), 0);
    l.t1_name = b.n;
    l.t1_ne0 = l.t1_name + 8 + 1 + 4;
    l.t1_type = l.t1_ne0 + 8;
    l.t1_off = l.t1_type + 4;
    ck_assert_uint_eq(gb_tensor(&b, "b", 1, ne_b, LM_QTYPE_Q8_0), 64);
    gb_pad(&b);
    l.data = b.n;
    float a[16];
    for (int i = 0; i < 16; i++)
        a[i] = (float)i * 0.5f;
    gb_tensor_data(&b, a, sizeof a);
    /* Q8_0 block: d = 0.25 (fp16 0x3400), q[j] = j - 16; no padding after
     * it, so that the file ends with the last tensor. */
    gb_u8(&b, 0x00); gb_u8(&b, 0x34);
    for (int j = 0; j < 32; j++)
        gb_u8(&b, (uint8_t)(int8_t)(j - 16));
    ck_assert(!b.failed);
    if (L)
        *L = l;
    return b;
}

/* Opens an exact-size heap copy (so ASan sees any over-read). */
static lm_gguf *open_copy(const unsigned char *p, size_t n, dl_error *e, unsigned char **keep)
{
    *keep = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(*keep);
    if (n)
        memcpy(*keep, p, n);
    dl_error_clear(e);
    return lm_gguf_open_buffer(*keep, n, e);
}

/* Expects the buffer to be refused with code; returns the error offset. */
static int64_t expect_fail(const unsigned char *p, size_t n, dl_status code, const char *what)
{
    dl_error e;
    unsigned char *copy;
    lm_gguf *g = open_copy(p, n, &e, &copy);
    if (g)
        lm_gguf_free(g);
    free(copy);
    ck_assert_msg(!g, "%s: accepted", what);
    ck_assert_msg(e.code == code, "%s: code %d (%s), expected %d", what, e.code, e.message, code);
    ck_assert_msg(e.message[0] != '\0', "%s: empty message", what);
    return e.offset;
}

static void put_u32_at(unsigned char *p, size_t at, uint32_t v) { memcpy(p + at, &v, 4); }
static void put_u64_at(unsigned char *p, size_t at, uint64_t v) { memcpy(p + at, &v, 8); }

/* ---- valid file --------------------------------------------------------- */

START_TEST(test_minimal_reads_back)
{
    layout L;
    gb_writer b = build_minimal(&L);
    dl_error e;
    unsigned char *copy;
    lm_gguf *g = open_copy(b.p, b.n, &e, &copy);
    ck_assert_msg(g != NULL, "%s", e.message);
    ck_assert_uint_eq(lm_gguf_version(g), 3);
    ck_assert_str_eq(lm_gguf_arch(g), "llama");
    ck_assert_int_eq(lm_gguf_n_kv(g), 9);
    ck_assert_int_eq(lm_gguf_n_tensors(g), 2);
    ck_assert_uint_eq(lm_gguf_data_offset(g), L.data);
    ck_assert_uint_eq(lm_gguf_alignment(g), 32);
    ck_assert_str_eq(lm_gguf_kv_at(g, 4)->key, "neg");

    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    int flag = 0;
    ck_assert_int_eq(lm_gguf_get_u32(g, "llama.block_count", &u32, NULL), DL_OK); /* from U64 */
    ck_assert_uint_eq(u32, 6);
    ck_assert_int_eq(lm_gguf_get_i32(g, "llama.block_count", &i32, NULL), DL_OK);
    ck_assert_int_eq(i32, 6);
    ck_assert_int_eq(lm_gguf_get_i64(g, "neg", &i64, NULL), DL_OK);
    ck_assert_int_eq(i64, -7);
    ck_assert_int_eq(lm_gguf_get_f32(g, "llama.rope.freq_base", &f, NULL), DL_OK);
    ck_assert(f == 10000.0f);
    ck_assert_int_eq(lm_gguf_get_f32(g, "neg", &f, NULL), DL_OK); /* integer to float */
    ck_assert(f == -7.0f);
    ck_assert_int_eq(lm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &flag, NULL), DL_OK);
    ck_assert_int_eq(flag, 1);
    const char *s = NULL;
    size_t len = 0;
    ck_assert_int_eq(lm_gguf_get_str(g, "general.architecture", &s, &len, NULL), DL_OK);
    ck_assert_str_eq(s, "llama");
    ck_assert_uint_eq(len, 5);

    /* Refusals: negative into unsigned, wrong types, absent keys. */
    dl_error_clear(&e);
    u32 = 99;
    ck_assert_int_eq(lm_gguf_get_u32(g, "neg", &u32, &e), DL_ERR_INPUT);
    ck_assert_uint_eq(u32, 99);
    ck_assert_str_eq(e.field, "neg");
    ck_assert_int_eq(lm_gguf_get_u64(g, "neg", &u64, NULL), DL_ERR_INPUT);
    ck_assert_int_eq(lm_gguf_get_u32(g, "llama.rope.freq_base", &u32, NULL), DL_ERR_INPUT);
    ck_assert_int_eq(lm_gguf_get_bool(g, "neg", &flag, NULL), DL_ERR_INPUT);
    ck_assert_int_eq(lm_gguf_get_str(g, "neg", &s, NULL, NULL), DL_ERR_INPUT);
    ck_assert_int_eq(lm_gguf_get_f32(g, "general.architecture", &f, NULL), DL_ERR_INPUT);
    dl_error_clear(&e);
    ck_assert_int_eq(lm_gguf_get_u32(g, "no.such.key", &u32, &e), DL_ERR_NOT_FOUND);
    ck_assert_str_eq(e.field, "no.such.key");
    ck_assert_ptr_null(lm_gguf_find_kv(g, "no.such.key"));

    /* Arrays. */
    lm_gguf_array a;
    ck_assert_int_eq(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, NULL), DL_OK);
    ck_assert_int_eq(a.type, LM_GGUF_TYPE_STRING);
    ck_assert_int_eq(a.n, 3);
    const char *t = lm_gguf_arr_str(&a, 1, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(t, "a\xe2\x96\x81", 4) == 0);
    lm_gguf_arr_str(&a, 2, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(lm_gguf_get_arr(g, "tokenizer.ggml.scores", &a, NULL), DL_OK);
    float sc[3];
    ck_assert_int_eq(lm_gguf_arr_copy_f32(&a, sc, NULL), DL_OK);
    ck_assert(sc[0] == 0.0f && sc[1] == -1.5f && sc[2] == -2.25f);
    ck_assert(lm_gguf_arr_f64(&a, 2) == -2.25);
    int32_t iv[3];
    ck_assert_int_eq(lm_gguf_arr_copy_i32(&a, iv, NULL), DL_ERR_INPUT);
    ck_assert_int_eq(lm_gguf_get_arr(g, "neg", &a, NULL), DL_ERR_INPUT);

    /* Tensors. */
    const lm_gguf_tensor *ta = lm_gguf_find_tensor(g, "a");
    const lm_gguf_tensor *tb = lm_gguf_find_tensor(g, "b");
    ck_assert_ptr_nonnull(ta);
    ck_assert_ptr_nonnull(tb);
    ck_assert_ptr_null(lm_gguf_find_tensor(g, "c"));
    ck_assert_int_eq(ta->n_dims, 2);
    ck_assert_int_eq(ta->ne[0], 8);
    ck_assert_int_eq(ta->ne[1], 2);
    ck_assert_int_eq(ta->ne[2], 1);
    ck_assert_int_eq(ta->n_elements, 16);
    ck_assert_int_eq(ta->n_rows, 2);
    ck_assert_uint_eq(ta->nbytes, 64);
    ck_assert_uint_eq(ta->offset, L.data);
    ck_assert_ptr_eq(ta->data, copy + L.data);
    ck_assert_uint_eq(tb->type, LM_QTYPE_Q8_0);
    ck_assert_uint_eq(tb->nbytes, 34);
    ck_assert_uint_eq(tb->offset + tb->nbytes, b.n);
    float row[32];
    lm_quant_dequant_row(ta->type, (const char *)ta->data + ta->row_bytes, row, 8);
    ck_assert(row[0] == 4.0f && row[7] == 7.5f);
    lm_quant_dequant_row(tb->type, tb->data, row, 32);
    for (int j = 0; j < 32; j++)
        ck_assert(row[j] == 0.25f * (float)(j - 16));
    lm_gguf_free(g);
    lm_gguf_free(NULL);
    free(copy);
    gb_writer_free(&b);
}
END_TEST

/* ---- truncation everywhere ---------------------------------------------- */

/* The last tensor ends at the last byte, so every proper prefix is bad. */
START_TEST(test_truncated_everywhere)
{
    layout L;
    gb_writer b = build_minimal(&L);
    for (size_t n = 0; n < b.n; n++) {
        char what[64];
        snprintf(what, sizeof what, "prefix of %zu bytes", n);
        int64_t off = expect_fail(b.p, n, DL_ERR_INPUT, what);
        ck_assert_msg(off >= 0 && (size_t)off <= n, "%s: offset %lld", what, (long long)off);
    }
    gb_writer_free(&b);
}
END_TEST

/* ---- targeted corruptions ----------------------------------------------- */

START_TEST(test_header_corruptions)
{
    layout L;
    gb_writer b = build_minimal(&L);
    unsigned char *m = malloc(b.n);
#define RESET() memcpy(m, b.p, b.n)
    RESET(); m[0] = 'X';
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "magic"), 0);
    RESET(); put_u32_at(m, 4, 1);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_UNSUPPORTED, "v1"), 4);
    RESET(); put_u32_at(m, 4, 0);
    expect_fail(m, b.n, DL_ERR_INPUT, "v0");
    RESET(); put_u32_at(m, 4, 4);
    expect_fail(m, b.n, DL_ERR_UNSUPPORTED, "v4");
    RESET(); put_u32_at(m, 4, 0x03000000u);
    expect_fail(m, b.n, DL_ERR_UNSUPPORTED, "big-endian");
    RESET(); put_u32_at(m, 4, 2); /* v2 has the same layout: accepted */
    {
        dl_error e;
        unsigned char *c;
        lm_gguf *g = open_copy(m, b.n, &e, &c);
        ck_assert_msg(g != NULL, "v2: %s", e.message);
        ck_assert_uint_eq(lm_gguf_version(g), 2);
        lm_gguf_free(g);
        free(c);
    }
    static const uint64_t absurd[] = {UINT64_MAX, (uint64_t)1 << 63, (uint64_t)1 << 32, 100000};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        RESET(); put_u64_at(m, L.n_kv, absurd[i]);
        ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "absurd n_kv"), 8);
        RESET(); put_u64_at(m, L.n_tensors, absurd[i]);
        ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "absurd n_tensors"), 8);
    }
    /* Fewer keys than present: the parser reads key bytes as tensor infos. */
    RESET(); put_u64_at(m, L.n_kv, 8);
    expect_fail(m, b.n, DL_ERR_INPUT, "n_kv one short");
    free(m);
    gb_writer_free(&b);
#undef RESET
}
END_TEST

START_TEST(test_metadata_corruptions)
{
    layout L;
    gb_writer b = build_minimal(&L);
    unsigned char *m = malloc(b.n);
#define RESET() memcpy(m, b.p, b.n)
    RESET(); put_u32_at(m, L.bos_type, 13);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "unknown value type"), (int64_t)L.bos_type);
    RESET(); put_u32_at(m, L.bos_type, 0xFFFFFFFFu);
    expect_fail(m, b.n, DL_ERR_INPUT, "value type 2^32-1");
    RESET(); put_u32_at(m, L.arr_type, 9);
    expect_fail(m, b.n, DL_ERR_UNSUPPORTED, "nested array");
    RESET(); put_u32_at(m, L.arr_type, 77);
    expect_fail(m, b.n, DL_ERR_INPUT, "unknown element type");
    RESET(); put_u64_at(m, L.tokens_len, (uint64_t)1 << 61);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "absurd array length"), (int64_t)L.tokens_len);
    RESET(); put_u64_at(m, L.tok1_len, UINT64_MAX);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "string past end"), (int64_t)L.tok1_len);
    RESET(); put_u64_at(m, L.tok1_len, b.n);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "string just past end"), (int64_t)L.tok1_len);
    RESET(); put_u64_at(m, 24, (uint64_t)1 << 40); /* first key's length */
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "key length"), 24);
    RESET(); put_u64_at(m, 24, 0);
    expect_fail(m, b.n, DL_ERR_INPUT, "empty key");
    RESET(); m[24 + 8 + 3] = '\0';
    expect_fail(m, b.n, DL_ERR_INPUT, "NUL in key");
    RESET(); m[L.flag_val] = 2;
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "bool 2"), (int64_t)L.flag_val);
    RESET(); put_u32_at(m, L.align_val, 33);
    dl_error e;
    unsigned char *c;
    lm_gguf *g = open_copy(m, b.n, &e, &c);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(e.code, DL_ERR_INPUT);
    ck_assert_str_eq(e.field, "general.alignment");
    free(c);
    RESET(); put_u32_at(m, L.align_val, 0);
    expect_fail(m, b.n, DL_ERR_INPUT, "alignment 0");
    RESET(); put_u32_at(m, L.align_val, 64); /* tensor b at 64 still fine, but the data
                                                 section moves to a multiple of 64 */
    if (L.data % 64)
        expect_fail(m, b.n, DL_ERR_INPUT, "alignment 64 moves the data");
    free(m);
    gb_writer_free(&b);
#undef RESET
}
END_TEST

START_TEST(test_duplicates)
{
    /* Duplicate metadata key. */
    gb_writer b;
    gb_writer_init_mem(&b);
    gb_header(&b, 3, 0, 2);
    gb_kv_u32(&b, "k", 1);
    size_t second = b.n;
    gb_kv_u32(&b, "k", 2);
    dl_error e;
    unsigned char *c;
    lm_gguf *g = open_copy(b.p, b.n, &e, &c);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(e.code, DL_ERR_INPUT);
    ck_assert_str_eq(e.field, "k");
    ck_assert_int_eq(e.offset, (int64_t)(second + 9 + 4)); /* the duplicate's value */
    ck_assert_ptr_nonnull(strstr(e.message, "duplicate"));
    free(c);
    gb_writer_free(&b);

    /* Duplicate tensor name, and then overlapping tensors. */
    layout L;
    b = build_minimal(&L);
    b.p[L.t1_name + 8] = 'a';
    g = open_copy(b.p, b.n, &e, &c);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(e.code, DL_ERR_INPUT);
    ck_assert_str_eq(e.field, "a");
    ck_assert_ptr_nonnull(strstr(e.message, "duplicate"));
    free(c);
    b.p[L.t1_name + 8] = 'b';
    put_u64_at(b.p, L.t1_off, 32); /* inside tensor a's 64 bytes */
    ck_assert_int_eq(expect_fail(b.p, b.n, DL_ERR_INPUT, "overlap"), (int64_t)(L.data + 32));
    gb_writer_free(&b);
}
END_TEST

START_TEST(test_tensor_corruptions)
{
    layout L;
    gb_writer b = build_minimal(&L);
    unsigned char *m = malloc(b.n);
#define RESET() memcpy(m, b.p, b.n)
    RESET(); put_u32_at(m, L.t0_ndims, 0);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "n_dims 0"), (int64_t)L.t0_ndims);
    RESET(); put_u32_at(m, L.t0_ndims, 5);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "n_dims 5"), (int64_t)L.t0_ndims);
    RESET(); put_u32_at(m, L.t0_ndims, 0x80000000u);
    expect_fail(m, b.n, DL_ERR_INPUT, "n_dims huge");
    RESET(); put_u64_at(m, L.t0_ne0, 0);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "ne 0"), (int64_t)L.t0_ne0);
    RESET(); put_u64_at(m, L.t0_ne0, UINT64_MAX);
    expect_fail(m, b.n, DL_ERR_INPUT, "ne > INT64_MAX");
    RESET(); put_u64_at(m, L.t0_ne0, (uint64_t)1 << 40); put_u64_at(m, L.t0_ne1, (uint64_t)1 << 40);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "ne product overflow"), (int64_t)L.t0_ne1);
    RESET(); put_u64_at(m, L.t0_ne0, (uint64_t)1 << 61); put_u64_at(m, L.t0_ne1, 1);
    expect_fail(m, b.n, DL_ERR_INPUT, "byte size overflow"); /* 2^61 floats = 2^63 bytes */
    RESET(); put_u64_at(m, L.t0_ne0, (uint64_t)1 << 30);
    expect_fail(m, b.n, DL_ERR_INPUT, "tensor larger than file");
    RESET(); put_u32_at(m, L.t0_type, 99);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_UNSUPPORTED, "type 99"), (int64_t)L.t0_type);
    RESET(); put_u32_at(m, L.t0_type, 4); /* retired Q4_2 */
    expect_fail(m, b.n, DL_ERR_UNSUPPORTED, "type 4");
    RESET(); put_u64_at(m, L.t1_ne0, 31);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "Q8_0 row of 31"), (int64_t)L.t1_type);
    RESET(); put_u64_at(m, L.t1_off, 4);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "misaligned"), (int64_t)L.t1_off);
    RESET(); put_u64_at(m, L.t1_off, 96);
    ck_assert_int_eq(expect_fail(m, b.n, DL_ERR_INPUT, "offset past end"), (int64_t)L.t1_off);
    RESET(); put_u64_at(m, L.t1_off, UINT64_MAX - 31);
    expect_fail(m, b.n, DL_ERR_INPUT, "offset wraps");
    RESET(); put_u64_at(m, L.t1_name, 0);
    expect_fail(m, b.n, DL_ERR_INPUT, "empty tensor name");
    /* A known type without kernels is described, not refused: the reader
     * checks sizes, the model checks support.  The type is looked up (the
     * first without kernels whose 32-value row fits in Q8_0's 34 bytes, Q4_1
     * when this test was written), as kernels get added over time. */
    uint32_t no_kernels = 0;
    for (uint32_t t = 1; t < 64 && !no_kernels; t++) {
        const lm_qtype_info *qi = lm_quant_info(t);
        if (qi && !qi->supported && 32 % qi->block == 0 && lm_quant_row_size(t, 32) <= 34)
            no_kernels = t;
    }
    ck_assert_uint_ne(no_kernels, 0);
    RESET(); put_u32_at(m, L.t1_type, no_kernels);
    {
        dl_error e;
        unsigned char *c;
        lm_gguf *g = open_copy(m, b.n, &e, &c);
        ck_assert_msg(g != NULL, "%s", e.message);
        ck_assert(!lm_quant_supported(lm_gguf_find_tensor(g, "b")->type));
        lm_gguf_free(g);
        free(c);
    }
    free(m);
    gb_writer_free(&b);
#undef RESET
}
END_TEST

/* Random byte mutations: every outcome is a handle or a coded error, never
 * a crash or an over-read (ASan builds check the latter). */
START_TEST(test_random_mutations)
{
    layout L;
    gb_writer b = build_minimal(&L);
    uint64_t s = 0x9E3779B97F4A7C15u;
    int opened = 0, refused = 0;
    for (int it = 0; it < 20000; it++) {
        unsigned char *m = malloc(b.n);
        memcpy(m, b.p, b.n);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            size_t at = (size_t)(s % L.data); /* the header region */
            m[at] = (it & 1) ? (unsigned char)(s >> 32) : (unsigned char)(m[at] ^ (1u << (s >> 40) % 8));
        }
        dl_error e;
        dl_error_clear(&e);
        lm_gguf *g = lm_gguf_open_buffer(m, b.n, &e);
        if (g) {
            opened++;
            for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
                const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
                ck_assert(t->offset + t->nbytes <= b.n);
                ck_assert_ptr_eq(lm_gguf_find_tensor(g, t->name), t);
            }
            lm_gguf_free(g);
        } else {
            refused++;
            ck_assert(e.code == DL_ERR_INPUT || e.code == DL_ERR_UNSUPPORTED);
        }
        free(m);
    }
    ck_assert_int_gt(refused, 1000);
    ck_assert_int_gt(opened, 10);
    gb_writer_free(&b);
}
END_TEST

START_TEST(test_open_path_errors)
{
    dl_error e;
    dl_error_clear(&e);
    ck_assert_ptr_null(lm_gguf_open("/nonexistent/x.gguf", &e));
    ck_assert_int_eq(e.code, DL_ERR_NOT_FOUND);
    ck_assert_str_eq(e.file, "/nonexistent/x.gguf");
    dl_error_clear(&e);
    ck_assert_ptr_null(lm_gguf_open("/", &e));
    ck_assert_int_eq(e.code, DL_ERR_IO);
    dl_error_clear(&e);
    ck_assert_ptr_null(lm_gguf_open("/dev/null", &e));
    ck_assert(e.code == DL_ERR_IO || e.code == DL_ERR_INPUT);
    dl_error_clear(&e);
    ck_assert_ptr_null(lm_gguf_open_buffer(NULL, 0, &e));
    ck_assert_int_eq(e.code, DL_ERR_INPUT);
    /* Seed corpus files: the valid one is the file build_minimal() writes,
     * and opens through the mmap path. */
    {
        gb_writer b = build_minimal(NULL);
        FILE *f = fopen(dl_test_src("tests/data/gguf/valid-minimal.gguf"), "rb");
        ck_assert_ptr_nonnull(f);
        unsigned char disk[1024];
        size_t n = fread(disk, 1, sizeof disk, f);
        fclose(f);
        ck_assert_uint_eq(n, b.n);
        ck_assert(memcmp(disk, b.p, n) == 0);
        gb_writer_free(&b);
    }
    dl_error_clear(&e);
    lm_gguf *g = lm_gguf_open(dl_test_src("tests/data/gguf/valid-minimal.gguf"), &e);
    ck_assert_msg(g != NULL, "%s", e.message);
    ck_assert_int_eq(lm_gguf_n_tensors(g), 2);
    lm_gguf_free(g);
    dl_error_clear(&e);
    ck_assert_ptr_null(lm_gguf_open(dl_test_src("tests/data/gguf/v1.gguf"), &e));
    ck_assert_int_eq(e.code, DL_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.file, "v1.gguf"));
}
END_TEST

/* lm_gguf_release: the mapped bytes read the same after their pages were
 * dropped; on a caller's buffer it does nothing (madvise there would zero
 * anonymous memory); ranges outside the file are ignored. */
START_TEST(test_release_keeps_bytes)
{
    dl_error e;
    dl_error_clear(&e);
    lm_gguf *g = lm_gguf_open(dl_test_src("data/delift-mini-q8_0.gguf"), &e);
    ck_assert_msg(g != NULL, "%s", e.message);
    size_t size = lm_gguf_file_size(g), off = lm_gguf_data_offset(g);
    unsigned char *copy = malloc(size), *copy2 = malloc(size);
    ck_assert(copy && copy2 && size > (1u << 20));
    memcpy(copy, lm_gguf_base(g), size);
    memcpy(copy2, copy, size);
    const unsigned char *base = lm_gguf_base(g);
    lm_gguf_release(g, base + off, size - off);
    lm_gguf_release(g, base + 1, size);       /* past the end: ignored */
    lm_gguf_release(g, copy, size);           /* not in the file: ignored */
    ck_assert(memcmp(lm_gguf_base(g), copy, size) == 0);
    lm_gguf_free(g);
    lm_gguf *b = lm_gguf_open_buffer(copy, size, &e);
    ck_assert_msg(b != NULL, "%s", e.message);
    lm_gguf_release(b, copy + off, size - off);
    ck_assert(memcmp(copy, copy2, size) == 0);
    lm_gguf_free(b);
    free(copy);
    free(copy2);
}
END_TEST

/* ---- real files --------------------------------------------------------- */

static lm_gguf *open_shared(const char *rel)
{
    const char *p = dl_test_shared(rel);
    if (!p) {
        printf("note: ../shared/%s absent, its checks are skipped\n", rel);
        return NULL;
    }
    dl_error e;
    dl_error_clear(&e);
    lm_gguf *g = lm_gguf_open(p, &e);
    ck_assert_msg(g != NULL, "%s: %s", rel, e.message);
    return g;
}

static uint32_t u32_of(const lm_gguf *g, const char *key)
{
    uint32_t v = 0;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(lm_gguf_get_u32(g, key, &v, &e) == DL_OK, "%s: %s", key, e.message);
    return v;
}

static int64_t sum_params(const lm_gguf *g)
{
    int64_t n = 0;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++)
        n += lm_gguf_tensor_at(g, i)->n_elements;
    return n;
}

/* Llama parameter count from the hyperparameters alone. */
static int64_t llama_params(int64_t d, int64_t layers, int64_t heads, int64_t kv, int64_t ffn,
                            int64_t vocab, int tied)
{
    int64_t hd = d / heads;
    int64_t layer = d * d * 2 + 2 * d * (kv * hd) + 3 * d * ffn + 2 * d;
    return vocab * d * (tied ? 1 : 2) + layers * layer + d;
}

static const char *const mini_files[] = {"models/delift-mini-f32.gguf", "models/delift-mini-f16.gguf",
                                         "models/delift-mini-q8_0.gguf"};
static const uint32_t mini_types[] = {LM_QTYPE_F32, LM_QTYPE_F16, LM_QTYPE_Q8_0};

START_TEST(test_delift_mini_facts)
{
    lm_gguf *g = open_shared(mini_files[_i]);
    if (!g)
        return;
    ck_assert_str_eq(lm_gguf_arch(g), "llama");
    ck_assert_uint_eq(u32_of(g, "llama.embedding_length"), 256);
    ck_assert_uint_eq(u32_of(g, "llama.block_count"), 6);
    ck_assert_uint_eq(u32_of(g, "llama.attention.head_count"), 8);
    ck_assert_uint_eq(u32_of(g, "llama.attention.head_count_kv"), 4);
    ck_assert_uint_eq(u32_of(g, "llama.feed_forward_length"), 704);
    ck_assert_uint_eq(u32_of(g, "llama.context_length"), 512);
    ck_assert_uint_eq(u32_of(g, "tokenizer.ggml.bos_token_id"), 1);
    ck_assert_uint_eq(u32_of(g, "tokenizer.ggml.eos_token_id"), 2);
    ck_assert_uint_eq(u32_of(g, "tokenizer.ggml.unknown_token_id"), 0);
    float eps = 0, theta = 0;
    ck_assert_int_eq(lm_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps, NULL), DL_OK);
    ck_assert_float_eq_tol(eps, 1e-5f, 1e-12f);
    ck_assert_int_eq(lm_gguf_get_f32(g, "llama.rope.freq_base", &theta, NULL), DL_OK);
    ck_assert_float_eq(theta, 10000.0f);
    int asp = 0;
    ck_assert_int_eq(lm_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp, NULL), DL_OK);
    ck_assert_int_eq(asp, 1);
    lm_gguf_array a;
    ck_assert_int_eq(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, NULL), DL_OK);
    ck_assert_int_eq(a.n, 4096);
    size_t len;
    const char *t1 = lm_gguf_arr_str(&a, 1, &len);
    ck_assert(len == 3 && memcmp(t1, "<s>", 3) == 0);
    const char *model = NULL;
    ck_assert_int_eq(lm_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, NULL), DL_OK);
    ck_assert_str_eq(model, "llama");

    ck_assert_int_eq(sum_params(g), 5475584);
    ck_assert_int_eq(llama_params(256, 6, 8, 4, 704, 4096, 1), 5475584);
    ck_assert_ptr_null(lm_gguf_find_tensor(g, "output.weight")); /* tied */
    const lm_gguf_tensor *emb = lm_gguf_find_tensor(g, "token_embd.weight");
    ck_assert_ptr_nonnull(emb);
    ck_assert_int_eq(emb->ne[0], 256);
    ck_assert_int_eq(emb->ne[1], 4096);
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        uint32_t want = t->n_dims == 2 ? mini_types[_i] : LM_QTYPE_F32;
        ck_assert_msg(t->type == want, "%s is %s", t->name, lm_quant_name(t->type));
        ck_assert_uint_eq((uint64_t)((const char *)t->data - (const char *)lm_gguf_base(g)), t->offset);
        ck_assert_uint_eq(t->offset % 32, 0);
    }
    lm_gguf_free(g);
}
END_TEST

START_TEST(test_stories260k_facts)
{
    lm_gguf *g = open_shared("models/stories260K.gguf");
    if (!g)
        return;
    ck_assert_str_eq(lm_gguf_arch(g), "llama");
    int64_t d = u32_of(g, "llama.embedding_length"), L = u32_of(g, "llama.block_count");
    int64_t h = u32_of(g, "llama.attention.head_count"), kv = u32_of(g, "llama.attention.head_count_kv");
    int64_t ffn = u32_of(g, "llama.feed_forward_length");
    ck_assert_int_eq(d, 64);
    ck_assert_int_eq(L, 5);
    ck_assert_int_eq(h, 8);
    ck_assert_int_eq(kv, 4);
    lm_gguf_array a;
    ck_assert_int_eq(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, NULL), DL_OK);
    ck_assert_int_eq(a.n, 512);
    int tied = lm_gguf_find_tensor(g, "output.weight") == NULL;
    ck_assert_int_eq(sum_params(g), llama_params(d, L, h, kv, ffn, 512, tied));
    ck_assert_int_eq(lm_gguf_n_tensors(g), 3 + 9 * L - tied);
    lm_gguf_free(g);
}
END_TEST

static const char *const vocab_files[] = {
    "tokenizers/vocab/ggml-vocab-baichuan.gguf",       "tokenizers/vocab/ggml-vocab-bert-bge.gguf",
    "tokenizers/vocab/ggml-vocab-deepseek-coder.gguf", "tokenizers/vocab/ggml-vocab-deepseek-llm.gguf",
    "tokenizers/vocab/ggml-vocab-falcon.gguf",         "tokenizers/vocab/ggml-vocab-gpt-2.gguf",
    "tokenizers/vocab/ggml-vocab-gpt-neox.gguf",       "tokenizers/vocab/ggml-vocab-llama-spm.gguf",
    "tokenizers/vocab/ggml-vocab-mpt.gguf",            "tokenizers/vocab/ggml-vocab-phi-3.gguf",
    "tokenizers/vocab/ggml-vocab-refact.gguf",         "tokenizers/vocab/ggml-vocab-starcoder.gguf",
    "tokenizers/reconstructed/ggml-vocab-llama-bpe.reconstructed.gguf",
    "tokenizers/reconstructed/ggml-vocab-qwen2.reconstructed.gguf",
};

/* Vocab-only files: no tensors, a tokenizer model, per-token arrays of one
 * length, and every token string readable. */
START_TEST(test_vocab_files)
{
    lm_gguf *g = open_shared(vocab_files[_i]);
    if (!g)
        return;
    ck_assert_int_eq(lm_gguf_n_tensors(g), 0);
    const char *model = NULL;
    ck_assert_int_eq(lm_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, NULL), DL_OK);
    lm_gguf_array tok, arr;
    ck_assert_int_eq(lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &tok, NULL), DL_OK);
    ck_assert_int_eq(tok.type, LM_GGUF_TYPE_STRING);
    ck_assert_int_gt(tok.n, 100);
    size_t total = 0, len;
    for (int64_t i = 0; i < tok.n; i++) {
        lm_gguf_arr_str(&tok, i, &len);
        total += len;
    }
    ck_assert_uint_lt(total, lm_gguf_file_size(g));
    if (lm_gguf_get_arr(g, "tokenizer.ggml.scores", &arr, NULL) == DL_OK)
        ck_assert_int_eq(arr.n, tok.n);
    if (lm_gguf_get_arr(g, "tokenizer.ggml.token_type", &arr, NULL) == DL_OK) {
        ck_assert_int_eq(arr.n, tok.n);
        int32_t *tt = malloc((size_t)arr.n * sizeof *tt);
        ck_assert_int_eq(lm_gguf_arr_copy_i32(&arr, tt, NULL), DL_OK);
        free(tt);
    }
    if (strstr(vocab_files[_i], "gpt-2.gguf"))
        ck_assert_int_eq(tok.n, 50257);
    if (strstr(vocab_files[_i], "llama-spm"))
        ck_assert_int_eq(tok.n, 32000);
    lm_gguf_free(g);
}
END_TEST

/* ---- quantised weights of the real files -------------------------------- */

/* The F16 and Q8_0 files hold the F32 file's weights, rounded: F16 to the
 * nearest half (error <= 2^-11 relative, 2^-25 absolute for subnormals);
 * Q8_0 per block with d = max|x|/127 and q = round(x/d), so
 * |x - d16 q| <= d/2 + 127 |d - d16|, d16 being d rounded to fp16. */
START_TEST(test_quantised_vs_f32)
{
    lm_gguf *gf = open_shared("models/delift-mini-f32.gguf");
    if (!gf)
        return;
    lm_gguf *gq = open_shared(mini_files[1 + _i]);
    ck_assert_ptr_nonnull(gq);
    int64_t checked = 0, bad = 0, bad_scale = 0;
    char first[256] = "";
    float *deq = malloc(704 * sizeof *deq);
    for (int64_t i = 0; i < lm_gguf_n_tensors(gq); i++) {
        const lm_gguf_tensor *tq = lm_gguf_tensor_at(gq, i);
        const lm_gguf_tensor *tf = lm_gguf_find_tensor(gf, tq->name);
        ck_assert_ptr_nonnull(tf);
        ck_assert_int_eq(tf->n_elements, tq->n_elements);
        if (tq->type == LM_QTYPE_F32)
            continue;
        int64_t n = tq->ne[0];
        for (int64_t r = 0; r < tq->n_rows; r++) {
            const unsigned char *qrow = (const unsigned char *)tq->data + (size_t)r * tq->row_bytes;
            const float *x = (const float *)tf->data + r * n;
            lm_quant_dequant_row(tq->type, qrow, deq, n);
            double d = 0, d16 = 0;
            for (int64_t j = 0; j < n; j++) {
                double bound;
                if (tq->type == LM_QTYPE_F16) {
                    bound = fmax(fabs(x[j]) * ldexp(1, -11), ldexp(1, -25));
                } else {
                    if (j % 32 == 0) { /* a new block: its scale from the F32 weights */
                        double amax = 0;
                        for (int k = 0; k < 32; k++)
                            amax = fmax(amax, fabs(x[j + k]));
                        d = amax / 127;
                        uint16_t h;
                        memcpy(&h, qrow + (j / 32) * 34, 2);
                        d16 = lm_quant_f16_to_f32(h);
                        if (!(fabs(d16 - d) <= d * ldexp(1, -11) + ldexp(1, -24)))
                            bad_scale++;
                    }
                    bound = d / 2 + 127 * fabs(d - d16) + 1e-12;
                }
                /* ck_assert per element would cost a pipe write each. */
                if (!(fabs(x[j] - deq[j]) <= bound) && bad++ == 0)
                    snprintf(first, sizeof first, "%s[%lld,%lld]: %g vs %g (bound %g)", tq->name,
                             (long long)r, (long long)j, x[j], deq[j], bound);
                checked++;
            }
        }
    }
    ck_assert_msg(bad == 0, "%lld values outside the bound; first %s", (long long)bad, first);
    ck_assert_int_eq(bad_scale, 0);
    ck_assert_int_eq(checked, 5475584 - 13 * 256);
    free(deq);
    lm_gguf_free(gq);
    lm_gguf_free(gf);
}
END_TEST

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("lm_gguf");
    TCase *tc = tcase_create("synthetic");
    tcase_add_test(tc, test_minimal_reads_back);
    tcase_add_test(tc, test_truncated_everywhere);
    tcase_add_test(tc, test_header_corruptions);
    tcase_add_test(tc, test_metadata_corruptions);
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_tensor_corruptions);
    tcase_add_test(tc, test_random_mutations);
    tcase_add_test(tc, test_open_path_errors);
    tcase_add_test(tc, test_release_keeps_bytes);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    TCase *real = tcase_create("shared");
    tcase_add_loop_test(real, test_delift_mini_facts, 0, 3);
    tcase_add_test(real, test_stories260k_facts);
    tcase_add_loop_test(real, test_vocab_files, 0, (int)(sizeof vocab_files / sizeof vocab_files[0]));
    tcase_add_loop_test(real, test_quantised_vs_f32, 0, 2);
    tcase_set_timeout(real, 120);
    suite_add_tcase(s, real);
    return s;
}

int main(void)
{
    return dl_test_run(gguf_suite());
}
