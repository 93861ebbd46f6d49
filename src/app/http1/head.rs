//! Heads: request and status lines with their header sections, parsed with httparse across any
//! number of segments (bounded), and what the framing needs from them (RFC 9112 section 6).

use super::chunked::CHUNK_SIZE_START;
use super::fields::{Framing, header_facts};
use super::sniff::{find_lf, leading_newlines};
use super::stream::{HttpStream, MethodKind, Mode};
use super::{HttpEvent, RequestHead, ResponseHead, Role};
use crate::app::{Anomaly, RequestId, Text};
use crate::flow::SegMeta;
use std::mem::MaybeUninit;

/// Largest head (request/status line plus header section) buffered across segments.
pub(super) const HEAD_CAP: usize = 64 * 1024;
/// Largest head buffer kept for the next head once a head is complete.
const KEPT_BUF: usize = 4 * 1024;
/// Header slots tried first, then on `TooManyHeaders` once more with the larger count.
const HEADERS_SMALL: usize = 64;
const HEADERS_LARGE: usize = 512;

impl HttpStream {
    pub(super) fn step_head(
        &mut self,
        off: i64,
        d: &[u8],
        seg: &SegMeta,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        let is_request = self.role == Role::Client;
        if self.buf.is_empty() {
            // Fast path: parse straight from the segment.
            return match parse_head(d, is_request) {
                Parsed::Done(h) => {
                    let len = h.len;
                    self.apply(off, h, *seg, out);
                    len
                }
                Parsed::Partial => {
                    if d.len() > HEAD_CAP {
                        let reason = format!(
                            "{} head at offset {off} exceeds {HEAD_CAP} bytes",
                            self.noun()
                        );
                        self.desync_by(off, reason, Some(Anomaly::HeadOverCap), false, out);
                        HEAD_CAP
                    } else {
                        self.buf.push(off, d, seg);
                        d.len()
                    }
                }
                Parsed::Invalid(e, anomaly) => {
                    let at = off + leading_newlines(d) as i64;
                    let reason = format!("invalid {} head at offset {at}: {e}", self.noun());
                    self.desync_by(at, reason, anomaly, false, out);
                    1
                }
            };
        }
        let old = self.buf.len();
        let n = d.len().min((HEAD_CAP + 1).saturating_sub(old));
        self.buf.push(off, &d[..n], seg);
        if self.buf.len() <= HEAD_CAP && find_lf(&d[..n]).is_none() {
            // No new line completed: the head cannot have become complete.
            return n;
        }
        let buf = std::mem::take(&mut self.buf);
        let start = buf.start();
        let used = match parse_head(&buf, is_request) {
            Parsed::Done(h) => {
                let len = h.len;
                self.apply(start, h, buf.first(), out);
                if len >= old {
                    len - old
                } else {
                    // Cannot normally happen (the old prefix had no complete head); handle anyway.
                    self.reprocess(start + len as i64, &buf[len..old], buf.first(), out);
                    0
                }
            }
            Parsed::Partial => {
                if buf.len() > HEAD_CAP {
                    let reason = format!(
                        "{} head at offset {start} exceeds {HEAD_CAP} bytes",
                        self.noun()
                    );
                    self.desync_by(start, reason, Some(Anomaly::HeadOverCap), false, out);
                    n
                } else {
                    self.buf = buf;
                    return n;
                }
            }
            Parsed::Invalid(e, anomaly) => {
                let at = start + leading_newlines(&buf) as i64;
                let reason = format!("invalid {} head at offset {at}: {e}", self.noun());
                self.desync_by(at, reason, anomaly, false, out);
                // Rescan the buffered bytes (after the bad head's first byte), then `d`.
                self.reprocess(start + 1, &buf[1..old], buf.first(), out);
                0
            }
        };
        if self.buf.capacity() == 0 && buf.capacity() <= KEPT_BUF {
            // Keep the allocation for the next head (a small one: connections idle for long)
            self.buf = buf;
            self.buf.clear();
        }
        used
    }

    /// Acts on a complete head that started at stream offset `base`, whose first byte segment
    /// `first` carried.
    fn apply(&mut self, base: i64, h: Head, first: SegMeta, out: &mut Vec<HttpEvent>) {
        let start = base + h.lead as i64;
        let head_end = base + h.len as i64;
        match h.start_line {
            StartLine::Request {
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
                self.body = match h.framing {
                    Framing::Chunked | Framing::Length(1..) => Some(Box::default()),
                    _ => None,
                };
                out.push(HttpEvent::Request(RequestHead {
                    start,
                    head_end,
                    first,
                    method,
                    target,
                    host: h.host,
                    version: h.version,
                    connection_close: h.connection_close,
                    content_length,
                    chunked,
                    request_id: h.request_id,
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
                    Framing::BadLength(anomaly, reason) => {
                        self.bad_length(start, head_end, anomaly, reason, out);
                    }
                    _ => self.finish(head_end, out),
                }
            }
            StartLine::Response { status } => {
                out.push(HttpEvent::Response(ResponseHead {
                    start,
                    head_end,
                    first,
                    status,
                    version: h.version,
                    connection_close: h.connection_close,
                    keep_alive_timeout: h.keep_alive_timeout,
                    keep_alive: h.keep_alive,
                    server: h.server,
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
                    Framing::BadLength(anomaly, reason) => {
                        self.bad_length(start, head_end, anomaly, reason, out);
                    }
                }
            }
        }
    }
}

impl HttpStream {
    /// The message at `start` whose head ends at `head_end` has a Content-Length that is
    /// invalid or conflicting: its framing is an unrecoverable error (RFC 9112 6.3). The
    /// message counts (it was reported); the next one is looked for from the end of its head.
    fn bad_length(
        &mut self,
        start: i64,
        head_end: i64,
        anomaly: Anomaly,
        reason: String,
        out: &mut Vec<HttpEvent>,
    ) {
        let reason = format!(
            "{} at offset {start}: {reason}: its body's length is unknown, the framing is lost until the next {} line",
            self.noun(),
            if self.role == Role::Client {
                "request"
            } else {
                "status"
            }
        );
        self.desync_by(head_end, reason, Some(anomaly), true, out);
    }
}

// ---- head parsing ----

#[derive(Debug)]
enum StartLine {
    Request {
        method: Text,
        target: Text,
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
    start_line: StartLine,
    host: Option<Text>,
    connection_close: bool,
    keep_alive: Option<Text>,
    keep_alive_timeout: Option<u32>,
    framing: Framing,
    request_id: Option<RequestId>,
    server: Option<Text>,
}

#[derive(Debug)]
enum Parsed {
    Partial,
    /// What was wrong; an anomaly when a cap on heads was exceeded.
    Invalid(String, Option<Anomaly>),
    Done(Head),
}

fn parse_head(bytes: &[u8], is_request: bool) -> Parsed {
    // (uninitialised slots: filling 64 of them for every head cost more than parsing a
    // short one)
    let mut headers = [const { MaybeUninit::uninit() }; HEADERS_SMALL];
    match parse_with(bytes, is_request, &mut headers) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut more = vec![MaybeUninit::uninit(); HEADERS_LARGE];
            match parse_with(bytes, is_request, &mut more) {
                Err(httparse::Error::TooManyHeaders) => Parsed::Invalid(
                    format!("more than {HEADERS_LARGE} header fields"),
                    Some(Anomaly::HeadOverCap),
                ),
                Err(e) => Parsed::Invalid(e.to_string(), None),
                Ok(p) => p,
            }
        }
        Err(e) => Parsed::Invalid(e.to_string(), None),
        Ok(p) => p,
    }
}

fn parse_with<'b>(
    bytes: &'b [u8],
    is_request: bool,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Parsed, httparse::Error> {
    let (len, version, start_line, hdrs): (usize, u8, StartLine, &[httparse::Header<'b>]) =
        if is_request {
            let mut req = httparse::Request::new(&mut []);
            let len = match req.parse_with_uninit_headers(bytes, headers)? {
                httparse::Status::Partial => return Ok(Parsed::Partial),
                httparse::Status::Complete(n) => n,
            };
            let method = req.method.unwrap_or("");
            let hdrs: &[httparse::Header<'b>] = req.headers;
            let upgrade = hdrs.iter().any(|h| h.name.eq_ignore_ascii_case("upgrade"));
            let start_line = StartLine::Request {
                method: Text::from(method),
                target: Text::from(req.path.unwrap_or("")),
                upgrade,
            };
            (len, req.version.unwrap_or(1), start_line, hdrs)
        } else {
            let mut resp = httparse::Response::new(&mut []);
            let status = httparse::ParserConfig::default()
                .allow_obsolete_multiline_headers_in_responses(true)
                .allow_spaces_after_header_name_in_responses(true)
                .allow_multiple_spaces_in_response_status_delimiters(true)
                .parse_response_with_uninit_headers(&mut resp, bytes, headers)?;
            let len = match status {
                httparse::Status::Partial => return Ok(Parsed::Partial),
                httparse::Status::Complete(n) => n,
            };
            let start_line = StartLine::Response {
                status: resp.code.unwrap_or(0),
            };
            let hdrs: &[httparse::Header<'b>] = resp.headers;
            (len, resp.version.unwrap_or(1), start_line, hdrs)
        };
    let facts = header_facts(hdrs);
    Ok(Parsed::Done(Head {
        len,
        lead: leading_newlines(&bytes[..len]),
        version,
        start_line,
        host: facts.host,
        connection_close: facts.connection_close,
        keep_alive: facts.keep_alive,
        keep_alive_timeout: facts.keep_alive_timeout,
        framing: facts.framing,
        request_id: facts.request_id,
        server: facts.server,
    }))
}
