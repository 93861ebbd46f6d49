//! Detect stage: matches requests to responses and to the server's FIN/RST, and gives every
//! request that got no response a verdict ([`verdict`]) decided from sequence and
//! acknowledgement numbers, with its evidence ([`evidence`]), its outcome (retried or lost,
//! [`retry`]) and per server endpoint statistics ([`endpoints`]).
//!
//! It never looks at bytes: its input is the application stage's messages ([`AppEvent`]), the
//! flow stage's retransmissions, and each finished connection's closes ([`ConnEnd`]).
//!
//! It works in two parts: the [`Detector`] (one per shard of the input) follows each
//! connection's exchanges and gives the requests left without response their verdicts when the
//! connection ends; the [`Verdicts`] stage (one for the whole input) takes what every shard
//! found ([`Records`]), finds the retries across connections, and makes each finding final once
//! its retry window has passed.

mod advice;
pub(crate) mod client_leg;
mod connection;
mod endpoints;
mod evidence;
mod exchanges;
mod goaways;
mod h2;
mod histogram;
mod ladder;
mod recommend;
mod records;
mod retry;
#[cfg(test)]
mod tests;
mod tls;
mod verdict;
mod verdicts;

pub(crate) use endpoints::{EndpointTally, FindingTally, merge_endpoints};
pub use exchanges::Exchanges;
#[cfg(test)]
pub(crate) use exchanges::MAX_PENDING;
pub use records::Records;
pub use verdicts::Verdicts;

use crate::app::{Anomaly, AppEvent, BodyDigest, Identity, Request, Response};
use crate::flow::{ConnEnd, ConnMeta, Dir, FrameRef, SegMeta};
use crate::report::schema::ConnectionInfo;
use crate::time::Timestamp;
use client_leg::{Answer, FrontExchange, front_key};
use evidence::RelativeSeq;
use exchanges::{PendingRequest, SpareQueues};
use records::{Digest, FailedRequest, IdleClose};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
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
    /// Requests not tracked (no verdict) because more than 1024 requests of their connection
    /// were waiting for responses.
    pub requests_beyond_pending_cap: u64,
    /// Messages whose Content-Length is not a number: their framing is lost (RFC 9112 6.3).
    pub invalid_content_length: u64,
    /// Messages with differing Content-Length values: their framing is lost.
    pub conflicting_content_length: u64,
    /// Heads longer than 64 KiB or with more than 512 header fields (or that never end): the
    /// framing is lost.
    pub heads_over_cap: u64,
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
            requests_beyond_pending_cap,
            invalid_content_length,
            conflicting_content_length,
            heads_over_cap,
        } = *other;
        self.http_connections += http_connections;
        self.requests += requests;
        self.responses += responses;
        self.interim_responses += interim_responses;
        self.http_desyncs += http_desyncs;
        self.tunnels += tunnels;
        self.responses_without_request += responses_without_request;
        self.unframed_responses += unframed_responses;
        self.requests_beyond_pending_cap += requests_beyond_pending_cap;
        self.invalid_content_length += invalid_content_length;
        self.conflicting_content_length += conflicting_content_length;
        self.heads_over_cap += heads_over_cap;
    }

    fn count_anomaly(&mut self, a: Anomaly) {
        match a {
            Anomaly::InvalidContentLength => self.invalid_content_length += 1,
            Anomaly::ConflictingContentLength => self.conflicting_content_length += 1,
            Anomaly::HeadOverCap => self.heads_over_cap += 1,
        }
    }
}

/// The hash of what a retry of an HTTP request repeats: method, target, Host, body length.
fn retry_key(id: &Identity) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    (&id.method, &id.target, &id.host, id.body_len).hash(&mut h);
    h.finish()
}

/// Told of each request and each idle close of a server as the verdict stage takes them
/// (live metrics; one stage for all shards, so nothing is counted twice).
pub trait DetectObserver: Send + Sync + std::fmt::Debug {
    fn request(&self, server: SocketAddr);
    /// The server closed a connection idle for `idle_s` seconds.
    fn idle_close(&self, server: SocketAddr, idle_s: f64);
}

/// Settings of the detect stage.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// A request repeated on another connection within this many seconds after its sender
    /// could know of the failure is a candidate retry.
    pub retry_window: f64,
    /// Told of requests and idle closes as they are seen.
    pub observer: Option<std::sync::Arc<dyn DetectObserver>>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            retry_window: 1.0,
            observer: None,
        }
    }
}

/// The detect stage's per-connection part, one per shard of the input: requests and
/// responses, verdicts on the requests left without response when their connections end, the
/// endpoint statistics of the connections; what the verdict stage needs goes to its
/// [`Records`].
#[derive(Default)]
pub struct Detector {
    endpoints: FxHashMap<SocketAddr, EndpointTally>,
    stats: DetectStats,
    out: Records,
    /// Warnings about the input (framing broken by its sender), with the frame they are about.
    warnings: Vec<(FrameRef, String)>,
    /// Connections with findings decided before their end (refused HTTP/2 streams), and the
    /// direction their client sent.
    open: FxHashMap<u64, Dir>,
    /// The capture time of the analysis.
    now: Timestamp,
    /// Emptied pending-request queues, for the next requests.
    spare: SpareQueues,
    /// The most requests waiting on one connection, and the pending requests looked at for
    /// retransmissions (the tests bound them).
    #[cfg(test)]
    pub(crate) work: (usize, u64),
}

impl Detector {
    pub fn new() -> Detector {
        Detector::default()
    }

    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    /// The capture time advanced (requests answered from now on were known by then).
    pub fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    fn endpoint(&mut self, server: SocketAddr) -> &mut EndpointTally {
        self.endpoints
            .entry(server)
            .or_insert_with(|| EndpointTally::new(server))
    }

    /// Request `p` on connection `conn` (client direction `client`) got `answer` at `at`: for
    /// the client leg, in the records.
    fn front(
        &mut self,
        conn: &ConnMeta,
        client: Dir,
        p: &PendingRequest,
        answer: Answer,
        at: FrameRef,
    ) {
        // an encrypted request has no method and target to be recognised by
        if p.identity.method.is_empty() {
            return;
        }
        self.out.fronts.push(FrontExchange {
            conn: conn.id,
            index: p.index,
            key: front_key(&p.identity.method, &p.identity.target),
            client: conn.addrs[client],
            server: conn.addrs[client.other()],
            request: p.at,
            answer,
            answer_at: at,
            known_at: self.now,
        });
    }

    /// The records for the verdict stage since the last epoch (emptied by it).
    pub fn records(&mut self) -> &mut Records {
        &mut self.out
    }

    /// A segment of the connection with exchanges `ex` repeated bytes already delivered.
    pub fn on_retransmit(&mut self, ex: &mut Exchanges, dir: crate::flow::Dir, off: i64, len: u64) {
        let _looked = ex.on_retransmit(dir, off, len);
        #[cfg(test)]
        {
            self.work.1 += _looked as u64;
        }
    }

    /// Whether there are warnings to take (checked on every packet: cheaper than taking none).
    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty()
    }

    /// The warnings about the input since the last call: (frame, message).
    pub fn take_warnings(&mut self) -> std::vec::Drain<'_, (FrameRef, String)> {
        self.warnings.drain(..)
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
            AppEvent::Response(r) if r.dir != client => self.on_response(conn, client, ex, &r, at),
            AppEvent::ResponseEnd { dir } if dir != client => ex.on_response_end(at.at.ts),
            AppEvent::Desync { dir, anomaly } => {
                self.stats.http_desyncs += 1;
                if dir != client {
                    ex.server_desync = true;
                }
                if let Some((anomaly, reason)) = anomaly {
                    self.stats.count_anomaly(anomaly);
                    self.warnings.push((at.at, format!("HTTP: {reason}")));
                }
            }
            AppEvent::Tunnel { .. } => self.stats.tunnels += 1,
            AppEvent::Closing {
                dir,
                close,
                goaway: None,
            } if dir != client => {
                ex.on_close_signal(close);
            }
            AppEvent::Closing {
                dir,
                close,
                goaway: Some(g),
            } if dir != client => h2::on_goaway(ex, conn, close, g),
            AppEvent::StreamReset {
                dir,
                stream,
                error,
                reset,
            } if dir != client => self.on_stream_reset(conn, ex, stream, error, reset),
            _ => {}
        }
    }

    fn on_request(&mut self, conn: &ConnMeta, ex: &mut Exchanges, r: Request) {
        let first = r.first;
        let index = ex.next_index;
        ex.next_index += 1;
        ex.requests = ex.requests.saturating_add(1);
        self.stats.requests += 1;
        let idle_before = if ex.answered_early(r.start) {
            None
        } else {
            Some(ex.idle_before(first.at.ts))
        };
        let req = PendingRequest {
            index,
            start: r.start,
            at: first.at,
            seq: first.seq_at(r.start),
            ack: first.ack,
            ack_off: first.ack_off,
            key: tls::retry_key(&r.identity)
                .or_else(|| h2::retry_key(&r.identity, conn.id))
                .unwrap_or_else(|| retry_key(&r.identity)),
            identity: r.identity,
            idle_before: idle_before.flatten(),
            retransmissions: 0,
            digest: None,
        };
        let pair = (conn.addrs[r.dir].ip(), conn.addrs[r.dir.other()]);
        let syn = conn.handshake.syn;
        let attempt = records::attempt_of(&req, conn.id, pair, syn, conn.handshake.client_turn());
        self.out.attempts.push(attempt);
        if let Some(Some(idle)) = idle_before {
            self.endpoint(pair.1).add_reuse(idle);
        }
        if idle_before.is_some() && !ex.push_pending(req, &mut self.spare) {
            self.stats.requests_beyond_pending_cap += 1;
        }
        #[cfg(test)]
        {
            self.work.0 = self.work.0.max(ex.pending.len());
        }
    }

    /// The client's last request's body ended, all of it captured.
    fn on_request_end(&mut self, conn: &ConnMeta, ex: &mut Exchanges, body: BodyDigest) {
        let Some(index) = ex.next_index.checked_sub(1) else {
            return;
        };
        let mut h = rustc_hash::FxHasher::default();
        body.hash(&mut h);
        let digest = h.finish();
        let Some(client) = ex.client else {
            return;
        };
        let Some(p) = ex.pending.back_mut().filter(|p| p.index == index) else {
            return;
        };
        p.digest = Some(digest);
        let a = records::attempt_of(p, conn.id, records::pair(conn, client), None, None);
        self.out.digests.push(Digest {
            group: a.group(),
            at: (conn.id, index, a.at.ordinal),
            digest,
        });
    }

    fn on_response(
        &mut self,
        conn: &ConnMeta,
        client: Dir,
        ex: &mut Exchanges,
        r: &Response,
        at: &SegMeta,
    ) {
        if r.interim {
            self.stats.interim_responses += 1;
            return;
        }
        self.stats.responses += 1;
        if let Some(ka) = &r.keep_alive {
            // the endpoint's values, once per connection (usually one value on each)
            let mut h = rustc_hash::FxHasher::default();
            ka.hash(&mut h);
            let seen = h.finish() | 1;
            if ex.keep_alive_seen != seen {
                ex.keep_alive_seen = seen;
                let server = conn.addrs[r.dir];
                self.endpoints
                    .entry(server)
                    .or_insert_with(|| EndpointTally::new(server))
                    .add_keep_alive(ka);
            }
        }
        if let Some(software) = &r.server {
            self.endpoint(conn.addrs[r.dir])
                .add_server_software(software);
        }
        // the request it answers, if one was waiting (and tracked)
        let answered = match r.stream {
            Some(stream) => ex
                .pending
                .position_of_stream(stream)
                .map(|i| &ex.pending.as_slice()[i]),
            None => ex.pending.front(),
        };
        if let Some(p) = answered {
            self.front(conn, client, p, Answer::Response(r.status), r.first.at);
        }
        if !ex.on_final_response(r, &mut self.spare) && !ex.wait_for_request(at.ack_off) {
            self.stats.responses_without_request += 1;
        }
    }

    /// A connection ended: give its unanswered requests their verdicts (for the verdict stage)
    /// and add it to the endpoint statistics.
    pub fn finish_conn(&mut self, end: &ConnEnd, ex: &mut Exchanges) {
        if let Some(client) = self.open.remove(&end.conn.id) {
            // its findings decided before its end learn where it was captured
            let c = connection::connection_info(end, client);
            let note = connection::describe_capture(&c, end.tunnel.as_ref().map(|(_, t)| t));
            self.out.ended.push((end.conn.id, c, note));
        }
        let (true, Some(client)) = (ex.http, ex.client) else {
            return;
        };
        let server = client.other();
        let conn = &end.conn;
        let server_addr = conn.addrs[server];
        let idle_close = self
            .endpoints
            .entry(server_addr)
            .or_insert_with(|| EndpointTally::new(server_addr))
            .add_connection(conn.id, ex, &end.closes, client);
        if let Some(idle) = idle_close {
            self.out.idle_closes.push(IdleClose {
                client: conn.addrs[client].ip(),
                server: server_addr,
                idle,
            });
        }
        let rel = RelativeSeq {
            client: i64::from(conn.from_syn[client]),
            server: i64::from(conn.from_syn[server]),
        };
        // how the findings name the connection: made for the first failed request only
        // (formatting addresses costs more than the rest of a connection's end)
        let mut described: Option<(ConnectionInfo, String)> = None;
        let signal = ex.close_signal();
        let (closes, by_signal) = tls::with_close_signal(&end.closes, signal, server);
        let mut pending = std::mem::take(&mut ex.pending);
        for req in pending.take_all() {
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
            let (connection, capture_note) = described
                .get_or_insert_with(|| {
                    let c = connection::connection_info(end, client);
                    let note =
                        connection::describe_capture(&c, end.tunnel.as_ref().map(|(_, t)| t));
                    (c, note)
                })
                .clone();
            let verdict = h2::goaway_verdict(&req, ex.h2())
                .unwrap_or_else(|| verdict::decide(&req, &closes, client));
            let ladder = self.judged(conn, client, &req, &verdict, ex.trace(), rel);
            self.out.failures.push(FailedRequest {
                verdict,
                ladder,
                server_rst: closes.rst[server],
                rel,
                conn: conn.id,
                client: conn.addrs[client],
                server: server_addr,
                syn: conn.handshake.syn,
                client_turn: conn.handshake.client_turn(),
                untracked_after: u64::from(ex.untracked),
                alert_before_fin: by_signal.then_some(end.closes.fin[server]),
                connection,
                capture_note,
                open: false,
                req,
            });
        }
    }

    /// `req` of connection `conn` got `verdict`: a close answered it (for the client leg);
    /// returns the connection's ladder, when its segments were traced.
    fn judged(
        &mut self,
        conn: &ConnMeta,
        client: Dir,
        req: &PendingRequest,
        verdict: &Verdict,
        trace: Option<&ladder::Trace>,
        rel: RelativeSeq,
    ) -> Option<crate::report::schema::Ladder> {
        if let Some(c) = verdict.peer_close() {
            self.front(conn, client, req, Answer::Closed, c.event().at);
        }
        trace
            .filter(|t| !t.is_empty())
            .map(|t| t.ladder(client, rel, &conn.handshake))
    }

    /// Give `req` of connection `conn` its verdict while the connection goes on (a refused
    /// HTTP/2 stream): its finding learns at the connection's end where it was captured.
    fn judge_open(
        &mut self,
        conn: &ConnMeta,
        client: Dir,
        req: PendingRequest,
        verdict: Verdict,
        ex: &Exchanges,
    ) {
        let server = client.other();
        let rel = RelativeSeq {
            client: i64::from(conn.from_syn[client]),
            server: i64::from(conn.from_syn[server]),
        };
        self.open.insert(conn.id, client);
        let ladder = self.judged(conn, client, &req, &verdict, ex.trace(), rel);
        self.out.failures.push(FailedRequest {
            verdict,
            ladder,
            server_rst: None,
            rel,
            conn: conn.id,
            client: conn.addrs[client],
            server: conn.addrs[server],
            syn: conn.handshake.syn,
            client_turn: conn.handshake.client_turn(),
            untracked_after: u64::from(ex.untracked),
            alert_before_fin: None,
            connection: ConnectionInfo::new(conn.id, conn.addrs[client], conn.addrs[server]),
            capture_note: String::new(),
            open: true,
            req,
        });
    }

    /// End of the analysis: the endpoint statistics to merge ([`merge_endpoints`]).
    pub(crate) fn finish(&mut self) -> Vec<EndpointTally> {
        self.endpoints.drain().map(|(_, e)| e).collect()
    }
}
