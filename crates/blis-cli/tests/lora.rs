//! LoRA adapters end to end: a cold load delays its adapter's first request, the affinity
//! scorer keeps adapters where they are resident, bad registries are refused.

mod common;

use common::*;

const LORA: &str = "lora:\n  adapter_capacity: 2\n  load_base_latency_us: 50000\n  adapters:\n    - {id: a0, rank: 8}\n    - {id: a1, rank: 16}\n    - {id: a2, rank: 32}\n";

fn client(id: &str, adapter: Option<&str>, share: f64) -> String {
    let adapter = adapter.map(|a| format!("adapter: {a}, ")).unwrap_or_default();
    format!(
        "  - {{id: {id}, {adapter}rate_fraction: {share}, arrival: {{process: poisson}}, \
         input_distribution: {{type: constant, params: {{value: 256}}}}, \
         output_distribution: {{type: constant, params: {{value: 32}}}}}}\n"
    )
}

fn spec(n: u32, clients: &[String]) -> String {
    format!("version: \"2\"\nseed: 7\naggregate_rate: 20\nnum_requests: {n}\nclients:\n{}", clients.concat())
}

#[test]
fn a_cold_load_delays_the_first_request_by_the_load_time() {
    let dir = tempfile::tempdir().unwrap();
    // No per-step overhead: the load alone separates the two runs.
    let lora =
        write(dir.path(), "lora.yaml", &format!("{LORA}  step_overhead_tiers: {{8: {{k6: 0, k7: 1}}}}\n"));
    let with = write(dir.path(), "with.yaml", &spec(1, &[client("c", Some("a0"), 1.0)]));
    let without = write(dir.path(), "without.yaml", &spec(1, &[client("c", None, 1.0)]));
    let base = run_ok(&with_model(&["--workload-spec", &without, "--lora-config", &lora]));
    // Load: 50 000 µs + rank 8 × 2e6 bytes / 2e6 bytes per µs.
    let load_ms = 50.008;
    let cold = run_ok(&with_model(&["--workload-spec", &with, "--lora-config", &lora]));
    assert!((f(&cold, "ttft_mean_ms") - f(&base, "ttft_mean_ms") - load_ms).abs() < 1e-9, "{cold}\n{base}");
    assert_eq!(cold["lora"]["adapter_loads"], 1);
    assert_eq!(cold["adapters"]["a0"]["load_count"], 1);
    assert_eq!(base["lora"]["adapter_loads"], 0, "a base-model request loads nothing");
    // The reference's asynchronous load: the request waits for it before its first step.
    let args = ["--workload-spec", &with, "--lora-config", &lora, "--compat", "reference"];
    let cold = run_ok(&with_model(&args));
    let args = ["--workload-spec", &without, "--lora-config", &lora, "--compat", "reference"];
    let base = run_ok(&with_model(&args));
    let delay = f(&cold, "ttft_mean_ms") - f(&base, "ttft_mean_ms");
    assert!((load_ms - 1e-9..load_ms + 1.0).contains(&delay), "delay {delay} ms");
}

#[test]
fn adapters_are_conserved_deterministic_and_capacity_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lora = write(dir.path(), "lora.yaml", LORA);
    let clients = [
        client("c0", Some("a0"), 0.5),
        client("c1", Some("a1"), 0.3),
        client("c2", Some("a2"), 0.1),
        client("base", None, 0.1),
    ];
    let w = write(dir.path(), "w.yaml", &spec(300, &clients));
    for compat in ["blis", "reference"] {
        let args = with_model(&["--workload-spec", &w, "--lora-config", &lora, "--compat", compat]);
        let a = blis(&args);
        let b = blis(&args);
        assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
        assert_eq!(a.stdout, b.stdout, "same flags and seed, same output");
        let doc: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
        assert_conserved(&doc);
        assert_eq!(u(&doc, "completed_requests"), 300);
        let lora = &doc["lora"];
        assert!(u(lora, "peak_resident_adapters") <= 2);
        assert!(u(lora, "adapter_loads") > 3, "three adapters on two slots reload: {lora}");
        let per: u64 = ["a0", "a1", "a2"].iter().map(|a| u(&doc["adapters"][a], "completed_requests")).sum();
        // Adapter requests are a part of the completed ones (about 10 % name the base model).
        assert!((200..300).contains(&per), "{per} adapter requests of 300");
    }
}

#[test]
fn the_affinity_scorer_routes_to_resident_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let lora = write(dir.path(), "lora.yaml", LORA);
    let clients =
        [client("c0", Some("a0"), 0.4), client("c1", Some("a1"), 0.3), client("c2", Some("a2"), 0.3)];
    let w = write(dir.path(), "w.yaml", &spec(300, &clients));
    let base = [
        "--workload-spec",
        &w,
        "--lora-config",
        &lora,
        "--num-instances",
        "4",
        "--routing-policy",
        "weighted",
    ];
    let blind = run_ok(&with_model(&base));
    let mut args = base.to_vec();
    args.extend(["--lora-scorer-weight", "2"]);
    let aware = run_ok(&with_model(&args));
    let loads = |d: &serde_json::Value| u(&d["lora"], "adapter_loads");
    assert!(loads(&aware) * 2 < loads(&blind), "aware {} vs blind {}", loads(&aware), loads(&blind));
    assert_conserved(&aware);
}

#[test]
fn bad_lora_configurations_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let w = write(dir.path(), "w.yaml", &spec(10, &[client("c", Some("a9"), 1.0)]));
    let lora = write(dir.path(), "lora.yaml", LORA);
    let bad_rank =
        write(dir.path(), "bad.yaml", "lora:\n  adapter_capacity: 2\n  adapters: [{id: a0, rank: 0}]\n");
    let unknown = write(dir.path(), "unknown.yaml", "lora:\n  adapter_capacity: 2\n  slots: 3\n");
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--lora-config", &bad_rank], "lora.adapters[0].rank"),
        (vec!["--lora-config", &unknown], "slots"),
        (vec!["--lora-config", &lora, "--lora-adapter-capacity", "0"], "--lora-adapter-capacity"),
        (vec!["--lora-config", &lora, "--workload-spec", &w], "\"a9\""),
        (
            vec!["--lora-config", &lora, "--lora-load-bandwidth-bytes-us", "0"],
            "--lora-load-bandwidth-bytes-us",
        ),
    ];
    for (extra, needle) in cases {
        let out = blis(&with_model(&extra));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err} should name {needle}");
    }
}

#[test]
fn an_exported_trace_replays_with_its_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let lora = write(dir.path(), "lora.yaml", LORA);
    let clients = [client("c0", Some("a0"), 0.5), client("c1", Some("a2"), 0.3), client("base", None, 0.2)];
    let w = write(dir.path(), "w.yaml", &spec(80, &clients));
    let prefix = dir.path().join("t").display().to_string();
    let run =
        run_ok(&with_model(&["--workload-spec", &w, "--lora-config", &lora, "--trace-output", &prefix]));
    let (csv, header) = (format!("{prefix}.csv"), format!("{prefix}.yaml"));
    let replay =
        run_ok(&with_model(&["--workload-trace", &csv, "--trace-header", &header, "--lora-config", &lora]));
    assert_eq!(metrics(run.clone()), metrics(replay));
    assert!(u(&run["lora"], "adapter_loads") > 0);
    // Without the registry the trace's adapters are not simulated, and the run says so.
    let out = blis(&with_model(&["--workload-trace", &csv, "--trace-header", &header]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LoRA adapters"));
}
