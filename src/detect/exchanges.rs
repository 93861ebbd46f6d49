//! The request/response exchanges of one connection: requests waiting for their response, and
//! what the endpoint statistics need (idle times, keep-alive values).

use super::h2::H2Exchanges;
use super::ladder::{Trace, Traced};
use super::retry::Attempt;
use crate::app::{Identity, Response};
use crate::flow::{CloseEvent, Dir, FrameRef, SeqNumber};
use crate::time::Timestamp;
use smallvec::SmallVec;
use std::collections::VecDeque;

/// Bound on responses waiting for their request.
const MAX_EARLY_RESPONSES: usize = 64;

/// A request on a connection, from its head until its response or verdict.
#[derive(Clone, Debug)]
pub(crate) struct PendingRequest {
    /// 0-based index of the request on its connection.
    pub index: u32,
    /// Stream offset of its first byte.
    pub start: i64,
    /// The segment of its first byte: where, its sequence number, what it acknowledged.
    pub at: FrameRef,
    pub seq: SeqNumber,
    pub ack: Option<SeqNumber>,
    pub ack_off: Option<i64>,
    pub identity: Identity,
    /// Idle time before it, since the previous response ended.
    pub idle_before: Option<f64>,
    pub retransmissions: u32,
    /// The request as the retry matcher knows it.
    pub attempt: Attempt,
}

/// The exchanges of one connection.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// The client's direction, once known (from the handshake or the first message).
    pub(super) client: Option<Dir>,
    pub(super) pending: VecDeque<PendingRequest>,
    pub(super) next_index: u32,
    pub(super) requests: u64,
    pub(super) responses: u64,
    /// A message was seen: the connection counts as HTTP.
    pub(super) http: bool,
    /// When the last final response ended, and whether it ended the connection's keep-alive
    /// (Connection: close or read-until-close).
    pub(super) last_response_end: Option<(Timestamp, bool)>,
    pub(super) max_reuse_idle: Option<f64>,
    /// Distinct Keep-Alive header values (usually one).
    pub(super) keep_alive: SmallVec<[String; 1]>,
    /// Distinct `Server` header values (usually one).
    pub(super) server_software: SmallVec<[String; 1]>,
    last_response_close: bool,
    in_response: bool,
    /// The server's framing was lost (a head that did not parse, or a gap in a head).
    pub(super) server_desync: bool,
    /// The server's close signal in its protocol (a TLS alert), when it sent one.
    pub(super) close_signal: Option<CloseEvent>,
    /// Responses seen before any request they could answer (the capture put the server's
    /// direction first): how many client bytes each one's segment acknowledged.
    early_responses: VecDeque<i64>,
    /// HTTP/2: the server's GOAWAYs.
    pub(super) h2: Option<Box<H2Exchanges>>,
    /// The connection's last segments (when the flow stage traces them).
    pub(super) trace: Trace,
}

impl Exchanges {
    /// A segment of the connection (traced for the ladder diagrams).
    pub fn on_segment(&mut self, dir: Dir, flags: u8, len: u32, meta: crate::flow::SegMeta) {
        self.trace.push(Traced {
            dir,
            flags,
            len,
            meta,
        });
    }

    /// A segment of direction `dir` repeated bytes already delivered.
    pub fn on_retransmit(&mut self, dir: Dir, off: i64, len: u64) {
        if Some(dir) != self.client {
            return;
        }
        for r in self.pending.iter_mut() {
            if off <= r.start && r.start < off + len as i64 {
                r.retransmissions += 1;
            }
        }
    }

    /// A request starting at `start` was already answered by a response the capture showed
    /// earlier (its ack covers the request).
    pub(super) fn answered_early(&mut self, start: i64) -> bool {
        let answered = self.early_responses.front().is_some_and(|&ack| ack > start);
        if answered {
            self.early_responses.pop_front();
        }
        answered
    }

    /// The idle time before a request sent at `ts` (when the connection was idle), noted for
    /// the longest reuse.
    pub(super) fn idle_before(&mut self, ts: Timestamp) -> Option<f64> {
        let idle = match self.last_response_end {
            Some((end, _)) if self.pending.is_empty() && !self.in_response => {
                Some(ts.secs_since(end).max(0.0))
            }
            _ => None,
        }?;
        self.max_reuse_idle = Some(self.max_reuse_idle.map_or(idle, |m: f64| m.max(idle)));
        Some(idle)
    }

    /// A final response began; returns the request it answers, if one was waiting.
    pub(super) fn on_final_response(&mut self, r: &Response) -> Option<PendingRequest> {
        self.responses += 1;
        if let Some(ka) = &r.keep_alive
            && self.keep_alive.len() < 8
            && !self.keep_alive.contains(ka)
        {
            self.keep_alive.push(ka.clone());
        }
        if let Some(s) = &r.server
            && self.server_software.len() < 8
            && !self.server_software.contains(s)
        {
            self.server_software.push(s.clone());
        }
        self.in_response = true;
        self.last_response_close = r.closes_connection;
        match r.stream {
            // HTTP/2: the request on the same stream
            Some(s) => {
                let i = self
                    .pending
                    .iter()
                    .position(|p| p.identity.stream == Some(s))?;
                self.pending.remove(i)
            }
            None => self.pending.pop_front(),
        }
    }

    /// A final response began and has not ended.
    pub(super) fn in_response(&self) -> bool {
        self.in_response
    }

    /// A response with no request waiting: its request may come later in the capture, the
    /// ack of the response's segment will tell. False when there is no room to wait.
    pub(super) fn wait_for_request(&mut self, ack_off: Option<i64>) -> bool {
        match ack_off {
            Some(ack) if self.early_responses.len() < MAX_EARLY_RESPONSES => {
                self.early_responses.push_back(ack);
                true
            }
            _ => false,
        }
    }

    /// The final response ended at `ts`.
    pub(super) fn on_response_end(&mut self, ts: Timestamp) {
        if self.in_response {
            self.in_response = false;
            self.last_response_end = Some((ts, self.last_response_close));
        }
    }
}
