//! HTTP/2 framing of one direction (RFC 9113 section 4): 9-byte frame headers split over any
//! number of segments, several frames per segment, each frame located by the stream offset and
//! segment of its first byte. Payloads are kept only for the frames that need them (header
//! blocks, RST_STREAM, GOAWAY, SETTINGS), up to a bound; DATA is skipped by length.
//!
//! A frame header that cannot be right (a length over the receiver's limit, a fixed-size frame
//! of another size, a stream id where none may be) or a gap where a header was expected loses
//! the framing; it is found again at the start of a later segment whose bytes parse as a chain
//! of plausible frame headers ([`plausible_frames`]; senders start frames on segment boundaries
//! more often than not). The same test recognises HTTP/2 on a connection picked up mid-stream.

use crate::flow::SegMeta;

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const PRIORITY: u8 = 2;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PUSH_PROMISE: u8 = 5;
pub const PING: u8 = 6;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until the receiver's SETTINGS say otherwise.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 14;
/// The largest SETTINGS_MAX_FRAME_SIZE there is.
pub const LARGEST_MAX_FRAME: u32 = (1 << 24) - 1;
/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The longest payload kept (frames of header blocks beyond it are not decoded).
pub const MAX_KEPT: usize = 64 * 1024;

/// Why a frame header cannot be right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Longer than the receiver allows (SETTINGS_MAX_FRAME_SIZE).
    Oversized,
    /// The wrong size for its type, or a stream id where none may be (or none where one must).
    Invalid,
}

impl Malformed {
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Oversized => "oversized_frame",
            Malformed::Invalid => "malformed_frame",
        }
    }
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Is it well-formed for its type, at most `max_frame` bytes long? Unknown types are
    /// allowed (extensions), their payload is skipped.
    pub fn check(&self, max_frame: u32) -> Result<(), Malformed> {
        if self.len > max_frame {
            return Err(Malformed::Oversized);
        }
        let on_stream = self.stream != 0;
        let ok = match self.kind {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => on_stream,
            PRIORITY => on_stream && self.len == 5,
            RST_STREAM => on_stream && self.len == 4,
            SETTINGS => {
                !on_stream && self.len.is_multiple_of(6) && (!self.has(ACK) || self.len == 0)
            }
            PING => !on_stream && self.len == 8,
            GOAWAY => !on_stream && self.len >= 8,
            WINDOW_UPDATE => self.len == 4,
            _ => true,
        };
        if ok { Ok(()) } else { Err(Malformed::Invalid) }
    }

    /// A known type whose header is well-formed: what a frame boundary found by scanning must
    /// start with.
    fn plausible(&self, max_frame: u32) -> bool {
        self.kind <= CONTINUATION && self.check(max_frame).is_ok()
    }

    /// Is its payload worth keeping (the analysis reads it)?
    pub fn kept(&self) -> bool {
        matches!(
            self.kind,
            HEADERS | CONTINUATION | PUSH_PROMISE | RST_STREAM | GOAWAY | SETTINGS
        )
    }
}

/// Do `bytes` start with a chain of plausible frame headers (each frame's header where the
/// previous one ends) that ends exactly at their end, or with a frame that goes on past it?
/// At least one whole header is needed.
pub fn plausible_frames(bytes: &[u8], max_frame: u32) -> bool {
    let mut at = 0usize;
    let mut headers = 0;
    while let Some(h) = bytes.get(at..at + HEADER_LEN) {
        let h = FrameHeader::parse(h.try_into().expect("9 bytes"));
        if !h.plausible(max_frame) {
            return false;
        }
        headers += 1;
        at += HEADER_LEN + h.len as usize;
        if at >= bytes.len() {
            return true;
        }
    }
    // what is left is shorter than a header: a chain ends there only at a frame boundary
    headers > 0 && at == bytes.len()
}

/// A complete frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    /// Stream offset of the header's first byte.
    pub start: i64,
    /// The segment that carried the header's first byte.
    pub first: SegMeta,
    /// The payload, when it was kept and no byte of it was missing from the capture.
    pub payload: Option<&'a [u8]>,
}

/// What the reader reports.
#[derive(Clone, Copy, Debug)]
pub enum Framing<'a> {
    /// A frame header was read (its payload may follow in later segments).
    Started(FrameHeader),
    Complete(Frame<'a>),
    /// Framing lost: a header that cannot be right, or a gap where a header was expected.
    Lost(&'static str),
    /// Framing found again at the start of a segment after being lost.
    Resynced,
}

#[derive(Debug, Default)]
enum State {
    /// Reading a header: `have` bytes of it so far.
    #[default]
    Header,
    Payload {
        header: FrameHeader,
        start: i64,
        first: SegMeta,
        /// Payload bytes still to come.
        left: u32,
        keep: bool,
        /// Bytes of the payload were missing.
        damaged: bool,
    },
    /// Looking for a segment that starts with frames.
    Lost,
}

/// One direction's frame reader.
#[derive(Debug, Default)]
pub struct FrameReader {
    state: State,
    head: [u8; HEADER_LEN],
    have: usize,
    /// First byte of the header being read, and its segment.
    head_at: (i64, SegMeta),
    payload: Vec<u8>,
    /// Bytes before this stream offset are not frames (the client preface).
    skip_until: i64,
    /// The longest frame the receiver allows.
    pub max_frame: u32,
}

impl FrameReader {
    /// A reader whose frames start at stream offset `start`; `lost`: somewhere later, at the
    /// start of a segment (a connection picked up mid-stream).
    pub fn new(start: i64, lost: bool) -> FrameReader {
        FrameReader {
            state: if lost { State::Lost } else { State::Header },
            skip_until: start,
            max_frame: DEFAULT_MAX_FRAME,
            ..FrameReader::default()
        }
    }

    /// Is the framing lost (waiting for a segment that starts with frames)?
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Feed bytes at stream offset `off` from segment `meta` (the start of a segment when
    /// `seg_start`); `on` is called for each header read, frame completed and loss of framing.
    pub fn on_data(
        &mut self,
        mut off: i64,
        mut bytes: &[u8],
        meta: SegMeta,
        on: &mut dyn FnMut(Framing<'_>),
    ) {
        if off < self.skip_until {
            let skip = (self.skip_until - off).min(bytes.len() as i64);
            (off, bytes) = (off + skip, &bytes[skip as usize..]);
        }
        if self.is_lost() && !bytes.is_empty() {
            if !plausible_frames(bytes, self.max_frame) {
                return;
            }
            self.state = State::Header;
            self.have = 0;
            on(Framing::Resynced);
        }
        while !bytes.is_empty() {
            let n = match &mut self.state {
                State::Lost => return,
                State::Header => self.read_header(off, bytes, meta, on),
                State::Payload { left, keep, .. } => {
                    let n = (*left as usize).min(bytes.len());
                    if *keep {
                        self.payload.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n as u32;
                    self.complete_if_done(on);
                    n
                }
            };
            (off, bytes) = (off + n as i64, &bytes[n..]);
        }
    }

    /// Read header bytes; returns how many were used.
    fn read_header(
        &mut self,
        off: i64,
        bytes: &[u8],
        meta: SegMeta,
        on: &mut dyn FnMut(Framing<'_>),
    ) -> usize {
        if self.have == 0 {
            self.head_at = (off, meta);
        }
        let n = (HEADER_LEN - self.have).min(bytes.len());
        self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
        self.have += n;
        if self.have < HEADER_LEN {
            return n;
        }
        self.have = 0;
        let header = FrameHeader::parse(&self.head);
        if let Err(why) = header.check(self.max_frame) {
            self.state = State::Lost;
            on(Framing::Lost(why.as_str()));
            return bytes.len();
        }
        let (start, first) = self.head_at;
        self.payload.clear();
        let keep = header.kept() && header.len as usize <= MAX_KEPT;
        self.state = State::Payload {
            header,
            start,
            first,
            left: header.len,
            keep,
            damaged: false,
        };
        on(Framing::Started(header));
        self.complete_if_done(on);
        n
    }

    fn complete_if_done(&mut self, on: &mut dyn FnMut(Framing<'_>)) {
        if let State::Payload {
            header,
            start,
            first,
            left: 0,
            damaged,
            keep,
        } = self.state
        {
            self.state = State::Header;
            on(Framing::Complete(Frame {
                header,
                start,
                first,
                payload: (keep && !damaged).then_some(self.payload.as_slice()),
            }));
            if self.payload.capacity() > 2 * DEFAULT_MAX_FRAME as usize {
                // a large header block passed: give the memory back
                self.payload = Vec::new();
            }
        }
    }

    /// `len` bytes at `off` are missing: inside a payload the framing goes on (the payload is
    /// damaged); where a header was expected it is lost until a segment starts with frames.
    pub fn on_gap(&mut self, off: i64, len: u64, on: &mut dyn FnMut(Framing<'_>)) {
        let end = off.saturating_add(len.min(i64::MAX as u64) as i64);
        if end <= self.skip_until {
            return;
        }
        match &mut self.state {
            State::Payload { left, damaged, .. } if u64::from(*left) >= len => {
                *left -= len as u32;
                *damaged = true;
                self.complete_if_done(on);
            }
            State::Lost => {}
            State::Header if self.have == 0 && len == 0 => {}
            _ => {
                self.state = State::Lost;
                self.have = 0;
                on(Framing::Lost("framing_lost_in_gap"));
            }
        }
    }
}
