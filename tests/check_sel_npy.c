/* check_sel_npy.c: .npy and CSR .npz reading and writing (sel_npy.h, sel_npz.h).
 *
 * Expected values come from numpy/scipy (tests/gen/gen_npy_fixtures.py wrote
 * the fixtures and tests/data/npy/expected.txt); the malformed corpus under
 * tests/data/npy/bad/ lists the status, byte offset and message each file
 * must produce.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

#include "dl_file.h"
#include "dl_test.h"
#include "sel_npy.h"
#include "sel_npz.h"

#define LINE_MAX_LEN 16384

/* ---- helpers ------------------------------------------------------------ */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    ck_assert(b != NULL);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int bits_eq(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* A scratch directory under the build tree, emptied by rm_tree. */
static char scratch[512];

static void scratch_make(const char *tag)
{
    const char *b = getenv("DELIFT_BUILDDIR");
    snprintf(scratch, sizeof scratch, "%s/tests/tmp_sel_npy_%s_%ld", b ? b : ".", tag,
             (long)getpid());
    mkdir(scratch, 0755);
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void scratch_clean(void)
{
    DIR *d = opendir(scratch);
    if (!d)
        return;
    char p[1024];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", scratch, e->d_name);
        if (rmdir(p) != 0)
            unlink(p);
    }
    closedir(d);
    rmdir(scratch);
}

/* ---- fixtures written by numpy/scipy --------------------------------------- */

/* Parses "ROWS COLS BORROW v..." after the name; returns the values (owned). */
static float *expected_values(char *rest, int64_t *rows, int64_t *cols, char *borrow)
{
    char *save = NULL;
    *rows = strtoll(strtok_r(rest, " \n", &save), NULL, 10);
    *cols = strtoll(strtok_r(NULL, " \n", &save), NULL, 10);
    *borrow = *strtok_r(NULL, " \n", &save);
    size_t n = (size_t)(*rows * *cols);
    float *v = malloc((n ? n : 1) * sizeof *v);
    ck_assert(v != NULL);
    for (size_t i = 0; i < n; i++) {
        char *tok = strtok_r(NULL, " \n", &save);
        ck_assert_msg(tok != NULL, "expected.txt: short value list");
        v[i] = (float)strtod(tok, NULL);
    }
    return v;
}

static void check_dense_fixture(const char *name, char *rest)
{
    int64_t rows, cols;
    char borrow;
    float *want = expected_values(rest, &rows, &cols, &borrow);
    char path[4200];
    snprintf(path, sizeof path, "%s", dl_test_src("tests/data/npy/"));
    strncat(path, name, sizeof path - strlen(path) - 1);
    sel_npy_mat *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(sel_npy_mat_open(path, SEL_NPY_ALLOW_1D, &m, &err) == DL_OK, "%s: %s", name,
                  err.message);
    ck_assert_int_eq(m->rows, rows);
    ck_assert_int_eq(m->cols, cols);
    ck_assert_int_eq(m->stride, cols);
    ck_assert_msg(m->borrowed == (borrow == '1'), "%s: borrowed %d", name, m->borrowed);
    if (m->borrowed) {
        /* A borrow: the pointer lies inside the file mapping, right after the header. */
        const uint8_t *base = m->map_;
        ck_assert_ptr_nonnull(base);
        ck_assert((const uint8_t *)m->data >= base + 10);
        ck_assert((const uint8_t *)(m->data + rows * cols) == base + m->map_len_);
    } else {
        ck_assert_ptr_null(m->map_);
    }
    for (int64_t i = 0; i < rows * cols; i++)
        ck_assert_msg(bits_eq(m->data[i], want[i]), "%s[%lld]: %.9g, numpy says %.9g", name,
                      (long long)i, m->data[i], want[i]);
    sel_npy_mat_free(m);
    free(want);
}

static void check_sparse_fixture(const char *name, char *rest)
{
    int64_t rows, cols;
    char borrow;
    float *want = expected_values(rest, &rows, &cols, &borrow);
    char path[4200];
    snprintf(path, sizeof path, "%s", dl_test_src("tests/data/npy/"));
    strncat(path, name, sizeof path - strlen(path) - 1);
    sel_npz_csr *c = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_msg(sel_npz_csr_read(path, &c, &err) == DL_OK, "%s: %s", name, err.message);
    ck_assert_int_eq(c->rows, rows);
    ck_assert_int_eq(c->cols, cols);
    float *dense = calloc((size_t)(rows * cols) + 1, sizeof *dense);
    int64_t stored_nonzero = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t e = c->indptr[r]; e < c->indptr[r + 1]; e++) {
            int64_t col = c->index_size == 4 ? ((int32_t *)c->indices)[e]
                                             : ((int64_t *)c->indices)[e];
            dense[r * cols + col] += c->values[e];
            stored_nonzero += c->values[e] != 0;
        }
    int64_t want_nonzero = 0;
    for (int64_t i = 0; i < rows * cols; i++) {
        ck_assert_msg(bits_eq(dense[i], want[i]), "%s[%lld]", name, (long long)i);
        want_nonzero += want[i] != 0;
    }
    ck_assert_int_eq(stored_nonzero, want_nonzero);
    ck_assert_int_eq(c->nnz, c->indptr[rows]);
    free(dense);
    free(want);
    sel_npz_csr_free(c);
}

START_TEST(test_numpy_fixtures)
{
    FILE *f = fopen(dl_test_src("tests/data/npy/expected.txt"), "r");
    ck_assert_ptr_nonnull(f);
    static char line[LINE_MAX_LEN];
    int dense = 0, sparse = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *sp = strchr(line, ' ');
        ck_assert_ptr_nonnull(sp);
        *sp = '\0';
        size_t nl = strlen(line);
        if (nl > 4 && !strcmp(line + nl - 4, ".npz")) {
            check_sparse_fixture(line, sp + 1);
            sparse++;
        } else {
            check_dense_fixture(line, sp + 1);
            dense++;
        }
    }
    fclose(f);
    ck_assert_int_ge(dense, 10);
    ck_assert_int_ge(sparse, 5);
}
END_TEST

/* ---- the malformed corpus ----------------------------------------------------- */

START_TEST(test_bad_corpus)
{
    FILE *f = fopen(dl_test_src("tests/data/npy/bad/expected.txt"), "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char name[256], status[32], offset[32];
        int used = 0;
        ck_assert_int_eq(sscanf(line, "%255s %31s %31s %n", name, status, offset, &used), 3);
        const char *msg = line + used;
        char path[4200];
        snprintf(path, sizeof path, "%s", dl_test_src("tests/data/npy/bad/"));
        strncat(path, name, sizeof path - strlen(path) - 1);
        dl_error err;
        dl_error_clear(&err);
        dl_status s;
        if (strstr(name, ".npz")) {
            sel_npz_csr *c = NULL;
            s = sel_npz_csr_read(path, &c, &err);
            ck_assert_ptr_null(c);
        } else {
            sel_npy_mat *m = NULL;
            s = sel_npy_mat_open(path, 0, &m, &err);
            ck_assert_ptr_null(m);
        }
        char text[2048];
        dl_error_format(&err, text, sizeof text);
        ck_assert_msg(s != DL_OK && s == err.code, "%s: accepted", name);
        ck_assert_msg(!strcmp(dl_status_name(s), status), "%s: status %s, expected %s (%s)",
                      name, dl_status_name(s), status, text);
        ck_assert_msg(strstr(text, msg) != NULL, "%s: message '%s' lacks '%s'", name, text, msg);
        ck_assert_msg(!strcmp(err.file, path), "%s: error names file '%s'", name, err.file);
        if (strcmp(offset, "-") != 0)
            ck_assert_msg(err.offset == strtoll(offset, NULL, 10),
                          "%s: offset %lld, expected %s (%s)", name, (long long)err.offset,
                          offset, text);
        else
            ck_assert_msg(err.offset >= 0, "%s: no byte offset (%s)", name, text);
        cases++;
    }
    fclose(f);
    ck_assert_int_ge(cases, 60);
}
END_TEST

/* Every prefix of every valid fixture and every single-byte change to its
 * first 140 bytes is either accepted or refused cleanly (ASan checks the
 * reads: each image is an exact-size heap copy). */
START_TEST(test_prefixes_and_flips)
{
    const char *names[] = {"f32_3x4.npy", "f64_4x3.npy", "f32_v2.npy", "be_f8.npy",
                           "csr_deflated.npz", "csr_stored.npz"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s%s", dl_test_src("tests/data/npy/"), names[k]);
        size_t len;
        uint8_t *img = slurp(path, &len);
        int is_npz = strstr(names[k], ".npz") != NULL;
        for (size_t cut = 0; cut <= len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, img, cut);
            dl_error err;
            dl_error_clear(&err);
            dl_status s;
            if (is_npz) {
                sel_npz_csr *c = NULL;
                s = sel_npz_csr_from_buffer(p, cut, names[k], &c, &err);
                sel_npz_csr_free(c);
            } else {
                sel_npy_mat *m = NULL;
                s = sel_npy_mat_from_buffer(p, cut, names[k], 0, &m, &err);
                sel_npy_mat_free(m);
            }
            ck_assert_msg((s == DL_OK) == (cut == len), "%s cut at %zu: status %d", names[k],
                          cut, (int)s);
            if (s)
                ck_assert(err.message[0] != '\0');
            free(p);
        }
        for (size_t at = 0; at < len && at < 140; at++) {
            for (int bit = 0; bit < 8; bit += 3) {
                uint8_t *p = malloc(len);
                memcpy(p, img, len);
                p[at] ^= (uint8_t)(1u << bit);
                dl_error err;
                dl_error_clear(&err);
                if (is_npz) {
                    sel_npz_csr *c = NULL;
                    sel_npz_csr_from_buffer(p, len, names[k], &c, &err);
                    sel_npz_csr_free(c);
                } else {
                    sel_npy_mat *m = NULL;
                    sel_npy_mat_from_buffer(p, len, names[k], 0, &m, &err);
                    sel_npy_mat_free(m);
                }
                free(p);
            }
        }
        free(img);
    }
}
END_TEST

/* ---- round trips ------------------------------------------------------------ */

START_TEST(test_npy_roundtrip_strided)
{
    scratch_make("rt");
    /* A 3 x 4 window of a 5 x 7 matrix: the writer must honour the stride. */
    float big[5 * 7];
    for (int i = 0; i < 35; i++)
        big[i] = (float)i * 0.37f - 3.0f;
    char path[600];
    snprintf(path, sizeof path, "%s/w.npy", scratch);
    dl_error err;
    dl_error_clear(&err);
    int64_t shape[2] = {3, 4};
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F32, 2, shape, big + 7 + 2, 7, &err), DL_OK);
    sel_npy_mat *m = NULL;
    ck_assert_int_eq(sel_npy_mat_open(path, 0, &m, &err), DL_OK);
    ck_assert_int_eq(m->rows, 3);
    ck_assert_int_eq(m->cols, 4);
    ck_assert(m->borrowed);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            ck_assert(bits_eq(m->data[r * 4 + c], big[(r + 1) * 7 + c + 2]));
    sel_npy_mat_free(m);
    /* The header is what numpy writes: 64-byte aligned, version 1.0. */
    size_t len;
    uint8_t *img = slurp(path, &len);
    ck_assert_uint_eq(len, 128 + 12 * 4);
    ck_assert(memcmp(img, "\x93NUMPY\x01\x00", 8) == 0);
    ck_assert(memmem(img, 128, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                     59) != NULL);
    ck_assert_int_eq(img[127], '\n');
    free(img);

    /* float64 out, float32 in; integers through the generic header. */
    double d[6] = {1.0 / 3.0, -2.5, 1e-40, 0.0, 65504.0, -1e30};
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F64, 2, (int64_t[]){2, 3}, d, 0, &err), DL_OK);
    ck_assert_int_eq(sel_npy_mat_open(path, 0, &m, &err), DL_OK);
    ck_assert(!m->borrowed);
    ck_assert_int_eq(m->file_dtype, SEL_NPY_F64);
    for (int i = 0; i < 6; i++)
        ck_assert(bits_eq(m->data[i], (float)d[i]));
    sel_npy_mat_free(m);
    int64_t iv[5] = {0, -1, INT64_MAX, INT64_MIN, 42};
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_I64, 1, (int64_t[]){5}, iv, 0, &err), DL_OK);
    img = slurp(path, &len);
    sel_npy_header h;
    ck_assert_int_eq(sel_npy_header_parse(img, len, path, &h, &err), DL_OK);
    ck_assert_int_eq(h.ndim, 1);
    ck_assert_int_eq(h.count, 5);
    for (int i = 0; i < 5; i++)
        ck_assert(sel_npy_get_i64(img, &h, i) == iv[i]);
    free(img);
    int32_t one = -7;
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_I32, 0, NULL, &one, 0, &err), DL_OK);
    img = slurp(path, &len);
    ck_assert_int_eq(sel_npy_header_parse(img, len, path, &h, &err), DL_OK);
    ck_assert_int_eq(h.ndim, 0);
    ck_assert_int_eq(sel_npy_get_i64(img, &h, 0), -7);
    free(img);
    /* An empty matrix is a valid file. */
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F32, 2, (int64_t[]){0, 9}, NULL, 0, &err),
                     DL_OK);
    ck_assert_int_eq(sel_npy_mat_open(path, 0, &m, &err), DL_OK);
    ck_assert_int_eq(m->rows, 0);
    ck_assert_int_eq(m->cols, 9);
    sel_npy_mat_free(m);
    ck_assert_int_eq(dir_entries(scratch), 1); /* no temporary left behind */
    scratch_clean();
}
END_TEST

static void csr_roundtrip(int index_size, int64_t rows, int64_t cols, unsigned seed)
{
    int64_t *indptr = malloc((size_t)(rows + 1) * sizeof *indptr);
    int64_t cap = rows * cols + 1;
    void *idx = malloc((size_t)cap * (size_t)index_size);
    float *val = malloc((size_t)cap * sizeof *val);
    indptr[0] = 0;
    int64_t e = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 3 != 0)
                continue;
            if (index_size == 4)
                ((int32_t *)idx)[e] = (int32_t)c;
            else
                ((int64_t *)idx)[e] = c;
            val[e++] = (float)((seed >> 8) % 1000) / 7.0f - 50.0f;
        }
        indptr[r + 1] = e;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/m.npz", scratch);
    dl_error err;
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npz_csr_write(path, rows, cols, indptr, idx, index_size, val, &err),
                     DL_OK);
    sel_npz_csr *c = NULL;
    ck_assert_msg(sel_npz_csr_read(path, &c, &err) == DL_OK, "%s", err.message);
    ck_assert_int_eq(c->rows, rows);
    ck_assert_int_eq(c->cols, cols);
    ck_assert_int_eq(c->nnz, e);
    ck_assert_int_eq(c->index_size, index_size);
    ck_assert(memcmp(c->indptr, indptr, (size_t)(rows + 1) * sizeof *indptr) == 0);
    ck_assert(memcmp(c->indices, idx, (size_t)e * (size_t)index_size) == 0);
    ck_assert(memcmp(c->values, val, (size_t)e * sizeof *val) == 0);
    sel_npz_csr_free(c);
    free(indptr);
    free(idx);
    free(val);
}

START_TEST(test_npz_roundtrip)
{
    scratch_make("npz");
    csr_roundtrip(4, 9, 13, 1);
    csr_roundtrip(8, 17, 5, 2);
    csr_roundtrip(4, 0, 3, 3);
    csr_roundtrip(8, 4, 0, 4);
    /* The writer refuses what is not CSR. */
    dl_error err;
    dl_error_clear(&err);
    char path[600];
    snprintf(path, sizeof path, "%s/bad.npz", scratch);
    int64_t ip[3] = {0, 2, 1};
    int32_t ix[2] = {0, 1};
    float v[2] = {1, 2};
    ck_assert_int_eq(sel_npz_csr_write(path, 2, 2, ip, ix, 4, v, &err), DL_ERR_USAGE);
    int64_t ip2[3] = {0, 1, 2};
    int32_t ix2[2] = {0, 2};
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npz_csr_write(path, 2, 2, ip2, ix2, 4, v, &err), DL_ERR_USAGE);
    ck_assert_int_eq(dir_entries(scratch), 1); /* only m.npz */
    scratch_clean();
}
END_TEST

/* ---- borrowing, failures, edge cases ---------------------------------------- */

START_TEST(test_buffer_borrow_and_misaligned)
{
    size_t len;
    uint8_t *img = slurp(dl_test_src("tests/data/npy/f32_3x4.npy"), &len);
    sel_npy_mat *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_mat_from_buffer(img, len, "img", 0, &m, &err), DL_OK);
    ck_assert(m->borrowed);
    ck_assert_ptr_eq((const void *)m->data, img + 128);
    float first = m->data[0];
    sel_npy_mat_free(m);
    /* The same image one byte off alignment is copied, not misread. */
    uint8_t *odd = malloc(len + 1);
    memcpy(odd + 1, img, len);
    ck_assert_int_eq(sel_npy_mat_from_buffer(odd + 1, len, "odd", 0, &m, &err), DL_OK);
    ck_assert(!m->borrowed);
    ck_assert(bits_eq(m->data[0], first));
    sel_npy_mat_free(m);
    free(odd);
    free(img);
    sel_npy_mat_free(NULL);
    sel_npz_csr_free(NULL);
    dl_file_atomic_abort(NULL);
}
END_TEST

START_TEST(test_open_failures)
{
    dl_error err;
    dl_error_clear(&err);
    sel_npy_mat *m = NULL;
    ck_assert_int_eq(sel_npy_mat_open("/nonexistent/k.npy", 0, &m, &err), DL_ERR_NOT_FOUND);
    ck_assert_str_eq(err.file, "/nonexistent/k.npy");
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_mat_open(dl_test_src("tests"), 0, &m, &err), DL_ERR_IO);
    ck_assert(strstr(err.message, "not a regular file") != NULL);
    sel_npz_csr *c = NULL;
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npz_csr_read("/nonexistent/k.npz", &c, &err), DL_ERR_NOT_FOUND);
    /* Reading a .npy as .npz and the reverse: clear refusals. */
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npz_csr_read(dl_test_src("tests/data/npy/f32_3x4.npy"), &c, &err),
                     DL_ERR_INPUT);
    ck_assert(strstr(err.message, "zip") != NULL);
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_mat_open(dl_test_src("tests/data/npy/csr_stored.npz"), 0, &m, &err),
                     DL_ERR_INPUT);
    ck_assert(strstr(err.message, "not a .npy file") != NULL);
}
END_TEST

START_TEST(test_atomic_write_failures)
{
    scratch_make("fail");
    dl_error err;
    dl_error_clear(&err);
    float v[4] = {1, 2, 3, 4};
    char path[700];
    /* No such directory: nothing is created. */
    snprintf(path, sizeof path, "%s/missing/k.npy", scratch);
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F32, 2, (int64_t[]){2, 2}, v, 0, &err),
                     DL_ERR_IO);
    ck_assert_str_eq(err.file, path);
    /* The target is a directory: the rename fails and the temporary goes. */
    snprintf(path, sizeof path, "%s/adir", scratch);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F32, 2, (int64_t[]){2, 2}, v, 0, &err),
                     DL_ERR_IO);
    ck_assert(strstr(err.message, "rename") != NULL);
    dl_error_clear(&err);
    int64_t ip[2] = {0, 1};
    int32_t ix[1] = {0};
    ck_assert_int_eq(sel_npz_csr_write(path, 1, 1, ip, ix, 4, v, &err), DL_ERR_IO);
    ck_assert_int_eq(dir_entries(scratch), 1); /* only adir: no temporaries */
    /* An existing file is replaced whole. */
    snprintf(path, sizeof path, "%s/k.npy", scratch);
    FILE *f = fopen(path, "w");
    fputs("old contents", f);
    fclose(f);
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F32, 1, (int64_t[]){4}, v, 0, &err), DL_OK);
    sel_npy_mat *m = NULL;
    ck_assert_int_eq(sel_npy_mat_open(path, SEL_NPY_ALLOW_1D, &m, &err), DL_OK);
    ck_assert_int_eq(m->rows, 4);
    ck_assert_int_eq(m->cols, 1);
    sel_npy_mat_free(m);
    /* Bad arguments are usage errors. */
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_BYTES, 1, (int64_t[]){4}, v, 0, &err),
                     DL_ERR_USAGE);
    dl_error_clear(&err);
    ck_assert_int_eq(sel_npy_write(path, SEL_NPY_F32, 2, (int64_t[]){2, 3}, v, 2, &err),
                     DL_ERR_USAGE);
    ck_assert_int_eq(dir_entries(scratch), 2);
    scratch_clean();
}
END_TEST

static Suite *sel_npy_suite(void)
{
    Suite *s = suite_create("sel_npy");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_numpy_fixtures);
    tcase_add_test(tc, test_bad_corpus);
    tcase_add_test(tc, test_prefixes_and_flips);
    tcase_add_test(tc, test_npy_roundtrip_strided);
    tcase_add_test(tc, test_npz_roundtrip);
    tcase_add_test(tc, test_buffer_borrow_and_misaligned);
    tcase_add_test(tc, test_open_failures);
    tcase_add_test(tc, test_atomic_write_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(sel_npy_suite());
}
