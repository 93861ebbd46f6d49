//! The request/response exchanges of one connection: requests waiting for their response, and
//! what the endpoint statistics need (idle times, keep-alive values).
//!
//! At most [`MAX_PENDING`] requests wait for their response per connection; the requests after
//! them are counted (`untracked`) until the responses catch up, so that responses still answer
//! the requests in order, and get no verdict.

use super::h2::H2Exchanges;
use super::ladder::{Trace, Traced};
use crate::app::{Identity, Response};
use crate::flow::{CloseEvent, Dir, FrameRef, SeqNumber};
use crate::time::Timestamp;
use thin_vec::ThinVec;

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

/// Emptied queues' buffers kept for the next requests, per shard: an idle connection keeps no
/// queue, and without them every request allocated one and every response freed it (~1 % of
/// a run on short keep-alive connections).
#[derive(Debug, Default)]
pub(super) struct SpareQueues(Vec<ThinVec<PendingRequest>>);

/// Buffers [`SpareQueues`] keeps at most (each holding up to `SPARE_ROOM` requests).
const SPARE_QUEUES: usize = 64;
const SPARE_ROOM: usize = 4;

impl SpareQueues {
    /// Keep an emptied queue's buffer, when it is small and there is room.
    fn keep(&mut self, items: ThinVec<PendingRequest>) {
        debug_assert!(items.is_empty());
        if items.capacity() <= SPARE_ROOM && self.0.len() < SPARE_QUEUES {
            self.0.push(items);
        }
    }
}

/// The requests waiting for their response, in order: a thin vector (one word in line, nothing
/// allocated while the connection is idle) read from `head`; answered requests are dropped
/// when all are answered, or in one go when they are half of it (amortised O(1)).
#[derive(Debug, Default)]
pub(super) struct PendingQueue {
    items: ThinVec<PendingRequest>,
    head: u32,
}

impl PendingQueue {
    pub fn len(&self) -> usize {
        self.items.len() - self.head as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The requests waiting, oldest first.
    pub fn as_slice(&self) -> &[PendingRequest] {
        &self.items[self.head as usize..]
    }

    pub fn as_mut_slice(&mut self) -> &mut [PendingRequest] {
        let head = self.head as usize;
        &mut self.items[head..]
    }

    pub fn front(&self) -> Option<&PendingRequest> {
        self.as_slice().first()
    }

    pub fn back_mut(&mut self) -> Option<&mut PendingRequest> {
        self.as_mut_slice().last_mut()
    }

    fn push_back(&mut self, r: PendingRequest, spare: &mut SpareQueues) {
        if self.items.capacity() == 0 {
            match spare.0.pop() {
                Some(items) => self.items = items,
                // the common case: one request in flight
                None => self.items.reserve_exact(1),
            }
        }
        self.items.push(r);
    }

    /// An idle connection keeps no queue: the emptied one's buffer goes to `spare`.
    fn release(&mut self, spare: &mut SpareQueues) {
        let mut items = std::mem::take(&mut self.items);
        self.head = 0;
        items.clear();
        spare.keep(items);
    }

    /// The oldest request was answered.
    fn pop_front(&mut self, spare: &mut SpareQueues) -> bool {
        if self.is_empty() {
            return false;
        }
        self.head += 1;
        if self.is_empty() {
            self.release(spare);
        } else if self.head >= 16 && self.head as usize * 2 >= self.items.len() {
            self.items.drain(..self.head as usize);
            self.head = 0;
        }
        true
    }

    /// Position of the request on HTTP/2 stream `stream`.
    pub fn position_of_stream(&self, stream: u32) -> Option<usize> {
        self.as_slice()
            .iter()
            .position(|p| p.identity.stream == Some(stream))
    }

    /// Take the `i`-th request waiting (an HTTP/2 stream answered or reset out of order).
    pub fn remove(&mut self, i: usize, spare: &mut SpareQueues) -> Option<PendingRequest> {
        if i >= self.len() {
            return None;
        }
        let r = self.items.remove(self.head as usize + i);
        if self.is_empty() {
            self.release(spare);
        }
        Some(r)
    }

    /// All the requests waiting, oldest first (the queue is emptied).
    pub fn take_all(&mut self) -> impl Iterator<Item = PendingRequest> {
        let PendingQueue { items, head } = std::mem::take(self);
        items.into_iter().skip(head as usize)
    }
}

/// `Exchanges::last_response_end` before any response ended.
const NO_END: i64 = i64::MIN;

/// The exchanges of one connection.
#[derive(Debug)]
pub struct Exchanges {
    /// The client's direction, once known (from the handshake or the first message).
    pub(super) client: Option<Dir>,
    pub(super) pending: PendingQueue,
    /// Requests after the pending ones that are not tracked (more than `MAX_PENDING` waited),
    /// in order: responses answer them after the pending ones.
    pub(super) untracked: u32,
    pub(super) next_index: u32,
    pub(super) requests: u32,
    pub(super) responses: u32,
    /// A message was seen: the connection counts as HTTP.
    pub(super) http: bool,
    /// When the last final response ended (nanoseconds, `NO_END`: none yet), and whether it
    /// ended the connection's keep-alive (Connection: close or read-until-close): see
    /// `last_response_end()`.
    last_end: i64,
    last_end_closes: bool,
    /// The longest idle time before a reuse (NaN: none).
    max_reuse_idle: f64,
    /// A hash of the last Keep-Alive header value (0: none), which the endpoint statistics
    /// already have.
    pub(super) keep_alive_seen: u64,
    last_response_close: bool,
    in_response: bool,
    /// The server's framing was lost (a head that did not parse, or a gap in a head).
    pub(super) server_desync: bool,
    /// What few connections have, out of line (one word in line for all of it).
    rare: Option<Box<Rare>>,
}

/// The rare parts of [`Exchanges`]. (Each boxed again: the trace alone is common, with
/// `--report` and `--write-flagged`, and should not carry the others' room.)
#[derive(Debug, Default)]
struct Rare {
    /// The server's close signal in its protocol (a TLS alert), when it sent one.
    close_signal: Option<Box<CloseEvent>>,
    /// Responses seen before any request they could answer (the capture put the server's
    /// direction first): how many client bytes each one's segment acknowledged.
    early_responses: ThinVec<i64>,
    /// HTTP/2: the server's GOAWAYs.
    h2: Option<Box<H2Exchanges>>,
    /// The connection's last segments, when the flow stage traces them (the ladder diagrams,
    /// the flight recorder).
    trace: Option<Trace>,
}

impl Default for Exchanges {
    fn default() -> Exchanges {
        Exchanges {
            client: None,
            pending: PendingQueue::default(),
            untracked: 0,
            next_index: 0,
            requests: 0,
            responses: 0,
            http: false,
            last_end: NO_END,
            last_end_closes: false,
            max_reuse_idle: f64::NAN,
            keep_alive_seen: 0,
            last_response_close: false,
            in_response: false,
            server_desync: false,
            rare: None,
        }
    }
}

impl Exchanges {
    /// A segment of the connection (traced for the ladder diagrams).
    pub fn on_segment(&mut self, dir: Dir, flags: u8, len: u32, meta: crate::flow::SegMeta) {
        let rare = self.rare.get_or_insert_default();
        rare.trace.get_or_insert_default().push(Traced {
            dir,
            flags,
            len,
            meta,
        });
    }

    /// A segment of direction `dir` repeated bytes already delivered; returns the pending
    /// requests looked at (those it repeated the first byte of, found by binary search).
    pub fn on_retransmit(&mut self, dir: Dir, off: i64, len: u64) -> usize {
        if Some(dir) != self.client {
            return 0;
        }
        // the pending requests are in stream order: those starting in [off, off + len)
        let end = off.saturating_add(len.min(i64::MAX as u64) as i64);
        let pending = self.pending.as_mut_slice();
        let from = pending.partition_point(|r| r.start < off);
        let mut looked = 0;
        for r in &mut pending[from..] {
            looked += 1;
            if r.start >= end {
                break;
            }
            r.retransmissions += 1;
        }
        looked
    }

    /// Track a new request (false: more than `MAX_PENDING` wait, it is counted as untracked).
    pub(super) fn push_pending(&mut self, req: PendingRequest, spare: &mut SpareQueues) -> bool {
        if self.untracked > 0 || self.pending.len() >= MAX_PENDING {
            self.untracked = self.untracked.saturating_add(1);
            return false;
        }
        self.pending.push_back(req, spare);
        true
    }

    /// A final response answers the first pending request, or the first untracked one; false
    /// when no request waited.
    fn pop_pending(&mut self, spare: &mut SpareQueues) -> bool {
        if self.pending.pop_front(spare) {
            return true;
        }
        if self.untracked > 0 {
            self.untracked -= 1;
            return true;
        }
        false
    }

    /// When the last final response ended, and whether it ended the connection's keep-alive.
    pub(super) fn last_response_end(&self) -> Option<(Timestamp, bool)> {
        (self.last_end != NO_END)
            .then(|| (Timestamp::from_nanos(self.last_end), self.last_end_closes))
    }

    /// The longest idle time before the client reused the connection.
    pub(super) fn max_reuse_idle(&self) -> Option<f64> {
        (!self.max_reuse_idle.is_nan()).then_some(self.max_reuse_idle)
    }

    /// A request starting at `start` was already answered by a response the capture showed
    /// earlier (its ack covers the request).
    pub(super) fn answered_early(&mut self, start: i64) -> bool {
        let Some(rare) = &mut self.rare else {
            return false;
        };
        let answered = rare.early_responses.first().is_some_and(|&ack| ack > start);
        if answered {
            rare.early_responses.remove(0);
        }
        answered
    }

    /// The idle time before a request sent at `ts` (when the connection was idle), noted for
    /// the longest reuse.
    pub(super) fn idle_before(&mut self, ts: Timestamp) -> Option<f64> {
        let idle = match self.last_response_end() {
            Some((end, _))
                if self.pending.is_empty() && self.untracked == 0 && !self.in_response =>
            {
                Some(ts.secs_since(end).max(0.0))
            }
            _ => None,
        }?;
        self.max_reuse_idle = self.max_reuse_idle.max(idle);
        Some(idle)
    }

    /// A final response began; false when no request was waiting for it.
    pub(super) fn on_final_response(&mut self, r: &Response, spare: &mut SpareQueues) -> bool {
        self.responses = self.responses.saturating_add(1);
        self.in_response = true;
        self.last_response_close = r.closes_connection;
        match r.stream {
            // HTTP/2: the request on the same stream
            Some(s) => match self.pending.position_of_stream(s) {
                Some(i) => self.pending.remove(i, spare).is_some(),
                None if self.untracked > 0 => {
                    self.untracked -= 1;
                    true
                }
                None => false,
            },
            None => self.pop_pending(spare),
        }
    }

    /// The server's close signal in its protocol (a TLS alert), the first one it sent.
    pub(super) fn close_signal(&self) -> Option<CloseEvent> {
        self.rare
            .as_ref()
            .and_then(|r| r.close_signal.as_deref().copied())
    }

    /// The server sent a close signal in its protocol (the first one counts).
    pub(super) fn on_close_signal(&mut self, close: CloseEvent) {
        let rare = self.rare.get_or_insert_default();
        rare.close_signal.get_or_insert(Box::new(close));
    }

    /// HTTP/2: the server's GOAWAYs, if it sent any.
    pub(super) fn h2(&self) -> Option<&H2Exchanges> {
        self.rare.as_ref().and_then(|r| r.h2.as_deref())
    }

    pub(super) fn h2_mut(&mut self) -> &mut H2Exchanges {
        self.rare.get_or_insert_default().h2.get_or_insert_default()
    }

    /// The connection's last segments, when traced.
    pub(super) fn trace(&self) -> Option<&Trace> {
        self.rare.as_ref().and_then(|r| r.trace.as_ref())
    }

    /// A final response began and has not ended.
    pub(super) fn in_response(&self) -> bool {
        self.in_response
    }

    /// A response with no request waiting: its request may come later in the capture, the
    /// ack of the response's segment will tell. False when there is no room to wait.
    pub(super) fn wait_for_request(&mut self, ack_off: Option<i64>) -> bool {
        let Some(ack) = ack_off else {
            return false;
        };
        let early = &mut self.rare.get_or_insert_default().early_responses;
        if early.len() >= MAX_EARLY_RESPONSES {
            return false;
        }
        early.push(ack);
        true
    }

    /// The final response ended at `ts`.
    pub(super) fn on_response_end(&mut self, ts: Timestamp) {
        if self.in_response {
            self.in_response = false;
            self.last_end = ts.nanos().max(NO_END + 1);
            self.last_end_closes = self.last_response_close;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PendingQueue, PendingRequest, SpareQueues};
    use crate::app::Identity;
    use crate::flow::{FrameRef, SeqNumber};

    fn request(index: u32) -> PendingRequest {
        PendingRequest {
            index,
            start: 0,
            at: FrameRef::default(),
            seq: SeqNumber(1),
            ack: None,
            ack_off: None,
            identity: Identity {
                method: "GET".into(),
                target: "/".into(),
                host: None,
                body_len: Some(0),
                request_id: None,
                tls: None,
                stream: None,
            },
            idle_before: None,
            retransmissions: 0,
            key: 0,
            digest: None,
        }
    }

    /// An answered connection keeps no queue; its buffer serves the next request, on any
    /// connection of the shard, and large buffers are not kept.
    #[test]
    fn an_emptied_queue_s_buffer_serves_the_next_request() {
        let mut spare = SpareQueues::default();
        let mut q = PendingQueue::default();
        q.push_back(request(0), &mut spare);
        assert!(q.pop_front(&mut spare));
        assert_eq!((q.items.capacity(), q.len()), (0, 0));
        assert_eq!(spare.0.len(), 1);
        let mut other = PendingQueue::default();
        other.push_back(request(0), &mut spare);
        assert!(spare.0.is_empty());
        assert_eq!(other.front().map(|r| r.index), Some(0));
        // a pipelined burst grows its queue beyond what is kept
        for i in 1..64 {
            other.push_back(request(i), &mut spare);
        }
        while other.pop_front(&mut spare) {}
        assert!(spare.0.is_empty());
        // one removed out of order (HTTP/2) empties it as well
        q.push_back(request(0), &mut spare);
        assert_eq!(q.remove(0, &mut spare).map(|r| r.index), Some(0));
        assert_eq!((q.items.capacity(), spare.0.len()), (0, 1));
    }
}
