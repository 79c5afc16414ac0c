//! `blis plan`: the cheapest aggregated configuration that meets an SLO for a workload.
//!
//! Search lines are (hardware, TP degree, routing policy); TP degrees are those vLLM accepts
//! for the model (attention heads divisible by TP; KV heads divisible by TP or TP by KV
//! heads) within the GPU budget. On each line the instance count is found by bisection: the
//! largest count within `--max-gpus` is tried first (a line that fails there is infeasible),
//! then the interval (known-failing, known-meeting] is halved until it is one wide, so the
//! answer `n` meets and `n − 1` was simulated and does not. "Meets" means: under every seed
//! replica, every objective holds *and* the run is steady (`steady_state.verdict` = stable),
//! so an overloaded or too-short run never counts. Each candidate is a [`RunSpec`] resolved
//! through [`crate::config_from_spec`] like any `blis run`; its `run_args` reproduce it.
//! Lines run in parallel (rayon), seed replicas too; the output is the same whatever the
//! thread count.

use std::collections::BTreeMap;

use blis_sim::cluster::routing::RoutingKind;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::ConfigError;
use crate::resolve::Catalog;
use crate::spec::RunSpec;

/// Arrival time a planning run covers when the workload's request count is derived from
/// `--rate` (seconds).
pub const DEFAULT_DURATION_S: f64 = 60.0;
/// Fewest requests of a planning run.
pub const MIN_REQUESTS: u64 = 2000;
/// TP degrees tried.
pub const TP_DEGREES: [u32; 4] = [1, 2, 4, 8];

/// What to plan for.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// Every run's keys (model, workload, rate, engine settings, …); hardware, TP, instance
    /// count, routing policy, seed and request count are set per candidate.
    pub base: RunSpec,
    /// `--slo` objectives (the same syntax as `blis run --slo`).
    pub slo: String,
    pub hardware: Vec<String>,
    /// TP degrees to try (`None` = every valid one).
    pub tp: Option<Vec<u32>>,
    /// Routing policies to try (empty = the base's).
    pub routing: Vec<RoutingKind>,
    pub max_gpus: u32,
    /// $ per GPU-hour by hardware name; when set, cost is minimised instead of GPUs.
    pub gpu_cost: BTreeMap<String, f64>,
    /// Seed replicas; a candidate meets only if it meets under each.
    pub seeds: Vec<u64>,
    /// Requests per run (`None` = max(2000, rate × 60 s) for built-in workloads, else the
    /// workload's own count).
    pub num_requests: Option<u64>,
    /// Fraction of each run's requests excluded as warm-up.
    pub warmup_fraction: f64,
}

/// One simulated configuration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    pub hardware: String,
    pub tp: u32,
    pub num_instances: u32,
    pub gpus: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
    /// Every objective met and steady under every seed.
    pub meets_slo: bool,
    /// Steady-state verdict per seed.
    pub verdicts: Vec<String>,
    /// Worst value over the seeds of each objective's figure, and of a few headline figures.
    pub metrics: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub spec: RunSpec,
    /// Index of its search line.
    #[serde(skip)]
    pub line: usize,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Recommended {
    pub hardware: String,
    pub tp: u32,
    pub num_instances: u32,
    pub gpus: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<f64>,
    /// Worst over the seeds.
    pub predicted: BTreeMap<String, f64>,
    /// `blis run` arguments that reproduce the first seed's run.
    pub run_args: Vec<String>,
    /// The same line with one instance fewer (simulated; does not meet the SLO), if n > 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_fewer: Option<Candidate>,
}

/// A search line's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct LineDoc {
    pub hardware: String,
    pub tp: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<String>,
    /// Fewest instances meeting the SLO on this line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infeasible: Option<String>,
}

/// A point of the GPUs-vs-latency Pareto frontier.
#[derive(Debug, Clone, Serialize)]
pub struct FrontierPoint {
    pub gpus: u32,
    pub hardware: String,
    pub tp: u32,
    pub num_instances: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_policy: Option<String>,
    /// The first objective's figure (worst seed).
    pub latency_ms: f64,
    pub meets_slo: bool,
}

/// The plan document (stdout of `blis plan`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanDoc {
    pub question: serde_json::Value,
    pub recommended: Option<Recommended>,
    /// Why nothing is recommended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_answer: Option<String>,
    pub lines: Vec<LineDoc>,
    /// Frontier of steady candidates: fewest GPUs for each latency of the first objective.
    pub frontier_metric: String,
    pub frontier: Vec<FrontierPoint>,
    pub candidates: Vec<Candidate>,
}

/// Valid TP degrees for a model (vLLM's head-divisibility rule).
pub fn valid_tp(heads: u64, kv_heads: u64, max: u32) -> Vec<u32> {
    TP_DEGREES
        .iter()
        .copied()
        .filter(|&tp| tp <= max)
        .filter(|&tp| heads.is_multiple_of(u64::from(tp)))
        .filter(|&tp| {
            kv_heads == 0 || kv_heads.is_multiple_of(u64::from(tp)) || u64::from(tp).is_multiple_of(kv_heads)
        })
        .collect()
}

/// `--gpu-cost H100=2.5,A100-80=1.6`.
pub fn parse_costs(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| format!("'{item}' is not GPU=dollars-per-hour"))?;
        let v: f64 = v.trim().parse().map_err(|_| format!("'{item}': '{}' is not a number", v.trim()))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("'{item}': the cost must be > 0"));
        }
        out.insert(k.trim().to_string(), v);
    }
    Ok(out)
}

/// A spec as `blis run` arguments.
pub fn run_args(spec: &RunSpec) -> Vec<String> {
    let mut out = vec!["run".to_string()];
    for (k, v) in spec.to_map() {
        let text = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        out.push(format!("--{k}"));
        out.push(text);
    }
    out
}

struct Planner<'a> {
    req: &'a PlanRequest,
    catalog: &'a Catalog,
    objectives: Vec<crate::slo::Objective>,
    num_requests: Option<u64>,
    /// Candidates already simulated (one instance has no routing: lines share it).
    memo: std::sync::Mutex<BTreeMap<CandidateKey, Candidate>>,
}

/// (hardware, TP, instances, routing policy when more than one instance).
type CandidateKey = (String, u32, u32, Option<String>);

impl Planner<'_> {
    fn spec(&self, hardware: &str, tp: u32, n: u32, routing: Option<RoutingKind>, seed: u64) -> RunSpec {
        let mut s = self.req.base.clone();
        s.hardware = Some(hardware.to_string());
        s.tp = Some(tp);
        s.num_instances = Some(n);
        if n > 1 && routing.is_some() {
            s.routing_policy = routing;
        }
        s.seed = Some(seed);
        s.slo = Some(self.req.slo.clone());
        if let Some(r) = self.num_requests {
            s.num_requests = Some(r);
            if s.warmup_requests.is_none() && s.warmup_s.is_none() {
                s.warmup_requests = Some((r as f64 * self.req.warmup_fraction).floor() as u64);
            }
        }
        s
    }

    fn evaluate(&self, hardware: &str, tp: u32, n: u32, routing: Option<RoutingKind>) -> Candidate {
        let key = (hardware.to_string(), tp, n, routing.filter(|_| n > 1).map(crate::name_of));
        if let Some(c) = self.memo.lock().expect("not poisoned").get(&key) {
            return c.clone();
        }
        let c = self.simulate(hardware, tp, n, routing);
        self.memo.lock().expect("not poisoned").insert(key, c.clone());
        c
    }

    fn simulate(&self, hardware: &str, tp: u32, n: u32, routing: Option<RoutingKind>) -> Candidate {
        let specs: Vec<RunSpec> =
            self.req.seeds.iter().map(|&seed| self.spec(hardware, tp, n, routing, seed)).collect();
        let runs: Vec<Result<blis_sim::report::RunDoc, String>> = specs
            .par_iter()
            .map(|spec| {
                let config = crate::config_from_spec(spec, self.catalog).map_err(|e| e.to_string())?;
                config.simulate().map(|o| o.doc).map_err(|e| e.to_string())
            })
            .collect();
        let cost = self.req.gpu_cost.get(hardware).map(|c| c * f64::from(tp * n));
        let mut c = Candidate {
            hardware: hardware.to_string(),
            tp,
            num_instances: n,
            gpus: tp * n,
            routing_policy: routing.filter(|_| n > 1).map(crate::name_of),
            cost_per_hour: cost,
            meets_slo: true,
            verdicts: Vec::new(),
            metrics: BTreeMap::new(),
            error: None,
            spec: specs[0].clone(),
            line: 0,
        };
        for run in runs {
            let doc = match run {
                Ok(d) => d,
                Err(e) => {
                    c.meets_slo = false;
                    c.error = Some(e);
                    break;
                }
            };
            c.verdicts.push(doc.steady_state.verdict.as_str().to_string());
            c.meets_slo &= doc.slo.as_ref().is_some_and(|s| s.met);
            let figures = serde_json::to_value(&doc.cluster).expect("metrics serialize");
            let mut keys: Vec<String> = self.objectives.iter().map(|o| o.field.clone()).collect();
            keys.extend(["ttft_p99_ms", "itl_p99_ms", "e2e_p99_ms"].map(String::from));
            for k in keys {
                let v = figures.get(&k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                let e = c.metrics.entry(k).or_insert(v);
                *e = e.max(v);
            }
            let rps = doc.cluster.responses_per_sec;
            let e = c.metrics.entry("responses_per_sec".into()).or_insert(rps);
            *e = e.min(rps);
        }
        c
    }

    /// Bisection on one line; returns every candidate simulated and the line's outcome.
    fn line(
        &self,
        index: usize,
        hardware: &str,
        tp: u32,
        routing: Option<RoutingKind>,
    ) -> (Vec<Candidate>, LineDoc) {
        let max_n = self.req.max_gpus / tp;
        let mut doc = LineDoc {
            hardware: hardware.to_string(),
            tp,
            routing_policy: routing.map(crate::name_of),
            min_instances: None,
            infeasible: None,
        };
        let mut tried = Vec::new();
        let top = self.evaluate(hardware, tp, max_n, routing);
        let top_meets = top.meets_slo;
        if !top_meets {
            doc.infeasible = Some(match &top.error {
                Some(e) => e.clone(),
                None => format!(
                    "{max_n} instances ({} GPUs, the --max-gpus budget) do not meet the SLO ({})",
                    max_n * tp,
                    top.verdicts.join(", ")
                ),
            });
        }
        tried.push(top);
        if !top_meets {
            tried[0].line = index;
            return (tried, doc);
        }
        let (mut lo, mut hi) = (0u32, max_n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let c = self.evaluate(hardware, tp, mid, routing);
            if c.meets_slo {
                hi = mid;
            } else {
                lo = mid;
            }
            tried.push(c);
        }
        doc.min_instances = Some(hi);
        for c in &mut tried {
            c.line = index;
        }
        (tried, doc)
    }
}

/// Runs the search.
pub fn plan(req: &PlanRequest, catalog: &Catalog) -> Result<PlanDoc, ConfigError> {
    let objectives =
        crate::slo::parse_objectives(&req.slo).map_err(|e| ConfigError::new("slo", "--slo", e))?;
    if req.hardware.is_empty() {
        return Err(ConfigError::new("hardware", "--hardware", "at least one GPU type"));
    }
    if req.base.pools.is_some() {
        return Err(ConfigError::new(
            "pools",
            "pools",
            "blis plan searches fleets of one GPU type and TP; leave pools out of its --config",
        ));
    }
    if [req.base.prefill_instances, req.base.decode_instances, req.base.prefill_decode_instances]
        .iter()
        .any(|n| n.is_some_and(|n| n > 0))
    {
        return Err(ConfigError::new(
            "prefill-instances",
            "prefill-instances",
            "blis plan searches aggregated fleets; leave disaggregation out of its --config",
        ));
    }
    if req.max_gpus == 0 {
        return Err(ConfigError::new("max-gpus", "--max-gpus", "must be at least 1"));
    }
    if req.seeds.is_empty() {
        return Err(ConfigError::new("seeds", "--seeds", "must be at least 1"));
    }
    if !req.gpu_cost.is_empty()
        && let Some(h) = req.hardware.iter().find(|h| !req.gpu_cost.contains_key(*h))
    {
        return Err(ConfigError::new(
            "gpu-cost",
            "--gpu-cost",
            format!("no cost for {h} (give one for every --hardware)"),
        ));
    }
    // Resolve the base once: model, workload and every other key are checked before searching.
    let mut probe = req.base.clone();
    probe.hardware = Some(req.hardware[0].clone());
    let base_config = crate::config_from_spec(&probe, catalog)?;
    let model = &base_config.sim.pools[0].model;
    let synthetic = base_config.spec.workload.is_some() && base_config.spec.workload_spec.is_none();
    let num_requests = match req.num_requests {
        Some(n) => Some(n),
        None if synthetic => {
            let rate = base_config.spec.rate.unwrap_or(1.0);
            Some(((rate * DEFAULT_DURATION_S).ceil() as u64).max(MIN_REQUESTS))
        }
        None => None,
    };
    let tps: Vec<u32> = match &req.tp {
        Some(list) => {
            let valid = valid_tp(model.num_attention_heads, model.num_kv_heads, u32::MAX);
            if let Some(bad) = list.iter().find(|t| !valid.contains(t)) {
                return Err(ConfigError::new(
                    "tp",
                    "--tp",
                    format!(
                        "TP {bad} is not valid for {} ({} attention heads, {} KV heads); valid: {:?}",
                        model.name, model.num_attention_heads, model.num_kv_heads, valid
                    ),
                ));
            }
            list.iter().copied().filter(|&t| t <= req.max_gpus).collect()
        }
        None => valid_tp(model.num_attention_heads, model.num_kv_heads, req.max_gpus),
    };
    let routings: Vec<Option<RoutingKind>> =
        if req.routing.is_empty() { vec![None] } else { req.routing.iter().copied().map(Some).collect() };
    let mut lines: Vec<(String, u32, Option<RoutingKind>)> = Vec::new();
    for h in &req.hardware {
        for &tp in &tps {
            for &r in &routings {
                lines.push((h.clone(), tp, r));
            }
        }
    }
    let planner =
        Planner { req, catalog, objectives: objectives.clone(), num_requests, memo: Default::default() };
    let results: Vec<(Vec<Candidate>, LineDoc)> =
        lines.par_iter().enumerate().map(|(i, (h, tp, r))| planner.line(i, h, *tp, *r)).collect();

    let mut candidates: Vec<Candidate> = results.iter().flat_map(|(c, _)| c.iter().cloned()).collect();
    candidates.sort_by(|a, b| {
        (&a.hardware, a.tp, &a.routing_policy, a.num_instances).cmp(&(
            &b.hardware,
            b.tp,
            &b.routing_policy,
            b.num_instances,
        ))
    });
    let line_docs: Vec<LineDoc> = results.iter().map(|(_, l)| l.clone()).collect();
    let first = objectives[0].field.clone();
    let key = |c: &Candidate| {
        let cost = c.cost_per_hour.unwrap_or(f64::from(c.gpus));
        let ratio = c.metrics.get(&first).copied().unwrap_or(f64::INFINITY) / objectives[0].threshold_ms;
        (cost, ratio)
    };
    let best = candidates
        .iter()
        .filter(|c| c.meets_slo)
        // Only each line's minimum is a candidate answer (larger ones cost more).
        .filter(|c| line_docs[c.line].min_instances == Some(c.num_instances))
        .min_by(|a, b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal));
    let recommended: Option<Recommended> = best.map(|c| {
        let one_fewer =
            candidates.iter().find(|o| o.line == c.line && o.num_instances + 1 == c.num_instances).cloned();
        Recommended {
            hardware: c.hardware.clone(),
            tp: c.tp,
            num_instances: c.num_instances,
            gpus: c.gpus,
            routing_policy: c.routing_policy.clone(),
            cost_per_hour: c.cost_per_hour,
            predicted: c.metrics.clone(),
            run_args: run_args(&c.spec),
            one_fewer,
        }
    });
    // A configuration reached from two lines (one instance has no routing) is listed once.
    candidates.dedup_by(|b, a| {
        (&a.hardware, a.tp, a.num_instances, &a.routing_policy)
            == (&b.hardware, b.tp, b.num_instances, &b.routing_policy)
    });
    // Pareto frontier over steady candidates: fewer GPUs or lower latency.
    let steady: Vec<&Candidate> =
        candidates.iter().filter(|c| c.error.is_none() && c.verdicts.iter().all(|v| v == "stable")).collect();
    let mut frontier: Vec<FrontierPoint> = steady
        .iter()
        .filter(|c| {
            let lat = c.metrics[&first];
            !steady.iter().any(|o| {
                let ol = o.metrics[&first];
                (o.gpus <= c.gpus && ol < lat) || (o.gpus < c.gpus && ol <= lat)
            })
        })
        .map(|c| FrontierPoint {
            gpus: c.gpus,
            hardware: c.hardware.clone(),
            tp: c.tp,
            num_instances: c.num_instances,
            routing_policy: c.routing_policy.clone(),
            latency_ms: c.metrics[&first],
            meets_slo: c.meets_slo,
        })
        .collect();
    frontier.sort_by(|a, b| (a.gpus, &a.hardware, a.tp).cmp(&(b.gpus, &b.hardware, b.tp)));
    frontier.dedup_by(|b, a| a.gpus == b.gpus && a.latency_ms == b.latency_ms);
    let no_answer = recommended.is_none().then(|| {
        format!(
            "no configuration within {} GPUs meets {} with a steady run; see `lines`",
            req.max_gpus, req.slo
        )
    });
    let question = serde_json::json!({
        "model": base_config.spec.model,
        "workload": base_config.spec.workload.map(|w| w.name()),
        "workload_spec": base_config.spec.workload_spec.as_ref().map(|_| true),
        "rate": base_config.spec.rate.filter(|_| synthetic),
        "slo": req.slo,
        "hardware": req.hardware,
        "tp": tps,
        "routing_policies": routings.iter().flatten().map(|r| crate::name_of(*r)).collect::<Vec<_>>(),
        "max_gpus": req.max_gpus,
        "gpu_cost_per_hour": req.gpu_cost,
        "seeds": req.seeds,
        "num_requests": num_requests,
        "warmup_fraction": req.warmup_fraction,
        "minimise": if req.gpu_cost.is_empty() { "gpus" } else { "cost_per_hour" },
    });
    Ok(PlanDoc {
        question,
        recommended,
        no_answer,
        lines: line_docs,
        frontier_metric: first,
        frontier,
        candidates,
    })
}

/// The plan as a table (stderr of `blis plan`).
pub fn table(doc: &PlanDoc) -> String {
    let mut out = String::from("hardware   tp  routing        instances  gpus  meets  verdicts           ");
    out.push_str(&doc.frontier_metric);
    out.push('\n');
    for c in &doc.candidates {
        out.push_str(&format!(
            "{:<10} {:>2}  {:<14} {:>9}  {:>4}  {:<5}  {:<18} {:.1}\n",
            c.hardware,
            c.tp,
            c.routing_policy.as_deref().unwrap_or("-"),
            c.num_instances,
            c.gpus,
            if c.meets_slo { "yes" } else { "no" },
            if c.error.is_some() { "error".to_string() } else { c.verdicts.join(",") },
            c.metrics.get(&doc.frontier_metric).copied().unwrap_or(0.0)
        ));
    }
    match &doc.recommended {
        Some(r) => out.push_str(&format!(
            "recommended: {} × {} TP {} ({} GPUs{}){}\n",
            r.num_instances,
            r.hardware,
            r.tp,
            r.gpus,
            r.cost_per_hour.map_or(String::new(), |c| format!(", ${c:.2}/h")),
            r.routing_policy.as_ref().map_or(String::new(), |p| format!(", {p} routing"))
        )),
        None => out.push_str(&format!("no answer: {}\n", doc.no_answer.as_deref().unwrap_or(""))),
    }
    out
}

/// The `--report` page of a plan: the frontier and every candidate.
pub fn page(doc: &PlanDoc) -> String {
    use crate::html::{Series, esc, line_chart, page};
    let metric = &doc.frontier_metric;
    let mut series = vec![Series {
        name: "Pareto frontier".into(),
        points: doc.frontier.iter().map(|p| (f64::from(p.gpus), p.latency_ms)).collect(),
    }];
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    // Overloaded or too-short runs have no meaningful latency: only steady ones are drawn.
    for c in doc.candidates.iter().filter(|c| c.error.is_none() && c.verdicts.iter().all(|v| v == "stable")) {
        let name = format!(
            "{} TP{}{}",
            c.hardware,
            c.tp,
            c.routing_policy.as_ref().map_or(String::new(), |r| format!(" {r}"))
        );
        groups
            .entry(name)
            .or_default()
            .push((f64::from(c.gpus), c.metrics.get(metric).copied().unwrap_or(0.0)));
    }
    for (name, mut pts) in groups {
        pts.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        series.push(Series { name, points: pts });
    }
    let threshold = doc.question["slo"]
        .as_str()
        .and_then(|t| crate::slo::parse_objectives(t).ok())
        .map(|o| o[0].threshold_ms);
    let gpus: Vec<f64> = doc.candidates.iter().map(|c| f64::from(c.gpus)).collect();
    if let (Some(t), Some(lo), Some(hi)) =
        (threshold, gpus.iter().copied().reduce(f64::min), gpus.iter().copied().reduce(f64::max))
    {
        series.push(Series { name: format!("SLO {t} ms"), points: vec![(lo, t), (hi, t)] });
    }
    let mut body = String::new();
    body.push_str(&format!(
        r#"<section id="summary"><h2>Answer</h2><p id="plan-answer">{}</p></section>"#,
        esc(table(doc).lines().last().unwrap_or(""))
    ));
    body.push_str(r#"<section><h2>GPUs vs latency</h2><div class="charts">"#);
    body.push_str(&line_chart(
        "chart-frontier",
        &format!("{metric} by GPUs (worst seed)"),
        "GPUs",
        "ms",
        &series,
        false,
    ));
    body.push_str("</div></section>");
    body.push_str(&format!(
        r#"<section><h2>Candidates</h2><pre id="plan-candidates">{}</pre></section>"#,
        esc(&table(doc))
    ));
    body.push_str(&format!(
        r#"<section><h2>Question</h2><pre id="run-config">{}</pre></section>"#,
        esc(&serde_json::to_string_pretty(&doc.question).unwrap_or_default())
    ));
    page("BLIS plan", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_tp_rule() {
        // Llama 3.1 8B: 32 heads, 8 KV heads.
        assert_eq!(valid_tp(32, 8, 16), vec![1, 2, 4, 8]);
        assert_eq!(valid_tp(40, 8, 16), vec![1, 2, 4, 8]);
        assert_eq!(valid_tp(28, 4, 16), vec![1, 2, 4]);
        assert_eq!(valid_tp(56, 8, 4), vec![1, 2, 4]);
        assert_eq!(valid_tp(6, 6, 16), vec![1, 2]);
    }

    #[test]
    fn costs_parse() {
        let c = parse_costs("H100=2.5, A100-80=1.6").unwrap();
        assert_eq!(c["H100"], 2.5);
        assert!(parse_costs("H100").is_err());
        assert!(parse_costs("H100=-1").is_err());
    }

    #[test]
    fn run_args_spell_flags() {
        let spec = RunSpec {
            model: Some("m".into()),
            tp: Some(2),
            no_prefix_caching: Some(true),
            ..RunSpec::default()
        };
        assert_eq!(run_args(&spec), ["run", "--model", "m", "--no-prefix-caching", "true", "--tp", "2"]);
    }
}
