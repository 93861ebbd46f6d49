//! The segments of a simulated conversation: who sent them, flags, sequence numbers.

use crate::time::Timestamp;
use std::ops::BitOr;

/// One end of the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub(super) fn idx(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// Where the capture is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vantage {
    /// On the client host: client segments are captured when sent (t), server segments when
    /// they arrive (t + d).
    Client,
    /// On the server host (the reverse).
    Server,
    /// Half-way: every segment is captured at t + d/2.
    Middle,
}

impl Vantage {
    pub(super) fn side(self) -> Option<Side> {
        match self {
            Vantage::Client => Some(Side::Client),
            Vantage::Server => Some(Side::Server),
            Vantage::Middle => None,
        }
    }
}

/// The form of a reset sent in reply to a segment by a kernel that has no socket for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RstReplyForm {
    /// RFC 793 reply to a segment carrying ACK: `seq = ack of that segment`, no ACK flag
    /// (what Linux `tcp_v4_send_reset` puts on the wire).
    #[default]
    Bare,
    /// RST|ACK: `seq = ack of that segment`, `ack = its end sequence number`.
    WithAck,
}

/// Index of a segment in its conversation (in send order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegId(pub usize);

/// TCP flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// `a + n` in sequence space (mod 2^32).
pub fn seq_add(a: u32, n: u32) -> u32 {
    a.wrapping_add(n)
}

/// `a < b` in sequence space (RFC 1982 style).
pub(super) fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// A segment as sent by one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub from: Side,
    /// Send time.
    pub sent: Timestamp,
    pub seq: u32,
    /// Acknowledgment number; `Some` iff the ACK flag is set.
    pub ack: Option<u32>,
    pub flags: Flags,
    pub payload: Vec<u8>,
    pub window: u16,
    /// Captured at the vantage point (false: see [`Conversation::drop_capture`]).
    pub captured: bool,
    /// Reaches the peer (false: see [`Conversation::lose`]; forged segments never do).
    pub delivered: bool,
    /// Injected by a third party ([`Conversation::forge`]): no effect on either endpoint.
    pub forged: bool,
    pub retransmission_of: Option<SegId>,
    pub ip_id: u16,
    /// Include SYN options (MSS, SACK permitted).
    pub syn_options: bool,
}

impl Segment {
    /// Sequence space consumed: payload + SYN + FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32
            + u32::from(self.flags.contains(Flags::SYN))
            + u32::from(self.flags.contains(Flags::FIN))
    }

    /// Sequence number just after this segment.
    pub fn end_seq(&self) -> u32 {
        seq_add(self.seq, self.seq_len())
    }
}
