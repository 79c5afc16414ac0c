//! Per-tenant fair-share budgets (`tenant_budgets` in a policy file): a tenant may hold at most
//! `budget × instances × max_num_seqs` requests in flight (routed, not finished); beyond that its
//! sheddable requests (negative admission priority) are rejected before the admission policy is
//! asked. Non-sheddable classes always pass, and tenants without a budget are unlimited.
//!
//! In flight counts routed requests, so requests admitted at the same instant all see the same
//! count: a burst can overshoot a budget by the requests between admission and routing.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cluster::RoutingRequest;
use crate::priority::SloPriorities;

/// The budgets and every budgeted tenant's in-flight count.
#[derive(Debug, Clone)]
pub struct TenantBudgets {
    /// Tenant → (limit on in-flight requests, current in-flight requests).
    tenants: BTreeMap<Arc<str>, (f64, u64)>,
    priorities: SloPriorities,
}

impl TenantBudgets {
    /// `budgets`: tenant → fraction of `capacity_requests` (the cluster's running-batch slots),
    /// each in [0, 1].
    pub fn new(budgets: &BTreeMap<String, f64>, capacity_requests: u64, priorities: SloPriorities) -> Self {
        let capacity = capacity_requests.max(1) as f64;
        let tenants = budgets
            .iter()
            .map(|(t, &fraction)| {
                assert!((0.0..=1.0).contains(&fraction), "tenant budget {fraction} outside [0, 1]");
                (Arc::from(t.as_str()), (fraction * capacity, 0))
            })
            .collect();
        Self { tenants, priorities }
    }

    /// The reason to reject `request`, if its tenant is over budget and its class sheddable.
    pub fn check(&self, request: &RoutingRequest) -> Option<&'static str> {
        let (limit, in_flight) = self.tenants.get(request.tenant?)?;
        (*in_flight as f64 > *limit && self.priorities.sheddable(request.slo_class))
            .then_some("tenant-budget-shed")
    }

    /// A request of `tenant` was routed to an instance.
    pub fn on_routed(&mut self, tenant: Option<&str>) {
        if let Some((_, n)) = tenant.and_then(|t| self.tenants.get_mut(t)) {
            *n += 1;
        }
    }

    /// A routed request of `tenant` left its instance.
    pub fn on_finished(&mut self, tenant: Option<&str>) {
        if let Some((_, n)) = tenant.and_then(|t| self.tenants.get_mut(t)) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::spec;
    use blis_workload::SloClass;

    #[test]
    fn sheds_only_sheddable_requests_of_tenants_over_budget() {
        let budgets: BTreeMap<String, f64> = [("a".to_string(), 0.25)].into_iter().collect();
        // 8 slots × 0.25 = 2 requests in flight before shedding.
        let mut t = TenantBudgets::new(&budgets, 8, SloPriorities::GAIE);
        let mut batch = spec(1, 8, SloClass::Batch);
        batch.tenant = Some(Arc::from("a"));
        let mut critical = spec(2, 8, SloClass::Critical);
        critical.tenant = Some(Arc::from("a"));
        let mut other = spec(3, 8, SloClass::Batch);
        other.tenant = Some(Arc::from("b"));
        for _ in 0..3 {
            assert_eq!(t.check(&RoutingRequest::of(&batch, &[])), None);
            t.on_routed(Some("a"));
        }
        assert_eq!(t.check(&RoutingRequest::of(&batch, &[])), Some("tenant-budget-shed"));
        assert_eq!(t.check(&RoutingRequest::of(&critical, &[])), None);
        assert_eq!(t.check(&RoutingRequest::of(&other, &[])), None);
        t.on_finished(Some("a"));
        assert_eq!(t.check(&RoutingRequest::of(&batch, &[])), None);
    }
}
