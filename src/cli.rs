//! The command line: parses arguments, wires a packet source to the engine and prints the
//! report. Exit codes: 0 no findings, 1 findings, 2 error.

use crate::analyzer::{Analyzer, Config};
use crate::capture::{FileSource, Filter, NextRef, PacketRef, PacketSource, Warning};
use crate::detect::DetectConfig;
use crate::flow::TableConfig;
use crate::report::{self, Format, WarningPrinter, io_err};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

/// Threads the analysis of files is split into (at most; one per core).
const SHARDS: usize = 2;

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
    #[arg(short = 's', long, value_name = "N", default_value_t = crate::capture::DEFAULT_SNAPLEN)]
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
    /// The first live-capture option given without `-i`.
    fn live_only_flag(&self) -> Option<&'static str> {
        [
            (
                self.snaplen != crate::capture::DEFAULT_SNAPLEN,
                "-s/--snaplen",
            ),
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
    if args.list_interfaces {
        return list_interfaces();
    }
    if let Some(iface) = &args.interface {
        return run_live(args, iface);
    }
    if let Some(flag) = args.live_only_flag() {
        return Err(format!(
            "{flag} applies to live capture only (use -i IFACE)"
        ));
    }
    if args.files.is_empty() {
        return Err(
            "no capture file given (use - to read standard input, or -i IFACE to capture live)"
                .into(),
        );
    }
    let mut filter = match &args.filter {
        Some(expr) => Some(Filter::new(expr)?),
        None => None,
    };
    let mut source = FileSource::open(&args.files).map_err(|e| e.to_string())?;
    let names = source.inputs().to_vec();
    let mut filter_errors = std::collections::HashSet::new();
    // whether a packet is analysed (the filter), else why not and what to warn about
    let mut admit = |pkt: &PacketRef<'_>| -> Result<(), (&'static str, Option<Warning>)> {
        let Some(f) = filter.as_mut() else {
            return Ok(());
        };
        match f.matches_ref(pkt) {
            Ok(true) => Ok(()),
            Ok(false) => Err(("filtered_out", None)),
            Err(e) => {
                let w = filter_errors.insert(pkt.linktype).then(|| Warning {
                    file: names[pkt.input].clone(),
                    frame: Some(pkt.frame),
                    message: format!(
                        "filter does not apply to link type {}: {e}; such packets are skipped",
                        pkt.linktype
                    ),
                });
                Err(("filter_unsupported_link_type", w))
            }
        }
    };
    let pb = progress_bar(source.progress().1, !args.no_progress);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if args.format != Format::Jsonl {
        // the whole report at the end: analysed in parallel
        let printer = Arc::new(Mutex::new(WarningPrinter::new(args.max_warnings)));
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get().min(SHARDS));
        let report = crate::parallel::analyze(
            &mut source,
            args.config(),
            shards,
            &mut admit,
            &printer,
            &mut |done| pb.set_position(done),
        )?;
        pb.finish_and_clear();
        if let Ok(p) = printer.lock() {
            p.done();
        }
        match args.format {
            Format::Table => report::write_table(&mut out, &report),
            _ => report::write_json(&mut out, &report),
        }
        .and_then(|_| out.flush())
        .map_err(io_err)?;
        return Ok(report.exit_code());
    }
    let mut analyzer = Analyzer::new(args.config(), names.clone());
    let mut warnings = WarningPrinter::new(args.max_warnings);
    // JSON Lines: findings are written as their verdicts become final
    let mut streamed = 0usize;
    let mut streamed_ids = std::collections::HashSet::new();
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
        if let Err((reason, w)) = admit(&pkt) {
            if let Some(w) = w {
                warnings.print(&w);
                analyzer.warn(w);
            }
            analyzer.skip(reason);
            continue;
        }
        if let Some(w) = analyzer.on_packet_ref(pkt) {
            warnings.print(&w);
        }
        if analyzer.packets().is_multiple_of(4096) {
            pb.set_position(source.progress().0);
        }
        if analyzer.finding_count() > streamed {
            for f in analyzer.findings_since(streamed) {
                report::write_jsonl_finding(&mut out, f).map_err(io_err)?;
                streamed_ids.insert((f.connection.id, f.request.index));
            }
            streamed = analyzer.finding_count();
        }
    }
    pb.finish_and_clear();
    let report = analyzer.finish();
    warnings.done();
    let rest = report
        .findings
        .iter()
        .filter(|f| !streamed_ids.contains(&(f.connection.id, f.request.index)));
    for f in rest {
        report::write_jsonl_finding(&mut out, f).map_err(io_err)?;
    }
    report::write_jsonl_summary(&mut out, &report)
        .and_then(|_| out.flush())
        .map_err(io_err)?;
    Ok(report.exit_code())
}

fn list_interfaces() -> Result<i32, String> {
    let list = crate::capture::list_interfaces()?;
    if list.is_empty() {
        return Err("no interfaces to capture on (live capture needs root or CAP_NET_RAW)".into());
    }
    for (i, d) in list.iter().enumerate() {
        println!("{}.{d}", i + 1);
    }
    Ok(0)
}

fn run_live(args: &Args, iface: &str) -> Result<i32, String> {
    for (name, v) in [
        ("--stats-every", args.stats_every),
        ("--duration", args.duration),
    ] {
        if v.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(format!("{name}: expected a number of seconds >= 0"));
        }
    }
    if args.write.as_deref() == Some("-") {
        return Err("-w -: standard output carries the findings; give a file name".into());
    }
    let opts = crate::live::LiveOptions {
        capture: crate::capture::LiveConfig {
            filter: args.filter.clone(),
            snaplen: args.snaplen.max(1),
            buffer_size: args
                .buffer_size
                .or(Some(crate::capture::DEFAULT_BUFFER_SIZE)),
            promisc: !args.no_promisc,
            write: args.write.clone(),
            ..crate::capture::LiveConfig::new(iface)
        },
        config: args.config(),
        format: args.format,
        stats_every: args.stats_every,
        duration: args.duration,
        count: args.count,
        max_warnings: args.max_warnings,
    };
    let stop = crate::live::install_signal_handlers()?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    crate::live::run(&opts, &stop, &mut out)
}
