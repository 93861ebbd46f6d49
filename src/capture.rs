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
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// Captured length above which a record is considered corrupt (libpcap's own limit is 256 KiB for
/// most link types).
const MAX_CAPLEN: u32 = 256 * 1024;
/// Largest pcapng packet block (EPB/SPB/OPB) we buffer: a maximal packet plus room for options.
const MAX_PACKET_BLOCK: u32 = MAX_CAPLEN + 64 * 1024;
/// Largest other pcapng block (name resolution, secrets, ...) we buffer.
const MAX_BLOCK: u32 = 16 * 1024 * 1024;
/// Initial size of the read buffer of one input; it grows (up to the limits above) on demand.
const BUF_SIZE: usize = 64 * 1024;

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const OPB_TYPE: u32 = 2;
const SPB_TYPE: u32 = 3;
const EPB_TYPE: u32 = 6;

/// Counts the bytes read from the underlying file (compressed bytes for gzip input).
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
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
fn open_stream(name: &str, count: &Arc<AtomicU64>) -> Result<(Stream, Option<u64>), String> {
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
        let (major, minor) = (u16_at(&head, 12, be), u16_at(&head, 14, be));
        if major != 1 {
            return Err(format!("unsupported pcapng version {major}.{minor}"));
        }
        let len = u32_at(&head, 4, be) as usize;
        if len < 28 || !len.is_multiple_of(4) || len > MAX_BLOCK as usize {
            return Err(format!("pcapng section header with a bad length ({len})"));
        }
        head.resize(len, 0);
        let got = read_full(&mut read, &mut head[28..]).map_err(read_err)?;
        if got < len - 28 {
            return Err(format!(
                "pcapng section header cut short ({} of {len} bytes)",
                28 + got
            ));
        }
        check_shb_options(&head, be)?;
        if let Err(e) = pcap_parser::pcapng::parse_sectionheaderblock(&head) {
            let detail = match e {
                pcap_parser::nom::Err::Incomplete(_) => "cut short".to_string(),
                pcap_parser::nom::Err::Error(e) | pcap_parser::nom::Err::Failure(e) => {
                    parse_error_kind(&e)
                }
            };
            return Err(format!("corrupt pcapng section header ({detail})"));
        }
        let format = Format::PcapNg;
        return Ok((
            Stream {
                read,
                head,
                format,
                error,
            },
            size,
        ));
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
                hex_prefix(&head)
            ));
        }
    };
    if n < 24 {
        return Err(format!("pcap file header cut short ({n} of 24 bytes)"));
    }
    let (major, minor) = (u16_at(&head, 4, big_endian), u16_at(&head, 6, big_endian));
    if major != 2 {
        return Err(format!("unsupported pcap version {major}.{minor}"));
    }
    // The upper bits of the link-type field carry FCS information.
    let linktype = u32_at(&head, 20, big_endian) & 0xFFFF;
    let format = Format::Pcap {
        big_endian,
        nanos,
        modified,
        linktype,
    };
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

fn make_reader(s: Stream) -> Result<(Reader, ReadState), String> {
    let cap = BUF_SIZE.max(s.head.len() + 4096);
    let src = io::Cursor::new(s.head).chain(s.read);
    let reader: Reader = match s.format {
        Format::Pcap { .. } => {
            Box::new(LegacyPcapReader::new(cap, src).map_err(|e| format!("bad pcap header: {e}"))?)
        }
        Format::PcapNg => {
            Box::new(PcapNGReader::new(cap, src).map_err(|e| format!("bad pcapng header: {e}"))?)
        }
    };
    let st = ReadState {
        format: s.format,
        ng_be: false,
        ifaces: Vec::new(),
        frame: 0,
        last_ts: Timestamp::default(),
        warned_caplen: false,
        warned_frac: false,
        approved: false,
        error: s.error,
        cap,
        stalls: 0,
    };
    Ok((reader, st))
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
            if caplen > MAX_CAPLEN {
                return Some((
                    Some(next),
                    format!(
                        "record claims an absurd length of {caplen} captured bytes (limit \
                         {MAX_CAPLEN}); the rest of the file is skipped"
                    ),
                ));
            }
            return None;
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
        pkt: &mut Packet,
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
        pkt.input = input;
        pkt.frame = frame;
        pkt.ts = ts;
        pkt.linktype = linktype;
        pkt.orig_len = orig_len.max(data.len() as u32);
        pkt.data.clear();
        pkt.data.extend_from_slice(data);
        Act::Deliver(consume)
    }

    /// A pcapng block that is not a packet we can deliver.
    fn skip_packet(&mut self, consume: usize, message: String) -> Act {
        self.frame += 1;
        Act::WarnConsume(consume, Some(self.frame), message)
    }

    fn ng_block(&mut self, len: usize, block: &Block<'_>, input: usize, pkt: &mut Packet) -> Act {
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
                self.deliver(len, input, linktype, ts, epb.origlen, data, None, pkt)
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
                    pkt,
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
                    pkt,
                )
            }
            _ => Act::Consume(len),
        }
    }
}

/// The input being read.
struct Reading {
    reader: Reader,
    st: ReadState,
}

impl Reading {
    fn step(&mut self, input: usize, pkt: &mut Packet) -> Step {
        loop {
            let header_pending = self.reader.consumed() == 0;
            if let Some(stop) = self.st.precheck(self.reader.data(), header_pending) {
                return Step::Finished(Some(stop));
            }
            let act = match self.reader.next() {
                Ok((len, PcapBlockOwned::LegacyHeader(_))) => Act::Consume(len),
                Ok((len, PcapBlockOwned::Legacy(b))) => {
                    let Format::Pcap {
                        nanos, linktype, ..
                    } = self.st.format
                    else {
                        return Step::Finished(None);
                    };
                    let (frac, limit, unit) = if nanos {
                        (i64::from(b.ts_usec), 1_000_000_000, "ns")
                    } else {
                        (i64::from(b.ts_usec) * 1000, 1_000_000, "µs")
                    };
                    let bad = (b.ts_usec >= limit)
                        .then(|| format!("fraction of {} {unit} is not below 1 s", b.ts_usec));
                    let ts = Timestamp::from_secs_nanos(i64::from(b.ts_sec), frac);
                    let data = b.data;
                    self.st
                        .deliver(len, input, linktype, ts, b.origlen, data, bad, pkt)
                }
                Ok((len, PcapBlockOwned::NG(block))) => self.st.ng_block(len, &block, input, pkt),
                Err(PcapError::Eof) => Act::End,
                Err(PcapError::Incomplete(_)) => Act::Refill,
                Err(PcapError::UnexpectedEof) => Act::UnexpectedEof,
                Err(PcapError::BufferTooSmall) => Act::TooSmall,
                Err(PcapError::ReadError) => Act::Stop(None, self.st.read_error()),
                Err(e) => {
                    let what = match self.st.format {
                        Format::PcapNg => "pcapng block",
                        Format::Pcap { .. } => "pcap record",
                    };
                    Act::Stop(
                        None,
                        format!(
                            "corrupt {what} after frame {} ({}); the rest of the file is \
                             skipped",
                            self.st.frame,
                            parse_error_kind(&e)
                        ),
                    )
                }
            };
            match act {
                Act::Consume(n) => self.reader.consume(n),
                Act::Deliver(n) => {
                    self.reader.consume(n);
                    return Step::Packet;
                }
                Act::Warn(frame, msg) => return Step::Warn(frame, msg),
                Act::WarnConsume(n, frame, msg) => {
                    self.reader.consume(n);
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

enum InputState {
    /// Checked at open, not being read yet.
    Pending,
    Open(Box<Reading>),
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

/// Capture files (pcap, pcapng, gzip-compressed either) and stdin, read as one stream.
///
/// Every input is checked at `open`; files are then reopened one at a time as reading reaches
/// them, so that only one file descriptor and one read buffer are in use.
pub struct FileSource {
    inputs: Vec<Input>,
    names: Vec<String>,
    cur: usize,
}

impl FileSource {
    /// Open every input up front; "-" reads stdin.
    pub fn open(paths: &[String]) -> Result<FileSource, InputError> {
        let mut inputs = Vec::with_capacity(paths.len());
        for path in paths {
            let count = Arc::new(AtomicU64::new(0));
            let (stream, size) = open_stream(path, &count).map_err(|message| InputError {
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
            inputs,
            cur: 0,
        })
    }

    fn finish_current(&mut self) {
        if let Some(input) = self.inputs.get_mut(self.cur) {
            input.state = InputState::Done;
            if let Some(size) = input.size {
                input.count.store(size, Ordering::Relaxed);
            }
        }
        self.cur += 1;
    }
}

impl PacketSource for FileSource {
    fn next(&mut self, pkt: &mut Packet) -> Result<Next, InputError> {
        loop {
            let idx = self.cur;
            let Some(input) = self.inputs.get_mut(idx) else {
                return Ok(Next::End);
            };
            let warning = |frame, message| {
                Next::Warning(Warning {
                    file: input.name.clone(),
                    frame,
                    message,
                })
            };
            match &mut input.state {
                InputState::Done => self.cur += 1,
                InputState::Pending => {
                    let stream = match input.kept.take() {
                        Some(s) => Ok(s),
                        None => {
                            input.count.store(0, Ordering::Relaxed);
                            open_stream(&input.name, &input.count).map(|(s, _)| s)
                        }
                    };
                    match stream.and_then(make_reader) {
                        Ok((reader, st)) => {
                            input.state = InputState::Open(Box::new(Reading { reader, st }));
                        }
                        Err(m) => {
                            let w = warning(None, format!("cannot reopen: {m}"));
                            self.finish_current();
                            return Ok(w);
                        }
                    }
                }
                InputState::Open(reading) => match reading.step(idx, pkt) {
                    Step::Packet => return Ok(Next::Packet),
                    Step::Warn(frame, message) => return Ok(warning(frame, message)),
                    Step::Finished(last) => {
                        let w = last.map(|(frame, message)| warning(frame, message));
                        self.finish_current();
                        if let Some(w) = w {
                            return Ok(w);
                        }
                    }
                },
            }
        }
    }

    fn inputs(&self) -> &[String] {
        &self.names
    }

    fn progress(&self) -> (u64, Option<u64>) {
        let done = self
            .inputs
            .iter()
            .map(|i| i.count.load(Ordering::Relaxed))
            .sum();
        let total = self.inputs.iter().map(|i| i.size).sum();
        (done, total)
    }
}

/// A BPF filter compiled by libpcap, one program per link type.
pub struct Filter {
    expr: String,
    /// Compiled programs (or the compile error) by link type.
    programs: HashMap<u32, Result<pcap::BpfProgram, String>>,
}

/// libpcap's `pcap_open_dead` takes a DLT_ value, which differs from the LINKTYPE_ value for a
/// few old link types (libpcap's own `linktype_to_dlt` is not exported).
fn linktype_to_dlt(linktype: u32) -> i32 {
    const DLT_RAW: i32 = if cfg!(target_os = "openbsd") { 14 } else { 12 };
    match linktype {
        100 => 11, // ATM_RFC1483
        101 => DLT_RAW,
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        lt => lt as i32,
    }
}

fn compile(expr: &str, linktype: u32) -> Result<pcap::BpfProgram, String> {
    let dead = pcap::Capture::dead(pcap::Linktype(linktype_to_dlt(linktype)))
        .map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    })
}

impl Filter {
    /// Compile `expr` (checked against Ethernet); the error is libpcap's message with the expression.
    pub fn new(expr: &str) -> Result<Filter, String> {
        let program = compile(expr, linktype::ETHERNET)
            .map_err(|m| format!("invalid filter \"{expr}\": {m}"))?;
        let mut programs = HashMap::new();
        programs.insert(linktype::ETHERNET, Ok(program));
        Ok(Filter {
            expr: expr.to_string(),
            programs,
        })
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Does the packet match? Err when the expression cannot be compiled for this link type.
    pub fn matches(&mut self, pkt: &Packet) -> Result<bool, String> {
        let expr = &self.expr;
        let program = self.programs.entry(pkt.linktype).or_insert_with(|| {
            compile(expr, pkt.linktype).map_err(|m| {
                format!(
                    "filter \"{expr}\" cannot be used on link type {}: {m}",
                    pkt.linktype
                )
            })
        });
        match program {
            Ok(p) => Ok(p.filter(&pkt.data)),
            Err(m) => Err(m.clone()),
        }
    }
}

/// Live capture from an interface (libpcap).
mod live;
pub use live::{
    CaptureStats, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, InterfaceInfo, LiveConfig, LiveError,
    LiveNext, LiveSource, list_interfaces, setcap_hint,
};

#[cfg(test)]
mod tests;
