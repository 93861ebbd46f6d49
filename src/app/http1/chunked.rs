//! The chunked transfer coding (RFC 9112 section 7.1), one byte run at a time: chunk-size lines
//! with extensions, chunk data and its CRLF, the trailer section. Bounded: extensions and
//! trailers have caps, a size has at most 16 hex digits.

use super::HttpEvent;
use super::sniff::find_lf;
use super::stream::{HttpStream, Mode};

/// Longest chunk extension accepted on a chunk-size line.
const CHUNK_EXT_CAP: u64 = 4 * 1024;
/// Largest trailer section accepted after the last chunk.
const TRAILER_CAP: u64 = 64 * 1024;

/// Where in the chunked body the parser is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk {
    /// Reading a chunk-size line.
    Size(SizeLine),
    /// Inside chunk data.
    Data { remaining: u64 },
    /// The CRLF after chunk data.
    DataEnd { cr: bool },
    /// Trailer section after the last chunk, ended by an empty line.
    /// (u32: both stay within `TRAILER_CAP`, and the state of every stream is kept small)
    Trailer {
        line_len: u32,
        first_cr: bool,
        total: u32,
    },
}

/// A chunk-size line read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SizeLine {
    value: u64,
    digits: u8,
    /// Past the size digits (extension / whitespace), skipping to LF.
    ext: bool,
    /// Within `CHUNK_EXT_CAP`.
    ext_len: u32,
    /// A CR was seen right after the size; LF must follow.
    cr: bool,
}

/// A length within a cap (u32::MAX beyond: over any cap).
fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) const CHUNK_SIZE_START: Chunk = Chunk::Size(SizeLine {
    value: 0,
    digits: 0,
    ext: false,
    ext_len: 0,
    cr: false,
});

impl HttpStream {
    /// Consume chunked-body bytes `d` at offset `off` in state `c`; returns the bytes used.
    pub(super) fn step_chunk(
        &mut self,
        off: i64,
        d: &[u8],
        c: Chunk,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        match c {
            Chunk::Data { remaining } => {
                let take = remaining.min(d.len() as u64);
                self.hash_body(&d[..take as usize]);
                self.mode = Mode::Chunked(if take == remaining {
                    Chunk::DataEnd { cr: false }
                } else {
                    Chunk::Data {
                        remaining: remaining - take,
                    }
                });
                take as usize
            }
            Chunk::DataEnd { cr } => self.chunk_data_end(off, d[0], cr, out),
            Chunk::Trailer {
                line_len,
                first_cr,
                total,
            } => self.chunk_trailer(off, d, line_len.into(), first_cr, total.into(), out),
            Chunk::Size(line) => self.chunk_size(off, d, line, out),
        }
    }

    /// The CRLF after chunk data; `b` is the next byte.
    fn chunk_data_end(&mut self, off: i64, b: u8, cr: bool, out: &mut Vec<HttpEvent>) -> usize {
        match b {
            b'\r' if !cr => {
                self.mode = Mode::Chunked(Chunk::DataEnd { cr: true });
                1
            }
            b'\n' => {
                self.mode = Mode::Chunked(CHUNK_SIZE_START);
                1
            }
            b => {
                let reason =
                    format!("expected CRLF after chunk data at offset {off}, found byte 0x{b:02x}");
                self.desync(off, reason, false, out);
                0
            }
        }
    }

    /// Trailer lines after the last chunk, up to the empty line that ends the message.
    fn chunk_trailer(
        &mut self,
        off: i64,
        d: &[u8],
        mut line_len: u64,
        mut first_cr: bool,
        total: u64,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        let (seg, lf) = match find_lf(d) {
            Some(j) => (&d[..j], true),
            None => (d, false),
        };
        if line_len == 0 && !seg.is_empty() {
            first_cr = seg[0] == b'\r';
        }
        line_len += seg.len() as u64;
        let total = total + seg.len() as u64 + lf as u64;
        let used = seg.len() + lf as usize;
        if lf && (line_len == 0 || (line_len == 1 && first_cr)) {
            self.finish(off + used as i64, out);
        } else if total > TRAILER_CAP {
            let reason = format!("trailer section exceeds {TRAILER_CAP} bytes at offset {off}");
            self.desync(off, reason, false, out);
        } else if lf {
            self.mode = Mode::Chunked(Chunk::Trailer {
                line_len: 0,
                first_cr: false,
                total: small(total),
            });
        } else {
            self.mode = Mode::Chunked(Chunk::Trailer {
                line_len: small(line_len),
                first_cr,
                total: small(total),
            });
        }
        used
    }

    /// A chunk-size line: hex digits, optional extension, CRLF (or bare LF).
    fn chunk_size(
        &mut self,
        off: i64,
        d: &[u8],
        mut line: SizeLine,
        out: &mut Vec<HttpEvent>,
    ) -> usize {
        let mut k = 0usize;
        while k < d.len() {
            if line.ext {
                let skip = find_lf(&d[k..]).unwrap_or(d.len() - k);
                let ext_len = u64::from(line.ext_len) + skip as u64;
                line.ext_len = small(ext_len);
                k += skip;
                if ext_len > CHUNK_EXT_CAP {
                    let at = off + k as i64;
                    let reason =
                        format!("chunk extension longer than {CHUNK_EXT_CAP} bytes at offset {at}");
                    self.desync(at, reason, false, out);
                    return k;
                }
                if k == d.len() {
                    break;
                }
                // d[k] is the LF: the line ends below
            }
            let b = d[k];
            let at = off + k as i64;
            if line.cr && b != b'\n' {
                let reason = format!("chunk-size line at offset {at}: CR not followed by LF");
                self.desync(at, reason, false, out);
                return k;
            }
            if b == b'\n' && line.digits > 0 {
                self.mode = Mode::Chunked(if line.value == 0 {
                    Chunk::Trailer {
                        line_len: 0,
                        first_cr: false,
                        total: 0,
                    }
                } else {
                    Chunk::Data {
                        remaining: line.value,
                    }
                });
                return k + 1;
            }
            match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if !line.cr => {
                    if line.digits >= 16 {
                        let reason = format!("chunk size too large at offset {at}");
                        self.desync(at, reason, false, out);
                        return k;
                    }
                    line.value = (line.value << 4) | (b as char).to_digit(16).unwrap_or(0) as u64;
                    line.digits += 1;
                }
                b';' | b' ' | b'\t' if line.digits > 0 => line.ext = true,
                b'\r' if line.digits > 0 => line.cr = true,
                _ => {
                    let reason = format!(
                        "invalid chunk-size line at offset {at}: unexpected byte 0x{b:02x}"
                    );
                    self.desync(at, reason, false, out);
                    return k;
                }
            }
            k += 1;
        }
        self.mode = Mode::Chunked(Chunk::Size(line));
        k
    }
}
