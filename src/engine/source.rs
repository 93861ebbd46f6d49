//! What the driver loop reads: packets from capture files (and stdin) or a live interface, as
//! one kind of source.

use crate::capture::{FileSource, Filter, NextRef, PacketRef, PacketSource, Warning};
use crate::report::schema::CaptureInfo;
use crate::time::Timestamp;
use std::collections::HashSet;

/// What a source produced.
#[derive(Debug)]
pub enum Next<'a> {
    Packet(PacketRef<'a>),
    /// A packet that is not analysed (e.g. filtered out), with a warning to record once.
    Skipped(&'static str, Option<Warning>),
    /// A problem with the input; reading goes on.
    Warning(Warning),
    /// Nothing arrived for a while: every packet captured before this wall-clock time has been
    /// read, so capture time may advance to it (live capture).
    Idle(Timestamp),
    End,
}

/// Running totals of the analysis, for sources that print them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub packets: u64,
    pub open_connections: usize,
    pub requests: u64,
    pub findings: usize,
}

/// Where packets come from.
pub trait Source {
    /// The next packet (or event). `Err` for fatal errors only.
    fn next(&mut self) -> Result<Next<'_>, String>;
    /// Display names of the inputs; `PacketRef::input` indexes this list.
    fn inputs(&self) -> &[String];
    /// Bytes consumed so far and the total when known (for a progress bar).
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }
    /// Called before each read with the running totals.
    fn status(&mut self, _status: Status) {}
    /// The end of the run: close what is open; a live capture's statistics.
    fn close(&mut self) -> Result<Option<CaptureInfo>, String> {
        Ok(None)
    }
}

/// Capture files (and stdin) with an optional BPF filter applied to every packet.
pub struct FileInput {
    files: FileSource,
    names: Vec<String>,
    filter: Option<Filter>,
    /// Link types the filter does not apply to (warned once each).
    filter_errors: HashSet<u32>,
}

impl FileInput {
    /// Open every input up front; errors name the file.
    pub fn open(paths: &[String], filter: Option<Filter>) -> Result<FileInput, String> {
        let files = FileSource::open(paths).map_err(|e| e.to_string())?;
        Ok(FileInput {
            names: files.inputs().to_vec(),
            files,
            filter,
            filter_errors: HashSet::new(),
        })
    }
}

/// Whether `filter` admits `pkt`; else why not, and what to warn about.
fn admit(
    filter: &mut Filter,
    errors: &mut HashSet<u32>,
    names: &[String],
    pkt: &PacketRef<'_>,
) -> Result<(), (&'static str, Option<Warning>)> {
    match filter.matches_ref(pkt) {
        Ok(true) => Ok(()),
        Ok(false) => Err(("filtered_out", None)),
        Err(e) => {
            let w = errors.insert(pkt.linktype).then(|| Warning {
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
}

impl Source for FileInput {
    fn next(&mut self) -> Result<Next<'_>, String> {
        let pkt = match self.files.next_ref().map_err(|e| e.to_string())? {
            NextRef::End => return Ok(Next::End),
            NextRef::Warning(w) => return Ok(Next::Warning(w)),
            NextRef::Packet(p) => p,
        };
        let Some(filter) = self.filter.as_mut() else {
            return Ok(Next::Packet(pkt));
        };
        match admit(filter, &mut self.filter_errors, &self.names, &pkt) {
            Ok(()) => Ok(Next::Packet(pkt)),
            Err((reason, w)) => Ok(Next::Skipped(reason, w)),
        }
    }

    fn inputs(&self) -> &[String] {
        &self.names
    }

    fn progress(&self) -> (u64, Option<u64>) {
        self.files.progress()
    }
}
