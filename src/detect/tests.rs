use super::*;
use crate::app::Identity;
use crate::flow::FrameRef;
use crate::flow::{CloseEvent, Closes, Dir, EndReason, HandshakeTimes, PerDir, SeqNumber};
use crate::report::schema::{Finding, Kind, Outcome};
use crate::time::Timestamp;

/// Seconds a failure waits for its competitors (the engine's close linger and two ticks).
const SETTLE: f64 = 2.2;

/// The two parts of the detect stage over one shard, as the engine runs them: an epoch ends
/// with each connection and at each tick.
struct Detect {
    d: Detector,
    v: Verdicts,
    now: Timestamp,
}

impl Detect {
    fn new(cfg: DetectConfig, inputs: Vec<String>, settle: f64) -> Detect {
        Detect {
            d: Detector::new(),
            v: Verdicts::new(&cfg, inputs, settle, cfg.retry_window + 2.0 * settle),
            now: Timestamp::default(),
        }
    }

    fn on_message(&mut self, conn: &ConnMeta, ex: &mut Exchanges, ev: AppEvent, at: &SegMeta) {
        self.d.on_message(conn, ex, ev, at);
    }

    fn finish_conn(&mut self, end: &ConnEnd, ex: &mut Exchanges, now: Timestamp) {
        self.d.finish_conn(end, ex);
        self.tick(now);
    }

    fn tick(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
        self.v.epoch(&mut [self.d.records()], self.now);
    }

    fn take_ready(&mut self) -> Vec<Finding> {
        self.v.take_ready().collect()
    }

    /// The endpoint statistics of the connections, and what the findings add to them.
    fn finish(&mut self) -> (Vec<EndpointTally>, FindingTally) {
        self.tick(self.now);
        (self.d.finish(), self.v.finish())
    }

    fn stats(&self) -> &DetectStats {
        self.d.stats()
    }
}

fn at(frame: u64, secs: f64) -> FrameRef {
    FrameRef {
        input: 0,
        frame,
        ordinal: frame,
        ts: Timestamp::from_secs_f64(secs),
    }
}

/// A connection from 10.0.0.1:`client_port` (its first packet, direction Fwd) to 10.0.0.2:80.
fn conn(id: u64, client_port: u16) -> ConnMeta {
    ConnMeta {
        id,
        addrs: PerDir::new(
            format!("10.0.0.1:{client_port}").parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ),
        syn_client: Some(Dir::Fwd),
        from_syn: PerDir::new(true, true),
        handshake: HandshakeTimes::default(),
    }
}

/// Request `target` at client offset `start` sent in frame `f` carrying `ack_off`.
fn request(
    d: &mut Detect,
    c: &ConnMeta,
    ex: &mut Exchanges,
    target: &str,
    start: i64,
    f: FrameRef,
    ack_off: i64,
) {
    let identity = Identity {
        method: "GET".into(),
        target: target.into(),
        host: Some("h".into()),
        body_len: Some(0),
        request_id: None,
        tls: None,
        stream: None,
    };
    send(d, c, ex, identity, (start, f, ack_off));
}

/// A request with `identity` at client offset `start` sent in frame `f` carrying `ack_off`.
fn send(
    d: &mut Detect,
    c: &ConnMeta,
    ex: &mut Exchanges,
    identity: Identity,
    (start, f, ack_off): (i64, FrameRef, i64),
) {
    let first = SegMeta {
        at: f,
        seq: SeqNumber(1 + start as u32),
        off: start,
        ack: Some(SeqNumber(1 + ack_off as u32)),
        ack_off: Some(ack_off),
    };
    let r = Request {
        dir: Dir::Fwd,
        start,
        first,
        identity,
    };
    d.on_message(c, ex, AppEvent::Request(r), &first);
}

/// A final keep-alive response by the server, completed by segment `m`.
fn response(d: &mut Detect, c: &ConnMeta, ex: &mut Exchanges, m: SegMeta) {
    let r = Response {
        dir: Dir::Rev,
        start: 0,
        first: m,
        status: 200,
        interim: false,
        closes_connection: false,
        keep_alive: Some("timeout=1".into()),
        stream: None,
        server: None,
    };
    d.on_message(c, ex, AppEvent::Response(r), &m);
}

fn close(f: FrameRef, off: i64, ack_off: Option<i64>) -> CloseEvent {
    CloseEvent {
        at: f,
        seq: SeqNumber(1 + off as u32),
        off,
        ack: ack_off.map(|a| SeqNumber(1 + a as u32)),
        ack_off,
    }
}

/// The end of `c` with the server's (Rev) FIN and RST, and the client's FIN.
fn end_of(
    c: &ConnMeta,
    client_fin: Option<CloseEvent>,
    fin: Option<CloseEvent>,
    rst: Option<CloseEvent>,
) -> ConnEnd {
    ConnEnd {
        conn: *c,
        closes: Closes {
            fin: PerDir::new(client_fin, fin),
            rst: PerDir::new(None, rst),
        },
        stream_end: PerDir::new(None, None),
        tunnel: None,
        twin: None,
        why: EndReason::Closed,
    }
}

/// One answered request (ends at 1.0 s), then GET /x at client offset 30.
fn keepalive_then(d: &mut Detect, c: &ConnMeta, t: f64, ack_off: i64) -> Exchanges {
    let mut ex = Exchanges::default();
    request(d, c, &mut ex, "/first", 0, at(4, 0.5), 0);
    let m = SegMeta {
        at: at(5, 1.0),
        ..SegMeta::default()
    };
    response(d, c, &mut ex, m);
    d.on_message(c, &mut ex, AppEvent::ResponseEnd { dir: Dir::Rev }, &m);
    request(d, c, &mut ex, "/x", 30, at(7, t), ack_off);
    ex
}

fn one(d: &mut Detect) -> Finding {
    d.finish();
    let mut r = d.take_ready();
    assert_eq!(r.len(), 1, "{r:?}");
    r.remove(0)
}

fn secs(s: f64) -> Timestamp {
    Timestamp::from_secs_f64(s)
}

#[test]
fn fin_and_request_that_do_not_acknowledge_each_other_crossed() {
    let mut d = Detect::new(DetectConfig::default(), vec!["a.pcap".into()], SETTLE);
    let c = conn(1, 1000);
    let mut ex = keepalive_then(&mut d, &c, 2.0, 40);
    let fin = close(at(6, 1.99), 40, Some(30));
    let rst = close(at(8, 2.01), 41, None);
    d.finish_conn(&end_of(&c, None, Some(fin), Some(rst)), &mut ex, secs(5.0));
    let f = one(&mut d);
    assert_eq!(f.kind, Kind::CrossedFin);
    assert_eq!(f.outcome, Outcome::Lost);
    assert_eq!((f.request.frame, f.request.index), (7, 1));
    assert_eq!(f.request.file, "a.pcap");
    assert_eq!(f.peer_close.as_ref().unwrap().frame, 6);
    assert!(!f.peer_close.as_ref().unwrap().acks_request);
    assert_eq!(f.rst.as_ref().unwrap().frame, 8);
    assert!((f.fin_to_request_s.unwrap() - 0.01).abs() < 1e-9);
    assert!((f.idle_before_s.unwrap() - 1.0).abs() < 1e-9);
    assert!(f.evidence.contains("crossed in flight"), "{}", f.evidence);
    assert!(f.evidence.ends_with("(RST frame 8)."), "{}", f.evidence);
}

#[test]
fn request_acknowledging_the_fin_is_after_fin() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let c = conn(1, 1000);
    let mut ex = keepalive_then(&mut d, &c, 2.0, 41);
    let fin = close(at(6, 1.5), 40, Some(30));
    d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(5.0));
    assert_eq!(one(&mut d).kind, Kind::AfterFin);
}

#[test]
fn fin_acknowledging_the_request_is_closed_unanswered() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let c = conn(1, 1000);
    let mut ex = keepalive_then(&mut d, &c, 2.0, 40);
    let fin = close(at(9, 30.0), 40, Some(60));
    d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(50.0));
    assert_eq!(one(&mut d).kind, Kind::ClosedUnanswered);
}

#[test]
fn rst_before_or_after_the_request() {
    for (rst_frame, kind) in [(6, Kind::AfterRst), (9, Kind::ResetUnanswered)] {
        let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
        let c = conn(1, 1000);
        let mut ex = keepalive_then(&mut d, &c, 2.0, 40);
        let t = rst_frame as f64 / 4.0;
        let rst = close(at(rst_frame, t), 40, Some(30));
        d.finish_conn(&end_of(&c, None, None, Some(rst)), &mut ex, secs(50.0));
        let f = one(&mut d);
        assert_eq!(f.kind, kind);
        assert!(f.kind.is_finding());
    }
}

#[test]
fn no_close_is_informational_and_client_close_first_too() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let c = conn(1, 1000);
    let mut ex = keepalive_then(&mut d, &c, 2.0, 40);
    d.finish_conn(&end_of(&c, None, None, None), &mut ex, secs(9.0));
    assert_eq!(one(&mut d).kind, Kind::UnansweredAtEnd);

    let mut ex = keepalive_then(&mut d, &c, 2.0, 40);
    let client_fin = close(at(8, 3.0), 60, Some(40));
    let fin = close(at(9, 3.1), 40, Some(61));
    d.finish_conn(
        &end_of(&c, Some(client_fin), Some(fin), None),
        &mut ex,
        secs(9.0),
    );
    let f = one(&mut d);
    assert_eq!(f.kind, Kind::ClientClosed);
    assert!(!f.kind.is_finding());
}

#[test]
fn same_request_on_another_connection_within_the_window_is_a_retry() {
    // soon after the FIN: retried; 0.3 s later, with nothing else to tell the request's rate:
    // as likely a fresh one; after the window: lost
    for (delay, outcome) in [
        (0.005, Outcome::Retried),
        (0.3, Outcome::Ambiguous),
        (1.5, Outcome::Lost),
    ] {
        let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
        let c = conn(1, 1000);
        let mut ex = keepalive_then(&mut d, &c, 2.0, 40);
        let fin = close(at(6, 1.99), 40, Some(30));
        // the verdict is made before the retry arrives; the retry window keeps it open
        d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(2.1));
        assert!(d.take_ready().is_empty());
        let c2 = conn(2, 1001);
        let mut ex2 = Exchanges::default();
        request(&mut d, &c2, &mut ex2, "/x", 0, at(20, 2.0 + delay), 0);
        d.tick(secs(5.3));
        let f = d.take_ready().pop().expect("decided by now");
        assert_eq!(f.outcome, outcome, "{delay}");
        assert_eq!(f.retry.is_some(), outcome == Outcome::Retried);
        assert_eq!(f.retry_candidates.is_some(), outcome == Outcome::Ambiguous);
    }
}

#[test]
fn a_response_captured_before_its_request_answers_it_by_ack() {
    let c = conn(1, 1000);
    let fin = || Some(close(at(4, 5.0), 40, Some(30)));
    // the server's response (its segment acknowledges the 30 request bytes) comes first
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let mut ex = Exchanges::default();
    let m = SegMeta {
        at: at(2, 0.1),
        ack_off: Some(30),
        ..SegMeta::default()
    };
    response(&mut d, &c, &mut ex, m);
    request(&mut d, &c, &mut ex, "/a", 0, at(3, 0.05), 0);
    d.finish_conn(&end_of(&c, None, fin(), None), &mut ex, secs(9.0));
    d.finish();
    assert!(d.take_ready().is_empty());
    // a response whose ack does not cover the request does not answer it
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let mut ex = Exchanges::default();
    let m = SegMeta {
        ack_off: Some(0),
        ..m
    };
    response(&mut d, &c, &mut ex, m);
    request(&mut d, &c, &mut ex, "/a", 0, at(3, 0.05), 0);
    d.finish_conn(&end_of(&c, None, fin(), None), &mut ex, secs(9.0));
    assert_eq!(one(&mut d).kind, Kind::ClosedUnanswered);
}

#[test]
fn no_verdict_when_the_server_sent_data_after_the_request_but_its_framing_was_lost() {
    for (server_bytes, verdicts) in [(Some(100), 0), (None, 1)] {
        let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
        let c = conn(1, 1000);
        let mut ex = Exchanges::default();
        request(&mut d, &c, &mut ex, "/a", 0, at(1, 0.0), 0);
        let m = SegMeta {
            at: at(2, 0.1),
            ..SegMeta::default()
        };
        d.on_message(
            &c,
            &mut ex,
            AppEvent::Desync {
                dir: Dir::Rev,
                anomaly: None,
            },
            &m,
        );
        let mut end = end_of(&c, None, Some(close(at(3, 5.0), 100, Some(30))), None);
        end.stream_end[Dir::Rev] = server_bytes;
        d.finish_conn(&end, &mut ex, secs(9.0));
        d.finish();
        assert_eq!(d.take_ready().len(), verdicts);
        assert_eq!(d.stats().unframed_responses, 1 - verdicts as u64);
    }
}

#[test]
fn idle_closes_and_recommendation() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    for (n, idle) in [(1u64, 1.0), (2, 1.2), (3, 0.9)] {
        let c = conn(n, 1000 + n as u16);
        let mut ex = Exchanges::default();
        request(&mut d, &c, &mut ex, "/a", 0, at(1, 0.0), 0);
        let m = SegMeta {
            at: at(2, 0.1),
            ..SegMeta::default()
        };
        response(&mut d, &c, &mut ex, m);
        d.on_message(&c, &mut ex, AppEvent::ResponseEnd { dir: Dir::Rev }, &m);
        let fin = close(at(3, 0.1 + idle), 40, Some(30));
        d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(10.0));
    }
    let c = conn(9, 2000);
    let mut ex = keepalive_then(&mut d, &c, 1.95, 40);
    let fin = close(at(6, 1.99), 40, Some(30));
    d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(10.0));
    let (tallies, found) = d.finish();
    let (eps, _) = merge_endpoints(vec![tallies], found);
    assert_eq!(eps.len(), 1);
    let e = &eps[0];
    assert_eq!(e.connections, 4);
    // the race's FIN is an idle close too: the server had not seen the request
    assert_eq!(e.idle_closes.count, 4);
    assert!((e.idle_closes.median_s.unwrap() - 0.995).abs() < 1e-6);
    assert!((e.idle_closes.min_s.unwrap() - 0.9).abs() < 1e-6);
    assert_eq!(e.findings, 1);
    let rec = e.recommendation.as_deref().unwrap();
    // under a second: in milliseconds
    assert!(rec.contains("after about 995 ms"), "{rec}");
    assert!(rec.contains("up to 950 ms"), "{rec}");
    assert_eq!(
        e.keep_alive.iter().next().map(String::as_str),
        Some("timeout=1")
    );
}

// ---- the retry matcher on its own ----

/// An encrypted request at client offset `start`, first record `len` bytes, in frame `f`.
fn tls_request(
    d: &mut Detect,
    c: &ConnMeta,
    ex: &mut Exchanges,
    len: u16,
    start: i64,
    f: FrameRef,
    ack_off: i64,
) {
    let identity = Identity::encrypted(crate::app::TlsIdentity {
        version: "TLS 1.3",
        sni: Some("up.example".into()),
        record_len: len,
        ..Default::default()
    });
    send(d, c, ex, identity, (start, f, ack_off));
}

/// A connection whose SYN was captured at `syn` s.
fn new_conn(id: u64, client_port: u16, syn: f64) -> ConnMeta {
    ConnMeta {
        handshake: HandshakeTimes {
            syn: Some(secs(syn)),
            syn_ack: Some(secs(syn + 0.0001)),
            ack: Some(secs(syn + 0.0002)),
        },
        ..conn(id, client_port)
    }
}

/// Encrypted requests: named by place and size; a retry is the first request of a new
/// connection with a first record of the same length (a later request of the same size on
/// another connection is not), and the finding says it was matched by size.
#[test]
fn encrypted_requests_are_retried_by_size_on_a_new_connections_first_request() {
    let mut d = Detect::new(DetectConfig::default(), vec!["a.pcap".into()], SETTLE);
    let (c1, c2, c3) = (conn(1, 1000), conn(2, 1001), new_conn(3, 1002, 2.05));
    let mut ex1 = Exchanges::default();
    tls_request(&mut d, &c1, &mut ex1, 113, 500, at(10, 2.0), 900);
    let fin = close(at(9, 1.99), 900, Some(500));
    d.finish_conn(&end_of(&c1, None, Some(fin), None), &mut ex1, secs(2.0));
    // a pooled connection's second request of the same size: not a retry
    let mut ex2 = Exchanges::default();
    tls_request(&mut d, &c2, &mut ex2, 82, 500, at(11, 1.5), 900);
    response(&mut d, &c2, &mut ex2, SegMeta::default());
    tls_request(&mut d, &c2, &mut ex2, 113, 600, at(12, 2.02), 1000);
    // a new connection whose first request has a first record of 113 bytes
    let mut ex3 = Exchanges::default();
    tls_request(&mut d, &c3, &mut ex3, 113, 500, at(20, 2.1), 900);
    let f = one(&mut d);
    assert_eq!((f.kind, f.outcome), (Kind::CrossedFin, Outcome::Retried));
    assert_eq!(
        (f.request.method.as_str(), f.request.target.as_str()),
        ("TLS", "request #1 (113 bytes)")
    );
    let tls = f.request.tls.as_ref().unwrap();
    assert!(tls.encrypted);
    assert_eq!(tls.record_len, Some(113));
    let retry = f.retry.as_ref().unwrap();
    assert_eq!(
        (retry.connection, retry.frame, retry.matched_by),
        (3, 20, "size")
    );
    assert!(f.evidence.contains("matched by size"), "{}", f.evidence);
}

/// A TLS alert from the server before its FIN is its close: a request that acknowledged the
/// alert (but not the FIN, sent later) was sent after the close signal.
#[test]
fn a_server_alert_before_its_fin_is_the_close() {
    let mut d = Detect::new(DetectConfig::default(), vec!["a.pcap".into()], SETTLE);
    let c = conn(1, 1000);
    // the alert (31 bytes at server offset 40) before the FIN at 71; the request acked the
    // alert, not the FIN (on the FIN alone the two would have crossed)
    let mut ex = keepalive_then(&mut d, &c, 2.0, 71);
    let alert = close(at(6, 1.9), 40, Some(30));
    d.on_message(
        &c,
        &mut ex,
        AppEvent::Closing {
            dir: Dir::Rev,
            close: alert,
            goaway: None,
        },
        &alert,
    );
    let fin = close(at(8, 1.95), 71, Some(30));
    d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(5.0));
    let f = one(&mut d);
    assert_eq!(f.kind, Kind::AfterFin, "{}", f.evidence);
    let pc = f.peer_close.as_ref().unwrap();
    assert_eq!((pc.close_type, pc.frame), ("tls_alert", 6));
    assert!(f.evidence.contains("server's TLS alert"), "{}", f.evidence);
    assert!(
        f.evidence.contains("before its FIN (frame 8)"),
        "{}",
        f.evidence
    );
}

mod matcher {
    use super::super::retry::{Attempt, Decided, ExactId, Failure, RetryMatcher};
    use super::*;

    const PROXY: &str = "10.0.0.1";

    /// Request `index` on connection `conn` (port 1000 + conn), captured at `t` in frame
    /// `frame`.
    pub(super) fn attempt(conn: u64, index: u32, frame: u64, t: f64) -> Attempt {
        Attempt {
            conn,
            index,
            at: at(frame, t),
            opened: None,
            client: PROXY.parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            key: 7,
            exact: None,
            digest: None,
            client_turn: None,
            size_only: false,
        }
    }

    fn id(n: u64) -> Option<ExactId> {
        Some(ExactId {
            hash: n,
            label: "X-Request-ID",
        })
    }

    /// Feed the attempts, then the failures (attempt, close time), and decide everything.
    fn decide(attempts: &[Attempt], failures: &[(usize, f64)]) -> Vec<(u64, Decided)> {
        let mut m = RetryMatcher::new(1.0, SETTLE);
        // another request opened the capture well before
        m.on_attempt(&Attempt {
            key: 99,
            ..attempt(99, 0, 1, 0.0)
        });
        // the engine hands the attempts over in the order of their ordinals
        let mut sorted: Vec<&Attempt> = attempts.iter().collect();
        sorted.sort_by_key(|a| a.at.ordinal);
        for a in sorted {
            m.on_attempt(a);
        }
        for &(i, close) in failures {
            m.on_failure(&Failure {
                attempt: attempts[i].clone(),
                close: Some(secs(close)),
            });
        }
        m.finish();
        let mut out: Vec<(u64, Decided)> = m
            .take_decided()
            .into_iter()
            .map(|(c, _, d)| (c, d))
            .collect();
        out.sort_by_key(|&(c, _)| c);
        out
    }

    fn retried_by(d: &Decided) -> Option<u64> {
        match d {
            Decided::Retried(m) => Some(m.at.frame),
            _ => None,
        }
    }

    #[test]
    fn two_identical_requests_failing_together_and_one_retry() {
        // without identity both could have been retried: neither outcome is a fact
        let a = [
            attempt(1, 3, 10, 1.0000),
            attempt(2, 5, 11, 1.0001),
            attempt(3, 0, 14, 1.0005),
        ];
        let got = decide(&a, &[(0, 1.0002), (1, 1.0003)]);
        assert_eq!(got[0].1, Decided::Ambiguous { candidates: 1 });
        assert_eq!(got[1].1, Decided::Ambiguous { candidates: 1 });
        // with identity headers the retry names its request
        let mut a = a;
        a[0].exact = id(1);
        a[1].exact = id(2);
        a[2].exact = id(2);
        let got = decide(&a, &[(0, 1.0002), (1, 1.0003)]);
        assert_eq!(got[0].1, Decided::Lost);
        assert_eq!(retried_by(&got[1].1), Some(14));
        let Decided::Retried(m) = got[1].1 else {
            unreachable!()
        };
        assert_eq!(m.by, Some("X-Request-ID"));
        // the retry was sent before the second failure was known: it can only be the first's
        // (the second request was sent long before and answered late by a close)
        let a = [
            attempt(1, 3, 10, 1.0000),
            attempt(2, 5, 11, 0.9),
            attempt(3, 0, 14, 1.0003),
        ];
        let got = decide(&a, &[(0, 1.0002), (1, 1.0004)]);
        assert_eq!(retried_by(&got[0].1), Some(14));
        assert_eq!(got[1].1, Decided::Lost);
    }

    #[test]
    fn a_retry_that_fails_again_and_its_own_retry() {
        // the proxy retries on another pooled connection that the upstream closed at the
        // same moment, then on a new one: each failure names the next attempt
        let a = [
            attempt(1, 3, 10, 1.0000),
            attempt(2, 5, 14, 1.0005),
            attempt(3, 0, 18, 1.0010),
        ];
        let got = decide(&a, &[(0, 1.0002), (1, 1.0007)]);
        assert_eq!(retried_by(&got[0].1), Some(14), "{got:?}");
        assert_eq!(retried_by(&got[1].1), Some(18), "{got:?}");
    }

    #[test]
    fn a_request_sent_before_the_close_could_arrive_is_not_a_retry() {
        // captured near the upstream: the proxy answers the handshake 20 ms after the
        // SYN-ACK passed, so it learns of a FIN captured at 1.010 s no earlier than 1.030 s
        let mut f = attempt(1, 3, 10, 1.0);
        f.client_turn = Some(0.020);
        for (t, retried) in [(1.015, false), (1.032, true)] {
            let got = decide(&[f.clone(), attempt(2, 0, 14, t)], &[(0, 1.010)]);
            assert_eq!(got[0].1 != Decided::Lost, retried, "{t}");
            if retried {
                let Decided::Retried(m) = got[0].1 else {
                    panic!("{:?}", got[0].1)
                };
                assert!((m.reaction_s - 0.002).abs() < 1e-6, "{m:?}");
            }
        }
        // round trips vary: between half and all of it, a request is a quick retry or a fresh
        // one; with the failure's identity header it is the retry
        let got = decide(&[f.clone(), attempt(2, 0, 14, 1.025)], &[(0, 1.010)]);
        assert_eq!(got[0].1, Decided::Ambiguous { candidates: 1 });
        let (mut fx, mut rx) = (f.clone(), attempt(2, 0, 14, 1.025));
        (fx.exact, rx.exact) = (id(3), id(3));
        let got = decide(&[fx, rx], &[(0, 1.010)]);
        assert_eq!(retried_by(&got[0].1), Some(14));
        // captured at the proxy: the same request 5 ms after the FIN is a retry, one sent
        // before it is not
        let f = attempt(1, 3, 10, 1.0);
        let got = decide(&[f.clone(), attempt(2, 0, 14, 1.015)], &[(0, 1.010)]);
        assert_eq!(retried_by(&got[0].1), Some(14));
        let got = decide(&[f, attempt(2, 0, 14, 1.005)], &[(0, 1.010)]);
        assert_eq!(got[0].1, Decided::Lost);
    }

    #[test]
    fn a_retry_on_a_pooled_connection() {
        // the retry is request 4 of a connection opened long before
        let mut pooled = attempt(5, 4, 14, 1.0102);
        pooled.opened = Some(secs(0.2));
        let got = decide(&[attempt(1, 3, 10, 1.0), pooled], &[(0, 1.010)]);
        assert_eq!(retried_by(&got[0].1), Some(14));
        // a request on the failed connection itself is not its retry
        let got = decide(
            &[attempt(1, 3, 10, 1.0), attempt(1, 4, 14, 1.0102)],
            &[(0, 1.010)],
        );
        assert_eq!(got[0].1, Decided::Lost);
    }

    #[test]
    fn requests_with_different_bodies_do_not_repeat_each_other() {
        let mut f = attempt(1, 3, 10, 1.0);
        f.digest = Some(1);
        for (digest, retried) in [(Some(2), false), (Some(1), true), (None, true)] {
            let mut r = attempt(2, 0, 14, 1.0102);
            r.digest = digest;
            let got = decide(&[f.clone(), r], &[(0, 1.010)]);
            assert_eq!(retried_by(&got[0].1).is_some(), retried, "{digest:?}");
        }
        // a different body length is another key
        let mut r = attempt(2, 0, 14, 1.0102);
        r.key = 8;
        assert_eq!(decide(&[f, r], &[(0, 1.010)])[0].1, Decided::Lost);
    }

    #[test]
    fn a_busy_request_is_not_called_a_retry_by_chance() {
        // a POST fails amid identical POSTs every 2 ms: the next one is no evidence of a
        // retry (the proxy never retried it); the one after the failure is as likely fresh
        let mut a: Vec<Attempt> = (0..100)
            .map(|n| attempt(10 + n, 1, 100 + n, 0.9 + n as f64 * 0.002))
            .collect();
        a.push(attempt(1, 3, 10, 1.0001));
        let failed = a.len() - 1;
        let got = decide(&a, &[(failed, 1.0003)]);
        assert!(
            matches!(got[0].1, Decided::Ambiguous { candidates } if candidates > 1),
            "{:?}",
            got[0].1
        );
    }

    #[test]
    fn with_identity_headers_a_chain_of_attempts_is_followed() {
        // the first attempt fails, its retry fails too, the third is answered
        let mut a = [
            attempt(1, 3, 10, 1.0),
            attempt(2, 1, 14, 1.0102),
            attempt(3, 0, 20, 1.0205),
        ];
        for x in &mut a {
            x.exact = id(9);
        }
        let got = decide(&a, &[(0, 1.010), (1, 1.020)]);
        assert_eq!(retried_by(&got[0].1), Some(14));
        assert_eq!(retried_by(&got[1].1), Some(20));
    }
}

// ---- bounded cost ----

mod bounds {
    use super::super::retry::{Attempt, Decided, Failure, MAX_SCAN, RetryMatcher};
    use super::matcher::attempt;
    use super::*;

    /// `n` identical requests pipelined on one connection (a few per packet) after the server
    /// closed it, all failing: the attempts and failures looked at grow linearly with `n`
    /// (each failure's window holds every later request).
    fn pipelined(n: u64, with_retry: bool) -> (u64, Vec<Decided>) {
        let mut m = RetryMatcher::new(1.0, SETTLE);
        let attempts: Vec<Attempt> = (0..n)
            .map(|i| attempt(1, i as u32, 10 + i / 4, 1.0 + (i / 4) as f64 * 1e-6))
            .collect();
        for a in &attempts {
            m.on_attempt(a);
        }
        if with_retry {
            m.on_attempt(&attempt(2, 0, 10 + n, 1.5));
        }
        for a in &attempts {
            m.on_failure(&Failure {
                attempt: a.clone(),
                close: Some(secs(0.5)),
            });
        }
        m.tick(secs(10.0));
        let (attempts_kept, failures_kept, work) = m.footprint();
        assert!(attempts_kept <= n as usize + 1);
        assert!(failures_kept <= n as usize);
        let decided = m.take_decided().into_iter().map(|(_, _, d)| d).collect();
        (work, decided)
    }

    #[test]
    fn identical_pipelined_failures_cost_linear_work() {
        for n in [2_000u64, 20_000] {
            for with_retry in [false, true] {
                let (work, decided) = pipelined(n, with_retry);
                assert_eq!(decided.len(), n as usize);
                assert!(
                    work <= 4 * (MAX_SCAN as u64 + 4) * n,
                    "{n} failures: {work} looked at"
                );
                // a single later request cannot be told from a fresh one amid so many
                if !with_retry {
                    assert!(decided.iter().all(|d| *d == Decided::Lost));
                }
            }
        }
    }
}

// ---- HTTP/2 ----

fn h2_identity(method: &str, target: &str, stream: u32) -> Identity {
    Identity {
        method: method.into(),
        target: target.into(),
        host: Some("h".into()),
        body_len: Some(0),
        request_id: None,
        tls: None,
        stream: Some(stream),
    }
}

/// The client's HEADERS for `request` ("METHOD target", or "" for a head not decoded) on
/// `stream` at client offset `start`, sent in frame `f` carrying `ack_off`.
fn h2_request(
    d: &mut Detect,
    c: &ConnMeta,
    ex: &mut Exchanges,
    request: &str,
    stream: u32,
    at_ack: (i64, FrameRef, i64),
) {
    let (method, target) = request.split_once(' ').unwrap_or(("", ""));
    send(d, c, ex, h2_identity(method, target, stream), at_ack);
}

fn h2_response(d: &mut Detect, c: &ConnMeta, ex: &mut Exchanges, stream: u32, m: SegMeta) {
    let r = Response {
        dir: Dir::Rev,
        start: m.off,
        first: m,
        status: 200,
        interim: false,
        closes_connection: false,
        keep_alive: None,
        stream: Some(stream),
        server: None,
    };
    d.on_message(c, ex, AppEvent::Response(r), &m);
    d.on_message(c, ex, AppEvent::ResponseEnd { dir: Dir::Rev }, &m);
}

fn goaway(d: &mut Detect, c: &ConnMeta, ex: &mut Exchanges, g: CloseEvent, last_stream: u32) {
    let ev = AppEvent::Closing {
        dir: Dir::Rev,
        close: g,
        goaway: Some(crate::app::GoAway {
            last_stream,
            error: 0,
        }),
    };
    d.on_message(c, ex, ev, &g);
}

/// Streams 1 and 3 answered out of order, 5 taken by the server (at or below the GOAWAY's
/// last stream id 5) but unanswered when it closed, 7 crossed the GOAWAY, 9 was opened after
/// the client had acknowledged it.
#[test]
fn goaway_decides_the_streams_above_its_last_stream_id() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let c = conn(1, 1000);
    let mut ex = Exchanges::default();
    h2_request(&mut d, &c, &mut ex, "GET /1", 1, (24, at(4, 0.1), 9));
    h2_request(&mut d, &c, &mut ex, "GET /3", 3, (60, at(5, 0.2), 9));
    h2_response(&mut d, &c, &mut ex, 3, close(at(6, 0.3), 9, Some(100)));
    h2_response(&mut d, &c, &mut ex, 1, close(at(7, 0.4), 50, Some(100)));
    h2_request(&mut d, &c, &mut ex, "POST /5", 5, (100, at(8, 1.0), 90));
    // the GOAWAY at server offset 200 acknowledges stream 5's HEADERS, not stream 7's
    let g = close(at(9, 2.0), 200, Some(140));
    goaway(&mut d, &c, &mut ex, g, 5);
    h2_request(&mut d, &c, &mut ex, "GET /7", 7, (140, at(10, 2.001), 90));
    h2_request(&mut d, &c, &mut ex, "GET /9", 9, (180, at(12, 2.05), 217));
    let fin = close(at(13, 2.1), 217, Some(220));
    d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(9.0));
    d.finish();
    let mut r = d.take_ready();
    r.sort_by_key(|f| f.request.frame);
    let got: Vec<_> = r
        .iter()
        .map(|f| (f.request.target.as_str(), f.request.stream, f.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("/5", Some(5), Kind::ClosedUnanswered),
            ("/7", Some(7), Kind::CrossedGoaway),
            ("/9", Some(9), Kind::AfterGoaway),
        ]
    );
    let crossed = &r[1];
    let pc = crossed.peer_close.as_ref().unwrap();
    assert_eq!((pc.close_type, pc.frame), ("goaway", 9));
    let h2 = pc.h2.as_ref().unwrap();
    assert_eq!((h2.last_stream_id, h2.error), (Some(5), "NO_ERROR"));
    assert!(
        crossed.evidence.contains("last stream 5, NO_ERROR"),
        "{}",
        crossed.evidence
    );
    assert!(
        crossed.evidence.contains("crossed in flight"),
        "{}",
        crossed.evidence
    );
    assert!(r[2].evidence.contains("a client bug"), "{}", r[2].evidence);
    assert_eq!(r[0].peer_close.as_ref().unwrap().close_type, "fin");
}

#[test]
fn refused_stream_is_decided_at_once_and_its_retry_found() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let c = conn(1, 1000);
    let mut ex = Exchanges::default();
    // history for the retry matcher's rarity test
    h2_request(&mut d, &c, &mut ex, "GET /lead-in", 1, (24, at(2, 0.0), 9));
    h2_response(&mut d, &c, &mut ex, 1, close(at(3, 0.01), 9, Some(60)));
    h2_request(&mut d, &c, &mut ex, "GET /a", 3, (60, at(4, 1.0), 9));
    let reset = close(at(5, 1.01), 9, Some(100));
    let ev = AppEvent::StreamReset {
        dir: Dir::Rev,
        stream: 3,
        error: crate::app::h2::REFUSED_STREAM,
        reset,
    };
    d.on_message(&c, &mut ex, ev, &reset);
    assert!(ex.pending.is_empty(), "the stream's request is decided");
    // the retry, on another connection
    let c2 = conn(2, 1001);
    let mut ex2 = Exchanges::default();
    h2_request(&mut d, &c2, &mut ex2, "GET /a", 1, (24, at(8, 1.012), 9));
    d.tick(secs(5.0));
    let f = one(&mut d);
    assert_eq!(f.kind, Kind::RefusedStream);
    assert_eq!(f.outcome, Outcome::Retried, "{f:?}");
    assert_eq!(f.peer_close.as_ref().unwrap().close_type, "rst_stream");
    assert!(
        f.evidence.contains("REFUSED_STREAM (frame 5)"),
        "{}",
        f.evidence
    );
}

#[test]
fn other_stream_resets_and_client_resets_give_no_verdict() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let c = conn(1, 1000);
    let mut ex = Exchanges::default();
    h2_request(&mut d, &c, &mut ex, "GET /a", 1, (24, at(4, 1.0), 9));
    h2_request(&mut d, &c, &mut ex, "GET /b", 3, (60, at(5, 1.0), 9));
    let reset = close(at(6, 1.01), 9, Some(60));
    for (dir, stream) in [(Dir::Rev, 1), (Dir::Fwd, 3)] {
        let ev = AppEvent::StreamReset {
            dir,
            stream,
            error: 0x8,
            reset,
        };
        d.on_message(&c, &mut ex, ev, &reset);
    }
    // the server's CANCEL ended stream 1; the client's own reset of 3 leaves it waiting
    let left: Vec<_> = ex
        .pending
        .as_slice()
        .iter()
        .map(|p| p.identity.stream)
        .collect();
    assert_eq!(left, [Some(3)]);
}

#[test]
fn undecoded_heads_are_named_by_their_stream_and_never_matched() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    let mut findings = Vec::new();
    for (id, port) in [(1, 1000), (2, 1001)] {
        let c = conn(id, port);
        let mut ex = Exchanges::default();
        h2_request(&mut d, &c, &mut ex, "", 3, (24, at(id * 10, id as f64), 9));
        let fin = close(at(id * 10 + 1, id as f64 - 0.001), 9, Some(24));
        d.finish_conn(&end_of(&c, None, Some(fin), None), &mut ex, secs(id as f64));
    }
    d.finish();
    findings.extend(d.take_ready());
    assert_eq!(findings.len(), 2);
    for f in &findings {
        assert_eq!(f.request.method, "HTTP/2");
        assert_eq!(f.request.target, "stream 3 (head not decoded)");
        assert_eq!(f.outcome, Outcome::Lost);
    }
}

#[test]
fn goaways_by_cause_per_endpoint() {
    let mut d = Detect::new(DetectConfig::default(), vec![], SETTLE);
    // three connections capped after 2 requests: GOAWAY right after the second response
    for id in 1..=3u64 {
        let c = conn(id, 1000 + id as u16);
        let mut ex = Exchanges::default();
        let t = id as f64 * 10.0;
        for (i, s) in [1u32, 3].into_iter().enumerate() {
            let ft = t + i as f64;
            h2_request(
                &mut d,
                &c,
                &mut ex,
                "GET /x",
                s,
                (24 + 40 * i as i64, at(id * 100 + 2 * i as u64, ft), 9),
            );
            h2_response(
                &mut d,
                &c,
                &mut ex,
                s,
                close(
                    at(id * 100 + 2 * i as u64 + 1, ft + 0.01),
                    9 + 50 * i as i64,
                    Some(64 + 40 * i as i64),
                ),
            );
        }
        let g = close(at(id * 100 + 9, t + 1.011), 120, Some(104));
        goaway(&mut d, &c, &mut ex, g, 3);
        d.finish_conn(
            &end_of(
                &c,
                None,
                Some(close(at(id * 100 + 10, t + 1.02), 137, Some(104))),
                None,
            ),
            &mut ex,
            secs(t + 2.0),
        );
    }
    // one idle for 2 s after its only request
    let c = conn(9, 2000);
    let mut ex = Exchanges::default();
    h2_request(&mut d, &c, &mut ex, "GET /y", 1, (24, at(900, 50.0), 9));
    h2_response(&mut d, &c, &mut ex, 1, close(at(901, 50.01), 9, Some(64)));
    goaway(&mut d, &c, &mut ex, close(at(902, 52.01), 60, Some(64)), 1);
    d.finish_conn(&end_of(&c, None, None, None), &mut ex, secs(53.0));
    let (tallies, _) = d.finish();
    let (eps, _) = merge_endpoints(vec![tallies], FindingTally::default());
    let g = eps[0].goaways.as_ref().unwrap();
    assert_eq!(g.count, 4);
    assert_eq!(g.requests_per_connection, Some(2));
    assert_eq!(g.by_cause.get("request_limit"), Some(&3));
    assert_eq!(g.by_cause.get("idle"), Some(&1));
    assert!((g.idle.median_s.unwrap() - 2.0).abs() < 1e-6, "{g:?}");
}
