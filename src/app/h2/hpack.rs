//! An HPACK decoder (RFC 7541) for one direction of a connection: the static and dynamic
//! tables, the field representations, integers and strings (raw or Huffman-coded).
//!
//! Our own rather than a crate's: the maintained HPACK crate (`loona-hpack`, still used to
//! encode the synthetic captures) rebuilds a hash map of the whole Huffman code for every
//! Huffman-coded string and looks every bit up in it, ~650,000 instructions per header
//! block; h2's decoder is private to it. This one borrows what it can (raw strings from the
//! block, fields from the tables), reuses its buffers, bounds everything and never panics on
//! what it is given.

use super::huffman::{self, HuffmanError};
use std::collections::VecDeque;

/// Why a header block could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a representation.
    Truncated,
    /// An integer longer than 5 continuation bytes or over 2^28.
    IntegerOverflow,
    /// Index 0, or one past the tables.
    BadIndex,
    /// A dynamic table size update beyond the allowed maximum.
    TableSizeTooLarge,
    Huffman(HuffmanError),
}

/// The dynamic table size both sides start with (RFC 7540 6.5.2).
const INITIAL_TABLE: usize = 4096;
/// The per-entry overhead counted in a table's size (RFC 7541 4.1).
const ENTRY_OVERHEAD: usize = 32;
/// An integer's value stays below this (no string or index is longer or larger).
const MAX_INTEGER: u64 = 1 << 28;

/// A field of the dynamic table: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// One direction's decoding state.
#[derive(Debug)]
pub struct Decoder {
    table: Table,
    /// Huffman-decoded name and value of the current field (reused).
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// The dynamic table (RFC 7541 2.3.2, 4).
#[derive(Debug)]
struct Table {
    /// Newest first (index 62).
    dynamic: VecDeque<Entry>,
    /// The entries' size (4.1).
    size: usize,
    /// The size the encoder set (at most `allowed`).
    max_size: usize,
    /// The largest size an update may set.
    allowed: usize,
}

impl Decoder {
    /// A decoder whose table may grow to `allowed` bytes when the encoder says so.
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: Table {
                dynamic: VecDeque::new(),
                size: 0,
                max_size: INITIAL_TABLE.min(allowed),
                allowed,
            },
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes a whole header block, calling `field(name, value)` for each field in order.
    /// After an error the table is out of step with the encoder's: decode nothing more.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        while let Some(&first) = block.get(at) {
            if first & 0x80 != 0 {
                // indexed field (6.1)
                let index = integer(block, &mut at, 7)?;
                let (name, value) = self.table.entry(index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                // dynamic table size update (6.3)
                let size = integer(block, &mut at, 5)?;
                self.table.set_max_size(size)?;
            } else {
                // literal: with incremental indexing (6.2.1), without (6.2.2), never (6.2.3)
                let indexing = first & 0x40 != 0;
                let index = integer(block, &mut at, if indexing { 6 } else { 4 })?;
                self.literal(block, &mut at, index, indexing, &mut field)?;
            }
        }
        Ok(())
    }

    /// A literal field whose name is entry `index` (0: a string follows).
    fn literal(
        &mut self,
        block: &[u8],
        at: &mut usize,
        index: usize,
        indexing: bool,
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let Decoder {
            table,
            name_buf,
            value_buf,
        } = self;
        let name: &[u8] = if index == 0 {
            string(block, at, name_buf)?
        } else {
            // copied: the table changes below
            name_buf.clear();
            name_buf.extend_from_slice(table.entry(index)?.0);
            name_buf
        };
        let value = string(block, at, value_buf)?;
        field(name, value);
        if indexing {
            table.insert(name, value);
        }
        Ok(())
    }
}

impl Table {
    /// Entry `index` of the static table then the dynamic one.
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => self
                .dynamic
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(HpackError::BadIndex),
        }
    }

    /// A size update (6.3): at most the allowed size.
    fn set_max_size(&mut self, size: usize) -> Result<(), HpackError> {
        if size > self.allowed {
            return Err(HpackError::TableSizeTooLarge);
        }
        self.max_size = size;
        self.evict_to(size);
        Ok(())
    }

    /// Adds a field to the dynamic table, evicting the oldest to make room (4.4).
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = ENTRY_OVERHEAD + name.len() + value.len();
        if size > self.max_size {
            // larger than the table: it empties it
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - size);
        self.dynamic.push_front((name.into(), value.into()));
        self.size += size;
    }

    /// Evicts the oldest entries until the table's size is at most `size`.
    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some((n, v)) = self.dynamic.pop_back() else {
                self.size = 0;
                break;
            };
            self.size -= ENTRY_OVERHEAD + n.len() + v.len();
        }
    }
}

/// An integer with an `n`-bit prefix at `block[*at]` (5.1); moves `at` past it.
fn integer(block: &[u8], at: &mut usize, n: u32) -> Result<usize, HpackError> {
    let mask = (1u8 << n) - 1;
    let first = *block.get(*at).ok_or(HpackError::Truncated)? & mask;
    *at += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    for shift in (0..5).map(|i| 7 * i) {
        let b = *block.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        value += u64::from(b & 0x7f) << shift;
        if value >= MAX_INTEGER {
            return Err(HpackError::IntegerOverflow);
        }
        if b & 0x80 == 0 {
            return Ok(value as usize);
        }
    }
    Err(HpackError::IntegerOverflow)
}

/// A string literal at `block[*at]` (5.2): borrowed from the block when raw, decoded into
/// `buf` when Huffman-coded.
fn string<'a>(
    block: &'a [u8],
    at: &mut usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], HpackError> {
    let huffman = block.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, at, 7)?;
    let end = at.checked_add(len).filter(|&e| e <= block.len());
    let raw = &block[*at..end.ok_or(HpackError::Truncated)?];
    *at += len;
    if !huffman {
        return Ok(raw);
    }
    buf.clear();
    huffman::decode(raw, buf).map_err(HpackError::Huffman)?;
    Ok(buf)
}

/// The static table (RFC 7541 Appendix A).
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;
