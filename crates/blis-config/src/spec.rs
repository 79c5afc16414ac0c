//! [`RunSpec`]: a run as the user describes it. One struct is both the `blis run` flags (clap)
//! and the keys of a config file (serde), so a flag and a key are always the same name
//! (`--max-num-seqs 128` ≡ `max-num-seqs: 128`). Every field is optional: a spec is one
//! *layer* (flags, a config file, a policy file, a trace header, the defaults), and layers are
//! merged key by key in [`crate::layers`]. [`RunSpec::defaults`] is the only table of defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::duration::{Micros, Seconds};
use blis_latency::LatencyModelKind;
use blis_sim::cluster::admission::AdmissionKind;
use blis_sim::cluster::flow::{DispatchOrder, FairnessPolicy, SaturationDetectorKind};
use blis_sim::cluster::routing::RoutingKind;
use blis_sim::cluster::scorer::{ScorerKind, ScorerWeight};
use blis_sim::preemption::PreemptionKind;
use blis_sim::priority::PriorityKind;
use blis_sim::saturation::DetectorSelection;
use blis_sim::scheduler::SchedulerKind;
use blis_workload::{Preset, WorkloadSpec};
use clap::Args;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Everything that describes a run. Field names are the flag names (`snake_case` here,
/// `kebab-case` on the command line and in files).
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunSpec {
    // ── Model and hardware ─────────────────────────────────────────────────────────────
    /// HuggingFace model id, e.g. meta-llama/llama-3.1-8b-instruct (case-insensitive).
    #[arg(long, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// GPU type: H100, A100-80, A100-SXM, L40S, H200, B200, H100-PCIe, A100-40, L4 (`blis list gpus`), or one
    /// from --hardware-config.
    #[arg(long, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    /// Tensor-parallel degree of every instance.
    #[arg(long, allow_hyphen_values = true, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp: Option<u32>,
    /// Step-time model.
    #[arg(long, value_enum, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_model: Option<LatencyModelKind>,
    /// The three α coefficients (µs), comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, help_heading = "Model and hardware")]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_numbers")]
    pub alpha_coeffs: Option<Vec<f64>>,
    /// β coefficients of the step-time model, comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, help_heading = "Model and hardware")]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "de_numbers")]
    pub beta_coeffs: Option<Vec<f64>>,
    /// YAML file of coefficient sets replacing the shipped ones.
    #[arg(long, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coefficients_file: Option<PathBuf>,
    /// Read config.json from this directory instead of the bundled or hub config.
    #[arg(long, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_config_folder: Option<PathBuf>,
    /// JSON file adding or overriding GPU types.
    #[arg(long, help_heading = "Model and hardware")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_config: Option<PathBuf>,

    // ── Engine (every instance) ────────────────────────────────────────────────────────
    /// Maximum running requests per instance (vLLM max_num_seqs).
    #[arg(long, allow_hyphen_values = true, visible_alias = "max-num-running-reqs", help_heading = "Engine")]
    #[serde(alias = "max-num-running-reqs", skip_serializing_if = "Option::is_none")]
    pub max_num_seqs: Option<u32>,
    /// Token budget of one step (vLLM max_num_batched_tokens).
    #[arg(
        long,
        allow_hyphen_values = true,
        visible_alias = "max-num-scheduled-tokens",
        help_heading = "Engine"
    )]
    #[serde(alias = "max-num-scheduled-tokens", skip_serializing_if = "Option::is_none")]
    pub max_num_batched_tokens: Option<u32>,
    /// Per-request prefill chunk cap in tokens (0 = off).
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_prefill_token_threshold: Option<u32>,
    /// Context limit in tokens [default: from the model config, capped by the KV cache].
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u64>,
    /// KV blocks per instance [default: from GPU memory, weights, TP and utilization].
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_kv_blocks: Option<u64>,
    /// Tokens per KV block.
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_size_in_tokens: Option<u32>,
    /// Fraction of GPU memory vLLM may use, in (0, 1].
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_memory_utilization: Option<f64>,
    /// Disable prefix caching (every prompt is computed in full).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_prefix_caching: Option<bool>,
    /// vLLM V1 async scheduling: a request arriving during a step joins the step after next.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub async_scheduling: Option<bool>,
    /// Wait-queue order.
    #[arg(long, value_enum, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerKind>,
    /// Scheduling priority of a request from its SLO class.
    #[arg(long, value_enum, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_policy: Option<PriorityKind>,
    /// Victim when KV blocks run out.
    #[arg(long, value_enum, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<PreemptionKind>,
    /// CPU KV tier blocks per instance (vLLM KV offloading): computed blocks are copied to
    /// host memory and a prefix hit there is loaded back instead of recomputed; 0 = off.
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cpu_blocks: Option<u64>,
    /// Accepted for the reference simulator's commands, in [0, 1]; no effect (blocks are
    /// written through to the CPU tier as they are computed, as vLLM does).
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_offload_threshold: Option<f64>,
    /// CPU→GPU bandwidth of the CPU KV tier in GB/s per GPU (under --compat reference: the
    /// reference's tokens per µs).
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_transfer_bandwidth: Option<f64>,
    /// Fixed cost of one CPU→GPU KV transfer (µs, or a duration: 20us).
    #[arg(long, allow_hyphen_values = true, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_transfer_base_latency: Option<Micros>,
    /// YAML file with a `kv_offload:` block (the reference's vLLM offload description): its CPU
    /// tier (`cpu_bytes_to_use`, LRU, `offload_prompt_only`); instead of --kv-cpu-blocks.
    #[arg(long, help_heading = "Engine")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_offload_config: Option<PathBuf>,

    // ── LoRA ───────────────────────────────────────────────────────────────────────────
    /// YAML file with a `lora:` block: the adapter registry (`adapters: [{id, rank}]`), and
    /// optionally `adapter_capacity`, the load-cost coefficients and `step_overhead_tiers`.
    #[arg(long, help_heading = "LoRA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_config: Option<PathBuf>,
    /// Resident LoRA adapter slots per instance (vLLM --max-loras); required to simulate
    /// the declared adapters.
    #[arg(long, allow_hyphen_values = true, help_heading = "LoRA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_adapter_capacity: Option<i64>,
    /// Fixed time of one cold adapter load, µs.
    #[arg(long, allow_hyphen_values = true, help_heading = "LoRA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_load_base_latency_us: Option<f64>,
    /// Bandwidth of a cold adapter load, bytes per µs.
    #[arg(long, allow_hyphen_values = true, help_heading = "LoRA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_load_bandwidth_bytes_us: Option<f64>,
    /// Adapter weight bytes per unit of rank (footprint = rank × this).
    #[arg(long, allow_hyphen_values = true, help_heading = "LoRA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_footprint_bytes_per_rank: Option<f64>,
    /// Adds the lora-affinity scorer at this weight to the weighted routing profile.
    #[arg(long, allow_hyphen_values = true, help_heading = "LoRA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_scorer_weight: Option<f64>,

    // ── Cluster ────────────────────────────────────────────────────────────────────────
    /// Number of instances (1 = single-instance mode: no admission, no routing).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_instances: Option<u32>,
    /// A pool of instances with its own hardware, TP, engine limits or step-time model, "name=…,instances=…[,hardware=…,tp=…,max-num-seqs=…,…]"; repeat for each pool (in files: a list of mappings). Keys a pool leaves out take the flat flags' values; excludes --num-instances.
    #[arg(
        long = "pools",
        visible_alias = "pool",
        value_name = "name=…,instances=…,…",
        help_heading = "Cluster"
    )]
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::pools::de_pools")]
    pub pools: Option<Vec<crate::pools::PoolSpec>>,
    /// Which requests enter the cluster.
    #[arg(long, value_enum, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_policy: Option<AdmissionKind>,
    /// Admission decision delay (µs, or a duration: 5ms).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission_latency: Option<Micros>,
    /// Token-bucket capacity (prompt tokens).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_bucket_capacity: Option<f64>,
    /// Token-bucket refill rate (prompt tokens/s).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_bucket_refill_rate: Option<f64>,
    /// tier-shed: busiest-instance load (queue + batch + in flight) above which it sheds.
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_shed_threshold: Option<u64>,
    /// tier-shed: under load, classes with admission priority below this are shed.
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_shed_min_priority: Option<i32>,
    /// gaie-legacy: queue depth that counts as saturated.
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaie_qd_threshold: Option<f64>,
    /// gaie-legacy: KV utilization that counts as saturated, in (0, 1].
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaie_kv_threshold: Option<f64>,
    /// Admission priority per SLO class, overriding the GAIE defaults (config files only).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_priorities: Option<BTreeMap<String, i32>>,
    /// Tenant → fraction of the cluster's running slots it may hold (config files only).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_budgets: Option<BTreeMap<String, f64>>,
    /// Per-SLO-class TTFT targets (µs) ordering `--dispatch-order slo-deadline`, e.g.
    /// critical=100000,standard=500000 (in files: a map).
    #[arg(long, value_name = "CLASS=US,…", help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_targets: Option<SloTargetMap>,
    /// Which instance an admitted request goes to.
    #[arg(long, value_enum, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<RoutingKind>,
    /// Weighted-routing profile "name:weight,…" [default: precise-prefix-cache:2,queue-depth:1,kv-utilization:1].
    #[arg(long, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_scorers: Option<ScorerList>,
    /// Routing decision delay (µs, or a duration: 5ms).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_latency: Option<Micros>,
    /// Refresh period of the instance signals the router sees (µs or a duration, 0 = live).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_refresh_interval: Option<Micros>,
    /// Staleness of the router's view of each instance's prefix cache (µs or a duration, 0 = live).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_signal_delay: Option<Micros>,

    // ── Prefill/decode disaggregation ──────────────────────────────────────────────────
    /// Instances dedicated to prefill (0 = no disaggregation); with --decode-instances and --prefill-decode-instances at most --num-instances (all of them when --num-instances is left out).
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_instances: Option<u32>,
    /// Instances dedicated to decode (0 = no disaggregation).
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_instances: Option<u32>,
    /// Shared-role instances serving both prefill and decode (llm-d's "prefill-decode" role).
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_decode_instances: Option<u32>,
    /// GPU of the prefill instances [default: --hardware].
    #[arg(long, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_hardware: Option<String>,
    /// GPU of the decode instances [default: --hardware].
    #[arg(long, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_hardware: Option<String>,
    /// Tensor parallelism of the prefill instances [default: --tp].
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_tp: Option<u32>,
    /// Tensor parallelism of the decode instances [default: --tp].
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_tp: Option<u32>,
    /// Step-time model of the prefill instances [default: --latency-model].
    #[arg(long, value_enum, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_latency_model: Option<LatencyModelKind>,
    /// Step-time model of the decode instances [default: --latency-model].
    #[arg(long, value_enum, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_latency_model: Option<LatencyModelKind>,
    /// Context limit of the prefill instances [default: --max-model-len].
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_max_model_len: Option<u64>,
    /// Context limit of the decode instances [default: --max-model-len].
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_max_model_len: Option<u64>,
    /// Which requests are disaggregated (prefill on a prefill instance, KV transfer, decode on a decode instance).
    #[arg(long, value_enum, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_decider: Option<blis_sim::PdDeciderKind>,
    /// prefix-threshold: disaggregate when the prompt tokens not cached on the chosen decode instance exceed this.
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_prefix_threshold: Option<u32>,
    /// Weighted-routing profile "name:weight,…" of the prefill instances [default: the run's routing policy].
    #[arg(long, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_routing_scorers: Option<ScorerList>,
    /// Weighted-routing profile "name:weight,…" of the decode instances [default: the run's routing policy].
    #[arg(long, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_routing_scorers: Option<ScorerList>,
    /// KV transfer bandwidth between prefill and decode instances, GB/s (per GPU).
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_transfer_bandwidth: Option<f64>,
    /// Fixed latency of each KV transfer, ms.
    #[arg(long, allow_hyphen_values = true, help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_transfer_base_latency: Option<f64>,
    /// Concurrent KV transfers share the link's bandwidth fairly (otherwise each gets all of it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Disaggregation")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd_transfer_contention: Option<bool>,

    /// Record routing decisions.
    #[arg(long, value_enum, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_level: Option<TraceLevel>,
    /// Score the top K alternatives of each routing decision (regret).
    #[arg(long, allow_hyphen_values = true, help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterfactual_k: Option<u32>,
    /// Add the decision-trace summary to the output.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Cluster")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summarize_trace: Option<bool>,

    // ── Autoscaling ────────────────────────────────────────────────────────────────────
    /// Model autoscaler tick interval in µs (0 = off); overrides the `autoscaler` block's
    /// interval_us. Needs a `node-pools` block (one pool) bounding the fleet.
    #[arg(long, value_name = "US", help_heading = "Autoscaling")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_autoscaler_interval_us: Option<u64>,
    /// Node pools the fleet's instances are placed on (config files only).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_pools: Option<Vec<crate::autoscale::NodePoolSpec>>,
    /// The model autoscaler's interval, stabilization windows and analyzer (config files only).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<crate::autoscale::AutoscalerSpec>,
    /// Instance loading delay and drain policy (config files only).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_lifecycle: Option<crate::autoscale::LifecycleSpec>,

    // ── Flow control ───────────────────────────────────────────────────────────────────
    /// Hold admitted requests in a gateway queue and dispatch them to the router only while
    /// the saturation detector says the cluster has room (GAIE flow control; cluster mode).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<bool>,
    /// When the gateway holds requests back (never = pass-through).
    #[arg(long, value_enum, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation_detector: Option<SaturationDetectorKind>,
    /// Which waiting request the gateway dispatches next.
    #[arg(long, value_enum, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch_order: Option<DispatchOrder>,
    /// Gateway queue limit; arrivals beyond it are rejected (0 = unlimited).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_gateway_queue_depth: Option<u64>,
    /// utilization detector: instance queue depth that counts as saturated (> 0).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_depth_threshold: Option<f64>,
    /// utilization detector: KV-cache utilization that counts as saturated (> 0).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache_util_threshold: Option<f64>,
    /// concurrency detector: requests in flight per instance that count as saturated (> 0).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Limit of each priority band of the gateway queue; arrivals beyond it are rejected
    /// (0 = unlimited).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_band_capacity: Option<u64>,
    /// Saturation ceiling of the lowest priority band, in (0, 1] (bands between: linear);
    /// below 1, lower bands stop dispatching earlier and hold back everything below them.
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_limit_threshold: Option<f64>,
    /// Which tenant's flow of a priority band dispatches next.
    #[arg(long, value_enum, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness_policy: Option<FairnessPolicy>,
    /// Requests waiting longer than this at the gateway expire (µs or a duration; 0 = never).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_ttl: Option<Micros>,
    /// A full gateway queue pushes out its latest lowest-priority sheddable request for a
    /// higher-priority arrival instead of rejecting it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_shedding: Option<bool>,
    /// Period of the gateway's dispatch attempts while requests wait (µs or a duration; 0 =
    /// the default 1 ms).
    #[arg(long, allow_hyphen_values = true, help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch_tick_interval: Option<Micros>,
    /// Saturated with a non-sheddable request waiting, end one sheddable request running on an
    /// instance (lowest priority, latest dispatched) to make room.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Flow control")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight_eviction: Option<bool>,

    // ── Workload ───────────────────────────────────────────────────────────────────────
    /// A built-in workload.
    #[arg(long, value_enum, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Preset>,
    /// Workload-spec v2 YAML file (in a config file: a path, or the spec itself inline).
    #[arg(long, value_name = "FILE", help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_spec: Option<WorkloadSpecRef>,
    /// Replay this TraceV2 data CSV as the workload.
    #[arg(long, visible_alias = "trace-data", value_name = "FILE.csv", help_heading = "Workload")]
    #[serde(alias = "trace-data", skip_serializing_if = "Option::is_none")]
    pub workload_trace: Option<PathBuf>,
    /// How a replay times the rounds of recorded sessions: fixed = every row at its recorded time; closed-loop = round 0 as recorded, each later round a think time after the previous one completes (--think-time-ms / --think-time-dist, else the recorded think_time_us, else the recorded gap) [default: fixed].
    #[arg(long, value_enum, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_mode: Option<SessionMode>,
    /// Header YAML of the trace (its seed seeds the tokens of rows without provenance).
    #[arg(long, value_name = "FILE.yaml", help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<PathBuf>,
    /// Arrival rate of built-in workloads (requests/s).
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Number of requests (caps a workload spec's own count when given).
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<u64>,
    /// Arrival process of built-in workloads.
    #[arg(long, value_enum, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival_process: Option<ArrivalProcess>,
    /// Mean prompt length (tokens) [default: the workload's; distribution: 512].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<f64>,
    /// Standard deviation of the prompt length [default: the workload's; distribution: 256].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_stdev: Option<f64>,
    /// Shortest prompt [default: the workload's; distribution: 2].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_min: Option<u32>,
    /// Longest prompt [default: the workload's; distribution: 7000].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_max: Option<u32>,
    /// Mean output length (tokens) [default: the workload's; distribution: 512].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<f64>,
    /// Standard deviation of the output length [default: the workload's; distribution: 256].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_stdev: Option<f64>,
    /// Shortest output [default: the workload's; distribution: 2].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_min: Option<u32>,
    /// Longest output [default: the workload's; distribution: 7000].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_max: Option<u32>,
    /// Length of one prefix shared by every request of a built-in workload (tokens).
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_tokens: Option<u32>,
    /// Per-request deadline (seconds, or a duration: 2m), negative = none [default: 300 s for built-in workloads, else the spec's].
    #[arg(long, allow_hyphen_values = true, help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// Closed-loop virtual users replacing the built-in workload's arrivals: each sends a request, waits for the response and the think time, then sends the next (0 = off; excludes --rate; bound the run with --num-requests or --horizon).
    #[arg(long, allow_hyphen_values = true, value_name = "N", help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Think time of the --concurrency users (or of closed-loop replayed sessions) between a response and the next request, in ms.
    #[arg(long, allow_hyphen_values = true, value_name = "MS", help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_time_ms: Option<u64>,
    /// Think-time distribution instead of --think-time-ms: "constant:value=500ms" or "lognormal:mu=2.0,sigma=0.6,min=3s,max=30s" (mu, sigma of ln seconds).
    #[arg(long, value_name = "DIST", help_heading = "Workload")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_time_dist: Option<String>,

    // ── Run ────────────────────────────────────────────────────────────────────────────
    /// Behave as the reference simulator wherever BLIS deliberately differs (docs/compat.md).
    #[arg(long, value_enum, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat: Option<Compat>,
    /// Also run the same configuration under N−1 more seeds (base+1 …) in parallel and report
    /// their spread (`replicas`), which widens the prediction intervals.
    #[arg(long, allow_hyphen_values = true, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Master seed of every random stream.
    #[arg(long, allow_hyphen_values = true, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Simulated-time limit (µs, or a duration: 10s) [default: none, every request runs to completion].
    #[arg(long, allow_hyphen_values = true, help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizon: Option<Micros>,
    /// Lockstep decode fast path (never changes results; off only to compare).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockstep_decode: Option<bool>,
    /// Run uncoupled instances one at a time (never changes results; off only to compare).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub independent_instances: Option<bool>,
    /// Threads simulating uncoupled instances side by side; 0 = every available core. Never changes results, so it is left out of the configuration the outputs record.
    #[arg(long, allow_hyphen_values = true, value_name = "N", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// YAML bundle of policies in the reference simulator's format (flags win over it).
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_config: Option<PathBuf>,

    // ── SLOs and measurement ───────────────────────────────────────────────────────────
    /// Objectives on the run's figures, "metric<=duration,…", e.g. "ttft_p99<=500ms,e2e_mean<=5s" (metrics: ttft, itl, e2e, scheduling_delay × mean, p50, p90, p95, p99); adds an `slo` verdict.
    #[arg(long, value_name = "OBJECTIVES", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
    /// Per-class TTFT goodput targets, "class=duration,…" (e.g. "critical=100ms,standard=500ms"; class `default` = requests of no class).
    #[arg(long, value_name = "CLASS=DURATION,…", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_ttft: Option<String>,
    /// Per-class goodput targets on a request's mean inter-token latency, "class=duration,…".
    #[arg(long, value_name = "CLASS=DURATION,…", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_itl: Option<String>,
    /// Per-class end-to-end latency goodput targets, "class=duration,…".
    #[arg(long, value_name = "CLASS=DURATION,…", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_e2e: Option<String>,
    /// Exclude the first N requests (by arrival) from latency figures and goodput.
    #[arg(long, allow_hyphen_values = true, value_name = "N", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_requests: Option<u64>,
    /// Exclude requests arriving in the first S seconds (or a duration: 30s) from latency figures and goodput.
    #[arg(long, allow_hyphen_values = true, value_name = "S", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<Seconds>,
    /// Keep every latency sample for exact percentiles (memory grows with the run). By default percentiles come from mergeable sketches within 0.4 % (1/256) of the exact values; counts, means and throughputs are exact either way. On under --compat reference.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "SLOs and measurement")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_percentiles: Option<bool>,

    // ── Outputs and analyses ───────────────────────────────────────────────────────────
    /// Also write the metrics document to this file.
    #[arg(long, help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<PathBuf>,
    /// Write one record per request (JSON array) to this file.
    #[arg(long, help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_path: Option<PathBuf>,
    /// Export the run's requests as a TraceV2 pair PREFIX.yaml + PREFIX.csv that `blis replay` reproduces.
    #[arg(long, visible_alias = "export-workload-trace", value_name = "PREFIX", help_heading = "Outputs")]
    #[serde(alias = "export-workload-trace", skip_serializing_if = "Option::is_none")]
    pub trace_output: Option<PathBuf>,
    /// Write one JSON line per routing decision to this file (implies --trace-level decisions).
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_trace_path: Option<PathBuf>,
    /// Add a `fitness` score: "key:weight,…" over throughput, tokens_per_sec, p99_ttft, p50_ttft, mean_ttft, p99_e2e, p50_e2e, mean_e2e.
    #[arg(long, help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fitness_weights: Option<String>,
    /// Add a post-hoc saturation verdict from composite, threshold or backlog-drift; a comma list of them, or `all`, adds every verdict (`saturation.verdicts`) and reports the most severe.
    #[arg(long, visible_alias = "detectors", value_name = "DETECTORS", help_heading = "Outputs")]
    #[serde(alias = "detectors", skip_serializing_if = "Option::is_none")]
    pub post_hoc_detector: Option<DetectorSelection>,
    /// Write every detector's verdict after each arrival and completion to this JSON file (`{"final": {…}, "trace": […]}`, the reference's format); needs --detectors.
    #[arg(long, value_name = "FILE.json", help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation_report: Option<PathBuf>,
    /// YAML tuning of the detectors: `threshold: {threshold_ms: 5000}`, `backlog_drift: {window_size_sec: 60}` (a block needs its detector selected).
    #[arg(long, value_name = "FILE.yaml", help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation_config: Option<PathBuf>,
    /// Final window of the saturation verdict, ending at the last arrival (seconds, or a duration: 2m) [default: 30; backlog-drift 60].
    #[arg(long, allow_hyphen_values = true, help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation_final_window: Option<Seconds>,
    /// Write a self-contained HTML page: latency CDFs, queues, batches and KV cache over time, routing, goodput, configuration.
    #[arg(long, value_name = "FILE.html", help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PathBuf>,
    /// Write the sampled per-instance time series (queue, batch, KV blocks, completions) as CSV.
    #[arg(long, value_name = "FILE.csv", help_heading = "Outputs")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeseries_path: Option<PathBuf>,
}

/// `--session-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionMode {
    /// Every recorded row at its recorded time.
    Fixed,
    /// Later rounds of a session wait for the previous round's response and a think time.
    ClosedLoop,
}

/// `--trace-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceLevel {
    /// No decision records.
    None,
    /// One record per admission and routing decision.
    Decisions,
}

/// `--compat`: whose semantics a run follows where BLIS deliberately differs from the reference
/// simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compat {
    /// BLIS's: real vLLM's behaviour where the reference differs.
    Blis,
    /// The reference simulator's: constant arrivals, its KV-capacity formula, synchronous
    /// scheduling, its inference-perf generation and engine rules, trained-physics.
    Reference,
}

impl Compat {
    /// The defaults that change under this mode (flags and files still win over them).
    pub fn defaults(self) -> RunSpec {
        match self {
            Compat::Blis => RunSpec::default(),
            Compat::Reference => RunSpec {
                latency_model: Some(LatencyModelKind::TrainedPhysics),
                async_scheduling: Some(false),
                arrival_process: Some(ArrivalProcess::Constant),
                kv_transfer_bandwidth: Some(100.0),
                exact_percentiles: Some(true),
                ..RunSpec::default()
            },
        }
    }
}

/// `--arrival-process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrivalProcess {
    /// Exponential gaps (real traffic).
    Poisson,
    /// Evenly spaced arrivals.
    Constant,
}

impl RunSpec {
    /// The defaults of every key that has one (the only place defaults are written down).
    /// Keys whose default depends on the model, the hardware or the workload stay unset and
    /// are derived when the spec is resolved.
    pub fn defaults() -> RunSpec {
        RunSpec {
            hardware: Some("H100".into()),
            tp: Some(1),
            latency_model: Some(LatencyModelKind::BlisPhysics),
            max_num_seqs: Some(256),
            max_num_batched_tokens: Some(2048),
            long_prefill_token_threshold: Some(0),
            block_size_in_tokens: Some(16),
            gpu_memory_utilization: Some(0.9),
            no_prefix_caching: Some(false),
            async_scheduling: Some(true),
            scheduler: Some(SchedulerKind::Fcfs),
            priority_policy: Some(PriorityKind::SloBased),
            preemption_policy: Some(PreemptionKind::Fcfs),
            kv_cpu_blocks: Some(0),
            kv_offload_threshold: Some(0.9),
            kv_transfer_bandwidth: Some(32.0),
            kv_transfer_base_latency: Some(Micros(0)),
            num_instances: Some(1),
            admission_policy: Some(AdmissionKind::AlwaysAdmit),
            admission_latency: Some(Micros(0)),
            token_bucket_capacity: Some(10_000.0),
            token_bucket_refill_rate: Some(1_000.0),
            tier_shed_threshold: Some(0),
            tier_shed_min_priority: Some(3),
            gaie_qd_threshold: Some(5.0),
            gaie_kv_threshold: Some(0.8),
            routing_policy: Some(RoutingKind::RoundRobin),
            prefill_instances: Some(0),
            decode_instances: Some(0),
            prefill_decode_instances: Some(0),
            pd_decider: Some(blis_sim::PdDeciderKind::Never),
            pd_prefix_threshold: Some(16),
            pd_transfer_bandwidth: Some(25.0),
            pd_transfer_base_latency: Some(0.05),
            lora_load_base_latency_us: Some(1500.0),
            lora_load_bandwidth_bytes_us: Some(2.0e6),
            lora_footprint_bytes_per_rank: Some(2.0e6),
            pd_transfer_contention: Some(false),
            routing_latency: Some(Micros(0)),
            snapshot_refresh_interval: Some(Micros(50_000)),
            cache_signal_delay: Some(Micros(50_000)),
            trace_level: Some(TraceLevel::None),
            counterfactual_k: Some(0),
            model_autoscaler_interval_us: Some(0),
            summarize_trace: Some(false),
            flow_control: Some(false),
            saturation_detector: Some(SaturationDetectorKind::Never),
            dispatch_order: Some(DispatchOrder::Fifo),
            max_gateway_queue_depth: Some(0),
            queue_depth_threshold: Some(5.0),
            kv_cache_util_threshold: Some(0.8),
            max_concurrency: Some(100),
            per_band_capacity: Some(0),
            usage_limit_threshold: Some(1.0),
            fairness_policy: Some(FairnessPolicy::GlobalStrict),
            request_ttl: Some(Micros(0)),
            queue_shedding: Some(false),
            dispatch_tick_interval: Some(Micros(1000)),
            in_flight_eviction: Some(false),
            workload: Some(Preset::Distribution),
            rate: Some(1.0),
            arrival_process: Some(ArrivalProcess::Poisson),
            prefix_tokens: Some(0),
            seed: Some(42),
            compat: Some(Compat::Blis),
            replicas: Some(1),
            lockstep_decode: Some(true),
            independent_instances: Some(true),
            exact_percentiles: Some(false),
            threads: Some(0),
            ..RunSpec::default()
        }
    }

    /// The spec as a map of key → value (unset keys absent), in declaration order.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self).expect("a run spec serializes") {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a struct serializes to an object"),
        }
    }

    /// Parses a map of key → value (as [`RunSpec::to_map`] gives).
    pub fn from_map(map: serde_json::Map<String, serde_json::Value>) -> Result<RunSpec, String> {
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
    }

    /// Every key a spec accepts, in declaration order.
    pub fn keys() -> Vec<String> {
        use clap::CommandFactory as _;
        let mut keys: Vec<String> =
            KeyProbe::command().get_arguments().filter_map(|a| a.get_long().map(str::to_string)).collect();
        keys.extend(["slo-priorities", "tenant-budgets"].map(String::from));
        keys
    }
}

/// A throwaway command around [`RunSpec`] to enumerate its flags.
#[derive(clap::Parser)]
struct KeyProbe {
    #[command(flatten)]
    spec: RunSpec,
}

/// A weighted-routing profile: `name:weight,…` on the command line; that string or a list of
/// `{name, weight}` in files.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerList(pub Vec<ScorerWeight>);

impl FromStr for ScorerList {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, weight)) = item.split_once(':') else {
                return Err(format!("'{item}' is not name:weight"));
            };
            let name = name.trim();
            let kind = <ScorerKind as clap::ValueEnum>::from_str(name, false).map_err(|_| {
                format!("unknown scorer '{name}' (accepted: {})", crate::accepted::<ScorerKind>())
            })?;
            let weight: f64 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of '{name}' is not a number: '{}'", weight.trim()))?;
            out.push(ScorerWeight { name: kind, weight });
        }
        Ok(ScorerList(out))
    }
}

impl fmt::Display for ScorerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> =
            self.0.iter().map(|s| format!("{}:{}", crate::name_of(s.name), s.weight)).collect();
        f.write_str(&items.join(","))
    }
}

impl Serialize for ScorerList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ScorerList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let items = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(t) => return t.parse().map_err(D::Error::custom),
            serde_json::Value::Array(items) => items,
            other => {
                return Err(D::Error::custom(format!(
                    "expected \"name:weight,…\" or a list of {{name, weight}}, got {other}"
                )));
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let name = item.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
            let entry: ScorerWeight = serde_json::from_value(item).map_err(|e| {
                let known = <ScorerKind as clap::ValueEnum>::from_str(&name, false).is_ok();
                if !name.is_empty() && !known {
                    D::Error::custom(format!(
                        "entry {i}: unknown scorer '{name}' (accepted: {})",
                        crate::accepted::<ScorerKind>()
                    ))
                } else {
                    D::Error::custom(format!("entry {i}: {e}"))
                }
            })?;
            out.push(entry);
        }
        Ok(ScorerList(out))
    }
}

/// `slo-targets`: SLO class → TTFT target (µs); `class=µs,…` on the command line, a map in
/// files. Class names are checked when the spec is resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SloTargetMap(pub BTreeMap<String, u64>);

impl FromStr for SloTargetMap {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((class, us)) = item.split_once('=') else {
                return Err(format!("'{item}' is not class=µs"));
            };
            let us: u64 = us.trim().parse().map_err(|_| {
                format!("target of '{}' is not a whole number of µs: '{}'", class.trim(), us.trim())
            })?;
            out.insert(class.trim().to_string(), us);
        }
        Ok(SloTargetMap(out))
    }
}

impl Serialize for SloTargetMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SloTargetMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(t) => t.parse().map_err(D::Error::custom),
            map @ serde_json::Value::Object(_) => {
                serde_json::from_value(map).map(SloTargetMap).map_err(|e| D::Error::custom(e.to_string()))
            }
            other => {
                Err(D::Error::custom(format!("expected a map of class → µs or \"class=µs,…\", got {other}")))
            }
        }
    }
}

/// `workload-spec`: a file, or (in config files) the spec inline.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadSpecRef {
    Path(PathBuf),
    Inline(Box<WorkloadSpec>),
}

impl FromStr for WorkloadSpecRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(WorkloadSpecRef::Path(PathBuf::from(text)))
    }
}

impl Serialize for WorkloadSpecRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkloadSpecRef::Path(p) => p.serialize(s),
            WorkloadSpecRef::Inline(spec) => spec.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WorkloadSpecRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(p) => Ok(WorkloadSpecRef::Path(PathBuf::from(p))),
            inline @ serde_json::Value::Object(_) => serde_json::from_value::<WorkloadSpec>(inline)
                .map(|s| WorkloadSpecRef::Inline(Box::new(s)))
                .map_err(|e| D::Error::custom(format!("inline workload spec: {e}"))),
            other => Err(D::Error::custom(format!("expected a file path or a workload spec, got {other}"))),
        }
    }
}

/// A list of numbers, or the command-line form `"1,2,3"` (sweep grids write values as text).
fn de_numbers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<f64>),
        Text(String),
    }
    match Option::<Form>::deserialize(d)? {
        None => Ok(None),
        Some(Form::List(v)) => Ok(Some(v)),
        Some(Form::Text(t)) => t
            .split(',')
            .map(|x| x.trim().parse::<f64>().map_err(|_| format!("'{}' is not a number", x.trim())))
            .collect::<Result<Vec<f64>, String>>()
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}
