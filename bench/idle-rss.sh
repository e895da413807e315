#!/usr/bin/env bash
# Memory: the RSS of each proxy holding 10,000 idle keep-alive client connections (each has
# carried one GET /1k through the proxy to the static upstream, then sits idle). RSS is read
# from /proc: the whole process tree (nginx and HAProxy: master + worker) and the serving
# process alone. Prints a markdown section; --write puts it into docs/benchmarks.md.
#
#   bench/idle-rss.sh [--write]
#   BENCH_SMOKE=1 bench/idle-rss.sh     # 200 connections, for CI
#
# Knobs: BENCH_IDLE_CONNS (10000), BENCH_TARGETS ("baton nginx haproxy").
# The open-file limit is raised to the hard limit (20,000 here): the client and each proxy hold
# one descriptor per connection. HAProxy runs with `no strict-limits` because its maxconn
# 10,200 would want 2 × maxconn descriptors (idle client connections need one each).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
CONNS=${BENCH_IDLE_CONNS:-10000}
[[ $SMOKE == 1 ]] && CONNS=200
read -r -a TARGETS <<<"${BENCH_TARGETS:-baton nginx haproxy}"
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < CONNS + 100)); then
    echo "open-file limit $(ulimit -n) is too low for $CONNS connections" >&2
    exit 1
fi

need_tools nginx haproxy
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_static_upstream

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
declare -A ROW=()
for t in "${TARGETS[@]}"; do
    "start_$t"
    main=${MAINPID[$t]}
    sleep 0.5
    worker=$(worker_of "$main")
    before_tree=$(tree_rss_kb "$main")
    before_worker=$(rss_kb "$worker")
    mkfifo "$WORK/idle-$t.in"
    "$BIN/baton-idle" --target "127.0.0.1:${PORT[$t]}" --connections "$CONNS" --path /1k \
        --hold-s 120 <"$WORK/idle-$t.in" >"$WORK/idle-$t.out" 2>&1 &
    idle=$!
    PIDS+=("$idle")
    exec 7>"$WORK/idle-$t.in"
    for _ in $(seq 600); do
        grep -q READY "$WORK/idle-$t.out" && break
        kill -0 "$idle" 2>/dev/null || break
        sleep 0.1
    done
    ready=$(grep READY "$WORK/idle-$t.out" || echo "READY none")
    sleep 1
    after_tree=$(tree_rss_kb "$main")
    after_worker=$(rss_kb "$worker")
    echo "check" >&7
    for _ in $(seq 300); do
        grep -q CHECK "$WORK/idle-$t.out" && break
        sleep 0.1
    done
    check=$(grep CHECK "$WORK/idle-$t.out" || echo "CHECK none")
    echo "quit" >&7
    exec 7>&-
    stop_pid "$idle"
    stop_pid "$main"
    per=$(awk -v a="$after_tree" -v b="$before_tree" -v n="$CONNS" 'BEGIN {printf "%.2f", (a - b) / n}')
    echo "$t: tree ${before_tree} -> ${after_tree} KiB, worker ${before_worker} -> ${after_worker} KiB; $ready; $check" >&2
    ROW[$t]="| $t | $(mib "$before_tree") | $(mib "$after_tree") | $per | $(mib "$after_worker") | ${ready#READY } / ${check#CHECK } |"
    echo "$t $before_tree $after_tree $after_worker" >>"${BENCH_RESULTS:-$WORK}/idle-rss.tsv"
done

{
    echo "<!-- idle-rss:begin (written by bench/idle-rss.sh --write) -->"
    echo "## Memory: $CONNS idle keep-alive connections"
    echo
    echo "Each proxy (started as in the throughput run) gets $CONNS client connections from"
    echo "\`baton-idle --connections $CONNS --path /1k\`; each carries one request, then sits idle. RSS from"
    echo "/proc/PID/status (VmRSS), summed over the process tree (nginx and HAProxy: master + worker)."
    echo "\"after\" is read 1 s after the last connection got its answer; then one more request on every"
    echo "connection checks they were all still open."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run ($CONNS connections): not a measurement.**"
    echo
    echo "| proxy | RSS before, MiB | RSS with $CONNS idle, MiB | KiB per connection | serving process alone, MiB | requests ok/failed: first / check |"
    echo "|---|---:|---:|---:|---:|---|"
    for t in "${TARGETS[@]}"; do echo "${ROW[$t]}"; done
    echo "<!-- idle-rss:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
[[ $WRITE == 1 ]] && doc_section idle-rss "$WORK/section.md"
exit 0
