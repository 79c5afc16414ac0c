//! The documented bounds every workload input is checked against.
//!
//! Lengths and times come from users (spec files, trace files, flags). Checking them against
//! fixed limits up front turns absurd values into one clear error instead of a panic, an
//! overflow that silently wraps, or a gigabyte allocation deep inside the simulator.

use crate::error::WorkloadError;

/// The most tokens a request's prompt, and separately its output, may hold: 2^24 =
/// 16 777 216. The longest context any public model declares is Llama-4 Scout's 10 485 760
/// tokens, and vLLM's `max_model_len` is at most a few million in practice, so this leaves a
/// 1.6× margin while keeping any request's prompt + output (≤ 2^25) far from `u32::MAX` and
/// its block table small. Declared lengths above it are errors; random draws are clamped to it.
pub const MAX_REQUEST_TOKENS: u32 = 1 << 24;

/// The longest simulated time: 100 years of 365.25 days, in µs (≈ 3.16·10^15, far below
/// `u64::MAX` ≈ 1.8·10^19, so sums of a few such times cannot wrap). Recorded arrivals and
/// deadlines beyond it are errors; generated arrival streams end there.
pub const MAX_TIME_US: u64 = 36_525 * 86_400 * 1_000_000;

/// The slowest accepted request rate, req/s: one request per [`MAX_TIME_US`]. A slower
/// process would not produce its first arrival within the longest simulated time.
pub const MIN_RATE_PER_S: f64 = 1e6 / MAX_TIME_US as f64;

/// The most requests one `inference_perf` stage may declare (`rate · duration`): 2^53, the
/// largest count an `f64` holds exactly.
pub const MAX_STAGE_REQUESTS: f64 = 9_007_199_254_740_992.0;

/// A user's number for a message: plain when moderate, scientific when tiny or huge (so that
/// `1e300` does not print as 301 digits).
pub fn num(v: f64) -> String {
    if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// `MAX_TIME_US` for messages: "3155760000000000 µs (100 years)".
pub fn max_time_text() -> String {
    format!("{MAX_TIME_US} µs (100 years)")
}

/// Why a length is capped, for messages.
pub(crate) const TOKEN_LIMIT_NOTE: &str =
    "a request's prompt and its output each hold at most 16777216 tokens, more than any model's context";

/// Checks a declared token count at `path` against `min..=max`.
pub(crate) fn tokens(path: &str, value: i64, min: i64, max: u32) -> Result<u32, WorkloadError> {
    if value < min {
        return Err(WorkloadError::at(path, format!("must be ≥ {min} tokens, got {value}")));
    }
    if value > i64::from(max) {
        return Err(WorkloadError::at(
            path,
            format!("must be ≤ {max} tokens ({TOKEN_LIMIT_NOTE}), got {value}"),
        ));
    }
    Ok(value as u32)
}

/// Checks a duration or instant in µs (`0..=MAX_TIME_US`).
pub(crate) fn time_us(path: &str, value: i64) -> Result<u64, WorkloadError> {
    if value < 0 {
        return Err(WorkloadError::at(path, format!("must be ≥ 0 µs, got {value}")));
    }
    if value as u64 > MAX_TIME_US {
        return Err(WorkloadError::at(
            path,
            format!("{value} µs is beyond the longest simulated time, {}", max_time_text()),
        ));
    }
    Ok(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_what_the_docs_say() {
        assert_eq!(MAX_REQUEST_TOKENS, 16_777_216);
        assert_eq!(MAX_TIME_US, 3_155_760_000_000_000);
        assert!((MIN_RATE_PER_S - 3.1688e-10).abs() < 1e-13);
        assert_eq!(MAX_STAGE_REQUESTS, 2f64.powi(53));
        // Prompt + output of a request at the limit fit a u32 with room to spare.
        assert!(u64::from(MAX_REQUEST_TOKENS) * 2 < u64::from(u32::MAX) / 100);
    }
}
