/* srv_config.h: delift-server's settings, from flags and a config file.
 *
 * Every setting has a long flag (--listen 127.0.0.1:8080) and the same name
 * as a key in a config file (--config FILE), one "key = value" per line,
 * '#' starting a comment line, blank lines ignored:
 *   listen = 127.0.0.1:8080
 *   data-dir = /var/lib/delift
 *   model = mini=/var/lib/delift/models/delift-mini.gguf   (repeatable)
 * Flags given after --config override the file, flags before it are
 * overridden by it (they are applied in order).  Values are checked
 * strictly: the whole string must parse and lie in range.
 *
 * Errors: DL_ERR_USAGE with err->field = the key and, for a file, the line.
 * Thread-safety: a config is filled once, before the server starts, and is
 * read-only afterwards.
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SRV_MODEL_NAME_MAX 64
#define SRV_PATH_MAX 4096

typedef struct srv_model {
    char name[SRV_MODEL_NAME_MAX + 1]; /* [A-Za-z0-9._-], 1..64 bytes */
    char path[SRV_PATH_MAX];
} srv_model;

typedef struct srv_config {
    char listen_host[64];   /* "127.0.0.1", "::1" */
    unsigned port;          /* 0: pick a free one */
    char data_dir[SRV_PATH_MAX];
    char api_key_file[SRV_PATH_MAX]; /* "" = no authentication */
    int workers;            /* job workers, 1..64 */
    int64_t queue_max;      /* queued jobs, 1..100000 */
    int64_t max_body;       /* dataset upload bytes */
    int64_t max_json;       /* JSON request bytes */
    unsigned max_connections;
    unsigned per_ip_connections;
    unsigned timeout_s;     /* idle connection timeout */
    unsigned retry_after_s; /* Retry-After of a 429 */
    srv_model *models;      /* owned, n_models of them */
    size_t n_models;
} srv_config;

/* Defaults: 127.0.0.1:8080, data-dir "" (required), 1 worker, queue 64,
 * uploads 1 GiB, JSON 64 KiB, 256 connections, 64 per IP, 30 s timeout,
 * Retry-After 5 s, no models, no keys. */
void srv_config_init(srv_config *c);
void srv_config_free(srv_config *c); /* frees the models; NULL is a no-op */

/* Applies one setting (key without "--").  DL_ERR_USAGE for an unknown key
 * or a bad value. */
dl_status srv_config_set(srv_config *c, const char *key, const char *value, dl_error *err);

/* Applies a config file's text (n bytes); errors carry the line. */
dl_status srv_config_load_text(srv_config *c, const char *text, size_t n, dl_error *err);

/* Reads and applies the config file at path. */
dl_status srv_config_load_file(srv_config *c, const char *path, dl_error *err);

/* Model by name (borrowed), NULL when not configured. */
const srv_model *srv_config_model(const srv_config *c, const char *name);

/* Checks the settings that must be present together (data-dir).
 * DL_ERR_USAGE naming the missing key. */
dl_status srv_config_check(const srv_config *c, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SRV_CONFIG_H */
