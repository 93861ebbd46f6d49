//! Application stage: turns one connection's two byte streams into protocol-neutral messages.
//!
//! An application analyzer owns both directions of a connection. The flow stage hands it each
//! direction's ordered bytes, gaps and ends ([`FlowEvent`]) with the metadata of their segments;
//! it answers with [`AppEvent`]s: requests and responses that carry an identity and the segment
//! metadata of their first byte, and the ends of messages. The detect stage decides from these
//! events and the connection's closes alone, whatever the protocol.
//!
//! HTTP/1.x ([`http1`]) is the first analyzer; it recognises itself by content, not by port.

pub mod http1;

use crate::flow::{ConnMeta, Dir, FlowEvent, SegMeta};

/// What identifies a request, to tell it in a finding and to find its retry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
}

/// A request: its first byte's place in the stream and segment, and what it asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub dir: Dir,
    /// Stream offset of the request's first byte.
    pub start: i64,
    /// The segment that carried the first byte.
    pub first: SegMeta,
    pub identity: Identity,
}

/// A response head (final or interim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub dir: Dir,
    /// Stream offset of the response's first byte.
    pub start: i64,
    /// The segment that carried the first byte.
    pub first: SegMeta,
    pub status: u16,
    /// An interim response (HTTP 1xx but 101): the final one follows.
    pub interim: bool,
    /// The response ends the connection's keep-alive (`Connection: close`, HTTP/1.0).
    pub closes_connection: bool,
    /// The raw `Keep-Alive` header value, if any.
    pub keep_alive: Option<String>,
}

/// What an application analyzer reports, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppEvent {
    Request(Request),
    /// The request's body (if any) is complete.
    RequestEnd {
        dir: Dir,
    },
    Response(Response),
    /// The final response's body is complete.
    ResponseEnd {
        dir: Dir,
    },
    /// The analyzer lost the message framing of direction `dir` and looks for the next message.
    Desync {
        dir: Dir,
    },
    /// The connection became a tunnel (HTTP 101, CONNECT 2xx): no more messages on `dir`.
    Tunnel {
        dir: Dir,
    },
}

/// The application analyzer of one connection.
#[derive(Debug)]
pub enum AppConn {
    Http1(http1::Http1Conn),
}

impl Default for AppConn {
    fn default() -> Self {
        AppConn::Http1(http1::Http1Conn::default())
    }
}

/// The analyzers' reusable buffers (no allocation per segment), shared by all connections.
#[derive(Debug, Default)]
pub struct Scratch {
    http1: Vec<http1::HttpEvent>,
}

impl AppConn {
    /// Feed one flow event (bytes, gap or end of a direction); each message it completes is
    /// handed to `emit` at once. Retransmissions are not the analyzer's concern.
    pub fn on_flow(
        &mut self,
        conn: &ConnMeta,
        ev: &FlowEvent<'_>,
        scratch: &mut Scratch,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        match self {
            AppConn::Http1(h) => h.on_flow(conn, ev, &mut scratch.http1, emit),
        }
    }
}
