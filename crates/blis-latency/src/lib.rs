//! Step-time models: how long one forward pass of a batch takes on a GPU group.
//!
//! The scheduler hands a model a [`StepShape`]: aggregate counts of what the batch computes this
//! step. Decode requests enter only as a count and a context-length sum, so the cost of asking
//! stays proportional to the number of prefill chunks, not to the batch size.

mod arch;
pub mod blackbox;
pub mod blis_physics;
pub mod coefficients;
mod error;
mod kind;
pub mod registry;
pub mod roofline;
#[cfg(test)]
mod test_support;
pub mod trained_physics;
pub mod uncertainty;

pub use blackbox::Blackbox;
pub use coefficients::{BlackboxEntry, CoefficientFile, PhysicsCoefficients};
pub use error::LatencyError;
pub use kind::LatencyModelKind;
pub use registry::{
    DEFAULT_LATENCY_MODEL, LATENCY_MODELS, LatencyOverrides, build, default_physics_coefficients,
};
pub use roofline::Roofline;
pub use trained_physics::{BASIS_NAMES, NUM_BASIS_TERMS, TrainedPhysics};

/// One prefill chunk scheduled this step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillChunk {
    /// Tokens computed this step for this request.
    pub new_tokens: u32,
    /// Tokens of the prompt already in the KV cache before this chunk (progress index).
    pub context_tokens: u32,
    /// Full prompt length of the request.
    pub input_tokens: u32,
}

/// What one step computes. Only requests with at least one new token appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepShape {
    pub prefills: Vec<PrefillChunk>,
    /// Number of requests decoding one token each.
    pub decode_requests: u32,
    /// Sum over decoding requests of their context length (progress index) before this token.
    pub decode_context_tokens: u64,
}

impl StepShape {
    pub fn clear(&mut self) {
        self.prefills.clear();
        self.decode_requests = 0;
        self.decode_context_tokens = 0;
    }

    pub fn num_requests(&self) -> u64 {
        self.prefills.len() as u64 + u64::from(self.decode_requests)
    }

    pub fn prefill_tokens(&self) -> u64 {
        self.prefills.iter().map(|p| u64::from(p.new_tokens)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.prefills.is_empty() && self.decode_requests == 0
    }
}

/// A step-time model plus the per-request overheads a real server pays outside the forward pass.
///
/// All times are integer microseconds.
pub trait LatencyModel: Send + Sync {
    /// Duration of one step computing `shape`; at least 1 µs.
    fn step_time_us(&self, shape: &StepShape) -> u64;
    /// Delay between a request reaching the instance and entering its wait queue
    /// (API server, tokenization).
    fn queueing_time_us(&self, input_tokens: u32) -> u64;
    /// Added to TTFT and to every inter-token latency sample (detokenize, stream out).
    fn output_token_processing_time_us(&self) -> u64;
    /// Added once to the E2E latency of a request that produced at least one output token.
    fn post_decode_overhead_us(&self) -> u64;
}

/// Whole microseconds of a non-negative duration (truncation, as the reference's int64 cast);
/// NaN maps to 0 and overflow saturates.
pub(crate) fn floor_us(us: f64) -> u64 {
    us as u64
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod properties;
