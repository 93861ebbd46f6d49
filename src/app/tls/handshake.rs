//! Handshake messages of one direction, reassembled from handshake records (in the clear, or
//! decrypted) and parsed with tls-parser: what the hellos say (version, cipher suite, SNI,
//! ALPN, session resumption), TLS 1.2 session tickets, and the TLS 1.3 messages that drive
//! decryption (EncryptedExtensions for ALPN, Finished, KeyUpdate). Messages of other types
//! are skipped by length without being kept.

use tls_parser::{
    TlsClientHelloContents, TlsExtension, TlsMessage, TlsMessageHandshake, TlsServerHelloContents,
};

/// Handshake message types kept and parsed.
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const NEW_SESSION_TICKET: u8 = 4;
const ENCRYPTED_EXTENSIONS: u8 = 8;
const FINISHED: u8 = 20;
const KEY_UPDATE: u8 = 24;
const KEPT: [u8; 6] = [
    CLIENT_HELLO,
    SERVER_HELLO,
    NEW_SESSION_TICKET,
    ENCRYPTED_EXTENSIONS,
    FINISHED,
    KEY_UPDATE,
];
/// The longest message kept (a ClientHello with many extensions is a few KB).
const MAX_KEPT: usize = 64 * 1024;

/// What a ClientHello says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// A TLS 1.2 session ticket offered for resumption.
    pub ticket: Option<Vec<u8>>,
    /// A TLS 1.3 pre-shared key offered (resumption).
    pub psk: bool,
    pub early_data: bool,
}

/// What a ServerHello says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    /// The negotiated version (supported_versions when present).
    pub version: u16,
    pub cipher: u16,
    pub alpn: Option<String>,
    /// TLS 1.3: the server accepted a pre-shared key (resumption).
    pub psk: bool,
}

/// A handshake message, as far as it matters here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    ClientHello(Box<ClientHello>),
    ServerHello(Box<ServerHello>),
    /// TLS 1.2 NewSessionTicket (sent in the clear before the server's ChangeCipherSpec).
    NewSessionTicket(Vec<u8>),
    EncryptedExtensions {
        alpn: Option<String>,
    },
    Finished,
    KeyUpdate,
    /// A kept message that did not parse.
    Malformed(u8),
}

/// One direction's handshake byte stream, cut into messages.
#[derive(Debug, Default)]
pub struct Reassembler {
    buf: Vec<u8>,
    /// Bytes still to skip of a message that is not kept.
    skip: usize,
}

impl Reassembler {
    /// Feed handshake bytes; complete messages go to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], tls13: bool, out: &mut Vec<Message>) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let want = if self.buf.len() < 4 {
                4 - self.buf.len()
            } else {
                4 + msg_len(&self.buf) - self.buf.len()
            };
            let n = want.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() < 4 {
                continue;
            }
            let (ty, len) = (self.buf[0], msg_len(&self.buf));
            if self.buf.len() == 4 && !(KEPT.contains(&ty) && len <= MAX_KEPT) {
                self.skip = len;
                self.buf.clear();
            } else if self.buf.len() == 4 + len {
                out.push(parse(&self.buf, tls13));
                self.buf.clear();
            }
        }
    }
}

/// The body length in a message header.
fn msg_len(h: &[u8]) -> usize {
    u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize
}

/// Parse one whole message (header included).
fn parse(msg: &[u8], tls13: bool) -> Message {
    let ty = msg[0];
    match ty {
        FINISHED => return Message::Finished,
        KEY_UPDATE => return Message::KeyUpdate,
        ENCRYPTED_EXTENSIONS => {
            return encrypted_extensions(&msg[4..]).unwrap_or(Message::Malformed(ty));
        }
        // TLS 1.3 tickets (sent encrypted) are not resumption keys for us
        NEW_SESSION_TICKET if tls13 => return Message::Malformed(ty),
        _ => {}
    }
    let parsed = match tls_parser::parse_tls_message_handshake(msg) {
        Ok((_, TlsMessage::Handshake(h))) => h,
        _ => return Message::Malformed(ty),
    };
    let parsed = match parsed {
        TlsMessageHandshake::ClientHello(ch) => client_hello(&ch).map(Message::ClientHello),
        TlsMessageHandshake::ServerHello(sh) => server_hello(&sh).map(Message::ServerHello),
        // tls-parser leaves the ticket's 2-byte length in front of it
        TlsMessageHandshake::NewSessionTicket(t) => match t.ticket {
            [a, b, rest @ ..] if usize::from(u16::from_be_bytes([*a, *b])) == rest.len() => {
                Some(Message::NewSessionTicket(rest.to_vec()))
            }
            _ => None,
        },
        _ => None,
    };
    parsed.unwrap_or(Message::Malformed(ty))
}

/// tls-parser's parser of a hello's extensions.
type ParseExtensions<'a> = fn(&'a [u8]) -> tls_parser::IResult<&'a [u8], Vec<TlsExtension<'a>>>;

/// The extensions of a hello (none when they do not parse).
fn extensions<'a>(raw: Option<&'a [u8]>, parse: ParseExtensions<'a>) -> Vec<TlsExtension<'a>> {
    raw.and_then(|e| parse(e).ok())
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn client_hello(ch: &TlsClientHelloContents<'_>) -> Option<Box<ClientHello>> {
    let mut hello = ClientHello {
        random: ch.random.try_into().ok()?,
        session_id: ch.session_id.unwrap_or_default().to_vec(),
        ..ClientHello::default()
    };
    for e in extensions(ch.ext, tls_parser::parse_tls_client_hello_extensions) {
        match e {
            TlsExtension::SNI(names) => hello.sni = names.first().map(|(_, n)| lossy(n)),
            TlsExtension::ALPN(protos) => hello.alpn = protos.iter().map(|p| lossy(p)).collect(),
            TlsExtension::SessionTicket(t) if !t.is_empty() => hello.ticket = Some(t.to_vec()),
            TlsExtension::PreSharedKey(_) => hello.psk = true,
            TlsExtension::EarlyData(_) => hello.early_data = true,
            _ => {}
        }
    }
    Some(Box::new(hello))
}

fn server_hello(sh: &TlsServerHelloContents<'_>) -> Option<Box<ServerHello>> {
    let mut hello = ServerHello {
        random: sh.random.try_into().ok()?,
        session_id: sh.session_id.unwrap_or_default().to_vec(),
        version: sh.version.0,
        cipher: sh.cipher.0,
        ..ServerHello::default()
    };
    for e in extensions(sh.ext, tls_parser::parse_tls_server_hello_extensions) {
        match e {
            TlsExtension::SupportedVersions(v) => {
                if let Some(v) = v.first() {
                    hello.version = v.0;
                }
            }
            TlsExtension::ALPN(p) => hello.alpn = p.first().map(|p| lossy(p)),
            TlsExtension::PreSharedKey(_) => hello.psk = true,
            _ => {}
        }
    }
    Some(Box::new(hello))
}

/// TLS 1.3 EncryptedExtensions: the ALPN protocol chosen.
fn encrypted_extensions(body: &[u8]) -> Option<Message> {
    let len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
    let exts = body.get(2..2 + len)?;
    let (_, exts) = tls_parser::parse_tls_extensions(exts).ok()?;
    let alpn = exts.into_iter().find_map(|e| match e {
        TlsExtension::ALPN(p) => p.first().map(|p| lossy(p)),
        _ => None,
    });
    Some(Message::EncryptedExtensions { alpn })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A protocol version's name.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0304 => "TLS 1.3",
        0x0303 => "TLS 1.2",
        0x0302 => "TLS 1.1",
        0x0301 => "TLS 1.0",
        0x0300 => "SSL 3.0",
        _ => "TLS",
    }
}
