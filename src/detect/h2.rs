//! What the detect stage does for HTTP/2: the server's GOAWAY in the role of the FIN for the
//! streams above its last stream id, its RST_STREAM with REFUSED_STREAM as a verdict of its
//! own, the GOAWAY's cause for the endpoint statistics, and requests whose heads could not be
//! decoded (named and matched by their stream alone).
//!
//! The rules, from sequence and acknowledgement numbers as for HTTP/1.x:
//! - a stream above the last stream id of a GOAWAY was never processed (RFC 9113 6.8); when
//!   the HEADERS that opened it acknowledged the GOAWAY's first byte, its client knew
//!   (`after_goaway`, a client bug), else they crossed in flight (`crossed_goaway`);
//! - a server's RST_STREAM with REFUSED_STREAM on a stream no GOAWAY covers is
//!   `refused_stream`, decided at once (the connection goes on; the finding is held until
//!   it ends, for its tunnel and NAT: see `Verdicts::open` in verdicts.rs);
//! - streams at or below the last stream id that got no response get the HTTP/1.x verdicts
//!   from the TCP closes.

use super::exchanges::{Exchanges, PendingRequest};
use super::verdict::{PeerClose, Verdict};
use super::{Detector, evidence::RelativeSeq};
use crate::app::h2::{REFUSED_STREAM, error_name};
use crate::app::{GoAway, Identity};
use crate::flow::{CloseEvent, ConnMeta};
use crate::report::schema::H2CloseInfo;
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};

/// The HTTP/2 part of a connection's exchanges (out of line: most connections have none).
#[derive(Debug, Default)]
pub(crate) struct H2Exchanges {
    /// The server's GOAWAYs: its first, and the last one that lowered the last stream id.
    goaways: SmallVec<[(CloseEvent, GoAway); 2]>,
    /// The server's first GOAWAY, for the endpoint statistics.
    pub sample: Option<GoAwaySample>,
}

/// A server's GOAWAY on a connection, as the endpoint statistics see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct GoAwaySample {
    pub error: u32,
    /// Requests on streams at or below its last stream id (those the server took).
    pub requests: u32,
    /// Seconds since the last response ended (or the handshake), when no stream was open.
    pub idle: Option<f64>,
}

/// The server sent a GOAWAY (`close` is its first byte).
pub(super) fn on_goaway(ex: &mut Exchanges, conn: &ConnMeta, close: CloseEvent, g: GoAway) {
    let taken = u64::from(ex.requests).saturating_sub(
        ex.pending
            .as_slice()
            .iter()
            .filter(|p| p.identity.stream.is_some_and(|s| s > g.last_stream))
            .count() as u64,
    );
    let idle = match ex.last_response_end() {
        _ if ex.in_response()
            || ex
                .pending
                .as_slice()
                .iter()
                .any(|p| p.identity.stream.is_none_or(|s| s <= g.last_stream)) =>
        {
            None
        }
        Some((end, _)) => Some(close.at.ts.secs_since(end).max(0.0)),
        None => conn
            .handshake
            .ack
            .or(conn.handshake.syn)
            .map(|t| close.at.ts.secs_since(t).max(0.0)),
    };
    let h = ex.h2_mut();
    let lowest = h.goaways.iter().map(|(_, g)| g.last_stream).min();
    match lowest {
        None => {
            h.goaways.push((close, g));
            h.sample = Some(GoAwaySample {
                error: g.error,
                requests: taken.min(u64::from(u32::MAX)) as u32,
                idle,
            });
        }
        Some(low) if g.last_stream < low => {
            h.goaways.truncate(1);
            h.goaways.push((close, g));
            if let Some(s) = &mut h.sample {
                s.requests = taken.min(u64::from(u32::MAX)) as u32;
                s.error = s.error.max(g.error);
            }
        }
        Some(_) => {}
    }
}

/// The GOAWAY that refused the stream of `req`, if one did.
fn refusing(h2: Option<&H2Exchanges>, stream: Option<u32>) -> Option<(CloseEvent, GoAway)> {
    let s = stream?;
    h2?.goaways.iter().copied().find(|(_, g)| g.last_stream < s)
}

/// The verdict on an unanswered request whose stream a GOAWAY refused; None when none did.
pub(super) fn goaway_verdict(req: &PendingRequest, h2: Option<&H2Exchanges>) -> Option<Verdict> {
    let (goaway, info) = refusing(h2, req.identity.stream)?;
    Some(if req.ack_off.is_some_and(|a| a > goaway.off) {
        Verdict::AfterGoaway { goaway, info }
    } else {
        Verdict::CrossedGoaway { goaway, info }
    })
}

impl Detector {
    /// The server reset stream `stream`: with REFUSED_STREAM (and no GOAWAY refusing it) its
    /// request gets its verdict now; any other reset ends it without one.
    pub(super) fn on_stream_reset(
        &mut self,
        conn: &ConnMeta,
        ex: &mut Exchanges,
        stream: u32,
        error: u32,
        reset: CloseEvent,
    ) {
        let Some(i) = ex.pending.position_of_stream(stream) else {
            return;
        };
        if refusing(ex.h2(), Some(stream)).is_some() {
            return;
        }
        let Some(req) = ex.pending.remove(i, &mut self.spare) else {
            return;
        };
        if error != REFUSED_STREAM {
            return;
        }
        let Some(client) = ex.client else { return };
        let verdict = Verdict::RefusedStream { reset };
        self.judge_open(conn, client, req, verdict, ex);
    }
}

/// The method and target a finding shows for a request whose head was not decoded: "HTTP/2"
/// and "stream N (head not decoded)".
pub(super) fn request_name(id: &Identity) -> Option<(String, String)> {
    let s = id.stream.filter(|_| id.method.is_empty())?;
    Some(("HTTP/2".into(), format!("stream {s} (head not decoded)")))
}

/// The retry key of a request whose head was not decoded: its own (nothing can repeat it).
pub(super) fn retry_key(id: &Identity, conn: u64) -> Option<u64> {
    let s = id.stream.filter(|_| id.method.is_empty())?;
    let mut h = rustc_hash::FxHasher::default();
    ("h2 undecoded", conn, s).hash(&mut h);
    Some(h.finish())
}

/// What the report says of a GOAWAY or RST_STREAM close.
pub(super) fn close_info(pc: PeerClose) -> Option<H2CloseInfo> {
    match pc {
        PeerClose::GoAway(_, g) => Some(H2CloseInfo {
            last_stream_id: Some(g.last_stream),
            error_code: g.error,
            error: error_name(g.error),
        }),
        PeerClose::RstStream(_, code) => Some(H2CloseInfo {
            last_stream_id: None,
            error_code: code,
            error: error_name(code),
        }),
        PeerClose::Fin(_) | PeerClose::Rst(_) => None,
    }
}

/// The evidence of the HTTP/2 verdicts (empty for the others).
pub(super) fn describe(v: &Verdict, req: &PendingRequest, rel: RelativeSeq) -> String {
    let rq = |o: i64| o + rel.client;
    let rs = |o: i64| o + rel.server;
    let stream = req.identity.stream.unwrap_or(0);
    let req_ack = req
        .ack_off
        .map_or("none".to_string(), |a| rs(a).to_string());
    let goaway_text = |c: &CloseEvent, g: &GoAway| {
        format!(
            "GOAWAY (frame {}, last stream {}, {})",
            c.at.frame,
            g.last_stream,
            error_name(g.error)
        )
    };
    let server_had = |c: &CloseEvent| match c.ack_off {
        Some(a) if a > req.start => format!(
            "its ack {} covers the HEADERS: the server had received them but not processed the stream",
            rq(a)
        ),
        Some(a) => format!(
            "its ack {} does not cover the HEADERS at seq {}: the server had not received them",
            rq(a),
            rq(req.start)
        ),
        None => "it carried no ack".to_string(),
    };
    match v {
        Verdict::CrossedGoaway { goaway, info } => format!(
            "The server's {} does not cover stream {stream}: the server never processed it (RFC 9113 6.8: safe to retry); {}. The HEADERS (frame {}, ack {req_ack}) do not acknowledge the GOAWAY at seq {}: the client had not received it when it opened the stream. They crossed in flight.",
            goaway_text(goaway, info),
            server_had(goaway),
            req.at.frame,
            rs(goaway.off)
        ),
        Verdict::AfterGoaway { goaway, info } => format!(
            "The HEADERS of stream {stream} (frame {}, ack {req_ack}) acknowledged the server's {} at seq {}: the client opened a stream above the last stream id on a connection it knew was going away (a client bug); the server never processed it.",
            req.at.frame,
            goaway_text(goaway, info),
            rs(goaway.off)
        ),
        Verdict::RefusedStream { reset } => format!(
            "The server reset stream {stream} with RST_STREAM REFUSED_STREAM (frame {}) {:.6} s after its HEADERS (frame {}): it did not process the request (RFC 9113 8.7: safe to retry).",
            reset.at.frame,
            reset.at.ts.secs_since(req.at.ts),
            req.at.frame
        ),
        _ => String::new(),
    }
}
