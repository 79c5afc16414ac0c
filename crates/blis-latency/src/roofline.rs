//! Analytical roofline step time (latency.md §8.2): one forward pass per step, weights streamed
//! once, step = max(compute, memory) over the whole batch. No learned terms besides the alphas.

use blis_model::{GpuSpec, ModelSpec};

use crate::arch::Arch;
use crate::coefficients::validate_values;
use crate::error::LatencyError;
use crate::{LatencyModel, StepShape, floor_us};

/// Roofline model for one model × GPU × TP. All fields are per-GPU µs or FLOP counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Roofline {
    /// `[α0, α1, α2]`: queueing = α0 + α1·input, OTPT = α2.
    alpha: [f64; 3],
    /// FLOPs per new token independent of context (projections, RoPE, MLP).
    token_flops: f64,
    /// FLOPs per (new token × effective context token): QKᵀ, AV, softmax.
    ctx_flops: f64,
    /// µs per FLOP (÷TP, ÷peak·MFU) for prefill and decode.
    prefill_us_per_flop: f64,
    decode_us_per_flop: f64,
    /// Dense weight streaming, µs.
    static_weight_us: f64,
    /// Weight streaming of one routed expert across all MoE layers, µs (0 for dense models).
    expert_weight_us: f64,
    experts: f64,
    top_k: f64,
    /// KV write + activation traffic per new token, and KV read per context token, µs.
    token_bytes_us: f64,
    ctx_bytes_us: f64,
}

impl Roofline {
    /// Precomputes the per-token and per-context-token FLOP and byte costs.
    pub fn new(model: &ModelSpec, gpu: &GpuSpec, tp: u32, alpha: [f64; 3]) -> Result<Self, LatencyError> {
        validate_values("--alpha-coeffs", &alpha)?;
        check_mfu(gpu)?;
        let a = Arch::new(model, gpu, tp)?;
        let (l, d) = (a.layers, a.hidden);
        let head_dim = d / a.heads;
        let d_kv = a.kv_heads * head_dim;
        let mlp = a.dense_layers * 2.0 * (2.0 * d * a.dense_ffn)
            + a.moe_layers * 2.0 * (2.0 * d * a.expert_ffn) * a.top_k;
        let kv_per_token = 2.0 * l * a.kv_heads * head_dim * a.act_bytes;
        let bw = a.bytes_per_us * a.tp;
        Ok(Self {
            alpha,
            token_flops: l * (2.0 * (d * d + 2.0 * d * d_kv) + 2.0 * d * d) + l * 2.0 * d + mlp,
            ctx_flops: l * (4.0 * a.heads * head_dim + 5.0 * a.heads),
            prefill_us_per_flop: 1.0 / (a.tp * a.flops_per_us * gpu.mfu_prefill),
            decode_us_per_flop: 1.0 / (a.tp * a.flops_per_us * gpu.mfu_decode),
            static_weight_us: (l * (d * (d + 2.0 * d_kv) + d * d) + 2.0 * d * a.dense_ffn * a.dense_layers)
                * a.weight_bytes
                / bw,
            expert_weight_us: 2.0 * d * a.expert_ffn * a.moe_layers * a.weight_bytes / bw,
            experts: a.experts,
            top_k: a.top_k,
            token_bytes_us: (kv_per_token + l * d * a.act_bytes) / bw,
            ctx_bytes_us: kv_per_token / bw,
        })
    }

    /// Compute-bound time of the step, µs.
    pub fn compute_us(&self, shape: &StepShape) -> f64 {
        let prefill_flops: f64 =
            shape.prefills.iter().map(|p| self.chunk_flops(p.context_tokens, p.new_tokens)).sum();
        // flops(s, 1) is linear in s, so the decode sum needs only Σs.
        let decode_flops = self.token_flops * f64::from(shape.decode_requests)
            + self.ctx_flops * shape.decode_context_tokens as f64;
        prefill_flops * self.prefill_us_per_flop + decode_flops * self.decode_us_per_flop
    }

    /// Bandwidth-bound time of the step, µs.
    pub fn memory_us(&self, shape: &StepShape) -> f64 {
        let new_tokens = shape.prefill_tokens() as f64 + f64::from(shape.decode_requests);
        let context: f64 = shape.prefills.iter().map(|p| f64::from(p.context_tokens)).sum::<f64>()
            + shape.decode_context_tokens as f64;
        self.weight_us(new_tokens) + self.token_bytes_us * new_tokens + self.ctx_bytes_us * context
    }

    /// Weights streamed for a step of `b` new tokens: routed experts count as the expected
    /// number touched, E·(1 − ((E−k)/E)^b).
    fn weight_us(&self, b: f64) -> f64 {
        if self.expert_weight_us == 0.0 {
            return self.static_weight_us;
        }
        let touched = self.experts * (1.0 - ((self.experts - self.top_k) / self.experts).powf(b));
        self.static_weight_us + self.expert_weight_us * touched
    }

    /// FLOPs of a `t`-token chunk after `s` context tokens; a chunk attends on average to half
    /// of itself.
    fn chunk_flops(&self, s: u32, t: u32) -> f64 {
        let (s, t) = (f64::from(s), f64::from(t));
        let ctx = if t <= 1.0 { s } else { s + (t - 1.0) / 2.0 };
        self.token_flops * t + self.ctx_flops * t * ctx
    }
}

impl LatencyModel for Roofline {
    fn step_time_us(&self, shape: &StepShape) -> u64 {
        if shape.is_empty() {
            return 1;
        }
        floor_us(self.compute_us(shape).max(self.memory_us(shape))).max(1)
    }

    fn queueing_time_us(&self, input_tokens: u32) -> u64 {
        floor_us(self.alpha[0] + self.alpha[1] * f64::from(input_tokens))
    }

    fn output_token_processing_time_us(&self) -> u64 {
        floor_us(self.alpha[2])
    }

    fn post_decode_overhead_us(&self) -> u64 {
        0
    }
}

/// The MFU factors divide the peak; a zero would make every step infinite.
fn check_mfu(gpu: &GpuSpec) -> Result<(), LatencyError> {
    for (field, v) in [("mfu_prefill", gpu.mfu_prefill), ("mfu_decode", gpu.mfu_decode)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(LatencyError::Config(format!("GPU {}: {field} must be > 0, got {v}", gpu.name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{decodes, h100, llama_8b, mixtral, prefill};

    fn llama() -> Roofline {
        Roofline::new(&llama_8b(), &h100(), 1, [0.0; 3]).unwrap()
    }

    #[test]
    fn spec_anchors_llama_8b_h100_tp1() {
        let m = llama();
        assert_eq!(m.step_time_us(&decodes(1, 512)), 3065);
        assert!(m.memory_us(&decodes(1, 512)) > m.compute_us(&decodes(1, 512)));
        assert_eq!(m.step_time_us(&prefill(512)), 11884);
        assert_eq!(m.step_time_us(&prefill(2048)), 49409);
        assert_eq!(m.step_time_us(&decodes(256, 768)), 10767);
    }

    #[test]
    fn alphas_and_empty_step() {
        let m = Roofline::new(&llama_8b(), &h100(), 1, [100.0, 0.5, 7.9]).unwrap();
        assert_eq!(m.queueing_time_us(1000), 600);
        assert_eq!(m.output_token_processing_time_us(), 7);
        assert_eq!(m.post_decode_overhead_us(), 0);
        assert_eq!(m.step_time_us(&StepShape::default()), 1);
    }

    #[test]
    fn tp_halves_a_compute_bound_step() {
        let one = llama().step_time_us(&prefill(2048)) as f64;
        let two =
            Roofline::new(&llama_8b(), &h100(), 2, [0.0; 3]).unwrap().step_time_us(&prefill(2048)) as f64;
        assert!((one / two - 2.0).abs() < 1e-3);
    }

    #[test]
    fn moe_touches_more_experts_as_batch_grows() {
        let m = Roofline::new(&mixtral(), &h100(), 2, [0.0; 3]).unwrap();
        let one = m.weight_us(1.0);
        assert!((one - m.static_weight_us - 2.0 * m.expert_weight_us).abs() < 1e-9);
        assert!((m.weight_us(1e6) - m.static_weight_us - 8.0 * m.expert_weight_us).abs() < 1e-6);
    }

    #[test]
    fn negative_alpha_is_rejected() {
        let err = Roofline::new(&llama_8b(), &h100(), 1, [0.0, -1.0, 0.0]).unwrap_err();
        assert_eq!(err.to_string(), "--alpha-coeffs[1] = -1 must be finite and >= 0");
    }

    /// Step times pinned to the reference's `rooflineStepTime` (sim/latency/roofline.go)
    /// evaluated by hand on H100 (MFU 0.45 prefill / 0.30 decode), α = 0, truncated to µs:
    ///
    /// ```text
    /// Llama-2-7B TP1:
    ///   FLOPs per token at context 0 = 32·(2·(d²+2·d·d_kv) + 2·d²) + 32·2·d (RoPE)
    ///                                  + 32·2·(2·d·11008)          = 10 066 591 744
    ///   weights = 32·(d(d+2d_kv)+d²) + 32·2·d·11008 = 5 033 164 800 params · 2 B
    ///           = 10 066 329 600 B
    ///   16 decodes at 700:
    ///     compute = 16·(10 066 591 744 + 32·(4·32·700·128 + 5·32·700)) / (989.5e12·0.3)
    ///             = 562.6 µs
    ///     memory  = (10 066 329 600 + 16·(524 288·(1+700) + 32·4096·2)) / 3.35e12
    ///             = 4761.47 µs → 4761
    ///   one 566-token prefill:
    ///     compute = (566·10 066 591 744 + 32·(4·32·566·(0+282.5)·128 + 5·32·566·282.5))
    ///               / (989.5e12·0.45) = 12985.999 µs → 12985
    /// Llama-4-Scout FP8 TP2, 16 decodes at 700: the 24 MoE layers load
    ///   E·(1 − ((E−k)/E)^16) = 16·(1 − (15/16)^16) = 10.19 experts; weights 13 894 367 425 B
    ///   per GPU + dynamic 1 106 509 824 B → 4477.87 µs → 4477
    /// Mistral-Nemo TP1 (d_h = 5120/32 = 160), a 470-token chunk after 96 tokens plus 8
    ///   decodes at 800: compute-bound, 18694.2 µs → 18694
    /// ```
    #[test]
    fn pinned_to_the_reference_formula() {
        use crate::test_support::bundled;
        let at = |name: &str, tp: u32, shape: &StepShape| {
            Roofline::new(&bundled(name), &h100(), tp, [0.0; 3]).unwrap().step_time_us(shape)
        };
        assert_eq!(at("meta-llama/Llama-2-7b-hf", 1, &decodes(16, 700)), 4761);
        assert_eq!(at("meta-llama/Llama-2-7b-hf", 1, &prefill(566)), 12985);
        let scout = "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic";
        assert_eq!(at(scout, 2, &decodes(16, 700)), 4477);
        let chunk = crate::PrefillChunk { new_tokens: 470, context_tokens: 96, input_tokens: 566 };
        let mixed = StepShape { prefills: vec![chunk], decode_requests: 8, decode_context_tokens: 8 * 800 };
        assert_eq!(at("mistralai/Mistral-Nemo-Instruct-2407", 1, &mixed), 18694);
    }
}
