//! `--trace-output PREFIX`: the run's requests as a TraceV2 pair (PREFIX.yaml + PREFIX.csv).
//! Every prompt's exact token provenance is written, and the header records the cluster the
//! requests ran on (model, hardware, engine limits, policies), so `blis replay` of the pair
//! alone reproduces the run request for request.

use std::sync::{Arc, Mutex};

use blis_workload::{Outcome, RequestSource, RequestSpec, TraceHeader, TraceRecord};

use crate::outputs::PendingFile;
use crate::spec::RunSpec;

/// Records every request a source yields (including closed-loop follow-ups).
pub struct Recorder {
    inner: Box<dyn RequestSource + Send>,
    seen: Arc<Mutex<Vec<TraceRecord>>>,
}

/// The records a [`Recorder`] collected; read after the run.
#[derive(Clone)]
pub struct Recorded(Arc<Mutex<Vec<TraceRecord>>>);

impl Recorder {
    pub fn wrap(inner: Box<dyn RequestSource + Send>) -> (Box<dyn RequestSource + Send>, Recorded) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Box::new(Recorder { inner, seen: seen.clone() }), Recorded(seen))
    }

    fn note(&self, r: &RequestSpec) {
        self.seen.lock().expect("not poisoned").push(TraceRecord::from_request(r));
    }
}

impl RequestSource for Recorder {
    fn next_request(&mut self) -> Option<RequestSpec> {
        let r = self.inner.next_request()?;
        self.note(&r);
        Some(r)
    }

    fn on_request_done(
        &mut self,
        request: &RequestSpec,
        at_us: u64,
        outcome: Outcome,
    ) -> Option<RequestSpec> {
        let r = self.inner.on_request_done(request, at_us, outcome)?;
        self.note(&r);
        Some(r)
    }

    fn follows_up(&self) -> bool {
        self.inner.follows_up()
    }

    fn expected_requests(&self) -> Option<u64> {
        self.inner.expected_requests()
    }

    fn output_reusable(&self, request: &RequestSpec) -> bool {
        self.inner.output_reusable(request)
    }
}

/// Keys of a run description that describe the cluster rather than the workload or the
/// outputs: what a trace header records so that a replay runs on the same cluster.
pub fn cluster_part(spec: &RunSpec) -> serde_json::Value {
    const NOT_CLUSTER: &[&str] = &[
        "workload",
        "workload-spec",
        "workload-trace",
        "trace-header",
        "rate",
        "num-requests",
        "arrival-process",
        "prompt-tokens",
        "prompt-tokens-stdev",
        "prompt-tokens-min",
        "prompt-tokens-max",
        "output-tokens",
        "output-tokens-stdev",
        "output-tokens-min",
        "output-tokens-max",
        "prefix-tokens",
        "timeout",
        "concurrency",
        "session-mode",
        "think-time-ms",
        "think-time-dist",
        "policy-config",
        "metrics-path",
        "results-path",
        "trace-output",
        "decision-trace-path",
        "fitness-weights",
        "post-hoc-detector",
        "saturation-report",
        "saturation-config",
        "saturation-final-window",
        "slo",
        "slo-ttft",
        "slo-itl",
        "slo-e2e",
        "warmup-requests",
        "warmup-s",
        "report",
        "timeseries-path",
        "threads",
    ];
    let mut map = spec.to_map();
    map.retain(|k, _| !NOT_CLUSTER.contains(&k.as_str()));
    serde_json::Value::Object(map)
}

impl Recorded {
    /// Writes the pair into `header` and `data` (rows in arrival order). Requests the source
    /// had produced but the horizon kept out are included; replaying under the same horizon
    /// ignores them again.
    pub fn write(
        &self,
        header_file: &mut PendingFile,
        data_file: &mut PendingFile,
        mode: &str,
        seed: u64,
        config: &RunSpec,
        goodput: &[Option<blis_sim::measure::DimTargets>; 6],
    ) -> Result<(), String> {
        let mut records = std::mem::take(&mut *self.0.lock().expect("not poisoned"));
        records.sort_by_key(|r| (r.send_time_us, r.request_id));
        // The resolved goodput targets travel with the trace (as the reference's headers carry
        // them), so a replay measures goodput against the same SLO.
        let targets: std::collections::BTreeMap<String, blis_workload::spec::SloTargets> = goodput
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let t = (*t)?;
                let ms = |us: Option<f64>| us.map(|v| v / 1e3);
                Some((
                    blis_sim::measure::GOODPUT_LABELS[i].to_string(),
                    blis_workload::spec::SloTargets {
                        ttft_ms: ms(t.ttft_us),
                        itl_ms: ms(t.itl_us),
                        e2e_ms: ms(t.e2e_us),
                    },
                ))
            })
            .collect();
        let header = TraceHeader {
            mode: mode.into(),
            config: Some(cluster_part(config)),
            goodput_slo_targets: (!targets.is_empty()).then_some(targets),
            ..TraceHeader::generated(seed)
        };
        let header_text = blis_workload::trace::header_yaml(&header).map_err(|e| e.to_string())?;
        header_file.write_all(header_text.as_bytes()).map_err(|e| e.to_string())?;
        blis_workload::trace::write_records(data_file.writer(), &records).map_err(|e| e.to_string())
    }
}
