//! The flight recorder: keeps the packets of every open connection (within a total memory
//! cap) and writes those of the connections it is told to keep (findings, their retries and
//! client legs) to a pcap file, in their original order, with their original link type and
//! timestamps; the others are dropped a while after they end. One pass over any input, stdin
//! and live captures included.
//!
//! Its interface is the packets with the connection each belonged to
//! ([`FlightRecorder::packet`]), the connections that ended ([`FlightRecorder::ended`]), the
//! connections to keep ([`FlightRecorder::keep`]) and the capture time ([`FlightRecorder::tick`]).
//! A packet is written once no connection that may still be kept holds an earlier one, so
//! the file's order is the input's and analysing it again meets the requests, closes and
//! retries in the same order.

use crate::capture::PacketRef;
use crate::report::schema::FlaggedFile;
use crate::time::Timestamp;
use pcap::{Capture, Linktype, Precision, Savefile};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// (input, frame) -> frame in the written file.
pub type FrameMap = FxHashMap<(u32, u64), u64>;

/// Settings of the flight recorder.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// The pcap file to write.
    pub path: String,
    /// Packet bytes held at most (packets of connections not yet decided, and kept packets
    /// waiting for earlier ones); beyond it the oldest undecided connection's are dropped.
    pub max_bytes: usize,
}

/// Seconds an ended connection's packets are held for a verdict that may still keep them (the
/// retry window, the detector's settling and the client leg's wait, with a margin).
pub const RETAIN_AFTER_END_S: f64 = 9.0;
/// Packets held per connection: its first ones (the handshake) and its last ones.
const HEAD_PACKETS: usize = 3;
const MAX_PACKETS_PER_CONN: usize = 2048;
/// Bookkeeping per held packet, besides its bytes.
const PACKET_OVERHEAD: usize = 64;

/// A packet held.
#[derive(Debug)]
struct Held {
    ordinal: u64,
    input: u32,
    frame: u64,
    ts: Timestamp,
    linktype: u32,
    orig_len: u32,
    data: Box<[u8]>,
}

impl Held {
    fn size(&self) -> usize {
        self.data.len() + PACKET_OVERHEAD
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Open,
    Ended(Timestamp),
    Kept,
}

#[derive(Debug)]
struct History {
    packets: VecDeque<Held>,
    state: State,
    /// Packets dropped by the memory cap (counted as not kept if the connection is kept).
    dropped: u64,
}

/// The flight recorder; see the module's documentation.
pub struct FlightRecorder {
    cfg: RecorderConfig,
    conns: FxHashMap<u64, History>,
    /// (first held ordinal, connection) of the undecided connections holding packets.
    undecided: BTreeSet<(u64, u64)>,
    /// Packets to write, by ordinal, waiting for the undecided ones before them.
    ready: BTreeMap<u64, Held>,
    used: usize,
    file: Option<Savefile>,
    linktype: Option<u32>,
    error: Option<String>,
    /// (input, frame) -> frame in the file, for the packets written.
    frames: FrameMap,
    written: u64,
    kept_conns: u64,
    not_kept: u64,
}

impl FlightRecorder {
    pub fn new(cfg: RecorderConfig) -> FlightRecorder {
        FlightRecorder {
            cfg,
            conns: FxHashMap::default(),
            undecided: BTreeSet::new(),
            ready: BTreeMap::new(),
            used: 0,
            file: None,
            linktype: None,
            error: None,
            frames: FxHashMap::default(),
            written: 0,
            kept_conns: 0,
            not_kept: 0,
        }
    }

    /// Packet `pkt`, the `ordinal`-th of the input, belonged to connection `conn` (none: not
    /// a TCP packet the analysis tracked).
    pub fn packet(&mut self, conn: Option<u64>, ordinal: u64, pkt: &PacketRef<'_>) {
        let Some(conn) = conn else {
            return;
        };
        self.linktype.get_or_insert(pkt.linktype);
        let held = Held {
            ordinal,
            input: pkt.input as u32,
            frame: pkt.frame,
            ts: pkt.ts,
            linktype: pkt.linktype,
            orig_len: pkt.orig_len,
            data: pkt.data.into(),
        };
        self.used += held.size();
        let h = self.conns.entry(conn).or_insert_with(|| History {
            packets: VecDeque::new(),
            state: State::Open,
            dropped: 0,
        });
        if h.state == State::Kept {
            self.ready.insert(ordinal, held);
        } else {
            if h.packets.is_empty() {
                self.undecided.insert((ordinal, conn));
            }
            h.packets.push_back(held);
            if h.packets.len() > MAX_PACKETS_PER_CONN
                && let Some(p) = h.packets.remove(HEAD_PACKETS)
            {
                self.used -= p.size();
            }
        }
        self.enforce_cap();
    }

    /// Connection `conn` ended at capture time `now` (its packets are dropped a while later
    /// unless it is kept).
    pub fn ended(&mut self, conn: u64, now: Timestamp) {
        match self.conns.get_mut(&conn) {
            Some(h) if h.state == State::Kept => {
                self.conns.remove(&conn);
            }
            Some(h) => h.state = State::Ended(now),
            None => {}
        }
    }

    /// Keep connection `conn`: its packets, held and to come, go to the file.
    pub fn keep(&mut self, conn: u64) {
        let h = self.conns.entry(conn).or_insert_with(|| History {
            packets: VecDeque::new(),
            state: State::Open,
            dropped: 0,
        });
        if h.state == State::Kept {
            return;
        }
        self.kept_conns += 1;
        self.not_kept += h.dropped;
        let ended = matches!(h.state, State::Ended(_));
        h.state = State::Kept;
        if let Some(first) = h.packets.front() {
            self.undecided.remove(&(first.ordinal, conn));
        }
        for p in h.packets.drain(..) {
            self.ready.insert(p.ordinal, p);
        }
        if ended {
            self.conns.remove(&conn);
        }
    }

    /// Capture time is `now`: drop what ended long enough ago, write what can be written.
    pub fn tick(&mut self, now: Timestamp) {
        let expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, h)| {
                matches!(h.state, State::Ended(t) if now.secs_since(t) > RETAIN_AFTER_END_S)
            })
            .map(|(c, _)| *c)
            .collect();
        for c in expired {
            self.drop_conn(c);
        }
        let mark = self.undecided.first().map_or(u64::MAX, |&(o, _)| o);
        self.write_before(mark);
    }

    /// The end of the input: write every packet kept; returns what the file holds and the
    /// frame of each packet written ((input, frame) -> frame in the file).
    pub fn finish(mut self) -> Result<(FlaggedFile, FrameMap), String> {
        self.write_before(u64::MAX);
        if self.file.is_none() && self.error.is_none() {
            self.open(self.linktype.unwrap_or(1));
        }
        if let Some(mut f) = self.file.take()
            && let Err(e) = f.flush()
        {
            self.error.get_or_insert(format!("{}: {e}", self.cfg.path));
        }
        if let Some(e) = self.error {
            return Err(format!("--write-flagged: {e}"));
        }
        let summary = FlaggedFile {
            path: self.cfg.path.clone(),
            packets: self.written,
            connections: self.kept_conns,
            packets_not_kept: self.not_kept,
        };
        Ok((summary, self.frames))
    }

    fn drop_conn(&mut self, conn: u64) {
        if let Some(h) = self.conns.remove(&conn) {
            if let Some(first) = h.packets.front() {
                self.undecided.remove(&(first.ordinal, conn));
            }
            self.used -= h.packets.iter().map(Held::size).sum::<usize>();
        }
    }

    /// Over the cap: drop the packets of the undecided connections holding the oldest ones
    /// (a later keep writes only what is still held).
    fn enforce_cap(&mut self) {
        while self.used > self.cfg.max_bytes {
            let Some(&(first, conn)) = self.undecided.first() else {
                break;
            };
            self.undecided.remove(&(first, conn));
            if let Some(h) = self.conns.get_mut(&conn) {
                h.dropped += h.packets.len() as u64;
                let bytes: usize = h.packets.drain(..).map(|p| p.size()).sum();
                self.used -= bytes;
            }
            let mark = self.undecided.first().map_or(u64::MAX, |&(o, _)| o);
            self.write_before(mark);
        }
    }

    fn write_before(&mut self, mark: u64) {
        while let Some(entry) = self.ready.first_entry() {
            if *entry.key() >= mark {
                break;
            }
            let p = entry.remove();
            self.used -= p.size();
            self.write(&p);
        }
    }

    fn open(&mut self, linktype: u32) {
        let dlt = if linktype == crate::capture::linktype::RAW {
            12
        } else {
            linktype as i32
        };
        match Capture::dead_with_precision(Linktype(dlt), Precision::Nano)
            .and_then(|c| c.savefile(&self.cfg.path))
        {
            Ok(f) => self.file = Some(f),
            Err(e) => self.error = Some(format!("{}: {e}", self.cfg.path)),
        }
    }

    fn write(&mut self, p: &Held) {
        if self.file.is_none() && self.error.is_none() {
            self.open(self.linktype.unwrap_or(p.linktype));
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if Some(p.linktype) != self.linktype {
            // a pcap file has one link type: packets of another are left out (counted)
            self.not_kept += 1;
            return;
        }
        let ns = p.ts.0;
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
                // nanosecond precision: the field holds nanoseconds
                tv_usec: ns.rem_euclid(1_000_000_000) as libc::suseconds_t,
            },
            caplen: p.data.len() as u32,
            len: p.orig_len,
        };
        file.write(&pcap::Packet::new(&header, &p.data));
        self.written += 1;
        self.frames.insert((p.input, p.frame), self.written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(frame: u64, ms: i64, data: &[u8]) -> PacketRef<'_> {
        PacketRef {
            input: 0,
            frame,
            ts: Timestamp::from_nanos(ms * 1_000_000),
            linktype: 1,
            orig_len: data.len() as u32,
            data,
        }
    }

    fn recorder(name: &str, max_bytes: usize) -> (FlightRecorder, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("tcprace-rec-{}-{name}", std::process::id()));
        let cfg = RecorderConfig {
            path: path.to_string_lossy().into_owned(),
            max_bytes,
        };
        (FlightRecorder::new(cfg), path)
    }

    /// Packets of a kept connection are written in input order, once the connections holding
    /// earlier packets are decided; the others are dropped after they ended.
    #[test]
    fn kept_packets_come_in_input_order() {
        let (mut r, path) = recorder("order", 1 << 20);
        let data = [0u8; 60];
        // connection 1 (dropped) and 2 (kept) interleave; 3 is still open at the end
        for (frame, conn) in [(1, 1), (2, 2), (3, 1), (4, 2), (5, 3), (6, 2)] {
            r.packet(Some(conn), frame, &pkt(frame, frame as i64, &data));
        }
        r.packet(None, 7, &pkt(7, 7, &data));
        r.ended(1, Timestamp::from_nanos(10_000_000));
        r.keep(2);
        r.tick(Timestamp::from_nanos(20_000_000));
        // connection 1 is held for a verdict: nothing after its first packet is written yet
        assert_eq!(r.written, 0);
        r.tick(Timestamp::from_secs_f64(RETAIN_AFTER_END_S + 1.0));
        // connection 3 holds frame 5: frames 2 and 4 are written, 6 waits
        assert_eq!(r.written, 2);
        let (summary, frames) = r.finish().unwrap();
        assert_eq!(summary.packets, 3);
        assert_eq!(summary.connections, 1);
        let mut got: Vec<(u64, u64)> = frames.iter().map(|(k, v)| (k.1, *v)).collect();
        got.sort();
        assert_eq!(got, vec![(2, 1), (4, 2), (6, 3)]);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 24 + 3 * (16 + 60));
        let _ = std::fs::remove_file(path);
    }

    /// Over the memory cap, the undecided connection holding the oldest packets loses them
    /// (counted); what is kept later is still written.
    #[test]
    fn the_memory_cap_drops_the_oldest_undecided() {
        let data = [0u8; 936];
        let (mut r, path) = recorder("cap", 3 * (936 + PACKET_OVERHEAD));
        r.packet(Some(1), 1, &pkt(1, 1, &data));
        r.packet(Some(2), 2, &pkt(2, 2, &data));
        r.packet(Some(2), 3, &pkt(3, 3, &data));
        assert_eq!(r.not_kept, 0);
        r.packet(Some(3), 4, &pkt(4, 4, &data));
        // dropped: counted once the connection is kept
        assert_eq!(r.not_kept, 0);
        assert!(r.used <= 3 * (936 + PACKET_OVERHEAD));
        r.keep(1);
        r.keep(2);
        let (summary, _) = r.finish().unwrap();
        assert_eq!((summary.packets, summary.packets_not_kept), (2, 1));
        let _ = std::fs::remove_file(path);
    }
}
