#!/bin/sh
# Replays the seed and crash corpus of tests/fuzz_srv_select.c (see tests/fuzz_main.c).
set -u
exec "${DELIFT_BUILDDIR:-.}/tests/fuzz_srv_select" "${DELIFT_SRCDIR:-.}"/tests/data/srv_select/fuzz/*
