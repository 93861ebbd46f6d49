//! Retries: which request, if any, repeated each failed attempt.
//!
//! The [`RetryMatcher`] is a component of its own with a narrow input, so that it can run on
//! any ordered stream of these records (one shard's, or a merge of shards' in ordinal order):
//! - [`Attempt`]s: every request as it was seen (its connection, index, capture time and
//!   ordinal, the hash of what a retry repeats, an identity header if any, its body digest once
//!   known, the client's turn-around on its connection), in the order of their ordinals (a
//!   request whose head took long to arrive may come a little late: it is put in its place);
//! - [`Failure`]s: attempts that got no response, with the capture time of the close that told
//!   their sender;
//! - ticks of capture time.
//!
//! Its output is one [`Decided`] outcome per failure, once nothing that arrives later can
//! change it. It knows nothing of HTTP: what must be equal is the caller's key.
//!
//! The rules:
//! - **Causality**: a retry is sent after its sender could know of the failure: after the close
//!   reached it. At the capture point that is the close's capture time plus the round trip
//!   between the capture point and the client (the client's turn-around in the handshake: near
//!   the proxy almost nothing, near the upstream a full round trip; with an identity header
//!   half of it, as round trips vary, see [`TURN_SHARE`]), and not before the failed request
//!   itself.
//! - **One to one**: a request repeats at most one failed attempt; failures are decided in the
//!   order their senders learnt of them and each takes its earliest causal candidate (same key,
//!   client address and server, equal body digests where both are known); the retry may go on
//!   any other connection, new or pooled.
//! - **Identity headers** make the match exact: the candidate must carry the same one.
//! - Requests known by their **size only** (encrypted TLS requests without keys): a candidate
//!   must be the first request on a new connection, and the match is stated as by size
//!   ([`Attempt::size_only`]).
//! - Without them a match is stated only when nothing else explains the candidate: no other
//!   failure could claim it, no other request of the group came within `RATE_SPAN_FACTOR`
//!   reaction times of the failure, and the chance that a fresh one landed between the failure
//!   and the candidate, from the time so covered, is at most [`MAX_CHANCE`]. Otherwise the
//!   outcome is `ambiguous`, with the number of candidates.
//!
//! Cost: the attempts that can repeat each other (same key, client, server and identity
//! header) form a group, kept in the order of their ordinals; a decision looks only at its
//! group's attempts around the failure's time (found by binary search) and its group's other
//! failures, and at most [`MAX_SCAN`] of each: a window crowded beyond that holds too many
//! look-alikes for a match by timing to be stated (the outcome is `ambiguous` when a candidate
//! was among those looked at, `lost` otherwise). Failures wait for their deadline in a heap.
//! Every record costs O(1) amortised, however many identical requests are outstanding.

mod rivals;

use crate::flow::FrameRef;
use crate::time::Timestamp;
use rustc_hash::{FxHashMap, FxHasher};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// The largest chance, estimated from the same request's rate around the failure, that a fresh
/// request came between the failure and its candidate retry, for the match to be stated ...
pub(crate) const MAX_CHANCE: f64 = 0.01;
/// ... with no other request of the group within this many times the candidate's reaction time
/// before and after the failure (the lab's busy recordings put fresh requests 0.05 ms behind a
/// failed one within a burst, see the README) ...
const RATE_SPAN_FACTOR: f64 = 1000.0;
/// ... and at most this many seconds before it.
const HISTORY_S: f64 = 5.0;
/// The share of the measured round trip (the client's turn-around in the handshake) after
/// which a retry can follow a close: the path's round trip varies, and a handshake's may be
/// longer than the one when the race happened (the lab's delay line under load: a retry
/// captured at the upstream 5.8 ms after the RST, on a path whose handshakes took 6.3-7.9 ms).
/// A request with the failure's identity header counts from there; one without, in the rest of
/// the round trip, makes the outcome ambiguous (a quick retry, or a fresh request sent before
/// the close arrived).
const TURN_SHARE: f64 = 0.5;
/// The longest chain of failed retries of one request followed back.
const MAX_CHAIN: usize = 16;
/// Attempts kept at most (the oldest go first beyond it).
const MAX_ATTEMPTS: usize = 1 << 18;
/// Attempts, or other failures, examined at most per decision.
pub(crate) const MAX_SCAN: usize = 256;
/// (client, server) pairs whose turn-around is remembered at most.
const MAX_TURNS: usize = 1 << 16;

/// An identity that names one request (a header's value): attempts with equal ones are the
/// same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExactId {
    pub hash: u64,
    /// What carried it, for the report (e.g. "X-Request-ID").
    pub label: &'static str,
}

/// A request as the matcher sees it.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub conn: u64,
    pub index: u32,
    /// Its first byte's frame: capture time and ordinal.
    pub at: FrameRef,
    /// The capture time of its connection's SYN, when it is the connection's first request.
    pub opened: Option<Timestamp>,
    pub client: IpAddr,
    pub server: SocketAddr,
    /// Hash of what a retry repeats (method, target, Host, body length for HTTP).
    pub key: u64,
    pub exact: Option<ExactId>,
    /// Digest of the body, once complete (compared only when both are known).
    pub digest: Option<u64>,
    /// The client's turn-around on its connection (handshake), in seconds.
    pub client_turn: Option<f64>,
    /// Known by its size only (its key is an encrypted request's first record length).
    pub size_only: bool,
}

/// What a match by size reports as `matched_by`.
pub(crate) const BY_SIZE: &str = "size";

/// Is this request known by its size only (inside TLS, not decrypted)?
pub(crate) fn size_only(id: &crate::app::Identity) -> bool {
    id.tls.as_ref().is_some_and(|t| t.encrypted)
}

impl Attempt {
    /// The group of attempts that can repeat each other: same key, client, server and
    /// identity header.
    pub fn group(&self) -> u64 {
        let mut h = FxHasher::default();
        (
            self.key,
            self.client,
            self.server,
            self.exact.map(|e| e.hash),
        )
            .hash(&mut h);
        h.finish()
    }
}

/// An attempt that got no response.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub attempt: Attempt,
    /// Capture time of the server's close that told the client (none: the client's own doing,
    /// known when the request left).
    pub close: Option<Timestamp>,
}

/// How a retry was matched.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RetryMatch {
    pub at: FrameRef,
    pub conn: u64,
    /// Seconds from the earliest time its sender could know of the failure (at the capture
    /// point) to its departure.
    pub reaction_s: f64,
    /// The identity header that made the match exact; `None`: by timing.
    pub by: Option<&'static str>,
}

/// The outcome of a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Decided {
    Retried(RetryMatch),
    Lost,
    /// `candidates` requests could be its retry, or a fresh request: the capture cannot tell.
    Ambiguous {
        candidates: u32,
    },
}

/// A retained attempt: what a decision needs of it (64 bytes: the history holds every
/// request of the last seconds).
#[derive(Clone, Copy, Debug)]
struct Slot {
    conn: u64,
    index: u32,
    claimed: bool,
    /// Known by its size only.
    size_only: bool,
    has_opened: bool,
    has_digest: bool,
    at: FrameRef,
    /// Its connection's SYN, when it is the connection's first request (`has_opened`).
    opened: Timestamp,
    /// Its body's digest, once known (`has_digest`).
    digest: u64,
}

impl Slot {
    fn of(a: &Attempt) -> Slot {
        Slot {
            conn: a.conn,
            index: a.index,
            claimed: false,
            size_only: a.size_only,
            has_opened: a.opened.is_some(),
            has_digest: a.digest.is_some(),
            at: a.at,
            opened: a.opened.unwrap_or_default(),
            digest: a.digest.unwrap_or_default(),
        }
    }

    fn opened(&self) -> Option<Timestamp> {
        self.has_opened.then_some(self.opened)
    }

    fn digest(&self) -> Option<u64> {
        self.has_digest.then_some(self.digest)
    }

    fn set_digest(&mut self, digest: u64) {
        self.digest = digest;
        self.has_digest = true;
    }

    /// Could `self` repeat the failed `f` of the same group? (apart from time)
    fn repeats(&self, f: &Pending) -> bool {
        self.conn != f.conn
            && self.at.ordinal > f.at.ordinal
            && match (self.digest(), f.digest) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
            && self.repeats_by_size(f)
    }

    /// Sizes alone say little: a request known by its size repeats a failure only as the first
    /// request on a new connection (the proxy's retry after the pooled one died).
    fn repeats_by_size(&self, f: &Pending) -> bool {
        !f.size_only || (self.size_only && self.index == 0 && self.has_opened)
    }

    /// When its sender decided to send it: its connection's SYN when it opened one after
    /// `after`, else the request itself.
    fn departure(&self, after: Timestamp) -> Timestamp {
        match self.opened() {
            Some(syn) if self.index == 0 && syn >= after => syn,
            _ => self.at.ts,
        }
    }
}

/// The attempts of a group in ordinal order, and the ids of its failures.
#[derive(Debug, Default)]
struct Group {
    slots: VecDeque<Slot>,
    failures: VecDeque<u64>,
}

impl Group {
    /// Position of the first slot after ordinal `ordinal`.
    fn after(&self, ordinal: u64) -> usize {
        self.slots.partition_point(|s| s.at.ordinal <= ordinal)
    }

    /// Position of the first slot captured at or after `ts` (slots are in ordinal order, which
    /// is capture order but where the capture's clock stepped back).
    fn at_or_after(&self, ts: Timestamp) -> usize {
        self.slots.partition_point(|s| s.at.ts < ts)
    }
}

/// A failure waiting for its outcome, or decided and kept while later ones may compete.
#[derive(Debug)]
struct Pending {
    conn: u64,
    index: u32,
    size_only: bool,
    at: FrameRef,
    exact: Option<ExactId>,
    digest: Option<u64>,
    group: u64,
    /// When its sender knew of it, seen from the capture point (the close plus the measured
    /// round trip).
    known_at: Timestamp,
    /// The earliest capture time of a retry, as round trips vary ([`TURN_SHARE`]).
    earliest: Timestamp,
    decided: Option<Decided>,
}

/// Finds each failed attempt's retry; see the module's documentation.
#[derive(Debug)]
pub(crate) struct RetryMatcher {
    window: f64,
    settle: f64,
    groups: FxHashMap<u64, Group>,
    /// (capture time, group) of every retained attempt, in arrival order: eviction order.
    arrivals: VecDeque<(Timestamp, u64)>,
    /// Failures by id (undecided, or decided and still able to contest).
    failures: FxHashMap<u64, Pending>,
    next_failure: u64,
    /// Undecided failures by deadline: (deadline, known_at, ordinal, id).
    due: BinaryHeap<Reverse<(Timestamp, u64)>>,
    /// Decided failures by the time they stop mattering: (time, id).
    expiry: BinaryHeap<Reverse<(Timestamp, u64)>>,
    /// The smallest client turn-around seen per (client, server address).
    turns: FxHashMap<(IpAddr, SocketAddr), f64>,
    first_seen: Option<Timestamp>,
    decided: Vec<(u64, u32, Decided)>,
    /// Attempts and failures looked at (the tests bound it).
    #[cfg(test)]
    work: std::cell::Cell<u64>,
}

impl RetryMatcher {
    /// A retry comes within `window` s of the failure being known; a failure is decided
    /// `settle` s after that, when the failures that compete with it have arrived (they come
    /// when their connections end).
    pub fn new(window: f64, settle: f64) -> RetryMatcher {
        RetryMatcher {
            window,
            settle,
            groups: FxHashMap::default(),
            arrivals: VecDeque::new(),
            failures: FxHashMap::default(),
            next_failure: 0,
            due: BinaryHeap::new(),
            expiry: BinaryHeap::new(),
            turns: FxHashMap::default(),
            first_seen: None,
            decided: Vec::new(),
            #[cfg(test)]
            work: std::cell::Cell::new(0),
        }
    }

    /// Count `n` attempts or failures looked at.
    #[cfg(test)]
    fn looked(&self, n: usize) {
        self.work.set(self.work.get() + n as u64);
    }

    #[cfg(not(test))]
    fn looked(&self, _n: usize) {}

    /// A request was seen.
    pub fn on_attempt(&mut self, a: &Attempt) {
        self.first_seen.get_or_insert(a.at.ts);
        if let Some(t) = a.client_turn {
            let full = self.turns.len() >= MAX_TURNS;
            match self.turns.get_mut(&(a.client, a.server)) {
                Some(e) => *e = e.min(t),
                None if !full => {
                    self.turns.insert((a.client, a.server), t);
                }
                None => {}
            }
        }
        let group = a.group();
        self.arrivals.push_back((a.at.ts, group));
        let slots = &mut self.groups.entry(group).or_default().slots;
        // in its place by ordinal: almost always at the end
        let mut pos = slots.len();
        while pos > 0 && slots.len() - pos < MAX_SCAN && slots[pos - 1].at.ordinal > a.at.ordinal {
            pos -= 1;
        }
        let steps = slots.len() - pos + 1;
        slots.insert(pos, Slot::of(a));
        self.looked(steps);
        if self.arrivals.len() > MAX_ATTEMPTS {
            self.evict_oldest();
        }
    }

    /// The body of attempt (`conn`, `index`) of `group`, first seen at `ordinal`, ended with
    /// this digest.
    pub fn on_digest(&mut self, group: u64, at: (u64, u32, u64), digest: u64) {
        let (conn, index, ordinal) = at;
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        let end = g.after(ordinal);
        let from = end.saturating_sub(MAX_SCAN);
        let found = (from..end)
            .rev()
            .find(|&i| g.slots[i].conn == conn && g.slots[i].index == index);
        if let Some(i) = found {
            g.slots[i].set_digest(digest);
        }
        self.looked(end - found.unwrap_or(from));
    }

    /// An attempt got no response.
    pub fn on_failure(&mut self, failure: &Failure) {
        let a = &failure.attempt;
        let pair_turn = self.turns.get(&(a.client, a.server)).copied();
        let turn = match (a.client_turn, pair_turn) {
            (Some(c), Some(p)) => c.min(p),
            (c, p) => c.or(p).unwrap_or(0.0),
        };
        let after = |share: f64| {
            failure
                .close
                .map_or(a.at.ts, |c| c.add_secs(turn * share).max(a.at.ts))
        };
        let (known_at, earliest) = (after(1.0), after(TURN_SHARE));
        let id = self.next_failure;
        self.next_failure += 1;
        let group = a.group();
        self.groups.entry(group).or_default().failures.push_back(id);
        self.due
            .push(Reverse((known_at.add_secs(self.window + self.settle), id)));
        self.failures.insert(
            id,
            Pending {
                conn: a.conn,
                index: a.index,
                size_only: a.size_only,
                at: a.at,
                exact: a.exact,
                digest: a.digest,
                group,
                known_at,
                earliest,
                decided: None,
            },
        );
    }

    /// Capture time advanced to `now`: decide the failures whose time came, forget what no
    /// later decision needs.
    pub fn tick(&mut self, now: Timestamp) {
        self.decide_until(Some(now));
        let keep = now.add_secs(-(self.window + self.settle));
        while let Some(&Reverse((until, id))) = self.expiry.peek() {
            if until >= keep {
                break;
            }
            self.expiry.pop();
            self.forget_failure(id);
        }
        let edge = now.add_secs(-(self.window + self.settle + HISTORY_S));
        while self.arrivals.front().is_some_and(|&(ts, _)| ts < edge) {
            self.evict_oldest();
        }
    }

    /// End of the input: decide every failure.
    pub fn finish(&mut self) {
        self.decide_until(None);
        self.failures.clear();
        self.expiry.clear();
        for g in self.groups.values_mut() {
            g.failures.clear();
        }
    }

    /// Outcomes decided since the last call: (connection, index, outcome).
    pub fn take_decided(&mut self) -> Vec<(u64, u32, Decided)> {
        std::mem::take(&mut self.decided)
    }

    /// Attempts and failures retained, and attempts and failures looked at so far (for the
    /// bounds on memory and work).
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize, u64) {
        (self.arrivals.len(), self.failures.len(), self.work.get())
    }

    fn evict_oldest(&mut self) {
        if let Some((_, group)) = self.arrivals.pop_front()
            && let Some(g) = self.groups.get_mut(&group)
        {
            g.slots.pop_front();
            if g.slots.is_empty() && g.failures.is_empty() {
                self.groups.remove(&group);
            }
        }
    }

    fn forget_failure(&mut self, id: u64) {
        let Some(p) = self.failures.remove(&id) else {
            return;
        };
        if let Some(g) = self.groups.get_mut(&p.group) {
            while g
                .failures
                .front()
                .is_some_and(|f| !self.failures.contains_key(f))
            {
                g.failures.pop_front();
            }
            if g.slots.is_empty() && g.failures.is_empty() {
                self.groups.remove(&p.group);
            }
        }
    }

    /// Decide the undecided failures whose deadline is at or before `now` (all: `None`), in
    /// the order their senders learnt of them.
    fn decide_until(&mut self, now: Option<Timestamp>) {
        let mut due = Vec::new();
        while let Some(&Reverse((deadline, id))) = self.due.peek() {
            if now.is_some_and(|n| deadline > n) {
                break;
            }
            self.due.pop();
            if let Some(p) = self.failures.get(&id) {
                due.push((p.known_at, p.at.ordinal, p.conn, p.index, id));
            }
        }
        due.sort_unstable();
        for (known_at, .., id) in due {
            let d = self.decide(id);
            let p = self.failures.get_mut(&id).expect("a due failure");
            p.decided = Some(d);
            self.decided.push((p.conn, p.index, d));
            let until = known_at.add_secs(self.window);
            self.expiry.push(Reverse((until, id)));
        }
    }

    /// The outcome of failure `id`; claims its retry.
    fn decide(&mut self, id: u64) -> Decided {
        let p = &self.failures[&id];
        let Some(group) = self.groups.get(&p.group) else {
            return Decided::Lost;
        };
        let until = p.known_at.add_secs(self.window);
        let start = group.after(p.at.ordinal).max(group.at_or_after(p.earliest));
        let mut first: Option<usize> = None;
        let mut count = 0u32;
        let mut crowded = false;
        for (n, j) in (start..group.slots.len()).enumerate() {
            self.looked(1);
            let s = &group.slots[j];
            if s.at.ts > until {
                break;
            }
            if n >= MAX_SCAN {
                crowded = true;
                break;
            }
            if !s.claimed && s.at.ts >= p.earliest && s.repeats(p) {
                count += 1;
                first.get_or_insert(j);
            }
        }
        // (in a crowded window, the candidates beyond the scan are not seen)
        let Some(first) = first else {
            return Decided::Lost;
        };
        let r = group.slots[first];
        if p.exact.is_none() && r.at.ts < p.known_at {
            // within the round trip's variation: a quick retry or a fresh request
            return Decided::Ambiguous { candidates: count };
        }
        let reaction = r.departure(p.earliest).secs_since(p.known_at).max(0.0);
        let certain = match p.exact {
            Some(_) => true,
            // the rule for sizes is the new connection's first request (`repeats_by_size`)
            None if p.size_only => true,
            None => {
                !crowded
                    && !self.contested(id, &r)
                    && self.chance(p, group, &r, reaction) <= MAX_CHANCE
            }
        };
        if !certain {
            return Decided::Ambiguous { candidates: count };
        }
        let m = RetryMatch {
            at: r.at,
            conn: r.conn,
            reaction_s: reaction,
            by: p.exact.map(|e| e.label).or(p.size_only.then_some(BY_SIZE)),
        };
        let g = p.group;
        if let Some(g) = self.groups.get_mut(&g) {
            g.slots[first].claimed = true;
        }
        Decided::Retried(m)
    }
}

#[cfg(test)]
mod size_tests {
    /// The history holds every request of the last seconds: a retained one stays small.
    #[test]
    fn a_retained_attempt_takes_64_bytes() {
        assert!(std::mem::size_of::<super::Slot>() <= 64);
    }
}
