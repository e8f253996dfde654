# src/lm_q8mm.mk: integer matrix products of Q8_0 weights and 8-bit activations
# (lm_q8mm), its test and bench_q8mm.
src_libdelift_la_SOURCES += src/lm_q8mm.c src/lm_q8mm.h
if HAVE_CHECK
check_PROGRAMS += tests/check_lm_q8mm
tests_check_lm_q8mm_SOURCES = tests/check_lm_q8mm.c tests/dl_test.h
tests_check_lm_q8mm_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_q8mm_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_q8mm
endif
BENCHES += bench/bench_q8mm
bench_bench_q8mm_SOURCES = bench/bench_q8mm.c bench/bench_common.h
