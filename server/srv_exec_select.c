/* srv_exec_select.c: delift-server's real executor: a job spec in, ds_run,
 * the three output files out (see srv_exec_select.h). */
#include "config.h"

#include "srv_exec_select.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dl_file.h"
#include "sel.h"
#include "ut.h"

struct srv_select_exec {
    srv_executor exec; /* exec.self points back here */
    char *cache_path;  /* owned, NULL: no cache */
    char *private_root;/* owned, no trailing '/', NULL: none */
    int64_t threads;   /* default of options.threads */
};

/* ---- options -------------------------------------------------------------- */

typedef enum opt_kind {
    OPT_STRING,
    OPT_DOUBLE,
    OPT_SEED,
    OPT_THREADS,
    OPT_QUANTUM,
    OPT_BOOL
} opt_kind;

typedef struct opt_def {
    const char *name; /* the member of spec.options */
    opt_kind kind;
    size_t offset;    /* of the ds_params member it sets */
} opt_def;

/* Every option a job may give; the member types follow ds_params. */
static const opt_def opt_defs[] = {
    {"optimizer", OPT_STRING, offsetof(ds_params, optimizer)},
    {"eta", OPT_DOUBLE, offsetof(ds_params, eta)},
    {"nu", OPT_DOUBLE, offsetof(ds_params, nu)},
    {"lambda", OPT_DOUBLE, offsetof(ds_params, lambda)},
    {"epsilon", OPT_DOUBLE, offsetof(ds_params, epsilon)},
    {"seed", OPT_SEED, offsetof(ds_params, seed)},
    {"stop_at_zero", OPT_BOOL, offsetof(ds_params, stop_at_zero)},
    {"bos", OPT_BOOL, offsetof(ds_params, ut.add_bos)},
    {"truncate_quantum", OPT_QUANTUM, offsetof(ds_params, ut.trunc_quantum)},
    {"threads", OPT_THREADS, offsetof(ds_params, threads)},
    {"backend", OPT_STRING, offsetof(ds_params, backend)},
    {"fast", OPT_BOOL, offsetof(ds_params, fast)},
    {"template_noicl", OPT_STRING, offsetof(ds_params, ut.tpl_noicl)},
    {"template_icl", OPT_STRING, offsetof(ds_params, ut.tpl_icl)},
};
#define N_OPTS (sizeof opt_defs / sizeof opt_defs[0])
#define THREADS_MAX 4096

static const opt_def *opt_find(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (!strcmp(opt_defs[i].name, name))
            return &opt_defs[i];
    return NULL;
}

static dl_status opt_bad(dl_error *err, const char *name, const char *what)
{
    char field[DL_ERROR_FIELD_MAX];
    snprintf(field, sizeof field, "options.%.100s", name);
    return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, field, "%s", what);
}

/* Stores one option value into *p (the member at def->offset). */
static dl_status opt_apply(const opt_def *def, const json_t *v, ds_params *p, dl_error *err)
{
    char *dst = (char *)p + def->offset;
    switch (def->kind) {
    case OPT_STRING:
        if (!json_is_string(v))
            return opt_bad(err, def->name, "must be a string");
        *(const char **)(void *)dst = json_string_value(v);
        return DL_OK;
    case OPT_DOUBLE:
        if (!json_is_number(v))
            return opt_bad(err, def->name, "must be a number");
        *(double *)(void *)dst = json_number_value(v);
        return DL_OK;
    case OPT_SEED:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return opt_bad(err, def->name, "must be an integer >= 0");
        *(uint64_t *)(void *)dst = (uint64_t)json_integer_value(v);
        return DL_OK;
    case OPT_THREADS:
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > THREADS_MAX)
            return opt_bad(err, def->name, "must be an integer in 0..4096 (0: every CPU)");
        *(int64_t *)(void *)dst = (int64_t)json_integer_value(v);
        return DL_OK;
    case OPT_QUANTUM:
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > UT_TRUNC_QUANTUM_MAX)
            return opt_bad(err, def->name, "must be an integer in 1..4096");
        *(int64_t *)(void *)dst = (int64_t)json_integer_value(v);
        return DL_OK;
    case OPT_BOOL:
        if (!json_is_boolean(v))
            return opt_bad(err, def->name, "must be true or false");
        *(int *)(void *)dst = json_is_true(v);
        return DL_OK;
    }
    return dl_error_set(err, DL_ERR_INTERNAL, "unknown option kind");
}

dl_status srv_select_params_from_spec(const json_t *spec, ds_params *p, dl_error *err)
{
    if (!json_is_object(spec))
        return dl_error_set(err, DL_ERR_USAGE, "a selection spec is a JSON object");
    dl_status st = ds_stage_parse(json_string_value(json_object_get(spec, "stage")), &p->stage,
                                  err);
    if (st != DL_OK)
        return st;
    const json_t *budget = json_object_get(spec, "budget");
    if (!json_is_number(budget) || !(json_number_value(budget) > 0))
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "budget",
                               "must be a count >= 1 or a fraction in (0, 1)");
    p->budget = json_number_value(budget);
    const json_t *fn = json_object_get(spec, "function");
    if (fn && !json_is_null(fn) && !json_is_string(fn))
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "function",
                               "must be a selector name");
    p->function = json_string_value(fn); /* NULL when absent: the stage's default */
    const json_t *pairs = json_object_get(spec, "pairs");
    if (pairs && !json_is_null(pairs)) {
        st = ds_pairs_parse(json_is_string(pairs) ? json_string_value(pairs) : "", &p->pairs,
                            err);
        if (st != DL_OK)
            return st;
    }
    const json_t *opts = json_object_get(spec, "options");
    if (opts && !json_is_null(opts) && !json_is_object(opts))
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "options",
                               "must be an object");
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)opts, name, v) {
        const opt_def *def = opt_find(name);
        if (!def)
            return opt_bad(err, name,
                           "unknown option (expected optimizer, eta, nu, lambda, epsilon, seed, "
                           "stop_at_zero, bos, truncate_quantum, threads, backend, fast, "
                           "template_noicl, template_icl)");
        if ((st = opt_apply(def, v, p, err)) != DL_OK)
            return st;
    }
    return DL_OK;
}

/* ---- scrubbing server paths ------------------------------------------------ */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *q = realloc(b->s, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->s = q;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

char *srv_select_scrub(const char *s, const srv_select_alias *aliases, size_t n_aliases,
                       const char *private_root)
{
    sbuf b = {0};
    sbuf_add(&b, "", 0);
    size_t root_n = private_root ? strlen(private_root) : 0;
    while (s && *s && !b.oom) {
        /* The longest alias path that starts here wins: a job's paths nest
         * (checkpoint_dir is inside the data dir). */
        const srv_select_alias *best = NULL;
        size_t best_n = 0;
        for (size_t i = 0; i < n_aliases; i++) {
            const char *path = aliases[i].path;
            size_t pn = path ? strlen(path) : 0;
            if (pn > best_n && !strncmp(s, path, pn)) {
                best = &aliases[i];
                best_n = pn;
            }
        }
        if (best) {
            sbuf_add(&b, best->label, strlen(best->label));
            s += best_n;
        } else if (root_n && !strncmp(s, private_root, root_n)) {
            sbuf_add(&b, "<data>", 6);
            s += root_n;
        } else {
            sbuf_add(&b, s, 1);
            s++;
        }
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* Scrubs every string in v (keys and values) in place.  0 when out of memory. */
static int scrub_json(json_t *v, const srv_select_alias *aliases, size_t n, const char *root)
{
    if (json_is_string(v)) {
        char *s = srv_select_scrub(json_string_value(v), aliases, n, root);
        int ok = s && json_string_set(v, s) == 0;
        free(s);
        return ok;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!scrub_json(json_array_get(v, i), aliases, n, root))
                return 0;
        return 1;
    }
    if (!json_is_object(v))
        return 1;
    /* Keys too (a manifest could key a map by file): rebuild the object. */
    json_t *copy = json_object();
    const char *k;
    json_t *x;
    int ok = copy != NULL;
    json_object_foreach(v, k, x) {
        if (!ok)
            break;
        char *nk = srv_select_scrub(k, aliases, n, root);
        ok = nk && scrub_json(x, aliases, n, root) && json_object_set(copy, nk, x) == 0;
        free(nk);
    }
    if (ok)
        ok = json_object_clear(v) == 0 && json_object_update(v, copy) == 0;
    json_decref(copy);
    return ok;
}

/* ---- errors ------------------------------------------------------------------ */

/* Pipeline field names (CLI flags) that stand for spec options. */
static const char *field_for_spec(const char *field, char *buf, size_t n)
{
    char norm[DL_ERROR_FIELD_MAX];
    size_t i = 0;
    for (; field[i] && i + 1 < sizeof norm; i++)
        norm[i] = (field[i] == '-' || field[i] == '.') ? '_' : field[i];
    norm[i] = '\0';
    if (!strcmp(norm, "add_bos"))
        snprintf(norm, sizeof norm, "bos");
    if (!opt_find(norm))
        return field;
    snprintf(buf, n, "options.%.64s", norm);
    return buf;
}

/* Makes a pipeline error fit for a client: no server path in file or
 * message, the input's role named, option fields in spec terms. */
static void error_clean(dl_error *e, const srv_select_alias *roles, size_t n_roles,
                        const char *root)
{
    const char *role = NULL;
    for (size_t i = 0; e->file[0] && i < n_roles; i++)
        if (roles[i].path && !strcmp(e->file, roles[i].path))
            role = roles[i].label;
    char *msg = srv_select_scrub(e->message, roles, n_roles, root);
    if (role)
        snprintf(e->message, sizeof e->message, "%s: %s", role, msg ? msg : "");
    else if (msg)
        snprintf(e->message, sizeof e->message, "%s", msg);
    else
        snprintf(e->message, sizeof e->message, "%s error", dl_status_name(e->code));
    free(msg);
    snprintf(e->file, sizeof e->file, "%s", role ? role : "");
    if (!role && e->field[0]) {
        char buf[DL_ERROR_FIELD_MAX];
        const char *f = field_for_spec(e->field, buf, sizeof buf);
        if (f != e->field)
            snprintf(e->field, sizeof e->field, "%s", f);
    }
}

/* ---- outputs ------------------------------------------------------------------ */

/* v dumped with flags and a final newline, written atomically. */
static dl_status write_json_atomic(const char *path, const json_t *v, size_t flags,
                                   dl_error *err)
{
    char *text = json_dumps(v, flags);
    if (!text)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    size_t n = strlen(text);
    text[n] = '\n'; /* the NUL becomes the newline; it is not written */
    dl_status st = dl_file_write_atomic(path, text, n + 1, err);
    free(text);
    return st;
}

/* One ranking line, checked: {"rank": int >= 0, "id": string, "index": int
 * >= 0, "gain": number}.  Returns the entry (owned) or NULL. */
static json_t *ranking_entry(const char *line)
{
    json_t *v = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
    const json_t *rank = json_object_get(v, "rank"), *id = json_object_get(v, "id"),
                 *index = json_object_get(v, "index"), *gain = json_object_get(v, "gain");
    json_t *out = NULL;
    if (json_is_integer(rank) && json_integer_value(rank) >= 0 && json_is_string(id) &&
        json_is_integer(index) && json_integer_value(index) >= 0 && json_is_number(gain))
        out = json_pack("{s:O, s:O, s:O, s:O}", "rank", rank, "id", id, "index", index, "gain",
                        gain);
    json_decref(v);
    return out;
}

dl_status srv_select_ranking_convert(const char *jsonl_path, int64_t n_pool,
                                     const char *json_path, dl_error *err)
{
    FILE *f = fopen(jsonl_path, "rb");
    if (!f)
        return dl_error_set(err, DL_ERR_INTERNAL, "the pipeline wrote no ranking");
    json_t *sel = json_array();
    dl_status st = sel ? DL_OK : dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    json_int_t prev_rank = -1;
    while (st == DL_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0)
            continue;
        json_t *e = ranking_entry(line);
        /* Ranks count up by one from the first line (0- or 1-based). */
        json_int_t rank = e ? json_integer_value(json_object_get(e, "rank")) : -1;
        json_int_t want = json_array_size(sel) ? prev_rank + 1 : (rank <= 1 ? rank : -1);
        if (!e || rank != want) {
            json_decref(e);
            st = dl_error_set(err, DL_ERR_INTERNAL, "the pipeline's ranking is invalid at line %lld",
                              (long long)lineno);
        } else if (json_array_append_new(sel, e) != 0) {
            st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        }
        prev_rank = rank;
    }
    if (st == DL_OK && ferror(f))
        st = dl_error_set(err, DL_ERR_IO, "cannot read the ranking: %s", strerror(errno));
    free(line);
    fclose(f);
    if (st == DL_OK) {
        json_t *doc = json_pack("{s:O, s:I, s:I}", "selected", sel, "n", (json_int_t)n_pool,
                                "k", (json_int_t)json_array_size(sel));
        st = doc ? write_json_atomic(json_path, doc, JSON_COMPACT | JSON_PRESERVE_ORDER, err)
                 : dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        json_decref(doc);
    }
    json_decref(sel);
    return st;
}

/* Rewrites ds_run's manifest (at from) as the job's (at to): paths scrubbed
 * to the names the client knows, the executor, job and spec added. */
static dl_status manifest_rewrite(const char *from, const char *to, const srv_job_run *job,
                                  const srv_select_alias *names, size_t n_names,
                                  const char *root, dl_error *err)
{
    json_t *m = json_load_file(from, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return dl_error_set(err, DL_ERR_INTERNAL, "the pipeline's manifest is not a JSON object");
    }
    dl_status st = DL_OK;
    if (!scrub_json(m, names, n_names, root) ||
        json_object_set_new(m, "executor", json_string(SRV_SELECT_EXEC_NAME)) != 0 ||
        json_object_set_new(m, "job", json_string(job->job_id)) != 0 ||
        json_object_set_new(m, "spec", json_deep_copy(job->spec)) != 0)
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (st == DL_OK)
        st = write_json_atomic(to, m, JSON_INDENT(2) | JSON_PRESERVE_ORDER, err);
    json_decref(m);
    return st;
}

/* ---- run -------------------------------------------------------------------------- */

/* dir/name, owned (NULL when out of memory). */
static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Intermediate files of ds_run, kept in the checkpoint directory so that the
 * output directory holds exactly the three published files. */
#define TMP_RANKING "ranking.ds.jsonl"
#define TMP_MANIFEST "manifest.ds.json"

/* The files of one run (all owned). */
typedef struct run_files {
    char *subset, *ranking, *manifest; /* in job->output_dir */
    char *tmp_ranking, *tmp_manifest;  /* in job->checkpoint_dir */
} run_files;

static void run_files_free(run_files *f)
{
    if (f->tmp_ranking)
        unlink(f->tmp_ranking);
    if (f->tmp_manifest)
        unlink(f->tmp_manifest);
    free(f->subset);
    free(f->ranking);
    free(f->manifest);
    free(f->tmp_ranking);
    free(f->tmp_manifest);
}

static dl_status run_files_init(run_files *f, const srv_job_run *job, dl_error *err)
{
    f->subset = path_join(job->output_dir, SRV_OUT_RECORDS);
    f->ranking = path_join(job->output_dir, SRV_OUT_RANKING);
    f->manifest = path_join(job->output_dir, SRV_OUT_MANIFEST);
    f->tmp_ranking = path_join(job->checkpoint_dir, TMP_RANKING);
    f->tmp_manifest = path_join(job->checkpoint_dir, TMP_MANIFEST);
    if (f->subset && f->ranking && f->manifest && f->tmp_ranking && f->tmp_manifest)
        return DL_OK;
    return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
}

static dl_status run_pipeline(const srv_select_exec *x, const srv_job_run *job,
                              const run_files *f, ds_summary *sum, dl_error *err)
{
    ds_params p;
    ds_params_init(&p);
    p.threads = x->threads; /* options.threads overrides it */
    dl_status st = srv_select_params_from_spec(job->spec, &p, err);
    if (st != DL_OK)
        return st;
    p.model_path = job->model_path;
    p.pool_path = job->pool_path;
    p.target_path = job->target_path;
    p.existing_path = job->existing_path;
    p.cache_path = x->cache_path;
    p.out_subset = f->subset;
    p.out_ranking = f->tmp_ranking;
    p.out_manifest = f->tmp_manifest;
    p.progress = job->progress;
    p.progress_ctx = job->progress_ctx;
    p.cancel = job->cancel;
    p.version_extra = "delift-server";
    return ds_run(&p, sum, err);
}

static const char *spec_str(const srv_job_run *job, const char *key, const char *def)
{
    const char *v = json_string_value(json_object_get(job->spec, key));
    return v ? v : def;
}

/* Turns ds_run's intermediate files into ranking.json and manifest.json. */
static dl_status run_publish(const srv_select_exec *x, const srv_job_run *job,
                             const run_files *f, const ds_summary *sum, dl_error *err)
{
    /* What the manifest says instead of each path: the names the client used. */
    const srv_select_alias names[] = {
        {job->model_path, spec_str(job, "model", "model")},
        {job->pool_path, spec_str(job, "pool", "pool")},
        {job->target_path, spec_str(job, "target", "target")},
        {job->existing_path, spec_str(job, "existing", "existing")},
        {x->cache_path, "score-cache"}, {f->subset, SRV_OUT_RECORDS},
        {f->tmp_ranking, SRV_OUT_RANKING}, {f->tmp_manifest, SRV_OUT_MANIFEST},
        {job->checkpoint_dir, "checkpoint"}, {job->output_dir, "output"},
    };
    dl_status st = srv_select_ranking_convert(f->tmp_ranking, sum->n_pool, f->ranking, err);
    if (st == DL_OK)
        st = manifest_rewrite(f->tmp_manifest, f->manifest, job, names,
                              sizeof names / sizeof names[0], x->private_root, err);
    return st;
}

static dl_status select_run(void *self, const srv_job_run *job, dl_error *err)
{
    const srv_select_exec *x = self;
    dl_error e;
    dl_error_clear(&e);
    ds_summary sum;
    memset(&sum, 0, sizeof sum);
    run_files f = {0};
    dl_status st = run_files_init(&f, job, &e);
    if (st == DL_OK)
        st = run_pipeline(x, job, &f, &sum, &e);
    if (st == DL_OK)
        st = run_publish(x, job, &f, &sum, &e);
    if (st != DL_OK && st != DL_ERR_CANCELLED) {
        /* In errors, a path is named by its role. */
        const srv_select_alias roles[] = {
            {job->model_path, "model"}, {job->pool_path, "pool"},
            {job->target_path, "target"}, {job->existing_path, "existing"},
            {x->cache_path, "the score cache"}, {f.subset, SRV_OUT_RECORDS},
            {f.tmp_ranking, SRV_OUT_RANKING}, {f.tmp_manifest, SRV_OUT_MANIFEST},
            {job->checkpoint_dir, "checkpoint"}, {job->output_dir, "output"},
        };
        error_clean(&e, roles, sizeof roles / sizeof roles[0], x->private_root);
    }
    run_files_free(&f);
    if (st != DL_OK && err && err->code == DL_OK)
        *err = e;
    return st;
}

/* What can be known before running: every option maps onto ds_params, and
 * the optimizer and templates are valid.  Budget against the pool size and
 * everything about the inputs are only known when the job runs. */
static dl_status select_check(void *self, const json_t *spec, dl_error *err)
{
    (void)self;
    ds_params p;
    ds_params_init(&p);
    dl_error e;
    dl_error_clear(&e);
    sel_opt_kind opt;
    dl_status st = srv_select_params_from_spec(spec, &p, &e);
    if (st == DL_OK && p.optimizer && (st = sel_opt_kind_parse(p.optimizer, &opt, &e)) != DL_OK)
        dl_error_locate(&e, NULL, 0, "options.optimizer");
    if (st == DL_OK)
        st = ut_config_check(&p.ut, &e);
    if (st != DL_OK) {
        error_clean(&e, NULL, 0, NULL);
        if (err && err->code == DL_OK)
            *err = e;
    }
    return st;
}

/* ---- the executor object ------------------------------------------------------- */

dl_status srv_select_exec_new(const srv_select_config *cfg, srv_select_exec **out, dl_error *err)
{
    *out = NULL;
    srv_select_exec *x = calloc(1, sizeof *x);
    if (!x)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    int ok = 1;
    if (cfg && cfg->cache_path && cfg->cache_path[0])
        ok &= (x->cache_path = strdup(cfg->cache_path)) != NULL;
    if (cfg && cfg->private_root && cfg->private_root[0]) {
        ok &= (x->private_root = strdup(cfg->private_root)) != NULL;
        /* "/var/lib/delift/" and "/var/lib/delift" name the same tree. */
        size_t n = x->private_root ? strlen(x->private_root) : 0;
        while (n > 1 && x->private_root[n - 1] == '/')
            x->private_root[--n] = '\0';
    }
    if (!ok) {
        srv_select_exec_free(x);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    x->threads = cfg && cfg->threads > 0 ? cfg->threads : 0;
    x->exec.name = SRV_SELECT_EXEC_NAME;
    x->exec.self = x;
    x->exec.run = select_run;
    x->exec.check = select_check;
    *out = x;
    return DL_OK;
}

void srv_select_exec_free(srv_select_exec *x)
{
    if (!x)
        return;
    free(x->cache_path);
    free(x->private_root);
    free(x);
}

const srv_executor *srv_select_exec_executor(const srv_select_exec *x)
{
    return &x->exec;
}
