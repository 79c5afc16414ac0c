//! Model autoscaling end to end: a burst of load grows the fleet (after provisioning and
//! loading delays), the fleet drains back when the burst is over, and the GPU-hours stay below
//! those of a fleet fixed at the pool's size. Refusals of what is not simulated.

mod common;

use common::{blis, run_ok, u, with_model, write};

const POLICY: &str = "\
node_pools:
  - name: h100-pool
    gpu_type: H100
    gpus_per_node: 1
    gpu_memory_gib: 80.0
    initial_nodes: 1
    max_nodes: 8
    cost_per_hour: 4.0
    provisioning_delay: {mean: 20.0, stddev: 0.0}
instance_lifecycle:
  loading_delay: {mean: 10.0, stddev: 0.0}
  warm_start_initial_instances: true
autoscaler:
  interval_us: 5000000
  scale_down_stabilization_window_us: 20000000
  analyzer: {kv_cache_threshold: 0.8, scale_up_threshold: 0.8, scale_down_boundary: 0.4, avg_input_tokens: 512}
";

/// 100 requests/s for the first minute (the burst client), then 10 requests/s.
const WORKLOAD: &str = "\
version: \"2\"
seed: 7
aggregate_rate: 100
clients:
  - id: burst
    rate_fraction: 0.9
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 100, min: 64, max: 1024}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 50, min: 16, max: 512}}
    lifecycle:
      windows:
        - {start_us: 0, end_us: 60000000}
  - id: base
    rate_fraction: 0.1
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 100, min: 64, max: 1024}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 50, min: 16, max: 512}}
";

#[test]
fn a_burst_grows_the_fleet_which_drains_back_for_fewer_gpu_hours() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(dir.path(), "policy.yaml", POLICY);
    let workload = write(dir.path(), "w.yaml", WORKLOAD);
    let args = with_model(&[
        "--num-instances",
        "1",
        "--total-kv-blocks",
        "3000",
        "--workload-spec",
        &workload,
        "--horizon",
        "240000000",
        "--policy-config",
        &policy,
    ]);
    let doc = run_ok(&args);
    let accounted: u64 = [
        "completed_requests",
        "still_queued",
        "still_running",
        "rejected_requests",
        "dropped_unservable",
        "timed_out_requests",
        "in_transit_requests",
    ]
    .iter()
    .map(|k| u(&doc, k))
    .sum();
    assert_eq!(u(&doc, "injected_requests"), accounted);
    let a = &doc["autoscaling"];
    let pool = &a["pools"][0];
    assert_eq!(pool["pool"], "h100-pool");
    assert!(u(pool, "peak_instances") >= 4, "the burst grows the fleet: {pool}");
    assert!(u(pool, "peak_instances") <= 8, "within the node pool");
    assert_eq!(u(pool, "final_instances"), 1, "back to one once the burst is over");
    assert_eq!(u(pool, "instances_added"), u(pool, "instances_removed"));
    let timeline = pool["timeline"].as_array().unwrap();
    let first = |action: &str| {
        timeline.iter().find(|e| e["action"] == action).map(|e| u(e, "time_us")).expect(action)
    };
    // A new instance is routable only after provisioning (20 s) and loading (10 s).
    assert!(first("ready") >= first("scale-up") + 30_000_000);
    assert!(first("scale-down") > 60_000_000, "scale-in only after the burst");
    // A draining instance leaves once its requests are done: no earlier than its scale-down.
    for e in timeline.iter().filter(|e| e["action"] == "drained") {
        let down =
            timeline.iter().find(|d| d["action"] == "scale-down" && d["instance"] == e["instance"]).unwrap();
        assert!(u(e, "time_us") >= u(down, "time_us"));
    }
    // GPU-hours: below a fleet fixed at the pool's 8 instances for the same run.
    let gpu_hours = a["gpu_hours_total"].as_f64().unwrap();
    let fixed = 8.0 * pool["end_us"].as_f64().unwrap() / 3.6e9;
    assert!(gpu_hours < 0.85 * fixed, "{gpu_hours} vs fixed {fixed}");
    assert!(gpu_hours > pool["end_us"].as_f64().unwrap() / 3.6e9, "at least one instance throughout");
    let cost = a["cost_total"].as_f64().unwrap();
    assert!((cost - 4.0 * gpu_hours).abs() < 1e-9, "one GPU per node at 4.0 per node-hour");
    // Instances the autoscaler never placed got no requests.
    for inst in doc["instances"].as_array().unwrap().iter().skip(1 + u(pool, "instances_added") as usize) {
        assert_eq!(u(inst, "injected_requests") + u(inst, "completed_requests"), 0);
    }
    // The fixed fleet of 8 serves the same load with no autoscaling section.
    let fixed_doc = run_ok(&with_model(&[
        "--num-instances",
        "8",
        "--total-kv-blocks",
        "3000",
        "--workload-spec",
        &workload,
        "--horizon",
        "240000000",
    ]));
    assert!(fixed_doc.get("autoscaling").is_none());
    // Deterministic, and the dumped configuration reproduces the run.
    let dump = blis(&[args.as_slice(), &["--dump-config"]].concat());
    assert!(dump.status.success());
    let config = write(dir.path(), "c.yaml", std::str::from_utf8(&dump.stdout).unwrap());
    let again = run_ok(&["run", "--config", &config]);
    assert_eq!(common::metrics(again), common::metrics(doc));
}

#[test]
fn what_is_not_simulated_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            POLICY.replace("warm_start_initial_instances: true", "warm_start_initial_instances: false"),
            "warm_start",
        ),
        (
            POLICY.replace(
                "warm_start_initial_instances: true",
                "warm_start_initial_instances: true\n  drain_policy: IMMEDIATE",
            ),
            "drain_policy",
        ),
        (POLICY.replace("gpu_type: H100", "gpu_type: A100-80"), "gpu_type"),
        (POLICY.replace("max_nodes: 8", "max_nodes: 8\n    spot: true"), "spot"),
        (POLICY.replace("interval_us: 5000000", "interval_us: 0"), "node_pools"),
        (POLICY.replace("scale_down_boundary: 0.4", "scale_down_boundary: 0.9"), "scale_down_boundary"),
    ];
    for (i, (text, word)) in cases.iter().enumerate() {
        let policy = write(dir.path(), &format!("p{i}.yaml"), text);
        let out =
            blis(&with_model(&["--num-instances", "1", "--num-requests", "5", "--policy-config", &policy]));
        assert_eq!(out.status.code(), Some(2), "{word}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(word), "{word}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // The flag switches autoscaling on or off over the block's interval.
    let policy = write(dir.path(), "p.yaml", POLICY);
    let off = blis(&with_model(&[
        "--num-instances",
        "1",
        "--num-requests",
        "5",
        "--policy-config",
        &policy,
        "--model-autoscaler-interval-us",
        "0",
    ]));
    assert_eq!(off.status.code(), Some(2));
    let on = run_ok(&with_model(&[
        "--num-instances",
        "1",
        "--num-requests",
        "5",
        "--policy-config",
        &policy,
        "--model-autoscaler-interval-us",
        "1000000",
    ]));
    assert!(on["autoscaling"]["pools"][0]["ticks"].as_u64().unwrap() >= 1);
}

/// Combinations the autoscaler does not simulate: each refused in one line naming the key or
/// flag, exit 2.
#[test]
fn unsupported_combinations_with_the_autoscaler_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lifecycle = "warm_start_initial_instances: true";
    let pool_block = &POLICY[POLICY.find("  - name").unwrap()..POLICY.find("instance_lifecycle").unwrap()];
    let policies = [
        (
            POLICY.replace(lifecycle, &format!("{lifecycle}\n  warm_up_request_count: 5")),
            "instance_lifecycle: warm_up_request_count: ",
        ),
        (
            POLICY.replace(lifecycle, &format!("{lifecycle}\n  warm_up_ttft_factor: 2.0")),
            "instance_lifecycle: warm_up_ttft_factor: ",
        ),
        (
            POLICY.replace(pool_block, &format!("{pool_block}{}", pool_block.replace("h100-pool", "h100-b"))),
            "node_pools: autoscaling needs exactly one node pool (it bounds the fleet), got 2",
        ),
        (format!("{POLICY}hw_config_by_gpu:\n  H100: {{}}\n"), "hw_config_by_gpu"),
    ];
    let check = |out: std::process::Output, word: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{word}: {err}");
        assert!(err.contains(word), "{word}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    };
    for (i, (text, word)) in policies.iter().enumerate() {
        let policy = write(dir.path(), &format!("u{i}.yaml"), text);
        check(
            blis(&with_model(&["--num-instances", "1", "--num-requests", "5", "--policy-config", &policy])),
            word,
        );
    }
    let policy = write(dir.path(), "p.yaml", POLICY);
    let flags: [(&[&str], &str); 2] = [
        (
            &["--prefill-instances", "1", "--decode-instances", "1"],
            "--prefill-instances: a disaggregated (prefill/decode) fleet",
        ),
        (
            &[
                "--pool",
                "name=a,hardware=H100,tp=1,instances=1",
                "--pool",
                "name=b,hardware=H100,tp=1,instances=1",
            ],
            "the model autoscaler scales a single pool of instances, got 2 pools",
        ),
    ];
    for (extra, word) in flags {
        let mut args =
            vec!["run", "--model", common::MODEL, "--num-requests", "5", "--policy-config", &policy];
        args.extend_from_slice(extra);
        check(blis(&args), word);
    }
}

#[test]
fn a_scrape_delay_postpones_scale_out() {
    let dir = tempfile::tempdir().unwrap();
    let workload = write(dir.path(), "w.yaml", WORKLOAD);
    let first_scale_up = |policy: &str| {
        let policy = write(dir.path(), "p.yaml", policy);
        let doc = run_ok(&with_model(&[
            "--num-instances",
            "1",
            "--total-kv-blocks",
            "3000",
            "--workload-spec",
            &workload,
            "--horizon",
            "120000000",
            "--policy-config",
            &policy,
        ]));
        let timeline = doc["autoscaling"]["pools"][0]["timeline"].as_array().unwrap().clone();
        u(timeline.iter().find(|e| e["action"] == "scale-up").unwrap(), "time_us")
    };
    let now = first_scale_up(POLICY);
    let later = first_scale_up(
        &POLICY.replace("interval_us: 5000000", "interval_us: 5000000\n  hpa_scrape_delay: {mean: 15}"),
    );
    assert_eq!(later, now + 15_000_000);
}
