//! Structured fuzz tests of the run description's parsers (config files, policy files, sweep
//! grids) and of the whole run path from random valid-but-extreme descriptions: no input panics,
//! every error is one line, accepted descriptions resolve to configurations within the limits,
//! and runs of them end (with a document or a one-line error) within bounded memory.
//! `BLIS_FUZZ_CASES=N` sets the cases (`tools/fuzz.sh`).

use std::path::Path;

use blis_fuzz::{EXTREMES, assert_one_line, config, mutated};
use proptest::prelude::*;

use crate::layers::{Layer, Layers, Source};
use crate::resolve::{Catalog, resolve};
use crate::spec::RunSpec;
use crate::sweep::{Grid, row_layers};

static CONFIGS: &[&str] = &[
    "model: meta-llama/llama-3.1-8b-instruct\nhardware: H100\ntp: 1\nmax-num-seqs: 64\nmax-num-batched-tokens: 512\n\
     num-instances: 3\nrouting-policy: weighted\nrouting-scorers: prefix-affinity:2,queue-depth:1\nworkload: chatbot\n\
     rate: 20.0\nnum-requests: 40\nseed: 7\ntimeout: 30\n",
    "model: meta-llama/llama-3.1-8b-instruct\nalpha-coeffs: [1000, 100, 2]\nlatency-model: trained-physics\n\
     routing-scorers:\n  - {name: queue-depth, weight: 1}\nworkload-spec:\n  version: \"2\"\n  aggregate_rate: 10\n  \
     num_requests: 20\n  clients:\n    - id: a\n      rate_fraction: 1\n      input_distribution: {type: constant, params: {value: 100}}\n      \
     output_distribution: {type: constant, params: {value: 10}}\n",
    "model: meta-llama/llama-3.1-8b-instruct\nrouting-policy: least-loaded\nnum-requests: 30\npools:\n  \
     - {name: fast, hardware: H100, tp: 1, instances: 2, max-num-seqs: 32}\n  \
     - {name: slow, hardware: A100-80, tp: 2, instances: 1, total-kv-blocks: 5000}\n",
];

static POLICIES: &[&str] = &[
    "admission:\n  policy: tier-shed\n  tier_shed_threshold: 8\n  tier_shed_min_priority: 3\n  slo_priorities: {batch: 0}\n\
     routing:\n  policy: weighted\n  scorers:\n    - {name: precise-prefix-cache, weight: 2}\n    - {name: queue-depth, weight: 1}\n\
     priority: {policy: slo-based}\nscheduler: priority-fcfs\npreemption: {policy: priority}\ntenant_budgets: {a: 0.5}\n",
];

static LORA_FILES: &[&str] = &[
    "lora:\n  adapter_capacity: 2\n  load_base_latency_us: 1500.0\n  load_bandwidth_bytes_us: 2.0e6\n  \
     footprint_bytes_per_rank: 2.0e6\n  step_overhead_tiers:\n    8: {k6: 0.02, k7: 1.0}\n    32: {k6: 0.06, k7: 1.0}\n  \
     adapters:\n    - {id: a0, rank: 8}\n    - {id: a1, rank: 32, base_model: meta-llama/llama-3.1-8b-instruct}\n",
];

static GRIDS: &[&str] =
    &["base: {model: meta-llama/llama-3.1-8b-instruct, workload: chatbot, num-requests: 20}\naxes:\n  \
     - {flag: num-instances, values: [1, 2]}\n  - {flag: max-num-running-reqs, values: [8, 64]}\n"];

fn catalog() -> Catalog {
    Catalog { memory_limit_bytes: Some(1 << 31), ..Catalog::default() }
}

/// Resolving what parsed must not panic; an error is one line.
fn resolve_layers(layers: &Layers) {
    if let Err(e) = resolve(layers, &catalog()) {
        assert_one_line(&e.to_string());
    }
}

fn check_config(text: &str) {
    match crate::yaml::parse::<RunSpec>(text, Path::new("c.yaml")) {
        Err(e) => assert_one_line(&e.to_string()),
        Ok(spec) => {
            let mut layers = Layers::with_defaults();
            layers.push(Layer::new(Source::ConfigFile("c.yaml".into()), &spec));
            resolve_layers(&layers);
        }
    }
}

fn check_policy(text: &str) {
    match crate::policy_file::parse(text, Path::new("p.yaml")) {
        Err(e) => assert_one_line(&e.to_string()),
        Ok(layer) => {
            let mut layers = Layers::with_defaults();
            layers.push(layer);
            let flags = RunSpec {
                model: Some("meta-llama/llama-3.1-8b-instruct".into()),
                num_instances: Some(2),
                ..RunSpec::default()
            };
            layers.push(Layer::new(Source::Flags, &flags));
            resolve_layers(&layers);
        }
    }
}

fn check_lora(text: &str) {
    use blis_sim::lora::{LoraLoading, MAX_ADAPTERS};
    match crate::lora::parse(text) {
        Err(e) => assert_one_line(&e),
        Ok(block) => {
            match crate::lora::build(block, crate::lora::Overrides::default(), LoraLoading::StepStall) {
                Err((key, message)) => {
                    assert_one_line(&key);
                    assert_one_line(&message);
                }
                Ok((None, _)) => {}
                Ok((Some(c), _)) => {
                    assert!((1..=MAX_ADAPTERS as u32).contains(&c.capacity));
                    assert!(!c.adapters.is_empty() && c.adapters.len() <= MAX_ADAPTERS);
                    assert!(c.adapters.windows(2).all(|w| w[0].name < w[1].name), "sorted, unique ids");
                    for i in 0..c.adapters.len() as u32 {
                        assert!((1..=1_000_000_000_001).contains(&c.load_us(i)));
                    }
                    assert!(c.reserved_bytes().is_finite());
                    assert!(c.step_factor(3, 16) >= 1.0 && c.step_factor(3, 16).is_finite());
                }
            }
        }
    }
}

fn check_grid(text: &str) {
    match Grid::parse(text, Path::new("g.yaml")) {
        Err(e) => assert_one_line(&e.to_string()),
        Ok(grid) => {
            let n = grid.len().expect("a parsed grid has a size");
            assert!(n <= crate::sweep::MAX_CONFIGURATIONS);
            for i in 0..n.min(3) {
                match row_layers(&grid.point(i), Path::new("g.yaml")) {
                    Err(e) => assert_one_line(&e.to_string()),
                    Ok(layers) => resolve_layers(&layers),
                }
            }
        }
    }
}

/// A valid-but-extreme description: every numeric key drawn from the extremes or ordinary
/// values, a small request count so that a run that is accepted does real but bounded work.
fn extreme_spec() -> impl Strategy<Value = RunSpec> {
    let num = || {
        prop_oneof![
            3 => proptest::sample::select(EXTREMES).prop_filter_map("a number", |s| s.parse::<f64>().ok()),
            2 => 0.0f64..5000.0,
        ]
    };
    let int = || prop_oneof![num().prop_map(|v| v.abs().min(u64::MAX as f64) as u64), 1u64..300];
    (
        (int(), int(), int(), int(), int(), int()),
        (num(), num(), num(), num(), 1u64..40, any::<u64>()),
        (0u32..5, prop::option::of(int()), prop::option::of(num()), prop::bool::ANY),
    )
        .prop_map(|(a, b, c)| RunSpec {
            model: Some("meta-llama/llama-3.1-8b-instruct".into()),
            max_num_seqs: u32::try_from(a.0).ok(),
            max_num_batched_tokens: u32::try_from(a.1).ok(),
            total_kv_blocks: Some(a.2),
            block_size_in_tokens: u32::try_from(a.3 % 300).ok(),
            long_prefill_token_threshold: u32::try_from(a.4).ok(),
            prefix_tokens: u32::try_from(a.5).ok(),
            rate: Some(b.0),
            prompt_tokens: Some(b.1),
            output_tokens: Some(b.2),
            timeout: Some(crate::duration::Seconds(b.3)),
            num_requests: Some(b.4),
            seed: Some(b.5),
            num_instances: Some(c.0),
            admission_latency: c.1.map(crate::duration::Micros),
            gpu_memory_utilization: c.2,
            async_scheduling: Some(c.3),
            horizon: Some(crate::duration::Micros(60_000_000)),
            ..RunSpec::default()
        })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn fuzz_config_file_mutations(text in mutated(CONFIGS)) {
        check_config(&text);
    }

    #[test]
    fn fuzz_policy_file_mutations(text in mutated(POLICIES)) {
        check_policy(&text);
    }

    #[test]
    fn fuzz_lora_config_mutations(text in mutated(LORA_FILES)) {
        check_lora(&text);
    }

    #[test]
    fn fuzz_sweep_grid_mutations(text in mutated(GRIDS)) {
        check_grid(&text);
    }

    #[test]
    fn fuzz_random_config_text(text in "[a-z\\-:{}\\[\\], \\n0-9.]{0,160}") {
        check_config(&text);
        check_policy(&text);
        check_grid(&text);
    }

    #[test]
    fn fuzz_whole_run_from_extreme_descriptions(spec in extreme_spec()) {
        let mut layers = Layers::with_defaults();
        layers.push(Layer::new(Source::Flags, &spec));
        match resolve(&layers, &catalog()) {
            Err(e) => assert_one_line(&e.to_string()),
            Ok(config) => match config.simulate() {
                Err(e) => assert_one_line(&e.to_string()),
                Ok(outcome) => {
                    let c = &outcome.doc.cluster;
                    prop_assert!(c.completed_requests <= c.injected_requests);
                    prop_assert!(c.injected_requests <= spec.num_requests.unwrap());
                }
            },
        }
    }
}

#[test]
fn corpus_files_are_valid() {
    for text in CONFIGS {
        crate::yaml::parse::<RunSpec>(text, Path::new("c.yaml")).unwrap();
    }
    for text in POLICIES {
        crate::policy_file::parse(text, Path::new("p.yaml")).unwrap();
    }
    for text in GRIDS {
        Grid::parse(text, Path::new("g.yaml")).unwrap();
    }
    for text in LORA_FILES {
        let block = crate::lora::parse(text).unwrap();
        let built = crate::lora::build(block, Default::default(), blis_sim::lora::LoraLoading::StepStall);
        assert!(built.unwrap().0.is_some());
    }
}
