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
mod tls;
mod verdict;

pub(crate) use endpoints::{EndpointTally, merge_endpoints};
pub use exchanges::Exchanges;

use crate::app::{AppEvent, Request, Response};
use crate::flow::{ConnEnd, ConnMeta, FrameRef, SegMeta};
use crate::report::schema::{
    CloseInfo, ConnectionInfo, Finding, Outcome, RequestInfo, RetryInfo, RstInfo,
};
use crate::time::Timestamp;
use evidence::RelativeSeq;
use exchanges::PendingRequest;
use retry::{Candidate, RetryTracker};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::SocketAddr;
use verdict::Verdict;

/// Counters of the application and detect stages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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

/// Settings of the detect stage.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// A request repeated on another connection within this many seconds is a retry.
    pub retry_window: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig { retry_window: 1.0 }
    }
}

/// A verdict waiting for its retry window to close.
#[derive(Debug)]
struct Awaiting {
    deadline: Timestamp,
    key: u64,
    server: SocketAddr,
    finding: Finding,
}

/// The detect stage's state across connections.
pub struct Detector {
    cfg: DetectConfig,
    inputs: Vec<String>,
    retries: RetryTracker,
    awaiting: VecDeque<Awaiting>,
    ready: Vec<Finding>,
    endpoints: FxHashMap<SocketAddr, EndpointTally>,
    stats: DetectStats,
}

impl Detector {
    pub fn new(cfg: DetectConfig, inputs: Vec<String>) -> Detector {
        Detector {
            cfg,
            inputs,
            retries: RetryTracker::default(),
            awaiting: VecDeque::new(),
            ready: Vec::new(),
            endpoints: FxHashMap::default(),
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
    pub fn on_message(&mut self, conn: &ConnMeta, ex: &mut Exchanges, ev: AppEvent, at: SegMeta) {
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
            AppEvent::Response(r) if r.dir != client => self.on_response(conn, ex, &r, at),
            AppEvent::ResponseEnd { dir } if dir != client => ex.on_response_end(at.at.ts),
            AppEvent::Desync { dir } => {
                self.stats.http_desyncs += 1;
                if dir != client {
                    ex.server_desync = true;
                }
            }
            AppEvent::Tunnel { .. } => self.stats.tunnels += 1,
            AppEvent::Closing { dir, close } if dir != client => {
                ex.close_signal.get_or_insert(close);
            }
            _ => {}
        }
    }

    fn on_request(&mut self, conn: &ConnMeta, ex: &mut Exchanges, r: Request) {
        let first = r.first;
        let index = ex.next_index;
        ex.next_index += 1;
        ex.requests += 1;
        self.stats.requests += 1;
        if ex.answered_early(r.start) {
            return;
        }
        let idle_before = ex.idle_before(first.at.ts);
        let client = conn.addrs[r.dir];
        let server = conn.addrs[r.dir.other()];
        let key = retry::key_of(&r.identity, client.ip(), server);
        let candidate = Candidate {
            conn: conn.id,
            index,
            ts: first.at.ts,
            server,
            client_ip: client.ip(),
            retry: None,
        };
        if retry::by_size(&r.identity) && index > 0 {
            // matched by size, only a new connection's first request can be a retry
            self.retries.add(key, candidate);
        } else {
            self.retries
                .on_request(key, candidate, first.at, self.cfg.retry_window);
        }
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
            key,
        });
    }

    fn on_response(&mut self, conn: &ConnMeta, ex: &mut Exchanges, r: &Response, at: SegMeta) {
        if r.interim {
            self.stats.interim_responses += 1;
            return;
        }
        self.stats.responses += 1;
        match ex.on_final_response(r) {
            Some(req) => {
                self.retries.take(req.key, conn.id, req.index);
            }
            None => {
                if !ex.wait_for_request(at.ack_off) {
                    self.stats.responses_without_request += 1;
                }
            }
        }
    }

    /// A connection ended: give its unanswered requests their verdicts and add it to the
    /// endpoint statistics. `now` is the capture time (verdicts wait for the retry window).
    pub fn finish_conn(&mut self, end: &ConnEnd, mut ex: Exchanges, now: Timestamp) {
        let (true, Some(client)) = (ex.http, ex.client) else {
            return;
        };
        let server = client.other();
        let conn = &end.conn;
        let server_addr = conn.addrs[server];
        self.endpoints
            .entry(server_addr)
            .or_insert_with(|| EndpointTally::new(server_addr))
            .add_connection(conn.id, &mut ex, &end.closes, client);
        if ex.pending.is_empty() {
            return self.tick(now);
        }
        let rel = RelativeSeq {
            client: i64::from(conn.from_syn[client]),
            server: i64::from(conn.from_syn[server]),
        };
        let connection = ConnectionInfo {
            id: conn.id,
            client: conn.addrs[client].to_string(),
            server: server_addr.to_string(),
        };
        let (closes, by_signal) = tls::with_close_signal(&end.closes, ex.close_signal, server);
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
                self.retries.take(req.key, conn.id, req.index);
                continue;
            }
            let verdict = verdict::decide(req, &closes, client);
            let server_rst = closes.rst[server];
            let mut finding = self.finding(req, &verdict, server_rst, rel, &connection);
            if by_signal
                && let Some(pc) = finding
                    .peer_close
                    .as_mut()
                    .filter(|c| c.close_type == "fin")
            {
                pc.close_type = "tls_alert";
                let fin = end.closes.fin[server].map(|f| f.at.frame);
                finding.evidence = tls::alert_evidence(&finding.evidence, pc.frame, fin);
            }
            self.awaiting.push_back(Awaiting {
                deadline: req.at.ts.add_secs(self.cfg.retry_window),
                key: req.key,
                server: server_addr,
                finding,
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
    ) -> Finding {
        let peer_close = verdict.peer_close();
        let (method, target) = tls::request_name(&req.identity, req.index);
        Finding {
            kind: verdict.kind(),
            outcome: Outcome::Lost,
            request: RequestInfo {
                method,
                target,
                host: req.identity.host.clone(),
                file: self.file_name(req.at),
                frame: req.at.frame,
                time: req.at.ts,
                index: req.index,
                seq: req.seq.0,
                ack: req.ack.map(|a| a.0),
                retransmissions: req.retransmissions,
                tls: req.identity.tls.as_deref().map(tls::request_info),
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
            evidence: evidence::describe(verdict, req, rel, server_rst.as_ref()),
        }
    }

    /// Capture time advanced to `now`: verdicts whose retry window closed become final.
    pub fn tick(&mut self, now: Timestamp) {
        let mut i = 0;
        while i < self.awaiting.len() {
            if self.awaiting[i].deadline <= now {
                let a = self.awaiting.remove(i).expect("index checked");
                self.finalize(a);
            } else {
                i += 1;
            }
        }
    }

    fn finalize(&mut self, a: Awaiting) {
        let mut f = a.finding;
        let cand = self.retries.take(a.key, f.connection.id, f.request.index);
        if let Some((at, conn)) = cand.and_then(|c| c.retry) {
            let by_size = f.request.tls.as_ref().is_some_and(|t| t.encrypted);
            f.outcome = Outcome::Retried;
            f.retry = Some(RetryInfo {
                file: self.file_name(at),
                frame: at.frame,
                time: at.ts,
                connection: conn,
                matched_by: by_size.then_some("size"),
            });
            if by_size {
                f.evidence.push_str(&format!(
                    " Retried on connection {conn} (frame {}): matched by size, the first request there has a first record of the same length.",
                    at.frame
                ));
            }
        }
        if f.kind.is_finding()
            && let Some(ep) = self.endpoints.get_mut(&a.server)
        {
            ep.add_finding(f.kind, f.idle_before_s);
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
        while let Some(a) = self.awaiting.pop_front() {
            self.finalize(a);
        }
        self.endpoints.drain().map(|(_, e)| e).collect()
    }
}
