//! Capture stage: packet sources (capture files, stdin, later live interfaces) and the BPF filter.
//!
//! CONTRACT (the rest of the crate relies on exactly this API):
//! - `FileSource::open(paths)` opens every input up front ("-" is stdin), detects pcap (LE/BE,
//!   µs/ns, the "modified" Kuznetzov variant) or pcapng (any number of interfaces, each with its own
//!   link type and if_tsresol/if_tsoffset), transparently gunzips gzip input, and fails with an
//!   `InputError` naming the file when it cannot be opened or its header is not a capture.
//! - `next()` yields packets of all inputs as one stream, in the order the inputs were given.
//!   A problem inside a file (record cut short, absurd record length, corrupt block) is a
//!   `Next::Warning` naming the file and frame; the reader then goes on with what it can (for a
//!   cut-short or unrecoverable file: the next input). Never panics.
//! - `Filter` compiles a BPF expression with libpcap (one program per link type, lazily) and
//!   applies it to file packets too.

use crate::time::Timestamp;
use std::fmt;

/// LINKTYPE_* values (tcpdump.org/linktypes.html).
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// One captured packet. The caller reuses it between reads; `data` holds the captured bytes.
#[derive(Debug, Default, Clone)]
pub struct Packet {
    /// Index of the input (file) in the list given to the source.
    pub input: usize,
    /// 1-based frame number within its input (Wireshark's numbering).
    pub frame: u64,
    pub ts: Timestamp,
    /// LINKTYPE_* of the interface the packet was captured on.
    pub linktype: u32,
    /// Length of the packet on the wire (>= data.len()).
    pub orig_len: u32,
    /// Captured bytes (caplen = data.len()).
    pub data: Vec<u8>,
}

/// A problem with the input that does not stop the analysis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub file: String,
    pub frame: Option<u64>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.frame {
            Some(n) => write!(f, "{}: frame {}: {}", self.file, n, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A fatal input error: the input cannot be read as a capture at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for InputError {}

/// What `PacketSource::next` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// `pkt` was filled with the next packet.
    Packet,
    /// A non-fatal problem; call `next` again to continue.
    Warning(Warning),
    /// No more packets.
    End,
}

/// Anything that yields packets: capture files, stdin, a live interface.
pub trait PacketSource {
    /// Read the next packet into `pkt`. `Err` only for fatal errors.
    fn next(&mut self, pkt: &mut Packet) -> Result<Next, InputError>;
    /// Display names of the inputs; `Packet::input` indexes this list.
    fn inputs(&self) -> &[String];
    /// Bytes consumed so far and the total when known (for a progress bar).
    fn progress(&self) -> (u64, Option<u64>);
}

/// Capture files (pcap, pcapng, gzip-compressed either) and stdin, read as one stream.
pub struct FileSource {
    _private: (),
}

impl FileSource {
    /// Open every input up front; "-" reads stdin.
    pub fn open(_paths: &[String]) -> Result<FileSource, InputError> {
        todo!("capture helper")
    }
}

impl PacketSource for FileSource {
    fn next(&mut self, _pkt: &mut Packet) -> Result<Next, InputError> {
        todo!("capture helper")
    }
    fn inputs(&self) -> &[String] {
        todo!("capture helper")
    }
    fn progress(&self) -> (u64, Option<u64>) {
        todo!("capture helper")
    }
}

/// A BPF filter compiled by libpcap, one program per link type.
pub struct Filter {
    _private: (),
}

impl Filter {
    /// Compile `expr` (checked against Ethernet); the error is libpcap's message with the expression.
    pub fn new(_expr: &str) -> Result<Filter, String> {
        todo!("capture helper")
    }
    /// Does the packet match? Err when the expression cannot be compiled for this link type.
    pub fn matches(&mut self, _pkt: &Packet) -> Result<bool, String> {
        todo!("capture helper")
    }
}
