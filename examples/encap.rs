//! Wraps every IP packet of a capture in an encapsulation, as a tunnel's underlay or a mirror
//! shows it (for measuring what decapsulation costs on bench/run.sh's capture):
//!
//! ```text
//! cargo run --release --example encap -- vxlan IN.pcap OUT.pcap
//! ```
//!
//! Encapsulations: vxlan, geneve, gre, gre-key-seq, gre-in-udp, erspan2, erspan3, ipip,
//! ip-in-ipv6, mpls, pppoe. Packets that are not IP are written as they were (as Ethernet).

use std::fs::File;
use std::io::BufWriter;

use tcprace::capture::{FileSource, Next, PacketSource};
use tcprace::synth::{
    Encap, Link, PcapOptions, PcapWriter, encapsulate, ethernet_frame, ip_offset,
};

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

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, input, output] = args.as_slice() else {
        return Err("usage: encap KIND IN.pcap OUT.pcap".into());
    };
    let layers = encapsulation(kind).ok_or_else(|| format!("unknown encapsulation {kind}"))?;
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
        let (frame, wire) = match ip_offset(p.linktype, p.data) {
            Some(off) => encapsulate(&layers, &p.data[off..], p.orig_len as usize - off),
            None => match ethernet_frame(p.linktype, p.data) {
                Some((f, grew)) => (f, (p.orig_len as isize + grew) as usize),
                None => continue,
            },
        };
        w.write_frame_len(p.ts, &frame, wire)
            .map_err(|e| e.to_string())?;
        n += 1;
    }
    w.finish().map_err(|e| e.to_string())?;
    eprintln!("{n} packets wrapped in {kind} -> {output}");
    Ok(())
}
