#!/usr/bin/env bash
# Soak: baton in front of baton-upstream for SOAK_DURATION_S, hot-restarted every
# SOAK_RESTART_EVERY_S (a new process on the same --hot-restart-file, alternating two configs,
# then SIGTERM to the old one: bench/lib.sh's hot_restart_baton, as bench/restart.sh does), under
#   - the restart-under-load mix (baton-mixed: keep-alive fast/slow/upload/download clients and
#     one-request connections), whose every request must succeed, and at the same time
#   - hostile clients (baton-hostile): slowloris connections dribbling heads at 1 byte/s, a
#     connection flood, clients that pipeline requests and never read, and clients that send a
#     request and reset.
# Every second it samples the serving baton's RSS and open descriptors (/proc/PID/fd) and the
# RSS of all live baton processes (draining generations too) into
# bench/results/soak.csv (BENCH_RESULTS overrides the directory), restart moments into
# soak.events, baton-mixed's per-second counts into soak-mixed.csv. Prints a markdown section;
# --write puts it into docs/benchmarks.md and plots docs/soak.svg (bench/plot.py --soak).
# Exit status 1 when a well-formed request failed (the section says which kind and when).
#
#   bench/soak.sh [--write]           # 10 minutes, a restart every 10 s
#   BENCH_SMOKE=1 bench/soak.sh       # 20 s, 2 restarts, for CI
#
# Knobs: SOAK_DURATION_S (600), SOAK_RESTART_EVERY_S (10), SOAK_SLOWLORIS (300),
# SOAK_FLOOD_RATE (300/s), SOAK_NOREAD (16), SOAK_RESET_RATE (50/s), HOSTILE_CPU (the
# upstream's CPU), BENCH_RESULTS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
DURATION=${SOAK_DURATION_S:-600}
EVERY=${SOAK_RESTART_EVERY_S:-10}
SLOWLORIS=${SOAK_SLOWLORIS:-300}
FLOOD_RATE=${SOAK_FLOOD_RATE:-300}
NOREAD=${SOAK_NOREAD:-16}
RESET_RATE=${SOAK_RESET_RATE:-50}
if [[ $SMOKE == 1 ]]; then DURATION=20 EVERY=7 SLOWLORIS=100; fi
SMOKE_DL_S=3
HOSTILE_CPU=${HOSTILE_CPU-$UPSTREAM_CPU}
RESULTS=${BENCH_RESULTS:-bench/results}
mkdir -p "$RESULTS"
ulimit -n "$(ulimit -Hn)"
# A download lasts 2.5 restart intervals (at most a third of the run): each spans restarts and
# finishes in a draining process.
DL_RATE=$((4 << 20))
DL_S=$((EVERY * 5 / 2))
((DL_S > DURATION / 3)) && DL_S=$((DURATION / 3))
((DL_S < 1)) && DL_S=1
[[ $SMOKE == 1 ]] && DL_S=$SMOKE_DL_S
DL_BYTES=$((DL_RATE * DL_S))
LOAD_ARGS=(--duration-s "$DURATION" --fast 32 --fast-interval-ms 5 --slow 8 --upload 4
    --upload-bytes 262144 --download 2 --download-bytes "$DL_BYTES" --download-rate "$DL_RATE"
    --new-conn-rate 20 --timeout-ms 5000)
declare -A HOSTILE_ARGS=(
    [slowloris]="slowloris $SLOWLORIS"
    [flood]="flood --rate $FLOOD_RATE"
    [noread]="noread --connections $NOREAD --pipeline 64 --path /bytes/65536 --hold-s 5"
    [reset]="reset --rate $RESET_RATE --path /bytes/65536"
)
HOSTILE_KINDS=(slowloris flood noread reset)
# Two configs, alternated at every restart: what an operator's config push looks like. Both
# bound how long a head may take and how long a stalled exchange may sit.
HCM_A=$'request_headers_timeout: 5s\nstream_idle_timeout: 30s'
HCM_B=$'request_headers_timeout: 15s\nstream_idle_timeout: 45s'
BATON_FLAGS=(--drain-time-s 120)

build
# What was built (the working tree: other changes in src/ are in the binary too).
REV="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (with uncommitted changes in src/)')"
ports_free "$UP_PORT" "${PORT[baton]}"
BATON_HCM_EXTRA=$HCM_A baton_config "$WORK/baton-a.yaml" "${PORT[baton]}"
BATON_HCM_EXTRA=$HCM_B baton_config "$WORK/baton-b.yaml" "${PORT[baton]}"
start_origin
start_baton_hot "$WORK/baton-a.yaml"
TARGET=127.0.0.1:${PORT[baton]}

# ---- sampling --------------------------------------------------------------------------------
fd_count() {
    local f=(/proc/"$1"/fd/*)
    [[ -e ${f[0]} ]] && echo "${#f[@]}" || echo 0
}
alive() { [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
# sample T: one CSV row in ROW; also forgets exited generations.
sample() {
    local p live=() all_rss=0 all_fds=0 r f
    for p in "${BATON_PIDS[@]}"; do
        if alive "$p"; then
            live+=("$p")
            # A process may exit between two reads (a zombie has no VmRSS): count it as 0.
            r=$(rss_kb "$p")
            f=$(fd_count "$p")
            all_rss=$((all_rss + ${r:-0}))
            all_fds=$((all_fds + ${f:-0}))
        fi
    done
    BATON_PIDS=("${live[@]}")
    r=$(rss_kb "$CURRENT")
    f=$(fd_count "$CURRENT")
    ROW="$1,$CURRENT,${r:-0},${f:-0},${#live[@]},$all_rss,$all_fds"
    LIVE=${#live[@]}
}

series=$RESULTS/soak.csv
events=$RESULTS/soak.events
: >"$events"
idle_fds=$(fd_count "$CURRENT")
idle_rss=$(rss_kb "$CURRENT")

pinned "$LOAD_CPU" "$BIN/baton-mixed" --target "$TARGET" "${LOAD_ARGS[@]}" \
    --series "$RESULTS/soak-mixed.csv" >"$WORK/mixed.log" 2>&1 &
mixed=$!
PIDS+=("$mixed")
declare -A HPID=()
for k in "${HOSTILE_KINDS[@]}"; do
    # shellcheck disable=SC2086 # the mode's arguments are words
    pinned "$HOSTILE_CPU" "$BIN/baton-hostile" --target "$TARGET" --duration-s "$DURATION" \
        ${HOSTILE_ARGS[$k]} >"$WORK/hostile-$k.log" 2>&1 &
    HPID[$k]=$!
    PIDS+=("$!")
done
t0=$(now_ms)
echo "# t0_unix_ms=$t0" >"$series"
echo "second,serving_pid,serving_rss_kb,serving_fds,live_batons,all_rss_kb,all_fds" >>"$series"
restarts=0
restart_failed=0
cfg=a
max_live=1
# One tick a second until the load ends (bounded: the run plus in-flight work plus a margin).
for ((s = 0; s < DURATION + 60; s++)); do
    while (($(now_ms) < t0 + s * 1000)); do sleep 0.02; done
    if ((s > 0 && s < DURATION && s % EVERY == 0)); then
        [[ $cfg == a ]] && cfg=b || cfg=a
        now_ms >>"$events"
        if hot_restart_baton "$WORK/baton-$cfg.yaml"; then
            restarts=$((restarts + 1))
        else
            restart_failed=$((restart_failed + 1))
        fi
    fi
    sample "$s"
    echo "$ROW" >>"$series"
    ((LIVE > max_live)) && max_live=$LIVE
    ((s % 60 == 0)) && echo "soak: +$s s, $restarts restarts, serving $ROW" >&2
    if ((s >= DURATION)) && ! kill -0 "$mixed" 2>/dev/null; then break; fi
done
wait "$mixed" || true
for k in "${HOSTILE_KINDS[@]}"; do wait "${HPID[$k]}" || true; done
elapsed=$((($(now_ms) - t0) / 1000))
# The serving process once every client is gone: descriptors back to the idle figure?
sleep 2
settled_fds=$(fd_count "$CURRENT")
settled_rss=$(rss_kb "$CURRENT")
# What those descriptors are: connections to the upstream (baton's pool) and from clients.
settled_up=$(ss -Htnp "( dport = :$UP_PORT )" 2>/dev/null | grep -c "pid=$CURRENT," || true)
settled_down=$(ss -Htnp "( sport = :${PORT[baton]} )" 2>/dev/null | grep -c "pid=$CURRENT," || true)

RESULT=$(grep '^RESULT ' "$WORK/mixed.log" || echo "RESULT none")
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$RESULT"; }
hfield() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$WORK/hostile-$1.log" | head -1; }
failed=$(field failed)
# column N of the samples taken while the load ran
col() { awk -F, -v c="$1" -v d="$DURATION" '$1 ~ /^[0-9]+$/ && $1 < d {print $c}' "$series"; }
stats() { # start median max end of column N, scaled by DIV, printed with FMT
    local v
    v=$(col "$1" | tr '\n' ' ')
    awk -v v="$v" -v med="$(median "$v")" -v div="$2" -v fmt="$3" 'BEGIN {
        n = split(v, a, " "); max = 0
        for (i = 1; i <= n; i++) if (a[i] + 0 > max) max = a[i] + 0
        printf fmt " / " fmt " / " fmt " / " fmt, a[1] / div, med / div, max / div, a[n] / div }'
}
# Growth: the last minute's median against the first minute's (after the first 10 s warm-up).
growth() {
    local first last
    first=$(median "$(awk -F, -v c="$1" '$1 ~ /^[0-9]+$/ && $1 >= 10 && $1 < 70 {print $c}' "$series" | tr '\n' ' ')")
    last=$(median "$(awk -F, -v c="$1" -v d="$DURATION" '$1 ~ /^[0-9]+$/ && $1 >= d - 60 && $1 < d {print $c}' "$series" | tr '\n' ' ')")
    awk -v a="$first" -v b="$last" -v div="$2" -v fmt="$3" 'BEGIN {printf fmt " → " fmt, a / div, b / div}'
}
# Every second with failed well-formed requests: how many of which kind, and how long after the
# restart before it (restart moments relative to baton-mixed's clock).
m0=$(sed -n 's/^# t0_unix_ms=//p' "$RESULTS/soak-mixed.csv" 2>/dev/null || echo 0)
failures_by_second() {
    [[ -f $RESULTS/soak-mixed.csv ]] || return 0
    awk -F, -v m0="${m0:-0}" -v evf="$events" '
        BEGIN { n = 0; while ((getline l < evf) > 0) if (l ~ /^[0-9]+$/) ev[++n] = (l - m0) / 1000 }
        $1 == "second" { for (i = 4; i < NF; i++) kind[i] = $i; next }
        $1 ~ /^[0-9]+$/ && $3 > 0 {
            what = ""
            for (i = 4; i < NF; i++) if ($i > 0) what = what (what == "" ? "" : ", ") $i " " kind[i]
            last = -1; k = 0
            for (j = 1; j <= n; j++) if (ev[j] <= $1 + 1) { last = ev[j]; k = j }
            rel = (k ? sprintf("%.1f-%.1f s after restart %d", $1 - last < 0 ? 0 : $1 - last, $1 + 1 - last, k) : "before the first restart")
            printf "%s%d s: %s (%s)", (out++ ? "; " : ""), $1, what, rel
            if (out >= 40) { printf "; ..."; exit }
        }' "$RESULTS/soak-mixed.csv"
}
orphaned=$(cat "$WORK"/baton-*.log 2>/dev/null | grep -c 'successor gone' || true)

{
    echo "<!-- soak:begin (written by bench/soak.sh --write) -->"
    echo "## Soak: hot restarts every ${EVERY} s under load and hostile clients"
    echo
    echo "\`bench/soak.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), baton $REV; load average"
    echo "at the end $(cut -d' ' -f1-3 /proc/loadavg). baton (CPU $PROXY_CPU) in front of \`baton-upstream\` (CPU $UPSTREAM_CPU)"
    echo "for ${elapsed} s, hot-restarted every ${EVERY} s: a new \`baton --hot-restart-file S --drain-time-s 120\`,"
    echo "SIGTERM to the old one once the new one took over, the two configs alternating"
    echo "(\`request_headers_timeout\` 5 s / 15 s, \`stream_idle_timeout\` 30 s / 45 s). At the same time:"
    echo
    echo "- **well-formed** (CPU ${LOAD_CPU:-any}): \`baton-mixed ${LOAD_ARGS[*]}\`, the restart-under-load"
    echo "  mix: 32 keep-alive clients \`GET /bytes/1024\` every 5 ms, 8 \`GET /delay/200..800\`, 4 uploading"
    echo "  256 KiB, 2 downloading $((DL_BYTES >> 20)) MiB at 4 MiB/s (each spans restarts), 20 one-request connections/s."
    echo "  Every request must succeed; nothing is retried."
    echo "- **hostile** (\`baton-hostile\`, CPU ${HOSTILE_CPU:-any}): \`${HOSTILE_ARGS[slowloris]}\` (heads at 1 byte/s, replaced"
    echo "  when answered or closed), \`${HOSTILE_ARGS[flood]}\` (connect, close), \`${HOSTILE_ARGS[noread]}\`"
    echo "  (64 pipelined requests, nothing read, closed after 5 s), \`${HOSTILE_ARGS[reset]}\` (a request, then RST)."
    [[ $SMOKE == 1 ]] && echo && echo "**Smoke run (${DURATION} s, $restarts restarts): not a measurement.**"
    echo
    echo "| well-formed | sent | ok | failed | reset | closed (of which idle) | timeout | non-2xx | wrong body | bad response | connect | reconnects | downloads ok / broken |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| baton-mixed | $(field sent) | $(field ok) | **${failed:-?}** | $(field reset) | $(field closed) ($(field closed_idle)) | $(field timeout) | $(field non2xx) | $(field wrong_body) | $(field bad_response) | $(field connect) | $(field reconnects) | $(field downloads_ok) / $(field downloads_broken) |"
    echo
    if [[ ${failed:-x} != 0 ]]; then
        echo "Failed well-formed requests by second of the run (kind; when, counted from the restart before):"
        echo "$(failures_by_second)."
        echo
    fi
    echo "Restarts: **$restarts** done$( ((restart_failed)) && echo ", **$restart_failed failed**"); at most $max_live baton processes alive at once"
    echo "(the serving one and draining ones). Draining processes that outlived their successor (logged"
    echo "\"successor gone; closing idle connections instead of moving them\"): $orphaned."
    echo
    echo "| hostile | connections | how they ended |"
    echo "|---|---:|---|"
    for k in "${HOSTILE_KINDS[@]}"; do
        rest=$(sed -n 's/^RESULT mode=[a-z]* seconds=[0-9.]* connections=[0-9]* *//p' "$WORK/hostile-$k.log" | head -1)
        echo "| $k | $(hfield "$k" connections) | ${rest:-closed at once} |"
    done
    echo
    echo "| serving process | start / median / max / end of the run | first minute → last minute (medians) | idle before → after the run |"
    echo "|---|---|---|---|"
    echo "| RSS (MiB) | $(stats 3 1024 %.1f) | $(growth 3 1024 %.1f) | $(awk -v a="$idle_rss" -v b="$settled_rss" 'BEGIN {printf "%.1f → %.1f", a / 1024, b / 1024}') |"
    echo "| open descriptors | $(stats 4 1 %d) | $(growth 4 1 %d) | $idle_fds → $settled_fds |"
    echo "| all live baton processes: RSS (MiB) | $(stats 6 1024 %.1f) | $(growth 6 1024 %.1f) | |"
    echo "| all live baton processes: descriptors | $(stats 7 1 %d) | $(growth 7 1 %d) | |"
    echo
    echo "Once every client has gone (2 s after the run), the serving process holds $settled_fds descriptors:"
    echo "$settled_up connections to the upstream (its keep-alive pool), $settled_down client connections, and its"
    echo "listeners, restart socket, epoll and log."
    echo
    echo "The serving process is a new one after every restart, so \"start\" and \"end\" are different"
    echo "processes; a leak would show as growth from one generation to the next (handed-over"
    echo "connections carry state) or in the draining ones piling up."
    echo
    echo "![RSS and open descriptors over time, restarts marked](soak.svg)"
    echo "<!-- soak:end -->"
} >"$WORK/section.md"
cat "$WORK/section.md"
cp "$WORK/section.md" "$RESULTS/soak.md"
svg=$([[ $WRITE == 1 ]] && echo docs/soak.svg || echo "$RESULTS/soak.svg")
if command -v python3 >/dev/null; then
    python3 bench/plot.py --soak "$RESULTS" "$svg"
fi
[[ $WRITE == 1 ]] && doc_section soak "$WORK/section.md"
if [[ ${failed:-x} != 0 ]]; then
    echo "soak: ${failed:-?} well-formed requests failed ($RESULT); per-second counts in $RESULTS/soak-mixed.csv, restarts in $events" >&2
    mkdir -p "$RESULTS/soak-logs"
    cp "$WORK"/baton-*.log "$WORK/mixed.log" "$RESULTS/soak-logs/" 2>/dev/null || true
    echo "soak: baton logs copied to $RESULTS/soak-logs/" >&2
    exit 1
fi
((restart_failed == 0)) || exit 1
exit 0
