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

#include <signal.h>
#include <stdatomic.h>
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

/* Reads all of path ('-' = stdin) into *buf (owned: free()), NUL-terminated
 * after its *len bytes.  DL_ERR_NOT_FOUND, DL_ERR_IO (file named), DL_ERR_NOMEM. */
dl_status cli_read_file(const char *path, char **buf, size_t *len, dl_error *err);

/* --template-noicl / --template-icl: reads files[0] (no-ICL) and files[1]
 * (ICL), either may be NULL, into text[] (owned by the caller: free() both,
 * also after an error), points ut's templates at them and checks ut
 * (ut_config_check).  Returns -1 to go on, else the usage exit code after
 * printing the error for command cmd. */
struct ut_config;
int cli_templates_load(const char *cmd, const char *const files[2], char *text[2],
                       struct ut_config *ut);

/* True when stream is a terminal (progress output is quiet otherwise). */
int cli_isatty(FILE *stream);

/* ---- progress and interrupts (cli_progress.c) ------------------------ */

/* --progress: auto (text on a terminal, else none), text, json, none. */
typedef enum cli_progress_mode {
    CLI_PROGRESS_AUTO = 0,
    CLI_PROGRESS_TEXT = 1,
    CLI_PROGRESS_JSON = 2,
    CLI_PROGRESS_NONE = 3
} cli_progress_mode;

/* 0 and *out set, or -1 for an unknown name. */
int cli_progress_mode_parse(const char *s, cli_progress_mode *out);

/* Progress on stderr: text lines rewritten in place ("phase done/total
 * (pct) rate/s ETA m:ss"), or one JSON object per line
 * ({"phase","done","total","elapsed_s","rate","eta_s"}), at most 4 (text)
 * or 1 (JSON) per second plus the first and last of each phase. */
typedef struct cli_progress {
    cli_progress_mode mode; /* resolved: never AUTO */
    char phase[16];
    double phase_t0, last;
    int64_t done0;
    int open_line;
} cli_progress;

/* Resolves AUTO; returns 1 when there is anything to report. */
int cli_progress_init(cli_progress *p, cli_progress_mode mode);
/* The callback for library progress hooks; ctx is a cli_progress. */
void cli_progress_update(void *ctx, const char *phase, int64_t done, int64_t total);
/* Ends an open text line. */
void cli_progress_finish(cli_progress *p);

/* While installed, SIGINT and SIGTERM set *flag (cleared at install), which
 * the library polls to stop with DL_ERR_CANCELLED.  One at a time. */
typedef struct cli_signals {
    struct sigaction old_int, old_term;
} cli_signals;
void cli_signals_install(cli_signals *s, atomic_int *flag);
void cli_signals_restore(cli_signals *s);

#endif /* DL_CLI_H */
