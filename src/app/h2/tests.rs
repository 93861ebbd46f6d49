use super::tests_support::conn;
use super::*;
use crate::app::{AppConn, AppEvent, Scratch};
use crate::flow::{ConnMeta, Dir, FlowEvent, FrameRef, PerDir, SegMeta, SeqNumber};
use crate::synth::h2::{self as w, HeaderEncoder};

const C: Dir = Dir::Fwd;
const S: Dir = Dir::Rev;

/// A request as the tests check it: (frame of the HEADERS' first byte, start, method, path,
/// host, stream).
type Seen = (u64, i64, String, String, Option<String>, Option<u32>);

/// Segments of a connection, each with its direction; frame numbers count from 1.
struct Feed {
    conn: ConnMeta,
    off: PerDir<i64>,
    frame: u64,
    events: Vec<(u64, AppEvent)>,
}

impl Feed {
    fn new(conn: ConnMeta) -> Feed {
        Feed {
            conn,
            off: PerDir::default(),
            frame: 0,
            events: Vec::new(),
        }
    }

    /// The metadata of the next segment of `dir`, carrying `len` bytes from its offset
    /// (returned).
    fn next(&mut self, dir: Dir, len: u64) -> (SegMeta, i64) {
        self.frame += 1;
        let off = self.off[dir];
        let meta = SegMeta {
            at: FrameRef {
                input: 0,
                frame: self.frame,
                ordinal: self.frame,
                ts: crate::time::Timestamp::from_secs_f64(self.frame as f64),
            },
            seq: SeqNumber(1000 + off as u32),
            off,
            ack: Some(SeqNumber(5000 + self.off[dir.other()] as u32)),
            ack_off: Some(self.off[dir.other()]),
        };
        self.off[dir] += len as i64;
        (meta, off)
    }

    /// The next segment of `dir`, carrying `bytes`.
    fn data<'b>(&mut self, dir: Dir, bytes: &'b [u8]) -> FlowEvent<'b> {
        let (meta, off) = self.next(dir, bytes.len() as u64);
        FlowEvent::Data {
            dir,
            off,
            bytes,
            meta,
        }
    }

    /// One segment through `h`.
    fn seg(&mut self, h: &mut H2Conn, stats: &mut H2Stats, dir: Dir, bytes: &[u8]) {
        let ev = self.data(dir, bytes);
        let (frame, events) = (self.frame, &mut self.events);
        h.on_flow(&ev, stats, &mut |e| events.push((frame, e)));
    }

    /// One segment through a whole application analyzer (chosen by content).
    fn app(&mut self, app: &mut AppConn, scratch: &mut Scratch, dir: Dir, bytes: &[u8]) {
        let ev = self.data(dir, bytes);
        let (frame, events) = (self.frame, &mut self.events);
        app.on_flow(&self.conn, &ev, scratch, &mut |e| events.push((frame, e)));
    }

    fn gap(&mut self, h: &mut H2Conn, stats: &mut H2Stats, dir: Dir, len: u64) {
        let (meta, off) = self.next(dir, len);
        let ev = FlowEvent::Gap {
            dir,
            off,
            len,
            meta,
        };
        let (frame, events) = (self.frame, &mut self.events);
        h.on_flow(&ev, stats, &mut |e| events.push((frame, e)));
    }

    fn requests(&self) -> Vec<Seen> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                AppEvent::Request(r) => Some((
                    r.first.at.frame,
                    r.start,
                    r.identity.method.to_string(),
                    r.identity.target.to_string(),
                    r.identity.host.as_ref().map(|h| h.to_string()),
                    r.identity.stream,
                )),
                _ => None,
            })
            .collect()
    }

    fn responses(&self) -> Vec<(u64, u16, Option<u32>)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                AppEvent::Response(r) => Some((r.first.at.frame, r.status, r.stream)),
                _ => None,
            })
            .collect()
    }
}

fn client_start(enc: &mut HeaderEncoder) -> Vec<u8> {
    let mut b = w::PREFACE.to_vec();
    b.extend(w::settings(&[(3, 100)]));
    b.extend(enc.request(1, "GET", "/a", "api.example.com", true));
    b
}

#[test]
fn prior_knowledge_requests_and_responses_per_stream() {
    let (mut ce, mut se) = (HeaderEncoder::default(), HeaderEncoder::default());
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &client_start(&mut ce));
    let mut srv = w::settings(&[]);
    srv.extend(w::settings_ack());
    f.seg(&mut h, &mut stats, S, &srv);
    // a second request while the first is open, then both answered out of order
    f.seg(
        &mut h,
        &mut stats,
        C,
        &ce.request(3, "POST", "/b", "api.example.com", false),
    );
    f.seg(&mut h, &mut stats, C, &w::data(3, b"{}", true));
    let mut answers = se.response(3, 201, false);
    answers.extend(w::data(3, b"ok", true));
    answers.extend(se.response(1, 200, true));
    f.seg(&mut h, &mut stats, S, &answers);
    let settings_len = 9 + 6;
    assert_eq!(
        f.requests(),
        [
            (
                1,
                24 + settings_len,
                "GET".into(),
                "/a".into(),
                Some("api.example.com".into()),
                Some(1)
            ),
            (
                3,
                f.requests()[1].1,
                "POST".into(),
                "/b".into(),
                Some("api.example.com".into()),
                Some(3)
            ),
        ]
    );
    assert_eq!(f.responses(), [(5, 201, Some(3)), (5, 200, Some(1))]);
    let ends = f
        .events
        .iter()
        .filter(|(_, e)| matches!(e, AppEvent::ResponseEnd { .. }))
        .count();
    assert_eq!(ends, 2);
    assert_eq!((stats.requests, stats.heads_not_decoded), (2, 0));
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
}

#[test]
fn headers_split_over_segments_and_continuation_frames() {
    let mut ce = HeaderEncoder::default();
    let mut bytes = w::PREFACE.to_vec();
    bytes.extend(w::settings(&[]));
    let headers_at = bytes.len() as i64;
    let hdrs = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "api.example.com"),
        (":path", "/split/over/continuations"),
        ("x-request-id", "abc-123"),
    ];
    bytes.extend(ce.headers(1, &hdrs, true, 3));
    // byte by byte: every frame header and fragment split over segments
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    for b in bytes.chunks(1) {
        f.seg(&mut h, &mut stats, C, b);
    }
    let reqs = f.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].0,
        headers_at as u64 + 1,
        "the HEADERS' first byte's segment"
    );
    assert_eq!(reqs[0].1, headers_at);
    assert_eq!(reqs[0].3, "/split/over/continuations");
    let with_id = f
        .events
        .iter()
        .any(|(_, e)| matches!(e, AppEvent::Request(r) if r.identity.request_id.is_some()));
    assert!(with_id);
    // the request is reported when its last CONTINUATION is complete
    assert_eq!(f.events[0].0, bytes.len() as u64);
}

#[test]
fn huffman_coded_heads_decode() {
    // RFC 7541 C.4.1: GET http://www.example.com/, Huffman-coded authority
    let block = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];
    let mut bytes = w::PREFACE.to_vec();
    bytes.extend(w::frame(
        w::HEADERS,
        w::END_HEADERS | w::END_STREAM,
        1,
        &block,
    ));
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &bytes);
    assert_eq!(f.requests()[0].2, "GET");
    assert_eq!(f.requests()[0].3, "/");
    assert_eq!(f.requests()[0].4.as_deref(), Some("www.example.com"));
}

#[test]
fn goaway_and_stream_resets_are_reported_with_their_frames() {
    let mut ce = HeaderEncoder::default();
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &client_start(&mut ce));
    let mut srv = w::settings(&[]);
    let goaway_at = srv.len() as i64;
    srv.extend(w::goaway(1, w::NO_ERROR));
    srv.extend(w::rst_stream(3, w::REFUSED_STREAM));
    f.seg(&mut h, &mut stats, S, &srv);
    let got: Vec<_> = f
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            AppEvent::Closing {
                dir,
                close,
                goaway: Some(g),
            } => Some((*dir, close.off, g.last_stream, g.error, 0)),
            AppEvent::StreamReset {
                dir,
                stream,
                error,
                reset,
            } => Some((*dir, reset.off, *stream, *error, 1)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            (S, goaway_at, 1, 0, 0),
            (S, goaway_at + 17, 3, w::REFUSED_STREAM, 1)
        ]
    );
    assert_eq!((stats.goaways, stats.rst_streams), (1, 1));
}

#[test]
fn midstream_pickup_finds_streams_and_decodes_what_the_tables_allow() {
    let mut ce = HeaderEncoder::default();
    // before the capture: the client's first request put x-fixture-client in its table
    let _ = ce.request(1, "GET", "/before", "api.example.com", true);
    let picked = ConnMeta {
        syn_client: None,
        from_syn: PerDir::new(false, false),
        ..conn()
    };
    let mut bytes = w::window_update(0, 1000);
    bytes.extend(ce.request(3, "GET", "/after", "api.example.com", true));
    let mut h = H2Conn::new(&picked, Start::Midstream);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(picked);
    // the middle of a frame first: not a frame boundary, skipped
    f.seg(&mut h, &mut stats, C, b"tail of some DATA frame");
    f.seg(&mut h, &mut stats, C, &bytes);
    // a block that needs no old table entry still decodes
    f.seg(
        &mut h,
        &mut stats,
        C,
        &w::frame(w::HEADERS, 0x5, 5, &[0x82, 0x86, 0x84]),
    );
    let reqs = f.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(
        (reqs[0].2.as_str(), reqs[0].5),
        ("", Some(3)),
        "head not decoded"
    );
    // after a failed block the direction's table is out of step: no more decoding
    assert_eq!((reqs[1].2.as_str(), reqs[1].5), ("", Some(5)));
    assert_eq!(stats.heads_not_decoded, 2);
    assert_eq!(stats.errors.get("hpack_error"), Some(&1));
}

#[test]
fn midstream_static_only_heads_decode() {
    let picked = ConnMeta {
        syn_client: None,
        from_syn: PerDir::new(false, false),
        ..conn()
    };
    let mut h = H2Conn::new(&picked, Start::Midstream);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(picked);
    f.seg(
        &mut h,
        &mut stats,
        C,
        &w::frame(w::HEADERS, 0x5, 7, &[0x82, 0x86, 0x84]),
    );
    assert_eq!(f.requests()[0].2, "GET");
    assert_eq!(f.requests()[0].5, Some(7));
}

#[test]
fn bad_frames_are_counted_and_framing_found_again() {
    let mut ce = HeaderEncoder::default();
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &client_start(&mut ce));
    // a frame longer than the default SETTINGS_MAX_FRAME_SIZE
    f.seg(
        &mut h,
        &mut stats,
        C,
        &[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 1, 2, 3],
    );
    // garbage that is not a frame chain: ignored
    f.seg(&mut h, &mut stats, C, &[0x42; 40]);
    // frames again at a segment start
    f.seg(
        &mut h,
        &mut stats,
        C,
        &ce.request(3, "GET", "/c", "api.example.com", true),
    );
    // a PING with the wrong length
    f.seg(&mut h, &mut stats, C, &w::frame(w::PING, 0, 0, &[0; 7]));
    f.seg(
        &mut h,
        &mut stats,
        C,
        &ce.request(5, "GET", "/d", "api.example.com", true),
    );
    // a gap where a frame header was
    f.gap(&mut h, &mut stats, C, 30);
    f.seg(
        &mut h,
        &mut stats,
        C,
        &ce.request(7, "GET", "/e", "api.example.com", true),
    );
    let reqs = f.requests();
    let streams: Vec<_> = reqs.iter().map(|r| r.5).collect();
    assert_eq!(streams, [Some(1), Some(3), Some(5), Some(7)]);
    // the heads after lost framing are not decoded (blocks may have been lost)
    assert_eq!(reqs[1].2, "");
    assert_eq!(stats.errors.get("oversized_frame"), Some(&1));
    assert_eq!(stats.errors.get("malformed_frame"), Some(&1));
    assert_eq!(stats.errors.get("framing_lost_in_gap"), Some(&1));
    assert_eq!(stats.errors.get("header_block_missing"), Some(&1));
    let desyncs = f
        .events
        .iter()
        .filter(|(_, e)| matches!(e, AppEvent::Desync { .. }))
        .count();
    assert_eq!(desyncs, 3);
}

#[test]
fn hpack_errors_fall_back_to_stream_ids() {
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    let mut bytes = w::PREFACE.to_vec();
    // index 70: not in the static table, and the dynamic one is empty
    bytes.extend(w::frame(w::HEADERS, 0x5, 1, &[0x80 | 70]));
    // a string longer than its block
    bytes.extend(w::frame(w::HEADERS, 0x5, 3, &[0x40, 0x7f, 0x10]));
    bytes.extend(w::frame(w::HEADERS, 0x5, 5, &[0x82, 0x86, 0x84]));
    f.seg(&mut h, &mut stats, C, &bytes);
    let streams: Vec<_> = f.requests().iter().map(|r| (r.2.clone(), r.5)).collect();
    assert_eq!(
        streams,
        [
            ("".into(), Some(1)),
            ("".into(), Some(3)),
            ("".into(), Some(5))
        ]
    );
    assert_eq!(stats.errors.get("hpack_error"), Some(&1));
    assert_eq!(stats.heads_not_decoded, 3);
}

#[test]
fn a_header_block_interrupted_by_another_frame_is_not_decoded() {
    let mut ce = HeaderEncoder::default();
    let block = ce.block(&[(":method", "GET"), (":path", "/x")]);
    let mut bytes = w::PREFACE.to_vec();
    bytes.extend(w::frame(w::HEADERS, w::END_STREAM, 1, &block[..1]));
    bytes.extend(w::window_update(0, 10));
    bytes.extend(w::frame(w::CONTINUATION, w::END_HEADERS, 1, &block[1..]));
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &bytes);
    assert_eq!(f.requests().len(), 1);
    assert_eq!(f.requests()[0].2, "");
    assert_eq!(stats.errors.get("header_block_interrupted"), Some(&1));
}

#[test]
fn h2c_upgrade_hands_the_rest_of_the_connection_over() {
    let (mut ce, mut se) = (HeaderEncoder::default(), HeaderEncoder::default());
    let mut app = AppConn::default();
    let mut scratch = Scratch::default();
    let mut f = Feed::new(conn());
    let up = b"GET /up HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    f.app(&mut app, &mut scratch, C, up);
    let mut srv =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    srv.extend(w::settings(&[]));
    srv.extend(se.response(1, 200, true));
    f.app(&mut app, &mut scratch, S, &srv);
    let mut cli = w::PREFACE.to_vec();
    cli.extend(w::settings(&[]));
    cli.extend(ce.request(3, "GET", "/next", "api.example.com", true));
    f.app(&mut app, &mut scratch, C, &cli);
    f.app(&mut app, &mut scratch, S, &se.response(3, 204, true));
    let reqs = f.requests();
    assert_eq!(reqs.len(), 2, "{:?}", f.events);
    assert_eq!((reqs[0].3.as_str(), reqs[0].5), ("/up", None));
    assert_eq!((reqs[1].3.as_str(), reqs[1].5), ("/next", Some(3)));
    // stream 1 answered the upgrade request: only the 101 and stream 3's 204 are responses
    let statuses: Vec<u16> = f.responses().iter().map(|r| r.1).collect();
    assert_eq!(statuses, [101, 204]);
    assert_eq!(scratch.h2.by_start.get("upgrade"), Some(&1));
}

#[test]
fn a_websocket_upgrade_is_not_http2() {
    let mut app = AppConn::default();
    let mut scratch = Scratch::default();
    let mut f = Feed::new(conn());
    f.app(
        &mut app,
        &mut scratch,
        C,
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    f.app(&mut app, &mut scratch, S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello");
    f.app(
        &mut app,
        &mut scratch,
        C,
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
    );
    assert_eq!(scratch.h2.connections, 0);
    assert_eq!(f.requests().len(), 1);
}

#[test]
fn prior_knowledge_is_chosen_by_content() {
    let mut ce = HeaderEncoder::default();
    let mut app = AppConn::default();
    let mut scratch = Scratch::default();
    let mut f = Feed::new(conn());
    f.app(&mut app, &mut scratch, C, &client_start(&mut ce));
    assert!(matches!(app, AppConn::H2(_)));
    assert_eq!(f.requests()[0].5, Some(1));
    assert_eq!(scratch.h2.by_start.get("prior_knowledge"), Some(&1));
    // a server that speaks first
    let mut app = AppConn::default();
    f.app(&mut app, &mut scratch, S, &w::settings(&[(4, 65535)]));
    assert!(matches!(app, AppConn::H2(_)));
    // HTTP/1.x is not taken for HTTP/2
    assert!(!looks_like_h2(b"GET / HTTP/1.1\r\n", true));
    assert!(!looks_like_h2(b"POST /x HTTP/1.1\r\n", false));
    assert!(!looks_like_h2(b"PR", true));
}

#[test]
fn a_larger_max_frame_size_in_settings_is_honoured() {
    let mut ce = HeaderEncoder::default();
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &client_start(&mut ce));
    // the client allows 32 KiB frames: the server may send them
    f.seg(&mut h, &mut stats, C, &w::settings(&[(5, 32768)]));
    let mut srv = w::settings(&[]);
    srv.extend(w::data(1, &[0u8; 20000], false));
    f.seg(&mut h, &mut stats, S, &srv);
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
}

#[test]
fn fuzz_entry_point_survives_arbitrary_bytes() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let len = (next() % 600) as usize;
        let mut client = w::PREFACE.to_vec();
        let mut server = Vec::new();
        for _ in 0..len {
            client.push(next() as u8);
            server.push(next() as u8);
        }
        // plausible frame headers with random payloads too
        if round % 2 == 0 {
            let kind = (next() % 10) as u8;
            let body: Vec<u8> = (0..(next() % 40)).map(|_| next() as u8).collect();
            client.extend(w::frame(kind, next() as u8, (next() % 9) as u32, &body));
            server.extend(w::frame(kind, next() as u8, (next() % 9) as u32, &body));
        }
        fuzz_one(&client, &server, 1 + (next() % 50) as usize);
    }
}

#[test]
fn per_connection_state_stays_small() {
    // HTTP/2 state is out of line: an HTTP/1.x connection pays one pointer for the upgrade
    // path, an exchanges record one for GOAWAYs
    let sizes = (
        std::mem::size_of::<AppConn>(),
        std::mem::size_of::<crate::app::http1::Http1Conn>(),
        std::mem::size_of::<crate::detect::Exchanges>(),
    );
    eprintln!("AppConn, Http1Conn, Exchanges: {sizes:?}");
    assert!(sizes.0 <= sizes.1 + 8, "{sizes:?}");
}

#[test]
fn a_response_carries_its_server_header() {
    let (mut ce, mut se) = (HeaderEncoder::default(), HeaderEncoder::default());
    let mut h = H2Conn::new(&conn(), Start::PriorKnowledge);
    let mut stats = H2Stats::default();
    let mut f = Feed::new(conn());
    f.seg(&mut h, &mut stats, C, &client_start(&mut ce));
    let long = "x".repeat(100);
    let mut answers = se.headers(1, &[(":status", "200"), ("server", &long)], true, 1);
    answers.extend(se.response(3, 200, true));
    f.seg(
        &mut h,
        &mut stats,
        C,
        &ce.request(3, "GET", "/b", "a", true),
    );
    f.seg(&mut h, &mut stats, S, &answers);
    let servers: Vec<Option<String>> = (f.events.iter())
        .filter_map(|(_, e)| match e {
            AppEvent::Response(r) => Some(r.server.as_ref().map(|s| s.to_string())),
            _ => None,
        })
        .collect();
    // kept to its first bytes, as HTTP/1.x keeps it; none without the header
    let kept = long[..crate::app::http1::MAX_SERVER_LEN].to_string();
    assert_eq!(servers, [Some(kept), None]);
}
