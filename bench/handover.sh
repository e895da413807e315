#!/usr/bin/env bash
# Handover cost of a baton hot restart, with 1 and 100 listeners (no client connections) and
# with 100, 1,000 and 10,000 open idle keep-alive client connections (1 listener):
#   start → accepts: from launching the new process to its log line "took over from epoch"
#                    (config loaded, listeners received and registered: it accepts);
#   SIGTERM → exit:  from `kill -TERM old` to the old process's exit (its idle connections are
#                    moved to the new process on drain, fd + unread bytes).
# After each restart with client connections, one more request on every connection checks they
# all survived the move. Medians of BENCH_HANDOVER_REPS (3) restarts per case. Prints a
# markdown section; --write puts it into docs/benchmarks.md.
#
#   bench/handover.sh [--write]
#   BENCH_SMOKE=1 bench/handover.sh     # small cases, one restart each, for CI
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
REPS=${BENCH_HANDOVER_REPS:-3}
CASES=("1 0" "100 0" "1 100" "1 1000" "1 10000") # listeners connections
if [[ $SMOKE == 1 ]]; then
    REPS=1
    CASES=("1 0" "10 0" "1 100")
fi
ulimit -n "$(ulimit -Hn)"
FIRST=18100

build
ports_free "$UP_PORT" $(seq "$FIRST" $((FIRST + 99)))
start_static_upstream

now_ms() { date +%s%3N; }
log_ms() { # log_ms FILE PATTERN: time (unix ms) of the first line matching
    local ts
    ts=$(grep -m1 "$2" "$1" | sed -n 's/^\[\([^ ]*\) .*/\1/p')
    date -d "$ts" +%s%3N
}

declare -A ACC=() EXIT=() CHECK=()
for case in "${CASES[@]}"; do
    read -r listeners conns <<<"$case"
    cfg="$WORK/h-$listeners.yaml"
    baton_config "$cfg" "$FIRST" "$listeners"
    sock="$WORK/h.sock"
    gen=0
    log="$WORK/h-$listeners-$conns-$gen.log"
    pinned "$PROXY_CPU" "$BIN/baton" -c "$cfg" -l info --hot-restart-file "$sock" >"$log" 2>&1 &
    cur=$!
    PIDS+=("$cur")
    wait_port $((FIRST + listeners - 1)) "$log"
    idle=""
    if ((conns > 0)); then
        mkfifo "$WORK/idle-$conns.in"
        pinned "$LOAD_CPU" "$BIN/baton-idle" --target "127.0.0.1:$FIRST" --connections "$conns" \
            --path /1k --hold-s 300 <"$WORK/idle-$conns.in" >"$WORK/idle-$conns.out" 2>&1 &
        idle=$!
        PIDS+=("$idle")
        exec 7>"$WORK/idle-$conns.in"
        for _ in $(seq 600); do
            grep -q READY "$WORK/idle-$conns.out" && break
            sleep 0.1
        done
        grep READY "$WORK/idle-$conns.out" >&2
    fi
    for rep in $(seq "$REPS"); do
        gen=$((gen + 1))
        log="$WORK/h-$listeners-$conns-$gen.log"
        t0=$(now_ms)
        pinned "$PROXY_CPU" "$BIN/baton" -c "$cfg" -l info --hot-restart-file "$sock" >"$log" 2>&1 &
        new=$!
        PIDS+=("$new")
        for _ in $(seq 1000); do
            grep -q 'took over from epoch' "$log" && break
            sleep 0.01
        done
        acc=$(($(log_ms "$log" 'took over from epoch') - t0))
        t1=$(now_ms)
        kill -TERM "$cur"
        wait "$cur" || true
        ex=$(($(now_ms) - t1))
        stop_pid "$cur" # forget it
        cur=$new
        chk=""
        if [[ -n $idle ]]; then
            before=$(grep -c CHECK "$WORK/idle-$conns.out" || true)
            echo check >&7
            for _ in $(seq 600); do
                (($(grep -c CHECK "$WORK/idle-$conns.out" || true) > before)) && break
                sleep 0.05
            done
            chk=$(grep CHECK "$WORK/idle-$conns.out" | tail -1 | sed 's/^CHECK //')
        fi
        echo "listeners=$listeners connections=$conns rep $rep: start->accepts ${acc} ms, SIGTERM->exit ${ex} ms ${chk}" >&2
        ACC[$case]+="$acc "
        EXIT[$case]+="$ex "
        CHECK[$case]+="${CHECK[$case]:+; }$chk"
    done
    if [[ -n $idle ]]; then
        echo quit >&7
        exec 7>&-
        stop_pid "$idle"
    fi
    stop_pid "$cur"
    rm -f "$sock"
done

{
    echo "<!-- handover:begin (written by bench/handover.sh --write) -->"
    echo "## Handover cost of a hot restart"
    echo
    echo "baton on CPU $PROXY_CPU in front of the static upstream; \`baton --hot-restart-file S\` restarted"
    echo "$REPS times per case (medians; every value in brackets). **start → accepts**: launching the new"
    echo "process until it logs \"took over from epoch\" (config loaded, listeners received over the"
    echo "restart socket and registered). **SIGTERM → exit**: \`kill -TERM\` to the old process until it"
    echo "has exited; with client connections open (\`baton-idle\`, one request each, then idle) that"
    echo "includes moving every one of them (fd + unread bytes) to the new process. After each restart"
    echo "one more request on every connection checks that all of them survived the move."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (small cases, one restart each): not a measurement.**"
    echo
    echo "| listeners | idle client connections | start → accepts, ms | SIGTERM → exit, ms | requests after the move (ok/failed per restart) |"
    echo "|---:|---:|---:|---:|---|"
    for case in "${CASES[@]}"; do
        read -r listeners conns <<<"$case"
        echo "| $listeners | $conns | $(median "${ACC[$case]}") [${ACC[$case]% }] | $(median "${EXIT[$case]}") [${EXIT[$case]% }] | ${CHECK[$case]:--} |"
    done
    echo "<!-- handover:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
for case in "${CASES[@]}"; do echo "$case $(median "${ACC[$case]}") $(median "${EXIT[$case]}")"; done >"${BENCH_RESULTS:-$WORK}/handover.tsv"
[[ $WRITE == 1 ]] && doc_section handover "$WORK/section.md"
exit 0
