/* cli_main.c: the `delift` program: global flags and subcommand dispatch. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*main)(int argc, char **argv);
} cli_command;

/* One line per subcommand, in the order --help lists them. */
static const cli_command commands[] = {
    {"select", "select a subset of a pool with DELIFT (utility kernels + greedy)", cli_select_main},
    {"score", "compute DELIFT's utility kernels of a pool and write them as .npy", cli_score_main},
    {"eval", "measure a subset as in-context examples for held-out records", cli_eval_main},
    {"cache", "show, locate or clear the score cache (resumable runs)", cli_cache_main},
    {"records", "inspect and validate a pool of records (JSONL or a JSON array)", cli_records_main},
    {"model", "GGUF models: describe a file (info), score a target (score)", cli_model_main},
    {"optimize", "pick a subset greedily from kernel files (.npy, .npz)", cli_optimize_main},
    {"tokenize", "print the token ids of a text under a GGUF model's tokenizer", cli_tokenize_main},
    {"generate", "continue a prompt greedily with a GGUF model (smoke tests)", cli_generate_main},
};

static const size_t n_commands = sizeof commands / sizeof commands[0];

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: delift [--version] [--help] <command> [<args>]\n"
            "\n"
            "DELIFT data selection: scores every pair of records with a language model\n"
            "and picks the subset of an instruction-tuning pool worth fine-tuning on.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < n_commands; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Run 'delift <command> --help' for a command's options.\n"
            "\n"
            "Exit codes: 0 ok, 1 usage error, 2 bad input (the message names the file,\n"
            "line and field), 3 runtime failure (I/O, memory, internal), 130 interrupted.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("delift %s\n", PACKAGE_VERSION);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) {
            print_usage(stdout);
            return CLI_EXIT_OK;
        }
        for (size_t i = 0; i < n_commands; i++) {
            if (!strcmp(argv[2], commands[i].name)) {
                char *sub_argv[] = {argv[2], "--help", NULL};
                return commands[i].main(2, sub_argv);
            }
        }
        fprintf(stderr, "delift: unknown command '%s'\nTry 'delift --help'.\n", argv[2]);
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; i < n_commands; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "delift: unknown command '%s'\nTry 'delift --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}
