//! Steady-state honesty: every run's verdict, the stderr warnings, warm-up exclusion, goodput
//! fields (the reference simulator's names), durations with units.

mod common;

use common::{blis, run_ok, with_model};
use serde_json::Value;

fn run_with_stderr(args: &[&str]) -> (Value, String) {
    let out = blis(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_overloaded_run_warns_and_says_why() {
    // One instance, 200 req/s of chatbot traffic (capacity ≈ 33 req/s), 10 s deadlines.
    let (doc, err) = run_with_stderr(&with_model(&[
        "--workload",
        "chatbot",
        "--rate",
        "200",
        "--num-requests",
        "2000",
        "--timeout",
        "10s",
        "--post-hoc-detector",
        "backlog-drift",
    ]));
    let s = &doc["steady_state"];
    assert_eq!(s["verdict"], "overloaded", "{s}");
    assert!(s["reasons"].to_string().contains("timed out"), "{s}");
    assert_eq!(err.lines().filter(|l| l.starts_with("warning: the run is overloaded")).count(), 1, "{err}");
    // The detector no longer calls a run with timeouts stable.
    assert_eq!(doc["saturation"]["verdict"], "OVERLOADED", "{}", doc["saturation"]);
    assert!(doc["timed_out_requests"].as_u64().unwrap() > 100);
}

#[test]
fn a_short_run_warns_that_its_percentiles_are_thin() {
    let (doc, err) = run_with_stderr(&with_model(&["--rate", "5", "--num-requests", "40"]));
    assert_eq!(doc["steady_state"]["verdict"], "too-short", "{}", doc["steady_state"]);
    let reasons = doc["steady_state"]["reasons"].to_string();
    assert!(reasons.contains("p99 from 40 requests"), "{reasons}");
    assert!(err.contains("warning: the run is too short for its percentiles"), "{err}");
}

#[test]
fn a_steady_run_is_stable_and_silent() {
    let (doc, err) =
        run_with_stderr(&with_model(&["--workload", "chatbot", "--rate", "10", "--num-requests", "1500"]));
    assert_eq!(doc["steady_state"]["verdict"], "stable", "{}", doc["steady_state"]);
    assert!(!err.contains("warning"), "{err}");
    // Throughput over the steady window is the offered rate, not diluted by the drain.
    let rps = doc["responses_per_sec"].as_f64().unwrap();
    let offered = doc["steady_state"]["offered_rps"].as_f64().unwrap();
    assert!((rps / offered - 1.0).abs() < 0.05, "{rps} vs {offered}");
    assert!(doc["responses_per_sec_incl_drain"].as_f64().unwrap() <= rps * 1.05);
}

#[test]
fn warmup_requests_leave_the_latency_figures() {
    let base = with_model(&["--rate", "20", "--num-requests", "300"]);
    let all = run_ok(&base);
    let mut args = base.clone();
    args.extend(["--warmup-requests", "100"]);
    let warm = run_ok(&args);
    let s = &warm["steady_state"];
    assert_eq!(s["ttft_samples"], 200);
    assert_eq!(s["warmup"]["excluded_completions"], 100);
    assert_eq!(warm["completed_requests"], all["completed_requests"]);
    assert_ne!(warm["ttft_mean_ms"], all["ttft_mean_ms"]);
    let mut args = base.clone();
    args.extend(["--warmup-s", "2s"]);
    let by_time = run_ok(&args);
    assert_eq!(by_time["steady_state"]["warmup"]["until_s"], 2.0);
    assert!(by_time["steady_state"]["ttft_samples"].as_u64().unwrap() < 300);
}

#[test]
fn goodput_fields_follow_the_reference() {
    let doc = run_ok(&with_model(&[
        "--workload",
        "chatbot",
        "--rate",
        "20",
        "--num-requests",
        "500",
        "--slo-ttft",
        "default=100ms",
        "--slo-e2e",
        "default=20s",
        "--slo",
        "ttft_p99<=1s,e2e_mean<=30s",
    ]));
    let c = &doc["per_class"]["default"];
    assert_eq!(c["count"], 500);
    let att = c["slo_attainment"].as_f64().unwrap();
    assert!(att > 0.0 && att <= 1.0, "{c}");
    let dims = c["slo_attainment_by_dim"].as_object().unwrap();
    assert_eq!(dims.keys().collect::<Vec<_>>(), ["e2e", "ttft"]);
    assert!(c["goodput_rps"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["slo_attainment"], c["slo_attainment"]);
    assert_eq!(doc["goodput_rps"], c["goodput_rps"]);
    let objectives = doc["slo"]["objectives"].as_array().unwrap();
    assert_eq!(objectives.len(), 2);
    assert_eq!(objectives[0]["metric"], "ttft_p99_ms");
    // Flags name what is wrong.
    let out = blis(&with_model(&["--slo-ttft", "gold=1s"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--slo-ttft") && err.contains("unknown class 'gold'"), "{err}");
}

#[test]
fn durations_take_units_and_plain_numbers_keep_theirs() {
    let base = with_model(&["--rate", "50", "--num-requests", "400"]);
    let a = run_ok(&[base.clone(), vec!["--horizon", "3s", "--timeout", "2m"]].concat());
    let b = run_ok(&[base.clone(), vec!["--horizon", "3000000", "--timeout", "120"]].concat());
    assert_eq!(common::metrics(a), common::metrics(b));
    let out = blis(&[base, vec!["--horizon", "3 parsecs"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--horizon"));
}
