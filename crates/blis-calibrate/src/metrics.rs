//! Error metrics: absolute percentage error per figure, MAPE over experiments, and the weighted
//! objective the fitter minimises.

use crate::measurements::LatencyStats;

/// One compared figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    TtftMean,
    TtftP90,
    TtftP99,
    E2eMean,
    E2eP90,
    E2eP99,
    ItlMean,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::TtftMean,
        Metric::TtftP90,
        Metric::TtftP99,
        Metric::E2eMean,
        Metric::E2eP90,
        Metric::E2eP99,
        Metric::ItlMean,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::TtftMean => "TTFT mean",
            Metric::TtftP90 => "TTFT p90",
            Metric::TtftP99 => "TTFT p99",
            Metric::E2eMean => "E2E mean",
            Metric::E2eP90 => "E2E p90",
            Metric::E2eP99 => "E2E p99",
            Metric::ItlMean => "ITL mean",
        }
    }

    pub fn get(self, s: &LatencyStats) -> f64 {
        match self {
            Metric::TtftMean => s.ttft_mean_ms,
            Metric::TtftP90 => s.ttft_p90_ms,
            Metric::TtftP99 => s.ttft_p99_ms,
            Metric::E2eMean => s.e2e_mean_ms,
            Metric::E2eP90 => s.e2e_p90_ms,
            Metric::E2eP99 => s.e2e_p99_ms,
            Metric::ItlMean => s.itl_mean_ms,
        }
    }

    /// Weight in the fitting objective: the means are the targets, tails count less.
    pub fn fit_weight(self) -> f64 {
        match self {
            Metric::TtftMean | Metric::E2eMean | Metric::ItlMean => 1.0,
            Metric::TtftP90 | Metric::E2eP90 => 0.25,
            Metric::TtftP99 | Metric::E2eP99 => 0.1,
        }
    }
}

/// Absolute percentage error of `predicted` against `measured`, in percent. A zero or
/// non-finite measurement yields NaN (no meaningful relative error).
pub fn ape(predicted: f64, measured: f64) -> f64 {
    if measured == 0.0 || !measured.is_finite() || !predicted.is_finite() {
        return f64::NAN;
    }
    ((predicted - measured) / measured).abs() * 100.0
}

/// Signed percentage error (positive = over-prediction).
pub fn signed_pe(predicted: f64, measured: f64) -> f64 {
    if measured == 0.0 { f64::NAN } else { (predicted - measured) / measured * 100.0 }
}

/// Per-experiment comparison: predicted and measured figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub id: String,
    pub label: String,
    pub predicted: LatencyStats,
    pub measured: LatencyStats,
}

impl Comparison {
    pub fn ape(&self, m: Metric) -> f64 {
        ape(m.get(&self.predicted), m.get(&self.measured))
    }
}

/// MAPE (and mean signed error) per metric over a set of comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `(metric, MAPE %, mean signed error %)` in [`Metric::ALL`] order.
    pub per_metric: Vec<(Metric, f64, f64)>,
    pub experiments: usize,
}

impl Summary {
    pub fn mape(&self, m: Metric) -> f64 {
        self.per_metric.iter().find(|(x, _, _)| *x == m).map_or(f64::NAN, |(_, v, _)| *v)
    }

    pub fn bias(&self, m: Metric) -> f64 {
        self.per_metric.iter().find(|(x, _, _)| *x == m).map_or(f64::NAN, |(_, _, b)| *b)
    }

    /// Weighted sum of MAPEs over [`Metric::fit_weight`] divided by the weight sum.
    pub fn objective(&self) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for (m, v, _) in &self.per_metric {
            num += m.fit_weight() * v;
            den += m.fit_weight();
        }
        if den == 0.0 { f64::NAN } else { num / den }
    }
}

/// Median APE (%) of one figure over the comparisons (NaN when none is finite).
pub fn median_ape(rows: &[Comparison], m: Metric) -> f64 {
    let mut v: Vec<f64> = rows.iter().map(|c| c.ape(m)).filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Mean of the finite values (NaN when there are none).
pub fn mean_finite(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        s += v;
        n += 1;
    }
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Aggregates comparisons into per-metric MAPE and bias.
pub fn score(rows: &[Comparison]) -> Summary {
    let per_metric = Metric::ALL
        .iter()
        .map(|&m| {
            let mape = mean_finite(rows.iter().map(|r| r.ape(m)));
            let bias = mean_finite(rows.iter().map(|r| signed_pe(m.get(&r.predicted), m.get(&r.measured))));
            (m, mape, bias)
        })
        .collect();
    Summary { per_metric, experiments: rows.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: f64) -> LatencyStats {
        LatencyStats {
            ttft_mean_ms: v,
            ttft_p90_ms: 2.0 * v,
            ttft_p99_ms: 3.0 * v,
            e2e_mean_ms: 10.0 * v,
            e2e_p90_ms: 11.0 * v,
            e2e_p99_ms: 12.0 * v,
            itl_mean_ms: v / 10.0,
        }
    }

    #[test]
    fn ape_is_relative_to_measured() {
        assert_eq!(ape(110.0, 100.0), 10.0);
        assert_eq!(ape(90.0, 100.0), 10.0);
        assert!(ape(1.0, 0.0).is_nan());
        assert_eq!(signed_pe(90.0, 100.0), -10.0);
    }

    #[test]
    fn mape_and_bias_over_hand_made_rows() {
        // Row a over-predicts every figure by 10 %, row b under-predicts by 30 %.
        let a =
            Comparison { id: "a".into(), label: "a".into(), predicted: stats(11.0), measured: stats(10.0) };
        let b =
            Comparison { id: "b".into(), label: "b".into(), predicted: stats(7.0), measured: stats(10.0) };
        let s = score(&[a.clone(), b]);
        for m in Metric::ALL {
            assert!((s.mape(m) - 20.0).abs() < 1e-9, "{m:?} {}", s.mape(m));
            assert!((s.bias(m) - -10.0).abs() < 1e-9, "{m:?}");
        }
        assert!((s.objective() - 20.0).abs() < 1e-9);
        assert_eq!(s.experiments, 2);
        let single = score(&[a]);
        assert!((single.mape(Metric::ItlMean) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn objective_weights_means_over_tails() {
        let measured = stats(10.0);
        let mut predicted = measured;
        predicted.ttft_p99_ms *= 2.0; // 100 % error on a tail figure only
        let s = score(&[Comparison { id: "x".into(), label: "x".into(), predicted, measured }]);
        let weights: f64 = Metric::ALL.iter().map(|m| m.fit_weight()).sum();
        assert!((s.objective() - 100.0 * 0.1 / weights).abs() < 1e-9);
        assert!(mean_finite([f64::NAN, 1.0, 3.0]) == 2.0);
    }
}
