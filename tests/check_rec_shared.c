/* check_rec_shared.c: the records reader on the real pools in ../shared
 * (skipped, exit 77, when they are absent).  Read-only, a few MB in all.
 *
 * References: the record counts published in ../shared/datasets/README.md,
 * and jansson loading the whole JSON array at once (a second reader) for
 * the element-by-element scanner. */
#include "config.h"

#include <jansson.h>
#include <string.h>

#include "dl_test.h"
#include "rec.h"

static rec_pool *load(const char *rel, const char *fields, dl_error *e)
{
    const char *path = dl_test_shared(rel);
    ck_assert_ptr_nonnull(path);
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    if (fields)
        ck_assert_int_eq(rec_map_parse(fields, &o.map, NULL), DL_OK);
    rec_pool *pool = NULL;
    dl_error_clear(e);
    rec_pool_load(path, &o, &pool, e);
    return pool;
}

START_TEST(test_gsm8k_question_answer)
{
    dl_error e;
    rec_pool *pool = load("datasets/gsm8k/train.jsonl", NULL, &e);
    ck_assert_msg(pool, "%s", e.message);
    ck_assert_int_eq(pool->n, 7473); /* README: 7,473 */
    ck_assert_int_eq(pool->map.shape, REC_SHAPE_QUESTION_ANSWER);
    ck_assert_int_eq(pool->form, REC_FORM_JSONL);
    for (int64_t i = 0; i < pool->n; i++) {
        const rec_record *r = &pool->records[i];
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)(i + 1));
        ck_assert_str_eq(r->id, id); /* no id field: the line number */
        ck_assert_int_eq(r->line, i + 1);
        ck_assert_uint_eq(r->input_len, 0);
        ck_assert_ptr_nonnull(strstr(r->output, "#### "));
    }
    ck_assert_str_eq(pool->records[0].instruction,
                     "Natalia sold clips to 48 of her friends in April, and then she sold half as "
                     "many clips in May. How many clips did Natalia sell altogether in April and May?");
    rec_pool_free(pool);
}
END_TEST

START_TEST(test_codealpaca_array)
{
    dl_error e;
    rec_pool *pool = load("datasets/codealpaca/code_alpaca_2k.json", NULL, &e);
    ck_assert_msg(pool, "%s", e.message);
    ck_assert_int_eq(pool->n, 2017); /* README: 2,017 */
    ck_assert_int_eq(pool->form, REC_FORM_ARRAY);
    ck_assert_int_eq(pool->map.shape, REC_SHAPE_ALPACA);
    json_error_t jerr;
    json_t *all = json_load_file(dl_test_shared("datasets/codealpaca/code_alpaca_2k.json"), 0,
                                 &jerr);
    ck_assert_ptr_nonnull(all);
    ck_assert_int_eq((int64_t)json_array_size(all), pool->n);
    for (int64_t i = 0; i < pool->n; i++) {
        json_t *el = json_array_get(all, (size_t)i);
        const rec_record *r = &pool->records[i];
        ck_assert_str_eq(r->instruction, json_string_value(json_object_get(el, "instruction")));
        ck_assert_str_eq(r->input, json_string_value(json_object_get(el, "input")));
        ck_assert_str_eq(r->output, json_string_value(json_object_get(el, "output")));
        json_t *again = json_loadb(r->raw, r->raw_len, 0, NULL);
        ck_assert(json_equal(again, el));
        json_decref(again);
    }
    json_decref(all);
    rec_pool_free(pool);
}
END_TEST

START_TEST(test_mbpp_custom_map)
{
    dl_error e;
    rec_pool *pool = load("datasets/mbpp/mbpp.jsonl", "instruction=text,output=code,id=task_id",
                          &e);
    ck_assert_msg(pool, "%s", e.message);
    ck_assert_int_eq(pool->n, 974); /* README: 974 */
    ck_assert_int_eq(pool->map.shape, REC_SHAPE_CUSTOM);
    ck_assert_str_eq(pool->records[0].id, "1");
    ck_assert_ptr_nonnull(strstr(pool->records[0].output, "\r\n")); /* CRs inside strings stay */
    rec_pool_free(pool);
}
END_TEST

/* self-instruct's seed tasks nest their outputs in "instances": no shape
 * matches, and the error lists the keys it saw. */
START_TEST(test_self_instruct_needs_a_map)
{
    dl_error e;
    rec_pool *pool = load("datasets/self-instruct/seed_tasks.jsonl", NULL, &e);
    ck_assert_ptr_null(pool);
    ck_assert_int_eq(e.code, DL_ERR_INPUT);
    ck_assert_int_eq(e.line, 1);
    ck_assert_ptr_nonnull(strstr(e.message, "'instances'"));
}
END_TEST

START_TEST(test_t0_prompt_completion)
{
    const char *rel = "datasets/t0/trec_trec1.jsonl";
    FILE *f = fopen(dl_test_shared(rel), "rb");
    ck_assert_ptr_nonnull(f);
    int64_t lines = 0;
    int c;
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    dl_error e;
    rec_pool *pool = load(rel, NULL, &e);
    ck_assert_msg(pool, "%s", e.message);
    ck_assert_int_eq(pool->n, lines);
    ck_assert_int_eq(pool->map.shape, REC_SHAPE_PROMPT_COMPLETION);
    rec_pool_free(pool);
}
END_TEST

int main(void)
{
    dl_test_require_shared("datasets/gsm8k/train.jsonl");
    Suite *s = suite_create("rec_shared");
    TCase *tc = tcase_create("pools");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gsm8k_question_answer);
    tcase_add_test(tc, test_codealpaca_array);
    tcase_add_test(tc, test_mbpp_custom_map);
    tcase_add_test(tc, test_self_instruct_needs_a_map);
    tcase_add_test(tc, test_t0_prompt_completion);
    suite_add_tcase(s, tc);
    return dl_test_run(s);
}
