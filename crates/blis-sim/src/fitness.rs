//! Fitness evaluation (`--fitness-weights "key:weight,…"`, outputs.md §9.3): a single scalar
//! that ranks configurations, for sweeps and optimizers.
//!
//! Each key maps a metric of the run to a component in (0, 1], larger is better:
//! `throughput = rps/(rps+100)`, `tokens_per_sec = tps/(tps+10000)`, and every latency key
//! (`p99_ttft`, `p50_ttft`, `mean_ttft`, `p99_e2e`, `p50_e2e`, `mean_e2e`) gives
//! `1/(1 + value_µs/1000)` = `1/(1 + value_ms)`. The score is `Σ weight·component` with no
//! normalisation of the weights.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::MetricsDoc;

/// Every accepted fitness key.
pub const KEYS: &[&str] =
    &["throughput", "tokens_per_sec", "p99_ttft", "p50_ttft", "mean_ttft", "p99_e2e", "p50_e2e", "mean_e2e"];

/// Validated weights, keyed by fitness key (sorted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitnessWeights(pub BTreeMap<String, f64>);

/// The `fitness` object of the metrics document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FitnessDoc {
    /// `Σ weight·component`.
    pub score: f64,
    /// The component of every weighted key.
    pub components: BTreeMap<String, f64>,
    pub weights: BTreeMap<String, f64>,
}

impl FitnessWeights {
    /// Parses `"key:weight,…"`. Whitespace around items is ignored; an empty string gives no
    /// weights. The error is one line (without the flag name) that lists the accepted keys.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_inner(text).map_err(|e| {
            format!("{e} (accepted: key:weight,… with weights ≥ 0 and keys {})", KEYS.join(", "))
        })
    }

    fn parse_inner(text: &str) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, weight)) = item.split_once(':') else {
                return Err(format!("'{item}' is not key:weight"));
            };
            let key = key.trim();
            if !KEYS.contains(&key) {
                return Err(format!("unknown key '{key}'"));
            }
            let w: f64 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of '{key}' is not a number: '{}'", weight.trim()))?;
            if !(w.is_finite() && w >= 0.0) {
                return Err(format!("weight of '{key}' must be a finite number ≥ 0, got {}", weight.trim()));
            }
            if out.insert(key.to_string(), w).is_some() {
                return Err(format!("'{key}' appears twice"));
            }
        }
        Ok(FitnessWeights(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Scores the cluster-level metrics `m`.
    pub fn evaluate(&self, m: &MetricsDoc) -> FitnessDoc {
        let mut components = BTreeMap::new();
        let mut score = 0.0;
        for (key, &w) in &self.0 {
            let c = component(key, m);
            score += w * c;
            components.insert(key.clone(), c);
        }
        FitnessDoc { score, components, weights: self.0.clone() }
    }
}

/// Component of `key` (one of [`KEYS`]) for metrics `m`; 0 for an unknown key.
pub fn component(key: &str, m: &MetricsDoc) -> f64 {
    let latency = |ms: f64| 1.0 / (1.0 + ms.max(0.0));
    match key {
        "throughput" => m.responses_per_sec / (m.responses_per_sec + 100.0),
        "tokens_per_sec" => m.tokens_per_sec / (m.tokens_per_sec + 10_000.0),
        "p99_ttft" => latency(m.ttft_p99_ms),
        "p50_ttft" => latency(m.ttft_p50_ms),
        "mean_ttft" => latency(m.ttft_mean_ms),
        "p99_e2e" => latency(m.e2e_p99_ms),
        "p50_e2e" => latency(m.e2e_p50_ms),
        "mean_e2e" => latency(m.e2e_mean_ms),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> MetricsDoc {
        MetricsDoc {
            instance_id: "cluster".into(),
            pool: None,
            completed_requests: 10,
            injected_requests: 10,
            still_queued: 0,
            still_running: 0,
            rejected_requests: 0,
            dropped_unservable: 0,
            timed_out_requests: 0,
            length_capped_requests: 0,
            in_transit_requests: 0,
            prefilled_requests: None,
            total_input_tokens: 0,
            total_output_tokens: 0,
            vllm_estimated_duration_s: 1.0,
            responses_per_sec: 100.0,
            responses_per_sec_incl_drain: 100.0,
            tokens_per_sec: 10_000.0,
            ttft_mean_ms: 1.0,
            ttft_p50_ms: 3.0,
            ttft_p90_ms: 0.0,
            ttft_p95_ms: 0.0,
            ttft_p99_ms: 9.0,
            e2e_mean_ms: 4.0,
            e2e_p50_ms: 0.0,
            e2e_p90_ms: 0.0,
            e2e_p95_ms: 0.0,
            e2e_p99_ms: 19.0,
            itl_mean_ms: 0.0,
            itl_p50_ms: 0.0,
            itl_p90_ms: 0.0,
            itl_p95_ms: 0.0,
            itl_p99_ms: 0.0,
            scheduling_delay_p99_ms: 0.0,
            preemption_count: 0,
            cache_hit_rate: 0.0,
            prompt_tokens_computed: 0,
            prompt_tokens_cached: 0,
            peak_kv_blocks: 0,
            total_kv_blocks: 0,
            kv_tier: None,
            lora: None,
            adapters: None,
        }
    }

    #[test]
    fn components_follow_the_spec_formulas() {
        let m = doc();
        assert_eq!(component("throughput", &m), 0.5);
        assert_eq!(component("tokens_per_sec", &m), 0.5);
        assert_eq!(component("p99_ttft", &m), 0.1);
        assert_eq!(component("mean_ttft", &m), 0.5);
        assert_eq!(component("p50_ttft", &m), 0.25);
        assert_eq!(component("p99_e2e", &m), 0.05);
        assert_eq!(component("mean_e2e", &m), 0.2);
        assert_eq!(component("p50_e2e", &m), 1.0);
    }

    #[test]
    fn score_is_weighted_sum_without_normalisation() {
        let w = FitnessWeights::parse(" p99_ttft:3, mean_e2e:1 ,throughput:2").unwrap();
        let f = w.evaluate(&doc());
        assert!((f.score - (3.0 * 0.1 + 0.2 + 2.0 * 0.5)).abs() < 1e-12, "{f:?}");
        assert_eq!(f.components.keys().collect::<Vec<_>>(), ["mean_e2e", "p99_ttft", "throughput"]);
        assert_eq!(f.weights["p99_ttft"], 3.0);
        assert!(FitnessWeights::parse("").unwrap().is_empty());
        assert_eq!(FitnessWeights::parse("throughput:0").unwrap().evaluate(&doc()).score, 0.0);
    }

    #[test]
    fn bad_weights_are_one_line_errors_listing_keys() {
        for (text, needle) in [
            ("p99_itl:1", "unknown key 'p99_itl'"),
            ("throughput", "is not key:weight"),
            ("throughput:-1", "must be a finite number ≥ 0"),
            ("throughput:inf", "must be a finite number ≥ 0"),
            ("throughput:NaN", "must be a finite number ≥ 0"),
            ("throughput:x", "is not a number"),
            ("throughput:1,throughput:2", "appears twice"),
        ] {
            let e = FitnessWeights::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains('\n'));
        }
        for text in ["bogus:1", "throughput:-1", "mean_e2e"] {
            let e = FitnessWeights::parse(text).unwrap_err();
            for k in KEYS {
                assert!(e.contains(k), "{e}");
            }
        }
    }
}
