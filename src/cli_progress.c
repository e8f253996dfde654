/* cli_progress.c: progress lines and interrupt handling shared by the
 * long-running subcommands (select, score, eval): see cli.h. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_progress_mode_parse(const char *s, cli_progress_mode *out)
{
    static const char *const names[] = {"auto", "text", "json", "none"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (cli_progress_mode)i;
            return 0;
        }
    return -1;
}

int cli_progress_init(cli_progress *p, cli_progress_mode mode)
{
    memset(p, 0, sizeof *p);
    p->mode = mode == CLI_PROGRESS_AUTO ? (cli_isatty(stderr) ? CLI_PROGRESS_TEXT
                                                              : CLI_PROGRESS_NONE)
                                        : mode;
    return p->mode != CLI_PROGRESS_NONE;
}

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 360000)
        snprintf(buf, n, "--:--");
    else if (s >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    else
        snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

void cli_progress_update(void *ctx, const char *phase, int64_t done, int64_t total)
{
    cli_progress *ps = ctx;
    double t = mono();
    int new_phase = strcmp(ps->phase, phase) != 0;
    if (new_phase) {
        if (ps->open_line)
            fputc('\n', stderr);
        ps->open_line = 0;
        snprintf(ps->phase, sizeof ps->phase, "%s", phase);
        ps->phase_t0 = t;
        ps->done0 = done;
        ps->last = 0;
    }
    /* at most 4 lines a second (1 in JSON), but always the first and last of a phase */
    if (!new_phase && done < total &&
        t - ps->last < (ps->mode == CLI_PROGRESS_JSON ? 1.0 : 0.25))
        return;
    ps->last = t;
    double el = t - ps->phase_t0;
    double rate = el > 0 ? (double)(done - ps->done0) / el : 0.0;
    double eta = rate > 0 ? (double)(total - done) / rate : -1.0;
    if (ps->mode == CLI_PROGRESS_JSON) {
        fprintf(stderr,
                "{\"phase\":\"%s\",\"done\":%lld,\"total\":%lld,\"elapsed_s\":%.3f,"
                "\"rate\":%.3f,\"eta_s\":%.1f}\n",
                phase, (long long)done, (long long)total, el, rate, eta);
    } else {
        char e[32];
        fmt_eta(eta, e, sizeof e);
        fprintf(stderr, "\rdelift: %-7s %lld/%lld (%3.0f%%)  %.1f/s  ETA %s   ", phase,
                (long long)done, (long long)total,
                total > 0 ? 100.0 * (double)done / (double)total : 100.0, rate, e);
        ps->open_line = 1;
    }
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->open_line)
        fputc('\n', stderr);
    p->open_line = 0;
}

/* The flag the installed handler sets: one long-running command per process. */
static atomic_int *signal_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (signal_flag)
        atomic_store(signal_flag, 1);
}

void cli_signals_install(cli_signals *s, atomic_int *flag)
{
    atomic_store(flag, 0);
    signal_flag = flag;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &s->old_int);
    sigaction(SIGTERM, &sa, &s->old_term);
}

void cli_signals_restore(cli_signals *s)
{
    sigaction(SIGINT, &s->old_int, NULL);
    sigaction(SIGTERM, &s->old_term, NULL);
}
