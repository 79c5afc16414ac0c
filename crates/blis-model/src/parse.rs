//! `config.json` → [`ModelSpec`] (latency.md §8.1 field list, instance.md §7.3 rope rules).
//!
//! HuggingFace configs differ per family, so every field has a list of accepted names and
//! multimodal configs (Llama-4) keep the text model under `text_config`: that object is read
//! first, the root second. Nothing here panics on hostile input: numbers are bounded before
//! any arithmetic and every failure names its field.

use serde_json::{Map, Value};

use crate::error::ModelError;
use crate::model::ModelSpec;

/// Upper bound for structural sizes (layers, widths, heads, experts, vocab): far above any
/// real model, low enough that products in `param_count` fit in 128 bits.
const MAX_DIM: u64 = 1 << 24;
/// Upper bound for context lengths.
const MAX_CONTEXT: u64 = 1 << 40;

/// Field lookup over `text_config` (if any) then the root object.
struct Cfg<'a> {
    model: &'a str,
    scopes: Vec<&'a Map<String, Value>>,
}

impl<'a> Cfg<'a> {
    fn raw(&self, key: &str) -> Option<&'a Value> {
        self.scopes.iter().find_map(|m| m.get(key)).filter(|v| !v.is_null())
    }

    fn invalid(&self, field: &str, reason: impl Into<String>) -> ModelError {
        ModelError::InvalidField {
            model: self.model.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    fn missing(&self, field: &str) -> ModelError {
        ModelError::MissingField { model: self.model.to_string(), field: field.to_string() }
    }

    /// A non-negative integer ≤ `max` (integral floats such as `8.0` are accepted).
    fn uint(&self, key: &str, max: u64) -> Result<Option<u64>, ModelError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match n {
            Some(n) if n <= max => Ok(Some(n)),
            Some(_) => Err(self.invalid(key, format!("is larger than the supported maximum {max}"))),
            None => Err(self.invalid(key, format!("must be a non-negative integer, got {v}"))),
        }
    }

    /// First present of `keys`, with the name it was found under.
    fn uint_any(&self, keys: &[&'static str], max: u64) -> Result<Option<(u64, &'static str)>, ModelError> {
        for k in keys {
            if let Some(n) = self.uint(k, max)? {
                return Ok(Some((n, k)));
            }
        }
        Ok(None)
    }

    /// A required, strictly positive dimension.
    fn positive(&self, keys: &[&'static str], max: u64) -> Result<u64, ModelError> {
        match self.uint_any(keys, max)? {
            Some((0, k)) => Err(self.invalid(k, "must be positive, got 0")),
            Some((n, _)) => Ok(n),
            None => Err(self.missing(keys[0])),
        }
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, ModelError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.invalid(key, format!("must be a string, got {v}"))),
        }
    }
}

impl ModelSpec {
    /// Parses a HuggingFace `config.json`. `name` is the model id (stored lower-cased); it also
    /// feeds the weight-precision name heuristics (`...-FP8-dynamic`, `...-w4a16`).
    pub fn from_config_json(name: &str, json: &str) -> Result<ModelSpec, ModelError> {
        let model = name.to_lowercase();
        let root: Value = serde_json::from_str(json).map_err(|e| ModelError::Json {
            source: format!("config.json of model {model}"),
            message: e.to_string(),
        })?;
        let Value::Object(root) = &root else {
            return Err(ModelError::Json {
                source: format!("config.json of model {model}"),
                message: "top level is not a JSON object".into(),
            });
        };
        let mut scopes = Vec::with_capacity(2);
        if let Some(Value::Object(text)) = root.get("text_config") {
            scopes.push(text);
        }
        scopes.push(root);
        let cfg = Cfg { model: &model, scopes };
        parse(&cfg, &model)
    }
}

fn parse(c: &Cfg, model: &str) -> Result<ModelSpec, ModelError> {
    let num_layers = c.positive(&["num_hidden_layers", "num_layers", "n_layer"], MAX_DIM)?;
    let hidden_size = c.positive(&["hidden_size", "n_embd"], MAX_DIM)?;
    let num_attention_heads = c.positive(&["num_attention_heads", "n_head"], MAX_DIM)?;
    let num_kv_heads = match c
        .uint_any(&["num_key_value_heads", "num_kv_heads", "multi_query_group_num"], MAX_DIM)?
    {
        Some((0, _)) | None => num_attention_heads, // 0 conventionally means plain MHA
        Some((n, k)) if n > num_attention_heads => {
            return Err(c.invalid(
                    k,
                    format!("({n}) exceeds num_attention_heads ({num_attention_heads}); each KV head serves ≥ 1 query head"),
                ));
        }
        Some((n, k)) if num_attention_heads % n != 0 => {
            return Err(c.invalid(
                k,
                format!(
                    "({n}) does not divide num_attention_heads ({num_attention_heads}); \
                         grouped-query attention gives every KV head the same number of query heads"
                ),
            ));
        }
        Some((n, _)) => n,
    };
    let head_dim = match c.uint_any(&["head_dim", "kv_channels"], MAX_DIM)? {
        Some((n, _)) if n > 0 => n,
        _ if hidden_size % num_attention_heads != 0 => {
            return Err(c.invalid(
                "hidden_size",
                format!(
                    "({hidden_size}) is not a multiple of num_attention_heads ({num_attention_heads}) and no \
                     head_dim is given, so the head size is undefined"
                ),
            ));
        }
        _ => hidden_size / num_attention_heads,
    };
    let vocab_size = c.positive(&["vocab_size", "padded_vocab_size"], MAX_DIM)?;

    // Experts and the MoE/dense layer split (latency.md §8.1).
    let num_experts =
        c.uint_any(&["num_local_experts", "num_experts", "n_routed_experts"], MAX_DIM)?.map_or(0, |x| x.0);
    let is_moe = num_experts >= 2;
    let experts_per_token = c.uint("num_experts_per_tok", MAX_DIM)?.unwrap_or(0);
    if is_moe && experts_per_token > num_experts {
        return Err(c.invalid(
            "num_experts_per_tok",
            format!("({experts_per_token}) exceeds the number of experts ({num_experts})"),
        ));
    }
    let step = c.uint("interleave_moe_layer_step", MAX_DIM)?.unwrap_or(0);
    let interleaved_moe = is_moe && step > 0;
    let num_moe_layers = if !is_moe {
        0
    } else if interleaved_moe {
        num_layers / (step + 1)
    } else {
        num_layers - c.uint("first_k_dense_replace", MAX_DIM)?.unwrap_or(0).min(num_layers)
    };
    let num_dense_layers = num_layers - num_moe_layers;
    let weight_moe_layers = if interleaved_moe { num_layers / step } else { num_moe_layers };
    let model_type = c.string("model_type").ok().flatten().unwrap_or("").to_lowercase();

    // MLP widths.
    let base_ff = c.uint_any(&["intermediate_size", "ffn_hidden_size"], MAX_DIM)?.map(|x| x.0);
    let moe_ff = c.uint("moe_intermediate_size", MAX_DIM)?;
    let mlp_ff = c.uint("intermediate_size_mlp", MAX_DIM)?;
    let expert_intermediate_size = moe_ff.or(base_ff).unwrap_or(0);
    if is_moe && num_moe_layers > 0 && expert_intermediate_size == 0 {
        return Err(match moe_ff.or(base_ff) {
            Some(_) => c.invalid("moe_intermediate_size", "must be positive, got 0"),
            None => c.missing("moe_intermediate_size"),
        });
    }
    let intermediate_size = match mlp_ff.or(base_ff) {
        Some(n) if n > 0 => n,
        Some(_) if num_dense_layers > 0 => {
            return Err(c.invalid("intermediate_size", "must be positive, got 0"));
        }
        None if num_dense_layers > 0 => return Err(c.missing("intermediate_size")),
        _ => expert_intermediate_size,
    };
    let declared_shared_expert_intermediate_size = match c.uint("shared_expert_intermediate_size", MAX_DIM)? {
        Some(n) => n,
        None => c.uint("n_shared_experts", MAX_DIM)?.unwrap_or(0) * expert_intermediate_size,
    };
    let shared_expert_intermediate_size = match c.uint("shared_expert_intermediate_size", MAX_DIM)? {
        None if is_moe && model_type.starts_with("llama4") => expert_intermediate_size,
        // Llama-4 MoE layers always have one shared expert; no config field declares it.
        _ => declared_shared_expert_intermediate_size,
    };

    // MLA (DeepSeek-style) compressed KV.
    let mla_kv_dim = match c.uint("kv_lora_rank", MAX_DIM)? {
        Some(r) if r > 0 => r + c.uint("qk_rope_head_dim", MAX_DIM)?.unwrap_or(0),
        _ => 0,
    };

    let hidden_act = c.string("hidden_act")?.unwrap_or("").to_lowercase();
    let tie_word_embeddings = match c.raw("tie_word_embeddings") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(c.invalid("tie_word_embeddings", format!("must be a boolean, got {v}")));
        }
    };
    let max_position_embeddings = match c.uint_any(
        &["max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"],
        MAX_CONTEXT,
    )? {
        Some((0, k)) => return Err(c.invalid(k, "must be positive, got 0")),
        Some((n, _)) => n,
        None => return Err(c.missing("max_position_embeddings")),
    };
    let derived_max_model_len = derive_max_len(c, max_position_embeddings)?;

    let compute_bytes = compute_bytes(c)?;
    let weight_bytes = weight_bytes(c, model)?.unwrap_or(compute_bytes);

    Ok(ModelSpec {
        name: model.to_string(),
        num_layers,
        hidden_size,
        num_attention_heads,
        num_kv_heads,
        head_dim,
        vocab_size,
        intermediate_size,
        num_experts,
        experts_per_token,
        expert_intermediate_size,
        shared_expert_intermediate_size,
        declared_shared_expert_intermediate_size,
        num_moe_layers,
        num_dense_layers,
        interleaved_moe,
        mla_kv_dim,
        hidden_act,
        tie_word_embeddings,
        max_position_embeddings,
        derived_max_model_len,
        compute_bytes,
        weight_bytes,
        weight_moe_layers,
    })
}

/// instance.md §7.3: `max_position_embeddings × rope_scaling.factor` for rope types
/// linear/dynamic/yarn/default/mrope (yarn scales `original_max_position_embeddings` when
/// given); su/longrope/llama3 and every gemma3 model keep `max_position_embeddings`.
fn derive_max_len(c: &Cfg, max_pos: u64) -> Result<u64, ModelError> {
    let model_type = c.string("model_type").ok().flatten().unwrap_or("");
    if model_type.to_lowercase().contains("gemma3") {
        return Ok(max_pos);
    }
    let Some(rope) = c.raw("rope_scaling") else {
        return Ok(max_pos);
    };
    let Value::Object(rope) = rope else {
        return Err(c.invalid("rope_scaling", "must be an object or null"));
    };
    let kind = rope.get("rope_type").or_else(|| rope.get("type")).and_then(Value::as_str).unwrap_or("");
    let kind = kind.to_lowercase();
    if !matches!(kind.as_str(), "linear" | "dynamic" | "yarn" | "default" | "mrope") {
        return Ok(max_pos);
    }
    let factor = match rope.get("factor") {
        None | Some(Value::Null) => return Ok(max_pos),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| c.invalid("rope_scaling.factor", format!("must be a positive number, got {v}")))?,
    };
    let base = match (kind.as_str(), rope.get("original_max_position_embeddings").and_then(Value::as_u64)) {
        ("yarn", Some(orig)) if orig > 0 => orig,
        _ => max_pos,
    };
    Ok((base as f64 * factor).floor().min(MAX_CONTEXT as f64).max(1.0) as u64)
}

/// Bytes per element of a dtype name, `None` when unknown.
fn dtype_bytes(dtype: &str) -> Option<f64> {
    match dtype.trim_start_matches("torch.").to_lowercase().as_str() {
        "bfloat16" | "float16" | "bf16" | "fp16" | "half" => Some(2.0),
        "float32" | "fp32" | "float" => Some(4.0),
        d if d.starts_with("float8") || d == "fp8" => Some(1.0),
        _ => None,
    }
}

/// Activation/KV element size from `torch_dtype` (fallback `dtype`); bf16 when absent.
fn compute_bytes(c: &Cfg) -> Result<f64, ModelError> {
    for key in ["torch_dtype", "dtype"] {
        if let Some(s) = c.string(key)? {
            return dtype_bytes(s).ok_or_else(|| {
                c.invalid(key, format!("has unknown dtype `{s}` (accepted: bfloat16, float16, float32)"))
            });
        }
    }
    Ok(2.0)
}

/// Weight precision (latency.md §8.1): `quantization_config.bits/8`; `quant_method: fp8` → 1;
/// compressed-tensors `config_groups.*.weights.num_bits/8`; then name heuristics; `None`
/// means "same as the compute dtype".
fn weight_bytes(c: &Cfg, model: &str) -> Result<Option<f64>, ModelError> {
    if let Some(q) = c.raw("quantization_config") {
        let Value::Object(q) = q else {
            return Err(c.invalid("quantization_config", "must be an object"));
        };
        let bits_of = |v: &Value, field: &str| -> Result<f64, ModelError> {
            v.as_f64()
                .filter(|b| b.is_finite() && *b > 0.0 && *b <= 64.0)
                .map(|b| b / 8.0)
                .ok_or_else(|| c.invalid(field, format!("must be a bit width in (0, 64], got {v}")))
        };
        if let Some(b) = q.get("bits").filter(|v| !v.is_null()) {
            return bits_of(b, "quantization_config.bits").map(Some);
        }
        let method = q.get("quant_method").and_then(Value::as_str).unwrap_or("").to_lowercase();
        if method.contains("fp8") {
            return Ok(Some(1.0));
        }
        if let Some(Value::Object(groups)) = q.get("config_groups") {
            let first =
                groups.values().find_map(|g| g.get("weights")?.get("num_bits").filter(|v| !v.is_null()));
            if let Some(b) = first {
                return bits_of(b, "quantization_config.config_groups.weights.num_bits").map(Some);
            }
        }
    }
    let lower = model.to_lowercase();
    if lower.contains("w4a16") {
        Ok(Some(0.5))
    } else if lower.contains("fp8") || lower.contains("w8a8") || lower.contains("w8a16") {
        Ok(Some(1.0))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = r#"{"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "intermediate_size": 14336,
        "hidden_act": "silu", "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}"#;

    fn with(extra: &str) -> String {
        format!("{}, {extra}}}", LLAMA.trim_end().trim_end_matches('}'))
    }

    #[test]
    fn dense_fields() {
        let m = ModelSpec::from_config_json("Meta/Llama", LLAMA).unwrap();
        assert_eq!(m.name, "meta/llama");
        assert_eq!((m.head_dim, m.num_kv_heads, m.num_dense_layers, m.num_moe_layers), (128, 8, 32, 0));
        assert_eq!((m.compute_bytes, m.weight_bytes), (2.0, 2.0));
        assert_eq!(m.derived_max_model_len, 131072);
    }

    #[test]
    fn kv_head_fallbacks() {
        let j = LLAMA.replace("num_key_value_heads", "multi_query_group_num");
        assert_eq!(ModelSpec::from_config_json("m", &j).unwrap().num_kv_heads, 8);
        let j = LLAMA.replace("\"num_key_value_heads\": 8,", "");
        assert_eq!(ModelSpec::from_config_json("m", &j).unwrap().num_kv_heads, 32);
    }

    #[test]
    fn quantization_rules() {
        let wb =
            |extra: &str, name: &str| ModelSpec::from_config_json(name, &with(extra)).unwrap().weight_bytes;
        assert_eq!(wb(r#""quantization_config": {"bits": 4, "quant_method": "gptq"}"#, "m"), 0.5);
        assert_eq!(wb(r#""quantization_config": {"quant_method": "fp8"}"#, "m"), 1.0);
        let ct = r#""quantization_config": {"quant_method": "compressed-tensors",
            "config_groups": {"group_0": {"weights": {"num_bits": 4}}}}"#;
        assert_eq!(wb(ct, "m"), 0.5);
        assert_eq!(wb(r#""x": 1"#, "org/model-w4a16"), 0.5);
        assert_eq!(wb(r#""x": 1"#, "org/model-FP8-dynamic"), 1.0);
        assert_eq!(wb(r#""x": 1"#, "org/model-w8a8"), 1.0);
        let fp32 = LLAMA.replace("bfloat16", "float32");
        let m = ModelSpec::from_config_json("m", &fp32).unwrap();
        assert_eq!((m.compute_bytes, m.weight_bytes), (4.0, 4.0));
    }

    #[test]
    fn rope_rules() {
        let len = |rope: &str| {
            ModelSpec::from_config_json("m", &with(&format!(r#""rope_scaling": {rope}"#)))
                .unwrap()
                .derived_max_model_len
        };
        assert_eq!(len(r#"{"type": "linear", "factor": 2.0}"#), 262144);
        assert_eq!(len(r#"{"rope_type": "dynamic", "factor": 1.5}"#), 196608);
        assert_eq!(
            len(r#"{"type": "yarn", "factor": 4, "original_max_position_embeddings": 32768}"#),
            131072
        );
        assert_eq!(len(r#"{"rope_type": "llama3", "factor": 8.0}"#), 131072);
        assert_eq!(len(r#"{"type": "longrope", "factor": 8.0}"#), 131072);
        assert_eq!(len("null"), 131072);
        let gemma = with(r#""model_type": "gemma3_text", "rope_scaling": {"type": "linear", "factor": 8}"#);
        assert_eq!(ModelSpec::from_config_json("m", &gemma).unwrap().derived_max_model_len, 131072);
    }

    #[test]
    fn moe_splits() {
        let moe = with(r#""num_local_experts": 8, "num_experts_per_tok": 2"#);
        let m = ModelSpec::from_config_json("m", &moe).unwrap();
        assert_eq!((m.num_moe_layers, m.num_dense_layers, m.expert_intermediate_size), (32, 0, 14336));
        let ds = with(
            r#""n_routed_experts": 64, "num_experts_per_tok": 6, "moe_intermediate_size": 1408,
            "n_shared_experts": 2, "first_k_dense_replace": 1, "kv_lora_rank": 512, "qk_rope_head_dim": 64"#,
        );
        let m = ModelSpec::from_config_json("m", &ds).unwrap();
        assert_eq!((m.num_moe_layers, m.num_dense_layers), (31, 1));
        assert_eq!((m.shared_expert_intermediate_size, m.mla_kv_dim), (2816, 576));
        assert_eq!(m.declared_shared_expert_intermediate_size, 2816);
        let il = with(
            r#""num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
            "intermediate_size_mlp": 16384"#,
        );
        let m = ModelSpec::from_config_json("m", &il).unwrap();
        assert!(m.interleaved_moe);
        assert_eq!((m.num_moe_layers, m.num_dense_layers), (16, 16));
        assert_eq!((m.intermediate_size, m.expert_intermediate_size), (16384, 14336));
        assert_eq!((m.weight_moe_layers, m.shared_expert_intermediate_size), (32, 0));
        // Llama-4: one shared expert of the expert width that no config field declares; the
        // reference's reading (the declared width) has none.
        let scout = crate::registry::bundled_config("llama-4-scout-17b-16e-instruct-fp8-dynamic").unwrap();
        let m = ModelSpec::from_config_json(scout.0, scout.1).unwrap();
        assert_eq!(
            (m.shared_expert_intermediate_size, m.declared_shared_expert_intermediate_size),
            (8192, 0)
        );
    }

    #[test]
    fn text_config_nesting_wins() {
        let j = format!(r#"{{"torch_dtype": "float32", "text_config": {LLAMA}}}"#);
        let m = ModelSpec::from_config_json("m", &j).unwrap();
        assert_eq!((m.num_layers, m.compute_bytes), (32, 2.0));
    }

    #[test]
    fn errors_name_the_field() {
        let err = |j: &str| ModelSpec::from_config_json("m", j).unwrap_err().to_string();
        assert!(err("{not json").starts_with("invalid JSON"));
        assert!(err("[1,2]").contains("not a JSON object"));
        assert!(err(&LLAMA.replace("\"hidden_size\"", "\"hs\"")).contains("`hidden_size`"));
        assert!(err(&LLAMA.replace("32,", "0,")).contains("`num_hidden_layers` must be positive"));
        assert!(
            err(&LLAMA.replace("\"vocab_size\": 128256", "\"vocab_size\": \"big\"")).contains("`vocab_size`")
        );
        assert!(err(&LLAMA.replace("14336", "-1")).contains("`intermediate_size`"));
        assert!(err(&LLAMA.replace("bfloat16", "int3")).contains("`torch_dtype`"));
        assert!(err(&LLAMA.replace("32,", "1e30,")).contains("`num_hidden_layers`"));
        assert_eq!(
            err(&LLAMA.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 64")),
            "config.json of model m: field `num_key_value_heads` (64) exceeds num_attention_heads (32); each KV \
             head serves ≥ 1 query head"
        );
        assert!(
            err(&LLAMA.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 12"))
                .starts_with("config.json of model m: field `num_key_value_heads` (12) does not divide num_attention_heads (32)")
        );
        assert_eq!(
            err(&LLAMA.replace("\"hidden_size\": 4096", "\"hidden_size\": 4100")),
            "config.json of model m: field `hidden_size` (4100) is not a multiple of num_attention_heads (32) and \
             no head_dim is given, so the head size is undefined"
        );
        // An explicit head_dim need not divide the hidden size (Mistral-Nemo: 5120 = 32 × 160 ≠ 32 × 128).
        assert!(
            ModelSpec::from_config_json("m", &with(r#""head_dim": 100"#).replace("4096", "4100")).is_ok()
        );
        let bad_rope = with(r#""rope_scaling": {"type": "linear", "factor": -2}"#);
        assert!(err(&bad_rope).contains("rope_scaling.factor"));
        for e in [err("{"), err("{}")] {
            assert!(!e.contains('\n'));
        }
    }
}
