//! Opening an input: a file or stdin, gunzipped when it starts with the gzip magic, and its
//! capture header checked (pcap: byte order, µs/ns, the "modified" variant, version, link type;
//! pcapng: the whole section header). `FileSource::open` opens every input this way, so that a
//! bad input is an error before any packet is read; a file is opened again when reading reaches
//! it (stdin's checked stream is kept).

use super::pcapng::{SHB_TYPE, parse_error_kind};
use super::{MAX_BLOCK, u16_at, u32_at};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The SHA-256 of what was read of standard input (its bytes cannot be read twice).
pub(super) type StdinDigest = Arc<Mutex<sha2::Sha256>>;

/// Counts the bytes read from the underlying file (compressed bytes for gzip input), and
/// hashes them when asked.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
    hash: Option<StdinDigest>,
    /// Set when a read returned less than asked: the source (a pipe) has nothing more for now,
    /// so the reader thread hands over what it has instead of waiting for a full batch.
    starved: Option<Arc<AtomicBool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(h) = &self.hash
            && let Ok(mut h) = h.lock()
        {
            sha2::Digest::update(&mut *h, &buf[..n]);
        }
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

/// The format of an input, from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Pcap(PcapHeader),
    PcapNg,
}

/// What the file header of a classic pcap input says about its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PcapHeader {
    pub(super) big_endian: bool,
    /// Timestamps in nanoseconds rather than microseconds.
    pub(super) nanos: bool,
    /// The "modified" (Kuznetzov) format: 8 more bytes in every record header.
    pub(super) modified: bool,
    pub(super) linktype: u32,
}

/// An input whose header was checked; `head` holds the bytes already read from `read`.
pub(super) struct Stream {
    pub(super) read: Box<dyn Read + Send>,
    pub(super) head: Vec<u8>,
    pub(super) format: Format,
    /// The last read error (see `KeepError`).
    pub(super) error: Arc<Mutex<Option<String>>>,
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
pub(super) fn open_stream(
    name: &str,
    count: &Arc<AtomicU64>,
    starved: &Arc<AtomicBool>,
    hash: Option<&StdinDigest>,
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
        hash: hash.filter(|_| name == "-").cloned(),
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
    if head.len() >= 4 && head[..4] == SHB_TYPE.to_le_bytes() {
        read_section_header(head, read)?;
        return Ok(Format::PcapNg);
    }
    pcap_header(head, gzip).map(Format::Pcap)
}

/// Read the rest of a pcapng section header (its first bytes are in `head`) into `head`, and
/// check it.
fn read_section_header(head: &mut Vec<u8>, read: &mut Box<dyn Read + Send>) -> Result<(), String> {
    let n = head.len();
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
    Ok(())
}

/// Check the file header of a classic pcap input (`head`: its first bytes, not a pcapng one).
fn pcap_header(head: &[u8], gzip: bool) -> Result<PcapHeader, String> {
    let n = head.len();
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
    Ok(PcapHeader {
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
