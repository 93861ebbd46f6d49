//! What the detect stage does differently for requests inside TLS: how a request that was not
//! decrypted is named and reported, and the server's TLS alert taken as its close.

use crate::app::tls::cipher::suite_name;
use crate::app::{Identity, TlsIdentity};
use crate::flow::{CloseEvent, Closes, Dir};
use crate::report::schema::TlsRequestInfo;

/// The method and target a finding shows: for an encrypted request, "TLS" and
/// "request #N (B bytes)" (N counted from 1 on its connection, B its first record's length).
pub(super) fn request_name(id: &Identity, index: u32) -> (String, String) {
    match &id.tls {
        Some(t) if t.encrypted => (
            "TLS".into(),
            format!("request #{} ({} bytes)", index + 1, t.record_len),
        ),
        _ => (id.method.clone(), id.target.clone()),
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

/// The evidence of a verdict that rests on the server's alert instead of its FIN.
pub(super) fn alert_evidence(text: &str, alert_frame: u64, fin_frame: Option<u64>) -> String {
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
