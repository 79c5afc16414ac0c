//! Prefill/decode disaggregation (llm-d / vLLM P/D): which requests are split, and the KV
//! transfer link between the prefill and the decode instances.
//!
//! A disaggregated request is routed twice at arrival: a decode instance is chosen among the
//! decode-capable pools (as llm-d's gateway picks the decode pod first), the decider looks at
//! it, and a prefill instance is chosen among the prefill-capable pools. The prefill instance
//! computes the prompt (its one output token is discarded, as with `max_tokens=1`); the prompt's
//! KV blocks then cross the link; the decode instance admits the request with the prompt's KV
//! present and produces every output token, the first included.

use serde::{Deserialize, Serialize};

use crate::cluster::scorer::ScorerWeight;
use crate::stats::Samples;

/// What a pool's instances do in a disaggregated fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolRole {
    /// Prefill only: computes prompts and hands their KV to a decode instance.
    Prefill,
    /// Decode only (and whole requests the decider keeps together).
    Decode,
    /// Both (llm-d's shared "prefill-decode" role).
    #[serde(alias = "prefill-decode")]
    #[value(alias = "prefill-decode")]
    Both,
}

impl PoolRole {
    pub fn prefills(self) -> bool {
        matches!(self, PoolRole::Prefill | PoolRole::Both)
    }

    pub fn decodes(self) -> bool {
        matches!(self, PoolRole::Decode | PoolRole::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolRole::Prefill => "prefill",
            PoolRole::Decode => "decode",
            PoolRole::Both => "both",
        }
    }
}

/// `--pd-decider`: which requests are disaggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PdDeciderKind {
    /// No request (pools with roles still route to decode-capable instances).
    Never,
    /// Every request.
    Always,
    /// Requests whose prompt tokens not cached on the chosen decode instance exceed
    /// `--pd-prefix-threshold` (llm-d's prefix-based P/D decider).
    PrefixThreshold,
}

/// Disaggregation settings of a fleet whose pools have roles.
#[derive(Debug, Clone, PartialEq)]
pub struct PdConfig {
    pub decider: PdDeciderKind,
    /// Non-cached prompt tokens above which `prefix-threshold` disaggregates.
    pub prefix_threshold_tokens: u32,
    /// Link bandwidth in bytes per µs (1 GB/s = 1000 bytes/µs).
    pub bandwidth_bytes_per_us: f64,
    /// Fixed cost of each transfer (µs).
    pub base_latency_us: f64,
    /// Concurrent transfers share the link's bandwidth fairly (processor sharing).
    pub contention: bool,
    /// The reference simulator's contention model instead: a transfer gets `bandwidth / n`
    /// for its whole duration, `n` the transfers under way when it starts (itself included).
    pub share_fixed_at_start: bool,
    /// Weighted-routing profiles of the prefill and decode pools (empty: the run's policy).
    pub prefill_scorers: Vec<ScorerWeight>,
    pub decode_scorers: Vec<ScorerWeight>,
}

impl PdConfig {
    /// Transfer time of `bytes` alone on the link, in whole µs (at least 1).
    pub fn solo_us(&self, bytes: f64) -> u64 {
        ((self.base_latency_us + bytes / self.bandwidth_bytes_per_us).ceil() as u64).max(1)
    }
}

/// When a disaggregated request passed each stage (µs of simulated time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PdStamps {
    /// The prefill instance finished the prompt (the transfer may start).
    pub prefill_done_us: u64,
    /// The KV blocks reached the decode instance.
    pub transfer_done_us: u64,
}

/// Which part of a request an instance serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Leg {
    /// The whole request (no disaggregation).
    #[default]
    Whole,
    /// The prompt only; the request leaves as a hand-off when its prompt is computed.
    Prefill,
    /// Everything after the prompt, whose KV arrived from a prefill instance.
    Decode(PdStamps),
}

/// Latency components of disaggregated requests' TTFT (decode instances record them).
#[derive(Debug, Clone, Default)]
pub struct PdLatencies {
    /// Arrival → prompt computed on the prefill instance (routing and queueing included).
    pub prefill: Samples,
    /// Prompt computed → KV present on the decode instance.
    pub transfer: Samples,
    /// KV present → first token from the decode instance (queueing there included).
    pub first_decode: Samples,
}

impl PdLatencies {
    pub fn new(exact: bool) -> Self {
        PdLatencies {
            prefill: Samples::new(exact),
            transfer: Samples::new(exact),
            first_decode: Samples::new(exact),
        }
    }

    pub fn merge(&mut self, other: &PdLatencies) {
        self.prefill.merge(&other.prefill);
        self.transfer.merge(&other.transfer);
        self.first_decode.merge(&other.first_decode);
    }
}

/// What the cluster counted about disaggregation.
#[derive(Debug, Clone, Default)]
pub struct PdReport {
    /// Requests the decider split (routed to a prefill instance).
    pub disaggregated: u64,
    /// Prefill legs that finished and handed their KV over.
    pub handoffs: u64,
    pub transfers_started: u64,
    pub transfers_completed: u64,
    /// KV bytes moved by started transfers (all TP shards).
    pub transfer_bytes: u64,
    /// Start → KV present on the decode instance, per completed transfer (µs).
    pub transfer_duration: Samples,
    /// Time a transfer took beyond its time alone on the link (µs; 0 without contention).
    pub transfer_queueing: Samples,
    pub peak_concurrent_transfers: u64,
    /// Sum and count of the number of transfers on the link at each start (the new one
    /// included): their ratio is the reference's mean transfer queue depth.
    pub depth_sum: u64,
    pub depth_samples: u64,
    /// Whether each instance decodes (decode and shared roles).
    pub decodes: Vec<bool>,
}

impl PdReport {
    pub fn mean_transfer_queue_depth(&self) -> f64 {
        if self.depth_samples == 0 { 0.0 } else { self.depth_sum as f64 / self.depth_samples as f64 }
    }
}

/// A link whose bandwidth concurrent transfers share equally (processor sharing): each of
/// `n` active transfers progresses at `bandwidth / n` until one finishes. Kept in virtual
/// time: every active transfer has received the same bytes since `virtual_bytes` was 0, so a
/// transfer starting at virtual `v` with `b` bytes ends when `virtual_bytes` reaches `v + b`
/// (O(log n) per event however many transfers share the link).
#[derive(Debug, Default)]
pub struct SharedLink {
    /// Bytes each active transfer has received since the link was created.
    virtual_bytes: f64,
    /// (virtual finish tag as ordered bits, start order, key); tags are non-negative.
    active: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u64, u32)>>,
    started: u64,
    last_us: u64,
    /// Bumped whenever the next completion time changes; older ticks are stale.
    pub generation: u64,
}

impl SharedLink {
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    fn advance(&mut self, now_us: u64, bandwidth: f64) {
        if !self.active.is_empty() && now_us > self.last_us {
            self.virtual_bytes += (now_us - self.last_us) as f64 * bandwidth / self.active.len() as f64;
        }
        self.last_us = now_us;
    }

    /// Puts a transfer on the link; returns when the next one finishes (for a tick).
    pub fn add(&mut self, now_us: u64, key: u32, bytes: f64, bandwidth: f64) -> u64 {
        self.advance(now_us, bandwidth);
        let tag = self.virtual_bytes + bytes.max(0.0);
        self.active.push(std::cmp::Reverse((tag.to_bits(), self.started, key)));
        self.started += 1;
        self.next_completion(now_us, bandwidth).expect("a transfer is active")
    }

    /// At a (current) tick: the transfers whose bytes have all crossed, removed (earliest
    /// finishing first, then in the order they started), and when the next one finishes.
    pub fn tick(&mut self, now_us: u64, bandwidth: f64, done: &mut Vec<u32>) -> Option<u64> {
        self.advance(now_us, bandwidth);
        // Anything within a nanosecond's worth of bytes is done (the tick was rounded up).
        let limit = self.virtual_bytes + bandwidth * 1e-3;
        while let Some(std::cmp::Reverse((tag, _, key))) = self.active.peek().copied() {
            if f64::from_bits(tag) > limit {
                break;
            }
            self.active.pop();
            done.push(key);
        }
        self.next_completion(now_us, bandwidth)
    }

    fn next_completion(&mut self, now_us: u64, bandwidth: f64) -> Option<u64> {
        self.generation += 1;
        let std::cmp::Reverse((tag, _, _)) = self.active.peek()?;
        let remaining = (f64::from_bits(*tag) - self.virtual_bytes).max(0.0);
        let us = (remaining * self.active.len() as f64 / bandwidth).ceil() as u64;
        Some(now_us.saturating_add(us.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_transfer_takes_bytes_over_bandwidth() {
        let mut link = SharedLink::default();
        assert_eq!(link.add(100, 7, 1000.0, 10.0), 200);
        let mut done = Vec::new();
        assert_eq!(link.tick(200, 10.0, &mut done), None);
        assert_eq!(done, [7]);
        assert!(link.is_empty());
    }

    #[test]
    fn concurrent_transfers_share_the_bandwidth_fairly() {
        let mut link = SharedLink::default();
        let mut done = Vec::new();
        // Two equal transfers started together finish together, at twice the solo time.
        link.add(0, 1, 1000.0, 10.0);
        assert_eq!(link.add(0, 2, 1000.0, 10.0), 200);
        assert_eq!(link.tick(200, 10.0, &mut done), None);
        assert_eq!(done, [1, 2]);
        // A transfer joining halfway: the first has 500 bytes left, both then run at 5 B/µs.
        done.clear();
        link.add(1000, 1, 1000.0, 10.0);
        assert_eq!(link.add(1050, 2, 1000.0, 10.0), 1150);
        assert_eq!(link.tick(1150, 10.0, &mut done), Some(1200));
        assert_eq!(done, [1]);
        done.clear();
        assert_eq!(link.tick(1200, 10.0, &mut done), None);
        assert_eq!(done, [2]);
    }

    #[test]
    fn solo_time_adds_the_base_latency() {
        let c = PdConfig {
            decider: PdDeciderKind::Always,
            prefix_threshold_tokens: 16,
            bandwidth_bytes_per_us: 25_000.0,
            base_latency_us: 50.0,
            contention: false,
            share_fixed_at_start: false,
            prefill_scorers: Vec::new(),
            decode_scorers: Vec::new(),
        };
        assert_eq!(c.solo_us(2_500_000.0), 150);
        assert_eq!(c.solo_us(0.0), 50);
    }
}
