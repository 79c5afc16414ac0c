//! The CPU tier of the KV cache (vLLM's KV offloading connector with its CPU backend,
//! LMCache's local CPU backend): a content-addressed LRU pool of block copies in host memory.
//!
//! Blocks are written through as they are computed (vLLM stores every newly full block after
//! the step that computed it, asynchronously), so a block evicted from the GPU pool is still
//! found here for as long as the CPU pool's LRU keeps it. The pool holds hashes only: what a
//! simulated block "contains" is its chained content hash.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::kv::PremixedHasher;

/// How a prefix hit in the CPU tier is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadTiming {
    /// vLLM's offloading connector: the request leaves the scheduler's view while its blocks
    /// are loaded asynchronously over the instance's host→device link (one transfer at a time,
    /// first come first served) and is scheduled once they have arrived; the running batch is
    /// not slowed.
    Async,
    /// The reference simulator: the blocks are reloaded when the request is admitted, and each
    /// adds `base + ceil(block_tokens / bandwidth)` µs to the step that admits it (stalling
    /// the whole batch).
    StepStall,
}

/// The CPU tier of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct KvTierConfig {
    pub cpu_blocks: u32,
    /// KV bytes of one block on one GPU (each GPU of a TP group loads its shard over its own
    /// link, in parallel).
    pub bytes_per_block: u64,
    /// [`ReloadTiming::Async`]: bytes per µs of the host→device link. [`ReloadTiming::StepStall`]:
    /// tokens per µs (the reference's arithmetic).
    pub bandwidth: f64,
    /// Fixed cost of one transfer (µs).
    pub base_latency_us: u64,
    pub timing: ReloadTiming,
    /// Offload only blocks of the prompt, not those filled during decode (vLLM's
    /// `offload_prompt_only`); false writes every hashed block through.
    pub prompt_only: bool,
}

impl KvTierConfig {
    /// Duration (µs) of bringing `blocks` blocks of `block_size_tokens` tokens back to the GPU.
    pub fn load_us(&self, blocks: u32, block_size_tokens: u32) -> u64 {
        match self.timing {
            ReloadTiming::Async => {
                let bytes = f64::from(blocks) * self.bytes_per_block as f64;
                self.base_latency_us + (bytes / self.bandwidth).ceil() as u64
            }
            ReloadTiming::StepStall => {
                let per_block =
                    self.base_latency_us + (f64::from(block_size_tokens) / self.bandwidth).ceil() as u64;
                u64::from(blocks) * per_block
            }
        }
    }
}

/// Slot index meaning "none" in the LRU links.
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    /// Towards the least recently used end.
    older: u32,
    /// Towards the most recently used end.
    newer: u32,
}

/// A fixed-capacity LRU set of block hashes.
#[derive(Debug, Clone)]
pub struct CpuTier {
    capacity: u32,
    map: HashMap<u64, u32, BuildHasherDefault<PremixedHasher>>,
    slots: Vec<Slot>,
    /// Unused slot indices.
    free: Vec<u32>,
    /// Least recently used slot (evicted first).
    oldest: u32,
    /// Most recently used slot.
    newest: u32,
    /// Blocks written to the pool (each new hash once per residency).
    stored: u64,
    /// Blocks the LRU dropped to make room.
    evicted: u64,
}

impl CpuTier {
    pub fn new(capacity: u32) -> Self {
        assert!(capacity > 0, "a CPU tier needs at least one block");
        Self {
            capacity,
            map: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            oldest: NIL,
            newest: NIL,
            stored: 0,
            evicted: 0,
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Blocks resident.
    pub fn len(&self) -> u32 {
        self.map.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stored(&self) -> u64 {
        self.stored
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    #[inline]
    pub fn contains(&self, hash: u64) -> bool {
        self.map.contains_key(&hash)
    }

    /// Writes block `hash` to the pool as the most recently used one (a copy already there is
    /// only refreshed), evicting the least recently used block when the pool is full.
    pub fn store(&mut self, hash: u64) {
        if let Some(&slot) = self.map.get(&hash) {
            self.move_to_newest(slot);
            return;
        }
        if self.map.len() as u32 >= self.capacity {
            let victim = self.oldest;
            self.unlink(victim);
            self.map.remove(&self.slots[victim as usize].hash);
            self.free.push(victim);
            self.evicted += 1;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { hash, older: NIL, newer: NIL });
                self.slots.len() as u32 - 1
            }
        };
        self.slots[slot as usize].hash = hash;
        self.push_newest(slot);
        self.map.insert(hash, slot);
        self.stored += 1;
    }

    /// Marks block `hash`, if resident, as the most recently used.
    #[inline]
    pub fn touch(&mut self, hash: u64) {
        if let Some(&slot) = self.map.get(&hash) {
            self.move_to_newest(slot);
        }
    }

    fn move_to_newest(&mut self, slot: u32) {
        if self.newest != slot {
            self.unlink(slot);
            self.push_newest(slot);
        }
    }

    fn unlink(&mut self, slot: u32) {
        let Slot { older, newer, .. } = self.slots[slot as usize];
        if older == NIL {
            self.oldest = newer;
        } else {
            self.slots[older as usize].newer = newer;
        }
        if newer == NIL {
            self.newest = older;
        } else {
            self.slots[newer as usize].older = older;
        }
    }

    fn push_newest(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.older = self.newest;
        s.newer = NIL;
        if self.newest == NIL {
            self.oldest = slot;
        } else {
            self.slots[self.newest as usize].newer = slot;
        }
        self.newest = slot;
    }

    /// Resident hashes from least to most recently used (for tests).
    pub fn lru_order(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.map.len());
        let mut s = self.oldest;
        while s != NIL && out.len() <= self.slots.len() {
            out.push(self.slots[s as usize].hash);
            s = self.slots[s as usize].newer;
        }
        out
    }

    /// The pool's invariants: at most `capacity` blocks; the LRU list and the index hold the
    /// same blocks; every slot is either resident or free; stored − evicted = resident.
    pub fn check_invariants(&self) -> Result<(), String> {
        let n = self.len();
        if n > self.capacity {
            return Err(format!("CPU tier holds {n} blocks, over its capacity {}", self.capacity));
        }
        let order = self.lru_order();
        if order.len() as u32 != n {
            return Err(format!("CPU tier LRU list has {} blocks but its index {n}", order.len()));
        }
        for (k, h) in order.iter().enumerate() {
            match self.map.get(h) {
                Some(&s) if self.slots[s as usize].hash == *h => {}
                _ => return Err(format!("CPU tier LRU entry {k} (hash {h:#x}) is not indexed")),
            }
        }
        if self.free.len() + n as usize != self.slots.len() {
            return Err(format!(
                "CPU tier: {} free + {n} resident slots but {} slots",
                self.free.len(),
                self.slots.len()
            ));
        }
        if self.stored - self.evicted != u64::from(n) {
            return Err(format!(
                "CPU tier conservation: {} blocks stored − {} evicted ≠ {n} resident",
                self.stored, self.evicted
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_time_is_base_plus_bytes_over_bandwidth() {
        let mut c = KvTierConfig {
            cpu_blocks: 10,
            bytes_per_block: 2 << 20,
            bandwidth: 32_000.0, // 32 GB/s
            base_latency_us: 10,
            timing: ReloadTiming::Async,
            prompt_only: false,
        };
        // 4 blocks of 2 MiB = 8 388 608 B at 32 000 B/µs = 262.1 µs, rounded up, + 10.
        assert_eq!(c.load_us(4, 16), 10 + 263);
        // The reference: per block, base + ceil(16 tokens / 100 tokens per µs).
        c.timing = ReloadTiming::StepStall;
        c.bandwidth = 100.0;
        assert_eq!(c.load_us(4, 16), 4 * (10 + 1));
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut t = CpuTier::new(3);
        for h in [1, 2, 3] {
            t.store(h);
        }
        t.touch(1);
        t.store(4); // evicts 2, the oldest after the touch
        assert!(!t.contains(2));
        assert_eq!(t.lru_order(), vec![3, 1, 4]);
        assert_eq!((t.stored(), t.evicted(), t.len()), (4, 1, 3));
        t.check_invariants().unwrap();
    }

    #[test]
    fn storing_a_resident_block_only_refreshes_it() {
        let mut t = CpuTier::new(2);
        t.store(7);
        t.store(8);
        t.store(7);
        assert_eq!(t.lru_order(), vec![8, 7]);
        assert_eq!(t.stored(), 2);
        t.check_invariants().unwrap();
    }
}
