use super::pcapng::{EPB_TYPE, OPB_TYPE, SHB_TYPE, SPB_TYPE};
use super::*;
use crate::capture::Packet;
use crate::time::Timestamp;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A temporary file that is removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(bytes: &[u8]) -> Temp {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "tcprace-capture-test-{}-{n}.bin",
            std::process::id()
        ));
        std::fs::write(&path, bytes).unwrap();
        Temp(path)
    }
    fn name(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// (seconds, fraction, original length, data)
type Rec<'a> = (u32, u32, u32, &'a [u8]);

fn pcap(magic: u32, be: bool, linktype: u32, recs: &[Rec<'_>]) -> Vec<u8> {
    let u16b = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let u32b = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut v = Vec::new();
    v.extend_from_slice(&u32b(magic));
    v.extend_from_slice(&u16b(2));
    v.extend_from_slice(&u16b(4));
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&u32b(65535));
    v.extend_from_slice(&u32b(linktype));
    for (s, f, orig, data) in recs {
        v.extend_from_slice(&u32b(*s));
        v.extend_from_slice(&u32b(*f));
        v.extend_from_slice(&u32b(data.len() as u32));
        v.extend_from_slice(&u32b(*orig));
        v.extend_from_slice(data);
    }
    v
}

fn pcap_le(linktype: u32, recs: &[Rec<'_>]) -> Vec<u8> {
    pcap(0xA1B2_C3D4, false, linktype, recs)
}

struct Ng {
    be: bool,
    out: Vec<u8>,
}

impl Ng {
    fn new(be: bool) -> Ng {
        let mut ng = Ng {
            be,
            out: Vec::new(),
        };
        ng.shb();
        ng
    }
    fn u16b(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32b(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn block(&mut self, ty: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = 12 + body.len() as u32;
        let (t, l) = (self.u32b(ty), self.u32b(len));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }
    fn shb(&mut self) {
        let mut b = self.u32b(0x1A2B_3C4D).to_vec();
        b.extend_from_slice(&self.u16b(1));
        b.extend_from_slice(&self.u16b(0));
        b.extend_from_slice(&[0xff; 8]);
        self.block(SHB_TYPE, &b);
    }
    fn option(&self, code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = self.u16b(code).to_vec();
        o.extend_from_slice(&self.u16b(value.len() as u16));
        o.extend_from_slice(value);
        while !o.len().is_multiple_of(4) {
            o.push(0);
        }
        o
    }
    fn idb(&mut self, linktype: u16, tsresol: Option<u8>, tsoffset: Option<i64>) {
        let mut b = self.u16b(linktype).to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.u32b(0));
        if let Some(r) = tsresol {
            b.extend(self.option(9, &[r]));
        }
        if let Some(o) = tsoffset {
            let v = if self.be {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            };
            b.extend(self.option(14, &v));
        }
        if tsresol.is_some() || tsoffset.is_some() {
            b.extend_from_slice(&[0, 0, 0, 0]);
        }
        self.block(1, &b);
    }
    fn epb(&mut self, if_id: u32, ts: u64, orig: u32, data: &[u8]) {
        let mut b = self.u32b(if_id).to_vec();
        b.extend_from_slice(&self.u32b((ts >> 32) as u32));
        b.extend_from_slice(&self.u32b(ts as u32));
        b.extend_from_slice(&self.u32b(data.len() as u32));
        b.extend_from_slice(&self.u32b(orig));
        b.extend_from_slice(data);
        self.block(EPB_TYPE, &b);
    }
    fn spb(&mut self, orig: u32, data: &[u8]) {
        let mut b = self.u32b(orig).to_vec();
        b.extend_from_slice(data);
        self.block(SPB_TYPE, &b);
    }
    fn opb(&mut self, if_id: u16, ts: u64, data: &[u8]) {
        let mut b = self.u16b(if_id).to_vec();
        b.extend_from_slice(&self.u16b(0));
        b.extend_from_slice(&self.u32b((ts >> 32) as u32));
        b.extend_from_slice(&self.u32b(ts as u32));
        b.extend_from_slice(&self.u32b(data.len() as u32));
        b.extend_from_slice(&self.u32b(data.len() as u32));
        b.extend_from_slice(data);
        self.block(OPB_TYPE, &b);
    }
}

#[derive(Debug, Default)]
struct Out {
    packets: Vec<Packet>,
    warnings: Vec<Warning>,
}

fn read_all(src: &mut FileSource) -> Out {
    let mut out = Out::default();
    for _ in 0..1_000_000 {
        match src.next().expect("no fatal error") {
            Next::Packet(p) => out.packets.push(p.to_packet()),
            Next::Warning(w) => out.warnings.push(*w),
            Next::End => return out,
            other => panic!("a file source does not produce {other:?}"),
        }
    }
    panic!("reader did not end");
}

fn read_bytes(bytes: &[u8]) -> Out {
    let t = Temp::new(bytes);
    let mut src = FileSource::open(&[t.name()]).expect("opens");
    read_all(&mut src)
}

fn open_err(bytes: &[u8]) -> String {
    let t = Temp::new(bytes);
    match FileSource::open(&[t.name()]) {
        Ok(_) => panic!("expected an open error"),
        Err(e) => {
            assert_eq!(e.file, t.name());
            e.message
        }
    }
}

const P1: &[u8] = b"first packet bytes";
const P2: &[u8] = b"second";

fn check_two(out: &Out, linktype: u32, nanos: bool) {
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_eq!(out.packets.len(), 2);
    let (a, b) = (&out.packets[0], &out.packets[1]);
    assert_eq!((a.input, a.frame, b.frame), (0, 1, 2));
    assert_eq!(a.linktype, linktype);
    assert_eq!(a.data, P1);
    assert_eq!(a.orig_len, 100);
    assert_eq!(b.data, P2);
    assert_eq!(b.orig_len, P2.len() as u32);
    let frac = if nanos { 123_456_789 } else { 123_456_000 };
    assert_eq!(a.ts, Timestamp::from_secs_nanos(1_700_000_000, frac));
}

fn two_recs(nanos: bool) -> Vec<Rec<'static>> {
    let f = if nanos { 123_456_789 } else { 123_456 };
    vec![
        (1_700_000_000, f, 100, P1),
        (1_700_000_001, 0, P2.len() as u32, P2),
    ]
}

#[test]
fn pcap_le_be_us_ns() {
    check_two(&read_bytes(&pcap_le(1, &two_recs(false))), 1, false);
    check_two(
        &read_bytes(&pcap(0xA1B2_C3D4, true, 113, &two_recs(false))),
        113,
        false,
    );
    check_two(
        &read_bytes(&pcap(0xA1B2_3C4D, false, 101, &two_recs(true))),
        101,
        true,
    );
    check_two(
        &read_bytes(&pcap(0xA1B2_3C4D, true, 0, &two_recs(true))),
        0,
        true,
    );
}

#[test]
fn pcap_modified_format() {
    // Kuznetzov: 8 extra bytes (ifindex, protocol, pkt_type, pad) per record header.
    let mut v = pcap(0xA1B2_CD34, false, 1, &[]);
    for (s, f, orig, data) in two_recs(false) {
        for x in [s, f, data.len() as u32, orig, 2, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(data);
    }
    check_two(&read_bytes(&v), 1, false);
}

#[test]
fn pcap_linktype_fcs_bits_are_ignored() {
    let v = pcap_le(1 | 0x1400_0000, &two_recs(false));
    check_two(&read_bytes(&v), 1, false);
}

#[test]
fn gzip_pcap_streams() {
    let plain = pcap_le(1, &two_recs(false));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let t = Temp::new(&gz);
    let mut src = FileSource::open(&[t.name()]).unwrap();
    check_two(&read_all(&mut src), 1, false);
    assert_eq!(src.progress(), (gz.len() as u64, Some(gz.len() as u64)));
}

#[test]
fn pcapng_interfaces_with_own_linktype_and_resolution() {
    let mut ng = Ng::new(false);
    ng.idb(1, None, None); // µs
    ng.idb(113, Some(9), Some(10)); // ns, +10 s
    ng.idb(101, Some(0x80 | 20), None); // 2^-20 s
    ng.epb(0, 1_700_000_000_123_456, 100, P1);
    ng.epb(1, 1_700_000_000_123_456_789, P2.len() as u32, P2);
    ng.epb(2, (1_700_000_000u64 << 20) | (1 << 19), 3, b"abc");
    ng.spb(4, b"spb!");
    ng.opb(1, 5_000_000_000, b"opb");
    let out = read_bytes(&ng.out);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let p = &out.packets;
    assert_eq!(p.len(), 5);
    assert_eq!(
        p.iter().map(|p| p.linktype).collect::<Vec<_>>(),
        [1, 113, 101, 1, 113]
    );
    assert_eq!(
        p.iter().map(|p| p.frame).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        p[0].ts,
        Timestamp::from_secs_nanos(1_700_000_000, 123_456_000)
    );
    assert_eq!(p[0].orig_len, 100);
    assert_eq!(
        p[1].ts,
        Timestamp::from_secs_nanos(1_700_000_010, 123_456_789)
    );
    assert_eq!(
        p[2].ts,
        Timestamp::from_secs_nanos(1_700_000_000, 500_000_000)
    );
    assert_eq!(p[2].data, b"abc");
    // SPB: no timestamp of its own, interface 0, data trimmed to the original length.
    assert_eq!(p[3].data, b"spb!");
    assert_eq!(p[3].ts, p[2].ts);
    assert_eq!(p[4].data, b"opb");
    assert_eq!(p[4].ts, Timestamp::from_secs_nanos(15, 0));
}

#[test]
fn pcapng_big_endian_and_several_sections() {
    let mut ng = Ng::new(true);
    ng.idb(1, Some(6), Some(-5));
    ng.epb(0, 2_000_000, 100, P1);
    let mut second = Ng::new(false);
    second.idb(229, Some(3), None);
    second.epb(0, 1500, 6, P2);
    ng.out.extend_from_slice(&second.out);
    let out = read_bytes(&ng.out);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_eq!(out.packets.len(), 2);
    assert_eq!(out.packets[0].ts, Timestamp::from_secs_nanos(-3, 0));
    assert_eq!(out.packets[0].linktype, 1);
    assert_eq!(
        out.packets[1].ts,
        Timestamp::from_secs_nanos(1, 500_000_000)
    );
    assert_eq!(out.packets[1].linktype, 229);
    assert_eq!(out.packets[1].frame, 2);
}

#[test]
fn pcapng_without_packets_is_fine() {
    let mut ng = Ng::new(false);
    ng.idb(1, None, None);
    let out = read_bytes(&ng.out);
    assert!(out.packets.is_empty() && out.warnings.is_empty());
}

#[test]
fn pcapng_unknown_interface_warns_and_goes_on() {
    let mut ng = Ng::new(false);
    ng.idb(1, None, None);
    ng.epb(3, 0, 6, P2);
    ng.epb(0, 0, 6, P2);
    let out = read_bytes(&ng.out);
    assert_eq!(out.warnings.len(), 1);
    assert_eq!(out.warnings[0].frame, Some(1));
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.packets[0].frame, 2);
}

#[test]
fn truncated_record_warns_after_earlier_packets() {
    let mut v = pcap_le(1, &two_recs(false));
    v.truncate(v.len() - 2);
    let out = read_bytes(&v);
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.warnings.len(), 1);
    let w = &out.warnings[0];
    assert_eq!(w.frame, Some(2));
    assert_eq!(
        w.message,
        "capture cut short in the middle of frame 2 (got 4 of 6 bytes)"
    );
    // Cut inside a record header.
    let mut v = pcap_le(1, &two_recs(false));
    v.truncate(24 + 16 + P1.len() + 5);
    let out = read_bytes(&v);
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.warnings.len(), 1);
    assert!(out.warnings[0].message.contains("cut short"));
    // pcapng block cut short.
    let mut ng = Ng::new(false);
    ng.idb(1, None, None);
    ng.epb(0, 0, 100, P1);
    ng.epb(0, 0, 6, P2);
    ng.out.truncate(ng.out.len() - 3);
    let out = read_bytes(&ng.out);
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0]
            .message
            .starts_with("capture cut short in the middle of frame 2")
    );
}

#[test]
fn absurd_record_length_stops_the_input() {
    let mut v = pcap_le(1, &two_recs(false));
    let at = 24 + 16 + P1.len() + 8;
    v[at..at + 4].copy_from_slice(&16_711_424u32.to_le_bytes());
    let out = read_bytes(&v);
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.warnings.len(), 1);
    assert_eq!(out.warnings[0].frame, Some(2));
    assert!(
        out.warnings[0]
            .message
            .contains("absurd length of 16711424")
    );
    // pcapng: absurd block length.
    let mut ng = Ng::new(false);
    ng.idb(1, None, None);
    ng.epb(0, 0, 100, P1);
    let at = ng.out.len();
    ng.epb(0, 0, 6, P2);
    ng.out[at + 4..at + 8].copy_from_slice(&0x7000_0000u32.to_le_bytes());
    let out = read_bytes(&ng.out);
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.warnings.len(), 1);
    assert!(out.warnings[0].message.contains("corrupt pcapng block"));
}

#[test]
fn large_record_grows_the_buffer() {
    let big = vec![0xabu8; 200_000];
    let v = pcap_le(1, &[(1, 0, 200_000, &big), (2, 0, 6, P2)]);
    let out = read_bytes(&v);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_eq!(out.packets.len(), 2);
    assert_eq!(out.packets[0].data.len(), 200_000);
}

#[test]
fn corrupt_pcapng_block_stops_the_input() {
    let mut ng = Ng::new(false);
    ng.idb(1, None, None);
    ng.epb(0, 0, 100, P1);
    let at = ng.out.len();
    ng.epb(0, 0, 6, P2);
    ng.epb(0, 0, 6, P2);
    // Trailing length differs from the leading one.
    let end = at + 8 + 20 + 8;
    ng.out[end..end + 4].copy_from_slice(&1000u32.to_le_bytes());
    let out = read_bytes(&ng.out);
    assert_eq!(out.packets.len(), 1);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].message.contains("corrupt pcapng block"));
}

#[test]
fn caplen_above_orig_and_bad_fraction_warn_but_keep() {
    let v = pcap(
        0xA1B2_3C4D,
        false,
        1,
        &[
            (10, 1_500_000_000, 4, P1),
            (11, 0, 2, P2),
            (12, 2_000_000_000, 6, P2),
        ],
    );
    let out = read_bytes(&v);
    assert_eq!(out.packets.len(), 3);
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert_eq!(out.packets[0].orig_len, P1.len() as u32);
    assert_eq!(
        out.packets[0].ts,
        Timestamp::from_secs_nanos(11, 500_000_000)
    );
    assert_eq!(out.packets[2].ts, Timestamp::from_secs_nanos(14, 0));
    assert_eq!(out.packets[1].data, P2);
}

#[test]
fn open_errors() {
    assert_eq!(
        open_err(b"<html><body>nope</body></html>"),
        "not a pcap or pcapng capture (starts with bytes 3c 68 74 6d)"
    );
    assert!(open_err(b"").contains("empty"));
    assert!(open_err(&pcap_le(1, &[])[..20]).contains("cut short"));
    let mut v = pcap_le(1, &[]);
    v[4] = 1;
    assert_eq!(open_err(&v), "unsupported pcap version 1.4");
    let mut ng = Ng::new(false);
    ng.out[12] = 0;
    ng.out[14] = 1;
    assert_eq!(open_err(&ng.out), "unsupported pcapng version 0.1");
    // A section-header option longer than the block.
    let mut ng = Ng::new(false);
    let opt = ng.option(2, b"hw");
    let mut shb = ng.u32b(0x1A2B_3C4D).to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&[0xff; 8]);
    shb.extend(opt);
    ng.out.clear();
    ng.block(SHB_TYPE, &shb);
    assert!(FileSource::open(&[Temp::new(&ng.out).name()]).is_ok());
    ng.out[24 + 2] = 0x30;
    assert_eq!(
        open_err(&ng.out),
        "corrupt pcapng section header (option 2 of length 48 overruns the block)"
    );
    let missing = std::env::temp_dir().join("tcprace-definitely-missing.pcap");
    let err = FileSource::open(&[missing.to_string_lossy().into_owned()])
        .err()
        .unwrap();
    assert!(err.message.starts_with("cannot open"), "{err}");
    // The first good input does not hide a bad second one.
    let good = Temp::new(&pcap_le(1, &two_recs(false)));
    let bad = Temp::new(b"GET / HTTP/1.1\r\n");
    let err = FileSource::open(&[good.name(), bad.name()]).err().unwrap();
    assert_eq!(err.file, bad.name());
}

#[test]
fn several_inputs_form_one_stream() {
    let a = Temp::new(&pcap_le(1, &two_recs(false)));
    let mut trunc = pcap_le(1, &two_recs(false));
    trunc.truncate(trunc.len() - 1);
    let b = Temp::new(&trunc);
    let mut ng = Ng::new(false);
    ng.idb(101, None, None);
    ng.epb(0, 0, 6, P2);
    let c = Temp::new(&ng.out);
    let names = [a.name(), b.name(), c.name()];
    let mut src = FileSource::open(&names).unwrap();
    assert_eq!(src.inputs(), &names[..]);
    let total = [&a, &b, &c]
        .iter()
        .map(|t| std::fs::metadata(&t.0).unwrap().len())
        .sum::<u64>();
    assert_eq!(src.progress(), (0, Some(total)));
    let out = read_all(&mut src);
    let ids: Vec<_> = out.packets.iter().map(|p| (p.input, p.frame)).collect();
    assert_eq!(ids, [(0, 1), (0, 2), (1, 1), (2, 1)]);
    assert_eq!(out.warnings.len(), 1);
    assert_eq!(out.warnings[0].file, b.name());
    assert_eq!(src.progress(), (total, Some(total)));
    // After the end, End again.
    assert!(matches!(src.next().unwrap(), Next::End));
}

/// Deterministic mutations of valid captures: reading must end without panicking.
#[test]
fn mutated_inputs_never_panic_or_hang() {
    let mut ng = Ng::new(false);
    ng.idb(1, Some(9), Some(3));
    ng.epb(0, 7, 100, P1);
    ng.spb(6, P2);
    ng.opb(0, 9, P2);
    ng.epb(0, 8, 6, P2);
    let seeds = [pcap_le(1, &two_recs(false)), ng.out.clone()];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in &seeds {
        for _ in 0..300 {
            let mut v = seed.clone();
            for _ in 0..(1 + rnd() % 4) {
                let at = (rnd() as usize) % v.len();
                v[at] = rnd() as u8;
            }
            if rnd() % 4 == 0 {
                let cut = (rnd() as usize) % v.len();
                v.truncate(cut);
            }
            let t = Temp::new(&v);
            if let Ok(mut src) = FileSource::open(&[t.name()]) {
                let _ = read_all(&mut src);
            }
        }
    }
}

/// Reads every capture of the shared corpus (when present) to the end, and decodes every packet.
#[test]
fn shared_corpus() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
    let Ok(manifest) = std::fs::read_to_string(root.join("MANIFEST.tsv")) else {
        eprintln!("note: {} not found, corpus test skipped", root.display());
        return;
    };
    const OPEN_FAILS: [&str; 3] = [
        "libpcap/tests/pcap-invalid-version-1.pcap",
        "libpcap/tests/pcapng-invalid-vers-1.pcapng",
        "libpcap/tests/shb-option-too-long.pcapng",
    ];
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (c_path, c_purpose, c_packets) = (col("local_path"), col("purpose"), col("packets"));
    let c_format = col("file_format");
    let mut problems = Vec::new();
    let mut files = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (rel, purpose) = (f[c_path], f[c_purpose]);
        if f[c_format].starts_with("text") {
            continue; // a key log or script that goes with a capture
        }
        let expected: Option<u64> = f[c_packets].parse().ok();
        let malformed = purpose.contains("malformed");
        let name = root.join(rel).to_string_lossy().into_owned();
        files += 1;
        let mut src = match FileSource::open(std::slice::from_ref(&name)) {
            Ok(src) => src,
            Err(e) => {
                eprintln!("{rel}: open error: {}", e.message);
                if !OPEN_FAILS.contains(&rel) {
                    problems.push(format!("{rel}: unexpected open error {}", e.message));
                }
                continue;
            }
        };
        if OPEN_FAILS.contains(&rel) {
            problems.push(format!("{rel}: opened but should not"));
        }
        let out = read_all(&mut src);
        let mut reasons: HashMap<&str, usize> = HashMap::new();
        let mut details = Vec::new();
        for p in &out.packets {
            let r = match crate::decode::decode(p.linktype, &p.data, p.orig_len) {
                crate::decode::Decoded::Tcp(_) => "tcp",
                crate::decode::Decoded::Skip(r, detail) => {
                    if let Some(d) = detail.filter(|_| details.len() < 3) {
                        details.push(format!("frame {}: {d}", p.frame));
                    }
                    r.as_str()
                }
            };
            *reasons.entry(r).or_default() += 1;
        }
        let mut reasons: Vec<_> = reasons.into_iter().collect();
        reasons.sort();
        eprintln!("{rel}: {} packets {reasons:?}", out.packets.len());
        for d in &details {
            eprintln!("    skipped {d}");
        }
        for w in &out.warnings {
            eprintln!("    warning: frame {:?}: {}", w.frame, w.message);
        }
        let n = out.packets.len() as u64;
        if !malformed && expected != Some(n) {
            problems.push(format!("{rel}: {n} packets, manifest says {expected:?}"));
        }
        if !malformed && !out.warnings.is_empty() {
            problems.push(format!("{rel}: unexpected warnings {:?}", out.warnings));
        }
        let has = |s: &str| out.warnings.iter().any(|w| w.message.contains(s));
        if rel == "suricata-verify/tests/http-mime-truncated/input.pcap"
            && (!has("capture cut short in the middle of frame") || n == 0)
        {
            problems.push(format!("{rel}: expected packets then a cut-short warning"));
        }
        if rel == "suricata-verify/tests/bug-6875-01/fuzz.pcap" && !has("absurd length") {
            problems.push(format!("{rel}: expected an absurd-length warning"));
        }
        assert_eq!(src.progress().0, src.progress().1.unwrap(), "{rel}");
    }
    assert!(files > 0);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn pcapng_interfaces_beyond_the_cap_are_ignored_with_one_warning() {
    use super::pcapng::MAX_INTERFACES;
    let n = MAX_INTERFACES as u64 + 5_000;
    let mut bytes = Vec::new();
    crate::synth::hostile::pcapng_interfaces(&mut bytes, n).unwrap();
    let out = read_bytes(&bytes);
    // the packets on interface 0 are read, those on the last interface (beyond the cap) not
    assert_eq!(out.packets.len(), 2);
    let cap_warnings = out
        .warnings
        .iter()
        .filter(|w| w.message.contains("more than 4096 interfaces"))
        .count();
    assert_eq!(cap_warnings, 1, "{:?}", out.warnings);
    let skipped = out
        .warnings
        .iter()
        .filter(|w| {
            w.message
                .contains(&format!("packet on interface {}", n - 1))
        })
        .count();
    assert_eq!(skipped, 2, "{:?}", out.warnings);
}
