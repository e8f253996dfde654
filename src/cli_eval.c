/* cli_eval.c: `delift eval`, how well a subset serves as in-context examples
 * for held-out records; a thin shell over ev_run (ev.h). */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dl_file.h"
#include "ev.h"

typedef struct eval_args {
    ev_params p;
    const char *per_record; /* --per-record FILE */
    const char *tpl_files[2]; /* --template-noicl, --template-icl */
    char *tpl_text[2];        /* their contents, owned */
    int json, quiet;
    cli_progress_mode progress;
} eval_args;

static void eval_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift eval --model M.gguf --subset S.jsonl --heldout H.jsonl [options]\n"
            "\n"
            "Measures how well SUBSET serves as a pool of in-context examples for the\n"
            "records of HELDOUT.  For each held-out record h, the subset record of most\n"
            "similar pooled embedding (cosine) is its example e; h's response is then\n"
            "scored with DELIFT's two prompt templates (spec/DELIFT.md §2):\n"
            "  d_icl    d of h's response with e shown as the example (lower is better)\n"
            "  d_noicl  d of h's response without an example\n"
            "  ll_icl, ll_noicl   the mean log-likelihood (nats per token, higher is better)\n"
            "where d = sqrt(mean (1 - p)^2) over the response tokens and the final EOS.\n"
            "Reports the mean and standard deviation (population) of each, of the\n"
            "differences d_icl - d_noicl and ll_icl - ll_noicl, and the fraction of\n"
            "held-out records helped (d_icl < d_noicl).  Records whose response does not\n"
            "fit the model's context are counted as unscorable and left out of the means.\n"
            "\n"
            "Input and engine:\n"
            "  --model M.gguf       the scoring model (llama or qwen2 GGUF; required)\n"
            "  --subset S.jsonl     the examples (required; e.g. `delift select`'s output)\n"
            "  --heldout H.jsonl    the records to answer (required)\n"
            "  --fields MAP         record fields of both files (see `delift records\n"
            "                       inspect --help`)\n"
            "  --skip-invalid       skip malformed records instead of failing\n"
            "  --bos                prepend BOS to every sequence (the reference does not)\n"
            "  --template-noicl F   file with the no-ICL prompt template ({p_i})\n"
            "  --template-icl F     file with the ICL template ({p_j}, {r_j}, {p_i})\n"
            "  --truncate-quantum N a prompt too long for the context loses its first\n"
            "                       tokens, rounded up to a multiple of N (default %d)\n"
            "  --backend B          blas (default) or ref\n"
            "  --fast               8-bit weights and activations, integer products\n"
            "                       (faster; scores differ slightly: docs/engine.md)\n"
            "  --threads N          threads (default: all online CPUs)\n"
            "\n"
            "Output:\n"
            "  --json               one JSON object on stdout instead of the table\n"
            "  --per-record FILE    also write one JSON line per held-out record:\n"
            "                       heldout_id, heldout_index, example_id, example_index,\n"
            "                       similarity, d_icl, d_noicl, ll_icl, ll_noicl, helped\n"
            "                       (NaN values as null); written atomically\n"
            "  --progress MODE      auto (text on a terminal, else none), text, json (one\n"
            "                       JSON object per line on stderr), none\n"
            "  -q, --quiet          no progress\n"
            "  -h, --help           this help\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 bad input (the message names the file,\n"
            "line and field; an empty subset or held-out file is bad input), 3 runtime\n"
            "failure, 130 interrupted (SIGINT/SIGTERM).\n",
            UT_TRUNC_QUANTUM_DEFAULT);
}

/* ---- arguments ------------------------------------------------------------------ */

/* Returns -1 to go on, else an exit code. */
static int parse_value(eval_args *a, const char *opt, const char *v)
{
    dl_error err;
    dl_error_clear(&err);
    if (!strcmp(opt, "--model"))
        a->p.model_path = v;
    else if (!strcmp(opt, "--subset"))
        a->p.subset_path = v;
    else if (!strcmp(opt, "--heldout"))
        a->p.heldout_path = v;
    else if (!strcmp(opt, "--fields")) {
        if (rec_map_parse(v, &a->p.rec_opts.map, &err))
            return cli_usage_error("eval", "--fields: %s", err.message);
    } else if (!strcmp(opt, "--backend"))
        a->p.backend = v;
    else if (!strcmp(opt, "--template-noicl") || !strcmp(opt, "--template-icl"))
        a->tpl_files[opt[11] == 'i'] = v;
    else if (!strcmp(opt, "--truncate-quantum")) {
        if (cli_parse_i64(v, 1, UT_TRUNC_QUANTUM_MAX, &a->p.ut.trunc_quantum))
            return cli_usage_error("eval", "--truncate-quantum: '%s' is not an integer in 1..%d",
                                   v, UT_TRUNC_QUANTUM_MAX);
    }
    else if (!strcmp(opt, "--threads")) {
        if (cli_parse_i64(v, 1, 1024, &a->p.threads))
            return cli_usage_error("eval", "--threads: '%s' is not an integer in 1..1024", v);
    } else if (!strcmp(opt, "--per-record")) {
        if (!*v)
            return cli_usage_error("eval", "--per-record: empty file name");
        a->per_record = v;
    } else if (!strcmp(opt, "--progress")) {
        if (cli_progress_mode_parse(v, &a->progress))
            return cli_usage_error("eval", "--progress: '%s' (expected auto, text, json, none)",
                                   v);
    }
    return -1;
}

static int parse_args(eval_args *a, int argc, char **argv)
{
    static const char *const valued[] = {"--model", "--subset", "--heldout", "--fields",
                                         "--backend", "--threads", "--per-record",
                                         "--progress", "--template-noicl", "--template-icl",
                                         "--truncate-quantum", NULL};
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            eval_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (!strcmp(s, "--bos"))
            a->p.ut.add_bos = 1;
        else if (!strcmp(s, "--skip-invalid"))
            a->p.rec_opts.skip_invalid = 1;
        else if (!strcmp(s, "--json"))
            a->json = 1;
        else if (!strcmp(s, "--fast"))
            a->p.fast = 1;
        else if (!strcmp(s, "-q") || !strcmp(s, "--quiet"))
            a->quiet = 1;
        else {
            int k = 0;
            while (valued[k] && strcmp(valued[k], s))
                k++;
            if (!valued[k])
                return s[0] == '-' && s[1] ? cli_usage_error("eval", "unknown option %s", s)
                                           : cli_usage_error("eval", "unexpected argument '%s' "
                                                             "(files go after --subset and "
                                                             "--heldout)", s);
            if (i + 1 >= argc)
                return cli_usage_error("eval", "%s needs a value", s);
            int rc = parse_value(a, s, argv[++i]);
            if (rc >= 0)
                return rc;
        }
    }
    if (!a->p.model_path)
        return cli_usage_error("eval", "--model M.gguf is required");
    if (!a->p.subset_path)
        return cli_usage_error("eval", "--subset S.jsonl is required");
    if (!a->p.heldout_path)
        return cli_usage_error("eval", "--heldout H.jsonl is required");
    return cli_templates_load("eval", a->tpl_files, a->tpl_text, &a->p.ut);
}

/* ---- output --------------------------------------------------------------------- */

/* A JSON number, or null for NaN and infinities (JSON has neither). */
static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *stat_json(ev_stat s)
{
    return json_pack("{s:o,s:o}", "mean", num(s.mean), "std", num(s.std));
}

static json_t *summary_json(const ev_report *r, const ev_params *p)
{
    const ev_summary *s = &r->sum;
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:f}",
        "model", p->model_path, "model_sha256", r->model_sha256, "subset", p->subset_path,
        "heldout", p->heldout_path, "fast", p->fast != 0, "bos", p->ut.add_bos, "truncate_quantum",
        (json_int_t)ut_config_trunc_quantum(&p->ut), "n_subset", (json_int_t)s->n_subset,
        "n_heldout", (json_int_t)s->n_heldout, "n_scored", (json_int_t)s->n_scored,
        "n_unscorable", (json_int_t)s->n_unscorable, "n_helped", (json_int_t)s->n_helped,
        "frac_helped", num(s->frac_helped), "d_icl", stat_json(s->d_icl), "d_noicl",
        stat_json(s->d_noicl), "d_diff", stat_json(s->d_diff), "ll_icl", stat_json(s->ll_icl),
        "ll_noicl", stat_json(s->ll_noicl), "ll_diff", stat_json(s->ll_diff), "seconds",
        s->seconds);
}

static void print_text(const ev_report *r)
{
    const ev_summary *s = &r->sum;
    printf("held-out records  %lld (%lld scored, %lld unscorable)\n", (long long)s->n_heldout,
           (long long)s->n_scored, (long long)s->n_unscorable);
    printf("subset records    %lld\n", (long long)s->n_subset);
    printf("%-17s %12s %12s\n", "", "mean", "std");
    const struct {
        const char *name;
        ev_stat v;
    } rows[] = {{"d_icl", s->d_icl},       {"d_noicl", s->d_noicl},
                {"d_icl-d_noicl", s->d_diff}, {"ll_icl", s->ll_icl},
                {"ll_noicl", s->ll_noicl}, {"ll_icl-ll_noicl", s->ll_diff}};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
        printf("%-17s %12.6f %12.6f\n", rows[k].name, rows[k].v.mean, rows[k].v.std);
    printf("helped            %.4f (%lld of %lld: d_icl < d_noicl)\n", s->frac_helped,
           (long long)s->n_helped, (long long)s->n_scored);
    printf("seconds           %.1f\n", s->seconds);
}

/* Writes the per-record lines into f (begun before the run, so that an
 * unwritable path fails before any model work) and commits it. */
static dl_status write_per_record(dl_file_atomic *f, const ev_report *r, dl_error *err)
{
    dl_status s = DL_OK;
    for (int64_t i = 0; !s && i < r->sum.n_heldout; i++) {
        const ev_record *e = &r->records[i];
        int helped = isfinite(e->d_icl) && isfinite(e->d_noicl) && e->d_icl < e->d_noicl;
        json_t *o = json_pack("{s:s,s:I,s:s,s:I,s:o,s:o,s:o,s:o,s:o,s:b}", "heldout_id",
                              e->heldout_id, "heldout_index", (json_int_t)e->heldout_index,
                              "example_id", e->example_id, "example_index",
                              (json_int_t)e->example_index, "similarity", num(e->similarity),
                              "d_icl", num(e->d_icl), "d_noicl", num(e->d_noicl), "ll_icl",
                              num(e->ll_icl), "ll_noicl", num(e->ll_noicl), "helped", helped);
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (!line) {
            s = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
            break;
        }
        s = dl_file_atomic_write(f, line, strlen(line), err);
        if (!s)
            s = dl_file_atomic_write(f, "\n", 1, err);
        free(line);
    }
    if (!s)
        s = dl_file_atomic_commit(f, err);
    return s;
}

/* ---- main ----------------------------------------------------------------------- */

static atomic_int eval_cancel;

/* Runs a parsed command; returns the exit code.  a is a copy: the run
 * sets its progress and cancel hooks. */
static int eval_run(eval_args a)
{
    cli_progress ps;
    if (cli_progress_init(&ps, a.quiet ? CLI_PROGRESS_NONE : a.progress)) {
        a.p.progress = cli_progress_update;
        a.p.progress_ctx = &ps;
    }
    /* signals first: an interrupt from here on cancels the run, and the
     * temporary --per-record file is removed on the way out */
    a.p.cancel = &eval_cancel;
    cli_signals sig;
    cli_signals_install(&sig, &eval_cancel);
    dl_error err;
    dl_error_clear(&err);
    dl_file_atomic pr; /* --per-record, zeroed: aborting it is a no-op */
    memset(&pr, 0, sizeof pr);
    ev_report *r = NULL;
    dl_status s = DL_OK;
    if (a.per_record) /* begun before the run: an unwritable path fails at once */
        s = dl_file_atomic_begin(&pr, a.per_record, &err);
    if (!s)
        s = ev_run(&a.p, &r, &err);
    cli_signals_restore(&sig);
    cli_progress_finish(&ps);
    if (!s && a.per_record)
        s = write_per_record(&pr, r, &err);
    dl_file_atomic_abort(&pr); /* removes the temporary file unless committed */
    if (s) {
        ev_report_free(r);
        return cli_report(&err);
    }
    if (a.json) {
        json_t *o = summary_json(r, &a.p);
        char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (txt)
            printf("%s\n", txt);
        free(txt);
        if (!txt) {
            ev_report_free(r);
            fprintf(stderr, "delift: error: out of memory\n");
            return CLI_EXIT_RUNTIME;
        }
    } else {
        print_text(r);
    }
    ev_report_free(r);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "delift: error: cannot write to stdout\n");
        return CLI_EXIT_RUNTIME;
    }
    return CLI_EXIT_OK;
}

int cli_eval_main(int argc, char **argv)
{
    eval_args a;
    memset(&a, 0, sizeof a);
    ev_params_init(&a.p);
    int rc = parse_args(&a, argc, argv);
    if (rc < 0)
        rc = eval_run(a);
    free(a.tpl_text[0]);
    free(a.tpl_text[1]);
    return rc;
}
