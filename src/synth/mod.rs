//! Synthetic captures for tests, fixtures and benchmarks: a small pcap writer and a TCP
//! conversation simulator (both endpoints' sequence state, one-way delay, capture vantage point).
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use tcprace::synth::{ConvConfig, Conversation, Link, PcapOptions, PcapWriter, Side, Vantage};
//! use tcprace::time::Timestamp;
//!
//! let cfg = ConvConfig::new(
//!     "192.0.2.10:40000".parse::<SocketAddr>().unwrap(),
//!     "198.51.100.20:8080".parse::<SocketAddr>().unwrap(),
//! )
//! .delay(Duration::from_millis(10))
//! .vantage(Vantage::Client);
//! let mut c = Conversation::new(cfg);
//! let t0 = Timestamp::from_secs_nanos(1_767_225_600, 0);
//! let t = c.handshake(t0);
//! c.send(Side::Client, t, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
//! let mut w = PcapWriter::with_options(Vec::new(), PcapOptions::for_link(Link::Ethernet)).unwrap();
//! w.write_packets(Link::Ethernet, &c.packets()).unwrap();
//! assert_eq!(w.frames(), 4);
//! ```
//!
//! Nothing here depends on the analysis modules.

mod config;
mod conv;
mod encap;
pub mod h2;
pub mod hostile;
mod pcap;
mod segment;
mod wire;

pub use config::ConvConfig;
pub use conv::Conversation;
pub use encap::{Encap, Nat, encapsulate, ethernet_frame, ip_offset};
pub use pcap::{
    DEFAULT_SNAPLEN, FrameMap, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW, Link, MAGIC_MICROS, MAGIC_NANOS, PcapOptions, PcapWriter,
};
pub use segment::{Flags, RstReplyForm, SegId, Segment, Side, Vantage, seq_add};

use crate::time::Timestamp;

/// Direction of a captured packet relative to the capturing host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketDirection {
    /// Sent by the capturing host.
    Outgoing,
    /// Received by the capturing host.
    Incoming,
    /// Captured on the path (neither endpoint).
    Unknown,
}

/// Identifies where a packet came from: conversation id and segment index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketTag {
    pub conv: u32,
    pub seg: SegId,
}

/// A captured packet: capture timestamp, IP datagram bytes and what is needed to add a link
/// layer (see [`Link::encapsulate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub ts: Timestamp,
    /// IPv4 or IPv6 header, TCP header and payload.
    pub ip: Vec<u8>,
    pub ipv6: bool,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub direction: PacketDirection,
    pub tag: PacketTag,
}

/// Concatenate several conversations' packets and sort them by capture time. The sort is
/// stable: ties keep conversation order, then each conversation's own order.
pub fn merge(convs: impl IntoIterator<Item = Vec<Packet>>) -> Vec<Packet> {
    let mut all: Vec<Packet> = convs.into_iter().flatten().collect();
    all.sort_by_key(|p| p.ts);
    all
}

/// `t` plus `ms` milliseconds (fractional allowed), rounded to the nanosecond.
pub fn after_ms(t: Timestamp, ms: f64) -> Timestamp {
    t.add_secs(ms / 1000.0)
}

#[cfg(test)]
mod tests;
