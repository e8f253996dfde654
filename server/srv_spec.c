/* srv_spec.c: job spec validation and header checks (see srv_spec.h). */
#include "config.h"

#include "srv_spec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_sha256.h"
#include "sel.h"
#include "srv_route.h"

#define OPTIONS_MAX 32
#define OPTION_KEY_MAX 64
#define OPTION_STRING_MAX 1024
#define KNN_K_MAX 4096

static dl_status bad(dl_error *err, const char *field, const char *msg)
{
    return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, field, "%s", msg);
}

/* A dataset id member: absent/null -> NULL, else a valid id string. */
static dl_status get_dataset(const json_t *spec, const char *key, const char **out,
                             dl_error *err)
{
    const json_t *v = json_object_get(spec, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return DL_OK;
    if (!json_is_string(v) ||
        !srv_route_id_valid(json_string_value(v), json_string_length(v)))
        return bad(err, key, "must be a dataset id (as returned by POST /v1/datasets)");
    *out = json_string_value(v);
    return DL_OK;
}

static dl_status check_budget(const json_t *v, dl_error *err)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 1)
            return bad(err, "budget", "an integer budget must be at least 1");
        return DL_OK;
    }
    if (json_is_real(v)) {
        double b = json_real_value(v);
        if (!(b > 0.0 && b < 1.0))
            return bad(err, "budget", "a fractional budget must lie strictly between 0 and 1");
        return DL_OK;
    }
    return bad(err, "budget", "required: a number of records (>= 1) or a fraction in (0, 1)");
}

static dl_status check_pairs(const char *s, dl_error *err)
{
    if (!strcmp(s, "auto") || !strcmp(s, "all"))
        return DL_OK;
    if (strncmp(s, "knn:", 4) != 0)
        return bad(err, "pairs", "must be \"auto\", \"all\" or \"knn:K\"");
    const char *d = s + 4;
    long k = 0;
    size_t i = 0;
    for (; d[i] >= '0' && d[i] <= '9' && i < 5; i++)
        k = k * 10 + (d[i] - '0');
    if (i == 0 || d[i] != '\0' || k < 1 || k > KNN_K_MAX)
        return bad(err, "pairs", "knn:K needs an integer K from 1 to 4096");
    return DL_OK;
}

static int option_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > OPTION_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static dl_status check_options(const json_t *v, dl_error *err)
{
    if (!json_is_object(v))
        return bad(err, "options", "must be an object");
    if (json_object_size(v) > OPTIONS_MAX)
        return bad(err, "options", "at most 32 options");
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x) {
        char field[OPTION_KEY_MAX + 16];
        if (!option_key_ok(k))
            return bad(err, "options", "option names are 1..64 characters of [A-Za-z0-9_]");
        snprintf(field, sizeof field, "options.%s", k);
        if (json_is_string(x) && json_string_length(x) > OPTION_STRING_MAX)
            return bad(err, field, "a string option is at most 1024 bytes");
        if (json_is_real(x) && !isfinite(json_real_value(x)))
            return bad(err, field, "must be finite");
        if (!json_is_string(x) && !json_is_number(x) && !json_is_boolean(x))
            return bad(err, field, "an option is a string, a number or a boolean");
    }
    return DL_OK;
}

static const char *const known_members[] = {"model", "stage", "budget", "function", "pool",
                                            "target", "existing", "pairs", "options"};

static dl_status check_members(const json_t *spec, dl_error *err)
{
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)spec, k, x) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known_members / sizeof known_members[0]; i++)
            ok |= !strcmp(k, known_members[i]);
        if (!ok) {
            char field[DL_ERROR_FIELD_MAX];
            snprintf(field, sizeof field, "%.100s", k);
            return bad(err, field, "unknown member of a selection spec");
        }
    }
    return DL_OK;
}

/* Stage, its default function, and which side dataset it needs. */
static dl_status check_stage(const char *stage, const char *target, const char *existing,
                             const char **def_fn, dl_error *err)
{
    if (!strcmp(stage, "instruction")) {
        *def_fn = "fl";
        if (target || existing)
            return bad(err, target ? "target" : "existing",
                       "stage instruction takes neither target nor existing");
    } else if (!strcmp(stage, "task")) {
        *def_fn = "flmi";
        if (!target)
            return bad(err, "target", "stage task needs a target dataset");
        if (existing)
            return bad(err, "existing", "stage task takes no existing dataset");
    } else if (!strcmp(stage, "continual")) {
        *def_fn = "flcg";
        if (!existing)
            return bad(err, "existing", "stage continual needs an existing dataset");
        if (target)
            return bad(err, "target", "stage continual takes no target dataset");
    } else {
        return bad(err, "stage", "must be \"instruction\", \"task\" or \"continual\"");
    }
    return DL_OK;
}

static const char *str_member(const json_t *spec, const char *key)
{
    return json_string_value(json_object_get(spec, key));
}

dl_status srv_spec_validate(const json_t *spec, int (*model_known)(void *ctx, const char *name),
                            void *ctx, json_t **out, dl_error *err)
{
    *out = NULL;
    if (!json_is_object(spec))
        return bad(err, "", "a selection spec is a JSON object");
    dl_status st = check_members(spec, err);
    if (st != DL_OK)
        return st;
    const char *model = str_member(spec, "model");
    if (!model)
        return bad(err, "model", "required: the name of a model the server offers");
    if (model_known && !model_known(ctx, model))
        return bad(err, "model", "unknown model (GET /v1/models lists them)");
    const char *stage = str_member(spec, "stage");
    if (!stage)
        return bad(err, "stage", "required: \"instruction\", \"task\" or \"continual\"");
    const json_t *budget = json_object_get(spec, "budget");
    if ((st = check_budget(budget, err)) != DL_OK)
        return st;
    const char *pool, *target, *existing, *def_fn = "fl";
    if ((st = get_dataset(spec, "pool", &pool, err)) != DL_OK ||
        (st = get_dataset(spec, "target", &target, err)) != DL_OK ||
        (st = get_dataset(spec, "existing", &existing, err)) != DL_OK)
        return st;
    if (!pool)
        return bad(err, "pool", "required: the dataset id of the pool");
    if ((st = check_stage(stage, target, existing, &def_fn, err)) != DL_OK)
        return st;
    const json_t *fnv = json_object_get(spec, "function");
    const char *fn = def_fn;
    if (fnv && !json_is_null(fnv)) {
        sel_fn_kind kind;
        if (!json_is_string(fnv) || sel_fn_kind_parse(json_string_value(fnv), &kind, NULL) != DL_OK)
            return bad(err, "function", "unknown selector function");
        fn = sel_fn_kind_name(kind);
    }
    const json_t *pv = json_object_get(spec, "pairs");
    const char *pairs = "auto";
    if (pv && !json_is_null(pv)) {
        if (!json_is_string(pv))
            return bad(err, "pairs", "must be \"auto\", \"all\" or \"knn:K\"");
        pairs = json_string_value(pv);
        if ((st = check_pairs(pairs, err)) != DL_OK)
            return st;
    }
    const json_t *opts = json_object_get(spec, "options");
    if (opts && !json_is_null(opts) && (st = check_options(opts, err)) != DL_OK)
        return st;
    json_t *norm = json_pack("{s:s, s:s, s:O, s:s, s:s, s:s?, s:s?, s:s, s:o}", "model", model,
                             "stage", stage, "budget", budget, "function", fn, "pool", pool,
                             "target", target, "existing", existing, "pairs", pairs, "options",
                             opts && !json_is_null(opts) ? json_deep_copy(opts) : json_object());
    if (!norm)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    /* s:s? leaves the key out for NULL: make target/existing explicit nulls. */
    if (!json_object_get(norm, "target"))
        json_object_set_new(norm, "target", json_null());
    if (!json_object_get(norm, "existing"))
        json_object_set_new(norm, "existing", json_null());
    *out = norm;
    return DL_OK;
}

dl_status srv_spec_hash(const json_t *spec, char hex[65], dl_error *err)
{
    char *s = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!s)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    uint8_t d[DL_SHA256_DIGEST_LEN];
    dl_sha256(s, strlen(s), d);
    free(s);
    dl_sha256_hex(d, hex);
    return DL_OK;
}

int srv_spec_idem_key_valid(const char *key)
{
    if (!key)
        return 0;
    size_t n = 0;
    for (; key[n]; n++)
        if ((unsigned char)key[n] < 0x21 || (unsigned char)key[n] > 0x7e)
            return 0;
    return n >= 1 && n <= 255;
}

int srv_spec_request_id_valid(const char *id)
{
    if (!id)
        return 0;
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n >= 1 && n <= 128;
}
