//! An HTTP/2 server's GOAWAYs by cause, per endpoint: sent on idle connections (with the idle
//! time before them), after a fixed number of requests per connection (load balancers and
//! servers cap requests per connection: the number is inferred when most GOAWAYs sent at once
//! come after the same count), with an error code, or else while streams were open (a
//! shutdown). Accumulated per shard in a form that merges to the same result whatever the
//! split.

use super::endpoints::{median_of, sample_rank};
use super::h2::GoAwaySample;
use crate::app::h2::error_name;
use crate::report::schema::{GoAwayStats, IdleCloses};
use std::collections::BTreeMap;

/// Samples kept (of the GOAWAYs without error).
const MAX_SAMPLES: usize = 4096;
/// A GOAWAY this soon after the last response (or while a stream was open) was not waiting
/// for an idle timeout.
const PROMPT_S: f64 = 0.05;

/// The GOAWAYs of one server so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct GoAwayTally {
    count: u64,
    errors: BTreeMap<&'static str, u64>,
    /// (rank, requests, idle) of the GOAWAYs without error: at most `MAX_SAMPLES` once
    /// trimmed, those of lowest rank (a hash of the connection id), so shards merge alike.
    samples: Vec<(u64, u32, Option<f64>)>,
}

impl GoAwayTally {
    /// The server's GOAWAY on connection `conn`.
    pub fn add(&mut self, s: &GoAwaySample, conn: u64) {
        self.count += 1;
        if s.error != 0 {
            *self.errors.entry(error_name(s.error)).or_default() += 1;
            return;
        }
        self.samples.push((sample_rank(conn), s.requests, s.idle));
        if self.samples.len() >= 2 * MAX_SAMPLES {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.samples.len() > MAX_SAMPLES {
            self.samples
                .select_nth_unstable_by_key(MAX_SAMPLES - 1, |s| s.0);
            self.samples.truncate(MAX_SAMPLES);
        }
    }

    pub fn merge(&mut self, other: GoAwayTally) {
        self.count += other.count;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.samples.extend(other.samples);
        self.trim();
    }

    /// The request count after which most prompt GOAWAYs came, if it is a limit: at least two
    /// connections and half of the prompt GOAWAYs.
    fn request_limit(&self) -> Option<u32> {
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        let mut prompt = 0;
        for &(_, n, idle) in &self.samples {
            if idle.is_none_or(|i| i < PROMPT_S) && n > 0 {
                *counts.entry(n).or_default() += 1;
                prompt += 1;
            }
        }
        // the most frequent count, the lowest of equals
        let (&n, &c) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
        (c >= 2 && 2 * c >= prompt).then_some(n)
    }

    /// The statistics as reported.
    pub fn stats(mut self) -> GoAwayStats {
        self.trim();
        let limit = self.request_limit();
        let mut by_cause: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut idle = Vec::new();
        for &(_, n, i) in &self.samples {
            let prompt = i.is_none_or(|i| i < PROMPT_S);
            let cause = match i {
                _ if prompt && Some(n) == limit => "request_limit",
                Some(i) if !prompt || limit.is_none() => {
                    idle.push(i);
                    "idle"
                }
                _ => "other",
            };
            *by_cause.entry(cause).or_default() += 1;
        }
        let errors: u64 = self.errors.values().sum();
        if errors > 0 {
            by_cause.insert("error", errors);
        }
        let (min, max) = idle
            .iter()
            .fold((None, None), |(lo, hi): (Option<f64>, _), &v| {
                (
                    Some(lo.map_or(v, |l| l.min(v))),
                    Some(hi.map_or(v, |h: f64| h.max(v))),
                )
            });
        GoAwayStats {
            count: self.count,
            by_cause,
            idle: IdleCloses {
                count: idle.len() as u64,
                min_s: min,
                median_s: median_of(idle),
                max_s: max,
            },
            requests_per_connection: limit,
            errors: self.errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u32, idle: Option<f64>) -> GoAwaySample {
        GoAwaySample {
            error: 0,
            requests,
            idle,
        }
    }

    #[test]
    fn a_fixed_request_count_is_a_limit_and_idle_ones_keep_their_time() {
        let mut t = GoAwayTally::default();
        for c in 0..4 {
            t.add(&sample(100, Some(0.001)), c);
        }
        t.add(&sample(100, None), 4);
        t.add(&sample(7, Some(1.0)), 5);
        t.add(&sample(3, Some(1.2)), 6);
        t.add(&sample(3, None), 7);
        t.add(
            &GoAwaySample {
                error: 2,
                requests: 1,
                idle: None,
            },
            8,
        );
        let s = t.stats();
        assert_eq!(s.count, 9);
        assert_eq!(s.requests_per_connection, Some(100));
        assert_eq!(s.by_cause["request_limit"], 5);
        assert_eq!(s.by_cause["idle"], 2);
        assert_eq!(s.by_cause["other"], 1);
        assert_eq!(s.by_cause["error"], 1);
        assert_eq!(s.errors["INTERNAL_ERROR"], 1);
        assert_eq!((s.idle.min_s, s.idle.max_s), (Some(1.0), Some(1.2)));
        assert_eq!(s.idle.median_s, Some(1.1));
    }

    #[test]
    fn idle_goaways_after_one_request_each_are_not_a_limit() {
        let mut t = GoAwayTally::default();
        for c in 0..5 {
            t.add(&sample(1, Some(2.0 + c as f64 / 100.0)), c);
        }
        let s = t.stats();
        assert_eq!(s.requests_per_connection, None);
        assert_eq!(s.by_cause["idle"], 5);
        assert_eq!(s.idle.count, 5);
    }

    #[test]
    fn a_count_shared_by_a_few_shutdowns_is_not_a_limit() {
        let mut t = GoAwayTally::default();
        for (c, n) in [5, 5, 1, 2, 3, 4, 6].into_iter().enumerate() {
            t.add(&sample(n, None), c as u64);
        }
        let s = t.stats();
        assert_eq!(s.requests_per_connection, None);
        assert_eq!(s.by_cause["other"], 7);
    }

    #[test]
    fn shards_merge_to_the_whole() {
        let mut whole = GoAwayTally::default();
        let (mut a, mut b) = (GoAwayTally::default(), GoAwayTally::default());
        for c in 0..9000u64 {
            let s = sample((c % 7) as u32 + 1, Some((c % 13) as f64 / 10.0));
            whole.add(&s, c);
            if c % 3 == 0 {
                a.add(&s, c)
            } else {
                b.add(&s, c)
            }
        }
        a.merge(b);
        assert_eq!(a.stats(), whole.stats());
    }
}
