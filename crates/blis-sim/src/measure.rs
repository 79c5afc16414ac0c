//! What a run measures beyond its counters: which requests count (warm-up exclusion), which
//! of them were *good* against per-class SLO targets (goodput), and a sampled time series of
//! every instance's queue, batch and KV cache.
//!
//! Warm-up: requests with id < `warmup_requests` (ids follow arrival order) or arriving before
//! `warmup_until_us` are served as usual and counted in every counter, but leave no TTFT, E2E,
//! scheduling-delay or ITL sample and do not enter goodput. ITL is pooled per step, so a
//! step's ITL sample counts the measured requests decoding in it.
//!
//! Time series: each instance samples its own state at fixed multiples of an interval (the
//! state left by the last event before that time). Memory is bounded: when an instance holds
//! [`MAX_SAMPLES`] samples the interval doubles and every other sample is dropped (adaptive
//! downsampling by powers of two, so instances' series always align on the coarsest interval).

use std::sync::Arc;

use blis_workload::RequestSpec;
use serde::Serialize;

/// Labels of the goodput classes: the five SLO classes, then `default` for requests whose
/// workload names no class (as the reference simulator labels them).
pub const GOODPUT_LABELS: [&str; 6] = ["critical", "standard", "batch", "sheddable", "background", "default"];

/// Targets of one class; a dimension is gated when set (µs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DimTargets {
    pub ttft_us: Option<f64>,
    /// Compared with the request's mean inter-token latency (TPOT).
    pub itl_us: Option<f64>,
    pub e2e_us: Option<f64>,
}

impl DimTargets {
    pub fn is_empty(&self) -> bool {
        self.ttft_us.is_none() && self.itl_us.is_none() && self.e2e_us.is_none()
    }
}

/// What a run measures (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    pub warmup_requests: u64,
    pub warmup_until_us: u64,
    /// Goodput targets per label ([`GOODPUT_LABELS`]); all `None` = goodput off.
    pub goodput: [Option<DimTargets>; 6],
    /// First sampling interval of the time series.
    pub sample_interval_us: u64,
}

/// Default first sampling interval (10 ms).
pub const DEFAULT_SAMPLE_INTERVAL_US: u64 = 10_000;
/// Samples an instance keeps before halving its resolution.
pub const MAX_SAMPLES: usize = 1024;

impl Measurement {
    /// No warm-up, no goodput, default sampling.
    pub fn new() -> Measurement {
        Measurement { sample_interval_us: DEFAULT_SAMPLE_INTERVAL_US, ..Measurement::default() }
    }

    /// Whether `spec`'s latencies count (it is past the warm-up).
    #[inline]
    pub fn measured(&self, spec: &RequestSpec) -> bool {
        spec.id >= self.warmup_requests && spec.arrival_us >= self.warmup_until_us
    }

    /// The goodput label of a request: its class, or `default` when its workload names none
    /// and a `default` target exists (otherwise such requests are `standard`, as everywhere
    /// else in BLIS).
    #[inline]
    pub fn label(&self, spec: &RequestSpec) -> usize {
        if !spec.slo_class_named && self.goodput[5].is_some() { 5 } else { spec.slo_class as usize }
    }

    pub fn goodput_on(&self) -> bool {
        self.goodput.iter().any(Option::is_some)
    }
}

/// Goodput counters of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoodCounts {
    /// Measured completions meeting every gated dimension.
    pub good: u64,
    pub ttft_met: u64,
    pub ttft_count: u64,
    pub itl_met: u64,
    pub itl_count: u64,
    pub e2e_met: u64,
    pub e2e_count: u64,
}

impl GoodCounts {
    pub fn merge(&mut self, o: &GoodCounts) {
        self.good += o.good;
        self.ttft_met += o.ttft_met;
        self.ttft_count += o.ttft_count;
        self.itl_met += o.itl_met;
        self.itl_count += o.itl_count;
        self.e2e_met += o.e2e_met;
        self.e2e_count += o.e2e_count;
    }

    /// Counts one measured completion against `t`.
    pub fn count(&mut self, t: &DimTargets, ttft_us: Option<u64>, itl_mean_us: Option<f64>, e2e_us: u64) {
        let mut good = true;
        let mut dim = |target: Option<f64>, value: Option<f64>, met: &mut u64, count: &mut u64| {
            if let Some(limit) = target {
                *count += 1;
                if value.is_some_and(|v| v <= limit) {
                    *met += 1;
                } else {
                    good = false;
                }
            }
        };
        dim(t.ttft_us, ttft_us.map(|v| v as f64), &mut self.ttft_met, &mut self.ttft_count);
        dim(t.itl_us, itl_mean_us, &mut self.itl_met, &mut self.itl_count);
        dim(t.e2e_us, Some(e2e_us as f64), &mut self.e2e_met, &mut self.e2e_count);
        if good {
            self.good += 1;
        }
    }
}

/// An instance's state at one sample time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateSample {
    /// Requests in the wait queue.
    pub queued: u32,
    /// Requests in the running batch.
    pub running: u32,
    pub kv_used_blocks: u32,
    /// Completions so far.
    pub completed: u32,
}

/// One instance's sampled time series: sample k is the state at `k × interval_us`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub interval_us: u64,
    pub samples: Vec<StateSample>,
    next_us: u64,
    last: StateSample,
}

impl Series {
    pub fn new(interval_us: u64) -> Series {
        Series {
            interval_us: interval_us.max(1),
            samples: Vec::new(),
            next_us: 0,
            last: StateSample::default(),
        }
    }

    /// Records the current state (`last`) at every sample time before `now_us`.
    #[inline]
    pub fn advance(&mut self, now_us: u64) {
        while self.next_us < now_us {
            self.samples.push(self.last);
            if self.samples.len() >= MAX_SAMPLES {
                self.halve();
            }
            self.next_us = self.samples.len() as u64 * self.interval_us;
        }
    }

    /// The state from now on.
    #[inline]
    pub fn set(&mut self, state: StateSample) {
        self.last = state;
    }

    /// Doubles the interval, keeping the samples at even indices.
    fn halve(&mut self) {
        let kept: Vec<StateSample> = self.samples.iter().step_by(2).copied().collect();
        self.samples = kept;
        self.interval_us *= 2;
    }

    /// Resamples to `interval_us` (a power-of-two multiple of this series' interval) and pads
    /// with the final state to `len` samples.
    pub fn aligned(&self, interval_us: u64, len: usize) -> Vec<StateSample> {
        let step = (interval_us / self.interval_us.max(1)).max(1) as usize;
        let mut out: Vec<StateSample> = self.samples.iter().step_by(step).copied().collect();
        out.truncate(len);
        while out.len() < len {
            out.push(self.last);
        }
        out
    }
}

/// The cluster's time series: every instance on one common interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeSeries {
    pub interval_us: u64,
    pub total_kv_blocks: Vec<u32>,
    /// `instances[i][k]`: instance i at `k × interval_us`.
    pub instances: Vec<Vec<StateSample>>,
}

impl TimeSeries {
    /// Aligns the instances' series on the coarsest interval, over `[0, end_us]`.
    pub fn from_series(series: &[&Series], total_kv_blocks: Vec<u32>, end_us: u64) -> TimeSeries {
        let interval_us = series.iter().map(|s| s.interval_us).max().unwrap_or(DEFAULT_SAMPLE_INTERVAL_US);
        let len = (end_us / interval_us.max(1)) as usize + 1;
        TimeSeries {
            interval_us,
            total_kv_blocks,
            instances: series.iter().map(|s| s.aligned(interval_us, len)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.instances.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `time_s,instance,queued,running,kv_used_blocks,kv_utilization,completed` rows.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("time_s,instance,queued,running,kv_used_blocks,kv_utilization,completed\n");
        for k in 0..self.len() {
            let t = (k as u64 * self.interval_us) as f64 / 1e6;
            for (i, s) in self.instances.iter().enumerate() {
                let x = s[k];
                let total = f64::from(self.total_kv_blocks.get(i).copied().unwrap_or(0).max(1));
                out.push_str(&format!(
                    "{t},{i},{},{},{},{:.4},{}\n",
                    x.queued,
                    x.running,
                    x.kv_used_blocks,
                    f64::from(x.kv_used_blocks) / total,
                    x.completed
                ));
            }
        }
        out
    }
}

/// Shared handle on a run's measurement settings.
pub type SharedMeasurement = Arc<Measurement>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_samples_the_state_before_each_time_and_stays_bounded() {
        let mut s = Series::new(10);
        s.set(StateSample { queued: 1, ..Default::default() });
        s.advance(25); // samples at 0, 10, 20
        s.set(StateSample { queued: 2, ..Default::default() });
        s.advance(31); // sample at 30
        let q: Vec<u32> = s.samples.iter().map(|x| x.queued).collect();
        assert_eq!(q, vec![1, 1, 1, 2]);
        s.advance(10 * 5000);
        assert!(s.samples.len() < MAX_SAMPLES);
        assert!(
            s.interval_us > 10 && s.interval_us.is_multiple_of(10) && (s.interval_us / 10).is_power_of_two()
        );
        // Sample k stays the state at k × interval.
        assert_eq!(s.samples[0].queued, 1);
        assert_eq!(s.samples[1].queued, 2);
    }

    #[test]
    fn goodput_counts_every_gated_dimension() {
        let t = DimTargets { ttft_us: Some(100.0), itl_us: None, e2e_us: Some(1000.0) };
        let mut c = GoodCounts::default();
        c.count(&t, Some(100), Some(5.0), 1000);
        c.count(&t, Some(101), Some(5.0), 500);
        c.count(&t, None, None, 10);
        assert_eq!(
            (c.good, c.ttft_met, c.ttft_count, c.e2e_met, c.e2e_count, c.itl_count),
            (1, 1, 3, 3, 3, 0)
        );
    }
}
