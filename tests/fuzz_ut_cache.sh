#!/bin/sh
# Runs the score-cache fuzz target over real caches (made here by
# tests/ut_cache_fill) and damaged copies of them: each byte of the SQLite
# header overwritten (alternately 0xff and 0), bytes across the schema and
# data pages overwritten, the file cut short at page and non-page
# boundaries; plus the committed seeds in tests/data/ut_cache.
set -u
src=${DELIFT_SRCDIR:-.}
build=${DELIFT_BUILDDIR:-.}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dl_fuzz_ut_cache.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
"$build/tests/ut_cache_fill" "$tmp/empty" 1 "" 0 0 || exit 99
"$build/tests/ut_cache_fill" "$tmp/full" 2 "a scope" 100 300 || exit 99
size=$(wc -c < "$tmp/full")
i=0
# overwrite BYTE at OFFSET in a copy of full
flip() {
    i=$((i + 1))
    cp "$tmp/full" "$tmp/flip$i"
    printf "\\$(printf '%03o' "$2")" | dd of="$tmp/flip$i" bs=1 seek="$1" conv=notrunc 2>/dev/null
}
off=0
while [ $off -lt 100 ]; do flip $off $(( off % 2 ? 0 : 255 )); off=$((off + 1)); done
off=100
while [ $off -lt "$size" ]; do flip $off 165; off=$((off + 1031)); done
for cut in 0 1 100 4095 4096 8192 12000 $((size - 4096)) $((size - 1)); do
    [ $cut -ge 0 ] && [ $cut -lt "$size" ] || continue
    head -c $cut "$tmp/full" > "$tmp/cut$cut"
done
exec "$build/tests/fuzz_ut_cache" "$tmp"/* "$src"/tests/data/ut_cache/*
