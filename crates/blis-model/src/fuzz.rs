//! Property tests: no input, however malformed, makes parsing panic.

use proptest::prelude::*;
use serde_json::Value;

use crate::{ModelSpec, bundled_model_names, kv_blocks, max_model_len, parse_hardware_config, registry};

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

/// Exercises everything downstream of a successful parse.
fn use_spec(m: &ModelSpec) {
    let _ = m.param_count();
    let gpu = crate::gpu_by_name("H100", &[]).unwrap();
    for tp in [1, 2, 8] {
        if let Ok(b) = kv_blocks(m, &gpu, tp, 0.9, 16) {
            let _ = max_model_len(m, b, 16, None);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,200}") {
        let _ = ModelSpec::from_config_json("fuzz", &s);
        let _ = parse_hardware_config(&s, "fuzz");
    }

    #[test]
    fn mutated_configs_never_panic(
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
        if let Ok(m) = ModelSpec::from_config_json("fuzz/Model-FP8", &text) {
            use_spec(&m);
        }
    }

    #[test]
    fn extreme_numbers_never_panic(field in 0usize..12, n in prop_oneof![Just(u64::MAX), Just(1u64 << 24), 0u64..3, any::<u64>()]) {
        const FIELDS: [&str; 12] = ["num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "head_dim", "vocab_size", "intermediate_size", "num_local_experts", "num_experts_per_tok",
            "interleave_moe_layer_step", "kv_lora_rank", "max_position_embeddings"];
        let mut cfg = bundled_json(6);
        cfg.as_object_mut().unwrap().insert(FIELDS[field].into(), Value::from(n));
        if let Ok(m) = ModelSpec::from_config_json("fuzz", &cfg.to_string()) {
            use_spec(&m);
        }
    }

    #[test]
    fn mutated_hardware_configs_never_panic(v in any_json()) {
        let text = serde_json::json!({"H100": v, "X": {"TFlopsPeak": v}}).to_string();
        let _ = parse_hardware_config(&text, "fuzz");
    }
}
