/* cli_select.c: `delift select` (the whole DELIFT job: utility kernels, then
 * the greedy selection) and `delift score` (the kernels only).  Both are thin
 * shells over ds_run (ds.h), the code path delift-server runs too. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ds.h"
#include "ut_cache.h"

typedef struct sel_args {
    ds_params p;
    int is_score;
    const char *output;     /* select: -o SUBSET.jsonl; score: --out-dir DIR */
    char *ranking, *manifest; /* owned when derived */
    const char *tpl_files[2];
    char *tpl_text[2];
    int no_cache;
    const char *cache;
    cli_progress_mode progress;
    int quiet;
} sel_args;

static void select_usage(FILE *out, int is_score)
{
    if (is_score)
        fprintf(out,
                "Usage: delift score --model M.gguf [--stage S] [options] POOL.jsonl "
                "--out-dir DIR\n"
                "\n"
                "Computes DELIFT's in-context utility kernels (spec/DELIFT.md §2-§3) and writes\n"
                "them to DIR: S.npy (pool x pool; S.npz when sparse), Q.npy (task stage),\n"
                "P.npy (continual stage), d_noicl.npy, and manifest.json.  Values are the\n"
                "utilities min-max scaled to [0, 1], rows = targets, columns = examples.\n");
    else
        fprintf(out,
                "Usage: delift select --model M.gguf [--stage S] [--budget N|0.F] [options]\n"
                "                     POOL.jsonl -o SUBSET.jsonl\n"
                "\n"
                "Selects the records of POOL worth fine-tuning on with DELIFT: the model scores\n"
                "how much each record, shown as an in-context example, helps the model answer\n"
                "each other record; a submodular function is then maximised greedily over\n"
                "those utilities.  Writes SUBSET.jsonl (the selected records as they were in\n"
                "POOL, in greedy order), SUBSET.ranking.jsonl ({rank, id, index, gain} per\n"
                "line) and SUBSET.manifest.json (inputs, hashes, model, parameters, timings,\n"
                "deviations from the reference).\n");
    fprintf(out,
            "\n"
            "Method:\n"
            "  --stage S            instruction (default; kernel pool x pool, function fl),\n"
            "                       task (needs --target; flmi), continual (needs\n"
            "                       --existing; flcg)\n"
            "  --target T.jsonl     the target set of the task stage\n"
            "  --existing E.jsonl   the data the model already has (continual stage)\n");
    if (!is_score)
        fprintf(out,
                "  --budget N|0.F       records to select: a count, or a fraction of the pool\n"
                "                       (floor; default 0.3, the paper's setting)\n"
                "  --function F         fl, flmi, flqmi, flcg, gc, gcmi, gccg (default: the\n"
                "                       stage's)\n"
                "  --optimizer O        lazy (default), naive, stochastic, lazier\n"
                "  --eta E --nu V --lambda L   function parameters (1, 1, 0.4)\n"
                "  --epsilon E --seed S        stochastic and lazier optimisers\n"
                "  --stop-at-zero       stop early when no record adds a positive gain\n");
    fprintf(out,
            "  --pairs MODE         all (every pair), knn:K (each target's K nearest\n"
            "                       examples by embedding, via FAISS), or auto (default:\n"
            "                       all up to %d records, knn:%d above)\n"
            "  --bos                prepend BOS to every sequence (the reference does not)\n"
            "  --template-noicl F   file with the no-ICL prompt template ({p_i})\n"
            "  --template-icl F     file with the ICL template ({p_j}, {r_j}, {p_i})\n"
            "  --truncate-quantum N a prompt too long for the context loses its first\n"
            "                       tokens, rounded up to a multiple of N so that pairs\n"
            "                       can share work (default %d; 1: cut exactly)\n"
            "\n"
            "Input and engine:\n"
            "  --model M.gguf       the scoring model (llama or qwen2 GGUF; required)\n"
            "  --fields MAP         record fields (see `delift records inspect --help`)\n"
            "  --skip-invalid       skip malformed records instead of failing\n"
            "  --backend B          blas (default) or ref\n"
            "  --fast               8-bit weights and activations, integer products (as\n"
            "                       llama.cpp on Q8_0): about 3x faster, scores differ\n"
            "                       slightly from the exact path (recorded in the\n"
            "                       manifest; a cache scope of its own)\n"
            "  --threads N          threads (default: all online CPUs)\n"
            "  --cache PATH         score cache and checkpoint (default: `delift cache path`);\n"
            "                       a killed run started again resumes from it\n"
            "  --no-cache           neither read nor write the cache (no resume)\n"
            "\n"
            "Output:\n",
            DS_AUTO_DENSE_MAX, DS_AUTO_K, UT_TRUNC_QUANTUM_DEFAULT);
    if (is_score)
        fprintf(out, "  --out-dir DIR        where the kernels and manifest.json go (required)\n");
    else
        fprintf(out,
                "  -o, --output FILE    the selected records (required)\n"
                "  --ranking FILE       default: FILE with .jsonl replaced by .ranking.jsonl\n"
                "  --manifest FILE      default: FILE with .jsonl replaced by .manifest.json\n"
                "  --kernels DIR        also write the kernels there (as `delift score`)\n");
    fprintf(out,
            "  --progress MODE      auto (text on a terminal, else none), text, json (one\n"
            "                       JSON object per line on stderr), none\n"
            "  -q, --quiet          no progress and no summary line\n"
            "  -h, --help           this help\n"
            "\n"
            "Every file is written atomically: after a failure or an interrupt no partial\n"
            "output exists.  Exit codes: 0 ok, 1 usage error, 2 bad input (the message names\n"
            "file, line and field), 3 runtime failure, 130 interrupted (SIGINT/SIGTERM;\n"
            "scores computed so far stay in the cache).\n");
}

/* ---- arguments ------------------------------------------------------------------ */

static char *derive(const char *out, const char *suffix)
{
    size_t n = strlen(out);
    if (n > 6 && !strcmp(out + n - 6, ".jsonl"))
        n -= 6;
    char *s = malloc(n + strlen(suffix) + 1);
    if (s) {
        memcpy(s, out, n);
        strcpy(s + n, suffix);
    }
    return s;
}

/* Returns -1 to go on, else an exit code. */
static int parse_value(sel_args *a, const char *cmd, const char *opt, const char *v)
{
    ds_params *p = &a->p;
    dl_error err;
    dl_error_clear(&err);
    if (!strcmp(opt, "--model"))
        p->model_path = v;
    else if (!strcmp(opt, "--stage")) {
        if (ds_stage_parse(v, &p->stage, &err))
            return cli_usage_error(cmd, "--stage: %s", err.message);
    } else if (!strcmp(opt, "--target"))
        p->target_path = v;
    else if (!strcmp(opt, "--existing"))
        p->existing_path = v;
    else if (!strcmp(opt, "--budget")) {
        if (cli_parse_double(v, &p->budget) || !(p->budget > 0))
            return cli_usage_error(cmd, "--budget: '%s' is not a count >= 1 or a fraction "
                                        "in (0, 1)", v);
    } else if (!strcmp(opt, "--function"))
        p->function = v;
    else if (!strcmp(opt, "--optimizer"))
        p->optimizer = v;
    else if (!strcmp(opt, "--eta") || !strcmp(opt, "--nu") || !strcmp(opt, "--lambda") ||
             !strcmp(opt, "--epsilon")) {
        double x;
        if (cli_parse_double(v, &x) || x < 0)
            return cli_usage_error(cmd, "%s: '%s' is not a number >= 0", opt, v);
        *(opt[2] == 'e' && opt[3] == 't' ? &p->eta
          : opt[2] == 'n'                ? &p->nu
          : opt[2] == 'l'                ? &p->lambda
                                         : &p->epsilon) = x;
    } else if (!strcmp(opt, "--seed")) {
        int64_t x;
        if (cli_parse_i64(v, 0, INT64_MAX, &x))
            return cli_usage_error(cmd, "--seed: '%s' is not a non-negative integer", v);
        p->seed = (uint64_t)x;
    } else if (!strcmp(opt, "--pairs")) {
        if (ds_pairs_parse(v, &p->pairs, &err))
            return cli_usage_error(cmd, "--pairs: %s", err.message);
    } else if (!strcmp(opt, "--template-noicl") || !strcmp(opt, "--template-icl")) {
        a->tpl_files[opt[11] == 'i' ? 1 : 0] = v;
    } else if (!strcmp(opt, "--fields")) {
        if (rec_map_parse(v, &p->rec_opts.map, &err))
            return cli_usage_error(cmd, "--fields: %s", err.message);
    } else if (!strcmp(opt, "--backend"))
        p->backend = v;
    else if (!strcmp(opt, "--truncate-quantum")) {
        if (cli_parse_i64(v, 1, UT_TRUNC_QUANTUM_MAX, &p->ut.trunc_quantum))
            return cli_usage_error(cmd, "--truncate-quantum: '%s' is not an integer in 1..%d", v,
                                   UT_TRUNC_QUANTUM_MAX);
    } else if (!strcmp(opt, "--threads")) {
        if (cli_parse_i64(v, 1, 1024, &p->threads))
            return cli_usage_error(cmd, "--threads: '%s' is not an integer in 1..1024", v);
    } else if (!strcmp(opt, "--cache"))
        a->cache = v;
    else if (!strcmp(opt, "-o") || !strcmp(opt, "--output") || !strcmp(opt, "--out-dir"))
        a->output = v;
    else if (!strcmp(opt, "--ranking"))
        p->out_ranking = v;
    else if (!strcmp(opt, "--manifest"))
        p->out_manifest = v;
    else if (!strcmp(opt, "--kernels"))
        p->out_kernel_dir = v;
    else if (!strcmp(opt, "--progress")) {
        if (cli_progress_mode_parse(v, &a->progress))
            return cli_usage_error(cmd, "--progress: '%s' (expected auto, text, json, none)", v);
    } else
        return cli_usage_error(cmd, "unknown option %s", opt);
    return -1;
}

static const char *const valued[] = {
    "--model", "--stage", "--target", "--existing", "--budget", "--function", "--optimizer",
    "--eta", "--nu", "--lambda", "--epsilon", "--seed", "--pairs", "--template-noicl",
    "--template-icl", "--truncate-quantum", "--fields", "--backend", "--threads", "--cache",
    "-o", "--output", "--ranking", "--manifest", "--kernels", "--progress", "--out-dir", NULL};
/* Options only one of the two commands takes. */
static const char *const select_only[] = {"--budget", "--function", "--optimizer", "--eta",
                                          "--nu", "--lambda", "--epsilon", "--seed", "-o",
                                          "--output", "--ranking", "--manifest", "--kernels",
                                          "--stop-at-zero", NULL};

static int in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (!strcmp(*l, s))
            return 1;
    return 0;
}

static int parse_args(sel_args *a, int argc, char **argv)
{
    const char *cmd = a->is_score ? "score" : "select";
    const char *pool = NULL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            select_usage(stdout, a->is_score);
            return CLI_EXIT_OK;
        }
        if (s[0] == '-' && s[1] != '\0') {
            if (a->is_score ? in_list(select_only, s) : !strcmp(s, "--out-dir"))
                return cli_usage_error(cmd, "%s is not an option of this command", s);
            if (!strcmp(s, "--bos"))
                a->p.ut.add_bos = 1;
            else if (!strcmp(s, "--stop-at-zero"))
                a->p.stop_at_zero = 1;
            else if (!strcmp(s, "--fast"))
                a->p.fast = 1;
            else if (!strcmp(s, "--skip-invalid"))
                a->p.rec_opts.skip_invalid = 1;
            else if (!strcmp(s, "--no-cache"))
                a->no_cache = 1;
            else if (!strcmp(s, "-q") || !strcmp(s, "--quiet"))
                a->quiet = 1;
            else if (in_list(valued, s)) {
                if (i + 1 >= argc)
                    return cli_usage_error(cmd, "%s needs a value", s);
                int rc = parse_value(a, cmd, s, argv[++i]);
                if (rc >= 0)
                    return rc;
            } else
                return cli_usage_error(cmd, "unknown option %s", s);
        } else if (!pool) {
            pool = s;
        } else {
            return cli_usage_error(cmd, "one pool file only ('%s' and '%s')", pool, s);
        }
    }
    a->p.pool_path = pool;
    if (!a->p.model_path)
        return cli_usage_error(cmd, "--model M.gguf is required");
    if (!pool)
        return cli_usage_error(cmd, "the pool file (POOL.jsonl) is required");
    if (!a->output)
        return cli_usage_error(cmd, a->is_score ? "--out-dir DIR is required"
                                                : "-o SUBSET.jsonl is required");
    if (a->no_cache && a->cache)
        return cli_usage_error(cmd, "--cache and --no-cache exclude each other");
    if (a->p.stage == DS_STAGE_TASK && !a->p.target_path)
        return cli_usage_error(cmd, "--stage task needs --target T.jsonl");
    if (a->p.stage != DS_STAGE_TASK && a->p.target_path)
        return cli_usage_error(cmd, "--target is only used by --stage task");
    if (a->p.stage == DS_STAGE_CONTINUAL && !a->p.existing_path)
        return cli_usage_error(cmd, "--stage continual needs --existing E.jsonl");
    if (a->p.stage != DS_STAGE_CONTINUAL && a->p.existing_path)
        return cli_usage_error(cmd, "--existing is only used by --stage continual");
    return -1;
}

/* Fills the derived parts of the params; returns -1 to go on, else an exit code. */
static int prepare(sel_args *a, char *cache_buf, size_t cache_n)
{
    const char *cmd = a->is_score ? "score" : "select";
    ds_params *p = &a->p;
    dl_error err;
    dl_error_clear(&err);
    int rc = cli_templates_load(cmd, a->tpl_files, a->tpl_text, &p->ut);
    if (rc >= 0)
        return rc;
    if (a->cache) {
        p->cache_path = a->cache;
    } else if (!a->no_cache) {
        if (ut_cache_default_path(cache_buf, cache_n, &err))
            return cli_usage_error(cmd, "%s (pass --cache PATH or --no-cache)", err.message);
        p->cache_path = cache_buf;
    }
    if (a->is_score) {
        p->skip_select = 1;
        p->out_kernel_dir = a->output;
        char *m = malloc(strlen(a->output) + 16);
        if (!m)
            return CLI_EXIT_RUNTIME;
        sprintf(m, "%s/manifest.json", a->output);
        p->out_manifest = a->manifest = m;
    } else {
        p->out_subset = a->output;
        if (!p->out_ranking)
            p->out_ranking = a->ranking = derive(a->output, ".ranking.jsonl");
        if (!p->out_manifest)
            p->out_manifest = a->manifest = derive(a->output, ".manifest.json");
        if (!p->out_ranking || !p->out_manifest)
            return CLI_EXIT_RUNTIME;
    }
    return -1;
}

static atomic_int cancel_flag;

static int run_command(int argc, char **argv, int is_score)
{
    sel_args a;
    memset(&a, 0, sizeof a);
    ds_params_init(&a.p);
    a.is_score = is_score;
    char cache_buf[4096];
    int rc = parse_args(&a, argc, argv);
    if (rc < 0)
        rc = prepare(&a, cache_buf, sizeof cache_buf);
    if (rc >= 0)
        goto out;
    cli_progress ps;
    if (cli_progress_init(&ps, a.quiet ? CLI_PROGRESS_NONE : a.progress)) {
        a.p.progress = cli_progress_update;
        a.p.progress_ctx = &ps;
    }
    a.p.cancel = &cancel_flag;
    cli_signals sig;
    cli_signals_install(&sig, &cancel_flag);
    dl_error err;
    dl_error_clear(&err);
    ds_summary sum;
    dl_status s = ds_run(&a.p, &sum, &err);
    cli_signals_restore(&sig);
    cli_progress_finish(&ps);
    if (s) {
        rc = cli_report(&err);
        goto out;
    }
    if (!a.quiet) {
        char pairs[32];
        snprintf(pairs, sizeof pairs, sum.knn_k ? "knn:%lld" : "all", (long long)sum.knn_k);
        if (is_score)
            fprintf(stderr, "delift: kernels of %lld records (%s pairs: %lld scored, %lld from "
                            "the cache) in %.1f s -> %s\n",
                    (long long)sum.n_pool, pairs, (long long)sum.pairs_scored,
                    (long long)sum.pairs_cached, sum.seconds_total, a.output);
        else
            fprintf(stderr, "delift: selected %lld of %lld records (%s, %s pairs: %lld scored, "
                            "%lld from the cache) in %.1f s -> %s\n",
                    (long long)sum.n_selected, (long long)sum.n_pool, ds_stage_name(a.p.stage),
                    pairs, (long long)sum.pairs_scored, (long long)sum.pairs_cached,
                    sum.seconds_total, a.output);
    }
    rc = CLI_EXIT_OK;
out:
    free(a.ranking);
    free(a.manifest);
    free(a.tpl_text[0]);
    free(a.tpl_text[1]);
    return rc;
}

int cli_select_main(int argc, char **argv)
{
    return run_command(argc, argv, 0);
}

int cli_score_main(int argc, char **argv)
{
    return run_command(argc, argv, 1);
}
