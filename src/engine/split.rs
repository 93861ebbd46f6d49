//! Which shard analyses a connection: a hash of the unordered pair of its endpoints (or of its
//! hosts), split so that each thread is about as busy as the others, the driver's own work
//! (the front, handing packets over, the verdict stage) counted in.

use crate::decode::{Decoded, Decoder};
use crate::mix::finalize;
use std::net::SocketAddr;

/// From this many threads on, the driver's thread analyses no connections and the front
/// (decoding and the copy filter) runs on a thread of its own (see `parallel`): the shards are
/// the driver's (0, empty) and one per thread.
pub(super) const PIPED_FROM: usize = 4;

/// Whether a run on `shards` shards has the front on a thread of its own.
pub(super) fn is_piped(shards: usize) -> bool {
    shards > PIPED_FROM
}

/// The shards of a run on `threads` threads.
pub(super) fn shard_count(threads: usize) -> usize {
    if threads >= PIPED_FROM {
        threads + 1
    } else {
        threads.max(1)
    }
}

/// Share of the connections (in percent) the main thread analyses when there are two shards.
/// The main thread also decodes and hands the other shard its packets and runs the verdict
/// stage, while the worker shares its core with the reader thread.
const MAIN_SHARE_PERCENT: u64 = 60;

/// The driver's own work (the front, handing packets over, the verdict stage, the report), in
/// percent of a whole analysis on one thread: callgrind counts ~210 M of ~590 M instructions
/// on the bench's one-pair capture. With three shards the driver's thread takes only what keeps
/// it as busy as each other shard's thread ([`driver_share`]); from [`PIPED_FROM`] threads on,
/// none.
const DRIVER_OWN_PERCENT: u64 = 35;

/// Share of the connections, in per mille, shard 0 (the driver's thread) analyses of `shards`
/// (three or more): `x` with `own + x = (1 - x) / (shards - 1)`, none when the driver's own
/// work alone outweighs an other shard's part.
fn driver_share(shards: u64) -> u64 {
    let others = shards - 1;
    (1000u64).saturating_sub(DRIVER_OWN_PERCENT * 10 * others) / shards
}

/// One endpoint (address and port) as a word.
fn endpoint_word(s: SocketAddr) -> u64 {
    match s {
        SocketAddr::V4(v4) => u64::from(u32::from(*v4.ip())) << 16 | u64::from(v4.port()),
        SocketAddr::V6(v6) => {
            let ip = u128::from(*v6.ip());
            (ip as u64) ^ ((ip >> 64) as u64).rotate_left(23) ^ u64::from(v6.port())
        }
    }
}

/// A hash (32 bits) of the unordered pair of endpoints `a` and `b`: each endpoint's mixed
/// word, added (which does not depend on their order) and mixed again. (Ordering the pair and
/// hashing it word by word cost ~110 instructions a packet on the front's thread.)
fn tuple_hash(a: SocketAddr, b: SocketAddr) -> u64 {
    finalize(finalize(endpoint_word(a)).wrapping_add(finalize(endpoint_word(b)))) >> 32
}

/// The shard (of `shards`) the connection between `a` and `b` is analysed in.
fn shard_of_tuple(a: SocketAddr, b: SocketAddr, shards: usize) -> usize {
    split(tuple_hash(a, b), shards)
}

/// The shard (of `shards`) the connections between the hosts of `a` and `b` are analysed in.
fn shard_of_hosts(a: SocketAddr, b: SocketAddr, shards: usize) -> usize {
    let host = |s: SocketAddr| SocketAddr::new(s.ip(), 0);
    split(tuple_hash(host(a), host(b)), shards)
}

/// The shard of a hash of 32 bits: its place in [0, 1) scaled by multiplying (a division
/// per packet costs tens of cycles).
fn split(h: u64, shards: usize) -> usize {
    let h = h & 0xFFFF_FFFF;
    match shards {
        0 | 1 => 0,
        2 => usize::from((h * 100) >> 32 >= MAIN_SHARE_PERCENT),
        n => {
            // the per mille says whether the driver's shard takes it; what is left of the
            // scaled hash below it, which of the others
            let per_mille = h * 1000;
            // (the driver's shard takes none when the front has a thread of its own: no
            // division per packet then)
            if !is_piped(n) && per_mille >> 32 < driver_share(n as u64) {
                0
            } else {
                1 + (((per_mille & 0xFFFF_FFFF) * (n as u64 - 1)) >> 32) as usize
            }
        }
    }
}

/// The shard (of `shards`, see [`shard_count`]) a decoded packet is analysed in: its TCP
/// segment's connection's (by the pair of hosts: `by_hosts`); a packet that is not TCP is
/// counted in shard 0, or shard 1 when the driver's shard takes none.
#[inline]
pub(super) fn shard_of_decoded(decoded: &Decoded<'_>, by_hosts: bool, shards: usize) -> usize {
    match decoded {
        Decoded::Tcp(seg) if by_hosts => shard_of_hosts(seg.src, seg.dst, shards),
        Decoded::Tcp(seg) => shard_of_tuple(seg.src, seg.dst, shards),
        Decoded::Skip(..) => usize::from(is_piped(shards)),
    }
}

/// The shard a packet would be analysed in with `--threads threads` (0: the driver's): its TCP
/// segment's connection's (by the addresses of the TCP segment inside, through tunnels; not
/// knowing of copies under other addresses, which follow the copy first seen).
pub fn shard_of(linktype: u32, data: &[u8], threads: usize) -> usize {
    let decoded = Decoder::default().decode(linktype, data, data.len() as u32);
    shard_of_decoded(&decoded, false, shard_count(threads))
}

#[cfg(test)]
mod tests {
    use super::{shard_count, shard_of_tuple, split};
    use std::net::SocketAddr;

    /// The driver's thread takes 60 % of the connections with two shards, 10 % with three (its
    /// own work is ~35 % of a whole analysis), none when it has the front on a thread of its own
    /// (four threads or more: one shard more than threads); the other shards share the rest
    /// evenly.
    #[test]
    fn the_driver_takes_a_share_that_keeps_every_thread_equally_busy() {
        let spread = |threads: usize| {
            let mut counts = vec![0u32; shard_count(threads)];
            for i in 0..100_000u64 {
                let h = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i >> 7)) >> 32;
                counts[split(h, shard_count(threads))] += 1;
            }
            counts.iter().map(|&c| (c + 500) / 1000).collect::<Vec<_>>()
        };
        assert_eq!(spread(1), [100]);
        assert_eq!(spread(2), [60, 40]);
        assert_eq!(spread(3), [10, 45, 45]);
        let four = spread(4);
        assert_eq!(four.len(), 5);
        assert_eq!(four[0], 0);
        assert!(
            four[1..].iter().all(|&c| (24..=26).contains(&c)),
            "{four:?}"
        );
        let sixteen = spread(16);
        assert_eq!(sixteen.len(), 17);
        assert_eq!(sixteen[0], 0);
        assert!(
            sixteen[1..].iter().all(|&c| (6..=7).contains(&c)),
            "{sixteen:?}"
        );
    }

    /// One proxy talking to one upstream: its connections (client ports) spread evenly over
    /// the shards, and both directions of each land in one.
    #[test]
    fn one_pair_of_hosts_spreads_and_both_directions_go_together() {
        for (client, server) in [
            ("192.0.2.1", "198.51.100.1:8080"),
            ("2001:db8::1", "[2001:db8::2]:443"),
        ] {
            let server: SocketAddr = server.parse().unwrap();
            let shards = shard_count(16);
            let mut counts = vec![0u32; shards];
            for port in 32768..32768 + 16_000u16 {
                let c = SocketAddr::new(client.parse().unwrap(), port);
                let shard = shard_of_tuple(c, server, shards);
                assert_eq!(shard, shard_of_tuple(server, c, shards));
                counts[shard] += 1;
            }
            assert_eq!(counts[0], 0);
            assert!(
                counts[1..].iter().all(|&c| (900..=1100).contains(&c)),
                "{client}: {counts:?}"
            );
        }
    }
}
