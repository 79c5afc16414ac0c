//! Admission policies (`--admission-policy`). One file per policy; [`build`] is the registry.

mod always_admit;
mod gaie_legacy;
mod reject_all;
mod tier_shed;
mod token_bucket;

use super::{RouterView, RoutingRequest};

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

/// Tunables of the admission policies.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
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
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            token_bucket_capacity: 10_000.0,
            token_bucket_refill_per_s: 1_000.0,
            tier_shed_threshold: 0,
            tier_shed_min_priority: 0,
            gaie_qd_threshold: 5.0,
            gaie_kv_threshold: 0.8,
        }
    }
}

impl AdmissionConfig {
    /// Checks every tunable, whichever policy is chosen (so a bad value is never ignored).
    pub fn validate(&self) -> Result<(), String> {
        let positive = |flag: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{flag}: must be a finite number > 0, got {v}"))
            }
        };
        positive("--token-bucket-capacity", self.token_bucket_capacity)?;
        positive("--token-bucket-refill-rate", self.token_bucket_refill_per_s)?;
        positive("gaie_qd_threshold", self.gaie_qd_threshold)?;
        if !(self.gaie_kv_threshold > 0.0 && self.gaie_kv_threshold <= 1.0) {
            return Err(format!("gaie_kv_threshold: must be in (0, 1], got {}", self.gaie_kv_threshold));
        }
        Ok(())
    }
}

/// Accepted `--admission-policy` names.
pub const NAMES: &[&str] = &["always-admit", "token-bucket", "reject-all", "tier-shed", "gaie-legacy"];

pub fn build(name: &str, config: &AdmissionConfig) -> Result<Box<dyn AdmissionPolicy>, String> {
    config.validate()?;
    Ok(match name {
        "always-admit" => Box::new(always_admit::AlwaysAdmit),
        "token-bucket" => Box::new(token_bucket::TokenBucket::new(config)),
        "reject-all" => Box::new(reject_all::RejectAll),
        "tier-shed" => Box::new(tier_shed::TierShed::new(config)),
        "gaie-legacy" => Box::new(gaie_legacy::GaieLegacy::new(config)),
        _ => {
            return Err(format!(
                "--admission-policy: unknown policy '{name}' (accepted: {})",
                NAMES.join(", ")
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_validation() {
        let config = AdmissionConfig::default();
        for name in NAMES {
            assert!(build(name, &config).is_ok(), "{name}");
        }
        assert!(
            build("nope", &config).err().unwrap().starts_with("--admission-policy: unknown policy 'nope'")
        );
        let bad = |f: fn(&mut AdmissionConfig)| {
            let mut c = AdmissionConfig::default();
            f(&mut c);
            build("always-admit", &c).err().unwrap()
        };
        assert!(bad(|c| c.token_bucket_capacity = 0.0).starts_with("--token-bucket-capacity:"));
        assert!(bad(|c| c.token_bucket_capacity = f64::INFINITY).starts_with("--token-bucket-capacity:"));
        assert!(bad(|c| c.token_bucket_refill_per_s = -1.0).starts_with("--token-bucket-refill-rate:"));
        assert!(bad(|c| c.token_bucket_refill_per_s = f64::NAN).starts_with("--token-bucket-refill-rate:"));
        assert!(bad(|c| c.gaie_qd_threshold = 0.0).starts_with("gaie_qd_threshold:"));
        assert!(bad(|c| c.gaie_kv_threshold = 1.5).starts_with("gaie_kv_threshold:"));
    }
}
