//! Decryption of one connection with logged secrets: the keys of each direction, when they
//! take effect (TLS 1.2: after that direction's ChangeCipherSpec; TLS 1.3: handshake keys
//! after the ServerHello, application keys after the direction's Finished, a new key after a
//! KeyUpdate), and TLS 1.2 resumption (the master secret of an earlier connection, found by
//! session id or ticket, when the key log has no line for this one).

use super::cipher::{OpenError, RecordKey, Suite, suite};
use super::handshake::{ClientHello, ServerHello};
use super::keylog::KeyLog;
use super::record::{CHANGE_CIPHER_SPEC, Header};
use crate::flow::{Dir, PerDir};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Sessions remembered for TLS 1.2 resumption, per shard (a client and its server are always
/// in the same shard). Cleared when full: resumption is best effort.
const MAX_SESSIONS: usize = 4096;

/// Why records could not be decrypted (the names are the report's counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undecrypted {
    /// Neither the key log nor an earlier session has this connection's secrets.
    NoKey,
    /// A cipher suite this tool does not decrypt.
    UnsupportedSuite,
    /// The record did not authenticate: a wrong key, or changed bytes.
    AuthFailed,
    /// Bytes of the record were missing from the capture.
    MissingBytes,
    /// ALPN chose a protocol no analyzer reads inside TLS yet.
    NoInnerAnalyzer,
}

impl Undecrypted {
    pub fn as_str(self) -> &'static str {
        match self {
            Undecrypted::NoKey => "no_key",
            Undecrypted::UnsupportedSuite => "unsupported_suite",
            Undecrypted::AuthFailed => "auth_failed",
            Undecrypted::MissingBytes => "missing_bytes",
            Undecrypted::NoInnerAnalyzer => "no_inner_analyzer",
        }
    }
}

/// What the shards share and keep across connections for decryption.
#[derive(Debug, Default)]
pub struct Keys {
    pub log: Option<Arc<KeyLog>>,
    /// TLS 1.2 master secrets by session id and by ticket.
    sessions: FxHashMap<Vec<u8>, Arc<[u8]>>,
}

impl Keys {
    pub fn new(log: Option<Arc<KeyLog>>) -> Keys {
        Keys {
            log,
            sessions: FxHashMap::default(),
        }
    }

    fn remember(&mut self, id: &[u8], master: &Arc<[u8]>) {
        if id.is_empty() {
            return;
        }
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.clear();
        }
        self.sessions.insert(id.to_vec(), master.clone());
    }
}

/// A record after decryption.
pub enum Opened<'a> {
    /// Content of this type (TLS 1.3: the inner type).
    Plain(u8, &'a [u8]),
    /// Not protected (yet) in this direction: read it as it is.
    Clear,
    /// TLS 1.3: a handshake record under handshake keys that are not in the key log.
    Skipped,
    Failed(Undecrypted),
}

/// The decryption state of one connection.
pub struct Decrypt {
    tls13: bool,
    /// TLS 1.2: the master secret (remembered for resumption).
    master: Option<Arc<[u8]>>,
    /// Current key per direction; TLS 1.2: in force after the direction's ChangeCipherSpec.
    current: PerDir<Option<RecordKey>>,
    /// TLS 1.3: the application key, in force after the direction's Finished.
    next: PerDir<Option<RecordKey>>,
    active: PerDir<bool>,
    plain: Vec<u8>,
}

impl std::fmt::Debug for Decrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decrypt(tls13 {})", self.tls13)
    }
}

impl Decrypt {
    /// The keys of a connection from its hellos, or why there are none.
    pub fn new(
        keys: &mut Keys,
        ch: &ClientHello,
        sh: &ServerHello,
        client: Dir,
    ) -> Result<Decrypt, Undecrypted> {
        let log = keys.log.as_deref().ok_or(Undecrypted::NoKey)?;
        let suite = suite(sh.cipher).ok_or(Undecrypted::UnsupportedSuite)?;
        let secrets = log.get(&ch.random);
        let server = client.other();
        let mut d = Decrypt {
            tls13: suite.tls13,
            master: None,
            current: PerDir::default(),
            next: PerDir::default(),
            active: PerDir::default(),
            plain: Vec::new(),
        };
        if suite.tls13 {
            let s = secrets.ok_or(Undecrypted::NoKey)?;
            let key = |secret: &Option<Vec<u8>>| {
                secret.as_deref().and_then(|k| RecordKey::tls13(suite, k))
            };
            d.current[client] = key(&s.client_handshake);
            d.current[server] = key(&s.server_handshake);
            d.next[client] = key(&s.client_traffic);
            d.next[server] = key(&s.server_traffic);
            if d.next[client].is_none() && d.next[server].is_none() {
                return Err(Undecrypted::NoKey);
            }
            d.active = PerDir::new(true, true);
            return Ok(d);
        }
        let master: Arc<[u8]> = match secrets.and_then(|s| s.master.as_deref()) {
            Some(m) => m.into(),
            None => resumed_master(keys, ch, sh).ok_or(Undecrypted::NoKey)?,
        };
        d.set_tls12_keys(suite, &master, ch, sh, client);
        keys.remember(&sh.session_id, &master);
        d.master = Some(master);
        Ok(d)
    }

    fn set_tls12_keys(
        &mut self,
        suite: Suite,
        master: &[u8],
        ch: &ClientHello,
        sh: &ServerHello,
        client: Dir,
    ) {
        let (c, s) = RecordKey::tls12(suite, master, &ch.random, &sh.random);
        self.current[client] = Some(c);
        self.current[client.other()] = Some(s);
    }

    /// A TLS 1.2 NewSessionTicket: its ticket resumes this connection's session.
    pub fn remember_ticket(&self, keys: &mut Keys, ticket: &[u8]) {
        if let Some(m) = &self.master {
            keys.remember(ticket, m);
        }
    }

    /// Open a record of direction `dir` (a ChangeCipherSpec turns TLS 1.2 protection on).
    pub fn open(&mut self, dir: Dir, h: Header, body: Option<&[u8]>) -> Opened<'_> {
        if h.ctype == CHANGE_CIPHER_SPEC {
            self.active[dir] |= !self.tls13;
            return Opened::Clear;
        }
        let protected =
            self.active[dir] && (!self.tls13 || h.ctype == super::record::APPLICATION_DATA);
        if !protected {
            return Opened::Clear;
        }
        let Some(body) = body else {
            self.give_up(dir);
            return Opened::Failed(Undecrypted::MissingBytes);
        };
        let header = h.bytes();
        let result = match &mut self.current[dir] {
            Some(k) => k.open(header, body, &mut self.plain),
            None => Err(OpenError::Auth),
        };
        match result {
            Ok(t) => Opened::Plain(t, &self.plain),
            // TLS 1.3: the application key takes over when the handshake key (absent, or
            // done with) does not open the record
            Err(_) if self.next[dir].is_some() => {
                let mut next = self.next[dir].take().expect("checked");
                match next.open(header, body, &mut self.plain) {
                    Ok(t) => {
                        self.current[dir] = Some(next);
                        Opened::Plain(t, &self.plain)
                    }
                    Err(_) if self.current[dir].is_none() => {
                        self.next[dir] = Some(next);
                        Opened::Skipped
                    }
                    Err(e) => {
                        self.next[dir] = Some(next);
                        self.give_up(dir);
                        Opened::Failed(failure(e))
                    }
                }
            }
            Err(e) => {
                self.give_up(dir);
                Opened::Failed(failure(e))
            }
        }
    }

    /// A record of `dir` that did not open still took a sequence number.
    fn give_up(&mut self, dir: Dir) {
        if let Some(k) = &mut self.current[dir] {
            k.seq += 1;
        }
    }

    /// TLS 1.3: the direction's Finished was read: its application key is in force.
    pub fn finished(&mut self, dir: Dir) {
        if let Some(next) = self.next[dir].take() {
            self.current[dir] = Some(next);
        }
    }

    /// TLS 1.3 KeyUpdate from `dir`: its next records use the next secret.
    pub fn key_update(&mut self, dir: Dir) {
        if let Some(k) = self.current[dir].as_ref().and_then(RecordKey::updated) {
            self.current[dir] = Some(k);
        }
    }
}

fn failure(e: OpenError) -> Undecrypted {
    match e {
        OpenError::Short | OpenError::Auth => Undecrypted::AuthFailed,
    }
}

/// TLS 1.2 resumption: the master secret of the session the server resumed (by ticket, or by
/// the session id it echoed).
fn resumed_master(keys: &Keys, ch: &ClientHello, sh: &ServerHello) -> Option<Arc<[u8]>> {
    let by_ticket = ch.ticket.as_ref().and_then(|t| keys.sessions.get(t));
    let by_id = (!sh.session_id.is_empty() && sh.session_id == ch.session_id)
        .then(|| keys.sessions.get(&sh.session_id))
        .flatten();
    by_ticket.or(by_id).cloned()
}
