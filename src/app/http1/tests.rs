use super::head::HEAD_CAP;
use super::*;
use crate::flow::SegMeta;

/// Segment metadata does not matter to the framing.
const M: SegMeta = SegMeta {
    at: crate::flow::FrameRef {
        input: 0,
        frame: 0,
        ordinal: 0,
        ts: crate::time::Timestamp(0),
    },
    seq: crate::flow::SeqNumber(0),
    off: 0,
    ack: None,
    ack_off: None,
};

/// Compact, exact rendering of events for assertions.
fn show(events: &[HttpEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            HttpEvent::Request(h) => {
                format!("req {} {} {}-{}", h.method, h.target, h.start, h.head_end)
            }
            HttpEvent::RequestEnd { end, .. } => format!("reqend {end}"),
            HttpEvent::Response(h) => format!("resp {} {}-{}", h.status, h.start, h.head_end),
            HttpEvent::ResponseEnd { end } => format!("respend {end}"),
            HttpEvent::Desync { offset, .. } => format!("desync {offset}"),
            HttpEvent::Tunnel { offset } => format!("tunnel {offset}"),
        })
        .collect()
}

fn feed_all(s: &mut HttpStream, base: i64, data: &[u8]) -> Vec<HttpEvent> {
    let mut out = Vec::new();
    s.on_data(base, data, M, &mut out);
    out
}

fn whole(start_known: bool, methods: &[&str], data: &[u8]) -> Vec<HttpEvent> {
    let mut s = HttpStream::new(start_known);
    for m in methods {
        s.push_request_method(m);
    }
    feed_all(&mut s, 0, data)
}

/// Feeds `data` cut at the given positions.
fn split_at(start_known: bool, methods: &[&str], data: &[u8], cuts: &[usize]) -> Vec<HttpEvent> {
    let mut s = HttpStream::new(start_known);
    for m in methods {
        s.push_request_method(m);
    }
    let mut out = Vec::new();
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        s.on_data(prev as i64, &data[prev..c], M, &mut out);
        prev = c;
    }
    out
}

fn bytewise(start_known: bool, methods: &[&str], data: &[u8]) -> Vec<HttpEvent> {
    let cuts: Vec<usize> = (1..data.len()).collect();
    split_at(start_known, methods, data, &cuts)
}

/// Same events whole, byte by byte, and split in two (and three) at every position.
fn assert_split_invariant(start_known: bool, methods: &[&str], data: &[u8]) -> Vec<HttpEvent> {
    let expect = whole(start_known, methods, data);
    assert_eq!(bytewise(start_known, methods, data), expect, "byte by byte");
    for i in 0..=data.len() {
        assert_eq!(
            split_at(start_known, methods, data, &[i]),
            expect,
            "split at {i}"
        );
        let j = (i + 7).min(data.len());
        assert_eq!(
            split_at(start_known, methods, data, &[i, j]),
            expect,
            "split at {i},{j}"
        );
    }
    expect
}

#[test]
fn simple_get_and_200() {
    let req = b"GET /a?b=1 HTTP/1.1\r\nHost: Example.com \r\nUser-Agent: t\r\n\r\n";
    let mut c = HttpStream::new(true);
    let ev = feed_all(&mut c, 100, req);
    assert_eq!(c.role(), Role::Client);
    let end = 100 + req.len() as i64;
    assert_eq!(
        ev,
        vec![
            HttpEvent::Request(RequestHead {
                start: 100,
                head_end: end,
                first: M,
                method: "GET".into(),
                target: "/a?b=1".into(),
                host: Some("Example.com".into()),
                version: 1,
                connection_close: false,
                content_length: None,
                chunked: false,
                request_id: None,
            }),
            HttpEvent::RequestEnd {
                end,
                body: Some(BodyDigest { len: 0, crc32: 0 }),
            },
        ]
    );

    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    let mut data = head.to_vec();
    data.extend_from_slice(b"hello");
    let mut s = HttpStream::new(true);
    s.push_request_method("GET");
    let ev = feed_all(&mut s, 0, &data);
    assert_eq!(s.role(), Role::Server);
    let he = head.len() as i64;
    assert_eq!(
        ev,
        vec![
            HttpEvent::Response(ResponseHead {
                start: 0,
                head_end: he,
                first: M,
                status: 200,
                version: 1,
                connection_close: false,
                keep_alive_timeout: None,
                keep_alive: None,
            }),
            HttpEvent::ResponseEnd { end: he + 5 },
        ]
    );
}

#[test]
fn request_with_body_and_head_split_everywhere() {
    let mut data = Vec::new();
    data.extend_from_slice(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd");
    let first = data.len() as i64;
    data.extend_from_slice(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
    let ev = assert_split_invariant(true, &[], &data);
    assert_eq!(
        show(&ev),
        vec![
            "req POST /up 0-49".to_string(),
            format!("reqend {first}"),
            format!("req GET /x {first}-{}", data.len()),
            format!("reqend {}", data.len()),
        ]
    );
    match &ev[0] {
        HttpEvent::Request(h) => {
            assert_eq!(h.content_length, Some(4));
            assert_eq!(h.host.as_deref(), Some("h"));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn pipelined_requests_in_one_chunk() {
    let r1 = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let r2 = b"HEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    let r3 = b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy";
    let data = [&r1[..], r2, r3].concat();
    let (a, b) = (r1.len(), r1.len() + r2.len());
    let ev = whole(true, &[], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("req GET /1 0-{a}"),
            format!("reqend {a}"),
            format!("req HEAD /2 {a}-{b}"),
            format!("reqend {b}"),
            format!("req POST /3 {b}-{}", data.len() - 2),
            format!("reqend {}", data.len()),
        ]
    );
    assert_split_invariant(true, &[], &data);
}

#[test]
fn pipelined_responses_in_one_chunk() {
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let r2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let r3 = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
    let data = [&r1[..], r2, r3].concat();
    let a = r1.len();
    let b = a + r2.len();
    let ev = assert_split_invariant(true, &["GET", "GET", "GET"], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{}", a - 3),
            format!("respend {a}"),
            format!("resp 404 {a}-{b}"),
            format!("respend {b}"),
            format!("resp 200 {b}-{}", data.len() - 1),
            format!("respend {}", data.len()),
        ]
    );
}

#[test]
fn chunked_response_split_everywhere() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n";
    let body =
        b"5;ext=1;q=\"a b\"\r\nhello\r\nA \r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
    let next = b"HTTP/1.1 204 No Content\r\n\r\n";
    let data = [&head[..], body, next].concat();
    let he = head.len();
    let end = he + body.len();
    let ev = assert_split_invariant(true, &["GET", "GET"], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{he}"),
            format!("respend {end}"),
            format!("resp 204 {end}-{}", data.len()),
            format!("respend {}", data.len()),
        ]
    );
}

#[test]
fn chunked_request_without_trailers_and_bare_lf() {
    let data =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\nGET / HTTP/1.1\r\n\r\n";
    let ev = assert_split_invariant(true, &[], data);
    let h = 47;
    assert_eq!(
        show(&ev),
        vec![
            format!("req POST / 0-{h}"),
            format!("reqend {}", h + 9),
            format!("req GET / {}-{}", h + 9, data.len()),
            format!("reqend {}", data.len()),
        ]
    );
    match &ev[0] {
        HttpEvent::Request(r) => assert!(r.chunked && r.content_length.is_none()),
        e => panic!("{e:?}"),
    }
}

#[test]
fn head_response_has_no_body() {
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let data = [&r1[..], r2].concat();
    let a = r1.len();
    let ev = assert_split_invariant(true, &["HEAD", "GET"], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{a}"),
            format!("respend {a}"),
            format!("resp 200 {a}-{}", data.len() - 3),
            format!("respend {}", data.len()),
        ]
    );
}

#[test]
fn no_body_for_204_and_304() {
    let r1 = b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n";
    let r2 = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n";
    let r3 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let data = [&r1[..], r2, r3].concat();
    let a = r1.len();
    let b = a + r2.len();
    let ev = whole(true, &[], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 204 0-{a}"),
            format!("respend {a}"),
            format!("resp 304 {a}-{b}"),
            format!("respend {b}"),
            format!("resp 200 {b}-{}", data.len() - 2),
            format!("respend {}", data.len()),
        ]
    );
}

#[test]
fn continue_100_then_200() {
    let r1 = b"HTTP/1.1 100 Continue\r\n\r\n";
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let r3 = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
    let data = [&r1[..], r2, r3].concat();
    let a = r1.len();
    let b = a + r2.len();
    // The 100 must not consume the FIFO entry: the second final response answers HEAD.
    let ev = assert_split_invariant(true, &["POST", "HEAD"], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 100 0-{a}"),
            format!("resp 200 {a}-{}", b - 2),
            format!("respend {b}"),
            format!("resp 200 {b}-{}", data.len()),
            format!("respend {}", data.len()),
        ]
    );
}

#[test]
fn switching_protocols_is_a_tunnel() {
    let r1 =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let data = [&r1[..], b"\x81\x05hello HTTP/1.1 200 OK\r\n\r\n"].concat();
    let mut s = HttpStream::new(true);
    s.push_request_method("GET");
    let mut ev = feed_all(&mut s, 0, &data);
    let a = r1.len();
    assert_eq!(
        show(&ev),
        vec![format!("resp 101 0-{a}"), format!("tunnel {a}")]
    );
    assert_eq!(s.role(), Role::NotHttp);
    s.on_data(data.len() as i64, b"HTTP/1.1 200 OK\r\n\r\n", M, &mut ev);
    s.on_eof(1000, M, &mut ev);
    assert_eq!(ev.len(), 2);
    assert_split_invariant(true, &["GET"], &data);
}

#[test]
fn connect_200_is_a_tunnel_but_407_is_not() {
    let r1 = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
    let r2 = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let data = [&r1[..], r2, b"\x16\x03\x01\x00\x05hello"].concat();
    let a = r1.len();
    let b = a + r2.len();
    let ev = assert_split_invariant(true, &["CONNECT", "CONNECT"], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 407 0-{a}"),
            format!("respend {a}"),
            format!("resp 200 {a}-{b}"),
            format!("tunnel {b}"),
        ]
    );
}

#[test]
fn client_side_connect_then_tls_is_a_tunnel() {
    let r1 = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let data = [&r1[..], b"\x16\x03\x01\x02\x00\x01"].concat();
    let a = r1.len();
    let mut s = HttpStream::new(true);
    let ev = feed_all(&mut s, 0, &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("req CONNECT example.com:443 0-{a}"),
            format!("reqend {a}"),
            format!("tunnel {a}"),
        ]
    );
    assert_eq!(s.role(), Role::NotHttp);
    assert_split_invariant(true, &[], &data);
    // A retried CONNECT after a refusal is still HTTP.
    let data = [&r1[..], r1].concat();
    assert_eq!(whole(true, &[], &data).len(), 4);
}

#[test]
fn read_until_close_ended_by_eof() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, head);
    s.on_data(head.len() as i64, b"some body", M, &mut ev);
    s.on_gap(head.len() as i64 + 9, 1000, M, &mut ev);
    s.on_data(
        head.len() as i64 + 1009,
        b"HTTP/1.1 200 OK\r\n\r\n",
        M,
        &mut ev,
    );
    let eof = head.len() as i64 + 1009 + 19;
    s.on_eof(eof, M, &mut ev);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{}", head.len()),
            format!("respend {eof}"),
        ]
    );
    assert_eq!(s.role(), Role::Server);
}

#[test]
fn http10_response_without_length() {
    let head = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n";
    let data = [&head[..], b"body bytes"].concat();
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, &data);
    s.on_eof(data.len() as i64, M, &mut ev);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{}", head.len()),
            format!("respend {}", data.len()),
        ]
    );
    match &ev[0] {
        HttpEvent::Response(r) => assert_eq!(r.version, 0),
        e => panic!("{e:?}"),
    }
}

#[test]
fn gap_inside_content_length_body_keeps_framing() {
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n";
    let h = r1.len() as i64;
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let mut s = HttpStream::new(true);
    let mut ev = Vec::new();
    // Snaplen-like: 10 bytes captured out of each 1000-byte segment.
    s.on_data(0, r1, M, &mut ev);
    let mut off = h;
    for _ in 0..3 {
        s.on_data(off, &[b'x'; 10], M, &mut ev);
        s.on_gap(off + 10, 990, M, &mut ev);
        off += 1000;
    }
    s.on_data(off, r2, M, &mut ev);
    let e2 = off + r2.len() as i64;
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{h}"),
            format!("respend {off}"),
            format!("resp 200 {off}-{e2}"),
            format!("respend {e2}"),
        ]
    );
}

#[test]
fn gap_inside_chunk_data_keeps_framing() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let h = head.len() as i64;
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, head);
    s.on_data(h, b"64\r\nab", M, &mut ev); // 100-byte chunk
    s.on_gap(h + 6, 98, M, &mut ev);
    s.on_data(h + 104, b"\r\n0\r\n\r\n", M, &mut ev);
    assert_eq!(
        show(&ev),
        vec![format!("resp 200 0-{h}"), format!("respend {}", h + 111)]
    );
}

#[test]
fn gap_over_body_end_and_next_head_resyncs() {
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    let h = r1.len() as i64;
    let r3 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, r1);
    s.on_gap(h, 60, M, &mut ev); // body end plus the start of another response
    s.on_data(h + 60, r3, M, &mut ev);
    let e3 = h + 60 + r3.len() as i64;
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{h}"),
            format!("respend {}", h + 10),
            format!("desync {}", h + 10),
            format!("resp 404 {}-{e3}", h + 60),
            format!("respend {e3}"),
        ]
    );
}

#[test]
fn gap_inside_head_desyncs_then_resyncs_on_next_response() {
    let r1a = b"HTTP/1.1 200 OK\r\nContent-Le";
    let r1c = b": 4\r\nX: y\r\n\r\nok\r\n";
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, r1a);
    let g = r1a.len() as i64;
    s.on_gap(g, 4, M, &mut ev);
    let mut rest = r1c.to_vec();
    rest.extend_from_slice(r2);
    s.on_data(g + 4, &rest, M, &mut ev);
    let s2 = g + 4 + r1c.len() as i64;
    let e2 = g + 4 + rest.len() as i64;
    assert_eq!(
        show(&ev),
        vec![
            // the status line survived the gap: the response is still reported
            format!("resp 200 0-{g}"),
            format!("desync {g}"),
            format!("resp 200 {s2}-{}", e2 - 1),
            format!("respend {e2}"),
        ]
    );
    assert_eq!(s.role(), Role::Server);
    match &ev[1] {
        HttpEvent::Desync { reason, .. } => assert!(reason.contains("gap"), "{reason}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn request_head_cut_by_the_snaplen_is_still_reported() {
    let cut = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Ag";
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, cut);
    s.on_gap(cut.len() as i64, 200, M, &mut ev);
    match &ev[0] {
        HttpEvent::Request(r) => {
            assert_eq!(
                (r.method.as_str(), r.target.as_str()),
                ("GET", "/index.html")
            );
            assert_eq!(r.host.as_deref(), Some("example.com"));
            assert_eq!((r.start, r.head_end), (0, cut.len() as i64));
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(ev[1], HttpEvent::Desync { .. }));
    // a first line cut short is not guessed at
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, b"GET /index.ht");
    s.on_gap(13, 200, M, &mut ev);
    assert!(matches!(ev[..], [HttpEvent::Desync { .. }]), "{ev:?}");
}

#[test]
fn gap_in_chunk_size_line_desyncs() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let h = head.len() as i64;
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, head);
    s.on_data(h, b"1", M, &mut ev);
    s.on_gap(h + 1, 5, M, &mut ev);
    s.on_data(h + 6, b"\r\n0\r\n\r\nHTTP/1.1 304 OK\r\n\r\n", M, &mut ev);
    let s2 = h + 13;
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{h}"),
            format!("desync {}", h + 1),
            format!("resp 304 {s2}-{}", s2 + 19),
            format!("respend {}", s2 + 19),
        ]
    );
}

#[test]
fn midstream_pickup_inside_body_locks_on_next_request() {
    let body_tail = b"a=1&b=2 GET / HTTP/1.1 not a line start\r\nmore\r\n";
    let req = b"PUT /next HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx";
    let data = [&body_tail[..], req].concat();
    let a = body_tail.len();
    let ev = assert_split_invariant(false, &[], &data);
    assert_eq!(
        show(&ev),
        vec![
            format!("req PUT /next {a}-{}", data.len() - 1),
            format!("reqend {}", data.len()),
        ]
    );
    let mut s = HttpStream::new(false);
    feed_all(&mut s, 5000, &data);
    assert_eq!(s.role(), Role::Client);
}

#[test]
fn midstream_pickup_at_a_response_and_at_start() {
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
    let ev = assert_split_invariant(false, &[], data);
    assert_eq!(
        show(&ev),
        vec![
            format!("resp 200 0-{}", data.len() - 1),
            format!("respend {}", data.len())
        ]
    );
    // Starts after a gap (first bytes not captured).
    let mut s = HttpStream::new(false);
    let mut ev = Vec::new();
    s.on_gap(0, 100, M, &mut ev);
    s.on_data(100, b"xx\r\n", M, &mut ev);
    s.on_data(104, data, M, &mut ev);
    assert_eq!(
        show(&ev)[0],
        format!("resp 200 104-{}", 104 + data.len() - 1)
    );
}

#[test]
fn midstream_pickup_gives_up_after_budget() {
    let mut s = HttpStream::new(false);
    let mut ev = Vec::new();
    let junk = vec![b'a'; 1000];
    let mut off = 0;
    while off < 70_000 {
        s.on_data(off, &junk, M, &mut ev);
        off += 1000;
    }
    assert_eq!(s.role(), Role::NotHttp);
    s.on_data(off, b"\nGET / HTTP/1.1\r\n\r\n", M, &mut ev);
    assert!(ev.is_empty());
}

#[test]
fn non_http_with_known_start_is_ignored() {
    for data in [
        &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"get / HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"ABCDEFGHIJKLMNOP",
    ] {
        let mut s = HttpStream::new(true);
        let mut ev = feed_all(&mut s, 0, data);
        assert_eq!(s.role(), Role::NotHttp, "{data:?}");
        s.on_data(data.len() as i64, b"GET / HTTP/1.1\r\n\r\n", M, &mut ev);
        s.on_gap(1000, 10, M, &mut ev);
        s.on_eof(2000, M, &mut ev);
        assert!(ev.is_empty(), "{data:?}");
    }
}

#[test]
fn tls_bytes_are_not_http() {
    let mut s = HttpStream::new(true);
    let ev = feed_all(&mut s, 0, &[0x16, 0x03, 0x01]);
    assert!(ev.is_empty());
    assert_eq!(s.role(), Role::NotHttp);
    assert!(s.buf.capacity() == 0);
}

#[test]
fn detection_waits_for_enough_bytes() {
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, b"GE");
    assert_eq!(s.role(), Role::Unknown);
    s.on_data(2, b"T / HTTP/1.1\r\n\r\n", M, &mut ev);
    assert_eq!(s.role(), Role::Client);
    assert_eq!(show(&ev), vec!["req GET / 0-18", "reqend 18"]);

    let mut s = HttpStream::new(true);
    feed_all(&mut s, 0, b"HTTP/");
    assert_eq!(s.role(), Role::Unknown);
    let ev = feed_all(&mut s, 5, b"1.1 200 OK\r\n\r\n");
    assert_eq!(s.role(), Role::Server);
    assert_eq!(show(&ev), vec!["resp 200 0-19"]);

    // Uncommon methods need the whole request line.
    let data = b"PROPFIND /d HTTP/1.1\r\nDepth: 1\r\n\r\n";
    let ev = assert_split_invariant(true, &[], data);
    assert_eq!(show(&ev), vec!["req PROPFIND /d 0-34", "reqend 34"]);
}

#[test]
fn malformed_head_desyncs_and_recovers() {
    let bad = b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n";
    let good = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let data = [&bad[..], good].concat();
    let a = bad.len();
    let ev = assert_split_invariant(true, &[], &data);
    assert_eq!(
        show(&ev),
        vec![
            "desync 0".to_string(),
            format!("resp 200 {a}-{}", data.len() - 2),
            format!("respend {}", data.len()),
        ]
    );
    match &ev[0] {
        HttpEvent::Desync { reason, .. } => {
            assert_eq!(
                reason,
                "invalid response head at offset 0: invalid header name"
            )
        }
        e => panic!("{e:?}"),
    }

    let bad = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n";
    let good = b"GET /ok HTTP/1.1\r\n\r\n";
    let data = [&bad[..], good].concat();
    let a = bad.len();
    let ev = assert_split_invariant(true, &[], &data);
    assert_eq!(
        show(&ev),
        vec![
            "req GET / 0-27".to_string(),
            "reqend 27".to_string(),
            "desync 27".to_string(),
            format!("req GET /ok {a}-{}", data.len()),
            format!("reqend {}", data.len()),
        ]
    );
}

#[test]
fn connection_close_and_keep_alive() {
    let data = b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\nKeep-Alive: timeout=5, max=100\r\ncontent-length: 0\r\n\r\n";
    let ev = whole(true, &[], data);
    assert_eq!(
        ev[0],
        HttpEvent::Response(ResponseHead {
            start: 0,
            head_end: data.len() as i64,
            first: M,
            status: 200,
            version: 1,
            connection_close: true,
            keep_alive_timeout: Some(5),
            keep_alive: Some("timeout=5, max=100".into()),
        })
    );
    let data = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: max=3,TIMEOUT = \"15\"\r\nContent-Length: 0\r\n\r\n";
    match &whole(true, &[], data)[0] {
        HttpEvent::Response(r) => {
            assert!(!r.connection_close);
            assert_eq!(r.keep_alive_timeout, Some(15));
        }
        e => panic!("{e:?}"),
    }
    let data = b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n";
    match &whole(true, &[], data)[0] {
        HttpEvent::Request(r) => {
            assert!(r.connection_close);
            assert_eq!(r.version, 0);
            assert_eq!(r.host, None);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn invalid_or_conflicting_content_length() {
    for cl in [
        "Content-Length: 12a\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    ] {
        let data = format!("HTTP/1.1 200 OK\r\n{cl}\r\nHTTP/1.1 204 No\r\n\r\n");
        let ev = whole(true, &[], data.as_bytes());
        let a = data.len() - 19;
        assert_eq!(
            show(&ev),
            vec![
                "desync 0".to_string(),
                format!("resp 204 {a}-{}", data.len()),
                format!("respend {}", data.len()),
            ],
            "{cl}"
        );
        match &ev[0] {
            HttpEvent::Desync { reason, .. } => assert!(reason.contains("Content-Length")),
            e => panic!("{e:?}"),
        }
    }
    // Repeated identical values are fine.
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(
        show(&whole(true, &[], data)).last().unwrap(),
        &format!("respend {}", data.len())
    );
}

#[test]
fn huge_head_beyond_cap() {
    let mut data = b"HTTP/1.1 200 OK\r\n".to_vec();
    while data.len() < HEAD_CAP + 100 {
        data.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    data.extend_from_slice(b"\r\n");
    let a = data.len();
    data.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    for chunk in [1460usize, 100_000] {
        let mut s = HttpStream::new(true);
        let mut ev = Vec::new();
        let mut off = 0;
        while off < data.len() {
            let e = (off + chunk).min(data.len());
            s.on_data(off as i64, &data[off..e], M, &mut ev);
            off = e;
            assert!(s.buf.len() <= HEAD_CAP + 1);
        }
        assert_eq!(
            show(&ev),
            vec![
                "desync 0".to_string(),
                format!("resp 200 {a}-{}", data.len()),
                format!("respend {}", data.len()),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn many_headers_retry_with_larger_array() {
    let mut data = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..100 {
        data.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    data.extend_from_slice(b"Content-Length: 1\r\n\r\nz");
    let ev = whole(true, &[], &data);
    assert_eq!(show(&ev)[1], format!("respend {}", data.len()));
    let mut data = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..600 {
        data.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    data.extend_from_slice(b"\r\n");
    let ev = whole(true, &[], &data);
    assert_eq!(show(&ev), vec!["desync 0"]);
}

#[test]
fn eof_inside_body_is_reported() {
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, data);
    s.on_eof(data.len() as i64, M, &mut ev);
    assert_eq!(
        show(&ev),
        vec!["resp 200 0-39".to_string(), "desync 42".to_string()]
    );
    // Empty direction closed: not HTTP.
    let mut s = HttpStream::new(true);
    let mut ev = Vec::new();
    s.on_eof(0, M, &mut ev);
    assert!(ev.is_empty());
    assert_eq!(s.role(), Role::NotHttp);
}

#[test]
fn server_data_before_any_request_is_pushed() {
    let data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let mut s = HttpStream::new(true);
    let mut ev = feed_all(&mut s, 0, &data[..40]);
    s.push_request_method("GET");
    s.push_request_method("HEAD");
    s.on_data(40, &data[40..], M, &mut ev);
    // The first response was framed before its request was reported (assumed GET); the GET
    // pushed later is its own and is dropped, so the second response answers the HEAD.
    assert_eq!(
        show(&ev),
        vec![
            "resp 200 0-38".to_string(),
            "respend 40".to_string(),
            "resp 200 40-78".to_string(),
            "respend 78".to_string(),
        ]
    );
}

#[test]
fn extreme_offsets_and_lengths_never_panic() {
    let mut out = Vec::new();
    let mut s = HttpStream::new(true);
    s.on_data(
        0,
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        M,
        &mut out,
    );
    s.on_gap(60, u64::MAX, M, &mut out);
    s.on_data(i64::MAX - 2, b"abcdef", M, &mut out);
    s.on_eof(i64::MAX, M, &mut out);
    let mut s = HttpStream::new(false);
    s.on_gap(i64::MIN, u64::MAX, M, &mut out);
    s.on_data(-5, b"GET / HTTP/1.1\r\n\r\n", M, &mut out);
    s.on_eof(i64::MIN, M, &mut out);
    let mut s = HttpStream::new(true);
    s.on_data(
        i64::MIN,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        M,
        &mut out,
    );
    s.on_gap(0, u64::MAX, M, &mut out);
    s.on_eof(i64::MAX, M, &mut out);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Deterministic pseudo-random fuzz over HTTP-ish fragments and gaps.
    let frags: [&[u8]; 12] = [
        b"GET / HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\r\n",
        b"3\r\nabc\r\n",
        b"0\r\n\r\n",
        b"\n",
        b"\x00\xff\x16",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"ffffffffffffffffff\r\n",
        b"abc",
    ];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for start_known in [true, false] {
        for _ in 0..300 {
            let mut s = HttpStream::new(start_known);
            let mut out = Vec::new();
            let mut off = 0i64;
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 10 {
                    0 => {
                        s.on_gap(off, x % 50, M, &mut out);
                        off += (x % 50) as i64;
                    }
                    1 => s.push_request_method(if x & 16 == 0 { "HEAD" } else { "GET" }),
                    _ => {
                        let f = frags[(x >> 8) as usize % frags.len()];
                        s.on_data(off, f, M, &mut out);
                        off += f.len() as i64;
                    }
                }
            }
            s.on_eof(off, M, &mut out);
        }
    }
}

/// The request heads and ends of `segments` fed one after another to a new client stream.
fn requests_of(segments: &[&[u8]]) -> Vec<HttpEvent> {
    let mut s = HttpStream::new(true);
    let mut ev = Vec::new();
    let mut off = 0i64;
    for seg in segments {
        s.on_data(off, seg, M, &mut ev);
        off += seg.len() as i64;
    }
    ev
}

fn request_id_of(head: &str) -> Option<RequestId> {
    match &requests_of(&[head.as_bytes()])[0] {
        HttpEvent::Request(h) => h.request_id,
        e => panic!("{e:?}"),
    }
}

#[test]
fn identity_headers_name_the_request() {
    let get = |headers: &str| format!("GET /a HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
    assert_eq!(request_id_of(&get("")), None);
    let id = request_id_of(&get("x-request-id: 6b6ebcc1\r\n")).unwrap();
    assert_eq!(id.header, crate::app::IdHeader::XRequestId);
    assert_ne!(request_id_of(&get("X-Request-ID: 6b6ebcc2\r\n")), Some(id));
    assert_eq!(
        request_id_of(&get("X-Request-ID:  6b6ebcc1 \r\n")),
        Some(id)
    );
    // X-Request-ID wins over a trace id, whatever the order
    let both = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Request-ID: 6b6ebcc1\r\n";
    assert_eq!(request_id_of(&get(both)), Some(id));
    // a trace id names the request whatever the span of the attempt
    let tp = |span: &str| {
        request_id_of(&get(&format!(
            "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-{span}-01\r\n"
        )))
    };
    assert_eq!(tp("00f067aa0ba902b7"), tp("1111111111111111"));
    assert_eq!(
        tp("00f067aa0ba902b7").unwrap().header,
        crate::app::IdHeader::Traceparent
    );
    let amzn = |v: &str| request_id_of(&get(&format!("X-Amzn-Trace-Id: {v}\r\n")));
    assert_eq!(
        amzn("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
        amzn("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000001")
    );
    let gcp = |v: &str| request_id_of(&get(&format!("X-Cloud-Trace-Context: {v}\r\n")));
    assert_eq!(
        gcp("105445aa7843bc8bf206b1/1;o=1"),
        gcp("105445aa7843bc8bf206b1/2")
    );
    assert!(request_id_of(&get("X-Correlation-ID: \r\n")).is_none());
    assert!(request_id_of(&get("X-B3-TraceId: 80f198ee56343ba8\r\n")).is_some());
}

#[test]
fn a_request_body_digest_does_not_depend_on_its_segments() {
    let head = b"POST /api/items HTTP/1.1\r\nHost: h\r\nContent-Length: 23\r\n\r\n";
    let body = br#"{"name":"item","qty":1}"#;
    let end = |ev: &[HttpEvent]| {
        ev.iter().find_map(|e| match e {
            HttpEvent::RequestEnd { body, .. } => Some(*body),
            _ => None,
        })
    };
    let whole = [head.as_slice(), body].concat();
    let one = end(&requests_of(&[&whole])).unwrap().unwrap();
    assert_eq!(one.len, 23);
    let split = end(&requests_of(&[head, &body[..5], &body[5..]])).unwrap();
    assert_eq!(split, Some(one));
    let other = end(&requests_of(&[head, br#"{"name":"item","qty":2}"#])).unwrap();
    assert_ne!(other, Some(one));
    // bytes missing from the capture leave no digest
    let mut s = HttpStream::new(true);
    let mut ev = Vec::new();
    s.on_data(0, head, M, &mut ev);
    s.on_gap(head.len() as i64, 5, M, &mut ev);
    s.on_data(head.len() as i64 + 5, &body[5..], M, &mut ev);
    assert_eq!(end(&ev), Some(None));
}
