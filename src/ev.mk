# src/ev.mk: `delift eval` (subset quality as in-context examples, ev.h),
# its tests (tests/check_ev.c: the summary and the argument errors;
# tests/cli_eval.sh: the CLI on real runs), and the quality study script
# (scripts/quality, results in docs/quality.md).
# ev sits in libdlpipe beside the selection pipeline: it reuses ds_hash_file.
src_libdlpipe_la_SOURCES += src/ev.h src/ev_eval.c
delift_SOURCES += src/cli_eval.c
TESTS += tests/cli_eval.sh
EXTRA_DIST += scripts/quality

if HAVE_CHECK
check_PROGRAMS += tests/check_ev
tests_check_ev_SOURCES = tests/check_ev.c tests/dl_test.h
tests_check_ev_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_ev_LDADD = $(TEST_LIBS)
TESTS += tests/check_ev
endif
