//! The connection table: 4-tuple -> current connection, with the timeouts and the cap that
//! finish connections.
//!
//! Every cost is O(1) per packet (amortised): the connections are kept in a slab with an
//! intrusive list in order of activity (the most recently active first), so the least
//! recently active one is at hand when the cap is reached or when connections fall idle;
//! closed connections wait for their linger time in a heap by deadline.

use super::conn::{Pair, TcpConn, vnet_code};
use super::copies::Sighting;
use super::{ConnMeta, FlowEvent, FlowStats, FrameRef};
use crate::decode::Segment;
use crate::time::Timestamp;
use hashbrown::HashTable;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
        let net = vnet_code(vnet);
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

impl TupleKey {
    fn hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        Hash::hash(self, &mut h);
        h.finish()
    }

    /// The key of connection `tcp`.
    fn of_conn(tcp: &TcpConn) -> TupleKey {
        let [a, b] = tcp.addrs.get().0;
        TupleKey::of(a, b, tcp.vnet())
    }

    /// Whether this is the key of connection `tcp`: for IPv4, its addresses (kept in line)
    /// packed and compared as they are, without working out its whole key (every look-up
    /// compares at least once).
    fn is_of(&self, tcp: &TcpConn) -> bool {
        match (self, &tcp.addrs) {
            (TupleKey::V4(p, q, net), Pair::V4 { ip, port }) => {
                let a = u64::from(ip[0]) << 16 | u64::from(port[0]);
                let b = u64::from(ip[1]) << 16 | u64::from(port[1]);
                (a.min(b), a.max(b)) == (*p, *q) && *net == tcp.vnet_code()
            }
            (TupleKey::V4(..), Pair::V6(_)) | (TupleKey::V6(..), Pair::V4 { .. }) => false,
            (TupleKey::V6(..), Pair::V6(_)) => TupleKey::of_conn(tcp) == *self,
        }
    }
}

/// A tracked connection: its TCP state and the later stages' state `T`.
#[derive(Debug)]
struct Tracked<T> {
    tcp: TcpConn,
    user: T,
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

/// No slot: the end of the activity list.
const NIL: u32 = u32::MAX;

/// A place for a connection, linked into the activity list while it holds one (into the free
/// list otherwise, by `next`).
struct Slot<T> {
    /// Towards the more recently active.
    prev: u32,
    /// Towards the less recently active.
    next: u32,
    /// Capture time of the input when the connection was last active (never decreases along
    /// the list).
    active: Timestamp,
    conn: Option<Box<Tracked<T>>>,
}

/// The connection table.
pub struct FlowTable<T> {
    cfg: TableConfig,
    /// 4-tuple -> slot (the keys are the slots' connections': 4 bytes an entry).
    index: HashTable<u32>,
    slots: Vec<Slot<T>>,
    /// First free slot (`NIL`: none).
    free: u32,
    /// The most and the least recently active connection.
    head: u32,
    tail: u32,
    /// Capture time: the latest timestamp seen.
    now: Timestamp,
    /// Closed connections by the end of their linger time: (deadline, id, slot).
    closing: BinaryHeap<Reverse<(Timestamp, u64, u32)>>,
    stats: FlowStats,
}

impl<T: Default> FlowTable<T> {
    pub fn new(cfg: TableConfig) -> FlowTable<T> {
        FlowTable {
            cfg,
            index: HashTable::new(),
            slots: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            now: Timestamp::default(),
            closing: BinaryHeap::new(),
            stats: FlowStats::default(),
        }
    }

    pub fn open_connections(&self) -> usize {
        self.index.len()
    }

    /// Slots allocated: the most connections tracked at once.
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Capture time of the whole input advanced to `now` (a shard of the input gets it with
    /// each packet, so that activity and linger times are the same however the input is split).
    pub fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
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
        self.now = self.now.max(at.ts);
        let key = TupleKey::of(seg.src, seg.dst, seg.vnet);
        let hash = key.hash();
        if seg.tunnel.is_some() {
            self.stats.tunnelled_segments += 1;
        }
        if sighting.duplicate {
            self.stats.duplicate_segments += 1;
            if let Some(s) = self.find(hash, &key) {
                let tracked = self.slots[s as usize]
                    .conn
                    .as_deref_mut()
                    .expect("a live slot");
                tracked.tcp.note_view(seg, sighting, &mut self.stats);
                if tracked.tcp.trace {
                    h.on_duplicate(tracked.tcp.id);
                }
            }
            return;
        }
        // one lookup on the hot path: the packet belongs to a known connection
        let found = self.find(hash, &key);
        let slot = match found.map(|s| (s, self.tracked(s))) {
            Some((s, t))
                if at.ts.secs_since(t.tcp.last_ts) <= self.cfg.idle_timeout
                    && !t.tcp.is_new_epoch(seg) =>
            {
                s
            }
            found => {
                if let Some((s, t)) = found {
                    if t.tcp.is_new_epoch(seg) {
                        self.stats.connections_split_by_new_syn += 1;
                    } else {
                        self.stats.connections_split_by_silence += 1;
                    }
                    self.finish_slot(s, super::EndReason::Superseded, h);
                } else if self.index.len() >= self.cfg.max_connections {
                    self.stats.connections_evicted += 1;
                    self.finish_slot(self.tail, EndReason::Evicted, h);
                }
                self.stats.connections += 1;
                // the id is the ordinal of the connection's first packet: unique (a packet
                // starts at most one connection) and the same however the input is split
                let mut tcp = TcpConn::new(at.ordinal, seg.src, seg.dst, seg.vnet, at);
                tcp.trace = self.cfg.trace_segments;
                let t = Box::new(Tracked {
                    tcp,
                    user: T::default(),
                });
                let s = self.allocate(t);
                let slots = &self.slots;
                self.index
                    .insert_unique(hash, s, |&i| Self::slot_key(slots, i).hash());
                s
            }
        };
        self.touch(slot);
        let now = self.now;
        let tracked = self.slots[slot as usize]
            .conn
            .as_deref_mut()
            .expect("a live slot");
        if tracked.tcp.closing && !seg.flags.rst() && seg.payload_len > 0 {
            self.stats.late_segments_after_close += 1;
        }
        if seg.tunnel.is_some() || sighting.moved.is_some() {
            tracked.tcp.note_view(seg, sighting, &mut self.stats);
        }
        let Tracked { tcp, user, .. } = tracked;
        tcp.on_segment(seg, at, &mut self.stats, &mut |conn, ev| {
            h.on_event(conn, user, ev)
        });
        if !tracked.tcp.closing && tracked.tcp.is_closed() {
            tracked.tcp.closing = true;
            let deadline = now.add_secs(self.cfg.close_linger);
            self.closing.push(Reverse((deadline, tracked.tcp.id, slot)));
        }
    }

    /// Finish connections whose linger or idle time has passed at capture time `now`.
    pub fn expire<H: FlowHandler<T>>(&mut self, now: Timestamp, h: &mut H) {
        self.now = self.now.max(now);
        while let Some(&Reverse((deadline, id, slot))) = self.closing.peek() {
            if deadline > now {
                break;
            }
            self.closing.pop();
            let live = self.slots[slot as usize]
                .conn
                .as_ref()
                .is_some_and(|t| t.tcp.id == id);
            if live {
                self.finish_slot(slot, EndReason::Closed, h);
            }
        }
        // idle connections: the least recently active first
        let edge = now.add_secs(-self.cfg.idle_timeout);
        while self.tail != NIL && self.slots[self.tail as usize].active < edge {
            self.finish_slot(self.tail, EndReason::Idle, h);
        }
    }

    /// Finish every connection (end of input), oldest first.
    pub fn drain<H: FlowHandler<T>>(&mut self, h: &mut H) {
        let mut live: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.conn.as_ref().map(|t| (t.tcp.id, i as u32)))
            .collect();
        live.sort_unstable();
        for (_, slot) in live {
            self.finish_slot(slot, EndReason::EndOfInput, h);
        }
        self.closing.clear();
    }

    /// The slot of the connection with `key` (whose hash is `hash`).
    fn find(&self, hash: u64, key: &TupleKey) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| key.is_of(&Self::tracked_in(slots, i).tcp))
            .copied()
    }

    /// The key of the connection in slot `i`.
    fn slot_key(slots: &[Slot<T>], i: u32) -> TupleKey {
        TupleKey::of_conn(&Self::tracked_in(slots, i).tcp)
    }

    /// The connection in slot `i` of `slots`.
    fn tracked_in(slots: &[Slot<T>], i: u32) -> &Tracked<T> {
        slots[i as usize].conn.as_deref().expect("an indexed slot")
    }

    fn tracked(&self, slot: u32) -> &Tracked<T> {
        self.slots[slot as usize]
            .conn
            .as_deref()
            .expect("a live slot")
    }

    /// A slot for a new connection (not linked yet).
    fn allocate(&mut self, t: Box<Tracked<T>>) -> u32 {
        let slot = Slot {
            prev: NIL,
            next: NIL,
            active: self.now,
            conn: Some(t),
        };
        if self.free != NIL {
            let s = self.free;
            self.free = self.slots[s as usize].next;
            self.slots[s as usize] = slot;
            s
        } else {
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        }
    }

    /// Take `s` out of the activity list.
    fn unlink(&mut self, s: u32) {
        let (prev, next) = {
            let x = &self.slots[s as usize];
            (x.prev, x.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    /// `s` was active now: to the head of the list.
    fn touch(&mut self, s: u32) {
        let now = self.now;
        if self.head == s {
            self.slots[s as usize].active = now;
            return;
        }
        let linked = self.slots[s as usize].prev != NIL || self.tail == s;
        if linked {
            self.unlink(s);
        }
        let old = self.head;
        {
            let x = &mut self.slots[s as usize];
            x.prev = NIL;
            x.next = old;
            x.active = now;
        }
        match old {
            NIL => self.tail = s,
            o => self.slots[o as usize].prev = s,
        }
        self.head = s;
    }

    /// Finish the connection in slot `s` and free the slot.
    fn finish_slot<H: FlowHandler<T>>(&mut self, s: u32, why: EndReason, h: &mut H) {
        self.unlink(s);
        let Some(t) = self.slots[s as usize].conn.take() else {
            return;
        };
        let key = TupleKey::of_conn(&t.tcp);
        if let Ok(e) = self.index.find_entry(key.hash(), |&i| i == s) {
            e.remove();
        }
        {
            let x = &mut self.slots[s as usize];
            x.prev = NIL;
            x.next = self.free;
        }
        self.free = s;
        self.finish(t, why, h);
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

#[cfg(test)]
pub(super) fn tracked_size<T>() -> usize {
    std::mem::size_of::<Tracked<T>>()
}

/// The slot, and the index entry (4 bytes and a control byte) at the table's lowest load
/// (7/16, just after it doubled).
#[cfg(test)]
pub(super) fn bytes_per_connection() -> usize {
    std::mem::size_of::<Slot<()>>() + (5usize * 16).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::{TcpConn, TupleKey};
    use crate::flow::FrameRef;
    use std::net::SocketAddr;

    /// A look-up's comparison says what comparing whole keys says: either direction, IPv4,
    /// IPv6 and the two mixed, in a virtual network or none.
    #[test]
    fn a_key_is_of_a_connection_as_its_whole_key_says() {
        let addrs: Vec<SocketAddr> = [
            "192.0.2.1:32768",
            "192.0.2.1:8080",
            "198.51.100.1:8080",
            "198.51.100.1:32768",
            "[2001:db8::1]:32768",
            "[2001:db8::2]:8080",
            "[::ffff:192.0.2.1]:32768",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let nets = [None, Some(0), Some(7), Some(u32::MAX)];
        let mut matched = 0;
        for (a, b) in addrs.iter().flat_map(|a| addrs.iter().map(move |b| (a, b))) {
            for vnet in nets {
                let conn = TcpConn::new(1, *a, *b, vnet, FrameRef::default());
                for (x, y) in addrs.iter().flat_map(|x| addrs.iter().map(move |y| (x, y))) {
                    for net in nets {
                        let key = TupleKey::of(*x, *y, net);
                        let whole = key == TupleKey::of_conn(&conn);
                        assert_eq!(
                            key.is_of(&conn),
                            whole,
                            "{a} {b} {vnet:?} / {x} {y} {net:?}"
                        );
                        matched += usize::from(whole);
                    }
                }
            }
        }
        assert!(matched > 0);
    }
}
