//! Decode stage: link layer -> IPv4/IPv6 -> TCP, through tunnels, laxly (what parsed is kept,
//! what did not is a named skip reason). No allocation on the hot path.
//!
//! CONTRACT: [`Decoder::decode`]`(linktype, data, orig_len)` returns `Decoded::Tcp(Segment)` or
//! `Decoded::Skip(reason, detail)`. Link types: Ethernet (up to three 802.1Q/802.1ad tags),
//! Linux SLL and SLL2, raw IP (101, 228, 229), BSD loopback NULL (either byte order) and LOOP.
//! IPv4 (options) and IPv6 (extension headers, atomic fragments = fragment header with offset 0
//! and M=0). Non-atomic fragments -> `IpFragment`. Ethernet padding is trimmed by the IP length.
//! `payload_len` is the TCP payload length on the wire (from the IP length), which exceeds
//! `payload.len()` when the snaplen cut the packet.
//!
//! Tunnels are taken apart down to the TCP segment inside, at most [`MAX_TUNNEL_DEPTH`] layers
//! deep: VXLAN (UDP 4789 and Linux's default 8472, plus `vxlan_ports`), Geneve (UDP 6081, with
//! options; Ethernet or IP inside), GRE (checksum, key and sequence fields; Ethernet, IPv4,
//! IPv6 and MPLS inside), ERSPAN types I, II and III (in GRE), GRE-in-UDP (4754), IP-in-IP
//! (4in4, 6in4, 4in6, 6in6), MPLS label stacks (with or without a pseudowire control word) and
//! PPPoE sessions. The segment records the tunnel ([`Tunnel`]: the outermost layer with its
//! outer addresses, the innermost, how many) and the virtual network it was in (`vnet`: the
//! VNI of the innermost VXLAN or Geneve layer), which the flow stage keeps connections apart by.
//! A tunnel header that is cut or does not parse is a skip reason of its own
//! (`vxlan_truncated`, `gre_malformed`, `tunnel_too_deep`, ...), never an error. A plain
//! Ethernet/IP/TCP packet takes exactly the path it took before tunnels were decoded.
//!
//! `link` strips the link layer, `ip` reads IPv4/IPv6, `tcp` the TCP header and `tunnel` the
//! encapsulations.

mod ip;
mod link;
mod tcp;
#[cfg(test)]
mod tests;
mod tunnel;

use link::{Net, link_layer};
use std::net::{IpAddr, SocketAddr};

/// Encapsulation layers taken apart at most; a packet nested deeper is skipped
/// (`tunnel_too_deep`).
pub const MAX_TUNNEL_DEPTH: u8 = 4;

/// UDP destination ports decoded as VXLAN by default: IANA's 4789 and 8472, the Linux
/// kernel's default (used by Flannel and Cilium).
pub const DEFAULT_VXLAN_PORTS: [u16; 2] = [4789, 8472];

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

/// A kind of encapsulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    Gre,
    GreInUdp,
    Erspan1,
    Erspan2,
    Erspan3,
    IpInIp,
    Mpls,
    Pppoe,
}

impl TunnelKind {
    #[cfg(test)]
    pub const ALL: [TunnelKind; 10] = [
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::Gre,
        TunnelKind::GreInUdp,
        TunnelKind::Erspan1,
        TunnelKind::Erspan2,
        TunnelKind::Erspan3,
        TunnelKind::IpInIp,
        TunnelKind::Mpls,
        TunnelKind::Pppoe,
    ];

    /// Stable snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        self.names()[0]
    }

    /// What its `id` is.
    pub fn id_name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan | TunnelKind::Geneve => "VNI",
            TunnelKind::Gre | TunnelKind::GreInUdp => "key",
            TunnelKind::Erspan1 | TunnelKind::Erspan2 | TunnelKind::Erspan3 => "session",
            TunnelKind::IpInIp => "id",
            TunnelKind::Mpls => "label",
            TunnelKind::Pppoe => "session",
        }
    }

    /// As people write it.
    pub fn display_name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "VXLAN",
            TunnelKind::Geneve => "Geneve",
            TunnelKind::Gre => "GRE",
            TunnelKind::GreInUdp => "GRE-in-UDP",
            TunnelKind::Erspan1 => "ERSPAN type I",
            TunnelKind::Erspan2 => "ERSPAN type II",
            TunnelKind::Erspan3 => "ERSPAN type III",
            TunnelKind::IpInIp => "IP-in-IP",
            TunnelKind::Mpls => "MPLS",
            TunnelKind::Pppoe => "PPPoE",
        }
    }

    /// The kind's name, then the names of its skip reasons (truncated, malformed, unsupported).
    fn names(self) -> [&'static str; 4] {
        match self {
            TunnelKind::Vxlan => [
                "vxlan",
                "vxlan_truncated",
                "vxlan_malformed",
                "vxlan_unsupported",
            ],
            TunnelKind::Geneve => [
                "geneve",
                "geneve_truncated",
                "geneve_malformed",
                "geneve_unsupported",
            ],
            TunnelKind::Gre => ["gre", "gre_truncated", "gre_malformed", "gre_unsupported"],
            TunnelKind::GreInUdp => [
                "gre_in_udp",
                "gre_in_udp_truncated",
                "gre_in_udp_malformed",
                "gre_in_udp_unsupported",
            ],
            TunnelKind::Erspan1 => [
                "erspan1",
                "erspan1_truncated",
                "erspan1_malformed",
                "erspan1_unsupported",
            ],
            TunnelKind::Erspan2 => [
                "erspan2",
                "erspan2_truncated",
                "erspan2_malformed",
                "erspan2_unsupported",
            ],
            TunnelKind::Erspan3 => [
                "erspan3",
                "erspan3_truncated",
                "erspan3_malformed",
                "erspan3_unsupported",
            ],
            TunnelKind::IpInIp => [
                "ip_in_ip",
                "ip_in_ip_truncated",
                "ip_in_ip_malformed",
                "ip_in_ip_unsupported",
            ],
            TunnelKind::Mpls => [
                "mpls",
                "mpls_truncated",
                "mpls_malformed",
                "mpls_unsupported",
            ],
            TunnelKind::Pppoe => [
                "pppoe",
                "pppoe_truncated",
                "pppoe_malformed",
                "pppoe_unsupported",
            ],
        }
    }
}

/// One encapsulation layer: its kind, its identifier (VNI, GRE key, ERSPAN or PPPoE session,
/// MPLS label) and the outer IP addresses (none for MPLS and PPPoE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelLayer {
    pub kind: TunnelKind,
    pub id: Option<u32>,
    pub outer: Option<(IpAddr, IpAddr)>,
}

/// The encapsulation a segment was captured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// The outermost layer (what was on the wire where the capture was made).
    pub outer: TunnelLayer,
    /// The innermost layer's kind and id, when there were several.
    pub inner: Option<(TunnelKind, Option<u32>)>,
    /// Number of layers.
    pub layers: u8,
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
    /// The IPv4 identification, or the IPv6 flow label: the same in every capture of one
    /// packet, different (in most stacks) in a retransmission.
    pub ip_id: u32,
    /// The TCP options as on the wire (timestamps included).
    pub options: &'a [u8],
    /// The encapsulation the segment was captured in, if any.
    pub tunnel: Option<Tunnel>,
    /// The virtual network (VNI of the innermost VXLAN or Geneve layer) the segment was in:
    /// connections with the same addresses in different virtual networks are different.
    pub vnet: Option<u32>,
}

/// What went wrong with a tunnel header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelProblem {
    /// Cut by the snaplen.
    Truncated,
    /// Does not parse (bad version, flags or lengths, packet too short).
    Malformed,
    /// Parses, but carries what tcprace does not take apart (a GRE version or protocol, a
    /// payload after an MPLS stack that is not IP).
    Unsupported,
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
    /// A tunnel header that was cut, does not parse, or carries something else.
    Tunnel(TunnelKind, TunnelProblem),
    /// More than [`MAX_TUNNEL_DEPTH`] encapsulations.
    TunnelTooDeep,
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
            SkipReason::Tunnel(kind, problem) => {
                let names = kind.names();
                match problem {
                    TunnelProblem::Truncated => names[1],
                    TunnelProblem::Malformed => names[2],
                    TunnelProblem::Unsupported => names[3],
                }
            }
            SkipReason::TunnelTooDeep => "tunnel_too_deep",
        }
    }

    /// Headers that do not parse: the packet is reported in a warning as well.
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            SkipReason::Malformed | SkipReason::Tunnel(_, TunnelProblem::Malformed)
        )
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

/// Decodes packets; holds what the command line can change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoder {
    /// UDP destination ports decoded as VXLAN.
    vxlan_ports: Vec<u16>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(&[])
    }
}

impl Decoder {
    /// A decoder that also takes UDP ports `extra_vxlan_ports` for VXLAN (besides
    /// [`DEFAULT_VXLAN_PORTS`]).
    pub fn new(extra_vxlan_ports: &[u16]) -> Decoder {
        let mut vxlan_ports = DEFAULT_VXLAN_PORTS.to_vec();
        vxlan_ports.extend_from_slice(extra_vxlan_ports);
        vxlan_ports.sort_unstable();
        vxlan_ports.dedup();
        Decoder { vxlan_ports }
    }

    /// Decode one captured packet of the given LINKTYPE_.
    ///
    /// `orig_len` is the length on the wire; values below `data.len()` are treated as
    /// `data.len()`. Only skips with a detail allocate (a `String`); TCP segments never do.
    pub fn decode<'a>(&self, linktype: u32, data: &'a [u8], orig_len: u32) -> Decoded<'a> {
        // Bytes of this packet on the wire: never less than what was captured.
        let wire = (orig_len as usize).max(data.len());
        let (net, off) = match link_layer(linktype, data, wire) {
            Ok(x) => x,
            Err(skip) => return skip.into(),
        };
        let at = Layer {
            decoder: self,
            depth: 0,
            tunnel: None,
            vnet: None,
        };
        at.network(net, &data[off..], wire - off)
    }
}

/// Decode with the default settings.
#[cfg(test)]
pub fn decode(linktype: u32, data: &[u8], orig_len: u32) -> Decoded<'_> {
    Decoder::default().decode(linktype, data, orig_len)
}

/// Where the decoder is: its settings and the tunnel layers it is inside (recorded on the
/// segment found there).
#[derive(Clone, Copy)]
struct Layer<'d> {
    decoder: &'d Decoder,
    depth: u8,
    tunnel: Option<Tunnel>,
    /// The VNI of the innermost VXLAN or Geneve layer so far.
    vnet: Option<u32>,
}

impl Layer<'_> {
    /// One layer further in, inside `layer` (called from the outermost layer inwards).
    fn within(self, layer: TunnelLayer) -> Self {
        let tunnel = Some(match self.tunnel {
            None => Tunnel {
                outer: layer,
                inner: None,
                layers: 1,
            },
            Some(t) => Tunnel {
                inner: Some((layer.kind, layer.id)),
                layers: t.layers.saturating_add(1),
                ..t
            },
        });
        let vnet = match layer.kind {
            TunnelKind::Vxlan | TunnelKind::Geneve => layer.id,
            _ => self.vnet,
        };
        Layer {
            depth: self.depth + 1,
            tunnel,
            vnet,
            ..self
        }
    }

    /// Decode what the link layer (or a tunnel) announced as `net`; `data` is captured from
    /// its header on, `wire` the bytes from there on on the wire.
    #[inline]
    fn network<'a>(self, net: Net, data: &'a [u8], wire: usize) -> Decoded<'a> {
        match net {
            Net::V4 | Net::V6 | Net::ByVersion => ip::decode_ip(self, net, data, wire),
            other => tunnel::below_link(self, other, data, wire),
        }
    }

    fn is_vxlan_port(self, port: u16) -> bool {
        self.decoder.vxlan_ports.binary_search(&port).is_ok()
    }
}

/// A packet not analysed: why, and what was wrong (what `Decoded::Skip` holds).
#[derive(Debug)]
struct Skip(SkipReason, Option<String>);

impl From<Skip> for Decoded<'_> {
    fn from(s: Skip) -> Self {
        Decoded::Skip(s.0, s.1)
    }
}

/// A header of `need` bytes does not fit in the captured `have` bytes: `Truncated` when it would
/// have fit on the wire (the snaplen cut it), `Malformed` when the packet itself is too short.
fn short(what: &str, need: usize, have: usize, wire: usize) -> Skip {
    if wire >= need {
        Skip(
            SkipReason::Truncated,
            Some(format!(
                "{what} cut by the snaplen ({have} of {need} bytes captured)"
            )),
        )
    } else {
        Skip(
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
