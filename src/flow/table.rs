//! The connection table: 4-tuple -> current connection, with the timeouts and the cap that
//! finish connections.

use super::conn::TcpConn;
use super::copies::Sighting;
use super::{ConnMeta, FlowEvent, FlowStats, FrameRef};
use crate::decode::Segment;
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Lookup key of a 4-tuple in a virtual network, the same for both directions: each endpoint
/// packed into an integer (cheap to hash and compare on the hot path), the smaller one first;
/// the network as 0 (none) or its VNI + 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum TupleKey {
    V4(u64, u64, u32),
    V6((u128, u16), (u128, u16), u32),
}

impl TupleKey {
    pub(super) fn of(a: SocketAddr, b: SocketAddr, vnet: Option<u32>) -> TupleKey {
        let net = vnet.map_or(0, |v| v.wrapping_add(1));
        fn order<K: Ord>(x: K, y: K) -> (K, K) {
            if x <= y { (x, y) } else { (y, x) }
        }
        match (a, b) {
            (SocketAddr::V4(x), SocketAddr::V4(y)) => {
                let pack = |s: std::net::SocketAddrV4| {
                    (u64::from(u32::from(*s.ip())) << 16) | u64::from(s.port())
                };
                let (p, q) = order(pack(x), pack(y));
                TupleKey::V4(p, q, net)
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
                TupleKey::V6(p, q, net)
            }
        }
    }
}

/// A tracked connection: its TCP state and the later stages' state `T`.
#[derive(Debug)]
struct Tracked<T> {
    tcp: TcpConn,
    user: T,
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
    /// Hand every segment to the handler as a [`FlowEvent::Segment`] (for the report's ladder
    /// diagrams and the flight recorder).
    pub trace_segments: bool,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            idle_timeout: 600.0,
            close_linger: 2.0,
            max_connections: 1_000_000,
            trace_segments: false,
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

/// Receives what the connection table produces: the events of tracked connections, with the
/// later stages' state `T` of the connection, and each finished connection with that state.
pub trait FlowHandler<T> {
    fn on_event(&mut self, conn: &ConnMeta, state: &mut T, ev: FlowEvent<'_>);
    /// The connection ended; every event it had (held bytes, gaps, FINs) was delivered first.
    /// The state is dropped afterwards.
    fn on_end(&mut self, end: super::ConnEnd, state: &mut T);
    /// A copy of a segment already seen on connection `conn` (when segments are traced: the
    /// flight recorder keeps the copies with their connection).
    fn on_duplicate(&mut self, _conn: u64) {}
}

/// The connection table.
pub struct FlowTable<T> {
    cfg: TableConfig,
    conns: FxHashMap<TupleKey, Box<Tracked<T>>>,
    /// Connections that closed, in order of closing (linger deadlines are in the same order).
    closing: VecDeque<(Timestamp, TupleKey, u64)>,
    last_sweep: Timestamp,
    stats: FlowStats,
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

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Process a segment: finds (or starts) its connection, updates its TCP state and passes
    /// the events with the connection's state `T` to the handler. A connection this finishes
    /// (a superseded epoch, an evicted one) is handed to `on_end` first. `sighting` is what
    /// the copy filter found: a duplicate only counts, and is noted on its connection.
    pub fn process<H: FlowHandler<T>>(
        &mut self,
        seg: &Segment<'_>,
        at: FrameRef,
        sighting: &Sighting<'_>,
        h: &mut H,
    ) {
        let key = TupleKey::of(seg.src, seg.dst, seg.vnet);
        if seg.tunnel.is_some() {
            self.stats.tunnelled_segments += 1;
        }
        if sighting.duplicate {
            self.stats.duplicate_segments += 1;
            if let Some(t) = self.conns.get_mut(&key) {
                t.tcp.note_view(seg, sighting, &mut self.stats);
                if t.tcp.trace {
                    h.on_duplicate(t.tcp.id);
                }
            }
            return;
        }
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
                    self.finish(old, EndReason::Superseded, h);
                } else if self.conns.len() >= self.cfg.max_connections {
                    self.evict_oldest(h);
                }
                self.stats.connections += 1;
                // the id is the ordinal of the connection's first packet: unique (a packet
                // starts at most one connection) and the same however the input is split
                let mut tcp = TcpConn::new(at.ordinal, seg.src, seg.dst, at);
                tcp.trace = self.cfg.trace_segments;
                let t = Box::new(Tracked {
                    tcp,
                    user: T::default(),
                    closing_since: None,
                });
                self.conns.entry(key).insert_entry(t).into_mut()
            }
        };
        if tracked.closing_since.is_some() && !seg.flags.rst() && seg.payload_len > 0 {
            self.stats.late_segments_after_close += 1;
        }
        if seg.tunnel.is_some() || sighting.moved.is_some() {
            tracked.tcp.note_view(seg, sighting, &mut self.stats);
        }
        let Tracked { tcp, user, .. } = &mut **tracked;
        tcp.on_segment(seg, at, &mut self.stats, &mut |conn, ev| {
            h.on_event(conn, user, ev)
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
                self.finish(t, EndReason::Closed, h);
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
                self.finish(t, EndReason::Idle, h);
            }
        }
    }

    /// Finish every connection (end of input), oldest first.
    pub fn drain<H: FlowHandler<T>>(&mut self, h: &mut H) {
        let mut all: Vec<Box<Tracked<T>>> = self.conns.drain().map(|(_, t)| t).collect();
        all.sort_unstable_by_key(|t| t.tcp.id);
        self.closing.clear();
        for t in all {
            self.finish(t, EndReason::EndOfInput, h);
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
            self.finish(t, EndReason::Evicted, h);
        }
    }

    /// Deliver what the connection still holds, then hand it over.
    // the connection stays in its box: moving a few hundred bytes out per connection showed in
    // the benchmark's instruction count
    #[allow(clippy::boxed_local)]
    fn finish<H: FlowHandler<T>>(&mut self, mut t: Box<Tracked<T>>, why: EndReason, h: &mut H) {
        // in place: a connection's state is large, and moving it out of its box costs
        let Tracked { tcp, user, .. } = &mut *t;
        tcp.flush(&mut self.stats, &mut |conn, ev| h.on_event(conn, user, ev));
        h.on_end(tcp.end(why), user);
    }
}
