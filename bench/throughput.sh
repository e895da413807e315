#!/usr/bin/env bash
# Throughput: wrk with 64 keep-alive connections and a small response, through each target
# (baton, and directly to the upstream as the limit), in interleaved rounds (A B A B ...), with
# medians and the ratio to the direct rate. Prints a markdown section; with --write it also
# replaces that section in docs/benchmarks.md.
#
#   bench/throughput.sh [--write]
#   BENCH_SMOKE=1 bench/throughput.sh      # 1-second runs, for CI: proves the script works
#
# Knobs (environment): BENCH_DURATION_S (10), BENCH_ROUNDS (3), BENCH_PATH (/), BENCH_CONNS (64),
# BENCH_WRK_THREADS (1), BENCH_TARGETS ("baton direct"), UPSTREAM_CPU (1), PROXY_CPU (0), LOAD_CPU (= PROXY_CPU; empty: not pinned).
# On 2 cores wrk shares the proxy's core, so every proxy pays the same; the direct run gives wrk
# that core alone, which makes the ratio to direct a pessimistic one.
#
# Adding a target (nginx, HAProxy): write start_<name> (starts it on PROXY_CPU, proxying to
# 127.0.0.1:$UP_PORT, listening on its port, appending its PID to PIDS), give it a port in
# PORT[<name>], and add <name> to TARGETS. Rounds, medians and the table follow.
set -euo pipefail
cd "$(dirname "$0")/.."

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
SMOKE=${BENCH_SMOKE:-0}
DURATION=${BENCH_DURATION_S:-10}
ROUNDS=${BENCH_ROUNDS:-3}
[[ $SMOKE == 1 ]] && DURATION=1
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_WRK_THREADS:-1}
REQ_PATH=${BENCH_PATH:-/}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU-$PROXY_CPU}
UP_PORT=${BENCH_UPSTREAM_PORT:-18080}
BIN=target/release
WORK=$(mktemp -d /tmp/baton-bench.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
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

# ---- targets ----------------------------------------------------------------------------------
read -r -a TARGETS <<<"${BENCH_TARGETS:-baton direct}"
declare -A PORT=([baton]=${BENCH_BATON_PORT:-18000} [direct]=$UP_PORT)
declare -A CMDLINE=()

start_direct() { CMDLINE[direct]="(the upstream itself)"; }

start_baton() {
    cat >"$WORK/baton.yaml" <<EOF
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 127.0.0.1, port_value: ${PORT[baton]} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: upstream }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    connect_timeout: 0.25s
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: $UP_PORT }
EOF
    CMDLINE[baton]="taskset -c $PROXY_CPU $BIN/baton -c baton.yaml -l warn"
    taskset -c "$PROXY_CPU" "$BIN/baton" -c "$WORK/baton.yaml" -l warn >"$WORK/baton.log" 2>&1 &
    PIDS+=($!)
    wait_port "${PORT[baton]}" "$WORK/baton.log"
}
# -----------------------------------------------------------------------------------------------

for t in "${TARGETS[@]}"; do
    if port_open "${PORT[$t]}"; then
        echo "port ${PORT[$t]} ($t) is already in use" >&2
        exit 1
    fi
done
taskset -c "$UPSTREAM_CPU" "$BIN/baton-upstream" --listen "127.0.0.1:$UP_PORT" --name bench \
    >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT" "$WORK/upstream.log"
for t in "${TARGETS[@]}"; do "start_$t"; done

LOAD=()
LOAD_WHERE="not pinned"
if [[ -n $LOAD_CPU ]]; then
    LOAD=(taskset -c "$LOAD_CPU")
    LOAD_WHERE="on CPU $LOAD_CPU (2 cores: it shares the proxy's core)"
fi
WRK_CMD="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency http://127.0.0.1:PORT$REQ_PATH"

# One wrk run: prints "req_per_s p99_ms errors".
run_wrk() {
    local out rps p99 errs
    out=$("${LOAD[@]}" wrk "-t$THREADS" "-c$CONNS" "-d${DURATION}s" --latency \
        "http://127.0.0.1:$1$REQ_PATH")
    echo "$out" >>"$WORK/wrk.log"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ {n += $NF} END {print n + 0}' <<<"$out")
    echo "${rps:-0} ${p99:-0} $errs"
}

declare -A RPS=() P99=() ERRS=()
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        read -r rps p99 errs < <(run_wrk "${PORT[$t]}")
        echo "round $round $t: $rps req/s, p99 ${p99} ms, errors $errs" >&2
        RPS[$t]+="$rps "
        P99[$t]+="$p99 "
        ERRS[$t]=$((${ERRS[$t]:-0} + errs))
    done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

direct_median=$(median "${RPS[direct]}")
{
    echo "<!-- throughput:begin (written by bench/throughput.sh --write) -->"
    echo "## Throughput: wrk, $CONNS keep-alive connections, GET $REQ_PATH"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
    echo "Linux $(uname -r); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $(rustc --version); baton $($BIN/baton --version | awk '{print $2}')."
    echo "Upstream: \`taskset -c $UPSTREAM_CPU baton-upstream\`; proxy on CPU $PROXY_CPU; wrk $LOAD_WHERE."
    echo "$ROUNDS interleaved rounds of ${DURATION} s; \`$WRK_CMD\`."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    printf '| target | command |\n|---|---|\n'
    for t in "${TARGETS[@]}"; do printf '| %s | `%s` |\n' "$t" "${CMDLINE[$t]}"; done
    echo
    header="| target |"
    sep="|---|"
    for r in $(seq "$ROUNDS"); do header+=" round $r |"; sep+="---:|"; done
    echo "$header median req/s | median p99 ms | errors | vs direct |"
    echo "$sep---:|---:|---:|---:|"
    for t in "${TARGETS[@]}"; do
        m=$(median "${RPS[$t]}")
        ratio=$(awk -v a="$m" -v b="$direct_median" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}')
        row="| $t |"
        for v in ${RPS[$t]}; do row+=" $(printf '%.0f' "$v") |"; done
        echo "$row $(printf '%.0f' "$m") | $(median "${P99[$t]}") | ${ERRS[$t]} | $ratio |"
    done
    echo "<!-- throughput:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"

if [[ $WRITE == 1 ]]; then
    doc=docs/benchmarks.md
    mkdir -p docs
    [[ -f $doc ]] || printf '# baton benchmarks\n\nEvery table here is written by a script in bench/; rerun it to reproduce.\n\n' >"$doc"
    if grep -q '<!-- throughput:begin' "$doc"; then
        awk -v f="$WORK/section.md" '
            /<!-- throughput:begin/ {while ((getline l < f) > 0) print l; skip=1; next}
            /<!-- throughput:end -->/ {skip=0; next}
            !skip' "$doc" >"$WORK/doc.md"
        cp "$WORK/doc.md" "$doc"
    else
        cat "$WORK/section.md" >>"$doc"
    fi
    echo "wrote $doc" >&2
fi
