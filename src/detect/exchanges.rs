//! The request/response exchanges of one connection: requests waiting for their response, and
//! what the endpoint statistics need (idle times, keep-alive values).
//!
//! At most [`MAX_PENDING`] requests wait for their response per connection; the requests after
//! them are counted (`untracked`) until the responses catch up, so that responses still answer
//! the requests in order, and get no verdict.

use crate::app::{Identity, Response};
use crate::flow::{CloseEvent, Dir, FrameRef, SeqNumber};
use crate::time::Timestamp;
use smallvec::SmallVec;
use std::collections::VecDeque;

/// Bound on responses waiting for their request.
const MAX_EARLY_RESPONSES: usize = 64;
/// Requests waiting for their response, tracked at most per connection.
pub(crate) const MAX_PENDING: usize = 1024;

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
    /// Hash of what a retry repeats (the retry matcher's key).
    pub key: u64,
    /// Digest of the body, once complete.
    pub digest: Option<u64>,
}

/// The exchanges of one connection.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// The client's direction, once known (from the handshake or the first message).
    pub(super) client: Option<Dir>,
    pub(super) pending: VecDeque<PendingRequest>,
    /// Requests after the pending ones that are not tracked (more than `MAX_PENDING` waited),
    /// in order: responses answer them after the pending ones.
    pub(super) untracked: u64,
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
    last_response_close: bool,
    in_response: bool,
    /// The server's framing was lost (a head that did not parse, or a gap in a head).
    pub(super) server_desync: bool,
    /// The server's close signal in its protocol (a TLS alert), when it sent one.
    pub(super) close_signal: Option<CloseEvent>,
    /// Responses seen before any request they could answer (the capture put the server's
    /// direction first): how many client bytes each one's segment acknowledged.
    early_responses: VecDeque<i64>,
}

impl Exchanges {
    /// A segment of direction `dir` repeated bytes already delivered; returns the pending
    /// requests looked at (those it repeated the first byte of, found by binary search).
    pub fn on_retransmit(&mut self, dir: Dir, off: i64, len: u64) -> usize {
        if Some(dir) != self.client {
            return 0;
        }
        // the pending requests are in stream order: those starting in [off, off + len)
        let end = off.saturating_add(len.min(i64::MAX as u64) as i64);
        let from = self.pending.partition_point(|r| r.start < off);
        let mut looked = 0;
        for r in self.pending.range_mut(from..) {
            looked += 1;
            if r.start >= end {
                break;
            }
            r.retransmissions += 1;
        }
        looked
    }

    /// Track a new request (false: more than `MAX_PENDING` wait, it is counted as untracked).
    pub(super) fn push_pending(&mut self, req: PendingRequest) -> bool {
        if self.untracked > 0 || self.pending.len() >= MAX_PENDING {
            self.untracked += 1;
            return false;
        }
        if self.pending.capacity() == 0 {
            // the common case: one request in flight
            self.pending.reserve_exact(1);
        }
        self.pending.push_back(req);
        true
    }

    /// A final response answers the first pending request, or the first untracked one; false
    /// when no request waited.
    fn pop_pending(&mut self) -> bool {
        let answered = match self.pending.pop_front() {
            Some(_) => true,
            None if self.untracked > 0 => {
                self.untracked -= 1;
                true
            }
            None => false,
        };
        if self.pending.is_empty() && self.pending.capacity() > 1 {
            // an idle connection keeps no queue
            self.pending = VecDeque::new();
        }
        answered
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
            Some((end, _))
                if self.pending.is_empty() && self.untracked == 0 && !self.in_response =>
            {
                Some(ts.secs_since(end).max(0.0))
            }
            _ => None,
        }?;
        self.max_reuse_idle = Some(self.max_reuse_idle.map_or(idle, |m: f64| m.max(idle)));
        Some(idle)
    }

    /// A final response began; false when no request was waiting for it.
    pub(super) fn on_final_response(&mut self, r: &Response) -> bool {
        self.responses += 1;
        if let Some(ka) = &r.keep_alive
            && self.keep_alive.len() < 8
            && !self.keep_alive.contains(ka)
        {
            self.keep_alive.push(ka.clone());
        }
        self.in_response = true;
        self.last_response_close = r.closes_connection;
        self.pop_pending()
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
