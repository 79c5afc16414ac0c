//! Weighted scoring: composite = Σ_i w_i·clamp01(score_i) with weights normalized to sum 1;
//! the argmax wins, exact ties broken uniformly at random. The composite scores are returned
//! so decision traces see what the policy saw (its regret is 0 by construction).

use rand_pcg::Pcg64Mcg;

use super::{RouteDecision, RoutingConfig, RoutingPolicy, pick_uniform};
use crate::cluster::scorer::{self, Scorer};
use crate::cluster::{RouterView, RoutingRequest};

pub struct Weighted {
    scorers: Vec<(Box<dyn Scorer>, f64)>,
    needs_hashes: bool,
    buf: Vec<f64>,
    ties: Vec<usize>,
}

impl Weighted {
    pub fn new(config: &RoutingConfig) -> Result<Self, String> {
        let profile: Vec<(String, f64)> = if config.scorers.is_empty() {
            scorer::DEFAULT_PROFILE.iter().map(|&(n, w)| (n.to_string(), w)).collect()
        } else {
            config.scorers.clone()
        };
        let mut total = 0.0;
        for (i, (name, w)) in profile.iter().enumerate() {
            if !(w.is_finite() && *w > 0.0) {
                return Err(format!(
                    "--routing-scorers: weight of '{name}' must be a finite number > 0, got {w}"
                ));
            }
            if profile[..i].iter().any(|(n, _)| n == name) {
                return Err(format!("--routing-scorers: '{name}' appears twice"));
            }
            total += w;
        }
        let mut scorers = Vec::with_capacity(profile.len());
        for (name, w) in &profile {
            scorers.push((scorer::build(name, config)?, w / total));
        }
        let needs_hashes = scorers.iter().any(|(s, _)| s.needs_prompt_hashes());
        Ok(Self { scorers, needs_hashes, buf: Vec::new(), ties: Vec::new() })
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
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    fn config(scorers: &[(&str, f64)]) -> RoutingConfig {
        RoutingConfig {
            scorers: scorers.iter().map(|&(n, w)| (n.to_string(), w)).collect(),
            block_size_tokens: 16,
        }
    }

    #[test]
    fn combines_normalized_weights() {
        let mut p = Weighted::new(&config(&[("queue-depth", 3.0), ("kv-utilization", 1.0)])).unwrap();
        assert!(!p.needs_prompt_hashes());
        let r = spec(0, 32, SloClass::Standard);
        let req = RoutingRequest { spec: &r, prompt_hashes: &[] };
        let s = [sig(0, 0, 0, 1.0), sig(4, 0, 0, 0.0)];
        let mut rng = blis_workload::rng::stream(42, "router");
        let d = p.route(&req, &view(0, &s, &SetOracle::default()), &mut rng);
        assert_eq!(d.target, 0);
        assert_eq!(d.scores, Some(vec![0.75, 0.25]));
    }

    #[test]
    fn default_profile_is_prefix_aware() {
        let mut p = Weighted::new(&config(&[])).unwrap();
        assert!(p.needs_prompt_hashes());
        let r = spec(0, 64, SloClass::Standard);
        let req = RoutingRequest { spec: &r, prompt_hashes: &[1, 2, 3, 4] };
        let s = [sig(0, 0, 0, 0.0), sig(1, 0, 0, 0.0), sig(0, 0, 0, 0.0)];
        let oracle = SetOracle(vec![Default::default(), [1, 2, 3, 4].into(), Default::default()]);
        let mut rng = blis_workload::rng::stream(42, "router");
        let d = p.route(&req, &view(0, &s, &oracle), &mut rng);
        // ppc: [0, 1, 0]·0.5, qd: [1, 0, 1]·0.25, kv: 1·0.25
        assert_eq!(d.target, 1);
        assert_eq!(d.scores, Some(vec![0.5, 0.75, 0.5]));
    }

    #[test]
    fn bad_profiles_are_errors() {
        let e = Weighted::new(&config(&[("nope", 1.0)])).err().unwrap();
        assert!(e.contains("unknown scorer 'nope'") && e.contains("precise-prefix-cache"), "{e}");
        assert!(Weighted::new(&config(&[("queue-depth", 0.0)])).is_err());
        assert!(Weighted::new(&config(&[("queue-depth", f64::NAN)])).is_err());
        assert!(Weighted::new(&config(&[("queue-depth", 1.0), ("queue-depth", 2.0)])).is_err());
    }

    #[test]
    fn clamps_scores() {
        assert_eq!(clamp01(-1.0), 0.0);
        assert_eq!(clamp01(2.0), 1.0);
        assert_eq!(clamp01(f64::NAN), 0.0);
        assert_eq!(clamp01(0.3), 0.3);
    }
}
