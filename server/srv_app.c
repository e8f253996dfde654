/* srv_app.c: the delift-server program (see srv_app.h). */
#include "config.h"

#include "srv_app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_RUNTIME = 3 };

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: delift-server --data-dir DIR [options]\n"
            "\n"
            "The delift HTTP daemon: datasets in, selection jobs run in the background,\n"
            "results out (docs/server.md, docs/openapi.yaml).\n"
            "\n"
            "Options (each also a \"key = value\" line of a --config file):\n"
            "  --listen ADDR:PORT        address to listen on (127.0.0.1:8080); port 0 picks a\n"
            "                            free port; the chosen one is printed on stdout as\n"
            "                            {\"event\":\"listening\",\"host\":...,\"port\":N}\n"
            "  --data-dir DIR            datasets, job database and results (required)\n"
            "  --model NAME=PATH         a GGUF model jobs may use (repeatable)\n"
            "  --workers N               jobs run at once (1)\n"
            "  --queue-max N             queued jobs before 429 Too Many Requests (64)\n"
            "  --api-key-file FILE       Bearer keys, one per line; without it, no auth\n"
            "  --max-body BYTES          largest dataset upload (1073741824)\n"
            "  --max-json BYTES          largest JSON request body (65536)\n"
            "  --max-connections N       open connections in all (256)\n"
            "  --per-ip-connections N    open connections per client address (64)\n"
            "  --timeout SECONDS         idle connection timeout (30)\n"
            "  --retry-after SECONDS     Retry-After of a 429 (5)\n"
            "  --config FILE             read settings from FILE, in flag order\n"
            "  --help, --version\n"
            "\n"
            "Logs: one JSON line per request on stderr.  SIGTERM/SIGINT: stop accepting,\n"
            "interrupt running jobs (they resume at the next start), exit 0.\n"
            "Exit codes: 0 ok, 1 usage error, 3 runtime failure.\n");
}

static int report(const char *what, const dl_error *e)
{
    char buf[1024];
    dl_error_format(e, buf, sizeof buf);
    fprintf(stderr, "delift-server: %s: %s\n", what, buf);
    return e->code == DL_ERR_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
}

/* Applies argv to cfg.  Returns -1 to go on, else an exit code. */
static int parse_args(srv_config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return EXIT_OK;
        }
        if (!strcmp(a, "--version")) {
            printf("delift-server %s\n", PACKAGE_VERSION);
            return EXIT_OK;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            fprintf(stderr, "delift-server: unexpected argument '%s'\n"
                            "Try 'delift-server --help'.\n", a);
            return EXIT_USAGE;
        }
        char key[64];
        const char *eq = strchr(a + 2, '='), *value;
        size_t kn = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kn >= sizeof key) {
            fprintf(stderr, "delift-server: unknown option '%s'\n", a);
            return EXIT_USAGE;
        }
        memcpy(key, a + 2, kn);
        key[kn] = '\0';
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            fprintf(stderr, "delift-server: option --%s needs a value\n", key);
            return EXIT_USAGE;
        }
        dl_error e;
        dl_error_clear(&e);
        dl_status st = !strcmp(key, "config") ? srv_config_load_file(cfg, value, &e)
                                              : srv_config_set(cfg, key, value, &e);
        if (st != DL_OK)
            return report("bad setting", &e), EXIT_USAGE;
    }
    dl_error e;
    dl_error_clear(&e);
    if (srv_config_check(cfg, &e) != DL_OK)
        return report("bad settings", &e);
    return -1;
}

static const char *model_path(void *ctx, const char *name)
{
    const srv_model *m = srv_config_model(ctx, name);
    return m ? m->path : NULL;
}

/* Opens everything but the HTTP listener. */
static dl_status app_open(srv_app *app, dl_error *err)
{
    dl_status st = DL_OK;
    if (app->cfg.api_key_file[0])
        st = srv_auth_load(app->cfg.api_key_file, &app->auth, err);
    if (st == DL_OK)
        st = srv_store_open(app->cfg.data_dir, &app->store, err);
    if (st == DL_OK && !(app->metrics = srv_metrics_new()))
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (st == DL_OK) {
        srv_jobs_config jc = {
            .data_dir = app->cfg.data_dir, .workers = app->cfg.workers,
            .queue_max = app->cfg.queue_max, .exec = app->exec, .store = app->store,
            .metrics = app->metrics, .model_path = model_path, .model_ctx = &app->cfg,
        };
        st = srv_jobs_open(&jc, &app->jobs, err);
    }
    return st;
}

static void app_close(srv_app *app)
{
    srv_jobs_free(app->jobs);
    srv_metrics_free(app->metrics);
    srv_store_free(app->store);
    srv_auth_free(app->auth);
    srv_config_free(&app->cfg);
    pthread_mutex_destroy(&app->log_mu);
}

int srv_app_main(int argc, char **argv, const srv_executor *exec)
{
    srv_app app;
    memset(&app, 0, sizeof app);
    app.exec = exec;
    atomic_init(&app.draining, 0);
    pthread_mutex_init(&app.log_mu, NULL);
    srv_config_init(&app.cfg);
    int rc = parse_args(&app.cfg, argc, argv);
    if (rc >= 0) {
        srv_config_free(&app.cfg);
        pthread_mutex_destroy(&app.log_mu);
        return rc;
    }
    /* Every thread inherits this mask: only the main thread takes signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    dl_error e;
    dl_error_clear(&e);
    unsigned port = 0;
    dl_status st = app_open(&app, &e);
    if (st == DL_OK)
        st = srv_http_start(&app, &port, &e);
    if (st != DL_OK) {
        rc = report("cannot start", &e);
        app_close(&app);
        return rc;
    }
    printf("{\"event\":\"listening\",\"host\":\"%s\",\"port\":%u}\n", app.cfg.listen_host, port);
    fflush(stdout);
    srv_log(&app, "info",
            json_pack("{s:s, s:s, s:i, s:i, s:s?, s:b}", "event", "start", "host",
                      app.cfg.listen_host, "port", (int)port, "workers", app.cfg.workers,
                      "executor", exec ? exec->name : NULL, "auth", app.auth != NULL));
    int sig = 0;
    do {
        if (sigwait(&set, &sig) != 0)
            break;
    } while (sig == SIGHUP); /* no reload: SIGHUP is ignored */
    atomic_store(&app.draining, 1);
    srv_log(&app, "info", json_pack("{s:s, s:i}", "event", "draining", "signal", sig));
    srv_jobs_drain(app.jobs); /* running jobs stop at their next cancel check */
    srv_http_stop(&app, 10);
    srv_log(&app, "info", json_pack("{s:s}", "event", "stopped"));
    app_close(&app);
    return EXIT_OK;
}
