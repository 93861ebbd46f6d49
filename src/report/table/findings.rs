//! Findings for a terminal: a table when the terminal is wide enough, else a block of lines per
//! finding; one line per finding while a live capture runs; the evidence, grouped where
//! findings differ only in their numbers.

use super::TableOptions;
use super::text::{Painter, Tone, Unit, paragraph, secs, width_of, wrap};
use crate::report::schema::{Finding, Kind, Outcome};
use crate::time::Timestamp;

/// Time of day of the request, in UTC (the date too when the findings span several days).
pub(super) const TIME_OF_DAY: &str = "%H:%M:%S%.3f";
pub(super) const DATE_AND_TIME: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// The strftime format for the requests' times: the time of day when they all fall on one
/// UTC day (the summary has the date), else the date and time.
pub(super) fn time_format<'a>(mut times: impl Iterator<Item = &'a Timestamp>) -> &'static str {
    let Some(first) = times.next() else {
        return TIME_OF_DAY;
    };
    let day = first.format_utc("%F");
    if times.all(|t| t.format_utc("%F") == day) {
        TIME_OF_DAY
    } else {
        DATE_AND_TIME
    }
}

fn kind_tone(k: Kind) -> Tone {
    if k.is_finding() { Tone::Bad } else { Tone::Dim }
}

/// The outcome, with the number of requests that could be the retry when it is ambiguous.
fn outcome_text(f: &Finding) -> String {
    match f.retry_candidates {
        Some(n) => format!("{} ({n})", f.outcome.as_str()),
        None => f.outcome.as_str().into(),
    }
}

fn outcome_tone(o: Outcome) -> Tone {
    match o {
        Outcome::Lost => Tone::Bad,
        _ => Tone::Warn,
    }
}

/// "idle 0.992" -> "idle 0.992 s" (not "idle - s").
fn seconds_unit(u: Unit) -> Unit {
    if u.text.ends_with(" -") {
        u
    } else {
        Unit::new(u.text + " s")
    }
}

/// A finding as the table shows it: its number ("#1", or "i1" for informational records),
/// and the columns.
pub(super) struct FindingView<'a> {
    pub label: String,
    pub f: &'a Finding,
    pub time: String,
    /// The request's file, when there are several inputs.
    pub file: Option<&'a str>,
}

impl<'a> FindingView<'a> {
    pub(super) fn new(label: String, f: &'a Finding, time_fmt: &str, files: bool) -> Self {
        FindingView {
            label,
            f,
            time: f.request.time.format_utc(time_fmt),
            file: files.then_some(f.request.file.as_str()),
        }
    }

    /// (column header, value, tone) of every column.
    pub(super) fn columns(&self) -> Vec<(&'static str, String, Tone)> {
        let f = self.f;
        let mut cols = vec![
            ("#", self.label.clone(), Tone::Strong),
            ("time (UTC)", self.time.clone(), Tone::Plain),
        ];
        if let Some(file) = self.file {
            cols.push(("file", file.to_string(), Tone::Plain));
        }
        let close = f.peer_close.as_ref().map_or("-".into(), |c| {
            format!("{} {}", c.close_type.to_uppercase(), c.frame)
        });
        cols.extend([
            ("kind", f.kind.as_str().to_string(), kind_tone(f.kind)),
            ("outcome", outcome_text(f), outcome_tone(f.outcome)),
            ("request", self.request(), Tone::Plain),
            ("host", self.host().to_string(), Tone::Plain),
            ("client -> server", self.conn(), Tone::Plain),
            ("frame", f.request.frame.to_string(), Tone::Plain),
            ("peer close", close, Tone::Plain),
            ("close->req s", secs(f.fin_to_request_s), Tone::Plain),
            ("idle s", secs(f.idle_before_s), Tone::Plain),
            (
                "retry frame",
                f.retry.as_ref().map_or("-".into(), |r| r.frame.to_string()),
                Tone::Plain,
            ),
        ]);
        cols
    }

    /// Method and target; a request inside TLS that was not decrypted is marked encrypted, an
    /// HTTP/2 request shows its stream.
    fn request(&self) -> String {
        let r = &self.f.request;
        match (&r.tls, r.stream) {
            (Some(t), _) if t.encrypted => format!("{} {} (encrypted)", r.method, r.target),
            (_, Some(s)) if r.method != "HTTP/2" => {
                format!("{} {} (stream {s})", r.method, r.target)
            }
            _ => format!("{} {}", r.method, r.target),
        }
    }

    fn host(&self) -> &str {
        self.f.request.host.as_deref().unwrap_or("-")
    }

    fn conn(&self) -> String {
        self.f.connection.route()
    }

    /// The block of lines of the narrow layout.
    pub(super) fn block(&self, width: Option<usize>, p: Painter) -> String {
        let cols = self.columns();
        let unit = |header: &str, prefix: &str| {
            cols.iter()
                .find(|(h, _, _)| *h == header)
                .map(|(_, v, tone)| Unit::toned(format!("{prefix}{v}"), *tone))
        };
        let head: Vec<Unit> = [
            unit("#", ""),
            Some(Unit::new(format!("{} UTC", self.time))),
            unit("kind", ""),
            unit("outcome", ""),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut lines = vec![wrap(&head, "  ", ("", "    "), width, p)];
        let request = vec![
            Unit::new(self.request()),
            Unit::new(format!("host {}", self.host())),
        ];
        let numbers: Vec<Unit> = [
            unit("frame", "frame "),
            unit("peer close", "peer close "),
            unit("close->req s", "close->req ").map(seconds_unit),
            unit("idle s", "idle ").map(seconds_unit),
            unit("retry frame", "retry frame "),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut rest = vec![request, vec![Unit::new(self.conn())], numbers];
        if let Some(file) = self.file {
            rest.push(vec![Unit::new(format!("file {file}"))]);
        }
        for units in rest {
            lines.push(wrap(&units, "  ", ("    ", "      "), width, p));
        }
        lines.join("\n")
    }

    /// The one line of a finding streamed during a live capture (wrapped at the separators
    /// when the terminal is narrow).
    pub(super) fn line(&self, look: &TableOptions) -> String {
        let mut units = vec![Unit::toned(format!("finding {}", self.label), Tone::Strong)];
        for (header, value, tone) in self.columns().into_iter().skip(1) {
            let header = if header == "time (UTC)" {
                "time"
            } else {
                header
            };
            let value = if header == "time" {
                format!("{value} UTC")
            } else {
                value
            };
            units.push(Unit::toned(format!("{header}: {value}"), tone));
        }
        wrap(&units, " | ", ("", "    "), look.width, look.painter())
    }
}

/// The findings as a table (header and rows).
pub(super) fn table(views: &[FindingView<'_>], look: &TableOptions) -> comfy_table::Table {
    let mut t = look.table();
    if let Some(first) = views.first() {
        t.set_header(first.columns().into_iter().map(|(h, _, _)| h));
    }
    for v in views {
        t.add_row(
            v.columns()
                .into_iter()
                .map(|(_, value, tone)| tone.cell(&value, look.color)),
        );
    }
    t
}

/// The findings in the layout that fits: a table, or a block per finding.
pub(super) fn render(views: &[FindingView<'_>], look: &TableOptions) -> String {
    let table = table(views, look).to_string();
    if look.shows(&table) {
        return table;
    }
    views
        .iter()
        .map(|v| v.block(look.width, look.painter()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The evidence with the numbers taken out: findings whose evidence has the same pattern say
/// the same thing about different frames.
fn pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit && !in_number {
            out.push('#');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out
}

/// "#3, #5-#9": the labels, runs of consecutive numbers shortened.
fn label_list(labels: &[&FindingView<'_>]) -> String {
    let split = |l: &str| {
        let digits = l.trim_start_matches(|c: char| !c.is_ascii_digit());
        (
            l[..l.len() - digits.len()].to_string(),
            digits.parse::<u64>().unwrap_or(0),
        )
    };
    let mut runs: Vec<(String, u64, u64)> = Vec::new();
    for v in labels {
        let (prefix, n) = split(&v.label);
        match runs.last_mut() {
            Some((p, _, end)) if *p == prefix && *end + 1 == n => *end = n,
            _ => runs.push((prefix, n, n)),
        }
    }
    runs.iter()
        .map(|(p, a, b)| match b - a {
            0 => format!("{p}{a}"),
            1 => format!("{p}{a}, {p}{b}"),
            _ => format!("{p}{a}-{p}{b}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The evidence, one paragraph per group of findings that differ only in their numbers.
pub(super) fn evidence(views: &[FindingView<'_>], look: &TableOptions) -> String {
    let mut groups: Vec<(String, Vec<&FindingView<'_>>)> = Vec::new();
    for v in views {
        let key = pattern(&v.f.evidence);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(v),
            None => groups.push((key, vec![v])),
        }
    }
    let p = look.painter();
    let pad = views.iter().map(|v| width_of(&v.label)).max().unwrap_or(0);
    let indent = " ".repeat(pad + 4);
    let mut out = Vec::new();
    for (_, members) in groups {
        let first = members[0];
        let mut units = vec![Unit::toned(format!("{:<pad$} ", first.label), Tone::Strong)];
        units.extend(Unit::words(&first.f.evidence));
        let mut text = wrap(&units, " ", ("  ", &indent), look.width, p);
        if members.len() > 1 {
            let same = format!(
                "The same for {} ({} more, each with its own frames and numbers).",
                label_list(&members[1..]),
                members.len() - 1
            );
            text.push('\n');
            text.push_str(&paragraph(&same, (&indent, &indent), look.width, p));
        }
        out.push(text);
    }
    out.join("\n")
}
