//! Exact distribution summaries (mean and NumPy-"linear" percentiles) over integer µs values.
//!
//! Per-request latencies are kept as raw samples (8 bytes per request). Inter-token latencies
//! are kept as a value → count histogram: every request decoding in a step shares that step's
//! ITL, so one insertion per step covers the whole batch, and memory is bounded by the number
//! of distinct step times rather than by the number of tokens. Both are exact.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hasher for small integer keys (µs values): one multiply, high bits mixed.
#[derive(Debug, Default, Clone, Copy)]
struct MulHasher(u64);

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 32;
    }
}

/// Mean and percentiles of a distribution, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
}

/// Raw samples.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values_us: Vec<u64>,
}

impl Samples {
    pub fn push(&mut self, value_us: u64) {
        self.values_us.push(value_us);
    }

    pub fn len(&self) -> usize {
        self.values_us.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values_us.is_empty()
    }

    pub fn merge(&mut self, other: &Samples) {
        self.values_us.extend_from_slice(&other.values_us);
    }

    /// At most `points` (value µs, cumulative fraction) points of the empirical CDF, at evenly
    /// spaced ranks (the largest value included).
    pub fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        let mut sorted = self.values_us.clone();
        sorted.sort_unstable();
        cdf_of(sorted.len() as u64, points, |k| sorted[k as usize] as f64)
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.values_us.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        if n == 0 {
            return Summary::default();
        }
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        let at = |k: usize| sorted[k] as f64;
        Summary {
            count: n as u64,
            mean_us: sum as f64 / n as f64,
            p50_us: percentile(n as u64, 50.0, &|k| at(k as usize)),
            p90_us: percentile(n as u64, 90.0, &|k| at(k as usize)),
            p95_us: percentile(n as u64, 95.0, &|k| at(k as usize)),
            p99_us: percentile(n as u64, 99.0, &|k| at(k as usize)),
        }
    }
}

/// Value → count histogram. Unordered (one hash probe per insertion, a small table: one entry
/// per distinct value); summaries sort the distinct values once. Insertions are buffered and
/// flushed into the table in batches: with many instances the tables are cache-cold, and a
/// batch of probes overlaps their misses.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: HashMap<u64, u64, BuildHasherDefault<MulHasher>>,
    /// (value, count) insertions not yet in `counts`.
    pending: Vec<(u64, u64)>,
    total: u64,
    sum_us: u128,
}

impl Histogram {
    /// Buffered insertions per flush.
    const BATCH: usize = 32;

    #[inline]
    pub fn add(&mut self, value_us: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.total += count;
        self.sum_us += u128::from(value_us) * u128::from(count);
        if let Some(last) = self.pending.last_mut()
            && last.0 == value_us
        {
            last.1 += count;
            return;
        }
        if self.pending.len() == Self::BATCH {
            self.flush();
        }
        self.pending.push((value_us, count));
    }

    #[inline(never)]
    fn flush(&mut self) {
        for (v, c) in self.pending.drain(..) {
            *self.counts.entry(v).or_insert(0) += c;
        }
    }

    /// Every (value, count) entry; a value may appear more than once.
    fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts.iter().map(|(&v, &c)| (v, c)).chain(self.pending.iter().copied())
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (v, c) in other.entries() {
            self.add(v, c);
        }
    }

    /// [`Samples::cdf`] of the histogram's values.
    pub fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        let mut sorted: Vec<(u64, u64)> = self.entries().collect();
        sorted.sort_unstable();
        let mut cum = Vec::with_capacity(sorted.len());
        let mut seen = 0;
        for &(v, c) in &sorted {
            seen += c;
            cum.push((seen, v));
        }
        cdf_of(self.total, points, |k| {
            let i = cum.partition_point(|&(s, _)| s <= k);
            cum[i].1 as f64
        })
    }

    pub fn summary(&self) -> Summary {
        let n = self.total;
        if n == 0 {
            return Summary::default();
        }
        let mut sorted: Vec<(u64, u64)> = self.entries().collect();
        sorted.sort_unstable();
        // The k-th smallest value (0-based).
        let kth = |k: u64| {
            let mut seen = 0;
            for &(v, c) in &sorted {
                seen += c;
                if k < seen {
                    return v as f64;
                }
            }
            unreachable!("rank {k} beyond histogram of {n} values")
        };
        Summary {
            count: n,
            mean_us: self.sum_us as f64 / n as f64,
            p50_us: percentile(n, 50.0, &kth),
            p90_us: percentile(n, 90.0, &kth),
            p95_us: percentile(n, 95.0, &kth),
            p99_us: percentile(n, 99.0, &kth),
        }
    }
}

/// CDF points at evenly spaced ranks of `n` sorted values (`kth(k)` = the k-th smallest).
fn cdf_of(n: u64, points: usize, kth: impl Fn(u64) -> f64) -> Vec<(f64, f64)> {
    if n == 0 || points == 0 {
        return Vec::new();
    }
    let m = (points as u64).min(n);
    let mut out: Vec<(f64, f64)> = (1..=m)
        .map(|i| {
            let k = (i * n).div_ceil(m) - 1;
            (kth(k), (k + 1) as f64 / n as f64)
        })
        .collect();
    out.dedup_by(|b, a| {
        a.0 == b.0 && {
            a.1 = b.1;
            true
        }
    });
    out
}

/// NumPy "linear" percentile: rank = p/100·(n−1), interpolated between its neighbours.
fn percentile(n: u64, p: f64, kth: &dyn Fn(u64) -> f64) -> f64 {
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as u64;
    let hi = rank.ceil() as u64;
    let (a, b) = (kth(lo), kth(hi));
    a + (b - a) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numpy_linear_percentiles() {
        let mut s = Samples::default();
        for v in [1, 2, 3, 4] {
            s.push(v);
        }
        let sum = s.summary();
        assert_eq!(sum.mean_us, 2.5);
        assert_eq!(sum.p50_us, 2.5);
        assert!((sum.p90_us - 3.7).abs() < 1e-9);
        assert!((sum.p99_us - 3.97).abs() < 1e-9);
    }

    #[test]
    fn cdfs_end_at_one_and_agree() {
        let mut s = Samples::default();
        let mut h = Histogram::default();
        for v in [5, 1, 3, 3, 9] {
            s.push(v);
            h.add(v, 1);
        }
        let c = s.cdf(100);
        assert_eq!(c, vec![(1.0, 0.2), (3.0, 0.6), (5.0, 0.8), (9.0, 1.0)]);
        assert_eq!(h.cdf(100), c);
        assert_eq!(s.cdf(2).last(), Some(&(9.0, 1.0)));
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Samples::default().summary(), Summary::default());
        assert_eq!(Histogram::default().summary(), Summary::default());
    }

    proptest! {
        #[test]
        fn histogram_equals_samples(values in proptest::collection::vec(0u64..50, 1..200)) {
            let mut s = Samples::default();
            let mut h = Histogram::default();
            for &v in &values {
                s.push(v);
                h.add(v, 1);
            }
            prop_assert_eq!(s.summary(), h.summary());
        }
    }
}
