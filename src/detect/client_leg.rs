//! The client leg: what a proxy did to its own client when its upstream request failed.
//!
//! When the capture holds both legs of a proxy (`tcpdump -i any` on the proxy host), each
//! failed upstream request (a finding) has a request of a client to the proxy behind it: the
//! same method and target (the proxy may rewrite Host and add headers), sent to the address
//! the upstream request came from (or to a loopback address: the proxy host's own), received
//! before the upstream request left, and answered (or closed) after the failure reached the
//! proxy. Its
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

use super::records::drain_merged;
use crate::flow::FrameRef;
use crate::report::schema::{ClientEffect, Finding, Kind, Outcome};
use crate::time::Timestamp;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// A client's request reaches the proxy at most this long before the proxy's upstream request.
const FRONT_WINDOW_S: f64 = 5.0;
/// Exchanges are kept this long (capture time) after they were known, besides the time a
/// finding takes to become final after its failure (`ClientLegs::shared`'s `final_s`): an
/// exchange answered after a failure is needed until that failure's finding is final.
const MARGIN_S: f64 = 2.0;
/// A finding that could be a client leg's own (the proxy closed or reset its client) waits
/// this long after it became final for a finding on the upstream leg to claim it.
const HOLD_S: f64 = 5.0;
/// How far out of the order of their times exchanges may be handed over (the shards' of one
/// tick interleave).
const ORDER_SLACK_S: f64 = 1.0;
/// Exchanges kept at most (beyond it new ones are not kept).
const MAX_FRONTS: usize = 1 << 20;
/// Client addresses remembered at most to tell which exchanges may be a client leg (beyond
/// it every exchange is kept).
const MAX_CLIENTS: usize = 1 << 16;

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
    /// The exchanges by key, each queue in the order they were handed over: by the time
    /// they were known, but for the interleaving of shards within a tick.
    fronts: FxHashMap<u64, VecDeque<FrontExchange>>,
    kept: usize,
    /// The addresses that sent requests so far (proxies among them): only an exchange with
    /// one of them (or a loopback address) as its server can be a client leg, the others are
    /// not kept. `None` once more than `MAX_CLIENTS` were seen: every exchange is kept.
    clients: Option<FxHashSet<IpAddr>>,
    /// Exchanges known longer than this before the decided time are forgotten.
    retain_s: f64,
    last_prune: Timestamp,
    claims: FxHashMap<(u64, u32), Claim>,
    items: Vec<Item>,
    decided: Vec<(usize, Finding)>,
    inputs: Vec<String>,
}

/// The links shared by the shards of one analysis.
pub(crate) type SharedLegs = Arc<Mutex<ClientLegs>>;

impl ClientLegs {
    /// For an analysis in `shards` shards of the inputs named `inputs`, whose failures become
    /// final about `final_s` s after the request (the retry window and the settling).
    pub fn shared(shards: usize, inputs: Vec<String>, final_s: f64) -> SharedLegs {
        Arc::new(Mutex::new(ClientLegs {
            progress: vec![None; shards.max(1)],
            inputs,
            retain_s: final_s + MARGIN_S,
            clients: Some(FxHashSet::default()),
            ..ClientLegs::default()
        }))
    }

    /// Requests were sent from these addresses (before, or in the same epoch as, the
    /// exchanges handed over next).
    pub fn add_clients(&mut self, clients: impl IntoIterator<Item = IpAddr>) {
        let Some(set) = &mut self.clients else {
            return;
        };
        // a proxy sends request after request: one look-up for each run of them
        let mut last = None;
        for client in clients {
            if last != Some(client) {
                set.insert(client);
                last = Some(client);
            }
        }
        if set.len() > MAX_CLIENTS {
            self.clients = None;
        }
    }

    /// Whether an exchange with `server` could be a client leg: a finding's proxy (the client
    /// of its request, which was handed over no later than the exchange) is its server.
    fn may_be_leg(&self, server: IpAddr) -> bool {
        server.is_loopback() || self.clients.as_ref().is_none_or(|c| c.contains(&server))
    }

    /// Keep the exchanges of an epoch that can be client legs, handed over as one part per
    /// shard (each emptied), in an order that does not depend on the split. Those that cannot
    /// be one are dropped before the parts are sorted and merged: on a capture of one leg
    /// that leaves nothing to merge.
    pub fn add_fronts<'a>(&mut self, parts: impl IntoIterator<Item = &'a mut Vec<FrontExchange>>) {
        let mut parts: Vec<&mut Vec<FrontExchange>> = parts.into_iter().collect();
        if self.clients.is_some() {
            for p in parts.iter_mut() {
                p.retain(|f| self.may_be_leg(f.server.ip()));
            }
        }
        let order = |e: &FrontExchange| (e.known_at, e.answer_at.ordinal, e.conn, e.index);
        for f in drain_merged(parts, order, |e| (e.known_at, e.answer_at.ordinal)) {
            if self.kept >= MAX_FRONTS {
                return;
            }
            self.fronts.entry(f.key).or_default().push_back(f);
            self.kept += 1;
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
            if mark.secs_since(self.last_prune) >= 1.0 {
                self.last_prune = mark;
                self.forget_before(mark.add_secs(-self.retain_s));
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

    /// Forget the exchanges known before `edge`.
    fn forget_before(&mut self, edge: Timestamp) {
        let mut kept = 0;
        self.fronts.retain(|_, q| {
            while q.front().is_some_and(|x| x.known_at < edge) {
                q.pop_front();
            }
            kept += q.len();
            !q.is_empty()
        });
        self.kept = kept;
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
            let edge = m.add_secs(-(self.retain_s + HOLD_S));
            self.claims.retain(|_, c| c.at >= edge);
        }
    }

    /// Find finding `i`'s client leg, if exactly one exchange can be it.
    fn link(&mut self, i: usize) {
        let item = &self.items[i];
        let f = &item.finding;
        if !f.kind.is_finding() || f.request.method.is_empty() {
            return;
        }
        let sent = f.request.time;
        let failed = f.peer_close.as_ref().map_or(sent, |c| c.time);
        let me = (f.connection.id, f.request.frame);
        let retry = f.retry.as_ref().map(|r| (r.connection, r.frame));
        let Some(q) = self.fronts.get(&item.key) else {
            return;
        };
        let server: Option<SocketAddr> = f.connection.server.parse().ok();
        // the client leg ends at the proxy: the host that sent the upstream request (or, on
        // the proxy host's loopback, the proxy listening there)
        let proxy = f
            .connection
            .client
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip());
        // an answer after the failure was known after it: from the newest back to there (the
        // shards' exchanges of one tick may come in any order)
        let oldest = failed.add_secs(-ORDER_SLACK_S);
        let mut found: Option<&FrontExchange> = None;
        for x in q.iter().rev().take_while(|x| x.known_at >= oldest) {
            // the cheap tests first: most exchanges came after the request
            let fits = x.request.ts <= sent
                && x.answer_at.ts >= failed
                && x.known_at <= item.at
                && sent.secs_since(x.request.ts) <= FRONT_WINDOW_S
                && x.conn != f.connection.id
                && Some(x.server) != server
                && (Some(x.server.ip()) == proxy || x.server.ip().is_loopback())
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

#[cfg(test)]
#[path = "client_leg_tests.rs"]
mod tests;
