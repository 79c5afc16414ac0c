//! Fleets of several models: each request is routed among the pools serving the model it
//! names, requests naming a model no pool serves are rejected and counted, and the document
//! gains one section per model.

mod common;

use common::{MODEL, blis, run_ok, u, write};
use serde_json::Value;

const FLEET: &str = "pools: [{name: llama, model: meta-llama/llama-3.1-8b-instruct, instances: 2}, \
                     {name: qwen, model: Qwen/Qwen2.5-7B-Instruct, instances: 1}]\n\
                     routing-policy: least-loaded\n";

fn spec(clients: &[(&str, f64)]) -> String {
    let mut s = String::from("version: \"2\"\nseed: 7\naggregate_rate: 30\nnum_requests: 300\nclients:\n");
    for (model, share) in clients {
        s.push_str(&format!(
            "  - id: {}\n    model: {model}\n    rate_fraction: {share}\n    arrival: {{process: poisson}}\n    \
             input_distribution: {{type: constant, params: {{value: 128}}}}\n    \
             output_distribution: {{type: constant, params: {{value: 32}}}}\n",
            model.replace('/', "-")
        ));
    }
    s
}

#[test]
fn every_request_is_served_by_its_models_pool() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "fleet.yaml", &format!("model: {MODEL}\n{FLEET}"));
    let workload =
        write(dir.path(), "w.yaml", &spec(&[("llama-3.1-8b-instruct", 0.6), ("qwen2.5-7b-instruct", 0.4)]));
    let trace = dir.path().join("t");
    let doc = run_ok(&[
        "run",
        "--config",
        &config,
        "--workload-spec",
        &workload,
        "--trace-output",
        trace.to_str().unwrap(),
        "--progress",
        "never",
    ]);
    assert_eq!(u(&doc, "completed_requests"), 300);
    assert_eq!(u(&doc, "unserved_model_rejections"), 0);
    let per_model = doc["per_model"].as_object().expect("per_model section");
    assert_eq!(per_model.len(), 2, "{per_model:?}");
    let llama = &per_model["llama-3.1-8b-instruct"];
    let qwen = &per_model["qwen2.5-7b-instruct"];
    assert_eq!(u(llama, "completed_requests") + u(qwen, "completed_requests"), 300);
    // Pool by pool: the llama pool's instances completed exactly the llama requests.
    let instances = doc["instances"].as_array().unwrap();
    let llama_done: u64 = instances[..2].iter().map(|d| u(d, "completed_requests")).sum();
    let qwen_done = u(&instances[2], "completed_requests");
    assert_eq!(llama_done, u(llama, "completed_requests"));
    assert_eq!(qwen_done, u(qwen, "completed_requests"));
    // The exported trace names each request's model; count them against the pools.
    let csv = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "model").expect("model column");
    let (mut l, mut q) = (0u64, 0u64);
    for line in lines {
        match line.split(',').nth(col).unwrap() {
            "llama-3.1-8b-instruct" => l += 1,
            "qwen2.5-7b-instruct" => q += 1,
            other => panic!("unexpected model {other}"),
        }
    }
    assert_eq!((l, q), (llama_done, qwen_done));
    assert!(l > 100 && q > 60, "{l} {q}");

    // Replaying the trace routes the same way.
    let replay = run_ok(&[
        "replay",
        "--config",
        &config,
        "--workload-trace",
        dir.path().join("t.csv").to_str().unwrap(),
        "--progress",
        "never",
    ]);
    assert_eq!(u(&replay["per_model"]["qwen2.5-7b-instruct"], "completed_requests"), qwen_done);
}

#[test]
fn a_model_no_pool_serves_is_rejected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "fleet.yaml", &format!("model: {MODEL}\n{FLEET}"));
    let workload = write(
        dir.path(),
        "w.yaml",
        &spec(&[("qwen2.5-7b-instruct", 0.5), ("mistral-nemo-instruct-2407", 0.5)]),
    );
    let out = blis(&["run", "--config", &config, "--workload-spec", &workload, "--progress", "never"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clients[1].model mistral-nemo-instruct-2407: no pool serves it"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rejected = u(&doc, "unserved_model_rejections");
    assert!(rejected > 100, "{doc}");
    assert_eq!(u(&doc, "rejected_requests"), rejected);
    assert_eq!(u(&doc, "completed_requests") + rejected, 300);
    assert_eq!(u(&doc["per_model"]["llama-3.1-8b-instruct"], "completed_requests"), 0);
}

#[test]
fn a_single_model_fleet_ignores_request_models() {
    // The same spec against one model: no per_model section, names are not checked.
    let dir = tempfile::tempdir().unwrap();
    let workload = write(dir.path(), "w.yaml", &spec(&[("something-else", 1.0)]));
    let out = blis(&[
        "run",
        "--model",
        MODEL,
        "--num-instances",
        "2",
        "--workload-spec",
        &workload,
        "--progress",
        "never",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clients[0].model something-else: the fleet serves only"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&doc, "completed_requests"), 300);
    assert!(doc.get("per_model").is_none() && doc.get("unserved_model_rejections").is_none());
}

#[test]
fn a_workload_without_models_is_refused_by_a_multi_model_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "fleet.yaml", &format!("model: {MODEL}\n{FLEET}"));
    let workload = write(
        dir.path(),
        "w.yaml",
        &(spec(&[("qwen2.5-7b-instruct", 0.5)])
            + "  - id: anon\n    rate_fraction: 0.5\n    arrival: {process: poisson}\n    \
               input_distribution: {type: constant, params: {value: 16}}\n    \
               output_distribution: {type: constant, params: {value: 4}}\n"),
    );
    let out = blis(&["run", "--config", &config, "--workload-spec", &workload, "--progress", "never"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clients[1] names no model, and the pools serve several"), "{stderr}");
}
