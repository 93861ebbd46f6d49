//! JSON: the report as one document; JSON Lines: one `finding` record per finding as its
//! verdict becomes final, then one `summary` record with everything but the findings.

use super::{Finding, Renderer, Report};
use std::collections::HashSet;
use std::io::{self, Write};

/// The report as one pretty-printed JSON document.
pub struct JsonRenderer<W: Write> {
    out: W,
}

impl<W: Write> JsonRenderer<W> {
    pub fn new(out: W) -> Self {
        JsonRenderer { out }
    }
}

impl<W: Write> Renderer for JsonRenderer<W> {
    fn finish(&mut self, r: &Report) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.out, r)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

/// JSON Lines: findings as they become final, then the summary.
pub struct JsonLinesRenderer<W: Write> {
    out: W,
    /// (connection id, request index) of the findings written so far.
    written: HashSet<(u64, u32)>,
}

impl<W: Write> JsonLinesRenderer<W> {
    pub fn new(out: W) -> Self {
        JsonLinesRenderer {
            out,
            written: HashSet::new(),
        }
    }

    /// A JSON object on one line, with a `record` field added and the field `drop` left out.
    fn record<T: serde::Serialize>(
        &mut self,
        value: &T,
        record: &str,
        drop: Option<&str>,
    ) -> io::Result<()> {
        let mut v = serde_json::to_value(value)?;
        if let Some(o) = v.as_object_mut() {
            if let Some(key) = drop {
                o.remove(key);
            }
            o.insert("record".into(), record.into());
        }
        serde_json::to_writer(&mut self.out, &v)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

impl<W: Write> Renderer for JsonLinesRenderer<W> {
    fn streams(&self) -> bool {
        true
    }

    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        self.written.insert((f.connection.id, f.request.index));
        self.record(f, "finding", None)
    }

    fn finish(&mut self, r: &Report) -> io::Result<()> {
        for f in &r.findings {
            if !self.written.contains(&(f.connection.id, f.request.index)) {
                self.record(f, "finding", None)?;
            }
        }
        self.record(r, "summary", Some("findings"))
    }
}
