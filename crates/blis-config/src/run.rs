//! Carrying out a [`RunConfig`]: the one place a run is assembled (request source, simulator,
//! output files) and its metrics document produced. The CLI's `run` and `replay`, sweep rows,
//! calibration experiments and the Python binding all come through here.

use blis_sim::metrics::RequestRecord;
use blis_sim::report::RunDoc;
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
    /// Per-request records (when they were kept), in request-id order.
    pub fn records(&self) -> Vec<&RequestRecord> {
        let mut records: Vec<&RequestRecord> =
            self.report.instances.iter().flat_map(|m| m.records.iter()).collect();
        records.sort_by_key(|r| r.request_id);
        records
    }
}

impl RunConfig {
    /// A fresh request source for this run.
    pub fn source(&self) -> Result<Box<dyn RequestSource + Send>, ConfigError> {
        match &self.workload {
            WorkloadPlan::Spec { spec, overrides } => blis_workload::build_source(spec, overrides)
                .map_err(|e| ConfigError::new("workload-spec", "workload", e.to_string())),
            WorkloadPlan::Trace { records, seed, file } => {
                blis_workload::TraceSource::new(records.clone(), *seed, file)
                    .map(|s| Box::new(s) as Box<dyn RequestSource + Send>)
                    .map_err(|e| ConfigError::new("workload-trace", "--workload-trace", e.to_string()))
            }
        }
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
        self.outputs.results_path.is_some() || self.analysis.detector.is_some()
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
        Ok(RunOutcome { doc: self.document(&report), report })
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
        let doc = self.document(&report);
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
            rec.write(h, c, mode, self.sim.seed, &self.spec)
                .map_err(|e| RunError::Config(ConfigError::new("trace-output", "--trace-output", e)))?;
        }
        files.extend(metrics);
        files.extend(results);
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
        let mut doc = RunDoc::from_report(report);
        if !self.analysis.summarize_trace {
            doc.trace_summary = None;
        }
        if let Some(w) = &self.analysis.fitness {
            doc.fitness = Some(w.evaluate(&doc.cluster));
        }
        if let Some(d) = self.analysis.detector {
            let records = report.instances.iter().flat_map(|m| m.records.iter());
            let samples = saturation::samples_from_records(records);
            let c = &doc.cluster;
            let unfinished = c.injected_requests.saturating_sub(c.completed_requests);
            doc.saturation = Some(saturation::detect(d, &samples, unfinished, self.analysis.final_window_us));
        }
        doc.config = Some(self.recorded_config());
        doc
    }

    /// The configuration recorded in every metrics document: the resolved description plus
    /// what the simulator derived from the model and hardware.
    pub fn recorded_config(&self) -> serde_json::Value {
        let mut map = self.spec.to_map();
        map.insert("derived".into(), serde_json::to_value(self.derived).expect("derived serializes"));
        serde_json::Value::Object(map)
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
