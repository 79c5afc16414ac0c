//! Flow control (`--flow-control`, the Gateway API Inference Extension's flow controller):
//! admitted requests wait in a gateway queue between admission and routing, and are handed to
//! the router one at a time while a saturation detector says the cluster has room. Dispatch is
//! tried when a request is enqueued and on a periodic tick while the queue is non-empty.
//!
//! The policies are small enums chosen here: [`SaturationDetectorKind`] (how full the cluster
//! looks), [`DispatchOrder`] (which waiting request goes next), [`FairnessPolicy`] (which
//! tenant's flow within a priority band).

pub mod detector;
pub mod eviction;
pub mod queue;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::priority::SloPriorities;
use crate::stats::Samples;
use detector::SaturationDetector;
use eviction::EvictionTracker;
use queue::{GatewayQueue, QueueSettings};

/// `--saturation-detector`: when the gateway holds requests back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaturationDetectorKind {
    /// Never saturated: the queue passes every request straight through.
    Never,
    /// Mean over instances of max(queue depth / --queue-depth-threshold, KV utilization /
    /// --kv-cache-util-threshold).
    Utilization,
    /// Requests in flight / (instances × --max-concurrency).
    Concurrency,
}

/// `--dispatch-order`: which waiting request goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DispatchOrder {
    /// The earliest arrival, whatever its priority.
    Fifo,
    /// The highest priority band first; within it, as the fairness policy picks.
    Priority,
    /// As `priority`, but within a flow the earliest deadline (enqueue time + the class's
    /// `slo-targets` TTFT target; none = last) first.
    SloDeadline,
}

/// `--fairness-policy`: which tenant's flow of a priority band dispatches next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FairnessPolicy {
    /// The flow whose head arrived first.
    GlobalStrict,
    /// Tenants in turn (name order), skipping empty flows.
    RoundRobin,
}

/// Flow-control settings, all validated.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowControlConfig {
    pub detector: SaturationDetectorKind,
    /// `utilization`: queue depth counted as saturated (> 0).
    pub queue_depth_threshold: f64,
    /// `utilization`: KV utilization counted as saturated (> 0).
    pub kv_cache_util_threshold: f64,
    /// `concurrency`: requests in flight per instance counted as saturated (> 0).
    pub max_concurrency: u32,
    pub dispatch_order: DispatchOrder,
    pub fairness: FairnessPolicy,
    /// 0 = unlimited.
    pub max_queue_depth: usize,
    /// 0 = unlimited.
    pub per_band_capacity: usize,
    /// In (0, 1].
    pub usage_limit_threshold: f64,
    /// Waiting longer than this expires a request (0 = never).
    pub request_ttl_us: u64,
    pub queue_shedding: bool,
    /// > 0.
    pub dispatch_tick_us: u64,
    pub in_flight_eviction: bool,
    /// TTFT target per SLO class (`slo-deadline`).
    pub slo_targets_us: [Option<u64>; 5],
    pub slo_priorities: SloPriorities,
}

impl FlowControlConfig {
    pub fn detector(&self) -> Box<dyn SaturationDetector> {
        match self.detector {
            SaturationDetectorKind::Never => Box::new(detector::Never),
            SaturationDetectorKind::Utilization => Box::new(detector::Utilization {
                queue_depth_threshold: self.queue_depth_threshold,
                kv_cache_util_threshold: self.kv_cache_util_threshold,
            }),
            SaturationDetectorKind::Concurrency => {
                Box::new(detector::Concurrency { max_concurrency: self.max_concurrency })
            }
        }
    }

    pub fn build<T: Clone>(&self) -> Gateway<T> {
        debug_assert!(self.dispatch_tick_us > 0);
        Gateway {
            queue: GatewayQueue::new(QueueSettings {
                order: self.dispatch_order,
                fairness: self.fairness,
                max_depth: self.max_queue_depth,
                per_band_capacity: self.per_band_capacity,
                usage_limit_threshold: self.usage_limit_threshold,
                shedding: self.queue_shedding,
                slo_targets_us: self.slo_targets_us,
            }),
            detector: self.detector(),
            config: self.clone(),
            next_seq: 0,
            tick_pending: false,
            eviction: self.in_flight_eviction.then(EvictionTracker::default),
            dispatched_sheddable: BTreeMap::new(),
            waits_us: std::collections::HashMap::new(),
            completions: None,
            stats: GatewayStats::default(),
        }
    }
}

/// What the gateway counted over a run.
#[derive(Debug, Clone, Default)]
pub struct GatewayStats {
    /// Turned away by a full band or queue.
    pub rejected: u64,
    /// Pushed out of a full queue by a higher-priority arrival (`--queue-shedding`).
    pub shed: u64,
    /// Waited longer than `--request-ttl`.
    pub expired: u64,
    /// Ended on their instance to make room (`--in-flight-eviction`).
    pub evicted: u64,
    /// Still waiting when the run ended.
    pub depth_at_end: u64,
    pub depth_max: u64,
    /// ∫ depth dt (request·µs) up to `last_change_us`.
    pub depth_area: u128,
    pub last_change_us: u64,
    /// Time from enqueue to dispatch of each dispatched request (µs).
    pub wait_us: Samples,
    /// Shed, expired and evicted requests per SLO class.
    pub shed_by_class: BTreeMap<&'static str, u64>,
    /// The reference simulator's priority-inversion count (see [`priority_inversions`]);
    /// counted only when every instance schedules by priority (`priority-fcfs`).
    pub priority_inversions: u64,
    /// The reference simulator's head-of-line blocking count (see [`hol_blocking_events`]).
    pub hol_blocking_events: u64,
}

/// A completed request, for [`priority_inversions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub instance: u32,
    pub class: u8,
    pub arrival_us: u64,
    pub request_id: u64,
    pub e2e_us: u64,
}

/// Pairs of completed requests on the same instance and of the same SLO class where the
/// earlier arrival took more than twice as long end to end as the later one (the reference
/// simulator's heuristic). O(n log n).
pub fn priority_inversions(mut done: Vec<Completion>) -> u64 {
    done.sort_unstable_by_key(|c| (c.instance, c.class, c.arrival_us, c.request_id));
    let mut total = 0;
    for group in done.chunk_by(|a, b| (a.instance, a.class) == (b.instance, b.class)) {
        let mut values: Vec<u64> = group.iter().map(|c| c.e2e_us).collect();
        values.sort_unstable();
        values.dedup();
        // Fenwick tree over the ranks of the E2E values seen so far.
        let mut tree = vec![0u64; values.len() + 1];
        let (mut seen, n) = (0u64, values.len());
        for c in group {
            // Earlier arrivals with E2E > 2 × this one: all seen minus those ≤ 2 × E2E.
            let le = values.partition_point(|&v| v <= c.e2e_us.saturating_mul(2));
            let mut at_most = 0;
            let mut i = le;
            while i > 0 {
                at_most += tree[i];
                i &= i - 1;
            }
            total += seen - at_most;
            let mut i = values.partition_point(|&v| v < c.e2e_us) + 1;
            while i <= n {
                tree[i] += 1;
                i += i & i.wrapping_neg();
            }
            seen += 1;
        }
    }
    total
}

/// Instances whose mean wait-queue depth exceeds twice the mean over all instances (the
/// reference simulator's heuristic; here over the sampled time series).
pub fn hol_blocking_events(mean_queue_depths: &[f64]) -> u64 {
    if mean_queue_depths.len() < 2 {
        return 0;
    }
    let mean = mean_queue_depths.iter().sum::<f64>() / mean_queue_depths.len() as f64;
    if mean <= 0.0 {
        return 0;
    }
    mean_queue_depths.iter().filter(|&&d| d > 2.0 * mean).count() as u64
}

impl GatewayStats {
    /// Records that the depth is about to change from `depth` at `now_us`.
    pub fn depth_changes(&mut self, now_us: u64, depth: usize) {
        let dt = now_us.saturating_sub(self.last_change_us);
        self.depth_area += u128::from(dt) * depth as u128;
        self.last_change_us = now_us;
    }

    pub fn depth_now(&mut self, depth: usize) {
        self.depth_max = self.depth_max.max(depth as u64);
    }

    /// Time-averaged depth over `[0, end_us]`.
    pub fn depth_mean(&self, end_us: u64) -> f64 {
        let end = end_us.max(self.last_change_us);
        if end == 0 { 0.0 } else { self.depth_area as f64 / end as f64 }
    }
}

/// The flow controller of one run: queue, detector, dispatch tick and counters. The engine
/// moves requests in and out; `T` is its handle of a request.
pub struct Gateway<T> {
    pub queue: GatewayQueue<T>,
    pub detector: Box<dyn SaturationDetector>,
    pub config: FlowControlConfig,
    pub next_seq: u64,
    /// A dispatch tick is scheduled.
    pub tick_pending: bool,
    /// Sheddable requests on instances (`--in-flight-eviction` only).
    pub eviction: Option<EvictionTracker>,
    /// Sheddable requests dispatched and not yet on an instance: request id → dispatch time
    /// (`--in-flight-eviction` only).
    pub dispatched_sheddable: BTreeMap<u64, u64>,
    /// Request id → gateway wait (µs) of every dispatched request, for per-request records.
    pub waits_us: std::collections::HashMap<u64, u64>,
    /// Completed requests, kept when priority inversions are counted (every instance runs
    /// `priority-fcfs`).
    pub completions: Option<Vec<Completion>>,
    pub stats: GatewayStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(done: &[Completion]) -> u64 {
        let mut n = 0;
        for a in done {
            for b in done {
                let same = a.instance == b.instance && a.class == b.class;
                let earlier = (a.arrival_us, a.request_id) < (b.arrival_us, b.request_id);
                if same && earlier && a.e2e_us > 2 * b.e2e_us {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn inversions_match_the_pairwise_definition() {
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let done: Vec<Completion> = (0..300)
            .map(|i| Completion {
                instance: (next() % 3) as u32,
                class: (next() % 2) as u8,
                arrival_us: next() % 1000,
                request_id: i,
                e2e_us: next() % 50,
            })
            .collect();
        assert_eq!(priority_inversions(done.clone()), naive(&done));
        assert!(naive(&done) > 0);
    }

    #[test]
    fn hol_counts_instances_far_above_the_mean() {
        assert_eq!(hol_blocking_events(&[10.0, 0.0, 0.0, 0.0]), 1);
        assert_eq!(hol_blocking_events(&[1.0, 1.0]), 0);
        assert_eq!(hol_blocking_events(&[0.0, 0.0]), 0);
        assert_eq!(hol_blocking_events(&[5.0]), 0);
    }
}
