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
    /// Width of the always-on shared expert(s) MLP, 0 when none. Llama-4 MoE layers always
    /// carry one shared expert of `intermediate_size` that its config declares in no field.
    pub shared_expert_intermediate_size: u64,
    /// The shared-expert width the config itself declares (`shared_expert_intermediate_size`,
    /// else `n_shared_experts ×` the expert width; 0 when none): the reference simulator's
    /// reading, which misses Llama-4's undeclared shared expert. Its formulas (trained-physics)
    /// use this one.
    pub declared_shared_expert_intermediate_size: u64,
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
    /// MoE layers as the checkpoint stores them, for weight accounting only. Equals
    /// `num_moe_layers` except for interleaved MoE, where HuggingFace puts experts in every
    /// `step`-th layer (`L/step`: all 48 layers of Llama-4 Scout) while the latency models keep
    /// the reference's `L/(step+1)` split (their coefficients were fitted with it).
    pub weight_moe_layers: u64,
}

impl ModelSpec {
    /// Mixture-of-experts iff at least two routed experts (spec: "MoE ⇔ E ≥ 2").
    pub fn is_moe(&self) -> bool {
        self.num_experts >= 2
    }

    /// Total parameter count per instance.md §7.2 (SwiGLU MLPs, 2 norms per layer):
    ///
    /// `V·d (embed) + L·(attn + 2d) + Σ_layers MLP + (V·d unless tied) + d`, with
    /// `attn = d·(q + 2·kv) + q·d`, `q = H·head_dim`, `kv = nKV·head_dim`; dense MLP = `3·d·I`,
    /// MoE MLP = `3·d·I_expert·E + 3·d·I_shared + E·d` (router), over the checkpoint's layer
    /// layout (`weight_moe_layers`).
    ///
    /// The spec writes `q = d`; using `H·head_dim` is identical whenever `head_dim = d/H`
    /// (every pinned figure) and correct for models with an explicit, different `head_dim`
    /// (Mistral-Nemo, Qwen3-MoE). MLA projections are approximated by this dense-attention
    /// formula. Computed in 128-bit and saturated, so absurd configs cannot overflow.
    pub fn param_count(&self) -> u64 {
        let (d, l, v) = (self.hidden_size as u128, self.num_layers as u128, self.vocab_size as u128);
        let q = self.num_attention_heads as u128 * self.head_dim as u128;
        let kv = self.num_kv_heads as u128 * self.head_dim as u128;
        let attn_and_norms = d * (q + 2 * kv) + q * d + 2 * d;
        let dense_mlp = 3 * d * self.intermediate_size as u128;
        let e = self.num_experts as u128;
        let moe_mlp = 3 * d * self.expert_intermediate_size as u128 * e
            + 3 * d * self.shared_expert_intermediate_size as u128
            + e * d;
        let moe_layers = (self.weight_moe_layers as u128).min(l);
        let embed = v * d;
        let lm_head = if self.tie_word_embeddings { 0 } else { v * d };
        let total =
            embed + l * attn_and_norms + (l - moe_layers) * dense_mlp + moe_layers * moe_mlp + lm_head + d;
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    /// Bytes of all weights of one replica. Quantized checkpoints (FP8, 4-bit) keep the token
    /// embedding and the LM head in the compute dtype, as vLLM loads them.
    pub fn weight_bytes_total(&self) -> f64 {
        let vocab_params = self.vocab_size as f64
            * self.hidden_size as f64
            * if self.tie_word_embeddings { 1.0 } else { 2.0 };
        let other = self.param_count() as f64 - vocab_params;
        other * self.weight_bytes + vocab_params * self.compute_bytes
    }
}
