//! Parallel analysis: the packets are split into shards by connection: a hash of the unordered
//! pair of their TCP segment's endpoints (address and port, [`shard_of_tuple`]), so that both
//! directions and every epoch of a 4-tuple are analysed by one shard, and one proxy talking to
//! one upstream spreads over all of them. With a TLS key log, by the pair of hosts instead: a
//! resumed TLS session's secret is learnt on an earlier connection between the same hosts, in
//! the same shard. Shard 0 is analysed on the driver's thread, which puts every packet through
//! the [`Front`] first, in input order: it decodes the packet (a tunnelled segment is sharded
//! by its inner addresses, not the tunnel's) and recognises copies of segments, moving a copy
//! captured under a NAT's other address pair to the addresses its connection was first seen
//! with; so both sides of a NAT land in the shard of the connection, whatever their own
//! addresses hash to. The driver hands the other shards' packets over (with what the front
//! found) in recycled batches; each other shard has a thread of its own (shard 0's packets are
//! not decoded again).
//!
//! What crosses connections (a request's retry on another connection, the server's idle
//! closes seen by the same client) is decided after the shards, by the verdict stage on the
//! driver's thread: at the end of each epoch (a tick of the whole input's capture time, placed
//! at the same position in every shard's packets) each shard hands over its records of the
//! epoch, and once every shard's records of an epoch are in (the watermark), the verdict stage
//! takes them, in an order that does not depend on the split. Every shard gets the global
//! ordinal and capture time with each packet, so the report, and the order findings are
//! streamed in, equal those of one analyzer over the whole input, as long as the cap on
//! tracked connections is not reached (the shards share `--max-connections`).
//!
//! A retry is matched to its lost request by the addresses each connection was first seen
//! with. Behind a NAT, a connection first seen on the server's side of it (a capture that
//! started while the connection was open, whose first packet came from the server) and its
//! retry first seen on the client's side (its SYN) have different addresses: the retry is not
//! linked (the finding says `lost`), in one shard as in several.

use super::Config;
use super::analyzer::{Analyzer, Totals};
use super::front::Front;
use super::result::ShardResult;
use super::shard::Shard;
use crate::capture::{PacketRef, StoredPacket, Warning};
use crate::decode::{Decoded, Decoder};
use crate::detect::Records;
use crate::flow::Sighting;
use crate::flow::copies::Moved;
use crate::report::WarningPrinter;
use crate::time::Timestamp;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Items per batch handed to a shard thread ...
const BATCH_ITEMS: usize = 4096;
/// ... (or fewer when findings are streamed: the driver waits for each epoch's records, and
/// the shards should be busy meanwhile) ...
const STREAMING_BATCH_ITEMS: usize = 256;
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
    /// The end of an epoch at this capture time.
    Epoch(Timestamp),
    /// The end of the input at this capture time.
    End(Timestamp),
}

/// What a shard thread answers, in order.
enum Answer {
    /// Its records of the next epoch, and its running totals.
    Epoch(Records, Totals),
    /// Its results and last records, at the end of the input.
    End(Box<(ShardResult, Records)>),
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

    fn full(&self, items: usize) -> bool {
        self.items.len() >= items || self.data.len() >= BATCH_BYTES
    }
}

/// The driver's side of a shard thread.
struct Worker {
    batch: Batch,
    /// Items per batch.
    items: usize,
    made: usize,
    full: Option<SyncSender<Batch>>,
    free: Receiver<Batch>,
    answers: Receiver<Answer>,
    thread: JoinHandle<()>,
}

impl Worker {
    fn start(
        config: Config,
        inputs: Vec<String>,
        printer: Arc<Mutex<WarningPrinter>>,
        n: usize,
        items: usize,
    ) -> Result<Worker, String> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        let (free_tx, free_rx) = mpsc::channel::<Batch>();
        let (answer_tx, answer_rx) = mpsc::channel::<Answer>();
        let thread = std::thread::Builder::new()
            .name(format!("tcprace-shard{n}"))
            .spawn(move || {
                let shard = Shard::new(&config, inputs, Some(printer));
                run_shard(shard, full_rx, free_tx, answer_tx);
            })
            .map_err(|e| format!("cannot start an analysis thread: {e}"))?;
        Ok(Worker {
            batch: Batch::new(),
            items,
            made: 1,
            full: Some(full_tx),
            free: free_rx,
            answers: answer_rx,
            thread,
        })
    }

    fn push(&mut self, item: Item) {
        self.batch.items.push(item);
        if self.batch.full(self.items) {
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

    /// The end of the input: hang up, wait for the thread.
    fn hang_up(&mut self, now: Timestamp) {
        self.batch.items.push(Item::End(now));
        self.send();
        drop(self.full.take());
    }

    fn join(self) {
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Body of a shard thread: analyse the batches until the dispatcher hangs up, answering each
/// epoch's end with its records and the end of the input with its results.
fn run_shard(
    mut shard: Shard,
    full: Receiver<Batch>,
    free: Sender<Batch>,
    answers: Sender<Answer>,
) {
    for batch in full {
        for item in &batch.items {
            match *item {
                Item::Packet {
                    packet,
                    ordinal,
                    now,
                    sighting,
                } => {
                    let s = batch.sightings.get(sighting as usize).map_or_else(
                        Sighting::default,
                        |(duplicate, moved)| Sighting {
                            duplicate: *duplicate,
                            moved: moved.as_ref(),
                        },
                    );
                    shard.on_routed(packet.get(&batch.data), ordinal, now, &s);
                }
                Item::Epoch(now) => {
                    let records = std::mem::take(shard.end_epoch(now));
                    let _ = answers.send(Answer::Epoch(records, shard.totals()));
                }
                Item::End(now) => {
                    let _ = answers.send(Answer::End(Box::new(shard.finish(now))));
                }
            }
        }
        let _ = free.send(batch);
    }
}

pub(super) fn print(printer: &Mutex<WarningPrinter>, w: &Warning) {
    if let Ok(mut p) = printer.lock() {
        p.print(w);
    }
}

/// Share of the connections (in percent) the main thread analyses when there are two shards.
/// The main thread also decodes and hands the other shard its packets and runs the verdict
/// stage, while the worker shares its core with the reader thread.
const MAIN_SHARE_PERCENT: u64 = 60;

/// The driver's own work (the front, handing packets over, the verdict stage, the report), in
/// percent of a whole analysis on one thread: callgrind counts ~210 M of ~590 M instructions
/// on the bench's one-pair capture. With three shards or more the driver's thread takes only
/// what keeps it as busy as each other shard's thread ([`driver_share`]).
const DRIVER_OWN_PERCENT: u64 = 35;

/// Share of the connections, in per mille, shard 0 (the driver's thread) analyses of `shards`
/// (three or more): `x` with `own + x = (1 - x) / (shards - 1)`, none when the driver's own
/// work alone outweighs an other shard's part.
fn driver_share(shards: u64) -> u64 {
    let others = shards - 1;
    (1000u64).saturating_sub(DRIVER_OWN_PERCENT * 10 * others) / shards
}

/// A hash of the unordered pair of endpoints `a` and `b`.
fn tuple_hash(a: SocketAddr, b: SocketAddr) -> u64 {
    let word = |s: SocketAddr| -> (u128, u16) {
        let ip = match s.ip() {
            std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
            std::net::IpAddr::V6(v6) => u128::from(v6),
        };
        (ip, s.port())
    };
    let (x, y) = (word(a), word(b));
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    let mut h = 0u64;
    for w in [
        lo.0 as u64,
        (lo.0 >> 64) as u64,
        u64::from(lo.1) << 16 | u64::from(hi.1),
        hi.0 as u64,
        (hi.0 >> 64) as u64,
    ] {
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    h >> 32
}

/// The shard (of `shards`) the connection between `a` and `b` is analysed in.
pub(super) fn shard_of_tuple(a: SocketAddr, b: SocketAddr, shards: usize) -> usize {
    split(tuple_hash(a, b), shards)
}

/// The shard (of `shards`) the connections between the hosts of `a` and `b` are analysed in.
fn shard_of_hosts(a: SocketAddr, b: SocketAddr, shards: usize) -> usize {
    let host = |s: SocketAddr| SocketAddr::new(s.ip(), 0);
    split(tuple_hash(host(a), host(b)), shards)
}

/// The shard of a hash.
fn split(h: u64, shards: usize) -> usize {
    match shards {
        0 | 1 => 0,
        2 => usize::from(h % 100 >= MAIN_SHARE_PERCENT),
        n => {
            if h % 1000 < driver_share(n as u64) {
                0
            } else {
                1 + (h / 1000 % (n as u64 - 1)) as usize
            }
        }
    }
}

/// The shard (of `shards`) a packet would be analysed in: its TCP segment's connection's (by
/// the addresses of the TCP segment inside, through tunnels; not knowing of copies under other
/// addresses, which follow the copy first seen); packets that are not TCP are counted in
/// shard 0.
pub fn shard_of(linktype: u32, data: &[u8], shards: usize) -> usize {
    match Decoder::default().decode(linktype, data, data.len() as u32) {
        Decoded::Tcp(seg) => shard_of_tuple(seg.src, seg.dst, shards),
        Decoded::Skip(..) => 0,
    }
}

/// An epoch whose records are coming in: its capture time, and the records of each shard
/// (shard 0's first).
struct Epoch {
    now: Timestamp,
    parts: Vec<Option<Records>>,
}

/// The shards other than the driver's own (shard 0), each on a thread of its own, the front
/// every packet goes through first, and the epochs whose records are not all in yet.
pub(super) struct Shards {
    front: Front,
    workers: Vec<Worker>,
    /// Shard by the pair of hosts (TLS sessions resumed across connections), not by connection.
    by_hosts: bool,
    /// Findings are streamed: each epoch's records are waited for, so that its findings come
    /// out while the input is still open.
    streaming: bool,
    epochs: VecDeque<Epoch>,
    /// Per worker: how many of its epoch records arrived, and its last running totals.
    answered: Vec<usize>,
    totals: Vec<Totals>,
    /// Epochs ended so far (those before `epochs` were taken by the verdict stage).
    ended: usize,
}

impl Shards {
    /// Start `count - 1` shard threads (none for one shard). The shards share the cap on
    /// tracked connections: `config` must carry each shard's part of it.
    pub fn start(
        count: usize,
        config: &Config,
        inputs: &[String],
        printer: &Arc<Mutex<WarningPrinter>>,
        streaming: bool,
    ) -> Result<Shards, String> {
        let items = if streaming {
            STREAMING_BATCH_ITEMS
        } else {
            BATCH_ITEMS
        };
        let mut workers = Vec::with_capacity(count.saturating_sub(1));
        for n in 1..count.max(1) {
            workers.push(Worker::start(
                config.clone(),
                inputs.to_vec(),
                printer.clone(),
                n,
                items,
            )?);
        }
        Ok(Shards {
            front: Front::new(config),
            by_hosts: config.tls_keys.is_some(),
            answered: vec![0; workers.len()],
            totals: vec![Totals::default(); workers.len()],
            workers,
            streaming,
            epochs: VecDeque::new(),
            ended: 0,
        })
    }

    /// Analyse a packet in its shard (`main` is shard 0).
    pub fn dispatch(
        &mut self,
        main: &mut Analyzer,
        pkt: PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
    ) {
        let mut decoded = self.front.decode(&pkt);
        let sighting = self.front.check(&mut decoded, pkt.ts);
        let n = self.workers.len() + 1;
        let shard = match &decoded {
            Decoded::Tcp(seg) if self.by_hosts => shard_of_hosts(seg.src, seg.dst, n),
            Decoded::Tcp(seg) => shard_of_tuple(seg.src, seg.dst, n),
            Decoded::Skip(..) => 0,
        };
        match shard {
            0 => main.on_decoded(pkt, &decoded, &sighting, ordinal, now),
            n => self.workers[n - 1].push_packet(&pkt, ordinal, now, &sighting),
        }
    }

    /// The end of an epoch at capture time `now`: every shard hands over its records; the
    /// verdict stage takes the epochs whose records are all in.
    pub fn end_epoch(&mut self, main: &mut Analyzer, now: Timestamp) {
        self.front.tick(now);
        if self.workers.is_empty() {
            main.end_epoch(now, &mut []);
            return;
        }
        for w in &mut self.workers {
            w.push(Item::Epoch(now));
            // the records come back when the batch is analysed: send it now
            w.send();
        }
        let mut parts = Vec::with_capacity(self.workers.len() + 1);
        parts.push(Some(main.end_shard_epoch(now)));
        parts.resize_with(self.workers.len() + 1, || None);
        self.epochs.push_back(Epoch { now, parts });
        self.ended += 1;
        self.take_answers(main, self.streaming);
    }

    /// Take the shards' answers that arrived (all that are due: `wait`), and hand the
    /// verdict stage every epoch whose records are all in.
    fn take_answers(&mut self, main: &mut Analyzer, wait: bool) {
        let first = self.ended - self.epochs.len();
        for (k, w) in self.workers.iter().enumerate() {
            while self.answered[k] < self.ended {
                let answer = if wait {
                    w.answers.recv().ok()
                } else {
                    w.answers.try_recv().ok()
                };
                let Some(Answer::Epoch(records, totals)) = answer else {
                    break;
                };
                let e = self.answered[k] - first;
                self.epochs[e].parts[k + 1] = Some(records);
                self.answered[k] += 1;
                self.totals[k] = totals;
            }
        }
        let mut all = Totals::default();
        for t in &self.totals {
            all.add(t);
        }
        main.set_other_totals(all);
        while self
            .epochs
            .front()
            .is_some_and(|e| e.parts.iter().all(Option::is_some))
        {
            let e = self.epochs.pop_front().expect("a complete epoch");
            let mut records: Vec<Records> = e.parts.into_iter().flatten().collect();
            let mut parts: Vec<&mut Records> = records.iter_mut().collect();
            main.verdict_epoch(e.now, &mut parts);
        }
    }

    /// The end of the input at capture time `now`: the epochs still coming in, then every
    /// shard's results and last records, handed to the verdict stage.
    pub fn finish(mut self, main: &mut Analyzer, now: Timestamp) {
        for w in &mut self.workers {
            w.hang_up(now);
        }
        self.take_answers(main, true);
        let mut ends = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            if let Ok(Answer::End(end)) = w.answers.recv() {
                ends.push(*end);
            }
        }
        for w in self.workers {
            w.join();
        }
        main.end_input(now, ends);
    }
}

#[cfg(test)]
mod tests {
    /// The driver's thread takes 60 % of the connections with two shards, 10 % with three (its
    /// own work is ~35 % of a whole analysis), none with four or more; the other shards share the
    /// rest evenly.
    #[test]
    fn the_driver_takes_a_share_that_keeps_every_thread_equally_busy() {
        let spread = |shards: usize| {
            let mut counts = vec![0u32; shards];
            for i in 0..100_000u64 {
                let h = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7)) >> 32;
                counts[super::split(h, shards)] += 1;
            }
            counts.iter().map(|&c| (c + 500) / 1000).collect::<Vec<_>>()
        };
        assert_eq!(spread(1), [100]);
        assert_eq!(spread(2), [60, 40]);
        assert_eq!(spread(3), [10, 45, 45]);
        let four = spread(4);
        assert_eq!(four[0], 0);
        assert!(
            four[1..].iter().all(|&c| (32..=35).contains(&c)),
            "{four:?}"
        );
        let sixteen = spread(16);
        assert_eq!(sixteen[0], 0);
        assert!(
            sixteen[1..].iter().all(|&c| (6..=7).contains(&c)),
            "{sixteen:?}"
        );
    }
}
