//! Micro-benchmarks of the simulator's hot paths (divan).
//!
//! Full run:  `cargo bench -p blis-sim --bench hot_paths`
//! Quick (CI): `cargo bench -p blis-sim --bench hot_paths -- --sample-count 1 --sample-size 1`
//! Test mode (each benchmark once, no timing): `cargo test -p blis-sim --benches`

use std::sync::Arc;

use blis_latency::{LatencyModel, LatencyOverrides};
use blis_sim::cluster::routing::{RoutingConfig, RoutingKind};
use blis_sim::cluster::{InstanceSignals, PrefixOracle, RouterView, RoutingRequest};
use blis_sim::events::{Event, EventQueue};
use blis_sim::instance::{Finished, Instance, InstanceConfig};
use blis_sim::kv::{KvAlloc, KvCache};
use blis_sim::preemption::PreemptionKind;
use blis_sim::priority::{PriorityKind, SloPriorities};
use blis_sim::scheduler::SchedulerKind;
use blis_workload::{RequestSpec, Segment, SloClass, TokenSeq};
use divan::Bencher;

fn main() {
    use clap::ValueEnum;
    let registered: Vec<String> = RoutingKind::value_variants()
        .iter()
        .map(|k| k.to_possible_value().unwrap().get_name().to_string())
        .collect();
    assert_eq!(registered, ROUTING_POLICIES, "the routing bench must cover every registered policy");
    divan::main();
}

const BLOCK: u32 = 16;

/// A general-preset-like prompt: one of 9 shared system prompts (100 tokens) + a 447-token
/// question of its own.
fn prompt(i: u64) -> TokenSeq {
    let mut s = TokenSeq::from_source(1_000 + i % 9, 100);
    s.push(Segment { source: 10_000 + i, start: 0, len: 447 });
    s
}

fn spec(i: u64, arrival_us: u64) -> RequestSpec {
    RequestSpec {
        id: i,
        arrival_us,
        input: prompt(i),
        output_tokens: 248,
        max_output_tokens: 248,
        output_source: 1_000_000 + i,
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

fn latency() -> Arc<dyn LatencyModel> {
    let model =
        blis_model::load_model("meta-llama/llama-3.1-8b-instruct", None, &blis_model::HubOptions::default())
            .expect("bundled model");
    let gpu = blis_model::gpu_by_name("H100", &[]).expect("builtin gpu");
    Arc::from(blis_latency::build("trained-physics", &model, &gpu, 1, &LatencyOverrides::default()).unwrap())
}

fn instance(latency: Arc<dyn LatencyModel>, max_running: u32) -> Instance {
    let config = InstanceConfig {
        max_running_reqs: max_running,
        max_scheduled_tokens: 2048,
        long_prefill_token_threshold: 0,
        max_model_len: 0,
        block_size_tokens: BLOCK,
        total_kv_blocks: 30_000,
        prefix_caching: true,
        async_scheduling: false,
        priority: PriorityKind::SloBased,
        slo_priorities: SloPriorities::GAIE,
        record_requests: false,
        track_classes: true,
        exact_percentiles: false,
        semantics: blis_sim::EngineSemantics::BLIS,
        kv_tier: None,
        lora: None,
    };
    Instance::new(0, config, latency, SchedulerKind::Fcfs.build(), PreemptionKind::Fcfs.build(), true)
}

/// Event queue: push `n` events at pseudo-random times, then pop them all.
#[divan::bench(args = [1_000, 100_000])]
fn event_queue_push_pop(bencher: Bencher, n: u64) {
    bencher.counter(divan::counter::ItemsCount::new(n)).bench_local(|| {
        let mut q = EventQueue::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            q.push(x % 1_000_000, Event::Step { instance: (i % 64) as u32 });
        }
        while let Some(e) = q.pop() {
            divan::black_box(e);
        }
    });
}

/// Event queue in steady state: a heap of `n` pending events, one pop + one push per op
/// (the simulation loop's pattern).
#[divan::bench(args = [64, 4_096])]
fn event_queue_steady_state(bencher: Bencher, n: u64) {
    let mut q = EventQueue::default();
    for i in 0..n {
        q.push(i * 37 % 1_000, Event::Step { instance: (i % 64) as u32 });
    }
    bencher.bench_local(|| {
        let (t, e) = q.pop().unwrap();
        q.push(t + 977, e);
    });
}

/// One step of an instance with a full running batch of `batch` requests in steady state
/// (mostly decodes, with finished requests replaced from a deep queue).
#[divan::bench(args = [32, 128, 256])]
fn instance_step_loaded(bencher: Bencher, batch: u32) {
    let mut inst = instance(latency(), batch);
    let mut finished: Vec<Finished> = Vec::new();
    let mut next = 0u64;
    let mut now = 0u64;
    let refill = |inst: &mut Instance, next: &mut u64, now: u64, finished: &mut Vec<Finished>| {
        while inst.queue_depth() < batch {
            inst.enqueue(now, spec(*next, now), false, finished);
            *next += 1;
        }
    };
    refill(&mut inst, &mut next, now, &mut finished);
    // Warm up until the batch is full and decoding.
    for _ in 0..400 {
        now += inst.step(now, &mut finished);
        finished.clear();
        refill(&mut inst, &mut next, now, &mut finished);
    }
    bencher.bench_local(|| {
        now += inst.step(now, &mut finished);
        if inst.queue_depth() < batch / 2 {
            finished.clear();
            refill(&mut inst, &mut next, now, &mut finished);
        }
        finished.clear();
    });
}

/// KV cache: a request claims its cached prefix, grows through prefill and 248 decode tokens
/// one token at a time, then releases (the pool is warmed with the shared prefixes).
#[divan::bench]
fn kv_allocate_free_prefix_hits(bencher: Bencher) {
    let mut kv = KvCache::new(4_096, BLOCK);
    let seqs: Vec<(TokenSeq, Vec<u64>)> = (0..64u64)
        .map(|i| {
            let mut s = prompt(i);
            s.push(Segment { source: 1_000_000 + i, start: 0, len: 248 });
            let h = prompt(i).block_hashes(BLOCK);
            (s, h)
        })
        .collect();
    let mut k = 0usize;
    bencher.bench_local(|| {
        let (seq, hashes) = &seqs[k % seqs.len()];
        k += 1;
        let mut alloc = KvAlloc::default();
        let cached = kv.cached_prefix_blocks(hashes);
        let cached = cached.min((547 - 1) / BLOCK);
        let claim = &hashes[..cached as usize];
        assert!(kv.allocate(&mut alloc, Some(seq), hashes, claim, 547));
        for end in 548..=547 + 248 {
            assert!(kv.allocate(&mut alloc, Some(seq), hashes, &[], end));
        }
        kv.release(&mut alloc);
    });
}

/// Block hashing of a 547-token, two-segment prompt (34 full blocks).
#[divan::bench]
fn token_seq_block_hashes(bencher: Bencher) {
    let seqs: Vec<TokenSeq> = (0..64).map(prompt).collect();
    let mut k = 0usize;
    bencher.bench_local(|| {
        k += 1;
        divan::black_box(seqs[k % seqs.len()].block_hashes(BLOCK))
    });
}

/// Block hashing of a many-segment sequence (a multi-turn chat history: 40 turns).
#[divan::bench]
fn token_seq_block_hashes_multi_turn(bencher: Bencher) {
    let mut s = TokenSeq::from_source(1, 100);
    for t in 0..40u64 {
        s.push(Segment { source: 100 + t, start: 0, len: 47 });
        s.push(Segment { source: 1_000 + t, start: 0, len: 61 });
    }
    bencher.bench_local(|| divan::black_box(&s).block_hashes(BLOCK));
}

struct HalfOracle;

impl PrefixOracle for HalfOracle {
    fn cached_blocks(&self, instance: usize, prompt_hashes: &[u64]) -> u32 {
        if instance.is_multiple_of(2) { prompt_hashes.len() as u32 / 2 } else { 0 }
    }
}

/// Every registered routing policy, by name (the bench argument).
const ROUTING_POLICIES: &[&str] = &["round-robin", "least-loaded", "weighted", "always-busiest"];

/// One routing decision over 16 instances, for every registered policy.
#[divan::bench(args = ROUTING_POLICIES)]
fn route_16_instances(bencher: Bencher, policy: &str) {
    let kind = <RoutingKind as clap::ValueEnum>::from_str(policy, false).unwrap();
    let config = RoutingConfig { kind, scorers: Vec::new(), block_size_tokens: BLOCK };
    let mut router = config.build();
    let signals: Vec<InstanceSignals> = (0..16u32)
        .map(|i| InstanceSignals {
            queue_depth: i * 7 % 5,
            batch_size: 100 + i * 13 % 28,
            in_flight: i % 3,
            kv_utilization: f64::from(i) / 20.0,
            free_kv_blocks: 30_000 - i * 1_000,
            preemptions: 0,
            lora_resident: [0; 4],
        })
        .collect();
    let requests: Vec<(RequestSpec, Vec<u64>)> = (0..64u64)
        .map(|i| {
            let s = spec(i, i);
            let h = s.input.block_hashes(BLOCK);
            (s, h)
        })
        .collect();
    let mut rng = blis_workload::rng::stream(42, "router");
    let mut k = 0usize;
    bencher.bench_local(|| {
        let (spec, hashes) = &requests[k % requests.len()];
        k += 1;
        let view = RouterView { now_us: k as u64, signals: &signals, prefix: &HalfOracle };
        let request = RoutingRequest::of(spec, hashes);
        divan::black_box(router.route(&request, &view, &mut rng))
    });
}
