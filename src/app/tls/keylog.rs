//! The NSS key log format: what `SSLKEYLOGFILE` makes browsers and curl write, what Node's
//! `keylog` event and OpenSSL's `-keylogfile` write, what Wireshark's `tls.keylog_file` reads.
//!
//! One secret per line, `LABEL <client_random hex> <secret hex>`, keyed by the 32-byte random
//! of the connection's ClientHello: `CLIENT_RANDOM` carries a TLS 1.2 master secret (48 bytes),
//! the `*_TRAFFIC_SECRET*` labels TLS 1.3 secrets. `#` starts a comment. A line that does not
//! parse is a warning naming the file and the line; the others are still used.

use crate::capture::Warning;
use rustc_hash::FxHashMap;
use std::fmt;

/// The secrets of one connection, as logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2 master secret.
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    /// TLS 1.3 `CLIENT_TRAFFIC_SECRET_0` / `SERVER_TRAFFIC_SECRET_0`.
    pub client_traffic: Option<Vec<u8>>,
    pub server_traffic: Option<Vec<u8>>,
}

/// Secrets by ClientHello random, loaded once and shared by every shard.
#[derive(Default)]
pub struct KeyLog {
    /// Where the secrets came from (for messages).
    pub path: String,
    by_random: FxHashMap<[u8; 32], Secrets>,
    /// Lines that did not parse.
    warnings: Vec<Warning>,
}

impl fmt::Debug for KeyLog {
    // the secrets stay out of debug output
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLog")
            .field("path", &self.path)
            .field("connections", &self.by_random.len())
            .field("warnings", &self.warnings.len())
            .finish()
    }
}

/// Labels that are valid but not needed here (read and ignored without warning).
const IGNORED_LABELS: [&str; 5] = [
    "EXPORTER_SECRET",
    "EARLY_EXPORTER_SECRET",
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "EARLY_EXPORTER_MASTER_SECRET",
    "RSA",
];

impl KeyLog {
    /// Read a key log file. An unreadable file is an error; bad lines are warnings.
    pub fn load(path: &str) -> Result<KeyLog, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(KeyLog::parse(path, &String::from_utf8_lossy(&bytes)))
    }

    /// Parse the text of a key log named `path`.
    pub fn parse(path: &str, text: &str) -> KeyLog {
        let mut log = KeyLog {
            path: path.to_string(),
            ..KeyLog::default()
        };
        for (i, line) in text.lines().enumerate() {
            if let Err(why) = log.add_line(line) {
                log.warnings.push(Warning {
                    file: path.to_string(),
                    frame: None,
                    message: format!("key log line {}: {why}", i + 1),
                });
            }
        }
        log
    }

    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let mut parts = line.split_ascii_whitespace();
        let (Some(label), Some(random), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("expected LABEL CLIENT_RANDOM SECRET".into());
        };
        if IGNORED_LABELS.contains(&label) {
            return Ok(());
        }
        let random: [u8; 32] = hex(random)
            .and_then(|r| r.try_into().ok())
            .ok_or("the client random is not 32 bytes of hex")?;
        let secret = hex(secret).ok_or("the secret is not hex")?;
        let entry = self.by_random.entry(random).or_default();
        let slot = match label {
            "CLIENT_RANDOM" if secret.len() == 48 => &mut entry.master,
            "CLIENT_RANDOM" => return Err("a master secret is 48 bytes".into()),
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.client_handshake,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut entry.server_handshake,
            "CLIENT_TRAFFIC_SECRET_0" => &mut entry.client_traffic,
            "SERVER_TRAFFIC_SECRET_0" => &mut entry.server_traffic,
            _ => return Err(format!("unknown label {label}")),
        };
        if !matches!(secret.len(), 32 | 48) {
            return Err(format!("a {label} is 32 or 48 bytes"));
        }
        *slot = Some(secret);
        Ok(())
    }

    /// The secrets logged for the connection whose ClientHello had `random`.
    pub fn get(&self, random: &[u8; 32]) -> Option<&Secrets> {
        self.by_random.get(random)
    }

    /// Connections with at least one secret.
    pub fn len(&self) -> usize {
        self.by_random.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_random.is_empty()
    }

    /// The lines that did not parse, as warnings naming the file and line.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }
}

/// Bytes from an even number of hex digits.
fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}
