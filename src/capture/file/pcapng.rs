//! pcapng input, read with pcap-parser's block reader: sections, interfaces (each with its own
//! link type and if_tsresol/if_tsoffset) and the packet blocks (enhanced, simple and obsolete).

use super::records::{Act, ReadState, Step};
use super::{Batch, MAX_BLOCK, u16_at, u32_at};
use crate::time::Timestamp;
use pcap_parser::pcapng::{
    Block, EnhancedPacketBlock, InterfaceDescriptionBlock, OptionCode, SectionHeaderBlock,
    SimplePacketBlock, UnknownBlock,
};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};
use std::io::{self, Read};

/// Interfaces kept per section: a section describing more (a hostile file can describe
/// millions) has the others ignored, with a warning.
pub(super) const MAX_INTERFACES: usize = 4096;

/// Initial size of the read buffer of a pcapng input; it grows on demand (see `NgFile::grow`).
/// (pcap-parser reports some corrupt blocks differently depending on the buffer size.)
const BUF_SIZE: usize = 64 * 1024;

// Block types: section header, obsolete, simple and enhanced packet.
pub(super) const SHB_TYPE: u32 = 0x0A0D_0D0A;
pub(super) const OPB_TYPE: u32 = 2;
pub(super) const SPB_TYPE: u32 = 3;
pub(super) const EPB_TYPE: u32 = 6;

/// What pcap-parser's error says, for a warning.
pub(super) fn parse_error_kind<I>(e: &PcapError<I>) -> String {
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
pub(super) struct Iface {
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

    /// The timestamp of a packet block, and what was wrong when it is beyond the range of
    /// timestamps (about 1678-2262: an extreme if_tsoffset): then it is clamped to the range.
    fn timestamp(&self, high: u32, low: u32) -> (Timestamp, Option<String>) {
        let t = (u64::from(high) << 32) | u64::from(low);
        let secs = i128::from(t / self.units) + i128::from(self.offset);
        let frac = u128::from(t % self.units);
        let nanos = (frac * 1_000_000_000 / u128::from(self.units)) as i128;
        let ns = secs * 1_000_000_000 + nanos;
        match i64::try_from(ns) {
            Ok(ns) => (Timestamp::from_nanos(ns), None),
            Err(_) => {
                let clamped = if ns < 0 { i64::MIN } else { i64::MAX };
                let why = format!(
                    "{secs} s with the interface's if_tsoffset of {} s is beyond the range of timestamps, clamped",
                    self.offset
                );
                (Timestamp::from_nanos(clamped), Some(why))
            }
        }
    }
}

/// The pcapng blocks, read into the reading state (a method of `ReadState` so that it can be
/// updated while the block, borrowed from the reader, is alive).
impl ReadState {
    fn ng_block(&mut self, len: usize, block: &Block<'_>, input: usize, out: &mut Batch) -> Act {
        match block {
            Block::SectionHeader(shb) => self.section_header(len, shb),
            Block::InterfaceDescription(idb) => {
                if self.ifaces.len() >= MAX_INTERFACES {
                    self.ifaces_beyond += 1;
                    if self.ifaces_beyond > 1 {
                        return Act::Consume(len);
                    }
                    let msg = format!(
                        "section with more than {MAX_INTERFACES} interfaces: the others are \
                         ignored and the packets captured on them skipped"
                    );
                    return Act::WarnConsume(len, None, msg);
                }
                let (iface, warn) = Iface::new(idb, self.ng_be);
                self.ifaces.push(iface);
                match warn {
                    Some(w) => Act::WarnConsume(len, None, w),
                    None => Act::Consume(len),
                }
            }
            Block::EnhancedPacket(epb) => self.enhanced_packet(len, epb, input, out),
            Block::SimplePacket(spb) => self.simple_packet(len, spb, input, out),
            Block::Unknown(ub) => self.unknown_block(len, ub, input, out),
            _ => Act::Consume(len),
        }
    }

    /// A new section: its own byte order and interfaces.
    fn section_header(&mut self, len: usize, shb: &SectionHeaderBlock<'_>) -> Act {
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
        self.ifaces_beyond = 0;
        Act::Consume(len)
    }

    fn enhanced_packet(
        &mut self,
        len: usize,
        epb: &EnhancedPacketBlock<'_>,
        input: usize,
        out: &mut Batch,
    ) -> Act {
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
        let (ts, bad_time) = iface.timestamp(epb.ts_high, epb.ts_low);
        self.deliver(
            len,
            input,
            iface.linktype,
            ts,
            epb.origlen,
            data,
            bad_time,
            out,
        )
    }

    fn simple_packet(
        &mut self,
        len: usize,
        spb: &SimplePacketBlock<'_>,
        input: usize,
        out: &mut Batch,
    ) -> Act {
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

    /// A block pcap-parser does not know: an obsolete packet block is read, others are skipped.
    fn unknown_block(
        &mut self,
        len: usize,
        ub: &UnknownBlock<'_>,
        input: usize,
        out: &mut Batch,
    ) -> Act {
        let ty = if self.ng_be {
            ub.block_type.swap_bytes()
        } else {
            ub.block_type
        };
        if ty != OPB_TYPE {
            return Act::Consume(len);
        }
        self.obsolete_packet(len, ub.data, input, out)
    }

    /// `d`: the body of an obsolete packet block: if_id u16, drops u16, ts high/low, caplen,
    /// origlen, data.
    fn obsolete_packet(&mut self, len: usize, d: &[u8], input: usize, out: &mut Batch) -> Act {
        let be = self.ng_be;
        let caplen = if d.len() >= 20 {
            u32_at(d, 12, be) as usize
        } else {
            usize::MAX
        };
        if caplen > d.len() - 20.min(d.len()) {
            return Act::Stop(
                Some(self.frame + 1),
                "corrupt obsolete packet block; the rest of the file is skipped".to_string(),
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
        let (ts, bad_time) = iface.timestamp(u32_at(d, 4, be), u32_at(d, 8, be));
        let (linktype, orig) = (iface.linktype, u32_at(d, 16, be));
        self.deliver(
            len,
            input,
            linktype,
            ts,
            orig,
            &d[20..20 + caplen],
            bad_time,
            out,
        )
    }

    /// A pcapng block that is not a packet we can deliver.
    fn skip_packet(&mut self, consume: usize, message: String) -> Act {
        self.frame += 1;
        Act::WarnConsume(consume, Some(self.frame), message)
    }
}

/// A pcapng input, read with pcap-parser's block reader.
pub(super) struct NgFile {
    reader: Reader,
    st: ReadState,
}

impl NgFile {
    /// Start reading; `head` holds the bytes already read (the whole section header).
    pub(super) fn new(
        read: Box<dyn Read + Send>,
        head: Vec<u8>,
        mut st: ReadState,
    ) -> Result<NgFile, String> {
        let cap = BUF_SIZE.max(head.len() + 4096);
        let src = io::Cursor::new(head).chain(read);
        let reader: Reader =
            Box::new(PcapNGReader::new(cap, src).map_err(|e| format!("bad pcapng header: {e}"))?);
        st.cap = cap;
        Ok(NgFile { reader, st })
    }

    pub(super) fn step(&mut self, input: usize, out: &mut Batch) -> Step {
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
                    if let Some(step) = self.refill() {
                        return step;
                    }
                }
                Act::TooSmall => {
                    if let Some(step) = self.make_room() {
                        return step;
                    }
                }
            }
        }
    }

    /// Read more input into the reader's buffer, or first stop once (see `Step::WillRead`).
    /// `Some` ends the step.
    fn refill(&mut self) -> Option<Step> {
        self.st.paused = !self.st.paused;
        if self.st.paused {
            return Some(Step::WillRead);
        }
        let before = self.reader.data().len();
        if self.reader.refill().is_err() {
            return Some(Step::Finished(Some((None, self.st.read_error()))));
        }
        if self.reader.data().len() == before && !self.reader.reader_exhausted() {
            // The buffer is full but the parser wants more: make room.
            self.st.stalls += 1;
            if self.st.stalls > 2 && !self.grow(2 * self.st.cap) {
                return Some(Step::Finished(Some((
                    None,
                    format!(
                        "cannot parse the data after frame {}; the rest of the file is skipped",
                        self.st.frame
                    ),
                ))));
            }
        } else {
            self.st.stalls = 0;
        }
        None
    }

    /// The parser's buffer is too small for the next block: grow it to hold the block as its
    /// header announces it. `Some` (the end of the input) when it cannot grow.
    fn make_room(&mut self) -> Option<Step> {
        let need = self
            .st
            .peek(self.reader.data())
            .map_or(2 * self.st.cap as u64, |p| p.len + 4096);
        if !self.grow(need.min(usize::MAX as u64) as usize) {
            return Some(Step::Finished(Some((
                None,
                format!(
                    "record after frame {} does not fit in the read buffer; the rest of the file \
                     is skipped",
                    self.st.frame
                ),
            ))));
        }
        None
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
