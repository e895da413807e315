#!/usr/bin/env bash
# Two baton binaries against each other (a change's before and after): both run side by side on
# the proxy's CPU behind the same static nginx origin, and wrk measures them in interleaved
# rounds (old, new, old, new, ...), so a drift of the machine hits both alike. For each path:
# req/s and CPU time per request (utime + stime of each baton from /proc/PID/stat), medians,
# and the median of the per-round ratios new / old. Prints a markdown table; writes no docs.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY [PATH...]     # paths default to /1k /16k /64k
#   BENCH_SMOKE=1 bench/ab.sh target/release/baton target/release/baton   # proves it works
#
# Build the old binary from a worktree, e.g.
#   git worktree add /tmp/old <commit> && cargo build --release --manifest-path /tmp/old/Cargo.toml
# Knobs (environment): BENCH_DURATION_S (5), BENCH_ROUNDS (4), BENCH_CONNS (64),
# AB_TLS (0; 1: both terminate TLS with one self-signed certificate and wrk speaks HTTPS),
# UPSTREAM_CPU / PROXY_CPU / LOAD_CPU (lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

if (($# < 2)); then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
declare -A BINARY=([old]=$1 [new]=$2)
shift 2
PATHS=("$@")
((${#PATHS[@]})) || PATHS=(/1k /16k /64k)
wrk_knobs 5 4 "old new"
for v in old new; do
    [[ -x ${BINARY[$v]} ]] || { echo "not an executable: ${BINARY[$v]}" >&2; exit 2; }
done
declare -A AB_PORT=([old]=18010 [new]=18011) AB_PID=()

need_tools wrk nginx
ports_free "$UP_PORT" "${AB_PORT[old]}" "${AB_PORT[new]}"
start_static_upstream
TLS=${AB_TLS:-0}
if [[ $TLS == 1 ]]; then
    need_tools openssl
    self_signed_cert "$WORK"
    export WRK_SCHEME=https
fi
for v in old new; do
    baton_config "$WORK/$v.yaml" "${AB_PORT[$v]}"
    if [[ $TLS == 1 ]]; then baton_tls "$WORK/$v.yaml" "$WORK"; fi
    pinned "$PROXY_CPU" "${BINARY[$v]}" -c "$WORK/$v.yaml" -l warn >"$WORK/$v.log" 2>&1 &
    AB_PID[$v]=$!
    PIDS+=($!)
    wait_port "${AB_PORT[$v]}" "$WORK/$v.log"
done

# ticks PID: utime + stime in clock ticks.
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
HZ=$(getconf CLK_TCK)

declare -A RPS=() CPU=() RR=() RC=()
for path in "${PATHS[@]}"; do
    for round in $(seq "$ROUNDS"); do
        declare -A r=() c=()
        for v in old new; do
            t0=$(ticks "${AB_PID[$v]}")
            read -r rps _ _ errs < <(run_wrk "${AB_PORT[$v]}" "$path" "$CONNS" "$DURATION")
            t1=$(ticks "${AB_PID[$v]}")
            us=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v r="$rps" -v d="$DURATION" \
                'BEGIN {n = r * d; printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0)}')
            echo "ab $path round $round $v: $rps req/s, $us µs CPU per request, errors $errs" >&2
            ((errs == 0)) || { echo "wrk saw $errs errors against $v" >&2; exit 1; }
            r[$v]=$rps c[$v]=$us
            RPS[$path,$v]+="$rps "
            CPU[$path,$v]+="$us "
        done
        RR[$path]+="$(ratio "${r[new]}" "${r[old]}") "
        RC[$path]+="$(ratio "${c[new]}" "${c[old]}") "
    done
done

echo "$ROUNDS interleaved rounds of ${DURATION} s per path, \`wrk -t1 -c$CONNS\`$([[ $TLS == 1 ]] && echo ' over TLS'); old = \`${BINARY[old]}\`, new = \`${BINARY[new]}\`."
echo
echo "| path | old req/s | new req/s | new / old req/s | old µs CPU / request | new µs CPU / request | new / old CPU |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for path in "${PATHS[@]}"; do
    printf '| %s | %.0f | %.0f | %.3f | %s | %s | %.3f |\n' "$path" \
        "$(median "${RPS[$path,old]}")" "$(median "${RPS[$path,new]}")" "$(median "${RR[$path]}")" \
        "$(median "${CPU[$path,old]}")" "$(median "${CPU[$path,new]}")" "$(median "${RC[$path]}")"
done
