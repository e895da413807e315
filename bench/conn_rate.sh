#!/usr/bin/env bash
# New connections per second: wrk with `Connection: close` (each request opens a new TCP
# connection, the server closes it after the response), 1 KiB responses, through baton, nginx
# and HAProxy and directly to the upstream (nginx serving static bytes; the proxies keep their
# upstream connections alive, so only the client side is new each time). Same upstream, pinning
# and interleaved rounds as bench/throughput.sh; ratios per round, then their median. Prints a
# markdown section; with --write it replaces that section in docs/benchmarks.md.
#
#   bench/conn_rate.sh [--write]
#   BENCH_SMOKE=1 bench/conn_rate.sh      # 1-second runs: proves the script works
#
# Knobs (environment): BENCH_DURATION_S (5), BENCH_ROUNDS (5), BENCH_CONNS (64),
# BENCH_TARGETS ("baton nginx haproxy direct"), UPSTREAM_CPU / PROXY_CPU / LOAD_CPU (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

wrk_knobs 5 5 "baton nginx haproxy direct" "${1:-}"

need_tools wrk nginx haproxy
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_static_upstream
for t in "${TARGETS[@]}"; do "start_$t"; done

declare -A RPS=() ERRS=() P99=() RATIO=()
for round in $(seq "$ROUNDS"); do
    declare -A this=()
    for t in "${TARGETS[@]}"; do
        read -r rps _ p99 errs < <(run_wrk "${PORT[$t]}" /1k "$CONNS" "$DURATION" -H "Connection: close")
        echo "conn_rate round $round $t: $rps conn/s, p99 $p99 ms, errors $errs" >&2
        RPS[$t]+="$rps "
        P99[$t]+="$p99 "
        ERRS[$t]=$((${ERRS[$t]:-0} + errs))
        this[$t]=$rps
    done
    for t in "${TARGETS[@]}"; do
        [[ $t == baton ]] && continue
        RATIO[$t]+="$(ratio "${this[baton]:-0}" "${this[$t]}") "
    done
    p=$(peer_ratio "${this[baton]:-0}" "${this[nginx]:-}" "${this[haproxy]:-}")
    [[ -n $p ]] && RATIO[peer]+="$p "
    unset this
done

{
    echo "<!-- conn-rate:begin (written by bench/conn_rate.sh --write) -->"
    echo "## New connections per second"
    echo
    echo "wrk with \`Connection: close\`: every request opens a new TCP connection to the target, which"
    echo "closes it after the response, so requests/s = new connections/s. $CONNS concurrent clients,"
    echo "\`GET /1k\` (1 KiB static file from nginx on CPU $UPSTREAM_CPU; the proxies keep their upstream"
    echo "connections alive). Proxies on CPU $PROXY_CPU, wrk \`taskset -c ${LOAD_CPU:-?}\` (sharing the proxy's core)."
    echo "$ROUNDS interleaved rounds of ${DURATION} s (baton nginx haproxy direct, repeated);"
    echo "\`wrk -t1 -c$CONNS -d${DURATION}s -H \"Connection: close\" http://127.0.0.1:PORT/1k\`. Ratios are"
    echo "computed per round, then their median is shown. Proxies as in the throughput section."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    header="| target |"
    sep="|---|"
    for r in $(seq "$ROUNDS"); do header+=" r$r |"; sep+="---:|"; done
    echo "$header median conn/s | median p99 ms | wrk errors | baton / this (per-round median) |"
    echo "$sep---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
        row="| $t |"
        for v in ${RPS[$t]}; do row+=" $(printf '%.0f' "$v") |"; done
        r="-"
        [[ $t != baton ]] && r=$(printf '%.2f' "$(median "${RATIO[$t]}")")
        echo "$row $(printf '%.0f' "$(median "${RPS[$t]}")") | $(median "${P99[$t]}") | ${ERRS[$t]} | $r |"
    done
    [[ -n ${RATIO[peer]:-} ]] && echo && echo "baton / the faster peer (nginx or HAProxy, per round), median: **$(printf '%.2f' "$(median "${RATIO[peer]}")")**."
    echo "<!-- conn-rate:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
for t in "${TARGETS[@]}"; do
    echo "$t $(median "${RPS[$t]}") $(median "${RATIO[$t]:-}")"
done >"${BENCH_RESULTS:-$WORK}/conn-rate.tsv"
[[ $WRITE == 1 ]] && doc_section conn-rate "$WORK/section.md"
exit 0
