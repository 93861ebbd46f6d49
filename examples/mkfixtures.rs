//! Writes the scenario captures of `fixtures/scenarios/` plus `expected.json` and `README.md`.
//!
//! ```text
//! cargo run --example mkfixtures [OUTPUT_DIR]
//! ```
//!
//! Everything is deterministic (fixed base time, addresses, ISNs): running it again produces
//! byte-identical files.

use std::fs;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tcprace::synth::{
    ConvConfig, Conversation, Flags, Link, Packet, PacketTag, PcapOptions, PcapWriter, SegId, Side,
    Vantage, after_ms, merge,
};
use tcprace::time::Timestamp;

#[path = "mkfixtures/h2.rs"]
mod h2;

/// 2026-01-01T00:00:00Z.
const BASE_SECS: i64 = 1_767_225_600;
const HOST: &str = "api.example.com";
const SERVER: &str = "198.51.100.20:8080";
const CLIENT_IP: &str = "192.0.2.10";
const D_MS: f64 = 10.0;

fn at(ms: f64) -> Timestamp {
    after_ms(Timestamp::from_secs_nanos(BASE_SECS, 0), ms)
}

fn plus(t: Timestamp, ms: f64) -> Timestamp {
    after_ms(t, ms)
}

fn cfg(id: u32, client_port: u16, vantage: Vantage) -> ConvConfig {
    let client: SocketAddr = format!("{CLIENT_IP}:{client_port}").parse().unwrap();
    ConvConfig::new(client, SERVER.parse().unwrap())
        .id(id)
        .delay(Duration::from_secs_f64(D_MS / 1000.0))
        .vantage(vantage)
}

fn get(target: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: tcprace-fixture/1\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// A request small enough to survive a 128-byte snaplen.
fn short_get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes()
}

fn post(target: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: tcprace-fixture/1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

enum Conn {
    KeepAlive(u32),
    Close,
}

fn response(body_len: usize, conn: Conn) -> Vec<u8> {
    let conn_hdr = match conn {
        Conn::KeepAlive(t) => format!("Connection: keep-alive\r\nKeep-Alive: timeout={t}\r\n"),
        Conn::Close => "Connection: close\r\n".to_string(),
    };
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\n{conn_hdr}\r\n"
    )
    .into_bytes();
    v.extend((0..body_len).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[i % 37]));
    v
}

struct Exchange {
    /// When the server sent the response.
    resp_sent: Timestamp,
    /// When the client acknowledged the response (request done).
    done: Timestamp,
}

/// Client sends `req` at `t`; the server answers 1 ms after it arrives; the client ACKs the
/// response when it arrives.
fn exchange(c: &mut Conversation, t: Timestamp, req: &[u8], resp: &[u8]) -> Exchange {
    let r = c.send(Side::Client, t, req)[0];
    let resp_sent = plus(t, D_MS + 1.0);
    c.send(Side::Server, resp_sent, resp);
    let done = plus(resp_sent, D_MS);
    c.ack(Side::Client, done);
    let _ = r;
    Exchange { resp_sent, done }
}

/// The race: server FIN at `fin_t`; the client sends `req` 2 ms later (the FIN is still in
/// flight), ACKs the FIN when it arrives; the server answers the request with a reset (no
/// socket), and the late FIN-ACK with another one. Returns the request's first segment.
fn crossed_race(c: &mut Conversation, fin_t: Timestamp, req: &[u8]) -> SegId {
    c.fin(Side::Server, fin_t);
    let r = c.send(Side::Client, plus(fin_t, 2.0), req)[0];
    c.ack(Side::Client, plus(fin_t, D_MS));
    c.rst_reply(Side::Server, plus(fin_t, D_MS + 2.0));
    c.rst_reply(Side::Server, plus(fin_t, 2.0 * D_MS));
    r
}

struct Expect {
    kind: &'static str,
    outcome: Option<&'static str>,
    method: &'static str,
    target: &'static str,
    tag: PacketTag,
}

fn tag(c: &Conversation, seg: SegId) -> PacketTag {
    PacketTag {
        conv: c.config().id,
        seg,
    }
}

struct Fixture {
    file: &'static str,
    link: Link,
    snaplen: Option<u32>,
    packets: Vec<Packet>,
    findings: Vec<Expect>,
    informational: Vec<Expect>,
    notes: String,
    description: String,
}

impl Fixture {
    fn new(file: &'static str, packets: Vec<Packet>) -> Self {
        Fixture {
            file,
            link: Link::Ethernet,
            snaplen: None,
            packets,
            findings: Vec::new(),
            informational: Vec::new(),
            notes: String::new(),
            description: String::new(),
        }
    }

    fn finding(
        mut self,
        kind: &'static str,
        outcome: &'static str,
        method: &'static str,
        target: &'static str,
        tag: PacketTag,
    ) -> Self {
        self.findings.push(Expect {
            kind,
            outcome: Some(outcome),
            method,
            target,
            tag,
        });
        self
    }

    fn info(
        mut self,
        kind: &'static str,
        method: &'static str,
        target: &'static str,
        tag: PacketTag,
    ) -> Self {
        self.informational.push(Expect {
            kind,
            outcome: None,
            method,
            target,
            tag,
        });
        self
    }

    fn notes(mut self, notes: &str) -> Self {
        self.notes = notes.to_string();
        self
    }

    fn describe(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// Two answered keep-alive requests, ~1 s idle, then the crossed race on GET /c.
fn crossed_conv(vantage: Vantage) -> (Conversation, SegId) {
    let mut c = Conversation::new(cfg(1, 40001, vantage));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(1)));
    let b = exchange(
        &mut c,
        plus(a.done, 80.0),
        &get("/b"),
        &response(240, Conn::KeepAlive(1)),
    );
    let r = crossed_race(&mut c, plus(b.resp_sent, 1000.0), &get("/c"));
    (c, r)
}

const CROSSED_NOTES: &str = "d=10ms. Server FIN (idle timeout 1 s) at T; client GET /c at T+2ms carries ack=FIN seq (FIN not yet received); FIN.ack = GET /c seq (server never saw it); server answers with bare RST seq=FIN seq, then RST seq=FIN+1 to the client's late FIN-ACK.";

fn crossed_fin(vantage: Vantage, file: &'static str) -> Fixture {
    let (c, r) = crossed_conv(vantage);
    let side = if vantage == Vantage::Client {
        "client (GET /c appears BEFORE the FIN in the file)"
    } else {
        "server (GET /c appears after the FIN in the file)"
    };
    Fixture::new(file, c.packets())
        .finding("crossed_fin", "lost", "GET", "/c", tag(&c, r))
        .notes(CROSSED_NOTES)
        .describe(&format!(
            "Keep-alive connection 192.0.2.10:40001 -> 198.51.100.20:8080, one-way delay 10 ms, captured at the {side}. GET /a and GET /b are answered (`Keep-Alive: timeout=1`); after ~1 s idle the server sends FIN at T, the client sends GET /c at T+2ms before the FIN reached it (its ack does not cover the FIN; the FIN's ack does not cover the request), ACKs the FIN at T+10ms; the server answers the request with a bare RST (seq = the request's ack) and the late FIN-ACK with a second RST. The same conversation as its client/server twin, only the vantage point differs."
        ))
}

fn after_fin() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40002, Vantage::Client));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(1)));
    let fin_t = plus(a.resp_sent, 1000.0);
    c.fin(Side::Server, fin_t);
    c.ack(Side::Client, plus(fin_t, D_MS));
    let r = c.send(Side::Client, plus(fin_t, D_MS + 50.0), &get("/b"))[0];
    c.rst_reply(Side::Server, plus(fin_t, 2.0 * D_MS + 50.0));
    Fixture::new("after_fin.pcap", c.packets())
        .finding("after_fin", "lost", "GET", "/b", tag(&c, r))
        .notes("Client ACKed the server FIN, then 50 ms later sent GET /b with ack = FIN+1 (stale reuse); server RST seq = FIN+1.")
        .describe("Client-side capture, d=10 ms. GET /a answered, server FIN after 1 s idle; the client ACKs the FIN on arrival and 50 ms later sends GET /b on the half-closed connection (its ack covers the FIN: stale reuse, not a race). The server's kernel answers with a bare RST.")
}

fn after_rst() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40003, Vantage::Server));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(30)));
    let rst = c.rst(Side::Server, plus(a.resp_sent, 1000.0), true);
    c.lose(rst);
    let r = c.send(Side::Client, plus(a.resp_sent, 1500.0), &get("/b"))[0];
    c.rst_reply(Side::Server, plus(a.resp_sent, 1500.0 + D_MS));
    Fixture::new("after_rst.pcap", c.packets())
        .finding("after_rst", "lost", "GET", "/b", tag(&c, r))
        .notes("Server-side capture. Idle abortive close: server RST|ACK (seq=snd_nxt) 1 s after the last response; that RST is lost on the way to the client, which sends GET /b 500 ms later; the server kernel answers with a bare RST (seq = GET's ack = first RST's seq).")
        .describe("Server-side capture, d=10 ms. GET /a answered; 1 s later the server aborts the idle connection with RST|ACK (SO_LINGER 0 style). That RST is lost in the network (never reaches the client), so 500 ms later the client sends GET /b on the dead connection; the server's kernel, which has no socket any more, answers with a bare RST.")
}

fn reset_unanswered(with_ack: bool) -> Fixture {
    let (file, vantage, port) = if with_ack {
        ("reset_unanswered_ack.pcap", Vantage::Client, 40004)
    } else {
        ("reset_unanswered_noack.pcap", Vantage::Middle, 40005)
    };
    let mut c = Conversation::new(cfg(1, port, vantage));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(60)));
    let rt = plus(a.done, 200.0);
    let r = c.send(Side::Client, rt, &get("/b"))[0];
    c.ack(Side::Server, plus(rt, D_MS));
    c.rst(Side::Server, plus(rt, D_MS + 1500.0), with_ack);
    let (form, where_) = if with_ack {
        ("RST|ACK (ack covers the request)", "at the client")
    } else {
        (
            "bare RST (no ACK flag, seq = snd_nxt, in window)",
            "half-way (capture times t+d/2)",
        )
    };
    Fixture::new(file, c.packets())
        .finding("reset_unanswered", "lost", "GET", "/b", tag(&c, r))
        .notes(&format!("Server ACKs GET /b, then 1.5 s later resets with {form}; no FIN, no response."))
        .describe(&format!("Captured {where_}, d=10 ms. GET /a answered; GET /b is ACKed by the server (pure ACK), then 1.5 s later the server resets the connection with a {form} and never answers; no FIN anywhere."))
}

fn closed_unanswered() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40006, Vantage::Client));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(60)));
    let rt = plus(a.done, 100.0);
    let r = c.send(Side::Client, rt, &get("/slow"))[0];
    c.ack(Side::Server, plus(rt, D_MS));
    let fin_t = plus(rt, D_MS + 30_000.0);
    c.fin(Side::Server, fin_t);
    c.fin(Side::Client, plus(fin_t, D_MS));
    c.ack(Side::Server, plus(fin_t, 2.0 * D_MS));
    Fixture::new("closed_unanswered.pcap", c.packets())
        .finding("closed_unanswered", "lost", "GET", "/slow", tag(&c, r))
        .notes("Server ACKs GET /slow, 30 s later FINs (FIN.ack covers the request) without a response; client FIN|ACK, server ACK.")
        .describe("Client-side capture, d=10 ms. GET /a answered; GET /slow is ACKed by the server, which then sends FIN 30 s later (its ack covers the request: it received it) without ever answering. The client ACKs with its own FIN, the server sends the last ACK.")
}

fn unanswered_at_end() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40007, Vantage::Client));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(60)));
    let r = c.send(Side::Client, plus(a.done, 100.0), &get("/b"))[0];
    Fixture::new("unanswered_at_end.pcap", c.packets())
        .info("unanswered_at_end", "GET", "/b", tag(&c, r))
        .notes("GET /b is the last packet of the capture: no ACK, no response. Informational only, exit 0.")
        .describe("Client-side capture, d=10 ms. GET /a answered; GET /b is sent and the capture ends right after it (not even the server's ACK is in the file).")
}

fn retransmitted_request() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40008, Vantage::Client));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(1)));
    let fin_t = plus(a.resp_sent, 1000.0);
    c.fin(Side::Server, fin_t);
    let r = c.send(Side::Client, plus(fin_t, 2.0), &get("/c"))[0];
    c.lose(r);
    c.ack(Side::Client, plus(fin_t, D_MS));
    c.retransmit(r, plus(fin_t, 202.0));
    c.rst_reply(Side::Server, plus(fin_t, 202.0 + D_MS));
    Fixture::new("retransmitted_request.pcap", c.packets())
        .finding("crossed_fin", "lost", "GET", "/c", tag(&c, r))
        .notes("GET /c crosses the FIN (first transmission: ack = FIN seq) and is lost; the client ACKs the FIN, retransmits GET /c 200 ms later (RTO) with ack = FIN+1; the server answers with RST seq = FIN+1. Exactly one finding, classified from the first transmission; request_frame is the first transmission.")
        .describe("Client-side capture, d=10 ms. Like the crossed race, but the first transmission of GET /c (sent 2 ms after the server's FIN, ack not covering it) is lost in the network. The FIN arrives, the client ACKs it, and after the 200 ms RTO retransmits GET /c, now with an ack that covers the FIN. The server resets. One request, one crossed_fin finding (not after_fin, not two).")
}

fn pipelined_tail_lost() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40009, Vantage::Client));
    let t = c.handshake(at(0.0));
    let r1 = c.send(Side::Client, t, &get("/p1"))[0];
    let r2 = c.send(Side::Client, plus(t, 1.0), &get("/p2"))[0];
    let r3 = c.send(Side::Client, plus(t, 2.0), &get("/p3"))[0];
    let resp_t = plus(t, D_MS + 0.5);
    c.send_fin(Side::Server, resp_t, &response(120, Conn::Close));
    c.rst_reply(Side::Server, plus(t, D_MS + 1.0));
    c.rst_reply(Side::Server, plus(t, D_MS + 2.0));
    c.ack(Side::Client, plus(resp_t, D_MS));
    let _ = r1;
    Fixture::new("pipelined_tail_lost.pcap", c.packets())
        .finding("crossed_fin", "lost", "GET", "/p2", tag(&c, r2))
        .finding("crossed_fin", "lost", "GET", "/p3", tag(&c, r3))
        .notes("Three pipelined GETs 1 ms apart. The server answers /p1 with Connection: close and the FIN piggybacked (FIN.ack = start of /p2), then bare-RSTs /p2 and /p3 as they arrive. /p1 is answered; /p2 and /p3 crossed the FIN.")
        .describe("Client-side capture, d=10 ms. The client pipelines GET /p1, /p2, /p3 one millisecond apart right after the handshake. The server receives /p1, answers it with `Connection: close` and the FIN in the same segment (so its FIN acknowledges only /p1), then answers /p2 and /p3, which were in flight, with bare RSTs. The client ACKs the response and FIN.")
}

fn fin_piggyback() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40010, Vantage::Client));
    let t = c.handshake(at(0.0));
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(5)));
    let rt = plus(a.done, 50.0);
    c.send(Side::Client, rt, &get("/b"));
    let resp_t = plus(rt, D_MS + 1.0);
    c.send_fin(Side::Server, resp_t, &response(300, Conn::Close));
    c.ack(Side::Client, plus(resp_t, D_MS));
    c.fin(Side::Client, plus(resp_t, D_MS + 1.0));
    c.ack(Side::Server, plus(resp_t, 2.0 * D_MS + 1.0));
    Fixture::new("fin_piggyback.pcap", c.packets())
        .notes("The response to GET /b carries Connection: close and the FIN in the same segment; client ACK, client FIN, server ACK. No finding.")
        .describe("Client-side capture, d=10 ms. GET /a answered with keep-alive; GET /b is answered with `Connection: close` and the server's FIN piggybacked on the response's (only) segment; the client ACKs, sends its FIN, the server ACKs. Clean close: no finding.")
}

fn tuple_reuse() -> Fixture {
    let mut c1 = Conversation::new(cfg(1, 40011, Vantage::Client).isn(0x1000_0000, 0x7000_0000));
    let t = c1.handshake(at(0.0));
    let a = exchange(&mut c1, t, &get("/a"), &response(120, Conn::Close));
    let fin_t = plus(a.done, 1.0);
    c1.fin(Side::Server, fin_t);
    c1.fin(Side::Client, plus(fin_t, D_MS));
    c1.ack(Side::Server, plus(fin_t, 2.0 * D_MS));
    let mut c2 = Conversation::new(cfg(2, 40011, Vantage::Client).isn(0x5000_0000, 0x2000_0000));
    let t2 = c2.handshake(plus(fin_t, 2000.0));
    let b = exchange(&mut c2, t2, &get("/b"), &response(120, Conn::KeepAlive(5)));
    let ct = plus(b.done, 100.0);
    c2.fin(Side::Client, ct);
    c2.fin(Side::Server, plus(ct, D_MS));
    c2.ack(Side::Client, plus(ct, 2.0 * D_MS));
    Fixture::new("tuple_reuse.pcap", merge([c1.packets(), c2.packets()]))
        .notes("Connection 1 (GET /a, Connection: close, server FIN, client FIN, ACK) and, 2 s later, connection 2 on the same 4-tuple with new ISNs (GET /b, 200, client-initiated close). The first connection's FIN must not taint GET /b. No finding.")
        .describe("Client-side capture, d=10 ms, both connections 192.0.2.10:40011 -> 198.51.100.20:8080. The first connection does GET /a (answered with `Connection: close`), the server FINs, the client FINs, last ACK. Two seconds later the same 4-tuple is reused: new SYN with different ISNs on both sides, GET /b answered, and a client-initiated close. No finding: the old FIN belongs to the old connection.")
}

fn midstream() -> Fixture {
    let mut c =
        Conversation::established(cfg(1, 40012, Vantage::Middle).isn(0x2345_6789, 0x8765_4321));
    // Before the capture starts: a request and the first segment of its response.
    let x = c.send(Side::Client, at(0.0), &get("/x"))[0];
    c.drop_capture(x);
    let resp = c.send(
        Side::Server,
        at(D_MS + 1.0),
        &response(2000, Conn::KeepAlive(1)),
    );
    c.drop_capture(resp[0]);
    c.ack(Side::Client, at(2.0 * D_MS + 1.0));
    let m1 = exchange(
        &mut c,
        at(100.0),
        &get("/m1"),
        &response(150, Conn::KeepAlive(1)),
    );
    let m2 = exchange(
        &mut c,
        plus(m1.done, 60.0),
        &get("/m2"),
        &response(150, Conn::KeepAlive(1)),
    );
    let r = crossed_race(&mut c, plus(m2.resp_sent, 1000.0), &get("/c"));
    Fixture::new("midstream.pcap", c.packets())
        .finding("crossed_fin", "lost", "GET", "/c", tag(&c, r))
        .notes(&format!("No handshake in the capture. It starts with the tail of a response (second segment of a 2000-byte body) and the client's ACK, then GET /m1 and GET /m2 answered, then the crossed race on GET /c. Captured mid-path (t+d/2): the FIN precedes GET /c in the file. {CROSSED_NOTES}"))
        .describe("Captured half-way (every packet at send time + 5 ms), d=10 ms. The capture starts in the middle of a connection: no SYN/SYN-ACK, the first packet is the tail segment of a response whose headers are not in the file, then the client's ACK, two keep-alive request/response pairs (GET /m1, GET /m2) and the crossed race on GET /c, as in the crossed_fin captures.")
}

fn seq_wrap() -> Fixture {
    let mut c =
        Conversation::new(cfg(1, 40013, Vantage::Server).isn(u32::MAX - 299, u32::MAX - 199));
    let mut t = c.handshake(at(0.0));
    let mut last_resp = t;
    for target in ["/w1", "/w2", "/w3", "/w4"] {
        let e = exchange(&mut c, t, &get(target), &response(60, Conn::KeepAlive(1)));
        last_resp = e.resp_sent;
        t = plus(e.done, 40.0);
    }
    let r = crossed_race(&mut c, plus(last_resp, 1000.0), &get("/c"));
    // Both directions must have a segment straddling 2^32.
    for side in [Side::Client, Side::Server] {
        assert!(
            c.segments()
                .iter()
                .any(|s| s.from == side && !s.payload.is_empty() && s.end_seq() < s.seq),
            "no {side:?} segment straddles the wrap"
        );
    }
    Fixture::new("seq_wrap.pcap", c.packets())
        .finding("crossed_fin", "lost", "GET", "/c", tag(&c, r))
        .notes(&format!("Client ISN 2^32-300, server ISN 2^32-200: a request (/w4) and a response (to /w2) straddle the wrap; the race happens after both sequence spaces wrapped. Server-side capture. {CROSSED_NOTES}"))
        .describe("Server-side capture, d=10 ms. Client ISN = 2^32-300 and server ISN = 2^32-200, so the sequence numbers of both directions wrap through zero during four answered keep-alive requests (GET /w1../w4; one request and one response segment each straddle 2^32). Then the crossed race on GET /c with the sequence numbers just past the wrap.")
}

fn forged_rst_before_handshake() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40014, Vantage::Client));
    c.syn(Side::Client, at(0.0));
    c.forge(Side::Server, at(1.0), 0xdead_beef, None, Flags::RST, b"");
    c.forge(
        Side::Server,
        at(2.0),
        0x1234_5678,
        Some(0x0bad_cafe),
        Flags::FIN,
        b"",
    );
    c.syn(Side::Server, at(D_MS));
    let t = at(2.0 * D_MS);
    c.ack(Side::Client, t);
    let a = exchange(&mut c, t, &get("/a"), &response(120, Conn::KeepAlive(5)));
    let ct = plus(a.done, 100.0);
    c.fin(Side::Client, ct);
    c.fin(Side::Server, plus(ct, D_MS));
    c.ack(Side::Client, plus(ct, 2.0 * D_MS));
    Fixture::new("forged_rst_before_handshake.pcap", c.packets())
        .notes("Between SYN and SYN-ACK two forged segments 'from the server': RST seq=0xdeadbeef (no ACK) and FIN|ACK seq=0x12345678 ack=0x0badcafe. Neither belongs to the connection. Then handshake, GET /a, 200, client-initiated close. No finding.")
        .describe("Client-side capture, d=10 ms. After the client's SYN and before the server's SYN-ACK, a third party injects a RST (seq 0xdeadbeef, no ACK) and a FIN|ACK (seq 0x12345678, ack 0x0badcafe) with the server's address and port. The real handshake then completes, GET /a is answered and the client closes normally. No finding: the forged segments are outside any sequence window.")
}

fn retried() -> Fixture {
    let mut a = Conversation::new(cfg(1, 40015, Vantage::Client));
    let t = a.handshake(at(0.0));
    let e = exchange(&mut a, t, &get("/a"), &response(120, Conn::KeepAlive(1)));
    let fin_t = plus(e.resp_sent, 1000.0);
    let r = crossed_race(&mut a, fin_t, &get("/c"));
    // The RST answering GET /c reaches the client at fin_t + 2 + 2d.
    let rst_arrival = plus(fin_t, 2.0 + 2.0 * D_MS);
    let mut b = Conversation::new(cfg(2, 40016, Vantage::Client));
    let t2 = b.handshake(plus(rst_arrival, 3.0));
    exchange(&mut b, t2, &get("/c"), &response(120, Conn::KeepAlive(1)));
    Fixture::new("retried.pcap", merge([a.packets(), b.packets()]))
        .finding("crossed_fin", "retried", "GET", "/c", tag(&a, r))
        .notes(&format!("{CROSSED_NOTES} 3 ms after that RST arrives the client opens a new connection (port 40016) and sends the same GET /c (same Host), answered 200."))
        .describe("Client-side capture, d=10 ms. The crossed race on GET /c (port 40015) as in crossed_fin_client_side; 3 ms after the server's RST arrives, the client opens a new connection from port 40016 to the same server and sends the same GET /c with the same Host, which is answered 200. Outcome retried.")
}

fn lost_post() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40017, Vantage::Client));
    let t = c.handshake(at(0.0));
    let a = exchange(
        &mut c,
        t,
        &get("/api/items"),
        &response(200, Conn::KeepAlive(1)),
    );
    let body = r#"{"item":42,"qty":1,"note":"synthetic"}"#;
    let r = crossed_race(
        &mut c,
        plus(a.resp_sent, 1000.0),
        &post("/api/orders", body),
    );
    Fixture::new("lost_post.pcap", c.packets())
        .finding("crossed_fin", "lost", "POST", "/api/orders", tag(&c, r))
        .notes(&format!("POST /api/orders with a {}-byte JSON body in one segment crosses the FIN; not retried (non-idempotent: a proxy answers 502). {CROSSED_NOTES}", body.len()))
        .describe("Client-side capture, d=10 ms. GET /api/items answered; after ~1 s idle the crossed race hits a POST /api/orders with a small JSON body (headers and body in one segment). No retry: this is the request a reverse proxy turns into a 502.")
}

fn idle_close_no_reuse() -> Fixture {
    let mut c = Conversation::new(cfg(1, 40018, Vantage::Client));
    let mut t = c.handshake(at(0.0));
    let mut last = t;
    for target in ["/a", "/b", "/c"] {
        let e = exchange(&mut c, t, &get(target), &response(100, Conn::KeepAlive(5)));
        last = e.resp_sent;
        t = plus(e.done, 150.0);
    }
    let fin_t = plus(last, 5000.0);
    c.fin(Side::Server, fin_t);
    c.fin(Side::Client, plus(fin_t, D_MS));
    c.ack(Side::Server, plus(fin_t, 2.0 * D_MS));
    Fixture::new("idle_close_no_reuse.pcap", c.packets())
        .notes("Three keep-alive requests (Keep-Alive: timeout=5); the server closes the idle connection 5 s after the last response; client FIN|ACK, server ACK. No finding, but it is a server idle close (for endpoint statistics: idle ~5 s).")
        .describe("Client-side capture, d=10 ms. Three keep-alive requests answered with `Keep-Alive: timeout=5`; 5 s after the last response the server closes the idle connection (FIN), the client answers with its FIN, the server ACKs. Nothing was sent on the closing connection: no finding, one idle close.")
}

fn sll2_crossed() -> Fixture {
    let (c, r) = crossed_conv(Vantage::Client);
    let mut f = Fixture::new("sll2_crossed.pcap", c.packets())
        .finding("crossed_fin", "lost", "GET", "/c", tag(&c, r))
        .notes(&format!("LINKTYPE_LINUX_SLL2 (276), as tcpdump -i any writes. {CROSSED_NOTES}"))
        .describe("The crossed_fin_client_side conversation written with link type LINUX_SLL2 (276, the 20-byte cooked header `tcpdump -i any` writes; interface index 2, packet type 4 = outgoing for the client's packets, 0 = to us for the server's).");
    f.link = Link::LinuxSll2 { ifindex: 2 };
    f
}

/// Keep-alive exchanges with 3000-byte bodies, then the crossed race, captured with `snaplen`.
fn snaplen_truncated(snaplen: u32, file: &'static str) -> Fixture {
    let mut c = Conversation::new(cfg(1, 40019, Vantage::Client));
    let mut t = c.handshake(at(0.0));
    let mut last = t;
    for target in ["/big1", "/big2"] {
        let e = exchange(
            &mut c,
            t,
            &short_get(target),
            &response(3000, Conn::KeepAlive(1)),
        );
        last = e.resp_sent;
        t = plus(e.done, 100.0);
    }
    let r = crossed_race(&mut c, plus(last, 1000.0), &short_get("/c"));
    let payload = snaplen - 54;
    let heads = if snaplen < 200 {
        "the response heads are cut too: their status lines survive, so each response still answers its request, but their lengths are lost and framing resumes at the next status line"
    } else {
        "the response heads fit, so HTTP framing follows the bodies by Content-Length across the missing bytes"
    };
    let mut f = Fixture::new(file, c.packets())
        .finding("crossed_fin", "lost", "GET", "/c", tag(&c, r))
        .notes(&format!("Snaplen {snaplen}: each record holds at most {snaplen} bytes ({payload} bytes of TCP payload); orig_len has the full length. Requests are short enough to be complete; 3000-byte response bodies (3 segments each) are known only by length; {heads}. {CROSSED_NOTES}"))
        .describe(&format!("Client-side capture written with snaplen {snaplen} (caplen = min(len, {snaplen}), orig_len = full length). Two keep-alive requests (short enough to fit in a record) are answered with 3000-byte bodies spread over three segments, whose payload is mostly cut off, so only the TCP/IP lengths tell how much was sent; {heads}. Then the crossed race on GET /c."));
    f.snaplen = Some(snaplen);
    f
}

// ---------------------------------------------------------------------------------------------

fn expect_json(e: &Expect, frame: u64) -> Value {
    let mut v = json!({
        "kind": e.kind,
        "method": e.method,
        "target": e.target,
        "request_frame": frame,
    });
    if let Some(o) = e.outcome {
        v["outcome"] = json!(o);
    }
    v
}

fn write_fixture(dir: &Path, f: &Fixture) -> std::io::Result<Value> {
    let mut opts = PcapOptions::for_link(f.link);
    if let Some(s) = f.snaplen {
        opts = opts.snaplen(s);
    }
    let file = fs::File::create(dir.join(f.file))?;
    let mut w = PcapWriter::with_options(BufWriter::new(file), opts)?;
    let frames = w.write_packets(f.link, &f.packets)?;
    w.finish()?;
    let frame_of = |e: &Expect| {
        *frames
            .get(&e.tag)
            .unwrap_or_else(|| panic!("{}: request segment not in the capture", f.file))
    };
    let findings: Vec<Value> = f
        .findings
        .iter()
        .map(|e| expect_json(e, frame_of(e)))
        .collect();
    let informational: Vec<Value> = f
        .informational
        .iter()
        .map(|e| expect_json(e, frame_of(e)))
        .collect();
    Ok(json!({
        "findings": findings,
        "informational": informational,
        "exit_code": if f.findings.is_empty() { 0 } else { 1 },
        "notes": f.notes,
        "packets": f.packets.len(),
    }))
}

fn readme(fixtures: &[Fixture], expected: &serde_json::Map<String, Value>) -> String {
    let mut s = String::from(
        "# Scenario captures\n\n\
Synthetic pcap files for the keep-alive race verdicts, written by `examples/mkfixtures.rs`:\n\n\
```sh\ncargo run --example mkfixtures            # writes into fixtures/scenarios/\n```\n\n\
The script is deterministic (base time 2026-01-01T00:00:00Z, fixed addresses, ports and ISNs), \
so running it again regenerates byte-identical files (this README and `expected.json` included). \
Packets come from the TCP conversation simulator in `src/synth/` (`tcprace::synth`): both \
endpoints keep `snd_nxt`/`rcv_nxt`, segments take a one-way delay `d` to arrive, and every \
acknowledgment number is what the sender had received by its send time; the capture vantage point \
(client, server or half-way) decides the capture timestamps. Unless noted otherwise: client \
(proxy) 192.0.2.10, upstream 198.51.100.20:8080, `Host: api.example.com`, Ethernet, microsecond \
timestamps, snaplen 262144.\n\n\
`expected.json` maps each file to the expected `findings` (kind, outcome, method, target and \
`request_frame`, the 1-based frame number of the request's first segment, taken from the \
writer), `informational` items, the analyzer's `exit_code` (1 when there are findings), \
`notes` and the number of `packets`.\n\n\
Check a file with `tcpdump -nr FILE` (relative seq) or `tcpdump -nr FILE -S` (absolute seq).\n",
    );
    for f in fixtures {
        let e = &expected[f.file];
        let mut verdict = Vec::new();
        for x in e["findings"].as_array().unwrap() {
            verdict.push(format!(
                "{}/{} on {} {} (frame {})",
                x["kind"].as_str().unwrap(),
                x["outcome"].as_str().unwrap(),
                x["method"].as_str().unwrap(),
                x["target"].as_str().unwrap(),
                x["request_frame"]
            ));
        }
        for x in e["informational"].as_array().unwrap() {
            verdict.push(format!(
                "informational {} on {} {} (frame {})",
                x["kind"].as_str().unwrap(),
                x["method"].as_str().unwrap(),
                x["target"].as_str().unwrap(),
                x["request_frame"]
            ));
        }
        if verdict.is_empty() {
            verdict.push("no finding".to_string());
        }
        s.push_str(&format!(
            "\n## `{}`\n\n{} {} packets. Expected: {}; exit code {}.\n",
            f.file,
            f.description,
            f.packets.len(),
            verdict.join(", "),
            e["exit_code"]
        ));
    }
    s
}

fn main() -> std::io::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/scenarios"));
    fs::create_dir_all(&dir)?;
    let fixtures = vec![
        crossed_fin(Vantage::Client, "crossed_fin_client_side.pcap"),
        crossed_fin(Vantage::Server, "crossed_fin_server_side.pcap"),
        after_fin(),
        after_rst(),
        reset_unanswered(true),
        reset_unanswered(false),
        closed_unanswered(),
        unanswered_at_end(),
        retransmitted_request(),
        pipelined_tail_lost(),
        fin_piggyback(),
        tuple_reuse(),
        midstream(),
        seq_wrap(),
        forged_rst_before_handshake(),
        retried(),
        lost_post(),
        idle_close_no_reuse(),
        sll2_crossed(),
        snaplen_truncated(128, "snaplen_truncated.pcap"),
        snaplen_truncated(256, "snaplen_body_cut.pcap"),
        h2::goaway(Vantage::Client, "h2_goaway_client_side.pcap"),
        h2::goaway(Vantage::Server, "h2_goaway_server_side.pcap"),
        h2::refused_stream(),
        h2::after_goaway(),
        h2::split_headers(),
        h2::many_frames(),
        h2::midstream(),
        h2::request_limit(),
        h2::upgrade(),
    ];
    let mut expected = serde_json::Map::new();
    for f in &fixtures {
        let v = write_fixture(&dir, f)?;
        println!(
            "{:34} {:3} packets  {}",
            f.file,
            f.packets.len(),
            v["findings"]
        );
        expected.insert(f.file.to_string(), v);
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(expected.clone()))?;
    text.push('\n');
    fs::write(dir.join("expected.json"), text)?;
    fs::write(dir.join("README.md"), readme(&fixtures, &expected))?;
    println!("wrote {} captures to {}", fixtures.len(), dir.display());
    Ok(())
}
