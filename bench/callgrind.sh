#!/usr/bin/env bash
# User-space instructions per keep-alive request, counted exactly by callgrind (no noise from a
# shared machine, unlike wall-clock rounds). Builds the profiling binaries, starts baton-upstream
# and baton (one listener, one prefix route, nothing else configured) on free loopback ports, and
# runs baton under `valgrind --tool=callgrind` twice: once while a Python client sends N1
# keep-alive requests on one connection, once with N2. The difference between the two runs,
# divided by N2 - N1, is the cost of one request with start-up, the first connection and shutdown
# cancelled out. Prints that figure and the top functions (inclusive and exclusive) per request,
# from `callgrind_annotate` of both runs. Stops only the processes it started.
#
#   bench/callgrind.sh                     # GET /bytes/1024, N1 = 500, N2 = 2500
#   CG_PATH=/bytes/65536 CG_N1=200 CG_N2=1200 bench/callgrind.sh
#   CG_TOP=40 bench/callgrind.sh           # more functions
#   CG_KEEP=DIR bench/callgrind.sh         # keep the callgrind.out files in DIR
#   CG_NOBUILD=1 bench/callgrind.sh        # use the binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."
PATH_=${CG_PATH:-/bytes/1024}
N1=${CG_N1:-500}
N2=${CG_N2:-2500}
TOP=${CG_TOP:-25}
((N2 > N1)) || { echo "CG_N2 must exceed CG_N1" >&2; exit 2; }

# Two free loopback ports (bound to port 0, then released: the kernel does not hand the same
# ephemeral port out again at once).
read -r FREE_UP FREE_BATON < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
export BENCH_UPSTREAM_PORT=$FREE_UP
# Everything on one CPU (CG_CPU, default 0): each process runs until it blocks, so the events
# baton sees per request (and so its instruction count) do not depend on how the origin's and
# the client's writes race with baton on another core.
CPU=${CG_CPU:-0}
export UPSTREAM_CPU=$CPU PROXY_CPU=$CPU
BIN=${CARGO_TARGET_DIR:-target}/profiling
# shellcheck shell=bash source=bench/lib.sh
source bench/lib.sh
need_tools valgrind python3
if [[ ${CG_NOBUILD:-0} != 1 ]]; then
    cargo build --profile profiling -q -p baton -p baton-bench >&2
fi

start_origin
baton_config "$WORK/baton.yaml" "$FREE_BATON"

cat >"$WORK/client.py" <<'PY'
# Keep-alive client: N requests for PATH on one connection, each response read whole
# (Content-Length framing) before the next request is sent.
import socket, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
buf = b""
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("connection closed early")
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        sys.exit(f"unexpected status: {lines[0]!r}")
    cl = next(int(l.split(b":", 1)[1]) for l in lines[1:] if l.lower().startswith(b"content-length:"))
    while len(buf) < cl:
        d = s.recv(65536)
        if not d:
            sys.exit("connection closed in a body")
        buf += d
    buf = buf[cl:]
s.close()
PY

# run N: baton under callgrind while the client sends N requests; then SIGTERM (baton drains and
# exits, and callgrind writes its file). Sets OUT to the file's path (not a command
# substitution: the PID must stay in this shell's PIDS for the exit trap).
run() {
    local n=$1 out="$WORK/callgrind.out.$1" pid
    taskset -c "$CPU" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$BIN/baton" -c "$WORK/baton.yaml" -l warn >"$WORK/baton-$n.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    # valgrind starts slowly.
    for _ in $(seq 300); do port_open "$FREE_BATON" && break; sleep 0.1; done
    port_open "$FREE_BATON" || { echo "baton did not start; log:" >&2; cat "$WORK/baton-$n.log" >&2; exit 1; }
    taskset -c "$CPU" python3 "$WORK/client.py" "$FREE_BATON" "$PATH_" "$n" >&2
    kill -TERM "$pid"
    wait "$pid" || true
    PIDS=("${PIDS[@]/$pid/}")
    [[ -s $out ]] || { echo "no callgrind output for $n; log:" >&2; cat "$WORK/baton-$n.log" >&2; exit 1; }
    OUT=$out
}

total() { awk '/^summary:|^totals:/ {print $2; exit}' "$1"; }

run "$N1"
out1=$OUT
run "$N2"
out2=$OUT
if [[ -n ${CG_KEEP:-} ]]; then
    mkdir -p "$CG_KEEP"
    cp "$out1" "$out2" "$CG_KEEP/"
fi
t1=$(total "$out1")
t2=$(total "$out2")
per=$(((t2 - t1) / (N2 - N1)))

# per_function MODE: callgrind_annotate of both runs (MODE inclusive yes/no), difference per
# function divided by the request difference, the TOP largest.
per_function() {
    local mode=$1
    join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 \
        <(callgrind_annotate --inclusive="$mode" --threshold=100 "$out1" 2>/dev/null | fn_table "$mode") \
        <(callgrind_annotate --inclusive="$mode" --threshold=100 "$out2" 2>/dev/null | fn_table "$mode") |
        awk -F'\t' -v d=$((N2 - N1)) '{printf "%8.0f  %s\n", ($3 - $2) / d, $1}' |
        sort -rn | awk -v top="$TOP" 'NR <= top'
}
# fn_table MODE: "function<TAB>count" lines, sorted by function, from callgrind_annotate's
# function table (the block after the sixth dashed line). A function inlined into another file
# has one row per file: exclusive counts are summed, inclusive ones take the largest row (the
# function's own, which includes the others).
fn_table() {
    awk -v mode="$1" '/^-+$/ {sec++; next}
         sec == 6 && $1 ~ /^[0-9,]+$/ {
             n = $1; gsub(",", "", n); n += 0; $1 = ""; sub(/^ +\([^)]*\) +/, "");
             sub(/ \[[^]]*\]$/, ""); f = $0; sub(/^[^:]*:/, "", f);
             if (mode == "no") c[f] += n; else if (n > c[f]) c[f] = n
         } END {for (f in c) printf "%s\t%d\n", f, c[f]}' | LC_ALL=C sort -t $'\t' -k1,1
}

echo "callgrind, keep-alive GET $PATH_ on one connection, baton $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (with uncommitted changes)')"
echo "runs of $N1 and $N2 requests: $t1 and $t2 instructions"
echo "instructions per request: $per"
echo
echo "top inclusive, per request:"
LC_ALL=C per_function yes
echo
echo "top exclusive (self), per request:"
LC_ALL=C per_function no
