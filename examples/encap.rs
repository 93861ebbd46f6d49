//! Wraps every IP packet of a capture in an encapsulation, as a tunnel's underlay or a mirror
//! shows it (for measuring what decapsulation costs on bench/run.sh's capture), or shows it on
//! both sides of a DNAT, as a Kubernetes node's `-i any` does:
//!
//! ```text
//! cargo run --release --example encap -- vxlan IN.pcap OUT.pcap
//! cargo run --release --example encap -- dnat=198.51.100.20:8080,10.96.0.10:80 IN.pcap OUT.pcap
//! ```
//!
//! Encapsulations: vxlan, geneve, gre, gre-key-seq, gre-in-udp, erspan2, erspan3, ipip,
//! ip-in-ipv6, mpls, pppoe. `dnat=SERVER,SERVICE`: every packet to or from SERVER (IPv4) twice,
//! as sent to SERVICE (before the DNAT) and as delivered (after it), 10 us apart. Packets that
//! are not IP are written as they were (as Ethernet).

use std::fs::File;
use std::io::BufWriter;

use std::net::SocketAddr;

use tcprace::capture::{FileSource, Next, PacketSource};
use tcprace::synth::{
    Encap, Link, Nat, PcapOptions, PcapWriter, encapsulate, ethernet_frame, ip_offset,
};
use tcprace::time::Timestamp;

fn encapsulation(name: &str) -> Option<Vec<Encap>> {
    let gre = |key: Option<u32>, seq: bool| Encap::Gre {
        key,
        seq,
        checksum: false,
        ethernet: false,
    };
    Some(vec![match name {
        "vxlan" => Encap::Vxlan {
            vni: 42,
            port: 4789,
        },
        "geneve" => Encap::Geneve {
            vni: 42,
            options: 2,
            ethernet: true,
        },
        "gre" => gre(None, false),
        "gre-key-seq" => gre(Some(42), true),
        "gre-in-udp" => Encap::GreInUdp,
        "erspan2" => Encap::Erspan2 { session: 42 },
        "erspan3" => Encap::Erspan3 {
            session: 42,
            subheader: false,
        },
        "ipip" => Encap::IpInIp4,
        "ip-in-ipv6" => Encap::IpInIp6,
        "mpls" => Encap::Mpls { labels: 2 },
        "pppoe" => Encap::Pppoe { session: 42 },
        _ => return None,
    }])
}

/// `dnat=SERVER,SERVICE`: the NAT that makes SERVICE's traffic SERVER's.
fn dnat(kind: &str) -> Option<Nat> {
    let (server, service) = kind.strip_prefix("dnat=")?.split_once(',')?;
    let (server, service): (SocketAddr, SocketAddr) = (server.parse().ok()?, service.parse().ok()?);
    Some(Nat {
        from: server.ip(),
        to: service.ip(),
        port: Some((server.port(), service.port())),
    })
}

/// A frame's copies: the frame itself, or both sides of the NAT (the one before the
/// translation first).
fn frames(
    layers: &[Encap],
    nat: Option<Nat>,
    ip: &[u8],
    wire: usize,
) -> Vec<(i64, Vec<u8>, usize)> {
    let Some((copy, to_service)) = nat.and_then(|n| n.translate(ip, wire)) else {
        let (f, w) = encapsulate(layers, ip, wire);
        return vec![(0, f, w)];
    };
    let (plain, w) = encapsulate(&[], ip, wire);
    let (translated, _) = encapsulate(&[], &copy, wire);
    let (first, second) = if to_service {
        (translated, plain)
    } else {
        (plain, translated)
    };
    vec![(0, first, w), (10_000, second, w)]
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, input, output] = args.as_slice() else {
        return Err("usage: encap KIND IN.pcap OUT.pcap".into());
    };
    let nat = dnat(kind);
    let layers = match nat {
        Some(_) => Vec::new(),
        None => encapsulation(kind).ok_or_else(|| format!("unknown encapsulation {kind}"))?,
    };
    let mut src = FileSource::open(std::slice::from_ref(input)).map_err(|e| e.to_string())?;
    let out = File::create(output).map_err(|e| format!("{output}: {e}"))?;
    let opts = PcapOptions::for_link(Link::Ethernet).nanos(true);
    let mut w = PcapWriter::with_options(BufWriter::new(out), opts).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    loop {
        let p = match src.next().map_err(|e| e.to_string())? {
            Next::End => break,
            Next::Packet(p) => p,
            _ => continue,
        };
        let out = match ip_offset(p.linktype, p.data) {
            Some(off) => frames(&layers, nat, &p.data[off..], p.orig_len as usize - off),
            None => match ethernet_frame(p.linktype, p.data) {
                Some((f, grew)) => vec![(0, f, (p.orig_len as isize + grew) as usize)],
                None => continue,
            },
        };
        for (after_ns, frame, wire) in out {
            let ts = Timestamp::from_nanos(p.ts.nanos() + after_ns);
            w.write_frame_len(ts, &frame, wire)
                .map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    w.finish().map_err(|e| e.to_string())?;
    eprintln!("{kind}: {n} packets -> {output}");
    Ok(())
}
