# src/rec.mk: the records module (reader, field maps, content hash), its
# SHA-256 and UTF-8 helpers, `delift records`, and their tests.
src_libdelift_la_SOURCES += src/rec.h src/rec_internal.h src/rec_map.c src/rec_reader.c \
	src/rec_pool.c src/dl_sha256.h src/dl_sha256.c src/dl_utf8.h src/dl_utf8.c
delift_SOURCES += src/cli_records.c

if HAVE_CHECK
check_PROGRAMS += tests/check_rec
tests_check_rec_SOURCES = tests/check_rec.c tests/dl_test.h
tests_check_rec_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_rec_LDADD = $(TEST_LIBS)
TESTS += tests/check_rec
# The real pools in ../shared (skipped when absent).
check_PROGRAMS += tests/check_rec_shared
tests_check_rec_shared_SOURCES = tests/check_rec_shared.c tests/dl_test.h
tests_check_rec_shared_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_rec_shared_LDADD = $(TEST_LIBS)
TESTS += tests/check_rec_shared
# Failing allocations: --wrap routes delift's own malloc/calloc/realloc
# through the test's budget (GNU ld and lld both support it).
check_PROGRAMS += tests/check_rec_oom
tests_check_rec_oom_SOURCES = tests/check_rec_oom.c tests/dl_test.h
tests_check_rec_oom_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_rec_oom_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
tests_check_rec_oom_LDADD = $(TEST_LIBS)
TESTS += tests/check_rec_oom
endif
TESTS += tests/cli_records.sh

# The fuzz target over the golden corpus, as a plain test.
check_PROGRAMS += tests/fuzz_rec
tests_fuzz_rec_SOURCES = tests/fuzz_rec.c tests/fuzz_main.c
tests_fuzz_rec_LDADD = $(LDADD)
TESTS += tests/fuzz_rec.sh
EXTRA_DIST += tests/cli_records.sh tests/fuzz_rec.sh
