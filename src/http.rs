//! HTTP/1.x stage: frames requests and responses on one direction of a TCP stream.
//!
//! CONTRACT: one `HttpStream` per direction. The flow stage feeds it in-order bytes with their
//! stream offsets (`on_data`), bytes missing from the capture (`on_gap`) and the end of the
//! direction (`on_eof`, at a FIN). It emits `HttpEvent`s carrying stream offsets, which the detect
//! stage maps back to frames. HTTP is recognised by content, not port: a stream whose first bytes
//! are not a request or status line becomes `NotHttp` and costs nothing afterwards. Heads are
//! parsed with httparse (split over any number of segments, bounded buffer); bodies by
//! Content-Length, chunked, or read-until-close (responses only); no body for HEAD, 1xx, 204,
//! 304; a 101 or a 2xx to CONNECT ends HTTP parsing (tunnel). After a gap that hits a head or a
//! chunk-size line the parser resynchronises on the next request/status line instead of guessing.

/// Which role this direction has, as learnt from its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Nothing recognised yet.
    Unknown,
    /// Sends requests.
    Client,
    /// Sends responses.
    Server,
    /// Not HTTP (or a tunnel after 101/CONNECT): ignored from now on.
    NotHttp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Stream offset of the first byte of the request line.
    pub start: i64,
    /// Stream offset just past the blank line ending the head.
    pub head_end: i64,
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// `Connection: close` present.
    pub connection_close: bool,
    pub content_length: Option<u64>,
    pub chunked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub start: i64,
    pub head_end: i64,
    pub status: u16,
    pub version: u8,
    pub connection_close: bool,
    /// `Keep-Alive: timeout=N`.
    pub keep_alive_timeout: Option<u32>,
    /// Raw `Keep-Alive` header value, if any.
    pub keep_alive: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    Request(RequestHead),
    /// The request's body (if any) is complete; `end` is the offset just past it.
    RequestEnd {
        end: i64,
    },
    /// A response head; 1xx heads are interim (not the final response).
    Response(ResponseHead),
    /// The final response's body is complete (for read-until-close: at `on_eof`).
    ResponseEnd {
        end: i64,
    },
    /// A head that did not parse, or sync lost in a gap; the parser now looks for the next
    /// request/status line.
    Desync {
        offset: i64,
        reason: String,
    },
    /// 101 Switching Protocols or CONNECT 2xx: no more HTTP on this direction.
    Tunnel {
        offset: i64,
    },
}

use std::collections::VecDeque;

/// Largest head (request/status line plus header section) buffered across segments.
const HEAD_CAP: usize = 64 * 1024;
/// Longest first line examined when deciding whether bytes start a request/status line.
const LINE_CAP: usize = 8 * 1024;
/// Bytes (data and gaps) scanned for a first request/status line on a mid-stream pickup.
const SCAN_BUDGET: u64 = 64 * 1024;
/// Longest chunk extension accepted on a chunk-size line.
const CHUNK_EXT_CAP: u64 = 4 * 1024;
/// Largest trailer section accepted after the last chunk.
const TRAILER_CAP: u64 = 64 * 1024;
/// Most request methods remembered for response framing.
const METHOD_FIFO_CAP: usize = 1024;
/// Header slots tried first, then on `TooManyHeaders` once more with the larger count.
const HEADERS_SMALL: usize = 64;
const HEADERS_LARGE: usize = 512;

const COMMON_METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
];

/// What the response framing needs to know about the matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MethodKind {
    Other,
    Head,
    Connect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size {
        value: u64,
        digits: u8,
        /// Past the size digits (extension / whitespace), skipping to LF.
        ext: bool,
        ext_len: u64,
        /// A CR was seen right after the size; LF must follow.
        cr: bool,
    },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// The CRLF after chunk data.
    DataEnd { cr: bool },
    /// Trailer section after the last chunk, ended by an empty line.
    Trailer {
        line_len: u64,
        first_cr: bool,
        total: u64,
    },
}

const CHUNK_SIZE_START: Chunk = Chunk::Size {
    value: 0,
    digits: 0,
    ext: false,
    ext_len: 0,
    cr: false,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// At a point where the next bytes decide whether HTTP goes on: the very start of a stream
    /// whose start is known, or (client side) after a CONNECT/Upgrade request, where anything
    /// but another request means a tunnel. `buf` holds an undecided prefix.
    Detect {
        after_upgrade: bool,
    },
    /// Looking for a request/status line at a line start (mid-stream pickup or resync).
    /// `buf` holds an undecided candidate line start.
    Scan {
        at_line_start: bool,
    },
    /// Reading a head; `buf` holds its bytes so far if it spans segments.
    Head,
    /// Body of known remaining length.
    Body {
        remaining: u64,
    },
    Chunked(Chunk),
    /// Response body delimited by the end of the connection.
    UntilClose,
    /// Not HTTP, tunnel, or after EOF: everything is ignored.
    Dead,
}

/// HTTP/1.x framing state for one direction of a connection.
#[derive(Debug)]
pub struct HttpStream {
    side: Side,
    mode: Mode,
    /// An offset has been seen (`pos` is meaningful).
    started: bool,
    /// Stream offset of the next expected byte.
    pos: i64,
    /// Undecided line prefix (Detect/Scan) or partial head (Head); bounded.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    buf_start: i64,
    /// Bytes scanned while the side is still unknown (mid-stream pickup budget).
    scanned: u64,
    /// Methods of requests whose responses have not been framed yet (server side).
    methods: VecDeque<MethodKind>,
    /// Final responses framed while `methods` was empty (assumed GET): that many methods pushed
    /// later belong to responses already framed and are dropped, keeping the FIFO aligned.
    unmatched_responses: u64,
    /// The current request is CONNECT or carries `Upgrade`: after it, non-HTTP means tunnel.
    upgrade_pending: bool,
}

impl HttpStream {
    /// `start_known`: the stream's first byte is the start of the connection (SYN seen), so the
    /// first bytes decide HTTP or not; otherwise (mid-stream pickup) scan a bounded amount for a
    /// request/status line first.
    pub fn new(start_known: bool) -> Self {
        HttpStream {
            side: Side::Unknown,
            mode: if start_known {
                Mode::Detect {
                    after_upgrade: false,
                }
            } else {
                Mode::Scan {
                    at_line_start: true,
                }
            },
            started: false,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
            scanned: 0,
            methods: VecDeque::new(),
            unmatched_responses: 0,
            upgrade_pending: false,
        }
    }

    pub fn side(&self) -> Side {
        self.side
    }

    /// In-order bytes starting at stream offset `offset`.
    pub fn on_data(&mut self, offset: i64, data: &[u8], out: &mut Vec<HttpEvent>) {
        if self.mode == Mode::Dead || data.is_empty() {
            return;
        }
        if offset as i128 + data.len() as i128 > i64::MAX as i128 {
            return; // nonsensical offset; never overflow
        }
        let (mut offset, mut data) = (offset, data);
        if !self.started {
            self.started = true;
            self.pos = offset;
        } else if offset > self.pos {
            // Bytes between the last call and this one were never delivered: treat as a gap.
            let missing = (offset as i128 - self.pos as i128) as u64;
            self.on_gap(self.pos, missing, out);
            if self.mode == Mode::Dead {
                return;
            }
        } else if offset < self.pos {
            // Overlap with bytes already seen: skip them.
            let skip = (self.pos as i128 - offset as i128) as u64;
            if skip >= data.len() as u64 {
                return;
            }
            data = &data[skip as usize..];
            offset = self.pos;
        }
        self.pos = offset + data.len() as i64;
        // While hunting for a message start, a segment's first byte is a candidate too:
        // senders start messages on segment boundaries, and a body of unknown length before
        // it need not end in a newline.
        if let Mode::Scan { .. } = self.mode
            && self.buf.is_empty()
        {
            self.mode = Mode::Scan {
                at_line_start: true,
            };
        }
        self.process(offset, data, out);
    }

    /// `len` bytes starting at `offset` are missing from the capture (known only by length).
    pub fn on_gap(&mut self, offset: i64, len: u64, out: &mut Vec<HttpEvent>) {
        if self.mode == Mode::Dead || len == 0 {
            return;
        }
        let end = (offset as i128 + len as i128).min(i64::MAX as i128) as i64;
        let mut offset = offset;
        if !self.started {
            self.started = true;
        } else {
            if end <= self.pos {
                return;
            }
            // Missing bytes before the gap's start are part of the gap too; bytes already seen
            // are not.
            offset = self.pos;
        }
        let len = (end as i128 - offset as i128) as u64;
        self.pos = end;
        match self.mode {
            Mode::Dead => {}
            Mode::UntilClose => {}
            Mode::Body { remaining } => {
                if len < remaining {
                    self.mode = Mode::Body {
                        remaining: remaining - len,
                    };
                } else {
                    let end = add_offset(offset, remaining);
                    self.finish(end, out);
                    if len > remaining {
                        let reason = format!(
                            "gap of {} bytes at offset {end} where the next {} head was expected",
                            len - remaining,
                            self.kind()
                        );
                        self.desync(end, reason, true, out);
                    }
                }
            }
            Mode::Chunked(Chunk::Data { remaining }) => {
                if len < remaining {
                    self.mode = Mode::Chunked(Chunk::Data {
                        remaining: remaining - len,
                    });
                } else if len == remaining {
                    self.mode = Mode::Chunked(Chunk::DataEnd { cr: false });
                } else {
                    let at = add_offset(offset, remaining);
                    let reason = format!(
                        "gap of {} bytes at offset {at} over chunked framing",
                        len - remaining
                    );
                    self.desync(at, reason, true, out);
                }
            }
            Mode::Chunked(_) => {
                let reason = format!(
                    "gap of {len} bytes at offset {offset} inside a chunk-size line or trailer"
                );
                self.desync(offset, reason, true, out);
            }
            Mode::Head => {
                // what the capture kept of the head still names the message
                self.salvage_head(offset, out);
                let reason = if self.buf.is_empty() {
                    format!(
                        "gap of {len} bytes at offset {offset} where a {} head was expected",
                        self.kind()
                    )
                } else {
                    format!(
                        "gap of {len} bytes at offset {offset} inside the {} head started at {}",
                        self.kind(),
                        self.buf_start
                    )
                };
                self.desync(offset, reason, true, out);
            }
            Mode::Detect { after_upgrade } => {
                if after_upgrade {
                    let reason = format!(
                        "gap of {len} bytes at offset {offset} where a request head was expected"
                    );
                    self.desync(offset, reason, true, out);
                } else {
                    // The first bytes are missing: fall back to scanning as on a mid-stream pickup.
                    self.buf.clear();
                    self.mode = Mode::Scan {
                        at_line_start: true,
                    };
                    self.count_scanned(len);
                }
            }
            Mode::Scan { .. } => {
                self.buf.clear();
                self.mode = Mode::Scan {
                    at_line_start: true,
                };
                if self.side == Side::Unknown {
                    self.count_scanned(len);
                }
            }
        }
    }

    /// The sender closed this direction (FIN) at `offset`.
    pub fn on_eof(&mut self, offset: i64, out: &mut Vec<HttpEvent>) {
        if self.mode == Mode::Dead {
            return;
        }
        if !self.started {
            self.started = true;
            self.pos = offset;
        } else if offset > self.pos {
            self.on_gap(self.pos, (offset as i128 - self.pos as i128) as u64, out);
            if self.mode == Mode::Dead {
                return;
            }
        }
        match self.mode {
            Mode::UntilClose => out.push(HttpEvent::ResponseEnd { end: offset }),
            Mode::Body { remaining } => out.push(HttpEvent::Desync {
                offset,
                reason: format!(
                    "connection closed at offset {offset} inside a {} body ({remaining} bytes missing)",
                    self.kind()
                ),
            }),
            Mode::Chunked(_) => out.push(HttpEvent::Desync {
                offset,
                reason: format!(
                    "connection closed at offset {offset} inside a chunked {} body",
                    self.kind()
                ),
            }),
            Mode::Head if !self.buf.is_empty() => out.push(HttpEvent::Desync {
                offset,
                reason: format!(
                    "connection closed at offset {offset} inside the {} head started at {}",
                    self.kind(),
                    self.buf_start
                ),
            }),
            _ => {}
        }
        if self.side == Side::Unknown {
            self.side = Side::NotHttp;
        }
        self.mode = Mode::Dead;
        self.buf = Vec::new();
    }

    /// Response side: the next request in order has this method (HEAD and CONNECT change how
    /// the matching response is framed). Called once per request, in order.
    pub fn push_request_method(&mut self, method: &str) {
        if self.side == Side::NotHttp || self.methods.len() >= METHOD_FIFO_CAP {
            return;
        }
        if self.unmatched_responses > 0 {
            // Its response was already framed before this request was reported.
            self.unmatched_responses -= 1;
            return;
        }
        let kind = match method {
            "HEAD" => MethodKind::Head,
            "CONNECT" => MethodKind::Connect,
            _ => MethodKind::Other,
        };
        self.methods.push_back(kind);
    }

    // ---- internals ----

    fn kind(&self) -> &'static str {
        match self.side {
            Side::Client => "request",
            Side::Server => "response",
            _ => "message",
        }
    }

    fn become_not_http(&mut self) {
        self.side = Side::NotHttp;
        self.mode = Mode::Dead;
        self.buf = Vec::new();
        self.methods = VecDeque::new();
    }

    fn count_scanned(&mut self, n: u64) {
        self.scanned = self.scanned.saturating_add(n);
        if self.scanned >= SCAN_BUDGET {
            self.become_not_http();
        }
    }

    /// Lose sync at `offset`: report it and look for the next request/status line.
    fn desync(
        &mut self,
        offset: i64,
        reason: String,
        at_line_start: bool,
        out: &mut Vec<HttpEvent>,
    ) {
        out.push(HttpEvent::Desync { offset, reason });
        self.buf.clear();
        self.upgrade_pending = false;
        self.mode = Mode::Scan { at_line_start };
    }

    /// A gap cut the head being buffered (typically a snaplen): when its first line and some
    /// header lines are complete, report the message with what is known (the body's length is
    /// not), so a request still counts and a response still answers one.
    fn salvage_head(&mut self, gap_at: i64, out: &mut Vec<HttpEvent>) {
        let Some(first_end) = find_lf(&self.buf) else {
            return;
        };
        let first = trim_cr(&self.buf[..first_end]);
        let mut headers = Vec::new();
        let mut rest = &self.buf[first_end + 1..];
        while let Some(n) = find_lf(rest) {
            let line = trim_cr(&rest[..n]);
            rest = &rest[n + 1..];
            if let Some(colon) = line.iter().position(|&c| c == b':')
                && let Ok(name) = std::str::from_utf8(&line[..colon])
            {
                headers.push(httparse::Header {
                    name,
                    value: trim_ows(&line[colon + 1..]),
                });
            }
        }
        let facts = header_facts(&headers).ok();
        let (host, connection_close, keep_alive, keep_alive_timeout) = match facts {
            Some(f) => (
                f.host,
                f.connection_close,
                f.keep_alive,
                f.keep_alive_timeout,
            ),
            None => (None, false, None, None),
        };
        let mut parts = first.split(|&c| c == b' ').filter(|p| !p.is_empty());
        let (a, b, c) = (parts.next(), parts.next(), parts.next());
        let version = |v: &[u8]| match v {
            b"HTTP/1.0" => Some(0),
            b"HTTP/1.1" => Some(1),
            _ => None,
        };
        let start = self.buf_start;
        match (self.side, a, b, c) {
            (Side::Client, Some(m), Some(t), Some(v)) if m.iter().all(|&x| is_method_byte(x)) => {
                let Some(version) = version(v) else { return };
                out.push(HttpEvent::Request(RequestHead {
                    start,
                    head_end: gap_at,
                    method: String::from_utf8_lossy(m).into_owned(),
                    target: String::from_utf8_lossy(t).into_owned(),
                    host,
                    version,
                    connection_close,
                    content_length: None,
                    chunked: false,
                }));
            }
            (Side::Server, Some(v), Some(code), _) => {
                let (Some(version), Some(status)) = (
                    version(v),
                    std::str::from_utf8(code)
                        .ok()
                        .and_then(|c| c.parse::<u16>().ok()),
                ) else {
                    return;
                };
                out.push(HttpEvent::Response(ResponseHead {
                    start,
                    head_end: gap_at,
                    status,
                    version,
                    connection_close,
                    keep_alive_timeout,
                    keep_alive,
                }));
                if status >= 200 {
                    self.methods.pop_front();
                }
            }
            _ => {}
        }
    }

    /// The current message ends at `end`.
    fn finish(&mut self, end: i64, out: &mut Vec<HttpEvent>) {
        out.push(if self.side == Side::Client {
            HttpEvent::RequestEnd { end }
        } else {
            HttpEvent::ResponseEnd { end }
        });
        self.mode = if std::mem::take(&mut self.upgrade_pending) {
            Mode::Detect {
                after_upgrade: true,
            }
        } else {
            Mode::Head
        };
    }

    /// Runs the state machine over contiguous bytes starting at `base`.
    fn process(&mut self, base: i64, data: &[u8], out: &mut Vec<HttpEvent>) {
        let mut i = 0usize;
        while i < data.len() {
            let off = base + i as i64;
            let d = &data[i..];
            i += match self.mode {
                Mode::Dead => return,
                Mode::Detect { after_upgrade } => self.step_detect(off, d, after_upgrade, out),
                Mode::Scan { at_line_start } => self.step_scan(off, d, at_line_start),
                Mode::Head => self.step_head(off, d, out),
                Mode::Body { remaining } => {
                    let take = remaining.min(d.len() as u64);
                    if take == remaining {
                        self.finish(off + take as i64, out);
                    } else {
                        self.mode = Mode::Body {
                            remaining: remaining - take,
                        };
                    }
                    take as usize
                }
                Mode::Chunked(c) => self.step_chunk(off, d, c, out),
                Mode::UntilClose => d.len(),
            };
        }
    }

    fn step_detect(
        &mut self,
        off: i64,
        d: &[u8],
        after_upgrade: bool,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        let allow_status = !after_upgrade && self.side != Side::Client;
        let (class, used) = if self.buf.is_empty() {
            let c = classify(d, false, true, allow_status);
            if c == Class::NeedMore {
                self.buf_start = off;
                self.buf.extend_from_slice(d);
                return d.len();
            }
            self.buf_start = off;
            (c, 0)
        } else {
            let n = take_line(d, LINE_CAP.saturating_sub(self.buf.len()));
            self.buf.extend_from_slice(&d[..n]);
            let c = classify(&self.buf, false, true, allow_status);
            if c == Class::NeedMore {
                return n;
            }
            (c, n)
        };
        match class {
            Class::Request => {
                self.side = Side::Client;
                self.mode = Mode::Head;
                used
            }
            Class::Status => {
                self.side = Side::Server;
                self.mode = Mode::Head;
                used
            }
            _ => {
                if after_upgrade {
                    out.push(HttpEvent::Tunnel {
                        offset: self.buf_start,
                    });
                }
                self.become_not_http();
                d.len()
            }
        }
    }

    fn step_scan(&mut self, off: i64, d: &[u8], at_line_start: bool) -> usize {
        let (allow_req, allow_status) = match self.side {
            Side::Client => (true, false),
            Side::Server => (false, true),
            _ => (true, true),
        };
        let unknown = self.side == Side::Unknown;
        let mut d = d;
        if unknown {
            let left = SCAN_BUDGET.saturating_sub(self.scanned);
            if (d.len() as u64) > left {
                d = &d[..left as usize];
            }
        }
        let used = if !self.buf.is_empty() {
            let n = take_line(d, LINE_CAP.saturating_sub(self.buf.len()));
            self.buf.extend_from_slice(&d[..n]);
            match classify(&self.buf, true, allow_req, allow_status) {
                Class::Request => {
                    self.side = Side::Client;
                    self.mode = Mode::Head;
                }
                Class::Status => {
                    self.side = Side::Server;
                    self.mode = Mode::Head;
                }
                Class::NeedMore => {}
                Class::No => {
                    let at_line_start = self.buf.last() == Some(&b'\n');
                    self.buf.clear();
                    self.mode = Mode::Scan { at_line_start };
                }
            }
            n
        } else if at_line_start {
            match classify(d, true, allow_req, allow_status) {
                Class::Request => {
                    self.side = Side::Client;
                    self.mode = Mode::Head;
                }
                Class::Status => {
                    self.side = Side::Server;
                    self.mode = Mode::Head;
                }
                Class::NeedMore => {
                    self.buf_start = off;
                    self.buf.extend_from_slice(d);
                    return self.scanned_used(unknown, d.len());
                }
                Class::No => {
                    self.mode = Mode::Scan {
                        at_line_start: false,
                    };
                }
            }
            0
        } else {
            match find_lf(d) {
                Some(j) => {
                    self.mode = Mode::Scan {
                        at_line_start: true,
                    };
                    j + 1
                }
                None => d.len(),
            }
        };
        self.scanned_used(unknown, used)
    }

    /// Accounts scanned bytes against the mid-stream budget; returns `used`.
    fn scanned_used(&mut self, unknown: bool, used: usize) -> usize {
        if unknown && self.side == Side::Unknown {
            self.count_scanned(used as u64);
        }
        used
    }

    fn step_head(&mut self, off: i64, d: &[u8], out: &mut Vec<HttpEvent>) -> usize {
        let is_request = self.side == Side::Client;
        if self.buf.is_empty() {
            // Fast path: parse straight from the segment.
            return match parse_head(d, is_request) {
                Parsed::Done(h) => {
                    let len = h.len;
                    self.apply(off, h, out);
                    len
                }
                Parsed::Partial => {
                    if d.len() > HEAD_CAP {
                        let reason = format!(
                            "{} head at offset {off} exceeds {HEAD_CAP} bytes",
                            self.kind()
                        );
                        self.desync(off, reason, false, out);
                        HEAD_CAP
                    } else {
                        self.buf_start = off;
                        self.buf.extend_from_slice(d);
                        d.len()
                    }
                }
                Parsed::Invalid(e) => {
                    let at = off + leading_newlines(d) as i64;
                    let reason = format!("invalid {} head at offset {at}: {e}", self.kind());
                    self.desync(at, reason, false, out);
                    1
                }
            };
        }
        let old = self.buf.len();
        let n = d.len().min((HEAD_CAP + 1).saturating_sub(old));
        self.buf.extend_from_slice(&d[..n]);
        if self.buf.len() <= HEAD_CAP && find_lf(&d[..n]).is_none() {
            // No new line completed: the head cannot have become complete.
            return n;
        }
        let buf = std::mem::take(&mut self.buf);
        let start = self.buf_start;
        let used = match parse_head(&buf, is_request) {
            Parsed::Done(h) => {
                let len = h.len;
                self.apply(start, h, out);
                if len >= old {
                    len - old
                } else {
                    // Cannot normally happen (the old prefix had no complete head); handle anyway.
                    self.process(start + len as i64, &buf[len..old], out);
                    0
                }
            }
            Parsed::Partial => {
                if buf.len() > HEAD_CAP {
                    let reason = format!(
                        "{} head at offset {start} exceeds {HEAD_CAP} bytes",
                        self.kind()
                    );
                    self.desync(start, reason, false, out);
                    n
                } else {
                    self.buf = buf;
                    return n;
                }
            }
            Parsed::Invalid(e) => {
                let at = start + leading_newlines(&buf) as i64;
                let reason = format!("invalid {} head at offset {at}: {e}", self.kind());
                self.desync(at, reason, false, out);
                // Rescan the buffered bytes (after the bad head's first byte), then `d`.
                self.process(start + 1, &buf[1..old], out);
                0
            }
        };
        if self.buf.capacity() == 0 {
            // Keep the allocation for the next head.
            self.buf = buf;
            self.buf.clear();
        }
        used
    }

    /// Acts on a complete head that started at stream offset `base`.
    fn apply(&mut self, base: i64, h: Head, out: &mut Vec<HttpEvent>) {
        let start = base + h.lead as i64;
        let head_end = base + h.len as i64;
        match h.kind {
            HeadKind::Request {
                method,
                target,
                upgrade,
            } => {
                let chunked = h.framing == Framing::Chunked;
                let content_length = match h.framing {
                    Framing::Length(n) => Some(n),
                    _ => None,
                };
                self.upgrade_pending = upgrade || method == "CONNECT";
                out.push(HttpEvent::Request(RequestHead {
                    start,
                    head_end,
                    method,
                    target,
                    host: h.host,
                    version: h.version,
                    connection_close: h.connection_close,
                    content_length,
                    chunked,
                }));
                match h.framing {
                    Framing::Chunked => self.mode = Mode::Chunked(CHUNK_SIZE_START),
                    Framing::Length(n) if n > 0 => self.mode = Mode::Body { remaining: n },
                    Framing::OtherCoding => {
                        let reason = format!(
                            "request at offset {start}: Transfer-Encoding without final chunked, body length unknown"
                        );
                        self.desync(head_end, reason, true, out);
                    }
                    _ => self.finish(head_end, out),
                }
            }
            HeadKind::Response { status } => {
                out.push(HttpEvent::Response(ResponseHead {
                    start,
                    head_end,
                    status,
                    version: h.version,
                    connection_close: h.connection_close,
                    keep_alive_timeout: h.keep_alive_timeout,
                    keep_alive: h.keep_alive,
                }));
                if status == 101 {
                    out.push(HttpEvent::Tunnel { offset: head_end });
                    self.become_not_http();
                    return;
                }
                if (100..200).contains(&status) {
                    // Interim: the final response follows.
                    self.mode = Mode::Head;
                    return;
                }
                let method = self.methods.pop_front().unwrap_or_else(|| {
                    self.unmatched_responses += 1;
                    MethodKind::Other
                });
                if method == MethodKind::Connect && (200..300).contains(&status) {
                    out.push(HttpEvent::Tunnel { offset: head_end });
                    self.become_not_http();
                    return;
                }
                if method == MethodKind::Head || status == 204 || status == 304 {
                    self.finish(head_end, out);
                    return;
                }
                match h.framing {
                    Framing::Chunked => self.mode = Mode::Chunked(CHUNK_SIZE_START),
                    Framing::Length(0) => self.finish(head_end, out),
                    Framing::Length(n) => self.mode = Mode::Body { remaining: n },
                    Framing::OtherCoding | Framing::None => self.mode = Mode::UntilClose,
                }
            }
        }
    }

    fn step_chunk(&mut self, off: i64, d: &[u8], c: Chunk, out: &mut Vec<HttpEvent>) -> usize {
        match c {
            Chunk::Data { remaining } => {
                let take = remaining.min(d.len() as u64);
                self.mode = Mode::Chunked(if take == remaining {
                    Chunk::DataEnd { cr: false }
                } else {
                    Chunk::Data {
                        remaining: remaining - take,
                    }
                });
                take as usize
            }
            Chunk::DataEnd { cr } => match d[0] {
                b'\r' if !cr => {
                    self.mode = Mode::Chunked(Chunk::DataEnd { cr: true });
                    1
                }
                b'\n' => {
                    self.mode = Mode::Chunked(CHUNK_SIZE_START);
                    1
                }
                b => {
                    let reason = format!(
                        "expected CRLF after chunk data at offset {off}, found byte 0x{b:02x}"
                    );
                    self.desync(off, reason, false, out);
                    0
                }
            },
            Chunk::Trailer {
                mut line_len,
                mut first_cr,
                total,
            } => {
                let (seg, lf) = match find_lf(d) {
                    Some(j) => (&d[..j], true),
                    None => (d, false),
                };
                if line_len == 0 && !seg.is_empty() {
                    first_cr = seg[0] == b'\r';
                }
                line_len += seg.len() as u64;
                let total = total + seg.len() as u64 + lf as u64;
                let used = seg.len() + lf as usize;
                if lf && (line_len == 0 || (line_len == 1 && first_cr)) {
                    self.finish(off + used as i64, out);
                } else if total > TRAILER_CAP {
                    let reason =
                        format!("trailer section exceeds {TRAILER_CAP} bytes at offset {off}");
                    self.desync(off, reason, false, out);
                } else if lf {
                    self.mode = Mode::Chunked(Chunk::Trailer {
                        line_len: 0,
                        first_cr: false,
                        total,
                    });
                } else {
                    self.mode = Mode::Chunked(Chunk::Trailer {
                        line_len,
                        first_cr,
                        total,
                    });
                }
                used
            }
            Chunk::Size {
                mut value,
                mut digits,
                mut ext,
                mut ext_len,
                mut cr,
            } => {
                let mut k = 0usize;
                while k < d.len() {
                    if ext {
                        match find_lf(&d[k..]) {
                            Some(j) => {
                                ext_len += j as u64;
                                k += j;
                                if ext_len > CHUNK_EXT_CAP {
                                    let at = off + k as i64;
                                    let reason = format!(
                                        "chunk extension longer than {CHUNK_EXT_CAP} bytes at offset {at}"
                                    );
                                    self.desync(at, reason, false, out);
                                    return k;
                                }
                                // d[k] is the LF; fall through to the line end below.
                            }
                            None => {
                                ext_len += (d.len() - k) as u64;
                                k = d.len();
                                if ext_len > CHUNK_EXT_CAP {
                                    let at = off + k as i64;
                                    let reason = format!(
                                        "chunk extension longer than {CHUNK_EXT_CAP} bytes at offset {at}"
                                    );
                                    self.desync(at, reason, false, out);
                                    return k;
                                }
                                break;
                            }
                        }
                    }
                    let b = d[k];
                    if cr && b != b'\n' {
                        let at = off + k as i64;
                        let reason =
                            format!("chunk-size line at offset {at}: CR not followed by LF");
                        self.desync(at, reason, false, out);
                        return k;
                    }
                    if b == b'\n' && digits > 0 {
                        self.mode = Mode::Chunked(if value == 0 {
                            Chunk::Trailer {
                                line_len: 0,
                                first_cr: false,
                                total: 0,
                            }
                        } else {
                            Chunk::Data { remaining: value }
                        });
                        return k + 1;
                    }
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if !cr => {
                            if digits >= 16 {
                                let at = off + k as i64;
                                let reason = format!("chunk size too large at offset {at}");
                                self.desync(at, reason, false, out);
                                return k;
                            }
                            value = (value << 4) | (b as char).to_digit(16).unwrap_or(0) as u64;
                            digits += 1;
                        }
                        b';' | b' ' | b'\t' if digits > 0 => ext = true,
                        b'\r' if digits > 0 => cr = true,
                        _ => {
                            let at = off + k as i64;
                            let reason = format!(
                                "invalid chunk-size line at offset {at}: unexpected byte 0x{b:02x}"
                            );
                            self.desync(at, reason, false, out);
                            return k;
                        }
                    }
                    k += 1;
                }
                self.mode = Mode::Chunked(Chunk::Size {
                    value,
                    digits,
                    ext,
                    ext_len,
                    cr,
                });
                k
            }
        }
    }
}

// ---- line classification ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Request,
    Status,
    No,
    /// Consistent so far; more bytes needed (never returned once a LF or `LINE_CAP` is reached).
    NeedMore,
}

/// Does `b` start with a request line (`allow_request`) or status line (`allow_status`)?
/// Lenient (stream start): a common method followed by SP, or `HTTP/1.`, is enough.
/// Strict (line starts found by scanning): the whole line must look right.
fn classify(b: &[u8], strict: bool, allow_request: bool, allow_status: bool) -> Class {
    let c = classify_inner(b, strict, allow_request, allow_status);
    if c == Class::NeedMore && b.len() >= LINE_CAP {
        Class::No
    } else {
        c
    }
}

fn classify_inner(b: &[u8], strict: bool, allow_request: bool, allow_status: bool) -> Class {
    if b.is_empty() {
        return Class::NeedMore;
    }
    const HTTP1: &[u8] = b"HTTP/1.";
    let n = b.len().min(HTTP1.len());
    let looks_status = b[..n] == HTTP1[..n];
    if allow_status && looks_status {
        if b.len() < HTTP1.len() {
            return Class::NeedMore;
        }
        if !strict {
            return Class::Status;
        }
        // "HTTP/1." DIGIT SP 3DIGIT (SP / CR / LF)
        for (k, &c) in b.iter().enumerate().take(13).skip(7) {
            let ok = match k {
                7 | 9 | 10 | 11 => c.is_ascii_digit(),
                8 => c == b' ',
                _ => matches!(c, b' ' | b'\r' | b'\n'),
            };
            if !ok {
                return Class::No;
            }
        }
        return if b.len() >= 13 {
            Class::Status
        } else {
            Class::NeedMore
        };
    }
    if !allow_request {
        return Class::No;
    }
    classify_request(b, strict)
}

fn is_method_byte(c: u8) -> bool {
    c.is_ascii_uppercase() || c == b'-' || c == b'_'
}

fn classify_request(b: &[u8], strict: bool) -> Class {
    let m = b
        .iter()
        .take(13)
        .take_while(|&&c| is_method_byte(c))
        .count();
    if m == b.len() {
        return if m <= 12 { Class::NeedMore } else { Class::No };
    }
    if m == 0 || m > 12 || b[m] != b' ' {
        return Class::No;
    }
    if !strict && COMMON_METHODS.contains(&&b[..m]) {
        return Class::Request;
    }
    if m < 3 {
        return Class::No;
    }
    // SP target SP "HTTP/1." DIGIT [CR] LF
    let t = &b[m + 1..];
    let Some(k) = t.iter().position(|&c| c <= b' ' || c == 0x7f) else {
        return Class::NeedMore;
    };
    if k == 0 || t[k] != b' ' {
        return Class::No;
    }
    let v = &t[k + 1..];
    const PAT: &[u8] = b"HTTP/1.";
    for (i, &c) in v.iter().enumerate().take(10) {
        let ok = match i {
            0..=6 => c == PAT[i],
            7 => c.is_ascii_digit(),
            8 => c == b'\r' || c == b'\n',
            _ => v[8] == b'\n' || c == b'\n',
        };
        if !ok {
            return Class::No;
        }
        if c == b'\n' {
            return Class::Request;
        }
    }
    Class::NeedMore
}

/// `off + n`, saturating (gap lengths are arbitrary u64).
fn add_offset(off: i64, n: u64) -> i64 {
    (off as i128 + n as i128).min(i64::MAX as i128) as i64
}

/// Bytes of `d` up to and including the first LF, at most `max`.
fn take_line(d: &[u8], max: usize) -> usize {
    find_lf(d).map_or(d.len(), |j| j + 1).min(max)
}

fn find_lf(d: &[u8]) -> Option<usize> {
    d.iter().position(|&c| c == b'\n')
}

fn leading_newlines(d: &[u8]) -> usize {
    d.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

// ---- head parsing ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No Content-Length or Transfer-Encoding.
    None,
    Length(u64),
    Chunked,
    /// Transfer-Encoding whose last coding is not chunked.
    OtherCoding,
}

#[derive(Debug)]
enum HeadKind {
    Request {
        method: String,
        target: String,
        upgrade: bool,
    },
    Response {
        status: u16,
    },
}

#[derive(Debug)]
struct Head {
    /// Bytes of the head, including skipped leading empty lines.
    len: usize,
    /// Leading empty-line bytes skipped before the start line.
    lead: usize,
    version: u8,
    kind: HeadKind,
    host: Option<String>,
    connection_close: bool,
    keep_alive: Option<String>,
    keep_alive_timeout: Option<u32>,
    framing: Framing,
}

#[derive(Debug)]
enum Parsed {
    Partial,
    Invalid(String),
    Done(Head),
}

fn parse_head(bytes: &[u8], is_request: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_SMALL];
    match parse_with(bytes, is_request, &mut headers) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut more = vec![httparse::EMPTY_HEADER; HEADERS_LARGE];
            match parse_with(bytes, is_request, &mut more) {
                Err(httparse::Error::TooManyHeaders) => {
                    Parsed::Invalid(format!("more than {HEADERS_LARGE} header fields"))
                }
                Err(e) => Parsed::Invalid(e.to_string()),
                Ok(p) => p,
            }
        }
        Err(e) => Parsed::Invalid(e.to_string()),
        Ok(p) => p,
    }
}

fn parse_with<'b>(
    bytes: &'b [u8],
    is_request: bool,
    headers: &mut [httparse::Header<'b>],
) -> Result<Parsed, httparse::Error> {
    let (len, version, kind, hdrs): (usize, u8, HeadKind, &[httparse::Header<'b>]) = if is_request {
        let mut req = httparse::Request::new(headers);
        let len = match req.parse(bytes)? {
            httparse::Status::Partial => return Ok(Parsed::Partial),
            httparse::Status::Complete(n) => n,
        };
        let method = req.method.unwrap_or("");
        let hdrs: &[httparse::Header<'b>] = req.headers;
        let upgrade = hdrs.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"));
        let kind = HeadKind::Request {
            method: method.to_owned(),
            target: req.path.unwrap_or("").to_owned(),
            upgrade,
        };
        (len, req.version.unwrap_or(1), kind, hdrs)
    } else {
        let mut resp = httparse::Response::new(headers);
        let status = httparse::ParserConfig::default()
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_spaces_after_header_name_in_responses(true)
            .allow_multiple_spaces_in_response_status_delimiters(true)
            .parse_response(&mut resp, bytes)?;
        let len = match status {
            httparse::Status::Partial => return Ok(Parsed::Partial),
            httparse::Status::Complete(n) => n,
        };
        let kind = HeadKind::Response {
            status: resp.code.unwrap_or(0),
        };
        let hdrs: &[httparse::Header<'b>] = resp.headers;
        (len, resp.version.unwrap_or(1), kind, hdrs)
    };
    let facts = match header_facts(hdrs) {
        Ok(f) => f,
        Err(reason) => return Ok(Parsed::Invalid(reason)),
    };
    Ok(Parsed::Done(Head {
        len,
        lead: leading_newlines(&bytes[..len]),
        version,
        kind,
        host: facts.host,
        connection_close: facts.connection_close,
        keep_alive: facts.keep_alive,
        keep_alive_timeout: facts.keep_alive_timeout,
        framing: facts.framing,
    }))
}

struct Facts {
    host: Option<String>,
    connection_close: bool,
    keep_alive: Option<String>,
    keep_alive_timeout: Option<u32>,
    framing: Framing,
}

fn header_facts(headers: &[httparse::Header<'_>]) -> Result<Facts, String> {
    let mut host = None;
    let mut connection_close = false;
    let mut keep_alive: Option<String> = None;
    let mut keep_alive_timeout = None;
    let mut content_length: Option<u64> = None;
    let mut cl_error: Option<String> = None;
    let mut te_present = false;
    let mut chunked = false;
    for h in headers {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            for part in value.split(|&c| c == b',') {
                match parse_decimal(trim_ows(part)) {
                    None => {
                        cl_error.get_or_insert_with(|| {
                            format!(
                                "invalid Content-Length {:?}",
                                String::from_utf8_lossy(value)
                            )
                        });
                    }
                    Some(n) => match content_length {
                        Some(prev) if prev != n => {
                            cl_error.get_or_insert_with(|| {
                                format!("conflicting Content-Length values {prev} and {n}")
                            });
                        }
                        _ => content_length = Some(n),
                    },
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te_present = true;
            for part in value.split(|&c| c == b',') {
                let coding = trim_ows(part.split(|&c| c == b';').next().unwrap_or(b""));
                if !coding.is_empty() {
                    chunked = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            if value
                .split(|&c| c == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(b"close"))
            {
                connection_close = true;
            }
        } else if name.eq_ignore_ascii_case("keep-alive") {
            let v = String::from_utf8_lossy(trim_ows(value));
            match &mut keep_alive {
                Some(s) => {
                    s.push_str(", ");
                    s.push_str(&v);
                }
                None => keep_alive = Some(v.into_owned()),
            }
            for param in value.split(|&c| c == b',') {
                let Some(eq) = param.iter().position(|&c| c == b'=') else {
                    continue;
                };
                if trim_ows(&param[..eq]).eq_ignore_ascii_case(b"timeout") {
                    let mut v = trim_ows(&param[eq + 1..]);
                    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
                        v = &v[1..v.len() - 1];
                    }
                    if let Some(t) = parse_decimal(v).and_then(|t| u32::try_from(t).ok()) {
                        keep_alive_timeout.get_or_insert(t);
                    }
                }
            }
        } else if name.eq_ignore_ascii_case("host") && host.is_none() {
            host = Some(String::from_utf8_lossy(trim_ows(value)).into_owned());
        }
    }
    let framing = if chunked {
        // Chunked wins over Content-Length (RFC 9112 6.3), which is then ignored.
        Framing::Chunked
    } else if te_present {
        Framing::OtherCoding
    } else if let Some(e) = cl_error {
        return Err(e);
    } else {
        content_length.map_or(Framing::None, Framing::Length)
    };
    Ok(Facts {
        host,
        connection_close,
        keep_alive,
        keep_alive_timeout,
        framing,
    })
}

fn trim_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A non-empty run of ASCII digits that fits in a u64.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add((c - b'0') as u64)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact, exact rendering of events for assertions.
    fn show(events: &[HttpEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                HttpEvent::Request(h) => {
                    format!("req {} {} {}-{}", h.method, h.target, h.start, h.head_end)
                }
                HttpEvent::RequestEnd { end } => format!("reqend {end}"),
                HttpEvent::Response(h) => format!("resp {} {}-{}", h.status, h.start, h.head_end),
                HttpEvent::ResponseEnd { end } => format!("respend {end}"),
                HttpEvent::Desync { offset, .. } => format!("desync {offset}"),
                HttpEvent::Tunnel { offset } => format!("tunnel {offset}"),
            })
            .collect()
    }

    fn feed_all(s: &mut HttpStream, base: i64, data: &[u8]) -> Vec<HttpEvent> {
        let mut out = Vec::new();
        s.on_data(base, data, &mut out);
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
    fn split_at(
        start_known: bool,
        methods: &[&str],
        data: &[u8],
        cuts: &[usize],
    ) -> Vec<HttpEvent> {
        let mut s = HttpStream::new(start_known);
        for m in methods {
            s.push_request_method(m);
        }
        let mut out = Vec::new();
        let mut prev = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            s.on_data(prev as i64, &data[prev..c], &mut out);
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
        assert_eq!(c.side(), Side::Client);
        let end = 100 + req.len() as i64;
        assert_eq!(
            ev,
            vec![
                HttpEvent::Request(RequestHead {
                    start: 100,
                    head_end: end,
                    method: "GET".into(),
                    target: "/a?b=1".into(),
                    host: Some("Example.com".into()),
                    version: 1,
                    connection_close: false,
                    content_length: None,
                    chunked: false,
                }),
                HttpEvent::RequestEnd { end },
            ]
        );

        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let mut data = head.to_vec();
        data.extend_from_slice(b"hello");
        let mut s = HttpStream::new(true);
        s.push_request_method("GET");
        let ev = feed_all(&mut s, 0, &data);
        assert_eq!(s.side(), Side::Server);
        let he = head.len() as i64;
        assert_eq!(
            ev,
            vec![
                HttpEvent::Response(ResponseHead {
                    start: 0,
                    head_end: he,
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
        let head =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n";
        let body = b"5;ext=1;q=\"a b\"\r\nhello\r\nA \r\n0123456789\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
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
        let data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\nGET / HTTP/1.1\r\n\r\n";
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
        let r1 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let data = [&r1[..], b"\x81\x05hello HTTP/1.1 200 OK\r\n\r\n"].concat();
        let mut s = HttpStream::new(true);
        s.push_request_method("GET");
        let mut ev = feed_all(&mut s, 0, &data);
        let a = r1.len();
        assert_eq!(
            show(&ev),
            vec![format!("resp 101 0-{a}"), format!("tunnel {a}")]
        );
        assert_eq!(s.side(), Side::NotHttp);
        s.on_data(data.len() as i64, b"HTTP/1.1 200 OK\r\n\r\n", &mut ev);
        s.on_eof(1000, &mut ev);
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
        assert_eq!(s.side(), Side::NotHttp);
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
        s.on_data(head.len() as i64, b"some body", &mut ev);
        s.on_gap(head.len() as i64 + 9, 1000, &mut ev);
        s.on_data(
            head.len() as i64 + 1009,
            b"HTTP/1.1 200 OK\r\n\r\n",
            &mut ev,
        );
        let eof = head.len() as i64 + 1009 + 19;
        s.on_eof(eof, &mut ev);
        assert_eq!(
            show(&ev),
            vec![
                format!("resp 200 0-{}", head.len()),
                format!("respend {eof}"),
            ]
        );
        assert_eq!(s.side(), Side::Server);
    }

    #[test]
    fn http10_response_without_length() {
        let head = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n";
        let data = [&head[..], b"body bytes"].concat();
        let mut s = HttpStream::new(true);
        let mut ev = feed_all(&mut s, 0, &data);
        s.on_eof(data.len() as i64, &mut ev);
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
        s.on_data(0, r1, &mut ev);
        let mut off = h;
        for _ in 0..3 {
            s.on_data(off, &[b'x'; 10], &mut ev);
            s.on_gap(off + 10, 990, &mut ev);
            off += 1000;
        }
        s.on_data(off, r2, &mut ev);
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
        s.on_data(h, b"64\r\nab", &mut ev); // 100-byte chunk
        s.on_gap(h + 6, 98, &mut ev);
        s.on_data(h + 104, b"\r\n0\r\n\r\n", &mut ev);
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
        s.on_gap(h, 60, &mut ev); // body end plus the start of another response
        s.on_data(h + 60, r3, &mut ev);
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
        s.on_gap(g, 4, &mut ev);
        let mut rest = r1c.to_vec();
        rest.extend_from_slice(r2);
        s.on_data(g + 4, &rest, &mut ev);
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
        assert_eq!(s.side(), Side::Server);
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
        s.on_gap(cut.len() as i64, 200, &mut ev);
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
        s.on_gap(13, 200, &mut ev);
        assert!(matches!(ev[..], [HttpEvent::Desync { .. }]), "{ev:?}");
    }

    #[test]
    fn gap_in_chunk_size_line_desyncs() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let h = head.len() as i64;
        let mut s = HttpStream::new(true);
        let mut ev = feed_all(&mut s, 0, head);
        s.on_data(h, b"1", &mut ev);
        s.on_gap(h + 1, 5, &mut ev);
        s.on_data(h + 6, b"\r\n0\r\n\r\nHTTP/1.1 304 OK\r\n\r\n", &mut ev);
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
        assert_eq!(s.side(), Side::Client);
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
        s.on_gap(0, 100, &mut ev);
        s.on_data(100, b"xx\r\n", &mut ev);
        s.on_data(104, data, &mut ev);
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
            s.on_data(off, &junk, &mut ev);
            off += 1000;
        }
        assert_eq!(s.side(), Side::NotHttp);
        s.on_data(off, b"\nGET / HTTP/1.1\r\n\r\n", &mut ev);
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
            assert_eq!(s.side(), Side::NotHttp, "{data:?}");
            s.on_data(data.len() as i64, b"GET / HTTP/1.1\r\n\r\n", &mut ev);
            s.on_gap(1000, 10, &mut ev);
            s.on_eof(2000, &mut ev);
            assert!(ev.is_empty(), "{data:?}");
        }
    }

    #[test]
    fn tls_bytes_are_not_http() {
        let mut s = HttpStream::new(true);
        let ev = feed_all(&mut s, 0, &[0x16, 0x03, 0x01]);
        assert!(ev.is_empty());
        assert_eq!(s.side(), Side::NotHttp);
        assert!(s.buf.capacity() == 0);
    }

    #[test]
    fn detection_waits_for_enough_bytes() {
        let mut s = HttpStream::new(true);
        let mut ev = feed_all(&mut s, 0, b"GE");
        assert_eq!(s.side(), Side::Unknown);
        s.on_data(2, b"T / HTTP/1.1\r\n\r\n", &mut ev);
        assert_eq!(s.side(), Side::Client);
        assert_eq!(show(&ev), vec!["req GET / 0-18", "reqend 18"]);

        let mut s = HttpStream::new(true);
        feed_all(&mut s, 0, b"HTTP/");
        assert_eq!(s.side(), Side::Unknown);
        let ev = feed_all(&mut s, 5, b"1.1 200 OK\r\n\r\n");
        assert_eq!(s.side(), Side::Server);
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
            data.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
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
                s.on_data(off as i64, &data[off..e], &mut ev);
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
        s.on_eof(data.len() as i64, &mut ev);
        assert_eq!(
            show(&ev),
            vec!["resp 200 0-39".to_string(), "desync 42".to_string()]
        );
        // Empty direction closed: not HTTP.
        let mut s = HttpStream::new(true);
        let mut ev = Vec::new();
        s.on_eof(0, &mut ev);
        assert!(ev.is_empty());
        assert_eq!(s.side(), Side::NotHttp);
    }

    #[test]
    fn server_data_before_any_request_is_pushed() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        let mut s = HttpStream::new(true);
        let mut ev = feed_all(&mut s, 0, &data[..40]);
        s.push_request_method("GET");
        s.push_request_method("HEAD");
        s.on_data(40, &data[40..], &mut ev);
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
            &mut out,
        );
        s.on_gap(60, u64::MAX, &mut out);
        s.on_data(i64::MAX - 2, b"abcdef", &mut out);
        s.on_eof(i64::MAX, &mut out);
        let mut s = HttpStream::new(false);
        s.on_gap(i64::MIN, u64::MAX, &mut out);
        s.on_data(-5, b"GET / HTTP/1.1\r\n\r\n", &mut out);
        s.on_eof(i64::MIN, &mut out);
        let mut s = HttpStream::new(true);
        s.on_data(
            i64::MIN,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
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
                            s.on_data(off, f, &mut out);
                            off += f.len() as i64;
                        }
                    }
                }
                s.on_eof(off, &mut out);
            }
        }
    }
}
