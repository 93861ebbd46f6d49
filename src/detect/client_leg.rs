//! The client leg: what a proxy did to its own client when its upstream request failed.
//!
//! When the capture holds both legs of a proxy (`tcpdump -i any` on the proxy host), each
//! failed upstream request (a finding) has a request of a client to the proxy behind it: the
//! same method and target (the proxy may rewrite Host and add headers), received before the
//! upstream request left, and answered (or closed) after the failure reached the proxy. Its
//! answer is the finding's client effect: a 502 (the request was lost), the upstream's 200
//! after a retry, or the client's connection closed without any response. The client's
//! request is then no finding of its own (the proxy is not to blame), and the effect settles
//! an outcome the upstream leg could not tell (`ambiguous`: 502 means lost, a success means
//! retried).
//!
//! [`ClientLegs`] is a component of its own, fed by every shard of the analysis: the exchanges
//! of all connections ([`FrontExchange`], every request with its answer), the final findings
//! with the capture time they became final, and each shard's progress in capture time. It
//! decides a finding once every shard has passed the time it became final, from what was
//! known by then, in a fixed order: so the result does not depend on how the input was split
//! over shards, nor on the order the shards report in.

use crate::flow::FrameRef;
use crate::report::schema::{ClientEffect, Finding, Kind, Outcome};
use crate::time::Timestamp;
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A client's request reaches the proxy at most this long before the proxy's upstream request.
const FRONT_WINDOW_S: f64 = 5.0;
/// Exchanges are kept this long (capture time) after their request, for findings that become
/// final later (their connection lingered).
const RETAIN_S: f64 = 60.0;
/// A finding that could be a client leg's own (the proxy closed or reset its client) waits
/// this long after it became final for a finding on the upstream leg to claim it.
const HOLD_S: f64 = 5.0;
/// Exchanges kept at most (the oldest go first).
const MAX_FRONTS: usize = 1 << 20;

/// The hash of what a proxy forwards unchanged: method and target.
pub(crate) fn front_key(method: &str, target: &str) -> u64 {
    let mut h = FxHasher::default();
    (method, target).hash(&mut h);
    h.finish()
}

/// What a request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A final response with this status, starting in this frame.
    Response(u16),
    /// No response: the server closed (FIN or RST, this frame).
    Closed,
}

/// A request and its answer, as any connection showed it.
#[derive(Clone, Debug)]
pub(crate) struct FrontExchange {
    pub conn: u64,
    pub index: u32,
    pub key: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub request: FrameRef,
    pub answer: Answer,
    /// Where the answer was.
    pub answer_at: FrameRef,
    /// The capture time at which the exchange was known.
    pub known_at: Timestamp,
}

/// A final finding waiting for its client effect.
#[derive(Debug)]
struct Item {
    shard: usize,
    finding: Finding,
    key: u64,
    /// When it became final.
    at: Timestamp,
    linked: bool,
}

impl Item {
    /// A client leg's finding, which a failure upstream may explain.
    fn may_be_front(&self) -> bool {
        matches!(
            self.finding.kind,
            Kind::ClosedUnanswered | Kind::ResetUnanswered
        )
    }

    fn release_at(&self) -> Timestamp {
        if self.may_be_front() {
            self.at.add_secs(HOLD_S)
        } else {
            self.at
        }
    }
}

/// A client exchange claimed by a finding.
#[derive(Clone, Copy, Debug)]
struct Claim {
    /// The claiming finding's request and its retry (connection, frame).
    by: (u64, u64),
    retry: Option<(u64, u64)>,
    /// The claimed request's capture time.
    at: Timestamp,
}

/// Links findings to their client legs; see the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct ClientLegs {
    progress: Vec<Option<Timestamp>>,
    fronts: FxHashMap<u64, VecDeque<FrontExchange>>,
    /// (request time, key) of every front kept, in arrival order.
    arrivals: VecDeque<(Timestamp, u64)>,
    claims: FxHashMap<(u64, u32), Claim>,
    items: Vec<Item>,
    decided: Vec<(usize, Finding)>,
    inputs: Vec<String>,
}

/// The links shared by the shards of one analysis.
pub(crate) type SharedLegs = Arc<Mutex<ClientLegs>>;

impl ClientLegs {
    /// For an analysis in `shards` shards of the inputs named `inputs`.
    pub fn shared(shards: usize, inputs: Vec<String>) -> SharedLegs {
        Arc::new(Mutex::new(ClientLegs {
            progress: vec![None; shards.max(1)],
            inputs,
            ..ClientLegs::default()
        }))
    }

    pub fn add_fronts(&mut self, fronts: impl IntoIterator<Item = FrontExchange>) {
        for f in fronts {
            self.arrivals.push_back((f.request.ts, f.key));
            self.fronts.entry(f.key).or_default().push_back(f);
            if self.arrivals.len() > MAX_FRONTS {
                self.forget_oldest();
            }
        }
    }

    /// A finding of shard `shard` became final at capture time `at`.
    pub fn add_final(&mut self, shard: usize, finding: Finding, at: Timestamp) {
        let key = front_key(&finding.request.method, &finding.request.target);
        self.items.push(Item {
            shard,
            key,
            finding,
            at,
            linked: false,
        });
    }

    /// Shard `shard` has given everything up to capture time `now`: decide what no shard can
    /// change any more.
    pub fn progress(&mut self, shard: usize, now: Timestamp) {
        if let Some(p) = self.progress.get_mut(shard) {
            *p = Some(now);
        }
        if let Some(Some(mark)) = self.progress.iter().copied().min() {
            self.decide(Some(mark));
            let edge = mark.add_secs(-RETAIN_S);
            while self.arrivals.front().is_some_and(|&(ts, _)| ts < edge) {
                self.forget_oldest();
            }
        }
    }

    /// The end of the input: decide everything.
    pub fn finish(&mut self) {
        self.decide(None);
    }

    /// Findings of shard `shard` decided so far (all shards': `None`).
    pub fn take_decided(&mut self, shard: Option<usize>) -> Vec<Finding> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.decided)
            .into_iter()
            .partition(|(s, _)| shard.is_none_or(|x| x == *s));
        self.decided = rest;
        mine.into_iter().map(|(_, f)| f).collect()
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.arrivals.pop_front()
            && let Some(q) = self.fronts.get_mut(&key)
        {
            q.pop_front();
            if q.is_empty() {
                self.fronts.remove(&key);
            }
        }
    }

    /// Link the findings that became final by `mark` (all: `None`), in the order they became
    /// final; release those whose wait is over. (A shard hands its findings over before its
    /// progress, and those of the end of the input as final after it: no finding can arrive
    /// for a time already decided.)
    fn decide(&mut self, mark: Option<Timestamp>) {
        let due = |t: Timestamp| mark.is_none_or(|m| t <= m);
        let mut order: Vec<usize> = (0..self.items.len())
            .filter(|&i| !self.items[i].linked && due(self.items[i].at))
            .collect();
        order.sort_by_key(|&i| {
            let f = &self.items[i];
            (
                f.at,
                f.finding.request.time,
                f.finding.connection.id,
                f.finding.request.index,
            )
        });
        for i in order {
            self.link(i);
            self.items[i].linked = true;
        }
        let mut kept = Vec::with_capacity(self.items.len());
        let mut released = Vec::new();
        for item in std::mem::take(&mut self.items) {
            if item.linked && due(item.release_at()) {
                released.push(item);
            } else {
                kept.push(item);
            }
        }
        self.items = kept;
        released.sort_by_key(|f| {
            (
                f.release_at(),
                f.finding.connection.id,
                f.finding.request.index,
            )
        });
        let claims = &self.claims;
        for item in released {
            let f = &item.finding;
            let claimed = claims.contains_key(&(f.connection.id, f.request.index));
            if !(claimed && item.may_be_front()) {
                self.decided.push((item.shard, item.finding));
            }
        }
        if let Some(m) = mark {
            let edge = m.add_secs(-(RETAIN_S + HOLD_S));
            self.claims.retain(|_, c| c.at >= edge);
        }
    }

    /// Find finding `i`'s client leg, if exactly one exchange can be it.
    fn link(&mut self, i: usize) {
        let item = &self.items[i];
        let f = &item.finding;
        if !f.kind.is_finding() {
            return;
        }
        let sent = f.request.time;
        let failed = f.peer_close.as_ref().map_or(sent, |c| c.time);
        let me = (f.connection.id, f.request.frame);
        let retry = f.retry.as_ref().map(|r| (r.connection, r.frame));
        let Some(q) = self.fronts.get(&item.key) else {
            return;
        };
        let mut found: Option<&FrontExchange> = None;
        for x in q {
            let fits = x.conn != f.connection.id
                && x.server.to_string() != f.connection.server
                && x.request.ts <= sent
                && sent.secs_since(x.request.ts) <= FRONT_WINDOW_S
                && x.answer_at.ts >= failed
                && x.known_at <= item.at
                && self
                    .claims
                    .get(&(x.conn, x.index))
                    .is_none_or(|c| c.retry == Some(me) || retry == Some(c.by) || c.by == me);
            if fits {
                if found.is_some() {
                    return;
                }
                found = Some(x);
            }
        }
        let Some(x) = found.cloned() else {
            return;
        };
        let claim = Claim {
            by: me,
            retry,
            at: x.request.ts,
        };
        self.claims.insert((x.conn, x.index), claim);
        let file = self
            .inputs
            .get(x.answer_at.input as usize)
            .cloned()
            .unwrap_or_default();
        apply(&mut self.items[i].finding, &x, file);
    }
}

/// Give finding `f` its client effect `x`; settle its outcome when the upstream leg could not.
fn apply(f: &mut Finding, x: &FrontExchange, file: String) {
    let status = match x.answer {
        Answer::Response(s) => Some(s),
        Answer::Closed => None,
    };
    let failed = status.is_none_or(|s| s >= 500);
    let settled = match (f.outcome, failed) {
        (Outcome::Ambiguous, true) | (Outcome::Lost, true) => Outcome::Lost,
        (Outcome::Ambiguous, false) | (Outcome::Lost, false) => Outcome::Retried,
        (o, _) => o,
    };
    let settles = settled != f.outcome;
    let what = match status {
        Some(s) if failed => format!("answered its client {s}"),
        Some(s) => format!("answered its client {s} (the request succeeded on another attempt)"),
        None => "closed its client's connection without a response".to_string(),
    };
    f.evidence.push_str(&format!(
        " On the client leg ({} -> {}, request frame {}), the proxy {} (frame {}){}.",
        x.client,
        x.server,
        x.request.frame,
        what,
        x.answer_at.frame,
        if settles {
            format!(
                ": the outcome is {} (settled by the client leg)",
                settled.as_str()
            )
        } else {
            String::new()
        }
    ));
    if settles {
        f.outcome = settled;
        f.retry_candidates = None;
    }
    f.client_effect = Some(ClientEffect {
        connection: x.conn,
        client: x.client.to_string(),
        proxy: x.server.to_string(),
        request_frame: x.request.frame,
        file,
        frame: x.answer_at.frame,
        time: x.answer_at.ts,
        status,
        closed_without_response: status.is_none(),
        settled_outcome: settles,
    });
}
