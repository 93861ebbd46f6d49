#!/usr/bin/env bash
# Soak test of live capture: tcprace -i lo in a private network namespace for SOAK_SECS
# seconds while a client opens RATE new keep-alive connections per second against a local
# server; a share of them (REUSE_PCT %) is reused after the server's idle timeout (after_fin
# races). tcprace's RSS is sampled every 10 s into a CSV; its --metrics endpoint is scraped
# every SCRAPE_SECS seconds (latency and size into a CSV, as Prometheus would).
#
#   bench/soak.sh                         # 600 s, 50 connections/s
#   SOAK_SECS=60 RATE=100 bench/soak.sh
#
# Needs root (network namespace, capture). Writes bench/out/soak-*.{csv,jsonl,log} and prints
# duration, connections, requests, findings, RSS start/end/max and drops.
set -euo pipefail

cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-600}
RATE=${RATE:-50}
REUSE_PCT=${REUSE_PCT:-2}
IDLE=${IDLE:-1.0}
BUFFER_SIZE=${BUFFER_SIZE:-}   # tcprace --buffer-size (its default when empty)
SCRAPE_SECS=${SCRAPE_SECS:-15}
SCRAPES=bench/out/soak-scrapes.csv
LAST_SCRAPE=bench/out/soak-last-scrape.txt
OUT=bench/out
mkdir -p "$OUT"
CSV=$OUT/soak-rss.csv
JSONL=$OUT/soak.jsonl
LOG=$OUT/soak-stderr.log
CLIENT_LOG=$OUT/soak-client.json

if [ "$(id -u)" -ne 0 ]; then
    echo "soak.sh: needs root (network namespace and live capture)" >&2
    exit 2
fi

echo "building (release) ..." >&2
cargo build --release --bins -q
BIN=$PWD/target/release/tcprace

NS=tcprace-soak-$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    ip netns delete "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

# Keep-alive HTTP/1.1 server; closes a connection after IDLE s without a request (FIN), and
# the kernel answers a request on the closed socket with RST.
ip netns exec "$NS" python3 - "$IDLE" <<'EOF' &
import asyncio, sys
IDLE = float(sys.argv[1])
BODY = b"x" * 512
async def handle(r, w):
    try:
        while True:
            try:
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), IDLE)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError):
                break
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nKeep-Alive: timeout=%g\r\n\r\n"
                    % (len(BODY), IDLE) + BODY)
            await w.drain()
    except (ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        w.close()
async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 8080, backlog=1024)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOF
PIDS+=($!)
sleep 0.5

ip netns exec "$NS" "$BIN" -i lo -f "tcp port 8080" --format jsonl --stats-every 10 \
    --duration "$((SOAK_SECS + 3))" ${BUFFER_SIZE:+--buffer-size "$BUFFER_SIZE"} \
    --metrics 127.0.0.1:9464 >"$JSONL" 2>"$LOG" &
TPID=$!
PIDS+=("$TPID")
sleep 1

# Client: RATE new connections/s for SOAK_SECS, 1-3 requests each; REUSE_PCT % wait past the
# idle timeout and send one more request (a race), the rest close (half of them after the
# server's idle close).
ip netns exec "$NS" python3 - "$SOAK_SECS" "$RATE" "$REUSE_PCT" "$IDLE" >"$CLIENT_LOG" <<'EOF' &
import asyncio, json, random, sys, time
SECS, RATE, REUSE, IDLE = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
st = {"connections": 0, "requests": 0, "late_reuses": 0, "errors": 0}
async def req(r, w, path):
    w.write(b"GET /%s HTTP/1.1\r\nHost: soak\r\n\r\n" % path.encode())
    st["requests"] += 1
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    await r.readexactly(n)
async def conn(i):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", 8080)
        st["connections"] += 1
        for k in range(random.randint(1, 3)):
            await req(r, w, "c%d/r%d" % (i, k))
            await asyncio.sleep(random.uniform(0.01, 0.05))
        u = random.uniform(0, 100)
        if u < REUSE:
            await asyncio.sleep(IDLE + 0.5)
            st["late_reuses"] += 1
            try:
                await req(r, w, "c%d/late" % i)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
        elif u < 50:
            await asyncio.sleep(IDLE + 0.3)
        w.close()
    except Exception:
        st["errors"] += 1
async def main():
    t0 = time.monotonic(); i = 0; tasks = set()
    while time.monotonic() - t0 < SECS:
        i += 1
        t = asyncio.create_task(conn(i)); tasks.add(t); t.add_done_callback(tasks.discard)
        await asyncio.sleep(max(0.0, t0 + i / RATE - time.monotonic()))
    await asyncio.gather(*tasks)
asyncio.run(main())
print(json.dumps(st))
EOF
CPID=$!
PIDS+=("$CPID")

# Scraper: the metrics every SCRAPE_SECS s, as Prometheus would (seconds, bytes).
echo "elapsed_s,seconds,bytes" >"$SCRAPES"
(
    T0=$(date +%s)
    while kill -0 "$TPID" 2>/dev/null; do
        r=$(ip netns exec "$NS" curl -s -o "$LAST_SCRAPE.new" -w '%{time_total},%{size_download}' \
            http://127.0.0.1:9464/metrics) && mv "$LAST_SCRAPE.new" "$LAST_SCRAPE" \
            && echo "$(($(date +%s) - T0)),$r" >>"$SCRAPES"
        sleep "$SCRAPE_SECS"
    done
) &
PIDS+=($!)

# VmRSS includes the kernel's capture ring (mmapped, resident from the start); RssAnon is
# tcprace's own heap.
echo "elapsed_s,vmrss_kb,rssanon_kb" >"$CSV"
START=$(date +%s)
rss() { awk '/^VmRSS/ {v=$2} /^RssAnon/ {a=$2} END {if (v) print v "," a}' "/proc/$TPID/status" 2>/dev/null || true; }
while kill -0 "$TPID" 2>/dev/null; do
    r=$(rss)
    [ -n "$r" ] && echo "$(($(date +%s) - START)),$r" >>"$CSV"
    for _ in $(seq 1 10); do kill -0 "$TPID" 2>/dev/null || break; sleep 1; done
done
wait "$CPID" || true
set +e
wait "$TPID"
RC=$?
set -e
echo "tcprace exit code $RC (1 = findings)" >&2

python3 - "$JSONL" "$CSV" "$CLIENT_LOG" "$SCRAPES" "$LAST_SCRAPE" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
summ = [l for l in lines if l.get("record") == "summary"][-1]
finds = [l for l in lines if l.get("record") == "finding"]
rows = [l.split(",") for l in open(sys.argv[2]).read().split()[1:]]
rss = [int(r[1]) for r in rows]
anon = [int(r[2]) for r in rows]
client = json.load(open(sys.argv[3]))
s, c, t = summ["summary"], summ["capture"], summ["tcp"]
print("duration_s          %.0f" % s["duration_s"])
print("connections         %d (client opened %d, %d HTTP)" % (s["connections"], client["connections"], s["http_connections"]))
print("requests            %d (client sent %d)" % (s["requests"], client["requests"]))
print("findings            %d (client late reuses %d) by kind %s" % (s["findings"], client["late_reuses"], {k: v for k, v in s["by_kind"].items() if v}))
print("packets             %d" % s["packets"])
print("VmRSS kB start/end/max   %d / %d / %d (%d samples; includes the capture ring)" % (rss[0], rss[-1], max(rss), len(rss)))
print("RssAnon kB start/end/max %d / %d / %d (tcprace's heap)" % (anon[0], anon[-1], max(anon)))
print("kernel              received %d dropped %d if_dropped %d" % (c["received"], c["dropped"], c["if_dropped"]))
print("connections_evicted %d" % t.get("connections_evicted", 0))
print("client errors       %d" % client["errors"])
scrapes = [l.split(",") for l in open(sys.argv[4]).read().split()[1:]]
secs = sorted(float(r[1]) for r in scrapes)
if secs:
    print("scrapes             %d, latency median %.1f ms max %.1f ms, %d-%d bytes" % (
        len(secs), 1000 * secs[len(secs) // 2], 1000 * secs[-1],
        min(int(r[2]) for r in scrapes), max(int(r[2]) for r in scrapes)))
    last = {}
    for l in open(sys.argv[5]):
        if l.startswith("tcprace_") and " " in l:
            name, value = l.rsplit(" ", 1)
            last[name] = float(value)
    found = sum(v for k, v in last.items() if k.startswith("tcprace_findings_total"))
    print("last scrape         findings %d, kernel dropped %d, packets %d" % (
        found, last.get("tcprace_kernel_dropped_total", -1), last.get("tcprace_packets_total", -1)))
EOF
