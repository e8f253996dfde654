/* ut_cache_fill.c: puts test entries into a score cache, for
 * tests/cli_cache.sh.
 *
 * Usage: ut_cache_fill PATH TAG DESCRIPTION N_NOICL N_ICL
 * The scope key is 32 bytes of value TAG (0..255), so its hex is TAG's two
 * digits 32 times; entry i gets target bytes derived from (TAG, i) and, for
 * ICL, example bytes from (TAG, i / 7).  Exit 0 on success, 1 otherwise
 * (the error on stderr).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ut_cache.h"

static void fill(uint8_t *p, uint64_t seed)
{
    for (int i = 0; i < UT_CACHE_KEY_LEN; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (uint8_t)(seed >> 56);
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: ut_cache_fill PATH TAG DESCRIPTION N_NOICL N_ICL\n");
        return 1;
    }
    int tag = atoi(argv[2]);
    long n_noicl = atol(argv[4]), n_icl = atol(argv[5]);
    if (tag < 0 || tag > 255 || n_noicl < 0 || n_icl < 0 || n_noicl + n_icl > 10000000) {
        fprintf(stderr, "ut_cache_fill: bad arguments\n");
        return 1;
    }
    int64_t n = n_noicl + n_icl;
    ut_cache_key *k = calloc((size_t)n + 1, sizeof *k);
    ut_cache_value *v = calloc((size_t)n + 1, sizeof *v);
    uint8_t key[UT_CACHE_KEY_LEN];
    memset(key, tag, sizeof key);
    for (int64_t i = 0; k && v && i < n; i++) {
        k[i].kind = i < n_noicl ? UT_CACHE_NOICL : UT_CACHE_ICL;
        fill(k[i].target, (uint64_t)tag << 40 | (uint64_t)i);
        if (k[i].kind == UT_CACHE_ICL)
            fill(k[i].example, (uint64_t)tag << 40 | (uint64_t)(i / 7) | 1ULL << 39);
        v[i].d = (double)i / 8.0;
        v[i].n_scored = (int32_t)i;
    }
    dl_error e;
    dl_error_clear(&e);
    ut_cache *c = NULL;
    int64_t scope = 0;
    int ok = k && v && ut_cache_open(argv[1], &c, &e) == DL_OK
          && ut_cache_scope(c, key, argv[3], &scope, &e) == DL_OK
          && ut_cache_put(c, scope, k, v, n, &e) == DL_OK;
    if (!ok) {
        char buf[1024];
        fprintf(stderr, "ut_cache_fill: %s\n", k && v ? dl_error_format(&e, buf, sizeof buf)
                                                       : "out of memory");
    }
    ut_cache_close(c);
    free(k);
    free(v);
    return ok ? 0 : 1;
}
