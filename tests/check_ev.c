/* check_ev.c: ev_summarize against hand-worked sums, and ev_run's argument
 * and input errors (the model path is never reached; the real runs are in
 * tests/cli_eval.sh). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_test.h"
#include "ev.h"

static ev_record mk(double di, double dn, double li, double ln)
{
    ev_record r;
    memset(&r, 0, sizeof r);
    r.d_icl = di;
    r.d_noicl = dn;
    r.ll_icl = li;
    r.ll_noicl = ln;
    return r;
}

/* Hand-worked: scored rows (d_icl, d_noicl) = (0.2, 0.4), (0.6, 0.4):
 * mean d_icl 0.4, population std 0.2; d_diff -0.2 and 0.2: mean 0, std 0.2;
 * ll_icl -1, -3: mean -2, std 1; ll_noicl -2, -2: std 0; one helped. */
START_TEST(test_summary_hand)
{
    ev_record r[4] = {mk(0.2, 0.4, -1, -2), mk(NAN, 0.5, NAN, -1), mk(0.6, 0.4, -3, -2),
                      mk(0.1, 0.3, -1, INFINITY)};
    ev_summary s;
    ev_summarize(r, 4, &s);
    ck_assert_int_eq(s.n_heldout, 4);
    ck_assert_int_eq(s.n_scored, 2);
    ck_assert_int_eq(s.n_unscorable, 2);
    ck_assert_int_eq(s.n_helped, 1);
    ck_assert_double_eq_tol(s.frac_helped, 0.5, 1e-15);
    ck_assert_double_eq_tol(s.d_icl.mean, 0.4, 1e-15);
    ck_assert_double_eq_tol(s.d_icl.std, 0.2, 1e-15);
    ck_assert_double_eq_tol(s.d_noicl.mean, 0.4, 1e-15);
    ck_assert_double_eq_tol(s.d_noicl.std, 0.0, 1e-15);
    ck_assert_double_eq_tol(s.d_diff.mean, 0.0, 1e-15);
    ck_assert_double_eq_tol(s.d_diff.std, 0.2, 1e-15);
    ck_assert_double_eq_tol(s.ll_icl.mean, -2.0, 1e-15);
    ck_assert_double_eq_tol(s.ll_icl.std, 1.0, 1e-15);
    ck_assert_double_eq_tol(s.ll_diff.mean, 0.0, 1e-15);
    ck_assert_double_eq_tol(s.ll_diff.std, 1.0, 1e-15);
    ck_assert_int_eq(s.n_subset, 0);
}
END_TEST

/* Nothing scored: counts 0, every statistic NaN (never a division by zero
 * turned into a number). */
START_TEST(test_summary_empty)
{
    ev_record r[1] = {mk(NAN, NAN, NAN, NAN)};
    ev_summary s;
    ev_summarize(r, 1, &s);
    ck_assert_int_eq(s.n_scored, 0);
    ck_assert_int_eq(s.n_unscorable, 1);
    ck_assert(isnan(s.frac_helped) && isnan(s.d_icl.mean) && isnan(s.ll_diff.std));
    ev_summarize(NULL, 0, &s);
    ck_assert_int_eq(s.n_heldout, 0);
    ck_assert(isnan(s.d_noicl.mean));
}
END_TEST

/* Equal d is not "helped": the comparison is strict. */
START_TEST(test_summary_ties)
{
    ev_record r[2] = {mk(0.5, 0.5, -1, -1), mk(0.25, 0.5, -1, -1)};
    ev_summary s;
    ev_summarize(r, 2, &s);
    ck_assert_int_eq(s.n_helped, 1);
}
END_TEST

static char tmpdir[64];

static const char *write_tmp(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Inputs are checked before the model is opened, with the role named. */
START_TEST(test_run_errors)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/check_ev.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char good[128], empty[128];
    snprintf(good, sizeof good, "%s",
             write_tmp("good.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n"));
    snprintf(empty, sizeof empty, "%s", write_tmp("empty.jsonl", ""));
    ev_params p;
    ev_params_init(&p);
    ev_report *r = (ev_report *)1;
    dl_error err;

    dl_error_clear(&err); /* no model */
    p.subset_path = p.heldout_path = good;
    ck_assert_int_eq(ev_run(&p, &r, &err), DL_ERR_USAGE);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(err.field, "model");

    dl_error_clear(&err); /* no held-out file */
    p.model_path = "/nonexistent/model.gguf";
    p.heldout_path = NULL;
    ck_assert_int_eq(ev_run(&p, &r, &err), DL_ERR_USAGE);
    ck_assert_str_eq(err.field, "heldout");

    dl_error_clear(&err); /* empty subset: bad input naming the file */
    p.subset_path = empty;
    p.heldout_path = good;
    ck_assert_int_eq(ev_run(&p, &r, &err), DL_ERR_INPUT);
    ck_assert_str_eq(err.file, empty);
    ck_assert_str_eq(err.field, "subset");

    dl_error_clear(&err); /* a bad template, before any file */
    p.subset_path = good;
    p.ut.tpl_noicl = "no placeholder";
    ck_assert_int_eq(ev_run(&p, &r, &err), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(err.field, "template"));
    p.ut.tpl_noicl = NULL;

    dl_error_clear(&err); /* both files fine, the model missing: its path named */
    ck_assert_int_ne(ev_run(&p, &r, &err), DL_OK);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(err.file, "/nonexistent/model.gguf");

    ev_report_free(NULL);
    unlink(good);
    unlink(empty);
    rmdir(tmpdir);
}
END_TEST

static Suite *ev_suite(void)
{
    Suite *s = suite_create("ev");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_summary_hand);
    tcase_add_test(tc, test_summary_empty);
    tcase_add_test(tc, test_summary_ties);
    tcase_add_test(tc, test_run_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(ev_suite());
}
