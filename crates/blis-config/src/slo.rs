//! SLOs: percentile objectives on a run's figures (`--slo "ttft_p99<=500ms,e2e_mean<=5s"`) and
//! per-class goodput targets (`--slo-ttft critical=100ms,standard=500ms`, the reference
//! simulator's syntax and precedence: flags > trace header > workload spec).

use std::collections::BTreeMap;

use blis_sim::measure::{DimTargets, GOODPUT_LABELS};
use blis_sim::report::{MetricsDoc, ObjectiveDoc, RunDoc, SloDoc};
use blis_workload::spec::SloTargets;

use crate::duration::parse_us;

/// One objective: a metrics-document figure (ms) at most a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// As written, trimmed.
    pub text: String,
    /// Field of the metrics document (`ttft_p99_ms`).
    pub field: String,
    pub threshold_ms: f64,
    /// `<` rather than `<=`.
    pub strict: bool,
}

/// The metric names an objective may use (`ttft_p99`, …): every `*_ms` latency figure of the
/// metrics document.
pub fn objective_metrics() -> Vec<String> {
    MetricsDoc::field_names()
        .into_iter()
        .filter_map(|f| f.strip_suffix("_ms").map(str::to_string))
        .filter(|f| ["ttft_", "itl_", "e2e_", "scheduling_delay_"].iter().any(|p| f.starts_with(p)))
        .collect()
}

/// Parses `metric<=duration,…`.
pub fn parse_objectives(text: &str) -> Result<Vec<Objective>, String> {
    let metrics = objective_metrics();
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest, strict) = if let Some((n, r)) = item.split_once("<=") {
            (n, r, false)
        } else if let Some((n, r)) = item.split_once('<') {
            (n, r, true)
        } else {
            return Err(format!("'{item}' is not metric<=duration (e.g. ttft_p99<=500ms)"));
        };
        let name = name.trim().trim_end_matches("_ms");
        if !metrics.iter().any(|m| m == name) {
            return Err(format!("unknown metric '{name}' in '{item}' (accepted: {})", metrics.join(", ")));
        }
        let us = parse_us(rest.trim()).map_err(|e| format!("'{item}': {e}"))?;
        if !(us.is_finite() && us > 0.0) {
            return Err(format!("'{item}': the threshold must be > 0"));
        }
        out.push(Objective {
            text: item.to_string(),
            field: format!("{name}_ms"),
            threshold_ms: us / 1e3,
            strict,
        });
    }
    if out.is_empty() {
        return Err("no objective given (e.g. ttft_p99<=500ms)".into());
    }
    Ok(out)
}

/// Evaluates objectives against a document (whose `steady_state` is already set).
pub fn evaluate(objectives: &[Objective], doc: &RunDoc) -> SloDoc {
    let map = match serde_json::to_value(&doc.cluster).expect("metrics serialize") {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a struct serializes to an object"),
    };
    let results: Vec<ObjectiveDoc> = objectives
        .iter()
        .map(|o| {
            let value_ms = map.get(&o.field).and_then(serde_json::Value::as_f64).unwrap_or(f64::INFINITY);
            let met = if o.strict { value_ms < o.threshold_ms } else { value_ms <= o.threshold_ms };
            ObjectiveDoc {
                objective: o.text.clone(),
                metric: o.field.clone(),
                threshold_ms: o.threshold_ms,
                value_ms: if value_ms.is_finite() { value_ms } else { 0.0 },
                met,
            }
        })
        .collect();
    let all = results.iter().all(|r| r.met);
    let no_samples = doc.cluster.completed_requests == 0;
    let steady = doc.is_steady();
    let reason = if no_samples {
        Some("no request completed".to_string())
    } else if !steady {
        Some(format!(
            "the run is {} ({}): its figures do not describe a steady state",
            doc.steady_state.verdict.as_str(),
            doc.steady_state.reasons.join("; ")
        ))
    } else {
        None
    };
    SloDoc { met: all && steady && !no_samples, objectives: results, reason }
}

/// Parses `class=duration,…` into class → ms (the reference's `--slo-ttft` syntax).
pub fn parse_class_durations(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    let t = text.trim();
    if t.is_empty() {
        return Ok(out);
    }
    for pair in t.split(',').map(str::trim) {
        if pair.is_empty() {
            return Err(format!("empty pair in '{t}' (expected class=duration)"));
        }
        let Some((class, d)) = pair.split_once('=') else {
            return Err(format!("'{pair}' is not class=duration (e.g. critical=100ms)"));
        };
        let class = class.trim();
        if !GOODPUT_LABELS.contains(&class) {
            return Err(format!(
                "unknown class '{class}' in '{pair}' (accepted: {})",
                GOODPUT_LABELS.join(", ")
            ));
        }
        let us = parse_us(d.trim()).map_err(|e| format!("'{pair}': {e}"))?;
        if !(us.is_finite() && us > 0.0) {
            return Err(format!("'{pair}': the duration must be > 0"));
        }
        out.insert(class.to_string(), us / 1e3);
    }
    Ok(out)
}

/// Per-dimension class → ms maps from the flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliTargets {
    pub ttft: BTreeMap<String, f64>,
    pub itl: BTreeMap<String, f64>,
    pub e2e: BTreeMap<String, f64>,
}

/// Merges targets, each dimension on its own: flags > trace header > workload spec. A class
/// is in the result when any source names it with a non-zero dimension.
pub fn merge_targets(
    cli: &CliTargets,
    header: Option<&BTreeMap<String, SloTargets>>,
    spec: Option<&BTreeMap<String, SloTargets>>,
) -> Result<[Option<DimTargets>; 6], String> {
    let mut out: [Option<DimTargets>; 6] = Default::default();
    let pos = |v: Option<f64>| v.filter(|x| *x > 0.0);
    for (label, name) in GOODPUT_LABELS.iter().enumerate() {
        let mut t = DimTargets::default();
        for layer in [spec, header].into_iter().flatten() {
            if let Some(x) = layer.get(*name) {
                for (ms, slot) in
                    [(x.ttft_ms, &mut t.ttft_us), (x.itl_ms, &mut t.itl_us), (x.e2e_ms, &mut t.e2e_us)]
                {
                    if let Some(v) = pos(ms) {
                        *slot = Some(v * 1e3);
                    }
                }
            }
        }
        if let Some(v) = cli.ttft.get(*name) {
            t.ttft_us = Some(v * 1e3);
        }
        if let Some(v) = cli.itl.get(*name) {
            t.itl_us = Some(v * 1e3);
        }
        if let Some(v) = cli.e2e.get(*name) {
            t.e2e_us = Some(v * 1e3);
        }
        if !t.is_empty() {
            out[label] = Some(t);
        }
    }
    for layer in [spec, header].into_iter().flatten() {
        if let Some(bad) = layer.keys().find(|k| !GOODPUT_LABELS.contains(&k.as_str())) {
            return Err(format!(
                "goodput_slo_targets: unknown class '{bad}' (accepted: {})",
                GOODPUT_LABELS.join(", ")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse_and_refuse() {
        let o = parse_objectives("ttft_p99<=500ms, e2e_mean<5s").unwrap();
        assert_eq!(o[0].field, "ttft_p99_ms");
        assert_eq!(o[0].threshold_ms, 500.0);
        assert!(!o[0].strict);
        assert_eq!((o[1].field.as_str(), o[1].threshold_ms, o[1].strict), ("e2e_mean_ms", 5000.0, true));
        assert!(parse_objectives("ttft_p98<=1s").unwrap_err().contains("unknown metric 'ttft_p98'"));
        assert!(parse_objectives("ttft_p99=1s").is_err());
        assert!(parse_objectives("ttft_p99<=1").unwrap_err().contains("missing unit"));
        assert!(parse_objectives("").is_err());
    }

    #[test]
    fn class_durations_and_precedence() {
        let c = parse_class_durations("critical=100ms,standard=0.5s").unwrap();
        assert_eq!(c["critical"], 100.0);
        assert_eq!(c["standard"], 500.0);
        assert!(parse_class_durations("gold=1s").unwrap_err().contains("unknown class 'gold'"));
        assert!(parse_class_durations("critical").is_err());
        assert!(parse_class_durations("critical=-1s").is_err());
        let spec: BTreeMap<String, SloTargets> =
            [("critical".to_string(), SloTargets { ttft_ms: Some(50.0), itl_ms: Some(10.0), e2e_ms: None })]
                .into();
        let header: BTreeMap<String, SloTargets> =
            [("critical".to_string(), SloTargets { ttft_ms: Some(70.0), ..Default::default() })].into();
        let cli = CliTargets { ttft: [("critical".to_string(), 90.0)].into(), ..Default::default() };
        let t = merge_targets(&cli, Some(&header), Some(&spec)).unwrap();
        let crit = t[0].unwrap();
        assert_eq!(crit.ttft_us, Some(90_000.0));
        assert_eq!(crit.itl_us, Some(10_000.0));
        assert_eq!(crit.e2e_us, None);
        let t = merge_targets(&CliTargets::default(), Some(&header), Some(&spec)).unwrap();
        assert_eq!(t[0].unwrap().ttft_us, Some(70_000.0));
        assert!(t[1].is_none());
    }
}
