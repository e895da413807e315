# Shared by the bench scripts (sourced, not run): process bookkeeping, ports, package checks,
# and how each proxy is configured and started. Every start_* function appends the PIDs it
# started to PIDS; the EXIT trap signals only those PIDs.
#
# CPU pinning on this 2-core machine (override with the variables):
#   UPSTREAM_CPU=1  the origin (nginx serving static bytes, or baton-upstream)
#   PROXY_CPU=0     the proxy under test (baton, nginx's worker, HAProxy's worker)
#   LOAD_CPU=0      wrk / the load client: it shares the proxy's core, so every proxy pays the
#                   same; "direct" gives wrk that core alone, so "vs direct" is pessimistic.
# shellcheck shell=bash

BIN=${BIN:-target/release}
UPSTREAM_CPU=${UPSTREAM_CPU:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU-$PROXY_CPU}
SMOKE=${BENCH_SMOKE:-0}
UP_PORT=${BENCH_UPSTREAM_PORT:-18080}
declare -A PORT=([baton]=18000 [nginx]=18001 [haproxy]=18002 [direct]=$UP_PORT)
PIDS=()
WORK=$(mktemp -d /tmp/baton-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT

# pinned CPU cmd... : execs cmd on CPU (empty: not pinned). It replaces the calling shell, so
# call it only in the background (`pinned ... &`, then $! is the command's own PID) or inside
# a command substitution.
pinned() {
    local cpu=$1
    shift
    if [[ -n $cpu ]]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT LOGFILE
    local i
    for i in $(seq 100); do
        port_open "$1" && return 0
        sleep 0.1
    done
    echo "nothing accepts on 127.0.0.1:$1; log $2:" >&2
    cat "$2" >&2
    return 1
}

ports_free() {
    local p
    for p in "$@"; do
        if port_open "$p"; then
            echo "port $p is already in use" >&2
            exit 1
        fi
    done
}

need_tools() { # need_tools cmd... : apt-get installs the missing ones (command = package)
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
    fi
    PATH=$PATH:/usr/sbin
}

build() { cargo build --release -q -p baton -p baton-bench >&2; }

# Resident set of a process and of its children (nginx/HAProxy master + workers), in KiB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }
tree_rss_kb() {
    local total p
    total=$(rss_kb "$1")
    for p in $(children "$1"); do total=$((total + $(rss_kb "$p"))); done
    echo "$total"
}
# The process that serves: baton itself; nginx's and HAProxy's (first) worker.
worker_of() {
    local c
    c=$(children "$1" | awk '{print $1}')
    echo "${c:-$1}"
}

# wrk_knobs DURATION ROUNDS TARGETS [ARG]: the knobs the wrk benches share. WRITE is 1 when ARG
# is --write; DURATION and ROUNDS come from BENCH_DURATION_S and BENCH_ROUNDS (1 each in a smoke
# run), CONNS from BENCH_CONNS (64), TARGETS (an array) from BENCH_TARGETS; the arguments are
# the defaults.
# shellcheck disable=SC2034 # set for the script that sources this file
wrk_knobs() {
    WRITE=0
    [[ ${4:-} == --write ]] && WRITE=1
    DURATION=${BENCH_DURATION_S:-$1}
    ROUNDS=${BENCH_ROUNDS:-$2}
    if [[ $SMOKE == 1 ]]; then DURATION=1 ROUNDS=1; fi
    CONNS=${BENCH_CONNS:-64}
    read -r -a TARGETS <<<"${BENCH_TARGETS:-$3}"
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {if (NR == 0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# ---- the origin -------------------------------------------------------------------------------

# nginx serving static bytes (/1k, /4k, /16k, /64k, /256k, /1m, /) on UPSTREAM_CPU: one process, no master.
# nginx's temp directories, all in DIR (nginx would otherwise want its system paths).
nginx_temp_paths() {
    local kind
    for kind in client_body proxy fastcgi uwsgi scgi; do
        printf '    %s_temp_path %s;\n' "$kind" "$1"
    done
}

# size_name BYTES: the path name of a static file of that size (1024 -> 1k, 1048576 -> 1m).
size_name() {
    if (($1 >= 1048576)); then echo "$(($1 / 1048576))m"; else echo "$(($1 / 1024))k"; fi
}

start_static_upstream() {
    mkdir -p "$WORK/up/html" "$WORK/up/logs"
    head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/up/html/1k"
    head -c 65536 /dev/zero | tr '\0' 'b' >"$WORK/up/html/64k"
    # The response-size sweep (bench/size_sweep.sh): /4k ... /1m.
    local kib
    for kib in 4 16 256 1024; do
        head -c $((kib * 1024)) /dev/zero | tr '\0' 'c' >"$WORK/up/html/$(size_name $((kib * 1024)))"
    done
    printf 'hello from static\n' >"$WORK/up/html/index.html"
    cat >"$WORK/up/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $WORK/up/logs/error.log warn;
pid $WORK/up/nginx.pid;
events { worker_connections 20000; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
$(nginx_temp_paths "$WORK/up/tmp")
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$UP_PORT reuseport backlog=4096;
        root $WORK/up/html;
    }
}
EOF
    pinned "$UPSTREAM_CPU" nginx -p "$WORK/up" -e "$WORK/up/logs/error.log" -c "$WORK/up/nginx.conf" \
        >"$WORK/up/stdout.log" 2>&1 &
    PIDS+=($!)
    wait_port "$UP_PORT" "$WORK/up/logs/error.log"
}

# baton-upstream (paths /bytes/N, /delay/MS, /sink, ...) on UPSTREAM_CPU.
start_origin() {
    pinned "$UPSTREAM_CPU" "$BIN/baton-upstream" --listen "127.0.0.1:$UP_PORT" --name origin \
        >"$WORK/origin.log" 2>&1 &
    PIDS+=($!)
    wait_port "$UP_PORT" "$WORK/origin.log"
}

# ---- proxies ----------------------------------------------------------------------------------

# baton_config FILE FIRST_PORT [LISTENERS]: LISTENERS listeners on consecutive ports, one route
# to the upstream cluster. BATON_HCM_EXTRA: more HttpConnectionManager fields, one per line
# (e.g. "request_headers_timeout: 10s").
baton_config() {
    local file=$1 first=$2 n=${3:-1} i
    {
        echo "static_resources:"
        echo "  listeners:"
        for ((i = 0; i < n; i++)); do
            cat <<EOF
  - name: listener_$i
    address:
      socket_address: { address: 127.0.0.1, port_value: $((first + i)) }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
$(sed '/^$/d; s/^/          /' <<<"${BATON_HCM_EXTRA:-}")
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: upstream, timeout: 60s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
EOF
        done
        cat <<EOF
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
    } >"$file"
}

# self_signed_cert DIR: DIR/cert.pem and DIR/key.pem, a self-signed ECDSA P-256 certificate for
# localhost and 127.0.0.1 (the TLS benches).
self_signed_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# baton_tls FILE DIR: the first listener of the baton config FILE terminates TLS with
# DIR/cert.pem and DIR/key.pem (its one filter chain gets a DownstreamTlsContext).
baton_tls() {
    python3 - "$1" "$2" <<'PY'
import sys
p, w = sys.argv[1], sys.argv[2]
s = open(p).read()
tls = f"""    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: {w}/cert.pem}}
              private_key: {{filename: {w}/key.pem}}
      filters:
"""
s = s.replace("    filter_chains:\n    - filters:\n", tls, 1)
open(p, "w").write(s)
PY
}

declare -A CMDLINE=([direct]="(the upstream itself)")
declare -A MAINPID=()

# start_baton [extra baton flags...]
start_baton() {
    baton_config "$WORK/baton.yaml" "${PORT[baton]}"
    CMDLINE[baton]="taskset -c $PROXY_CPU baton -c baton.yaml -l warn $*"
    pinned "$PROXY_CPU" "$BIN/baton" -c "$WORK/baton.yaml" -l warn "$@" >"$WORK/baton.log" 2>&1 &
    MAINPID[baton]=$!
    PIDS+=($!)
    wait_port "${PORT[baton]}" "$WORK/baton.log"
}

# ---- baton hot restart (bench/restart.sh, bench/soak.sh) ---------------------------------------
# start_baton_hot CONFIG: generation 0 with --hot-restart-file $WORK/baton-restart.sock, logs
# at info to $WORK/baton-0.log; sets CURRENT (the serving PID), appends it to PIDS and
# BATON_PIDS. hot_restart_baton CONFIG: the next generation on the same socket; once it logs
# that it took over, SIGTERM to the old one (which hands its idle keep-alive connections to
# the new one and drains the rest); CURRENT is the new PID. BATON_FLAGS (array): more baton flags.
BATON_GEN=0
BATON_PIDS=()
BATON_FLAGS=()
start_baton_hot() {
    BATON_GEN=0
    pinned "$PROXY_CPU" "$BIN/baton" -c "$1" -l info "${BATON_FLAGS[@]}" \
        --hot-restart-file "$WORK/baton-restart.sock" >"$WORK/baton-0.log" 2>&1 &
    CURRENT=$!
    PIDS+=("$CURRENT")
    BATON_PIDS+=("$CURRENT")
    wait_port "${PORT[baton]}" "$WORK/baton-0.log"
}
hot_restart_baton() {
    local old=$CURRENT log
    BATON_GEN=$((BATON_GEN + 1))
    log="$WORK/baton-$BATON_GEN.log"
    pinned "$PROXY_CPU" "$BIN/baton" -c "$1" -l info "${BATON_FLAGS[@]}" \
        --hot-restart-file "$WORK/baton-restart.sock" >"$log" 2>&1 &
    CURRENT=$!
    PIDS+=("$CURRENT")
    BATON_PIDS+=("$CURRENT")
    if ! wait_for 10 grep -q 'took over from epoch' "$log"; then
        echo "baton generation $BATON_GEN did not take over; log:" >&2
        cat "$log" >&2
        return 1
    fi
    kill -TERM "$old"
}

now_ms() { date +%s%3N; }
wait_for() { # wait_for SECONDS COMMAND...: polls every 10 ms
    local i
    for ((i = 0; i < $1 * 100; i++)); do
        "${@:2}" && return 0
        sleep 0.01
    done
    return 1
}

nginx_proxy_config() { # nginx_proxy_config [on|off]: daemon mode
    mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon ${1:-off};
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $WORK/nginx/logs/error.log warn;
pid $WORK/nginx/nginx.pid;
events { worker_connections 25000; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
$(nginx_temp_paths "$WORK/nginx/tmp")
    upstream origin {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 60s;
            client_max_body_size 0;
            # Stream bodies both ways as baton and HAProxy do (no temp files on disk).
            proxy_request_buffering off;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
}

start_nginx() {
    nginx_proxy_config
    CMDLINE[nginx]="taskset -c $PROXY_CPU nginx -c nginx.conf (worker_processes 1, upstream keepalive 128)"
    pinned "$PROXY_CPU" "$(command -v nginx)" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
        -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
    MAINPID[nginx]=$!
    PIDS+=($!)
    wait_port "${PORT[nginx]}" "$WORK/nginx/logs/error.log"
}

# nginx as a daemon (its binary upgrade needs that: a master whose parent is still the process
# that started it ignores USR2). The master's PID comes from the pid file.
start_nginx_daemon() {
    nginx_proxy_config on
    CMDLINE[nginx]="taskset -c $PROXY_CPU nginx -c nginx.conf (daemon on, worker_processes 1, upstream keepalive 128)"
    taskset -c "$PROXY_CPU" "$(command -v nginx)" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" \
        -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1
    wait_port "${PORT[nginx]}" "$WORK/nginx/logs/error.log"
    # The daemon binds before it forks and writes its pid file after.
    for _ in $(seq 100); do
        [[ -s $WORK/nginx/nginx.pid ]] && break
        sleep 0.05
    done
    MAINPID[nginx]=$(cat "$WORK/nginx/nginx.pid")
    PIDS+=("${MAINPID[nginx]}")
}

haproxy_config() {
    mkdir -p "$WORK/haproxy"
    cat >"$WORK/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 10200
    no strict-limits
    stats socket $WORK/haproxy/admin.sock mode 600 level admin expose-fd listeners
    pidfile $WORK/haproxy/haproxy.pid
defaults
    mode http
    timeout connect 1s
    timeout client 300s
    timeout server 60s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse always
    maxconn 10200
frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be
backend be
    server origin 127.0.0.1:$UP_PORT
EOF
}

# HAProxy in master-worker mode (-W), as it runs for seamless reloads.
start_haproxy() {
    haproxy_config
    CMDLINE[haproxy]="taskset -c $PROXY_CPU haproxy -W -db -f haproxy.cfg (nbthread 1, http-reuse always)"
    pinned "$PROXY_CPU" "$(command -v haproxy)" -W -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/stdout.log" 2>&1 &
    MAINPID[haproxy]=$!
    PIDS+=($!)
    wait_port "${PORT[haproxy]}" "$WORK/haproxy/stdout.log"
}

start_direct() { MAINPID[direct]=""; }

# doc_section NAME FILE: replaces <!-- NAME:begin --> ... <!-- NAME:end --> in
# docs/benchmarks.md with FILE (which carries the markers), or appends it.
doc_section() {
    local name=$1 file=$2 doc=docs/benchmarks.md
    mkdir -p docs
    [[ -f $doc ]] || printf '# baton benchmarks\n\nEvery table here is written by a script in bench/; `bench/run-all` reruns them all.\n\n' >"$doc"
    if grep -q "<!-- $name:begin" "$doc"; then
        awk -v f="$file" -v b="<!-- $name:begin" -v e="<!-- $name:end -->" '
            index($0, b) == 1 {while ((getline l < f) > 0) print l; skip=1; next}
            index($0, e) == 1 {skip=0; next}
            !skip' "$doc" >"$WORK/doc.md"
        cp "$WORK/doc.md" "$doc"
    else
        { echo; cat "$file"; } >>"$doc"
    fi
    echo "wrote $doc ($name)" >&2
}

# stop_pid PID: TERM, wait (bounded), KILL; forgets it from PIDS.
stop_pid() {
    local pid=$1 keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# wrk latency field ("52.00us", "1.20ms", "1.01s") in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN {if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}'; }

# run_wrk PORT PATH CONNS SECONDS [wrk flags...]: one wrk run on LOAD_CPU; prints
# "req_per_s p50_ms p99_ms errors" (errors: non-2xx responses plus socket errors) and appends
# wrk's output to $WORK/wrk.log. WRK_SCHEME (default http) is the URL scheme.
run_wrk() {
    local out rps p50 p99 errs
    out=$(pinned "$LOAD_CPU" wrk -t1 "-c$3" "-d$4s" --latency "${@:5}" "${WRK_SCHEME:-http}://127.0.0.1:$1$2")
    echo "$out" >>"$WORK/wrk.log"
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx|Socket errors/ {gsub(/,/, ""); for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) n += $i} END {print n + 0}' <<<"$out")
    echo "${rps:-0} $p50 $p99 $errs"
}

# ratio A B: A / B with 3 decimals (0 when B is 0), for per-round ratios.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }

# peer_ratio BATON NGINX HAPROXY: baton over the faster of the two peers (one round's figures;
# prints nothing when either peer was not run).
peer_ratio() {
    [[ -n ${2:-} && -n ${3:-} ]] || return 0
    ratio "$1" "$(awk -v a="$2" -v b="$3" 'BEGIN {print (a > b) ? a : b}')"
}
