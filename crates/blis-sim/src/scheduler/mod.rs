//! Wait-queue ordering policies (`--scheduler`). One file per policy; [`SchedulerKind`] is the
//! registry: its variants are the accepted names, their doc comments the help text.

mod fcfs;
mod priority_fcfs;
mod reverse_priority;
mod sjf;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

/// Decides the order in which waiting requests are offered to batch formation.
pub trait Scheduler: Send {
    /// Reorders the wait queue (stable: equal keys keep their relative order).
    fn order(&self, queue: &mut VecDeque<ReqId>, requests: &Slab<LiveRequest>);
}

/// `--scheduler`: the wait-queue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerKind {
    /// First come, first served (preempted requests go back to the front).
    Fcfs,
    /// Most urgent priority first, then arrival order.
    PriorityFcfs,
    /// Shortest prompt first (no aging: long prompts can starve).
    Sjf,
    /// Least urgent priority first (a pathological order, for experiments).
    ReversePriority,
}

impl SchedulerKind {
    pub fn build(self) -> Box<dyn Scheduler> {
        match self {
            SchedulerKind::Fcfs => Box::new(fcfs::Fcfs),
            SchedulerKind::PriorityFcfs => Box::new(priority_fcfs::PriorityFcfs),
            SchedulerKind::Sjf => Box::new(sjf::ShortestJobFirst),
            SchedulerKind::ReversePriority => Box::new(reverse_priority::ReversePriority),
        }
    }
}

/// Stable-sorts the queue by a key; sorting an already-ordered queue is linear.
fn sort_queue_by_key<K: Ord>(
    queue: &mut VecDeque<ReqId>,
    requests: &Slab<LiveRequest>,
    key: impl Fn(&LiveRequest) -> K,
) {
    queue.make_contiguous().sort_by_key(|&id| key(&requests[id]));
}
