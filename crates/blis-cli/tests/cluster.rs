//! End-to-end tests of cluster mode (admission, routing, scorers, decision traces, policy
//! bundles) through the built binary.

mod common;

use common::{assert_conserved, blis, f, run_ok, u, with_model, write};

use serde_json::Value;

/// The seed example of the cluster guide.
const SEED_EXAMPLE: &[&str] = &[
    "--num-instances",
    "4",
    "--rate",
    "100",
    "--num-requests",
    "500",
    "--trace-level",
    "decisions",
    "--summarize-trace",
    "--counterfactual-k",
    "3",
];

fn seed_example(extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = with_model(SEED_EXAMPLE);
    v.extend_from_slice(extra);
    v
}

/// Asserts a clean one-line error naming `flag`, exit code 2, and no panic.
fn assert_rejected(args: &[&str], flag: &str) {
    let out = blis(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "blis {args:?} should fail; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic on {args:?}: {stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(error_lines.len(), 1, "expected one error line for {args:?}, got: {stderr}");
    assert!(error_lines[0].contains(flag), "error for {args:?} should name {flag}: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout when failing");
}

/// 16 clients, each with its own 2048-token system prompt and a short question.
fn prefix_groups_spec() -> String {
    let mut s = String::from("version: \"2\"\nseed: 11\naggregate_rate: 20\nnum_requests: 300\nclients:\n");
    for g in 0..16 {
        s.push_str(&format!(
            "  - id: c{g}\n    rate_fraction: 1\n    prefix_group: g{g}\n    prefix_length: 2048\n    \
             input_distribution: {{type: constant, params: {{value: 64}}}}\n    \
             output_distribution: {{type: constant, params: {{value: 32}}}}\n"
        ));
    }
    s
}

/// Half critical, half sheddable traffic at a rate two instances cannot keep up with.
const CLASSES_SPEC: &str = r#"
version: "2"
seed: 5
aggregate_rate: 150
num_requests: 400
clients:
  - id: gold
    slo_class: critical
    rate_fraction: 1
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 128, min: 16, max: 2048}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 64, min: 8, max: 1024}}
  - id: bulk
    slo_class: sheddable
    rate_fraction: 1
    input_distribution: {type: gaussian, params: {mean: 512, std_dev: 128, min: 16, max: 2048}}
    output_distribution: {type: gaussian, params: {mean: 256, std_dev: 64, min: 8, max: 1024}}
"#;

fn class_completed(doc: &Value, class: &str) -> u64 {
    let per_class = doc["per_class"].as_object().expect("per_class present");
    per_class.get(class).map_or(0, |c| u(c, "completed_requests"))
}

#[test]
fn seed_example_round_robin_has_regret_weighted_has_none() {
    for policy in ["round-robin", "least-loaded", "weighted", "always-busiest"] {
        let doc = run_ok(&seed_example(&["--routing-policy", policy]));
        assert_eq!(u(&doc, "completed_requests"), 500, "{policy}");
        assert_conserved(&doc);
        let t = &doc["trace_summary"];
        assert_eq!(u(t, "total_decisions"), 500, "{policy}");
        assert_eq!(u(t, "admitted"), 500, "{policy}");
        let dist: Vec<u64> =
            t["target_distribution"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(dist.len(), 4);
        assert_eq!(dist.iter().sum::<u64>(), 500, "{policy}: {dist:?}");
        let (mean, max) = (f(t, "mean_regret"), f(t, "max_regret"));
        match policy {
            "round-robin" => {
                assert_eq!(dist, [125; 4]);
                assert!(mean > 0.0 && max > 0.0, "round-robin regret {mean}/{max}");
            }
            "least-loaded" | "weighted" => {
                assert_eq!((mean, max), (0.0, 0.0), "{policy} picks the best candidate");
                assert_eq!(u(t, "unique_targets"), 4, "{policy}");
            }
            _ => {
                assert_eq!(dist[0], 500, "always-busiest piles onto the first instance");
                assert!(max > 0.0);
            }
        }
    }
    // The default routing policy is round-robin.
    let default = blis(&seed_example(&[]));
    let rr = blis(&seed_example(&["--routing-policy", "round-robin"]));
    assert_eq!(default.stdout, rr.stdout);
}

#[test]
fn prefix_aware_routing_beats_round_robin_on_shared_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "prefix.yaml", &prefix_groups_spec());
    let run = |extra: &[&str]| {
        let mut args = with_model(&["--num-instances", "4", "--workload-spec", &spec]);
        args.extend_from_slice(extra);
        let doc = run_ok(&args);
        assert_eq!(u(&doc, "completed_requests"), 300);
        doc
    };
    let rr = run(&["--routing-policy", "round-robin"]);
    for scorers in
        ["", "prefix-affinity:3,load-balance:1", "precise-prefix-cache:1,no-hit-lru:1,queue-depth:1"]
    {
        let mut extra = vec!["--routing-policy", "weighted"];
        if !scorers.is_empty() {
            extra.extend_from_slice(&["--routing-scorers", scorers]);
        }
        let w = run(&extra);
        let (hit_rr, hit_w) = (f(&rr, "cache_hit_rate"), f(&w, "cache_hit_rate"));
        let (ttft_rr, ttft_w) = (f(&rr, "ttft_mean_ms"), f(&w, "ttft_mean_ms"));
        assert!(hit_w > hit_rr + 0.05, "{scorers:?}: hit rate {hit_w} vs round-robin {hit_rr}");
        assert!(ttft_w < ttft_rr, "{scorers:?}: TTFT {ttft_w} vs round-robin {ttft_rr}");
    }
}

#[test]
fn token_bucket_rejects_some_and_conserves() {
    let base = [
        "--num-instances",
        "4",
        "--rate",
        "100",
        "--num-requests",
        "400",
        "--admission-policy",
        "token-bucket",
        "--token-bucket-capacity",
        "3000",
        "--token-bucket-refill-rate",
        "20000",
    ];
    let doc = run_ok(&with_model(&base));
    let rejected = u(&doc, "rejected_requests");
    assert_eq!(u(&doc, "injected_requests"), 400);
    assert!(rejected > 0 && rejected < 400, "rejected {rejected}");
    assert_eq!(u(&doc, "completed_requests"), 400 - rejected);
    assert_eq!(doc["shed_by_tier"]["standard"].as_u64(), Some(rejected), "rejections by class");
    assert_conserved(&doc);
    // Cut by a horizon: requests are left everywhere, and every one is still accounted for.
    let mut cut = with_model(&base);
    cut.extend_from_slice(&["--horizon", "2500000"]);
    let doc = run_ok(&cut);
    assert!(u(&doc, "rejected_requests") > 0);
    assert!(u(&doc, "still_running") > 0);
    assert_conserved(&doc);
    // Per-instance documents never count rejections.
    let per_instance: u64 =
        doc["instances"].as_array().unwrap().iter().map(|i| u(i, "injected_requests")).sum();
    assert_eq!(
        per_instance + u(&doc, "rejected_requests") + u(&doc, "in_transit_requests"),
        u(&doc, "injected_requests")
    );
}

#[test]
fn reject_all_rejects_everything_and_single_instance_skips_admission() {
    let doc = run_ok(&with_model(&[
        "--num-instances",
        "3",
        "--num-requests",
        "50",
        "--admission-policy",
        "reject-all",
        "--summarize-trace",
    ]));
    assert_eq!(u(&doc, "rejected_requests"), 50);
    assert_eq!(u(&doc, "completed_requests"), 0);
    assert_eq!(u(&doc["trace_summary"], "rejected"), 50);
    assert_conserved(&doc);
    // One instance: no admission, no routing; policies do not change a byte.
    let plain = blis(&with_model(&["--num-requests", "50", "--rate", "20"]));
    let single = blis(&with_model(&[
        "--num-instances",
        "1",
        "--num-requests",
        "50",
        "--rate",
        "20",
        "--admission-policy",
        "reject-all",
        "--routing-policy",
        "always-busiest",
    ]));
    assert!(plain.status.success() && single.status.success());
    // Only the recorded configuration says that the policies were asked for.
    let metrics = |out: &std::process::Output| {
        let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_object_mut().unwrap().remove("config");
        v
    };
    assert_eq!(metrics(&plain), metrics(&single));
    let warnings = String::from_utf8_lossy(&single.stderr);
    assert!(warnings.contains("--admission-policy: no effect with one instance"), "{warnings}");
}

#[test]
fn tier_shed_and_gaie_shed_only_sheddable_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "classes.yaml", CLASSES_SPEC);
    let tier = write(dir.path(), "tier.yaml", "admission:\n  policy: tier-shed\n  tier_shed_threshold: 20\n");
    let gaie = write(dir.path(), "gaie.yaml", "admission:\n  policy: gaie-legacy\n  gaie_qd_threshold: 1\n");
    let base =
        with_model(&["--num-instances", "2", "--workload-spec", &spec, "--snapshot-refresh-interval", "0"]);
    let open = run_ok(&base);
    assert_eq!(u(&open, "rejected_requests"), 0);
    let critical = class_completed(&open, "critical");
    for bundle in [&tier, &gaie] {
        let mut args = base.clone();
        args.extend_from_slice(&["--policy-config", bundle]);
        let doc = run_ok(&args);
        assert!(u(&doc, "rejected_requests") > 0, "{bundle}");
        assert_eq!(class_completed(&doc, "critical"), critical, "{bundle}: critical traffic is never shed");
        assert!(class_completed(&doc, "sheddable") < class_completed(&open, "sheddable"));
        assert_conserved(&doc);
    }
}

#[test]
fn every_policy_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "classes.yaml", CLASSES_SPEC);
    let prefix = write(dir.path(), "prefix.yaml", &prefix_groups_spec());
    let mut runs: Vec<Vec<&str>> = Vec::new();
    for routing in ["round-robin", "least-loaded", "weighted", "always-busiest"] {
        runs.push(vec!["--routing-policy", routing, "--workload-spec", &prefix]);
    }
    for scorer in [
        "precise-prefix-cache:1",
        "prefix-affinity:1",
        "no-hit-lru:1",
        "queue-depth:1",
        "kv-utilization:1",
        "load-balance:1",
        "active-requests:1",
        "running-requests:1",
        "load-aware:1",
        "vllm-dp:1",
    ] {
        runs.push(vec![
            "--routing-policy",
            "weighted",
            "--routing-scorers",
            scorer,
            "--workload-spec",
            &prefix,
        ]);
    }
    for admission in ["always-admit", "token-bucket", "reject-all", "tier-shed", "gaie-legacy"] {
        runs.push(vec![
            "--admission-policy",
            admission,
            "--workload-spec",
            &spec,
            "--routing-policy",
            "least-loaded",
        ]);
    }
    for extra in runs {
        let mut args = with_model(&["--num-instances", "3", "--num-requests", "150", "--summarize-trace"]);
        args.extend_from_slice(&extra);
        let a = blis(&args);
        let b = blis(&args);
        assert!(a.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&a.stderr));
        assert_eq!(a.stdout, b.stdout, "{extra:?} is not deterministic");
    }
}

#[test]
fn policy_bundle_fills_unset_flags_and_explicit_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = write(
        dir.path(),
        "policies.yaml",
        "admission:\n  policy: reject-all\nrouting:\n  policy: always-busiest\n  scorers:\n    \
         - {name: queue-depth, weight: 1}\nscheduler: sjf\npreemption: priority\npriority_policy: constant\n",
    );
    let base = with_model(&[
        "--num-instances",
        "3",
        "--num-requests",
        "60",
        "--summarize-trace",
        "--policy-config",
        &bundle,
    ]);
    let doc = run_ok(&base);
    assert_eq!(u(&doc, "rejected_requests"), 60, "bundle admission applies");
    let mut args = base.clone();
    args.extend_from_slice(&["--admission-policy", "always-admit"]);
    let doc = run_ok(&args);
    assert_eq!(u(&doc, "rejected_requests"), 0, "explicit flag wins");
    assert_eq!(doc["trace_summary"]["target_distribution"][0], 60, "bundle routing applies");
    args.extend_from_slice(&["--routing-policy", "round-robin"]);
    let doc = run_ok(&args);
    assert_eq!(doc["trace_summary"]["target_distribution"], serde_json::json!([20, 20, 20]));
}

#[test]
fn bad_cluster_input_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write(dir.path(), "typo.yaml", "routing:\n  polcy: weighted\n");
    let bad_scorer =
        write(dir.path(), "scorer.yaml", "routing:\n  scorers:\n    - {name: nope, weight: 1}\n");
    fn n4<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = with_model(&["--num-instances", "4", "--num-requests", "10"]);
        v.extend_from_slice(extra);
        v
    }
    assert_rejected(&n4(&["--routing-policy", "fastest"]), "--routing-policy");
    assert_rejected(&n4(&["--admission-policy", "bouncer"]), "--admission-policy");
    assert_rejected(
        &n4(&["--routing-policy", "weighted", "--routing-scorers", "magic:1"]),
        "--routing-scorers",
    );
    assert_rejected(
        &n4(&["--routing-policy", "weighted", "--routing-scorers", "queue-depth"]),
        "--routing-scorers",
    );
    assert_rejected(
        &n4(&["--routing-policy", "weighted", "--routing-scorers", "queue-depth:x"]),
        "--routing-scorers",
    );
    assert_rejected(
        &n4(&["--routing-policy", "weighted", "--routing-scorers", "queue-depth:-1"]),
        "--routing-scorers",
    );
    assert_rejected(
        &n4(&["--routing-policy", "weighted", "--routing-scorers", "queue-depth:0"]),
        "--routing-scorers",
    );
    assert_rejected(&n4(&["--routing-scorers", "queue-depth:1,queue-depth:2"]), "--routing-scorers");
    assert_rejected(&n4(&["--admission-latency", "-5"]), "--admission-latency");
    assert_rejected(&n4(&["--routing-latency", "-1"]), "--routing-latency");
    assert_rejected(&n4(&["--snapshot-refresh-interval", "-1"]), "--snapshot-refresh-interval");
    assert_rejected(&n4(&["--cache-signal-delay", "-1"]), "--cache-signal-delay");
    assert_rejected(&n4(&["--counterfactual-k", "5", "--trace-level", "decisions"]), "--counterfactual-k");
    assert_rejected(
        &n4(&["--admission-policy", "token-bucket", "--token-bucket-capacity", "0"]),
        "--token-bucket-capacity",
    );
    assert_rejected(&n4(&["--token-bucket-refill-rate", "-2"]), "--token-bucket-refill-rate");
    assert_rejected(&n4(&["--token-bucket-capacity", "inf"]), "--token-bucket-capacity");
    assert_rejected(&n4(&["--trace-level", "everything"]), "--trace-level");
    assert_rejected(&n4(&["--policy-config", &typo]), "polcy");
    assert_rejected(
        &n4(&["--policy-config", &bad_scorer]),
        "routing.scorers: entry 0: unknown scorer 'nope'",
    );
    assert_rejected(&n4(&["--policy-config", "/nonexistent/policies.yaml"]), "--policy-config");
}

#[test]
fn decision_trace_path_writes_one_json_line_per_decision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let p = path.to_str().unwrap();
    let args =
        ["--num-instances", "3", "--rate", "50", "--num-requests", "40", "--routing-policy", "weighted"];
    let mut with_trace = with_model(&args);
    with_trace.extend_from_slice(&["--decision-trace-path", p, "--counterfactual-k", "2"]);
    run_ok(&with_trace);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 40);
    for (k, record) in lines.iter().enumerate() {
        assert!(record["time_us"].as_u64().is_some());
        assert!(record["request_id"].as_u64().is_some());
        let chosen = record["chosen"].as_u64().unwrap() as usize;
        let scores = record["scores"].as_array().unwrap();
        assert_eq!(scores.len(), 3, "decision {k}");
        let best = scores.iter().map(|s| s.as_f64().unwrap()).fold(f64::MIN, f64::max);
        assert_eq!(scores[chosen].as_f64().unwrap(), best, "weighted picks the argmax");
        assert_eq!(record["candidates"].as_array().unwrap().len(), 2);
    }
}
