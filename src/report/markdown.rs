//! The report as Markdown for a ticket's body: headings, paragraphs and pipe tables that
//! GitHub, GitLab and Jira (with Markdown) render; the ladder of each finding shown in full is
//! a table of its segments.

use super::Renderer;
use super::schema::{EndpointStats, Finding, Report};
use super::ticket::{self, FULL_FINDINGS};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes the report as Markdown when the run ends.
pub struct MarkdownRenderer<W: Write> {
    out: W,
}

impl<W: Write> MarkdownRenderer<W> {
    pub fn new(out: W) -> Self {
        MarkdownRenderer { out }
    }
}

impl<W: Write> Renderer for MarkdownRenderer<W> {
    fn finish(&mut self, r: &Report) -> io::Result<()> {
        self.out.write_all(document(r).as_bytes())?;
        self.out.flush()
    }
}

/// Text for a table cell or a paragraph: Markdown's special characters escaped, on one line.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Inline code (a setting, a filter): backticks cannot occur inside, pipes are escaped.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'").replace('|', "\\|"))
}

fn table(s: &mut String, head: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s.push('\n');
}

/// The whole document.
pub fn document(r: &Report) -> String {
    let mut s = String::new();
    let title = ticket::title(r);
    let _ = writeln!(s, "# {}\n", cell(&title));
    let _ = writeln!(s, "**{}**\n", cell(&ticket::verdict(r)));
    s.push_str("## Provenance\n\n");
    table(
        &mut s,
        &["", ""],
        ticket::provenance(r)
            .into_iter()
            .map(|(k, v)| vec![cell(&k), cell(&v)]),
    );
    if let Some(note) = r.capture.as_ref().and_then(|c| c.drop_note()) {
        let _ = writeln!(s, "**{}**\n", cell(&note));
    }
    for e in ticket::upstreams(r) {
        upstream(&mut s, r, e);
    }
    findings(&mut s, r);
    s
}

fn upstream(s: &mut String, r: &Report, e: &EndpointStats) {
    let counts = ticket::counts(&r.findings, &e.server);
    let per: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    let _ = writeln!(
        s,
        "## Upstream {}: {} finding(s) ({})\n",
        cell(&e.server),
        e.findings,
        per.join(", ")
    );
    let _ = writeln!(s, "{}\n", cell(&ticket::measured(e)));
    let (ic, ru) = (&e.idle_close_histogram, &e.reuse_idle_histogram);
    if !ic.is_empty() || !ru.is_empty() {
        let span = |h: &crate::report::schema::Histogram| match (h.bins.first(), h.bins.last()) {
            (Some(a), Some(b)) => format!("{:.3} .. {:.3} s", a.0, h.upper(b.0)),
            _ => "-".into(),
        };
        table(
            s,
            &["idle time", "count", "range"],
            [
                vec![
                    "before the server closed".into(),
                    ic.total().to_string(),
                    span(ic),
                ],
                vec![
                    "before a client reused".into(),
                    ru.total().to_string(),
                    span(ru),
                ],
            ],
        );
    }
    if let Some(rec) = &e.recommendation {
        let _ = writeln!(s, "**Recommendation.** {}\n", cell(rec));
    }
    let sw = ticket::software(e);
    if !sw.is_empty() {
        let _ = writeln!(s, "{}\n", cell(&sw));
    }
    if let Some(a) = &e.advice {
        let _ = writeln!(
            s,
            "Set the client's (proxy's) idle timeout for upstream connections to **{:.2} s** (below the server's shortest idle close), or the server's to **{} s** (above the client's):\n",
            a.client_idle_timeout_s, a.server_idle_timeout_s
        );
        table(
            s,
            &["side", "software", "setting"],
            a.settings
                .iter()
                .map(|st| vec![st.side.into(), cell(st.software), code(&st.setting)]),
        );
    }
    if let Some(w) = ticket::what_if(e) {
        let _ = writeln!(s, "{}\n", cell(&w));
    }
}

fn findings(s: &mut String, r: &Report) {
    if r.findings.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Findings ({})\n", r.findings.len());
    table(
        s,
        &ticket::FINDING_COLUMNS,
        r.findings.iter().enumerate().map(|(i, f)| {
            vec![
                (i + 1).to_string(),
                ticket::time(f.request.time),
                cell(ticket::base_name(&f.request.file)),
                cell(&ticket::frame(
                    f.request.frame,
                    f.flagged_frames.as_ref().and_then(|g| g.request),
                )),
                cell(&format!(
                    "{} → {}",
                    f.connection.client, f.connection.server
                )),
                code(&format!("{} {}", f.request.method, f.request.target)),
                cell(f.kind.as_str()),
                f.outcome.as_str().into(),
                cell(&ticket::retry(f)),
                cell(&ticket::client_got(f)),
            ]
        }),
    );
    if let Some(note) = ticket::rest_note(r) {
        let _ = writeln!(s, "{}\n", cell(&note));
    }
    for (i, f) in r.findings.iter().take(FULL_FINDINGS).enumerate() {
        finding(s, i + 1, f);
    }
}

fn finding(s: &mut String, n: usize, f: &Finding) {
    let _ = writeln!(
        s,
        "### {n}. {} {}: {} ({} → {})\n",
        cell(f.kind.as_str()),
        f.outcome.as_str(),
        code(&format!("{} {}", f.request.method, f.request.target)),
        cell(&f.connection.client),
        cell(&f.connection.server)
    );
    let _ = writeln!(s, "{}\n", cell(&f.evidence));
    let _ = writeln!(s, "Wireshark: {}\n", code(&ticket::finding_filter(f)));
    if let Some(l) = &f.ladder {
        let near = l.captured_near.unwrap_or("unknown");
        let _ = writeln!(
            s,
            "Segments (captured near: {near}; relative seq/ack; → client to server, ← server to client):\n"
        );
        table(
            s,
            &["frame", "time (UTC)", "", "flags", "seq", "ack", "len"],
            l.segments.iter().map(|g| {
                let mark = match (g.from_client, g.frame == f.request.frame) {
                    (true, true) => "**→ request**",
                    (true, false) => "→",
                    (false, _) => "←",
                };
                vec![
                    ticket::frame(g.frame, g.flagged_frame),
                    ticket::time(g.time),
                    mark.into(),
                    g.flags.clone(),
                    g.seq.to_string(),
                    g.ack.map_or("-".into(), |a| a.to_string()),
                    g.len.to_string(),
                ]
            }),
        );
    }
}
