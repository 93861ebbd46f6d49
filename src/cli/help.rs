//! Help for people: the usage, the examples and exit codes of `--help` and the man page, hints
//! for options tcpdump or tshark users reach for, and `--generate` (man page, completions).

use super::args::{Args, GenerateArg};
use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap_complete::Shell;
use std::io::{self, Write};

pub const USAGE: &str = "tcprace [OPTIONS] [-r FILE]... [FILE]... [EXPRESSION]
       tcprace [OPTIONS] -i IFACE [EXPRESSION]
       tcprace -D";

pub const AFTER_HELP: &str =
    "Exit codes: 0 no findings, 1 findings, 2 error. Examples: tcprace --help.";

/// Command lines with what they do.
const EXAMPLES: [(&str, &str); 8] = [
    (
        "tcprace capture.pcap",
        "A table of findings with their evidence, the server endpoints, advice.",
    ),
    (
        "tcprace -r a.pcap -r b.pcap.gz tcp port 8080",
        "Two files as one stream, and a BPF filter: the words after the options (as tcpdump).",
    ),
    (
        "tcprace --format json capture.pcapng > report.json",
        "One JSON document for a ticket or a script (schema/report.schema.json).",
    ),
    (
        "tcprace --format jsonl a.pcap | jq -c 'select(.record == \"finding\")'",
        "One JSON object per finding, then a summary object.",
    ),
    (
        "tcpdump -i any -U -w - 'tcp port 8080' | tcprace -",
        "tcpdump's output as it comes (on a quiet link findings wait for the next packet).",
    ),
    (
        "sudo tcprace -i eth0 tcp port 8080",
        "Live: a line per finding as its verdict becomes final, the report on Ctrl-C.",
    ),
    (
        "tcprace -D && sudo tcprace -i 2 -c 100000 -w ticket.pcap",
        "The second interface -D lists; stop after 100000 packets; keep them in a file.",
    ),
    (
        "tcprace --generate man > /usr/local/share/man/man1/tcprace.1",
        "Install the man page (complete-bash, complete-zsh, ...: shell completions).",
    ),
];

const EXIT_STATUS: [(&str, &str); 3] = [
    ("0", "no findings (informational records do not count)"),
    ("1", "at least one finding"),
    (
        "2",
        "error: bad arguments, unreadable file, not a capture, bad filter, no permission",
    ),
];

/// The EXAMPLES and EXIT STATUS sections of `--help`.
pub fn after_long_help() -> String {
    let mut s = String::from("EXAMPLES:\n");
    for (cmd, what) in EXAMPLES {
        s.push_str(&format!("  {cmd}\n      {what}\n"));
    }
    s.push_str("\nEXIT STATUS:\n");
    for (code, what) in EXIT_STATUS {
        s.push_str(&format!("  {code}  {what}\n"));
    }
    s
}

/// What to use instead of an option tcprace does not have (tcpdump's, tshark's).
fn hint_for(arg: &str) -> String {
    let flag = arg.split('=').next().unwrap_or(arg);
    let hint = match flag {
        "-A" | "-X" | "-x" | "-XX" | "-xx" | "-e" | "-q" | "-t" | "-S" | "-K" | "-N" | "-#" => {
            "tcprace prints findings, not packets: --format json has every field of a finding"
        }
        "-l" | "-U" => {
            "findings are written as soon as they are final; one per line: --format jsonl"
        }
        "-Y" | "-R" => {
            "tcprace takes a BPF filter: -f EXPR, or the expression after the files (tcprace -r f.pcap tcp port 80)"
        }
        "-F" => "give the filter itself: -f \"$(cat FILE)\"",
        "-T" => "use --format json or --format jsonl",
        "-B" => "use --buffer-size BYTES",
        "-G" | "-C" | "-W" | "-z" => {
            "-w writes one file; rotate captures with tcpdump -C/-W and give tcprace the files"
        }
        "-y" | "-L" => "the link type is read from the capture; -D lists the interfaces",
        "-Z" => {
            "tcprace keeps the user it runs as; to capture without root, see setcap in the README"
        }
        _ if arg.starts_with("--") => {
            return "'tcprace --help' lists the options".to_string();
        }
        _ => {
            return format!(
                "to read a file of that name: -r ./{arg}; 'tcprace --help' lists the options"
            );
        }
    };
    hint.to_string()
}

/// clap's error for an unknown option, with a hint that names the right option instead of its
/// "to pass '-X' as a value, use '-- -X'" (tcprace's words are files or a filter).
pub fn better_hint(mut e: clap::Error) -> clap::Error {
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let hint = hint_for(arg);
    let similar = e.get(ContextKind::SuggestedArg).is_some();
    let known = !hint.contains("--help");
    if similar && !known {
        // clap's "a similar argument exists" says it
        e.remove(ContextKind::Suggested);
    } else {
        e.insert(
            ContextKind::Suggested,
            ContextValue::StyledStrs(vec![StyledStr::from(hint)]),
        );
    }
    e
}

/// The man page: clap's sections, then EXAMPLES and EXIT STATUS.
fn man_page(out: &mut Vec<u8>) -> io::Result<()> {
    use clap_mangen::roff::{Roff, bold, roman};
    let man = clap_mangen::Man::new(Args::command());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (cmd, what) in EXAMPLES {
        roff.control("TP", []).text([bold(cmd)]).text([roman(what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in EXIT_STATUS {
        roff.control("TP", [])
            .text([bold(code)])
            .text([roman(what)]);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)
}

/// The man page or a completion script.
pub fn generate(kind: GenerateArg, out: &mut impl Write) -> io::Result<()> {
    let mut text = Vec::new();
    let shell = match kind {
        GenerateArg::Man => {
            man_page(&mut text)?;
            None
        }
        GenerateArg::CompleteBash => Some(Shell::Bash),
        GenerateArg::CompleteZsh => Some(Shell::Zsh),
        GenerateArg::CompleteFish => Some(Shell::Fish),
        GenerateArg::CompletePowershell => Some(Shell::PowerShell),
    };
    if let Some(shell) = shell {
        clap_complete::generate(shell, &mut Args::command(), "tcprace", &mut text);
    }
    out.write_all(&text)?;
    out.flush()
}
