//! HTTP/1.x: frames requests and responses on both directions of a connection.
//!
//! One [`HttpStream`] per direction frames messages; [`Http1Conn`] owns both, tells the server
//! direction each request's method (HEAD and CONNECT change how its response is framed) and
//! turns the framing events into protocol-neutral [`AppEvent`]s.
//!
//! HTTP is recognised by content, not port: a stream whose first bytes are not a request or
//! status line becomes `NotHttp` and costs nothing afterwards. Heads are parsed with httparse
//! (split over any number of segments, bounded buffer); bodies by Content-Length, chunked, or
//! read-until-close (responses only); no body for HEAD, 1xx, 204, 304; a 101 or a 2xx to CONNECT
//! ends HTTP parsing (tunnel). After a gap that hits a head or a chunk-size line the parser
//! resynchronises on the next request/status line instead of guessing.

mod body;
mod chunked;
mod fields;
mod head;
mod headbuf;
mod salvage;
mod sniff;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use fields::{MAX_SERVER_LEN, parse_decimal, request_id_of};
pub use stream::HttpStream;

use super::{Anomaly, AppEvent, BodyDigest, Identity, Request, RequestId, Response, Text};
use crate::flow::{ConnMeta, Dir, FlowEvent, PerDir, SegMeta};

/// Which role a direction has, as learnt from its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
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
    /// The segment that carried the first byte of the request line.
    pub first: SegMeta,
    pub method: Text,
    pub target: Text,
    pub host: Option<Text>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// `Connection: close` present.
    pub connection_close: bool,
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub request_id: Option<RequestId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub start: i64,
    pub head_end: i64,
    /// The segment that carried the first byte of the status line.
    pub first: SegMeta,
    pub status: u16,
    pub version: u8,
    pub connection_close: bool,
    /// `Keep-Alive: timeout=N`.
    pub keep_alive_timeout: Option<u32>,
    /// Raw `Keep-Alive` header value, if any.
    pub keep_alive: Option<Text>,
    /// The `Server` header, if any.
    pub server: Option<Text>,
}

/// What the framing of one direction finds, with stream offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    Request(RequestHead),
    /// The request's body (if any) is complete; `end` is the offset just past it; `body` its
    /// digest unless bytes of it were missing.
    RequestEnd {
        end: i64,
        body: Option<BodyDigest>,
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
        /// The sender broke the framing (rather than the capture missing bytes).
        anomaly: Option<Anomaly>,
    },
    /// 101 Switching Protocols or CONNECT 2xx: no more HTTP on this direction.
    Tunnel {
        offset: i64,
    },
}

/// HTTP/1.x on one connection: a framing state per direction, made on its first bytes.
#[derive(Debug, Default)]
pub struct Http1Conn {
    streams: PerDir<Option<HttpStream>>,
}

impl Http1Conn {
    /// Feed one flow event; `scratch` is a reusable buffer, the messages go to `emit`.
    pub fn on_flow(
        &mut self,
        conn: &ConnMeta,
        ev: &FlowEvent<'_>,
        scratch: &mut Vec<HttpEvent>,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        scratch.clear();
        let dir = match ev {
            FlowEvent::Data {
                dir,
                off,
                bytes,
                meta,
            } => {
                let Some(h) = self.stream(conn, *dir) else {
                    return;
                };
                h.on_data(*off, bytes, meta, scratch);
                *dir
            }
            FlowEvent::Gap { dir, off, len, .. } => {
                let Some(h) = self.stream(conn, *dir) else {
                    return;
                };
                h.on_gap(*off, *len, scratch);
                *dir
            }
            FlowEvent::Eof { dir, off, .. } => {
                match &mut self.streams[*dir] {
                    Some(h) if h.role() != Role::NotHttp => h.on_eof(*off, scratch),
                    _ => return,
                }
                *dir
            }
            FlowEvent::Retransmit { .. } | FlowEvent::Segment { .. } => return,
        };
        // in place: the events are large, moving them out of the buffer costs
        for ev in scratch.iter_mut() {
            if let HttpEvent::Request(head) = ev {
                let other = dir.other();
                self.streams[other]
                    .get_or_insert_with(|| HttpStream::new(conn.from_syn[other]))
                    .push_request_method(&head.method);
            }
            emit(app_event(dir, ev));
        }
        scratch.clear();
    }

    /// The framing state of `dir` (made on its first bytes), unless it is not HTTP.
    fn stream(&mut self, conn: &ConnMeta, dir: Dir) -> Option<&mut HttpStream> {
        let h = self.streams[dir].get_or_insert_with(|| HttpStream::new(conn.from_syn[dir]));
        (h.role() != Role::NotHttp).then_some(h)
    }
}

/// The protocol-neutral form of a framing event of direction `dir` (its strings taken).
fn app_event(dir: Dir, ev: &mut HttpEvent) -> AppEvent {
    use std::mem::take;
    match ev {
        HttpEvent::Request(h) => AppEvent::Request(Request {
            dir,
            start: h.start,
            first: h.first,
            identity: Identity {
                method: take(&mut h.method),
                target: take(&mut h.target),
                host: h.host.take(),
                body_len: if h.chunked {
                    None
                } else {
                    Some(h.content_length.unwrap_or(0))
                },
                request_id: h.request_id,
                tls: None,
                stream: None,
            },
        }),
        HttpEvent::RequestEnd { body, .. } => AppEvent::RequestEnd { dir, body: *body },
        HttpEvent::Response(h) => AppEvent::Response(Response {
            dir,
            start: h.start,
            first: h.first,
            status: h.status,
            interim: (100..200).contains(&h.status) && h.status != 101,
            closes_connection: h.connection_close || h.version == 0,
            keep_alive: h.keep_alive.take(),
            stream: None,
            server: h.server.take(),
        }),
        HttpEvent::ResponseEnd { .. } => AppEvent::ResponseEnd { dir },
        HttpEvent::Desync {
            reason, anomaly, ..
        } => AppEvent::Desync {
            dir,
            anomaly: anomaly.map(|a| (a, take(reason))),
        },
        HttpEvent::Tunnel { offset } => AppEvent::Tunnel {
            dir,
            offset: *offset,
        },
    }
}
