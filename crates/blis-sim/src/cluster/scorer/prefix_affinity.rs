//! `prefix-affinity`: a router-side index of which prompt blocks were sent where. Score =
//! `matched_leading_blocks / total_full_blocks` (0 when the prompt has no full block). The
//! observer records the request's block hashes for the chosen instance in a per-instance LRU
//! of [`CAPACITY`] hashes.

use std::collections::{BTreeMap, HashMap};

use super::Scorer;
use crate::cluster::{RouterView, RoutingRequest};

/// Block hashes remembered per instance.
pub const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct PrefixAffinity {
    per_instance: Vec<Lru>,
}

impl Scorer for PrefixAffinity {
    fn score(&mut self, request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        let n = view.signals.len();
        if self.per_instance.len() < n {
            self.per_instance.resize_with(n, || Lru::new(CAPACITY));
        }
        let hashes = request.prompt_hashes;
        for (o, lru) in out.iter_mut().zip(&self.per_instance) {
            *o = if hashes.is_empty() {
                0.0
            } else {
                let matched = hashes.iter().take_while(|h| lru.contains(**h)).count();
                matched as f64 / hashes.len() as f64
            };
        }
    }

    fn observe(&mut self, request: &RoutingRequest, target: usize) {
        if self.per_instance.len() <= target {
            self.per_instance.resize_with(target + 1, || Lru::new(CAPACITY));
        }
        // Deepest block first, so that a prompt's leading blocks are the most recently used
        // and the last to be evicted (leading matches need them).
        let lru = &mut self.per_instance[target];
        for &h in request.prompt_hashes.iter().rev() {
            lru.touch(h);
        }
    }

    fn needs_prompt_hashes(&self) -> bool {
        true
    }
}

/// A least-recently-used set of block hashes with a fixed capacity.
struct Lru {
    capacity: usize,
    clock: u64,
    stamp_of: HashMap<u64, u64>,
    by_stamp: BTreeMap<u64, u64>,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Self { capacity, clock: 0, stamp_of: HashMap::new(), by_stamp: BTreeMap::new() }
    }

    fn contains(&self, h: u64) -> bool {
        self.stamp_of.contains_key(&h)
    }

    /// Marks `h` most recently used, evicting the least recently used hash when full.
    fn touch(&mut self, h: u64) {
        self.clock += 1;
        if let Some(old) = self.stamp_of.insert(h, self.clock) {
            self.by_stamp.remove(&old);
        }
        self.by_stamp.insert(self.clock, h);
        if self.stamp_of.len() > self.capacity
            && let Some((_, evicted)) = self.by_stamp.pop_first()
        {
            self.stamp_of.remove(&evicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn remembers_where_prefixes_went() {
        let s = [sig(0, 0, 0, 0.0); 3];
        let oracle = SetOracle::default();
        let r = spec(0, 64, SloClass::Standard);
        let mut p = PrefixAffinity::default();
        let mut out = [9.0; 3];
        let first = RoutingRequest::of(&r, &[1, 2, 3, 4]);
        p.score(&first, &view(0, &s, &oracle), &mut out);
        assert_eq!(out, [0.0; 3]);
        p.observe(&first, 1);
        let second = RoutingRequest::of(&r, &[1, 2, 7, 8]);
        p.score(&second, &view(0, &s, &oracle), &mut out);
        assert_eq!(out, [0.0, 0.5, 0.0]);
        // No full block: 0 everywhere.
        let empty = RoutingRequest::of(&r, &[]);
        p.score(&empty, &view(0, &s, &oracle), &mut out);
        assert_eq!(out, [0.0; 3]);
    }

    #[test]
    fn lru_evicts_least_recent() {
        let mut lru = Lru::new(3);
        for h in [1, 2, 3] {
            lru.touch(h);
        }
        lru.touch(1);
        lru.touch(4);
        assert!(lru.contains(1) && !lru.contains(2) && lru.contains(3) && lru.contains(4));
        assert_eq!(lru.stamp_of.len(), 3);
        assert_eq!(lru.by_stamp.len(), 3);
    }
}
