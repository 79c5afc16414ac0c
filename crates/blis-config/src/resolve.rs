//! From a merged [`RunSpec`] to a [`RunConfig`]: load the model and GPU, derive what the user
//! left to the simulator (KV capacity, context length, the workload's own settings), check every
//! value, and name what the user wrote when something is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blis_latency::{LatencyModelKind, LatencyOverrides};
use blis_model::KvCapacityFormula;
use blis_model::{GpuSpec, HubOptions, ModelSpec};
use blis_sim::EngineSemantics;
use blis_sim::cluster::admission::{AdmissionConfig, AdmissionKind};
use blis_sim::cluster::routing::{RoutingConfig, RoutingKind};
use blis_sim::fitness::FitnessWeights;
use blis_sim::instance::{KvTierConfig, ReloadTiming};
use blis_sim::priority::PriorityKind;
use blis_sim::priority::SloPriorities;
use blis_sim::saturation::Detector;
use blis_sim::{
    ClusterTiming, ExecOptions, InstanceConfig, PdConfig, PdDeciderKind, PoolConfig, PoolRole, SimConfig,
};
use blis_workload::{
    GenerationSemantics, Overrides, Preset, SloClass, SyntheticParams, ThinkTime, TraceHeader, TraceRecord,
    VirtualUsers, WorkloadSpec,
};

use crate::error::ConfigError;
use crate::layers::{Layers, PATH_KEYS, Source};
use crate::pools::{POOL_KEYS, PoolSpec};
use crate::spec::{ArrivalProcess, Compat, RunSpec, SessionMode, TraceLevel, WorkloadSpecRef};

mod autoscale;
mod flow;

/// Seed of the cluster's streams (and of built-in workloads) when none is given.
pub const DEFAULT_SEED: u64 = 42;
/// Requests of a built-in workload when `num-requests` is not given.
pub const DEFAULT_NUM_REQUESTS: u64 = 100;

/// What the environment provides to resolution: where model configs come from, and how much
/// memory a run may plan to use (`None` = no check).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub hub: HubOptions,
    pub memory_limit_bytes: Option<u64>,
}

/// Where the requests come from.
#[derive(Debug, Clone)]
pub enum WorkloadPlan {
    /// A workload spec (a file, inline, or a built-in workload), the flags that override it,
    /// and whose generation rules expand it.
    Spec { spec: Box<WorkloadSpec>, overrides: Overrides, generation: GenerationSemantics },
    /// A recorded trace, replayed row by row under `seed`, its sessions timed by `sessions`.
    Trace { records: Vec<TraceRecord>, seed: u64, file: String, sessions: blis_workload::SessionMode },
}

/// Output files of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    pub metrics_path: Option<PathBuf>,
    pub results_path: Option<PathBuf>,
    /// TraceV2 export prefix (`PREFIX.yaml` + `PREFIX.csv`).
    pub trace_output: Option<PathBuf>,
    pub decision_trace_path: Option<PathBuf>,
    /// `--report FILE.html`.
    pub report: Option<PathBuf>,
    /// `--timeseries-path FILE.csv`.
    pub timeseries_path: Option<PathBuf>,
    /// `--saturation-report FILE.json`: the detectors' per-event verdicts.
    pub saturation_report: Option<PathBuf>,
}

/// Post-run analyses added to the metrics document.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub fitness: Option<FitnessWeights>,
    /// `--detectors` (empty = none), in canonical order.
    pub detectors: Vec<Detector>,
    pub final_window_us: Option<u64>,
    pub summarize_trace: bool,
    /// `--slo` objectives (empty = none).
    pub objectives: Vec<crate::slo::Objective>,
}

/// A run, fully resolved and checked: what every entry point (CLI, sweep rows, replay,
/// calibration, Python) builds and runs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The description as resolved (defaults applied; keys that do not apply to this run and
    /// values derived from the model or workload left out), as `--dump-config` prints it.
    pub spec: RunSpec,
    pub sim: SimConfig,
    pub workload: WorkloadPlan,
    pub outputs: Outputs,
    pub analysis: Analysis,
    /// Accepted settings that have no effect in this run, for the caller to show.
    pub warnings: Vec<String>,
    /// KV blocks and context length of each instance, as resolved.
    pub derived: Derived,
    /// Seeds to run (`--replicas`): the base seed and the next `replicas − 1`.
    pub replicas: u32,
}

/// Values the simulator derived rather than read: of the one pool, or of each of `pools`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Derived {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_kv_blocks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolDerived>,
}

/// KV blocks and context length of one pool's instances, as resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolDerived {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub total_kv_blocks: u32,
    pub max_model_len: u32,
}

/// Keys that only shape a built-in workload.
const SYNTHETIC_KEYS: &[&str] = &[
    "workload",
    "rate",
    "arrival-process",
    "prompt-tokens",
    "prompt-tokens-stdev",
    "prompt-tokens-min",
    "prompt-tokens-max",
    "output-tokens",
    "output-tokens-stdev",
    "output-tokens-min",
    "output-tokens-max",
    "prefix-tokens",
];

/// Keys that only matter in cluster mode.
const CLUSTER_KEYS: &[&str] = &[
    "admission-policy",
    "admission-latency",
    "token-bucket-capacity",
    "token-bucket-refill-rate",
    "tier-shed-threshold",
    "tier-shed-min-priority",
    "gaie-qd-threshold",
    "gaie-kv-threshold",
    "tenant-budgets",
    "routing-policy",
    "routing-scorers",
    "routing-latency",
    "snapshot-refresh-interval",
    "cache-signal-delay",
    "trace-level",
    "counterfactual-k",
    "summarize-trace",
    "decision-trace-path",
];

struct Ctx<'a> {
    layers: &'a Layers,
    warnings: Vec<String>,
    compat: Compat,
}

impl Ctx<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(key, self.layers.describe(key), message)
    }

    fn warn(&mut self, key: &str, message: impl std::fmt::Display) {
        self.warnings.push(format!("{}: {message}", self.layers.describe(key)));
    }

    fn explicit(&self, key: &str) -> bool {
        self.layers.is_explicit(key)
    }

    /// Whether the user set `key` to something other than its default: what "has no effect"
    /// warnings are about (a dumped configuration spells out every default).
    fn customized(&self, key: &str) -> bool {
        self.explicit(key)
            && self.layers.origin(key).and_then(|l| l.values.get(key)) != self.layers.default_value(key)
    }
}

fn required<T: Clone>(v: &Option<T>, key: &str) -> T {
    v.clone().unwrap_or_else(|| panic!("`{key}` has a default"))
}

/// Resolves the layers into a runnable configuration.
pub fn resolve(layers: &Layers, catalog: &Catalog) -> Result<RunConfig, ConfigError> {
    layers.check_finite()?;
    let compat = layers.merged()?.compat.unwrap_or(Compat::Blis);
    let layers = &layers.with_compat_defaults(compat);
    let mut spec = layers.merged()?;
    let mut cx = Ctx { layers, warnings: Vec::new(), compat };
    if compat == Compat::Reference
        && let Some(origin) = layers.origin("priority-policy")
        && matches!(origin.source, Source::PolicyFile(_))
    {
        cx.warn("priority-policy", "no effect under --compat reference (the reference orders by SLO class)");
        spec.priority_policy = Some(PriorityKind::SloBased);
    }
    // The policy file was read into its own layer; the resolved spec stands on its own.
    spec.policy_config = None;

    check_paths(&spec, &cx)?;
    let pd_pools = pd_pools(&spec, &cx)?;
    let (pools, derived) = match spec.pools.clone() {
        None if pd_pools.is_some() => {
            let list = pd_pools.expect("checked");
            // The fleet's size, spelled out (it defaults to the roles' instances).
            spec.num_instances = Some(list.iter().map(|p| p.instances).sum());
            let (pools, derived) = fleet(&mut spec, &mut cx, catalog, &list, true)?;
            (pools, Derived { total_kv_blocks: None, max_model_len: None, pools: derived })
        }
        None => {
            let num_instances = required(&spec.num_instances, "num-instances");
            let (pool, derived) = build_pool(&spec, &cx, catalog, "default", num_instances)?;
            if num_instances == 0 {
                return Err(cx.err("num-instances", "must be at least 1"));
            }
            check_memory(&cx, catalog, &[(num_instances, derived.total_kv_blocks)], "num-instances")?;
            let derived = Derived {
                total_kv_blocks: Some(derived.total_kv_blocks),
                max_model_len: Some(derived.max_model_len),
                pools: Vec::new(),
            };
            (vec![pool], derived)
        }
        Some(list) => {
            let (pools, derived) = fleet(&mut spec, &mut cx, catalog, &list, false)?;
            (pools, Derived { total_kv_blocks: None, max_model_len: None, pools: derived })
        }
    };
    let num_instances = pools.iter().map(|p| p.instances as u32).sum::<u32>();
    let tier_requested = spec.kv_cpu_blocks.is_some_and(|b| b > 0) || spec.kv_offload_config.is_some();
    kv_tier_warnings(
        &mut cx,
        tier_requested,
        pools[0].instance.prefix_caching,
        pools[0].instance.kv_tier.as_ref(),
    );
    let autoscale = autoscale::autoscale(&spec, &cx, &pools)?;
    // Off, its key describes nothing (the resolved description stays that of a fixed fleet);
    // on, it spells the interval in effect.
    spec.model_autoscaler_interval_us = autoscale.as_ref().map(|a| a.interval_us);
    let cluster = num_instances > 1 || autoscale.is_some();
    let pd = pd_config(&spec, &mut cx, &pools)?;
    if pd.is_none() {
        // Without disaggregation its keys describe nothing (and the resolved description
        // stays that of a plain fleet).
        spec.prefill_instances = None;
        spec.decode_instances = None;
        spec.prefill_decode_instances = None;
        spec.pd_decider = None;
        spec.pd_prefix_threshold = None;
        spec.pd_transfer_bandwidth = None;
        spec.pd_transfer_base_latency = None;
        spec.pd_transfer_contention = None;
        spec.prefill_routing_scorers = None;
        spec.decode_routing_scorers = None;
    }
    let admission = admission(&spec, &cx)?;
    // Every pool has the run's block size: prefix hashes mean the same on every instance.
    let routing = routing(&spec, &cx, pools[0].instance.block_size_tokens)?;
    let tenant_budgets = tenant_budgets(&spec, &cx)?;
    let flow_control = flow::flow_control(&mut spec, &mut cx, admission.slo_priorities)?;
    let trace_level = required(&spec.trace_level, "trace-level");
    let counterfactual_k = required(&spec.counterfactual_k, "counterfactual-k");
    let summarize_trace = required(&spec.summarize_trace, "summarize-trace");
    let trace_decisions =
        trace_level == TraceLevel::Decisions || summarize_trace || spec.decision_trace_path.is_some();
    if counterfactual_k > num_instances && cluster {
        return Err(cx.err(
            "counterfactual-k",
            format!("at most the instance count ({num_instances}), got {counterfactual_k}"),
        ));
    }
    if cx.customized("counterfactual-k") && !trace_decisions {
        cx.warn("counterfactual-k", "no effect without --trace-level decisions");
    }
    if !cluster && flow_control.is_none() {
        for key in CLUSTER_KEYS {
            if cx.customized(key) {
                cx.warn(
                    key,
                    "no effect with one instance (single-instance mode has no admission or routing)",
                );
            }
        }
    } else if routing.kind != RoutingKind::Weighted && cx.customized("routing-scorers") {
        cx.warn("routing-scorers", "no effect without --routing-policy weighted");
    }
    if admission.kind != AdmissionKind::TokenBucket && cluster {
        for key in ["token-bucket-capacity", "token-bucket-refill-rate"] {
            if cx.customized(key) {
                cx.warn(key, "no effect without --admission-policy token-bucket");
            }
        }
    }
    let timing = ClusterTiming {
        admission_latency_us: required(&spec.admission_latency, "admission-latency").0,
        routing_latency_us: required(&spec.routing_latency, "routing-latency").0,
        snapshot_refresh_interval_us: required(&spec.snapshot_refresh_interval, "snapshot-refresh-interval")
            .0,
        cache_signal_delay_us: required(&spec.cache_signal_delay, "cache-signal-delay").0,
    };
    let (workload, seed) = workload(&mut spec, &mut cx)?;
    let analysis = analysis(&spec, &mut cx, summarize_trace)?;
    let measurement = measurement(&spec, &cx, &workload)?;
    let horizon_us = spec.horizon.map(|h| h.0);
    if horizon_us == Some(0) {
        return Err(cx.err("horizon", "must be > 0 µs (leave it out to run every request to completion)"));
    }
    let exec = ExecOptions {
        lockstep_decode: required(&spec.lockstep_decode, "lockstep-decode"),
        independent_instances: required(&spec.independent_instances, "independent-instances"),
        threads: match required(&spec.threads, "threads") {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n as usize,
        },
    };
    let instance_kv_tier_off = pools.iter().all(|p| p.instance.kv_tier.is_none());
    let mut pools = pools;
    let mut routing = routing;
    let lora = lora_config(&mut spec, &mut cx, &workload)?;
    let mut derived = derived;
    if let Some(l) = &lora
        && let Some(blocks) = derived.total_kv_blocks.as_mut()
        && spec.total_kv_blocks.is_none()
    {
        // As vLLM (and the reference) do, the adapter slots' memory is set aside before the KV
        // cache is sized: capacity × footprint of the largest declared rank, split over TP.
        let p = &mut pools[0];
        let block_bytes =
            blis_model::kv_bytes_per_token_per_gpu(&p.model, p.tp) * f64::from(p.instance.block_size_tokens);
        let lost = (l.reserved_bytes() / f64::from(p.tp) / block_bytes.max(1.0)).ceil();
        if lost >= f64::from(*blocks) {
            return Err(cx.err(
                "lora-adapter-capacity",
                format!(
                    "{} adapter slots ({:.2} GiB) leave no GPU memory for the KV cache",
                    l.capacity,
                    l.reserved_bytes() / f64::from(1u32 << 30)
                ),
            ));
        }
        *blocks -= lost as u32;
        p.instance.total_kv_blocks = *blocks;
    }
    for p in &mut pools {
        p.instance.lora.clone_from(&lora);
    }
    lora_scorer(&spec, &mut cx, &mut routing, cluster)?;
    let sim = SimConfig {
        pd,
        pools,
        admission,
        tenant_budgets,
        flow_control,
        routing,
        timing,
        trace_decisions,
        counterfactual_k: counterfactual_k as usize,
        horizon_us,
        seed,
        exec,
        measurement,
        autoscale,
    };
    if let Some(models) = sim.model_routing() {
        let key = if matches!(workload, WorkloadPlan::Trace { .. }) {
            "workload-trace"
        } else if spec.workload_spec.is_some() {
            "workload-spec"
        } else {
            "workload"
        };
        check_models(&models, key, &workload, &mut cx)?;
    } else if let WorkloadPlan::Spec { spec: w, .. } = &workload {
        // One model: requests are not checked against it, but say when they name another.
        let served = &sim.pools[0].model.name;
        let paths =
            w.clients.iter().enumerate().map(|(i, c)| (format!("clients[{i}]"), c.model.as_deref())).chain(
                w.cohorts.iter().enumerate().map(|(i, c)| (format!("cohorts[{i}]"), c.model.as_deref())),
            );
        for (path, model) in paths {
            if let Some(m) = model.map(str::trim).filter(|m| !m.is_empty())
                && blis_model::registry_key(m) != blis_model::registry_key(served)
            {
                cx.warn(
                    "workload-spec",
                    format!(
                        "{path}.model {m}: the fleet serves only {served}, which serves these requests too"
                    ),
                );
            }
        }
    }
    let outputs = Outputs {
        metrics_path: spec.metrics_path.clone(),
        results_path: spec.results_path.clone(),
        trace_output: spec.trace_output.clone(),
        decision_trace_path: spec.decision_trace_path.clone(),
        report: spec.report.clone(),
        timeseries_path: spec.timeseries_path.clone(),
        saturation_report: spec.saturation_report.clone(),
    };
    if !cluster {
        for key in CLUSTER_KEYS {
            if !cx.explicit(key) {
                clear_key(&mut spec, key);
            }
        }
    }
    if lora.is_none() {
        for key in LORA_COST_KEYS {
            if !cx.explicit(key) {
                clear_key(&mut spec, key);
            }
        }
    }
    if instance_kv_tier_off {
        for key in KV_TIER_KEYS {
            if !cx.explicit(key) {
                clear_key(&mut spec, key);
            }
        }
    }
    let replicas = required(&spec.replicas, "replicas");
    if !(1..=1024).contains(&replicas) {
        return Err(cx.err("replicas", format!("must be in 1..=1024, got {replicas}")));
    }
    Ok(RunConfig { spec, sim, workload, outputs, analysis, warnings: cx.warnings, derived, replicas })
}

/// The workload of a run description alone: the request stream [`resolve`] would build from
/// the same layers, its seed, and the warnings about workload keys. `blis observe` sends this
/// stream to a real server, so it needs neither a known model nor hardware.
pub fn resolve_workload(layers: &Layers) -> Result<(WorkloadPlan, u64, Vec<String>), ConfigError> {
    layers.check_finite()?;
    let compat = layers.merged()?.compat.unwrap_or(Compat::Blis);
    let layers = &layers.with_compat_defaults(compat);
    let mut spec = layers.merged()?;
    let mut cx = Ctx { layers, warnings: Vec::new(), compat };
    let (plan, seed) = workload(&mut spec, &mut cx)?;
    Ok((plan, seed, cx.warnings))
}

/// Unsets `key` in `spec`.
fn clear_key(spec: &mut RunSpec, key: &str) {
    let mut map = spec.to_map();
    if map.remove(key).is_some() {
        *spec = RunSpec::from_map(map).expect("removing a key keeps a spec valid");
    }
}

/// Outputs must not overwrite inputs or each other.
fn check_paths(spec: &RunSpec, cx: &Ctx) -> Result<(), ConfigError> {
    if let Some(p) = &spec.timeseries_path
        && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        return Err(cx.err(
            "timeseries-path",
            format!(
                "{}: only CSV is written (give a .csv path; pandas.read_csv(path).to_parquet(...) converts it)",
                p.display()
            ),
        ));
    }
    let map = spec.to_map();
    let mut inputs: Vec<(&str, PathBuf)> = Vec::new();
    let mut outputs: Vec<(&str, PathBuf)> = Vec::new();
    for key in PATH_KEYS {
        let Some(serde_json::Value::String(p)) = map.get(*key) else { continue };
        let p = PathBuf::from(p);
        match *key {
            "metrics-path"
            | "results-path"
            | "decision-trace-path"
            | "report"
            | "timeseries-path"
            | "saturation-report" => outputs.push((key, p)),
            "trace-output" => {
                let (h, c) = crate::outputs::trace_paths(&p);
                outputs.push((key, h));
                outputs.push((key, c));
            }
            _ => inputs.push((key, p)),
        }
    }
    for (i, (key, out)) in outputs.iter().enumerate() {
        if let Some((input_key, _)) = inputs.iter().find(|(_, input)| same_file(input, out)) {
            return Err(cx.err(
                key,
                format!(
                    "{} is also the input of {}; refusing to overwrite it",
                    out.display(),
                    cx.layers.describe(input_key)
                ),
            ));
        }
        if let Some((other, _)) = outputs[..i].iter().find(|(_, o)| same_file(o, out)) {
            return Err(
                cx.err(key, format!("{} is also the output of {}", out.display(), cx.layers.describe(other)))
            );
        }
    }
    Ok(())
}

/// Whether two paths name the same file (existing files by identity, others by spelling).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => {
            let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
            abs(a) == abs(b)
        }
    }
}

fn model_and_gpu(
    spec: &RunSpec,
    cx: &Ctx,
    catalog: &Catalog,
) -> Result<(ModelSpec, GpuSpec, u32), ConfigError> {
    let Some(name) = &spec.model else {
        return Err(ConfigError::new(
            "model",
            "--model",
            "required: a HuggingFace model id, e.g. meta-llama/llama-3.1-8b-instruct",
        ));
    };
    let model = blis_model::load_model(name, spec.model_config_folder.as_deref(), &catalog.hub)
        .map_err(|e| cx.err("model", e.to_string()))?;
    let extra = match &spec.hardware_config {
        Some(path) => {
            blis_model::load_hardware_config(path).map_err(|e| cx.err("hardware-config", e.to_string()))?
        }
        None => Vec::new(),
    };
    let hardware = required(&spec.hardware, "hardware");
    let gpu = blis_model::gpu_by_name(&hardware, &extra).map_err(|e| cx.err("hardware", e.to_string()))?;
    let tp = required(&spec.tp, "tp");
    blis_model::check_tensor_parallel(&model, tp).map_err(|e| match e {
        blis_model::ModelError::InvalidArgument { reason, .. } => cx.err("tp", reason),
        other => cx.err("tp", other.to_string()),
    })?;
    Ok((model, gpu, tp))
}

fn engine(
    spec: &RunSpec,
    cx: &Ctx,
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
) -> Result<(InstanceConfig, PoolDerived), ConfigError> {
    let block_size = required(&spec.block_size_in_tokens, "block-size-in-tokens");
    if block_size == 0 {
        return Err(cx.err("block-size-in-tokens", "must be at least 1"));
    }
    let utilization = required(&spec.gpu_memory_utilization, "gpu-memory-utilization");
    if !(utilization > 0.0 && utilization <= 1.0) {
        return Err(cx.err("gpu-memory-utilization", format!("must be in (0, 1], got {utilization}")));
    }
    let max_seqs = required(&spec.max_num_seqs, "max-num-seqs");
    if max_seqs == 0 {
        return Err(cx.err("max-num-seqs", "must be at least 1"));
    }
    let budget = required(&spec.max_num_batched_tokens, "max-num-batched-tokens");
    if budget < block_size {
        return Err(cx.err(
            "max-num-batched-tokens",
            format!("must be at least one block ({block_size} tokens), got {budget}"),
        ));
    }
    let blocks = match spec.total_kv_blocks {
        Some(0) => return Err(cx.err("total-kv-blocks", "must be at least 1")),
        Some(b) => u32::try_from(b)
            .map_err(|_| cx.err("total-kv-blocks", format!("at most {}, got {b}", u32::MAX)))?,
        None => {
            let formula = match cx.compat {
                Compat::Blis => KvCapacityFormula::Vllm,
                Compat::Reference => KvCapacityFormula::Reference,
            };
            let b = blis_model::kv_blocks_with(model, gpu, tp, utilization, u64::from(block_size), formula)
                .map_err(|e| {
                ConfigError::new(
                    "total-kv-blocks",
                    cx.layers.describe("hardware"),
                    format!("KV capacity: {e}"),
                )
            })?;
            u32::try_from(b).map_err(|_| {
                ConfigError::new(
                    "total-kv-blocks",
                    cx.layers.describe("hardware"),
                    format!(
                        "{} ({} GiB) would hold {b} KV blocks of {block_size} tokens, more than the {} an instance \
                         can track; check the GPU's memory figure",
                        gpu.name,
                        gpu.memory_gib,
                        u32::MAX
                    ),
                )
            })?
        }
    };
    let mml = blis_model::max_model_len(model, u64::from(blocks), u64::from(block_size), spec.max_model_len)
        .map_err(|e| cx.err("max-model-len", e.to_string()))?;
    let mml = u32::try_from(mml).unwrap_or(u32::MAX);
    let priorities = slo_priorities(spec, cx)?;
    let instance = InstanceConfig {
        max_running_reqs: max_seqs,
        max_scheduled_tokens: budget,
        long_prefill_token_threshold: required(
            &spec.long_prefill_token_threshold,
            "long-prefill-token-threshold",
        ),
        max_model_len: mml,
        block_size_tokens: block_size,
        total_kv_blocks: blocks,
        prefix_caching: !required(&spec.no_prefix_caching, "no-prefix-caching"),
        async_scheduling: required(&spec.async_scheduling, "async-scheduling"),
        priority: required(&spec.priority_policy, "priority-policy"),
        slo_priorities: priorities,
        record_requests: false,
        track_classes: true,
        exact_percentiles: required(&spec.exact_percentiles, "exact-percentiles"),
        semantics: match cx.compat {
            Compat::Blis => EngineSemantics::BLIS,
            Compat::Reference => EngineSemantics::REFERENCE,
        },
        kv_tier: kv_tier(spec, cx, model, tp, block_size)?,
        lora: None,
    };
    Ok((instance, PoolDerived { name: String::new(), total_kv_blocks: blocks, max_model_len: mml }))
}

/// LoRA cost keys with defaults (left out of the resolved spec when no adapter is simulated).
const LORA_COST_KEYS: &[&str] =
    &["lora-load-base-latency-us", "lora-load-bandwidth-bytes-us", "lora-footprint-bytes-per-rank"];

/// The LoRA adapters (`--lora-config`, `--lora-*`), `None` when none is simulated; checks the
/// workload's adapter references against the registry.
fn lora_config(
    spec: &mut RunSpec,
    cx: &mut Ctx,
    workload: &WorkloadPlan,
) -> Result<Option<Arc<blis_sim::lora::LoraConfig>>, ConfigError> {
    use crate::lora;
    let path = spec.lora_config.clone();
    let block = match &path {
        Some(p) => lora::load(p)?,
        None => lora::Block::default(),
    };
    let base_models = lora::base_models(&block);
    let pick = |v: Option<f64>, key: &str| v.filter(|_| cx.explicit(key));
    let flags = lora::Overrides {
        capacity: spec.lora_adapter_capacity,
        load_base_latency_us: pick(spec.lora_load_base_latency_us, "lora-load-base-latency-us"),
        load_bandwidth_bytes_us: pick(spec.lora_load_bandwidth_bytes_us, "lora-load-bandwidth-bytes-us"),
        footprint_bytes_per_rank: pick(spec.lora_footprint_bytes_per_rank, "lora-footprint-bytes-per-rank"),
    };
    let loading = match cx.compat {
        Compat::Blis => blis_sim::lora::LoraLoading::StepStall,
        Compat::Reference => blis_sim::lora::LoraLoading::HeadOfLine,
    };
    let file_err = |field: &str, message: String| {
        let p = path.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        ConfigError::new("lora-config", format!("--lora-config {p}: {field}"), message)
    };
    let (config, warnings) = lora::build(block, flags, loading).map_err(|(key, message)| {
        match key.strip_prefix("lora-config: ") {
            Some(field) => file_err(field, message),
            None => cx.err(&key, message),
        }
    })?;
    for (key, message) in warnings {
        match key.strip_prefix("lora-config: ") {
            Some(field) => cx.warnings.push(format!("--lora-config: {field}: {message}")),
            None => cx.warn(&key, message),
        }
    }
    // The workload's adapters must be declared (and attach to the model their client names).
    if let WorkloadPlan::Spec { spec: w, .. } = workload {
        let key = "workload-spec";
        for (field, adapter, model) in blis_workload::validate::adapter_references(w) {
            let declared = config.as_ref().is_some_and(|c| c.index(&adapter).is_some());
            if !declared {
                let why = if config.is_some() {
                    "is not declared in --lora-config".to_string()
                } else {
                    "needs adapters declared with --lora-config and --lora-adapter-capacity".to_string()
                };
                return Err(cx.err(key, format!("{field}: adapter {adapter:?} {why}")));
            }
            if let (Some(base), Some(m)) = (base_models.get(&adapter), model.as_deref().map(str::trim))
                && !m.is_empty()
                && blis_model::registry_key(m) != blis_model::registry_key(base)
            {
                return Err(cx.err(
                    key,
                    format!(
                        "{field}: adapter {adapter:?} attaches to {base}, but the client names model {m}"
                    ),
                ));
            }
        }
    }
    if let WorkloadPlan::Trace { records, .. } = workload
        && let Some(r) = records.iter().find(|r| r.adapter.as_deref().is_some_and(|a| !a.is_empty()))
    {
        let adapter = r.adapter.as_deref().unwrap_or_default();
        match &config {
            Some(c) => {
                let undeclared =
                    records.iter().filter_map(|r| r.adapter.as_deref()).find(|a| !a.is_empty() && c.index(a).is_none());
                if let Some(u) = undeclared {
                    return Err(cx.err(
                        "workload-trace",
                        format!("adapter {u:?} of the trace is not declared in --lora-config"),
                    ));
                }
            }
            None => cx.warn(
                "workload-trace",
                format!(
                    "its requests name LoRA adapters ({adapter:?}, …): not simulated without --lora-config and \
                     --lora-adapter-capacity"
                ),
            ),
        }
    }
    if let Some(c) = &config {
        // The resolved description spells out the coefficients in effect.
        spec.lora_load_base_latency_us = Some(c.load_base_latency_us);
        spec.lora_load_bandwidth_bytes_us = Some(c.load_bandwidth_bytes_per_us);
        spec.lora_footprint_bytes_per_rank = Some(c.footprint_bytes_per_rank);
        spec.lora_adapter_capacity = Some(i64::from(c.capacity));
    }
    Ok(config.map(Arc::new))
}

/// `--lora-scorer-weight`: adds `lora-affinity` to the weighted profile.
fn lora_scorer(
    spec: &RunSpec,
    cx: &mut Ctx,
    routing: &mut RoutingConfig,
    cluster: bool,
) -> Result<(), ConfigError> {
    use blis_sim::cluster::scorer::{DEFAULT_PROFILE, ScorerKind, ScorerWeight};
    let Some(weight) = spec.lora_scorer_weight else { return Ok(()) };
    if !(weight.is_finite() && weight > 0.0) {
        return Err(cx.err("lora-scorer-weight", format!("must be a finite number > 0, got {weight}")));
    }
    if routing.kind != RoutingKind::Weighted || !cluster {
        cx.warn(
            "lora-scorer-weight",
            "no effect without --routing-policy weighted (and more than one instance)",
        );
        return Ok(());
    }
    if routing.scorers.iter().any(|s| s.name == ScorerKind::LoraAffinity) {
        return Err(cx.err(
            "lora-scorer-weight",
            "lora-affinity is already in --routing-scorers; set its weight there or here, not both",
        ));
    }
    if routing.scorers.is_empty() {
        routing.scorers = DEFAULT_PROFILE.to_vec();
    }
    routing.scorers.push(ScorerWeight { name: ScorerKind::LoraAffinity, weight });
    Ok(())
}

/// Keys of the CPU KV tier (left out of the resolved spec when the tier is off and unset).
const KV_TIER_KEYS: &[&str] =
    &["kv-cpu-blocks", "kv-offload-threshold", "kv-transfer-bandwidth", "kv-transfer-base-latency"];

/// The CPU KV tier (`--kv-cpu-blocks` and friends), `None` when off.
fn kv_tier(
    spec: &RunSpec,
    cx: &Ctx,
    model: &ModelSpec,
    tp: u32,
    block_size: u32,
) -> Result<Option<KvTierConfig>, ConfigError> {
    let blocks = required(&spec.kv_cpu_blocks, "kv-cpu-blocks");
    let blocks = u32::try_from(blocks)
        .map_err(|_| cx.err("kv-cpu-blocks", format!("at most {}, got {blocks}", u32::MAX)))?;
    let threshold = required(&spec.kv_offload_threshold, "kv-offload-threshold");
    if !(0.0..=1.0).contains(&threshold) {
        return Err(cx.err("kv-offload-threshold", format!("must be in [0, 1], got {threshold}")));
    }
    let bandwidth = required(&spec.kv_transfer_bandwidth, "kv-transfer-bandwidth");
    let bytes_per_block = (blis_model::kv_bytes_per_token_per_gpu(model, tp) * f64::from(block_size)) as u64;
    let offload = match &spec.kv_offload_config {
        Some(_) if blocks > 0 => {
            return Err(cx.err(
                "kv-offload-config",
                "set either --kv-offload-config or --kv-cpu-blocks, not both (two descriptions of the CPU tier)",
            ));
        }
        Some(path) => Some(crate::kv_offload::load(path, bytes_per_block.max(1), block_size)?),
        None => None,
    };
    let blocks = offload.map_or(blocks, |o| o.cpu_blocks);
    if blocks == 0 || required(&spec.no_prefix_caching, "no-prefix-caching") {
        return Ok(None);
    }
    if !(bandwidth > 0.0 && bandwidth.is_finite()) {
        let unit = if cx.compat == Compat::Reference { "tokens per µs" } else { "GB/s" };
        return Err(
            cx.err("kv-transfer-bandwidth", format!("must be a positive number of {unit}, got {bandwidth}"))
        );
    }
    let mut base_latency_us = required(&spec.kv_transfer_base_latency, "kv-transfer-base-latency").0;
    let (bandwidth, timing) = match cx.compat {
        // GB/s = 1000 bytes per µs.
        Compat::Blis => (bandwidth * 1000.0, ReloadTiming::Async),
        // The reference's offload chain charges its CPU→GPU reloads nothing.
        Compat::Reference if offload.is_some() => {
            base_latency_us = 0;
            (f64::INFINITY, ReloadTiming::StepStall)
        }
        Compat::Reference => (bandwidth, ReloadTiming::StepStall),
    };
    Ok(Some(KvTierConfig {
        cpu_blocks: blocks,
        bytes_per_block: bytes_per_block.max(1),
        bandwidth,
        base_latency_us,
        timing,
        prompt_only: offload.is_some_and(|o| o.prompt_only),
    }))
}

/// Warnings about the CPU KV tier's keys that have no effect.
fn kv_tier_warnings(cx: &mut Ctx, on: bool, prefix_caching: bool, tier: Option<&KvTierConfig>) {
    if cx.explicit("kv-offload-config") && cx.compat == Compat::Reference && tier.is_some() {
        for key in ["kv-transfer-bandwidth", "kv-transfer-base-latency"] {
            if cx.customized(key) {
                cx.warn(
                    key,
                    "no effect with --kv-offload-config under --compat reference (its reloads are free)",
                );
            }
        }
    }
    if !on {
        for key in &KV_TIER_KEYS[1..] {
            if cx.customized(key) {
                cx.warn(key, "no effect without --kv-cpu-blocks > 0");
            }
        }
        return;
    }
    if !prefix_caching {
        cx.warn(
            "kv-cpu-blocks",
            "no effect with --no-prefix-caching (the CPU tier serves prefix-cache hits)",
        );
    }
    if cx.customized("kv-offload-threshold") {
        cx.warn(
            "kv-offload-threshold",
            "no effect: blocks are written through to the CPU tier as they are computed (as vLLM's \
             offloading connector does), whatever the GPU utilization",
        );
    }
}

/// Refuses configurations whose instances alone would not fit in memory. `fleet`: (instances,
/// KV blocks per instance) of each pool; `key`: what to blame when no KV size was given.
fn check_memory(cx: &Ctx, catalog: &Catalog, fleet: &[(u32, u32)], key: &str) -> Result<(), ConfigError> {
    let Some(limit) = catalog.memory_limit_bytes else { return Ok(()) };
    // Per instance: bookkeeping, plus each KV block's descriptor, free-list entry and index slot.
    let need = fleet
        .iter()
        .map(|&(n, blocks)| u64::from(n).saturating_mul(16 * 1024 + 40 * u64::from(blocks)))
        .fold(0u64, u64::saturating_add);
    if need > limit {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let key = if cx.explicit("total-kv-blocks") { "total-kv-blocks" } else { key };
        let what = match fleet {
            [(instances, kv_blocks)] => format!("{instances} instances of {kv_blocks} KV blocks"),
            _ => format!("{} instances", fleet.iter().map(|f| u64::from(f.0)).sum::<u64>()),
        };
        return Err(cx.err(
            key,
            format!(
                "{what} would need {:.1} GiB before the first request; this machine has {:.1} GiB",
                gib(need),
                gib(limit)
            ),
        ));
    }
    Ok(())
}

/// One pool of `instances` instances as `spec` describes them: model, GPU, TP, step-time model
/// and engine, checked.
fn build_pool(
    spec: &RunSpec,
    cx: &Ctx,
    catalog: &Catalog,
    name: &str,
    instances: u32,
) -> Result<(PoolConfig, PoolDerived), ConfigError> {
    let (model, gpu, tp) = model_and_gpu(spec, cx, catalog)?;
    let latency: LatencyModelKind = required(&spec.latency_model, "latency-model");
    let latency_overrides = LatencyOverrides {
        alpha: spec.alpha_coeffs.clone(),
        beta: spec.beta_coeffs.clone(),
        coefficients_file: spec.coefficients_file.clone(),
    };
    latency
        .build(&model, &gpu, tp, &latency_overrides)
        .map_err(|e| cx.err("latency-model", e.to_string()))?;
    let (instance, mut derived) = engine(spec, cx, &model, &gpu, tp)?;
    derived.name = name.to_string();
    let pool = PoolConfig {
        name: name.to_string(),
        instances: instances as usize,
        model,
        gpu,
        tp,
        latency,
        latency_overrides,
        instance,
        scheduler: required(&spec.scheduler, "scheduler"),
        preemption: required(&spec.preemption_policy, "preemption-policy"),
        role: None,
    };
    Ok((pool, derived))
}

/// A fleet of several models: every request must name one (refused when the workload's
/// clients do not; trace rows that do not are rejected at run time, with a warning), and a
/// model no pool serves is warned about (its requests are rejected and counted).
fn check_models(
    models: &blis_sim::models::ModelRouting,
    key: &str,
    workload: &WorkloadPlan,
    cx: &mut Ctx,
) -> Result<(), ConfigError> {
    let served = models.models().iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
    fn named(m: Option<&str>) -> Option<&str> {
        m.map(str::trim).filter(|m| !m.is_empty())
    }
    match workload {
        WorkloadPlan::Spec { spec, .. } => {
            let sources = spec
                .clients
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("clients[{i}]"), c.model.as_deref()))
                .chain(
                    spec.cohorts
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (format!("cohorts[{i}]"), c.model.as_deref())),
                );
            let mut any = false;
            for (path, model) in sources {
                any = true;
                match named(model) {
                    None => {
                        return Err(cx.err(
                            key,
                            format!(
                                "{path} names no model, and the pools serve several ({served}): give every \
                                 client a model"
                            ),
                        ));
                    }
                    Some(m) if models.index(Some(m)).is_none() => {
                        cx.warn(key, format!("{path}.model {m}: no pool serves it (served: {served}); its requests are rejected"));
                    }
                    Some(_) => {}
                }
            }
            if !any || spec.inference_perf.is_some() || spec.servegen_data.is_some() {
                return Err(cx.err(
                    key,
                    format!("the workload names no model, and the pools serve several ({served}): give every client a model"),
                ));
            }
        }
        WorkloadPlan::Trace { records, .. } => {
            let unnamed = records.iter().filter(|r| named(Some(&r.model)).is_none()).count();
            if unnamed == records.len() {
                return Err(cx.err(
                    key,
                    format!("the trace names no model (its model column is empty), and the pools serve several ({served})"),
                ));
            }
            let unserved = records
                .iter()
                .filter(|r| named(Some(&r.model)).is_some_and(|m| models.index(Some(m)).is_none()))
                .count();
            if unnamed + unserved > 0 {
                cx.warn(
                    key,
                    format!(
                        "{unnamed} rows name no model and {unserved} name one no pool serves (served: {served}); they are rejected"
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The pools of `pools:`, each the flat keys overlaid with its own. Flat keys that every pool
/// sets are removed from `spec` (they describe nothing), with a warning when the user set them.
fn fleet(
    spec: &mut RunSpec,
    cx: &mut Ctx,
    catalog: &Catalog,
    list: &[PoolSpec],
    from_pd_flags: bool,
) -> Result<(Vec<PoolConfig>, Vec<PoolDerived>), ConfigError> {
    let pools_origin = cx.layers.describe("pools");
    let at = |i: usize, field: &str| match field {
        "" => format!("{pools_origin}[{i}]"),
        f => format!("{pools_origin}[{i}].{f}"),
    };
    if from_pd_flags {
        return pd_fleet(spec, cx, catalog, list);
    }
    if cx.explicit("num-instances") {
        return Err(cx.err("num-instances", "conflicts with pools (each pool sets its own instances)"));
    }
    if list.is_empty() {
        return Err(
            cx.err("pools", "needs at least one pool (leave the key out for one pool of --num-instances)")
        );
    }
    let mut total = 0u32;
    for (i, p) in list.iter().enumerate() {
        if p.name.trim().is_empty() || p.name.chars().any(char::is_control) {
            return Err(ConfigError::new("pools", at(i, "name"), "must be a non-empty name"));
        }
        if let Some(j) = list[..i].iter().position(|q| q.name == p.name) {
            return Err(ConfigError::new(
                "pools",
                at(i, "name"),
                format!("{:?} is also the name of pools[{j}]", p.name),
            ));
        }
        if p.instances == 0 {
            return Err(ConfigError::new("pools", at(i, "instances"), "must be at least 1"));
        }
        total = total
            .checked_add(p.instances)
            .ok_or_else(|| ConfigError::new("pools", at(i, "instances"), "the pools' instances overflow"))?;
    }
    let mut pools = Vec::with_capacity(list.len());
    let mut derived = Vec::with_capacity(list.len());
    let flat = spec.to_map();
    for (i, p) in list.iter().enumerate() {
        let own = p.keys();
        let mut map = flat.clone();
        map.extend(own.clone());
        let pool_spec = RunSpec::from_map(map).map_err(|e| ConfigError::new("pools", at(i, ""), e))?;
        if pool_spec.model.is_none() {
            return Err(ConfigError::new(
                "pools",
                at(i, "model"),
                "required: the pool sets no model and there is no --model to inherit",
            ));
        }
        let (config, d) = build_pool(&pool_spec, cx, catalog, &p.name, p.instances).map_err(|e| {
            // A KV capacity the GPU cannot provide is about the hardware.
            let key = match e.key.as_str() {
                "total-kv-blocks" if e.origin == cx.layers.describe("hardware") => "hardware",
                k => k,
            };
            if key.is_empty() || own.contains_key(key) {
                ConfigError::new("pools", at(i, key), e.message)
            } else if POOL_KEYS.contains(&key) {
                let origin = if e.origin.is_empty() { format!("--{key}") } else { e.origin };
                ConfigError::new(key, format!("{} (inherited from {origin})", at(i, key)), e.message)
            } else {
                e // a key of the whole fleet
            }
        })?;
        if let Some(first) = pools.first().map(|f: &PoolConfig| f.model.name.clone())
            && blis_model::registry_key(&config.model.name) != blis_model::registry_key(&first)
            && list.iter().any(|p| p.role.is_some())
        {
            return Err(ConfigError::new(
                "pools",
                at(i, "model"),
                format!(
                    "serves {} while pools[0] serves {first}: a disaggregated fleet serves one model \
                     (give every pool the same model)",
                    config.model.name
                ),
            ));
        }
        pools.push(PoolConfig { role: p.role, ..config });
        derived.push(d);
    }
    let sizes: Vec<(u32, u32)> =
        list.iter().zip(&derived).map(|(p, d)| (p.instances, d.total_kv_blocks)).collect();
    check_memory(cx, catalog, &sizes, "pools")?;
    spec.num_instances = None;
    for key in POOL_KEYS {
        if list.iter().all(|p| p.keys().contains_key(*key)) {
            if cx.customized(key) {
                cx.warn(key, "no effect: every pool sets its own");
            }
            clear_key(spec, key);
        }
    }
    Ok((pools, derived))
}

/// The pools `--prefill-instances`, `--decode-instances` and `--prefill-decode-instances`
/// describe (the rest of `--num-instances` forms a pool without a role), or `None`.
fn pd_pools(spec: &RunSpec, cx: &Ctx) -> Result<Option<Vec<PoolSpec>>, ConfigError> {
    let prefill = required(&spec.prefill_instances, "prefill-instances");
    let decode = required(&spec.decode_instances, "decode-instances");
    let shared = required(&spec.prefill_decode_instances, "prefill-decode-instances");
    const OVERRIDES: [&str; 8] = [
        "prefill-hardware",
        "decode-hardware",
        "prefill-tp",
        "decode-tp",
        "prefill-latency-model",
        "decode-latency-model",
        "prefill-max-model-len",
        "decode-max-model-len",
    ];
    if prefill == 0 && decode == 0 && shared == 0 {
        for key in OVERRIDES {
            if cx.explicit(key) {
                return Err(
                    cx.err(key, "needs --prefill-instances and --decode-instances (no disaggregation)")
                );
            }
        }
        return Ok(None);
    }
    let key = ["prefill-instances", "decode-instances", "prefill-decode-instances"]
        .into_iter()
        .find(|k| cx.explicit(k))
        .unwrap_or("prefill-instances");
    if spec.pools.is_some() {
        return Err(cx.err(key, "conflicts with pools (give the pools a role: prefill, decode or both)"));
    }
    if shared == 0 && (prefill == 0 || decode == 0) {
        return Err(cx.err(
            key,
            format!(
                "--prefill-instances and --decode-instances must both be > 0 without shared-role \
                 instances (got prefill={prefill}, decode={decode})"
            ),
        ));
    }
    let sum = u64::from(prefill) + u64::from(decode) + u64::from(shared);
    let total = if cx.explicit("num-instances") {
        u64::from(required(&spec.num_instances, "num-instances"))
    } else {
        sum
    };
    if sum > total {
        return Err(cx.err(
            "num-instances",
            format!(
                "{total} is fewer than --prefill-instances + --decode-instances + --prefill-decode-instances \
                 = {sum}"
            ),
        ));
    }
    if sum < 2 {
        return Err(cx.err(key, "disaggregation needs at least two instances"));
    }
    let pool = |name: &str, instances: u64, role: Option<PoolRole>, side: &str| PoolSpec {
        name: name.to_string(),
        instances: instances as u32,
        role,
        hardware: if side == "prefill" {
            spec.prefill_hardware.clone()
        } else {
            spec.decode_hardware.clone()
        },
        tp: if side == "prefill" { spec.prefill_tp } else { spec.decode_tp },
        model: None,
        latency_model: if side == "prefill" { spec.prefill_latency_model } else { spec.decode_latency_model },
        alpha_coeffs: None,
        beta_coeffs: None,
        max_num_seqs: None,
        max_num_batched_tokens: None,
        long_prefill_token_threshold: None,
        max_model_len: if side == "prefill" { spec.prefill_max_model_len } else { spec.decode_max_model_len },
        total_kv_blocks: None,
        gpu_memory_utilization: None,
    };
    let plain = |name: &str, instances: u64, role: Option<PoolRole>| PoolSpec {
        hardware: None,
        tp: None,
        latency_model: None,
        max_model_len: None,
        ..pool(name, instances, role, "")
    };
    let mut list = Vec::new();
    if prefill > 0 {
        list.push(pool("prefill", prefill.into(), Some(PoolRole::Prefill), "prefill"));
    }
    if decode > 0 {
        list.push(pool("decode", decode.into(), Some(PoolRole::Decode), "decode"));
    }
    if shared > 0 {
        list.push(plain("prefill-decode", shared.into(), Some(PoolRole::Both)));
    }
    if total > sum {
        list.push(plain("default", total - sum, None));
    }
    Ok(Some(list))
}

/// [`fleet`] for the pools of the disaggregation flags: errors name those flags.
fn pd_fleet(
    spec: &mut RunSpec,
    cx: &mut Ctx,
    catalog: &Catalog,
    list: &[PoolSpec],
) -> Result<(Vec<PoolConfig>, Vec<PoolDerived>), ConfigError> {
    let flat = spec.to_map();
    let mut pools = Vec::with_capacity(list.len());
    let mut derived = Vec::with_capacity(list.len());
    for p in list {
        let own = p.keys();
        let mut map = flat.clone();
        map.extend(own.clone());
        let pool_spec = RunSpec::from_map(map).map_err(|e| ConfigError::new("", p.name.clone(), e))?;
        let side = if p.role == Some(PoolRole::Decode) { "decode" } else { "prefill" };
        let (config, d) = build_pool(&pool_spec, cx, catalog, &p.name, p.instances).map_err(|e| {
            let key = match e.key.as_str() {
                "total-kv-blocks" if e.origin == cx.layers.describe("hardware") => "hardware",
                k => k,
            };
            if own.contains_key(key) {
                let flag = format!("{side}-{key}");
                ConfigError::new(flag.clone(), cx.layers.describe(&flag), e.message)
            } else {
                e
            }
        })?;
        pools.push(PoolConfig { role: p.role, ..config });
        derived.push(d);
    }
    let sizes: Vec<(u32, u32)> =
        list.iter().zip(&derived).map(|(p, d)| (p.instances, d.total_kv_blocks)).collect();
    check_memory(cx, catalog, &sizes, "num-instances")?;
    Ok((pools, derived))
}

/// The disaggregation settings when some pool has a role, checked; warnings for PD keys
/// set without roles.
fn pd_config(spec: &RunSpec, cx: &mut Ctx, pools: &[PoolConfig]) -> Result<Option<PdConfig>, ConfigError> {
    const KEYS: [&str; 7] = [
        "prefill-routing-scorers",
        "decode-routing-scorers",
        "pd-decider",
        "pd-prefix-threshold",
        "pd-transfer-bandwidth",
        "pd-transfer-base-latency",
        "pd-transfer-contention",
    ];
    let decider = required(&spec.pd_decider, "pd-decider");
    if pools.iter().all(|p| p.role.is_none()) {
        for key in KEYS {
            if cx.customized(key) {
                cx.warn(
                    key,
                    "no effect without disaggregation (--prefill-instances and --decode-instances, or pool roles)",
                );
            }
        }
        return Ok(None);
    }
    if !pools.iter().any(|p| p.role.is_some_and(PoolRole::prefills))
        || !pools.iter().any(|p| p.role.is_some_and(PoolRole::decodes))
    {
        return Err(cx.err(
            "pools",
            "roles need a pool that prefills (prefill or both) and one that decodes (decode or both)",
        ));
    }
    if pools.iter().map(|p| p.instances).sum::<usize>() < 2 {
        return Err(cx.err("pools", "disaggregation needs at least two instances"));
    }
    let bandwidth = required(&spec.pd_transfer_bandwidth, "pd-transfer-bandwidth");
    if !(bandwidth.is_finite() && bandwidth > 0.0) {
        return Err(
            cx.err("pd-transfer-bandwidth", format!("must be a finite number > 0 (GB/s), got {bandwidth}"))
        );
    }
    let base_ms = required(&spec.pd_transfer_base_latency, "pd-transfer-base-latency");
    if !(base_ms.is_finite() && base_ms >= 0.0) {
        return Err(
            cx.err("pd-transfer-base-latency", format!("must be a finite number >= 0 (ms), got {base_ms}"))
        );
    }
    if decider != PdDeciderKind::PrefixThreshold && cx.customized("pd-prefix-threshold") {
        cx.warn("pd-prefix-threshold", "no effect without --pd-decider prefix-threshold");
    }
    let unused: Vec<&str> = pools.iter().filter(|p| p.role.is_none()).map(|p| p.name.as_str()).collect();
    if !unused.is_empty() {
        let key = if spec.pools.is_some() { "pools" } else { "num-instances" };
        let what = if spec.pools.is_some() {
            format!("pool {} has no role: its instances receive no requests", unused.join(", "))
        } else {
            "instances beyond --prefill-instances, --decode-instances and --prefill-decode-instances \
             receive no requests"
                .to_string()
        };
        cx.warn(key, what);
    }
    Ok(Some(PdConfig {
        decider,
        prefix_threshold_tokens: required(&spec.pd_prefix_threshold, "pd-prefix-threshold"),
        bandwidth_bytes_per_us: bandwidth * 1000.0,
        base_latency_us: base_ms * 1000.0,
        contention: required(&spec.pd_transfer_contention, "pd-transfer-contention"),
        share_fixed_at_start: cx.compat == Compat::Reference,
        prefill_scorers: spec.prefill_routing_scorers.clone().map(|s| s.0).unwrap_or_default(),
        decode_scorers: spec.decode_routing_scorers.clone().map(|s| s.0).unwrap_or_default(),
    }))
}

fn slo_class(cx: &Ctx, key: &str, name: &str) -> Result<SloClass, ConfigError> {
    match SloClass::parse(name) {
        Some(c) if !name.is_empty() => Ok(c),
        _ => Err(cx.err(
            key,
            format!(
                "unknown SLO class {name:?} (accepted: critical, standard, batch, sheddable, background)"
            ),
        )),
    }
}

fn slo_priorities(spec: &RunSpec, cx: &Ctx) -> Result<SloPriorities, ConfigError> {
    let mut overrides = Vec::new();
    for (name, &p) in spec.slo_priorities.iter().flatten() {
        let class = slo_class(cx, "slo-priorities", name)?;
        if !(-100..=100).contains(&p) {
            return Err(
                cx.err("slo-priorities", format!("priority of {name} must be in [-100, 100], got {p}"))
            );
        }
        overrides.push((class, p));
    }
    Ok(SloPriorities::with_overrides(overrides))
}

fn positive(cx: &Ctx, key: &str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(cx.err(key, format!("must be a finite number > 0, got {v}")))
    }
}

fn admission(spec: &RunSpec, cx: &Ctx) -> Result<AdmissionConfig, ConfigError> {
    let kv = required(&spec.gaie_kv_threshold, "gaie-kv-threshold");
    if !(kv > 0.0 && kv <= 1.0) {
        return Err(cx.err("gaie-kv-threshold", format!("must be in (0, 1], got {kv}")));
    }
    Ok(AdmissionConfig {
        kind: required(&spec.admission_policy, "admission-policy"),
        token_bucket_capacity: positive(
            cx,
            "token-bucket-capacity",
            required(&spec.token_bucket_capacity, "token-bucket-capacity"),
        )?,
        token_bucket_refill_per_s: positive(
            cx,
            "token-bucket-refill-rate",
            required(&spec.token_bucket_refill_rate, "token-bucket-refill-rate"),
        )?,
        tier_shed_threshold: required(&spec.tier_shed_threshold, "tier-shed-threshold"),
        tier_shed_min_priority: required(&spec.tier_shed_min_priority, "tier-shed-min-priority"),
        gaie_qd_threshold: positive(
            cx,
            "gaie-qd-threshold",
            required(&spec.gaie_qd_threshold, "gaie-qd-threshold"),
        )?,
        gaie_kv_threshold: kv,
        slo_priorities: slo_priorities(spec, cx)?,
    })
}

fn routing(spec: &RunSpec, cx: &Ctx, block_size_tokens: u32) -> Result<RoutingConfig, ConfigError> {
    let scorers = spec.routing_scorers.clone().map(|s| s.0).unwrap_or_default();
    for (i, s) in scorers.iter().enumerate() {
        let name = crate::name_of(s.name);
        if !(s.weight.is_finite() && s.weight > 0.0) {
            return Err(cx.err(
                "routing-scorers",
                format!("weight of '{name}' must be a finite number > 0, got {}", s.weight),
            ));
        }
        if scorers[..i].iter().any(|p| p.name == s.name) {
            return Err(cx.err("routing-scorers", format!("'{name}' appears twice")));
        }
    }
    Ok(RoutingConfig { kind: required(&spec.routing_policy, "routing-policy"), scorers, block_size_tokens })
}

fn tenant_budgets(spec: &RunSpec, cx: &Ctx) -> Result<BTreeMap<String, f64>, ConfigError> {
    let budgets = spec.tenant_budgets.clone().unwrap_or_default();
    for (tenant, &b) in &budgets {
        if !(b.is_finite() && (0.0..=1.0).contains(&b)) {
            return Err(
                cx.err("tenant-budgets", format!("budget of tenant {tenant:?} must be in [0, 1], got {b}"))
            );
        }
    }
    Ok(budgets)
}

fn analysis(spec: &RunSpec, cx: &mut Ctx, summarize_trace: bool) -> Result<Analysis, ConfigError> {
    let fitness = match &spec.fitness_weights {
        None => None,
        Some(text) => {
            let w = FitnessWeights::parse(text).map_err(|e| cx.err("fitness-weights", e))?;
            (!w.is_empty()).then_some(w)
        }
    };
    let (detectors, configured_window_us) = detectors(spec, cx)?;
    let objectives = match &spec.slo {
        Some(text) => crate::slo::parse_objectives(text).map_err(|e| cx.err("slo", e))?,
        None => Vec::new(),
    };
    let final_window_us = match spec.saturation_final_window.map(|s| s.0) {
        // As in the reference, a configured backlog-drift window is every detector's final window.
        None => configured_window_us,
        Some(s) if s.is_finite() && s > 0.0 && s * 1e6 < blis_sim::MAX_SIM_TIME_US as f64 => {
            Some((s * 1e6).round() as u64)
        }
        Some(s) => {
            return Err(cx.err(
                "saturation-final-window",
                format!("must be > 0 seconds (at most 100 years), got {s}"),
            ));
        }
    };
    if final_window_us.is_some() && detectors.is_empty() {
        cx.warn("saturation-final-window", "no effect without --post-hoc-detector");
    }
    Ok(Analysis { fitness, detectors, final_window_us, summarize_trace, objectives })
}

/// The `--saturation-config` file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SaturationConfig {
    #[serde(default)]
    threshold: Option<ThresholdBlock>,
    #[serde(default)]
    backlog_drift: Option<BacklogDriftBlock>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdBlock {
    threshold_ms: f64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BacklogDriftBlock {
    window_size_sec: u64,
}

/// The selected detectors, tuned by `--saturation-config`, and the backlog-drift window the
/// file sets (µs), if it sets one.
fn detectors(spec: &RunSpec, cx: &Ctx) -> Result<(Vec<Detector>, Option<u64>), ConfigError> {
    use blis_sim::saturation::DetectorKind;
    let Some(selection) = &spec.post_hoc_detector else {
        for key in ["saturation-report", "saturation-config"] {
            if cx.explicit(key) {
                return Err(cx.err(key, "needs --detectors (which detectors to run)"));
            }
        }
        return Ok((Vec::new(), None));
    };
    let config: SaturationConfig = match &spec.saturation_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| cx.err("saturation-config", format!("cannot read {}: {e}", path.display())))?;
            if text.trim().is_empty() {
                SaturationConfig::default()
            } else {
                crate::yaml::parse(&text, path)?
            }
        }
        None => SaturationConfig::default(),
    };
    let selected = |k: DetectorKind| selection.kinds().contains(&k);
    for (block, kind, name) in [
        (config.threshold.is_some(), DetectorKind::Threshold, "threshold"),
        (config.backlog_drift.is_some(), DetectorKind::BacklogDrift, "backlog_drift"),
    ] {
        if block && !selected(kind) {
            return Err(cx.err(
                "saturation-config",
                format!("has a {name}: block but --detectors {selection} does not run that detector"),
            ));
        }
    }
    let mut out = Vec::new();
    for &kind in selection.kinds() {
        let detector = match (kind, &config) {
            (DetectorKind::Threshold, SaturationConfig { threshold: Some(t), .. }) => {
                if !(t.threshold_ms.is_finite() && t.threshold_ms > 0.0) {
                    return Err(cx.err(
                        "saturation-config",
                        format!("threshold.threshold_ms must be a finite number > 0, got {}", t.threshold_ms),
                    ));
                }
                Detector::Threshold { threshold_ms: t.threshold_ms }
            }
            (DetectorKind::BacklogDrift, SaturationConfig { backlog_drift: Some(b), .. }) => {
                if b.window_size_sec == 0 || b.window_size_sec > blis_sim::MAX_SIM_TIME_US / 1_000_000 {
                    return Err(cx.err(
                        "saturation-config",
                        format!(
                            "backlog_drift.window_size_sec must be in 1..={} s, got {}",
                            blis_sim::MAX_SIM_TIME_US / 1_000_000,
                            b.window_size_sec
                        ),
                    ));
                }
                Detector::BacklogDrift { bucket_us: b.window_size_sec * 1_000_000 }
            }
            (kind, _) => kind.detector(),
        };
        out.push(detector);
    }
    let window = config.backlog_drift.map(|b| b.window_size_sec * 1_000_000);
    Ok((out, window))
}

/// Warm-up exclusion and goodput targets (flags > trace header > workload spec).
fn measurement(
    spec: &RunSpec,
    cx: &Ctx,
    workload: &WorkloadPlan,
) -> Result<blis_sim::measure::Measurement, ConfigError> {
    let mut m = blis_sim::measure::Measurement::new();
    m.warmup_requests = spec.warmup_requests.unwrap_or(0);
    if let Some(w) = spec.warmup_s {
        let s = w.0;
        if !(s.is_finite() && s >= 0.0 && s * 1e6 < blis_sim::MAX_SIM_TIME_US as f64) {
            return Err(cx.err("warmup-s", format!("must be ≥ 0 seconds (at most 100 years), got {s}")));
        }
        m.warmup_until_us = (s * 1e6).round() as u64;
    }
    let mut cli = crate::slo::CliTargets::default();
    for (key, value, slot) in [
        ("slo-ttft", &spec.slo_ttft, &mut cli.ttft),
        ("slo-itl", &spec.slo_itl, &mut cli.itl),
        ("slo-e2e", &spec.slo_e2e, &mut cli.e2e),
    ] {
        if let Some(text) = value {
            *slot = crate::slo::parse_class_durations(text).map_err(|e| cx.err(key, e))?;
        }
    }
    let header = match &spec.trace_header {
        Some(h) => {
            blis_workload::read_trace_header(h)
                .map_err(|e| cx.err("trace-header", e.to_string()))?
                .goodput_slo_targets
        }
        None => None,
    };
    let from_spec = match workload {
        WorkloadPlan::Spec { spec, .. } => spec.goodput_slo_targets.clone(),
        WorkloadPlan::Trace { .. } => None,
    };
    m.goodput = crate::slo::merge_targets(&cli, header.as_ref(), from_spec.as_ref()).map_err(|e| {
        let key = if header.is_some() { "trace-header" } else { "workload-spec" };
        cx.err(key, e)
    })?;
    Ok(m)
}

/// The workload and the cluster's seed. Keys that do not apply to the chosen workload are
/// removed from `spec` (with a warning when the user set them).
fn workload(spec: &mut RunSpec, cx: &mut Ctx) -> Result<(WorkloadPlan, u64), ConfigError> {
    let explicit_seed = cx.explicit("seed").then(|| required(&spec.seed, "seed"));
    if let Some(n) = spec.num_requests
        && n == 0
    {
        return Err(cx.err("num-requests", "must be at least 1"));
    }
    let timeout_us = match spec.timeout.map(|t| t.0) {
        None => None,
        Some(t) if t < 0.0 => Some(None),
        Some(t) if t == 0.0 || !t.is_finite() => {
            return Err(cx.err("timeout", format!("must be > 0 seconds (or negative to disable), got {t}")));
        }
        Some(t) if t * 1e6 >= blis_sim::MAX_SIM_TIME_US as f64 => {
            return Err(cx.err("timeout", format!("must be at most 100 years (3.15e9 s), got {t}")));
        }
        Some(t) => Some(Some((t * 1e6) as u64)),
    };
    let trace = spec.workload_trace.clone();
    let file_spec = spec.workload_spec.clone();
    let preset_explicit = cx.explicit("workload");
    if trace.is_some() && (file_spec.is_some() || preset_explicit) {
        return Err(cx.err("workload-trace", "mutually exclusive with --workload and --workload-spec"));
    }
    if file_spec.is_some() && preset_explicit {
        return Err(cx.err("workload-spec", "mutually exclusive with --workload"));
    }
    if trace.is_none() && spec.trace_header.is_some() {
        return Err(cx.err("trace-header", "needs --workload-trace (the trace data CSV)"));
    }
    let users = spec.concurrency.filter(|&n| n > 0);
    if spec.think_time_ms.is_some() && spec.think_time_dist.is_some() {
        return Err(cx.err("think-time-dist", "mutually exclusive with --think-time-ms"));
    }
    let think_key = if spec.think_time_dist.is_some() { "think-time-dist" } else { "think-time-ms" };
    let think_set = cx.explicit(think_key);
    if users.is_some() {
        if trace.is_some() {
            return Err(
                cx.err("concurrency", "not available with --workload-trace (replay recorded sessions closed-loop with --session-mode closed-loop)")
            );
        }
        if file_spec.is_some() {
            return Err(cx.err(
                "concurrency",
                "cannot be used with --workload-spec; set clients[].concurrency in the spec instead",
            ));
        }
        if cx.explicit("rate") {
            return Err(cx.err(
                "concurrency",
                "mutually exclusive with --rate (virtual users send when their previous response is back, not at a rate)",
            ));
        }
        if spec.num_requests.is_none() && spec.horizon.is_none() {
            return Err(cx.err(
                "concurrency",
                "needs --num-requests or --horizon to end the run (virtual users send until stopped)",
            ));
        }
    } else if think_set && trace.is_none() {
        return Err(
            cx.err(think_key, "needs --concurrency N (it is the think time of closed-loop virtual users)")
        );
    }
    let closed_sessions = spec.session_mode == Some(SessionMode::ClosedLoop);
    if cx.explicit("session-mode") && trace.is_none() {
        return Err(
            cx.err("session-mode", "applies to a replayed trace only (blis replay, --workload-trace)")
        );
    }
    if think_set && trace.is_some() && !closed_sessions {
        return Err(cx.err(
            think_key,
            "needs --session-mode closed-loop (a fixed replay sends every row at its recorded time)",
        ));
    }
    let seed = explicit_seed.unwrap_or(DEFAULT_SEED);
    if trace.is_some() || file_spec.is_some() {
        let kind = if trace.is_some() { "--workload-trace" } else { "--workload-spec" };
        for key in SYNTHETIC_KEYS {
            if cx.customized(key) {
                cx.warn(key, format!("ignored with {kind} (the workload sets it)"));
            }
            clear_key(spec, key);
        }
        if !cx.explicit("seed") {
            spec.seed = None;
        }
    }
    if let Some(csv) = trace {
        for key in ["num-requests", "timeout"] {
            if cx.explicit(key) {
                cx.warn(key, "ignored with --workload-trace (every recorded request is replayed)");
            }
            clear_key(spec, key);
        }
        let header = match &spec.trace_header {
            Some(h) => {
                Some(blis_workload::read_trace_header(h).map_err(|e| cx.err("trace-header", e.to_string()))?)
            }
            None => None,
        };
        let records =
            blis_workload::read_trace_records(&csv).map_err(|e| cx.err("workload-trace", e.to_string()))?;
        if records.is_empty() {
            return Err(cx.err("workload-trace", format!("{}: the trace has no requests", csv.display())));
        }
        let header_seed = header.as_ref().and_then(|h: &TraceHeader| h.workload_seed).map(|s| s as u64);
        let workload_seed = explicit_seed.or(header_seed).unwrap_or(DEFAULT_SEED);
        let file = csv.display().to_string();
        let sessions = if closed_sessions {
            let think = match (&spec.think_time_dist, spec.think_time_ms) {
                (Some(d), _) => Some(ThinkTime::parse(d).map_err(|e| cx.err("think-time-dist", e))?),
                (None, Some(ms)) => {
                    if ms.saturating_mul(1000) > blis_workload::MAX_TIME_US {
                        return Err(
                            cx.err("think-time-ms", format!("must be at most 100 years, got {ms} ms"))
                        );
                    }
                    Some(ThinkTime::Constant { us: ms * 1000 })
                }
                (None, None) => None,
            };
            let growth = header.as_ref().and_then(|h| h.session_context_growth.as_deref()).unwrap_or("");
            if !growth.is_empty() && growth != "accumulate" {
                return Err(cx.err(
                    "trace-header",
                    format!(
                        "session_context_growth: unknown value {growth:?} (accepted: accumulate, or none)"
                    ),
                ));
            }
            blis_workload::SessionMode::ClosedLoop {
                think,
                horizon_us: spec.horizon.map(|h| h.0),
                accumulate: growth == "accumulate",
            }
        } else {
            blis_workload::SessionMode::Fixed
        };
        return Ok((WorkloadPlan::Trace { records, seed: workload_seed, file, sessions }, seed));
    }
    let overrides = Overrides {
        seed: explicit_seed,
        num_requests: spec.num_requests,
        horizon_us: spec.horizon.map(|h| h.0),
        timeout_us,
    };
    if let Some(r) = file_spec {
        let loaded = match r {
            WorkloadSpecRef::Path(p) => {
                blis_workload::load_spec_file(&p).map_err(|e| cx.err("workload-spec", e.to_string()))?
            }
            WorkloadSpecRef::Inline(s) => {
                blis_workload::validate::validate(&s).map_err(|e| cx.err("workload-spec", e.to_string()))?;
                *s
            }
        };
        return Ok((
            WorkloadPlan::Spec { spec: Box::new(loaded), overrides, generation: generation(cx.compat) },
            seed,
        ));
    }
    let preset: Preset = spec.workload.unwrap_or(Preset::Distribution);
    let rate = required(&spec.rate, "rate");
    let d = blis_workload::presets::DEFAULT_PROMPT;
    let o = blis_workload::presets::DEFAULT_OUTPUT;
    let (prompt, output) = if preset.is_inference_perf() {
        for key in &SYNTHETIC_KEYS[1..] {
            if cx.customized(key) {
                cx.warn(
                    key,
                    format!("ignored with --workload {} (its stages and lengths are fixed)", preset.name()),
                );
            }
            clear_key(spec, key);
        }
        (None, None)
    } else {
        if users.is_some() {
            if cx.customized("arrival-process") {
                cx.warn(
                    "arrival-process",
                    "ignored with --concurrency (virtual users have no arrival process)",
                );
            }
            clear_key(spec, "rate");
            clear_key(spec, "arrival-process");
        } else if !(rate.is_finite() && rate > 0.0) {
            return Err(cx.err("rate", format!("must be a number > 0 (requests/s), got {rate}")));
        }
        let (p, q) = (spec.prompt_tokens, spec.prompt_tokens_stdev);
        let prompt = lengths(cx, "prompt-tokens", p, q, spec.prompt_tokens_min, spec.prompt_tokens_max, d)?;
        let (p, q) = (spec.output_tokens, spec.output_tokens_stdev);
        let output = lengths(cx, "output-tokens", p, q, spec.output_tokens_min, spec.output_tokens_max, o)?;
        (prompt, output)
    };
    // Virtual users have no default count: without --num-requests the horizon ends the run.
    let num_requests = spec.num_requests.unwrap_or(if users.is_some() { 0 } else { DEFAULT_NUM_REQUESTS });
    let users = users.map(|concurrency| VirtualUsers {
        concurrency,
        think_time_us: spec.think_time_ms.unwrap_or(0).saturating_mul(1000),
        think_time_dist: spec.think_time_dist.clone(),
    });
    let closed_loop = users.is_some();
    let params = SyntheticParams {
        rate,
        num_requests,
        prompt,
        output,
        prefix_tokens: spec.prefix_tokens.unwrap_or(0),
        constant_arrivals: spec.arrival_process == Some(ArrivalProcess::Constant),
        seed,
        timeout_us: match timeout_us {
            None => Some(blis_workload::presets::DEFAULT_TIMEOUT_US),
            Some(t) => t,
        },
        users,
    };
    // Errors about a flag of the built-in workload name that flag themselves.
    let built = blis_workload::preset_spec(preset.name(), &params).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("--") { ConfigError::new("workload", "", text) } else { cx.err("workload", text) }
    })?;
    if !preset.is_inference_perf() && !closed_loop {
        spec.num_requests = Some(num_requests);
    }
    spec.workload = Some(preset);
    spec.seed = Some(seed);
    Ok((WorkloadPlan::Spec { spec: Box::new(built), overrides, generation: generation(cx.compat) }, seed))
}

fn generation(compat: Compat) -> GenerationSemantics {
    match compat {
        Compat::Blis => GenerationSemantics::Blis,
        Compat::Reference => GenerationSemantics::Reference,
    }
}

#[allow(clippy::too_many_arguments)]
fn lengths(
    cx: &Ctx,
    key: &str,
    mean: Option<f64>,
    std: Option<f64>,
    min: Option<u32>,
    max: Option<u32>,
    base: blis_workload::LenParams,
) -> Result<Option<blis_workload::LenParams>, ConfigError> {
    if mean.is_none() && std.is_none() && min.is_none() && max.is_none() {
        return Ok(None);
    }
    let p = blis_workload::LenParams::new(
        mean.unwrap_or(base.mean),
        std.unwrap_or(base.std_dev),
        min.unwrap_or(base.min),
        max.unwrap_or(base.max),
    );
    if !(p.mean.is_finite() && p.mean >= 1.0) {
        return Err(cx.err(key, format!("mean must be ≥ 1, got {}", p.mean)));
    }
    if !(p.std_dev.is_finite() && p.std_dev >= 0.0) {
        return Err(cx.err(&format!("{key}-stdev"), format!("must be ≥ 0, got {}", p.std_dev)));
    }
    if p.min == 0 || p.min > p.max {
        return Err(cx.err(&format!("{key}-min"), format!("need 1 ≤ min ≤ max, got {}..{}", p.min, p.max)));
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::layers::Layer;

    const MODEL: &str = "meta-llama/llama-3.1-8b-instruct";

    /// Resolves `text` as a config file `run.yaml` (plus the model), under `flags`.
    fn resolve_yaml(text: &str, flags: RunSpec) -> Result<RunConfig, ConfigError> {
        let spec: RunSpec = crate::yaml::parse(&format!("model: {MODEL}\n{text}"), Path::new("run.yaml"))?;
        let mut layers = Layers::with_defaults();
        layers.push(Layer::new(Source::ConfigFile("run.yaml".into()), &spec));
        layers.push(Layer::new(Source::Flags, &flags));
        resolve(&layers, &Catalog::default())
    }

    fn err(text: &str) -> String {
        resolve_yaml(text, RunSpec::default()).unwrap_err().to_string()
    }

    #[test]
    fn disaggregation_flags_become_pools_with_roles() {
        let c = resolve_yaml(
            "num-instances: 6\nprefill-instances: 2\ndecode-instances: 2\nprefill-decode-instances: 1\n\
             prefill-tp: 2\ndecode-hardware: A100-80\npd-decider: always\npd-transfer-bandwidth: 50\n\
             pd-transfer-base-latency: 0.1",
            RunSpec::default(),
        )
        .unwrap();
        let p = &c.sim.pools;
        let shape: Vec<(&str, usize, Option<PoolRole>, &str, u32)> =
            p.iter().map(|p| (p.name.as_str(), p.instances, p.role, p.gpu.name.as_str(), p.tp)).collect();
        assert_eq!(
            shape,
            [
                ("prefill", 2, Some(PoolRole::Prefill), "H100", 2),
                ("decode", 2, Some(PoolRole::Decode), "A100-80", 1),
                ("prefill-decode", 1, Some(PoolRole::Both), "H100", 1),
                ("default", 1, None, "H100", 1),
            ]
        );
        let pd = c.sim.pd.as_ref().unwrap();
        assert_eq!(pd.decider, PdDeciderKind::Always);
        assert_eq!(pd.bandwidth_bytes_per_us, 50_000.0);
        assert_eq!(pd.base_latency_us, 100.0);
        assert!(!pd.contention);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("receive no requests"));
        // Without roles, nothing about disaggregation remains in the resolved description.
        let c = resolve_yaml("num-instances: 2", RunSpec::default()).unwrap();
        assert!(c.sim.pd.is_none());
        assert!(c.spec.prefill_instances.is_none() && c.spec.pd_decider.is_none());
    }

    #[test]
    fn disaggregation_errors_name_the_key() {
        let e = err("prefill-instances: 1\ndecode-instances: 1\npd-transfer-base-latency: -1");
        assert_eq!(e, "run.yaml: pd-transfer-base-latency: must be a finite number >= 0 (ms), got -1");
        let e = err("prefill-instances: 1\ndecode-instances: 1\ndecode-tp: 3");
        assert!(e.starts_with("run.yaml: decode-tp: 3 does not divide"), "{e}");
        let e = err("prefill-instances: 1\ndecode-instances: 1\npools: [{name: a, instances: 2}]");
        assert!(e.contains("conflicts with pools"), "{e}");
        let e = err("pools: [{name: a, instances: 1, role: decode}, {name: b, instances: 1, role: decode}]");
        assert!(e.contains("roles need a pool that prefills"), "{e}");
        let e = err("prefill-decode-instances: 1");
        assert!(e.contains("at least two instances"), "{e}");
    }

    #[test]
    fn pools_inherit_flat_keys_and_derive_their_own_kv() {
        let c = resolve_yaml(
            "max-num-seqs: 64\ngpu-memory-utilization: 0.8\npools:\n  \
             - {name: fast, hardware: H100, instances: 2}\n  \
             - {name: small, hardware: L40S, instances: 3, max-num-seqs: 32, tp: 2}\n",
            RunSpec::default(),
        )
        .unwrap();
        let [fast, small] = &c.sim.pools[..] else { panic!("two pools") };
        assert_eq!((fast.name.as_str(), fast.instances, fast.tp), ("fast", 2, 1));
        assert_eq!((small.name.as_str(), small.instances, small.tp), ("small", 3, 2));
        assert_eq!((fast.gpu.name.as_str(), small.gpu.name.as_str()), ("H100", "L40S"));
        assert_eq!(fast.instance.max_running_reqs, 64, "inherited from the flat key");
        assert_eq!(small.instance.max_running_reqs, 32, "the pool's own");
        assert_eq!(c.sim.num_instances(), 5);
        // KV capacity from each pool's own GPU, TP and the inherited utilization.
        let kv = |gpu: &str, tp: u32| {
            let model = blis_model::load_model(MODEL, None, &HubOptions::default()).unwrap();
            let gpu = blis_model::gpu_by_name(gpu, &[]).unwrap();
            blis_model::kv_blocks_with(&model, &gpu, tp, 0.8, 16, KvCapacityFormula::Vllm).unwrap() as u32
        };
        assert_eq!(fast.instance.total_kv_blocks, kv("H100", 1));
        assert_eq!(small.instance.total_kv_blocks, kv("L40S", 2));
        assert_ne!(fast.instance.total_kv_blocks, small.instance.total_kv_blocks);
        assert_eq!(c.derived.total_kv_blocks, None);
        assert_eq!(c.derived.pools.len(), 2);
        assert_eq!(c.derived.pools[1].name, "small");
        assert_eq!(c.derived.pools[1].total_kv_blocks, small.instance.total_kv_blocks);
        // The resolved description: no instance count, no flat key every pool replaces.
        assert_eq!(c.spec.num_instances, None);
        assert_eq!(c.spec.hardware, None);
        assert_eq!(c.spec.max_num_seqs, Some(64));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_flat_key_every_pool_replaces_warns() {
        let c = resolve_yaml(
            "hardware: A100-80\npools: [{name: a, hardware: H100, instances: 1}, {name: b, hardware: H100, instances: 1}]",
            RunSpec::default(),
        )
        .unwrap();
        assert_eq!(c.warnings, ["run.yaml: hardware: no effect: every pool sets its own"]);
        assert_eq!(c.spec.hardware, None);
    }

    #[test]
    fn one_pool_of_one_instance_is_single_instance_mode() {
        let c = resolve_yaml("pools: [{name: only, instances: 1}]", RunSpec::default()).unwrap();
        assert_eq!(c.sim.num_instances(), 1);
        assert_eq!(c.spec.routing_policy, None, "cluster keys are dropped as with --num-instances 1");
    }

    #[test]
    fn pool_errors_name_the_pool_and_key() {
        let e = err("pools: [{name: a, instances: 1}, {name: b, instances: 2, tp: 3}]");
        assert!(e.starts_with("run.yaml: pools[1].tp: 3 does not divide the 32 attention heads"), "{e}");
        let e = err("tp: 3\npools: [{name: a, instances: 1}]");
        assert!(
            e.starts_with("run.yaml: pools[0].tp (inherited from run.yaml: tp): 3 does not divide"),
            "{e}"
        );
        let e = err("pools: [{name: a, instances: 1, hardware: Z100}]");
        assert!(e.starts_with("run.yaml: pools[0].hardware: unknown GPU `Z100`"), "{e}");
        let e = err("pools: [{name: a, instances: 1, max-num-seqs: 0}]");
        assert_eq!(e, "run.yaml: pools[0].max-num-seqs: must be at least 1");
        let e = err("pools: [{name: a, instances: 1, total-kv-blocks: 0}]");
        assert_eq!(e, "run.yaml: pools[0].total-kv-blocks: must be at least 1");
        let e = err("pools: [{name: a, instances: 0}]");
        assert_eq!(e, "run.yaml: pools[0].instances: must be at least 1");
        let e = err("pools: [{name: a, instances: 1}, {name: a, instances: 1}]");
        assert_eq!(e, "run.yaml: pools[1].name: \"a\" is also the name of pools[0]");
        let e = err("pools: [{name: ' ', instances: 1}]");
        assert_eq!(e, "run.yaml: pools[0].name: must be a non-empty name");
        let e = err("pools: []");
        assert!(e.starts_with("run.yaml: pools: needs at least one pool"), "{e}");
        let e = err("block-size-in-tokens: 0\npools: [{name: a, instances: 1}]");
        assert_eq!(e, "run.yaml: block-size-in-tokens: must be at least 1", "a fleet-wide key as it is");
        let e = err("pools: [{name: a, instances: 1, hardware: L4, gpu-memory-utilization: 0.2}]");
        assert!(e.starts_with("run.yaml: pools[0].hardware: KV capacity: "), "{e}");
        let e = err("pools: [{name: a, instances: 1, latency-model: blackbox, hardware: L4}]");
        assert!(e.starts_with("run.yaml: pools[0].latency-model: "), "{e}");
    }

    #[test]
    fn num_instances_conflicts_with_pools() {
        let flags = RunSpec { num_instances: Some(4), ..RunSpec::default() };
        let e = resolve_yaml("pools: [{name: a, instances: 2}]", flags).unwrap_err().to_string();
        assert_eq!(e, "--num-instances: conflicts with pools (each pool sets its own instances)");
    }

    #[test]
    fn pools_of_different_models_need_models_on_requests() {
        // The built-in workload's requests name no model.
        let e =
            err("pools: [{name: a, instances: 1}, {name: b, instances: 1, model: qwen/qwen2.5-7b-instruct}]");
        assert!(e.contains("names no model, and the pools serve several"), "{e}");
        // A disaggregated fleet serves one model.
        let e = err("pools: [{name: a, instances: 1, role: prefill}, \
                     {name: b, instances: 1, role: decode, model: qwen/qwen2.5-7b-instruct}]");
        assert!(
            e.starts_with("run.yaml: pools[1].model: serves qwen/qwen2.5-7b-instruct while pools[0] serves"),
            "{e}"
        );
        // The same model spelled by the pool is fine.
        let ok = format!("pools: [{{name: a, instances: 1, model: {MODEL}}}]");
        assert!(resolve_yaml(&ok, RunSpec::default()).is_ok());
    }

    #[test]
    fn memory_check_covers_every_pool() {
        let spec: RunSpec = crate::yaml::parse(
            &format!("model: {MODEL}\npools: [{{name: a, instances: 400}}, {{name: b, instances: 400}}]"),
            Path::new("run.yaml"),
        )
        .unwrap();
        let mut layers = Layers::with_defaults();
        layers.push(Layer::new(Source::ConfigFile("run.yaml".into()), &spec));
        // Each pool alone (400 × 28309 blocks ≈ 0.4 GiB) fits in 0.5 GiB; both do not.
        let catalog = Catalog { memory_limit_bytes: Some(1 << 29), ..Catalog::default() };
        let e = resolve(&layers, &catalog).unwrap_err().to_string();
        assert!(e.starts_with("run.yaml: pools: 800 instances would need 0.9 GiB"), "{e}");
    }
}
