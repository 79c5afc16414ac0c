//! `blis sweep`: runs a grid of `blis run` configurations in parallel, one result row each.

use std::path::PathBuf;

use blis_sim::report::RunDoc;
use blis_sim::sweep::{Grid, Point, Row};
use clap::{Args, Parser};
use rayon::prelude::*;

use crate::args::{Cli, Command, RunArgs};
use crate::run::{self, CliResult};

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// YAML grid: `base` (flags of `blis run`) and `axes` (flag + list of values).
    #[arg(long)]
    pub grid: PathBuf,
    /// Where to write the results: `.json` → JSON array, anything else → CSV (default: CSV on
    /// stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Parses one configuration's flags exactly as `blis run` would.
fn run_args(point: &Point) -> CliResult<RunArgs> {
    let argv = ["blis", "run"].into_iter().map(String::from).chain(point.args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        text.lines().next().unwrap_or("invalid flags").trim_start_matches("error: ").to_string()
    })?;
    match cli.command {
        Command::Run(args) => Ok(*args),
        _ => unreachable!("parsed as `run`"),
    }
}

/// Runs one configuration the way `blis run` does and returns its cluster metrics.
fn run_point(point: &Point) -> CliResult<serde_json::Map<String, serde_json::Value>> {
    let args = run_args(point)?;
    let (engine, cluster, extras) = crate::policy_config::resolve(&args.engine, &args.cluster)?;
    let args = RunArgs { engine, cluster, ..args };
    let engine = run::resolve_engine(&args.engine)?;
    let mut scenario = run::build_scenario(&args, engine)?;
    extras.apply_to(&mut scenario);
    let (source, _) = crate::replay::run_source(&args)?;
    let report = run::simulate(&scenario, source, None, "never")?;
    let doc = RunDoc::from_report(&report);
    match serde_json::to_value(&doc.cluster).expect("metrics serialize") {
        serde_json::Value::Object(m) => Ok(m),
        _ => unreachable!("a struct serializes to an object"),
    }
}

pub fn sweep(args: &SweepArgs) -> CliResult<()> {
    let text = std::fs::read_to_string(&args.grid)
        .map_err(|e| format!("--grid: cannot read {}: {e}", args.grid.display()))?;
    let grid = Grid::parse(&text).map_err(|e| format!("--grid: {e}"))?;
    let points = grid.points();
    // A malformed flag is a mistake in the grid, not a failed configuration: report it up front.
    for p in &points {
        run_args(p).map_err(|e| format!("--grid: configuration {}: {e}", p.index))?;
    }
    let threads = match args.threads {
        Some(0) => return Err("--threads: must be at least 1".into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("--threads: cannot start {threads} threads: {e}"))?;
    // `collect` keeps index order whatever order the configurations finish in.
    let rows: Vec<Row> = pool
        .install(|| points.into_par_iter().map(|point| Row { outcome: run_point(&point), point }).collect());
    let failed = rows.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        eprintln!("warning: {failed} of {} configurations failed (see the error column)", rows.len());
    }
    match &args.output {
        Some(path) => {
            let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let body = if is_json {
                format!("{}\n", blis_sim::sweep::to_json(&rows))
            } else {
                blis_sim::sweep::to_csv(&rows)
            };
            std::fs::write(path, body).map_err(|e| format!("--output: cannot write {}: {e}", path.display()))
        }
        None => run::print_stdout(blis_sim::sweep::to_csv(&rows).trim_end()),
    }
}
