//! The CPU KV tier at the instance level: a prefix the GPU evicted is found in the CPU tier and
//! brought back instead of recomputed — after an asynchronous load the request waits for
//! (vLLM), or stalling the admitting step (the reference simulator).

use blis_sim::EngineSemantics;
use blis_sim::instance::{Enqueued, Finished, Instance, InstanceConfig, KvTierConfig, ReloadTiming};
use blis_workload::{RequestSpec, TokenSeq};

mod common;

use common::BLOCK;

const MIB2: u64 = 2 << 20;

fn instance(tier: Option<ReloadTiming>) -> Instance {
    let semantics = match tier {
        Some(ReloadTiming::StepStall) => EngineSemantics::REFERENCE,
        _ => EngineSemantics::BLIS,
    };
    let config = InstanceConfig {
        total_kv_blocks: 40,
        kv_tier: tier.map(|timing| KvTierConfig {
            cpu_blocks: 100,
            bytes_per_block: MIB2,
            bandwidth: match timing {
                ReloadTiming::Async => 32_000.0, // 32 GB/s
                ReloadTiming::StepStall => 100.0,
            },
            base_latency_us: 50,
            timing,
            prompt_only: false,
        }),
        ..common::config(semantics)
    };
    common::instance(config, common::latency("blis-physics"))
}

fn request(id: u64, arrival_us: u64, source: u64) -> RequestSpec {
    common::request(id, arrival_us, TokenSeq::from_source(source, 480), 2)
}

/// Serves three 30-block prompts one after the other on a 40-block GPU pool: A, then B (which
/// evicts most of A's cached blocks), then A's prompt again. Returns the instance, the last
/// request's record and the step durations while it was served.
fn a_b_a(tier: Option<ReloadTiming>) -> (Instance, blis_sim::metrics::RequestRecord, Vec<u64>) {
    let mut inst = instance(tier);
    let mut finished: Vec<Finished> = Vec::new();
    let mut now = 0;
    let mut steps = Vec::new();
    for (id, source) in [(1, 1), (2, 2), (3, 1)] {
        now += 1_000_000;
        assert!(matches!(
            inst.enqueue(now, request(id, now, source), false, &mut finished),
            Enqueued::Queued(_)
        ));
        steps.clear();
        while inst.has_work() {
            let d = inst.step(now, &mut finished);
            steps.push(d);
            now += d;
        }
    }
    let record = inst.metrics.records.last().cloned().expect("a record");
    (inst, record, steps)
}

#[test]
fn evicted_prefix_comes_back_from_the_cpu_tier_after_its_load() {
    let (gpu_only, base, _) = a_b_a(None);
    let (tiered, rec, steps) = a_b_a(Some(ReloadTiming::Async));
    // Without the tier only the blocks B left on the GPU are reused (A's earliest ones: a
    // request's later blocks are evicted first).
    let gpu_cached = base.cached_prompt_tokens;
    assert!(gpu_cached < 480 / 2, "{gpu_cached}");
    // With it every block but the one holding the last prompt token is reused.
    assert_eq!(rec.cached_prompt_tokens, (480 - 1) / BLOCK * BLOCK);
    let reloaded = (rec.cached_prompt_tokens - gpu_cached) / BLOCK;
    assert_eq!(tiered.kv().reload_blocks(), u64::from(reloaded));
    // The request waited for its load: base latency + bytes / bandwidth.
    let load_us = 50 + (u64::from(reloaded) * MIB2).div_ceil(32_000);
    assert!(rec.ttft_ms.unwrap() * 1000.0 >= load_us as f64, "{rec:?}");
    // ... while the instance idled in 1 µs steps (nothing else to run); no step was stalled.
    assert!(steps.iter().filter(|&&d| d == 1).count() as u64 >= load_us - 1);
    // Fewer prompt tokens computed, a faster first token.
    assert!(tiered.metrics.prompt_tokens_computed < gpu_only.metrics.prompt_tokens_computed);
    assert!(rec.ttft_ms < base.ttft_ms, "{:?} vs {:?}", rec.ttft_ms, base.ttft_ms);
    tiered.kv().check_invariants().unwrap();
}

#[test]
fn reference_timing_stalls_the_admitting_step() {
    let (_, base, base_steps) = a_b_a(None);
    let (tiered, rec, steps) = a_b_a(Some(ReloadTiming::StepStall));
    // Reference semantics: every full block may come from a cache.
    assert_eq!(rec.cached_prompt_tokens, 480);
    let reloaded = tiered.kv().reload_blocks();
    assert!(reloaded > 0);
    // The admitting step (the first) carries base + ceil(16 / 100) µs per reloaded block; the
    // request never waits outside a step.
    assert!(steps[0] >= reloaded * (50 + 1), "{steps:?}");
    assert!(base_steps[0] > 1);
    assert!(rec.scheduling_delay_ms.unwrap() <= base.scheduling_delay_ms.unwrap());
}
