//! The engine behaviours `EngineSemantics` switches between BLIS (vLLM) and the reference
//! simulator: a wholly cached prompt's last token, when a closed-loop client sees a request
//! end, and how the admitting step costs a prompt's first chunk.

use std::sync::Arc;

use blis_latency::{LatencyModel, PrefillChunk, StepShape};
use blis_sim::EngineSemantics;
use blis_sim::instance::{Enqueued, Finished, Instance};
use blis_workload::{Outcome, RequestSpec, Segment, TokenSeq};

mod common;

use common::{BLOCK, latency, request};

fn instance(latency: Arc<dyn LatencyModel>, semantics: EngineSemantics) -> Instance {
    common::instance(common::config(semantics), latency)
}

/// Enqueues `r` at its arrival and steps until the instance is idle; returns the finished
/// requests, the start time of every step and the time the instance went idle.
fn serve(inst: &mut Instance, r: RequestSpec) -> (Vec<Finished>, Vec<(u64, u64)>, u64) {
    let mut finished = Vec::new();
    let mut now = r.arrival_us;
    assert!(matches!(inst.enqueue(now, r, false, &mut finished), Enqueued::Queued(_)));
    let mut steps = Vec::new();
    while inst.has_work() {
        let d = inst.step(now, &mut finished);
        steps.push((now, d));
        now += d;
    }
    (finished, steps, now)
}

#[test]
fn wholly_cached_prompt_computes_its_last_token_only_under_blis() {
    let prompt = TokenSeq::from_source(7, 2 * BLOCK); // exactly two blocks
    for (semantics, computed) in [(EngineSemantics::BLIS, u64::from(BLOCK)), (EngineSemantics::REFERENCE, 0)]
    {
        let lat = latency("trained-physics");
        let otpt = lat.output_token_processing_time_us();
        let mut inst = instance(lat, semantics);
        serve(&mut inst, request(0, 0, prompt.clone(), 3));
        let before = inst.metrics.prompt_tokens_computed;
        let (finished, steps, _) = serve(&mut inst, request(1, 10_000_000, prompt.clone(), 3));
        assert_eq!(finished.len(), 1);
        assert_eq!(inst.metrics.prompt_tokens_computed - before, computed, "{semantics:?}");
        let rec = inst.metrics.records.last().unwrap();
        assert_eq!(rec.cached_prompt_tokens, 2 * BLOCK - computed as u32);
        // The first token comes at the end of the admitting step; under the reference that
        // step computes nothing and lasts 1 µs.
        let ttft_us = (rec.ttft_ms.unwrap() * 1000.0).round() as u64;
        assert_eq!(ttft_us, steps[0].1 + otpt);
        if computed == 0 {
            assert_eq!(steps[0].1, 1);
        }
        // Three output tokens: the admitting step plus two decode steps either way.
        assert_eq!(steps.len(), 3);
    }
}

#[test]
fn follow_ups_start_from_the_last_step_under_the_reference() {
    let lat = latency("trained-physics");
    let (otpt, post) = (lat.output_token_processing_time_us(), lat.post_decode_overhead_us());
    assert!(otpt > 0 && post > 0);
    let prompt = TokenSeq::from_source(9, 100);
    let mut at = Vec::new();
    for semantics in [EngineSemantics::BLIS, EngineSemantics::REFERENCE] {
        let mut inst = instance(lat.clone(), semantics);
        let (finished, _, idle_at) = serve(&mut inst, request(0, 5_000, prompt.clone(), 4));
        assert_eq!(finished[0].outcome, Outcome::Completed);
        if semantics == EngineSemantics::REFERENCE {
            assert_eq!(finished[0].at_us, idle_at, "end of the last step");
        } else {
            // The client sees the end after every token's output processing and the post-decode
            // overhead: arrival + E2E.
            let e2e_us = (inst.metrics.records[0].e2e_ms.unwrap() * 1000.0).round() as u64;
            assert_eq!(finished[0].at_us, 5_000 + e2e_us);
        }
        at.push(finished[0].at_us);
    }
    assert_eq!(at[0] - at[1], 4 * otpt + post);
}

#[test]
fn admitting_step_costs_the_first_chunk_from_token_zero_under_the_reference() {
    let cached = TokenSeq::from_source(11, 2 * BLOCK);
    let mut longer = cached.clone();
    longer.push(Segment { source: 12, start: 0, len: 100 });
    let lat = latency("roofline");
    let chunk = |context_tokens| StepShape {
        prefills: vec![PrefillChunk { new_tokens: 100, context_tokens, input_tokens: 132 }],
        ..StepShape::default()
    };
    let (after_prefix, from_zero) = (lat.step_time_us(&chunk(32)), lat.step_time_us(&chunk(0)));
    assert!(after_prefix > from_zero);
    for (semantics, expect) in
        [(EngineSemantics::BLIS, after_prefix), (EngineSemantics::REFERENCE, from_zero)]
    {
        let mut inst = instance(lat.clone(), semantics);
        serve(&mut inst, request(0, 0, cached.clone(), 2));
        let (_, steps, _) = serve(&mut inst, request(1, 1_000_000, longer.clone(), 2));
        assert_eq!(steps[0].1, expect, "{semantics:?}");
    }
}

#[test]
fn default_is_blis() {
    assert_eq!(EngineSemantics::default(), EngineSemantics::BLIS);
    assert_ne!(EngineSemantics::BLIS, EngineSemantics::REFERENCE);
}
