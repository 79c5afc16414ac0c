//! A fully resolved run configuration, and how it becomes a [`Simulation`].
//!
//! The CLI, sweeps and the calibration tool all describe runs as a [`Scenario`], so the same
//! flags always build the same simulator.

use std::io::Write;
use std::sync::Arc;

use blis_latency::LatencyOverrides;
use blis_model::{GpuSpec, ModelSpec};
use blis_workload::RequestSource;

use crate::cluster::admission::{self, AdmissionConfig};
use crate::cluster::routing::{self, RoutingConfig};
use crate::engine::{ClusterOptions, ControlPlane, Simulation};
use crate::instance::{Instance, InstanceConfig};
use crate::{preemption, scheduler};

/// Everything needed to build a simulator, with every default already applied.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub model: ModelSpec,
    pub gpu: GpuSpec,
    pub tp: u32,
    pub latency_model: String,
    pub latency_overrides: LatencyOverrides,
    pub instance: InstanceConfig,
    pub num_instances: usize,
    pub scheduler: String,
    pub preemption_policy: String,
    pub admission_policy: String,
    pub admission: AdmissionConfig,
    pub routing_policy: String,
    pub routing: RoutingConfig,
    pub admission_latency_us: u64,
    pub routing_latency_us: u64,
    pub snapshot_refresh_interval_us: u64,
    pub cache_signal_delay_us: u64,
    pub trace_decisions: bool,
    pub counterfactual_k: usize,
    pub horizon_us: u64,
    /// Seed of the cluster's own random streams (router tie-breaking).
    pub seed: u64,
}

/// KV capacity and context length of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvResolution {
    pub total_kv_blocks: u32,
    pub max_model_len: u32,
}

/// Resolves `--total-kv-blocks` (else derived from GPU memory) and `--max-model-len` (else
/// derived from the model's config, capped by the cache).
pub fn resolve_kv(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    gpu_memory_utilization: f64,
    block_size_tokens: u32,
    explicit_blocks: Option<u64>,
    explicit_max_model_len: Option<u64>,
) -> Result<KvResolution, String> {
    let blocks = match explicit_blocks {
        Some(0) => return Err("--total-kv-blocks: must be at least 1".into()),
        Some(b) => b,
        None => blis_model::kv_blocks(model, gpu, tp, gpu_memory_utilization, u64::from(block_size_tokens))
            .map_err(|e| e.to_string())?,
    };
    let blocks = u32::try_from(blocks)
        .map_err(|_| format!("--total-kv-blocks: at most {}, got {blocks}", u32::MAX))?;
    let mml = blis_model::max_model_len(
        model,
        u64::from(blocks),
        u64::from(block_size_tokens),
        explicit_max_model_len,
    )
    .map_err(|e| e.to_string())?;
    let mml = u32::try_from(mml).unwrap_or(u32::MAX);
    Ok(KvResolution { total_kv_blocks: blocks, max_model_len: mml })
}

impl Scenario {
    /// Builds the simulator over `source`. Decision records go to `trace_sink` when given.
    pub fn build(
        &self,
        source: Box<dyn RequestSource + Send>,
        trace_sink: Option<Box<dyn Write + Send>>,
    ) -> Result<Simulation, String> {
        if self.num_instances == 0 {
            return Err("--num-instances: must be at least 1".into());
        }
        let latency: Arc<dyn blis_latency::LatencyModel> = Arc::from(
            blis_latency::build(
                &self.latency_model,
                &self.model,
                &self.gpu,
                self.tp,
                &self.latency_overrides,
            )
            .map_err(|e| e.to_string())?,
        );
        let mut instances = Vec::with_capacity(self.num_instances);
        for index in 0..self.num_instances {
            let sched = scheduler::by_name(&self.scheduler).ok_or_else(|| {
                format!(
                    "--scheduler: unknown '{}' (accepted: {})",
                    self.scheduler,
                    scheduler::NAMES.join(", ")
                )
            })?;
            let preempt = preemption::by_name(&self.preemption_policy).ok_or_else(|| {
                format!(
                    "--preemption-policy: unknown '{}' (accepted: {})",
                    self.preemption_policy,
                    preemption::NAMES.join(", ")
                )
            })?;
            instances.push(Instance::new(index, self.instance.clone(), latency.clone(), sched, preempt));
        }
        // Validate policy names even in single-instance mode, so a typo is never ignored.
        let admission = admission::build(&self.admission_policy, &self.admission)?;
        let routing = routing::build(&self.routing_policy, &self.routing)?;
        if self.counterfactual_k > self.num_instances && self.num_instances > 1 {
            return Err(format!(
                "--counterfactual-k: at most the instance count ({}), got {}",
                self.num_instances, self.counterfactual_k
            ));
        }
        let control = (self.num_instances > 1).then(|| {
            let options = ClusterOptions {
                admission_latency_us: self.admission_latency_us,
                routing_latency_us: self.routing_latency_us,
                snapshot_refresh_interval_us: self.snapshot_refresh_interval_us,
                cache_signal_delay_us: self.cache_signal_delay_us,
                trace_decisions: self.trace_decisions,
                counterfactual_k: self.counterfactual_k,
                trace_sink,
            };
            let rng = blis_workload::rng::stream(self.seed, "router");
            ControlPlane::new(admission, routing, options, rng, self.num_instances)
        });
        Ok(Simulation::new(instances, source, control, self.horizon_us))
    }
}
