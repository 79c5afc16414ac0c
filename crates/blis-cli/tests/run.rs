//! End-to-end tests of `blis run` (the built binary).

mod common;

use common::{MODEL, blis, run_ok, with_model};

use serde_json::Value;

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

#[test]
fn documented_example_completes_every_request() {
    let doc = run_ok(&["run", "--model", MODEL, "--rate", "10", "--num-requests", "200"]);
    assert_eq!(doc["completed_requests"], 200);
    assert_eq!(doc["injected_requests"], 200);
    assert_eq!(doc["still_queued"], 0);
    assert_eq!(doc["still_running"], 0);
    for field in [
        "ttft_mean_ms",
        "ttft_p90_ms",
        "ttft_p95_ms",
        "ttft_p99_ms",
        "e2e_mean_ms",
        "e2e_p99_ms",
        "itl_mean_ms",
        "itl_p99_ms",
        "scheduling_delay_p99_ms",
        "responses_per_sec",
        "tokens_per_sec",
        "total_input_tokens",
        "total_output_tokens",
        "preemption_count",
        "dropped_unservable",
    ] {
        assert!(doc.get(field).is_some_and(Value::is_number), "missing numeric field {field}");
    }
    let ttft = doc["ttft_mean_ms"].as_f64().unwrap();
    let e2e = doc["e2e_mean_ms"].as_f64().unwrap();
    assert!(ttft > 0.0 && e2e > ttft);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let args = with_model(&["--rate", "30", "--num-requests", "150", "--seed", "7"]);
    let a = blis(&args);
    let b = blis(&args);
    assert_eq!(a.stdout, b.stdout);
    let c = blis(&with_model(&["--rate", "30", "--num-requests", "150", "--seed", "8"]));
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn metrics_and_results_files() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("m.json");
    let results = dir.path().join("r.json");
    let args = with_model(&[
        "--rate",
        "20",
        "--num-requests",
        "50",
        "--metrics-path",
        metrics.to_str().unwrap(),
        "--results-path",
        results.to_str().unwrap(),
    ]);
    let out = blis(&args);
    assert!(out.status.success());
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(stdout, file);
    let records: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(records.len(), 50);
    for r in &records {
        let ttft = r["ttft_ms"].as_f64().unwrap();
        let e2e = r["e2e_ms"].as_f64().unwrap();
        assert!(0.0 < ttft && ttft <= e2e);
    }
}

#[test]
fn tiny_cache_preempts_and_still_completes() {
    let doc = run_ok(&with_model(&["--rate", "50", "--num-requests", "60", "--total-kv-blocks", "120"]));
    assert!(doc["preemption_count"].as_u64().unwrap() > 0, "{doc}");
    let done = doc["completed_requests"].as_u64().unwrap() + doc["dropped_unservable"].as_u64().unwrap();
    assert_eq!(done, 60);
}

#[test]
fn requests_that_can_never_fit_are_dropped_not_hung() {
    let doc = run_ok(&with_model(&["--rate", "10", "--num-requests", "40", "--max-model-len", "600"]));
    let dropped = doc["dropped_unservable"].as_u64().unwrap();
    assert!(dropped > 0);
    assert_eq!(doc["completed_requests"].as_u64().unwrap() + dropped, 40);
}

#[test]
fn horizon_stops_the_run_and_conserves_requests() {
    let doc = run_ok(&with_model(&["--rate", "100", "--num-requests", "500", "--horizon", "2000000"]));
    let injected = doc["injected_requests"].as_u64().unwrap();
    let buckets: u64 = [
        "completed_requests",
        "still_queued",
        "still_running",
        "dropped_unservable",
        "timed_out_requests",
        "rejected_requests",
        "in_transit_requests",
    ]
    .iter()
    .map(|f| doc[*f].as_u64().unwrap())
    .sum();
    assert_eq!(injected, buckets);
    assert!(injected < 500);
    assert!(doc["vllm_estimated_duration_s"].as_f64().unwrap() <= 2.0);
}

#[test]
fn presets_run() {
    for preset in ["chatbot", "contentgen", "summarization", "multidoc"] {
        let doc = run_ok(&with_model(&["--workload", preset, "--rate", "2", "--num-requests", "10"]));
        assert_eq!(doc["completed_requests"], 10, "{preset}");
    }
}

#[test]
fn prefix_caching_skips_shared_prefill() {
    let base = with_model(&["--rate", "5", "--num-requests", "40", "--prefix-tokens", "256"]);
    let with = run_ok(&base);
    let mut off = base.clone();
    off.push("--no-prefix-caching");
    let without = run_ok(&off);
    assert!(with["prompt_tokens_computed"].as_u64() < without["prompt_tokens_computed"].as_u64());
    assert!(with["cache_hit_rate"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_is_one_clear_line() {
    let m = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["run", "--model", MODEL];
        v.extend_from_slice(extra);
        v
    };
    assert_rejected(&m(&["--rate", "0"]), "--rate");
    assert_rejected(&m(&["--rate", "-3"]), "--rate");
    assert_rejected(&m(&["--num-requests", "0"]), "--num-requests");
    assert_rejected(&m(&["--total-kv-blocks", "0"]), "--total-kv-blocks");
    assert_rejected(&m(&["--workload", "nonsense"]), "--workload");
    assert_rejected(&m(&["--workload-spec", "/nonexistent/spec.yaml"]), "spec.yaml");
    assert_rejected(&m(&["--max-num-scheduled-tokens", "8"]), "--max-num-scheduled-tokens");
    assert_rejected(&m(&["--scheduler", "lifo"]), "--scheduler");
    assert_rejected(&m(&["--preemption-policy", "random"]), "--preemption-policy");
    assert_rejected(&m(&["--hardware", "TPU"]), "--hardware");
    assert_rejected(&m(&["--tp", "0"]), "--tp");
    assert_rejected(&m(&["--gpu-memory-utilization", "1.5"]), "--gpu-memory-utilization");
    assert_rejected(&m(&["--latency-model", "magic"]), "magic");
    assert_rejected(&m(&["--timeout", "0"]), "--timeout");
    assert_rejected(&m(&["--arrival-process", "bursty"]), "--arrival-process");
    assert_rejected(&m(&["--timeseries-path", "ts.parquet"]), "--timeseries-path");
    assert_rejected(&["run", "--model", "nobody/unknown-model-xyz", "--rate", "1"], "--model");
}

#[test]
fn async_scheduling_delays_admission_by_one_step() {
    // A busy instance (steady decode batch), so arrivals usually land during a running step.
    let base = with_model(&["--rate", "20", "--num-requests", "300", "--seed", "3"]);
    let mut off = base.clone();
    off.extend_from_slice(&["--async-scheduling", "false"]);
    let mut on = base.clone();
    on.extend_from_slice(&["--async-scheduling", "true"]);
    let (off, on, default) = (run_ok(&off), run_ok(&on), run_ok(&base));
    assert_eq!(on, default, "async scheduling is the default");
    let f = |d: &Value, k: &str| d[k].as_f64().unwrap();
    let extra_ttft = f(&on, "ttft_mean_ms") - f(&off, "ttft_mean_ms");
    // About one step (≈ one ITL) more before the prefill step, never less.
    assert!(extra_ttft > 0.5 * f(&off, "itl_mean_ms"), "TTFT +{extra_ttft} ms");
    assert!(extra_ttft < 2.0 * f(&off, "itl_mean_ms"), "TTFT +{extra_ttft} ms");
}

#[test]
fn a_run_that_injects_nothing_says_so() {
    let out = blis(&with_model(&["--rate", "0.001", "--num-requests", "5", "--horizon", "1000000"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: no request arrived"), "{err}");
}

#[test]
fn absurd_rates_and_tp_sizes_are_refused_with_the_flag() {
    for (args, what) in [
        (&["--rate", "1e-300"][..], "--rate: a rate of 1e-300 req/s"),
        (&["--tp", "3"][..], "--tp: 3 does not divide the 32 attention heads"),
        (&["--tp", "1024"][..], "--tp: 1024 does not divide"),
        (&["--timeout", "1e13"][..], "--timeout: must be at most 100 years"),
        (&["--total-kv-blocks", "4294967295"][..], "--total-kv-blocks"),
        (&["--num-instances", "100000"][..], "--num-instances: 100000 instances"),
        (&["--output-tokens", "4294967295", "--prompt-tokens", "100"][..], "--output-tokens"),
    ] {
        let mut argv = vec!["run", "--model", MODEL];
        argv.extend_from_slice(args);
        let out = blis(&argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(what), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn every_document_carries_prediction_intervals_and_replicas_widen_them() {
    let one = run_ok(&with_model(&["--rate", "10", "--num-requests", "150"]));
    let pi = &one["prediction_interval"];
    for f in ["ttft_mean_ms", "e2e_mean_ms", "itl_mean_ms", "ttft_p99_ms", "e2e_p99_ms"] {
        let (lo, hi) = (pi[f][0].as_f64().unwrap(), pi[f][1].as_f64().unwrap());
        let x = one[f].as_f64().unwrap();
        assert!(lo <= x && x <= hi && lo < hi, "{f}: {lo} {x} {hi}");
    }
    assert_eq!(pi["replicas"], 1);
    assert_eq!(pi["widening"], 1.0, "H100 TP1 dense GQA is inside the calibration envelope");
    assert!(one.get("replicas").is_none());
    let four = run_ok(&with_model(&["--rate", "10", "--num-requests", "150", "--replicas", "4"]));
    assert_eq!(four["replicas"]["seeds"], serde_json::json!([42, 43, 44, 45]));
    assert_eq!(four["ttft_mean_ms"], one["ttft_mean_ms"], "the document is the base seed's");
    let width = |d: &Value, f: &str| {
        d["prediction_interval"][f][1].as_f64().unwrap() - d["prediction_interval"][f][0].as_f64().unwrap()
    };
    assert!(width(&four, "e2e_mean_ms") > width(&one, "e2e_mean_ms"));
    assert!(four["replicas"]["e2e_mean_ms"]["stdev"].as_f64().unwrap() > 0.0);
    // Outside the calibration envelope (an unseen GPU) the model error is widened.
    let a100 =
        run_ok(&["run", "--model", MODEL, "--hardware", "A100-80", "--rate", "5", "--num-requests", "50"]);
    assert!(a100["prediction_interval"]["widening"].as_f64().unwrap() > 1.0);
    // Deterministic, replicas included.
    let again = run_ok(&with_model(&["--rate", "10", "--num-requests", "150", "--replicas", "4"]));
    assert_eq!(four, again);
}

/// NumPy "linear" percentile of sorted values.
fn numpy_linear(sorted: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Default percentiles come from sketches within 1/256 of the exact ones; `--exact-percentiles`
/// gives the NumPy-linear percentiles of the per-request values; counts and means are exact in
/// both modes, and `--compat reference` implies exact percentiles.
#[test]
fn sketch_percentiles_are_within_their_bound_of_exact_ones() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("records.json");
    let base = ["--num-instances", "3", "--rate", "60", "--num-requests", "900", "--progress", "never"];
    let sketch = common::metrics(run_ok(&with_model(&base)));
    let mut args = with_model(&base);
    args.extend(["--exact-percentiles", "--results-path", results.to_str().unwrap()]);
    let exact = common::metrics(run_ok(&args));
    let records: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let mut e2e: Vec<f64> = records.iter().filter_map(|r| r["e2e_ms"].as_f64()).collect();
    e2e.sort_by(f64::total_cmp);
    assert_eq!(e2e.len() as u64, common::u(&exact, "completed_requests"));
    for (p, key) in [(50.0, "e2e_p50_ms"), (90.0, "e2e_p90_ms"), (99.0, "e2e_p99_ms")] {
        let want = numpy_linear(&e2e, p);
        assert!((common::f(&exact, key) - want).abs() <= 1e-9 * want, "{key}: {} vs {want}", exact[key]);
    }
    let mut percentiles = 0;
    for (key, value) in exact.as_object().unwrap() {
        let Some(x) = value.as_f64() else { continue };
        let y = common::f(&sketch, key);
        if ["_p50_ms", "_p90_ms", "_p95_ms", "_p99_ms"].iter().any(|s| key.ends_with(s)) {
            assert!((x - y).abs() <= x / 256.0 + 1e-12, "{key}: sketch {y} vs exact {x}");
            percentiles += 1;
        } else if key != "per_instance" {
            assert_eq!(x, y, "{key} is exact in both modes");
        }
    }
    assert!(percentiles >= 13, "only {percentiles} percentiles compared");
    assert_ne!(exact["ttft_p99_ms"], sketch["ttft_p99_ms"], "the sketch is in use by default");
    let reference =
        run_ok(&with_model(&["--compat", "reference", "--num-requests", "5", "--progress", "never"]));
    assert_eq!(reference["config"]["exact-percentiles"], true);
}
