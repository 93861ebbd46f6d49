#!/usr/bin/env bash
# Throughput benchmark: tcprace vs. tcpdump on a synthetic capture of >= 1M packets.
#
#   bench/run.sh            # generates bench/out/bench.pcap if missing, 3 runs each (best-of)
#   RUNS=5 bench/run.sh
#   BENCH_FILE=/path/other.pcap bench/run.sh
#   TLS=1 bench/run.sh      # the same traffic as TLS 1.3 without keys (bench/out/bench-tls.pcap)
#
# Prints packets, tcprace seconds, packets/s, tcpdump seconds, ratio and tcprace's peak RSS,
# and writes the same lines to bench/out/results.txt.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=bench/out
if [ "${TLS:-0}" = 1 ]; then
    FILE=${BENCH_FILE:-$OUT/bench-tls.pcap}
    MKBENCH_ARGS=(--tls)
else
    FILE=${BENCH_FILE:-$OUT/bench.pcap}
    MKBENCH_ARGS=()
fi
RUNS=${RUNS:-3}
mkdir -p "$OUT"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need_pkg() { # need_pkg EXECUTABLE PACKAGE
    if [ ! -x "$1" ] && ! command -v "$1" >/dev/null 2>&1; then
        echo "installing $2 ..." >&2
        as_root apt-get update -qq && as_root apt-get install -y -qq "$2" >/dev/null
    fi
}
need_pkg /usr/bin/time time
need_pkg tcpdump tcpdump

echo "building (release) ..." >&2
cargo build --release --examples --bins

if [ ! -s "$FILE" ]; then
    echo "generating $FILE ..." >&2
    target/release/examples/mkbench "$FILE" "${MKBENCH_ARGS[@]}"
fi

if [ -s "$FILE.meta" ]; then
    PACKETS=$(sed -n 's/^packets=//p' "$FILE.meta")
else
    PACKETS=$(tcpdump -nr "$FILE" 2>/dev/null | wc -l)
fi

TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT

# best_of NAME OK_EXIT_CODES CMD...: runs CMD $RUNS times under /usr/bin/time; sets
# BEST_S (fastest wall time, seconds) and PEAK_KB (largest max RSS, KiB). Stdout -> /dev/null.
best_of() {
    local name=$1 ok=$2
    shift 2
    BEST_S=""
    PEAK_KB=0
    for i in $(seq "$RUNS"); do
        local rc=0
        /usr/bin/time -f '%e %M' -o "$TIMES" "$@" >/dev/null || rc=$?
        if [[ " $ok " != *" $rc "* ]]; then
            echo "$name: run $i exited with $rc (expected one of: $ok)" >&2
            return 1
        fi
        read -r s kb < <(tail -n 1 "$TIMES") # time prepends a line when the exit code is not 0
        echo "$name run $i: ${s}s, ${kb} KiB" >&2
        if [ -z "$BEST_S" ] || awk -v a="$s" -v b="$BEST_S" 'BEGIN{exit !(a<b)}'; then BEST_S=$s; fi
        if [ "$kb" -gt "$PEAK_KB" ]; then PEAK_KB=$kb; fi
    done
}

TCPRACE=target/release/tcprace
TR_S=n/a TR_PPS=n/a TR_MB=n/a RATIO=n/a
# Exit code 1 = findings present (the bench file has races); 0 = no findings.
if [ -x "$TCPRACE" ] && best_of tcprace "0 1" "$TCPRACE" --format json "$FILE"; then
    TR_S=$BEST_S
    TR_MB=$(awk -v k="$PEAK_KB" 'BEGIN{printf "%.1f", k/1024}')
    TR_PPS=$(awk -v p="$PACKETS" -v s="$TR_S" 'BEGIN{ if (s>0) printf "%.0f", p/s; else print "inf" }')
else
    echo "tcprace timing unavailable" >&2
fi

best_of tcpdump "0" tcpdump -r "$FILE" -w /dev/null
TD_S=$BEST_S
if [ "$TR_S" != n/a ]; then
    RATIO=$(awk -v a="$TR_S" -v b="$TD_S" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "inf" }')
fi

{
    echo "file:                    $FILE"
    echo "packets:                 $PACKETS"
    echo "tcprace seconds:         $TR_S"
    echo "tcprace packets/s:       $TR_PPS"
    echo "tcpdump seconds:         $TD_S"
    echo "ratio tcprace/tcpdump:   $RATIO"
    echo "tcprace peak RSS MB:     $TR_MB"
    echo "runs (best-of):          $RUNS"
} | tee "$OUT/results.txt"
