#!/bin/sh
# `delift select` and `delift score` end to end with the bundled model
# (data/delift-mini-q8_0.gguf) on small pools cut from data/sample.jsonl:
# flags and bad input with their exit codes and messages, no partial output
# after a failure, the three stages, knn pairs, and two independent checks:
#  - `delift score` + `delift optimize` on the written kernels pick exactly
#    what `delift select` picked (the selection reads the kernels it wrote);
#  - a run killed with SIGKILL and started again resumes from the cache and
#    writes byte-identical rankings to an uninterrupted, uncached run.
set -u
bin=${DELIFT_BIN:-./delift}
src=${DELIFT_SRCDIR:-.}
model=$src/data/delift-mini-q8_0.gguf
sample=$src/data/sample.jsonl
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dl_cli_sel.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

bad() { echo "FAIL: $*"; fail=1; }
ok() { pass=$((pass + 1)); }

# expect CODE MESSAGE-SUBSTRING DESCRIPTION -- command...
expect() {
    want=$1; msg=$2; what=$3; shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"; got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$what: exit $got, expected $want"; sed 's/^/  | /' "$tmp/err"; return
    fi
    if [ -n "$msg" ] && ! grep -qF -- "$msg" "$tmp/err" "$tmp/out"; then
        bad "$what: output lacks '$msg'"; sed 's/^/  | /' "$tmp/err"; return
    fi
    ok
}

absent() { [ ! -e "$1" ] && ok || bad "$2: $1 was left behind"; }

head -8 "$sample" >"$tmp/pool.jsonl"
sed -n '30,33p' "$sample" >"$tmp/target.jsonl"
sed -n '40,42p' "$sample" >"$tmp/existing.jsonl"
: >"$tmp/empty.jsonl"
printf '{"instruction":"a","output":"b"}\n{"instruction":"a",\n' >"$tmp/broken.jsonl"
printf 'not a model\n' >"$tmp/bad.gguf"
P="$tmp/pool.jsonl"
O="$tmp/o/sub.jsonl"
mkdir -p "$tmp/o"
sel() { "$bin" select --model "$model" --cache "$tmp/cache.sqlite" "$@"; }

# ---- help and usage errors (exit 1) ----
expect 0 "--budget" "select --help" -- "$bin" select --help
expect 0 "--out-dir" "score --help" -- "$bin" score --help
expect 1 "--model M.gguf is required" "no model" -- "$bin" select "$P" -o "$O"
expect 1 "pool file" "no pool" -- sel -o "$O"
expect 1 "-o SUBSET.jsonl is required" "no output" -- sel "$P"
expect 1 "unknown option --frobnicate" "unknown option" -- sel --frobnicate "$P" -o "$O"
expect 1 "--budget" "budget not a number" -- sel --budget abc "$P" -o "$O"
expect 1 "--budget" "budget 0" -- sel --budget 0 "$P" -o "$O"
expect 1 "budget must be" "budget 2.5" -- sel --budget 2.5 "$P" -o "$O"
expect 1 "larger than the pool" "budget > pool" -- sel --budget 9 "$P" -o "$O"
expect 1 "unknown stage" "bad stage" -- sel --stage pretraining "$P" -o "$O"
expect 1 "knn:K" "bad pairs" -- sel --pairs knn:0 "$P" -o "$O"
expect 1 "knn:K" "bad pairs text" -- sel --pairs some "$P" -o "$O"
expect 1 "needs --target" "task without target" -- sel --stage task "$P" -o "$O"
expect 1 "only used by --stage task" "target without task" -- sel --target "$tmp/target.jsonl" "$P" -o "$O"
expect 1 "needs --existing" "continual without existing" -- sel --stage continual "$P" -o "$O"
expect 1 "exclude each other" "cache and no-cache" -- sel --no-cache "$P" -o "$O"
expect 1 "--threads" "threads 0" -- sel --threads 0 "$P" -o "$O"
expect 1 "--progress" "bad progress" -- sel --progress loud "$P" -o "$O"
expect 1 "--truncate-quantum" "quantum 0" -- sel --truncate-quantum 0 "$P" -o "$O"
expect 1 "--truncate-quantum" "quantum too large" -- sel --truncate-quantum 4097 "$P" -o "$O"
expect 1 "--truncate-quantum" "quantum not a number" -- sel --truncate-quantum 8x "$P" -o "$O"
expect 1 "not an option of this command" "score with --budget" -- "$bin" score --model "$model" --budget 3 "$P" --out-dir "$tmp/k"
expect 1 "one pool file only" "two pools" -- sel "$P" "$P" -o "$O"
expect 1 "--model needs a value" "dangling flag" -- "$bin" select "$P" -o "$O" --model
expect 1 "unknown" "bad function" -- sel --function nope --budget 2 "$P" -o "$O"
printf 'no placeholder here\n' >"$tmp/tpl.txt"
expect 1 "{p_i}" "bad template" -- sel --template-icl "$tmp/tpl.txt" "$P" -o "$O"
expect 1 "cannot read" "missing template" -- sel --template-icl "$tmp/none.txt" "$P" -o "$O"
absent "$O" "usage errors"

# ---- bad input (exit 2, the file named, nothing written) ----
expect 2 "empty.jsonl" "empty pool" -- sel --budget 1 "$tmp/empty.jsonl" -o "$O"
expect 2 "broken.jsonl:2" "malformed pool line" -- sel --budget 1 "$tmp/broken.jsonl" -o "$O"
expect 2 "nothere.jsonl" "missing pool" -- sel --budget 1 "$tmp/nothere.jsonl" -o "$O"
expect 2 "bad.gguf" "not a GGUF" -- "$bin" select --model "$tmp/bad.gguf" --no-cache --budget 1 "$P" -o "$O"
expect 2 "empty.jsonl" "empty target set" -- sel --stage task --target "$tmp/empty.jsonl" --budget 1 "$P" -o "$O"
# A real model file without its tokenizer keys.
python3 - "$model" "$tmp/notok.gguf" <<'EOF' || bad "could not write notok.gguf"
import struct, sys
src = open(sys.argv[1], 'rb').read()
pos = 0
def take(n):
    global pos
    b = src[pos:pos + n]; pos += n; return b
def u32(): return struct.unpack('<I', take(4))[0]
def u64(): return struct.unpack('<Q', take(8))[0]
def string(): return take(u64())
sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def value(t):
    if t == 8: string()
    elif t == 9:
        et = u32(); n = u64()
        for _ in range(n): value(et)
    else: take(sizes[t])
assert take(4) == b'GGUF'
version = u32(); n_tensors = u64(); n_kv = u64()
kvs = []
for _ in range(n_kv):
    start = pos; key = string(); t = u32(); value(t)
    kvs.append((key, src[start:pos]))
rest_start = pos
for _ in range(n_tensors):
    string(); nd = u32(); take(8 * nd + 4 + 8)
info = src[rest_start:pos]
align = 32
data_start = (pos + align - 1) // align * align
keep = [raw for key, raw in kvs if not key.startswith(b'tokenizer.')]
head = b'GGUF' + struct.pack('<IQQ', version, n_tensors, len(keep)) + b''.join(keep) + info
head += b'\0' * ((-len(head)) % align)
open(sys.argv[2], 'wb').write(head + src[data_start:])
EOF
expect 2 "notok.gguf" "model without tokenizer" -- "$bin" select --model "$tmp/notok.gguf" --no-cache --budget 1 "$P" -o "$O"
mkdir -p "$tmp/ro" && chmod 500 "$tmp/ro"
if [ "$(id -u)" -ne 0 ]; then
    expect 3 "ro" "unwritable output directory" -- sel --budget 2 "$P" -o "$tmp/ro/sub.jsonl"
fi
python3 -c 'import json; print(json.dumps({"instruction": "Say it.", "output": "word " * 3000}))' >"$tmp/long.jsonl"
expect 2 "long.jsonl" "target set too long for the context" -- sel --stage task --target "$tmp/long.jsonl" --budget 1 "$P" -o "$O"
grep -q "no record of the target set can be scored" "$tmp/err" && ok || bad "unscorable target set message"
absent "$O" "bad input"

# ---- a disk that fills during a run: exit 3, no output, the cache stays usable ----
(trap '' XFSZ; ulimit -f 40; exec "$bin" select --model "$model" --cache "$tmp/full.sqlite" --budget 2 "$P" -o "$O") >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 3 ] && ok || { bad "disk full: exit $rc, expected 3"; sed 's/^/  | /' "$tmp/err"; }
absent "$O" "disk full"
expect 0 "selected 2 of 8" "run after disk full" -- sel --budget 2 "$P" -o "$tmp/o/after.jsonl"
expect 0 "selected 2 of 8" "reuse the filled cache" -- "$bin" select --model "$model" --cache "$tmp/full.sqlite" --budget 2 "$P" -o "$tmp/o/after2.jsonl"
cmp -s "$tmp/o/after.ranking.jsonl" "$tmp/o/after2.ranking.jsonl" && ok || bad "cache after disk full gives another ranking"
rm -f "$tmp/o/after"*
ls "$tmp/o" | grep -q . && bad "files left in the output directory: $(ls "$tmp/o")" || ok

# ---- a real selection ----
expect 0 "selected 3 of 8 records" "select instruction" -- sel --budget 3 --progress none "$P" -o "$O"
[ "$(wc -l <"$O")" -eq 3 ] && ok || bad "subset has $(wc -l <"$O") lines, expected 3"
[ "$(wc -l <"$tmp/o/sub.ranking.jsonl")" -eq 3 ] && ok || bad "ranking lines"
python3 - "$P" "$O" "$tmp/o/sub.ranking.jsonl" "$tmp/o/sub.manifest.json" <<'EOF' && ok || bad "outputs inconsistent"
import json, sys
pool = open(sys.argv[1]).read().splitlines()
sub = open(sys.argv[2]).read().splitlines()
rank = [json.loads(l) for l in open(sys.argv[3])]
man = json.load(open(sys.argv[4]))
assert [r['rank'] for r in rank] == list(range(len(rank)))
for r, line in zip(rank, sub):
    assert pool[r['index']] == line, (r, line)          # records as they were
    assert json.loads(line).get('id', r['id']) == r['id']
assert all(r['gain'] >= rank[k + 1]['gain'] - 1e-9 for k, r in enumerate(rank[:-1]))
assert man['method']['stage'] == 'instruction' and man['method']['function'] == 'fl'
assert man['method']['pairs'] == 'all' and man['method']['budget'] == 3
assert man['kernels']['S']['rows'] == 8 and man['stats']['pairs_total'] == 8 + 64
assert man['inputs']['pool']['records'] == 8 and len(man['inputs']['pool']['sha256']) == 64
assert man['deviations'] and man['result']['selected'] == 3
assert man['method']['truncate_quantum'] == 32
EOF

# the same kernels through `delift score` and `delift optimize`
expect 0 "kernels of 8 records" "score" -- "$bin" score --model "$model" --cache "$tmp/cache.sqlite" "$P" --out-dir "$tmp/k"
"$bin" optimize --kernel "$tmp/k/S.npy" --function fl --budget 3 >"$tmp/opt.jsonl" 2>/dev/null || bad "optimize failed"
python3 - "$tmp/opt.jsonl" "$tmp/o/sub.ranking.jsonl" <<'EOF' && ok || bad "optimize on the scored kernel differs from select"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [x['index'] for x in a] == [x['index'] for x in b], (a, b)
assert all(abs(x['gain'] - y['gain']) <= 1e-9 * max(1, abs(y['gain'])) for x, y in zip(a, b))
EOF

# the score cache: a second run computes nothing and writes the same bytes
expect 0 "0 scored, 72 from the cache" "cached rerun" -- sel --budget 3 "$P" -o "$tmp/o/again.jsonl"
cmp -s "$tmp/o/sub.ranking.jsonl" "$tmp/o/again.ranking.jsonl" && ok || bad "cached rerun ranking differs"

# ---- stages and pairs modes ----
expect 0 "selected 2 of 8" "task stage" -- sel --stage task --target "$tmp/target.jsonl" --budget 2 "$P" -o "$tmp/o/task.jsonl"
expect 0 "selected 2 of 8" "continual stage" -- sel --stage continual --existing "$tmp/existing.jsonl" --budget 0.25 "$P" -o "$tmp/o/cont.jsonl"
expect 0 "knn:3" "knn pairs" -- sel --pairs knn:3 --budget 2 "$P" -o "$tmp/o/knn.jsonl"
python3 - "$tmp/o" <<'EOF' && ok || bad "stage manifests"
import json, sys
d = sys.argv[1]
t = json.load(open(d + '/task.manifest.json'))
assert t['method']['function'] == 'flmi' and t['kernels']['Q']['rows'] == 8 and t['kernels']['Q']['cols'] == 4
c = json.load(open(d + '/cont.manifest.json'))
assert c['method']['function'] == 'flcg' and c['kernels']['P']['cols'] == 3 and c['method']['budget'] == 2
k = json.load(open(d + '/knn.manifest.json'))
assert k['kernels']['S']['storage'] == 'csr' and k['kernels']['S']['nnz'] == 24
EOF
expect 0 "" "task with gcmi" -- sel --stage task --target "$tmp/target.jsonl" --function gcmi --budget 2 "$P" -o "$tmp/o/gcmi.jsonl"
expect 1 "needs a target set" "flmi without a target" -- sel --function flmi --budget 2 "$P" -o "$tmp/o/x.jsonl"
printf 'Example: {p_j}{r_j}\nNow: {p_i}' >"$tmp/icl.txt"
expect 0 "selected 2 of 8" "custom ICL template" -- sel --template-icl "$tmp/icl.txt" --budget 2 "$P" -o "$tmp/o/tpl.jsonl"
python3 - "$tmp/o/tpl.manifest.json" "$tmp/icl.txt" <<'EOF2' && ok || bad "custom template not recorded in the manifest"
import json, sys
m = json.load(open(sys.argv[1]))
assert m['method']['templates']['icl'] == open(sys.argv[2]).read()
assert m['stats']['pairs_scored'] == 72          # a new cache scope: every score recomputed
EOF2
expect 0 "" "progress json" -- sel --progress json --budget 2 "$P" -o "$tmp/o/pj.jsonl"
grep -q '"phase":"pairs"' "$tmp/err" && ok || bad "no JSON progress lines"

# ---- the fast mode: recorded, its own cache scope, refused by ref ----
expect 0 "selected 2 of 8" "fast mode" -- sel --fast --budget 2 "$P" -o "$tmp/o/fast.jsonl"
expect 0 "selected 2 of 8" "fast mode again" -- sel --fast --budget 2 "$P" -o "$tmp/o/fast2.jsonl"
python3 - "$tmp/o" <<'EOF3' && ok || bad "fast mode manifest, scope or cache"
import json, sys
d = sys.argv[1]
f = json.load(open(d + '/fast.manifest.json'))
f2 = json.load(open(d + '/fast2.manifest.json'))
e = json.load(open(d + '/sub.manifest.json'))
assert f['engine']['fast'] is True and e['engine']['fast'] is False
assert f['engine']['cache_scope'] != e['engine']['cache_scope']   # never mixed with exact scores
assert f['stats']['pairs_scored'] == 72 and f2['stats']['pairs_scored'] == 0   # cached in its own scope
EOF3
expect 1 "no fast mode" "fast on the ref backend" -- sel --fast --backend ref --budget 2 "$P" -o "$tmp/o/x.jsonl"
absent "$tmp/o/x.jsonl" "refused fast run"

# ---- kill -9 and resume: byte-identical to an uninterrupted run ----
head -16 "$sample" >"$tmp/p16.jsonl"
"$bin" select --model "$model" --no-cache --threads 1 --budget 5 "$tmp/p16.jsonl" -o "$tmp/ref.jsonl" 2>/dev/null || bad "reference run"
"$bin" select --model "$model" --cache "$tmp/resume.sqlite" --threads 1 --progress json --budget 5 "$tmp/p16.jsonl" -o "$tmp/res.jsonl" 2>"$tmp/prog" &
pid=$!
i=0
while [ $i -lt 300 ] && ! grep -q '"phase":"pairs","done":[1-9]' "$tmp/prog"; do sleep 0.1; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
absent "$tmp/res.jsonl" "killed run"
expect 0 "from the cache" "resumed run" -- "$bin" select --model "$model" --cache "$tmp/resume.sqlite" --threads 1 --budget 5 "$tmp/p16.jsonl" -o "$tmp/res.jsonl"
grep -q "selected 5 of 16 records (instruction, all pairs: 0 scored" "$tmp/err" && bad "resumed run computed nothing (the kill came too late to test)" || ok
cmp -s "$tmp/ref.ranking.jsonl" "$tmp/res.ranking.jsonl" && ok || bad "resumed ranking differs from the uninterrupted run"
cmp -s "$tmp/ref.jsonl" "$tmp/res.jsonl" && ok || bad "resumed subset differs"

# ---- SIGINT: exit 130, nothing written ----
"$bin" select --model "$model" --no-cache --threads 1 --progress json --budget 5 "$tmp/p16.jsonl" -o "$tmp/int.jsonl" 2>"$tmp/prog2" &
pid=$!
i=0
while [ $i -lt 300 ] && ! grep -q '"phase":"pairs"' "$tmp/prog2"; do sleep 0.1; i=$((i + 1)); done
kill -INT $pid; wait $pid; rc=$?
[ $rc -eq 130 ] && ok || bad "SIGINT exit $rc, expected 130"
absent "$tmp/int.jsonl" "interrupted run"

echo "cli_select: $pass passed"
[ $fail -eq 0 ]
