//! Wait-queue ordering policies (`--scheduler`). One file per policy; [`by_name`] is the registry.

mod fcfs;
mod priority_fcfs;
mod reverse_priority;
mod sjf;

use std::collections::VecDeque;

use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

/// Decides the order in which waiting requests are offered to batch formation.
pub trait Scheduler: Send {
    /// Reorders the wait queue (stable: equal keys keep their relative order).
    fn order(&self, queue: &mut VecDeque<ReqId>, requests: &Slab<LiveRequest>);
}

/// Accepted `--scheduler` names.
pub const NAMES: &[&str] = &["fcfs", "priority-fcfs", "sjf", "reverse-priority"];

pub fn by_name(name: &str) -> Option<Box<dyn Scheduler>> {
    Some(match name {
        "fcfs" => Box::new(fcfs::Fcfs),
        "priority-fcfs" => Box::new(priority_fcfs::PriorityFcfs),
        "sjf" => Box::new(sjf::ShortestJobFirst),
        "reverse-priority" => Box::new(reverse_priority::ReversePriority),
        _ => return None,
    })
}

/// Stable-sorts the queue by a key; sorting an already-ordered queue is linear.
fn sort_queue_by_key<K: Ord>(
    queue: &mut VecDeque<ReqId>,
    requests: &Slab<LiveRequest>,
    key: impl Fn(&LiveRequest) -> K,
) {
    queue.make_contiguous().sort_by_key(|&id| key(&requests[id]));
}
