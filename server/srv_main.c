/* srv_main.c: delift-server, the HTTP daemon (docs/server.md), with the
 * selection pipeline as its executor (srv_exec_select.h).
 *
 * The executor needs the data directory before the daemon starts (the
 * score cache, shared by every job, is DATA/cache/scores.sqlite), and
 * srv_app_main() parses the flags itself.  So the flags are read here once
 * more with the same srv_config functions, only to learn --data-dir and
 * --workers; a bad flag is ignored here and reported by srv_app_main(),
 * which parses them for real. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "srv_app.h"
#include "srv_config.h"
#include "srv_exec_select.h"

#define CACHE_REL "cache/scores.sqlite"

/* Applies the flags to cfg the way srv_app_main() does ("--key value",
 * "--key=value", "--config FILE" in order), ignoring every error. */
static void peek_config(srv_config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2] || !strcmp(a, "--help") || !strcmp(a, "--version"))
            continue;
        char key[64];
        const char *eq = strchr(a + 2, '='), *value;
        size_t kn = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kn >= sizeof key)
            continue;
        memcpy(key, a + 2, kn);
        key[kn] = '\0';
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            break;
        if (!strcmp(key, "config"))
            srv_config_load_file(cfg, value, NULL);
        else
            srv_config_set(cfg, key, value, NULL);
    }
}

int main(int argc, char **argv)
{
    srv_config cfg;
    srv_config_init(&cfg);
    peek_config(&cfg, argc, argv);
    char cache[SRV_PATH_MAX + sizeof CACHE_REL + 1] = "", root[2 * SRV_PATH_MAX + 2] = "";
    if (cfg.data_dir[0])
        snprintf(cache, sizeof cache, "%s/%s", cfg.data_dir, CACHE_REL);
    /* The root scrubbed from messages is absolute: a relative "data" would
     * also match the word in a message (the job's own paths, relative like
     * the flag, are scrubbed one by one anyway). */
    char cwd[SRV_PATH_MAX];
    if (cfg.data_dir[0] == '/')
        snprintf(root, sizeof root, "%s", cfg.data_dir);
    else if (cfg.data_dir[0] && getcwd(cwd, sizeof cwd))
        snprintf(root, sizeof root, "%s/%s", cwd, cfg.data_dir);
    /* Jobs run side by side on --workers threads: each gets a share of the
     * CPUs by default instead of all of them (results do not depend on it). */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t threads = cfg.workers > 1 && ncpu > 0 ? (ncpu + cfg.workers - 1) / cfg.workers : 0;
    srv_select_config sc = {.cache_path = cache[0] ? cache : NULL,
                            .private_root = root[0] ? root : NULL,
                            .threads = threads};
    srv_select_exec *x = NULL;
    dl_error e;
    dl_error_clear(&e);
    if (srv_select_exec_new(&sc, &x, &e) != DL_OK) {
        srv_config_free(&cfg);
        fprintf(stderr, "delift-server: cannot start: %s\n", e.message);
        return 3;
    }
    srv_config_free(&cfg);
    int rc = srv_app_main(argc, argv, srv_select_exec_executor(x));
    srv_select_exec_free(x);
    return rc;
}
