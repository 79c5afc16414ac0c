//! `active-requests`: `maxIF = max InFlight`; an instance with nothing in flight (or when nothing
//! is in flight anywhere) scores 1, otherwise `(maxIF − IF)/maxIF` (so all equal non-zero → 0).

use super::Scorer;
use crate::cluster::{RouterView, RoutingRequest};

pub struct ActiveRequests;

impl Scorer for ActiveRequests {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        let max = view.signals.iter().map(|s| s.in_flight).max().unwrap_or(0);
        for (o, s) in out.iter_mut().zip(view.signals) {
            *o = if s.in_flight == 0 || max == 0 {
                1.0
            } else {
                f64::from(max - s.in_flight) / f64::from(max)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    fn run(s: &[crate::cluster::InstanceSignals]) -> Vec<f64> {
        let r = spec(0, 32, SloClass::Standard);
        let mut out = vec![0.0; s.len()];
        ActiveRequests.score(&RoutingRequest::of(&r, &[]), &view(0, s, &SetOracle::default()), &mut out);
        out
    }

    #[test]
    fn formula_and_edges() {
        assert_eq!(run(&[sig(0, 0, 0, 0.0), sig(0, 0, 4, 0.0), sig(0, 0, 1, 0.0)]), [1.0, 0.0, 0.75]);
        assert_eq!(run(&[sig(5, 5, 0, 0.0), sig(0, 0, 0, 0.0)]), [1.0, 1.0]);
        assert_eq!(run(&[sig(0, 0, 3, 0.0), sig(0, 0, 3, 0.0)]), [0.0, 0.0]);
    }
}
