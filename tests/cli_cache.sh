#!/bin/sh
# `delift cache path|info|clear`: the default path from the environment,
# info and clear on a missing, an empty and a filled cache (filled by
# tests/ut_cache_fill with counts this script chooses, and cross-checked with
# the sqlite3 shell when it is installed), files that are not a cache, and
# malformed flags.
set -u
here=$(pwd)
bin=${DELIFT_BIN:-./delift}
build=${DELIFT_BUILDDIR:-.}
case $bin in /*) ;; *) bin="$here/$bin" ;; esac
case $build in /*) ;; *) build="$here/$build" ;; esac
fill="$build/tests/ut_cache_fill"
[ -x "$fill" ] || { echo "FAIL: $fill not built"; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dl_cli_cache.XXXXXX") || exit 99
trap 'chmod -R u+rwx "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail=0
n=0

# run EXPECTED-CODE NAME CMD...: runs CMD, checks the exit code; output in $tmp/out
run() {
    want=$1; shift; what=$1; shift
    "$@" >"$tmp/out" 2>&1; got=$?
    n=$((n + 1))
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  | /' "$tmp/out"; fail=1
        return 1
    fi
    return 0
}

# has NAME SUBSTRING: the last output contains SUBSTRING
has() {
    if ! grep -qF -- "$2" "$tmp/out"; then
        echo "FAIL: $1: output lacks '$2'"; sed 's/^/  | /' "$tmp/out"; fail=1
        return 1
    fi
    return 0
}

# lacks NAME PATH: PATH does not exist
lacks() {
    if [ -e "$2" ]; then
        echo "FAIL: $1: $2 was created"; fail=1
    fi
}

# ---- help and flags -----------------------------------------------------------
run 0 "--help" "$bin" cache --help && has "--help" "Exit codes" && has "--help" "--cache PATH"
run 0 "info --help" "$bin" cache info --help && has "info --help" "clear"
run 0 "help cache" "$bin" help cache && has "help cache" "Usage: delift cache"
run 0 "delift --help lists cache" "$bin" --help && has "delift --help" "cache"
run 1 "no subcommand" "$bin" cache && has "no subcommand" "missing subcommand"
run 1 "unknown subcommand" "$bin" cache frob && has "unknown subcommand" "unknown subcommand 'frob'"
run 1 "two subcommands" "$bin" cache info clear && has "two subcommands" "unexpected argument 'clear'"
run 1 "unknown flag" "$bin" cache info --frob && has "unknown flag" "unknown option '--frob'"
run 1 "--cachex" "$bin" cache info --cachex=a && has "--cachex" "unknown option '--cachex=a'"
run 1 "--cache without value" "$bin" cache info --cache && has "--cache without value" "--cache needs a value"
run 1 "--cache=" "$bin" cache info --cache= && has "--cache=" "non-empty"
run 1 "--cache twice" "$bin" cache info --cache a --cache b && has "--cache twice" "given twice"
run 1 "path --cache" "$bin" cache path --cache "$tmp/x"
lacks "path --cache" "$tmp/x"

# ---- path -------------------------------------------------------------------------
run 0 "path DELIFT_CACHE" env DELIFT_CACHE=/d/c.sqlite XDG_CACHE_HOME=/x HOME=/h "$bin" cache path \
    && has "path DELIFT_CACHE" "/d/c.sqlite"
run 0 "path XDG" env DELIFT_CACHE= XDG_CACHE_HOME=/x HOME=/h "$bin" cache path \
    && has "path XDG" "/x/delift/scores.sqlite"
run 0 "path HOME" env -u DELIFT_CACHE -u XDG_CACHE_HOME HOME=/h "$bin" cache path \
    && has "path HOME" "/h/.cache/delift/scores.sqlite"
run 0 "path --json" env DELIFT_CACHE=/d/c.sqlite "$bin" cache path --json && has "path --json" '"path": "/d/c.sqlite"'
run 1 "path, no variable" env -u DELIFT_CACHE -u XDG_CACHE_HOME -u HOME "$bin" cache path \
    && has "path, no variable" "DELIFT_CACHE"

# ---- a missing cache: reported empty, never created ---------------------------------
db="$tmp/sub/scores.sqlite"
run 0 "info, missing" "$bin" cache info --cache "$db" && has "info, missing" "no file yet" \
    && has "info, missing" "entries: 0"
run 0 "info --json, missing" "$bin" cache info --json --cache="$db" \
    && has "info --json, missing" '"exists": false' && has "info --json, missing" '"n_entries": 0'
run 0 "clear, missing" "$bin" cache clear --cache "$db" && has "clear, missing" "nothing to clear"
lacks "missing" "$tmp/sub"

# ---- a filled cache -----------------------------------------------------------------
"$fill" "$db" 42 "model A, ctx 2048" 10 25 || { echo "FAIL: fill A"; fail=1; }
"$fill" "$db" 7 "" 3 0 || { echo "FAIL: fill B"; fail=1; }
run 0 "info" "$bin" cache info --cache "$db" && has "info" "scopes: 2, entries: 38" \
    && has "info" "10 no-ICL, 25 ICL entries" && has "info" "3 no-ICL, 0 ICL entries" \
    && has "info" "model A, ctx 2048" \
    && has "info" "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a"
run 0 "info via DELIFT_CACHE" env DELIFT_CACHE="$db" "$bin" cache info --json \
    && has "info --json" '"n_scopes": 2' && has "info --json" '"n_entries": 38' \
    && has "info --json" '"n_noicl": 10' && has "info --json" '"n_icl": 25' \
    && has "info --json" '"description": "model A, ctx 2048"' && has "info --json" '"exists": true' \
    && has "info --json" '"key": "07070707'
if command -v sqlite3 >/dev/null 2>&1; then
    # SQLite's own count of the file, against what info printed.
    got=$(sqlite3 "$db" "SELECT count(*) FROM score; SELECT count(*) FROM scope;" | tr '\n' ' ')
    [ "$got" = "38 2 " ] || { echo "FAIL: sqlite3 counts '$got', expected '38 2 '"; fail=1; }
fi
# Refilling a scope replaces its entries: the counts stay.
"$fill" "$db" 42 "ignored" 10 25 || { echo "FAIL: refill A"; fail=1; }
run 0 "info after refill" "$bin" cache info --cache "$db" && has "info after refill" "entries: 38" \
    && has "info after refill" "model A, ctx 2048"
run 0 "clear" "$bin" cache clear --cache "$db" && has "clear" "38 entries in 2 scopes removed"
[ -f "$db" ] || { echo "FAIL: clear removed the file"; fail=1; }
run 0 "info after clear" "$bin" cache info --json --cache "$db" \
    && has "info after clear" '"n_entries": 0' && has "info after clear" '"exists": true' \
    && has "info after clear" '"scopes": []'
run 0 "clear --json" "$bin" cache clear --json --cache "$db" && has "clear --json" '"removed_entries": 0'

# ---- files that are not a cache ---------------------------------------------------------
head -c 4096 /dev/urandom > "$tmp/junk.sqlite"
cp "$tmp/junk.sqlite" "$tmp/junk.orig"
run 2 "info, not a cache" "$bin" cache info --cache "$tmp/junk.sqlite" \
    && has "not a cache" "$tmp/junk.sqlite" && has "not a cache" "--no-cache"
run 2 "clear, not a cache" "$bin" cache clear --cache "$tmp/junk.sqlite"
cmp -s "$tmp/junk.sqlite" "$tmp/junk.orig" || { echo "FAIL: the junk file was changed"; fail=1; }
run 2 "info --json, not a cache" "$bin" cache info --json --cache "$tmp/junk.sqlite" \
    && has "json not a cache" '"ok": false' && has "json not a cache" '"code": "input"'
if command -v sqlite3 >/dev/null 2>&1; then
    sqlite3 "$tmp/newer.sqlite" "PRAGMA user_version = 9; CREATE TABLE t(x);"
    run 2 "newer schema" "$bin" cache info --cache "$tmp/newer.sqlite" && has "newer schema" "newer"
fi
mkdir "$tmp/adir"
run 3 "a directory" "$bin" cache info --cache "$tmp/adir"
printf 'x' > "$tmp/plain"
run 3 "under a file" "$bin" cache info --cache "$tmp/plain/scores.sqlite"

echo "$n checks"
[ $fail -eq 0 ] || exit 1
exit 0
