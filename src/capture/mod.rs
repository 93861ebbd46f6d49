//! Capture stage: where packets come from. Each packet carries its input, frame number,
//! timestamp, link type and bytes; the decode stage takes it from there.
//!
//! - [`FileSource`] (`file`): capture files (pcap, pcapng, gzip-compressed either) and stdin,
//!   read as one stream on a thread of its own; problems inside a file are [`Warning`]s, an input
//!   that cannot be read as a capture at all is an [`InputError`].
//! - [`LiveSource`] (`live`): live capture from a network interface with libpcap, optionally
//!   written to a pcap file as it is captured.
//! - [`Filter`] (`filter`): a BPF expression compiled by libpcap (one program per link type,
//!   lazily) and applied to file packets too.

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

/// A packet borrowed from its source: the same fields as [`Packet`], without a copy of the
/// bytes.
#[derive(Debug, Clone, Copy)]
pub struct PacketRef<'a> {
    pub input: usize,
    pub frame: u64,
    pub ts: Timestamp,
    pub linktype: u32,
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// A packet kept in a batch of packets: its fields, and where its bytes are in the batch's
/// buffer (a batch holds the bytes of all its packets one after the other).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoredPacket {
    input: u32,
    frame: u64,
    ts: Timestamp,
    linktype: u32,
    orig_len: u32,
    start: u32,
    len: u32,
}

impl StoredPacket {
    /// Append the packet's bytes to `buf` and remember where they are.
    pub(crate) fn store(p: &PacketRef<'_>, buf: &mut Vec<u8>) -> StoredPacket {
        let start = buf.len() as u32;
        buf.extend_from_slice(p.data);
        StoredPacket {
            input: p.input as u32,
            frame: p.frame,
            ts: p.ts,
            linktype: p.linktype,
            orig_len: p.orig_len,
            start,
            len: p.data.len() as u32,
        }
    }

    /// The packet, its bytes borrowed from the batch's buffer `buf`.
    pub(crate) fn get<'a>(&self, buf: &'a [u8]) -> PacketRef<'a> {
        PacketRef {
            input: self.input as usize,
            frame: self.frame,
            ts: self.ts,
            linktype: self.linktype,
            orig_len: self.orig_len,
            data: &buf[self.start as usize..(self.start + self.len) as usize],
        }
    }
}

impl PacketRef<'_> {
    /// An owned copy.
    pub fn to_packet(&self) -> Packet {
        Packet {
            input: self.input,
            frame: self.frame,
            ts: self.ts,
            linktype: self.linktype,
            orig_len: self.orig_len,
            data: self.data.to_vec(),
        }
    }
}

impl Packet {
    pub fn as_ref(&self) -> PacketRef<'_> {
        PacketRef {
            input: self.input,
            frame: self.frame,
            ts: self.ts,
            linktype: self.linktype,
            orig_len: self.orig_len,
            data: &self.data,
        }
    }
}

/// A problem with the input that does not stop the analysis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
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

/// What a [`PacketSource`] produced.
#[derive(Debug)]
pub enum Next<'a> {
    /// The next packet, borrowed from the source until the next call.
    Packet(PacketRef<'a>),
    /// A packet that is not analysed (the filter did not admit it), why, and a warning to
    /// record (once per cause).
    Skipped(&'static str, Option<Box<Warning>>),
    /// A problem with the input; reading goes on. (Boxed: warnings are rare, packets are not,
    /// and this value is moved once per packet.)
    Warning(Box<Warning>),
    /// Nothing arrived for a while (live capture): every packet captured before this wall-clock
    /// time has been read, so capture time may advance to it.
    Idle(Timestamp),
    /// No more packets.
    End,
}

/// Anything that yields packets: capture files and stdin, a live interface.
pub trait PacketSource {
    /// The next packet (or event). `Err` only for fatal errors.
    fn next(&mut self) -> Result<Next<'_>, InputError>;
    /// Display names of the inputs; `PacketRef::input` indexes this list.
    fn inputs(&self) -> &[String];
    /// Bytes consumed so far and the total when known (for a progress bar).
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }
    /// The kernel's counters, for a live capture.
    fn kernel_stats(&mut self) -> Option<CaptureStats> {
        None
    }
}

mod file;
mod filter;
pub use file::{FileSource, StdinDigest, hex};
pub use filter::{Filter, Filtered};

/// Live capture from an interface (libpcap).
mod live;
pub use live::{
    CaptureStats, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, InterfaceInfo, LiveConfig, LiveError,
    LiveSource, list_interfaces, setcap_hint,
};

#[cfg(test)]
mod tests;
