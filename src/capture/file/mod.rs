//! Capture files and stdin: [`FileSource`].
//!
//! CONTRACT (the rest of the crate relies on exactly this API):
//! - `FileSource::open(paths)` opens every input up front ("-" is stdin), detects pcap (LE/BE,
//!   µs/ns, the "modified" Kuznetzov variant) or pcapng (any number of interfaces, each with its own
//!   link type and if_tsresol/if_tsoffset), transparently gunzips gzip input, and fails with an
//!   `InputError` naming the file when it cannot be opened or its header is not a capture.
//! - `next()` yields packets of all inputs as one stream, in the order the inputs were given.
//!   A problem inside a file (record cut short, absurd record length, corrupt block) is a
//!   `Next::Warning` naming the file and frame; the reader then goes on with what it can (for a
//!   cut-short or unrecoverable file: the next input). Never panics.
//!
//! `open` opens and checks an input, `pcap` and `pcapng` read the two formats, `records` holds
//! what they share; this module runs the reading on a thread of its own and hands packets over in
//! batches.

mod open;
mod pcap;
mod pcapng;
mod records;
#[cfg(test)]
mod tests;

use super::{InputError, Next, PacketSource, StoredPacket, Warning};
use open::{Format, Stream, open_stream};
use pcap::PcapFile;
use pcapng::NgFile;
use records::{ReadState, Step};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Captured length above which a record is considered corrupt (libpcap's own limit is 256 KiB for
/// most link types).
const MAX_CAPLEN: u32 = 256 * 1024;
/// Largest pcapng packet block (EPB/SPB/OPB) we buffer: a maximal packet plus room for options.
const MAX_PACKET_BLOCK: u32 = MAX_CAPLEN + 64 * 1024;
/// Largest other pcapng block (name resolution, secrets, ...) we buffer.
const MAX_BLOCK: u32 = 16 * 1024 * 1024;
/// A batch is sent to the consumer when it holds this many items (packets and warnings) ...
const BATCH_ITEMS: usize = 4096;
/// ... or this many packet bytes.
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Batches in circulation between the reader thread and the consumer: at most about
/// `BATCHES * BATCH_BYTES` of packet data is buffered. Big batches mean few thread wake-ups
/// (each costs the consumer a futex wake); measured best with 4096 / 2 MiB / 3.
const BATCHES: usize = 3;
/// Capacity of a batch's packet buffer: it never needs to grow (a batch is full once it holds
/// `BATCH_BYTES`, and no packet is larger than a maximal pcapng packet block).
const BATCH_CAP: usize = BATCH_BYTES + MAX_PACKET_BLOCK as usize;

/// The 16-bit number at `d[at..]`, big-endian when `be`.
fn u16_at(d: &[u8], at: usize, be: bool) -> u16 {
    let b = [d[at], d[at + 1]];
    if be {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

/// The 32-bit number at `d[at..]`, big-endian when `be`.
fn u32_at(d: &[u8], at: usize, be: bool) -> u32 {
    let b = [d[at], d[at + 1], d[at + 2], d[at + 3]];
    if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// One item of a batch, in stream order.
enum Item {
    /// A packet; its bytes are in the batch's `data`.
    Packet(StoredPacket),
    Warning(Warning),
}

/// Packets and warnings handed from the reader thread to the consumer in one go. Batches are
/// recycled (sent back to the reader once consumed), so their buffers are allocated only once.
/// (Copying each packet into the caller's `Packet` measured faster than swapping `Packet`s with
/// the caller: one contiguous buffer per batch is friendlier to the caches.)
struct Batch {
    items: Vec<Item>,
    /// The bytes of all packets of the batch, one after the other.
    data: Vec<u8>,
    /// The stream ends after this batch.
    end: bool,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            items: Vec::with_capacity(BATCH_ITEMS),
            data: Vec::with_capacity(BATCH_CAP),
            end: false,
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= BATCH_ITEMS || self.data.len() >= BATCH_BYTES
    }

    fn warn(&mut self, file: &str, frame: Option<u64>, message: String) {
        self.items.push(Item::Warning(Warning {
            file: file.to_string(),
            frame,
            message,
        }));
    }

    /// Empty the batch for reuse.
    fn clear(&mut self) {
        self.items.clear();
        self.data.clear();
    }
}

/// The input being read.
enum Reading {
    Pcap(Box<PcapFile>),
    Ng(Box<NgFile>),
}

impl Reading {
    /// Start reading an input whose header was checked.
    fn start(s: Stream) -> Result<Reading, String> {
        let st = ReadState::new(s.format, s.error);
        Ok(match s.format {
            Format::Pcap(header) => {
                Reading::Pcap(Box::new(PcapFile::new(s.read, &s.head, header, st)))
            }
            Format::PcapNg => Reading::Ng(Box::new(NgFile::new(s.read, s.head, st)?)),
        })
    }

    fn step(&mut self, input: usize, out: &mut Batch) -> Step {
        match self {
            Reading::Pcap(r) => r.step(input, out),
            Reading::Ng(r) => r.step(input, out),
        }
    }
}

enum InputState {
    /// Checked at open, not being read yet.
    Pending,
    Open(Reading),
    Done,
}

struct Input {
    name: String,
    size: Option<u64>,
    count: Arc<AtomicU64>,
    /// Stdin cannot be reopened: its checked stream is kept.
    kept: Option<Stream>,
    state: InputState,
}

/// The inputs and the reading position: all of the reading, which runs on the reader thread.
struct Inputs {
    inputs: Vec<Input>,
    cur: usize,
    /// Standard input had no more data at its last read (see `Counted`).
    starved: Arc<AtomicBool>,
}

impl Inputs {
    fn finish_current(&mut self) {
        if let Some(input) = self.inputs.get_mut(self.cur) {
            input.state = InputState::Done;
            if let Some(size) = input.size {
                input.count.store(size, Ordering::Relaxed);
            }
        }
        self.cur += 1;
    }

    /// Add packets and warnings to `out` until it is full or all inputs are read (then
    /// `out.end` is set).
    fn fill(&mut self, out: &mut Batch) {
        while !out.full() {
            let idx = self.cur;
            let Some(input) = self.inputs.get_mut(idx) else {
                out.end = true;
                return;
            };
            match &mut input.state {
                InputState::Done => self.cur += 1,
                InputState::Pending => {
                    let stream = match input.kept.take() {
                        Some(s) => Ok(s),
                        None => {
                            input.count.store(0, Ordering::Relaxed);
                            open_stream(&input.name, &input.count, &self.starved, None)
                                .map(|(s, _)| s)
                        }
                    };
                    match stream.and_then(Reading::start) {
                        Ok(reading) => input.state = InputState::Open(reading),
                        Err(m) => {
                            out.warn(&input.name, None, format!("cannot reopen: {m}"));
                            self.finish_current();
                        }
                    }
                }
                InputState::Open(reading) => loop {
                    match reading.step(idx, out) {
                        Step::Packet => {
                            if out.full() {
                                return;
                            }
                        }
                        Step::WillRead => {
                            // the last read came back short (a pipe with nothing more for
                            // now): hand over what there is before a read that may block
                            if !out.items.is_empty() && self.starved.swap(false, Ordering::Relaxed)
                            {
                                return;
                            }
                        }
                        Step::Warn(frame, message) => out.warn(&input.name, frame, message),
                        Step::Finished(last) => {
                            if let Some((frame, message)) = last {
                                out.warn(&input.name, frame, message);
                            }
                            self.finish_current();
                            break;
                        }
                    }
                },
            }
        }
    }
}

/// Body of the reader thread: fill batches and send them until the inputs end or the consumer
/// goes away (its end of a channel is dropped).
fn read_batches(mut inputs: Inputs, full: SyncSender<Batch>, free: Receiver<Batch>) {
    let mut made = 0;
    loop {
        let mut batch = if made < BATCHES {
            made += 1;
            Batch::new()
        } else {
            match free.recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                Err(_) => return,
            }
        };
        inputs.fill(&mut batch);
        let end = batch.end;
        if full.send(batch).is_err() || end {
            return;
        }
    }
}

/// The consumer's side of a running reader thread.
struct Running {
    full: Receiver<Batch>,
    free: Sender<Batch>,
    thread: JoinHandle<()>,
    /// Disconnected when the thread has ended (its sender is dropped with the thread's closure).
    done: Receiver<()>,
}

enum Run {
    /// Not started: the reader thread starts on the first `next`.
    Idle(Box<Inputs>),
    Running(Running),
    Ended,
}

/// Bytes in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of standard input, computed as it is read.
pub struct StdinDigest {
    hash: open::StdinDigest,
    count: Arc<AtomicU64>,
}

impl StdinDigest {
    /// The bytes read so far and their SHA-256 (hex).
    pub fn get(&self) -> (u64, String) {
        let h = self.hash.lock().map(|h| h.clone()).unwrap_or_default();
        let bytes = self.count.load(Ordering::Relaxed);
        (bytes, hex(&sha2::Digest::finalize(h)))
    }
}

/// Capture files (pcap, pcapng, gzip-compressed either) and stdin, read as one stream.
///
/// Every input is checked at `open`; files are then reopened one at a time as reading reaches
/// them, so that only one file descriptor and one read buffer are in use. The reading and parsing
/// run on a thread of their own, which hands packets and warnings over in batches (a few in flight,
/// recycled, so the memory stays bounded); `next` takes them from the current batch.
pub struct FileSource {
    names: Vec<String>,
    counts: Vec<Arc<AtomicU64>>,
    sizes: Vec<Option<u64>>,
    run: Run,
    /// The batch being handed out, and the index of its next item.
    batch: Option<Batch>,
    at: usize,
    stdin_hash: Option<open::StdinDigest>,
}

impl FileSource {
    /// Open every input up front; "-" reads stdin.
    pub fn open(paths: &[String]) -> Result<FileSource, InputError> {
        FileSource::open_with(paths, false)
    }

    /// `open`, and with `hash_stdin` the SHA-256 of standard input computed as it is read
    /// ([`FileSource::stdin_digest`]).
    pub fn open_with(paths: &[String], hash_stdin: bool) -> Result<FileSource, InputError> {
        let mut inputs = Vec::with_capacity(paths.len());
        let starved = Arc::new(AtomicBool::new(false));
        let stdin_hash: Option<open::StdinDigest> =
            hash_stdin.then(|| Arc::new(std::sync::Mutex::new(sha2::Sha256::default())));
        for path in paths {
            let count = Arc::new(AtomicU64::new(0));
            let (stream, size) =
                open_stream(path, &count, &starved, stdin_hash.as_ref()).map_err(|message| {
                    InputError {
                        file: path.clone(),
                        message,
                    }
                })?;
            let kept = (path == "-").then_some(stream);
            if kept.is_none() {
                count.store(0, Ordering::Relaxed);
            }
            inputs.push(Input {
                name: path.clone(),
                size,
                count,
                kept,
                state: InputState::Pending,
            });
        }
        Ok(FileSource {
            names: paths.to_vec(),
            counts: inputs.iter().map(|i| i.count.clone()).collect(),
            sizes: inputs.iter().map(|i| i.size).collect(),
            run: Run::Idle(Box::new(Inputs {
                inputs,
                cur: 0,
                starved,
            })),
            batch: None,
            at: 0,
            stdin_hash,
        })
    }

    /// What tells the SHA-256 of standard input once read, when it is an input opened with
    /// `hash_stdin`.
    pub fn stdin_digest(&self) -> Option<StdinDigest> {
        let i = self.names.iter().position(|n| n == "-")?;
        Some(StdinDigest {
            hash: self.stdin_hash.clone()?,
            count: self.counts[i].clone(),
        })
    }

    fn start(&mut self, inputs: Inputs) -> Result<(), InputError> {
        let (full_tx, full_rx) = mpsc::sync_channel(BATCHES);
        let (free_tx, free_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tcprace-reader".to_string())
            .spawn(move || {
                let _done = done_tx;
                read_batches(inputs, full_tx, free_rx);
            })
            .map_err(|e| InputError {
                file: self.names.first().cloned().unwrap_or_default(),
                message: format!("cannot start the reader thread: {e}"),
            })?;
        self.run = Run::Running(Running {
            full: full_rx,
            free: free_tx,
            thread,
            done: done_rx,
        });
        Ok(())
    }

    /// The reader's next batch, once the one handed out is used up (it goes back to the
    /// reader); false at the end of the inputs. (Out of line: `next` stays short.)
    #[cold]
    fn next_batch(&mut self) -> Result<bool, InputError> {
        loop {
            if let Some(batch) = &self.batch
                && self.at < batch.items.len()
            {
                return Ok(true);
            }
            if let Some(done) = self.batch.take() {
                let end = done.end;
                if let Run::Running(r) = &self.run {
                    // The reader may have finished already; then the batch is simply dropped.
                    let _ = r.free.send(done);
                }
                if end {
                    self.join();
                }
            }
            match &mut self.run {
                Run::Ended => return Ok(false),
                Run::Idle(_) => {
                    let Run::Idle(inputs) = std::mem::replace(&mut self.run, Run::Ended) else {
                        unreachable!()
                    };
                    self.start(*inputs)?;
                }
                Run::Running(r) => match r.full.recv() {
                    Ok(batch) => {
                        self.batch = Some(batch);
                        self.at = 0;
                    }
                    // The thread ended without its last batch: it panicked.
                    Err(_) => self.join(),
                },
            }
        }
    }

    /// Wait for the reader thread after it has sent its last batch (it is ending).
    fn join(&mut self) {
        if let Run::Running(r) = std::mem::replace(&mut self.run, Run::Ended)
            && let Err(panic) = r.thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl PacketSource for FileSource {
    /// The next packet, borrowed from the reader's batch (no copy); valid until the next call.
    fn next(&mut self) -> Result<Next<'_>, InputError> {
        let ready = matches!(&self.batch, Some(b) if self.at < b.items.len());
        if !ready && !self.next_batch()? {
            return Ok(Next::End);
        }
        let batch = self.batch.as_ref().expect("a batch with items left");
        let item = &batch.items[self.at];
        self.at += 1;
        Ok(match item {
            Item::Packet(p) => Next::Packet(p.get(&batch.data)),
            Item::Warning(w) => Next::Warning(Box::new(w.clone())),
        })
    }

    fn inputs(&self) -> &[String] {
        &self.names
    }

    fn progress(&self) -> (u64, Option<u64>) {
        let done = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let total = self.sizes.iter().copied().sum();
        (done, total)
    }
}

impl Drop for FileSource {
    /// Stop the reader thread: dropping our ends of the channels makes its next send or receive
    /// fail. A thread blocked in a read (stdin) ends when that read returns; it is not waited for
    /// longer than a second.
    fn drop(&mut self) {
        if let Run::Running(r) = std::mem::replace(&mut self.run, Run::Ended) {
            let Running {
                full,
                free,
                thread,
                done,
            } = r;
            drop(full);
            drop(free);
            match done.recv_timeout(Duration::from_secs(1)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => {
                    let _ = thread.join();
                }
            }
        }
    }
}
