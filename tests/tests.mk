# tests/tests.mk: the error model and the CLI frame.
if HAVE_CHECK
check_PROGRAMS += tests/check_dl_error
tests_check_dl_error_SOURCES = tests/check_dl_error.c tests/dl_test.h
tests_check_dl_error_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_dl_error_LDADD = $(TEST_LIBS)
TESTS += tests/check_dl_error
endif
TESTS += tests/cli_main.sh
# The GGUF writer shared by the tests and bench/bench_synth.c (tests/gguf_build.h);
# the fragments of its users list tests/gguf_build.c in their SOURCES.
if HAVE_CHECK
check_PROGRAMS += tests/check_gguf_build
tests_check_gguf_build_SOURCES = tests/check_gguf_build.c tests/dl_test.h tests/gguf_build.c \
	tests/gguf_build.h
tests_check_gguf_build_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_gguf_build_LDADD = $(TEST_LIBS)
TESTS += tests/check_gguf_build
endif
