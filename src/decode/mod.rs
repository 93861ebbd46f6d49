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

use crate::capture::linktype;
use etherparse::{
    IpNumber, Ipv4HeaderSlice, Ipv6ExtensionsSlice, Ipv6HeaderSlice, TcpHeaderSlice,
    TcpOptionElement,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TCP flags as on the wire (low 8 bits of the flags field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
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
    decode_ip(net, &data[off..], wire - off)
}

/// Which of `shards` parts of a parallel analysis a packet belongs to: a hash of the unordered
/// pair of its IP addresses (the ones [`decode`] reports), so that both directions of every
/// connection between two hosts, and the retries of a request from one host to another, fall
/// into the same part. Packets without IP addresses go to part 0.
pub fn shard(linktype: u32, data: &[u8], shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let Ok((net, off)) = link_layer(linktype, data, data.len()) else {
        return 0;
    };
    let ip = &data[off..];
    let version = match net {
        Net::V4 => 4,
        Net::V6 => 6,
        Net::ByVersion => match ip.first() {
            Some(b) => b >> 4,
            None => return 0,
        },
    };
    let word = |at: usize, len: usize| {
        ip[at..at + len]
            .iter()
            .fold(0u128, |w, &b| (w << 8) | u128::from(b))
    };
    let (a, b) = match version {
        4 if ip.len() >= 20 => (word(12, 4), word(16, 4)),
        6 if ip.len() >= 40 => (word(8, 16), word(24, 16)),
        _ => return 0,
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = 0u64;
    for w in [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64] {
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    ((h >> 32) % shards as u64) as usize
}

/// Network protocol announced by the link layer.
#[derive(Clone, Copy)]
enum Net {
    V4,
    V6,
    /// Raw IP: the version nibble decides.
    ByVersion,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
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

fn malformed(detail: String) -> Decoded<'static> {
    Decoded::Skip(SkipReason::Malformed, Some(detail))
}

fn by_ethertype(et: u16, off: usize) -> Result<(Net, usize), Decoded<'static>> {
    match et {
        ETHERTYPE_IPV4 => Ok((Net::V4, off)),
        ETHERTYPE_IPV6 => Ok((Net::V6, off)),
        _ => Err(Decoded::Skip(SkipReason::NonIp, None)),
    }
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
fn link_layer(linktype: u32, data: &[u8], wire: usize) -> Result<(Net, usize), Decoded<'static>> {
    match linktype {
        linktype::ETHERNET => {
            if data.len() < 14 {
                return Err(short("Ethernet header", 14, data.len(), wire));
            }
            let mut et = be16(data, 12);
            let mut off = 14;
            // Up to three stacked 802.1Q / 802.1ad / old-QinQ tags.
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
                None => Err(Decoded::Skip(SkipReason::NonIp, None)),
            }
        }
        linktype::RAW => Ok((Net::ByVersion, 0)),
        linktype::IPV4 => Ok((Net::V4, 0)),
        linktype::IPV6 => Ok((Net::V6, 0)),
        other => Err(Decoded::Skip(
            SkipReason::UnsupportedLinkType,
            Some(format!("link type {other}")),
        )),
    }
}

/// `ip`: captured bytes from the IP header on; `wire`: bytes from the IP header on, on the wire.
fn decode_ip(net: Net, ip: &[u8], wire: usize) -> Decoded<'_> {
    let net = match net {
        Net::ByVersion => match ip.first().map(|b| b >> 4) {
            None => return short("IP header", 1, 0, wire),
            Some(4) => Net::V4,
            Some(6) => Net::V6,
            Some(v) => return malformed(format!("IP version {v}")),
        },
        n => n,
    };
    match net {
        Net::V6 => decode_ipv6(ip, wire),
        _ => decode_ipv4(ip, wire),
    }
}

fn decode_ipv4(ip: &[u8], wire: usize) -> Decoded<'_> {
    use etherparse::err::ipv4::HeaderSliceError;
    let h = match Ipv4HeaderSlice::from_slice(ip) {
        Ok(h) => h,
        Err(HeaderSliceError::Len(e)) => {
            return short("IPv4 header", e.required_len, ip.len(), wire);
        }
        Err(HeaderSliceError::Content(e)) => {
            use etherparse::err::ipv4::HeaderError;
            return malformed(match e {
                HeaderError::UnexpectedVersion { version_number } => {
                    format!("IP version {version_number} where IPv4 was expected")
                }
                HeaderError::HeaderLengthSmallerThanHeader { ihl } => {
                    format!("IPv4 header length {} < 20", u32::from(ihl) * 4)
                }
            });
        }
    };
    let hl = h.slice().len();
    let mut total = usize::from(h.total_len());
    if total == 0 {
        // Segmentation offload on the capturing host: the length is what was seen.
        total = wire;
    }
    if total < hl {
        return malformed(format!("IPv4 total length {total} < header length {hl}"));
    }
    if total > wire {
        return malformed(format!(
            "IPv4 total length {total} > {wire} bytes on the wire"
        ));
    }
    if h.is_fragmenting_payload() {
        return Decoded::Skip(SkipReason::IpFragment, None);
    }
    if h.protocol() != IpNumber::TCP {
        return Decoded::Skip(SkipReason::NonTcp, None);
    }
    // Trim link-layer padding: only `total` bytes belong to the IP packet.
    let seg = &ip[hl..ip.len().min(total)];
    let src = IpAddr::V4(Ipv4Addr::from(h.source()));
    let dst = IpAddr::V4(Ipv4Addr::from(h.destination()));
    decode_tcp(src, dst, seg, total - hl)
}

fn decode_ipv6(ip: &[u8], wire: usize) -> Decoded<'_> {
    use etherparse::err::ipv6::HeaderSliceError;
    use etherparse::err::ipv6_exts::HeaderSliceError as ExtError;
    let h = match Ipv6HeaderSlice::from_slice(ip) {
        Ok(h) => h,
        Err(HeaderSliceError::Len(e)) => {
            return short("IPv6 header", e.required_len, ip.len(), wire);
        }
        Err(HeaderSliceError::Content(e)) => {
            let etherparse::err::ipv6::HeaderError::UnexpectedVersion { version_number } = e;
            return malformed(format!(
                "IP version {version_number} where IPv6 was expected"
            ));
        }
    };
    const HL: usize = 40;
    let mut plen = usize::from(h.payload_length());
    if plen == 0 {
        // Jumbogram or segmentation offload: the length is what was seen.
        plen = wire - HL;
    }
    if HL + plen > wire {
        return malformed(format!(
            "IPv6 payload length {plen} > {} bytes on the wire",
            wire - HL
        ));
    }
    let payload = &ip[HL..ip.len().min(HL + plen)];
    let (exts, next, seg) = match Ipv6ExtensionsSlice::from_slice(h.next_header(), payload) {
        Ok(x) => x,
        Err(ExtError::Len(_)) if payload.len() < plen => {
            return Decoded::Skip(
                SkipReason::Truncated,
                Some("IPv6 extension headers cut by the snaplen".to_string()),
            );
        }
        Err(ExtError::Len(_)) => {
            return malformed(format!(
                "IPv6 extension headers longer than the payload length {plen}"
            ));
        }
        Err(ExtError::Content(e)) => {
            use etherparse::err::ipv6_exts::HeaderError;
            return malformed(match e {
                HeaderError::HopByHopNotAtStart => {
                    "IPv6 hop-by-hop header not directly after the IPv6 header".to_string()
                }
                HeaderError::IpAuth(_) => "bad IPv6 authentication header".to_string(),
            });
        }
    };
    // Atomic fragments (offset 0, M=0) are not fragmenting.
    if exts.is_fragmenting_payload() {
        return Decoded::Skip(SkipReason::IpFragment, None);
    }
    if next != IpNumber::TCP {
        return Decoded::Skip(SkipReason::NonTcp, None);
    }
    let src = IpAddr::V6(Ipv6Addr::from(h.source()));
    let dst = IpAddr::V6(Ipv6Addr::from(h.destination()));
    decode_tcp(src, dst, seg, plen - exts.slice().len())
}

/// `seg`: captured TCP bytes (padding already trimmed); `seg_wire`: TCP length from the IP header.
fn decode_tcp(src: IpAddr, dst: IpAddr, seg: &[u8], seg_wire: usize) -> Decoded<'_> {
    use etherparse::err::tcp::HeaderSliceError;
    let t = match TcpHeaderSlice::from_slice(seg) {
        Ok(t) => t,
        Err(HeaderSliceError::Len(e)) => {
            let need = e.required_len;
            return if seg_wire >= need {
                Decoded::Skip(
                    SkipReason::Truncated,
                    Some(format!(
                        "TCP header cut by the snaplen ({} of {need} bytes captured)",
                        seg.len()
                    )),
                )
            } else {
                malformed(format!(
                    "TCP header length {need} > TCP segment length {seg_wire} from the IP header"
                ))
            };
        }
        Err(HeaderSliceError::Content(e)) => {
            let etherparse::err::tcp::HeaderError::DataOffsetTooSmall { data_offset } = e;
            return malformed(format!("TCP data offset {data_offset} < 5"));
        }
    };
    let hl = t.slice().len();
    let mut wscale = None;
    for opt in t.options_iterator() {
        match opt {
            Ok(TcpOptionElement::WindowScale(s)) => {
                wscale = Some(s);
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Decoded::Tcp(Segment {
        src: SocketAddr::new(src, t.source_port()),
        dst: SocketAddr::new(dst, t.destination_port()),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        flags: TcpFlags(t.slice()[13]),
        window: t.window_size(),
        wscale,
        payload: &seg[hl..],
        payload_len: (seg_wire - hl) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

    /// Raw IPv4 + TCP (SYN with window scale 7) carrying `PAYLOAD`.
    fn ipv4_tcp() -> Vec<u8> {
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1000, 65535)
            .syn()
            .ack(77)
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap();
        let mut v = Vec::new();
        b.write(&mut v, PAYLOAD).unwrap();
        v
    }

    fn ipv6_tcp() -> Vec<u8> {
        let mut src = [0u8; 16];
        src[15] = 1;
        let mut dst = [0u8; 16];
        dst[15] = 2;
        let b = PacketBuilder::ipv6(src, dst, 64)
            .tcp(40000, 80, 5, 1024)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, PAYLOAD).unwrap();
        v
    }

    fn eth(ethertype: u16, tags: &[u16], ip: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        for t in tags {
            v.extend_from_slice(&t.to_be_bytes());
            v.extend_from_slice(&[0x00, 0x2a]); // TCI: VLAN 42
        }
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(ip);
        v
    }

    fn tcp(d: Decoded<'_>) -> Segment<'_> {
        match d {
            Decoded::Tcp(s) => s,
            other => panic!("expected TCP, got {other:?}"),
        }
    }

    fn check_v4(s: &Segment<'_>) {
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
        assert_eq!(s.seq, 1000);
        assert_eq!(s.ack, 77);
        assert!(s.flags.syn() && s.flags.ack() && !s.flags.fin() && !s.flags.rst());
        assert_eq!(s.window, 65535);
        assert_eq!(s.wscale, Some(7));
        assert_eq!(s.payload, PAYLOAD);
        assert_eq!(s.payload_len, PAYLOAD.len() as u32);
    }

    fn check_v6(s: &Segment<'_>) {
        assert_eq!(s.src, "[::1]:40000".parse().unwrap());
        assert_eq!(s.dst, "[::2]:80".parse().unwrap());
        assert_eq!(s.seq, 5);
        assert_eq!(s.flags.0, TcpFlags::PSH);
        assert_eq!(s.wscale, None);
        assert_eq!(s.payload, PAYLOAD);
        assert_eq!(s.payload_len, PAYLOAD.len() as u32);
    }

    fn dec(lt: u32, d: &[u8]) -> Decoded<'_> {
        decode(lt, d, d.len() as u32)
    }

    fn skip(d: Decoded<'_>) -> (SkipReason, Option<String>) {
        match d {
            Decoded::Skip(r, s) => (r, s),
            other => panic!("expected skip, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_ipv4_and_ipv6() {
        let p = eth(0x0800, &[], &ipv4_tcp());
        check_v4(&tcp(dec(linktype::ETHERNET, &p)));
        let p = eth(0x86dd, &[], &ipv6_tcp());
        check_v6(&tcp(dec(linktype::ETHERNET, &p)));
    }

    #[test]
    fn ethernet_vlan_one_two_three_tags() {
        for tags in [&[0x8100][..], &[0x88a8, 0x8100], &[0x9100, 0x88a8, 0x8100]] {
            let p = eth(0x0800, tags, &ipv4_tcp());
            check_v4(&tcp(dec(linktype::ETHERNET, &p)));
        }
        // A fourth tag is not followed.
        let p = eth(0x0800, &[0x8100, 0x8100, 0x8100, 0x8100], &ipv4_tcp());
        assert_eq!(skip(dec(linktype::ETHERNET, &p)).0, SkipReason::NonIp);
    }

    #[test]
    fn ethernet_padding_is_trimmed() {
        // A bare ACK (no payload) padded to the 60-byte Ethernet minimum.
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1, 2, 3, 4)
            .ack(9);
        let mut ip = Vec::new();
        b.write(&mut ip, &[]).unwrap();
        let mut p = eth(0x0800, &[], &ip);
        p.resize(60, 0xee);
        let s = tcp(dec(linktype::ETHERNET, &p));
        assert!(s.payload.is_empty());
        assert_eq!(s.payload_len, 0);
        // Same for IPv6 with a tiny payload and trailing garbage.
        let mut p = eth(0x86dd, &[], &ipv6_tcp());
        p.extend_from_slice(&[0xee; 7]);
        check_v6(&tcp(dec(linktype::ETHERNET, &p)));
    }

    #[test]
    fn linux_sll_and_sll2() {
        let mut p = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        p.extend_from_slice(&ipv4_tcp());
        check_v4(&tcp(dec(linktype::LINUX_SLL, &p)));
        let mut p = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        p.extend_from_slice(&ipv6_tcp());
        check_v6(&tcp(dec(linktype::LINUX_SLL2, &p)));
        // ARP over SLL2.
        let mut p = vec![
            0x08, 0x06, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        p.extend_from_slice(&[0; 28]);
        assert_eq!(skip(dec(linktype::LINUX_SLL2, &p)).0, SkipReason::NonIp);
    }

    #[test]
    fn raw_ip_link_types() {
        check_v4(&tcp(dec(linktype::RAW, &ipv4_tcp())));
        check_v6(&tcp(dec(linktype::RAW, &ipv6_tcp())));
        check_v4(&tcp(dec(linktype::IPV4, &ipv4_tcp())));
        check_v6(&tcp(dec(linktype::IPV6, &ipv6_tcp())));
        let (r, d) = skip(dec(linktype::RAW, &[0x50; 40]));
        assert_eq!(r, SkipReason::Malformed);
        assert_eq!(d.as_deref(), Some("IP version 5"));
        assert_eq!(
            skip(dec(linktype::IPV4, &ipv6_tcp())).0,
            SkipReason::Malformed
        );
    }

    #[test]
    fn null_and_loop() {
        for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut p = fam.to_vec();
            p.extend_from_slice(&ipv4_tcp());
            check_v4(&tcp(dec(linktype::NULL, &p)));
        }
        for f in [24u32, 28, 30] {
            for fam in [f.to_le_bytes(), f.to_be_bytes()] {
                let mut p = fam.to_vec();
                p.extend_from_slice(&ipv6_tcp());
                check_v6(&tcp(dec(linktype::NULL, &p)));
            }
        }
        let mut p = 2u32.to_be_bytes().to_vec();
        p.extend_from_slice(&ipv4_tcp());
        check_v4(&tcp(dec(linktype::LOOP, &p)));
        let mut p = 30u32.to_be_bytes().to_vec();
        p.extend_from_slice(&ipv6_tcp());
        check_v6(&tcp(dec(linktype::LOOP, &p)));
        // LOOP is network order only.
        let mut p = 2u32.to_le_bytes().to_vec();
        p.extend_from_slice(&ipv4_tcp());
        assert_eq!(skip(dec(linktype::LOOP, &p)).0, SkipReason::NonIp);
        // Unknown family.
        let mut p = 7u32.to_le_bytes().to_vec();
        p.extend_from_slice(&ipv4_tcp());
        assert_eq!(skip(dec(linktype::NULL, &p)).0, SkipReason::NonIp);
    }

    #[test]
    fn unsupported_link_type() {
        let (r, d) = skip(dec(105, &ipv4_tcp()));
        assert_eq!(r, SkipReason::UnsupportedLinkType);
        assert_eq!(d.as_deref(), Some("link type 105"));
    }

    #[test]
    fn ipv4_with_options() {
        let mut ip = ipv4_tcp();
        // Insert 8 bytes of options (NOP x3 + EOL, then padding) after the 20-byte header.
        ip.splice(20..20, [1, 1, 1, 0, 0, 0, 0, 0]);
        ip[0] = 0x47;
        let total = ip.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        check_v4(&tcp(dec(linktype::RAW, &ip)));
    }

    /// Insert IPv6 extension headers (each given with its next-header byte to be patched) between
    /// the fixed header and TCP.
    fn ipv6_with_exts(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut ip = ipv6_tcp();
        let mut hdrs = Vec::new();
        let mut first = 6u8; // TCP
        for (ty, body) in exts.iter().rev() {
            let mut b = body.clone();
            b[0] = first;
            first = *ty;
            hdrs.splice(0..0, b);
        }
        ip[6] = first;
        ip.splice(40..40, hdrs);
        let plen = (ip.len() - 40) as u16;
        ip[4..6].copy_from_slice(&plen.to_be_bytes());
        ip
    }

    fn frag_hdr(offset: u16, more: bool) -> Vec<u8> {
        let v = (offset << 3) | u16::from(more);
        let mut b = vec![0, 0];
        b.extend_from_slice(&v.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 1]);
        b
    }

    #[test]
    fn ipv6_extension_headers_and_atomic_fragment() {
        let hop = vec![0, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, PadN
        let dst = vec![0, 0, 1, 4, 0, 0, 0, 0]; // destination options
        let route = vec![0, 0, 0, 0, 0, 0, 0, 0]; // routing type 0, no segments left
        let ip = ipv6_with_exts(&[(0, hop), (43, route), (60, dst), (44, frag_hdr(0, false))]);
        check_v6(&tcp(dec(linktype::RAW, &ip)));
        let p = eth(0x86dd, &[], &ip);
        check_v6(&tcp(dec(linktype::ETHERNET, &p)));
    }

    #[test]
    fn non_atomic_fragments() {
        for (off, more) in [(0, true), (100, false), (100, true)] {
            let ip = ipv6_with_exts(&[(44, frag_hdr(off, more))]);
            assert_eq!(skip(dec(linktype::RAW, &ip)).0, SkipReason::IpFragment);
        }
        // IPv4: MF set, then offset set. MF=0 offset=0 with DF is a normal packet.
        let mut ip = ipv4_tcp();
        ip[6] = 0x20;
        assert_eq!(skip(dec(linktype::RAW, &ip)).0, SkipReason::IpFragment);
        ip[6] = 0x00;
        ip[7] = 0x10;
        assert_eq!(skip(dec(linktype::RAW, &ip)).0, SkipReason::IpFragment);
        ip[6] = 0x40;
        ip[7] = 0x00;
        check_v4(&tcp(dec(linktype::RAW, &ip)));
    }

    #[test]
    fn snaplen_cut_payload() {
        let ip = ipv4_tcp();
        let p = eth(0x0800, &[], &ip);
        let cut = &p[..p.len() - 5];
        let s = tcp(decode(linktype::ETHERNET, cut, p.len() as u32));
        assert_eq!(s.payload, &PAYLOAD[..PAYLOAD.len() - 5]);
        assert_eq!(s.payload_len, PAYLOAD.len() as u32);
        let p = eth(0x86dd, &[], &ipv6_tcp());
        let s = tcp(decode(
            linktype::ETHERNET,
            &p[..p.len() - 3],
            p.len() as u32,
        ));
        assert_eq!(s.payload.len(), PAYLOAD.len() - 3);
        assert_eq!(s.payload_len, PAYLOAD.len() as u32);
    }

    #[test]
    fn snaplen_cut_headers() {
        let p = eth(0x0800, &[], &ipv4_tcp());
        let wire = p.len() as u32;
        // Inside the TCP header (14 + 20 + 10).
        let (r, d) = skip(decode(linktype::ETHERNET, &p[..44], wire));
        assert_eq!(r, SkipReason::Truncated);
        assert!(d.unwrap().contains("TCP header"));
        // Inside the IP header, inside the Ethernet header.
        assert_eq!(
            skip(decode(linktype::ETHERNET, &p[..30], wire)).0,
            SkipReason::Truncated
        );
        assert_eq!(
            skip(decode(linktype::ETHERNET, &p[..10], wire)).0,
            SkipReason::Truncated
        );
        // IPv6 extension header cut.
        let ip = ipv6_with_exts(&[(60, vec![0, 0, 1, 4, 0, 0, 0, 0])]);
        let (r, _) = skip(decode(linktype::RAW, &ip[..44], ip.len() as u32));
        assert_eq!(r, SkipReason::Truncated);
    }

    #[test]
    fn non_tcp_and_arp() {
        let b = PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9).udp(53, 53);
        let mut ip = Vec::new();
        b.write(&mut ip, b"x").unwrap();
        assert_eq!(skip(dec(linktype::RAW, &ip)), (SkipReason::NonTcp, None));
        let mut src = [0u8; 16];
        src[0] = 0xfe;
        let b = PacketBuilder::ipv6(src, src, 9).icmpv6_echo_request(1, 2);
        let mut ip = Vec::new();
        b.write(&mut ip, b"x").unwrap();
        assert_eq!(skip(dec(linktype::RAW, &ip)), (SkipReason::NonTcp, None));
        let arp = eth(0x0806, &[], &[0; 28]);
        assert_eq!(
            skip(dec(linktype::ETHERNET, &arp)),
            (SkipReason::NonIp, None)
        );
        // 802.3 length field instead of an ethertype.
        let llc = eth(0x0026, &[], &[0; 38]);
        assert_eq!(skip(dec(linktype::ETHERNET, &llc)).0, SkipReason::NonIp);
    }

    #[test]
    fn malformed_lengths() {
        // IPv4 total length smaller than the header.
        let mut ip = ipv4_tcp();
        ip[0] = 0x46;
        ip[2..4].copy_from_slice(&20u16.to_be_bytes());
        let (r, d) = skip(dec(linktype::RAW, &ip));
        assert_eq!(r, SkipReason::Malformed);
        assert_eq!(
            d.as_deref(),
            Some("IPv4 total length 20 < header length 24")
        );
        // IPv4 total length beyond the packet on the wire.
        let mut ip = ipv4_tcp();
        ip[2..4].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(skip(dec(linktype::RAW, &ip)).0, SkipReason::Malformed);
        // IHL < 5.
        let mut ip = ipv4_tcp();
        ip[0] = 0x44;
        let (r, d) = skip(dec(linktype::RAW, &ip));
        assert_eq!(r, SkipReason::Malformed);
        assert_eq!(d.as_deref(), Some("IPv4 header length 16 < 20"));
        // TCP data offset < 5.
        let mut ip = ipv4_tcp();
        ip[20 + 12] = 0x40;
        let (r, d) = skip(dec(linktype::RAW, &ip));
        assert_eq!(r, SkipReason::Malformed);
        assert_eq!(d.as_deref(), Some("TCP data offset 4 < 5"));
        // TCP data offset beyond the IP payload (IP says only 20 + 20 bytes).
        let mut ip = ipv4_tcp();
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        let (r, d) = skip(dec(linktype::RAW, &ip));
        assert_eq!(r, SkipReason::Malformed, "{d:?}");
        // Packet shorter than an Ethernet header on the wire.
        assert_eq!(
            skip(dec(linktype::ETHERNET, &[0; 8])).0,
            SkipReason::Malformed
        );
        // IPv6 hop-by-hop not first.
        let hop = vec![0, 0, 1, 4, 0, 0, 0, 0];
        let ip = ipv6_with_exts(&[(60, vec![0, 0, 1, 4, 0, 0, 0, 0]), (0, hop)]);
        assert_eq!(skip(dec(linktype::RAW, &ip)).0, SkipReason::Malformed);
        // Empty raw packet.
        assert_eq!(skip(dec(linktype::RAW, &[])).0, SkipReason::Malformed);
    }

    #[test]
    fn zero_ip_length_uses_captured_length() {
        // TSO on the capturing host leaves the IPv4 total length 0.
        let mut ip = ipv4_tcp();
        ip[2..4].copy_from_slice(&0u16.to_be_bytes());
        check_v4(&tcp(dec(linktype::RAW, &ip)));
    }
}
