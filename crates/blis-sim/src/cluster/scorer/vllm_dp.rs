//! `vllm-dp`: vLLM's data-parallel balancing, raw = `4·QueueDepth + BatchSize`, inverted
//! min–max; all equal → 1.

use super::{Scorer, min_max_inverted};
use crate::cluster::{RouterView, RoutingRequest};

pub struct VllmDp;

impl Scorer for VllmDp {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        let raw = view.signals.iter().map(|s| 4.0 * f64::from(s.queue_depth) + f64::from(s.batch_size));
        min_max_inverted(raw, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn waiting_weighs_four_times_running() {
        // raw = 4, 8, 4+4=8 → min 4, max 8
        let s = [sig(1, 0, 0, 0.0), sig(0, 8, 0, 0.0), sig(1, 4, 0, 0.0)];
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 3];
        let req = RoutingRequest::of(&r, &[]);
        VllmDp.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 0.0, 0.0]);
        let s = [sig(1, 4, 0, 0.0), sig(2, 0, 0, 0.0)];
        let mut out = [0.0; 2];
        VllmDp.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 1.0]);
    }
}
