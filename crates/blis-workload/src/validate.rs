//! Checks a [`WorkloadSpec`] and compiles it into the plans the generators run.

use std::sync::Arc;

use crate::arrival::ArrivalProcess;
use crate::error::{Result, WorkloadError};
use crate::lengths::LengthDist;
use crate::request::SloClass;
use crate::rng::{splitmix64, stream_seed};
use crate::spec::{ClientSpec, WorkloadSpec};

/// Seed used when neither the spec nor the caller names one (the CLI default).
pub const DEFAULT_SEED: u64 = 42;
/// Timeout applied to multi-turn clients that name none (300 s).
pub const DEFAULT_SESSION_TIMEOUT_US: u64 = 300_000_000;
/// Shared-prefix length of a client that names a `prefix_group` but no `prefix_length`.
pub const DEFAULT_PREFIX_LENGTH: u32 = 50;

const SLO_CLASSES: &str = "critical, standard, batch, sheddable, background (or empty)";

/// A client ready to generate.
#[derive(Debug, Clone)]
pub(crate) struct ClientPlan {
    pub id: Arc<str>,
    pub tenant: Option<Arc<str>>,
    pub slo_class: SloClass,
    pub slo_named: bool,
    pub arrival: ArrivalProcess,
    pub input: LengthDist,
    pub output: LengthDist,
    pub prefix: Option<PrefixPlan>,
    pub timeout_us: Option<u64>,
    /// Active windows `[start, end)` in µs; empty = always on.
    pub windows: Vec<(u64, u64)>,
    pub multi_turn: Option<MultiTurnPlan>,
    /// Where the first arrival falls (only the reference's inference-perf expansion changes it).
    pub first_arrival: FirstArrival,
    /// `Some((n, d))`: exactly `n` arrivals in `(0, d]` µs instead of the renewal `arrival`
    /// process (the reference's "normalized exponential" single-stage inference-perf clients).
    pub normalized: Option<(u64, u64)>,
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
    pub think_time_us: u64,
    pub accumulate: bool,
    pub single_session: bool,
    pub closed_loop: bool,
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

/// Validates the top level and compiles the `clients` (empty for an inference-perf spec).
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
    if spec.cohorts.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(WorkloadError::at("cohorts", "not supported; list the members as clients instead"));
    }
    if spec.servegen_data.is_some() {
        return Err(WorkloadError::at(
            "servegen_data",
            "not supported; convert the data to clients or a trace",
        ));
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
    if spec.inference_perf.is_some() {
        if !spec.clients.is_empty() {
            return Err(WorkloadError::at(
                "inference_perf",
                "cannot be combined with clients; use one or the other",
            ));
        }
        return Ok(Vec::new());
    }
    if spec.clients.is_empty() {
        return Err(WorkloadError::at(
            "clients",
            "at least one client (or an inference_perf section) is required",
        ));
    }
    let aggregate = match spec.aggregate_rate {
        Some(r) if r.is_finite() && r > 0.0 => r,
        Some(0.0) => {
            return Err(WorkloadError::at(
                "aggregate_rate",
                "0 (absolute mode with per-window trace_rate) is not supported; give a rate > 0 req/s",
            ));
        }
        Some(r) => {
            return Err(WorkloadError::at("aggregate_rate", format!("must be > 0 req/s, got {r}")));
        }
        None => {
            return Err(WorkloadError::at("aggregate_rate", "required (> 0 req/s) when clients are given"));
        }
    };
    let named: Vec<bool> =
        spec.clients.iter().map(|c| c.slo_class.as_deref().is_some_and(|s| !s.is_empty())).collect();
    if let Some(i) = named.iter().position(|&n| n != named[0]) {
        let (with, without) = if named[0] { (0, i) } else { (i, 0) };
        return Err(WorkloadError::at(
            format!("clients[{without}].slo_class"),
            format!("either every client sets slo_class or none does (clients[{with}] sets it)"),
        ));
    }
    let mut fractions = Vec::with_capacity(spec.clients.len());
    for (i, c) in spec.clients.iter().enumerate() {
        match c.rate_fraction {
            Some(f) if f.is_finite() && f > 0.0 => fractions.push(f),
            Some(f) => {
                return Err(WorkloadError::at(
                    format!("clients[{i}].rate_fraction"),
                    format!("must be > 0, got {f}"),
                ));
            }
            None => {
                return Err(WorkloadError::at(format!("clients[{i}].rate_fraction"), "required (> 0)"));
            }
        }
    }
    let total: f64 = fractions.iter().sum();
    spec.clients
        .iter()
        .enumerate()
        .map(|(i, c)| compile_client(c, i, aggregate * fractions[i] / total, seed, v1))
        .collect()
}

fn compile_client(c: &ClientSpec, i: usize, rate: f64, seed: u64, v1: bool) -> Result<ClientPlan> {
    let path = format!("clients[{i}]");
    let at = |key: &str, msg: String| WorkloadError::at(format!("{path}.{key}"), msg);
    let not_supported = |key: &str, what: &str| Err(at(key, format!("not supported{what}")));
    if c.multimodal.is_some() {
        return not_supported("multimodal", "");
    }
    if c.concurrency.is_some() {
        return not_supported("concurrency", "; use the CLI's --concurrency for closed-loop users");
    }
    if c.think_time_us.is_some() {
        return not_supported(
            "think_time_us",
            " without concurrency; use reasoning.multi_turn.think_time_us",
        );
    }
    let slo_name = c.slo_class.as_deref().unwrap_or("");
    let upgraded = match slo_name {
        "realtime" if v1 => "critical",
        "interactive" if v1 => "standard",
        s => s,
    };
    let slo_class = SloClass::parse(upgraded)
        .ok_or_else(|| at("slo_class", format!("unknown class {slo_name:?}; accepted: {SLO_CLASSES}")))?;
    let arrival = ArrivalProcess::from_spec(rate, c.arrival.as_ref(), &format!("{path}.arrival"))?;
    let input = c
        .input_distribution
        .as_ref()
        .ok_or_else(|| at("input_distribution", "required".into()))
        .and_then(|d| LengthDist::from_spec(d, &format!("{path}.input_distribution")))?;
    let output = c
        .output_distribution
        .as_ref()
        .ok_or_else(|| at("output_distribution", "required".into()))
        .and_then(|d| LengthDist::from_spec(d, &format!("{path}.output_distribution")))?;
    let prefix = match (c.prefix_group.as_deref(), c.prefix_length) {
        (_, Some(n)) if n < 0 => {
            return Err(at("prefix_length", format!("must be ≥ 0 tokens, got {n}")));
        }
        (_, Some(n)) if n > i64::from(u32::MAX) => {
            return Err(at("prefix_length", format!("too large: {n}")));
        }
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
    let multi_turn = match c.reasoning.as_ref().and_then(|r| r.multi_turn.as_ref()) {
        None => None,
        Some(mt) => {
            if mt.max_rounds < 1 || mt.max_rounds > i64::from(u32::MAX) {
                return Err(at(
                    "reasoning.multi_turn.max_rounds",
                    format!("must be ≥ 1, got {}", mt.max_rounds),
                ));
            }
            let think = mt.think_time_us.unwrap_or(0);
            if think < 0 {
                return Err(at("reasoning.multi_turn.think_time_us", format!("must be ≥ 0 µs, got {think}")));
            }
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
                think_time_us: think as u64,
                accumulate,
                single_session: mt.single_session.unwrap_or(false),
                closed_loop: c.closed_loop.unwrap_or(true),
            })
        }
    };
    let timeout_us = match c.timeout {
        Some(t) if t < 0 => {
            return Err(at("timeout", format!("must be ≥ 0 µs (0 = none), got {t}")));
        }
        Some(0) => None,
        Some(t) => Some(t as u64),
        None if multi_turn.is_some() => Some(DEFAULT_SESSION_TIMEOUT_US),
        None => None,
    };
    if let Some(t) = c.slo_target_us
        && t < 0
    {
        return Err(at("slo_target_us", format!("must be ≥ 0 µs, got {t}")));
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
    if let Some(lc) = &c.lifecycle {
        for (w, win) in lc.windows.iter().enumerate() {
            let wp = format!("lifecycle.windows[{w}]");
            if win.start_us < 0 || win.end_us <= win.start_us {
                return Err(at(
                    &wp,
                    format!("needs 0 ≤ start_us < end_us, got [{}, {})", win.start_us, win.end_us),
                ));
            }
            for (k, set) in [
                ("trace_rate", win.trace_rate.is_some()),
                ("arrival", win.arrival.is_some()),
                ("input_distribution", win.input_distribution.is_some()),
                ("output_distribution", win.output_distribution.is_some()),
            ] {
                if set {
                    return Err(at(&format!("{wp}.{k}"), "per-window overrides are not supported".into()));
                }
            }
            windows.push((win.start_us as u64, win.end_us as u64));
        }
        windows.sort_unstable();
    }
    Ok(ClientPlan {
        id: Arc::from(c.id.clone().unwrap_or_else(|| format!("client-{i}"))),
        tenant: c.tenant_id.as_deref().filter(|t| !t.is_empty()).map(Arc::from),
        slo_class,
        slo_named: !slo_name.is_empty(),
        arrival,
        input,
        output,
        prefix,
        timeout_us,
        windows,
        multi_turn,
        first_arrival: FirstArrival::Renewal,
        normalized: None,
    })
}
