# src/lm_gguf.mk: the GGUF reader, tensor types and `delift model`.
src_libdelift_la_SOURCES += src/lm_gguf.c src/lm_gguf.h src/lm_quant.c src/lm_quant.h
delift_SOURCES += src/cli_model.c
if HAVE_CHECK
check_PROGRAMS += tests/check_lm_gguf tests/check_lm_quant
tests_check_lm_gguf_SOURCES = tests/check_lm_gguf.c tests/dl_test.h tests/gguf_build.c \
	tests/gguf_build.h
tests_check_lm_gguf_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_gguf_LDADD = $(TEST_LIBS)
tests_check_lm_quant_SOURCES = tests/check_lm_quant.c tests/dl_test.h
tests_check_lm_quant_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_quant_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_gguf tests/check_lm_quant
endif
# The fuzz target over the seed corpus (tests/data/gguf), as a plain test.
check_PROGRAMS += tests/fuzz_gguf
tests_fuzz_gguf_SOURCES = tests/fuzz_gguf.c tests/fuzz_main.c
tests_fuzz_gguf_LDADD = $(LDADD)
TESTS += tests/fuzz_gguf.sh tests/model_info.sh
BENCHES += bench/bench_quant
bench_bench_quant_SOURCES = bench/bench_quant.c
EXTRA_DIST += tests/fuzz_gguf.sh tests/model_info.sh docs/gguf.md
