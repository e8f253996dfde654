# src/ut_cache.mk: the SQLite score cache / checkpoint, its tests, `delift cache`.
src_libdelift_la_SOURCES += src/ut_cache.c
delift_SOURCES += src/cli_cache.c

if HAVE_CHECK
check_PROGRAMS += tests/check_ut_cache
tests_check_ut_cache_SOURCES = tests/check_ut_cache.c tests/dl_test.h
tests_check_ut_cache_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_ut_cache_LDADD = $(TEST_LIBS)
TESTS += tests/check_ut_cache
endif
# `delift cache` (tests/ut_cache_fill fills a cache for it).
check_PROGRAMS += tests/ut_cache_fill
tests_ut_cache_fill_SOURCES = tests/ut_cache_fill.c
TESTS += tests/cli_cache.sh
# The fuzz target over damaged caches, as a plain test.
check_PROGRAMS += tests/fuzz_ut_cache
tests_fuzz_ut_cache_SOURCES = tests/fuzz_ut_cache.c tests/fuzz_main.c
tests_fuzz_ut_cache_LDADD = $(LDADD)
TESTS += tests/fuzz_ut_cache.sh

# Throughput of put and get (`make bench`).
BENCHES += bench/bench_ut_cache
bench_bench_ut_cache_SOURCES = bench/bench_ut_cache.c
