//! `blis._blis`: the native half of the Python package `blis` (python/blis). It speaks in JSON
//! text with the Python half, which keeps this layer thin and the numbers exact: a document is
//! serialized once by serde_json, as the CLI prints it, and parsed by Python's `json`, which reads
//! every float back to the same bits. Every run goes through `blis_config`, as the CLI's do, and
//! the GIL is released while anything is simulated.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use blis_config::sweep::{Grid, Row, canonical, run_point};
use blis_config::{Catalog, ConfigError, Layer, RunError, RunSpec, Source};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rayon::prelude::*;
use serde_json::{Map, Value};

/// The exceptions `blis` raises (the module name makes them print as `blis.ConfigError`).
mod py_errors {
    use pyo3::exceptions::{PyRuntimeError, PyValueError};

    pyo3::create_exception!(
        blis,
        ConfigError,
        PyValueError,
        "A run description that cannot run: the message is what `blis` prints after `error: `."
    );
    pyo3::create_exception!(
        blis,
        RunError,
        PyRuntimeError,
        "A run that broke an invariant of the simulator (a bug; `blis` exits with status 3)."
    );
}

fn config_error(e: ConfigError) -> PyErr {
    py_errors::ConfigError::new_err(e.to_string())
}

fn run_error(e: RunError) -> PyErr {
    match e {
        RunError::Config(c) => config_error(c),
        invariant @ RunError::Invariant(_) => py_errors::RunError::new_err(invariant.to_string()),
    }
}

/// The keyword layer of a run: like the command line's flags layer, so errors name a key as
/// `--max-num-seqs`, exactly as `blis run` does. `keys_json` maps kebab-case keys (aliases
/// allowed) to values.
fn keywords_layer(keys_json: &str) -> Result<Layer, ConfigError> {
    let given: Map<String, Value> = serde_json::from_str(keys_json)
        .map_err(|e| ConfigError::new("", "keywords", format!("not a JSON object: {e}")))?;
    let known = RunSpec::keys();
    let mut values = Map::new();
    let mut spelled = BTreeMap::new();
    for (key, value) in given {
        let flag = format!("--{key}");
        let canon = canonical(&key).to_string();
        if !known.contains(&canon) {
            return Err(ConfigError::new(
                key,
                flag,
                "not a key of a run description (see `blis run --help` for the accepted keys)",
            ));
        }
        // Key by key, so a wrongly typed value is named by its key.
        let one: Map<String, Value> = [(canon.clone(), value.clone())].into_iter().collect();
        RunSpec::from_map(one).map_err(|e| ConfigError::new(canon.clone(), flag.clone(), e))?;
        if canon != key {
            spelled.insert(canon.clone(), flag);
        }
        values.insert(canon, value);
    }
    let spec = RunSpec::from_map(values).map_err(|e| ConfigError::new("", "keywords", e))?;
    let mut layer = Layer::new(Source::Flags, &spec);
    layer.spelled = spelled;
    Ok(layer)
}

/// `blis.run`: the run `blis run [--config FILE] FLAGS` would do. Returns the metrics document
/// (as the CLI prints it, compact), the per-request records as a JSON array when `records`,
/// and the warnings the CLI would print.
#[pyfunction]
#[pyo3(signature = (keys_json, config_path=None, records=false))]
fn run(
    py: Python<'_>,
    keys_json: &str,
    config_path: Option<PathBuf>,
    records: bool,
) -> PyResult<(String, Option<String>, Vec<String>)> {
    let flags = keywords_layer(keys_json).map_err(config_error)?;
    let layers = blis_config::assemble(flags, config_path.as_deref(), None).map_err(config_error)?;
    let mut config = blis_config::resolve(&layers, &Catalog::from_env()).map_err(config_error)?;
    if records {
        config.keep_records();
    }
    let mut warnings = config.warnings.clone();
    let outcome = py.detach(|| config.execute(|_| {})).map_err(run_error)?;
    warnings.extend(outcome.warnings());
    let doc = serde_json::to_string(&outcome.doc).expect("metrics serialize");
    let records = records.then(|| serde_json::to_string(&outcome.records()).expect("records serialize"));
    Ok((doc, records, warnings))
}

/// Reads a grid file, with the error `blis sweep --grid` gives.
#[pyfunction]
fn read_grid(path: PathBuf) -> PyResult<String> {
    std::fs::read_to_string(&path).map_err(|e| {
        config_error(ConfigError::new("grid", "--grid", format!("cannot read {}: {e}", path.display())))
    })
}

/// A grid from its text: `yaml` (a grid file) or `json` (a Python dict); `name` stands for the
/// file in errors and in the rows' errors.
fn parse_grid(text: &str, format: &str, name: &str) -> PyResult<Grid> {
    let file = Path::new(name);
    match format {
        "yaml" => Grid::parse(text, file),
        "json" => Grid::from_json(text, file),
        other => {
            return Err(PyValueError::new_err(format!("grid format must be yaml or json, got {other:?}")));
        }
    }
    .map_err(config_error)
}

/// Number of configurations of a grid (checking it as `blis sweep` does).
#[pyfunction]
fn grid_len(text: &str, format: &str, name: &str) -> PyResult<u64> {
    Ok(parse_grid(text, format, name)?.len().expect("checked when parsed"))
}

/// The axes of a grid, in order (flag names without dashes).
#[pyfunction]
fn grid_axes(text: &str, format: &str, name: &str) -> PyResult<Vec<String>> {
    let grid = parse_grid(text, format, name)?;
    Ok(grid.axes.iter().map(|a| a.flag.trim_start_matches('-').to_string()).collect())
}

/// Rows `start..end` of shard `k` of `n` of a `total`-row grid (`blis sweep --shard k/n`).
#[pyfunction]
fn shard_range(k: u64, n: u64, total: u64) -> PyResult<(u64, u64)> {
    let r = blis_config::sweep::shard_range(&format!("{k}/{n}"), total)
        .map_err(|e| config_error(ConfigError::new("shard", "shard", e)))?;
    Ok((r.start, r.end))
}

/// The metric columns of a sweep's rows, in the CSV's order (`blis sweep --output rows.csv`);
/// without a grid, those of a grid that leaves the CPU KV tier off.
#[pyfunction]
#[pyo3(signature = (text=None, format="yaml", name="grid"))]
fn metric_names(text: Option<&str>, format: &str, name: &str) -> PyResult<Vec<String>> {
    let grid = match text {
        Some(text) => parse_grid(text, format, name)?,
        None => Grid::default(),
    };
    Ok(blis_config::sweep::metric_columns(&grid))
}

/// Runs rows `start..end` of a grid on `threads` threads and returns them as the JSON array
/// `blis sweep --output rows.json` writes. `progress(done, total)` is called from this thread
/// about ten times a second; Ctrl-C (or an exception in `progress`) stops the sweep between rows.
#[pyfunction]
#[pyo3(signature = (text, format, name, start, end, threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn sweep_rows(
    py: Python<'_>,
    text: &str,
    format: &str,
    name: &str,
    start: u64,
    end: u64,
    threads: Option<usize>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let grid = parse_grid(text, format, name)?;
    let total = grid.len().expect("checked when parsed");
    if start > end || end > total {
        return Err(PyValueError::new_err(format!("rows {start}..{end} are not within the grid's {total}")));
    }
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads} threads: {e}")))?;
    let catalog = Catalog::from_env();
    let file = Path::new(name);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let rows = std::thread::scope(|s| -> PyResult<Vec<Row>> {
        let worker = s.spawn(|| run_rows(&pool, &grid, file, &catalog, start..end, &done, &stop));
        let mut interrupted = None;
        loop {
            let finished = py.detach(|| wait_for(&worker, Duration::from_millis(100)));
            if interrupted.is_none() {
                let report = || match &progress {
                    Some(f) => f.call1((done.load(Ordering::Relaxed), end - start)).map(drop),
                    None => Ok(()),
                };
                if let Err(e) = py.check_signals().and_then(|()| report()) {
                    stop.store(true, Ordering::Relaxed);
                    interrupted = Some(e);
                }
            }
            if finished {
                break;
            }
        }
        let rows = match worker.join() {
            Ok(rows) => rows,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match interrupted {
            Some(e) => Err(e),
            None => Ok(rows.expect("every row ran")),
        }
    })?;
    Ok(blis_config::sweep::to_json(&rows))
}

/// Runs the rows in index order of output whatever order they finish in; `None` when `stop`
/// was raised before every row ran.
fn run_rows(
    pool: &rayon::ThreadPool,
    grid: &Grid,
    file: &Path,
    catalog: &Catalog,
    range: Range<u64>,
    done: &AtomicU64,
    stop: &AtomicBool,
) -> Option<Vec<Row>> {
    pool.install(|| {
        range
            .into_par_iter()
            .map(|i| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let point = grid.point(i);
                let row = Row { outcome: run_point(&point, file, catalog), point };
                done.fetch_add(1, Ordering::Relaxed);
                Some(row)
            })
            .collect()
    })
}

/// `blis.plan`: the search `blis plan` runs, over the run keys in `keys_json` (model, workload,
/// rate, engine settings, …). Returns the plan document as JSON; the GIL is released meanwhile.
#[pyfunction]
#[pyo3(signature = (keys_json, slo, hardware, tp, max_gpus, routing, gpu_cost, seeds, seed, num_requests, warmup_fraction, threads=None))]
#[allow(clippy::too_many_arguments)]
fn plan(
    py: Python<'_>,
    keys_json: &str,
    slo: String,
    hardware: Vec<String>,
    tp: Option<Vec<u32>>,
    max_gpus: u32,
    routing: Vec<String>,
    gpu_cost: Option<String>,
    seeds: u64,
    seed: u64,
    num_requests: Option<u64>,
    warmup_fraction: f64,
    threads: Option<usize>,
) -> PyResult<String> {
    use clap::ValueEnum;
    let value_error = |flag: &str, m: String| py_errors::ConfigError::new_err(format!("{flag}: {m}"));
    let layer = keywords_layer(keys_json).map_err(config_error)?;
    let base = RunSpec::from_map(layer.values).map_err(|e| value_error("keywords", e))?;
    if !(0.0..1.0).contains(&warmup_fraction) {
        return Err(value_error("--warmup-fraction", format!("must be in [0, 1), got {warmup_fraction}")));
    }
    if seeds == 0 {
        return Err(value_error("--seeds", "must be at least 1".into()));
    }
    let routing = routing
        .iter()
        .map(|name| {
            blis_sim::cluster::routing::RoutingKind::from_str(name, true).map_err(|_| {
                value_error(
                    "--routing-policy",
                    format!(
                        "unknown policy {name:?}; accepted: {}",
                        blis_config::accepted::<blis_sim::cluster::routing::RoutingKind>()
                    ),
                )
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let gpu_cost = match gpu_cost {
        Some(t) => blis_config::plan::parse_costs(&t).map_err(|e| value_error("--gpu-cost", e))?,
        None => Default::default(),
    };
    let req = blis_config::plan::PlanRequest {
        base,
        slo,
        hardware: hardware.iter().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect(),
        tp,
        routing,
        max_gpus,
        gpu_cost,
        seeds: (0..seeds).map(|i| seed.wrapping_add(i)).collect(),
        num_requests,
        warmup_fraction,
    };
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start {threads} threads: {e}")))?;
    let doc = py
        .detach(|| pool.install(|| blis_config::plan::plan(&req, &Catalog::from_env())))
        .map_err(config_error)?;
    Ok(serde_json::to_string(&doc).expect("plan serializes"))
}

/// Waits up to `timeout` for `worker` to finish; whether it has.
fn wait_for<T>(worker: &std::thread::ScopedJoinHandle<'_, T>, timeout: Duration) -> bool {
    let step = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    while !worker.is_finished() && waited < timeout {
        std::thread::sleep(step);
        waited += step;
    }
    worker.is_finished()
}

#[pymodule]
fn _blis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(read_grid, m)?)?;
    m.add_function(wrap_pyfunction!(grid_len, m)?)?;
    m.add_function(wrap_pyfunction!(grid_axes, m)?)?;
    m.add_function(wrap_pyfunction!(shard_range, m)?)?;
    m.add_function(wrap_pyfunction!(metric_names, m)?)?;
    m.add_function(wrap_pyfunction!(sweep_rows, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add("ConfigError", m.py().get_type::<py_errors::ConfigError>())?;
    m.add("RunError", m.py().get_type::<py_errors::RunError>())?;
    Ok(())
}
