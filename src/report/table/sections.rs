//! The sections around the findings: the summary, server endpoints, recommendations, skipped
//! packets, the note on informational records and a live capture's counters.

use super::TableOptions;
use super::text::{Tone, Unit, list_units, paragraph, secs, wrap};
use crate::report::schema::{CaptureInfo, EndpointStats, GoAwayStats, Report, Summary};

/// The items joined with `sep`, or "-" when there are none.
fn joined_or_dash(items: &[impl AsRef<str>], sep: &str) -> String {
    if items.is_empty() {
        return "-".into();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(sep)
}

/// (label, value) rows of the summary.
fn summary_rows(r: &Report) -> Vec<(&'static str, String)> {
    let s: &Summary = &r.summary;
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
    // lost and retried always, the others (ambiguous) when there are some
    let outcome = |o: &str| s.by_outcome.get(o).copied().unwrap_or(0);
    let outcomes: Vec<String> = ["lost", "retried"]
        .into_iter()
        .chain(
            s.by_outcome
                .keys()
                .copied()
                .filter(|o| !matches!(*o, "lost" | "retried") && outcome(o) > 0),
        )
        .map(|o| format!("{o} {}", outcome(o)))
        .collect();
    vec![
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
            format!("{} ({})", s.findings, outcomes.join(", ")),
        ),
        ("by kind", joined_or_dash(&kinds, ", ")),
        ("warnings", s.warnings.to_string()),
    ]
}

/// The summary: a two-column table, or "label: value" lines when the terminal is narrow.
pub(super) fn summary(r: &Report, look: &TableOptions) -> String {
    let rows = summary_rows(r);
    let mut t = look.table();
    t.set_header(vec![Tone::Strong.cell("summary", look.color), "".into()]);
    for (k, v) in &rows {
        t.add_row(vec![k.to_string(), v.clone()]);
    }
    let table = t.to_string();
    if look.shows(&table) {
        return table;
    }
    let p = look.painter();
    let mut lines = vec![look.title("Summary")];
    for (k, v) in rows {
        let mut units = vec![Unit::toned(format!("{k}:"), Tone::Strong)];
        units.extend(list_units(&v));
        lines.push(wrap(&units, " ", ("  ", "      "), look.width, p));
    }
    lines.join("\n")
}

/// An endpoint's HTTP/2 GOAWAYs by cause: "idle 21 (1.000/1.001/1.012)", "3 after 100
/// requests", "1 INTERNAL_ERROR", "2 other".
fn goaway_text(g: Option<&GoAwayStats>) -> String {
    let Some(g) = g else {
        return "-".into();
    };
    let n = |c: &str| g.by_cause.get(c).copied().unwrap_or(0);
    let mut parts = Vec::new();
    if n("idle") > 0 {
        let i = &g.idle;
        parts.push(format!(
            "idle {} ({}/{}/{})",
            n("idle"),
            secs(i.min_s),
            secs(i.median_s),
            secs(i.max_s)
        ));
    }
    if let Some(r) = g.requests_per_connection {
        parts.push(format!("{} after {r} requests", n("request_limit")));
    }
    parts.extend(g.errors.iter().map(|(e, c)| format!("{c} {e}")));
    if n("other") > 0 {
        parts.push(format!("{} other", n("other")));
    }
    parts.join("; ")
}

/// (header, value) of every column of an endpoint; the GOAWAY column when `goaways`.
fn endpoint_columns(e: &EndpointStats, goaways: bool) -> Vec<(&'static str, String)> {
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
    let mut cols = vec![
        ("server", e.server.clone()),
        ("conns", e.connections.to_string()),
        ("requests", e.requests.to_string()),
        ("idle closes (min/median/max s)", closes),
        ("max reuse idle s", secs(e.max_reuse_idle_s)),
        ("keep-alive", joined_or_dash(&ka, "; ")),
    ];
    if goaways {
        cols.push(("HTTP/2 GOAWAYs", goaway_text(e.goaways.as_ref())));
    }
    cols.push(("findings", e.findings.to_string()));
    cols
}

/// The server endpoints: a table, or a block per endpoint when it does not fit.
pub(super) fn endpoints(endpoints: &[EndpointStats], look: &TableOptions) -> String {
    let mut t = look.table();
    let goaways = endpoints.iter().any(|e| e.goaways.is_some());
    if let Some(first) = endpoints.first() {
        t.set_header(endpoint_columns(first, goaways).into_iter().map(|(h, _)| h));
    }
    for e in endpoints {
        t.add_row(endpoint_columns(e, goaways).into_iter().map(|(_, v)| v));
    }
    let table = t.to_string();
    if look.shows(&table) {
        return table;
    }
    let p = look.painter();
    let mut blocks = Vec::new();
    for e in endpoints {
        let cols = endpoint_columns(e, goaways);
        let units: Vec<Unit> = cols[1..]
            .iter()
            .map(|(h, v)| Unit::new(format!("{h} {v}")))
            .collect();
        blocks.push(format!(
            "{}\n{}",
            p.paint(Tone::Strong, &e.server),
            wrap(&units, "  ", ("    ", "      "), look.width, p)
        ));
    }
    blocks.join("\n")
}

pub(super) fn recommendations(recs: &[String], look: &TableOptions) -> String {
    recs.iter()
        .map(|rec| paragraph(rec, ("  - ", "    "), look.width, look.painter()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn skipped(r: &Report, look: &TableOptions) -> String {
    let parts: Vec<String> = r.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let text = format!("Skipped packets: {}", parts.join(", "));
    paragraph(&text, ("", "    "), look.width, look.painter())
}

/// What the informational records are, and how to see them.
pub(super) fn informational_note(r: &Report, look: &TableOptions) -> String {
    let n = r.informational.len();
    let text = if look.verbose {
        format!(
            "{n} request(s) without response that are not findings (unanswered at the end of the capture, or the client closed first):"
        )
    } else {
        format!(
            "{n} request(s) without response that are not findings (unanswered at the end of the capture, or the client closed first); -v lists them."
        )
    };
    let p = look.painter();
    let title = if look.verbose {
        format!("{}\n", look.title("Informational"))
    } else {
        String::new()
    };
    title + &paragraph(&text, ("", ""), look.width, p)
}

/// A live capture's interface and kernel counters, and a warning when packets were dropped.
pub(super) fn capture(c: &CaptureInfo, look: &TableOptions) -> String {
    let p = look.painter();
    let text = format!(
        "Capture: {} ({}), {} packets captured; kernel: {} received, {} dropped, {} dropped by the interface; stopped by {}",
        c.interface, c.datalink, c.captured, c.received, c.dropped, c.if_dropped, c.stopped_by
    );
    let mut out = paragraph(&text, ("", "    "), look.width, p);
    if let Some(n) = c.drop_note() {
        let mut units = vec![Unit::toned("WARNING:", Tone::Warn)];
        units.extend(Unit::words(&n));
        out.push('\n');
        out.push_str(&wrap(&units, " ", ("", "    "), look.width, p));
    }
    out
}
