//! One HTTP/2 connection: both directions' frames turned into per-stream requests, responses,
//! stream resets and GOAWAYs.

use super::frame::{self, Frame, FrameHeader, FrameReader, Framing};
use super::heads::{HeadDecoder, Heads, MAX_BLOCK, Undecodable};
use super::{H2Stats, Start};
use crate::app::{AppEvent, GoAway, Identity, Request, Response};
use crate::flow::{CloseEvent, ConnMeta, Dir, FlowEvent, PerDir, SegMeta};

/// Open streams kept per connection (requests waiting for the end of their response); beyond
/// it the oldest is forgotten (counted as `streams_untracked`).
pub const MAX_STREAMS: usize = 1024;

/// A header block being read: its HEADERS (or PUSH_PROMISE) frame and the fragments so far.
#[derive(Debug)]
struct Block {
    stream: u32,
    start: i64,
    first: SegMeta,
    end_stream: bool,
    push: bool,
    bytes: Vec<u8>,
    /// Why it cannot be decoded, once known.
    broken: Option<Undecodable>,
}

/// A stream's progress, from its request on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Open {
    stream: u32,
    /// Its final response head was seen.
    answered: bool,
}

/// The analysis of one HTTP/2 connection, both directions.
#[derive(Debug)]
pub struct H2Conn {
    readers: PerDir<FrameReader>,
    st: State,
}

#[derive(Debug)]
struct State {
    start: Start,
    /// The client's direction, once known.
    client: Option<Dir>,
    heads: PerDir<HeadDecoder>,
    blocks: PerDir<Option<Box<Block>>>,
    open: Vec<Open>,
    /// The highest stream id the client opened (a HEADERS on a lower one is a trailer).
    last_client_stream: u32,
    /// Stream 1 was the HTTP/1.1 upgrade request, answered there.
    upgraded: bool,
    /// SETTINGS_MAX_FRAME_SIZE announced by each direction (for the other's reader).
    max_frame: PerDir<Option<u32>>,
}

impl H2Conn {
    /// A connection recognised from its first bytes (`start` says how): a direction whose
    /// first byte the capture has starts with frames (the client's after the preface); the
    /// others are looked for at segment starts.
    pub fn new(conn: &ConnMeta, start: Start) -> H2Conn {
        let client = conn.syn_client;
        let reader = |d: Dir| {
            let preface = if client == Some(d) {
                frame::PREFACE.len() as i64
            } else {
                0
            };
            FrameReader::new(preface, !conn.from_syn[d] || start == Start::Midstream)
        };
        H2Conn {
            readers: PerDir::new(reader(Dir::Fwd), reader(Dir::Rev)),
            st: State::new(start, client),
        }
    }

    /// The rest of an HTTP/1.1 connection upgraded to h2c (`switched`: by 101, its stream 1
    /// the upgrade request) or a CONNECT tunnel, whose client is `client`: no direction is
    /// read before [`H2Conn::begin`].
    pub fn upgraded(client: Dir, switched: bool) -> H2Conn {
        let mut st = State::new(Start::Upgrade, Some(client));
        st.upgraded = switched;
        H2Conn {
            readers: PerDir::new(FrameReader::new(0, true), FrameReader::new(0, true)),
            st,
        }
    }

    /// Direction `dir` speaks HTTP/2 from stream offset `off` on (the client with its preface).
    pub fn begin(&mut self, dir: Dir, off: i64) {
        let preface = if self.st.client == Some(dir) {
            frame::PREFACE.len() as i64
        } else {
            0
        };
        self.readers[dir] = FrameReader::new(off + preface, false);
    }

    /// Count the connection in the statistics (once it is known to be HTTP/2).
    pub fn count(&self, stats: &mut H2Stats) {
        stats.connections += 1;
        *stats.by_start.entry(self.st.start.as_str()).or_default() += 1;
    }

    /// Feed one flow event; each message it completes is handed to `emit`.
    pub fn on_flow(
        &mut self,
        ev: &FlowEvent<'_>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let H2Conn { readers, st } = self;
        match *ev {
            FlowEvent::Data {
                dir,
                off,
                bytes,
                meta,
            } => {
                readers[dir].on_data(off, bytes, meta, &mut |f| {
                    st.on_framing(dir, f, stats, emit)
                });
                if let Some(max) = st.max_frame[dir].take() {
                    readers[dir.other()].max_frame = max;
                }
            }
            FlowEvent::Gap { dir, off, len, .. } => {
                readers[dir].on_gap(off, len, &mut |f| st.on_framing(dir, f, stats, emit));
            }
            FlowEvent::Eof { .. } | FlowEvent::Retransmit { .. } | FlowEvent::Segment { .. } => {}
        }
    }
}

impl State {
    fn new(start: Start, client: Option<Dir>) -> State {
        State {
            start,
            client,
            heads: PerDir::default(),
            blocks: PerDir::default(),
            open: Vec::new(),
            last_client_stream: 0,
            upgraded: false,
            max_frame: PerDir::default(),
        }
    }

    fn on_framing(
        &mut self,
        dir: Dir,
        f: Framing<'_>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        match f {
            Framing::Started(h) => {
                stats.frames += 1;
                if h.kind != frame::CONTINUATION && self.blocks[dir].is_some() {
                    // a header block must not be interrupted (RFC 9113 6.10)
                    self.end_block(dir, Some(Undecodable::Interrupted), stats, emit);
                }
            }
            Framing::Complete(fr) => self.on_frame(dir, &fr, stats, emit),
            Framing::Lost(why) => {
                stats.error(why);
                self.end_block(dir, Some(Undecodable::Missing), stats, emit);
                if self.heads[dir].fail(Undecodable::Missing) {
                    stats.error(Undecodable::Missing.as_str());
                }
                emit(AppEvent::Desync { dir, anomaly: None });
            }
            Framing::Resynced => {}
        }
    }

    fn on_frame(
        &mut self,
        dir: Dir,
        fr: &Frame<'_>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let h = fr.header;
        match h.kind {
            frame::HEADERS | frame::PUSH_PROMISE => self.on_headers(dir, fr, stats, emit),
            frame::CONTINUATION => self.on_continuation(dir, fr, stats, emit),
            frame::DATA if h.has(frame::END_STREAM) => self.end_stream(dir, h.stream, emit),
            frame::RST_STREAM => {
                stats.rst_streams += 1;
                self.forget(h.stream);
                if let Some(p) = fr.payload {
                    emit(AppEvent::StreamReset {
                        dir,
                        stream: h.stream,
                        error: u32_at(p, 0),
                        reset: close_at(fr),
                    });
                }
            }
            frame::GOAWAY => {
                stats.goaways += 1;
                if let Some(p) = fr.payload {
                    emit(AppEvent::Closing {
                        dir,
                        close: close_at(fr),
                        goaway: Some(GoAway {
                            last_stream: u32_at(p, 0) & 0x7fff_ffff,
                            error: u32_at(p, 4),
                        }),
                    });
                }
            }
            frame::SETTINGS if !h.has(frame::ACK) => {
                for s in fr.payload.unwrap_or_default().chunks_exact(6) {
                    // SETTINGS_MAX_FRAME_SIZE: what the other direction may send
                    if s[..2] == [0, 5] {
                        let v = u32_at(s, 2);
                        self.max_frame[dir] =
                            Some(v.clamp(frame::DEFAULT_MAX_FRAME, frame::LARGEST_MAX_FRAME));
                    }
                }
            }
            _ => {}
        }
    }

    /// A HEADERS or PUSH_PROMISE frame starts a header block.
    fn on_headers(
        &mut self,
        dir: Dir,
        fr: &Frame<'_>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let h = fr.header;
        let mut block = Box::new(Block {
            stream: h.stream,
            start: fr.start,
            first: fr.first,
            end_stream: h.kind == frame::HEADERS && h.has(frame::END_STREAM),
            push: h.kind == frame::PUSH_PROMISE,
            bytes: Vec::new(),
            broken: None,
        });
        match fr.payload.map(|p| fragment(&h, p)) {
            Some(Some(frag)) => block.bytes.extend_from_slice(frag),
            Some(None) => {
                stats.error("bad_padding");
                block.broken = Some(Undecodable::HpackError);
            }
            None if h.len as usize > MAX_BLOCK => block.broken = Some(Undecodable::TooLarge),
            None => block.broken = Some(Undecodable::Missing),
        }
        self.blocks[dir] = Some(block);
        if h.has(frame::END_HEADERS) {
            self.end_block(dir, None, stats, emit);
        }
    }

    fn on_continuation(
        &mut self,
        dir: Dir,
        fr: &Frame<'_>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let Some(block) = self.blocks[dir]
            .as_mut()
            .filter(|b| b.stream == fr.header.stream)
        else {
            if self.blocks[dir].is_some() {
                return self.end_block(dir, Some(Undecodable::Interrupted), stats, emit);
            }
            if self.heads[dir].fail(Undecodable::Interrupted) {
                stats.error(Undecodable::Interrupted.as_str());
            }
            return;
        };
        match fr.payload {
            Some(p) if block.bytes.len() + p.len() <= MAX_BLOCK => block.bytes.extend_from_slice(p),
            Some(_) => block.broken = block.broken.or(Some(Undecodable::TooLarge)),
            None => block.broken = block.broken.or(Some(Undecodable::Missing)),
        }
        if fr.header.has(frame::END_HEADERS) {
            self.end_block(dir, None, stats, emit);
        }
    }

    /// The header block of `dir` ended (`broken`: cut short); decode it and report what it
    /// was.
    fn end_block(
        &mut self,
        dir: Dir,
        broken: Option<Undecodable>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let Some(mut block) = self.blocks[dir].take() else {
            return;
        };
        let heads = match broken.or(block.broken) {
            Some(why) => {
                if self.heads[dir].fail(why) {
                    stats.error(why.as_str());
                }
                None
            }
            None => {
                let usable = self.heads[dir].usable();
                match self.heads[dir].decode(&block.bytes) {
                    Ok(h) => Some(h),
                    Err(why) => {
                        if usable {
                            stats.error(why.as_str());
                        }
                        None
                    }
                }
            }
        };
        block.bytes = Vec::new();
        if block.push {
            stats.push_promises += 1;
            return;
        }
        let client = *self.client.get_or_insert(match &heads {
            Some(h) if h.status.is_some() => dir.other(),
            _ => dir,
        });
        if dir == client {
            self.on_request_head(dir, &block, heads, stats, emit);
        } else {
            self.on_response_head(dir, &block, heads, emit);
        }
    }

    fn on_request_head(
        &mut self,
        dir: Dir,
        block: &Block,
        heads: Option<Heads>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let stream = block.stream;
        let new = stream > self.last_client_stream && !(self.upgraded && stream == 1);
        if new {
            self.last_client_stream = stream;
            stats.requests += 1;
            stats.heads_not_decoded += u64::from(heads.is_none());
            emit(AppEvent::Request(Request {
                dir,
                start: block.start,
                first: block.first,
                identity: identity(stream, heads, block.end_stream),
            }));
            if self.open.len() == MAX_STREAMS {
                self.open.remove(0);
                stats.error("streams_untracked");
            }
            self.open.push(Open {
                stream,
                answered: false,
            });
        }
        if block.end_stream {
            emit(AppEvent::RequestEnd { dir, body: None });
        }
    }

    fn on_response_head(
        &mut self,
        dir: Dir,
        block: &Block,
        heads: Option<Heads>,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let stream = block.stream;
        let Some(open) = self.open.iter_mut().find(|o| o.stream == stream) else {
            return;
        };
        if !open.answered {
            let (status, server) = heads.map_or((None, None), |h| (h.status, h.server));
            let status = status.unwrap_or(0);
            let interim = (100..200).contains(&status);
            open.answered = !interim;
            emit(AppEvent::Response(Response {
                dir,
                start: block.start,
                first: block.first,
                status,
                interim,
                closes_connection: false,
                keep_alive: None,
                stream: Some(stream),
                server,
            }));
        }
        if block.end_stream {
            self.end_stream(dir, stream, emit);
        }
    }

    /// Direction `dir` ended stream `stream` (END_STREAM).
    fn end_stream(&mut self, dir: Dir, stream: u32, emit: &mut dyn FnMut(AppEvent)) {
        if Some(dir) == self.client {
            if stream == self.last_client_stream {
                emit(AppEvent::RequestEnd { dir, body: None });
            }
        } else if let Some(i) = self
            .open
            .iter()
            .position(|o| o.stream == stream && o.answered)
        {
            self.open.remove(i);
            emit(AppEvent::ResponseEnd { dir });
        }
    }

    fn forget(&mut self, stream: u32) {
        self.open.retain(|o| o.stream != stream);
    }
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload (without padding, priority,
/// promised stream id); None when the padding does not fit.
fn fragment<'a>(h: &FrameHeader, p: &'a [u8]) -> Option<&'a [u8]> {
    let (pad, mut p) = if h.has(frame::PADDED) {
        (usize::from(*p.first()?), &p[1..])
    } else {
        (0, p)
    };
    if h.kind == frame::HEADERS && h.has(frame::PRIORITY_FLAG) {
        p = p.get(5..)?;
    }
    if h.kind == frame::PUSH_PROMISE {
        p = p.get(4..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}

/// The identity of a request on `stream`: from its head when decoded, else the stream alone.
fn identity(stream: u32, heads: Option<Heads>, end_stream: bool) -> Identity {
    let mut id = Identity {
        method: Default::default(),
        target: Default::default(),
        host: None,
        body_len: end_stream.then_some(0),
        request_id: None,
        tls: None,
        stream: Some(stream),
    };
    if let Some(mut h) = heads {
        id.host = h.take_host();
        id.method = h.method.unwrap_or_default();
        id.target = match h.path {
            Some(p) => p,
            // CONNECT names its target by :authority
            None => id.host.clone().unwrap_or_default(),
        };
        id.body_len = id.body_len.or(h.content_length);
        id.request_id = h.request_id;
    }
    id
}

/// The close event of a frame (RST_STREAM, GOAWAY): where its first byte is.
fn close_at(fr: &Frame<'_>) -> CloseEvent {
    SegMeta {
        seq: fr.first.seq_at(fr.start),
        off: fr.start,
        ..fr.first
    }
}

/// The big-endian u32 at `at` (0 where the bytes are missing).
fn u32_at(p: &[u8], at: usize) -> u32 {
    p.get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
