//! Checks a [`WorkloadSpec`] and compiles it into the plans the generators run.

use std::sync::Arc;

use crate::arrival::ArrivalProcess;
use crate::error::{Result, WorkloadError};
use crate::lengths::LengthDist;
use crate::limits::{MAX_REQUEST_TOKENS, MIN_RATE_PER_S};
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
        Some(r) if r.is_finite() && r > 0.0 && r < MIN_RATE_PER_S => {
            return Err(WorkloadError::at("aggregate_rate", slow_rate_message(r)));
        }
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
    if !total.is_finite() {
        return Err(WorkloadError::at(
            "clients",
            "rate_fraction values must sum to a finite number (they are relative; scale them down)",
        ));
    }
    spec.clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let rate = aggregate * fractions[i] / total;
            if rate < MIN_RATE_PER_S {
                return Err(WorkloadError::at(
                    format!("clients[{i}].rate_fraction"),
                    format!("gives this client {}", slow_rate_message(rate)),
                ));
            }
            compile_client(c, i, rate, seed, v1)
        })
        .collect()
}

/// Why a rate is too slow to simulate.
pub(crate) fn slow_rate_message(rate: f64) -> String {
    format!(
        "a rate of {} req/s, below the slowest accepted {MIN_RATE_PER_S:.4e} req/s (one request per 100 years, \
         the longest simulated time)",
        crate::limits::num(rate)
    )
}

fn compile_client(c: &ClientSpec, i: usize, rate: f64, seed: u64, v1: bool) -> Result<ClientPlan> {
    let path = format!("clients[{i}]");
    let at = |key: &str, msg: String| WorkloadError::at(format!("{path}.{key}"), msg);
    let not_supported = |key: &str, what: &str| Err(at(key, format!("not supported{what}")));
    if c.multimodal.is_some() {
        return not_supported("multimodal", "");
    }
    if c.concurrency.is_some() {
        return not_supported(
            "concurrency",
            ": closed-loop virtual users are not implemented; for completion-driven arrivals use \
             reasoning.multi_turn sessions (closed_loop: true is their default)",
        );
    }
    if c.think_time_us.is_some() {
        return not_supported(
            "think_time_us",
            " (it belongs to concurrency users, which are not implemented); \
             use reasoning.multi_turn.think_time_us",
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
    let multi_turn = match c.reasoning.as_ref().and_then(|r| r.multi_turn.as_ref()) {
        None => None,
        Some(mt) => {
            if mt.max_rounds < 1 || mt.max_rounds > i64::from(u32::MAX) {
                return Err(at(
                    "reasoning.multi_turn.max_rounds",
                    format!("must be ≥ 1, got {}", mt.max_rounds),
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
        Some(t) => Some(crate::limits::time_us(&format!("{path}.timeout"), t)?),
        None if multi_turn.is_some() => Some(DEFAULT_SESSION_TIMEOUT_US),
        None => None,
    };
    if let Some(t) = c.slo_target_us {
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
    fn concurrency_says_what_is_true() {
        let e = err(&format!("{CLIENT}    concurrency: 4\n"));
        assert_eq!(
            e,
            "s.yaml:8: clients[0].concurrency: not supported: closed-loop virtual users are not implemented; for \
             completion-driven arrivals use reasoning.multi_turn sessions (closed_loop: true is their default)"
        );
        assert!(!e.contains("--concurrency"));
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
