//! Instance signals as the router sees them: refreshed lazily every `interval` µs (0 = live),
//! except in-flight counts, which the router owns and which are therefore always exact.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use super::PrefixOracle;
use crate::instance::Instance;
use crate::kv::{IndexChange, PremixedHasher};

/// Set of block hashes (already well mixed: no rehashing).
type HashSetU64 = HashSet<u64, BuildHasherDefault<PremixedHasher>>;

/// Load signals of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InstanceSignals {
    pub queue_depth: u32,
    pub batch_size: u32,
    /// Routed to the instance and not yet finished there (exact).
    pub in_flight: u32,
    /// Used KV blocks / total blocks.
    pub kv_utilization: f64,
    pub free_kv_blocks: u32,
    pub preemptions: u64,
    /// LoRA adapters resident on the instance (bit i: registry index i; see
    /// [`crate::lora::MAX_ADAPTERS`]).
    pub lora_resident: [u64; 4],
}

impl InstanceSignals {
    /// Queue depth + batch size + in-flight: the load used by least-loaded routing.
    pub fn lora_resident(&self, adapter: u32) -> bool {
        self.lora_resident.get((adapter / 64) as usize).is_some_and(|m| m & (1 << (adapter % 64)) != 0)
    }

    pub fn effective_load(&self) -> u64 {
        u64::from(self.queue_depth) + u64::from(self.batch_size) + u64::from(self.in_flight)
    }

    fn read(instance: &Instance) -> Self {
        Self {
            queue_depth: instance.queue_depth(),
            batch_size: instance.batch_size(),
            in_flight: 0,
            kv_utilization: instance.kv().utilization(),
            free_kv_blocks: instance.kv().free_blocks(),
            preemptions: instance.metrics.preemptions,
            lora_resident: instance.lora_resident_set().fold([0; 4], |mut m, a| {
                m[(a / 64) as usize] |= 1 << (a % 64);
                m
            }),
        }
    }
}

/// Periodically refreshed copies of every instance's signals.
pub struct SignalBoard {
    interval_us: u64,
    last_refresh_us: Vec<u64>,
    values: Vec<InstanceSignals>,
}

impl SignalBoard {
    pub fn new(num_instances: usize, interval_us: u64) -> Self {
        Self {
            interval_us,
            last_refresh_us: vec![0; num_instances],
            values: vec![InstanceSignals::default(); num_instances],
        }
    }

    /// The signals at `now_us`: fields re-read where the copy is at least `interval` old.
    /// Copies start at zero, so before the first interval has elapsed they read as idle.
    pub fn view(&mut self, now_us: u64, instances: &[Instance], in_flight: &[u32]) -> &[InstanceSignals] {
        for (i, instance) in instances.iter().enumerate() {
            if self.interval_us == 0 || now_us - self.last_refresh_us[i] >= self.interval_us {
                self.values[i] = InstanceSignals::read(instance);
                self.last_refresh_us[i] = now_us;
            }
            self.values[i].in_flight = in_flight[i];
        }
        &self.values
    }
}

/// The router's view of every instance's prefix-cache index, `delay` µs stale at most.
pub struct PrefixBoard {
    delay_us: u64,
    last_refresh_us: u64,
    snapshots: Vec<HashSetU64>,
}

impl PrefixBoard {
    /// Starts logging index changes on every instance when the view is delayed.
    pub fn new(instances: &mut [Instance], delay_us: u64) -> Self {
        if delay_us > 0 {
            for instance in instances.iter_mut() {
                instance.enable_index_log();
            }
        }
        Self { delay_us, last_refresh_us: 0, snapshots: vec![HashSetU64::default(); instances.len()] }
    }

    /// Brings the delayed copies up to date when they are `delay` old, replaying only the
    /// index changes since the last refresh.
    pub fn refresh(&mut self, now_us: u64, instances: &mut [Instance]) {
        if self.delay_us == 0 || now_us - self.last_refresh_us < self.delay_us {
            return;
        }
        for (snapshot, instance) in self.snapshots.iter_mut().zip(instances.iter_mut()) {
            for change in instance.drain_index_changes() {
                match change {
                    IndexChange::Added(h) => {
                        snapshot.insert(h);
                    }
                    IndexChange::Removed(h) => {
                        snapshot.remove(&h);
                    }
                }
            }
        }
        self.last_refresh_us = now_us;
    }

    /// An oracle over the delayed copies, or over the live caches when the delay is zero.
    pub fn oracle<'a>(&'a self, instances: &'a [Instance]) -> BoardOracle<'a> {
        BoardOracle { board: self, instances }
    }
}

pub struct BoardOracle<'a> {
    board: &'a PrefixBoard,
    instances: &'a [Instance],
}

impl PrefixOracle for BoardOracle<'_> {
    fn cached_blocks(&self, instance: usize, prompt_hashes: &[u64]) -> u32 {
        if self.board.delay_us == 0 {
            self.instances[instance].kv().cached_prefix_blocks(prompt_hashes)
        } else {
            let snap = &self.board.snapshots[instance];
            prompt_hashes.iter().take_while(|h| snap.contains(h)).count() as u32
        }
    }
}
