//! Report stage: the result document ([`schema`]) and its renderings behind one interface
//! ([`Renderer`]): a table for people, JSON for scripts, JSON Lines for streams, and for an
//! incident ticket a self-contained HTML page (`html`) and Markdown (`markdown`), which say
//! the same things (`ticket`).
//! Renderers only read the report; streaming ones also get each finding as its verdict becomes
//! final. The JSON Schemas of the output ([`json_schemas`], committed in `schema/`) are
//! generated from the types of [`schema`].

mod html;
mod json;
mod markdown;
pub mod schema;
mod table;
#[cfg(test)]
mod tests;
mod ticket;

pub use html::HtmlRenderer;
pub use json::{JsonLinesRenderer, JsonRenderer, json_schemas};
pub use markdown::MarkdownRenderer;
pub use schema::*;
pub use table::{TableOptions, TableRenderer};

use std::io::{self, Write};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    /// For a ticket's body.
    Markdown,
    /// One self-contained page.
    Html,
}

impl Format {
    /// The format of a `--report` file, from its name's extension.
    pub fn of_report_file(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "html" | "htm" => Some(Format::Html),
            "md" | "markdown" => Some(Format::Markdown),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Writes the results of a run.
pub trait Renderer {
    /// Whether findings are written as their verdicts become final (the driver then keeps
    /// them in verdict order).
    fn streams(&self) -> bool {
        false
    }

    /// Whether a streaming renderer needs the findings again in the final report (if not, they
    /// are dropped once written, and memory does not grow with their number).
    fn keeps_findings(&self) -> bool {
        true
    }

    /// The start of the run, with the names of the inputs.
    fn begin(&mut self, _inputs: &[String]) -> io::Result<()> {
        Ok(())
    }

    /// A finding whose verdict became final.
    fn finding(&mut self, _f: &Finding) -> io::Result<()> {
        Ok(())
    }

    /// The end of the run: the whole report.
    fn finish(&mut self, r: &Report) -> io::Result<()>;
}

/// The renderer of `format` writing to `out`. `live`: findings are also streamed as table lines
/// (JSON Lines always streams them); `table`: how the table looks.
pub fn renderer<'a, W: Write + 'a>(
    format: Format,
    out: W,
    live: bool,
    table: &TableOptions,
) -> Box<dyn Renderer + 'a> {
    match format {
        Format::Table => Box::new(TableRenderer::new(out, live, table.clone())),
        Format::Json => Box::new(JsonRenderer::new(out)),
        Format::Jsonl => Box::new(JsonLinesRenderer::new(out)),
        Format::Markdown => Box::new(MarkdownRenderer::new(out)),
        Format::Html => Box::new(HtmlRenderer::new(out)),
    }
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
