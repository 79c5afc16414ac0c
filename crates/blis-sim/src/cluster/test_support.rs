//! Fixtures for unit tests of admission policies, routing policies and scorers.

use std::collections::HashSet;

use blis_workload::{RequestSpec, SloClass, TokenSeq};

use super::{InstanceSignals, PrefixOracle, RouterView};

/// A request with `input_len` fresh prompt tokens of class `class`.
pub fn spec(id: u64, input_len: u32, class: SloClass) -> RequestSpec {
    RequestSpec {
        id,
        arrival_us: 0,
        input: TokenSeq::from_source(id + 1, input_len),
        output_tokens: 10,
        max_output_tokens: 10,
        output_source: 1_000_000 + id,
        slo_class: class,
        slo_class_named: true,
        tenant: None,
        client: None,
        deadline_us: None,
        slo_target_us: None,
        session: None,
        model: None,
        adapter: None,
        prefix_group: None,
        meta: None,
    }
}

/// Signals with the given queue depth, batch size, in-flight count and KV utilization.
pub fn sig(queue_depth: u32, batch_size: u32, in_flight: u32, kv_utilization: f64) -> InstanceSignals {
    InstanceSignals { queue_depth, batch_size, in_flight, kv_utilization, ..InstanceSignals::default() }
}

/// An oracle over explicit per-instance sets of cached block hashes.
#[derive(Default)]
pub struct SetOracle(pub Vec<HashSet<u64>>);

impl PrefixOracle for SetOracle {
    fn cached_blocks(&self, instance: usize, prompt_hashes: &[u64]) -> u32 {
        match self.0.get(instance) {
            Some(set) => prompt_hashes.iter().take_while(|h| set.contains(h)).count() as u32,
            None => 0,
        }
    }
}

pub fn view<'a>(now_us: u64, signals: &'a [InstanceSignals], prefix: &'a dyn PrefixOracle) -> RouterView<'a> {
    RouterView { now_us, signals, prefix }
}
