//! `blis convert`: other workload descriptions as workload-spec v2 YAML (to stdout, or
//! `--output FILE`), which `--workload-spec` reads:
//!
//! * `preset --name NAME --rate R --num-requests N`: a built-in workload;
//! * `servegen --path DIR`: a ServeGen data directory, as period × SLO-class cohorts;
//! * `inference-perf --spec FILE`: a spec's `inference_perf:` section, as the reference
//!   simulator expands it into clients.

use std::path::{Path, PathBuf};

use blis_workload::SyntheticParams;
use clap::{Args, Subcommand};

use crate::run::CliResult;

#[derive(Args, Debug, Clone)]
pub struct ConvertArgs {
    #[command(subcommand)]
    pub what: ConvertCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ConvertCommand {
    /// A built-in workload (`--workload` name) as v2 YAML.
    Preset(PresetArgs),
    /// A ServeGen data directory as v2 YAML: cohorts per (period, SLO class) at absolute rates.
    Servegen(ServeGenArgs),
    /// An inference-perf spec (`inference_perf:` section) as v2 YAML clients, the reference
    /// simulator's expansion.
    InferencePerf(InferencePerfArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeGenArgs {
    /// The ServeGen data directory (chunk-<id>-trace.csv and chunk-<id>-dataset.json files).
    #[arg(long, value_name = "DIR")]
    pub path: PathBuf,
    /// Length of each simulated period (midnight, morning, afternoon), in seconds.
    #[arg(long, default_value_t = 600, allow_hyphen_values = true)]
    pub window_duration_seconds: i64,
    /// Quiet gap between the periods, in seconds.
    #[arg(long, default_value_t = 180, allow_hyphen_values = true)]
    pub drain_timeout_seconds: i64,
    /// Keep only one period's cohorts.
    #[arg(long, value_enum)]
    pub time: Option<Period>,
    /// Seed of the conversion's random picks, written into the spec.
    #[arg(long, default_value_t = 42)]
    pub seed: i64,
    /// Write the YAML here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// `--time` of `blis convert servegen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Midnight,
    Morning,
    Afternoon,
}

#[derive(Args, Debug, Clone)]
pub struct InferencePerfArgs {
    /// A workload spec with an `inference_perf:` section.
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    /// Write the YAML here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct PresetArgs {
    /// The built-in workload.
    #[arg(long, value_enum)]
    pub name: blis_workload::Preset,
    /// Aggregate rate (requests/s; ignored by inference-perf presets, whose stages set it).
    #[arg(long, allow_hyphen_values = true, default_value_t = 1.0)]
    pub rate: f64,
    /// Request count (ignored by inference-perf presets).
    #[arg(long, default_value_t = 100)]
    pub num_requests: u64,
    /// Workload seed written into the spec.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the YAML here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn convert(args: &ConvertArgs) -> CliResult<()> {
    match &args.what {
        ConvertCommand::Preset(p) => preset(p),
        ConvertCommand::Servegen(s) => servegen(s),
        ConvertCommand::InferencePerf(a) => inference_perf(a),
    }
}

fn servegen(a: &ServeGenArgs) -> CliResult<()> {
    if a.window_duration_seconds <= 0 {
        return Err(
            format!("--window-duration-seconds: must be > 0 s, got {}", a.window_duration_seconds).into()
        );
    }
    if a.drain_timeout_seconds < 0 {
        return Err(format!("--drain-timeout-seconds: must be ≥ 0 s, got {}", a.drain_timeout_seconds).into());
    }
    if !a.path.is_dir() {
        return Err(format!("--path: {} is not a directory", a.path.display()).into());
    }
    let sg = blis_workload::spec::ServeGenDataSpec {
        path: a.path.display().to_string(),
        time_window: a.time.map(|p| {
            match p {
                Period::Midnight => "midnight",
                Period::Morning => "morning",
                Period::Afternoon => "afternoon",
            }
            .to_string()
        }),
        window_duration_secs: Some(a.window_duration_seconds),
        drain_timeout_secs: Some(a.drain_timeout_seconds),
        ..Default::default()
    };
    let spec = blis_workload::servegen::to_spec(&sg, a.seed).map_err(|mut e| {
        // The keys of the data section are these flags; errors in the files name the file.
        let flag = match e.path.as_deref() {
            Some("time_window") => "--time",
            Some("window_duration_secs") => "--window-duration-seconds",
            Some("drain_timeout_secs") => "--drain-timeout-seconds",
            _ => "--path",
        };
        if e.path.as_deref().is_some_and(|p| !p.contains('.') && !p.contains('[')) {
            e.path = None;
        }
        format!("{flag}: {e}")
    })?;
    let yaml = blis_workload::to_yaml(&spec).map_err(|e| e.to_string())?;
    write_yaml(&yaml, a.output.as_deref())
}

fn inference_perf(a: &InferencePerfArgs) -> CliResult<()> {
    let spec = blis_workload::load_spec_file(&a.spec).map_err(|e| format!("--spec: {e}"))?;
    let (expanded, notes) =
        blis_workload::inference_perf::expand_to_clients(&spec).map_err(|e| format!("--spec: {e}"))?;
    for note in notes {
        eprintln!("note: {note}");
    }
    let yaml = blis_workload::to_yaml(&expanded).map_err(|e| e.to_string())?;
    write_yaml(&yaml, a.output.as_deref())
}

fn preset(p: &PresetArgs) -> CliResult<()> {
    if !(p.rate.is_finite() && p.rate > 0.0) {
        return Err(format!("--rate: must be a number > 0 (requests/s), got {}", p.rate).into());
    }
    if p.num_requests == 0 {
        return Err("--num-requests: must be at least 1".into());
    }
    let params = SyntheticParams {
        rate: p.rate,
        num_requests: p.num_requests,
        seed: p.seed,
        ..SyntheticParams::default()
    };
    let spec = blis_workload::preset_spec(p.name.name(), &params).map_err(|e| format!("--name: {e}"))?;
    let yaml = blis_workload::to_yaml(&spec).map_err(|e| e.to_string())?;
    write_yaml(&yaml, p.output.as_deref())
}

/// Writes YAML to `output` (flag `--output`) or stdout.
pub fn write_yaml(yaml: &str, output: Option<&Path>) -> CliResult<()> {
    let text = if yaml.ends_with('\n') { yaml.to_string() } else { format!("{yaml}\n") };
    match output {
        Some(path) => crate::run::write_file(path, &text, "output"),
        None => crate::run::print_stdout(text.trim_end_matches('\n')),
    }
}
