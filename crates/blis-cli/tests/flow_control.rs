//! End-to-end tests of flow control (`--flow-control`, the gateway queue) through the built
//! binary: under overload it keeps instance queues short and sheds or delays at the gateway,
//! it orders by priority, it validates its flags, and it leaves runs without it unchanged.

mod common;

use common::{blis, f, run_ok, u, with_model};

use std::path::Path;

use serde_json::Value;

/// Critical, standard and (twice as much) sheddable traffic from three tenants, well beyond
/// what two instances serve.
const OVERLOAD_SPEC: &str = r#"
version: "2"
seed: 5
aggregate_rate: 120
num_requests: 1200
clients:
  - id: gold
    tenant_id: a
    slo_class: critical
    rate_fraction: 1
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 128, min: 16, max: 2048}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 64, min: 8, max: 1024}}
  - id: plain
    tenant_id: b
    slo_class: standard
    rate_fraction: 1
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 128, min: 16, max: 2048}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 64, min: 8, max: 1024}}
  - id: bulk
    tenant_id: c
    slo_class: sheddable
    rate_fraction: 2
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 128, min: 16, max: 2048}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 64, min: 8, max: 1024}}
"#;

const GATEWAY_COUNTERS: [&str; 5] = [
    "gateway_queue_depth",
    "gateway_queue_shed",
    "gateway_queue_rejected",
    "gateway_expired",
    "gateway_evicted",
];

/// injected = completed + queued + running + rejected + dropped + timed out + in transit +
/// every gateway bucket.
fn assert_conserved(doc: &Value) {
    common::assert_conserved_with(doc, &GATEWAY_COUNTERS);
}

fn class_ttft_p99(doc: &Value, class: &str) -> f64 {
    f(&doc["per_class"][class], "ttft_p99_ms")
}

/// The largest number of requests (queued + running) on all instances together at a sample.
fn max_cluster_load(timeseries: &Path) -> u64 {
    let text = std::fs::read_to_string(timeseries).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (t, q, r) = (col("time_s"), col("queued"), col("running"));
    let mut by_time = std::collections::BTreeMap::<String, u64>::new();
    for l in lines {
        let v: Vec<&str> = l.split(',').collect();
        *by_time.entry(v[t].to_string()).or_default() +=
            v[q].parse::<u64>().unwrap() + v[r].parse::<u64>().unwrap();
    }
    by_time.into_values().max().unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    spec: String,
    dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("overload.yaml");
    std::fs::write(&spec, OVERLOAD_SPEC).unwrap();
    Setup { spec: spec.to_str().unwrap().to_string(), dir: dir.path().to_path_buf(), _dir: dir }
}

fn overload_args<'a>(s: &'a Setup, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = with_model(&[
        "--num-instances",
        "2",
        "--routing-policy",
        "least-loaded",
        "--workload-spec",
        &s.spec,
        "--progress",
        "never",
    ]);
    v.extend_from_slice(extra);
    v
}

#[test]
fn under_overload_flow_control_keeps_instance_queues_short_and_holds_or_sheds_at_the_gateway() {
    let s = setup();
    let ts_off = s.dir.join("off.csv");
    let ts_on = s.dir.join("on.csv");
    let off = run_ok(&overload_args(&s, &["--timeseries-path", ts_off.to_str().unwrap()]));
    assert!(off.get("gateway_queue_depth_max").is_none(), "no gateway figures without flow control");
    let gate = [
        "--flow-control",
        "--saturation-detector",
        "concurrency",
        "--max-concurrency",
        "48",
        "--dispatch-order",
        "priority",
        "--snapshot-refresh-interval",
        "0",
    ];
    let mut args = overload_args(&s, &gate);
    args.extend_from_slice(&["--timeseries-path", ts_on.to_str().unwrap()]);
    let on = run_ok(&args);
    assert_conserved(&on);
    // Everything is still served, but the backlog waits at the gateway, not on the instances.
    assert_eq!(u(&on, "completed_requests"), 1200);
    // The reference's inversion counter only counts under priority scheduling.
    assert_eq!(u(&on, "priority_inversions"), 0);
    assert!(on["hol_blocking_events"].is_u64());
    assert!(u(&on, "gateway_queue_depth_max") > 100, "{on}");
    assert!(f(&on, "gateway_queue_depth_mean") > 10.0, "{on}");
    assert!(f(&on, "gateway_queue_delay_p99_ms") >= f(&on, "gateway_queue_delay_p50_ms"));
    assert!(f(&on, "gateway_queue_delay_p99_ms") > 1000.0, "{on}");
    // The concurrency detector holds the cluster at 48 requests in flight per instance.
    let (load_off, load_on) = (max_cluster_load(&ts_off), max_cluster_load(&ts_on));
    assert!(load_on <= 2 * 48, "the instances held {load_on} requests with --max-concurrency 48");
    assert!(load_off > 4 * load_on, "without flow control instances pile up: {load_off} vs {load_on}");
    // Priority dispatch: critical requests overtake the backlog.
    let (crit_on, crit_off) = (class_ttft_p99(&on, "critical"), class_ttft_p99(&off, "critical"));
    assert!(crit_on < crit_off / 2.0, "critical TTFT p99 {crit_on} ms with vs {crit_off} ms without");
    assert!(class_ttft_p99(&on, "sheddable") > crit_on * 5.0);

    // A bounded queue rejects what does not fit; a TTL expires what waits too long.
    let mut args = overload_args(&s, &gate);
    args.extend_from_slice(&["--max-gateway-queue-depth", "100", "--request-ttl", "3s"]);
    let bounded = run_ok(&args);
    assert_conserved(&bounded);
    assert!(u(&bounded, "gateway_queue_depth_max") <= 100);
    assert!(u(&bounded, "gateway_queue_rejected") > 0, "{bounded}");
    assert!(u(&bounded, "gateway_expired") > 0, "{bounded}");
    assert!(u(&bounded, "completed_requests") < 1200);
    // Expired requests count as shed, as in the reference.
    let shed: u64 = bounded["shed_by_tier"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(shed, u(&bounded, "gateway_expired"));
}

#[test]
fn shedding_and_in_flight_eviction_only_hit_sheddable_requests() {
    let s = setup();
    let gate = [
        "--flow-control",
        "--saturation-detector",
        "utilization",
        "--queue-depth-threshold",
        "4",
        "--dispatch-order",
        "priority",
        "--max-gateway-queue-depth",
        "60",
        "--snapshot-refresh-interval",
        "0",
    ];
    let plain = run_ok(&overload_args(&s, &gate));
    let critical = u(&plain["per_class"]["critical"], "completed_requests");
    for extra in ["--queue-shedding", "--in-flight-eviction"] {
        let mut args = overload_args(&s, &gate);
        args.push(extra);
        let doc = run_ok(&args);
        assert_conserved(&doc);
        let (shed, evicted) = (u(&doc, "gateway_queue_shed"), u(&doc, "gateway_evicted"));
        match extra {
            "--queue-shedding" => assert!(shed > 0 && evicted == 0, "{doc}"),
            _ => assert!(evicted > 0 && shed == 0, "{doc}"),
        }
        // Only the sheddable class loses requests to them.
        let tiers = doc["shed_by_tier"].as_object().unwrap();
        assert_eq!(tiers.keys().collect::<Vec<_>>(), ["sheddable"], "{doc}");
        assert_eq!(tiers["sheddable"].as_u64().unwrap(), shed + evicted);
        // Critical requests fare no worse than without them.
        assert!(u(&doc["per_class"]["critical"], "completed_requests") >= critical, "{extra}");
        // Determinism.
        assert_eq!(doc, run_ok(&args));
    }
}

#[test]
fn every_dispatch_order_and_fairness_policy_serves_everything_when_unbounded() {
    let s = setup();
    for order in ["fifo", "priority", "slo-deadline"] {
        for fairness in ["global-strict", "round-robin"] {
            let doc = run_ok(&overload_args(
                &s,
                &[
                    "--flow-control",
                    "--saturation-detector",
                    "concurrency",
                    "--max-concurrency",
                    "32",
                    "--dispatch-order",
                    order,
                    "--fairness-policy",
                    fairness,
                    "--slo-targets",
                    "critical=100000,standard=500000",
                    "--dispatch-tick-interval",
                    "2ms",
                ],
            ));
            assert_conserved(&doc);
            assert_eq!(u(&doc, "completed_requests"), 1200, "{order} {fairness}");
            assert_eq!(u(&doc, "gateway_queue_depth"), 0);
        }
    }
}

#[test]
fn the_reference_guide_example_gates_a_single_instance_too() {
    // docs/guide/admission.md of the reference, at a rate one instance cannot serve.
    let args = with_model(&[
        "--flow-control",
        "--saturation-detector",
        "utilization",
        "--queue-depth-threshold",
        "5",
        "--kv-cache-util-threshold",
        "0.8",
        "--per-band-capacity",
        "100",
        "--max-gateway-queue-depth",
        "500",
        "--rate",
        "80",
        "--num-requests",
        "400",
    ]);
    let out = blis(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("no effect"), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_conserved(&doc);
    assert!(u(&doc, "gateway_queue_depth_max") > 10, "{doc}");
    assert!(u(&doc, "gateway_queue_depth_max") <= 100);
    assert!(u(&doc, "gateway_queue_rejected") > 0, "the band of 100 overflows: {doc}");
}

/// Asserts a clean one-line error naming `flag`, exit code 2.
fn assert_rejected(args: &[&str], flag: &str) {
    let out = blis(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "blis {args:?} should fail; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic on {args:?}: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    assert!(errors[0].contains(flag), "error for {args:?} should name {flag}: {stderr}");
}

#[test]
fn bad_values_are_refused_and_unused_flags_warned_about() {
    let base = ["--num-instances", "2", "--num-requests", "5", "--flow-control"];
    for (flag, value) in [
        ("--usage-limit-threshold", "0"),
        ("--usage-limit-threshold", "1.5"),
        ("--max-concurrency", "0"),
        ("--queue-depth-threshold", "0"),
        ("--kv-cache-util-threshold", "-1"),
        ("--dispatch-tick-interval", "-1"),
        ("--dispatch-order", "lifo"),
        ("--saturation-detector", "sometimes"),
        ("--fairness-policy", "lottery"),
        ("--slo-targets", "gold=5"),
        ("--slo-targets", "critical=0"),
        ("--max-gateway-queue-depth", "-1"),
    ] {
        let mut args = with_model(&base);
        args.extend_from_slice(&[flag, value]);
        assert_rejected(&args, flag);
    }
    // Without --flow-control its flags do nothing, and say so.
    let out = blis(&with_model(&[
        "--num-instances",
        "2",
        "--num-requests",
        "5",
        "--request-ttl",
        "1s",
        "--queue-shedding",
    ]));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--request-ttl: no effect without --flow-control"), "{err}");
    assert!(err.contains("--queue-shedding: no effect without --flow-control"), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc.get("gateway_queue_depth").is_none());
    // With it, the pass-through detector and a replaced admission policy are pointed out.
    let out = blis(&with_model(&[
        "--num-instances",
        "2",
        "--num-requests",
        "5",
        "--flow-control",
        "--admission-policy",
        "reject-all",
    ]));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never: the gateway queue passes every request through"), "{err}");
    assert!(err.contains("--admission-policy: replaced by the gateway queue"), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&doc, "completed_requests"), 5, "the gateway queue replaces reject-all");
}

#[test]
fn flow_control_settings_round_trip_through_dump_config() {
    let s = setup();
    let args = overload_args(
        &s,
        &[
            "--flow-control",
            "--saturation-detector",
            "utilization",
            "--queue-depth-threshold",
            "3",
            "--kv-cache-util-threshold",
            "0.7",
            "--dispatch-order",
            "slo-deadline",
            "--slo-targets",
            "critical=100000",
            "--fairness-policy",
            "round-robin",
            "--max-gateway-queue-depth",
            "80",
            "--per-band-capacity",
            "40",
            "--usage-limit-threshold",
            "0.9",
            "--request-ttl",
            "4s",
            "--queue-shedding",
            "--dispatch-tick-interval",
            "500",
            "--in-flight-eviction",
        ],
    );
    let direct = blis(&args);
    assert!(direct.status.success(), "{}", String::from_utf8_lossy(&direct.stderr));
    let mut dump = args.clone();
    dump.push("--dump-config");
    let yaml = blis(&dump);
    assert!(yaml.status.success());
    let text = String::from_utf8_lossy(&yaml.stdout).to_string();
    for key in ["flow-control: true", "slo-targets:", "request-ttl: 4000000", "fairness-policy: round-robin"]
    {
        assert!(text.contains(key), "{key} missing from\n{text}");
    }
    let file = s.dir.join("fc.yaml");
    std::fs::write(&file, &yaml.stdout).unwrap();
    let again = blis(&["run", "--config", file.to_str().unwrap(), "--progress", "never"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(String::from_utf8_lossy(&direct.stdout), String::from_utf8_lossy(&again.stdout));
}

/// A request's own `slo_target_us` (trace column, or a workload client's key) is its deadline
/// under `slo-deadline`, before any class target: with every request of one class and tenant,
/// the half that has a 1 ms target is dispatched ahead of the half without one.
#[test]
fn per_request_slo_targets_order_slo_deadline_dispatch() {
    let dir = tempfile::tempdir().unwrap();
    let header = common::write(
        dir.path(),
        "t.yaml",
        "trace_version: \"2\"\ntime_unit: microseconds\nmode: generated\n",
    );
    let mut csv = String::from("request_id,input_tokens,output_tokens,arrival_time_us,slo_target_us\n");
    for i in 0..200u64 {
        let target = if i % 2 == 0 { "1000" } else { "" };
        csv.push_str(&format!("{i},512,128,{},{target}\n", i * 2000));
    }
    let data = common::write(dir.path(), "t.csv", &csv);
    let mean_ttft = |order: &str| -> (f64, f64) {
        let results = dir.path().join(format!("{order}.json"));
        let out = blis(&[
            "replay",
            "--model",
            common::MODEL,
            "--hardware",
            "H100",
            "--tp",
            "1",
            "--trace-header",
            &header,
            "--trace-data",
            &data,
            "--flow-control",
            "--saturation-detector",
            "concurrency",
            "--max-concurrency",
            "4",
            "--dispatch-order",
            order,
            "--results-path",
            results.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let records: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(results).unwrap()).unwrap();
        let mean = |even: bool| {
            let v: Vec<f64> = records
                .iter()
                .filter(|r| (r["request_id"].as_u64().unwrap() % 2 == 0) == even)
                .map(|r| r["ttft_ms"].as_f64().unwrap())
                .collect();
            assert_eq!(v.len(), 100);
            v.iter().sum::<f64>() / v.len() as f64
        };
        (mean(true), mean(false))
    };
    let (fifo_targeted, fifo_rest) = mean_ttft("fifo");
    let (targeted, rest) = mean_ttft("slo-deadline");
    assert!(
        (fifo_targeted / fifo_rest - 1.0).abs() < 0.1,
        "fifo ignores targets: {fifo_targeted} vs {fifo_rest}"
    );
    assert!(targeted < 0.6 * rest, "targeted first: {targeted} vs {rest}");
    assert!(targeted < fifo_targeted && rest > fifo_rest);
}
