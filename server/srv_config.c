/* srv_config.c: settings from flags and files (see srv_config.h). */
#include "config.h"

#include "srv_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_config_init(srv_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->port = 8080;
    c->workers = 1;
    c->queue_max = 64;
    c->max_body = (int64_t)1 << 30;
    c->max_json = (int64_t)64 << 10;
    c->max_connections = 256;
    c->per_ip_connections = 64;
    c->timeout_s = 30;
    c->retry_after_s = 5;
}

void srv_config_free(srv_config *c)
{
    if (!c)
        return;
    free(c->models);
    c->models = NULL;
    c->n_models = 0;
}

static dl_status bad(dl_error *err, const char *key, const char *msg)
{
    return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, key, "%s", msg);
}

/* Whole-string decimal integer in [min, max]. */
static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s || *s == ' ' || *s == '+')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "HOST:PORT", "[V6]:PORT". */
static dl_status set_listen(srv_config *c, const char *v, dl_error *err)
{
    const char *colon = strrchr(v, ':');
    if (!colon)
        return bad(err, "listen", "expected ADDR:PORT (e.g. 127.0.0.1:8080)");
    const char *h = v;
    size_t hn = (size_t)(colon - v);
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']')
        h++, hn -= 2;
    int64_t port;
    if (hn == 0 || hn >= sizeof c->listen_host || parse_i64(colon + 1, 0, 65535, &port) != 0)
        return bad(err, "listen", "expected ADDR:PORT with a port from 0 to 65535");
    memcpy(c->listen_host, h, hn);
    c->listen_host[hn] = '\0';
    c->port = (unsigned)port;
    return DL_OK;
}

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SRV_MODEL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static dl_status add_model(srv_config *c, const char *v, dl_error *err)
{
    const char *eq = strchr(v, '=');
    if (!eq || !name_ok(v, (size_t)(eq - v)) || !eq[1] || strlen(eq + 1) >= SRV_PATH_MAX)
        return bad(err, "model", "expected NAME=PATH with NAME of 1..64 [A-Za-z0-9._-]");
    size_t nn = (size_t)(eq - v);
    for (size_t i = 0; i < c->n_models; i++)
        if (strlen(c->models[i].name) == nn && !memcmp(c->models[i].name, v, nn))
            return bad(err, "model", "a model name is given twice");
    srv_model *m = realloc(c->models, (c->n_models + 1) * sizeof *m);
    if (!m)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    c->models = m;
    m += c->n_models++;
    memcpy(m->name, v, nn);
    m->name[nn] = '\0';
    snprintf(m->path, sizeof m->path, "%s", eq + 1);
    return DL_OK;
}

static dl_status set_path(char *dst, size_t n, const char *key, const char *v, dl_error *err)
{
    if (!*v || strlen(v) >= n)
        return bad(err, key, "expected a path");
    snprintf(dst, n, "%s", v);
    return DL_OK;
}

typedef struct num_key {
    const char *key;
    int64_t min, max;
    size_t off;   /* offset in srv_config */
    int width;    /* 8: int64_t, 4: unsigned/int */
} num_key;

#define NUM(k, lo, hi, field) {k, lo, hi, offsetof(srv_config, field), (int)sizeof(((srv_config *)0)->field)}
static const num_key num_keys[] = {
    NUM("workers", 1, 64, workers),
    NUM("queue-max", 1, 100000, queue_max),
    NUM("max-body", 1, (int64_t)1 << 40, max_body),
    NUM("max-json", 1024, (int64_t)16 << 20, max_json),
    NUM("max-connections", 1, 65536, max_connections),
    NUM("per-ip-connections", 1, 65536, per_ip_connections),
    NUM("timeout", 1, 3600, timeout_s),
    NUM("retry-after", 1, 3600, retry_after_s),
};
#undef NUM

dl_status srv_config_set(srv_config *c, const char *key, const char *value, dl_error *err)
{
    if (!value)
        return bad(err, key, "needs a value");
    if (!strcmp(key, "listen"))
        return set_listen(c, value, err);
    if (!strcmp(key, "model"))
        return add_model(c, value, err);
    if (!strcmp(key, "data-dir"))
        return set_path(c->data_dir, sizeof c->data_dir, key, value, err);
    if (!strcmp(key, "api-key-file"))
        return set_path(c->api_key_file, sizeof c->api_key_file, key, value, err);
    for (size_t i = 0; i < sizeof num_keys / sizeof num_keys[0]; i++) {
        const num_key *k = &num_keys[i];
        if (strcmp(key, k->key) != 0)
            continue;
        int64_t v;
        if (parse_i64(value, k->min, k->max, &v) != 0)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, key,
                                   "expected an integer from %lld to %lld", (long long)k->min,
                                   (long long)k->max);
        char *p = (char *)c + k->off;
        if (k->width == 8) {
            int64_t x = v;
            memcpy(p, &x, sizeof x);
        } else {
            int32_t x = (int32_t)v; /* int and unsigned share the representation */
            memcpy(p, &x, sizeof x);
        }
        return DL_OK;
    }
    char field[DL_ERROR_FIELD_MAX];
    snprintf(field, sizeof field, "%.100s", key);
    return bad(err, field, "unknown setting");
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r'))
        (*n)--;
}

dl_status srv_config_load_text(srv_config *c, const char *text, size_t n, dl_error *err)
{
    size_t pos = 0;
    int64_t line = 0;
    char key[64], value[SRV_PATH_MAX + SRV_MODEL_NAME_MAX + 2];
    while (pos < n) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : n - pos;
        const char *s = text + pos;
        pos += len + (nl ? 1 : 0);
        line++;
        trim(&s, &len);
        if (len == 0 || s[0] == '#')
            continue;
        const char *eq = memchr(s, '=', len);
        if (memchr(s, '\0', len) || !eq)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, line, 0, -1, NULL,
                                   "expected \"key = value\"");
        const char *k = s, *v = eq + 1;
        size_t kn = (size_t)(eq - s), vn = len - kn - 1;
        trim(&k, &kn);
        trim(&v, &vn);
        if (kn == 0 || kn >= sizeof key || vn >= sizeof value)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, line, 0, -1, NULL,
                                   "a key or a value is empty or too long");
        memcpy(key, k, kn);
        key[kn] = '\0';
        memcpy(value, v, vn);
        value[vn] = '\0';
        dl_status st = srv_config_set(c, key, value, err);
        if (st != DL_OK) {
            dl_error_locate(err, NULL, line, NULL);
            return st;
        }
    }
    return DL_OK;
}

dl_status srv_config_load_file(srv_config *c, const char *path, dl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dl_error_set_at(err, errno == ENOENT ? DL_ERR_NOT_FOUND : DL_ERR_IO, path, 0, 0,
                               -1, NULL, "cannot open the config file: %s", strerror(errno));
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    size_t len = buf ? fread(buf, 1, cap, f) : 0;
    int bad_read = !buf || ferror(f) || (len == cap && fgetc(f) != EOF);
    fclose(f);
    if (bad_read) {
        free(buf);
        return dl_error_set_at(err, DL_ERR_USAGE, path, 0, 0, -1, NULL,
                               "the config file cannot be read or is larger than 1 MiB");
    }
    dl_status st = srv_config_load_text(c, buf, len, err);
    free(buf);
    dl_error_locate(err, path, 0, NULL);
    return st;
}

const srv_model *srv_config_model(const srv_config *c, const char *name)
{
    for (size_t i = 0; name && i < c->n_models; i++)
        if (!strcmp(c->models[i].name, name))
            return &c->models[i];
    return NULL;
}

dl_status srv_config_check(const srv_config *c, dl_error *err)
{
    if (!c->data_dir[0])
        return bad(err, "data-dir", "required: the directory for datasets and jobs");
    return DL_OK;
}
