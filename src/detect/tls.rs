//! What the detect stage does differently for requests inside TLS: how a request that was not
//! decrypted is named, reported and matched to its retry (by size), and the server's TLS alert
//! taken as its close.

use crate::app::tls::cipher::suite_name;
use crate::app::{Identity, TlsIdentity};
use crate::flow::{CloseEvent, Closes, Dir};
use crate::report::schema::{Finding, TlsRequestInfo};
use std::hash::{Hash, Hasher};

/// The retry key of a request not decrypted: its first record's length, the server name and
/// the version (None: not such a request).
pub(super) fn retry_key(id: &Identity) -> Option<u64> {
    let t = id.tls.as_deref().filter(|t| t.encrypted)?;
    let mut h = rustc_hash::FxHasher::default();
    ("tls", t.record_len, &t.sni, t.version).hash(&mut h);
    Some(h.finish())
}

/// The evidence's sentence for a retry matched by size.
pub(super) fn size_match_evidence(conn: u64, frame: u64) -> String {
    format!(
        " Retried on connection {conn} (frame {frame}): matched by size, the first request on that new connection has a first record of the same length."
    )
}

/// The method and target a finding shows: for an encrypted request, "TLS" and
/// "request #N (B bytes)" (N counted from 1 on its connection, B its first record's length).
pub(super) fn request_name(id: &Identity, index: u32) -> (String, String) {
    match &id.tls {
        Some(t) if t.encrypted => (
            "TLS".into(),
            format!("request #{} ({} bytes)", index + 1, t.record_len),
        ),
        _ => (id.method.to_string(), id.target.to_string()),
    }
}

/// The report's TLS part of a request.
pub(super) fn request_info(t: &TlsIdentity) -> TlsRequestInfo {
    TlsRequestInfo {
        encrypted: t.encrypted,
        version: (!t.version.is_empty()).then_some(t.version),
        cipher_suite: (t.cipher_suite != 0).then(|| suite_name(t.cipher_suite)),
        sni: t.sni.clone(),
        alpn: t.alpn.clone(),
        resumed: t.resumed,
        record_len: t.encrypted.then_some(t.record_len),
    }
}

/// The closes the verdicts rest on: a close signal of the server's protocol (a TLS alert) that
/// came before its FIN stands for the FIN. Returns the closes and whether it did.
pub(super) fn with_close_signal(
    closes: &Closes,
    signal: Option<CloseEvent>,
    server: Dir,
) -> (Closes, bool) {
    match (signal, closes.fin[server]) {
        (Some(s), Some(fin)) if s.off < fin.off => {
            let mut c = *closes;
            c.fin[server] = Some(s);
            (c, true)
        }
        _ => (*closes, false),
    }
}

/// A finding whose verdict rests on the server's alert instead of its FIN (`fin`) says so.
pub(super) fn close_by_alert(f: &mut Finding, fin: Option<CloseEvent>) {
    if let Some(pc) = f.peer_close.as_mut().filter(|c| c.close_type == "fin") {
        pc.close_type = "tls_alert";
        f.evidence = alert_evidence(&f.evidence, pc.frame, fin.map(|f| f.at.frame));
    }
}

/// The evidence of a verdict that rests on the server's alert instead of its FIN.
fn alert_evidence(text: &str, alert_frame: u64, fin_frame: Option<u64>) -> String {
    let text = text
        .replace("FIN", "alert")
        .replace("server's alert", "server's TLS alert");
    match fin_frame {
        Some(f) => format!(
            "{text} The server's alert (frame {alert_frame}) came before its FIN (frame {f}) and is taken as its close."
        ),
        None => text,
    }
}
