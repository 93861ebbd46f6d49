//! Application stage: turns one connection's two byte streams into protocol-neutral messages.
//!
//! An application analyzer owns both directions of a connection. The flow stage hands it each
//! direction's ordered bytes, gaps and ends ([`FlowEvent`]) with the metadata of their segments;
//! it answers with [`AppEvent`]s: requests and responses that carry an identity and the segment
//! metadata of their first byte, and the ends of messages. The detect stage decides from these
//! events and the connection's closes alone, whatever the protocol.
//!
//! The analyzer is chosen by content, not port, on the connection's first bytes: TLS ([`tls`],
//! a handshake record), HTTP/2 ([`h2`]: the client preface, or frames on a connection picked up
//! mid-stream) or HTTP/1.x ([`http1`], which then recognises itself or gives up; an upgrade to
//! h2c hands the rest of the connection to [`h2`]). Inside TLS, a decrypted connection's
//! plaintext goes to an inner analyzer chosen by ALPN (see [`tls`]'s `inner`).

pub mod h2;
pub mod http1;
pub mod tls;

use crate::flow::{CloseEvent, ConnMeta, Dir, FlowEvent, SegMeta};

/// Short text from the wire (a method, target, Host or Server value): kept inline up to 24
/// bytes, so that most requests' heads allocate nothing.
pub type Text = compact_str::CompactString;

/// `bytes` as text, invalid UTF-8 replaced.
pub fn lossy_text(bytes: &[u8]) -> Text {
    // (compact_str's own from_utf8_lossy goes character by character: ~1,000 instructions
    // for a Host header)
    match std::str::from_utf8(bytes) {
        Ok(s) => Text::from(s),
        Err(_) => Text::from(String::from_utf8_lossy(bytes)),
    }
}

/// What identifies a request, to tell it in a finding and to find its retry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub method: Text,
    pub target: Text,
    pub host: Option<Text>,
    /// Body length announced by the head (0 without a body; `None` when only its end tells,
    /// as with chunked bodies).
    pub body_len: Option<u64>,
    /// A header that names this very request (a retry repeats it), when present.
    pub request_id: Option<RequestId>,
    /// The request came inside TLS.
    pub tls: Option<Box<TlsIdentity>>,
    /// HTTP/2: the request's stream id (its method and target are empty when its head could
    /// not be decoded).
    pub stream: Option<u32>,
}

impl Identity {
    /// A request inside TLS known by its records only (not decrypted): no method or target,
    /// its Host the server name.
    pub fn encrypted(tls: TlsIdentity) -> Identity {
        Identity {
            method: Default::default(),
            target: Default::default(),
            host: tls.sni.as_deref().map(Text::from),
            body_len: None,
            request_id: None,
            tls: Some(Box::new(TlsIdentity {
                encrypted: true,
                ..tls
            })),
            stream: None,
        }
    }
}

/// What TLS tells of a request it carried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsIdentity {
    /// Not decrypted: method, target and Host are unknown, the request is known by its first
    /// record's length (and a retry is matched by it).
    pub encrypted: bool,
    /// The negotiated version ("TLS 1.2", "TLS 1.3"), empty when no ServerHello was seen.
    pub version: &'static str,
    /// IANA number of the cipher suite (0: unknown).
    pub cipher_suite: u16,
    /// Server name (SNI) from the ClientHello.
    pub sni: Option<String>,
    /// The application protocol ALPN chose.
    pub alpn: Option<String>,
    /// The session was resumed (short handshake).
    pub resumed: bool,
    /// Length of the request's first record (the body, without the 5-byte header).
    pub record_len: u16,
}

/// The headers that name a request, in order of preference when several are present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdHeader {
    /// `X-Request-ID` (nginx's `$request_id`, set by ingress-nginx and Envoy by default).
    XRequestId,
    /// `X-Correlation-ID`.
    XCorrelationId,
    /// W3C `traceparent`: its trace id (the parent id may change per attempt).
    Traceparent,
    /// `X-Amzn-Trace-Id`: its `Root=` part.
    XAmznTraceId,
    /// `X-B3-TraceId` (Zipkin).
    XB3TraceId,
    /// `X-Cloud-Trace-Context`: its trace id (before the `/`).
    XCloudTraceContext,
}

impl IdHeader {
    pub const ALL: [IdHeader; 6] = [
        IdHeader::XRequestId,
        IdHeader::XCorrelationId,
        IdHeader::Traceparent,
        IdHeader::XAmznTraceId,
        IdHeader::XB3TraceId,
        IdHeader::XCloudTraceContext,
    ];

    /// The header's name as usually written.
    pub fn name(self) -> &'static str {
        match self {
            IdHeader::XRequestId => "X-Request-ID",
            IdHeader::XCorrelationId => "X-Correlation-ID",
            IdHeader::Traceparent => "traceparent",
            IdHeader::XAmznTraceId => "X-Amzn-Trace-Id",
            IdHeader::XB3TraceId => "X-B3-TraceId",
            IdHeader::XCloudTraceContext => "X-Cloud-Trace-Context",
        }
    }
}

/// A request's identity header: which one, and a hash of the part that names the request (no
/// copy of the value is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    pub header: IdHeader,
    pub hash: u64,
}

/// What a request's body was, when the capture held all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BodyDigest {
    pub len: u64,
    pub crc32: u32,
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
    pub keep_alive: Option<Text>,
    /// HTTP/2: the stream it answers.
    pub stream: Option<u32>,
    /// The `Server` header value, if any.
    pub server: Option<Text>,
}

/// What an HTTP/2 GOAWAY frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoAway {
    /// The highest stream id the sender may have processed: the streams above it were not.
    pub last_stream: u32,
    pub error: u32,
}

/// What an application analyzer reports, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppEvent {
    Request(Request),
    /// The request's body (if any) is complete; its digest unless bytes of it were missing.
    RequestEnd {
        dir: Dir,
        body: Option<BodyDigest>,
    },
    Response(Response),
    /// The final response's body is complete.
    ResponseEnd {
        dir: Dir,
    },
    /// The analyzer lost the message framing of direction `dir` and looks for the next message;
    /// `anomaly`: the sender broke the framing (what, and in words).
    Desync {
        dir: Dir,
        anomaly: Option<(Anomaly, String)>,
    },
    /// The connection became a tunnel (HTTP 101, CONNECT 2xx): no more messages of this
    /// protocol on `dir` from stream offset `offset` on.
    Tunnel {
        dir: Dir,
        offset: i64,
    },
    /// Direction `dir` signalled the end of the connection in the protocol (a TLS alert such
    /// as close_notify; an HTTP/2 GOAWAY): `close` is where, and the verdicts take it for the
    /// FIN that follows.
    Closing {
        dir: Dir,
        close: CloseEvent,
        /// The GOAWAY's content, when the signal was one.
        goaway: Option<GoAway>,
    },
    /// HTTP/2: direction `dir` reset stream `stream` (RST_STREAM) with this error code; `reset`
    /// is where the frame starts.
    StreamReset {
        dir: Dir,
        stream: u32,
        error: u32,
        reset: CloseEvent,
    },
}

/// A message that breaks its protocol's framing: counted by name, and warned about with its
/// file and frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// A Content-Length that is not a number (RFC 9112 6.3: the framing is lost).
    InvalidContentLength,
    /// Content-Length values that differ (in one field or in several).
    ConflictingContentLength,
    /// A head longer than the head cap (64 KiB, or more than 512 header fields), or one that
    /// never ends.
    HeadOverCap,
}

/// The application analyzer of one connection, chosen on its first bytes.
// HTTP/1.x is most connections: boxing it would cost an allocation each; TLS is boxed
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
pub enum AppConn {
    /// No byte yet.
    #[default]
    Unknown,
    /// HTTP/1.x, and what follows its tunnels (h2c by upgrade).
    Http1(http1::Http1Conn, Option<Box<h2::Upgrade>>),
    Tls(Box<tls::TlsConn>),
    H2(Box<h2::H2Conn>),
}

/// The analyzers' reusable buffers (no allocation per segment), and what they keep across the
/// connections of a shard.
#[derive(Debug, Default)]
pub struct Scratch {
    http1: Vec<http1::HttpEvent>,
    pub tls: tls::TlsContext,
    pub h2: h2::H2Stats,
}

impl Scratch {
    /// With the TLS keys to decrypt with.
    pub fn new(keys: tls::Keys) -> Scratch {
        Scratch {
            tls: tls::TlsContext::new(keys),
            ..Scratch::default()
        }
    }
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
        if let AppConn::Unknown = self {
            *self = match ev {
                FlowEvent::Data { bytes, .. } if tls::looks_like_tls(bytes) => {
                    AppConn::Tls(Box::default())
                }
                FlowEvent::Data { dir, bytes, .. }
                    if h2::looks_like_h2(bytes, conn.from_syn[*dir]) =>
                {
                    let start = if conn.from_syn[*dir] {
                        h2::Start::PriorKnowledge
                    } else {
                        h2::Start::Midstream
                    };
                    let h = h2::H2Conn::new(conn, start);
                    h.count(&mut scratch.h2);
                    AppConn::H2(Box::new(h))
                }
                _ => AppConn::Http1(http1::Http1Conn::default(), None),
            };
        }
        match self {
            AppConn::Unknown => {}
            AppConn::Http1(h, up) => {
                h.on_flow(conn, ev, &mut scratch.http1, &mut |e| {
                    match &e {
                        AppEvent::Tunnel { dir, offset } => {
                            up.get_or_insert_default().on_tunnel(*dir, *offset)
                        }
                        AppEvent::Response(r) if r.status == 101 => {
                            up.get_or_insert_default().on_switching_protocols()
                        }
                        _ => {}
                    }
                    emit(e)
                });
                if let Some(up) = up.as_mut().filter(|u| !u.idle()) {
                    up.on_flow(ev, &mut scratch.h2, emit);
                }
            }
            AppConn::Tls(t) => t.on_flow(conn, ev, &mut scratch.tls, emit),
            AppConn::H2(h) => h.on_flow(ev, &mut scratch.h2, emit),
        }
    }
}
