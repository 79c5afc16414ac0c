//! Structured fuzz tests of `config.json` and hardware-config parsing, KV capacity and the TP
//! check: no input panics, every error is one line, and accepted inputs satisfy the
//! invariants the latency models and the KV cache rely on. `BLIS_FUZZ_CASES=N` sets the cases
//! per target (`tools/fuzz.sh`).

use blis_fuzz::{assert_one_line, config, mutated};
use proptest::prelude::*;
use serde_json::Value;

use crate::{
    GpuSpec, MAX_BANDWIDTH_TBS, MAX_KV_BLOCKS, MAX_MEMORY_GIB, MAX_TFLOPS, ModelSpec, bundled_model_names,
    check_tensor_parallel, kv_blocks, max_model_len, parse_hardware_config, registry,
};

static CONFIGS: &[&str] = &[
    include_str!("../data/models/llama-3.1-8b-instruct.json"),
    include_str!("../data/models/qwen3-30b-a3b.json"),
    include_str!("../data/models/deepseek-v2-lite.json"),
    include_str!("../data/models/llama-4-scout-17b-16e-instruct-fp8-dynamic.json"),
    include_str!("../data/models/mistral-nemo-instruct-2407.json"),
];
static HARDWARE: &[&str] = &[include_str!("../fuzz-corpus/hardware.json")];

/// A small JSON value of any shape, for substituting into real configs.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn bundled_json(i: usize) -> Value {
    let names = bundled_model_names();
    let (_, text) = registry::bundled_config(names[i % names.len()]).unwrap();
    serde_json::from_str(text).unwrap()
}

/// The invariants of an accepted architecture, then everything downstream of it.
fn use_spec(m: &ModelSpec) {
    assert!(m.num_layers > 0 && m.hidden_size > 0 && m.vocab_size > 0 && m.head_dim > 0);
    assert!(m.num_kv_heads >= 1 && m.num_kv_heads <= m.num_attention_heads, "{m:?}");
    assert_eq!(m.num_attention_heads % m.num_kv_heads, 0, "{m:?}");
    assert_eq!(m.num_moe_layers + m.num_dense_layers, m.num_layers);
    assert!(m.derived_max_model_len >= 1 && m.max_position_embeddings >= 1);
    assert!(m.compute_bytes > 0.0 && m.weight_bytes > 0.0 && m.weight_bytes.is_finite());
    let _ = m.param_count();
    assert!(m.weight_bytes_total().is_finite());
    let gpu = crate::gpu_by_name("H100", &[]).unwrap();
    for tp in [1, 2, 3, 8, 1024] {
        if let Err(e) = check_tensor_parallel(m, tp) {
            assert_one_line(&e.to_string());
        }
        use_capacity(m, &gpu, tp);
    }
}

fn use_capacity(m: &ModelSpec, gpu: &GpuSpec, tp: u32) {
    match kv_blocks(m, gpu, tp, 0.9, 16) {
        Ok(b) => {
            assert!((1..=MAX_KV_BLOCKS).contains(&b), "{b} blocks");
            match max_model_len(m, b, 16, None) {
                Ok(len) => assert!(len >= 1 && len <= b * 16),
                Err(e) => assert_one_line(&e.to_string()),
            }
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
}

fn check_gpus(text: &str) {
    match parse_hardware_config(text, "fuzz.json") {
        Ok(gpus) => {
            for g in &gpus {
                for (v, max) in [
                    (g.tflops_bf16, MAX_TFLOPS),
                    (g.hbm_bandwidth_tbs, MAX_BANDWIDTH_TBS),
                    (g.memory_gib, MAX_MEMORY_GIB),
                ] {
                    assert!(v.is_finite() && v > 0.0 && v <= max, "{g:?}");
                }
                // The MFU factors are the reference's roofline inputs: an entry that does not
                // give them keeps its built-in row's, 0 for the GPUs the reference lacks (the
                // roofline model then refuses the GPU, naming the field).
                for v in [g.mfu_prefill, g.mfu_decode] {
                    assert!((0.0..=1.0).contains(&v), "{g:?}");
                }
                assert!(g.tflops_fp8.is_finite() && (0.0..=MAX_TFLOPS).contains(&g.tflops_fp8));
                let m = ModelSpec::from_config_json("m", CONFIGS[0]).unwrap();
                use_capacity(&m, g, 1);
                let _ = crate::gpu_by_name(&g.name, &gpus).unwrap();
            }
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
}

fn parse_config(name: &str, text: &str) {
    match ModelSpec::from_config_json(name, text) {
        Ok(m) => use_spec(&m),
        Err(e) => assert_one_line(&e.to_string()),
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn fuzz_config_arbitrary_strings(s in ".{0,200}") {
        parse_config("fuzz", &s);
        if let Err(e) = parse_hardware_config(&s, "fuzz") {
            assert_one_line(&e.to_string());
        }
    }

    #[test]
    fn fuzz_config_text_mutations(text in mutated(CONFIGS)) {
        parse_config("fuzz/Model-FP8", &text);
    }

    #[test]
    fn fuzz_config_field_mutations(
        i in 0usize..64,
        edits in prop::collection::vec((0usize..64, any_json(), any::<bool>()), 1..6),
        in_text_config in any::<bool>(),
    ) {
        let mut cfg = bundled_json(i);
        for (k, v, delete) in edits {
            let obj = cfg.as_object_mut().unwrap();
            let keys: Vec<String> = obj.keys().cloned().collect();
            let key = keys[k % keys.len()].clone();
            if delete { obj.remove(&key); } else { obj.insert(key, v); }
        }
        let text = if in_text_config { serde_json::json!({"text_config": cfg}).to_string() } else { cfg.to_string() };
        parse_config("fuzz/Model-FP8", &text);
    }

    #[test]
    fn fuzz_config_extreme_numbers(
        i in 0usize..64,
        field in 0usize..14,
        n in prop_oneof![Just(u64::MAX), Just(1u64 << 24), Just((1u64 << 24) + 1), 0u64..3, any::<u64>(), 1u64..200],
    ) {
        const FIELDS: [&str; 14] = ["num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "head_dim", "vocab_size", "intermediate_size", "num_local_experts", "num_experts_per_tok",
            "interleave_moe_layer_step", "kv_lora_rank", "max_position_embeddings", "first_k_dense_replace",
            "moe_intermediate_size"];
        let mut cfg = bundled_json(i);
        cfg.as_object_mut().unwrap().insert(FIELDS[field].into(), Value::from(n));
        parse_config("fuzz", &cfg.to_string());
    }

    #[test]
    fn fuzz_tp_check_matches_vllm_rules(heads in 1u64..200, kv in 1u64..200, tp in 1u32..300) {
        let mut m = ModelSpec::from_config_json("m", CONFIGS[0]).unwrap();
        (m.num_attention_heads, m.num_kv_heads) = (heads, kv);
        let tp64 = u64::from(tp);
        let ok = heads % tp64 == 0 && (kv % tp64 == 0 || tp64 % kv == 0);
        match check_tensor_parallel(&m, tp) {
            Ok(()) => prop_assert!(ok),
            Err(e) => {
                prop_assert!(!ok);
                assert_one_line(&e.to_string());
            }
        }
    }

    #[test]
    fn fuzz_hardware_config_mutations(text in mutated(HARDWARE)) {
        check_gpus(&text);
    }

    #[test]
    fn fuzz_hardware_config_values(v in any_json(), field in 0usize..6) {
        const FIELDS: [&str; 6] = ["TFlopsPeak", "TFlopsFP8", "BwPeakTBs", "mfuPrefill", "mfuDecode", "MemoryGiB"];
        let text = serde_json::json!({"H100": {FIELDS[field]: v.clone()}, "X": {"TFlopsPeak": v}}).to_string();
        check_gpus(&text);
    }
}

#[test]
fn corpus_files_are_valid() {
    for text in CONFIGS {
        use_spec(&ModelSpec::from_config_json("corpus", text).unwrap());
    }
    assert_eq!(parse_hardware_config(HARDWARE[0], "corpus.json").unwrap().len(), 3);
}
