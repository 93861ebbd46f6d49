//! IPv4 (with options) and IPv6 (with extension headers): the TCP segment inside, its addresses
//! and its length on the wire.

use super::link::Net;
use super::tcp::decode_tcp;
use super::{Decoded, Layer, SkipReason, malformed, short, tunnel};
use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6ExtensionsSlice, Ipv6HeaderSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `ip`: captured bytes from the IP header on; `wire`: bytes from the IP header on, on the wire.
#[inline]
pub(super) fn decode_ip<'a>(at: Layer<'_>, net: Net, ip: &'a [u8], wire: usize) -> Decoded<'a> {
    let net = match net {
        Net::ByVersion => match ip.first().map(|b| b >> 4) {
            None => return short("IP header", 1, 0, wire).into(),
            Some(4) => Net::V4,
            Some(6) => Net::V6,
            Some(v) => return malformed(format!("IP version {v}")),
        },
        n => n,
    };
    match net {
        Net::V6 => decode_ipv6(at, ip, wire),
        _ => decode_ipv4(at, ip, wire),
    }
}

fn decode_ipv4<'a>(at: Layer<'_>, ip: &'a [u8], wire: usize) -> Decoded<'a> {
    use etherparse::err::ipv4::HeaderSliceError;
    let h = match Ipv4HeaderSlice::from_slice(ip) {
        Ok(h) => h,
        Err(HeaderSliceError::Len(e)) => {
            return short("IPv4 header", e.required_len, ip.len(), wire).into();
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
    // Trim link-layer padding: only `total` bytes belong to the IP packet.
    let seg = &ip[hl..ip.len().min(total)];
    let src = IpAddr::V4(Ipv4Addr::from(h.source()));
    let dst = IpAddr::V4(Ipv4Addr::from(h.destination()));
    if h.protocol() != IpNumber::TCP {
        return tunnel::over_ip(at, h.protocol(), (src, dst), seg, total - hl);
    }
    decode_tcp(
        at,
        (src, dst),
        u32::from(h.identification()),
        seg,
        total - hl,
    )
}

fn decode_ipv6<'a>(at: Layer<'_>, ip: &'a [u8], wire: usize) -> Decoded<'a> {
    use etherparse::err::ipv6::HeaderSliceError;
    use etherparse::err::ipv6_exts::HeaderSliceError as ExtError;
    let h = match Ipv6HeaderSlice::from_slice(ip) {
        Ok(h) => h,
        Err(HeaderSliceError::Len(e)) => {
            return short("IPv6 header", e.required_len, ip.len(), wire).into();
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
    let src = IpAddr::V6(Ipv6Addr::from(h.source()));
    let dst = IpAddr::V6(Ipv6Addr::from(h.destination()));
    let seg_wire = plen - exts.slice().len();
    if next != IpNumber::TCP {
        return tunnel::over_ip(at, next, (src, dst), seg, seg_wire);
    }
    decode_tcp(at, (src, dst), h.flow_label().value(), seg, seg_wire)
}
