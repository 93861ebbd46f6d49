//! What reading classic pcap and pcapng have in common: the reading state of the open input
//! (frame numbers, warnings given once per file, the buffer's size), delivering a packet into the
//! batch, and the warnings for lengths that cannot be right and for an input cut short.

use super::open::{Format, PcapHeader};
use super::pcapng::{EPB_TYPE, Iface, OPB_TYPE, SHB_TYPE, SPB_TYPE};
use super::{Batch, Item, MAX_BLOCK, MAX_CAPLEN, MAX_PACKET_BLOCK, u32_at};
use crate::capture::{PacketRef, StoredPacket};
use crate::time::Timestamp;
use std::sync::{Arc, Mutex};

/// Reading state of the open input, apart from the reader itself (so that it can be updated while
/// a block borrowed from the reader is alive).
pub(super) struct ReadState {
    /// The reader stopped once before its next read (see `Step::WillRead`).
    pub(super) paused: bool,
    format: Format,
    /// Byte order of the current pcapng section.
    pub(super) ng_be: bool,
    pub(super) ifaces: Vec<Iface>,
    /// Interfaces of the current section beyond `MAX_INTERFACES` (ignored).
    pub(super) ifaces_beyond: u64,
    /// Number of the last frame handled.
    pub(super) frame: u64,
    /// Timestamp of the last packet (used for simple packet blocks, which have none).
    pub(super) last_ts: Timestamp,
    warned_caplen: bool,
    warned_frac: bool,
    /// The record at the head of the buffer already produced its warning: deliver it now.
    approved: bool,
    error: Arc<Mutex<Option<String>>>,
    /// Current capacity of the reader's buffer.
    pub(super) cap: usize,
    /// Refills in a row that brought no data.
    pub(super) stalls: u32,
}

/// What to do after looking at the reader's next item.
pub(super) enum Act {
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
pub(super) enum Step {
    Packet,
    /// The reader is about to read more input, which may block (a pipe): a chance to hand over
    /// what the batch holds first. The next `step` reads.
    WillRead,
    Warn(Option<u64>, String),
    /// The input is finished, possibly with a last warning.
    Finished(Option<(Option<u64>, String)>),
}

/// Where the next record/block starts and how long it claims to be.
pub(super) struct Peek {
    /// Total length of the record/block including its headers.
    pub(super) len: u64,
    /// Length of the part that holds the length fields.
    header: usize,
    is_packet: bool,
    /// The caplen of a pcap record.
    caplen: Option<u32>,
}

impl ReadState {
    pub(super) fn new(format: Format, error: Arc<Mutex<Option<String>>>) -> ReadState {
        ReadState {
            paused: false,
            format,
            ng_be: false,
            ifaces: Vec::new(),
            ifaces_beyond: 0,
            frame: 0,
            last_ts: Timestamp::default(),
            warned_caplen: false,
            warned_frac: false,
            approved: false,
            error,
            cap: 0,
            stalls: 0,
        }
    }

    /// Where the next record/block (at the start of `d`) starts and how long it claims to be.
    pub(super) fn peek(&self, d: &[u8]) -> Option<Peek> {
        match self.format {
            Format::Pcap(PcapHeader {
                big_endian,
                modified,
                ..
            }) => {
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
    pub(super) fn precheck(
        &self,
        d: &[u8],
        file_header_pending: bool,
    ) -> Option<(Option<u64>, String)> {
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

    pub(super) fn cut_short(&self, d: &[u8]) -> (Option<u64>, String) {
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
                    Format::Pcap(PcapHeader { modified: true, .. }) => (24, "record header"),
                    Format::Pcap(_) => (16, "record header"),
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

    pub(super) fn read_error(&self) -> String {
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
    pub(super) fn deliver(
        &mut self,
        consume: usize,
        input: usize,
        linktype: u32,
        ts: Timestamp,
        orig_len: u32,
        data: &[u8],
        bad_time: Option<String>,
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
            if let Some(what) = bad_time
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
        let pkt = PacketRef {
            input,
            frame,
            ts,
            linktype,
            orig_len: orig_len.max(data.len() as u32),
            data,
        };
        out.items
            .push(Item::Packet(StoredPacket::store(&pkt, &mut out.data)));
        Act::Deliver(consume)
    }
}

/// The warning for a pcap record whose captured length is beyond any real packet.
pub(super) fn absurd_caplen(frame: u64, caplen: u32) -> (Option<u64>, String) {
    (
        Some(frame),
        format!(
            "record claims an absurd length of {caplen} captured bytes (limit {MAX_CAPLEN}); the \
             rest of the file is skipped"
        ),
    )
}
