//! Workload-spec v2: the serde model of the YAML file, strict (unknown keys are errors).
//!
//! This module only describes the document. [`crate::validate`] checks values and compiles a
//! spec into what the generators run; [`load_spec_file`] / [`parse_spec`] do both checks and
//! turn every problem into one [`WorkloadError`] line naming the file, the YAML path and what
//! is accepted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::WorkloadError;

/// A whole workload-spec v2 document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// "2"; "1" or absent is accepted (v1 class names are upgraded).
    #[serde(default, deserialize_with = "de_opt_string_or_number", skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// `language | multimodal | reasoning | ""` (bookkeeping only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Total request rate (req/s) shared by the clients in proportion to `rate_fraction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_requests: Option<i64>,
    /// Simulated-time horizon in µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientSpec>,
    /// Populations of similar clients, expanded into `population` clients each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cohorts: Vec<CohortSpec>,
    /// A ServeGen data directory, converted into cohorts when the spec is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servegen_data: Option<ServeGenDataSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_perf: Option<InferencePerfSpec>,
    /// Per SLO class (`critical`, `standard`, …) goodput targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_slo_targets: Option<BTreeMap<String, SloTargets>>,
}

/// One traffic source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_class: Option<String>,
    /// The model the client's requests name: a fleet whose pools serve several models routes
    /// each request among the pools serving its model (a single-model fleet ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_fraction: Option<f64>,
    /// Closed-loop virtual users: each sends a request, waits for its response and the think
    /// time, and sends the next (instead of `rate_fraction` arrivals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i64>,
    /// Think time of the virtual users between a response and their next request (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time_us: Option<i64>,
    /// BLIS extension: a think-time distribution of the virtual users in `--think-time-dist`
    /// syntax (`lognormal:mu=2,sigma=0.6,min=3s,max=30s`, `constant:value=500ms`); replaces
    /// `think_time_us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time_dist: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<ArrivalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_group: Option<String>,
    /// Shared-prefix length in tokens (default 50 when `prefix_group` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleSpec>,
    /// The prompt as text plus images, audio and video segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multimodal: Option<MultimodalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningSpec>,
    /// Per-request timeout in µs: absent = none (300 s for multi-turn clients), 0 = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_target_us: Option<i64>,
    /// Multi-turn sessions wait for each round's completion (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_loop: Option<bool>,
}

/// Inter-arrival process of one client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalSpec {
    /// `poisson | gamma | weibull | constant`.
    pub process: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<f64>,
    /// Gamma shape (overrides `cv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<f64>,
    /// Gamma scale in µs (overrides the rate-derived scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
}

/// A token-length distribution: `type` plus named numeric `params`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistSpec {
    #[serde(rename = "type")]
    pub kind: String,
    /// For `empirical`, keys are token counts and values their weights.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbps: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSpec {
    #[serde(default)]
    pub windows: Vec<WindowSpec>,
}

/// An activity window `[start_us, end_us)`; arrivals outside every window are skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub start_us: i64,
    pub end_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<ArrivalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_distribution: Option<DistSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultimodalSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_count_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_count_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_count_distribution: Option<DistSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningSpec {
    /// Percentage (0–100) of each output that is reasoning tokens, drawn per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_ratio_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_turn: Option<MultiTurnSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiTurnSpec {
    pub max_rounds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_time_us: Option<i64>,
    /// `accumulate` or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_growth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_session: Option<bool>,
}

/// A population of `population` clients that share one description; expanded into clients
/// `<id>-0` … `<id>-(population−1)`, each with `rate_fraction / population`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub population: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<ArrivalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_distribution: Option<DistSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_group: Option<String>,
    /// `shared` (default: one prefix for every member) or `per_member` (group `<group>-<j>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_sharing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// The whole cohort's share of `aggregate_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_fraction: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diurnal: Option<DiurnalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spike: Option<SpikeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_loop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_target_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multimodal: Option<MultimodalSpec>,
}

/// Day-long rate modulation: each hour the members are active for a share of the hour that
/// follows a cosine between 1 (at `peak_hour`) and `1/peak_to_trough_ratio`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiurnalSpec {
    pub peak_hour: i64,
    pub peak_to_trough_ratio: f64,
}

/// Members active only during `[start_time_us, start_time_us + duration_us)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeSpec {
    pub start_time_us: i64,
    pub duration_us: i64,
    /// The cohort's absolute rate in req/s, shared by its members (required when
    /// `aggregate_rate` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_rate: Option<f64>,
}

/// Full rate until `start_time_us`, then ten segments over `ramp_duration_us` whose active
/// share falls linearly (10/10 … 1/10).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainSpec {
    pub start_time_us: i64,
    pub ramp_duration_us: i64,
}

/// `servegen_data:` a ServeGen data directory (`chunk-*-trace.csv` + `chunk-*-dataset.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeGenDataSpec {
    pub path: String,
    /// `midnight | morning | afternoon`: keep only that period's cohorts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<String>,
    /// Keep only trace rows whose start (s since the trace's midnight) is in `[span_start, span_end)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_start: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_end: Option<i64>,
    /// Length of each simulated period in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_duration_secs: Option<i64>,
    /// Quiet gap between periods in seconds (default 180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_secs: Option<i64>,
}

/// The `inference_perf:` section: kubernetes-sigs/inference-perf's shared-prefix data
/// generator with a staged load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferencePerfSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixSpec>,
    #[serde(default)]
    pub stages: Vec<StageSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefixSpec {
    #[serde(alias = "num_groups")]
    pub num_unique_system_prompts: i64,
    #[serde(alias = "num_prompts_per_group")]
    pub num_users_per_system_prompt: i64,
    pub system_prompt_len: i64,
    pub question_len: i64,
    pub output_len: i64,
    /// A no-op under BLIS's semantics; closed-loop sessions under the reference's (see
    /// [`crate::inference_perf`]).
    #[serde(default)]
    pub enable_multi_turn_chat: bool,
    /// `per_user` (default: each user's question is fixed and reused by all its requests, as
    /// inference-perf's pre-generated prompt pool does) or `per_request` (only the system prompt
    /// is shared; every request carries a fresh question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_reuse: Option<String>,
    /// `random` (default: each request picks a user uniformly at random) or `round_robin`
    /// (inference-perf's order: request i goes to user i mod G·U of a once-shuffled user list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_order: Option<String>,
}

/// `rate` req/s for `duration` s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub rate: f64,
    pub duration: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloTargets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
}

/// `version: 2` and `version: "2"` are the same thing.
fn de_opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(match Option::<StrOrNum>::deserialize(d)? {
        None => None,
        Some(StrOrNum::S(s)) => Some(s),
        Some(StrOrNum::I(i)) => Some(i.to_string()),
        Some(StrOrNum::F(f)) => Some(f.to_string()),
    })
}

/// Parses and validates a spec from YAML text; `file` names the source in errors.
pub fn parse_spec(text: &str, file: &str) -> Result<WorkloadSpec, WorkloadError> {
    let spec: WorkloadSpec = serde_saphyr::from_str(text).map_err(|e| yaml_error(text, &e).in_file(file))?;
    crate::validate::validate(&spec).map_err(|e| with_line(text, e).in_file(file))?;
    Ok(spec)
}

/// Adds the line of the error's YAML path when the error has none: the first line of that
/// node, else of its nearest ancestor that appears in the file.
fn with_line(text: &str, e: WorkloadError) -> WorkloadError {
    let Some(mut path) = e.path.clone().filter(|_| e.line.is_none()) else { return e };
    let paths: Vec<String> = (1..=text.lines().count()).map(|l| yaml_path_at(text, l)).collect();
    while !path.is_empty() {
        let within = |p: &String| {
            p.strip_prefix(path.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        if let Some(i) = paths.iter().position(within) {
            return e.at_line(i + 1, None);
        }
        path.truncate(path.rfind(['.', '[']).unwrap_or(0));
    }
    e
}

/// Reads, parses and validates a workload-spec v2 file.
pub fn load_spec_file(path: impl AsRef<Path>) -> Result<WorkloadSpec, WorkloadError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| WorkloadError::msg(format!("cannot read workload spec: {e}")).in_file(&name))?;
    parse_spec(&text, &name)
}

/// Serializes a spec as YAML (for `blis convert`).
pub fn to_yaml(spec: &WorkloadSpec) -> Result<String, WorkloadError> {
    serde_saphyr::to_string(spec).map_err(|e| WorkloadError::msg(format!("cannot write YAML: {e}")))
}

/// Turns a YAML/serde error into a one-line error with line, column and the YAML path there.
pub(crate) fn yaml_error(text: &str, err: &serde_saphyr::Error) -> WorkloadError {
    let bare = err.without_snippet();
    let message = bare_message(bare);
    let mut out = WorkloadError::msg(message);
    if let Some(loc) = bare.location().or_else(|| err.location())
        && loc.line() > 0
    {
        let line = loc.line() as usize;
        out = out.at_line(line, Some(loc.column() as usize));
        let mut path = yaml_path_at(text, line);
        // A missing field is reported at its mapping's first key: name the mapping instead.
        if out.message.starts_with("missing field") && !path.ends_with(']') {
            path.truncate(path.rfind('.').unwrap_or(0));
        }
        if !path.is_empty() {
            out.path = Some(path);
        }
    }
    out
}

/// The error's message without the location prefix or source snippet that `Display` adds.
fn bare_message(err: &serde_saphyr::Error) -> String {
    let msg = match err {
        serde_saphyr::Error::Message { msg, .. } => msg.clone(),
        other => {
            let s = other.to_string();
            // Rendered errors look like "error: line 3 column 5: message"; keep the message.
            let s = s.lines().next().unwrap_or_default().to_string();
            match s.rfind(": ") {
                Some(i) if s[..i].contains("line") => s[i + 2..].to_string(),
                _ => s,
            }
        }
    };
    // The location is reported separately; drop a trailing " at line N, column M".
    match msg.rfind(" at line ") {
        Some(i)
            if msg[i + 9..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == ' ' || c.is_ascii_alphabetic()) =>
        {
            msg[..i].to_string()
        }
        _ => msg,
    }
}

/// Best-effort YAML path (`clients[1].arrival.process`) of the node on 1-based `line`, for
/// block-style YAML (flow collections resolve to their enclosing node).
pub(crate) fn yaml_path_at(text: &str, line: usize) -> String {
    enum Elem {
        Key(String),
        Index(usize),
    }
    let mut stack: Vec<(usize, Elem)> = Vec::new();
    for raw in text.lines().take(line) {
        let trimmed = raw.trim_start_matches(' ');
        if trimmed.trim().is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut indent = raw.len() - trimmed.len();
        let mut content = trimmed;
        while let Some(rest) = content.strip_prefix('-').filter(|r| r.is_empty() || r.starts_with(' ')) {
            while stack.last().is_some_and(|(i, _)| *i > indent) {
                stack.pop();
            }
            match stack.last_mut() {
                Some((i, Elem::Index(n))) if *i == indent => *n += 1,
                _ => stack.push((indent, Elem::Index(0))),
            }
            let after = rest.trim_start_matches(' ');
            indent += 1 + (rest.len() - after.len());
            content = after;
        }
        if content.is_empty() || content.starts_with(['{', '[', '"', '\'', '#']) {
            continue;
        }
        let key = match content.find(": ") {
            Some(i) => &content[..i],
            None => match content.strip_suffix(':') {
                Some(k) => k,
                None => continue,
            },
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, Elem::Key(key.trim().to_string())));
    }
    let mut path = String::new();
    for (_, e) in &stack {
        match e {
            Elem::Key(k) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Elem::Index(n) => path.push_str(&format!("[{n}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
version: "2"
seed: 7
aggregate_rate: 10
num_requests: 50
clients:
  - id: a
    slo_class: critical
    rate_fraction: 1
    arrival: {process: gamma, cv: 2}
    input_distribution:
      type: gaussian
      params: {mean: 100, std_dev: 10, min: 1, max: 200}
    output_distribution:
      type: exponential
      params:
        mean: 50
  - id: b
    slo_class: batch
    rate_fraction: 3
    prefix_group: sys
    prefix_length: 64
    input_distribution: {type: constant, params: {value: 10}}
    output_distribution: {type: uniform, params: {min: 1, max: 9}}
goodput_slo_targets:
  critical: {ttft_ms: 200, e2e_ms: 5000}
"#;

    fn err(text: &str) -> String {
        parse_spec(text, "spec.yaml").unwrap_err().to_string()
    }

    #[test]
    fn parses_a_full_spec() {
        let s = parse_spec(GOOD, "spec.yaml").unwrap();
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.clients[1].prefix_length, Some(64));
        let v2 = parse_spec(&GOOD.replace("version: \"2\"", "version: 2"), "spec.yaml").unwrap();
        assert_eq!(v2.version.as_deref(), Some("2"));
    }

    #[test]
    fn unknown_key_names_path_and_line() {
        let e = err(&GOOD.replace("    prefix_length: 64", "    prefix_lenght: 64"));
        assert!(
            e.starts_with("spec.yaml:22:5: clients[1].prefix_lenght: unknown field `prefix_lenght`"),
            "{e}"
        );
        assert!(!e.contains("at line"), "{e}");
        assert!(e.contains("clients[1].prefix_lenght"), "{e}");
        assert!(e.contains("prefix_length"), "should list accepted keys: {e}");
        let e = err(&GOOD.replace("        mean: 50", "        mean: 50\n        meen: 3"));
        assert!(e.contains("clients[0].output_distribution.params.meen") || e.contains("meen"), "{e}");
        let e = err(&GOOD.replace("seed: 7", "seed: 7\nsede: 8"));
        assert!(e.starts_with("spec.yaml:4:1: sede: unknown field"), "{e}");
    }

    #[test]
    fn value_errors_name_path() {
        let e = err(&GOOD.replace("rate_fraction: 3", "rate_fraction: -1"));
        assert_eq!(e, "spec.yaml:20: clients[1].rate_fraction: must be > 0, got -1");
        let e = err(&GOOD.replace("process: gamma", "process: bursty"));
        assert!(
            e.starts_with(
                "spec.yaml:10: clients[0].arrival.process: unknown arrival process \"bursty\"; accepted: poisson"
            ),
            "{e}"
        );
        let e = err(&GOOD.replace("type: exponential", "type: zipf"));
        assert!(
            e.starts_with("spec.yaml:15: clients[0].output_distribution.type: unknown distribution"),
            "{e}"
        );
        let e = err(&GOOD.replace("    slo_class: batch\n", ""));
        assert!(
            e.starts_with("spec.yaml:18: clients[1].slo_class: either every client sets slo_class or none"),
            "{e}"
        );
        let e = err(&GOOD.replace("prefix_length: 64", "prefix_length: -5"));
        assert_eq!(e, "spec.yaml:22: clients[1].prefix_length: must be ≥ 0 tokens, got -5");
        let e = err(&GOOD.replace("num_requests: 50", "num_requests: -2"));
        assert_eq!(e, "spec.yaml:5: num_requests: must be ≥ 0 (0 = no cap), got -2");
        let e = err(&GOOD.replace("slo_class: batch", "slo_class: gold"));
        assert!(e.contains("clients[1].slo_class: unknown class \"gold\"; accepted: critical"), "{e}");
        let e = err("version: \"2\"\ncohorts: [{id: x}]\n");
        assert_eq!(e, "spec.yaml:2:12: missing field `population`");
    }

    #[test]
    fn type_errors_are_one_line_with_location() {
        let e = err(&GOOD.replace("aggregate_rate: 10", "aggregate_rate: fast"));
        assert!(!e.contains('\n'), "{e}");
        assert!(e.starts_with("spec.yaml:4:") && e.contains("aggregate_rate"), "{e}");
        let e = err("clients: [\n");
        assert!(e.starts_with("spec.yaml:") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn missing_field_names_the_mapping() {
        let e = err("inference_perf:\n  shared_prefix:\n    num_unique_system_prompts: 1\n  stages: []\n");
        assert_eq!(
            e,
            "spec.yaml:3:5: inference_perf.shared_prefix: missing field `num_users_per_system_prompt`"
        );
    }

    #[test]
    fn yaml_path_heuristic() {
        let text = "a:\n  b:\n    - x: 1\n      y: 2\n    - x: 3\nc:\n- d: 1\n- e: 2\n";
        assert_eq!(yaml_path_at(text, 4), "a.b[0].y");
        assert_eq!(yaml_path_at(text, 5), "a.b[1].x");
        assert_eq!(yaml_path_at(text, 8), "c[1].e");
    }

    #[test]
    fn yaml_round_trip() {
        let s = parse_spec(GOOD, "spec.yaml").unwrap();
        let text = to_yaml(&s).unwrap();
        assert_eq!(parse_spec(&text, "again.yaml").unwrap(), s);
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "[a-z_:{}\\[\\]\\-, \\n0-9.\"#]{0,200}") {
            let _ = parse_spec(&text, "fuzz.yaml");
        }

        #[test]
        fn mutated_spec_never_panics(cut in 0usize..700, insert in "[a-z:{}\\[\\] \\n0-9-]{0,12}") {
            let at = cut.min(GOOD.len());
            let at = (0..=at).rev().find(|&i| GOOD.is_char_boundary(i)).unwrap_or(0);
            let text = format!("{}{}{}", &GOOD[..at], insert, &GOOD[at..]);
            let _ = parse_spec(&text, "fuzz.yaml");
        }
    }
}
