//! Encapsulations: what a tunnel header says is inside and where it starts, and the layer the
//! segment inside records. Every length is checked against what was captured (a header cut by
//! the snaplen is `<kind>_truncated`) and against the packet on the wire (`<kind>_malformed`).

use super::link::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, Net, be16};
use super::{Decoded, Layer, MAX_TUNNEL_DEPTH, SkipReason, TunnelKind, TunnelLayer, TunnelProblem};
use etherparse::IpNumber;
use std::net::IpAddr;

/// Geneve's UDP port (RFC 8926).
const GENEVE_PORT: u16 = 6081;
/// GRE-in-UDP's UDP port (RFC 8086).
const GRE_IN_UDP_PORT: u16 = 4754;
/// GRE protocol types of ERSPAN: types I and II share one (type II has the sequence bit set).
const GRE_ERSPAN_1_2: u16 = 0x88be;
const GRE_ERSPAN_3: u16 = 0x22eb;
/// Labels followed at most in one MPLS stack.
const MAX_MPLS_LABELS: usize = 8;

fn be24(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([0, d[at], d[at + 1], d[at + 2]])
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn problem(kind: TunnelKind, p: TunnelProblem, detail: String) -> Decoded<'static> {
    Decoded::Skip(SkipReason::Tunnel(kind, p), Some(detail))
}

/// A header of `need` bytes that does not fit in the `have` bytes captured.
fn cut(kind: TunnelKind, need: usize, have: usize, wire: usize) -> Decoded<'static> {
    let name = kind.display_name();
    if wire >= need {
        problem(
            kind,
            TunnelProblem::Truncated,
            format!("{name} header cut by the snaplen ({have} of {need} bytes captured)"),
        )
    } else {
        problem(
            kind,
            TunnelProblem::Malformed,
            format!("packet too short for the {name} header ({wire} < {need} bytes)"),
        )
    }
}

impl Layer<'_> {
    /// Decode what a tunnel layer carries (`net`, from `data` on) and record the layer on the
    /// segment found inside.
    fn inside<'a>(self, layer: TunnelLayer, net: Net, data: &'a [u8], wire: usize) -> Decoded<'a> {
        if self.depth >= MAX_TUNNEL_DEPTH {
            return Decoded::Skip(
                SkipReason::TunnelTooDeep,
                Some(format!(
                    "more than {MAX_TUNNEL_DEPTH} encapsulations (the next is {})",
                    layer.kind.display_name()
                )),
            );
        }
        self.within(layer).network(net, data, wire)
    }
}

/// What follows a link layer or a tunnel when it is not IP: an MPLS stack, a PPPoE session,
/// an Ethernet frame.
pub(super) fn below_link<'a>(at: Layer<'_>, net: Net, data: &'a [u8], wire: usize) -> Decoded<'a> {
    match net {
        Net::Mpls => mpls(at, data, wire),
        Net::Pppoe => pppoe(at, data, wire),
        Net::Ethernet => match link::ethernet(data, wire) {
            Ok((n, off)) => at.network(n, &data[off..], wire - off),
            Err(skip) => skip.into(),
        },
        Net::V4 | Net::V6 | Net::ByVersion => at.network(net, data, wire),
    }
}

/// An IP protocol other than TCP: IP-in-IP, GRE, UDP tunnels; anything else is not TCP.
/// `outer` are the IP addresses, `data` the IP payload (`wire` bytes of it on the wire).
pub(super) fn over_ip<'a>(
    at: Layer<'_>,
    proto: IpNumber,
    outer: (IpAddr, IpAddr),
    data: &'a [u8],
    wire: usize,
) -> Decoded<'a> {
    let ip_in_ip = |net| {
        let layer = TunnelLayer {
            kind: TunnelKind::IpInIp,
            id: None,
            outer: Some(outer),
        };
        at.inside(layer, net, data, wire)
    };
    match proto {
        IpNumber::IPV4 => ip_in_ip(Net::V4),
        IpNumber::IPV6 => ip_in_ip(Net::V6),
        IpNumber::GRE => gre(at, TunnelKind::Gre, outer, data, wire),
        IpNumber::UDP => udp(at, outer, data, wire),
        _ => Decoded::Skip(SkipReason::NonTcp, None),
    }
}

/// UDP: VXLAN, Geneve and GRE-in-UDP by destination port, else by source port (some mirrors
/// send from the tunnel's port to another); other UDP is not TCP.
fn udp<'a>(at: Layer<'_>, outer: (IpAddr, IpAddr), data: &'a [u8], wire: usize) -> Decoded<'a> {
    if data.len() < 8 {
        return Decoded::Skip(SkipReason::NonTcp, None);
    }
    let (body, wire) = (&data[8..], wire.saturating_sub(8));
    for port in [be16(data, 2), be16(data, 0)] {
        if at.is_vxlan_port(port) {
            return vxlan(at, outer, body, wire);
        } else if port == GENEVE_PORT {
            return geneve(at, outer, body, wire);
        } else if port == GRE_IN_UDP_PORT {
            return gre(at, TunnelKind::GreInUdp, outer, body, wire);
        }
    }
    Decoded::Skip(SkipReason::NonTcp, None)
}

/// VXLAN (RFC 7348): flags with the I bit, a 24-bit VNI, an Ethernet frame. Reserved bits are
/// ignored (some implementations use them).
fn vxlan<'a>(at: Layer<'_>, outer: (IpAddr, IpAddr), d: &'a [u8], wire: usize) -> Decoded<'a> {
    const KIND: TunnelKind = TunnelKind::Vxlan;
    if d.len() < 8 {
        return cut(KIND, 8, d.len(), wire);
    }
    if d[0] & 0x08 == 0 {
        return problem(
            KIND,
            TunnelProblem::Malformed,
            format!("VXLAN flags 0x{:02x} without the I (VNI valid) bit", d[0]),
        );
    }
    let layer = TunnelLayer {
        kind: KIND,
        id: Some(be24(d, 4)),
        outer: Some(outer),
    };
    at.inside(layer, Net::Ethernet, &d[8..], wire - 8)
}

/// Geneve (RFC 8926): version 0, options (skipped), a protocol type, a 24-bit VNI.
fn geneve<'a>(at: Layer<'_>, outer: (IpAddr, IpAddr), d: &'a [u8], wire: usize) -> Decoded<'a> {
    const KIND: TunnelKind = TunnelKind::Geneve;
    if d.len() < 8 {
        return cut(KIND, 8, d.len(), wire);
    }
    let version = d[0] >> 6;
    if version != 0 {
        return problem(
            KIND,
            TunnelProblem::Unsupported,
            format!("Geneve version {version}"),
        );
    }
    let hl = 8 + usize::from(d[0] & 0x3f) * 4;
    if d.len() < hl {
        return cut(KIND, hl, d.len(), wire);
    }
    let net = match be16(d, 2) {
        ETHERTYPE_TEB => Net::Ethernet,
        ETHERTYPE_IPV4 => Net::V4,
        ETHERTYPE_IPV6 => Net::V6,
        other => {
            return problem(
                KIND,
                TunnelProblem::Unsupported,
                format!("Geneve protocol type 0x{other:04x}"),
            );
        }
    };
    let layer = TunnelLayer {
        kind: KIND,
        id: Some(be24(d, 4)),
        outer: Some(outer),
    };
    at.inside(layer, net, &d[hl..], wire - hl)
}

/// GRE (RFC 2784/2890, version 0): optional checksum, key and sequence number; IPv4, IPv6,
/// Ethernet, MPLS or ERSPAN inside. `kind` is `Gre`, or `GreInUdp` for RFC 8086.
fn gre<'a>(
    at: Layer<'_>,
    kind: TunnelKind,
    outer: (IpAddr, IpAddr),
    d: &'a [u8],
    wire: usize,
) -> Decoded<'a> {
    if d.len() < 4 {
        return cut(kind, 4, d.len(), wire);
    }
    let flags = be16(d, 0);
    let (checksum, routing, has_key, has_seq) = (
        flags & 0x8000 != 0,
        flags & 0x4000 != 0,
        flags & 0x2000 != 0,
        flags & 0x1000 != 0,
    );
    let version = flags & 0x7;
    if version != 0 || routing {
        let what = if routing {
            "GRE source routing (RFC 1701)".to_string()
        } else {
            format!("GRE version {version}")
        };
        return problem(kind, TunnelProblem::Unsupported, what);
    }
    let key_at = 4 + 4 * usize::from(checksum);
    let hl = key_at + 4 * usize::from(has_key) + 4 * usize::from(has_seq);
    if d.len() < hl {
        return cut(kind, hl, d.len(), wire);
    }
    let (body, wire) = (&d[hl..], wire - hl);
    let layer = TunnelLayer {
        kind,
        id: has_key.then(|| be32(d, key_at)),
        outer: Some(outer),
    };
    let proto = be16(d, 2);
    match proto {
        GRE_ERSPAN_1_2 if has_seq => erspan2(at, outer, body, wire),
        GRE_ERSPAN_1_2 => {
            // type I: no ERSPAN header, the mirrored frame follows
            let layer = TunnelLayer {
                kind: TunnelKind::Erspan1,
                id: None,
                outer: Some(outer),
            };
            at.inside(layer, Net::Ethernet, body, wire)
        }
        GRE_ERSPAN_3 => erspan3(at, outer, body, wire),
        ETHERTYPE_TEB => at.inside(layer, Net::Ethernet, body, wire),
        other => match link::net_of_ethertype(other) {
            Some(net) => at.inside(layer, net, body, wire),
            None => problem(
                kind,
                TunnelProblem::Unsupported,
                format!("GRE protocol type 0x{other:04x}"),
            ),
        },
    }
}

/// ERSPAN type II: version 1, a 10-bit session id, then the mirrored Ethernet frame.
fn erspan2<'a>(at: Layer<'_>, outer: (IpAddr, IpAddr), d: &'a [u8], wire: usize) -> Decoded<'a> {
    const KIND: TunnelKind = TunnelKind::Erspan2;
    if d.len() < 8 {
        return cut(KIND, 8, d.len(), wire);
    }
    let version = d[0] >> 4;
    if version != 1 {
        return problem(
            KIND,
            TunnelProblem::Malformed,
            format!("ERSPAN version {version} where type II (version 1) was expected"),
        );
    }
    let layer = TunnelLayer {
        kind: KIND,
        id: Some(u32::from(be16(d, 2) & 0x03ff)),
        outer: Some(outer),
    };
    at.inside(layer, Net::Ethernet, &d[8..], wire - 8)
}

/// ERSPAN type III: version 2, a 10-bit session id, an optional 8-byte platform subheader,
/// then the mirrored Ethernet frame (frame type 0) or IP packet (frame type 2).
fn erspan3<'a>(at: Layer<'_>, outer: (IpAddr, IpAddr), d: &'a [u8], wire: usize) -> Decoded<'a> {
    const KIND: TunnelKind = TunnelKind::Erspan3;
    if d.len() < 12 {
        return cut(KIND, 12, d.len(), wire);
    }
    let version = d[0] >> 4;
    if version != 2 {
        return problem(
            KIND,
            TunnelProblem::Malformed,
            format!("ERSPAN version {version} where type III (version 2) was expected"),
        );
    }
    let hl = if d[11] & 0x01 != 0 { 20 } else { 12 };
    if d.len() < hl {
        return cut(KIND, hl, d.len(), wire);
    }
    let net = match (d[10] >> 2) & 0x1f {
        0 => Net::Ethernet,
        2 => Net::ByVersion,
        other => {
            return problem(
                KIND,
                TunnelProblem::Unsupported,
                format!("ERSPAN frame type {other}"),
            );
        }
    };
    let layer = TunnelLayer {
        kind: KIND,
        id: Some(u32::from(be16(d, 2) & 0x03ff)),
        outer: Some(outer),
    };
    at.inside(layer, net, &d[hl..], wire - hl)
}

/// An MPLS label stack (RFC 3032) down to the bottom-of-stack entry; then IPv4 or IPv6 (by the
/// version nibble) or a pseudowire control word and an Ethernet frame. The layer's id is the
/// bottom label.
fn mpls<'a>(at: Layer<'_>, d: &'a [u8], wire: usize) -> Decoded<'a> {
    const KIND: TunnelKind = TunnelKind::Mpls;
    let mut off = 0;
    let label = loop {
        if d.len() < off + 4 {
            return cut(KIND, off + 4, d.len(), wire);
        }
        let entry = be32(d, off);
        off += 4;
        if entry & 0x100 != 0 {
            break entry >> 12;
        }
        if off >= 4 * MAX_MPLS_LABELS {
            return problem(
                KIND,
                TunnelProblem::Malformed,
                format!("MPLS label stack without a bottom within {MAX_MPLS_LABELS} labels"),
            );
        }
    };
    let Some(&first) = d.get(off) else {
        return cut(KIND, off + 1, d.len(), wire);
    };
    let (net, skip) = match first >> 4 {
        4 => (Net::V4, 0),
        6 => (Net::V6, 0),
        // the pseudowire control word (RFC 4385), then an Ethernet frame (RFC 4448)
        0 => (Net::Ethernet, 4),
        other => {
            return problem(
                KIND,
                TunnelProblem::Unsupported,
                format!("MPLS payload starting with nibble {other} (neither IP nor Ethernet)"),
            );
        }
    };
    let hl = off + skip;
    if d.len() < hl {
        return cut(KIND, hl, d.len(), wire);
    }
    let layer = TunnelLayer {
        kind: KIND,
        id: Some(label),
        outer: None,
    };
    at.inside(layer, net, &d[hl..], wire - hl)
}

/// A PPPoE session (RFC 2516): version and type 1, code 0, the session id, the length, then
/// PPP's protocol field (compressed or not): IPv4 or IPv6; PPP's own control protocols are
/// not IP.
fn pppoe<'a>(at: Layer<'_>, d: &'a [u8], wire: usize) -> Decoded<'a> {
    const KIND: TunnelKind = TunnelKind::Pppoe;
    if d.len() < 7 {
        return cut(KIND, 7, d.len(), wire);
    }
    if d[0] != 0x11 || d[1] != 0 {
        return problem(
            KIND,
            TunnelProblem::Malformed,
            format!(
                "PPPoE version/type 0x{:02x}, code 0x{:02x} in a session packet",
                d[0], d[1]
            ),
        );
    }
    // protocol field compression: one byte when it is odd
    let (proto, hl) = if d[6] & 1 == 1 {
        (u16::from(d[6]), 7)
    } else if d.len() >= 8 {
        (be16(d, 6), 8)
    } else {
        return cut(KIND, 8, d.len(), wire);
    };
    let net = match proto {
        0x0021 => Net::V4,
        0x0057 => Net::V6,
        _ => return Decoded::Skip(SkipReason::NonIp, None),
    };
    // the PPPoE length counts the PPP protocol field and what follows
    let end = (6 + usize::from(be16(d, 4))).max(hl);
    let layer = TunnelLayer {
        kind: KIND,
        id: Some(u32::from(be16(d, 2))),
        outer: None,
    };
    let wire = wire.min(end) - hl;
    at.inside(layer, net, &d[hl..d.len().min(end)], wire)
}
