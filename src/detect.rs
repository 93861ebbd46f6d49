//! Detect stage: matches HTTP requests to responses and to the peer's FIN/RST, and gives every
//! request that got no response a verdict decided from sequence and acknowledgement numbers.
//!
//! - `crossed_fin`: the server's FIN does not acknowledge the request (the server never saw it)
//!   and the request does not acknowledge the FIN (the client had not received it): they crossed.
//! - `after_fin`: the request acknowledged the server's FIN: sent on a connection its sender knew
//!   was closed (stale reuse).
//! - `after_rst`: sent after the server's RST.
//! - `reset_unanswered`: the server reset the connection after the request, with no FIN.
//! - `closed_unanswered`: the server acknowledged the request, then closed without answering.
//! - informational, not findings: `unanswered_at_end` (no close seen before the capture or the
//!   connection's tracking ended) and `client_closed` (the client closed first).

use crate::flow::{CloseEvent, ConnInfo, FrameRef, SegMeta};
use crate::http::{HttpEvent, RequestHead, ResponseHead};
use crate::time::Timestamp;
use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;
use smallvec::SmallVec;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// The verdict on a request that got no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CrossedFin,
    AfterFin,
    AfterRst,
    ResetUnanswered,
    ClosedUnanswered,
    UnansweredAtEnd,
    ClientClosed,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::CrossedFin,
        Kind::AfterFin,
        Kind::AfterRst,
        Kind::ResetUnanswered,
        Kind::ClosedUnanswered,
        Kind::UnansweredAtEnd,
        Kind::ClientClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CrossedFin => "crossed_fin",
            Kind::AfterFin => "after_fin",
            Kind::AfterRst => "after_rst",
            Kind::ResetUnanswered => "reset_unanswered",
            Kind::ClosedUnanswered => "closed_unanswered",
            Kind::UnansweredAtEnd => "unanswered_at_end",
            Kind::ClientClosed => "client_closed",
        }
    }

    /// Findings count towards the exit code; the others are informational.
    pub fn is_finding(self) -> bool {
        !matches!(self, Kind::UnansweredAtEnd | Kind::ClientClosed)
    }
}

/// Whether a lost request was sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The same request appeared on another connection to the same server within the window.
    Retried,
    Lost,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Retried => "retried",
            Outcome::Lost => "lost",
        }
    }
}

/// A packet, as reported: which file, which frame (1-based), when.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameInfo {
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestInfo {
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub file: String,
    /// Frame of the request's first byte (its first transmission).
    pub frame: u64,
    pub time: Timestamp,
    /// 0-based index of the request on its connection.
    pub index: u32,
    /// Raw TCP sequence number of the request's first byte.
    pub seq: u32,
    /// Raw acknowledgement number carried by that segment (None: no ACK flag).
    pub ack: Option<u32>,
    /// Retransmissions of the request's first segment seen.
    pub retransmissions: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionInfo {
    pub id: u64,
    pub client: String,
    pub server: String,
}

/// The server's FIN or RST that decided the verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloseInfo {
    /// "fin" or "rst".
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
    pub seq: u32,
    pub ack: Option<u32>,
    /// Did its acknowledgement cover the request's first byte (the server had received it)?
    pub acks_request: bool,
}

/// The server's RST that followed the request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RstInfo {
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
    pub seq: u32,
    pub ack: Option<u32>,
    pub has_ack: bool,
    /// The RST's seq equals the request's ack (RFC 9293's reply form SEQ=SEG.ACK): what a
    /// kernel with no socket for the connection sends in answer.
    pub reply_form: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryInfo {
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
    /// Id of the connection that carried the retry.
    pub connection: u64,
}

/// A request without a response, with its verdict and the evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub outcome: Outcome,
    pub request: RequestInfo,
    pub connection: ConnectionInfo,
    pub peer_close: Option<CloseInfo>,
    pub rst: Option<RstInfo>,
    /// Request time minus the server's FIN (or RST) time; negative when the request was
    /// captured first.
    pub fin_to_request_s: Option<f64>,
    /// Idle time on the connection before the request, since the previous response ended.
    pub idle_before_s: Option<f64>,
    pub retry: Option<RetryInfo>,
    pub evidence: String,
}

/// Per server endpoint statistics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EndpointStats {
    pub server: String,
    pub connections: u64,
    pub requests: u64,
    pub responses: u64,
    pub idle_closes: IdleCloses,
    /// The longest idle time after which a client reused a connection (sent another request).
    pub max_reuse_idle_s: Option<f64>,
    /// Distinct `Keep-Alive` header values in responses (the first 8 in sort order).
    pub keep_alive: BTreeSet<String>,
    pub findings: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub recommendation: Option<String>,
    #[serde(skip)]
    race_idle_max: Option<f64>,
}

/// Idle closes by the server: FINs with no request outstanding, after a keep-alive response.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct IdleCloses {
    pub count: u64,
    pub min_s: Option<f64>,
    pub median_s: Option<f64>,
    pub max_s: Option<f64>,
    /// (rank, idle time): the samples for the median, at most `MAX_IDLE_SAMPLES` after
    /// `finish`. Beyond that the samples of lowest rank (a hash of the connection id) are
    /// kept: a deterministic sample that does not depend on the order of the closes, so the
    /// samples of parts of the input (shards) merge to the same result.
    #[serde(skip)]
    samples: Vec<(u64, f64)>,
}

/// Samples kept for the median.
const MAX_IDLE_SAMPLES: usize = 4096;

/// A bijective mix of a connection id (splitmix64's finalizer): distinct ids, distinct ranks.
fn sample_rank(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl IdleCloses {
    fn add(&mut self, v: f64, conn: u64) {
        self.count += 1;
        self.min_s = Some(self.min_s.map_or(v, |m| m.min(v)));
        self.max_s = Some(self.max_s.map_or(v, |m| m.max(v)));
        self.samples.push((sample_rank(conn), v));
        if self.samples.len() >= 2 * MAX_IDLE_SAMPLES {
            self.trim();
        }
    }

    /// Keep the `MAX_IDLE_SAMPLES` samples of lowest rank.
    fn trim(&mut self) {
        if self.samples.len() > MAX_IDLE_SAMPLES {
            self.samples
                .select_nth_unstable_by_key(MAX_IDLE_SAMPLES - 1, |&(rank, _)| rank);
            self.samples.truncate(MAX_IDLE_SAMPLES);
        }
    }

    /// Add the closes of another part of the input.
    fn merge(&mut self, other: &IdleCloses) {
        self.count += other.count;
        self.min_s = match (self.min_s, other.min_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_s = match (self.max_s, other.max_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.samples.extend_from_slice(&other.samples);
        self.trim();
    }

    fn finish(&mut self) {
        self.trim();
        if self.samples.is_empty() {
            return;
        }
        let mut s: Vec<f64> = self.samples.iter().map(|&(_, v)| v).collect();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        self.median_s = Some(if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        });
    }
}

/// Counters of the HTTP and detect stages.
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

/// One request on a connection, from its head until its response or verdict.
#[derive(Clone, Debug)]
struct Req {
    index: u32,
    start: i64,
    at: FrameRef,
    seq: u32,
    ack: Option<u32>,
    ack_off: Option<i64>,
    method: String,
    target: String,
    host: Option<String>,
    idle_before: Option<f64>,
    retransmissions: u32,
    key: u64,
}

/// Metadata of recently delivered bytes of one direction, to find which segment carried an
/// offset (a head may start some segments before the one that completes it). A fixed ring:
/// no allocation per connection; a head spread over more segments maps to the oldest kept.
#[derive(Debug, Default)]
struct ChunkLog {
    /// (direction, start, end, segment)
    ring: [(u8, i64, i64, SegMeta); CHUNK_LOG_LEN],
    next: usize,
    len: usize,
}

const CHUNK_LOG_LEN: usize = 4;

impl ChunkLog {
    fn push(&mut self, dir: usize, off: i64, len: u64, meta: SegMeta) {
        self.ring[self.next] = (dir as u8, off, off + len as i64, meta);
        self.next = (self.next + 1) % CHUNK_LOG_LEN;
        self.len = (self.len + 1).min(CHUNK_LOG_LEN);
    }

    fn find(&self, dir: usize, off: i64) -> Option<SegMeta> {
        let mut oldest = None;
        for i in 1..=self.len {
            let (d, s, e, m) = self.ring[(self.next + CHUNK_LOG_LEN - i) % CHUNK_LOG_LEN];
            if usize::from(d) != dir {
                continue;
            }
            if s <= off && off < e {
                return Some(m);
            }
            oldest = Some(m);
        }
        oldest
    }
}

/// Per connection state of the detect stage.
#[derive(Debug, Default)]
pub struct ConnDetect {
    client_dir: Option<usize>,
    chunks: ChunkLog,
    pending: VecDeque<Req>,
    next_index: u32,
    requests: u64,
    responses: u64,
    http: bool,
    /// When the last final response ended, and whether it ended the connection's keep-alive
    /// (Connection: close or read-until-close).
    last_response_end: Option<(Timestamp, bool)>,
    max_reuse_idle: Option<f64>,
    /// Distinct Keep-Alive header values (usually one).
    keep_alive: SmallVec<[String; 1]>,
    last_response_close: bool,
    in_response: bool,
    /// The server's HTTP framing was lost (a head that did not parse, or a gap in a head).
    server_desync: bool,
    /// End of the server's bytes delivered so far (stream offset).
    server_data_end: Option<i64>,
    /// Responses seen before any request they could answer (the capture put the server's
    /// direction first): how many client bytes each one's segment acknowledged.
    early_responses: VecDeque<i64>,
}

/// Bound on responses waiting for their request.
const MAX_EARLY_RESPONSES: usize = 64;

impl ConnDetect {
    /// The client's direction, once known.
    pub fn client_dir(&self) -> Option<usize> {
        self.client_dir
    }

    /// Note bytes (or a gap) delivered in direction `dir` so offsets map back to frames.
    pub fn log_chunk(&mut self, dir: usize, off: i64, len: u64, meta: SegMeta) {
        // only requests need mapping back to their first segment
        if self.client_dir.is_none_or(|c| c == dir) {
            self.chunks.push(dir, off, len, meta);
        }
        if Some(dir) != self.client_dir {
            let end = off + len as i64;
            self.server_data_end = Some(self.server_data_end.map_or(end, |e| e.max(end)));
        }
    }

    /// A segment of direction `dir` repeated bytes already delivered.
    pub fn on_retransmit(&mut self, dir: usize, off: i64, len: u64) {
        if Some(dir) != self.client_dir {
            return;
        }
        for r in self.pending.iter_mut() {
            if off <= r.start && r.start < off + len as i64 {
                r.retransmissions += 1;
            }
        }
    }
}

/// What the detect stage needs about a finished connection's TCP closes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Closes {
    pub fin: [Option<CloseEvent>; 2],
    pub rst: [Option<CloseEvent>; 2],
}

#[derive(Clone, Debug)]
struct Candidate {
    conn: u64,
    index: u32,
    ts: Timestamp,
    server: SocketAddr,
    client_ip: IpAddr,
    /// The retry: its first segment and connection.
    retry: Option<(FrameRef, u64)>,
}

/// Finds retries: the same request (method, target, Host, client IP) on another connection to
/// the same server soon after. Holds only requests still waiting for a response or a verdict.
#[derive(Debug, Default)]
struct RetryTracker {
    by_key: FxHashMap<u64, SmallVec<[Candidate; 1]>>,
}

impl RetryTracker {
    fn on_request(&mut self, key: u64, cand: Candidate, at: FrameRef, window: f64) {
        let list = self.by_key.entry(key).or_default();
        for c in list.iter_mut() {
            let dt = cand.ts.secs_since(c.ts);
            if c.retry.is_none()
                && c.conn != cand.conn
                && c.server == cand.server
                && c.client_ip == cand.client_ip
                && (0.0..=window).contains(&dt)
            {
                c.retry = Some((at, cand.conn));
            }
        }
        list.push(cand);
    }

    fn take(&mut self, key: u64, conn: u64, index: u32) -> Option<Candidate> {
        let list = self.by_key.get_mut(&key)?;
        let pos = list
            .iter()
            .position(|c| c.conn == conn && c.index == index)?;
        let c = list.swap_remove(pos);
        if list.is_empty() {
            self.by_key.remove(&key);
        }
        Some(c)
    }

    fn len(&self) -> usize {
        self.by_key.values().map(|v| v.len()).sum()
    }
}

/// A verdict waiting for its retry window to close.
#[derive(Debug)]
struct Awaiting {
    deadline: Timestamp,
    key: u64,
    finding: Finding,
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

/// The detect stage's state across connections.
pub struct Detector {
    cfg: DetectConfig,
    inputs: Vec<String>,
    retries: RetryTracker,
    awaiting: VecDeque<Awaiting>,
    ready: Vec<Finding>,
    endpoints: FxHashMap<SocketAddr, EndpointStats>,
    pub stats: DetectStats,
}

fn key_of(head: &RequestHead, client_ip: IpAddr, server: SocketAddr) -> u64 {
    let mut h = FxHasher::default();
    head.method.hash(&mut h);
    head.target.hash(&mut h);
    head.host.hash(&mut h);
    client_ip.hash(&mut h);
    server.hash(&mut h);
    h.finish()
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

    /// Add an input name (live sources may learn theirs late).
    pub fn set_inputs(&mut self, inputs: Vec<String>) {
        self.inputs = inputs;
    }

    fn frame_info(&self, at: FrameRef) -> FrameInfo {
        FrameInfo {
            file: self
                .inputs
                .get(at.input as usize)
                .cloned()
                .unwrap_or_default(),
            frame: at.frame,
            time: at.ts,
        }
    }

    /// Requests being watched for a retry (for memory accounting and tests).
    pub fn tracked_requests(&self) -> usize {
        self.retries.len()
    }

    /// Handle an HTTP event of direction `dir`; `meta` is the segment that completed it.
    pub fn on_http(
        &mut self,
        info: &ConnInfo,
        cd: &mut ConnDetect,
        dir: usize,
        ev: HttpEvent,
        meta: SegMeta,
    ) {
        if cd.client_dir.is_none() {
            cd.client_dir = info.syn_client.or(match &ev {
                HttpEvent::Request(_) => Some(dir),
                HttpEvent::Response(_) => Some(1 - dir),
                _ => None,
            });
        }
        let Some(client) = cd.client_dir else {
            return;
        };
        if !cd.http {
            cd.http = true;
            self.stats.http_connections += 1;
        }
        match ev {
            HttpEvent::Request(head) if dir == client => self.on_request(info, cd, dir, head),
            HttpEvent::Response(head) if dir != client => self.on_response(info, cd, &head, meta),
            HttpEvent::ResponseEnd { .. } if dir != client && cd.in_response => {
                cd.in_response = false;
                cd.last_response_end = Some((meta.at.ts, cd.last_response_close));
            }
            HttpEvent::Desync { .. } => {
                self.stats.http_desyncs += 1;
                if dir != client {
                    cd.server_desync = true;
                }
            }
            HttpEvent::Tunnel { .. } => self.stats.tunnels += 1,
            _ => {}
        }
    }

    fn on_request(&mut self, info: &ConnInfo, cd: &mut ConnDetect, dir: usize, head: RequestHead) {
        let meta = cd.chunks.find(dir, head.start).unwrap_or_default();
        let index = cd.next_index;
        cd.next_index += 1;
        cd.requests += 1;
        self.stats.requests += 1;
        if cd
            .early_responses
            .front()
            .is_some_and(|&ack| ack > head.start)
        {
            // answered by a response the capture showed earlier (its ack covers this request)
            cd.early_responses.pop_front();
            return;
        }
        let idle_before = match cd.last_response_end {
            Some((end, _)) if cd.pending.is_empty() && !cd.in_response => {
                Some(meta.at.ts.secs_since(end).max(0.0))
            }
            _ => None,
        };
        if let Some(idle) = idle_before {
            cd.max_reuse_idle = Some(cd.max_reuse_idle.map_or(idle, |m: f64| m.max(idle)));
        }
        let client = info.addrs[dir];
        let server = info.addrs[1 - dir];
        let key = key_of(&head, client.ip(), server);
        self.retries.on_request(
            key,
            Candidate {
                conn: info.id,
                index,
                ts: meta.at.ts,
                server,
                client_ip: client.ip(),
                retry: None,
            },
            meta.at,
            self.cfg.retry_window,
        );
        cd.pending.push_back(Req {
            index,
            start: head.start,
            at: meta.at,
            seq: meta.seq.wrapping_add((head.start - meta.off) as u32),
            ack: meta.ack,
            ack_off: meta.ack_off,
            method: head.method,
            target: head.target,
            host: head.host,
            idle_before,
            retransmissions: 0,
            key,
        });
    }

    fn on_response(
        &mut self,
        info: &ConnInfo,
        cd: &mut ConnDetect,
        head: &ResponseHead,
        meta: SegMeta,
    ) {
        if (100..200).contains(&head.status) && head.status != 101 {
            self.stats.interim_responses += 1;
            return;
        }
        cd.responses += 1;
        self.stats.responses += 1;
        if let Some(ka) = &head.keep_alive
            && cd.keep_alive.len() < 8
            && !cd.keep_alive.contains(ka)
        {
            cd.keep_alive.push(ka.clone());
        }
        cd.in_response = true;
        cd.last_response_close = head.connection_close || head.version == 0;
        match cd.pending.pop_front() {
            Some(req) => {
                self.retries.take(req.key, info.id, req.index);
            }
            None => match meta.ack_off {
                // its request may come later in the capture: the ack will tell
                Some(ack) if cd.early_responses.len() < MAX_EARLY_RESPONSES => {
                    cd.early_responses.push_back(ack)
                }
                _ => self.stats.responses_without_request += 1,
            },
        }
    }

    /// A connection ended: give its unanswered requests their verdicts and add it to the
    /// endpoint statistics. `now` is the capture time (verdicts wait for the retry window).
    pub fn finish_conn(
        &mut self,
        info: &ConnInfo,
        mut cd: ConnDetect,
        closes: &Closes,
        now: Timestamp,
    ) {
        if !cd.http {
            return;
        }
        let Some(client) = cd.client_dir else {
            return;
        };
        let server = 1 - client;
        let server_addr = info.addrs[server];
        let ep = self
            .endpoints
            .entry(server_addr)
            .or_insert_with(|| EndpointStats {
                server: server_addr.to_string(),
                ..EndpointStats::default()
            });
        ep.connections += 1;
        ep.requests += cd.requests;
        ep.responses += cd.responses;
        for ka in std::mem::take(&mut cd.keep_alive) {
            add_keep_alive(&mut ep.keep_alive, ka);
        }
        if let Some(m) = cd.max_reuse_idle {
            ep.max_reuse_idle_s = Some(ep.max_reuse_idle_s.map_or(m, |e| e.max(m)));
        }
        if let Some(idle) = idle_close(&cd, closes, client) {
            ep.idle_closes.add(idle, info.id);
        }
        let rel = Rel {
            client: i64::from(info.from_syn[client]),
            server: i64::from(info.from_syn[server]),
        };
        if cd.pending.is_empty() {
            return self.tick(now);
        }
        let conn = ConnectionInfo {
            id: info.id,
            client: info.addrs[client].to_string(),
            server: server_addr.to_string(),
        };
        for req in &cd.pending {
            if cd.server_desync
                && req
                    .ack_off
                    .zip(cd.server_data_end)
                    .is_some_and(|(ack, end)| end > ack)
            {
                // the server's framing was lost, but it sent data after this request: most
                // likely its response, which cannot be told apart; no verdict
                self.stats.unframed_responses += 1;
                self.retries.take(req.key, info.id, req.index);
                continue;
            }
            let finding = self.verdict(req, closes, client, &conn, rel);
            let deadline = req.at.ts.add_secs(self.cfg.retry_window);
            self.awaiting.push_back(Awaiting {
                deadline,
                key: req.key,
                finding,
            });
        }
        self.tick(now);
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
            let fi = self.frame_info(at);
            f.outcome = Outcome::Retried;
            f.retry = Some(RetryInfo {
                file: fi.file,
                frame: fi.frame,
                time: fi.time,
                connection: conn,
            });
        }
        if f.kind.is_finding() {
            let server: SocketAddr = match f.connection.server.parse() {
                Ok(s) => s,
                Err(_) => return self.ready.push(f),
            };
            if let Some(ep) = self.endpoints.get_mut(&server) {
                ep.findings += 1;
                *ep.by_kind.entry(f.kind.as_str()).or_default() += 1;
                if matches!(f.kind, Kind::CrossedFin | Kind::AfterFin)
                    && let Some(idle) = f.idle_before_s
                {
                    ep.race_idle_max = Some(ep.race_idle_max.map_or(idle, |m: f64| m.max(idle)));
                }
            }
        }
        self.ready.push(f);
    }

    /// Verdicts that became final since the last call (for streaming output).
    pub fn take_ready(&mut self) -> Vec<Finding> {
        std::mem::take(&mut self.ready)
    }

    /// End of the analysis: every waiting verdict becomes final; endpoint statistics with
    /// recommendations, ordered by server address.
    pub fn finish(&mut self) -> Vec<EndpointStats> {
        while let Some(a) = self.awaiting.pop_front() {
            self.finalize(a);
        }
        let mut eps: Vec<EndpointStats> = self.endpoints.drain().map(|(_, e)| e).collect();
        for ep in &mut eps {
            ep.idle_closes.finish();
            ep.recommendation = recommend(ep);
        }
        eps.sort_by(|a, b| a.server.cmp(&b.server));
        eps
    }

    fn verdict(
        &self,
        req: &Req,
        closes: &Closes,
        client: usize,
        conn: &ConnectionInfo,
        rel: Rel,
    ) -> Finding {
        let server = 1 - client;
        let sees = |c: &CloseEvent| c.ack_off.is_some_and(|a| a > req.start);
        let client_close = [closes.fin[client], closes.rst[client]]
            .into_iter()
            .flatten()
            .min_by_key(|c| c.at.ordinal);
        let req_frame = self.frame_info(req.at);
        let rq = |o: i64| o + rel.client; // relative sequence numbers, as Wireshark shows them
        let rs = |o: i64| o + rel.server;
        let mut peer_close = None;
        let mut fin_to_request = None;
        let (kind, mut evidence) = if let Some(fin) = closes.fin[server] {
            peer_close = Some((fin, "fin"));
            fin_to_request = Some(req.at.ts.secs_since(fin.at.ts));
            let fin_ack = fin
                .ack_off
                .map_or("none".to_string(), |a| rq(a).to_string());
            if sees(&fin) {
                let answered_client = client_close.is_some_and(|c| {
                    closes.fin[client].is_some() && fin.ack_off.is_some_and(|a| a > c.off)
                });
                if answered_client {
                    (
                        Kind::ClientClosed,
                        format!(
                            "The client closed first (frame {}); the server's FIN (frame {}) answered that close, acknowledging client bytes up to {}.",
                            client_close.map_or(0, |c| c.at.frame),
                            fin.at.frame,
                            fin_ack
                        ),
                    )
                } else {
                    (
                        Kind::ClosedUnanswered,
                        format!(
                            "The server's FIN (frame {}, ack {}) acknowledged the request, which starts at seq {}: the server received it and closed {:.6} s later without answering.",
                            fin.at.frame,
                            fin_ack,
                            rq(req.start),
                            fin.at.ts.secs_since(req.at.ts)
                        ),
                    )
                }
            } else {
                let req_ack = req
                    .ack_off
                    .map_or("none".to_string(), |a| rs(a).to_string());
                if req.ack_off.is_some_and(|a| a > fin.off) {
                    (
                        Kind::AfterFin,
                        format!(
                            "The request (frame {}, ack {}) acknowledged the server's FIN at seq {} (frame {}): the client's kernel had the FIN before the request was sent on the closed connection (stale reuse). The FIN's ack {} does not cover the request, which starts at seq {}: the server never saw it.",
                            req.at.frame,
                            req_ack,
                            rs(fin.off),
                            fin.at.frame,
                            fin_ack,
                            rq(req.start)
                        ),
                    )
                } else {
                    (
                        Kind::CrossedFin,
                        format!(
                            "The server's FIN (frame {}, ack {}) does not cover the request, which starts at seq {}: the server never saw it. The request (frame {}, ack {}) does not acknowledge the FIN at seq {}: the client had not received the FIN when it sent. They crossed in flight.",
                            fin.at.frame,
                            fin_ack,
                            rq(req.start),
                            req.at.frame,
                            req_ack,
                            rs(fin.off)
                        ),
                    )
                }
            }
        } else if let Some(rst) = closes.rst[server] {
            peer_close = Some((rst, "rst"));
            fin_to_request = Some(req.at.ts.secs_since(rst.at.ts));
            if client_close.is_some_and(|c| c.at.ordinal < rst.at.ordinal) {
                (
                    Kind::ClientClosed,
                    format!(
                        "The client closed first (frame {}); the server's RST (frame {}) followed.",
                        client_close.map_or(0, |c| c.at.frame),
                        rst.at.frame
                    ),
                )
            } else if rst.at.ordinal < req.at.ordinal && !sees(&rst) {
                (
                    Kind::AfterRst,
                    format!(
                        "The server reset the connection (RST frame {}) {:.6} s before the request (frame {}) was sent on it.",
                        rst.at.frame,
                        req.at.ts.secs_since(rst.at.ts),
                        req.at.frame
                    ),
                )
            } else {
                let acked = if sees(&rst) {
                    "acknowledging the request's bytes"
                } else if rst.ack.is_some() {
                    "not acknowledging the request"
                } else {
                    "without ACK"
                };
                let form = if Some(rst.seq) == req.ack {
                    "in reply form (its seq equals the request's ack)"
                } else {
                    "not in reply form"
                };
                (
                    Kind::ResetUnanswered,
                    format!(
                        "The server reset the connection (RST frame {}, {}, {}) {:.6} s after the request (frame {}), with no FIN and no response: an abortive close or a middlebox.",
                        rst.at.frame,
                        acked,
                        form,
                        rst.at.ts.secs_since(req.at.ts),
                        req.at.frame
                    ),
                )
            }
        } else if let Some(c) = client_close {
            (
                Kind::ClientClosed,
                format!(
                    "The client closed the connection (frame {}) before any response or close by the server.",
                    c.at.frame
                ),
            )
        } else {
            (
                Kind::UnansweredAtEnd,
                "No response, FIN or RST from the server before the capture (or the connection's tracking) ended.".to_string(),
            )
        };
        // the server's RST that followed (for FIN verdicts), or the RST itself
        let rst = closes.rst[server].map(|r| RstInfo {
            file: self.frame_info(r.at).file,
            frame: r.at.frame,
            time: r.at.ts,
            seq: r.seq,
            ack: r.ack,
            has_ack: r.ack.is_some(),
            reply_form: Some(r.seq) == req.ack,
        });
        if let (Some((_, "fin")), Some(r)) = (peer_close, &rst)
            && kind.is_finding()
        {
            evidence.push_str(&format!(
                " The server then reset the connection (RST frame {}).",
                r.frame
            ));
        }
        let peer_close = peer_close.map(|(c, t)| {
            let fi = self.frame_info(c.at);
            CloseInfo {
                kind: t,
                file: fi.file,
                frame: fi.frame,
                time: fi.time,
                seq: c.seq,
                ack: c.ack,
                acks_request: sees(&c),
            }
        });
        Finding {
            kind,
            outcome: Outcome::Lost,
            request: RequestInfo {
                method: req.method.clone(),
                target: req.target.clone(),
                host: req.host.clone(),
                file: req_frame.file,
                frame: req_frame.frame,
                time: req_frame.time,
                index: req.index,
                seq: req.seq,
                ack: req.ack,
                retransmissions: req.retransmissions,
            },
            connection: conn.clone(),
            peer_close,
            rst,
            fin_to_request_s: fin_to_request,
            idle_before_s: req.idle_before,
            retry: None,
            evidence,
        }
    }
}

/// Add a `Keep-Alive` value to an endpoint's: of more than 8, the first 8 in sort order are
/// kept (independent of the order the values come in, so parts of the input merge alike).
fn add_keep_alive(set: &mut BTreeSet<String>, ka: String) {
    if set.len() < 8 || set.last().is_some_and(|last| ka < *last) {
        set.insert(ka);
        if set.len() > 8 {
            set.pop_last();
        }
    }
}

impl DetectStats {
    /// Add another part's counters (the shards of a parallel analysis).
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

/// Merge the endpoint statistics of parts of the input (each from [`Detector::finish`]; every
/// connection in exactly one part): per server, counts summed, idle closes and keep-alive
/// values merged, the recommendation recomputed. Ordered by server address, as `finish` is.
pub fn merge_endpoints(parts: Vec<Vec<EndpointStats>>) -> Vec<EndpointStats> {
    let mut by_server: BTreeMap<String, EndpointStats> = BTreeMap::new();
    for ep in parts.into_iter().flatten() {
        let Some(m) = by_server.get_mut(&ep.server) else {
            by_server.insert(ep.server.clone(), ep);
            continue;
        };
        m.connections += ep.connections;
        m.requests += ep.requests;
        m.responses += ep.responses;
        m.idle_closes.merge(&ep.idle_closes);
        m.max_reuse_idle_s = max_opt(m.max_reuse_idle_s, ep.max_reuse_idle_s);
        for ka in ep.keep_alive {
            add_keep_alive(&mut m.keep_alive, ka);
        }
        m.findings += ep.findings;
        for (k, n) in ep.by_kind {
            *m.by_kind.entry(k).or_default() += n;
        }
        m.race_idle_max = max_opt(m.race_idle_max, ep.race_idle_max);
    }
    let mut eps: Vec<EndpointStats> = by_server.into_values().collect();
    for ep in &mut eps {
        ep.idle_closes.finish();
        ep.recommendation = recommend(ep);
    }
    eps.sort_by(|a, b| a.server.cmp(&b.server));
    eps
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Offsets to add to stream offsets to get Wireshark-style relative sequence numbers.
#[derive(Clone, Copy)]
struct Rel {
    client: i64,
    server: i64,
}

/// The idle time before the server's FIN, when it closed an idle keep-alive connection: no
/// request it had received was outstanding, the last response did not announce the close, and
/// the client had not closed first.
fn idle_close(cd: &ConnDetect, closes: &Closes, client: usize) -> Option<f64> {
    let fin = closes.fin[1 - client]?;
    let (end, close_delimited) = cd.last_response_end?;
    if close_delimited || fin.at.ts < end {
        return None;
    }
    let saw_pending = cd
        .pending
        .front()
        .is_some_and(|r| fin.ack_off.is_some_and(|a| a > r.start));
    let client_first = closes.fin[client].is_some_and(|c| fin.ack_off.is_some_and(|a| a > c.off));
    if saw_pending || client_first {
        return None;
    }
    Some(fin.at.ts.secs_since(end))
}

/// One sentence of advice for an endpoint with findings.
fn recommend(ep: &EndpointStats) -> Option<String> {
    let n = |k: Kind| ep.by_kind.get(k.as_str()).copied().unwrap_or(0);
    let crossed = n(Kind::CrossedFin);
    let after = n(Kind::AfterFin);
    let resets = n(Kind::AfterRst) + n(Kind::ResetUnanswered);
    if crossed > 0 {
        let close = ep
            .idle_closes
            .median_s
            .map_or("an idle timeout".to_string(), |m| format!("about {m:.1} s"));
        let reuse = ep
            .race_idle_max
            .or(ep.max_reuse_idle_s)
            .map_or(String::new(), |m| {
                format!(" while clients reuse them after up to {m:.2} s")
            });
        return Some(format!(
            "{} closes idle keep-alive connections after {}{}, so {} request(s) crossed its FIN: make the upstream's idle timeout longer than the client's (proxy's) keep-alive timeout, or the client's shorter.",
            ep.server, close, reuse, crossed
        ));
    }
    if after > 0 {
        return Some(format!(
            "Clients sent {} request(s) to {} on connections whose FIN they had already acknowledged: the client's connection pool reuses closed connections (check that it detects a closed connection before reuse, and retries idempotent requests).",
            after, ep.server
        ));
    }
    if resets > 0 {
        return Some(format!(
            "{} reset {} connection(s) with requests outstanding: look for an abortive close (SO_LINGER 0, a crash) or a middlebox (firewall, load balancer idle timeout) between client and server.",
            ep.server, resets
        ));
    }
    if n(Kind::ClosedUnanswered) > 0 {
        return Some(format!(
            "{} received {} request(s) and closed without answering: check its request timeouts and error logs.",
            ep.server,
            n(Kind::ClosedUnanswered)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(frame: u64, secs: f64) -> FrameRef {
        FrameRef {
            input: 0,
            frame,
            ordinal: frame,
            ts: Timestamp::from_secs_f64(secs),
        }
    }

    fn info(id: u64, client_port: u16) -> ConnInfo {
        ConnInfo {
            id,
            addrs: [
                format!("10.0.0.1:{client_port}").parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            ],
            syn_client: Some(0),
            from_syn: [true, true],
        }
    }

    fn head(target: &str, start: i64) -> RequestHead {
        RequestHead {
            start,
            head_end: start + 30,
            method: "GET".into(),
            target: target.into(),
            host: Some("h".into()),
            version: 1,
            connection_close: false,
            content_length: None,
            chunked: false,
        }
    }

    fn resp(start: i64) -> ResponseHead {
        ResponseHead {
            start,
            head_end: start + 40,
            status: 200,
            version: 1,
            connection_close: false,
            keep_alive_timeout: Some(1),
            keep_alive: Some("timeout=1".into()),
        }
    }

    /// Request `target` at client offset `start` sent in frame `f` at `t` carrying `ack_off`.
    fn request(
        d: &mut Detector,
        i: &ConnInfo,
        cd: &mut ConnDetect,
        target: &str,
        start: i64,
        f: FrameRef,
        ack_off: i64,
    ) {
        let meta = SegMeta {
            at: f,
            seq: 1 + start as u32,
            off: start,
            ack: Some(1 + ack_off as u32),
            ack_off: Some(ack_off),
        };
        cd.log_chunk(0, start, 30, meta);
        d.on_http(i, cd, 0, HttpEvent::Request(head(target, start)), meta);
    }

    fn close(f: FrameRef, off: i64, ack_off: Option<i64>) -> CloseEvent {
        CloseEvent {
            at: f,
            seq: 1 + off as u32,
            off,
            ack: ack_off.map(|a| 1 + a as u32),
            ack_off,
        }
    }

    /// One answered request (ends at 1.0 s), then GET /x at client offset 30.
    fn keepalive_then(d: &mut Detector, i: &ConnInfo, t: f64, ack_off: i64) -> ConnDetect {
        let mut cd = ConnDetect::default();
        request(d, i, &mut cd, "/first", 0, at(4, 0.5), 0);
        let m = SegMeta {
            at: at(5, 1.0),
            ..SegMeta::default()
        };
        d.on_http(i, &mut cd, 1, HttpEvent::Response(resp(0)), m);
        d.on_http(i, &mut cd, 1, HttpEvent::ResponseEnd { end: 40 }, m);
        request(d, i, &mut cd, "/x", 30, at(7, t), ack_off);
        cd
    }

    fn one(d: &mut Detector) -> Finding {
        d.finish();
        let mut r = d.take_ready();
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0)
    }

    #[test]
    fn fin_and_request_that_do_not_acknowledge_each_other_crossed() {
        let mut d = Detector::new(DetectConfig::default(), vec!["a.pcap".into()]);
        let i = info(1, 1000);
        let cd = keepalive_then(&mut d, &i, 2.0, 40);
        let closes = Closes {
            fin: [None, Some(close(at(6, 1.99), 40, Some(30)))],
            rst: [None, Some(close(at(8, 2.01), 41, None))],
        };
        d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(5.0));
        let f = one(&mut d);
        assert_eq!(f.kind, Kind::CrossedFin);
        assert_eq!(f.outcome, Outcome::Lost);
        assert_eq!((f.request.frame, f.request.index), (7, 1));
        assert_eq!(f.peer_close.as_ref().unwrap().frame, 6);
        assert!(!f.peer_close.as_ref().unwrap().acks_request);
        assert_eq!(f.rst.as_ref().unwrap().frame, 8);
        assert!((f.fin_to_request_s.unwrap() - 0.01).abs() < 1e-9);
        assert!((f.idle_before_s.unwrap() - 1.0).abs() < 1e-9);
        assert!(f.evidence.contains("crossed in flight"), "{}", f.evidence);
    }

    #[test]
    fn request_acknowledging_the_fin_is_after_fin() {
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        let i = info(1, 1000);
        let cd = keepalive_then(&mut d, &i, 2.0, 41);
        let closes = Closes {
            fin: [None, Some(close(at(6, 1.5), 40, Some(30)))],
            rst: [None, None],
        };
        d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(5.0));
        assert_eq!(one(&mut d).kind, Kind::AfterFin);
    }

    #[test]
    fn fin_acknowledging_the_request_is_closed_unanswered() {
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        let i = info(1, 1000);
        let cd = keepalive_then(&mut d, &i, 2.0, 40);
        let closes = Closes {
            fin: [None, Some(close(at(9, 30.0), 40, Some(60)))],
            rst: [None, None],
        };
        d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(50.0));
        assert_eq!(one(&mut d).kind, Kind::ClosedUnanswered);
    }

    #[test]
    fn rst_before_or_after_the_request() {
        for (rst_frame, kind) in [(6, Kind::AfterRst), (9, Kind::ResetUnanswered)] {
            let mut d = Detector::new(DetectConfig::default(), vec![]);
            let i = info(1, 1000);
            let cd = keepalive_then(&mut d, &i, 2.0, 40);
            let t = rst_frame as f64 / 4.0;
            let closes = Closes {
                fin: [None, None],
                rst: [None, Some(close(at(rst_frame, t), 40, Some(30)))],
            };
            d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(50.0));
            let f = one(&mut d);
            assert_eq!(f.kind, kind);
            assert!(f.kind.is_finding());
        }
    }

    #[test]
    fn no_close_is_informational_and_client_close_first_too() {
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        let i = info(1, 1000);
        let cd = keepalive_then(&mut d, &i, 2.0, 40);
        d.finish_conn(&i, cd, &Closes::default(), Timestamp::from_secs_f64(9.0));
        assert_eq!(one(&mut d).kind, Kind::UnansweredAtEnd);

        let cd = keepalive_then(&mut d, &i, 2.0, 40);
        let closes = Closes {
            fin: [
                Some(close(at(8, 3.0), 60, Some(40))),
                Some(close(at(9, 3.1), 40, Some(61))),
            ],
            rst: [None, None],
        };
        d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(9.0));
        let f = one(&mut d);
        assert_eq!(f.kind, Kind::ClientClosed);
        assert!(!f.kind.is_finding());
    }

    #[test]
    fn same_request_on_another_connection_within_the_window_is_a_retry() {
        for (delay, outcome) in [(0.3, Outcome::Retried), (1.5, Outcome::Lost)] {
            let mut d = Detector::new(DetectConfig::default(), vec![]);
            let i = info(1, 1000);
            let cd = keepalive_then(&mut d, &i, 2.0, 40);
            let closes = Closes {
                fin: [None, Some(close(at(6, 1.99), 40, Some(30)))],
                rst: [None, None],
            };
            // the verdict is made before the retry arrives; the retry window keeps it open
            d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(2.1));
            assert!(d.take_ready().is_empty());
            let j = info(2, 1001);
            let mut cd2 = ConnDetect::default();
            request(&mut d, &j, &mut cd2, "/x", 0, at(20, 2.0 + delay), 0);
            d.tick(Timestamp::from_secs_f64(3.6));
            let f = one(&mut d);
            assert_eq!(f.outcome, outcome);
            assert_eq!(f.retry.is_some(), outcome == Outcome::Retried);
        }
    }

    #[test]
    fn a_response_captured_before_its_request_answers_it_by_ack() {
        let fin = |f| Closes {
            fin: [None, Some(close(at(f, 5.0), 40, Some(30)))],
            rst: [None, None],
        };
        // the server's response (its segment acknowledges the 30 request bytes) comes first
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        let i = info(1, 1000);
        let mut cd = ConnDetect::default();
        let m = SegMeta {
            at: at(2, 0.1),
            ack_off: Some(30),
            ..SegMeta::default()
        };
        d.on_http(&i, &mut cd, 1, HttpEvent::Response(resp(0)), m);
        request(&mut d, &i, &mut cd, "/a", 0, at(3, 0.05), 0);
        d.finish_conn(&i, cd, &fin(4), Timestamp::from_secs_f64(9.0));
        d.finish();
        assert!(d.take_ready().is_empty());
        // a response whose ack does not cover the request does not answer it
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        let mut cd = ConnDetect::default();
        let m = SegMeta {
            ack_off: Some(0),
            ..m
        };
        d.on_http(&i, &mut cd, 1, HttpEvent::Response(resp(0)), m);
        request(&mut d, &i, &mut cd, "/a", 0, at(3, 0.05), 0);
        d.finish_conn(&i, cd, &fin(4), Timestamp::from_secs_f64(9.0));
        assert_eq!(one(&mut d).kind, Kind::ClosedUnanswered);
    }

    #[test]
    fn no_verdict_when_the_server_sent_data_after_the_request_but_its_framing_was_lost() {
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        let i = info(1, 1000);
        let mut cd = ConnDetect::default();
        request(&mut d, &i, &mut cd, "/a", 0, at(1, 0.0), 0);
        let m = SegMeta {
            at: at(2, 0.1),
            ..SegMeta::default()
        };
        cd.log_chunk(1, 0, 100, m);
        let desync = HttpEvent::Desync {
            offset: 0,
            reason: "gap".into(),
        };
        d.on_http(&i, &mut cd, 1, desync, m);
        let closes = Closes {
            fin: [None, Some(close(at(3, 5.0), 100, Some(30)))],
            rst: [None, None],
        };
        d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(9.0));
        d.finish();
        assert!(d.take_ready().is_empty());
        assert_eq!(d.stats.unframed_responses, 1);
    }

    #[test]
    fn idle_closes_and_recommendation() {
        let mut d = Detector::new(DetectConfig::default(), vec![]);
        for (n, idle) in [(1u64, 1.0), (2, 1.2), (3, 0.9)] {
            let i = info(n, 1000 + n as u16);
            let mut cd = ConnDetect::default();
            request(&mut d, &i, &mut cd, "/a", 0, at(1, 0.0), 0);
            let m = SegMeta {
                at: at(2, 0.1),
                ..SegMeta::default()
            };
            d.on_http(&i, &mut cd, 1, HttpEvent::Response(resp(0)), m);
            d.on_http(&i, &mut cd, 1, HttpEvent::ResponseEnd { end: 40 }, m);
            let closes = Closes {
                fin: [None, Some(close(at(3, 0.1 + idle), 40, Some(30)))],
                rst: [None, None],
            };
            d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(10.0));
        }
        let i = info(9, 2000);
        let cd = keepalive_then(&mut d, &i, 1.95, 40);
        let closes = Closes {
            fin: [None, Some(close(at(6, 1.99), 40, Some(30)))],
            rst: [None, None],
        };
        d.finish_conn(&i, cd, &closes, Timestamp::from_secs_f64(10.0));
        let eps = d.finish();
        assert_eq!(eps.len(), 1);
        let e = &eps[0];
        assert_eq!(e.connections, 4);
        // the race's FIN is an idle close too: the server had not seen the request
        assert_eq!(e.idle_closes.count, 4);
        assert!((e.idle_closes.median_s.unwrap() - 0.995).abs() < 1e-6);
        assert!((e.idle_closes.min_s.unwrap() - 0.9).abs() < 1e-6);
        assert_eq!(e.findings, 1);
        let rec = e.recommendation.as_deref().unwrap();
        assert!(rec.contains("about 1.0 s"), "{rec}");
        assert!(rec.contains("up to 0.95 s"), "{rec}");
        assert_eq!(
            e.keep_alive.iter().next().map(String::as_str),
            Some("timeout=1")
        );
    }

    fn endpoint(
        server: &str,
        idles: impl Iterator<Item = (u64, f64)>,
        ka: &[&str],
    ) -> EndpointStats {
        let mut e = EndpointStats {
            server: server.into(),
            ..EndpointStats::default()
        };
        for (conn, v) in idles {
            e.connections += 1;
            e.idle_closes.add(v, conn);
        }
        for k in ka {
            add_keep_alive(&mut e.keep_alive, k.to_string());
        }
        e.idle_closes.finish();
        e
    }

    #[test]
    fn merged_endpoints_equal_one_over_everything() {
        let idle = |c: u64| (c, (c * 7919 % 1000) as f64 / 100.0);
        let kas = ["k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"];
        // more idle closes than samples are kept, split unevenly and interleaved
        let whole = endpoint("10.0.0.1:80", (1..=9000).map(idle), &kas);
        let a = endpoint(
            "10.0.0.1:80",
            (1..=9000).filter(|c| c % 3 == 0).map(idle),
            &kas[..6],
        );
        let mut b = endpoint(
            "10.0.0.1:80",
            (1..=9000).filter(|c| c % 3 != 0).rev().map(idle),
            &kas[6..],
        );
        b.findings = 2;
        b.by_kind.insert(Kind::CrossedFin.as_str(), 2);
        b.race_idle_max = Some(4.5);
        b.max_reuse_idle_s = Some(4.0);
        let mut a2 = a.clone();
        a2.max_reuse_idle_s = Some(5.0);
        let other = endpoint("10.0.0.0:80", [(1, 2.0)].into_iter(), &["x"]);
        let merged = merge_endpoints(vec![vec![a2, other.clone()], vec![b]]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], {
            let mut o = other;
            o.recommendation = None;
            o
        });
        let m = &merged[1];
        assert_eq!(m.connections, 9000);
        let (mi, wi) = (&m.idle_closes, &whole.idle_closes);
        assert_eq!(
            (mi.count, mi.min_s, mi.median_s, mi.max_s),
            (wi.count, wi.min_s, wi.median_s, wi.max_s)
        );
        let sorted = |v: &[(u64, f64)]| {
            let mut v = v.to_vec();
            v.sort_by_key(|s| s.0);
            v
        };
        assert_eq!(sorted(&mi.samples), sorted(&wi.samples));
        assert_eq!(mi.samples.len(), MAX_IDLE_SAMPLES);
        assert_eq!(m.keep_alive, whole.keep_alive);
        assert_eq!(
            m.keep_alive.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b", "c", "d", "e", "f", "g", "h"]
        );
        assert_eq!(m.max_reuse_idle_s, Some(5.0));
        assert_eq!(m.findings, 2);
        assert_eq!(m.by_kind.get("crossed_fin"), Some(&2));
        let rec = m.recommendation.as_deref().unwrap();
        let median = whole.idle_closes.median_s.unwrap();
        assert!(rec.contains(&format!("about {median:.1} s")), "{rec}");
        assert!(rec.contains("up to 4.50 s"), "{rec}");
    }
}
