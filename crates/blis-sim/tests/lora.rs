//! LoRA adapters on one instance: whatever the request mix, the resident set stays within its
//! capacity, every request completes, and a run is a function of its inputs.

use std::sync::Arc;

use blis_sim::EngineSemantics;
use blis_sim::instance::{Enqueued, Finished, Instance, InstanceConfig};
use blis_sim::lora::{LoraAdapter, LoraConfig, LoraLoading};
use blis_workload::{Outcome, TokenSeq};
use proptest::prelude::*;

mod common;

fn lora(capacity: u32, loading: LoraLoading) -> Arc<LoraConfig> {
    Arc::new(LoraConfig {
        adapters: (0..5).map(|i| LoraAdapter { name: format!("a{i}").into(), rank: 8 << (i % 3) }).collect(),
        capacity,
        load_base_latency_us: 2_000.0,
        load_bandwidth_bytes_per_us: 2.0e6,
        footprint_bytes_per_rank: 2.0e6,
        step_overhead_tiers: vec![(8, 0.02), (32, 0.06)],
        loading,
    })
}

/// Runs `requests` (arrival µs, adapter, prompt tokens, output tokens) to completion; returns
/// the finished requests and the instance. Checks the capacity after every step.
fn run(
    requests: &[(u64, Option<u8>, u32, u32)],
    capacity: u32,
    loading: LoraLoading,
) -> (Vec<Finished>, Instance) {
    let semantics = match loading {
        LoraLoading::StepStall => EngineSemantics::BLIS,
        LoraLoading::HeadOfLine => EngineSemantics::REFERENCE,
    };
    let config = InstanceConfig {
        max_running_reqs: 8,
        total_kv_blocks: 400,
        lora: Some(lora(capacity, loading)),
        ..common::config(semantics)
    };
    let mut inst = common::instance(config, common::latency("blis-physics"));
    let mut finished = Vec::new();
    let mut next = 0;
    let mut now = 0;
    loop {
        while next < requests.len() && requests[next].0 <= now {
            let (_, adapter, input, output) = requests[next];
            let mut spec =
                common::request(next as u64, now, TokenSeq::from_source(next as u64, input), output);
            spec.adapter = adapter.map(|a| Arc::from(format!("a{a}").as_str()));
            assert!(matches!(inst.enqueue(now, spec, false, &mut finished), Enqueued::Queued(_)));
            next += 1;
        }
        if inst.has_work() {
            if let Some(t) = inst.lora_load_pending_until(now) {
                now = t;
                continue;
            }
            now += inst.step(now, &mut finished);
            assert!(inst.lora_resident_set().count() as u32 <= capacity, "resident set over capacity");
        } else if next < requests.len() {
            now = requests[next].0;
        } else {
            break;
        }
    }
    inst.finalize(u64::MAX);
    (finished, inst)
}

fn requests() -> impl Strategy<Value = Vec<(u64, Option<u8>, u32, u32)>> {
    prop::collection::vec((0u64..200_000, prop::option::weighted(0.8, 0u8..5), 1u32..600, 1u32..40), 1..40)
        .prop_map(|mut v| {
            v.sort_by_key(|r| r.0);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn capacity_holds_and_every_request_completes(
        reqs in requests(),
        capacity in 1u32..4,
        reference in any::<bool>(),
    ) {
        let loading = if reference { LoraLoading::HeadOfLine } else { LoraLoading::StepStall };
        let (finished, inst) = run(&reqs, capacity, loading);
        prop_assert_eq!(finished.len(), reqs.len());
        prop_assert!(finished.iter().all(|f| f.outcome == Outcome::Completed));
        prop_assert_eq!(inst.metrics.completed(), reqs.len() as u64);
        let totals = inst.metrics.lora.as_ref().expect("LoRA metrics");
        prop_assert!(totals.peak_resident <= capacity);
        // Adapter requests partition the completed ones.
        let with_adapter = reqs.iter().filter(|r| r.1.is_some()).count() as u64;
        prop_assert_eq!(totals.adapters.iter().map(|a| a.completed).sum::<u64>(), with_adapter);
        // Every adapter used was loaded at least once; evictions never outnumber loads.
        for (i, a) in totals.adapters.iter().enumerate() {
            let used = reqs.iter().any(|r| r.1 == Some(i as u8));
            prop_assert_eq!(used, a.loads > 0);
            prop_assert!(a.evictions <= a.loads);
        }
        // Same inputs, same run.
        let (again, _) = run(&reqs, capacity, loading);
        let key = |f: &Vec<Finished>| f.iter().map(|x| (x.spec.id, x.at_us)).collect::<Vec<_>>();
        prop_assert_eq!(key(&finished), key(&again));
    }
}
