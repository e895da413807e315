#!/usr/bin/env bash
# TLS termination: baton (rustls), nginx and HAProxy (both on OpenSSL) each terminating TLS on
# 127.0.0.1 in front of the same plain-HTTP upstream (nginx serving static bytes), in
# interleaved rounds (baton nginx haproxy baton ...):
#   handshakes  wrk with `Connection: close`: every request is a new TCP connection and a full
#               TLS handshake (wrk caches no sessions), so requests/s = handshakes/s
#   keep-alive  wrk over 64 keep-alive HTTPS connections, 1 KiB responses
# Every server: the same ECDSA P-256 certificate, TLS 1.2 and 1.3 allowed (wrk negotiates 1.3),
# session resumption not used by the client. Ratios are per round, then their median.
# Prints a markdown section; --write puts it into docs/benchmarks.md.
#
#   bench/tls.sh [--write]
#   BENCH_SMOKE=1 bench/tls.sh      # 1-second rounds, for CI
#
# Knobs: BENCH_DURATION_S (8), BENCH_ROUNDS (5), BENCH_TLS_CONNS (64), BENCH_TLS_HS_CONNS (16),
# BENCH_TLS_TARGETS ("baton nginx haproxy").
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
DURATION=${BENCH_DURATION_S:-8}
ROUNDS=${BENCH_ROUNDS:-5}
[[ $SMOKE == 1 ]] && DURATION=1 ROUNDS=1
CONNS=${BENCH_TLS_CONNS:-64}
HS_CONNS=${BENCH_TLS_HS_CONNS:-16}
read -r -a TARGETS <<<"${BENCH_TLS_TARGETS:-baton nginx haproxy}"
need_tools wrk nginx haproxy openssl
build
ports_free "$UP_PORT" "${PORT[baton]}" "${PORT[nginx]}" "${PORT[haproxy]}"
start_static_upstream

# One certificate for all three (self-signed ECDSA P-256, for 127.0.0.1).
self_signed_cert "$WORK"
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"
chmod 644 "$WORK"/*.pem # nginx's worker reads nothing, its master does; harmless either way

start_tls_baton() {
    baton_config "$WORK/baton-tls.yaml" "${PORT[baton]}"
    baton_tls "$WORK/baton-tls.yaml" "$WORK"
    CMDLINE[baton]="taskset -c $PROXY_CPU baton -c baton-tls.yaml -l warn (rustls, ring)"
    pinned "$PROXY_CPU" "$BIN/baton" -c "$WORK/baton-tls.yaml" -l warn >"$WORK/baton.log" 2>&1 &
    MAINPID[baton]=$!
    PIDS+=($!)
    wait_port "${PORT[baton]}" "$WORK/baton.log"
}

start_tls_nginx() {
    nginx_proxy_config
    sed -i "s|listen 127.0.0.1:${PORT[nginx]} backlog=4096;|listen 127.0.0.1:${PORT[nginx]} ssl backlog=4096;\n        ssl_certificate $WORK/cert.pem;\n        ssl_certificate_key $WORK/key.pem;\n        ssl_protocols TLSv1.2 TLSv1.3;|" "$WORK/nginx/nginx.conf"
    CMDLINE[nginx]="taskset -c $PROXY_CPU nginx (worker_processes 1, listen ssl; $(nginx -V 2>&1 | grep -o 'built with OpenSSL [0-9.a-z]*'))"
    pinned "$PROXY_CPU" "$(command -v nginx)" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
        -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
    MAINPID[nginx]=$!
    PIDS+=($!)
    wait_port "${PORT[nginx]}" "$WORK/nginx/logs/error.log"
}

start_tls_haproxy() {
    haproxy_config
    sed -i "s|    bind 127.0.0.1:${PORT[haproxy]}|    bind 127.0.0.1:${PORT[haproxy]} ssl crt $WORK/haproxy.pem ssl-min-ver TLSv1.2|" "$WORK/haproxy/haproxy.cfg"
    CMDLINE[haproxy]="taskset -c $PROXY_CPU haproxy -W (nbthread 1, bind ssl crt; $(haproxy -vv 2>/dev/null | grep -o 'Running on OpenSSL version : [^ ]* [^ ]*' | sed 's/.*: //'))"
    pinned "$PROXY_CPU" "$(command -v haproxy)" -W -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/stdout.log" 2>&1 &
    MAINPID[haproxy]=$!
    PIDS+=($!)
    wait_port "${PORT[haproxy]}" "$WORK/haproxy/stdout.log"
}

# lib.sh's run_wrk, over https.
export WRK_SCHEME=https

for t in "${TARGETS[@]}"; do "start_tls_$t"; done
# Each serves HTTPS before any measurement (a refused handshake would read as 0 req/s).
for t in "${TARGETS[@]}"; do
    curl -sfk "https://127.0.0.1:${PORT[$t]}/1k" -o /dev/null || { echo "$t does not serve HTTPS" >&2; exit 1; }
done
declare -A RPS=() ERRS=() RATIO=()
for mode in handshakes keep-alive; do
    for round in $(seq "$ROUNDS"); do
        declare -A this=()
        for t in "${TARGETS[@]}"; do
            if [[ $mode == handshakes ]]; then
                read -r rps _ _ errs < <(run_wrk "${PORT[$t]}" /1k "$HS_CONNS" "$DURATION" -H "Connection: close")
            else
                read -r rps _ _ errs < <(run_wrk "${PORT[$t]}" /1k "$CONNS" "$DURATION")
            fi
            echo "$mode round $round $t: $rps req/s, errors $errs" >&2
            RPS[$mode,$t]+="$rps "
            ERRS[$mode,$t]=$((${ERRS[$mode,$t]:-0} + errs))
            this[$t]=$rps
        done
        for t in nginx haproxy; do
            RATIO[$mode,$t]+="$(ratio "${this[baton]:-0}" "${this[$t]}") "
        done
        unset this
    done
done

{
    echo "<!-- tls:begin (written by bench/tls.sh --write) -->"
    echo "## TLS termination"
    echo
    echo "\`bench/tls.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), baton $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Each proxy terminates TLS on CPU $PROXY_CPU (same ECDSA P-256 certificate) in front of nginx"
    echo "serving static bytes over plain HTTP on CPU $UPSTREAM_CPU; wrk on CPU ${LOAD_CPU:-?}. **handshakes**:"
    echo "\`wrk -t1 -c$HS_CONNS -d${DURATION}s -H 'Connection: close' https://127.0.0.1:PORT/1k\` — each request a new"
    echo "connection and a full TLS 1.3 handshake (X25519), so req/s is handshakes/s. **keep-alive**:"
    echo "\`wrk -t1 -c$CONNS -d${DURATION}s https://127.0.0.1:PORT/1k\`. $ROUNDS interleaved rounds; ratios per round."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (1-second rounds): not a measurement.**"
    echo
    printf '| target | command |\n|---|---|\n'
    for t in "${TARGETS[@]}"; do printf '| %s | `%s` |\n' "$t" "${CMDLINE[$t]}"; done
    for mode in handshakes keep-alive; do
        echo
        echo "**$mode** (req/s per round, then medians)"
        echo
        header="| target |"
        sep="|---|"
        for r in $(seq "$ROUNDS"); do header+=" r$r |"; sep+="---:|"; done
        echo "$header median | wrk errors | baton / this (per-round median) |"
        echo "$sep---:|---:|---:|"
        for t in "${TARGETS[@]}"; do
            row="| $t |"
            for v in ${RPS[$mode,$t]}; do row+=" $(printf '%.0f' "$v") |"; done
            ratio="-"
            [[ $t != baton ]] && ratio=$(awk -v v="$(median "${RATIO[$mode,$t]}")" 'BEGIN {printf "%.2f", v}')
            echo "$row $(printf '%.0f' "$(median "${RPS[$mode,$t]}")") | ${ERRS[$mode,$t]} | $ratio |"
        done
    done
    echo "<!-- tls:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
[[ $WRITE == 1 ]] && doc_section tls "$WORK/section.md"
exit 0
