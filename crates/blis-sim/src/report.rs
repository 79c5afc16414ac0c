//! The JSON metrics document (field names and units of the spec's outputs.md).

use serde::Serialize;

use crate::engine::SimReport;
use crate::metrics::{Latencies, Metrics};
use crate::trace::TraceSummary;

/// Aggregate metrics of one instance or of the whole cluster. Times in ms, rates per second.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricsDoc {
    pub instance_id: String,
    pub completed_requests: u64,
    pub injected_requests: u64,
    pub still_queued: u64,
    pub still_running: u64,
    pub rejected_requests: u64,
    pub dropped_unservable: u64,
    pub timed_out_requests: u64,
    pub length_capped_requests: u64,
    /// Requests between arrival and a wait queue when the horizon cut the run.
    pub in_transit_requests: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub vllm_estimated_duration_s: f64,
    pub responses_per_sec: f64,
    pub tokens_per_sec: f64,
    pub ttft_mean_ms: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p90_ms: f64,
    pub ttft_p95_ms: f64,
    pub ttft_p99_ms: f64,
    pub e2e_mean_ms: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p90_ms: f64,
    pub e2e_p95_ms: f64,
    pub e2e_p99_ms: f64,
    pub itl_mean_ms: f64,
    pub itl_p50_ms: f64,
    pub itl_p90_ms: f64,
    pub itl_p95_ms: f64,
    pub itl_p99_ms: f64,
    pub scheduling_delay_p99_ms: f64,
    pub preemption_count: u64,
    pub cache_hit_rate: f64,
    pub prompt_tokens_computed: u64,
    pub prompt_tokens_cached: u64,
    pub peak_kv_blocks: u32,
    pub total_kv_blocks: u64,
}

impl MetricsDoc {
    /// The document's field names, sorted (the metric columns of a sweep table).
    pub fn field_names() -> Vec<String> {
        let zero = metrics_doc(String::new(), &Metrics::default(), 0, 0);
        match serde_json::to_value(zero).expect("metrics serialize") {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!("a struct serializes to an object"),
        }
    }
}

/// Latency figures of one SLO class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassDoc {
    pub slo_class: &'static str,
    pub completed_requests: u64,
    pub ttft_mean_ms: f64,
    pub ttft_p99_ms: f64,
    pub e2e_mean_ms: f64,
    pub e2e_p99_ms: f64,
    pub itl_mean_ms: f64,
    pub itl_p99_ms: f64,
}

/// Totals of one tenant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TenantDoc {
    pub tenant_id: String,
    pub requests: u64,
    pub completed_requests: u64,
    pub output_tokens: u64,
}

/// The whole document printed on stdout.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunDoc {
    #[serde(flatten)]
    pub cluster: MetricsDoc,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassDoc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_tenant: Vec<TenantDoc>,
    /// Jain's index over per-tenant output tokens, (Σx)²/(n·Σx²); 1 when all are zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jain_fairness_index: Option<f64>,
    /// Admission rejections per SLO class (cluster mode, when any).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub shed_by_tier: std::collections::BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_summary: Option<TraceSummary>,
    /// `--fitness-weights` evaluation (outputs.md §9.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fitness: Option<crate::fitness::FitnessDoc>,
    /// `--post-hoc-detector` verdict (outputs.md §9.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<crate::saturation::SaturationDoc>,
    /// Per-instance documents (cluster mode only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<MetricsDoc>,
    /// How the run was configured (the resolved run description), so every result says how
    /// it was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

fn metrics_doc(id: String, m: &Metrics, rejected: u64, in_transit: u64) -> MetricsDoc {
    let Latencies { ttft, e2e, itl, scheduling_delay, completed, output_tokens } = &m.all;
    let (ttft, e2e, itl, sched) = (ttft.summary(), e2e.summary(), itl.summary(), scheduling_delay.summary());
    let duration_s = m.end_us as f64 / 1e6;
    let per_s = |x: u64| if duration_s > 0.0 { x as f64 / duration_s } else { 0.0 };
    MetricsDoc {
        instance_id: id,
        completed_requests: *completed,
        injected_requests: m.injected() + rejected + in_transit,
        still_queued: m.still_queued,
        still_running: m.still_running,
        rejected_requests: rejected,
        dropped_unservable: m.dropped_unservable,
        timed_out_requests: m.timed_out,
        length_capped_requests: m.length_capped,
        in_transit_requests: in_transit,
        total_input_tokens: m.total_input_tokens,
        total_output_tokens: *output_tokens,
        vllm_estimated_duration_s: duration_s,
        responses_per_sec: per_s(*completed),
        tokens_per_sec: per_s(*output_tokens),
        ttft_mean_ms: ms(ttft.mean_us),
        ttft_p50_ms: ms(ttft.p50_us),
        ttft_p90_ms: ms(ttft.p90_us),
        ttft_p95_ms: ms(ttft.p95_us),
        ttft_p99_ms: ms(ttft.p99_us),
        e2e_mean_ms: ms(e2e.mean_us),
        e2e_p50_ms: ms(e2e.p50_us),
        e2e_p90_ms: ms(e2e.p90_us),
        e2e_p95_ms: ms(e2e.p95_us),
        e2e_p99_ms: ms(e2e.p99_us),
        itl_mean_ms: ms(itl.mean_us),
        itl_p50_ms: ms(itl.p50_us),
        itl_p90_ms: ms(itl.p90_us),
        itl_p95_ms: ms(itl.p95_us),
        itl_p99_ms: ms(itl.p99_us),
        scheduling_delay_p99_ms: ms(sched.p99_us),
        preemption_count: m.preemptions,
        cache_hit_rate: m.cache_hit_rate(),
        prompt_tokens_computed: m.prompt_tokens_computed,
        prompt_tokens_cached: m.prompt_tokens_cached,
        peak_kv_blocks: m.peak_kv_blocks,
        total_kv_blocks: m.total_kv_blocks,
    }
}

/// Jain's fairness index of `values`.
pub fn jain_index(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    if sq == 0.0 { 1.0 } else { sum * sum / (values.len() as f64 * sq) }
}

impl RunDoc {
    pub fn from_report(report: &SimReport) -> Self {
        let c = &report.counters;
        let mut cluster = metrics_doc("cluster".into(), &report.cluster, c.rejected, c.in_transit);
        // Arrivals the engine saw are the ground truth for injected requests.
        cluster.injected_requests = c.injected;
        // Per-class figures only say something when there is more than one class.
        let per_class = report
            .cluster
            .by_class
            .iter()
            .filter(|_| report.cluster.by_class.len() > 1)
            .map(|(class, lat)| {
                let (t, e, i) = (lat.ttft.summary(), lat.e2e.summary(), lat.itl.summary());
                ClassDoc {
                    slo_class: class.as_str(),
                    completed_requests: lat.completed,
                    ttft_mean_ms: ms(t.mean_us),
                    ttft_p99_ms: ms(t.p99_us),
                    e2e_mean_ms: ms(e.mean_us),
                    e2e_p99_ms: ms(e.p99_us),
                    itl_mean_ms: ms(i.mean_us),
                    itl_p99_ms: ms(i.p99_us),
                }
            })
            .collect();
        let per_tenant: Vec<TenantDoc> = report
            .cluster
            .by_tenant
            .iter()
            .map(|(t, v)| TenantDoc {
                tenant_id: t.to_string(),
                requests: v.requests,
                completed_requests: v.completed,
                output_tokens: v.output_tokens,
            })
            .collect();
        let jain_fairness_index = (!per_tenant.is_empty())
            .then(|| jain_index(&per_tenant.iter().map(|t| t.output_tokens as f64).collect::<Vec<_>>()));
        let instances = if report.instances.len() > 1 {
            report
                .instances
                .iter()
                .enumerate()
                .map(|(i, m)| metrics_doc(format!("instance_{i}"), m, 0, 0))
                .collect()
        } else {
            Vec::new()
        };
        RunDoc {
            cluster,
            per_class,
            per_tenant,
            jain_fairness_index,
            shed_by_tier: report.counters.rejected_by_class.clone(),
            trace_summary: report.trace.clone(),
            fitness: None,
            saturation: None,
            instances,
            config: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_bounds() {
        assert_eq!(jain_index(&[5.0, 5.0, 5.0]), 1.0);
        assert!((jain_index(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain_index(&[0.0, 0.0]), 1.0);
    }
}
