//! Shortest prompt first (no aging, so long prompts can starve under sustained load).

use std::collections::VecDeque;

use super::{Scheduler, sort_queue_by_key};
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

pub struct ShortestJobFirst;

impl Scheduler for ShortestJobFirst {
    fn order(&self, queue: &mut VecDeque<ReqId>, requests: &Slab<LiveRequest>) {
        sort_queue_by_key(queue, requests, |r| (r.input_tokens, r.spec.arrival_us, r.spec.id));
    }
}
