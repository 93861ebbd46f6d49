//! HTTP/2 frames for synthetic captures: the client preface, frame headers, header blocks
//! HPACK-encoded with `loona-hpack`'s encoder (one per direction, so the dynamic table is used
//! as a real peer would), split into CONTINUATION frames on demand, and the control frames the
//! race is made of (SETTINGS, GOAWAY, RST_STREAM).

/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// frame types and flags (RFC 9113 section 6)
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Error codes used by the fixtures.
pub const NO_ERROR: u32 = 0x0;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;

/// One frame: its 9-byte header and payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A SETTINGS frame with these (identifier, value) pairs.
pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in values {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &p)
}

/// A SETTINGS frame acknowledging the peer's.
pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, 0x1, 0, &[])
}

/// A GOAWAY frame.
pub fn goaway(last_stream: u32, error: u32) -> Vec<u8> {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&error.to_be_bytes());
    frame(GOAWAY, 0, 0, &p)
}

/// An RST_STREAM frame.
pub fn rst_stream(stream: u32, error: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &error.to_be_bytes())
}

/// A DATA frame.
pub fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, bytes)
}

/// A WINDOW_UPDATE frame.
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// The header blocks of one direction, encoded with its own dynamic table.
pub struct HeaderEncoder {
    enc: loona_hpack::Encoder<'static>,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        HeaderEncoder {
            enc: loona_hpack::Encoder::new(),
        }
    }
}

impl HeaderEncoder {
    /// The HPACK block of these headers.
    pub fn block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        self.enc
            .encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    /// A HEADERS frame (END_HEADERS set) carrying these headers, followed by CONTINUATION
    /// frames when `pieces` > 1 (the block cut into that many parts).
    pub fn headers(
        &mut self,
        stream: u32,
        headers: &[(&str, &str)],
        end_stream: bool,
        pieces: usize,
    ) -> Vec<u8> {
        let block = self.block(headers);
        let pieces = pieces.clamp(1, block.len().max(1));
        let size = block.len().div_ceil(pieces).max(1);
        let parts: Vec<&[u8]> = block.chunks(size).collect();
        let mut out = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let (kind, mut flags) = if i == 0 {
                (HEADERS, if end_stream { END_STREAM } else { 0 })
            } else {
                (CONTINUATION, 0)
            };
            if last {
                flags |= END_HEADERS;
            }
            out.extend(frame(kind, flags, stream, part));
        }
        out
    }

    /// A request's HEADERS frame.
    pub fn request(
        &mut self,
        stream: u32,
        method: &str,
        path: &str,
        authority: &str,
        end_stream: bool,
    ) -> Vec<u8> {
        self.headers(
            stream,
            &[
                (":method", method),
                (":scheme", "http"),
                (":authority", authority),
                (":path", path),
                ("user-agent", "tcprace-fixture/1"),
                ("x-fixture-client", "synth"),
            ],
            end_stream,
            1,
        )
    }

    /// A response's HEADERS frame.
    pub fn response(&mut self, stream: u32, status: u16, end_stream: bool) -> Vec<u8> {
        let status = status.to_string();
        self.headers(
            stream,
            &[(":status", &status), ("content-type", "text/plain")],
            end_stream,
            1,
        )
    }
}
