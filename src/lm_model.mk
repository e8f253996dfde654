# src/lm_model.mk: the inference engine: model binding, backends, contexts
# and scoring (docs/engine.md), `delift model score`, `delift generate`,
# their tests and the engine benchmark.
src_libdelift_la_SOURCES += src/lm_model.c src/lm_model.h src/lm_backend.h src/lm_backend.c \
	src/lm_backend_ref.c src/lm_backend_blas.c src/lm_ctx.c src/lm_score.h
delift_SOURCES += src/cli_score.c src/cli_generate.c

if HAVE_CHECK
check_PROGRAMS += tests/check_lm_model
tests_check_lm_model_SOURCES = tests/check_lm_model.c tests/dl_test.h tests/lm_test.h tests/gguf_build.c \
	tests/gguf_build.h
tests_check_lm_model_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_model_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_model
check_PROGRAMS += tests/check_lm_fast
tests_check_lm_fast_SOURCES = tests/check_lm_fast.c tests/dl_test.h tests/lm_test.h
tests_check_lm_fast_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_fast_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_fast
endif
TESTS += tests/model_score.sh
EXTRA_DIST += tests/model_score.sh

BENCHES += bench/bench_lm
bench_bench_lm_SOURCES = bench/bench_lm.c bench/bench_common.h bench/bench_synth.c bench/bench_synth.h \
	tests/gguf_build.c tests/gguf_build.h
# The benchmark finds ../shared beside the source tree without DELIFT_SHARED;
# bench_synth.c writes its GGUF with the tests' writer (tests/gguf_build.h).
bench_bench_lm_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests -DDL_TOP_SRCDIR='"$(abs_top_srcdir)"'
