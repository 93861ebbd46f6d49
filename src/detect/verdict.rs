//! The verdict on a request that got no response, decided from sequence and acknowledgement
//! numbers alone (not packet order or timestamps, so it is the same whichever host captured):
//!
//! - the server's FIN whose ack does not cover the request proves the server never saw it;
//! - a request whose ack already covers the FIN proves its sender knew (stale reuse); one that
//!   does not means the two crossed in flight (the keep-alive race);
//! - an RST from the server before the request (by capture order and not acknowledging it), or
//!   after it with no FIN; a FIN that acknowledged the request: the server closed unanswered;
//! - the client's own close first, or no close at all, are not findings.
//!
//! HTTP/2 adds the GOAWAY in the role of the FIN for the streams above its last stream id, and
//! the server's RST_STREAM with REFUSED_STREAM (see [`super::h2`]).

use super::exchanges::PendingRequest;
use crate::app::GoAway;
use crate::flow::{CloseEvent, Closes, Dir};
use crate::report::schema::Kind;

/// Why a request got no response, with the closes that prove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The server's FIN does not cover the request and the request does not acknowledge the
    /// FIN: they crossed in flight.
    CrossedFin { fin: CloseEvent },
    /// The request acknowledged the server's FIN, which did not cover it: stale reuse.
    AfterFin { fin: CloseEvent },
    /// The server's FIN acknowledged the request: received, then closed without answering.
    ClosedUnanswered { fin: CloseEvent },
    /// The client closed first and the server's FIN answered that close.
    ClientClosedThenFin { client: CloseEvent, fin: CloseEvent },
    /// The server reset the connection before the request was sent on it.
    AfterRst { rst: CloseEvent },
    /// The server reset the connection after the request, with no FIN.
    ResetUnanswered { rst: CloseEvent },
    /// The client closed first; the server's RST followed.
    ClientClosedThenRst { client: CloseEvent, rst: CloseEvent },
    /// The client closed before any response or close by the server.
    ClientClosed { client: CloseEvent },
    /// No response and no close before the capture (or the connection's tracking) ended.
    UnansweredAtEnd,
    /// HTTP/2: a stream above the server's GOAWAY's last stream id whose HEADERS did not
    /// acknowledge the GOAWAY: they crossed in flight.
    CrossedGoaway { goaway: CloseEvent, info: GoAway },
    /// HTTP/2: a stream above the GOAWAY's last stream id, opened by HEADERS that
    /// acknowledged the GOAWAY.
    AfterGoaway { goaway: CloseEvent, info: GoAway },
    /// HTTP/2: the server reset the stream with REFUSED_STREAM.
    RefusedStream { reset: CloseEvent },
}

/// Which close of the server decided a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerClose {
    Fin(CloseEvent),
    Rst(CloseEvent),
    GoAway(CloseEvent, GoAway),
    /// RST_STREAM with this error code.
    RstStream(CloseEvent, u32),
}

impl PeerClose {
    pub fn event(self) -> CloseEvent {
        match self {
            PeerClose::Fin(c)
            | PeerClose::Rst(c)
            | PeerClose::GoAway(c, _)
            | PeerClose::RstStream(c, _) => c,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            PeerClose::Fin(_) => "fin",
            PeerClose::Rst(_) => "rst",
            PeerClose::GoAway(..) => "goaway",
            PeerClose::RstStream(..) => "rst_stream",
        }
    }
}

impl Verdict {
    pub fn kind(&self) -> Kind {
        match self {
            Verdict::CrossedFin { .. } => Kind::CrossedFin,
            Verdict::AfterFin { .. } => Kind::AfterFin,
            Verdict::ClosedUnanswered { .. } => Kind::ClosedUnanswered,
            Verdict::AfterRst { .. } => Kind::AfterRst,
            Verdict::ResetUnanswered { .. } => Kind::ResetUnanswered,
            Verdict::ClientClosedThenFin { .. }
            | Verdict::ClientClosedThenRst { .. }
            | Verdict::ClientClosed { .. } => Kind::ClientClosed,
            Verdict::UnansweredAtEnd => Kind::UnansweredAtEnd,
            Verdict::CrossedGoaway { .. } => Kind::CrossedGoaway,
            Verdict::AfterGoaway { .. } => Kind::AfterGoaway,
            Verdict::RefusedStream { .. } => Kind::RefusedStream,
        }
    }

    /// The server's close the verdict rests on.
    pub fn peer_close(&self) -> Option<PeerClose> {
        match *self {
            Verdict::CrossedFin { fin }
            | Verdict::AfterFin { fin }
            | Verdict::ClosedUnanswered { fin }
            | Verdict::ClientClosedThenFin { fin, .. } => Some(PeerClose::Fin(fin)),
            Verdict::AfterRst { rst }
            | Verdict::ResetUnanswered { rst }
            | Verdict::ClientClosedThenRst { rst, .. } => Some(PeerClose::Rst(rst)),
            Verdict::CrossedGoaway { goaway, info } | Verdict::AfterGoaway { goaway, info } => {
                Some(PeerClose::GoAway(goaway, info))
            }
            Verdict::RefusedStream { reset } => {
                Some(PeerClose::RstStream(reset, crate::app::h2::REFUSED_STREAM))
            }
            Verdict::ClientClosed { .. } | Verdict::UnansweredAtEnd => None,
        }
    }
}

/// Did the close's acknowledgement cover the request's first byte (the server had it)?
pub(crate) fn acks_request(close: &CloseEvent, req: &PendingRequest) -> bool {
    close.ack_off.is_some_and(|a| a > req.start)
}

/// The verdict on `req`, which got no response on a connection with these closes.
pub(crate) fn decide(req: &PendingRequest, closes: &Closes, client: Dir) -> Verdict {
    let server = client.other();
    let client_close = [closes.fin[client], closes.rst[client]]
        .into_iter()
        .flatten()
        .min_by_key(|c| c.at.ordinal);
    if let Some(fin) = closes.fin[server] {
        if !acks_request(&fin, req) {
            return if req.ack_off.is_some_and(|a| a > fin.off) {
                Verdict::AfterFin { fin }
            } else {
                Verdict::CrossedFin { fin }
            };
        }
        // the server's FIN answered the client's close (the client had sent a FIN) when it
        // acknowledged it
        let answered_client = client_close
            .filter(|c| closes.fin[client].is_some() && fin.ack_off.is_some_and(|a| a > c.off));
        return match answered_client {
            Some(client) => Verdict::ClientClosedThenFin { client, fin },
            None => Verdict::ClosedUnanswered { fin },
        };
    }
    if let Some(rst) = closes.rst[server] {
        return match client_close {
            Some(client) if client.at.ordinal < rst.at.ordinal => {
                Verdict::ClientClosedThenRst { client, rst }
            }
            _ if rst.at.ordinal < req.at.ordinal && !acks_request(&rst, req) => {
                Verdict::AfterRst { rst }
            }
            _ => Verdict::ResetUnanswered { rst },
        };
    }
    match client_close {
        Some(client) => Verdict::ClientClosed { client },
        None => Verdict::UnansweredAtEnd,
    }
}
