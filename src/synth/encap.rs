//! Encapsulations and NAT views of captured IP packets: what a capture on a tunnel's underlay,
//! a mirror port or both sides of a NAT looks like.
//!
//! [`Encap`] layers wrap an IP packet into an Ethernet frame (innermost layer first): VXLAN,
//! Geneve, GRE (plain, keyed, sequenced, checksummed; IP or Ethernet inside), GRE-in-UDP,
//! ERSPAN types II and III, IP-in-IP over IPv4 or IPv6, MPLS label stacks and PPPoE sessions.
//! The outer addresses are two "nodes", chosen by the direction of the inner packet, so both
//! directions of a connection cross the tunnel between the same two hosts. [`Nat`] rewrites
//! one endpoint of a packet (with correct checksums) to make the other side of a NAT.

use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv6Header, TcpHeaderSlice, UdpHeader};
use std::net::{IpAddr, Ipv4Addr};

/// One encapsulation layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// VXLAN over UDP/IPv4 to `port` (4789 is IANA's).
    Vxlan { vni: u32, port: u16 },
    /// Geneve over UDP/IPv4 with `options` 4-byte words of options; an Ethernet frame inside,
    /// or the IP packet directly (as GCP sends).
    Geneve {
        vni: u32,
        options: u8,
        ethernet: bool,
    },
    /// GRE over IPv4.
    Gre {
        key: Option<u32>,
        seq: bool,
        checksum: bool,
        ethernet: bool,
    },
    /// GRE-in-UDP (RFC 8086) over IPv4, the IP packet inside.
    GreInUdp,
    /// ERSPAN type II (GRE with a sequence number) over IPv4.
    Erspan2 { session: u16 },
    /// ERSPAN type III over IPv4, with or without the platform subheader.
    Erspan3 { session: u16, subheader: bool },
    /// IP-in-IP with an outer IPv4 header (4in4 or 6in4).
    IpInIp4,
    /// IP-in-IP with an outer IPv6 header (4in6 or 6in6).
    IpInIp6,
    /// An MPLS stack of `labels` labels (the bottom one 1000).
    Mpls { labels: u8 },
    /// A PPPoE session.
    Pppoe { session: u16 },
}

/// What a payload is, for the header that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payload {
    Ipv4,
    Ipv6,
    Ethernet,
    Mpls,
    Pppoe,
}

impl Payload {
    fn ethertype(self) -> u16 {
        match self {
            Payload::Ipv4 => 0x0800,
            Payload::Ipv6 => 0x86dd,
            Payload::Ethernet => 0x6558,
            Payload::Mpls => 0x8847,
            Payload::Pppoe => 0x8864,
        }
    }
}

/// Bytes being wrapped: what was captured of them, how many were on the wire beyond that
/// (`cut`, the snaplen's share) and what they are.
struct Wrapping {
    bytes: Vec<u8>,
    cut: usize,
    kind: Payload,
    /// The inner packet went from the lower to the higher inner address.
    upward: bool,
}

impl Wrapping {
    fn wire_len(&self) -> usize {
        self.bytes.len() + self.cut
    }

    /// Put `header` in front.
    fn prepend(&mut self, header: &[u8], kind: Payload) {
        self.bytes.splice(0..0, header.iter().copied());
        self.kind = kind;
    }

    /// Make the payload an Ethernet frame, if it is not one yet.
    fn as_ethernet(&mut self) {
        if self.kind != Payload::Ethernet {
            let et = self.kind.ethertype();
            let mut h = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
            if !self.upward {
                h.swap(5, 11);
            }
            h.extend_from_slice(&et.to_be_bytes());
            self.prepend(&h, Payload::Ethernet);
        }
    }

    /// The outer node addresses for this direction.
    fn nodes_v4(&self) -> ([u8; 4], [u8; 4]) {
        let (a, b) = ([172, 31, 1, 10], [172, 31, 2, 20]);
        if self.upward { (a, b) } else { (b, a) }
    }

    fn nodes_v6(&self) -> ([u8; 16], [u8; 16]) {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = 1;
        let mut b = a;
        b[15] = 2;
        if self.upward { (a, b) } else { (b, a) }
    }

    /// An outer IPv4 header carrying `proto`.
    fn ipv4(&mut self, proto: IpNumber) {
        let (src, dst) = self.nodes_v4();
        let mut h = Ipv4Header::new(self.wire_len() as u16, 64, proto, src, dst)
            .expect("the payload fits in IPv4");
        h.identification = 0x4242;
        h.header_checksum = h.calc_header_checksum();
        self.prepend(&h.to_bytes(), Payload::Ipv4);
    }

    /// An outer UDP header (checksum 0, allowed over IPv4) to `port`, from a port that
    /// depends on the direction, then the IPv4 header.
    fn udp_v4(&mut self, port: u16) {
        let sport = if self.upward { 49_152 } else { 51_000 };
        let h = UdpHeader {
            source_port: sport,
            destination_port: port,
            length: (8 + self.wire_len()) as u16,
            checksum: 0,
        };
        self.prepend(&h.to_bytes(), self.kind);
        self.ipv4(IpNumber::UDP);
    }

    /// A GRE header with the given fields, carrying the current payload (or `proto`).
    fn gre(&mut self, proto: u16, key: Option<u32>, seq: Option<u32>, checksum: bool) {
        let mut flags = 0u16;
        let mut h = Vec::new();
        if checksum {
            flags |= 0x8000;
            h.extend_from_slice(&[0, 0, 0, 0]);
        }
        if let Some(k) = key {
            flags |= 0x2000;
            h.extend_from_slice(&k.to_be_bytes());
        }
        if let Some(s) = seq {
            flags |= 0x1000;
            h.extend_from_slice(&s.to_be_bytes());
        }
        let mut full = flags.to_be_bytes().to_vec();
        full.extend_from_slice(&proto.to_be_bytes());
        full.extend_from_slice(&h);
        self.prepend(&full, self.kind);
    }

    /// An outer IPv6 header (4in6, 6in6).
    fn ipv6_outer(&mut self) {
        let next = if self.kind == Payload::Ipv6 {
            IpNumber::IPV6
        } else {
            IpNumber::IPV4
        };
        let (source, destination) = self.nodes_v6();
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: self.wire_len() as u16,
            next_header: next,
            hop_limit: 64,
            source,
            destination,
        };
        self.prepend(&h.to_bytes(), Payload::Ipv6);
    }

    /// A stack of `labels` MPLS labels (the bottom one 1000).
    fn mpls(&mut self, labels: u8) {
        let mut h = Vec::new();
        for i in 0..labels.max(1) {
            let bottom = i + 1 == labels.max(1);
            let label = if bottom { 1000 } else { 16 + u32::from(i) };
            let entry = label << 12 | u32::from(bottom) << 8 | 64;
            h.extend_from_slice(&entry.to_be_bytes());
        }
        self.prepend(&h, Payload::Mpls);
    }

    /// A PPPoE session header and PPP's protocol field.
    fn pppoe(&mut self, session: u16) {
        let ppp: u16 = if self.kind == Payload::Ipv6 {
            0x0057
        } else {
            0x0021
        };
        let mut h = vec![0x11, 0];
        h.extend_from_slice(&session.to_be_bytes());
        h.extend_from_slice(&((self.wire_len() + 2) as u16).to_be_bytes());
        h.extend_from_slice(&ppp.to_be_bytes());
        self.prepend(&h, Payload::Pppoe);
    }

    fn wrap(&mut self, e: Encap) {
        match e {
            Encap::Vxlan { vni, port } => {
                self.as_ethernet();
                let mut h = vec![0x08, 0, 0, 0];
                h.extend_from_slice(&(vni << 8).to_be_bytes());
                self.prepend(&h, Payload::Ethernet);
                self.udp_v4(port);
            }
            Encap::Geneve {
                vni,
                options,
                ethernet,
            } => {
                if ethernet {
                    self.as_ethernet();
                }
                let mut h = vec![options & 0x3f, 0];
                h.extend_from_slice(&self.kind.ethertype().to_be_bytes());
                h.extend_from_slice(&(vni << 8).to_be_bytes());
                for _ in 0..options {
                    // an option (class 0x0102, type 0x80) without data
                    h.extend_from_slice(&[0x01, 0x02, 0x80, 0]);
                }
                self.prepend(&h, self.kind);
                self.udp_v4(6081);
            }
            Encap::Gre {
                key,
                seq,
                checksum,
                ethernet,
            } => {
                if ethernet {
                    self.as_ethernet();
                }
                self.gre(self.kind.ethertype(), key, seq.then_some(7), checksum);
                self.ipv4(IpNumber::GRE);
            }
            Encap::GreInUdp => {
                self.gre(self.kind.ethertype(), None, None, false);
                self.udp_v4(4754);
            }
            Encap::Erspan2 { session } => {
                self.as_ethernet();
                let mut h = vec![0x10, 0];
                h.extend_from_slice(&(session & 0x3ff).to_be_bytes());
                h.extend_from_slice(&[0, 0, 0, 1]);
                self.prepend(&h, Payload::Ethernet);
                self.gre(0x88be, None, Some(1), false);
                self.ipv4(IpNumber::GRE);
            }
            Encap::Erspan3 { session, subheader } => {
                self.as_ethernet();
                let mut h = vec![0x20, 0];
                h.extend_from_slice(&(session & 0x3ff).to_be_bytes());
                h.extend_from_slice(&[0, 0, 0x30, 0x39]); // timestamp
                h.extend_from_slice(&[0, 0, 0, u8::from(subheader)]); // frame type 0 (Ethernet)
                if subheader {
                    h.extend_from_slice(&[0; 8]);
                }
                self.prepend(&h, Payload::Ethernet);
                self.gre(0x22eb, None, Some(1), false);
                self.ipv4(IpNumber::GRE);
            }
            Encap::IpInIp4 => {
                let proto = if self.kind == Payload::Ipv6 {
                    IpNumber::IPV6
                } else {
                    IpNumber::IPV4
                };
                self.ipv4(proto);
            }
            Encap::IpInIp6 => self.ipv6_outer(),
            Encap::Mpls { labels } => self.mpls(labels),
            Encap::Pppoe { session } => self.pppoe(session),
        }
    }
}

/// Wrap an IP packet (`captured` bytes of it, `wire_len` on the wire) in `layers` (innermost
/// first) and an outer Ethernet header: the frame's captured bytes and its length on the wire.
pub fn encapsulate(layers: &[Encap], captured: &[u8], wire_len: usize) -> (Vec<u8>, usize) {
    let (ipv6, upward) = inner_direction(captured);
    let mut w = Wrapping {
        bytes: captured.to_vec(),
        cut: wire_len.saturating_sub(captured.len()),
        kind: if ipv6 { Payload::Ipv6 } else { Payload::Ipv4 },
        upward,
    };
    for &e in layers {
        w.wrap(e);
    }
    if w.kind != Payload::Ethernet {
        // the outer link: from node to node
        let et = w.kind.ethertype();
        let mut h = vec![0x02, 0, 0, 0, 0xbb, 0x02, 0x02, 0, 0, 0, 0xaa, 0x01];
        h.extend_from_slice(&et.to_be_bytes());
        w.prepend(&h, Payload::Ethernet);
    }
    let wire = w.wire_len();
    (w.bytes, wire)
}

/// The IP version of a packet and whether it goes from the lower address to the higher.
fn inner_direction(ip: &[u8]) -> (bool, bool) {
    match ip.first().map(|b| b >> 4) {
        Some(6) if ip.len() >= 40 => (true, ip[8..24] < ip[24..40]),
        _ if ip.len() >= 20 => (false, ip[12..16] < ip[16..20]),
        _ => (false, true),
    }
}

/// The IP packet of a captured frame of link type `linktype` (Ethernet, Linux SLL or SLL2,
/// raw IP): where it starts.
pub fn ip_offset(linktype: u32, frame: &[u8]) -> Option<usize> {
    let off = match linktype {
        super::LINKTYPE_ETHERNET => 14,
        super::LINKTYPE_LINUX_SLL => 16,
        super::LINKTYPE_LINUX_SLL2 => 20,
        super::LINKTYPE_RAW => 0,
        _ => return None,
    };
    (frame.len() > off).then_some(off)
}

/// A captured frame of link type `linktype` (Ethernet, Linux SLL or SLL2, raw IP) as an
/// Ethernet frame, and how many bytes longer it is than the original.
pub fn ethernet_frame(linktype: u32, frame: &[u8]) -> Option<(Vec<u8>, isize)> {
    let (ethertype, off) = match linktype {
        super::LINKTYPE_ETHERNET => return Some((frame.to_vec(), 0)),
        super::LINKTYPE_LINUX_SLL if frame.len() >= 16 => ([frame[14], frame[15]], 16),
        super::LINKTYPE_LINUX_SLL2 if frame.len() >= 20 => ([frame[0], frame[1]], 20),
        super::LINKTYPE_RAW => match frame.first().map(|b| b >> 4) {
            Some(6) => ([0x86, 0xdd], 0),
            _ => ([0x08, 0x00], 0),
        },
        _ => return None,
    };
    let mut out = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    out.extend_from_slice(&ethertype);
    out.extend_from_slice(&frame[off..]);
    Some((out, 14 - off as isize))
}

/// One endpoint of a connection as seen on the other side of a NAT: address `from` becomes
/// `to`; with `port`, only the endpoint with port `port.0`, which becomes `port.1` (a DNAT to a
/// service's target port); without, any port, kept (a masquerading SNAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nat {
    pub from: IpAddr,
    pub to: IpAddr,
    pub port: Option<(u16, u16)>,
}

impl Nat {
    fn matches(&self, ip: [u8; 4], port: u16, from: Ipv4Addr) -> bool {
        ip == from.octets() && self.port.is_none_or(|(p, _)| p == port)
    }

    fn new_port(&self, port: u16) -> u16 {
        self.port.map_or(port, |(_, p)| p)
    }

    /// The IPv4 TCP packet with the `from` endpoint (as source or destination) rewritten,
    /// checksums updated (the TCP checksum only when the whole segment was captured); `None`
    /// when the packet does not involve it. The second value says whether the packet was
    /// addressed to `from` (its translated copy is then the one captured first: before the
    /// translation).
    pub fn translate(&self, ip: &[u8], wire_len: usize) -> Option<(Vec<u8>, bool)> {
        let (IpAddr::V4(from), IpAddr::V4(to)) = (self.from, self.to) else {
            return None;
        };
        let h = Ipv4HeaderSlice::from_slice(ip).ok()?;
        if h.protocol() != IpNumber::TCP {
            return None;
        }
        let hl = h.slice().len();
        let t = TcpHeaderSlice::from_slice(&ip[hl..]).ok()?;
        let mut ip4 = h.to_header();
        let mut tcp = t.to_header();
        let to_from = self.matches(ip4.destination, tcp.destination_port, from);
        if to_from {
            ip4.destination = to.octets();
            tcp.destination_port = self.new_port(tcp.destination_port);
        } else if self.matches(ip4.source, tcp.source_port, from) {
            ip4.source = to.octets();
            tcp.source_port = self.new_port(tcp.source_port);
        } else {
            return None;
        }
        ip4.header_checksum = ip4.calc_header_checksum();
        let payload = &ip[hl + t.slice().len()..];
        if ip.len() == wire_len {
            tcp.checksum = tcp.calc_checksum_ipv4(&ip4, payload).ok()?;
        }
        let mut out = ip4.to_bytes().to_vec();
        out.extend_from_slice(&tcp.to_bytes());
        out.extend_from_slice(payload);
        Some((out, to_from))
    }
}
