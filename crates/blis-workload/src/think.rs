//! Think times of closed-loop clients: the pause between a response and the client's next
//! request, in the reference simulator's `--think-time-dist` syntax:
//!
//! * `constant:value=500ms`
//! * `lognormal:mu=2.0,sigma=0.6[,min=3s][,max=30s]`: `mu` and `sigma` describe ln(seconds),
//!   draws are rounded to whole µs and clamped to `[min, max]`.
//!
//! Times take a unit suffix `us` (or `µs`), `ms` or `s`; a bare number is milliseconds.

use std::fmt;

use rand_distr::{Distribution, StandardNormal};

use crate::limits::MAX_TIME_US;
use crate::rng::StreamRng;

/// A think-time distribution (µs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkTime {
    Constant {
        us: u64,
    },
    /// `exp(mu + sigma·Z)` seconds, clamped to `[min_us, max_us]`.
    LogNormal {
        mu: f64,
        sigma: f64,
        min_us: Option<u64>,
        max_us: Option<u64>,
    },
}

impl Default for ThinkTime {
    fn default() -> Self {
        ThinkTime::Constant { us: 0 }
    }
}

/// What `--think-time-dist` accepts, for error messages.
pub const THINK_TIME_SYNTAX: &str = "constant:value=DURATION or lognormal:mu=M,sigma=S[,min=DURATION][,max=DURATION] (durations in us, ms or s; \
     bare numbers are ms)";

impl ThinkTime {
    /// Parses the `--think-time-dist` syntax; the error says what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<ThinkTime, String> {
        let text = text.trim();
        let Some((kind, rest)) = text.split_once(':') else {
            return Err(format!("expected {THINK_TIME_SYNTAX}, got {text:?}"));
        };
        let mut params: Vec<(&str, &str)> = Vec::new();
        for kv in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(format!("{kind}: parameter {kv:?} is not key=value"));
            };
            let k = k.trim();
            if params.iter().any(|(p, _)| *p == k) {
                return Err(format!("{kind}: parameter {k:?} given twice"));
            }
            params.push((k, v.trim()));
        }
        let get = |k: &str| params.iter().find(|(p, _)| *p == k).map(|(_, v)| *v);
        let only = |accepted: &[&str]| -> Result<(), String> {
            match params.iter().find(|(k, _)| !accepted.contains(k)) {
                Some((k, _)) => {
                    Err(format!("{kind}: unknown parameter {k:?}; accepted: {}", accepted.join(", ")))
                }
                None => Ok(()),
            }
        };
        match kind.trim() {
            "constant" => {
                only(&["value"])?;
                let v = get("value").ok_or("constant: needs value=DURATION")?;
                Ok(ThinkTime::Constant { us: duration_us(v).map_err(|e| format!("constant: value: {e}"))? })
            }
            "lognormal" => {
                only(&["mu", "sigma", "min", "max"])?;
                let number = |k: &str| -> Result<f64, String> {
                    let v = get(k).ok_or_else(|| format!("lognormal: needs {k}=NUMBER"))?;
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("lognormal: {k} must be a finite number, got {v:?}"))
                };
                let mu = number("mu")?;
                let sigma = number("sigma")?;
                if sigma <= 0.0 {
                    return Err(format!("lognormal: sigma must be > 0, got {sigma}"));
                }
                // The median exp(mu) s must lie within simulated time.
                if mu > (MAX_TIME_US as f64 / 1e6).ln() {
                    return Err(format!(
                        "lognormal: mu = {mu} puts the median think time beyond 100 years (the longest simulated time)"
                    ));
                }
                let bound = |k: &str| -> Result<Option<u64>, String> {
                    get(k).map(|v| duration_us(v).map_err(|e| format!("lognormal: {k}: {e}"))).transpose()
                };
                let (min_us, max_us) = (bound("min")?, bound("max")?);
                if let (Some(lo), Some(hi)) = (min_us, max_us)
                    && lo > hi
                {
                    return Err(format!("lognormal: min ({lo} µs) must be ≤ max ({hi} µs)"));
                }
                Ok(ThinkTime::LogNormal { mu, sigma, min_us, max_us })
            }
            other => Err(format!("unknown think-time distribution {other:?}; accepted: constant, lognormal")),
        }
    }

    /// One draw in µs.
    pub fn sample(&self, rng: &mut StreamRng) -> u64 {
        match *self {
            ThinkTime::Constant { us } => us,
            ThinkTime::LogNormal { mu, sigma, min_us, max_us } => {
                let z: f64 = StandardNormal.sample(rng);
                let us = ((mu + sigma * z).exp() * 1e6).round();
                let us = if us.is_finite() { us.min(MAX_TIME_US as f64) as u64 } else { MAX_TIME_US };
                let us = min_us.map_or(us, |m| us.max(m));
                max_us.map_or(us, |m| us.min(m))
            }
        }
    }

    /// A representative value (the constant, or the clamped median) used to stagger the first
    /// requests of virtual users.
    pub fn typical_us(&self) -> u64 {
        match *self {
            ThinkTime::Constant { us } => us,
            ThinkTime::LogNormal { mu, min_us, max_us, .. } => {
                let us = (mu.exp() * 1e6).round().min(MAX_TIME_US as f64) as u64;
                let us = min_us.map_or(us, |m| us.max(m));
                max_us.map_or(us, |m| us.min(m))
            }
        }
    }

    /// Whether every draw is the same value (no randomness is consumed).
    pub fn is_constant(&self) -> bool {
        matches!(self, ThinkTime::Constant { .. })
    }
}

impl fmt::Display for ThinkTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ThinkTime::Constant { us } => write!(f, "constant:value={us}us"),
            ThinkTime::LogNormal { mu, sigma, min_us, max_us } => {
                write!(f, "lognormal:mu={mu},sigma={sigma}")?;
                if let Some(m) = min_us {
                    write!(f, ",min={m}us")?;
                }
                if let Some(m) = max_us {
                    write!(f, ",max={m}us")?;
                }
                Ok(())
            }
        }
    }
}

/// `500ms`, `3s`, `250us`/`250µs`, or a bare number of milliseconds → µs (≤ 100 years).
fn duration_us(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e6)
    } else {
        (t, 1e3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("expected a duration ≥ 0 (e.g. 500ms, 3s, 250us), got {text:?}"))?;
    let us = (v * scale).round();
    if us > MAX_TIME_US as f64 {
        return Err(format!("{text} is beyond 100 years, the longest simulated time"));
    }
    Ok(us as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn parses_the_reference_syntax() {
        assert_eq!(ThinkTime::parse("constant:value=500ms").unwrap(), ThinkTime::Constant { us: 500_000 });
        assert_eq!(ThinkTime::parse("constant:value=2").unwrap(), ThinkTime::Constant { us: 2_000 });
        assert_eq!(ThinkTime::parse("constant:value=3s").unwrap(), ThinkTime::Constant { us: 3_000_000 });
        assert_eq!(ThinkTime::parse("constant:value=7us").unwrap(), ThinkTime::Constant { us: 7 });
        let t = ThinkTime::parse("lognormal:mu=2.0,sigma=0.6,min=3s,max=30s").unwrap();
        assert_eq!(
            t,
            ThinkTime::LogNormal { mu: 2.0, sigma: 0.6, min_us: Some(3_000_000), max_us: Some(30_000_000) }
        );
        assert_eq!(ThinkTime::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn errors_say_what_is_accepted() {
        for (text, want) in [
            ("lognormal", "expected constant:value"),
            ("gamma:k=1", "unknown think-time distribution \"gamma\""),
            ("constant:value=-1s", "a duration ≥ 0"),
            ("constant:valu=1s", "unknown parameter \"valu\"; accepted: value"),
            ("lognormal:mu=1", "needs sigma"),
            ("lognormal:mu=1,sigma=0", "sigma must be > 0"),
            ("lognormal:mu=1,sigma=1,min=5s,max=1s", "min (5000000 µs) must be ≤ max"),
            ("constant:value=1,value=2", "given twice"),
            ("lognormal:mu=99,sigma=1", "beyond 100 years"),
        ] {
            let e = ThinkTime::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn lognormal_draws_are_clamped_and_centred_on_the_median() {
        let t = ThinkTime::parse("lognormal:mu=2.0,sigma=0.6,min=3s,max=30s").unwrap();
        let mut rng = seeded(5);
        let mut draws: Vec<u64> = (0..20_000).map(|_| t.sample(&mut rng)).collect();
        assert!(draws.iter().all(|&d| (3_000_000..=30_000_000).contains(&d)));
        draws.sort_unstable();
        let median = draws[draws.len() / 2] as f64 / 1e6;
        assert!((median / 2f64.exp() - 1.0).abs() < 0.03, "median {median} s");
        assert_eq!(t.typical_us(), (2f64.exp() * 1e6).round() as u64);
    }
}
