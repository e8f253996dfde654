#!/bin/bash
# End-to-end tests of delift-server: the REAL daemon (tests/srv_testd: the
# same program with a test executor, and delift-server itself) on a random
# loopback port, driven over HTTP with curl.  Every wait is bounded; every
# daemon is killed on exit (trap).
set -u
build=${DELIFT_BUILDDIR:-.}
testd=$build/tests/srv_testd
server=$build/delift-server
raw=$build/tests/srv_rawclient
for t in curl jq sha256sum tac; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/srv_e2e.XXXXXX")
pid=
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
cleanup() { stop_daemon KILL; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; echo "--- daemon log (tail)"; tail -n 20 "$work/log"; exit 1; }

# start PROGRAM ARGS...: runs it in the background, waits for its port.
start() {
    : >"$work/out"
    "$@" >"$work/out" 2>>"$work/log" &
    pid=$!
    for _ in $(seq 1 100); do grep -q '"listening"' "$work/out" && break; sleep 0.05; done
    port=$(jq -r .port "$work/out" 2>/dev/null)
    [ -n "$port" ] && [ "$port" != null ] || die "daemon did not start: $*"
    base=http://127.0.0.1:$port
}

KEY=test-key-0123456789abcdef
AUTH="Authorization: Bearer $KEY"
# req METHOD PATH [curl args...]: sets code; body in $work/body, headers in $work/hdr
req() {
    local m=$1 p=$2
    shift 2
    code=$(curl -s -m 10 -o "$work/body" -D "$work/hdr" -w '%{http_code}' -X "$m" "$@" "$base$p")
}
expect() { # CODE WHAT
    if [ "$code" = "$1" ]; then ok "$2 -> $1"; else bad "$2: got $code, want $1: $(head -c 300 "$work/body")"; fi
}
# expect_error CODE TYPE WHAT: the srv_error body, with no path leaked
expect_error() {
    expect "$1" "$3"
    local c t
    read -r c t < <(jq -r '"\(.error.code) \(.error.type)"' "$work/body" 2>/dev/null)
    [ "$c" = "$1" ] && [ "$t" = "$2" ] || bad "$3: error body $(head -c 300 "$work/body")"
    [[ "$(<"$work/body")" == *"$work"* ]] && bad "$3: the body leaks a server path"
    return 0
}
field() { jq -r "$1" "$work/body"; }
hdr() { # NAME: the value of a response header (bash only: no subprocess)
    local line name want=${1,,}
    while IFS= read -r line; do
        line=${line%$'\r'}
        name=${line%%:*}
        if [ "${name,,}" = "$want" ]; then echo "${line#*: }"; return; fi
    done <"$work/hdr"
}

# wait_state ID STATE: polls a job until it reaches STATE (<= 20 s).
wait_state() {
    for _ in $(seq 1 200); do
        req GET "/v1/selections/$1" -H "$AUTH"
        [ "$(field .state)" = "$2" ] && return 0
        sleep 0.1
    done
    bad "job $1 never reached $2 (last: $(head -c 300 "$work/body"))"
    return 1
}

# Waits (at most 5 s) until the data dir's tmp/ is empty.
tmp_empty() {
    for _ in $(seq 1 50); do
        [ "$(ls "$data/tmp" | wc -l)" = 0 ] && return
        sleep 0.1
    done
}

# ---- fixtures ------------------------------------------------------------
printf '%s\n' "$KEY" "# a comment" "second-key-abcdefghijklmnop" >"$work/keys"
printf 'GGUF not really a model\n' >"$work/model.gguf"
for i in $(seq 1 12); do
    printf '{"id":"r%d","instruction":"question %d","input":"","output":"answer %d"}\n' "$i" "$i" "$i"
done >"$work/pool.jsonl"
pool_id=$(sha256sum "$work/pool.jsonl" | cut -d' ' -f1)
data=$work/data
common=(--data-dir "$data" --model "mini=$work/model.gguf" --api-key-file "$work/keys"
        --workers 1 --queue-max 2 --max-body 4096 --max-json 2048 --timeout 2
        --listen 127.0.0.1:0)

start "$testd" "${common[@]}"

# ---- health, auth, request ids --------------------------------------------
req GET /healthz; expect 200 "healthz without a key"
req GET /readyz; expect 200 "readyz without a key"
[ "$(field .checks.models.mini)" = ok ] && [ "$(field .checks.executor)" = test ] || bad "readyz checks: $(cat "$work/body")"
req GET /v1/datasets; expect_error 401 usage "no key"
hdr WWW-Authenticate | grep -q Bearer || bad "401 without WWW-Authenticate"
req GET /v1/datasets -H "Authorization: Bearer wrong-key-0123456789"; expect_error 401 usage "wrong key"
req GET /v1/datasets -H "Authorization: Basic $KEY"; expect_error 401 usage "wrong scheme"
req GET /v1/datasets -H "Authorization: bearer second-key-abcdefghijklmnop"; expect 200 "second key, lowercase scheme"
req GET /metrics; expect_error 401 usage "metrics needs a key"
req GET /v1/models -H "$AUTH"; expect 200 "models"
[ "$(field '.models[0].name')" = mini ] || bad "models list: $(cat "$work/body")"
req GET /healthz -H "X-Request-Id: abc-123"
[ "$(hdr X-Request-Id)" = abc-123 ] && ok "X-Request-Id echoed" || bad "X-Request-Id not echoed"
req GET /healthz -H "X-Request-Id: bad id with spaces"
rid=$(hdr X-Request-Id)
[ -n "$rid" ] && [ "$rid" != "bad id with spaces" ] && ok "invalid X-Request-Id replaced" || bad "request id '$rid'"

# ---- routing errors ------------------------------------------------------------
req GET /nope -H "$AUTH"; expect_error 404 not_found "unknown route"
req GET /v1/datasets/ -H "$AUTH"; expect_error 404 not_found "trailing slash"
req GET /v1/datasets/../jobs.db -H "$AUTH" --path-as-is; expect_error 404 not_found "dot segments"
req PUT /v1/datasets -H "$AUTH"; expect_error 405 usage "PUT on datasets"
[ "$(hdr Allow)" = "POST, GET" ] || bad "Allow header '$(hdr Allow)'"
req GET "/v1/datasets/$(printf 'a%.0s' $(seq 1 65))" -H "$AUTH"; expect_error 404 not_found "overlong id"

# ---- datasets -------------------------------------------------------------------
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/pool.jsonl"; expect 201 "upload"
[ "$(field .id)" = "$pool_id" ] && ok "dataset id is the SHA-256 of the bytes" || bad "id $(field .id) != $pool_id"
[ "$(field .records)" = 12 ] && [ "$(field .mapping.shape)" = alpaca ] || bad "summary: $(cat "$work/body")"
[ "$(hdr Location)" = "/v1/datasets/$pool_id" ] || bad "Location '$(hdr Location)'"
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/pool.jsonl"; expect 200 "same bytes again"
[ "$(field .id)" = "$pool_id" ] || bad "dedupe id"
req POST /v1/datasets -H "$AUTH" -H "Transfer-Encoding: chunked" --data-binary @"$work/pool.jsonl"; expect 200 "same bytes, chunked"
head -n 3 "$work/pool.jsonl" >"$work/small.jsonl"
small_id=$(sha256sum "$work/small.jsonl" | cut -d' ' -f1)
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/small.jsonl"; expect 201 "second dataset"
req GET /v1/datasets -H "$AUTH"; expect 200 "list"
[ "$(field '.datasets | length')" = 2 ] && [ "$(field '[.datasets[].id] | sort | join(",")')" = "$(printf '%s\n' "$pool_id" "$small_id" | sort | paste -sd,)" ] || bad "list: $(cat "$work/body")"
req GET "/v1/datasets/$small_id" -H "$AUTH"; expect 200 "summary"
[ "$(field .records)" = 3 ] && [ "$(field .bytes)" = "$(wc -c <"$work/small.jsonl")" ] || bad "summary: $(cat "$work/body")"
req GET "/v1/datasets/$(printf '%064d' 0)" -H "$AUTH"; expect_error 404 not_found "unknown dataset"

# malformed uploads: 400 with line and field, nothing left behind
printf '{"instruction":"a","output":"b"}\n{"instruction":"c"}\n' >"$work/bad1"
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/bad1"; expect_error 400 input "missing field"
[ "$(field .error.line)" = 2 ] && [ "$(field .error.field)" = output ] || bad "line/field: $(cat "$work/body")"
printf '{"instruction":"a","output":"b"}\n{"instruction": "x", oops}\n' >"$work/bad2"
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/bad2"; expect_error 400 input "invalid JSON line"
[ "$(field .error.line)" = 2 ] || bad "invalid JSON line number: $(cat "$work/body")"
req POST /v1/datasets -H "$AUTH" --data-binary ''; expect_error 400 input "empty upload"
printf '{"instruction":"a","output":"\xff\xfe"}\n' >"$work/bad3"
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/bad3"; expect_error 400 input "invalid UTF-8"
printf '{"id":"x","instruction":"a","output":"b"}\n{"id":"x","instruction":"c","output":"d"}\n' >"$work/bad4"
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/bad4"; expect_error 400 input "duplicate id"
# body limit: 413 up front (Content-Length), connection closed (chunked)
head -c 5000 /dev/zero | tr '\0' ' ' >"$work/big"
req POST /v1/datasets -H "$AUTH" --data-binary @"$work/big"; expect_error 413 usage "upload over --max-body"
curl -s -m 10 -o /dev/null -H "$AUTH" -H "Transfer-Encoding: chunked" --data-binary @"$work/big" "$base/v1/datasets"
rc=$?; [ "$rc" != 0 ] && ok "chunked upload over the limit: connection closed (curl $rc)" || bad "chunked over the limit was accepted"
# a client that gives up mid-upload
curl -s -m 1 -o /dev/null -H "$AUTH" -H "Content-Length: 4000" --data-binary @"$work/small.jsonl" "$base/v1/datasets"
ok "client gave up mid-upload (curl $?)"
tmp_empty # the server notices the close and removes the partial upload
left=$(ls "$data/tmp" | wc -l)
[ "$left" = 0 ] && ok "no temporary file left behind" || bad "$left temporary files left in tmp/"
[ "$(ls "$data/datasets" | wc -l)" = 4 ] || bad "datasets dir: $(ls "$data/datasets")"

# ---- slow and half-closed clients ------------------------------------------------
"$raw" "$port" stall 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >"$work/raw1" &
rawpid=$!
req GET /healthz; expect 200 "served while a client stalls"
wait "$rawpid"; rc=$?
[ "$rc" = 0 ] && ok "stalled client closed by the idle timeout" || bad "stalled client: rc $rc"
"$raw" "$port" halfclose "POST /v1/datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $KEY\r\nContent-Length: 100\r\n\r\n{\"instr" >"$work/raw2"
rc=$?; [ "$rc" = 0 ] && ok "half-closed upload: connection ended" || bad "half-closed: rc $rc"
"$raw" "$port" halfclose 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >"$work/raw3"
grep -q '200 OK' "$work/raw3" && ok "half-closed after a full request: answered" || bad "half-closed GET: $(head -c 200 "$work/raw3")"
tmp_empty
[ "$(ls "$data/tmp" | wc -l)" = 0 ] || bad "upload files left after a half-closed client"
req GET /healthz; expect 200 "still serving"

# ---- selection specs -----------------------------------------------------------------
post_job() { # BODY [extra curl args]
    local b=$1
    shift
    req POST /v1/selections -H "$AUTH" -H 'Content-Type: application/json' --data-binary "$b" "$@"
}
spec() { # BUDGET [OPTIONS] [POOL]
    printf '{"model":"mini","stage":"instruction","budget":%s,"pool":"%s","options":%s}' \
        "$1" "${3:-$pool_id}" "${2:-{\}}"
}
post_job '{"model":'; expect_error 400 input "invalid JSON"
post_job '[]'; expect_error 400 usage "not an object"
post_job "$(spec 0)"; expect_error 400 usage "budget 0"; [ "$(field .error.field)" = budget ] || bad "budget field"
post_job "$(spec 1.5)"; expect_error 400 usage "budget 1.5"
post_job '{"model":"mini","stage":"bogus","budget":1,"pool":"'"$pool_id"'"}'; expect_error 400 usage "bad stage"
[ "$(field .error.field)" = stage ] || bad "stage field"
post_job '{"model":"nope","stage":"instruction","budget":1,"pool":"'"$pool_id"'"}'; expect_error 400 usage "unknown model"
post_job '{"model":"mini","stage":"task","budget":1,"pool":"'"$pool_id"'"}'; expect_error 400 usage "task without target"
[ "$(field .error.field)" = target ] || bad "target field"
post_job '{"model":"mini","stage":"instruction","budget":1,"pool":"'"$pool_id"'","colour":"red"}'; expect_error 400 usage "unknown member"
post_job '{"model":"mini","stage":"instruction","budget":1,"pool":"'"$pool_id"'","pairs":"knn:0"}'; expect_error 400 usage "knn:0"
post_job "$(spec 1 '{}' "$(printf '%064d' 0)")"; expect_error 404 not_found "unknown pool"
post_job "$(spec 1)"; expect 202 "create without a key"
wait_state "$(field .id)" succeeded
head -c 3000 /dev/zero | tr '\0' ' ' >"$work/bigjson"
post_job @"$work/bigjson"; expect_error 413 usage "JSON over --max-json"

# ---- the job cycle ---------------------------------------------------------------------
post_job "$(spec 4 '{"test_steps":5,"test_step_ms":10}')"; expect 202 "create a job"
job=$(field .id)
[ "$(hdr Location)" = "/v1/selections/$job" ] || bad "job Location '$(hdr Location)'"
wait_state "$job" succeeded && ok "job succeeded"
req GET "/v1/selections/$job/result" -H "$AUTH"; expect 200 "ranking"
[ "$(field '[.selected[].id] | join(",")')" = "r12,r11,r10,r9" ] || bad "ranking: $(cat "$work/body")"
req GET "/v1/selections/$job/records" -H "$AUTH"; expect 200 "selected records"
hdr Content-Type | grep -q ndjson || bad "records content type"
tail -n 4 "$work/pool.jsonl" | tac | cmp -s - "$work/body" && ok "records are the pool's lines, as they were" || bad "records differ"
req GET "/v1/selections/$job/manifest" -H "$AUTH"; expect 200 "manifest"
[ "$(field .spec.function)" = fl ] && [ "$(field .spec.pairs)" = auto ] || bad "normalised spec: $(cat "$work/body")"
cp "$work/body" "$work/manifest1"
req GET /v1/selections -H "$AUTH"; expect 200 "job list"
post_job "$(spec 0.25 '{"test_steps":1}' "$small_id")"; expect 202 "fractional budget"
wait_state "$(field .id)" succeeded
req GET "/v1/selections/$(field .id)/result" -H "$AUTH"
[ "$(field .k)" = 0 ] || bad "floor(0.25 * 3) = 0, got $(field .k)"
post_job "$(spec 1 '{"test_fail":"broken on purpose"}')"; expect 202 "a job that fails"
fjob=$(field .id)
wait_state "$fjob" failed && ok "job failed"
[ "$(field .error.message)" = "field 'options.test_fail': broken on purpose" ] && [ "$(field .error.type)" = input ] || bad "failure: $(cat "$work/body")"
req GET "/v1/selections/$fjob/result" -H "$AUTH"; expect_error 409 usage "result of a failed job"
req GET /v1/selections/jnope -H "$AUTH"; expect_error 404 not_found "unknown job"
req GET /v1/selections/jnope/result -H "$AUTH"; expect_error 404 not_found "result of an unknown job"

# ---- idempotency ---------------------------------------------------------------------------
post_job "$(spec 2 '{"test_steps":1}')" -H 'Idempotency-Key: k-1'; expect 202 "keyed create"
ijob=$(field .id)
post_job '{"pool":"'"$pool_id"'","budget":2,"stage":"instruction","model":"mini","options":{"test_steps":1},"pairs":"auto"}' -H 'Idempotency-Key: k-1'
expect 202 "same key, same spec reordered"
[ "$(field .id)" = "$ijob" ] && [ "$(hdr Idempotent-Replayed)" = true ] && ok "same job returned" || bad "idempotency: $(field .id) vs $ijob"
post_job "$(spec 3 '{"test_steps":1}')" -H 'Idempotency-Key: k-1'; expect_error 422 usage "same key, other spec"
post_job "$(spec 2)" -H "Idempotency-Key: $(printf 'k%.0s' $(seq 1 300))"; expect_error 400 usage "overlong key"
wait_state "$ijob" succeeded

# ---- queue limit, cancel, dataset in use ----------------------------------------------
post_job "$(spec 2 '{"test_steps":1000,"test_step_ms":20}')"; expect 202 "long job"
long=$(field .id)
wait_state "$long" running
post_job "$(spec 2 '{"test_steps":1}' "$small_id")"; q1=$(field .id); expect 202 "queued 1"
post_job "$(spec 1 '{"test_steps":1}' "$small_id")"; q2=$(field .id); expect 202 "queued 2"
post_job "$(spec 3 '{"test_steps":1}')"; expect_error 429 usage "queue full"
[ "$(hdr Retry-After)" = 5 ] || bad "Retry-After '$(hdr Retry-After)'"
req DELETE "/v1/datasets/$small_id" -H "$AUTH"; expect_error 409 usage "delete a dataset in use"
req GET "/v1/selections/$long" -H "$AUTH"
[ "$(field .progress.phase)" = pairs ] && [ "$(field .progress.total)" = 1000 ] || bad "progress: $(cat "$work/body")"
req POST "/v1/selections/$q1/cancel" -H "$AUTH"; expect 200 "cancel a queued job"
[ "$(field .state)" = cancelled ] || bad "queued cancel state $(field .state)"
req DELETE "/v1/selections/$q2" -H "$AUTH"; expect 200 "cancel with DELETE"
req DELETE "/v1/selections/$long" -H "$AUTH"; expect 202 "cancel a running job"
[ "$(field .cancel_requested)" = true ] || bad "cancel_requested"
wait_state "$long" cancelled && ok "running job cancelled"
req POST "/v1/selections/$long/cancel" -H "$AUTH"; expect_error 409 usage "cancel a cancelled job"
req DELETE "/v1/datasets/$small_id" -H "$AUTH"; expect 204 "delete an unused dataset"
req GET "/v1/datasets/$small_id" -H "$AUTH"; expect_error 404 not_found "deleted dataset"
[ ! -e "$data/datasets/$small_id.jsonl" ] || bad "data file left after delete"

# ---- metrics and logs --------------------------------------------------------------------------
req GET /metrics -H "$AUTH"; expect 200 "metrics"
grep -q '^delift_http_requests_total{method="GET",route="/v1/datasets",status="401"} [1-9]' "$work/body" || bad "metrics: 401 count"
grep -q '^delift_jobs{state="succeeded"} [1-9]' "$work/body" || bad "metrics: succeeded jobs"
grep -q '^delift_http_request_duration_seconds_bucket{le="+Inf"} [1-9]' "$work/body" || bad "metrics: histogram"
grep -q '^delift_pairs_scored_total [1-9]' "$work/body" || bad "metrics: pairs"
grep '"event":"request"' "$work/log" | grep -q '"request_id":"abc-123"' && ok "request logged as JSON with its id" || bad "no log line for abc-123"
grep '"event":"request"' "$work/log" | head -n 50 | jq -e 'select(.method and .route and .status and (.duration_ms >= 0))' >/dev/null || bad "log lines lack fields"

# ---- kill -9 during a job, restart --------------------------------------------------------------
post_job "$(spec 5 '{"test_steps":60,"test_step_ms":50}')"; expect 202 "job to interrupt"
kjob=$(field .id)
for _ in $(seq 1 100); do
    req GET "/v1/selections/$kjob" -H "$AUTH"
    [ "$(field '.progress.done // 0')" -ge 10 ] && break
    sleep 0.1
done
post_job "$(spec 2 '{"test_steps":1}')"; expect 202 "a job queued behind it"
qjob=$(field .id)
stop_daemon KILL
ok "daemon killed with SIGKILL"
start "$testd" "${common[@]}"
req GET "/v1/selections/$job/records" -H "$AUTH"; expect 200 "finished result survives kill -9"
tail -n 4 "$work/pool.jsonl" | tac | cmp -s - "$work/body" || bad "result changed after restart"
req GET "/v1/selections/$qjob" -H "$AUTH"; expect 200 "accepted job still known"
wait_state "$kjob" succeeded && ok "interrupted job finished after restart"
req GET "/v1/selections/$kjob/manifest" -H "$AUTH"
[ "$(field .resumed_from)" -ge 1 ] && ok "it resumed from its checkpoint (step $(field .resumed_from))" || bad "no resume: $(cat "$work/body")"
req GET "/v1/selections/$kjob/result" -H "$AUTH"
[ "$(field '[.selected[].id] | join(",")')" = "r12,r11,r10,r9,r8" ] || bad "resumed result: $(cat "$work/body")"
req GET "/v1/selections/$kjob" -H "$AUTH"
[ "$(field .attempts)" = 2 ] || bad "attempts $(field .attempts)"
wait_state "$qjob" succeeded

# ---- SIGTERM drains ------------------------------------------------------------------------------
post_job "$(spec 3 '{"test_steps":40,"test_step_ms":50}')"; tjob=$(field .id)
wait_state "$tjob" running
sleep 0.5
stop_daemon TERM
[ "$last_rc" = 0 ] && ok "SIGTERM: clean exit" || bad "SIGTERM exit code $last_rc"
grep -q '"event":"stopped"' "$work/log" || bad "no 'stopped' log line"
start "$testd" "${common[@]}"
wait_state "$tjob" succeeded && ok "drained job finished after restart"
req GET "/v1/selections/$tjob/manifest" -H "$AUTH"
[ "$(field .resumed_from)" -ge 1 ] || bad "drained job did not resume: $(cat "$work/body")"
stop_daemon TERM

# ---- delift-server itself (the selection executor; real selections: srv_select_e2e.sh) ----------
# settings from a config file this time; one model file is missing
printf '# delift-server\nlisten = 127.0.0.1:0\ndata-dir = %s\nmodel = mini=%s\nmodel = gone=%s\n' \
    "$work/data2" "$work/model.gguf" "$work/missing.gguf" >"$work/conf"
printf 'per-ip-connections = 3\ntimeout = 10\n' >>"$work/conf"
start "$server" --config "$work/conf"
# per-IP limit: three stalled connections fill it, a fourth is refused.  The
# stalled ones stay 10 s (the timeout); the polling starts once all three
# have sent, so a slow (sanitizer) build cannot miss that window.
rawpids=
for i in 1 2 3; do
    "$raw" "$port" stall 'GET /healthz HTTP/1.1\r\n' >/dev/null 2>"$work/stall$i" &
    rawpids="$rawpids $!"
done
for _ in $(seq 1 100); do
    [ "$(cat "$work/stall1" "$work/stall2" "$work/stall3" 2>/dev/null | grep -c '^sent$')" = 3 ] && break
    sleep 0.05
done
for _ in $(seq 1 40); do
    req GET /healthz
    [ "$code" = 000 ] && break
    sleep 0.1
done
[ "$code" = 000 ] && ok "connection over the per-IP limit refused" || bad "per-IP limit: got $code"
wait $rawpids
req GET /healthz; expect 200 "served again once the stalled ones timed out"
req GET /readyz; expect_error 503 io "readyz with a missing model"
[ "$(field .error.message)" = "not ready: model 'gone' is not readable" ] || bad "readyz message: $(cat "$work/body")"
req GET /v1/models; expect 200 "models without keys configured"
[ "$(field '[.models[] | "\(.name)=\(.readable)"] | join(",")')" = "mini=true,gone=false" ] || bad "models: $(cat "$work/body")"
req POST /v1/datasets --data-binary @"$work/pool.jsonl"; expect 201 "delift-server upload (no keys configured)"
gsm=${DELIFT_SHARED:-/nonexistent}/datasets/gsm8k/test.jsonl
if [ -r "$gsm" ]; then # a real pool (750 KB), streamed
    req POST /v1/datasets -H 'Content-Type: application/x-ndjson' --data-binary @"$gsm"; expect 201 "upload GSM8K test"
    [ "$(field .id)" = "$(sha256sum "$gsm" | cut -d' ' -f1)" ] && [ "$(field .records)" = "$(grep -c . "$gsm")" ] \
        && [ "$(field .mapping.shape)" = question-answer ] && ok "GSM8K summary: $(field .records) records" \
        || bad "GSM8K summary: $(cat "$work/body")"
else
    echo "skip: ../shared/datasets/gsm8k absent"
fi
# "mini" is not a GGUF model: the job is accepted, then fails with a clean
# error that names the model by its role, never by its path.
post_job "$(spec 2)"; expect 202 "delift-server accepts a selection job"
sjob=$(field .id)
wait_state "$sjob" failed && ok "a job on a broken model fails"
case $(field .error.type) in input|unsupported) true ;; *) false ;; esac && field .error.message | grep -q '^model: ' \
    && ok "model error: $(field .error.message)" || bad "model error: $(cat "$work/body")"
grep -q -F -e "$work" -e model.gguf "$work/body" && bad "the job error leaks a server path: $(cat "$work/body")"
post_job "$(spec 0)"; expect_error 400 usage "specs are still validated"
stop_daemon TERM
"$server" --data-dir "$work/x" --workers 0 >/dev/null 2>&1; [ $? = 1 ] && ok "bad flag: exit 1" || bad "--workers 0 accepted"
"$server" --workers 2 >/dev/null 2>&1; [ $? = 1 ] && ok "no --data-dir: exit 1" || bad "missing data-dir accepted"
"$server" --help | grep -q -- '--api-key-file' || bad "--help"

# Built with --enable-sanitizers, the daemons' reports land in the log.
if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/log" >/dev/null; then
    bad "sanitizer report in the daemon log:"
    grep -E -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$work/log" | head -n 60
fi
echo "$fails failure(s)"
[ "$fails" = 0 ]
