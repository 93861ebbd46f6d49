//! The digest of a request body as it streams by: its length and CRC-32, so that a retry can
//! be told from another request with a body of the same length. Bytes missing from the capture
//! leave no digest.

use crate::app::BodyDigest;

/// A request body's digest so far.
#[derive(Clone, Debug, Default)]
pub(super) struct BodyHasher {
    crc: crc32fast::Hasher,
    len: u64,
    /// Bytes of the body were missing from the capture.
    cut: bool,
}

impl BodyHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes of the body are missing.
    pub fn cut(&mut self) {
        self.cut = true;
    }

    /// The digest, unless bytes were missing.
    pub fn finish(self) -> Option<BodyDigest> {
        (!self.cut).then(|| BodyDigest {
            len: self.len,
            crc32: self.crc.finalize(),
        })
    }
}
