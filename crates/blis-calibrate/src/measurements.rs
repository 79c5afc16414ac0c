//! The measurements file: real vLLM runs with the exact configuration and workload. The
//! workload is an inference-perf description (`workload`), or a trace `blis observe` recorded
//! (`trace`), whose rows are then also the measurements.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use blis_sim::stats::Samples;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
pub struct Measurements {
    #[serde(default)]
    pub about: String,
    pub experiments: Vec<Experiment>,
}

/// One measured run.
#[derive(Debug, Clone, Deserialize)]
pub struct Experiment {
    pub id: String,
    /// HuggingFace model id.
    pub model: String,
    pub hardware: String,
    pub tp: u32,
    #[serde(default)]
    pub precision: String,
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub block_size: u32,
    /// GPU KV blocks vLLM reported (passed as `--total-kv-blocks`).
    pub total_kv_blocks_gpu: u64,
    /// CPU offload blocks (not modelled).
    #[serde(default)]
    pub cpu_kv_blocks: u64,
    /// The inference-perf workload (or `trace`).
    #[serde(default)]
    pub workload: Option<WorkloadDesc>,
    /// An observed trace (`blis observe`) instead of `workload`: replayed as the workload, and
    /// its successful rows give `measured.summary` unless the file states it.
    #[serde(default)]
    pub trace: Option<TraceRef>,
    /// `summary` (all requests) and `stage_k` (requests arriving in load stage k).
    #[serde(default)]
    pub measured: BTreeMap<String, LatencyStats>,
    #[serde(default)]
    pub reference_simulator_predictions: BTreeMap<String, LatencyStats>,
    /// Mean output length of the requests measured (ITL = (E2E − TTFT)/(this − 1)).
    #[serde(skip)]
    pub mean_output_tokens: f64,
}

/// The two files of a TraceV2 trace; relative paths are relative to the measurements file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRef {
    pub header: PathBuf,
    pub data: PathBuf,
}

/// The inference-perf workload of an experiment.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkloadDesc {
    #[serde(default)]
    pub preset: String,
    pub shared_prefix: SharedPrefix,
    pub stages: Vec<Stage>,
    pub num_requests: u64,
    #[serde(default)]
    pub arrivals: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SharedPrefix {
    pub enable_multi_turn_chat: bool,
    pub num_unique_system_prompts: u32,
    pub num_users_per_system_prompt: u32,
    pub output_len: u32,
    pub question_len: u32,
    pub system_prompt_len: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub rate: f64,
    pub duration_s: f64,
}

/// Latency figures in ms. `itl_mean_ms` is `(e2e_mean − ttft_mean)/(output_len − 1)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub ttft_mean_ms: f64,
    pub ttft_p90_ms: f64,
    pub ttft_p99_ms: f64,
    pub e2e_mean_ms: f64,
    pub e2e_p90_ms: f64,
    pub e2e_p99_ms: f64,
    pub itl_mean_ms: f64,
}

impl LatencyStats {
    /// Every figure with its JSON name.
    pub fn fields(&self) -> [(&'static str, f64); 7] {
        [
            ("ttft_mean_ms", self.ttft_mean_ms),
            ("ttft_p90_ms", self.ttft_p90_ms),
            ("ttft_p99_ms", self.ttft_p99_ms),
            ("e2e_mean_ms", self.e2e_mean_ms),
            ("e2e_p90_ms", self.e2e_p90_ms),
            ("e2e_p99_ms", self.e2e_p99_ms),
            ("itl_mean_ms", self.itl_mean_ms),
        ]
    }
}

impl Measurements {
    /// Parses and validates a measurements file: every field is checked against the limits
    /// `blis run` applies to the equivalent flags and workload spec, so a replay can neither
    /// hang (no running slots, no token budget) nor divide by a zero measurement.
    pub fn from_json(text: &str) -> Result<Self, String> {
        Self::from_json_in(text, Path::new(""))
    }

    /// [`Measurements::from_json`] with trace paths relative to `dir`.
    pub fn from_json_in(text: &str, dir: &Path) -> Result<Self, String> {
        let mut m: Self =
            serde_json::from_str(text).map_err(|e| format!("invalid measurements JSON: {e}"))?;
        for (i, e) in m.experiments.iter_mut().enumerate() {
            e.read_trace(dir).map_err(|msg| format!("experiment {} (experiments[{i}]): {msg}", e.id))?;
        }
        if m.experiments.is_empty() {
            return Err("experiments: the file lists no experiment".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, e) in m.experiments.iter().enumerate() {
            // Ids and keys come from the file: line breaks are escaped so messages stay one line.
            let one_line = |msg: String| msg.replace('\n', "\\n").replace('\r', "\\r");
            e.validate().map_err(|msg| one_line(format!("experiment {} (experiments[{i}]): {msg}", e.id)))?;
            if !ids.insert(e.id.as_str()) {
                return Err(one_line(format!(
                    "experiment {} (experiments[{i}]): id: duplicate experiment id",
                    e.id
                )));
            }
        }
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::from_json_in(&text, dir).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Experiment {
    /// Checks one experiment; messages start with the field (`max_num_seqs: ...`).
    fn validate(&self) -> Result<(), String> {
        use blis_workload::limits::{MAX_REQUEST_TOKENS, MAX_STAGE_REQUESTS, MAX_TIME_US, MIN_RATE_PER_S};
        for (field, v) in [("id", &self.id), ("model", &self.model), ("hardware", &self.hardware)] {
            if v.trim().is_empty() {
                return Err(format!("{field}: must not be empty"));
            }
        }
        let at_least = |field: &str, flag: &str, v: u64, min: u64| {
            if v < min {
                Err(format!("{field}: must be ≥ {min} (as blis run's {flag}), got {v}"))
            } else {
                Ok(())
            }
        };
        at_least("tp", "--tp", self.tp.into(), 1)?;
        at_least("block_size", "--block-size-in-tokens", self.block_size.into(), 1)?;
        at_least("max_num_seqs", "--max-num-running-reqs", self.max_num_seqs.into(), 1)?;
        at_least(
            "max_num_batched_tokens",
            "--max-num-scheduled-tokens, one block",
            self.max_num_batched_tokens.into(),
            self.block_size.into(),
        )?;
        at_least("total_kv_blocks_gpu", "--total-kv-blocks", self.total_kv_blocks_gpu, 1)?;
        if self.total_kv_blocks_gpu > blis_model::MAX_KV_BLOCKS {
            return Err(format!(
                "total_kv_blocks_gpu: must be ≤ {} (as blis run's --total-kv-blocks), got {}",
                blis_model::MAX_KV_BLOCKS,
                self.total_kv_blocks_gpu
            ));
        }
        let w = match (&self.workload, &self.trace) {
            (Some(_), Some(_)) => {
                return Err("trace: an experiment has a workload or a trace, not both".into());
            }
            (None, None) => return Err("workload: required (or trace, an observed trace)".into()),
            (None, Some(_)) => return self.validate_stats(),
            (Some(w), None) => w,
        };
        let sp = &w.shared_prefix;
        let lengths = [
            ("num_unique_system_prompts", sp.num_unique_system_prompts, 1, u32::MAX),
            ("num_users_per_system_prompt", sp.num_users_per_system_prompt, 1, u32::MAX),
            ("system_prompt_len", sp.system_prompt_len, 0, MAX_REQUEST_TOKENS),
            ("question_len", sp.question_len, 1, MAX_REQUEST_TOKENS),
            // ITL is (E2E − TTFT)/(output_len − 1): one output token leaves it undefined.
            ("output_len", sp.output_len, 2, MAX_REQUEST_TOKENS),
        ];
        for (field, v, min, max) in lengths {
            if !(min..=max).contains(&v) {
                return Err(format!("workload.shared_prefix.{field}: must be in {min}..={max}, got {v}"));
            }
        }
        if u64::from(sp.system_prompt_len) + u64::from(sp.question_len) > u64::from(MAX_REQUEST_TOKENS) {
            return Err(format!(
                "workload.shared_prefix: system_prompt_len + question_len must be ≤ {MAX_REQUEST_TOKENS} tokens, got {}",
                u64::from(sp.system_prompt_len) + u64::from(sp.question_len)
            ));
        }
        if w.stages.is_empty() {
            return Err("workload.stages: at least one {rate, duration_s} stage is required".into());
        }
        let mut end_s = 0.0;
        for (k, st) in w.stages.iter().enumerate() {
            if !(st.rate.is_finite() && st.rate >= MIN_RATE_PER_S) {
                return Err(format!(
                    "workload.stages[{k}].rate: must be ≥ {MIN_RATE_PER_S:.4e} req/s, got {}",
                    st.rate
                ));
            }
            if !(st.duration_s.is_finite() && st.duration_s > 0.0) {
                return Err(format!("workload.stages[{k}].duration_s: must be > 0 s, got {}", st.duration_s));
            }
            end_s += st.duration_s;
            if end_s * 1e6 > MAX_TIME_US as f64 {
                return Err(format!(
                    "workload.stages[{k}].duration_s: the stages would end after {end_s:e} s, beyond the longest \
                     simulated time ({} s, 100 years)",
                    MAX_TIME_US / 1_000_000
                ));
            }
            if (st.rate * st.duration_s).round() > MAX_STAGE_REQUESTS {
                return Err(format!("workload.stages[{k}]: rate × duration_s must be ≤ 2^53 requests"));
            }
        }
        at_least("workload.num_requests", "--num-requests", w.num_requests, 1)?;
        if w.num_requests as f64 > MAX_STAGE_REQUESTS {
            return Err(format!("workload.num_requests: must be ≤ 2^53, got {}", w.num_requests));
        }
        self.validate_stats()
    }

    fn validate_stats(&self) -> Result<(), String> {
        let stats = |name: &str, s: &LatencyStats, positive: bool| -> Result<(), String> {
            for (field, v) in s.fields() {
                if !(v.is_finite() && (v > 0.0 || (!positive && v == 0.0))) {
                    let want = if positive { "> 0" } else { "≥ 0" };
                    return Err(format!("{name}.{field}: must be a finite number {want} ms, got {v}"));
                }
            }
            Ok(())
        };
        let summary = self.measured.get("summary").ok_or("measured: no summary entry")?;
        // Measured figures are the denominators of every relative error.
        stats("measured.summary", summary, true)?;
        for (key, s) in &self.measured {
            stats(&format!("measured.{key}"), s, false)?;
        }
        for (key, s) in &self.reference_simulator_predictions {
            stats(&format!("reference_simulator_predictions.{key}"), s, false)?;
        }
        Ok(())
    }

    /// The measured whole-run figures.
    pub fn measured_summary(&self) -> LatencyStats {
        self.measured["summary"]
    }

    /// The reference simulator's prediction with trained-physics, if given.
    pub fn reference_trained_physics(&self) -> Option<LatencyStats> {
        self.reference_simulator_predictions.get("trained_physics").copied()
    }

    /// A short label: model name after the organisation, TP, preset (or "trace").
    pub fn label(&self) -> String {
        let short = self.model.rsplit('/').next().unwrap_or(&self.model);
        let workload = self.workload.as_ref().map_or("trace", |w| w.preset.as_str());
        format!("{short} TP{} {workload}", self.tp)
    }

    /// Resolves the trace paths against `dir`, and fills `measured.summary` (unless given) and
    /// the mean output length from its rows with status `ok`.
    fn read_trace(&mut self, dir: &Path) -> Result<(), String> {
        let Some(t) = &mut self.trace else {
            if let Some(w) = &self.workload {
                self.mean_output_tokens = f64::from(w.shared_prefix.output_len);
            }
            return Ok(());
        };
        t.header = dir.join(&t.header);
        t.data = dir.join(&t.data);
        blis_workload::trace::read_trace_header(&t.header).map_err(|e| format!("trace.header: {e}"))?;
        let rows =
            blis_workload::trace::read_trace_records(&t.data).map_err(|e| format!("trace.data: {e}"))?;
        let ok: Vec<_> = rows.iter().filter(|r| r.status == "ok" && r.num_chunks > 0).collect();
        if ok.is_empty() {
            return Err(format!("trace.data: {}: no request with status ok", t.data.display()));
        }
        let (mut ttft, mut e2e) = (Samples::new(true), Samples::new(true));
        for r in &ok {
            ttft.push(r.first_chunk_time_us.saturating_sub(r.send_time_us));
            e2e.push(r.last_chunk_time_us.saturating_sub(r.send_time_us));
        }
        let out = ok.iter().map(|r| f64::from(r.output_tokens)).sum::<f64>() / ok.len() as f64;
        if out < 2.0 {
            return Err(format!(
                "trace.data: the successful requests average {out} output tokens; ITL needs more than one"
            ));
        }
        self.mean_output_tokens = out;
        if !self.measured.contains_key("summary") {
            let (t, e) = (ttft.summary(), e2e.summary());
            let ms = |us: f64| us / 1000.0;
            self.measured.insert(
                "summary".into(),
                LatencyStats {
                    ttft_mean_ms: ms(t.mean_us),
                    ttft_p90_ms: ms(t.p90_us),
                    ttft_p99_ms: ms(t.p99_us),
                    e2e_mean_ms: ms(e.mean_us),
                    e2e_p90_ms: ms(e.p90_us),
                    e2e_p99_ms: ms(e.p99_us),
                    itl_mean_ms: ms(e.mean_us - t.mean_us) / (out - 1.0),
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../data/vllm-h100-measurements.json");

    #[test]
    fn shipped_measurements_parse() {
        let m = Measurements::from_json(SHIPPED).unwrap();
        assert_eq!(m.experiments.len(), 15);
        let e = m.experiments.iter().find(|e| e.id == "62").unwrap();
        assert_eq!((e.tp, e.max_num_batched_tokens, e.total_kv_blocks_gpu), (2, 1024, 48009));
        let w = e.workload.as_ref().unwrap();
        assert_eq!(w.stages.len(), 2);
        assert_eq!(w.shared_prefix.question_len, 447);
        assert!((e.measured_summary().itl_mean_ms - 6.123).abs() < 1e-9);
        assert!(e.reference_trained_physics().is_some());
        for e in &m.experiments {
            let s = e.measured_summary();
            let w = e.workload.as_ref().unwrap();
            let itl = (s.e2e_mean_ms - s.ttft_mean_ms) / f64::from(w.shared_prefix.output_len - 1);
            assert!((itl - s.itl_mean_ms).abs() < 0.01, "{}: {itl} vs {}", e.id, s.itl_mean_ms);
            assert_eq!(e.mean_output_tokens, f64::from(w.shared_prefix.output_len));
            let total: f64 = w.stages.iter().map(|s| s.rate * s.duration_s).sum();
            assert_eq!(total.round() as u64, w.num_requests, "{}", e.id);
        }
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(Measurements::from_json("{}").unwrap_err().contains("experiments"));
        let no_summary = SHIPPED.replacen("\"summary\"", "\"whole\"", 1);
        assert!(Measurements::from_json(&no_summary).unwrap_err().contains("measured: no summary entry"));
    }

    /// Replaces `"key": old` in the first experiment.
    fn with(key: &str, old: &str, new: &str) -> String {
        let from = format!("\"{key}\": {old}");
        assert!(SHIPPED.contains(&from), "{from}");
        SHIPPED.replacen(&from, &format!("\"{key}\": {new}"), 1)
    }

    #[test]
    fn every_numeric_field_is_checked_with_run_limits() {
        let first = &Measurements::from_json(SHIPPED).unwrap().experiments[0];
        let (seqs, tokens, blocks) =
            (first.max_num_seqs, first.max_num_batched_tokens, first.total_kv_blocks_gpu);
        let err = |text: String| Measurements::from_json(&text).unwrap_err();
        let e = err(with("max_num_seqs", &seqs.to_string(), "0"));
        assert_eq!(
            e,
            format!(
                "experiment {} (experiments[0]): max_num_seqs: must be ≥ 1 (as blis run's --max-num-running-reqs), got 0",
                first.id
            )
        );
        assert!(err(with("max_num_batched_tokens", &tokens.to_string(), "0")).contains("max_num_batched_tokens: must be ≥ 16 (as blis run's --max-num-scheduled-tokens, one block), got 0"));
        assert!(
            err(with("total_kv_blocks_gpu", &blocks.to_string(), "0"))
                .contains("total_kv_blocks_gpu: must be ≥ 1")
        );
        assert!(
            err(with("total_kv_blocks_gpu", &blocks.to_string(), "4294967296"))
                .contains("total_kv_blocks_gpu: must be ≤ 4294967295")
        );
        assert!(err(with("tp", &first.tp.to_string(), "0")).contains("tp: must be ≥ 1"));
        let sp = &first.workload.as_ref().unwrap().shared_prefix;
        assert!(
            err(with("system_prompt_len", &sp.system_prompt_len.to_string(), "4294967295")).contains(
                "workload.shared_prefix.system_prompt_len: must be in 0..=16777216, got 4294967295"
            )
        );
        assert!(
            err(with("output_len", &sp.output_len.to_string(), "1"))
                .contains("output_len: must be in 2..=16777216, got 1")
        );
        let st = &first.workload.as_ref().unwrap().stages[0];
        assert!(
            err(with("rate", &st.rate.to_string(), "1e-300"))
                .contains("workload.stages[0].rate: must be ≥ 3.1688e-10 req/s")
        );
        assert!(
            err(with("duration_s", &st.duration_s.to_string(), "1e300"))
                .contains("workload.stages[0].duration_s: the stages would end after")
        );
        let ttft = first.measured_summary().ttft_mean_ms;
        assert!(
            err(with("ttft_mean_ms", &ttft.to_string(), "0"))
                .contains("measured.summary.ttft_mean_ms: must be a finite number > 0 ms, got 0")
        );
        let dup = SHIPPED.replacen(
            &format!("\"id\": \"{}\"", Measurements::from_json(SHIPPED).unwrap().experiments[1].id),
            &format!("\"id\": \"{}\"", first.id),
            1,
        );
        assert!(err(dup).contains("id: duplicate experiment id"));
        assert!(err(r#"{"experiments": []}"#.into()).contains("lists no experiment"));
        let n = first.workload.as_ref().unwrap().num_requests.to_string();
        assert!(
            err(with("num_requests", &n, "18446744073709551615"))
                .contains("workload.num_requests: must be ≤ 2^53")
        );
    }

    /// An experiment whose workload and measurements are an observed trace.
    #[test]
    fn trace_experiments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.yaml"),
            "trace_version: \"2\"\ntime_unit: microseconds\nmode: real\n",
        )
        .unwrap();
        let csv = "request_id,input_tokens,output_tokens,arrival_time_us,send_time_us,first_chunk_time_us,last_chunk_time_us,num_chunks,status\n\
                   0,10,3,0,0,1000,3000,3,ok\n\
                   1,10,5,500,500,2500,9500,5,ok\n\
                   2,10,4,900,900,0,0,0,error\n";
        std::fs::write(dir.path().join("t.csv"), csv).unwrap();
        let experiment = |extra: &str| {
            format!(
                r#"{{"experiments": [{{"id": "o", "model": "m", "hardware": "H100", "tp": 1, "max_num_seqs": 8,
                "max_num_batched_tokens": 256, "block_size": 16, "total_kv_blocks_gpu": 100{extra}}}]}}"#
            )
        };
        let trace = r#", "trace": {"header": "t.yaml", "data": "t.csv"}"#;
        let m = Measurements::from_json_in(&experiment(trace), dir.path()).unwrap();
        let e = &m.experiments[0];
        assert_eq!(e.trace.as_ref().unwrap().data, dir.path().join("t.csv"));
        assert_eq!(e.mean_output_tokens, 4.0, "the error row is not measured");
        let s = e.measured_summary();
        assert_eq!((s.ttft_mean_ms, s.e2e_mean_ms), (1.5, 6.0));
        assert!((s.ttft_p90_ms - 1.9).abs() < 1e-9 && (s.e2e_p99_ms - 8.94).abs() < 1e-9, "{s:?}");
        assert_eq!(s.itl_mean_ms, 1.5);
        assert!(e.label().ends_with("TP1 trace"));

        let err = |extra: &str| Measurements::from_json_in(&experiment(extra), dir.path()).unwrap_err();
        assert!(err("").contains("workload: required (or trace, an observed trace)"));
        let first = Measurements::from_json(SHIPPED).unwrap();
        let w = serde_json::to_string(
            &serde_json::from_str::<serde_json::Value>(SHIPPED).unwrap()["experiments"][0]["workload"],
        )
        .unwrap();
        assert!(first.experiments[0].workload.is_some());
        assert!(
            err(&format!("{trace}, \"workload\": {w}"))
                .contains("trace: an experiment has a workload or a trace, not both")
        );
        assert!(
            err(r#", "trace": {"header": "t.yaml", "data": "nope.csv"}"#)
                .starts_with("experiment o (experiments[0]): trace.data: ")
        );
        std::fs::write(
            dir.path().join("bad.csv"),
            "request_id,arrival_time_us,input_tokens,output_tokens,num_chunks,status\n0,0,3,4,0,error\n",
        )
        .unwrap();
        let e = err(r#", "trace": {"header": "t.yaml", "data": "bad.csv"}"#);
        assert!(e.contains("no request with status ok"), "{e}");
    }
}
