/* cli_model.c: `delift model <subcommand>`: GGUF model files.
 *
 * Subcommands live in the table below: one row each, `info` here, others
 * (score) in their own files with a prototype in cli.h.
 */
#include "config.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lm_gguf.h"

static int model_info_main(int argc, char **argv);

typedef struct model_sub {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
} model_sub;

static const model_sub subs[] = {
    {"info", "describe a GGUF file: architecture, hyperparameters, tensors", model_info_main},
    {"score", "per-token log-probabilities of a target after a prompt", cli_model_score_main},
};

static const size_t n_subs = sizeof subs / sizeof subs[0];

static void model_usage(FILE *out)
{
    fprintf(out, "Usage: delift model <subcommand> [<args>]\n\nSubcommands:\n");
    for (size_t i = 0; i < n_subs; i++)
        fprintf(out, "  %-8s %s\n", subs[i].name, subs[i].summary);
    fprintf(out, "\nRun 'delift model <subcommand> --help' for its options.\n");
}

int cli_model_main(int argc, char **argv)
{
    if (argc < 2) {
        model_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        model_usage(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < n_subs; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].main(argc - 1, argv + 1);
    return cli_usage_error("model", "unknown subcommand '%s'", argv[1]);
}

/* ---- info --------------------------------------------------------------- */

static void info_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift model info [--json] [--keys] M.gguf\n"
            "\n"
            "Describes a GGUF model or vocabulary file: format version, architecture,\n"
            "hyperparameters, tokenizer, tensor count, per-type tensor counts and bytes,\n"
            "parameter count and file size.  The file is fully validated first.\n"
            "\n"
            "  --json   one JSON object on stdout instead of text\n"
            "  --keys   also list every metadata key with its type and value (arrays:\n"
            "           element type, length and their first elements)\n"
            "  -h, --help\n"
            "\n"
            "Exit codes: 0 ok, 1 usage, 2 bad or unsupported file (the message gives\n"
            "the byte offset and what is wrong), 3 I/O or memory failure.\n");
}

/* The hyperparameters shown, as "<arch>.<suffix>" keys. */
static const char *const hparams[] = {
    "context_length", "embedding_length", "block_count", "feed_forward_length",
    "attention.head_count", "attention.head_count_kv", "rope.dimension_count",
    "rope.freq_base", "attention.layer_norm_rms_epsilon", "vocab_size",
};

typedef struct type_tally {
    int64_t count;
    uint64_t bytes;
    int64_t elements;
} type_tally;

#define N_TALLY 64

static json_t *scalar_json(const lm_gguf_kv *kv)
{
    switch (kv->type) {
    case LM_GGUF_TYPE_STRING: return json_stringn(kv->str, kv->str_len);
    case LM_GGUF_TYPE_BOOL: return json_boolean(kv->u64);
    case LM_GGUF_TYPE_FLOAT32: case LM_GGUF_TYPE_FLOAT64: return json_real(kv->f64);
    case LM_GGUF_TYPE_INT8: case LM_GGUF_TYPE_INT16: case LM_GGUF_TYPE_INT32:
    case LM_GGUF_TYPE_INT64: return json_integer(kv->i64);
    default:
        /* json_int_t is signed 64-bit: huge UINT64 values go as reals. */
        return kv->u64 > INT64_MAX ? json_real((double)kv->u64) : json_integer((json_int_t)kv->u64);
    }
}

#define ARR_PREVIEW 8

static json_t *kv_json(const lm_gguf_kv *kv)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(lm_gguf_type_name(kv->type)));
    if (kv->type != LM_GGUF_TYPE_ARRAY) {
        json_object_set_new(o, "value", scalar_json(kv));
        return o;
    }
    const lm_gguf_array *a = &kv->arr;
    json_object_set_new(o, "element_type", json_string(lm_gguf_type_name(a->type)));
    json_object_set_new(o, "length", json_integer(a->n));
    json_t *head = json_array();
    for (int64_t i = 0; i < a->n && i < ARR_PREVIEW; i++) {
        if (a->type == LM_GGUF_TYPE_STRING) {
            size_t len;
            const char *s = lm_gguf_arr_str(a, i, &len);
            json_array_append_new(head, json_stringn(s, len));
        } else {
            json_array_append_new(head, json_real(lm_gguf_arr_f64(a, i)));
        }
    }
    json_object_set_new(o, "head", head);
    return o;
}

/* Prints a value for the text listing; strings shown up to 60 bytes with
 * control characters escaped. */
static void print_str(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf(len > 60 ? "\"..." : "\"");
}

static void print_kv_text(const lm_gguf_kv *kv)
{
    printf("  %-44s %-8s ", kv->key, lm_gguf_type_name(kv->type));
    switch (kv->type) {
    case LM_GGUF_TYPE_STRING: print_str(kv->str, kv->str_len); break;
    case LM_GGUF_TYPE_BOOL: printf("%s", kv->u64 ? "true" : "false"); break;
    case LM_GGUF_TYPE_FLOAT32: case LM_GGUF_TYPE_FLOAT64: printf("%.9g", kv->f64); break;
    case LM_GGUF_TYPE_INT8: case LM_GGUF_TYPE_INT16: case LM_GGUF_TYPE_INT32:
    case LM_GGUF_TYPE_INT64: printf("%" PRId64, kv->i64); break;
    case LM_GGUF_TYPE_ARRAY: {
        const lm_gguf_array *a = &kv->arr;
        printf("[%s x %" PRId64 "]", lm_gguf_type_name(a->type), a->n);
        for (int64_t i = 0; i < a->n && i < 4; i++) {
            putchar(' ');
            if (a->type == LM_GGUF_TYPE_STRING) {
                size_t len;
                const char *s = lm_gguf_arr_str(a, i, &len);
                print_str(s, len);
            } else {
                printf("%.9g", lm_gguf_arr_f64(a, i));
            }
        }
        if (a->n > 4)
            printf(" ...");
        break;
    }
    default: printf("%" PRIu64, kv->u64); break;
    }
    putchar('\n');
}

typedef struct info_facts {
    const char *tok_model;
    int64_t vocab;
    int64_t params;
    type_tally tally[N_TALLY];
    uint64_t other_bytes;
} info_facts;

static void gather(const lm_gguf *g, info_facts *f)
{
    memset(f, 0, sizeof *f);
    f->tok_model = "";
    f->vocab = -1;
    const lm_gguf_kv *kv = lm_gguf_find_kv(g, "tokenizer.ggml.model");
    if (kv && kv->type == LM_GGUF_TYPE_STRING)
        f->tok_model = kv->str;
    kv = lm_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (kv && kv->type == LM_GGUF_TYPE_ARRAY)
        f->vocab = kv->arr.n;
    for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_gguf_tensor *t = lm_gguf_tensor_at(g, i);
        f->params += t->n_elements;
        if (t->type < N_TALLY) {
            f->tally[t->type].count++;
            f->tally[t->type].bytes += t->nbytes;
            f->tally[t->type].elements += t->n_elements;
        }
    }
}

static json_t *info_json(const char *path, const lm_gguf *g, const info_facts *f, int keys)
{
    const char *arch = lm_gguf_arch(g);
    json_t *o = json_object(), *hp = json_object(), *types = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "file_size", json_integer((json_int_t)lm_gguf_file_size(g)));
    json_object_set_new(o, "version", json_integer(lm_gguf_version(g)));
    json_object_set_new(o, "alignment", json_integer((json_int_t)lm_gguf_alignment(g)));
    json_object_set_new(o, "architecture", json_string(arch));
    const lm_gguf_kv *name = lm_gguf_find_kv(g, "general.name");
    if (name && name->type == LM_GGUF_TYPE_STRING)
        json_object_set_new(o, "name", json_stringn(name->str, name->str_len));
    char key[256];
    for (size_t i = 0; i < sizeof hparams / sizeof hparams[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, hparams[i]);
        const lm_gguf_kv *kv = lm_gguf_find_kv(g, key);
        if (kv && kv->type != LM_GGUF_TYPE_ARRAY && kv->type != LM_GGUF_TYPE_STRING)
            json_object_set_new(hp, hparams[i], scalar_json(kv));
    }
    json_object_set_new(o, "hyperparameters", hp);
    json_object_set_new(o, "tokenizer_model", json_string(f->tok_model));
    json_object_set_new(o, "vocab_size", f->vocab >= 0 ? json_integer(f->vocab) : json_null());
    json_object_set_new(o, "n_kv", json_integer(lm_gguf_n_kv(g)));
    json_object_set_new(o, "n_tensors", json_integer(lm_gguf_n_tensors(g)));
    json_object_set_new(o, "n_parameters", json_integer(f->params));
    for (uint32_t t = 0; t < N_TALLY; t++) {
        if (!f->tally[t].count)
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "tensors", json_integer(f->tally[t].count));
        json_object_set_new(e, "bytes", json_integer((json_int_t)f->tally[t].bytes));
        json_object_set_new(e, "parameters", json_integer(f->tally[t].elements));
        json_object_set_new(e, "supported", json_boolean(lm_quant_supported(t)));
        json_object_set_new(types, lm_quant_name(t), e);
    }
    json_object_set_new(o, "tensor_types", types);
    if (keys) {
        json_t *k = json_object();
        for (int64_t i = 0; i < lm_gguf_n_kv(g); i++) {
            const lm_gguf_kv *kv = lm_gguf_kv_at(g, i);
            json_object_set_new(k, kv->key, kv_json(kv));
        }
        json_object_set_new(o, "keys", k);
    }
    return o;
}

static void info_text(const char *path, const lm_gguf *g, const info_facts *f, int keys)
{
    const char *arch = lm_gguf_arch(g);
    printf("file:          %s\n", path);
    printf("file size:     %zu bytes\n", lm_gguf_file_size(g));
    printf("gguf version:  %u (alignment %zu)\n", lm_gguf_version(g), lm_gguf_alignment(g));
    printf("architecture:  %s\n", arch[0] ? arch : "(none)");
    const lm_gguf_kv *name = lm_gguf_find_kv(g, "general.name");
    if (name && name->type == LM_GGUF_TYPE_STRING)
        printf("name:          %s\n", name->str);
    char key[256];
    for (size_t i = 0; i < sizeof hparams / sizeof hparams[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, hparams[i]);
        const lm_gguf_kv *kv = lm_gguf_find_kv(g, key);
        if (!kv || kv->type == LM_GGUF_TYPE_ARRAY || kv->type == LM_GGUF_TYPE_STRING)
            continue;
        if (kv->type == LM_GGUF_TYPE_FLOAT32 || kv->type == LM_GGUF_TYPE_FLOAT64)
            printf("  %-34s %g\n", hparams[i], kv->f64);
        else if (kv->type == LM_GGUF_TYPE_BOOL)
            printf("  %-34s %s\n", hparams[i], kv->u64 ? "true" : "false");
        else
            printf("  %-34s %" PRId64 "\n", hparams[i], kv->i64);
    }
    printf("tokenizer:     %s\n", f->tok_model[0] ? f->tok_model : "(none)");
    if (f->vocab >= 0)
        printf("vocab size:    %" PRId64 "\n", f->vocab);
    printf("metadata keys: %" PRId64 "\n", lm_gguf_n_kv(g));
    printf("tensors:       %" PRId64 "\n", lm_gguf_n_tensors(g));
    printf("parameters:    %" PRId64 "\n", f->params);
    for (uint32_t t = 0; t < N_TALLY; t++)
        if (f->tally[t].count)
            printf("  %-6s %6" PRId64 " tensors %12" PRIu64 " bytes %12" PRId64 " params%s\n",
                   lm_quant_name(t), f->tally[t].count, f->tally[t].bytes, f->tally[t].elements,
                   lm_quant_supported(t) ? "" : "  (no kernels: cannot run)");
    if (keys) {
        printf("keys:\n");
        for (int64_t i = 0; i < lm_gguf_n_kv(g); i++)
            print_kv_text(lm_gguf_kv_at(g, i));
    }
}

static int model_info_main(int argc, char **argv)
{
    int json = 0, keys = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            info_usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--keys")) {
            keys = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("model info", "unknown option '%s'", argv[i]);
        } else if (path) {
            return cli_usage_error("model info", "one model file expected, got '%s' and '%s'",
                                   path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path)
        return cli_usage_error("model info", "missing the model file");
    dl_error err;
    dl_error_clear(&err);
    lm_gguf *g = lm_gguf_open(path, &err);
    if (!g)
        return cli_report(&err);
    info_facts f;
    gather(g, &f);
    int rc = CLI_EXIT_OK;
    if (json) {
        json_t *o = info_json(path, g, &f, keys);
        if (!o || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) != 0)
            rc = CLI_EXIT_RUNTIME;
        else
            putchar('\n');
        json_decref(o);
    } else {
        info_text(path, g, &f, keys);
    }
    lm_gguf_free(g);
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_RUNTIME;
    return rc;
}
