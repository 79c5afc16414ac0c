//! `kv-utilization`: `1 − KVUtilization` (used blocks / total blocks).

use super::Scorer;
use crate::cluster::{RouterView, RoutingRequest};

pub struct KvUtilization;

impl Scorer for KvUtilization {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        for (o, s) in out.iter_mut().zip(view.signals) {
            *o = 1.0 - s.kv_utilization;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn free_cache_scores_high() {
        let s = [sig(0, 0, 0, 0.0), sig(0, 0, 0, 0.25), sig(0, 0, 0, 1.0)];
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 3];
        KvUtilization.score(&RoutingRequest::of(&r, &[]), &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 0.75, 0.0]);
    }
}
