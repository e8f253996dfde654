# src/lm_team.mk: the thread team a lone lane borrows (lm_team), its test,
# and bench_pp (prompt processing, for the side-by-side with llama.cpp).
src_libdelift_la_SOURCES += src/lm_team.c src/lm_team.h
if HAVE_CHECK
check_PROGRAMS += tests/check_lm_team
tests_check_lm_team_SOURCES = tests/check_lm_team.c tests/dl_test.h
tests_check_lm_team_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_team_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_team
endif
bench_bench_pp_SOURCES = bench/bench_pp.c bench/bench_common.h
bench_bench_pp_LDADD = $(LDADD)
EXTRA_DIST += bench/vs_llamacpp.sh bench/vs_llamacpp.mjs
