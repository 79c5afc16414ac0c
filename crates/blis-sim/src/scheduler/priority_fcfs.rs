//! Most urgent priority first, then earliest arrival, then lowest id.

use std::collections::VecDeque;

use super::{Scheduler, sort_queue_by_key};
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

pub struct PriorityFcfs;

impl Scheduler for PriorityFcfs {
    fn order(&self, queue: &mut VecDeque<ReqId>, requests: &Slab<LiveRequest>) {
        sort_queue_by_key(queue, requests, |r| (r.priority, r.spec.arrival_us, r.spec.id));
    }
}
