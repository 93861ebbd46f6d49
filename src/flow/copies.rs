//! Copies of one segment: the same packet captured more than once, on several interfaces of
//! `-i any`, inside and outside a tunnel, by a mirror that duplicates, or on both sides of a
//! NAT (other addresses, same segment). The copies are one segment, not retransmissions, and
//! the views of one connection (addresses and virtual network) are one connection.
//!
//! The rule: two segments are copies of one packet when everything the network leaves alone
//! is the same (the IPv4 identification or IPv6 flow label, sequence and acknowledgement
//! numbers, flags, window, TCP options (timestamps included; the SYN's, which middleboxes
//! rewrite to clamp the MSS, are left out), payload length and its first bytes) and they were
//! captured at most [`COPY_WINDOW_S`] apart. TTLs, checksums, addresses, ports and
//! encapsulations may differ. A real retransmission differs: stacks give it a new IPv4
//! identification (Linux, Windows and the BSDs count per packet), a new TCP timestamp, and it
//! comes one retransmission timeout (at least 200 ms on Linux, 300 ms on Windows) or, for a
//! fast retransmit or a tail loss probe, about a round trip later. Only a stack that sends
//! IPv6 (or a constant IPv4 identification) without TCP timestamps and retransmits within the
//! window would have a retransmission taken for a copy; the flow stage then sees one
//! transmission fewer, no verdict changes.
//!
//! A copy under the addresses its first capture had is a duplicate: counted, not analysed. A
//! copy under other addresses (or in another virtual network) makes that view an alias of the
//! first: from then on every segment captured in it is moved to the first view's addresses
//! (its connection) and the flow stage records the other address pair. An alias is dropped
//! when a SYN opens a new connection on its addresses, or after the idle timeout.
//!
//! The filter keeps the recent segments in a fixed table indexed by their fingerprint (no
//! allocation per packet; a copy more than a few thousand packets later may be missed, and is
//! then analysed as a retransmission) and the aliases in a map that is only consulted when it
//! is not empty.

use super::conn::vnet_code;
use super::table::TupleKey;
use crate::decode::Segment;
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;

/// Copies of one packet are captured at most this far apart.
pub const COPY_WINDOW_S: f64 = 0.02;
const COPY_WINDOW_NS: i64 = (COPY_WINDOW_S * 1e9) as i64;
/// Recent segments remembered (a power of two).
const SLOTS: usize = 4096;

/// Where a segment was captured: its addresses and its virtual network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub vnet: Option<u32>,
}

impl View {
    pub fn of(seg: &Segment<'_>) -> View {
        View {
            src: seg.src,
            dst: seg.dst,
            vnet: seg.vnet,
        }
    }

    /// Put the segment into this view.
    pub fn apply(&self, seg: &mut Segment<'_>) {
        seg.src = self.src;
        seg.dst = self.dst;
        seg.vnet = self.vnet;
    }
}

/// A segment captured under another view than its connection's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    /// The connection's view, which the segment was moved to.
    pub to: View,
    /// The view it was captured in.
    pub from: View,
    /// The endpoint (in `to`) that sent the packet whose copies made `from` an alias of `to`:
    /// `to` was captured nearer to it.
    pub first_sender: SocketAddr,
}

/// What the copy filter found out about a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sighting<'a> {
    /// A copy of a segment already passed on: counted, not analysed again.
    pub duplicate: bool,
    /// Set when the segment was moved to its connection's view.
    pub moved: Option<&'a Moved>,
}

/// A recent segment: its fingerprint, capture time and view after aliasing, packed (an IPv6
/// view is in `CopyFilter::views6`). Looked at for every segment, so kept small.
#[derive(Clone, Copy)]
struct Slot {
    fingerprint: u64,
    at: Timestamp,
    view: u128,
}

/// `Slot::view` of an IPv6 view: the network field all ones (VNIs have 24 bits).
const IPV6_VIEW: u128 = u32::MAX as u128;

/// An IPv4 view in 128 bits: source address and port, destination address and port, and the
/// network (0, or the VNI + 1); `IPV6_VIEW` for an IPv6 one.
#[inline]
fn pack(seg: &Segment<'_>) -> u128 {
    match (seg.src, seg.dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            u128::from(u32::from(*s.ip())) << 96
                | u128::from(s.port()) << 80
                | u128::from(u32::from(*d.ip())) << 48
                | u128::from(d.port()) << 32
                | u128::from(vnet_code(seg.vnet))
        }
        _ => IPV6_VIEW,
    }
}

fn unpack(p: u128) -> View {
    let addr =
        |ip: u128, port: u128| SocketAddr::from((std::net::Ipv4Addr::from(ip as u32), port as u16));
    View {
        src: addr(p >> 96, p >> 80),
        dst: addr(p >> 48, p >> 32),
        vnet: (p as u32).checked_sub(1),
    }
}

/// An alias view: its endpoints mapped to the first view's.
#[derive(Clone, Copy, Debug)]
struct Alias {
    /// (alias endpoint, first view's endpoint), both endpoints.
    ends: [(SocketAddr, SocketAddr); 2],
    vnet: Option<u32>,
    first_sender: SocketAddr,
    last: Timestamp,
}

impl Alias {
    fn map(&self, a: SocketAddr) -> SocketAddr {
        if a == self.ends[0].0 {
            self.ends[0].1
        } else {
            self.ends[1].1
        }
    }
}

/// Recognises copies of segments; see the module documentation.
pub struct CopyFilter {
    /// What the last segment moved was moved from and to.
    last_moved: Moved,
    slots: Box<[Slot]>,
    /// The IPv6 views of the slots that hold one.
    views6: Box<[View]>,
    aliases: FxHashMap<TupleKey, Alias>,
    /// An alias unused this long is dropped.
    idle_timeout: f64,
    /// At most this many aliases (the least recently used goes).
    max_aliases: usize,
    last_sweep: Timestamp,
}

impl CopyFilter {
    pub fn new(idle_timeout: f64, max_aliases: usize) -> CopyFilter {
        let empty = Slot {
            fingerprint: 0,
            at: Timestamp::from_nanos(i64::MIN),
            view: 0,
        };
        let nowhere = View {
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            dst: SocketAddr::from(([0, 0, 0, 0], 0)),
            vnet: None,
        };
        CopyFilter {
            last_moved: Moved {
                to: nowhere,
                from: nowhere,
                first_sender: nowhere.src,
            },
            slots: vec![empty; SLOTS].into_boxed_slice(),
            views6: vec![nowhere; SLOTS].into_boxed_slice(),
            aliases: FxHashMap::default(),
            idle_timeout,
            max_aliases: max_aliases.max(1),
            last_sweep: Timestamp::default(),
        }
    }

    /// Look at a segment captured at `ts`: moves it into its connection's view when it was
    /// captured in an alias, and says whether it is a duplicate.
    pub fn check(&mut self, seg: &mut Segment<'_>, ts: Timestamp) -> Sighting<'_> {
        let fingerprint = fingerprint(seg);
        let mut moved = !self.aliases.is_empty() && self.resolve(seg, ts);
        let mut duplicate = false;
        let packed = pack(seg);
        let i = fingerprint as usize & (SLOTS - 1);
        let slot = &mut self.slots[i];
        let copy = slot.fingerprint == fingerprint
            && ts.nanos().saturating_sub(slot.at.nanos()) <= COPY_WINDOW_NS;
        if !copy {
            *slot = Slot {
                fingerprint,
                at: ts,
                view: packed,
            };
            if packed == IPV6_VIEW {
                self.views6[i] = View::of(seg);
            }
            return Sighting {
                duplicate,
                moved: moved.then_some(&self.last_moved),
            };
        }
        let view = View::of(seg);
        let first = match slot.view {
            IPV6_VIEW => self.views6[i],
            p => unpack(p),
        };
        if first == view {
            // the first copy went to this segment's connection
            duplicate = true;
        } else if !moved && self.add_alias(view, first, ts) {
            // the same packet under other addresses: this view is an alias of the first
            let to = self.canonical(first);
            to.apply(seg);
            duplicate = true;
            moved = true;
            self.last_moved = Moved {
                to,
                from: view,
                first_sender: to.src,
            };
        }
        // else the first copy went to a connection that has since become an alias of this
        // segment's (its view's first packets came before the copy that made it one): this
        // connection has not seen the segment yet
        Sighting {
            duplicate,
            moved: moved.then_some(&self.last_moved),
        }
    }

    /// Move a segment captured in an alias view to the first view (`last_moved` says how);
    /// false when its view is no alias.
    fn resolve(&mut self, seg: &mut Segment<'_>, ts: Timestamp) -> bool {
        let key = TupleKey::of(seg.src, seg.dst, seg.vnet);
        if seg.flags.syn() && !seg.flags.ack() {
            // a new connection on these addresses: whatever they were an alias of is over
            self.aliases.remove(&key);
            return false;
        }
        let Some(alias) = self.aliases.get_mut(&key) else {
            return false;
        };
        alias.last = ts;
        let from = View::of(seg);
        let to = View {
            src: alias.map(seg.src),
            dst: alias.map(seg.dst),
            vnet: alias.vnet,
        };
        to.apply(seg);
        self.last_moved = Moved {
            to,
            from,
            first_sender: alias.first_sender,
        };
        true
    }

    /// The view `v` is an alias of, or `v`.
    fn canonical(&self, v: View) -> View {
        match self.aliases.get(&TupleKey::of(v.src, v.dst, v.vnet)) {
            Some(a) => View {
                src: a.map(v.src),
                dst: a.map(v.dst),
                vnet: a.vnet,
            },
            None => v,
        }
    }

    /// Make `from` an alias of `to` (of what `to` is an alias of); false when that is `from`
    /// itself.
    fn add_alias(&mut self, from: View, to: View, ts: Timestamp) -> bool {
        let to = self.canonical(to);
        let key = TupleKey::of(from.src, from.dst, from.vnet);
        if TupleKey::of(to.src, to.dst, to.vnet) == key {
            return false;
        }
        if self.aliases.len() >= self.max_aliases {
            self.evict_oldest();
        }
        self.aliases.insert(
            key,
            Alias {
                ends: [(from.src, to.src), (from.dst, to.dst)],
                vnet: to.vnet,
                first_sender: to.src,
                last: ts,
            },
        );
        true
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .aliases
            .iter()
            .min_by_key(|(_, a)| (a.last, a.ends[0].1, a.ends[1].1))
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.aliases.remove(&k);
        }
    }

    /// Capture time is `now`: drop the aliases unused for the idle timeout.
    pub fn expire(&mut self, now: Timestamp) {
        if now.secs_since(self.last_sweep) < self.idle_timeout / 10.0 {
            return;
        }
        self.last_sweep = now;
        let idle = self.idle_timeout;
        self.aliases.retain(|_, a| now.secs_since(a.last) <= idle);
    }
}

/// The first up to 8 bytes of `b` as a word (zero-padded).
#[inline]
fn word(b: &[u8]) -> u64 {
    match b.first_chunk::<8>() {
        Some(w) => u64::from_le_bytes(*w),
        None => b
            .iter()
            .enumerate()
            .fold(0, |w, (i, &x)| w | u64::from(x) << (8 * i)),
    }
}

/// The first up to 16 bytes of `b` as two words (zero-padded).
#[inline]
fn two_words(b: &[u8]) -> (u64, u64) {
    (word(b), word(b.get(8..).unwrap_or_default()))
}

/// What the network leaves alone in a segment, hashed (see the module documentation): the
/// IP identification, sequence and acknowledgement numbers, flags, window, payload length, the
/// first 16 bytes of the TCP options (timestamps included; none for a SYN) and of the payload.
#[inline]
fn fingerprint(seg: &Segment<'_>) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let options: &[u8] = if seg.flags.syn() { &[] } else { seg.options };
    let (o1, o2) = two_words(options);
    let (p1, p2) = two_words(seg.payload);
    let words = [
        u64::from(seg.seq) << 32 | u64::from(seg.ack),
        u64::from(seg.ip_id) << 32 | u64::from(seg.flags.0) << 16 | u64::from(seg.window),
        u64::from(seg.payload_len) ^ o1.rotate_left(32),
        o2,
        p1,
        p2,
    ];
    let mut h = 0u64;
    for w in words {
        h = (h.rotate_left(26) ^ w).wrapping_mul(K);
    }
    h ^ (h >> 29)
}
