//! Property tests of reassembly: however a conversation's two byte streams are cut into
//! segments, sent again in part, and reordered, each direction's events deliver its bytes once,
//! in order, and end with one `Eof` at its FIN.
//!
//! Every segment acknowledges what its sender had seen of the other direction in order (as a
//! receiver would), so acknowledgements never reveal a gap. Within the out-of-order buffer's
//! bounds nothing is missing; past them the buffer gives up on bytes that then arrive late,
//! which become gaps, and the data and gaps still tile each stream exactly.

use super::tests::{C, Conn, FIN, PSH, S, seg};
use super::{Dir, PerDir};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::fmt;

/// One direction's bytes and how they are sent.
#[derive(Clone, Debug)]
struct Stream {
    data: Vec<u8>,
    /// Segment boundaries (positions into the data).
    cuts: Vec<Index>,
    /// Ranges sent again (retransmissions and overlaps), anywhere in the order.
    resends: Vec<(Index, Index)>,
    /// The FIN in a segment of its own rather than on the last data segment.
    fin_alone: bool,
    /// The FIN sent again.
    fin_twice: bool,
}

/// A stream of up to `max_len` bytes in up to `max_cuts + 1` segments, with up to
/// `max_resends` ranges of it sent again.
fn stream(max_len: usize, max_cuts: usize, max_resends: usize) -> impl Strategy<Value = Stream> {
    (
        vec(any::<u8>(), 0..=max_len),
        vec(any::<Index>(), 0..=max_cuts),
        vec(any::<(Index, Index)>(), 0..=max_resends),
        any::<(bool, bool)>(),
    )
        .prop_map(|(data, cuts, resends, (fin_alone, fin_twice))| Stream {
            data,
            cuts,
            resends,
            fin_alone,
            fin_twice,
        })
}

/// A segment to send: direction, stream offset, payload length, FIN.
type Planned = (Dir, usize, usize, bool);

impl Stream {
    fn segments(&self, d: Dir) -> Vec<Planned> {
        let len = self.data.len();
        let mut at: Vec<usize> = self.cuts.iter().map(|i| i.index(len + 1)).collect();
        at.extend([0, len]);
        at.sort_unstable();
        at.dedup();
        let mut segs: Vec<Planned> = at
            .windows(2)
            .map(|w| (d, w[0], w[1] - w[0], false))
            .collect();
        match segs.last_mut() {
            Some(last) if !self.fin_alone => last.3 = true,
            _ => segs.push((d, len, 0, true)),
        }
        if self.fin_twice {
            segs.push((d, len, 0, true));
        }
        for (a, b) in &self.resends {
            let (a, b) = (a.index(len + 1), b.index(len + 1));
            if a != b {
                segs.push((d, a.min(b), a.abs_diff(b), false));
            }
        }
        segs
    }
}

/// A conversation: both streams, the initial sequence numbers and the packet order (swaps
/// applied to the streams' segments, client's first).
#[derive(Clone)]
struct Plan {
    streams: PerDir<Stream>,
    isn: PerDir<u32>,
    swaps: Vec<(Index, Index)>,
}

impl Plan {
    /// The segments in the order they are captured.
    fn order(&self) -> Vec<Planned> {
        let mut order: Vec<Planned> = Dir::BOTH
            .iter()
            .flat_map(|&d| self.streams[d].segments(d))
            .collect();
        let n = order.len();
        for (a, b) in &self.swaps {
            order.swap(a.index(n), b.index(n));
        }
        order
    }
}

/// What a failing case is: stream lengths, ISNs and the packets in order.
impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lens = self.streams.0.each_ref().map(|s| s.data.len());
        writeln!(f, "bytes {lens:?}, ISNs {:?}, packets:", self.isn.0)?;
        for (d, off, len, fin) in self.order() {
            let fin = if fin { " FIN" } else { "" };
            writeln!(f, "  {d:?} {off}..{}{fin}", off + len)?;
        }
        Ok(())
    }
}

fn plan(
    max_len: usize,
    max_cuts: usize,
    max_resends: usize,
    max_swaps: usize,
) -> impl Strategy<Value = Plan> {
    let s = || stream(max_len, max_cuts, max_resends);
    (
        s(),
        s(),
        any::<(u32, u32)>(),
        vec(any::<(Index, Index)>(), 0..=max_swaps),
    )
        .prop_map(|(fwd, rev, isn, swaps)| Plan {
            streams: PerDir::new(fwd, rev),
            isn: PerDir::new(isn.0, isn.1),
            swaps,
        })
}

/// Sends the plan's segments after a handshake; returns the connection and its packet count
/// per direction.
fn send(p: &Plan) -> (Conn, PerDir<usize>) {
    let mut counts = PerDir::new(0, 0);
    // per direction: which bytes (and, last, the FIN) the capture has shown
    let mut seen = PerDir(
        p.streams
            .0
            .each_ref()
            .map(|s| vec![false; s.data.len() + 1]),
    );
    let mut c = Conn::new();
    c.handshake(p.isn[Dir::Fwd], p.isn[Dir::Rev]);
    for (d, off, len, fin) in p.order() {
        counts[d] += 1;
        let other = d.other();
        let in_order = seen[other].iter().take_while(|&&s| s).count();
        let ack = p.isn[other].wrapping_add(1 + in_order as u32);
        let seq = p.isn[d].wrapping_add(1 + off as u32);
        let bytes = &p.streams[d].data[off..off + len];
        let (src, dst) = if d == Dir::Fwd { (C, S) } else { (S, C) };
        c.feed(seg(src, dst, seq, ack, if fin { FIN } else { PSH }, bytes));
        let shown = &mut seen[d];
        shown[off..off + len].fill(true);
        if fin {
            shown[off + len] = true;
        }
    }
    (c, counts)
}

/// Each direction's data and gaps tile its stream in order, the data are the stream's bytes,
/// and one `Eof` at the stream's end comes last. Returns the gap bytes per direction.
fn check_delivery(p: &Plan, c: &Conn) -> Result<PerDir<u64>, TestCaseError> {
    let mut gap_bytes = PerDir::new(0, 0);
    for d in Dir::BOTH {
        let stream = &p.streams[d].data;
        let mut next = 0i64;
        let mut ended = false;
        for &(_, off, len) in c.sink.log.iter().filter(|e| e.0 == d) {
            prop_assert!(!ended, "{d:?}: an event after the end");
            prop_assert_eq!(off, next, "{:?}: events out of order", d);
            match len {
                Some(n) => next += n as i64,
                None => ended = true,
            }
        }
        prop_assert!(ended, "{d:?}: no end");
        prop_assert_eq!(next, stream.len() as i64, "{:?}: stream length", d);
        for (_, off, bytes) in c.sink.data.iter().filter(|e| e.0 == d) {
            let off = *off as usize;
            prop_assert_eq!(
                bytes,
                &stream[off..off + bytes.len()],
                "{:?}: bytes at {}",
                d,
                off
            );
        }
        gap_bytes[d] = c.sink.gaps.iter().filter(|g| g.0 == d).map(|g| g.2).sum();
        prop_assert!(c.tcp.dirs[d].held.is_empty(), "{d:?}: segments still held");
    }
    Ok(gap_bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Within the reorder buffer's bounds (at most 53 segments a direction, a few KiB): every
    /// byte is delivered, exactly once, whatever the segmentation and order.
    #[test]
    fn any_segmentation_and_order_delivers_each_stream_once(p in plan(3000, 40, 10, 120)) {
        let (c, counts) = send(&p);
        prop_assert!(counts.0.iter().all(|&n| n <= 64));
        let gaps = check_delivery(&p, &c)?;
        prop_assert_eq!(gaps, PerDir::new(0, 0), "gaps within the bounds");
        prop_assert_eq!(c.stats.reorder_buffer_overflows, 0);
        prop_assert_eq!(c.sink.bytes(Dir::Fwd), p.streams[Dir::Fwd].data.clone());
        prop_assert_eq!(c.sink.bytes(Dir::Rev), p.streams[Dir::Rev].data.clone());
    }

    /// Past the bounds (up to 200 segments a direction, shuffled): the buffer gives up on some
    /// bytes, which are gaps, yet what is delivered is still the stream, in order, once.
    #[test]
    fn past_the_reorder_bounds_bytes_are_gaps_never_wrong(p in plan(600, 200, 20, 400)) {
        let (c, _) = send(&p);
        let gaps = check_delivery(&p, &c)?;
        let overflowed = c.stats.reorder_buffer_overflows > 0;
        prop_assert_eq!(gaps.0.iter().sum::<u64>() > 0, overflowed);
    }
}

/// The second property is not vacuous: a stream sent backwards a byte a segment overflows the
/// reorder buffer at its 65th segment.
#[test]
fn a_stream_sent_backwards_overflows_the_bounds() {
    let data: Vec<u8> = (0..100).collect();
    let mut c = Conn::new();
    c.handshake(0, 0);
    for off in (0..100).rev() {
        c.feed(seg(C, S, 1 + off as u32, 1, PSH, &data[off..=off]));
    }
    assert_eq!(c.stats.reorder_buffer_overflows, 1);
    assert_eq!(c.sink.gaps, vec![(Dir::Fwd, 0, 35)]);
    assert_eq!(c.sink.bytes(Dir::Fwd), &data[35..]);
}
