/* check_dl_error.c: the error model and the server's error bodies. */
#include <jansson.h>

#include "dl_error.h"
#include "dl_test.h"
#include "srv_error.h"

START_TEST(test_clear_and_first_wins)
{
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(e.code, DL_OK);
    ck_assert_int_eq(e.offset, -1);
    ck_assert_int_eq(dl_error_set(&e, DL_ERR_INPUT, "bad %d", 7), DL_ERR_INPUT);
    ck_assert_str_eq(e.message, "bad 7");
    /* A later error does not overwrite the first. */
    ck_assert_int_eq(dl_error_set(&e, DL_ERR_IO, "later"), DL_ERR_IO);
    ck_assert_int_eq(e.code, DL_ERR_INPUT);
    ck_assert_str_eq(e.message, "bad 7");
    /* NULL is accepted everywhere. */
    ck_assert_int_eq(dl_error_set(NULL, DL_ERR_NOMEM, "x"), DL_ERR_NOMEM);
    dl_error_clear(NULL);
    dl_error_locate(NULL, "f", 1, "g");
}
END_TEST

START_TEST(test_format_full_context)
{
    dl_error e;
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_INPUT, "pool.jsonl", 12, 5, 300, "output",
                    "expected a string, got %s", "a number");
    char buf[256];
    ck_assert_str_eq(dl_error_format(&e, buf, sizeof buf),
                     "pool.jsonl:12:5: field 'output': expected a string, got a number");
}
END_TEST

START_TEST(test_format_partial_context)
{
    dl_error e;
    char buf[256];
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_INPUT, NULL, 0, 0, 4096, NULL, "bad magic");
    ck_assert_str_eq(dl_error_format(&e, buf, sizeof buf), "bad magic (at byte 4096)");
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_IO, "x.npy", 0, 0, -1, NULL, "cannot open");
    ck_assert_str_eq(dl_error_format(&e, buf, sizeof buf), "x.npy: cannot open");
    dl_error_clear(&e);
    dl_error_set(&e, DL_ERR_NOMEM, NULL);
    ck_assert_str_eq(dl_error_format(&e, buf, sizeof buf), "nomem error");
}
END_TEST

START_TEST(test_format_truncates_safely)
{
    dl_error e;
    dl_error_clear(&e);
    char longname[2000];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    dl_error_set_at(&e, DL_ERR_INPUT, longname, 3, 0, -1, longname, "%s", longname);
    ck_assert_uint_eq(strlen(e.file), DL_ERROR_FILE_MAX - 1);
    ck_assert_uint_eq(strlen(e.field), DL_ERROR_FIELD_MAX - 1);
    char small[16];
    dl_error_format(&e, small, sizeof small);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_ptr_eq(dl_error_format(&e, small, 0), small);
}
END_TEST

START_TEST(test_locate_fills_only_missing)
{
    dl_error e;
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_INPUT, NULL, 0, 9, -1, "input", "invalid UTF-8");
    dl_error_locate(&e, "a.jsonl", 4, "instruction");
    char buf[256];
    ck_assert_str_eq(dl_error_format(&e, buf, sizeof buf),
                     "a.jsonl:4:9: field 'input': invalid UTF-8");
    dl_error ok;
    dl_error_clear(&ok);
    dl_error_locate(&ok, "a.jsonl", 4, "x");
    ck_assert_int_eq(ok.code, DL_OK);
    ck_assert_str_eq(ok.file, "");
}
END_TEST

START_TEST(test_exit_codes_and_names)
{
    ck_assert_int_eq(dl_status_exit_code(DL_OK), 0);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_USAGE), 1);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_INPUT), 2);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_UNSUPPORTED), 2);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_NOT_FOUND), 2);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_IO), 3);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_NOMEM), 3);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_INTERNAL), 3);
    ck_assert_int_eq(dl_status_exit_code(DL_ERR_CANCELLED), 130);
    ck_assert_str_eq(dl_status_name(DL_ERR_INPUT), "input");
    ck_assert_str_eq(dl_status_name((dl_status)999), "unknown");
}
END_TEST

START_TEST(test_server_error_body)
{
    dl_error e;
    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_INPUT, "/var/lib/delift/uploads/tmp123", 7, 0, -1,
                    "output", "not a string");
    json_t *body = srv_error_body_new(&e, 0);
    ck_assert_ptr_nonnull(body);
    json_t *inner = json_object_get(body, "error");
    ck_assert_int_eq(json_integer_value(json_object_get(inner, "code")), 400);
    ck_assert_str_eq(json_string_value(json_object_get(inner, "type")), "input");
    const char *msg = json_string_value(json_object_get(inner, "message"));
    ck_assert_str_eq(msg, "line 7: field 'output': not a string");
    ck_assert_ptr_null(strstr(msg, "/var/lib"));
    json_decref(body);

    dl_error_clear(&e);
    dl_error_set_at(&e, DL_ERR_IO, "/secret/path", 0, 0, -1, NULL, "open /secret/path failed");
    body = srv_error_body_new(&e, 0);
    inner = json_object_get(body, "error");
    ck_assert_int_eq(json_integer_value(json_object_get(inner, "code")), 500);
    ck_assert_str_eq(json_string_value(json_object_get(inner, "message")), "internal error");
    json_decref(body);
    ck_assert_uint_eq(srv_error_http_status(DL_ERR_NOT_FOUND), 404);
}
END_TEST

static Suite *dl_error_suite(void)
{
    Suite *s = suite_create("dl_error");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_clear_and_first_wins);
    tcase_add_test(tc, test_format_full_context);
    tcase_add_test(tc, test_format_partial_context);
    tcase_add_test(tc, test_format_truncates_safely);
    tcase_add_test(tc, test_locate_fills_only_missing);
    tcase_add_test(tc, test_exit_codes_and_names);
    tcase_add_test(tc, test_server_error_body);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(dl_error_suite());
}
