#!/bin/bash
# End-to-end tests of delift-server running REAL selections: the daemon as
# installed (delift-server, executor "delift-select") on a random loopback
# port with the bundled model, driven over HTTP with curl.  Every result is
# checked against `delift select` run on the same inputs with its own score
# cache (an independent run of the CLI, not the server's own output).
# Covers: the instruction stage (ranking, records, manifest), score reuse by
# a second job, the task stage with a target, the continual stage with an
# existing set, failed jobs (budget over the
# pool) with clean error bodies, options refused at POST (400), cancel of a running job,
# and kill -9 during scoring then restart: the job resumes from the cache
# and ends with the uninterrupted run's ranking.
set -u
build=${DELIFT_BUILDDIR:-.}
src=${DELIFT_SRCDIR:-.}
server=$build/delift-server
cli=${DELIFT_BIN:-$build/delift}
for t in curl jq cmp sha256sum; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
model=$src/data/delift-mini-q8_0.gguf
[ -r "$model" ] || model=${DELIFT_SHARED:-/nonexistent}/models/delift-mini-q8_0.gguf
[ -r "$model" ] || { echo "SKIP: no delift-mini-q8_0.gguf (data/ or ../shared/models)"; exit 77; }
[ -x "$server" ] && [ -x "$cli" ] || { echo "FAIL: $server or $cli not built"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/srv_select_e2e.XXXXXX")
pid=
bgpids=
stop_daemon() { # SIGNAL
    if [ -n "$pid" ]; then
        kill "-$1" "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        last_rc=$?
        pid=
    fi
}
cleanup() {
    stop_daemon KILL
    for p in $bgpids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fails=0
ok() { echo "ok: $*"; }
section() { echo "== $* (t=${SECONDS}s)"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; echo "--- daemon log (tail)"; tail -n 20 "$work/log"; exit 1; }

start() { # runs delift-server in the background, waits for its port
    : >"$work/out"
    "$server" "${common[@]}" >"$work/out" 2>>"$work/log" &
    pid=$!
    for _ in $(seq 1 100); do grep -q '"listening"' "$work/out" && break; sleep 0.05; done
    port=$(jq -r .port "$work/out" 2>/dev/null)
    [ -n "$port" ] && [ "$port" != null ] || die "delift-server did not start"
    base=http://127.0.0.1:$port
}

KEY=select-key-0123456789abcdef
AUTH="Authorization: Bearer $KEY"
req() { # METHOD PATH [curl args...]: sets code; body in $work/body
    local m=$1 p=$2
    shift 2
    code=$(curl -s -m 10 -o "$work/body" -w '%{http_code}' -X "$m" -H "$AUTH" "$@" "$base$p")
}
expect() { # CODE WHAT
    if [ "$code" = "$1" ]; then ok "$2 -> $1"; else bad "$2: got $code, want $1: $(head -c 300 "$work/body")"; fi
}
field() { jq -r "$1" "$work/body"; }
no_leak() { # WHAT: the last body names no server path
    if grep -q -F -e "$work" -e "$model" "$work/body"; then bad "$1 leaks a server path: $(head -c 400 "$work/body")"; fi
}
upload() { # FILE: prints the dataset id
    req POST /v1/datasets --data-binary @"$1"
    [ "$code" = 201 ] || [ "$code" = 200 ] || die "upload of $1: $code $(cat "$work/body")"
    field .id
}
post_job() { # SPEC: sets job
    req POST /v1/selections -H 'Content-Type: application/json' --data-binary "$1"
    job=$(field .id)
}
wait_state() { # ID STATE [SECONDS]: polls the job until STATE
    local tries=$(( ${3:-90} * 5 ))
    for _ in $(seq 1 "$tries"); do
        req GET "/v1/selections/$1"
        [ "$(field .state)" = "$2" ] && return 0
        case $(field .state) in succeeded|failed|cancelled) break ;; esac
        sleep 0.2
    done
    bad "job $1 did not reach $2 (last: $(head -c 400 "$work/body"))"
    return 1
}
# ranking_of ID: "id index gain" lines of a job's ranking.json
ranking_of() {
    req GET "/v1/selections/$1/result"
    jq -r '.selected[] | "\(.id) \(.index) \(.gain)"' "$work/body"
}
# cli_ranking FILE.ranking.jsonl: the same lines from the CLI's ranking
cli_ranking() { jq -r '"\(.id) \(.index) \(.gain)"' "$1"; }
# cli_select NAME ARGS...: `delift select` into $work/NAME.jsonl, own cache, in the background
cli_select() {
    local name=$1
    shift
    "$cli" select --model "$model" --cache "$work/cli-cache.sqlite" -q "$@" \
        -o "$work/$name.jsonl" >"$work/$name.cli.log" 2>&1 &
    bgpids="$bgpids $!"
    eval "cli_pid_$name=$!"
}
cli_wait() { # NAME
    local p
    eval "p=\$cli_pid_$1"
    wait "$p" || die "delift select for $1 failed: $(cat "$work/$1.cli.log")"
}

# ---- fixtures ----------------------------------------------------------------------
printf '%s\n' "$KEY" >"$work/keys"
head -n 8 "$src/data/sample.jsonl" >"$work/pool8.jsonl"
[ "$(grep -c . "$work/pool8.jsonl")" = 8 ] || die "data/sample.jsonl has fewer than 8 records"
# Short records score fast: the resumable and cancellable jobs use them.
for i in $(seq 1 20); do
    printf '{"id":"s%d","instruction":"Add %d and %d.","input":"","output":"%d"}\n' \
        "$i" "$i" $((i * 3)) $((i * 4))
done >"$work/short20.jsonl"
for i in 1 2 3 4 5 6; do
    printf '{"id":"p%d","instruction":"Write the number %d in words.","input":"","output":"%s"}\n' \
        "$i" "$i" "$(echo one two three four five six | cut -d' ' -f"$i")"
done >"$work/taskpool.jsonl"
printf '%s\n' '{"id":"t1","instruction":"Write the number 7 in words.","input":"","output":"seven"}' \
    '{"id":"t2","instruction":"Write the number 9 in words.","input":"","output":"nine"}' \
    '{"id":"t3","instruction":"Add 2 and 2.","input":"","output":"4"}' >"$work/target.jsonl"
data=$work/data
common=(--data-dir "$data" --model "mini=$model" --api-key-file "$work/keys" --workers 1
        --listen 127.0.0.1:0)

# The CLI's reference runs go first (in the background): they share the
# two cores with the daemon but not its cache.
cli_select ref8 --stage instruction --budget 4 --pairs all "$work/pool8.jsonl"
start
req GET /readyz; expect 200 "readyz"
[ "$(field .checks.executor)" = delift-select ] && ok "executor delift-select" || bad "readyz: $(cat "$work/body")"

# ---- instruction stage: the CLI's selection, over HTTP --------------------------------
section "instruction stage"
pool8=$(upload "$work/pool8.jsonl")
post_job '{"model":"mini","stage":"instruction","budget":4,"pool":"'"$pool8"'","pairs":"all"}'
expect 202 "instruction job"
j8=$job
wait_state "$j8" succeeded && ok "instruction job succeeded"
cli_wait ref8
ranking_of "$j8" >"$work/srv8.rank"
cli_ranking "$work/ref8.ranking.jsonl" >"$work/cli8.rank"
[ "$(wc -l <"$work/srv8.rank")" = 4 ] || bad "ranking has $(wc -l <"$work/srv8.rank") entries, want 4"
cmp -s "$work/srv8.rank" "$work/cli8.rank" && ok "ranking (id, index, gain) = delift select's" \
    || bad "ranking differs from delift select: $(paste -d'|' "$work/srv8.rank" "$work/cli8.rank")"
req GET "/v1/selections/$j8/result"
[ "$(field .n)" = 8 ] && [ "$(field .k)" = 4 ] && [ "$(field '[.selected[].rank] | join(",")')" = 0,1,2,3 ] \
    || bad "ranking document: $(cat "$work/body")"
req GET "/v1/selections/$j8/records"; expect 200 "records"
cmp -s "$work/body" "$work/ref8.jsonl" && ok "records = delift select's subset, byte for byte" \
    || bad "records differ from delift select's subset"
req GET "/v1/selections/$j8/manifest"; expect 200 "manifest"
no_leak "manifest"
[ "$(field .executor)" = delift-select ] && [ "$(field .model.path)" = mini ] \
    && [ "$(field .inputs.pool.path)" = "$pool8" ] && [ "$(field .inputs.pool.sha256)" = "$pool8" ] \
    && [ "$(field .spec.pool)" = "$pool8" ] && [ "$(field .method.function)" = fl ] \
    && ok "manifest names the model and dataset ids" || bad "manifest: $(head -c 600 "$work/body")"
[ "$(field .model.sha256)" = "$(sha256sum "$model" | cut -d' ' -f1)" ] || bad "manifest model hash"

# A second job over the same records: every score from the shared cache.
post_job '{"model":"mini","stage":"instruction","budget":3,"pool":"'"$pool8"'","pairs":"all"}'
j8b=$job
wait_state "$j8b" succeeded
req GET "/v1/selections/$j8b/manifest"
[ "$(field .stats.pairs_cached)" = "$(field .stats.pairs_total)" ] && [ "$(field .stats.pairs_scored)" = 0 ] \
    && ok "second job: all $(field .stats.pairs_total) scores from the cache" || bad "no reuse: $(field .stats)"
ranking_of "$j8b" >"$work/srv8b.rank"
head -n 3 "$work/cli8.rank" | cmp -s - "$work/srv8b.rank" && ok "budget 3 = the first 3 of budget 4 (greedy)" \
    || bad "budget-3 ranking: $(cat "$work/srv8b.rank")"

# The fast mode over HTTP: recorded in the manifest, scored in a cache scope of its own.
post_job '{"model":"mini","stage":"instruction","budget":3,"pool":"'"$pool8"'","pairs":"all","options":{"fast":true}}'
expect 202 "fast job"
jf=$job
wait_state "$jf" succeeded && ok "fast job succeeded"
req GET "/v1/selections/$jf/manifest"
[ "$(field .engine.fast)" = true ] && [ "$(field .stats.pairs_cached)" = 0 ] \
    && ok "fast job: engine.fast recorded, nothing from the exact scores' cache" \
    || bad "fast manifest: $(field .engine) $(field .stats)"

# ---- task stage with a target, continual stage with an existing set ---------------------------
section "task and continual stages"
cli_select reftask --stage task --target "$work/target.jsonl" --budget 2 --pairs all "$work/taskpool.jsonl"
tpool=$(upload "$work/taskpool.jsonl")
ttarget=$(upload "$work/target.jsonl")
post_job '{"model":"mini","stage":"task","budget":2,"pool":"'"$tpool"'","target":"'"$ttarget"'","pairs":"all"}'
expect 202 "task job"
jt=$job
wait_state "$jt" succeeded && ok "task job succeeded"
cli_wait reftask
ranking_of "$jt" >"$work/srvtask.rank"
cli_ranking "$work/reftask.ranking.jsonl" | cmp -s - "$work/srvtask.rank" && ok "task ranking = delift select's" \
    || bad "task ranking: $(cat "$work/srvtask.rank") vs $(cli_ranking "$work/reftask.ranking.jsonl")"
req GET "/v1/selections/$jt/records"
cmp -s "$work/body" "$work/reftask.jsonl" || bad "task records differ"
req GET "/v1/selections/$jt/manifest"
# Q[i][q] = U(target q, example pool i): pool rows, target columns
[ "$(field .method.function)" = flmi ] && [ "$(field .inputs.target.path)" = "$ttarget" ] \
    && [ "$(field .kernels.Q.rows)" = 6 ] && [ "$(field .kernels.Q.cols)" = 3 ] || bad "task manifest: $(head -c 600 "$work/body")"
no_leak "task manifest"
# continual stage: the target set stands in as the data the model already has
cli_select refcont --stage continual --existing "$work/target.jsonl" --budget 3 --pairs all "$work/taskpool.jsonl"
post_job '{"model":"mini","stage":"continual","budget":3,"pool":"'"$tpool"'","existing":"'"$ttarget"'","pairs":"all"}'
expect 202 "continual job"
jcont=$job
wait_state "$jcont" succeeded && ok "continual job succeeded"
cli_wait refcont
ranking_of "$jcont" >"$work/srvcont.rank"
cli_ranking "$work/refcont.ranking.jsonl" | cmp -s - "$work/srvcont.rank" && ok "continual ranking = delift select's" \
    || bad "continual ranking: $(cat "$work/srvcont.rank") vs $(cli_ranking "$work/refcont.ranking.jsonl")"
req GET "/v1/selections/$jcont/manifest"
[ "$(field .method.function)" = flcg ] && [ "$(field .inputs.existing.path)" = "$ttarget" ] \
    && [ "$(field .kernels.P.rows)" = 6 ] && [ "$(field .kernels.P.cols)" = 3 ] || bad "continual manifest: $(head -c 600 "$work/body")"

# ---- failures: clean error bodies ----------------------------------------------------------
section "failures"
post_job '{"model":"mini","stage":"instruction","budget":20,"pool":"'"$pool8"'"}'
expect 202 "budget over the pool (accepted: only the pipeline knows the pool's size)"
jf=$job
wait_state "$jf" failed && ok "budget over the pool: failed"
[ "$(field .error.type)" = usage ] && [ "$(field .error.field)" = budget ] && [ "$(field .error.code)" = 400 ] \
    && field .error.message | grep -q 'larger than the pool (8 records)' && ok "error: $(field .error.message)" \
    || bad "budget error: $(cat "$work/body")"
no_leak "failed job"
req GET "/v1/selections/$jf/result"; expect 409 "result of a failed job"
# what the executor can check without running is refused at POST (400), no job made
post_job '{"model":"mini","stage":"instruction","budget":2,"pool":"'"$pool8"'","options":{"colour":"red"}}'
expect 400 "unknown option"
[ "$(field .error.field)" = options.colour ] && [ "$(field .error.type)" = usage ] \
    && ok "unknown option: field options.colour" || bad "unknown option: $(cat "$work/body")"
no_leak "unknown option"
post_job '{"model":"mini","stage":"instruction","budget":2,"pool":"'"$pool8"'","options":{"optimizer":"fastest"}}'
expect 400 "unknown optimizer"
[ "$(field .error.field)" = options.optimizer ] || bad "unknown optimizer: $(cat "$work/body")"
post_job '{"model":"mini","stage":"instruction","budget":2,"pool":"'"$pool8"'","options":{"template_icl":"no placeholder"}}'
expect 400 "template without {p_i}"
[ "$(field .error.field)" = options.template_icl ] || bad "bad template: $(cat "$work/body")"
no_leak "bad template"

# ---- cancel a running job ------------------------------------------------------------------------
section "cancel a running"
s20=$(upload "$work/short20.jsonl")
# bos:true scores under another cache scope: nothing of the kill test below is cached by it
post_job '{"model":"mini","stage":"instruction","budget":5,"pool":"'"$s20"'","pairs":"all","options":{"bos":true}}'
jc=$job
wait_state "$jc" running
req POST "/v1/selections/$jc/cancel"; expect 202 "cancel a running job"
wait_state "$jc" cancelled 60 && ok "running job cancelled"
req GET "/v1/selections/$jc/result"; expect 409 "result of a cancelled job"

# ---- kill -9 during scoring, restart, resume ----------------------------------------------------
section "kill -9 during"
cli_select ref20 --stage instruction --budget 5 --pairs all "$work/short20.jsonl"
post_job '{"model":"mini","stage":"instruction","budget":5,"pool":"'"$s20"'","pairs":"all"}'
jk=$job
killed_at=
kdone=0
for _ in $(seq 1 900); do # until a block of pairs is committed (done > 0), before the end
    req GET "/v1/selections/$jk"
    if [ "$(field .progress.phase)" = pairs ] && [ "$(field '.progress.done // 0')" -gt 0 ]; then
        kdone=$(field .progress.done)
        killed_at="$kdone/$(field .progress.total)"
        break
    fi
    [ "$(field .state)" = succeeded ] && break
    sleep 0.1
done
stop_daemon KILL
[ -n "$killed_at" ] && ok "killed with SIGKILL at pairs $killed_at" || bad "no progress seen before the kill: $(cat "$work/body")"
start
wait_state "$jk" succeeded && ok "interrupted job finished after restart"
req GET "/v1/selections/$jk"
[ "$(field .attempts)" = 2 ] || bad "attempts $(field .attempts), want 2"
req GET "/v1/selections/$jk/manifest"
cached=$(field .stats.pairs_cached) scored=$(field .stats.pairs_scored) total=$(field .stats.pairs_total)
# at least the 20 no-ICL scores and the pairs committed before the kill come from the cache
[ "$cached" -ge $((kdone + 20)) ] && [ "$scored" -gt 0 ] && [ $((cached + scored)) = "$total" ] \
    && ok "resumed: $cached of $total scores from the checkpoint, $scored computed" \
    || bad "no resume: cached $cached scored $scored total $total"
cli_wait ref20
ranking_of "$jk" >"$work/srv20.rank"
cli_ranking "$work/ref20.ranking.jsonl" | cmp -s - "$work/srv20.rank" \
    && ok "resumed ranking = the uninterrupted run's" || bad "resumed ranking: $(cat "$work/srv20.rank")"
req GET "/v1/selections/$jk/records"
cmp -s "$work/body" "$work/ref20.jsonl" || bad "resumed records differ"
req GET "/v1/selections/$j8/records"
cmp -s "$work/body" "$work/ref8.jsonl" && ok "earlier results survive the kill" || bad "records lost after kill -9"
stop_daemon TERM
[ "$last_rc" = 0 ] && ok "SIGTERM: clean exit" || bad "SIGTERM exit code $last_rc"

# Built with --enable-sanitizers, the daemon's reports land in the log.
if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/log" >/dev/null; then
    bad "sanitizer report in the daemon log:"
    grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/log" | head -n 60
fi
echo "$fails failure(s)"
[ "$fails" = 0 ]
