#!/bin/sh
# `delift records inspect` on the golden corpus tests/data/rec/<case>/:
#   input     the records file
#   expected  line 1: the exit code; every further line: a substring that
#             must appear in the output (stdout and stderr together)
#   args      optional extra flags (split on spaces)
# plus the cases a corpus cannot hold (a directory, a missing file, --help,
# --json) and the bundled data/sample.jsonl.
set -u
here=$(pwd)
bin=${DELIFT_BIN:-./delift}
src=${DELIFT_SRCDIR:-.}
case $bin in /*) ;; *) bin="$here/$bin" ;; esac
case $src in /*) ;; *) src="$here/$src" ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dl_cli_records.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
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

for dir in "$src"/tests/data/rec/*/; do
    case=$(basename "$dir")
    exp="$dir/expected"
    [ -f "$exp" ] || { echo "FAIL: $case: no expected file"; fail=1; continue; }
    want=$(sed -n 1p "$exp")
    args=""
    [ -f "$dir/args" ] && args=$(cat "$dir/args")
    # Run from the case's folder so messages say "input:LINE:..." and a
    # substring can never match the case's name in a path.
    # shellcheck disable=SC2086 # args are meant to split
    cd "$dir" || exit 99
    run "$want" "$case" "$bin" records inspect input $args; ran=$?
    cd "$here" || exit 99
    if [ $ran -eq 0 ]; then
        ok=1
        sed -n '2,$p' "$exp" > "$tmp/subs"
        while IFS= read -r sub; do
            [ -n "$sub" ] || continue
            has "$case" "$sub" || ok=0
        done < "$tmp/subs"
        [ $ok -eq 1 ] && echo "ok: $case"
    fi
done

# Cases that do not fit the corpus.
mkdir "$tmp/adir"
run 3 "directory as FILE" "$bin" records inspect "$tmp/adir" && has "directory" "is a directory"
run 2 "missing FILE" "$bin" records inspect "$tmp/does-not-exist.jsonl" && has "missing" "does-not-exist.jsonl"
run 3 "directory, --json" "$bin" records inspect --json "$tmp/adir" && has "dir-json" '"code": "io"' && has "dir-json" '"ok": false'
run 1 "no FILE" "$bin" records inspect
run 1 "two FILEs" "$bin" records inspect a b && has "two FILEs" "more than one FILE"
run 1 "unknown flag" "$bin" records inspect --frobnicate x && has "unknown flag" "unknown option '--frobnicate'"
run 1 "flag without value" "$bin" records inspect x --fields && has "flag without value" "--fields needs a value"
run 1 "no subcommand" "$bin" records
run 1 "unknown subcommand" "$bin" records frob && has "unknown subcommand" "unknown subcommand 'frob'"
run 0 "records --help" "$bin" records --help && has "records --help" "inspect FILE"
run 0 "inspect --help" "$bin" records inspect --help && has "inspect --help" "Exit codes" && has "inspect --help" "--max-line-bytes"
run 0 "-- ends flags" "$bin" records inspect -- "$src/data/sample.jsonl"
run 0 "--flag=value" "$bin" records inspect --fields=alpaca --max-line-bytes=4096 "$src/data/sample.jsonl"
run 2 "--max-line-bytes below a record" "$bin" records inspect --max-line-bytes=100 "$src/data/sample.jsonl" \
    && has "--max-line-bytes" "record longer than 100 bytes"
run 1 "--fieldsX" "$bin" records inspect --fieldsX "$src/data/sample.jsonl" && has "--fieldsX" "unknown option '--fieldsX'"
run 1 "--max-line-bytes 0" "$bin" records inspect --max-line-bytes 0 "$src/data/sample.jsonl"

# The bundled sample pool is clean, alpaca-shaped, 48 to 56 records, ids unique.
if run 0 "sample.jsonl" "$bin" records inspect "$src/data/sample.jsonl"; then
    has sample "mapping: alpaca" && has sample "problems: 0"
    count=$(sed -n 's/^records: //p' "$tmp/out")
    if [ "${count:-0}" -lt 48 ] || [ "${count:-0}" -gt 56 ]; then
        echo "FAIL: sample.jsonl has $count records, expected 48..56"; fail=1
    fi
    lines=$(grep -c . "$src/data/sample.jsonl")
    [ "$lines" = "$count" ] || { echo "FAIL: sample.jsonl: $lines lines but $count records"; fail=1; }
fi

# --json: one valid JSON object whose numbers agree with the text report.
if run 0 "--json" "$bin" records inspect --json "$src/data/sample.jsonl"; then
    has json '"records": '"$count" && has json '"ok": true' && has json '"problems": []'
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["records"] > 0 and d["format"] == "jsonl", d' "$tmp/out" \
            || { echo "FAIL: --json output does not parse"; fail=1; }
    fi
fi
if run 2 "--json with a problem" "$bin" records inspect --json "$src/tests/data/rec/missing_output/input"; then
    has json-bad '"ok": false' && has json-bad '"field": "output"' && has json-bad '"line": 3'
fi

echo "$n runs"
exit $fail
