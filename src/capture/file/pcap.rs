//! Classic pcap input (and its "modified" variant), parsed directly from a large buffer.

use super::open::PcapHeader;
use super::records::{Act, ReadState, Step, absurd_caplen};
use super::{Batch, MAX_CAPLEN, u32_at};
use crate::time::Timestamp;
use std::io::Read;

/// Size of the read buffer of a classic pcap input (always holds a maximal record).
const PCAP_BUF: usize = 1024 * 1024;

/// A classic pcap input, parsed directly from a large buffer (records are contiguous and their
/// length is in the header, so no general block parser is needed).
pub(super) struct PcapFile {
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
    /// Start reading after the file header; `head` holds the bytes already read (the file header
    /// and possibly the start of the first record).
    pub(super) fn new(
        read: Box<dyn Read + Send>,
        head: &[u8],
        file: PcapHeader,
        mut st: ReadState,
    ) -> PcapFile {
        let rest = head.get(24..).unwrap_or_default();
        let mut buf = vec![0u8; PCAP_BUF].into_boxed_slice();
        buf[..rest.len()].copy_from_slice(rest);
        st.cap = PCAP_BUF;
        PcapFile {
            read,
            end: rest.len(),
            buf,
            pos: 0,
            eof: false,
            big_endian: file.big_endian,
            nanos: file.nanos,
            header: if file.modified { 24 } else { 16 },
            linktype: file.linktype,
            st,
        }
    }

    pub(super) fn step(&mut self, input: usize, out: &mut Batch) -> Step {
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
