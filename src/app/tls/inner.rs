//! The plaintext hand-off: decrypted application data goes to an inner analyzer as a byte
//! stream per direction, exactly as the flow stage hands TCP bytes to an analyzer
//! ([`FlowEvent`]s with offsets in the plaintext stream). The inner analyzer's messages come
//! back with their plaintext offsets, and are mapped to the TLS record that carried their first
//! byte: the message's stream offset becomes the record's TCP stream offset, its segment the
//! segment that carried the record's first byte. So the detect stage decides on decrypted
//! requests by the same sequence and acknowledgement numbers as on cleartext ones.
//!
//! Which inner analyzer reads the plaintext is chosen by ALPN ([`Inner::for_alpn`]): HTTP/1.x
//! today. An HTTP/2 analyzer (ALPN `h2`) plugs in as another [`Proto`] variant: it takes the same
//! `on_flow` calls and answers with the same [`AppEvent`]s.

use crate::app::http1::{self, Http1Conn};
use crate::app::{AppEvent, TlsIdentity};
use crate::flow::{ConnMeta, Dir, FlowEvent, PerDir, SegMeta};
use std::collections::VecDeque;

/// Records remembered per direction to map messages back (a message head longer than this
/// many records is mapped to the oldest one).
const SPANS: usize = 64;

/// The analyzers that can read plaintext inside TLS.
#[derive(Debug)]
enum Proto {
    Http1(Http1Conn),
    // Http2(h2::H2Conn): the HTTP/2 analyzer, for ALPN "h2"
}

/// Where a record's plaintext lies in the plaintext stream, and where the record lies in the
/// TCP stream.
#[derive(Clone, Copy, Debug)]
struct Span {
    plain: i64,
    start: i64,
    first: SegMeta,
}

/// An inner analyzer and the plaintext streams it reads.
#[derive(Debug)]
pub struct Inner {
    proto: Proto,
    /// The connection as the inner analyzer sees it: both streams read from their start.
    conn: ConnMeta,
    next: PerDir<i64>,
    spans: PerDir<VecDeque<Span>>,
    http1: Vec<http1::HttpEvent>,
    events: Vec<AppEvent>,
}

impl Inner {
    /// The inner analyzer for the protocol ALPN chose (none chosen: HTTP/1.x); None when no
    /// analyzer reads it yet.
    pub fn for_alpn(alpn: Option<&str>, conn: &ConnMeta, client: Dir) -> Option<Inner> {
        let proto = match alpn {
            None | Some("http/1.1" | "http/1.0") => Proto::Http1(Http1Conn::default()),
            // "h2": hand the plaintext to the HTTP/2 analyzer here once it exists
            Some(_) => return None,
        };
        Some(Inner {
            proto,
            conn: ConnMeta {
                syn_client: Some(client),
                from_syn: PerDir::new(true, true),
                ..*conn
            },
            next: PerDir::default(),
            spans: PerDir::default(),
            http1: Vec::new(),
            events: Vec::new(),
        })
    }

    /// The plaintext of a record of `dir` that starts at TCP stream offset `start` in
    /// segment `first`.
    pub fn data(
        &mut self,
        dir: Dir,
        start: i64,
        first: SegMeta,
        plain: &[u8],
        tls: &TlsIdentity,
        out: &mut Vec<AppEvent>,
    ) {
        if plain.is_empty() {
            return;
        }
        let off = self.advance(dir, start, first, plain.len() as u64);
        let ev = FlowEvent::Data {
            dir,
            off,
            bytes: plain,
            meta: first,
        };
        self.run(&ev, tls, out);
    }

    /// `len` plaintext bytes of a record of `dir` could not be decrypted.
    pub fn gap(
        &mut self,
        dir: Dir,
        start: i64,
        first: SegMeta,
        len: u64,
        tls: &TlsIdentity,
        out: &mut Vec<AppEvent>,
    ) {
        let off = self.advance(dir, start, first, len);
        let ev = FlowEvent::Gap {
            dir,
            off,
            len,
            meta: first,
        };
        self.run(&ev, tls, out);
    }

    /// Direction `dir` ended (close_notify, or the TCP FIN) in segment `meta`.
    pub fn eof(&mut self, dir: Dir, meta: SegMeta, tls: &TlsIdentity, out: &mut Vec<AppEvent>) {
        let ev = FlowEvent::Eof {
            dir,
            off: self.next[dir],
            meta,
        };
        self.run(&ev, tls, out);
    }

    /// Note a record's place; returns the plaintext offset of its first byte.
    fn advance(&mut self, dir: Dir, start: i64, first: SegMeta, len: u64) -> i64 {
        let plain = self.next[dir];
        self.next[dir] += len as i64;
        let spans = &mut self.spans[dir];
        if spans.len() == SPANS {
            spans.pop_front();
        }
        spans.push_back(Span {
            plain,
            start,
            first,
        });
        plain
    }

    fn run(&mut self, ev: &FlowEvent<'_>, tls: &TlsIdentity, out: &mut Vec<AppEvent>) {
        self.events.clear();
        match &mut self.proto {
            Proto::Http1(h) => {
                let events = &mut self.events;
                h.on_flow(&self.conn, ev, &mut self.http1, &mut |e| events.push(e))
            }
        }
        for mut e in self.events.drain(..) {
            match &mut e {
                AppEvent::Request(r) => {
                    (r.start, r.first) = locate(&self.spans[r.dir], r.start);
                    r.identity.tls = Some(Box::new(tls.clone()));
                }
                AppEvent::Response(r) => (r.start, r.first) = locate(&self.spans[r.dir], r.start),
                _ => {}
            }
            out.push(e);
        }
    }
}

/// The TCP place of the record that carried plaintext offset `plain`.
fn locate(spans: &VecDeque<Span>, plain: i64) -> (i64, SegMeta) {
    let s = spans
        .iter()
        .rev()
        .find(|s| s.plain <= plain)
        .or(spans.front())
        .expect("a record was noted before its plaintext was analysed");
    (s.start, s.first)
}
