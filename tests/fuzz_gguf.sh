#!/bin/sh
# Runs the GGUF fuzz target over the seed and crash corpus in tests/data/gguf.
set -u
dir="${DELIFT_SRCDIR:-.}/tests/data/gguf"
exec "${DELIFT_BUILDDIR:-.}/tests/fuzz_gguf" "$dir"/*.gguf
