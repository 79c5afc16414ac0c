//! Routing policies (`--routing-policy`). One file per policy; [`RoutingKind`] is the registry.

mod always_busiest;
mod least_loaded;
mod round_robin;
mod weighted;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use super::scorer::ScorerWeight;
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

/// `--routing-policy`: which instance an admitted request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingKind {
    /// Instances in turn.
    RoundRobin,
    /// The instance with the smallest queue + batch + in-flight load.
    LeastLoaded,
    /// The best weighted sum of scorers (`--routing-scorers`).
    Weighted,
    /// The most loaded instance (a pathological policy, for experiments).
    AlwaysBusiest,
}

/// A policy and its tunables.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    pub kind: RoutingKind,
    /// The weighted profile; empty = [`scorer::DEFAULT_PROFILE`](super::scorer::DEFAULT_PROFILE).
    pub scorers: Vec<ScorerWeight>,
    pub block_size_tokens: u32,
}

impl RoutingConfig {
    pub fn build(&self) -> Box<dyn RoutingPolicy> {
        match self.kind {
            RoutingKind::RoundRobin => Box::new(round_robin::RoundRobin::default()),
            RoutingKind::LeastLoaded => Box::new(least_loaded::LeastLoaded::default()),
            RoutingKind::Weighted => Box::new(weighted::Weighted::new(self)),
            RoutingKind::AlwaysBusiest => Box::new(always_busiest::AlwaysBusiest),
        }
    }
}

/// One of `candidates`, uniformly at random (no draw when there is only one).
pub(crate) fn pick_uniform(candidates: &[usize], rng: &mut Pcg64Mcg) -> usize {
    match candidates {
        [] => panic!("no candidate to pick from"),
        [only] => *only,
        _ => candidates[rng.random_range(0..candidates.len())],
    }
}
