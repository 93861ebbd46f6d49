//! The `-w` file of a live capture, optionally a ring of files (`-C MB -W N`, as tcpdump):
//! when the current file has grown past the size, the next one is started; with a count, the
//! names cycle and the oldest file is overwritten.

use pcap::{Active, Capture, Savefile};

/// `-C` and `-W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Start a new file once the current one holds more than this many bytes.
    pub bytes: u64,
    /// Keep at most this many files (names cycle), else number them on.
    pub files: Option<u32>,
}

/// The name of file number `n` (from 0) of `base`, as tcpdump names them: with a count, every
/// file is numbered with as many digits as the count has (`cap0`..`cap9`, `cap00`..`cap11`);
/// without, the first is `base` itself, then `base1`, `base2`, ...
pub fn ring_name(base: &str, ring: Option<Ring>, n: u64) -> String {
    match ring {
        None => base.to_string(),
        Some(Ring {
            files: Some(count), ..
        }) => {
            let width = count.to_string().len();
            format!("{base}{:0width$}", n % u64::from(count))
        }
        Some(Ring { files: None, .. }) if n == 0 => base.to_string(),
        Some(_) => format!("{base}{n}"),
    }
}

/// pcap's file header and per-record header, in bytes.
const FILE_HEADER: u64 = 24;
const RECORD_HEADER: u64 = 16;

/// Writes captured packets to the `-w` file(s).
pub struct RingWriter {
    base: String,
    ring: Option<Ring>,
    file: Savefile,
    /// Number of the current file (from 0).
    number: u64,
    /// Bytes written to the current file.
    written: u64,
}

impl RingWriter {
    /// Create the first file.
    pub fn create(cap: &Capture<Active>, base: &str, ring: Option<Ring>) -> Result<Self, String> {
        let file = open(cap, &ring_name(base, ring, 0))?;
        Ok(RingWriter {
            base: base.to_string(),
            ring,
            file,
            number: 0,
            written: FILE_HEADER,
        })
    }

    /// Write a packet to the current file.
    pub fn write(&mut self, p: &pcap::Packet<'_>) {
        self.file.write(p);
        self.written += RECORD_HEADER + u64::from(p.header.caplen);
    }

    /// Before the next packet: when the current file is past the size, start the next one
    /// (as tcpdump, a file ends with the packet that took it past the size).
    pub fn rotate_if_full(&mut self, cap: &Capture<Active>) -> Result<(), String> {
        if self.ring.is_none_or(|r| self.written <= r.bytes) {
            return Ok(());
        }
        self.flush()?;
        self.number += 1;
        self.file = open(cap, &self.current())?;
        self.written = FILE_HEADER;
        Ok(())
    }

    /// The file being written.
    pub fn current(&self) -> String {
        ring_name(&self.base, self.ring, self.number)
    }

    pub fn flush(&mut self) -> Result<(), String> {
        self.file
            .flush()
            .map_err(|e| format!("writing {}: {e}", self.current()))
    }
}

fn open(cap: &Capture<Active>, path: &str) -> Result<Savefile, String> {
    cap.savefile(path)
        .map_err(|e| format!("cannot write {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_as_tcpdump_names_them() {
        let ring = |files| {
            Some(Ring {
                bytes: 1_000_000,
                files,
            })
        };
        assert_eq!(ring_name("cap", None, 0), "cap");
        assert_eq!(ring_name("cap", ring(None), 0), "cap");
        assert_eq!(ring_name("cap", ring(None), 12), "cap12");
        assert_eq!(ring_name("cap", ring(Some(3)), 0), "cap0");
        assert_eq!(ring_name("cap", ring(Some(3)), 4), "cap1");
        assert_eq!(ring_name("cap", ring(Some(12)), 3), "cap03");
        assert_eq!(ring_name("cap", ring(Some(12)), 13), "cap01");
    }
}
