#!/bin/sh
# Runs the tokenizer fuzz target over its seed and crash corpus.
set -u
dir="${DELIFT_SRCDIR:-.}/tests/data/lm_tok"
exec "${DELIFT_BUILDDIR:-.}/tests/fuzz_lm_tok" "$dir"/*
