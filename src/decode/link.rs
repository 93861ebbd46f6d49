//! Link layers: which network protocol follows the link-layer header, and where.

use super::{Skip, SkipReason, short};
use crate::capture::linktype;

/// Network protocol announced by the link layer (or by a tunnel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Net {
    V4,
    V6,
    /// Raw IP: the version nibble decides.
    ByVersion,
    /// An MPLS label stack.
    Mpls,
    /// A PPPoE session header.
    Pppoe,
    /// An Ethernet frame (inside a tunnel).
    Ethernet,
}

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86dd;
pub(super) const ETHERTYPE_MPLS: u16 = 0x8847;
pub(super) const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
pub(super) const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// Transparent Ethernet bridging (an Ethernet frame inside GRE or Geneve).
pub(super) const ETHERTYPE_TEB: u16 = 0x6558;

pub(super) fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

/// The network protocol an ethertype announces, if it is one tcprace decodes.
pub(super) fn net_of_ethertype(et: u16) -> Option<Net> {
    match et {
        ETHERTYPE_IPV4 => Some(Net::V4),
        ETHERTYPE_IPV6 => Some(Net::V6),
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => Some(Net::Mpls),
        ETHERTYPE_PPPOE_SESSION => Some(Net::Pppoe),
        _ => None,
    }
}

fn by_ethertype(et: u16, off: usize) -> Result<(Net, usize), Skip> {
    match net_of_ethertype(et) {
        Some(net) => Ok((net, off)),
        None => Err(Skip(SkipReason::NonIp, None)),
    }
}

/// An Ethernet header with up to three stacked 802.1Q / 802.1ad / old-QinQ tags: what follows,
/// and where.
pub(super) fn ethernet(data: &[u8], wire: usize) -> Result<(Net, usize), Skip> {
    if data.len() < 14 {
        return Err(short("Ethernet header", 14, data.len(), wire));
    }
    let mut et = be16(data, 12);
    let mut off = 14;
    for _ in 0..3 {
        if !matches!(et, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        if data.len() < off + 4 {
            return Err(short("VLAN tag", off + 4, data.len(), wire));
        }
        et = be16(data, off + 2);
        off += 4;
    }
    by_ethertype(et, off)
}

/// BSD loopback address family values for IPv4 / IPv6 (IPv6 differs between the BSDs).
fn by_family(family: u32) -> Option<Net> {
    match family {
        2 => Some(Net::V4),
        24 | 28 | 30 => Some(Net::V6),
        _ => None,
    }
}

/// Strip the link-layer header: which network protocol follows, at which offset.
pub(super) fn link_layer(linktype: u32, data: &[u8], wire: usize) -> Result<(Net, usize), Skip> {
    match linktype {
        linktype::ETHERNET => ethernet(data, wire),
        linktype::LINUX_SLL => {
            if data.len() < 16 {
                return Err(short("Linux cooked header", 16, data.len(), wire));
            }
            by_ethertype(be16(data, 14), 16)
        }
        linktype::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(short("Linux cooked v2 header", 20, data.len(), wire));
            }
            by_ethertype(be16(data, 0), 20)
        }
        linktype::NULL | linktype::LOOP => {
            if data.len() < 4 {
                return Err(short("loopback header", 4, data.len(), wire));
            }
            let raw = [data[0], data[1], data[2], data[3]];
            let be = u32::from_be_bytes(raw);
            // NULL: host byte order of the capturing machine (either); LOOP: network order.
            let net = if linktype == linktype::LOOP {
                by_family(be)
            } else {
                by_family(u32::from_le_bytes(raw)).or_else(|| by_family(be))
            };
            match net {
                Some(net) => Ok((net, 4)),
                None => Err(Skip(SkipReason::NonIp, None)),
            }
        }
        linktype::RAW => Ok((Net::ByVersion, 0)),
        linktype::IPV4 => Ok((Net::V4, 0)),
        linktype::IPV6 => Ok((Net::V6, 0)),
        other => Err(Skip(
            SkipReason::UnsupportedLinkType,
            Some(format!("link type {other}")),
        )),
    }
}
