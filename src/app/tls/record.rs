//! TLS record framing of one direction: 5-byte headers (type, version, length) split over any
//! number of segments, several records per segment, each record located by the stream offset
//! and segment of its first byte. Bodies are kept only when asked for (handshake messages, and
//! everything when decrypting), in a buffer reused from record to record.

use crate::flow::SegMeta;

pub const CHANGE_CIPHER_SPEC: u8 = 20;
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;
pub const HEADER_LEN: usize = 5;
/// The longest record body: 2^14 plus TLS 1.2's allowance for expansion (RFC 5246 6.2.3).
pub const MAX_BODY: usize = (1 << 14) + 2048;

/// A record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ctype: u8,
    pub version: u16,
    pub len: u16,
}

impl Header {
    /// Parse 5 bytes; None when they cannot start a record (unknown type, not TLS 1.x, too long).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Option<Header> {
        let h = Header {
            ctype: b[0],
            version: u16::from_be_bytes([b[1], b[2]]),
            len: u16::from_be_bytes([b[3], b[4]]),
        };
        let plausible = (CHANGE_CIPHER_SPEC..=24).contains(&h.ctype)
            && (0x0300..=0x0304).contains(&h.version)
            && usize::from(h.len) <= MAX_BODY;
        plausible.then_some(h)
    }

    pub fn bytes(&self) -> [u8; HEADER_LEN] {
        let v = self.version.to_be_bytes();
        let l = self.len.to_be_bytes();
        [self.ctype, v[0], v[1], l[0], l[1]]
    }
}

/// A complete record.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub header: Header,
    /// Stream offset of the header's first byte.
    pub start: i64,
    /// The segment that carried the header's first byte.
    pub first: SegMeta,
    /// The body, when it was kept and no byte of it was missing from the capture.
    pub body: Option<&'a [u8]>,
}

/// What the reader reports besides complete records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A record header was read (its body may follow in later segments).
    Started(Header, i64, SegMeta),
    /// A complete record (see [`Reader::record`]).
    Complete,
    /// Bytes that cannot be a record header, or a gap in one: framing is lost for good.
    Lost,
}

#[derive(Debug, Default)]
enum State {
    /// Reading a header: `have` bytes of it so far.
    #[default]
    Header,
    Body {
        header: Header,
        start: i64,
        first: SegMeta,
        /// Body bytes still to come.
        left: usize,
        keep: bool,
        /// Bytes of the body were missing.
        damaged: bool,
    },
    Lost,
}

/// One direction's record framing.
#[derive(Debug, Default)]
pub struct Reader {
    state: State,
    head: [u8; HEADER_LEN],
    have: usize,
    /// First byte of the header being read, and its segment.
    head_at: (i64, SegMeta),
    body: Vec<u8>,
    done: Option<(Header, i64, SegMeta, bool)>,
}

impl Reader {
    /// Feed bytes at stream offset `off` from segment `meta`; `keep(header)` says whether to
    /// keep a record's body. `on` is called for each header read and each record completed
    /// (then [`Reader::record`] gives it).
    pub fn on_data(
        &mut self,
        mut off: i64,
        mut bytes: &[u8],
        meta: SegMeta,
        keep: &mut dyn FnMut(&Header) -> bool,
        on: &mut dyn FnMut(&mut Reader, Framing),
    ) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Header => {
                    if self.have == 0 {
                        self.head_at = (off, meta);
                    }
                    let n = (HEADER_LEN - self.have).min(bytes.len());
                    self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
                    self.have += n;
                    (off, bytes) = (off + n as i64, &bytes[n..]);
                    if self.have < HEADER_LEN {
                        return;
                    }
                    self.have = 0;
                    let Some(header) = Header::parse(&self.head) else {
                        self.state = State::Lost;
                        return on(self, Framing::Lost);
                    };
                    let (start, first) = self.head_at;
                    self.body.clear();
                    self.state = State::Body {
                        header,
                        start,
                        first,
                        left: usize::from(header.len),
                        keep: keep(&header),
                        damaged: false,
                    };
                    on(self, Framing::Started(header, start, first));
                    self.complete_if_done(on);
                }
                State::Body { left, keep, .. } => {
                    let n = (*left).min(bytes.len());
                    if *keep {
                        self.body.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n;
                    (off, bytes) = (off + n as i64, &bytes[n..]);
                    self.complete_if_done(on);
                }
            }
        }
    }

    fn complete_if_done(&mut self, on: &mut dyn FnMut(&mut Reader, Framing)) {
        if let State::Body {
            header,
            start,
            first,
            left: 0,
            damaged,
            keep,
        } = self.state
        {
            self.done = Some((header, start, first, keep && !damaged));
            self.state = State::Header;
            on(self, Framing::Complete);
        }
    }

    /// `len` bytes at the current position are missing: inside a record's body the framing
    /// goes on (the body is damaged); anywhere else it is lost.
    pub fn on_gap(&mut self, len: u64, on: &mut dyn FnMut(&mut Reader, Framing)) {
        match &mut self.state {
            State::Body { left, damaged, .. } if self.have == 0 && len <= *left as u64 => {
                *left -= len as usize;
                *damaged = true;
                self.complete_if_done(on);
            }
            State::Lost => {}
            _ => {
                self.state = State::Lost;
                on(self, Framing::Lost);
            }
        }
    }

    /// The record just completed (valid inside the `Complete` callback).
    pub fn record(&self) -> Option<Record<'_>> {
        let (header, start, first, whole) = self.done?;
        Some(Record {
            header,
            start,
            first,
            body: whole.then_some(self.body.as_slice()),
        })
    }
}
