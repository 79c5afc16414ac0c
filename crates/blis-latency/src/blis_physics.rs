//! `blis-physics`: a roofline step-time model with a handful of global, physically meaningful
//! coefficients, fitted by BLIS against real vLLM runs (`blis calibrate`, docs/accuracy.md).
//!
//! Per GPU of the TP group, for one step computing `T` new tokens:
//!
//! ```text
//! bytes    = W_static/TP                        # attention, dense MLP, shared expert, lm_head
//!          + nMoE·nActive(T)·W_expert/TP         # routed experts actually touched this step
//!          + kv_bytes/TP · Σ context read        # KV of every attended token (decode + prefill)
//! nActive  = E·(1 − (1 − k/E)^T)                 # expected distinct experts hit by T tokens
//! flops    = 2·P_active·T/TP + 4·L·H·hd·Σ(q·ctx)/TP     (split into prefill and decode tokens)
//! memory   = bytes / BW
//! compute  = flops_prefill/(peak·mfu_prefill) + flops_decode/(peak·mfu_decode)
//!            (FP8 peak for FP8 weights; the MFUs are the GPU table's, so GPUs differ by data)
//! gpu      = max(c_mem·memory, c_comp·compute) + c_overlap·min(c_mem·memory, c_comp·compute)
//! comm     = [TP>1] · 2L·(c_ar·(TP−1) + c_ar_bw·T·d·bpp_a·2(TP−1)/TP / BW)
//! step     = gpu + comm + c_layer·L + c_moe·L_moe + c_req·n_req + c_step
//! queueing = α0 + c_in·prompt_tokens
//! ```
//!
//! Everything in µs. `c_mem` = 1/(achieved fraction of HBM bandwidth), `c_comp` = 1/MFU,
//! `c_ar` = all-reduce latency per pair of ring steps (a ring all-reduce takes TP−1
//! reduce-scatter and TP−1 all-gather steps, so TP 4 pays three times TP 2's latency),
//! `c_ar_bw` = all-reduce bytes priced at `c_ar_bw`× HBM time, `c_layer`/`c_req`/`c_step` =
//! launch and CPU overheads, `c_moe` = the extra fixed cost of an MoE layer (router, token
//! permutation, grouped-GEMM launches), `c_in` = front-end work per prompt token (tokenizing,
//! block hashing) before the request reaches the wait queue. The α triple keeps the shared
//! meaning (queueing before the wait queue, post-decode overhead, per-output-token overhead).
//! Measured TTFT is about three step times on every model; that is the engine's async scheduling
//! (a request arriving during a step joins the step after next, `--async-scheduling`), not a
//! latency-model term.
//!
//! Unlike trained-physics, MoE weights count only the experts a step touches (decode batches of
//! a few tokens read a fraction of them), interleaved MoE uses the checkpoint's layer layout,
//! `lm_head` is streamed every step, KV bytes use the real `head_dim`, and prefill chunks read the
//! cached context they attend to.

use blis_model::{GpuSpec, ModelSpec};

use crate::coefficients::{CoefficientFile, PhysicsCoefficients, shipped, validate_values};
use crate::error::LatencyError;
use crate::registry::LatencyOverrides;
use crate::{LatencyModel, StepShape, floor_us};

/// Name of the coefficient set (in the `trained_physics` map of a coefficient file) this model
/// reads; a single-set file (`{alpha, beta}` only) is used as is.
pub const COEFFICIENT_SET: &str = "blis-physics";

/// Number of β entries, ordered as [`BETA_NAMES`].
pub const NUM_BETAS: usize = 10;

/// Meaning of each β entry.
pub const BETA_NAMES: [&str; NUM_BETAS] = [
    "c_mem (1/bandwidth efficiency)",
    "c_comp (1/MFU)",
    "c_overlap (fraction of the smaller roofline side not hidden)",
    "c_ar (µs per all-reduce ring step pair: 2 all-reduces per layer × (TP−1))",
    "c_ar_bw (all-reduce bytes vs HBM time)",
    "c_layer (µs per layer per step)",
    "c_req (µs per scheduled request)",
    "c_step (µs per step)",
    "c_moe (µs per MoE layer per step)",
    "c_in (µs per prompt token before the wait queue)",
];

/// The blis-physics model for one model × GPU × TP.
#[derive(Debug, Clone, PartialEq)]
pub struct BlisPhysics {
    alpha: [f64; 3],
    beta: [f64; NUM_BETAS],
    /// Non-expert weight bytes per GPU over bandwidth, µs.
    static_weight_us: f64,
    /// One routed expert over all MoE layers, per GPU, µs.
    expert_weight_us: f64,
    experts: f64,
    top_k: f64,
    /// KV bytes of one context token per GPU over bandwidth, µs.
    kv_us: f64,
    /// Linear-layer FLOPs of one token per GPU over peak, µs.
    token_flops_us: f64,
    /// Attention FLOPs of one (query, key) pair per GPU over peak, µs.
    attn_flops_us: f64,
    /// The GPU's achievable fraction of peak FLOPs in prefill and in decode.
    mfu_prefill: f64,
    mfu_decode: f64,
    /// All-reduce latency steps per step (2 all-reduces per layer, each TP − 1 ring steps).
    allreduces: f64,
    /// All-reduce bytes of one token (all layers) over HBM bandwidth, µs.
    allreduce_us_per_token: f64,
    layers: f64,
    moe_layers: f64,
}

impl BlisPhysics {
    pub fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        tp: u32,
        coeffs: &PhysicsCoefficients,
    ) -> Result<Self, LatencyError> {
        let a = crate::arch::Arch::new(model, gpu, tp)?;
        let tpf = f64::from(tp);
        let d = model.hidden_size as f64;
        let layers = model.num_layers as f64;
        let head_dim =
            if model.head_dim > 0 { model.head_dim as f64 } else { d / model.num_attention_heads as f64 };
        let q_dim = model.num_attention_heads as f64 * head_dim;
        let kv_dim = model.num_kv_heads as f64 * head_dim;
        let is_moe = model.is_moe();
        let moe_layers = if is_moe { model.weight_moe_layers.min(model.num_layers) as f64 } else { 0.0 };
        let dense_layers = layers - moe_layers;
        let attn_params = d * (q_dim + 2.0 * kv_dim) + q_dim * d;
        let dense_mlp = 3.0 * d * model.intermediate_size as f64;
        let expert_mlp = 3.0 * d * model.expert_intermediate_size as f64;
        let shared_mlp = 3.0 * d * model.shared_expert_intermediate_size as f64;
        let wb = model.weight_bytes;
        // lm_head stays in the compute dtype in quantized checkpoints.
        let lm_head_bytes = model.vocab_size as f64 * d * model.compute_bytes;
        let static_bytes =
            (layers * attn_params + dense_layers * dense_mlp + moe_layers * shared_mlp) * wb + lm_head_bytes;
        let bw = a.bytes_per_us;
        // KV heads are replicated when there are fewer than TP of them.
        let kv_heads_per_gpu = (model.num_kv_heads as f64 / tpf).max(1.0);
        let kv_token_bytes = if model.mla_kv_dim > 0 {
            layers * model.mla_kv_dim as f64 * model.compute_bytes
        } else {
            2.0 * layers * kv_heads_per_gpu * head_dim * model.compute_bytes
        };
        let top_k = if is_moe { (model.experts_per_token as f64).max(1.0) } else { 0.0 };
        let active_params = layers * attn_params
            + dense_layers * dense_mlp
            + moe_layers * (shared_mlp + top_k * expert_mlp)
            + model.vocab_size as f64 * d;
        let peak = a.flops_per_us;
        let mut m = Self {
            alpha: [0.0; 3],
            beta: [0.0; NUM_BETAS],
            static_weight_us: static_bytes / tpf / bw,
            expert_weight_us: moe_layers * expert_mlp * wb / tpf / bw,
            experts: if is_moe { model.num_experts as f64 } else { 0.0 },
            top_k,
            kv_us: kv_token_bytes / bw,
            token_flops_us: 2.0 * active_params / tpf / peak,
            attn_flops_us: 4.0 * layers * q_dim / tpf / peak,
            mfu_prefill: positive_or_one(gpu.mfu_prefill),
            mfu_decode: positive_or_one(gpu.mfu_decode),
            allreduces: if tp > 1 { 2.0 * layers * (tpf - 1.0) } else { 0.0 },
            allreduce_us_per_token: if tp > 1 {
                2.0 * layers * d * model.compute_bytes * 2.0 * (tpf - 1.0) / tpf / bw
            } else {
                0.0
            },
            layers,
            moe_layers,
        };
        m.set_coefficients(coeffs)?;
        Ok(m)
    }

    /// Same physics, other coefficients.
    pub fn with_coefficients(&self, coeffs: &PhysicsCoefficients) -> Result<Self, LatencyError> {
        let mut next = self.clone();
        next.set_coefficients(coeffs)?;
        Ok(next)
    }

    fn set_coefficients(&mut self, coeffs: &PhysicsCoefficients) -> Result<(), LatencyError> {
        validate_values("alpha", &coeffs.alpha)?;
        validate_values("beta", &coeffs.beta)?;
        self.beta = coeffs.beta.as_slice().try_into().map_err(|_| {
            LatencyError::Coefficients(format!(
                "blis-physics needs {NUM_BETAS} beta values, got {}",
                coeffs.beta.len()
            ))
        })?;
        self.alpha = coeffs.alpha;
        Ok(())
    }

    /// Expected distinct routed experts touched by `tokens` tokens (uniform routing).
    pub fn active_experts(&self, tokens: f64) -> f64 {
        if self.experts < 2.0 || tokens <= 0.0 {
            return 0.0;
        }
        let miss = (1.0 - self.top_k / self.experts).max(0.0);
        self.experts * (1.0 - miss.powf(tokens))
    }

    /// (memory µs, compute µs) of a step at peak bandwidth / the GPU's achievable FLOPs.
    pub fn roofline_us(&self, shape: &StepShape) -> (f64, f64) {
        let decode_tokens = f64::from(shape.decode_requests);
        let decode_pairs = shape.decode_context_tokens as f64 + decode_tokens;
        let (mut prefill_tokens, mut prefill_pairs, mut prefill_kv) = (0.0, 0.0, 0.0);
        for p in &shape.prefills {
            let t = f64::from(p.new_tokens);
            let ctx = f64::from(p.context_tokens);
            prefill_tokens += t;
            prefill_kv += ctx + t;
            prefill_pairs += t * (ctx + (t + 1.0) / 2.0);
        }
        let tokens = decode_tokens + prefill_tokens;
        let memory = self.static_weight_us
            + self.active_experts(tokens) * self.expert_weight_us
            + self.kv_us * (decode_pairs + prefill_kv);
        let compute = (self.token_flops_us * prefill_tokens + self.attn_flops_us * prefill_pairs)
            / self.mfu_prefill
            + (self.token_flops_us * decode_tokens + self.attn_flops_us * decode_pairs) / self.mfu_decode;
        (memory, compute)
    }

    /// Step time in fractional µs.
    pub fn step_us(&self, shape: &StepShape) -> f64 {
        let b = &self.beta;
        let (memory, compute) = self.roofline_us(shape);
        let (m, c) = (b[0] * memory, b[1] * compute);
        let gpu = m.max(c) + b[2] * m.min(c);
        let tokens = f64::from(shape.decode_requests) + shape.prefill_tokens() as f64;
        let comm = self.allreduces * b[3] + b[4] * self.allreduce_us_per_token * tokens;
        gpu + comm + b[5] * self.layers + b[8] * self.moe_layers + b[6] * shape.num_requests() as f64 + b[7]
    }
}

impl LatencyModel for BlisPhysics {
    fn step_time_us(&self, shape: &StepShape) -> u64 {
        if shape.is_empty() {
            return 1;
        }
        floor_us(self.step_us(shape)).max(1)
    }

    /// The API server's work before the scheduler sees a request grows with the prompt
    /// (tokenizing it, hashing its blocks), on top of a fixed cost.
    fn queueing_time_us(&self, input_tokens: u32) -> u64 {
        floor_us(self.alpha[0] + self.beta[9] * f64::from(input_tokens))
    }

    fn output_token_processing_time_us(&self) -> u64 {
        floor_us(self.alpha[2])
    }

    fn post_decode_overhead_us(&self) -> u64 {
        floor_us(self.alpha[1])
    }
}

/// A GPU-table efficiency, or 1 (peak) when the table leaves it unset.
fn positive_or_one(mfu: f64) -> f64 {
    if mfu.is_finite() && mfu > 0.0 { mfu.min(1.0) } else { 1.0 }
}

/// Builds blis-physics: coefficients from the file's `blis-physics` set (or a single-set file),
/// then any `--alpha-coeffs` / `--beta-coeffs` override.
pub fn build(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    overrides: &LatencyOverrides,
) -> Result<BlisPhysics, LatencyError> {
    let loaded;
    let file: &CoefficientFile = match &overrides.coefficients_file {
        Some(path) => {
            loaded = CoefficientFile::load(path)?;
            &loaded
        }
        None => shipped(),
    };
    let single_set = file.trained_physics.len() == 1 && file.trained_physics.contains_key("file");
    let mut coeffs = if single_set { file.default_set().clone() } else { file.set(COEFFICIENT_SET)?.clone() };
    if let Some(alpha) = &overrides.alpha {
        coeffs.alpha = alpha.as_slice().try_into().map_err(|_| {
            LatencyError::Coefficients(format!("--alpha-coeffs needs 3 values, got {}", alpha.len()))
        })?;
        validate_values("--alpha-coeffs", &coeffs.alpha)?;
    }
    if let Some(beta) = &overrides.beta {
        if beta.len() != NUM_BETAS {
            return Err(LatencyError::Coefficients(format!(
                "--beta-coeffs needs {NUM_BETAS} values for blis-physics, got {}",
                beta.len()
            )));
        }
        validate_values("--beta-coeffs", beta)?;
        coeffs.beta.clone_from(beta);
    }
    BlisPhysics::new(model, gpu, tp, &coeffs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrefillChunk;
    use crate::test_support::{decodes, h100, llama_8b, scout_like};

    fn unit(model: &ModelSpec, tp: u32) -> BlisPhysics {
        let c = PhysicsCoefficients {
            alpha: [0.0; 3],
            beta: vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        BlisPhysics::new(model, &h100(), tp, &c).unwrap()
    }

    #[test]
    fn llama_8b_decode_is_weight_bound_at_peak_bandwidth() {
        let m = unit(&llama_8b(), 1);
        // 8.03 B params in bf16 minus the embedding table (looked up, not streamed) at 3.35 TB/s.
        let (mem, comp) = m.roofline_us(&decodes(1, 0));
        let streamed = 16.06e9 - 128_256.0 * 4096.0 * 2.0;
        assert!((mem - streamed / 3.35e6).abs() / mem < 0.01, "{mem}");
        assert!(comp < mem / 30.0, "one token is bandwidth-bound even at decode MFU");
        // KV of Llama-3.1-8B is 128 KiB per token.
        let (mem2, _) = m.roofline_us(&decodes(1, 1000));
        assert!(((mem2 - mem) - 1000.0 * 131_072.0 / 3.35e6).abs() < 1.0);
    }

    #[test]
    fn moe_reads_only_touched_experts() {
        let m = unit(&scout_like(), 2);
        assert!((m.active_experts(1.0) - 1.0).abs() < 1e-12);
        assert!(m.active_experts(10.0) < 16.0 && m.active_experts(10.0) > 7.0);
        assert!((m.active_experts(2048.0) - 16.0).abs() < 1e-6);
        let (one, _) = m.roofline_us(&decodes(1, 0));
        let (many, _) = m.roofline_us(&decodes(64, 0));
        assert!(many > 2.0 * one);
    }

    #[test]
    fn prefill_is_compute_bound_and_overheads_add() {
        let c = PhysicsCoefficients {
            alpha: [1.0, 2.0, 3.0],
            beta: vec![1.0, 1.0, 0.0, 10.0, 0.0, 1.0, 5.0, 100.0, 0.0, 0.5],
        };
        let m = BlisPhysics::new(&llama_8b(), &h100(), 2, &c).unwrap();
        let chunk = PrefillChunk { new_tokens: 2048, context_tokens: 0, input_tokens: 2048 };
        let shape = StepShape { prefills: vec![chunk], ..StepShape::default() };
        let (mem, comp) = m.roofline_us(&shape);
        assert!(comp > mem);
        let expect = comp + 64.0 * 10.0 + 32.0 + 5.0 + 100.0;
        assert!((m.step_us(&shape) - expect).abs() < 1e-6);
        assert_eq!(m.step_time_us(&StepShape::default()), 1);
        assert_eq!(
            (m.queueing_time_us(9), m.post_decode_overhead_us(), m.output_token_processing_time_us()),
            (5, 2, 3)
        );
    }

    #[test]
    fn all_reduce_latency_grows_with_the_ring() {
        let c = PhysicsCoefficients {
            alpha: [0.0; 3],
            beta: vec![0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        };
        let step = |tp| BlisPhysics::new(&llama_8b(), &h100(), tp, &c).unwrap().step_us(&decodes(4, 100));
        // 32 layers × 2 all-reduces × (TP − 1) ring step pairs × 10 µs; none at TP 1.
        assert_eq!((step(1), step(2), step(4)), (0.0, 640.0, 1920.0));
    }

    #[test]
    fn shipped_set_builds_and_overrides_check_length() {
        let m = build(&llama_8b(), &h100(), 1, &LatencyOverrides::default()).unwrap();
        assert!(m.step_time_us(&decodes(8, 512)) > 1000);
        let o = LatencyOverrides { beta: Some(vec![1.0; 3]), ..Default::default() };
        assert!(build(&llama_8b(), &h100(), 1, &o).unwrap_err().to_string().contains("needs 10"));
    }
}
