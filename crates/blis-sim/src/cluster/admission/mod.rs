//! Admission policies (`--admission-policy`). One file per policy; [`build`] is the registry.

mod always_admit;

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
}

/// Tunables of the admission policies.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    pub token_bucket_capacity: f64,
    pub token_bucket_refill_per_s: f64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self { token_bucket_capacity: 10_000.0, token_bucket_refill_per_s: 1_000.0 }
    }
}

/// Accepted `--admission-policy` names.
pub const NAMES: &[&str] = &["always-admit"];

pub fn build(name: &str, _config: &AdmissionConfig) -> Result<Box<dyn AdmissionPolicy>, String> {
    Ok(match name {
        "always-admit" => Box::new(always_admit::AlwaysAdmit),
        _ => {
            return Err(format!(
                "--admission-policy: unknown policy '{name}' (accepted: {})",
                NAMES.join(", ")
            ));
        }
    })
}
