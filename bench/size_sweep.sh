#!/usr/bin/env bash
# Throughput against response size: wrk over 64 keep-alive connections, GET of static files of
# 1 KiB, 4 KiB, 16 KiB, 64 KiB, 256 KiB and 1 MiB, through baton, nginx and HAProxy and
# directly to the upstream (nginx serving the files), same upstream and pinning as
# bench/throughput.sh. Interleaved rounds (each round: every size, every target back to back);
# medians, and baton's ratios computed per round, then their median. Writes size-sweep.csv (in
# BENCH_RESULTS, or the scratch directory) and the plot; with --write, docs/size-sweep.csv,
# docs/size-sweep.svg and the marked section of docs/benchmarks.md.
#
#   bench/size_sweep.sh [--write]
#   BENCH_SMOKE=1 bench/size_sweep.sh     # 1-second runs: proves the script works
#
# Knobs (environment): BENCH_DURATION_S (5), BENCH_ROUNDS (3), BENCH_CONNS (64),
# BENCH_TARGETS ("baton nginx haproxy direct"), BENCH_SIZES (bytes, "1024 ... 1048576"),
# UPSTREAM_CPU / PROXY_CPU / LOAD_CPU (lib.sh; LOAD_CPU= leaves wrk unpinned).
# With LOAD_CPU empty, --write writes its own section (size-sweep-unpinned) and no plot.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

wrk_knobs 5 3 "baton nginx haproxy direct" "${1:-}"
read -r -a SIZES <<<"${BENCH_SIZES:-1024 4096 16384 65536 262144 1048576}"
SECTION="size-sweep"
[[ -z $LOAD_CPU ]] && SECTION="size-sweep-unpinned"

need_tools wrk nginx haproxy python3
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_static_upstream
for t in "${TARGETS[@]}"; do "start_$t"; done

declare -A RPS=() ERRS=() RATIO=()
for round in $(seq "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
        declare -A this=()
        for t in "${TARGETS[@]}"; do
            read -r rps _ _ errs < <(run_wrk "${PORT[$t]}" "/$(size_name "$size")" "$CONNS" "$DURATION")
            echo "size_sweep round $round $(size_name "$size") $t: $rps req/s, errors $errs" >&2
            RPS[$size,$t]+="$rps "
            ERRS[$size,$t]=$((${ERRS[$size,$t]:-0} + errs))
            this[$t]=$rps
        done
        for t in "${TARGETS[@]}"; do
            [[ $t == baton ]] && continue
            RATIO[$size,$t]+="$(ratio "${this[baton]:-0}" "${this[$t]}") "
        done
        # The faster of the two peer proxies in this round.
        p=$(peer_ratio "${this[baton]:-0}" "${this[nginx]:-}" "${this[haproxy]:-}")
        [[ -n $p ]] && RATIO[$size,peer]+="$p "
        unset this
    done
done

CSV=${BENCH_RESULTS:-$WORK}/size-sweep.csv
{
    echo "size_bytes,target,median_req_per_s,median_mib_per_s,baton_over_this_per_round_median,wrk_errors"
    for size in "${SIZES[@]}"; do
        for t in "${TARGETS[@]}"; do
            m=$(median "${RPS[$size,$t]}")
            r=""
            [[ $t != baton ]] && r=$(median "${RATIO[$size,$t]}")
            echo "$size,$t,$(printf '%.0f' "$m"),$(awk -v r="$m" -v s="$size" 'BEGIN {printf "%.1f", r * s / 1048576}'),$r,${ERRS[$size,$t]}"
        done
    done
} >"$CSV"
SVG=$WORK/size-sweep.svg
if [[ $WRITE == 1 && $SECTION == size-sweep ]]; then
    SVG=docs/size-sweep.svg
    cp "$CSV" docs/size-sweep.csv
fi
python3 bench/plot.py --sweep "$CSV" "$SVG"

{
    echo "<!-- $SECTION:begin (written by bench/size_sweep.sh --write) -->"
    if [[ $SECTION == size-sweep ]]; then
        echo "## Throughput against response size"
    else
        echo "## Throughput against response size, wrk not pinned"
    fi
    echo
    echo "wrk, $CONNS keep-alive connections, \`GET\` of static files of $(size_name "${SIZES[0]}") to $(size_name "${SIZES[-1]}") (served by nginx on"
    echo "CPU $UPSTREAM_CPU, the same upstream for every target). Proxies on CPU $PROXY_CPU (configured as in the"
    if [[ -n $LOAD_CPU ]]; then
        echo "throughput section); wrk \`taskset -c $LOAD_CPU\` (sharing the proxy's core; \"direct\" gives wrk that core"
        echo "alone). $ROUNDS"
    else
        echo "throughput section); wrk not pinned (the scheduler places it on either core). $ROUNDS"
    fi
    echo " interleaved rounds of ${DURATION} s (each round: every size, and for each size baton nginx"
    echo "haproxy direct back to back) — fewer and shorter rounds than the throughput section, to keep the"
    echo "sweep within a few minutes; \`wrk -t1 -c$CONNS -d${DURATION}s http://127.0.0.1:PORT/SIZE\`. Ratios are"
    echo "computed per round, then their median is shown; \"faster peer\" is, per round, the faster of nginx"
    echo "and HAProxy."
    [[ $SECTION == size-sweep ]] && echo "Data: \`docs/size-sweep.csv\`."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    if [[ $SECTION == size-sweep ]]; then
        echo "![requests/s and MiB/s against response size](size-sweep.svg)"
        echo
    fi
    head="| size |"
    sep="|---|"
    for t in "${TARGETS[@]}"; do head+=" $t req/s | $t MiB/s |"; sep+="---:|---:|"; done
    for t in "${TARGETS[@]}"; do [[ $t == baton ]] || { head+=" baton / $t |"; sep+="---:|"; }; done
    [[ -n ${RATIO[${SIZES[0]},peer]:-} ]] && { head+=" baton / faster peer |"; sep+="---:|"; }
    echo "$head wrk errors |"
    echo "$sep---:|"
    for size in "${SIZES[@]}"; do
        row="| $(size_name "$size") |"
        errs=0
        for t in "${TARGETS[@]}"; do
            m=$(median "${RPS[$size,$t]}")
            row+=" $(printf '%.0f' "$m") | $(awk -v r="$m" -v s="$size" 'BEGIN {printf "%.0f", r * s / 1048576}') |"
            errs=$((errs + ERRS[$size,$t]))
        done
        for t in "${TARGETS[@]}"; do
            [[ $t == baton ]] || row+=" $(printf '%.2f' "$(median "${RATIO[$size,$t]}")") |"
        done
        [[ -n ${RATIO[$size,peer]:-} ]] && row+=" $(printf '%.2f' "$(median "${RATIO[$size,peer]}")") |"
        echo "$row $errs |"
    done
    echo "<!-- $SECTION:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
[[ $WRITE == 1 ]] && doc_section "$SECTION" "$WORK/section.md"
exit 0
