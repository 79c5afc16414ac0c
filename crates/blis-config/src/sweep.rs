//! Parameter sweeps (`blis sweep`): a grid of run descriptions, each row its own [`RunConfig`].
//!
//! ```yaml
//! base:                       # keys of a run description (the `blis run` flag names)
//!   model: meta-llama/llama-3.1-8b-instruct
//!   hardware: H100
//!   workload: general
//!   num-requests: 2000
//!   no-prefix-caching: false
//! axes:                       # the cartesian product; the first axis varies slowest
//!   - {flag: num-instances, values: [2, 4]}
//!   - {flag: routing-policy, values: [round-robin, least-loaded]}
//! ```
//!
//! Row `i` is `defaults < base's policy file < base + axis values`, resolved on its own: a row
//! that cannot run becomes an error row, never the end of the sweep. Rows are numbered in
//! expansion order and reported in that order whatever the thread count; `--shard k/n` takes the
//! k-th of n contiguous slices, so the shards' rows together are the whole sweep.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ConfigError;
use crate::layers::{Layer, Layers, Source};
use crate::resolve::Catalog;
use crate::spec::RunSpec;

/// Most configurations one sweep may hold.
pub const MAX_CONFIGURATIONS: u64 = 1_000_000;

/// Keys a sweep row cannot set (every row would write the same file).
const RESERVED: &[&str] = &[
    "metrics-path",
    "results-path",
    "trace-output",
    "decision-trace-path",
    "report",
    "timeseries-path",
    "saturation-report",
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub flag: String,
    pub values: Vec<Value>,
}

/// A sweep file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    #[serde(default)]
    pub base: BTreeMap<String, Value>,
    #[serde(default)]
    pub axes: Vec<Axis>,
}

/// One configuration of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in expansion order (0-based).
    pub index: u64,
    /// (key, value) of every axis, in axis order.
    pub coords: Vec<(String, Value)>,
    /// The row's own layer: the base with the axis values.
    pub values: serde_json::Map<String, Value>,
    /// Keys the grid spelled with a flag alias (`max-num-running-reqs`), as spelled.
    pub aliases: Vec<String>,
}

/// The result of one configuration, or why it could not run.
#[derive(Debug, Clone)]
pub struct Row {
    pub point: Point,
    pub outcome: Result<RowResult, String>,
}

/// What a configuration that ran produced.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The cluster metrics document.
    pub metrics: serde_json::Map<String, Value>,
    /// The row's resolved run description (what `blis run --config` reads to repeat it).
    pub run: Value,
}

fn bare(key: &str) -> &str {
    key.trim_start_matches('-')
}

impl Grid {
    pub fn parse(text: &str, file: &Path) -> Result<Grid, ConfigError> {
        let grid: Grid = crate::yaml::parse(text, file)?;
        grid.validate(file)?;
        Ok(grid)
    }

    /// A grid given as JSON rather than a YAML file (the Python binding's dicts); `name` stands
    /// for the file in errors.
    pub fn from_json(text: &str, name: &Path) -> Result<Grid, ConfigError> {
        let grid: Grid = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("", name.display().to_string(), e.to_string()))?;
        grid.validate(name)?;
        Ok(grid)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let keys = RunSpec::keys();
        let err = |key: &str, m: String| ConfigError::new(key, format!("{}: {key}", file.display()), m);
        let check = |key: &str| {
            let k = bare(key);
            if RESERVED.contains(&k) {
                return Err(err(
                    k,
                    "cannot be set per configuration (every row would write the same file)".into(),
                ));
            }
            if !keys.iter().any(|x| x == k)
                && ![
                    "max-num-running-reqs",
                    "max-num-scheduled-tokens",
                    "trace-data",
                    "detectors",
                    "export-workload-trace",
                ]
                .contains(&k)
            {
                return Err(err(k, "not a `blis run` flag".into()));
            }
            Ok(())
        };
        for key in self.base.keys() {
            check(key)?;
        }
        let mut seen: Vec<&str> = Vec::new();
        for axis in &self.axes {
            let k = bare(&axis.flag);
            check(k)?;
            if axis.values.is_empty() {
                return Err(err(k, "the axis has no values".into()));
            }
            if seen.contains(&k) {
                return Err(err(k, "the axis appears twice".into()));
            }
            if self.base.keys().any(|b| bare(b) == k) {
                return Err(err(k, "is both in base and an axis".into()));
            }
            seen.push(k);
        }
        let n = self.len();
        if n.is_none_or(|n| n > MAX_CONFIGURATIONS) {
            let count = match n {
                Some(n) => n.to_string(),
                None => "more than 2^64".into(),
            };
            return Err(ConfigError::new(
                "axes",
                format!("{}: axes", file.display()),
                format!("the grid has {count} configurations; at most {MAX_CONFIGURATIONS}"),
            ));
        }
        Ok(())
    }

    /// Number of configurations (`None` when it does not fit in 64 bits).
    pub fn len(&self) -> Option<u64> {
        self.axes.iter().try_fold(1u64, |n, a| n.checked_mul(a.values.len() as u64))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// Configuration `index` (first axis varying slowest).
    pub fn point(&self, index: u64) -> Point {
        let mut rest = index;
        let mut coords = vec![(String::new(), Value::Null); self.axes.len()];
        for (k, axis) in self.axes.iter().enumerate().rev() {
            let n = axis.values.len() as u64;
            coords[k] = (bare(&axis.flag).to_string(), axis.values[(rest % n) as usize].clone());
            rest /= n;
        }
        let mut values = serde_json::Map::new();
        let mut aliases = Vec::new();
        for (k, v) in
            self.base.iter().map(|(k, v)| (bare(k).to_string(), v.clone())).chain(coords.iter().cloned())
        {
            if canonical(&k) != k {
                aliases.push(k.clone());
            }
            values.insert(canonical(&k).to_string(), v);
        }
        Point { index, coords, values, aliases }
    }
}

/// The key a flag alias sets (`max-num-running-reqs` → `max-num-seqs`); other keys as they are.
pub fn canonical(key: &str) -> &str {
    match key {
        "max-num-running-reqs" => "max-num-seqs",
        "max-num-scheduled-tokens" => "max-num-batched-tokens",
        "trace-data" => "workload-trace",
        "detectors" => "post-hoc-detector",
        "export-workload-trace" => "trace-output",
        other => other,
    }
}

/// The layers of one row: defaults, the row's policy file (if any), the row's values.
pub fn row_layers(point: &Point, grid_file: &Path) -> Result<Layers, ConfigError> {
    let spec = RunSpec::from_map(point.values.clone()).map_err(|e| {
        ConfigError::new("", format!("{}: configuration {}", grid_file.display(), point.index), e)
    })?;
    let mut layers = Layers::with_defaults();
    let mut row = Layer::new(Source::Flags, &spec);
    for key in &point.aliases {
        row.spelled.insert(canonical(key).to_string(), key.clone());
    }
    if let Some(policy) = &spec.policy_config {
        layers.push(crate::policy_file::load(policy)?);
    }
    layers.push(row);
    Ok(layers)
}

/// Runs one row.
pub fn run_point(point: &Point, grid_file: &Path, catalog: &Catalog) -> Result<RowResult, String> {
    let layers = row_layers(point, grid_file).map_err(|e| e.to_string())?;
    let config = crate::resolve::resolve(&layers, catalog).map_err(|e| e.to_string())?;
    let outcome = config.simulate().map_err(|e| e.to_string())?;
    let mut metrics = match serde_json::to_value(&outcome.doc.cluster).expect("metrics serialize") {
        Value::Object(m) => m,
        _ => unreachable!("a struct serializes to an object"),
    };
    metrics.insert("steady_state".into(), outcome.doc.steady_state.verdict.as_str().into());
    if let Some(slo) = &outcome.doc.slo {
        metrics.insert("slo_met".into(), slo.met.into());
    }
    if let Some(g) = outcome.doc.goodput_rps {
        metrics.insert("goodput_rps".into(), g.into());
    }
    Ok(RowResult { metrics, run: serde_json::to_value(&config.spec).expect("a run spec serializes") })
}

/// Parses `--shard k/n` (1 ≤ k ≤ n) into the row range of shard k of a `total`-row grid.
pub fn shard_range(text: &str, total: u64) -> Result<Range<u64>, String> {
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let (k, n) = text
        .split_once('/')
        .and_then(|(k, n)| Some((parse(k)?, parse(n)?)))
        .filter(|&(k, n)| n >= 1 && (1..=n).contains(&k))
        .ok_or_else(|| format!("expected k/n with 1 ≤ k ≤ n (e.g. 2/4), got {text:?}"))?;
    let at = |i: u64| ((u128::from(total) * u128::from(i)) / u128::from(n)) as u64;
    Ok(at(k - 1)..at(k))
}

/// How a value reads in a table: strings as they are, booleans and numbers as JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Rows as a JSON array of `{index, config, metrics, run | error}` objects, in index order
/// (`config`: the axis values; `run`: the whole resolved description).
pub fn to_json(rows: &[Row]) -> String {
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let config: serde_json::Map<String, Value> = r.point.coords.iter().cloned().collect();
            let mut o = serde_json::Map::new();
            o.insert("index".into(), r.point.index.into());
            o.insert("config".into(), config.into());
            match &r.outcome {
                Ok(res) => {
                    o.insert("metrics".into(), res.metrics.clone().into());
                    o.insert("run".into(), res.run.clone());
                }
                Err(e) => {
                    o.insert("error".into(), e.clone().into());
                }
            }
            o.into()
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("rows serialize")
}

/// Whether some row of the grid turns the CPU KV tier on (then its figures are columns too).
fn grid_has_kv_tier(grid: &Grid) -> bool {
    let on = |key: &str, v: &Value| match key {
        "kv-cpu-blocks" => v.as_u64().is_some_and(|b| b > 0),
        "kv-offload-config" => !v.is_null(),
        _ => false,
    };
    grid.base.iter().any(|(k, v)| on(k, v))
        || grid.axes.iter().any(|a| a.values.iter().any(|v| on(bare(&a.flag), v)))
}

/// The metric columns of `grid`'s rows, in CSV order: every cluster metric (the CPU KV tier's
/// when the grid turns it on), then the steady-state verdict and the SLO figures.
pub fn metric_columns(grid: &Grid) -> Vec<String> {
    let mut metrics = blis_sim::report::MetricsDoc::field_names();
    if grid_has_kv_tier(grid) {
        metrics.extend(blis_sim::report::MetricsDoc::kv_tier_field_names());
        metrics.sort();
    }
    metrics.extend(["steady_state", "slo_met", "goodput_rps"].map(String::from));
    metrics
}

/// Rows as CSV: `index`, one column per axis, every cluster metric (the CPU KV tier's when the
/// grid turns it on), then `error`. The columns do not depend on which rows succeeded, so
/// shards of one grid have identical headers.
pub fn to_csv(grid: &Grid, rows: &[Row]) -> String {
    let metrics = metric_columns(grid);
    let mut w = csv::Writer::from_writer(Vec::new());
    let header: Vec<String> = std::iter::once("index".to_string())
        .chain(grid.axes.iter().map(|a| bare(&a.flag).to_string()))
        .chain(metrics.iter().cloned())
        .chain(std::iter::once("error".to_string()))
        .collect();
    w.write_record(&header).expect("in-memory csv");
    for r in rows {
        let mut fields = vec![r.point.index.to_string()];
        fields.extend(r.point.coords.iter().map(|(_, v)| display(v)));
        match &r.outcome {
            Ok(res) => {
                fields.extend(metrics.iter().map(|k| res.metrics.get(k).map(display).unwrap_or_default()));
                fields.push(String::new());
            }
            Err(e) => {
                fields.extend(metrics.iter().map(|_| String::new()));
                fields.push(e.clone());
            }
        }
        w.write_record(&fields).expect("in-memory csv");
    }
    String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8 fields")
}

/// The `--report` page of a sweep: each headline metric against the first axis (one line per
/// combination of the other axes), and every row's verdict.
pub fn page(grid: &Grid, rows: &[Row]) -> String {
    use crate::html::{Series, esc, line_chart};
    let mut body = String::new();
    let Some(first) = grid.axes.first() else {
        return crate::html::page("BLIS sweep", "<p>The grid has no axes.</p>");
    };
    let x_of = |v: &Value| v.as_f64();
    let numeric = first.values.iter().all(|v| x_of(v).is_some());
    body.push_str(r#"<section><h2>Metrics by axis</h2><div class="charts">"#);
    for (metric, label) in [
        ("ttft_p99_ms", "TTFT p99 (ms)"),
        ("itl_p99_ms", "ITL p99 (ms)"),
        ("e2e_p99_ms", "E2E p99 (ms)"),
        ("responses_per_sec", "responses/s (steady window)"),
    ] {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in rows {
            let Ok(res) = &r.outcome else { continue };
            let Some(y) = res.metrics.get(metric).and_then(Value::as_f64) else { continue };
            let xi = first.values.iter().position(|v| *v == r.point.coords[0].1).unwrap_or(0);
            let x = if numeric { x_of(&r.point.coords[0].1).unwrap_or(0.0) } else { xi as f64 };
            let name: Vec<String> =
                r.point.coords[1..].iter().map(|(k, v)| format!("{k}={}", display(v))).collect();
            let name = if name.is_empty() { metric.to_string() } else { name.join(" ") };
            series.entry(name).or_default().push((x, y));
        }
        let series: Vec<Series> = series.into_iter().map(|(name, points)| Series { name, points }).collect();
        let x_label = if numeric {
            bare(&first.flag).to_string()
        } else {
            format!(
                "{} ({})",
                bare(&first.flag),
                first
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{i}={}", display(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let id = format!("chart-sweep-{}", metric.replace('_', "-"));
        body.push_str(&line_chart(
            &id,
            &format!("{label} by {}", bare(&first.flag)),
            &x_label,
            label,
            &series,
            false,
        ));
    }
    body.push_str("</div></section><section><h2>Rows</h2><table id=\"sweep-rows\"><tr><th>index</th>");
    for a in &grid.axes {
        body.push_str(&format!("<th>{}</th>", esc(bare(&a.flag))));
    }
    body.push_str(
        "<th>verdict</th><th>TTFT p99 ms</th><th>E2E p99 ms</th><th>responses/s</th><th>error</th></tr>",
    );
    for r in rows {
        body.push_str(&format!("<tr><td>{}</td>", r.point.index));
        for (_, v) in &r.point.coords {
            body.push_str(&format!("<td>{}</td>", esc(&display(v))));
        }
        match &r.outcome {
            Ok(res) => {
                let g = |k: &str| res.metrics.get(k).map(display).unwrap_or_default();
                body.push_str(&format!(
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr>",
                    esc(&g("steady_state")),
                    esc(&g("ttft_p99_ms")),
                    esc(&g("e2e_p99_ms")),
                    esc(&g("responses_per_sec"))
                ));
            }
            Err(e) => body.push_str(&format!("<td></td><td></td><td></td><td></td><td>{}</td></tr>", esc(e))),
        }
    }
    body.push_str("</table></section>");
    let base = serde_json::to_string_pretty(&grid.base).unwrap_or_default();
    body.push_str(&format!(
        r#"<section><h2>Configuration</h2><pre id="run-config">{}</pre></section>"#,
        esc(&base)
    ));
    crate::html::page("BLIS sweep", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: &str = "
base:
  model: m
  num-requests: 10
  no-prefix-caching: true
  timeout: -1.5
axes:
  - {flag: num-instances, values: [1, 2]}
  - {flag: routing-policy, values: [round-robin, least-loaded, weighted]}
";

    fn grid(text: &str) -> Result<Grid, ConfigError> {
        Grid::parse(text, Path::new("g.yaml"))
    }

    #[test]
    fn expands_first_axis_slowest() {
        let g = grid(GRID).unwrap();
        assert_eq!(g.len(), Some(6));
        let p = g.point(4);
        assert_eq!(p.coords[0], ("num-instances".into(), Value::from(2)));
        assert_eq!(p.coords[1], ("routing-policy".into(), Value::from("least-loaded")));
        let spec = RunSpec::from_map(p.values).unwrap();
        assert_eq!(spec.num_instances, Some(2));
        assert_eq!(spec.no_prefix_caching, Some(true));
        assert_eq!(spec.timeout, Some(crate::duration::Seconds(-1.5)));
    }

    #[test]
    fn json_grids_read_as_yaml_ones() {
        let json = r#"{"base": {"model": "m", "num-requests": 10, "no-prefix-caching": true, "timeout": -1.5},
            "axes": [{"flag": "num-instances", "values": [1, 2]},
                     {"flag": "routing-policy", "values": ["round-robin", "least-loaded", "weighted"]}]}"#;
        assert_eq!(Grid::from_json(json, Path::new("grid")).unwrap(), grid(GRID).unwrap());
        let e = Grid::from_json(r#"{"axes": [{"flag": "tp", "values": []}]}"#, Path::new("grid"));
        assert_eq!(e.unwrap_err().to_string(), "grid: tp: the axis has no values");
        let e = Grid::from_json(r#"{"bogus": 1}"#, Path::new("grid")).unwrap_err().to_string();
        assert!(e.starts_with("grid: unknown field `bogus`"), "{e}");
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(grid("axes: [{flag: tp, values: []}]").is_err());
        assert!(grid("axes: [{flag: tp, values: [1]}, {flag: tp, values: [2]}]").is_err());
        assert!(grid("base: {tp: 1}\naxes: [{flag: tp, values: [2]}]").is_err());
        assert!(grid("base: {progress: always}").is_err());
        assert!(grid("base: {metrics-path: x.json}").is_err());
        assert!(grid("bogus: 1").is_err());
        let flags = [
            "tp",
            "seed",
            "rate",
            "num-requests",
            "max-num-seqs",
            "max-num-batched-tokens",
            "block-size-in-tokens",
            "num-instances",
            "admission-latency",
            "routing-latency",
            "snapshot-refresh-interval",
            "cache-signal-delay",
            "counterfactual-k",
            "prefix-tokens",
            "long-prefill-token-threshold",
            "horizon",
        ];
        let values = (1..=16).map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
        let huge: String = flags.iter().map(|f| format!("  - {{flag: {f}, values: [{values}]}}\n")).collect();
        let e = grid(&format!("axes:\n{huge}")).unwrap_err().to_string();
        assert!(e.contains("more than 2^64 configurations"), "{e}");
        let wide: Vec<String> = ["tp", "seed", "rate", "num-requests", "max-num-seqs"]
            .iter()
            .map(|f| {
                format!(
                    "  - {{flag: {f}, values: [{}]}}\n",
                    (1..=100).map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let e = grid(&format!("axes:\n{}", wide.concat())).unwrap_err().to_string();
        assert!(e.contains("10000000000 configurations; at most 1000000"), "{e}");
    }

    #[test]
    fn shards_partition_the_rows() {
        for total in [0u64, 1, 5, 6, 17] {
            for n in 1..=7u64 {
                let ranges: Vec<Range<u64>> =
                    (1..=n).map(|k| shard_range(&format!("{k}/{n}"), total).unwrap()).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges.last().unwrap().end, total);
                assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
        for bad in ["0/3", "4/3", "1/0", "x", "1-3"] {
            assert!(shard_range(bad, 10).is_err(), "{bad}");
        }
    }

    #[test]
    fn kv_tier_columns_only_when_the_grid_turns_the_tier_on() {
        let header = |g: &str| to_csv(&grid(g).unwrap(), &[]).lines().next().unwrap().to_string();
        assert!(!header("axes:\n  - {flag: kv-cpu-blocks, values: [0]}\n").contains("cpu_cache_hit_rate"));
        let h = header("axes:\n  - {flag: --kv-cpu-blocks, values: [0, 100]}\n");
        assert!(h.contains(",cpu_cache_hit_rate,") && h.contains(",kv_thrashing_rate,"), "{h}");
        assert!(header("base: {kv-offload-config: o.yaml}\n").contains("gpu_cache_hit_rate"));
    }

    #[test]
    fn csv_quotes_and_errors() {
        let g = grid(GRID).unwrap();
        let mut m = serde_json::Map::new();
        m.insert("completed_requests".into(), 7.into());
        let rows = vec![
            Row { point: g.point(0), outcome: Ok(RowResult { metrics: m, run: Value::Null }) },
            Row { point: g.point(1), outcome: Err("bad, really".into()) },
        ];
        let csv = to_csv(&g, &rows);
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].starts_with("index,num-instances,routing-policy,cache_hit_rate,completed_requests"),
            "{}",
            lines[0]
        );
        assert!(lines[1].starts_with("0,1,round-robin,,7,"), "{}", lines[1]);
        assert!(lines[2].ends_with(",\"bad, really\""), "{}", lines[2]);
        assert!(to_json(&rows).contains("\"error\": \"bad, really\""));
    }
}
