# src/ut.mk: the DELIFT utility (src/ut*.c) and the selection pipeline
# (src/ds*.c, libdlpipe), `delift score|select|eval`, their tests and bench.
src_libdlpipe_la_SOURCES += src/ds.h src/ds_int.h src/ds_params.c src/ds_run.c src/ds_util.c
src_libdelift_la_SOURCES += src/ut.h src/ut_cache.h src/knn.h
src_libdelift_la_SOURCES += src/ut.c

if HAVE_CHECK
check_PROGRAMS += tests/check_ut
tests_check_ut_SOURCES = tests/check_ut.c tests/dl_test.h
tests_check_ut_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_ut_LDADD = $(TEST_LIBS)
TESTS += tests/check_ut
endif
delift_SOURCES += src/cli_select.c
TESTS += tests/cli_select.sh

BENCHES += bench/bench_ut
bench_bench_ut_SOURCES = bench/bench_ut.c bench/bench_common.h
bench_bench_ut_CPPFLAGS = $(AM_CPPFLAGS) -DDL_TOP_SRCDIR='"$(abs_top_srcdir)"'
