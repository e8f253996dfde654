#!/bin/sh
# `delift model info`: flags, exit codes, text and JSON output, bad files.
set -u
bin=${DELIFT_BIN:-./delift}
data="${DELIFT_SRCDIR:-.}/tests/data/gguf"
out=/tmp/dl_model_info.$$
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
has() { # description pattern: the last output matches the extended regex
    if grep -Eq -- "$2" "$out"; then echo "ok: $1"; else
        echo "FAIL: $1: no match for /$2/"; sed 's/^/  | /' "$out"; fail=1; fi
}
check 0 "model --help" "$bin" model --help
has "model --help lists info" '^  info '
check 1 "model without subcommand" "$bin" model
check 1 "model unknown subcommand" "$bin" model frob
check 0 "model info --help" "$bin" model info --help
has "info --help documents exit codes" 'Exit codes'
check 1 "info without file" "$bin" model info
check 1 "info unknown flag" "$bin" model info --frob "$data/valid-minimal.gguf"
check 1 "info two files" "$bin" model info "$data/valid-minimal.gguf" "$data/valid-v2.gguf"
check 0 "info minimal" "$bin" model info "$data/valid-minimal.gguf"
has "architecture line" '^architecture: +llama$'
has "tensor count" '^tensors: +2$'
has "parameters" '^parameters: +48$'
has "per-type line" '^  Q8_0 +1 tensors +34 bytes +32 params$'
check 0 "info --keys" "$bin" model info --keys "$data/valid-minimal.gguf"
has "keys listing, array" 'tokenizer.ggml.tokens +ARRAY +\[STRING x 3\]'
has "keys listing, negative" '^  neg +INT32 +-7$'
check 0 "info --json" "$bin" model info --json --keys "$data/valid-minimal.gguf"
has "json parameters" '"n_parameters": 48'
has "json version" '"version": 3'
has "json keys" '"tokenizer.ggml.bos_token_id"'
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["tensor_types"]["F32"]["bytes"]==64, d' "$out" \
        && echo "ok: json parses" || { echo "FAIL: json does not parse"; fail=1; }
fi
check 2 "missing file" "$bin" model info /nonexistent/m.gguf
check 2 "bad magic" "$bin" model info "$data/bad-magic.gguf"
has "bad magic message" 'not a GGUF file.*at byte 0'
check 2 "v1" "$bin" model info "$data/v1.gguf"
has "v1 message" 'version 1 is not supported'
check 2 "truncated data" "$bin" model info "$data/truncated-data.gguf"
has "truncated message names the tensor" "field 'b'.*past the end"
check 2 "string past end" "$bin" model info "$data/string-past-end.gguf"
check 2 "unknown tensor type" "$bin" model info "$data/unknown-tensor-type.gguf"
has "unknown type message" 'unknown tensor type 99'
check 2 "misaligned" "$bin" model info "$data/misaligned-tensor.gguf"
check 2 "ne overflow" "$bin" model info "$data/ne-overflow.gguf"
check 2 "absurd count" "$bin" model info --json "$data/absurd-kv-count.gguf"
shared=${DELIFT_SHARED:-}
if [ -n "$shared" ] && [ -r "$shared/models/delift-mini-q8_0.gguf" ]; then
    check 0 "delift-mini q8_0" "$bin" model info --json "$shared/models/delift-mini-q8_0.gguf"
    has "delift-mini parameters" '"n_parameters": 5475584'
    has "delift-mini vocab" '"vocab_size": 4096'
    has "delift-mini file size" '"file_size": 5921280'
else
    echo "skip: ../shared models absent"
fi
rm -f "$out"
exit $fail
