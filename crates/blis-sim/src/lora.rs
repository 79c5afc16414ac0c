//! LoRA adapters on an instance: the declared registry, the resident set (a capacity-bounded
//! LRU whose entries in use by the running batch are pinned), and the adapter cost terms
//! (cold-load time, per-step compute overhead).
//!
//! A request naming an adapter can only run once its adapter is resident. How a cold adapter
//! is loaded follows [`LoraLoading`]: vLLM's way by default, the reference simulator's under
//! `--compat reference`. Nothing here draws randomness: the LRU order is a function of the
//! admission order alone.

use std::sync::Arc;

/// Most adapters a run may declare (the router's view of an instance's resident set is a
/// fixed-size bitmask).
pub const MAX_ADAPTERS: usize = 256;

/// One declared adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    pub name: Arc<str>,
    pub rank: u32,
}

/// How a cold adapter is brought in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraLoading {
    /// vLLM: the adapter is loaded synchronously by the step that first runs one of its
    /// requests (that step takes the load time longer). A request whose adapter finds every
    /// slot pinned by the running batch (`max_loras` distinct adapters already scheduled)
    /// waits, and requests behind it that fit are admitted.
    StepStall,
    /// The reference simulator: one load at a time per instance, for the wait-queue head,
    /// running beside the batch; until it completes the head — and everything queued behind
    /// it — is not admitted (head-of-line blocking).
    HeadOfLine,
}

/// LoRA settings of an instance (`--lora-config` and the `--lora-*` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Declared adapters, sorted by name.
    pub adapters: Vec<LoraAdapter>,
    /// Resident adapter slots per instance (vLLM `max_loras`).
    pub capacity: u32,
    pub load_base_latency_us: f64,
    pub load_bandwidth_bytes_per_us: f64,
    pub footprint_bytes_per_rank: f64,
    /// Per-step compute overhead by rank tier: (rank, k6 / k7), sorted by rank. Empty = none.
    pub step_overhead_tiers: Vec<(u32, f64)>,
    pub loading: LoraLoading,
}

impl LoraConfig {
    /// Index of a declared adapter.
    pub fn index(&self, name: &str) -> Option<u32> {
        self.adapters.binary_search_by(|a| a.name.as_ref().cmp(name)).ok().map(|i| i as u32)
    }

    /// HBM footprint of adapter `a` in bytes.
    pub fn footprint_bytes(&self, a: u32) -> f64 {
        self.footprint_bytes_per_rank * f64::from(self.adapters[a as usize].rank)
    }

    /// Cold-load time of adapter `a`: base latency + footprint / bandwidth (at least 1 µs).
    pub fn load_us(&self, a: u32) -> u64 {
        let us =
            self.load_base_latency_us + (self.footprint_bytes(a) / self.load_bandwidth_bytes_per_us).ceil();
        (us.ceil() as u64).max(1)
    }

    /// Multiplier of a step's time when its batch runs `distinct` adapters whose largest rank
    /// is `max_rank`: 1 + (k6/k7)·distinct, with the coefficients of the tier nearest to
    /// `max_rank` (ties to the lower rank). Exactly 1 with no adapter.
    pub fn step_factor(&self, distinct: u32, max_rank: u32) -> f64 {
        if distinct == 0 || self.step_overhead_tiers.is_empty() {
            return 1.0;
        }
        let slope = self
            .step_overhead_tiers
            .iter()
            .min_by_key(|(rank, _)| (rank.abs_diff(max_rank), *rank))
            .map_or(0.0, |&(_, s)| s);
        1.0 + slope * f64::from(distinct)
    }

    /// HBM set aside for the adapter slots: capacity × footprint of the largest declared rank.
    pub fn reserved_bytes(&self) -> f64 {
        let max_rank = self.adapters.iter().map(|a| a.rank).max().unwrap_or(0);
        f64::from(self.capacity) * self.footprint_bytes_per_rank * f64::from(max_rank)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    adapter: u32,
    /// Running requests using it (a pinned slot is never evicted).
    pins: u32,
    last_use: u64,
}

/// The adapters resident on one instance: at most `capacity`, least recently used evicted.
#[derive(Debug, Clone)]
pub struct ResidentSet {
    capacity: u32,
    slots: Vec<Slot>,
    clock: u64,
}

impl ResidentSet {
    pub fn new(capacity: u32) -> Self {
        assert!(capacity > 0, "LoRA resident capacity must be positive");
        Self { capacity, slots: Vec::with_capacity(capacity as usize), clock: 0 }
    }

    pub fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn contains(&self, a: u32) -> bool {
        self.slots.iter().any(|s| s.adapter == a)
    }

    /// Resident adapters, in slot order.
    pub fn adapters(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().map(|s| s.adapter)
    }

    /// Adapters pinned by the running batch.
    pub fn pinned(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter(|s| s.pins > 0).map(|s| s.adapter)
    }

    /// Whether `a` could be made resident now (a free slot, or an unpinned one to evict).
    pub fn can_load(&self) -> bool {
        self.len() < self.capacity || self.slots.iter().any(|s| s.pins == 0)
    }

    /// Makes `a` resident (it must not be); returns the adapter evicted for it, if any.
    /// Panics when no slot can be freed ([`ResidentSet::can_load`] is false).
    pub fn insert(&mut self, a: u32) -> Option<u32> {
        debug_assert!(!self.contains(a));
        self.clock += 1;
        let slot = Slot { adapter: a, pins: 0, last_use: self.clock };
        if self.len() < self.capacity {
            self.slots.push(slot);
            return None;
        }
        let (i, _) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pins == 0)
            .min_by_key(|(_, s)| s.last_use)
            .expect("a LoRA slot to evict");
        let evicted = self.slots[i].adapter;
        self.slots[i] = slot;
        Some(evicted)
    }

    /// Evicts the least recently used unpinned adapter, if any.
    pub fn evict_lru(&mut self) -> Option<u32> {
        let (i, _) =
            self.slots.iter().enumerate().filter(|(_, s)| s.pins == 0).min_by_key(|(_, s)| s.last_use)?;
        Some(self.slots.remove(i).adapter)
    }

    /// A running request starts using resident adapter `a`.
    pub fn pin(&mut self, a: u32) {
        self.clock += 1;
        let s = self.slots.iter_mut().find(|s| s.adapter == a).expect("pinned LoRA adapter is resident");
        s.pins += 1;
        s.last_use = self.clock;
    }

    /// A running request stopped using `a`.
    pub fn unpin(&mut self, a: u32) {
        let s = self.slots.iter_mut().find(|s| s.adapter == a).expect("unpinned LoRA adapter is resident");
        assert!(s.pins > 0, "LoRA adapter unpinned more often than pinned");
        s.pins -= 1;
    }
}

/// Per-adapter counts of one instance (summed over the fleet for the report).
#[derive(Debug, Clone, Default)]
pub struct AdapterTotals {
    pub loads: u64,
    pub evictions: u64,
    /// Time spent loading it (µs).
    pub load_us: u64,
    pub completed: u64,
    pub output_tokens: u64,
    /// TTFT of its measured completed requests.
    pub ttft: crate::stats::Samples,
}

/// LoRA counters of one instance.
#[derive(Debug, Clone, Default)]
pub struct LoraTotals {
    /// Adapter names, indexed like [`LoraConfig::adapters`].
    pub names: Vec<Arc<str>>,
    /// Indexed like [`LoraConfig::adapters`].
    pub adapters: Vec<AdapterTotals>,
    /// Most adapters resident at once.
    pub peak_resident: u32,
    /// Requests admitted while their adapter was already resident.
    pub warm_admissions: u64,
}

/// An instance's LoRA state.
#[derive(Debug, Clone)]
pub struct LoraState {
    pub config: Arc<LoraConfig>,
    pub resident: ResidentSet,
    /// [`LoraLoading::HeadOfLine`]: the adapter being loaded and when it is resident.
    pub loading: Option<(u32, u64)>,
    /// [`LoraLoading::StepStall`]: load time to add to the step being formed.
    pub pending_stall_us: u64,
}

impl LoraState {
    pub fn new(config: Arc<LoraConfig>) -> Self {
        let resident = ResidentSet::new(config.capacity);
        Self { config, resident, loading: None, pending_stall_us: 0 }
    }

    /// The step-time multiplier of the current batch (the adapters it pins).
    pub fn step_factor(&self) -> f64 {
        if self.config.step_overhead_tiers.is_empty() {
            return 1.0;
        }
        let mut distinct = 0;
        let mut max_rank = 0;
        for a in self.resident.pinned() {
            distinct += 1;
            max_rank = max_rank.max(self.config.adapters[a as usize].rank);
        }
        self.config.step_factor(distinct, max_rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tiers: Vec<(u32, f64)>) -> LoraConfig {
        LoraConfig {
            adapters: vec![
                LoraAdapter { name: "a".into(), rank: 8 },
                LoraAdapter { name: "b".into(), rank: 32 },
            ],
            capacity: 2,
            load_base_latency_us: 1500.0,
            load_bandwidth_bytes_per_us: 2.0e6,
            footprint_bytes_per_rank: 2.0e6,
            step_overhead_tiers: tiers,
            loading: LoraLoading::StepStall,
        }
    }

    #[test]
    fn load_time_is_base_plus_footprint_over_bandwidth() {
        let c = config(Vec::new());
        assert_eq!(c.load_us(0), 1508);
        assert_eq!(c.load_us(1), 1532);
        assert_eq!(c.index("b"), Some(1));
        assert_eq!(c.index("c"), None);
        assert_eq!(c.reserved_bytes(), 2.0 * 2.0e6 * 32.0);
    }

    #[test]
    fn step_factor_uses_the_nearest_tier_and_is_one_without_adapters() {
        let c = config(vec![(8, 0.02), (16, 0.035), (32, 0.06)]);
        assert_eq!(c.step_factor(0, 0), 1.0);
        assert!((c.step_factor(2, 8) - 1.04).abs() < 1e-12);
        assert!((c.step_factor(1, 64) - 1.06).abs() < 1e-12);
        // 12 is equally far from 8 and 16: the lower tier.
        assert!((c.step_factor(1, 12) - 1.02).abs() < 1e-12);
        assert_eq!(config(Vec::new()).step_factor(3, 8), 1.0);
    }

    #[test]
    fn resident_set_evicts_the_least_recently_used_unpinned_adapter() {
        let mut r = ResidentSet::new(2);
        assert_eq!(r.insert(0), None);
        assert_eq!(r.insert(1), None);
        r.pin(0);
        r.unpin(0); // 0 is now the most recently used
        assert_eq!(r.insert(2), Some(1));
        r.pin(2);
        r.pin(0);
        assert!(!r.can_load());
        r.unpin(0);
        assert!(r.can_load());
        assert_eq!(r.evict_lru(), Some(0));
        assert_eq!(r.len(), 1);
    }
}
