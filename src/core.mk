# src/core.mk: the error model and the CLI frame.
src_libdelift_la_SOURCES += src/dl_error.c src/dl_error.h src/dl_file.c src/dl_file.h
delift_SOURCES += src/cli_main.c src/cli_util.c src/cli_progress.c src/cli.h
