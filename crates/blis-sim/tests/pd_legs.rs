//! The instance side of prefill/decode disaggregation: a prefill leg computes the prompt and
//! leaves as a hand-off; a decode leg is admitted with its prompt's KV present, computes only
//! the last prompt token (its first output token) and then decodes.

use blis_sim::EngineSemantics;
use blis_sim::instance::{Enqueued, Finished, Instance, Leg};
use blis_sim::pd::PdStamps;
use blis_workload::{Outcome, RequestSpec, TokenSeq};

mod common;

fn instance() -> Instance {
    common::instance(common::config(EngineSemantics::BLIS), common::latency("trained-physics"))
}

fn request(id: u64, input_tokens: u32, output_tokens: u32) -> RequestSpec {
    common::request(id, 0, TokenSeq::from_source(9, input_tokens), output_tokens)
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
