//! The driver loop, one for every kind of run: packets from a [`PacketSource`] (capture files,
//! stdin, a live interface) through the analyzers (sharded over threads by connection, see
//! `parallel`) to a [`Renderer`], which gets each finding as its verdict becomes final.

use super::Config;
use super::analyzer::{Analyzer, Clock};
use super::parallel::{Shards, print};
use crate::capture::{Next, PacketSource};
use crate::report::schema::Report;
use crate::report::{Renderer, WarningPrinter};
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
    let shards = opts.threads.max(1);
    // --max-connections bounds the whole process: each shard gets its part
    let mut config = opts.config.clone();
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
                if ordinal.is_multiple_of(PROGRESS_EVERY) {
                    hooks.progress(source.progress().0);
                }
                clock.after_packet(now, len)
            }
        };
        if epoch {
            others.end_epoch(&mut main, clock.now);
            if let Err(e) = main.take_fresh(|f| renderer.finding(f)) {
                return Err(RunError::output(e, true));
            }
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
    Ok(main.into_report())
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
