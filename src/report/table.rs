//! The report as tables for a terminal: summary, findings with their evidence, server
//! endpoints, recommendations, skipped packets, and for live captures the kernel's counters.
//! Live runs also print one line per finding as its verdict becomes final.

use super::{CaptureInfo, EndpointStats, Finding, Renderer, Report, Summary};
use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use std::io::{self, Write};

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

/// Tables at the end; with `stream_lines`, a line per finding as it becomes final.
pub struct TableRenderer<W: Write> {
    out: W,
    stream_lines: bool,
    /// Findings streamed so far.
    streamed: usize,
}

impl<W: Write> TableRenderer<W> {
    pub fn new(out: W, stream_lines: bool) -> Self {
        TableRenderer {
            out,
            stream_lines,
            streamed: 0,
        }
    }
}

impl<W: Write> Renderer for TableRenderer<W> {
    fn streams(&self) -> bool {
        self.stream_lines
    }

    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        if !self.stream_lines {
            return Ok(());
        }
        self.streamed += 1;
        writeln!(self.out, "{}", finding_line(self.streamed, f))?;
        self.out.flush()
    }

    fn finish(&mut self, r: &Report) -> io::Result<()> {
        if self.streamed > 0 {
            writeln!(self.out)?;
        }
        write_table(&mut self.out, r)?;
        if let Some(c) = &r.capture {
            write_capture(&mut self.out, c)?;
        }
        self.out.flush()
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.3}"))
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    // tests (snapshots) render at the content's width, whatever terminal runs them
    #[cfg(test)]
    t.force_no_tty();
    t
}

/// One table row per finding (`i` is 0-based).
fn finding_row(i: usize, f: &Finding) -> Vec<String> {
    let close = f.peer_close.as_ref().map_or("-".into(), |c| {
        format!("{} {}", c.close_type.to_uppercase(), c.frame)
    });
    vec![
        (i + 1).to_string(),
        f.kind.as_str().into(),
        match f.retry_candidates {
            Some(n) => format!("{} ({n})", f.outcome.as_str()),
            None => f.outcome.as_str().into(),
        },
        request_name(f),
        f.request.host.clone().unwrap_or_else(|| "-".into()),
        format!("{} -> {}", f.connection.client, f.connection.server),
        f.request.frame.to_string(),
        close,
        secs(f.fin_to_request_s),
        secs(f.idle_before_s),
        f.retry.as_ref().map_or("-".into(), |r| r.frame.to_string()),
    ]
}

/// The request as the table names it: method and target, or for a request inside TLS that
/// was not decrypted its place and size, marked encrypted.
fn request_name(f: &Finding) -> String {
    let name = format!("{} {}", f.request.method, f.request.target);
    match &f.request.tls {
        Some(t) if t.encrypted => format!("{name} (encrypted)"),
        _ => name,
    }
}

/// One streamed finding (`n` is 1-based): a single self-describing line.
fn finding_line(n: usize, f: &Finding) -> String {
    let row = finding_row(n - 1, f);
    let mut parts = vec![format!("finding #{n}")];
    for (h, v) in FINDING_HEADER.iter().zip(row).skip(1) {
        parts.push(format!("{h}: {v}"));
    }
    parts.join(" | ")
}

/// The whole report as tables.
pub fn write_table<W: Write>(out: &mut W, r: &Report) -> io::Result<()> {
    writeln!(out, "{}", summary_table(r))?;
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
        writeln!(out, "\nServer endpoints\n{}", endpoints_table(&r.endpoints))?;
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

fn summary_table(r: &Report) -> Table {
    let s: &Summary = &r.summary;
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
    let outcome = |o: &str| s.by_outcome.get(o).copied().unwrap_or(0);
    let rows: [(&str, String); 8] = [
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
            match outcome("ambiguous") {
                0 => format!(
                    "{} (lost {}, retried {})",
                    s.findings,
                    outcome("lost"),
                    outcome("retried")
                ),
                n => format!(
                    "{} (lost {}, retried {}, ambiguous {n})",
                    s.findings,
                    outcome("lost"),
                    outcome("retried")
                ),
            },
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
    t
}

fn endpoints_table(endpoints: &[EndpointStats]) -> Table {
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
    for e in endpoints {
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
    t
}

/// A live capture's interface and kernel counters.
fn write_capture<W: Write>(out: &mut W, c: &CaptureInfo) -> io::Result<()> {
    writeln!(
        out,
        "\nCapture: {} ({}), {} packets captured; kernel: {} received, {} dropped, {} dropped by the interface; stopped by {}",
        c.interface, c.datalink, c.captured, c.received, c.dropped, c.if_dropped, c.stopped_by
    )?;
    if let Some(n) = c.drop_note() {
        writeln!(out, "WARNING: {n}")?;
    }
    Ok(())
}
