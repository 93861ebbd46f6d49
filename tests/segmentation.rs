//! End to end: how the requests and responses of a capture are cut into segments, and in which
//! order a message's segments are captured, does not change the verdicts.
//!
//! A capture of keep-alive connections (answered requests, a crossed FIN, a request after the
//! FIN, a crossed FIN on a POST retried on a new connection) is written once with every message
//! in as few segments as the MSS allows, and again with every message cut at arbitrary
//! positions and the segments of each message shuffled. Both are analysed; everything but
//! frame numbers and packet counts must be the same.
//!
//! The shuffles stay within a run of segments that one side sent at one time and the capture
//! saw at one time (the pieces of one message): they share their acknowledgement number and
//! timestamp, so any order of them is a capture the same conversation could give.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;
use tcprace::capture::{FileSource, Next, PacketSource};
use tcprace::engine::{Analyzer, Config};
use tcprace::report::{Kind, Outcome, Report};
use tcprace::synth::{
    ConvConfig, Conversation, Link, Packet, PcapOptions, PcapWriter, Side, Vantage, after_ms, merge,
};
use tcprace::time::Timestamp;

/// 2026-01-01T00:00:00Z.
const BASE_SECS: i64 = 1_767_225_600;
const D_MS: f64 = 10.0;
const HOST: &str = "api.example.com";

fn at(ms: f64) -> Timestamp {
    after_ms(Timestamp::from_secs_nanos(BASE_SECS, 0), ms)
}

fn cfg(id: u32, client_port: u16) -> ConvConfig {
    ConvConfig::new(
        format!("192.0.2.10:{client_port}").parse().unwrap(),
        "198.51.100.20:8080".parse().unwrap(),
    )
    .id(id)
    .delay(Duration::from_secs_f64(D_MS / 1000.0))
    .vantage(Vantage::Client)
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

fn post(target: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn response(body_len: usize) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=1\r\n\r\n"
    )
    .into_bytes();
    v.extend((0..body_len).map(|i| b'a' + (i % 26) as u8));
    v
}

/// How a capture is taken apart: cut positions for each message in send order, and swaps of
/// two segments within a run (which run, which two).
#[derive(Clone, Default)]
struct Mangle {
    cuts: Vec<Vec<Index>>,
    swaps: Vec<(Index, Index, Index)>,
}

/// A failing case is the cuts and orders it made.
impl fmt::Debug for Mangle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, changes) = packets(self);
        write!(f, "{}", changes.join("\n"))
    }
}

/// Sends the messages of the conversations, each cut at its positions.
struct Sender<'a> {
    cuts: std::slice::Iter<'a, Vec<Index>>,
    /// The messages cut, and where.
    changes: Vec<String>,
}

impl Sender<'_> {
    /// `data` from `side` at `t`, in pieces (each further split at the MSS).
    fn send(&mut self, c: &mut Conversation, side: Side, t: Timestamp, data: &[u8]) {
        let mut at: Vec<usize> = self
            .cuts
            .next()
            .map(|cuts| cuts.iter().map(|i| i.index(data.len() + 1)).collect())
            .unwrap_or_default();
        at.extend([0, data.len()]);
        at.sort_unstable();
        at.dedup();
        if at.len() > 2 {
            let line = data.split(|&b| b == b'\r').next().unwrap_or_default();
            self.changes.push(format!(
                "{:?} ({} bytes) cut at {:?}",
                String::from_utf8_lossy(line),
                data.len(),
                &at[1..at.len() - 1]
            ));
        }
        for w in at.windows(2) {
            c.send(side, t, &data[w[0]..w[1]]);
        }
    }

    /// Request at `t`, answered 1 ms after it arrived, the answer acknowledged when it
    /// arrives: returns when the response was sent.
    fn exchange(
        &mut self,
        c: &mut Conversation,
        t: Timestamp,
        req: &[u8],
        resp: &[u8],
    ) -> Timestamp {
        self.send(c, Side::Client, t, req);
        let sent = after_ms(t, D_MS + 1.0);
        self.send(c, Side::Server, sent, resp);
        c.ack(Side::Client, after_ms(sent, D_MS));
        sent
    }

    /// The server's FIN at `fin_t`; the client sends `req` 2 ms later (before the FIN reached
    /// it) and ACKs the FIN; the server resets the request and the late ACK.
    fn crossed_race(&mut self, c: &mut Conversation, fin_t: Timestamp, req: &[u8]) {
        c.fin(Side::Server, fin_t);
        self.send(c, Side::Client, after_ms(fin_t, 2.0), req);
        c.ack(Side::Client, after_ms(fin_t, D_MS));
        c.rst_reply(Side::Server, after_ms(fin_t, D_MS + 2.0));
        c.rst_reply(Side::Server, after_ms(fin_t, 2.0 * D_MS));
    }
}

/// Requests and responses in the capture.
const MESSAGES: usize = 13;

/// The conversations of the capture, and the messages cut.
fn conversations(m: &Mangle) -> (Vec<Conversation>, Vec<String>) {
    let mut s = Sender {
        cuts: m.cuts.iter(),
        changes: Vec::new(),
    };
    // keep-alive requests answered (one response over three MSS-size segments), then the
    // request on /c crosses the server's idle FIN
    let mut c1 = Conversation::new(cfg(1, 40001));
    let t = c1.handshake(at(0.0));
    let sent = s.exchange(&mut c1, t, &get("/a"), &response(120));
    let sent = s.exchange(&mut c1, after_ms(sent, 100.0), &get("/b"), &response(3000));
    s.crossed_race(&mut c1, after_ms(sent, 1000.0), &get("/c"));
    // the client ACKs the FIN, then sends /e on the closed connection
    let mut c2 = Conversation::new(cfg(2, 40002));
    let t = c2.handshake(at(50.0));
    let sent = s.exchange(&mut c2, t, &get("/d"), &response(240));
    let fin_t = after_ms(sent, 1000.0);
    c2.fin(Side::Server, fin_t);
    c2.ack(Side::Client, after_ms(fin_t, D_MS));
    s.send(
        &mut c2,
        Side::Client,
        after_ms(fin_t, D_MS + 50.0),
        &get("/e"),
    );
    c2.rst_reply(Side::Server, after_ms(fin_t, 2.0 * D_MS + 50.0));
    // a POST crosses the FIN and is sent again on a new connection
    let order = post("/api/orders", r#"{"item":42,"quantity":3}"#);
    let mut c3 = Conversation::new(cfg(3, 40003));
    let t = c3.handshake(at(100.0));
    let sent = s.exchange(&mut c3, t, &get("/f"), &response(60));
    let fin_t = after_ms(sent, 1000.0);
    s.crossed_race(&mut c3, fin_t, &order);
    let mut c4 = Conversation::new(cfg(4, 40004));
    let t = c4.handshake(after_ms(fin_t, 3.0 * D_MS));
    s.exchange(&mut c4, t, &order, &response(20));
    (vec![c1, c2, c3, c4], s.changes)
}

/// The captured packets, the segments of each run swapped as `swaps` say; and what was cut
/// and reordered.
fn packets(m: &Mangle) -> (Vec<Packet>, Vec<String>) {
    let (convs, mut changes) = conversations(m);
    let mut captures = Vec::new();
    // maximal runs of data segments from one side captured at one time: conversation, range,
    // and the original place of each segment in the run
    let mut runs: Vec<(usize, Range<usize>, Vec<usize>)> = Vec::new();
    for c in &convs {
        let pkts = c.packets();
        let key = |p: &Packet| {
            let s = c.segment(p.tag.seg);
            (!s.payload.is_empty()).then_some((s.from, p.ts))
        };
        let mut start = 0;
        for i in 1..=pkts.len() {
            if i == pkts.len() || key(&pkts[i]).is_none() || key(&pkts[i]) != key(&pkts[start]) {
                if i - start > 1 && key(&pkts[start]).is_some() {
                    runs.push((captures.len(), start..i, (0..i - start).collect()));
                }
                start = i;
            }
        }
        captures.push(pkts);
    }
    if !runs.is_empty() {
        for (r, a, b) in &m.swaps {
            let n = runs.len();
            let (conv, range, order) = &mut runs[r.index(n)];
            let (a, b) = (a.index(range.len()), b.index(range.len()));
            captures[*conv].swap(range.start + a, range.start + b);
            order.swap(a, b);
        }
    }
    for (conv, range, order) in runs {
        if order.windows(2).any(|w| w[0] > w[1]) {
            let p = &captures[conv][range.start];
            let from = convs[conv].segment(p.tag.seg).from;
            changes.push(format!(
                "connection {}: the {} segments {from:?} sent at {} captured in the order {order:?}",
                conv + 1,
                order.len(),
                p.ts
            ));
        }
    }
    (merge(captures), changes)
}

/// Writes the capture to a file of its own and analyses it on one thread.
fn analyse(m: &Mangle) -> Report {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "tcprace-segmentation-{}-{}.pcap",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::File::create(&path).unwrap();
    let mut w = PcapWriter::with_options(
        std::io::BufWriter::new(file),
        PcapOptions::for_link(Link::Ethernet),
    )
    .unwrap();
    w.write_packets(Link::Ethernet, &packets(m).0).unwrap();
    w.finish().unwrap();
    let files = [path.to_string_lossy().into_owned()];
    let mut src = FileSource::open(&files).unwrap();
    let mut a = Analyzer::new(Config::default(), src.inputs().to_vec());
    loop {
        match src.next().unwrap() {
            Next::End => break,
            Next::Packet(p) => {
                a.on_packet_ref(p);
            }
            other => panic!("{other:?}"),
        }
    }
    let _ = std::fs::remove_file(&path);
    a.finish()
}

/// The report without what depends on the segmentation: frame numbers (also in the evidence)
/// and connection ids, packet and byte counts, the input's name and the TCP counters.
fn normalised(r: &Report) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                // connections are numbered by their first packet's ordinal
                for key in ["frame", "file", "id"] {
                    o.remove(key);
                }
                if o.get("connection").is_some_and(Value::is_number) {
                    o.remove("connection");
                }
                if let Some(Value::String(e)) = o.get_mut("evidence") {
                    *e = unframe(e);
                }
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).unwrap();
    for key in ["inputs", "tcp", "warnings"] {
        v.as_object_mut().unwrap().remove(key);
    }
    for key in ["packets", "bytes", "tcp_segments"] {
        v["summary"].as_object_mut().unwrap().remove(key);
    }
    strip(&mut v);
    v
}

/// `text` with the number after each "frame " replaced by `#`.
fn unframe(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("frame ") {
        out.push_str(&rest[..i + 6]);
        rest = rest[i + 6..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('#');
    }
    out + rest
}

fn mangle() -> impl Strategy<Value = Mangle> {
    (
        vec(vec(any::<Index>(), 0..5), MESSAGES),
        vec(any::<(Index, Index, Index)>(), 0..24),
    )
        .prop_map(|(cuts, swaps)| Mangle { cuts, swaps })
}

#[test]
fn the_whole_capture_has_the_races() {
    let r = analyse(&Mangle::default());
    let got: Vec<(Kind, Outcome, &str, &str)> = r
        .findings
        .iter()
        .map(|f| {
            let q = &f.request;
            (f.kind, f.outcome, q.method.as_str(), q.target.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            (Kind::CrossedFin, Outcome::Retried, "POST", "/api/orders"),
            (Kind::AfterFin, Outcome::Lost, "GET", "/e"),
            (Kind::CrossedFin, Outcome::Lost, "GET", "/c"),
        ]
    );
    assert!(r.informational.is_empty());
    assert_eq!((r.summary.requests, r.summary.responses), (8, 5));
}

/// Where two reports differ: the first differing line (marked) in some context.
fn first_difference(a: &Value, b: &Value) -> String {
    let (a, b) = (format!("{a:#}"), format!("{b:#}"));
    let line = a
        .lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or(0);
    let context = |s: &str| {
        let lines = s.lines().enumerate().skip(line.saturating_sub(12)).take(16);
        lines
            .map(|(i, l)| format!("{} {l}", if i == line { ">" } else { " " }))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "at line {line}; whole:\n{}\ncut:\n{}",
        context(&a),
        context(&b)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_segmentation_gives_the_same_verdicts(m in mangle()) {
        static WHOLE: OnceLock<Value> = OnceLock::new();
        let whole = WHOLE.get_or_init(|| normalised(&analyse(&Mangle::default())));
        let cut = normalised(&analyse(&m));
        prop_assert!(whole == &cut, "reports differ {}", first_difference(whole, &cut));
    }
}
