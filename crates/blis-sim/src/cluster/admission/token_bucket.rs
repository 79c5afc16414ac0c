//! Token bucket: starts full; refills continuously at `refill_rate` tokens/s up to `capacity`;
//! a request costs its input tokens and is admitted iff the bucket holds at least that many.

use super::{AdmissionConfig, AdmissionPolicy, Verdict};
use crate::cluster::{RouterView, RoutingRequest};

pub struct TokenBucket {
    capacity: f64,
    refill_per_s: f64,
    tokens: f64,
    last_refill_us: u64,
}

impl TokenBucket {
    pub fn new(config: &AdmissionConfig) -> Self {
        Self {
            capacity: config.token_bucket_capacity,
            refill_per_s: config.token_bucket_refill_per_s,
            tokens: config.token_bucket_capacity,
            last_refill_us: 0,
        }
    }
}

impl AdmissionPolicy for TokenBucket {
    fn decide(&mut self, request: &RoutingRequest, view: &RouterView) -> Verdict {
        let elapsed = view.now_us.saturating_sub(self.last_refill_us);
        if elapsed > 0 {
            self.tokens = self.capacity.min(self.tokens + elapsed as f64 * self.refill_per_s / 1e6);
            self.last_refill_us = view.now_us;
        }
        let cost = f64::from(request.input_tokens);
        if self.tokens >= cost {
            self.tokens -= cost;
            Verdict::Admit
        } else {
            Verdict::Reject("insufficient tokens")
        }
    }

    fn reads_instance_state(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn exact_refill_and_cost() {
        let config = AdmissionConfig {
            token_bucket_capacity: 100.0,
            token_bucket_refill_per_s: 10.0,
            ..super::super::test_config(super::super::AdmissionKind::TokenBucket)
        };
        let mut b = TokenBucket::new(&config);
        let s = [sig(0, 0, 0, 0.0); 2];
        let o = SetOracle::default();
        let r60 = spec(0, 60, SloClass::Standard);
        let r40 = spec(1, 40, SloClass::Standard);
        let r1 = spec(2, 1, SloClass::Standard);
        let req = |r| RoutingRequest::of(r, &[]);
        // Starts full: 100 → 40 → 0.
        assert_eq!(b.decide(&req(&r60), &view(0, &s, &o)), Verdict::Admit);
        assert_eq!(b.decide(&req(&r40), &view(0, &s, &o)), Verdict::Admit);
        assert_eq!(b.decide(&req(&r1), &view(0, &s, &o)), Verdict::Reject("insufficient tokens"));
        // 0.1 s at 10 tokens/s refills exactly 1 token.
        assert_eq!(b.decide(&req(&r1), &view(100_000, &s, &o)), Verdict::Admit);
        assert_eq!(b.tokens, 0.0);
        // Refill is capped at the capacity.
        assert_eq!(b.decide(&req(&r1), &view(1_000_000_000, &s, &o)), Verdict::Admit);
        assert_eq!(b.tokens, 99.0);
        // A request larger than the capacity is never admitted.
        let big = spec(3, 101, SloClass::Standard);
        assert_eq!(
            b.decide(&req(&big), &view(2_000_000_000, &s, &o)),
            Verdict::Reject("insufficient tokens")
        );
    }
}
