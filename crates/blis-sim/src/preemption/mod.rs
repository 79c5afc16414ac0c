//! Preemption victim selection (`--preemption-policy`). One file per policy; [`PreemptionKind`]
//! is the registry.

mod fcfs;
mod priority;

use serde::{Deserialize, Serialize};

use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

/// Picks which running request to evict when KV blocks run out.
pub trait PreemptionPolicy: Send {
    /// Index into `running` of the victim; `running` is non-empty.
    fn victim(&self, running: &[ReqId], requests: &Slab<LiveRequest>) -> usize;
}

/// `--preemption-policy`: the victim when KV blocks run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PreemptionKind {
    /// The most recently admitted request (tail of the batch), as vLLM.
    Fcfs,
    /// The least urgent request (vLLM's priority scheduling).
    Priority,
}

impl PreemptionKind {
    pub fn build(self) -> Box<dyn PreemptionPolicy> {
        match self {
            PreemptionKind::Fcfs => Box::new(fcfs::TailOfBatch),
            PreemptionKind::Priority => Box::new(priority::LeastUrgent),
        }
    }
}
