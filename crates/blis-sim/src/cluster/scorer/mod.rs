//! Scorers of weighted routing (`--routing-scorers name:weight,…`). One file per scorer;
//! [`build`] is the registry. Every scorer rates every candidate in [0, 1], higher = better.

mod active_requests;
mod kv_utilization;
mod load_aware;
mod load_balance;
mod no_hit_lru;
mod precise_prefix_cache;
mod prefix_affinity;
mod queue_depth;
mod running_requests;
mod vllm_dp;

use super::routing::RoutingConfig;
use super::{RouterView, RoutingRequest};

/// Rates candidates for one routing decision.
pub trait Scorer: Send {
    /// Writes one score per candidate (`out.len() == view.signals.len()`).
    fn score(&mut self, request: &RoutingRequest, view: &RouterView, out: &mut [f64]);

    /// Told the chosen instance after every decision (stateful scorers update here).
    fn observe(&mut self, _request: &RoutingRequest, _target: usize) {}

    /// Whether the scorer reads the prompt's block hashes.
    fn needs_prompt_hashes(&self) -> bool {
        false
    }
}

/// Accepted scorer names.
pub const NAMES: &[&str] = &[
    "precise-prefix-cache",
    "prefix-affinity",
    "no-hit-lru",
    "queue-depth",
    "kv-utilization",
    "load-balance",
    "active-requests",
    "running-requests",
    "load-aware",
    "vllm-dp",
];

/// The profile used when `weighted` routing is chosen without `--routing-scorers`.
pub const DEFAULT_PROFILE: &[(&str, f64)] =
    &[("precise-prefix-cache", 2.0), ("queue-depth", 1.0), ("kv-utilization", 1.0)];

pub fn build(name: &str, _config: &RoutingConfig) -> Result<Box<dyn Scorer>, String> {
    Ok(match name {
        "precise-prefix-cache" => Box::new(precise_prefix_cache::PrecisePrefixCache),
        "prefix-affinity" => Box::new(prefix_affinity::PrefixAffinity::default()),
        "no-hit-lru" => Box::new(no_hit_lru::NoHitLru::default()),
        "queue-depth" => Box::new(queue_depth::QueueDepth),
        "kv-utilization" => Box::new(kv_utilization::KvUtilization),
        "load-balance" => Box::new(load_balance::LoadBalance),
        "active-requests" => Box::new(active_requests::ActiveRequests),
        "running-requests" => Box::new(running_requests::RunningRequests),
        "load-aware" => Box::new(load_aware::LoadAware),
        "vllm-dp" => Box::new(vllm_dp::VllmDp),
        _ => {
            return Err(format!(
                "--routing-scorers: unknown scorer '{name}' (accepted: {})",
                NAMES.join(", ")
            ));
        }
    })
}

/// Inverted min–max normalization: the smallest raw value scores 1, the largest 0; all equal → 1.
pub(crate) fn min_max_inverted(raw: impl Iterator<Item = f64>, out: &mut [f64]) {
    let (min, max) = fill(raw, out);
    for o in out.iter_mut() {
        *o = if max > min { (max - *o) / (max - min) } else { 1.0 };
    }
}

/// Upward min–max normalization: the largest raw value scores 1, the smallest 0; all equal → 1.
pub(crate) fn min_max_upward(raw: impl Iterator<Item = f64>, out: &mut [f64]) {
    let (min, max) = fill(raw, out);
    for o in out.iter_mut() {
        *o = if max > min { (*o - min) / (max - min) } else { 1.0 };
    }
}

/// Writes the raw values into `out` (each computed once: some read cold prefix indexes) and
/// returns their (min, max).
fn fill(raw: impl Iterator<Item = f64>, out: &mut [f64]) -> (f64, f64) {
    for (o, x) in out.iter_mut().zip(raw) {
        *o = x;
    }
    out.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_edges() {
        let mut out = [0.0; 3];
        min_max_inverted([2.0, 4.0, 6.0].into_iter(), &mut out);
        assert_eq!(out, [1.0, 0.5, 0.0]);
        min_max_upward([2.0, 4.0, 6.0].into_iter(), &mut out);
        assert_eq!(out, [0.0, 0.5, 1.0]);
        min_max_inverted([3.0; 3].into_iter(), &mut out);
        assert_eq!(out, [1.0; 3]);
        min_max_upward([0.0; 3].into_iter(), &mut out);
        assert_eq!(out, [1.0; 3]);
    }

    #[test]
    fn registry_knows_every_name_and_rejects_others() {
        let config = RoutingConfig::default();
        for name in NAMES {
            assert!(build(name, &config).is_ok(), "{name}");
        }
        let err = build("nope", &config).err().unwrap();
        assert!(err.starts_with("--routing-scorers: unknown scorer 'nope'") && err.contains("queue-depth"));
    }
}
