//! What goes with an incident ticket: the report file (`--report`) and the provenance it
//! states (the command line, each input's size and SHA-256).

use crate::report::schema::{InputDigest, Provenance, Report};
use crate::report::{Format, io_err, renderer};
use sha2::{Digest, Sha256};
use std::io::{self, Read};

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
        sha256: format!("{:x}", h.finalize()),
    })
}

/// The provenance of a run over `files`; `stdin`: the digest of standard input as it was read.
pub(super) fn provenance(
    files: &[String],
    stdin: Option<InputDigest>,
) -> Result<Provenance, String> {
    let mut inputs = Vec::with_capacity(files.len());
    for f in files {
        if f == "-" {
            inputs.extend(stdin.clone());
            continue;
        }
        inputs.push(
            digest_file(f)
                .map_err(|e| format!("{f}: cannot read it again for its SHA-256: {e}"))?,
        );
    }
    Ok(Provenance {
        command_line: std::env::args().collect(),
        inputs,
    })
}

/// Write the report to `path` in `format`.
pub(super) fn write_report(path: &str, format: Format, report: &Report) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("--report {path}: {e}"))?;
    let mut r = renderer(format, io::BufWriter::new(file), false);
    r.finish(report)
        .map_err(|e| format!("--report {path}: {}", io_err(e)))
}
