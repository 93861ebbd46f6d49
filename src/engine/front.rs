//! The front of the analysis: each packet decoded, and copies of segments recognised
//! ([`CopyFilter`]), once and in the order of the input, before the packets are split into
//! shards: a copy of a segment under another address pair (a NAT's other side) is moved to
//! its connection's addresses here, so that it is analysed in the shard of its connection.

use super::Config;
use crate::capture::PacketRef;
use crate::decode::{Decoded, Decoder, Segment, SkipReason};
use crate::flow::{CopyFilter, Sighting};
use crate::time::Timestamp;

/// A packet through the front. (The large variant is the common one: boxing it would
/// allocate per packet.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Fronted<'a> {
    /// Not analysed: why, and what was wrong.
    Skip(SkipReason, Option<String>),
    /// A TCP segment (in its connection's view) and what the copy filter found.
    Tcp(Segment<'a>, Sighting),
}

/// Decoder and copy filter.
pub(super) struct Front {
    decoder: Decoder,
    copies: CopyFilter,
}

impl Front {
    pub fn new(cfg: &Config) -> Front {
        Front {
            decoder: cfg.decoder(),
            copies: CopyFilter::new(cfg.table.idle_timeout, cfg.table.max_connections),
        }
    }

    pub fn take<'a>(&mut self, pkt: &PacketRef<'a>) -> Fronted<'a> {
        match self.decoder.decode(pkt.linktype, pkt.data, pkt.orig_len) {
            Decoded::Skip(reason, detail) => Fronted::Skip(reason, detail),
            Decoded::Tcp(mut seg) => {
                let sighting = self.copies.check(&mut seg, pkt.ts);
                Fronted::Tcp(seg, sighting)
            }
        }
    }

    /// Capture time advanced to `now`.
    pub fn tick(&mut self, now: Timestamp) {
        self.copies.expire(now);
    }
}
