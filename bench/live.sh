#!/usr/bin/env bash
# Live capture at line rate: the highest rate at which tcprace -i captures without a drop,
# side by side with `tcpdump -w /dev/null`, each in buffered and in immediate mode.
#
# A synthetic capture (examples/mkbench, Ethernet, HTTP/1.1 keep-alive with races) is
# replayed with tcpreplay into one end of a veth pair inside a network namespace of this
# script's own; the capturer listens on the other end. For each rate of RATES (packets/s) and
# each capturer, PACKETS packets are replayed; the kernel's drop counters and the packets
# captured are read back (tcprace's JSON report, tcpdump's closing lines). tcprace's findings
# at each rate are compared with those of the replayed packets analysed as a file.
#
#   bench/live.sh                              # RATES="50000 100000 150000 200000 300000 400000"
#   RATES="150000" PACKETS=300000 bench/live.sh
#   MODES="tcprace tcpdump" bench/live.sh      # buffered only
#
# Needs root. Installs tcpreplay with apt-get when missing. Writes bench/out/live-results.txt.
set -euo pipefail

cd "$(dirname "$0")/.."
RATES=${RATES:-"50000 100000 150000 200000 300000 400000"}
PACKETS=${PACKETS:-300000}
MODES=${MODES:-"tcprace tcprace-immediate tcpdump tcpdump-immediate"}
OUT=bench/out
mkdir -p "$OUT"
PCAP=$OUT/live.pcap
RESULTS=$OUT/live-results.txt

if [ "$(id -u)" -ne 0 ]; then
    echo "live.sh: needs root (network namespace, veth pair, live capture)" >&2
    exit 2
fi
command -v tcpreplay >/dev/null || apt-get install -y -qq tcpreplay >/dev/null
command -v tcpdump >/dev/null || apt-get install -y -qq tcpdump >/dev/null

echo "building (release) ..." >&2
cargo build --release --bins --examples -q
BIN=$PWD/target/release/tcprace
if [ ! -f "$PCAP" ]; then
    target/release/examples/mkbench "$PCAP" --connections 20000 --min-packets "$PACKETS" >&2
fi
# the packets replayed, as a file: the reference for the findings
REF=$OUT/live-ref.pcap
tcpdump -r "$PCAP" -c "$PACKETS" -w "$REF" 2>/dev/null
set +e
"$BIN" --format json --no-progress "$REF" >"$OUT/live-ref.json"
set -e
ref_findings=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["findings"])' "$OUT/live-ref.json")

NS=trl$$-live
CAPTURER=
cleanup() {
    if [ -n "$CAPTURER" ]; then kill "$CAPTURER" 2>/dev/null || true; fi
    ip netns delete "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns ip link add rp0 type veth peer name cap0
for l in rp0 cap0; do
    in_ns sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
    in_ns ip link set "$l" up
done

# One run: start the capturer on cap0, replay at $rate, stop it; prints
# "captured dropped if_dropped findings".
measure() {
    local mode=$1 rate=$2 log=$OUT/live-$1-$2
    case $mode in
        tcprace*)
            local imm=
            [ "$mode" = tcprace-immediate ] && imm=--immediate
            # not through in_ns: $! must be the capturer's own id (ip netns exec execs it)
            ip netns exec "$NS" "$BIN" -i cap0 $imm --format json >"$log.json" 2>"$log.err" &
            CAPTURER=$!
            ;;
        tcpdump*)
            local imm=
            [ "$mode" = tcpdump-immediate ] && imm=--immediate-mode
            ip netns exec "$NS" tcpdump -i cap0 -n $imm -w /dev/null 2>"$log.err" &
            CAPTURER=$!
            ;;
    esac
    # wait until it listens
    for _ in $(seq 100); do
        grep -q "listening on" "$log.err" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.3
    in_ns tcpreplay -q -i rp0 --pps="$rate" --limit="$PACKETS" --preload-pcap "$PCAP" \
        >"$log.replay" 2>&1
    sleep 1
    kill -TERM "$CAPTURER"
    wait "$CAPTURER" || true
    CAPTURER=
    case $mode in
        tcprace*)
            python3 - "$log.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["capture"]
print(c["captured"], c["dropped"], c["if_dropped"], r["summary"]["findings"])
EOF
            ;;
        tcpdump*)
            local cap drop ifd
            cap=$(awk '/packets captured/ {print $1}' "$log.err")
            drop=$(awk '/packets dropped by kernel/ {print $1}' "$log.err")
            ifd=$(awk '/packets dropped by interface/ {print $1}' "$log.err")
            echo "${cap:-?} ${drop:-?} ${ifd:-0} -"
            ;;
    esac
}

# The rate tcpreplay achieved ("Rated: ... NNN pps").
achieved() { sed -n 's/.*Rated:.*, \([0-9.]*\) pps.*/\1/p' "$OUT/live-$1-$2.replay" | head -1; }

{
    echo "# live capture, $PACKETS packets per run replayed through a veth pair ($(nproc) cores)"
    echo "# reference: the replayed packets analysed as a file: $ref_findings findings"
    printf "%-18s %9s %9s %9s %9s %10s %9s\n" capturer rate achieved captured dropped if_dropped findings
} | tee "$RESULTS"
declare -A best
for mode in $MODES; do
    best[$mode]=0
    clean=1
    for rate in $RATES; do
        read -r captured dropped ifd findings < <(measure "$mode" "$rate")
        ach=$(achieved "$mode" "$rate")
        printf "%-18s %9s %9s %9s %9s %10s %9s\n" "$mode" "$rate" "$ach" \
            "$captured" "$dropped" "$ifd" "$findings" | tee -a "$RESULTS"
        if [ "$clean" = 1 ] && [ "$dropped" = 0 ] && [ "$ifd" = 0 ] && [ "$captured" = "$PACKETS" ]; then
            # tcpreplay may not reach the rate asked for: what it reached counts
            best[$mode]=$(python3 -c 'import sys; print(round(max(float(a) for a in sys.argv[1:])))' \
                "${best[$mode]}" "${ach:-0}")
        else
            clean=0
        fi
    done
done
{
    echo "# highest rate tcpreplay reached with every packet captured and no drop at it or below:"
    for mode in $MODES; do printf "#   %-18s %s packets/s\n" "$mode" "${best[$mode]}"; done
} | tee -a "$RESULTS"
