//! The plaintext hand-off: decrypted application data goes to an inner analyzer as a byte
//! stream per direction, exactly as the flow stage hands TCP bytes to an analyzer
//! ([`FlowEvent`]s with offsets in the plaintext stream). The inner analyzer's messages come
//! back with their plaintext offsets, and are mapped to the TLS record that carried their first
//! byte: the message's stream offset becomes the record's TCP stream offset, its segment the
//! segment that carried the record's first byte. So the detect stage decides on decrypted
//! requests by the same sequence and acknowledgement numbers as on cleartext ones.
//!
//! Which inner analyzer reads the plaintext is chosen by ALPN ([`Inner::for_alpn`]): HTTP/1.x
//! (no ALPN, `http/1.1`, `http/1.0`) or HTTP/2 (`h2`). Both take the same `on_flow` calls and
//! answer with the same [`AppEvent`]s; the places of requests, responses, stream resets and
//! GOAWAYs are mapped back to their records.

use crate::app::h2::{self, H2Conn, H2Stats};
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
    Http1(Box<Http1Conn>),
    Http2(Box<H2Conn>),
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
    pub fn for_alpn(
        alpn: Option<&str>,
        conn: &ConnMeta,
        client: Dir,
        h2_stats: &mut H2Stats,
    ) -> Option<Inner> {
        let conn = ConnMeta {
            syn_client: Some(client),
            from_syn: PerDir::new(true, true),
            ..*conn
        };
        let proto = match alpn {
            None | Some("http/1.1" | "http/1.0") => Proto::Http1(Box::default()),
            Some("h2") => {
                let h = H2Conn::new(&conn, h2::Start::Tls);
                h.count(h2_stats);
                Proto::Http2(Box::new(h))
            }
            Some(_) => return None,
        };
        Some(Inner {
            proto,
            conn,
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
        (start, first): (i64, SegMeta),
        plain: &[u8],
        tls: &TlsIdentity,
        h2_stats: &mut H2Stats,
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
        self.run(&ev, tls, h2_stats, out);
    }

    /// `len` plaintext bytes of a record of `dir` could not be decrypted.
    pub fn gap(
        &mut self,
        dir: Dir,
        (start, first): (i64, SegMeta),
        len: u64,
        tls: &TlsIdentity,
        h2_stats: &mut H2Stats,
        out: &mut Vec<AppEvent>,
    ) {
        let off = self.advance(dir, start, first, len);
        let ev = FlowEvent::Gap {
            dir,
            off,
            len,
            meta: first,
        };
        self.run(&ev, tls, h2_stats, out);
    }

    /// Direction `dir` ended (close_notify, or the TCP FIN) in segment `meta`.
    pub fn eof(
        &mut self,
        dir: Dir,
        meta: SegMeta,
        tls: &TlsIdentity,
        h2_stats: &mut H2Stats,
        out: &mut Vec<AppEvent>,
    ) {
        let ev = FlowEvent::Eof {
            dir,
            off: self.next[dir],
            meta,
        };
        self.run(&ev, tls, h2_stats, out);
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

    fn run(
        &mut self,
        ev: &FlowEvent<'_>,
        tls: &TlsIdentity,
        h2_stats: &mut H2Stats,
        out: &mut Vec<AppEvent>,
    ) {
        self.events.clear();
        let events = &mut self.events;
        match &mut self.proto {
            Proto::Http1(h) => h.on_flow(&self.conn, ev, &mut self.http1, &mut |e| events.push(e)),
            Proto::Http2(h) => h.on_flow(ev, h2_stats, &mut |e| events.push(e)),
        }
        for mut e in self.events.drain(..) {
            match &mut e {
                AppEvent::Request(r) => {
                    (r.start, r.first) = locate(&self.spans[r.dir], r.start);
                    r.identity.tls = Some(Box::new(tls.clone()));
                }
                AppEvent::Response(r) => (r.start, r.first) = locate(&self.spans[r.dir], r.start),
                AppEvent::Closing { dir, close, .. }
                | AppEvent::StreamReset {
                    dir, reset: close, ..
                } => {
                    let (start, first) = locate(&self.spans[*dir], close.off);
                    *close = SegMeta {
                        seq: first.seq_at(start),
                        off: start,
                        ..first
                    };
                }
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
