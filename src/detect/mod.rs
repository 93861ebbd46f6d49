//! Detect stage: matches requests to responses and to the server's FIN/RST, and gives every
//! request that got no response a verdict ([`verdict`]) decided from sequence and
//! acknowledgement numbers, with its evidence ([`evidence`]), its outcome (retried or lost,
//! [`retry`]) and per server endpoint statistics ([`endpoints`]).
//!
//! It never looks at bytes: its input is the application stage's messages ([`AppEvent`]), the
//! flow stage's retransmissions, and each finished connection's closes ([`ConnEnd`]). A verdict
//! waits for its retry window to pass before it is final.

mod endpoints;
mod evidence;
mod exchanges;
mod recommend;
mod retry;
#[cfg(test)]
mod tests;
mod verdict;

pub(crate) use endpoints::{EndpointTally, merge_endpoints};
pub use exchanges::Exchanges;

use crate::app::{AppEvent, BodyDigest, Identity, Request, Response};
use crate::flow::{ConnEnd, ConnMeta, FrameRef, SegMeta};
use crate::report::schema::{
    CloseInfo, ConnectionInfo, Finding, Outcome, RequestInfo, RetryInfo, RstInfo,
};
use crate::time::Timestamp;
use evidence::{IdleRange, RelativeSeq};
use exchanges::PendingRequest;
use retry::{Attempt, Decided, Failure, RetryMatcher};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use verdict::Verdict;

/// Counters of the application and detect stages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DetectStats {
    pub http_connections: u64,
    pub requests: u64,
    pub responses: u64,
    pub interim_responses: u64,
    pub http_desyncs: u64,
    pub tunnels: u64,
    pub responses_without_request: u64,
    /// Requests taken as answered because the server sent data after them while its HTTP
    /// framing was lost (no verdict for them).
    pub unframed_responses: u64,
}

impl DetectStats {
    /// Add another shard's counters.
    pub fn add(&mut self, other: &DetectStats) {
        let DetectStats {
            http_connections,
            requests,
            responses,
            interim_responses,
            http_desyncs,
            tunnels,
            responses_without_request,
            unframed_responses,
        } = *other;
        self.http_connections += http_connections;
        self.requests += requests;
        self.responses += responses;
        self.interim_responses += interim_responses;
        self.http_desyncs += http_desyncs;
        self.tunnels += tunnels;
        self.responses_without_request += responses_without_request;
        self.unframed_responses += unframed_responses;
    }
}

/// The hash of what a retry of an HTTP request repeats: method, target, Host, body length.
fn retry_key(id: &Identity) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    (&id.method, &id.target, &id.host, id.body_len).hash(&mut h);
    h.finish()
}

/// Settings of the detect stage.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// A request repeated on another connection within this many seconds after its sender
    /// could know of the failure is a candidate retry.
    pub retry_window: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig { retry_window: 1.0 }
    }
}

/// A verdict waiting for its outcome.
#[derive(Debug)]
struct Awaiting {
    server: SocketAddr,
    finding: Finding,
    /// A `reset_unanswered` that was the keep-alive race.
    idle_reset: bool,
}

/// The detect stage's state across connections.
pub struct Detector {
    inputs: Vec<String>,
    retries: RetryMatcher,
    /// By (connection, request index).
    awaiting: FxHashMap<(u64, u32), Awaiting>,
    ready: Vec<Finding>,
    endpoints: FxHashMap<SocketAddr, EndpointTally>,
    /// The server's idle closes seen so far, per client address and server.
    idle_closes: FxHashMap<(IpAddr, SocketAddr), IdleRange>,
    stats: DetectStats,
}

impl Detector {
    /// `settle`: seconds after which a failure's competitors have arrived (the flow stage
    /// hands a closed connection over after its linger time).
    pub fn new(cfg: DetectConfig, inputs: Vec<String>, settle: f64) -> Detector {
        Detector {
            inputs,
            retries: RetryMatcher::new(cfg.retry_window, settle),
            awaiting: FxHashMap::default(),
            ready: Vec::new(),
            endpoints: FxHashMap::default(),
            idle_closes: FxHashMap::default(),
            stats: DetectStats::default(),
        }
    }

    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    fn file_name(&self, at: FrameRef) -> String {
        self.inputs
            .get(at.input as usize)
            .cloned()
            .unwrap_or_default()
    }

    /// Handle a message of connection `conn`; `at` is the segment that completed it.
    pub fn on_message(&mut self, conn: &ConnMeta, ex: &mut Exchanges, ev: AppEvent, at: &SegMeta) {
        if ex.client.is_none() {
            ex.client = conn.syn_client.or(match &ev {
                AppEvent::Request(r) => Some(r.dir),
                AppEvent::Response(r) => Some(r.dir.other()),
                _ => None,
            });
        }
        let Some(client) = ex.client else {
            return;
        };
        if !ex.http {
            ex.http = true;
            self.stats.http_connections += 1;
        }
        match ev {
            AppEvent::Request(r) if r.dir == client => self.on_request(conn, ex, r),
            AppEvent::RequestEnd {
                dir,
                body: Some(body),
            } if dir == client => self.on_request_end(conn, ex, body),
            AppEvent::Response(r) if r.dir != client => self.on_response(ex, &r, at),
            AppEvent::ResponseEnd { dir } if dir != client => ex.on_response_end(at.at.ts),
            AppEvent::Desync { dir } => {
                self.stats.http_desyncs += 1;
                if dir != client {
                    ex.server_desync = true;
                }
            }
            AppEvent::Tunnel { .. } => self.stats.tunnels += 1,
            _ => {}
        }
    }

    fn on_request(&mut self, conn: &ConnMeta, ex: &mut Exchanges, r: Request) {
        let first = r.first;
        let index = ex.next_index;
        ex.next_index += 1;
        ex.requests += 1;
        self.stats.requests += 1;
        let attempt = Attempt {
            conn: conn.id,
            index,
            at: first.at,
            opened: conn.handshake.syn.filter(|_| index == 0),
            client: conn.addrs[r.dir].ip(),
            server: conn.addrs[r.dir.other()],
            key: retry_key(&r.identity),
            exact: r.identity.request_id.map(|id| retry::ExactId {
                hash: id.hash,
                label: id.header.name(),
            }),
            digest: None,
            client_turn: conn.handshake.client_turn(),
        };
        self.retries.on_attempt(attempt.clone());
        if ex.answered_early(r.start) {
            return;
        }
        let idle_before = ex.idle_before(first.at.ts);
        ex.pending.push_back(PendingRequest {
            index,
            start: r.start,
            at: first.at,
            seq: first.seq_at(r.start),
            ack: first.ack,
            ack_off: first.ack_off,
            identity: r.identity,
            idle_before,
            retransmissions: 0,
            attempt,
        });
    }

    /// The client's last request's body ended, all of it captured.
    fn on_request_end(&mut self, conn: &ConnMeta, ex: &mut Exchanges, body: BodyDigest) {
        let Some(index) = ex.next_index.checked_sub(1) else {
            return;
        };
        let mut h = rustc_hash::FxHasher::default();
        body.hash(&mut h);
        let digest = h.finish();
        if let Some(p) = ex.pending.back_mut().filter(|p| p.index == index) {
            p.attempt.digest = Some(digest);
        }
        let group = ex.pending.back().map(|p| p.attempt.group());
        if let Some(group) = group {
            self.retries.on_digest(group, conn.id, index, digest);
        }
    }

    fn on_response(&mut self, ex: &mut Exchanges, r: &Response, at: &SegMeta) {
        if r.interim {
            self.stats.interim_responses += 1;
            return;
        }
        self.stats.responses += 1;
        if ex.on_final_response(r).is_none() && !ex.wait_for_request(at.ack_off) {
            self.stats.responses_without_request += 1;
        }
    }

    /// A connection ended: give its unanswered requests their verdicts and add it to the
    /// endpoint statistics. `now` is the capture time (verdicts wait for the retry window).
    pub fn finish_conn(&mut self, end: &ConnEnd, ex: &mut Exchanges, now: Timestamp) {
        let (true, Some(client)) = (ex.http, ex.client) else {
            return;
        };
        let server = client.other();
        let conn = &end.conn;
        let server_addr = conn.addrs[server];
        let pair = (conn.addrs[client].ip(), server_addr);
        let idle_close = self
            .endpoints
            .entry(server_addr)
            .or_insert_with(|| EndpointTally::new(server_addr))
            .add_connection(conn.id, ex, &end.closes, client);
        if let Some(idle) = idle_close {
            self.idle_closes.entry(pair).or_default().add(idle);
        }
        if ex.pending.is_empty() {
            return self.tick(now);
        }
        let rel = RelativeSeq {
            client: i64::from(conn.from_syn[client]),
            server: i64::from(conn.from_syn[server]),
        };
        let connection = ConnectionInfo::new(conn.id, conn.addrs[client], server_addr);
        for req in &ex.pending {
            if ex.server_desync
                && req
                    .ack_off
                    .zip(end.stream_end[server])
                    .is_some_and(|(ack, end)| end > ack)
            {
                // the server's framing was lost, but it sent data after this request: most
                // likely its response, which cannot be told apart; no verdict
                self.stats.unframed_responses += 1;
                continue;
            }
            let verdict = verdict::decide(req, &end.closes, client);
            let server_rst = end.closes.rst[server];
            let idle = self.idle_closes.get(&pair);
            let idle_reset = evidence::is_idle_reset(&verdict, req, idle);
            let finding = self.finding(req, &verdict, server_rst, rel, &connection, idle);
            self.awaiting.insert(
                (conn.id, req.index),
                Awaiting {
                    server: server_addr,
                    finding,
                    idle_reset,
                },
            );
            self.retries.on_failure(Failure {
                attempt: req.attempt.clone(),
                close: verdict.peer_close().map(|c| c.event().at.ts),
            });
        }
        self.tick(now);
    }

    /// The finding (outcome lost until a retry is found) for a verdict.
    fn finding(
        &self,
        req: &PendingRequest,
        verdict: &Verdict,
        server_rst: Option<SegMeta>,
        rel: RelativeSeq,
        connection: &ConnectionInfo,
        idle: Option<&IdleRange>,
    ) -> Finding {
        let peer_close = verdict.peer_close();
        Finding {
            kind: verdict.kind(),
            outcome: Outcome::Lost,
            request: RequestInfo {
                method: req.identity.method.clone(),
                target: req.identity.target.clone(),
                host: req.identity.host.clone(),
                file: self.file_name(req.at),
                frame: req.at.frame,
                time: req.at.ts,
                index: req.index,
                seq: req.seq.0,
                ack: req.ack.map(|a| a.0),
                retransmissions: req.retransmissions,
            },
            connection: connection.clone(),
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
            evidence: evidence::describe(verdict, req, rel, server_rst.as_ref(), idle),
        }
    }

    /// Capture time advanced to `now`: verdicts whose outcome is decided become final.
    pub fn tick(&mut self, now: Timestamp) {
        self.retries.tick(now);
        self.take_decided();
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
            }
            Decided::Lost => f.outcome = Outcome::Lost,
            Decided::Ambiguous { candidates } => {
                f.outcome = Outcome::Ambiguous;
                f.retry_candidates = Some(candidates);
            }
        }
        if f.kind.is_finding()
            && let Some(ep) = self.endpoints.get_mut(&a.server)
        {
            ep.add_finding(&f, a.idle_reset);
        }
        self.ready.push(f);
    }

    /// Verdicts that became final since the last call (for streaming output).
    pub fn take_ready(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.ready)
    }

    /// End of the analysis: every waiting verdict becomes final; returns the endpoint
    /// statistics to merge ([`merge_endpoints`]).
    pub(crate) fn finish(&mut self) -> Vec<EndpointTally> {
        self.retries.finish();
        self.take_decided();
        self.endpoints.drain().map(|(_, e)| e).collect()
    }
}
