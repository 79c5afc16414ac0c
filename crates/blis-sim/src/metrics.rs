//! What one instance (and, merged, the cluster) measured.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use blis_workload::SloClass;
use serde::Serialize;

use crate::measure::{GoodCounts, Series};
use crate::stats::{Histogram, Samples};

/// Latency distributions of a set of requests.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub ttft: Samples,
    pub e2e: Samples,
    /// Pooled inter-token latency samples (token-weighted).
    pub itl: Histogram,
    pub scheduling_delay: Samples,
    pub completed: u64,
    pub output_tokens: u64,
}

impl Latencies {
    /// Empty distributions; `exact` keeps every value (`--exact-percentiles`) instead of a
    /// sketch.
    pub fn new(exact: bool) -> Self {
        Latencies {
            ttft: Samples::new(exact),
            e2e: Samples::new(exact),
            itl: Histogram::new(exact),
            scheduling_delay: Samples::new(exact),
            completed: 0,
            output_tokens: 0,
        }
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.ttft.merge(&other.ttft);
        self.e2e.merge(&other.e2e);
        self.itl.merge(&other.itl);
        self.scheduling_delay.merge(&other.scheduling_delay);
        self.completed += other.completed;
        self.output_tokens += other.output_tokens;
    }
}

/// Per-tenant totals (for fairness).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantTotals {
    pub requests: u64,
    pub completed: u64,
    pub output_tokens: u64,
}

/// One finished request, for `--results-path`.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub request_id: u64,
    pub arrived_at_s: f64,
    pub num_prefill_tokens: u32,
    pub num_decode_tokens: u32,
    pub cached_prompt_tokens: u32,
    pub ttft_ms: Option<f64>,
    pub itl_ms: f64,
    pub e2e_ms: Option<f64>,
    pub scheduling_delay_ms: Option<f64>,
    pub slo_class: &'static str,
    pub tenant_id: Option<String>,
    pub handled_by: usize,
    pub outcome: &'static str,
    pub preemptions: u32,
    /// Time the request waited in the gateway queue (`--flow-control` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_queue_delay_ms: Option<f64>,
}

/// CPU KV tier counters (`--kv-cpu-blocks`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvTierTotals {
    /// CPU tier capacity (summed over instances when merged).
    pub cpu_blocks: u64,
    /// Prompt blocks brought back from the CPU tier instead of being recomputed.
    pub cpu_hit_blocks: u64,
    /// Blocks written to the CPU tier.
    pub offloaded_blocks: u64,
    /// Blocks the CPU tier's LRU dropped.
    pub cpu_evicted_blocks: u64,
    /// Blocks in the CPU tier at the end of the run.
    pub cpu_resident_blocks: u64,
    /// CPU→GPU transfers and their summed duration (µs).
    pub loads: u64,
    pub transfer_us: u64,
    /// Summed time requests spent waiting for their loads (µs; transfer plus queueing on the link).
    pub load_wait_us: u64,
}

impl KvTierTotals {
    fn merge(&mut self, o: &KvTierTotals) {
        self.cpu_blocks += o.cpu_blocks;
        self.cpu_hit_blocks += o.cpu_hit_blocks;
        self.offloaded_blocks += o.offloaded_blocks;
        self.cpu_evicted_blocks += o.cpu_evicted_blocks;
        self.cpu_resident_blocks += o.cpu_resident_blocks;
        self.loads += o.loads;
        self.transfer_us += o.transfer_us;
        self.load_wait_us += o.load_wait_us;
    }
}

/// Completions inside the steady window `[start, end]` (first measured arrival, last
/// arrival; [`crate::steady::window_us`]), counted without a time per request. The window is
/// known only when the run ends, but each side is settled early:
/// - a measured request arrived at or after `start` (the earliest measured arrival), so it
///   completes after `start`; warm-up completions, which may fall either side of it, keep
///   their times (at most the warm-up's requests);
/// - a completion no later than an arrival this instance saw is no later than `end` (the
///   last arrival of all), so it is only counted; later ones wait in a heap until an arrival
///   passes them, so the heap holds about the requests completing within one inter-arrival
///   gap of the instance, and after the last arrival at most its in-flight requests.
#[derive(Debug, Clone, Default)]
pub struct Completions {
    /// Measured completions no later than `last_arrival_us`.
    settled: u64,
    /// Measured completions later than every arrival seen (min-heap).
    later_us: BinaryHeap<Reverse<u64>>,
    last_arrival_us: u64,
    /// Completion times of warm-up requests.
    warmup_us: Vec<u64>,
}

impl Completions {
    /// An arrival reached the instance: completions up to it are inside the window's end.
    #[inline]
    pub fn saw_arrival(&mut self, arrival_us: u64) {
        if arrival_us <= self.last_arrival_us {
            return;
        }
        self.last_arrival_us = arrival_us;
        while let Some(&Reverse(t)) = self.later_us.peek()
            && t <= arrival_us
        {
            self.later_us.pop();
            self.settled += 1;
        }
    }

    /// A request that arrived at `arrival_us` completed at `at_us`; `measured`: not warm-up.
    pub fn push(&mut self, arrival_us: u64, at_us: u64, measured: bool) {
        self.saw_arrival(arrival_us);
        if !measured {
            self.warmup_us.push(at_us);
        } else if at_us <= self.last_arrival_us {
            self.settled += 1;
        } else {
            self.later_us.push(Reverse(at_us));
        }
    }

    /// Completions within `[start, end]`, where `start` is at or before every measured arrival
    /// and `end` at or after every arrival.
    pub fn count_in(&self, (start, end): (u64, u64)) -> u64 {
        debug_assert!(self.last_arrival_us <= end, "the window ends before an arrival");
        let later = self.later_us.iter().filter(|t| t.0 <= end).count() as u64;
        let warmup = self.warmup_us.iter().filter(|&&t| t >= start && t <= end).count() as u64;
        self.settled + later + warmup
    }

    pub fn merge(&mut self, other: &Completions) {
        self.settled += other.settled;
        self.later_us.extend(other.later_us.iter().copied());
        self.last_arrival_us = self.last_arrival_us.max(other.last_arrival_us);
        self.warmup_us.extend_from_slice(&other.warmup_us);
    }
}

/// Everything an instance counts.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub all: Latencies,
    pub by_class: BTreeMap<SloClass, Latencies>,
    pub by_tenant: BTreeMap<Arc<str>, TenantTotals>,
    /// Requests that passed the enqueue guards.
    pub enqueued: u64,
    pub still_queued: u64,
    pub still_running: u64,
    pub dropped_unservable: u64,
    pub timed_out: u64,
    pub length_capped: u64,
    pub preemptions: u64,
    pub total_input_tokens: u64,
    /// Prompt tokens actually computed (after prefix-cache hits, including recomputation).
    pub prompt_tokens_computed: u64,
    pub prompt_tokens_cached: u64,
    pub kv_hit_blocks: u64,
    pub kv_miss_blocks: u64,
    pub peak_kv_blocks: u32,
    pub total_kv_blocks: u64,
    pub steps: u64,
    /// Blocks still held when the run ended (0 after a drained run).
    pub kv_used_blocks_at_end: u32,
    /// A violated KV-pool invariant found at the end of the run, if any.
    pub kv_check: Option<String>,
    /// Time of the last thing this instance did (capped at the horizon).
    pub end_us: u64,
    pub records: Vec<RequestRecord>,
    /// Completion times, for throughput over the steady window.
    pub completions: Completions,
    /// Goodput counters per label ([`crate::measure::GOODPUT_LABELS`]), measured requests only.
    pub good_by_label: [GoodCounts; 6],
    /// Completions excluded from latency figures as warm-up.
    pub warmup_completed: u64,
    /// This instance's sampled state (not merged: the report aligns the instances' series).
    pub series: Series,
    /// CPU KV tier counters, when the tier is on.
    pub kv_tier: Option<KvTierTotals>,
    /// LoRA adapter counters; `None` when the run declares no adapters.
    pub lora: Option<crate::lora::LoraTotals>,
    /// Prefill legs of disaggregated requests computed here and handed to a decode instance.
    pub pd_handoffs: u64,
    /// TTFT components of the disaggregated requests this instance decoded.
    pub pd: crate::pd::PdLatencies,
}

impl Metrics {
    /// Empty metrics; `exact` keeps exact percentile samples (`--exact-percentiles`).
    pub fn new(exact: bool) -> Self {
        Metrics { all: Latencies::new(exact), pd: crate::pd::PdLatencies::new(exact), ..Metrics::default() }
    }

    pub fn completed(&self) -> u64 {
        self.all.completed
    }

    /// Requests that reached this instance's queue or were dropped at it.
    pub fn injected(&self) -> u64 {
        self.completed() + self.still_queued + self.still_running + self.dropped_unservable + self.timed_out
    }

    /// Blocks found cached (in either tier) / blocks allocated.
    pub fn cache_hit_rate(&self) -> f64 {
        let cpu = self.kv_tier.as_ref().map_or(0, |t| t.cpu_hit_blocks);
        let total = self.kv_hit_blocks + cpu + self.kv_miss_blocks;
        if total == 0 { 0.0 } else { (self.kv_hit_blocks + cpu) as f64 / total as f64 }
    }

    pub fn merge(&mut self, other: &Metrics) {
        self.merge_figures(other);
        self.records.extend(other.records.iter().cloned());
    }

    /// [`Metrics::merge`] without the per-request records.
    pub fn merge_figures(&mut self, other: &Metrics) {
        self.all.merge(&other.all);
        for (class, lat) in &other.by_class {
            self.by_class.entry(*class).or_default().merge(lat);
        }
        for (tenant, t) in &other.by_tenant {
            let e = self.by_tenant.entry(tenant.clone()).or_default();
            e.requests += t.requests;
            e.completed += t.completed;
            e.output_tokens += t.output_tokens;
        }
        self.enqueued += other.enqueued;
        self.still_queued += other.still_queued;
        self.still_running += other.still_running;
        self.dropped_unservable += other.dropped_unservable;
        self.timed_out += other.timed_out;
        self.length_capped += other.length_capped;
        self.preemptions += other.preemptions;
        self.total_input_tokens += other.total_input_tokens;
        self.prompt_tokens_computed += other.prompt_tokens_computed;
        self.prompt_tokens_cached += other.prompt_tokens_cached;
        self.kv_hit_blocks += other.kv_hit_blocks;
        self.kv_miss_blocks += other.kv_miss_blocks;
        self.peak_kv_blocks = self.peak_kv_blocks.max(other.peak_kv_blocks);
        self.total_kv_blocks += other.total_kv_blocks;
        self.steps += other.steps;
        self.kv_used_blocks_at_end += other.kv_used_blocks_at_end;
        if self.kv_check.is_none() {
            self.kv_check.clone_from(&other.kv_check);
        }
        self.end_us = self.end_us.max(other.end_us);
        self.completions.merge(&other.completions);
        for (a, b) in self.good_by_label.iter_mut().zip(&other.good_by_label) {
            a.merge(b);
        }
        self.warmup_completed += other.warmup_completed;
        if let Some(o) = &other.kv_tier {
            self.kv_tier.get_or_insert_with(KvTierTotals::default).merge(o);
        }
        if let Some(o) = &other.lora {
            let t = self.lora.get_or_insert_with(Default::default);
            if t.adapters.len() < o.adapters.len() {
                t.adapters.resize_with(o.adapters.len(), Default::default);
                t.names.clone_from(&o.names);
            }
            for (a, b) in t.adapters.iter_mut().zip(&o.adapters) {
                a.loads += b.loads;
                a.evictions += b.evictions;
                a.load_us += b.load_us;
                a.completed += b.completed;
                a.output_tokens += b.output_tokens;
                a.ttft.merge(&b.ttft);
            }
            t.peak_resident = t.peak_resident.max(o.peak_resident);
            t.warm_admissions += o.warm_admissions;
        }
        self.pd_handoffs += other.pd_handoffs;
        self.pd.merge(&other.pd);
    }
}
