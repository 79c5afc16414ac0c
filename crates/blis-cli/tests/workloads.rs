//! End-to-end tests of workloads, schedulers and SLO classes: trace export and replay,
//! `convert` / `compose`, fitness and saturation analyses, and workload error reporting.

mod common;

use common::{MODEL, blis, metrics};

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn ok(args: &[&str]) -> Output {
    let out = blis(args);
    assert!(out.status.success(), "blis {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json(args: &[&str]) -> Value {
    serde_json::from_slice(&ok(args).stdout).expect("stdout is one JSON document")
}

/// `blis <sub> --model … <extra>`.
fn engine<'a>(sub: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![sub, "--model", MODEL, "--hardware", "H100", "--tp", "1"];
    v.extend_from_slice(extra);
    v
}

fn run(extra: &[&str]) -> Value {
    json(&engine("run", extra))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn records(path: &Path) -> Vec<Value> {
    serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn class<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["per_class"]
        .as_object()
        .unwrap_or_else(|| panic!("no per_class in {doc}"))
        .get(name)
        .unwrap_or_else(|| panic!("no class {name}"))
}

const GAUSS_512: &str = "{type: gaussian, params: {mean: 512, std_dev: 128, min: 64, max: 1024}}";
const GAUSS_128: &str = "{type: gaussian, params: {mean: 128, std_dev: 32, min: 16, max: 256}}";

/// Two tenants, a critical interactive client and a 3× larger batch client, at 40 req/s:
/// well beyond what one H100 with 32 sequences serves (~28 req/s).
fn two_class_spec() -> String {
    format!(
        r#"version: "2"
seed: 7
aggregate_rate: 40
num_requests: 600
clients:
  - id: interactive
    tenant_id: alice
    slo_class: critical
    rate_fraction: 1
    input_distribution: {GAUSS_512}
    output_distribution: {GAUSS_128}
  - id: bulk
    tenant_id: bob
    slo_class: batch
    rate_fraction: 3
    input_distribution: {GAUSS_512}
    output_distribution: {GAUSS_128}
"#
    )
}

#[test]
fn priority_fcfs_protects_the_critical_class_under_overload() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "two.yaml", &two_class_spec());
    let go = |sched: &str| {
        run(&[
            "--workload-spec",
            s(&spec),
            "--scheduler",
            sched,
            "--max-num-seqs",
            "32",
            "--progress",
            "never",
        ])
    };
    let (fcfs, prio) = (go("fcfs"), go("priority-fcfs"));
    // Same arrivals either way.
    for k in ["injected_requests", "completed_requests", "total_input_tokens", "total_output_tokens"] {
        assert_eq!(fcfs[k], prio[k], "{k}");
    }
    let (c_fcfs, c_prio) =
        (f(&class(&fcfs, "critical")["ttft_p99_ms"]), f(&class(&prio, "critical")["ttft_p99_ms"]));
    assert!(c_prio < c_fcfs / 2.0, "critical TTFT p99: priority-fcfs {c_prio} ms vs fcfs {c_fcfs} ms");
    // The batch class pays for it.
    assert!(f(&class(&prio, "batch")["ttft_mean_ms"]) > f(&class(&fcfs, "batch")["ttft_mean_ms"]));
    assert_eq!(
        class(&prio, "critical")["completed_requests"],
        class(&fcfs, "critical")["completed_requests"]
    );
}

#[test]
fn two_tenants_get_per_tenant_totals_and_a_fairness_index() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "two.yaml", &two_class_spec());
    let doc = run(&["--workload-spec", s(&spec), "--progress", "never"]);
    let tenants = doc["per_tenant"].as_array().expect("per_tenant");
    let ids: Vec<&str> = tenants.iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alice", "bob"]);
    let out: Vec<f64> = tenants.iter().map(|t| f(&t["output_tokens"])).collect();
    let requests: u64 = tenants.iter().map(|t| t["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, 600);
    let want = (out[0] + out[1]).powi(2) / (2.0 * (out[0] * out[0] + out[1] * out[1]));
    let jain = f(&doc["jain_fairness_index"]);
    assert!((jain - want).abs() < 1e-12 && jain > 0.5 && jain < 1.0, "{jain} vs {want}");
}

#[test]
fn sjf_lowers_mean_ttft_on_mixed_lengths_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "mixed.yaml",
        r#"version: "2"
seed: 11
aggregate_rate: 30
num_requests: 600
clients:
  - id: short
    rate_fraction: 1
    input_distribution: {type: constant, params: {value: 64}}
    output_distribution: {type: constant, params: {value: 64}}
  - id: long
    rate_fraction: 1
    input_distribution: {type: constant, params: {value: 3000}}
    output_distribution: {type: constant, params: {value: 64}}
"#,
    );
    let go = |sched: &str| run(&["--workload-spec", s(&spec), "--scheduler", sched, "--max-num-seqs", "16"]);
    let (fcfs, sjf) = (go("fcfs"), go("sjf"));
    assert_eq!(fcfs["completed_requests"], 600);
    assert_eq!(sjf["completed_requests"], 600);
    let (a, b) = (f(&fcfs["ttft_mean_ms"]), f(&sjf["ttft_mean_ms"]));
    assert!(b < 0.9 * a, "mean TTFT: sjf {b} ms vs fcfs {a} ms");
}

#[test]
fn bursty_gamma_arrivals_raise_ttft_tail_at_the_same_mean_rate() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |arrival: &str| {
        format!(
            r#"version: "2"
seed: 5
aggregate_rate: 12
num_requests: 1500
clients:
  - id: c
    rate_fraction: 1
    arrival: {arrival}
    input_distribution: {{type: constant, params: {{value: 512}}}}
    output_distribution: {{type: constant, params: {{value: 128}}}}
"#
        )
    };
    let poisson = write(dir.path(), "poisson.yaml", &spec("{process: poisson}"));
    let gamma = write(dir.path(), "gamma.yaml", &spec("{process: gamma, cv: 4}"));
    let (p, g) = (run(&["--workload-spec", s(&poisson)]), run(&["--workload-spec", s(&gamma)]));
    // Same mean rate: the run lengths agree to within sampling noise.
    let (dp, dg) = (f(&p["vllm_estimated_duration_s"]), f(&g["vllm_estimated_duration_s"]));
    assert!((dp - dg).abs() / dp < 0.25, "durations {dp} vs {dg}");
    let (tp, tg) = (f(&p["ttft_p99_ms"]), f(&g["ttft_p99_ms"]));
    assert!(tg > 1.5 * tp, "TTFT p99: gamma cv 4 {tg} ms vs poisson {tp} ms");
}

#[test]
fn accumulating_multi_turn_sessions_hit_the_prefix_cache() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |multi_turn: &str| {
        format!(
            r#"version: "2"
seed: 3
aggregate_rate: 2
num_requests: 200
clients:
  - id: chat
    rate_fraction: 1
    input_distribution: {{type: constant, params: {{value: 200}}}}
    output_distribution: {{type: constant, params: {{value: 50}}}}
{multi_turn}"#
        )
    };
    let multi = write(
        dir.path(),
        "multi.yaml",
        &spec(
            "    reasoning:\n      multi_turn: {max_rounds: 4, think_time_us: 500000, context_growth: accumulate}\n",
        ),
    );
    let single = write(dir.path(), "single.yaml", &spec(""));
    let (m, c) = (run(&["--workload-spec", s(&multi)]), run(&["--workload-spec", s(&single)]));
    // The reference's `num_requests`: sessions whose first round is among the first 200
    // stamped rounds complete whole (4 rounds each).
    let completed = m["completed_requests"].as_u64().unwrap();
    assert!(completed % 4 == 0 && (200..=260).contains(&completed), "{completed}");
    assert!(f(&m["cache_hit_rate"]) > 0.2, "{}", m["cache_hit_rate"]);
    assert!(m["prompt_tokens_cached"].as_u64().unwrap() > 10_000);
    assert_eq!(f(&c["cache_hit_rate"]), 0.0);
    assert_eq!(c["prompt_tokens_cached"], 0);
    // Later turns carry the whole history, so more prompt tokens enter in total.
    assert!(m["total_input_tokens"].as_u64() > c["total_input_tokens"].as_u64());
}

/// `run --export-workload-trace` then `replay` (and `run --workload-trace`) with the same flags:
/// identical per-request records.
fn assert_export_replay_identical(dir: &Path, workload: &[&str], flags: &[&str]) {
    let prefix = dir.join("exported");
    let (r1, r2, r3) = (dir.join("r1.json"), dir.join("r2.json"), dir.join("r3.json"));
    let mut a = engine("run", workload);
    a.extend_from_slice(flags);
    a.extend(["--export-workload-trace", s(&prefix), "--results-path", s(&r1)]);
    let original = json(&a);
    let (header, csv) = (dir.join("exported.yaml"), dir.join("exported.csv"));
    assert!(std::fs::read_to_string(&header).unwrap().contains("mode: generated"));

    let mut b = engine("replay", &["--trace-header", s(&header), "--trace-data", s(&csv)]);
    b.extend_from_slice(flags);
    b.extend(["--results-path", s(&r2)]);
    let replayed = json(&b);

    let mut c = engine("run", &["--workload-trace", s(&csv), "--trace-header", s(&header)]);
    c.extend_from_slice(flags);
    c.extend(["--results-path", s(&r3)]);
    let rerun = json(&c);

    let (x, y, z) = (records(&r1), records(&r2), records(&r3));
    assert!(!x.is_empty());
    assert_eq!(x, y, "replay differs from the original run");
    assert_eq!(x, z, "run --workload-trace differs from the original run");
    assert_eq!(metrics(original), metrics(replayed.clone()));
    assert_eq!(metrics(replayed), metrics(rerun));

    // The trace itself carries every request's arrival and token counts.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let cols: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    let mut rows = 0;
    for line in lines {
        let v: Vec<&str> = line.split(',').collect();
        let id: u64 = v[col("request_id")].parse().unwrap();
        let rec = x.iter().find(|r| r["request_id"] == id).expect("every exported request ran");
        let arrival: u64 = v[col("arrival_time_us")].parse().unwrap();
        assert_eq!((f(&rec["arrived_at_s"]) * 1e6).round() as u64, arrival);
        assert_eq!(
            rec["num_prefill_tokens"].as_u64().unwrap(),
            v[col("text_tokens")].parse::<u64>().unwrap()
        );
        if rec["outcome"] == "completed" {
            assert_eq!(
                rec["num_decode_tokens"].as_u64().unwrap(),
                v[col("output_tokens")].parse::<u64>().unwrap()
            );
        }
        rows += 1;
    }
    assert_eq!(rows, x.len());
}

#[test]
fn export_then_replay_reproduces_a_single_instance_run() {
    let dir = tempfile::tempdir().unwrap();
    assert_export_replay_identical(
        dir.path(),
        &["--workload", "chatbot", "--rate", "30", "--num-requests", "300", "--prefix-tokens", "64"],
        &["--max-num-seqs", "32"],
    );
}

#[test]
fn export_then_replay_reproduces_a_cluster_run_with_sessions_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "mix.yaml",
        &format!(
            r#"version: "2"
seed: 9
aggregate_rate: 25
num_requests: 400
clients:
  - id: chat
    tenant_id: t1
    slo_class: critical
    rate_fraction: 1
    prefix_group: sys
    prefix_length: 128
    input_distribution: {GAUSS_512}
    output_distribution: {GAUSS_128}
    reasoning:
      multi_turn: {{max_rounds: 3, think_time_us: 200000, context_growth: accumulate}}
  - id: bulk
    tenant_id: t2
    slo_class: batch
    rate_fraction: 2
    arrival: {{process: gamma, cv: 2}}
    input_distribution: {GAUSS_512}
    output_distribution: {GAUSS_128}
"#
        ),
    );
    assert_export_replay_identical(
        dir.path(),
        &["--workload-spec", s(&spec)],
        &["--num-instances", "3", "--routing-policy", "least-loaded", "--scheduler", "priority-fcfs"],
    );
}

#[test]
fn replay_of_a_reference_style_trace_keeps_arrivals_and_token_counts() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "ref.csv",
        "request_id,client_id,tenant_id,slo_class,session_id,round_index,prefix_group,prefix_length,streaming,input_tokens,output_tokens,arrival_time_us,send_time_us,deadline_us\n\
         0,a,t,critical,,0,sys,64,true,100,20,1000,1000,0\n\
         1,a,t,critical,,0,sys,64,true,150,30,5000,6000,0\n\
         2,b,u,batch,,0,,0,true,300,10,7000,0,0\n\
         3,b,u,batch,,0,,0,true,40,5,250000,250000,0\n",
    );
    let results = dir.path().join("r.json");
    let doc = json(&engine("replay", &["--trace-data", s(&csv), "--results-path", s(&results)]));
    assert_eq!(doc["completed_requests"], 4);
    let recs = records(&results);
    let got: Vec<(u64, u64, u64, u64)> = recs
        .iter()
        .map(|r| {
            (
                r["request_id"].as_u64().unwrap(),
                (f(&r["arrived_at_s"]) * 1e6).round() as u64,
                r["num_prefill_tokens"].as_u64().unwrap(),
                r["num_decode_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    // Injected at send_time_us (else arrival_time_us); the group prefix adds to input_tokens.
    assert_eq!(got, [(0, 1000, 164, 20), (1, 6000, 214, 30), (2, 7000, 300, 10), (3, 250_000, 40, 5)]);
    // Request 1 shares request 0's group prefix: four cached blocks.
    assert_eq!(recs[1]["cached_prompt_tokens"], 64);
    assert!(doc["per_class"].as_object().is_some_and(|c| c.len() == 2));
}

#[test]
fn fitness_and_saturation_appear_in_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "two.yaml", &two_class_spec());
    let overloaded = run(&[
        "--workload-spec",
        s(&spec),
        "--max-num-seqs",
        "32",
        "--fitness-weights",
        "p99_ttft:3,mean_e2e:1,throughput:2",
        "--post-hoc-detector",
        "composite",
    ]);
    let fit = &overloaded["fitness"];
    let c = &fit["components"];
    let rps = f(&overloaded["responses_per_sec"]);
    assert!((f(&c["throughput"]) - rps / (rps + 100.0)).abs() < 1e-12);
    assert!((f(&c["p99_ttft"]) - 1.0 / (1.0 + f(&overloaded["ttft_p99_ms"]))).abs() < 1e-12);
    assert!((f(&c["mean_e2e"]) - 1.0 / (1.0 + f(&overloaded["e2e_mean_ms"]))).abs() < 1e-12);
    let want = 3.0 * f(&c["p99_ttft"]) + f(&c["mean_e2e"]) + 2.0 * f(&c["throughput"]);
    assert!((f(&fit["score"]) - want).abs() < 1e-12);
    assert_eq!(overloaded["saturation"]["detector"], "composite");
    assert_eq!(overloaded["saturation"]["verdict"], "OVERLOADED");

    let light = run(&["--rate", "2", "--num-requests", "200", "--post-hoc-detector", "composite"]);
    assert_eq!(light["saturation"]["verdict"], "STABLE", "{}", light["saturation"]);
    assert!(light.get("fitness").is_none());
    for d in ["threshold", "backlog-drift"] {
        let doc = run(&["--rate", "2", "--num-requests", "200", "--detectors", d]);
        assert_eq!(doc["saturation"]["detector"], d);
        assert_eq!(doc["saturation"]["verdict"], "STABLE", "{d}: {}", doc["saturation"]);
    }
    // No per-request records are needed on disk for the detector.
    assert!(overloaded.get("requests").is_none());
}

/// Exit code 2, exactly one stderr line containing every `needle`, nothing on stdout, and
/// no output file created.
fn assert_fails(args: &[&str], needles: &[&str], files: &[&Path]) {
    let out = blis(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "blis {args:?} should fail; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one stderr line for {args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr for {args:?} should contain {n:?}: {stderr}");
    }
    assert!(out.stdout.is_empty());
    for f in files {
        assert!(!f.exists(), "{} was written", f.display());
    }
}

#[test]
fn malformed_workloads_fail_with_one_line_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (m, r) = (dir.path().join("metrics.json"), dir.path().join("results.json"));
    let outputs = ["--metrics-path", s(&m), "--results-path", s(&r)];
    let files = [m.as_path(), r.as_path()];
    let base = "version: \"2\"\naggregate_rate: 3\nnum_requests: 10\nclients:\n  - id: a\n    rate_fraction: 1\n    input_distribution: {type: constant, params: {value: 100}}\n    output_distribution: {type: constant, params: {value: 10}}\n";
    let cases = [
        ("indent.yaml", base.replace("    rate_fraction", "   rate_fraction"), ":6:", "clients[0]"),
        ("unknown.yaml", base.replace("rate_fraction", "rate_fractoin"), ":6:", "rate_fractoin"),
        ("neg_len.yaml", base.replace("value: 100", "value: -100"), ":7", "clients[0].input_distribution"),
        ("neg_rate.yaml", base.replace("aggregate_rate: 3", "aggregate_rate: -3"), ":2", "aggregate_rate"),
        (
            "neg_frac.yaml",
            base.replace("rate_fraction: 1", "rate_fraction: -1"),
            ":6",
            "clients[0].rate_fraction",
        ),
    ];
    for (name, text, line, field) in &cases {
        let spec = write(dir.path(), name, text);
        let mut a = engine("run", &["--workload-spec", s(&spec)]);
        a.extend_from_slice(&outputs);
        assert_fails(&a, &[name, line, field], &files);
    }
    let bad_csv = write(
        dir.path(),
        "bad.csv",
        "request_id,input_tokens,output_tokens,arrival_time_us\n0,10,5,0\n1,-4,5,7\n",
    );
    let short_csv = write(
        dir.path(),
        "short.csv",
        "request_id,input_tokens,output_tokens,arrival_time_us\n0,10,5,0\n1,4,5\n",
    );
    let bad_class = write(
        dir.path(),
        "class.csv",
        "request_id,input_tokens,output_tokens,arrival_time_us,slo_class\n0,10,5,0,gold\n",
    );
    for (csv, needles) in [
        (&bad_csv, ["bad.csv:3:2", "input_tokens"]),
        (&short_csv, ["short.csv:3", "malformed CSV"]),
        (&bad_class, ["class.csv:2", "slo_class"]),
    ] {
        let mut a = engine("replay", &["--trace-data", s(csv)]);
        a.extend_from_slice(&outputs);
        assert_fails(&a, &needles, &files);
        let mut a = engine("run", &["--workload-trace", s(csv)]);
        a.extend_from_slice(&outputs);
        assert_fails(&a, &needles, &files);
    }
    let header = write(dir.path(), "h.yaml", "trace_version: [\n");
    let mut a = engine("replay", &["--trace-header", s(&header), "--trace-data", s(&bad_csv)]);
    a.extend_from_slice(&outputs);
    assert_fails(&a, &["h.yaml:"], &files);
}

#[test]
fn bad_analysis_flags_and_conflicting_workloads_are_rejected_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("metrics.json");
    let files = [m.as_path()];
    let base = ["--metrics-path", s(&m)];
    for (flag, value, needle) in [
        ("--fitness-weights", "p99_itl:1", "unknown key 'p99_itl'"),
        ("--fitness-weights", "throughput:-1", "≥ 0"),
        ("--fitness-weights", "throughput:inf", "≥ 0"),
        ("--post-hoc-detector", "magic", "composite, threshold, backlog-drift"),
        ("--saturation-final-window", "-3", "> 0"),
    ] {
        let mut a = engine("run", &base);
        a.extend([flag, value]);
        if flag == "--saturation-final-window" {
            a.extend(["--post-hoc-detector", "composite"]);
        }
        let mut needles = vec![flag, needle];
        if flag == "--fitness-weights" {
            needles.extend(["throughput", "tokens_per_sec", "mean_e2e"]);
        }
        assert_fails(&a, &needles, &files);
    }
    let csv = write(dir.path(), "t.csv", "request_id,input_tokens,output_tokens,arrival_time_us\n0,10,5,0\n");
    let mut a = engine("run", &["--workload-trace", s(&csv), "--workload", "chatbot"]);
    a.extend_from_slice(&base);
    assert_fails(&a, &["--workload-trace", "mutually exclusive"], &files);
}

#[test]
fn convert_preset_round_trips_through_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chatbot.yaml");
    let stdout =
        ok(&["convert", "preset", "--name", "chatbot", "--rate", "5", "--num-requests", "50"]).stdout;
    let text = String::from_utf8(stdout).unwrap();
    assert!(text.contains("aggregate_rate: 5") && text.contains("num_requests: 50"), "{text}");
    ok(&[
        "convert",
        "preset",
        "--name",
        "chatbot",
        "--rate",
        "5",
        "--num-requests",
        "50",
        "--output",
        s(&out),
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let from_file = run(&["--workload-spec", s(&out)]);
    let from_preset = run(&["--workload", "chatbot", "--rate", "5", "--num-requests", "50"]);
    assert_eq!(metrics(from_file), metrics(from_preset));
    let e = blis(&["convert", "preset", "--name", "nonesuch", "--rate", "5", "--num-requests", "5"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--name"));
    let e = blis(&["convert", "preset", "--name", "chatbot", "--rate", "-5", "--num-requests", "5"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("--rate"));
}

#[test]
fn compose_merges_specs_keeping_absolute_rates() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    ok(&[
        "convert",
        "preset",
        "--name",
        "chatbot",
        "--rate",
        "6",
        "--num-requests",
        "120",
        "--output",
        s(&a),
    ]);
    ok(&[
        "convert",
        "preset",
        "--name",
        "summarization",
        "--rate",
        "2",
        "--num-requests",
        "40",
        "--output",
        s(&b),
    ]);
    let merged = dir.path().join("merged.yaml");
    ok(&["compose", "--from", s(&a), "--from", s(&b), "--output", s(&merged)]);
    let text = std::fs::read_to_string(&merged).unwrap();
    assert!(text.contains("aggregate_rate: 8"), "{text}");
    assert!(text.contains("num_requests: 160"), "{text}");
    assert!(text.contains("rate_fraction: 0.75") && text.contains("rate_fraction: 0.25"), "{text}");
    let stdout = String::from_utf8(ok(&["compose", "--from", s(&a), "--from", s(&b)]).stdout).unwrap();
    assert_eq!(stdout, text);
    let doc = run(&["--workload-spec", s(&merged)]);
    assert_eq!(doc["completed_requests"], 160);
    // An inference-perf spec cannot be composed; the error names its file.
    let ip = dir.path().join("ip.yaml");
    ok(&["convert", "preset", "--name", "general-lite", "--output", s(&ip)]);
    let e = blis(&["compose", "--from", s(&a), "--from", s(&ip)]);
    assert_eq!(e.status.code(), Some(2));
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("ip.yaml") && err.contains("inference_perf"), "{err}");
}

#[test]
fn replay_honours_policy_config_like_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "two.yaml", &two_class_spec());
    let prefix = dir.path().join("t");
    let with_flag = run(&[
        "--workload-spec",
        s(&spec),
        "--max-num-seqs",
        "32",
        "--scheduler",
        "priority-fcfs",
        "--export-workload-trace",
        s(&prefix),
    ]);
    let bundle = write(dir.path(), "policies.yaml", "scheduler: priority-fcfs\n");
    let csv = dir.path().join("t.csv");
    let replayed = json(&engine(
        "replay",
        &["--trace-data", s(&csv), "--max-num-seqs", "32", "--policy-config", s(&bundle)],
    ));
    assert_eq!(metrics(with_flag.clone()), metrics(replayed));
    let fcfs = json(&engine("replay", &["--trace-data", s(&csv), "--max-num-seqs", "32"]));
    assert_ne!(metrics(with_flag), metrics(fcfs));
}
