//! Command-line flags of `blis run` (names and defaults follow the spec's flags.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "blis", version, about = "Discrete-event simulator of LLM inference serving clusters")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a workload on one instance or a cluster and print metrics as JSON.
    Run(Box<RunArgs>),
    /// Simulate measured vLLM experiments, report the error (MAPE), optionally refit coefficients.
    Calibrate(Box<crate::calibrate::CalibrateArgs>),
    /// Replay a TraceV2 trace (header YAML + data CSV) through the same engine as `run`.
    Replay(Box<crate::replay::ReplayArgs>),
    /// Emit a built-in workload as workload-spec v2 YAML.
    Convert(crate::convert::ConvertArgs),
    /// Merge workload-spec v2 files into one.
    Compose(crate::compose::ComposeArgs),
    /// Run a grid of `run` configurations in parallel; one result row per configuration.
    Sweep(crate::sweep::SweepArgs),
}

/// Flags describing the served model, the hardware and the engine.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// HuggingFace model id (case-insensitive), e.g. meta-llama/llama-3.1-8b-instruct.
    #[arg(long)]
    pub model: String,
    /// GPU type: H100, A100-80, A100-SXM, L40S, H200, B200, H100-PCIe, A100-40, L4 (or one from
    /// --hardware-config). Default H100.
    #[arg(long)]
    pub hardware: Option<String>,
    /// Tensor-parallel degree of every instance. Default 1.
    #[arg(long)]
    pub tp: Option<u32>,
    /// Step-time model: blis-physics (fitted to real vLLM), trained-physics, roofline, blackbox.
    #[arg(long, default_value = "blis-physics")]
    pub latency_model: String,
    /// Three α coefficients (µs), comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub alpha_coeffs: Option<Vec<f64>>,
    /// β coefficients, comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub beta_coeffs: Option<Vec<f64>>,
    /// YAML file with coefficient sets for the latency model.
    #[arg(long)]
    pub coefficients_file: Option<PathBuf>,
    /// Read config.json from this directory instead of the bundled/hub config.
    #[arg(long)]
    pub model_config_folder: Option<PathBuf>,
    /// JSON file adding or overriding GPU types.
    #[arg(long)]
    pub hardware_config: Option<PathBuf>,
    /// Context limit in tokens (default: from the model config, capped by the KV cache).
    #[arg(long)]
    pub max_model_len: Option<u64>,
    /// KV blocks per instance (default: derived from GPU memory, TP and utilization).
    #[arg(long)]
    pub total_kv_blocks: Option<u64>,
    #[arg(long, default_value_t = 16)]
    pub block_size_in_tokens: u32,
    /// Disable prefix caching (every prompt is computed in full).
    #[arg(long)]
    pub no_prefix_caching: bool,
    /// vLLM V1 async scheduling (on by default, as in the measured vLLM v0.15): a request arriving
    /// while a step runs joins the step after next. `--async-scheduling false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub async_scheduling: bool,
    /// Fraction of GPU memory vLLM may use, in (0, 1].
    #[arg(long, default_value_t = 0.9)]
    pub gpu_memory_utilization: f64,
    /// Maximum running requests per instance (vLLM max_num_seqs).
    #[arg(long, visible_alias = "max-num-seqs", default_value_t = 256)]
    pub max_num_running_reqs: u32,
    /// Token budget per step (vLLM max_num_batched_tokens).
    #[arg(long, visible_alias = "max-num-batched-tokens", default_value_t = 2048)]
    pub max_num_scheduled_tokens: u32,
    /// Per-request prefill chunk cap (0 = off).
    #[arg(long, default_value_t = 0)]
    pub long_prefill_token_threshold: u32,
    /// Wait-queue order: fcfs, priority-fcfs, sjf, reverse-priority.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Priority of a request from its SLO class: constant, slo-based.
    #[arg(long)]
    pub priority_policy: Option<String>,
    /// Victim on KV exhaustion: fcfs (tail of batch), priority (least urgent).
    #[arg(long)]
    pub preemption_policy: Option<String>,
}

/// Flags of the cluster control plane.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    #[arg(long, default_value_t = 1)]
    pub num_instances: usize,
    /// always-admit, token-bucket, tier-shed, gaie-legacy, reject-all.
    #[arg(long)]
    pub admission_policy: Option<String>,
    /// Token-bucket capacity (tokens).
    #[arg(long, allow_hyphen_values = true)]
    pub token_bucket_capacity: Option<f64>,
    /// Token-bucket refill rate (tokens/s).
    #[arg(long, allow_hyphen_values = true)]
    pub token_bucket_refill_rate: Option<f64>,
    /// Admission delay (µs).
    #[arg(long, allow_hyphen_values = true)]
    pub admission_latency: Option<i64>,
    /// Routing delay (µs).
    #[arg(long, allow_hyphen_values = true)]
    pub routing_latency: Option<i64>,
    /// round-robin, least-loaded, weighted, always-busiest.
    #[arg(long)]
    pub routing_policy: Option<String>,
    /// Weighted-routing profile "name:weight,…".
    #[arg(long)]
    pub routing_scorers: Option<String>,
    /// Refresh period of instance signals (µs, 0 = live).
    #[arg(long, allow_hyphen_values = true)]
    pub snapshot_refresh_interval: Option<i64>,
    /// Staleness of the router's prefix-cache view (µs, 0 = live).
    #[arg(long, allow_hyphen_values = true)]
    pub cache_signal_delay: Option<i64>,
    /// YAML bundle of policies; explicit flags win.
    #[arg(long)]
    pub policy_config: Option<PathBuf>,
    /// none or decisions.
    #[arg(long, default_value = "none")]
    pub trace_level: String,
    /// Score the top-K alternatives of each routing decision.
    #[arg(long, default_value_t = 0)]
    pub counterfactual_k: usize,
    /// Add the decision-trace summary to the output.
    #[arg(long)]
    pub summarize_trace: bool,
    /// Write one JSON line per decision to this file.
    #[arg(long)]
    pub trace_output: Option<PathBuf>,
}

/// Flags describing the traffic.
#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Built-in workload: distribution (default), chatbot, contentgen, summarization, multidoc,
    /// or an inference-perf preset (general, codegen, roleplay, reasoning, general-lite, reasoning-lite).
    #[arg(long)]
    pub workload: Option<String>,
    /// Workload-spec v2 YAML file.
    #[arg(long)]
    pub workload_spec: Option<PathBuf>,
    /// Arrival rate (requests/s).
    #[arg(long, allow_hyphen_values = true)]
    pub rate: Option<f64>,
    #[arg(long)]
    pub num_requests: Option<u64>,
    /// poisson (default) or constant.
    #[arg(long)]
    pub arrival_process: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub prompt_tokens: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    pub prompt_tokens_stdev: Option<f64>,
    #[arg(long)]
    pub prompt_tokens_min: Option<u32>,
    #[arg(long)]
    pub prompt_tokens_max: Option<u32>,
    #[arg(long, allow_hyphen_values = true)]
    pub output_tokens: Option<f64>,
    #[arg(long, allow_hyphen_values = true)]
    pub output_tokens_stdev: Option<f64>,
    #[arg(long)]
    pub output_tokens_min: Option<u32>,
    #[arg(long)]
    pub output_tokens_max: Option<u32>,
    /// Shared prefix length on every request.
    #[arg(long, default_value_t = 0)]
    pub prefix_tokens: u32,
    /// Per-request deadline in seconds (negative disables; default 300 for built-in workloads).
    #[arg(long, allow_hyphen_values = true)]
    pub timeout: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub trace_workload: crate::replay::TraceWorkloadArgs,
    #[command(flatten)]
    pub analysis: crate::replay::AnalysisArgs,
    /// Master seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated-time limit (µs).
    #[arg(long)]
    pub horizon: Option<u64>,
    /// Also write the metrics document to this file.
    #[arg(long)]
    pub metrics_path: Option<PathBuf>,
    /// Write one record per request (JSON array) to this file.
    #[arg(long)]
    pub results_path: Option<PathBuf>,
    /// Progress bar on stderr: auto (when stderr is a terminal), always, never.
    #[arg(long, default_value = "auto")]
    pub progress: String,
}
