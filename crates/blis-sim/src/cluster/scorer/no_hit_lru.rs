//! `no-hit-lru`: spreads cold requests. If any instance holds at least one block of the prompt
//! ("warm") every instance scores 0.5 (prefix scorers decide). Otherwise ("cold") instances are
//! ranked never-used first (in index order), then least- to most-recently used, and score
//! `1 − rank/(n − 1)`; the observer moves the chosen instance to most-recent, for cold
//! requests only.

use super::Scorer;
use crate::cluster::{RouterView, RoutingRequest};

#[derive(Default)]
pub struct NoHitLru {
    /// Logical time of each instance's last cold request (None = never used).
    last_used: Vec<Option<u64>>,
    clock: u64,
    /// Whether the request scored last was cold.
    last_cold: bool,
}

impl Scorer for NoHitLru {
    fn score(&mut self, request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        let n = view.signals.len();
        if self.last_used.len() < n {
            self.last_used.resize(n, None);
        }
        let hashes = request.prompt_hashes;
        let warm = !hashes.is_empty() && (0..n).any(|i| view.prefix.cached_blocks(i, &hashes[..1]) >= 1);
        self.last_cold = !warm;
        if warm {
            out.fill(0.5);
            return;
        }
        if n == 1 {
            out.fill(1.0);
            return;
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (self.last_used[i].is_some(), self.last_used[i].unwrap_or(0), i));
        for (rank, &i) in order.iter().enumerate() {
            out[i] = 1.0 - rank as f64 / (n - 1) as f64;
        }
    }

    fn observe(&mut self, _request: &RoutingRequest, target: usize) {
        if !self.last_cold {
            return;
        }
        if self.last_used.len() <= target {
            self.last_used.resize(target + 1, None);
        }
        self.clock += 1;
        self.last_used[target] = Some(self.clock);
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
    fn cold_requests_rotate_warm_ones_are_neutral() {
        let s = [sig(0, 0, 0, 0.0); 3];
        let r = spec(0, 64, SloClass::Standard);
        let cold = RoutingRequest::of(&r, &[1, 2]);
        let empty = SetOracle(vec![Default::default(); 3]);
        let mut p = NoHitLru::default();
        let mut out = [0.0; 3];
        p.score(&cold, &view(0, &s, &empty), &mut out);
        assert_eq!(out, [1.0, 0.5, 0.0]); // all never used: index order
        p.observe(&cold, 0);
        p.score(&cold, &view(0, &s, &empty), &mut out);
        assert_eq!(out, [0.0, 1.0, 0.5]);
        p.observe(&cold, 1);
        p.score(&cold, &view(0, &s, &empty), &mut out);
        assert_eq!(out, [0.5, 0.0, 1.0]);

        // Warm: 0.5 everywhere, and the observer leaves the LRU order alone.
        let warm_oracle = SetOracle(vec![Default::default(), [1].into(), Default::default()]);
        p.score(&cold, &view(0, &s, &warm_oracle), &mut out);
        assert_eq!(out, [0.5; 3]);
        p.observe(&cold, 2);
        p.score(&cold, &view(0, &s, &empty), &mut out);
        assert_eq!(out, [0.5, 0.0, 1.0]);
    }

    #[test]
    fn single_instance_scores_one() {
        let s = [sig(0, 0, 0, 0.0)];
        let r = spec(0, 64, SloClass::Standard);
        let req = RoutingRequest::of(&r, &[]);
        let mut out = [0.0];
        NoHitLru::default().score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0]);
    }
}
