//! Durations in logarithmic bins: exact counts that add up across shards of the input, in a
//! fixed, small space (the endpoint plots of the report and the what-if of the advice).

use crate::report::schema::Histogram;

/// Bins per power of ten: a bin spans 2.3 %, so reuses after 0.97 s and idle closes after
/// 1.0 s fall in different bins.
pub(crate) const BINS_PER_DECADE: u32 = 100;
/// The first bin starts at 10^MIN_DECADE s (shorter durations count in it) ...
const MIN_DECADE: i32 = -4;
/// ... the last ends at 10^MAX_DECADE s (longer ones count in it).
const MAX_DECADE: i32 = 5;
const BINS: usize = ((MAX_DECADE - MIN_DECADE) as u32 * BINS_PER_DECADE) as usize;

/// Counts of durations per bin (allocated on the first one).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LogHistogram {
    counts: Vec<u64>,
}

/// The bin of `secs`.
fn bin_of(secs: f64) -> usize {
    if secs.is_nan() || secs <= 0.0 {
        return 0;
    }
    let pos = (secs.log10() - f64::from(MIN_DECADE)) * f64::from(BINS_PER_DECADE);
    // a duration on an edge (1.0 s) belongs to the bin that starts there, despite rounding
    (pos + 1e-9).floor().clamp(0.0, (BINS - 1) as f64) as usize
}

/// The lower edge of bin `i`, in seconds.
pub(crate) fn lower_edge(i: usize) -> f64 {
    10f64.powf(f64::from(MIN_DECADE) + i as f64 / f64::from(BINS_PER_DECADE))
}

impl LogHistogram {
    pub fn add(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BINS];
        }
        self.counts[bin_of(secs)] += 1;
    }

    pub fn merge(&mut self, other: &LogHistogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BINS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// As reported: the bins that are not empty.
    pub fn to_report(&self) -> Histogram {
        Histogram {
            bins_per_decade: if self.counts.is_empty() {
                0
            } else {
                BINS_PER_DECADE
            },
            bins: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (round6(lower_edge(i)), *n))
                .collect(),
        }
    }
}

/// Seconds rounded to the microsecond, as the report writes durations.
fn round6(s: f64) -> f64 {
    (s * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_near_one_second_and_merge_exactly() {
        let mut a = LogHistogram::default();
        let mut b = LogHistogram::default();
        a.add(0.97);
        a.add(0.99);
        b.add(1.0);
        b.add(1.0006);
        a.merge(&b);
        let h = a.to_report();
        assert_eq!(h.total(), 4);
        assert_eq!(h.bins.len(), 3, "{h:?}");
        assert_eq!(h.bins[2], (1.0, 2));
        assert!(h.bins[0].0 < 0.97 && h.upper(h.bins[1].0) <= 1.0 + 1e-9);
        assert_eq!(h.at_least(1.0), 2);
        assert_eq!(h.at_least(0.5), 4);
        // out of range and odd values land in the end bins, never panic
        let mut c = LogHistogram::default();
        for v in [0.0, -1.0, f64::NAN, 1e-9, 1e12, f64::INFINITY] {
            c.add(v);
        }
        assert_eq!(c.to_report().total(), 6);
    }
}
