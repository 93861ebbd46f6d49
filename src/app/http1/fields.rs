//! What the framing and the detector take from a head's header fields: the body's framing
//! (RFC 9112 6.3), Connection and Keep-Alive, Host, Server, and a request's id.

use crate::app::{Anomaly, IdHeader, RequestId, Text, lossy_text};
use std::hash::{Hash, Hasher};

/// A header name looked for, compared a word (eight bytes) at a time in any case: three
/// windows of eight bytes, at the start, at the end and in between, cover a name of up to 24
/// bytes. (Byte by byte, the comparisons were a fifth of the cost of a short head's fields.)
struct Name {
    len: usize,
    words: [u64; 3],
    /// 0x20 at each letter: a byte matches a letter in either case, any other byte exactly.
    cases: [u64; 3],
}

impl Name {
    /// `lower`: ASCII, letters in lowercase, at most 24 bytes.
    const fn new(lower: &[u8]) -> Name {
        assert!(lower.len() <= 24);
        let mut words = [0; 3];
        let mut cases = [0; 3];
        let mut w = 0;
        while w < 3 {
            let at = window(lower.len(), w);
            let mut i = 0;
            while i < 8 && at + i < lower.len() {
                let c = lower[at + i];
                assert!(c.is_ascii() && !c.is_ascii_uppercase());
                words[w] |= (c as u64) << (8 * i);
                if c.is_ascii_lowercase() {
                    cases[w] |= 0x20 << (8 * i);
                }
                i += 1;
            }
            w += 1;
        }
        Name {
            len: lower.len(),
            words,
            cases,
        }
    }

    /// Whether `name` is this name, in any case (ASCII).
    #[inline]
    fn is(&self, name: &str) -> bool {
        let name = name.as_bytes();
        if name.len() != self.len {
            return false;
        }
        (0..3).all(|w| word(name, window(self.len, w)) | self.cases[w] == self.words[w])
    }
}

/// Where the `w`th window of eight bytes of a name of `len` bytes starts.
const fn window(len: usize, w: usize) -> usize {
    let last = len.saturating_sub(8);
    match w {
        0 => 0,
        1 => {
            if last < 8 {
                last
            } else {
                8
            }
        }
        _ => last,
    }
}

/// Eight bytes of `b` from `at` (fewer at its end, the rest zero), little-endian.
#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => {
            let mut w = [0; 8];
            let rest = b.get(at..).unwrap_or_default();
            w[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(w)
        }
    }
}

const HOST: Name = Name::new(b"host");
const SERVER: Name = Name::new(b"server");
const CONNECTION: Name = Name::new(b"connection");
const KEEP_ALIVE: Name = Name::new(b"keep-alive");
const CONTENT_LENGTH: Name = Name::new(b"content-length");
const TRANSFER_ENCODING: Name = Name::new(b"transfer-encoding");

/// How a message's body is delimited, as its header fields say (RFC 9112 6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No Content-Length or Transfer-Encoding.
    None,
    Length(u64),
    Chunked,
    /// Transfer-Encoding whose last coding is not chunked.
    OtherCoding,
    /// A Content-Length that is invalid or conflicting (no Transfer-Encoding): what, in words.
    BadLength(Anomaly, String),
}

/// What the framing and the detector need from a head's header fields.
pub(super) struct Facts {
    pub(super) host: Option<Text>,
    pub(super) connection_close: bool,
    pub(super) keep_alive: Option<Text>,
    pub(super) keep_alive_timeout: Option<u32>,
    pub(super) framing: Framing,
    pub(super) request_id: Option<RequestId>,
    /// The `Server` header (what software answered).
    pub(super) server: Option<Text>,
}

pub(super) fn header_facts(headers: &[httparse::Header<'_>]) -> Facts {
    let mut host = None;
    let mut connection_close = false;
    let mut keep_alive: Option<Text> = None;
    let mut keep_alive_timeout = None;
    let mut content_length: Option<u64> = None;
    let mut cl_error: Option<(Anomaly, String)> = None;
    let mut te_present = false;
    let mut chunked = false;
    let mut request_id: Option<RequestId> = None;
    let mut server = None;
    for h in headers {
        let name = h.name;
        let value = h.value;
        // by length first: most headers are none of these
        match name.len() {
            4 if HOST.is(name) => {
                if host.is_none() {
                    host = Some(lossy_text(trim_ows(value)));
                }
            }
            6 if SERVER.is(name) => {
                if server.is_none() {
                    let v = trim_ows(value);
                    server = Some(lossy_text(&v[..v.len().min(MAX_SERVER_LEN)]));
                }
            }
            10 if CONNECTION.is(name) => {
                if value
                    .split(|&c| c == b',')
                    .any(|t| trim_ows(t).eq_ignore_ascii_case(b"close"))
                {
                    connection_close = true;
                }
            }
            10 if KEEP_ALIVE.is(name) => {
                keep_alive_values(value, &mut keep_alive, &mut keep_alive_timeout);
            }
            14 if CONTENT_LENGTH.is(name) => {
                content_length_values(value, &mut content_length, &mut cl_error);
            }
            17 if TRANSFER_ENCODING.is(name) => {
                te_present = true;
                for part in value.split(|&c| c == b',') {
                    let coding = trim_ows(part.split(|&c| c == b';').next().unwrap_or(b""));
                    if !coding.is_empty() {
                        chunked = coding.eq_ignore_ascii_case(b"chunked");
                    }
                }
            }
            _ => {
                if let Some(id) = request_id_of(name, value)
                    && request_id.is_none_or(|r| id.header < r.header)
                {
                    request_id = Some(id);
                }
            }
        }
    }
    let framing = if chunked {
        // Chunked wins over Content-Length (RFC 9112 6.3), which is then ignored.
        Framing::Chunked
    } else if te_present {
        Framing::OtherCoding
    } else if let Some((anomaly, reason)) = cl_error {
        Framing::BadLength(anomaly, reason)
    } else {
        content_length.map_or(Framing::None, Framing::Length)
    };
    Facts {
        host,
        connection_close,
        keep_alive,
        keep_alive_timeout,
        framing,
        request_id,
        server,
    }
}

/// The values of a Content-Length header (a list of equal values is one value, RFC 9110 8.6);
/// the first problem is kept.
fn content_length_values(
    value: &[u8],
    content_length: &mut Option<u64>,
    cl_error: &mut Option<(Anomaly, String)>,
) {
    for part in value.split(|&c| c == b',') {
        match parse_decimal(trim_ows(part)) {
            None => {
                cl_error.get_or_insert_with(|| {
                    let v = String::from_utf8_lossy(&value[..value.len().min(64)]);
                    (
                        Anomaly::InvalidContentLength,
                        format!("invalid Content-Length {v:?}"),
                    )
                });
            }
            Some(n) => match *content_length {
                Some(prev) if prev != n => {
                    cl_error.get_or_insert_with(|| {
                        (
                            Anomaly::ConflictingContentLength,
                            format!("conflicting Content-Length values {prev} and {n}"),
                        )
                    });
                }
                _ => *content_length = Some(n),
            },
        }
    }
}

/// A Keep-Alive header: its text (several headers joined) and its `timeout` parameter.
fn keep_alive_values(value: &[u8], keep_alive: &mut Option<Text>, timeout: &mut Option<u32>) {
    let v = lossy_text(trim_ows(value));
    match keep_alive {
        Some(s) => {
            s.push_str(", ");
            s.push_str(&v);
        }
        None => *keep_alive = Some(v),
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
                timeout.get_or_insert(t);
            }
        }
    }
}

/// Bytes of a `Server` header kept.
pub(crate) const MAX_SERVER_LEN: usize = 64;

/// The request identity a header carries, if it is one of [`IdHeader`]s with a usable value.
pub(crate) fn request_id_of(name: &str, value: &[u8]) -> Option<RequestId> {
    // every one of them starts with x or t: most headers are ruled out by their first byte
    if !matches!(name.as_bytes().first(), Some(b'x' | b'X' | b't' | b'T')) {
        return None;
    }
    let header = IdHeader::ALL
        .into_iter()
        .find(|h| name.eq_ignore_ascii_case(h.name()))?;
    let value = trim_ows(value);
    let part = match header {
        IdHeader::XRequestId | IdHeader::XCorrelationId | IdHeader::XB3TraceId => value,
        // version-traceid-parentid-flags
        IdHeader::Traceparent => value.split(|&c| c == b'-').nth(1)?,
        // Root=1-...;Parent=...;Sampled=1
        IdHeader::XAmznTraceId => value
            .split(|&c| c == b';')
            .map(trim_ows)
            .find(|p| p.len() > 5 && p[..5].eq_ignore_ascii_case(b"root="))
            .map_or(value, |p| &p[5..]),
        // TRACE_ID/SPAN_ID;o=1
        IdHeader::XCloudTraceContext => value.split(|&c| c == b'/' || c == b';').next()?,
    };
    if part.is_empty() {
        return None;
    }
    let mut h = rustc_hash::FxHasher::default();
    part.hash(&mut h);
    Some(RequestId {
        header,
        hash: h.finish(),
    })
}

pub(super) fn trim_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A non-empty run of ASCII digits that fits in a u64.
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
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

    #[test]
    fn names_match_in_any_case_and_nothing_else() {
        let names = [
            "host",
            "server",
            "connection",
            "keep-alive",
            "content-length",
            "transfer-encoding",
            "x-amzn-trace-id",
            "a",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnopqrstuvwx",
        ];
        for lower in names {
            let n = Name::new(lower.as_bytes());
            assert!(n.is(lower), "{lower}");
            assert!(n.is(&lower.to_ascii_uppercase()), "{lower}");
            // every byte, changed to each other value, fails unless it is the letter's other case
            for i in 0..lower.len() {
                for c in 0..=127u8 {
                    let mut b = lower.as_bytes().to_vec();
                    b[i] = c;
                    let s = String::from_utf8(b).unwrap();
                    assert_eq!(n.is(&s), s.eq_ignore_ascii_case(lower), "{s:?}");
                }
            }
            assert!(!n.is(&lower[1..]));
            assert!(!n.is(&format!("{lower}s")));
        }
        // '-' is not '\r' with bit 5 set
        assert!(!KEEP_ALIVE.is("keep\ralive"));
    }
}
