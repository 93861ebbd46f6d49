//! The HTTP/2 scenarios: h2c with prior knowledge (or by upgrade) to 198.51.100.20:8080, header
//! blocks HPACK-encoded per direction (`tcprace::synth::h2`), the GOAWAY in the role of the FIN.

use super::{D_MS, Fixture, at, cfg, plus, tag};
use tcprace::synth::h2::{
    self as w, CANCEL, HeaderEncoder, NO_ERROR, PREFACE, REFUSED_STREAM, settings, settings_ack,
};
use tcprace::synth::{Conversation, SegId, Side, Vantage, merge};
use tcprace::time::Timestamp;

const AUTHORITY: &str = "api.example.com";

/// An HTTP/2 connection: the TCP conversation and each direction's HPACK encoder.
struct H2 {
    c: Conversation,
    client: HeaderEncoder,
    server: HeaderEncoder,
}

impl H2 {
    /// Handshake, then both prefaces; returns the connection and when it is ready.
    fn open(id: u32, port: u16, vantage: Vantage, t: Timestamp) -> (H2, Timestamp) {
        let mut c = Conversation::new(cfg(id, port, vantage));
        let t = c.handshake(t);
        let mut preface = PREFACE.to_vec();
        preface.extend(settings(&[(3, 100), (4, 65535)]));
        c.send(Side::Client, t, &preface);
        let mut srv = settings(&[(3, 100)]);
        srv.extend(settings_ack());
        c.send(Side::Server, plus(t, D_MS + 0.5), &srv);
        c.send(Side::Client, plus(t, 2.0 * D_MS + 0.5), &settings_ack());
        let h = H2 {
            c,
            client: HeaderEncoder::default(),
            server: HeaderEncoder::default(),
        };
        (h, plus(t, 2.0 * D_MS + 1.0))
    }

    /// The client's HEADERS (and DATA for a body) on `stream` at `t`; returns the first segment.
    fn request(
        &mut self,
        t: Timestamp,
        stream: u32,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> SegId {
        let mut bytes = self
            .client
            .request(stream, method, path, AUTHORITY, body.is_empty());
        if !body.is_empty() {
            bytes.extend(w::data(stream, body, true));
        }
        self.c.send(Side::Client, t, &bytes)[0]
    }

    /// The server's response on `stream` at `t`: HEADERS and a DATA frame ending the stream.
    fn respond(&mut self, t: Timestamp, stream: u32) {
        let mut bytes = self.server.response(stream, 200, false);
        bytes.extend(w::data(stream, b"ok\n", true));
        self.c.send(Side::Server, t, &bytes);
    }

    /// A request answered 1 ms after it arrives, acknowledged by the client; returns when the
    /// response was sent.
    fn exchange(&mut self, t: Timestamp, stream: u32, method: &str, path: &str) -> Timestamp {
        self.request(t, stream, method, path, b"");
        let sent = plus(t, D_MS + 1.0);
        self.respond(sent, stream);
        self.c.ack(Side::Client, plus(sent, D_MS));
        sent
    }

    /// The server's idle close at `t`: GOAWAY with `last` and, 1 ms later, its FIN; the client
    /// acknowledges both on arrival and cancels the streams above `last` it had opened.
    fn goaway_close(&mut self, t: Timestamp, last: u32, cancel: &[u32]) {
        self.c.send(Side::Server, t, &w::goaway(last, NO_ERROR));
        self.c.fin(Side::Server, plus(t, 1.0));
        let mut rst = Vec::new();
        for &s in cancel {
            rst.extend(w::rst_stream(s, CANCEL));
        }
        if rst.is_empty() {
            self.c.ack(Side::Client, plus(t, D_MS + 1.0));
        } else {
            self.c.send(Side::Client, plus(t, D_MS + 1.0), &rst);
        }
    }
}

const GOAWAY_NOTES: &str = "d=10 ms, h2c with prior knowledge. The server's idle close: GOAWAY (NO_ERROR, last stream id L) at T, FIN at T+1ms; a HEADERS sent at T+2ms opens a stream above L with an ack that does not cover the GOAWAY (not yet received), and the GOAWAY's ack does not cover the HEADERS: they crossed. The client cancels that stream (RST_STREAM CANCEL) when the GOAWAY arrives; the server's kernel answers the late segments with RSTs.";

/// Streams 1 and 3 answered, stream 5 taken by the server (at or below the GOAWAY's last
/// stream id 5) but cut off by its close, stream 7 crossing the GOAWAY, then retried.
fn goaway_conv(vantage: Vantage, port: u16) -> (Conversation, Conversation, SegId, SegId) {
    let (mut h, t) = H2::open(1, port, vantage, at(0.0));
    h.exchange(t, 1, "GET", "/a");
    let sent = h.exchange(plus(t, 50.0), 3, "GET", "/b");
    // a slow POST the server takes (stream 5 <= L) but never answers
    let slow = h.request(plus(sent, 100.0), 5, "POST", "/slow", b"{\"q\":1}");
    h.c.ack(Side::Server, plus(sent, 100.0 + D_MS));
    let g = plus(sent, 1000.0);
    h.c.send(Side::Server, g, &w::goaway(5, NO_ERROR));
    h.c.fin(Side::Server, plus(g, 1.0));
    let crossed = h.request(plus(g, 2.0), 7, "GET", "/c", b"");
    h.c.send(Side::Client, plus(g, D_MS + 1.0), &w::rst_stream(7, CANCEL));
    h.c.rst_reply(Side::Server, plus(g, D_MS + 2.0));
    // the retry of /c on a new connection once the GOAWAY arrived
    let (mut r, t2) = H2::open(2, port + 1, vantage, plus(g, D_MS + 3.0));
    r.exchange(t2, 1, "GET", "/c");
    (h.c, r.c, slow, crossed)
}

pub(super) fn goaway(vantage: Vantage, file: &'static str) -> Fixture {
    let port = if vantage == Vantage::Client {
        41001
    } else {
        41003
    };
    let (a, b, slow, crossed) = goaway_conv(vantage, port);
    let side = if vantage == Vantage::Client {
        "client"
    } else {
        "server"
    };
    Fixture::new(file, merge([a.packets(), b.packets()]))
        .finding("closed_unanswered", "lost", "POST", "/slow", tag(&a, slow))
        .finding("crossed_goaway", "retried", "GET", "/c", tag(&a, crossed))
        .notes(&format!("{GOAWAY_NOTES} L=5: stream 5 (POST /slow, taken: the server ACKed it, then closed without answering) keeps the HTTP/1.x verdict from the FIN; stream 7 (GET /c) crossed the GOAWAY and is retried on a new connection (port {}).", port + 1))
        .describe(&format!("HTTP/2 (h2c, prior knowledge) connection 192.0.2.10:{port} -> 198.51.100.20:8080 captured at the {side}, d=10 ms. Streams 1 and 3 answered; POST /slow on stream 5 is ACKed but not answered; after ~1 s idle the server sends GOAWAY (last stream id 5) and FIN; 2 ms later the client opens stream 7 (GET /c), which crosses the GOAWAY, cancels it when the GOAWAY arrives and retries GET /c on a new connection, answered 200. Streams above and below the last stream id."))
}

pub(super) fn refused_stream() -> Fixture {
    let (mut h, t) = H2::open(1, 41010, Vantage::Client, at(0.0));
    h.exchange(t, 1, "GET", "/a");
    let rt = plus(t, 100.0);
    let r = h.request(rt, 3, "POST", "/api/orders", b"{\"item\":42}");
    h.c.send(
        Side::Server,
        plus(rt, D_MS + 0.5),
        &w::rst_stream(3, REFUSED_STREAM),
    );
    h.c.ack(Side::Client, plus(rt, 2.0 * D_MS + 0.5));
    h.exchange(plus(rt, 200.0), 5, "GET", "/b");
    Fixture::new("h2_refused_stream.pcap", h.c.packets())
        .finding("refused_stream", "lost", "POST", "/api/orders", tag(&h.c, r))
        .notes("d=10 ms, h2c. The server resets stream 3 (POST /api/orders) with RST_STREAM REFUSED_STREAM 0.5 ms after it arrives; the connection goes on (GET /b on stream 5 answered). Not retried.")
        .describe("HTTP/2 (h2c) connection 192.0.2.10:41010 -> 198.51.100.20:8080, client-side capture, d=10 ms. GET /a answered; the server refuses stream 3 (POST /api/orders) with RST_STREAM REFUSED_STREAM (it did not process it: safe to retry, but the client does not); the connection goes on, GET /b is answered.")
}

pub(super) fn after_goaway() -> Fixture {
    let (mut h, t) = H2::open(1, 41020, Vantage::Client, at(0.0));
    let sent = h.exchange(t, 1, "GET", "/a");
    let g = plus(sent, 1000.0);
    h.c.send(Side::Server, g, &w::goaway(1, NO_ERROR));
    h.c.ack(Side::Client, plus(g, D_MS));
    let r = h.request(plus(g, D_MS + 50.0), 3, "GET", "/b", b"");
    h.c.fin(Side::Server, plus(g, 100.0));
    h.c.ack(Side::Client, plus(g, 100.0 + D_MS));
    Fixture::new("h2_after_goaway.pcap", h.c.packets())
        .finding("after_goaway", "lost", "GET", "/b", tag(&h.c, r))
        .notes("d=10 ms, h2c. GOAWAY (last stream id 1) from the server; the client ACKs it on arrival and 50 ms later opens stream 3 (GET /b) with an ack covering the GOAWAY: a client that ignores GOAWAY. The server never processes it and closes.")
        .describe("HTTP/2 (h2c) connection 192.0.2.10:41020 -> 198.51.100.20:8080, client-side capture, d=10 ms. GET /a answered; after 1 s idle the server sends GOAWAY (last stream id 1); the client acknowledges it, then 50 ms later opens stream 3 (GET /b) on the connection going away (a client bug); the server closes without processing it.")
}

pub(super) fn split_headers() -> Fixture {
    let (mut h, t) = H2::open(1, 41030, Vantage::Server, at(0.0));
    let sent = h.exchange(t, 1, "GET", "/a");
    let g = plus(sent, 1000.0);
    h.c.send(Side::Server, g, &w::goaway(1, NO_ERROR));
    h.c.fin(Side::Server, plus(g, 1.0));
    // a large request head in HEADERS + 2 CONTINUATION frames, in 40-byte segments
    let path = "/reports/2026/quarterly-summary?region=emea&format=csv&columns=all";
    let cookie = "session=0123456789abcdef0123456789abcdef; theme=dark; locale=en-GB";
    let bytes = h.client.headers(
        3,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", AUTHORITY),
            (":path", path),
            ("cookie", cookie),
        ],
        true,
        3,
    );
    h.c.set_mss(40);
    let ids = h.c.send(Side::Client, plus(g, 2.0), &bytes);
    h.c.rst_reply(Side::Server, plus(g, D_MS + 2.0));
    Fixture::new("h2_split_headers.pcap", h.c.packets())
        .finding("crossed_goaway", "lost", "GET", path, tag(&h.c, ids[0]))
        .notes(&format!("{GOAWAY_NOTES} Here the crossing request's head is {} bytes in a HEADERS frame and two CONTINUATION frames, sent in {} segments of 40 bytes (frame headers split too); request_frame is the segment of the HEADERS frame's first byte.", bytes.len(), ids.len()))
        .describe("HTTP/2 (h2c) connection 192.0.2.10:41030 -> 198.51.100.20:8080, server-side capture, d=10 ms. GET /a answered; after 1 s idle GOAWAY (last stream id 1) and FIN; 2 ms later the client opens stream 3 with a long head (a cookie, a long path) in HEADERS + CONTINUATION frames, cut into 40-byte segments: the HEADERS crosses the GOAWAY.")
}

pub(super) fn many_frames() -> Fixture {
    let (mut h, t) = H2::open(1, 41040, Vantage::Client, at(0.0));
    // two requests in one segment, both answered in one segment
    let mut both = h.client.request(1, "GET", "/a", AUTHORITY, true);
    both.extend(h.client.request(3, "GET", "/b", AUTHORITY, true));
    h.c.send(Side::Client, t, &both);
    let mut answers = h.server.response(3, 200, false);
    answers.extend(w::data(3, b"b\n", false));
    answers.extend(h.server.response(1, 200, true));
    answers.extend(w::data(3, b"", true));
    answers.extend(w::window_update(0, 65535));
    let sent = plus(t, D_MS + 1.0);
    h.c.send(Side::Server, sent, &answers);
    h.c.ack(Side::Client, plus(sent, D_MS));
    // the server's close packs GOAWAY, a PING and its FIN; two requests cross it in one segment
    let g = plus(sent, 1000.0);
    let mut close = w::frame(w::PING, 0, 0, &[1; 8]);
    close.extend(w::goaway(3, NO_ERROR));
    h.c.send_fin(Side::Server, g, &close);
    let mut two = h.client.request(5, "GET", "/c", AUTHORITY, true);
    two.extend(h.client.request(7, "DELETE", "/d/1", AUTHORITY, true));
    let r = h.c.send(Side::Client, plus(g, 2.0), &two)[0];
    h.c.ack(Side::Client, plus(g, D_MS));
    h.c.rst_reply(Side::Server, plus(g, D_MS + 2.0));
    Fixture::new("h2_many_frames.pcap", h.c.packets())
        .finding("crossed_goaway", "lost", "GET", "/c", tag(&h.c, r))
        .finding("crossed_goaway", "lost", "DELETE", "/d/1", tag(&h.c, r))
        .notes(&format!("{GOAWAY_NOTES} Several frames per segment: two HEADERS in one segment, the answers (HEADERS, DATA, HEADERS, DATA, WINDOW_UPDATE) in one, PING + GOAWAY + FIN in one, and the two crossing HEADERS (streams 5 and 7) in one: two findings on the same frame."))
        .describe("HTTP/2 (h2c) connection 192.0.2.10:41040 -> 198.51.100.20:8080, client-side capture, d=10 ms. Streams 1 and 3 opened in one segment and answered out of order in one segment; after 1 s idle the server sends PING, GOAWAY (last stream id 3) and its FIN in one segment; 2 ms later the client opens streams 5 and 7 in one segment: both cross the GOAWAY.")
}

pub(super) fn midstream() -> Fixture {
    let mut c =
        Conversation::established(cfg(1, 41050, Vantage::Middle).isn(0x1111_2222, 0x3333_4444));
    let mut client = HeaderEncoder::default();
    let mut server = HeaderEncoder::default();
    // before the capture: the prefaces and a first exchange (filling both HPACK tables)
    let mut before = PREFACE.to_vec();
    before.extend(settings(&[]));
    before.extend(client.request(1, "GET", "/x", AUTHORITY, true));
    for id in c.send(Side::Client, at(0.0), &before) {
        c.drop_capture(id);
    }
    let mut resp = settings(&[]);
    resp.extend(server.response(1, 200, false));
    resp.extend(w::data(1, &[b'x'; 1200], false));
    for id in c.send(Side::Server, at(D_MS + 1.0), &resp) {
        c.drop_capture(id);
    }
    // in the capture: the rest of that response, two exchanges, and the crossing
    c.send(
        Side::Server,
        at(D_MS + 1.5),
        &w::data(1, &[b'y'; 300], true),
    );
    c.ack(Side::Client, at(2.0 * D_MS + 2.0));
    let mut t = at(100.0);
    for (s, path) in [(3, "/m1"), (5, "/m2")] {
        c.send(
            Side::Client,
            t,
            &client.request(s, "GET", path, AUTHORITY, true),
        );
        let mut a = server.response(s, 200, false);
        a.extend(w::data(s, b"ok\n", true));
        c.send(Side::Server, plus(t, D_MS + 1.0), &a);
        c.ack(Side::Client, plus(t, 2.0 * D_MS + 1.0));
        t = plus(t, 60.0);
    }
    let g = plus(t, 1000.0);
    c.send(Side::Server, g, &w::goaway(5, NO_ERROR));
    c.fin(Side::Server, plus(g, 1.0));
    let r = c.send(
        Side::Client,
        plus(g, 2.0),
        &client.request(7, "GET", "/c", AUTHORITY, true),
    )[0];
    c.ack(Side::Client, plus(g, D_MS + 1.0));
    c.rst_reply(Side::Server, plus(g, D_MS + 2.0));
    Fixture::new("h2_midstream.pcap", c.packets())
        .finding("crossed_goaway", "lost", "HTTP/2", "stream 7 (head not decoded)", tag(&c, r))
        .notes(&format!("No handshake and no preface in the capture: it starts with the last DATA frame of stream 1's response. The client's HPACK table holds entries added before the capture (x-fixture-client), which every later head refers to: the heads are not decoded, the requests are known by their stream ids (3, 5, 7). Captured mid-path. {GOAWAY_NOTES}"))
        .describe("HTTP/2 (h2c) connection 192.0.2.10:41050 -> 198.51.100.20:8080 picked up mid-stream (captured half-way, d=10 ms): the prefaces and the first exchange are not in the file. Streams 3 and 5 answered, then after 1 s idle GOAWAY (last stream id 5) and FIN; stream 7 crosses it. Its head refers to HPACK table entries the capture never showed: the finding names it by its stream.")
}

pub(super) fn request_limit() -> Fixture {
    // the server sends GOAWAY after 3 requests per connection; on the third connection the
    // client's fourth request crosses it
    let mut convs = Vec::new();
    let mut start = at(0.0);
    let mut crossing = None;
    for n in 0..3u16 {
        let (mut h, t) = H2::open(u32::from(n) + 1, 41060 + n, Vantage::Client, start);
        for (i, s) in [1u32, 3].into_iter().enumerate() {
            h.exchange(plus(t, 100.0 * i as f64), s, "GET", &format!("/p/{n}/{i}"));
        }
        // the third request: its response, then at once the GOAWAY (the client's ACK of the
        // response comes with its acknowledgement of the GOAWAY)
        let third = plus(t, 200.0);
        h.request(third, 5, "GET", &format!("/p/{n}/2"), b"");
        let last = plus(third, D_MS + 1.0);
        h.respond(last, 5);
        let g = plus(last, 0.2);
        if n == 2 {
            h.c.send(Side::Server, g, &w::goaway(5, NO_ERROR));
            h.c.fin(Side::Server, plus(g, 1.0));
            crossing = Some(h.request(plus(g, 2.0), 7, "GET", "/p/2/3", b""));
            h.c.send(Side::Client, plus(g, D_MS + 1.0), &w::rst_stream(7, CANCEL));
            h.c.rst_reply(Side::Server, plus(g, D_MS + 2.0));
        } else {
            h.goaway_close(g, 5, &[]);
            h.c.fin(Side::Client, plus(g, D_MS + 2.0));
            h.c.ack(Side::Server, plus(g, 2.0 * D_MS + 2.0));
        }
        start = plus(g, 100.0);
        let r = crossing.map(|r| tag(&h.c, r));
        convs.push((h.c, r));
    }
    let r = convs[2].1.expect("the crossing request");
    Fixture::new("h2_request_limit.pcap", merge(convs.into_iter().map(|(c, _)| c.packets())))
        .finding("crossed_goaway", "lost", "GET", "/p/2/3", r)
        .notes("d=10 ms, h2c, three connections in a row. The server sends GOAWAY (last stream id 5) 0.2 ms after answering the third request on each connection (a cap of 3 requests per connection, as load balancers have), then FIN. On the third connection the client's fourth request (stream 7) crosses it. The endpoint statistics infer the cause: goaways.requests_per_connection = 3.")
        .describe("Three HTTP/2 (h2c) connections from 192.0.2.10:41060-41062 to 198.51.100.20:8080, client-side capture, d=10 ms: on each, three GETs answered, then the server's GOAWAY (last stream id 5) right after the third response, and its FIN. On the last one the client opens stream 7 2 ms after the GOAWAY was sent: it crosses it. A request-count GOAWAY, not an idle one.")
}

pub(super) fn upgrade() -> Fixture {
    let mut c = Conversation::new(cfg(1, 41070, Vantage::Client));
    let t = c.handshake(at(0.0));
    let up = b"GET /start HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    c.send(Side::Client, t, up);
    let mut server = HeaderEncoder::default();
    let mut client = HeaderEncoder::default();
    let mut sw =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    sw.extend(settings(&[(3, 100)]));
    sw.extend(server.response(1, 200, false));
    sw.extend(w::data(1, b"started\n", true));
    let sent = plus(t, D_MS + 1.0);
    c.send(Side::Server, sent, &sw);
    let mut pre = PREFACE.to_vec();
    pre.extend(settings(&[]));
    pre.extend(settings_ack());
    c.send(Side::Client, plus(sent, D_MS), &pre);
    let g = plus(sent, 1000.0);
    c.send(Side::Server, g, &w::goaway(1, NO_ERROR));
    c.fin(Side::Server, plus(g, 1.0));
    let r = c.send(
        Side::Client,
        plus(g, 2.0),
        &client.request(3, "GET", "/next", AUTHORITY, true),
    )[0];
    c.ack(Side::Client, plus(g, D_MS + 1.0));
    c.rst_reply(Side::Server, plus(g, D_MS + 2.0));
    Fixture::new("h2c_upgrade.pcap", c.packets())
        .finding("crossed_goaway", "lost", "GET", "/next", tag(&c, r))
        .notes(&format!("HTTP/1.1 GET /start with Upgrade: h2c, answered 101; the server's SETTINGS and the answer to the upgrade request (stream 1) follow in the same segment, then the client's preface. {GOAWAY_NOTES} L=1: stream 3 (GET /next) crossed it."))
        .describe("Client-side capture, d=10 ms: an HTTP/1.1 request upgraded to h2c (101 Switching Protocols), the connection goes on in HTTP/2; after 1 s idle the server's GOAWAY (last stream id 1) and FIN cross the client's next request on stream 3.")
}
