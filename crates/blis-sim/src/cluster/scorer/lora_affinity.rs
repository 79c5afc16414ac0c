//! `lora-affinity`: 1 where the request's LoRA adapter is resident, 0 elsewhere (min–max
//! normalized, so all equal → 1). A base-model request scores every instance 1. Reads the
//! resident sets through the instance signals (refreshed every `--snapshot-refresh-interval`).

use super::{Scorer, min_max_upward};
use crate::cluster::{RouterView, RoutingRequest};

pub struct LoraAffinity;

impl Scorer for LoraAffinity {
    fn score(&mut self, request: &RoutingRequest, view: &RouterView, out: &mut [f64]) {
        match request.adapter {
            Some(a) => {
                min_max_upward(view.signals.iter().map(|s| if s.lora_resident(a) { 1.0 } else { 0.0 }), out)
            }
            None => out.fill(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_support::*;
    use blis_workload::SloClass;

    #[test]
    fn prefers_instances_holding_the_adapter() {
        let mut s = [sig(0, 0, 0, 0.0), sig(0, 0, 0, 0.0), sig(0, 0, 0, 0.0)];
        s[1].lora_resident[0] = 1 << 3;
        s[2].lora_resident[1] = 1 << 1; // adapter 65
        let r = spec(0, 32, SloClass::Standard);
        let mut out = [0.0; 3];
        let mut req = RoutingRequest::of(&r, &[]);
        req.adapter = Some(3);
        LoraAffinity.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [0.0, 1.0, 0.0]);
        req.adapter = Some(65);
        LoraAffinity.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [0.0, 0.0, 1.0]);
        // Cold everywhere, or a base-model request: neutral.
        req.adapter = Some(7);
        LoraAffinity.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0; 3]);
        req.adapter = None;
        LoraAffinity.score(&req, &view(0, &s, &SetOracle::default()), &mut out);
        assert_eq!(out, [1.0; 3]);
    }
}
