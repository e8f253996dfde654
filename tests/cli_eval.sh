#!/bin/sh
# `delift eval`: flags, exit codes and messages on bad input, and real runs
# with the bundled delift-mini Q8_0 (data/) on records of data/sample.jsonl:
# the JSON and per-record fields, the summary recomputed from the per-record
# file, the nearest example of a record that is in the subset is itself,
# self-ICL helps most records (models README), and d / ll of the no-ICL and
# ICL prompts equal `delift model score` on the template strings built here
# (an independent path: the CLI's own tokenisation and scoring of one string).
set -u
bin=${DELIFT_BIN:-./delift}
src=${DELIFT_SRCDIR:-.}
model=$src/data/delift-mini-q8_0.gguf
sample=$src/data/sample.jsonl
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dl_cli_eval.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0

bad() { echo "FAIL: $*"; fail=1; }

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
    echo "ok: $what"
}

for f in "$model" "$sample"; do
    [ -r "$f" ] || { echo "SKIP: $f absent"; exit 77; }
done
# six records of different tasks (lines 1, 11, ..., 51), and three more:
# two others and line 11, which is also in six
awk 'NR % 10 == 1' "$sample" >"$tmp/six.jsonl"
{ awk 'NR == 3 || NR == 13' "$sample"; sed -n 11p "$sample"; } >"$tmp/three.jsonl"
: >"$tmp/empty.jsonl"
printf '{"instruction": "a", "output": "b"}\n{"instruction": "a", oops}\n' >"$tmp/broken.jsonl"
printf '{"title": "q", "body": "a"}\n' >"$tmp/nofields.jsonl"
ok_in="--subset $tmp/six.jsonl --heldout $tmp/three.jsonl"

# ---- help and usage (exit 1) ----
expect 0 "Exit codes" "--help" -- "$bin" eval --help
expect 0 "--per-record FILE" "--help documents --per-record" -- "$bin" eval -h
expect 0 "eval " "delift --help lists eval" -- "$bin" --help
expect 1 "--model" "no flags" -- "$bin" eval
expect 1 "--subset" "no --subset" -- "$bin" eval --model "$model" --heldout "$tmp/six.jsonl"
expect 1 "--heldout" "no --heldout" -- "$bin" eval --model "$model" --subset "$tmp/six.jsonl"
expect 1 "unknown option --frob" "unknown flag" -- "$bin" eval --model "$model" $ok_in --frob
expect 1 "--threads needs a value" "flag without value" -- "$bin" eval --model "$model" $ok_in --threads
expect 1 "--threads" "threads 0" -- "$bin" eval --model "$model" $ok_in --threads 0
expect 1 "--threads" "threads not a number" -- "$bin" eval --model "$model" $ok_in --threads 2x
expect 1 "--progress" "bad progress mode" -- "$bin" eval --model "$model" $ok_in --progress loud
expect 1 "unexpected argument" "positional argument" -- "$bin" eval --model "$model" $ok_in extra.jsonl
expect 1 "--fields" "bad field map" -- "$bin" eval --model "$model" $ok_in --fields 'nonsense=('
expect 1 "empty file name" "empty --per-record" -- "$bin" eval --model "$model" $ok_in --per-record ''
expect 1 "unknown backend" "unknown backend" -- "$bin" eval --model "$model" $ok_in --backend gpu
expect 1 "--truncate-quantum" "quantum 0" -- "$bin" eval --model "$model" $ok_in --truncate-quantum 0
expect 1 "--truncate-quantum" "quantum not a number" -- "$bin" eval --model "$model" $ok_in --truncate-quantum x
printf 'no placeholder' >"$tmp/tpl_bad.txt"
expect 1 "--template-icl" "ICL template without {p_i}" -- "$bin" eval --model "$model" $ok_in --template-icl "$tmp/tpl_bad.txt"
expect 1 "--template-noicl" "no-ICL template without {p_i}" -- "$bin" eval --model "$model" $ok_in --template-noicl "$tmp/tpl_bad.txt"
expect 1 "cannot read" "missing template file" -- "$bin" eval --model "$model" $ok_in --template-icl "$tmp/nope.txt"

# ---- bad input (exit 2, the file named) ----
expect 2 "$tmp/nope.jsonl" "missing subset file" -- \
    "$bin" eval --model "$model" --subset "$tmp/nope.jsonl" --heldout "$tmp/six.jsonl"
expect 2 "$tmp/nope.jsonl" "missing heldout file" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/nope.jsonl"
expect 2 "$tmp/empty.jsonl" "empty subset" -- \
    "$bin" eval --model "$model" --subset "$tmp/empty.jsonl" --heldout "$tmp/six.jsonl"
expect 2 "$tmp/empty.jsonl" "empty heldout" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/empty.jsonl"
expect 2 "$tmp/broken.jsonl:2" "malformed heldout names file and line" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/broken.jsonl"
expect 2 "$tmp/nofields.jsonl" "records without the fields" -- \
    "$bin" eval --model "$model" --subset "$tmp/nofields.jsonl" --heldout "$tmp/six.jsonl"
expect 2 "$tmp/nope.gguf" "missing model" -- "$bin" eval --model "$tmp/nope.gguf" $ok_in
expect 2 "not a GGUF" "a model that is no GGUF" -- "$bin" eval --model "$sample" $ok_in
# an unwritable --per-record fails before any model work, leaving nothing
expect 3 "$tmp/no/dir/x.jsonl" "per-record in a missing directory" -- \
    "$bin" eval --model "$model" $ok_in --per-record "$tmp/no/dir/x.jsonl"
expect 2 "$tmp/empty.jsonl" "failed run leaves no per-record file" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/empty.jsonl" \
    --per-record "$tmp/fail.jsonl"
ls "$tmp" | grep -q '^fail\.jsonl' && bad "a failed run left $tmp/fail.jsonl*"

# ---- real runs ----
expect 0 "helped" "text output" -- "$bin" eval --model "$model" $ok_in --threads 2
grep -Eq '^d_icl-d_noicl +-?[0-9]+\.[0-9]+ +[0-9]+\.[0-9]+$' "$tmp/out" ||
    bad "text output lacks the d_icl-d_noicl row"
expect 0 "" "self: subset = heldout, --json --per-record" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/six.jsonl" \
    --json --per-record "$tmp/self.jsonl" --threads 2 --progress json
cp "$tmp/out" "$tmp/self.json"
grep -q '"phase":"pairs"' "$tmp/err" || bad "--progress json printed no pairs phase"
expect 0 '"fast":true' "--fast" -- "$bin" eval --model "$model" --subset "$tmp/six.jsonl" \
    --heldout "$tmp/six.jsonl" --threads 2 --fast --json
expect 1 "no fast mode" "--fast on the ref backend" -- "$bin" eval --model "$model" \
    --subset "$tmp/six.jsonl" --heldout "$tmp/six.jsonl" --fast --backend ref
expect 0 "" "cross: other subset, --per-record" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/three.jsonl" \
    --json --per-record "$tmp/cross.jsonl" --threads 2
cp "$tmp/out" "$tmp/cross.json"
printf 'Example: {p_j}{r_j}\nNow: {p_i}' >"$tmp/icl.txt"
expect 0 "" "custom ICL template" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/three.jsonl" \
    --json --per-record "$tmp/tpl.jsonl" --threads 2 --template-icl "$tmp/icl.txt"
cp "$tmp/out" "$tmp/tpl.json"
ls "$tmp" | grep -q '\.tmp\.' && bad "temporary files left behind"
# SIGINT during a longer run (the whole sample as subset and held-out): exit 130,
# no per-record file and no temporary file left
"$bin" eval --model "$model" --subset "$sample" --heldout "$sample" --threads 2 \
    --per-record "$tmp/int.jsonl" >/dev/null 2>"$tmp/err" &
pid=$!
sleep 1
kill -INT $pid 2>/dev/null
wait $pid; got=$?
if [ "$got" -eq 0 ]; then
    echo "ok: SIGINT came after the run finished (not checked)"
elif [ "$got" -ne 130 ]; then
    bad "SIGINT: exit $got, expected 130"; sed 's/^/  | /' "$tmp/err"
elif ls "$tmp" | grep -q '^int\.jsonl'; then
    bad "SIGINT left $(ls "$tmp" | grep '^int\.jsonl')"
else
    echo "ok: SIGINT: exit 130, nothing left"
fi
# a held-out record whose response alone exceeds the 512-token context: unscorable (NaN),
# reported and left out of the means
{ sed -n 3p "$sample"
  printf '{"id": "long", "instruction": "Repeat.", "output": "'
  i=0; while [ $i -lt 700 ]; do printf 'word%d ' $i; i=$((i + 1)); done
  printf '"}\n'; } >"$tmp/long.jsonl"
expect 0 "" "unscorable held-out record" -- \
    "$bin" eval --model "$model" --subset "$tmp/six.jsonl" --heldout "$tmp/long.jsonl" \
    --json --per-record "$tmp/long.per.jsonl" --threads 2
cp "$tmp/out" "$tmp/long.json"

if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 absent, JSON checks not run"
    [ "$fail" -eq 0 ] && exit 77 || exit 1
fi
python3 - "$bin" "$model" "$tmp" <<'PY' || fail=1
import json, math, subprocess, sys
binary, model, tmp = sys.argv[1:4]
bad = []
def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        bad.append(what)

def records(path):
    return [json.loads(l) for l in open(path)]

def prompt_of(r):  # spec/DELIFT.md §1
    return "Instruction: %s\nInput: %s\n" % (r["instruction"], r.get("input", ""))

NOICL = "Instruction: Please generate a response to the following query.\n\n\nQuery: {p_i}\n"
ICL = ("Instruction:\nUse the following example as a guide to answer the query in the same "
       "format and style, providing a clear and concise response.\n\n\nExample:\n{p_j}\n{r_j}"
       "\n\n\nQuery:\n{p_i}\n")

def model_score(prompt, target):
    out = subprocess.run([binary, "model", "score", "--model", model, "--prompt", prompt,
                          "--target", target, "--json"], check=True, capture_output=True)
    return json.loads(out.stdout)

for name, held in (("self", "six"), ("cross", "three")):
    s = json.load(open("%s/%s.json" % (tmp, name)))
    per = records("%s/%s.jsonl" % (tmp, name))
    subset, heldout = records(tmp + "/six.jsonl"), records(tmp + "/%s.jsonl" % held)
    keys = ["model_sha256", "n_subset", "n_heldout", "n_scored", "n_unscorable", "n_helped",
            "frac_helped", "d_icl", "d_noicl", "d_diff", "ll_icl", "ll_noicl", "ll_diff"]
    check(all(k in s for k in keys), name + ": summary has every field")
    check(s["n_subset"] == 6 and s["n_heldout"] == len(heldout) == len(per)
          and s["n_scored"] == len(per) and s["n_unscorable"] == 0, name + ": counts")
    check([p["heldout_id"] for p in per] == [r["id"] for r in heldout], name + ": held-out order")
    check(all(subset[p["example_index"]]["id"] == p["example_id"] for p in per),
          name + ": example ids match their indices")
    # the summary, recomputed from the per-record lines (population std)
    def ms(v):
        m = sum(v) / len(v)
        return m, math.sqrt(sum((x - m) ** 2 for x in v) / len(v))
    cols = {"d_icl": [p["d_icl"] for p in per], "d_noicl": [p["d_noicl"] for p in per],
            "ll_icl": [p["ll_icl"] for p in per], "ll_noicl": [p["ll_noicl"] for p in per]}
    cols["d_diff"] = [a - b for a, b in zip(cols["d_icl"], cols["d_noicl"])]
    cols["ll_diff"] = [a - b for a, b in zip(cols["ll_icl"], cols["ll_noicl"])]
    ok = all(abs(ms(v)[0] - s[k]["mean"]) < 1e-12 and abs(ms(v)[1] - s[k]["std"]) < 1e-12
             for k, v in cols.items())
    check(ok, name + ": means and stds equal the per-record recomputation")
    helped = sum(p["d_icl"] < p["d_noicl"] for p in per)
    check(helped == s["n_helped"] and all(p["helped"] == (p["d_icl"] < p["d_noicl"]) for p in per)
          and abs(s["frac_helped"] - helped / len(per)) < 1e-15, name + ": helped counts")
    # one record of each run against `delift model score` on the template strings
    p = per[1]
    h, e = heldout[p["heldout_index"]], subset[p["example_index"]]
    r = model_score(NOICL.replace("{p_i}", prompt_of(h)), " " + h["output"])
    check(abs(r["distance"] - p["d_noicl"]) <= 1e-5 and abs(r["mean_logprob"] - p["ll_noicl"]) <= 1e-5,
          "%s: d_noicl %.8f and ll_noicl %.6f equal model score's %.8f, %.6f" %
          (name, p["d_noicl"], p["ll_noicl"], r["distance"], r["mean_logprob"]))
    icl = (ICL.replace("{p_j}", prompt_of(e)).replace("{r_j}", " " + e["output"])
           .replace("{p_i}", prompt_of(h)))
    r = model_score(icl, " " + h["output"])
    check(abs(r["distance"] - p["d_icl"]) <= 1e-5 and abs(r["mean_logprob"] - p["ll_icl"]) <= 1e-5,
          "%s: d_icl %.8f and ll_icl %.6f equal model score's %.8f, %.6f" %
          (name, p["d_icl"], p["ll_icl"], r["distance"], r["mean_logprob"]))

s = json.load(open(tmp + "/self.json"))
per = records(tmp + "/self.jsonl")
check(all(p["example_id"] == p["heldout_id"] and abs(p["similarity"] - 1) < 1e-5 for p in per),
      "self: every record's nearest example is itself (cosine 1)")
check(s["frac_helped"] > 0.5 and s["d_diff"]["mean"] < 0,
      "self: self-ICL helps most records (%d of %d, mean d_icl - d_noicl %.5f)" %
      (s["n_helped"], s["n_scored"], s["d_diff"]["mean"]))
c = json.load(open(tmp + "/cross.json"))
check(all(abs(p["d_noicl"] - q["d_noicl"]) < 1e-12 for p in records(tmp + "/cross.jsonl")
          for q in per if q["heldout_id"] == p["heldout_id"]),
      "d_noicl of a record does not depend on the subset")
t, tp = json.load(open(tmp + "/tpl.json")), records(tmp + "/tpl.jsonl")[2]
h, e = records(tmp + "/three.jsonl")[tp["heldout_index"]], records(tmp + "/six.jsonl")[tp["example_index"]]
custom = open(tmp + "/icl.txt").read()
r = model_score(custom.replace("{p_j}", prompt_of(e)).replace("{r_j}", " " + e["output"])
                .replace("{p_i}", prompt_of(h)), " " + h["output"])
check(abs(r["distance"] - tp["d_icl"]) <= 1e-5 and t["truncate_quantum"] == 32
      and abs(tp["d_icl"] - records(tmp + "/cross.jsonl")[2]["d_icl"]) > 1e-6,
      "custom ICL template: d_icl %.8f equals model score's %.8f on that template" %
      (tp["d_icl"], r["distance"]))
shared = [p for p in records(tmp + "/cross.jsonl") if p["heldout_id"] == per[1]["heldout_id"]]
check(len(shared) == 1 and shared[0]["example_id"] == shared[0]["heldout_id"]
      and abs(shared[0]["d_icl"] - per[1]["d_icl"]) < 1e-12,
      "cross: the record also in the subset is its own example, scored as in the self run")
s = json.load(open(tmp + "/long.json"))
per = records(tmp + "/long.per.jsonl")
one = records(tmp + "/cross.jsonl")[0]  # the same record (sample line 3), scored alone there
check(s["n_heldout"] == 2 and s["n_scored"] == 1 and s["n_unscorable"] == 1
      and per[1]["d_noicl"] is None and per[1]["d_icl"] is None and per[1]["helped"] is False
      and s["d_noicl"]["std"] == 0 and abs(s["d_noicl"]["mean"] - one["d_noicl"]) < 1e-12
      and abs(s["ll_icl"]["mean"] - per[0]["ll_icl"]) < 1e-12,
      "unscorable: counted, null in the per-record file, left out of the means")
sys.exit(1 if bad else 0)
PY
exit $fail
