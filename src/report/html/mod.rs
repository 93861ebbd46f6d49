//! The report as one self-contained HTML file for an incident ticket: inline CSS and SVG, no
//! script, nothing fetched; readable offline and printed. From top to bottom: the verdict, the
//! provenance, per upstream the plot of its idle closes against the clients' reuses and what
//! to change, then every finding in a table and the first ones in full with their ladder
//! diagrams.

mod ladder;
mod plot;

use super::Renderer;
use super::schema::{EndpointStats, Finding, Ladder, Report};
use super::ticket::{self, FULL_FINDINGS};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Escape text for HTML (element content and attribute values).
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dce4;padding-bottom:4px}
h3{font-size:15px;margin:22px 0 6px}
.verdict{font-size:16px;background:#fff4f2;border-left:5px solid #c0392b;padding:10px 14px;margin:10px 0}
.verdict.ok{background:#f1faf3;border-color:#2e8b57}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d8dce4;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f8}
td.num{text-align:right}
code,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{background:#f3f5f8;padding:1px 4px;border-radius:3px;word-break:break-all}
.lost{color:#b03a2e;font-weight:600}.retried{color:#1e7b4a;font-weight:600}.ambiguous{color:#a0660a;font-weight:600}
.finding{border:1px solid #d8dce4;border-radius:6px;padding:4px 14px 10px;margin:14px 0;break-inside:avoid}
.evidence{margin:6px 0}
.note{color:#5a6272;font-size:13px}
svg{max-width:100%;height:auto;display:block;margin:6px 0}
svg text{font:11px ui-monospace,Menlo,Consolas,monospace;fill:#1d2330}
svg .lane{stroke:#7d8594;stroke-width:2}
svg .lanehead{text-anchor:middle;font-weight:700;font-size:12px}
svg .capnote{text-anchor:middle;fill:#2962a8}
svg .seg{stroke-width:1.4}svg .seg.other{stroke:#8a93a3}svg .seg.req{stroke:#d35400;stroke-width:2.6}svg .seg.close{stroke:#c0392b;stroke-width:2.2}
svg .seglabel.req{fill:#a84300;font-weight:700}svg .seglabel.close{fill:#a5281b;font-weight:700}
svg .tlabel{fill:#5a6272}svg .gap{text-anchor:middle;fill:#5a6272}
svg .cross{fill:none;stroke:#c0392b;stroke-width:2}svg .crosslabel{fill:#c0392b;font-weight:700;text-anchor:middle}
td.t{white-space:nowrap}
svg .closes{fill:#c0392b}svg .reuses{fill:#2962a8}svg .zone{fill:#fbe3df}
svg .axis{stroke:#1d2330}svg .tick{stroke:#1d2330}svg .ticklabel{text-anchor:middle}
svg .rowlabel{text-anchor:end}svg .closes-t{fill:#a5281b;font-weight:700}svg .reuses-t{fill:#2962a8;font-weight:700}
svg .suggest{stroke:#1e7b4a;stroke-width:2;stroke-dasharray:5 4}svg .suggestlabel{fill:#1e7b4a;text-anchor:end;font-weight:700}
@media print{body{margin:0;max-width:none;font-size:11px}.finding{page-break-inside:avoid}h2{page-break-after:avoid}a{color:inherit;text-decoration:none}}
"#;

/// Writes the report as HTML when the run ends.
pub struct HtmlRenderer<W: Write> {
    out: W,
}

impl<W: Write> HtmlRenderer<W> {
    pub fn new(out: W) -> Self {
        HtmlRenderer { out }
    }
}

impl<W: Write> Renderer for HtmlRenderer<W> {
    fn finish(&mut self, r: &Report) -> io::Result<()> {
        self.out.write_all(document(r).as_bytes())?;
        self.out.flush()
    }
}

/// The whole document.
pub fn document(r: &Report) -> String {
    let mut s = String::with_capacity(64 * 1024 + r.findings.len() * 600);
    let title = ticket::title(r);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(s, "<h1>{}</h1>", esc(&title));
    let ok = if r.findings.is_empty() { " ok" } else { "" };
    let _ = writeln!(
        s,
        "<p class=\"verdict{ok}\" id=\"verdict\">{}</p>",
        esc(&ticket::verdict(r))
    );
    provenance(&mut s, r);
    for e in ticket::upstreams(r) {
        upstream(&mut s, r, e);
    }
    findings(&mut s, r);
    s.push_str("</body></html>\n");
    s
}

fn provenance(s: &mut String, r: &Report) {
    s.push_str("<h2>Provenance</h2>\n<table>\n");
    for (k, v) in ticket::provenance(r) {
        let _ = writeln!(
            s,
            "<tr><th>{}</th><td class=\"mono\">{}</td></tr>",
            esc(&k),
            esc(&v)
        );
    }
    s.push_str("</table>\n");
    if let Some(note) = r.capture.as_ref().and_then(|c| c.drop_note()) {
        let _ = writeln!(s, "<p class=\"verdict\">{}</p>", esc(&note));
    }
}

fn upstream(s: &mut String, r: &Report, e: &EndpointStats) {
    let counts = ticket::counts(&r.findings, &e.server);
    let per: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
    let _ = writeln!(
        s,
        "<h2>Upstream {}: {} finding(s) ({})</h2>",
        esc(&e.server),
        e.findings,
        esc(&per.join(", "))
    );
    let _ = writeln!(s, "<p>{}</p>", esc(&ticket::measured(e)));
    if let Some(svg) = plot::svg(e) {
        s.push_str(&svg);
        s.push_str("<p class=\"note\">Top, red: idle times after which the server closed connections. Bottom, blue: idle times after which clients sent another request on a connection. The shaded band is the range of the server's idle closes: reuses there or just before it meet the server's FIN (the race).</p>\n");
    }
    if let Some(rec) = &e.recommendation {
        let _ = writeln!(s, "<p><b>Recommendation.</b> {}</p>", esc(rec));
    }
    let sw = ticket::software(e);
    if !sw.is_empty() {
        let _ = writeln!(s, "<p>{}</p>", esc(&sw));
    }
    if let Some(a) = &e.advice {
        let _ = writeln!(
            s,
            "<p>Set the client's (proxy's) idle timeout for upstream connections to <b>{:.2} s</b> (below the server's shortest idle close), or the server's to <b>{} s</b> (above the client's):</p>",
            a.client_idle_timeout_s, a.server_idle_timeout_s
        );
        s.push_str("<table><tr><th>side</th><th>software</th><th>setting</th></tr>\n");
        for st in &a.settings {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                st.side,
                esc(st.software),
                esc(&st.setting)
            );
        }
        s.push_str("</table>\n");
    }
    if let Some(w) = ticket::what_if(e) {
        let _ = writeln!(s, "<p>{}</p>", esc(&w));
    }
}

fn findings(s: &mut String, r: &Report) {
    if r.findings.is_empty() {
        return;
    }
    let _ = writeln!(s, "<h2>Findings ({})</h2>", r.findings.len());
    s.push_str("<table class=\"findings\"><tr>");
    for c in ticket::FINDING_COLUMNS {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>\n");
    for (i, f) in r.findings.iter().enumerate() {
        let n = i + 1;
        let anchor = if n <= FULL_FINDINGS {
            format!("<a href=\"#f{n}\">{n}</a>")
        } else {
            n.to_string()
        };
        let _ = writeln!(
            s,
            "<tr><td class=\"num\">{anchor}</td><td class=\"mono t\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"mono\">{} &rarr; {}</td><td class=\"mono\">{} {}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&ticket::time(f.request.time)),
            esc(ticket::base_name(&f.request.file)),
            esc(&ticket::frame(
                f.request.frame,
                f.flagged_frames.as_ref().and_then(|g| g.request)
            )),
            esc(&f.connection.client),
            esc(&f.connection.server),
            esc(&f.request.method),
            esc(&f.request.target),
            f.kind.as_str(),
            f.outcome.as_str(),
            f.outcome.as_str(),
            esc(&ticket::retry(f)),
            esc(&ticket::client_got(f)),
        );
    }
    s.push_str("</table>\n");
    if let Some(note) = ticket::rest_note(r) {
        let _ = writeln!(s, "<p class=\"note\">{}</p>", esc(&note));
    }
    for (i, f) in r.findings.iter().take(FULL_FINDINGS).enumerate() {
        finding(s, i + 1, f);
    }
}

fn finding(s: &mut String, n: usize, f: &Finding) {
    let _ = writeln!(
        s,
        "<div class=\"finding\" id=\"f{n}\"><h3>{n}. {} <span class=\"{}\">{}</span>: {} {} ({} &rarr; {})</h3>",
        f.kind.as_str(),
        f.outcome.as_str(),
        f.outcome.as_str(),
        esc(&f.request.method),
        esc(&f.request.target),
        esc(&f.connection.client),
        esc(&f.connection.server)
    );
    let flagged = f.flagged_frames.as_ref();
    let mut rows: Vec<(&str, String)> = vec![
        ("time (UTC)", ticket::time(f.request.time)),
        (
            "request",
            format!(
                "{}, frame {}",
                f.request.file,
                ticket::frame(f.request.frame, flagged.and_then(|g| g.request))
            ),
        ),
    ];
    if let Some(c) = &f.peer_close {
        rows.push((
            "server's close",
            format!(
                "{} frame {} at {}",
                c.close_type.to_uppercase(),
                ticket::frame(c.frame, flagged.and_then(|g| g.peer_close)),
                c.time.to_iso8601()
            ),
        ));
    }
    rows.push(("retry frame", ticket::retry(f)));
    if let Some(e) = &f.client_effect {
        rows.push((
            "client got",
            format!(
                "{} ({} -> {}, frame {} at {}){}",
                ticket::client_got(f),
                e.client,
                e.proxy,
                ticket::frame(e.frame, flagged.and_then(|g| g.client_effect)),
                e.time.to_iso8601(),
                if e.settled_outcome {
                    "; settled the outcome"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(h) = f.request.host.as_deref() {
        rows.push(("Host", h.to_string()));
    }
    s.push_str("<table>");
    for (k, v) in rows {
        let _ = write!(
            s,
            "<tr><th>{k}</th><td class=\"mono\">{}</td></tr>",
            esc(&v)
        );
    }
    let _ = writeln!(
        s,
        "<tr><th>Wireshark filter</th><td><code>{}</code></td></tr></table>",
        esc(&ticket::finding_filter(f))
    );
    let _ = writeln!(s, "<p class=\"evidence\">{}</p>", esc(&f.evidence));
    if let Some(l) = &f.ladder {
        ladder_section(s, f, l);
    }
    s.push_str("</div>\n");
}

/// A finding's ladder diagram with a line on where it was captured.
fn ladder_section(s: &mut String, f: &Finding, l: &Ladder) {
    let near = match l.captured_near {
        Some("client") => {
            "near the client (on the proxy host): arrows leave the client or reach it at their capture time"
        }
        Some("server") => {
            "near the server: arrows leave the server or reach it at their capture time"
        }
        Some(_) => "between client and server",
        None => "at an unknown point (no handshake in the capture)",
    };
    let delay = l.far_delay_s.map_or(String::new(), |d| {
        format!(
            "; the far end is drawn {:.3} ms away (half the handshake's round trip)",
            d * 1000.0
        )
    });
    let earlier = if l.earlier_segments > 0 {
        format!(
            " The connection's {} earlier segment(s) are not shown.",
            l.earlier_segments
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "<p class=\"note\">Captured {near}{delay}. Sequence numbers are relative (as Wireshark shows them).{earlier}</p>"
    );
    s.push_str(&ladder::svg(f, l));
}
