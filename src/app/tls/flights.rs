//! Requests and responses without keys: flights of opaque application_data records.
//!
//! A request is the client's first application_data record after the previous request was
//! answered (the records that follow before the answer belong to the same flight); its
//! response is the first server application_data record whose segment acknowledges the
//! request's first byte (a server record that does not was sent before the server had the
//! request: TLS 1.3 handshake records and NewSessionTickets are not responses). The TLS 1.3
//! client Finished is the client's first opaque record and is skipped; a TLS 1.3 record of 19
//! bytes is an encrypted alert (2 bytes, the inner type, a 16-byte tag). A server alert is its
//! close signal.

use super::record::{ALERT, APPLICATION_DATA, Header};
use crate::app::{AppEvent, Identity, Request, Response, TlsIdentity};
use crate::flow::{CloseEvent, Dir, SegMeta};

/// Length of a TLS 1.3 record that holds an alert: 2 bytes, the inner type, a 16-byte tag.
const TLS13_ALERT_LEN: u16 = 19;

/// The request waiting for its response.
#[derive(Clone, Copy, Debug)]
struct Open {
    start: i64,
    answered: bool,
}

/// Flight tracking of one connection, from record headers alone.
#[derive(Debug, Default)]
pub struct Flights {
    /// The TLS 1.3 client Finished was passed over.
    finished_skipped: bool,
    open: Option<Open>,
    in_response: bool,
    closing_sent: bool,
}

/// What the flights need to know of the connection.
pub struct Ctx<'a> {
    pub client: Dir,
    pub tls13: bool,
    /// The TLS part of the identity of the connection's requests (its `record_len` is set
    /// per request).
    pub identity: &'a TlsIdentity,
}

impl Flights {
    /// A record header of direction `dir` was read.
    pub fn on_header(
        &mut self,
        ctx: &Ctx<'_>,
        dir: Dir,
        h: Header,
        start: i64,
        first: SegMeta,
        out: &mut Vec<AppEvent>,
    ) {
        let alert = h.ctype == ALERT
            || (ctx.tls13 && h.ctype == APPLICATION_DATA && h.len == TLS13_ALERT_LEN);
        if dir != ctx.client {
            if alert {
                self.closing(dir, start, first, out);
            } else if h.ctype == APPLICATION_DATA {
                self.server_data(dir, start, first, out);
            }
            return;
        }
        if h.ctype != APPLICATION_DATA || alert {
            return;
        }
        if ctx.tls13 && !self.finished_skipped {
            self.finished_skipped = true;
            return;
        }
        if self.open.is_some_and(|o| !o.answered) {
            return; // more of the same flight
        }
        self.open = Some(Open {
            start,
            answered: false,
        });
        let tls = TlsIdentity {
            record_len: h.len,
            ..ctx.identity.clone()
        };
        out.push(AppEvent::Request(Request {
            dir,
            start,
            first,
            identity: Identity::encrypted(tls),
        }));
    }

    /// A server application_data record: the response when it acknowledges the open request.
    fn server_data(&mut self, dir: Dir, start: i64, first: SegMeta, out: &mut Vec<AppEvent>) {
        let Some(open) = &mut self.open else {
            return;
        };
        if open.answered || first.ack_off.is_none_or(|a| a <= open.start) {
            return;
        }
        open.answered = true;
        self.in_response = true;
        out.push(AppEvent::Response(Response {
            dir,
            start,
            first,
            status: 0,
            interim: false,
            closes_connection: false,
            keep_alive: None,
            stream: None,
            server: None,
        }));
    }

    /// A record of direction `dir` is complete: the end of a response's first record ends it
    /// for the idle-time statistics.
    pub fn on_complete(&mut self, ctx: &Ctx<'_>, dir: Dir, out: &mut Vec<AppEvent>) {
        if dir != ctx.client && self.in_response {
            self.in_response = false;
            out.push(AppEvent::ResponseEnd { dir });
        }
    }

    /// The server's alert: its close signal (the first one counts).
    fn closing(&mut self, dir: Dir, start: i64, first: SegMeta, out: &mut Vec<AppEvent>) {
        if !self.closing_sent {
            self.closing_sent = true;
            out.push(closing_event(dir, start, first));
        }
    }
}

/// The close signal of a record starting at `start` in segment `first`.
pub fn closing_event(dir: Dir, start: i64, first: SegMeta) -> AppEvent {
    let close: CloseEvent = SegMeta {
        seq: first.seq_at(start),
        off: start,
        ..first
    };
    AppEvent::Closing {
        dir,
        close,
        goaway: None,
    }
}
