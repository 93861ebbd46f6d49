//! Header blocks: a HEADERS (or PUSH_PROMISE) fragment joined with its CONTINUATION frames,
//! decoded with HPACK (`super::hpack`) into what names a request or a response. Each
//! direction has its own dynamic table, kept from the first block the capture shows.
//!
//! On a connection picked up mid-stream the table's older entries are unknown. Blocks are still
//! decoded: the entries the capture showed being added are the newest, so their indices are
//! right, and a block that refers to an older one fails. A block that fails (that, or bytes
//! that are not HPACK) leaves the table out of step with the sender's: the direction's heads
//! are not decoded any more, and its requests are known by their stream ids alone.

use crate::app::http1::{parse_decimal, request_id_of};
use crate::app::{RequestId, Text, lossy_text};

/// The largest dynamic table kept (an encoder may ask for more: its blocks are then not
/// decoded). Browsers allow servers 64 KiB; most peers keep the default 4 KiB.
const MAX_TABLE: usize = 64 * 1024;

/// The longest header block decoded.
pub const MAX_BLOCK: usize = super::frame::MAX_KEPT;

/// What a header block says about a request or a response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heads {
    pub method: Option<Text>,
    pub path: Option<Text>,
    pub authority: Option<Text>,
    pub host: Option<Text>,
    pub status: Option<u16>,
    pub content_length: Option<u64>,
    pub request_id: Option<RequestId>,
    /// The `server` header (its first bytes), as HTTP/1.x keeps it.
    pub server: Option<Text>,
}

/// Why a direction's heads are no longer decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undecodable {
    /// A block the decoder refused (an index it does not have, bad Huffman, a table size
    /// over the limit).
    HpackError,
    /// A block longer than [`MAX_BLOCK`].
    TooLarge,
    /// Bytes of a block missing from the capture, or framing lost where blocks may have been.
    Missing,
    /// A header block interrupted by another frame, or a CONTINUATION without a block.
    Interrupted,
}

impl Undecodable {
    pub fn as_str(self) -> &'static str {
        match self {
            Undecodable::HpackError => "hpack_error",
            Undecodable::TooLarge => "header_block_too_large",
            Undecodable::Missing => "header_block_missing",
            Undecodable::Interrupted => "header_block_interrupted",
        }
    }
}

/// One direction's HPACK decoder, until a block fails.
#[derive(Default)]
pub struct HeadDecoder {
    decoder: Option<Box<super::hpack::Decoder>>,
    failed: Option<Undecodable>,
}

impl std::fmt::Debug for HeadDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDecoder")
            .field("failed", &self.failed)
            .finish()
    }
}

impl HeadDecoder {
    /// Can this direction's blocks still be decoded?
    pub fn usable(&self) -> bool {
        self.failed.is_none()
    }

    /// The table is out of step for `why`: no more decoding (the first reason is kept). Returns
    /// whether this call made it so.
    pub fn fail(&mut self, why: Undecodable) -> bool {
        self.decoder = None;
        let first = self.failed.is_none();
        self.failed.get_or_insert(why);
        first
    }

    /// Decode a whole header block; None when it (or an earlier one) could not be.
    pub fn decode(&mut self, block: &[u8]) -> Result<Heads, Undecodable> {
        if let Some(why) = self.failed {
            return Err(why);
        }
        let d = self
            .decoder
            .get_or_insert_with(|| Box::new(super::hpack::Decoder::new(MAX_TABLE)));
        let mut heads = Heads::default();
        match d.decode(block, |name, value| heads.add(name, value)) {
            Ok(()) => Ok(heads),
            Err(_) => {
                self.fail(Undecodable::HpackError);
                Err(Undecodable::HpackError)
            }
        }
    }
}

impl Heads {
    fn add(&mut self, name: &[u8], value: &[u8]) {
        let text = || lossy_text(value);
        match name {
            b":method" => self.method = Some(text()),
            b":path" => self.path = Some(text()),
            b":authority" => self.authority = Some(text()),
            b"host" => self.host = Some(text()),
            b":status" => {
                self.status = parse_decimal(value).and_then(|s| u16::try_from(s).ok());
            }
            b"content-length" => self.content_length = parse_decimal(value),
            b"server" if self.server.is_none() => {
                let v = &value[..value.len().min(crate::app::http1::MAX_SERVER_LEN)];
                self.server = Some(lossy_text(v));
            }
            _ => {
                if self.request_id.is_none()
                    && let Ok(name) = std::str::from_utf8(name)
                {
                    self.request_id = request_id_of(name, value);
                }
            }
        }
    }

    /// The request's Host: `:authority`, else the `host` header.
    pub fn take_host(&mut self) -> Option<Text> {
        self.authority.take().or_else(|| self.host.take())
    }
}
