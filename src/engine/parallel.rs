//! Parallel analysis: the packets are split into shards by the unordered pair of their IP
//! addresses ([`decode::shard`]), so that everything that interacts (both directions of a
//! connection, every epoch of a 4-tuple, a request and its retry on another connection) is
//! analysed by one [`Analyzer`]. Shard 0 is analysed on the driver's thread, which also takes
//! the packets from the source and hands the others' packets over in recycled batches; each
//! other shard has a thread of its own. Every shard gets the global ordinal and capture time
//! with each packet and the whole input's ticks, so the merged report ([`merge`]) equals that
//! of one analyzer over the whole input, as long as the cap on tracked connections is not
//! reached (the shards share `--max-connections`).
//!
//! [`merge`]: super::result::merge

use super::Config;
use super::analyzer::Analyzer;
use super::result::ShardResult;
use crate::capture::{PacketRef, StoredPacket, Warning};
use crate::decode;
use crate::detect::client_leg::SharedLegs;
use crate::report::WarningPrinter;
use crate::time::Timestamp;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Items per batch handed to a shard thread ...
const BATCH_ITEMS: usize = 4096;
/// ... or packet bytes.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches in circulation per shard thread (memory: about `BATCHES * BATCH_BYTES` each).
const BATCHES: usize = 3;

/// What a shard thread is told, in the order of the input.
enum Item {
    /// A packet (its bytes in the batch's `data`), its ordinal in the whole input and the
    /// input's capture time when it came.
    Packet {
        packet: StoredPacket,
        ordinal: u64,
        now: Timestamp,
    },
    Tick(Timestamp),
    /// The capture time at the end of the input.
    End(Timestamp),
}

struct Batch {
    items: Vec<Item>,
    data: Vec<u8>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            items: Vec::with_capacity(BATCH_ITEMS),
            data: Vec::with_capacity(BATCH_BYTES + 256 * 1024),
        }
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

    fn push_packet(&mut self, p: &PacketRef<'_>, ordinal: u64, now: Timestamp) {
        let packet = StoredPacket::store(p, &mut self.batch.data);
        self.push(Item::Packet {
            packet,
            ordinal,
            now,
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
                    b.items.clear();
                    b.data.clear();
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
                } => {
                    let pkt = packet.get(&batch.data);
                    now = at;
                    if let Some(w) = analyzer.on_packet_at(pkt, ordinal, at) {
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
/// with the reader thread: 60 % measured fastest on bench/run.sh (0.42 s against 0.47 s at 50 %).
const MAIN_SHARE_PERCENT: usize = 60;

/// The shard a packet is analysed in: a split of a hash of the unordered pair of its IP addresses.
pub fn shard_of(linktype: u32, data: &[u8], shards: usize) -> usize {
    if shards == 2 {
        usize::from(decode::shard(linktype, data, 100) >= MAIN_SHARE_PERCENT)
    } else {
        decode::shard(linktype, data, shards)
    }
}

/// The shards other than the driver's own (shard 0), each on a thread of its own.
pub(super) struct Shards {
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
        Ok(Shards { others })
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
        match shard_of(pkt.linktype, pkt.data, self.others.len() + 1) {
            0 => {
                if let Some(w) = main.on_packet_at(pkt, ordinal, now) {
                    print(printer, &w);
                }
            }
            n => self.others[n - 1].push_packet(&pkt, ordinal, now),
        }
    }

    /// Capture time advanced to `now` in the whole input.
    pub fn tick(&mut self, now: Timestamp) {
        for s in &mut self.others {
            s.push(Item::Tick(now));
        }
    }

    /// The end of the input, at capture time `now`: the other shards' results.
    pub fn finish(self, now: Timestamp) -> Vec<ShardResult> {
        self.others.into_iter().map(|s| s.finish(now)).collect()
    }
}
