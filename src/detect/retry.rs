//! Retries: which request, if any, repeated each failed attempt.
//!
//! The [`RetryMatcher`] is a component of its own with a narrow input, so that it can run on
//! any ordered stream of these records (one shard's, or a merge of shards' in ordinal order):
//! - [`Attempt`]s: every request as it was seen (its connection, index, capture time and
//!   ordinal, the hash of what a retry repeats, an identity header if any, its body digest once
//!   known, the client's turn-around on its connection);
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

use crate::flow::FrameRef;
use crate::time::Timestamp;
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::VecDeque;
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
const MAX_ATTEMPTS: usize = 1 << 20;

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
    /// The group of attempts that can repeat each other.
    pub fn group(&self) -> u64 {
        let mut h = FxHasher::default();
        (self.key, self.client, self.server).hash(&mut h);
        h.finish()
    }

    /// Could `self` repeat `failed`? (apart from time)
    fn repeats(&self, failed: &Attempt) -> bool {
        self.conn != failed.conn
            && self.at.ordinal > failed.at.ordinal
            && self.key == failed.key
            && self.client == failed.client
            && self.server == failed.server
            && self.exact == failed.exact
            && match (self.digest, failed.digest) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
            && self.repeats_by_size(failed)
    }

    /// Sizes alone say little: a request known by its size repeats a failure only as the first
    /// request on a new connection (the proxy's retry after the pooled one died).
    fn repeats_by_size(&self, failed: &Attempt) -> bool {
        !failed.size_only || (self.size_only && self.index == 0 && self.opened.is_some())
    }

    /// When its sender decided to send it: its connection's SYN when it opened one after
    /// `after`, else the request itself.
    fn departure(&self, after: Timestamp) -> Timestamp {
        match self.opened {
            Some(syn) if self.index == 0 && syn >= after => syn,
            _ => self.at.ts,
        }
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

/// A retained attempt.
#[derive(Debug)]
struct Slot {
    attempt: Attempt,
    /// Decided as the retry of a failure.
    claimed: bool,
}

/// A failure waiting for its outcome, or decided and kept while later ones may compete.
#[derive(Debug)]
struct Pending {
    failure: Failure,
    group: u64,
    /// When its sender knew of it, seen from the capture point (the close plus the measured
    /// round trip).
    known_at: Timestamp,
    /// The earliest capture time of a retry, as round trips vary ([`TURN_SHARE`]).
    earliest: Timestamp,
    deadline: Timestamp,
    decided: Option<Decided>,
}

/// Finds each failed attempt's retry; see the module's documentation.
#[derive(Debug)]
pub(crate) struct RetryMatcher {
    window: f64,
    settle: f64,
    groups: FxHashMap<u64, VecDeque<Slot>>,
    /// (capture time, group) of every retained attempt, in arrival order: eviction order.
    arrivals: VecDeque<(Timestamp, u64)>,
    failures: Vec<Pending>,
    /// The smallest client turn-around seen per (client, server address).
    turns: FxHashMap<(IpAddr, SocketAddr), f64>,
    first_seen: Option<Timestamp>,
    decided: Vec<(u64, u32, Decided)>,
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
            failures: Vec::new(),
            turns: FxHashMap::default(),
            first_seen: None,
            decided: Vec::new(),
        }
    }

    /// A request was seen.
    pub fn on_attempt(&mut self, a: Attempt) {
        self.first_seen.get_or_insert(a.at.ts);
        if let Some(t) = a.client_turn {
            let e = self.turns.entry((a.client, a.server)).or_insert(t);
            *e = e.min(t);
        }
        let group = a.group();
        self.arrivals.push_back((a.at.ts, group));
        self.groups.entry(group).or_default().push_back(Slot {
            attempt: a,
            claimed: false,
        });
        if self.arrivals.len() > MAX_ATTEMPTS {
            self.evict_oldest();
        }
    }

    /// The body of attempt (`conn`, `index`) of `group` ended with this digest.
    pub fn on_digest(&mut self, group: u64, conn: u64, index: u32, digest: u64) {
        if let Some(s) = self.groups.get_mut(&group).and_then(|g| {
            g.iter_mut()
                .rev()
                .find(|s| s.attempt.conn == conn && s.attempt.index == index)
        }) {
            s.attempt.digest = Some(digest);
        }
    }

    /// An attempt got no response.
    pub fn on_failure(&mut self, failure: Failure) {
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
        self.failures.push(Pending {
            group: a.group(),
            deadline: known_at.add_secs(self.window + self.settle),
            known_at,
            earliest,
            failure,
            decided: None,
        });
    }

    /// Capture time advanced to `now`: decide the failures whose time came, forget what no
    /// later decision needs.
    pub fn tick(&mut self, now: Timestamp) {
        self.decide_until(Some(now));
        let keep_failures = now.add_secs(-(self.window + self.settle));
        self.failures
            .retain(|p| p.decided.is_none() || p.known_at.add_secs(self.window) >= keep_failures);
        let edge = now.add_secs(-(self.window + self.settle + HISTORY_S));
        while self.arrivals.front().is_some_and(|&(ts, _)| ts < edge) {
            self.evict_oldest();
        }
    }

    /// End of the input: decide every failure.
    pub fn finish(&mut self) {
        self.decide_until(None);
        self.failures.clear();
    }

    /// Outcomes decided since the last call: (connection, index, outcome).
    pub fn take_decided(&mut self) -> Vec<(u64, u32, Decided)> {
        std::mem::take(&mut self.decided)
    }

    fn evict_oldest(&mut self) {
        if let Some((_, group)) = self.arrivals.pop_front()
            && let Some(g) = self.groups.get_mut(&group)
        {
            g.pop_front();
            if g.is_empty() {
                self.groups.remove(&group);
            }
        }
    }

    /// Decide the undecided failures whose deadline is at or before `now` (all: `None`), in
    /// the order their senders learnt of them.
    fn decide_until(&mut self, now: Option<Timestamp>) {
        let mut due: Vec<usize> = (0..self.failures.len())
            .filter(|&i| {
                let p = &self.failures[i];
                p.decided.is_none() && now.is_none_or(|n| p.deadline <= n)
            })
            .collect();
        due.sort_by_key(|&i| {
            let p = &self.failures[i];
            (p.known_at, p.failure.attempt.at.ordinal)
        });
        for i in due {
            let d = self.decide(i);
            let p = &mut self.failures[i];
            p.decided = Some(d);
            let a = &p.failure.attempt;
            self.decided.push((a.conn, a.index, d));
        }
    }

    /// The outcome of failure `i`; claims its retry.
    fn decide(&mut self, i: usize) -> Decided {
        let p = &self.failures[i];
        let f = &p.failure.attempt;
        let Some(group) = self.groups.get(&p.group) else {
            return Decided::Lost;
        };
        let until = p.known_at.add_secs(self.window);
        let mut cands: Vec<usize> = (0..group.len())
            .filter(|&j| {
                let s = &group[j];
                !s.claimed
                    && s.attempt.at.ts >= p.earliest
                    && s.attempt.at.ts <= until
                    && s.attempt.repeats(f)
            })
            .collect();
        cands.sort_by_key(|&j| group[j].attempt.at.ordinal);
        let Some(&first) = cands.first() else {
            return Decided::Lost;
        };
        let r = &group[first].attempt;
        if f.exact.is_none() && r.at.ts < p.known_at {
            // within the round trip's variation: a quick retry or a fresh request
            return Decided::Ambiguous {
                candidates: cands.len() as u32,
            };
        }
        let reaction = r.departure(p.earliest).secs_since(p.known_at).max(0.0);
        let certain = match f.exact {
            Some(_) => true,
            // the rule for sizes is the new connection's first request (`repeats_by_size`)
            None if f.size_only => true,
            None => !self.contested(i, r) && self.chance(p, r, reaction) <= MAX_CHANCE,
        };
        if !certain {
            return Decided::Ambiguous {
                candidates: cands.len() as u32,
            };
        }
        let m = RetryMatch {
            at: r.at,
            conn: r.conn,
            reaction_s: reaction,
            by: f.exact.map(|e| e.label).or(f.size_only.then_some(BY_SIZE)),
        };
        if let Some(g) = self.groups.get_mut(&p.group) {
            g[first].claimed = true;
        }
        Decided::Retried(m)
    }

    /// Could another failure, not settled as retried by another request, claim `r`?
    fn contested(&self, i: usize, r: &Attempt) -> bool {
        self.failures.iter().enumerate().any(|(j, q)| {
            j != i
                && q.group == self.failures[i].group
                && !matches!(q.decided, Some(Decided::Retried(_)))
                && r.at.ts >= q.known_at
                && r.at.ts <= q.known_at.add_secs(self.window)
                && r.repeats(&q.failure.attempt)
        })
    }

    /// The attempts that `p`'s request repeats: the failures retried by it, by those, and so
    /// on (a proxy's retry that failed again and was retried once more).
    fn earlier_attempts(&self, p: &Pending) -> Vec<(u64, u32)> {
        let mut chain = Vec::new();
        let mut cur = &p.failure.attempt;
        while chain.len() < MAX_CHAIN {
            let Some(q) = self.failures.iter().find(|q| {
                q.group == p.group
                    && matches!(q.decided, Some(Decided::Retried(m))
                        if m.conn == cur.conn && m.at.ordinal == cur.at.ordinal)
            }) else {
                break;
            };
            cur = &q.failure.attempt;
            chain.push((cur.conn, cur.index));
        }
        chain
    }

    /// Is `a` explained as the retry of a failure of the group that came with or after the
    /// candidate `r` (the candidate failed too, and `a` repeats it)? Such a request is not a
    /// fresh one and says nothing of the group's rate.
    fn retries_a_later_failure(&self, group: u64, r: &Attempt, a: &Attempt) -> bool {
        self.failures.iter().any(|q| {
            let fa = &q.failure.attempt;
            q.group == group
                && fa.at.ordinal >= r.at.ordinal
                && a.at.ts >= q.known_at
                && a.at.ts <= q.known_at.add_secs(self.window)
                && a.repeats(fa)
        })
    }

    /// The chance that a fresh request of the same group came within `reaction` s after the
    /// failure, from the rate of the same request around it: the other attempts of the group
    /// within `RATE_SPAN_FACTOR` times the reaction before and after (bounded by the history
    /// kept and the window); 1 when there are any.
    fn chance(&self, p: &Pending, r: &Attempt, reaction: f64) -> f64 {
        let f = &p.failure.attempt;
        let span = (reaction * RATE_SPAN_FACTOR).max(1e-4);
        let seen = self
            .first_seen
            .map_or(0.0, |s| p.known_at.secs_since(s).max(0.0));
        let before = span.min(HISTORY_S).min(seen);
        let after = span.min(self.window);
        let lo = p.known_at.add_secs(-before);
        let hi = p.known_at.add_secs(reaction + after);
        let chain = self.earlier_attempts(p);
        let others = self.groups.get(&p.group).map_or(0, |g| {
            g.iter()
                .filter(|s| {
                    let a = &s.attempt;
                    a.exact.is_none()
                        && (a.conn, a.index) != (f.conn, f.index)
                        && (a.conn, a.index) != (r.conn, r.index)
                        && a.at.ts >= lo
                        && a.at.ts <= hi
                        && !chain.contains(&(a.conn, a.index))
                        && !self.retries_a_later_failure(p.group, r, a)
                })
                .count()
        });
        if others > 0 {
            return 1.0;
        }
        reaction / (before + after + reaction).max(1e-9)
    }
}
