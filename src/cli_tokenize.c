/* cli_tokenize.c: `delift tokenize`, the token ids of a text under a GGUF
 * model's own tokenizer, in the form of llama.cpp's tokenizer-test .out
 * files: ids separated by spaces on one line, no BOS/EOS unless asked. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lm_gguf.h"
#include "lm_tok.h"

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift tokenize --model M.gguf (--text S | --file F) [options]\n"
            "\n"
            "Prints the token ids of the whole text under the model's tokenizer\n"
            "(tokenizer.ggml.*: SentencePiece 'llama' or byte-level BPE 'gpt2'),\n"
            "separated by spaces on one line.  The text is taken byte for byte: no\n"
            "newline is stripped from a file.  Special-token text such as '</s>' is\n"
            "tokenised as plain text unless --parse-special is given.\n"
            "\n"
            "Options:\n"
            "  --model M.gguf     the GGUF file whose tokenizer to use (required)\n"
            "  --text S           tokenise the string S\n"
            "  --file F           tokenise the contents of file F ('-' for stdin)\n"
            "  --bos              prepend the BOS token\n"
            "  --eos              append the EOS token\n"
            "  --parse-special    match CONTROL token texts (e.g. '<s>') as tokens\n"
            "  --json             print {\"n_tokens\": N, \"ids\": [...]} instead\n"
            "  -h, --help         this help\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 bad input (a missing file, a malformed\n"
            "GGUF file, an unsupported tokenizer), 3 runtime failure (I/O, memory).\n");
}

typedef struct tokenize_opts {
    const char *model, *text, *file;
    unsigned flags;
    int json;
} tokenize_opts;

/* Returns -1 to go on, else an exit code. */
static int tokenize_parse(int argc, char **argv, tokenize_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--model") ? &o->model
                         : !strcmp(a, "--text")  ? &o->text
                         : !strcmp(a, "--file")  ? &o->file
                                                 : NULL;
        if (dst) {
            if (i + 1 >= argc)
                return cli_usage_error("tokenize", "%s needs a value", a);
            if (*dst)
                return cli_usage_error("tokenize", "%s given twice", a);
            *dst = argv[++i];
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tokenize_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--bos")) {
            o->flags |= LM_TOK_ADD_BOS;
        } else if (!strcmp(a, "--eos")) {
            o->flags |= LM_TOK_ADD_EOS;
        } else if (!strcmp(a, "--parse-special")) {
            o->flags |= LM_TOK_PARSE_SPECIAL;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else {
            return cli_usage_error("tokenize", "unexpected argument '%s'", a);
        }
    }
    if (!o->model)
        return cli_usage_error("tokenize", "--model is required");
    if (!o->text == !o->file)
        return cli_usage_error("tokenize", "give exactly one of --text and --file");
    return -1;
}

static void print_ids(const lm_tok_ids *ids, int json)
{
    if (json)
        printf("{\"n_tokens\": %" PRId64 ", \"ids\": [", ids->n);
    for (int64_t i = 0; i < ids->n; i++)
        printf(i ? (json ? ", %" PRId32 : " %" PRId32) : "%" PRId32, ids->ids[i]);
    printf(json ? "]}\n" : "\n");
}

int cli_tokenize_main(int argc, char **argv)
{
    tokenize_opts o = {0};
    int rc = tokenize_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    dl_error err;
    dl_error_clear(&err);
    char *buf = NULL;
    size_t len = 0;
    lm_gguf *g = NULL;
    lm_tok *tok = NULL;
    lm_tok_ids ids = {0};
    dl_status st = o.file ? cli_read_file(o.file, &buf, &len, &err) : DL_OK;
    if (st == DL_OK && !(g = lm_gguf_open(o.model, &err)))
        st = err.code;
    if (st == DL_OK && !(tok = lm_tok_from_gguf(g, &err))) {
        st = err.code;
        dl_error_locate(&err, o.model, 0, NULL);
    }
    if (st == DL_OK) {
        const char *text = o.file ? buf : o.text;
        st = lm_tok_encode(tok, text, o.file ? len : strlen(text), o.flags, &ids, &err);
    }
    if (st == DL_OK) {
        print_ids(&ids, o.json);
        if (fflush(stdout) != 0 || ferror(stdout))
            st = dl_error_set(&err, DL_ERR_IO, "cannot write the output");
    }
    rc = st == DL_OK ? CLI_EXIT_OK : cli_report(&err);
    lm_tok_ids_free(&ids);
    lm_tok_free(tok);
    lm_gguf_free(g);
    free(buf);
    return rc;
}
