//! Model and GPU fixtures for unit tests, built by struct literal (independent of config parsing).

use blis_model::{GpuSpec, ModelSpec};

use crate::{PrefillChunk, StepShape};

pub(crate) fn h100() -> GpuSpec {
    GpuSpec {
        name: "H100".into(),
        tflops_bf16: 989.5,
        tflops_fp8: 1979.0,
        hbm_bandwidth_tbs: 3.35,
        mfu_prefill: 0.45,
        mfu_decode: 0.30,
        memory_gib: 80.0,
        tflops_fp8_dense: 1979.0,
        link_gbs: 450.0,
        link: blis_model::Interconnect::NvSwitch,
    }
}

/// meta-llama/Llama-3.1-8B-Instruct.
pub(crate) fn llama_8b() -> ModelSpec {
    ModelSpec {
        name: "meta-llama/llama-3.1-8b-instruct".into(),
        num_layers: 32,
        hidden_size: 4096,
        num_attention_heads: 32,
        num_kv_heads: 8,
        head_dim: 128,
        vocab_size: 128_256,
        intermediate_size: 14_336,
        num_experts: 0,
        experts_per_token: 0,
        expert_intermediate_size: 14_336,
        shared_expert_intermediate_size: 0,
        declared_shared_expert_intermediate_size: 0,
        num_moe_layers: 0,
        weight_moe_layers: 0,
        num_dense_layers: 32,
        interleaved_moe: false,
        mla_kv_dim: 0,
        hidden_act: "silu".into(),
        tie_word_embeddings: false,
        max_position_embeddings: 131_072,
        derived_max_model_len: 131_072,
        compute_bytes: 2.0,
        weight_bytes: 2.0,
    }
}

/// mistralai/Mixtral-8x7B-Instruct-v0.1 (uniform MoE).
pub(crate) fn mixtral() -> ModelSpec {
    ModelSpec {
        name: "mistralai/mixtral-8x7b-instruct-v0.1".into(),
        vocab_size: 32_000,
        num_experts: 8,
        experts_per_token: 2,
        num_moe_layers: 32,
        weight_moe_layers: 32,
        num_dense_layers: 0,
        max_position_embeddings: 32_768,
        derived_max_model_len: 32_768,
        ..llama_8b()
    }
}

/// A Llama-4-Scout-like interleaved MoE: 48 layers, every other one MoE, one shared expert.
pub(crate) fn scout_like() -> ModelSpec {
    ModelSpec {
        name: "meta-llama/llama-4-scout-17b-16e-instruct".into(),
        num_layers: 48,
        hidden_size: 5120,
        num_attention_heads: 40,
        num_kv_heads: 8,
        intermediate_size: 16_384,
        num_experts: 16,
        experts_per_token: 1,
        expert_intermediate_size: 8192,
        shared_expert_intermediate_size: 8192,
        declared_shared_expert_intermediate_size: 0,
        num_moe_layers: 24,
        weight_moe_layers: 48,
        num_dense_layers: 24,
        interleaved_moe: true,
        ..llama_8b()
    }
}

/// `n` requests decoding one token each, every one with `ctx` tokens of context.
pub(crate) fn decodes(n: u32, ctx: u64) -> StepShape {
    StepShape { prefills: vec![], decode_requests: n, decode_context_tokens: u64::from(n) * ctx }
}

/// One fresh prompt of `tokens` tokens prefilled in a single chunk.
pub(crate) fn prefill(tokens: u32) -> StepShape {
    let chunk = PrefillChunk { new_tokens: tokens, context_tokens: 0, input_tokens: tokens };
    StepShape { prefills: vec![chunk], ..StepShape::default() }
}

/// A bundled model config, parsed as every run parses it.
pub(crate) fn bundled(name: &str) -> ModelSpec {
    let (key, json) = blis_model::bundled_config(name).expect("bundled config");
    ModelSpec::from_config_json(key, json).expect("bundled config parses")
}
