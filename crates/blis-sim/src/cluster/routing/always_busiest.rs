//! Send to the instance with the largest effective load (first on ties). For testing: the
//! worst possible router.

use rand_pcg::Pcg64Mcg;

use super::{RouteDecision, RoutingPolicy};
use crate::cluster::{RouterView, RoutingRequest};

pub struct AlwaysBusiest;

impl RoutingPolicy for AlwaysBusiest {
    fn route(&mut self, _request: &RoutingRequest, view: &RouterView, _rng: &mut Pcg64Mcg) -> RouteDecision {
        let mut target = 0;
        for (i, s) in view.signals.iter().enumerate() {
            if s.effective_load() > view.signals[target].effective_load() {
                target = i;
            }
        }
        RouteDecision { target, scores: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn picks_first_busiest() {
        let r = spec(0, 32, SloClass::Standard);
        let req = RoutingRequest::of(&r, &[]);
        let oracle = SetOracle::default();
        let mut rng = blis_workload::rng::stream(42, "router");
        let s = [sig(1, 0, 0, 0.0), sig(0, 2, 1, 0.0), sig(3, 0, 0, 0.0)];
        assert_eq!(AlwaysBusiest.route(&req, &view(0, &s, &oracle), &mut rng).target, 1);
        let s = [sig(0, 0, 0, 0.0); 3];
        assert_eq!(AlwaysBusiest.route(&req, &view(0, &s, &oracle), &mut rng).target, 0);
    }
}
