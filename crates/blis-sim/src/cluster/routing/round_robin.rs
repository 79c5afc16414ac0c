//! Cycle through the candidates in order, ignoring load.

use rand_pcg::Pcg64Mcg;

use super::{RouteDecision, RoutingPolicy};
use crate::cluster::{RouterView, RoutingRequest};

#[derive(Default)]
pub struct RoundRobin {
    counter: usize,
}

impl RoutingPolicy for RoundRobin {
    fn route(&mut self, _request: &RoutingRequest, view: &RouterView, _rng: &mut Pcg64Mcg) -> RouteDecision {
        let target = self.counter % view.signals.len();
        self.counter += 1;
        RouteDecision { target, scores: None }
    }

    fn reads_instance_state(&self) -> bool {
        false
    }
}
