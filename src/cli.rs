//! The command line: parses arguments, wires a packet source to the engine and prints the
//! report. Exit codes: 0 no findings, 1 findings, 2 error.

use crate::analyzer::{Analyzer, Config};
use crate::capture::{FileSource, Filter, NextRef, PacketSource, Warning};
use crate::detect::DetectConfig;
use crate::flow::TableConfig;
use crate::report::{self, Format};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Write};

/// Finds HTTP keep-alive races in packet captures: requests sent on connections the peer had
/// already closed (the cause of sporadic 502s behind reverse proxies).
#[derive(Parser, Debug)]
#[command(name = "tcprace", version, about, long_about = None)]
pub struct Args {
    /// Capture files (pcap, pcapng, optionally gzip-compressed), read as one stream in order;
    /// "-" reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// BPF filter expression (libpcap syntax), applied to file packets too.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// A request repeated on another connection to the same server within this many seconds
    /// counts as a retry.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub retry_window: f64,

    /// A connection silent this long is finished; a later packet starts a new one.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    pub idle_timeout: f64,

    /// Track at most this many connections at once (the least recently active is finished).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_connections: usize,

    /// Print at most this many warnings on stderr (all are counted in the report).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_warnings: u64,

    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl Args {
    fn config(&self) -> Config {
        Config {
            detect: DetectConfig {
                retry_window: self.retry_window,
            },
            table: TableConfig {
                idle_timeout: self.idle_timeout,
                max_connections: self.max_connections.max(1),
                ..TableConfig::default()
            },
        }
    }
}

/// Prints warnings to stderr up to a limit.
struct WarningPrinter {
    max: u64,
    seen: u64,
}

impl WarningPrinter {
    fn print(&mut self, w: &Warning) {
        self.seen += 1;
        if self.seen <= self.max {
            eprintln!("tcprace: warning: {w}");
        }
    }

    fn done(&self) {
        if self.seen > self.max {
            eprintln!(
                "tcprace: {} more warnings not shown (see the report)",
                self.seen - self.max
            );
        }
    }
}

fn progress_bar(total: Option<u64>, enabled: bool) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style =
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

/// Entry point of the binary; returns the exit code.
pub fn main() -> i32 {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("tcprace: error: {msg}");
            2
        }
    }
}

fn run(args: &Args) -> Result<i32, String> {
    if args.files.is_empty() {
        return Err("no capture file given (use - to read standard input)".into());
    }
    let mut filter = match &args.filter {
        Some(expr) => Some(Filter::new(expr)?),
        None => None,
    };
    let mut source = FileSource::open(&args.files).map_err(|e| e.to_string())?;
    let inputs = source.inputs().to_vec();
    let mut analyzer = Analyzer::new(args.config(), inputs);
    let mut warnings = WarningPrinter {
        max: args.max_warnings,
        seen: 0,
    };
    let pb = progress_bar(source.progress().1, !args.no_progress);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    // JSON Lines: findings are written as their verdicts become final
    let mut streamed = 0usize;
    let mut streamed_ids = std::collections::HashSet::new();
    let mut filter_errors = std::collections::HashSet::new();
    let names = source.inputs().to_vec();
    loop {
        let pkt = match source.next_ref().map_err(|e| e.to_string())? {
            NextRef::End => break,
            NextRef::Warning(w) => {
                warnings.print(&w);
                analyzer.warn(w);
                continue;
            }
            NextRef::Packet(p) => p,
        };
        if let Some(f) = filter.as_mut() {
            match f.matches_ref(&pkt) {
                Ok(true) => {}
                Ok(false) => {
                    analyzer.skip("filtered_out");
                    continue;
                }
                Err(e) => {
                    if filter_errors.insert(pkt.linktype) {
                        let w = Warning {
                            file: names[pkt.input].clone(),
                            frame: Some(pkt.frame),
                            message: format!(
                                "filter does not apply to link type {}: {e}; such packets are skipped",
                                pkt.linktype
                            ),
                        };
                        warnings.print(&w);
                        analyzer.warn(w);
                    }
                    analyzer.skip("filter_unsupported_link_type");
                    continue;
                }
            }
        }
        if let Some(w) = analyzer.on_packet_ref(pkt) {
            warnings.print(&w);
        }
        if analyzer.packets().is_multiple_of(4096) {
            pb.set_position(source.progress().0);
        }
        if args.format == Format::Jsonl && analyzer.finding_count() > streamed {
            for f in analyzer.take_new_findings(streamed) {
                report::write_jsonl_finding(&mut out, f).map_err(io_err)?;
                streamed_ids.insert((f.connection.id, f.request.index));
            }
            streamed = analyzer.finding_count();
        }
    }
    pb.finish_and_clear();
    let report = analyzer.finish();
    warnings.done();
    match args.format {
        Format::Json => report::write_json(&mut out, &report),
        Format::Table => report::write_table(&mut out, &report),
        Format::Jsonl => {
            let rest = report
                .findings
                .iter()
                .filter(|f| !streamed_ids.contains(&(f.connection.id, f.request.index)));
            for f in rest {
                report::write_jsonl_finding(&mut out, f).map_err(io_err)?;
            }
            report::write_jsonl_summary(&mut out, &report)
        }
    }
    .and_then(|_| out.flush())
    .map_err(io_err)?;
    Ok(report.exit_code())
}

fn io_err(e: io::Error) -> String {
    if e.kind() == io::ErrorKind::BrokenPipe {
        "output closed".into()
    } else {
        format!("writing output: {e}")
    }
}
