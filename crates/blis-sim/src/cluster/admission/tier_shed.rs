//! Tier shedding: while the busiest instance's load (queue depth + batch size + in flight) is
//! above `threshold`, requests whose class has admission priority below `min_priority` are shed.

use super::{AdmissionConfig, AdmissionPolicy, Verdict};
use crate::cluster::{RouterView, RoutingRequest};
use crate::priority::SloPriorities;

pub struct TierShed {
    threshold: u64,
    min_priority: i32,
    priorities: SloPriorities,
}

impl TierShed {
    pub fn new(config: &AdmissionConfig) -> Self {
        Self {
            threshold: config.tier_shed_threshold,
            min_priority: config.tier_shed_min_priority,
            priorities: config.slo_priorities,
        }
    }
}

impl AdmissionPolicy for TierShed {
    fn decide(&mut self, request: &RoutingRequest, view: &RouterView) -> Verdict {
        let max_load = view.signals.iter().map(|s| s.effective_load()).max().unwrap_or(0);
        if max_load <= self.threshold || self.priorities.admission(request.slo_class) >= self.min_priority {
            Verdict::Admit
        } else {
            Verdict::Reject("tier-shed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn sheds_low_tiers_only_under_load() {
        let config = AdmissionConfig {
            tier_shed_threshold: 4,
            ..super::super::test_config(super::super::AdmissionKind::TierShed)
        };
        let mut p = TierShed::new(&config);
        let o = SetOracle::default();
        let calm = [sig(1, 1, 1, 0.0), sig(4, 0, 0, 0.0)];
        let busy = [sig(1, 1, 1, 0.0), sig(4, 0, 1, 0.0)];
        for class in SloClass::ALL {
            let r = spec(0, 8, class);
            let req = RoutingRequest::of(&r, &[]);
            assert_eq!(p.decide(&req, &view(0, &calm, &o)), Verdict::Admit, "{class:?}");
            let expect = if SloPriorities::GAIE.admission(class) >= 3 {
                Verdict::Admit
            } else {
                Verdict::Reject("tier-shed")
            };
            assert_eq!(p.decide(&req, &view(0, &busy, &o)), expect, "{class:?}");
        }
        // Threshold 0: any non-zero load sheds.
        let mut p = TierShed::new(&super::super::test_config(super::super::AdmissionKind::TierShed));
        let r = spec(0, 8, SloClass::Batch);
        let req = RoutingRequest::of(&r, &[]);
        assert_eq!(p.decide(&req, &view(0, &[sig(0, 0, 0, 0.0)], &o)), Verdict::Admit);
        assert_eq!(p.decide(&req, &view(0, &[sig(0, 0, 1, 0.0)], &o)), Verdict::Reject("tier-shed"));
    }
}
