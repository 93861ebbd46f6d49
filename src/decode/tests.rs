use super::*;
use crate::capture::linktype;
use etherparse::{PacketBuilder, TcpOptionElement};

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

#[test]
fn window_scale_is_read_on_syn_segments_only() {
    let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(77)
        .options(&[TcpOptionElement::Noop, TcpOptionElement::WindowScale(7)])
        .unwrap();
    let mut v = Vec::new();
    b.write(&mut v, PAYLOAD).unwrap();
    let s = tcp(dec(linktype::RAW, &v));
    assert_eq!((s.wscale, s.options.len()), (None, 4));
    assert_eq!(tcp(dec(linktype::RAW, &ipv4_tcp())).wscale, Some(7));
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

// ---- tunnels ----

use crate::synth::{Encap, encapsulate};

fn wrapped(layers: &[Encap], ip: &[u8]) -> Vec<u8> {
    encapsulate(layers, ip, ip.len()).0
}

fn vxlan(vni: u32) -> Encap {
    Encap::Vxlan { vni, port: 4789 }
}

/// Every encapsulation, as the simulator writes them.
fn every_encapsulation() -> Vec<(Encap, TunnelKind, Option<u32>)> {
    vec![
        (vxlan(42), TunnelKind::Vxlan, Some(42)),
        (
            Encap::Vxlan { vni: 1, port: 8472 },
            TunnelKind::Vxlan,
            Some(1),
        ),
        (
            Encap::Geneve {
                vni: 7,
                options: 3,
                ethernet: true,
            },
            TunnelKind::Geneve,
            Some(7),
        ),
        (
            Encap::Geneve {
                vni: 8,
                options: 0,
                ethernet: false,
            },
            TunnelKind::Geneve,
            Some(8),
        ),
        (
            Encap::Gre {
                key: None,
                seq: false,
                checksum: false,
                ethernet: false,
            },
            TunnelKind::Gre,
            None,
        ),
        (
            Encap::Gre {
                key: Some(99),
                seq: true,
                checksum: true,
                ethernet: true,
            },
            TunnelKind::Gre,
            Some(99),
        ),
        (Encap::GreInUdp, TunnelKind::GreInUdp, None),
        (
            Encap::Erspan2 { session: 300 },
            TunnelKind::Erspan2,
            Some(300),
        ),
        (
            Encap::Erspan3 {
                session: 5,
                subheader: true,
            },
            TunnelKind::Erspan3,
            Some(5),
        ),
        (
            Encap::Erspan3 {
                session: 6,
                subheader: false,
            },
            TunnelKind::Erspan3,
            Some(6),
        ),
        (Encap::IpInIp4, TunnelKind::IpInIp, None),
        (Encap::IpInIp6, TunnelKind::IpInIp, None),
        (Encap::Mpls { labels: 3 }, TunnelKind::Mpls, Some(1000)),
        (Encap::Pppoe { session: 17 }, TunnelKind::Pppoe, Some(17)),
    ]
}

#[test]
fn every_encapsulation_yields_the_inner_segment_and_its_tunnel() {
    for (e, kind, id) in every_encapsulation() {
        for (ip, check) in [
            (ipv4_tcp(), check_v4 as fn(&Segment<'_>)),
            (ipv6_tcp(), check_v6),
        ] {
            let frame = wrapped(&[e], &ip);
            let s = match dec(linktype::ETHERNET, &frame) {
                Decoded::Tcp(s) => s,
                other => panic!("{e:?}: {other:?}"),
            };
            check(&s);
            let t = s.tunnel.unwrap_or_else(|| panic!("{e:?}: no tunnel"));
            assert_eq!((t.outer.kind, t.outer.id, t.layers), (kind, id, 1), "{e:?}");
            assert_eq!(t.inner, None);
            let vnet = matches!(kind, TunnelKind::Vxlan | TunnelKind::Geneve).then_some(id);
            assert_eq!(s.vnet, vnet.flatten(), "{e:?}");
            // IP tunnels carry the outer addresses, MPLS and PPPoE none
            assert_eq!(
                t.outer.outer.is_some(),
                !matches!(kind, TunnelKind::Mpls | TunnelKind::Pppoe),
                "{e:?}"
            );
        }
    }
}

#[test]
fn tunnels_nest_to_a_bounded_depth() {
    // a mirror of an overlay: ERSPAN II carrying VXLAN, as arkime's sample
    let frame = wrapped(&[vxlan(5), Encap::Erspan2 { session: 20 }], &ipv4_tcp());
    let s = tcp(dec(linktype::ETHERNET, &frame));
    check_v4(&s);
    let t = s.tunnel.unwrap();
    assert_eq!((t.outer.kind, t.outer.id), (TunnelKind::Erspan2, Some(20)));
    assert_eq!(t.inner, Some((TunnelKind::Vxlan, Some(5))));
    assert_eq!((t.layers, s.vnet), (2, Some(5)));
    let four = [
        vxlan(1),
        Encap::IpInIp4,
        Encap::Mpls { labels: 1 },
        vxlan(2),
    ];
    let frame = wrapped(&four, &ipv4_tcp());
    let s = tcp(dec(linktype::ETHERNET, &frame));
    assert_eq!(s.tunnel.unwrap().layers, 4);
    // the innermost VNI names the virtual network
    assert_eq!(s.vnet, Some(1));
    let five = [four.as_slice(), &[Encap::GreInUdp]].concat();
    let (r, d) = skip(dec(linktype::ETHERNET, &wrapped(&five, &ipv4_tcp())));
    assert_eq!(r, SkipReason::TunnelTooDeep);
    assert_eq!(r.as_str(), "tunnel_too_deep");
    assert!(d.unwrap().contains("more than 4"));
}

#[test]
fn tunnel_headers_cut_by_the_snaplen_or_too_short() {
    let ip = ipv4_tcp();
    // Ethernet 14 + IPv4 20 + UDP 8 = 42: the VXLAN header starts there
    let frame = wrapped(&[vxlan(3)], &ip);
    let wire = frame.len() as u32;
    let (r, d) = skip(decode(linktype::ETHERNET, &frame[..46], wire));
    assert_eq!(
        r,
        SkipReason::Tunnel(TunnelKind::Vxlan, TunnelProblem::Truncated)
    );
    assert_eq!(r.as_str(), "vxlan_truncated");
    assert!(d.unwrap().contains("4 of 8 bytes captured"));
    // cut inside the inner TCP header: the inner header is what is truncated
    let (r, _) = skip(decode(linktype::ETHERNET, &frame[..frame.len() - 40], wire));
    assert_eq!(r, SkipReason::Truncated);
    // cut inside the payload: the segment is there, shorter
    let s = tcp(decode(linktype::ETHERNET, &frame[..frame.len() - 5], wire));
    assert_eq!(s.payload.len() + 5, PAYLOAD.len());
    assert_eq!(s.payload_len as usize, PAYLOAD.len());
    // the outer IP length leaves no room for the GRE header: malformed, with a warning
    let mut frame = wrapped(
        &[Encap::Gre {
            key: Some(1),
            seq: true,
            checksum: false,
            ethernet: false,
        }],
        &ip,
    );
    frame[16..18].copy_from_slice(&26u16.to_be_bytes()); // IPv4 total length: 20 + 6
    let (r, d) = skip(dec(linktype::ETHERNET, &frame));
    assert_eq!(
        r,
        SkipReason::Tunnel(TunnelKind::Gre, TunnelProblem::Malformed)
    );
    assert!(r.is_malformed());
    assert!(d.unwrap().contains("too short for the GRE header"));
}

#[test]
fn malformed_and_unsupported_tunnel_headers_are_named() {
    let ip = ipv4_tcp();
    // VXLAN without the I flag
    let mut f = wrapped(&[vxlan(3)], &ip);
    f[42] = 0;
    let (r, d) = skip(dec(linktype::ETHERNET, &f));
    assert_eq!(r.as_str(), "vxlan_malformed");
    assert!(d.unwrap().contains("without the I"));
    // GRE version 1 (PPTP)
    let gre = Encap::Gre {
        key: None,
        seq: false,
        checksum: false,
        ethernet: false,
    };
    let mut f = wrapped(&[gre], &ip);
    f[35] |= 1;
    let (r, d) = skip(dec(linktype::ETHERNET, &f));
    assert_eq!(r.as_str(), "gre_unsupported");
    assert_eq!(d.as_deref(), Some("GRE version 1"));
    assert!(!r.is_malformed());
    // GRE carrying an unknown protocol
    let mut f = wrapped(&[gre], &ip);
    f[36..38].copy_from_slice(&0x880bu16.to_be_bytes());
    assert_eq!(
        skip(dec(linktype::ETHERNET, &f)).0.as_str(),
        "gre_unsupported"
    );
    // ERSPAN type II with a wrong version
    let mut f = wrapped(&[Encap::Erspan2 { session: 1 }], &ip);
    f[42] = 0x20;
    assert_eq!(
        skip(dec(linktype::ETHERNET, &f)).0.as_str(),
        "erspan2_malformed"
    );
    // Geneve version 1
    let geneve = Encap::Geneve {
        vni: 1,
        options: 0,
        ethernet: true,
    };
    let mut f = wrapped(&[geneve], &ip);
    f[42] |= 0x40;
    assert_eq!(
        skip(dec(linktype::ETHERNET, &f)).0.as_str(),
        "geneve_unsupported"
    );
    // Geneve options longer than the packet
    let mut f = wrapped(&[geneve], &ip);
    f[42] = 0x3f;
    let (r, d) = skip(dec(linktype::ETHERNET, &f));
    assert_eq!(r.as_str(), "geneve_malformed");
    assert!(d.unwrap().contains("< 260 bytes"));
    // an MPLS stack without a bottom
    let mut stack: Vec<u8> = (0..9)
        .flat_map(|_| (16u32 << 12 | 64).to_be_bytes())
        .collect();
    stack.extend_from_slice(&ip);
    let f = eth(0x8847, &[], &stack);
    assert_eq!(
        skip(dec(linktype::ETHERNET, &f)).0.as_str(),
        "mpls_malformed"
    );
    // PPPoE discovery code in a session packet; PPP's LCP is not IP
    let mut f = wrapped(&[Encap::Pppoe { session: 1 }], &ip);
    f[15] = 0x09;
    assert_eq!(
        skip(dec(linktype::ETHERNET, &f)).0.as_str(),
        "pppoe_malformed"
    );
    let mut f = wrapped(&[Encap::Pppoe { session: 1 }], &ip);
    f[20..22].copy_from_slice(&0xc021u16.to_be_bytes());
    assert_eq!(skip(dec(linktype::ETHERNET, &f)).0, SkipReason::NonIp);
    // every reason has a name of its own
    let mut names: Vec<&str> = TunnelKind::ALL
        .iter()
        .flat_map(|&k| {
            [
                TunnelProblem::Truncated,
                TunnelProblem::Malformed,
                TunnelProblem::Unsupported,
            ]
            .map(|p| SkipReason::Tunnel(k, p).as_str())
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 3 * TunnelKind::ALL.len());
}

#[test]
fn vxlan_on_other_ports_and_mpls_pseudowires() {
    let ip = ipv4_tcp();
    let f = wrapped(&[Encap::Vxlan { vni: 9, port: 9999 }], &ip);
    assert_eq!(
        skip(dec(linktype::ETHERNET, &f)),
        (SkipReason::NonTcp, None)
    );
    let s = tcp(Decoder::new(&[9999]).decode(linktype::ETHERNET, &f, f.len() as u32));
    check_v4(&s);
    assert_eq!(s.vnet, Some(9));
    // a mirror that sends from 4789 to another port (arkime's ERSPAN sample)
    let mut f = wrapped(&[vxlan(9)], &ip);
    f[34..36].copy_from_slice(&4789u16.to_be_bytes());
    f[36..38].copy_from_slice(&4790u16.to_be_bytes());
    check_v4(&tcp(dec(linktype::ETHERNET, &f)));
    // MPLS carrying a pseudowire: control word, then an Ethernet frame
    let inner = eth(0x0800, &[0x8100], &ip);
    let mut f = eth(0x8847, &[], &[0x00, 0x3e, 0x81, 0x40, 0, 0, 0, 0]);
    f.extend_from_slice(&inner);
    let s = tcp(dec(linktype::ETHERNET, &f));
    check_v4(&s);
    assert_eq!(s.tunnel.unwrap().outer.id, Some(1000));
    // PPPoE with a compressed protocol field, over Linux SLL
    let mut f = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x88, 0x64];
    f.extend_from_slice(&[0x11, 0, 0, 5]);
    f.extend_from_slice(&((ip.len() + 1) as u16).to_be_bytes());
    f.push(0x21);
    f.extend_from_slice(&ip);
    check_v4(&tcp(dec(linktype::LINUX_SLL, &f)));
}

#[test]
fn a_plain_segment_records_its_ip_id_and_options() {
    let ip = ipv4_tcp();
    let s = tcp(dec(linktype::RAW, &ip));
    assert_eq!(s.tunnel, None);
    assert_eq!(s.vnet, None);
    assert_eq!(s.options, &[2, 4, 5, 180, 1, 3, 3, 7]);
    let mut ip = ipv4_tcp();
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    assert_eq!(tcp(dec(linktype::RAW, &ip)).ip_id, 0x1234);
    let mut ip = ipv6_tcp();
    ip[1..4].copy_from_slice(&[0x0a, 0xbc, 0xde]);
    assert_eq!(tcp(dec(linktype::RAW, &ip)).ip_id, 0xabcde);
}
