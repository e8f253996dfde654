# src/knn.mk: k-nearest-neighbour search (FAISS C API), its tests.
# src/knn.h is listed in src/ut.mk.
src_libdelift_la_SOURCES += src/knn.c src/knn_int.h
if HAVE_CHECK
check_PROGRAMS += tests/check_knn
tests_check_knn_SOURCES = tests/check_knn.c tests/dl_test.h
tests_check_knn_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
# Failing allocations: delift's own malloc calls go through the test's wrapper.
tests_check_knn_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc
tests_check_knn_LDADD = $(TEST_LIBS)
TESTS += tests/check_knn
endif
BENCHES += bench/bench_knn
bench_bench_knn_SOURCES = bench/bench_knn.c
