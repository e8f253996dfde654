# selectors/sel_io.mk: kernel file I/O (.npy, scipy CSR .npz) and `delift optimize`.
selectors_libdlsel_la_SOURCES += selectors/sel_npy.c selectors/sel_npy.h \
	selectors/sel_npz.c selectors/sel_npz.h
if HAVE_CHECK
check_PROGRAMS += tests/check_sel_npy
tests_check_sel_npy_SOURCES = tests/check_sel_npy.c tests/dl_test.h
tests_check_sel_npy_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_sel_npy_LDADD = $(TEST_LIBS)
TESTS += tests/check_sel_npy
endif
# The fuzz target over the fixtures and the malformed corpus, as a plain test.
check_PROGRAMS += tests/fuzz_npy
tests_fuzz_npy_SOURCES = tests/fuzz_npy.c tests/fuzz_main.c
tests_fuzz_npy_LDADD = $(LDADD)
TESTS += tests/fuzz_npy.sh
delift_SOURCES += src/cli_optimize.c
# `delift optimize` end to end; golden_to_npy converts ../shared's golden
# cases to .npy for it at test time.
check_PROGRAMS += tests/golden_to_npy
tests_golden_to_npy_SOURCES = tests/golden_to_npy.c
tests_golden_to_npy_LDADD = $(LDADD)
TESTS += tests/cli_optimize.sh
EXTRA_DIST += tests/gen/gen_npy_fixtures.py tests/fuzz_npy.sh tests/cli_optimize.sh
