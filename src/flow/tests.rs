use super::conn::{Handshake, TcpConn};
use super::*;
use crate::decode::{Segment, TcpFlags};
use crate::time::Timestamp;

pub(super) const C: &str = "10.0.0.1:40000";
pub(super) const S: &str = "10.0.0.2:80";

pub(super) fn seg<'a>(
    src: &str,
    dst: &str,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &'a [u8],
) -> Segment<'a> {
    Segment {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 65535,
        wscale: None,
        payload: data,
        payload_len: data.len() as u32,
        ip_id: 0,
        options: &[],
        tunnel: None,
        vnet: None,
    }
}

pub(super) const SYN: u8 = TcpFlags::SYN;
pub(super) const ACK: u8 = TcpFlags::ACK;
pub(super) const FIN: u8 = TcpFlags::FIN | TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;
pub(super) const PSH: u8 = TcpFlags::PSH | TcpFlags::ACK;

/// Collects events as owned values.
#[derive(Default)]
pub(super) struct Sink {
    pub data: Vec<(Dir, i64, Vec<u8>)>,
    pub gaps: Vec<(Dir, i64, u64)>,
    pub retrans: usize,
    pub eofs: Vec<(Dir, i64)>,
    /// Data, gaps and ends in order: direction, offset, and length (`None`: the end).
    pub log: Vec<(Dir, i64, Option<u64>)>,
}

impl Sink {
    fn push(&mut self, ev: FlowEvent<'_>) {
        match ev {
            FlowEvent::Data {
                dir, off, bytes, ..
            } => {
                self.data.push((dir, off, bytes.to_vec()));
                self.log.push((dir, off, Some(bytes.len() as u64)));
            }
            FlowEvent::Gap { dir, off, len, .. } => {
                self.gaps.push((dir, off, len));
                self.log.push((dir, off, Some(len)));
            }
            FlowEvent::Retransmit { .. } => self.retrans += 1,
            FlowEvent::Segment { .. } => {}
            FlowEvent::Eof { dir, off, .. } => {
                self.eofs.push((dir, off));
                self.log.push((dir, off, None));
            }
        }
    }
    pub fn bytes(&self, dir: Dir) -> Vec<u8> {
        self.data
            .iter()
            .filter(|d| d.0 == dir)
            .flat_map(|d| d.2.clone())
            .collect()
    }
}

pub(super) struct Conn {
    pub tcp: TcpConn,
    pub stats: FlowStats,
    pub sink: Sink,
    n: u64,
}

impl Conn {
    pub fn new() -> Conn {
        Conn {
            tcp: TcpConn::new(
                1,
                C.parse().unwrap(),
                S.parse().unwrap(),
                None,
                FrameRef::default(),
            ),
            stats: FlowStats::default(),
            sink: Sink::default(),
            n: 0,
        }
    }
    pub fn feed(&mut self, s: Segment<'_>) {
        self.n += 1;
        let at = FrameRef {
            input: 0,
            frame: self.n,
            ordinal: self.n,
            ts: Timestamp::from_secs_nanos(self.n as i64, 0),
        };
        let sink = &mut self.sink;
        self.tcp
            .on_segment(&s, at, &mut self.stats, &mut |_, ev| sink.push(ev));
    }
    pub fn handshake(&mut self, cisn: u32, sisn: u32) {
        self.feed(seg(C, S, cisn, 0, SYN, b""));
        self.feed(seg(S, C, sisn, cisn.wrapping_add(1), SYN | ACK, b""));
        self.feed(seg(
            C,
            S,
            cisn.wrapping_add(1),
            sisn.wrapping_add(1),
            ACK,
            b"",
        ));
    }
}

#[test]
fn in_order_data_retransmission_and_overlap() {
    let mut c = Conn::new();
    c.handshake(1000, 5000);
    c.feed(seg(C, S, 1001, 5001, PSH, b"hello "));
    c.feed(seg(C, S, 1001, 5001, PSH, b"hello ")); // full retransmission
    c.feed(seg(C, S, 1004, 5001, PSH, b"lo world")); // overlap
    assert_eq!(c.sink.bytes(Dir::Fwd), b"hello world");
    assert_eq!(c.sink.retrans, 1);
    assert_eq!(c.sink.data.last().unwrap().1, 6);
    assert_eq!(c.tcp.handshake, Handshake::Established);
    assert_eq!(c.tcp.syn_client, Some(Dir::Fwd));
}

#[test]
fn out_of_order_segments_are_held_and_delivered_in_order() {
    let mut c = Conn::new();
    c.handshake(1, 1);
    c.feed(seg(C, S, 7, 2, PSH, b"world"));
    assert!(c.sink.data.is_empty());
    c.feed(seg(C, S, 2, 2, PSH, b"hello"));
    assert_eq!(c.sink.bytes(Dir::Fwd), b"helloworld");
    assert_eq!(c.stats.out_of_order_segments, 1);
}

#[test]
fn ack_beyond_captured_bytes_is_a_gap() {
    let mut c = Conn::new();
    c.handshake(100, 200);
    c.feed(seg(C, S, 101, 201, PSH, b"abc"));
    // 10 bytes sent but not captured, then the server acknowledges them
    c.feed(seg(C, S, 114, 201, PSH, b"xyz"));
    c.feed(seg(S, C, 201, 117, ACK, b""));
    assert_eq!(c.sink.gaps, vec![(Dir::Fwd, 3, 10)]);
    assert_eq!(c.sink.bytes(Dir::Fwd), b"abcxyz");
}

#[test]
fn snaplen_cut_payload_is_delivered_then_a_gap() {
    let mut c = Conn::new();
    c.handshake(100, 200);
    let mut s = seg(C, S, 101, 201, PSH, b"GET ");
    s.payload_len = 100;
    c.feed(s);
    assert_eq!(c.sink.data, vec![(Dir::Fwd, 0, b"GET ".to_vec())]);
    assert_eq!(c.sink.gaps, vec![(Dir::Fwd, 4, 96)]);
    assert_eq!(c.stats.snaplen_truncated_segments, 1);
}

#[test]
fn sequence_numbers_wrap_across_2_pow_32() {
    let mut c = Conn::new();
    let isn = u32::MAX - 3;
    c.handshake(isn, 7);
    c.feed(seg(C, S, isn.wrapping_add(1), 8, PSH, b"0123456789"));
    c.feed(seg(C, S, isn.wrapping_add(11), 8, FIN, b"ab"));
    assert_eq!(c.sink.bytes(Dir::Fwd), b"0123456789ab");
    assert_eq!(c.sink.eofs, vec![(Dir::Fwd, 12)]);
    let fin = c.tcp.dirs[Dir::Fwd].fin().unwrap();
    assert_eq!(fin.off, 12);
    assert_eq!(fin.seq, SeqNumber(7)); // wrapped
}

#[test]
fn fin_and_rst_are_recorded_with_offsets() {
    let mut c = Conn::new();
    c.handshake(0, 0);
    c.feed(seg(C, S, 1, 1, PSH, b"GET / HTTP/1.1\r\n\r\n"));
    c.feed(seg(S, C, 1, 1, FIN, b""));
    let fin = c.tcp.dirs[Dir::Rev].fin().unwrap();
    assert_eq!((fin.off, fin.ack_off), (0, Some(0)));
    c.feed(seg(S, C, 2, 0, RST, b""));
    let rst = c.tcp.dirs[Dir::Rev].rst().unwrap();
    assert_eq!((rst.off, rst.ack), (1, None));
    assert!(c.tcp.is_closed());
    assert_eq!(c.sink.eofs, vec![(Dir::Rev, 0)]);
}

#[test]
fn rst_or_fin_before_the_handshake_is_not_a_close() {
    let mut c = Conn::new();
    c.feed(seg(C, S, 1000, 0, SYN, b""));
    c.feed(seg(S, C, 777, 0, RST, b""));
    c.feed(seg(S, C, 778, 0, TcpFlags::FIN, b""));
    assert!(c.tcp.dirs[Dir::Rev].rst().is_none() && c.tcp.dirs[Dir::Rev].fin().is_none());
    assert_eq!(c.stats.rst_before_handshake, 1);
    assert_eq!(c.stats.fin_before_handshake, 1);
    c.feed(seg(S, C, 5000, 1001, SYN | ACK, b""));
    assert_eq!(c.tcp.handshake, Handshake::SynReceived);
    // data and FIN before the client acknowledged the SYN-ACK: still not a close
    c.feed(seg(S, C, 5001, 1001, FIN, b"early"));
    assert!(c.tcp.dirs[Dir::Rev].fin().is_none());
    c.feed(seg(C, S, 1001, 5001, ACK, b""));
    assert_eq!(c.tcp.handshake, Handshake::Established);
    assert!(!c.tcp.is_closed());
}

#[test]
fn refused_syn_is_a_valid_rst() {
    let mut c = Conn::new();
    c.feed(seg(C, S, 1000, 0, SYN, b""));
    c.feed(seg(S, C, 0, 1001, RST | ACK, b""));
    assert!(c.tcp.refused);
    assert!(c.tcp.is_closed());
}

#[test]
fn rst_far_outside_the_window_is_ignored() {
    let mut c = Conn::new();
    c.handshake(0, 0);
    c.feed(seg(C, S, 1, 1, PSH, b"x"));
    c.feed(seg(S, C, 1 << 30, 0, RST, b""));
    assert!(c.tcp.dirs[Dir::Rev].rst().is_none());
    assert_eq!(c.stats.rst_out_of_window, 1);
}

#[test]
fn syn_with_data_fin_with_data_and_rst_with_data() {
    let mut c = Conn::new();
    c.feed(seg(C, S, 10, 0, SYN, b"GET / HTTP/1.1\r\n\r\n"));
    c.feed(seg(S, C, 50, 29, SYN | ACK, b""));
    assert_eq!(
        c.sink.data,
        vec![(Dir::Fwd, 0, b"GET / HTTP/1.1\r\n\r\n".to_vec())]
    );
    c.feed(seg(C, S, 29, 51, ACK, b""));
    // the response and the FIN in one segment
    c.feed(seg(
        S,
        C,
        51,
        29,
        FIN | TcpFlags::PSH,
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ));
    let fin = c.tcp.dirs[Dir::Rev].fin().unwrap();
    assert_eq!(fin.off, 27);
    assert_eq!(c.sink.eofs, vec![(Dir::Rev, 27)]);
    // a repeated FIN is not a second close
    c.feed(seg(
        S,
        C,
        51,
        29,
        FIN | TcpFlags::PSH,
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ));
    assert_eq!(c.tcp.dirs[Dir::Rev].fin().unwrap().at.frame, 4);
    assert_eq!(c.stats.conflicting_fin, 0);
    // an RST's payload is diagnostic text, never stream data
    c.feed(seg(C, S, 29, 79, RST | ACK, b"reset reason"));
    assert!(c.tcp.dirs[Dir::Fwd].rst().is_some());
    assert_eq!(c.sink.bytes(Dir::Fwd), b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn mid_stream_pickup_maps_acks_into_the_other_direction() {
    let mut c = Conn::new();
    c.feed(seg(C, S, 5000, 9000, PSH, b"GET /a HTTP/1.1\r\n\r\n"));
    c.feed(seg(S, C, 9000, 5019, PSH, b"HTTP/1.1 200 OK\r\n\r\n"));
    assert_eq!(c.tcp.handshake, Handshake::Partial);
    assert!(!c.tcp.dirs[Dir::Fwd].seen_from_syn());
    assert_eq!(c.sink.bytes(Dir::Rev), b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(c.tcp.dirs[Dir::Rev].highest_ack(), Some(19));
}

#[derive(Default)]
struct Ends(Vec<(u64, EndReason)>);

impl FlowHandler<()> for Ends {
    fn on_event(&mut self, _: &ConnMeta, _: &mut (), _: FlowEvent<'_>) {}
    fn on_end(&mut self, end: ConnEnd, _: &mut ()) {
        self.0.push((end.conn.id, end.why));
    }
}

fn at(n: u64, secs: f64) -> FrameRef {
    FrameRef {
        input: 0,
        frame: n,
        ordinal: n,
        ts: Timestamp::from_secs_f64(secs),
    }
}

#[test]
fn new_syn_on_a_closed_tuple_starts_a_new_connection() {
    let mut t: FlowTable<()> = FlowTable::new(TableConfig::default());
    let mut ends = Ends::default();
    t.process(
        &seg(C, S, 100, 0, SYN, b""),
        at(1, 0.0),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg(S, C, 500, 101, SYN | ACK, b""),
        at(2, 0.0),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg(C, S, 101, 501, FIN, b""),
        at(3, 0.1),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg(S, C, 501, 102, FIN, b""),
        at(4, 0.1),
        &Sighting::default(),
        &mut ends,
    );
    // same 4-tuple, new ISN, 0.5 s later (before the linger expired)
    t.process(
        &seg(C, S, 90_000, 0, SYN, b""),
        at(5, 0.6),
        &Sighting::default(),
        &mut ends,
    );
    assert_eq!(ends.0, vec![(1, EndReason::Superseded)]);
    assert_eq!(t.stats().connections, 2);
    // a retransmitted SYN does not
    t.process(
        &seg(C, S, 90_000, 0, SYN, b""),
        at(6, 0.7),
        &Sighting::default(),
        &mut ends,
    );
    assert_eq!(t.stats().connections, 2);
    t.drain(&mut ends);
    assert_eq!(ends.0.last(), Some(&(5, EndReason::EndOfInput)));
}

#[test]
fn closed_connections_linger_then_expire_and_silence_splits() {
    let cfg = TableConfig {
        idle_timeout: 100.0,
        close_linger: 2.0,
        max_connections: 10,
        trace_segments: false,
    };
    let mut t: FlowTable<()> = FlowTable::new(cfg);
    let mut ends = Ends::default();
    t.process(
        &seg(C, S, 1, 1, PSH, b"x"),
        at(1, 0.0),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg(S, C, 1, 2, RST, b""),
        at(2, 1.0),
        &Sighting::default(),
        &mut ends,
    );
    t.expire(Timestamp::from_secs_f64(2.0), &mut ends);
    assert!(ends.0.is_empty());
    t.expire(Timestamp::from_secs_f64(3.5), &mut ends);
    assert_eq!(ends.0, vec![(1, EndReason::Closed)]);
    // silence longer than the idle timeout on an open connection
    t.process(
        &seg(C, S, 10, 1, PSH, b"y"),
        at(3, 10.0),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg(C, S, 11, 1, PSH, b"z"),
        at(4, 200.0),
        &Sighting::default(),
        &mut ends,
    );
    assert_eq!(ends.0.last(), Some(&(3, EndReason::Superseded)));
    assert_eq!(t.stats().connections_split_by_silence, 1);
}

#[test]
fn the_cap_on_connections_evicts_the_least_recently_active() {
    let cfg = TableConfig {
        max_connections: 2,
        ..TableConfig::default()
    };
    let mut t: FlowTable<()> = FlowTable::new(cfg);
    let mut ends = Ends::default();
    t.process(
        &seg("10.0.0.1:1", S, 1, 1, PSH, b"a"),
        at(1, 0.0),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg("10.0.0.1:2", S, 1, 1, PSH, b"a"),
        at(2, 1.0),
        &Sighting::default(),
        &mut ends,
    );
    t.process(
        &seg("10.0.0.1:3", S, 1, 1, PSH, b"a"),
        at(3, 2.0),
        &Sighting::default(),
        &mut ends,
    );
    assert_eq!(ends.0, vec![(1, EndReason::Evicted)]);
    assert_eq!(t.open_connections(), 2);
}

// ---- copies of segments: duplicates and NAT twins ----

const VIP: &str = "10.96.0.10:80";
const POD: &str = "10.1.2.3:8080";

fn ts(secs: f64) -> Timestamp {
    Timestamp::from_secs_f64(secs)
}

fn with_id(mut s: Segment<'_>, ip_id: u32) -> Segment<'_> {
    s.ip_id = ip_id;
    s
}

fn filter() -> CopyFilter {
    CopyFilter::new(600.0, 100)
}

#[test]
fn the_same_packet_twice_is_a_duplicate_a_retransmission_is_not() {
    let mut f = filter();
    let mut a = with_id(seg(C, S, 1, 1, PSH, b"GET / HTTP/1.1\r\n\r\n"), 7);
    assert_eq!(f.check(&mut a.clone(), ts(1.0)), Sighting::default());
    // captured again 30 us later (another interface): a duplicate, in the same view
    let s = f.check(&mut a, ts(1.000_03));
    assert!(s.duplicate && s.moved.is_none());
    // the stack sends it again (a tail loss probe 10 ms later): a new IP identification
    let mut r = with_id(a.clone(), 8);
    assert!(!f.check(&mut r, ts(1.01)).duplicate);
    // or the same identification (IPv6 without timestamps) but a retransmission timeout later
    let mut late = a.clone();
    assert!(!f.check(&mut late, ts(1.5)).duplicate);
    // other TCP timestamps: another packet
    let mut t1 = a.clone();
    t1.options = &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let mut t2 = t1.clone();
    t2.options = &[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2];
    assert!(!f.check(&mut t1, ts(2.0)).duplicate);
    assert!(!f.check(&mut t2, ts(2.0)).duplicate);
    assert!(f.check(&mut t1.clone(), ts(2.0)).duplicate);
    // a SYN whose MSS a middlebox clamped is still the same SYN
    let mut syn = seg(C, S, 100, 0, SYN, b"");
    syn.options = &[2, 4, 5, 180];
    let mut clamped = syn.clone();
    clamped.options = &[2, 4, 5, 100];
    assert!(!f.check(&mut syn, ts(3.0)).duplicate);
    assert!(f.check(&mut clamped, ts(3.0)).duplicate);
}

#[test]
fn both_sides_of_a_dnat_are_one_view() {
    let mut f = filter();
    // the client's SYN to the service address, then after the DNAT to the pod
    let mut syn = seg(C, VIP, 100, 0, SYN, b"");
    assert_eq!(f.check(&mut syn, ts(1.0)), Sighting::default());
    let mut syn_pod = seg(C, POD, 100, 0, SYN, b"");
    let s = f.check(&mut syn_pod, ts(1.000_01));
    assert!(s.duplicate);
    let m = s.moved.expect("moved to the first view");
    assert_eq!(
        (m.to.src, m.to.dst),
        (C.parse().unwrap(), VIP.parse().unwrap())
    );
    assert_eq!(
        (m.from.src, m.from.dst),
        (C.parse().unwrap(), POD.parse().unwrap())
    );
    assert_eq!(m.first_sender, C.parse().unwrap());
    assert_eq!((syn_pod.src, syn_pod.dst), (m.to.src, m.to.dst));
    // the pod's answer is captured on its side first: moved to the service's address ...
    let mut ack_pod = seg(POD, C, 500, 101, SYN | ACK, b"");
    let s = f.check(&mut ack_pod, ts(1.01));
    assert!(!s.duplicate);
    assert_eq!(ack_pod.src, VIP.parse().unwrap());
    assert_eq!(s.moved.unwrap().from.src, POD.parse().unwrap());
    // ... and its copy after the reverse translation is a duplicate
    let mut ack = seg(VIP, C, 500, 101, SYN | ACK, b"");
    let s = f.check(&mut ack, ts(1.010_01));
    assert!(s.duplicate && s.moved.is_none());
    // a new connection from the same port to the pod (no NAT this time) is its own
    let mut again = seg(C, POD, 9000, 0, SYN, b"");
    let s = f.check(&mut again, ts(50.0));
    assert_eq!(s, Sighting::default());
    assert_eq!(again.dst, POD.parse().unwrap());
}

#[test]
fn an_encapsulated_copy_is_a_duplicate_in_another_virtual_network() {
    let mut f = filter();
    let mut plain = seg(C, S, 1, 1, PSH, b"x");
    let mut inner = plain.clone();
    inner.vnet = Some(42);
    assert!(!f.check(&mut plain, ts(1.0)).duplicate);
    let s = f.check(&mut inner, ts(1.0));
    assert!(s.duplicate);
    assert_eq!(s.moved.unwrap().to.vnet, None);
    // from then on the VXLAN copies belong to the plain view
    let mut next = seg(S, C, 1, 2, ACK, b"");
    next.vnet = Some(42);
    let s = f.check(&mut next, ts(1.01));
    assert!(!s.duplicate);
    assert_eq!(next.vnet, None);
}

#[test]
fn aliases_expire_when_idle() {
    let mut f = CopyFilter::new(10.0, 100);
    let mut a = seg(C, VIP, 1, 1, PSH, b"x");
    f.check(&mut a, ts(1.0));
    f.check(&mut seg(C, POD, 1, 1, PSH, b"x"), ts(1.0));
    let mut b = seg(POD, C, 1, 2, ACK, b"");
    assert!(f.check(&mut b, ts(2.0)).moved.is_some());
    f.expire(ts(30.0));
    let mut c = seg(POD, C, 1, 2, ACK, b"");
    assert!(f.check(&mut c, ts(30.0)).moved.is_none());
}

/// Collects finished connections.
#[derive(Default)]
struct Finished(Vec<ConnEnd>);

impl FlowHandler<()> for Finished {
    fn on_event(&mut self, _: &ConnMeta, _: &mut (), _: FlowEvent<'_>) {}
    fn on_end(&mut self, end: ConnEnd, _: &mut ()) {
        self.0.push(end);
    }
}

#[test]
fn a_connection_seen_through_a_nat_and_a_tunnel_records_both() {
    use crate::decode::{Tunnel, TunnelKind, TunnelLayer};
    let mut t: FlowTable<()> = FlowTable::new(TableConfig::default());
    let mut f = filter();
    let mut done = Finished::default();
    let tunnel = Tunnel {
        outer: TunnelLayer {
            kind: TunnelKind::IpInIp,
            id: None,
            outer: Some(("172.31.1.1".parse().unwrap(), "172.31.1.2".parse().unwrap())),
        },
        inner: None,
        layers: 1,
    };
    let mut n = 0;
    let mut feed = |s: Segment<'_>, secs: f64, t: &mut FlowTable<()>| {
        let mut s = s;
        n += 1;
        let sighting = f.check(&mut s, ts(secs));
        t.process(&s, at(n, secs), &sighting, &mut done);
    };
    feed(seg(C, VIP, 100, 0, SYN, b""), 1.0, &mut t);
    feed(seg(C, POD, 100, 0, SYN, b""), 1.000_01, &mut t);
    let mut synack = seg(POD, C, 500, 101, SYN | ACK, b"");
    // the pod's side is an IP-in-IP overlay (Calico)
    synack.tunnel = Some(tunnel);
    feed(synack, 1.01, &mut t);
    feed(seg(VIP, C, 500, 101, SYN | ACK, b""), 1.010_01, &mut t);
    feed(seg(C, VIP, 101, 501, ACK, b""), 1.02, &mut t);
    feed(seg(C, POD, 101, 501, ACK, b""), 1.020_01, &mut t);
    t.drain(&mut done);
    assert_eq!(done.0.len(), 1, "one connection, not two");
    let end = &done.0[0];
    assert_eq!(end.conn.addrs[Dir::Rev], VIP.parse().unwrap());
    let twin = end.twin.expect("the other side of the NAT");
    assert_eq!(twin.addrs[Dir::Rev], POD.parse().unwrap());
    assert_eq!(twin.addrs[Dir::Fwd], C.parse().unwrap());
    // the connection's own addresses were seen first on the client's packets
    assert_eq!(twin.near, Dir::Fwd);
    assert_eq!(end.tunnel, Some((Dir::Rev, tunnel)));
    let st = t.stats();
    assert_eq!(
        (
            st.duplicate_segments,
            st.nat_twin_connections,
            st.tunnelled_segments
        ),
        (3, 1, 1)
    );
    assert_eq!(st.connections, 1);
    assert_eq!(st.retransmitted_segments, 0);
}

#[test]
fn ipv6_copies_and_aliases() {
    let (c6, vip6, pod6) = ("[2001:db8::10]:40000", "[fd00::a]:80", "[fd00:1::3]:8080");
    let mut f = filter();
    let mut a = seg(c6, vip6, 1, 1, PSH, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(f.check(&mut a, ts(1.0)), Sighting::default());
    assert!(f.check(&mut a.clone(), ts(1.0)).duplicate);
    let mut b = seg(c6, pod6, 1, 1, PSH, b"GET / HTTP/1.1\r\n\r\n");
    let s = f.check(&mut b, ts(1.0));
    assert!(s.duplicate);
    assert_eq!(s.moved.unwrap().from.dst, pod6.parse().unwrap());
    let mut reply = seg(pod6, c6, 1, 19, ACK, b"");
    f.check(&mut reply, ts(1.01));
    assert_eq!(reply.src, vip6.parse().unwrap());
}
