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
use flate2::read::MultiGzDecoder;
use pcap_parser::pcapng::{Block, InterfaceDescriptionBlock, OptionCode};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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

/// What [`FileSource::next_ref`] produced.
#[derive(Debug)]
pub enum NextRef<'a> {
    Packet(PacketRef<'a>),
    Warning(Warning),
    End,
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

/// Captured length above which a record is considered corrupt (libpcap's own limit is 256 KiB for
/// most link types).
const MAX_CAPLEN: u32 = 256 * 1024;
/// Largest pcapng packet block (EPB/SPB/OPB) we buffer: a maximal packet plus room for options.
const MAX_PACKET_BLOCK: u32 = MAX_CAPLEN + 64 * 1024;
/// Largest other pcapng block (name resolution, secrets, ...) we buffer.
const MAX_BLOCK: u32 = 16 * 1024 * 1024;
/// Initial size of the read buffer of a pcapng input; it grows (up to the limits above) on demand.
/// (pcap-parser reports some corrupt blocks differently depending on the buffer size.)
const BUF_SIZE: usize = 64 * 1024;
/// Size of the read buffer of a classic pcap input (always holds a maximal record).
const PCAP_BUF: usize = 1024 * 1024;
/// A batch is sent to the consumer when it holds this many items (packets and warnings) ...
const BATCH_ITEMS: usize = 4096;
/// ... or this many packet bytes.
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Batches in circulation between the reader thread and the consumer: at most about
/// `BATCHES * BATCH_BYTES` of packet data is buffered. Big batches mean few thread wake-ups
/// (each costs the consumer a futex wake); measured best with 4096 / 2 MiB / 3.
const BATCHES: usize = 3;
/// Capacity of a batch's packet buffer: it never needs to grow (a batch is full once it holds
/// `BATCH_BYTES`, and no packet is larger than a maximal pcapng packet block).
const BATCH_CAP: usize = BATCH_BYTES + MAX_PACKET_BLOCK as usize;

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const OPB_TYPE: u32 = 2;
const SPB_TYPE: u32 = 3;
const EPB_TYPE: u32 = 6;

/// Counts the bytes read from the underlying file (compressed bytes for gzip input).
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
    /// Set when a read returned less than asked: the source (a pipe) has nothing more for now,
    /// so the reader thread hands over what it has instead of waiting for a full batch.
    starved: Option<Arc<AtomicBool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(flag) = &self.starved
            && n < buf.len()
        {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Retries interrupted reads and remembers the last error message (pcap-parser only reports
/// "read error").
struct KeepError<R> {
    inner: R,
    error: Arc<Mutex<Option<String>>>,
}

impl<R: Read> Read for KeepError<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Ok(mut slot) = self.error.lock() {
                        *slot = Some(e.to_string());
                    }
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }
}

/// Read until `buf` is full or the input ends.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
        linktype: u32,
    },
    PcapNg,
}

/// An input whose header was checked; `head` holds the bytes already read from `read`.
struct Stream {
    read: Box<dyn Read + Send>,
    head: Vec<u8>,
    format: Format,
    error: Arc<Mutex<Option<String>>>,
}

fn u16_at(d: &[u8], at: usize, be: bool) -> u16 {
    let b = [d[at], d[at + 1]];
    if be {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn u32_at(d: &[u8], at: usize, be: bool) -> u32 {
    let b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
    if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn hex_prefix(d: &[u8]) -> String {
    d.iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Open one input (a path or "-"), gunzip it when it starts with the gzip magic, and check its
/// capture header. Returns the stream and the size of the file when it is a regular file.
fn open_stream(
    name: &str,
    count: &Arc<AtomicU64>,
    starved: &Arc<AtomicBool>,
) -> Result<(Stream, Option<u64>), String> {
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = if name == "-" {
        (Box::new(io::stdin()), None)
    } else {
        let f = File::open(name).map_err(|e| format!("cannot open: {e}"))?;
        let md = f.metadata().map_err(|e| format!("cannot open: {e}"))?;
        if md.is_dir() {
            return Err("is a directory, not a capture file".to_string());
        }
        let size = md.is_file().then_some(md.len());
        (Box::new(f), size)
    };
    let mut raw = Counted {
        inner: raw,
        count: count.clone(),
        starved: (name == "-").then(|| starved.clone()),
    };
    let read_err = |e: io::Error| format!("read error: {e}");
    let mut magic = [0u8; 2];
    let n = read_full(&mut raw, &mut magic).map_err(read_err)?;
    let raw = io::Cursor::new(magic[..n].to_vec()).chain(raw);
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let inner: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let error = Arc::new(Mutex::new(None));
    let mut read: Box<dyn Read + Send> = Box::new(KeepError {
        inner,
        error: error.clone(),
    });
    let what = match (gzip, name == "-") {
        (true, _) => "gzip data",
        (false, true) => "input",
        (false, false) => "file",
    };
    let mut head = vec![0u8; 28];
    let n = read_full(&mut read, &mut head).map_err(|e| {
        if gzip {
            format!("cannot decompress gzip input: {e}")
        } else {
            read_err(e)
        }
    })?;
    head.truncate(n);
    if n == 0 {
        return Err(format!("empty {what}, not a pcap or pcapng capture"));
    }
    let format = read_format(&mut head, &mut read, gzip)?;
    Ok((
        Stream {
            read,
            head,
            format,
            error,
        },
        size,
    ))
}

/// The capture format from the first bytes (`head`); a pcapng section header is read whole
/// into `head` (from `read`) and checked.
fn read_format(
    head: &mut Vec<u8>,
    read: &mut Box<dyn Read + Send>,
    gzip: bool,
) -> Result<Format, String> {
    let n = head.len();
    if n >= 4 && head[..4] == SHB_TYPE.to_le_bytes() {
        if n < 28 {
            return Err(format!(
                "pcapng section header cut short ({n} of at least 28 bytes)"
            ));
        }
        let be = match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
            0x1A2B_3C4D => false,
            0x4D3C_2B1A => true,
            _ => return Err("pcapng section header with a bad byte-order magic".to_string()),
        };
        let (major, minor) = (u16_at(head, 12, be), u16_at(head, 14, be));
        if major != 1 {
            return Err(format!("unsupported pcapng version {major}.{minor}"));
        }
        let len = u32_at(head, 4, be) as usize;
        if len < 28 || !len.is_multiple_of(4) || len > MAX_BLOCK as usize {
            return Err(format!("pcapng section header with a bad length ({len})"));
        }
        head.resize(len, 0);
        let got = read_full(read, &mut head[28..]).map_err(|e| format!("read error: {e}"))?;
        if got < len - 28 {
            return Err(format!(
                "pcapng section header cut short ({} of {len} bytes)",
                28 + got
            ));
        }
        check_shb_options(head, be)?;
        if let Err(e) = pcap_parser::pcapng::parse_sectionheaderblock(head) {
            let detail = match e {
                pcap_parser::nom::Err::Incomplete(_) => "cut short".to_string(),
                pcap_parser::nom::Err::Error(e) | pcap_parser::nom::Err::Failure(e) => {
                    parse_error_kind(&e)
                }
            };
            return Err(format!("corrupt pcapng section header ({detail})"));
        }
        return Ok(Format::PcapNg);
    }
    let magic = if n >= 4 {
        u32::from_le_bytes([head[0], head[1], head[2], head[3]])
    } else {
        0
    };
    let (big_endian, nanos, modified) = match magic {
        0xA1B2_C3D4 => (false, false, false),
        0xA1B2_3C4D => (false, true, false),
        0xA1B2_CD34 => (false, false, true),
        0xD4C3_B2A1 => (true, false, false),
        0x4D3C_B2A1 => (true, true, false),
        0x34CD_B2A1 => {
            return Err("big-endian \"modified\" pcap is not supported".to_string());
        }
        _ => {
            let more = if gzip { " after gunzip" } else { "" };
            return Err(format!(
                "not a pcap or pcapng capture (starts with bytes {}{more})",
                hex_prefix(head)
            ));
        }
    };
    if n < 24 {
        return Err(format!("pcap file header cut short ({n} of 24 bytes)"));
    }
    let (major, minor) = (u16_at(head, 4, big_endian), u16_at(head, 6, big_endian));
    if major != 2 {
        return Err(format!("unsupported pcap version {major}.{minor}"));
    }
    // The upper bits of the link-type field carry FCS information.
    let linktype = u32_at(head, 20, big_endian) & 0xFFFF;
    Ok(Format::Pcap {
        big_endian,
        nanos,
        modified,
        linktype,
    })
}

/// pcap-parser accepts a section header whose options overrun the block or whose trailing length
/// differs; libpcap and Wireshark refuse such files, and so do we.
fn check_shb_options(shb: &[u8], be: bool) -> Result<(), String> {
    let len = shb.len();
    let end = len - 4;
    let mut at = 24;
    while at + 4 <= end {
        let (code, olen) = (u16_at(shb, at, be), usize::from(u16_at(shb, at + 2, be)));
        if code == 0 {
            break;
        }
        let padded = (olen + 3) & !3;
        if at + 4 + padded > end {
            return Err(format!(
                "corrupt pcapng section header (option {code} of length {olen} overruns the \
                 block)"
            ));
        }
        at += 4 + padded;
    }
    let trailing = u32_at(shb, len - 4, be) as usize;
    if trailing != len {
        return Err(format!(
            "corrupt pcapng section header (trailing length {trailing} differs from {len})"
        ));
    }
    Ok(())
}

fn parse_error_kind<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("parse error: {}", kind.description())
        }
        PcapError::HeaderNotRecognized => "block not recognized".to_string(),
        PcapError::Eof | PcapError::UnexpectedEof | PcapError::Incomplete(_) => {
            "cut short".to_string()
        }
        PcapError::BufferTooSmall => "block too large".to_string(),
        PcapError::ReadError => "read error".to_string(),
    }
}

type Reader = Box<dyn PcapReaderIterator + Send>;

fn make_reader(s: Stream) -> Result<Reading, String> {
    let mut st = ReadState {
        paused: false,
        format: s.format,
        ng_be: false,
        ifaces: Vec::new(),
        frame: 0,
        last_ts: Timestamp::default(),
        warned_caplen: false,
        warned_frac: false,
        approved: false,
        error: s.error,
        cap: 0,
        stalls: 0,
    };
    match s.format {
        Format::Pcap {
            big_endian,
            nanos,
            modified,
            linktype,
        } => {
            // `head` holds the 24-byte file header and possibly the start of the first record.
            let rest = s.head.get(24..).unwrap_or_default();
            let mut buf = vec![0u8; PCAP_BUF].into_boxed_slice();
            buf[..rest.len()].copy_from_slice(rest);
            st.cap = PCAP_BUF;
            Ok(Reading::Pcap(Box::new(PcapFile {
                read: s.read,
                end: rest.len(),
                buf,
                pos: 0,
                eof: false,
                big_endian,
                nanos,
                header: if modified { 24 } else { 16 },
                linktype,
                st,
            })))
        }
        Format::PcapNg => {
            let cap = BUF_SIZE.max(s.head.len() + 4096);
            let src = io::Cursor::new(s.head).chain(s.read);
            let reader: Reader = Box::new(
                PcapNGReader::new(cap, src).map_err(|e| format!("bad pcapng header: {e}"))?,
            );
            st.cap = cap;
            Ok(Reading::Ng(Box::new(NgFile { reader, st })))
        }
    }
}

/// The warning for a pcap record whose captured length is beyond any real packet.
fn absurd_caplen(frame: u64, caplen: u32) -> (Option<u64>, String) {
    (
        Some(frame),
        format!(
            "record claims an absurd length of {caplen} captured bytes (limit {MAX_CAPLEN}); the \
             rest of the file is skipped"
        ),
    )
}

/// Timestamp units per second for an if_tsresol value: 10^n, or 2^n when the high bit is set.
/// (pcap-parser's `build_ts_resolution` rejects every binary resolution.)
fn ts_units(tsresol: u8) -> Option<u64> {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n).filter(|_| n < 64)
    }
}

/// A pcapng interface (IDB) of the current section.
struct Iface {
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second (if_tsresol).
    units: u64,
    /// if_tsoffset, seconds.
    offset: i64,
}

impl Iface {
    fn new(idb: &InterfaceDescriptionBlock<'_>, be: bool) -> (Iface, Option<String>) {
        let mut warn = None;
        let units = match ts_units(idb.if_tsresol) {
            Some(u) => u,
            None => {
                warn = Some(format!(
                    "interface with an invalid if_tsresol {:#04x}; using microseconds",
                    idb.if_tsresol
                ));
                1_000_000
            }
        };
        // pcap-parser reads if_tsoffset as little-endian whatever the section's byte order.
        let mut offset = 0;
        for opt in &idb.options {
            if opt.code == OptionCode::IfTsoffset && opt.value.len() >= 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&opt.value[..8]);
                offset = if be {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                };
            }
        }
        let iface = Iface {
            linktype: u32::from(idb.linktype.0 as u16),
            snaplen: idb.snaplen,
            units,
            offset,
        };
        (iface, warn)
    }

    fn timestamp(&self, high: u32, low: u32) -> Timestamp {
        let t = (u64::from(high) << 32) | u64::from(low);
        let secs = i64::try_from(t / self.units).unwrap_or(i64::MAX);
        let frac = u128::from(t % self.units);
        let nanos = (frac * 1_000_000_000 / u128::from(self.units)) as i64;
        Timestamp::from_secs_nanos(secs.saturating_add(self.offset), nanos)
    }
}

/// Reading state of the open input, apart from the reader itself (so that it can be updated while
/// a block borrowed from the reader is alive).
struct ReadState {
    /// The reader stopped once before its next read (see `Step::WillRead`).
    paused: bool,
    format: Format,
    /// Byte order of the current pcapng section.
    ng_be: bool,
    ifaces: Vec<Iface>,
    /// Number of the last frame handled.
    frame: u64,
    /// Timestamp of the last packet (used for simple packet blocks, which have none).
    last_ts: Timestamp,
    warned_caplen: bool,
    warned_frac: bool,
    /// The record at the head of the buffer already produced its warning: deliver it now.
    approved: bool,
    error: Arc<Mutex<Option<String>>>,
    /// Current capacity of the reader's buffer.
    cap: usize,
    /// Refills in a row that brought no data.
    stalls: u32,
}

/// What to do after looking at the reader's next item.
enum Act {
    Consume(usize),
    Deliver(usize),
    /// Warn, keep the record (it is delivered on the next call).
    Warn(Option<u64>, String),
    /// Warn and drop the block.
    WarnConsume(usize, Option<u64>, String),
    Stop(Option<u64>, String),
    Refill,
    TooSmall,
    UnexpectedEof,
    End,
}

/// Outcome of one step on the open input.
enum Step {
    Packet,
    /// The reader is about to read more input, which may block (a pipe): a chance to hand over
    /// what the batch holds first. The next `step` reads.
    WillRead,
    Warn(Option<u64>, String),
    /// The input is finished, possibly with a last warning.
    Finished(Option<(Option<u64>, String)>),
}

/// Where the next record/block starts and how long it claims to be.
struct Peek {
    /// Total length of the record/block including its headers.
    len: u64,
    /// Length of the part that holds the length fields.
    header: usize,
    is_packet: bool,
    /// The caplen of a pcap record.
    caplen: Option<u32>,
}

impl ReadState {
    fn peek(&self, d: &[u8]) -> Option<Peek> {
        match self.format {
            Format::Pcap {
                big_endian,
                modified,
                ..
            } => {
                let header = if modified { 24 } else { 16 };
                if d.len() < 16 {
                    return None;
                }
                let caplen = u32_at(d, 8, big_endian);
                Some(Peek {
                    len: header as u64 + u64::from(caplen),
                    header,
                    is_packet: true,
                    caplen: Some(caplen),
                })
            }
            Format::PcapNg => {
                if d.len() < 12 {
                    return None;
                }
                let ty_le = u32_at(d, 0, false);
                let be = if ty_le == SHB_TYPE {
                    u32_at(d, 8, false) == 0x4D3C_2B1A
                } else {
                    self.ng_be
                };
                let ty = u32_at(d, 0, be);
                Some(Peek {
                    len: u64::from(u32_at(d, 4, be)),
                    header: 8,
                    is_packet: matches!(ty, OPB_TYPE | SPB_TYPE | EPB_TYPE),
                    caplen: None,
                })
            }
        }
    }

    /// Check the lengths of the next record/block before asking the parser for it.
    fn precheck(&self, d: &[u8], file_header_pending: bool) -> Option<(Option<u64>, String)> {
        if file_header_pending {
            return None;
        }
        let p = self.peek(d)?;
        let next = self.frame + 1;
        if let Some(caplen) = p.caplen {
            return (caplen > MAX_CAPLEN).then(|| absurd_caplen(next, caplen));
        }
        let limit = if p.is_packet {
            MAX_PACKET_BLOCK
        } else {
            MAX_BLOCK
        };
        if p.len < 12 || !p.len.is_multiple_of(4) || p.len > u64::from(limit) {
            let frame = p.is_packet.then_some(next);
            return Some((
                frame,
                format!(
                    "corrupt pcapng block after frame {} (block length {}); the rest of the \
                     file is skipped",
                    self.frame, p.len
                ),
            ));
        }
        None
    }

    fn cut_short(&self, d: &[u8]) -> (Option<u64>, String) {
        let next = self.frame + 1;
        match self.peek(d) {
            Some(p) if d.len() >= p.header => {
                let got = d.len() as u64;
                if let Some(caplen) = p.caplen {
                    let got = got - p.header as u64;
                    (
                        Some(next),
                        format!(
                            "capture cut short in the middle of frame {next} (got {got} of \
                             {caplen} bytes)"
                        ),
                    )
                } else if p.is_packet {
                    (
                        Some(next),
                        format!(
                            "capture cut short in the middle of frame {next} (got {got} of {} \
                             block bytes)",
                            p.len
                        ),
                    )
                } else {
                    (
                        None,
                        format!(
                            "capture cut short in the middle of a block after frame {} (got \
                             {got} of {} bytes)",
                            self.frame, p.len
                        ),
                    )
                }
            }
            _ => {
                let (header, what) = match self.format {
                    Format::Pcap { modified: true, .. } => (24, "record header"),
                    Format::Pcap { .. } => (16, "record header"),
                    Format::PcapNg => (12, "block header"),
                };
                (
                    Some(next),
                    format!(
                        "capture cut short in the middle of frame {next} (got {} of {header} \
                         bytes of its {what})",
                        d.len()
                    ),
                )
            }
        }
    }

    fn read_error(&self) -> String {
        let detail = self
            .error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "unknown error".to_string());
        format!(
            "read error after frame {}: {detail}; the rest of the file is skipped",
            self.frame
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        consume: usize,
        input: usize,
        linktype: u32,
        ts: Timestamp,
        orig_len: u32,
        data: &[u8],
        bad_fraction: Option<String>,
        out: &mut Batch,
    ) -> Act {
        let frame = self.frame + 1;
        if !self.approved {
            if data.len() as u64 > u64::from(orig_len) && !self.warned_caplen {
                self.warned_caplen = true;
                self.approved = true;
                return Act::Warn(
                    Some(frame),
                    format!(
                        "captured length {} exceeds the original length {orig_len}; the \
                         captured length is used (not reported again for this file)",
                        data.len()
                    ),
                );
            }
            if let Some(what) = bad_fraction
                && !self.warned_frac
            {
                self.warned_frac = true;
                self.approved = true;
                return Act::Warn(
                    Some(frame),
                    format!(
                        "invalid timestamp ({what}); normalised (not reported again for this \
                         file)"
                    ),
                );
            }
        }
        self.approved = false;
        self.frame = frame;
        self.last_ts = ts;
        let start = out.data.len();
        out.data.extend_from_slice(data);
        out.items.push(Item::Packet {
            input,
            frame,
            ts,
            linktype,
            orig_len: orig_len.max(data.len() as u32),
            start,
            len: data.len(),
        });
        Act::Deliver(consume)
    }

    /// A pcapng block that is not a packet we can deliver.
    fn skip_packet(&mut self, consume: usize, message: String) -> Act {
        self.frame += 1;
        Act::WarnConsume(consume, Some(self.frame), message)
    }

    fn ng_block(&mut self, len: usize, block: &Block<'_>, input: usize, out: &mut Batch) -> Act {
        match block {
            Block::SectionHeader(shb) => {
                if shb.major_version != 1 {
                    return Act::Stop(
                        None,
                        format!(
                            "section with unsupported pcapng version {}.{} after frame {}; \
                             the rest of the file is skipped",
                            shb.major_version, shb.minor_version, self.frame
                        ),
                    );
                }
                self.ng_be = shb.big_endian();
                self.ifaces.clear();
                Act::Consume(len)
            }
            Block::InterfaceDescription(idb) => {
                let (iface, warn) = Iface::new(idb, self.ng_be);
                self.ifaces.push(iface);
                match warn {
                    Some(w) => Act::WarnConsume(len, None, w),
                    None => Act::Consume(len),
                }
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = self.ifaces.get(epb.if_id as usize) else {
                    let n = self.ifaces.len();
                    return self.skip_packet(
                        len,
                        format!(
                            "packet on interface {} but the section describes {n} \
                             interface(s); packet skipped",
                            epb.if_id
                        ),
                    );
                };
                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                let (linktype, ts) = (iface.linktype, iface.timestamp(epb.ts_high, epb.ts_low));
                self.deliver(len, input, linktype, ts, epb.origlen, data, None, out)
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = self.ifaces.first() else {
                    return self.skip_packet(
                        len,
                        "simple packet block without an interface; packet skipped".to_string(),
                    );
                };
                let mut caplen = (spb.origlen as usize).min(spb.data.len());
                if iface.snaplen > 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                let (linktype, ts) = (iface.linktype, self.last_ts);
                self.deliver(
                    len,
                    input,
                    linktype,
                    ts,
                    spb.origlen,
                    &spb.data[..caplen],
                    None,
                    out,
                )
            }
            Block::Unknown(ub) => {
                let ty = if self.ng_be {
                    ub.block_type.swap_bytes()
                } else {
                    ub.block_type
                };
                if ty != OPB_TYPE {
                    return Act::Consume(len);
                }
                // Obsolete packet block: if_id u16, drops u16, ts high/low, caplen, origlen.
                let d = ub.data;
                let be = self.ng_be;
                let caplen = if d.len() >= 20 {
                    u32_at(d, 12, be) as usize
                } else {
                    usize::MAX
                };
                if caplen > d.len() - 20.min(d.len()) {
                    return Act::Stop(
                        Some(self.frame + 1),
                        "corrupt obsolete packet block; the rest of the file is skipped"
                            .to_string(),
                    );
                }
                let if_id = u16_at(d, 0, be);
                let Some(iface) = self.ifaces.get(usize::from(if_id)) else {
                    let n = self.ifaces.len();
                    return self.skip_packet(
                        len,
                        format!(
                            "packet on interface {if_id} but the section describes {n} \
                             interface(s); packet skipped"
                        ),
                    );
                };
                let ts = iface.timestamp(u32_at(d, 4, be), u32_at(d, 8, be));
                let (linktype, orig) = (iface.linktype, u32_at(d, 16, be));
                self.deliver(
                    len,
                    input,
                    linktype,
                    ts,
                    orig,
                    &d[20..20 + caplen],
                    None,
                    out,
                )
            }
            _ => Act::Consume(len),
        }
    }
}

/// One item of a batch, in stream order.
enum Item {
    /// A packet; its bytes are `data[start..start + len]` of the batch.
    Packet {
        input: usize,
        frame: u64,
        ts: Timestamp,
        linktype: u32,
        orig_len: u32,
        start: usize,
        len: usize,
    },
    Warning(Warning),
}

/// Packets and warnings handed from the reader thread to the consumer in one go. Batches are
/// recycled (sent back to the reader once consumed), so their buffers are allocated only once.
/// (Copying each packet into the caller's `Packet` measured faster than swapping `Packet`s with
/// the caller: one contiguous buffer per batch is friendlier to the caches.)
struct Batch {
    items: Vec<Item>,
    /// The bytes of all packets of the batch, one after the other.
    data: Vec<u8>,
    /// The stream ends after this batch.
    end: bool,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            items: Vec::with_capacity(BATCH_ITEMS),
            data: Vec::with_capacity(BATCH_CAP),
            end: false,
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= BATCH_ITEMS || self.data.len() >= BATCH_BYTES
    }

    fn warn(&mut self, file: &str, frame: Option<u64>, message: String) {
        self.items.push(Item::Warning(Warning {
            file: file.to_string(),
            frame,
            message,
        }));
    }

    /// Empty the batch for reuse.
    fn clear(&mut self) {
        self.items.clear();
        self.data.clear();
    }
}

/// A classic pcap input, parsed directly from a large buffer (records are contiguous and their
/// length is in the header, so no general block parser is needed).
struct PcapFile {
    read: Box<dyn Read + Send>,
    buf: Box<[u8]>,
    /// Unparsed data is `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// The input returned end of file.
    eof: bool,
    big_endian: bool,
    nanos: bool,
    /// Record header length: 16, or 24 for the "modified" format.
    header: usize,
    linktype: u32,
    st: ReadState,
}

impl PcapFile {
    fn step(&mut self, input: usize, out: &mut Batch) -> Step {
        loop {
            let d = &self.buf[self.pos..self.end];
            if d.len() >= 16 {
                let be = self.big_endian;
                let caplen = u32_at(d, 8, be);
                if caplen > MAX_CAPLEN {
                    return Step::Finished(Some(absurd_caplen(self.st.frame + 1, caplen)));
                }
                let len = self.header + caplen as usize;
                if d.len() >= len {
                    let (secs, frac, orig) =
                        (u32_at(d, 0, be), u32_at(d, 4, be), u32_at(d, 12, be));
                    let (nanos, limit, unit) = if self.nanos {
                        (i64::from(frac), 1_000_000_000, "ns")
                    } else {
                        (i64::from(frac) * 1000, 1_000_000, "µs")
                    };
                    let bad = (frac >= limit)
                        .then(|| format!("fraction of {frac} {unit} is not below 1 s"));
                    let ts = Timestamp::from_secs_nanos(i64::from(secs), nanos);
                    let data = &d[self.header..len];
                    return match self.st.deliver(
                        len,
                        input,
                        self.linktype,
                        ts,
                        orig,
                        data,
                        bad,
                        out,
                    ) {
                        Act::Deliver(n) => {
                            self.pos += n;
                            Step::Packet
                        }
                        Act::Warn(frame, msg) => Step::Warn(frame, msg),
                        _ => Step::Finished(None),
                    };
                }
            }
            if self.eof {
                if d.is_empty() {
                    return Step::Finished(None);
                }
                return Step::Finished(Some(self.st.cut_short(d)));
            }
            // The record at `pos` is incomplete (and shorter than the buffer): move it to the
            // front and read more.
            self.st.paused = !self.st.paused;
            if self.st.paused {
                return Step::WillRead;
            }
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            match self.read.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(_) => return Step::Finished(Some((None, self.st.read_error()))),
            }
        }
    }
}

/// A pcapng input, read with pcap-parser's block reader.
struct NgFile {
    reader: Reader,
    st: ReadState,
}

impl NgFile {
    fn step(&mut self, input: usize, out: &mut Batch) -> Step {
        loop {
            let header_pending = self.reader.consumed() == 0;
            if let Some(stop) = self.st.precheck(self.reader.data(), header_pending) {
                return Step::Finished(Some(stop));
            }
            let act = match self.reader.next() {
                Ok((len, PcapBlockOwned::NG(block))) => self.st.ng_block(len, &block, input, out),
                Ok((len, _)) => Act::Consume(len),
                Err(PcapError::Eof) => Act::End,
                Err(PcapError::Incomplete(_)) => Act::Refill,
                Err(PcapError::UnexpectedEof) => Act::UnexpectedEof,
                Err(PcapError::BufferTooSmall) => Act::TooSmall,
                Err(PcapError::ReadError) => Act::Stop(None, self.st.read_error()),
                Err(e) => Act::Stop(
                    None,
                    format!(
                        "corrupt pcapng block after frame {} ({}); the rest of the file is \
                         skipped",
                        self.st.frame,
                        parse_error_kind(&e)
                    ),
                ),
            };
            // Consumed data is dropped from the buffer when it is refilled (one move per refill
            // instead of one whenever half of the buffer has been consumed).
            match act {
                Act::Consume(n) => self.reader.consume_noshift(n),
                Act::Deliver(n) => {
                    self.reader.consume_noshift(n);
                    return Step::Packet;
                }
                Act::Warn(frame, msg) => return Step::Warn(frame, msg),
                Act::WarnConsume(n, frame, msg) => {
                    self.reader.consume_noshift(n);
                    return Step::Warn(frame, msg);
                }
                Act::Stop(frame, msg) => return Step::Finished(Some((frame, msg))),
                Act::End => return Step::Finished(None),
                Act::UnexpectedEof => {
                    let d = self.reader.data();
                    if d.is_empty() {
                        return Step::Finished(None);
                    }
                    return Step::Finished(Some(self.st.cut_short(d)));
                }
                Act::Refill => {
                    self.st.paused = !self.st.paused;
                    if self.st.paused {
                        return Step::WillRead;
                    }
                    let before = self.reader.data().len();
                    if self.reader.refill().is_err() {
                        return Step::Finished(Some((None, self.st.read_error())));
                    }
                    if self.reader.data().len() == before && !self.reader.reader_exhausted() {
                        // The buffer is full but the parser wants more: make room.
                        self.st.stalls += 1;
                        if self.st.stalls > 2 && !self.grow(2 * self.st.cap) {
                            return Step::Finished(Some((
                                None,
                                format!(
                                    "cannot parse the data after frame {}; the rest of the \
                                     file is skipped",
                                    self.st.frame
                                ),
                            )));
                        }
                    } else {
                        self.st.stalls = 0;
                    }
                }
                Act::TooSmall => {
                    let need = self
                        .st
                        .peek(self.reader.data())
                        .map_or(2 * self.st.cap as u64, |p| p.len + 4096);
                    if !self.grow(need.min(usize::MAX as u64) as usize) {
                        return Step::Finished(Some((
                            None,
                            format!(
                                "record after frame {} does not fit in the read buffer; the \
                                 rest of the file is skipped",
                                self.st.frame
                            ),
                        )));
                    }
                }
            }
        }
    }

    /// Grow the read buffer to `size` bytes, within the limits; false when impossible.
    fn grow(&mut self, size: usize) -> bool {
        let limit = MAX_BLOCK as usize + 8192;
        let size = size.min(limit);
        if size <= self.st.cap {
            return false;
        }
        self.reader.grow(size);
        self.st.cap = size;
        self.st.stalls = 0;
        true
    }
}

/// The input being read.
enum Reading {
    Pcap(Box<PcapFile>),
    Ng(Box<NgFile>),
}

impl Reading {
    fn step(&mut self, input: usize, out: &mut Batch) -> Step {
        match self {
            Reading::Pcap(r) => r.step(input, out),
            Reading::Ng(r) => r.step(input, out),
        }
    }
}

enum InputState {
    /// Checked at open, not being read yet.
    Pending,
    Open(Reading),
    Done,
}

struct Input {
    name: String,
    size: Option<u64>,
    count: Arc<AtomicU64>,
    /// Stdin cannot be reopened: its checked stream is kept.
    kept: Option<Stream>,
    state: InputState,
}

/// The inputs and the reading position: all of the reading, which runs on the reader thread.
struct Inputs {
    inputs: Vec<Input>,
    cur: usize,
    /// Standard input had no more data at its last read (see `Counted`).
    starved: Arc<AtomicBool>,
}

impl Inputs {
    fn finish_current(&mut self) {
        if let Some(input) = self.inputs.get_mut(self.cur) {
            input.state = InputState::Done;
            if let Some(size) = input.size {
                input.count.store(size, Ordering::Relaxed);
            }
        }
        self.cur += 1;
    }

    /// Add packets and warnings to `out` until it is full or all inputs are read (then
    /// `out.end` is set).
    fn fill(&mut self, out: &mut Batch) {
        while !out.full() {
            let idx = self.cur;
            let Some(input) = self.inputs.get_mut(idx) else {
                out.end = true;
                return;
            };
            match &mut input.state {
                InputState::Done => self.cur += 1,
                InputState::Pending => {
                    let stream = match input.kept.take() {
                        Some(s) => Ok(s),
                        None => {
                            input.count.store(0, Ordering::Relaxed);
                            open_stream(&input.name, &input.count, &self.starved).map(|(s, _)| s)
                        }
                    };
                    match stream.and_then(make_reader) {
                        Ok(reading) => input.state = InputState::Open(reading),
                        Err(m) => {
                            out.warn(&input.name, None, format!("cannot reopen: {m}"));
                            self.finish_current();
                        }
                    }
                }
                InputState::Open(reading) => loop {
                    match reading.step(idx, out) {
                        Step::Packet => {
                            if out.full() {
                                return;
                            }
                        }
                        Step::WillRead => {
                            // the last read came back short (a pipe with nothing more for
                            // now): hand over what there is before a read that may block
                            if !out.items.is_empty() && self.starved.swap(false, Ordering::Relaxed)
                            {
                                return;
                            }
                        }
                        Step::Warn(frame, message) => out.warn(&input.name, frame, message),
                        Step::Finished(last) => {
                            if let Some((frame, message)) = last {
                                out.warn(&input.name, frame, message);
                            }
                            self.finish_current();
                            break;
                        }
                    }
                },
            }
        }
    }
}

/// Body of the reader thread: fill batches and send them until the inputs end or the consumer
/// goes away (its end of a channel is dropped).
fn read_batches(mut inputs: Inputs, full: SyncSender<Batch>, free: Receiver<Batch>) {
    let mut made = 0;
    loop {
        let mut batch = if made < BATCHES {
            made += 1;
            Batch::new()
        } else {
            match free.recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                Err(_) => return,
            }
        };
        inputs.fill(&mut batch);
        let end = batch.end;
        if full.send(batch).is_err() || end {
            return;
        }
    }
}

/// The consumer's side of a running reader thread.
struct Running {
    full: Receiver<Batch>,
    free: Sender<Batch>,
    thread: JoinHandle<()>,
    /// Disconnected when the thread has ended (its sender is dropped with the thread's closure).
    done: Receiver<()>,
}

enum Run {
    /// Not started: the reader thread starts on the first `next`.
    Idle(Box<Inputs>),
    Running(Running),
    Ended,
}

/// Capture files (pcap, pcapng, gzip-compressed either) and stdin, read as one stream.
///
/// Every input is checked at `open`; files are then reopened one at a time as reading reaches
/// them, so that only one file descriptor and one read buffer are in use. The reading and parsing
/// run on a thread of their own, which hands packets and warnings over in batches (a few in flight,
/// recycled, so the memory stays bounded); `next` takes them from the current batch.
pub struct FileSource {
    names: Vec<String>,
    counts: Vec<Arc<AtomicU64>>,
    sizes: Vec<Option<u64>>,
    run: Run,
    /// The batch being handed out, and the index of its next item.
    batch: Option<Batch>,
    at: usize,
}

impl FileSource {
    /// Open every input up front; "-" reads stdin.
    pub fn open(paths: &[String]) -> Result<FileSource, InputError> {
        let mut inputs = Vec::with_capacity(paths.len());
        let starved = Arc::new(AtomicBool::new(false));
        for path in paths {
            let count = Arc::new(AtomicU64::new(0));
            let (stream, size) =
                open_stream(path, &count, &starved).map_err(|message| InputError {
                    file: path.clone(),
                    message,
                })?;
            let kept = (path == "-").then_some(stream);
            if kept.is_none() {
                count.store(0, Ordering::Relaxed);
            }
            inputs.push(Input {
                name: path.clone(),
                size,
                count,
                kept,
                state: InputState::Pending,
            });
        }
        Ok(FileSource {
            names: paths.to_vec(),
            counts: inputs.iter().map(|i| i.count.clone()).collect(),
            sizes: inputs.iter().map(|i| i.size).collect(),
            run: Run::Idle(Box::new(Inputs {
                inputs,
                cur: 0,
                starved,
            })),
            batch: None,
            at: 0,
        })
    }

    fn start(&mut self, inputs: Inputs) -> Result<(), InputError> {
        let (full_tx, full_rx) = mpsc::sync_channel(BATCHES);
        let (free_tx, free_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tcprace-reader".to_string())
            .spawn(move || {
                let _done = done_tx;
                read_batches(inputs, full_tx, free_rx);
            })
            .map_err(|e| InputError {
                file: self.names.first().cloned().unwrap_or_default(),
                message: format!("cannot start the reader thread: {e}"),
            })?;
        self.run = Run::Running(Running {
            full: full_rx,
            free: free_tx,
            thread,
            done: done_rx,
        });
        Ok(())
    }

    /// Wait for the reader thread after it has sent its last batch (it is ending).
    fn join(&mut self) {
        if let Run::Running(r) = std::mem::replace(&mut self.run, Run::Ended)
            && let Err(panic) = r.thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl FileSource {
    /// The next packet, borrowed from the reader's batch (no copy); valid until the next call.
    pub fn next_ref(&mut self) -> Result<NextRef<'_>, InputError> {
        loop {
            if let Some(batch) = &self.batch
                && self.at < batch.items.len()
            {
                break;
            }
            if let Some(done) = self.batch.take() {
                let end = done.end;
                if let Run::Running(r) = &self.run {
                    // The reader may have finished already; then the batch is simply dropped.
                    let _ = r.free.send(done);
                }
                if end {
                    self.join();
                }
            }
            match &mut self.run {
                Run::Ended => return Ok(NextRef::End),
                Run::Idle(_) => {
                    let Run::Idle(inputs) = std::mem::replace(&mut self.run, Run::Ended) else {
                        unreachable!()
                    };
                    self.start(*inputs)?;
                }
                Run::Running(r) => match r.full.recv() {
                    Ok(batch) => {
                        self.batch = Some(batch);
                        self.at = 0;
                    }
                    // The thread ended without its last batch: it panicked.
                    Err(_) => self.join(),
                },
            }
        }
        let batch = self.batch.as_ref().expect("a batch with items left");
        let item = &batch.items[self.at];
        self.at += 1;
        Ok(match item {
            Item::Packet {
                input,
                frame,
                ts,
                linktype,
                orig_len,
                start,
                len,
            } => NextRef::Packet(PacketRef {
                input: *input,
                frame: *frame,
                ts: *ts,
                linktype: *linktype,
                orig_len: *orig_len,
                data: &batch.data[*start..*start + *len],
            }),
            Item::Warning(w) => NextRef::Warning(w.clone()),
        })
    }
}

impl PacketSource for FileSource {
    fn next(&mut self, pkt: &mut Packet) -> Result<Next, InputError> {
        Ok(match self.next_ref()? {
            NextRef::Packet(p) => {
                pkt.input = p.input;
                pkt.frame = p.frame;
                pkt.ts = p.ts;
                pkt.linktype = p.linktype;
                pkt.orig_len = p.orig_len;
                pkt.data.clear();
                pkt.data.extend_from_slice(p.data);
                Next::Packet
            }
            NextRef::Warning(w) => Next::Warning(w),
            NextRef::End => Next::End,
        })
    }

    fn inputs(&self) -> &[String] {
        &self.names
    }

    fn progress(&self) -> (u64, Option<u64>) {
        let done = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let total = self.sizes.iter().copied().sum();
        (done, total)
    }
}

impl Drop for FileSource {
    /// Stop the reader thread: dropping our ends of the channels makes its next send or receive
    /// fail. A thread blocked in a read (stdin) ends when that read returns; it is not waited for
    /// longer than a second.
    fn drop(&mut self) {
        if let Run::Running(r) = std::mem::replace(&mut self.run, Run::Ended) {
            let Running {
                full,
                free,
                thread,
                done,
            } = r;
            drop(full);
            drop(free);
            match done.recv_timeout(Duration::from_secs(1)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => {
                    let _ = thread.join();
                }
            }
        }
    }
}

mod filter;
pub use filter::Filter;

/// Live capture from an interface (libpcap).
mod live;
pub use live::{
    CaptureStats, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, InterfaceInfo, LiveConfig, LiveError,
    LiveNext, LiveSource, list_interfaces, setcap_hint,
};

#[cfg(test)]
mod tests;
