# tests/ggml.mk: our quantised-tensor kernels against llama.cpp / ggml's own
# (fixtures from scripts/ggml-fixtures; data/ and tests/data/ are in EXTRA_DIST).
if HAVE_CHECK
check_PROGRAMS += tests/check_lm_ggml
tests_check_lm_ggml_SOURCES = tests/check_lm_ggml.c tests/dl_test.h
tests_check_lm_ggml_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_ggml_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_ggml
endif
EXTRA_DIST += scripts/ggml-fixtures tools/ggml_ref.c
