//! One direction of a connection: the bytes one endpoint sent, as the capture showed them
//! (Zeek's `TCP_Endpoint`).

use super::{CloseEvent, SegMeta, SeqNumber, SeqSpace};
use thin_vec::ThinVec;

/// A segment held until the bytes before it arrive.
#[derive(Debug)]
pub(super) struct Held {
    pub off: i64,
    pub data: Vec<u8>,
    pub wire_len: u32,
    pub meta: SegMeta,
}

/// The state of one direction of a connection.
#[derive(Debug)]
pub(super) struct Endpoint {
    /// Sequence numbers to stream offsets, once a sequence number was seen (`has_space`).
    space: SeqSpace,
    has_space: bool,
    /// Initial sequence number, when the SYN was seen.
    pub isn: Option<SeqNumber>,
    /// Next stream offset to deliver in order.
    pub next: i64,
    /// Highest stream offset sent (data end, including FIN) seen so far.
    pub max_end: i64,
    pub seen_segment: bool,
    /// First valid FIN and RST (out of line: a connection has its closes only at its end).
    closes: Option<Box<EndCloses>>,
    pub fin_delivered: bool,
    /// Out-of-order segments waiting for the bytes before them, by offset.
    pub held: ThinVec<Held>,
    /// The last advertised receive window (unscaled) and the SYN's window-scale option.
    pub window: u16,
    pub wscale: Option<u8>,
    /// Highest acknowledgement this direction sent, as an offset in the other direction
    /// (`NO_ACK`: none yet; see `highest_ack()`).
    highest_ack: i64,
    /// Bytes were delivered in order (or reported as gaps).
    pub delivered: bool,
}

/// The closes of a direction.
#[derive(Debug, Default)]
struct EndCloses {
    fin: Option<CloseEvent>,
    rst: Option<CloseEvent>,
}

/// `Endpoint::highest_ack` before any acknowledgement.
const NO_ACK: i64 = i64::MIN;

impl Default for Endpoint {
    fn default() -> Endpoint {
        Endpoint {
            space: SeqSpace::new(SeqNumber(0), 0),
            has_space: false,
            isn: None,
            next: 0,
            max_end: 0,
            seen_segment: false,
            closes: None,
            fin_delivered: false,
            held: ThinVec::new(),
            window: 0,
            wscale: None,
            highest_ack: NO_ACK,
            delivered: false,
        }
    }
}

impl Endpoint {
    /// Highest acknowledgement this direction sent, as an offset in the other direction.
    pub fn highest_ack(&self) -> Option<i64> {
        (self.highest_ack != NO_ACK).then_some(self.highest_ack)
    }

    /// This direction acknowledged up to `ack` (an offset in the other direction).
    pub fn note_ack(&mut self, ack: i64) {
        if self.highest_ack == NO_ACK || ack > self.highest_ack {
            self.highest_ack = ack.max(NO_ACK + 1);
        }
    }

    /// First valid FIN.
    pub fn fin(&self) -> Option<CloseEvent> {
        self.closes.as_ref().and_then(|c| c.fin)
    }

    /// First valid RST.
    pub fn rst(&self) -> Option<CloseEvent> {
        self.closes.as_ref().and_then(|c| c.rst)
    }

    pub fn set_fin(&mut self, c: CloseEvent) {
        self.closes.get_or_insert_default().fin = Some(c);
    }

    pub fn set_rst(&mut self, c: CloseEvent) {
        self.closes.get_or_insert_default().rst = Some(c);
    }

    /// Bytes held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held.iter().map(|h| h.data.len()).sum()
    }

    /// True when this direction was seen from its SYN (offsets are relative to the ISN).
    pub fn seen_from_syn(&self) -> bool {
        self.isn.is_some()
    }

    /// The stream offset just past the bytes delivered, when any were.
    pub fn stream_end(&self) -> Option<i64> {
        self.delivered.then_some(self.next)
    }

    /// Closed by FIN or RST.
    pub fn closed(&self) -> bool {
        self.closes.is_some()
    }

    /// The mapping of this direction's sequence numbers to stream offsets, once known.
    pub fn space(&self) -> Option<SeqSpace> {
        self.has_space.then_some(self.space)
    }

    pub fn init_space(&mut self, seq: SeqNumber, off: i64) {
        self.space = SeqSpace::new(seq, off);
        self.has_space = true;
        self.next = off;
        self.max_end = off;
    }

    /// The stream offset of `seq` (observed: later numbers keep mapping right across wraps).
    pub fn observe(&mut self, seq: SeqNumber) -> i64 {
        if self.has_space {
            self.space.observe(seq)
        } else {
            0
        }
    }
}
