//! The arguments checked once and made a [`Command`] with plain settings: nothing below the CLI
//! sees a clap type. Every value is checked here (exit 2 with a message naming the option), and
//! what depends on the terminal (width, colours, borders) is decided here from a [`Terminal`].

use super::args::{Args, ColorArg, FormatArg, GenerateArg};
use crate::capture::{DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, LiveConfig, Ring};
use crate::detect::DetectConfig;
use crate::engine::live::LiveOptions;
use crate::engine::{Config, KeyLog, RunOptions};
use crate::flow::TableConfig;
use crate::metrics::Metrics;
use crate::report::{Format, TableOptions};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

/// `--threads` above this is refused.
const MAX_THREADS: usize = 1024;
/// Seconds values above this are refused (about 31 years).
const MAX_SECS: f64 = 1e9;
/// `--width` below this (but 0) is refused.
const MIN_WIDTH: usize = 40;

/// What to do, with validated settings.
#[derive(Debug)]
pub enum Command {
    ListInterfaces,
    Generate(GenerateArg),
    Files(FilesRun),
    Live(LiveOptions),
}

/// Analyse capture files.
#[derive(Debug)]
pub struct FilesRun {
    pub files: Vec<String>,
    pub filter: Option<String>,
    /// How the filter was found among the words (printed, and added to a filter error).
    pub filter_note: Option<String>,
    pub count: Option<u64>,
    pub format: Format,
    pub table: TableOptions,
    pub run: RunOptions,
    pub progress: bool,
    /// `--report`, `--write-flagged`.
    pub ticket: super::ticket::Ticket,
}

/// What the look of the output depends on besides the arguments.
#[derive(Clone, Debug, Default)]
pub struct Terminal {
    /// Standard output is a terminal.
    pub stdout_tty: bool,
    /// Its width in columns, when it is one.
    pub columns: Option<usize>,
    /// `COLUMNS` from the environment.
    pub columns_env: Option<String>,
    /// `NO_COLOR` is set and not empty.
    pub no_color: bool,
    /// `TERM` is `dumb`.
    pub dumb: bool,
    /// The locale's character set is UTF-8 (`LC_ALL`, `LC_CTYPE`, `LANG`, the first set).
    pub utf8: bool,
}

impl Terminal {
    pub fn detect() -> Terminal {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let stdout = std::io::stdout();
        let locale = var("LC_ALL")
            .or_else(|| var("LC_CTYPE"))
            .or_else(|| var("LANG"));
        Terminal {
            stdout_tty: stdout.is_terminal(),
            columns: terminal_size::terminal_size_of(&stdout).map(|(w, _)| usize::from(w.0)),
            columns_env: var("COLUMNS"),
            no_color: var("NO_COLOR").is_some(),
            dumb: var("TERM").as_deref() == Some("dumb"),
            utf8: locale.is_some_and(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("utf-8") || l.contains("utf8")
            }),
        }
    }
}

/// A number of seconds: finite, > 0 (or >= 0 with `zero_ok`), at most `MAX_SECS`.
fn seconds(name: &str, v: f64, zero_ok: bool) -> Result<f64, String> {
    let low = if zero_ok { ">= 0" } else { "> 0" };
    let problem = if !v.is_finite() {
        format!("expected a finite number of seconds {low}")
    } else if v < 0.0 || (v == 0.0 && !zero_ok) {
        format!("expected a number of seconds {low}")
    } else if v > MAX_SECS {
        format!("expected at most {MAX_SECS} seconds")
    } else {
        return Ok(v);
    };
    Err(format!("{name} {v}: {problem}"))
}

fn at_least_one<T: PartialOrd + From<u8> + std::fmt::Display>(
    name: &str,
    v: T,
) -> Result<T, String> {
    if v >= T::from(1) {
        Ok(v)
    } else {
        Err(format!("{name} {v}: expected at least 1"))
    }
}

/// The words after the options: capture files, then a filter expression (tcpdump's habit).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Words {
    pub files: Vec<String>,
    pub expr: Option<String>,
    /// How the expression was taken, for the user.
    pub note: Option<String>,
}

/// Split the words: the leading ones that are files (or "-") are files, the rest is the filter
/// expression, joined with spaces. With no file at all (no -r either), the first word is a file
/// anyway (it gets "no such file"). Live: every word is the expression.
pub(super) fn split_words(
    words: &[String],
    have_read: bool,
    live: bool,
    is_file: impl Fn(&str) -> bool,
) -> Words {
    let first_expr = if live {
        0
    } else {
        let n = words.iter().take_while(|w| *w == "-" || is_file(w)).count();
        if n == 0 && !have_read && !words.is_empty() {
            1
        } else {
            n
        }
    };
    let (files, rest) = words.split_at(first_expr.min(words.len()));
    let expr = (!rest.is_empty()).then(|| rest.join(" "));
    let note = expr.as_ref().map(|e| {
        if live {
            format!("filter \"{e}\" (the words after the options)")
        } else {
            format!(
                "filter \"{e}\" (the words after the files: \"{}\" is not a file)",
                rest[0]
            )
        }
    });
    Words {
        files: files.to_vec(),
        expr,
        note,
    }
}

impl Args {
    /// Check the arguments and make them a command.
    pub fn validate(self, term: &Terminal) -> Result<Command, String> {
        if let Some(kind) = self.generate {
            return Ok(Command::Generate(kind));
        }
        if self.list_interfaces {
            return Ok(Command::ListInterfaces);
        }
        let live = self.interface.is_some();
        let words = split_words(&self.words, !self.read.is_empty(), live, |w| {
            std::path::Path::new(w).is_file()
        });
        let filter = match (&self.filter, &words.expr) {
            (Some(f), Some(e)) => {
                return Err(format!(
                    "two filters: -f \"{f}\" and {}; give one",
                    words.note.as_deref().unwrap_or(e)
                ));
            }
            (f, e) => f.clone().or_else(|| e.clone()),
        };
        let count = self
            .count
            .map(|c| at_least_one("-c/--count", c))
            .transpose()?;
        if live {
            return self.live(filter, count, term).map(Command::Live);
        }
        if let Some(flag) = self.live_only_flag() {
            return Err(format!(
                "{flag} applies to live capture only (use -i IFACE)"
            ));
        }
        let files: Vec<String> = self.read.iter().chain(&words.files).cloned().collect();
        if files.is_empty() {
            return Err(
                "no capture file given (-r FILE or FILE; - reads standard input; -i IFACE captures live)"
                    .into(),
            );
        }
        let ticket = super::ticket::Ticket::of(&self)?;
        let mut run = self.run_options()?;
        ticket.configure(&mut run, self.format());
        Ok(Command::Files(FilesRun {
            ticket,
            run,
            format: self.format(),
            table: self.table_options(term)?,
            progress: !self.no_progress,
            filter,
            filter_note: words.note.filter(|_| words.expr.is_some()),
            count,
            files,
        }))
    }

    /// `-C MB` and `-W N`: the -w file's ring.
    fn ring(&self) -> Result<Option<Ring>, String> {
        let Some(mb) = self.file_size else {
            if self.file_count.is_some() {
                return Err("-W applies with -C (a ring of files of -C MB each)".into());
            }
            return Ok(None);
        };
        if self.write.is_none() {
            return Err("-C applies with -w FILE".into());
        }
        let bytes = at_least_one("-C/--file-size", mb)?.saturating_mul(1_000_000);
        let files = self
            .file_count
            .map(|n| at_least_one("-W/--file-count", n))
            .transpose()?;
        Ok(Some(Ring { bytes, files }))
    }

    /// The first live-capture option given without `-i`.
    fn live_only_flag(&self) -> Option<&'static str> {
        [
            (self.snaplen != DEFAULT_SNAPLEN, "-s/--snaplen"),
            (self.buffer_size.is_some(), "--buffer-size"),
            (self.immediate, "--immediate"),
            (self.no_promisc, "-p/--no-promiscuous-mode"),
            (self.write.is_some(), "-w/--write"),
            (self.file_size.is_some(), "-C/--file-size"),
            (self.file_count.is_some(), "-W/--file-count"),
            (self.user.is_some(), "-Z/--relinquish-privileges"),
            (self.metrics.is_some(), "--metrics"),
            (
                self.metrics_max_servers != crate::metrics::DEFAULT_MAX_SERVERS,
                "--metrics-max-servers",
            ),
            (self.stats_every.is_some(), "--stats-every"),
            (self.duration.is_some(), "--duration"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }

    pub(super) fn format(&self) -> Format {
        match self.format {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Html => Format::Html,
        }
    }

    /// `--threads`, or the cores available.
    fn threads(&self) -> Result<usize, String> {
        match self.threads {
            Some(n) if n > MAX_THREADS => {
                Err(format!("--threads {n}: expected at most {MAX_THREADS}"))
            }
            Some(n) => at_least_one("--threads", n),
            None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }

    fn run_options(&self) -> Result<RunOptions, String> {
        let threads = self.threads()?;
        Ok(RunOptions {
            config: Config {
                detect: DetectConfig {
                    retry_window: seconds("--retry-window", self.retry_window, true)?,
                    ..DetectConfig::default()
                },
                table: TableConfig {
                    idle_timeout: seconds("--idle-timeout", self.idle_timeout, false)?,
                    max_connections: at_least_one("--max-connections", self.max_connections)?,
                    ..TableConfig::default()
                },
                vxlan_ports: self.vxlan_ports.clone(),
                tls_keys: self.tls_keys()?,
            },
            threads,
            max_warnings: self.max_warnings,
            record: None,
        })
    }

    /// The TLS key log: `--tls-keylog` (unreadable: an error), else `$SSLKEYLOGFILE` when set
    /// (unreadable: a warning, since it may be set for other programs to write).
    fn tls_keys(&self) -> Result<Option<Arc<KeyLog>>, String> {
        if let Some(path) = &self.tls_keylog {
            return KeyLog::load(path)
                .map(|k| Some(Arc::new(k)))
                .map_err(|e| format!("--tls-keylog: {e}"));
        }
        let Some(path) = std::env::var_os("SSLKEYLOGFILE").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let path = path.to_string_lossy();
        match KeyLog::load(&path) {
            Ok(k) => Ok(Some(Arc::new(k))),
            Err(e) => {
                eprintln!("tcprace: warning: SSLKEYLOGFILE: {e} (TLS is analysed without keys)");
                Ok(None)
            }
        }
    }

    /// Width, colours and borders of the table, from the options and the terminal.
    fn table_options(&self, term: &Terminal) -> Result<TableOptions, String> {
        let width = match self.width {
            Some(0) => None,
            Some(w) if w < MIN_WIDTH => {
                return Err(format!(
                    "--width {w}: expected 0 (no limit) or at least {MIN_WIDTH} columns"
                ));
            }
            Some(w) => Some(w),
            None => term
                .columns_env
                .as_deref()
                .and_then(|c| c.trim().parse::<usize>().ok())
                .filter(|&c| c > 0)
                .or(term.columns.filter(|_| term.stdout_tty))
                .map(|c| c.max(MIN_WIDTH)),
        };
        let color = match self.color {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto => term.stdout_tty && !term.no_color && !term.dumb,
        };
        Ok(TableOptions {
            width,
            color,
            ascii: self.ascii || !term.utf8,
            verbose: self.verbose > 0,
        })
    }

    fn live(
        &self,
        filter: Option<String>,
        count: Option<u64>,
        term: &Terminal,
    ) -> Result<LiveOptions, String> {
        let secs = |name: &str, v: Option<f64>| -> Result<Option<Duration>, String> {
            v.map(|s| seconds(name, s, false).map(Duration::from_secs_f64))
                .transpose()
        };
        let stats_every = secs("--stats-every", self.stats_every)?;
        let duration = secs("--duration", self.duration)?;
        if self.write.as_deref() == Some("-") {
            return Err("-w -: standard output carries the findings; give a file name".into());
        }
        let buffer_size = self
            .buffer_size
            .map(|b| at_least_one("--buffer-size", b))
            .transpose()?;
        let interface = self.interface.clone().unwrap_or_default();
        // the flight recorder works on a live capture as on files; the report file not yet
        let ticket = super::ticket::Ticket::of(self)?;
        if ticket.report.is_some() {
            return Err(
                "--report applies to capture files (write one with -w, then --report)".into(),
            );
        }
        let mut run = self.run_options()?;
        ticket.configure(&mut run, self.format());
        let metrics = self.metrics.as_ref().map(|addr| {
            let m = Arc::new(Metrics::new(self.metrics_max_servers));
            run.config.detect.observer = Some(m.clone());
            (addr.clone(), m)
        });
        Ok(LiveOptions {
            capture: LiveConfig {
                filter,
                // as tcpdump: 0 is the default
                snaplen: if self.snaplen == 0 {
                    DEFAULT_SNAPLEN
                } else {
                    self.snaplen
                },
                buffer_size: buffer_size.or(Some(DEFAULT_BUFFER_SIZE)),
                promisc: !self.no_promisc,
                immediate: self.immediate,
                write: self.write.clone(),
                ring: self.ring()?,
                user: self.user.clone(),
                ..LiveConfig::new(&interface)
            },
            run,
            format: self.format(),
            table: self.table_options(term)?,
            stats_every,
            duration,
            count,
            metrics,
            provenance: super::ticket::live_provenance(self.format()),
        })
    }
}
