//! Parallel analysis: the packets are split into shards by connection: a hash of the unordered
//! pair of their TCP segment's endpoints (address and port; `split`), so that both
//! directions and every epoch of a 4-tuple are analysed by one shard, and one proxy talking to
//! one upstream spreads over all of them. With a TLS key log, by the pair of hosts instead: a
//! resumed TLS session's secret is learnt on an earlier connection between the same hosts, in
//! the same shard. Shard 0 is analysed on the driver's thread, which puts every packet through
//! the [`Front`] first, in input order: it decodes the packet (a tunnelled segment is sharded
//! by its inner addresses, not the tunnel's) and recognises copies of segments, moving a copy
//! captured under a NAT's other address pair to the addresses its connection was first seen
//! with; so both sides of a NAT land in the shard of the connection, whatever their own
//! addresses hash to. The driver hands the other shards' packets over (with what the front
//! found) in recycled batches ([`Feed`]); each other shard has a thread of its own (shard 0's
//! packets are not decoded again). From [`PIPED_FROM`] threads on, the front runs on a thread of
//! its own between the driver and the shards' threads, and the driver's shard takes no
//! connections: the driver's thread only reads, hands the packets on and runs the verdict
//! stage; its work would otherwise bound the speed-up (the shards' threads then number
//! `--threads`).
//!
//! [`PIPED_FROM`]: super::split::PIPED_FROM
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
use super::batch::{BATCH_ITEMS, Feed, Intake, Received, STREAMING_BATCH_ITEMS};
use super::front::{Front, run_front};
use super::result::ShardResult;
use super::shard::Shard;
use super::split::{is_piped, shard_count, shard_of_decoded};
use crate::capture::{PacketRef, Warning};
use crate::detect::Records;
use crate::flow::Sighting;
use crate::report::WarningPrinter;
use crate::time::Timestamp;
use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What a shard thread answers, in order.
enum Answer {
    /// Its records of the next epoch, and its running totals.
    Epoch(Records, Totals),
    /// Its results and last records, at the end of the input.
    End(Box<(ShardResult, Records)>),
}

/// The driver's side of a shard thread: its answers (the packets go to it through a [`Feed`]),
/// and where the records it handed over go back once the verdict stage emptied them.
struct Worker {
    answers: Receiver<Answer>,
    spare: Sender<Records>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// A shard thread, and the feed of its packets.
    fn start(
        config: Config,
        inputs: Vec<String>,
        printer: Arc<Mutex<WarningPrinter>>,
        n: usize,
        items: usize,
    ) -> Result<(Worker, Feed), String> {
        let (feed, intake) = Feed::new(items);
        let (answer_tx, answer_rx) = mpsc::channel::<Answer>();
        let (spare_tx, spare_rx) = mpsc::channel::<Records>();
        let thread = std::thread::Builder::new()
            .name(format!("tcprace-shard{n}"))
            .spawn(move || {
                let shard = Shard::new(&config, inputs, Some(printer));
                run_shard(shard, intake, answer_tx, spare_rx);
            })
            .map_err(|e| format!("cannot start an analysis thread: {e}"))?;
        let worker = Worker {
            answers: answer_rx,
            spare: spare_tx,
            thread,
        };
        Ok((worker, feed))
    }
}

/// Wait for a thread; its panic goes on in this one.
fn join(thread: JoinHandle<()>) {
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Body of a shard thread: analyse the batches until the feed hangs up, answering each epoch's
/// end with its records (filling emptied ones that came back, `spare`, when there are) and the
/// end of the input with its results.
fn run_shard(mut shard: Shard, intake: Intake, answers: Sender<Answer>, spare: Receiver<Records>) {
    intake.take_all(|received| match received {
        Received::Packet {
            pkt,
            ordinal,
            now,
            sighting,
        } => shard.on_routed(pkt, ordinal, now, &sighting),
        Received::Epoch(now) => {
            let empty = spare.try_recv().unwrap_or_default();
            let records = std::mem::replace(shard.end_epoch(now), empty);
            let _ = answers.send(Answer::Epoch(records, shard.totals()));
        }
        Received::End(now) => {
            let _ = answers.send(Answer::End(Box::new(shard.finish(now))));
        }
    });
}

pub(super) fn print(printer: &Mutex<WarningPrinter>, w: &Warning) {
    if let Ok(mut p) = printer.lock() {
        p.print(w);
    }
}

/// An epoch whose records are coming in: its capture time, and the records of each shard
/// (shard 0's first).
struct Epoch {
    now: Timestamp,
    parts: Vec<Option<Records>>,
}

/// Where the driver's packets go.
enum Route {
    /// Through the front on the driver's thread, to shard 0 or a shard thread's feed (one per
    /// shard thread, shard 1's first).
    Direct { front: Front, feeds: Vec<Feed> },
    /// All to the front's thread, which hands them on to the shard threads.
    Piped { feed: Feed, thread: JoinHandle<()> },
}

/// The shards other than the driver's own (shard 0), each on a thread of its own, the front
/// every packet goes through first, and the epochs whose records are not all in yet.
pub(super) struct Shards {
    route: Route,
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
    /// Start the shard threads of a run on `threads` threads: none for one, `threads - 1`
    /// below `PIPED_FROM`, else `threads` and the front's thread. The shards share the cap on
    /// tracked connections: `config` must carry each shard's part of it.
    pub fn start(
        threads: usize,
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
        let shards = shard_count(threads);
        let mut workers = Vec::with_capacity(shards - 1);
        let mut feeds = Vec::with_capacity(shards - 1);
        for n in 1..shards {
            let (w, feed) =
                Worker::start(config.clone(), inputs.to_vec(), printer.clone(), n, items)?;
            workers.push(w);
            feeds.push(feed);
        }
        let by_hosts = config.tls_keys.is_some();
        let front = Front::new(config);
        let route = if is_piped(shards) {
            let (feed, intake) = Feed::new(items);
            let thread = std::thread::Builder::new()
                .name("tcprace-front".to_string())
                .spawn(move || run_front(front, by_hosts, feeds, intake))
                .map_err(|e| format!("cannot start an analysis thread: {e}"))?;
            Route::Piped { feed, thread }
        } else {
            Route::Direct { front, feeds }
        };
        Ok(Shards {
            route,
            by_hosts,
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
        match &mut self.route {
            Route::Piped { feed, .. } => {
                feed.push_packet(&pkt, ordinal, now, &Sighting::default());
            }
            Route::Direct { front, feeds } => {
                let mut decoded = front.decode(&pkt);
                let sighting = front.check(&mut decoded, pkt.ts);
                let shard = match feeds.len() {
                    0 => 0,
                    n => shard_of_decoded(&decoded, self.by_hosts, n + 1),
                };
                match shard {
                    0 => main.on_decoded(pkt, &decoded, &sighting, ordinal, now),
                    n => feeds[n - 1].push_packet(&pkt, ordinal, now, &sighting),
                }
            }
        }
    }

    /// The end of an epoch at capture time `now`: every shard hands over its records; the
    /// verdict stage takes the epochs whose records are all in.
    pub fn end_epoch(&mut self, main: &mut Analyzer, now: Timestamp) {
        match &mut self.route {
            Route::Direct { front, feeds } => {
                front.tick(now);
                if feeds.is_empty() {
                    main.end_epoch(now, &mut []);
                    return;
                }
                // the records come back when the batch is analysed: hand it over now
                feeds.iter_mut().for_each(|f| f.end_epoch(now));
            }
            Route::Piped { feed, .. } => feed.end_epoch(now),
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
            // emptied by the verdict stage: back to the shards that filled them (their vectors
            // keep their room)
            let mut records = records.into_iter();
            if let Some(own) = records.next() {
                main.recycle(own);
            }
            for (w, r) in self.workers.iter().zip(records) {
                let _ = w.spare.send(r);
            }
        }
    }

    /// The end of the input at capture time `now`: the epochs still coming in, then every
    /// shard's results and last records, handed to the verdict stage.
    pub fn finish(mut self, main: &mut Analyzer, now: Timestamp) {
        // the front's thread hangs up on the shard threads when its own feed ends
        match &mut self.route {
            Route::Direct { feeds, .. } => feeds.iter_mut().for_each(|f| f.hang_up(now)),
            Route::Piped { feed, .. } => feed.hang_up(now),
        }
        self.take_answers(main, true);
        let mut ends = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            if let Ok(Answer::End(end)) = w.answers.recv() {
                ends.push(*end);
            }
        }
        if let Route::Piped { thread, .. } = self.route {
            join(thread);
        }
        for w in self.workers {
            join(w.thread);
        }
        main.end_input(now, ends);
    }
}
