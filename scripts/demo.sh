#!/usr/bin/env bash
# The seed's walkthrough on this machine: two upstreams (v1 on :8080, v2 on :8081), baton with
# configs/envoy.yaml on :10000, steady load through it, and a summary of what was sent, what
# failed (must be 0) and which upstream served before and after the hot restart (v1 -> v2
# config, then SIGTERM to the old process), and how long the handover took.
#
#   scripts/demo.sh                  # 10 s of load
#   DEMO_DURATION_S=3 scripts/demo.sh
#
# Cleans up only the processes it started. Exit status: 0 when no request failed.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DEMO_DURATION_S:-10}
RESTART_SOCK=/tmp/baton_demo_restart.sock
BIN=target/release
LOGDIR=$(mktemp -d /tmp/baton-demo.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

say() { printf '\n==> %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to 10 s for a port to accept; fails with the process's log otherwise.
wait_port() {
    local port=$1 log=$2 i
    for i in $(seq 100); do
        port_open "$port" && return 0
        sleep 0.1
    done
    echo "nothing accepts on 127.0.0.1:$port after 10 s; log $log:" >&2
    cat "$log" >&2
    return 1
}

for port in 8080 8081 10000; do
    if port_open "$port"; then
        echo "port $port is already in use; stop whatever listens there first" >&2
        exit 1
    fi
done

say "building (release)"
cargo build --release -p baton -p baton-bench

say "starting upstreams v1 (127.0.0.1:8080) and v2 (127.0.0.1:8081)"
"$BIN/baton-upstream" --listen 127.0.0.1:8080 --name v1 >"$LOGDIR/upstream-v1.log" 2>&1 &
PIDS+=($!)
"$BIN/baton-upstream" --listen 127.0.0.1:8081 --name v2 >"$LOGDIR/upstream-v2.log" 2>&1 &
PIDS+=($!)
wait_port 8080 "$LOGDIR/upstream-v1.log"
wait_port 8081 "$LOGDIR/upstream-v2.log"

say "starting baton with configs/envoy.yaml (the seed's command line)"
rm -f "$RESTART_SOCK"
"$BIN/baton" -c configs/envoy.yaml --service-cluster initial-envoy --service-node initial-node \
    --hot-restart-file="$RESTART_SOCK" >"$LOGDIR/baton-v1.log" 2>&1 &
BATON_V1=$!
PIDS+=("$BATON_V1")
wait_port 10000 "$LOGDIR/baton-v1.log"
SERVING=$BATON_V1 # the process expected to be serving at the end
echo "baton v1 pid $BATON_V1, logs in $LOGDIR"

say "one request through :10000"
curl -sS --max-time 5 http://127.0.0.1:10000/

say "steady load for ${DURATION}s: 32 keep-alive connections + 20 new connections/s"
"$BIN/baton-load" --target 127.0.0.1:10000 --connections 32 --new-conn-rate 20 \
    --duration-s "$DURATION" --expect-body-contains "hello from" >"$LOGDIR/load.log" 2>&1 &
LOAD=$!
PIDS+=("$LOAD")
tail -n +1 -f --pid="$LOAD" "$LOGDIR/load.log" &
PIDS+=($!)

# The seed's upgrade, under load, a third of the way in: start the new binary with the v2
# config on the same restart socket, wait until it has taken over the listener, then SIGTERM
# the old process, which drains and must exit 0.
sleep "$((DURATION / 3))"
say "hot restart: starting baton with configs/envoy_v2.yaml on the same --hot-restart-file"
T0=$(date +%s%N)
"$BIN/baton" -c configs/envoy_v2.yaml --service-cluster initial-envoy --service-node initial-node \
    --hot-restart-file="$RESTART_SOCK" >"$LOGDIR/baton-v2.log" 2>&1 &
BATON_V2=$!
PIDS+=("$BATON_V2")
for _ in $(seq 200); do
    grep -q 'took over from epoch' "$LOGDIR/baton-v2.log" && break
    if ! kill -0 "$BATON_V2" 2>/dev/null; then
        echo "the new baton exited before taking over; log:" >&2
        cat "$LOGDIR/baton-v2.log" >&2
        exit 1
    fi
    sleep 0.01
done
HANDOVER_MS=$((($(date +%s%N) - T0) / 1000000))
echo "baton v2 pid $BATON_V2 accepts on :10000 after ${HANDOVER_MS} ms"
sleep 1
say "kill -SIGTERM $BATON_V1 (the old process drains and exits)"
kill -TERM "$BATON_V1"
V1_STATUS=0
wait "$BATON_V1" || V1_STATUS=$?
echo "old baton (pid $BATON_V1) exited with status $V1_STATUS"
SERVING=$BATON_V2
HANDOVER_MS="$HANDOVER_MS ms"

LOAD_STATUS=0
wait "$LOAD" || LOAD_STATUS=$?
sleep 0.2 # let tail print the last lines

say "summary"
RESULT=$(grep '^RESULT ' "$LOGDIR/load.log" || true)
if [[ -z $RESULT ]]; then
    echo "baton-load printed no result (exit $LOAD_STATUS); see $LOGDIR/load.log" >&2
    exit 1
fi
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$RESULT"; }
SENT=$(field sent)
FAILED=$(field failed)
echo "requests sent:   $SENT"
echo "requests failed: $FAILED"
grep '^served by ' "$LOGDIR/load.log" | sed 's/^/  /' || echo "  no upstream served"
echo "handover time:   $HANDOVER_MS"
if ! kill -0 "$SERVING" 2>/dev/null; then
    echo "baton (pid $SERVING) is not running any more; log:" >&2
    cat "$LOGDIR/baton-v1.log" >&2
    exit 1
fi
if [[ $LOAD_STATUS -ne 0 || $FAILED -ne 0 ]]; then
    echo "FAILED: $FAILED request(s) failed (see $LOGDIR)" >&2
    exit 1
fi
if [[ ${V1_STATUS:-0} -ne 0 ]]; then
    echo "FAILED: the old baton exited with status $V1_STATUS" >&2
    exit 1
fi
echo "OK: no request failed"
