//! Live mode: the engine fed by a network interface.
//!
//! Packets are read with a short read timeout; each quiet period lets capture time advance to
//! the wall clock (`Analyzer::tick`), so verdicts that wait for later events (the RST, the end of
//! the retry window) become final while the capture runs, and each finding is printed as soon
//! as it is final. The run stops on Ctrl-C/SIGTERM, `--duration` or `--count` and prints the
//! same report as file mode, plus a `capture` section with the kernel's drop counters.

use crate::analyzer::{Analyzer, Config};
use crate::capture::{CaptureStats, LiveConfig, LiveNext, LiveSource, Packet};
use crate::report::{self, FINDING_HEADER, Format, Report, WarningPrinter, io_err};
use crate::time::Timestamp;
use std::collections::HashSet;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything a live run needs.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub capture: LiveConfig,
    pub config: Config,
    pub format: Format,
    /// Print running totals to stderr this often (seconds).
    pub stats_every: Option<f64>,
    /// Stop after this many seconds.
    pub duration: Option<f64>,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Print at most this many warnings on stderr.
    pub max_warnings: u64,
}

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

/// The `capture` section added to live reports (the engine's `Report` has no field for it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaptureInfo {
    pub interface: String,
    /// libpcap's name of the link type, e.g. "EN10MB".
    pub datalink: String,
    pub snaplen: u32,
    pub filter: Option<String>,
    /// Packets read by tcprace.
    pub captured: u64,
    /// Kernel counters (`pcap_stats`): received, dropped (buffer full), if_dropped.
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
    pub stopped_by: &'static str,
    /// The `-w` file.
    pub written_to: Option<String>,
}

impl CaptureInfo {
    fn lost(&self) -> u64 {
        self.dropped + self.if_dropped
    }

    fn drop_note(&self) -> Option<String> {
        (self.lost() > 0).then(|| {
            format!(
                "{} packet(s) were dropped during the capture ({} by the kernel, {} by the \
                 interface): verdicts may be incomplete (try --buffer-size or a narrower -f filter)",
                self.lost(),
                self.dropped,
                self.if_dropped
            )
        })
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

fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// One streamed finding in table format: a single self-describing line.
fn table_line(n: usize, f: &crate::detect::Finding) -> String {
    let row = report::finding_row(n - 1, f);
    let mut parts = vec![format!("finding #{n}")];
    for (h, v) in FINDING_HEADER.iter().zip(row).skip(1) {
        parts.push(format!("{h}: {v}"));
    }
    parts.join(" | ")
}

/// Writes findings as their verdicts become final.
struct Streamer {
    format: Format,
    /// Index into the engine's findings of the next one to print.
    next: usize,
    /// (connection id, request index) of the findings printed so far.
    printed: HashSet<(u64, u64)>,
}

impl Streamer {
    fn pump<W: Write>(&mut self, analyzer: &mut Analyzer, out: &mut W) -> Result<(), String> {
        if analyzer.finding_count() <= self.next {
            return Ok(());
        }
        for f in analyzer.findings_since(self.next) {
            match self.format {
                Format::Jsonl => report::write_jsonl_finding(out, f).map_err(io_err)?,
                Format::Table => {
                    let n = self.printed.len() + 1;
                    writeln!(out, "{}", table_line(n, f))
                        .and_then(|_| out.flush())
                        .map_err(io_err)?;
                }
                Format::Json => {}
            }
            self.printed
                .insert((f.connection.id, f.request.index as u64));
        }
        self.next = analyzer.finding_count();
        Ok(())
    }
}

fn stats_line(start: Instant, an: &Analyzer, k: Option<CaptureStats>) -> String {
    let kernel = match k {
        Some(k) => format!(
            "kernel received {} dropped {} if_dropped {}",
            k.received, k.dropped, k.if_dropped
        ),
        None => "kernel counters unavailable".into(),
    };
    format!(
        "tcprace: stats: {:.0} s, packets {}, connections open {}, requests {}, findings {}, {}",
        start.elapsed().as_secs_f64(),
        an.packets(),
        an.open_connections(),
        an.requests(),
        an.finding_count(),
        kernel
    )
}

/// The report as a JSON value with the `capture` section added.
pub fn report_value(report: &Report, capture: &CaptureInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(report).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "capture".into(),
            serde_json::to_value(capture).unwrap_or(serde_json::Value::Null),
        );
    }
    v
}

/// Capture from the interface until `stop` is set (or duration/count), streaming findings to
/// `out`; then print the report. Returns the exit code (0 no findings, 1 findings).
pub fn run<W: Write>(opts: &LiveOptions, stop: &AtomicBool, out: &mut W) -> Result<i32, String> {
    let cap_cfg = &opts.capture;
    let mut src = LiveSource::open(cap_cfg).map_err(|e| e.to_string())?;
    eprintln!(
        "tcprace: listening on {}, link-type {}, snapshot length {} bytes{}{}",
        cap_cfg.interface,
        src.datalink_name(),
        cap_cfg.snaplen,
        cap_cfg
            .filter
            .as_ref()
            .map(|f| format!(", filter \"{f}\""))
            .unwrap_or_default(),
        cap_cfg
            .write
            .as_ref()
            .map(|w| format!(", writing {w}"))
            .unwrap_or_default(),
    );
    let mut analyzer = Analyzer::new(opts.config.clone(), src.inputs().to_vec());
    let mut warnings = WarningPrinter::new(opts.max_warnings);
    let mut streamer = Streamer {
        format: opts.format,
        next: 0,
        printed: HashSet::new(),
    };
    let start = Instant::now();
    let deadline = opts
        .duration
        .map(|d| start + Duration::from_secs_f64(d.max(0.0)));
    let stats_every = opts
        .stats_every
        .filter(|s| *s > 0.0)
        .map(Duration::from_secs_f64);
    let mut next_stats = stats_every.map(|s| start + s);
    let mut pkt = Packet::default();
    let stopped_by = loop {
        if stop.load(Ordering::Relaxed) {
            break StopReason::Signal;
        }
        if opts.count.is_some_and(|n| src.frames() >= n) {
            break StopReason::Count;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break StopReason::Duration;
        }
        if let (Some(every), Some(at)) = (stats_every, next_stats)
            && now >= at
        {
            eprintln!("{}", stats_line(start, &analyzer, src.stats()));
            next_stats = Some(at + every * (1 + ((now - at).as_nanos() / every.as_nanos()) as u32));
        }
        match src.read(&mut pkt).map_err(|e| e.to_string())? {
            LiveNext::Packet => {
                if let Some(w) = analyzer.on_packet(&pkt) {
                    warnings.print(&w);
                }
            }
            // Nothing was waiting in the buffer: every packet captured before now has been
            // read, so capture time may advance to the wall clock.
            LiveNext::Timeout => analyzer.tick(wall_clock()),
        }
        streamer.pump(&mut analyzer, out)?;
    };
    let kernel = src.stats().unwrap_or_default();
    let capture = CaptureInfo {
        interface: cap_cfg.interface.clone(),
        datalink: src.datalink_name(),
        snaplen: cap_cfg.snaplen,
        filter: cap_cfg.filter.clone(),
        captured: src.frames(),
        received: kernel.received,
        dropped: kernel.dropped,
        if_dropped: kernel.if_dropped,
        stopped_by: stopped_by.as_str(),
        written_to: cap_cfg.write.clone(),
    };
    src.close_savefile()?;
    drop(src);
    let report = analyzer.finish();
    warnings.done();
    eprintln!(
        "tcprace: stopped ({}) after {:.1} s: {} packets captured, {} received by the kernel, {} dropped, {} dropped by the interface",
        capture.stopped_by,
        start.elapsed().as_secs_f64(),
        capture.captured,
        capture.received,
        capture.dropped,
        capture.if_dropped
    );
    let note = capture.drop_note();
    if let Some(n) = &note {
        eprintln!("tcprace: warning: {n}");
    }
    write_report(out, opts.format, &report, &capture, &streamer.printed).map_err(io_err)?;
    Ok(report.exit_code())
}

fn write_report<W: Write>(
    out: &mut W,
    format: Format,
    report: &Report,
    capture: &CaptureInfo,
    printed: &HashSet<(u64, u64)>,
) -> io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report_value(report, capture))?;
            writeln!(out)?;
        }
        Format::Jsonl => {
            let rest = report
                .findings
                .iter()
                .filter(|f| !printed.contains(&(f.connection.id, f.request.index as u64)));
            for f in rest {
                report::write_jsonl_finding(out, f)?;
            }
            let mut v = report_value(report, capture);
            if let Some(o) = v.as_object_mut() {
                o.remove("findings");
                o.insert("record".into(), "summary".into());
            }
            serde_json::to_writer(&mut *out, &v)?;
            writeln!(out)?;
        }
        Format::Table => {
            if !printed.is_empty() {
                writeln!(out)?;
            }
            report::write_table(out, report)?;
            writeln!(
                out,
                "\nCapture: {} ({}), {} packets captured; kernel: {} received, {} dropped, {} dropped by the interface; stopped by {}",
                capture.interface,
                capture.datalink,
                capture.captured,
                capture.received,
                capture.dropped,
                capture.if_dropped,
                capture.stopped_by
            )?;
            if let Some(n) = capture.drop_note() {
                writeln!(out, "WARNING: {n}")?;
            }
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dropped: u64, if_dropped: u64) -> CaptureInfo {
        CaptureInfo {
            interface: "eth0".into(),
            datalink: "EN10MB".into(),
            snaplen: 262_144,
            filter: Some("tcp port 80".into()),
            captured: 10,
            received: 12,
            dropped,
            if_dropped,
            stopped_by: StopReason::Signal.as_str(),
            written_to: None,
        }
    }

    #[test]
    fn drops_make_a_note() {
        assert_eq!(info(0, 0).drop_note(), None);
        let n = info(3, 1).drop_note().unwrap();
        assert!(n.starts_with("4 packet(s) were dropped"), "{n}");
        assert!(n.contains("verdicts may be incomplete"), "{n}");
    }

    #[test]
    fn capture_section_is_added_to_the_report() {
        let an = Analyzer::new(Config::default(), vec!["eth0".into()]);
        let report = an.finish();
        let v = report_value(&report, &info(2, 0));
        assert_eq!(v["capture"]["interface"], "eth0");
        assert_eq!(v["capture"]["dropped"], 2);
        assert_eq!(v["capture"]["stopped_by"], "signal");
        assert!(v["summary"].is_object() && v["findings"].is_array());
        let mut out = Vec::new();
        write_report(
            &mut out,
            Format::Table,
            &report,
            &info(2, 0),
            &HashSet::new(),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("Capture: eth0 (EN10MB), 10 packets captured"),
            "{text}"
        );
        assert!(text.contains("WARNING: 2 packet(s) were dropped"), "{text}");
    }
}
