/* fuzz_srv_select.c: what the selection executor parses (srv_exec_select.h).
 *
 * The first byte picks the target, the rest is its input:
 *   even  a selection spec (JSON): srv_spec_validate, then, for a valid
 *         one, srv_select_params_from_spec.  Invariant: the server's spec
 *         validator and the pipeline's parsers agree, so a normalised spec
 *         maps onto ds_params or fails only on an option (field
 *         "options.NAME"); and the mapped stage, budget and pairs are the
 *         spec's.
 *   odd   a ranking JSONL as ds_run writes it: srv_select_ranking_convert.
 *         Invariant: success means a JSON object whose "k" counts the
 *         non-empty lines, each kept in "selected".
 * Never a crash, a leak or a hang. */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv_exec_select.h"
#include "srv_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_spec(const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, 0, NULL);
    json_t *norm = NULL;
    if (!v || srv_spec_validate(v, NULL, NULL, &norm, NULL) != DL_OK) {
        json_decref(v);
        return;
    }
    ds_params p;
    ds_params_init(&p);
    dl_error e;
    dl_error_clear(&e);
    dl_status st = srv_select_params_from_spec(norm, &p, &e);
    if (st != DL_OK) {
        assert(st == DL_ERR_USAGE && !strncmp(e.field, "options.", 8));
    } else {
        ds_stage want;
        assert(ds_stage_parse(json_string_value(json_object_get(norm, "stage")), &want, NULL) ==
               DL_OK);
        assert(p.stage == want);
        assert(p.budget == json_number_value(json_object_get(norm, "budget")));
        int64_t k;
        assert(ds_pairs_parse(json_string_value(json_object_get(norm, "pairs")), &k, NULL) ==
               DL_OK);
        assert(p.pairs == k);
    }
    json_decref(norm);
    json_decref(v);
}

static void fuzz_ranking(const uint8_t *data, size_t size)
{
    char in[] = "/tmp/fuzz_srv_select.XXXXXX";
    int fd = mkstemp(in);
    if (fd < 0)
        return;
    size_t nonempty = 0, len = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            nonempty += len > 0;
            len = 0;
        } else {
            len++;
        }
    }
    nonempty += len > 0;
    int wrote = write(fd, data, size) == (ssize_t)size;
    close(fd);
    char out[sizeof in + 8];
    snprintf(out, sizeof out, "%s.json", in);
    if (wrote && srv_select_ranking_convert(in, 7, out, NULL) == DL_OK) {
        json_t *doc = json_load_file(out, 0, NULL);
        assert(json_is_object(doc));
        assert(json_integer_value(json_object_get(doc, "k")) == (json_int_t)nonempty);
        assert(json_array_size(json_object_get(doc, "selected")) == nonempty);
        json_decref(doc);
    } else {
        assert(access(out, F_OK) != 0); /* a failure leaves no file */
    }
    unlink(out);
    unlink(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        fuzz_spec(data + 1, size - 1);
    else
        fuzz_ranking(data + 1, size - 1);
    return 0;
}
