#!/usr/bin/env bash
# Throughput and latency: wrk through baton, nginx and HAProxy and directly to the upstream
# (nginx serving static bytes: the limit), for each response size, in interleaved rounds
# (baton nginx haproxy direct baton nginx ...). Medians, ratios baton/nginx and baton/HAProxy
# computed per round (then their median), the peak RSS of each proxy's serving process over
# its runs, and a 1-connection latency run (p50, p99). Prints a markdown section; with --write
# it replaces that section in docs/benchmarks.md.
#
#   bench/throughput.sh [--write]
#   BENCH_SMOKE=1 bench/throughput.sh      # 1-second runs, for CI: proves the script works
#
# Knobs (environment): BENCH_DURATION_S (8), BENCH_ROUNDS (5), BENCH_SIZES ("1k 64k"),
# BENCH_CONNS (64), BENCH_LAT_DURATION_S (3), BENCH_LAT_ROUNDS (3),
# BENCH_TARGETS ("baton nginx haproxy direct"), UPSTREAM_CPU / PROXY_CPU / LOAD_CPU (lib.sh).
#
# Adding a target: write start_<name> in bench/lib.sh (starts it on PROXY_CPU, proxying to
# 127.0.0.1:$UP_PORT, listening on PORT[<name>], appending its PID to PIDS, setting
# MAINPID[<name>]) and add <name> to BENCH_TARGETS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

wrk_knobs 8 5 "baton nginx haproxy direct" "${1:-}"
LAT_DURATION=${BENCH_LAT_DURATION_S:-3}
LAT_ROUNDS=${BENCH_LAT_ROUNDS:-3}
if [[ $SMOKE == 1 ]]; then LAT_DURATION=1 LAT_ROUNDS=1; fi
read -r -a SIZES <<<"${BENCH_SIZES:-1k 64k}"
PROXIES=()
for t in "${TARGETS[@]}"; do [[ $t == direct ]] || PROXIES+=("$t"); done

need_tools wrk nginx haproxy
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_static_upstream

declare -A RPS=() P99=() ERRS=() LP50=() LP99=() PEAK=() RATIO=()
for size in "${SIZES[@]}"; do
    for t in "${TARGETS[@]}"; do "start_$t"; done
    for round in $(seq "$ROUNDS"); do
        declare -A this=()
        for t in "${TARGETS[@]}"; do
            read -r rps _ p99 errs < <(run_wrk "${PORT[$t]}" "/$size" "$CONNS" "$DURATION")
            echo "$size round $round $t: $rps req/s, p99 $p99 ms, errors $errs" >&2
            RPS[$size,$t]+="$rps "
            P99[$size,$t]+="$p99 "
            ERRS[$size,$t]=$((${ERRS[$size,$t]:-0} + errs))
            this[$t]=$rps
        done
        for t in "${TARGETS[@]}"; do
            [[ $t == baton ]] && continue
            RATIO[$size,$t]+="$(ratio "${this[baton]:-0}" "${this[$t]}") "
        done
        unset this
    done
    for round in $(seq "$LAT_ROUNDS"); do
        for t in "${TARGETS[@]}"; do
            read -r _ p50 p99 _ < <(run_wrk "${PORT[$t]}" "/$size" 1 "$LAT_DURATION")
            echo "$size latency round $round $t: p50 $p50 ms, p99 $p99 ms" >&2
            LP50[$size,$t]+="$p50 "
            LP99[$size,$t]+="$p99 "
        done
    done
    for t in "${PROXIES[@]}"; do
        PEAK[$size,$t]=$(hwm_kb "$(worker_of "${MAINPID[$t]}")")
        stop_pid "${MAINPID[$t]}"
    done
done

r2() { awk -v v="$1" 'BEGIN {printf "%.2f", v}'; }
{
    echo "<!-- throughput:begin (written by bench/throughput.sh --write) -->"
    echo "## Throughput and latency"
    echo
    echo "wrk, $CONNS keep-alive connections, \`GET /1k\` and \`GET /64k\` (static files of 1 KiB and 64 KiB"
    echo "served by nginx on CPU $UPSTREAM_CPU, the same upstream for every target). Proxies on CPU $PROXY_CPU;"
    echo "wrk \`taskset -c ${LOAD_CPU:-?}\` (it shares the proxy's core; \"direct\" gives wrk that core alone)."
    echo "$ROUNDS interleaved rounds of ${DURATION} s per size (baton nginx haproxy direct, repeated);"
    echo "\`wrk -t1 -c$CONNS -d${DURATION}s --latency http://127.0.0.1:PORT/SIZE\`. Ratios are computed per"
    echo "round (the rates measured back to back), then their median is shown."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    printf '| target | command |\n|---|---|\n'
    for t in "${TARGETS[@]}"; do printf '| %s | `%s` |\n' "$t" "${CMDLINE[$t]}"; done
    for size in "${SIZES[@]}"; do
        echo
        echo "**$size responses, $CONNS connections** (req/s per round, then medians)"
        echo
        header="| target |"
        sep="|---|"
        for r in $(seq "$ROUNDS"); do header+=" r$r |"; sep+="---:|"; done
        echo "$header median req/s | median p99 ms | wrk errors | baton / this (per-round median) | vs direct |"
        echo "$sep---:|---:|---:|---:|---:|"
        direct=$(median "${RPS[$size,direct]:-}")
        for t in "${TARGETS[@]}"; do
            m=$(median "${RPS[$size,$t]}")
            row="| $t |"
            for v in ${RPS[$size,$t]}; do row+=" $(printf '%.0f' "$v") |"; done
            ratio="-"
            [[ $t != baton ]] && ratio=$(r2 "$(median "${RATIO[$size,$t]}")")
            vsd=$(awk -v a="$m" -v b="${direct:-0}" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
            echo "$row $(printf '%.0f' "$m") | $(median "${P99[$size,$t]}") | ${ERRS[$size,$t]} | $ratio | $vsd |"
        done
    done
    echo
    echo "**1 connection** (\`wrk -t1 -c1 -d${LAT_DURATION}s --latency\`, $LAT_ROUNDS interleaved rounds, median of"
    echo "the per-round percentiles, ms) and **peak RSS** of the serving process (VmHWM of baton, of"
    echo "nginx's worker, of HAProxy's worker) over all its runs of that size:"
    echo
    head="| target |"
    sep="|---|"
    for size in "${SIZES[@]}"; do head+=" $size p50 | $size p99 | $size peak RSS MiB |"; sep+="---:|---:|---:|"; done
    echo "$head"
    echo "$sep"
    for t in "${TARGETS[@]}"; do
        row="| $t |"
        for size in "${SIZES[@]}"; do
            peak="-"
            [[ $t != direct ]] && peak=$(awk -v k="${PEAK[$size,$t]}" 'BEGIN {printf "%.1f", k / 1024}')
            row+=" $(median "${LP50[$size,$t]}") | $(median "${LP99[$size,$t]}") | $peak |"
        done
        echo "$row"
    done
    echo "<!-- throughput:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
# Machine-readable medians for bench/run-all's summary.
for size in "${SIZES[@]}"; do
    for t in "${TARGETS[@]}"; do
        echo "$size $t $(median "${RPS[$size,$t]}") $(median "${P99[$size,$t]}") $(median "${LP50[$size,$t]}") $(median "${LP99[$size,$t]}") $(median "${RATIO[$size,$t]:-}")"
    done
done >"${BENCH_RESULTS:-$WORK}/throughput.tsv"
[[ $WRITE == 1 ]] && doc_section throughput "$WORK/section.md"
exit 0
