//! HTTP/2: requests and responses per stream on both directions of a connection.
//!
//! HTTP/2 is recognised by content: the client connection preface (prior knowledge, "h2c"), a
//! server's SETTINGS frame as the first bytes of a connection whose client has not spoken yet,
//! the rest of an HTTP/1.1 connection after `101 Switching Protocols` to `h2c` ([`upgrade`]),
//! ALPN `h2` inside TLS (the TLS analyzer hands the plaintext here), or, on a connection picked
//! up mid-stream, a segment that starts with a chain of plausible frame headers.
//!
//! Each direction's frames are read across segments ([`frame`]); header blocks (HEADERS and
//! CONTINUATION) are decoded with HPACK ([`heads`]). A client's HEADERS on a new stream is a
//! request (method, path, authority, stream id, at the segment of the HEADERS frame's first
//! byte); the server's first final HEADERS on that stream its response. RST_STREAM and GOAWAY
//! go to the detect stage as they are ([`AppEvent::StreamReset`], [`AppEvent::Closing`] with
//! the GOAWAY's last stream id and error code). When heads cannot be decoded (a connection
//! picked up mid-stream, or after an HPACK error) requests are still found, by their stream ids,
//! with an empty method and target. Bad input is counted per reason in [`H2Stats`] and never
//! stops the analysis of the rest.
//!
//! The state per connection is bounded: one frame's payload per direction (at most
//! [`frame::MAX_KEPT`] bytes), one header block per direction, the HPACK tables (at most 64 KiB
//! each), and at most [`conn::MAX_STREAMS`] open streams.

mod conn;
pub(crate) mod frame;
mod heads;
mod hpack;
mod huffman;
#[cfg(test)]
mod tests;
mod upgrade;

pub use conn::H2Conn;
pub use upgrade::Upgrade;

use serde::Serialize;
use std::collections::BTreeMap;

/// RST_STREAM / GOAWAY error code REFUSED_STREAM: the stream was not processed.
pub const REFUSED_STREAM: u32 = 0x7;

/// The name of an HTTP/2 error code (RFC 9113 section 7).
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "UNKNOWN",
    }
}

/// How an HTTP/2 connection was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The client preface (or the server's SETTINGS) at the start of the connection.
    PriorKnowledge,
    /// After an HTTP/1.1 `Upgrade: h2c` answered by 101, or in a CONNECT tunnel.
    Upgrade,
    /// Inside TLS (ALPN h2), decrypted.
    Tls,
    /// Picked up mid-stream: frames found at a segment start, heads decoded only where the
    /// HPACK tables allow.
    Midstream,
}

impl Start {
    pub fn as_str(self) -> &'static str {
        match self {
            Start::PriorKnowledge => "prior_knowledge",
            Start::Upgrade => "upgrade",
            Start::Tls => "tls",
            Start::Midstream => "midstream",
        }
    }
}

/// Counters of the HTTP/2 analysis, summed over connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct H2Stats {
    pub connections: u64,
    /// Connections by how they were recognised: "prior_knowledge" (h2c), "upgrade" (h2c after
    /// HTTP/1.1 101, or h2 in a CONNECT tunnel), "tls" (ALPN h2, decrypted), "midstream"
    /// (picked up mid-stream).
    pub by_start: BTreeMap<&'static str, u64>,
    pub frames: u64,
    /// Requests (client HEADERS opening a stream).
    pub requests: u64,
    /// Requests whose head could not be decoded (HPACK state unknown after a mid-stream
    /// pickup, an error or missing bytes): known by their stream id only.
    pub heads_not_decoded: u64,
    /// GOAWAY and RST_STREAM frames, both directions.
    pub goaways: u64,
    pub rst_streams: u64,
    /// Server pushes (PUSH_PROMISE): not requests of the client.
    pub push_promises: u64,
    /// Problems, per reason: "malformed_frame", "oversized_frame" (over the receiver's
    /// SETTINGS_MAX_FRAME_SIZE), "framing_lost_in_gap" (bytes missing where a frame header
    /// was), "hpack_error", "header_block_too_large", "header_block_missing",
    /// "header_block_interrupted", "bad_padding", "streams_untracked" (more open streams than
    /// are kept). Framing problems stop the analysis of the direction until a segment starts
    /// with frames again; header problems stop the decoding of its heads.
    pub errors: BTreeMap<&'static str, u64>,
}

impl H2Stats {
    pub fn is_empty(&self) -> bool {
        self.connections == 0
    }

    /// Add another shard's (or analyzer's) counters.
    pub fn add(&mut self, o: &H2Stats) {
        self.connections += o.connections;
        for (k, v) in &o.by_start {
            *self.by_start.entry(k).or_default() += v;
        }
        self.frames += o.frames;
        self.requests += o.requests;
        self.heads_not_decoded += o.heads_not_decoded;
        self.goaways += o.goaways;
        self.rst_streams += o.rst_streams;
        self.push_promises += o.push_promises;
        for (k, v) in &o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    pub(crate) fn error(&mut self, why: &'static str) {
        *self.errors.entry(why).or_default() += 1;
    }
}

/// Do a connection's first bytes look like HTTP/2? `at_start`: they are the first bytes of
/// their direction (the SYN was seen): the client preface, or a server's SETTINGS frame; else
/// a chain of plausible frames.
pub fn looks_like_h2(first: &[u8], at_start: bool) -> bool {
    if at_start {
        is_preface_start(first) || is_server_preface(first)
    } else {
        frame::plausible_frames(first, frame::DEFAULT_MAX_FRAME)
    }
}

/// Do `bytes` start the client preface (at least its first 5 bytes, "PRI *")?
pub fn is_preface_start(bytes: &[u8]) -> bool {
    let n = bytes.len().min(frame::PREFACE.len());
    n >= 5 && bytes[..n] == frame::PREFACE[..n]
}

/// Do `bytes` start with a SETTINGS frame (what a server sends first)?
pub fn is_server_preface(bytes: &[u8]) -> bool {
    matches!(bytes, [0, _, _, frame::SETTINGS, 0, 0, 0, 0, 0, ..])
        && frame::plausible_frames(bytes, frame::DEFAULT_MAX_FRAME)
}

/// The entry point for fuzzing: run arbitrary bytes through an HTTP/2 connection as a client
/// direction (prior knowledge) and a server direction, in segments of the given sizes. Never
/// panics; returns the number of events.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_one(client: &[u8], server: &[u8], segment: usize) -> usize {
    tests_support::run(client, server, segment.max(1))
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod tests_support {
    //! Feeding bytes through an [`H2Conn`] as flow events (fuzzing, unit tests).

    use super::{H2Conn, H2Stats, Start};
    use crate::app::AppEvent;
    use crate::flow::{ConnMeta, Dir, FlowEvent, HandshakeTimes, PerDir, SegMeta};

    /// The connection the helpers feed: both directions from their start, Fwd the client.
    pub fn conn() -> ConnMeta {
        ConnMeta {
            id: 1,
            addrs: PerDir::new(
                "192.0.2.10:40000".parse().expect("address"),
                "198.51.100.20:80".parse().expect("address"),
            ),
            syn_client: Some(Dir::Fwd),
            from_syn: PerDir::new(true, true),
            handshake: HandshakeTimes::default(),
        }
    }

    pub fn run(client: &[u8], server: &[u8], segment: usize) -> usize {
        let conn = conn();
        let mut h = H2Conn::new(&conn, Start::PriorKnowledge);
        let mut stats = H2Stats::default();
        let mut n = 0;
        let mut off = PerDir::new(0i64, 0i64);
        let mut chunks = [client.chunks(segment), server.chunks(segment)];
        loop {
            let mut any = false;
            for (i, dir) in Dir::BOTH.into_iter().enumerate() {
                let Some(bytes) = chunks[i].next() else {
                    continue;
                };
                any = true;
                let ev = FlowEvent::Data {
                    dir,
                    off: off[dir],
                    bytes,
                    meta: SegMeta {
                        off: off[dir],
                        ..SegMeta::default()
                    },
                };
                off[dir] += bytes.len() as i64;
                h.on_flow(&ev, &mut stats, &mut |_: AppEvent| n += 1);
            }
            if !any {
                return n;
            }
        }
    }
}
