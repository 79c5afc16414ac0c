//! One experiment → the run description `blis run` would get for it → simulated latencies.
//!
//! An experiment is a set of `blis run` keys (the measured engine limits and KV blocks, the
//! workload inline, `--seed 42`), resolved and run by `blis-config` like any other run, so the
//! tool and the command line cannot drift apart: `--dump-config` of the same keys is the
//! experiment's command line.

use std::path::PathBuf;

use blis_config::{Catalog, Compat, RunConfig, RunSpec, WorkloadSpecRef};
use blis_latency::{LatencyModelKind, LatencyOverrides};
use blis_sim::report::RunDoc;
use blis_workload::spec::{InferencePerfSpec, SharedPrefixSpec, StageSpec, WorkloadSpec};
use rayon::prelude::*;

use crate::measurements::{Experiment, LatencyStats, WorkloadDesc};

/// The seed every calibration run uses (`--seed 42`).
pub const SEED: u64 = 42;

/// What to simulate the experiments with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `--latency-model`.
    pub latency_model: LatencyModelKind,
    /// `--alpha-coeffs` / `--beta-coeffs` / `--coefficients-file`.
    pub overrides: LatencyOverrides,
    /// `--model-config-folder` for every experiment (else bundled configs / hub).
    pub model_config_folder: Option<PathBuf>,
    /// How the inference-perf workload is interpreted (spec keys left unset = generator defaults).
    pub workload: WorkloadSemantics,
    /// `--async-scheduling` (vLLM V1 async scheduling).
    pub async_scheduling: bool,
    /// Whose semantics (`--compat`): BLIS's, or the reference simulator's.
    pub compat: Compat,
    /// Where model configs come from.
    pub catalog: Catalog,
}

impl Setup {
    pub fn new(latency_model: LatencyModelKind) -> Setup {
        Setup {
            latency_model,
            overrides: LatencyOverrides::default(),
            model_config_folder: None,
            workload: WorkloadSemantics::default(),
            async_scheduling: true,
            compat: Compat::Blis,
            catalog: Catalog::default(),
        }
    }
}

/// Optional `inference_perf.shared_prefix` keys written into every experiment's workload spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadSemantics {
    /// `question_reuse: per_user | per_request`.
    pub question_reuse: Option<String>,
    /// `user_order: random | round_robin`.
    pub user_order: Option<String>,
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

/// The workload-spec v2 equivalent to the experiment's inference-perf workload.
pub fn workload_spec(w: &WorkloadDesc, ws: &WorkloadSemantics) -> WorkloadSpec {
    let sp = &w.shared_prefix;
    WorkloadSpec {
        version: Some("2".into()),
        seed: Some(SEED as i64),
        num_requests: Some(w.num_requests as i64),
        inference_perf: Some(InferencePerfSpec {
            shared_prefix: Some(SharedPrefixSpec {
                num_unique_system_prompts: i64::from(sp.num_unique_system_prompts),
                num_users_per_system_prompt: i64::from(sp.num_users_per_system_prompt),
                system_prompt_len: i64::from(sp.system_prompt_len),
                question_len: i64::from(sp.question_len),
                output_len: i64::from(sp.output_len),
                enable_multi_turn_chat: sp.enable_multi_turn_chat,
                question_reuse: ws.question_reuse.clone(),
                user_order: ws.user_order.clone(),
            }),
            stages: w.stages.iter().map(|s| StageSpec { rate: s.rate, duration: s.duration_s }).collect(),
        }),
        ..WorkloadSpec::default()
    }
}

/// The `blis run` keys of the experiment (every other key at its default).
pub fn run_spec(e: &Experiment, setup: &Setup) -> RunSpec {
    RunSpec {
        model: Some(e.model.clone()),
        hardware: Some(e.hardware.clone()),
        tp: Some(e.tp),
        max_num_seqs: Some(e.max_num_seqs),
        max_num_batched_tokens: Some(e.max_num_batched_tokens),
        total_kv_blocks: Some(e.total_kv_blocks_gpu),
        block_size_in_tokens: Some(e.block_size),
        latency_model: Some(setup.latency_model),
        alpha_coeffs: setup.overrides.alpha.clone(),
        beta_coeffs: setup.overrides.beta.clone(),
        coefficients_file: setup.overrides.coefficients_file.clone(),
        model_config_folder: setup.model_config_folder.clone(),
        async_scheduling: Some(setup.async_scheduling),
        workload_spec: e
            .workload
            .as_ref()
            .map(|w| WorkloadSpecRef::Inline(Box::new(workload_spec(w, &setup.workload)))),
        workload_trace: e.trace.as_ref().map(|t| t.data.clone()),
        trace_header: e.trace.as_ref().map(|t| t.header.clone()),
        seed: Some(SEED),
        compat: Some(setup.compat),
        // Exact percentiles: calibration errors (docs/accuracy.md) stay free of sketch error.
        exact_percentiles: Some(true),
        ..RunSpec::default()
    }
}

/// The resolved run of an experiment.
pub fn config(e: &Experiment, setup: &Setup) -> Result<RunConfig, String> {
    blis_config::config_from_spec(&run_spec(e, setup), &setup.catalog)
        .map_err(|err| format!("experiment {}: {err}", e.id))
}

/// Simulates one experiment.
pub fn run_experiment(e: &Experiment, setup: &Setup) -> Result<SimStats, String> {
    run_config(e, &config(e, setup)?)
}

/// Simulates one experiment on an already-resolved run (lets a fitter reuse model loading).
pub fn run_config(e: &Experiment, config: &RunConfig) -> Result<SimStats, String> {
    let outcome = config.simulate().map_err(|err| format!("experiment {}: {err}", e.id))?;
    Ok(sim_stats(outcome.doc, e.mean_output_tokens))
}

/// Extracts the compared figures from a metrics document.
pub fn sim_stats(doc: RunDoc, mean_output_tokens: f64) -> SimStats {
    let c = &doc.cluster;
    let stats = LatencyStats {
        ttft_mean_ms: c.ttft_mean_ms,
        ttft_p90_ms: c.ttft_p90_ms,
        ttft_p99_ms: c.ttft_p99_ms,
        e2e_mean_ms: c.e2e_mean_ms,
        e2e_p90_ms: c.e2e_p90_ms,
        e2e_p99_ms: c.e2e_p99_ms,
        itl_mean_ms: (c.e2e_mean_ms - c.ttft_mean_ms) / (mean_output_tokens.max(2.0) - 1.0),
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
pub fn run_all(experiments: &[Experiment], setup: &Setup) -> Result<Vec<SimStats>, String> {
    let configs: Vec<RunConfig> = experiments.iter().map(|e| config(e, setup)).collect::<Result<_, _>>()?;
    run_all_configs(experiments, &configs)
}

/// [`run_all`] over resolved runs (index-aligned with `experiments`).
pub fn run_all_configs(experiments: &[Experiment], configs: &[RunConfig]) -> Result<Vec<SimStats>, String> {
    experiments.par_iter().zip(configs.par_iter()).map(|(e, c)| run_config(e, c)).collect()
}

/// `config` with other α/β coefficients (what a fitter varies).
pub fn with_coefficients(config: &RunConfig, alpha: &[f64], beta: &[f64]) -> RunConfig {
    let mut c = config.clone();
    c.spec.alpha_coeffs = Some(alpha.to_vec());
    c.spec.beta_coeffs = Some(beta.to_vec());
    for pool in &mut c.sim.pools {
        pool.latency_overrides.alpha = Some(alpha.to_vec());
        pool.latency_overrides.beta = Some(beta.to_vec());
    }
    c
}
