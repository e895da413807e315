#!/usr/bin/env bash
# Restart under load: baton-mixed (fast GETs, slow /delay/200..800 requests, uploads, long
# rate-limited downloads, a stream of one-request connections) against each proxy in front of
# baton-upstream, with K restarts at even intervals:
#   baton          hot restart: a new process on the same --hot-restart-file takes the
#                  listeners; once it accepts, SIGTERM to the old one (which hands its idle
#                  keep-alive connections to the new one and finishes the rest)
#   nginx-upgrade  binary upgrade: USR2 to the master, then WINCH and QUIT to the old master
#   nginx-reload   HUP to the master
#   haproxy        master-worker (-W) seamless reload: USR2 to the master, which re-executes
#                  with -x <stats socket> (`expose-fd listeners`) and -sf <old workers>
# Counts per scenario what the client saw; writes per-second series and restart moments for
# bench/plot.py. Prints a markdown section; --write puts it into docs/benchmarks.md.
#
#   bench/restart.sh [--write]
#   BENCH_SMOKE=1 bench/restart.sh       # 4 s, one restart, for CI
#
# Knobs: BENCH_RESTART_DURATION_S (30), BENCH_RESTARTS (5),
# BENCH_SCENARIOS ("baton nginx-upgrade nginx-reload haproxy"), BENCH_RESULTS (where the CSVs go).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
DURATION=${BENCH_RESTART_DURATION_S:-30}
K=${BENCH_RESTARTS:-5}
if [[ $SMOKE == 1 ]]; then DURATION=4 K=1; fi
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-baton nginx-upgrade nginx-reload haproxy}"
RESULTS=${BENCH_RESULTS:-$WORK}
mkdir -p "$RESULTS"
ulimit -n "$(ulimit -Hn)"
# Downloads last a third of the run: each spans at least one restart.
DL_RATE=$((4 << 20))
DL_BYTES=$((DL_RATE * DURATION / 3))
LOAD_ARGS=(--duration-s "$DURATION" --fast 32 --fast-interval-ms 5 --slow 8 --upload 4
    --upload-bytes 262144 --download 2 --download-bytes "$DL_BYTES" --download-rate "$DL_RATE"
    --new-conn-rate 20 --timeout-ms 5000)

need_tools nginx haproxy
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_origin

# ---- restart procedures: each leaves the serving main PID in CURRENT -------------------------
restart_baton() { hot_restart_baton "$WORK/baton.yaml"; }
start_scenario_baton() {
    baton_config "$WORK/baton.yaml" "${PORT[baton]}"
    start_baton_hot "$WORK/baton.yaml"
}

nginx_pid_is_new() {
    local p
    p=$(cat "$WORK/nginx/nginx.pid" 2>/dev/null) || return 1
    [[ $p =~ ^[0-9]+$ && $p != "$1" ]]
}
nginx_oldbin_gone() { [[ ! -e "$WORK/nginx/nginx.pid.oldbin" ]]; }
restart_nginx-upgrade() {
    local old=$CURRENT
    # nginx ignores USR2 while the previous old master still drains (long downloads keep it):
    # wait for it, as an operator must, so every upgrade really happens.
    if ! wait_for 30 nginx_oldbin_gone; then
        echo "nginx binary upgrade: the previous master is still draining after 30 s" >&2
    fi
    kill -USR2 "$old"
    if ! wait_for 10 nginx_pid_is_new "$old"; then
        echo "nginx binary upgrade: no new master; log:" >&2
        cat "$WORK/nginx/logs/error.log" >&2
        return 1
    fi
    CURRENT=$(cat "$WORK/nginx/nginx.pid" 2>/dev/null || cat "$WORK/nginx/nginx.pid")
    PIDS+=("$CURRENT")
    sleep 0.2 # the new master's worker starts accepting
    kill -WINCH "$old"
    kill -QUIT "$old"
}
restart_nginx-reload() { kill -HUP "$CURRENT"; }
start_scenario_nginx() {
    rm -f "$WORK/nginx/nginx.pid" "$WORK/nginx/nginx.pid.oldbin"
    start_nginx_daemon
    CURRENT=${MAINPID[nginx]}
}
start_scenario_nginx-upgrade() { start_scenario_nginx; }
start_scenario_nginx-reload() { start_scenario_nginx; }

restart_haproxy() { kill -USR2 "$CURRENT"; }
start_scenario_haproxy() {
    start_haproxy
    CURRENT=${MAINPID[haproxy]}
}

declare -A PORT_OF=([baton]=${PORT[baton]} [nginx-upgrade]=${PORT[nginx]} [nginx-reload]=${PORT[nginx]} [haproxy]=${PORT[haproxy]})
declare -A RESULT=()
for sc in "${SCENARIOS[@]}"; do
    first_pid_index=${#PIDS[@]}
    "start_scenario_$sc"
    series="$RESULTS/restart-$sc.csv"
    events="$RESULTS/restart-$sc.events"
    : >"$events"
    pinned "$LOAD_CPU" "$BIN/baton-mixed" --target "127.0.0.1:${PORT_OF[$sc]}" "${LOAD_ARGS[@]}" \
        --series "$series" >"$WORK/load-$sc.log" 2>&1 &
    load=$!
    PIDS+=("$load")
    t0=$(now_ms)
    for i in $(seq "$K"); do
        at=$((t0 + DURATION * 1000 * i / (K + 1)))
        while (($(now_ms) < at)); do sleep 0.02; done
        now_ms >>"$events"
        "restart_$sc"
        echo "$sc: restart $i at +$((($(now_ms) - t0) / 1000)) s" >&2
    done
    wait "$load" || true
    RESULT[$sc]=$(grep '^RESULT ' "$WORK/load-$sc.log" || echo "RESULT none")
    echo "$sc: ${RESULT[$sc]}" >&2
    # Stop everything this scenario started except the load client (already gone).
    for pid in "${PIDS[@]:first_pid_index}"; do stop_pid "$pid"; done
done

field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"${RESULT[$1]}"; }
{
    echo "<!-- restart:begin (written by bench/restart.sh --write) -->"
    echo "## Restart under load"
    echo
    echo "\`baton-mixed ${LOAD_ARGS[*]}\` against each proxy in front of \`baton-upstream\` (CPU $UPSTREAM_CPU);"
    echo "proxy on CPU $PROXY_CPU, client on CPU ${LOAD_CPU:-any}. Clients: 32 keep-alive connections sending"
    echo "\`GET /bytes/1024\` every 5 ms, 8 sending \`GET /delay/200..800\`, 4 uploading 256 KiB to \`/sink\`,"
    echo "2 downloading $((DL_BYTES >> 20)) MiB at 4 MiB/s, and 20 one-request connections per second. $K"
    echo "restarts at even intervals over ${DURATION} s:"
    echo
    echo "- **baton**: a new \`baton --hot-restart-file S\` takes the listeners; once it logs that it"
    echo "  took over, SIGTERM to the old process (idle keep-alive connections move to the new one)."
    echo "- **nginx-upgrade**: binary upgrade, \`kill -USR2 master\`, new master up, then \`-WINCH\` and"
    echo "  \`-QUIT\` to the old master."
    echo "- **nginx-reload**: \`kill -HUP master\`."
    echo "- **haproxy**: \`haproxy -W\` with \`stats socket ... expose-fd listeners\`; \`kill -USR2 master\`"
    echo "  (the master re-executes itself with \`-x <socket>\` and \`-sf <old workers>\`)."
    echo
    echo "Every request ends as a success or a failure of one kind; nothing is retried. \"closed\" is"
    echo "a connection closed before a complete response; \"of which idle\" counts those closed before"
    echo "any response byte on a connection that had already carried a request (the race a keep-alive"
    echo "client loses when the server closes an idle connection; browsers retry those, we count them)."
    echo "\"reconnects\" are the new TCP connections keep-alive clients had to open."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (4 s, one restart): not a measurement.**"
    echo
    echo "| scenario | sent | ok | failed | reset | closed (of which idle) | timeout | non-2xx | wrong body | bad response | connect | reconnects | downloads ok / broken |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for sc in "${SCENARIOS[@]}"; do
        echo "| $sc | $(field "$sc" sent) | $(field "$sc" ok) | **$(field "$sc" failed)** | $(field "$sc" reset) | $(field "$sc" closed) ($(field "$sc" closed_idle)) | $(field "$sc" timeout) | $(field "$sc" non2xx) | $(field "$sc" wrong_body) | $(field "$sc" bad_response) | $(field "$sc" connect) | $(field "$sc" reconnects) | $(field "$sc" downloads_ok) / $(field "$sc" downloads_broken) |"
    done
    echo
    echo "![requests per second and failures over time, restarts marked](restart-under-load.svg)"
    echo "<!-- restart:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
for sc in "${SCENARIOS[@]}"; do echo "$sc ${RESULT[$sc]}"; done >"$RESULTS/restart.tsv"
if command -v python3 >/dev/null; then
    python3 bench/plot.py "$RESULTS" "${WRITE_SVG:-$([[ $WRITE == 1 ]] && echo docs/restart-under-load.svg || echo "$WORK/restart-under-load.svg")}" "${SCENARIOS[@]}"
fi
[[ $WRITE == 1 ]] && doc_section restart "$WORK/section.md"
exit 0
