//! `load-aware`: an empty queue scores 0.5; otherwise `0.5·(1 − min(QD, 128)/128)`, in [0, 0.5].

use super::Scorer;
use crate::cluster::{RouterView, RoutingRequest};

/// Queue depth at which the score reaches 0.
const SATURATION_DEPTH: u32 = 128;

pub struct LoadAware;

impl Scorer for LoadAware {
    fn score(&mut self, _request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        for (o, s) in out.iter_mut().zip(view.signals) {
            *o = if s.queue_depth == 0 {
                0.5
            } else {
                let qd = f64::from(s.queue_depth.min(SATURATION_DEPTH));
                0.5 * (1.0 - qd / f64::from(SATURATION_DEPTH))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn range_is_zero_to_half() {
        let s = [sig(0, 50, 50, 0.9), sig(64, 0, 0, 0.0), sig(128, 0, 0, 0.0), sig(1000, 0, 0, 0.0)];
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 4];
        LoadAware.score(&RoutingRequest::of(&r, &[]), &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [0.5, 0.25, 0.0, 0.0]);
    }
}
