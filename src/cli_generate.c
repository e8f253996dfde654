/* cli_generate.c: `delift generate`: greedy decoding, for smoke tests of a
 * model and the engine.  The prompt is evaluated once into a prefix cache
 * (lm_prefix_new) and each new token is appended to it (lm_prefix_append),
 * so every step costs one token's forward pass. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"

static void generate_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift generate --model M.gguf --prompt P [options]\n"
            "\n"
            "Continues P greedily (the most probable token at each step, temperature 0)\n"
            "and prints the prompt followed by the continuation.\n"
            "\n"
            "Options:\n"
            "  --model M.gguf     the model (llama or qwen2 GGUF; required)\n"
            "  --prompt P         the text to continue (required; may be empty)\n"
            "  -n N               tokens to generate (default 64; fewer if the context\n"
            "                     fills up)\n"
            "  --no-bos           do not prepend BOS (prepended by default when the\n"
            "                     vocabulary has one)\n"
            "  --ignore-eos       keep going after EOS instead of stopping\n"
            "  --ids              print the token ids (prompt, then continuation) instead\n"
            "  --backend B        compute backend: blas (default) or ref\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 bad input (a missing or malformed GGUF\n"
            "file), 3 runtime failure.\n");
}

typedef struct gen_opts {
    const char *model, *prompt, *backend;
    int64_t n;
    int no_bos, ignore_eos, ids;
} gen_opts;

static int generate_parse(int argc, char **argv, gen_opts *o)
{
    o->n = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            generate_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--no-bos")) {
            o->no_bos = 1;
        } else if (!strcmp(a, "--ignore-eos")) {
            o->ignore_eos = 1;
        } else if (!strcmp(a, "--ids")) {
            o->ids = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--prompt") || !strcmp(a, "--backend") ||
                   !strcmp(a, "-n")) {
            if (i + 1 >= argc)
                return cli_usage_error("generate", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--model"))
                o->model = v;
            else if (!strcmp(a, "--prompt"))
                o->prompt = v;
            else if (!strcmp(a, "--backend"))
                o->backend = v;
            else if (cli_parse_i64(v, 0, 1 << 20, &o->n) != 0)
                return cli_usage_error("generate", "-n: '%s' is not a count", v);
        } else {
            return cli_usage_error("generate", "unknown argument '%s'", a);
        }
    }
    if (!o->model || !o->prompt)
        return cli_usage_error("generate", "--model and --prompt are required");
    return -1;
}

/* Greedy loop: appends up to o->n tokens to ids (which holds the prompt). */
static dl_status generate_run(lm_ctx *ctx, const lm_tok *tok, const gen_opts *o, lm_tok_ids *ids,
                              dl_error *err)
{
    const lm_model *m = lm_ctx_model(ctx);
    int64_t cap = ids->n + o->n;
    if (cap > lm_ctx_n_ctx(ctx))
        cap = lm_ctx_n_ctx(ctx);
    if (ids->n > cap)
        return dl_error_set(err, DL_ERR_INPUT, "the prompt's %lld tokens exceed the context (%lld)",
                            (long long)ids->n, (long long)cap);
    lm_prefix *p = NULL;
    float *logits = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
    if (!logits)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    dl_status st = lm_prefix_new(ctx, ids->ids, ids->n, cap < 1 ? 1 : cap, &p, err);
    while (!st && lm_prefix_len(p) > 0 && lm_prefix_len(p) < cap) {
        if ((st = lm_prefix_logits(ctx, p, logits, err)) != DL_OK)
            break;
        int32_t best = 0;
        for (int32_t t = 1; t < m->hp.n_vocab; t++)
            if (logits[t] > logits[best])
                best = t;
        if ((st = lm_tok_ids_push(ids, best, err)) != DL_OK)
            break;
        if (best == lm_tok_eos(tok) && !o->ignore_eos)
            break;
        st = lm_prefix_append(ctx, p, &best, 1, err);
    }
    lm_prefix_free(p);
    free(logits);
    return st;
}

int cli_generate_main(int argc, char **argv)
{
    gen_opts o = {0};
    int rc = generate_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    dl_error err;
    dl_error_clear(&err);
    lm_model *m = NULL;
    lm_tok *tok = NULL;
    lm_ctx *ctx = NULL;
    lm_tok_ids ids = {0};
    dl_status st = lm_model_load(o.model, &m, &err);
    if (!st && !(tok = lm_tok_from_gguf(m->gguf, &err)))
        st = err.code ? err.code : DL_ERR_INPUT;
    unsigned flags = o.no_bos ? 0 : LM_TOK_ADD_BOS;
    if (!st)
        st = lm_tok_encode(tok, o.prompt, strlen(o.prompt), flags, &ids, &err);
    if (!st) {
        lm_ctx_params p = lm_ctx_params_default();
        p.backend = o.backend;
        p.n_threads = 1; /* one sequence: one lane */
        st = lm_ctx_new(m, &p, &ctx, &err);
    }
    if (!st)
        st = generate_run(ctx, tok, &o, &ids, &err);
    if (st) {
        rc = cli_report(&err);
    } else if (o.ids) {
        for (int64_t i = 0; i < ids.n; i++)
            printf(i ? " %ld" : "%ld", (long)ids.ids[i]);
        putchar('\n');
        rc = CLI_EXIT_OK;
    } else {
        char *text = NULL;
        size_t len = 0;
        st = lm_tok_decode(tok, ids.ids, ids.n, LM_TOK_DECODE_STRIP_SPACE, &text, &len, &err);
        if (st) {
            rc = cli_report(&err);
        } else {
            fwrite(text, 1, len, stdout);
            putchar('\n');
            rc = CLI_EXIT_OK;
        }
        free(text);
    }
    lm_tok_ids_free(&ids);
    lm_ctx_free(ctx);
    lm_tok_free(tok);
    lm_model_free(m);
    return rc;
}
