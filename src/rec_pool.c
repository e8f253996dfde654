/* rec_pool.c: a whole pool in memory, read through the streaming reader.
 * Each record owns one block holding its strings back to back. */
#include "rec_internal.h"

#include <stdlib.h>
#include <string.h>

/* Copies src into one owned block; dst's pointers point into it. */
static dl_status pool_record_copy(rec_record *dst, const rec_record *src, dl_error *err)
{
    size_t id_len = strlen(src->id);
    size_t lens[5] = {id_len, src->instruction_len, src->input_len, src->output_len,
                      src->raw_len};
    const char *from[5] = {src->id, src->instruction, src->input, src->output, src->raw};
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += lens[i] + 1;
    char *block = malloc(total);
    if (!block)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (%zu bytes for a record)", total);
    *dst = *src;
    const char **to[5] = {&dst->id, &dst->instruction, &dst->input, &dst->output, &dst->raw};
    char *p = block;
    for (int i = 0; i < 5; i++) {
        memcpy(p, from[i], lens[i]);
        p[lens[i]] = '\0';
        *to[i] = p;
        p += lens[i] + 1;
    }
    return DL_OK;
}

dl_status rec_pool_load(const char *path, const rec_reader_opts *opts, rec_pool **out,
                        dl_error *err)
{
    *out = NULL;
    rec_reader *r = NULL;
    dl_status st = rec_reader_open(path, opts, &r, err);
    if (st != DL_OK)
        return st;
    rec_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        rec_reader_free(r);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    size_t cap = 0;
    const rec_record *rec;
    while ((st = rec_reader_next(r, &rec, err)) == DL_OK && rec) {
        if ((size_t)pool->n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            rec_record *nr = realloc(pool->records, ncap * sizeof *nr);
            if (!nr) {
                st = dl_error_set(err, DL_ERR_NOMEM, "out of memory (%zu records)", ncap);
                break;
            }
            pool->records = nr;
            cap = ncap;
        }
        if ((st = pool_record_copy(&pool->records[pool->n], rec, err)) != DL_OK)
            break;
        pool->n++;
    }
    pool->map = *rec_reader_map(r);
    pool->form = rec_reader_form(r);
    pool->n_skipped = rec_reader_n_skipped(r);
    rec_reader_free(r);
    if (st != DL_OK) {
        rec_pool_free(pool);
        return st;
    }
    *out = pool;
    return DL_OK;
}

void rec_pool_free(rec_pool *pool)
{
    if (!pool)
        return;
    for (int64_t i = 0; i < pool->n; i++)
        free((void *)pool->records[i].id); /* the start of the record's block */
    free(pool->records);
    free(pool);
}
