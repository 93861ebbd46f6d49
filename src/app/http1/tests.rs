//! HTTP/1.x framing tests. Most are rows of tables ([`Case`]): one direction's input as steps
//! (segments, gaps, the end, methods pushed, role checks) and every event it must produce,
//! rendered by [`show`] with all head fields. A case marked [`Case::split`] must give the same
//! events fed whole, byte by byte, and cut in two and three at every position. Tests that
//! need more than the events (buffer sizes, offsets no running count reaches, fuzzing) follow
//! the tables.

use super::head::HEAD_CAP;
use super::*;
use crate::flow::{FrameRef, SegMeta};
use std::fmt::Write as _;

/// Segment metadata does not matter to the framing.
const M: SegMeta = SegMeta {
    at: FrameRef {
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

/// Compact, exact rendering of events: every field but the heads' `first` segment (which
/// [`Case`] checks on its own). Flags and optional fields appear only when set.
fn show(events: &[HttpEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            HttpEvent::Request(h) => {
                let mut s = format!("req {} {} {}-{}", h.method, h.target, h.start, h.head_end);
                if let Some(host) = &h.host {
                    let _ = write!(s, " host={host}");
                }
                if h.version == 0 {
                    s.push_str(" http/1.0");
                }
                if h.connection_close {
                    s.push_str(" close");
                }
                if let Some(n) = h.content_length {
                    let _ = write!(s, " length={n}");
                }
                if h.chunked {
                    s.push_str(" chunked");
                }
                s
            }
            HttpEvent::RequestEnd { end, .. } => format!("reqend {end}"),
            HttpEvent::Response(h) => {
                let mut s = format!("resp {} {}-{}", h.status, h.start, h.head_end);
                if h.version == 0 {
                    s.push_str(" http/1.0");
                }
                if h.connection_close {
                    s.push_str(" close");
                }
                if let Some(ka) = &h.keep_alive {
                    let _ = write!(s, " keep-alive={ka:?}");
                }
                if let Some(t) = h.keep_alive_timeout {
                    let _ = write!(s, " timeout={t}");
                }
                s
            }
            HttpEvent::ResponseEnd { end } => format!("respend {end}"),
            HttpEvent::Desync {
                offset,
                reason,
                anomaly: None,
            } => format!("desync {offset}: {reason}"),
            HttpEvent::Desync {
                offset,
                reason,
                anomaly: Some(a),
            } => format!("desync {offset} {a:?}: {reason}"),
            HttpEvent::Tunnel { offset } => format!("tunnel {offset}"),
        })
        .collect()
}

/// One call on the stream; offsets run on from the case's base.
#[derive(Clone, Debug)]
enum Step {
    /// A segment at the running offset.
    Data(Vec<u8>),
    /// Bytes missing at the running offset.
    Gap(u64),
    /// The end of the direction at the running offset.
    Eof,
    /// The next call is at this offset (skipping or repeating bytes).
    Seek(i64),
    /// A request method pushed to the (response) stream.
    Method(&'static str),
    /// The stream's role at this point.
    Role(Role),
}

/// A row of a framing table.
struct Case {
    name: String,
    start_known: bool,
    /// Pushed before the first step.
    methods: &'static [&'static str],
    /// Offset of the first step.
    base: i64,
    steps: Vec<Step>,
    /// Also feed the data re-cut: byte by byte, and in two and three pieces at every position.
    split: bool,
    expect: Vec<String>,
}

/// A case on a stream whose start is known (the SYN was seen).
fn case(name: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        start_known: true,
        methods: &[],
        base: 0,
        steps: Vec::new(),
        split: false,
        expect: Vec::new(),
    }
}

impl Case {
    /// The capture picked the stream up mid-way.
    fn midstream(mut self) -> Self {
        self.start_known = false;
        self
    }
    fn methods(mut self, m: &'static [&'static str]) -> Self {
        self.methods = m;
        self
    }
    fn at(mut self, base: i64) -> Self {
        self.base = base;
        self
    }
    /// One segment: `parts` concatenated.
    fn data(mut self, parts: &[&[u8]]) -> Self {
        self.steps.push(Step::Data(parts.concat()));
        self
    }
    fn gap(mut self, len: u64) -> Self {
        self.steps.push(Step::Gap(len));
        self
    }
    fn eof(mut self) -> Self {
        self.steps.push(Step::Eof);
        self
    }
    fn seek(mut self, off: i64) -> Self {
        self.steps.push(Step::Seek(off));
        self
    }
    fn push_method(mut self, m: &'static str) -> Self {
        self.steps.push(Step::Method(m));
        self
    }
    fn role(mut self, r: Role) -> Self {
        self.steps.push(Step::Role(r));
        self
    }
    fn split(mut self) -> Self {
        self.split = true;
        self
    }
    fn expect<S: ToString>(mut self, events: &[S]) -> Self {
        self.expect = events.iter().map(ToString::to_string).collect();
        self
    }

    /// Feeds the steps as given, then (for split cases) re-cut.
    fn run(&self) {
        self.check("as given", &self.steps);
        if !self.split {
            return;
        }
        let n = self
            .steps
            .iter()
            .take_while(|s| matches!(s, Step::Data(_)))
            .count();
        assert!(
            n > 0 && !self.steps[n..].iter().any(|s| matches!(s, Step::Data(_))),
            "{}: a split case starts with all its data",
            self.name
        );
        let data: Vec<u8> = self.steps[..n]
            .iter()
            .flat_map(|s| match s {
                Step::Data(d) => d.clone(),
                _ => unreachable!(),
            })
            .collect();
        let recut = |cuts: &[usize]| -> Vec<Step> {
            let mut steps = Vec::new();
            let mut prev = 0;
            for &c in cuts.iter().chain([&data.len()]) {
                steps.push(Step::Data(data[prev..c].to_vec()));
                prev = c;
            }
            steps.extend_from_slice(&self.steps[n..]);
            steps
        };
        let bytewise: Vec<usize> = (1..data.len()).collect();
        self.check("byte by byte", &recut(&bytewise));
        for i in 0..=data.len() {
            self.check(&format!("split at {i}"), &recut(&[i]));
            let j = (i + 7).min(data.len());
            self.check(&format!("split at {i},{j}"), &recut(&[i, j]));
        }
    }

    fn check(&self, how: &str, steps: &[Step]) {
        let got = show(&self.feed(how, steps));
        assert!(
            got == self.expect,
            "{} ({how}): events differ\nexpected: {:#?}\n     got: {:#?}",
            self.name,
            self.expect,
            got
        );
    }

    /// Runs the steps on a new stream; each call gets segment metadata of its own (frame =
    /// step number), and every head must name the segment of its first byte.
    fn feed(&self, how: &str, steps: &[Step]) -> Vec<HttpEvent> {
        let mut s = HttpStream::new(self.start_known);
        for m in self.methods {
            s.push_request_method(m);
        }
        let mut out = Vec::new();
        let mut segments: Vec<(i64, &[u8], SegMeta)> = Vec::new();
        let mut off = self.base;
        for (k, step) in steps.iter().enumerate() {
            let meta = SegMeta {
                at: FrameRef {
                    frame: k as u64 + 1,
                    ..M.at
                },
                off,
                ..M
            };
            match step {
                Step::Data(d) => {
                    s.on_data(off, d, &meta, &mut out);
                    if !d.is_empty() {
                        segments.push((off, d, meta));
                    }
                    off += d.len() as i64;
                }
                Step::Gap(n) => {
                    s.on_gap(off, *n, &mut out);
                    off += *n as i64;
                }
                Step::Eof => s.on_eof(off, &mut out),
                Step::Seek(to) => off = *to,
                Step::Method(m) => s.push_request_method(m),
                Step::Role(r) => assert_eq!(
                    s.role(),
                    *r,
                    "{} ({how}): role after step {k} ({step:?})",
                    self.name
                ),
            }
        }
        for e in &out {
            let (start, first) = match e {
                HttpEvent::Request(h) => (h.start, h.first),
                HttpEvent::Response(h) => (h.start, h.first),
                _ => continue,
            };
            assert_eq!(
                Some(first),
                first_line_segment(&segments, start),
                "{} ({how}): the segment of the head at {start}",
                self.name
            );
        }
        out
    }
}

/// The segment that carried the first byte at or after `start` that is not CR or LF (a head's
/// first line may follow empty lines).
fn first_line_segment(segments: &[(i64, &[u8], SegMeta)], start: i64) -> Option<SegMeta> {
    segments.iter().find_map(|&(off, d, meta)| {
        let from = (start - off).max(0) as usize;
        let end = off + d.len() as i64;
        (start < end
            && d[from.min(d.len())..]
                .iter()
                .any(|&c| c != b'\r' && c != b'\n'))
        .then_some(meta)
    })
}

/// Runs every case; reports all that fail (each one's message is in the output).
fn run_table(cases: Vec<Case>) {
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| std::panic::catch_unwind(|| c.run()).is_err())
        .map(|c| c.name.clone())
        .collect();
    assert!(failed.is_empty(), "failing cases: {failed:#?}");
}

#[test]
fn request_framing() {
    run_table(vec![
        case("GET with host, no body")
            .at(100)
            .data(&[b"GET /a?b=1 HTTP/1.1\r\nHost: Example.com \r\nUser-Agent: t\r\n\r\n"])
            .role(Role::Client)
            .split()
            .expect(&["req GET /a?b=1 100-158 host=Example.com", "reqend 158"]),
        case("request with a body, then another")
            .data(&[
                b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd",
                b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n",
            ])
            .split()
            .expect(&[
                "req POST /up 0-49 host=h length=4",
                "reqend 53",
                "req GET /x 53-81 host=h",
                "reqend 81",
            ]),
        case("pipelined requests in one segment")
            .data(&[
                b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
                b"HEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n",
                b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxy",
            ])
            .split()
            .expect(&[
                "req GET /1 0-28 host=a",
                "reqend 28",
                "req HEAD /2 28-57 host=a",
                "reqend 57",
                "req POST /3 57-105 host=a length=2",
                "reqend 107",
            ]),
        case("chunked request without trailers, bare LF")
            .data(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\nGET / HTTP/1.1\r\n\r\n"])
            .split()
            .expect(&["req POST / 0-47 chunked", "reqend 56", "req GET / 56-74", "reqend 74"]),
        // the next request's head starts after the empty line, in the next segment
        case("stray CRLF after a body")
            .data(&[b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab\r\n"])
            .data(&[b"GET / HTTP/1.1\r\n\r\n"])
            .split()
            .expect(&["req POST / 0-38 length=2", "reqend 40", "req GET / 42-60", "reqend 60"]),
        case("HTTP/1.0 request with Connection: close, no host")
            .data(&[b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n"])
            .split()
            .expect(&["req GET / 0-37 http/1.0 close", "reqend 37"]),
    ]);
}

#[test]
fn response_framing() {
    run_table(vec![
        case("200 with Content-Length")
            .methods(&["GET"])
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"hello"])
            .role(Role::Server)
            .split()
            .expect(&["resp 200 0-38", "respend 43"]),
        case("pipelined responses in one segment")
            .methods(&["GET", "GET", "GET"])
            .data(&[
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
            ])
            .split()
            .expect(&[
                "resp 200 0-38",
                "respend 41",
                "resp 404 41-86",
                "respend 86",
                "resp 200 86-124",
                "respend 125",
            ]),
        case("chunked response with extensions and trailers")
            .methods(&["GET", "GET"])
            .data(&[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n",
                b"5;ext=1;q=\"a b\"\r\nhello\r\nA \r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ])
            .split()
            .expect(&["resp 200 0-73", "respend 143", "resp 204 143-170", "respend 170"]),
        case("no body in the response to HEAD")
            .methods(&["HEAD", "GET"])
            .data(&[
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            ])
            .split()
            .expect(&["resp 200 0-41", "respend 41", "resp 200 41-79", "respend 82"]),
        case("no body for 204 and 304")
            .data(&[
                b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ])
            .split()
            .expect(&[
                "resp 204 0-46",
                "respend 46",
                "resp 304 46-95",
                "respend 95",
                "resp 200 95-133",
                "respend 135",
            ]),
        // The 100 must not consume the FIFO entry: the second final response answers HEAD.
        case("100 Continue, then the final responses")
            .methods(&["POST", "HEAD"])
            .data(&[
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
            ])
            .split()
            .expect(&[
                "resp 100 0-25",
                "resp 200 25-63",
                "respend 65",
                "resp 200 65-104",
                "respend 104",
            ]),
        // The first response was framed before its request was reported (assumed GET); the GET
        // pushed later is its own and is dropped, so the second response answers the HEAD.
        case("response before any request is pushed")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
            .push_method("GET")
            .push_method("HEAD")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"])
            .expect(&["resp 200 0-38", "respend 40", "resp 200 40-78", "respend 78"]),
        case("Connection: close with Keep-Alive")
            .data(&[b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\nKeep-Alive: timeout=5, max=100\r\ncontent-length: 0\r\n\r\n"])
            .split()
            .expect(&[
                r#"resp 200 0-101 close keep-alive="timeout=5, max=100" timeout=5"#,
                "respend 101",
            ]),
        case("Keep-Alive timeout quoted, uppercase, after max")
            .data(&[b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: max=3,TIMEOUT = \"15\"\r\nContent-Length: 0\r\n\r\n"])
            .split()
            .expect(&[
                r#"resp 200 0-96 keep-alive="max=3,TIMEOUT = \"15\"" timeout=15"#,
                "respend 96",
            ]),
        case("repeated identical Content-Length values")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"])
            .split()
            .expect(&["resp 200 0-60", "respend 62"]),
    ]);
}

#[test]
fn tunnels() {
    run_table(vec![
        case("101 Switching Protocols")
            .methods(&["GET"])
            .data(&[
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                b"\x81\x05hello HTTP/1.1 200 OK\r\n\r\n",
            ])
            .role(Role::NotHttp)
            .data(&[b"HTTP/1.1 200 OK\r\n\r\n"])
            .seek(1000)
            .eof()
            .expect(&["resp 101 0-77", "tunnel 77"]),
        case("101 Switching Protocols, the tunnel's bytes re-cut")
            .methods(&["GET"])
            .data(&[
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                b"\x81\x05hello HTTP/1.1 200 OK\r\n\r\n",
            ])
            .split()
            .expect(&["resp 101 0-77", "tunnel 77"]),
        case("CONNECT answered 407, then 200")
            .methods(&["CONNECT", "CONNECT"])
            .data(&[
                b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 Connection established\r\n\r\n",
                b"\x16\x03\x01\x00\x05hello",
            ])
            .split()
            .expect(&["resp 407 0-65", "respend 65", "resp 200 65-104", "tunnel 104"]),
        case("client side: CONNECT then TLS")
            .data(&[
                b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01",
            ])
            .role(Role::NotHttp)
            .split()
            .expect(&[
                "req CONNECT example.com:443 0-59 host=example.com:443",
                "reqend 59",
                "tunnel 59",
            ]),
        // A retried CONNECT after a refusal is still HTTP.
        case("client side: CONNECT twice")
            .data(&[
                b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            ])
            .role(Role::Client)
            .split()
            .expect(&[
                "req CONNECT example.com:443 0-59 host=example.com:443",
                "reqend 59",
                "req CONNECT example.com:443 59-118 host=example.com:443",
                "reqend 118",
            ]),
    ]);
}

#[test]
fn ends_of_stream() {
    run_table(vec![
        case("read until close, ended by EOF after a gap")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"])
            .data(&[b"some body"])
            .gap(1000)
            .data(&[b"HTTP/1.1 200 OK\r\n\r\n"])
            .eof()
            .role(Role::Server)
            .expect(&["resp 200 0-45", "respend 1073"]),
        case("HTTP/1.0 response without length")
            .data(&[b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n", b"body bytes"])
            .eof()
            .split()
            .expect(&["resp 200 0-32 http/1.0", "respend 42"]),
        case("EOF inside a Content-Length body")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])
            .eof()
            .split()
            .expect(&[
                "resp 200 0-39",
                "desync 42: connection closed at offset 42 inside a response body (7 bytes missing)",
            ]),
        case("empty direction closed: not HTTP")
            .eof()
            .role(Role::NotHttp)
            .expect::<&str>(&[]),
    ]);
}

#[test]
fn gaps() {
    run_table(vec![
        // snaplen-like: 10 bytes captured out of each 1000-byte segment
        case("gaps inside a Content-Length body keep the framing")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n"])
            .data(&[&[b'x'; 10]])
            .gap(990)
            .data(&[&[b'x'; 10]])
            .gap(990)
            .data(&[&[b'x'; 10]])
            .gap(990)
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
            .expect(&[
                "resp 200 0-41",
                "respend 3041",
                "resp 200 3041-3079",
                "respend 3079",
            ]),
        case("gap inside chunk data keeps the framing")
            .data(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"])
            .data(&[b"64\r\nab"]) // a 100-byte chunk
            .gap(98)
            .data(&[b"\r\n0\r\n\r\n"])
            .expect(&["resp 200 0-47", "respend 158"]),
        case("gap over a body's end and the next head resyncs")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"])
            .gap(60) // body end plus the start of another response
            .data(&[b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"])
            .expect(&[
                "resp 200 0-39",
                "respend 49",
                "desync 49: gap of 50 bytes at offset 49 where the next response head was expected",
                "resp 404 99-144",
                "respend 144",
            ]),
        // the status line survived the gap: the response is still reported
        case("gap inside a head desyncs, resyncs on the next response")
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Le"])
            .gap(4)
            .data(&[
                b": 4\r\nX: y\r\n\r\nok\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
            ])
            .role(Role::Server)
            .expect(&[
                "resp 200 0-27",
                "desync 27: gap of 4 bytes at offset 27 inside the response head started at 0",
                "resp 200 48-86",
                "respend 87",
            ]),
        case("request head cut by the snaplen is still reported")
            .data(&[b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Ag"])
            .gap(200)
            .expect(&[
                "req GET /index.html 0-52 host=example.com",
                "desync 52: gap of 200 bytes at offset 52 inside the request head started at 0",
            ]),
        // a first line cut short is not guessed at
        case("request line cut by the snaplen")
            .data(&[b"GET /index.ht"])
            .gap(200)
            .expect(&[
                "desync 13: gap of 200 bytes at offset 13 inside the request head started at 0",
            ]),
        case("gap in a chunk-size line desyncs")
            .data(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"])
            .data(&[b"1"])
            .gap(5)
            .data(&[b"\r\n0\r\n\r\nHTTP/1.1 304 OK\r\n\r\n"])
            .expect(&[
                "resp 200 0-47",
                "desync 48: gap of 5 bytes at offset 48 inside a chunk-size line or trailer",
                "resp 304 60-79",
                "respend 79",
            ]),
    ]);
}

/// Non-HTTP first bytes on a stream whose start is known: nothing is reported, then or later.
fn not_http(first: &'static [u8]) -> Case {
    case(format!("not HTTP: {:?}", String::from_utf8_lossy(first)))
        .data(&[first])
        .role(Role::NotHttp)
        .data(&[b"GET / HTTP/1.1\r\n\r\n"])
        .seek(1000)
        .gap(10)
        .seek(2000)
        .eof()
        .expect::<&str>(&[])
}

#[test]
fn detection_and_pickup() {
    let body_tail = b"a=1&b=2 GET / HTTP/1.1 not a line start\r\nmore\r\n";
    let put = b"PUT /next HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx";
    let mut junk = case("mid-stream pickup gives up after its budget").midstream();
    for _ in 0..70 {
        junk = junk.data(&[&[b'a'; 1000]]);
    }
    run_table(vec![
        case("mid-stream pickup inside a body locks on the next request")
            .midstream()
            .data(&[body_tail, put])
            .split()
            .expect(&["req PUT /next 47-97 host=h length=1", "reqend 98"]),
        case("mid-stream pickup inside a body, far into the stream")
            .midstream()
            .at(5000)
            .data(&[body_tail, put])
            .role(Role::Client)
            .split()
            .expect(&["req PUT /next 5047-5097 host=h length=1", "reqend 5098"]),
        case("mid-stream pickup at a response")
            .midstream()
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"])
            .split()
            .expect(&["resp 200 0-38", "respend 39"]),
        // the first bytes were not captured
        case("mid-stream pickup after a gap at the start")
            .midstream()
            .gap(100)
            .data(&[b"xx\r\n"])
            .data(&[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"])
            .expect(&["resp 200 104-142", "respend 143"]),
        junk.role(Role::NotHttp)
            .data(&[b"\nGET / HTTP/1.1\r\n\r\n"])
            .expect::<&str>(&[]),
        not_http(b"SSH-2.0-OpenSSH_9.6\r\n"),
        not_http(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        not_http(b"get / HTTP/1.1\r\n\r\n"),
        not_http(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        not_http(b"ABCDEFGHIJKLMNOP"),
        case("a request is recognised once its method is complete")
            .data(&[b"GE"])
            .role(Role::Unknown)
            .data(&[b"T / HTTP/1.1\r\n\r\n"])
            .role(Role::Client)
            .expect(&["req GET / 0-18", "reqend 18"]),
        case("a response is recognised once its version is complete")
            .data(&[b"HTTP/"])
            .role(Role::Unknown)
            .data(&[b"1.1 200 OK\r\n\r\n"])
            .role(Role::Server)
            .expect(&["resp 200 0-19"]),
        // uncommon methods need the whole request line
        case("an uncommon method")
            .data(&[b"PROPFIND /d HTTP/1.1\r\nDepth: 1\r\n\r\n"])
            .split()
            .expect(&["req PROPFIND /d 0-34", "reqend 34"]),
    ]);
}

/// A response with these Content-Length header lines, then a 204: the first desyncs.
fn bad_length(lines: &str, anomaly: &str, reason: &str) -> Case {
    let head = format!("HTTP/1.1 200 OK\r\n{lines}\r\n");
    // the body of unknown length runs into the next status line
    let data = format!("{head}AAAAHTTP/1.1 204 No\r\n\r\n");
    let (a, n) = (head.len(), data.len());
    case(format!("Content-Length {lines:?}"))
        .data(&[data.as_bytes()])
        .split()
        .expect(&[
            format!("resp 200 0-{a}"),
            format!("desync {a} {anomaly}: response at offset 0: {reason}: its body's length is unknown, the framing is lost until the next status line"),
            format!("resp 204 {}-{n}", a + 4),
            format!("respend {n}"),
        ])
}

/// The same for a request: reported, then the next request is found behind the body's bytes
/// (not read as a method `AAAAGET`).
fn bad_request_length(lines: &str, anomaly: &str, reason: &str) -> Case {
    let head = format!("POST /a HTTP/1.1\r\n{lines}\r\n");
    let data = format!("{head}AAAAGET /next HTTP/1.1\r\n\r\n");
    let (a, n) = (head.len(), data.len());
    case(format!("request Content-Length {lines:?}"))
        .data(&[data.as_bytes()])
        .split()
        .expect(&[
            format!("req POST /a 0-{a}"),
            format!("desync {a} {anomaly}: request at offset 0: {reason}: its body's length is unknown, the framing is lost until the next request line"),
            format!("req GET /next {}-{n}", a + 4),
            format!("reqend {n}"),
        ])
}

/// A response head with `n` extra header lines.
fn many_headers(n: usize, rest: &[u8]) -> Vec<u8> {
    let mut data = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..n {
        data.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    data.extend_from_slice(rest);
    data
}

#[test]
fn malformed_heads() {
    let hundred = many_headers(100, b"Content-Length: 1\r\n\r\nz");
    let six_hundred = many_headers(600, b"\r\n");
    run_table(vec![
        case("malformed response head desyncs and recovers")
            .data(&[
                b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ])
            .split()
            .expect(&[
                "desync 0: invalid response head at offset 0: invalid header name",
                "resp 200 36-74",
                "respend 76",
            ]),
        case("malformed request head desyncs and recovers")
            .data(&[
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n",
                b"GET /ok HTTP/1.1\r\n\r\n",
            ])
            .split()
            .expect(&[
                "req GET / 0-27 host=a",
                "reqend 27",
                "desync 27: invalid request head at offset 27: invalid token",
                "req GET /ok 46-66",
                "reqend 66",
            ]),
        bad_length(
            "Content-Length: 12a\r\n",
            "InvalidContentLength",
            "invalid Content-Length \"12a\"",
        ),
        bad_length(
            "Content-Length: -1\r\n",
            "InvalidContentLength",
            "invalid Content-Length \"-1\"",
        ),
        bad_length(
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "ConflictingContentLength",
            "conflicting Content-Length values 5 and 6",
        ),
        bad_length(
            "Content-Length: 5, 6\r\n",
            "ConflictingContentLength",
            "conflicting Content-Length values 5 and 6",
        ),
        bad_length(
            "Content-Length: 99999999999999999999999\r\n",
            "InvalidContentLength",
            "invalid Content-Length \"99999999999999999999999\"",
        ),
        bad_request_length(
            "Content-Length: 4x\r\n",
            "InvalidContentLength",
            "invalid Content-Length \"4x\"",
        ),
        bad_request_length(
            "Content-Length: 4\r\nContent-Length: 5\r\n",
            "ConflictingContentLength",
            "conflicting Content-Length values 4 and 5",
        ),
        case("after a bad length, a method's first letter in the body is not a method")
            .data(&[b"POST /a HTTP/1.1\r\nContent-Length: x\r\n\r\nAAAAGGET /n HTTP/1.1\r\n\r\n"])
            .split()
            .expect(&[
                "req POST /a 0-39",
                "desync 39 InvalidContentLength: request at offset 0: invalid Content-Length \"x\": its body's length is unknown, the framing is lost until the next request line",
                "req GET /n 44-63",
                "reqend 63",
            ]),
        case("100 headers: parsed again with a larger array")
            .data(&[&hundred])
            .expect(&[
                format!("resp 200 0-{}", hundred.len() - 1),
                format!("respend {}", hundred.len()),
            ]),
        case("600 headers: too many")
            .data(&[&six_hundred])
            .expect(&["desync 0 HeadOverCap: invalid response head at offset 0: more than 512 header fields"]),
    ]);
}

#[test]
fn tls_bytes_are_not_http() {
    let mut s = HttpStream::new(true);
    let mut ev = Vec::new();
    s.on_data(0, &[0x16, 0x03, 0x01], &M, &mut ev);
    assert!(ev.is_empty());
    assert_eq!(s.role(), Role::NotHttp);
    assert!(s.buf.capacity() == 0);
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
            s.on_data(off as i64, &data[off..e], &M, &mut ev);
            off = e;
            assert!(s.buf.len() <= HEAD_CAP + 1);
        }
        assert_eq!(
            show(&ev),
            vec![
                "desync 0 HeadOverCap: invalid response head at offset 0: more than 512 header fields"
                    .to_string(),
                format!("resp 200 {a}-{}", data.len()),
                format!("respend {}", data.len()),
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn extreme_offsets_and_lengths_never_panic() {
    let mut out = Vec::new();
    let mut s = HttpStream::new(true);
    s.on_data(
        0,
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
        &M,
        &mut out,
    );
    s.on_gap(60, u64::MAX, &mut out);
    s.on_data(i64::MAX - 2, b"abcdef", &M, &mut out);
    s.on_eof(i64::MAX, &mut out);
    let mut s = HttpStream::new(false);
    s.on_gap(i64::MIN, u64::MAX, &mut out);
    s.on_data(-5, b"GET / HTTP/1.1\r\n\r\n", &M, &mut out);
    s.on_eof(i64::MIN, &mut out);
    let mut s = HttpStream::new(true);
    s.on_data(
        i64::MIN,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        &M,
        &mut out,
    );
    s.on_gap(0, u64::MAX, &mut out);
    s.on_eof(i64::MAX, &mut out);
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
                        s.on_gap(off, x % 50, &mut out);
                        off += (x % 50) as i64;
                    }
                    1 => s.push_request_method(if x & 16 == 0 { "HEAD" } else { "GET" }),
                    _ => {
                        let f = frags[(x >> 8) as usize % frags.len()];
                        s.on_data(off, f, &M, &mut out);
                        off += f.len() as i64;
                    }
                }
            }
            s.on_eof(off, &mut out);
        }
    }
}

/// The request heads and ends of `segments` fed one after another to a new client stream.
fn requests_of(segments: &[&[u8]]) -> Vec<HttpEvent> {
    let mut s = HttpStream::new(true);
    let mut ev = Vec::new();
    let mut off = 0i64;
    for seg in segments {
        s.on_data(off, seg, &M, &mut ev);
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
    s.on_data(0, head, &M, &mut ev);
    s.on_gap(head.len() as i64, 5, &mut ev);
    s.on_data(head.len() as i64 + 5, &body[5..], &M, &mut ev);
    assert_eq!(end(&ev), Some(None));
}

#[test]
fn the_method_queue_keeps_its_order_past_what_it_packs() {
    use super::stream::{MethodKind, MethodQueue};
    let kinds = [MethodKind::Other, MethodKind::Head, MethodKind::Connect];
    let mut q = MethodQueue::default();
    let mut want = std::collections::VecDeque::new();
    // pushes and pops interleaved, up to 100 in the queue
    for i in 0..1000usize {
        if i % 7 < 4 || want.len() < 3 {
            let k = kinds[(i * 7 + i / 13) % 3];
            q.push_back(k);
            want.push_back(k);
        } else {
            assert_eq!(q.pop_front(), want.pop_front(), "{i}");
        }
        if want.len() > 100 {
            assert_eq!(q.pop_front(), want.pop_front(), "{i}");
        }
        assert_eq!(q.len(), want.len());
    }
    while let Some(k) = want.pop_front() {
        assert_eq!(q.pop_front(), Some(k));
    }
    assert_eq!(q.pop_front(), None);
    assert_eq!(std::mem::size_of::<MethodQueue>(), 16);
}
