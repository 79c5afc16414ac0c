//! Property tests of the simulator's invariants over random small configurations, built through
//! the one assembly path every entry point uses (`RunSpec` → `RunConfig`), over every scheduler,
//! preemption, priority, admission and routing policy and cluster size: request conservation,
//! causality, KV blocks never leaking (all checked by the engine itself at the end of every
//! run, and again here), determinism, the fast paths equal to the plain ones, and prefix caching
//! saving prefill work.

use blis_config::{Catalog, RunConfig, RunSpec, ScorerList};
use blis_latency::LatencyModelKind;
use blis_sim::cluster::admission::AdmissionKind;
use blis_sim::cluster::flow::{DispatchOrder, FairnessPolicy, SaturationDetectorKind};
use blis_sim::cluster::routing::RoutingKind;
use blis_sim::preemption::PreemptionKind;
use blis_sim::priority::PriorityKind;
use blis_sim::scheduler::SchedulerKind;
use blis_sim::{PdDeciderKind, SimReport};
use clap::ValueEnum;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Case {
    instances: u32,
    kv_blocks: u64,
    max_running: u32,
    budget: u32,
    threshold: u32,
    rate: f64,
    requests: u64,
    prompt_mean: f64,
    output_mean: f64,
    prefix_tokens: u32,
    scheduler: SchedulerKind,
    preemption: PreemptionKind,
    priority: PriorityKind,
    admission: AdmissionKind,
    routing: RoutingKind,
    scorers: Option<&'static str>,
    horizon_us: Option<u64>,
    seed: u64,
    /// vLLM V1 async scheduling on or off (drawn from the seed's low bit).
    async_scheduling: bool,
    /// Two pools (H100, and A100-80 with half the KV blocks and batch) instead of one
    /// (drawn from the seed's second bit; only with two or more instances).
    pools: bool,
    /// CPU KV tier blocks per instance (0 = off).
    kv_cpu_blocks: u64,
    /// Prefill/decode disaggregation: half the instances prefill, the rest decode, with this
    /// decider and link contention or not (drawn from the seed's higher bits; only with two or
    /// more instances and one pool).
    pd: Option<(PdDeciderKind, bool)>,
}

fn one_of<T: ValueEnum + Clone + std::fmt::Debug + 'static>() -> impl Strategy<Value = T> {
    prop::sample::select(T::value_variants().to_vec())
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1u32..5, 40u64..400, 1u32..16, 32u32..600, prop_oneof![Just(0u32), 16u32..200]),
        (1.0f64..200.0, 1u64..60, 8.0f64..300.0, 1.0f64..120.0, prop_oneof![Just(0u32), 8u32..100]),
        (one_of::<SchedulerKind>(), one_of::<PreemptionKind>(), one_of::<PriorityKind>()),
        (
            prop_oneof![4 => Just(AdmissionKind::AlwaysAdmit), 1 => one_of::<AdmissionKind>()],
            one_of::<RoutingKind>(),
            prop_oneof![
                Just(None),
                Just(Some("prefix-affinity:2,load-balance:1")),
                Just(Some("no-hit-lru:1,active-requests:1,running-requests:1")),
                Just(Some("load-aware:1,vllm-dp:2,kv-utilization:1"))
            ],
        ),
        (
            prop_oneof![Just(None), (50_000u64..3_000_000).prop_map(Some)],
            any::<u64>(),
            prop_oneof![2 => Just(0u64), 1 => 1u64..600],
        ),
    )
        .prop_map(|(e, w, p, c, r)| Case {
            instances: e.0,
            kv_blocks: e.1,
            max_running: e.2,
            budget: e.3,
            threshold: e.4,
            rate: w.0,
            requests: w.1,
            prompt_mean: w.2,
            output_mean: w.3,
            prefix_tokens: w.4,
            scheduler: p.0,
            preemption: p.1,
            priority: p.2,
            admission: c.0,
            routing: c.1,
            scorers: c.2,
            horizon_us: r.0,
            seed: r.1,
            async_scheduling: r.1 & 1 == 1,
            pools: e.0 >= 2 && r.1 & 2 == 2,
            kv_cpu_blocks: r.2,
            pd: (e.0 >= 2 && r.1 & 2 == 0 && r.1 & 16 == 16).then(|| {
                let decider = [PdDeciderKind::Always, PdDeciderKind::PrefixThreshold, PdDeciderKind::Never]
                    [(r.1 >> 5) as usize % 3];
                (decider, r.1 & 128 == 128)
            }),
        })
}

fn spec(c: &Case, prefix_caching: bool) -> RunSpec {
    let mut spec = flat_spec(c, prefix_caching);
    if c.pools {
        let fast = c.instances / 2;
        let pools = format!(
            "[{{name: fast, hardware: H100, instances: {fast}}}, {{name: slow, hardware: A100-80, instances: {}, \
             total-kv-blocks: {}, max-num-seqs: {}}}]",
            c.instances - fast,
            (c.kv_blocks / 2).max(1),
            (c.max_running / 2).max(1)
        );
        spec.pools = serde_saphyr::from_str::<RunSpec>(&format!("pools: {pools}")).unwrap().pools;
        spec.num_instances = None;
    }
    if let Some((decider, contention)) = c.pd {
        spec.prefill_instances = Some(c.instances / 2);
        spec.decode_instances = Some(c.instances - c.instances / 2);
        spec.pd_decider = Some(decider);
        spec.pd_prefix_threshold = Some(32);
        // A slow link, so that transfers overlap and matter.
        spec.pd_transfer_bandwidth = Some(0.5);
        spec.pd_transfer_contention = Some(contention);
    }
    spec
}

fn flat_spec(c: &Case, prefix_caching: bool) -> RunSpec {
    RunSpec {
        model: Some("meta-llama/llama-3.1-8b-instruct".into()),
        hardware: Some("H100".into()),
        tp: Some(1),
        latency_model: Some(LatencyModelKind::TrainedPhysics),
        max_num_seqs: Some(c.max_running),
        max_num_batched_tokens: Some(c.budget),
        long_prefill_token_threshold: Some(c.threshold),
        total_kv_blocks: Some(c.kv_blocks),
        no_prefix_caching: Some(!prefix_caching),
        kv_cpu_blocks: Some(c.kv_cpu_blocks),
        async_scheduling: Some(c.async_scheduling),
        scheduler: Some(c.scheduler),
        preemption_policy: Some(c.preemption),
        priority_policy: Some(c.priority),
        num_instances: Some(c.instances),
        admission_policy: Some(c.admission),
        token_bucket_capacity: Some(3_000.0),
        token_bucket_refill_rate: Some(20_000.0),
        routing_policy: Some(c.routing),
        routing_scorers: c.scorers.map(|s| s.parse::<ScorerList>().unwrap()),
        snapshot_refresh_interval: Some(blis_config::duration::Micros(0)),
        cache_signal_delay: Some(blis_config::duration::Micros(0)),
        rate: Some(c.rate),
        num_requests: Some(c.requests),
        prompt_tokens: Some(c.prompt_mean),
        prompt_tokens_stdev: Some(c.prompt_mean / 2.0),
        prompt_tokens_min: Some(1),
        prompt_tokens_max: Some(600),
        output_tokens: Some(c.output_mean),
        output_tokens_stdev: Some(c.output_mean / 2.0),
        output_tokens_min: Some(1),
        output_tokens_max: Some(300),
        prefix_tokens: Some(c.prefix_tokens),
        timeout: Some(blis_config::duration::Seconds(-1.0)),
        horizon: c.horizon_us.map(blis_config::duration::Micros),
        seed: Some(c.seed),
        ..RunSpec::default()
    }
}

fn config(spec: &RunSpec) -> RunConfig {
    let mut config = blis_config::config_from_spec(spec, &Catalog::default()).unwrap();
    for pool in &mut config.sim.pools {
        pool.instance.record_requests = true;
    }
    config
}

fn run(c: &Case, prefix_caching: bool) -> (String, SimReport) {
    run_spec(&spec(c, prefix_caching))
}

fn run_spec(spec: &RunSpec) -> (String, SimReport) {
    let outcome = config(spec).simulate().unwrap();
    (serde_json::to_string(&outcome.doc).unwrap(), outcome.report)
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
        scheduler: SchedulerKind::Fcfs,
        preemption: PreemptionKind::Fcfs,
        priority: PriorityKind::SloBased,
        admission: AdmissionKind::AlwaysAdmit,
        routing: RoutingKind::RoundRobin,
        scorers: None,
        horizon_us: None,
        seed: 7,
        async_scheduling: true,
        pools: false,
        kv_cpu_blocks: 0,
        pd: None,
    };
    let independent = |f: &dyn Fn(&mut RunSpec)| {
        let mut s = spec(&c, true);
        f(&mut s);
        config(&s).build(None, false).unwrap().0.instances_independent()
    };
    assert!(independent(&|_| {}));
    assert!(independent(&|s| s.admission_policy = Some(AdmissionKind::TokenBucket)));
    assert!(!independent(&|s| s.routing_policy = Some(RoutingKind::LeastLoaded)));
    assert!(!independent(&|s| s.admission_policy = Some(AdmissionKind::TierShed)));
    assert!(!independent(&|s| s.summarize_trace = Some(true)));
    assert!(!independent(&|s| s.tenant_budgets = Some([("a".to_string(), 0.5)].into_iter().collect())));
    assert!(!independent(&|s| s.num_instances = Some(1)));
    assert!(!independent(&|s| s.independent_instances = Some(false)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conservation_causality_kv_and_determinism(c in case()) {
        let (a, report) = run(&c, true);
        let m = &report.cluster;
        let k = &report.counters;
        // Conservation: every request that arrived is in exactly one bucket (the engine also
        // refuses to report a run where this fails).
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
        // Pools partition the instances: their summaries add up to the cluster's.
        let doc: serde_json::Value = serde_json::from_str(&a).unwrap();
        let per_pool = doc["per_pool"].as_array().map_or(0, Vec::len);
        prop_assert_eq!(per_pool, if c.pools || c.pd.is_some() { 2 } else { 0 });
        if c.pools || c.pd.is_some() {
            let sum = |key: &str| doc["per_pool"].as_array().unwrap().iter().map(|p| p[key].as_u64().unwrap()).sum::<u64>();
            prop_assert_eq!(sum("completed_requests"), m.completed());
            prop_assert_eq!(sum("injected_requests"), k.injected - k.rejected - k.in_transit);
        }
        // Disaggregation: every prefill leg that finished was transferred; drained, every
        // transfer ended on a decode instance; prefill-only instances complete nothing.
        prop_assert_eq!(report.pd.is_some(), c.pd.is_some());
        if let Some(pd) = &report.pd {
            prop_assert_eq!(pd.handoffs, m.pd_handoffs);
            prop_assert_eq!(pd.handoffs, pd.transfers_completed + k.in_transfer);
            prop_assert!(pd.handoffs <= pd.disaggregated);
            if c.horizon_us.is_none() {
                prop_assert_eq!(pd.transfers_completed, pd.handoffs);
            }
            if c.pd.is_some_and(|(d, _)| d == PdDeciderKind::Never) {
                prop_assert_eq!(pd.disaggregated, 0);
            }
            if c.pd.is_some_and(|(_, contention)| !contention) {
                prop_assert!(pd.transfer_queueing.summary().mean_us == 0.0);
            }
            for inst in &report.instances[..(c.instances / 2) as usize] {
                prop_assert_eq!(inst.completed(), 0);
            }
            let d = &m.pd;
            prop_assert_eq!(d.prefill.len(), d.transfer.len());
            prop_assert_eq!(d.prefill.len(), d.first_decode.len());
        }
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
        let (again, _) = run(&c, true);
        prop_assert_eq!(&a, &again);
        // The fast paths (lockstep decode, independent instances) equal the plain ones,
        // records included.
        let records = |r: &SimReport| serde_json::to_string(&r.cluster.records).unwrap();
        for (lockstep, independent) in [(false, true), (true, false), (false, false)] {
            let mut s = spec(&c, true);
            s.lockstep_decode = Some(lockstep);
            s.independent_instances = Some(independent);
            let (doc, plain) = run_spec(&s);
            // The documents differ only in the recorded execution options.
            let strip = |d: &str| {
                let mut v: serde_json::Value = serde_json::from_str(d).unwrap();
                v.as_object_mut().unwrap().remove("config");
                v
            };
            prop_assert_eq!(strip(&a), strip(&doc), "lockstep {} independent {}", lockstep, independent);
            prop_assert_eq!(records(&report), records(&plain));
        }
    }

    /// With a CPU KV tier (vLLM's asynchronous reloads, or the reference's step stalls): the
    /// engine's checks hold (blocks conserved in each tier, the CPU pool within capacity),
    /// every block reloaded was offloaded first, and the per-tier figures add up.
    #[test]
    fn cpu_tier_conserves_blocks(mut c in case(), cpu in 1u64..400, reference in any::<bool>()) {
        c.kv_cpu_blocks = cpu;
        c.prefix_tokens = c.prefix_tokens.max(48);
        // A GPU pool small enough to evict (and preempt) often, so that the CPU tier is used.
        c.kv_blocks = 40 + c.kv_blocks % 80;
        c.requests = c.requests.max(20);
        let mut s = spec(&c, true);
        if reference {
            s.compat = Some(blis_config::Compat::Reference);
        }
        let (doc, report) = run_spec(&s);
        prop_assert!(report.check_invariants().is_ok(), "{:?}", report.check_invariants());
        for m in report.instances.iter().chain(std::iter::once(&report.cluster)) {
            prop_assert!(m.kv_check.is_none(), "{:?}", m.kv_check);
            let t = m.kv_tier.as_ref().expect("tier counters");
            prop_assert_eq!(t.offloaded_blocks - t.cpu_evicted_blocks, t.cpu_resident_blocks);
            prop_assert!(t.cpu_resident_blocks <= t.cpu_blocks);
            prop_assert!(t.cpu_hit_blocks == 0 || t.offloaded_blocks > 0);
            if t.loads == 0 {
                prop_assert_eq!(t.cpu_hit_blocks, 0);
            }
        }
        if c.horizon_us.is_none() {
            prop_assert_eq!(report.cluster.kv_used_blocks_at_end, 0);
        }
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let rate = |k: &str| v[k].as_f64().unwrap();
        prop_assert!(
            (rate("gpu_cache_hit_rate") + rate("cpu_cache_hit_rate") - rate("cache_hit_rate")).abs() < 1e-9,
            "{}", doc
        );
        // Deterministic, and the fast paths agree with the plain ones.
        prop_assert_eq!(&doc, &run_spec(&s).0);
        let mut plain = s.clone();
        plain.lockstep_decode = Some(false);
        plain.independent_instances = Some(false);
        let strip = |d: &str| {
            let mut v: serde_json::Value = serde_json::from_str(d).unwrap();
            v.as_object_mut().unwrap().remove("config");
            v
        };
        prop_assert_eq!(strip(&doc), strip(&run_spec(&plain).0));
    }

    #[test]
    fn prefix_caching_saves_prefill_work(mut c in case()) {
        c.prefix_tokens = 64;
        c.horizon_us = None;
        c.kv_blocks = c.kv_blocks.max(200);
        c.requests = c.requests.max(5);
        c.admission = AdmissionKind::AlwaysAdmit;
        c.instances = c.instances.min(3);
        let (_, with) = run(&c, true);
        let (_, without) = run(&c, false);
        prop_assert_eq!(with.cluster.completed(), without.cluster.completed());
        prop_assert!(
            with.cluster.prompt_tokens_computed < without.cluster.prompt_tokens_computed,
            "with caching {} vs without {}",
            with.cluster.prompt_tokens_computed,
            without.cluster.prompt_tokens_computed
        );
    }
}

/// Flow control settings of one property case.
#[derive(Debug, Clone)]
struct FlowCase {
    instances: u32,
    rate: f64,
    requests: u64,
    max_running: u32,
    detector: SaturationDetectorKind,
    order: DispatchOrder,
    fairness: FairnessPolicy,
    max_depth: u64,
    per_band: u64,
    usage: f64,
    ttl_us: u64,
    shedding: bool,
    eviction: bool,
    tick_us: u64,
    horizon_us: Option<u64>,
    seed: u64,
}

fn flow_case() -> impl Strategy<Value = FlowCase> {
    (
        (1u32..5, 20.0f64..400.0, 1u64..80, 1u32..12),
        (one_of::<SaturationDetectorKind>(), one_of::<DispatchOrder>(), one_of::<FairnessPolicy>()),
        (
            prop_oneof![Just(0u64), 1u64..20],
            prop_oneof![Just(0u64), 1u64..10],
            prop_oneof![Just(1.0f64), 0.2f64..1.0],
        ),
        (prop_oneof![Just(0u64), 1_000u64..2_000_000], any::<bool>(), any::<bool>(), 100u64..20_000),
        (prop_oneof![Just(None), (50_000u64..3_000_000).prop_map(Some)], any::<u64>()),
    )
        .prop_map(|(w, p, l, t, r)| FlowCase {
            instances: w.0,
            rate: w.1,
            requests: w.2,
            max_running: w.3,
            detector: p.0,
            order: p.1,
            fairness: p.2,
            max_depth: l.0,
            per_band: l.1,
            usage: l.2,
            ttl_us: t.0,
            shedding: t.1,
            eviction: t.2,
            tick_us: t.3,
            horizon_us: r.0,
            seed: r.1,
        })
}

/// Four classes (two sheddable) from three tenants.
fn flow_workload(c: &FlowCase) -> blis_config::WorkloadSpecRef {
    let mut text = format!(
        "version: \"2\"\nseed: {}\naggregate_rate: {}\nnum_requests: {}\nclients:\n",
        c.seed % 1000,
        c.rate,
        c.requests
    );
    for (i, (class, tenant)) in
        [("critical", "a"), ("standard", "b"), ("sheddable", "a"), ("background", "c")].iter().enumerate()
    {
        text.push_str(&format!(
            "  - id: c{i}\n    tenant_id: {tenant}\n    slo_class: {class}\n    rate_fraction: 1\n    \
             input_distribution: {{type: gaussian, params: {{mean: 200, std_dev: 80, min: 8, max: 500}}}}\n    \
             output_distribution: {{type: gaussian, params: {{mean: 60, std_dev: 30, min: 1, max: 200}}}}\n"
        ));
    }
    let spec = blis_workload::parse_spec(&text, "flow-case").unwrap();
    blis_config::WorkloadSpecRef::Inline(Box::new(spec))
}

fn flow_spec(c: &FlowCase) -> RunSpec {
    use blis_config::duration::Micros;
    RunSpec {
        model: Some("meta-llama/llama-3.1-8b-instruct".into()),
        hardware: Some("H100".into()),
        latency_model: Some(LatencyModelKind::TrainedPhysics),
        max_num_seqs: Some(c.max_running),
        total_kv_blocks: Some(400),
        num_instances: Some(c.instances),
        routing_policy: Some(RoutingKind::LeastLoaded),
        snapshot_refresh_interval: Some(Micros(c.seed % 3 * 10_000)),
        workload_spec: Some(flow_workload(c)),
        flow_control: Some(true),
        saturation_detector: Some(c.detector),
        dispatch_order: Some(c.order),
        fairness_policy: Some(c.fairness),
        max_gateway_queue_depth: Some(c.max_depth),
        per_band_capacity: Some(c.per_band),
        usage_limit_threshold: Some(c.usage),
        queue_depth_threshold: Some(2.0),
        kv_cache_util_threshold: Some(0.5),
        max_concurrency: Some(3),
        request_ttl: Some(Micros(c.ttl_us)),
        queue_shedding: Some(c.shedding),
        in_flight_eviction: Some(c.eviction),
        dispatch_tick_interval: Some(Micros(c.tick_us)),
        slo_targets: Some(blis_config::spec::SloTargetMap(
            [("critical".to_string(), 50_000), ("standard".to_string(), 400_000)].into(),
        )),
        timeout: Some(blis_config::duration::Seconds(-1.0)),
        horizon: c.horizon_us.map(Micros),
        seed: Some(c.seed),
        ..RunSpec::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// With flow control on, under every detector, dispatch order and fairness policy: every
    /// request completes, is rejected, shed, expired, evicted, or (with a horizon) is left
    /// somewhere, exactly once; the run is deterministic.
    #[test]
    fn flow_control_conserves_requests(c in flow_case()) {
        let (doc, report) = run_spec(&flow_spec(&c));
        let m = &report.cluster;
        let k = &report.counters;
        let g = k.gateway.clone().expect("flow control on");
        prop_assert_eq!(
            k.injected,
            m.completed() + m.still_queued + m.still_running + m.dropped_unservable + m.timed_out
                + k.rejected + k.in_transit
                + g.rejected + g.shed + g.expired + g.evicted + g.depth_at_end
        );
        prop_assert_eq!(m.timed_out, 0, "no client timeouts in these cases");
        if c.horizon_us.is_none() {
            prop_assert_eq!(k.injected, c.requests);
            prop_assert_eq!(m.still_queued + m.still_running + k.in_transit + g.depth_at_end, 0);
            prop_assert_eq!(m.kv_used_blocks_at_end, 0);
        }
        if c.ttl_us == 0 { prop_assert_eq!(g.expired, 0); }
        if !c.shedding { prop_assert_eq!(g.shed, 0); }
        if !c.eviction { prop_assert_eq!(g.evicted, 0); }
        if c.max_depth == 0 && c.per_band == 0 { prop_assert_eq!(g.rejected, 0); }
        if c.max_depth > 0 && c.per_band == 0 { prop_assert!(g.depth_max <= c.max_depth); }
        if c.detector == SaturationDetectorKind::Never {
            // Never saturated: everything passes straight through.
            prop_assert!(g.depth_max <= 1);
            prop_assert_eq!(g.rejected + g.shed + g.expired + g.evicted, 0);
        }
        // Each record is one request, once.
        let mut ids: Vec<u64> = m.records.iter().map(|r| r.request_id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), n);
        let (again, _) = run_spec(&flow_spec(&c));
        prop_assert_eq!(&doc, &again);
        // The lockstep fast path changes nothing here either.
        let mut plain = flow_spec(&c);
        plain.lockstep_decode = Some(false);
        let strip = |d: &str| {
            let mut v: serde_json::Value = serde_json::from_str(d).unwrap();
            v.as_object_mut().unwrap().remove("config");
            v
        };
        prop_assert_eq!(strip(&doc), strip(&run_spec(&plain).0));
    }
}

#[derive(Debug, Clone)]
struct ScaleCase {
    initial: u32,
    max_nodes: usize,
    gpus_per_node: u32,
    tp: u32,
    interval_us: u64,
    up_window_us: f64,
    down_window_us: f64,
    loading_s: (f64, f64),
    provisioning_s: (f64, f64),
    thresholds: (f64, f64),
    rate: f64,
    requests: u64,
    kv_blocks: u64,
    routing: RoutingKind,
    horizon_us: Option<u64>,
    seed: u64,
}

fn scale_case() -> impl Strategy<Value = ScaleCase> {
    (
        (1u32..3, 1usize..5, prop_oneof![Just(1u32), Just(2), Just(4)], prop_oneof![Just(1u32), Just(2)]),
        (200_000u64..5_000_000, prop_oneof![Just(0.0f64), 1e5..4e6], prop_oneof![Just(0.0f64), 1e5..4e6]),
        ((0.0f64..3.0, 0.0f64..1.0), (0.0f64..3.0, 0.0f64..1.0), (0.05f64..0.5, 0.55f64..1.0)),
        (5.0f64..150.0, 1u64..300, 60u64..600, one_of::<RoutingKind>()),
        (prop_oneof![Just(None), (2_000_000u64..20_000_000).prop_map(Some)], any::<u64>()),
    )
        .prop_map(
            |(
                (initial, max_nodes, gpn, tp),
                (interval_us, up, down),
                (l, p, th),
                (rate, n, kv, routing),
                (h, seed),
            )| {
                ScaleCase {
                    initial,
                    max_nodes,
                    gpus_per_node: gpn.max(tp),
                    tp,
                    interval_us,
                    up_window_us: up,
                    down_window_us: down,
                    loading_s: l,
                    provisioning_s: p,
                    thresholds: th,
                    rate,
                    requests: n,
                    kv_blocks: kv,
                    routing,
                    horizon_us: h,
                    seed,
                }
            },
        )
}

fn scale_spec(c: &ScaleCase) -> RunSpec {
    use blis_config::autoscale::{AnalyzerSpec, AutoscalerSpec, DelaySpec, LifecycleSpec, NodePoolSpec};
    let per_node = (c.gpus_per_node / c.tp) as usize;
    let initial_nodes = (c.initial as usize).div_ceil(per_node).min(c.max_nodes);
    let initial = (c.initial as usize).min(initial_nodes * per_node) as u32;
    let delay = |(mean, stddev): (f64, f64)| DelaySpec { mean, stddev };
    RunSpec {
        model: Some("meta-llama/llama-3.1-8b-instruct".into()),
        hardware: Some("H100".into()),
        tp: Some(c.tp),
        latency_model: Some(LatencyModelKind::TrainedPhysics),
        total_kv_blocks: Some(c.kv_blocks),
        max_num_seqs: Some(8),
        num_instances: Some(initial),
        routing_policy: Some(c.routing),
        rate: Some(c.rate),
        num_requests: Some(c.requests),
        horizon: c.horizon_us.map(blis_config::duration::Micros),
        seed: Some(c.seed),
        node_pools: Some(vec![NodePoolSpec {
            name: "p".into(),
            gpu_type: "H100".into(),
            gpus_per_node: c.gpus_per_node,
            gpu_memory_gib: 80.0,
            initial_nodes,
            min_nodes: 0,
            max_nodes: c.max_nodes,
            provisioning_delay: delay(c.provisioning_s),
            cost_per_hour: 1.0,
        }]),
        autoscaler: Some(AutoscalerSpec {
            interval_us: c.interval_us as f64,
            scale_up_stabilization_window_us: c.up_window_us,
            scale_down_stabilization_window_us: c.down_window_us,
            hpa_scrape_delay: DelaySpec {
                mean: (c.seed % 4) as f64 * 0.5,
                stddev: (c.seed % 3) as f64 * 0.2,
            },
            analyzer: AnalyzerSpec {
                kv_cache_threshold: 0.8,
                scale_up_threshold: c.thresholds.1,
                scale_down_boundary: c.thresholds.0,
                avg_input_tokens: 200.0,
            },
        }),
        instance_lifecycle: Some(LifecycleSpec {
            loading_delay: delay(c.loading_s),
            warm_start_initial_instances: true,
            ..LifecycleSpec::default()
        }),
        ..RunSpec::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With instances coming and going under random scaling settings: every request is
    /// accounted for exactly once, instances that left held nothing, every instance added
    /// became ready or is still loading, the fleet stays within the node pool, GPU-hours are
    /// the instances' lifetimes, and the run is deterministic.
    #[test]
    fn autoscaling_conserves_requests(c in scale_case()) {
        let spec = scale_spec(&c);
        let (doc, report) = run_spec(&spec);
        let m = &report.cluster;
        let k = &report.counters;
        prop_assert_eq!(
            k.injected,
            m.completed() + m.still_queued + m.still_running + m.dropped_unservable + m.timed_out
                + k.rejected + k.in_transit
        );
        let a = report.autoscale.clone().expect("autoscaling on");
        a.check(|i| report.instances[i].still_queued + report.instances[i].still_running)
            .map_err(TestCaseError::fail)?;
        let capacity = (c.gpus_per_node / c.tp) as usize * c.max_nodes;
        prop_assert!(a.peak_instances <= capacity);
        prop_assert!(a.final_instances >= 1);
        // The fleet never had fewer than one routable instance.
        prop_assert!(a.timeline.iter().all(|e| e.routable >= 1));
        // Never more GPU time than the whole pool for the whole run, never less than one instance.
        let hours = a.end_us as f64 / 3.6e9;
        prop_assert!(a.gpu_hours <= hours * (capacity as u32 * c.tp) as f64 + 1e-9);
        prop_assert!(a.gpu_hours + 1e-9 >= hours * c.tp as f64);
        if c.horizon_us.is_none() {
            prop_assert_eq!(k.injected, c.requests);
            prop_assert_eq!(m.still_queued + m.still_running + k.in_transit, 0);
        }
        // Requests reached only instances that had been made ready (or the initial ones).
        let initial = a.initial_instances;
        for (i, inst) in report.instances.iter().enumerate() {
            if i >= initial && inst.records.len() as u64 + inst.still_queued + inst.still_running > 0 {
                prop_assert!(a.timeline.iter().any(|e| e.action == "ready" && e.instance == i));
            }
        }
        let (again, _) = run_spec(&spec);
        prop_assert_eq!(&doc, &again);
    }
}
