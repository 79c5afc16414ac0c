//! Token-length distributions (`type` + `params`); every draw is rounded, at least 1 and at
//! most [`MAX_REQUEST_TOKENS`].
//!
//! Parameters that place lengths beyond that limit (a `max`, `mean`, `value`, `xm` or
//! empirical key above it, a lognormal `mu` above its logarithm) are errors. Heavy tails of
//! unbounded families (exponential, lognormal, Pareto without `max`) can still draw beyond it;
//! such a draw is clamped to the limit, which no realistic parameters ever reach.

use std::collections::BTreeMap;

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

use crate::arrival::exp1;
use crate::error::{Result, WorkloadError};
use crate::limits::{MAX_REQUEST_TOKENS, TOKEN_LIMIT_NOTE, num};
use crate::rng::StreamRng;
use crate::spec::DistSpec;

/// Accepted distribution `type` names.
pub const DISTRIBUTIONS: &str =
    "gaussian (alias normal), exponential, lognormal, pareto_lognormal, constant, uniform, empirical";

/// A validated length distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthDist {
    /// clamp(N(mean, std_dev), min, max), rounded; `min == max` always gives `min`.
    Gaussian {
        mean: f64,
        std_dev: f64,
        min: f64,
        max: f64,
    },
    /// round(Exp · mean), optionally clamped.
    Exponential {
        mean: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// exp(mu + sigma·Z), optionally clamped.
    LogNormal {
        mu: f64,
        sigma: f64,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// With probability `mix_weight` Pareto `xm / U^{1/alpha}`, else lognormal(mu, sigma).
    ParetoLogNormal {
        alpha: f64,
        xm: f64,
        mu: f64,
        sigma: f64,
        mix_weight: f64,
    },
    Constant {
        value: u32,
    },
    /// Uniform integer in `[min, max]`.
    Uniform {
        min: u32,
        max: u32,
    },
    /// Inverse-CDF sampling over `(tokens, cumulative probability)` in increasing tokens.
    Empirical {
        cdf: Vec<(u32, f64)>,
    },
}

impl LengthDist {
    /// A constant length.
    pub fn constant(value: u32) -> Self {
        LengthDist::Constant { value: value.max(1) }
    }

    /// Validates `spec`; `path` (e.g. `clients[0].input_distribution`) prefixes errors.
    pub fn from_spec(spec: &DistSpec, path: &str) -> Result<Self> {
        let p = Params { map: &spec.params, path, kind: &spec.kind };
        match spec.kind.as_str() {
            "gaussian" | "normal" => {
                p.only(&["mean", "std_dev", "min", "max"])?;
                let (mean, std_dev) = (p.req("mean")?, p.req("std_dev")?);
                let (min, max) = (p.req("min")?, p.req("max")?);
                p.non_negative("std_dev", std_dev)?;
                p.at_most_limit("mean", mean)?;
                p.min_max(min, max)?;
                Ok(LengthDist::Gaussian { mean, std_dev, min, max })
            }
            "exponential" => {
                p.only(&["mean", "min", "max"])?;
                let mean = p.req("mean")?;
                p.positive("mean", mean)?;
                p.at_most_limit("mean", mean)?;
                let (min, max) = (p.opt("min")?, p.opt("max")?);
                p.opt_min_max(min, max)?;
                Ok(LengthDist::Exponential { mean, min, max })
            }
            "lognormal" => {
                p.only(&["mu", "sigma", "min", "max"])?;
                let (mu, sigma) = (p.req("mu")?, p.req("sigma")?);
                p.non_negative("sigma", sigma)?;
                p.log_at_most_limit("mu", mu)?;
                let (min, max) = (p.opt("min")?, p.opt("max")?);
                p.opt_min_max(min, max)?;
                Ok(LengthDist::LogNormal { mu, sigma, min, max })
            }
            "pareto_lognormal" => {
                p.only(&["alpha", "xm", "mu", "sigma", "mix_weight"])?;
                let (alpha, xm) = (p.req("alpha")?, p.req("xm")?);
                let (mu, sigma, mix_weight) = (p.req("mu")?, p.req("sigma")?, p.req("mix_weight")?);
                p.positive("alpha", alpha)?;
                p.positive("xm", xm)?;
                p.non_negative("sigma", sigma)?;
                p.at_most_limit("xm", xm)?;
                p.log_at_most_limit("mu", mu)?;
                if !(0.0..=1.0).contains(&mix_weight) {
                    return Err(p.err("mix_weight", format!("must be in [0, 1], got {mix_weight}")));
                }
                Ok(LengthDist::ParetoLogNormal { alpha, xm, mu, sigma, mix_weight })
            }
            "constant" => {
                p.only(&["value"])?;
                let value = p.req("value")?;
                p.positive("value", value)?;
                p.at_most_limit("value", value)?;
                Ok(LengthDist::Constant { value: to_len(value) })
            }
            "uniform" => {
                p.only(&["min", "max"])?;
                let (min, max) = (p.req("min")?, p.req("max")?);
                p.min_max(min, max)?;
                Ok(LengthDist::Uniform { min: to_len(min), max: to_len(max) })
            }
            "empirical" => {
                let mut points: Vec<(u32, f64)> = Vec::with_capacity(spec.params.len());
                for (k, &w) in &spec.params {
                    let tokens: f64 = k
                        .trim()
                        .parse()
                        .ok()
                        .filter(|t: &f64| t.is_finite() && *t >= 1.0)
                        .ok_or_else(|| {
                            p.err(k, "empirical keys are token counts ≥ 1 (e.g. \"512\": 0.25)".to_string())
                        })?;
                    if tokens > f64::from(MAX_REQUEST_TOKENS) {
                        return Err(p.err(
                            k,
                            format!(
                                "must be ≤ {MAX_REQUEST_TOKENS} tokens ({TOKEN_LIMIT_NOTE}), got {}",
                                num(tokens)
                            ),
                        ));
                    }
                    if !(w.is_finite() && w >= 0.0) {
                        return Err(p.err(k, format!("weight must be ≥ 0, got {w}")));
                    }
                    points.push((to_len(tokens), w));
                }
                points.sort_by_key(|&(t, _)| t);
                let total: f64 = points.iter().map(|&(_, w)| w).sum();
                if total.is_infinite() {
                    return Err(WorkloadError::at(
                        format!("{path}.params"),
                        "empirical weights must sum to a finite number (they are relative; scale them down)",
                    ));
                }
                if total.is_nan() || total <= 0.0 {
                    return Err(WorkloadError::at(
                        format!("{path}.params"),
                        "empirical needs at least one token count with weight > 0",
                    ));
                }
                let mut acc = 0.0;
                let cdf = points
                    .into_iter()
                    .filter(|&(_, w)| w > 0.0)
                    .map(|(t, w)| {
                        acc += w / total;
                        (t, acc)
                    })
                    .collect();
                Ok(LengthDist::Empirical { cdf })
            }
            other => Err(WorkloadError::at(
                format!("{path}.type"),
                format!("unknown distribution {other:?}; accepted: {DISTRIBUTIONS}"),
            )),
        }
    }

    /// Draws one length (≥ 1).
    pub fn sample(&self, rng: &mut StreamRng) -> u32 {
        match *self {
            LengthDist::Gaussian { mean, std_dev, min, max } => {
                if min == max {
                    return to_len(min);
                }
                let z: f64 = StandardNormal.sample(rng);
                to_len((mean + std_dev * z).clamp(min, max))
            }
            LengthDist::Exponential { mean, min, max } => {
                to_len(clamp_opt((exp1(rng) * mean).round(), min, max))
            }
            LengthDist::LogNormal { mu, sigma, min, max } => {
                let z: f64 = StandardNormal.sample(rng);
                to_len(clamp_opt((mu + sigma * z).exp(), min, max))
            }
            LengthDist::ParetoLogNormal { alpha, xm, mu, sigma, mix_weight } => {
                let pick: f64 = rng.random();
                if pick < mix_weight {
                    let u: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
                    to_len(xm / u.powf(1.0 / alpha))
                } else {
                    let z: f64 = StandardNormal.sample(rng);
                    to_len((mu + sigma * z).exp())
                }
            }
            LengthDist::Constant { value } => value,
            LengthDist::Uniform { min, max } => rng.random_range(min..=max).max(1),
            LengthDist::Empirical { ref cdf } => {
                let u: f64 = rng.random();
                let i = cdf.partition_point(|&(_, c)| c <= u).min(cdf.len() - 1);
                cdf[i].0
            }
        }
    }

    /// The expected value when cheaply known (for documentation and capacity estimates).
    pub fn mean(&self) -> Option<f64> {
        match *self {
            LengthDist::Constant { value } => Some(value as f64),
            LengthDist::Uniform { min, max } => Some((min as f64 + max as f64) / 2.0),
            LengthDist::Gaussian { mean, .. } | LengthDist::Exponential { mean, .. } => Some(mean),
            LengthDist::LogNormal { mu, sigma, .. } => Some((mu + sigma * sigma / 2.0).exp()),
            LengthDist::Empirical { ref cdf } => {
                let mut prev = 0.0;
                Some(
                    cdf.iter()
                        .map(|&(t, c)| {
                            let w = c - prev;
                            prev = c;
                            t as f64 * w
                        })
                        .sum(),
                )
            }
            LengthDist::ParetoLogNormal { .. } => None,
        }
    }
}

/// A percentage drawn per request (`reasoning.reason_ratio_distribution`): the families of
/// [`LengthDist`] with values allowed from 0, each draw rounded and clamped to `[0, 100]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentDist {
    /// Constant distributions (and `min == max`) short-circuit here.
    fixed: Option<f64>,
    kind: PercentKind,
}

#[derive(Debug, Clone, PartialEq)]
enum PercentKind {
    Gaussian { mean: f64, std_dev: f64, min: f64, max: f64 },
    Uniform { min: f64, max: f64 },
    Exponential { mean: f64 },
    LogNormal { mu: f64, sigma: f64 },
    Empirical { cdf: Vec<(f64, f64)> },
    Fixed,
}

impl PercentDist {
    /// Validates `spec` as a percentage distribution; `path` prefixes errors.
    pub fn from_spec(spec: &DistSpec, path: &str) -> Result<Self> {
        let p = Params { map: &spec.params, path, kind: &spec.kind };
        let pct = |key: &str, v: f64| -> Result<f64> {
            if (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(p.err(key, format!("must be a percentage in [0, 100], got {}", num(v))))
            }
        };
        let (fixed, kind) = match spec.kind.as_str() {
            "constant" => {
                p.only(&["value"])?;
                (Some(pct("value", p.req("value")?)?), PercentKind::Fixed)
            }
            "gaussian" | "normal" => {
                p.only(&["mean", "std_dev", "min", "max"])?;
                let (mean, std_dev) = (p.req("mean")?, p.req("std_dev")?);
                p.non_negative("std_dev", std_dev)?;
                let (min, max) = (pct("min", p.req("min")?)?, pct("max", p.req("max")?)?);
                if max < min {
                    return Err(p.err("max", format!("must be ≥ min ({min}), got {max}")));
                }
                let fixed = (min == max).then_some(min);
                (fixed, PercentKind::Gaussian { mean, std_dev, min, max })
            }
            "uniform" => {
                p.only(&["min", "max"])?;
                let (min, max) = (pct("min", p.req("min")?)?, pct("max", p.req("max")?)?);
                if max < min {
                    return Err(p.err("max", format!("must be ≥ min ({min}), got {max}")));
                }
                (None, PercentKind::Uniform { min, max })
            }
            "exponential" => {
                p.only(&["mean"])?;
                let mean = pct("mean", p.req("mean")?)?;
                (None, PercentKind::Exponential { mean })
            }
            "lognormal" => {
                p.only(&["mu", "sigma"])?;
                let (mu, sigma) = (p.req("mu")?, p.req("sigma")?);
                p.non_negative("sigma", sigma)?;
                (None, PercentKind::LogNormal { mu: mu.min(10.0), sigma })
            }
            "empirical" => {
                let mut points = Vec::new();
                for (k, &w) in &spec.params {
                    let v: f64 = k
                        .trim()
                        .parse()
                        .ok()
                        .filter(|v: &f64| (0.0..=100.0).contains(v))
                        .ok_or_else(|| {
                            p.err(k, "empirical keys are percentages in [0, 100] (e.g. \"50\": 0.5)".into())
                        })?;
                    if !(w.is_finite() && w >= 0.0) {
                        return Err(p.err(k, format!("weight must be ≥ 0, got {w}")));
                    }
                    points.push((v, w));
                }
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let total: f64 = points.iter().map(|p| p.1).sum();
                if !(total.is_finite() && total > 0.0) {
                    return Err(WorkloadError::at(
                        format!("{path}.params"),
                        "empirical needs at least one value with weight > 0 (and a finite sum)",
                    ));
                }
                let mut acc = 0.0;
                let cdf = points
                    .into_iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|(v, w)| {
                        acc += w / total;
                        (v, acc)
                    })
                    .collect();
                (None, PercentKind::Empirical { cdf })
            }
            other => {
                return Err(WorkloadError::at(
                    format!("{path}.type"),
                    format!(
                        "unknown distribution {other:?}; accepted: constant, gaussian, uniform, exponential, lognormal, empirical"
                    ),
                ));
            }
        };
        Ok(PercentDist { fixed, kind })
    }

    /// One draw as a fraction in `[0, 1]` (whole percent).
    pub fn sample_fraction(&self, rng: &mut StreamRng) -> f64 {
        let v = match (&self.fixed, &self.kind) {
            (Some(v), _) => *v,
            (None, PercentKind::Gaussian { mean, std_dev, min, max }) => {
                let z: f64 = StandardNormal.sample(rng);
                (mean + std_dev * z).clamp(*min, *max)
            }
            (None, PercentKind::Uniform { min, max }) => min + (max - min) * rng.random::<f64>(),
            (None, PercentKind::Exponential { mean }) => exp1(rng) * mean,
            (None, PercentKind::LogNormal { mu, sigma }) => {
                let z: f64 = StandardNormal.sample(rng);
                (mu + sigma * z).exp()
            }
            (None, PercentKind::Empirical { cdf }) => {
                let u: f64 = rng.random();
                cdf[cdf.partition_point(|&(_, c)| c <= u).min(cdf.len() - 1)].0
            }
            (None, PercentKind::Fixed) => 0.0,
        };
        if v.is_finite() { v.round().clamp(0.0, 100.0) / 100.0 } else { 1.0 }
    }
}

fn clamp_opt(x: f64, min: Option<f64>, max: Option<f64>) -> f64 {
    let x = min.map_or(x, |m| x.max(m));
    max.map_or(x, |m| x.min(m))
}

/// Rounds to a token count in `[1, MAX_REQUEST_TOKENS]`.
fn to_len(x: f64) -> u32 {
    if x.is_nan() || x < 1.5 {
        1
    } else if x >= f64::from(MAX_REQUEST_TOKENS) {
        MAX_REQUEST_TOKENS
    } else {
        x.round() as u32
    }
}

struct Params<'a> {
    map: &'a BTreeMap<String, f64>,
    path: &'a str,
    kind: &'a str,
}

impl Params<'_> {
    fn err(&self, key: &str, msg: String) -> WorkloadError {
        WorkloadError::at(format!("{}.params.{key}", self.path), msg)
    }

    fn only(&self, accepted: &[&str]) -> Result<()> {
        for k in self.map.keys() {
            if !accepted.contains(&k.as_str()) {
                return Err(self.err(
                    k,
                    format!("unknown parameter for {}; accepted: {}", self.kind, accepted.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn opt(&self, key: &str) -> Result<Option<f64>> {
        match self.map.get(key) {
            Some(v) if !v.is_finite() => Err(self.err(key, format!("must be a finite number, got {v}"))),
            Some(&v) => Ok(Some(v)),
            None => Ok(None),
        }
    }

    fn req(&self, key: &str) -> Result<f64> {
        self.opt(key)?.ok_or_else(|| {
            WorkloadError::at(format!("{}.params", self.path), format!("{} needs `{key}`", self.kind))
        })
    }

    fn positive(&self, key: &str, v: f64) -> Result<()> {
        if v > 0.0 { Ok(()) } else { Err(self.err(key, format!("must be > 0, got {}", num(v)))) }
    }

    fn non_negative(&self, key: &str, v: f64) -> Result<()> {
        if v >= 0.0 { Ok(()) } else { Err(self.err(key, format!("must be ≥ 0, got {}", num(v)))) }
    }

    /// A length parameter must not exceed the per-request limit.
    fn at_most_limit(&self, key: &str, v: f64) -> Result<()> {
        if v <= f64::from(MAX_REQUEST_TOKENS) {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!("must be ≤ {MAX_REQUEST_TOKENS} tokens ({TOKEN_LIMIT_NOTE}), got {}", num(v)),
            ))
        }
    }

    /// A log-scale location (`mu`): its median `exp(mu)` must not exceed the limit.
    fn log_at_most_limit(&self, key: &str, v: f64) -> Result<()> {
        let max = f64::from(MAX_REQUEST_TOKENS).ln();
        if v <= max {
            Ok(())
        } else {
            Err(self.err(
                key,
                format!("must be ≤ {max:.4} (median exp(mu) ≤ {MAX_REQUEST_TOKENS} tokens; {TOKEN_LIMIT_NOTE}), got {}", num(v)),
            ))
        }
    }

    fn min_max(&self, min: f64, max: f64) -> Result<()> {
        self.at_most_limit("max", max)?;
        if min < 1.0 {
            return Err(self.err("min", format!("must be ≥ 1 token, got {min}")));
        }
        if max < min {
            return Err(self.err("max", format!("must be ≥ min ({min}), got {max}")));
        }
        Ok(())
    }

    fn opt_min_max(&self, min: Option<f64>, max: Option<f64>) -> Result<()> {
        if let Some(m) = max {
            self.at_most_limit("max", m)?;
        }
        if let Some(m) = min {
            self.at_most_limit("min", m)?;
        }
        if let Some(m) = min
            && m < 0.0
        {
            return Err(self.err("min", format!("must be ≥ 0, got {m}")));
        }
        if let Some(m) = max
            && m < min.unwrap_or(1.0)
        {
            return Err(self.err("max", format!("must be ≥ min ({}), got {m}", min.unwrap_or(1.0))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    fn dist(kind: &str, params: &[(&str, f64)]) -> Result<LengthDist> {
        let spec =
            DistSpec { kind: kind.into(), params: params.iter().map(|&(k, v)| (k.to_string(), v)).collect() };
        LengthDist::from_spec(&spec, "clients[0].input_distribution")
    }

    fn mean_of(d: &LengthDist, n: usize) -> f64 {
        let mut rng = seeded(9);
        (0..n).map(|_| d.sample(&mut rng) as f64).sum::<f64>() / n as f64
    }

    #[test]
    fn gaussian_clamps_and_rounds() {
        let d =
            dist("gaussian", &[("mean", 512.0), ("std_dev", 256.0), ("min", 2.0), ("max", 7000.0)]).unwrap();
        let mut rng = seeded(1);
        for _ in 0..10_000 {
            let x = d.sample(&mut rng);
            assert!((2..=7000).contains(&x));
        }
        assert!((mean_of(&d, 100_000) / 512.0 - 1.0).abs() < 0.02);
        let fixed = dist("normal", &[("mean", 5.0), ("std_dev", 3.0), ("min", 9.0), ("max", 9.0)]).unwrap();
        assert_eq!(mean_of(&fixed, 10), 9.0);
    }

    #[test]
    fn other_families_have_expected_means() {
        let e = dist("exponential", &[("mean", 300.0)]).unwrap();
        assert!((mean_of(&e, 200_000) / 300.0 - 1.0).abs() < 0.02);
        let u = dist("uniform", &[("min", 10.0), ("max", 20.0)]).unwrap();
        assert!((mean_of(&u, 100_000) - 15.0).abs() < 0.1);
        let ln = dist("lognormal", &[("mu", 5.0), ("sigma", 0.5)]).unwrap();
        let want = ln.mean().unwrap();
        assert!((mean_of(&ln, 200_000) / want - 1.0).abs() < 0.02);
        assert_eq!(mean_of(&dist("constant", &[("value", 42.0)]).unwrap(), 5), 42.0);
        let pl = dist(
            "pareto_lognormal",
            &[("alpha", 2.5), ("xm", 100.0), ("mu", 5.0), ("sigma", 0.3), ("mix_weight", 1.0)],
        )
        .unwrap();
        let mut rng = seeded(2);
        assert!((0..1000).all(|_| pl.sample(&mut rng) >= 100));
    }

    #[test]
    fn empirical_follows_weights() {
        let d = dist("empirical", &[("100", 3.0), ("200", 1.0)]).unwrap();
        assert!((mean_of(&d, 100_000) - 125.0).abs() < 1.5);
        assert_eq!(d.mean(), Some(125.0));
    }

    #[test]
    fn errors_name_the_parameter() {
        let e = dist("gaussian", &[("mean", 1.0), ("std_dev", 1.0), ("min", 1.0)]).unwrap_err();
        assert_eq!(e.to_string(), "clients[0].input_distribution.params: gaussian needs `max`");
        let e = dist("constant", &[("value", -3.0)]).unwrap_err();
        assert_eq!(e.to_string(), "clients[0].input_distribution.params.value: must be > 0, got -3");
        let e = dist("zipf", &[]).unwrap_err();
        assert!(
            e.to_string().starts_with("clients[0].input_distribution.type: unknown distribution \"zipf\"")
        );
        let e = dist("constant", &[("value", 3.0), ("mean", 2.0)]).unwrap_err();
        assert!(
            e.to_string().contains("params.mean: unknown parameter for constant; accepted: value"),
            "{e}"
        );
    }

    #[test]
    fn results_are_at_least_one() {
        let d = dist("lognormal", &[("mu", -5.0), ("sigma", 1.0)]).unwrap();
        let mut rng = seeded(3);
        assert!((0..1000).all(|_| d.sample(&mut rng) >= 1));
    }
}
