//! Helpers shared by the instance-level tests: a bundled model's step-time model, a small
//! instance, a plain request.
// Each test crate uses a subset of these.
#![allow(dead_code)]

use std::sync::Arc;

use blis_latency::{LatencyModel, LatencyOverrides};
use blis_sim::EngineSemantics;
use blis_sim::instance::{Instance, InstanceConfig};
use blis_sim::preemption::PreemptionKind;
use blis_sim::priority::{PriorityKind, SloPriorities};
use blis_sim::scheduler::SchedulerKind;
use blis_workload::{RequestSpec, SloClass, TokenSeq};

pub const BLOCK: u32 = 16;

/// Step-time model `name` for Llama-3.1-8B on one H100.
pub fn latency(name: &str) -> Arc<dyn LatencyModel> {
    let model =
        blis_model::load_model("meta-llama/llama-3.1-8b-instruct", None, &blis_model::HubOptions::default())
            .expect("bundled model");
    let gpu = blis_model::gpu_by_name("H100", &[]).expect("builtin gpu");
    Arc::from(blis_latency::build(name, &model, &gpu, 1, &LatencyOverrides::default()).unwrap())
}

/// 16 sequences, 2048 batched tokens, 1000 blocks of [`BLOCK`] tokens, prefix caching on,
/// synchronous scheduling, records kept.
pub fn config(semantics: EngineSemantics) -> InstanceConfig {
    InstanceConfig {
        max_running_reqs: 16,
        max_scheduled_tokens: 2048,
        long_prefill_token_threshold: 0,
        max_model_len: 0,
        block_size_tokens: BLOCK,
        total_kv_blocks: 1_000,
        prefix_caching: true,
        async_scheduling: false,
        priority: PriorityKind::SloBased,
        slo_priorities: SloPriorities::GAIE,
        record_requests: true,
        track_classes: false,
        exact_percentiles: false,
        semantics,
        kv_tier: None,
        lora: None,
    }
}

/// Instance 0 with FCFS scheduling and preemption.
pub fn instance(config: InstanceConfig, latency: Arc<dyn LatencyModel>) -> Instance {
    Instance::new(0, config, latency, SchedulerKind::Fcfs.build(), PreemptionKind::Fcfs.build(), true)
}

/// A standard-class request with no tenant, client, deadline, session or model.
pub fn request(id: u64, arrival_us: u64, input: TokenSeq, output_tokens: u32) -> RequestSpec {
    RequestSpec {
        id,
        arrival_us,
        input,
        output_tokens,
        max_output_tokens: output_tokens,
        output_source: 1_000 + id,
        slo_class: SloClass::Standard,
        slo_class_named: false,
        tenant: None,
        client: None,
        deadline_us: None,
        slo_target_us: None,
        session: None,
        model: None,
        adapter: None,
        prefix_group: None,
        meta: None,
    }
}
