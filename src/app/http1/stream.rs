//! The framing state machine of one direction: where messages start and end.

use super::body::BodyHasher;
use super::chunked::Chunk;
use super::headbuf::HeadBuf;
use super::{HttpEvent, Role};
use crate::app::Anomaly;
use crate::flow::SegMeta;
use std::collections::VecDeque;

/// Most request methods remembered for response framing.
const METHOD_FIFO_CAP: usize = 1024;

/// What the response framing needs to know about the matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MethodKind {
    Other,
    Head,
    Connect,
}

impl MethodKind {
    fn bits(self) -> u64 {
        match self {
            MethodKind::Other => 0,
            MethodKind::Head => 1,
            MethodKind::Connect => 2,
        }
    }

    fn of_bits(b: u64) -> MethodKind {
        match b & 3 {
            1 => MethodKind::Head,
            2 => MethodKind::Connect,
            _ => MethodKind::Other,
        }
    }
}

/// The methods of the requests whose responses have not been framed yet, in order: the first
/// 28 packed in two bits each with their count in the top byte (in line: one request or a few
/// in flight is the common case), the others out of line.
#[derive(Debug, Default)]
pub(super) struct MethodQueue {
    packed: u64,
    // boxed: a word in line (a VecDeque is four), allocated only beyond 28 in flight
    #[allow(clippy::box_collection)]
    more: Option<Box<VecDeque<MethodKind>>>,
}

impl MethodQueue {
    const PACKED: u64 = 28;

    fn packed_len(&self) -> u64 {
        self.packed >> 56
    }

    pub fn len(&self) -> usize {
        self.packed_len() as usize + self.more.as_ref().map_or(0, |m| m.len())
    }

    pub fn push_back(&mut self, m: MethodKind) {
        let n = self.packed_len();
        match &mut self.more {
            None if n < Self::PACKED => {
                self.packed = (self.packed | m.bits() << (2 * n)) + (1 << 56);
            }
            more => more.get_or_insert_default().push_back(m),
        }
    }

    pub fn pop_front(&mut self) -> Option<MethodKind> {
        let n = self.packed_len();
        if n == 0 {
            return None;
        }
        let m = MethodKind::of_bits(self.packed);
        let rest = (self.packed & ((1 << 56) - 1)) >> 2;
        self.packed = rest | (n - 1) << 56;
        if let Some(more) = &mut self.more {
            if let Some(next) = more.pop_front() {
                self.packed = (self.packed | next.bits() << (2 * (n - 1))) + (1 << 56);
            }
            if more.is_empty() {
                self.more = None;
            }
        }
        Some(m)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
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
    pub(super) role: Role,
    pub(super) mode: Mode,
    /// An offset has been seen (`pos` is meaningful).
    started: bool,
    /// Stream offset of the next expected byte.
    pos: i64,
    /// Undecided line prefix (Detect/Scan) or partial head (Head); bounded.
    pub(super) buf: HeadBuf,
    /// Bytes scanned while the side is still unknown (mid-stream pickup budget).
    pub(super) scanned: u32,
    /// Methods of requests whose responses have not been framed yet (server side).
    pub(super) methods: MethodQueue,
    /// Final responses framed while `methods` was empty (assumed GET): that many methods pushed
    /// later belong to responses already framed and are dropped, keeping the FIFO aligned.
    pub(super) unmatched_responses: u32,
    /// The current request is CONNECT or carries `Upgrade`: after it, non-HTTP means tunnel.
    pub(super) upgrade_pending: bool,
    /// The digest of the current request's body (client side, from its head on).
    /// (Out of line: only requests with a body have one.)
    pub(super) body: Option<Box<BodyHasher>>,
    /// After a framing error: the next message may start anywhere in a line.
    pub(super) resync_in_lines: bool,
}

impl HttpStream {
    /// `start_known`: the stream's first byte is the start of the connection (SYN seen), so the
    /// first bytes decide HTTP or not; otherwise (mid-stream pickup) scan a bounded amount for a
    /// request/status line first.
    pub fn new(start_known: bool) -> Self {
        HttpStream {
            role: Role::Unknown,
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
            buf: HeadBuf::default(),
            scanned: 0,
            methods: MethodQueue::default(),
            unmatched_responses: 0,
            upgrade_pending: false,
            body: None,
            resync_in_lines: false,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// In-order bytes starting at stream offset `offset`, carried by segment `seg`.
    pub fn on_data(&mut self, offset: i64, data: &[u8], seg: &SegMeta, out: &mut Vec<HttpEvent>) {
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
        self.process(offset, data, seg, out);
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
            Mode::Dead | Mode::UntilClose => {}
            Mode::Body { remaining } => self.gap_in_body(offset, len, remaining, out),
            Mode::Chunked(c) => self.gap_in_chunked(offset, len, c, out),
            Mode::Head => {
                // what the capture kept of the head still names the message
                self.salvage_head(offset, out);
                let reason = if self.buf.is_empty() {
                    format!(
                        "gap of {len} bytes at offset {offset} where a {} head was expected",
                        self.noun()
                    )
                } else {
                    format!(
                        "gap of {len} bytes at offset {offset} inside the {} head started at {}",
                        self.noun(),
                        self.buf.start()
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
                if self.role == Role::Unknown {
                    self.count_scanned(len);
                }
            }
        }
    }

    /// A gap of `len` bytes at `offset` inside a body with `remaining` bytes to go.
    fn gap_in_body(&mut self, offset: i64, len: u64, remaining: u64, out: &mut Vec<HttpEvent>) {
        if let Some(b) = &mut self.body {
            b.cut();
        }
        if len < remaining {
            self.mode = Mode::Body {
                remaining: remaining - len,
            };
            return;
        }
        let end = add_offset(offset, remaining);
        self.finish(end, out);
        if len > remaining {
            let reason = format!(
                "gap of {} bytes at offset {end} where the next {} head was expected",
                len - remaining,
                self.noun()
            );
            self.desync(end, reason, true, out);
        }
    }

    /// A gap of `len` bytes at `offset` inside chunked framing.
    fn gap_in_chunked(&mut self, offset: i64, len: u64, c: Chunk, out: &mut Vec<HttpEvent>) {
        if let Some(b) = &mut self.body {
            b.cut();
        }
        let Chunk::Data { remaining } = c else {
            let reason = format!(
                "gap of {len} bytes at offset {offset} inside a chunk-size line or trailer"
            );
            return self.desync(offset, reason, true, out);
        };
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
        let unfinished = match self.mode {
            Mode::UntilClose => {
                out.push(HttpEvent::ResponseEnd { end: offset });
                None
            }
            Mode::Body { remaining } => Some(format!(
                "a {} body ({remaining} bytes missing)",
                self.noun()
            )),
            Mode::Chunked(_) => Some(format!("a chunked {} body", self.noun())),
            Mode::Head if !self.buf.is_empty() => Some(format!(
                "the {} head started at {}",
                self.noun(),
                self.buf.start()
            )),
            _ => None,
        };
        if let Some(inside) = unfinished {
            out.push(HttpEvent::Desync {
                offset,
                reason: format!("connection closed at offset {offset} inside {inside}"),
                anomaly: None,
            });
        }
        if self.role == Role::Unknown {
            self.role = Role::NotHttp;
        }
        self.mode = Mode::Dead;
        self.buf = HeadBuf::default();
    }

    /// Response side: the next request in order has this method (HEAD and CONNECT change how
    /// the matching response is framed). Called once per request, in order.
    pub fn push_request_method(&mut self, method: &str) {
        if self.role == Role::NotHttp || self.methods.len() >= METHOD_FIFO_CAP {
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

    /// "request", "response" or "message", for messages.
    pub(super) fn noun(&self) -> &'static str {
        match self.role {
            Role::Client => "request",
            Role::Server => "response",
            _ => "message",
        }
    }

    pub(super) fn become_not_http(&mut self) {
        self.role = Role::NotHttp;
        self.mode = Mode::Dead;
        self.buf = HeadBuf::default();
        self.methods = MethodQueue::default();
    }

    pub(super) fn count_scanned(&mut self, n: u64) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.scanned = self.scanned.saturating_add(n);
        if u64::from(self.scanned) >= super::sniff::SCAN_BUDGET {
            self.become_not_http();
        }
    }

    /// Lose sync at `offset`: report it and look for the next request/status line.
    pub(super) fn desync(
        &mut self,
        offset: i64,
        reason: String,
        at_line_start: bool,
        out: &mut Vec<HttpEvent>,
    ) {
        self.desync_by(offset, reason, None, at_line_start, out);
    }

    /// Lose sync at `offset` because the sender broke the framing (`anomaly`); after a bad
    /// length the next message is looked for anywhere in a line, not only at line starts: a
    /// body of unknown length runs into it (`AAAAGET / HTTP/1.1`).
    pub(super) fn desync_by(
        &mut self,
        offset: i64,
        reason: String,
        anomaly: Option<Anomaly>,
        at_line_start: bool,
        out: &mut Vec<HttpEvent>,
    ) {
        out.push(HttpEvent::Desync {
            offset,
            reason,
            anomaly,
        });
        self.buf.clear();
        self.upgrade_pending = false;
        self.resync_in_lines = matches!(
            anomaly,
            Some(Anomaly::InvalidContentLength | Anomaly::ConflictingContentLength)
        );
        self.mode = Mode::Scan { at_line_start };
    }

    /// The current message ends at `end`.
    pub(super) fn finish(&mut self, end: i64, out: &mut Vec<HttpEvent>) {
        out.push(if self.role == Role::Client {
            let body = match self.body.take() {
                Some(b) => (*b).finish(),
                // no body: the empty one's digest
                None => Some(crate::app::BodyDigest { len: 0, crc32: 0 }),
            };
            HttpEvent::RequestEnd { end, body }
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

    /// Runs the state machine over contiguous bytes starting at `base`, carried by `seg`.
    pub(super) fn process(
        &mut self,
        base: i64,
        data: &[u8],
        seg: &SegMeta,
        out: &mut Vec<HttpEvent>,
    ) {
        let mut i = 0usize;
        while i < data.len() {
            let off = base + i as i64;
            let d = &data[i..];
            i += match self.mode {
                Mode::Dead => return,
                Mode::Detect { after_upgrade } => self.step_detect(off, d, after_upgrade, seg, out),
                Mode::Scan { at_line_start } => self.step_scan(off, d, at_line_start, seg),
                Mode::Head => self.step_head(off, d, seg, out),
                Mode::Body { remaining } => {
                    let take = remaining.min(d.len() as u64);
                    self.hash_body(&d[..take as usize]);
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

    /// Process bytes that were buffered from earlier segments again (after a head that did not
    /// parse), the first of which `first` carried: messages found in them started in those
    /// segments.
    pub(super) fn reprocess(
        &mut self,
        base: i64,
        data: &[u8],
        first: SegMeta,
        out: &mut Vec<HttpEvent>,
    ) {
        self.process(base, data, &first, out);
    }
}

impl HttpStream {
    /// Bytes of the current request's body.
    pub(super) fn hash_body(&mut self, bytes: &[u8]) {
        if let Some(b) = &mut self.body {
            b.update(bytes);
        }
    }
}

/// `off + n`, saturating (gap lengths are arbitrary u64).
pub(super) fn add_offset(off: i64, n: u64) -> i64 {
    (off as i128 + n as i128).min(i64::MAX as i128) as i64
}
