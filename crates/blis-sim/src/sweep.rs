//! Parameter sweeps (`blis sweep`): a grid of `blis run` configurations, expanded in a fixed
//! order, and the table of results.
//!
//! ```yaml
//! base:                       # flags of `blis run`, without the leading dashes
//!   model: meta-llama/llama-3.1-8b-instruct
//!   hardware: H100
//!   workload: general
//!   num-requests: 2000
//!   no-prefix-caching: false  # a boolean flag: true = given, false = left out
//! axes:                       # the cartesian product; the first axis varies slowest
//!   - {flag: num-instances, values: [2, 4]}
//!   - {flag: routing-policy, values: [round-robin, least-loaded]}
//! ```
//!
//! Configurations are numbered in expansion order; results are reported in that order whatever
//! order they were computed in, so the output does not depend on the thread count.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One flag value as written in the grid file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FlagValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl FlagValue {
    /// The value as it would be typed on the command line (`None` for booleans).
    pub fn text(&self) -> Option<String> {
        match self {
            FlagValue::Bool(_) => None,
            FlagValue::Int(i) => Some(i.to_string()),
            FlagValue::Float(f) => Some(f.to_string()),
            FlagValue::Str(s) => Some(s.clone()),
        }
    }

    /// The value for tables: booleans as `true`/`false`.
    pub fn display(&self) -> String {
        match self {
            FlagValue::Bool(b) => b.to_string(),
            other => other.text().unwrap_or_default(),
        }
    }
}

/// One axis of the grid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub flag: String,
    pub values: Vec<FlagValue>,
}

/// A sweep file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    #[serde(default)]
    pub base: BTreeMap<String, FlagValue>,
    #[serde(default)]
    pub axes: Vec<Axis>,
}

/// One point of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in expansion order (0-based).
    pub index: usize,
    /// (flag, value) of every axis, in axis order.
    pub coords: Vec<(String, FlagValue)>,
    /// The `blis run` arguments (without the program and subcommand names).
    pub args: Vec<String>,
}

/// Flags a sweep sets itself or that make no sense per configuration.
const RESERVED: &[&str] = &["progress", "metrics-path", "results-path", "trace-output"];

fn check_flag(flag: &str) -> Result<(), String> {
    let bare = flag.trim_start_matches('-');
    if bare.is_empty() || bare.contains(char::is_whitespace) || bare.contains('=') {
        return Err(format!("sweep grid: '{flag}' is not a flag name"));
    }
    if RESERVED.contains(&bare) {
        return Err(format!("sweep grid: --{bare} cannot be set per configuration"));
    }
    Ok(())
}

fn push_flag(args: &mut Vec<String>, flag: &str, value: &FlagValue) {
    let name = format!("--{}", flag.trim_start_matches('-'));
    match value {
        FlagValue::Bool(true) => args.push(name),
        FlagValue::Bool(false) => {}
        v => {
            args.push(name);
            args.push(v.text().expect("non-boolean"));
        }
    }
}

impl Grid {
    pub fn parse(text: &str) -> Result<Grid, String> {
        let grid: Grid = serde_saphyr::from_str(text).map_err(|e| format!("sweep grid: {e}"))?;
        grid.validate()?;
        Ok(grid)
    }

    fn validate(&self) -> Result<(), String> {
        for flag in self.base.keys() {
            check_flag(flag)?;
        }
        let mut seen = Vec::new();
        for axis in &self.axes {
            check_flag(&axis.flag)?;
            let bare = axis.flag.trim_start_matches('-');
            if axis.values.is_empty() {
                return Err(format!("sweep grid: axis '{bare}' has no values"));
            }
            if seen.contains(&bare) {
                return Err(format!("sweep grid: axis '{bare}' appears twice"));
            }
            if self.base.keys().any(|k| k.trim_start_matches('-') == bare) {
                return Err(format!("sweep grid: '{bare}' is both in base and an axis"));
            }
            seen.push(bare);
        }
        Ok(())
    }

    /// Number of configurations.
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every configuration, first axis varying slowest.
    pub fn points(&self) -> Vec<Point> {
        let n = self.len();
        let mut base_args = Vec::new();
        for (flag, value) in &self.base {
            push_flag(&mut base_args, flag, value);
        }
        (0..n)
            .map(|index| {
                let mut rest = index;
                let mut coords = vec![(String::new(), FlagValue::Bool(false)); self.axes.len()];
                for (k, axis) in self.axes.iter().enumerate().rev() {
                    let v = &axis.values[rest % axis.values.len()];
                    rest /= axis.values.len();
                    coords[k] = (axis.flag.trim_start_matches('-').to_string(), v.clone());
                }
                let mut args = base_args.clone();
                for (flag, value) in &coords {
                    push_flag(&mut args, flag, value);
                }
                Point { index, coords, args }
            })
            .collect()
    }
}

/// The result of one configuration: the cluster metrics document as a JSON object, or why the
/// configuration could not run.
#[derive(Debug, Clone)]
pub struct Row {
    pub point: Point,
    pub outcome: Result<serde_json::Map<String, serde_json::Value>, String>,
}

/// Rows as a JSON array of `{index, config, metrics | error}` objects, in index order.
pub fn to_json(rows: &[Row]) -> String {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let config: serde_json::Map<String, serde_json::Value> = r
                .point
                .coords
                .iter()
                .map(|(f, v)| (f.clone(), serde_json::to_value(v).expect("flag values serialize")))
                .collect();
            let mut o = serde_json::Map::new();
            o.insert("index".into(), r.point.index.into());
            o.insert("config".into(), config.into());
            match &r.outcome {
                Ok(m) => o.insert("metrics".into(), m.clone().into()),
                Err(e) => o.insert("error".into(), e.clone().into()),
            };
            o.into()
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("rows serialize")
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Rows as CSV: `index`, one column per axis, every metric, then `error`.
pub fn to_csv(rows: &[Row]) -> String {
    let axes: Vec<&str> =
        rows.first().map(|r| r.point.coords.iter().map(|(f, _)| f.as_str()).collect()).unwrap_or_default();
    let metrics: Vec<&String> =
        rows.iter().find_map(|r| r.outcome.as_ref().ok()).map(|m| m.keys().collect()).unwrap_or_default();
    let mut out = String::new();
    let header: Vec<String> = std::iter::once("index".to_string())
        .chain(axes.iter().map(|a| csv_field(a)))
        .chain(metrics.iter().map(|m| csv_field(m)))
        .chain(std::iter::once("error".to_string()))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in rows {
        let mut fields = vec![r.point.index.to_string()];
        fields.extend(r.point.coords.iter().map(|(_, v)| csv_field(&v.display())));
        match &r.outcome {
            Ok(m) => {
                for key in &metrics {
                    let cell = match m.get(*key) {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                    };
                    fields.push(csv_field(&cell));
                }
                fields.push(String::new());
            }
            Err(e) => {
                fields.extend(metrics.iter().map(|_| String::new()));
                fields.push(csv_field(e));
            }
        }
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
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

    #[test]
    fn expands_first_axis_slowest() {
        let g = Grid::parse(GRID).unwrap();
        assert_eq!(g.len(), 6);
        let p = g.points();
        assert_eq!(p[4].index, 4);
        assert_eq!(p[4].coords[0], ("num-instances".into(), FlagValue::Int(2)));
        assert_eq!(p[4].coords[1], ("routing-policy".into(), FlagValue::Str("least-loaded".into())));
        assert_eq!(
            p[4].args,
            [
                "--model",
                "m",
                "--no-prefix-caching",
                "--num-requests",
                "10",
                "--timeout",
                "-1.5",
                "--num-instances",
                "2",
                "--routing-policy",
                "least-loaded"
            ]
        );
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(Grid::parse("axes: [{flag: tp, values: []}]").is_err());
        assert!(Grid::parse("axes: [{flag: tp, values: [1]}, {flag: tp, values: [2]}]").is_err());
        assert!(Grid::parse("base: {tp: 1}\naxes: [{flag: tp, values: [2]}]").is_err());
        assert!(Grid::parse("base: {progress: always}").is_err());
        assert!(Grid::parse("bogus: 1").is_err());
    }

    #[test]
    fn no_axes_is_one_point() {
        let g = Grid::parse("base: {model: m}").unwrap();
        assert_eq!(g.points().len(), 1);
    }

    #[test]
    fn csv_quotes_and_errors() {
        let g = Grid::parse(GRID).unwrap();
        let p = g.points();
        let mut m = serde_json::Map::new();
        m.insert("a".into(), 1.5.into());
        m.insert("b".into(), "x,y".into());
        let rows = vec![
            Row { point: p[0].clone(), outcome: Ok(m) },
            Row { point: p[1].clone(), outcome: Err("bad".into()) },
        ];
        let csv = to_csv(&rows);
        assert_eq!(
            csv,
            "index,num-instances,routing-policy,a,b,error\n0,1,round-robin,1.5,\"x,y\",\n1,1,least-loaded,,,bad\n"
        );
        assert!(to_json(&rows).contains("\"error\": \"bad\""));
    }
}
