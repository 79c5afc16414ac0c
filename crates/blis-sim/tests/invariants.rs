//! Property tests of the simulator's invariants over random small configurations:
//! request conservation, causality, KV blocks never leaking, determinism, and prefix caching
//! saving prefill work.

use blis_latency::LatencyOverrides;
use blis_sim::cluster::admission::AdmissionConfig;
use blis_sim::cluster::routing::RoutingConfig;
use blis_sim::report::RunDoc;
use blis_sim::scenario::Scenario;
use blis_sim::{InstanceConfig, SimReport};
use blis_workload::{LenParams, Overrides, SyntheticParams};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    instances: usize,
    kv_blocks: u32,
    max_running: u32,
    budget: u32,
    threshold: u32,
    rate: f64,
    requests: u64,
    prompt_mean: f64,
    output_mean: f64,
    prefix_tokens: u32,
    scheduler: &'static str,
    preemption: &'static str,
    horizon_us: Option<u64>,
    seed: u64,
    /// vLLM V1 async scheduling on or off (drawn from the seed's low bit).
    async_scheduling: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..4, 40u32..400, 1u32..16, 32u32..600, prop_oneof![Just(0u32), 16u32..200]),
        (1.0f64..200.0, 1u64..60, 8.0f64..300.0, 1.0f64..120.0, prop_oneof![Just(0u32), 8u32..100]),
        (
            prop_oneof![Just("fcfs"), Just("priority-fcfs"), Just("sjf"), Just("reverse-priority")],
            prop_oneof![Just("fcfs"), Just("priority")],
            prop_oneof![Just(None), (50_000u64..3_000_000).prop_map(Some)],
            any::<u64>(),
        ),
    )
        .prop_map(|((instances, kv_blocks, max_running, budget, threshold), w, p)| Case {
            instances,
            kv_blocks,
            max_running,
            budget,
            threshold,
            rate: w.0,
            requests: w.1,
            prompt_mean: w.2,
            output_mean: w.3,
            prefix_tokens: w.4,
            scheduler: p.0,
            preemption: p.1,
            horizon_us: p.2,
            seed: p.3,
            async_scheduling: p.3 & 1 == 1,
        })
}

fn scenario(c: &Case, prefix_caching: bool) -> Scenario {
    let model =
        blis_model::load_model("meta-llama/llama-3.1-8b-instruct", None, &blis_model::HubOptions::from_env())
            .unwrap();
    let gpu = blis_model::gpu_by_name("H100", &[]).unwrap();
    Scenario {
        model,
        gpu,
        tp: 1,
        latency_model: "trained-physics".into(),
        latency_overrides: LatencyOverrides::default(),
        instance: InstanceConfig {
            max_running_reqs: c.max_running,
            max_scheduled_tokens: c.budget,
            long_prefill_token_threshold: c.threshold,
            max_model_len: 0,
            block_size_tokens: 16,
            total_kv_blocks: c.kv_blocks,
            prefix_caching,
            async_scheduling: c.async_scheduling,
            slo_priorities: true,
            record_requests: true,
            track_classes: true,
            semantics: blis_sim::EngineSemantics::BLIS,
        },
        num_instances: c.instances,
        scheduler: c.scheduler.into(),
        preemption_policy: c.preemption.into(),
        admission_policy: "always-admit".into(),
        admission: AdmissionConfig::default(),
        routing_policy: "round-robin".into(),
        routing: RoutingConfig { scorers: Vec::new(), block_size_tokens: 16 },
        admission_latency_us: 0,
        routing_latency_us: 0,
        snapshot_refresh_interval_us: 0,
        cache_signal_delay_us: 0,
        trace_decisions: false,
        counterfactual_k: 0,
        horizon_us: c.horizon_us.unwrap_or(u64::MAX),
        seed: c.seed,
    }
}

fn source(c: &Case) -> Box<dyn blis_workload::RequestSource + Send> {
    let params = SyntheticParams {
        rate: c.rate,
        num_requests: c.requests,
        prompt: Some(LenParams::new(c.prompt_mean, c.prompt_mean / 2.0, 1, 600)),
        output: Some(LenParams::new(c.output_mean, c.output_mean / 2.0, 1, 300)),
        prefix_tokens: c.prefix_tokens,
        constant_arrivals: false,
        seed: c.seed,
        timeout_us: None,
    };
    let spec = blis_workload::preset_spec("distribution", &params).unwrap();
    let overrides = Overrides { seed: Some(c.seed), ..Overrides::default() };
    blis_workload::build_source(&spec, &overrides).unwrap()
}

fn run(c: &Case, prefix_caching: bool) -> SimReport {
    scenario(c, prefix_caching).build(source(c), None).unwrap().run(|_| {}).unwrap()
}

#[test]
fn instances_run_independently_only_when_nothing_couples_them() {
    let c = Case {
        instances: 3,
        kv_blocks: 200,
        max_running: 8,
        budget: 256,
        threshold: 0,
        rate: 50.0,
        requests: 20,
        prompt_mean: 100.0,
        output_mean: 20.0,
        prefix_tokens: 0,
        scheduler: "fcfs",
        preemption: "fcfs",
        horizon_us: None,
        seed: 7,
        async_scheduling: true,
    };
    let independent = |f: &dyn Fn(&mut Scenario)| {
        let mut s = scenario(&c, true);
        f(&mut s);
        s.build(source(&c), None).unwrap().instances_independent()
    };
    assert!(independent(&|_| {}));
    assert!(independent(&|s| s.admission_policy = "token-bucket".into()));
    assert!(!independent(&|s| s.routing_policy = "least-loaded".into()));
    assert!(!independent(&|s| s.admission_policy = "tier-shed".into()));
    assert!(!independent(&|s| s.trace_decisions = true));
    assert!(!independent(&|s| s.num_instances = 1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conservation_causality_kv_and_determinism(c in case()) {
        let report = run(&c, true);
        let m = &report.cluster;
        let k = &report.counters;
        // Conservation: every request that arrived is in exactly one bucket.
        prop_assert_eq!(
            k.injected,
            m.completed() + m.still_queued + m.still_running + m.dropped_unservable + m.timed_out
                + k.rejected + k.in_transit
        );
        if c.horizon_us.is_none() {
            prop_assert_eq!(k.injected, c.requests);
            prop_assert_eq!(m.still_queued + m.still_running + k.in_transit, 0);
            // Drained: no block is still held anywhere.
            prop_assert_eq!(m.kv_used_blocks_at_end, 0);
        }
        prop_assert!(m.kv_check.is_none(), "{:?}", m.kv_check);
        // Causality per request: arrival ≤ first token ≤ completion, ITL ≥ 0.
        for r in &m.records {
            if let Some(ttft) = r.ttft_ms {
                prop_assert!(ttft >= 0.0);
                if let Some(e2e) = r.e2e_ms {
                    prop_assert!(e2e >= ttft, "request {}: e2e {} < ttft {}", r.request_id, e2e, ttft);
                }
            }
            prop_assert!(r.itl_ms >= 0.0);
        }
        // Determinism: same configuration, identical document.
        let again = run(&c, true);
        let a = serde_json::to_string(&RunDoc::from_report(&report)).unwrap();
        let b = serde_json::to_string(&RunDoc::from_report(&again)).unwrap();
        prop_assert_eq!(&a, &b);
        // The lockstep decode path equals the exact per-request step, records included.
        blis_sim::instance::force_exact_steps(true);
        let exact = run(&c, true);
        blis_sim::instance::force_exact_steps(false);
        let e = serde_json::to_string(&RunDoc::from_report(&exact)).unwrap();
        prop_assert_eq!(&a, &e);
        let records = |r: &SimReport| serde_json::to_string(&r.cluster.records).unwrap();
        prop_assert_eq!(records(&report), records(&exact));
        // Round-robin never reads instance state and the source is open-loop, so the engine
        // runs instances independently, in bursts; that equals the one interleaved schedule.
        blis_sim::engine::force_coupled_instances(true);
        let coupled = run(&c, true);
        blis_sim::engine::force_coupled_instances(false);
        prop_assert_eq!(&a, &serde_json::to_string(&RunDoc::from_report(&coupled)).unwrap());
        prop_assert_eq!(records(&report), records(&coupled));
    }

    #[test]
    fn prefix_caching_saves_prefill_work(mut c in case()) {
        c.prefix_tokens = 64;
        c.horizon_us = None;
        c.kv_blocks = c.kv_blocks.max(200);
        c.requests = c.requests.max(5);
        let with = run(&c, true);
        let without = run(&c, false);
        prop_assert_eq!(with.cluster.completed(), without.cluster.completed());
        prop_assert!(
            with.cluster.prompt_tokens_computed < without.cluster.prompt_tokens_computed,
            "with caching {} vs without {}",
            with.cluster.prompt_tokens_computed,
            without.cluster.prompt_tokens_computed
        );
    }
}
