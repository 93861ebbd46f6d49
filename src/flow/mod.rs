//! Flow stage: the connection table and each connection's TCP state per direction.
//!
//! A connection is a 4-tuple plus an epoch: a SYN with a new ISN, or a packet after long silence,
//! starts a new one. Each direction ([`Dir`]) maps its sequence numbers onto 64-bit stream
//! offsets ([`SeqSpace`]), delivers its bytes in order exactly once (retransmissions and overlaps
//! are trimmed, out-of-order segments are buffered within bounds), reports bytes missing from the
//! capture as gaps, and records its first valid FIN and RST with their frame, time, seq and ack.
//! A FIN or RST before the handshake completed or outside the receiver's window is not a close:
//! it is counted as an anomaly.
//!
//! What leaves the stage: per connection, a stream of [`FlowEvent`]s (ordered bytes, gaps,
//! retransmissions and ends of direction, each with the metadata of its segment) while it is
//! tracked, and a [`ConnEnd`] with its closes when the table finishes it. The connection's TCP
//! state itself stays private to this module.
//!
//! Before the table, the [`CopyFilter`] (`copies`) recognises copies of one segment (the same
//! packet captured twice, in and out of a tunnel, on both sides of a NAT): duplicates are
//! counted and not analysed again, and a connection captured under two address pairs is one
//! connection that records the other pair ([`Twin`]) and the tunnel it was seen in.

mod conn;
pub mod copies;
mod endpoint;
#[cfg(test)]
mod proptests;
mod reassembly;
pub mod seq;
mod table;
#[cfg(test)]
mod tests;

pub use copies::{CopyFilter, Sighting};
pub use seq::{SeqNumber, SeqSpace};
pub use table::{EndReason, FlowHandler, FlowTable, TableConfig};

use crate::decode::Tunnel;
use crate::time::Timestamp;
use std::net::SocketAddr;
use std::ops::{Index, IndexMut};

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Sent by the endpoint whose packet was captured first on the connection (the client,
    /// unless the capture picked the connection up mid-stream).
    Fwd,
    /// Sent by the other endpoint.
    Rev,
}

impl Dir {
    pub const BOTH: [Dir; 2] = [Dir::Fwd, Dir::Rev];

    /// The opposite direction.
    pub fn other(self) -> Dir {
        match self {
            Dir::Fwd => Dir::Rev,
            Dir::Rev => Dir::Fwd,
        }
    }

    fn index(self) -> usize {
        match self {
            Dir::Fwd => 0,
            Dir::Rev => 1,
        }
    }
}

/// A value per direction, indexed by [`Dir`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerDir<T>(pub [T; 2]);

impl<T> PerDir<T> {
    pub fn new(fwd: T, rev: T) -> PerDir<T> {
        PerDir([fwd, rev])
    }
}

impl<T> Index<Dir> for PerDir<T> {
    type Output = T;
    fn index(&self, d: Dir) -> &T {
        &self.0[d.index()]
    }
}

impl<T> IndexMut<Dir> for PerDir<T> {
    fn index_mut(&mut self, d: Dir) -> &mut T {
        &mut self.0[d.index()]
    }
}

/// Where and when a packet was seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameRef {
    /// Index of the input file.
    pub input: u32,
    /// 1-based frame number within that input.
    pub frame: u64,
    /// Position in the whole analysed stream (orders packets across inputs).
    pub ordinal: u64,
    pub ts: Timestamp,
}

/// What a segment carried besides its bytes: where it was, what it acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegMeta {
    pub at: FrameRef,
    /// Sequence number of the segment.
    pub seq: SeqNumber,
    /// Stream offset of the segment's sequence number.
    pub off: i64,
    /// Acknowledgement number, when the ACK flag was set.
    pub ack: Option<SeqNumber>,
    /// The acknowledgement as an offset in the other direction's stream.
    pub ack_off: Option<i64>,
}

impl SegMeta {
    /// The sequence number of stream offset `off` (a byte this segment carried).
    pub fn seq_at(&self, off: i64) -> SeqNumber {
        self.seq.wrapping_add((off - self.off) as u32)
    }
}

/// A FIN or RST accepted as closing one direction: its segment's metadata, with `off` the
/// stream offset of the FIN (or of the RST's sequence number).
pub type CloseEvent = SegMeta;

/// What the flow stage tells the later stages, in order, per direction.
#[derive(Debug, PartialEq, Eq)]
pub enum FlowEvent<'a> {
    /// In-order bytes of direction `dir` starting at stream offset `off`.
    Data {
        dir: Dir,
        off: i64,
        bytes: &'a [u8],
        meta: SegMeta,
    },
    /// `len` bytes at `off` are missing from the capture (lost, or cut by the snaplen).
    Gap {
        dir: Dir,
        off: i64,
        len: u64,
        meta: SegMeta,
    },
    /// A segment whose bytes had all been delivered already.
    Retransmit {
        dir: Dir,
        off: i64,
        len: u64,
        meta: SegMeta,
    },
    /// Direction `dir` ended (its FIN was reached in order) at `off`; `meta` is the FIN's.
    Eof { dir: Dir, off: i64, meta: SegMeta },
    /// A segment as it was captured (its TCP flags and payload length on the wire), before
    /// anything else it causes; only when the table traces segments
    /// ([`TableConfig::trace_segments`]).
    Segment {
        dir: Dir,
        flags: u8,
        len: u32,
        meta: SegMeta,
    },
}

impl FlowEvent<'_> {
    /// The segment the event came from.
    pub fn meta(&self) -> &SegMeta {
        match self {
            FlowEvent::Data { meta, .. }
            | FlowEvent::Gap { meta, .. }
            | FlowEvent::Retransmit { meta, .. }
            | FlowEvent::Eof { meta, .. }
            | FlowEvent::Segment { meta, .. } => meta,
        }
    }
}

/// What the later stages need to know about a connection while handling its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    /// The ordinal of the connection's first packet: unique, and the same however the input is
    /// split into shards.
    pub id: u64,
    /// `addrs[d]` sent direction `d`.
    pub addrs: PerDir<SocketAddr>,
    /// Direction sent by the client, when known from the handshake.
    pub syn_client: Option<Dir>,
    /// Per direction: its first byte is the connection's first (the SYN was seen).
    pub from_syn: PerDir<bool>,
    /// When the capture saw the handshake.
    pub handshake: HandshakeTimes,
}

/// Capture times of a connection's handshake: the (last) SYN before the SYN-ACK, the SYN-ACK,
/// the client's ACK of it. Their differences are the turn-arounds of the two ends as seen
/// from the capture point: near the client the client answers at once and the server after a
/// round trip, near the server the other way round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeTimes {
    pub syn: Option<Timestamp>,
    pub syn_ack: Option<Timestamp>,
    pub ack: Option<Timestamp>,
}

impl HandshakeTimes {
    /// Seconds from the SYN-ACK passing the capture point to the client's ACK passing it: the
    /// round trip between the capture point and the client.
    pub fn client_turn(&self) -> Option<f64> {
        let (synack, ack) = (self.syn_ack?, self.ack?);
        (ack >= synack).then(|| ack.secs_since(synack))
    }
}

/// The closes of a connection: the first valid FIN and RST of each direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Closes {
    pub fin: PerDir<Option<CloseEvent>>,
    pub rst: PerDir<Option<CloseEvent>>,
}

/// A connection captured under two address pairs: on both sides of a NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Twin {
    /// `addrs[d]` sent direction `d` where the connection had the other addresses.
    pub addrs: PerDir<SocketAddr>,
    /// The connection's own addresses (`ConnMeta::addrs`) were captured on the side of the
    /// NAT nearer to the sender of this direction (they saw its packets first).
    pub near: Dir,
}

/// A finished connection, as the flow stage hands it over.
#[derive(Clone, Copy, Debug)]
pub struct ConnEnd {
    pub conn: ConnMeta,
    pub closes: Closes,
    /// Per direction: the stream offset just past the bytes delivered (gaps included), when
    /// any were.
    pub stream_end: PerDir<Option<i64>>,
    /// The tunnel of the connection's first encapsulated segment, and its direction.
    pub tunnel: Option<(Dir, Tunnel)>,
    /// The connection's other address pair, when it was captured on both sides of a NAT.
    pub twin: Option<Twin>,
    #[allow(dead_code)] // read by the tests; nothing else needs it yet
    pub why: EndReason,
}

/// Counters of what the flow stage saw and did, summed over all connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct FlowStats {
    pub connections: u64,
    pub retransmitted_segments: u64,
    pub out_of_order_segments: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub snaplen_truncated_segments: u64,
    pub rst_before_handshake: u64,
    pub fin_before_handshake: u64,
    pub rst_out_of_window: u64,
    pub fin_out_of_window: u64,
    pub conflicting_fin: u64,
    pub reorder_buffer_overflows: u64,
    pub connections_split_by_new_syn: u64,
    pub connections_split_by_silence: u64,
    pub connections_evicted: u64,
    pub late_segments_after_close: u64,
    /// Segments found inside a tunnel (VXLAN, GRE, ...).
    pub tunnelled_segments: u64,
    /// Copies of segments already seen (captured twice), not analysed again.
    pub duplicate_segments: u64,
    /// Connections captured under two address pairs (both sides of a NAT).
    pub nat_twin_connections: u64,
}

impl FlowStats {
    /// Add another shard's counters.
    pub fn add(&mut self, other: &FlowStats) {
        let FlowStats {
            connections,
            retransmitted_segments,
            out_of_order_segments,
            gaps,
            gap_bytes,
            snaplen_truncated_segments,
            rst_before_handshake,
            fin_before_handshake,
            rst_out_of_window,
            fin_out_of_window,
            conflicting_fin,
            reorder_buffer_overflows,
            connections_split_by_new_syn,
            connections_split_by_silence,
            connections_evicted,
            late_segments_after_close,
            tunnelled_segments,
            duplicate_segments,
            nat_twin_connections,
        } = *other;
        self.connections += connections;
        self.retransmitted_segments += retransmitted_segments;
        self.out_of_order_segments += out_of_order_segments;
        self.gaps += gaps;
        self.gap_bytes += gap_bytes;
        self.snaplen_truncated_segments += snaplen_truncated_segments;
        self.rst_before_handshake += rst_before_handshake;
        self.fin_before_handshake += fin_before_handshake;
        self.rst_out_of_window += rst_out_of_window;
        self.fin_out_of_window += fin_out_of_window;
        self.conflicting_fin += conflicting_fin;
        self.reorder_buffer_overflows += reorder_buffer_overflows;
        self.connections_split_by_new_syn += connections_split_by_new_syn;
        self.connections_split_by_silence += connections_split_by_silence;
        self.connections_evicted += connections_evicted;
        self.late_segments_after_close += late_segments_after_close;
        self.tunnelled_segments += tunnelled_segments;
        self.duplicate_segments += duplicate_segments;
        self.nat_twin_connections += nat_twin_connections;
    }
}

/// Bytes of a tracked connection's box, with the later stages' state `T`.
#[cfg(test)]
pub fn tracked_size<T>() -> usize {
    table::tracked_size::<T>()
}

/// Bytes the table spends per connection besides its box (slot, index entry at the lowest
/// load).
#[cfg(test)]
pub fn table_bytes_per_connection() -> usize {
    table::bytes_per_connection()
}
