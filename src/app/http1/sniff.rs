//! Recognising HTTP/1.x by content: does a stream (or a line found by scanning) start with a
//! request line or a status line? Decides at the start of a stream, after an upgrade request,
//! and while hunting for the next message after a mid-stream pickup or a lost sync.

use super::stream::{HttpStream, Mode};
use super::{HttpEvent, Role};
use crate::flow::SegMeta;

/// Longest first line examined when deciding whether bytes start a request/status line.
const LINE_CAP: usize = 8 * 1024;
/// Bytes (data and gaps) scanned for a first request/status line on a mid-stream pickup.
pub(super) const SCAN_BUDGET: u64 = 64 * 1024;

const COMMON_METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
];

impl HttpStream {
    pub(super) fn step_detect(
        &mut self,
        off: i64,
        d: &[u8],
        after_upgrade: bool,
        seg: &SegMeta,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        let allow_status = !after_upgrade && self.role != Role::Client;
        let (start, class, used) = if self.buf.is_empty() {
            let c = classify(d, false, true, allow_status);
            if c == Class::NeedMore {
                self.buf.push(off, d, seg);
                return d.len();
            }
            (off, c, 0)
        } else {
            let n = take_line(d, LINE_CAP.saturating_sub(self.buf.len()));
            self.buf.extend_from_slice(&d[..n]);
            let c = classify(&self.buf, false, true, allow_status);
            if c == Class::NeedMore {
                return n;
            }
            (self.buf.start(), c, n)
        };
        if self.found_start_line(class) {
            return used;
        }
        if after_upgrade {
            out.push(HttpEvent::Tunnel { offset: start });
        }
        self.become_not_http();
        d.len()
    }

    pub(super) fn step_scan(
        &mut self,
        off: i64,
        d: &[u8],
        at_line_start: bool,
        seg: &SegMeta,
    ) -> usize {
        let (allow_req, allow_status) = match self.role {
            Role::Client => (true, false),
            Role::Server => (false, true),
            _ => (true, true),
        };
        if self.resync_in_lines {
            return self.scan_in_line(off, d, seg, allow_req, allow_status);
        }
        let unknown = self.role == Role::Unknown;
        let mut d = d;
        if unknown {
            let left = SCAN_BUDGET.saturating_sub(u64::from(self.scanned));
            if (d.len() as u64) > left {
                d = &d[..left as usize];
            }
        }
        let used = if !self.buf.is_empty() {
            let n = take_line(d, LINE_CAP.saturating_sub(self.buf.len()));
            self.buf.extend_from_slice(&d[..n]);
            match classify(&self.buf, true, allow_req, allow_status) {
                c @ (Class::Request | Class::Status) => {
                    self.found_start_line(c);
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
                c @ (Class::Request | Class::Status) => {
                    self.found_start_line(c);
                }
                Class::NeedMore => {
                    self.buf.push(off, d, seg);
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

    /// After a framing error: look for the next request (or status) line anywhere in the line
    /// at the start of `d` (after what an earlier segment left undecided in `buf`), behind
    /// bytes of the body whose length was unknown. Returns the bytes of `d` used: up to the
    /// start line found (whose head follows), or the whole line.
    fn scan_in_line(
        &mut self,
        off: i64,
        d: &[u8],
        seg: &SegMeta,
        allow_req: bool,
        allow_status: bool,
    ) -> usize {
        let carried = self.buf.len();
        let (base, first) = if carried > 0 {
            (self.buf.start(), self.buf.first())
        } else {
            (off, *seg)
        };
        let take = take_line(d, LINE_CAP);
        // the bytes carried over and the line's (copied only when there are carried bytes)
        let mut joined = std::mem::take(&mut self.buf);
        let joined: &[u8] = if carried > 0 {
            joined.extend_from_slice(&d[..take]);
            &joined
        } else {
            &d[..take]
        };
        for p in 0..joined.len() {
            let rest = &joined[p..];
            let may_start = match rest[0] {
                b'H' if allow_status && may_start_token(rest, b"HTTP/1.") => true,
                b'G' | b'H' | b'P' | b'D' | b'O' | b'T' | b'C' => {
                    allow_req && COMMON_METHODS.iter().any(|m| may_start_token(rest, m))
                }
                _ => false,
            };
            if !may_start {
                continue;
            }
            let meta = if p < carried { first } else { *seg };
            match classify(rest, true, allow_req, allow_status) {
                c @ (Class::Request | Class::Status) => {
                    self.resync_in_lines = false;
                    self.found_start_line(c);
                    if p < carried {
                        // the line began in the bytes carried over: the head starts with them
                        self.buf.push(base + p as i64, &joined[p..carried], &meta);
                        return 0;
                    }
                    return p - carried;
                }
                Class::NeedMore => {
                    // it goes on in the next segment
                    self.buf.push(base + p as i64, rest, &meta);
                    return take;
                }
                Class::No => {}
            }
        }
        take
    }

    /// A request line makes this direction the client's, a status line the server's; the
    /// head follows. False for anything else.
    fn found_start_line(&mut self, class: Class) -> bool {
        self.role = match class {
            Class::Request => Role::Client,
            Class::Status => Role::Server,
            _ => return false,
        };
        self.mode = Mode::Head;
        true
    }

    /// Accounts scanned bytes against the mid-stream budget; returns `used`.
    fn scanned_used(&mut self, unknown: bool, used: usize) -> usize {
        if unknown && self.role == Role::Unknown {
            self.count_scanned(used as u64);
        }
        used
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

pub(super) fn is_method_byte(c: u8) -> bool {
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

/// Could `b` start with `token` (a method, followed by SP, or `HTTP/1.`)? Also when `b` is
/// cut short within it.
fn may_start_token(b: &[u8], token: &[u8]) -> bool {
    let n = b.len().min(token.len());
    b[..n] == token[..n]
}

/// Bytes of `d` up to and including the first LF, at most `max`.
pub(super) fn take_line(d: &[u8], max: usize) -> usize {
    find_lf(d).map_or(d.len(), |j| j + 1).min(max)
}

pub(super) fn find_lf(d: &[u8]) -> Option<usize> {
    d.iter().position(|&c| c == b'\n')
}

pub(super) fn leading_newlines(d: &[u8]) -> usize {
    d.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}
