//! The segments of a connection's last exchanges, kept while it is tracked (a small ring), for
//! the ladder diagram of each finding on it: which side sent what, when, with which flags and
//! relative sequence numbers.

use super::evidence::RelativeSeq;
use crate::flow::{Dir, HandshakeTimes, SegMeta};
use crate::report::schema::{Ladder, LadderSegment};
use std::collections::VecDeque;

/// Segments kept per connection (the last ones).
pub(crate) const TRACE_SEGMENTS: usize = 24;

/// One segment as the capture showed it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Traced {
    pub dir: Dir,
    pub flags: u8,
    pub len: u32,
    pub meta: SegMeta,
}

/// The last segments of a connection.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    ring: VecDeque<Traced>,
    /// Segments seen in all.
    total: u64,
}

impl Trace {
    pub fn push(&mut self, t: Traced) {
        if self.ring.len() == TRACE_SEGMENTS {
            self.ring.pop_front();
        }
        self.ring.push_back(t);
        self.total += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// The ladder of a finding on this connection (client direction `client`).
    pub fn ladder(&self, client: Dir, rel: RelativeSeq, hs: &HandshakeTimes) -> Ladder {
        let segments = self
            .ring
            .iter()
            .map(|t| {
                let from_client = t.dir == client;
                let (own, other) = if from_client {
                    (rel.client, rel.server)
                } else {
                    (rel.server, rel.client)
                };
                LadderSegment {
                    from_client,
                    frame: t.meta.at.frame,
                    time: t.meta.at.ts,
                    flags: flag_names(t.flags),
                    seq: t.meta.off + own,
                    ack: t.meta.ack_off.map(|a| a + other),
                    len: t.len,
                    flagged_frame: None,
                }
            })
            .collect();
        Ladder {
            captured_near: captured_near(hs),
            far_delay_s: far_delay(hs),
            earlier_segments: self.total - self.ring.len() as u64,
            segments,
        }
    }
}

/// TCP flags as Wireshark lists them.
fn flag_names(f: u8) -> String {
    const NAMES: [(u8, &str); 6] = [
        (0x02, "SYN"),
        (0x01, "FIN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x10, "ACK"),
        (0x20, "URG"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    names.join(", ")
}

/// The one-way delay from the capture point to the far end: half the turn-around of the far
/// side in the handshake (both, halved, when captured in between).
fn far_delay(hs: &HandshakeTimes) -> Option<f64> {
    let (syn, syn_ack, ack) = (hs.syn?, hs.syn_ack?, hs.ack?);
    let server_turn = syn_ack.secs_since(syn).max(0.0);
    let client_turn = ack.secs_since(syn_ack).max(0.0);
    Some(match captured_near(hs)? {
        "client" => server_turn / 2.0,
        "server" => client_turn / 2.0,
        _ => (server_turn + client_turn) / 4.0,
    })
}

/// Where the capture was taken, from the handshake: near the client its ACK follows the
/// SYN-ACK at once while the SYN-ACK takes a round trip after the SYN; near the server the
/// other way round.
fn captured_near(hs: &HandshakeTimes) -> Option<&'static str> {
    let (syn, syn_ack, ack) = (hs.syn?, hs.syn_ack?, hs.ack?);
    let server_turn = syn_ack.secs_since(syn);
    let client_turn = ack.secs_since(syn_ack);
    if server_turn < 0.0 || client_turn < 0.0 {
        return None;
    }
    Some(if client_turn * 4.0 < server_turn {
        "client"
    } else if server_turn * 4.0 < client_turn {
        "server"
    } else {
        "between"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn flags_and_vantage() {
        assert_eq!(flag_names(0x11), "FIN, ACK");
        assert_eq!(flag_names(0x04), "RST");
        let t = |ms: f64| Some(Timestamp::from_secs_f64(ms / 1000.0));
        let near_client = HandshakeTimes {
            syn: t(0.0),
            syn_ack: t(20.0),
            ack: t(20.05),
        };
        assert_eq!(captured_near(&near_client), Some("client"));
        let near_server = HandshakeTimes {
            syn: t(0.0),
            syn_ack: t(0.05),
            ack: t(20.0),
        };
        assert_eq!(captured_near(&near_server), Some("server"));
        assert_eq!(captured_near(&HandshakeTimes::default()), None);
    }

    #[test]
    fn the_ring_keeps_the_last_segments() {
        let mut tr = Trace::default();
        for i in 0..(TRACE_SEGMENTS as u64 + 5) {
            let mut meta = SegMeta::default();
            meta.at.frame = i + 1;
            meta.off = i as i64;
            tr.push(Traced {
                dir: Dir::Fwd,
                flags: 0x18,
                len: 1,
                meta,
            });
        }
        let l = tr.ladder(
            Dir::Fwd,
            RelativeSeq {
                client: 1,
                server: 1,
            },
            &HandshakeTimes::default(),
        );
        assert_eq!(l.segments.len(), TRACE_SEGMENTS);
        assert_eq!(l.earlier_segments, 5);
        assert_eq!(l.segments[0].frame, 6);
        assert_eq!(l.segments[0].seq, 6);
        assert!(l.segments[0].from_client && l.segments[0].flags == "PSH, ACK");
    }
}
