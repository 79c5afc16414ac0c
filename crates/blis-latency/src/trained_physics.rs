//! Trained-physics step time (latency.md §8.3): roofline-style basis terms in µs, each scaled by a
//! learned β, plus fixed per-layer / per-request / per-step overheads.
//!
//! The step time is linear in the β vector, so `basis_terms` is all a least-squares fitter needs:
//! with 11 coefficients, `step = Σ βᵢ · basis_terms(shape)[i]` exactly.
//!
//! Fitting: measured data are request-level (TTFT/ITL/E2E means), not step times. Since
//! `ITL ≈ mean decode-step time + α2` and the step time is linear in β, a fitter can simulate with
//! the current β, average `basis_terms` over the steps each request sees, solve the linear
//! least-squares problem for β (non-negative), and iterate until the batch composition stops
//! moving. [`TrainedPhysics::with_coefficients`] swaps β without recomputing the physics.

use blis_model::{GpuSpec, ModelSpec};

use crate::arch::Arch;
use crate::coefficients::{MAX_PHYSICS_BETAS, PhysicsCoefficients};
use crate::error::LatencyError;
use crate::{LatencyModel, StepShape, floor_us};

/// Number of basis terms, equal to the full β length.
pub const NUM_BASIS_TERMS: usize = MAX_PHYSICS_BETAS;

/// Basis term names, index-aligned with β = [β1a, β2a, β3, β4, β5, β6, β7, β8, β1b, β2b, βEP].
pub const BASIS_NAMES: [&str; NUM_BASIS_TERMS] = [
    "t_pf_compute_us",
    "t_dc_compute_us",
    "t_weight_us",
    "t_tp_us",
    "layers",
    "requests",
    "step",
    "interleaved_moe_layers",
    "t_pf_kv_us",
    "t_dc_kv_us",
    "t_moe_dispatch_us",
];

/// KV-cache element size the reference fixes at 2 bytes regardless of dtype.
const KV_BYTES: f64 = 2.0;

/// Trained-physics latency model for one model × GPU × TP (DP = 1).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedPhysics {
    alpha: [f64; 3],
    /// β padded to 11 entries (missing β8/β1b/β2b = 0, βEP = β4).
    beta: [f64; NUM_BASIS_TERMS],
    prefill_split: bool,
    decode_split: bool,
    /// Projection + FFN compute per new token, µs.
    token_compute_us: f64,
    /// Attention compute per (token × context token), µs.
    attn_us: f64,
    /// KV bytes moved per token (written or read), µs.
    kv_us: f64,
    /// TP all-reduce per token, µs (0 at TP = 1).
    tp_us: f64,
    weight_us: f64,
    layers: f64,
    interleaved_moe_layers: f64,
}

impl TrainedPhysics {
    /// Validates the inputs (heads and KV heads divisible by TP) and precomputes every per-model
    /// constant so a step costs a few flops plus one pass over the prefill chunks.
    pub fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        tp: u32,
        coeffs: &PhysicsCoefficients,
    ) -> Result<Self, LatencyError> {
        check_tp_divides(model, tp)?;
        let a = Arch::new(model, gpu, tp)?;
        // Integer division, as the reference does (`head_dim` from config only affects capacity).
        let head_dim = (model.hidden_size / model.num_attention_heads) as f64;
        let d_kv = a.kv_heads * head_dim;
        let attn_w = a.hidden * (2.0 * a.hidden + 2.0 * d_kv);
        let proj = a.layers * 2.0 * attn_w / a.tp;
        let heads_per_gpu = a.heads / a.tp;
        let mut model_consts = Self {
            alpha: [0.0; 3],
            beta: [0.0; NUM_BASIS_TERMS],
            prefill_split: false,
            decode_split: false,
            token_compute_us: (proj + ffn_flops_per_token(&a)) / a.flops_per_us,
            attn_us: a.layers * 4.0 * heads_per_gpu * head_dim / a.flops_per_us,
            kv_us: a.layers * 2.0 * (d_kv / a.tp) * KV_BYTES / a.bytes_per_us,
            tp_us: all_reduce_us_per_token(&a),
            weight_us: weight_bytes(&a, attn_w) / a.bytes_per_us,
            layers: a.layers,
            interleaved_moe_layers: if a.interleaved_moe { a.moe_layers } else { 0.0 },
        };
        model_consts.set_coefficients(coeffs)?;
        Ok(model_consts)
    }

    /// Same model with another coefficient set (cheap: the physics constants are reused), so a
    /// fitter can evaluate candidate vectors without rebuilding.
    pub fn with_coefficients(&self, coeffs: &PhysicsCoefficients) -> Result<Self, LatencyError> {
        let mut next = self.clone();
        next.set_coefficients(coeffs)?;
        Ok(next)
    }

    fn set_coefficients(&mut self, coeffs: &PhysicsCoefficients) -> Result<(), LatencyError> {
        coeffs.validate("")?;
        let n = coeffs.beta.len();
        self.alpha = coeffs.alpha;
        self.beta = [0.0; NUM_BASIS_TERMS];
        self.beta[..n].copy_from_slice(&coeffs.beta);
        if n < NUM_BASIS_TERMS {
            // Both run over the NVLink fabric β4 calibrates.
            self.beta[10] = self.beta[3];
        }
        self.prefill_split = n >= 9;
        self.decode_split = n >= 10;
        Ok(())
    }

    /// The raw terms β multiplies, ordered as [`BASIS_NAMES`] (µs, or counts for the overheads).
    pub fn basis_terms(&self, shape: &StepShape) -> [f64; NUM_BASIS_TERMS] {
        let (prefill_tokens, attn_work) = shape.prefills.iter().fold((0.0, 0.0), |(tok, work), p| {
            let t = f64::from(p.new_tokens);
            // The reference uses the full prompt length here, not the progress index.
            (tok + t, work + t * (f64::from(p.input_tokens) + t / 2.0))
        });
        let decodes = f64::from(shape.decode_requests);
        let decode_ctx = shape.decode_context_tokens as f64;
        [
            self.token_compute_us * prefill_tokens + self.attn_us * attn_work,
            self.token_compute_us * decodes + self.attn_us * decode_ctx,
            self.weight_us,
            self.tp_us * (prefill_tokens + decodes),
            self.layers,
            shape.num_requests() as f64,
            1.0,
            self.interleaved_moe_layers,
            self.kv_us * prefill_tokens,
            self.kv_us * (decode_ctx + decodes),
            0.0, // MoE dispatch only exists at DP > 1, which is not modelled.
        ]
    }

    /// Step time in fractional µs from precomputed basis terms, honouring the fewer-β rules.
    pub fn combine(&self, t: &[f64; NUM_BASIS_TERMS]) -> f64 {
        let b = &self.beta;
        let prefill = if self.prefill_split { b[0] * t[0] + b[8] * t[8] } else { b[0] * t[0].max(t[8]) };
        let decode = if self.decode_split { b[1] * t[1] + b[9] * t[9] } else { b[1] * t[1].max(t[9]) };
        prefill + decode + (2..8).map(|i| b[i] * t[i]).sum::<f64>() + b[10] * t[10]
    }

    /// The weight-streaming time every step pays, µs.
    pub fn weight_load_us(&self) -> f64 {
        self.weight_us
    }
}

impl LatencyModel for TrainedPhysics {
    fn step_time_us(&self, shape: &StepShape) -> u64 {
        if shape.is_empty() {
            return 1;
        }
        floor_us(self.combine(&self.basis_terms(shape))).max(1)
    }

    fn queueing_time_us(&self, _input_tokens: u32) -> u64 {
        floor_us(self.alpha[0])
    }

    fn output_token_processing_time_us(&self) -> u64 {
        floor_us(self.alpha[2])
    }

    fn post_decode_overhead_us(&self) -> u64 {
        floor_us(self.alpha[1])
    }
}

/// Heads must split evenly over the TP group, as vLLM requires.
fn check_tp_divides(model: &ModelSpec, tp: u32) -> Result<(), LatencyError> {
    let tp64 = u64::from(tp.max(1));
    for (field, n) in
        [("num_attention_heads", model.num_attention_heads), ("num_key_value_heads", model.num_kv_heads)]
    {
        if n % tp64 != 0 {
            return Err(LatencyError::Config(format!(
                "--tp {tp} does not divide {field} ({n}) of model {}",
                model.name
            )));
        }
    }
    Ok(())
}

/// FFN FLOPs per token on one GPU: dense layers TP-sharded; routed experts see kEff/TP of each
/// token (balanced placement); shared experts run for every token, TP-sharded.
fn ffn_flops_per_token(a: &Arch) -> f64 {
    let k_eff = a.top_k.max(1.0);
    let dense = a.dense_layers * 6.0 * a.hidden * a.dense_ffn / a.tp;
    let routed = a.moe_layers * (k_eff / a.tp) * 6.0 * a.hidden * a.expert_ffn;
    let shared = a.moe_layers * 6.0 * a.hidden * a.shared_ffn / a.tp;
    dense + routed + shared
}

/// Weight bytes one GPU streams per step: attention and dense FFN /TP, E/TP routed experts, and
/// the shared expert /TP.
fn weight_bytes(a: &Arch, attn_w: f64) -> f64 {
    let attn = a.layers * attn_w / a.tp;
    let dense = a.dense_layers * 3.0 * a.hidden * a.dense_ffn / a.tp;
    let routed = a.moe_layers * (a.experts / a.tp) * 3.0 * a.hidden * a.expert_ffn;
    let shared = a.moe_layers * 3.0 * a.hidden * a.shared_ffn / a.tp;
    (attn + dense + routed + shared) * a.weight_bytes
}

/// Ring all-reduce µs per token: one unit per layer (attention), one per dense FFN, one per MoE
/// FFN (DP = 1, TP > 1); each moves d·bpp_a·2·(TP−1)/TP bytes.
fn all_reduce_us_per_token(a: &Arch) -> f64 {
    if a.tp <= 1.0 {
        return 0.0;
    }
    let units = a.layers + a.dense_layers + if a.is_moe { a.moe_layers } else { 0.0 };
    units * a.hidden * a.act_bytes * 2.0 * (a.tp - 1.0) / a.tp / a.bytes_per_us
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{decodes, h100, llama_8b, mixtral, prefill, scout_like};

    fn reference(tp: u32) -> TrainedPhysics {
        TrainedPhysics::new(&llama_8b(), &h100(), tp, &PhysicsCoefficients::reference()).unwrap()
    }

    #[test]
    fn spec_anchors_llama_8b_h100_tp1() {
        let m = reference(1);
        assert!((m.weight_load_us() - 4166.76).abs() < 0.01, "{}", m.weight_load_us());
        assert_eq!(m.step_time_us(&decodes(1, 512)), 6873);
        assert_eq!(m.step_time_us(&decodes(64, 768)), 10862);
        assert_eq!(m.step_time_us(&decodes(256, 768)), 22958);
        assert_eq!(m.step_time_us(&prefill(512)), 7965);
        assert_eq!(m.step_time_us(&prefill(2048)), 11737);
    }

    #[test]
    fn alphas_map_to_overheads() {
        let m = reference(1);
        assert_eq!(m.queueing_time_us(10_000), 15563);
        assert_eq!(m.post_decode_overhead_us(), 777);
        assert_eq!(m.output_token_processing_time_us(), 45);
        assert_eq!(m.step_time_us(&StepShape::default()), 1);
    }

    #[test]
    fn eleven_betas_make_step_a_dot_product() {
        let m = reference(2);
        let shape = StepShape { decode_requests: 3, decode_context_tokens: 900, ..prefill(300) };
        let t = m.basis_terms(&shape);
        let dot: f64 = t.iter().zip(PhysicsCoefficients::reference().beta).map(|(x, b)| x * b).sum();
        assert!((m.combine(&t) - dot).abs() < 1e-9);
        assert!(t[3] > 0.0, "TP=2 has an all-reduce term");
    }

    #[test]
    fn fewer_betas_use_max_forms_and_default_beta_ep() {
        let base = reference(1);
        let seven = PhysicsCoefficients { alpha: [0.0; 3], beta: vec![1.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0] };
        let m = base.with_coefficients(&seven).unwrap();
        assert_eq!(m.beta[10], 2.0);
        let t = m.basis_terms(&decodes(1, 512));
        assert!((m.combine(&t) - t[1].max(t[9])).abs() < 1e-9);
        let t = m.basis_terms(&prefill(512));
        assert!((m.combine(&t) - t[0].max(t[8])).abs() < 1e-9);
    }

    #[test]
    fn tp_must_divide_heads() {
        let err = TrainedPhysics::new(&llama_8b(), &h100(), 3, &PhysicsCoefficients::reference())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--tp 3 does not divide num_attention_heads (32)"), "{err}");
        let err = TrainedPhysics::new(&llama_8b(), &h100(), 16, &PhysicsCoefficients::reference())
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_key_value_heads (8)"), "{err}");
    }

    /// Step times pinned to the reference's `TrainedPhysicsModel.StepTime`
    /// (sim/latency/trained_physics_model.go) evaluated by hand with its shipped coefficients
    /// (β = [0.152128, 0, 1.36252915, 0.752037, 32.09546717, 4.41684444, 126.024825,
    /// 481.8613888, 0, 1.94710771], βEP = β4) on H100 (989.5 TFLOP/s, 1979 FP8, 3.35 TB/s),
    /// d_h = hidden/heads (integer), KV at 2 bytes, result truncated to µs:
    ///
    /// ```text
    /// Llama-2-7B TP1 (MHA, d_kv = 4096), 16 decodes at context 700:
    ///   T_dc_compute = (32·2·16·4096·(2·4096+2·4096) + 32·4·32·(16·700)·128
    ///                   + 32·16·6·4096·11008) / 989.5e6          = 215.37 µs
    ///   T_dc_kv      = 32·2·4096·2·(11200+16) / 3.35e6           = 1755.35 µs
    ///   T_weight     = (32·4096·16384 + 32·3·4096·11008)·2 / 3.35e6 = 3866.27 µs
    ///   step = 0·215.37 + 1.9471·1755.35 + 1.3625·3866.27 + 32.095·32 + 4.4168·16 + 126.02
    ///        = 9909.5 → 9909
    /// Same model, one fresh 566-token prefill:
    ///   T_pf_compute = (32·2·566·4096·16384 + 32·4·32·566·(566+283)·128
    ///                   + 32·566·6·4096·11008) / 989.5e6         = 7663.24 µs
    ///   step = 0.152128·7663.24 + 1.3625·3866.27 + 1027.06 + 4.42 + 126.02 = 7591.2 → 7591
    /// Llama-4-Scout FP8 TP2, one decode at 512 (FP8 peak; 24 MoE + 24 dense layers; no shared
    /// expert, as Llama-4 declares none):
    ///   T_weight = (48·5120·(10240+2048)/2 + 24·(16/2)·3·5120·8192
    ///               + 24·3·5120·16384/2)·1 / 3.35e6                = 8563.89 µs
    ///   step = 1.9471·15.05 + 1.3625·8563.89 + 0.752·0.293 + 32.095·48 + 4.42 + 126.02
    ///          + 481.86·24 = 24933.8 → 24933
    /// Mistral-Nemo TP2 (head_dim 128 declared, but d_h = 5120/32 = 160 as the reference
    /// computes it), 16 decodes at 700: T_dc_compute 189.45, T_dc_kv 342.84, T_weight 3411.79,
    ///   T_tp = 2·40·16·5120·2·2·(1/2) / 3.35e6 = 3.913 µs; step = 6799.7 → 6799
    /// ```
    #[test]
    fn pinned_to_the_reference_formula() {
        use crate::test_support::bundled;
        let c = PhysicsCoefficients::reference();
        let h = h100();
        let at = |name: &str, tp: u32, shape: &StepShape| {
            TrainedPhysics::new(&bundled(name), &h, tp, &c).unwrap().step_time_us(shape)
        };
        assert_eq!(at("meta-llama/Llama-2-7b-hf", 1, &decodes(16, 700)), 9909);
        assert_eq!(at("meta-llama/Llama-2-7b-hf", 1, &prefill(566)), 7591);
        let scout = "RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic";
        assert_eq!(at(scout, 2, &decodes(1, 512)), 24933);
        assert_eq!(at("mistralai/Mistral-Nemo-Instruct-2407", 2, &decodes(16, 700)), 6799);
        let m = TrainedPhysics::new(&bundled("meta-llama/Llama-2-7b-hf"), &h, 1, &c).unwrap();
        assert!((m.weight_load_us() - 3866.272).abs() < 1e-3, "{}", m.weight_load_us());
    }

    #[test]
    fn interleaved_moe_pays_beta8_per_moe_layer() {
        let c = PhysicsCoefficients::reference();
        let scout = TrainedPhysics::new(&scout_like(), &h100(), 4, &c).unwrap();
        assert_eq!(scout.basis_terms(&decodes(1, 10))[7], 24.0);
        let mix = TrainedPhysics::new(&mixtral(), &h100(), 2, &c).unwrap();
        assert_eq!(mix.basis_terms(&decodes(1, 10))[7], 0.0);
    }

    #[test]
    fn moe_weights_count_all_experts_over_tp() {
        let c = PhysicsCoefficients::reference();
        let mix = TrainedPhysics::new(&mixtral(), &h100(), 2, &c).unwrap();
        // Attention /TP plus 8 experts × 3·d·I over TP = 2, bf16.
        let attn = 32.0 * 4096.0 * (2.0 * 4096.0 + 2.0 * 1024.0) / 2.0;
        let experts = 32.0 * 4.0 * 3.0 * 4096.0 * 14336.0;
        let expect = (attn + experts) * 2.0 / 3.35e6;
        assert!((mix.weight_load_us() - expect).abs() < 1e-6);
    }
}
