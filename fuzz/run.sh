#!/usr/bin/env bash
# Runs every fuzz target one after another for FUZZ_SECONDS each and prints, per target, the
# executions, final coverage, corpus size and crashes. Exits non-zero if any target crashed.
#
#   FUZZ_SECONDS=600 fuzz/run.sh            # all targets, 10 minutes each
#   FUZZ_TARGETS="chunked config" fuzz/run.sh
#
# Environment: FUZZ_SECONDS (default 600), FUZZ_TARGETS (default: all), FUZZ_JOBS (default 1;
# libFuzzer -fork workers, keep at 1 on a shared machine), FUZZ_LOG_DIR (default /tmp; logs are
# fuzz-<target>.log). New inputs go to fuzz/corpus-raw/<target> (not committed); the committed
# seeds in fuzz/corpus/<target> and fuzz/regressions/<target> are read, never written.
# Crashing inputs land in fuzz/artifacts/<target>/. Needs the nightly toolchain.
set -euo pipefail

cd "$(dirname "$0")"
SECONDS_PER=${FUZZ_SECONDS:-600}
JOBS=${FUZZ_JOBS:-1}
LOG_DIR=${FUZZ_LOG_DIR:-/tmp}
TARGETS=${FUZZ_TARGETS:-"request_head response_head chunked restart_frame config exchange tcp proxy proxy_protocol h2_wire h2_client h2_server grpc_call"}

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Debug assertions on: integer overflow in a parser is a finding, not a wrap-around.
cargo +nightly fuzz build --debug-assertions

failed=0
summary=()
for t in $TARGETS; do
    mkdir -p "corpus-raw/$t" "corpus/$t" "regressions/$t" "artifacts/$t"
    log="$LOG_DIR/fuzz-$t.log"
    before=$(find "artifacts/$t" -type f | wc -l)
    start=$(date +%s)
    fork=()
    if [ "$JOBS" -gt 1 ]; then fork=(-fork="$JOBS"); fi
    echo "== $t: ${SECONDS_PER}s, log $log" >&2
    rc=0
    # tcp runs the exchange target's scripts: its seeds are those.
    seeds=()
    if [ "$t" = tcp ]; then seeds=(corpus/exchange regressions/exchange); fi
    cargo +nightly fuzz run --debug-assertions "$t" "corpus-raw/$t" "corpus/$t" "regressions/$t" "${seeds[@]}" \
        -- -max_total_time="$SECONDS_PER" -print_final_stats=1 "${fork[@]}" >"$log" 2>&1 || rc=$?
    wall=$(($(date +%s) - start))
    after=$(find "artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="?(rc=$rc)"; fi
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
    last=$(grep -E 'cov: [0-9]+' "$log" | tail -1 || true)
    cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || true)
    corp=$(echo "$last" | grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' | cut -d' ' -f2 || true)
    line="$t: execs=${execs:-?} cov=${cov:-?} corpus=${corp:-?} wall=${wall}s crashes=$crashes"
    echo "$line"
    summary+=("$line")
    if [ "$rc" -ne 0 ] || [ "$after" -ne "$before" ]; then
        failed=1
        echo "   crash input(s): $(find "artifacts/$t" -type f -newermt "@$start" | tr '\n' ' ')"
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
