//! The command line's arguments (clap), validated once into a [`Command`]: nothing below the
//! CLI sees a clap type.

use crate::capture::{DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, LiveConfig};
use crate::detect::DetectConfig;
use crate::engine::live::LiveOptions;
use crate::engine::{Config, RunOptions};
use crate::flow::TableConfig;
use crate::report::Format;
use clap::Parser;
use std::time::Duration;

/// Threads the analysis of files is split into (at most; one per core).
const THREADS: usize = 2;

/// Finds HTTP keep-alive races in packet captures: requests sent on connections the peer had
/// already closed (the cause of sporadic 502s behind reverse proxies).
#[derive(Parser, Debug)]
#[command(name = "tcprace", version, about, long_about = None)]
pub struct Args {
    /// Capture files (pcap, pcapng, optionally gzip-compressed), read as one stream in order;
    /// "-" reads standard input.
    #[arg(value_name = "FILE", conflicts_with_all = ["interface", "list_interfaces"])]
    pub files: Vec<String>,

    /// Capture live on this interface ("any": all interfaces); findings are printed as their
    /// verdicts become final. Needs root or CAP_NET_RAW.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,

    /// List the interfaces live capture can use, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Live: snapshot length in bytes (payload beyond it is counted by length).
    #[arg(long, short = 's', value_name = "N", default_value_t = DEFAULT_SNAPLEN)]
    pub snaplen: u32,

    /// Live: kernel capture buffer size in bytes [default: 33554432 (32 MiB); in immediate mode
    /// each packet takes a slot of up to ~64 KiB].
    #[arg(long, value_name = "BYTES")]
    pub buffer_size: Option<u32>,

    /// Live: do not put the interface into promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promisc: bool,

    /// Live: also write every captured packet to this pcap file (re-analyse it later with
    /// identical results).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<String>,

    /// Live: print running totals (packets, connections, requests, findings, kernel drops) to
    /// stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub stats_every: Option<f64>,

    /// Live: stop after SECS seconds (also stops on Ctrl-C and SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Live: stop after N packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,

    /// BPF filter expression (libpcap syntax): set on the live capture, applied to file packets
    /// too.
    #[arg(short = 'f', long = "filter", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,

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

    /// Also write the report for an incident ticket to FILE: one self-contained HTML page
    /// (.html) or Markdown (.md), with the inputs' SHA-256 and a ladder diagram per finding.
    #[arg(long, value_name = "FILE")]
    pub report: Option<String>,

    /// Write the packets of the connections with findings (and of their retries and client
    /// legs) to this pcap file, with their original link type and timestamps (analyses on one
    /// thread).
    #[arg(long, value_name = "FILE")]
    pub write_flagged: Option<String>,

    /// Memory the --write-flagged recorder may hold, in MiB: packets of open connections
    /// waiting for their verdicts (the oldest go first beyond it).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub flagged_memory: u64,
}

/// Output formats, as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Jsonl,
    Markdown,
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Html => Format::Html,
        }
    }
}

/// What to do, with validated settings.
#[derive(Debug)]
pub enum Command {
    ListInterfaces,
    Files(FilesRun),
    Live(LiveOptions),
}

/// Analyse capture files.
#[derive(Debug)]
pub struct FilesRun {
    pub files: Vec<String>,
    pub filter: Option<String>,
    pub format: Format,
    pub run: RunOptions,
    pub progress: bool,
    /// `--report`, `--write-flagged`.
    pub ticket: Ticket,
}

/// What goes with an incident ticket.
#[derive(Debug, Default)]
pub struct Ticket {
    /// The report file and its format.
    pub report: Option<(String, Format)>,
    pub flagged: Option<crate::engine::RecorderConfig>,
}

impl Args {
    /// Check the arguments and make them a command.
    pub fn validate(self) -> Result<Command, String> {
        if self.list_interfaces {
            return Ok(Command::ListInterfaces);
        }
        if self.interface.is_some() {
            return self.live().map(Command::Live);
        }
        if let Some(flag) = self.live_only_flag() {
            return Err(format!(
                "{flag} applies to live capture only (use -i IFACE)"
            ));
        }
        if self.files.is_empty() {
            return Err(
                "no capture file given (use - to read standard input, or -i IFACE to capture live)"
                    .into(),
            );
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(THREADS));
        let ticket = self.ticket()?;
        let mut run = self.run_options(threads);
        run.config.table.trace_segments =
            ticket.report.is_some() || matches!(self.format, FormatArg::Html | FormatArg::Markdown);
        run.record = ticket.flagged.clone();
        Ok(Command::Files(FilesRun {
            ticket,
            run,
            format: self.format.into(),
            progress: !self.no_progress,
            filter: self.filter,
            files: self.files,
        }))
    }

    /// `--report` and `--write-flagged`, checked.
    fn ticket(&self) -> Result<Ticket, String> {
        let report = match &self.report {
            Some(p) => match Format::of_report_file(p) {
                Some(f) => Some((p.clone(), f)),
                None => {
                    return Err(format!(
                        "--report {p}: the name must end in .html or .md (or .json)"
                    ));
                }
            },
            None => None,
        };
        if self.write_flagged.as_deref() == Some("-") {
            return Err("--write-flagged -: give a file name".into());
        }
        let flagged = self
            .write_flagged
            .as_ref()
            .map(|path| crate::engine::RecorderConfig {
                path: path.clone(),
                max_bytes: (self.flagged_memory.max(1) as usize).saturating_mul(1 << 20),
            });
        Ok(Ticket { report, flagged })
    }

    /// The first live-capture option given without `-i`.
    fn live_only_flag(&self) -> Option<&'static str> {
        [
            (self.snaplen != DEFAULT_SNAPLEN, "-s/--snaplen"),
            (self.buffer_size.is_some(), "--buffer-size"),
            (self.no_promisc, "-p/--no-promiscuous-mode"),
            (self.write.is_some(), "-w/--write"),
            (self.stats_every.is_some(), "--stats-every"),
            (self.duration.is_some(), "--duration"),
            (self.count.is_some(), "-c/--count"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    fn run_options(&self, threads: usize) -> RunOptions {
        RunOptions {
            config: Config {
                detect: DetectConfig {
                    retry_window: self.retry_window,
                },
                table: TableConfig {
                    idle_timeout: self.idle_timeout,
                    max_connections: self.max_connections.max(1),
                    ..TableConfig::default()
                },
            },
            threads,
            max_warnings: self.max_warnings,
            record: None,
        }
    }

    fn live(self) -> Result<LiveOptions, String> {
        let seconds = |name: &str, v: Option<f64>| match v {
            Some(s) if !s.is_finite() || s < 0.0 => {
                Err(format!("{name}: expected a number of seconds >= 0"))
            }
            _ => Ok(v.map(Duration::from_secs_f64)),
        };
        let stats_every = seconds("--stats-every", self.stats_every)?;
        let duration = seconds("--duration", self.duration)?;
        if self.write.as_deref() == Some("-") {
            return Err("-w -: standard output carries the findings; give a file name".into());
        }
        let interface = self.interface.clone().unwrap_or_default();
        Ok(LiveOptions {
            capture: LiveConfig {
                filter: self.filter.clone(),
                snaplen: self.snaplen.max(1),
                buffer_size: self.buffer_size.or(Some(DEFAULT_BUFFER_SIZE)),
                promisc: !self.no_promisc,
                write: self.write.clone(),
                ..LiveConfig::new(&interface)
            },
            run: self.run_options(1),
            format: self.format.into(),
            stats_every: stats_every.filter(|s| !s.is_zero()),
            duration,
            count: self.count,
        })
    }
}
