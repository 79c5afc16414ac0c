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
use crate::cluster::routing::{RoutingConfig, RoutingKind, RoutingPolicy};
use crate::engine::{ClusterOptions, ControlPlane, PdRouting, Simulation};
use crate::instance::{Instance, InstanceConfig};
use crate::pd::{PdConfig, PoolRole};
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
    /// Threads that run independent instances' bursts (at least 1). Each thread takes a
    /// contiguous share of the instances; what they hand back is merged in instance order.
    pub threads: usize,
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
    /// Prefill/decode role in a disaggregated fleet (`None`: no role; such instances get no
    /// requests when other pools have roles, as in the reference simulator).
    pub role: Option<PoolRole>,
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
    /// Disaggregation settings; required exactly when some pool has a role.
    pub pd: Option<PdConfig>,
    /// Model autoscaling of the only pool: its `instances` serve from the start, and the
    /// fleet holds as many as the node pool can (the rest off until placed).
    pub autoscale: Option<crate::autoscale::AutoscaleConfig>,
}

impl SimConfig {
    pub fn num_instances(&self) -> usize {
        self.pools.iter().map(|p| p.instances).sum()
    }

    /// The role of each instance (in index order).
    pub fn instance_roles(&self) -> Vec<Option<PoolRole>> {
        self.pools.iter().flat_map(|p| std::iter::repeat_n(p.role, p.instances)).collect()
    }

    /// Routing by model when the pools serve several models (`None`: one model).
    pub fn model_routing(&self) -> Option<crate::models::ModelRouting> {
        crate::models::ModelRouting::new(
            self.pools.iter().flat_map(|p| std::iter::repeat_n(p.model.name.as_str(), p.instances)),
        )
    }

    /// The run's routing policy, or weighted routing over `scorers` when given.
    fn pool_routing(&self, scorers: &[crate::cluster::scorer::ScorerWeight]) -> Box<dyn RoutingPolicy> {
        if scorers.is_empty() {
            return self.routing.build();
        }
        RoutingConfig { kind: RoutingKind::Weighted, scorers: scorers.to_vec(), ..self.routing.clone() }
            .build()
    }

    fn pd_routing(&self, pd: &PdConfig) -> PdRouting {
        let roles = self.instance_roles();
        let with = |f: fn(PoolRole) -> bool| -> Vec<usize> {
            roles.iter().enumerate().filter(|(_, r)| r.is_some_and(f)).map(|(i, _)| i).collect()
        };
        PdRouting {
            decider: pd.decider,
            prefix_threshold_tokens: pd.prefix_threshold_tokens,
            block_size_tokens: self.routing.block_size_tokens,
            prefill: with(PoolRole::prefills),
            decode: with(PoolRole::decodes),
            prefill_policy: self.pool_routing(&pd.prefill_scorers),
            decode_policy: self.pool_routing(&pd.decode_scorers),
        }
    }

    /// Builds the simulator over `source`. Decision records go to `trace_sink` when given.
    pub fn build(
        &self,
        source: Box<dyn RequestSource + Send>,
        trace_sink: Option<Box<dyn Write + Send>>,
    ) -> Result<Simulation, String> {
        if self.autoscale.is_some() && (self.pools.len() != 1 || self.pd.is_some()) {
            return Err("autoscaling needs exactly one pool, without disaggregation".into());
        }
        let n = match &self.autoscale {
            Some(a) => a.capacity(),
            None => self.num_instances(),
        };
        assert!(n > 0, "a simulation needs at least one instance");
        let mut instances = Vec::with_capacity(n);
        for pool in &self.pools {
            let latency: Arc<dyn blis_latency::LatencyModel> = Arc::from(
                pool.latency
                    .build(&pool.model, &pool.gpu, pool.tp, &pool.latency_overrides)
                    .map_err(|e| e.to_string())?,
            );
            let count = if self.autoscale.is_some() { n } else { pool.instances };
            for _ in 0..count {
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
        let control = (n > 1 || self.flow_control.is_some() || self.autoscale.is_some()).then(|| {
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
            let mut control =
                ControlPlane::new(self.admission.build(), budgets, self.routing.build(), options, rng, n);
            if let Some(pd) = &self.pd {
                control.set_pd(self.pd_routing(pd));
            }
            if let Some(models) = self.model_routing() {
                control.set_models(models);
            }
            match &self.flow_control {
                Some(fc) => {
                    let mut gateway = fc.build();
                    let exact = self.pools.iter().any(|p| p.instance.exact_percentiles);
                    gateway.stats.wait_us = crate::stats::Samples::new(exact);
                    // As the reference: inversions only mean something under priority scheduling.
                    if self.pools.iter().all(|p| p.scheduler == SchedulerKind::PriorityFcfs) {
                        gateway.completions = Some(Vec::new());
                    }
                    control.with_gateway(gateway)
                }
                None => control,
            }
        });
        if self.pd.is_some() && self.model_routing().is_some() {
            return Err("prefill/decode disaggregation needs every pool to serve the same model".into());
        }
        if self.pd.is_some() && control.is_none() {
            return Err("prefill/decode disaggregation needs at least two instances".into());
        }
        let mut exec = self.exec;
        if self.autoscale.is_some() {
            exec.independent_instances = false;
        }
        let mut sim = Simulation::new(instances, source, control, self.horizon_us, exec);
        if let Some(a) = &self.autoscale {
            let initial = self.pools[0].instances;
            if initial == 0 || initial > n {
                return Err(format!("autoscaling: {initial} initial instances do not fit the pool's {n}"));
            }
            let rng = blis_workload::rng::stream(self.seed, "autoscaler");
            sim.set_autoscale(crate::autoscale::Autoscaler::new(a.clone(), initial, rng));
        }
        if let Some(pd) = &self.pd {
            let per_instance = |f: &dyn Fn(&PoolConfig) -> f64| -> Vec<f64> {
                self.pools.iter().flat_map(|p| std::iter::repeat_n(f(p), p.instances)).collect()
            };
            let bytes = per_instance(&|p| blis_model::kv_bytes_per_token_per_gpu(&p.model, p.tp));
            let tp = per_instance(&|p| f64::from(p.tp)).into_iter().map(|t| t as u32).collect();
            sim.set_pd(pd.clone(), &self.instance_roles(), bytes, tp);
        }
        sim.set_measurement(self.measurement.clone());
        Ok(sim)
    }
}
