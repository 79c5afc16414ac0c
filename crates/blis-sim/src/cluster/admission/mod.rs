//! Admission policies (`--admission-policy`). One file per policy; [`AdmissionKind`] is the
//! registry. Per-tenant budgets ([`tenant_budget`]) apply before any policy.

mod always_admit;
mod gaie_legacy;
mod reject_all;
pub mod tenant_budget;
mod tier_shed;
mod token_bucket;

use serde::{Deserialize, Serialize};

use super::{RouterView, RoutingRequest};
use crate::priority::SloPriorities;

/// The outcome of an admission decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    Reject(&'static str),
}

/// Decides whether a request enters the cluster at all.
pub trait AdmissionPolicy: Send {
    fn decide(&mut self, request: &RoutingRequest, view: &RouterView) -> Verdict;

    /// Whether decisions read the instances' signals or caches. See
    /// [`RoutingPolicy::reads_instance_state`](super::routing::RoutingPolicy::reads_instance_state).
    fn reads_instance_state(&self) -> bool {
        true
    }
}

/// `--admission-policy`: which requests enter the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdmissionKind {
    /// Admit every request.
    AlwaysAdmit,
    /// A bucket of prompt tokens refilled at a constant rate; a request costs its prompt.
    TokenBucket,
    /// Reject every request (tests the rejection path).
    RejectAll,
    /// Shed classes below a priority while the busiest instance is above a load threshold.
    TierShed,
    /// GAIE's legacy saturation check: shed sheddable classes while the pool is saturated.
    GaieLegacy,
}

/// A policy and its tunables. Every tunable is validated whatever the policy, so a bad value
/// is never silently ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionConfig {
    pub kind: AdmissionKind,
    pub token_bucket_capacity: f64,
    pub token_bucket_refill_per_s: f64,
    /// `tier-shed`: loads (queue depth + batch size + in flight) up to this admit everything.
    pub tier_shed_threshold: u64,
    /// `tier-shed`: above the threshold, classes with admission priority below this are shed.
    pub tier_shed_min_priority: i32,
    /// `gaie-legacy`: queue depth counted as saturated (> 0).
    pub gaie_qd_threshold: f64,
    /// `gaie-legacy`: KV utilization counted as saturated, in (0, 1].
    pub gaie_kv_threshold: f64,
    /// Admission priority of each SLO class (tier-shed, gaie-legacy, tenant budgets).
    pub slo_priorities: SloPriorities,
}

impl AdmissionConfig {
    pub fn build(&self) -> Box<dyn AdmissionPolicy> {
        debug_assert!(self.token_bucket_capacity > 0.0 && self.token_bucket_refill_per_s > 0.0);
        debug_assert!(self.gaie_qd_threshold > 0.0 && self.gaie_kv_threshold > 0.0);
        match self.kind {
            AdmissionKind::AlwaysAdmit => Box::new(always_admit::AlwaysAdmit),
            AdmissionKind::TokenBucket => Box::new(token_bucket::TokenBucket::new(self)),
            AdmissionKind::RejectAll => Box::new(reject_all::RejectAll),
            AdmissionKind::TierShed => Box::new(tier_shed::TierShed::new(self)),
            AdmissionKind::GaieLegacy => Box::new(gaie_legacy::GaieLegacy::new(self)),
        }
    }
}

#[cfg(test)]
pub(crate) fn test_config(kind: AdmissionKind) -> AdmissionConfig {
    AdmissionConfig {
        kind,
        token_bucket_capacity: 10_000.0,
        token_bucket_refill_per_s: 1_000.0,
        tier_shed_threshold: 0,
        tier_shed_min_priority: 3,
        gaie_qd_threshold: 5.0,
        gaie_kv_threshold: 0.8,
        slo_priorities: SloPriorities::GAIE,
    }
}
