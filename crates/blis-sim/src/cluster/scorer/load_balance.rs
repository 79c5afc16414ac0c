//! `load-balance`: `1/(1 + EffectiveLoad)`.

use super::Scorer;
use crate::cluster::{RouterView, RoutingRequest};

pub struct LoadBalance;

impl Scorer for LoadBalance {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        for (o, s) in out.iter_mut().zip(view.signals) {
            *o = 1.0 / (1.0 + s.effective_load() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn idle_scores_one() {
        let s = [sig(0, 0, 0, 0.5), sig(1, 1, 1, 0.0), sig(0, 0, 1, 0.0)];
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 3];
        LoadBalance.score(&RoutingRequest::of(&r, &[]), &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0, 0.25, 0.5]);
    }
}
