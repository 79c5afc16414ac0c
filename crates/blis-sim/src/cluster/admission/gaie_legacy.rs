//! GAIE legacy admission: non-sheddable classes (admission priority ≥ 0) are always admitted;
//! sheddable ones are rejected while the pool is saturated, `sat >= 1` with
//! `sat = mean_i max(QD_i/qd_threshold, KVUtil_i/kv_threshold)` (no instances ⇒ sat = 1).

use super::{AdmissionConfig, AdmissionPolicy, Verdict};
use crate::cluster::{RouterView, RoutingRequest};
use crate::priority::SloPriorities;

pub struct GaieLegacy {
    qd_threshold: f64,
    kv_threshold: f64,
    priorities: SloPriorities,
}

impl GaieLegacy {
    pub fn new(config: &AdmissionConfig) -> Self {
        Self {
            qd_threshold: config.gaie_qd_threshold,
            kv_threshold: config.gaie_kv_threshold,
            priorities: config.slo_priorities,
        }
    }

    fn saturation(&self, view: &RouterView) -> f64 {
        if view.signals.is_empty() {
            return 1.0;
        }
        let sum: f64 = view
            .signals
            .iter()
            .map(|s| (f64::from(s.queue_depth) / self.qd_threshold).max(s.kv_utilization / self.kv_threshold))
            .sum();
        sum / view.signals.len() as f64
    }
}

impl AdmissionPolicy for GaieLegacy {
    fn decide(&mut self, request: &RoutingRequest, view: &RouterView) -> Verdict {
        if !self.priorities.sheddable(request.slo_class) || self.saturation(view) < 1.0 {
            Verdict::Admit
        } else {
            Verdict::Reject("gaie-saturated")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn sheds_sheddable_when_saturated() {
        let mut p = GaieLegacy::new(&super::super::test_config(super::super::AdmissionKind::GaieLegacy));
        let o = SetOracle::default();
        // max(5/5, 0) = 1 and max(0, 0.8/0.8) = 1 → sat = 1.
        let saturated = [sig(5, 0, 0, 0.0), sig(0, 0, 0, 0.8)];
        // max(4/5, 0.4/0.8) = 0.8, max(0, 0) = 0 → sat = 0.4.
        let calm = [sig(4, 0, 0, 0.4), sig(0, 9, 9, 0.0)];
        for class in SloClass::ALL {
            let r = spec(0, 8, class);
            let req = RoutingRequest::of(&r, &[]);
            assert_eq!(p.decide(&req, &view(0, &calm, &o)), Verdict::Admit);
            let sheddable = SloPriorities::GAIE.sheddable(class);
            let expect = if sheddable { Verdict::Reject("gaie-saturated") } else { Verdict::Admit };
            assert_eq!(p.decide(&req, &view(0, &saturated, &o)), expect, "{class:?}");
            // No instances ⇒ saturated.
            assert_eq!(p.decide(&req, &view(0, &[], &o)), expect, "{class:?}");
        }
    }
}
