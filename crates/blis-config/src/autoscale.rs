//! The reference simulator's autoscaling blocks, as keys of the run description:
//! `node-pools` / `autoscaler` / `instance-lifecycle` (in a `--policy-config` file spelled
//! `node_pools:` / `autoscaler:` / `instance_lifecycle:`). Inner keys keep the reference's
//! names; delays are `{mean, stddev}` in seconds, windows and intervals in µs.

use serde::{Deserialize, Serialize};

/// A delay distribution in seconds (normal, clamped at 0; `stddev: 0` = constant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelaySpec {
    #[serde(default)]
    pub mean: f64,
    #[serde(default)]
    pub stddev: f64,
}

impl DelaySpec {
    pub fn is_zero(&self) -> bool {
        self.mean == 0.0 && self.stddev == 0.0
    }
}

/// A pool of identical nodes the fleet's instances are placed on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePoolSpec {
    pub name: String,
    pub gpu_type: String,
    pub gpus_per_node: u32,
    #[serde(default)]
    pub gpu_memory_gib: f64,
    #[serde(default)]
    pub initial_nodes: usize,
    #[serde(default)]
    pub min_nodes: usize,
    pub max_nodes: usize,
    #[serde(default)]
    pub provisioning_delay: DelaySpec,
    /// Cost of one node for one hour (any currency).
    #[serde(default)]
    pub cost_per_hour: f64,
}

/// The V2 saturation analyzer's thresholds (0 = the reference's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerSpec {
    #[serde(default)]
    pub kv_cache_threshold: f64,
    #[serde(default)]
    pub scale_up_threshold: f64,
    #[serde(default)]
    pub scale_down_boundary: f64,
    #[serde(default)]
    pub avg_input_tokens: f64,
}

/// The autoscaler's timing and analyzer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerSpec {
    /// Tick interval (µs; 0 = off). `--model-autoscaler-interval-us` overrides it.
    #[serde(default)]
    pub interval_us: f64,
    #[serde(default)]
    pub scale_up_stabilization_window_us: f64,
    #[serde(default)]
    pub scale_down_stabilization_window_us: f64,
    #[serde(default)]
    pub hpa_scrape_delay: DelaySpec,
    #[serde(default)]
    pub analyzer: AnalyzerSpec,
}

/// How instances start and stop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSpec {
    #[serde(default)]
    pub loading_delay: DelaySpec,
    #[serde(default)]
    pub warm_up_request_count: u32,
    #[serde(default)]
    pub warm_up_ttft_factor: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_policy: Option<String>,
    #[serde(default)]
    pub warm_start_initial_instances: bool,
}
