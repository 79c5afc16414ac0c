//! Is a run's result a steady-state answer? Every run gets a verdict:
//!
//! * **overloaded** — more than 1 % of requests timed out; or the wait queue kept growing
//!   through the second half of the arrival window (least-squares increase above
//!   max(4 per instance, half its mean)) while completions fell more than 5 % short of the
//!   offered rate; or nothing completed at all; or the post-hoc detector said OVERLOADED.
//! * **too-short** — p99 figures rest on fewer than [`MIN_P99_SAMPLES`] requests, or the
//!   arrivals span less than [`MIN_WINDOW_DRAINS`] times the drain after the last arrival
//!   (most of what was measured is start-up and drain, not steady state).
//! * **stable** — neither.
//!
//! The *steady window* is [first arrival past the warm-up, last arrival]: the time load was
//! offered. Throughput over it (`responses_per_sec`) is what the system sustains, not what
//! it finished while draining.

use serde::Serialize;

use crate::engine::SimReport;
use crate::measure::TimeSeries;
use crate::metrics::Completions;

/// Fewest latency samples a p99 is trusted from (the 99th percentile of 100 samples is the
/// interpolation between the two largest).
pub const MIN_P99_SAMPLES: u64 = 100;
/// The arrival window must span at least this many drain times.
pub const MIN_WINDOW_DRAINS: f64 = 3.0;
/// Timed-out fraction above which a run is overloaded.
pub const MAX_TIMEOUT_FRACTION: f64 = 0.01;

/// `stable`, `overloaded` or `too-short`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SteadyVerdict {
    Stable,
    Overloaded,
    TooShort,
}

impl SteadyVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            SteadyVerdict::Stable => "stable",
            SteadyVerdict::Overloaded => "overloaded",
            SteadyVerdict::TooShort => "too-short",
        }
    }
}

/// What was excluded as warm-up.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WarmupDoc {
    /// `--warmup-requests`: requests with id below this were excluded.
    pub requests: u64,
    /// `--warmup-s`: requests arriving before this were excluded.
    pub until_s: f64,
    /// Completions excluded from the latency figures.
    pub excluded_completions: u64,
}

/// The `steady_state` object of the metrics document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SteadyDoc {
    pub verdict: SteadyVerdict,
    /// Why the verdict is not `stable` (empty when it is).
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupDoc>,
    pub window_start_s: f64,
    pub window_end_s: f64,
    /// Measured arrivals per second over the window.
    pub offered_rps: f64,
    /// Completions per second over the window.
    pub completed_rps: f64,
    /// From the last arrival to the end of the run.
    pub drain_s: f64,
    /// Requests whose TTFT / E2E entered the latency figures.
    pub ttft_samples: u64,
    pub e2e_samples: u64,
    /// Least-squares increase of the summed wait queues over the second half of the window.
    pub queue_growth: f64,
    pub timed_out_fraction: f64,
}

/// The steady window `[start, end]` (µs) of a run, when arrivals span any time.
pub fn window_us(report: &SimReport) -> Option<(u64, u64)> {
    let k = &report.counters;
    let start = k.first_measured_arrival_us.or(k.first_arrival_us)?;
    (k.last_arrival_us > start).then_some((start, k.last_arrival_us))
}

/// Completions within `[start, end]` per second.
pub fn rate_in(completions: &Completions, (start, end): (u64, u64)) -> f64 {
    completions.count_in((start, end)) as f64 / ((end - start) as f64 / 1e6)
}

/// Least-squares increase of `ys` over its span (slope × (n − 1)).
fn fitted_increase(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 3 {
        return 0.0;
    }
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in ys.iter().enumerate() {
        let dx = x as f64 - mx;
        sxy += dx * (y - my);
        sxx += dx * dx;
    }
    sxy / sxx * (n - 1.0)
}

/// The verdict of a run. `detector_overloaded`: the post-hoc detector's say, when one ran.
pub fn assess(
    report: &SimReport,
    series: &TimeSeries,
    warmup: Option<WarmupDoc>,
    detector_overloaded: Option<bool>,
) -> SteadyDoc {
    let m = &report.cluster;
    let k = &report.counters;
    let s = |us: u64| us as f64 / 1e6;
    let window = window_us(report);
    let (start, end) = window.unwrap_or((k.first_arrival_us.unwrap_or(0), k.last_arrival_us));
    let span_s = s(end.saturating_sub(start));
    let measured = if k.measured_arrivals > 0 { k.measured_arrivals } else { k.injected };
    let offered_rps = if span_s > 0.0 { measured as f64 / span_s } else { 0.0 };
    let completed_rps = window.map_or(0.0, |w| rate_in(&m.completions, w));
    let drain_s = s(m.end_us.saturating_sub(k.last_arrival_us));
    let timed_out_fraction = if k.injected > 0 { m.timed_out as f64 / k.injected as f64 } else { 0.0 };

    // Summed wait queues over the second half of the window.
    let queue_growth;
    let queue_mean;
    {
        let iv = series.interval_us.max(1);
        let mid = (start + end) / 2;
        let (a, b) = ((mid / iv) as usize, (end / iv) as usize);
        let ys: Vec<f64> = (a..=b.min(series.len().saturating_sub(1)))
            .map(|t| series.instances.iter().map(|x| f64::from(x[t].queued)).sum())
            .collect();
        queue_growth = fitted_increase(&ys);
        queue_mean = if ys.is_empty() { 0.0 } else { ys.iter().sum::<f64>() / ys.len() as f64 };
    }

    let mut overloaded = Vec::new();
    let mut short = Vec::new();
    if timed_out_fraction > MAX_TIMEOUT_FRACTION {
        overloaded.push(format!(
            "{} of {} requests ({:.1} %) timed out",
            m.timed_out,
            k.injected,
            100.0 * timed_out_fraction
        ));
    }
    if k.injected > 0 && m.completed() == 0 && m.dropped_unservable + k.rejected < k.injected {
        overloaded.push("no request completed".into());
    }
    let instances = series.instances.len().max(1) as f64;
    let growing = queue_growth > (4.0 * instances).max(0.5 * queue_mean);
    let deficit = offered_rps > 0.0 && completed_rps < 0.95 * offered_rps;
    if growing && deficit {
        overloaded.push(format!(
            "the wait queues grew by {queue_growth:.0} requests over the second half of the arrivals, \
             completing {completed_rps:.1} of {offered_rps:.1} req/s offered"
        ));
    }
    if detector_overloaded == Some(true) {
        overloaded.push("the post-hoc saturation detector says OVERLOADED".into());
    }
    let ttft_samples = m.all.ttft.len() as u64;
    let e2e_samples = m.all.e2e.len() as u64;
    let fewest = ttft_samples.min(e2e_samples);
    if fewest < MIN_P99_SAMPLES {
        short.push(format!("p99 from {fewest} requests (fewer than {MIN_P99_SAMPLES})"));
    }
    if drain_s > 0.0 && span_s < MIN_WINDOW_DRAINS * drain_s {
        short.push(format!(
            "arrivals span {span_s:.1} s, less than {MIN_WINDOW_DRAINS}× the {drain_s:.1} s drain after the last one"
        ));
    }
    let verdict = if !overloaded.is_empty() {
        SteadyVerdict::Overloaded
    } else if !short.is_empty() {
        SteadyVerdict::TooShort
    } else {
        SteadyVerdict::Stable
    };
    overloaded.extend(short);
    SteadyDoc {
        verdict,
        reasons: overloaded,
        warmup,
        window_start_s: s(start),
        window_end_s: s(end),
        offered_rps,
        completed_rps,
        drain_s,
        ttft_samples,
        e2e_samples,
        queue_growth,
        timed_out_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_increase_of_a_line_is_its_rise() {
        let ys: Vec<f64> = (0..11).map(|x| 3.0 + 2.0 * x as f64).collect();
        assert!((fitted_increase(&ys) - 20.0).abs() < 1e-9);
        assert_eq!(fitted_increase(&[5.0; 10]), 0.0);
    }

    #[test]
    fn rate_counts_completions_inside_the_window() {
        let mut c = Completions::default();
        // A warm-up request completing before the window, measured ones inside and after it.
        c.push(0, 400_000, false);
        c.push(500_000, 500_000, true);
        c.push(500_000, 1_000_000, true);
        c.push(900_000, 1_500_000, true);
        c.push(1_500_000, 1_500_000, true);
        c.push(1_200_000, 3_000_000, true);
        assert!((rate_in(&c, (500_000, 1_500_000)) - 4.0).abs() < 1e-12);
        let mut merged = Completions::default();
        merged.merge(&c);
        merged.merge(&c);
        assert_eq!(merged.count_in((500_000, 1_500_000)), 8);
    }
}
