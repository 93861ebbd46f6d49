//! Writes the fuzz targets' seed corpus (`fuzz/corpus/TARGET/`) from the fixtures' captures:
//!
//! ```text
//! cargo run --example mkseeds --features fuzzing [-- OUT_DIR]
//! ```
//!
//! - `capture`: every capture file of `fixtures/scenarios` and `fixtures/tls` as it is;
//! - `decode`: each distinct packet, with its link type ([`tcprace::fuzzing::encode_packet`]);
//! - `streams`: each connection's payloads and ends ([`tcprace::fuzzing::seed_streams`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tcprace::capture::{FileSource, Next, PacketSource};
use tcprace::fuzzing::{encode_packet, seed_streams};

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".gz")
    });
    v.sort();
    v
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::args()
        .nth(1)
        .map_or_else(|| root.join("fuzz/corpus"), PathBuf::from);
    for t in ["capture", "decode", "streams"] {
        std::fs::create_dir_all(out.join(t))?;
    }
    let mut packets_seen = BTreeSet::new();
    let (mut files, mut packets, mut streams) = (0, 0, 0);
    for dir in ["fixtures/scenarios", "fixtures/tls"] {
        for path in captures(&root.join(dir)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(&path, out.join("capture").join(&name))?;
            files += 1;
            let Ok(mut src) = FileSource::open(&[path.to_string_lossy().into_owned()]) else {
                continue;
            };
            let mut all = Vec::new();
            while let Ok(next) = src.next() {
                match next {
                    Next::Packet(p) => all.push((p.linktype, p.data.to_vec())),
                    Next::End => break,
                    _ => {}
                }
            }
            for (lt, data) in &all {
                let seed = encode_packet(*lt, data);
                if packets_seen.insert(seed.clone()) {
                    packets += 1;
                    std::fs::write(out.join("decode").join(format!("{name}-{packets}")), seed)?;
                }
            }
            for (n, s) in seed_streams(&all).into_iter().enumerate() {
                streams += 1;
                std::fs::write(out.join("streams").join(format!("{name}-{n}")), s)?;
            }
        }
    }
    println!(
        "{}: {files} capture files, {packets} packets, {streams} connections",
        out.display()
    );
    Ok(())
}
