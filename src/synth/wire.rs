//! A simulated conversation as captured packets: IP datagrams at their capture times.

use super::conv::Conversation;
use super::segment::{Flags, SegId};
use super::{Packet, PacketDirection, PacketTag};
use etherparse::{IpNumber, Ipv4Header, Ipv6Header, TcpHeader, TcpOptionElement};
use std::net::IpAddr;

impl Conversation {
    /// Build the IP datagram (IP + TCP headers + payload) of a segment.
    pub fn datagram(&self, id: SegId) -> Vec<u8> {
        let s = &self.segs[id.0];
        let src = &self.ends[s.from.idx()];
        let dst = &self.ends[s.from.peer().idx()];
        let mut tcp = TcpHeader::new(src.addr.port(), dst.addr.port(), s.seq, s.window);
        tcp.fin = s.flags.contains(Flags::FIN);
        tcp.syn = s.flags.contains(Flags::SYN);
        tcp.rst = s.flags.contains(Flags::RST);
        tcp.psh = s.flags.contains(Flags::PSH);
        tcp.ack = s.ack.is_some();
        tcp.acknowledgment_number = s.ack.unwrap_or(0);
        if s.syn_options {
            tcp.set_options(&[
                TcpOptionElement::MaximumSegmentSize(self.cfg.mss),
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::SelectiveAcknowledgementPermitted,
            ])
            .expect("tcp options fit");
        }
        let mut out = Vec::with_capacity(60 + tcp.header_len() + s.payload.len());
        match (src.addr.ip(), dst.addr.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mut ip = Ipv4Header::new(
                    (tcp.header_len() + s.payload.len()) as u16,
                    self.cfg.ttl,
                    IpNumber::TCP,
                    a.octets(),
                    b.octets(),
                )
                .expect("payload fits in IPv4");
                ip.identification = s.ip_id;
                tcp.checksum = tcp
                    .calc_checksum_ipv4(&ip, &s.payload)
                    .expect("payload fits");
                ip.header_checksum = ip.calc_header_checksum();
                ip.write(&mut out).expect("vec write");
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let ip = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Default::default(),
                    payload_length: (tcp.header_len() + s.payload.len()) as u16,
                    next_header: IpNumber::TCP,
                    hop_limit: self.cfg.ttl,
                    source: a.octets(),
                    destination: b.octets(),
                };
                tcp.checksum = tcp
                    .calc_checksum_ipv6(&ip, &s.payload)
                    .expect("payload fits");
                ip.write(&mut out).expect("vec write");
            }
            _ => unreachable!("mixed IP versions are rejected by ConvConfig::new"),
        }
        tcp.write(&mut out).expect("vec write");
        out.extend_from_slice(&s.payload);
        out
    }

    /// The captured packets, sorted (stably) by capture time. Does not deliver what is still
    /// in flight: call [`settle`](Self::settle) first if automatic ACKs should go out.
    pub fn packets(&self) -> Vec<Packet> {
        let vantage = self.cfg.vantage.side();
        let mut out: Vec<Packet> = (0..self.segs.len())
            .filter_map(|i| {
                let id = SegId(i);
                let ts = self.capture_time(id)?;
                let s = &self.segs[i];
                let direction = match vantage {
                    Some(v) if v == s.from => PacketDirection::Outgoing,
                    Some(_) => PacketDirection::Incoming,
                    None => PacketDirection::Unknown,
                };
                Some(Packet {
                    ts,
                    ip: self.datagram(id),
                    ipv6: self.cfg.client.is_ipv6(),
                    src_mac: self.ends[s.from.idx()].mac,
                    dst_mac: self.ends[s.from.peer().idx()].mac,
                    direction,
                    tag: PacketTag {
                        conv: self.cfg.id,
                        seg: id,
                    },
                })
            })
            .collect();
        out.sort_by_key(|p| p.ts);
        out
    }
}
