//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`): each takes arbitrary
//! bytes and drives one part of the analysis with them. None may panic, hang or grow without
//! bound. Not a stable API.
//!
//! - [`analyse_capture`]: a whole capture file, through the driver loop, as the command line
//!   reads it.
//! - [`decode`]: one packet of every link type decoded.
//! - [`streams`]: the two byte streams of one connection, cut into segments with gaps,
//!   overlaps and ends, through the application stage: HTTP/1.x framing, or TLS records when
//!   the first bytes are a TLS handshake.
//! - [`h2`]: a connection's two byte streams as HTTP/2 (from the client's preface on).
//!
//! The inputs of [`decode`] and [`streams`] have a small format of their own ([`encode_packet`],
//! [`encode_steps`]) so that a seed corpus can be made from the fixtures (`mkseeds`).

use crate::app::{AppConn, Scratch};
use crate::capture::{FileSource, linktype};
use crate::engine::{Config, RunOptions, run};
use crate::flow::{ConnMeta, Dir, FlowEvent, FrameRef, HandshakeTimes, PerDir, SegMeta};
use crate::report::JsonRenderer;
use crate::time::Timestamp;
use std::io::Write;

/// The HTTP/2 analysis of a connection whose client sent `client` (from its preface on) and
/// whose server sent `server`, in segments of `segment` bytes; returns the number of messages
/// found.
pub fn h2(client: &[u8], server: &[u8], segment: usize) -> usize {
    crate::app::h2::fuzz_one(client, server, segment)
}

/// The link types [`decode`] picks from by its first byte.
pub const LINK_TYPES: [u32; 8] = [
    linktype::NULL,
    linktype::ETHERNET,
    linktype::RAW,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::IPV4,
    linktype::IPV6,
    linktype::LINUX_SLL2,
];

/// Analyse `bytes` as a capture file (pcap, pcapng, gzip) on `threads` threads, the report
/// rendered as JSON to nowhere. The file goes through a temporary file, as the command line
/// reads one.
pub fn analyse_capture(bytes: &[u8], threads: usize) {
    let path = std::env::temp_dir().join(format!(
        "tcprace-fuzz-{}-{:?}.pcap",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes));
    if written.is_ok()
        && let Ok(mut src) = FileSource::open(&[path.to_string_lossy().into_owned()])
    {
        let opts = RunOptions {
            config: Config::default(),
            threads,
            max_warnings: 0,
            record: None,
        };
        let mut out = JsonRenderer::new(std::io::sink());
        if let Ok(report) = run(&mut src, &opts, &mut out, &mut ()) {
            let _ = crate::report::Renderer::finish(&mut out, &report);
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Decode one packet: the first byte picks the link type ([`LINK_TYPES`]), the rest is the
/// packet.
pub fn decode(data: &[u8]) {
    let Some((&pick, packet)) = data.split_first() else {
        return;
    };
    let lt = LINK_TYPES[usize::from(pick) % LINK_TYPES.len()];
    let decoder = crate::decode::Decoder::default();
    // the wire length: as captured, or more (a snaplen cut)
    for orig in [packet.len() as u32, packet.len() as u32 + u32::from(pick)] {
        let _ = decoder.decode(lt, packet, orig);
    }
}

/// The input of [`decode`] for a packet of link type `lt`.
pub fn encode_packet(lt: u32, packet: &[u8]) -> Vec<u8> {
    let pick = LINK_TYPES.iter().position(|&l| l == lt).unwrap_or(1) as u8;
    let mut v = vec![pick];
    v.extend_from_slice(packet);
    v
}

/// One step on a connection's streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Bytes of a direction (`client`: the connection's first direction) at an offset relative
    /// to where the direction's stream is (negative: an overlap).
    Data {
        client: bool,
        skew: i8,
        bytes: Vec<u8>,
    },
    /// Bytes missing from the capture.
    Gap { client: bool, len: u16 },
    /// The direction ended (FIN).
    End { client: bool },
}

/// The input of [`streams`] for these steps: per step a tag byte (bit 0: client, bits 1-2:
/// data, gap or end), then for data a skew byte, a length byte and the bytes, for a gap two
/// length bytes.
pub fn encode_steps(steps: &[Step]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in steps {
        match s {
            Step::Data {
                client,
                skew,
                bytes,
            } => {
                for chunk in bytes.chunks(255) {
                    v.push(u8::from(*client));
                    v.push(*skew as u8);
                    v.push(chunk.len() as u8);
                    v.extend_from_slice(chunk);
                }
            }
            Step::Gap { client, len } => {
                v.push(2 | u8::from(*client));
                v.extend_from_slice(&len.to_le_bytes());
            }
            Step::End { client } => v.push(4 | u8::from(*client)),
        }
    }
    v
}

/// The steps an input of [`streams`] holds (what does not parse ends them).
pub fn decode_steps(mut data: &[u8]) -> Vec<Step> {
    let mut steps = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        let client = tag & 1 == 1;
        data = rest;
        match (tag >> 1) & 3 {
            0 => {
                let [skew, len, rest @ ..] = data else { break };
                let n = usize::from(*len).min(rest.len());
                steps.push(Step::Data {
                    client,
                    skew: *skew as i8,
                    bytes: rest[..n].to_vec(),
                });
                data = &rest[n..];
            }
            1 => {
                let [a, b, rest @ ..] = data else { break };
                steps.push(Step::Gap {
                    client,
                    len: u16::from_le_bytes([*a, *b]),
                });
                data = rest;
            }
            _ => steps.push(Step::End { client }),
        }
    }
    steps
}

/// Drive the application stage of one connection (known from its SYN) with the steps of
/// `data` ([`encode_steps`]), both directions, its messages dropped.
pub fn streams(data: &[u8]) {
    let conn = ConnMeta {
        id: 1,
        addrs: PerDir::new(
            "192.0.2.1:40000".parse().expect("address"),
            "198.51.100.1:80".parse().expect("address"),
        ),
        syn_client: Some(Dir::Fwd),
        from_syn: PerDir::new(true, true),
        handshake: HandshakeTimes::default(),
    };
    let mut app = AppConn::default();
    let mut scratch = Scratch::default();
    let mut pos = PerDir::new(0i64, 0i64);
    for (n, step) in decode_steps(data).into_iter().enumerate() {
        let meta = SegMeta {
            at: FrameRef {
                input: 0,
                frame: n as u64 + 1,
                ordinal: n as u64 + 1,
                ts: Timestamp::from_nanos(n as i64 * 1000),
            },
            ..SegMeta::default()
        };
        let dir_of = |client: bool| if client { Dir::Fwd } else { Dir::Rev };
        let ev = match &step {
            Step::Data {
                client,
                skew,
                bytes,
            } => {
                let dir = dir_of(*client);
                let off = (pos[dir] + i64::from(*skew)).max(0);
                pos[dir] = pos[dir].max(off + bytes.len() as i64);
                FlowEvent::Data {
                    dir,
                    off,
                    bytes,
                    meta,
                }
            }
            Step::Gap { client, len } => {
                let dir = dir_of(*client);
                let off = pos[dir];
                pos[dir] += i64::from(*len);
                FlowEvent::Gap {
                    dir,
                    off,
                    len: u64::from(*len),
                    meta,
                }
            }
            Step::End { client } => {
                let dir = dir_of(*client);
                FlowEvent::Eof {
                    dir,
                    off: pos[dir],
                    meta,
                }
            }
        };
        app.on_flow(&conn, &ev, &mut scratch, &mut |_| {});
    }
}

/// Seeds for [`streams`] from captured packets (link type and bytes, in capture order): per
/// connection, its payloads and FINs as steps (the direction of its first packet is the
/// client's).
pub fn seed_streams(packets: &[(u32, Vec<u8>)]) -> Vec<Vec<u8>> {
    use std::collections::BTreeMap;
    let mut conns: BTreeMap<(std::net::SocketAddr, std::net::SocketAddr), Vec<Step>> =
        BTreeMap::new();
    let decoder = crate::decode::Decoder::default();
    for (lt, data) in packets {
        let crate::decode::Decoded::Tcp(seg) = decoder.decode(*lt, data, data.len() as u32) else {
            continue;
        };
        let fwd = (seg.src, seg.dst);
        let key = if conns.contains_key(&(seg.dst, seg.src)) {
            (seg.dst, seg.src)
        } else {
            fwd
        };
        let client = key == fwd;
        let steps = conns.entry(key).or_default();
        if !seg.payload.is_empty() {
            steps.push(Step::Data {
                client,
                skew: 0,
                bytes: seg.payload.to_vec(),
            });
        }
        if seg.flags.fin() {
            steps.push(Step::End { client });
        }
    }
    conns
        .into_values()
        .filter(|s| !s.is_empty())
        .map(|s| encode_steps(&s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_every_entry_point_takes_anything() {
        let steps = vec![
            Step::Data {
                client: true,
                skew: 0,
                bytes: b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            },
            Step::Gap {
                client: false,
                len: 300,
            },
            Step::Data {
                client: false,
                skew: -3,
                bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            },
            Step::End { client: true },
        ];
        assert_eq!(decode_steps(&encode_steps(&steps)), steps);
        streams(&encode_steps(&steps));
        for junk in [
            &b""[..],
            b"\x00",
            b"\xff\xff\xff",
            &[0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0],
        ] {
            streams(junk);
            decode(junk);
            analyse_capture(junk, 1);
        }
        decode(&encode_packet(linktype::ETHERNET, &[0; 60]));
    }

    /// Every input the fuzzers once failed on (`fuzz/regressions/TARGET/`) goes through its
    /// target again.
    #[test]
    fn past_fuzzer_findings_pass() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 3] = [
            ("capture", |d| analyse_capture(d, 2)),
            ("decode", decode),
            ("streams", streams),
        ];
        for (target, run) in targets {
            let Ok(dir) = std::fs::read_dir(root.join(target)) else {
                continue;
            };
            for entry in dir.flatten() {
                let data = std::fs::read(entry.path()).unwrap();
                run(&data);
            }
        }
    }
}
