//! Least urgent first: a deliberately pathological order for experiments.

use std::cmp::Reverse;
use std::collections::VecDeque;

use super::{Scheduler, sort_queue_by_key};
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

pub struct ReversePriority;

impl Scheduler for ReversePriority {
    fn order(&self, queue: &mut VecDeque<ReqId>, requests: &Slab<LiveRequest>) {
        sort_queue_by_key(queue, requests, |r| (Reverse(r.priority), r.spec.arrival_us, r.spec.id));
    }
}
