# tests/tests.mk: the error model and the CLI frame.
if HAVE_CHECK
check_PROGRAMS += tests/check_dl_error
tests_check_dl_error_SOURCES = tests/check_dl_error.c tests/dl_test.h
tests_check_dl_error_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_dl_error_LDADD = $(TEST_LIBS)
TESTS += tests/check_dl_error
endif
TESTS += tests/cli_main.sh
