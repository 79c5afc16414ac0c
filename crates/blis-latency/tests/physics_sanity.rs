//! Sanity properties of `blis-physics` with its shipped coefficients, for every bundled model on
//! every GPU of the table at TP 1/2/4/8 wherever the weights fit and the TP degree is valid:
//!
//! 1. a batch-1 decode step streams at least the weights it must read at peak HBM bandwidth, and,
//!    once the fixed per-step overheads are taken off, at most [`MAX_OVER_BANDWIDTH_BOUND`] times
//!    that (kernels reach ≈ 87 % of peak bandwidth; the rest is KV, activations and the LM head);
//! 2. step time never decreases when the batch gains tokens or context;
//! 3. a GPU at least as fast as another in every specification (BF16 and FP8 peaks, HBM and link
//!    bandwidth) is never slower.

use blis_latency::blis_physics::{BlisPhysics, build};
use blis_latency::{LatencyModel, LatencyOverrides, PrefillChunk, StepShape};
use blis_model::{GpuSpec, ModelSpec, builtin_gpus, bundled_config, bundled_model_names};

/// Bound of check 1 (see the module doc).
const MAX_OVER_BANDWIDTH_BOUND: f64 = 1.6;

fn models() -> Vec<ModelSpec> {
    bundled_model_names()
        .into_iter()
        .map(|name| {
            let (key, json) = bundled_config(name).expect("bundled");
            ModelSpec::from_config_json(key, json).expect("bundled config parses")
        })
        .collect()
}

fn tp_valid(m: &ModelSpec, tp: u32) -> bool {
    let (h, kv) = (m.num_attention_heads, m.num_kv_heads);
    let tp = u64::from(tp);
    h % tp == 0 && (kv % tp == 0 || tp % kv == 0)
}

fn fits(m: &ModelSpec, g: &GpuSpec, tp: u32) -> bool {
    m.weight_bytes_total() / f64::from(tp) < 0.9 * g.memory_gib * 1024f64.powi(3)
}

/// Every (model, GPU, TP) the checks cover.
fn cases() -> Vec<(ModelSpec, GpuSpec, u32)> {
    let mut out = Vec::new();
    for m in models() {
        for g in builtin_gpus() {
            for tp in [1, 2, 4, 8] {
                if tp_valid(&m, tp) && fits(&m, &g, tp) {
                    out.push((m.clone(), g.clone(), tp));
                }
            }
        }
    }
    out
}

fn decode(n: u32, ctx: u64) -> StepShape {
    StepShape { prefills: vec![], decode_requests: n, decode_context_tokens: u64::from(n) * ctx }
}

/// Bytes one GPU must read for a batch-1 decode token with no context: every non-expert weight,
/// `top_k` experts per MoE layer, and the LM head (embedding lookups are not streamed).
fn streamed_bytes(m: &ModelSpec, tp: u32) -> f64 {
    let d = m.hidden_size as f64;
    let hd = if m.head_dim > 0 { m.head_dim as f64 } else { d / m.num_attention_heads as f64 };
    let q = m.num_attention_heads as f64 * hd;
    let kv = m.num_kv_heads as f64 * hd;
    let layers = m.num_layers as f64;
    let moe = if m.is_moe() { m.weight_moe_layers.min(m.num_layers) as f64 } else { 0.0 };
    let attn = d * (q + 2.0 * kv) + q * d;
    let dense = 3.0 * d * m.intermediate_size as f64;
    let per_moe = 3.0 * d * (m.shared_expert_intermediate_size as f64)
        + m.experts_per_token as f64 * 3.0 * d * m.expert_intermediate_size as f64;
    let params = layers * attn + (layers - moe) * dense + moe * per_moe;
    (params * m.weight_bytes + m.vocab_size as f64 * d * m.compute_bytes) / f64::from(tp)
}

fn model(m: &ModelSpec, g: &GpuSpec, tp: u32) -> BlisPhysics {
    build(m, g, tp, &LatencyOverrides::default()).expect("builds")
}

#[test]
fn there_are_cases_on_every_gpu() {
    let c = cases();
    for g in builtin_gpus() {
        assert!(c.iter().any(|(_, cg, _)| cg.name == g.name), "{} has no case", g.name);
    }
    assert!(c.len() > 100, "{}", c.len());
}

#[test]
fn batch_one_decode_is_bounded_by_weight_streaming() {
    for (m, g, tp) in cases() {
        let p = model(&m, &g, tp);
        let lower_us = streamed_bytes(&m, tp) / (g.hbm_bandwidth_tbs * 1e6);
        let shape = decode(1, 0);
        let step = p.step_us(&shape);
        // The fixed overheads: the same step with every byte and FLOP removed.
        let kernels = p.kernels_us(&shape);
        assert!(step >= lower_us, "{} {} TP{tp}: {step} < {lower_us}", m.name, g.name);
        assert!(
            kernels <= MAX_OVER_BANDWIDTH_BOUND * lower_us,
            "{} {} TP{tp}: kernels {kernels} µs > {MAX_OVER_BANDWIDTH_BOUND} × {lower_us} µs",
            m.name,
            g.name
        );
    }
}

#[test]
fn step_time_grows_with_batch_tokens_and_context() {
    for (m, g, tp) in cases() {
        let p = model(&m, &g, tp);
        let mut last = 0;
        for n in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] {
            let t = p.step_time_us(&decode(n, 512));
            assert!(t >= last, "{} {} TP{tp}: batch {n} {t} < {last}", m.name, g.name);
            last = t;
        }
        let mut last = 0;
        for ctx in [0, 128, 1024, 8192, 32_768] {
            let t = p.step_time_us(&decode(16, ctx));
            assert!(t >= last, "{} {} TP{tp}: context {ctx} {t} < {last}", m.name, g.name);
            last = t;
        }
        let mut last = 0;
        for tokens in [1, 16, 256, 1024, 4096, 8192, 16_384] {
            let chunk = PrefillChunk { new_tokens: tokens, context_tokens: 0, input_tokens: tokens };
            let t = p.step_time_us(&StepShape { prefills: vec![chunk], ..decode(8, 256) });
            assert!(t >= last, "{} {} TP{tp}: prefill {tokens} {t} < {last}", m.name, g.name);
            last = t;
        }
    }
}

/// `fast` is at least as fast as `slow` in every specification blis-physics reads.
fn dominates(fast: &GpuSpec, slow: &GpuSpec) -> bool {
    fast.tflops_bf16 >= slow.tflops_bf16
        && fast.tflops_fp8_dense >= slow.tflops_fp8_dense
        && fast.hbm_bandwidth_tbs >= slow.hbm_bandwidth_tbs
        && fast.link_gbs >= slow.link_gbs
        && !(fast.link == blis_model::Interconnect::Pcie && slow.link == blis_model::Interconnect::NvSwitch)
}

#[test]
fn a_faster_gpu_is_never_slower() {
    let gpus = builtin_gpus();
    let mut pairs = 0;
    for (m, slow, tp) in cases() {
        for fast in gpus.iter().filter(|f| f.name != slow.name && dominates(f, &slow)) {
            let (pf, ps) = (model(&m, fast, tp), model(&m, &slow, tp));
            for shape in [decode(1, 0), decode(32, 2048), decode(256, 512)] {
                let (tf, ts) = (pf.step_time_us(&shape), ps.step_time_us(&shape));
                assert!(tf <= ts, "{} TP{tp}: {} {tf} µs > {} {ts} µs", m.name, fast.name, slow.name);
            }
            pairs += 1;
        }
    }
    assert!(pairs > 50, "{pairs}");
}
