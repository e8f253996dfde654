delift_SOURCES += src/cli_records.c
