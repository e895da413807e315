#!/usr/bin/env bash
# WebSocket sessions through a restart: baton-ws opens N echo sessions through each proxy to a
# baton-ws echo server, sends one message per session every I ms and checks every echo (same
# bytes, in order, once; a failed session is never reopened). In the middle of the run the
# proxy is restarted as its users restart it:
#   baton              hot restart (new process on the same --hot-restart-file, SIGTERM to the
#                      old one once the new one took over); open tunnels move to the new process
#   nginx-reload       HUP to the master (old worker keeps its sessions until they end)
#   nginx-reload-5s    the same with worker_shutdown_timeout 5s (the usual bound)
#   haproxy            USR2 to the master-worker (old worker keeps its sessions)
#   haproxy-hard-5s    the same with hard-stop-after 5s
# Per scenario: sessions that survived, echo latency (whole run and the 2 s after the
# restart), how long until the old process exited (baton: every session moved), and whether an
# old process still held sessions at the end of the run. Prints a markdown section; --write
# puts it into docs/benchmarks.md.
#
#   bench/ws_restart.sh [--write]
#   BENCH_SMOKE=1 bench/ws_restart.sh     # 50 sessions, 4 s, for CI
#
# Knobs: WS_SESSIONS (1000), WS_DURATION_S (20), WS_INTERVAL_MS (100), WS_SCENARIOS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
SESSIONS=${WS_SESSIONS:-1000}
DURATION=${WS_DURATION_S:-20}
INTERVAL=${WS_INTERVAL_MS:-100}
if [[ $SMOKE == 1 ]]; then SESSIONS=50 DURATION=4; fi
read -r -a SCENARIOS <<<"${WS_SCENARIOS:-baton nginx-reload nginx-reload-5s haproxy haproxy-hard-5s}"
RESTART_AT=$((DURATION * 2 / 5))
((RESTART_AT < 1)) && RESTART_AT=1
ulimit -n "$(ulimit -Hn)"
need_tools nginx haproxy
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"

pinned "$UPSTREAM_CPU" "$BIN/baton-ws" server --listen "127.0.0.1:$UP_PORT" >"$WORK/ws-server.log" 2>&1 &
WS_SERVER=$!
trap 'cleanup; stop_pid "$WS_SERVER"' EXIT
wait_port "$UP_PORT" "$WORK/ws-server.log"

# The same proxies as the other benchmarks, with what each needs to pass WebSocket upgrades.
ws_baton_config() {
    BATON_HCM_EXTRA=$'upgrade_configs:\n- upgrade_type: websocket\nstream_idle_timeout: 300s' \
        baton_config "$1" "${PORT[baton]}"
}
ws_nginx_config() { # ws_nginx_config [worker_shutdown_timeout]
    nginx_proxy_config
    local conf=$WORK/nginx/nginx.conf
    sed -i 's|proxy_set_header Connection "";|proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection "upgrade";|; s|proxy_read_timeout 60s;|proxy_read_timeout 300s;|' "$conf"
    [[ -n ${1:-} ]] && sed -i "s|^worker_processes 1;|worker_processes 1;\nworker_shutdown_timeout $1;|" "$conf"
    return 0
}
ws_haproxy_config() { # ws_haproxy_config [hard-stop-after]
    haproxy_config
    local conf=$WORK/haproxy/haproxy.cfg
    sed -i 's|^    timeout http-keep-alive 300s|    timeout http-keep-alive 300s\n    timeout tunnel 300s|' "$conf"
    [[ -n ${1:-} ]] && sed -i "s|^    nbthread 1|    nbthread 1\n    hard-stop-after $1|" "$conf"
    return 0
}

# old_alive SCENARIO: PIDs of the proxy's processes from before the restart still running.
declare -A OLD=()
run_scenario() {
    local sc=$1 port start_ms t_restart exit_ms="" old_left="" rc=0 summary
    case $sc in
    baton)
        ws_baton_config "$WORK/ws-baton.yaml"
        BATON_FLAGS=(--drain-time-s 120)
        start_baton_hot "$WORK/ws-baton.yaml"
        port=${PORT[baton]}
        ;;
    nginx-reload | nginx-reload-5s)
        ws_nginx_config "$([[ $sc == nginx-reload-5s ]] && echo 5s)"
        pinned "$PROXY_CPU" "$(command -v nginx)" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
            -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
        MAINPID[nginx]=$!
        PIDS+=($!)
        wait_port "${PORT[nginx]}" "$WORK/nginx/logs/error.log"
        port=${PORT[nginx]}
        ;;
    haproxy | haproxy-hard-5s)
        ws_haproxy_config "$([[ $sc == haproxy-hard-5s ]] && echo 5s)"
        pinned "$PROXY_CPU" "$(command -v haproxy)" -W -db -f "$WORK/haproxy/haproxy.cfg" \
            >"$WORK/haproxy/stdout.log" 2>&1 &
        MAINPID[haproxy]=$!
        PIDS+=($!)
        wait_port "${PORT[haproxy]}" "$WORK/haproxy/stdout.log"
        port=${PORT[haproxy]}
        ;;
    *) echo "unknown scenario $sc" >&2; return 1 ;;
    esac
    local out=$WORK/ws-$sc.out
    pinned "$LOAD_CPU" "$BIN/baton-ws" client --target "127.0.0.1:$port" --sessions "$SESSIONS" \
        --duration-s "$DURATION" --interval-ms "$INTERVAL" --threads 8 --csv "$WORK/ws-$sc.csv" \
        >"$out" 2>"$WORK/ws-$sc.err" &
    local client=$!
    wait_for 60 grep -q READY "$out" || { echo "$sc: sessions did not open" >&2; cat "$WORK/ws-$sc.err" >&2; return 1; }
    start_ms=$(now_ms)
    sleep "$RESTART_AT"
    t_restart=$(( ($(now_ms) - start_ms) / 1000 ))
    local olds=()
    case $sc in
    baton)
        local old=$CURRENT t0
        ws_baton_config "$WORK/ws-baton.yaml"
        t0=$(now_ms)
        hot_restart_baton "$WORK/ws-baton.yaml"
        wait_for 60 bash -c "! kill -0 $old 2>/dev/null" || true
        exit_ms=$(( $(now_ms) - t0 ))
        kill -0 "$old" 2>/dev/null && old_left="$old"
        ;;
    nginx-*)
        read -r -a olds <<<"$(children "${MAINPID[nginx]}")"
        kill -HUP "${MAINPID[nginx]}"
        ;;
    haproxy*)
        read -r -a olds <<<"$(children "${MAINPID[haproxy]}")"
        kill -USR2 "${MAINPID[haproxy]}"
        ;;
    esac
    if ((${#olds[@]})); then
        # When the old worker(s) exit, in ms after the reload signal (polled every 50 ms).
        local t0 olds_s="${olds[*]}"
        t0=$(now_ms)
        (
            alive() {
                local q
                for q in $olds_s; do kill -0 "$q" 2>/dev/null && return 0; done
                return 1
            }
            while alive; do sleep 0.05; done
            echo $(($(date +%s%3N) - t0)) >"$WORK/ws-$sc.oldexit"
        ) &
    fi
    wait "$client" || rc=$?
    local p
    for p in "${olds[@]}"; do kill -0 "$p" 2>/dev/null && old_left+="$p "; done
    [[ -s $WORK/ws-$sc.oldexit ]] && exit_ms=$(cat "$WORK/ws-$sc.oldexit")
    summary=$(tail -1 "$out")
    # p99 over the 2 s after the restart, from the per-second CSV.
    local p99r
    p99r=$(awk -F, -v a="$t_restart" 'NR > 1 && $1 >= a && $1 <= a + 2 && $6 > m {m = $6} END {print m + 0}' "$WORK/ws-$sc.csv")
    ROW[$sc]="$summary restart_p99_us=$p99r old_exit_ms=${exit_ms:--} old_left=${old_left:-none} rc=$rc"
    echo "$sc: ${ROW[$sc]}" >&2
    cleanup
}

declare -A ROW=()
for sc in "${SCENARIOS[@]}"; do
    ports_free "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
    run_scenario "$sc"
done

field() { grep -o "$2=[^ ]*" <<<"$1" | cut -d= -f2; }
{
    echo "<!-- ws_restart:begin (written by bench/ws_restart.sh --write) -->"
    echo "## WebSocket sessions through a restart"
    echo
    echo "\`bench/ws_restart.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), baton $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
    echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'); load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "\`baton-ws client\` (CPU $LOAD_CPU) opens $SESSIONS WebSocket sessions through the proxy (CPU $PROXY_CPU) to"
    echo "\`baton-ws server\` (CPU $UPSTREAM_CPU), then for $DURATION s sends one message per session every $INTERVAL ms"
    echo "and checks each echo; a session that fails is not reopened. The proxy is restarted ${RESTART_AT} s in."
    echo "Latency is from a message's write to its echo's read (8 client threads, each reading its"
    echo "sessions in turn)."
    echo
    echo "| scenario | sessions kept | messages sent / echoed | p50 / p99 echo (ms) | p99 in the 2 s after the restart (ms) | old process gone after | old process still holding sessions at the end |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    for sc in "${SCENARIOS[@]}"; do
        r=${ROW[$sc]:-}
        [[ -z $r ]] && continue
        kept=$(( $(field "$r" opened) - $(field "$r" failed_sessions) ))
        printf '| %s | %s / %s | %s / %s | %.1f / %.1f | %.1f | %s | %s |\n' "$sc" "$kept" "$SESSIONS" \
            "$(field "$r" sent)" "$(field "$r" echoed)" \
            "$(awk -v v="$(field "$r" p50_us)" 'BEGIN {print v / 1000}')" \
            "$(awk -v v="$(field "$r" p99_us)" 'BEGIN {print v / 1000}')" \
            "$(awk -v v="$(field "$r" restart_p99_us)" 'BEGIN {print v / 1000}')" \
            "$(e=$(field "$r" old_exit_ms); [[ $e == - ]] && echo - || echo "$e ms")" \
            "$(o=$(field "$r" old_left); [[ $o == none ]] && echo no || echo yes)"
    done
    echo
    echo "<!-- ws_restart:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
[[ $WRITE == 1 ]] && doc_section ws_restart "$WORK/section.md"
failed=0
for sc in "${SCENARIOS[@]}"; do
    [[ $sc == baton ]] || continue
    r=${ROW[$sc]:-}
    if [[ -z $r || $(field "$r" failed_sessions) != 0 || $(field "$r" open_failed) != 0 ]]; then failed=1; fi
done
exit $failed
