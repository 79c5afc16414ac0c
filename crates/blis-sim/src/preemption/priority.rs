//! Evict the least urgent request: greatest (priority, arrival); the tail wins exact ties.

use super::PreemptionPolicy;
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

pub struct LeastUrgent;

impl PreemptionPolicy for LeastUrgent {
    fn victim(&self, running: &[ReqId], requests: &Slab<LiveRequest>) -> usize {
        let key = |i: usize| {
            let r = &requests[running[i]];
            (r.priority, r.spec.arrival_us)
        };
        let mut best = running.len() - 1;
        for i in (0..running.len() - 1).rev() {
            if key(i) > key(best) {
                best = i;
            }
        }
        best
    }
}
