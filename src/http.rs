//! HTTP/1.x stage: frames requests and responses on one direction of a TCP stream.
//!
//! CONTRACT: one `HttpStream` per direction. The flow stage feeds it in-order bytes with their
//! stream offsets (`on_data`), bytes missing from the capture (`on_gap`) and the end of the
//! direction (`on_eof`, at a FIN). It emits `HttpEvent`s carrying stream offsets, which the detect
//! stage maps back to frames. HTTP is recognised by content, not port: a stream whose first bytes
//! are not a request or status line becomes `NotHttp` and costs nothing afterwards. Heads are
//! parsed with httparse (split over any number of segments, bounded buffer); bodies by
//! Content-Length, chunked, or read-until-close (responses only); no body for HEAD, 1xx, 204,
//! 304; a 101 or a 2xx to CONNECT ends HTTP parsing (tunnel). After a gap that hits a head or a
//! chunk-size line the parser resynchronises on the next request/status line instead of guessing.

/// Which role this direction has, as learnt from its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
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
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// `Connection: close` present.
    pub connection_close: bool,
    pub content_length: Option<u64>,
    pub chunked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub start: i64,
    pub head_end: i64,
    pub status: u16,
    pub version: u8,
    pub connection_close: bool,
    /// `Keep-Alive: timeout=N`.
    pub keep_alive_timeout: Option<u32>,
    /// Raw `Keep-Alive` header value, if any.
    pub keep_alive: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    Request(RequestHead),
    /// The request's body (if any) is complete; `end` is the offset just past it.
    RequestEnd { end: i64 },
    /// A response head; 1xx heads are interim (not the final response).
    Response(ResponseHead),
    /// The final response's body is complete (for read-until-close: at `on_eof`).
    ResponseEnd { end: i64 },
    /// A head that did not parse, or sync lost in a gap; the parser now looks for the next
    /// request/status line.
    Desync { offset: i64, reason: String },
    /// 101 Switching Protocols or CONNECT 2xx: no more HTTP on this direction.
    Tunnel { offset: i64 },
}

/// HTTP/1.x framing state for one direction of a connection.
pub struct HttpStream {
    _private: (),
}

impl HttpStream {
    /// `start_known`: the stream's first byte is the start of the connection (SYN seen), so the
    /// first bytes decide HTTP or not; otherwise (mid-stream pickup) scan a bounded amount for a
    /// request/status line first.
    pub fn new(_start_known: bool) -> Self {
        todo!("http helper")
    }
    pub fn side(&self) -> Side {
        todo!("http helper")
    }
    /// In-order bytes starting at stream offset `offset`.
    pub fn on_data(&mut self, _offset: i64, _data: &[u8], _out: &mut Vec<HttpEvent>) {
        todo!("http helper")
    }
    /// `len` bytes starting at `offset` are missing from the capture (known only by length).
    pub fn on_gap(&mut self, _offset: i64, _len: u64, _out: &mut Vec<HttpEvent>) {
        todo!("http helper")
    }
    /// The sender closed this direction (FIN) at `offset`.
    pub fn on_eof(&mut self, _offset: i64, _out: &mut Vec<HttpEvent>) {
        todo!("http helper")
    }
    /// Response side: the next request in order has this method (HEAD and CONNECT change how
    /// the matching response is framed). Called once per request, in order.
    pub fn push_request_method(&mut self, _method: &str) {
        todo!("http helper")
    }
}
