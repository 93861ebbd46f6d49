//! What the ticket renderers (HTML and Markdown) say alike: the verdict line, the provenance,
//! per upstream what was measured and what to change, and per finding its one-line facts and
//! a Wireshark display filter. They differ only in markup.

use super::schema::{EndpointStats, Finding, Kind, Outcome, Report};
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Findings shown in full (with ladder diagrams); the rest are rows of the table.
pub const FULL_FINDINGS: usize = 25;

/// The columns of the findings table.
pub const FINDING_COLUMNS: [&str; 10] = [
    "#",
    "time (UTC)",
    "file",
    "frame",
    "client → server",
    "request",
    "kind",
    "outcome",
    "retry frame",
    "client got",
];

/// What the table holds that is not shown in full, when there is more.
pub fn rest_note(r: &Report) -> Option<String> {
    (r.findings.len() > FULL_FINDINGS).then(|| {
        format!(
            "The first {FULL_FINDINGS} findings follow in full; the other {} are in the table above (and in the JSON report).",
            r.findings.len() - FULL_FINDINGS
        )
    })
}

/// The report's title: what was analysed.
pub fn title(r: &Report) -> String {
    let names: Vec<&str> = r
        .inputs
        .iter()
        .map(|i| {
            if i == "-" {
                "standard input"
            } else {
                i.as_str()
            }
        })
        .collect();
    match names.len() {
        0 => "tcprace report".into(),
        1..=3 => format!("tcprace report: {}", names.join(", ")),
        n => format!("tcprace report: {} and {} more", names[0], n - 1),
    }
}

/// The verdict in one sentence: how many requests were lost and retried, by kind, per upstream.
pub fn verdict(r: &Report) -> String {
    let s = &r.summary;
    if s.findings == 0 {
        return format!(
            "No request was lost to a closed connection: {} requests, {} responses, {} connections.",
            s.requests, s.responses, s.connections
        );
    }
    let n = |o: Outcome| s.by_outcome.get(o.as_str()).copied().unwrap_or(0);
    let mut text = format!(
        "{} request(s) sent on connections the server had closed: {} lost, {} retried",
        s.findings,
        n(Outcome::Lost),
        n(Outcome::Retried)
    );
    if n(Outcome::Ambiguous) > 0 {
        text.push_str(&format!(
            ", {} ambiguous (the capture cannot tell a retry from a fresh request)",
            n(Outcome::Ambiguous)
        ));
    }
    let kinds: Vec<String> = Kind::ALL
        .iter()
        .filter(|k| k.is_finding())
        .filter_map(|k| {
            let c = s.by_kind.get(k.as_str()).copied().unwrap_or(0);
            (c > 0).then(|| format!("{} {c}", k.as_str()))
        })
        .collect();
    text.push_str(&format!("; by kind: {}", kinds.join(", ")));
    let per: Vec<String> = upstreams(r)
        .map(|e| format!("{} ({})", e.server, e.findings))
        .collect();
    text.push_str(&format!("; per upstream: {}.", per.join(", ")));
    text
}

/// The endpoints with findings (the upstreams whose connections raced).
pub fn upstreams(r: &Report) -> impl Iterator<Item = &EndpointStats> {
    r.endpoints.iter().filter(|e| e.findings > 0)
}

/// Provenance rows: (label, value).
pub fn provenance(r: &Report) -> Vec<(String, String)> {
    let mut rows = vec![(
        "tcprace".to_string(),
        format!("{} {}", r.tool.name, r.tool.version),
    )];
    let digests = r.provenance.as_ref().filter(|p| !p.inputs.is_empty());
    if let Some(p) = &r.provenance {
        rows.push(("command line".into(), shell_words(&p.command_line)));
    }
    if let Some(p) = digests {
        for i in &p.inputs {
            rows.push((
                "input".into(),
                format!(
                    "{} ({} bytes, SHA-256 {})",
                    i.name,
                    thousands(i.bytes),
                    i.sha256
                ),
            ));
        }
    } else {
        for i in &r.inputs {
            rows.push(("input".into(), i.clone()));
        }
    }
    let s = &r.summary;
    if let (Some(a), Some(b)) = (s.first_packet_time, s.last_packet_time) {
        rows.push((
            "capture time (UTC)".into(),
            format!(
                "{} .. {} ({:.3} s)",
                a.to_iso8601(),
                b.to_iso8601(),
                s.duration_s
            ),
        ));
    }
    rows.push((
        "packets".into(),
        format!(
            "{} ({} TCP, {} skipped), {} connections, {} requests, {} responses",
            thousands(s.packets),
            thousands(s.tcp_segments),
            thousands(s.skipped_packets),
            thousands(s.connections),
            thousands(s.requests),
            thousands(s.responses)
        ),
    ));
    if let Some(c) = &r.capture {
        rows.push((
            "live capture".into(),
            format!(
                "{} ({}), {} captured, kernel: {} received, {} dropped, {} dropped by the interface",
                c.interface, c.datalink, c.captured, c.received, c.dropped, c.if_dropped
            ),
        ));
    }
    if let Some(f) = &r.flagged {
        rows.push((
            "flagged packets".into(),
            format!(
                "{}: {} packets of {} connections{}",
                f.path,
                f.packets,
                f.connections,
                if f.packets_not_kept > 0 {
                    format!(" ({} not kept: memory cap)", f.packets_not_kept)
                } else {
                    String::new()
                }
            ),
        ));
    }
    if r.summary.warnings > 0 {
        rows.push(("warnings".into(), r.summary.warnings.to_string()));
    }
    rows
}

/// The command line as a shell would take it back.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What was measured at an upstream, in one sentence.
pub fn measured(e: &EndpointStats) -> String {
    let ic = &e.idle_closes;
    let closes = match (ic.min_s, ic.median_s, ic.max_s) {
        (Some(a), Some(m), Some(b)) => format!(
            "closed {} idle connection(s) after {a:.3} to {b:.3} s (median {m:.3} s)",
            ic.count
        ),
        _ => "closed no idle connection the capture saw".to_string(),
    };
    let reuse = match e.max_reuse_idle_s {
        Some(m) => format!(
            "; clients reused connections {} time(s) after idling up to {m:.3} s",
            e.reuse_idle_histogram.total()
        ),
        None => String::new(),
    };
    let sw = if e.server_software.is_empty() {
        String::new()
    } else {
        format!(
            "; Server: {}",
            e.server_software
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let ka = if e.keep_alive.is_empty() {
        String::new()
    } else {
        format!(
            "; Keep-Alive: {}",
            e.keep_alive.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    format!(
        "{} {closes}{reuse} ({} connections, {} requests){sw}{ka}.",
        e.server, e.connections, e.requests
    )
}

/// The what-if of an endpoint's advice, in one sentence.
pub fn what_if(e: &EndpointStats) -> Option<String> {
    let a = e.advice.as_ref()?;
    let w = &a.what_if;
    Some(format!(
        "What if: with the client's idle timeout at {:.2} s (below the shortest idle close, {:.3} s), the client would have closed instead of reusing in {} of the {} reuses measured, among them {} of the {} raced requests.",
        w.client_idle_timeout_s,
        a.idle_close_min_s,
        w.reuses_avoided,
        w.reuses,
        w.races_avoided,
        w.races
    ))
}

/// Who is involved, from the advice, in one sentence (empty when unknown).
pub fn software(e: &EndpointStats) -> String {
    let Some(a) = &e.advice else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(s) = &a.server_software {
        parts.push(format!("the upstream is {} ({})", s.name, s.evidence));
    }
    if let Some(c) = &a.client_software {
        parts.push(format!("the client is {} ({})", c.name, c.evidence));
    }
    if parts.is_empty() {
        String::new()
    } else {
        let mut s = parts.join("; ");
        if let Some(f) = s.get_mut(0..1) {
            f.make_ascii_uppercase();
        }
        s + "."
    }
}

/// The display filter that selects a connection's packets in Wireshark.
pub fn display_filter(client: &str, server: &str) -> String {
    match (client.parse::<SocketAddr>(), server.parse::<SocketAddr>()) {
        (Ok(c), Ok(s)) => {
            let ip = if c.is_ipv4() { "ip" } else { "ipv6" };
            format!(
                "{ip}.addr == {} && tcp.port == {} && {ip}.addr == {} && tcp.port == {}",
                c.ip(),
                c.port(),
                s.ip(),
                s.port()
            )
        }
        _ => String::new(),
    }
}

/// The Wireshark filter of a finding: its connection (under both address pairs when it was
/// captured on both sides of a NAT), and its client leg when known.
pub fn finding_filter(f: &Finding) -> String {
    let c = &f.connection;
    let mut pairs = vec![display_filter(&c.client, &c.server)];
    if let Some(nat) = &c.nat {
        pairs.push(display_filter(&nat.client, &nat.server));
    }
    if let Some(e) = &f.client_effect {
        pairs.push(display_filter(&e.client, &e.proxy));
    }
    pairs.retain(|p| !p.is_empty());
    if pairs.len() == 1 {
        return pairs.remove(0);
    }
    let parts: Vec<String> = pairs.iter().map(|p| format!("({p})")).collect();
    parts.join(" || ")
}

/// A frame, with its number in the flagged file when there is one.
pub fn frame(n: u64, flagged: Option<u64>) -> String {
    match flagged {
        Some(g) => format!("{n} (flagged file: {g})"),
        None => n.to_string(),
    }
}

/// What the client got, in a few words.
pub fn client_got(f: &Finding) -> String {
    match &f.client_effect {
        None => "-".into(),
        Some(e) if e.closed_without_response => format!("no response, closed (frame {})", e.frame),
        Some(e) => format!(
            "{} (frame {})",
            e.status.map_or("?".into(), |s| s.to_string()),
            e.frame
        ),
    }
}

/// The retry, in a few words.
pub fn retry(f: &Finding) -> String {
    match (&f.retry, f.retry_candidates) {
        (Some(r), _) => frame(r.frame, f.flagged_frames.as_ref().and_then(|g| g.retry)),
        (None, Some(n)) => format!("? ({n} candidates)"),
        _ => "-".into(),
    }
}

/// A file's name without its folders.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// UTC time with microseconds, without the date when it is `day`.
pub fn time(t: Timestamp) -> String {
    t.to_iso8601()
}

/// The findings per kind and outcome of an endpoint, for its heading.
pub fn counts(findings: &[Finding], server: &str) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for f in findings.iter().filter(|f| f.connection.server == server) {
        *m.entry(f.outcome.as_str()).or_default() += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_numbers() {
        assert_eq!(
            display_filter("10.0.0.1:5000", "10.0.0.2:80"),
            "ip.addr == 10.0.0.1 && tcp.port == 5000 && ip.addr == 10.0.0.2 && tcp.port == 80"
        );
        assert!(display_filter("[::1]:5000", "[::2]:80").starts_with("ipv6.addr == ::1"));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(
            shell_words(&["tcprace".into(), "-f".into(), "tcp port 80".into()]),
            "tcprace -f 'tcp port 80'"
        );
    }
}
