//! What goes with an incident ticket: the report file (`--report`) and the provenance it
//! states (the command line, each input's size and SHA-256).

use super::args::Args;
use crate::capture::StdinDigest;
use crate::engine::{RecorderConfig, RunError, RunOptions};
use crate::report::schema::{InputDigest, Provenance, Report};
use crate::report::{Format, TableOptions, renderer};
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// What goes with an incident ticket.
#[derive(Debug, Default)]
pub struct Ticket {
    /// The report file and its format.
    pub report: Option<(String, Format)>,
    pub flagged: Option<RecorderConfig>,
}

impl Ticket {
    /// `--report` and `--write-flagged`, checked.
    pub fn of(args: &Args) -> Result<Ticket, String> {
        let report = match &args.report {
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
        if args.write_flagged.as_deref() == Some("-") {
            return Err("--write-flagged -: give a file name".into());
        }
        let flagged = args.write_flagged.as_ref().map(|path| RecorderConfig {
            path: path.clone(),
            max_bytes: (args.flagged_memory.max(1) as usize).saturating_mul(1 << 20),
        });
        Ok(Ticket { report, flagged })
    }

    /// What the run needs for them: ladders traced for a report, the recorder.
    pub fn configure(&self, run: &mut RunOptions, format: Format) {
        run.config.table.trace_segments =
            self.report.is_some() || matches!(format, Format::Html | Format::Markdown);
        run.record = self.flagged.clone();
    }
}

/// The SHA-256 and size of a file, read once more (standard input cannot be: `stdin` gives
/// what was read of it).
fn digest_file(path: &str) -> io::Result<InputDigest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(InputDigest {
        name: path.to_string(),
        bytes,
        sha256: crate::capture::hex(&h.finalize()),
    })
}

/// The provenance of a run over `files`; `stdin`: the digest of standard input as it was read.
pub(super) fn provenance(
    files: &[String],
    stdin: Option<StdinDigest>,
) -> Result<Provenance, RunError> {
    let mut inputs = Vec::with_capacity(files.len());
    for f in files {
        if f == "-" {
            if let Some((bytes, sha256)) = stdin.as_ref().map(StdinDigest::get) {
                inputs.push(InputDigest {
                    name: "standard input".into(),
                    bytes,
                    sha256,
                });
            }
            continue;
        }
        inputs.push(digest_file(f).map_err(|e| {
            RunError::Failed(format!("{f}: cannot read it again for its SHA-256: {e}"))
        })?);
    }
    Ok(Provenance {
        command_line: std::env::args().collect(),
        inputs,
    })
}

/// The provenance of a live run's HTML or Markdown report: its command line (the interface
/// and the kernel's counters are in the report's `capture`).
pub(super) fn live_provenance(format: Format) -> Option<Provenance> {
    matches!(format, Format::Html | Format::Markdown).then(|| Provenance {
        command_line: std::env::args().collect(),
        inputs: Vec::new(),
    })
}

/// Write the report to `path` in `format`.
pub(super) fn write_report(
    path: &str,
    format: Format,
    report: &Report,
    table: &TableOptions,
) -> Result<(), RunError> {
    let fail = |e: io::Error| RunError::Failed(format!("--report {path}: {e}"));
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut r = renderer(format, io::BufWriter::new(file), false, table);
    r.finish(report).map_err(fail)
}
