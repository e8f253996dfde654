/* cli.h: the `delift` command-line program's shared pieces.
 *
 * Each subcommand is one function `int cli_<name>_main(int argc, char **argv)`
 * in src/cli_<name>.c, where argv[0] is the subcommand's name and the return
 * value is the process exit code (README, "Exit codes").  The dispatch table
 * lives in cli_main.c.  Only CLI code prints; it calls the library, which
 * reports through dl_error.
 */
#ifndef DL_CLI_H
#define DL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dl_error.h"

/* Exit codes: the documented contract for scripts (README, "Exit codes"). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 1,     /* bad flags or arguments */
    CLI_EXIT_INPUT = 2,     /* bad input data: the message names file, line, field */
    CLI_EXIT_RUNTIME = 3,   /* I/O, memory, numeric or internal failure */
    CLI_EXIT_CANCELLED = 130 /* interrupted (SIGINT/SIGTERM) */
};

/* ---- subcommands (one per src/cli_<name>.c) --------------------------- */
int cli_records_main(int argc, char **argv);
int cli_model_main(int argc, char **argv);
int cli_optimize_main(int argc, char **argv);
int cli_tokenize_main(int argc, char **argv);
int cli_model_score_main(int argc, char **argv);
int cli_generate_main(int argc, char **argv);
int cli_select_main(int argc, char **argv);
int cli_score_main(int argc, char **argv);
int cli_eval_main(int argc, char **argv);
int cli_cache_main(int argc, char **argv);

/* ---- shared helpers (cli_util.c) ------------------------------------- */

/* Prints "delift: error: <formatted err>" to stderr; returns the exit code
 * for err->code. */
int cli_report(const dl_error *err);

/* Prints "delift CMD: MESSAGE" and a pointer to --help to stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Strict number parsing for flag values: the whole string must be a number
 * in range.  Return 0 on success, -1 otherwise (out untouched). */
int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int cli_parse_double(const char *s, double *out);

/* True when stream is a terminal (progress output is quiet otherwise). */
int cli_isatty(FILE *stream);

#endif /* DL_CLI_H */
