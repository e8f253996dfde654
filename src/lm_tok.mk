# src/lm_tok.mk: the GGUF tokenizers (SPM and byte-level BPE), their Unicode
# tables and `delift tokenize`.
src_libdelift_la_SOURCES += src/lm_tok.c src/lm_tok.h src/lm_tok_int.h src/lm_tok_spm.c \
	src/lm_tok_bpe.c src/lm_tok_pretok.c src/lm_tok_gguf.c \
	src/lm_unicode.c src/lm_unicode.h src/lm_unicode_data.c
EXTRA_DIST += tests/gen/gen_unicode.py tests/gen/gen_pretok_classes.py
delift_SOURCES += src/cli_tokenize.c
TESTS += tests/cli_tokenize.sh
EXTRA_DIST += tests/cli_tokenize.sh

if HAVE_CHECK
check_PROGRAMS += tests/check_lm_tok
tests_check_lm_tok_SOURCES = tests/check_lm_tok.c tests/dl_test.h tests/gguf_build.c \
	tests/gguf_build.h
tests_check_lm_tok_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_lm_tok_LDADD = $(TEST_LIBS)
TESTS += tests/check_lm_tok
endif
# The fuzz target over its seed corpus (tests/data/lm_tok), as a plain test.
check_PROGRAMS += tests/fuzz_lm_tok
tests_fuzz_lm_tok_SOURCES = tests/fuzz_lm_tok.c tests/fuzz_main.c
tests_fuzz_lm_tok_LDADD = $(LDADD)
TESTS += tests/fuzz_lm_tok.sh
EXTRA_DIST += tests/fuzz_lm_tok.sh tests/gen/gen_tok_seeds.py
