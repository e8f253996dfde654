/* srv_auth.c: API keys (see srv_auth.h). */
#include "config.h"

#include "srv_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_sha256.h"

struct srv_auth {
    uint8_t (*digests)[DL_SHA256_DIGEST_LEN]; /* n of them */
    int64_t n;
};

int srv_auth_ct_equal(const uint8_t *x, const uint8_t *y, size_t n)
{
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (uint8_t)(x[i] ^ y[i]);
    return diff == 0;
}

static int key_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* Adds one trimmed line [s, s+n) as a key; blank and comment lines are
 * skipped.  line is for the error. */
static dl_status add_line(srv_auth *a, const char *s, size_t n, int64_t line, size_t *cap,
                          dl_error *err)
{
    while (n > 0 && (s[0] == ' ' || s[0] == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    if (n == 0 || s[0] == '#')
        return DL_OK;
    if (n < SRV_AUTH_KEY_MIN || n > SRV_AUTH_KEY_MAX)
        return dl_error_set_at(err, DL_ERR_INPUT, NULL, line, 0, -1, "key",
                               "an API key must be %d to %d bytes long", SRV_AUTH_KEY_MIN,
                               SRV_AUTH_KEY_MAX);
    for (size_t i = 0; i < n; i++)
        if (!key_char_ok((unsigned char)s[i]))
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, line, (int64_t)i + 1, -1, "key",
                                   "an API key may only hold visible ASCII characters");
    if ((size_t)a->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        void *p = realloc(a->digests, ncap * sizeof *a->digests);
        if (!p)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory reading API keys");
        a->digests = p;
        *cap = ncap;
    }
    dl_sha256(s, n, a->digests[a->n++]);
    return DL_OK;
}

dl_status srv_auth_load_text(const char *text, size_t n, srv_auth **out, dl_error *err)
{
    *out = NULL;
    srv_auth *a = calloc(1, sizeof *a);
    if (!a)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory reading API keys");
    size_t cap = 0, pos = 0;
    int64_t line = 0;
    while (pos < n) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : n - pos;
        line++;
        if (memchr(text + pos, '\0', len)) {
            srv_auth_free(a);
            return dl_error_set_at(err, DL_ERR_INPUT, NULL, line, 0, -1, "key",
                                   "NUL byte in the API key file");
        }
        dl_status st = add_line(a, text + pos, len, line, &cap, err);
        if (st != DL_OK) {
            srv_auth_free(a);
            return st;
        }
        pos += len + (nl ? 1 : 0);
    }
    if (a->n == 0) {
        srv_auth_free(a);
        return dl_error_set(err, DL_ERR_INPUT, "the API key file holds no key");
    }
    *out = a;
    return DL_OK;
}

dl_status srv_auth_load(const char *path, srv_auth **out, dl_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dl_error_set_at(err, errno == ENOENT ? DL_ERR_NOT_FOUND : DL_ERR_IO, path, 0, 0,
                               -1, NULL, "cannot open the API key file: %s", strerror(errno));
    /* Key files are small: 1 MiB is far beyond any sane one. */
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory reading API keys");
    }
    len = fread(buf, 1, cap, f);
    int bad = ferror(f) || (len == cap && fgetc(f) != EOF);
    fclose(f);
    if (bad) {
        free(buf);
        return dl_error_set_at(err, DL_ERR_INPUT, path, 0, 0, -1, NULL,
                               "the API key file cannot be read or is larger than 1 MiB");
    }
    dl_status st = srv_auth_load_text(buf, len, out, err);
    free(buf);
    dl_error_locate(err, path, 0, NULL);
    return st;
}

void srv_auth_free(srv_auth *a)
{
    if (!a)
        return;
    free(a->digests);
    free(a);
}

int64_t srv_auth_count(const srv_auth *a)
{
    return a ? a->n : 0;
}

int srv_auth_bearer_parse(const char *header, const char **tok, size_t *tok_len)
{
    if (!header)
        return 0;
    static const char scheme[] = "bearer";
    for (size_t i = 0; i < 6; i++) {
        char c = header[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != scheme[i])
            return 0;
    }
    const char *s = header + 6;
    if (*s != ' ')
        return 0;
    while (*s == ' ')
        s++;
    size_t n = 0;
    while (key_char_ok((unsigned char)s[n]))
        n++;
    if (n == 0 || s[n] != '\0')
        return 0;
    *tok = s;
    *tok_len = n;
    return 1;
}

int srv_auth_check(const srv_auth *a, const char *header)
{
    if (!a)
        return 1;
    const char *tok;
    size_t n;
    if (!srv_auth_bearer_parse(header, &tok, &n) || n > SRV_AUTH_KEY_MAX)
        return 0;
    uint8_t d[DL_SHA256_DIGEST_LEN];
    dl_sha256(tok, n, d);
    int found = 0;
    for (int64_t i = 0; i < a->n; i++)
        found |= srv_auth_ct_equal(d, a->digests[i], sizeof d);
    return found;
}
