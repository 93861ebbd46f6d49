//! Heads cut short by a gap (typically the snaplen): what the capture kept of the first line
//! and the complete header lines still names the message.

use super::fields::{header_facts, trim_cr, trim_ows};
use super::sniff::{find_lf, is_method_byte};
use super::stream::HttpStream;
use super::{HttpEvent, RequestHead, ResponseHead, Role};
use crate::app::lossy_text;

impl HttpStream {
    /// A gap cut the head being buffered (typically a snaplen): when its first line and some
    /// header lines are complete, report the message with what is known (the body's length is
    /// not), so a request still counts and a response still answers one.
    pub(super) fn salvage_head(&mut self, gap_at: i64, out: &mut Vec<HttpEvent>) {
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
        let facts = Some(header_facts(&headers));
        let (host, connection_close, keep_alive, keep_alive_timeout, request_id, server) =
            match facts {
                Some(f) => (
                    f.host,
                    f.connection_close,
                    f.keep_alive,
                    f.keep_alive_timeout,
                    f.request_id,
                    f.server,
                ),
                None => (None, false, None, None, None, None),
            };
        let mut parts = first.split(|&c| c == b' ').filter(|p| !p.is_empty());
        let (a, b, c) = (parts.next(), parts.next(), parts.next());
        let version = |v: &[u8]| match v {
            b"HTTP/1.0" => Some(0),
            b"HTTP/1.1" => Some(1),
            _ => None,
        };
        let start = self.buf.start();
        match (self.role, a, b, c) {
            (Role::Client, Some(m), Some(t), Some(v)) if m.iter().all(|&x| is_method_byte(x)) => {
                let Some(version) = version(v) else { return };
                out.push(HttpEvent::Request(RequestHead {
                    start,
                    first: self.buf.first(),
                    head_end: gap_at,
                    method: lossy_text(m),
                    target: lossy_text(t),
                    host,
                    version,
                    connection_close,
                    content_length: None,
                    chunked: false,
                    request_id,
                }));
            }
            (Role::Server, Some(v), Some(code), _) => {
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
                    first: self.buf.first(),
                    head_end: gap_at,
                    status,
                    version,
                    connection_close,
                    keep_alive_timeout,
                    keep_alive,
                    server,
                }));
                if status >= 200 {
                    self.methods.pop_front();
                }
            }
            _ => {}
        }
    }
}
