//! Fitting coefficients to the measurements: deterministic Nelder–Mead over the simulated
//! objective ([`crate::metrics::Summary::objective`]), each evaluation simulating every
//! experiment.
//!
//! Coefficients must be ≥ 0, so the search runs over `z` with `coefficient = |z|·scale`
//! (`scale` = the starting value, or 1 for a zero start): unconstrained, scale-free, and a
//! coefficient can reach 0 exactly.

use blis_config::RunConfig;

use crate::experiment::{Setup, SimStats, config, run_all_configs, with_coefficients};
use crate::measurements::Experiment;
use crate::metrics::{Comparison, Summary, score};

/// Nelder–Mead options.
#[derive(Debug, Clone, Copy)]
pub struct NmOptions {
    pub max_evals: usize,
    /// Initial simplex step, relative (in `z` units).
    pub step: f64,
    /// Stop when the simplex's objective spread falls below this.
    pub f_tol: f64,
    /// Restarts from the best point with a fresh simplex (escapes collapsed simplices).
    pub restarts: usize,
}

impl Default for NmOptions {
    fn default() -> Self {
        Self { max_evals: 400, step: 0.15, f_tol: 1e-3, restarts: 2 }
    }
}

/// Minimises `f` from `x0`; returns (best x, best f, evaluations). Deterministic.
pub fn nelder_mead(mut f: impl FnMut(&[f64]) -> f64, x0: &[f64], opt: NmOptions) -> (Vec<f64>, f64, usize) {
    let n = x0.len();
    let mut evals = 0usize;
    let mut eval = |x: &[f64], evals: &mut usize| {
        *evals += 1;
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    let mut best = x0.to_vec();
    let mut best_f = eval(&best, &mut evals);
    for _round in 0..=opt.restarts {
        let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
        simplex.push((best.clone(), best_f));
        for i in 0..n {
            let mut x = best.clone();
            x[i] = if x[i] == 0.0 { opt.step } else { x[i] * (1.0 + opt.step) };
            let fx = eval(&x, &mut evals);
            simplex.push((x, fx));
        }
        while evals < opt.max_evals {
            simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
            let spread = simplex[n].1 - simplex[0].1;
            if spread.abs() < opt.f_tol {
                break;
            }
            let centroid: Vec<f64> =
                (0..n).map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64).collect();
            let worst = simplex[n].clone();
            let along = |t: f64| -> Vec<f64> {
                centroid.iter().zip(&worst.0).map(|(c, w)| c + t * (c - w)).collect()
            };
            let xr = along(1.0);
            let fr = eval(&xr, &mut evals);
            if fr < simplex[0].1 {
                let xe = along(2.0);
                let fe = eval(&xe, &mut evals);
                simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
            } else if fr < simplex[n - 1].1 {
                simplex[n] = (xr, fr);
            } else {
                let (xc, fc) = if fr < worst.1 {
                    let xc = along(0.5);
                    let fc = eval(&xc, &mut evals);
                    (xc, fc)
                } else {
                    let xc = along(-0.5);
                    let fc = eval(&xc, &mut evals);
                    (xc, fc)
                };
                if fc < worst.1.min(fr) {
                    simplex[n] = (xc, fc);
                } else {
                    let x0 = simplex[0].0.clone();
                    for item in simplex.iter_mut().skip(1) {
                        let xs: Vec<f64> = x0.iter().zip(&item.0).map(|(a, b)| a + 0.5 * (b - a)).collect();
                        let fs = eval(&xs, &mut evals);
                        *item = (xs, fs);
                    }
                }
            }
        }
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        if simplex[0].1 < best_f {
            best = simplex[0].0.clone();
            best_f = simplex[0].1;
        }
        if evals >= opt.max_evals {
            break;
        }
    }
    (best, best_f, evals)
}

/// Builds comparison rows from simulated stats.
pub fn comparisons(experiments: &[Experiment], sims: &[SimStats]) -> Vec<Comparison> {
    experiments
        .iter()
        .zip(sims)
        .map(|(e, s)| Comparison {
            id: e.id.clone(),
            label: e.label(),
            predicted: s.stats,
            measured: e.measured_summary(),
        })
        .collect()
}

/// Result of a fit.
#[derive(Debug, Clone)]
pub struct FitResult {
    pub alpha: [f64; 3],
    pub beta: Vec<f64>,
    pub objective: f64,
    pub summary: Summary,
    pub evaluations: usize,
}

/// Fits `alpha ++ beta` of `setup.latency_model` starting from (`alpha0`, `beta0`); coefficients
/// whose index (in `alpha ++ beta`) is in `frozen` keep their starting value. `log` gets a line
/// per improvement.
pub fn fit(
    experiments: &[Experiment],
    setup: &Setup,
    alpha0: [f64; 3],
    beta0: &[f64],
    frozen: &[usize],
    opt: NmOptions,
    mut log: impl FnMut(&str),
) -> Result<FitResult, String> {
    let base: Vec<RunConfig> = experiments.iter().map(|e| config(e, setup)).collect::<Result<_, _>>()?;
    let start: Vec<f64> = alpha0.iter().copied().chain(beta0.iter().copied()).collect();
    let free: Vec<usize> = (0..start.len()).filter(|i| !frozen.contains(i)).collect();
    let scale: Vec<f64> = start.iter().map(|v| if *v == 0.0 { 1.0 } else { v.abs() }).collect();
    let decode = |z: &[f64]| -> Vec<f64> {
        let mut c = start.clone();
        for (&i, z) in free.iter().zip(z) {
            c[i] = z.abs() * scale[i];
        }
        c
    };
    let evaluate = |coeffs: &[f64]| -> Result<Summary, String> {
        let configs: Vec<RunConfig> =
            base.iter().map(|c| with_coefficients(c, &coeffs[..3], &coeffs[3..])).collect();
        let sims = run_all_configs(experiments, &configs)?;
        Ok(score(&comparisons(experiments, &sims)))
    };
    let mut best_seen = f64::INFINITY;
    let mut count = 0usize;
    let z0: Vec<f64> = free.iter().map(|&i| start[i] / scale[i]).collect();
    let (z, _, evaluations) = nelder_mead(
        |z| {
            count += 1;
            let c = decode(z);
            match evaluate(&c) {
                Ok(s) => {
                    let f = s.objective();
                    if f < best_seen {
                        best_seen = f;
                        let list: Vec<String> = c.iter().map(|v| format!("{v:.4}")).collect();
                        log(&format!("eval {count}: objective {f:.3} % [{}]", list.join(", ")));
                    }
                    f
                }
                Err(_) => f64::INFINITY,
            }
        },
        &z0,
        opt,
    );
    let coeffs = decode(&z);
    let summary = evaluate(&coeffs)?;
    Ok(FitResult {
        alpha: [coeffs[0], coeffs[1], coeffs[2]],
        beta: coeffs[3..].to_vec(),
        objective: summary.objective(),
        summary,
        evaluations,
    })
}

/// One fold of leave-one-model-out cross-validation.
#[derive(Debug, Clone)]
pub struct Fold {
    /// The held-out model (`Experiment::model`).
    pub model: String,
    /// Coefficients fitted on the other models' experiments.
    pub fit: FitResult,
    /// Predictions for the held-out model's experiments with those coefficients.
    pub held_out: Vec<Comparison>,
}

/// Leave-one-model-out cross-validation: for each distinct model, fits on every other model's
/// experiments (same start, frozen set and budget as [`fit`]) and predicts the held-out model's.
/// Returns the folds in first-appearance order and the held-out predictions index-aligned with
/// `experiments`.
pub fn leave_one_model_out(
    experiments: &[Experiment],
    setup: &Setup,
    alpha0: [f64; 3],
    beta0: &[f64],
    frozen: &[usize],
    opt: NmOptions,
    mut log: impl FnMut(&str),
) -> Result<(Vec<Fold>, Vec<Comparison>), String> {
    let mut models: Vec<&str> = Vec::new();
    for e in experiments {
        if !models.contains(&e.model.as_str()) {
            models.push(&e.model);
        }
    }
    let mut folds = Vec::new();
    let mut rows: Vec<Option<Comparison>> = vec![None; experiments.len()];
    for model in models {
        let train: Vec<Experiment> = experiments.iter().filter(|e| e.model != model).cloned().collect();
        let test: Vec<Experiment> = experiments.iter().filter(|e| e.model == model).cloned().collect();
        if train.is_empty() {
            return Err("cross-validation needs at least two models".into());
        }
        log(&format!("fold {model}: fitting on {} experiments", train.len()));
        let r = fit(&train, setup, alpha0, beta0, frozen, opt, |l| log(&format!("fold {model}: {l}")))?;
        let held_setup = Setup {
            overrides: blis_latency::LatencyOverrides {
                alpha: Some(r.alpha.to_vec()),
                beta: Some(r.beta.clone()),
                coefficients_file: None,
            },
            ..setup.clone()
        };
        let configs: Vec<RunConfig> =
            test.iter().map(|e| config(e, &held_setup)).collect::<Result<_, _>>()?;
        let held_out = comparisons(&test, &run_all_configs(&test, &configs)?);
        for c in &held_out {
            if let Some(i) = experiments.iter().position(|e| e.id == c.id) {
                rows[i] = Some(c.clone());
            }
        }
        folds.push(Fold { model: model.to_string(), fit: r, held_out });
    }
    Ok((folds, rows.into_iter().flatten().collect()))
}

/// YAML text of a fitted coefficient set: loadable by `--coefficients-file` (single set).
pub fn coefficients_yaml(latency_model: &str, r: &FitResult, names: &[&str]) -> String {
    let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(", ");
    let mut s = format!(
        "# Fitted by `blis calibrate --fit` for --latency-model {latency_model}\n\
         # objective (weighted MAPE) {:.3} %, {} evaluations\n",
        r.objective, r.evaluations
    );
    for (i, name) in names.iter().enumerate() {
        if let Some(v) = r.beta.get(i) {
            s.push_str(&format!("#   beta[{i}] {name} = {v:.6}\n"));
        }
    }
    s.push_str(&format!("alpha: [{}]\nbeta: [{}]\n", fmt(&r.alpha), fmt(&r.beta)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nelder_mead_finds_quadratic_minimum_deterministically() {
        let f = |x: &[f64]| (x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2) + 1.0;
        let opt = NmOptions { max_evals: 2000, step: 0.5, f_tol: 1e-12, restarts: 2 };
        let (x, fx, _) = nelder_mead(f, &[0.0, 0.0], opt);
        assert!((x[0] - 3.0).abs() < 1e-3 && (x[1] + 1.0).abs() < 1e-3, "{x:?}");
        assert!((fx - 1.0).abs() < 1e-6);
        let (x2, _, _) = nelder_mead(f, &[0.0, 0.0], opt);
        assert_eq!(x, x2);
    }
}
