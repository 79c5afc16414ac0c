//! Parity with the reference simulator: every experiment simulated under the reference's
//! semantics (`blis calibrate --compat reference`) and compared with what the reference itself
//! predicted for it (`reference_simulator_predictions` in the measurements file).
//!
//! The reference produced those predictions in its golden-dataset tests
//! (`sim/cluster/{trained_physics,roofline}_golden_test.go`): one instance, the experiment's
//! `total_kv_blocks`, `max_num_seqs`, `max_num_batched_tokens`, seed 42, no horizon, the
//! inference-perf spec expanded by its own generator, synchronous scheduling, trained-physics
//! with its shipped "iter29" coefficients or roofline with α = 0. Their ITL is the mean over
//! every inter-token sample of every request, which is BLIS's `itl_mean_ms`.

use std::path::PathBuf;

use blis_config::{Catalog, Compat};
use blis_latency::{LatencyModelKind, LatencyOverrides};

use crate::experiment::{Setup, run_all};
use crate::measurements::{Experiment, LatencyStats};

/// Largest accepted |error| of the mean TTFT against the reference's prediction, %.
pub const TTFT_BOUND_PCT: f64 = 10.0;
/// Largest accepted |error| of the mean E2E, %.
pub const E2E_BOUND_PCT: f64 = 2.0;
/// Largest accepted |error| of the mean ITL, %.
pub const ITL_BOUND_PCT: f64 = 2.0;

/// Key of the reference's prediction for a latency model (`None`: it made none).
pub fn prediction_key(latency_model: LatencyModelKind) -> Option<&'static str> {
    match latency_model {
        LatencyModelKind::TrainedPhysics => Some("trained_physics"),
        LatencyModelKind::Roofline => Some("roofline"),
        _ => None,
    }
}

/// The reference's prediction of `e` with `latency_model`, if the file has one.
pub fn reference_prediction(e: &Experiment, latency_model: LatencyModelKind) -> Option<LatencyStats> {
    e.reference_simulator_predictions.get(prediction_key(latency_model)?).copied()
}

/// How `blis calibrate --compat reference` simulates: every experiment as `blis run --compat
/// reference` (the reference's workload generation and engine semantics, synchronous
/// scheduling). Coefficients stay the latency model's defaults (trained-physics: the reference's
/// shipped set; roofline: α = 0) unless overridden.
pub fn reference_setup(
    latency_model: LatencyModelKind,
    overrides: LatencyOverrides,
    model_config_folder: Option<PathBuf>,
    catalog: Catalog,
) -> Setup {
    Setup {
        overrides,
        model_config_folder,
        async_scheduling: false,
        compat: Compat::Reference,
        catalog,
        ..Setup::new(latency_model)
    }
}

/// One experiment: BLIS under the reference's semantics against the reference's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityRow {
    pub id: String,
    pub label: String,
    /// Mean TTFT, E2E, ITL (ms) simulated by BLIS.
    pub simulated: [f64; 3],
    /// The same means as the reference predicted them.
    pub reference: [f64; 3],
}

impl ParityRow {
    /// Signed relative errors (TTFT, E2E, ITL), %.
    pub fn errors_pct(&self) -> [f64; 3] {
        std::array::from_fn(|i| 100.0 * (self.simulated[i] / self.reference[i] - 1.0))
    }

    /// Whether every error is within its bound.
    pub fn within_bounds(&self) -> bool {
        let e = self.errors_pct();
        e[0].abs() <= TTFT_BOUND_PCT && e[1].abs() <= E2E_BOUND_PCT && e[2].abs() <= ITL_BOUND_PCT
    }
}

/// Simulates every experiment with `cfg` and pairs it with the reference's prediction for
/// `cfg.latency_model`. An experiment without one is an error naming it.
pub fn parity(experiments: &[Experiment], cfg: &Setup) -> Result<Vec<ParityRow>, String> {
    let key = prediction_key(cfg.latency_model).ok_or_else(|| {
        format!(
            "--compat reference: the reference made predictions only for trained-physics and roofline, \
             not {}",
            cfg.latency_model.name()
        )
    })?;
    let references: Vec<LatencyStats> = experiments
        .iter()
        .map(|e| {
            reference_prediction(e, cfg.latency_model).ok_or_else(|| {
                format!("experiment {}: no reference_simulator_predictions.{key} to compare with", e.id)
            })
        })
        .collect::<Result<_, _>>()?;
    let sims = run_all(experiments, cfg)?;
    Ok(experiments
        .iter()
        .zip(sims)
        .zip(references)
        .map(|((e, s), r)| ParityRow {
            id: e.id.clone(),
            label: e.label(),
            simulated: [s.stats.ttft_mean_ms, s.stats.e2e_mean_ms, s.itl_sample_mean_ms],
            reference: [r.ttft_mean_ms, r.e2e_mean_ms, r.itl_mean_ms],
        })
        .collect())
}

/// Markdown table of the rows (BLIS / reference ms and signed error), one line per experiment,
/// then the largest |error| of each mean.
pub fn render_table(rows: &[ParityRow]) -> String {
    let mut s = String::from(
        "| experiment | model | TTFT BLIS / ref (ms) | err | E2E BLIS / ref (ms) | err | ITL BLIS / ref (ms) | err | within bounds |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut worst = [0.0f64; 3];
    for r in rows {
        let e = r.errors_pct();
        for i in 0..3 {
            worst[i] = worst[i].max(e[i].abs());
        }
        s.push_str(&format!(
            "| {} | {} | {:.2} / {:.2} | {:+.2} % | {:.1} / {:.1} | {:+.2} % | {:.3} / {:.3} | {:+.2} % | {} |\n",
            r.id,
            r.label,
            r.simulated[0],
            r.reference[0],
            e[0],
            r.simulated[1],
            r.reference[1],
            e[1],
            r.simulated[2],
            r.reference[2],
            e[2],
            if r.within_bounds() { "yes" } else { "**no**" }
        ));
    }
    s.push_str(&format!(
        "\nLargest |error|: TTFT {:.2} % (bound {TTFT_BOUND_PCT} %), E2E {:.2} % (bound {E2E_BOUND_PCT} %), \
         ITL {:.2} % (bound {ITL_BOUND_PCT} %); {} of {} runs within every bound.\n",
        worst[0],
        worst[1],
        worst[2],
        rows.iter().filter(|r| r.within_bounds()).count(),
        rows.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sim: [f64; 3]) -> ParityRow {
        ParityRow { id: "x".into(), label: "m".into(), simulated: sim, reference: [50.0, 1000.0, 10.0] }
    }

    #[test]
    fn bounds_are_per_metric() {
        assert!(row([54.9, 1019.9, 9.81]).within_bounds());
        assert!(!row([55.1, 1000.0, 10.0]).within_bounds());
        assert!(!row([50.0, 979.0, 10.0]).within_bounds());
        assert!(!row([50.0, 1000.0, 10.21]).within_bounds());
        let e = row([45.0, 1010.0, 10.1]).errors_pct();
        assert!((e[0] + 10.0).abs() < 1e-9 && (e[1] - 1.0).abs() < 1e-9 && (e[2] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn only_trained_physics_and_roofline_have_predictions() {
        assert_eq!(prediction_key(LatencyModelKind::TrainedPhysics), Some("trained_physics"));
        assert_eq!(prediction_key(LatencyModelKind::Roofline), Some("roofline"));
        assert_eq!(prediction_key(LatencyModelKind::BlisPhysics), None);
        let cfg = reference_setup(
            LatencyModelKind::BlisPhysics,
            LatencyOverrides::default(),
            None,
            Catalog::default(),
        );
        let err = parity(&[], &cfg).unwrap_err();
        assert!(err.contains("only for trained-physics and roofline"), "{err}");
    }

    #[test]
    fn table_marks_runs_out_of_bounds() {
        let t = render_table(&[row([50.0, 1000.0, 10.0]), row([80.0, 1000.0, 10.0])]);
        assert!(t.contains("| yes |") && t.contains("| **no** |"), "{t}");
        assert!(t.contains("1 of 2 runs within every bound"), "{t}");
    }
}
