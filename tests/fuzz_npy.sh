#!/bin/sh
# Runs the .npy/.npz fuzz target over the fixtures and the malformed corpus.
set -u
src=${DELIFT_SRCDIR:-.}
exec "${DELIFT_BUILDDIR:-.}/tests/fuzz_npy" "$src"/tests/data/npy/*.np? \
    "$src"/tests/data/npy/bad/*.np? "$src"/tests/data/npy/cli/*.np?
