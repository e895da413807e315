#!/usr/bin/env bash
# CPU time per proxied request: wrk through baton, nginx and HAProxy (1 KiB keep-alive GETs),
# with the user and kernel time of each proxy's process tree read from /proc/PID/stat (utime,
# stime of the serving process and its children) before and after each run. Interleaved
# rounds; prints µs user and µs kernel per request (medians over the rounds). Prints a markdown
# section; with --write it replaces that section in docs/benchmarks.md.
#
#   bench/cpu.sh [--write]
#   BENCH_SMOKE=1 bench/cpu.sh      # 1-second runs: proves the script works
#
# Knobs (environment): BENCH_DURATION_S (8), BENCH_ROUNDS (5), BENCH_CONNS (64),
# BENCH_CPU_PATH (/1k), BENCH_CPU_CLOSE (0; 1: a new connection per request, own section), BENCH_TARGETS ("baton nginx haproxy"), UPSTREAM_CPU / PROXY_CPU /
# LOAD_CPU (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

wrk_knobs 8 5 "baton nginx haproxy" "${1:-}"
URL_PATH=${BENCH_CPU_PATH:-/1k}
# BENCH_CPU_CLOSE=1: every request on a new connection (`Connection: close`), its own section.
CLOSE=${BENCH_CPU_CLOSE:-0}
WRK_EXTRA=()
SECTION=cpu
if [[ $CLOSE == 1 ]]; then WRK_EXTRA=(-H "Connection: close") SECTION=cpu-close; fi
HZ=$(getconf CLK_TCK)

# cpu_ticks PID: "utime stime" in clock ticks, summed over PID and its children (nginx's and
# HAProxy's workers; every thread of a process is in its own line).
cpu_ticks() {
    local p
    for p in "$1" $(children "$1"); do
        # Fields after the ")" of the command name: utime and stime are the 12th and 13th.
        sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{u += $12; s += $13} END {print u + 0, s + 0}'
}

need_tools wrk nginx haproxy
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_static_upstream
for t in "${TARGETS[@]}"; do "start_$t"; done

declare -A RPS=() USR=() SYS=() ERRS=()
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        read -r u0 s0 < <(cpu_ticks "${MAINPID[$t]}")
        read -r rps _ _ errs < <(run_wrk "${PORT[$t]}" "$URL_PATH" "$CONNS" "$DURATION" "${WRK_EXTRA[@]}")
        read -r u1 s1 < <(cpu_ticks "${MAINPID[$t]}")
        # Requests = rate × duration (wrk's rate is requests over its own elapsed time).
        read -r us_user us_sys < <(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$HZ" \
            -v r="$rps" -v d="$DURATION" \
            'BEGIN {n = r * d; if (n <= 0) {print 0, 0} else printf "%.2f %.2f\n", u * 1e6 / hz / n, s * 1e6 / hz / n}')
        echo "cpu round $round $t: $rps req/s, $us_user µs user + $us_sys µs kernel per request, errors $errs" >&2
        RPS[$t]+="$rps "
        USR[$t]+="$us_user "
        SYS[$t]+="$us_sys "
        ERRS[$t]=$((${ERRS[$t]:-0} + errs))
    done
done

f2() { awk -v v="$1" 'BEGIN {printf "%.2f", v}'; }
{
    echo "<!-- $SECTION:begin (written by bench/cpu.sh --write) -->"
    if [[ $CLOSE == 1 ]]; then
        echo "## CPU time per new connection"
        echo
        echo "As in *CPU time per request*, but every request on a new connection (\`-H \"Connection: close\"\`): the cost of"
        echo "accepting, answering and closing one connection, each proxy's own, whatever wrk's share."
        echo
        KIND="connections, each used for one request"
    else
        echo "## CPU time per request"
        echo
        KIND="keep-alive connections"
    fi
    echo "wrk, $CONNS $KIND, \`GET $URL_PATH\` (static file from nginx on CPU $UPSTREAM_CPU), each"
    echo "proxy on CPU $PROXY_CPU with wrk sharing its core. Before and after each ${DURATION}-second run the"
    echo "user and kernel time of the proxy's process tree are read from \`/proc/PID/stat\` (utime, stime;"
    echo "nginx and HAProxy: master and workers), divided by the requests of the run (rate × duration)."
    echo "Clock ticks are $((1000000 / HZ)) µs, so a short run rounds coarsely. $ROUNDS interleaved rounds"
    echo "(${TARGETS[*]}, repeated); medians."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    echo "| target | median req/s | µs user / request | µs kernel / request | µs total | wrk errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
        u=$(median "${USR[$t]}")
        s=$(median "${SYS[$t]}")
        echo "| $t | $(printf '%.0f' "$(median "${RPS[$t]}")") | $(f2 "$u") | $(f2 "$s") | $(f2 "$(awk -v a="$u" -v b="$s" 'BEGIN {print a + b}')") | ${ERRS[$t]} |"
    done
    echo "<!-- $SECTION:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
for t in "${TARGETS[@]}"; do
    echo "$t $(median "${RPS[$t]}") $(median "${USR[$t]}") $(median "${SYS[$t]}")"
done >"${BENCH_RESULTS:-$WORK}/$SECTION.tsv"
[[ $WRITE == 1 ]] && doc_section "$SECTION" "$WORK/section.md"
exit 0
