//! Reassembly of one direction: bytes delivered in order exactly once, out-of-order segments
//! held within bounds, missing bytes reported as gaps (smoltcp's `Assembler`, Zeek's
//! `TCP_Reassembler`).

use super::endpoint::{Endpoint, Held};
use super::{Dir, FlowEvent, FlowStats, SegMeta};

/// The bytes of a segment: `wire_len` bytes at stream offset `off`, of which `captured` are in
/// the capture (the snaplen may have cut the rest).
#[derive(Clone, Copy)]
pub(super) struct Span<'a> {
    pub off: i64,
    pub captured: &'a [u8],
    pub wire_len: u32,
    pub meta: SegMeta,
}

impl Span<'_> {
    fn end(&self) -> i64 {
        self.off + i64::from(self.wire_len)
    }
}

/// Bounds of the out-of-order buffer of one direction.
const OOO_MAX_SEGMENTS: usize = 64;
const OOO_MAX_BYTES: usize = 256 * 1024;

impl Endpoint {
    /// A segment's bytes of direction `d`: delivered when in order, held when early, reported
    /// as a retransmission when already delivered.
    pub fn deliver<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: Dir,
        span: Span<'_>,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let Span { off, meta, .. } = span;
        if span.end() <= self.next {
            stats.retransmitted_segments += 1;
            emit(FlowEvent::Retransmit {
                dir: d,
                off,
                len: u64::from(span.wire_len),
                meta,
            });
            return;
        }
        if off > self.next {
            stats.out_of_order_segments += 1;
            if self.held.len() >= OOO_MAX_SEGMENTS
                || self.held_bytes() + span.captured.len() > OOO_MAX_BYTES
            {
                // no room: give up waiting for the missing bytes before the earliest held segment
                stats.reorder_buffer_overflows += 1;
                let first = self
                    .held
                    .iter()
                    .map(|h| h.off)
                    .min()
                    .unwrap_or(off)
                    .min(off);
                self.skip_to(d, first, meta, stats, emit);
                self.deliver(d, span, stats, emit);
                return;
            }
            let pos = self.held.partition_point(|h| h.off <= off);
            self.held.insert(
                pos,
                Held {
                    off,
                    data: span.captured.to_vec(),
                    wire_len: span.wire_len,
                    meta,
                },
            );
            return;
        }
        if off < self.next {
            stats.retransmitted_segments += 1;
        }
        self.emit_span(d, span, stats, emit);
        self.drain_held(d, stats, emit);
    }

    /// Deliver the part of a segment at or after `next` (the segment starts at or before it).
    fn emit_span<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: Dir,
        span: Span<'_>,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        let Span {
            off,
            captured,
            meta,
            ..
        } = span;
        let cap_end = off + captured.len() as i64;
        if cap_end > self.next {
            let skip = (self.next - off) as usize;
            emit(FlowEvent::Data {
                dir: d,
                off: self.next,
                bytes: &captured[skip..],
                meta,
            });
            self.delivered = true;
            self.next = cap_end;
        }
        let end = span.end();
        if end > self.next {
            // the snaplen cut the rest: known by length only
            let len = (end - self.next) as u64;
            emit(FlowEvent::Gap {
                dir: d,
                off: self.next,
                len,
                meta,
            });
            stats.gap_bytes += len;
            self.delivered = true;
            self.next = end;
        }
    }

    fn drain_held<F: FnMut(FlowEvent<'_>)>(&mut self, d: Dir, stats: &mut FlowStats, emit: &mut F) {
        while self.held.first().is_some_and(|h| h.off <= self.next) {
            let h = self.held.remove(0);
            let span = Span {
                off: h.off,
                captured: &h.data,
                wire_len: h.wire_len,
                meta: h.meta,
            };
            if span.end() > self.next {
                self.emit_span(d, span, stats, emit);
            }
        }
    }

    /// Declare the bytes before `to` missing, then deliver what is held from there on.
    fn skip_to<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: Dir,
        to: i64,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        if to > self.next {
            let len = (to - self.next) as u64;
            emit(FlowEvent::Gap {
                dir: d,
                off: self.next,
                len,
                meta,
            });
            stats.gaps += 1;
            stats.gap_bytes += len;
            self.delivered = true;
            self.next = to;
        }
        self.drain_held(d, stats, emit);
    }

    /// The other side acknowledged up to `ack_off` in this direction (`d`): bytes before that
    /// which the capture lacks will never come.
    pub fn ack_reveals_gap<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: Dir,
        ack_off: i64,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        // a FIN occupies one sequence number but no byte
        let data_end = match self.fin() {
            Some(f) => ack_off.min(f.off),
            None => ack_off,
        };
        if data_end <= self.next || !self.seen_segment {
            return;
        }
        while let Some(first) = self.held.first().map(|h| h.off) {
            if first >= data_end {
                break;
            }
            self.skip_to(d, first, meta, stats, emit);
        }
        self.skip_to(d, data_end, meta, stats, emit);
        self.try_eof(d, emit);
    }

    /// Once the bytes up to the FIN are delivered, the direction ends.
    pub fn try_eof<F: FnMut(FlowEvent<'_>)>(&mut self, d: Dir, emit: &mut F) {
        if let Some(f) = self.fin()
            && !self.fin_delivered
            && self.next >= f.off
        {
            self.fin_delivered = true;
            emit(FlowEvent::Eof {
                dir: d,
                off: f.off,
                meta: f,
            });
        }
    }

    /// End of the connection: deliver what is held (with gaps before it), then the FIN.
    pub fn flush<F: FnMut(FlowEvent<'_>)>(
        &mut self,
        d: Dir,
        meta: SegMeta,
        stats: &mut FlowStats,
        emit: &mut F,
    ) {
        while let Some(first) = self.held.first().map(|h| h.off) {
            self.skip_to(d, first, meta, stats, emit);
        }
        if let Some(off) = self.fin().map(|f| f.off) {
            self.skip_to(d, off, meta, stats, emit);
            self.try_eof(d, emit);
        }
    }
}
