//! `queue-depth`: inverted min–max over queue depth, `(max − q)/(max − min)`; all equal → 1.

use super::{Scorer, min_max_inverted};
use crate::cluster::{RouterView, RoutingRequest};

pub struct QueueDepth;

impl Scorer for QueueDepth {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        min_max_inverted(view.signals.iter().map(|s| f64::from(s.queue_depth)), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn shortest_queue_scores_one() {
        let s = [sig(4, 0, 0, 0.0), sig(0, 9, 9, 0.9), sig(2, 0, 0, 0.0)];
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 3];
        QueueDepth.score(&RoutingRequest::of(&r, &[]), &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [0.0, 1.0, 0.5]);
        let s = [sig(3, 0, 0, 0.0); 2];
        let mut out = [0.0; 2];
        QueueDepth.score(&RoutingRequest::of(&r, &[]), &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 1.0]);
    }
}
