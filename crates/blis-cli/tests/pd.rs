//! Prefill/decode disaggregation: a 2 prefill + 2 decode fleet against an aggregated fleet of
//! four on long prompts, the PD figures, pool roles in `pools:`, and refusals.

mod common;

use common::{MODEL, assert_conserved, blis, f, run_ok, u};
use serde_json::Value;

/// Long prompts, moderate outputs: prefill chunks interfere with decodes on shared instances.
const PREFILL_HEAVY: &[&str] = &[
    "--num-requests",
    "300",
    "--rate",
    "8",
    "--prompt-tokens",
    "4000",
    "--prompt-tokens-stdev",
    "500",
    "--prompt-tokens-min",
    "2000",
    "--prompt-tokens-max",
    "6000",
    "--output-tokens",
    "200",
    "--output-tokens-stdev",
    "50",
    "--output-tokens-min",
    "100",
    "--output-tokens-max",
    "300",
    "--routing-policy",
    "least-loaded",
    "--progress",
    "never",
];

fn run(extra: &[&str]) -> Value {
    let mut args = vec!["run", "--model", MODEL];
    args.extend_from_slice(PREFILL_HEAVY);
    args.extend_from_slice(extra);
    run_ok(&args)
}

#[test]
fn disaggregation_lowers_the_itl_tail_and_splits_ttft() {
    let agg = run(&["--num-instances", "4"]);
    let pd = run(&["--prefill-instances", "2", "--decode-instances", "2", "--pd-decider", "always"]);
    assert_conserved(&agg);
    assert_conserved(&pd);
    assert_eq!(u(&pd, "completed_requests"), 300);
    assert!(agg.get("pd").is_none(), "no PD section without disaggregation");
    // Decode instances never run a long prefill chunk beside their decodes.
    assert!(
        f(&pd, "itl_p99_ms") < 0.5 * f(&agg, "itl_p99_ms"),
        "PD ITL p99 {} vs aggregated {}",
        f(&pd, "itl_p99_ms"),
        f(&agg, "itl_p99_ms")
    );
    let p = &pd["pd"];
    assert_eq!(u(p, "disaggregated_requests"), 300);
    assert_eq!(u(p, "kv_transfers_completed"), 300);
    assert_eq!(u(p, "kv_transfers_started"), 300);
    // 128 KiB of KV per token (Llama-3.1-8B), whole 16-token blocks of ~4000-token prompts.
    let bytes = u(p, "kv_transfer_bytes") as f64;
    assert!(bytes > 300.0 * 2000.0 * 131072.0 && bytes < 300.0 * 6016.0 * 131072.0, "{bytes}");
    assert!(f(p, "transfer_duration_mean_ms") > 0.05);
    assert_eq!(f(p, "transfer_queueing_mean_ms"), 0.0, "no contention model by default");
    // Every request was disaggregated: its TTFT is the sum of the three components.
    let parts =
        f(p, "ttft_prefill_mean_ms") + f(p, "ttft_transfer_mean_ms") + f(p, "ttft_first_decode_mean_ms");
    assert!((parts - f(&pd, "ttft_mean_ms")).abs() < 1e-6 * parts, "{parts} vs {}", f(&pd, "ttft_mean_ms"));
    assert!((f(p, "parent_ttft_mean_ms") - parts).abs() < 1e-9 * parts);
    // Prefill instances complete no request; decode instances complete them all.
    let instances = pd["instances"].as_array().unwrap();
    let roles: Vec<&str> = instances.iter().map(|d| d["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["prefill", "prefill", "decode", "decode"]);
    assert_eq!(u(&instances[0], "completed_requests") + u(&instances[1], "completed_requests"), 0);
    assert_eq!(u(&instances[2], "completed_requests") + u(&instances[3], "completed_requests"), 300);
    // The prompt's input tokens are counted once, on the prefill side.
    assert_eq!(u(&pd, "total_input_tokens"), u(&agg, "total_input_tokens"));
}

#[test]
fn contention_shares_the_link_and_the_never_decider_keeps_requests_whole() {
    let slow = [
        "--prefill-instances",
        "2",
        "--decode-instances",
        "2",
        "--pd-decider",
        "always",
        "--pd-transfer-bandwidth",
        "2",
    ];
    let mut shared = slow.to_vec();
    shared.push("--pd-transfer-contention");
    let alone = run(&slow);
    let contended = run(&shared);
    assert_conserved(&contended);
    let (a, c) = (&alone["pd"], &contended["pd"]);
    assert_eq!(f(a, "transfer_queueing_mean_ms"), 0.0);
    assert!(f(c, "transfer_queueing_mean_ms") > 0.0, "{c}");
    assert!(f(c, "transfer_duration_mean_ms") > f(a, "transfer_duration_mean_ms"));
    assert!(u(c, "peak_concurrent_transfers") >= 2);
    assert!(f(c, "mean_transfer_queue_depth") > 1.0);

    // The reference's model: a transfer keeps the share it got when it started.
    let mut fixed = shared.clone();
    fixed.extend_from_slice(&["--compat", "reference"]);
    let fixed = run(&fixed);
    assert_conserved(&fixed);
    assert!(f(&fixed["pd"], "transfer_queueing_mean_ms") > 0.0);

    let never = run(&["--prefill-instances", "2", "--decode-instances", "2"]);
    assert_conserved(&never);
    assert_eq!(u(&never["pd"], "kv_transfers_started"), 0);
    let instances = never["instances"].as_array().unwrap();
    assert_eq!(u(&instances[0], "injected_requests") + u(&instances[1], "injected_requests"), 0);
}

#[test]
fn pool_roles_in_a_config_file_and_the_prefix_threshold_decider() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pd.yaml");
    std::fs::write(
        &path,
        format!(
            "model: {MODEL}\npd-decider: prefix-threshold\npd-prefix-threshold: 100000\npools:\n  \
             - {{name: p, role: prefill, instances: 1}}\n  - {{name: d, role: decode, instances: 1, tp: 2}}\n"
        ),
    )
    .unwrap();
    let mut args = vec!["run", "--config", path.to_str().unwrap()];
    args.extend_from_slice(PREFILL_HEAVY);
    let doc = run_ok(&args);
    assert_conserved(&doc);
    // No prompt has 100000 uncached tokens: nothing is split.
    assert_eq!(u(&doc["pd"], "disaggregated_requests"), 0);
    assert_eq!(doc["per_pool"][1]["role"], "decode");
}

#[test]
fn refusals_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--prefill-instances", "2"],
            "--prefill-instances: --prefill-instances and --decode-instances must both",
        ),
        (
            &["--prefill-instances", "2", "--decode-instances", "2", "--num-instances", "3"],
            "--num-instances: 3 is fewer",
        ),
        (
            &["--prefill-instances", "1", "--decode-instances", "1", "--pd-transfer-bandwidth", "0"],
            "--pd-transfer-bandwidth: must be a finite number > 0",
        ),
        (&["--decode-tp", "2"], "--decode-tp: needs --prefill-instances"),
        (&["--prefill-instances", "1", "--decode-instances", "1", "--pd-decider", "sometimes"], "sometimes"),
        (&["--pool", "name=a,instances=2,role=prefill"], "roles need a pool that prefills"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["run", "--model", MODEL];
        args.extend_from_slice(extra);
        let out = blis(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
}
