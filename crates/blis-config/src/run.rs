//! Carrying out a [`RunConfig`]: the one place a run is assembled (request source, simulator,
//! output files) and its metrics document produced. The CLI's `run` and `replay`, sweep rows,
//! calibration experiments and the Python binding all come through here.

use blis_sim::metrics::RequestRecord;
use blis_sim::report::{PoolDoc, RunDoc};
use blis_sim::saturation;
use blis_sim::{Progress, SimError, SimReport, Simulation};
use blis_workload::RequestSource;

use crate::error::{ConfigError, RunError};
use crate::export::{Recorded, Recorder};
use crate::outputs::{PendingFile, commit_all, trace_paths};
use crate::resolve::{RunConfig, WorkloadPlan};

/// What a finished run produced.
pub struct RunOutcome {
    /// The metrics document (stdout of `blis run`), with the run's configuration.
    pub doc: RunDoc,
    pub report: SimReport,
}

impl RunOutcome {
    /// What a reader of the numbers should know about this run (shown on stderr by the CLI).
    pub fn warnings(&self) -> Vec<String> {
        let c = &self.doc.cluster;
        let mut out = Vec::new();
        if c.injected_requests == 0 {
            out.push(
                "no request arrived: every metric is empty (the horizon ends before the first arrival, \
                 or the rate is too low)"
                    .to_string(),
            );
        } else if let Some(w) = steady_warning(&self.doc) {
            out.push(w);
        }
        out
    }

    /// Per-request records (when they were kept), in request-id order.
    pub fn records(&self) -> Vec<&RequestRecord> {
        let mut records: Vec<&RequestRecord> =
            self.report.instances.iter().flat_map(|m| m.records.iter()).collect();
        records.sort_by_key(|r| r.request_id);
        records
    }
}

impl WorkloadPlan {
    /// A fresh request source of this workload.
    pub fn source(&self) -> Result<Box<dyn RequestSource + Send>, ConfigError> {
        match self {
            WorkloadPlan::Spec { spec, overrides, generation } => {
                blis_workload::build_source_with(spec, overrides, *generation)
                    .map_err(|e| ConfigError::new("workload-spec", "workload", e.to_string()))
            }
            WorkloadPlan::Trace { records, seed, file, sessions } => {
                blis_workload::TraceSource::with_sessions(records.clone(), *seed, file, *sessions)
                    .map(|s| Box::new(s) as Box<dyn RequestSource + Send>)
                    .map_err(|e| ConfigError::new("workload-trace", "--workload-trace", e.to_string()))
            }
        }
    }
}

impl RunConfig {
    /// A fresh request source for this run.
    pub fn source(&self) -> Result<Box<dyn RequestSource + Send>, ConfigError> {
        self.workload.source()
    }

    /// How many requests the workload will send, when it is known up front.
    pub fn expected_requests(&self) -> Option<u64> {
        match &self.workload {
            WorkloadPlan::Trace { records, .. } => Some(records.len() as u64),
            WorkloadPlan::Spec { .. } => self.source().ok()?.expected_requests(),
        }
    }

    /// Whether the run keeps a record per request (for `--results-path` or a detector).
    pub fn records_requests(&self) -> bool {
        self.outputs.results_path.is_some() || !self.analysis.detectors.is_empty()
    }

    /// Keeps a record per request even when no output asks for one, for callers that read
    /// [`RunOutcome::records`] themselves (the Python binding's `records=True`). Records never
    /// change the metrics.
    pub fn keep_records(&mut self) {
        for pool in &mut self.sim.pools {
            pool.instance.record_requests = true;
        }
    }

    /// The simulator over this run's requests, writing decision records to `trace_sink`.
    /// `export`: wrap the source so its requests can be exported afterwards.
    pub fn build(
        &self,
        trace_sink: Option<Box<dyn std::io::Write + Send>>,
        export: bool,
    ) -> Result<(Simulation, Option<Recorded>), ConfigError> {
        let mut sim = self.sim.clone();
        let record = self.records_requests();
        for pool in &mut sim.pools {
            pool.instance.record_requests |= record;
        }
        let mut source = self.source()?;
        let mut recorded = None;
        if export {
            let (wrapped, r) = Recorder::wrap(source);
            source = wrapped;
            recorded = Some(r);
        }
        let simulation = sim.build(source, trace_sink).map_err(|e| ConfigError::new("", "", e))?;
        Ok((simulation, recorded))
    }

    /// Runs without writing any file and returns the metrics document.
    pub fn simulate(&self) -> Result<RunOutcome, RunError> {
        let (simulation, _) = self.build(None, false)?;
        let report = simulation.run(|_| {}).map_err(sim_error)?;
        let mut doc = self.document(&report);
        self.add_replicas(&mut doc)?;
        Ok(RunOutcome { doc, report })
    }

    /// This run under another seed (workload and cluster streams), for replicas.
    pub fn with_seed(&self, seed: u64) -> RunConfig {
        let mut c = self.clone();
        c.sim.seed = seed;
        match &mut c.workload {
            WorkloadPlan::Spec { overrides, .. } => overrides.seed = Some(seed),
            WorkloadPlan::Trace { seed: s, .. } => *s = seed,
        }
        c.spec.seed = Some(seed);
        c.replicas = 1;
        for pool in &mut c.sim.pools {
            pool.instance.record_requests = false;
        }
        c
    }

    /// `--replicas N`: runs seeds base+1 … base+N−1 in parallel and adds their spread to the
    /// document and to its prediction intervals.
    fn add_replicas(&self, doc: &mut RunDoc) -> Result<(), RunError> {
        use rayon::prelude::*;
        if self.replicas <= 1 {
            return Ok(());
        }
        let base = self.sim.seed;
        let seeds: Vec<u64> = (0..u64::from(self.replicas)).map(|k| base.wrapping_add(k)).collect();
        let others: Vec<RunDoc> = seeds[1..]
            .par_iter()
            .map(|&seed| {
                let c = self.with_seed(seed);
                let (simulation, _) = c.build(None, false)?;
                let report = simulation.run(|_| {}).map_err(sim_error)?;
                Ok(RunDoc::from_report(&report))
            })
            .collect::<Result<_, RunError>>()?;
        let docs: Vec<&blis_sim::report::MetricsDoc> =
            std::iter::once(&doc.cluster).chain(others.iter().map(|d| &d.cluster)).collect();
        let spread = crate::interval::spread(&seeds, &docs);
        doc.prediction_interval =
            Some(crate::interval::prediction_interval(self, &doc.cluster, Some(&spread)));
        doc.replicas = Some(spread);
        Ok(())
    }

    /// Runs, writes every output file atomically, and returns the metrics document.
    /// `on_progress` is called every few thousand events.
    pub fn execute(&self, on_progress: impl FnMut(Progress)) -> Result<RunOutcome, RunError> {
        let o = &self.outputs;
        // Every output is created (as a temporary file) before anything is simulated.
        let mut metrics =
            o.metrics_path.as_deref().map(|p| PendingFile::create(p, "metrics-path")).transpose()?;
        let mut results =
            o.results_path.as_deref().map(|p| PendingFile::create(p, "results-path")).transpose()?;
        let mut export = match &o.trace_output {
            Some(prefix) => {
                let (h, c) = trace_paths(prefix);
                Some((PendingFile::create(&h, "trace-output")?, PendingFile::create(&c, "trace-output")?))
            }
            None => None,
        };
        let mut report_file = o.report.as_deref().map(|p| PendingFile::create(p, "report")).transpose()?;
        let mut timeseries =
            o.timeseries_path.as_deref().map(|p| PendingFile::create(p, "timeseries-path")).transpose()?;
        let mut saturation_file = o
            .saturation_report
            .as_deref()
            .map(|p| PendingFile::create(p, "saturation-report"))
            .transpose()?;
        let decisions = o
            .decision_trace_path
            .as_deref()
            .map(|p| PendingFile::create(p, "decision-trace-path"))
            .transpose()?;
        let sink: Option<Box<dyn std::io::Write + Send>> = match &decisions {
            Some(f) => {
                let file = f.try_clone().map_err(|e| io_error("decision-trace-path", f, e))?;
                Some(Box::new(std::io::BufWriter::new(file)))
            }
            None => None,
        };
        let (simulation, recorded) = self.build(sink, export.is_some())?;
        let report = simulation.run(on_progress).map_err(sim_error)?;
        let mut doc = match saturation_file.as_mut() {
            Some(f) => {
                let mut out = std::io::BufWriter::new(f.writer());
                let doc = self.document_with(&report, Some(&mut out));
                let doc = doc.and_then(|d| std::io::Write::flush(&mut out).map(|()| d));
                drop(out);
                doc.map_err(|e| io_error("saturation-report", saturation_file.as_ref().expect("open"), e))?
            }
            None => self.document(&report),
        };
        self.add_replicas(&mut doc)?;
        let outcome = RunOutcome { doc, report };
        let mut files = Vec::new();
        if let Some(f) = metrics.as_mut() {
            let text =
                format!("{}\n", serde_json::to_string_pretty(&outcome.doc).expect("metrics serialize"));
            f.write_all(text.as_bytes()).map_err(|e| io_error("metrics-path", f, e))?;
        }
        if let Some(f) = results.as_mut() {
            let json = serde_json::to_string_pretty(&outcome.records()).expect("records serialize");
            f.write_all(format!("{json}\n").as_bytes()).map_err(|e| io_error("results-path", f, e))?;
        }
        if let (Some((h, c)), Some(rec)) = (export.as_mut(), recorded) {
            let mode =
                if matches!(self.workload, WorkloadPlan::Trace { .. }) { "replayed" } else { "generated" };
            rec.write(h, c, mode, self.sim.seed, &self.spec, &self.sim.measurement.goodput)
                .map_err(|e| RunError::Config(ConfigError::new("trace-output", "--trace-output", e)))?;
        }
        if let Some(f) = report_file.as_mut() {
            let page = self.page(&outcome);
            f.write_all(page.as_bytes()).map_err(|e| io_error("report", f, e))?;
        }
        if let Some(f) = timeseries.as_mut() {
            let csv = outcome.doc.timeseries.to_csv();
            f.write_all(csv.as_bytes()).map_err(|e| io_error("timeseries-path", f, e))?;
        }
        files.extend(metrics);
        files.extend(results);
        files.extend(report_file);
        files.extend(timeseries);
        files.extend(saturation_file);
        if let Some((h, c)) = export {
            files.push(h);
            files.push(c);
        }
        files.extend(decisions);
        commit_all(files).map_err(|e| RunError::Config(ConfigError::new("", "output", e)))?;
        Ok(outcome)
    }

    /// The metrics document of a finished run: metrics, the requested analyses, the
    /// configuration that made it.
    pub fn document(&self, report: &SimReport) -> RunDoc {
        self.document_with(report, None).expect("no saturation report is written")
    }

    /// [`RunConfig::document`], writing the detectors' per-event verdicts to `saturation_report`.
    fn document_with(
        &self,
        report: &SimReport,
        saturation_report: Option<&mut dyn std::io::Write>,
    ) -> std::io::Result<RunDoc> {
        let mut doc = RunDoc::from_report(report);
        if self.spec.pools.is_some() || self.sim.pd.is_some() {
            let pools: Vec<(PoolDoc, usize)> = self
                .sim
                .pools
                .iter()
                .map(|p| {
                    let doc = PoolDoc {
                        pool: p.name.clone(),
                        hardware: p.gpu.name.clone(),
                        tp: p.tp,
                        model: p.model.name.clone(),
                        role: p.role.map(blis_sim::PoolRole::as_str),
                        instances: None,
                    };
                    (doc, p.instances)
                })
                .collect();
            doc.add_pools(report, &pools);
        }
        if let Some(models) = self.sim.model_routing() {
            doc.add_models(report, models.models());
        }
        if !self.analysis.summarize_trace {
            doc.trace_summary = None;
        }
        if let Some(w) = &self.analysis.fitness {
            doc.fitness = Some(w.evaluate(&doc.cluster));
        }
        if !self.analysis.detectors.is_empty() {
            let records = report.instances.iter().flat_map(|m| m.records.iter());
            let samples = saturation::samples_from_records(records);
            let c = &doc.cluster;
            let unfinished = c.injected_requests.saturating_sub(c.completed_requests);
            let sat = saturation::detect_all(
                &self.analysis.detectors,
                &samples,
                unfinished,
                self.analysis.final_window_us,
                saturation_report,
            )?;
            if sat.verdict == saturation::Verdict::Overloaded {
                let s = &mut doc.steady_state;
                s.verdict = blis_sim::steady::SteadyVerdict::Overloaded;
                s.reasons.insert(0, format!("the post-hoc {} detector says OVERLOADED", sat.detector));
            }
            doc.saturation = Some(sat);
        }
        if !self.analysis.objectives.is_empty() {
            doc.slo = Some(crate::slo::evaluate(&self.analysis.objectives, &doc));
        }
        doc.prediction_interval = Some(crate::interval::prediction_interval(self, &doc.cluster, None));
        doc.config = Some(self.recorded_config());
        Ok(doc)
    }

    /// The `--report` page of a finished run.
    pub fn page(&self, outcome: &RunOutcome) -> String {
        let model = self.sim.pools[0].model.name.clone();
        let title = if self.spec.pools.is_some() {
            let pools: Vec<String> = self
                .sim
                .pools
                .iter()
                .map(|p| format!("{} × {} (TP {})", p.instances, p.gpu.name, p.tp))
                .collect();
            format!("BLIS run: {model} on {}", pools.join(" + "))
        } else {
            format!(
                "BLIS run: {} on {} × {} (TP {})",
                self.spec.model.as_deref().unwrap_or("?"),
                self.sim.num_instances(),
                self.spec.hardware.as_deref().unwrap_or("?"),
                self.spec.tp.unwrap_or(1)
            )
        };
        crate::html::page(&title, &crate::html::run_body(&outcome.doc, &charts(&outcome.report)))
    }

    /// The configuration recorded in every metrics document: the resolved description plus
    /// what the simulator derived from the model and hardware.
    pub fn recorded_config(&self) -> serde_json::Value {
        let mut map = self.spec.to_map();
        // Execution, not semantics: documents are the same bytes whatever the thread count.
        map.remove("threads");
        map.insert("derived".into(), serde_json::to_value(&self.derived).expect("derived serializes"));
        serde_json::Value::Object(map)
    }
}

/// Latency CDFs of a run (ms), a few hundred points each.
pub fn charts(report: &SimReport) -> crate::html::RunCharts {
    let ms = |v: Vec<(f64, f64)>| v.into_iter().map(|(x, f)| (x / 1e3, f)).collect();
    let all = &report.cluster.all;
    crate::html::RunCharts {
        ttft_cdf: ms(all.ttft.cdf(400)),
        itl_cdf: ms(all.itl.cdf(400)),
        e2e_cdf: ms(all.e2e.cdf(400)),
    }
}

/// The one-line stderr warning of a run that is not steady (`None` when it is).
pub fn steady_warning(doc: &RunDoc) -> Option<String> {
    let s = &doc.steady_state;
    match s.verdict {
        blis_sim::steady::SteadyVerdict::Stable => None,
        blis_sim::steady::SteadyVerdict::Overloaded => {
            Some(format!("the run is overloaded: {}", s.reasons.join("; ")))
        }
        blis_sim::steady::SteadyVerdict::TooShort => {
            Some(format!("the run is too short for its percentiles: {}", s.reasons.join("; ")))
        }
    }
}

fn sim_error(e: SimError) -> RunError {
    match e {
        SimError::Invariant(what) => RunError::Invariant(what),
        SimError::Io(e) => {
            RunError::Config(ConfigError::new("decision-trace-path", "--decision-trace-path", e.to_string()))
        }
        other @ SimError::TimeLimit { .. } => RunError::Config(ConfigError::new("", "", other.to_string())),
    }
}

fn io_error(key: &str, f: &PendingFile, e: std::io::Error) -> RunError {
    RunError::Config(ConfigError::new(
        key,
        format!("--{key}"),
        format!("cannot write {}: {e}", f.target().display()),
    ))
}
