//! Report stage: the result document ([`schema`]) and its renderings behind one interface
//! ([`Renderer`]): a table for people, JSON for scripts and tickets, JSON Lines for streams.
//! Renderers only read the report; streaming ones also get each finding as its verdict becomes
//! final. The JSON Schemas of the output ([`json_schemas`], committed in `schema/`) are
//! generated from the types of [`schema`].

mod json;
pub mod schema;
mod table;
#[cfg(test)]
mod tests;

pub use json::{JsonLinesRenderer, JsonRenderer, json_schemas};
pub use schema::*;
pub use table::{TableOptions, TableRenderer};

use std::io::{self, Write};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Jsonl,
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
