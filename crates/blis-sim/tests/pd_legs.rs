//! The instance side of prefill/decode disaggregation: a prefill leg computes the prompt and
//! leaves as a hand-off; a decode leg is admitted with its prompt's KV present, computes only
//! the last prompt token (its first output token) and then decodes.

use std::sync::Arc;

use blis_latency::{LatencyModel, LatencyOverrides};
use blis_sim::EngineSemantics;
use blis_sim::instance::{Enqueued, Finished, Instance, InstanceConfig, Leg};
use blis_sim::pd::PdStamps;
use blis_sim::preemption::PreemptionKind;
use blis_sim::priority::{PriorityKind, SloPriorities};
use blis_sim::scheduler::SchedulerKind;
use blis_workload::{Outcome, RequestSpec, SloClass, TokenSeq};

const BLOCK: u32 = 16;

fn instance() -> Instance {
    let model =
        blis_model::load_model("meta-llama/llama-3.1-8b-instruct", None, &blis_model::HubOptions::default())
            .expect("bundled model");
    let gpu = blis_model::gpu_by_name("H100", &[]).expect("builtin gpu");
    let latency: Arc<dyn LatencyModel> = Arc::from(
        blis_latency::build("trained-physics", &model, &gpu, 1, &LatencyOverrides::default()).unwrap(),
    );
    let config = InstanceConfig {
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
        semantics: EngineSemantics::BLIS,
        kv_tier: None,
    };
    Instance::new(0, config, latency, SchedulerKind::Fcfs.build(), PreemptionKind::Fcfs.build(), true)
}

fn request(id: u64, input_tokens: u32, output_tokens: u32) -> RequestSpec {
    RequestSpec {
        id,
        arrival_us: 0,
        input: TokenSeq::from_source(9, input_tokens),
        output_tokens,
        max_output_tokens: output_tokens,
        output_source: 1_000 + id,
        slo_class: SloClass::Standard,
        slo_class_named: false,
        tenant: None,
        client: None,
        deadline_us: None,
        session: None,
        model: None,
        prefix_group: None,
        meta: None,
    }
}

/// Enqueues one leg at `now` and steps until idle; returns what left and the step count.
fn serve(inst: &mut Instance, now: u64, r: RequestSpec, leg: Leg) -> (Vec<Finished>, usize, u64) {
    let mut finished = Vec::new();
    assert!(matches!(inst.enqueue_leg(now, r, false, None, leg, &mut finished), Enqueued::Queued(_)));
    let (mut now, mut steps) = (now, 0);
    while inst.has_work() {
        now += inst.step(now, &mut finished);
        steps += 1;
    }
    (finished, steps, now)
}

#[test]
fn a_prefill_leg_hands_off_once_its_prompt_is_computed() {
    let mut inst = instance();
    let (finished, steps, end) = serve(&mut inst, 0, request(1, 1000, 50), Leg::Prefill);
    assert_eq!(steps, 1, "the prompt fits one step; no decode follows");
    assert_eq!(finished.len(), 1);
    assert!(finished[0].handoff);
    assert_eq!(finished[0].outcome, Outcome::Completed);
    assert_eq!(finished[0].at_us, end);
    assert_eq!(inst.metrics.prompt_tokens_computed, 1000);
    assert_eq!(inst.metrics.completed(), 0, "the request is not finished here");
    assert_eq!(inst.metrics.pd_handoffs, 1);
    assert_eq!(inst.kv().used_blocks(), 0, "its blocks are released (kept only as cache)");
    assert_eq!(inst.metrics.total_input_tokens, 1000);
}

#[test]
fn a_decode_leg_starts_with_the_prompt_kv_present() {
    let mut inst = instance();
    let stamps = PdStamps { prefill_done_us: 40_000, transfer_done_us: 60_000 };
    let (finished, steps, _) = serve(&mut inst, 60_000, request(2, 1000, 50), Leg::Decode(stamps));
    assert_eq!(finished.len(), 1);
    assert!(!finished[0].handoff);
    // One step for the last prompt token (the first output token), 49 more decode steps.
    assert_eq!(steps, 50);
    assert_eq!(inst.metrics.prompt_tokens_computed, 1, "no recompute of the transferred prompt");
    assert_eq!(inst.metrics.total_input_tokens, 0, "counted on the prefill side");
    assert_eq!(inst.metrics.completed(), 1);
    assert_eq!(inst.metrics.all.output_tokens, 50);
    // The TTFT components add up to the TTFT.
    let pd = &inst.metrics.pd;
    let (p, t, f) = (pd.prefill.summary(), pd.transfer.summary(), pd.first_decode.summary());
    assert_eq!(p.mean_us, 40_000.0);
    assert_eq!(t.mean_us, 20_000.0);
    let ttft = inst.metrics.all.ttft.summary().mean_us;
    assert_eq!(p.mean_us + t.mean_us + f.mean_us, ttft);
    assert!(f.mean_us > 0.0);
    assert_eq!(inst.kv().used_blocks(), 0);
    assert!(inst.kv().check_invariants().is_ok());
}
