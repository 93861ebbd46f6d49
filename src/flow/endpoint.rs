//! One direction of a connection: the bytes one endpoint sent, as the capture showed them
//! (Zeek's `TCP_Endpoint`).

use super::{CloseEvent, SegMeta, SeqNumber, SeqSpace};

/// A segment held until the bytes before it arrive.
#[derive(Debug)]
pub(super) struct Held {
    pub off: i64,
    pub data: Vec<u8>,
    pub wire_len: u32,
    pub meta: SegMeta,
}

/// The state of one direction of a connection.
#[derive(Debug, Default)]
pub(super) struct Endpoint {
    pub space: Option<SeqSpace>,
    /// Initial sequence number, when the SYN was seen.
    pub isn: Option<SeqNumber>,
    /// Next stream offset to deliver in order.
    pub next: i64,
    /// Highest stream offset sent (data end, including FIN) seen so far.
    pub max_end: i64,
    pub seen_segment: bool,
    /// First valid FIN.
    pub fin: Option<CloseEvent>,
    pub fin_delivered: bool,
    /// First valid RST.
    pub rst: Option<CloseEvent>,
    /// Out-of-order segments waiting for the bytes before them, by offset.
    pub held: Vec<Held>,
    pub held_bytes: usize,
    /// The last advertised receive window (unscaled) and the SYN's window-scale option.
    pub window: u16,
    pub wscale: Option<u8>,
    /// Highest acknowledgement this direction sent, as an offset in the other direction.
    pub highest_ack: Option<i64>,
    /// Bytes delivered in order (including gap bytes).
    pub bytes: u64,
}

impl Endpoint {
    /// True when this direction was seen from its SYN (offsets are relative to the ISN).
    pub fn seen_from_syn(&self) -> bool {
        self.isn.is_some()
    }

    /// The stream offset just past the bytes delivered, when any were.
    pub fn stream_end(&self) -> Option<i64> {
        (self.bytes > 0).then_some(self.next)
    }

    /// Closed by FIN or RST.
    pub fn closed(&self) -> bool {
        self.fin.is_some() || self.rst.is_some()
    }

    pub fn init_space(&mut self, seq: SeqNumber, off: i64) {
        self.space = Some(SeqSpace::new(seq, off));
        self.next = off;
        self.max_end = off;
    }

    /// The stream offset of `seq` (observed: later numbers keep mapping right across wraps).
    pub fn observe(&mut self, seq: SeqNumber) -> i64 {
        self.space.as_mut().map_or(0, |s| s.observe(seq))
    }
}
