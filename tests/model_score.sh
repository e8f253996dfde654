#!/bin/sh
# `delift model score` and `delift generate`: flags, exit codes, outputs,
# and the DELIFT distance of a golden record (../shared, read at run time).
set -u
bin=${DELIFT_BIN:-./delift}
shared=${DELIFT_SHARED:-../shared}
mini="$shared/models/delift-mini-f32.gguf"
stories="$shared/models/stories260K.gguf"
notmodel="${DELIFT_SRCDIR:-.}/tests/data/gguf/valid-minimal.gguf"
out=/tmp/dl_model_score.$$
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
check 0 "score --help" "$bin" model score --help
has "score --help documents exit codes" 'Exit codes'
check 0 "model --help lists score" "$bin" model --help
has "score listed" '^  score '
check 0 "generate --help" "$bin" generate --help
check 1 "score without flags" "$bin" model score
check 1 "score without target" "$bin" model score --model x.gguf --prompt a
check 1 "score unknown flag" "$bin" model score --model x.gguf --prompt a --target b --frob
check 1 "score flag without value" "$bin" model score --model x.gguf --prompt a --target
check 1 "score bad threads" "$bin" model score --model x.gguf --prompt a --target b --threads 0
check 1 "generate bad -n" "$bin" generate --model x.gguf --prompt a -n -3
check 1 "generate without model" "$bin" generate --prompt a
check 2 "score missing file" "$bin" model score --model /nonexistent.gguf --prompt a --target b
check 2 "generate missing file" "$bin" generate --model /nonexistent.gguf --prompt a
if [ -f "$notmodel" ]; then
    check 2 "score on a GGUF that is no model" "$bin" model score --model "$notmodel" --prompt a --target b
    has "names what is missing" 'required key is missing|tensor is missing'
fi
if [ ! -r "$mini" ] || [ ! -r "$stories" ]; then
    echo "SKIP: ../shared models absent"; rm -f "$out"
    [ "$fail" -eq 0 ] && exit 77 || exit 1
fi
check 1 "score unknown backend" "$bin" model score --model "$mini" --prompt a --target b --backend gpu
has "lists the backends" 'blas'
check 0 "score text" "$bin" model score --model "$mini" --prompt "Hello" --target " world"
has "per-token line" '^[0-9]+	[0-9]+	-[0-9.]+	'
has "final EOS scored" '	2	-[0-9.]+	</s>$'
has "distance line" '^distance	0\.[0-9]+$'
check 0 "score json, ref backend" "$bin" model score --model "$mini" --prompt "Hello" --target " world" --json --backend ref
has "json fields" '"target_start": ?[0-9]+.*"distance"'
q8="$shared/models/delift-mini-q8_0.gguf"
if [ -r "$q8" ]; then
    check 0 "score --fast" "$bin" model score --model "$q8" --prompt "Hello" --target " world" --fast
    has "fast per-token line" '^[0-9]+	[0-9]+	-[0-9.]+	'
    check 1 "score --fast on ref" "$bin" model score --model "$q8" --prompt a --target b --fast --backend ref
    has "names the fast mode" 'no fast mode'
fi
check 0 "generate stories" "$bin" generate --model "$stories" --prompt "" -n 64
has "the README's story" '^Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\.'
check 0 "generate ids" "$bin" generate --model "$stories" --prompt "" -n 3 --ids --backend ref
has "BOS then 3 ids" '^1 [0-9]+ [0-9]+ [0-9]+$'
# DELIFT's no-ICL distance of utility.json's record 0, with and without BOS.
util="$shared/models/golden/delift-mini/utility.json"
if command -v python3 >/dev/null 2>&1 && [ -r "$util" ]; then
    for variant in no_bos with_bos; do
        flag=""; [ "$variant" = with_bos ] && flag="--bos"
        python3 - "$util" "$bin" "$mini" "$variant" $flag <<'PY' >"$out" 2>&1
import json, subprocess, sys
util, binary, model, variant = sys.argv[1:5]
g = json.load(open(util))
rec = g["records"][0]
prompt = g["templates"]["noicl"].replace("{p_i}", rec["prompt"])
cmd = [binary, "model", "score", "--model", model, "--prompt", prompt,
       "--target", rec["response"], "--json"] + sys.argv[5:]
res = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
want_d = g[variant]["d_noicl"][0]
want_n = g[variant]["seq_len_noicl"][0]
ok = abs(res["distance"] - want_d) <= 1e-5 and res["n_tokens"] == want_n
print("distance %.8f golden %.8f n_tokens %d golden %d %s" %
      (res["distance"], want_d, res["n_tokens"], want_n, "MATCH" if ok else "DIFFER"))
PY
        has "d_noicl[0] $variant matches utility.json" 'MATCH$'
    done
fi
rm -f "$out"
exit $fail
