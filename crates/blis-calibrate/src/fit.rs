//! Fitting coefficients to the measurements: bounded Levenberg–Marquardt on per-experiment
//! residuals (`ln(predicted/measured)` of every figure, weighted by [`Metric::fit_weight`]), each
//! evaluation simulating every experiment. A deterministic Nelder–Mead is kept for callers that
//! only have a scalar objective.
//!
//! Coefficients must be ≥ 0 and span decades (µs overheads next to unit multipliers), so LM works
//! on `ln(coefficient)`, bounded to four decades either side of the start: scale-free, and a
//! coefficient the data does not want shrinks towards 0 (its lower bound).

use blis_config::RunConfig;

use crate::experiment::{Setup, SimStats, config, run_all_configs, with_coefficients};
use crate::measurements::Experiment;
use crate::metrics::{Comparison, Metric, Summary, score};

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

/// Levenberg–Marquardt options.
#[derive(Debug, Clone, Copy)]
pub struct LmOptions {
    /// Evaluation budget (each Jacobian costs one evaluation per free parameter).
    pub max_evals: usize,
    /// Forward-difference step of the Jacobian, in the (log) parameter units. Large enough to
    /// step over the µs rounding of simulated step times.
    pub step: f64,
    /// Stop when an accepted step improves the cost by less than this fraction.
    pub rel_tol: f64,
}

impl Default for LmOptions {
    fn default() -> Self {
        Self { max_evals: 400, step: 0.03, rel_tol: 1e-5 }
    }
}

/// Minimises `½·Σ r(x)²` over the box `[lo, hi]` from `x0` by Levenberg–Marquardt with
/// Marquardt's diagonal scaling and a forward-difference Jacobian. `residuals` returns `None`
/// where the model cannot be evaluated (treated as an infinite cost). Returns (best x, best cost,
/// evaluations). Deterministic.
pub fn levenberg_marquardt(
    mut residuals: impl FnMut(&[f64]) -> Option<Vec<f64>>,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    opt: LmOptions,
) -> (Vec<f64>, f64, usize) {
    let n = x0.len();
    let clamp = |x: &mut [f64]| {
        for ((v, l), h) in x.iter_mut().zip(lo).zip(hi) {
            *v = v.clamp(*l, *h);
        }
    };
    let cost = |r: &[f64]| 0.5 * r.iter().map(|v| v * v).sum::<f64>();
    let mut x = x0.to_vec();
    clamp(&mut x);
    let mut evals = 1usize;
    let Some(mut r) = residuals(&x) else {
        return (x, f64::INFINITY, evals);
    };
    let mut c = cost(&r);
    let mut lambda = 1e-2;
    'outer: while evals + n < opt.max_evals {
        // Jacobian columns by forward differences (backwards at the upper bound).
        let mut jac: Vec<Vec<f64>> = Vec::with_capacity(n);
        for j in 0..n {
            let mut xj = x.clone();
            let h = if x[j] + opt.step <= hi[j] { opt.step } else { -opt.step };
            xj[j] += h;
            evals += 1;
            let col = match residuals(&xj) {
                Some(rj) => rj.iter().zip(&r).map(|(a, b)| (a - b) / h).collect(),
                None => vec![0.0; r.len()],
            };
            jac.push(col);
        }
        let jtj: Vec<Vec<f64>> = (0..n).map(|a| (0..n).map(|b| dot(&jac[a], &jac[b])).collect()).collect();
        let jtr: Vec<f64> = (0..n).map(|a| dot(&jac[a], &r)).collect();
        loop {
            let mut m = jtj.clone();
            for (i, row) in m.iter_mut().enumerate() {
                row[i] += lambda * jtj[i][i].max(1e-9);
            }
            let rhs: Vec<f64> = jtr.iter().map(|v| -v).collect();
            let Some(delta) = solve(m, rhs) else {
                lambda *= 10.0;
                continue;
            };
            let mut xn: Vec<f64> = x.iter().zip(&delta).map(|(a, d)| a + d).collect();
            clamp(&mut xn);
            if xn == x {
                break 'outer;
            }
            evals += 1;
            let trial = residuals(&xn);
            match trial {
                Some(rn) if cost(&rn) < c => {
                    let cn = cost(&rn);
                    let gain = (c - cn) / c.max(1e-300);
                    (x, r, c) = (xn, rn, cn);
                    lambda = (lambda / 3.0).max(1e-7);
                    if gain < opt.rel_tol {
                        break 'outer;
                    }
                    break;
                }
                _ => {
                    lambda *= 4.0;
                    if lambda > 1e8 || evals >= opt.max_evals {
                        break 'outer;
                    }
                }
            }
        }
    }
    (x, c, evals)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Solves `m·x = b` by Gaussian elimination with partial pivoting (`None` if singular).
fn solve(mut m: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() < 1e-300 || !m[pivot][col].is_finite() {
            return None;
        }
        m.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = m.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, r) in lower.iter_mut().enumerate() {
            let f = r[col] / pivot_row[col];
            for (v, p) in r[col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= f * p;
            }
            b[col + 1 + offset] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| m[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / m[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Weighted log residuals of every experiment's figures: `√w·ln(predicted/measured)`.
pub fn log_residuals(rows: &[Comparison]) -> Option<Vec<f64>> {
    let mut out = Vec::with_capacity(rows.len() * Metric::ALL.len());
    for c in rows {
        for m in Metric::ALL {
            let (p, q) = (m.get(&c.predicted), m.get(&c.measured));
            if !(q > 0.0 && q.is_finite()) {
                continue;
            }
            if !(p > 0.0 && p.is_finite()) {
                return None;
            }
            out.push(m.fit_weight().sqrt() * (p / q).ln());
        }
    }
    Some(out)
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

/// What a fit may move, beyond the data: indices into `alpha ++ beta`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// Coefficients kept at their starting value.
    pub frozen: Vec<usize>,
    /// A log-normal prior around the starting point: coefficient i adds the residual
    /// `ln(c_i / start_i) / prior_sigma[i]` (0 or missing = no prior), so a change by a factor
    /// e^σ costs as much as a factor-e error in one figure of weight 1. This keeps what the
    /// calibration set cannot tell apart near the physical prior instead of wherever the
    /// training experiments push it, which is what a held-out model or TP degree needs.
    pub prior_sigma: Vec<f64>,
}

/// Fits `alpha ++ beta` of `setup.latency_model` starting from (`alpha0`, `beta0`) by
/// [`levenberg_marquardt`] on [`log_residuals`] plus the prior's residuals (see
/// [`Constraints`]). `log` gets a line per improvement.
pub fn fit(
    experiments: &[Experiment],
    setup: &Setup,
    alpha0: [f64; 3],
    beta0: &[f64],
    constraints: &Constraints,
    opt: LmOptions,
    mut log: impl FnMut(&str),
) -> Result<FitResult, String> {
    let frozen = &constraints.frozen;
    let base: Vec<RunConfig> = experiments.iter().map(|e| config(e, setup)).collect::<Result<_, _>>()?;
    let start: Vec<f64> = alpha0.iter().copied().chain(beta0.iter().copied()).collect();
    let free: Vec<usize> = (0..start.len()).filter(|i| !frozen.contains(i)).collect();
    // A zero start has no scale; begin it at a small positive value in log space.
    let z0: Vec<f64> = free.iter().map(|&i| start[i].max(1e-3).ln()).collect();
    let decades = 4.0 * std::f64::consts::LN_10;
    let lo: Vec<f64> = z0.iter().map(|z| z - decades).collect();
    let hi: Vec<f64> = z0.iter().map(|z| z + decades).collect();
    let decode = |z: &[f64]| -> Vec<f64> {
        let mut c = start.clone();
        for (&i, z) in free.iter().zip(z) {
            c[i] = z.exp();
        }
        c
    };
    let evaluate = |coeffs: &[f64]| -> Result<Vec<Comparison>, String> {
        let configs: Vec<RunConfig> =
            base.iter().map(|c| with_coefficients(c, &coeffs[..3], &coeffs[3..])).collect();
        let sims = run_all_configs(experiments, &configs)?;
        Ok(comparisons(experiments, &sims))
    };
    let mut best_seen = f64::INFINITY;
    let mut count = 0usize;
    let (z, _, evaluations) = levenberg_marquardt(
        |z| {
            count += 1;
            let c = decode(z);
            let rows = evaluate(&c).ok()?;
            let f = score(&rows).objective();
            if f < best_seen {
                best_seen = f;
                let list: Vec<String> = c.iter().map(|v| format!("{v:.4}")).collect();
                log(&format!("eval {count}: objective {f:.3} % [{}]", list.join(", ")));
            }
            let mut residuals = log_residuals(&rows)?;
            for (k, &i) in free.iter().enumerate() {
                match constraints.prior_sigma.get(i) {
                    Some(&sigma) if sigma > 0.0 => residuals.push((z[k] - z0[k]) / sigma),
                    _ => {}
                }
            }
            Some(residuals)
        },
        &z0,
        &lo,
        &hi,
        opt,
    );
    let coeffs = decode(&z);
    let summary = score(&evaluate(&coeffs)?);
    Ok(FitResult {
        alpha: [coeffs[0], coeffs[1], coeffs[2]],
        beta: coeffs[3..].to_vec(),
        objective: summary.objective(),
        summary,
        evaluations,
    })
}

/// How cross-validation groups the experiments: every fold holds one group out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvGrouping {
    /// One fold per model (`Experiment::model`).
    Model,
    /// One fold per TP degree.
    Tp,
}

impl CvGrouping {
    /// The group an experiment belongs to.
    pub fn key(self, e: &Experiment) -> String {
        match self {
            Self::Model => e.model.clone(),
            Self::Tp => format!("TP{}", e.tp),
        }
    }

    /// Label of the held-out predictions (`leave-one-model-out`, `leave-one-TP-out`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Model => "leave-one-model-out",
            Self::Tp => "leave-one-TP-out",
        }
    }
}

/// One cross-validation fold.
#[derive(Debug, Clone)]
pub struct Fold {
    /// The held-out group ([`CvGrouping::key`]).
    pub group: String,
    /// Coefficients fitted on the other groups' experiments.
    pub fit: FitResult,
    /// Predictions for the held-out group's experiments with those coefficients.
    pub held_out: Vec<Comparison>,
}

/// Leave-one-group-out cross-validation: for each distinct group, fits on every other group's
/// experiments (same start, frozen set and budget as [`fit`]) and predicts the held-out group's.
/// Returns the folds in first-appearance order and the held-out predictions index-aligned with
/// `experiments`.
#[allow(clippy::too_many_arguments)]
pub fn leave_one_group_out(
    experiments: &[Experiment],
    grouping: CvGrouping,
    setup: &Setup,
    alpha0: [f64; 3],
    beta0: &[f64],
    constraints: &Constraints,
    opt: LmOptions,
    mut log: impl FnMut(&str),
) -> Result<(Vec<Fold>, Vec<Comparison>), String> {
    let mut groups: Vec<String> = Vec::new();
    for e in experiments {
        let k = grouping.key(e);
        if !groups.contains(&k) {
            groups.push(k);
        }
    }
    let mut folds = Vec::new();
    let mut rows: Vec<Option<Comparison>> = vec![None; experiments.len()];
    for group in groups {
        let train: Vec<Experiment> =
            experiments.iter().filter(|e| grouping.key(e) != group).cloned().collect();
        let test: Vec<Experiment> =
            experiments.iter().filter(|e| grouping.key(e) == group).cloned().collect();
        if train.is_empty() {
            return Err(format!("{}: cross-validation needs at least two groups", grouping.label()));
        }
        log(&format!("fold {group}: fitting on {} experiments", train.len()));
        let r = fit(&train, setup, alpha0, beta0, constraints, opt, |l| log(&format!("fold {group}: {l}")))?;
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
        folds.push(Fold { group, fit: r, held_out });
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
    fn levenberg_marquardt_fits_an_exponential_within_bounds() {
        // y = a·exp(b·t) from exact data; x = (ln a, b).
        let ts: Vec<f64> = (0..20).map(|i| f64::from(i) * 0.1).collect();
        let resid = |x: &[f64]| {
            Some(ts.iter().map(|t| x[0].exp() * (x[1] * t).exp() - 2.0 * (0.7 * t).exp()).collect())
        };
        let opt = LmOptions { max_evals: 500, step: 1e-6, rel_tol: 1e-12 };
        let (x, c, _) = levenberg_marquardt(resid, &[0.0, 0.0], &[-5.0, -5.0], &[5.0, 5.0], opt);
        assert!((x[0] - 2f64.ln()).abs() < 1e-4 && (x[1] - 0.7).abs() < 1e-4 && c < 1e-10, "{x:?} {c}");
        // The box holds: b capped at 0.5 leaves a compromise on the bound.
        let (x, _, _) = levenberg_marquardt(resid, &[0.0, 0.0], &[-5.0, -5.0], &[5.0, 0.5], opt);
        assert_eq!(x[1], 0.5);
        let (x2, _, _) = levenberg_marquardt(resid, &[0.0, 0.0], &[-5.0, -5.0], &[5.0, 0.5], opt);
        assert_eq!(x, x2);
    }

    #[test]
    fn log_residuals_weight_tails_and_reject_non_positive() {
        use crate::measurements::LatencyStats;
        let s = |v: f64| LatencyStats {
            ttft_mean_ms: v,
            ttft_p90_ms: v,
            ttft_p99_ms: v,
            e2e_mean_ms: v,
            e2e_p90_ms: v,
            e2e_p99_ms: v,
            itl_mean_ms: v,
        };
        let row =
            |p: f64| Comparison { id: "x".into(), label: "x".into(), predicted: s(p), measured: s(1.0) };
        let r = log_residuals(&[row(std::f64::consts::E)]).unwrap();
        assert_eq!(r.len(), 7);
        assert!((r[0] - 1.0).abs() < 1e-12 && (r[2] - 0.1f64.sqrt()).abs() < 1e-12);
        assert!(log_residuals(&[row(0.0)]).is_none());
    }

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
