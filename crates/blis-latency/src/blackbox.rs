//! Legacy blackbox step time (latency.md §8.4): affine in prefill and decode token counts. Kept to
//! reproduce numbers published with the reference's per-(model, GPU, TP) fits.

use crate::coefficients::validate_values;
use crate::error::LatencyError;
use crate::{LatencyModel, StepShape, floor_us};

/// `step = β0 + β1·Σ prefill tokens + β2·#decodes`; `queueing = α0 + α1·input`; `OTPT = α2`.
#[derive(Debug, Clone, PartialEq)]
pub struct Blackbox {
    alpha: [f64; 3],
    beta: [f64; 3],
}

impl Blackbox {
    pub fn new(alpha: [f64; 3], beta: [f64; 3]) -> Result<Self, LatencyError> {
        validate_values("alpha", &alpha)?;
        validate_values("beta", &beta)?;
        Ok(Self { alpha, beta })
    }
}

impl LatencyModel for Blackbox {
    fn step_time_us(&self, shape: &StepShape) -> u64 {
        if shape.is_empty() {
            return 1;
        }
        let [b0, b1, b2] = self.beta;
        let step = b0 + b1 * shape.prefill_tokens() as f64 + b2 * f64::from(shape.decode_requests);
        floor_us(step).max(1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrefillChunk;

    #[test]
    fn affine_in_token_counts() {
        let m = Blackbox::new([1601.35, 3.51248, 1805.54], [6910.42, 17.6706, 2.83775]).unwrap();
        let chunk = PrefillChunk { new_tokens: 100, context_tokens: 0, input_tokens: 100 };
        let shape = StepShape { prefills: vec![chunk], decode_requests: 10, decode_context_tokens: 5000 };
        // 6910.42 + 1767.06 + 28.3775
        assert_eq!(m.step_time_us(&shape), 8705);
        assert_eq!(m.queueing_time_us(100), 1952);
        assert_eq!(m.output_token_processing_time_us(), 1805);
        assert_eq!(m.post_decode_overhead_us(), 0);
    }

    #[test]
    fn rejects_non_finite() {
        assert!(Blackbox::new([0.0; 3], [f64::NAN, 0.0, 0.0]).is_err());
    }
}
