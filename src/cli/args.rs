//! The command line's arguments (clap), as the user types them; `validate` turns them into a
//! [`Command`](super::validate::Command). Options follow tcpdump where it has one (`-r`, `-i`,
//! `-D`, `-c`, `-s`, `-p`, `-w`, `-n`, the filter expression after the options) and ripgrep
//! for the output (`--color`, `--generate`).

use super::help;
use crate::capture::DEFAULT_SNAPLEN;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};

const INPUT: &str = "Input";
const LIVE: &str = "Live capture";
const ANALYSIS: &str = "Analysis";
const OUTPUT: &str = "Output";

/// Finds HTTP keep-alive races in packet captures: requests sent on connections the peer had
/// already closed (the cause of sporadic 502s behind reverse proxies).
#[derive(Parser, Debug)]
#[command(
    name = "tcprace",
    version,
    about,
    long_about = None,
    override_usage = help::USAGE,
    after_help = help::AFTER_HELP,
    after_long_help = help::after_long_help(),
    allow_negative_numbers = true,
    max_term_width = 100
)]
pub struct Args {
    /// Capture files (pcap, pcapng, gzip), read as one stream in the order given ("-":
    /// standard input); then, as with tcpdump, an optional BPF filter expression: the words from
    /// the first one that is not a file on (with -i, all the words).
    #[arg(value_name = "FILE|EXPRESSION", help_heading = INPUT)]
    pub words: Vec<String>,

    /// Read this capture file ("-": standard input); repeatable, read in order before the FILE
    /// words.
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        help_heading = INPUT,
        conflicts_with_all = ["interface", "list_interfaces"]
    )]
    pub read: Vec<String>,

    /// BPF filter expression (libpcap syntax), as an alternative to the words after the files:
    /// set on the live capture, applied to file packets too. It sees packets as captured:
    /// tunnelled traffic needs a filter on the outer headers (e.g. "udp port 4789") or none.
    #[arg(short = 'f', long = "filter", value_name = "EXPR", help_heading = INPUT)]
    pub filter: Option<String>,

    /// Stop after N packets (that passed the filter), from files or live.
    #[arg(short = 'c', long, value_name = "N", help_heading = INPUT)]
    pub count: Option<u64>,

    /// Accepted for tcpdump's habit (-n, -nn): addresses and ports are always shown as numbers.
    #[arg(short = 'n', action = ArgAction::Count, help_heading = INPUT)]
    pub numeric: u8,

    /// Capture live on this interface, by name or by the number -D shows ("any": all
    /// interfaces); findings are printed as their verdicts become final. Needs root or
    /// CAP_NET_RAW.
    #[arg(short = 'i', long = "interface", value_name = "IFACE", help_heading = LIVE)]
    pub interface: Option<String>,

    /// List the interfaces live capture can use, numbered for -i, and exit.
    #[arg(short = 'D', long = "list-interfaces", help_heading = LIVE)]
    pub list_interfaces: bool,

    /// Snapshot length in bytes (payload beyond it is counted by length); 0: 262144.
    #[arg(long, short = 's', value_name = "N", default_value_t = DEFAULT_SNAPLEN, help_heading = LIVE)]
    pub snaplen: u32,

    /// Kernel capture buffer size in bytes [default: 33554432 (32 MiB); in immediate mode
    /// each packet takes a slot of up to ~64 KiB].
    #[arg(long, value_name = "BYTES", help_heading = LIVE)]
    pub buffer_size: Option<u32>,

    /// Hand each packet over as it arrives (libpcap's immediate mode) instead of in blocks
    /// every 50 ms at most: drops packets at a much lower rate; verdicts are not faster.
    #[arg(long, help_heading = LIVE)]
    pub immediate: bool,

    /// Do not put the interface into promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode", help_heading = LIVE)]
    pub no_promisc: bool,

    /// Also write every captured packet to this pcap file (re-analyse it later with identical
    /// results).
    #[arg(short = 'w', long = "write", value_name = "FILE", help_heading = LIVE)]
    pub write: Option<String>,

    /// With -w: start a new file when the current one is larger than MB million bytes (FILE,
    /// FILE1, FILE2, ...; with -W, FILE0 to FILE<N-1>), as tcpdump.
    #[arg(short = 'C', long = "file-size", value_name = "MB", help_heading = LIVE)]
    pub file_size: Option<u64>,

    /// With -C: keep at most N files, overwriting the oldest (a ring), as tcpdump.
    #[arg(short = 'W', long = "file-count", value_name = "N", help_heading = LIVE)]
    pub file_count: Option<u32>,

    /// Drop privileges once the capture is open: run as USER (and its group), without
    /// capabilities, as tcpdump. The -w files are created as USER.
    #[arg(short = 'Z', long = "relinquish-privileges", value_name = "USER", help_heading = LIVE)]
    pub user: Option<String>,

    /// Serve metrics in Prometheus' format at http://ADDR/metrics (e.g. 127.0.0.1:9464):
    /// findings, requests and idle closes per server, packets, drops, connections.
    #[arg(long, value_name = "ADDR", help_heading = LIVE)]
    pub metrics: Option<String>,

    /// --metrics: servers with a label of their own (the rest are counted as "other").
    #[arg(long, value_name = "N", default_value_t = crate::metrics::DEFAULT_MAX_SERVERS, help_heading = LIVE)]
    pub metrics_max_servers: usize,

    /// Print running totals (packets, connections, requests, findings, kernel drops) to stderr
    /// every SECS seconds.
    #[arg(long, value_name = "SECS", help_heading = LIVE)]
    pub stats_every: Option<f64>,

    /// Stop after SECS seconds (also stops on Ctrl-C and SIGTERM).
    #[arg(long, value_name = "SECS", help_heading = LIVE)]
    pub duration: Option<f64>,

    /// A request repeated on another connection to the same server within this many seconds
    /// counts as a retry (>= 0).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, help_heading = ANALYSIS)]
    pub retry_window: f64,

    /// A connection silent this long is finished; a later packet starts a new one (> 0).
    #[arg(long, value_name = "SECS", default_value_t = 600.0, help_heading = ANALYSIS)]
    pub idle_timeout: f64,

    /// Track at most this many connections at once (the least recently active is finished).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, help_heading = ANALYSIS)]
    pub max_connections: usize,

    /// Analyse on N threads, the connections split between them (the report is the same for
    /// any N) [default: the cores available].
    #[arg(long, value_name = "N", help_heading = ANALYSIS)]
    pub threads: Option<usize>,

    /// Also decode UDP packets to this port as VXLAN (besides 4789 and Linux's default 8472);
    /// repeatable.
    #[arg(long = "vxlan-port", value_name = "PORT", help_heading = ANALYSIS)]
    pub vxlan_ports: Vec<u16>,

    /// Decrypt TLS with the secrets of this key log (NSS format: what SSLKEYLOGFILE, Node's
    /// keylog event and openssl -keylogfile write) [default: $SSLKEYLOGFILE when set].
    #[arg(long, value_name = "FILE", help_heading = ANALYSIS)]
    pub tls_keylog: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table, help_heading = OUTPUT)]
    pub format: FormatArg,

    /// Table: also list the requests without response that are not findings (unanswered at the
    /// end of the capture, client closed first).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,

    /// Table: fit N columns (0: no limit) [default: $COLUMNS, else the terminal's width, else
    /// no limit]; below 120 the findings are blocks of lines instead of a table.
    #[arg(long, value_name = "N", help_heading = OUTPUT)]
    pub width: Option<usize>,

    /// Table: when to use colours ("auto": on a terminal, unless NO_COLOR is set).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorArg::Auto, help_heading = OUTPUT)]
    pub color: ColorArg,

    /// Table: ASCII borders (the default when the locale is not UTF-8).
    #[arg(long, help_heading = OUTPUT)]
    pub ascii: bool,

    /// Print at most this many warnings on stderr (all are counted in the report).
    #[arg(long, value_name = "N", default_value_t = 20, help_heading = OUTPUT)]
    pub max_warnings: u64,

    /// No progress bar (it is shown on stderr, for files, when stderr is a terminal).
    #[arg(long, help_heading = OUTPUT)]
    pub no_progress: bool,

    /// Also write the report for an incident ticket to FILE: one self-contained HTML page
    /// (.html) or Markdown (.md), with the inputs' SHA-256 and a ladder diagram per finding.
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub report: Option<String>,

    /// Write the packets of the connections with findings (and of their retries and client
    /// legs) to this pcap file, with their original link type and timestamps (analyses on one
    /// thread).
    #[arg(long, value_name = "FILE", help_heading = OUTPUT)]
    pub write_flagged: Option<String>,

    /// Memory the --write-flagged recorder may hold, in MiB: packets of open connections
    /// waiting for their verdicts (the oldest go first beyond it).
    #[arg(long, value_name = "MIB", default_value_t = 64, help_heading = OUTPUT)]
    pub flagged_memory: u64,

    /// Print a man page or a shell completion script to standard output, and exit.
    #[arg(long, value_enum, value_name = "KIND", help_heading = OUTPUT)]
    pub generate: Option<GenerateArg>,
}

/// Output formats, as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Tables for people
    Table,
    /// One JSON document (schema/report.schema.json)
    Json,
    /// One JSON object per finding as it becomes final, then a summary object
    Jsonl,
    /// Markdown for a ticket's body
    Markdown,
    /// One self-contained HTML page for a ticket
    Html,
}

/// When to use colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

/// What `--generate` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenerateArg {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompletePowershell,
}

impl Args {
    /// The clap command (for parsing, the man page and completions).
    pub fn command() -> clap::Command {
        <Args as CommandFactory>::command()
    }

    /// Parse the process's arguments; clap's error (with a better hint for unknown options)
    /// or the arguments.
    pub fn parse_env() -> Result<Args, clap::Error> {
        let mut cmd = Args::command();
        let parsed = cmd
            .try_get_matches_from_mut(std::env::args_os())
            .and_then(|m| Args::from_arg_matches(&m));
        parsed.map_err(|e| help::better_hint(e).format(&mut cmd))
    }
}
