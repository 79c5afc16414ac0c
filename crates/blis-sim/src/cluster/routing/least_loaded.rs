//! Send to the instance with the smallest effective load (queue depth + batch size + in
//! flight); ties are broken uniformly at random with the router's generator.

use rand_pcg::Pcg64Mcg;

use super::{RouteDecision, RoutingPolicy, pick_uniform};
use crate::cluster::{RouterView, RoutingRequest};

#[derive(Default)]
pub struct LeastLoaded {
    ties: Vec<usize>,
}

impl RoutingPolicy for LeastLoaded {
    fn route(&mut self, _request: &RoutingRequest, view: &RouterView, rng: &mut Pcg64Mcg) -> RouteDecision {
        let min = view.signals.iter().map(|s| s.effective_load()).min().expect("at least one candidate");
        self.ties.clear();
        self.ties.extend((0..view.signals.len()).filter(|&i| view.signals[i].effective_load() == min));
        RouteDecision { target: pick_uniform(&self.ties, rng), scores: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn picks_least_loaded_and_spreads_ties() {
        let r = spec(0, 32, SloClass::Standard);
        let req = RoutingRequest::of(&r, &[]);
        let oracle = SetOracle::default();
        let mut rng = blis_workload::rng::stream(42, "router");
        let mut p = LeastLoaded::default();
        let s = [sig(1, 1, 0, 0.0), sig(0, 0, 1, 0.9), sig(3, 0, 0, 0.0)];
        assert_eq!(p.route(&req, &view(0, &s, &oracle), &mut rng).target, 1);
        let s = [sig(1, 0, 0, 0.0), sig(5, 0, 0, 0.0), sig(0, 0, 1, 0.0), sig(0, 1, 0, 0.0)];
        let mut seen = [0u32; 4];
        for _ in 0..400 {
            seen[p.route(&req, &view(0, &s, &oracle), &mut rng).target] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 80 && seen[2] > 80 && seen[3] > 80, "{seen:?}");
    }
}
