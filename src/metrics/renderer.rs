//! Findings reach the metrics on their way to the output: a renderer in front of another.

use super::Metrics;
use crate::report::Renderer;
use crate::report::schema::{Finding, Report};
use std::io;
use std::sync::Arc;

/// Counts each final finding in the metrics, then hands it to the inner renderer. It streams
/// (the driver hands every finding over as it becomes final, the last ones at the end of the
/// input, before `finish`) whether the inner renderer does or not; the inner one gets
/// streamed findings only if it streams, and the findings are kept for the final report only
/// if it needs them (so a long live run with JSON Lines keeps none). Nothing is kept per
/// finding here.
pub struct CountingRenderer<'a> {
    inner: Box<dyn Renderer + 'a>,
    metrics: Arc<Metrics>,
}

impl<'a> CountingRenderer<'a> {
    pub fn new(inner: Box<dyn Renderer + 'a>, metrics: Arc<Metrics>) -> CountingRenderer<'a> {
        CountingRenderer { inner, metrics }
    }
}

impl Renderer for CountingRenderer<'_> {
    fn streams(&self) -> bool {
        true
    }

    fn keeps_findings(&self) -> bool {
        !self.inner.streams() || self.inner.keeps_findings()
    }

    fn begin(&mut self, inputs: &[String]) -> io::Result<()> {
        self.inner.begin(inputs)
    }

    fn finding(&mut self, f: &Finding) -> io::Result<()> {
        self.metrics.finding(f);
        if self.inner.streams() {
            self.inner.finding(f)
        } else {
            Ok(())
        }
    }

    fn finish(&mut self, r: &Report) -> io::Result<()> {
        self.inner.finish(r)
    }
}
