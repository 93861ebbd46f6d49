//! TCP sequence numbers: 32-bit serial arithmetic on the wire (RFC 1982 style), and a mapping of
//! each direction's sequence space onto 64-bit byte offsets that keep increasing across the
//! 2^32 wrap.

use std::cmp::Ordering;

/// A 32-bit TCP sequence (or acknowledgement) number with wrapping comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    pub fn wrapping_add(self, n: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n))
    }

    /// Signed distance `self - other`, valid while the two are less than 2^31 apart.
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

/// Maps one direction's 32-bit sequence numbers to 64-bit stream offsets.
///
/// The anchor follows the highest sequence number seen, so any number within ±2^31 of it maps
/// unambiguously, however many times the 32-bit space has wrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpace {
    anchor_seq: SeqNumber,
    anchor_off: i64,
}

impl SeqSpace {
    /// `seq` is stream offset `off`.
    pub fn new(seq: SeqNumber, off: i64) -> SeqSpace {
        SeqSpace {
            anchor_seq: seq,
            anchor_off: off,
        }
    }

    /// The stream offset of `seq`.
    pub fn offset(&self, seq: SeqNumber) -> i64 {
        self.anchor_off + i64::from(seq.diff(self.anchor_seq))
    }

    /// The sequence number at stream offset `off`.
    #[cfg(test)]
    pub fn seq_at(&self, off: i64) -> SeqNumber {
        SeqNumber(
            self.anchor_seq
                .0
                .wrapping_add((off - self.anchor_off) as u32),
        )
    }

    /// Note that `seq` was seen; moves the anchor forward so later numbers keep mapping right.
    pub fn observe(&mut self, seq: SeqNumber) -> i64 {
        let off = self.offset(seq);
        if off > self.anchor_off {
            self.anchor_seq = seq;
            self.anchor_off = off;
        }
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps() {
        let a = SeqNumber(u32::MAX - 10);
        let b = a.wrapping_add(20);
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(
            SeqNumber(5).partial_cmp(&SeqNumber(5)),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn offsets_keep_growing_across_the_wrap() {
        let isn = SeqNumber(u32::MAX - 100);
        let mut space = SeqSpace::new(isn.wrapping_add(1), 0);
        assert_eq!(space.observe(isn.wrapping_add(1)), 0);
        assert_eq!(space.observe(isn.wrapping_add(101)), 100); // 0xffff_ffff + 1 wraps to 0
        assert_eq!(space.observe(SeqNumber(0)), 100);
        assert_eq!(space.observe(SeqNumber(1000)), 1100);
        // an old retransmission from before the wrap still maps below
        assert_eq!(space.offset(isn.wrapping_add(51)), 50);
        // several wraps: walk forward in 1 GiB steps
        let mut seq = SeqNumber(1000);
        let mut off = 1100i64;
        for _ in 0..12 {
            seq = seq.wrapping_add(1 << 30);
            off += 1 << 30;
            assert_eq!(space.observe(seq), off);
        }
        assert!(off > u32::MAX as i64 * 2);
        assert_eq!(space.seq_at(off), seq);
        assert_eq!(space.seq_at(0), isn.wrapping_add(1));
    }

    #[test]
    fn negative_offsets_for_data_before_the_anchor() {
        let space = SeqSpace::new(SeqNumber(10), 0);
        assert_eq!(space.offset(SeqNumber(5)), -5);
        assert_eq!(space.offset(SeqNumber(u32::MAX)), -11);
    }
}
