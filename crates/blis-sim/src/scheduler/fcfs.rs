//! First come, first served: the queue's own order (preempted requests sit at its front).

use std::collections::VecDeque;

use super::Scheduler;
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

pub struct Fcfs;

impl Scheduler for Fcfs {
    fn order(&self, _queue: &mut VecDeque<ReqId>, _requests: &Slab<LiveRequest>) {}
}
