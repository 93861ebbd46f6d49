//! Per server endpoint statistics: connections, requests, the server's idle closes, how long
//! clients let connections idle before reusing them, findings. Accumulated per shard of the
//! input in a form that merges to the same result whatever the split.

use super::advice::{ClientSide, advise};
use super::exchanges::Exchanges;
use super::goaways::GoAwayTally;
use super::histogram::LogHistogram;
use super::recommend::recommend;
use crate::flow::{Closes, Dir};
use crate::report::schema::{EndpointStats, Finding, IdleCloses, Kind};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Samples kept for the median.
const MAX_IDLE_SAMPLES: usize = 4096;
/// `Keep-Alive` values kept per endpoint.
const MAX_KEEP_ALIVE_VALUES: usize = 8;

/// A connection id's rank among the samples: mixed (a bijection: distinct ids, distinct ranks).
pub(super) fn sample_rank(id: u64) -> u64 {
    crate::mix::splitmix64(id)
}

/// The server's idle closes so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct IdleTally {
    count: u64,
    min: Option<f64>,
    max: Option<f64>,
    /// (rank, idle time): the samples for the median, at most `MAX_IDLE_SAMPLES` once trimmed.
    /// Beyond that the samples of lowest rank (a hash of the connection id) are kept: a
    /// deterministic sample that does not depend on the order of the closes, so the samples of
    /// shards of the input merge to the same result.
    samples: Vec<(u64, f64)>,
}

impl IdleTally {
    pub fn add(&mut self, v: f64, conn: u64) {
        self.count += 1;
        self.min = min_opt(self.min, Some(v));
        self.max = max_opt(self.max, Some(v));
        self.samples.push((sample_rank(conn), v));
        if self.samples.len() >= 2 * MAX_IDLE_SAMPLES {
            self.trim();
        }
    }

    /// Keep the `MAX_IDLE_SAMPLES` samples of lowest rank.
    fn trim(&mut self) {
        if self.samples.len() > MAX_IDLE_SAMPLES {
            self.samples
                .select_nth_unstable_by_key(MAX_IDLE_SAMPLES - 1, |&(rank, _)| rank);
            self.samples.truncate(MAX_IDLE_SAMPLES);
        }
    }

    pub fn min(&self) -> Option<f64> {
        self.min
    }

    fn merge(&mut self, other: IdleTally) {
        self.count += other.count;
        self.min = min_opt(self.min, other.min);
        self.max = max_opt(self.max, other.max);
        self.samples.extend_from_slice(&other.samples);
        self.trim();
    }

    fn median(&mut self) -> Option<f64> {
        self.trim();
        median_of(self.samples.iter().map(|&(_, v)| v).collect())
    }
}

/// The median of `s` (None when empty): selected, not sorted (linear time).
pub(super) fn median_of(mut s: Vec<f64>) -> Option<f64> {
    let n = s.len();
    if n == 0 {
        return None;
    }
    let (below, &mut mid, _) = s.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(mid);
    }
    let before = below.iter().copied().max_by(f64::total_cmp)?;
    Some((before + mid) / 2.0)
}

/// One server endpoint's statistics so far.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EndpointTally {
    pub server: SocketAddr,
    pub connections: u64,
    pub requests: u64,
    pub responses: u64,
    pub idle: IdleTally,
    pub max_reuse_idle: Option<f64>,
    pub keep_alive: BTreeSet<String>,
    pub findings: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    /// The longest idle time before a request that crossed or followed the server's FIN (or
    /// its idle-close RST).
    pub race_idle_max: Option<f64>,
    /// Findings by outcome.
    pub by_outcome: BTreeMap<&'static str, u64>,
    /// `reset_unanswered` findings that were the keep-alive race: the server closed its idle
    /// socket with the request unread and its kernel answered with RST.
    pub idle_resets: u64,
    /// HTTP/2: the server's GOAWAYs.
    pub goaways: Option<Box<GoAwayTally>>,
    /// The idle closes, and the idle times before clients reused connections, in bins.
    pub idle_hist: LogHistogram,
    pub reuse_hist: LogHistogram,
    /// Distinct `Server` header values (the first 8 in sort order).
    pub server_software: BTreeSet<String>,
}

impl EndpointTally {
    pub fn new(server: SocketAddr) -> EndpointTally {
        EndpointTally {
            server,
            connections: 0,
            requests: 0,
            responses: 0,
            idle: IdleTally::default(),
            max_reuse_idle: None,
            keep_alive: BTreeSet::new(),
            findings: 0,
            by_kind: BTreeMap::new(),
            race_idle_max: None,
            by_outcome: BTreeMap::new(),
            idle_resets: 0,
            goaways: None,
            idle_hist: LogHistogram::default(),
            reuse_hist: LogHistogram::default(),
            server_software: BTreeSet::new(),
        }
    }

    /// A finished connection to this server; returns the server's idle close on it, if any.
    pub fn add_connection(
        &mut self,
        conn: u64,
        ex: &mut Exchanges,
        closes: &Closes,
        client: Dir,
    ) -> Option<f64> {
        self.connections += 1;
        self.requests += u64::from(ex.requests);
        self.responses += u64::from(ex.responses);
        self.max_reuse_idle = max_opt(self.max_reuse_idle, ex.max_reuse_idle());
        if let Some(g) = ex.h2().and_then(|h| h.sample) {
            self.goaways.get_or_insert_default().add(&g, conn);
        }
        let idle = idle_close(ex, closes, client);
        if let Some(idle) = idle {
            self.idle.add(idle, conn);
            self.idle_hist.add(idle);
        }
        idle
    }

    /// A `Keep-Alive` value of a response of this server.
    pub fn add_keep_alive(&mut self, ka: &str) {
        if !self.keep_alive.contains(ka) {
            add_keep_alive(&mut self.keep_alive, ka.to_string());
        }
    }

    /// A `Server` value of a response of this server.
    pub fn add_server_software(&mut self, s: &str) {
        if !self.server_software.contains(s) {
            add_keep_alive(&mut self.server_software, s.to_string());
        }
    }

    /// A client reused a connection to this server after `idle` s.
    pub fn add_reuse(&mut self, idle: f64) {
        self.reuse_hist.add(idle);
    }

    /// A final finding on this server, whose request came after `idle_before` s idle;
    /// `idle_reset`: a `reset_unanswered` that was the keep-alive race.
    pub fn add_finding(&mut self, f: &Finding, idle_reset: bool) {
        self.findings += 1;
        *self.by_kind.entry(f.kind.as_str()).or_default() += 1;
        *self.by_outcome.entry(f.outcome.as_str()).or_default() += 1;
        self.idle_resets += u64::from(idle_reset);
        if matches!(
            f.kind,
            Kind::CrossedFin | Kind::AfterFin | Kind::CrossedGoaway
        ) || idle_reset
        {
            self.race_idle_max = max_opt(self.race_idle_max, f.idle_before_s);
        }
    }

    /// Add another shard's statistics of the same server.
    fn merge(&mut self, other: EndpointTally) {
        self.connections += other.connections;
        self.requests += other.requests;
        self.responses += other.responses;
        self.idle.merge(other.idle);
        self.max_reuse_idle = max_opt(self.max_reuse_idle, other.max_reuse_idle);
        for ka in other.keep_alive {
            add_keep_alive(&mut self.keep_alive, ka);
        }
        self.findings += other.findings;
        for (k, n) in other.by_kind {
            *self.by_kind.entry(k).or_default() += n;
        }
        for (k, n) in other.by_outcome {
            *self.by_outcome.entry(k).or_default() += n;
        }
        self.idle_resets += other.idle_resets;
        self.race_idle_max = max_opt(self.race_idle_max, other.race_idle_max);
        match (&mut self.goaways, other.goaways) {
            (Some(a), Some(b)) => a.merge(*b),
            (a, b) => *a = a.take().or(b),
        }
        self.idle_hist.merge(&other.idle_hist);
        self.reuse_hist.merge(&other.reuse_hist);
        for s in other.server_software {
            add_keep_alive(&mut self.server_software, s);
        }
    }

    /// The statistics as reported, with the median idle close, the recommendation (its
    /// sentences, one per kind of finding, also on their own) and the advice (`side`: what the
    /// proxy's side showed).
    fn into_stats(mut self, side: &ClientSide) -> (EndpointStats, Vec<String>) {
        let median = self.idle.median();
        let goaways = self.goaways.take().map(|g| g.stats());
        let sentences = recommend(&self, median, goaways.as_ref());
        let recommendation = (!sentences.is_empty()).then(|| sentences.join(" "));
        let reuse_idle_histogram = self.reuse_hist.to_report();
        let advice = advise(&self, median, &reuse_idle_histogram, side);
        let stats = EndpointStats {
            server: self.server.to_string(),
            server_ip: self.server.ip().to_string(),
            server_port: self.server.port(),
            connections: self.connections,
            requests: self.requests,
            responses: self.responses,
            idle_closes: IdleCloses {
                count: self.idle.count,
                min_s: self.idle.min,
                median_s: median,
                max_s: self.idle.max,
            },
            max_reuse_idle_s: self.max_reuse_idle,
            keep_alive: self.keep_alive,
            findings: self.findings,
            by_kind: self.by_kind,
            goaways,
            recommendation,
            server_software: self.server_software,
            idle_close_histogram: self.idle_hist.to_report(),
            reuse_idle_histogram,
            advice,
        };
        (stats, sentences)
    }
}

/// Merge the endpoint statistics of the shards of the input (every connection in exactly one
/// shard): per server, counts summed, idle closes and keep-alive values merged; then the final
/// findings are counted per server. Ordered by server address as text; with every endpoint's
/// recommendations, one per kind of finding.
pub(crate) fn merge_endpoints(
    shards: Vec<Vec<EndpointTally>>,
    found: FindingTally,
) -> (Vec<EndpointStats>, Vec<String>) {
    let mut by_server: BTreeMap<String, EndpointTally> = BTreeMap::new();
    for ep in shards.into_iter().flatten() {
        match by_server.get_mut(&ep.server.to_string()) {
            Some(m) => m.merge(ep),
            None => {
                by_server.insert(ep.server.to_string(), ep);
            }
        }
    }
    let mut sides: BTreeMap<String, ClientSide> = BTreeMap::new();
    for (server, (counts, seen)) in found.servers {
        let Some(ep) = by_server.get_mut(&server) else {
            continue;
        };
        ep.merge(counts);
        let mut side = ClientSide {
            closed_clients: seen.closed_clients,
            race_idles: seen.race_idles,
            ..ClientSide::default()
        };
        for proxy in seen.proxies.iter().filter_map(|p| by_server.get(p)) {
            for s in &proxy.server_software {
                if !side.proxy_servers.contains(s) {
                    side.proxy_servers.push(s.clone());
                }
            }
        }
        sides.insert(server, side);
    }
    let mut recommendations = Vec::new();
    let stats = by_server
        .into_iter()
        .map(|(server, ep)| {
            let side = sides.remove(&server).unwrap_or_default();
            let (stats, sentences) = ep.into_stats(&side);
            recommendations.extend(sentences);
            stats
        })
        .collect();
    (stats, recommendations)
}

/// What the final findings add to their servers' statistics, counted as they become final (so
/// that findings streamed as JSON Lines need not be kept): per server (as the findings name
/// it), the counts, and what the proxy's side showed for the advice.
#[derive(Debug, Default)]
pub(crate) struct FindingTally {
    servers: BTreeMap<String, (EndpointTally, SideSeen)>,
}

/// What the findings on a server showed of the proxy's side.
#[derive(Debug, Default)]
struct SideSeen {
    /// Idle times before the race findings' requests.
    race_idles: Vec<f64>,
    closed_clients: bool,
    /// The proxies' addresses their clients reached (at most 8).
    proxies: BTreeSet<String>,
}

impl FindingTally {
    /// A final verdict (counted when it is a finding).
    pub fn add(&mut self, f: &Finding) {
        if !f.kind.is_finding() {
            return;
        }
        let Ok(addr) = f.connection.server.parse::<SocketAddr>() else {
            return;
        };
        let (counts, seen) = self
            .servers
            .entry(f.connection.server.clone())
            .or_insert_with(|| (EndpointTally::new(addr), SideSeen::default()));
        counts.add_finding(f, f.idle_race);
        if let (true, Some(idle)) = (is_race(f), f.idle_before_s) {
            seen.race_idles.push(idle);
        }
        if let Some(e) = &f.client_effect {
            seen.closed_clients |= e.closed_without_response;
            if seen.proxies.len() < MAX_KEEP_ALIVE_VALUES {
                seen.proxies.insert(e.proxy.clone());
            }
        }
    }

    /// Add another part's counts (every finding in exactly one).
    pub fn absorb(&mut self, other: FindingTally) {
        for (server, (counts, seen)) in other.servers {
            match self.servers.get_mut(&server) {
                Some((c, s)) => {
                    c.merge(counts);
                    s.race_idles.extend(seen.race_idles);
                    s.closed_clients |= seen.closed_clients;
                    s.proxies.extend(seen.proxies);
                }
                None => {
                    self.servers.insert(server, (counts, seen));
                }
            }
        }
    }
}

/// A finding of the keep-alive race (or of a stale reuse after the server's idle close).
fn is_race(f: &Finding) -> bool {
    matches!(f.kind, Kind::CrossedFin | Kind::AfterFin) || f.idle_race
}

/// Add a `Keep-Alive` value to an endpoint's: of more than 8, the first 8 in sort order are
/// kept (independent of the order the values come in, so shards merge alike).
fn add_keep_alive(set: &mut BTreeSet<String>, ka: String) {
    if set.len() < MAX_KEEP_ALIVE_VALUES || set.last().is_some_and(|last| ka < *last) {
        set.insert(ka);
        if set.len() > MAX_KEEP_ALIVE_VALUES {
            set.pop_last();
        }
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The idle time before the server's FIN, when it closed an idle keep-alive connection: no
/// request it had received was outstanding, the last response did not announce the close, and
/// the client had not closed first.
fn idle_close(ex: &Exchanges, closes: &Closes, client: Dir) -> Option<f64> {
    let fin = closes.fin[client.other()]?;
    let (end, close_delimited) = ex.last_response_end()?;
    if close_delimited || fin.at.ts < end {
        return None;
    }
    let saw_pending = ex
        .pending
        .front()
        .is_some_and(|r| fin.ack_off.is_some_and(|a| a > r.start));
    let client_first = closes.fin[client].is_some_and(|c| fin.ack_off.is_some_and(|a| a > c.off));
    if saw_pending || client_first {
        return None;
    }
    Some(fin.at.ts.secs_since(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(
        server: &str,
        idles: impl Iterator<Item = (u64, f64)>,
        ka: &[&str],
    ) -> EndpointTally {
        let mut e = EndpointTally::new(server.parse().unwrap());
        for (conn, v) in idles {
            e.connections += 1;
            e.idle.add(v, conn);
        }
        for k in ka {
            add_keep_alive(&mut e.keep_alive, k.to_string());
        }
        e
    }

    #[test]
    fn merged_endpoints_equal_one_over_everything() {
        let idle = |c: u64| (c, (c * 7919 % 1000) as f64 / 100.0);
        let kas = ["k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"];
        // more idle closes than samples are kept, split unevenly and interleaved
        let mut whole = endpoint("10.0.0.1:80", (1..=9000).map(idle), &kas);
        let a = endpoint(
            "10.0.0.1:80",
            (1..=9000).filter(|c| c % 3 == 0).map(idle),
            &kas[..6],
        );
        let mut b = endpoint(
            "10.0.0.1:80",
            (1..=9000).filter(|c| c % 3 != 0).rev().map(idle),
            &kas[6..],
        );
        b.by_kind.insert("crossed_fin", 2);
        b.findings = 2;
        b.race_idle_max = Some(4.5);
        b.max_reuse_idle = Some(4.0);
        let mut a2 = a.clone();
        a2.max_reuse_idle = Some(5.0);
        let other = endpoint("10.0.0.0:80", [(1, 2.0)].into_iter(), &["x"]);
        let (merged, recs) = merge_endpoints(
            vec![vec![a2, other.clone()], vec![b]],
            FindingTally::default(),
        );
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], other.into_stats(&ClientSide::default()).0);
        let m = &merged[1];
        assert_eq!(m.connections, 9000);
        let whole_median = whole.idle.median();
        let mi = &m.idle_closes;
        assert_eq!(
            (mi.count, mi.min_s, mi.median_s, mi.max_s),
            (
                whole.idle.count,
                whole.idle.min,
                whole_median,
                whole.idle.max
            )
        );
        assert_eq!(m.keep_alive, whole.keep_alive);
        assert_eq!(
            m.keep_alive.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b", "c", "d", "e", "f", "g", "h"]
        );
        assert_eq!(m.max_reuse_idle_s, Some(5.0));
        assert_eq!(m.findings, 2);
        assert_eq!(m.by_kind.get("crossed_fin"), Some(&2));
        let rec = m.recommendation.as_deref().unwrap();
        let median = whole_median.unwrap();
        assert!(rec.contains(&format!("about {median:.2} s")), "{rec}");
        assert!(rec.contains("up to 4.50 s"), "{rec}");
        assert_eq!(recs, [rec]);
    }

    #[test]
    fn the_median_is_the_middle_of_the_sorted_samples() {
        let sorted_median = |mut s: Vec<f64>| {
            s.sort_by(f64::total_cmp);
            let n = s.len();
            (n > 0).then(|| match n % 2 {
                1 => s[n / 2],
                _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
            })
        };
        let mut x: u64 = 88_172_645_463_325_252;
        for n in 0..60 {
            let s: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 17) as f64 / 4.0 // repeated values among them
                })
                .collect();
            assert_eq!(median_of(s.clone()), sorted_median(s.clone()), "{s:?}");
        }
        assert_eq!(median_of(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }

    #[test]
    fn the_median_sample_does_not_depend_on_the_split() {
        let idle = |c: u64| (c, (c * 7919 % 1000) as f64 / 100.0);
        let mut whole = IdleTally::default();
        let (mut a, mut b) = (IdleTally::default(), IdleTally::default());
        for (c, v) in (1..=9000).map(idle) {
            whole.add(v, c);
            if c % 3 == 0 { a.add(v, c) } else { b.add(v, c) }
        }
        a.merge(b);
        let sorted = |t: &mut IdleTally| {
            t.trim();
            let mut v = t.samples.clone();
            v.sort_by_key(|s| s.0);
            v
        };
        assert_eq!(sorted(&mut a), sorted(&mut whole));
        assert_eq!(a.samples.len(), MAX_IDLE_SAMPLES);
        assert_eq!(a.median(), whole.median());
    }
}
