# server/srv.mk: the HTTP daemon's library, delift-server, and their tests.
server_libdlsrv_la_SOURCES += server/srv_error.c server/srv_error.h \
	server/srv_route.c server/srv_route.h server/srv_auth.c server/srv_auth.h \
	server/srv_spec.c server/srv_spec.h server/srv_config.c server/srv_config.h \
	server/srv_metrics.c server/srv_metrics.h server/srv_store.c server/srv_store.h \
	server/srv_jobs.c server/srv_jobs.h server/srv_exec.h \
	server/srv_exec_select.c server/srv_exec_select.h \
	server/srv_http.c server/srv_api.c server/srv_app.c server/srv_app.h

bin_PROGRAMS += delift-server
delift_server_SOURCES = server/srv_main.c

# Tests: the real daemon end to end (with a test executor, and with the
# selection pipeline on the bundled model), unit suites and the fuzz target
# of the parsers the server writes itself.
check_PROGRAMS += tests/srv_testd tests/srv_rawclient
tests_srv_testd_SOURCES = tests/srv_testd.c
tests_srv_rawclient_SOURCES = tests/srv_rawclient.c
TESTS += tests/srv_e2e.sh tests/srv_select_e2e.sh
if HAVE_CHECK
check_PROGRAMS += tests/check_srv
tests_check_srv_SOURCES = tests/check_srv.c tests/dl_test.h
tests_check_srv_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_srv_LDADD = $(TEST_LIBS)
TESTS += tests/check_srv
check_PROGRAMS += tests/check_srv_select
tests_check_srv_select_SOURCES = tests/check_srv_select.c tests/dl_test.h
tests_check_srv_select_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_srv_select_LDADD = $(TEST_LIBS)
TESTS += tests/check_srv_select
endif

# The fuzz targets replay their seed corpus in `make check` (tests/fuzz_main.c).
check_PROGRAMS += tests/fuzz_srv
tests_fuzz_srv_SOURCES = tests/fuzz_srv.c tests/fuzz_main.c
TESTS += tests/srv_fuzz.sh
check_PROGRAMS += tests/fuzz_srv_select
tests_fuzz_srv_select_SOURCES = tests/fuzz_srv_select.c tests/fuzz_main.c
TESTS += tests/srv_select_fuzz.sh

# Load benchmark (make bench): job-state GETs against /healthz, same run.
BENCHES += bench/bench_srv
bench_bench_srv_SOURCES = bench/bench_srv.c
