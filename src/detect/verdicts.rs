//! The verdict stage: one for the whole input, after the shards. It takes each epoch's
//! [`Records`] of every shard (every request, the requests that got no response with their
//! verdicts, the servers' idle closes), finds each failed request's retry across connections
//! ([`RetryMatcher`]), compares idle times with the server's idle closes seen by the same
//! client, and makes the findings final once their retry window has passed.
//!
//! An epoch's records are taken in an order of their own (attempts by ordinal, failures by
//! connection and index) and decisions are made only at the epoch's end, so the findings do
//! not depend on how the input was split into shards, nor on the order the shards ran in.

use super::DetectConfig;
use super::client_leg::{ClientLegs, SharedLegs};
use super::endpoints::FindingTally;
use super::evidence::{self, IdleRange};
use super::records::{FailedRequest, Records, drain_merged, merged, sort_parts};
use super::retry::{self, Attempt, Decided, RetryMatcher};
use super::tls;
use super::verdict;
use crate::flow::FrameRef;
use crate::report::schema::{
    CloseInfo, ConnectionInfo, Finding, Outcome, RequestInfo, RetryInfo, RstInfo,
};
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

/// Findings held back at most per connection (beyond, they go on without the capture's
/// tunnel and NAT).
const MAX_HELD: usize = 1024;
/// (client, server) pairs whose idle closes are remembered at most.
const MAX_IDLE_PAIRS: usize = 1 << 16;

/// A verdict waiting for its outcome.
#[derive(Debug)]
struct Awaiting {
    finding: Finding,
    /// A `reset_unanswered` that was the keep-alive race.
    idle_reset: bool,
}

/// The verdict stage; see the module's documentation.
pub struct Verdicts {
    inputs: Vec<String>,
    retries: RetryMatcher,
    /// By (connection, request index).
    awaiting: FxHashMap<(u64, u32), Awaiting>,
    ready: Vec<Finding>,
    /// The server's idle closes seen so far, per client address and server.
    idle_closes: FxHashMap<(IpAddr, SocketAddr), IdleRange>,
    /// The client leg: each final finding waits there for the proxy's answer to its client.
    legs: SharedLegs,
    /// What the findings add to each server's statistics.
    found: FindingTally,
    /// The capture time of the epoch being taken.
    now: Timestamp,
    /// Connections with findings decided before their end: the findings already final, held
    /// until the end says where the connection was captured.
    open: FxHashMap<u64, Vec<Finding>>,
    observer: Option<std::sync::Arc<dyn super::DetectObserver>>,
}

impl Verdicts {
    /// `settle`: seconds after which a failure's competitors have arrived (the flow stage
    /// hands a closed connection over after its linger time).
    ///
    /// `final_s`: seconds of capture time after a request by which a verdict on it is usually
    /// final (how long the client leg keeps exchanges).
    pub fn new(cfg: &DetectConfig, inputs: Vec<String>, settle: f64, final_s: f64) -> Verdicts {
        Verdicts {
            legs: ClientLegs::shared(1, inputs.clone(), final_s),
            found: FindingTally::default(),
            now: Timestamp::default(),
            open: FxHashMap::default(),
            inputs,
            retries: RetryMatcher::new(cfg.retry_window, settle),
            awaiting: FxHashMap::default(),
            ready: Vec::new(),
            idle_closes: FxHashMap::default(),
            observer: cfg.observer.clone(),
        }
    }

    /// Take the records of one epoch of every shard (emptied), then let capture time advance
    /// to `now`: the verdicts whose outcome is decided become final.
    pub fn epoch(&mut self, parts: &mut [&mut Records], now: Timestamp) {
        self.now = self.now.max(now);
        self.take(parts);
        self.retries.tick(now);
        self.take_decided();
        self.take_from_legs(Some(now));
    }

    /// The findings the client leg decided (all of them at the end of the input: `None`).
    fn take_from_legs(&mut self, now: Option<Timestamp>) {
        let Ok(mut legs) = self.legs.lock() else {
            return;
        };
        match now {
            Some(now) => legs.progress(0, now),
            None => legs.finish(),
        }
        for f in legs.take_decided(now.map(|_| 0)) {
            self.found.add(&f);
            self.ready.push(f);
        }
    }

    fn take(&mut self, parts: &mut [&mut Records]) {
        if let Some(o) = &self.observer {
            for r in parts.iter() {
                r.attempts.iter().for_each(|a| o.request(a.server));
                (r.idle_closes.iter()).for_each(|c| o.idle_close(c.server, c.idle));
            }
        }
        if let Ok(mut legs) = self.legs.lock() {
            legs.add_clients(
                parts
                    .iter()
                    .flat_map(|r| r.attempts.iter().map(|a| a.client)),
            );
        }
        let order = |a: &Attempt| (a.at.ordinal, a.conn, a.index);
        sort_parts(parts.iter_mut().map(|r| &mut r.attempts), order);
        for a in merged(parts.iter().map(|r| r.attempts.iter()), |a| a.at.ordinal) {
            self.retries.on_attempt(a);
        }
        for d in parts.iter().flat_map(|r| r.digests.iter()) {
            self.retries.on_digest(d.group, d.at, d.digest);
        }
        for c in parts.iter().flat_map(|r| r.idle_closes.iter()) {
            let full = self.idle_closes.len() >= MAX_IDLE_PAIRS;
            match self.idle_closes.get_mut(&(c.client, c.server)) {
                Some(r) => r.add(c.idle),
                None if !full => {
                    let mut r = IdleRange::default();
                    r.add(c.idle);
                    self.idle_closes.insert((c.client, c.server), r);
                }
                None => {}
            }
        }
        // the exchanges for the client leg, in an order independent of the split
        if let Ok(mut legs) = self.legs.lock() {
            legs.add_fronts(parts.iter_mut().map(|r| &mut r.fronts));
        }
        let failures = parts.iter_mut().map(|r| &mut r.failures);
        for f in drain_merged(failures, |f| (f.conn, f.req.index), |f| f.conn) {
            self.on_failure(f);
        }
        let ended = parts.iter_mut().map(|r| &mut r.ended);
        for (conn, connection, note) in drain_merged(ended, |e| e.0, |e| e.0) {
            self.conn_ended(conn, &connection, &note);
        }
        parts.iter_mut().for_each(|r| r.clear());
    }

    /// Connection `conn`, which had findings before its end, ended: its findings, waiting and
    /// held, learn where it was captured; those held go on.
    fn conn_ended(&mut self, conn: u64, connection: &ConnectionInfo, note: &str) {
        let Some(held) = self.open.remove(&conn) else {
            return;
        };
        let complete = |f: &mut Finding| {
            f.connection = connection.clone();
            f.evidence.push_str(note);
        };
        for ((c, _), a) in self.awaiting.iter_mut() {
            if *c == conn {
                complete(&mut a.finding);
            }
        }
        for mut f in held {
            complete(&mut f);
            self.hand_to_legs(f);
        }
    }

    /// A final finding goes to the client leg.
    fn hand_to_legs(&mut self, f: Finding) {
        if let Ok(mut legs) = self.legs.lock() {
            legs.add_final(0, f, self.now);
        }
    }

    fn on_failure(&mut self, f: FailedRequest) {
        let idle = self.idle_closes.get(&(f.client.ip(), f.server));
        let idle_reset = evidence::is_idle_reset(&f.verdict, &f.req, idle);
        let mut finding = self.finding(&f, idle);
        if let Some(fin) = f.alert_before_fin {
            tls::close_by_alert(&mut finding, fin);
        }
        finding.evidence.push_str(&f.capture_note);
        if f.open {
            self.open.entry(f.conn).or_default();
        }
        self.retries.on_failure(&f.failure());
        self.awaiting.insert(
            (f.conn, f.req.index),
            Awaiting {
                finding,
                idle_reset,
            },
        );
    }

    fn file_name(&self, at: FrameRef) -> String {
        self.inputs
            .get(at.input as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// The finding (outcome lost until a retry is found) of a failed request, compared with
    /// the server's idle closes `idle`.
    fn finding(&self, f: &FailedRequest, idle: Option<&IdleRange>) -> Finding {
        let (req, verdict, server_rst) = (&f.req, &f.verdict, f.server_rst);
        let peer_close = verdict.peer_close();
        let mut evidence = evidence::describe(verdict, req, f.rel, server_rst.as_ref(), idle);
        if f.untracked_after > 0 {
            evidence.push_str(&format!(
                " {} later request(s) on the connection were not tracked: more than {} waited for their responses.",
                f.untracked_after,
                super::exchanges::MAX_PENDING
            ));
        }
        let (method, target) = super::h2::request_name(&req.identity)
            .unwrap_or_else(|| tls::request_name(&req.identity, req.index));
        Finding {
            kind: verdict.kind(),
            outcome: Outcome::Lost,
            request: RequestInfo {
                method,
                target,
                host: req.identity.host.as_ref().map(|h| h.to_string()),
                file: self.file_name(req.at),
                frame: req.at.frame,
                time: req.at.ts,
                index: req.index,
                seq: req.seq.0,
                ack: req.ack.map(|a| a.0),
                retransmissions: req.retransmissions,
                tls: req.identity.tls.as_deref().map(tls::request_info),
                stream: req.identity.stream,
            },
            connection: f.connection.clone(),
            peer_close: peer_close.map(|p| {
                let c = p.event();
                CloseInfo {
                    close_type: p.type_name(),
                    file: self.file_name(c.at),
                    frame: c.at.frame,
                    time: c.at.ts,
                    seq: c.seq.0,
                    ack: c.ack.map(|a| a.0),
                    acks_request: verdict::acks_request(&c, req),
                    h2: super::h2::close_info(p),
                }
            }),
            rst: server_rst.map(|r| RstInfo {
                file: self.file_name(r.at),
                frame: r.at.frame,
                time: r.at.ts,
                seq: r.seq.0,
                ack: r.ack.map(|a| a.0),
                has_ack: r.ack.is_some(),
                reply_form: Some(r.seq) == req.ack,
            }),
            fin_to_request_s: peer_close.map(|p| req.at.ts.secs_since(p.event().at.ts)),
            idle_before_s: req.idle_before,
            retry: None,
            retry_candidates: None,
            evidence,
            client_effect: None,
            ladder: f.ladder.clone(),
            flagged_frames: None,
            idle_race: false,
        }
    }

    fn take_decided(&mut self) {
        for (conn, index, decided) in self.retries.take_decided() {
            if let Some(a) = self.awaiting.remove(&(conn, index)) {
                self.finalize(a, decided);
            }
        }
    }

    fn finalize(&mut self, a: Awaiting, decided: Decided) {
        let mut f = a.finding;
        match decided {
            Decided::Retried(m) => {
                f.outcome = Outcome::Retried;
                f.retry = Some(RetryInfo {
                    file: self.file_name(m.at),
                    frame: m.at.frame,
                    time: m.at.ts,
                    connection: m.conn,
                    matched_by: m.by.unwrap_or("timing"),
                    reaction_s: m.reaction_s,
                });
                if m.by == Some(retry::BY_SIZE) {
                    f.evidence
                        .push_str(&tls::size_match_evidence(m.conn, m.at.frame));
                }
            }
            Decided::Lost => f.outcome = Outcome::Lost,
            Decided::Ambiguous { candidates } => {
                f.outcome = Outcome::Ambiguous;
                f.retry_candidates = Some(candidates);
            }
        }
        f.idle_race = a.idle_reset;
        // held while its connection goes on
        match self.open.get_mut(&f.connection.id) {
            Some(held) if held.len() < MAX_HELD => held.push(f),
            _ => self.hand_to_legs(f),
        }
    }

    /// The retry matcher's attempts and failures retained, and its work so far.
    #[cfg(test)]
    pub(crate) fn footprint(&self) -> (usize, usize, u64) {
        self.retries.footprint()
    }

    /// Verdicts that became final since the last call, in the order they did.
    pub fn take_ready(&mut self) -> std::vec::Drain<'_, Finding> {
        self.ready.drain(..)
    }

    /// End of the analysis, after the last epoch: every waiting verdict becomes final; returns
    /// what the findings added to the endpoint statistics.
    pub(crate) fn finish(&mut self) -> FindingTally {
        self.retries.finish();
        // at the end of the input, after the last progress reported
        self.now = Timestamp::from_nanos(self.now.0.saturating_add(1));
        self.take_decided();
        // every connection has ended by now
        let held: Vec<Finding> = self.open.drain().flat_map(|(_, h)| h).collect();
        for f in held {
            self.hand_to_legs(f);
        }
        self.take_from_legs(None);
        std::mem::take(&mut self.found)
    }
}
