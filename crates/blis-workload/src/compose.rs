//! `blis compose`: several client-based specs as one.

use crate::error::{Result, WorkloadError};
use crate::spec::WorkloadSpec;

/// Concatenates the clients of `specs` and sums their aggregate rates; each client's
/// `rate_fraction` is rescaled (by its spec's rate over the total, normalized within its spec)
/// so every client keeps its absolute rate. The seed is the first spec's, `num_requests` the
/// sum of those given, `horizon` the largest given, goodput targets merged (first wins).
pub fn compose(specs: &[WorkloadSpec]) -> Result<WorkloadSpec> {
    if specs.is_empty() {
        return Err(WorkloadError::msg("compose needs at least one spec"));
    }
    for (i, s) in specs.iter().enumerate() {
        crate::validate::validate(s).map_err(|e| e.in_file(format!("spec #{}", i + 1)))?;
        if s.inference_perf.is_some() {
            return Err(WorkloadError::at(
                "inference_perf",
                "cannot be composed; only client-based specs can",
            )
            .in_file(format!("spec #{}", i + 1)));
        }
    }
    let total: f64 = specs.iter().map(|s| s.aggregate_rate.unwrap_or(0.0)).sum();
    let mut out = WorkloadSpec {
        version: Some("2".into()),
        seed: specs[0].seed,
        category: specs.iter().filter_map(|s| s.category.clone()).find(|c| !c.is_empty()),
        aggregate_rate: Some(total),
        ..WorkloadSpec::default()
    };
    for s in specs {
        let rate = s.aggregate_rate.unwrap_or(0.0);
        let sum_f: f64 = s.clients.iter().filter_map(|c| c.rate_fraction).sum();
        for c in &s.clients {
            let mut c = c.clone();
            c.rate_fraction = c.rate_fraction.map(|f| f / sum_f * rate / total);
            out.clients.push(c);
        }
        if let Some(n) = s.num_requests.filter(|&n| n > 0) {
            out.num_requests = Some(out.num_requests.unwrap_or(0) + n);
        }
        if let Some(h) = s.horizon.filter(|&h| h > 0) {
            out.horizon = Some(out.horizon.map_or(h, |o| o.max(h)));
        }
        if let Some(t) = &s.goodput_slo_targets {
            let merged = out.goodput_slo_targets.get_or_insert_with(Default::default);
            for (k, v) in t {
                merged.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    crate::validate::validate(&out).map_err(|e| e.in_file("composed spec"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{SyntheticParams, preset_spec};

    #[test]
    fn absolute_rates_are_preserved() {
        let a = preset_spec("chatbot", &SyntheticParams { rate: 3.0, ..Default::default() }).unwrap();
        let mut b = preset_spec(
            "summarization",
            &SyntheticParams { rate: 1.0, num_requests: 50, ..Default::default() },
        )
        .unwrap();
        b.clients.push(b.clients[0].clone());
        b.clients[1].rate_fraction = Some(3.0);
        let c = compose(&[a, b]).unwrap();
        assert_eq!(c.aggregate_rate, Some(4.0));
        let rates: Vec<f64> = c.clients.iter().map(|cl| 4.0 * cl.rate_fraction.unwrap()).collect();
        for (got, want) in rates.iter().zip([3.0, 0.25, 0.75]) {
            assert!((got - want).abs() < 1e-9, "{rates:?}");
        }
        assert_eq!(c.num_requests, Some(150));
        let ip = preset_spec("general", &SyntheticParams::default()).unwrap();
        let e = compose(&[c, ip]).unwrap_err().to_string();
        assert_eq!(e, "spec #2: inference_perf: cannot be composed; only client-based specs can");
    }
}
