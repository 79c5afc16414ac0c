//! `precise-prefix-cache`: raw = consecutive leading full prompt blocks found in the instance's
//! KV hash index (live, or as of the last cache-signal refresh), min–max normalized upward;
//! all equal (including all zero) → 1.

use super::{Scorer, min_max_upward};
use crate::cluster::{RouterView, RoutingRequest};

pub struct PrecisePrefixCache;

impl Scorer for PrecisePrefixCache {
    fn score(&mut self, request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        let hashes = request.prompt_hashes;
        let raw = (0..view.signals.len()).map(|i| f64::from(view.prefix.cached_blocks(i, hashes)));
        min_max_upward(raw, out);
    }

    fn needs_prompt_hashes(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn longest_cached_prefix_scores_one() {
        let s = [sig(0, 0, 0, 0.0); 3];
        let oracle = SetOracle(vec![[1, 2].into(), [1, 2, 3, 4].into(), [2, 3, 4].into()]);
        let r = spec(0, 64, SloClass::Standard);
        let mut out = [0.0; 3];
        let req = RoutingRequest::of(&r, &[1, 2, 3, 4]);
        PrecisePrefixCache.score(&req, &view(0, &s, &oracle), &mut out);
        assert_eq!(out, [0.5, 1.0, 0.0]);
        // No hits anywhere: all equal → 1.
        let req = RoutingRequest::of(&r, &[9, 10]);
        PrecisePrefixCache.score(&req, &view(0, &s, &oracle), &mut out);
        assert_eq!(out, [1.0; 3]);
    }
}
