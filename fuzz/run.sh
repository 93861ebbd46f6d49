#!/usr/bin/env bash
# Run every fuzz target for a bounded time: fuzz/run.sh SECONDS [TARGET...]
#
# Needs cargo-fuzz and a nightly toolchain (cargo +nightly); with FUZZ_STABLE=1 the stable
# toolchain is used with RUSTC_BOOTSTRAP=1 instead (it accepts the nightly-only flags
# cargo-fuzz passes). Without either it says so and exits 0: callers (.ci/run, bench/fuzz.sh)
# treat that as skipped.
#
# The seed corpus is made from the fixtures (examples/mkseeds.rs) into fuzz/corpus/TARGET/,
# which libFuzzer then grows. A crash, a leak or a timeout (10 s per input) fails the run and
# leaves its input in fuzz/artifacts/TARGET/. Prints one line per target: seconds run,
# executions, corpus entries, and what was found.
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(capture decode streams h2)

if cargo +nightly --version >/dev/null 2>&1; then
    CARGO=(cargo +nightly)
elif [ "${FUZZ_STABLE:-0}" = 1 ]; then
    export RUSTC_BOOTSTRAP=1
    CARGO=(cargo)
else
    echo "fuzz: SKIPPED: no nightly toolchain (cargo +nightly); FUZZ_STABLE=1 tries the stable one with RUSTC_BOOTSTRAP=1" >&2
    exit 0
fi
if ! "${CARGO[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz ..." >&2
    cargo install --locked cargo-fuzz >&2 || { echo "fuzz: SKIPPED: cannot install cargo-fuzz" >&2; exit 0; }
fi

cargo run --quiet --example mkseeds --features fuzzing >&2 || exit 1
"${CARGO[@]}" fuzz build --release >&2 || exit 1

failed=0
for t in "${TARGETS[@]}"; do
    log=$(mktemp)
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    start=$(date +%s)
    "${CARGO[@]}" fuzz run --release "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -max_len=1048576 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    [ -z "$execs" ] && execs=$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        found="nothing"
    else
        found="FAILED (exit $rc): $(grep -m1 -E 'ERROR|panicked|deadly signal|timeout|leak' "$log")"
        failed=1
        tail -n 40 "$log" >&2
    fi
    echo "fuzz $t: ${took} s, ${execs:-?} executions, ${corpus} corpus entries, found: $found"
    rm -f "$log"
done
exit $failed
