//! The JSON metrics document (field names and units of the spec's outputs.md).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::SimReport;
use crate::measure::{GOODPUT_LABELS, GoodCounts, TimeSeries};
use crate::metrics::{Latencies, Metrics};
use crate::steady::{SteadyDoc, SteadyVerdict, WarmupDoc};
use crate::trace::TraceSummary;

/// Aggregate metrics of one instance or of the whole cluster. Times in ms, rates per second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsDoc {
    pub instance_id: String,
    /// The pool of the instance (or the pool summarized), in runs configured with `pools:`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolDoc>,
    pub completed_requests: u64,
    pub injected_requests: u64,
    pub still_queued: u64,
    pub still_running: u64,
    pub rejected_requests: u64,
    pub dropped_unservable: u64,
    pub timed_out_requests: u64,
    pub length_capped_requests: u64,
    /// Requests between arrival and a wait queue when the horizon cut the run.
    pub in_transit_requests: u64,
    /// Disaggregated fleets: prompts computed here and handed to a decode instance (these
    /// requests complete, and count, on their decode instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefilled_requests: Option<u64>,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub vllm_estimated_duration_s: f64,
    /// Completions per second over the steady window (first measured arrival → last arrival;
    /// see `steady_state`), or over the whole run when arrivals span no time.
    pub responses_per_sec: f64,
    /// Completions / `vllm_estimated_duration_s`: the whole run, drain included (what
    /// `responses_per_sec` was before it was measured over the steady window).
    pub responses_per_sec_incl_drain: f64,
    pub tokens_per_sec: f64,
    pub ttft_mean_ms: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p90_ms: f64,
    pub ttft_p95_ms: f64,
    pub ttft_p99_ms: f64,
    pub e2e_mean_ms: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p90_ms: f64,
    pub e2e_p95_ms: f64,
    pub e2e_p99_ms: f64,
    pub itl_mean_ms: f64,
    pub itl_p50_ms: f64,
    pub itl_p90_ms: f64,
    pub itl_p95_ms: f64,
    pub itl_p99_ms: f64,
    pub scheduling_delay_p99_ms: f64,
    pub preemption_count: u64,
    pub cache_hit_rate: f64,
    pub prompt_tokens_computed: u64,
    pub prompt_tokens_cached: u64,
    pub peak_kv_blocks: u32,
    pub total_kv_blocks: u64,
    /// The CPU KV tier's figures, present only when it is on (`--kv-cpu-blocks` > 0).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub kv_tier: Option<KvTierDoc>,
    /// LoRA adapter figures, present only when adapters are simulated (`--lora-config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraDoc>,
    /// Per-adapter figures (the reference's `adapters` block), with `lora`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapters: Option<BTreeMap<String, AdapterDoc>>,
}

/// LoRA totals of a run or instance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoraDoc {
    /// Cold adapter loads.
    pub adapter_loads: u64,
    /// Resident adapters evicted to make room for another.
    pub adapter_evictions: u64,
    /// Summed duration of the loads.
    pub adapter_load_time_ms: f64,
    /// Requests admitted with their adapter already resident.
    pub warm_admissions: u64,
    /// Most adapters resident at once on one instance.
    pub peak_resident_adapters: u32,
}

/// One adapter's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdapterDoc {
    pub load_count: u64,
    pub eviction_count: u64,
    pub completed_requests: u64,
    pub ttft_p50_us: f64,
    pub ttft_p99_us: f64,
    pub throughput_tok_per_s: f64,
}

fn lora_docs(m: &Metrics) -> (Option<LoraDoc>, Option<BTreeMap<String, AdapterDoc>>) {
    let Some(t) = m.lora.as_ref() else { return (None, None) };
    let duration_s = m.end_us as f64 / 1e6;
    let sum = |f: fn(&crate::lora::AdapterTotals) -> u64| t.adapters.iter().map(f).sum::<u64>();
    let doc = LoraDoc {
        adapter_loads: sum(|a| a.loads),
        adapter_evictions: sum(|a| a.evictions),
        adapter_load_time_ms: ms(sum(|a| a.load_us) as f64),
        warm_admissions: t.warm_admissions,
        peak_resident_adapters: t.peak_resident,
    };
    let adapters = t
        .names
        .iter()
        .zip(&t.adapters)
        .filter(|(_, a)| a.loads + a.evictions + a.completed > 0)
        .map(|(name, a)| {
            let ttft = a.ttft.summary();
            let doc = AdapterDoc {
                load_count: a.loads,
                eviction_count: a.evictions,
                completed_requests: a.completed,
                ttft_p50_us: ttft.p50_us,
                ttft_p99_us: ttft.p99_us,
                throughput_tok_per_s: if duration_s > 0.0 {
                    a.output_tokens as f64 / duration_s
                } else {
                    0.0
                },
            };
            (name.to_string(), doc)
        })
        .collect();
    (Some(doc), Some(adapters))
}

/// CPU KV tier figures (flattened into [`MetricsDoc`]). Hit rates are shares of the blocks
/// allocated (as `cache_hit_rate`, which with the tier counts hits in either tier).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KvTierDoc {
    pub total_kv_cpu_blocks: u64,
    /// Blocks found in the GPU prefix cache / blocks allocated.
    pub gpu_cache_hit_rate: f64,
    /// Blocks brought back from the CPU tier / blocks allocated.
    pub cpu_cache_hit_rate: f64,
    /// Blocks written to the CPU tier.
    pub kv_offloaded_blocks: u64,
    /// Blocks brought back from the CPU tier (CPU prefix hits).
    pub kv_reloaded_blocks: u64,
    /// Blocks the CPU tier's LRU dropped.
    pub kv_cpu_evicted_blocks: u64,
    /// CPU→GPU transfers.
    pub kv_transfers: u64,
    /// Summed duration of the CPU→GPU transfers.
    pub kv_transfer_time_ms: f64,
    /// Mean time a request waited for its transfer (queueing on the link included; 0 when the
    /// transfers stall steps instead, under `--compat reference`).
    pub kv_transfer_wait_mean_ms: f64,
    /// CPU-tier evictions / blocks offloaded (the reference's definition: how fast the CPU tier
    /// churns; pooled over instances).
    pub kv_thrashing_rate: f64,
}

fn kv_tier_doc(m: &Metrics) -> Option<KvTierDoc> {
    let t = m.kv_tier.as_ref()?;
    let allocated = m.kv_hit_blocks + t.cpu_hit_blocks + m.kv_miss_blocks;
    let share = |x: u64| if allocated == 0 { 0.0 } else { x as f64 / allocated as f64 };
    Some(KvTierDoc {
        total_kv_cpu_blocks: t.cpu_blocks,
        gpu_cache_hit_rate: share(m.kv_hit_blocks),
        cpu_cache_hit_rate: share(t.cpu_hit_blocks),
        kv_offloaded_blocks: t.offloaded_blocks,
        kv_reloaded_blocks: t.cpu_hit_blocks,
        kv_cpu_evicted_blocks: t.cpu_evicted_blocks,
        kv_transfers: t.loads,
        kv_transfer_time_ms: ms(t.transfer_us as f64),
        kv_transfer_wait_mean_ms: if t.loads == 0 { 0.0 } else { ms(t.load_wait_us as f64) / t.loads as f64 },
        kv_thrashing_rate: if t.offloaded_blocks == 0 {
            0.0
        } else {
            t.cpu_evicted_blocks as f64 / t.offloaded_blocks as f64
        },
    })
}

impl MetricsDoc {
    /// The document's field names, sorted (the metric columns of a sweep table).
    /// A document of no requests (a base for tests and for listing field names).
    pub fn zero() -> MetricsDoc {
        metrics_doc(String::new(), &Metrics::default(), 0, 0, None)
    }

    /// The fields the CPU KV tier adds to a document, in order.
    pub fn kv_tier_field_names() -> Vec<String> {
        let mut m = Metrics { kv_tier: Some(Default::default()), ..Metrics::default() };
        m.kv_tier.as_mut().expect("set").cpu_blocks = 1;
        let doc = metrics_doc(String::new(), &m, 0, 0, None);
        match serde_json::to_value(doc.kv_tier).expect("metrics serialize") {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!("a struct serializes to an object"),
        }
    }

    pub fn field_names() -> Vec<String> {
        let zero = metrics_doc(String::new(), &Metrics::default(), 0, 0, None);
        match serde_json::to_value(zero).expect("metrics serialize") {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!("a struct serializes to an object"),
        }
    }
}

/// What a pool's instances are: in per-instance and per-pool documents of runs with `pools:`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolDoc {
    pub pool: String,
    pub hardware: String,
    pub tp: u32,
    pub model: String,
    /// Prefill/decode role (disaggregated fleets): prefill, decode or both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Instances of the pool (per-pool documents only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
}

/// Figures of one SLO class (`per_class`, keyed by class): latencies when the run has more
/// than one class, goodput against the class's targets when it has any (the reference
/// simulator's field names).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClassDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_mean_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_mean_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub itl_mean_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub itl_p99_ms: Option<f64>,
    /// Measured arrivals of the class (the goodput denominator: rejected, dropped and
    /// timed-out requests included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Good requests / measured arrivals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
    /// Good requests per second of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_rps: Option<f64>,
    /// Per gated dimension (`ttft`, `itl`, `e2e`): completions meeting it / completions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment_by_dim: Option<BTreeMap<&'static str, f64>>,
}

/// One objective of `--slo` and whether the run met it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectiveDoc {
    /// As written (`ttft_p99<=500ms`).
    pub objective: String,
    /// The metrics-document field it reads (`ttft_p99_ms`).
    pub metric: String,
    pub threshold_ms: f64,
    pub value_ms: f64,
    pub met: bool,
}

/// `--slo`: a verdict per objective, and overall.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloDoc {
    /// Every objective met *and* the run steady (`steady_state.verdict` = stable): figures of
    /// an overloaded or too-short run say nothing about the steady state.
    pub met: bool,
    pub objectives: Vec<ObjectiveDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Totals of one tenant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantDoc {
    pub tenant_id: String,
    pub requests: u64,
    pub completed_requests: u64,
    pub output_tokens: u64,
}

/// What the gateway queue did (`--flow-control`). Counter names are the reference
/// simulator's conservation buckets; each request lands in at most one of them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlowControlDoc {
    /// Requests still waiting in the gateway queue when the run ended.
    pub gateway_queue_depth: u64,
    pub gateway_queue_depth_max: u64,
    /// Time-averaged depth over the run.
    pub gateway_queue_depth_mean: f64,
    /// Time from enqueue to dispatch of the dispatched requests.
    pub gateway_queue_delay_mean_ms: f64,
    pub gateway_queue_delay_p50_ms: f64,
    pub gateway_queue_delay_p99_ms: f64,
    /// Pushed out of a full queue by a higher-priority arrival (`--queue-shedding`).
    pub gateway_queue_shed: u64,
    /// Turned away by a full band (`--per-band-capacity`) or queue (`--max-gateway-queue-depth`).
    pub gateway_queue_rejected: u64,
    /// Waited longer than `--request-ttl`.
    pub gateway_expired: u64,
    /// Ended on their instance to make room (`--in-flight-eviction`).
    pub gateway_evicted: u64,
    /// Same-instance, same-class pairs where the earlier arrival's E2E exceeds twice the later
    /// one's (counted under `priority-fcfs` scheduling only, as the reference).
    pub priority_inversions: u64,
    /// Instances whose mean wait-queue depth exceeds twice the mean over all instances.
    pub hol_blocking_events: u64,
}

impl FlowControlDoc {
    fn of(g: &crate::cluster::flow::GatewayStats, end_us: u64) -> Self {
        let wait = g.wait_us.summary();
        FlowControlDoc {
            gateway_queue_depth: g.depth_at_end,
            gateway_queue_depth_max: g.depth_max,
            gateway_queue_depth_mean: g.depth_mean(end_us),
            gateway_queue_delay_mean_ms: ms(wait.mean_us),
            gateway_queue_delay_p50_ms: ms(wait.p50_us),
            gateway_queue_delay_p99_ms: ms(wait.p99_us),
            gateway_queue_shed: g.shed,
            gateway_queue_rejected: g.rejected,
            gateway_expired: g.expired,
            gateway_evicted: g.evicted,
            priority_inversions: g.priority_inversions,
            hol_blocking_events: g.hol_blocking_events,
        }
    }
}

/// One value per headline figure.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Figures<T> {
    pub ttft_mean_ms: T,
    pub e2e_mean_ms: T,
    pub itl_mean_ms: T,
    pub ttft_p99_ms: T,
    pub e2e_p99_ms: T,
}

/// 90 % intervals `[lo, hi]` of the headline figures, and what they combine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PredictionInterval {
    #[serde(flatten)]
    pub intervals: Figures<[f64; 2]>,
    /// Half-width of the step-time model's error, % of the value (held-out error, widened).
    pub model_error_pct: Figures<f64>,
    /// The factor the model error was widened by for leaving the calibration envelope (GPU,
    /// TP degree, architecture); 1 inside it.
    pub widening: f64,
    /// Seeds whose spread the intervals include (1 = model error only).
    pub replicas: usize,
}

/// Mean, sample standard deviation and range of a figure across seeds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub stdev: f64,
    pub min: f64,
    pub max: f64,
}

/// The headline figures of the same run under several seeds (the base seed first).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplicaSpread {
    pub seeds: Vec<u64>,
    #[serde(flatten)]
    pub figures: Figures<Spread>,
}

/// The whole document printed on stdout.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunDoc {
    #[serde(flatten)]
    pub cluster: MetricsDoc,
    /// Good requests (every gated dimension of their class met) per second of the run, when
    /// goodput targets are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_rps: Option<f64>,
    /// Good requests / measured arrivals over the classes with targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_attainment: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_class: BTreeMap<&'static str, ClassDoc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_tenant: Vec<TenantDoc>,
    /// Jain's index over per-tenant output tokens, (Σx)²/(n·Σx²); 1 when all are zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jain_fairness_index: Option<f64>,
    /// Admission rejections per SLO class (cluster mode, when any).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub shed_by_tier: std::collections::BTreeMap<&'static str, u64>,
    /// Gateway-queue figures (`--flow-control` only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<FlowControlDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_summary: Option<TraceSummary>,
    /// `--fitness-weights` evaluation (outputs.md §9.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fitness: Option<crate::fitness::FitnessDoc>,
    /// `--post-hoc-detector` verdict (outputs.md §9.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<crate::saturation::SaturationDoc>,
    /// Whether the figures describe a steady state, and why not.
    pub steady_state: SteadyDoc,
    /// `--slo` objectives and their verdicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloDoc>,
    /// Per-instance documents (cluster mode only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<MetricsDoc>,
    /// One document per pool, over its instances (runs configured with `pools:`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_pool: Vec<MetricsDoc>,
    /// One document per served model, over the instances serving it (fleets of several
    /// models only), keyed by the model's lower-case name without its organisation.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_model: BTreeMap<String, MetricsDoc>,
    /// Requests rejected because no pool serves the model they name, or they name none
    /// (fleets of several models only; included in `rejected_requests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unserved_model_rejections: Option<u64>,
    /// Prefill/decode disaggregation figures (fleets whose pools have roles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pd: Option<PdDoc>,
    /// Model autoscaling: fleet changes and GPU-hours (runs with an autoscaler).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingDoc>,
    /// 90 % intervals of the headline figures (model error and seed spread).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction_interval: Option<PredictionInterval>,
    /// The same run under other seeds (`--replicas N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaSpread>,
    /// How the run was configured (the resolved run description), so every result says how
    /// it was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Sampled per-instance state (for `--timeseries-path` and `--report`; not printed).
    #[serde(skip)]
    pub timeseries: TimeSeries,
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn metrics_doc(
    id: String,
    m: &Metrics,
    rejected: u64,
    in_transit: u64,
    window: Option<(u64, u64)>,
) -> MetricsDoc {
    let Latencies { ttft, e2e, itl, scheduling_delay, completed, output_tokens } = &m.all;
    let (ttft, e2e, itl, sched) = (ttft.summary(), e2e.summary(), itl.summary(), scheduling_delay.summary());
    let (lora, adapters) = lora_docs(m);
    let duration_s = m.end_us as f64 / 1e6;
    let per_s = |x: u64| if duration_s > 0.0 { x as f64 / duration_s } else { 0.0 };
    MetricsDoc {
        instance_id: id,
        pool: None,
        completed_requests: *completed,
        injected_requests: m.injected() + rejected + in_transit,
        still_queued: m.still_queued,
        still_running: m.still_running,
        rejected_requests: rejected,
        dropped_unservable: m.dropped_unservable,
        timed_out_requests: m.timed_out,
        length_capped_requests: m.length_capped,
        in_transit_requests: in_transit,
        prefilled_requests: None,
        total_input_tokens: m.total_input_tokens,
        total_output_tokens: *output_tokens,
        vllm_estimated_duration_s: duration_s,
        responses_per_sec: match window {
            Some(w) => crate::steady::rate_in(&m.completions, w),
            None => per_s(*completed),
        },
        responses_per_sec_incl_drain: per_s(*completed),
        tokens_per_sec: per_s(*output_tokens),
        ttft_mean_ms: ms(ttft.mean_us),
        ttft_p50_ms: ms(ttft.p50_us),
        ttft_p90_ms: ms(ttft.p90_us),
        ttft_p95_ms: ms(ttft.p95_us),
        ttft_p99_ms: ms(ttft.p99_us),
        e2e_mean_ms: ms(e2e.mean_us),
        e2e_p50_ms: ms(e2e.p50_us),
        e2e_p90_ms: ms(e2e.p90_us),
        e2e_p95_ms: ms(e2e.p95_us),
        e2e_p99_ms: ms(e2e.p99_us),
        itl_mean_ms: ms(itl.mean_us),
        itl_p50_ms: ms(itl.p50_us),
        itl_p90_ms: ms(itl.p90_us),
        itl_p95_ms: ms(itl.p95_us),
        itl_p99_ms: ms(itl.p99_us),
        scheduling_delay_p99_ms: ms(sched.p99_us),
        preemption_count: m.preemptions,
        cache_hit_rate: m.cache_hit_rate(),
        prompt_tokens_computed: m.prompt_tokens_computed,
        prompt_tokens_cached: m.prompt_tokens_cached,
        peak_kv_blocks: m.peak_kv_blocks,
        total_kv_blocks: m.total_kv_blocks,
        kv_tier: kv_tier_doc(m),
        lora,
        adapters,
    }
}

/// Jain's fairness index of `values`.
pub fn jain_index(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    if sq == 0.0 { 1.0 } else { sum * sum / (values.len() as f64 * sq) }
}

impl RunDoc {
    pub fn from_report(report: &SimReport) -> Self {
        let c = &report.counters;
        let window = crate::steady::window_us(report);
        let mut cluster = metrics_doc("cluster".into(), &report.cluster, c.rejected, c.in_transit, window);
        // Arrivals the engine saw are the ground truth for injected requests.
        cluster.injected_requests = c.injected;
        // Per-class latencies only say something when there is more than one class.
        let mut per_class: BTreeMap<&'static str, ClassDoc> = report
            .cluster
            .by_class
            .iter()
            .filter(|_| report.cluster.by_class.len() > 1)
            .map(|(class, lat)| (class.as_str(), class_latencies(lat)))
            .collect();
        let (goodput_rps, slo_attainment) = goodput(report, &mut per_class);
        let per_tenant: Vec<TenantDoc> = report
            .cluster
            .by_tenant
            .iter()
            .map(|(t, v)| TenantDoc {
                tenant_id: t.to_string(),
                requests: v.requests,
                completed_requests: v.completed,
                output_tokens: v.output_tokens,
            })
            .collect();
        let jain_fairness_index = (!per_tenant.is_empty())
            .then(|| jain_index(&per_tenant.iter().map(|t| t.output_tokens as f64).collect::<Vec<_>>()));
        let instances = if report.instances.len() > 1 {
            report
                .instances
                .iter()
                .enumerate()
                .map(|(i, m)| metrics_doc(format!("instance_{i}"), m, 0, 0, window))
                .collect()
        } else {
            Vec::new()
        };
        let series: Vec<&crate::measure::Series> = report.instances.iter().map(|m| &m.series).collect();
        let kv: Vec<u32> = report.instances.iter().map(|m| m.total_kv_blocks as u32).collect();
        let timeseries = TimeSeries::from_series(&series, kv, report.cluster.end_us);
        let ms_ = &report.measurement;
        let warmup = (ms_.warmup_requests > 0 || ms_.warmup_until_us > 0).then(|| WarmupDoc {
            requests: ms_.warmup_requests,
            until_s: ms_.warmup_until_us as f64 / 1e6,
            excluded_completions: report.cluster.warmup_completed,
        });
        let steady_state = crate::steady::assess(report, &timeseries, warmup, None);
        // As the reference: gateway-shed, expired and evicted requests count as shed too.
        let mut shed_by_tier = report.counters.rejected_by_class.clone();
        for (class, n) in report.counters.gateway.iter().flat_map(|g| &g.shed_by_class) {
            *shed_by_tier.entry(class).or_insert(0) += n;
        }
        RunDoc {
            cluster,
            goodput_rps,
            slo_attainment,
            per_class,
            per_tenant,
            jain_fairness_index,
            shed_by_tier,
            flow_control: report
                .counters
                .gateway
                .as_ref()
                .map(|g| FlowControlDoc::of(g, report.cluster.end_us)),
            trace_summary: report.trace.clone(),
            fitness: None,
            saturation: None,
            instances,
            per_pool: Vec::new(),
            per_model: BTreeMap::new(),
            unserved_model_rejections: None,
            pd: report.pd.as_ref().map(|pd| PdDoc::new(pd, report)),
            autoscaling: report.autoscale.as_ref().map(|a| AutoscalingDoc {
                gpu_hours_total: a.gpu_hours,
                cost_total: a.cost,
                pools: vec![a.clone()],
            }),
            prediction_interval: None,
            replicas: None,
            config: None,
            steady_state,
            slo: None,
            timeseries,
        }
    }

    /// Labels each instance document with its pool and adds one document per pool.
    /// `pools`: (what the pool is, its number of instances), in instance order.
    pub fn add_pools(&mut self, report: &SimReport, pools: &[(PoolDoc, usize)]) {
        let window = crate::steady::window_us(report);
        let mut first = 0;
        for (doc, n) in pools {
            let range = first..(first + n).min(report.instances.len());
            first += n;
            for (d, m) in self
                .instances
                .get_mut(range.clone())
                .into_iter()
                .flatten()
                .zip(&report.instances[range.clone()])
            {
                d.pool = Some(doc.clone());
                if doc.role.is_some() {
                    d.prefilled_requests = Some(m.pd_handoffs);
                }
            }
            let mut merged = Metrics::default();
            for m in &report.instances[range] {
                merged.merge_figures(m);
            }
            let mut pool_doc = metrics_doc(format!("pool_{}", doc.pool), &merged, 0, 0, window);
            pool_doc.pool = Some(PoolDoc { instances: Some(*n), ..doc.clone() });
            if doc.role.is_some() {
                pool_doc.prefilled_requests = Some(merged.pd_handoffs);
            }
            self.per_pool.push(pool_doc);
        }
    }

    /// Adds one document per served model (fleets of several models). `models`: each model's
    /// name and the instances serving it.
    pub fn add_models(&mut self, report: &SimReport, models: &[(String, Vec<usize>)]) {
        let window = crate::steady::window_us(report);
        for (name, instances) in models {
            let mut merged = Metrics::default();
            for &i in instances {
                merged.merge_figures(&report.instances[i]);
            }
            let doc = metrics_doc(format!("model_{name}"), &merged, 0, 0, window);
            self.per_model.insert(name.clone(), doc);
        }
        self.unserved_model_rejections = Some(report.counters.unserved_model);
    }

    /// Whether the run is steady (its verdict is `stable`).
    pub fn is_steady(&self) -> bool {
        self.steady_state.verdict == SteadyVerdict::Stable
    }
}

/// Autoscaling figures: per node pool, its fleet changes (ticks, decisions, instances added
/// and removed, the timeline) and GPU-hours (every instance's GPUs from placement until it
/// left or the run ended), and the totals over pools.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutoscalingDoc {
    pub gpu_hours_total: f64,
    pub cost_total: f64,
    pub pools: Vec<crate::autoscale::AutoscaleReport>,
}

/// Disaggregation figures (the reference simulator's PD metrics, in ms like every latency
/// here). The TTFT of a disaggregated request is the sum of its three components.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PdDoc {
    /// Requests the decider split (routed to a prefill instance).
    pub disaggregated_requests: u64,
    /// Requests whose KV transfer completed (the reference's disaggregated count).
    pub disaggregated_count: u64,
    pub kv_transfers_started: u64,
    pub kv_transfers_completed: u64,
    /// KV bytes the started transfers move (every TP shard).
    pub kv_transfer_bytes: u64,
    pub transfer_duration_mean_ms: f64,
    pub transfer_duration_p50_ms: f64,
    pub transfer_duration_p95_ms: f64,
    pub transfer_duration_p99_ms: f64,
    /// Time transfers took beyond their time alone on the link (`--pd-transfer-contention`).
    pub transfer_queueing_mean_ms: f64,
    pub transfer_queueing_p99_ms: f64,
    pub peak_concurrent_transfers: u64,
    /// Transfers on the link at each start, the new one included, averaged over starts.
    pub mean_transfer_queue_depth: f64,
    /// TTFT components of completed disaggregated requests: arrival → prompt computed on the
    /// prefill instance; → KV on the decode instance; → first token from the decode instance.
    pub ttft_prefill_mean_ms: f64,
    pub ttft_prefill_p99_ms: f64,
    pub ttft_transfer_mean_ms: f64,
    pub ttft_transfer_p99_ms: f64,
    pub ttft_first_decode_mean_ms: f64,
    pub ttft_first_decode_p99_ms: f64,
    /// Mean TTFT of those requests (the sum of the three component means).
    pub parent_ttft_mean_ms: f64,
    /// Prompts handed over by prefill instances, and requests completed by decode-capable
    /// instances, per second of the run; the larger over the smaller (absent when one is 0).
    pub prefill_throughput: f64,
    pub decode_throughput: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_imbalance_ratio: Option<f64>,
}

impl PdDoc {
    fn new(pd: &crate::pd::PdReport, report: &SimReport) -> Self {
        let lat = &report.cluster.pd;
        let duration_s = report.cluster.end_us as f64 / 1e6;
        let per_s = |x: u64| if duration_s > 0.0 { x as f64 / duration_s } else { 0.0 };
        let decoded: u64 =
            report.instances.iter().zip(&pd.decodes).filter(|(_, d)| **d).map(|(m, _)| m.completed()).sum();
        let (prefill_throughput, decode_throughput) = (per_s(report.cluster.pd_handoffs), per_s(decoded));
        let (lo, hi) = if prefill_throughput < decode_throughput {
            (prefill_throughput, decode_throughput)
        } else {
            (decode_throughput, prefill_throughput)
        };
        let (d, q) = (pd.transfer_duration.summary(), pd.transfer_queueing.summary());
        let (p, t, f) = (lat.prefill.summary(), lat.transfer.summary(), lat.first_decode.summary());
        PdDoc {
            disaggregated_requests: pd.disaggregated,
            disaggregated_count: pd.transfers_completed,
            kv_transfers_started: pd.transfers_started,
            kv_transfers_completed: pd.transfers_completed,
            kv_transfer_bytes: pd.transfer_bytes,
            transfer_duration_mean_ms: ms(d.mean_us),
            transfer_duration_p50_ms: ms(d.p50_us),
            transfer_duration_p95_ms: ms(d.p95_us),
            transfer_duration_p99_ms: ms(d.p99_us),
            transfer_queueing_mean_ms: ms(q.mean_us),
            transfer_queueing_p99_ms: ms(q.p99_us),
            peak_concurrent_transfers: pd.peak_concurrent_transfers,
            mean_transfer_queue_depth: pd.mean_transfer_queue_depth(),
            ttft_prefill_mean_ms: ms(p.mean_us),
            ttft_prefill_p99_ms: ms(p.p99_us),
            ttft_transfer_mean_ms: ms(t.mean_us),
            ttft_transfer_p99_ms: ms(t.p99_us),
            ttft_first_decode_mean_ms: ms(f.mean_us),
            ttft_first_decode_p99_ms: ms(f.p99_us),
            parent_ttft_mean_ms: ms(p.mean_us + t.mean_us + f.mean_us),
            prefill_throughput,
            decode_throughput,
            load_imbalance_ratio: (lo > 0.0).then(|| hi / lo),
        }
    }
}

fn class_latencies(lat: &Latencies) -> ClassDoc {
    let (t, e, i) = (lat.ttft.summary(), lat.e2e.summary(), lat.itl.summary());
    ClassDoc {
        completed_requests: Some(lat.completed),
        ttft_mean_ms: Some(ms(t.mean_us)),
        ttft_p99_ms: Some(ms(t.p99_us)),
        e2e_mean_ms: Some(ms(e.mean_us)),
        e2e_p99_ms: Some(ms(e.p99_us)),
        itl_mean_ms: Some(ms(i.mean_us)),
        itl_p99_ms: Some(ms(i.p99_us)),
        ..ClassDoc::default()
    }
}

/// Goodput of every class with targets (added to `per_class`), and overall
/// (`goodput_rps`, `slo_attainment`), as the reference simulator computes them: a measured
/// completion is good when every gated dimension is within its target; attainment is good /
/// measured arrivals of the class; goodput is good / the run's duration.
fn goodput(
    report: &SimReport,
    per_class: &mut BTreeMap<&'static str, ClassDoc>,
) -> (Option<f64>, Option<f64>) {
    let m = &report.measurement;
    if !m.goodput_on() {
        return (None, None);
    }
    let duration_s = report.cluster.end_us as f64 / 1e6;
    let per_s = |x: u64| if duration_s > 0.0 { x as f64 / duration_s } else { 0.0 };
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (mut good, mut injected) = (0u64, 0u64);
    for (label, targets) in m.goodput.iter().enumerate() {
        let Some(t) = targets else { continue };
        let c: GoodCounts = report.cluster.good_by_label[label];
        let n = report.counters.injected_by_label[label];
        good += c.good;
        injected += n;
        let mut by_dim = BTreeMap::new();
        if t.ttft_us.is_some() {
            by_dim.insert("ttft", ratio(c.ttft_met, c.ttft_count));
        }
        if t.itl_us.is_some() {
            by_dim.insert("itl", ratio(c.itl_met, c.itl_count));
        }
        if t.e2e_us.is_some() {
            by_dim.insert("e2e", ratio(c.e2e_met, c.e2e_count));
        }
        let name = GOODPUT_LABELS[label];
        let entry = per_class.entry(name).or_insert_with(|| {
            // A class of its own, or the only class: its latencies are the run's.
            let class = blis_workload::SloClass::ALL.get(label).copied();
            let lat = match class {
                Some(cl) => report.cluster.by_class.get(&cl),
                None if report.cluster.by_class.len() <= 1 => Some(&report.cluster.all),
                None => None,
            };
            lat.map(class_latencies).unwrap_or_default()
        });
        entry.count = Some(n);
        entry.slo_attainment = Some(ratio(c.good, n));
        entry.goodput_rps = Some(per_s(c.good));
        entry.slo_attainment_by_dim = Some(by_dim);
    }
    (Some(per_s(good)), Some(ratio(good, injected)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_bounds() {
        assert_eq!(jain_index(&[5.0, 5.0, 5.0]), 1.0);
        assert!((jain_index(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain_index(&[0.0, 0.0]), 1.0);
    }
}
