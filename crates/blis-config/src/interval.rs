//! Error bars on every prediction: a 90 % interval per headline figure that combines the step-time
//! model's held-out error (widened outside what it was calibrated on) with the run-to-run spread
//! of the simulated system itself (`--replicas N`).
//!
//! - Model error: `blis-physics` uses its cross-validated error (`blis_latency::uncertainty`,
//!   written by `blis calibrate --cv-errors`); `trained-physics` and `roofline` use the error of
//!   the reference simulator's own predictions of the 15 calibration runs (the 90th percentile of
//!   |error| per figure: [`REFERENCE_MODEL_ERROR_PCT`]), widened like blis-physics outside the
//!   envelope; `blackbox`, fitted per (model, GPU, TP), uses trained-physics's figures.
//! - Seed spread: with `--replicas N` (N ≥ 2) the same run under N seeds; the sample standard
//!   deviation `s` of each figure adds in quadrature: half-width = √((h·x)² + (1.645·s)²), where
//!   `h·x` is the model half-width around the base-seed value `x`.

use blis_latency::LatencyModelKind;
use blis_latency::uncertainty::{relative_half_widths, shipped_cv_errors};
use blis_sim::report::{Figures, MetricsDoc, PredictionInterval, ReplicaSpread, Spread};

use crate::resolve::RunConfig;

/// The 90th percentile of |error| (% per figure: TTFT, E2E, ITL means, TTFT p99, E2E p99) of the
/// reference simulator's predictions of the 15 calibration runs against the measurements
/// (`reference_simulator_predictions` in crates/blis-calibrate/data/vllm-h100-measurements.json).
pub const REFERENCE_MODEL_ERROR_PCT: [(LatencyModelKind, [f64; 5]); 2] = [
    (LatencyModelKind::TrainedPhysics, [31.3, 22.0, 22.3, 70.8, 27.4]),
    (LatencyModelKind::Roofline, [897.0, 80.0, 80.5, 1506.0, 74.5]),
];

/// z of a two-sided 90 % normal interval.
const Z90: f64 = 1.645;

fn to_array<T: Copy>(f: &Figures<T>) -> [T; 5] {
    [f.ttft_mean_ms, f.e2e_mean_ms, f.itl_mean_ms, f.ttft_p99_ms, f.e2e_p99_ms]
}

fn from_array<T: Copy>(a: [T; 5]) -> Figures<T> {
    Figures { ttft_mean_ms: a[0], e2e_mean_ms: a[1], itl_mean_ms: a[2], ttft_p99_ms: a[3], e2e_p99_ms: a[4] }
}

fn figures(m: &MetricsDoc) -> [f64; 5] {
    [m.ttft_mean_ms, m.e2e_mean_ms, m.itl_mean_ms, m.ttft_p99_ms, m.e2e_p99_ms]
}

/// Relative model half-widths (fractions) per figure for this run, and the widening applied.
/// With several pools, the widest pool's.
pub fn model_half_widths(config: &RunConfig) -> ([f64; 5], f64) {
    let cv = shipped_cv_errors();
    let mut out = [0.0f64; 5];
    let mut widening = 1.0f64;
    for pool in &config.sim.pools {
        let h = relative_half_widths(cv, &pool.model, &pool.gpu.name, pool.tp);
        let mut w = [h.ttft_mean, h.e2e_mean, h.itl_mean, h.ttft_p99, h.e2e_p99];
        if pool.latency != LatencyModelKind::BlisPhysics {
            let kind = match pool.latency {
                LatencyModelKind::Blackbox => LatencyModelKind::TrainedPhysics,
                other => other,
            };
            let (_, pct) = REFERENCE_MODEL_ERROR_PCT.iter().find(|(k, _)| *k == kind).expect("listed");
            w = pct.map(|p| p / 100.0 * h.widening);
        }
        for (o, v) in out.iter_mut().zip(w) {
            *o = o.max(v);
        }
        widening = widening.max(h.widening);
    }
    (out, widening)
}

/// The seed spread of replica documents (the base run first).
pub fn spread(seeds: &[u64], replicas: &[&MetricsDoc]) -> ReplicaSpread {
    assert_eq!(seeds.len(), replicas.len());
    let stat = |k: usize| {
        let xs: Vec<f64> = replicas.iter().map(|m| figures(m)[k]).collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var =
            if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Spread {
            mean,
            stdev: var.sqrt(),
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    };
    ReplicaSpread { seeds: seeds.to_vec(), figures: from_array([0, 1, 2, 3, 4].map(stat)) }
}

/// The 90 % intervals of `base`'s headline figures.
pub fn prediction_interval(
    config: &RunConfig,
    base: &MetricsDoc,
    replicas: Option<&ReplicaSpread>,
) -> PredictionInterval {
    let (h, widening) = model_half_widths(config);
    let x = figures(base);
    let s = replicas.map(|r| to_array(&r.figures).map(|f| f.stdev));
    let interval = |k: usize| {
        let model = h[k] * x[k];
        let seeds = s.map_or(0.0, |s| Z90 * s[k]);
        let half = (model * model + seeds * seeds).sqrt();
        [(x[k] - half).max(0.0), x[k] + half]
    };
    PredictionInterval {
        intervals: from_array([0, 1, 2, 3, 4].map(interval)),
        model_error_pct: from_array(h.map(|v| 100.0 * v)),
        widening,
        replicas: replicas.map_or(1, |r| r.seeds.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(ttft: f64) -> MetricsDoc {
        let mut m = blis_sim::report::MetricsDoc::zero();
        m.ttft_mean_ms = ttft;
        m.e2e_mean_ms = 10.0 * ttft;
        m
    }

    #[test]
    fn spread_is_the_sample_spread() {
        let (a, b, c) = (doc(10.0), doc(12.0), doc(14.0));
        let r = spread(&[1, 2, 3], &[&a, &b, &c]);
        assert_eq!(r.figures.ttft_mean_ms.mean, 12.0);
        assert!((r.figures.ttft_mean_ms.stdev - 2.0).abs() < 1e-12);
        assert_eq!((r.figures.ttft_mean_ms.min, r.figures.ttft_mean_ms.max), (10.0, 14.0));
        assert_eq!(spread(&[7], &[&a]).figures.e2e_mean_ms.stdev, 0.0);
    }
}
