//! Normalized transformer architecture parsed from a HuggingFace `config.json`.

/// The architecture fields the simulator uses, normalized across model families
/// (Llama, Mistral, Qwen, Mixtral, Llama-4 interleaved MoE, DeepSeek MLA, FP8 checkpoints).
///
/// Counts are plain integers; byte sizes are per element.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Lower-cased model id, e.g. `meta-llama/llama-3.1-8b-instruct`.
    pub name: String,
    pub num_layers: u64,
    pub hidden_size: u64,
    pub num_attention_heads: u64,
    /// `num_key_value_heads` (fallbacks `num_kv_heads`, `multi_query_group_num`; default = heads).
    pub num_kv_heads: u64,
    /// Explicit `head_dim` when the config gives one, else `hidden_size / num_attention_heads`.
    pub head_dim: u64,
    pub vocab_size: u64,
    /// Dense MLP width (`intermediate_size`, fallback `ffn_hidden_size`; for Llama-4 the dense
    /// layers use `intermediate_size_mlp` when present).
    pub intermediate_size: u64,
    /// Number of routed experts (`num_local_experts` / `num_experts` / `n_routed_experts`); 0 or 1 = dense.
    pub num_experts: u64,
    /// Experts activated per token (`num_experts_per_tok`).
    pub experts_per_token: u64,
    /// Per-expert MLP width (`moe_intermediate_size`, else `intermediate_size`).
    pub expert_intermediate_size: u64,
    /// Width of the always-on shared expert(s) MLP, 0 when none.
    pub shared_expert_intermediate_size: u64,
    /// Number of MoE layers and dense layers (sum = `num_layers`).
    pub num_moe_layers: u64,
    pub num_dense_layers: u64,
    /// True for interleaved MoE (Llama-4 `interleave_moe_layer_step` > 0).
    pub interleaved_moe: bool,
    /// MLA (DeepSeek) compressed KV: `kv_lora_rank + qk_rope_head_dim` per layer and token; 0 = not MLA.
    pub mla_kv_dim: u64,
    pub hidden_act: String,
    pub tie_word_embeddings: bool,
    pub max_position_embeddings: u64,
    /// Context length after applying the rope-scaling rules of the spec (instance.md §7.3).
    pub derived_max_model_len: u64,
    /// Bytes per element of activations and KV cache (`torch_dtype`: bf16/fp16 → 2, fp32 → 4).
    pub compute_bytes: f64,
    /// Bytes per weight parameter (quantization aware: fp8 → 1, w4a16 → 0.5, else compute bytes).
    pub weight_bytes: f64,
}
