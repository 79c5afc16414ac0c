//! Preemption victim selection (`--preemption-policy`). One file per policy.

mod fcfs;
mod priority;

use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

/// Picks which running request to evict when KV blocks run out.
pub trait PreemptionPolicy: Send {
    /// Index into `running` of the victim; `running` is non-empty.
    fn victim(&self, running: &[ReqId], requests: &Slab<LiveRequest>) -> usize;
}

/// Accepted `--preemption-policy` names.
pub const NAMES: &[&str] = &["fcfs", "priority"];

pub fn by_name(name: &str) -> Option<Box<dyn PreemptionPolicy>> {
    Some(match name {
        "fcfs" => Box::new(fcfs::TailOfBatch),
        "priority" => Box::new(priority::LeastUrgent),
        _ => return None,
    })
}
