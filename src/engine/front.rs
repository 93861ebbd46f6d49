//! The front of the analysis: each packet decoded, and copies of segments recognised
//! ([`CopyFilter`]), once and in the order of the input, before the packets are split into
//! shards: a copy of a segment under another address pair (a NAT's other side) is moved to
//! its connection's addresses here, so that it is analysed in the shard of its connection.
//! The decoded packet stays with the caller (it is large; it is passed on by reference).
//!
//! The front runs on the driver's thread, or on a thread of its own ([`run_front`]) between
//! the driver and the shards' threads.

use super::Config;
use super::batch::{Feed, Intake, Received};
use super::split::shard_of_decoded;
use crate::capture::PacketRef;
use crate::decode::{Decoded, Decoder};
use crate::flow::{CopyFilter, Sighting};
use crate::time::Timestamp;

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

    #[inline]
    pub fn decode<'a>(&self, pkt: &PacketRef<'a>) -> Decoded<'a> {
        self.decoder.decode(pkt.linktype, pkt.data, pkt.orig_len)
    }

    /// What the copy filter finds about a decoded packet (moving a segment captured under an
    /// alias to its connection's addresses).
    #[inline]
    pub fn check(&mut self, decoded: &mut Decoded<'_>, ts: Timestamp) -> Sighting<'_> {
        match decoded {
            Decoded::Tcp(seg) => self.copies.check(seg, ts),
            Decoded::Skip(..) => Sighting::default(),
        }
    }

    /// Capture time advanced to `now`.
    pub fn tick(&mut self, now: Timestamp) {
        self.copies.expire(now);
    }
}

/// Body of the front's thread: every packet the driver hands over decoded, checked for copies
/// and handed to its shard's thread (`feeds`: shard 1's first; the driver's shard 0 takes
/// none), the epochs' ends to all of them, in the order of the input.
pub(super) fn run_front(mut front: Front, by_hosts: bool, mut feeds: Vec<Feed>, intake: Intake) {
    let shards = feeds.len() + 1;
    intake.take_all(|received| match received {
        Received::Packet {
            pkt, ordinal, now, ..
        } => {
            let mut decoded = front.decode(&pkt);
            let sighting = front.check(&mut decoded, pkt.ts);
            let shard = shard_of_decoded(&decoded, by_hosts, shards).max(1);
            feeds[shard - 1].push_packet(&pkt, ordinal, now, &sighting);
        }
        Received::Epoch(now) => {
            front.tick(now);
            feeds.iter_mut().for_each(|f| f.end_epoch(now));
        }
        Received::End(now) => feeds.iter_mut().for_each(|f| f.hang_up(now)),
    });
}
