//! The command line: parses the arguments (`args`), validates them once into a command
//! (`validate`), opens the packet source, runs the engine's driver loop and renders the report;
//! `help` has the examples, the hints for unknown options and `--generate`. Exit codes: 0 no
//! findings, 1 findings, 2 error. A closed output (`| head -1`) ends the run quietly, as with
//! ripgrep.

mod args;
mod help;
mod ticket;
mod validate;

#[cfg(test)]
mod tests;

use crate::capture::{FileSource, Filter, Filtered, PacketSource};
use crate::engine::{Analyzer, RunError, RunHooks, run};
use crate::report::{Format, renderer};
use args::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Write};
use std::ops::ControlFlow;
use validate::{Command, FilesRun, Terminal};

/// Entry point of the binary; returns the exit code.
pub fn main() -> i32 {
    let args = match Args::parse_env() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = args
        .validate(&Terminal::detect())
        .map_err(RunError::Failed)
        .and_then(execute);
    match result {
        Ok(code) | Err(RunError::OutputClosed(code)) => code,
        Err(RunError::Failed(msg)) => {
            eprintln!("tcprace: error: {msg}");
            2
        }
    }
}

fn execute(cmd: Command) -> Result<i32, RunError> {
    match cmd {
        Command::ListInterfaces => list_interfaces(),
        Command::Generate(kind) => {
            help::generate(kind, &mut io::stdout().lock())
                .map_err(|e| RunError::output(e, false))?;
            Ok(0)
        }
        Command::Files(f) => run_files(&f),
        Command::Live(mut opts) => {
            opts.capture.interface = interface_by_number(&opts.capture.interface)?;
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

/// What a run over files adds to the loop: a progress bar, and `-c`.
struct FileHooks {
    bar: ProgressBar,
    count: Option<u64>,
}

impl RunHooks for FileHooks {
    fn before_read(
        &mut self,
        _source: &mut dyn PacketSource,
        _analyzer: &Analyzer,
        read: u64,
    ) -> ControlFlow<()> {
        if self.count.is_some_and(|n| read >= n) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn progress(&mut self, done: u64) {
        self.bar.set_position(done);
    }
}

fn run_files(f: &FilesRun) -> Result<i32, RunError> {
    if let Some(note) = &f.filter_note {
        eprintln!("tcprace: {note}");
    }
    let filter = f
        .filter
        .as_deref()
        .map(Filter::new)
        .transpose()
        .map_err(|e| match &f.filter_note {
            Some(note) => format!("{e} (the {note})"),
            None => e,
        })?;
    let ticket = f.ticket.report.is_some() || matches!(f.format, Format::Html | Format::Markdown);
    let files = FileSource::open_with(&f.files, ticket).map_err(|e| e.to_string())?;
    let stdin = files.stdin_digest();
    let mut source: Box<dyn PacketSource> = match filter {
        Some(filter) => Box::new(Filtered::new(files, filter)),
        None => Box::new(files),
    };
    let mut hooks = FileHooks {
        bar: progress_bar(source.progress().1, f.progress),
        count: f.count,
    };
    let out = io::BufWriter::new(io::stdout().lock());
    let mut renderer = renderer(f.format, out, false, &f.table);
    let report = run(source.as_mut(), &f.run, renderer.as_mut(), &mut hooks);
    hooks.bar.finish_and_clear();
    let mut report = report?;
    if ticket {
        report.provenance = Some(ticket::provenance(&f.files, stdin)?);
    }
    let code = report.exit_code();
    renderer
        .finish(&report)
        .map_err(|e| RunError::output(e, code == 1))?;
    if let Some((path, format)) = &f.ticket.report {
        ticket::write_report(path, *format, &report, &f.table)?;
    }
    Ok(code)
}

/// `-i N`: the N-th interface `-D` lists, unless an interface has that name (as tcpdump).
fn interface_by_number(name: &str) -> Result<String, String> {
    let Ok(n) = name.parse::<usize>() else {
        return Ok(name.to_string());
    };
    let list = crate::capture::list_interfaces()?;
    if list.iter().any(|i| i.name == name) {
        return Ok(name.to_string());
    }
    match n.checked_sub(1).and_then(|i| list.get(i)) {
        Some(i) => Ok(i.name.clone()),
        None => Err(format!(
            "-i {n}: there is no interface {n}; tcprace -D lists {} interface(s)",
            list.len()
        )),
    }
}

fn list_interfaces() -> Result<i32, RunError> {
    let list = crate::capture::list_interfaces()?;
    if list.is_empty() {
        return Err(RunError::Failed(
            "no interfaces to capture on (live capture needs root or CAP_NET_RAW)".into(),
        ));
    }
    let mut out = io::stdout().lock();
    let written: io::Result<()> = list
        .iter()
        .enumerate()
        .try_for_each(|(i, d)| writeln!(out, "{}.{d}", i + 1))
        .and_then(|()| out.flush());
    written.map_err(|e| RunError::output(e, false))?;
    Ok(0)
}
