//! The driver loop, one for every kind of run: packets from a [`PacketSource`] (capture files,
//! stdin, a live interface) through the analyzers (sharded over threads by connection, see
//! `parallel`) to a [`Renderer`], which gets each finding as its verdict becomes final.

use super::Config;
use super::analyzer::{Analyzer, Clock};
use super::parallel::{Shards, print};
use super::recorder::{FlightRecorder, RecorderConfig};
use crate::capture::{Next, PacketSource};
use crate::report::schema::Report;
use crate::report::{Renderer, WarningPrinter};
use crate::time::Timestamp;
use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// How to run the analysis.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: Config,
    /// Threads to analyse on (shards of the input, by connection); the report is the same for
    /// any number.
    pub threads: usize,
    /// Print at most this many warnings on stderr (all are counted in the report).
    pub max_warnings: u64,
    /// Write the packets of the connections with findings to a pcap file (the flight
    /// recorder; the analysis then runs on one thread).
    pub record: Option<RecorderConfig>,
}

/// Packets between progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// Why a run ended without a report.
#[derive(Debug)]
pub enum RunError {
    /// The input cannot be read, an analysis thread cannot start, the output cannot be written.
    Failed(String),
    /// The output was closed by its reader (`| head -1`): nothing more can be shown, so the run
    /// ends quietly, with this exit code (1 when findings were known, as if written).
    OutputClosed(i32),
}

impl RunError {
    /// An error writing the output; `findings`: whether the output had findings to show.
    pub fn output(e: io::Error, findings: bool) -> RunError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            RunError::OutputClosed(i32::from(findings))
        } else {
            RunError::Failed(format!("writing output: {e}"))
        }
    }
}

impl From<String> for RunError {
    fn from(msg: String) -> RunError {
        RunError::Failed(msg)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Failed(m) => f.write_str(m),
            RunError::OutputClosed(_) => f.write_str("output closed"),
        }
    }
}

/// What a kind of run adds to the loop.
pub trait RunHooks {
    /// Before each read, with the analysis of the driver's own shard so far and the number of
    /// packets `read` from the source (past the filter) whichever shard analyses them: `Break`
    /// ends the run (a live capture's stop conditions, `-c`).
    fn before_read(
        &mut self,
        _source: &mut dyn PacketSource,
        _analyzer: &Analyzer,
        _read: u64,
    ) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// Now and then, the bytes read so far (for a progress bar).
    fn progress(&mut self, _done: u64) {}
}

/// No hooks.
impl RunHooks for () {}

/// Analyse everything `source` yields. Findings are handed to `renderer` as they become final
/// (when it streams), in the same order for any number of threads; the report is returned, for
/// the caller to finish the rendering with.
pub fn run(
    source: &mut dyn PacketSource,
    opts: &RunOptions,
    renderer: &mut dyn Renderer,
    hooks: &mut dyn RunHooks,
) -> Result<Report, RunError> {
    let printer = Arc::new(Mutex::new(WarningPrinter::new(opts.max_warnings)));
    // the recorder keeps the input's order: one analyzer sees everything
    let shards = if opts.record.is_some() {
        1
    } else {
        opts.threads.max(1)
    };
    // --max-connections bounds the whole process: each shard gets its part
    let mut config = opts.config.clone();
    let mut recorder = opts.record.clone().map(FlightRecorder::new);
    config.table.trace_segments |= recorder.is_some();
    config.table.max_connections = config.table.max_connections.div_ceil(shards).max(1);
    let inputs = source.inputs().to_vec();
    renderer
        .begin(&inputs)
        .map_err(|e| RunError::output(e, false))?;
    let mut main = Analyzer::new(config.clone(), inputs.clone());
    main.print_warnings(printer.clone());
    if renderer.streams() {
        main.stream_findings(renderer.keeps_findings());
    }
    let mut others = Shards::start(shards, &config, &inputs, &printer, renderer.streams())?;
    if recorder.is_some() {
        main.log_connections();
    }
    let mut kept = 0usize;
    let mut ordinal = 0u64;
    let mut clock = Clock::default();
    // orders the warnings that come between two packets
    let mut warning_seq = 0u64;
    keylog_warnings(opts, &printer, &mut main, &mut warning_seq);
    let result = loop {
        if hooks.before_read(source, &main, ordinal).is_break() {
            break Ok(());
        }
        let next = match source.next() {
            Ok(n) => n,
            Err(e) => break Err(e.to_string()),
        };
        let epoch = match next {
            Next::End => break Ok(()),
            Next::Warning(w) => {
                print(&printer, &w);
                warning_seq += 1;
                main.warn_at((ordinal, warning_seq), *w);
                false
            }
            Next::Skipped(reason, warning) => {
                if let Some(w) = warning {
                    print(&printer, &w);
                    warning_seq += 1;
                    main.warn_at((ordinal, warning_seq), *w);
                }
                main.skip(reason);
                false
            }
            Next::Idle(wall) => {
                clock.tick(wall);
                true
            }
            Next::Packet(pkt) => {
                ordinal += 1;
                let now = clock.now.max(pkt.ts);
                let len = pkt.data.len();
                others.dispatch(&mut main, pkt, ordinal, now);
                if let Some(rec) = recorder.as_mut() {
                    rec.packet(main.take_last_connection(), ordinal, &pkt);
                }
                if ordinal.is_multiple_of(PROGRESS_EVERY) {
                    hooks.progress(source.progress().0);
                }
                clock.after_packet(now, len)
            }
        };
        if epoch {
            others.end_epoch(&mut main, clock.now);
            let rec = &mut recorder;
            let streamed = main.take_fresh(|f| {
                if let Some(rec) = rec.as_mut() {
                    keep_finding(rec, f);
                }
                renderer.finding(f)
            });
            if let Err(e) = streamed {
                return Err(RunError::output(e, true));
            }
        }
        if let Some(rec) = recorder.as_mut() {
            feed_recorder(rec, &mut main, &mut kept, clock.now, epoch);
        }
    };
    // the shard threads end when their channels close, on errors too
    others.finish(&mut main, clock.now);
    result.map_err(RunError::Failed)?;
    main.take_fresh(|f| renderer.finding(f))
        .map_err(|e| RunError::output(e, true))?;
    if let Ok(p) = printer.lock() {
        p.done();
    }
    let mut report = main.into_report();
    if let Some(mut rec) = recorder {
        for f in &report.findings {
            keep_finding(&mut rec, f);
        }
        let (file, frames) = rec.finish()?;
        annotate_flagged(&mut report, &frames);
        report.flagged = Some(file);
    }
    Ok(report)
}

/// Tell the recorder what ended and what to keep since the last call; on a tick, let it
/// write and drop.
fn feed_recorder(
    rec: &mut FlightRecorder,
    main: &mut Analyzer,
    kept: &mut usize,
    now: Timestamp,
    ticked: bool,
) {
    for c in main.take_ended() {
        rec.ended(c, now);
    }
    for f in main.findings_since(*kept) {
        keep_finding(rec, f);
    }
    *kept = main.finding_count();
    if ticked {
        rec.tick(now);
    }
}

/// The connections a finding's packets are on: its own, its retry's, its client leg's.
fn keep_finding(rec: &mut FlightRecorder, f: &crate::report::schema::Finding) {
    rec.keep(f.connection.id);
    if let Some(r) = &f.retry {
        rec.keep(r.connection);
    }
    if let Some(e) = &f.client_effect {
        rec.keep(e.connection);
    }
}

/// Name each finding's frames in the flagged file.
fn annotate_flagged(report: &mut Report, frames: &super::recorder::FrameMap) {
    let inputs = report.inputs.clone();
    let at = |file: &str, frame: u64| {
        let input = inputs.iter().position(|i| i == file)? as u32;
        frames.get(&(input, frame)).copied()
    };
    for f in &mut report.findings {
        let file = f.request.file.clone();
        f.flagged_frames = Some(crate::report::schema::FlaggedFrames {
            request: at(&file, f.request.frame),
            peer_close: f.peer_close.as_ref().and_then(|c| at(&c.file, c.frame)),
            rst: f.rst.as_ref().and_then(|c| at(&c.file, c.frame)),
            retry: f.retry.as_ref().and_then(|c| at(&c.file, c.frame)),
            client_effect: f.client_effect.as_ref().and_then(|c| at(&c.file, c.frame)),
        });
        if let Some(l) = &mut f.ladder {
            for s in &mut l.segments {
                s.flagged_frame = at(&file, s.frame);
            }
        }
    }
}

/// The TLS key log's lines that did not parse: the first warnings.
fn keylog_warnings(
    opts: &RunOptions,
    printer: &Mutex<WarningPrinter>,
    main: &mut Analyzer,
    seq: &mut u64,
) {
    let warnings = opts.config.tls_keys.as_deref().map(|k| k.warnings());
    for w in warnings.unwrap_or_default() {
        print(printer, w);
        *seq += 1;
        main.warn_at((0, *seq), w.clone());
    }
}
