//! GPU specifications (peak compute, memory bandwidth, memory size).

/// One GPU type. Figures are per GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSpec {
    pub name: String,
    /// Dense BF16 peak, TFLOP/s.
    pub tflops_bf16: f64,
    /// Dense FP8 peak, TFLOP/s (0 = no FP8 support).
    pub tflops_fp8: f64,
    /// HBM bandwidth, TB/s.
    pub hbm_bandwidth_tbs: f64,
    /// Achievable fraction of peak FLOPs in prefill / decode (roofline efficiency factors).
    pub mfu_prefill: f64,
    pub mfu_decode: f64,
    pub memory_gib: f64,
}
