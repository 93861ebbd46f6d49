use std::net::SocketAddr;
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::*;

fn t0() -> Timestamp {
    Timestamp::from_secs_nanos(1_767_225_600, 0)
}

fn ms(x: f64) -> Timestamp {
    after_ms(t0(), x)
}

fn cfg() -> ConvConfig {
    ConvConfig::new(
        "192.0.2.10:40000".parse::<SocketAddr>().unwrap(),
        "198.51.100.20:8080".parse::<SocketAddr>().unwrap(),
    )
    .delay(Duration::from_millis(10))
}

#[test]
fn handshake_seq_and_ack() {
    let mut c = Conversation::new(cfg().isn(1000, 5000));
    let done = c.handshake(t0());
    assert_eq!(done, ms(20.0));
    let s = c.segments();
    assert_eq!(s.len(), 3);
    assert_eq!((s[0].seq, s[0].ack, s[0].flags), (1000, None, Flags::SYN));
    assert_eq!(
        (s[1].seq, s[1].ack, s[1].flags),
        (5000, Some(1001), Flags::SYN | Flags::ACK)
    );
    assert_eq!(
        (s[2].seq, s[2].ack, s[2].flags),
        (1001, Some(5001), Flags::ACK)
    );
    assert_eq!(s[1].sent, ms(10.0));

    let ids = c.send(Side::Client, done, b"hello");
    let r = c.segment(ids[0]);
    assert_eq!((r.seq, r.ack), (1001, Some(5001)));
    assert!(r.flags.contains(Flags::PSH | Flags::ACK));
    assert_eq!(c.snd_nxt(Side::Client), 1006);
    // The server has not received it yet at 25 ms, but has at 30 ms.
    c.advance_to(ms(25.0));
    assert_eq!(c.rcv_nxt(Side::Server), Some(1001));
    c.advance_to(ms(30.0));
    assert_eq!(c.rcv_nxt(Side::Server), Some(1006));
}

#[test]
fn send_splits_at_mss_with_psh_on_last() {
    let mut c = Conversation::established(cfg().isn(0, 0).mss(100));
    let ids = c.send(Side::Server, t0(), &[b'x'; 250]);
    let lens: Vec<_> = ids.iter().map(|&i| c.segment(i).payload.len()).collect();
    assert_eq!(lens, [100, 100, 50]);
    let seqs: Vec<_> = ids.iter().map(|&i| c.segment(i).seq).collect();
    assert_eq!(seqs, [1, 101, 201]);
    assert!(!c.segment(ids[1]).flags.contains(Flags::PSH));
    assert!(c.segment(ids[2]).flags.contains(Flags::PSH));
    let fin = c.send_fin(Side::Server, ms(1.0), b"tail");
    let f = c.segment(fin[0]);
    assert!(f.flags.contains(Flags::FIN | Flags::PSH));
    assert_eq!(f.end_seq(), 1 + 250 + 4 + 1);
}

#[test]
fn fin_and_request_cross_in_flight() {
    let mut c = Conversation::established(cfg().isn(100, 900));
    let fin = c.fin(Side::Server, ms(0.0));
    let f = c.segment(fin).clone();
    let req = c.send(Side::Client, ms(1.0), b"GET /c HTTP/1.1\r\n\r\n")[0];
    let r = c.segment(req).clone();
    // The request's ack does not cover the FIN (client has not received it) ...
    assert_eq!(r.ack, Some(f.seq));
    // ... and the FIN's ack does not cover the request (server had not received it).
    assert!(f.ack.unwrap() == r.seq);
    // After the FIN arrives (t = 10 ms) the client's ack covers it.
    let a = c.ack(Side::Client, ms(10.0));
    assert_eq!(c.segment(a).ack, Some(f.seq + 1));
    // The server answers the request with a bare RST: seq = request's ack.
    let rst = c.rst_reply(Side::Server, ms(11.0));
    let rs = c.segment(rst);
    assert_eq!((rs.seq, rs.ack), (f.seq, None));
    assert!(rs.flags.contains(Flags::RST));
}

#[test]
fn rst_reply_with_ack_form() {
    let mut c = Conversation::established(cfg().isn(100, 900).rst_reply(RstReplyForm::WithAck));
    let req = c.send(Side::Client, ms(0.0), b"abc")[0];
    let rst = c.rst_reply(Side::Server, ms(10.0));
    let rs = c.segment(rst);
    assert_eq!(rs.seq, c.segment(req).ack.unwrap());
    assert_eq!(rs.ack, Some(c.segment(req).end_seq()));
    assert_eq!(rs.flags, Flags::RST | Flags::ACK);
}

#[test]
fn sequence_numbers_wrap() {
    let mut c = Conversation::new(cfg().isn(u32::MAX - 2, u32::MAX));
    let done = c.handshake(t0());
    assert_eq!(c.segment(SegId(1)).ack, Some(u32::MAX - 1));
    assert_eq!(c.segment(SegId(2)).ack, Some(0));
    let r = c.send(Side::Client, done, b"0123456789")[0];
    assert_eq!(c.segment(r).seq, u32::MAX - 1);
    assert_eq!(c.snd_nxt(Side::Client), 8);
    let resp = c.send(Side::Server, ms(30.0), b"xyz")[0];
    assert_eq!(c.segment(resp).ack, Some(8));
    assert_eq!(c.segment(resp).seq, 0);
    let a = c.ack(Side::Client, ms(40.0));
    assert_eq!(c.segment(a).ack, Some(3));
}

#[test]
fn retransmission_carries_current_ack() {
    let mut c = Conversation::established(cfg().isn(100, 900));
    let fin = c.fin(Side::Server, ms(0.0));
    let req = c.send(Side::Client, ms(2.0), b"GET / HTTP/1.1\r\n\r\n")[0];
    c.lose(req);
    let re = c.retransmit(req, ms(202.0));
    let (o, n) = (c.segment(req).clone(), c.segment(re).clone());
    assert_eq!(o.seq, n.seq);
    assert_eq!(o.ack, Some(901));
    assert_eq!(n.ack, Some(c.segment(fin).end_seq()));
    assert_eq!(n.retransmission_of, Some(req));
    // The lost original never reached the server; the retransmission did.
    c.advance_to(ms(212.0));
    assert_eq!(c.rcv_nxt(Side::Server), Some(n.end_seq()));
}

#[test]
fn auto_ack_piggybacks_or_fires() {
    let mut c = Conversation::established(
        cfg()
            .isn(100, 900)
            .auto_ack(Some(Duration::from_millis(40))),
    );
    c.send(Side::Client, ms(0.0), b"req1");
    // Server answers 1 ms after arrival: its response carries the ACK, no pure ACK.
    c.send(Side::Server, ms(11.0), b"resp1");
    c.settle();
    // Client gets the response at 21 ms and, sending nothing, ACKs at 61 ms.
    let segs = c.segments();
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[2].from, Side::Client);
    assert_eq!(segs[2].sent, ms(61.0));
    assert_eq!(segs[2].ack, Some(901 + 5));
    assert!(segs[2].payload.is_empty());
}

#[test]
fn vantage_capture_times_and_order() {
    for (v, client_ts, server_ts) in [
        (Vantage::Client, 2.0, 10.0),
        (Vantage::Server, 12.0, 0.0),
        (Vantage::Middle, 7.0, 5.0),
    ] {
        let mut c = Conversation::established(cfg().vantage(v));
        let fin = c.fin(Side::Server, ms(0.0));
        let req = c.send(Side::Client, ms(2.0), b"GET /")[0];
        assert_eq!(c.capture_time(req), Some(ms(client_ts)));
        assert_eq!(c.capture_time(fin), Some(ms(server_ts)));
        let pk = c.packets();
        assert!(pk.windows(2).all(|w| w[0].ts <= w[1].ts));
    }
    // A segment lost in the network is not seen at the receiver's vantage point.
    let mut c = Conversation::established(cfg().vantage(Vantage::Server));
    let req = c.send(Side::Client, ms(0.0), b"x")[0];
    c.lose(req);
    assert_eq!(c.capture_time(req), None);
    let d = c.send(Side::Client, ms(1.0), b"y")[0];
    c.drop_capture(d);
    assert!(c.packets().is_empty());
}

#[test]
fn datagram_parses_back() {
    for (cl, sv) in [
        ("192.0.2.10:40000", "198.51.100.20:8080"),
        ("[2001:db8::10]:40000", "[2001:db8:1::20]:8080"),
    ] {
        let mut c = Conversation::new(ConvConfig::new(cl.parse().unwrap(), sv.parse().unwrap()));
        let done = c.handshake(t0());
        c.send(Side::Client, done, b"GET / HTTP/1.1\r\n\r\n");
        let pk = c.packets();
        let mut frame = Vec::new();
        Link::Ethernet.encapsulate(&pk[3], &mut frame);
        let sp = SlicedPacket::from_ethernet(&frame).unwrap();
        match sp.net.unwrap() {
            NetSlice::Ipv4(_) => assert!(!pk[3].ipv6),
            NetSlice::Ipv6(_) => assert!(pk[3].ipv6),
            _ => panic!("not ip"),
        }
        let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
            panic!("not tcp")
        };
        assert_eq!(tcp.destination_port(), 8080);
        assert_eq!(tcp.sequence_number(), c.segment(SegId(3)).seq);
        assert_eq!(tcp.payload(), b"GET / HTTP/1.1\r\n\r\n");
        // SYN carries options.
        let mut raw = Vec::new();
        Link::RawIp.encapsulate(&pk[0], &mut raw);
        let sp = SlicedPacket::from_ip(&raw).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
            panic!("not tcp")
        };
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(tcp.options().len(), 8);
    }
}

#[test]
fn pcap_header_and_record_bytes() {
    let mut w = PcapWriter::with_options(
        Vec::new(),
        PcapOptions::for_link(Link::Ethernet).snaplen(10),
    )
    .unwrap();
    let n = w
        .write_frame(
            Timestamp::from_secs_nanos(1_767_225_600, 123_456_789),
            &[7u8; 20],
        )
        .unwrap();
    assert_eq!(n, 1);
    let b = w.finish().unwrap();
    assert_eq!(
        &b[..24],
        &[
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0
        ]
    );
    let rec = &b[24..40];
    assert_eq!(
        u32::from_le_bytes(rec[0..4].try_into().unwrap()),
        1_767_225_600
    );
    assert_eq!(u32::from_le_bytes(rec[4..8].try_into().unwrap()), 123_456);
    assert_eq!(u32::from_le_bytes(rec[8..12].try_into().unwrap()), 10);
    assert_eq!(u32::from_le_bytes(rec[12..16].try_into().unwrap()), 20);
    assert_eq!(b.len(), 24 + 16 + 10);

    let mut w = PcapWriter::with_options(
        Vec::new(),
        PcapOptions::for_link(Link::LinuxSll2 { ifindex: 1 }).nanos(true),
    )
    .unwrap();
    w.write_frame(Timestamp::from_secs_nanos(5, 123_456_789), &[1, 2])
        .unwrap();
    let b = w.finish().unwrap();
    assert_eq!(&b[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
    assert_eq!(&b[16..20], &262_144u32.to_le_bytes());
    assert_eq!(&b[20..24], &276u32.to_le_bytes());
    assert_eq!(
        u32::from_le_bytes(b[28..32].try_into().unwrap()),
        123_456_789
    );
}

#[test]
fn link_headers() {
    let mut c = Conversation::established(cfg());
    c.send(Side::Client, t0(), b"x");
    let p = &c.packets()[0];
    let mut f = Vec::new();
    Link::LinuxSll2 { ifindex: 3 }.encapsulate(p, &mut f);
    assert_eq!(f.len(), 20 + p.ip.len());
    assert_eq!(&f[0..2], &[0x08, 0x00]);
    assert_eq!(&f[4..8], &3u32.to_be_bytes());
    assert_eq!(f[10], 4); // outgoing (client vantage, client sent it)
    f.clear();
    Link::LinuxSll.encapsulate(p, &mut f);
    assert_eq!(f.len(), 16 + p.ip.len());
    assert_eq!(&f[0..2], &[0, 4]);
    assert_eq!(&f[14..16], &[0x08, 0x00]);
}

#[test]
fn merge_is_stable_by_time() {
    let mut a = Conversation::established(cfg().id(1));
    let mut b = Conversation::established(cfg().id(2));
    a.send(Side::Client, ms(5.0), b"a");
    b.send(Side::Client, ms(1.0), b"b");
    b.send(Side::Client, ms(5.0), b"c");
    let m = merge([a.packets(), b.packets()]);
    let tags: Vec<_> = m.iter().map(|p| (p.tag.conv, p.tag.seg.0)).collect();
    assert_eq!(tags, [(2, 0), (1, 0), (2, 1)]);
}
