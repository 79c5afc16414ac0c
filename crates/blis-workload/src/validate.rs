//! Checks a [`WorkloadSpec`] and compiles it into the plans the generators run.
//!
//! Compilation follows the reference simulator's definitions of the spec keys:
//! `servegen_data` becomes cohorts ([`crate::servegen`]), each cohort becomes `population`
//! clients `<id>-<j>` sharing `rate_fraction / population` (activity windows from its
//! `diurnal`, `spike` and `drain` patterns), and each client becomes a [`ClientPlan`]:
//!
//! * a rate-based client: `aggregate_rate × rate_fraction / Σ rate_fraction`, the sum taken
//!   per phase over the clients whose activity windows overlap this client's (clients without
//!   windows overlap every phase);
//! * closed-loop virtual users (`concurrency`), which have no rate;
//! * a time-varying client: when any client has per-window parameters (`trace_rate`,
//!   `arrival`, `input_distribution`, `output_distribution` on a window), every rate-based
//!   client is generated window by window — `ceil(rate × duration)` gaps of the window's
//!   process rescaled to span the window exactly — at the window's proportional rate
//!   (`aggregate_rate × trace_rate / Σ co-active trace rates`) or, with `aggregate_rate: 0`,
//!   at its `trace_rate` in req/s.

use std::collections::HashMap;
use std::sync::Arc;

use crate::arrival::ArrivalProcess;
use crate::error::{Result, WorkloadError};
use crate::lengths::{LengthDist, PercentDist};
use crate::limits::{MAX_REQUEST_TOKENS, MAX_TIME_US, MIN_RATE_PER_S};
use crate::request::SloClass;
use crate::rng::{StreamRng, splitmix64, stream_seed};
use crate::spec::{
    ClientSpec, CohortSpec, DistSpec, LifecycleSpec, MultimodalSpec, WindowSpec, WorkloadSpec,
};
use crate::think::ThinkTime;

/// Seed used when neither the spec nor the caller names one (the CLI default).
pub const DEFAULT_SEED: u64 = 42;
/// Timeout applied to closed-loop clients (sessions, virtual users) that name none (300 s).
pub const DEFAULT_SESSION_TIMEOUT_US: u64 = 300_000_000;
/// Shared-prefix length of a client that names a `prefix_group` but no `prefix_length`.
pub const DEFAULT_PREFIX_LENGTH: u32 = 50;
/// Largest cohort `population` (the reference's bound).
pub const MAX_COHORT_POPULATION: i64 = 100_000;
/// Largest `concurrency` of one client.
pub const MAX_CONCURRENCY: i64 = 1_000_000;

const SLO_CLASSES: &str = "critical, standard, batch, sheddable, background (or empty)";

/// A client ready to generate.
#[derive(Debug, Clone)]
pub(crate) struct ClientPlan {
    pub id: Arc<str>,
    pub tenant: Option<Arc<str>>,
    /// The model the client's requests name.
    pub model: Option<Arc<str>>,
    /// The LoRA adapter the client's requests name.
    pub adapter: Option<Arc<str>>,
    pub slo_class: SloClass,
    pub slo_named: bool,
    pub arrival: ArrivalProcess,
    pub input: LengthDist,
    pub output: LengthDist,
    pub prefix: Option<PrefixPlan>,
    pub timeout_us: Option<u64>,
    /// The requests' own TTFT target for slo-deadline dispatch (`slo_target_us`, > 0).
    pub slo_target_us: Option<u64>,
    /// Active windows `[start, end)` in µs; empty = always on.
    pub windows: Vec<(u64, u64)>,
    pub multi_turn: Option<MultiTurnPlan>,
    /// Where the first arrival falls (only the reference's inference-perf expansion changes it).
    pub first_arrival: FirstArrival,
    /// `Some((n, d))`: exactly `n` arrivals in `(0, d]` µs instead of the renewal `arrival`
    /// process (the reference's "normalized exponential" single-stage inference-perf clients).
    pub normalized: Option<(u64, u64)>,
    /// Closed-loop virtual users instead of arrivals (`concurrency`).
    pub users: Option<UsersPlan>,
    /// Non-empty: arrivals are generated window by window (see the module docs).
    pub time_varying: Vec<WindowPlan>,
    pub multimodal: Option<Arc<MultimodalPlan>>,
    pub reason_ratio: Option<PercentDist>,
}

impl ClientPlan {
    /// A rate-based client with every optional behaviour off.
    pub fn basic(id: &str, arrival: ArrivalProcess, input: LengthDist, output: LengthDist) -> Self {
        ClientPlan {
            id: Arc::from(id),
            tenant: None,
            model: None,
            adapter: None,
            slo_class: SloClass::Standard,
            slo_named: false,
            arrival,
            input,
            output,
            prefix: None,
            timeout_us: None,
            slo_target_us: None,
            windows: Vec::new(),
            multi_turn: None,
            first_arrival: FirstArrival::Renewal,
            normalized: None,
            users: None,
            time_varying: Vec::new(),
            multimodal: None,
            reason_ratio: None,
        }
    }
}

/// How a client's first arrival is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum FirstArrival {
    /// One gap after time 0, then gaps until the time lies in an active window (BLIS).
    #[default]
    Renewal,
    /// One gap after the start of the first window; the client sends nothing if that lands
    /// outside its windows (the reference's single-session inference-perf clients).
    WindowStartPlusGap,
}

#[derive(Debug, Clone)]
pub(crate) struct PrefixPlan {
    pub group: Arc<str>,
    pub source: u64,
    pub len: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct MultiTurnPlan {
    pub max_rounds: u32,
    /// Think time of open-loop stamping (`arrival_{r+1} = arrival_r + think + output_r`).
    pub think_time_us: u64,
    /// Think time before a closed-loop follow-up.
    pub think: ThinkTime,
    pub accumulate: bool,
    pub single_session: bool,
    pub closed_loop: bool,
}

/// `concurrency` virtual users, each one endless closed-loop session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UsersPlan {
    pub users: u32,
    pub think: ThinkTime,
}

/// One activity window of a time-varying client.
#[derive(Debug, Clone)]
pub(crate) struct WindowPlan {
    pub start_us: u64,
    pub end_us: u64,
    /// Requests per second in this window (0: none).
    pub rate: f64,
    pub arrival: ArrivalProcess,
    pub input: LengthDist,
    pub output: LengthDist,
}

/// A multimodal prompt: text plus `count` items of each medium, each item drawing its tokens.
#[derive(Debug, Clone)]
pub(crate) struct MultimodalPlan {
    pub text: Option<LengthDist>,
    /// (tokens per item, items per request) of image, audio and video.
    pub media: [Option<(LengthDist, LengthDist)>; 3],
}

impl MultimodalPlan {
    /// (text, image, audio, video) tokens of one request.
    pub fn sample(&self, rng: &mut StreamRng) -> [u32; 4] {
        let mut out = [0u32; 4];
        if let Some(t) = &self.text {
            out[0] = t.sample(rng);
        }
        for (k, m) in self.media.iter().enumerate() {
            if let Some((tokens, count)) = m {
                let n = count.sample(rng);
                let mut sum = 0u64;
                for _ in 0..n {
                    sum += u64::from(tokens.sample(rng));
                    if sum >= u64::from(MAX_REQUEST_TOKENS) {
                        break;
                    }
                }
                out[k + 1] = sum.min(u64::from(MAX_REQUEST_TOKENS)) as u32;
            }
        }
        out
    }
}

/// The token source of a shared-prefix group: a function of (seed, group name) only, so every
/// client (and every replayed trace row) of the group shares the same prompt tokens.
pub fn prefix_source(seed: u64, group: &str) -> u64 {
    splitmix64(stream_seed(seed, &format!("prefix-group/{group}")))
}

/// Checks everything that can be checked without generating.
pub fn validate(spec: &WorkloadSpec) -> Result<()> {
    let seed = spec.seed.map_or(DEFAULT_SEED, |s| s as u64);
    compile_clients(spec, seed).map(drop)?;
    if let Some(ip) = &spec.inference_perf {
        crate::inference_perf::InferencePerfPlan::compile(ip).map(drop)?;
    }
    Ok(())
}

/// The LoRA adapters the spec's clients and cohorts name, with the path of each reference
/// (`clients[2].adapter`) and the model it names, in spec order.
pub fn adapter_references(spec: &WorkloadSpec) -> Vec<(String, String, Option<String>)> {
    let clients =
        spec.clients.iter().enumerate().map(|(i, c)| (format!("clients[{i}]"), &c.adapter, &c.model));
    let cohorts =
        spec.cohorts.iter().enumerate().map(|(i, c)| (format!("cohorts[{i}]"), &c.adapter, &c.model));
    clients
        .chain(cohorts)
        .filter_map(|(path, adapter, model)| {
            let a = adapter.as_deref().map(str::trim).filter(|a| !a.is_empty())?;
            Some((format!("{path}.adapter"), a.to_string(), model.clone()))
        })
        .collect()
}

/// Settings of a valid spec that change nothing in a simulation, one line each (for the
/// caller to show as warnings).
pub fn notes(spec: &WorkloadSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |path: String, what: &str| out.push(format!("{path}: {what}"));
    let entries = spec
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("clients[{i}]"), c.slo_target_us, c.streaming))
        .chain(
            spec.cohorts
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("cohorts[{i}]"), c.slo_target_us, c.streaming)),
        );
    for (path, target, streaming) in entries {
        if target.is_some_and(|t| t > 0) {
            note(
                format!("{path}.slo_target_us"),
                "orders gateway dispatch only with --flow-control --dispatch-order slo-deadline \
                 (before the class's --slo-targets entry)",
            );
        }
        if streaming == Some(false) {
            note(
                format!("{path}.streaming"),
                "no effect: latencies are the server's token timings (a non-streaming client sees its \
                 response at e2e)",
            );
        }
    }
    out
}

/// A client as written, where it was written, and (for cohort members) its window rates.
struct Source<'a> {
    path: String,
    client: std::borrow::Cow<'a, ClientSpec>,
}

/// Validates the top level and compiles the clients (empty for an inference-perf spec).
pub(crate) fn compile_clients(spec: &WorkloadSpec, seed: u64) -> Result<Vec<ClientPlan>> {
    let v1 = match spec.version.as_deref().map(str::trim) {
        None | Some("") | Some("1") => true,
        Some("2") => false,
        Some(other) => {
            return Err(WorkloadError::at("version", format!("accepted: \"2\" (or \"1\"), got {other:?}")));
        }
    };
    if let Some(c) = spec.category.as_deref()
        && !matches!(c, "" | "language" | "multimodal" | "reasoning")
    {
        return Err(WorkloadError::at(
            "category",
            format!("accepted: language, multimodal, reasoning, got {c:?}"),
        ));
    }
    if let Some(n) = spec.num_requests
        && n < 0
    {
        return Err(WorkloadError::at("num_requests", format!("must be ≥ 0 (0 = no cap), got {n}")));
    }
    if let Some(h) = spec.horizon
        && h < 0
    {
        return Err(WorkloadError::at("horizon", format!("must be ≥ 0 µs (0 = none), got {h}")));
    }
    if let Some(targets) = &spec.goodput_slo_targets {
        for (class, t) in targets {
            if SloClass::parse(class).is_none() || class.is_empty() {
                return Err(WorkloadError::at(
                    format!("goodput_slo_targets.{class}"),
                    format!("unknown SLO class; accepted: {SLO_CLASSES}"),
                ));
            }
            for (k, v) in [("ttft_ms", t.ttft_ms), ("itl_ms", t.itl_ms), ("e2e_ms", t.e2e_ms)] {
                if let Some(v) = v
                    && !(v.is_finite() && v > 0.0)
                {
                    return Err(WorkloadError::at(
                        format!("goodput_slo_targets.{class}.{k}"),
                        format!("must be > 0, got {v}"),
                    ));
                }
            }
        }
    }
    let sources: Vec<&str> = [
        (!spec.clients.is_empty() || !spec.cohorts.is_empty()).then_some("clients/cohorts"),
        spec.servegen_data.is_some().then_some("servegen_data"),
        spec.inference_perf.is_some().then_some("inference_perf"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.len() > 1 {
        let key = if spec.inference_perf.is_some() { "inference_perf" } else { "servegen_data" };
        return Err(WorkloadError::at(
            key,
            format!(
                "cannot be combined with {}; give exactly one of clients (and cohorts), servegen_data, inference_perf",
                sources.iter().find(|s| **s != key).copied().unwrap_or("another source")
            ),
        ));
    }
    if spec.inference_perf.is_some() {
        return Ok(Vec::new());
    }
    if let Some(sg) = &spec.servegen_data {
        let converted = crate::servegen::load(sg, spec.seed.unwrap_or(DEFAULT_SEED as i64))
            .map_err(|e| e.under("servegen_data"))?;
        let mut expanded = spec.clone();
        expanded.servegen_data = None;
        expanded.cohorts = converted.cohorts;
        expanded.aggregate_rate = Some(converted.aggregate_rate);
        if expanded.category.as_deref().is_none_or(str::is_empty) {
            expanded.category = converted.category;
        }
        return compile_clients(&expanded, seed);
    }
    if spec.clients.is_empty() && spec.cohorts.is_empty() {
        return Err(WorkloadError::at(
            "clients",
            "at least one client, cohort, servegen_data or inference_perf section is required",
        ));
    }
    // Every client and every cohort member, in order (cohort members after the clients).
    let mut all: Vec<Source> = spec
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| Source { path: format!("clients[{i}]"), client: std::borrow::Cow::Borrowed(c) })
        .collect();
    for (i, cohort) in spec.cohorts.iter().enumerate() {
        expand_cohort(cohort, i, &mut all)?;
    }
    check_slo_classes(spec)?;
    let users_clients = all.iter().filter(|s| s.client.concurrency.is_some_and(|c| c > 0)).count();
    let multi_turn =
        all.iter().position(|s| s.client.reasoning.as_ref().is_some_and(|r| r.multi_turn.is_some()));
    if users_clients > 0
        && let Some(m) = multi_turn
    {
        return Err(WorkloadError::at(
            format!("{}.reasoning.multi_turn", all[m].path),
            "cannot be combined with concurrency clients in one spec (the reference refuses it too: the \
             request budget of virtual users does not cover session follow-ups)",
        ));
    }
    let rate_based: Vec<usize> =
        (0..all.len()).filter(|&i| all[i].client.concurrency.is_none_or(|c| c == 0)).collect();
    let absolute = spec.aggregate_rate == Some(0.0);
    let aggregate = if rate_based.is_empty() {
        0.0
    } else {
        match spec.aggregate_rate {
            Some(r) if r.is_finite() && r > 0.0 && r < MIN_RATE_PER_S => {
                return Err(WorkloadError::at("aggregate_rate", slow_rate_message(r)));
            }
            Some(r) if r.is_finite() && r > 0.0 => r,
            Some(0.0) => 0.0,
            Some(r) => {
                return Err(WorkloadError::at(
                    "aggregate_rate",
                    format!("must be > 0 req/s (or 0 for absolute per-window trace_rate), got {r}"),
                ));
            }
            None => {
                return Err(WorkloadError::at(
                    "aggregate_rate",
                    "required (> 0 req/s, or 0 with a trace_rate on every window) when rate-based clients are given",
                ));
            }
        }
    };
    let mut fractions = vec![0.0; all.len()];
    for &i in &rate_based {
        let s = &all[i];
        match s.client.rate_fraction {
            Some(f) if f.is_finite() && f > 0.0 => fractions[i] = f,
            Some(f) => {
                return Err(WorkloadError::at(
                    format!("{}.rate_fraction", s.path),
                    format!("must be > 0, got {f}"),
                ));
            }
            None => {
                return Err(WorkloadError::at(format!("{}.rate_fraction", s.path), "required (> 0)"));
            }
        }
    }
    let total: f64 = fractions.iter().sum();
    if !total.is_finite() {
        return Err(WorkloadError::at(
            "clients",
            "rate_fraction values must sum to a finite number (they are relative; scale them down)",
        ));
    }
    let windows: Vec<Vec<(i64, i64)>> = all
        .iter()
        .map(|s| {
            s.client
                .lifecycle
                .as_ref()
                .map_or(Vec::new(), |l| l.windows.iter().map(|w| (w.start_us, w.end_us)).collect())
        })
        .collect();
    let time_varying = rate_based.iter().any(|&i| has_window_overrides(all[i].client.lifecycle.as_ref()));
    if absolute && !rate_based.is_empty() {
        for &i in &rate_based {
            let s = &all[i];
            let lc = s.client.lifecycle.as_ref().filter(|l| !l.windows.is_empty());
            let Some(lc) = lc else {
                return Err(WorkloadError::at(
                    format!("{}.lifecycle", s.path),
                    "aggregate_rate is 0 (absolute rate mode): every rate-based client needs lifecycle windows, each \
                     with a trace_rate",
                ));
            };
            if let Some(w) = lc.windows.iter().position(|w| w.trace_rate.is_none()) {
                return Err(WorkloadError::at(
                    format!("{}.lifecycle.windows[{w}].trace_rate", s.path),
                    "required when aggregate_rate is 0 (absolute rate mode)",
                ));
            }
        }
    }
    if time_varying && let Some(&i) = rate_based.iter().find(|&&i| windows[i].is_empty()) {
        let j = rate_based
            .iter()
            .copied()
            .find(|&j| has_window_overrides(all[j].client.lifecycle.as_ref()))
            .unwrap_or(i);
        return Err(WorkloadError::at(
            format!("{}.lifecycle", all[i].path),
            format!(
                "required: {} has per-window parameters, which generate every rate-based client window by window; \
                 give this client windows too (a client without windows would send nothing, as in the reference)",
                all[j].path
            ),
        ));
    }
    // Per-phase sums of the fractions of co-active clients, grouped by identical windows.
    let co_active = co_active_sums(&rate_based, &windows, &fractions);
    let tv_rates =
        if time_varying { Some(window_rates(&rate_based, &all, &fractions, aggregate)) } else { None };
    let mut plans = Vec::with_capacity(all.len());
    for (i, s) in all.iter().enumerate() {
        let is_rate = fractions[i] > 0.0;
        let rate = if !is_rate {
            0.0
        } else if absolute {
            // Only per-window rates apply (every window has a trace_rate).
            1.0
        } else {
            // Without windows the sum is global; `aggregate × f / Σ f` as before.
            let sum = co_active[i];
            aggregate * fractions[i] / sum
        };
        if is_rate && !absolute && rate < MIN_RATE_PER_S {
            return Err(WorkloadError::at(
                format!("{}.rate_fraction", s.path),
                format!("gives this client {}", slow_rate_message(rate)),
            ));
        }
        let window_rates = tv_rates.as_ref().map(|r| r[i].as_slice()).unwrap_or(&[]);
        plans.push(compile_client(&s.client, &s.path, rate, window_rates, seed, v1)?);
    }
    Ok(plans)
}

/// Why a rate is too slow to simulate.
pub(crate) fn slow_rate_message(rate: f64) -> String {
    format!(
        "a rate of {} req/s, below the slowest accepted {MIN_RATE_PER_S:.4e} req/s (one request per 100 years, \
         the longest simulated time)",
        crate::limits::num(rate)
    )
}

/// Either every client and cohort names an SLO class or none does (the reference's rule).
fn check_slo_classes(spec: &WorkloadSpec) -> Result<()> {
    let named: Vec<(String, bool)> =
        spec.clients
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("clients[{i}]"), c.slo_class.as_deref().is_some_and(|s| !s.is_empty())))
            .chain(spec.cohorts.iter().enumerate().map(|(i, c)| {
                (format!("cohorts[{i}]"), c.slo_class.as_deref().is_some_and(|s| !s.is_empty()))
            }))
            .collect();
    if let Some(i) = named.iter().position(|n| n.1 != named[0].1) {
        let (with, without) = if named[0].1 { (0, i) } else { (i, 0) };
        return Err(WorkloadError::at(
            format!("{}.slo_class", named[without].0),
            format!("either every client sets slo_class or none does ({} sets it)", named[with].0),
        ));
    }
    Ok(())
}

fn has_window_overrides(lc: Option<&LifecycleSpec>) -> bool {
    lc.is_some_and(|l| {
        l.windows.iter().any(|w| {
            w.trace_rate.is_some()
                || w.arrival.is_some()
                || w.input_distribution.is_some()
                || w.output_distribution.is_some()
        })
    })
}

fn overlap(a: &[(i64, i64)], b: &[(i64, i64)]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|x| b.iter().any(|y| x.0 < y.1 && y.0 < x.1))
}

/// For each rate-based client, the sum of the fractions of the rate-based clients whose windows
/// overlap its own (itself included). Clients are grouped by identical window lists, so a
/// cohort of 100 000 members costs one group.
fn co_active_sums(rate_based: &[usize], windows: &[Vec<(i64, i64)>], fractions: &[f64]) -> Vec<f64> {
    let mut groups: Vec<(&[(i64, i64)], f64)> = Vec::new();
    let mut index: HashMap<&[(i64, i64)], usize> = HashMap::new();
    let mut group_of = vec![usize::MAX; windows.len()];
    for &i in rate_based {
        let g = *index.entry(windows[i].as_slice()).or_insert_with(|| {
            groups.push((windows[i].as_slice(), 0.0));
            groups.len() - 1
        });
        groups[g].1 += fractions[i];
        group_of[i] = g;
    }
    let sums: Vec<f64> = groups
        .iter()
        .map(|(w, _)| groups.iter().filter(|(v, _)| overlap(w, v)).map(|(_, f)| f).sum())
        .collect();
    (0..windows.len()).map(|i| if group_of[i] == usize::MAX { 0.0 } else { sums[group_of[i]] }).collect()
}

/// Per-window rates (req/s) of every rate-based client of a time-varying spec: the window's
/// `trace_rate` directly when `aggregate` is 0, else `aggregate × weight / Σ co-active
/// weights`, where a window's weight is its `trace_rate` (else the client's `rate_fraction`)
/// and each other client contributes the weight of its first window overlapping this one.
fn window_rates(rate_based: &[usize], all: &[Source], fractions: &[f64], aggregate: f64) -> Vec<Vec<f64>> {
    let weighted = |i: usize| -> Vec<(i64, i64, f64)> {
        all[i]
            .client
            .lifecycle
            .as_ref()
            .map(|l| {
                l.windows
                    .iter()
                    .map(|w| (w.start_us, w.end_us, w.trace_rate.unwrap_or(fractions[i])))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Group identical weighted window lists (cohort members).
    // (windows as (start µs, end µs, rate), summed weight)
    #[allow(clippy::type_complexity)]
    let mut groups: Vec<(Vec<(i64, i64, f64)>, f64)> = Vec::new();
    let mut group_of = vec![usize::MAX; all.len()];
    {
        let mut index: HashMap<Vec<(i64, i64, u64)>, usize> = HashMap::new();
        for &i in rate_based {
            let w = weighted(i);
            let key: Vec<(i64, i64, u64)> = w.iter().map(|&(s, e, r)| (s, e, r.to_bits())).collect();
            let g = *index.entry(key).or_insert_with(|| {
                groups.push((w, 0.0));
                groups.len() - 1
            });
            groups[g].1 += 1.0;
            group_of[i] = g;
        }
    }
    let mut out = vec![Vec::new(); all.len()];
    let per_group: Vec<Vec<f64>> = groups
        .iter()
        .map(|(ws, _)| {
            ws.iter()
                .map(|&(s, e, weight)| {
                    if aggregate == 0.0 {
                        return weight;
                    }
                    let total: f64 = groups
                        .iter()
                        .map(|(other, members)| {
                            other.iter().find(|o| o.0 < e && s < o.1).map_or(0.0, |o| o.2 * members)
                        })
                        .sum();
                    if total > 0.0 { aggregate * (weight / total) } else { 0.0 }
                })
                .collect()
        })
        .collect();
    for &i in rate_based {
        out[i] = per_group[group_of[i]].clone();
    }
    out
}

/// Expands cohort `k` into its members (appended to `out`).
fn expand_cohort<'a>(c: &CohortSpec, k: usize, out: &mut Vec<Source<'a>>) -> Result<()> {
    let path = format!("cohorts[{k}]");
    let at = |key: &str, msg: String| WorkloadError::at(format!("{path}.{key}"), msg);
    if !(1..=MAX_COHORT_POPULATION).contains(&c.population) {
        return Err(at(
            "population",
            format!("must be in 1..={MAX_COHORT_POPULATION}, got {}", c.population),
        ));
    }
    let rate_fraction = match c.rate_fraction {
        Some(f) if f.is_finite() && f > 0.0 => f,
        Some(f) => return Err(at("rate_fraction", format!("must be > 0, got {f}"))),
        None => return Err(at("rate_fraction", "required (> 0)".into())),
    };
    let per_member = match c.prefix_sharing.as_deref() {
        None | Some("") | Some("shared") => false,
        Some("per_member") => {
            if c.prefix_group.as_deref().is_none_or(str::is_empty) {
                return Err(at("prefix_sharing", "per_member needs prefix_group".into()));
            }
            true
        }
        Some(other) => {
            return Err(at("prefix_sharing", format!("accepted: shared, per_member, got {other:?}")));
        }
    };
    let mut windows: Vec<WindowSpec> = Vec::new();
    if let Some(d) = &c.diurnal {
        if !(0..=23).contains(&d.peak_hour) {
            return Err(at("diurnal.peak_hour", format!("must be in 0..=23, got {}", d.peak_hour)));
        }
        if !(d.peak_to_trough_ratio.is_finite() && d.peak_to_trough_ratio >= 1.0) {
            return Err(at(
                "diurnal.peak_to_trough_ratio",
                format!("must be a finite number ≥ 1, got {}", d.peak_to_trough_ratio),
            ));
        }
        const HOUR_US: i64 = 3_600_000_000;
        let r = d.peak_to_trough_ratio;
        for h in 0..24i64 {
            let angle = 2.0 * std::f64::consts::PI * (h - d.peak_hour) as f64 / 24.0;
            let share = (1.0 + angle.cos()) / 2.0 * (1.0 - 1.0 / r) + 1.0 / r;
            let active = ((HOUR_US as f64 * share) as i64).clamp(1, HOUR_US);
            windows.push(WindowSpec {
                start_us: h * HOUR_US,
                end_us: h * HOUR_US + active,
                ..WindowSpec::default()
            });
        }
    }
    if let Some(s) = &c.spike {
        if s.start_time_us < 0 {
            return Err(at("spike.start_time_us", format!("must be ≥ 0, got {}", s.start_time_us)));
        }
        if s.duration_us <= 0 {
            return Err(at("spike.duration_us", format!("must be > 0, got {}", s.duration_us)));
        }
        if s.start_time_us.saturating_add(s.duration_us) as u64 > MAX_TIME_US {
            return Err(at(
                "spike.duration_us",
                "the spike ends beyond 100 years, the longest simulated time".into(),
            ));
        }
        let trace_rate = match s.trace_rate {
            None => None,
            Some(r) if r.is_finite() && r > 0.0 => Some(r / c.population as f64),
            Some(r) => return Err(at("spike.trace_rate", format!("must be > 0 req/s, got {r}"))),
        };
        windows.push(WindowSpec {
            start_us: s.start_time_us,
            end_us: s.start_time_us + s.duration_us,
            trace_rate,
            ..WindowSpec::default()
        });
    }
    if let Some(d) = &c.drain {
        if d.start_time_us < 0 {
            return Err(at("drain.start_time_us", format!("must be ≥ 0, got {}", d.start_time_us)));
        }
        if d.ramp_duration_us <= 0 {
            return Err(at("drain.ramp_duration_us", format!("must be > 0, got {}", d.ramp_duration_us)));
        }
        if d.start_time_us.saturating_add(d.ramp_duration_us) as u64 > MAX_TIME_US {
            return Err(at(
                "drain.ramp_duration_us",
                "the drain ends beyond 100 years, the longest simulated time".into(),
            ));
        }
        if d.start_time_us > 0 {
            windows.push(WindowSpec { start_us: 0, end_us: d.start_time_us, ..WindowSpec::default() });
        }
        let segment = (d.ramp_duration_us / 10).max(1);
        for i in 0..10i64 {
            let start = d.start_time_us + i * segment;
            let active = ((segment as f64 * (10 - i) as f64 / 10.0) as i64).max(1);
            windows.push(WindowSpec { start_us: start, end_us: start + active, ..WindowSpec::default() });
        }
    }
    let member = |j: i64| ClientSpec {
        id: Some(format!("{}-{j}", c.id.as_deref().unwrap_or(&format!("cohort-{k}")))),
        tenant_id: c.tenant_id.clone(),
        slo_class: c.slo_class.clone(),
        model: c.model.clone(),
        adapter: c.adapter.clone(),
        rate_fraction: Some(rate_fraction / c.population as f64),
        arrival: c.arrival.clone(),
        input_distribution: c.input_distribution.clone(),
        output_distribution: c.output_distribution.clone(),
        prefix_group: match (&c.prefix_group, per_member) {
            (Some(g), true) => Some(format!("{g}-{j}")),
            (g, _) => g.clone(),
        },
        prefix_length: c.prefix_length,
        streaming: c.streaming,
        network: c.network.clone(),
        lifecycle: (!windows.is_empty()).then(|| LifecycleSpec { windows: windows.clone() }),
        multimodal: c.multimodal.clone(),
        reasoning: c.reasoning.clone(),
        timeout: c.timeout,
        slo_target_us: c.slo_target_us,
        closed_loop: c.closed_loop,
        ..ClientSpec::default()
    };
    out.reserve(c.population as usize);
    for j in 0..c.population {
        out.push(Source { path: path.clone(), client: std::borrow::Cow::Owned(member(j)) });
    }
    Ok(())
}

fn length_dist(d: Option<&DistSpec>, path: &str, key: &str) -> Result<LengthDist> {
    d.ok_or_else(|| WorkloadError::at(format!("{path}.{key}"), "required"))
        .and_then(|d| LengthDist::from_spec(d, &format!("{path}.{key}")))
}

fn multimodal_plan(m: &MultimodalSpec, path: &str) -> Result<MultimodalPlan> {
    let opt = |d: &Option<DistSpec>, key: &str| -> Result<Option<LengthDist>> {
        d.as_ref().map(|d| LengthDist::from_spec(d, &format!("{path}.multimodal.{key}"))).transpose()
    };
    let mut media: [Option<(LengthDist, LengthDist)>; 3] = [None, None, None];
    for (k, (name, tokens, count)) in [
        ("image", &m.image_distribution, &m.image_count_distribution),
        ("audio", &m.audio_distribution, &m.audio_count_distribution),
        ("video", &m.video_distribution, &m.video_count_distribution),
    ]
    .into_iter()
    .enumerate()
    {
        let t = opt(tokens, &format!("{name}_distribution"))?;
        let c = opt(count, &format!("{name}_count_distribution"))?;
        media[k] = match (t, c) {
            (Some(t), Some(c)) => Some((t, c)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(WorkloadError::at(
                    format!("{path}.multimodal.{name}_count_distribution"),
                    format!("required with {name}_distribution (how many items per request)"),
                ));
            }
            (None, Some(_)) => {
                return Err(WorkloadError::at(
                    format!("{path}.multimodal.{name}_distribution"),
                    format!("required with {name}_count_distribution (tokens per item)"),
                ));
            }
        };
    }
    let text = opt(&m.text_distribution, "text_distribution")?;
    if text.is_none() && media.iter().all(Option::is_none) {
        return Err(WorkloadError::at(
            format!("{path}.multimodal"),
            "needs a text_distribution or a medium (image/audio/video distribution with its count distribution)",
        ));
    }
    Ok(MultimodalPlan { text, media })
}

fn compile_client(
    c: &ClientSpec,
    path: &str,
    rate: f64,
    window_rates: &[f64],
    seed: u64,
    v1: bool,
) -> Result<ClientPlan> {
    let at = |key: &str, msg: String| WorkloadError::at(format!("{path}.{key}"), msg);
    let slo_name = c.slo_class.as_deref().unwrap_or("");
    let upgraded = match slo_name {
        "realtime" if v1 => "critical",
        "interactive" if v1 => "standard",
        s => s,
    };
    let slo_class = SloClass::parse(upgraded)
        .ok_or_else(|| at("slo_class", format!("unknown class {slo_name:?}; accepted: {SLO_CLASSES}")))?;
    let users = match c.concurrency {
        None | Some(0) => None,
        Some(n) if !(1..=MAX_CONCURRENCY).contains(&n) => {
            return Err(at(
                "concurrency",
                format!("must be in 0..={MAX_CONCURRENCY} virtual users, got {n}"),
            ));
        }
        Some(n) => {
            if c.rate_fraction.is_some_and(|f| f > 0.0) {
                return Err(at(
                    "concurrency",
                    "and rate_fraction are mutually exclusive (virtual users have no rate)".into(),
                ));
            }
            if c.lifecycle.as_ref().is_some_and(|l| !l.windows.is_empty()) {
                return Err(at(
                    "lifecycle",
                    "not supported with concurrency (virtual users run from the start)".into(),
                ));
            }
            let think = match (&c.think_time_dist, c.think_time_us) {
                (Some(_), Some(_)) => {
                    return Err(at("think_time_dist", "and think_time_us are mutually exclusive".into()));
                }
                (Some(text), None) => ThinkTime::parse(text).map_err(|e| at("think_time_dist", e))?,
                (None, t) => {
                    let t = t.unwrap_or(0);
                    if t < 0 {
                        return Err(at("think_time_us", format!("must be ≥ 0 µs, got {t}")));
                    }
                    ThinkTime::Constant { us: crate::limits::time_us(&format!("{path}.think_time_us"), t)? }
                }
            };
            Some(UsersPlan { users: n as u32, think })
        }
    };
    if users.is_none() {
        if let Some(t) = c.think_time_us {
            return Err(at(
                "think_time_us",
                format!(
                    "set without concurrency (it is the virtual users' think time; sessions use reasoning.multi_turn.think_time_us), got {t}"
                ),
            ));
        }
        if c.think_time_dist.is_some() {
            return Err(at(
                "think_time_dist",
                "set without concurrency (it is the virtual users' think time)".into(),
            ));
        }
    }
    let arrival = if users.is_some() {
        ArrivalProcess::constant(1.0)
    } else {
        ArrivalProcess::from_spec(rate.max(MIN_RATE_PER_S), c.arrival.as_ref(), &format!("{path}.arrival"))?
    };
    let multimodal = c.multimodal.as_ref().map(|m| multimodal_plan(m, path)).transpose()?.map(Arc::new);
    let input = match (&c.input_distribution, &multimodal) {
        // A multimodal prompt is drawn from its own distributions.
        (None, Some(_)) => LengthDist::constant(1),
        (d, _) => length_dist(d.as_ref(), path, "input_distribution")?,
    };
    let output = length_dist(c.output_distribution.as_ref(), path, "output_distribution")?;
    // The prompt also holds at least one token of its own after the prefix.
    if let Some(n) = c.prefix_length {
        crate::limits::tokens(&format!("{path}.prefix_length"), n, 0, MAX_REQUEST_TOKENS - 1)?;
    }
    let prefix = match (c.prefix_group.as_deref(), c.prefix_length) {
        (None | Some(""), Some(n)) if n > 0 => {
            return Err(at("prefix_length", "set without prefix_group".into()));
        }
        (None | Some(""), _) => None,
        (Some(g), n) => Some(PrefixPlan {
            group: Arc::from(g),
            source: prefix_source(seed, g),
            len: n.map_or(DEFAULT_PREFIX_LENGTH, |n| n as u32),
        }),
    };
    let reason_ratio = match c.reasoning.as_ref().and_then(|r| r.reason_ratio_distribution.as_ref()) {
        None => None,
        Some(d) => Some(PercentDist::from_spec(d, &format!("{path}.reasoning.reason_ratio_distribution"))?),
    };
    let multi_turn = match c.reasoning.as_ref().and_then(|r| r.multi_turn.as_ref()) {
        None => None,
        Some(mt) => {
            if mt.max_rounds < 1 || mt.max_rounds > i64::from(u32::MAX) {
                return Err(at(
                    "reasoning.multi_turn.max_rounds",
                    format!("must be ≥ 1, got {}", mt.max_rounds),
                ));
            }
            if multimodal.is_some() {
                return Err(at(
                    "multimodal",
                    "not supported with reasoning.multi_turn (follow-up rounds are text turns; the reference \
                     ignores multimodal for sessions)"
                        .into(),
                ));
            }
            let think = crate::limits::time_us(
                &format!("{path}.reasoning.multi_turn.think_time_us"),
                mt.think_time_us.unwrap_or(0),
            )?;
            let accumulate = match mt.context_growth.as_deref().unwrap_or("") {
                "" => false,
                "accumulate" => true,
                other => {
                    return Err(at(
                        "reasoning.multi_turn.context_growth",
                        format!("accepted: accumulate (or empty), got {other:?}"),
                    ));
                }
            };
            Some(MultiTurnPlan {
                max_rounds: mt.max_rounds as u32,
                think_time_us: think,
                think: ThinkTime::Constant { us: think },
                accumulate,
                single_session: mt.single_session.unwrap_or(false),
                closed_loop: c.closed_loop.unwrap_or(true),
            })
        }
    };
    if c.closed_loop == Some(true) && multi_turn.is_none() && users.is_none() {
        return Err(at(
            "closed_loop",
            "true needs reasoning.multi_turn (only sessions have rounds to wait for; for closed-loop \
             single requests use concurrency)"
                .into(),
        ));
    }
    let closed = users.is_some() || multi_turn.is_some_and(|m| m.closed_loop);
    let timeout_us = match c.timeout {
        Some(t) if t < 0 => {
            return Err(at("timeout", format!("must be ≥ 0 µs (0 = none), got {t}")));
        }
        Some(0) => None,
        Some(t) => Some(crate::limits::time_us(&format!("{path}.timeout"), t)?),
        None if closed || multi_turn.is_some() => Some(DEFAULT_SESSION_TIMEOUT_US),
        None => None,
    };
    if let Some(t) = c.slo_target_us {
        if t < 0 {
            return Err(at("slo_target_us", format!("must be ≥ 0 µs, got {t}")));
        }
        crate::limits::time_us(&format!("{path}.slo_target_us"), t)?;
    }
    if let Some(n) = &c.network {
        for (k, v) in [("rtt_ms", n.rtt_ms), ("bandwidth_mbps", n.bandwidth_mbps)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(at(&format!("network.{k}"), format!("must be ≥ 0, got {v}")));
            }
        }
    }
    let mut windows = Vec::new();
    let mut time_varying = Vec::new();
    if let Some(lc) = &c.lifecycle {
        if lc.windows.is_empty() {
            return Err(at("lifecycle.windows", "lifecycle given with no windows".into()));
        }
        for (w, win) in lc.windows.iter().enumerate() {
            let wp = format!("lifecycle.windows[{w}]");
            if win.start_us < 0 || win.end_us <= win.start_us {
                return Err(at(
                    &wp,
                    format!("needs 0 ≤ start_us < end_us, got [{}, {})", win.start_us, win.end_us),
                ));
            }
            if win.end_us as u64 > MAX_TIME_US {
                return Err(at(
                    &format!("{wp}.end_us"),
                    format!("{} µs is beyond 100 years, the longest simulated time", win.end_us),
                ));
            }
            if let Some(r) = win.trace_rate
                && !(r.is_finite() && r >= 0.0)
            {
                return Err(at(&format!("{wp}.trace_rate"), format!("must be ≥ 0, got {r}")));
            }
            windows.push((win.start_us as u64, win.end_us as u64));
            if !window_rates.is_empty() {
                let wpath = format!("{path}.{wp}");
                let rate = window_rates[w];
                let arrival = ArrivalProcess::from_spec(
                    rate.max(MIN_RATE_PER_S),
                    win.arrival.as_ref().or(c.arrival.as_ref()),
                    &format!("{wpath}.arrival"),
                )?;
                let input = match &win.input_distribution {
                    Some(d) => LengthDist::from_spec(d, &format!("{wpath}.input_distribution"))?,
                    None => input.clone(),
                };
                let output = match &win.output_distribution {
                    Some(d) => LengthDist::from_spec(d, &format!("{wpath}.output_distribution"))?,
                    None => output.clone(),
                };
                time_varying.push(WindowPlan {
                    start_us: win.start_us as u64,
                    end_us: win.end_us as u64,
                    rate,
                    arrival,
                    input,
                    output,
                });
            } else {
                for (k, set) in [
                    ("arrival", win.arrival.is_some()),
                    ("input_distribution", win.input_distribution.is_some()),
                    ("output_distribution", win.output_distribution.is_some()),
                ] {
                    if set {
                        // Only virtual users reach here: they have no windows at all.
                        return Err(at(&format!("{wp}.{k}"), "not supported for this client".into()));
                    }
                }
            }
        }
        windows.sort_unstable();
    }
    Ok(ClientPlan {
        id: Arc::from(c.id.clone().unwrap_or_else(|| default_id(path)).as_str()),
        tenant: c.tenant_id.as_deref().filter(|t| !t.is_empty()).map(Arc::from),
        model: c.model.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(Arc::from),
        adapter: c.adapter.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(Arc::from),
        slo_class,
        slo_named: !slo_name.is_empty(),
        arrival,
        input,
        output,
        prefix,
        timeout_us,
        slo_target_us: c.slo_target_us.filter(|&t| t > 0).map(|t| t as u64),
        windows,
        multi_turn,
        first_arrival: FirstArrival::Renewal,
        normalized: None,
        users,
        time_varying,
        multimodal,
        reason_ratio,
    })
}

/// The id of a client that names none: `client-<i>` for `clients[i]`.
fn default_id(path: &str) -> String {
    match path.strip_prefix("clients[").and_then(|r| r.strip_suffix(']')) {
        Some(i) => format!("client-{i}"),
        None => path.to_string(),
    }
}

/// Regression tests of the hardening issue: each input used to panic, hang, exhaust memory or
/// be misread; each is now a one-line error naming the field, or a correct, bounded result.
#[cfg(test)]
mod hardening {
    use crate::generator::{Overrides, build_source};
    use crate::limits::{MAX_REQUEST_TOKENS, MAX_TIME_US};
    use crate::request::Outcome;
    use crate::spec::parse_spec;

    const CLIENT: &str = "aggregate_rate: 10\nnum_requests: 50\nclients:\n  - id: c\n    rate_fraction: 1\n    \
                          input_distribution: {type: constant, params: {value: 10}}\n    \
                          output_distribution: {type: constant, params: {value: 10}}\n";

    fn err(text: &str) -> String {
        let e = parse_spec(text, "s.yaml").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    fn ip(system: &str, groups: &str, users: &str, extra: &str) -> String {
        format!(
            "num_requests: 200\ninference_perf:\n  shared_prefix:\n    num_unique_system_prompts: {groups}\n    \
             num_users_per_system_prompt: {users}\n    system_prompt_len: {system}\n    question_len: 10\n    \
             output_len: 5\n{extra}  stages: [{{rate: 10, duration: 100}}]\n"
        )
    }

    #[test]
    fn huge_lengths_are_refused_naming_the_field() {
        assert_eq!(
            err(&ip("4294967295", "2", "2", "")),
            "s.yaml:6: inference_perf.shared_prefix.system_prompt_len: must be ≤ 16777216 tokens (a request's \
             prompt and its output each hold at most 16777216 tokens, more than any model's context), got 4294967295"
        );
        assert!(err(&ip("16777210", "2", "2", "")).starts_with(
            "s.yaml:7: inference_perf.shared_prefix.question_len: system_prompt_len + question_len = 16777220 tokens"
        ));
        let e = err(&CLIENT.replace("value: 10}}\n    output", "value: 1e300}}\n    output"));
        assert!(
            e.starts_with("s.yaml:6: clients[0].input_distribution.params.value: must be ≤ 16777216 tokens"),
            "{e}"
        );
        assert!(e.ends_with("got 1e300"), "{e}");
        let e = err(&CLIENT.replace(
            "{type: constant, params: {value: 10}}\n    output",
            "{type: exponential, params: {mean: 1e300}}\n    output",
        ));
        assert!(e.contains("input_distribution.params.mean: must be ≤ 16777216 tokens"), "{e}");
        let e = err(&CLIENT.replace(
            "{type: constant, params: {value: 10}}\n",
            "{type: lognormal, params: {mu: 690, sigma: 1}}\n",
        ));
        assert!(
            e.contains("input_distribution.params.mu: must be ≤ 16.6355 (median exp(mu) ≤ 16777216 tokens"),
            "{e}"
        );
        let e = err(&format!("{CLIENT}    prefix_group: g\n    prefix_length: 4294967295\n"));
        assert!(e.starts_with("s.yaml:9: clients[0].prefix_length: must be ≤ 16777215 tokens"), "{e}");
    }

    #[test]
    fn unbounded_draws_are_clamped_to_the_limit() {
        // A Pareto tail with alpha → 0 draws beyond any limit; lengths stay ≤ the limit.
        let text = CLIENT.replace(
            "{type: constant, params: {value: 10}}\n    output",
            "{type: pareto_lognormal, params: {alpha: 0.01, xm: 1000, mu: 1, sigma: 1, mix_weight: 1}}\n    output",
        );
        let text = format!("{text}    prefix_group: g\n    prefix_length: 1000\n");
        let mut src = build_source(&parse_spec(&text, "s.yaml").unwrap(), &Overrides::default()).unwrap();
        let mut n = 0;
        while let Some(r) = src.next_request() {
            assert!(r.input.len() <= MAX_REQUEST_TOKENS && r.input.len() > 1000);
            n += usize::from(r.input.len() == MAX_REQUEST_TOKENS);
        }
        assert!(n > 40, "{n} of 50 draws reach the limit");
    }

    #[test]
    fn a_huge_declared_population_costs_nothing_until_used() {
        // 10^8 × 10^8 users: tabulating them took 14 GB before the first request.
        for order in ["random", "round_robin"] {
            let text = ip("100", "100000000", "100000000", &format!("    user_order: {order}\n"));
            let t = std::time::Instant::now();
            let mut src = build_source(&parse_spec(&text, "s.yaml").unwrap(), &Overrides::default()).unwrap();
            let reqs: Vec<_> = std::iter::from_fn(|| src.next_request()).collect();
            assert_eq!(reqs.len(), 200);
            assert!(t.elapsed().as_secs_f64() < 2.0, "{order}: {:?}", t.elapsed());
            let users: std::collections::HashSet<_> = reqs.iter().map(|r| r.client.clone()).collect();
            assert!(users.len() > 195, "{order}: {} distinct users", users.len());
            assert!(reqs.iter().all(|r| r.input.len() == 110));
        }
    }

    #[test]
    fn arrivals_never_wrap_and_end_at_the_longest_simulated_time() {
        let e = err(&CLIENT.replace("aggregate_rate: 10", "aggregate_rate: 1e-300"));
        assert_eq!(
            e,
            "s.yaml:1: aggregate_rate: a rate of 1e-300 req/s, below the slowest accepted 3.1688e-10 req/s \
             (one request per 100 years, the longest simulated time)"
        );
        let two = format!(
            "{CLIENT}{}",
            &CLIENT[CLIENT.find("  - id").unwrap()..].replace("rate_fraction: 1", "rate_fraction: 1e-300")
        );
        assert!(
            err(&two)
                .starts_with("s.yaml:9: clients[1].rate_fraction: gives this client a rate of 1e-299 req/s")
        );
        // Gamma gaps of ~10^15 µs: the stream ends at 100 years instead of wrapping.
        let text = CLIENT.replace(
            "rate_fraction: 1\n",
            "rate_fraction: 1\n    arrival: {process: gamma, shape: 1, scale: 3e15}\n",
        );
        let mut src = build_source(&parse_spec(&text, "s.yaml").unwrap(), &Overrides::default()).unwrap();
        let times: Vec<u64> = std::iter::from_fn(|| src.next_request()).map(|r| r.arrival_us).collect();
        assert!(!times.is_empty() && times.len() < 10, "{times:?}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]) && times.iter().all(|&t| t < MAX_TIME_US));
        let e = err(&CLIENT
            .replace("rate_fraction: 1\n", "rate_fraction: 1\n    arrival: {process: gamma, scale: 1e19}\n"));
        assert!(e.contains("clients[0].arrival.scale: 1e19 µs is beyond the longest simulated time"), "{e}");
        let e = err(&format!("{CLIENT}    timeout: 9223372036854775807\n"));
        assert!(e.starts_with("s.yaml:8: clients[0].timeout: 9223372036854775807 µs is beyond the longest simulated time, 3155760000000000 µs (100 years)"), "{e}");
        let e = err(
            "num_requests: 5\ninference_perf:\n  shared_prefix: {num_unique_system_prompts: 1, num_users_per_system_prompt: 1, system_prompt_len: 1, question_len: 1, output_len: 1}\n  stages: [{rate: 1, duration: 3e9}, {rate: 1, duration: 3e9}]\n",
        );
        assert!(
            e.contains(
                "inference_perf.stages[1].duration: the stages would end at 6000000000000000 µs, beyond"
            ),
            "{e}"
        );
        let e = err(
            "num_requests: 5\ninference_perf:\n  shared_prefix: {num_unique_system_prompts: 1, num_users_per_system_prompt: 1, system_prompt_len: 1, question_len: 1, output_len: 1}\n  stages: [{rate: 1e300, duration: 1}]\n",
        );
        assert!(
            e.contains(
                "inference_perf.stages[0].rate: rate × duration = 1e300 requests; a stage holds at most 2^53"
            ),
            "{e}"
        );
    }

    #[test]
    fn concurrency_excludes_a_rate() {
        let e = err(&format!("{CLIENT}    concurrency: 4\n"));
        assert_eq!(
            e,
            "s.yaml:8: clients[0].concurrency: and rate_fraction are mutually exclusive (virtual users have no rate)"
        );
    }

    #[test]
    fn open_loop_sessions_of_billions_of_rounds_are_stamped_lazily() {
        let text = format!(
            "{CLIENT}    closed_loop: false\n    reasoning: {{multi_turn: {{max_rounds: 4000000000, think_time_us: 0}}}}\n"
        );
        let t = std::time::Instant::now();
        let mut src = build_source(&parse_spec(&text, "s.yaml").unwrap(), &Overrides::default()).unwrap();
        let reqs: Vec<_> = std::iter::from_fn(|| src.next_request()).collect();
        assert_eq!(reqs.len(), 50);
        assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
    }

    #[test]
    fn accumulated_context_ends_the_session_at_the_limit() {
        let text = CLIENT
            .replace("value: 10}}\n    output", "value: 8000000}}\n    output")
            .replace("num_requests: 50", "num_requests: 20");
        let text =
            format!("{text}    reasoning: {{multi_turn: {{max_rounds: 10, context_growth: accumulate}}}}\n");
        let mut src = build_source(&parse_spec(&text, "s.yaml").unwrap(), &Overrides::default()).unwrap();
        let r0 = src.next_request().unwrap();
        let r1 = src.on_request_done(&r0, 1, Outcome::Completed).unwrap();
        assert_eq!(r1.input.len(), 16_000_010);
        // Round 2 would hold 24 000 020 tokens: the conversation ends instead.
        assert!(src.on_request_done(&r1, 2, Outcome::Completed).is_none());
    }
}
