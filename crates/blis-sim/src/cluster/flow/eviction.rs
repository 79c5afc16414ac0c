//! In-flight eviction (`--in-flight-eviction`): sheddable requests dispatched by the gateway
//! and now on an instance, most evictable first (lowest priority, then latest dispatched).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use crate::slab::ReqId;

/// Where an evictable request lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub instance: u32,
    pub req: ReqId,
    pub request_id: u64,
}

type Key = (i32, Reverse<u64>, Reverse<u64>);

#[derive(Debug, Default)]
pub struct EvictionTracker {
    order: BTreeMap<Key, Placement>,
    by_id: HashMap<u64, Key>,
}

impl EvictionTracker {
    pub fn track(&mut self, priority: i32, dispatched_us: u64, at: Placement) {
        let key = (priority, Reverse(dispatched_us), Reverse(at.request_id));
        self.order.insert(key, at);
        self.by_id.insert(at.request_id, key);
    }

    /// Forgets a request that left its instance.
    pub fn untrack(&mut self, request_id: u64) {
        if let Some(key) = self.by_id.remove(&request_id) {
            self.order.remove(&key);
        }
    }

    /// The most evictable request, no longer tracked.
    pub fn pop(&mut self) -> Option<Placement> {
        let (_, at) = self.order.pop_first()?;
        self.by_id.remove(&at.request_id);
        Some(at)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_priority_then_latest_dispatch_goes_first() {
        let at = |id| Placement { instance: 0, req: id as ReqId, request_id: id };
        let mut t = EvictionTracker::default();
        t.track(-1, 10, at(1));
        t.track(-3, 5, at(2));
        t.track(-3, 9, at(3));
        t.track(-2, 1, at(4));
        t.untrack(4);
        t.untrack(99);
        let order: Vec<u64> = std::iter::from_fn(|| t.pop().map(|p| p.request_id)).collect();
        assert_eq!(order, vec![3, 2, 1]);
        assert!(t.is_empty());
    }
}
