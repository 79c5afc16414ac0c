//! `blis-physics`: a per-kernel roofline step-time model whose hardware terms come from public
//! specifications and public kernel measurements, plus a handful of global overheads fitted by
//! BLIS against real vLLM runs (`blis calibrate`, docs/accuracy.md, docs/hardware.md).
//!
//! Per GPU of the TP group, for one step computing `T` new tokens (decode and prefill together):
//!
//! ```text
//! kernel(B, F) = ((c_mem·B/(η_bw·BW))^p + (c_comp·F/(η_fl·peak))^p)^(1/p)
//!                # B bytes moved, F FLOPs; a soft roofline (p = 1.47) that reproduces measured
//!                # GEMM times across A100, H100 and A40 (η_bw 0.87, η_fl 0.75; docs/hardware.md)
//! gemm(K, N)   = kernel(K·N·wb + T·(K+N)·ab, 2·T·K·N)      # one weight matrix, sharded by TP
//! layer        = gemm(qkv) + gemm(o) + mlp + attention + elementwise
//! mlp          = gemm(up+gate) + gemm(down)                 # dense layers
//!              | shared-expert gemms + kernel(nActive(T)·W_expert·wb, 2·T·k·P_expert)  # MoE layers
//! nActive(T)   = E·(1 − (1 − k/E)^T)                        # expected distinct experts touched
//! attention    = kernel_kv(kv_bytes·Σ context read, 4·q_dim/TP·Σ(query, key) pairs)
//!                # kernel with c_kv in place of c_mem: KV-cache reads are priced apart
//! elementwise  = bytes of norms, residual adds, RoPE and the gated activation / (η_bw·BW)
//! gpu          = Σ layers + gemm(lm_head) for the step's sequences
//! comm         = [TP>1] · 2L · (c_ar + 2(TP−1)/TP · T·d·ab / (η_link·link))   # NCCL all-reduce
//! step         = gpu + comm + c_layer·L + c_moe·L_moe + c_req·n_req + c_step
//! queueing     = α0 + 1.1 µs·prompt_tokens                  # tokenizing (public measurement)
//! ```
//!
//! Everything in µs. `BW`, `peak` (dense BF16, or dense FP8 for 1-byte weights on a GPU with FP8)
//! and `link` (one-way GPU-to-GPU bandwidth) are datasheet figures of the GPU table; `η_bw`,
//! `η_fl`, `p` and `η_link` are fixed constants derived from public kernel and NCCL measurements
//! (docs/hardware.md, tools/derive_kernel_efficiency.py), the same for every GPU, so a GPU enters
//! only through its specifications: the reference's per-GPU MFU columns are not used.
//!
//! Fitted (global) coefficients: `c_mem`, `c_comp` (≈ 1 when vLLM's kernels match the measured
//! ones), `c_kv` (KV-cache reads of the attention kernel; kept at 1, i.e. at the weight stream's
//! η_bw, not fitted: docs/hardware.md), `c_ar` (fixed latency of one all-reduce: the measured NCCL latency does not grow with
//! the GPU count on NVSwitch systems), `c_layer`/`c_req`/`c_step` (launch and CPU overheads),
//! `c_moe` (router, token permutation and grouped-GEMM launches of an MoE layer). The α triple
//! keeps the shared meaning (fixed front-end delay, post-decode overhead, per-output-token
//! overhead). Measured TTFT is about three step times on every model; that is the engine's async
//! scheduling (`--async-scheduling`), not a latency-model term.

use std::sync::atomic::{AtomicU64, Ordering};

use blis_model::{GpuSpec, Interconnect, ModelSpec};

use crate::coefficients::{CoefficientFile, PhysicsCoefficients, shipped, validate_values};
use crate::error::LatencyError;
use crate::registry::LatencyOverrides;
use crate::{LatencyModel, StepShape, floor_us};

/// Name of the coefficient set (in the `trained_physics` map of a coefficient file) this model
/// reads; a single-set file (`{alpha, beta}` only) is used as is.
pub const COEFFICIENT_SET: &str = "blis-physics";

/// Number of β entries, ordered as [`BETA_NAMES`]. A 7-entry β (the set before `c_kv` existed)
/// is still accepted and reads the KV cache at `c_mem`.
pub const NUM_BETAS: usize = 8;

/// Meaning of each β entry.
pub const BETA_NAMES: [&str; NUM_BETAS] = [
    "c_mem (× bytes / (η_bw·HBM bandwidth))",
    "c_comp (× FLOPs / (η_fl·dense peak))",
    "c_ar (µs of fixed latency per all-reduce, 2 per layer)",
    "c_layer (µs per layer per step)",
    "c_req (µs per scheduled request)",
    "c_step (µs per step)",
    "c_moe (µs per MoE layer per step)",
    "c_kv (× KV-cache bytes / (η_bw·HBM bandwidth), attention)",
];

/// Achieved fraction of HBM bandwidth by a weight-streaming kernel (pooled fit to measured
/// GEMM times on A100-SXM, H100-SXM and A40; docs/hardware.md).
pub const ETA_BW: f64 = 0.869;
/// Achieved fraction of dense peak FLOPs by a large GEMM (same fit).
pub const ETA_FLOPS: f64 = 0.749;
/// Sharpness of the memory/compute transition of the soft roofline (same fit).
pub const ROOFLINE_P: f64 = 1.47;
/// NCCL all-reduce bus bandwidth as a fraction of the one-way link bandwidth: NVSwitch (measured
/// 0.74–0.85 on H100, 0.51–0.57 on A100 DGX; pooled) and PCIe (0.75 on both).
pub const ETA_LINK_NVSWITCH: f64 = 0.66;
pub const ETA_LINK_PCIE: f64 = 0.75;
/// Front-end work per prompt token before the request reaches the wait queue: HuggingFace fast
/// tokenizers take ≈ 1.1 s for 1 M tokens on one core (docs/hardware.md). Fixed, not fitted, so
/// prompts far longer than the calibration's stay physical.
pub const TOKENIZE_US_PER_TOKEN: f64 = 1.1;

/// One weight matrix of a layer as one GPU holds it: `k` inputs × `n` outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Matrix {
    k: f64,
    n: f64,
}

/// The blis-physics model for one model × GPU × TP.
#[derive(Debug, Clone, PartialEq)]
pub struct BlisPhysics {
    alpha: [f64; 3],
    beta: [f64; NUM_BETAS],
    /// η_bw·BW, B/µs, and η_fl·peak, FLOP/µs.
    bytes_per_us: f64,
    flops_per_us: f64,
    weight_bytes: f64,
    act_bytes: f64,
    /// qkv and output projections of every layer.
    attn: [Matrix; 2],
    /// up+gate and down projections of a dense MLP layer.
    dense_mlp: [Matrix; 2],
    /// The same for the shared expert of an MoE layer (k = 0 when none).
    shared_mlp: [Matrix; 2],
    lm_head: Matrix,
    /// Weight elements of one routed expert per GPU, and its FLOPs per routed token.
    expert_elems: f64,
    experts: f64,
    top_k: f64,
    /// KV bytes of one context token in one layer, per GPU.
    kv_layer_bytes: f64,
    /// Attention FLOPs of one (query, key) pair in one layer, per GPU.
    attn_pair_flops: f64,
    /// Elementwise activation elements per token and layer (norms, residuals, RoPE, activation).
    elementwise_elems: f64,
    layers: f64,
    moe_layers: f64,
    dense_layers: f64,
    /// All-reduces per step (2 per layer, 0 at TP 1) and their bus bytes per token over the
    /// achieved link bandwidth, µs.
    allreduces: f64,
    allreduce_us_per_token: f64,
    /// [`Self::weights_us`] memoised per token count below [`TABLE_TOKENS`], cleared with the
    /// coefficients: a step then costs one table read plus the attention kernel.
    weights_memo: WeightsMemo,
}

/// Steps of fewer tokens than this memoise their weight-GEMM time.
const TABLE_TOKENS: usize = 8193;

/// A lock-free memo of f64 values (bit patterns; `u64::MAX` = not computed yet), shareable
/// across threads like the rest of the model.
#[derive(Debug)]
struct WeightsMemo(Box<[AtomicU64]>);

impl WeightsMemo {
    fn new() -> Self {
        Self((0..TABLE_TOKENS).map(|_| AtomicU64::new(u64::MAX)).collect())
    }

    fn get_or(&self, i: usize, compute: impl FnOnce() -> f64) -> f64 {
        let Some(slot) = self.0.get(i) else {
            return compute();
        };
        match slot.load(Ordering::Relaxed) {
            u64::MAX => {
                let v = compute();
                slot.store(v.to_bits(), Ordering::Relaxed);
                v
            }
            bits => f64::from_bits(bits),
        }
    }
}

impl Clone for WeightsMemo {
    /// A fresh memo: values are recomputed on demand, never copied stale.
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl PartialEq for WeightsMemo {
    /// Memo contents are derived data; models compare by their inputs.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl BlisPhysics {
    pub fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        tp: u32,
        coeffs: &PhysicsCoefficients,
    ) -> Result<Self, LatencyError> {
        let a = crate::arch::Arch::new(model, gpu, tp)?;
        if !(gpu.link_gbs.is_finite() && gpu.link_gbs > 0.0) {
            return Err(LatencyError::Config(format!(
                "GPU {}: link bandwidth must be > 0, got {}",
                gpu.name, gpu.link_gbs
            )));
        }
        let tpf = f64::from(tp);
        let d = model.hidden_size as f64;
        let layers = model.num_layers as f64;
        let head_dim =
            if model.head_dim > 0 { model.head_dim as f64 } else { d / model.num_attention_heads as f64 };
        let q_dim = model.num_attention_heads as f64 * head_dim;
        let kv_dim = model.num_kv_heads as f64 * head_dim;
        let is_moe = model.is_moe();
        let moe_layers = if is_moe { model.weight_moe_layers.min(model.num_layers) as f64 } else { 0.0 };
        let ffn = model.intermediate_size as f64;
        let shared = if is_moe { model.shared_expert_intermediate_size as f64 } else { 0.0 };
        let mlp = |width: f64| [Matrix { k: d, n: 2.0 * width / tpf }, Matrix { k: width / tpf, n: d }];
        // KV heads are replicated when there are fewer than TP of them.
        let kv_heads_per_gpu = (model.num_kv_heads as f64 / tpf).max(1.0);
        let kv_layer_bytes = if model.mla_kv_dim > 0 {
            model.mla_kv_dim as f64 * model.compute_bytes
        } else {
            2.0 * kv_heads_per_gpu * head_dim * model.compute_bytes
        };
        // Dense FP8 rate for 1-byte weights on a GPU with FP8 tensor cores (the reference table's
        // FP8 column is sparse for L40S); otherwise dense BF16.
        let fp8 = model.weight_bytes == 1.0 && gpu.tflops_fp8_dense > 0.0;
        let tflops = if fp8 { gpu.tflops_fp8_dense } else { gpu.tflops_bf16 };
        let eta_link = match gpu.link {
            Interconnect::NvSwitch => ETA_LINK_NVSWITCH,
            Interconnect::Pcie => ETA_LINK_PCIE,
        };
        let mut m = Self {
            alpha: [0.0; 3],
            beta: [0.0; NUM_BETAS],
            bytes_per_us: ETA_BW * a.bytes_per_us,
            flops_per_us: ETA_FLOPS * tflops * 1e6,
            weight_bytes: model.weight_bytes,
            act_bytes: model.compute_bytes,
            attn: [Matrix { k: d, n: (q_dim + 2.0 * kv_dim) / tpf }, Matrix { k: q_dim / tpf, n: d }],
            dense_mlp: mlp(ffn),
            shared_mlp: mlp(shared),
            lm_head: Matrix { k: d, n: model.vocab_size as f64 / tpf },
            expert_elems: 3.0 * d * model.expert_intermediate_size as f64 / tpf,
            experts: if is_moe { model.num_experts as f64 } else { 0.0 },
            top_k: if is_moe { (model.experts_per_token as f64).max(1.0) } else { 0.0 },
            kv_layer_bytes,
            attn_pair_flops: 4.0 * q_dim / tpf,
            elementwise_elems: 10.0 * d + 2.0 * (q_dim + kv_dim) / tpf + 3.0 * ffn.max(shared) / tpf,
            layers,
            moe_layers,
            dense_layers: layers - moe_layers,
            allreduces: if tp > 1 { 2.0 * layers } else { 0.0 },
            allreduce_us_per_token: if tp > 1 {
                2.0 * (tpf - 1.0) / tpf * d * model.compute_bytes / (eta_link * gpu.link_gbs * 1e3)
            } else {
                0.0
            },
            weights_memo: WeightsMemo::new(),
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
        self.beta = full_beta(&coeffs.beta).ok_or_else(|| {
            LatencyError::Coefficients(format!(
                "blis-physics needs {NUM_BETAS} beta values (or {} without c_kv), got {}",
                NUM_BETAS - 1,
                coeffs.beta.len()
            ))
        })?;
        self.alpha = coeffs.alpha;
        self.weights_memo = WeightsMemo::new();
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

    /// Time of a kernel moving `bytes` and computing `flops` (soft roofline, with c_mem/c_comp).
    fn kernel_us(&self, bytes: f64, flops: f64) -> f64 {
        self.roofline_us(self.beta[0], bytes, flops)
    }

    /// The soft roofline with memory multiplier `c_bytes`: `c_mem` for weight and activation
    /// streams, `c_kv` for the attention kernel's KV-cache reads.
    fn roofline_us(&self, c_bytes: f64, bytes: f64, flops: f64) -> f64 {
        let m = c_bytes * bytes / self.bytes_per_us;
        let c = self.beta[1] * flops / self.flops_per_us;
        if m <= 0.0 || c <= 0.0 {
            return m + c;
        }
        (m.powf(ROOFLINE_P) + c.powf(ROOFLINE_P)).powf(1.0 / ROOFLINE_P)
    }

    /// One weight matrix applied to `tokens` rows.
    fn gemm_us(&self, w: Matrix, tokens: f64) -> f64 {
        if w.k <= 0.0 || w.n <= 0.0 || tokens <= 0.0 {
            return 0.0;
        }
        let bytes = w.k * w.n * self.weight_bytes + tokens * (w.k + w.n) * self.act_bytes;
        self.kernel_us(bytes, 2.0 * tokens * w.k * w.n)
    }

    /// Time of every layer's weight GEMMs (projections, MLP or experts) and elementwise kernels
    /// for `t` tokens, µs.
    fn weights_us(&self, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let attention = self.gemm_us(self.attn[0], t)
            + self.gemm_us(self.attn[1], t)
            + self.kernel_us(self.elementwise_elems * t * self.act_bytes, 0.0);
        let dense = self.gemm_us(self.dense_mlp[0], t) + self.gemm_us(self.dense_mlp[1], t);
        let mut moe = 0.0;
        if self.moe_layers > 0.0 {
            // Expert weights touched, plus each routed token's input, intermediate and output.
            let d = self.lm_head.k;
            let routed = self.active_experts(t) * self.expert_elems * self.weight_bytes
                + t * self.top_k * (2.0 * d + self.expert_elems / d) * self.act_bytes;
            moe = self.gemm_us(self.shared_mlp[0], t)
                + self.gemm_us(self.shared_mlp[1], t)
                + self.kernel_us(routed, 2.0 * t * self.top_k * self.expert_elems);
        }
        self.layers * attention + self.dense_layers * dense + self.moe_layers * moe
    }

    /// GPU time of a step (all kernels, no communication or fixed overheads), µs.
    pub fn kernels_us(&self, shape: &StepShape) -> f64 {
        let decode = f64::from(shape.decode_requests);
        let (mut pf_tokens, mut pairs, mut kv_read) = (0.0, 0.0, shape.decode_context_tokens as f64 + decode);
        for p in &shape.prefills {
            let t = f64::from(p.new_tokens);
            let ctx = f64::from(p.context_tokens);
            pf_tokens += t;
            kv_read += ctx + t;
            pairs += t * (ctx + (t + 1.0) / 2.0);
        }
        pairs += shape.decode_context_tokens as f64 + decode;
        let tokens = shape.decode_requests as usize + shape.prefill_tokens() as usize;
        if tokens == 0 {
            return 0.0;
        }
        let weights = self.weights_memo.get_or(tokens, || self.weights_us(decode + pf_tokens));
        weights
            + self.layers
                * self.roofline_us(self.beta[7], self.kv_layer_bytes * kv_read, self.attn_pair_flops * pairs)
            + self.gemm_us(self.lm_head, shape.num_requests() as f64)
    }

    /// Step time in fractional µs.
    pub fn step_us(&self, shape: &StepShape) -> f64 {
        let b = &self.beta;
        let tokens = f64::from(shape.decode_requests) + shape.prefill_tokens() as f64;
        let comm = self.allreduces * (b[2] + self.allreduce_us_per_token * tokens);
        self.kernels_us(shape)
            + comm
            + b[3] * self.layers
            + b[6] * self.moe_layers
            + b[4] * shape.num_requests() as f64
            + b[5]
    }
}

impl LatencyModel for BlisPhysics {
    fn step_time_us(&self, shape: &StepShape) -> u64 {
        if shape.is_empty() {
            return 1;
        }
        floor_us(self.step_us(shape)).max(1)
    }

    /// The API server's work before the scheduler sees a request: a fixed cost plus tokenizing
    /// the prompt at a measured per-token rate.
    fn queueing_time_us(&self, input_tokens: u32) -> u64 {
        floor_us(self.alpha[0] + TOKENIZE_US_PER_TOKEN * f64::from(input_tokens))
    }

    fn output_token_processing_time_us(&self) -> u64 {
        floor_us(self.alpha[2])
    }

    fn post_decode_overhead_us(&self) -> u64 {
        floor_us(self.alpha[1])
    }
}

/// β with `c_kv`: a 7-entry β (no `c_kv`) reads the KV cache at `c_mem`, as the model did before
/// the two were told apart.
fn full_beta(beta: &[f64]) -> Option<[f64; NUM_BETAS]> {
    match beta.len() {
        NUM_BETAS => beta.try_into().ok(),
        n if n == NUM_BETAS - 1 => {
            let mut full = [0.0; NUM_BETAS];
            full[..n].copy_from_slice(beta);
            full[NUM_BETAS - 1] = beta[0];
            Some(full)
        }
        _ => None,
    }
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
        if full_beta(beta).is_none() {
            return Err(LatencyError::Coefficients(format!(
                "--beta-coeffs needs {NUM_BETAS} values for blis-physics (or {} without c_kv), got {}",
                NUM_BETAS - 1,
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

    /// Unit multipliers, no overheads: the bare physics.
    fn bare() -> PhysicsCoefficients {
        PhysicsCoefficients { alpha: [0.0; 3], beta: vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0] }
    }

    fn unit(model: &ModelSpec, tp: u32) -> BlisPhysics {
        BlisPhysics::new(model, &h100(), tp, &bare()).unwrap()
    }

    #[test]
    fn llama_8b_decode_streams_the_weights_at_achieved_bandwidth() {
        let m = unit(&llama_8b(), 1);
        // 8.03 B params in bf16 minus the embedding table (looked up, not streamed), at 0.869 of
        // 3.35 TB/s; one token's FLOPs barely show through the soft roofline.
        let streamed = 16.06e9 - 128_256.0 * 4096.0 * 2.0;
        let weights_us = streamed / (ETA_BW * 3.35e6);
        let one = m.kernels_us(&decodes(1, 0));
        assert!(one > weights_us && one < 1.02 * weights_us, "{one} vs {weights_us}");
        // Llama-3.1-8B's KV is 128 KiB per token: 1000 tokens of context add its read time.
        let with_ctx = m.kernels_us(&decodes(1, 1000));
        let kv_us = 1000.0 * 131_072.0 / (ETA_BW * 3.35e6);
        assert!((with_ctx - one - kv_us).abs() / kv_us < 0.05, "{}", with_ctx - one);
    }

    #[test]
    fn c_kv_prices_kv_reads_and_c_mem_the_weights() {
        let with = |beta: Vec<f64>| {
            let c = PhysicsCoefficients { alpha: [0.0; 3], beta };
            BlisPhysics::new(&llama_8b(), &h100(), 1, &c).unwrap()
        };
        let base = with(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let slow_kv = with(vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
        let slow_weights = with(vec![2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let (no_ctx, ctx) = (decodes(1, 0), decodes(1, 4000));
        // Without context the KV read is one token: c_kv barely moves the step.
        assert!((slow_kv.kernels_us(&no_ctx) / base.kernels_us(&no_ctx) - 1.0).abs() < 1e-3);
        // 4000 tokens of context: doubling c_kv doubles exactly the extra KV time.
        let kv = base.kernels_us(&ctx) - base.kernels_us(&no_ctx);
        let kv_slow = slow_kv.kernels_us(&ctx) - slow_kv.kernels_us(&no_ctx);
        assert!((kv_slow / kv - 2.0).abs() < 0.01, "{kv_slow} vs {kv}");
        // c_mem no longer reaches the KV read.
        let kv_w = slow_weights.kernels_us(&ctx) - slow_weights.kernels_us(&no_ctx);
        assert!((kv_w / kv - 1.0).abs() < 0.01, "{kv_w} vs {kv}");
        // A 7-entry β (before c_kv) reads the KV cache at c_mem.
        let legacy = with(vec![1.3, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let explicit = with(vec![1.3, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.3]);
        assert_eq!(legacy.kernels_us(&ctx), explicit.kernels_us(&ctx));
    }

    #[test]
    fn moe_reads_only_touched_experts() {
        let m = unit(&scout_like(), 2);
        assert!((m.active_experts(1.0) - 1.0).abs() < 1e-12);
        assert!(m.active_experts(10.0) < 16.0 && m.active_experts(10.0) > 7.0);
        assert!((m.active_experts(2048.0) - 16.0).abs() < 1e-6);
        let one = m.kernels_us(&decodes(1, 0));
        let many = m.kernels_us(&decodes(64, 0));
        assert!(many > 2.0 * one);
    }

    #[test]
    fn prefill_is_compute_bound_and_overheads_add() {
        let c =
            PhysicsCoefficients { alpha: [1.0, 2.0, 3.0], beta: vec![1.0, 1.0, 10.0, 1.0, 5.0, 100.0, 0.0] };
        let m = BlisPhysics::new(&llama_8b(), &h100(), 2, &c).unwrap();
        let chunk = PrefillChunk { new_tokens: 2048, context_tokens: 0, input_tokens: 2048 };
        let shape = StepShape { prefills: vec![chunk], ..StepShape::default() };
        // 2 × 7.5 G linear FLOPs per token over 2 GPUs at 0.749 of 989.5 TFLOP/s.
        let flops_us = 2.0 * 6.98e9 * 2048.0 / 2.0 / (ETA_FLOPS * 989.5e6);
        let kernels = m.kernels_us(&shape);
        assert!(kernels > flops_us && kernels < 1.35 * flops_us, "{kernels} vs {flops_us}");
        // 64 all-reduces of 2048 × 4096 × 2 B: 10 µs each plus the bus bytes at 0.66 × 450 GB/s.
        let comm = 64.0 * (10.0 + 2048.0 * 4096.0 * 2.0 / (ETA_LINK_NVSWITCH * 450e3));
        let expect = kernels + comm + 32.0 + 5.0 + 100.0;
        assert!((m.step_us(&shape) - expect).abs() < 1e-6);
        assert_eq!(m.step_time_us(&StepShape::default()), 1);
        // Front-end: α0 plus the measured tokenizing cost.
        assert_eq!(m.queueing_time_us(1000), (1.0 + 1000.0 * TOKENIZE_US_PER_TOKEN) as u64);
        assert_eq!((m.post_decode_overhead_us(), m.output_token_processing_time_us()), (2, 3));
    }

    #[test]
    fn all_reduce_latency_is_flat_in_the_gpu_count() {
        let c = PhysicsCoefficients { alpha: [0.0; 3], beta: vec![0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0] };
        let step = |tp| BlisPhysics::new(&llama_8b(), &h100(), tp, &c).unwrap().step_us(&decodes(1, 0));
        // 32 layers × 2 all-reduces × (10 µs + one token's bus bytes), none at TP 1.
        let bus = |tp: f64| 64.0 * 2.0 * (tp - 1.0) / tp * 4096.0 * 2.0 / (ETA_LINK_NVSWITCH * 450e3);
        assert_eq!(step(1), 0.0);
        for tp in [2, 4, 8] {
            assert!((step(tp) - 640.0 - bus(f64::from(tp))).abs() < 1e-9);
        }
    }

    #[test]
    fn pcie_all_reduce_pays_the_narrow_link() {
        let c = PhysicsCoefficients { alpha: [0.0; 3], beta: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] };
        let mut pcie = h100();
        pcie.link = Interconnect::Pcie;
        pcie.link_gbs = 32.0;
        let shape = decodes(256, 0);
        let nv = BlisPhysics::new(&llama_8b(), &h100(), 2, &c).unwrap().step_us(&shape);
        let pc = BlisPhysics::new(&llama_8b(), &pcie, 2, &c).unwrap().step_us(&shape);
        // 64 all-reduces of 256 × 4096 × 2 B, half of it on the bus, at 0.75 × 32 GB/s.
        assert!((pc - 64.0 * 256.0 * 4096.0 * 2.0 / (ETA_LINK_PCIE * 32e3)).abs() < 1e-6);
        assert!(pc > 10.0 * nv);
    }

    #[test]
    fn shipped_set_builds_and_overrides_check_length() {
        let m = build(&llama_8b(), &h100(), 1, &LatencyOverrides::default()).unwrap();
        assert!(m.step_time_us(&decodes(8, 512)) > 1000);
        let o = LatencyOverrides { beta: Some(vec![1.0; 3]), ..Default::default() };
        assert!(build(&llama_8b(), &h100(), 1, &o).unwrap_err().to_string().contains("needs 8"));
    }
}
