//! The command line: parses and validates the arguments (`args`), opens the packet source,
//! runs the engine's driver loop and renders the report. Exit codes: 0 no findings, 1 findings,
//! 2 error.

mod args;
mod ticket;

use crate::capture::{FileSource, Filter, Filtered, PacketSource};
use crate::engine::{RunHooks, run};
use crate::report::{Format, io_err, renderer};
use args::{Args, Command, FilesRun};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal};

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
    match args.validate().and_then(execute) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("tcprace: error: {msg}");
            2
        }
    }
}

fn execute(cmd: Command) -> Result<i32, String> {
    match cmd {
        Command::ListInterfaces => list_interfaces(),
        Command::Files(f) => run_files(&f),
        Command::Live(opts) => {
            let stop = crate::engine::live::install_signal_handlers()?;
            crate::engine::live::run_live(&opts, &stop, io::BufWriter::new(io::stdout().lock()))
        }
    }
}

fn progress_bar(total: Option<u64>, enabled: bool) -> ProgressBar {
    if !enabled || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

/// A progress bar for reading files.
struct Progress(ProgressBar);

impl RunHooks for Progress {
    fn progress(&mut self, done: u64) {
        self.0.set_position(done);
    }
}

fn run_files(f: &FilesRun) -> Result<i32, String> {
    let filter = f.filter.as_deref().map(Filter::new).transpose()?;
    let files = FileSource::open(&f.files).map_err(|e| e.to_string())?;
    let mut source: Box<dyn PacketSource> = match filter {
        Some(filter) => Box::new(Filtered::new(files, filter)),
        None => Box::new(files),
    };
    let mut progress = Progress(progress_bar(source.progress().1, f.progress));
    let mut renderer = renderer(f.format, io::BufWriter::new(io::stdout().lock()), false);
    let report = run(source.as_mut(), &f.run, renderer.as_mut(), &mut progress);
    progress.0.finish_and_clear();
    let mut report = report?;
    if f.ticket.report.is_some() || matches!(f.format, Format::Html | Format::Markdown) {
        report.provenance = Some(ticket::provenance(&f.files, None)?);
    }
    renderer.finish(&report).map_err(io_err)?;
    if let Some((path, format)) = &f.ticket.report {
        ticket::write_report(path, *format, &report)?;
    }
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
