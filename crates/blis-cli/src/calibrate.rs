//! `blis calibrate`: simulate the measured vLLM experiments, compare, report, optionally refit.

use std::path::{Path, PathBuf};

use blis_calibrate::experiment::{Setup, WorkloadSemantics, run_all};
use blis_calibrate::fit::{
    Constraints, CvGrouping, Fold, LmOptions, coefficients_yaml, comparisons, fit, leave_one_group_out,
};
use blis_calibrate::metrics::{Comparison, Metric};
use blis_calibrate::parity::{parity, reference_setup, render_table};
use blis_calibrate::report::{ModelRun, reference_run, render};
use blis_calibrate::{Experiment, Measurements};
use blis_latency::{LatencyModelKind, LatencyOverrides};
use clap::Args;

use crate::run::{CliError, CliResult, write_file};

#[derive(Args, Debug, Clone)]
pub struct CalibrateArgs {
    /// Measurements JSON (e.g. crates/blis-calibrate/data/vllm-h100-measurements.json, the 15 real vLLM runs on H100).
    #[arg(long, required_unless_present = "trace_header", conflicts_with = "trace_header")]
    pub measurements: Option<PathBuf>,
    /// Step-time model to evaluate (and fit) [default: blis-physics; trained-physics with
    /// --compat reference].
    #[arg(long, conflicts_with = "trace_header", value_enum)]
    pub latency_model: Option<LatencyModelKind>,
    /// `reference`: simulate every experiment as `blis run --compat reference` and compare with
    /// the reference simulator's own predictions of it (not with the measurements).
    #[arg(long, conflicts_with = "trace_header", value_enum)]
    pub compat: Option<blis_config::Compat>,
    /// YAML file with coefficient sets (as `blis run --coefficients-file`).
    #[arg(long, conflicts_with = "trace_header")]
    pub coefficients_file: Option<PathBuf>,
    /// Three α coefficients (µs), comma-separated.
    #[arg(long, conflicts_with = "trace_header", value_delimiter = ',', allow_hyphen_values = true)]
    pub alpha_coeffs: Option<Vec<f64>>,
    /// β coefficients, comma-separated.
    #[arg(long, conflicts_with = "trace_header", value_delimiter = ',', allow_hyphen_values = true)]
    pub beta_coeffs: Option<Vec<f64>>,
    /// Read every experiment's config.json from this directory instead of the bundled config.
    #[arg(long, conflicts_with = "trace_header")]
    pub model_config_folder: Option<PathBuf>,
    /// Also evaluate these latency models (their default coefficients) in the report.
    #[arg(long, conflicts_with = "trace_header", value_enum, value_delimiter = ',')]
    pub compare: Vec<LatencyModelKind>,
    /// Only these experiment ids (comma-separated).
    #[arg(long, conflicts_with = "trace_header", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Write the report here: markdown with --measurements, the calibration report JSON with
    /// --trace-header (required there).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Refit the model's α and β (Levenberg–Marquardt on every experiment's log errors) and write
    /// them as YAML here.
    #[arg(long, conflicts_with = "trace_header")]
    pub fit: Option<PathBuf>,
    /// Workload semantics: `inference_perf.shared_prefix.question_reuse` (per_user | per_request)
    /// written into every experiment's spec; unset = the generator default (per_user).
    #[arg(long, conflicts_with = "trace_header")]
    pub question_reuse: Option<String>,
    /// `inference_perf.shared_prefix.user_order` (random | round_robin); unset = generator default.
    #[arg(long, conflicts_with = "trace_header")]
    pub user_order: Option<String>,
    /// Simulate vLLM V1 async scheduling (as `blis run --async-scheduling`).
    #[arg(long, conflicts_with = "trace_header", default_value_t = true, action = clap::ArgAction::Set)]
    pub async_scheduling: bool,
    /// Coefficients the fit (and cross-validation) keeps at their starting value: indices into
    /// `alpha ++ beta` (0–2 = α0–α2, 3 = β0, …).
    #[arg(long, conflicts_with = "trace_header", value_delimiter = ',')]
    pub freeze: Vec<usize>,
    /// A log-normal prior of the fit (and of every cross-validation fold) around its starting
    /// point: σ per coefficient of `alpha ++ beta` in ln units, comma-separated (0 = none). A
    /// factor e^σ away from the start costs as much as a factor-e error in one figure.
    #[arg(long, conflicts_with = "trace_header", value_delimiter = ',')]
    pub prior_sigma: Vec<f64>,
    /// Cross-validation: per held-out group (see `--cv-by`), fit on the other groups' experiments
    /// (from the same starting coefficients) and predict the held-out one; adds the held-out
    /// predictions as a row of the report and a per-fold table.
    #[arg(long, conflicts_with = "trace_header")]
    pub cross_validate: bool,
    /// What `--cross-validate` holds out, comma-separated: `model` (leave-one-model-out) and/or
    /// `tp` (leave-one-TP-degree-out).
    #[arg(long, conflicts_with = "trace_header", value_delimiter = ',', default_value = "model")]
    pub cv_by: Vec<String>,
    /// Write the held-out error per figure (signed-error quantiles, 90 % half-width) and the
    /// calibration envelope (GPUs, TP degrees, architectures) as YAML here; needs
    /// `--cross-validate`. blis-latency's `uncertainty` module reads this format.
    #[arg(long, conflicts_with = "trace_header")]
    pub cv_errors: Option<PathBuf>,
    /// Evaluation budget of each cross-validation fold.
    #[arg(long, conflicts_with = "trace_header", default_value_t = 300)]
    pub cv_max_evals: usize,
    /// Coefficient file (as `--coefficients-file`) every cross-validation fold starts from,
    /// instead of the evaluated coefficients. Starting from a fit to all experiments lets the
    /// held-out model shape its own prediction; a prior that no experiment informed (e.g.
    /// crates/blis-calibrate/data/blis-physics-prior.yaml) keeps the folds out of sample.
    #[arg(long, conflicts_with = "trace_header")]
    pub cv_start: Option<PathBuf>,
    /// Evaluation budget of the fit (each evaluation simulates every experiment).
    #[arg(long, conflicts_with = "trace_header", default_value_t = 600)]
    pub max_evals: usize,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Trace mode: an observed trace (`blis observe`) against `blis replay --results-path` of it.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Trace comparison (blis observe → blis replay → blis calibrate)")]
pub struct TraceArgs {
    /// TraceV2 header YAML of the observed trace; selects trace mode (needs --trace-data,
    /// --sim-results and --report).
    #[arg(long, requires_all = ["trace_data", "sim_results", "report"])]
    pub trace_header: Option<PathBuf>,
    /// TraceV2 data CSV of the observed trace.
    #[arg(long, requires = "trace_header")]
    pub trace_data: Option<PathBuf>,
    /// Per-request simulated results: `blis replay --results-path` of the same trace (the
    /// reference simulator's SimResult JSON is read too).
    #[arg(long, requires = "trace_header")]
    pub sim_results: Option<PathBuf>,
    /// Leave out requests with an id below N (warm-up) [default: the header's
    /// warm_up_requests; -1 = the same; 0 = include all].
    #[arg(long, value_name = "N", allow_hyphen_values = true, requires = "trace_header")]
    pub warmup_requests: Option<i64>,
    /// Network round trip added to every simulated TTFT and E2E (µs) [default: the header's
    /// network.measured_rtt_ms; -1 = the same].
    #[arg(long, value_name = "US", allow_hyphen_values = true, requires = "trace_header")]
    pub network_rtt_us: Option<i64>,
    /// Client–server bandwidth: adds the time to send the prompt and receive the output at 4
    /// bytes per token to the simulated latencies (0 = none).
    #[arg(long, value_name = "MBPS", default_value_t = 0.0, requires = "trace_header")]
    pub network_bandwidth_mbps: f64,
    /// Per-chunk arrival times (`request_id,chunk_index,timestamp_us`, the reference's
    /// `observe --record-itl` output): adds the ITL metric.
    #[arg(long, value_name = "FILE", requires = "trace_header")]
    pub itl_data: Option<PathBuf>,
    /// TTFT MAPE (a fraction) the report's ttft_tolerance verdict tests against.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.15, requires = "trace_header")]
    pub ttft_mape_threshold: f64,
}

/// Trace mode of `blis calibrate`.
fn calibrate_trace(args: &CalibrateArgs, header_path: &Path) -> CliResult<()> {
    use blis_calibrate::trace::{Normalization, match_requests, parse_itl_csv, parse_sim_results, report};
    let t = &args.trace;
    let (data_path, sim_path, report_path) = match (&t.trace_data, &t.sim_results, &args.report) {
        (Some(d), Some(s), Some(r)) => (d, s, r),
        _ => return Err("--trace-header: needs --trace-data, --sim-results and --report".into()),
    };
    let header =
        blis_workload::trace::read_trace_header(header_path).map_err(|e| format!("--trace-header: {e}"))?;
    let records =
        blis_workload::trace::read_trace_records(data_path).map_err(|e| format!("--trace-data: {e}"))?;
    let mut ids = std::collections::HashSet::new();
    if let Some(r) = records.iter().find(|r| !ids.insert(r.request_id)) {
        return Err(format!(
            "--trace-data: {}: request_id {} appears twice",
            data_path.display(),
            r.request_id
        )
        .into());
    }
    let text = std::fs::read_to_string(sim_path)
        .map_err(|e| format!("--sim-results: cannot read {}: {e}", sim_path.display()))?;
    let sims = parse_sim_results(&text).map_err(|e| format!("--sim-results: {}: {e}", sim_path.display()))?;
    if sims.is_empty() {
        return Err(format!("--sim-results: {}: no completed request to compare", sim_path.display()).into());
    }
    let itl = match &t.itl_data {
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| format!("--itl-data: cannot read {}: {e}", p.display()))?;
            Some(parse_itl_csv(f).map_err(|e| format!("--itl-data: {}: {e}", p.display()))?)
        }
        None => None,
    };
    let warm_up_requests = match t.warmup_requests {
        None | Some(-1) => header.warm_up_requests,
        Some(n) if n >= 0 => n as u64,
        Some(n) => {
            return Err(
                format!("--warmup-requests: must be >= 0 (or -1 for the trace header's), got {n}").into()
            );
        }
    };
    let network_rtt_us = match t.network_rtt_us {
        None | Some(-1) => {
            let ms = header.network.as_ref().and_then(|n| n.measured_rtt_ms).unwrap_or(0.0);
            if !(ms.is_finite() && ms >= 0.0) {
                return Err(format!(
                    "--trace-header: network.measured_rtt_ms must be a finite number >= 0, got {ms}"
                )
                .into());
            }
            (ms * 1e3).round() as u64
        }
        Some(n) if n >= 0 => n as u64,
        Some(n) => {
            return Err(
                format!("--network-rtt-us: must be >= 0 (or -1 for the trace header's), got {n}").into()
            );
        }
    };
    let bw = t.network_bandwidth_mbps;
    if !(bw.is_finite() && bw >= 0.0) {
        return Err(format!("--network-bandwidth-mbps: must be a finite number >= 0, got {bw}").into());
    }
    let threshold = t.ttft_mape_threshold;
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(format!("--ttft-mape-threshold: must be a finite fraction >= 0, got {threshold}").into());
    }
    let norm = Normalization { warm_up_requests, network_rtt_us, bandwidth_mbps: bw };
    let matched = match_requests(&records, &sims, itl.as_deref(), &norm);
    if t.itl_data.is_some() && matched.itl.real.is_empty() {
        eprintln!(
            "warning: --itl-data: no matched request has two or more chunk times; the report has no itl metric"
        );
    }
    let Some(rep) = report(&matched, &norm, threshold) else {
        return Err(CliError {
            message: format!(
                "no request to compare: {} trace rows ({} warm-up, {} without a successful simulated counterpart), {} simulated results; do both files come from the same trace?",
                records.len(),
                matched.warm_up_excluded,
                matched.unmatched_real,
                sims.len()
            ),
            code: 1,
        });
    };
    let json = serde_json::to_string_pretty(&rep).expect("report serializes");
    write_file(report_path, &format!("{json}\n"), "report")?;
    let i = &rep.trace_info;
    println!(
        "matched {} requests ({} warm-up excluded, {} trace rows and {} simulated results unmatched, {} token mismatches); network RTT {} µs",
        i.matched_pairs,
        i.warm_up_excluded,
        i.unmatched_real,
        i.unmatched_sim,
        i.token_mismatches,
        i.network_rtt_us
    );
    println!(
        "{:<5} {:>12} {:>12} {:>13} {:>8} {:>8}  quality",
        "", "real mean", "sim mean", "mean error", "MAPE", "r"
    );
    for (name, c) in &rep.metrics {
        let (w, r) = (&c.workload_level, &c.request_level);
        println!(
            "{:<5} {:>9.0} µs {:>9.0} µs {:>+10.0} µs {:>7.1}% {:>8.3}  {} ({})",
            name.to_uppercase(),
            w.real_mean,
            w.sim_mean,
            w.mean_error,
            r.mape * 100.0,
            r.pearson_r,
            r.quality,
            r.bias_direction
        );
    }
    println!("report: {}", report_path.display());
    Ok(())
}

fn print_run(experiments: &[Experiment], run: &ModelRun) {
    println!("== {} ==", run.name);
    println!(
        "{:<18} {:<44} {:>17} {:>17} {:>17} {:>19} {:>19} {:>19} {:>15}",
        "experiment", "", "TTFT mean", "TTFT p90", "TTFT p99", "E2E mean", "E2E p90", "E2E p99", "ITL mean"
    );
    for (e, c) in experiments.iter().zip(&run.rows) {
        let cells: Vec<String> = Metric::ALL
            .iter()
            .map(|&m| format!("{:.1}/{:.1}", m.get(&c.predicted), m.get(&c.measured)))
            .collect();
        println!(
            "{:<18} {:<44} {:>17} {:>17} {:>17} {:>19} {:>19} {:>19} {:>15}",
            e.id, c.label, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
        );
    }
    let s = run.summary();
    let mapes: Vec<String> = Metric::ALL.iter().map(|&m| format!("{} {:.1}%", m.name(), s.mape(m))).collect();
    println!("MAPE (simulated/measured ms above): {} | objective {:.2}%\n", mapes.join(", "), s.objective());
}

fn simulate(experiments: &[Experiment], name: &str, cfg: &Setup) -> CliResult<ModelRun> {
    let sims = run_all(experiments, cfg)?;
    Ok(ModelRun { name: name.into(), rows: comparisons(experiments, &sims) })
}

pub fn calibrate(args: &CalibrateArgs) -> CliResult<()> {
    if let Some(header) = &args.trace.trace_header {
        return calibrate_trace(args, header);
    }
    let path = args.measurements.as_ref().ok_or("--measurements or --trace-header: one is required")?;
    let m = Measurements::load(path)?;
    let experiments: Vec<Experiment> = if args.only.is_empty() {
        m.experiments
    } else {
        m.experiments.into_iter().filter(|e| args.only.contains(&e.id)).collect()
    };
    if experiments.is_empty() {
        return Err("--only: no experiment matches".into());
    }
    if args.compat == Some(blis_config::Compat::Reference) {
        return compat_parity(args, &experiments);
    }
    calibrate_against_measurements(
        args,
        experiments,
        args.latency_model.unwrap_or(LatencyModelKind::BlisPhysics),
    )
}

fn calibrate_against_measurements(
    args: &CalibrateArgs,
    experiments: Vec<Experiment>,
    latency_model: LatencyModelKind,
) -> CliResult<()> {
    if args.cv_errors.is_some() && !args.cross_validate {
        return Err("--cv-errors needs --cross-validate".into());
    }
    let groupings: Vec<CvGrouping> = args
        .cv_by
        .iter()
        .map(|by| match by.as_str() {
            "model" => Ok(CvGrouping::Model),
            "tp" => Ok(CvGrouping::Tp),
            other => Err(format!("--cv-by: unknown grouping `{other}` (accepted: model, tp)")),
        })
        .collect::<Result<_, _>>()?;
    let cfg = Setup {
        latency_model,
        overrides: LatencyOverrides {
            alpha: args.alpha_coeffs.clone(),
            beta: args.beta_coeffs.clone(),
            coefficients_file: args.coefficients_file.clone(),
        },
        model_config_folder: args.model_config_folder.clone(),
        workload: WorkloadSemantics {
            question_reuse: args.question_reuse.clone(),
            user_order: args.user_order.clone(),
        },
        async_scheduling: args.async_scheduling,
        compat: blis_config::Compat::Blis,
        catalog: crate::run::catalog(),
    };
    if let Some(s) = args.prior_sigma.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(format!("--prior-sigma: {s} is not a finite σ ≥ 0 (ln units; 0 = no prior)").into());
    }
    let constraints = Constraints { frozen: args.freeze.clone(), prior_sigma: args.prior_sigma.clone() };
    // The reference simulator's predictions, when the file has some (an observed trace has none).
    let mut runs: Vec<ModelRun> =
        Some(reference_run(&experiments)).filter(|r| !r.rows.is_empty()).into_iter().collect();
    for &other in &args.compare {
        let other_cfg = Setup { latency_model: other, overrides: LatencyOverrides::default(), ..cfg.clone() };
        runs.push(simulate(&experiments, other.name(), &other_cfg)?);
    }
    let main_run = simulate(&experiments, latency_model.name(), &cfg)?;
    runs.push(main_run);
    if let Some(out) = &args.fit {
        // Fail on an unwritable path before the fit runs, not after.
        drop(blis_config::outputs::PendingFile::create(out, "fit")?);
        let (alpha0, beta0) = starting_point(&cfg)?;
        let opt = LmOptions { max_evals: args.max_evals, ..LmOptions::default() };
        let result =
            fit(&experiments, &cfg, alpha0, &beta0, &constraints, opt, |line| eprintln!("fit: {line}"))?;
        let names: Vec<&str> = match latency_model {
            LatencyModelKind::BlisPhysics => blis_latency::blis_physics::BETA_NAMES.to_vec(),
            LatencyModelKind::TrainedPhysics => blis_latency::BASIS_NAMES.to_vec(),
            _ => Vec::new(),
        };
        let yaml = coefficients_yaml(latency_model.name(), &result, &names);
        write_file(out, &yaml, "fit")?;
        eprintln!("fit: wrote {}", out.display());
        let fitted = Setup {
            overrides: LatencyOverrides {
                alpha: Some(result.alpha.to_vec()),
                beta: Some(result.beta.clone()),
                coefficients_file: None,
            },
            ..cfg.clone()
        };
        runs.push(simulate(&experiments, &format!("{} (fitted)", latency_model.name()), &fitted)?);
    }
    let mut folds: Vec<(CvGrouping, Vec<Fold>)> = Vec::new();
    let mut held_out: Vec<Comparison> = Vec::new();
    if args.cross_validate {
        let (alpha0, beta0) = match &args.cv_start {
            Some(path) => {
                let overrides =
                    LatencyOverrides { coefficients_file: Some(path.clone()), ..Default::default() };
                starting_point(&Setup { overrides, ..cfg.clone() })
                    .map_err(|e| format!("--cv-start: {}", e.message))?
            }
            None => starting_point(&cfg)?,
        };
        let opt = LmOptions { max_evals: args.cv_max_evals, ..LmOptions::default() };
        for &grouping in &groupings {
            let (f, rows) = leave_one_group_out(
                &experiments,
                grouping,
                &cfg,
                alpha0,
                &beta0,
                &constraints,
                opt,
                |line| eprintln!("cv {}: {line}", grouping.label()),
            )?;
            held_out.extend(rows.iter().cloned());
            runs.push(ModelRun { name: format!("{} {}", latency_model.name(), grouping.label()), rows });
            folds.push((grouping, f));
        }
    }
    if let Some(path) = &args.cv_errors {
        let envelope = blis_calibrate::cv_errors::envelope(&experiments, &cfg)?;
        let labels: Vec<&str> = folds.iter().map(|(g, _)| g.label()).collect();
        let yaml = blis_calibrate::cv_errors::cv_errors_yaml(&held_out, &envelope, &labels.join(" + "));
        write_file(path, &yaml, "cv-errors")?;
        eprintln!("cv-errors: wrote {}", path.display());
    }
    for run in &runs {
        print_run(&experiments, run);
    }
    let cv_start = match &args.cv_start {
        Some(path) => format!("`{}`", path.display()),
        None => "the evaluated coefficients (when those were fitted to every experiment, the held-out \
                 model helped choose the starting point, so this is optimistic)"
            .to_string(),
    };
    let cv_text = folds.iter().map(|(g, f)| cv_section(*g, f, &cv_start)).collect::<Vec<_>>().join("\n");
    if !cv_text.is_empty() {
        println!("{cv_text}");
    }
    if let Some(path) = &args.report {
        drop(blis_config::outputs::PendingFile::create(path, "report")?);
        let rest: Vec<String> = std::env::args().skip(1).map(shell_word).collect();
        let command = format!("blis {}", rest.join(" "));
        let command = command.replace(" --", " \\\n  --");
        let preamble = format!(
            "Generated by `blis calibrate` (crates/blis-calibrate) from {} real vLLM runs. Regenerate with:\n\n\
             ```\n{command}\n```\n\nEach experiment is simulated exactly as `blis run` would simulate it \
             (`--total-kv-blocks` from vLLM, `--seed 42`, prefix caching on, Poisson stages).",
            experiments.len()
        );
        let mut text = render("BLIS accuracy against real vLLM (H100)", &preamble, &experiments, &runs);
        if !cv_text.is_empty() {
            text.push('\n');
            text.push_str(&cv_text);
        }
        write_file(path, &text, "report")?;
        eprintln!("report: wrote {}", path.display());
    }
    Ok(())
}

/// `--compat reference`: BLIS under the reference's semantics against the reference's own
/// predictions, one line per experiment.
fn compat_parity(args: &CalibrateArgs, experiments: &[Experiment]) -> CliResult<()> {
    let conflicting = [
        ("--fit", args.fit.is_some()),
        ("--cross-validate", args.cross_validate),
        ("--compare", !args.compare.is_empty()),
        ("--question-reuse", args.question_reuse.is_some()),
        ("--user-order", args.user_order.is_some()),
    ];
    if let Some((flag, _)) = conflicting.iter().find(|(_, set)| *set) {
        return Err(format!("--compat reference: {flag} cannot be combined with it").into());
    }
    let latency_model = args.latency_model.unwrap_or(LatencyModelKind::TrainedPhysics);
    let overrides = LatencyOverrides {
        alpha: args.alpha_coeffs.clone(),
        beta: args.beta_coeffs.clone(),
        coefficients_file: args.coefficients_file.clone(),
    };
    let cfg =
        reference_setup(latency_model, overrides, args.model_config_folder.clone(), crate::run::catalog());
    if let Some(path) = &args.report {
        drop(blis_config::outputs::PendingFile::create(path, "report")?);
    }
    let rows = parity(experiments, &cfg)?;
    let table = render_table(&rows);
    println!(
        "== {} under --compat reference vs the reference simulator's predictions ==\n",
        latency_model.name()
    );
    println!("{table}");
    if let Some(path) = &args.report {
        let rest: Vec<String> = std::env::args().skip(1).map(shell_word).collect();
        let text = format!(
            "# BLIS `--compat reference` against the reference simulator ({})\n\n\
             Generated by `blis {}`. Each experiment is simulated under the reference simulator's \
             semantics and compared with the reference's own prediction of it (not with vLLM).\n\n{table}",
            latency_model.name(),
            rest.join(" ")
        );
        write_file(path, &text, "report")?;
        eprintln!("report: wrote {}", path.display());
    }
    Ok(())
}

/// The coefficients the model currently uses (after overrides): the fit starts there.
fn starting_point(cfg: &Setup) -> CliResult<([f64; 3], Vec<f64>)> {
    let o = &cfg.overrides;
    let file = match &o.coefficients_file {
        Some(p) => blis_latency::CoefficientFile::load(p).map_err(|e| e.to_string())?,
        None => blis_latency::coefficients::shipped().clone(),
    };
    let set_name = match cfg.latency_model {
        LatencyModelKind::BlisPhysics
            if file.trained_physics.contains_key(blis_latency::blis_physics::COEFFICIENT_SET) =>
        {
            blis_latency::blis_physics::COEFFICIENT_SET.to_string()
        }
        LatencyModelKind::TrainedPhysics | LatencyModelKind::BlisPhysics => file.default.clone(),
        other => {
            return Err(format!(
                "--fit: fitting is supported for trained-physics and blis-physics, not {}",
                other.name()
            )
            .into());
        }
    };
    let set = file.set(&set_name).map_err(|e| e.to_string())?;
    let alpha = match &o.alpha {
        Some(a) => a.as_slice().try_into().map_err(|_| "--alpha-coeffs needs 3 values".to_string())?,
        None => set.alpha,
    };
    let beta = o.beta.clone().unwrap_or_else(|| set.beta.clone());
    Ok((alpha, beta))
}

/// Markdown section with one row per cross-validation fold (empty without folds).
fn cv_section(grouping: CvGrouping, folds: &[Fold], start: &str) -> String {
    if folds.is_empty() {
        return String::new();
    }
    let what = match grouping {
        CvGrouping::Model => "model",
        CvGrouping::Tp => "TP degree",
    };
    let mut s = format!(
        "## {} cross-validation\n\nPer {what}: coefficients fitted on the other {what}s' \
         experiments only (every fold from {start}, with the same budget), then used to predict the held-out \
         {what}'s experiments (the `{}` row above pools these held-out predictions). Held-out figures are MAPE (%).\n\n\
         | held-out {what} | n | train objective | held-out TTFT mean | TTFT p90 | E2E mean | E2E p90 | ITL mean | evaluations | alpha | beta |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        grouping.label(),
        grouping.label()
    );
    for f in folds {
        let sm = blis_calibrate::metrics::score(&f.held_out);
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        s.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | [{}] | [{}] |\n",
            f.group,
            f.held_out.len(),
            f.fit.objective,
            sm.mape(Metric::TtftMean),
            sm.mape(Metric::TtftP90),
            sm.mape(Metric::E2eMean),
            sm.mape(Metric::E2eP90),
            sm.mape(Metric::ItlMean),
            f.fit.evaluations,
            list(&f.fit.alpha),
            list(&f.fit.beta)
        ));
    }
    s
}

fn shell_word(w: String) -> String {
    if w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:".contains(c)) { w } else { format!("'{w}'") }
}
