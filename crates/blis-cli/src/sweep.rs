//! `blis sweep`: runs a grid of `blis run` configurations in parallel, one result row each.

use std::path::PathBuf;

use blis_config::sweep::{Grid, Row, run_point, shard_range};
use clap::Args;
use rayon::prelude::*;

use crate::run::{CliResult, catalog, print_stdout, write_file};

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// YAML grid: `base` (keys of `blis run`) and `axes` (flag + list of values).
    #[arg(long)]
    pub grid: PathBuf,
    /// Where to write the results: `.json` → JSON array, anything else → CSV [default: CSV on
    /// stdout].
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run only the k-th of n contiguous slices of the grid (1 ≤ k ≤ n); the shards' rows
    /// together are the whole sweep, row for row.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Write a self-contained HTML page: each metric against the first axis, every row's verdict.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
}

/// Most worker threads a sweep starts.
const MAX_THREADS: usize = 1024;

pub fn sweep(args: &SweepArgs) -> CliResult<()> {
    let text = std::fs::read_to_string(&args.grid)
        .map_err(|e| format!("--grid: cannot read {}: {e}", args.grid.display()))?;
    let grid = Grid::parse(&text, &args.grid)?;
    let total = grid.len().expect("checked when parsed");
    let range = match &args.shard {
        Some(s) => shard_range(s, total).map_err(|e| format!("--shard: {e}"))?,
        None => 0..total,
    };
    let threads = match args.threads {
        Some(0) => return Err("--threads: must be at least 1".into()),
        Some(n) if n > MAX_THREADS => return Err(format!("--threads: at most {MAX_THREADS}, got {n}").into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // Check the output path before running anything.
    if let Some(path) = &args.output {
        drop(blis_config::outputs::PendingFile::create(path, "output")?);
    }
    if let Some(path) = &args.report {
        drop(blis_config::outputs::PendingFile::create(path, "report")?);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("--threads: cannot start {threads} threads: {e}"))?;
    let catalog = catalog();
    // `collect` keeps index order whatever order the configurations finish in.
    let rows: Vec<Row> = pool.install(|| {
        range
            .into_par_iter()
            .map(|i| {
                let point = grid.point(i);
                Row { outcome: run_point(&point, &args.grid, &catalog), point }
            })
            .collect()
    });
    let failed = rows.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        eprintln!("warning: {failed} of {} configurations failed (see the error column)", rows.len());
    }
    if let Some(path) = &args.report {
        write_file(path, &blis_config::sweep::page(&grid, &rows), "report")?;
    }
    match &args.output {
        Some(path) => {
            let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let body = if is_json {
                format!("{}\n", blis_config::sweep::to_json(&rows))
            } else {
                blis_config::sweep::to_csv(&grid, &rows)
            };
            write_file(path, &body, "output")
        }
        None => print_stdout(blis_config::sweep::to_csv(&grid, &rows).trim_end()),
    }
}
