//! One experiment → scenario + workload → simulated latencies, built exactly as `blis run`
//! builds them from the equivalent command line:
//!
//! ```text
//! blis run --model M --hardware H --tp N --max-num-running-reqs S --max-num-scheduled-tokens B \
//!   --total-kv-blocks K --block-size-in-tokens 16 --workload-spec <workload_yaml> --seed 42
//! ```

use std::path::PathBuf;

use blis_latency::LatencyOverrides;
use blis_model::HubOptions;
use blis_sim::cluster::admission::AdmissionConfig;
use blis_sim::cluster::routing::RoutingConfig;
use blis_sim::report::RunDoc;
use blis_sim::scenario::{Scenario, resolve_kv};
use blis_sim::{EngineSemantics, InstanceConfig};
use blis_workload::{GenerationSemantics, Overrides};
use rayon::prelude::*;

use crate::measurements::{Experiment, LatencyStats};

/// The seed every calibration run uses (`--seed 42`).
pub const SEED: u64 = 42;

/// What to simulate the experiments with.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// `--latency-model`.
    pub latency_model: String,
    /// `--alpha-coeffs` / `--beta-coeffs` / `--coefficients-file`.
    pub overrides: LatencyOverrides,
    /// `--model-config-folder` for every experiment (else bundled configs / hub).
    pub model_config_folder: Option<PathBuf>,
    /// How the inference-perf workload is interpreted (spec keys left unset = generator defaults).
    pub workload: WorkloadSemantics,
    /// `--async-scheduling` (vLLM V1 async scheduling).
    pub async_scheduling: bool,
    /// Engine behaviours (`--compat reference` uses the reference simulator's).
    pub engine: EngineSemantics,
}

/// Optional `inference_perf.shared_prefix` keys written into every experiment's workload spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadSemantics {
    /// `question_reuse: per_user | per_request`.
    pub question_reuse: Option<String>,
    /// `user_order: random | round_robin`.
    pub user_order: Option<String>,
    /// Whose workload generation (`--compat reference` uses the reference simulator's).
    pub generation: GenerationSemantics,
}

/// Simulated figures of one experiment, comparable with [`LatencyStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimStats {
    /// Same definitions as the measurements; `itl_mean_ms` = (E2E mean − TTFT mean)/(output − 1).
    pub stats: LatencyStats,
    /// The simulator's own mean over inter-token samples (excludes the post-decode overhead).
    pub itl_sample_mean_ms: f64,
    pub completed: u64,
    pub preemptions: u64,
    pub cache_hit_rate: f64,
    /// The full metrics document `blis run` prints.
    pub doc: RunDoc,
}

/// The workload-spec v2 YAML equivalent to the experiment's inference-perf workload.
pub fn workload_yaml(e: &Experiment, ws: &WorkloadSemantics) -> String {
    let w = &e.workload;
    let sp = &w.shared_prefix;
    let mut s = format!(
        "version: \"2\"\nseed: {SEED}\nnum_requests: {}\ninference_perf:\n  shared_prefix:\n    \
         num_unique_system_prompts: {}\n    num_users_per_system_prompt: {}\n    system_prompt_len: {}\n    \
         question_len: {}\n    output_len: {}\n    enable_multi_turn_chat: {}\n  stages:\n",
        w.num_requests,
        sp.num_unique_system_prompts,
        sp.num_users_per_system_prompt,
        sp.system_prompt_len,
        sp.question_len,
        sp.output_len,
        sp.enable_multi_turn_chat
    );
    if let Some(q) = &ws.question_reuse {
        s.insert_str(s.find("  stages:\n").unwrap_or(s.len()), &format!("    question_reuse: {q}\n"));
    }
    if let Some(o) = &ws.user_order {
        s.insert_str(s.find("  stages:\n").unwrap_or(s.len()), &format!("    user_order: {o}\n"));
    }
    for st in &w.stages {
        s.push_str(&format!("    - {{rate: {}, duration: {}}}\n", st.rate, st.duration_s));
    }
    s
}

/// The `blis run` arguments (after `blis run`) equivalent to this experiment, with the workload
/// spec at `spec_path`.
pub fn cli_args(e: &Experiment, cfg: &RunConfig, spec_path: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--model".into(),
        e.model.clone(),
        "--hardware".into(),
        e.hardware.clone(),
        "--tp".into(),
        e.tp.to_string(),
        "--max-num-running-reqs".into(),
        e.max_num_seqs.to_string(),
        "--max-num-scheduled-tokens".into(),
        e.max_num_batched_tokens.to_string(),
        "--total-kv-blocks".into(),
        e.total_kv_blocks_gpu.to_string(),
        "--block-size-in-tokens".into(),
        e.block_size.to_string(),
        "--latency-model".into(),
        cfg.latency_model.clone(),
        "--workload-spec".into(),
        spec_path.into(),
        "--seed".into(),
        SEED.to_string(),
        "--async-scheduling".into(),
        cfg.async_scheduling.to_string(),
    ];
    let join = |v: &[f64]| v.iter().map(|x| format!("{x}")).collect::<Vec<_>>().join(",");
    if let Some(alpha) = &cfg.overrides.alpha {
        a.extend(["--alpha-coeffs".into(), join(alpha)]);
    }
    if let Some(beta) = &cfg.overrides.beta {
        a.extend(["--beta-coeffs".into(), join(beta)]);
    }
    if let Some(f) = &cfg.overrides.coefficients_file {
        a.extend(["--coefficients-file".into(), f.display().to_string()]);
    }
    if let Some(d) = &cfg.model_config_folder {
        a.extend(["--model-config-folder".into(), d.display().to_string()]);
    }
    a
}

/// The scenario `blis run` builds for [`cli_args`] (all other flags at their defaults).
pub fn scenario(e: &Experiment, cfg: &RunConfig) -> Result<Scenario, String> {
    let model = blis_model::load_model(&e.model, cfg.model_config_folder.as_deref(), &HubOptions::from_env())
        .map_err(|err| format!("experiment {}: --model: {err}", e.id))?;
    let gpu = blis_model::gpu_by_name(&e.hardware, &[])
        .map_err(|err| format!("experiment {}: --hardware: {err}", e.id))?;
    let kv = resolve_kv(&model, &gpu, e.tp, 0.9, e.block_size, Some(e.total_kv_blocks_gpu), None)
        .map_err(|err| format!("experiment {}: {err}", e.id))?;
    let instance = InstanceConfig {
        max_running_reqs: e.max_num_seqs,
        max_scheduled_tokens: e.max_num_batched_tokens,
        long_prefill_token_threshold: 0,
        max_model_len: kv.max_model_len,
        block_size_tokens: e.block_size,
        total_kv_blocks: kv.total_kv_blocks,
        prefix_caching: true,
        async_scheduling: cfg.async_scheduling,
        slo_priorities: true,
        record_requests: false,
        track_classes: true,
        semantics: cfg.engine,
    };
    Ok(Scenario {
        model,
        gpu,
        tp: e.tp,
        latency_model: cfg.latency_model.clone(),
        latency_overrides: cfg.overrides.clone(),
        instance,
        num_instances: 1,
        scheduler: "fcfs".into(),
        preemption_policy: "fcfs".into(),
        admission_policy: "always-admit".into(),
        admission: AdmissionConfig::default(),
        routing_policy: "round-robin".into(),
        routing: RoutingConfig { scorers: Vec::new(), block_size_tokens: e.block_size },
        admission_latency_us: 0,
        routing_latency_us: 0,
        snapshot_refresh_interval_us: 50_000,
        cache_signal_delay_us: 50_000,
        trace_decisions: false,
        counterfactual_k: 0,
        horizon_us: u64::MAX,
        seed: SEED,
    })
}

/// Simulates one experiment.
pub fn run_experiment(e: &Experiment, cfg: &RunConfig) -> Result<SimStats, String> {
    let sc = scenario(e, cfg)?;
    run_scenario(e, &sc, &cfg.workload)
}

/// Simulates one experiment on an already-built scenario (lets a fitter reuse model loading).
pub fn run_scenario(e: &Experiment, sc: &Scenario, ws: &WorkloadSemantics) -> Result<SimStats, String> {
    let spec = blis_workload::parse_spec(&workload_yaml(e, ws), &format!("experiment-{}.yaml", e.id))
        .map_err(|err| err.to_string())?;
    let overrides = Overrides { seed: Some(SEED), num_requests: None, horizon_us: None, timeout_us: None };
    let source =
        blis_workload::build_source_with(&spec, &overrides, ws.generation).map_err(|err| err.to_string())?;
    let sim = sc.build(source, None)?;
    let report = sim.run(|_| {}).map_err(|err| err.to_string())?;
    let doc = RunDoc::from_report(&report);
    Ok(sim_stats(doc, e.workload.shared_prefix.output_len))
}

/// Extracts the compared figures from a metrics document.
pub fn sim_stats(doc: RunDoc, output_len: u32) -> SimStats {
    let c = &doc.cluster;
    let stats = LatencyStats {
        ttft_mean_ms: c.ttft_mean_ms,
        ttft_p90_ms: c.ttft_p90_ms,
        ttft_p99_ms: c.ttft_p99_ms,
        e2e_mean_ms: c.e2e_mean_ms,
        e2e_p90_ms: c.e2e_p90_ms,
        e2e_p99_ms: c.e2e_p99_ms,
        itl_mean_ms: (c.e2e_mean_ms - c.ttft_mean_ms) / f64::from(output_len.max(2) - 1),
    };
    SimStats {
        stats,
        itl_sample_mean_ms: c.itl_mean_ms,
        completed: c.completed_requests,
        preemptions: c.preemption_count,
        cache_hit_rate: c.cache_hit_rate,
        doc,
    }
}

/// Simulates every experiment (in parallel; results in input order).
pub fn run_all(experiments: &[Experiment], cfg: &RunConfig) -> Result<Vec<SimStats>, String> {
    let scenarios: Vec<Scenario> = experiments.iter().map(|e| scenario(e, cfg)).collect::<Result<_, _>>()?;
    run_all_scenarios(experiments, &scenarios, &cfg.workload)
}

/// [`run_all`] over prebuilt scenarios (index-aligned with `experiments`).
pub fn run_all_scenarios(
    experiments: &[Experiment],
    scenarios: &[Scenario],
    ws: &WorkloadSemantics,
) -> Result<Vec<SimStats>, String> {
    experiments.par_iter().zip(scenarios.par_iter()).map(|(e, sc)| run_scenario(e, sc, ws)).collect()
}
