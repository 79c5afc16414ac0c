//! Weighted scoring: composite = Σ_i w_i·clamp01(score_i) with weights normalized to sum 1;
//! the argmax wins, exact ties broken uniformly at random. The composite scores are returned
//! so decision traces see what the policy saw (its regret is 0 by construction).

use rand_pcg::Pcg64Mcg;

use super::{RouteDecision, RoutingConfig, RoutingPolicy, pick_uniform};
use crate::cluster::scorer::{DEFAULT_PROFILE, Scorer};
use crate::cluster::{RouterView, RoutingRequest};

pub struct Weighted {
    scorers: Vec<(Box<dyn Scorer>, f64)>,
    needs_hashes: bool,
    buf: Vec<f64>,
    ties: Vec<usize>,
}

impl Weighted {
    /// `config.scorers` must be a valid profile (distinct scorers, finite positive weights);
    /// the run configuration checks that before building.
    pub fn new(config: &RoutingConfig) -> Self {
        let profile = if config.scorers.is_empty() { DEFAULT_PROFILE } else { &config.scorers[..] };
        let total: f64 = profile.iter().map(|s| s.weight).sum();
        assert!(total.is_finite() && total > 0.0, "invalid weighted profile {profile:?}");
        let scorers: Vec<(Box<dyn Scorer>, f64)> =
            profile.iter().map(|s| (s.name.build(), s.weight / total)).collect();
        let needs_hashes = scorers.iter().any(|(s, _)| s.needs_prompt_hashes());
        Self { scorers, needs_hashes, buf: Vec::new(), ties: Vec::new() }
    }
}

fn clamp01(x: f64) -> f64 {
    if x >= 0.0 { x.min(1.0) } else { 0.0 } // NaN → 0
}

impl RoutingPolicy for Weighted {
    fn route(&mut self, request: &RoutingRequest, view: &RouterView, rng: &mut Pcg64Mcg) -> RouteDecision {
        let n = view.signals.len();
        let mut composite = vec![0.0; n];
        self.buf.resize(n, 0.0);
        for (scorer, w) in &mut self.scorers {
            scorer.score(request, view, &mut self.buf);
            for (c, &s) in composite.iter_mut().zip(&self.buf) {
                *c += *w * clamp01(s);
            }
        }
        let best = composite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        self.ties.clear();
        self.ties.extend((0..n).filter(|&i| composite[i] == best));
        let target = pick_uniform(&self.ties, rng);
        for (scorer, _) in &mut self.scorers {
            scorer.observe(request, target);
        }
        RouteDecision { target, scores: Some(composite) }
    }

    fn needs_prompt_hashes(&self) -> bool {
        self.needs_hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::scorer::{ScorerKind, ScorerWeight};
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    fn config(scorers: &[(ScorerKind, f64)]) -> RoutingConfig {
        RoutingConfig {
            kind: super::super::RoutingKind::Weighted,
            scorers: scorers.iter().map(|&(name, weight)| ScorerWeight { name, weight }).collect(),
            block_size_tokens: 16,
        }
    }

    #[test]
    fn combines_normalized_weights() {
        let mut p =
            Weighted::new(&config(&[(ScorerKind::QueueDepth, 3.0), (ScorerKind::KvUtilization, 1.0)]));
        assert!(!p.needs_prompt_hashes());
        let r = spec(0, 32, SloClass::Standard);
        let req = RoutingRequest::of(&r, &[]);
        let s = [sig(0, 0, 0, 1.0), sig(4, 0, 0, 0.0)];
        let mut rng = blis_workload::rng::stream(42, "router");
        let d = p.route(&req, &view(0, &s, &SetOracle::default()), &mut rng);
        assert_eq!(d.target, 0);
        assert_eq!(d.scores, Some(vec![0.75, 0.25]));
    }

    #[test]
    fn default_profile_is_prefix_aware() {
        let mut p = Weighted::new(&config(&[]));
        assert!(p.needs_prompt_hashes());
        let r = spec(0, 64, SloClass::Standard);
        let req = RoutingRequest::of(&r, &[1, 2, 3, 4]);
        let s = [sig(0, 0, 0, 0.0), sig(1, 0, 0, 0.0), sig(0, 0, 0, 0.0)];
        let oracle = SetOracle(vec![Default::default(), [1, 2, 3, 4].into(), Default::default()]);
        let mut rng = blis_workload::rng::stream(42, "router");
        let d = p.route(&req, &view(0, &s, &oracle), &mut rng);
        // ppc: [0, 1, 0]·0.5, qd: [1, 0, 1]·0.25, kv: 1·0.25
        assert_eq!(d.target, 1);
        assert_eq!(d.scores, Some(vec![0.5, 0.75, 0.5]));
    }

    #[test]
    fn clamps_scores() {
        assert_eq!(clamp01(-1.0), 0.0);
        assert_eq!(clamp01(2.0), 1.0);
        assert_eq!(clamp01(f64::NAN), 0.0);
        assert_eq!(clamp01(0.3), 0.3);
    }
}
