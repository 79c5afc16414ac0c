//! `blis replay` (a TraceV2 trace through the same engine as `blis run`), the trace-based
//! workload flags of `blis run` (`--workload-trace`, `--export-workload-trace`), and the
//! post-run analysis and output shared by both (`--fitness-weights`, `--post-hoc-detector`,
//! `--metrics-path`, `--results-path`).
//!
//! An exported trace carries each prompt's exact token provenance, so replaying it with the
//! same engine and cluster flags reproduces the run request for request (INV-13).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blis_sim::SimReport;
use blis_sim::fitness::FitnessWeights;
use blis_sim::metrics::RequestRecord;
use blis_sim::report::RunDoc;
use blis_sim::saturation::{self, Detector};
use blis_workload::{Outcome, RequestSource, RequestSpec, TraceHeader, TraceRecord, TraceSource};
use clap::Args;

use crate::args::{ClusterArgs, EngineArgs, RunArgs};
use crate::run::{self, CliResult};

/// Post-run analyses added to the metrics document.
#[derive(Args, Debug, Clone, Default)]
pub struct AnalysisArgs {
    /// Add a `fitness` score to the output: "key:weight,…" with weights ≥ 0; keys throughput,
    /// tokens_per_sec, p99_ttft, p50_ttft, mean_ttft, p99_e2e, p50_e2e, mean_e2e.
    #[arg(long)]
    pub fitness_weights: Option<String>,
    /// Add a post-hoc `saturation` verdict: composite, threshold, backlog-drift.
    #[arg(long, visible_alias = "detectors")]
    pub post_hoc_detector: Option<String>,
    /// Final window of the saturation verdict in seconds (default 30; backlog-drift 60).
    #[arg(long, allow_hyphen_values = true)]
    pub saturation_final_window: Option<f64>,
}

/// Validated [`AnalysisArgs`].
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub fitness: Option<FitnessWeights>,
    pub detector: Option<Detector>,
    pub final_window_us: Option<u64>,
}

impl AnalysisArgs {
    /// Checks the flags (before anything runs or is written).
    pub fn resolve(&self) -> CliResult<Analysis> {
        let fitness = match &self.fitness_weights {
            None => None,
            Some(text) => {
                let w = FitnessWeights::parse(text).map_err(|e| format!("--fitness-weights: {e}"))?;
                (!w.is_empty()).then_some(w)
            }
        };
        let detector = match &self.post_hoc_detector {
            None => None,
            Some(name) => Some(Detector::by_name(name).ok_or_else(|| {
                format!("--post-hoc-detector: unknown '{name}' (accepted: {})", saturation::NAMES.join(", "))
            })?),
        };
        let final_window_us = match self.saturation_final_window {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 => Some((s * 1e6).round() as u64),
            Some(s) => return Err(format!("--saturation-final-window: must be > 0 seconds, got {s}")),
        };
        if final_window_us.is_some() && detector.is_none() {
            eprintln!("warning: --saturation-final-window has no effect without --post-hoc-detector");
        }
        Ok(Analysis { fitness, detector, final_window_us })
    }
}

impl Analysis {
    /// Whether the analyses need a record per request (the saturation detectors do).
    pub fn needs_records(&self) -> bool {
        self.detector.is_some()
    }
}

/// Trace-based workloads of `blis run`.
#[derive(Args, Debug, Clone, Default)]
pub struct TraceWorkloadArgs {
    /// Replay this TraceV2 data CSV as the workload (instead of --workload / --workload-spec).
    #[arg(long, value_name = "FILE.csv")]
    pub workload_trace: Option<PathBuf>,
    /// Header YAML of --workload-trace (its workload_seed seeds the tokens of rows that carry
    /// no token provenance).
    #[arg(long, requires = "workload_trace")]
    pub trace_header: Option<PathBuf>,
    /// Write the requests of this run as a TraceV2 trace, PREFIX.yaml + PREFIX.csv, that
    /// `blis replay` (or `--workload-trace`) reproduces exactly.
    #[arg(long, value_name = "PREFIX")]
    pub export_workload_trace: Option<PathBuf>,
}

/// Flags of `blis replay`.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Trace header YAML (optional: without it the workload seed defaults to 42).
    #[arg(long)]
    pub trace_header: Option<PathBuf>,
    /// Trace data CSV, one row per request.
    #[arg(long)]
    pub trace_data: PathBuf,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// Write the replayed requests as PREFIX.yaml + PREFIX.csv (mode "replayed").
    #[arg(long, value_name = "PREFIX")]
    pub export_workload_trace: Option<PathBuf>,
    /// Master seed (cluster streams; also the token seed of rows without provenance, over the
    /// header's workload_seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated-time limit (µs). Default: none (every request runs to completion, as in
    /// `blis run`, so a replay with the run's flags reproduces it).
    #[arg(long)]
    pub horizon: Option<u64>,
    /// Also write the metrics document to this file.
    #[arg(long)]
    pub metrics_path: Option<PathBuf>,
    /// Write one record per request (JSON array, as `blis run`) to this file.
    #[arg(long)]
    pub results_path: Option<PathBuf>,
    /// Progress bar on stderr: auto (when stderr is a terminal), always, never.
    #[arg(long, default_value = "auto")]
    pub progress: String,
}

/// A trace as a request source, and the workload seed it replays under.
pub struct LoadedTrace {
    pub source: TraceSource,
    pub seed: u64,
}

/// Reads a TraceV2 header (optional) and data CSV. `seed` overrides the header's seed.
pub fn load_trace(header: Option<&Path>, data: &Path, seed: Option<u64>) -> CliResult<LoadedTrace> {
    let header_seed = match header {
        Some(h) => blis_workload::read_trace_header(h).map_err(|e| e.to_string())?.workload_seed,
        None => None,
    };
    let records = blis_workload::read_trace_records(data).map_err(|e| e.to_string())?;
    if records.is_empty() {
        return Err(format!("{}: the trace has no requests", data.display()));
    }
    let seed = seed.or(header_seed.map(|s| s as u64)).unwrap_or(42);
    let source = TraceSource::new(records, seed, &data.display().to_string()).map_err(|e| e.to_string())?;
    Ok(LoadedTrace { source, seed })
}

/// Records every request a source yields (including closed-loop follow-ups) for export.
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

impl Recorded {
    /// Writes `PREFIX.yaml` + `PREFIX.csv` (rows in arrival order). Requests the source had
    /// produced but the horizon kept out are included; replaying under the same horizon
    /// ignores them again.
    pub fn write(&self, prefix: &Path, mode: &str, seed: u64) -> CliResult<()> {
        let mut records = std::mem::take(&mut *self.0.lock().expect("not poisoned"));
        records.sort_by_key(|r| (r.send_time_us, r.request_id));
        let (h, c) = export_paths(prefix);
        let header = TraceHeader { mode: mode.into(), ..TraceHeader::generated(seed) };
        blis_workload::write_trace(&h, &c, &header, &records)
            .map_err(|e| format!("--export-workload-trace: {e}"))
    }
}

/// `PREFIX.yaml`, `PREFIX.csv`.
pub fn export_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".yaml"), with(".csv"))
}

/// The request source of `blis run`: `--workload-trace` or the workload flags, wrapped in a
/// [`Recorder`] when `--export-workload-trace` asks for the requests.
pub fn run_source(args: &RunArgs) -> CliResult<(Box<dyn RequestSource + Send>, Option<Recorded>)> {
    let t = &args.trace_workload;
    let source: Box<dyn RequestSource + Send> = match &t.workload_trace {
        Some(csv) => {
            let w = &args.workload;
            if w.workload.is_some() || w.workload_spec.is_some() {
                return Err("--workload-trace: mutually exclusive with --workload and --workload-spec".into());
            }
            if w.rate.is_some() || w.num_requests.is_some() {
                eprintln!("warning: --rate and --num-requests are ignored with --workload-trace");
            }
            Box::new(load_trace(t.trace_header.as_deref(), csv, args.seed)?.source)
        }
        None => run::build_source(&args.workload, args.seed, args.horizon)?,
    };
    Ok(match t.export_workload_trace {
        Some(_) => {
            let (s, r) = Recorder::wrap(source);
            (s, Some(r))
        }
        None => (source, None),
    })
}

/// Where a run's outputs go.
pub struct Outputs<'a> {
    pub analysis: &'a Analysis,
    pub summarize_trace: bool,
    pub metrics_path: Option<&'a Path>,
    pub results_path: Option<&'a Path>,
}

/// Builds the metrics document (with the requested analyses), writes the files and prints the
/// document on stdout.
pub fn emit(report: &SimReport, out: &Outputs) -> CliResult<()> {
    let mut doc = RunDoc::from_report(report);
    if !out.summarize_trace {
        doc.trace_summary = None;
    }
    if let Some(w) = &out.analysis.fitness {
        doc.fitness = Some(w.evaluate(&doc.cluster));
    }
    if let Some(d) = out.analysis.detector {
        let samples = saturation::samples_from_records(all_records(report));
        let c = &doc.cluster;
        let unfinished = c.injected_requests.saturating_sub(c.completed_requests);
        doc.saturation = Some(saturation::detect(d, &samples, unfinished, out.analysis.final_window_us));
    }
    let text = serde_json::to_string_pretty(&doc).expect("metrics serialize");
    if let Some(path) = out.metrics_path {
        std::fs::write(path, format!("{text}\n"))
            .map_err(|e| format!("--metrics-path: cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = out.results_path {
        let mut records: Vec<&RequestRecord> = all_records(report).collect();
        records.sort_by_key(|r| r.request_id);
        let json = serde_json::to_string_pretty(&records).expect("records serialize");
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| format!("--results-path: cannot write {}: {e}", path.display()))?;
    }
    run::print_stdout(&text)
}

fn all_records(report: &SimReport) -> impl Iterator<Item = &RequestRecord> {
    report.instances.iter().flat_map(|m| m.records.iter())
}

/// `blis replay`.
pub fn replay(args: &ReplayArgs) -> CliResult<()> {
    let analysis = args.analysis.resolve()?;
    let (engine_args, cluster_args, extras) = resolve_policies(args)?;
    let engine = run::resolve_engine(&engine_args)?;
    let mut scenario = run::scenario_from_flags(&engine_args, &cluster_args, engine)?;
    extras.apply_to(&mut scenario);
    let trace = load_trace(args.trace_header.as_deref(), &args.trace_data, args.seed)?;
    scenario.instance.record_requests = args.results_path.is_some() || analysis.needs_records();
    scenario.horizon_us = args.horizon.unwrap_or(u64::MAX);
    scenario.seed = args.seed.unwrap_or(42);
    let mut source: Box<dyn RequestSource + Send> = Box::new(trace.source);
    let mut recorded = None;
    if args.export_workload_trace.is_some() {
        let (wrapped, rec) = Recorder::wrap(source);
        source = wrapped;
        recorded = Some(rec);
    }
    let report = run::simulate(&scenario, source, cluster_args.trace_output.as_deref(), &args.progress)?;
    if let (Some(prefix), Some(rec)) = (&args.export_workload_trace, recorded) {
        rec.write(prefix, "replayed", trace.seed)?;
    }
    emit(
        &report,
        &Outputs {
            analysis: &analysis,
            summarize_trace: cluster_args.summarize_trace,
            metrics_path: args.metrics_path.as_deref(),
            results_path: args.results_path.as_deref(),
        },
    )
}

/// Applies `--policy-config` to the engine and cluster flags exactly as `blis run` does.
fn resolve_policies(args: &ReplayArgs) -> CliResult<(EngineArgs, ClusterArgs, crate::policy_config::Extras)> {
    crate::policy_config::resolve(&args.engine, &args.cluster)
}
