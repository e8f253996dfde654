/* check_rec_oom.c: the records reader when allocations fail.
 *
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc, so every
 * allocation made by delift's own (statically linked) code goes through the
 * wrappers below; jansson's go through json_set_alloc_funcs to the same
 * budget.  For every budget k (the first k allocations succeed, then all
 * fail) the pool load must end in DL_OK or DL_ERR_NOMEM (or DL_ERR_INPUT,
 * which jansson reports for some failures inside its lexer), never crash,
 * and leak nothing (LeakSanitizer under --enable-sanitizers).  The loop
 * runs until a load succeeds, and that load must equal the reference. */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dl_test.h"
#include "rec.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static int oom_armed;
static int64_t oom_budget;

static int oom_fail(void)
{
    return oom_armed && oom_budget-- <= 0;
}

void *__wrap_malloc(size_t n)
{
    return oom_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return oom_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return oom_fail() ? NULL : __real_realloc(p, n);
}

static void *oom_json_malloc(size_t n)
{
    return oom_fail() ? NULL : __real_malloc(n);
}

/* A pool that takes every allocating path: ids table, chat folding, a
 * custom id, a skipped record, growth of the records array (> 64). */
static char pool_path[64];

static void write_pool(int array)
{
    snprintf(pool_path, sizeof pool_path, "/tmp/dl_check_rec_oom_%d.json", (int)getpid());
    FILE *f = fopen(pool_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, array ? "[" : "");
    for (int i = 0; i < 70; i++) {
        const char *sep = array ? (i < 69 ? ",\n" : "]\n") : "\n";
        if (i % 7 == 3)
            fprintf(f, "{\"id\":%d,\"messages\":[{\"role\":\"system\",\"content\":\"s%d\"},"
                       "{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\","
                       "\"content\":\"a\"},{\"role\":\"user\",\"content\":\"q%d\"},"
                       "{\"role\":\"assistant\",\"content\":\"r\"}]}%s", i, i, i, sep);
        else if (i == 11)
            fprintf(f, "{\"id\":\"x\",\"messages\":7}%s", sep); /* skipped */
        else
            fprintf(f, "{\"id\":\"rec-%d\",\"messages\":[{\"role\":\"user\",\"content\":"
                       "\"u%d\"},{\"role\":\"assistant\",\"content\":\"a\"}]}%s", i, i, sep);
    }
    fclose(f);
}

static void check_oom_loop(int array)
{
    write_pool(array);
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    o.skip_invalid = 1;
    rec_pool *ref = NULL;
    ck_assert_int_eq(rec_pool_load(pool_path, &o, &ref, NULL), DL_OK);
    ck_assert_int_eq(ref->n, 69);
    int done = 0, nomem = 0;
    for (int64_t k = 0; k < 100000 && !done; k += 1 + k / 64) {
        rec_pool *pool = NULL;
        dl_error e;
        dl_error_clear(&e);
        json_set_alloc_funcs(oom_json_malloc, free);
        oom_budget = k;
        oom_armed = 1;
        dl_status st = rec_pool_load(pool_path, &o, &pool, &e);
        oom_armed = 0;
        json_set_alloc_funcs(malloc, free);
        if (st != DL_OK && st != DL_ERR_NOMEM && st != DL_ERR_INPUT)
            ck_abort_msg("k=%lld: status %d (%s)", (long long)k, st, e.message);
        if (st != DL_OK && pool)
            ck_abort_msg("k=%lld: a pool despite an error", (long long)k);
        nomem += st == DL_ERR_NOMEM;
        if (st == DL_OK) {
            done = 1;
            ck_assert_int_eq(pool->n, ref->n);
            for (int64_t i = 0; i < ref->n; i++) {
                ck_assert_str_eq(pool->records[i].id, ref->records[i].id);
                ck_assert_str_eq(pool->records[i].input, ref->records[i].input);
                ck_assert_mem_eq(pool->records[i].hash, ref->records[i].hash, REC_HASH_LEN);
            }
        }
        rec_pool_free(pool);
    }
    ck_assert(done);
    ck_assert_int_gt(nomem, 0);
    rec_pool_free(ref);
    unlink(pool_path);
}

START_TEST(test_oom_jsonl)
{
    check_oom_loop(0);
}
END_TEST

START_TEST(test_oom_array)
{
    check_oom_loop(1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rec_oom");
    TCase *tc = tcase_create("oom");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_oom_jsonl);
    tcase_add_test(tc, test_oom_array);
    suite_add_tcase(s, tc);
    return dl_test_run(s);
}
