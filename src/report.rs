//! Report stage: the result document (serialised as JSON) and its renderings: a table for
//! people, JSON for scripts and tickets, JSON Lines for streams.

use crate::capture::Warning;
use crate::detect::{DetectStats, EndpointStats, Finding};
use crate::flow::FlowStats;
use crate::time::Timestamp;
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Version of the JSON document's schema; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize)]
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

/// The whole result of an analysis.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Problems with the input (the first 100; `summary.warnings` counts all).
    pub warnings: Vec<Warning>,
}

impl Report {
    /// Process exit code: 1 when there are findings, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(!self.findings.is_empty())
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

/// Prints warnings to stderr as they come, up to a limit (all are counted in the report).
pub struct WarningPrinter {
    max: u64,
    seen: u64,
}

impl WarningPrinter {
    pub fn new(max: u64) -> WarningPrinter {
        WarningPrinter { max, seen: 0 }
    }

    pub fn print(&mut self, w: &Warning) {
        self.seen += 1;
        if self.seen <= self.max {
            eprintln!("tcprace: warning: {w}");
        }
    }

    /// Say how many were not shown.
    pub fn done(&self) {
        if self.seen > self.max {
            eprintln!(
                "tcprace: {} more warnings not shown (see the report)",
                self.seen - self.max
            );
        }
    }
}

/// The message for an error writing the output (a closed pipe is not worth more words).
pub fn io_err(e: io::Error) -> String {
    if e.kind() == io::ErrorKind::BrokenPipe {
        "output closed".into()
    } else {
        format!("writing output: {e}")
    }
}

pub fn write_json<W: Write>(out: &mut W, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// One finding as a JSON Lines record.
pub fn write_jsonl_finding<W: Write>(out: &mut W, f: &Finding) -> io::Result<()> {
    let mut v = serde_json::to_value(f)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("record".into(), "finding".into());
    }
    serde_json::to_writer(&mut *out, &v)?;
    writeln!(out)?;
    out.flush()
}

/// The closing JSON Lines record: everything but the findings.
pub fn write_jsonl_summary<W: Write>(out: &mut W, r: &Report) -> io::Result<()> {
    let mut v = serde_json::to_value(r)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("findings");
        o.insert("record".into(), "summary".into());
    }
    serde_json::to_writer(&mut *out, &v)?;
    writeln!(out)?;
    out.flush()
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.3}"))
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// One table row per finding (also used for streaming rows as verdicts become final).
pub fn finding_row(i: usize, f: &Finding) -> Vec<String> {
    let close = f.peer_close.as_ref().map_or("-".into(), |c| {
        format!("{} {}", c.kind.to_uppercase(), c.frame)
    });
    vec![
        (i + 1).to_string(),
        f.kind.as_str().into(),
        f.outcome.as_str().into(),
        format!("{} {}", f.request.method, f.request.target),
        f.request.host.clone().unwrap_or_else(|| "-".into()),
        format!("{} -> {}", f.connection.client, f.connection.server),
        f.request.frame.to_string(),
        close,
        secs(f.fin_to_request_s),
        secs(f.idle_before_s),
        f.retry.as_ref().map_or("-".into(), |r| r.frame.to_string()),
    ]
}

pub const FINDING_HEADER: [&str; 11] = [
    "#",
    "kind",
    "outcome",
    "request",
    "host",
    "client -> server",
    "frame",
    "peer close",
    "close->req s",
    "idle s",
    "retry frame",
];

pub fn write_table<W: Write>(out: &mut W, r: &Report) -> io::Result<()> {
    let s = &r.summary;
    let mut t = new_table();
    t.set_header(vec!["summary", ""]);
    let span = match (s.first_packet_time, s.last_packet_time) {
        (Some(a), Some(b)) => format!("{a} .. {b} ({:.3} s)", s.duration_s),
        _ => "-".into(),
    };
    let kinds: Vec<String> = s
        .by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let rows: Vec<(&str, String)> = vec![
        ("inputs", r.inputs.join(", ")),
        (
            "packets",
            format!(
                "{} ({} TCP, {} skipped)",
                s.packets, s.tcp_segments, s.skipped_packets
            ),
        ),
        ("time", span),
        (
            "connections",
            format!("{} ({} HTTP)", s.connections, s.http_connections),
        ),
        (
            "requests / responses",
            format!("{} / {}", s.requests, s.responses),
        ),
        (
            "findings",
            format!(
                "{} (lost {}, retried {})",
                s.findings,
                s.by_outcome.get("lost").unwrap_or(&0),
                s.by_outcome.get("retried").unwrap_or(&0)
            ),
        ),
        (
            "by kind",
            if kinds.is_empty() {
                "-".into()
            } else {
                kinds.join(", ")
            },
        ),
        ("warnings", s.warnings.to_string()),
    ];
    for (k, v) in rows {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    }
    writeln!(out, "{t}")?;

    if !r.findings.is_empty() {
        let mut t = new_table();
        t.set_header(FINDING_HEADER.to_vec());
        for (i, f) in r.findings.iter().enumerate() {
            t.add_row(finding_row(i, f));
        }
        writeln!(out, "\nFindings\n{t}")?;
        writeln!(out, "\nEvidence")?;
        for (i, f) in r.findings.iter().enumerate() {
            writeln!(out, "{:>3}. {}", i + 1, f.evidence)?;
        }
    }
    if !r.informational.is_empty() {
        writeln!(
            out,
            "\n{} request(s) without response that are not findings (unanswered at the end of the capture, or the client closed first); see --format json.",
            r.informational.len()
        )?;
    }
    if !r.endpoints.is_empty() {
        let mut t = new_table();
        t.set_header(vec![
            "server",
            "conns",
            "requests",
            "idle closes (min/median/max s)",
            "max reuse idle s",
            "keep-alive",
            "findings",
        ]);
        for e in &r.endpoints {
            let ic = &e.idle_closes;
            let closes = if ic.count == 0 {
                "0".to_string()
            } else {
                format!(
                    "{} ({}/{}/{})",
                    ic.count,
                    secs(ic.min_s),
                    secs(ic.median_s),
                    secs(ic.max_s)
                )
            };
            let ka: Vec<&str> = e.keep_alive.iter().map(String::as_str).collect();
            t.add_row(vec![
                e.server.clone(),
                e.connections.to_string(),
                e.requests.to_string(),
                closes,
                secs(e.max_reuse_idle_s),
                if ka.is_empty() {
                    "-".into()
                } else {
                    ka.join("; ")
                },
                e.findings.to_string(),
            ]);
        }
        writeln!(out, "\nServer endpoints\n{t}")?;
    }
    if !r.recommendations.is_empty() {
        writeln!(out, "\nRecommendations")?;
        for rec in &r.recommendations {
            writeln!(out, "  - {rec}")?;
        }
    }
    if !r.skipped.is_empty() {
        let parts: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(out, "\nSkipped packets: {}", parts.join(", "))?;
    }
    Ok(())
}
