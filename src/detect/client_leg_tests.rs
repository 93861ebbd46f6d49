//! Tests of the client leg.

use super::*;

mod tests_support {
    use super::*;
    use crate::report::schema::{CloseInfo, ConnectionInfo, RequestInfo};

    pub fn ts(ms: f64) -> Timestamp {
        Timestamp::from_secs_f64(ms / 1000.0)
    }

    pub fn at(frame: u64, ms: f64) -> FrameRef {
        FrameRef {
            input: 0,
            frame,
            ordinal: frame,
            ts: ts(ms),
        }
    }

    /// A failed upstream request (connection `conn`, frame `frame` at `ms`), closed by a FIN
    /// 1 ms later.
    pub fn failure(conn: u64, frame: u64, ms: f64, target: &str, kind: Kind) -> Finding {
        Finding {
            kind,
            outcome: Outcome::Ambiguous,
            request: RequestInfo {
                method: "GET".into(),
                target: target.into(),
                host: None,
                file: "p.pcap".into(),
                frame,
                time: ts(ms),
                index: 0,
                seq: 1,
                ack: Some(1),
                retransmissions: 0,
                tls: None,
                stream: None,
            },
            connection: ConnectionInfo::new(
                conn,
                "10.0.0.1:40000".parse().unwrap(),
                "10.0.0.9:8000".parse().unwrap(),
            ),
            peer_close: Some(CloseInfo {
                close_type: "fin",
                file: "p.pcap".into(),
                frame: frame + 1,
                time: ts(ms + 1.0),
                seq: 1,
                ack: Some(1),
                acks_request: false,
                h2: None,
            }),
            rst: None,
            fin_to_request_s: None,
            idle_before_s: Some(1.0),
            retry: None,
            retry_candidates: Some(2),
            evidence: String::new(),
            client_effect: None,
            ladder: None,
            flagged_frames: None,
            idle_race: false,
        }
    }

    /// A client's request to the proxy (connection `conn`) at `ms`, answered at `answer_ms`.
    pub fn front(
        conn: u64,
        ms: f64,
        target: &str,
        answer: Answer,
        answer_ms: f64,
    ) -> FrontExchange {
        FrontExchange {
            conn,
            index: 0,
            key: front_key("GET", target),
            client: "127.0.0.1:50000".parse().unwrap(),
            server: "127.0.0.1:8080".parse().unwrap(),
            request: at(conn * 100, ms),
            answer,
            answer_at: at(conn * 100 + 1, answer_ms),
            known_at: ts(answer_ms),
        }
    }

    pub fn decide(legs: &SharedLegs) -> Vec<Finding> {
        let mut l = legs.lock().unwrap();
        l.finish();
        let mut v = l.take_decided(None);
        v.sort_by_key(|f| f.connection.id);
        v
    }
}

mod links {
    use super::tests_support::*;
    use super::*;
    use crate::report::schema::ConnectionInfo;

    #[test]
    fn a_unique_client_request_links_and_settles() {
        let legs = ClientLegs::shared(1, vec!["p.pcap".into()], 5.0);
        {
            let mut l = legs.lock().unwrap();
            l.add_fronts([&mut vec![
                front(7, 99.0, "/a", Answer::Response(502), 102.0),
                // answered before the failure: not its client
                front(8, 98.0, "/b", Answer::Response(200), 100.5),
                front(9, 98.0, "/b", Answer::Response(200), 103.0),
                front(10, 98.5, "/b", Answer::Response(200), 103.0),
            ]]);
            l.add_final(0, failure(1, 10, 100.0, "/a", Kind::CrossedFin), ts(3000.0));
            l.add_final(0, failure(2, 20, 100.0, "/b", Kind::CrossedFin), ts(3000.0));
        }
        let out = decide(&legs);
        let e = out[0].client_effect.as_ref().expect("linked");
        assert_eq!(
            (e.status, e.frame, e.settled_outcome),
            (Some(502), 701, true)
        );
        assert_eq!(out[0].outcome, Outcome::Lost);
        assert!(out[0].evidence.contains("settled by the client leg"));
        // two client requests fit: neither is stated
        assert!(out[1].client_effect.is_none());
        assert_eq!(out[1].outcome, Outcome::Ambiguous);
    }

    /// The client leg's own finding (the proxy closed its client's connection) is claimed by
    /// the upstream failure and is no finding of its own; whichever shard reports first.
    #[test]
    fn the_client_legs_finding_is_claimed_whatever_the_order() {
        let run = |upstream_first: bool| {
            let legs = ClientLegs::shared(2, vec!["p.pcap".into()], 5.0);
            let mut l = legs.lock().unwrap();
            let mut client = failure(7, 700, 99.0, "/a", Kind::ClosedUnanswered);
            client.connection = ConnectionInfo::new(
                7,
                "127.0.0.1:50000".parse().unwrap(),
                "127.0.0.1:8080".parse().unwrap(),
            );
            l.add_fronts([&mut vec![front(7, 99.0, "/a", Answer::Closed, 102.0)]]);
            let upstream = failure(1, 10, 100.0, "/a", Kind::CrossedFin);
            if upstream_first {
                l.add_final(1, upstream, ts(3000.0));
                l.progress(1, ts(3000.0));
                l.add_final(0, client, ts(2900.0));
                l.progress(0, ts(2900.0));
            } else {
                l.add_final(0, client, ts(2900.0));
                l.progress(0, ts(9000.0));
                l.add_final(1, upstream, ts(3000.0));
                l.progress(1, ts(3000.0));
            }
            l.progress(0, ts(9000.0));
            l.progress(1, ts(9000.0));
            drop(l);
            decide(&legs)
        };
        for order in [true, false] {
            let out = run(order);
            assert_eq!(out.len(), 1, "{out:?}");
            let e = out[0].client_effect.as_ref().unwrap();
            assert!(e.closed_without_response);
            assert_eq!(out[0].outcome, Outcome::Lost);
        }
    }
}

mod proxy_tests {
    use super::tests_support::*;
    use super::*;

    /// The same request to another upstream is no client leg: a client leg ends at the
    /// address the upstream request came from (or on loopback).
    #[test]
    fn only_requests_to_the_proxy_are_client_legs() {
        let legs = ClientLegs::shared(1, vec!["p.pcap".into()], 5.0);
        {
            let mut l = legs.lock().unwrap();
            let mut other = front(7, 99.0, "/a", Answer::Response(200), 102.0);
            other.server = "10.0.0.8:80".parse().unwrap();
            let mut at_proxy = front(8, 99.0, "/b", Answer::Response(502), 102.0);
            at_proxy.server = "10.0.0.1:443".parse().unwrap();
            // the proxy (10.0.0.1) sent requests upstream; so did 10.0.0.8
            l.add_clients(["10.0.0.1".parse().unwrap(), "10.0.0.8".parse().unwrap()]);
            l.add_fronts([&mut vec![other, at_proxy]]);
            l.add_final(0, failure(1, 10, 100.0, "/a", Kind::CrossedFin), ts(3000.0));
            l.add_final(0, failure(2, 20, 100.0, "/b", Kind::CrossedFin), ts(3000.0));
        }
        let out = decide(&legs);
        assert!(out[0].client_effect.is_none());
        assert_eq!(out[1].client_effect.as_ref().unwrap().status, Some(502));
    }

    /// An exchange can only be a client leg when its server sent requests itself (a proxy)
    /// or is on loopback: the others (a plain upstream capture's) are not kept.
    #[test]
    fn exchanges_with_servers_that_never_sent_a_request_are_not_kept() {
        let legs = ClientLegs::shared(1, vec!["p.pcap".into()], 5.0);
        let mut l = legs.lock().unwrap();
        let at = |conn, server: &str| {
            let mut f = front(conn, 99.0, "/a", Answer::Response(200), 102.0);
            f.server = server.parse().unwrap();
            f
        };
        l.add_clients(["10.0.0.1".parse().unwrap()]);
        l.add_fronts([&mut vec![
            at(1, "10.0.0.9:8000"),
            at(2, "10.0.0.1:443"),
            at(3, "127.0.0.1:8080"),
            at(4, "[::1]:8080"),
        ]]);
        let kept: Vec<u64> = l.fronts.values().flatten().map(|f| f.conn).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(l.kept, 3);
        // beyond the bound on remembered clients, every exchange is kept
        l.add_clients((0..=MAX_CLIENTS as u32).map(|i| IpAddr::from(i.to_be_bytes())));
        l.add_fronts([&mut vec![at(5, "10.0.0.9:8000")]]);
        assert_eq!(l.kept, 4);
    }
}
