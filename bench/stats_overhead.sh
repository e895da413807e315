#!/usr/bin/env bash
# Cost of observability: wrk through two baton instances on the same core, one with nothing to
# write (no access log, no admin listener) and one with an HCM access log in Envoy's default
# format plus the admin interface scraped (/stats and /stats/prometheus) once a second during
# the run. Stats themselves are always recorded (as in Envoy), so both sides pay for them; the
# difference is the access log and the scraping. Interleaved rounds (off on off on ...),
# medians, and the ratio on/off. Prints a markdown section; with --write it also replaces that
# section in docs/benchmarks.md.
#
#   bench/stats_overhead.sh [--write]
#   BENCH_SMOKE=1 bench/stats_overhead.sh     # 1-second rounds, for CI: proves the script works
#
# Knobs (environment): BENCH_DURATION_S (10), BENCH_ROUNDS (3), BENCH_CONNS (64),
# UPSTREAM_CPU (1), PROXY_CPU (0), LOAD_CPU (= PROXY_CPU; empty: not pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
SMOKE=${BENCH_SMOKE:-0}
DURATION=${BENCH_DURATION_S:-10}
ROUNDS=${BENCH_ROUNDS:-3}
[[ $SMOKE == 1 ]] && DURATION=1 && ROUNDS=1
CONNS=${BENCH_CONNS:-64}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU-$PROXY_CPU}
UP_PORT=${BENCH_UPSTREAM_PORT:-18180}
OFF_PORT=${BENCH_OFF_PORT:-18100}
ON_PORT=${BENCH_ON_PORT:-18101}
ADMIN_PORT=${BENCH_ADMIN_PORT:-18901}
BIN=target/release
WORK=$(mktemp -d /tmp/baton-stats-bench.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    local i
    for i in $(seq 100); do
        port_open "$1" && return 0
        sleep 0.1
    done
    echo "nothing accepts on 127.0.0.1:$1; see $2" >&2
    cat "$2" >&2
    return 1
}

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi
cargo build --release -q -p baton -p baton-bench >&2

for p in $UP_PORT $OFF_PORT $ON_PORT $ADMIN_PORT; do
    if port_open "$p"; then
        echo "port $p is already in use" >&2
        exit 1
    fi
done

# config PORT EXTRA_HCM EXTRA_TOP: the seed's configs/envoy.yaml on our ports (a STATIC
# cluster, so no DNS), plus what this run varies (lines after `stat_prefix:`, top-level blocks).
config() {
    sed -e "s/port_value: 10000/port_value: $1/" -e "s/port_value: 8080/port_value: $UP_PORT/" \
        -e 's/address: 0.0.0.0/address: 127.0.0.1/' -e 's/type: LOGICAL_DNS/type: STATIC/' \
        configs/envoy.yaml |
        HCM="$2" awk '{print} /stat_prefix:/ && ENVIRON["HCM"] != "" {print ENVIRON["HCM"]}'
    echo "$3"
}

ACCESS_LOG="          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $WORK/access.log"
ADMIN="admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT }"
config "$OFF_PORT" "" "" >"$WORK/off.yaml"
config "$ON_PORT" "$ACCESS_LOG" "$ADMIN" >"$WORK/on.yaml"

taskset -c "$UPSTREAM_CPU" "$BIN/baton-upstream" --listen "127.0.0.1:$UP_PORT" --name bench \
    >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT" "$WORK/upstream.log"
for side in off on; do
    taskset -c "$PROXY_CPU" "$BIN/baton" -c "$WORK/$side.yaml" -l warn >"$WORK/$side.log" 2>&1 &
    PIDS+=($!)
done
wait_port "$OFF_PORT" "$WORK/off.log"
wait_port "$ON_PORT" "$WORK/on.log"

LOAD=()
[[ -n $LOAD_CPU ]] && LOAD=(taskset -c "$LOAD_CPU")

# One wrk run: prints "req_per_s errors".
run_wrk() {
    local out
    out=$("${LOAD[@]}" wrk -t1 "-c$CONNS" "-d${DURATION}s" "http://127.0.0.1:$1/")
    echo "$out" >>"$WORK/wrk.log"
    echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") $(awk '/Non-2xx|Socket errors/ {n += $NF} END {print n + 0}' <<<"$out")"
}

# Scrapes the admin interface once a second while the "on" side runs; pinned to the
# upstream's CPU so the scraper's own process start-ups do not compete with the proxy.
scrape() {
    while :; do
        taskset -c "$UPSTREAM_CPU" curl -s "http://127.0.0.1:$ADMIN_PORT/stats" >/dev/null || true
        taskset -c "$UPSTREAM_CPU" curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" >/dev/null || true
        sleep 1
    done
}

# Warm-up (not counted): the first seconds after start-up are slower for either side.
for port in $OFF_PORT $ON_PORT; do
    "${LOAD[@]}" wrk -t1 "-c$CONNS" -d1s "http://127.0.0.1:$port/" >/dev/null
done

declare -A RPS=() ERRS=()
for round in $(seq "$ROUNDS"); do
    for side in off on; do
        port=$OFF_PORT
        scraper=
        if [[ $side == on ]]; then
            port=$ON_PORT
            scrape &
            scraper=$!
        fi
        read -r rps errs < <(run_wrk "$port")
        [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; }
        echo "round $round $side: $rps req/s, errors $errs" >&2
        RPS[$side]+="$rps "
        ERRS[$side]=$((${ERRS[$side]:-0} + errs))
    done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
off=$(median "${RPS[off]}")
on=$(median "${RPS[on]}")
sleep 0.5 # the last buffered lines are written by the next 100 ms flush tick
lines=$(wc -l <"$WORK/access.log")
total=$(curl -s "http://127.0.0.1:$ADMIN_PORT/stats?filter=http.ingress_http.downstream_rq_total" | awk '{print $2}')
{
    echo "<!-- stats-overhead:begin (written by bench/stats_overhead.sh --write) -->"
    echo "## Observability overhead: access log + admin scraping, off vs on"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores; baton $($BIN/baton --version | awk '{print $2}'); wrk -t1 -c$CONNS, GET /,"
    echo "$ROUNDS interleaved rounds of ${DURATION} s; proxy on CPU $PROXY_CPU, upstream on CPU $UPSTREAM_CPU, wrk on ${LOAD_CPU:-any CPU}."
    echo "*off*: no access log, no admin listener. *on*: HCM file access log in Envoy's default format"
    echo "and the admin interface, \`/stats\` and \`/stats/prometheus\` scraped every second (curl pinned to the upstream's CPU). Stats are"
    echo "recorded in both (they cannot be turned off, as in Envoy: a few array increments per request)."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    echo "| side | rounds req/s | median req/s | errors |"
    echo "|---|---|---:|---:|"
    for side in off on; do
        echo "| $side | $(for v in ${RPS[$side]}; do printf '%.0f ' "$v"; done)| $(printf '%.0f' "$(median "${RPS[$side]}")") | ${ERRS[$side]} |"
    done
    echo
    # Load from other work on the machine drifts between rounds; each round's on/off pair ran
    # back to back, so the median of the per-round ratios is the steadier figure.
    ratios=$(paste -d' ' <(tr ' ' '\n' <<<"${RPS[on]}" | grep .) <(tr ' ' '\n' <<<"${RPS[off]}" | grep .) |
        awk '$2 > 0 {printf "%.3f ", $1 / $2}')
    echo "median of per-round on/off ratios = **$(median "$ratios")** (rounds: $ratios);"
    echo "ratio of the medians = $(awk -v a="$on" -v b="$off" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "-"}');"
    echo "the access log got $lines lines for ${total:-?} requests counted by \`http.ingress_http.downstream_rq_total\`."
    echo "<!-- stats-overhead:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"

if [[ $WRITE == 1 ]]; then
    doc=docs/benchmarks.md
    [[ -f $doc ]] || printf '# baton benchmarks\n\nEvery table here is written by a script in bench/; rerun it to reproduce.\n\n' >"$doc"
    if grep -q '<!-- stats-overhead:begin' "$doc"; then
        awk -v f="$WORK/section.md" '
            /<!-- stats-overhead:begin/ {while ((getline l < f) > 0) print l; skip=1; next}
            /<!-- stats-overhead:end -->/ {skip=0; next}
            !skip' "$doc" >"$WORK/doc.md"
        cp "$WORK/doc.md" "$doc"
    else
        printf '\n' >>"$doc"
        cat "$WORK/section.md" >>"$doc"
    fi
    echo "wrote $doc" >&2
fi
