//! A live capture run: the driver loop over a [`LiveSource`], with the stop conditions and
//! running totals of a long-running capture.
//!
//! Packets are read with a short read timeout; each quiet period lets capture time advance to
//! the wall clock ([`Next::Idle`](crate::capture::Next::Idle)), so verdicts that wait for later events (the RST, the end of
//! the retry window) become final while the capture runs, and each finding is printed as soon
//! as it is final. The run stops on Ctrl-C/SIGTERM, `--duration` or `--count` and prints the
//! same report as file mode, plus the capture's statistics (the kernel's drop counters).

use super::analyzer::Analyzer;
use super::run::{RunError, RunHooks, RunOptions, run};
use crate::capture::{LiveConfig, LiveSource, PacketSource};
use crate::metrics::{CountingRenderer, Metrics, MetricsServer};
use crate::report::schema::{CaptureInfo, Provenance};
use crate::report::{Format, TableOptions, renderer};
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Everything a live run needs.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub capture: LiveConfig,
    pub run: RunOptions,
    pub format: Format,
    /// How the table looks (`--format table`).
    pub table: TableOptions,
    /// Print running totals to stderr this often.
    pub stats_every: Option<Duration>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Live metrics to keep current and the address to serve them at (`--metrics`; the
    /// detect stage's observer is set by the caller).
    pub metrics: Option<(String, Arc<Metrics>)>,
    /// The command line, for the provenance of an HTML or Markdown report.
    pub provenance: Option<Provenance>,
}

/// Packets between two copies of the running totals into the metrics (also copied in every
/// quiet period).
const METRICS_EVERY: u64 = 1024;

/// Why the capture stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Duration,
    Count,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Signal => "signal",
            StopReason::Duration => "duration",
            StopReason::Count => "count",
        }
    }
}

/// Stop flag set by SIGINT and SIGTERM; a second signal ends the process at once (exit 130).
pub fn install_signal_handlers() -> Result<Arc<AtomicBool>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    Ok(stop)
}

/// The hooks of a live run: stop on the flag, the deadline or the count; print running totals.
struct LiveHooks<'a> {
    stop: &'a AtomicBool,
    start: Instant,
    deadline: Option<Instant>,
    count: Option<u64>,
    stats_every: Option<Duration>,
    next_stats: Option<Instant>,
    stopped_by: Option<StopReason>,
    metrics: Option<&'a Metrics>,
    /// Packets read at the last copy into the metrics, and at the last call.
    metrics_at: u64,
    last_read: u64,
}

impl LiveHooks<'_> {
    fn stop_reason(&self, read: u64) -> Option<StopReason> {
        if self.stop.load(Ordering::Relaxed) {
            return Some(StopReason::Signal);
        }
        // every packet captured is analysed
        if self.count.is_some_and(|n| read >= n) {
            return Some(StopReason::Count);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(StopReason::Duration);
        }
        None
    }

    /// The running totals, when they are due.
    fn print_stats(&mut self, source: &mut dyn PacketSource, a: &Analyzer) {
        let (Some(every), Some(at)) = (self.stats_every, self.next_stats) else {
            return;
        };
        let now = Instant::now();
        if now < at {
            return;
        }
        let kernel = match source.kernel_stats() {
            Some(k) => format!(
                "kernel received {} dropped {} if_dropped {}",
                k.received, k.dropped, k.if_dropped
            ),
            None => "kernel counters unavailable".into(),
        };
        eprintln!(
            "tcprace: stats: {:.0} s, packets {}, connections open {}, requests {}, findings {}, {}",
            self.start.elapsed().as_secs_f64(),
            a.packets(),
            a.open_connections(),
            a.requests(),
            a.finding_count(),
            kernel
        );
        let missed = (now - at).as_nanos() / every.as_nanos();
        self.next_stats = Some(at + every * (1 + missed as u32));
    }
}

impl LiveHooks<'_> {
    /// Copy the running totals into the metrics in quiet periods (nothing read since the last
    /// call) and every `METRICS_EVERY` packets.
    fn update_metrics(&mut self, source: &mut dyn PacketSource, a: &Analyzer, read: u64) {
        let Some(m) = self.metrics else {
            return;
        };
        let quiet = read == std::mem::replace(&mut self.last_read, read);
        if !quiet && read - self.metrics_at < METRICS_EVERY {
            return;
        }
        self.metrics_at = read;
        m.update_capture(
            a.packets(),
            a.open_connections(),
            a.connections_evicted(),
            source.kernel_stats(),
        );
    }
}

impl RunHooks for LiveHooks<'_> {
    fn before_read(
        &mut self,
        source: &mut dyn PacketSource,
        analyzer: &Analyzer,
        read: u64,
    ) -> ControlFlow<()> {
        if let Some(why) = self.stop_reason(read) {
            self.stopped_by = Some(why);
            return ControlFlow::Break(());
        }
        self.print_stats(source, analyzer);
        self.update_metrics(source, analyzer, read);
        ControlFlow::Continue(())
    }
}

/// Start the metrics endpoint and say where it is.
fn serve_metrics(addr: &str, metrics: &Arc<Metrics>) -> Result<MetricsServer, String> {
    let server = crate::metrics::serve(addr, Arc::clone(metrics))?;
    let at = server.addr().map_or(addr.to_string(), |a| a.to_string());
    eprintln!("tcprace: metrics at http://{at}/metrics");
    Ok(server)
}

/// Capture from the interface until `stop` is set (or duration/count), streaming findings to
/// `out`; then print the report. Returns the exit code (0 no findings, 1 findings).
pub fn run_live<W: Write>(opts: &LiveOptions, stop: &AtomicBool, out: W) -> Result<i32, RunError> {
    let cfg = &opts.capture;
    let mut src = LiveSource::open(cfg).map_err(|e| e.to_string())?;
    // served once the capture is open and privileges are dropped (-Z): no thread of the
    // process keeps a capability
    let _server = opts
        .metrics
        .as_ref()
        .map(|(addr, m)| serve_metrics(addr, m))
        .transpose()?;
    eprintln!(
        "tcprace: listening on {}, link-type {}, snapshot length {} bytes{}{}",
        cfg.interface,
        src.datalink_name(),
        cfg.snaplen,
        cfg.filter
            .as_ref()
            .map(|f| format!(", filter \"{f}\""))
            .unwrap_or_default(),
        cfg.write
            .as_ref()
            .map(|w| format!(", writing {w}"))
            .unwrap_or_default(),
    );
    let start = Instant::now();
    let mut hooks = LiveHooks {
        stop,
        start,
        deadline: opts.duration.map(|d| start + d),
        count: opts.count,
        stats_every: opts.stats_every,
        next_stats: opts.stats_every.map(|s| start + s),
        stopped_by: None,
        metrics: opts.metrics.as_ref().map(|(_, m)| m.as_ref()),
        metrics_at: 0,
        last_read: 0,
    };
    let mut renderer = renderer(opts.format, out, true, &opts.table);
    if let Some((_, m)) = &opts.metrics {
        renderer = Box::new(CountingRenderer::new(renderer, Arc::clone(m)));
    }
    let result = run(&mut src, &opts.run, renderer.as_mut(), &mut hooks);
    let kernel = src.kernel_stats().unwrap_or_default();
    let capture = CaptureInfo {
        interface: cfg.interface.clone(),
        datalink: src.datalink_name(),
        snaplen: cfg.snaplen,
        filter: cfg.filter.clone(),
        captured: src.frames(),
        received: kernel.received,
        dropped: kernel.dropped,
        if_dropped: kernel.if_dropped,
        stopped_by: hooks.stopped_by.unwrap_or(StopReason::Signal).as_str(),
        written_to: cfg.write.clone(),
    };
    let mut report = result?;
    src.close_savefile()?;
    drop(src);
    eprintln!(
        "tcprace: stopped ({}) after {:.1} s: {} packets captured, {} received by the kernel, {} dropped, {} dropped by the interface",
        capture.stopped_by,
        start.elapsed().as_secs_f64(),
        capture.captured,
        capture.received,
        capture.dropped,
        capture.if_dropped
    );
    if let Some(n) = capture.drop_note() {
        eprintln!("tcprace: warning: {n}");
    }
    if let (0, Some(f)) = (capture.captured, &cfg.filter) {
        eprintln!("tcprace: warning: no packet matched the filter \"{f}\"");
    }
    report.capture = Some(capture);
    report.provenance = opts.provenance.clone();
    let code = report.exit_code();
    renderer
        .finish(&report)
        .map_err(|e| RunError::output(e, code == 1))?;
    Ok(code)
}
