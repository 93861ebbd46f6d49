//! TLS: requests and responses inside encrypted connections, with or without keys.
//!
//! TLS is recognised by content, not port: a connection whose first bytes are a handshake
//! record holding a ClientHello (or a ServerHello, when the capture put the server first).
//! Each direction's records are framed across segments ([`record`]); the handshake is read in
//! the clear ([`handshake`]: version, cipher suite, SNI, ALPN, resumption).
//!
//! Without keys, requests and responses are flights of opaque records ([`flights`]): a request
//! is known by its place (the stream offset and segment of its first record, so the verdicts
//! rest on the same sequence and acknowledgement numbers as for HTTP) and by the length of its
//! first record, which a retry on a new connection repeats.
//!
//! With a key log ([`keylog`]), records are decrypted ([`decrypt`], [`cipher`]) and the
//! plaintext goes to an inner analyzer ([`inner`]: HTTP/1.x; HTTP/2 plugs in there), whose
//! requests carry method, target and Host. A connection whose records cannot be decrypted
//! (no key, a suite not supported, a wrong key) falls back to the analysis without keys; the
//! records are counted per reason.

pub(crate) mod cipher;
pub(crate) mod decrypt;
mod flights;
mod handshake;
mod inner;
pub mod keylog;
mod record;
#[cfg(test)]
mod tests;

pub use decrypt::Keys;

use super::{AppEvent, TlsIdentity};
use crate::flow::{ConnMeta, Dir, FlowEvent, PerDir};
use decrypt::{Decrypt, Opened, Undecrypted};
use flights::Flights;
use handshake::{ClientHello, Message, ServerHello};
use inner::Inner;
use record::{Framing, Header, Reader};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counters of the TLS analysis, summed over connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TlsStats {
    pub connections: u64,
    /// By negotiated version ("TLS 1.2", "TLS 1.3"; "unknown" without a ServerHello).
    pub versions: BTreeMap<&'static str, u64>,
    /// Handshakes that resumed a session (TLS 1.2 session id or ticket, TLS 1.3 PSK).
    pub resumed: u64,
    /// Connections whose application data was decrypted with the key log.
    pub decrypted_connections: u64,
    pub decrypted_records: u64,
    /// Records not decrypted although a key log was given, per reason.
    pub undecrypted_records: BTreeMap<&'static str, u64>,
    /// Directions whose record framing was lost (bytes that cannot be a record header, or
    /// missing from the capture where a header was).
    pub framing_lost: u64,
}

impl TlsStats {
    pub fn is_empty(&self) -> bool {
        self.connections == 0
    }

    /// Add another shard's counters.
    pub fn add(&mut self, o: &TlsStats) {
        self.connections += o.connections;
        for (k, v) in &o.versions {
            *self.versions.entry(k).or_default() += v;
        }
        self.resumed += o.resumed;
        self.decrypted_connections += o.decrypted_connections;
        self.decrypted_records += o.decrypted_records;
        for (k, v) in &o.undecrypted_records {
            *self.undecrypted_records.entry(k).or_default() += v;
        }
        self.framing_lost += o.framing_lost;
    }

    fn undecrypted(&mut self, why: Undecrypted) {
        *self.undecrypted_records.entry(why.as_str()).or_default() += 1;
    }
}

/// What the TLS analysis keeps across the connections of a shard.
#[derive(Debug, Default)]
pub struct TlsContext {
    pub keys: Keys,
    pub stats: TlsStats,
    /// The counters of the HTTP/2 analysis of decrypted connections.
    pub h2: crate::app::h2::H2Stats,
    /// The messages of the flow event being analysed (a buffer reused).
    events: Vec<AppEvent>,
}

impl TlsContext {
    pub fn new(keys: Keys) -> TlsContext {
        TlsContext {
            keys,
            ..TlsContext::default()
        }
    }
}

/// Do a connection's first bytes look like TLS: a handshake record holding a ClientHello or a
/// ServerHello?
pub fn looks_like_tls(first: &[u8]) -> bool {
    match first {
        [22, 3, 0..=4, _, _, 1 | 2, ..] => true,
        // too short to tell the message type: the record header alone
        [22, 3, 0..=4, ..] => first.len() < 6,
        _ => false,
    }
}

/// How the connection's messages are found.
#[derive(Debug)]
enum Mode {
    /// From record sizes (no key, or until the keys are known).
    Keyless,
    /// From the plaintext.
    Decrypting(Box<Decrypt>, Option<Box<Inner>>),
}

/// The TLS analysis of one connection, both directions.
#[derive(Debug, Default)]
pub struct TlsConn {
    readers: PerDir<Reader>,
    st: State,
}

#[derive(Debug, Default)]
struct State {
    /// The direction that sent the ClientHello.
    client: Option<Dir>,
    handshake: PerDir<handshake::Reassembler>,
    client_hello: Option<Box<ClientHello>>,
    server_hello: Option<Box<ServerHello>>,
    identity: TlsIdentity,
    tls13: bool,
    flights: Flights,
    mode: Option<Mode>,
    /// Some application data was decrypted (a later failure no longer falls back).
    decrypted: bool,
    messages: Vec<Message>,
    keyless: Vec<AppEvent>,
}

impl TlsConn {
    /// Feed one flow event; each message it completes is handed to `emit`.
    pub fn on_flow(
        &mut self,
        conn: &ConnMeta,
        ev: &FlowEvent<'_>,
        ctx: &mut TlsContext,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        let mut out = std::mem::take(&mut ctx.events);
        self.analyse(conn, ev, ctx, &mut out);
        for e in out.drain(..) {
            emit(e);
        }
        ctx.events = out;
    }

    fn analyse(
        &mut self,
        conn: &ConnMeta,
        ev: &FlowEvent<'_>,
        ctx: &mut TlsContext,
        out: &mut Vec<AppEvent>,
    ) {
        let TlsConn { readers, st } = self;
        if st.mode.is_none() {
            st.mode = Some(Mode::Keyless);
            ctx.stats.connections += 1;
        }
        match *ev {
            FlowEvent::Data {
                dir,
                off,
                bytes,
                meta,
            } => {
                // with a key log every body may be needed (decryption starts at the ServerHello,
                // perhaps in the middle of a segment); without, only the handshake's and alerts
                let keep_all = ctx.keys.log.is_some();
                readers[dir].on_data(
                    off,
                    bytes,
                    meta,
                    &mut |h: &Header| {
                        keep_all || matches!(h.ctype, record::HANDSHAKE | record::ALERT)
                    },
                    &mut |r: &mut Reader, f: Framing| st.on_framing(conn, dir, r, f, ctx, out),
                );
            }
            FlowEvent::Gap { dir, len, .. } => {
                readers[dir].on_gap(len, &mut |r: &mut Reader, f: Framing| {
                    st.on_framing(conn, dir, r, f, ctx, out)
                });
            }
            FlowEvent::Eof { dir, meta, .. } => {
                if let Some(Mode::Decrypting(_, Some(inner))) = &mut st.mode {
                    inner.eof(dir, meta, &st.identity, &mut ctx.h2, out);
                }
            }
            FlowEvent::Retransmit { .. } | FlowEvent::Segment { .. } => {}
        }
    }
}

impl State {
    fn decrypting(&self) -> bool {
        matches!(self.mode, Some(Mode::Decrypting(..)))
    }

    fn on_framing(
        &mut self,
        conn: &ConnMeta,
        dir: Dir,
        r: &mut Reader,
        f: Framing,
        ctx: &mut TlsContext,
        out: &mut Vec<AppEvent>,
    ) {
        match f {
            Framing::Started(h, start, first) => {
                let client = self.client.unwrap_or(Dir::Fwd);
                let fctx = flights::Ctx {
                    client,
                    tls13: self.tls13,
                    identity: &self.identity,
                };
                self.keyless.clear();
                if self.client.is_some() {
                    self.flights
                        .on_header(&fctx, dir, h, start, first, &mut self.keyless);
                }
                self.emit_keyless(out);
            }
            Framing::Complete => {
                let Some(rec) = r.record() else { return };
                self.on_record(conn, dir, rec, ctx, out);
                if let Some(client) = self.client {
                    let fctx = flights::Ctx {
                        client,
                        tls13: self.tls13,
                        identity: &self.identity,
                    };
                    self.keyless.clear();
                    self.flights.on_complete(&fctx, dir, &mut self.keyless);
                    self.emit_keyless(out);
                }
            }
            Framing::Lost => {
                ctx.stats.framing_lost += 1;
                out.push(AppEvent::Desync { dir, anomaly: None });
            }
        }
    }

    /// Without keys, the flights' messages are the connection's.
    fn emit_keyless(&mut self, out: &mut Vec<AppEvent>) {
        if !self.decrypting() {
            out.append(&mut self.keyless);
        }
    }

    fn on_record(
        &mut self,
        conn: &ConnMeta,
        dir: Dir,
        rec: record::Record<'_>,
        ctx: &mut TlsContext,
        out: &mut Vec<AppEvent>,
    ) {
        let opened = match &mut self.mode {
            Some(Mode::Decrypting(d, _)) => d.open(dir, rec.header, rec.body),
            _ => Opened::Clear,
        };
        match opened {
            Opened::Clear => {
                if rec.header.ctype == record::HANDSHAKE
                    && let Some(body) = rec.body
                {
                    self.handshake_bytes(dir, body, ctx);
                }
            }
            Opened::Skipped => {}
            Opened::Failed(why) => self.undecrypted(dir, rec, why, ctx, out),
            Opened::Plain(ctype, plain) => {
                ctx.stats.decrypted_records += 1;
                let plain = plain.to_vec();
                self.on_plaintext(conn, dir, rec, (ctype, &plain), ctx, out);
            }
        }
    }

    fn on_plaintext(
        &mut self,
        conn: &ConnMeta,
        dir: Dir,
        rec: record::Record<'_>,
        (ctype, plain): (u8, &[u8]),
        ctx: &mut TlsContext,
        out: &mut Vec<AppEvent>,
    ) {
        match ctype {
            record::HANDSHAKE => self.handshake_bytes(dir, plain, ctx),
            record::ALERT if Some(dir) != self.client => {
                out.push(flights::closing_event(dir, rec.start, rec.first));
            }
            record::APPLICATION_DATA => {
                let Some(Mode::Decrypting(_, inner)) = &mut self.mode else {
                    return;
                };
                if inner.is_none() {
                    let client = self.client.unwrap_or(Dir::Fwd);
                    let alpn = self.identity.alpn.as_deref();
                    match Inner::for_alpn(alpn, conn, client, &mut ctx.h2) {
                        Some(i) => *inner = Some(Box::new(i)),
                        None => return self.fall_back(Undecrypted::NoInnerAnalyzer, ctx),
                    }
                }
                if !self.decrypted {
                    self.decrypted = true;
                    ctx.stats.decrypted_connections += 1;
                }
                if let Some(i) = inner {
                    i.data(
                        dir,
                        (rec.start, rec.first),
                        plain,
                        &self.identity,
                        &mut ctx.h2,
                        out,
                    );
                }
            }
            _ => {}
        }
    }

    /// A record that could not be decrypted: before any application data was, the connection
    /// falls back to the analysis without keys; after, the inner analyzer gets a gap.
    fn undecrypted(
        &mut self,
        dir: Dir,
        rec: record::Record<'_>,
        why: Undecrypted,
        ctx: &mut TlsContext,
        out: &mut Vec<AppEvent>,
    ) {
        if !self.decrypted {
            return self.fall_back(why, ctx);
        }
        ctx.stats.undecrypted(why);
        let len = u64::from(rec.header.len).saturating_sub(cipher::TAG_LEN as u64);
        if let Some(Mode::Decrypting(_, Some(inner))) = &mut self.mode {
            inner.gap(
                dir,
                (rec.start, rec.first),
                len,
                &self.identity,
                &mut ctx.h2,
                out,
            );
        }
    }

    fn fall_back(&mut self, why: Undecrypted, ctx: &mut TlsContext) {
        ctx.stats.undecrypted(why);
        self.mode = Some(Mode::Keyless);
    }

    fn handshake_bytes(&mut self, dir: Dir, bytes: &[u8], ctx: &mut TlsContext) {
        let mut msgs = std::mem::take(&mut self.messages);
        self.handshake[dir].feed(bytes, self.tls13, &mut msgs);
        for m in msgs.drain(..) {
            self.on_message(dir, m, ctx);
        }
        self.messages = msgs;
    }

    fn on_message(&mut self, dir: Dir, m: Message, ctx: &mut TlsContext) {
        match m {
            Message::ClientHello(ch) if self.client_hello.is_none() => {
                self.client = Some(dir);
                self.identity.sni = ch.sni.clone();
                self.client_hello = Some(ch);
            }
            Message::ServerHello(sh) if self.server_hello.is_none() => {
                if self.client.is_none() {
                    self.client = Some(dir.other());
                }
                self.on_server_hello(sh, ctx);
            }
            Message::NewSessionTicket(ticket) => {
                if let Some(Mode::Decrypting(d, _)) = &self.mode {
                    d.remember_ticket(&mut ctx.keys, &ticket);
                }
            }
            Message::EncryptedExtensions { alpn: Some(alpn) } => self.identity.alpn = Some(alpn),
            Message::Finished => {
                if let Some(Mode::Decrypting(d, _)) = &mut self.mode
                    && self.tls13
                {
                    d.finished(dir);
                }
            }
            Message::KeyUpdate => {
                if let Some(Mode::Decrypting(d, _)) = &mut self.mode {
                    d.key_update(dir);
                }
            }
            _ => {}
        }
    }

    fn on_server_hello(&mut self, sh: Box<ServerHello>, ctx: &mut TlsContext) {
        self.tls13 = sh.version == 0x0304;
        let version = handshake::version_name(sh.version);
        *ctx.stats.versions.entry(version).or_default() += 1;
        self.identity.version = version;
        self.identity.cipher_suite = sh.cipher;
        if sh.alpn.is_some() {
            self.identity.alpn = sh.alpn.clone();
        }
        let resumed = match &self.client_hello {
            Some(ch) if self.tls13 => sh.psk && ch.psk,
            // the server echoes the session id it resumes (with a ticket too, RFC 5077 3.4)
            Some(ch) => !sh.session_id.is_empty() && sh.session_id == ch.session_id,
            None => false,
        };
        ctx.stats.resumed += u64::from(resumed);
        self.identity.resumed = resumed;
        if ctx.keys.log.is_some()
            && let (Some(ch), Some(client)) = (&self.client_hello, self.client)
        {
            match Decrypt::new(&mut ctx.keys, ch, &sh, client) {
                Ok(d) => self.mode = Some(Mode::Decrypting(Box::new(d), None)),
                Err(why) => ctx.stats.undecrypted(why),
            }
        }
        self.server_hello = Some(sh);
    }
}
