//! The report as text for a terminal: summary, findings with their evidence, server endpoints,
//! recommendations, skipped packets, and for live captures the kernel's counters. Live runs
//! also print one line per finding as its verdict becomes final.
//!
//! It fits the width it is given: tables when they fit (or when the width is unknown, as in a
//! file), else a block of lines per finding and per endpoint; paragraphs are wrapped between
//! words, so numbers and addresses are never cut. Colours and box-drawing borders are options
//! ([`TableOptions`]), decided by the command line from the terminal and the locale.

mod findings;
mod sections;
mod text;

use super::{Finding, Renderer, Report};
use comfy_table::{ContentArrangement, Table, presets};
use findings::FindingView;
use std::io::{self, Write};
use text::Painter;

/// Below this many columns the findings are never a table.
pub const WIDE_MIN: usize = 120;

/// How the table looks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Columns available (`None`: unknown, no limit: tables are as wide as their content).
    pub width: Option<usize>,
    /// ANSI colours.
    pub color: bool,
    /// ASCII borders instead of box-drawing characters.
    pub ascii: bool,
    /// List the informational records (unanswered at the end, client closed) too.
    pub verbose: bool,
}

impl TableOptions {
    fn painter(&self) -> Painter {
        Painter { color: self.color }
    }

    /// Whether a rendered table is shown as it is: it fits the width (which is at least
    /// `WIDE_MIN`), or the width is unknown. Else its rows become blocks of lines.
    fn shows(&self, table: &str) -> bool {
        let natural = table.lines().map(text::width_of).max().unwrap_or(0);
        match self.width {
            None => true,
            Some(w) => w >= WIDE_MIN && natural <= w,
        }
    }

    /// An empty table with the borders and colours of this look, as wide as its content.
    fn table(&self) -> Table {
        let mut t = Table::new();
        t.load_style(if self.ascii {
            presets::ASCII_FULL_CONDENSED
        } else {
            presets::UTF8_FULL_CONDENSED
        })
        .set_content_arrangement(ContentArrangement::Disabled);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t
    }

    fn title(&self, text: &str) -> String {
        self.painter().paint(text::Tone::Strong, text)
    }
}

/// Tables at the end; with `stream_lines`, a line per finding as it becomes final.
pub struct TableRenderer<W: Write> {
    out: W,
    stream_lines: bool,
    opts: TableOptions,
    /// Whether there are several inputs (a file column).
    several_inputs: bool,
    /// Findings streamed so far.
    streamed: usize,
}

impl<W: Write> TableRenderer<W> {
    pub fn new(out: W, stream_lines: bool, opts: TableOptions) -> Self {
        TableRenderer {
            out,
            stream_lines,
            opts,
            several_inputs: false,
            streamed: 0,
        }
    }
}

impl<W: Write> Renderer for TableRenderer<W> {
    fn streams(&self) -> bool {
        self.stream_lines
    }

    fn begin(&mut self, inputs: &[String]) -> io::Result<()> {
        self.several_inputs = inputs.len() > 1;
        Ok(())
    }

    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        if !self.stream_lines {
            return Ok(());
        }
        self.streamed += 1;
        let label = format!("#{}", self.streamed);
        let view = FindingView::new(label, f, findings::DATE_AND_TIME, self.several_inputs);
        writeln!(self.out, "{}", view.line(&self.opts))?;
        self.out.flush()
    }

    fn finish(&mut self, r: &Report) -> io::Result<()> {
        if self.streamed > 0 {
            writeln!(self.out)?;
        }
        write_report(&mut self.out, r, &self.opts)?;
        if let Some(c) = &r.capture {
            writeln!(self.out, "\n{}", sections::capture(c, &self.opts))?;
        }
        self.out.flush()
    }
}

/// Numbered views of `list` ("#1" for findings, "i1" for informational records).
fn views<'a>(list: &'a [Finding], prefix: &str, r: &Report) -> Vec<FindingView<'a>> {
    let all = r.findings.iter().chain(&r.informational);
    let time_fmt = findings::time_format(all.map(|f| &f.request.time));
    list.iter()
        .enumerate()
        .map(|(i, f)| {
            FindingView::new(
                format!("{prefix}{}", i + 1),
                f,
                time_fmt,
                r.inputs.len() > 1,
            )
        })
        .collect()
}

/// A titled section after a blank line.
fn section<W: Write>(out: &mut W, look: &TableOptions, title: &str, body: &str) -> io::Result<()> {
    writeln!(out, "\n{}\n{body}", look.title(title))
}

/// The whole report as text.
fn write_report<W: Write>(out: &mut W, r: &Report, look: &TableOptions) -> io::Result<()> {
    writeln!(out, "{}", sections::summary(r, look))?;
    if !r.findings.is_empty() {
        let v = views(&r.findings, "#", r);
        section(out, look, "Findings", &findings::render(&v, look))?;
        section(out, look, "Evidence", &findings::evidence(&v, look))?;
    }
    if !r.informational.is_empty() {
        writeln!(out, "\n{}", sections::informational_note(r, look))?;
        if look.verbose {
            let v = views(&r.informational, "i", r);
            writeln!(out, "{}", findings::render(&v, look))?;
            let evidence = findings::evidence(&v, look);
            section(out, look, "Informational evidence", &evidence)?;
        }
    }
    if !r.endpoints.is_empty() {
        let t = sections::endpoints(&r.endpoints, look);
        section(out, look, "Server endpoints", &t)?;
    }
    if !r.recommendations.is_empty() {
        let recs = sections::recommendations(&r.recommendations, look);
        section(out, look, "Recommendations", &recs)?;
    }
    if !r.skipped.is_empty() {
        writeln!(out, "\n{}", sections::skipped(r, look))?;
    }
    Ok(())
}
