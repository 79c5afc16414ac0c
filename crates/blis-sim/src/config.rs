//! A fully resolved description of what the engine simulates, and how it becomes a
//! [`Simulation`]. Every value is explicit: no defaults, no names to parse, no I/O. User-facing
//! configuration (flags, files, defaults) is resolved into this by the `blis-config` crate.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use blis_latency::{LatencyModelKind, LatencyOverrides};
use blis_model::{GpuSpec, ModelSpec};
use blis_workload::RequestSource;

use crate::cluster::admission::AdmissionConfig;
use crate::cluster::admission::tenant_budget::TenantBudgets;
use crate::cluster::flow::FlowControlConfig;
use crate::cluster::routing::RoutingConfig;
use crate::engine::{ClusterOptions, ControlPlane, Simulation};
use crate::instance::{Instance, InstanceConfig};
use crate::preemption::PreemptionKind;
use crate::scheduler::SchedulerKind;

/// How the simulation is carried out. These choices never change results (the property tests
/// run every case under each setting and compare the documents); they only change speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// Steady decode steps may skip visiting every decoder (the lockstep fast path).
    pub lockstep_decode: bool,
    /// Instances that nothing couples run their events in bursts, one instance at a time.
    pub independent_instances: bool,
}

/// A group of identical instances: same model, GPU, parallelism, step-time model and engine.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    pub instances: usize,
    pub model: ModelSpec,
    pub gpu: GpuSpec,
    pub tp: u32,
    pub latency: LatencyModelKind,
    pub latency_overrides: LatencyOverrides,
    pub instance: InstanceConfig,
    pub scheduler: SchedulerKind,
    pub preemption: PreemptionKind,
}

/// Control-plane timing and tracing (cluster mode only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterTiming {
    pub admission_latency_us: u64,
    pub routing_latency_us: u64,
    pub snapshot_refresh_interval_us: u64,
    pub cache_signal_delay_us: u64,
}

/// Everything needed to build a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// At least one pool; instances are numbered pool by pool.
    pub pools: Vec<PoolConfig>,
    pub admission: AdmissionConfig,
    /// Tenant → fraction of the cluster's running-batch slots (empty = no budgets).
    pub tenant_budgets: BTreeMap<String, f64>,
    /// The gateway queue between admission and routing (`--flow-control`; cluster mode).
    pub flow_control: Option<FlowControlConfig>,
    pub routing: RoutingConfig,
    pub timing: ClusterTiming,
    pub trace_decisions: bool,
    pub counterfactual_k: usize,
    /// No event after this time is simulated (`None` = run until nothing is left).
    pub horizon_us: Option<u64>,
    /// Seed of the cluster's own random streams (router tie-breaking).
    pub seed: u64,
    pub exec: ExecOptions,
    /// Warm-up exclusion, goodput targets, time-series sampling.
    pub measurement: crate::measure::Measurement,
}

impl SimConfig {
    pub fn num_instances(&self) -> usize {
        self.pools.iter().map(|p| p.instances).sum()
    }

    /// Builds the simulator over `source`. Decision records go to `trace_sink` when given.
    pub fn build(
        &self,
        source: Box<dyn RequestSource + Send>,
        trace_sink: Option<Box<dyn Write + Send>>,
    ) -> Result<Simulation, String> {
        let n = self.num_instances();
        assert!(n > 0, "a simulation needs at least one instance");
        let mut instances = Vec::with_capacity(n);
        for pool in &self.pools {
            let latency: Arc<dyn blis_latency::LatencyModel> = Arc::from(
                pool.latency
                    .build(&pool.model, &pool.gpu, pool.tp, &pool.latency_overrides)
                    .map_err(|e| e.to_string())?,
            );
            for _ in 0..pool.instances {
                instances.push(Instance::new(
                    instances.len(),
                    pool.instance.clone(),
                    latency.clone(),
                    pool.scheduler.build(),
                    pool.preemption.build(),
                    self.exec.lockstep_decode,
                ));
            }
        }
        // One instance needs no admission or routing, unless a gateway queue sits in front of it.
        let control = (n > 1 || self.flow_control.is_some()).then(|| {
            let options = ClusterOptions {
                timing: self.timing,
                trace_decisions: self.trace_decisions,
                counterfactual_k: self.counterfactual_k,
                trace_sink,
            };
            let capacity: u64 =
                self.pools.iter().map(|p| p.instances as u64 * u64::from(p.instance.max_running_reqs)).sum();
            let budgets = (!self.tenant_budgets.is_empty())
                .then(|| TenantBudgets::new(&self.tenant_budgets, capacity, self.admission.slo_priorities));
            let rng = blis_workload::rng::stream(self.seed, "router");
            let control =
                ControlPlane::new(self.admission.build(), budgets, self.routing.build(), options, rng, n);
            match &self.flow_control {
                Some(fc) => {
                    let mut gateway = fc.build();
                    // As the reference: inversions only mean something under priority scheduling.
                    if self.pools.iter().all(|p| p.scheduler == SchedulerKind::PriorityFcfs) {
                        gateway.completions = Some(Vec::new());
                    }
                    control.with_gateway(gateway)
                }
                None => control,
            }
        });
        let mut sim = Simulation::new(instances, source, control, self.horizon_us, self.exec);
        sim.set_measurement(self.measurement.clone());
        Ok(sim)
    }
}
