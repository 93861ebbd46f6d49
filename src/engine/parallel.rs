//! Parallel analysis: the packets are split into shards by the unordered pair of the IP
//! addresses of their TCP segment's connection ([`shard_of_pair`]), so that everything that
//! interacts (both directions of a connection, every epoch of a 4-tuple, a request and its
//! retry on another connection) is analysed by one [`Analyzer`]. The driver's thread puts
//! every packet through the [`Front`] first, in input order: it decodes the packet (a
//! tunnelled segment is sharded by its inner addresses, not the tunnel's) and recognises
//! copies of segments, moving a copy captured under a NAT's other address pair to the
//! addresses its connection was first seen with; so both sides of a NAT land in the shard of
//! the connection, whatever their own addresses hash to. Shard 0 is analysed on the driver's
//! thread, which also hands the others' packets over (with what the front found) in recycled
//! batches; each other shard has a thread of its own. Every shard gets the global ordinal and
//! capture time with each packet and the whole input's ticks, so the merged report ([`merge`])
//! equals that of one analyzer over the whole input, as long as the cap on tracked
//! connections is not reached (the shards share `--max-connections`).
//!
//! A retry is matched to its lost request by the addresses each connection was first seen
//! with. Behind a NAT, a connection first seen on the server's side of it (a capture that
//! started while the connection was open, whose first packet came from the server) and its
//! retry first seen on the client's side (its SYN) have different addresses: the retry is not
//! linked (the finding says `lost`), in one shard as in several.
//!
//! [`merge`]: super::result::merge

use super::Config;
use super::analyzer::Analyzer;
use super::front::Front;
use super::result::ShardResult;
use crate::capture::{PacketRef, StoredPacket, Warning};
use crate::decode::{Decoded, Decoder};
use crate::detect::client_leg::SharedLegs;
use crate::flow::Sighting;
use crate::flow::copies::Moved;
use crate::report::WarningPrinter;
use crate::time::Timestamp;
use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Items per batch handed to a shard thread ...
const BATCH_ITEMS: usize = 4096;
/// ... or packet bytes.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches in circulation per shard thread (memory: about `BATCHES * BATCH_BYTES` each).
const BATCHES: usize = 3;

/// `Item::Packet::sighting` of a plain segment (no copy, not moved).
const PLAIN: u32 = u32::MAX;

/// What a shard thread is told, in the order of the input.
enum Item {
    /// A packet (its bytes in the batch's `data`), its ordinal in the whole input, the
    /// input's capture time when it came and what the front found (an index into the batch's
    /// `sightings`, or `PLAIN`).
    Packet {
        packet: StoredPacket,
        ordinal: u64,
        now: Timestamp,
        sighting: u32,
    },
    Tick(Timestamp),
    /// The capture time at the end of the input.
    End(Timestamp),
}

struct Batch {
    items: Vec<Item>,
    data: Vec<u8>,
    /// What the front found about the packets that are not plain.
    sightings: Vec<(bool, Option<Moved>)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            items: Vec::with_capacity(BATCH_ITEMS),
            data: Vec::with_capacity(BATCH_BYTES + 256 * 1024),
            sightings: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.items.clear();
        self.data.clear();
        self.sightings.clear();
    }

    fn full(&self) -> bool {
        self.items.len() >= BATCH_ITEMS || self.data.len() >= BATCH_BYTES
    }
}

/// The dispatcher's side of a shard thread.
struct Shard {
    batch: Batch,
    made: usize,
    full: Option<SyncSender<Batch>>,
    free: Receiver<Batch>,
    thread: JoinHandle<ShardResult>,
}

impl Shard {
    fn start(
        analyzer: Analyzer,
        printer: Arc<Mutex<WarningPrinter>>,
        n: usize,
    ) -> Result<Shard, String> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        let (free_tx, free_rx) = mpsc::channel::<Batch>();
        let thread = std::thread::Builder::new()
            .name(format!("tcprace-shard{n}"))
            .spawn(move || run_shard(analyzer, full_rx, free_tx, &printer))
            .map_err(|e| format!("cannot start an analysis thread: {e}"))?;
        Ok(Shard {
            batch: Batch::new(),
            made: 1,
            full: Some(full_tx),
            free: free_rx,
            thread,
        })
    }

    fn push(&mut self, item: Item) {
        self.batch.items.push(item);
        if self.batch.full() {
            self.send();
        }
    }

    fn push_packet(&mut self, p: &PacketRef<'_>, ordinal: u64, now: Timestamp, s: &Sighting<'_>) {
        let packet = StoredPacket::store(p, &mut self.batch.data);
        let sighting = if !s.duplicate && s.moved.is_none() {
            PLAIN
        } else {
            self.batch.sightings.push((s.duplicate, s.moved.copied()));
            (self.batch.sightings.len() - 1) as u32
        };
        self.push(Item::Packet {
            packet,
            ordinal,
            now,
            sighting,
        });
    }

    /// Hand the current batch over and take an empty one.
    fn send(&mut self) {
        let next = if self.made < BATCHES {
            self.made += 1;
            Batch::new()
        } else {
            match self.free.recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                // the thread ended early (it panicked): `finish` reports it
                Err(_) => Batch::new(),
            }
        };
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.full {
            let _ = tx.send(full);
        }
    }

    fn finish(mut self, now: Timestamp) -> ShardResult {
        self.batch.items.push(Item::End(now));
        self.send();
        drop(self.full.take());
        match self.thread.join() {
            Ok(parts) => parts,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Body of a shard thread: analyse the batches until the dispatcher hangs up.
fn run_shard(
    mut analyzer: Analyzer,
    full: Receiver<Batch>,
    free: Sender<Batch>,
    printer: &Mutex<WarningPrinter>,
) -> ShardResult {
    let mut now = Timestamp::default();
    for batch in full {
        for item in &batch.items {
            match *item {
                Item::Packet {
                    packet,
                    ordinal,
                    now: at,
                    sighting,
                } => {
                    let pkt = packet.get(&batch.data);
                    now = at;
                    let s = batch.sightings.get(sighting as usize).map_or_else(
                        Sighting::default,
                        |(duplicate, moved)| Sighting {
                            duplicate: *duplicate,
                            moved: moved.as_ref(),
                        },
                    );
                    if let Some(w) = analyzer.on_routed(pkt, ordinal, at, &s) {
                        print(printer, &w);
                    }
                }
                Item::Tick(at) => {
                    now = at;
                    analyzer.tick(at);
                }
                Item::End(at) => now = at,
            }
        }
        let _ = free.send(batch);
    }
    analyzer.into_result(now)
}

pub(super) fn print(printer: &Mutex<WarningPrinter>, w: &Warning) {
    if let Ok(mut p) = printer.lock() {
        p.print(w);
    }
}

/// Share of the packets (in percent, by IP pair) the main thread analyses when there are two
/// shards. The main thread also hands the other shard its packets, but the worker shares its core
/// with the reader thread: 60 % measured fastest on bench/run.sh (0.42 s against 0.47 s at 50 %)
/// when the main thread only looked at the IP addresses to dispatch. It now decodes every packet
/// and runs the copy filter (about 10 % more instructions on the main thread, callgrind on the
/// bench capture): 55 % keeps its part of the work where it was.
const MAIN_SHARE_PERCENT: usize = 55;

/// Which of `shards` parts a connection between `a` and `b` belongs to: a hash of the
/// unordered pair, so that both directions of every connection between two hosts, and the
/// retries of a request from one host to another, fall into the same part.
fn hash_pair(a: IpAddr, b: IpAddr, shards: usize) -> usize {
    let word = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let (a, b) = (word(a), word(b));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    // an IPv4 pair is one word: the lower address, then the higher
    let x = (lo as u64)
        ^ ((lo >> 64) as u64).rotate_left(17)
        ^ (hi as u64).rotate_left(32)
        ^ ((hi >> 64) as u64).rotate_left(49);
    let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % shards as u64) as usize
}

/// The shard the connection between `a` and `b` is analysed in: a split of a hash of the
/// unordered pair of IP addresses.
pub(super) fn shard_of_pair(a: IpAddr, b: IpAddr, shards: usize) -> usize {
    match shards {
        0 | 1 => 0,
        2 => usize::from(hash_pair(a, b, 100) >= MAIN_SHARE_PERCENT),
        n => hash_pair(a, b, n),
    }
}

/// The shard a packet would be analysed in, by the addresses of the TCP segment inside
/// (through tunnels; not knowing of copies under other addresses, which follow the copy first
/// seen). Packets that are not TCP go to shard 0.
pub fn shard_of(linktype: u32, data: &[u8], shards: usize) -> usize {
    match Decoder::default().decode(linktype, data, data.len() as u32) {
        Decoded::Tcp(seg) => shard_of_pair(seg.src.ip(), seg.dst.ip(), shards),
        Decoded::Skip(..) => 0,
    }
}

/// The shards other than the driver's own (shard 0), each on a thread of its own, and the
/// front every packet goes through first.
pub(super) struct Shards {
    front: Front,
    others: Vec<Shard>,
}

impl Shards {
    /// Start `count - 1` shard threads (none for one shard). The shards share the cap on
    /// tracked connections: `config` must carry each shard's part of it.
    pub fn start(
        count: usize,
        config: &Config,
        inputs: &[String],
        legs: &SharedLegs,
        printer: &Arc<Mutex<WarningPrinter>>,
    ) -> Result<Shards, String> {
        let mut others = Vec::with_capacity(count.saturating_sub(1));
        for n in 1..count.max(1) {
            let a = Analyzer::shard(config.clone(), inputs.to_vec(), legs.clone(), n);
            others.push(Shard::start(a, printer.clone(), n)?);
        }
        Ok(Shards {
            front: Front::new(config),
            others,
        })
    }

    /// Analyse a packet in its shard (`main` is shard 0).
    pub fn dispatch(
        &mut self,
        main: &mut Analyzer,
        pkt: PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
        printer: &Mutex<WarningPrinter>,
    ) {
        let mut decoded = self.front.decode(&pkt);
        let sighting = self.front.check(&mut decoded, pkt.ts);
        let shard = match &decoded {
            Decoded::Tcp(seg) => shard_of_pair(seg.src.ip(), seg.dst.ip(), self.others.len() + 1),
            Decoded::Skip(..) => 0,
        };
        if shard == 0 {
            if let Some(w) = main.on_decoded(pkt, &decoded, &sighting, ordinal, now) {
                print(printer, &w);
            }
        } else {
            self.others[shard - 1].push_packet(&pkt, ordinal, now, &sighting);
        }
    }

    /// Capture time advanced to `now` in the whole input.
    pub fn tick(&mut self, now: Timestamp) {
        self.front.tick(now);
        for s in &mut self.others {
            s.push(Item::Tick(now));
        }
    }

    /// The end of the input, at capture time `now`: the other shards' results.
    pub fn finish(self, now: Timestamp) -> Vec<ShardResult> {
        self.others.into_iter().map(|s| s.finish(now)).collect()
    }
}
