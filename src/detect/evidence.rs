//! The evidence of a verdict in English: the frames, relative sequence numbers and times that
//! prove it, as a reader checks them in Wireshark.

use super::exchanges::PendingRequest;
use super::verdict::{Verdict, acks_request};
use crate::flow::CloseEvent;

/// Offsets to add to stream offsets to get Wireshark-style relative sequence numbers (1 when
/// the direction was captured from its SYN, whose sequence number takes the first one).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RelativeSeq {
    pub client: i64,
    pub server: i64,
}

/// The server's idle closes seen so far (by the same client), to compare an idle time with.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct IdleRange {
    pub count: u64,
    pub min: f64,
    pub max: f64,
}

impl IdleRange {
    pub fn add(&mut self, idle: f64) {
        if self.count == 0 {
            (self.min, self.max) = (idle, idle);
        }
        self.count += 1;
        self.min = self.min.min(idle);
        self.max = self.max.max(idle);
    }

    /// Is `idle` about as long as these idle closes (within 10 %)?
    pub fn matches(&self, idle: f64) -> bool {
        self.count > 0 && idle >= 0.9 * self.min && idle <= 1.1 * self.max + 0.01
    }
}

/// A reset with no FIN right after a request on a connection idle for about the server's
/// idle-close time: the server closed its idle socket with the request unread, and its kernel
/// answered with RST (the keep-alive race, without a FIN on the wire).
pub(crate) fn is_idle_reset(v: &Verdict, req: &PendingRequest, idle: Option<&IdleRange>) -> bool {
    matches!(v, Verdict::ResetUnanswered { .. })
        && req
            .idle_before
            .zip(idle)
            .is_some_and(|(i, range)| range.matches(i))
}

/// The sentence(s) proving `v` for request `req`; `server_rst` is the server's RST, if any;
/// `idle` the server's idle closes seen so far.
pub(crate) fn describe(
    v: &Verdict,
    req: &PendingRequest,
    rel: RelativeSeq,
    server_rst: Option<&CloseEvent>,
    idle: Option<&IdleRange>,
) -> String {
    // relative sequence numbers of the client's and the server's streams
    let rq = |o: i64| o + rel.client;
    let rs = |o: i64| o + rel.server;
    let ack_of = |c: &CloseEvent| c.ack_off.map_or("none".to_string(), |a| rq(a).to_string());
    let req_ack = req
        .ack_off
        .map_or("none".to_string(), |a| rs(a).to_string());
    let mut text = match v {
        Verdict::ClientClosedThenFin { client, fin } => format!(
            "The client closed first (frame {}); the server's FIN (frame {}) answered that close, acknowledging client bytes up to {}.",
            client.at.frame,
            fin.at.frame,
            ack_of(fin)
        ),
        Verdict::ClosedUnanswered { fin } => format!(
            "The server's FIN (frame {}, ack {}) acknowledged the request, which starts at seq {}: the server received it and closed {:.6} s later without answering.",
            fin.at.frame,
            ack_of(fin),
            rq(req.start),
            fin.at.ts.secs_since(req.at.ts)
        ),
        Verdict::AfterFin { fin } => format!(
            "The request (frame {}, ack {}) acknowledged the server's FIN at seq {} (frame {}): the client's kernel had the FIN before the request was sent on the closed connection (stale reuse). The FIN's ack {} does not cover the request, which starts at seq {}: the server never saw it.",
            req.at.frame,
            req_ack,
            rs(fin.off),
            fin.at.frame,
            ack_of(fin),
            rq(req.start)
        ),
        Verdict::CrossedFin { fin } => format!(
            "The server's FIN (frame {}, ack {}) does not cover the request, which starts at seq {}: the server never saw it. The request (frame {}, ack {}) does not acknowledge the FIN at seq {}: the client had not received the FIN when it sent. They crossed in flight.",
            fin.at.frame,
            ack_of(fin),
            rq(req.start),
            req.at.frame,
            req_ack,
            rs(fin.off)
        ),
        Verdict::ClientClosedThenRst { client, rst } => format!(
            "The client closed first (frame {}); the server's RST (frame {}) followed.",
            client.at.frame, rst.at.frame
        ),
        Verdict::AfterRst { rst } => format!(
            "The server reset the connection (RST frame {}) {:.6} s before the request (frame {}) was sent on it.",
            rst.at.frame,
            req.at.ts.secs_since(rst.at.ts),
            req.at.frame
        ),
        Verdict::ResetUnanswered { rst } => describe_reset(req, rst, idle),
        Verdict::ClientClosed { client } => format!(
            "The client closed the connection (frame {}) before any response or close by the server.",
            client.at.frame
        ),
        Verdict::UnansweredAtEnd => "No response, FIN or RST from the server before the capture (or the connection's tracking) ended.".to_string(),
        Verdict::CrossedGoaway { .. } | Verdict::AfterGoaway { .. } | Verdict::RefusedStream { .. } => {
            super::h2::describe(v, req, rel)
        }
    };
    if let (Some(super::verdict::PeerClose::Fin(_)), Some(r)) = (v.peer_close(), server_rst)
        && v.kind().is_finding()
    {
        text.push_str(&format!(
            " The server then reset the connection (RST frame {}).",
            r.at.frame
        ));
    }
    text
}

/// An RST after the request with no FIN: whether it acknowledged the request, whether it has
/// the form of a kernel's reply to a segment for a socket it no longer has, and whether the
/// connection had idled about as long as the server's idle closes.
fn describe_reset(req: &PendingRequest, rst: &CloseEvent, idle: Option<&IdleRange>) -> String {
    let acked = if acks_request(rst, req) {
        "acknowledging the request's bytes"
    } else if rst.ack.is_some() {
        "not acknowledging the request"
    } else {
        "without ACK"
    };
    let form = if Some(rst.seq) == req.ack {
        "in reply form (its seq equals the request's ack)"
    } else {
        "not in reply form"
    };
    let why = match (req.idle_before, idle.filter(|r| r.count > 0)) {
        (Some(i), Some(r)) if r.matches(i) => format!(
            "the connection had been idle {i:.3} s before the request, about as long as the server's idle closes ({} seen, {:.3}-{:.3} s): the server closed its idle socket with the request unread and its kernel answered with RST, the keep-alive race without a FIN on the wire.",
            r.count, r.min, r.max
        ),
        (Some(i), Some(r)) => format!(
            "the connection had been idle {i:.3} s before the request, unlike the server's idle closes ({} seen, {:.3}-{:.3} s): an abortive close or a middlebox.",
            r.count, r.min, r.max
        ),
        _ => "an abortive close or a middlebox (no idle close by the server to compare the connection's idle time with).".to_string(),
    };
    format!(
        "The server reset the connection (RST frame {}, {}, {}) {:.6} s after the request (frame {}), with no FIN and no response: {}",
        rst.at.frame,
        acked,
        form,
        rst.at.ts.secs_since(req.at.ts),
        req.at.frame,
        why
    )
}
