//! Retries: the same request (method, target, Host, client IP) on another connection to the same
//! server soon after a request that got no response.

use crate::app::Identity;
use crate::flow::FrameRef;
use crate::time::Timestamp;
use rustc_hash::{FxHashMap, FxHasher};
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// A request still waiting for a response or a verdict, and its retry once seen.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    pub conn: u64,
    pub index: u32,
    pub ts: Timestamp,
    pub server: SocketAddr,
    pub client_ip: IpAddr,
    /// The retry: its first segment and connection.
    pub retry: Option<(FrameRef, u64)>,
}

/// The key of a request: what a retry repeats.
pub(super) fn key_of(id: &Identity, client_ip: IpAddr, server: SocketAddr) -> u64 {
    if by_size(id) {
        return size_key(id, client_ip, server);
    }
    let mut h = FxHasher::default();
    id.method.hash(&mut h);
    id.target.hash(&mut h);
    id.host.hash(&mut h);
    client_ip.hash(&mut h);
    server.hash(&mut h);
    h.finish()
}

/// Is a retry of this request matched by size (an encrypted request: only its first record's
/// length is known)?
pub(super) fn by_size(id: &Identity) -> bool {
    id.tls.as_ref().is_some_and(|t| t.encrypted)
}

/// The key of an encrypted request: its first record's length, the server name (SNI) and
/// version, the client IP and the server. A retry is the first request on a new connection
/// with the same key (the caller lets only first requests match).
fn size_key(id: &Identity, client_ip: IpAddr, server: SocketAddr) -> u64 {
    let mut h = FxHasher::default();
    if let Some(t) = &id.tls {
        t.record_len.hash(&mut h);
        t.sni.hash(&mut h);
        t.version.hash(&mut h);
    }
    client_ip.hash(&mut h);
    server.hash(&mut h);
    h.finish()
}

/// Holds only requests still waiting for a response or a verdict, by key.
#[derive(Debug, Default)]
pub(super) struct RetryTracker {
    by_key: FxHashMap<u64, SmallVec<[Candidate; 1]>>,
}

impl RetryTracker {
    /// A new request: the retry of the earlier ones with its key (on another connection to
    /// the same server from the same client, within `window` seconds), and a candidate itself.
    pub fn on_request(&mut self, key: u64, cand: Candidate, at: FrameRef, window: f64) {
        let list = self.by_key.entry(key).or_default();
        for c in list.iter_mut() {
            let dt = cand.ts.secs_since(c.ts);
            if c.retry.is_none()
                && c.conn != cand.conn
                && c.server == cand.server
                && c.client_ip == cand.client_ip
                && (0.0..=window).contains(&dt)
            {
                c.retry = Some((at, cand.conn));
            }
        }
        list.push(cand);
    }

    /// A new request that cannot be a retry itself, only a candidate.
    pub fn add(&mut self, key: u64, cand: Candidate) {
        self.by_key.entry(key).or_default().push(cand);
    }

    /// Stop tracking a request (answered, or its verdict is final); returns it.
    pub fn take(&mut self, key: u64, conn: u64, index: u32) -> Option<Candidate> {
        let list = self.by_key.get_mut(&key)?;
        let pos = list
            .iter()
            .position(|c| c.conn == conn && c.index == index)?;
        let c = list.swap_remove(pos);
        if list.is_empty() {
            self.by_key.remove(&key);
        }
        Some(c)
    }
}
