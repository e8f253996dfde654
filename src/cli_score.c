/* cli_score.c: `delift model score`: the per-token log-probabilities of a
 * target given a prompt, in DELIFT's sequence form (spec/DELIFT.md §2):
 *
 *   [BOS] + tokens(prompt) + [EOS] + tokens(target) + [EOS]
 *
 * prompt and target tokenised separately, with the tokenizer's defaults (the
 * SentencePiece space prefix included) and no special-token parsing; BOS only
 * with --bos.  Scored: every target token and the final EOS, the first one
 * predicted from the logits after the separator EOS.  Also printed: the sum
 * and mean log-probability and DELIFT's distance d = sqrt(mean (1 - p)^2).
 */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_model.h"
#include "lm_score.h"
#include "lm_tok.h"

static void score_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift model score --model M.gguf --prompt P --target T [options]\n"
            "\n"
            "Scores T as the continuation of P under teacher forcing, in DELIFT's form\n"
            "[BOS] tokens(P) EOS tokens(T) EOS (P and T tokenised separately), and\n"
            "prints the log-probability (natural log) of every token of T and of the\n"
            "final EOS, then their sum, mean and DELIFT distance sqrt(mean (1-p)^2).\n"
            "\n"
            "Options:\n"
            "  --model M.gguf     the model (llama or qwen2 GGUF; required)\n"
            "  --prompt P         the prompt text (required; may be empty)\n"
            "  --target T         the target (response) text (required; may be empty)\n"
            "  --bos              prepend the BOS token (DELIFT's default is none)\n"
            "  --backend B        compute backend: blas (default) or ref\n"
            "  --threads N        threads (default: all online CPUs)\n"
            "  --fast             8-bit weights and activations, integer products\n"
            "                     (faster; log-probabilities differ by ~0.005 nats)\n"
            "  --json             print one JSON object instead of text\n"
            "  -h, --help         this help\n"
            "\n"
            "Text output: one line per scored token, 'position<TAB>id<TAB>logprob<TAB>piece',\n"
            "then 'sum_logprob', 'mean_logprob' and 'distance' lines.\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 bad input (a missing or malformed GGUF\n"
            "file, a sequence longer than the context), 3 runtime failure.\n");
}

typedef struct score_opts {
    const char *model, *prompt, *target, *backend;
    int64_t threads;
    int bos, json, fast;
} score_opts;

/* Returns -1 to go on, else an exit code. */
static int score_parse(int argc, char **argv, score_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            score_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--bos")) {
            o->bos = 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--fast")) {
            o->fast = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--prompt") || !strcmp(a, "--target") ||
                   !strcmp(a, "--backend") || !strcmp(a, "--threads")) {
            if (!has_val)
                return cli_usage_error("model score", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--model"))
                o->model = v;
            else if (!strcmp(a, "--prompt"))
                o->prompt = v;
            else if (!strcmp(a, "--target"))
                o->target = v;
            else if (!strcmp(a, "--backend"))
                o->backend = v;
            else if (cli_parse_i64(v, 1, 256, &o->threads) != 0)
                return cli_usage_error("model score", "--threads: '%s' is not in [1, 256]", v);
        } else {
            return cli_usage_error("model score", "unknown argument '%s'", a);
        }
    }
    if (!o->model || !o->prompt || !o->target)
        return cli_usage_error("model score", "--model, --prompt and --target are required");
    return -1;
}

/* Builds [BOS] prompt EOS target EOS into ids; *start = first scored index. */
static dl_status build_sequence(const lm_tok *tok, const score_opts *o, lm_tok_ids *ids,
                                int64_t *start, dl_error *err)
{
    int32_t eos = lm_tok_eos(tok);
    if (eos < 0)
        return dl_error_set(err, DL_ERR_UNSUPPORTED, "the vocabulary has no EOS token");
    dl_status st = DL_OK;
    if (o->bos && lm_tok_bos(tok) >= 0)
        st = lm_tok_ids_push(ids, lm_tok_bos(tok), err);
    if (!st)
        st = lm_tok_encode(tok, o->prompt, strlen(o->prompt), 0, ids, err);
    if (!st)
        st = lm_tok_ids_push(ids, eos, err);
    *start = ids->n;
    if (!st)
        st = lm_tok_encode(tok, o->target, strlen(o->target), 0, ids, err);
    if (!st)
        st = lm_tok_ids_push(ids, eos, err);
    return st;
}

static void print_piece(const lm_tok *tok, int32_t id)
{
    size_t len = 0;
    const char *p = lm_tok_piece(tok, id, LM_TOK_DECODE_SPECIAL, &len);
    for (size_t i = 0; p && i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\')
            fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static int print_result(const score_opts *o, const lm_tok *tok, const lm_tok_ids *ids,
                        int64_t start, const float *lp)
{
    int64_t T = ids->n - start;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < T; i++) {
        sum += lp[i];
        sq += (1.0 - exp(lp[i])) * (1.0 - exp(lp[i]));
    }
    double mean = T ? sum / (double)T : 0, dist = T ? sqrt(sq / (double)T) : 0;
    if (!o->json) {
        for (int64_t i = 0; i < T; i++) {
            printf("%lld\t%ld\t%.6f\t", (long long)(start + i), (long)ids->ids[start + i], lp[i]);
            print_piece(tok, ids->ids[start + i]);
            putchar('\n');
        }
        printf("sum_logprob\t%.6f\nmean_logprob\t%.6f\ndistance\t%.6f\n", sum, mean, dist);
        return CLI_EXIT_OK;
    }
    json_t *root = json_object(), *toks = json_array(), *scored = json_array();
    for (int64_t i = 0; i < ids->n; i++)
        json_array_append_new(toks, json_integer(ids->ids[i]));
    for (int64_t i = 0; i < T; i++) {
        size_t len = 0;
        const char *p = lm_tok_piece(tok, ids->ids[start + i], LM_TOK_DECODE_SPECIAL, &len);
        json_array_append_new(scored, json_pack("{s:I, s:i, s:f, s:s%}", "position",
                                                (json_int_t)(start + i), "id",
                                                (int)ids->ids[start + i], "logprob", (double)lp[i],
                                                "piece", p ? p : "", p ? len : 0));
    }
    json_object_set_new(root, "model", json_string(o->model));
    json_object_set_new(root, "n_tokens", json_integer(ids->n));
    json_object_set_new(root, "target_start", json_integer(start));
    json_object_set_new(root, "tokens", toks);
    json_object_set_new(root, "scored", scored);
    json_object_set_new(root, "sum_logprob", json_real(sum));
    json_object_set_new(root, "mean_logprob", json_real(mean));
    json_object_set_new(root, "distance", json_real(dist));
    char *s = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!s)
        return CLI_EXIT_RUNTIME;
    puts(s);
    free(s);
    return CLI_EXIT_OK;
}

int cli_model_score_main(int argc, char **argv)
{
    score_opts o = {0};
    int rc = score_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    dl_error err;
    dl_error_clear(&err);
    lm_model *m = NULL;
    lm_tok *tok = NULL;
    lm_ctx *ctx = NULL;
    lm_tok_ids ids = {0};
    float *lp = NULL;
    int64_t start = 0;
    dl_status st = lm_model_load(o.model, &m, &err);
    if (!st && !(tok = lm_tok_from_gguf(m->gguf, &err)))
        st = err.code ? err.code : DL_ERR_INPUT;
    if (!st)
        st = build_sequence(tok, &o, &ids, &start, &err);
    if (!st) {
        lm_ctx_params p = lm_ctx_params_default();
        p.backend = o.backend;
        p.n_threads = o.threads;
        p.q8_act = o.fast;
        p.max_batch_tokens = ids.n;
        st = lm_ctx_new(m, &p, &ctx, &err);
    }
    if (!st && !(lp = malloc(sizeof(float) * (size_t)ids.n)))
        st = dl_error_set(&err, DL_ERR_NOMEM, "out of memory");
    if (!st) {
        lm_seq q = {ids.ids, ids.n, start, ids.n};
        st = lm_ctx_score(ctx, NULL, &q, 1, lp, NULL, &err);
    }
    rc = st ? cli_report(&err) : print_result(&o, tok, &ids, start, lp);
    free(lp);
    lm_tok_ids_free(&ids);
    lm_ctx_free(ctx);
    lm_tok_free(tok);
    lm_model_free(m);
    return rc;
}
