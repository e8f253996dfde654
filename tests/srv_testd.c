/* srv_testd.c: delift-server with a TEST executor, for tests/srv_e2e.sh.
 *
 * The real daemon (srv_app_main) with one difference: a stand-in executor
 * that needs no model, so the job runner (queue, progress, cancel,
 * checkpoints, durability, results) can be tested before the selection
 * pipeline exists.  It lives in tests/ only and is never installed.
 *
 * What a test job does (all knobs are spec options):
 *   test_steps (10)    steps of work, progress phase "pairs", done/total
 *   test_step_ms (10)  milliseconds per step; cancel is polled every step
 *   test_fail          a string: fail at the start with that message
 *                      (DL_ERR_INPUT, field "options.test_fail")
 * It checkpoints the number of finished steps in checkpoint/step after
 * every step and resumes from it.  Its "selection" is independent of any
 * scoring, so a test can predict it: the last k records of the pool in
 * reverse order, k = budget (or floor(budget * n) for a fraction).
 * Outputs: ranking.json {"selected":[{"id","rank","gain"}], "n", "k"},
 * selected.jsonl (raw records), manifest.json {"executor":"test",
 * "spec", "resumed_from", "pool_records"}.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dl_file.h"
#include "rec.h"
#include "srv_app.h"

typedef struct test_rec {
    char *id;
    char *raw;
} test_rec;

static void recs_free(test_rec *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        free(v[i].id);
        free(v[i].raw);
    }
    free(v);
}

static dl_status read_pool(const char *path, test_rec **out, int64_t *n, dl_error *err)
{
    rec_reader *r = NULL;
    *out = NULL;
    *n = 0;
    dl_status st = rec_reader_open(path, NULL, &r, err);
    const rec_record *rec;
    int64_t cap = 0;
    while (st == DL_OK && (st = rec_reader_next(r, &rec, err)) == DL_OK && rec) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            test_rec *p = realloc(*out, (size_t)cap * sizeof *p);
            if (!p) {
                st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
                break;
            }
            *out = p;
        }
        (*out)[*n].id = strdup(rec->id);
        (*out)[*n].raw = strdup(rec->raw);
        (*n)++;
    }
    rec_reader_free(r);
    return st;
}

static int64_t opt_int(const json_t *spec, const char *key, int64_t def)
{
    const json_t *v = json_object_get(json_object_get(spec, "options"), key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static dl_status write_json(const char *dir, const char *name, json_t *v, dl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    if (!text)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    dl_status st = dl_file_write_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

static dl_status write_outputs(const srv_job_run *job, test_rec *recs, int64_t n,
                               int64_t resumed_from, dl_error *err)
{
    const json_t *b = json_object_get(job->spec, "budget");
    int64_t k = json_is_integer(b) ? (int64_t)json_integer_value(b)
                                   : (int64_t)floor(json_real_value(b) * (double)n);
    if (k > n)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "budget",
                               "the budget is larger than the pool (%lld records)", (long long)n);
    json_t *sel = json_array();
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", job->output_dir, SRV_OUT_RECORDS);
    FILE *f = fopen(path, "wb");
    if (!f) {
        json_decref(sel);
        return dl_error_set(err, DL_ERR_IO, "cannot write the records");
    }
    for (int64_t i = 0; i < k; i++) {
        const test_rec *t = &recs[n - 1 - i];
        json_array_append_new(sel, json_pack("{s:s, s:I, s:f}", "id", t->id, "rank",
                                             (json_int_t)i, "gain", 1.0 / (double)(i + 1)));
        fprintf(f, "%s\n", t->raw);
    }
    if (fclose(f) != 0) {
        json_decref(sel);
        return dl_error_set(err, DL_ERR_IO, "cannot write the records");
    }
    dl_status st = write_json(job->output_dir, SRV_OUT_RANKING,
                              json_pack("{s:o, s:I, s:I}", "selected", sel, "n", (json_int_t)n,
                                        "k", (json_int_t)k), err);
    if (st == DL_OK)
        st = write_json(job->output_dir, SRV_OUT_MANIFEST,
                        json_pack("{s:s, s:O, s:I, s:I}", "executor", "test", "spec", job->spec,
                                  "resumed_from", (json_int_t)resumed_from, "pool_records",
                                  (json_int_t)n), err);
    return st;
}

static int64_t read_step(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/step", dir);
    FILE *f = fopen(path, "r");
    long long s = 0;
    if (f) {
        if (fscanf(f, "%lld", &s) != 1)
            s = 0;
        fclose(f);
    }
    return s;
}

static dl_status test_run(void *self, const srv_job_run *job, dl_error *err)
{
    (void)self;
    const char *fail = json_string_value(
        json_object_get(json_object_get(job->spec, "options"), "test_fail"));
    if (fail)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, 0, 0, -1, "options.test_fail", "%s",
                               fail);
    test_rec *recs;
    int64_t n;
    dl_status st = read_pool(job->pool_path, &recs, &n, err);
    if (st != DL_OK)
        return st;
    int64_t steps = opt_int(job->spec, "test_steps", 10);
    int64_t ms = opt_int(job->spec, "test_step_ms", 10);
    int64_t start = read_step(job->checkpoint_dir);
    char path[4200], num[32];
    snprintf(path, sizeof path, "%s/step", job->checkpoint_dir);
    for (int64_t s = start; s < steps && st == DL_OK; s++) {
        job->progress(job->progress_ctx, "pairs", s, steps);
        if (atomic_load(job->cancel)) {
            st = dl_error_set(err, DL_ERR_CANCELLED, "cancelled");
            break;
        }
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        snprintf(num, sizeof num, "%lld\n", (long long)(s + 1));
        st = dl_file_write_atomic(path, num, strlen(num), err);
    }
    if (st == DL_OK) {
        job->progress(job->progress_ctx, "pairs", steps, steps);
        st = write_outputs(job, recs, n, start, err);
    }
    recs_free(recs, n);
    return st;
}

int main(int argc, char **argv)
{
    static const srv_executor test_exec = {"test", NULL, test_run, NULL};
    return srv_app_main(argc, argv, &test_exec);
}
