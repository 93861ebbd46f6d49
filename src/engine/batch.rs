//! Packets handed from one thread to another in recycled batches ([`Feed`]): from the driver to
//! the shard threads, or to the front thread, and from the front thread to the shard threads.
//! A batch holds the packets' bytes in one buffer, each packet's ordinal in the whole input and
//! the input's capture time when it came, and what the front found about it (a copy of a
//! segment, or a segment moved to its connection's addresses).

use crate::capture::{PacketRef, StoredPacket};
use crate::flow::Sighting;
use crate::flow::copies::Moved;
use crate::time::Timestamp;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

/// Items per batch ...
pub(super) const BATCH_ITEMS: usize = 4096;
/// ... (or fewer when findings are streamed: the driver waits for each epoch's records, and
/// the shards should be busy meanwhile) ...
pub(super) const STREAMING_BATCH_ITEMS: usize = 256;
/// ... or packet bytes.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches in circulation per feed (memory: about `BATCHES * BATCH_BYTES` each).
const BATCHES: usize = 3;

/// `Item::Packet::sighting` of a plain segment (no copy, not moved).
const PLAIN: u32 = u32::MAX;

/// What a thread down the line is told, in the order of the input.
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

/// A batch of items.
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

    /// What the front found about the packet whose item says `sighting`.
    fn sighting(&self, sighting: u32) -> Sighting<'_> {
        self.sightings.get(sighting as usize).map_or_else(
            Sighting::default,
            |(duplicate, moved)| Sighting {
                duplicate: *duplicate,
                moved: moved.as_ref(),
            },
        )
    }
}

/// The sending side of a stream of batches to a thread: the batch being filled, and the
/// empty batches the thread sends back.
pub(super) struct Feed {
    batch: Batch,
    /// Items per batch.
    items: usize,
    made: usize,
    full: Option<SyncSender<Batch>>,
    free: Receiver<Batch>,
}

/// The receiving side of a [`Feed`]: the full batches, and where to send them back.
pub(super) struct Intake {
    full: Receiver<Batch>,
    free: Sender<Batch>,
}

/// An item as the thread fed receives it: a packet with its bytes and what the front found.
pub(super) enum Received<'a> {
    Packet {
        pkt: PacketRef<'a>,
        ordinal: u64,
        now: Timestamp,
        sighting: Sighting<'a>,
    },
    /// The end of an epoch at this capture time.
    Epoch(Timestamp),
    /// The end of the input at this capture time.
    End(Timestamp),
}

impl Intake {
    /// Hand every item to `each`, in order, until the feed hangs up (each batch goes back to
    /// the feed once its items are taken).
    pub fn take_all(self, mut each: impl FnMut(Received<'_>)) {
        for batch in self.full {
            for item in &batch.items {
                each(match *item {
                    Item::Packet {
                        packet,
                        ordinal,
                        now,
                        sighting,
                    } => Received::Packet {
                        pkt: packet.get(&batch.data),
                        ordinal,
                        now,
                        sighting: batch.sighting(sighting),
                    },
                    Item::Epoch(now) => Received::Epoch(now),
                    Item::End(now) => Received::End(now),
                });
            }
            let _ = self.free.send(batch);
        }
    }
}

impl Feed {
    /// A feed of batches of `items` items, and the intake for the thread it feeds.
    pub fn new(items: usize) -> (Feed, Intake) {
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        let (free_tx, free_rx) = mpsc::channel::<Batch>();
        let feed = Feed {
            batch: Batch::new(),
            items,
            made: 1,
            full: Some(full_tx),
            free: free_rx,
        };
        (
            feed,
            Intake {
                full: full_rx,
                free: free_tx,
            },
        )
    }

    fn push(&mut self, item: Item) {
        self.batch.items.push(item);
        if self.batch.full(self.items) {
            self.send();
        }
    }

    pub fn push_packet(
        &mut self,
        p: &PacketRef<'_>,
        ordinal: u64,
        now: Timestamp,
        s: &Sighting<'_>,
    ) {
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

    /// The end of an epoch: handed over at once (its answer is waited for).
    pub fn end_epoch(&mut self, now: Timestamp) {
        self.batch.items.push(Item::Epoch(now));
        self.send();
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
                // the thread ended early (it panicked): joining it reports that
                Err(_) => Batch::new(),
            }
        };
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.full {
            let _ = tx.send(full);
        }
    }

    /// The end of the input: the last batch handed over, and the feed closed.
    pub fn hang_up(&mut self, now: Timestamp) {
        self.batch.items.push(Item::End(now));
        self.send();
        drop(self.full.take());
    }
}
