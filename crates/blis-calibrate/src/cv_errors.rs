//! The held-out error summary `blis calibrate --cv-errors` writes (read back by
//! `blis_latency::uncertainty`): per figure, quantiles of the signed held-out error and the
//! half-width of a 90 % interval, plus the envelope the calibration covered.

use std::collections::BTreeSet;

use crate::experiment::Setup;
use crate::measurements::Experiment;
use crate::metrics::{Comparison, Metric, signed_pe};
use blis_latency::uncertainty::{Envelope, architecture_traits};

/// The figures of `blis_latency::uncertainty::FIGURES` and where they come from.
const FIGURES: [(&str, Metric); 5] = [
    ("ttft_mean", Metric::TtftMean),
    ("e2e_mean", Metric::E2eMean),
    ("itl_mean", Metric::ItlMean),
    ("ttft_p99", Metric::TtftP99),
    ("e2e_p99", Metric::E2eP99),
];

/// GPUs, TP degrees and architecture traits of the experiments.
pub fn envelope(experiments: &[Experiment], cfg: &Setup) -> Result<Envelope, String> {
    let mut gpus = BTreeSet::new();
    let mut tp = BTreeSet::new();
    let mut traits = BTreeSet::new();
    for e in experiments {
        gpus.insert(e.hardware.clone());
        tp.insert(e.tp);
        let model = blis_model::load_model(&e.model, cfg.model_config_folder.as_deref(), &cfg.catalog.hub)
            .map_err(|err| format!("experiment {}: --model: {err}", e.id))?;
        traits.extend(architecture_traits(&model));
    }
    Ok(Envelope {
        gpus: gpus.into_iter().collect(),
        tp: tp.into_iter().collect(),
        traits: traits.into_iter().collect(),
    })
}

/// Linear-interpolated quantile `q` ∈ [0, 1] of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + f * (next - sorted[i])
}

/// YAML text of the summary of `rows` (held-out predictions) for `envelope`.
pub fn cv_errors_yaml(rows: &[Comparison], envelope: &Envelope, source: &str) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let mut s = format!(
        "# Held-out error of blis-physics, written by `blis calibrate --cv-errors` (docs/accuracy.md).\n\
         # Percent of the measured value, + = over-prediction; half_width_90_pct = 90th percentile of\n\
         # the absolute error. Read by blis_latency::uncertainty.\n\
         source: {source}\npredictions: {}\nfigures:\n",
        rows.len()
    );
    for (name, m) in FIGURES {
        let mut signed: Vec<f64> = rows
            .iter()
            .map(|c| signed_pe(m.get(&c.predicted), m.get(&c.measured)))
            .filter(|v| v.is_finite())
            .collect();
        signed.sort_by(f64::total_cmp);
        let mut abs: Vec<f64> = signed.iter().map(|v| v.abs()).collect();
        abs.sort_by(f64::total_cmp);
        s.push_str(&format!(
            "  {name}:\n    median_ape_pct: {:.2}\n    signed_q05_pct: {:.2}\n    signed_q50_pct: {:.2}\n    \
             signed_q95_pct: {:.2}\n    half_width_90_pct: {:.2}\n",
            quantile(&abs, 0.5),
            quantile(&signed, 0.05),
            quantile(&signed, 0.5),
            quantile(&signed, 0.95),
            quantile(&abs, 0.9)
        ));
    }
    s.push_str(&format!(
        "envelope:\n  gpus: [{}]\n  tp: [{}]\n  traits: [{}]\n",
        list(envelope.gpus.clone()),
        list(envelope.tp.iter().map(u32::to_string).collect()),
        list(envelope.traits.clone())
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurements::LatencyStats;

    #[test]
    fn summary_round_trips_through_the_latency_crate() {
        let s = |v: f64| LatencyStats {
            ttft_mean_ms: v,
            ttft_p90_ms: v,
            ttft_p99_ms: v,
            e2e_mean_ms: v,
            e2e_p90_ms: v,
            e2e_p99_ms: v,
            itl_mean_ms: v,
        };
        let rows: Vec<Comparison> = (0..11)
            .map(|i| Comparison {
                id: i.to_string(),
                label: String::new(),
                predicted: s(100.0 + f64::from(i) - 5.0),
                measured: s(100.0),
            })
            .collect();
        let env = Envelope { gpus: vec!["H100".into()], tp: vec![1, 2], traits: vec!["dense".into()] };
        let text = cv_errors_yaml(&rows, &env, "test");
        let cv = blis_latency::uncertainty::CvErrors::from_yaml(&text).unwrap();
        let e = cv.figures["e2e_mean"];
        // Signed errors −5..=5 %: median 0, q05 = −4.5 (interpolated); |error| is 0,1,1,…,5,5,
        // whose 90th percentile is the 10th of 11 values, 5.
        assert_eq!((e.signed_q50_pct, e.half_width_90_pct, e.signed_q05_pct), (0.0, 5.0, -4.5));
        assert_eq!((cv.predictions, cv.envelope), (11, env));
    }
}
