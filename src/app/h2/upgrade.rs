//! h2c by upgrade (RFC 7540 section 3.2): an HTTP/1.1 request with `Upgrade: h2c` answered by
//! `101 Switching Protocols` ends the HTTP/1.x analysis of the connection in a tunnel; the
//! bytes after it are HTTP/2 when the server's start with a SETTINGS frame and the client's
//! with the connection preface. The upgrade request itself was stream 1, answered in HTTP/2
//! but already counted as an HTTP/1.1 request answered by its 101.
//!
//! A tunnel made by CONNECT may carry HTTP/2 with prior knowledge (a proxy's client): the same
//! test finds it, and its stream 1 is a request like any other. Any other tunnel (WebSocket)
//! fails the test and is left alone.

use super::{H2Conn, H2Stats, is_preface_start, is_server_preface};
use crate::app::AppEvent;
use crate::flow::{Dir, FlowEvent, PerDir};

/// What follows the HTTP/1.x tunnels of a connection.
#[derive(Debug, Default)]
pub struct Upgrade {
    /// Per direction: where its tunnel starts, until its first bytes were looked at.
    pending: PerDir<Option<i64>>,
    h2: Option<Box<H2Conn>>,
    /// The server answered 101 Switching Protocols (not a CONNECT tunnel).
    switched: bool,
    /// Not HTTP/2.
    dead: bool,
}

impl Upgrade {
    /// Direction `dir` of the HTTP/1.x analysis became a tunnel at stream offset `offset`.
    pub fn on_tunnel(&mut self, dir: Dir, offset: i64) {
        if !self.dead {
            self.pending[dir] = Some(offset);
        }
    }

    /// The server answered `101 Switching Protocols`: stream 1 is the upgrade request.
    pub fn on_switching_protocols(&mut self) {
        self.switched = true;
    }

    /// Is there nothing to do (no tunnel yet, or not HTTP/2)?
    pub fn idle(&self) -> bool {
        self.dead || (self.h2.is_none() && self.pending == PerDir::default())
    }

    /// A flow event of the connection, after the HTTP/1.x analysis had it.
    pub fn on_flow(
        &mut self,
        ev: &FlowEvent<'_>,
        stats: &mut H2Stats,
        emit: &mut dyn FnMut(AppEvent),
    ) {
        if self.dead {
            return;
        }
        if let FlowEvent::Data {
            dir, off, bytes, ..
        } = *ev
            && let Some(start) = self.pending[dir]
        {
            let skip = (start - off).clamp(0, bytes.len() as i64) as usize;
            let rest = &bytes[skip..];
            if rest.is_empty() {
                return;
            }
            self.pending[dir] = None;
            let client = if is_preface_start(rest) {
                dir
            } else if is_server_preface(rest) {
                dir.other()
            } else {
                self.dead = true;
                self.h2 = None;
                return;
            };
            let h2 = self.h2.get_or_insert_with(|| {
                let h = H2Conn::upgraded(client, self.switched);
                h.count(stats);
                Box::new(h)
            });
            h2.begin(dir, start);
        }
        if let Some(h2) = &mut self.h2 {
            h2.on_flow(ev, stats, emit);
        }
    }
}
