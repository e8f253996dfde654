/* ds_params.c: the pipeline's parameter vocabulary: stages, pairs modes,
 * defaults (ds.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ds.h"

static const char *const stage_names[] = {"instruction", "task", "continual"};
static const char *const stage_fns[] = {"fl", "flmi", "flcg"};

dl_status ds_stage_parse(const char *name, ds_stage *out, dl_error *err)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, stage_names[i])) {
            *out = (ds_stage)i;
            return DL_OK;
        }
    dl_status st = dl_error_set(err, DL_ERR_USAGE,
                                "unknown stage '%s' (expected instruction, task or continual)",
                                name ? name : "");
    dl_error_locate(err, NULL, 0, "stage");
    return st;
}

const char *ds_stage_name(ds_stage s)
{
    return (unsigned)s < 3 ? stage_names[s] : "?";
}

const char *ds_stage_default_fn(ds_stage s)
{
    return (unsigned)s < 3 ? stage_fns[s] : "fl";
}

dl_status ds_pairs_parse(const char *s, int64_t *k, dl_error *err)
{
    if (s && !strcmp(s, "auto")) {
        *k = DS_PAIRS_AUTO;
        return DL_OK;
    }
    if (s && !strcmp(s, "all")) {
        *k = DS_PAIRS_ALL;
        return DL_OK;
    }
    if (s && !strncmp(s, "knn:", 4) && s[4] >= '0' && s[4] <= '9') {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(s + 4, &end, 10);
        if (!errno && *end == '\0' && v >= 1 && v <= 4096) {
            *k = (int64_t)v;
            return DL_OK;
        }
    }
    dl_status st = dl_error_set(err, DL_ERR_USAGE,
                                "bad pairs mode '%s' (expected auto, all or knn:K with "
                                "1 <= K <= 4096)",
                                s ? s : "");
    dl_error_locate(err, NULL, 0, "pairs");
    return st;
}

void ds_params_init(ds_params *p)
{
    memset(p, 0, sizeof *p);
    rec_reader_opts_init(&p->rec_opts);
    p->stage = DS_STAGE_INSTRUCTION;
    p->budget = 0.3;
    p->eta = 1.0;
    p->nu = 1.0;
    p->lambda = 0.4;
    p->epsilon = 0.01;
    p->pairs = DS_PAIRS_AUTO;
}
