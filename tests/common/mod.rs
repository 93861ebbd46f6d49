//! Captures made from other captures, as the cloud and Kubernetes nodes show them: every packet
//! wrapped in a tunnel, or seen on both sides of a NAT.

#![allow(dead_code)] // each test crate uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tcprace::capture::{FileSource, Next, PacketSource};
use tcprace::synth::{
    Encap, Link, Nat, PcapOptions, PcapWriter, encapsulate, ethernet_frame, ip_offset,
};
use tcprace::time::Timestamp;

/// The repository's root: the tests run the binary there, with paths relative to it.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `tcprace` binary run in the repository's root, without standard input.
pub fn tcprace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcprace"))
        .current_dir(root())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tcprace")
}

/// A packet read from a capture.
pub struct Packet {
    pub ts: Timestamp,
    pub linktype: u32,
    pub data: Vec<u8>,
    pub orig_len: usize,
}

pub fn read(path: &Path) -> Vec<Packet> {
    let mut src = FileSource::open(&[path.to_string_lossy().into_owned()]).unwrap();
    let mut out = Vec::new();
    loop {
        match src.next().unwrap() {
            Next::End => break,
            Next::Packet(p) => out.push(Packet {
                ts: p.ts,
                linktype: p.linktype,
                data: p.data.to_vec(),
                orig_len: p.orig_len as usize,
            }),
            _ => {}
        }
    }
    out
}

/// Write Ethernet frames (captured bytes, length on the wire) in the order of their times
/// (stable: frames of one time keep their order).
pub fn write(path: &Path, mut frames: Vec<(Timestamp, Vec<u8>, usize)>) {
    frames.sort_by_key(|f| f.0);
    let file = std::fs::File::create(path).unwrap();
    let opts = PcapOptions::for_link(Link::Ethernet).nanos(true);
    let mut w = PcapWriter::with_options(std::io::BufWriter::new(file), opts).unwrap();
    for (ts, data, wire) in frames {
        w.write_frame_len(ts, &data, wire).unwrap();
    }
    w.finish().unwrap();
}

/// The IP packet of a captured frame: its captured bytes and its length on the wire.
fn ip_of(p: &Packet) -> Option<(&[u8], usize)> {
    let off = ip_offset(p.linktype, &p.data)?;
    Some((&p.data[off..], p.orig_len - off))
}

/// A frame that is not IP (ARP), kept as an Ethernet frame.
fn as_is(p: &Packet) -> (Timestamp, Vec<u8>, usize) {
    let (frame, grew) = ethernet_frame(p.linktype, &p.data).expect("a link type we convert");
    (p.ts, frame, (p.orig_len as isize + grew) as usize)
}

/// `src` with every IP packet wrapped in `layers` (innermost first).
pub fn encapsulated(src: &Path, dst: &Path, layers: &[Encap]) {
    let frames = read(src)
        .iter()
        .map(|p| match ip_of(p) {
            Some((ip, wire)) => {
                let (frame, wire) = encapsulate(layers, ip, wire);
                (p.ts, frame, wire)
            }
            None => as_is(p),
        })
        .collect();
    write(dst, frames);
}

/// `src` seen on both sides of `nat`: every TCP packet to or from the translated endpoint
/// twice, the copy before the translation first (at the packet's own time) and the other
/// `delay_ns` later (but not after the next packet: a reply cannot overtake what it answers);
/// optionally inside `layers` on the translated side.
pub fn nat_twins(src: &Path, dst: &Path, nat: Nat, delay_ns: i64, translated_layers: &[Encap]) {
    let packets = read(src);
    let mut frames = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let Some((ip, wire)) = ip_of(p) else {
            frames.push(as_is(p));
            continue;
        };
        let (plain, plain_wire) = encapsulate(&[], ip, wire);
        let Some((copy, addressed_to_translated)) = nat.translate(ip, wire) else {
            frames.push((p.ts, plain, plain_wire));
            continue;
        };
        let (other, other_wire) = encapsulate(translated_layers, &copy, wire);
        let next = packets.get(i + 1).map_or(i64::MAX, |n| n.ts.nanos());
        let later = Timestamp::from_nanos((p.ts.nanos() + delay_ns).min(next.max(p.ts.nanos())));
        let (first, second) = if addressed_to_translated {
            ((other, other_wire), (plain, plain_wire))
        } else {
            ((plain, plain_wire), (other, other_wire))
        };
        frames.push((p.ts, first.0, first.1));
        frames.push((later, second.0, second.1));
    }
    write(dst, frames);
}

/// Every encapsulation the simulator writes, and some nested ones.
pub fn encapsulations() -> Vec<(&'static str, Vec<Encap>)> {
    vec![
        (
            "vxlan",
            vec![Encap::Vxlan {
                vni: 42,
                port: 4789,
            }],
        ),
        ("vxlan-8472", vec![Encap::Vxlan { vni: 1, port: 8472 }]),
        (
            "geneve",
            vec![Encap::Geneve {
                vni: 7,
                options: 2,
                ethernet: true,
            }],
        ),
        (
            "geneve-ip",
            vec![Encap::Geneve {
                vni: 0,
                options: 0,
                ethernet: false,
            }],
        ),
        (
            "gre",
            vec![Encap::Gre {
                key: None,
                seq: false,
                checksum: false,
                ethernet: false,
            }],
        ),
        (
            "gre-keyed-sequenced-ethernet",
            vec![Encap::Gre {
                key: Some(100),
                seq: true,
                checksum: true,
                ethernet: true,
            }],
        ),
        ("gre-in-udp", vec![Encap::GreInUdp]),
        ("erspan2", vec![Encap::Erspan2 { session: 10 }]),
        (
            "erspan3",
            vec![Encap::Erspan3 {
                session: 11,
                subheader: true,
            }],
        ),
        ("ipip", vec![Encap::IpInIp4]),
        ("ip-in-ipv6", vec![Encap::IpInIp6]),
        ("mpls", vec![Encap::Mpls { labels: 2 }]),
        ("pppoe", vec![Encap::Pppoe { session: 3 }]),
        (
            "erspan2-vxlan",
            vec![
                Encap::Vxlan { vni: 5, port: 4789 },
                Encap::Erspan2 { session: 20 },
            ],
        ),
        (
            "mpls-in-gre",
            vec![
                Encap::Mpls { labels: 1 },
                Encap::Gre {
                    key: Some(1),
                    seq: false,
                    checksum: false,
                    ethernet: false,
                },
            ],
        ),
    ]
}
