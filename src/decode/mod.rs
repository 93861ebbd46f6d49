//! Decode stage: link layer -> IPv4/IPv6 -> TCP, laxly (what parsed is kept, what did not is a
//! named skip reason). No allocation on the hot path.
//!
//! CONTRACT: `decode(linktype, data, orig_len)` returns `Decoded::Tcp(Segment)` or
//! `Decoded::Skip(reason, detail)`. Link types: Ethernet (up to three 802.1Q/802.1ad tags),
//! Linux SLL and SLL2, raw IP (101, 228, 229), BSD loopback NULL (either byte order) and LOOP.
//! IPv4 (options) and IPv6 (extension headers, atomic fragments = fragment header with offset 0
//! and M=0). Non-atomic fragments -> `IpFragment`. Ethernet padding is trimmed by the IP length.
//! `payload_len` is the TCP payload length on the wire (from the IP length), which exceeds
//! `payload.len()` when the snaplen cut the packet.
//!
//! `link` strips the link layer, `ip` reads IPv4/IPv6 and `tcp` the TCP header.

mod ip;
mod link;
mod tcp;
#[cfg(test)]
mod tests;

use link::link_layer;
use std::net::SocketAddr;

/// TCP flags as on the wire (low 8 bits of the flags field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    #[cfg(test)]
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A decoded TCP segment (a view into the packet's bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Window-scale option shift, when present (only meaningful on SYN segments).
    pub wscale: Option<u8>,
    /// Captured payload bytes.
    pub payload: &'a [u8],
    /// Payload length on the wire; larger than `payload.len()` when the snaplen cut the packet.
    pub payload_len: u32,
}

/// Why a packet was not analysed. Counted per reason in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Link type we do not decode.
    UnsupportedLinkType,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    NonIp,
    /// IP but not TCP (UDP, ICMP, ...).
    NonTcp,
    /// A non-atomic IP fragment (not reassembled).
    IpFragment,
    /// Headers cut by the snaplen before the TCP header was complete.
    Truncated,
    /// Headers that do not parse (bad lengths, bad versions, ...).
    Malformed,
}

impl SkipReason {
    /// Stable snake_case name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::NonIp => "non_ip",
            SkipReason::NonTcp => "non_tcp",
            SkipReason::IpFragment => "ip_fragment",
            SkipReason::Truncated => "truncated_headers",
            SkipReason::Malformed => "malformed",
        }
    }
}

/// Result of decoding one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    /// Not analysed; the string says what was wrong when the reason is `Malformed`/`Truncated`
    /// or which link type was unsupported.
    Skip(SkipReason, Option<String>),
}

/// Decode one captured packet of the given LINKTYPE_.
///
/// `orig_len` is the length on the wire; values below `data.len()` are treated as `data.len()`.
/// Only skips with a detail allocate (a `String`); TCP segments never do.
pub fn decode(linktype: u32, data: &[u8], orig_len: u32) -> Decoded<'_> {
    // Bytes of this packet on the wire: never less than what was captured.
    let wire = (orig_len as usize).max(data.len());
    let (net, off) = match link_layer(linktype, data, wire) {
        Ok(x) => x,
        Err(skip) => return skip,
    };
    ip::decode_ip(net, &data[off..], wire - off)
}

/// A header of `need` bytes does not fit in the captured `have` bytes: `Truncated` when it would
/// have fit on the wire (the snaplen cut it), `Malformed` when the packet itself is too short.
fn short(what: &str, need: usize, have: usize, wire: usize) -> Decoded<'static> {
    if wire >= need {
        Decoded::Skip(
            SkipReason::Truncated,
            Some(format!(
                "{what} cut by the snaplen ({have} of {need} bytes captured)"
            )),
        )
    } else {
        Decoded::Skip(
            SkipReason::Malformed,
            Some(format!(
                "packet too short for the {what} ({wire} < {need} bytes)"
            )),
        )
    }
}

/// Headers that do not parse; `detail` says what was wrong.
fn malformed(detail: String) -> Decoded<'static> {
    Decoded::Skip(SkipReason::Malformed, Some(detail))
}
