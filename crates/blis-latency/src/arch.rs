//! The architecture and hardware numbers the analytical models share, validated once and
//! converted to `f64` so the per-step code is plain arithmetic.

use blis_model::{GpuSpec, ModelSpec};

use crate::error::LatencyError;

/// Model × GPU × TP in the units the latency formulas use (FLOP/µs, B/µs, element counts).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arch {
    pub layers: f64,
    pub hidden: f64,
    pub heads: f64,
    pub kv_heads: f64,
    pub dense_ffn: f64,
    pub expert_ffn: f64,
    /// Shared-expert width as the reference reads it (only the declared one).
    pub shared_ffn: f64,
    pub experts: f64,
    pub top_k: f64,
    pub moe_layers: f64,
    pub dense_layers: f64,
    pub is_moe: bool,
    pub interleaved_moe: bool,
    pub tp: f64,
    pub weight_bytes: f64,
    pub act_bytes: f64,
    /// Peak FLOP/µs: the FP8 rate when weights are exactly 1 byte and the GPU has one (§8.1).
    pub flops_per_us: f64,
    pub bytes_per_us: f64,
}

impl Arch {
    pub fn new(model: &ModelSpec, gpu: &GpuSpec, tp: u32) -> Result<Self, LatencyError> {
        check_positive(model, gpu, tp)?;
        let is_moe = model.num_experts >= 2;
        let (moe_layers, dense_layers) = layer_split(model, is_moe)?;
        let fp8 = model.weight_bytes == 1.0 && gpu.tflops_fp8 > 0.0;
        let tflops = if fp8 { gpu.tflops_fp8 } else { gpu.tflops_bf16 };
        Ok(Self {
            layers: model.num_layers as f64,
            hidden: model.hidden_size as f64,
            heads: model.num_attention_heads as f64,
            kv_heads: model.num_kv_heads as f64,
            dense_ffn: model.intermediate_size as f64,
            expert_ffn: model.expert_intermediate_size as f64,
            shared_ffn: model.declared_shared_expert_intermediate_size as f64,
            experts: model.num_experts as f64,
            top_k: model.experts_per_token as f64,
            moe_layers: moe_layers as f64,
            dense_layers: dense_layers as f64,
            is_moe,
            interleaved_moe: is_moe && model.interleaved_moe,
            tp: f64::from(tp),
            weight_bytes: model.weight_bytes,
            act_bytes: model.compute_bytes,
            flops_per_us: tflops * 1e6,
            bytes_per_us: gpu.hbm_bandwidth_tbs * 1e6,
        })
    }
}

/// Rejects inputs that would divide by zero or yield non-finite step times.
fn check_positive(model: &ModelSpec, gpu: &GpuSpec, tp: u32) -> Result<(), LatencyError> {
    let bad = |what: String| Err(LatencyError::Config(what));
    if tp == 0 {
        return bad("--tp must be >= 1".into());
    }
    let counts = [
        ("num_hidden_layers", model.num_layers),
        ("hidden_size", model.hidden_size),
        ("num_attention_heads", model.num_attention_heads),
        ("num_key_value_heads", model.num_kv_heads),
    ];
    if let Some((field, _)) = counts.iter().find(|(_, v)| *v == 0) {
        return bad(format!("model {}: {field} must be > 0", model.name));
    }
    for (field, v) in [("weight bytes", model.weight_bytes), ("torch_dtype bytes", model.compute_bytes)] {
        if !(v.is_finite() && v > 0.0) {
            return bad(format!("model {}: {field} must be > 0, got {v}", model.name));
        }
    }
    for (field, v) in [("bf16 TFLOPS", gpu.tflops_bf16), ("bandwidth", gpu.hbm_bandwidth_tbs)] {
        if !(v.is_finite() && v > 0.0) {
            return bad(format!("GPU {}: {field} must be > 0, got {v}", gpu.name));
        }
    }
    if !gpu.tflops_fp8.is_finite() || gpu.tflops_fp8 < 0.0 {
        return bad(format!("GPU {}: FP8 TFLOPS must be >= 0, got {}", gpu.name, gpu.tflops_fp8));
    }
    Ok(())
}

/// (MoE layers, dense layers): all dense unless MoE (E ≥ 2); MoE models use the parser's split.
fn layer_split(model: &ModelSpec, is_moe: bool) -> Result<(u64, u64), LatencyError> {
    if !is_moe {
        return Ok((0, model.num_layers));
    }
    if model.experts_per_token == 0 {
        return Err(LatencyError::Config(format!(
            "model {}: num_experts_per_tok must be > 0 for an MoE model",
            model.name
        )));
    }
    if model.num_moe_layers + model.num_dense_layers != model.num_layers {
        return Err(LatencyError::Config(format!(
            "model {}: MoE layers ({}) + dense layers ({}) != num_hidden_layers ({})",
            model.name, model.num_moe_layers, model.num_dense_layers, model.num_layers
        )));
    }
    Ok((model.num_moe_layers, model.num_dense_layers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{h100, llama_8b, mixtral};

    #[test]
    fn fp8_weights_use_fp8_peak() {
        let mut m = llama_8b();
        assert_eq!(Arch::new(&m, &h100(), 1).unwrap().flops_per_us, 989.5e6);
        m.weight_bytes = 1.0;
        assert_eq!(Arch::new(&m, &h100(), 1).unwrap().flops_per_us, 1979.0e6);
    }

    #[test]
    fn dense_model_ignores_moe_fields() {
        let a = Arch::new(&llama_8b(), &h100(), 1).unwrap();
        assert_eq!((a.moe_layers, a.dense_layers, a.is_moe), (0.0, 32.0, false));
        let a = Arch::new(&mixtral(), &h100(), 2).unwrap();
        assert_eq!((a.moe_layers, a.dense_layers, a.is_moe), (32.0, 0.0, true));
    }

    #[test]
    fn inconsistent_inputs_are_errors() {
        assert!(Arch::new(&llama_8b(), &h100(), 0).unwrap_err().to_string().contains("--tp"));
        let mut m = mixtral();
        m.num_moe_layers = 3;
        assert!(Arch::new(&m, &h100(), 1).is_err());
        let mut g = h100();
        g.hbm_bandwidth_tbs = 0.0;
        assert!(Arch::new(&llama_8b(), &g, 1).unwrap_err().to_string().contains("bandwidth"));
    }
}
