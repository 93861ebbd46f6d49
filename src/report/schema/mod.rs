//! The report: every type of the JSON document, in one place. The detect stage fills findings
//! and endpoint statistics in these types; the engine assembles the [`Report`]; renderers only
//! read it. Field order here is the order in the JSON output. Each type derives its JSON Schema
//! (schemars; doc comments become descriptions): a field added here is in `schema/` once the
//! files are regenerated (`UPDATE_GOLDEN=1 cargo test --test schema`).

pub use crate::app::h2::H2Stats;
pub use crate::app::tls::TlsStats;
pub use crate::capture::Warning;
pub use crate::detect::DetectStats;
pub use crate::flow::FlowStats;
use crate::time::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON document's schema; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

mod connection;
mod endpoint;
pub use connection::*;
pub use endpoint::*;

/// The verdict on a request that got no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CrossedFin,
    AfterFin,
    AfterRst,
    ResetUnanswered,
    ClosedUnanswered,
    /// HTTP/2: a stream above the GOAWAY's last stream id whose HEADERS crossed the GOAWAY.
    CrossedGoaway,
    /// HTTP/2: a stream opened by a client that had already acknowledged the GOAWAY.
    AfterGoaway,
    /// HTTP/2: the server reset the stream with REFUSED_STREAM.
    RefusedStream,
    UnansweredAtEnd,
    ClientClosed,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::CrossedFin,
        Kind::AfterFin,
        Kind::AfterRst,
        Kind::ResetUnanswered,
        Kind::ClosedUnanswered,
        Kind::CrossedGoaway,
        Kind::AfterGoaway,
        Kind::RefusedStream,
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
            Kind::CrossedGoaway => "crossed_goaway",
            Kind::AfterGoaway => "after_goaway",
            Kind::RefusedStream => "refused_stream",
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Sent again on another connection to the same server (`retry` says where and how that
    /// was told).
    Retried,
    /// Not sent again within the retry window.
    Lost,
    /// Requests that could be its retry were sent, but so could fresh ones: the capture
    /// cannot tell (`retry_candidates` counts them).
    Ambiguous,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Lost, Outcome::Retried, Outcome::Ambiguous];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Retried => "retried",
            Outcome::Lost => "lost",
            Outcome::Ambiguous => "ambiguous",
        }
    }
}

/// A request without a response, with its verdict and the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Finding {
    pub kind: Kind,
    pub outcome: Outcome,
    pub request: RequestInfo,
    pub connection: ConnectionInfo,
    /// The server's FIN or RST that decided the verdict.
    pub peer_close: Option<CloseInfo>,
    /// The server's RST, when there was one (for FIN verdicts: the RST that followed).
    pub rst: Option<RstInfo>,
    /// Request time minus the server's FIN (or RST) time; negative when the request was
    /// captured first.
    pub fin_to_request_s: Option<f64>,
    /// Idle time on the connection before the request, since the previous response ended.
    pub idle_before_s: Option<f64>,
    pub retry: Option<RetryInfo>,
    /// Outcome `ambiguous`: how many requests could be its retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_candidates: Option<u32>,
    /// The verdict in one paragraph, with frames and relative sequence numbers.
    pub evidence: String,
    /// What the proxy did to its own client, when the capture also holds the client's leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_effect: Option<ClientEffect>,
    /// The exchange's segments, for the report's ladder diagram (`--report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Ladder>,
    /// The frames of the finding in the `--write-flagged` file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged_frames: Option<FlaggedFrames>,
    /// A `reset_unanswered` that was the keep-alive race (counted with the crossings).
    #[serde(skip)]
    pub idle_race: bool,
}

/// What the proxy did to its client when its upstream request failed: its response (e.g. 502,
/// or the upstream's 200 after a retry), or the client's connection closed without one.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ClientEffect {
    /// The client's connection to the proxy.
    pub connection: u64,
    pub client: String,
    pub proxy: String,
    /// The client's request (to the proxy).
    pub request_frame: u64,
    /// The response's first frame, or the proxy's FIN or RST.
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "is_false")]
    pub closed_without_response: bool,
    /// The effect decided the finding's outcome (it was `ambiguous`, or `lost` while the
    /// client got an answer).
    #[serde(skip_serializing_if = "is_false")]
    pub settled_outcome: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A finding's exchange as captured: the connection's last segments.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Ladder {
    /// Where the capture was taken, told by the handshake's turn-arounds: "client" (near the
    /// client, e.g. on the proxy host), "server", "between"; none without a handshake.
    pub captured_near: Option<&'static str>,
    /// One-way delay between the capture point and the far end, from the handshake.
    pub far_delay_s: Option<f64>,
    /// Segments of the connection before the first one shown.
    pub earlier_segments: u64,
    pub segments: Vec<LadderSegment>,
}

/// One TCP segment of a ladder diagram.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LadderSegment {
    pub from_client: bool,
    pub frame: u64,
    pub time: Timestamp,
    /// TCP flags as Wireshark writes them, e.g. "FIN, ACK".
    pub flags: String,
    /// Relative sequence and acknowledgement numbers.
    pub seq: i64,
    pub ack: Option<i64>,
    /// Payload bytes.
    pub len: u32,
    /// Its frame in the `--write-flagged` file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged_frame: Option<u64>,
}

/// A finding's frames in the `--write-flagged` file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct FlaggedFrames {
    pub request: Option<u64>,
    pub peer_close: Option<u64>,
    pub rst: Option<u64>,
    pub retry: Option<u64>,
    pub client_effect: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
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
    /// The request came inside TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRequestInfo>,
    /// HTTP/2: the request's stream id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<u32>,
}

/// What TLS tells of a request.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TlsRequestInfo {
    /// Not decrypted (no key): method, target and Host are unknown; `method` is "TLS" and
    /// `target` names the request by its place on the connection and its first record's size.
    pub encrypted: bool,
    /// "TLS 1.2", "TLS 1.3" (null: no ServerHello seen).
    pub version: Option<&'static str>,
    pub cipher_suite: Option<String>,
    /// Server name (SNI).
    pub sni: Option<String>,
    /// The application protocol ALPN chose.
    pub alpn: Option<String>,
    /// The session was resumed.
    pub resumed: bool,
    /// Encrypted requests: the length of the request's first TLS record.
    pub record_len: Option<u16>,
}

/// The server's FIN or RST (or HTTP/2 GOAWAY, RST_STREAM) that decided the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CloseInfo {
    /// "fin" or "rst"; "tls_alert": the server's TLS alert (such as close_notify) that came
    /// before its FIN, taken as its close; "goaway", "rst_stream": the server's HTTP/2 GOAWAY
    /// or RST_STREAM frame (the segment of its first byte).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["fin", "rst", "tls_alert", "goaway", "rst_stream"]))]
    pub close_type: &'static str,
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
    pub seq: u32,
    pub ack: Option<u32>,
    /// Did its acknowledgement cover the request's first byte (the server had received it)?
    pub acks_request: bool,
    /// HTTP/2 (types "goaway" and "rst_stream"): what the frame said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2: Option<H2CloseInfo>,
}

/// What the server's GOAWAY or RST_STREAM frame said.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct H2CloseInfo {
    /// GOAWAY: the highest stream id the server may have processed (streams above it were
    /// not: safe to retry).
    pub last_stream_id: Option<u32>,
    pub error_code: u32,
    /// The error code's name ("NO_ERROR", "REFUSED_STREAM", ...).
    pub error: &'static str,
}

/// The server's RST that followed the request.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
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

/// The retry of a lost request.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RetryInfo {
    pub file: String,
    pub frame: u64,
    pub time: Timestamp,
    /// Id of the connection that carried the retry.
    pub connection: u64,
    /// What tied it to the failed request: the identity header both carry (e.g.
    /// "X-Request-ID"), or "timing" (the only candidate its sender could have sent after
    /// learning of the failure, with the same request rare enough around it), or "size" (an
    /// encrypted request: the first request on a new connection has a first record of the same
    /// length).
    pub matched_by: &'static str,
    /// Seconds from the earliest moment its sender could know of the failure (the close's
    /// arrival, seen from the capture point) to the retry's departure (its connection's SYN
    /// when it opened one).
    pub reaction_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Tool {
    pub fn current() -> Tool {
        Tool {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Summary {
    pub packets: u64,
    /// Bytes on the wire (original lengths).
    pub bytes: u64,
    pub tcp_segments: u64,
    pub first_packet_time: Option<Timestamp>,
    pub last_packet_time: Option<Timestamp>,
    pub duration_s: f64,
    pub connections: u64,
    pub http_connections: u64,
    pub requests: u64,
    pub responses: u64,
    /// Requests flagged (kinds that are findings).
    pub findings: u64,
    /// Requests without response that are not findings (unanswered_at_end, client_closed).
    pub informational: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub by_outcome: BTreeMap<&'static str, u64>,
    pub skipped_packets: u64,
    pub warnings: u64,
}

/// A live capture: the interface, the kernel's counters and why it stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CaptureInfo {
    pub interface: String,
    /// libpcap's name of the link type, e.g. "EN10MB".
    pub datalink: String,
    pub snaplen: u32,
    pub filter: Option<String>,
    /// Packets read by tcprace.
    pub captured: u64,
    /// Kernel counters (`pcap_stats`): received, dropped (buffer full), if_dropped.
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
    /// "signal", "duration" or "count".
    #[schemars(extend("enum" = ["signal", "duration", "count"]))]
    pub stopped_by: &'static str,
    /// The `-w` file.
    pub written_to: Option<String>,
}

impl CaptureInfo {
    /// Packets lost before tcprace could read them.
    pub fn lost(&self) -> u64 {
        self.dropped + self.if_dropped
    }

    /// What to tell the reader when packets were dropped.
    pub fn drop_note(&self) -> Option<String> {
        (self.lost() > 0).then(|| {
            format!(
                "{} packet(s) were dropped during the capture ({} by the kernel, {} by the \
                 interface): verdicts may be incomplete (try --buffer-size or a narrower -f filter)",
                self.lost(),
                self.dropped,
                self.if_dropped
            )
        })
    }
}

/// The whole result of an analysis.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub inputs: Vec<String>,
    pub summary: Summary,
    pub findings: Vec<Finding>,
    pub informational: Vec<Finding>,
    pub endpoints: Vec<EndpointStats>,
    pub recommendations: Vec<String>,
    /// Packets not analysed, per reason.
    pub skipped: BTreeMap<String, u64>,
    /// TCP reassembly counters and anomalies.
    pub tcp: FlowStats,
    /// HTTP framing counters.
    pub http: DetectStats,
    /// TLS counters (present when TLS was seen).
    #[serde(skip_serializing_if = "TlsStats::is_empty")]
    pub tls: TlsStats,
    /// HTTP/2 counters (present when HTTP/2 was seen).
    #[serde(skip_serializing_if = "H2Stats::is_empty")]
    pub http2: H2Stats,
    /// Problems with the input (the first 100; `summary.warnings` counts all).
    pub warnings: Vec<Warning>,
    /// Live capture only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureInfo>,
    /// The command line and the inputs' sizes and digests (`--report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// The `--write-flagged` file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged: Option<FlaggedFile>,
}

/// Where the report came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Provenance {
    pub command_line: Vec<String>,
    pub inputs: Vec<InputDigest>,
}

/// An input file as read: its bytes (as stored, compressed or not) and their SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InputDigest {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The `--write-flagged` file: the packets of the connections with findings (and of their
/// retries and client legs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FlaggedFile {
    pub path: String,
    pub packets: u64,
    pub connections: u64,
    /// Packets of flagged connections not written: the recorder's memory cap dropped them
    /// before the connection was kept.
    pub packets_not_kept: u64,
}

impl Report {
    /// Process exit code: 1 when there are findings, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.summary.findings > 0)
    }
}
