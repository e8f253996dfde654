/* check_srv_select.c: unit tests of delift-server's selection executor
 * (server/srv_exec_select.h): the spec -> ds_params mapping, the ranking
 * conversion, path scrubbing, and run() itself on the bundled model
 * (data/delift-mini-q8_0.gguf) for its outputs and its error bodies.  The
 * daemon end to end, against `delift select`, is tests/srv_select_e2e.sh. */
#include "config.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl_test.h"
#include "srv_exec_select.h"

/* ---- helpers --------------------------------------------------------------- */

static json_t *spec_parse(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    ck_assert_msg(v != NULL, "bad test JSON: %s", text);
    return v;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq((long)fread(s, 1, (size_t)n, f), n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[4096];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

/* ---- spec -> ds_params ------------------------------------------------------ */

START_TEST(test_params_every_option)
{
    json_t *spec = spec_parse(
        "{\"model\":\"mini\",\"stage\":\"task\",\"budget\":0.25,\"function\":\"flqmi\","
        "\"pool\":\"p\",\"target\":\"t\",\"existing\":null,\"pairs\":\"knn:16\","
        "\"options\":{\"optimizer\":\"stochastic\",\"eta\":2,\"nu\":0.5,\"lambda\":0.75,"
        "\"epsilon\":0.125,\"seed\":42,\"stop_at_zero\":true,\"bos\":true,\"threads\":3,"
        "\"truncate_quantum\":8,\"fast\":true,"
        "\"backend\":\"ref\",\"template_noicl\":\"Q: {p_i}\\n\","
        "\"template_icl\":\"E: {p_j} {r_j}\\nQ: {p_i}\\n\"}}");
    ds_params p;
    ds_params_init(&p);
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(srv_select_params_from_spec(spec, &p, &e), DL_OK);
    ck_assert_int_eq(p.stage, DS_STAGE_TASK);
    ck_assert(p.budget == 0.25);
    ck_assert_str_eq(p.function, "flqmi");
    ck_assert_int_eq(p.pairs, 16);
    ck_assert_str_eq(p.optimizer, "stochastic");
    ck_assert(p.eta == 2.0 && p.nu == 0.5 && p.lambda == 0.75 && p.epsilon == 0.125);
    ck_assert_uint_eq(p.seed, 42);
    ck_assert_int_eq(p.stop_at_zero, 1);
    ck_assert_int_eq(p.ut.add_bos, 1);
    ck_assert_int_eq(p.threads, 3);
    ck_assert_int_eq(p.ut.trunc_quantum, 8);
    ck_assert_str_eq(p.backend, "ref");
    ck_assert_int_eq(p.fast, 1);
    ck_assert_str_eq(p.ut.tpl_noicl, "Q: {p_i}\n");
    ck_assert_str_eq(p.ut.tpl_icl, "E: {p_j} {r_j}\nQ: {p_i}\n");
    /* paths, hooks and outputs are the caller's */
    ck_assert_ptr_null(p.model_path);
    ck_assert_ptr_null(p.pool_path);
    ck_assert_ptr_null(p.cache_path);
    ck_assert_ptr_null(p.out_subset);
    json_decref(spec);
}
END_TEST

START_TEST(test_params_defaults)
{
    /* No options, no function, no pairs: everything stays as ds_params_init. */
    json_t *spec = spec_parse("{\"model\":\"m\",\"stage\":\"continual\",\"budget\":7,"
                              "\"pool\":\"p\",\"existing\":\"x\",\"options\":{}}");
    ds_params p, ref;
    ds_params_init(&p);
    ds_params_init(&ref);
    ck_assert_int_eq(srv_select_params_from_spec(spec, &p, NULL), DL_OK);
    ck_assert_int_eq(p.stage, DS_STAGE_CONTINUAL);
    ck_assert(p.budget == 7.0);
    ck_assert_ptr_null(p.function);
    ck_assert_int_eq(p.pairs, DS_PAIRS_AUTO);
    ck_assert_ptr_null(p.optimizer);
    ck_assert(p.eta == ref.eta && p.nu == ref.nu && p.lambda == ref.lambda &&
              p.epsilon == ref.epsilon);
    ck_assert_uint_eq(p.seed, ref.seed);
    ck_assert_int_eq(p.stop_at_zero, ref.stop_at_zero);
    ck_assert_int_eq(p.ut.add_bos, ref.ut.add_bos);
    ck_assert_int_eq(p.threads, ref.threads);
    ck_assert_int_eq(p.fast, 0);
    ck_assert_int_eq(p.ut.trunc_quantum, 0); /* the default */
    ck_assert_ptr_null(p.ut.tpl_icl);
    json_decref(spec);
    spec = spec_parse("{\"model\":\"m\",\"stage\":\"instruction\",\"budget\":1,\"pool\":\"p\","
                      "\"function\":null,\"pairs\":\"all\",\"options\":{\"bos\":false}}");
    ds_params_init(&p);
    ck_assert_int_eq(srv_select_params_from_spec(spec, &p, NULL), DL_OK);
    ck_assert_int_eq(p.pairs, DS_PAIRS_ALL);
    ck_assert_ptr_null(p.function);
    ck_assert_int_eq(p.ut.add_bos, 0);
    json_decref(spec);
}
END_TEST

typedef struct bad_case {
    const char *spec;
    const char *field; /* what err->field must name */
} bad_case;

#define SPEC_OPT(o) "{\"model\":\"m\",\"stage\":\"instruction\",\"budget\":2,\"pool\":\"p\"," \
                    "\"options\":{" o "}}"
static const bad_case bad_cases[] = {
    {SPEC_OPT("\"colour\":\"red\""), "options.colour"},
    {SPEC_OPT("\"seed\":1,\"Seed\":2"), "options.Seed"},
    {SPEC_OPT("\"eta\":\"1\""), "options.eta"},
    {SPEC_OPT("\"nu\":true"), "options.nu"},
    {SPEC_OPT("\"seed\":-1"), "options.seed"},
    {SPEC_OPT("\"seed\":1.5"), "options.seed"},
    {SPEC_OPT("\"threads\":-1"), "options.threads"},
    {SPEC_OPT("\"threads\":4097"), "options.threads"},
    {SPEC_OPT("\"threads\":2.0"), "options.threads"},
    {SPEC_OPT("\"truncate_quantum\":0"), "options.truncate_quantum"},
    {SPEC_OPT("\"truncate_quantum\":4097"), "options.truncate_quantum"},
    {SPEC_OPT("\"truncate_quantum\":\"32\""), "options.truncate_quantum"},
    {SPEC_OPT("\"bos\":1"), "options.bos"},
    {SPEC_OPT("\"stop_at_zero\":\"yes\""), "options.stop_at_zero"},
    {SPEC_OPT("\"fast\":1"), "options.fast"},
    {SPEC_OPT("\"optimizer\":3"), "options.optimizer"},
    {SPEC_OPT("\"backend\":false"), "options.backend"},
    {SPEC_OPT("\"template_icl\":true"), "options.template_icl"},
    {SPEC_OPT("\"template_noicl\":1"), "options.template_noicl"},
    {"{\"stage\":\"bogus\",\"budget\":2}", "stage"},
    {"{\"stage\":\"task\"}", "budget"},
    {"{\"stage\":\"task\",\"budget\":0}", "budget"},
    {"{\"stage\":\"task\",\"budget\":\"3\"}", "budget"},
    {"{\"stage\":\"task\",\"budget\":3,\"pairs\":\"knn:0\"}", "pairs"},
    {"{\"stage\":\"task\",\"budget\":3,\"pairs\":7}", "pairs"},
    {"{\"stage\":\"task\",\"budget\":3,\"function\":7}", "function"},
    {"{\"stage\":\"task\",\"budget\":3,\"options\":[]}", "options"},
};

START_TEST(test_params_bad)
{
    const bad_case *c = &bad_cases[_i];
    json_t *spec = spec_parse(c->spec);
    ds_params p;
    ds_params_init(&p);
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(srv_select_params_from_spec(spec, &p, &e), DL_ERR_USAGE);
    ck_assert_msg(!strcmp(e.field, c->field), "%s: field '%s', want '%s'", c->spec, e.field,
                  c->field);
    ck_assert(e.message[0] != '\0');
    json_decref(spec);
}
END_TEST

/* ---- ranking conversion ---------------------------------------------------------- */

static char tmpdir[256];

static void tmp_setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/check_srv_select.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
    rm_rf(tmpdir);
}

START_TEST(test_ranking_convert)
{
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/r.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/ranking.json", tmpdir);
    write_text(in, "{\"rank\":1,\"id\":\"b\",\"index\":1,\"gain\":0.5}\n"
                   "{\"gain\":0.25,\"index\":0,\"id\":\"a\",\"rank\":2,\"extra\":1}\n"
                   "{\"rank\":3,\"id\":\"c d\",\"index\":9,\"gain\":-1e-3}\n");
    ck_assert_int_eq(srv_select_ranking_convert(in, 10, out, NULL), DL_OK);
    json_t *got = json_load_file(out, 0, NULL);
    json_t *want = spec_parse("{\"selected\":[{\"rank\":1,\"id\":\"b\",\"index\":1,\"gain\":0.5},"
                              "{\"rank\":2,\"id\":\"a\",\"index\":0,\"gain\":0.25},"
                              "{\"rank\":3,\"id\":\"c d\",\"index\":9,\"gain\":-0.001}],"
                              "\"n\":10,\"k\":3}");
    ck_assert(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    /* zero-based and empty rankings */
    write_text(in, "{\"rank\":0,\"id\":\"x\",\"index\":0,\"gain\":1}\n");
    ck_assert_int_eq(srv_select_ranking_convert(in, 1, out, NULL), DL_OK);
    got = json_load_file(out, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "k")), 1);
    json_decref(got);
    write_text(in, "");
    ck_assert_int_eq(srv_select_ranking_convert(in, 5, out, NULL), DL_OK);
    got = json_load_file(out, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(got, "selected")), 0);
    json_decref(got);
}
END_TEST

static const char *const bad_rankings[] = {
    "{\"rank\":1,\"index\":1,\"gain\":0.5}\n",                 /* no id */
    "{\"rank\":1,\"id\":\"a\",\"index\":1}\n",                  /* no gain */
    "{\"rank\":1,\"id\":\"a\",\"index\":-1,\"gain\":1}\n",      /* negative index */
    "{\"rank\":1,\"id\":3,\"index\":1,\"gain\":1}\n",           /* id not a string */
    "{\"rank\":\"1\",\"id\":\"a\",\"index\":1,\"gain\":1}\n",   /* rank not an integer */
    "{\"rank\":5,\"id\":\"a\",\"index\":1,\"gain\":1}\n",       /* does not start at 0/1 */
    "{\"rank\":1,\"id\":\"a\",\"index\":1,\"gain\":1}\n"
    "{\"rank\":3,\"id\":\"b\",\"index\":2,\"gain\":1}\n",       /* a gap */
    "{\"rank\":1,\"id\":\"a\",\"index\":1,\"gain\":1}\n{oops\n", /* not JSON */
    "[1,2]\n",
};

START_TEST(test_ranking_bad)
{
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/r.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/ranking.json", tmpdir);
    write_text(in, bad_rankings[_i]);
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(srv_select_ranking_convert(in, 3, out, &e), DL_ERR_INTERNAL);
    ck_assert_ptr_null(strstr(e.message, tmpdir));
    ck_assert_int_eq(access(out, F_OK), -1); /* nothing half written */
    ck_assert_int_eq(count_entries(tmpdir), 1);
}
END_TEST

START_TEST(test_ranking_missing)
{
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/none.jsonl", tmpdir);
    snprintf(out, sizeof out, "%s/ranking.json", tmpdir);
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(srv_select_ranking_convert(in, 3, out, &e), DL_ERR_INTERNAL);
    ck_assert_ptr_null(strstr(e.message, tmpdir));
    ck_assert_int_eq(access(out, F_OK), -1);
}
END_TEST

/* ---- scrubbing ------------------------------------------------------------------ */

START_TEST(test_scrub)
{
    const srv_select_alias a[] = {
        {"/srv/data/jobs/j1", "job"},
        {"/srv/data/jobs/j1/checkpoint", "checkpoint"},
        {"/srv/data/datasets/abc.jsonl", "pool"},
        {NULL, "never"},
        {"", "never"},
    };
    const size_t n = sizeof a / sizeof a[0];
    struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"no path here", "no path here"},
        {"/srv/data/datasets/abc.jsonl:3: bad", "pool:3: bad"},
        {"x /srv/data/jobs/j1/checkpoint/r.jsonl y", "x checkpoint/r.jsonl y"},
        {"/srv/data/jobs/j1/out", "job/out"},
        {"a /srv/data/datasets/abc.jsonl and /srv/data/datasets/abc.jsonl",
         "a pool and pool"},
        {"/srv/data/cache/scores.sqlite: locked", "<data>/cache/scores.sqlite: locked"},
        {"/srv/database", "<data>base"}, /* a bare prefix: over-scrubbing is the safe side */
        {"/srv/dat", "/srv/dat"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = srv_select_scrub(cases[i].in, a, n, "/srv/data");
        ck_assert_ptr_nonnull(s);
        ck_assert_msg(!strcmp(s, cases[i].want), "scrub('%s') = '%s', want '%s'", cases[i].in, s,
                      cases[i].want);
        free(s);
    }
    char *s = srv_select_scrub("/srv/data/x", NULL, 0, NULL);
    ck_assert_str_eq(s, "/srv/data/x");
    free(s);
}
END_TEST

START_TEST(test_exec_object)
{
    srv_select_exec_free(NULL);
    srv_select_exec *x = NULL;
    ck_assert_int_eq(srv_select_exec_new(NULL, &x, NULL), DL_OK);
    const srv_executor *ex = srv_select_exec_executor(x);
    ck_assert_str_eq(ex->name, "delift-select");
    ck_assert_ptr_eq(ex->self, x);
    ck_assert_ptr_nonnull(ex->run);
    srv_select_exec_free(x);
    srv_select_config cfg = {.cache_path = "/tmp/c.sqlite", .private_root = "/srv/data//"};
    ck_assert_int_eq(srv_select_exec_new(&cfg, &x, NULL), DL_OK);
    srv_select_exec_free(x);
}
END_TEST

/* ---- run() on the bundled model ------------------------------------------------ */

/* The bundled model, or the shared copy; NULL: the run tests skip. */
static const char *model_file(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s", dl_test_src("data/delift-mini-q8_0.gguf"));
    if (access(path, R_OK) == 0)
        return path;
    const char *shared = dl_test_shared("models/delift-mini-q8_0.gguf");
    return shared;
}

typedef struct run_fixture {
    char pool[512], model_bad[512], cache[512], ckpt[512], out[512];
    char phases[16][16]; /* distinct phases in the order first seen */
    int n_phases;
    int64_t pairs_done, pairs_total;
    atomic_int cancel;
    int64_t threads; /* the executor's default threads */
} run_fixture;

static run_fixture fx;

static void on_progress(void *ctx, const char *phase, int64_t done, int64_t total)
{
    run_fixture *f = ctx;
    if (f->n_phases == 0 || strcmp(f->phases[f->n_phases - 1], phase) != 0) {
        ck_assert_int_lt(f->n_phases, 16);
        snprintf(f->phases[f->n_phases++], sizeof f->phases[0], "%s", phase);
    }
    if (!strcmp(phase, "pairs")) {
        f->pairs_done = done;
        f->pairs_total = total;
    }
}

/* Four short records: quick to score, distinct enough to rank. */
static const char *const pool_lines[] = {
    "{\"id\":\"a\",\"instruction\":\"Add 2 and 3.\",\"input\":\"\",\"output\":\"5\"}",
    "{\"id\":\"b\",\"instruction\":\"Add 4 and 1.\",\"input\":\"\",\"output\":\"5\"}",
    "{\"id\":\"c\",\"instruction\":\"Name a colour.\",\"input\":\"\",\"output\":\"Blue.\"}",
    "{\"id\":\"d\",\"instruction\":\"Translate to French.\",\"input\":\"cat\",\"output\":\"chat\"}",
};

static void run_setup(void)
{
    tmp_setup();
    memset(&fx, 0, sizeof fx);
    atomic_init(&fx.cancel, 0);
    snprintf(fx.pool, sizeof fx.pool, "%s/pool.jsonl", tmpdir);
    snprintf(fx.model_bad, sizeof fx.model_bad, "%s/bad.gguf", tmpdir);
    snprintf(fx.cache, sizeof fx.cache, "%s/cache/scores.sqlite", tmpdir);
    snprintf(fx.ckpt, sizeof fx.ckpt, "%s/ckpt", tmpdir);
    snprintf(fx.out, sizeof fx.out, "%s/out", tmpdir);
    FILE *f = fopen(fx.pool, "wb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < 4; i++)
        fprintf(f, "%s\n", pool_lines[i]);
    ck_assert_int_eq(fclose(f), 0);
    write_text(fx.model_bad, "GGUF but not really a model");
    ck_assert_int_eq(mkdir(fx.ckpt, 0700), 0);
    ck_assert_int_eq(mkdir(fx.out, 0700), 0);
}

/* Runs the executor on spec_text with the fixture's files. */
static dl_status run_spec(const char *spec_text, const char *model, dl_error *e)
{
    json_t *spec = spec_parse(spec_text);
    srv_select_config cfg = {.cache_path = fx.cache, .private_root = tmpdir,
                             .threads = fx.threads};
    srv_select_exec *x = NULL;
    ck_assert_int_eq(srv_select_exec_new(&cfg, &x, NULL), DL_OK);
    const srv_executor *ex = srv_select_exec_executor(x);
    srv_job_run job = {
        .job_id = "j1", .spec = spec, .model_path = model, .pool_path = fx.pool,
        .checkpoint_dir = fx.ckpt, .output_dir = fx.out, .cancel = &fx.cancel,
        .progress = on_progress, .progress_ctx = &fx,
    };
    dl_error_clear(e);
    dl_status st = ex->run(ex->self, &job, e);
    srv_select_exec_free(x);
    json_decref(spec);
    return st;
}

#define SPEC_RUN(budget, opts)                                                                     \
    "{\"model\":\"mini\",\"stage\":\"instruction\",\"budget\":" budget ",\"function\":\"fl\","   \
    "\"pool\":\"p0\",\"target\":null,\"existing\":null,\"pairs\":\"all\",\"options\":{" opts "}}"

/* The pool's line i (0-based), newline included, from the file itself. */
static void pool_line(int64_t i, char *buf, size_t n)
{
    FILE *f = fopen(fx.pool, "rb");
    ck_assert_ptr_nonnull(f);
    for (int64_t k = 0; k <= i; k++)
        ck_assert_ptr_nonnull(fgets(buf, (int)n, f));
    fclose(f);
}

START_TEST(test_run_outputs)
{
    const char *model = model_file();
    if (!model)
        return; /* neither copy of the model: nothing to run */
    dl_error e;
    dl_status st = run_spec(SPEC_RUN("2", "\"threads\":1"), model, &e);
    ck_assert_msg(st == DL_OK, "run: %s", e.message);
    /* exactly the three outputs, and nothing left in the checkpoint dir */
    ck_assert_int_eq(count_entries(fx.out), 3);
    ck_assert_int_eq(count_entries(fx.ckpt), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fx.out, SRV_OUT_RANKING);
    json_t *rk = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(rk);
    ck_assert_int_eq(json_integer_value(json_object_get(rk, "n")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(rk, "k")), 2);
    const json_t *sel = json_object_get(rk, "selected");
    ck_assert_int_eq(json_array_size(sel), 2);
    /* selected.jsonl: the pool's own lines at the ranking's indices */
    snprintf(path, sizeof path, "%s/%s", fx.out, SRV_OUT_RECORDS);
    char *records = read_text(path), want[2048] = "", line[1024];
    ck_assert_ptr_nonnull(records);
    for (size_t r = 0; r < 2; r++) {
        const json_t *ent = json_array_get(sel, r);
        int64_t idx = json_integer_value(json_object_get(ent, "index"));
        ck_assert(idx >= 0 && idx < 4);
        ck_assert_int_eq(json_integer_value(json_object_get(ent, "rank")), (int64_t)r);
        pool_line(idx, line, sizeof line);
        ck_assert_ptr_nonnull(strstr(line, json_string_value(json_object_get(ent, "id"))));
        strcat(want, line);
    }
    ck_assert_str_eq(records, want);
    free(records);
    /* the manifest: the job's names, never a path of this machine */
    snprintf(path, sizeof path, "%s/%s", fx.out, SRV_OUT_MANIFEST);
    char *mtext = read_text(path);
    ck_assert_ptr_nonnull(mtext);
    ck_assert_msg(strstr(mtext, tmpdir) == NULL, "manifest leaks a path: %s", mtext);
    ck_assert_ptr_null(strstr(mtext, model));
    json_t *m = json_loads(mtext, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(m, "executor")), "delift-select");
    ck_assert_str_eq(json_string_value(json_object_get(m, "job")), "j1");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "spec"), "pool")), "p0");
    json_t *sp = json_loads(SPEC_RUN("2", "\"threads\":1"), 0, NULL);
    ck_assert(json_equal(json_object_get(m, "spec"), sp));
    json_decref(sp);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "stats"),
                                                        "pairs_cached")), 0);
    json_decref(m);
    free(mtext);
    /* phases in order, pairs complete (4 x 4) */
    static const char *const want_phases[] = {"load", "model", "noicl", "pairs", "select",
                                              "write"};
    ck_assert_int_eq(fx.n_phases, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(fx.phases[i], want_phases[i]);
    ck_assert_int_eq(fx.pairs_total, 16);
    ck_assert_int_eq(fx.pairs_done, 16);

    /* A second job over the same records finds every score in the shared
     * cache and, greedy being prefix-consistent, ranks the same first record. */
    rm_rf(fx.out);
    ck_assert_int_eq(mkdir(fx.out, 0700), 0);
    fx.threads = 1; /* the executor's default, as no option is given this time */
    st = run_spec(SPEC_RUN("1", ""), model, &e);
    ck_assert_msg(st == DL_OK, "second run: %s", e.message);
    snprintf(path, sizeof path, "%s/%s", fx.out, SRV_OUT_MANIFEST);
    m = json_load_file(path, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "engine"),
                                                        "threads")), 1);
    const json_t *stats = json_object_get(m, "stats");
    ck_assert_int_gt(json_integer_value(json_object_get(stats, "pairs_total")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(stats, "pairs_cached")),
                     json_integer_value(json_object_get(stats, "pairs_total")));
    json_decref(m);
    snprintf(path, sizeof path, "%s/%s", fx.out, SRV_OUT_RANKING);
    json_t *rk1 = json_load_file(path, 0, NULL);
    ck_assert(json_equal(json_array_get(json_object_get(rk1, "selected"), 0),
                         json_array_get(sel, 0)));
    json_decref(rk1);
    json_decref(rk);
}
END_TEST

/* A failed run leaves no output and its error names no path. */
static void expect_run_error(const char *spec, const char *model, dl_status code,
                             const char *field, const char *msg_prefix)
{
    dl_error e;
    dl_status st = run_spec(spec, model, &e);
    ck_assert_msg(st == code, "%s: got %s (%s), want %s", spec, dl_status_name(st), e.message,
                  dl_status_name(code));
    ck_assert_int_eq(e.code, code);
    if (field)
        ck_assert_msg(!strcmp(e.field, field), "%s: field '%s', want '%s'", spec, e.field, field);
    ck_assert_msg(!strstr(e.message, tmpdir) && !strstr(e.file, tmpdir),
                  "error leaks a path: %s / %s", e.file, e.message);
    if (msg_prefix)
        ck_assert_msg(!strncmp(e.message, msg_prefix, strlen(msg_prefix)), "message '%s'",
                      e.message);
    ck_assert_int_eq(count_entries(fx.out), 0);
    ck_assert_int_eq(count_entries(fx.ckpt), 0);
}

START_TEST(test_run_errors)
{
    const char *model = model_file();
    /* checked before ds_run: no model needed */
    expect_run_error(SPEC_RUN("2", "\"colour\":1"), fx.model_bad, DL_ERR_USAGE, "options.colour",
                     NULL);
    expect_run_error(SPEC_RUN("2", "\"seed\":-3"), fx.model_bad, DL_ERR_USAGE, "options.seed",
                     NULL);
    /* found by the pipeline before it loads the model */
    expect_run_error(SPEC_RUN("5", ""), fx.model_bad, DL_ERR_USAGE, "budget", NULL);
    expect_run_error(SPEC_RUN("2", "\"template_icl\":\"no placeholder\""), fx.model_bad,
                     DL_ERR_USAGE, "options.template_icl", NULL);
    /* a model file that is not one: named by its role, never by its path */
    dl_error e;
    ck_assert_int_ne(run_spec(SPEC_RUN("2", ""), fx.model_bad, &e), DL_OK);
    ck_assert_msg(!strstr(e.message, tmpdir), "leak: %s", e.message);
    ck_assert_msg(!strncmp(e.message, "model: ", 7), "message '%s'", e.message);
    /* a pool the pipeline refuses (duplicate ids): "pool: ..." with the line */
    write_text(fx.pool, "{\"id\":\"x\",\"instruction\":\"a\",\"output\":\"b\"}\n"
                        "{\"id\":\"x\",\"instruction\":\"c\",\"output\":\"d\"}\n");
    ck_assert_int_eq(run_spec(SPEC_RUN("1", ""), fx.model_bad, &e), DL_ERR_INPUT);
    ck_assert_msg(!strstr(e.message, tmpdir), "leak: %s", e.message);
    ck_assert_msg(!strncmp(e.message, "pool: ", 6), "message '%s'", e.message);
    ck_assert_int_eq(e.line, 2);
    if (!model)
        return;
    /* model-dependent: an unknown optimizer is found after scoring */
    FILE *f = fopen(fx.pool, "wb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < 4; i++)
        fprintf(f, "%s\n", pool_lines[i]);
    ck_assert_int_eq(fclose(f), 0);
    expect_run_error(SPEC_RUN("2", "\"optimizer\":\"bogus\",\"threads\":1"), model,
                     DL_ERR_USAGE, "options.optimizer", NULL);
}
END_TEST

START_TEST(test_run_cancelled)
{
    const char *model = model_file();
    if (!model)
        return;
    atomic_store(&fx.cancel, 1);
    dl_error e;
    ck_assert_int_eq(run_spec(SPEC_RUN("2", "\"threads\":1"), model, &e), DL_ERR_CANCELLED);
    ck_assert_int_eq(count_entries(fx.out), 0);
}
END_TEST

Suite *srv_select_suite(void);
Suite *srv_select_suite(void)
{
    Suite *s = suite_create("srv_select");
    TCase *tc = tcase_create("mapping");
    tcase_add_test(tc, test_params_every_option);
    tcase_add_test(tc, test_params_defaults);
    tcase_add_loop_test(tc, test_params_bad, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_scrub);
    tcase_add_test(tc, test_exec_object);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("ranking");
    tcase_add_checked_fixture(tr, tmp_setup, tmp_teardown);
    tcase_add_test(tr, test_ranking_convert);
    tcase_add_loop_test(tr, test_ranking_bad, 0,
                        (int)(sizeof bad_rankings / sizeof bad_rankings[0]));
    tcase_add_test(tr, test_ranking_missing);
    suite_add_tcase(s, tr);
    TCase *tx = tcase_create("run");
    tcase_set_timeout(tx, 120);
    tcase_add_checked_fixture(tx, run_setup, tmp_teardown);
    tcase_add_test(tx, test_run_outputs);
    tcase_add_test(tx, test_run_errors);
    tcase_add_test(tx, test_run_cancelled);
    suite_add_tcase(s, tx);
    return s;
}

int main(void)
{
    return dl_test_run(srv_select_suite());
}
