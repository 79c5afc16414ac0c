//! `running-requests`: inverted min–max over batch size; all equal → 1.

use super::{Scorer, min_max_inverted};
use crate::cluster::{RouterView, RoutingRequest};

pub struct RunningRequests;

impl Scorer for RunningRequests {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        min_max_inverted(view.signals.iter().map(|s| f64::from(s.batch_size)), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn smallest_batch_scores_one() {
        let s = [sig(9, 10, 0, 0.0), sig(0, 30, 0, 0.0), sig(0, 20, 5, 0.0)];
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 3];
        let req = RoutingRequest::of(&r, &[]);
        RunningRequests.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 0.0, 0.5]);
        let s = [sig(1, 7, 0, 0.0), sig(2, 7, 0, 0.0)];
        let mut out = [0.0; 2];
        RunningRequests.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 1.0]);
    }
}
