#!/usr/bin/env bash
# Throughput and scale benchmark: tcprace against the read floor (a bare libpcap read loop,
# bench/readloop.c) and tcpdump, on synthetic captures of >= 1M packets; thread scaling; memory
# with 500,000 open connections; JSON Lines memory.
#
#   bench/run.sh                 # RUNS=5 (paired runs); CALLGRIND=0 skips the instruction counts
#   THREADS="1 2 4 8 16" bench/run.sh
#   OPEN=500000 bench/run.sh     # connections in the open-connections run
#   TLS=1 bench/run.sh           # also the many-pair traffic as TLS 1.3 without keys
#   ONLY_OPEN=1 bench/run.sh     # only the open-connections and JSON Lines runs
#   ONLY_MODEL=1 bench/run.sh    # only the thread model (MODEL_THREADS="1 2 4 8 16")
#   BENCH_FILE=x.pcap bench/run.sh  # only this capture (BENCH_SMALL=y.pcap for callgrind)
#   BUILD=0 bench/run.sh         # the binaries as they are
#
# Captures (generated once into bench/out/ by examples/mkbench.rs):
#   bench.pcap          the many-pair capture (250 clients, 24 servers)
#   onepair.pcap        one proxy address to one upstream address (--one-pair)
#   open.pcap           OPEN connections left open (--open)
#   bench-tls.pcap      with TLS=1: bench.pcap's traffic as TLS 1.3 without keys (--tls)
#
# Prints (and writes to bench/out/results.txt), per capture: packets; wall seconds (median of
# RUNS paired runs: readloop, tcpdump -r F -w /dev/null, tcprace --threads 1, tcprace at each
# of THREADS, in turn); packets/s; the median of the per-run ratios tcprace/readloop and
# tcprace/tcpdump; user+system cpu; peak RSS; instructions per packet under callgrind
# (repeatable on a noisy machine, unlike wall times; counted on the same traffic with
# SMALL_CONNECTIONS connections, default 10,000, as callgrind runs ~50x slower); whether the report is byte-identical for
# every thread count. For the one-pair capture, the thread model: the instructions of each
# thread for each of MODEL_THREADS (the speed-up the busiest thread allows with enough cores).
# Then the open-connections run and JSON Lines against JSON.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=bench/out
RUNS=${RUNS:-5}
CALLGRIND=${CALLGRIND:-1}
OPEN=${OPEN:-500000}
CORES=$(nproc)
THREADS=${THREADS:-"1 2 4"}
MODEL_THREADS=${MODEL_THREADS:-"1 2 4 8 16"}
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
need_pkg cc gcc
[ -f /usr/include/pcap/pcap.h ] || need_pkg /usr/include/pcap/pcap.h libpcap-dev
if [ "$CALLGRIND" = 1 ]; then need_pkg valgrind valgrind; fi

if [ "${BUILD:-1}" = 1 ]; then
    echo "building (release) ..." >&2
    cargo build --release --examples --bins >&2
fi
cc -O2 -o "$OUT/readloop" bench/readloop.c -lpcap
TCPRACE=target/release/tcprace
MKBENCH=target/release/examples/mkbench

gen() { # gen FILE ARGS...: generate once
    local f=$1
    shift
    if [ ! -s "$f" ]; then
        echo "generating $f ..." >&2
        "$MKBENCH" "$f" "$@" >/dev/null
    fi
}
gen "$OUT/bench.pcap"
gen "$OUT/onepair.pcap" --one-pair
gen "$OUT/open.pcap" --open "$OPEN"

TIMES=$(mktemp)
trap 'rm -f "$TIMES"' EXIT

# timed NAME CMD...: one run under /usr/bin/time; sets WALL, CPU (user+sys) and KB (max RSS).
# Exit codes 0 and 1 (findings) are fine.
timed() {
    local name=$1 rc=0
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$TIMES" "$@" >/dev/null 2>"$OUT/$name.stderr" || rc=$?
    if [ "$rc" -gt 1 ]; then
        echo "$name exited with $rc:" >&2
        cat "$OUT/$name.stderr" >&2
        exit 1
    fi
    read -r WALL u s KB < <(tail -n 1 "$TIMES")
    CPU=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')
}

median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# instructions COMMAND...: instructions executed (all threads), under callgrind
instructions() {
    { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null || true; } |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' | tail -n 1
}

report() { echo "$*" | tee -a "$OUT/results.txt"; }
: >"$OUT/results.txt"
report "tcprace benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $CORES cores, $RUNS paired runs"

bench_capture() { # bench_capture FILE LABEL SMALL: SMALL (the same traffic, fewer connections) for callgrind
    local file=$1 label=$2 small=$3
    local packets
    packets=$("$OUT/readloop" "$file" | cut -d' ' -f1)
    declare -A wall cpu kb
    local names=(readloop tcpdump)
    for t in $THREADS; do names+=("t$t"); done
    for n in "${names[@]}"; do wall[$n]=""; cpu[$n]=""; kb[$n]=0; done
    local r_floor="" r_dump="" c_floor="" c_dump=""
    for i in $(seq "$RUNS"); do
        timed readloop "$OUT/readloop" "$file"
        local floor=$WALL floor_cpu=$CPU
        wall[readloop]+="$WALL "; cpu[readloop]+="$CPU "; kb[readloop]=$KB
        timed tcpdump tcpdump -r "$file" -w /dev/null
        local dump=$WALL dump_cpu=$CPU
        wall[tcpdump]+="$WALL "; cpu[tcpdump]+="$CPU "; kb[tcpdump]=$KB
        for t in $THREADS; do
            timed "t$t" "$TCPRACE" --threads "$t" --no-progress --format json "$file"
            wall[t$t]+="$WALL "; cpu[t$t]+="$CPU "
            [ "$KB" -gt "${kb[t$t]}" ] && kb[t$t]=$KB
            if [ "$t" = "$(echo $THREADS | cut -d' ' -f1)" ]; then
                r_floor+="$(awk -v a="$WALL" -v b="$floor" 'BEGIN{printf "%.3f", a/b}') "
                r_dump+="$(awk -v a="$WALL" -v b="$dump" 'BEGIN{printf "%.3f", a/b}') "
                c_floor+="$(awk -v a="$CPU" -v b="$floor_cpu" 'BEGIN{printf "%.3f", a/b}') "
                c_dump+="$(awk -v a="$CPU" -v b="$dump_cpu" 'BEGIN{printf "%.3f", a/b}') "
            fi
        done
    done
    report ""
    report "== $label: $file, $packets packets"
    report "$(printf '%-22s %9s %9s %12s %9s' '' 'wall s' 'cpu s' 'packets/s' 'RSS MB')"
    local base=""
    for n in "${names[@]}"; do
        local w c p
        w=$(echo "${wall[$n]}" | tr ' ' '\n' | grep . | median)
        c=$(echo "${cpu[$n]}" | tr ' ' '\n' | grep . | median)
        p=$(awk -v n="$packets" -v s="$w" 'BEGIN{ if (s>0) printf "%.0f", n/s; else print "inf" }')
        local what=$n
        case $n in
            tcpdump) what="tcpdump -r -w /dev/null" ;;
            t*) what="tcprace --threads ${n#t}" ;;
        esac
        report "$(printf '%-22s %9s %9s %12s %9.1f' "$what" "$w" "$c" "$p" "$(awk -v k="${kb[$n]}" 'BEGIN{print k/1024}')")"
        case $n in t[0-9]*) [ -z "$base" ] && base=$w ;; esac
    done
    report "tcprace (first of THREADS) / readloop, median of per-run ratios: $(echo "$r_floor" | tr ' ' '\n' | grep . | median)"
    report "tcprace (first of THREADS) / tcpdump, median of per-run ratios:  $(echo "$r_dump" | tr ' ' '\n' | grep . | median)"
    report "cpu (user+sys), median of per-run ratios: tcprace / readloop $(echo "$c_floor" | tr ' ' '\n' | grep . | median), tcprace / tcpdump $(echo "$c_dump" | tr ' ' '\n' | grep . | median)"
    for n in readloop tcpdump t$(echo $THREADS | cut -d' ' -f1); do
        c=$(echo "${cpu[$n]}" | tr ' ' '\n' | grep . | median)
        report "cpu per packet, $n: $(awk -v c="$c" -v n="$packets" 'BEGIN{printf "%.3f", c*1e6/n}') us"
    done
    report "thread scaling (wall, median): $(for t in $THREADS; do
        w=$(echo "${wall[t$t]}" | tr ' ' '\n' | grep . | median)
        printf '%s: %ss (x%s)  ' "$t" "$w" "$(awk -v a="$base" -v b="$w" 'BEGIN{printf "%.2f", a/b}')"
    done)"
    # the same report for every thread count
    local sums=""
    for t in $THREADS; do
        sums+="$({ "$TCPRACE" --threads "$t" --no-progress --format json "$file" 2>/dev/null || true; } | md5sum | cut -c1-12) "
    done
    if [ "$(echo "$sums" | tr ' ' '\n' | grep . | sort -u | wc -l)" = 1 ]; then
        report "report identical for threads $THREADS: yes ($sums)"
    else
        report "report identical for threads $THREADS: NO ($sums)"
    fi
    if [ "$CALLGRIND" = 1 ]; then
        local i_floor i_dump
        packets=$("$OUT/readloop" "$small" | cut -d' ' -f1)
        i_floor=$(instructions "$OUT/readloop" "$small")
        i_dump=$(instructions tcpdump -r "$small" -w /dev/null)
        local line="instructions/packet (callgrind, $small: $packets packets): readloop $((i_floor / packets)), tcpdump $((i_dump / packets))"
        for t in 1 2; do
            local i
            i=$(instructions "$TCPRACE" --threads "$t" --no-progress --format json "$small")
            line+=", tcprace --threads $t $((i / packets)) ($(awk -v a="$i" -v b="$i_floor" 'BEGIN{printf "%.2f", a/b}')x readloop, $(awk -v a="$i" -v b="$i_dump" 'BEGIN{printf "%.2f", a/b}')x tcpdump)"
        done
        report "$line"
    fi
}

# thread_model SMALL: instructions per thread under callgrind (--separate-threads) for each of
# MODEL_THREADS: the work of each thread, whatever the cores of this machine. With as many cores
# as threads the busiest thread bounds the wall time: the bound on the speed-up over --threads 1
# is the busiest thread's instructions with --threads 1 (the driver's; the reader thread runs
# beside it) over those with N (a model, not a timing: it leaves out memory traffic between
# cores and the waits on channels).
thread_model() {
    local small=$1 packets floor dir one="" each=""
    packets=$("$OUT/readloop" "$small" | cut -d' ' -f1)
    floor=$(instructions "$OUT/readloop" "$small")
    dir=$(mktemp -d)
    report ""
    report "== thread model: callgrind per thread, $small, $packets packets (instructions per packet; not timed)"
    report "$(printf '%-8s %10s %16s %-12s %14s %16s' threads 'in all' 'busiest thread' '(which)' 'speed-up bound' 'busiest/readloop')"
    for t in $MODEL_THREADS; do
        rm -f "$dir"/cg*
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/cg" \
            "$TCPRACE" --threads "$t" --no-progress --format json "$small" >/dev/null 2>&1 || true
        local all max which
        read -r all max which < <(for f in "$dir"/cg-*; do sed -n 's/^totals: *//p' "$f" | head -n 1; done |
            awk '{s+=$1; if ($1>m) {m=$1; w=NR}} END{printf "%d %d %d\n", s, m, w}')
        [ -z "$one" ] && one=$max
        local name="driver"
        [ "$which" != 1 ] && name="thread $which"
        report "$(printf '%-8s %10d %16d %-12s %13.2fx %15.2fx' "$t" $((all / packets)) $((max / packets)) "($name)" \
            "$(awk -v a="$one" -v b="$max" 'BEGIN{print a/b}')" "$(awk -v a="$max" -v b="$floor" 'BEGIN{print a/b}')")"
        each="$each
$(printf '%-8s' "$t")$(for f in "$dir"/cg-*; do sed -n 's/^totals: *//p' "$f" | head -n 1; done |
            awk -v p="$packets" '{printf " %d", $1 / p}')"
    done
    report "(read loop: $((floor / packets)) instructions per packet)"
    report "each thread, in the order they start (the driver; the analysis threads; from 4 threads the front's; the reader):$each"
    rm -rf "$dir"
}

SMALL="--connections ${SMALL_CONNECTIONS:-10000} --min-packets 0"
# shellcheck disable=SC2086
gen "$OUT/bench-small.pcap" $SMALL
# shellcheck disable=SC2086
gen "$OUT/onepair-small.pcap" --one-pair $SMALL
if [ -n "${ONLY_MODEL:-}" ]; then
    thread_model "$OUT/onepair-small.pcap"
    exit 0
fi
if [ -n "${BENCH_FILE:-}" ]; then
    # one capture of your own (BENCH_SMALL: a smaller one for callgrind, else the same)
    bench_capture "$BENCH_FILE" "$BENCH_FILE" "${BENCH_SMALL:-$BENCH_FILE}"
    exit 0
fi
if [ -z "${ONLY_OPEN:-}" ]; then
    bench_capture "$OUT/bench.pcap" "many IP pairs" "$OUT/bench-small.pcap"
    bench_capture "$OUT/onepair.pcap" "one IP pair (proxy to upstream)" "$OUT/onepair-small.pcap"
    if [ "$CALLGRIND" = 1 ]; then thread_model "$OUT/onepair-small.pcap"; fi
    if [ "${TLS:-0}" = 1 ]; then
        gen "$OUT/bench-tls.pcap" --tls
        # shellcheck disable=SC2086
        gen "$OUT/bench-tls-small.pcap" --tls $SMALL
        bench_capture "$OUT/bench-tls.pcap" "many IP pairs, TLS 1.3 without keys" "$OUT/bench-tls-small.pcap"
    fi
fi

# memory: connections left open
report ""
report "== $OPEN open connections: $OUT/open.pcap"
timed open "$TCPRACE" --no-progress --format json "$OUT/open.pcap"
open_kb=$KB
open_cpu=$CPU
gen "$OUT/open-small.pcap" --open 1000
timed open-small "$TCPRACE" --no-progress --format json "$OUT/open-small.pcap"
report "peak RSS $(awk -v k="$open_kb" 'BEGIN{printf "%.1f", k/1024}') MB (1,000 open: $(awk -v k="$KB" 'BEGIN{printf "%.1f", k/1024}') MB), cpu $open_cpu s: $(awk -v a="$open_kb" -v b="$KB" -v n="$OPEN" 'BEGIN{printf "%.0f", (a-b)*1024/(n-1000)}') bytes per open connection"

# JSON Lines against JSON: memory independent of the findings
report ""
report "== JSON Lines against JSON, $OUT/bench.pcap"
for f in json jsonl; do
    timed "$f" "$TCPRACE" --threads 1 --no-progress --format "$f" "$OUT/bench.pcap"
    report "--format $f: peak RSS $(awk -v k="$KB" 'BEGIN{printf "%.1f", k/1024}') MB, cpu $CPU s"
done
