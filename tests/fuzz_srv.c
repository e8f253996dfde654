/* fuzz_srv.c: the request parsing delift-server does itself.
 *
 * The first byte picks the parser, the rest is its input:
 *   0  route matching: "METHOD PATH" (split at the first space)
 *   1  Authorization header against a fixed key set
 *   2  API key file text
 *   3  selection spec (JSON) validation and hashing
 *   4  Idempotency-Key and X-Request-Id checks
 *   5  config file text
 * Every input must be answered without a crash, a leak or a hang, and a
 * few invariants are checked (a matched id is a valid id; a normalised
 * spec validates again to itself). */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "srv_auth.h"
#include "srv_config.h"
#include "srv_route.h"
#include "srv_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_route(const char *s)
{
    char method[32];
    const char *sp = strchr(s, ' ');
    size_t mn = sp ? (size_t)(sp - s) : 0;
    if (mn >= sizeof method)
        mn = sizeof method - 1;
    memcpy(method, s, mn);
    method[mn] = '\0';
    srv_match m;
    srv_match_status st = srv_route_match(method, sp ? sp + 1 : s, &m);
    if (st == SRV_MATCH_OK) {
        assert(m.route < SRV_ROUTE_COUNT);
        assert(m.id[0] == '\0' || srv_route_id_valid(m.id, strlen(m.id)));
    } else {
        assert(m.route == SRV_ROUTE_NONE);
    }
}

static void fuzz_auth_header(const char *s)
{
    static const char keys[] = "fuzz-key-0123456789\nanother-key-abcdefgh\n";
    srv_auth *a = NULL;
    if (srv_auth_load_text(keys, sizeof keys - 1, &a, NULL) != DL_OK)
        abort();
    int ok = srv_auth_check(a, s);
    const char *tok;
    size_t n;
    if (ok) /* only a well-formed header can pass */
        assert(srv_auth_bearer_parse(s, &tok, &n));
    srv_auth_free(a);
}

static void fuzz_spec(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, 0, NULL);
    if (!in)
        return;
    json_t *out = NULL, *again = NULL;
    dl_error e;
    dl_error_clear(&e);
    if (srv_spec_validate(in, NULL, NULL, &out, &e) == DL_OK) {
        char h1[65], h2[65];
        assert(srv_spec_validate(out, NULL, NULL, &again, NULL) == DL_OK);
        assert(json_equal(out, again));
        srv_spec_hash(out, h1, NULL);
        srv_spec_hash(again, h2, NULL);
        assert(!strcmp(h1, h2));
    }
    json_decref(again);
    json_decref(out);
    json_decref(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t which = data[0] % 6;
    data++, size--;
    char *s = malloc(size + 1); /* the NUL-terminated view for string parsers */
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    switch (which) {
    case 0: fuzz_route(s); break;
    case 1: fuzz_auth_header(s); break;
    case 2: {
        srv_auth *a = NULL;
        srv_auth_load_text((const char *)data, size, &a, NULL);
        srv_auth_free(a);
        break;
    }
    case 3: fuzz_spec(data, size); break;
    case 4:
        srv_spec_idem_key_valid(s);
        srv_spec_request_id_valid(s);
        break;
    case 5: {
        srv_config c;
        srv_config_init(&c);
        srv_config_load_text(&c, (const char *)data, size, NULL);
        srv_config_free(&c);
        break;
    }
    }
    free(s);
    return 0;
}
