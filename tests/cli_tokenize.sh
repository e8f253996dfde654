#!/bin/sh
# `delift tokenize`: flags, exit codes, output form, and ids against the
# models' golden tokenize.json (that part is skipped without ../shared).
set -u
bin=${DELIFT_BIN:-./delift}
data="${DELIFT_SRCDIR:-.}/tests/data/gguf"
shared=${DELIFT_SHARED:-}
out=/tmp/dl_tokenize.$$
fail=0
check() { # expected-code description command...
    want=$1; shift; what=$1; shift
    "$@" >"$out" 2>&1; got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  | /' "$out"; fail=1
    else
        echo "ok: $what"
    fi
}
same() { # description expected-text: the last output is exactly that line
    if [ "$(cat "$out")" = "$2" ]; then echo "ok: $1"; else
        echo "FAIL: $1: expected '$2'"; sed 's/^/  | /' "$out"; fail=1; fi
}
check 0 "--help" "$bin" tokenize --help
grep -q 'Exit codes' "$out" || { echo "FAIL: --help lacks exit codes"; fail=1; }
check 0 "help tokenize" "$bin" help tokenize
check 1 "no arguments" "$bin" tokenize
check 1 "no --model" "$bin" tokenize --text hi
check 1 "no text" "$bin" tokenize --model "$data/valid-minimal.gguf"
check 1 "--text and --file" "$bin" tokenize --model m.gguf --text a --file b
check 1 "--model twice" "$bin" tokenize --model a --model b --text a
check 1 "--text without value" "$bin" tokenize --model a --text
check 1 "unknown flag" "$bin" tokenize --model a --text a --frob
check 2 "missing model file" "$bin" tokenize --model /nonexistent/m.gguf --text a
check 2 "malformed GGUF" "$bin" tokenize --model "$data/bad-magic.gguf" --text a
check 2 "GGUF without a tokenizer" "$bin" tokenize --model "$data/valid-minimal.gguf" --text a
grep -q 'tokenizer.ggml.model' "$out" || { echo "FAIL: message does not name the key"; fail=1; }

mini="$shared/models/delift-mini-f32.gguf"
if [ -n "$shared" ] && [ -r "$mini" ]; then
    # Golden ids (models/golden/delift-mini/tokenize.json, SentencePiece's).
    check 0 "golden 'Hello world'" "$bin" tokenize --model "$mini" --text "Hello world"
    same "golden 'Hello world' ids" "540 304 3602 917"
    check 0 "empty text" "$bin" tokenize --model "$mini" --text ""
    same "empty text prints an empty line" ""
    check 0 "--bos --eos --json" "$bin" tokenize --model "$mini" --text "a" --bos --eos --json
    same "json form" '{"n_tokens": 3, "ids": [1, 261, 2]}'
    printf 'line one\nline two\n\nline four' >"$out.txt"
    check 0 "--file" "$bin" tokenize --model "$mini" --file "$out.txt"
    same "--file ids" "2288 549 13 1374 586 13 13 1374 997"
    check 0 "--file - (stdin)" sh -c "\"$bin\" tokenize --model \"$mini\" --file - <\"$out.txt\""
    same "stdin ids" "2288 549 13 1374 586 13 13 1374 997"
    check 2 "missing --file" "$bin" tokenize --model "$mini" --file /nonexistent/x.txt
    check 0 "--parse-special" "$bin" tokenize --model "$mini" --text "</s>" --parse-special
    same "--parse-special ids" "2"
    rm -f "$out.txt"
else
    echo "skip: ../shared/models absent (golden checks)"
fi
rm -f "$out"
exit $fail
