//! `blis run`: flags → scenario + workload → simulation → metrics document.

use std::io::IsTerminal;
use std::path::Path;

use blis_latency::LatencyOverrides;
use blis_model::{GpuSpec, HubOptions, ModelSpec};
use blis_sim::cluster::admission::AdmissionConfig;
use blis_sim::cluster::routing::RoutingConfig;
use blis_sim::scenario::{Scenario, resolve_kv};
use blis_sim::{InstanceConfig, SimReport};
use blis_workload::{LenParams, Overrides, RequestSource, SyntheticParams};

use crate::args::{ClusterArgs, EngineArgs, RunArgs, WorkloadArgs};

pub type CliResult<T> = Result<T, String>;

/// Resolved model + hardware + engine configuration (shared by `run` and other subcommands).
pub struct Engine {
    pub model: ModelSpec,
    pub gpu: GpuSpec,
    pub tp: u32,
    pub instance: InstanceConfig,
    pub latency_overrides: LatencyOverrides,
}

pub fn resolve_engine(e: &EngineArgs) -> CliResult<Engine> {
    let model = blis_model::load_model(&e.model, e.model_config_folder.as_deref(), &HubOptions::from_env())
        .map_err(|err| format!("--model: {err}"))?;
    let extra_gpus = match &e.hardware_config {
        Some(path) => {
            blis_model::load_hardware_config(path).map_err(|err| format!("--hardware-config: {err}"))?
        }
        None => Vec::new(),
    };
    let hardware = e.hardware.clone().unwrap_or_else(|| {
        eprintln!("warning: --hardware not given; using H100");
        "H100".into()
    });
    let gpu = blis_model::gpu_by_name(&hardware, &extra_gpus).map_err(|err| format!("--hardware: {err}"))?;
    let tp = e.tp.unwrap_or_else(|| {
        eprintln!("warning: --tp not given; using 1");
        1
    });
    if tp == 0 {
        return Err("--tp: must be at least 1".into());
    }
    if e.block_size_in_tokens == 0 {
        return Err("--block-size-in-tokens: must be at least 1".into());
    }
    if !(e.gpu_memory_utilization > 0.0 && e.gpu_memory_utilization <= 1.0) {
        return Err(format!("--gpu-memory-utilization: must be in (0, 1], got {}", e.gpu_memory_utilization));
    }
    if e.max_num_running_reqs == 0 {
        return Err("--max-num-running-reqs: must be at least 1".into());
    }
    if e.max_num_scheduled_tokens < e.block_size_in_tokens {
        return Err(format!(
            "--max-num-scheduled-tokens: must be at least one block ({} tokens), got {}",
            e.block_size_in_tokens, e.max_num_scheduled_tokens
        ));
    }
    let kv = resolve_kv(
        &model,
        &gpu,
        tp,
        e.gpu_memory_utilization,
        e.block_size_in_tokens,
        e.total_kv_blocks,
        e.max_model_len,
    )?;
    let slo_priorities = match e.priority_policy.as_deref().unwrap_or("slo-based") {
        "slo-based" => true,
        "constant" => false,
        other => return Err(format!("--priority-policy: unknown '{other}' (accepted: constant, slo-based)")),
    };
    let instance = InstanceConfig {
        max_running_reqs: e.max_num_running_reqs,
        max_scheduled_tokens: e.max_num_scheduled_tokens,
        long_prefill_token_threshold: e.long_prefill_token_threshold,
        max_model_len: kv.max_model_len,
        block_size_tokens: e.block_size_in_tokens,
        total_kv_blocks: kv.total_kv_blocks,
        prefix_caching: !e.no_prefix_caching,
        async_scheduling: e.async_scheduling,
        slo_priorities,
        record_requests: false,
        track_classes: true,
        semantics: blis_sim::EngineSemantics::BLIS,
    };
    let latency_overrides = LatencyOverrides {
        alpha: e.alpha_coeffs.clone(),
        beta: e.beta_coeffs.clone(),
        coefficients_file: e.coefficients_file.clone(),
    };
    Ok(Engine { model, gpu, tp, instance, latency_overrides })
}

fn non_negative(flag: &str, v: Option<i64>, default: u64) -> CliResult<u64> {
    match v {
        None => Ok(default),
        Some(x) if x >= 0 => Ok(x as u64),
        Some(x) => Err(format!("{flag}: must be ≥ 0 µs, got {x}")),
    }
}

/// Parses `--routing-scorers "name:weight,…"`.
pub fn parse_scorers(text: &str) -> CliResult<Vec<(String, f64)>> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, weight)) = item.split_once(':') else {
            return Err(format!("--routing-scorers: '{item}' is not name:weight"));
        };
        let w: f64 = weight
            .trim()
            .parse()
            .map_err(|_| format!("--routing-scorers: weight of '{name}' is not a number: '{weight}'"))?;
        if !(w.is_finite() && w > 0.0) {
            return Err(format!(
                "--routing-scorers: weight of '{name}' must be a finite number > 0, got {weight}"
            ));
        }
        if out.iter().any(|(n, _)| n == name.trim()) {
            return Err(format!("--routing-scorers: '{name}' appears twice"));
        }
        out.push((name.trim().to_string(), w));
    }
    Ok(out)
}

pub fn build_scenario(args: &RunArgs, engine: Engine) -> CliResult<Scenario> {
    let mut scenario = scenario_from_flags(&args.engine, &args.cluster, engine)?;
    scenario.instance.record_requests =
        args.results_path.is_some() || args.analysis.post_hoc_detector.is_some();
    scenario.horizon_us = args.horizon.unwrap_or(u64::MAX);
    scenario.seed = args.seed.unwrap_or(42);
    Ok(scenario)
}

/// The scenario of the engine and cluster flags (shared by `run` and `replay`), with no
/// per-request records, no horizon and seed 42; callers set those.
pub fn scenario_from_flags(e: &EngineArgs, c: &ClusterArgs, engine: Engine) -> CliResult<Scenario> {
    if c.num_instances == 0 {
        return Err("--num-instances: must be at least 1".into());
    }
    let trace_decisions = match c.trace_level.as_str() {
        "none" => false,
        "decisions" => true,
        other => return Err(format!("--trace-level: unknown '{other}' (accepted: none, decisions)")),
    };
    let mut admission = AdmissionConfig::default();
    if let Some(cap) = c.token_bucket_capacity {
        admission.token_bucket_capacity = cap;
    }
    if let Some(rate) = c.token_bucket_refill_rate {
        admission.token_bucket_refill_per_s = rate;
    }
    let routing = RoutingConfig {
        scorers: parse_scorers(c.routing_scorers.as_deref().unwrap_or(""))?,
        block_size_tokens: engine.instance.block_size_tokens,
    };
    Ok(Scenario {
        model: engine.model,
        gpu: engine.gpu,
        tp: engine.tp,
        latency_model: e.latency_model.clone(),
        latency_overrides: engine.latency_overrides,
        instance: InstanceConfig { record_requests: false, ..engine.instance },
        num_instances: c.num_instances,
        scheduler: e.scheduler.clone().unwrap_or_else(|| "fcfs".into()),
        preemption_policy: e.preemption_policy.clone().unwrap_or_else(|| "fcfs".into()),
        admission_policy: c.admission_policy.clone().unwrap_or_else(|| "always-admit".into()),
        admission,
        routing_policy: c.routing_policy.clone().unwrap_or_else(|| "round-robin".into()),
        routing,
        admission_latency_us: non_negative("--admission-latency", c.admission_latency, 0)?,
        routing_latency_us: non_negative("--routing-latency", c.routing_latency, 0)?,
        snapshot_refresh_interval_us: non_negative(
            "--snapshot-refresh-interval",
            c.snapshot_refresh_interval,
            50_000,
        )?,
        cache_signal_delay_us: non_negative("--cache-signal-delay", c.cache_signal_delay, 50_000)?,
        trace_decisions: trace_decisions || c.summarize_trace || c.trace_output.is_some(),
        counterfactual_k: c.counterfactual_k,
        horizon_us: u64::MAX,
        seed: 42,
    })
}

fn len_params(
    flag: &str,
    mean: Option<f64>,
    std: Option<f64>,
    min: Option<u32>,
    max: Option<u32>,
    base: LenParams,
) -> CliResult<Option<LenParams>> {
    if mean.is_none() && std.is_none() && min.is_none() && max.is_none() {
        return Ok(None);
    }
    let p = LenParams::new(
        mean.unwrap_or(base.mean),
        std.unwrap_or(base.std_dev),
        min.unwrap_or(base.min),
        max.unwrap_or(base.max),
    );
    if !(p.mean.is_finite() && p.mean >= 1.0) {
        return Err(format!("--{flag}: mean must be ≥ 1, got {}", p.mean));
    }
    if !(p.std_dev.is_finite() && p.std_dev >= 0.0) {
        return Err(format!("--{flag}-stdev: must be ≥ 0, got {}", p.std_dev));
    }
    if p.min == 0 || p.min > p.max {
        return Err(format!("--{flag}-min/--{flag}-max: need 1 ≤ min ≤ max, got {}..{}", p.min, p.max));
    }
    Ok(Some(p))
}

/// Builds the request source from the workload flags.
pub fn build_source(
    w: &WorkloadArgs,
    seed: Option<u64>,
    horizon: Option<u64>,
) -> CliResult<Box<dyn RequestSource + Send>> {
    if let Some(n) = w.num_requests
        && n == 0
    {
        return Err("--num-requests: must be at least 1".into());
    }
    if let Some(r) = w.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(format!("--rate: must be a number > 0 (requests/s), got {r}"));
    }
    let timeout_us = match w.timeout {
        None => None,
        Some(t) if t < 0.0 => Some(None),
        Some(t) if t == 0.0 || !t.is_finite() => {
            return Err(format!("--timeout: must be > 0 seconds (or negative to disable), got {t}"));
        }
        Some(t) => Some(Some((t * 1e6) as u64)),
    };
    let overrides = Overrides { seed, num_requests: w.num_requests, horizon_us: horizon, timeout_us };
    let spec = if let Some(path) = &w.workload_spec {
        if w.workload.is_some() {
            return Err("--workload and --workload-spec are mutually exclusive".into());
        }
        if w.rate.is_some() {
            eprintln!("warning: --rate is ignored with --workload-spec (the spec sets the rates)");
        }
        blis_workload::load_spec_file(path).map_err(|e| e.to_string())?
    } else {
        let constant_arrivals = match w.arrival_process.as_deref().unwrap_or("poisson") {
            "poisson" => false,
            "constant" => true,
            other => {
                return Err(format!("--arrival-process: unknown '{other}' (accepted: poisson, constant)"));
            }
        };
        let d = blis_workload::presets::DEFAULT_PROMPT;
        let o = blis_workload::presets::DEFAULT_OUTPUT;
        let params = SyntheticParams {
            rate: w.rate.unwrap_or(1.0),
            num_requests: w.num_requests.unwrap_or(100),
            prompt: len_params(
                "prompt-tokens",
                w.prompt_tokens,
                w.prompt_tokens_stdev,
                w.prompt_tokens_min,
                w.prompt_tokens_max,
                d,
            )?,
            output: len_params(
                "output-tokens",
                w.output_tokens,
                w.output_tokens_stdev,
                w.output_tokens_min,
                w.output_tokens_max,
                o,
            )?,
            prefix_tokens: w.prefix_tokens,
            constant_arrivals,
            seed: seed.unwrap_or(42),
            timeout_us: match timeout_us {
                None => Some(blis_workload::presets::DEFAULT_TIMEOUT_US),
                Some(t) => t,
            },
        };
        let name = w.workload.as_deref().unwrap_or("distribution");
        blis_workload::preset_spec(name, &params).map_err(|e| format!("--workload: {e}"))?
    };
    blis_workload::build_source(&spec, &overrides).map_err(|e| e.to_string())
}

/// Runs a simulation with an optional progress bar on stderr.
pub fn simulate(
    scenario: &Scenario,
    source: Box<dyn RequestSource + Send>,
    trace_output: Option<&Path>,
    progress: &str,
) -> CliResult<SimReport> {
    let expected = source.expected_requests();
    let sink: Option<Box<dyn std::io::Write + Send>> = match trace_output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| format!("--trace-output: cannot create {}: {e}", path.display()))?;
            Some(Box::new(std::io::BufWriter::new(f)))
        }
        None => None,
    };
    let sim = scenario.build(source, sink)?;
    let terminal = std::io::stderr().is_terminal();
    let show = match progress {
        "auto" => terminal,
        "always" => true,
        "never" => false,
        other => return Err(format!("--progress: unknown '{other}' (accepted: auto, always, never)")),
    };
    let started = std::time::Instant::now();
    // On a terminal a live bar; elsewhere (`--progress always` into a log) a line every ~2 s.
    let bar = (show && terminal).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(expected, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} requests done · {msg}")
                .expect("static template"),
        );
        bar
    });
    let mut next_line_s = 2.0;
    let report = sim
        .run(|p| {
            let elapsed_s = started.elapsed().as_secs_f64();
            if !show || elapsed_s <= 2.0 {
                return;
            }
            let status = format!(
                "sim time {:.1} s · {:.2} M events/s",
                p.now_us as f64 / 1e6,
                p.events as f64 / elapsed_s / 1e6
            );
            if let Some(bar) = &bar {
                bar.set_position(p.finished);
                bar.set_message(status);
            } else if elapsed_s >= next_line_s {
                next_line_s = elapsed_s + 2.0;
                let total = expected.map_or(String::new(), |n| format!("/{n}"));
                eprintln!("progress: {}{total} requests done · {status}", p.finished);
            }
        })
        .map_err(|e| format!("--trace-output: write failed: {e}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

pub fn run(args: &RunArgs) -> CliResult<()> {
    let (engine, cluster, policy_extras) = crate::policy_config::resolve(&args.engine, &args.cluster)?;
    let args = &RunArgs { engine, cluster, ..args.clone() };
    let engine = resolve_engine(&args.engine)?;
    let mut scenario = build_scenario(args, engine)?;
    policy_extras.apply_to(&mut scenario);
    let analysis = args.analysis.resolve()?;
    let (source, recorded) = crate::replay::run_source(args)?;
    let report = simulate(&scenario, source, args.cluster.trace_output.as_deref(), &args.progress)?;
    if let (Some(prefix), Some(rec)) = (&args.trace_workload.export_workload_trace, recorded) {
        rec.write(prefix, "generated", args.seed.unwrap_or(42))?;
    }
    crate::replay::emit(
        &report,
        &crate::replay::Outputs {
            analysis: &analysis,
            summarize_trace: args.cluster.summarize_trace,
            metrics_path: args.metrics_path.as_deref(),
            results_path: args.results_path.as_deref(),
        },
    )
}

/// Writes the document to stdout; a closed pipe (`blis run … | head`) is not an error.
pub fn print_stdout(text: &str) -> CliResult<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write to stdout: {e}")),
        _ => Ok(()),
    }
}
