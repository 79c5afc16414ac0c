//! Heterogeneous pools (`pools:` / `--pool`): a mixed H100 + A100 fleet behind one router, its
//! per-instance and per-pool documents, conservation, refusals, and sweeps over fleets.

mod common;

use std::process::Command;

use common::{MODEL, assert_conserved, blis, f, run_ok, u, write};
use serde_json::Value;

const FLEET: &str = "pools: [{name: fast, hardware: H100, tp: 1, instances: 2}, \
                     {name: slow, hardware: A100-80, tp: 1, instances: 2}]\n";

#[test]
fn a_mixed_fleet_routes_more_to_the_faster_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "fleet.yaml",
        &format!("model: {MODEL}\nrouting-policy: least-loaded\nrate: 40\nnum-requests: 400\n{FLEET}"),
    );
    let doc = run_ok(&["run", "--config", &config, "--progress", "never"]);
    assert_conserved(&doc);
    assert_eq!(u(&doc, "completed_requests"), 400);

    let instances = doc["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 4);
    for (i, d) in instances.iter().enumerate() {
        let (pool, hardware) = if i < 2 { ("fast", "H100") } else { ("slow", "A100-80") };
        assert_eq!(d["instance_id"], format!("instance_{i}"));
        assert_eq!(d["pool"], pool);
        assert_eq!(d["hardware"], hardware);
        assert_eq!(d["tp"], 1);
        assert_eq!(d["model"], MODEL);
        assert_conserved(d);
    }
    // Every request is on exactly one instance.
    let on_instances: u64 = instances.iter().map(|d| u(d, "injected_requests")).sum();
    assert_eq!(on_instances, u(&doc, "injected_requests"));
    // The A100s decode more slowly than the H100s, instance by instance.
    let slowest_fast = instances[..2].iter().map(|d| f(d, "itl_mean_ms")).fold(0.0, f64::max);
    let fastest_slow = instances[2..].iter().map(|d| f(d, "itl_mean_ms")).fold(f64::INFINITY, f64::min);
    assert!(fastest_slow > 1.2 * slowest_fast, "A100 ITL {fastest_slow} vs H100 {slowest_fast}");

    // One summary per pool, adding up to the cluster.
    let pools = doc["per_pool"].as_array().unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(
        (&pools[0]["pool"], &pools[0]["instances"], &pools[0]["hardware"]),
        (&"fast".into(), &2.into(), &"H100".into())
    );
    assert_eq!(pools[1]["pool"], "slow");
    for key in ["completed_requests", "injected_requests", "total_output_tokens"] {
        let sum: u64 = pools.iter().map(|p| u(p, key)).sum();
        assert_eq!(sum, u(&doc, key), "{key}");
    }
    let (fast, slow) = (&pools[0], &pools[1]);
    for d in [fast, slow] {
        assert_conserved(d);
    }
    // Least-loaded routing sees every instance; the faster pool drains its queue sooner and
    // so takes more of the work.
    assert!(u(fast, "completed_requests") > u(slow, "completed_requests") + 20, "{fast}\n{slow}");
    assert!(f(slow, "itl_mean_ms") > f(fast, "itl_mean_ms"));

    // The recorded configuration lists the pools and what was derived for each.
    let cfg = &doc["config"];
    assert!(cfg.get("num-instances").is_none());
    assert_eq!(cfg["pools"][1]["hardware"], "A100-80");
    let derived = cfg["derived"]["pools"].as_array().unwrap();
    assert_eq!(derived.len(), 2);
    assert!(u(&derived[1], "total_kv_blocks") > 0);
}

#[test]
fn pool_flags_are_the_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        write(dir.path(), "fleet.yaml", &format!("model: {MODEL}\nnum-requests: 40\nrate: 10\n{FLEET}"));
    let from_file = run_ok(&["run", "--config", &config, "--progress", "never"]);
    let from_flags = run_ok(&[
        "run",
        "--model",
        MODEL,
        "--num-requests",
        "40",
        "--rate",
        "10",
        "--pool",
        "name=fast,hardware=H100,tp=1,instances=2",
        "--pool",
        "name=slow,hardware=A100-80,tp=1,instances=2",
        "--progress",
        "never",
    ]);
    assert_eq!(common::metrics(from_file), common::metrics(from_flags));
}

#[test]
fn runs_without_pools_carry_no_pool_fields() {
    let doc =
        run_ok(&common::with_model(&["--num-instances", "2", "--num-requests", "20", "--progress", "never"]));
    assert!(doc.get("per_pool").is_none());
    for d in doc["instances"].as_array().unwrap() {
        for key in ["pool", "hardware", "tp", "model"] {
            assert!(d.get(key).is_none(), "{key} in {d}");
        }
    }
    let derived = &doc["config"]["derived"];
    assert!(derived.get("pools").is_none());
    assert!(u(derived, "total_kv_blocks") > 0);
}

/// A clean one-line error naming `what`, exit status 2.
fn assert_refused(args: &[&str], what: &str) {
    let out = blis(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(what), "{args:?} should name {what}: {stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_fleets_are_refused_naming_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, text: &str| write(dir.path(), name, &format!("model: {MODEL}\n{text}"));
    let tp = run("tp.yaml", "pools: [{name: a, instances: 1}, {name: b, instances: 1, tp: 3}]");
    assert_refused(
        &["run", "--config", &tp, "--progress", "never"],
        "tp.yaml: pools[1].tp: 3 does not divide",
    );
    assert_refused(
        &["run", "--config", &run("n.yaml", FLEET), "--num-instances", "4", "--progress", "never"],
        "--num-instances: conflicts with pools",
    );
    let key = run("key.yaml", "pools: [{name: a, instances: 1, hw: H100}]");
    assert_refused(&["run", "--config", &key, "--progress", "never"], "unknown field 'hw' (a pool accepts");
    // The built-in workload's requests name no model, so a fleet of several models cannot
    // route them.
    let models = run(
        "models.yaml",
        "pools: [{name: a, instances: 1}, {name: b, instances: 1, model: qwen/qwen2.5-7b-instruct}]",
    );
    assert_refused(
        &["run", "--config", &models, "--progress", "never"],
        "names no model, and the pools serve several",
    );
    assert_refused(
        &["run", "--model", MODEL, "--pool", "name=a,instances=0", "--progress", "never"],
        "--pool[0].instances: must be at least 1",
    );
}

#[test]
fn a_sweep_varies_the_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let grid = write(
        dir.path(),
        "grid.yaml",
        &format!(
            "base: {{model: {MODEL}, num-requests: 60, rate: 15, routing-policy: least-loaded}}\naxes:\n  \
             - flag: pools\n    values:\n      \
             - [{{name: fast, hardware: H100, instances: 2}}]\n      \
             - [{{name: fast, hardware: H100, instances: 1}}, {{name: slow, hardware: A100-80, instances: 1}}]\n      \
             - [\"name=slow,hardware=A100-80,instances=2\"]\n"
        ),
    );
    let out = dir.path().join("rows.json");
    let status = Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(["sweep", "--grid", &grid, "--output"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let itl: Vec<f64> = rows.iter().map(|r| f(&r["metrics"], "itl_mean_ms")).collect();
    assert!(itl[0] < itl[1] && itl[1] < itl[2], "all H100 < mixed < all A100: {itl:?}");
    for r in rows {
        assert_eq!(u(&r["metrics"], "completed_requests"), 60);
    }
}
