/* lm_test.h: helpers shared by the engine's Check suites (check_lm_model,
 * check_lm_fast): the models and golden JSON files of ../shared, loaded or
 * the test fails naming the file.  Include after dl_test.h. */
#ifndef LM_TEST_H
#define LM_TEST_H

#include <jansson.h>

#include "dl_test.h"
#include "lm_model.h"

/* ../shared/<rel> as a model (owned: lm_model_free). */
static inline lm_model *lm_test_load_model(const char *rel)
{
    char path[4096];
    const char *p = dl_test_shared(rel);
    ck_assert_msg(p != NULL, "missing %s", rel);
    snprintf(path, sizeof path, "%s", p);
    lm_model *m = NULL;
    dl_error err;
    dl_error_clear(&err);
    dl_status st = lm_model_load(path, &m, &err);
    ck_assert_msg(st == DL_OK, "%s: %s", rel, err.message);
    return m;
}

/* ../shared/<rel> as JSON (owned: json_decref). */
static inline json_t *lm_test_load_json(const char *rel)
{
    const char *p = dl_test_shared(rel);
    ck_assert_msg(p != NULL, "missing %s", rel);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", rel, je.text);
    return j;
}

#endif /* LM_TEST_H */
