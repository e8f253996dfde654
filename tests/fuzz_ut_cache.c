/* fuzz_ut_cache.c: the score cache opened on a hostile file.
 *
 * The input is written to a scratch file and opened as a cache; when that
 * succeeds, every read the CLI and the scorer make runs on it (stat, the
 * scope list, a get in the first scopes) and then a put and a clear.  Any
 * status is fine; a crash, a leak, a hang or a status outside dl_status is
 * not.  tests/fuzz_ut_cache.sh runs it over damaged copies of real caches.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ut_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_scope(void *ctx, const ut_cache_scope_info *info)
{
    (void)info;
    ++*(int64_t *)ctx;
    return 0;
}

static void check_status(dl_status st)
{
    if (st < DL_OK || st > DL_ERR_NOT_FOUND)
        abort();
}

static void exercise(ut_cache *c, const uint8_t *data, size_t size)
{
    ut_cache_stats stats;
    int64_t n_scopes = 0;
    check_status(ut_cache_stat(c, &stats, NULL));
    check_status(ut_cache_scope_each(c, count_scope, &n_scopes, NULL));
    ut_cache_key keys[4];
    ut_cache_value vals[4];
    uint8_t found[4];
    memset(keys, 0, sizeof keys);
    for (int i = 0; i < 4; i++) {
        keys[i].kind = (uint8_t)(i & 1);
        for (int j = 0; j < UT_CACHE_KEY_LEN && size; j++) {
            keys[i].target[j] = data[(size_t)(i * 64 + j) % size];
            if (keys[i].kind == UT_CACHE_ICL)
                keys[i].example[j] = data[(size_t)(i * 64 + 32 + j) % size];
        }
        vals[i] = (ut_cache_value){.d = -0.0, .n_scored = i, .n_cut = 0};
    }
    for (int64_t scope = 1; scope <= 3; scope++)
        check_status(ut_cache_get(c, scope, keys, 4, vals, found, NULL));
    uint8_t key[UT_CACHE_KEY_LEN] = {0xfe};
    int64_t scope = 0;
    dl_status st = ut_cache_scope(c, key, "fuzz", &scope, NULL);
    check_status(st);
    if (st == DL_OK)
        check_status(ut_cache_put(c, scope, keys, vals, 4, NULL));
    check_status(ut_cache_clear(c, NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], side[540];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fuzz_ut_cache.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    ut_cache *c = NULL;
    dl_error e;
    dl_error_clear(&e);
    dl_status st = ut_cache_open(path, &c, &e);
    check_status(st);
    if (st == DL_OK)
        exercise(c, data, size);
    else if (c || strcmp(e.file, path) != 0)
        abort(); /* a failed open returns no handle and names the file */
    ut_cache_close(c);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return 0;
}
