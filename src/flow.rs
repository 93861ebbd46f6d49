//! Flow stage: the connection table and each connection's TCP state per direction.
//!
//! A connection is a 4-tuple plus an epoch: a SYN with a new ISN, or a packet after long silence,
//! starts a new one. Each direction maps its sequence numbers onto 64-bit stream offsets
//! ([`SeqSpace`]), delivers its bytes in order exactly once (retransmissions and overlaps are
//! trimmed, out-of-order segments are buffered within bounds), reports bytes missing from the
//! capture as gaps, and records its first valid FIN and RST with their frame, time, seq and ack.
//! A FIN or RST before the handshake completed or outside the receiver's window is not a close:
//! it is counted as an anomaly. The output is a stream of [`FlowEvent`]s for the HTTP stage.

use crate::decode::Segment;
use crate::seq::{SeqNumber, SeqSpace};
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;

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

/// What a data segment carried besides its bytes: where it was, what it acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegMeta {
    pub at: FrameRef,
    /// Raw sequence number of the segment.
    pub seq: u32,
    /// Stream offset of the segment's sequence number.
    pub off: i64,
    /// Raw acknowledgement number, when the ACK flag was set.
    pub ack: Option<u32>,
    /// The acknowledgement as an offset in the other direction's stream.
    pub ack_off: Option<i64>,
}

/// A FIN or RST accepted as closing one direction: its segment's metadata, with `off` the
/// stream offset of the FIN (or of the RST's sequence number).
pub type CloseEvent = SegMeta;

/// What the flow stage tells the HTTP stage, in order, per direction.
#[derive(Debug, PartialEq, Eq)]
pub enum FlowEvent<'a> {
    /// In-order bytes of direction `dir` starting at stream offset `off`.
    Data {
        dir: usize,
        off: i64,
        bytes: &'a [u8],
        meta: SegMeta,
    },
    /// `len` bytes at `off` are missing from the capture (lost, or cut by the snaplen).
    Gap {
        dir: usize,
        off: i64,
        len: u64,
        meta: SegMeta,
    },
    /// A segment whose bytes had all been delivered already.
    Retransmit {
        dir: usize,
        off: i64,
        len: u64,
        meta: SegMeta,
    },
    /// Direction `dir` ended (its FIN was reached in order) at `off`; `meta` is the FIN's.
    Eof { dir: usize, off: i64, meta: SegMeta },
}

/// Counters of what the flow stage saw and did, summed over all connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
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
}

impl FlowStats {
    /// Add another part's counters (the shards of a parallel analysis).
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
    }
}

/// Bounds of the out-of-order buffer of one direction.
const OOO_MAX_SEGMENTS: usize = 64;
const OOO_MAX_BYTES: usize = 256 * 1024;

/// A segment held until the bytes before it arrive.
#[derive(Debug)]
struct Held {
    off: i64,
    data: Vec<u8>,
    wire_len: u32,
    meta: SegMeta,
}

/// One direction of a connection (the bytes one endpoint sent).
#[derive(Debug, Default)]
pub struct DirState {
    space: Option<SeqSpace>,
    /// Initial sequence number, when the SYN was seen.
    pub isn: Option<SeqNumber>,
    /// Next stream offset to deliver in order.
    next: i64,
    /// Highest stream offset sent (data end, including FIN) seen so far.
    max_end: i64,
    seen_segment: bool,
    /// First valid FIN.
    pub fin: Option<CloseEvent>,
    fin_delivered: bool,
    /// First valid RST.
    pub rst: Option<CloseEvent>,
    held: Vec<Held>,
    held_bytes: usize,
    window: u16,
    wscale: Option<u8>,
    /// Highest acknowledgement this direction sent, as an offset in the other direction.
    pub highest_ack: Option<i64>,
    /// Bytes delivered in order (including gap bytes).
    pub bytes: u64,
}

impl DirState {
    /// The stream offset of a raw sequence number of this direction, when known.
    pub fn offset_of(&self, seq: u32) -> Option<i64> {
        self.space.map(|s| s.offset(SeqNumber(seq)))
    }

    /// True when this direction was seen from its SYN (offsets are relative to the ISN).
    pub fn from_syn(&self) -> bool {
        self.isn.is_some()
    }

    fn init_space(&mut self, seq: SeqNumber, off: i64) {
        self.space = Some(SeqSpace::new(seq, off));
        self.next = off;
        self.max_end = off;
    }
}

/// Handshake progress, as seen in the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The capture started mid-connection: no SYN seen.
    Partial,
    /// SYN seen, no SYN-ACK yet.
    SynSent,
    /// SYN-ACK seen (with or without the SYN), the client's ACK of it not yet.
    SynReceived,
    /// The client acknowledged the SYN-ACK.
    Established,
}

/// What the later stages need to know about a connection while handling its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: u64,
    /// `addrs[d]` sent direction `d`.
    pub addrs: [SocketAddr; 2],
    /// Direction sent by the client, when known from the handshake.
    pub syn_client: Option<usize>,
    /// Per direction: its first byte is the connection's first (the SYN was seen).
    pub from_syn: [bool; 2],
}

/// TCP state of one connection (one epoch of a 4-tuple).
#[derive(Debug)]
pub struct TcpConn {
    pub id: u64,
    /// `addrs[d]` sent direction `d`; `addrs[0]` sent the first packet seen.
    pub addrs: [SocketAddr; 2],
    pub dirs: [DirState; 2],
    pub handshake: Handshake,
    /// Direction sent by the client, when known from the SYN.
    pub syn_client: Option<usize>,
    /// A SYN was answered by RST (connection refused).
    pub refused: bool,
    pub first: FrameRef,
    pub last_ts: Timestamp,
    pub packets: u64,
}

impl TcpConn {
    fn new(id: u64, src: SocketAddr, dst: SocketAddr, at: FrameRef) -> TcpConn {
        TcpConn {
            id,
            addrs: [src, dst],
            dirs: [DirState::default(), DirState::default()],
            handshake: Handshake::Partial,
            syn_client: None,
            refused: false,
            first: at,
            last_ts: at.ts,
            packets: 0,
        }
    }

    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            id: self.id,
            addrs: self.addrs,
            syn_client: self.syn_client,
            from_syn: [self.dirs[0].from_syn(), self.dirs[1].from_syn()],
        }
    }

    /// Direction index of a segment from `src`.
    pub fn dir_of(&self, src: SocketAddr) -> usize {
        usize::from(src != self.addrs[0])
    }

    /// Both directions closed (FIN or RST), or either reset.
    pub fn is_closed(&self) -> bool {
        let done = |d: &DirState| d.fin.is_some() || d.rst.is_some();
        self.refused
            || self.dirs[0].rst.is_some()
            || self.dirs[1].rst.is_some()
            || (done(&self.dirs[0]) && done(&self.dirs[1]))
    }

    /// Would this segment start a new connection on the same 4-tuple?
    fn is_new_epoch(&self, seg: &Segment<'_>) -> bool {
        if !seg.flags.syn() || seg.flags.rst() {
            return false;
        }
        let d = &self.dirs[self.dir_of(seg.src)];
        match d.isn {
            // a retransmitted SYN (or SYN-ACK) keeps the connection
            Some(isn) => isn != SeqNumber(seg.seq),
            // a SYN after data, FIN or RST was seen in that direction starts anew; a SYN-ACK
            // following a SYN we saw (handshake in progress) does not
            None => {
                d.seen_segment
                    && (d.bytes > 0 || d.fin.is_some() || d.rst.is_some() || self.is_closed())
            }
        }
    }

    /// Process one segment; emits events for the HTTP stage through `emit`.
    pub fn on_segment<F: FnMut(&ConnInfo, FlowEvent<'_>)>(
        &mut self,
        seg: &Segment<'_>,
        at: FrameRef,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let d = self.dir_of(seg.src);
        let o = 1 - d;
        self.packets += 1;
        self.last_ts = at.ts;
        let flags = seg.flags;
        let seq = SeqNumber(seg.seq);

        if flags.syn() && !flags.rst() {
            let dir = &mut self.dirs[d];
            if dir.isn.is_none() {
                dir.isn = Some(seq);
                dir.wscale = seg.wscale;
                dir.init_space(seq.wrapping_add(1), 0);
            }
            if flags.ack() {
                if self.handshake != Handshake::Established {
                    self.handshake = Handshake::SynReceived;
                }
                self.syn_client.get_or_insert(o);
            } else {
                if self.handshake == Handshake::Partial {
                    self.handshake = Handshake::SynSent;
                }
                self.syn_client.get_or_insert(d);
            }
        }
        if self.handshake == Handshake::SynReceived
            && self.syn_client == Some(d)
            && flags.ack()
            && !flags.syn()
        {
            self.handshake = Handshake::Established;
        }
        let info = self.info();
        let emit = &mut |ev: FlowEvent<'_>| emit(&info, ev);
        {
            let dir = &mut self.dirs[d];
            if dir.space.is_none() {
                dir.init_space(seq, 0);
            }
            dir.seen_segment = true;
            dir.window = seg.window;
        }
        // the acknowledgement, in the other direction's offsets
        let ack_off = if flags.ack() {
            let other = &mut self.dirs[o];
            if other.space.is_none() {
                other.init_space(SeqNumber(seg.ack), 0);
            }
            other.space.map(|s| s.offset(SeqNumber(seg.ack)))
        } else {
            None
        };
        let syn_len = i64::from(flags.syn() && !flags.rst());
        let off = {
            let dir = &mut self.dirs[d];
            dir.space.as_mut().map(|s| s.observe(seq)).unwrap_or(0) + syn_len
        };
        let meta = SegMeta {
            at,
            seq: seg.seq,
            off: off - syn_len,
            ack: flags.ack().then_some(seg.ack),
            ack_off,
        };

        if let Some(a) = ack_off {
            let dir = &mut self.dirs[d];
            if dir.highest_ack.is_none_or(|h| a > h) {
                dir.highest_ack = Some(a);
            }
            // the receiver acknowledged bytes the capture never showed: a gap in the other direction
            self.ack_reveals_gap(o, a, meta, stats, emit);
        }

        if flags.rst() {
            self.on_rst(d, seg, off, meta, stats);
            return;
        }

        let wire_len = seg.payload_len;
        if wire_len > 0 {
            if (seg.payload.len() as u32) < wire_len {
                stats.snaplen_truncated_segments += 1;
            }
            self.deliver(d, off, seg.payload, wire_len, meta, stats, emit);
        }
        let end = off + i64::from(wire_len);
        {
            let dir = &mut self.dirs[d];
            dir.max_end = dir.max_end.max(end + i64::from(flags.fin()));
        }
        if flags.fin() {
            self.on_fin(d, end, meta, stats);
        }
        self.try_eof(d, emit);
    }

    fn on_rst(
        &mut self,
        d: usize,
        seg: &Segment<'_>,
        off: i64,
        meta: SegMeta,
        stats: &mut FlowStats,
    ) {
        let o = 1 - d;
        if self.handshaking_server(d) {
            // the only valid RST from the server before the handshake completed refuses the
            // SYN: RST|ACK acknowledging exactly ISN+1 (RFC 9293 3.10.7.3)
            let refusal = self.handshake == Handshake::SynSent
                && seg.flags.ack()
                && self.dirs[o]
                    .isn
                    .is_some_and(|isn| isn.wrapping_add(1) == SeqNumber(seg.ack));
            if !refusal {
                stats.rst_before_handshake += 1;
                return;
            }
            self.refused = true;
        } else if !self.in_window(d, off) {
            stats.rst_out_of_window += 1;
            return;
        }
        let dir = &mut self.dirs[d];
        if dir.rst.is_none() {
            dir.rst = Some(CloseEvent { off, ..meta });
        }
    }

    fn on_fin(&mut self, d: usize, fin_off: i64, meta: SegMeta, stats: &mut FlowStats) {
        if self.handshaking_server(d) {
            stats.fin_before_handshake += 1;
            return;
        }
        if let Some(prev) = self.dirs[d].fin {
            if prev.off != fin_off {
                stats.conflicting_fin += 1;
            }
            return;
        }
        if !self.in_window(d, fin_off) {
            stats.fin_out_of_window += 1;
            return;
        }
        self.dirs[d].fin = Some(CloseEvent {
            off: fin_off,
            ..meta
        });
    }

    /// Is direction `d` the server's while the handshake is not complete? A FIN or RST from it
    /// then is not a close (forged-RST evasion, data before the handshake).
    fn handshaking_server(&self, d: usize) -> bool {
        matches!(self.handshake, Handshake::SynSent | Handshake::SynReceived)
            && self.syn_client == Some(1 - d)
    }

    /// Is stream offset `off` of direction `d` acceptable to the receiver (RFC 9293 3.10.7.4)?
    /// Lenient where the capture does not tell (no window seen, scale unknown).
    fn in_window(&self, d: usize, off: i64) -> bool {
        let o = 1 - d;
        let recv = &self.dirs[o];
        let Some(rcv_nxt) = recv.highest_ack else {
            return true;
        };
        if !recv.seen_segment {
            return true;
        }
        // the window scale applies only when both SYNs carried the option
        let shift = match (self.dirs[d].isn, recv.isn) {
            (Some(_), Some(_)) => match (self.dirs[d].wscale, recv.wscale) {
                (Some(_), Some(s)) => u32::from(s.min(14)),
                _ => 0,
            },
            _ => 14,
        };
        let wnd = (i64::from(recv.window) << shift).max(65_535);
        let sent = &self.dirs[d];
        let lo = rcv_nxt.min(sent.next) - 1;
        let hi = rcv_nxt.max(sent.max_end) + wnd;
        (lo..=hi).contains(&off)
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: usize,
        off: i64,
        captured: &[u8],
        wire_len: u32,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let end = off + i64::from(wire_len);
        let dir = &mut self.dirs[d];
        if end <= dir.next {
            stats.retransmitted_segments += 1;
            emit(FlowEvent::Retransmit {
                dir: d,
                off,
                len: u64::from(wire_len),
                meta,
            });
            return;
        }
        if off > dir.next {
            stats.out_of_order_segments += 1;
            if dir.held.len() >= OOO_MAX_SEGMENTS || dir.held_bytes + captured.len() > OOO_MAX_BYTES
            {
                // no room: give up waiting for the missing bytes before the earliest held segment
                stats.reorder_buffer_overflows += 1;
                let first = dir.held.iter().map(|h| h.off).min().unwrap_or(off).min(off);
                self.skip_to(d, first, meta, stats, emit);
                self.deliver(d, off, captured, wire_len, meta, stats, emit);
                return;
            }
            let pos = dir.held.partition_point(|h| h.off <= off);
            dir.held_bytes += captured.len();
            dir.held.insert(
                pos,
                Held {
                    off,
                    data: captured.to_vec(),
                    wire_len,
                    meta,
                },
            );
            return;
        }
        if off < dir.next {
            stats.retransmitted_segments += 1;
        }
        Self::emit_span(dir, d, off, captured, wire_len, meta, stats, emit);
        self.drain_held(d, stats, emit);
    }

    /// Deliver the part of a segment at or after `next` (the segment starts at or before it).
    #[allow(clippy::too_many_arguments)]
    fn emit_span<F: FnMut(FlowEvent<'_>)>(
        dir: &mut DirState,
        d: usize,
        off: i64,
        captured: &[u8],
        wire_len: u32,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let end = off + i64::from(wire_len);
        let cap_end = off + captured.len() as i64;
        if cap_end > dir.next {
            let skip = (dir.next - off) as usize;
            emit(FlowEvent::Data {
                dir: d,
                off: dir.next,
                bytes: &captured[skip..],
                meta,
            });
            dir.bytes += (cap_end - dir.next) as u64;
            dir.next = cap_end;
        }
        if end > dir.next {
            // the snaplen cut the rest: known by length only
            let len = (end - dir.next) as u64;
            emit(FlowEvent::Gap {
                dir: d,
                off: dir.next,
                len,
                meta,
            });
            stats.gap_bytes += len;
            dir.bytes += len;
            dir.next = end;
        }
    }

    fn drain_held<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: usize,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let dir = &mut self.dirs[d];
        while dir.held.first().is_some_and(|h| h.off <= dir.next) {
            let h = dir.held.remove(0);
            dir.held_bytes -= h.data.len();
            if h.off + i64::from(h.wire_len) > dir.next {
                Self::emit_span(dir, d, h.off, &h.data, h.wire_len, h.meta, stats, emit);
            }
        }
    }

    /// Declare the bytes before `to` missing, then deliver what is held from there on.
    fn skip_to<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: usize,
        to: i64,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let dir = &mut self.dirs[d];
        if to > dir.next {
            let len = (to - dir.next) as u64;
            emit(FlowEvent::Gap {
                dir: d,
                off: dir.next,
                len,
                meta,
            });
            stats.gaps += 1;
            stats.gap_bytes += len;
            dir.bytes += len;
            dir.next = to;
        }
        self.drain_held(d, stats, emit);
    }

    /// The other side acknowledged up to `ack_off` in direction `d`: bytes before that which
    /// the capture lacks will never come.
    fn ack_reveals_gap<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: usize,
        ack_off: i64,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let dir = &self.dirs[d];
        // a FIN occupies one sequence number but no byte
        let data_end = match dir.fin {
            Some(f) => ack_off.min(f.off),
            None => ack_off,
        };
        if data_end <= dir.next || !dir.seen_segment {
            return;
        }
        while let Some(first) = self.dirs[d].held.first().map(|h| h.off) {
            if first >= data_end {
                break;
            }
            self.skip_to(d, first, meta, stats, emit);
        }
        self.skip_to(d, data_end, meta, stats, emit);
        self.try_eof(d, emit);
    }

    fn try_eof<F: FnMut(FlowEvent<'_>)>(&mut self, d: usize, emit: &mut F) {
        let dir = &mut self.dirs[d];
        if let Some(f) = dir.fin
            && !dir.fin_delivered
            && dir.next >= f.off
        {
            dir.fin_delivered = true;
            emit(FlowEvent::Eof {
                dir: d,
                off: f.off,
                meta: f,
            });
        }
    }

    /// End of the connection: deliver what is held (with gaps) and the FINs.
    pub fn flush<F: FnMut(&ConnInfo, FlowEvent<'_>)>(
        &mut self,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let meta = SegMeta::default();
        let info = self.info();
        let emit = &mut |ev: FlowEvent<'_>| emit(&info, ev);
        for d in 0..2 {
            while let Some(first) = self.dirs[d].held.first().map(|h| h.off) {
                self.skip_to(d, first, meta, stats, emit);
            }
            if let Some(f) = self.dirs[d].fin {
                self.skip_to(d, f.off, meta, stats, emit);
                self.try_eof(d, emit);
            }
        }
    }
}

/// Lookup key of a 4-tuple, the same for both directions: each endpoint packed into an
/// integer (cheap to hash and compare on the hot path), the smaller one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TupleKey {
    V4(u64, u64),
    V6((u128, u16), (u128, u16)),
}

impl TupleKey {
    fn of(a: SocketAddr, b: SocketAddr) -> TupleKey {
        fn order<K: Ord>(x: K, y: K) -> (K, K) {
            if x <= y { (x, y) } else { (y, x) }
        }
        match (a, b) {
            (SocketAddr::V4(x), SocketAddr::V4(y)) => {
                let pack = |s: std::net::SocketAddrV4| {
                    (u64::from(u32::from(*s.ip())) << 16) | u64::from(s.port())
                };
                let (p, q) = order(pack(x), pack(y));
                TupleKey::V4(p, q)
            }
            _ => {
                let pack = |s: SocketAddr| {
                    let ip = match s.ip() {
                        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        std::net::IpAddr::V6(v6) => v6,
                    };
                    (u128::from(ip), s.port())
                };
                let (p, q) = order(pack(a), pack(b));
                TupleKey::V6(p, q)
            }
        }
    }
}

/// A tracked connection: its TCP state and the later stages' state `T`.
#[derive(Debug)]
pub struct Tracked<T> {
    pub tcp: TcpConn,
    pub user: T,
    closing_since: Option<Timestamp>,
}

/// Timeouts of the connection table, in seconds of capture time.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    /// A connection silent this long is finished; a later packet starts a new one.
    pub idle_timeout: f64,
    /// How long a closed connection stays to collect late segments (the RST that followed).
    pub close_linger: f64,
    /// At most this many connections tracked at once; the least recently active is finished.
    pub max_connections: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            idle_timeout: 600.0,
            close_linger: 2.0,
            max_connections: 1_000_000,
        }
    }
}

/// Why a connection was finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Closed (FIN both ways or RST) and the linger time passed.
    Closed,
    /// A new SYN or a long silence started a new connection on the same 4-tuple.
    Superseded,
    /// No packet for the idle timeout.
    Idle,
    /// Evicted by the cap on tracked connections.
    Evicted,
    /// The input ended.
    EndOfInput,
}

/// Receives what the connection table produces: events of live connections and finished
/// connections (whose remaining held bytes it should flush with [`TcpConn::flush`]).
pub trait FlowHandler<T> {
    fn on_event(&mut self, info: &ConnInfo, user: &mut T, ev: FlowEvent<'_>);
    fn on_end(&mut self, t: Box<Tracked<T>>, why: EndReason, stats: &mut FlowStats);
}

/// The connection table: 4-tuple -> current connection.
pub struct FlowTable<T> {
    cfg: TableConfig,
    conns: FxHashMap<TupleKey, Box<Tracked<T>>>,
    /// Connections that closed, in order of closing (linger deadlines are in the same order).
    closing: VecDeque<(Timestamp, TupleKey, u64)>,
    last_sweep: Timestamp,
    pub stats: FlowStats,
}

impl<T: Default> FlowTable<T> {
    pub fn new(cfg: TableConfig) -> FlowTable<T> {
        FlowTable {
            cfg,
            conns: FxHashMap::default(),
            closing: VecDeque::new(),
            last_sweep: Timestamp::default(),
            stats: FlowStats::default(),
        }
    }

    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Process a segment: finds (or starts) its connection, updates its TCP state and passes
    /// the events with the connection's state `T` to the handler. A connection this finishes
    /// (a superseded epoch) is handed to `on_end` first.
    pub fn process<H: FlowHandler<T>>(&mut self, seg: &Segment<'_>, at: FrameRef, h: &mut H) {
        let key = TupleKey::of(seg.src, seg.dst);
        // one lookup on the hot path: the packet belongs to a known connection
        let tracked = match self.conns.get_mut(&key) {
            Some(t)
                if at.ts.secs_since(t.tcp.last_ts) <= self.cfg.idle_timeout
                    && !t.tcp.is_new_epoch(seg) =>
            {
                t
            }
            found => {
                if let Some(t) = found {
                    if t.tcp.is_new_epoch(seg) {
                        self.stats.connections_split_by_new_syn += 1;
                    } else {
                        self.stats.connections_split_by_silence += 1;
                    }
                    let old = self.conns.remove(&key).expect("present");
                    h.on_end(old, EndReason::Superseded, &mut self.stats);
                } else if self.conns.len() >= self.cfg.max_connections {
                    self.evict_oldest(h);
                }
                self.stats.connections += 1;
                // the id is the ordinal of the connection's first packet: unique (a packet
                // starts at most one connection) and the same however the input is split
                let t = Box::new(Tracked {
                    tcp: TcpConn::new(at.ordinal, seg.src, seg.dst, at),
                    user: T::default(),
                    closing_since: None,
                });
                self.conns.entry(key).insert_entry(t).into_mut()
            }
        };
        if tracked.closing_since.is_some() && !seg.flags.rst() && seg.payload_len > 0 {
            self.stats.late_segments_after_close += 1;
        }
        let Tracked { tcp, user, .. } = &mut **tracked;
        tcp.on_segment(seg, at, &mut self.stats, &mut |info, ev| {
            h.on_event(info, user, ev)
        });
        if tracked.closing_since.is_none() && tracked.tcp.is_closed() {
            tracked.closing_since = Some(at.ts);
            self.closing.push_back((at.ts, key, tracked.tcp.id));
        }
    }

    /// Finish connections whose linger or idle time has passed at capture time `now`.
    pub fn expire<H: FlowHandler<T>>(&mut self, now: Timestamp, h: &mut H) {
        while let Some(&(since, key, id)) = self.closing.front() {
            if now.secs_since(since) < self.cfg.close_linger {
                break;
            }
            self.closing.pop_front();
            if self.conns.get(&key).is_some_and(|t| t.tcp.id == id) {
                let t = self.conns.remove(&key).expect("present");
                h.on_end(t, EndReason::Closed, &mut self.stats);
            }
        }
        // idle connections: a full sweep at most once per tenth of the idle timeout
        if now.secs_since(self.last_sweep) >= self.cfg.idle_timeout / 10.0 {
            self.last_sweep = now;
            let idle = self.cfg.idle_timeout;
            let mut stale: Vec<(u64, TupleKey)> = self
                .conns
                .iter()
                .filter(|(_, t)| now.secs_since(t.tcp.last_ts) > idle)
                .map(|(k, t)| (t.tcp.id, *k))
                .collect();
            stale.sort_unstable_by_key(|&(id, _)| id);
            for (_, key) in stale {
                let t = self.conns.remove(&key).expect("present");
                h.on_end(t, EndReason::Idle, &mut self.stats);
            }
        }
    }

    /// Finish every connection (end of input), oldest first.
    pub fn drain<H: FlowHandler<T>>(&mut self, h: &mut H) {
        let mut all: Vec<Box<Tracked<T>>> = self.conns.drain().map(|(_, t)| t).collect();
        all.sort_unstable_by_key(|t| t.tcp.id);
        self.closing.clear();
        for t in all {
            h.on_end(t, EndReason::EndOfInput, &mut self.stats);
        }
    }

    fn evict_oldest<H: FlowHandler<T>>(&mut self, h: &mut H) {
        let oldest = self
            .conns
            .iter()
            .min_by_key(|(_, t)| (t.tcp.last_ts, t.tcp.id))
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.stats.connections_evicted += 1;
            let t = self.conns.remove(&key).expect("present");
            h.on_end(t, EndReason::Evicted, &mut self.stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    const C: &str = "10.0.0.1:40000";
    const S: &str = "10.0.0.2:80";

    fn seg<'a>(src: &str, dst: &str, seq: u32, ack: u32, flags: u8, data: &'a [u8]) -> Segment<'a> {
        Segment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 65535,
            wscale: None,
            payload: data,
            payload_len: data.len() as u32,
        }
    }

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN | TcpFlags::ACK;
    const RST: u8 = TcpFlags::RST;
    const PSH: u8 = TcpFlags::PSH | TcpFlags::ACK;

    /// Collects events as owned values.
    #[derive(Default)]
    struct Sink {
        data: Vec<(usize, i64, Vec<u8>)>,
        gaps: Vec<(usize, i64, u64)>,
        retrans: usize,
        eofs: Vec<(usize, i64)>,
    }

    impl Sink {
        fn push(&mut self, ev: FlowEvent<'_>) {
            match ev {
                FlowEvent::Data {
                    dir, off, bytes, ..
                } => self.data.push((dir, off, bytes.to_vec())),
                FlowEvent::Gap { dir, off, len, .. } => self.gaps.push((dir, off, len)),
                FlowEvent::Retransmit { .. } => self.retrans += 1,
                FlowEvent::Eof { dir, off, .. } => self.eofs.push((dir, off)),
            }
        }
        fn bytes(&self, dir: usize) -> Vec<u8> {
            self.data
                .iter()
                .filter(|d| d.0 == dir)
                .flat_map(|d| d.2.clone())
                .collect()
        }
    }

    struct Conn {
        tcp: TcpConn,
        stats: FlowStats,
        sink: Sink,
        n: u64,
    }

    impl Conn {
        fn new() -> Conn {
            Conn {
                tcp: TcpConn::new(
                    1,
                    C.parse().unwrap(),
                    S.parse().unwrap(),
                    FrameRef::default(),
                ),
                stats: FlowStats::default(),
                sink: Sink::default(),
                n: 0,
            }
        }
        fn feed(&mut self, s: Segment<'_>) {
            self.n += 1;
            let at = FrameRef {
                input: 0,
                frame: self.n,
                ordinal: self.n,
                ts: Timestamp::from_secs_nanos(self.n as i64, 0),
            };
            let sink = &mut self.sink;
            self.tcp
                .on_segment(&s, at, &mut self.stats, &mut |_, ev| sink.push(ev));
        }
        fn handshake(&mut self, cisn: u32, sisn: u32) {
            self.feed(seg(C, S, cisn, 0, SYN, b""));
            self.feed(seg(S, C, sisn, cisn.wrapping_add(1), SYN | ACK, b""));
            self.feed(seg(
                C,
                S,
                cisn.wrapping_add(1),
                sisn.wrapping_add(1),
                ACK,
                b"",
            ));
        }
    }

    #[test]
    fn in_order_data_retransmission_and_overlap() {
        let mut c = Conn::new();
        c.handshake(1000, 5000);
        c.feed(seg(C, S, 1001, 5001, PSH, b"hello "));
        c.feed(seg(C, S, 1001, 5001, PSH, b"hello ")); // full retransmission
        c.feed(seg(C, S, 1004, 5001, PSH, b"lo world")); // overlap
        assert_eq!(c.sink.bytes(0), b"hello world");
        assert_eq!(c.sink.retrans, 1);
        assert_eq!(c.sink.data.last().unwrap().1, 6);
        assert_eq!(c.tcp.handshake, Handshake::Established);
        assert_eq!(c.tcp.syn_client, Some(0));
    }

    #[test]
    fn out_of_order_segments_are_held_and_delivered_in_order() {
        let mut c = Conn::new();
        c.handshake(1, 1);
        c.feed(seg(C, S, 7, 2, PSH, b"world"));
        assert!(c.sink.data.is_empty());
        c.feed(seg(C, S, 2, 2, PSH, b"hello"));
        assert_eq!(c.sink.bytes(0), b"helloworld");
        assert_eq!(c.stats.out_of_order_segments, 1);
    }

    #[test]
    fn ack_beyond_captured_bytes_is_a_gap() {
        let mut c = Conn::new();
        c.handshake(100, 200);
        c.feed(seg(C, S, 101, 201, PSH, b"abc"));
        // 10 bytes sent but not captured, then the server acknowledges them
        c.feed(seg(C, S, 114, 201, PSH, b"xyz"));
        c.feed(seg(S, C, 201, 117, ACK, b""));
        assert_eq!(c.sink.gaps, vec![(0, 3, 10)]);
        assert_eq!(c.sink.bytes(0), b"abcxyz");
    }

    #[test]
    fn snaplen_cut_payload_is_delivered_then_a_gap() {
        let mut c = Conn::new();
        c.handshake(100, 200);
        let mut s = seg(C, S, 101, 201, PSH, b"GET ");
        s.payload_len = 100;
        c.feed(s);
        assert_eq!(c.sink.data, vec![(0, 0, b"GET ".to_vec())]);
        assert_eq!(c.sink.gaps, vec![(0, 4, 96)]);
        assert_eq!(c.stats.snaplen_truncated_segments, 1);
    }

    #[test]
    fn sequence_numbers_wrap_across_2_pow_32() {
        let mut c = Conn::new();
        let isn = u32::MAX - 3;
        c.handshake(isn, 7);
        c.feed(seg(C, S, isn.wrapping_add(1), 8, PSH, b"0123456789"));
        c.feed(seg(C, S, isn.wrapping_add(11), 8, FIN, b"ab"));
        assert_eq!(c.sink.bytes(0), b"0123456789ab");
        assert_eq!(c.sink.eofs, vec![(0, 12)]);
        let fin = c.tcp.dirs[0].fin.unwrap();
        assert_eq!(fin.off, 12);
        assert_eq!(fin.seq, 7); // wrapped
    }

    #[test]
    fn fin_and_rst_are_recorded_with_offsets() {
        let mut c = Conn::new();
        c.handshake(0, 0);
        c.feed(seg(C, S, 1, 1, PSH, b"GET / HTTP/1.1\r\n\r\n"));
        c.feed(seg(S, C, 1, 1, FIN, b""));
        let fin = c.tcp.dirs[1].fin.unwrap();
        assert_eq!((fin.off, fin.ack_off), (0, Some(0)));
        c.feed(seg(S, C, 2, 0, RST, b""));
        let rst = c.tcp.dirs[1].rst.unwrap();
        assert_eq!((rst.off, rst.ack), (1, None));
        assert!(c.tcp.is_closed());
        assert_eq!(c.sink.eofs, vec![(1, 0)]);
    }

    #[test]
    fn rst_or_fin_before_the_handshake_is_not_a_close() {
        let mut c = Conn::new();
        c.feed(seg(C, S, 1000, 0, SYN, b""));
        c.feed(seg(S, C, 777, 0, RST, b""));
        c.feed(seg(S, C, 778, 0, TcpFlags::FIN, b""));
        assert!(c.tcp.dirs[1].rst.is_none() && c.tcp.dirs[1].fin.is_none());
        assert_eq!(c.stats.rst_before_handshake, 1);
        assert_eq!(c.stats.fin_before_handshake, 1);
        c.feed(seg(S, C, 5000, 1001, SYN | ACK, b""));
        assert_eq!(c.tcp.handshake, Handshake::SynReceived);
        // data and FIN before the client acknowledged the SYN-ACK: still not a close
        c.feed(seg(S, C, 5001, 1001, FIN, b"early"));
        assert!(c.tcp.dirs[1].fin.is_none());
        c.feed(seg(C, S, 1001, 5001, ACK, b""));
        assert_eq!(c.tcp.handshake, Handshake::Established);
        assert!(!c.tcp.is_closed());
    }

    #[test]
    fn refused_syn_is_a_valid_rst() {
        let mut c = Conn::new();
        c.feed(seg(C, S, 1000, 0, SYN, b""));
        c.feed(seg(S, C, 0, 1001, RST | ACK, b""));
        assert!(c.tcp.refused);
        assert!(c.tcp.is_closed());
    }

    #[test]
    fn rst_far_outside_the_window_is_ignored() {
        let mut c = Conn::new();
        c.handshake(0, 0);
        c.feed(seg(C, S, 1, 1, PSH, b"x"));
        c.feed(seg(S, C, 1 << 30, 0, RST, b""));
        assert!(c.tcp.dirs[1].rst.is_none());
        assert_eq!(c.stats.rst_out_of_window, 1);
    }

    #[test]
    fn syn_with_data_fin_with_data_and_rst_with_data() {
        let mut c = Conn::new();
        c.feed(seg(C, S, 10, 0, SYN, b"GET / HTTP/1.1\r\n\r\n"));
        c.feed(seg(S, C, 50, 29, SYN | ACK, b""));
        assert_eq!(
            c.sink.data,
            vec![(0, 0, b"GET / HTTP/1.1\r\n\r\n".to_vec())]
        );
        c.feed(seg(C, S, 29, 51, ACK, b""));
        // the response and the FIN in one segment
        c.feed(seg(
            S,
            C,
            51,
            29,
            FIN | TcpFlags::PSH,
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ));
        let fin = c.tcp.dirs[1].fin.unwrap();
        assert_eq!(fin.off, 27);
        assert_eq!(c.sink.eofs, vec![(1, 27)]);
        // a repeated FIN is not a second close
        c.feed(seg(
            S,
            C,
            51,
            29,
            FIN | TcpFlags::PSH,
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ));
        assert_eq!(c.tcp.dirs[1].fin.unwrap().at.frame, 4);
        assert_eq!(c.stats.conflicting_fin, 0);
        // an RST's payload is diagnostic text, never stream data
        c.feed(seg(C, S, 29, 79, RST | ACK, b"reset reason"));
        assert!(c.tcp.dirs[0].rst.is_some());
        assert_eq!(c.sink.bytes(0), b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn mid_stream_pickup_maps_acks_into_the_other_direction() {
        let mut c = Conn::new();
        c.feed(seg(C, S, 5000, 9000, PSH, b"GET /a HTTP/1.1\r\n\r\n"));
        c.feed(seg(S, C, 9000, 5019, PSH, b"HTTP/1.1 200 OK\r\n\r\n"));
        assert_eq!(c.tcp.handshake, Handshake::Partial);
        assert!(!c.tcp.dirs[0].from_syn());
        assert_eq!(c.sink.bytes(1), b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(c.tcp.dirs[1].highest_ack, Some(19));
    }

    #[derive(Default)]
    struct Ends(Vec<(u64, EndReason)>);

    impl FlowHandler<()> for Ends {
        fn on_event(&mut self, _: &ConnInfo, _: &mut (), _: FlowEvent<'_>) {}
        fn on_end(&mut self, t: Box<Tracked<()>>, why: EndReason, _: &mut FlowStats) {
            self.0.push((t.tcp.id, why));
        }
    }

    fn at(n: u64, secs: f64) -> FrameRef {
        FrameRef {
            input: 0,
            frame: n,
            ordinal: n,
            ts: Timestamp::from_secs_f64(secs),
        }
    }

    #[test]
    fn new_syn_on_a_closed_tuple_starts_a_new_connection() {
        let mut t: FlowTable<()> = FlowTable::new(TableConfig::default());
        let mut ends = Ends::default();
        t.process(&seg(C, S, 100, 0, SYN, b""), at(1, 0.0), &mut ends);
        t.process(&seg(S, C, 500, 101, SYN | ACK, b""), at(2, 0.0), &mut ends);
        t.process(&seg(C, S, 101, 501, FIN, b""), at(3, 0.1), &mut ends);
        t.process(&seg(S, C, 501, 102, FIN, b""), at(4, 0.1), &mut ends);
        // same 4-tuple, new ISN, 0.5 s later (before the linger expired)
        t.process(&seg(C, S, 90_000, 0, SYN, b""), at(5, 0.6), &mut ends);
        assert_eq!(ends.0, vec![(1, EndReason::Superseded)]);
        assert_eq!(t.stats.connections, 2);
        // a retransmitted SYN does not
        t.process(&seg(C, S, 90_000, 0, SYN, b""), at(6, 0.7), &mut ends);
        assert_eq!(t.stats.connections, 2);
        t.drain(&mut ends);
        assert_eq!(ends.0.last(), Some(&(5, EndReason::EndOfInput)));
    }

    #[test]
    fn closed_connections_linger_then_expire_and_silence_splits() {
        let cfg = TableConfig {
            idle_timeout: 100.0,
            close_linger: 2.0,
            max_connections: 10,
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        let mut ends = Ends::default();
        t.process(&seg(C, S, 1, 1, PSH, b"x"), at(1, 0.0), &mut ends);
        t.process(&seg(S, C, 1, 2, RST, b""), at(2, 1.0), &mut ends);
        t.expire(Timestamp::from_secs_f64(2.0), &mut ends);
        assert!(ends.0.is_empty());
        t.expire(Timestamp::from_secs_f64(3.5), &mut ends);
        assert_eq!(ends.0, vec![(1, EndReason::Closed)]);
        // silence longer than the idle timeout on an open connection
        t.process(&seg(C, S, 10, 1, PSH, b"y"), at(3, 10.0), &mut ends);
        t.process(&seg(C, S, 11, 1, PSH, b"z"), at(4, 200.0), &mut ends);
        assert_eq!(ends.0.last(), Some(&(3, EndReason::Superseded)));
        assert_eq!(t.stats.connections_split_by_silence, 1);
    }

    #[test]
    fn the_cap_on_connections_evicts_the_least_recently_active() {
        let cfg = TableConfig {
            max_connections: 2,
            ..TableConfig::default()
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        let mut ends = Ends::default();
        t.process(
            &seg("10.0.0.1:1", S, 1, 1, PSH, b"a"),
            at(1, 0.0),
            &mut ends,
        );
        t.process(
            &seg("10.0.0.1:2", S, 1, 1, PSH, b"a"),
            at(2, 1.0),
            &mut ends,
        );
        t.process(
            &seg("10.0.0.1:3", S, 1, 1, PSH, b"a"),
            at(3, 2.0),
            &mut ends,
        );
        assert_eq!(ends.0, vec![(1, EndReason::Evicted)]);
        assert_eq!(t.open_connections(), 2);
    }
}
