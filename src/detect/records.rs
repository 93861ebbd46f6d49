//! What the per-connection part of the detect stage ([`Detector`](super::Detector), one per
//! shard of the input) hands to the verdict stage ([`Verdicts`](super::Verdicts), one for the
//! whole input) at the end of each epoch of the input (between two ticks): every request as the
//! retry matcher needs it, body digests, the servers' idle closes, and the requests that got no
//! response with their verdicts. The verdict stage takes them in an order that does not depend
//! on how the input was split, so the findings are the same for any number of shards.

use super::evidence::RelativeSeq;
use super::exchanges::PendingRequest;
use super::retry::{Attempt, ExactId, Failure};
use super::verdict::Verdict;
use crate::flow::{CloseEvent, ConnMeta, SegMeta};
use crate::report::schema::{ConnectionInfo, Ladder};
use crate::time::Timestamp;
use std::net::{IpAddr, SocketAddr};

/// A request's body digest, once its body ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Digest {
    pub group: u64,
    /// (connection, request index, ordinal of its first byte).
    pub at: (u64, u32, u64),
    pub digest: u64,
}

/// A server's idle close (seconds idle before its FIN) on a connection from `client`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdleClose {
    pub client: IpAddr,
    pub server: SocketAddr,
    pub idle: f64,
}

/// A request that got no response, with its verdict and what its finding needs.
#[derive(Debug)]
pub(crate) struct FailedRequest {
    pub req: PendingRequest,
    pub verdict: Verdict,
    /// The server's RST, if any.
    pub server_rst: Option<SegMeta>,
    pub rel: RelativeSeq,
    pub conn: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The capture time of the connection's SYN.
    pub syn: Option<Timestamp>,
    /// The client's turn-around on the connection (handshake), in seconds.
    pub client_turn: Option<f64>,
    /// Requests after this one on its connection that were not tracked: more than
    /// [`MAX_PENDING`](super::exchanges::MAX_PENDING) were waiting for a response.
    pub untracked_after: u64,
    /// The verdict rests on the server's TLS alert, which came before its FIN (this one).
    pub alert_before_fin: Option<Option<CloseEvent>>,
    /// How the finding names the connection (with a NAT's other side and a tunnel).
    pub connection: ConnectionInfo,
    /// Sentences on where the connection was captured, to end the evidence.
    pub capture_note: String,
    /// The connection's last segments as a ladder (when the flow stage traced them).
    pub ladder: Option<Ladder>,
    /// Decided while its connection goes on: the finding waits for the connection's end
    /// (`Records::ended`) to say where it was captured.
    pub open: bool,
}

impl FailedRequest {
    /// The request as the retry matcher knows it.
    pub fn attempt(&self) -> Attempt {
        attempt_of(
            &self.req,
            self.conn,
            (self.client.ip(), self.server),
            self.syn,
            self.client_turn,
        )
    }

    /// The failure for the retry matcher.
    pub fn failure(&self) -> Failure {
        Failure {
            attempt: self.attempt(),
            close: self.verdict.peer_close().map(|c| c.event().at.ts),
        }
    }
}

/// The request `req` of connection `conn` from `pair.0` to `pair.1` as the retry matcher knows
/// it; `syn`: the capture time of the connection's SYN.
pub(crate) fn attempt_of(
    req: &PendingRequest,
    conn: u64,
    pair: (IpAddr, SocketAddr),
    syn: Option<Timestamp>,
    client_turn: Option<f64>,
) -> Attempt {
    Attempt {
        conn,
        index: req.index,
        at: req.at,
        opened: syn.filter(|_| req.index == 0),
        client: pair.0,
        server: pair.1,
        key: req.key,
        exact: req.identity.request_id.map(|id| ExactId {
            hash: id.hash,
            label: id.header.name(),
        }),
        digest: req.digest,
        client_turn,
        size_only: super::retry::size_only(&req.identity),
    }
}

/// The client and server of `conn` whose client direction is known.
pub(crate) fn pair(conn: &ConnMeta, client: crate::flow::Dir) -> (IpAddr, SocketAddr) {
    (conn.addrs[client].ip(), conn.addrs[client.other()])
}

/// The records of one epoch of one shard.
#[derive(Debug, Default)]
pub struct Records {
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) digests: Vec<Digest>,
    pub(crate) idle_closes: Vec<IdleClose>,
    pub(crate) failures: Vec<FailedRequest>,
    /// Requests with their answers (or closes), for the client leg.
    pub(crate) fronts: Vec<super::client_leg::FrontExchange>,
    /// Connections that had findings before their end, ended: their description and the
    /// sentences on where they were captured.
    pub(crate) ended: Vec<(u64, ConnectionInfo, String)>,
}

impl Records {
    pub fn clear(&mut self) {
        self.attempts.clear();
        self.digests.clear();
        self.idle_closes.clear();
        self.failures.clear();
        self.fronts.clear();
        self.ended.clear();
    }
}

/// Sorts each of `parts` by `key` (in place: cheap, as a shard's records mostly come in that
/// order already).
pub(crate) fn sort_parts<'a, T: 'a, K: Ord>(
    parts: impl IntoIterator<Item = &'a mut Vec<T>>,
    key: impl Fn(&T) -> K + Copy,
) {
    parts.into_iter().for_each(|p| p.sort_unstable_by_key(key));
}

/// The items of `heads` (each in its order), in the order of `key` across them: a merge of the
/// parts, where sorting their concatenation would move every item about again. `key` need only
/// be the part of the order that differs across the parts (each item's is computed once): the
/// packet's ordinal for what a packet brought, the connection for what a connection did (a
/// packet and a connection are analysed in one shard).
pub(crate) fn merged<I: Iterator, K: Ord, F: Fn(&I::Item) -> K>(
    heads: impl IntoIterator<Item = I>,
    key: F,
) -> Merged<I, K, F> {
    let mut m = Merged {
        heads: Vec::new(),
        keys: Vec::new(),
        key,
    };
    for head in heads {
        let mut head = head.peekable();
        if let Some(item) = head.peek() {
            m.keys.push((m.key)(item));
            m.heads.push(head);
        }
    }
    m
}

/// See [`merged`]: the parts not yet exhausted, and the key of each one's next item.
pub(crate) struct Merged<I: Iterator, K, F> {
    heads: Vec<std::iter::Peekable<I>>,
    keys: Vec<K>,
    key: F,
}

impl<I: Iterator, K: Ord, F: Fn(&I::Item) -> K> Iterator for Merged<I, K, F> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if let [one] = &mut self.heads[..] {
            return one.next();
        }
        let (first, _) = self.keys.iter().enumerate().min_by(|a, b| a.1.cmp(b.1))?;
        let item = self.heads[first].next();
        match self.heads[first].peek() {
            Some(next) => self.keys[first] = (self.key)(next),
            None => {
                let _ = self.heads.swap_remove(first);
                self.keys.swap_remove(first);
            }
        }
        item
    }
}

/// The items of `parts`, each sorted by `order` first ([`sort_parts`]), drained in that order
/// across them ([`merged`] by `key`, the part of `order` that differs across the parts).
pub(crate) fn drain_merged<'a, T: 'a, O: Ord, K: Ord>(
    parts: impl IntoIterator<Item = &'a mut Vec<T>>,
    order: impl Fn(&T) -> O + Copy,
    key: impl Fn(&T) -> K,
) -> impl Iterator<Item = T> {
    let heads = parts.into_iter().map(move |p| {
        p.sort_unstable_by_key(order);
        p.drain(..)
    });
    merged(heads, key)
}

#[cfg(test)]
mod tests {
    use super::drain_merged;

    #[test]
    fn parts_drain_in_the_order_of_their_keys() {
        let mut a = vec![5, 1, 9];
        let mut b = vec![4, 8];
        let mut c = vec![];
        let mut d = vec![7, 2, 3, 6];
        let parts = [&mut a, &mut b, &mut c, &mut d];
        let all: Vec<i32> = drain_merged(parts, |x| *x, |x| *x).collect();
        assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(a.is_empty() && b.is_empty() && d.is_empty());
        let mut one = vec![(2, 'b'), (1, 'a')];
        let all: Vec<_> = drain_merged([&mut one], |x| x.0, |x| x.0).collect();
        assert_eq!(all, [(1, 'a'), (2, 'b')]);
        // ordered by (packet, index) within a part, merged by the packet across them
        let mut p = vec![(7, 1), (3, 0), (7, 0)];
        let mut q = vec![(5, 1), (5, 0), (9, 0)];
        let all: Vec<_> = drain_merged([&mut p, &mut q], |x| *x, |x| x.0).collect();
        assert_eq!(all, [(3, 0), (5, 0), (5, 1), (7, 0), (7, 1), (9, 0)]);
    }

    #[test]
    fn any_number_of_parts_merges_to_the_sorted_whole() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for parts in 0..=19 {
            // distinct keys, dealt to the parts at random (some parts get none)
            let mut all: Vec<u64> = (0..parts as u64 * 37).map(|i| i * 3 + 1).collect();
            let mut dealt: Vec<Vec<u64>> = vec![Vec::new(); parts];
            for &v in &all {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                dealt[(x % parts as u64) as usize].push(v);
            }
            dealt.iter_mut().for_each(|p| p.reverse());
            let merged: Vec<u64> = drain_merged(dealt.iter_mut(), |v| *v, |v| *v).collect();
            all.sort_unstable();
            assert_eq!(merged, all, "{parts} parts");
        }
    }
}
