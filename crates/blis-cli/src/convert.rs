//! `blis convert preset --name NAME --rate R --num-requests N`: a built-in workload as a
//! workload-spec v2 YAML document (to stdout, or `--output FILE`).

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
    }
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
