//! TCP conversation simulator.
//!
//! Two endpoints exchange segments over a path with a fixed one-way delay `d`. A segment sent
//! at `t` arrives at the peer at `t + d`; the acknowledgment number an endpoint writes into a
//! segment is its `rcv_nxt` at send time, i.e. what it had *received* by then. A FIN and a
//! request sent 1 ms apart therefore cross in flight exactly as they do on a real network.
//!
//! Calls must come in non-decreasing time order (the simulator delivers in-flight segments
//! lazily, up to the time of each call).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::config::ConvConfig;
use super::segment::{Flags, RstReplyForm, SegId, Segment, Side, seq_add, seq_lt};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub(super) addr: SocketAddr,
    pub(super) mac: [u8; 6],
    isn: u32,
    snd_nxt: u32,
    /// `None` until the peer's SYN arrived.
    rcv_nxt: Option<u32>,
    window: u16,
    fin_sent: bool,
    /// Sent or accepted a reset: sends nothing automatically any more.
    dead: bool,
    last_ack_sent: Option<u32>,
    last_received: Option<SegId>,
    out_of_order: Vec<SegId>,
    ip_id: u16,
    ack_pending: bool,
}

impl Endpoint {
    fn new(addr: SocketAddr, isn: u32, window: u16) -> Self {
        let mac = mac_for(addr.ip());
        // Deterministic but different IP ids per host.
        let ip_id = (u32::from(mac[4]) << 8 | u32::from(mac[5])).wrapping_mul(97) as u16;
        Endpoint {
            addr,
            mac,
            isn,
            snd_nxt: isn,
            rcv_nxt: None,
            window,
            fin_sent: false,
            dead: false,
            last_ack_sent: None,
            last_received: None,
            out_of_order: Vec::new(),
            ip_id,
            ack_pending: false,
        }
    }
}

/// Locally administered MAC derived from the IP address.
fn mac_for(ip: IpAddr) -> [u8; 6] {
    let b: [u8; 4] = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive(SegId),
    AutoAck(Side),
}

/// A simulated TCP connection between a client and a server. See the module docs.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub(super) cfg: ConvConfig,
    delay_ns: i64,
    pub(super) ends: [Endpoint; 2],
    pub(super) segs: Vec<Segment>,
    events: BinaryHeap<Reverse<(i64, u64, Event)>>,
    event_no: u64,
    now: i64,
}

impl Conversation {
    /// A conversation that has not started: call [`handshake`](Self::handshake) (or
    /// [`syn`](Self::syn) per side) first.
    pub fn new(cfg: ConvConfig) -> Self {
        let ends = [
            Endpoint::new(cfg.client, cfg.client_isn, cfg.client_window),
            Endpoint::new(cfg.server, cfg.server_isn, cfg.server_window),
        ];
        let delay_ns = i64::try_from(cfg.delay.as_nanos()).expect("delay too large");
        Conversation {
            cfg,
            delay_ns,
            ends,
            segs: Vec::new(),
            events: BinaryHeap::new(),
            event_no: 0,
            now: i64::MIN,
        }
    }

    /// A conversation whose handshake happened before the capture: both sides are
    /// synchronized (`snd_nxt = isn + 1`, `rcv_nxt = peer isn + 1`) and no SYN is emitted.
    pub fn established(cfg: ConvConfig) -> Self {
        let mut c = Conversation::new(cfg);
        for s in [Side::Client, Side::Server] {
            let peer_isn = c.ends[s.peer().idx()].isn;
            let e = &mut c.ends[s.idx()];
            e.snd_nxt = seq_add(e.isn, 1);
            e.rcv_nxt = Some(seq_add(peer_isn, 1));
        }
        c
    }

    pub fn config(&self) -> &ConvConfig {
        &self.cfg
    }

    pub fn segment(&self, id: SegId) -> &Segment {
        &self.segs[id.0]
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segs
    }

    pub fn isn(&self, side: Side) -> u32 {
        self.ends[side.idx()].isn
    }

    pub fn snd_nxt(&self, side: Side) -> u32 {
        self.ends[side.idx()].snd_nxt
    }

    /// What `side` has received in order (as of the last call / [`advance_to`](Self::advance_to)).
    pub fn rcv_nxt(&self, side: Side) -> Option<u32> {
        self.ends[side.idx()].rcv_nxt
    }

    pub fn set_auto_ack(&mut self, delay: Option<Duration>) {
        self.cfg.auto_ack = delay;
    }

    /// The largest payload of the segments [`Conversation::send`] makes from now on.
    pub fn set_mss(&mut self, mss: u16) {
        self.cfg.mss = mss;
    }

    pub fn set_rst_reply(&mut self, form: RstReplyForm) {
        self.cfg.rst_reply = form;
    }

    /// The one-way delay `d`.
    pub fn delay(&self) -> Duration {
        self.cfg.delay
    }

    /// Deliver everything in flight up to `t` (inclusive), sending automatic ACKs.
    pub fn advance_to(&mut self, t: Timestamp) {
        let t = t.nanos();
        assert!(
            t >= self.now,
            "conversation calls must be in time order ({} < {})",
            t,
            self.now
        );
        self.now = t;
        while let Some(&Reverse((at, _, ev))) = self.events.peek() {
            if at > t {
                break;
            }
            self.events.pop();
            match ev {
                Event::Arrive(id) => self.arrive(id, at),
                Event::AutoAck(side) => self.auto_ack_fire(side, at),
            }
        }
    }

    /// Deliver everything still in flight (and the ACKs that triggers).
    pub fn settle(&mut self) {
        while let Some(&Reverse((at, _, _))) = self.events.peek() {
            self.advance_to(Timestamp::from_nanos(at));
        }
    }

    fn schedule(&mut self, at: i64, ev: Event) {
        self.event_no += 1;
        self.events.push(Reverse((at, self.event_no, ev)));
    }

    fn arrive(&mut self, id: SegId, at: i64) {
        let seg = &self.segs[id.0];
        if !seg.delivered || seg.forged {
            return;
        }
        let rx = seg.from.peer();
        let (seq, seq_len, flags, has_data) =
            (seg.seq, seg.seq_len(), seg.flags, !seg.payload.is_empty());
        let e = &mut self.ends[rx.idx()];
        e.last_received = Some(id);
        if e.dead {
            return;
        }
        if flags.contains(Flags::RST) {
            let ok = match e.rcv_nxt {
                None => true,
                Some(r) => !seq_lt(seq, r) && seq_lt(seq, seq_add(r, u32::from(e.window))),
            };
            if ok {
                e.dead = true;
            }
            return;
        }
        if flags.contains(Flags::SYN) {
            if e.rcv_nxt.is_none() {
                e.rcv_nxt = Some(seq_add(seq, 1));
            }
            return;
        }
        let Some(r) = e.rcv_nxt else { return };
        if seq_len > 0 {
            if !seq_lt(r, seq) {
                // seq <= rcv_nxt: new data if it reaches beyond rcv_nxt.
                let end = seq_add(seq, seq_len);
                if seq_lt(r, end) {
                    e.rcv_nxt = Some(end);
                    self.drain_out_of_order(rx);
                }
            } else {
                self.ends[rx.idx()].out_of_order.push(id);
            }
            let e = &self.ends[rx.idx()];
            if let Some(delay) = self.cfg.auto_ack
                && !e.ack_pending
                && !(e.fin_sent && has_data)
            {
                let d = i64::try_from(delay.as_nanos()).expect("ack delay too large");
                self.ends[rx.idx()].ack_pending = true;
                self.schedule(at + d, Event::AutoAck(rx));
            }
        }
    }

    fn drain_out_of_order(&mut self, rx: Side) {
        loop {
            let r = self.ends[rx.idx()].rcv_nxt.expect("synchronized");
            // Any buffered segment starting at or before rcv_nxt can be consumed now.
            let pos = self.ends[rx.idx()]
                .out_of_order
                .iter()
                .position(|id| !seq_lt(r, self.segs[id.0].seq));
            let Some(pos) = pos else { return };
            let id = self.ends[rx.idx()].out_of_order.swap_remove(pos);
            let end = self.segs[id.0].end_seq();
            if seq_lt(r, end) {
                self.ends[rx.idx()].rcv_nxt = Some(end);
            }
        }
    }

    fn auto_ack_fire(&mut self, side: Side, at: i64) {
        let e = &mut self.ends[side.idx()];
        e.ack_pending = false;
        if e.dead || e.rcv_nxt.is_none() || e.last_ack_sent == e.rcv_nxt {
            return;
        }
        let (seq, ack) = (e.snd_nxt, e.rcv_nxt);
        self.emit(side, at, seq, ack, Flags::ACK, Vec::new(), None);
    }

    fn ts(&self, t: i64) -> Timestamp {
        Timestamp::from_nanos(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        from: Side,
        t: i64,
        seq: u32,
        ack: Option<u32>,
        flags: Flags,
        payload: Vec<u8>,
        retransmission_of: Option<SegId>,
    ) -> SegId {
        let flags = if ack.is_some() {
            flags | Flags::ACK
        } else {
            Flags(flags.0 & !Flags::ACK.0)
        };
        let e = &mut self.ends[from.idx()];
        e.ip_id = e.ip_id.wrapping_add(1);
        if ack.is_some() {
            e.last_ack_sent = ack;
        }
        let seg = Segment {
            from,
            sent: Timestamp::from_nanos(t),
            seq,
            ack,
            flags,
            payload,
            window: if flags.contains(Flags::RST) && ack.is_none() {
                0
            } else {
                e.window
            },
            captured: true,
            delivered: true,
            forged: false,
            retransmission_of,
            ip_id: e.ip_id,
            syn_options: flags.contains(Flags::SYN),
        };
        let id = SegId(self.segs.len());
        self.segs.push(seg);
        self.schedule(t + self.delay_ns, Event::Arrive(id));
        id
    }

    /// Send a SYN (client, or before the peer's SYN arrived) or SYN-ACK (after it arrived).
    pub fn syn(&mut self, side: Side, t: Timestamp) -> SegId {
        self.advance_to(t);
        let e = &mut self.ends[side.idx()];
        let seq = e.isn;
        e.snd_nxt = seq_add(e.isn, 1);
        let ack = e.rcv_nxt;
        self.emit(side, t.nanos(), seq, ack, Flags::SYN, Vec::new(), None)
    }

    /// Three-way handshake: SYN at `t`, SYN-ACK at `t + d`, ACK at `t + 2d`. Returns the time
    /// the client is established (and can send its first request).
    pub fn handshake(&mut self, t: Timestamp) -> Timestamp {
        let d = self.delay_ns;
        self.syn(Side::Client, t);
        self.syn(Side::Server, self.ts(t.nanos() + d));
        let done = self.ts(t.nanos() + 2 * d);
        self.ack(Side::Client, done);
        done
    }

    fn send_inner(&mut self, side: Side, t: Timestamp, data: &[u8], fin: bool) -> Vec<SegId> {
        self.advance_to(t);
        let mss = usize::from(self.cfg.mss.max(1));
        let mut ids = Vec::new();
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[][..]]
        } else {
            data.chunks(mss).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let last = i + 1 == n;
            let e = &mut self.ends[side.idx()];
            let seq = e.snd_nxt;
            let ack = e.rcv_nxt;
            let mut flags = Flags::ACK;
            if last && !chunk.is_empty() {
                flags = flags | Flags::PSH;
            }
            if last && fin {
                flags = flags | Flags::FIN;
                e.fin_sent = true;
            }
            e.snd_nxt = seq_add(seq, chunk.len() as u32 + u32::from(last && fin));
            ids.push(self.emit(side, t.nanos(), seq, ack, flags, chunk.to_vec(), None));
        }
        ids
    }

    /// Send `data`, split into MSS-size segments (all at `t`), PSH on the last.
    pub fn send(&mut self, side: Side, t: Timestamp, data: &[u8]) -> Vec<SegId> {
        assert!(
            !data.is_empty(),
            "send needs data; use ack() for a pure ACK"
        );
        self.send_inner(side, t, data, false)
    }

    /// Send `data` with the FIN piggybacked on the last segment (pure FIN if `data` is empty).
    pub fn send_fin(&mut self, side: Side, t: Timestamp, data: &[u8]) -> Vec<SegId> {
        self.send_inner(side, t, data, true)
    }

    /// Send a FIN|ACK.
    pub fn fin(&mut self, side: Side, t: Timestamp) -> SegId {
        self.send_inner(side, t, &[], true)[0]
    }

    /// Send a pure ACK acknowledging what `side` has received by `t`.
    pub fn ack(&mut self, side: Side, t: Timestamp) -> SegId {
        self.advance_to(t);
        let e = &self.ends[side.idx()];
        let (seq, ack) = (e.snd_nxt, e.rcv_nxt);
        assert!(ack.is_some(), "ack() before the peer's SYN arrived");
        self.emit(side, t.nanos(), seq, ack, Flags::ACK, Vec::new(), None)
    }

    /// Abortive reset from an existing socket: `seq = snd_nxt`; with `with_ack`, RST|ACK with
    /// `ack = rcv_nxt`. The side is dead afterwards.
    pub fn rst(&mut self, side: Side, t: Timestamp, with_ack: bool) -> SegId {
        self.advance_to(t);
        let e = &mut self.ends[side.idx()];
        e.dead = true;
        let seq = e.snd_nxt;
        let ack = if with_ack { e.rcv_nxt } else { None };
        self.emit(side, t.nanos(), seq, ack, Flags::RST, Vec::new(), None)
    }

    /// Reset in reply to the last segment `side` received (by `t`), in the configured
    /// [`RstReplyForm`]: what a kernel without a socket for the segment sends.
    pub fn rst_reply(&mut self, side: Side, t: Timestamp) -> SegId {
        self.advance_to(t);
        let id = self.ends[side.idx()]
            .last_received
            .expect("rst_reply: nothing received yet");
        self.rst_reply_to(side, t, id)
    }

    /// Reset in reply to segment `to` (sent by the peer of `side`).
    pub fn rst_reply_to(&mut self, side: Side, t: Timestamp, to: SegId) -> SegId {
        self.advance_to(t);
        let s = &self.segs[to.0];
        assert_eq!(
            s.from,
            side.peer(),
            "rst_reply_to: segment not from the peer"
        );
        let (seq, ack) = match (s.ack, self.cfg.rst_reply) {
            (Some(a), RstReplyForm::Bare) => (a, None),
            (Some(a), RstReplyForm::WithAck) => (a, Some(s.end_seq())),
            (None, _) => (0, Some(s.end_seq())),
        };
        self.ends[side.idx()].dead = true;
        self.emit(side, t.nanos(), seq, ack, Flags::RST, Vec::new(), None)
    }

    /// Retransmit segment `id` at `t` (same seq, flags and payload), carrying the sender's
    /// *current* acknowledgment number.
    pub fn retransmit(&mut self, id: SegId, t: Timestamp) -> SegId {
        self.advance_to(t);
        let s = self.segs[id.0].clone();
        let ack = if s.ack.is_some() {
            self.ends[s.from.idx()].rcv_nxt
        } else {
            None
        };
        self.emit(s.from, t.nanos(), s.seq, ack, s.flags, s.payload, Some(id))
    }

    /// Inject a segment "from" `from` (a third party spoofing it): captured like a segment
    /// from that side, but it changes no state and is not delivered.
    pub fn forge(
        &mut self,
        from: Side,
        t: Timestamp,
        seq: u32,
        ack: Option<u32>,
        flags: Flags,
        payload: &[u8],
    ) -> SegId {
        self.advance_to(t);
        let e = &self.ends[from.idx()];
        let seg = Segment {
            from,
            sent: t,
            seq,
            ack,
            flags: if ack.is_some() {
                flags | Flags::ACK
            } else {
                flags
            },
            payload: payload.to_vec(),
            window: e.window,
            captured: true,
            delivered: false,
            forged: true,
            retransmission_of: None,
            ip_id: e.ip_id.wrapping_add(0x4000),
            syn_options: false,
        };
        self.segs.push(seg);
        SegId(self.segs.len() - 1)
    }

    /// The segment was sent (and is delivered) but is missing from the capture.
    pub fn drop_capture(&mut self, id: SegId) {
        self.segs[id.0].captured = false;
    }

    /// The segment is lost in the network: it never reaches the peer. It is captured if the
    /// vantage point is the sender or the middle of the path (lost beyond the tap).
    /// Must be called before the segment's arrival time is reached.
    pub fn lose(&mut self, id: SegId) {
        self.segs[id.0].delivered = false;
    }

    /// Capture time of a segment (`None` if it is not in the capture).
    pub fn capture_time(&self, id: SegId) -> Option<Timestamp> {
        let s = &self.segs[id.0];
        if !s.captured {
            return None;
        }
        let t = s.sent.nanos();
        match self.cfg.vantage.side() {
            Some(v) if v == s.from => Some(s.sent),
            Some(_) if !s.delivered && !s.forged => None,
            Some(_) => Some(self.ts(t + self.delay_ns)),
            None => Some(self.ts(t + self.delay_ns / 2)),
        }
    }
}
