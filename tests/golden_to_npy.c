/* golden_to_npy.c: converts one ../shared/golden/submodlib case (JSON) into
 * .npy kernels with the delift writer, for tests/cli_optimize.sh.
 *
 * Usage: golden_to_npy CASE.json OUTDIR
 * Writes OUTDIR/K.npy, Q.npy, P.npy (those the case has) as float32 and
 * prints one line to stdout:
 *   FLAGS<TAB>EXPECTED
 * where FLAGS are the `delift optimize` flags that run the case (kernel
 * paths included) and EXPECTED is "index gain index gain ..." from the
 * case's expected / expected_gains_exact.  Exits 3 for a case marked
 * reference_quirk (a defect of the reference we do not copy), 1 on error.
 */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sel_npy.h"

/* Writes a JSON n x m array of numbers as float32 .npy; returns 0 on success. */
static int write_matrix(const json_t *rows, const char *path)
{
    size_t n = json_array_size(rows);
    size_t m = n ? json_array_size(json_array_get(rows, 0)) : 0;
    float *v = malloc((n * m > 0 ? n * m : 1) * sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);
        if (json_array_size(row) != m) {
            free(v);
            return -1;
        }
        for (size_t j = 0; j < m; j++)
            v[i * m + j] = (float)json_number_value(json_array_get(row, j));
    }
    dl_error err;
    dl_error_clear(&err);
    int64_t shape[2] = {(int64_t)n, (int64_t)m};
    dl_status s = sel_npy_write(path, SEL_NPY_F32, 2, shape, v, 0, &err);
    if (s)
        fprintf(stderr, "golden_to_npy: %s: %s\n", path, err.message);
    free(v);
    return s ? -1 : 0;
}

static const char *fn_name(const char *ref)
{
    static const char *const map[][2] = {{"FL", "fl"},     {"FLMI", "flmi"}, {"FLCG", "flcg"},
                                         {"GC", "gc"},     {"GCMI", "gcmi"}, {"GCCG", "gccg"}};
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (!strcmp(ref, map[k][0]))
            return map[k][1];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: golden_to_npy CASE.json OUTDIR\n");
        return 1;
    }
    json_error_t jerr;
    json_t *c = json_load_file(argv[1], 0, &jerr);
    if (!c) {
        fprintf(stderr, "golden_to_npy: %s:%d: %s\n", argv[1], jerr.line, jerr.text);
        return 1;
    }
    int rc = 0;
    const char *fn = fn_name(json_string_value(json_object_get(c, "function")));
    if (json_object_get(c, "reference_quirk"))
        rc = 3;
    else if (!fn)
        rc = 1;
    char flags[4096], path[2048];
    int used = rc ? 0 : snprintf(flags, sizeof flags, "--function %s --optimizer %s --budget %lld",
                                 fn, !strcmp(json_string_value(json_object_get(c, "optimizer")),
                                             "NaiveGreedy") ? "naive" : "lazy",
                                 (long long)json_integer_value(json_object_get(c, "budget")));
    static const char *const mats[][3] = {{"kernel", "K.npy", "--kernel"},
                                          {"query_kernel", "Q.npy", "--query"},
                                          {"private_kernel", "P.npy", "--private"}};
    for (size_t k = 0; !rc && k < 3; k++) {
        const json_t *m = json_object_get(c, mats[k][0]);
        if (!json_is_array(m))
            continue;
        snprintf(path, sizeof path, "%s/%s", argv[2], mats[k][1]);
        if (write_matrix(m, path) != 0)
            rc = 1;
        used += snprintf(flags + used, sizeof flags - (size_t)used, " %s %s", mats[k][2], path);
    }
    const json_t *params = json_object_get(c, "params");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)params, key, val)
        if (!rc)
            used += snprintf(flags + used, sizeof flags - (size_t)used, " --%s %.17g", key,
                             json_number_value(val));
    if (!rc && json_is_true(json_object_get(c, "stopIfZeroGain")))
        used += snprintf(flags + used, sizeof flags - (size_t)used, " --stop-if-zero-gain");
    if (!rc && json_is_true(json_object_get(c, "stopIfNegativeGain")))
        used += snprintf(flags + used, sizeof flags - (size_t)used, " --stop-if-negative-gain");
    if (!rc) {
        printf("%s\t", flags);
        const json_t *exp = json_object_get(c, "expected");
        const json_t *exact = json_object_get(c, "expected_gains_exact");
        for (size_t k = 0; k < json_array_size(exp); k++)
            printf("%s%lld %.17g", k ? " " : "",
                   (long long)json_integer_value(json_array_get(json_array_get(exp, k), 0)),
                   json_number_value(json_array_get(exact, k)));
        printf("\n");
    }
    json_decref(c);
    return rc;
}
