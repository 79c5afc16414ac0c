//! Distribution summaries (mean and NumPy-"linear" percentiles) over integer µs values.
//!
//! Two modes. By default a distribution is a [`Sketch`]: a log-bucket histogram whose memory
//! depends on the range of the values, not on how many there are, and whose percentiles are
//! within [`SKETCH_RELATIVE_ERROR`] of the exact ones. In exact mode (`--exact-percentiles`),
//! per-request latencies are kept as raw samples (8 bytes per request) and inter-token
//! latencies as a value → count histogram: every request decoding in a step shares that step's
//! ITL, so one insertion per step covers the whole batch. Counts, sums and so means are exact
//! in both modes.

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

/// Bound on the relative error of a sketch's percentiles (and CDF values) against the exact
/// mode's: 1/256, under 0.4 %. Values below 256 µs are exact.
pub const SKETCH_RELATIVE_ERROR: f64 = 1.0 / 256.0;

/// A mergeable quantile sketch: an HDR histogram with two significant digits (256 sub-buckets
/// per power of two), so every bucket spans at most 1/128 of its lower bound and its midpoint
/// is within 1/256 of any value in it. Its counts are integers added bucket by bucket, so
/// merging is exact, deterministic and independent of order and grouping (a t-digest's is
/// not). About 20 KiB for values up to 100 s, allocated on first use.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    hist: Option<Box<hdrhistogram::Histogram<u64>>>,
}

impl Sketch {
    fn hist(&mut self) -> &mut hdrhistogram::Histogram<u64> {
        self.hist.get_or_insert_with(|| {
            Box::new(hdrhistogram::Histogram::new(2).expect("two significant digits are valid"))
        })
    }

    #[inline]
    pub fn add(&mut self, value_us: u64, count: u64) {
        self.hist().record_n(value_us, count).expect("an auto-resizing histogram takes any µs value");
    }

    pub fn merge(&mut self, other: &Sketch) {
        if let Some(h) = &other.hist {
            self.hist().add(h.as_ref()).expect("sketches of one layout add");
        }
    }

    /// (cumulative count, bucket midpoint) of every non-empty bucket, in value order.
    fn ranked(&self) -> Vec<(u64, f64)> {
        let Some(h) = &self.hist else { return Vec::new() };
        let mut seen = 0;
        h.iter_recorded()
            .map(|b| {
                seen += b.count_at_value();
                (seen, h.median_equivalent(b.value_iterated_to()) as f64)
            })
            .collect()
    }
}

/// The k-th smallest (0-based) of a ranked list of (cumulative count, value).
fn kth_ranked(ranked: &[(u64, f64)], k: u64) -> f64 {
    let i = ranked.partition_point(|&(seen, _)| seen <= k);
    ranked[i].1
}

/// [`Summary`] of `n` values summing to `sum_us` whose k-th smallest is `kth(k)`.
fn summary_of(n: u64, sum_us: u128, kth: &dyn Fn(u64) -> f64) -> Summary {
    if n == 0 {
        return Summary::default();
    }
    Summary {
        count: n,
        mean_us: sum_us as f64 / n as f64,
        p50_us: percentile(n, 50.0, kth),
        p90_us: percentile(n, 90.0, kth),
        p95_us: percentile(n, 95.0, kth),
        p99_us: percentile(n, 99.0, kth),
    }
}

/// Per-request values: a [`Sketch`] (the default) or, in exact mode, every value.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Every value (exact mode); `None`: the sketch alone.
    values_us: Option<Vec<u64>>,
    sketch: Sketch,
    count: u64,
    sum_us: u128,
}

impl Samples {
    /// Empty samples; `exact` keeps every value.
    pub fn new(exact: bool) -> Self {
        Samples { values_us: exact.then(Vec::new), ..Samples::default() }
    }

    #[inline]
    pub fn push(&mut self, value_us: u64) {
        self.count += 1;
        self.sum_us += u128::from(value_us);
        match &mut self.values_us {
            Some(v) => v.push(value_us),
            None => self.sketch.add(value_us, 1),
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `other`'s values. Empty samples take the mode of what is merged into them (so a
    /// default cluster total of exact instances is exact); merging exact samples into a
    /// non-empty sketch sketches them.
    pub fn merge(&mut self, other: &Samples) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.values_us = other.values_us.as_ref().map(|_| Vec::new());
        }
        match (&mut self.values_us, &other.values_us) {
            (Some(a), Some(b)) => a.extend_from_slice(b),
            (None, Some(b)) => b.iter().for_each(|&v| self.sketch.add(v, 1)),
            (Some(a), None) => {
                a.iter().for_each(|&v| self.sketch.add(v, 1));
                self.values_us = None;
                self.sketch.merge(&other.sketch);
            }
            (None, None) => self.sketch.merge(&other.sketch),
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
    }

    fn sorted(&self) -> Option<Vec<u64>> {
        self.values_us.as_ref().map(|v| {
            let mut sorted = v.clone();
            sorted.sort_unstable();
            sorted
        })
    }

    /// At most `points` (value µs, cumulative fraction) points of the empirical CDF, at evenly
    /// spaced ranks (the largest value included).
    pub fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        match self.sorted() {
            Some(sorted) => cdf_of(self.count, points, |k| sorted[k as usize] as f64),
            None => {
                let ranked = self.sketch.ranked();
                cdf_of(self.count, points, |k| kth_ranked(&ranked, k))
            }
        }
    }

    pub fn summary(&self) -> Summary {
        match self.sorted() {
            Some(sorted) => summary_of(self.count, self.sum_us, &|k| sorted[k as usize] as f64),
            None => {
                let ranked = self.sketch.ranked();
                summary_of(self.count, self.sum_us, &|k| kth_ranked(&ranked, k))
            }
        }
    }
}

/// Exact value → count table. Unordered (one hash probe per insertion, a small table: one
/// entry per distinct value); summaries sort the distinct values once. Insertions are buffered
/// and flushed into the table in batches: with many instances the tables are cache-cold, and
/// a batch of probes overlaps their misses.
#[derive(Debug, Clone, Default)]
struct ExactCounts {
    counts: HashMap<u64, u64, BuildHasherDefault<MulHasher>>,
    /// (value, count) insertions not yet in `counts`.
    pending: Vec<(u64, u64)>,
}

impl ExactCounts {
    /// Buffered insertions per flush.
    const BATCH: usize = 32;

    #[inline]
    fn add(&mut self, value_us: u64, count: u64) {
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

    /// (cumulative count, value) of every distinct value, in value order.
    fn ranked(&self) -> Vec<(u64, f64)> {
        let mut sorted: Vec<(u64, u64)> = self.entries().collect();
        sorted.sort_unstable();
        let mut seen = 0;
        sorted
            .into_iter()
            .map(|(v, c)| {
                seen += c;
                (seen, v as f64)
            })
            .collect()
    }
}

/// Weighted values (token-weighted inter-token latencies): a [`Sketch`] (the default) or, in
/// exact mode, a value → count table.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    exact: Option<ExactCounts>,
    sketch: Sketch,
    total: u64,
    sum_us: u128,
}

impl Histogram {
    /// An empty histogram; `exact` keeps every distinct value.
    pub fn new(exact: bool) -> Self {
        Histogram { exact: exact.then(ExactCounts::default), ..Histogram::default() }
    }

    #[inline]
    pub fn add(&mut self, value_us: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.total += count;
        self.sum_us += u128::from(value_us) * u128::from(count);
        match &mut self.exact {
            Some(e) => e.add(value_us, count),
            None => self.sketch.add(value_us, count),
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s values; modes combine as in [`Samples::merge`].
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.total == 0 {
            self.exact = other.exact.as_ref().map(|_| ExactCounts::default());
        }
        match (&mut self.exact, &other.exact) {
            (Some(a), Some(b)) => b.entries().for_each(|(v, c)| a.add(v, c)),
            (None, Some(b)) => b.entries().for_each(|(v, c)| self.sketch.add(v, c)),
            (Some(a), None) => {
                a.entries().for_each(|(v, c)| self.sketch.add(v, c));
                self.exact = None;
                self.sketch.merge(&other.sketch);
            }
            (None, None) => self.sketch.merge(&other.sketch),
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
    }

    fn ranked(&self) -> Vec<(u64, f64)> {
        match &self.exact {
            Some(e) => e.ranked(),
            None => self.sketch.ranked(),
        }
    }

    /// [`Samples::cdf`] of the histogram's values.
    pub fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        let ranked = self.ranked();
        cdf_of(self.total, points, |k| kth_ranked(&ranked, k))
    }

    pub fn summary(&self) -> Summary {
        let ranked = self.ranked();
        summary_of(self.total, self.sum_us, &|k| kth_ranked(&ranked, k))
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
        let mut s = Samples::new(true);
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
        let mut s = Samples::new(true);
        let mut h = Histogram::new(true);
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
        assert_eq!(Samples::new(true).summary(), Summary::default());
    }

    /// |sketch − exact| ≤ bound × exact, for every figure of a summary.
    fn within_bound(sketch: &Summary, exact: &Summary) -> Result<(), String> {
        let pairs = [
            (sketch.p50_us, exact.p50_us),
            (sketch.p90_us, exact.p90_us),
            (sketch.p95_us, exact.p95_us),
            (sketch.p99_us, exact.p99_us),
        ];
        for (a, b) in pairs {
            if (a - b).abs() > SKETCH_RELATIVE_ERROR * b + 1e-9 {
                return Err(format!("sketch {a} vs exact {b}: {sketch:?} {exact:?}"));
            }
        }
        if sketch.count != exact.count || sketch.mean_us != exact.mean_us {
            return Err(format!("counts or means differ: {sketch:?} {exact:?}"));
        }
        Ok(())
    }

    #[test]
    fn small_values_are_exact_in_the_sketch() {
        let (mut s, mut e) = (Samples::default(), Samples::new(true));
        for v in [0, 1, 2, 3, 4, 200, 255] {
            s.push(v);
            e.push(v);
        }
        assert_eq!(s.summary(), e.summary());
        assert_eq!(s.cdf(100), e.cdf(100));
    }

    #[test]
    fn empty_samples_take_the_mode_merged_into_them() {
        let mut exact = Samples::new(true);
        exact.push(1_000_001);
        let mut total = Samples::default();
        total.merge(&exact);
        assert_eq!(total.summary().p50_us, 1_000_001.0);
        let mut sketch = Samples::default();
        sketch.push(1_000_001);
        total.merge(&sketch);
        assert_eq!(total.len(), 2);
        assert!((total.summary().p50_us - 1_000_001.0).abs() <= SKETCH_RELATIVE_ERROR * 1_000_001.0);
    }

    proptest! {
        #[test]
        fn histogram_equals_samples(values in proptest::collection::vec(0u64..50, 1..200)) {
            let mut s = Samples::new(true);
            let mut h = Histogram::new(true);
            for &v in &values {
                s.push(v);
                h.add(v, 1);
            }
            prop_assert_eq!(s.summary(), h.summary());
        }

        /// Sketch percentiles stay within the stated bound of the exact ones, over values
        /// spread across six orders of magnitude.
        #[test]
        fn sketch_is_within_its_bound(
            exps in proptest::collection::vec((0.0f64..6.5, 1u64..4), 1..400),
        ) {
            let (mut s, mut e) = (Samples::default(), Samples::new(true));
            let (mut hs, mut he) = (Histogram::default(), Histogram::new(true));
            for &(x, n) in &exps {
                let v = 10f64.powf(x) as u64;
                s.push(v);
                e.push(v);
                hs.add(v, n);
                he.add(v, n);
            }
            within_bound(&s.summary(), &e.summary()).map_err(TestCaseError::fail)?;
            within_bound(&hs.summary(), &he.summary()).map_err(TestCaseError::fail)?;
            // Each CDF point's value is within the bound of the exact value at its rank.
            let mut sorted: Vec<u64> = exps.iter().map(|&(x, _)| 10f64.powf(x) as u64).collect();
            sorted.sort_unstable();
            let n = sorted.len() as f64;
            for (a, f) in s.cdf(50) {
                let b = sorted[(f * n).round() as usize - 1] as f64;
                prop_assert!((a - b).abs() <= SKETCH_RELATIVE_ERROR * b, "{} vs {}", a, b);
            }
        }

        /// Merging sketches gives the same figures whatever the order and grouping (so
        /// instances may be merged in any order, or in parallel).
        #[test]
        fn sketch_merge_is_order_independent(
            parts in proptest::collection::vec(proptest::collection::vec(0u64..50_000_000, 0..60), 1..8),
            split in 0usize..8,
        ) {
            let samples: Vec<Samples> = parts.iter().map(|p| {
                let mut s = Samples::default();
                p.iter().for_each(|&v| s.push(v));
                s
            }).collect();
            let hists: Vec<Histogram> = parts.iter().map(|p| {
                let mut h = Histogram::default();
                p.iter().for_each(|&v| h.add(v, v % 7 + 1));
                h
            }).collect();
            let mut forward = Samples::default();
            samples.iter().for_each(|s| forward.merge(s));
            let mut backward = Samples::default();
            samples.iter().rev().for_each(|s| backward.merge(s));
            // Two groups merged separately, then together.
            let k = split.min(samples.len());
            let (mut left, mut right) = (Samples::default(), Samples::default());
            samples[..k].iter().for_each(|s| left.merge(s));
            samples[k..].iter().rev().for_each(|s| right.merge(s));
            right.merge(&left);
            prop_assert_eq!(forward.summary(), backward.summary());
            prop_assert_eq!(forward.summary(), right.summary());
            prop_assert_eq!(forward.cdf(64), right.cdf(64));
            let mut hf = Histogram::default();
            hists.iter().for_each(|h| hf.merge(h));
            let mut hb = Histogram::default();
            hists.iter().rev().for_each(|h| hb.merge(h));
            prop_assert_eq!(hf.summary(), hb.summary());
        }
    }
}
