//! Record protection: the cipher suites that can be decrypted, their keys from the logged
//! secrets (TLS 1.2 PRF key expansion, TLS 1.3 HKDF-Expand-Label) and the AEAD that opens a
//! record. The ciphers, MACs and KDFs are RustCrypto's; only the TLS framing of their inputs
//! (nonces, additional data, labels) is here.

use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadCore, AeadInOut};
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// The AEAD tag length of every supported suite.
pub const TAG_LEN: usize = 16;
/// TLS 1.2 GCM's explicit nonce, carried at the start of each record.
const EXPLICIT_NONCE_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadKind {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl AeadKind {
    fn key_len(self) -> usize {
        match self {
            AeadKind::Aes128Gcm => 16,
            AeadKind::Aes256Gcm | AeadKind::ChaCha20Poly1305 => 32,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    Sha256,
    Sha384,
}

impl HashKind {
    pub fn len(self) -> usize {
        match self {
            HashKind::Sha256 => 32,
            HashKind::Sha384 => 48,
        }
    }
}

/// A cipher suite that can be decrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub aead: AeadKind,
    pub hash: HashKind,
    /// A TLS 1.3 suite (else TLS 1.2).
    pub tls13: bool,
}

/// The suite with IANA id `id`, when it is one this tool decrypts: TLS 1.3's three, and TLS
/// 1.2's (EC)DHE/RSA suites with AES-GCM or ChaCha20-Poly1305.
pub fn suite(id: u16) -> Option<Suite> {
    use AeadKind::*;
    use HashKind::*;
    let (aead, hash, tls13) = match id {
        0x1301 => (Aes128Gcm, Sha256, true),
        0x1302 => (Aes256Gcm, Sha384, true),
        0x1303 => (ChaCha20Poly1305, Sha256, true),
        0xc02b | 0xc02f | 0x009c | 0x009e => (Aes128Gcm, Sha256, false),
        0xc02c | 0xc030 | 0x009d | 0x009f => (Aes256Gcm, Sha384, false),
        0xcca8..=0xccaa => (ChaCha20Poly1305, Sha256, false),
        _ => return None,
    };
    Some(Suite {
        id,
        aead,
        hash,
        tls13,
    })
}

/// The name of a cipher suite (from tls-parser's registry), or its number.
pub fn suite_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id).map_or_else(|| format!("0x{id:04x}"), |s| s.name.into())
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// Why a record could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short to hold a nonce and a tag.
    Short,
    /// The tag did not verify: wrong key, or bytes changed.
    Auth,
}

/// One direction's record protection: key, IV and record sequence number.
pub struct RecordKey {
    cipher: Cipher,
    iv: [u8; 12],
    /// TLS 1.2 with AES-GCM: 4 implicit IV bytes, 8 explicit in each record.
    explicit_nonce: bool,
    tls13: bool,
    hash: HashKind,
    /// TLS 1.3: the traffic secret (for key updates).
    secret: Vec<u8>,
    pub seq: u64,
}

impl std::fmt::Debug for RecordKey {
    // keys stay out of debug output
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordKey(seq {})", self.seq)
    }
}

impl RecordKey {
    fn new(aead: AeadKind, key: &[u8], iv: &[u8], suite: Suite, secret: Vec<u8>) -> RecordKey {
        let cipher = match aead {
            AeadKind::Aes128Gcm => Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).expect("key length of the suite"),
            )),
            AeadKind::Aes256Gcm => Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).expect("key length of the suite"),
            )),
            AeadKind::ChaCha20Poly1305 => Cipher::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(key).expect("key length of the suite"),
            )),
        };
        let mut full_iv = [0u8; 12];
        full_iv[..iv.len()].copy_from_slice(iv);
        RecordKey {
            cipher,
            iv: full_iv,
            explicit_nonce: !suite.tls13 && aead != AeadKind::ChaCha20Poly1305,
            tls13: suite.tls13,
            hash: suite.hash,
            secret,
            seq: 0,
        }
    }

    /// TLS 1.3: the key and IV of a traffic secret (RFC 8446 section 7.3).
    pub fn tls13(suite: Suite, secret: &[u8]) -> Option<RecordKey> {
        let key = expand_label(suite.hash, secret, b"key", suite.aead.key_len())?;
        let iv = expand_label(suite.hash, secret, b"iv", 12)?;
        Some(RecordKey::new(
            suite.aead,
            &key,
            &iv,
            suite,
            secret.to_vec(),
        ))
    }

    /// TLS 1.2: both directions' keys from the master secret (RFC 5246 section 6.3): `(client,
    /// server)`.
    pub fn tls12(
        suite: Suite,
        master: &[u8],
        client_random: &[u8],
        server_random: &[u8],
    ) -> (RecordKey, RecordKey) {
        let key_len = suite.aead.key_len();
        let iv_len = if suite.aead == AeadKind::ChaCha20Poly1305 {
            12
        } else {
            4
        };
        let seed = [server_random, client_random].concat();
        let block = prf(
            suite.hash,
            master,
            b"key expansion",
            &seed,
            2 * (key_len + iv_len),
        );
        let (keys, ivs) = block.split_at(2 * key_len);
        let make = |k: &[u8], iv: &[u8]| RecordKey::new(suite.aead, k, iv, suite, Vec::new());
        (
            make(&keys[..key_len], &ivs[..iv_len]),
            make(&keys[key_len..], &ivs[iv_len..]),
        )
    }

    /// TLS 1.3 KeyUpdate: the next traffic secret's key, sequence numbers from 0.
    pub fn updated(&self) -> Option<RecordKey> {
        let suite_of = |aead| Suite {
            id: 0,
            aead,
            hash: self.hash,
            tls13: true,
        };
        let aead = match self.cipher {
            Cipher::Aes128(_) => AeadKind::Aes128Gcm,
            Cipher::Aes256(_) => AeadKind::Aes256Gcm,
            Cipher::ChaCha(_) => AeadKind::ChaCha20Poly1305,
        };
        let next = expand_label(self.hash, &self.secret, b"traffic upd", self.hash.len())?;
        RecordKey::tls13(suite_of(aead), &next)
    }

    /// Open the record with header `header` (type, version, length) and `body`, into `out`;
    /// the sequence number advances when it opens (the caller advances it past a record it
    /// gives up on). Returns the content type (TLS 1.3: the inner one, padding removed).
    pub fn open(
        &mut self,
        header: [u8; 5],
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u8, OpenError> {
        let seq = self.seq;
        let mut nonce = self.iv;
        let body = if self.explicit_nonce {
            if body.len() < EXPLICIT_NONCE_LEN + TAG_LEN {
                return Err(OpenError::Short);
            }
            nonce[4..].copy_from_slice(&body[..EXPLICIT_NONCE_LEN]);
            &body[EXPLICIT_NONCE_LEN..]
        } else {
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            body
        };
        let Some(text_len) = body.len().checked_sub(TAG_LEN) else {
            return Err(OpenError::Short);
        };
        let (ciphertext, tag) = body.split_at(text_len);
        // TLS 1.3 authenticates the record header; TLS 1.2 the sequence number, the type, the
        // version and the plaintext's length
        let mut aad_buf = [0u8; 13];
        let aad: &[u8] = if self.tls13 {
            &header
        } else {
            aad_buf[..8].copy_from_slice(&seq.to_be_bytes());
            aad_buf[8..11].copy_from_slice(&header[..3]);
            aad_buf[11..].copy_from_slice(&(text_len as u16).to_be_bytes());
            &aad_buf
        };
        out.clear();
        out.extend_from_slice(ciphertext);
        let buf = out.as_mut_slice();
        let ok = match &self.cipher {
            Cipher::Aes128(c) => open_in_place(c.as_ref(), nonce, aad, buf, tag),
            Cipher::Aes256(c) => open_in_place(c.as_ref(), nonce, aad, buf, tag),
            Cipher::ChaCha(c) => open_in_place(c.as_ref(), nonce, aad, buf, tag),
        };
        if !ok {
            return Err(OpenError::Auth);
        }
        self.seq += 1;
        if !self.tls13 {
            return Ok(header[0]);
        }
        // TLSInnerPlaintext: content, the real type, zero padding
        let end = out.iter().rposition(|&b| b != 0).ok_or(OpenError::Auth)?;
        let ctype = out[end];
        out.truncate(end);
        Ok(ctype)
    }
}

/// Decrypt `buf` in place with any of the AEADs (12-byte nonces, 16-byte tags); false when the
/// tag does not verify.
fn open_in_place<A>(aead: &A, nonce: [u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool
where
    A: AeadInOut + AeadCore<NonceSize = U12, TagSize = U16>,
{
    let Ok(tag) = tag.try_into() else {
        return false;
    };
    aead.decrypt_inout_detached(&nonce.into(), aad, buf.into(), tag)
        .is_ok()
}

/// HKDF-Expand-Label with an empty context (RFC 8446 section 7.1).
pub fn expand_label(hash: HashKind, secret: &[u8], label: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut info = Vec::with_capacity(4 + 6 + label.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    let mut out = vec![0u8; len];
    match hash {
        HashKind::Sha256 => Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
        HashKind::Sha384 => Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?,
    }
    Some(out)
}

/// The TLS 1.2 PRF (RFC 5246 section 5): P_hash(secret, label + seed), `len` bytes.
pub fn prf(hash: HashKind, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    match hash {
        HashKind::Sha256 => p_hash::<Hmac<Sha256>>(secret, label, seed, len),
        HashKind::Sha384 => p_hash::<Hmac<Sha384>>(secret, label, seed, len),
    }
}

fn p_hash<M: Mac + KeyInit + Clone>(
    secret: &[u8],
    label: &[u8],
    seed: &[u8],
    len: usize,
) -> Vec<u8> {
    let keyed = <M as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    let mut out = Vec::with_capacity(len + 48);
    // A(1) = HMAC(secret, label + seed); A(i) = HMAC(secret, A(i-1))
    let mut a = {
        let mut m = keyed.clone();
        m.update(label);
        m.update(seed);
        m.finalize().into_bytes()
    };
    while out.len() < len {
        let mut m = keyed.clone();
        m.update(&a);
        m.update(label);
        m.update(seed);
        out.extend_from_slice(&m.finalize().into_bytes());
        let mut m = keyed.clone();
        m.update(&a);
        a = m.finalize().into_bytes();
    }
    out.truncate(len);
    out
}
