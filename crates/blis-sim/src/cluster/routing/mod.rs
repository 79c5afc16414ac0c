//! Routing policies (`--routing-policy`). One file per policy; [`build`] is the registry.

mod always_busiest;
mod least_loaded;
mod round_robin;
mod weighted;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;

use super::{RouterView, RoutingRequest};

/// A routing choice, with the per-candidate scores when the policy scores candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDecision {
    pub target: usize,
    /// One score per candidate (higher is better), for decision traces and regret.
    pub scores: Option<Vec<f64>>,
}

/// Picks the instance a request goes to.
pub trait RoutingPolicy: Send {
    fn route(&mut self, request: &RoutingRequest, view: &RouterView, rng: &mut Pcg64Mcg) -> RouteDecision;

    /// Whether the policy reads prompt block hashes (prefix-aware scorers).
    fn needs_prompt_hashes(&self) -> bool {
        false
    }

    /// Whether decisions read the instances' signals or caches (beyond their number). A
    /// policy answering `false` lets the engine simulate the instances independently of each
    /// other; the view it is handed then carries idle signals. The default is always correct.
    fn reads_instance_state(&self) -> bool {
        true
    }
}

/// Tunables of the routing policies.
#[derive(Debug, Clone, Default)]
pub struct RoutingConfig {
    /// `--routing-scorers` as (name, weight) pairs; empty = the default profile.
    pub scorers: Vec<(String, f64)>,
    pub block_size_tokens: u32,
}

/// Accepted `--routing-policy` names.
pub const NAMES: &[&str] = &["round-robin", "least-loaded", "weighted", "always-busiest"];

pub fn build(name: &str, config: &RoutingConfig) -> Result<Box<dyn RoutingPolicy>, String> {
    // Scorer names are checked even when the policy does not use them, so a typo is never ignored.
    for (scorer, _) in &config.scorers {
        super::scorer::build(scorer, config)?;
    }
    Ok(match name {
        "round-robin" => Box::new(round_robin::RoundRobin::default()),
        "least-loaded" => Box::new(least_loaded::LeastLoaded::default()),
        "weighted" => Box::new(weighted::Weighted::new(config)?),
        "always-busiest" => Box::new(always_busiest::AlwaysBusiest),
        _ => {
            return Err(format!(
                "--routing-policy: unknown policy '{name}' (accepted: {})",
                NAMES.join(", ")
            ));
        }
    })
}

/// One of `candidates`, uniformly at random (no draw when there is only one).
pub(crate) fn pick_uniform(candidates: &[usize], rng: &mut Pcg64Mcg) -> usize {
    match candidates {
        [] => panic!("no candidate to pick from"),
        [only] => *only,
        _ => candidates[rng.random_range(0..candidates.len())],
    }
}
