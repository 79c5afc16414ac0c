//! Scorers of weighted routing (`--routing-scorers name:weight,…`). One file per scorer;
//! [`ScorerKind`] is the registry. Every scorer rates every candidate in [0, 1], higher = better.

mod active_requests;
mod kv_utilization;
mod load_aware;
mod load_balance;
mod lora_affinity;
mod no_hit_lru;
mod precise_prefix_cache;
mod prefix_affinity;
mod queue_depth;
mod running_requests;
mod vllm_dp;

use serde::{Deserialize, Serialize};

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

/// A scorer of weighted routing (`--routing-scorers name:weight,…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScorerKind {
    /// Share of the prompt's leading blocks the instance's cache holds (as the router sees it).
    PrecisePrefixCache,
    /// Share of the prompt's leading blocks the router has sent to the instance before.
    PrefixAffinity,
    /// Cold prompts go to the least recently chosen instance.
    NoHitLru,
    /// Fewest queued + running + in-flight requests (min–max normalized).
    QueueDepth,
    /// Lowest KV-cache utilization.
    KvUtilization,
    /// 1 / (1 + load).
    LoadBalance,
    /// Fewest in-flight requests.
    ActiveRequests,
    /// Smallest running batch.
    RunningRequests,
    /// llm-d's load-aware scorer: 0.5 × (1 − queue depth / 128).
    LoadAware,
    /// vLLM's data-parallel balancing: fewest 4 × queued + running.
    VllmDp,
    /// Instances where the request's LoRA adapter is resident (no cold load).
    LoraAffinity,
}

/// One entry of a weighted profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorerWeight {
    pub name: ScorerKind,
    pub weight: f64,
}

/// The profile used when `weighted` routing is chosen without `--routing-scorers`.
pub const DEFAULT_PROFILE: &[ScorerWeight] = &[
    ScorerWeight { name: ScorerKind::PrecisePrefixCache, weight: 2.0 },
    ScorerWeight { name: ScorerKind::QueueDepth, weight: 1.0 },
    ScorerWeight { name: ScorerKind::KvUtilization, weight: 1.0 },
];

impl ScorerKind {
    pub fn build(self) -> Box<dyn Scorer> {
        match self {
            ScorerKind::PrecisePrefixCache => Box::new(precise_prefix_cache::PrecisePrefixCache),
            ScorerKind::PrefixAffinity => Box::new(prefix_affinity::PrefixAffinity::default()),
            ScorerKind::NoHitLru => Box::new(no_hit_lru::NoHitLru::default()),
            ScorerKind::QueueDepth => Box::new(queue_depth::QueueDepth),
            ScorerKind::KvUtilization => Box::new(kv_utilization::KvUtilization),
            ScorerKind::LoadBalance => Box::new(load_balance::LoadBalance),
            ScorerKind::ActiveRequests => Box::new(active_requests::ActiveRequests),
            ScorerKind::RunningRequests => Box::new(running_requests::RunningRequests),
            ScorerKind::LoadAware => Box::new(load_aware::LoadAware),
            ScorerKind::VllmDp => Box::new(vllm_dp::VllmDp),
            ScorerKind::LoraAffinity => Box::new(lora_affinity::LoraAffinity),
        }
    }
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
}
