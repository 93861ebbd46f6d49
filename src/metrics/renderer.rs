//! Findings reach the metrics on their way to the output: a renderer in front of another.

use super::Metrics;
use crate::report::Renderer;
use crate::report::schema::{Finding, Report};
use std::collections::HashSet;
use std::io;
use std::sync::Arc;

/// Counts each final finding in the metrics, then hands it to the inner renderer. It streams
/// (gets every finding as it becomes final) whether the inner renderer does or not; the inner
/// one gets streamed findings only if it streams. Those final only at the end of the run
/// (`finish`) are counted then.
pub struct CountingRenderer<'a> {
    inner: Box<dyn Renderer + 'a>,
    metrics: Arc<Metrics>,
    /// (connection, request) of the findings counted.
    counted: HashSet<(u64, u32)>,
}

impl<'a> CountingRenderer<'a> {
    pub fn new(inner: Box<dyn Renderer + 'a>, metrics: Arc<Metrics>) -> CountingRenderer<'a> {
        CountingRenderer {
            inner,
            metrics,
            counted: HashSet::new(),
        }
    }
}

impl Renderer for CountingRenderer<'_> {
    fn streams(&self) -> bool {
        true
    }

    fn begin(&mut self, inputs: &[String]) -> io::Result<()> {
        self.inner.begin(inputs)
    }

    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        self.metrics.finding(f);
        self.counted.insert((f.connection.id, f.request.index));
        if self.inner.streams() {
            self.inner.finding(f)
        } else {
            Ok(())
        }
    }

    fn finish(&mut self, r: &Report) -> io::Result<()> {
        for f in &r.findings {
            if !self.counted.contains(&(f.connection.id, f.request.index)) {
                self.metrics.finding(f);
            }
        }
        self.inner.finish(r)
    }
}
