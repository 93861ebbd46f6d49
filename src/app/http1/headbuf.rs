//! A stream's bytes buffered across segments: out of line, allocated only when needed.

use crate::flow::SegMeta;

/// Bytes buffered across segments (an undecided line start or a partial head) with where they
/// start: out of line, allocated only when a segment leaves something undecided (most heads
/// fit in one segment), and kept, cleared, for the next one.
#[derive(Debug, Default)]
pub(crate) struct HeadBuf(Option<Box<Partial>>);

#[derive(Debug, Default)]
struct Partial {
    bytes: Vec<u8>,
    /// Stream offset of the first byte.
    start: i64,
    /// The segment that carried the first byte that is not a leading empty line.
    first: SegMeta,
    /// Only CR and LF bytes so far.
    blank: bool,
}

impl HeadBuf {
    /// Buffer bytes of a message (or a candidate message start) at stream offset `off`,
    /// carried by `seg`.
    pub fn push(&mut self, off: i64, data: &[u8], seg: &SegMeta) {
        let blank = data.iter().all(|&c| c == b'\r' || c == b'\n');
        let p = self.0.get_or_insert_default();
        if p.bytes.is_empty() {
            p.start = off;
            p.first = *seg;
            p.blank = blank;
        } else if p.blank && !blank {
            // the message itself starts in this segment, after empty lines
            p.first = *seg;
            p.blank = false;
        }
        p.bytes.extend_from_slice(data);
    }

    /// Stream offset of the first byte buffered (meaningful while bytes are buffered).
    pub fn start(&self) -> i64 {
        self.0.as_ref().map_or(0, |p| p.start)
    }

    /// Append to what is buffered (`push` starts a buffer: its offset and segment).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.0.get_or_insert_default().bytes.extend_from_slice(data);
    }

    pub fn clear(&mut self) {
        if let Some(p) = &mut self.0 {
            p.bytes.clear();
        }
    }

    /// The segment that carried the first byte that is not a leading empty line.
    pub fn first(&self) -> SegMeta {
        self.0.as_ref().map(|p| p.first).unwrap_or_default()
    }

    pub fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.bytes.capacity())
    }
}

impl std::ops::Deref for HeadBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |p| &p.bytes)
    }
}
