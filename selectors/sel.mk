# selectors/sel.mk: submodular functions and greedy optimisers (issue 3).
selectors_libdlsel_la_SOURCES += selectors/sel.h selectors/sel_impl.h \
	selectors/sel_kernel.c selectors/sel_fn.c selectors/sel_fast.c \
	selectors/sel_gc.c selectors/sel_opt.c
if HAVE_CHECK
check_PROGRAMS += tests/check_sel
tests_check_sel_SOURCES = tests/check_sel.c tests/dl_test.h
tests_check_sel_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_sel_LDADD = $(TEST_LIBS)
TESTS += tests/check_sel
endif
if HAVE_CHECK
check_PROGRAMS += tests/check_sel_prop
tests_check_sel_prop_SOURCES = tests/check_sel_prop.c tests/dl_test.h
tests_check_sel_prop_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_sel_prop_LDADD = $(TEST_LIBS)
TESTS += tests/check_sel_prop
endif
BENCHES += bench/bench_sel
bench_bench_sel_SOURCES = bench/bench_sel.c
