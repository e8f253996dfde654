#!/bin/sh
# Runs the records fuzz target over the golden corpus and the bundled sample.
set -u
src=${DELIFT_SRCDIR:-.}
exec "${DELIFT_BUILDDIR:-.}/tests/fuzz_rec" "$src"/tests/data/rec/*/input "$src"/data/sample.jsonl
