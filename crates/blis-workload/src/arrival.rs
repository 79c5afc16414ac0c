//! Inter-arrival-time processes (µs), each draw floored at 1 µs.

use rand::RngExt;
use rand_distr::{Distribution, Gamma, Weibull};

use crate::error::{Result, WorkloadError};
use crate::rng::StreamRng;
use crate::spec::ArrivalSpec;

/// Accepted `arrival.process` names.
pub const PROCESSES: &str = "poisson, gamma, weibull, constant";

/// A renewal process of inter-arrival times.
#[derive(Debug, Clone)]
pub enum ArrivalProcess {
    /// Exponential gaps with mean `mean_us`.
    Poisson { mean_us: f64 },
    /// Fixed gap `floor(1e6 / rate)` µs (the first request arrives at one gap, not at 0).
    Constant { iat_us: u64 },
    /// Gamma gaps (shape k, scale θ µs); CV = 1/√k.
    Gamma { dist: Gamma<f64>, mean_us: f64 },
    /// Weibull gaps (shape k, scale λ µs).
    Weibull { dist: Weibull<f64>, shape: f64, scale_us: f64 },
}

impl ArrivalProcess {
    /// Weibull arrivals with shape k and scale λ µs.
    fn weibull(shape: f64, scale_us: f64, path: &str) -> Result<Self> {
        let dist = Weibull::new(scale_us, shape)
            .map_err(|e| WorkloadError::at(path, format!("invalid weibull parameters: {e}")))?;
        Ok(ArrivalProcess::Weibull { dist, shape, scale_us })
    }

    /// Poisson arrivals at `rate` req/s.
    pub fn poisson(rate: f64) -> Self {
        ArrivalProcess::Poisson { mean_us: 1e6 / rate }
    }

    /// Evenly spaced arrivals at `rate` req/s.
    pub fn constant(rate: f64) -> Self {
        ArrivalProcess::Constant { iat_us: ((1e6 / rate).floor() as u64).max(1) }
    }

    /// Builds the process of `spec` (default Poisson) at `rate` req/s (> 0); `path` prefixes
    /// error locations.
    pub fn from_spec(rate: f64, spec: Option<&ArrivalSpec>, path: &str) -> Result<Self> {
        let Some(spec) = spec else {
            return Ok(Self::poisson(rate));
        };
        let mean_us = 1e6 / rate;
        let cv = match spec.cv {
            None => 1.0,
            Some(cv) if cv.is_finite() && cv > 0.0 => cv,
            Some(cv) => {
                return Err(WorkloadError::at(format!("{path}.cv"), format!("must be > 0, got {cv}")));
            }
        };
        let check_unused = |name: &str, v: Option<f64>| -> Result<()> {
            match v {
                Some(_) => Err(WorkloadError::at(
                    format!("{path}.{name}"),
                    format!("only used by processes gamma and weibull, not {}", spec.process),
                )),
                None => Ok(()),
            }
        };
        match spec.process.as_str() {
            "poisson" => {
                check_unused("shape", spec.shape)?;
                check_unused("scale", spec.scale)?;
                Ok(Self::poisson(rate))
            }
            "constant" => {
                check_unused("shape", spec.shape)?;
                check_unused("scale", spec.scale)?;
                Ok(Self::constant(rate))
            }
            "gamma" => {
                let shape = match spec.shape {
                    Some(k) if k.is_finite() && k > 0.0 => k,
                    Some(k) => {
                        return Err(WorkloadError::at(
                            format!("{path}.shape"),
                            format!("must be > 0, got {k}"),
                        ));
                    }
                    None => 1.0 / (cv * cv),
                };
                let scale = match spec.scale {
                    Some(s) if s.is_finite() && s > crate::limits::MAX_TIME_US as f64 => {
                        return Err(WorkloadError::at(
                            format!("{path}.scale"),
                            format!(
                                "{} µs is beyond the longest simulated time, {}",
                                crate::limits::num(s),
                                crate::limits::max_time_text()
                            ),
                        ));
                    }
                    Some(s) if s.is_finite() && s > 0.0 => s,
                    Some(s) => {
                        return Err(WorkloadError::at(
                            format!("{path}.scale"),
                            format!("must be > 0 µs, got {s}"),
                        ));
                    }
                    None => mean_us / shape,
                };
                if shape < 0.01 {
                    // Numerically degenerate; the reference falls back to Poisson.
                    return Ok(Self::poisson(rate));
                }
                let dist = Gamma::new(shape, scale)
                    .map_err(|e| WorkloadError::at(path, format!("invalid gamma parameters: {e}")))?;
                Ok(ArrivalProcess::Gamma { dist, mean_us: shape * scale })
            }
            "weibull" => {
                // Fitted parameters (ServeGen): shape k and scale λ in µs, both or neither.
                match (spec.shape, spec.scale) {
                    (Some(k), Some(l)) => {
                        for (name, v) in [("shape", k), ("scale", l)] {
                            if !(v.is_finite() && v > 0.0) {
                                return Err(WorkloadError::at(
                                    format!("{path}.{name}"),
                                    format!("must be > 0, got {v}"),
                                ));
                            }
                        }
                        if l > crate::limits::MAX_TIME_US as f64 {
                            return Err(WorkloadError::at(
                                format!("{path}.scale"),
                                format!(
                                    "{} µs is beyond the longest simulated time, {}",
                                    crate::limits::num(l),
                                    crate::limits::max_time_text()
                                ),
                            ));
                        }
                        if k < 0.05 {
                            return Err(WorkloadError::at(
                                format!("{path}.shape"),
                                format!("weibull shape must be ≥ 0.05 (CV ≤ ~10^9), got {k}"),
                            ));
                        }
                        return ArrivalProcess::weibull(k, l, path);
                    }
                    (Some(_), None) => {
                        return Err(WorkloadError::at(
                            format!("{path}.scale"),
                            "required with shape for weibull",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(WorkloadError::at(
                            format!("{path}.shape"),
                            "required with scale for weibull",
                        ));
                    }
                    (None, None) => {}
                }
                if !(0.01..=10.4).contains(&cv) {
                    return Err(WorkloadError::at(
                        format!("{path}.cv"),
                        format!("weibull accepts cv in [0.01, 10.4], got {cv}"),
                    ));
                }
                let shape = weibull_shape_for_cv(cv);
                let scale_us = mean_us / gamma_fn(1.0 + 1.0 / shape);
                ArrivalProcess::weibull(shape, scale_us, path)
            }
            other => Err(WorkloadError::at(
                format!("{path}.process"),
                format!("unknown arrival process {other:?}; accepted: {PROCESSES}"),
            )),
        }
    }

    /// Mean inter-arrival time in µs.
    pub fn mean_us(&self) -> f64 {
        match self {
            ArrivalProcess::Poisson { mean_us } => *mean_us,
            ArrivalProcess::Constant { iat_us } => *iat_us as f64,
            ArrivalProcess::Gamma { mean_us, .. } => *mean_us,
            ArrivalProcess::Weibull { shape, scale_us, .. } => scale_us * gamma_fn(1.0 + 1.0 / shape),
        }
    }

    /// Draws the next gap in µs (≥ 1).
    pub fn next_iat_us(&self, rng: &mut StreamRng) -> u64 {
        let x = match self {
            ArrivalProcess::Poisson { mean_us } => exp1(rng) * mean_us,
            ArrivalProcess::Constant { iat_us } => return *iat_us,
            ArrivalProcess::Gamma { dist, .. } => dist.sample(rng),
            ArrivalProcess::Weibull { dist, .. } => dist.sample(rng),
        };
        to_us(x)
    }
}

/// Rounds a gap to whole µs, at least 1 (saturating for absurd values).
fn to_us(x: f64) -> u64 {
    if x.is_nan() || x < 1.0 {
        1
    } else if x >= u64::MAX as f64 {
        u64::MAX
    } else {
        x.round() as u64
    }
}

/// A standard exponential draw (`−ln U`, U ∈ (0, 1]). Inverse transform rather than
/// rand_distr's ziggurat `Exp1`: the distribution is the same, and one uniform per draw keeps
/// every seeded Poisson stream (and every documented figure) as it was.
pub(crate) fn exp1(rng: &mut StreamRng) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln()
}

/// Coefficient of variation of a Weibull with shape `k`.
fn weibull_cv(k: f64) -> f64 {
    let g1 = gamma_fn(1.0 + 1.0 / k);
    let g2 = gamma_fn(1.0 + 2.0 / k);
    (g2 / (g1 * g1) - 1.0).max(0.0).sqrt()
}

/// Shape k with `weibull_cv(k) = cv`, by bisection over [0.1, 100] (cv decreases with k).
pub fn weibull_shape_for_cv(cv: f64) -> f64 {
    let (mut lo, mut hi) = (0.1_f64, 100.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if weibull_cv(mid) > cv {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-3 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Γ(x) for x > 0 (Lanczos, g = 7; ~15 significant digits).
pub fn gamma_fn(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma_fn(1.0 - x))
    } else {
        let x = x - 1.0;
        let mut a = C[0];
        let t = x + G + 0.5;
        for (i, &c) in C.iter().enumerate().skip(1) {
            a += c / (x + i as f64);
        }
        (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    fn spec(process: &str, cv: Option<f64>) -> ArrivalSpec {
        ArrivalSpec { process: process.into(), cv, shape: None, scale: None }
    }

    fn gaps(p: &ArrivalProcess, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = seeded(seed);
        (0..n).map(|_| p.next_iat_us(&mut rng) as f64).collect()
    }

    fn mean_cv(x: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
        (m, v.sqrt() / m)
    }

    #[test]
    fn gamma_function_known_values() {
        assert!((gamma_fn(1.0) - 1.0).abs() < 1e-12);
        assert!((gamma_fn(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma_fn(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn constant_is_floor_of_period() {
        let p = ArrivalProcess::from_spec(3.0, Some(&spec("constant", None)), "a").unwrap();
        assert_eq!(gaps(&p, 3, 1), vec![333_333.0; 3]);
    }

    #[test]
    fn poisson_mean_rate_within_two_percent() {
        let p = ArrivalProcess::from_spec(10.0, None, "a").unwrap();
        let (m, cv) = mean_cv(&gaps(&p, 200_000, 7));
        assert!((m / 100_000.0 - 1.0).abs() < 0.02, "mean {m}");
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn gamma_cv4_is_burstier_than_poisson() {
        let g = ArrivalProcess::from_spec(10.0, Some(&spec("gamma", Some(4.0))), "a").unwrap();
        let p = ArrivalProcess::from_spec(10.0, None, "a").unwrap();
        let (gm, gcv) = mean_cv(&gaps(&g, 400_000, 3));
        let (_, pcv) = mean_cv(&gaps(&p, 400_000, 3));
        assert!((gm / 100_000.0 - 1.0).abs() < 0.1, "gamma mean {gm}");
        assert!(gcv > 3.0 && gcv > 2.0 * pcv, "gamma cv {gcv} vs poisson {pcv}");
        // Burstiness also shows in counts per 1-s window: index of dispersion ≫ 1.
        let mut rng = seeded(11);
        let mut t = 0u64;
        let mut counts = vec![0u32; 2000];
        loop {
            t += g.next_iat_us(&mut rng);
            let w = (t / 1_000_000) as usize;
            if w >= counts.len() {
                break;
            }
            counts[w] += 1;
        }
        let c: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        let (cm, ccv) = mean_cv(&c);
        let dispersion = ccv * ccv * cm;
        assert!(dispersion > 3.0, "index of dispersion {dispersion}");
    }

    #[test]
    fn weibull_matches_requested_cv_and_mean() {
        for cv in [0.5, 2.0] {
            let w = ArrivalProcess::from_spec(10.0, Some(&spec("weibull", Some(cv))), "a").unwrap();
            let (m, got) = mean_cv(&gaps(&w, 300_000, 5));
            assert!((m / 100_000.0 - 1.0).abs() < 0.05, "mean {m}");
            assert!((got / cv - 1.0).abs() < 0.1, "cv {got} want {cv}");
        }
        let e = ArrivalProcess::from_spec(1.0, Some(&spec("weibull", Some(20.0))), "clients[0].arrival")
            .unwrap_err();
        assert!(e.to_string().contains("clients[0].arrival.cv"), "{e}");
    }

    #[test]
    fn unknown_process_lists_accepted() {
        let e =
            ArrivalProcess::from_spec(1.0, Some(&spec("bursty", None)), "clients[2].arrival").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("clients[2].arrival.process: unknown arrival process"), "{s}");
        assert!(s.contains(PROCESSES));
    }

    #[test]
    fn gaps_are_at_least_one_microsecond() {
        let p = ArrivalProcess::from_spec(1e9, Some(&spec("gamma", Some(3.0))), "a").unwrap();
        assert!(gaps(&p, 10_000, 1).iter().all(|&g| g >= 1.0));
    }
}
