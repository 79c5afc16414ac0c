//! `blis sweep`: results do not depend on the thread count, rows come in grid order, and a
//! failing configuration is reported in its row without sinking the sweep.

use std::path::Path;
use std::process::Command;

const GRID: &str = "
base:
  model: meta-llama/llama-3.1-8b-instruct
  hardware: H100
  tp: 1
  num-requests: 60
  rate: 15
  seed: 7
axes:
  - {flag: num-instances, values: [1, 2]}
  - {flag: routing-policy, values: [round-robin, least-loaded]}
  - {flag: max-num-scheduled-tokens, values: [256, 2048]}
";

fn sweep(dir: &Path, grid: &str, threads: usize, output: &str) -> String {
    sweep_with(dir, grid, output, &["--threads", &threads.to_string()])
}

/// `blis sweep --grid GRID --output OUTPUT EXTRA…`, returning the output file.
fn sweep_with(dir: &Path, grid: &str, output: &str, extra: &[&str]) -> String {
    let grid_path = dir.join("grid.yaml");
    std::fs::write(&grid_path, grid).unwrap();
    let out_path = dir.join(output);
    let status = Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(["sweep", "--grid"])
        .arg(&grid_path)
        .arg("--output")
        .arg(&out_path)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(out_path).unwrap()
}

#[test]
fn csv_is_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let one = sweep(dir.path(), GRID, 1, "one.csv");
    let two = sweep(dir.path(), GRID, 2, "two.csv");
    assert_eq!(one, two);
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 1 + 8, "header + one row per configuration");
    assert!(lines[0].starts_with("index,num-instances,routing-policy,max-num-scheduled-tokens,"));
    for (i, line) in lines[1..].iter().enumerate() {
        assert!(line.starts_with(&format!("{i},")), "rows in grid order: {line}");
        assert!(line.ends_with(','), "no error: {line}");
    }
    // The first axis varies slowest.
    assert!(lines[1].starts_with("0,1,round-robin,256,"));
    assert!(lines[8].starts_with("7,2,least-loaded,2048,"));
}

#[test]
fn json_is_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let one = sweep(dir.path(), GRID, 1, "one.json");
    let two = sweep(dir.path(), GRID, 2, "two.json");
    assert_eq!(one, two);
    let rows: serde_json::Value = serde_json::from_str(&one).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[5]["index"], 5);
    assert_eq!(rows[5]["config"]["routing-policy"], "round-robin");
    assert_eq!(rows[5]["metrics"]["completed_requests"], 60);
}

#[test]
fn a_failing_configuration_fills_its_error_column() {
    let dir = tempfile::tempdir().unwrap();
    let grid = GRID.replace("[256, 2048]", "[8, 2048]"); // 8 < one block: rejected
    let csv = sweep(dir.path(), &grid, 2, "out.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[1].contains("--max-num-scheduled-tokens"), "{}", lines[1]);
    assert!(lines[2].ends_with(','), "{}", lines[2]);
}

#[test]
fn a_malformed_grid_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let grid_path = dir.path().join("grid.yaml");
    std::fs::write(&grid_path, "axes: [{flag: no-such-flag, values: [1]}]\nbase: {model: x}").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_blis")).args(["sweep", "--grid"]).arg(&grid_path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-flag: not a `blis run` flag") && err.lines().count() == 1, "{err}");
}

/// The shards of a grid, concatenated in order, are the whole sweep row for row, whatever the
/// number of shards (more shards than rows leaves some empty).
#[test]
fn shards_partition_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let full: Vec<serde_json::Value> =
        serde_json::from_str(&sweep(dir.path(), GRID, 2, "full.json")).unwrap();
    assert_eq!(full.len(), 8);
    for n in [1, 3, 8, 11] {
        let mut rows = Vec::new();
        for k in 1..=n {
            let shard = format!("{k}/{n}");
            let text = sweep_with(dir.path(), GRID, "shard.json", &["--shard", &shard, "--threads", "2"]);
            let part: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            rows.extend(part);
        }
        assert_eq!(rows, full, "{n} shards");
    }
}
