//! The measurements file: real vLLM runs with the exact configuration and workload.

use std::collections::BTreeMap;
use std::path::Path;

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
    pub workload: WorkloadDesc,
    /// `summary` (all requests) and `stage_k` (requests arriving in load stage k).
    pub measured: BTreeMap<String, LatencyStats>,
    #[serde(default)]
    pub reference_simulator_predictions: BTreeMap<String, LatencyStats>,
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

impl Measurements {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let m: Self = serde_json::from_str(text).map_err(|e| format!("invalid measurements JSON: {e}"))?;
        for e in &m.experiments {
            if !e.measured.contains_key("summary") {
                return Err(format!("experiment {}: no measured.summary", e.id));
            }
            if e.workload.shared_prefix.output_len < 2 {
                return Err(format!("experiment {}: output_len must be ≥ 2", e.id));
            }
        }
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Experiment {
    /// The measured whole-run figures.
    pub fn measured_summary(&self) -> LatencyStats {
        self.measured["summary"]
    }

    /// The reference simulator's prediction with trained-physics, if given.
    pub fn reference_trained_physics(&self) -> Option<LatencyStats> {
        self.reference_simulator_predictions.get("trained_physics").copied()
    }

    /// A short label: model name after the organisation, TP, preset.
    pub fn label(&self) -> String {
        let short = self.model.rsplit('/').next().unwrap_or(&self.model);
        format!("{short} TP{} {}", self.tp, self.workload.preset)
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
        assert_eq!(e.workload.stages.len(), 2);
        assert_eq!(e.workload.shared_prefix.question_len, 447);
        assert!((e.measured_summary().itl_mean_ms - 6.123).abs() < 1e-9);
        assert!(e.reference_trained_physics().is_some());
        for e in &m.experiments {
            let s = e.measured_summary();
            let itl = (s.e2e_mean_ms - s.ttft_mean_ms) / f64::from(e.workload.shared_prefix.output_len - 1);
            assert!((itl - s.itl_mean_ms).abs() < 0.01, "{}: {itl} vs {}", e.id, s.itl_mean_ms);
            let total: f64 = e.workload.stages.iter().map(|s| s.rate * s.duration_s).sum();
            assert_eq!(total.round() as u64, e.workload.num_requests, "{}", e.id);
        }
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(Measurements::from_json("{}").unwrap_err().contains("experiments"));
        let no_summary = SHIPPED.replacen("\"summary\"", "\"whole\"", 1);
        assert!(Measurements::from_json(&no_summary).unwrap_err().contains("no measured.summary"));
    }
}
