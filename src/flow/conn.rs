//! The TCP state of one connection: the handshake as the capture showed it, each direction's
//! endpoint, and which FINs and RSTs count as closes.

use super::copies::Sighting;
use super::endpoint::Endpoint;
use super::reassembly::Span;
use super::{
    CloseEvent, Closes, ConnEnd, ConnMeta, Dir, EndReason, FlowEvent, FlowStats, FrameRef,
    HandshakeTimes, PerDir, SegMeta, SeqNumber, Twin,
};
use crate::decode::{Segment, Tunnel};
use crate::time::Timestamp;
use std::net::SocketAddr;

/// A virtual network as a number: 0 for none, else its VNI + 1 (how connections, table keys
/// and copies' views keep it).
pub(super) fn vnet_code(vnet: Option<u32>) -> u32 {
    vnet.map_or(0, |v| v.wrapping_add(1))
}

/// Handshake progress, as seen in the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Handshake {
    /// The capture started mid-connection: no SYN seen.
    Partial,
    /// SYN seen, no SYN-ACK yet.
    SynSent,
    /// SYN-ACK seen (with or without the SYN), the client's ACK of it not yet.
    SynReceived,
    /// The client acknowledged the SYN-ACK.
    Established,
}

/// The addresses of a connection, compactly: IPv4 in line, IPv6 out of line.
#[derive(Clone, Debug)]
pub(super) enum Pair {
    V4 { ip: [u32; 2], port: [u16; 2] },
    V6(Box<PerDir<SocketAddr>>),
}

impl Pair {
    fn new(src: SocketAddr, dst: SocketAddr) -> Pair {
        match (src, dst) {
            (SocketAddr::V4(a), SocketAddr::V4(b)) => Pair::V4 {
                ip: [u32::from(*a.ip()), u32::from(*b.ip())],
                port: [a.port(), b.port()],
            },
            _ => Pair::V6(Box::new(PerDir::new(src, dst))),
        }
    }

    /// `addrs[d]` sent direction `d`.
    pub fn get(&self) -> PerDir<SocketAddr> {
        match self {
            Pair::V4 { ip, port } => {
                let addr = |i: usize| SocketAddr::from((std::net::Ipv4Addr::from(ip[i]), port[i]));
                PerDir::new(addr(0), addr(1))
            }
            Pair::V6(p) => **p,
        }
    }

    /// Did `src` send direction Fwd?
    fn is_fwd(&self, src: SocketAddr) -> bool {
        match (self, src) {
            (Pair::V4 { ip, port }, SocketAddr::V4(s)) => {
                u32::from(*s.ip()) == ip[0] && s.port() == port[0]
            }
            (Pair::V6(p), s) => s == p[Dir::Fwd],
            _ => false,
        }
    }
}

/// Capture times of the handshake, compactly (`NO_TIME`: not seen).
#[derive(Clone, Copy, Debug)]
pub(super) struct Times([i64; 3]);

const NO_TIME: i64 = i64::MIN;

impl Times {
    fn get(self) -> HandshakeTimes {
        let t = |v: i64| (v != NO_TIME).then_some(Timestamp::from_nanos(v));
        HandshakeTimes {
            syn: t(self.0[0]),
            syn_ack: t(self.0[1]),
            ack: t(self.0[2]),
        }
    }
}

/// TCP state of one connection (one epoch of a 4-tuple).
#[derive(Debug)]
pub(super) struct TcpConn {
    pub id: u64,
    /// `addrs[d]` sent direction `d`; `addrs[Fwd]` sent the first packet seen.
    pub addrs: Pair,
    pub dirs: PerDir<Endpoint>,
    pub handshake: Handshake,
    /// Direction sent by the client, when known from the SYN.
    pub syn_client: Option<Dir>,
    /// A SYN was answered by RST (connection refused).
    pub refused: bool,
    /// Closed, waiting in the table for its linger time.
    pub closing: bool,
    /// When the capture saw the handshake's segments (SYN, SYN-ACK, ACK).
    times: Times,
    pub last_ts: Timestamp,
    /// Emit a [`FlowEvent::Segment`] for every segment.
    pub trace: bool,
    /// The virtual network (VXLAN, Geneve) the connection is in: 0 none, else its VNI + 1.
    vnet: u32,
    /// The tunnel of the first encapsulated segment, and its direction (out of line: most
    /// connections have none).
    pub tunnel: Option<Box<(Dir, Tunnel)>>,
    /// The other address pair, when the connection was captured on both sides of a NAT.
    pub twin: Option<Box<Twin>>,
}

impl TcpConn {
    pub fn new(
        id: u64,
        src: SocketAddr,
        dst: SocketAddr,
        vnet: Option<u32>,
        at: FrameRef,
    ) -> TcpConn {
        TcpConn {
            id,
            addrs: Pair::new(src, dst),
            dirs: PerDir::default(),
            handshake: Handshake::Partial,
            syn_client: None,
            refused: false,
            closing: false,
            times: Times([NO_TIME; 3]),
            last_ts: at.ts,
            trace: false,
            vnet: vnet_code(vnet),
            tunnel: None,
            twin: None,
        }
    }

    /// The virtual network the connection is in (its segments' `vnet`).
    pub fn vnet(&self) -> Option<u32> {
        self.vnet.checked_sub(1)
    }

    /// [`TcpConn::vnet`] as [`vnet_code`] writes it.
    pub(super) fn vnet_code(&self) -> u32 {
        self.vnet
    }

    /// Record where a segment of the connection (a duplicate too) was captured: in a tunnel,
    /// under the other address pair of a NAT.
    pub fn note_view(&mut self, seg: &Segment<'_>, sighting: &Sighting<'_>, stats: &mut FlowStats) {
        if let (None, Some(t)) = (&self.tunnel, seg.tunnel) {
            self.tunnel = Some(Box::new((self.dir_of(seg.src), t)));
        }
        let Some(m) = sighting.moved else {
            return;
        };
        if self.twin.is_some() || (m.from.src == m.to.src && m.from.dst == m.to.dst) {
            return;
        }
        let d = self.dir_of(m.to.src);
        let mut addrs = PerDir::new(m.from.src, m.from.dst);
        if d == Dir::Rev {
            addrs = PerDir::new(m.from.dst, m.from.src);
        }
        self.twin = Some(Box::new(Twin {
            addrs,
            near: self.dir_of(m.first_sender),
        }));
        stats.nat_twin_connections += 1;
    }

    pub fn meta(&self) -> ConnMeta {
        ConnMeta {
            id: self.id,
            addrs: self.addrs.get(),
            syn_client: self.syn_client,
            from_syn: PerDir::new(
                self.dirs[Dir::Fwd].seen_from_syn(),
                self.dirs[Dir::Rev].seen_from_syn(),
            ),
            handshake: self.times.get(),
        }
    }

    /// What the later stages get when the connection is finished.
    pub fn end(&self, why: EndReason) -> ConnEnd {
        let [fwd, rev] = &self.dirs.0;
        ConnEnd {
            conn: self.meta(),
            closes: Closes {
                fin: PerDir::new(fwd.fin(), rev.fin()),
                rst: PerDir::new(fwd.rst(), rev.rst()),
            },
            stream_end: PerDir::new(fwd.stream_end(), rev.stream_end()),
            tunnel: self.tunnel.as_deref().copied(),
            twin: self.twin.as_deref().copied(),
            why,
        }
    }

    /// Direction of a segment from `src`.
    pub fn dir_of(&self, src: SocketAddr) -> Dir {
        if self.addrs.is_fwd(src) {
            Dir::Fwd
        } else {
            Dir::Rev
        }
    }

    /// Both directions closed (FIN or RST), or either reset.
    pub fn is_closed(&self) -> bool {
        let [fwd, rev] = &self.dirs.0;
        self.refused || fwd.rst().is_some() || rev.rst().is_some() || (fwd.closed() && rev.closed())
    }

    /// Would this segment start a new connection on the same 4-tuple?
    pub fn is_new_epoch(&self, seg: &Segment<'_>) -> bool {
        if !seg.flags.syn() || seg.flags.rst() {
            return false;
        }
        let d = &self.dirs[self.dir_of(seg.src)];
        match d.isn {
            // a retransmitted SYN (or SYN-ACK) keeps the connection
            Some(isn) => isn != SeqNumber(seg.seq),
            // a SYN after data, FIN or RST was seen in that direction starts anew; a SYN-ACK
            // following a SYN we saw (handshake in progress) does not
            None => d.seen_segment && (d.delivered || d.closed() || self.is_closed()),
        }
    }

    /// Process one segment; emits events for the later stages through `emit`.
    pub fn on_segment<F: FnMut(&ConnMeta, FlowEvent<'_>)>(
        &mut self,
        seg: &Segment<'_>,
        at: FrameRef,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let d = self.dir_of(seg.src);
        self.last_ts = at.ts;
        self.track_handshake(d, seg, at.ts);
        let meta = self.note_segment(d, seg, at);
        let conn = self.meta();
        let emit = &mut |ev: FlowEvent<'_>| emit(&conn, ev);
        if self.trace {
            emit(FlowEvent::Segment {
                dir: d,
                flags: seg.flags.0,
                len: seg.payload_len,
                meta,
            });
        }
        if let Some(a) = meta.ack_off {
            let sender = &mut self.dirs[d];
            sender.note_ack(a);
            // the receiver acknowledged bytes the capture never showed: a gap in the other
            // direction
            self.dirs[d.other()].ack_reveals_gap(d.other(), a, meta, stats, emit);
        }
        // the stream offset of the segment's first byte (after the SYN's sequence number)
        let off = meta.off + i64::from(seg.flags.syn() && !seg.flags.rst());
        if seg.flags.rst() {
            self.on_rst(d, seg, off, meta, stats);
            return;
        }
        let wire_len = seg.payload_len;
        if wire_len > 0 {
            if (seg.payload.len() as u32) < wire_len {
                stats.snaplen_truncated_segments += 1;
            }
            let span = Span {
                off,
                captured: seg.payload,
                wire_len,
                meta,
            };
            self.dirs[d].deliver(d, span, stats, emit);
        }
        let end = off + i64::from(wire_len);
        let sender = &mut self.dirs[d];
        sender.max_end = sender.max_end.max(end + i64::from(seg.flags.fin()));
        if seg.flags.fin() {
            self.on_fin(d, end, meta, stats);
        }
        self.dirs[d].try_eof(d, emit);
    }

    /// SYN, SYN-ACK and the client's ACK of the SYN-ACK: who is the client, how far the
    /// handshake got.
    fn track_handshake(&mut self, d: Dir, seg: &Segment<'_>, ts: Timestamp) {
        let flags = seg.flags;
        if flags.syn() && !flags.rst() {
            let sender = &mut self.dirs[d];
            if sender.isn.is_none() {
                let isn = SeqNumber(seg.seq);
                sender.isn = Some(isn);
                sender.wscale = seg.wscale;
                sender.init_space(isn.wrapping_add(1), 0);
            }
            if flags.ack() {
                if self.handshake != Handshake::Established {
                    self.handshake = Handshake::SynReceived;
                    self.times.0[1] = ts.nanos();
                }
                self.syn_client.get_or_insert(d.other());
            } else {
                if self.handshake == Handshake::Partial {
                    self.handshake = Handshake::SynSent;
                }
                if self.times.0[1] == NO_TIME {
                    self.times.0[0] = ts.nanos();
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
            self.times.0[2] = ts.nanos();
        }
    }

    /// Map the segment's sequence and acknowledgement numbers to stream offsets.
    fn note_segment(&mut self, d: Dir, seg: &Segment<'_>, at: FrameRef) -> SegMeta {
        let seq = SeqNumber(seg.seq);
        let sender = &mut self.dirs[d];
        if sender.space().is_none() {
            sender.init_space(seq, 0);
        }
        sender.seen_segment = true;
        sender.window = seg.window;
        let ack = seg.flags.ack().then_some(SeqNumber(seg.ack));
        let ack_off = ack.and_then(|ack| {
            let receiver = &mut self.dirs[d.other()];
            if receiver.space().is_none() {
                receiver.init_space(ack, 0);
            }
            receiver.space().map(|s| s.offset(ack))
        });
        SegMeta {
            at,
            seq,
            off: self.dirs[d].observe(seq),
            ack,
            ack_off,
        }
    }

    fn on_rst(
        &mut self,
        d: Dir,
        seg: &Segment<'_>,
        off: i64,
        meta: SegMeta,
        stats: &mut FlowStats,
    ) {
        if self.handshaking_server(d) {
            // the only valid RST from the server before the handshake completed refuses the
            // SYN: RST|ACK acknowledging exactly ISN+1 (RFC 9293 3.10.7.3)
            let refusal = self.handshake == Handshake::SynSent
                && seg.flags.ack()
                && self.dirs[d.other()]
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
        let sender = &mut self.dirs[d];
        if sender.rst().is_none() {
            sender.set_rst(CloseEvent { off, ..meta });
        }
    }

    fn on_fin(&mut self, d: Dir, fin_off: i64, meta: SegMeta, stats: &mut FlowStats) {
        if self.handshaking_server(d) {
            stats.fin_before_handshake += 1;
            return;
        }
        if let Some(prev) = self.dirs[d].fin() {
            if prev.off != fin_off {
                stats.conflicting_fin += 1;
            }
            return;
        }
        if !self.in_window(d, fin_off) {
            stats.fin_out_of_window += 1;
            return;
        }
        self.dirs[d].set_fin(CloseEvent {
            off: fin_off,
            ..meta
        });
    }

    /// Is direction `d` the server's while the handshake is not complete? A FIN or RST from it
    /// then is not a close (forged-RST evasion, data before the handshake).
    fn handshaking_server(&self, d: Dir) -> bool {
        matches!(self.handshake, Handshake::SynSent | Handshake::SynReceived)
            && self.syn_client == Some(d.other())
    }

    /// Is stream offset `off` of direction `d` acceptable to the receiver (RFC 9293 3.10.7.4)?
    /// Lenient where the capture does not tell (no window seen, scale unknown).
    fn in_window(&self, d: Dir, off: i64) -> bool {
        let recv = &self.dirs[d.other()];
        let Some(rcv_nxt) = recv.highest_ack() else {
            return true;
        };
        if !recv.seen_segment {
            return true;
        }
        let sent = &self.dirs[d];
        // the window scale applies only when both SYNs carried the option
        let shift = match (sent.isn, recv.isn) {
            (Some(_), Some(_)) => match (sent.wscale, recv.wscale) {
                (Some(_), Some(s)) => u32::from(s.min(14)),
                _ => 0,
            },
            _ => 14,
        };
        let wnd = (i64::from(recv.window) << shift).max(65_535);
        let lo = rcv_nxt.min(sent.next) - 1;
        let hi = rcv_nxt.max(sent.max_end) + wnd;
        (lo..=hi).contains(&off)
    }

    /// End of the connection: deliver what is held (with gaps) and the FINs.
    pub fn flush<F: FnMut(&ConnMeta, FlowEvent<'_>)>(
        &mut self,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let meta = SegMeta::default();
        let conn = self.meta();
        let emit = &mut |ev: FlowEvent<'_>| emit(&conn, ev);
        for d in Dir::BOTH {
            self.dirs[d].flush(d, meta, stats, emit);
        }
    }
}
