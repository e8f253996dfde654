#!/bin/sh
# bench/vs_llamacpp.sh: our prompt processing and llama.cpp's, side by side on
# the same GGUF files, machine and thread count, in alternating rounds.
#
# usage (from the build directory): make bench-llamacpp
#    or: SRCDIR/bench/vs_llamacpp.sh [rounds [threads [tokens]]]   (3, 2, 256)
#
# llama.cpp comes as the prebuilt CPU libraries of the npm package
# node-llama-cpp (MIT), installed once into $DELIFT_LLAMACPP_DIR (default
# ~/.cache/delift/node-llama-cpp) with npm; without node/npm, or when the
# install fails, the script says so and exits 77.  Ours is bench/bench_pp.
# Each round runs, per model, bench_pp then llama.cpp (5 timed runs each
# after a warm-up); the summary takes each side's best over all rounds and
# the median of its per-round medians.  Models: delift-mini F32, F16, Q8_0
# from $DELIFT_SHARED/models (else ../shared beside the source tree) when
# present, and the Q4_K_M / Q5_K_M files of data/.
#
# What is compared: llama.cpp evaluates one sequence of `tokens` ids and
# computes the logits of its last position; bench_pp scores the same ids,
# once computing every position's next-token log-probability (what DELIFT
# needs: the output layer at all positions, about a fifth more arithmetic on
# delift-mini) and once the last position's only (llama.cpp's work); both
# also in the fast mode (`--fast`: 8-bit weights and activations, integer
# products, as llama.cpp computes on Q8_0).
set -eu
rounds=${1:-3}
threads=${2:-2}
tokens=${3:-256}
src=$(cd "$(dirname "$0")/.." && pwd)
shared=${DELIFT_SHARED:-$src/../shared}
dir=${DELIFT_LLAMACPP_DIR:-${HOME:-/tmp}/.cache/delift/node-llama-cpp}
ver=3.22.1
[ -x ./bench/bench_pp ] || { echo "vs_llamacpp: run from the build directory (make bench-llamacpp)" >&2; exit 2; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "vs_llamacpp: node and npm are needed for llama.cpp's side: skipped"
    exit 77
fi
if [ ! -d "$dir/node_modules/node-llama-cpp" ]; then
    echo "vs_llamacpp: installing node-llama-cpp $ver into $dir"
    mkdir -p "$dir"
    printf '{"name":"delift-vs-llamacpp","private":true,"type":"module"}\n' >"$dir/package.json"
    if ! (cd "$dir" && npm install --silent --omit=optional --ignore-scripts \
        "node-llama-cpp@$ver" "@node-llama-cpp/linux-x64@$ver"); then
        echo "vs_llamacpp: npm install failed: skipped"
        exit 77
    fi
fi
cp "$src/bench/vs_llamacpp.mjs" "$dir/vs_llamacpp.mjs"
models=
for f in "$shared/models/delift-mini-f32.gguf" "$shared/models/delift-mini-f16.gguf" \
    "$shared/models/delift-mini-q8_0.gguf" "$src/data/delift-mini-q4_k_m.gguf" \
    "$src/data/delift-mini-q5_k_m.gguf"; do
    [ -r "$f" ] && models="$models $f"
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT INT TERM
echo "vs_llamacpp: $rounds rounds, $threads threads, $tokens tokens; load average $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$rounds" ]; do
    for m in $models; do
        ./bench/bench_pp "$m" "$threads" "$tokens" 5 1 all | tee -a "$log"
        ./bench/bench_pp "$m" "$threads" "$tokens" 5 1 last | tee -a "$log"
        ./bench/bench_pp "$m" "$threads" "$tokens" 5 1 all fast | tee -a "$log"
        ./bench/bench_pp "$m" "$threads" "$tokens" 5 1 last fast | tee -a "$log"
        node "$dir/vs_llamacpp.mjs" "$threads" "$tokens" 5 "$m" | tee -a "$log"
    done
    r=$((r + 1))
done
echo "summary (best over rounds; median of the round medians), load average $(cut -d' ' -f1-3 /proc/loadavg):"
for m in $models; do
    grep -F " $m " "$log" | awk -v m="$(basename "$m")" '
        { side = $1; best = $(NF - 6); med = $(NF - 3);
          if (best > b[side]) b[side] = best; k = ++n[side]; md[side, k] = med }
        function median(side,   i, j, t, c) {
            c = n[side]; for (i = 1; i <= c; i++) a[i] = md[side, i];
            for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return a[int((c + 1) / 2)] }
        END { ds = median("delift"); ls = median("llama.cpp"); d1 = median("delift-1");
              printf "%-24s llama.cpp best %6.0f median %6.0f | delift all positions best %6.0f median %6.0f (x%.2f, x%.2f) | last only best %6.0f median %6.0f (x%.2f, x%.2f)\n",
                     m, b["llama.cpp"], ls, b["delift"], ds, b["delift"] / b["llama.cpp"], ds / ls,
                     b["delift-1"], d1, b["delift-1"] / b["llama.cpp"], d1 / ls
              if (n["delift-F"]) { df = median("delift-F"); d1f = median("delift-1F");
                  printf "%-24s fast mode: all positions best %6.0f median %6.0f (x%.2f, x%.2f) | last only best %6.0f median %6.0f (x%.2f, x%.2f)\n",
                         m, b["delift-F"], df, b["delift-F"] / b["llama.cpp"], df / ls,
                         b["delift-1F"], d1f, b["delift-1F"] / b["llama.cpp"], d1f / ls } }'
done
