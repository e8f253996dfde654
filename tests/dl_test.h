/* dl_test.h: helpers shared by the Check suites.
 *
 * Tests find their fixtures through the environment set by `make check`
 * (Makefile.am, AM_TESTS_ENVIRONMENT): DELIFT_SRCDIR (the source tree),
 * DELIFT_SHARED (../shared beside it), DELIFT_BUILDDIR and DELIFT_BIN.
 * A test that needs ../shared and finds it absent exits 77 (skipped).
 */
#ifndef DL_TEST_H
#define DL_TEST_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DL_TEST_SKIP 77

/* Path under the source tree; returns a static buffer (one at a time). */
static inline const char *dl_test_src(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("DELIFT_SRCDIR");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

/* Path under ../shared, or NULL when the shared material is absent. */
static inline const char *dl_test_shared(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("DELIFT_SHARED");
    if (!root)
        return NULL;
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Exits 77 unless ../shared/<rel> exists: call at the top of main(). */
static inline void dl_test_require_shared(const char *rel)
{
    if (!dl_test_shared(rel)) {
        printf("SKIP: ../shared/%s not present\n", rel);
        exit(DL_TEST_SKIP);
    }
}

/* Runs a suite; returns the exit status for main(). */
static inline int dl_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* DL_TEST_H */
