use super::cipher::{HashKind, RecordKey, expand_label, prf, suite};
use super::keylog::KeyLog;
use super::record::{Framing, Header, Reader};
use super::*;
use crate::flow::{FrameRef, SegMeta, SeqNumber};
use std::net::SocketAddr;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn meta(frame: u64, off: i64, ack_off: i64) -> SegMeta {
    SegMeta {
        at: FrameRef {
            input: 0,
            frame,
            ordinal: frame,
            ts: crate::time::Timestamp::from_secs_f64(frame as f64),
        },
        seq: SeqNumber(1000 + off as u32),
        off,
        ack: Some(SeqNumber(5000 + ack_off as u32)),
        ack_off: Some(ack_off),
    }
}

fn record(ctype: u8, body_len: usize) -> Vec<u8> {
    let mut r = vec![ctype, 3, 3];
    r.extend_from_slice(&(body_len as u16).to_be_bytes());
    r.extend(std::iter::repeat_n(0xab, body_len));
    r
}

/// Feed segments to a reader; returns (type, start, frame of first byte, body kept) per record.
fn frame(segments: &[&[u8]]) -> Vec<(u8, i64, u64, Option<usize>)> {
    let mut r = Reader::default();
    let mut got = Vec::new();
    let mut off = 0;
    for (i, s) in segments.iter().enumerate() {
        r.on_data(
            off,
            s,
            meta(i as u64 + 1, off, 0),
            &mut |h: &Header| h.ctype == record::HANDSHAKE,
            &mut |r: &mut Reader, f: Framing| {
                if f == Framing::Complete {
                    let rec = r.record().unwrap();
                    got.push((
                        rec.header.ctype,
                        rec.start,
                        rec.first.at.frame,
                        rec.body.map(<[u8]>::len),
                    ));
                }
            },
        );
        off += s.len() as i64;
    }
    got
}

#[test]
fn records_are_framed_across_segments_and_several_per_segment() {
    let a = record(22, 40);
    let b = record(23, 100);
    let c = record(23, 3);
    let all = [a.clone(), b.clone(), c.clone()].concat();
    // header split 1 + 4 bytes, body over three segments, then two records in one segment
    let segs: Vec<&[u8]> = vec![&all[..1], &all[1..5], &all[5..20], &all[20..60], &all[60..]];
    let got = frame(&segs);
    assert_eq!(
        got,
        vec![(22, 0, 1, Some(40)), (23, 45, 4, None), (23, 150, 5, None)]
    );
    // one segment holding all three
    assert_eq!(frame(&[&all]).len(), 3);
}

#[test]
fn a_gap_inside_a_body_keeps_framing_a_gap_in_a_header_loses_it() {
    let a = record(23, 100);
    let mut r = Reader::default();
    let events = std::cell::RefCell::new(Vec::new());
    let mut on = |r: &mut Reader, f: Framing| {
        events
            .borrow_mut()
            .push((f, r.record().map(|x| x.body.is_some())))
    };
    r.on_data(0, &a[..10], meta(1, 0, 0), &mut |_: &Header| true, &mut on);
    r.on_gap(50, &mut on);
    r.on_data(
        60,
        &a[60..],
        meta(3, 60, 0),
        &mut |_: &Header| true,
        &mut on,
    );
    assert!(matches!(events.borrow()[0].0, Framing::Started(..)));
    assert_eq!(
        events.borrow()[1],
        (Framing::Complete, Some(false)),
        "the body is damaged, not lost"
    );
    r.on_data(
        105,
        &[23, 3],
        meta(4, 105, 0),
        &mut |_: &Header| true,
        &mut on,
    );
    r.on_gap(3, &mut on);
    assert_eq!(events.borrow().last().unwrap().0, Framing::Lost);
    // bytes that cannot be a header lose framing too
    let mut r = Reader::default();
    let mut lost = false;
    r.on_data(
        0,
        b"GET / HTTP/1.1\r\n",
        meta(1, 0, 0),
        &mut |_: &Header| true,
        &mut |_: &mut Reader, f: Framing| lost |= f == Framing::Lost,
    );
    assert!(lost);
}

#[test]
fn tls_is_recognised_by_its_hello_not_its_port() {
    assert!(looks_like_tls(&[22, 3, 1, 0, 200, 1, 0]));
    assert!(looks_like_tls(&[22, 3, 3, 0, 90, 2, 0]));
    assert!(!looks_like_tls(&[22, 3, 3, 0, 90, 11, 0]));
    assert!(!looks_like_tls(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_tls(&[23, 3, 3, 0, 20, 1]));
}

#[test]
fn key_log_lines_are_parsed_and_bad_ones_named() {
    let r = "aa".repeat(32);
    let text = format!(
        "# a comment\n\nCLIENT_RANDOM {r} {}\nCLIENT_TRAFFIC_SECRET_0 {r} {}\nSERVER_TRAFFIC_SECRET_0 {r} {}\n\
         EXPORTER_SECRET {r} {}\nCLIENT_RANDOM {r}\nCLIENT_RANDOM zz {}\nNOT_A_LABEL {r} {}\nCLIENT_RANDOM {r} {}\n",
        "11".repeat(48),
        "22".repeat(32),
        "33".repeat(48),
        "44".repeat(32),
        "11".repeat(48),
        "11".repeat(48),
        "11".repeat(20),
    );
    let log = KeyLog::parse("keys.txt", &text);
    let s = log.get(&[0xaa; 32]).unwrap();
    assert_eq!(s.master.as_deref(), Some(&[0x11; 48][..]));
    assert_eq!(s.client_traffic.as_deref(), Some(&[0x22; 32][..]));
    assert_eq!(s.server_traffic.as_deref(), Some(&[0x33; 48][..]));
    assert_eq!(log.len(), 1);
    let w: Vec<String> = log
        .warnings()
        .iter()
        .map(|w| format!("{}: {}", w.file, w.message))
        .collect();
    assert_eq!(
        w,
        vec![
            "keys.txt: key log line 7: expected LABEL CLIENT_RANDOM SECRET",
            "keys.txt: key log line 8: the client random is not 32 bytes of hex",
            "keys.txt: key log line 9: unknown label NOT_A_LABEL",
            "keys.txt: key log line 10: a master secret is 48 bytes",
        ]
    );
}

/// RFC 8448 section 3: the traffic keys of the published secrets, and the client's first
/// application record (50 bytes 00..31) and close_notify opened with them.
#[test]
fn tls13_decrypts_the_rfc8448_records() {
    let s = suite(0x1301).unwrap();
    let server_hs = hex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
    assert_eq!(
        expand_label(HashKind::Sha256, &server_hs, b"key", 16).unwrap(),
        hex("3fce516009c21727d0f2e4e86ee403bc")
    );
    assert_eq!(
        expand_label(HashKind::Sha256, &server_hs, b"iv", 12).unwrap(),
        hex("5d313eb2671276ee13000b30")
    );
    let client_app = hex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5");
    assert_eq!(
        expand_label(HashKind::Sha256, &client_app, b"key", 16).unwrap(),
        hex("17422dda596ed5d9acd890e3c63f5051")
    );
    let mut key = RecordKey::tls13(s, &client_app).unwrap();
    let rec = hex(
        "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a
         20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4",
    );
    let mut out = Vec::new();
    let header: [u8; 5] = rec[..5].try_into().unwrap();
    assert_eq!(key.open(header, &rec[5..], &mut out), Ok(23));
    assert_eq!(out, (0u8..50).collect::<Vec<u8>>());
    let alert = hex("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3");
    assert_eq!(
        key.open(alert[..5].try_into().unwrap(), &alert[5..], &mut out),
        Ok(21)
    );
    assert_eq!(out, [1, 0], "close_notify");
    // a wrong key (the server's) does not authenticate, and the sequence number stays
    let mut wrong = RecordKey::tls13(s, &server_hs).unwrap();
    assert!(wrong.open(header, &rec[5..], &mut out).is_err());
    assert_eq!(wrong.seq, 0);
}

/// The TLS 1.2 PRF (P_SHA256) test vector published on the IETF TLS list.
#[test]
fn tls12_prf_matches_the_published_vector() {
    let out = prf(
        HashKind::Sha256,
        &hex("9bbe436ba940f017b17652849a71db35"),
        b"test label",
        &hex("a0ba9f936cda311827a6f796ffd5198c"),
        100,
    );
    assert_eq!(
        out,
        hex(
            "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a4
             6b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d1
             22ee42c5a72e5a5110fff70187347b66"
        )
    );
}

#[test]
fn cipher_suites_supported() {
    for id in [
        0x1301, 0x1302, 0x1303, 0xc02f, 0xc030, 0xc02b, 0xc02c, 0xcca8, 0xcca9,
    ] {
        assert!(suite(id).is_some(), "{id:04x}");
    }
    // CBC and RC4 suites are not decrypted
    for id in [0x0005, 0x002f, 0xc013] {
        assert!(suite(id).is_none(), "{id:04x}");
    }
    assert_eq!(cipher::suite_name(0x1301), "TLS_AES_128_GCM_SHA256");
}

/// A connection driven through the TLS analyzer without keys.
struct Conn {
    tls: TlsConn,
    ctx: TlsContext,
    meta: ConnMeta,
    off: PerDir<i64>,
    frame: u64,
}

impl Conn {
    fn new() -> Conn {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:443".parse().unwrap();
        Conn {
            tls: TlsConn::default(),
            ctx: TlsContext::default(),
            meta: ConnMeta {
                id: 1,
                addrs: PerDir::new(a, b),
                syn_client: Some(Dir::Fwd),
                from_syn: PerDir::new(true, true),
                handshake: Default::default(),
            },
            off: PerDir::default(),
            frame: 0,
        }
    }

    /// Send `bytes` on `dir` in one segment that acknowledges everything the other side sent.
    fn send(&mut self, dir: Dir, bytes: &[u8]) -> Vec<AppEvent> {
        self.frame += 1;
        let off = self.off[dir];
        let m = meta(self.frame, off, self.off[dir.other()]);
        let ev = FlowEvent::Data {
            dir,
            off,
            bytes,
            meta: m,
        };
        let mut out = Vec::new();
        self.tls
            .on_flow(&self.meta, &ev, &mut self.ctx, &mut |e| out.push(e));
        self.off[dir] += bytes.len() as i64;
        out
    }

    /// Send on `dir` a segment that does not acknowledge the other side's last `unacked` bytes.
    fn send_behind(&mut self, dir: Dir, bytes: &[u8], unacked: i64) -> Vec<AppEvent> {
        self.off[dir.other()] -= unacked;
        let ev = self.send(dir, bytes);
        self.off[dir.other()] += unacked;
        ev
    }
}

fn hello(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![ty, 0];
    msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
    msg.extend_from_slice(body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    rec.extend_from_slice(&msg);
    rec
}

/// A ClientHello with SNI "up.example" and ALPN http/1.1.
fn client_hello() -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[7; 32]);
    b.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let name = b"up.example";
    let mut sni = vec![0, 0];
    sni.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let alpn = [
        0, 16, 0, 11, 0, 9, 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
    ];
    let exts = [sni, alpn.to_vec()].concat();
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend_from_slice(&exts);
    hello(1, &b)
}

/// A ServerHello choosing TLS 1.3 (supported_versions) with TLS_AES_128_GCM_SHA256.
fn server_hello_13() -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[9; 32]);
    b.extend_from_slice(&[0, 0x13, 0x01, 0]);
    let exts = [0, 43, 0, 2, 3, 4];
    b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    b.extend_from_slice(&exts);
    hello(2, &b)
}

fn kinds(evs: &[AppEvent]) -> Vec<&'static str> {
    evs.iter()
        .map(|e| match e {
            AppEvent::Request(_) => "request",
            AppEvent::Response(_) => "response",
            AppEvent::ResponseEnd { .. } => "response_end",
            AppEvent::Closing { .. } => "closing",
            AppEvent::Desync { .. } => "desync",
            _ => "other",
        })
        .collect()
}

/// TLS 1.3 without keys: the client Finished and the server's NewSessionTickets (sent before
/// the server had the request) are neither requests nor responses; a request flight is the
/// client's records until the server answers; a 19-byte record from the server is its alert.
#[test]
fn tls13_traps_without_keys() {
    let mut c = Conn::new();
    assert!(c.send(Dir::Fwd, &client_hello()).is_empty());
    // ServerHello, ChangeCipherSpec and the encrypted handshake (opaque records)
    let flight = [server_hello_13(), record(20, 1), record(23, 2000)].concat();
    assert!(c.send(Dir::Rev, &flight).is_empty());
    // the client's ChangeCipherSpec and Finished
    assert!(
        c.send(Dir::Fwd, &[record(20, 1), record(23, 53)].concat())
            .is_empty()
    );
    // two NewSessionTickets, sent when the server had only the Finished
    assert!(
        c.send(Dir::Rev, &[record(23, 250), record(23, 250)].concat())
            .is_empty()
    );
    // the request, in two records of one flight
    let evs = c.send(Dir::Fwd, &[record(23, 113), record(23, 40)].concat());
    assert_eq!(kinds(&evs), ["request"]);
    let AppEvent::Request(r) = &evs[0] else {
        unreachable!()
    };
    let tls = r.identity.tls.as_deref().unwrap();
    assert_eq!(
        (tls.encrypted, tls.record_len, tls.version),
        (true, 113, "TLS 1.3")
    );
    assert_eq!(tls.sni.as_deref(), Some("up.example"));
    assert_eq!(r.identity.host.as_deref(), Some("up.example"));
    // a record the server sent before the request reached it is not the response
    assert!(c.send_behind(Dir::Rev, &record(23, 250), 163).is_empty());
    assert_eq!(
        kinds(&c.send(Dir::Rev, &record(23, 300))),
        ["response", "response_end"]
    );
    // the next request, then the server's encrypted alert instead of an answer
    assert_eq!(kinds(&c.send(Dir::Fwd, &record(23, 82))), ["request"]);
    assert_eq!(kinds(&c.send(Dir::Rev, &record(23, 19))), ["closing"]);
    assert_eq!(c.ctx.stats.versions.get("TLS 1.3"), Some(&1));
}

/// TLS 1.2: no Finished to skip (it is a handshake record); an alert record (type 21) is the
/// close signal.
#[test]
fn tls12_flights_without_keys() {
    let mut c = Conn::new();
    c.send(Dir::Fwd, &client_hello());
    let mut sh = server_hello_13();
    // ServerHello without supported_versions: TLS 1.2
    let n = sh.len();
    sh.truncate(n - 8);
    sh.extend_from_slice(&[0, 0]);
    let body_len = (sh.len() - 9) as u16;
    sh[3..5].copy_from_slice(&(body_len + 4).to_be_bytes());
    sh[7..9].copy_from_slice(&body_len.to_be_bytes());
    c.send(Dir::Rev, &sh);
    assert!(
        c.send(Dir::Fwd, &[record(20, 1), record(22, 40)].concat())
            .is_empty()
    );
    assert!(
        c.send(Dir::Rev, &[record(20, 1), record(22, 40)].concat())
            .is_empty()
    );
    assert_eq!(kinds(&c.send(Dir::Fwd, &record(23, 137))), ["request"]);
    assert_eq!(
        kinds(&c.send(Dir::Rev, &record(23, 200))),
        ["response", "response_end"]
    );
    assert_eq!(kinds(&c.send(Dir::Rev, &record(21, 26))), ["closing"]);
    assert_eq!(c.ctx.stats.versions.get("TLS 1.2"), Some(&1));
}
