/* fuzz_rec.c: the records reader and the --fields parser over arbitrary bytes.
 *
 * Each input is read through an in-memory stream with several option sets
 * (auto, skip-invalid, every preset, a custom map, a tiny record limit).
 * Beyond "no crash, no leak, no hang", it checks the reader's promises:
 * lengths match the NUL-terminated strings, raw is what the file holds at
 * the record's offset, the hash matches the fields, and a clean end means
 * at least one record. */
#define _GNU_SOURCE /* fmemopen */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int ok)
{
    if (!ok)
        abort(); /* a broken promise is a finding */
}

static void fuzz_read(const uint8_t *data, size_t size, const rec_reader_opts *opts)
{
    FILE *f = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
    if (!f)
        return;
    rec_reader *r = NULL;
    dl_error err;
    dl_error_clear(&err);
    if (rec_reader_open_stream(f, "fuzz", opts, &r, &err) != DL_OK) {
        fclose(f);
        return;
    }
    const rec_record *rec;
    dl_status st;
    int64_t n = 0;
    while ((st = rec_reader_next(r, &rec, &err)) == DL_OK && rec) {
        fuzz_check(strlen(rec->instruction) == rec->instruction_len);
        fuzz_check(strlen(rec->input) == rec->input_len);
        fuzz_check(strlen(rec->output) == rec->output_len);
        fuzz_check(strlen(rec->raw) == rec->raw_len && rec->id[0] != '\0');
        fuzz_check(rec->offset >= 0 && (size_t)rec->offset + rec->raw_len <= size);
        fuzz_check(!memcmp(data + rec->offset, rec->raw, rec->raw_len));
        fuzz_check(rec->raw_len <= opts->max_record_bytes && rec->index == n);
        uint8_t h[REC_HASH_LEN];
        rec_hash_content(rec->instruction, rec->instruction_len, rec->input, rec->input_len,
                         rec->output, rec->output_len, h);
        fuzz_check(!memcmp(h, rec->hash, REC_HASH_LEN));
        n++;
    }
    fuzz_check(st != DL_OK || n > 0);
    fuzz_check(st == DL_OK || err.code == st);
    fuzz_check(rec_reader_n_records(r) == n);
    rec_reader_free(r);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The --fields parser, over the input as a string. */
    char spec[512];
    size_t k = size < sizeof spec - 1 ? size : sizeof spec - 1;
    memcpy(spec, data, k);
    spec[k] = '\0';
    rec_map m;
    dl_error err;
    dl_error_clear(&err);
    if (rec_map_parse(spec, &m, &err) == DL_OK) {
        char buf[1024];
        rec_map_describe(&m, buf, sizeof buf);
    } else {
        fuzz_check(err.code == DL_ERR_USAGE);
    }

    static const char *const maps[] = {"auto", "alpaca", "messages", "question-answer",
                                       "instruction=a,input=b,output=c,id=d"};
    rec_reader_opts opts;
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        rec_reader_opts_init(&opts);
        fuzz_check(rec_map_parse(maps[i], &opts.map, NULL) == DL_OK);
        opts.skip_invalid = (int)(i % 2 == 0);
        fuzz_read(data, size, &opts);
    }
    rec_reader_opts_init(&opts);
    opts.max_record_bytes = 48;
    opts.skip_invalid = 1;
    opts.allow_duplicate_ids = 1;
    fuzz_read(data, size, &opts);
    return 0;
}
