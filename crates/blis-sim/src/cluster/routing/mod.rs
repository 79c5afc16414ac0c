//! Routing policies (`--routing-policy`). One file per policy; [`build`] is the registry.

mod round_robin;

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
}

/// Tunables of the routing policies.
#[derive(Debug, Clone, Default)]
pub struct RoutingConfig {
    /// `--routing-scorers` as (name, weight) pairs; empty = the default profile.
    pub scorers: Vec<(String, f64)>,
    pub block_size_tokens: u32,
}

/// Accepted `--routing-policy` names.
pub const NAMES: &[&str] = &["round-robin"];

pub fn build(name: &str, _config: &RoutingConfig) -> Result<Box<dyn RoutingPolicy>, String> {
    Ok(match name {
        "round-robin" => Box::new(round_robin::RoundRobin::default()),
        _ => {
            return Err(format!(
                "--routing-policy: unknown policy '{name}' (accepted: {})",
                NAMES.join(", ")
            ));
        }
    })
}
