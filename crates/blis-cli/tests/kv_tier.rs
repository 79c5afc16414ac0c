//! The CPU KV tier end to end: with GPU blocks too few for the workload's shared prefixes, a
//! CPU tier raises the prefix hit rate and lowers TTFT; its figures appear only when it is on;
//! its flags round-trip through `--dump-config` and are validated.

mod common;

use std::path::Path;

use common::{MODEL, blis, run_ok};
use serde_json::Value;

/// Eight clients, each with its own 1024-token system prompt: 8 × 64 blocks of prefix, more
/// than a 300-block GPU pool keeps cached.
fn shared_prefixes(dir: &Path) -> String {
    let mut clients = String::new();
    for i in 0..8 {
        clients.push_str(&format!(
            "  - id: c{i}\n    rate_fraction: 1\n    prefix_group: g{i}\n    prefix_length: 1024\n    \
             input_distribution: {{type: constant, params: {{value: 100}}}}\n    \
             output_distribution: {{type: constant, params: {{value: 20}}}}\n"
        ));
    }
    let path = dir.join("shared.yaml");
    std::fs::write(
        &path,
        format!("version: \"2\"\nseed: 5\naggregate_rate: 4\nnum_requests: 200\nclients:\n{clients}"),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn run(spec: &str, extra: &[&str]) -> Value {
    let mut a = vec!["run", "--model", MODEL, "--workload-spec", spec, "--total-kv-blocks", "300"];
    a.extend_from_slice(extra);
    run_ok(&a)
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {v}"))
}

const TIER_FIELDS: [&str; 10] = [
    "total_kv_cpu_blocks",
    "gpu_cache_hit_rate",
    "cpu_cache_hit_rate",
    "kv_offloaded_blocks",
    "kv_reloaded_blocks",
    "kv_cpu_evicted_blocks",
    "kv_transfers",
    "kv_transfer_time_ms",
    "kv_transfer_wait_mean_ms",
    "kv_thrashing_rate",
];

#[test]
fn cpu_tier_raises_hit_rate_and_lowers_ttft_when_gpu_blocks_are_scarce() {
    let dir = tempfile::tempdir().unwrap();
    let spec = shared_prefixes(dir.path());
    let without = run(&spec, &[]);
    let with = run(&spec, &["--kv-cpu-blocks", "2000"]);
    assert_eq!(with["completed_requests"], 200);
    assert!(f(&with, "cache_hit_rate") > f(&without, "cache_hit_rate") + 0.2, "{with}\n{without}");
    assert!(f(&with, "ttft_mean_ms") < f(&without, "ttft_mean_ms"), "{with}\n{without}");
    assert!(f(&with, "prompt_tokens_computed") < f(&without, "prompt_tokens_computed"));
    // The per-tier rates split the overall one; the GPU tier alone does as well as no tier.
    let sum = f(&with, "gpu_cache_hit_rate") + f(&with, "cpu_cache_hit_rate");
    assert!((sum - f(&with, "cache_hit_rate")).abs() < 1e-9);
    assert!(f(&with, "cpu_cache_hit_rate") > 0.2);
    assert!(f(&with, "kv_reloaded_blocks") > 0.0 && f(&with, "kv_transfer_time_ms") > 0.0);
    assert!(f(&with, "kv_offloaded_blocks") >= 8.0 * 64.0);
    // The CPU pool holds every prefix: nothing to evict, no thrashing.
    assert_eq!(f(&with, "kv_thrashing_rate"), 0.0);
    // Figures of the tier only when it is on.
    for k in TIER_FIELDS {
        assert!(with.get(k).is_some(), "{k}");
        assert!(without.get(k).is_none(), "{k}");
    }
    // Per instance too; the cluster's counts are the instances' sums.
    let two = run(&spec, &["--kv-cpu-blocks", "2000", "--num-instances", "2"]);
    let instances = two["instances"].as_array().expect("per-instance documents");
    let reloaded: f64 = instances.iter().map(|i| f(i, "kv_reloaded_blocks")).sum();
    assert_eq!(reloaded, f(&two, "kv_reloaded_blocks"));
    assert_eq!(f(&two, "total_kv_cpu_blocks"), 4000.0);
    // A CPU pool smaller than the prefixes churns.
    let small = run(&spec, &["--kv-cpu-blocks", "200"]);
    assert!(f(&small, "kv_thrashing_rate") > 0.0, "{small}");
    assert!(f(&small, "cpu_cache_hit_rate") < f(&with, "cpu_cache_hit_rate"));
}

#[test]
fn reference_compat_stalls_steps_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let spec = shared_prefixes(dir.path());
    let without = run(&spec, &["--compat", "reference"]);
    let with =
        run(&spec, &["--compat", "reference", "--kv-cpu-blocks", "2000", "--kv-transfer-bandwidth", "100"]);
    assert!(f(&with, "cache_hit_rate") > f(&without, "cache_hit_rate") + 0.2);
    // Reloads add ceil(16 / 100) = 1 µs per block to steps; nobody waits outside a step.
    assert_eq!(f(&with, "kv_transfer_time_ms") * 1000.0, f(&with, "kv_reloaded_blocks"));
    assert_eq!(f(&with, "kv_transfer_wait_mean_ms"), 0.0);
}

#[test]
fn tier_flags_round_trip_and_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let spec = shared_prefixes(dir.path());
    let flags = [
        "run",
        "--model",
        MODEL,
        "--workload-spec",
        &spec,
        "--total-kv-blocks",
        "300",
        "--kv-cpu-blocks",
        "500",
        "--kv-transfer-bandwidth",
        "16",
        "--kv-transfer-base-latency",
        "20us",
    ];
    let direct = common::metrics(run_ok(&flags));
    let mut dump = flags.to_vec();
    dump.push("--dump-config");
    let out = blis(&dump);
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    for line in ["kv-cpu-blocks: 500", "kv-transfer-bandwidth: 16", "kv-offload-threshold: 0.9"] {
        assert!(yaml.contains(line), "{line}: {yaml}");
    }
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let again = common::metrics(run_ok(&["run", "--config", file.to_str().unwrap()]));
    assert_eq!(direct, again);
    // With the tier off its keys stay out of the dumped configuration.
    let out = String::from_utf8(blis(&["run", "--model", MODEL, "--dump-config"]).stdout).unwrap();
    for key in ["kv-cpu-blocks", "kv-offload-threshold", "kv-transfer-bandwidth", "kv-transfer-base-latency"]
    {
        assert!(!out.contains(key), "{key}: {out}");
    }

    for (args, needle) in [
        (&["--kv-cpu-blocks", "10", "--kv-transfer-bandwidth", "0"][..], "--kv-transfer-bandwidth"),
        (&["--kv-offload-threshold", "1.5"][..], "--kv-offload-threshold: must be in [0, 1]"),
    ] {
        let mut a = vec!["run", "--model", MODEL, "--num-requests", "5"];
        a.extend_from_slice(args);
        let out = blis(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The reference's offload description: its CPU tier, sized in bytes (2 MiB blocks here).
    let offload = dir.path().join("offload.yaml");
    std::fs::write(&offload, "kv_offload:\n  cpu_bytes_to_use: 4294967296\n  eviction_policy: lru\n")
        .unwrap();
    let off = offload.to_str().unwrap();
    let doc = run(&spec, &["--kv-offload-config", off]);
    assert_eq!(f(&doc, "total_kv_cpu_blocks"), 2048.0);
    assert!(f(&doc, "cpu_cache_hit_rate") > 0.2);
    let out = blis(&["run", "--model", MODEL, "--kv-offload-config", off, "--kv-cpu-blocks", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
    std::fs::write(
        &offload,
        "kv_offload:\n  cpu_bytes_to_use: 4294967296\n  secondary_tiers: [{type: fs}]\n",
    )
    .unwrap();
    let out = blis(&["run", "--model", MODEL, "--kv-offload-config", off]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secondary_tiers"));
    // A threshold has no effect on write-through offloading: said so.
    let out = blis(&[
        "run",
        "--model",
        MODEL,
        "--num-requests",
        "5",
        "--kv-cpu-blocks",
        "10",
        "--kv-offload-threshold",
        "0.5",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kv-offload-threshold: no effect"));
}
