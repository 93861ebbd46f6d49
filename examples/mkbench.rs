//! Writes a large synthetic capture for benchmarking:
//!
//! ```text
//! cargo run --release --example mkbench -- OUT.pcap [--connections N] [--min-packets M] [--seed S]
//!     [--tls] [--one-pair] [--open N]
//! ```
//!
//! About 100,000 short keep-alive connections (1-5 requests each) between 250 clients and 24
//! servers, starting at ~2,000 connections/s so that a few thousand are open at any time. About
//! 3 % end in a crossed FIN/request race, 1 % in a request sent after the FIN was acknowledged
//! (after_fin); the rest close normally (client- or server-initiated). Packets are streamed to
//! the writer through a time-ordered heap that only holds the connections still open, so memory
//! stays bounded. Deterministic for a given seed. Also writes `OUT.pcap.meta` (key=value lines).
//!
//! `--tls`: every connection is TLS 1.3 as the wire shows it without keys: a ClientHello, the
//! server's ServerHello, ChangeCipherSpec and encrypted handshake, the client's Finished, then
//! each request and response sealed in opaque application_data records (16 KB at most, 17
//! bytes of overhead each: the inner type and a 16-byte tag).
//!
//! `--one-pair`: a proxy capture: every connection from one proxy address (192.0.2.1, ports
//! 32768-60999 in turn) to one upstream (198.51.100.1:8080).
//!
//! `--open N`: instead, N connections that stay open: each a handshake and one answered
//! request, then idle to the end of the capture (20,000 new connections a second, from as many
//! client addresses as their ports need), for the memory an open idle connection costs.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tcprace::synth::{
    ConvConfig, Conversation, Link, Packet, PcapOptions, PcapWriter, Side, Vantage, after_ms,
};
use tcprace::time::Timestamp;

/// 2026-01-01T00:00:00Z.
const BASE_SECS: i64 = 1_767_225_600;
const CONN_RATE_PER_S: f64 = 2000.0;
const N_CLIENTS: u32 = 250;

/// splitmix64: small, deterministic, good enough for traffic shapes.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

struct Server {
    addr: SocketAddr,
    host: String,
}

fn servers() -> Vec<Server> {
    let mut v = Vec::new();
    for i in 1..=16u8 {
        v.push(Server {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 8080),
            host: format!("svc{i}.example.com"),
        });
    }
    for i in 1..=8u8 {
        v.push(Server {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)), 80),
            host: format!("web{i}.example.net"),
        });
    }
    v
}

const TARGETS: &[&str] = &[
    "/",
    "/api/v1/users",
    "/api/v1/orders",
    "/api/v1/items?page=2",
    "/static/app.js",
    "/static/style.css",
    "/healthz",
    "/search?q=tcp",
    "/img/logo.png",
    "/api/v1/cart",
];

fn request(rng: &mut Rng, host: &str) -> Vec<u8> {
    let target = rng.pick(TARGETS);
    if rng.below(10) == 0 {
        let body = format!(
            "{{\"id\":{},\"qty\":{}}}",
            rng.below(100_000),
            rng.range(1, 9)
        );
        format!(
            "POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mkbench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    } else {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mkbench\r\nAccept: */*\r\n\r\n"
        )
        .into_bytes()
    }
}

fn response(rng: &mut Rng, body: &[u8], close: bool) -> Vec<u8> {
    let r = rng.below(100);
    let len = if r < 75 {
        rng.range(20, 600)
    } else if r < 97 {
        rng.range(600, 3000)
    } else {
        rng.range(3000, 8000)
    } as usize;
    let conn = if close {
        "Connection: close\r\n"
    } else {
        "Connection: keep-alive\r\nKeep-Alive: timeout=2\r\n"
    };
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n{conn}\r\n"
    )
    .into_bytes();
    v.extend_from_slice(&body[..len]);
    v
}

/// A record header and body: `body` as the opaque content of type `ctype`.
fn record(ctype: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ctype, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// `plain` as TLS 1.3 application_data records (its bytes stand for the ciphertext).
fn seal(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + 64);
    for chunk in plain.chunks(1 << 14) {
        let mut body = chunk.to_vec();
        body.extend_from_slice(&[0x17; 17]);
        out.extend_from_slice(&record(23, &body));
    }
    out
}

/// A handshake record holding one message.
fn handshake_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![ty, 0];
    msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
    msg.extend_from_slice(body);
    record(22, &msg)
}

/// The TLS 1.3 handshake after the TCP handshake at `t`; returns when the client may send.
fn tls_handshake(c: &mut Conversation, rng: &mut Rng, t: Timestamp, d_ms: f64) -> Timestamp {
    let mut hello = vec![3, 3];
    hello.extend((0..32).map(|_| rng.next_u64() as u8));
    // no session id; TLS_AES_128_GCM_SHA256; no compression; supported_versions: TLS 1.3
    hello.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0, 0, 7, 0, 43, 0, 3, 2, 3, 4]);
    c.send(Side::Client, t, &handshake_msg(1, &hello));
    let mut sh = vec![3, 3];
    sh.extend((0..32).map(|_| rng.next_u64() as u8));
    sh.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
    let st = after_ms(t, d_ms + 0.3);
    let flight = [
        handshake_msg(2, &sh),
        record(20, &[1]),
        record(23, &[0x42; 2400]),
    ]
    .concat();
    c.send(Side::Server, st, &flight);
    let ft = after_ms(st, d_ms + 0.1);
    c.send(
        Side::Client,
        ft,
        &[record(20, &[1]), record(23, &[0x42; 53])].concat(),
    );
    ft
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    ClientClose,
    ServerIdleClose,
    CrossedFin,
    AfterFin,
}

#[derive(Default)]
struct Stats {
    connections: u64,
    requests: u64,
    crossed_fin: u64,
    after_fin: u64,
    max_open_packets: usize,
}

/// What connections carry: the bytes response bodies are cut from, and whether it is TLS.
#[derive(Clone, Copy)]
struct Payload<'a> {
    body: &'a [u8],
    tls: bool,
}

/// Simulate one connection starting at `start`.
fn connection(
    rng: &mut Rng,
    id: u32,
    start: Timestamp,
    client: SocketAddr,
    server: &Server,
    payload: Payload<'_>,
    stats: &mut Stats,
) -> Vec<Packet> {
    let Payload { body, tls } = payload;
    let wrap = |plain: Vec<u8>| if tls { seal(&plain) } else { plain };
    let d_ms = *rng.pick(&[0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
    let vantage = if rng.below(5) == 0 {
        Vantage::Middle
    } else {
        Vantage::Client
    };
    let cfg = ConvConfig::new(client, server.addr)
        .id(id)
        .isn(rng.next_u64() as u32, rng.next_u64() as u32)
        .delay(Duration::from_secs_f64(d_ms / 1000.0))
        .vantage(vantage);
    let mut c = Conversation::new(cfg);
    let r = rng.below(100);
    let fate = match r {
        0..=2 => Fate::CrossedFin,
        3 => Fate::AfterFin,
        4..=54 => Fate::ClientClose,
        _ => Fate::ServerIdleClose,
    };
    let n_req = rng.range(1, 5);
    let mut t = c.handshake(start);
    if tls {
        t = tls_handshake(&mut c, rng, t, d_ms);
    }
    let mut last_resp = t;
    for _ in 0..n_req {
        let req = wrap(request(rng, &server.host));
        c.send(Side::Client, t, &req);
        let resp_t = after_ms(t, d_ms + 0.1 + rng.exp(2.0));
        c.send(Side::Server, resp_t, &wrap(response(rng, body, false)));
        let done = after_ms(resp_t, d_ms);
        c.ack(Side::Client, done);
        last_resp = resp_t;
        t = after_ms(done, rng.exp(40.0).min(400.0));
        stats.requests += 1;
    }
    match fate {
        Fate::ClientClose => {
            let ct = t;
            c.fin(Side::Client, ct);
            c.fin(Side::Server, after_ms(ct, d_ms));
            c.ack(Side::Client, after_ms(ct, 2.0 * d_ms));
        }
        Fate::ServerIdleClose => {
            let fin_t = after_ms(last_resp, 2000.0).max(t);
            c.fin(Side::Server, fin_t);
            c.fin(Side::Client, after_ms(fin_t, d_ms));
            c.ack(Side::Server, after_ms(fin_t, 2.0 * d_ms));
        }
        Fate::CrossedFin => {
            let fin_t = after_ms(last_resp, 2000.0).max(t);
            c.fin(Side::Server, fin_t);
            // The request leaves while the FIN is still in flight.
            let gap = d_ms * (0.1 + 0.8 * rng.unit());
            c.send(
                Side::Client,
                after_ms(fin_t, gap),
                &wrap(request(rng, &server.host)),
            );
            c.ack(Side::Client, after_ms(fin_t, d_ms));
            c.rst_reply(Side::Server, after_ms(fin_t, d_ms + gap));
            stats.crossed_fin += 1;
            stats.requests += 1;
        }
        Fate::AfterFin => {
            let fin_t = after_ms(last_resp, 2000.0).max(t);
            c.fin(Side::Server, fin_t);
            c.ack(Side::Client, after_ms(fin_t, d_ms));
            let rt = after_ms(fin_t, d_ms + 1.0 + rng.exp(20.0));
            c.send(Side::Client, rt, &wrap(request(rng, &server.host)));
            c.rst_reply(Side::Server, after_ms(rt, d_ms));
            stats.after_fin += 1;
            stats.requests += 1;
        }
    }
    stats.connections += 1;
    c.packets()
}

/// Heap entry ordered by (capture time, arrival order).
struct Pending {
    ts: Timestamp,
    n: u64,
    p: Packet,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.n) == (o.ts, o.n)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.ts, self.n).cmp(&(o.ts, o.n))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: mkbench OUT.pcap [--connections N] [--min-packets M] [--seed S] [--tls] [--one-pair] [--open N]"
    );
    std::process::exit(2);
}

/// One connection that stays open: a handshake and one answered request, then idle.
fn open_connection(
    rng: &mut Rng,
    id: u32,
    start: Timestamp,
    client: SocketAddr,
    server: &Server,
    body: &[u8],
) -> Vec<Packet> {
    let cfg = ConvConfig::new(client, server.addr)
        .id(id)
        .isn(rng.next_u64() as u32, rng.next_u64() as u32)
        .delay(Duration::from_secs_f64(0.0005))
        .vantage(Vantage::Client);
    let mut c = Conversation::new(cfg);
    let t = c.handshake(start);
    c.send(Side::Client, t, &request(rng, &server.host));
    let resp_t = after_ms(t, 1.0);
    c.send(Side::Server, resp_t, &response(rng, body, false));
    c.ack(Side::Client, after_ms(resp_t, 0.5));
    c.packets()
}

/// The `--open N` capture: N connections left open; returns the packets written.
fn write_open<W: std::io::Write>(
    w: &mut PcapWriter<W>,
    rng: &mut Rng,
    n: u64,
    body: &[u8],
) -> std::io::Result<u64> {
    let server = Server {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 8080),
        host: "svc1.example.com".into(),
    };
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut start = Timestamp::from_secs_nanos(BASE_SECS, 0);
    for i in 0..n {
        start = start.add_secs(1.0 / 20_000.0);
        while let Some(Reverse(top)) = heap.peek() {
            if top.ts > start {
                break;
            }
            let Reverse(e) = heap.pop().expect("peeked");
            w.write_packet(Link::Ethernet, &e.p)?;
        }
        let host = (i / 60_000) as u32;
        let ip = Ipv4Addr::from(0x0a00_0000 | (host << 8) | 1);
        let client = SocketAddr::new(IpAddr::V4(ip), 1024 + (i % 60_000) as u16);
        for p in open_connection(rng, i as u32, start, client, &server, body) {
            seq += 1;
            heap.push(Reverse(Pending {
                ts: p.ts,
                n: seq,
                p,
            }));
        }
    }
    while let Some(Reverse(e)) = heap.pop() {
        w.write_packet(Link::Ethernet, &e.p)?;
    }
    Ok(w.frames())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<String> = None;
    let mut want_conns: u64 = 100_000;
    let mut min_packets: u64 = 1_000_000;
    let mut seed: u64 = 0x7c9_2026;
    let mut tls = false;
    let mut one_pair = false;
    let mut open: Option<u64> = None;
    while let Some(a) = args.next() {
        let num = |args: &mut dyn Iterator<Item = String>| -> u64 {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--connections" => want_conns = num(&mut args),
            "--min-packets" => min_packets = num(&mut args),
            "--seed" => seed = num(&mut args),
            "--tls" => tls = true,
            "--one-pair" => one_pair = true,
            "--open" => open = Some(num(&mut args)),
            "-h" | "--help" => usage(),
            _ if out.is_none() && !a.starts_with('-') => out = Some(a),
            _ => usage(),
        }
    }
    let Some(out) = out else { usage() };

    let started = Instant::now();
    let mut rng = Rng(seed);
    let servers = servers();
    let body: Vec<u8> = (0..8192u32)
        .map(|i| b"0123456789abcdef"[(i % 16) as usize])
        .collect();
    let mut next_port = vec![32768u16; N_CLIENTS as usize];

    let file = File::create(&out)?;
    let mut w = PcapWriter::with_options(
        BufWriter::with_capacity(1 << 20, file),
        PcapOptions::for_link(Link::Ethernet),
    )?;
    if let Some(open) = open {
        let packets = write_open(&mut w, &mut rng, open, &body)?;
        w.finish()?.flush()?;
        let meta = format!(
            "packets={packets}\nconnections={open}\nopen_at_end={open}\ngeneration_seconds={:.2}\nseed={seed}\n",
            started.elapsed().as_secs_f64()
        );
        std::fs::write(format!("{out}.meta"), &meta)?;
        print!("{meta}");
        return Ok(());
    }
    let servers = if one_pair {
        vec![Server {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 8080),
            host: "svc1.example.com".into(),
        }]
    } else {
        servers
    };
    let clients = if one_pair { 1 } else { N_CLIENTS };
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut n: u64 = 0;
    let mut stats = Stats::default();
    let mut start = Timestamp::from_secs_nanos(BASE_SECS, 0);
    let mut generated: u64 = 0;

    while stats.connections < want_conns || generated < min_packets {
        start = start.add_secs(rng.exp(1.0 / CONN_RATE_PER_S));
        // Everything captured before this connection starts can be written.
        while let Some(Reverse(top)) = heap.peek() {
            if top.ts > start {
                break;
            }
            let Reverse(e) = heap.pop().expect("peeked");
            w.write_packet(Link::Ethernet, &e.p)?;
        }
        let ci = rng.below(u64::from(clients)) as usize;
        let port = next_port[ci];
        next_port[ci] = if port == 60999 { 32768 } else { port + 1 };
        let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, (ci + 1) as u8)), port);
        let server = rng.pick(&servers);
        let id = stats.connections as u32;
        for p in connection(
            &mut rng,
            id,
            start,
            client,
            server,
            Payload { body: &body, tls },
            &mut stats,
        ) {
            n += 1;
            generated += 1;
            heap.push(Reverse(Pending { ts: p.ts, n, p }));
        }
        stats.max_open_packets = stats.max_open_packets.max(heap.len());
    }
    while let Some(Reverse(e)) = heap.pop() {
        w.write_packet(Link::Ethernet, &e.p)?;
    }
    let packets = w.frames();
    w.finish()?.flush()?;
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&out)?.len();

    let meta = format!(
        "packets={packets}\nconnections={}\nrequests={}\ncrossed_fin={}\nafter_fin={}\nbytes={bytes}\nmax_buffered_packets={}\ngeneration_seconds={secs:.2}\nseed={seed}\none_pair={one_pair}\n",
        stats.connections,
        stats.requests,
        stats.crossed_fin,
        stats.after_fin,
        stats.max_open_packets
    );
    std::fs::write(format!("{out}.meta"), &meta)?;
    print!("{meta}");
    Ok(())
}
