//! One run description for every entry point: `--dump-config` / `--config` round trips for run,
//! replay and sweep rows; the reference simulator's policy files; self-describing traces; layer
//! precedence; errors that name the file, line and key.

mod common;

use std::path::Path;
use std::process::Output;

use common::{MODEL, blis, metrics};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// `blis CMD ARGS --dump-config > c.yaml; blis run --config c.yaml` prints exactly what
/// `blis CMD ARGS` prints, without a warning.
fn assert_round_trip(dir: &Path, cmd: &str, args: &[&str]) {
    let mut base = vec![cmd];
    base.extend_from_slice(args);
    base.extend_from_slice(&["--progress", "never"]);
    let direct = ok(blis(&base));
    let mut dump = base.clone();
    dump.push("--dump-config");
    let yaml = ok(blis(&dump)).stdout;
    let file = dir.join(format!("{cmd}.yaml"));
    std::fs::write(&file, &yaml).unwrap();
    let again = ok(blis(&["run", "--config", s(&file), "--progress", "never"]));
    assert_eq!(
        String::from_utf8_lossy(&direct.stdout),
        String::from_utf8_lossy(&again.stdout),
        "{cmd} {args:?}\n{}",
        String::from_utf8_lossy(&yaml)
    );
    // No configuration warning (the steady-state verdict may warn about the run itself).
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.lines().all(|l| l.starts_with("warning: the run is")), "{err}");
}

#[test]
fn dump_config_round_trips_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A cluster with a built-in workload.
    let cluster = [
        "--model",
        MODEL,
        "--num-instances",
        "3",
        "--routing-policy",
        "weighted",
        "--routing-scorers",
        "prefix-affinity:3,queue-depth:1",
        "--workload",
        "chatbot",
        "--rate",
        "30",
        "--num-requests",
        "150",
        "--max-num-running-reqs",
        "64",
        "--alpha-coeffs",
        "1500,300,2.5",
        "--timeout",
        "-1",
    ];
    assert_round_trip(d, "run", &cluster);
    // A workload spec with its own seed, and a policy file.
    let spec = d.join("spec.yaml");
    std::fs::write(
        &spec,
        "version: \"2\"\nseed: 7\nnum_requests: 120\naggregate_rate: 25\nclients:\n  - id: a\n    \
         rate_fraction: 1\n    slo_class: batch\n    input_distribution: {type: gaussian, params: {mean: 300, std_dev: 50, min: 10, max: 600}}\n    \
         output_distribution: {type: exponential, params: {mean: 80}}\n",
    )
    .unwrap();
    let policy = d.join("policy.yaml");
    std::fs::write(&policy, "admission: {policy: tier-shed, tier_shed_threshold: 4}\nscheduler: sjf\n")
        .unwrap();
    let spec_run = [
        "--model",
        MODEL,
        "--num-instances",
        "2",
        "--workload-spec",
        s(&spec),
        "--policy-config",
        s(&policy),
    ];
    assert_round_trip(d, "run", &spec_run);
    // A replay of an exported trace.
    let prefix = d.join("exported");
    ok(blis(&[
        "run",
        "--model",
        MODEL,
        "--num-instances",
        "2",
        "--workload",
        "general-lite",
        "--num-requests",
        "200",
        "--trace-output",
        s(&prefix),
        "--progress",
        "never",
    ]));
    let (header, data) = (d.join("exported.yaml"), d.join("exported.csv"));
    assert_round_trip(d, "replay", &["--trace-header", s(&header), "--trace-data", s(&data)]);
}

#[test]
fn pools_round_trip_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Flags: pools inheriting some flat keys and overriding others.
    assert_round_trip(
        d,
        "run",
        &[
            "--model",
            MODEL,
            "--max-num-seqs",
            "64",
            "--routing-policy",
            "least-loaded",
            "--num-requests",
            "80",
            "--rate",
            "20",
            "--pool",
            "name=fast,hardware=H100,instances=2",
            "--pool",
            "name=slow,hardware=A100-80,instances=1,max-num-seqs=32,alpha-coeffs=1500:300:2.5,total-kv-blocks=4000",
        ],
    );
    // A config file's list of mappings.
    let file = d.join("fleet.yaml");
    std::fs::write(
        &file,
        format!(
            "model: {MODEL}\nnum-requests: 80\nrate: 20\npools:\n  - {{name: fast, hardware: H100, tp: 1, instances: 2}}\n  \
             - {{name: slow, hardware: A100-80, tp: 2, instances: 2, gpu-memory-utilization: 0.8, max-model-len: 8192}}\n"
        ),
    )
    .unwrap();
    assert_round_trip(d, "run", &["--config", s(&file)]);
}

#[test]
fn disaggregation_round_trips_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_round_trip(
        d,
        "run",
        &[
            "--model",
            MODEL,
            "--num-requests",
            "60",
            "--rate",
            "10",
            "--routing-policy",
            "least-loaded",
            "--prefill-instances",
            "2",
            "--decode-instances",
            "1",
            "--prefill-decode-instances",
            "1",
            "--decode-tp",
            "2",
            "--pd-decider",
            "prefix-threshold",
            "--pd-prefix-threshold",
            "64",
            "--pd-transfer-bandwidth",
            "5",
            "--pd-transfer-base-latency",
            "0.2",
            "--pd-transfer-contention",
            "--prefill-routing-scorers",
            "queue-depth:2,kv-utilization:1",
        ],
    );
    // Roles on `pools:` entries.
    let file = d.join("pd.yaml");
    std::fs::write(
        &file,
        format!(
            "model: {MODEL}\nnum-requests: 60\nrate: 10\npd-decider: always\npools:\n  \
             - {{name: p, role: prefill, hardware: H100, instances: 1}}\n  \
             - {{name: d, role: decode, hardware: A100-80, tp: 2, instances: 2}}\n"
        ),
    )
    .unwrap();
    assert_round_trip(d, "run", &["--config", s(&file)]);
}

#[test]
fn an_exported_trace_replays_alone_on_the_cluster_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("t");
    let original = ok(blis(&[
        "run",
        "--model",
        MODEL,
        "--num-instances",
        "3",
        "--routing-policy",
        "least-loaded",
        "--scheduler",
        "priority-fcfs",
        "--max-num-seqs",
        "24",
        "--workload",
        "chatbot",
        "--rate",
        "60",
        "--num-requests",
        "200",
        "--trace-output",
        s(&prefix),
        "--progress",
        "never",
    ]));
    let (header, data) = (dir.path().join("t.yaml"), dir.path().join("t.csv"));
    let text = std::fs::read_to_string(&header).unwrap();
    assert!(text.contains("routing-policy: least-loaded") && text.contains("max-num-seqs: 24"), "{text}");
    let replayed = ok(blis(&["replay", "--trace-header", s(&header), "--trace-data", s(&data)]));
    assert_eq!(metrics(doc(&original)), metrics(doc(&replayed)));
    assert_eq!(doc(&replayed)["instances"].as_array().unwrap().len(), 3);
    // A flag overrides the header, and says so.
    let two =
        ok(blis(&["replay", "--trace-header", s(&header), "--trace-data", s(&data), "--num-instances", "2"]));
    assert_eq!(doc(&two)["instances"].as_array().unwrap().len(), 2);
    let notice = String::from_utf8_lossy(&two.stderr);
    assert!(notice.contains("notice: --num-instances overrides the value recorded in"), "{notice}");
}

#[test]
fn the_reference_policy_examples_run() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    for (file, routing) in [
        ("policy-config.yaml", "round-robin"),
        ("weighted-routing.yaml", "weighted"),
        ("epp-estimate-prefix.yaml", "weighted"),
        ("epp-precise-prefix.yaml", "weighted"),
    ] {
        let path = format!("{examples}/{file}");
        let out = ok(blis(&[
            "run",
            "--model",
            MODEL,
            "--num-instances",
            "4",
            "--policy-config",
            &path,
            "--workload",
            "general-lite",
            "--num-requests",
            "120",
            "--trace-level",
            "decisions",
            "--summarize-trace",
            "--progress",
            "never",
        ]));
        let d = doc(&out);
        assert_eq!(d["completed_requests"], 120, "{file}");
        assert_eq!(d["config"]["routing-policy"], routing, "{file}");
        assert_eq!(d["config"]["priority-policy"], "constant", "{file}");
        assert!(d["trace_summary"].is_object(), "{file}");
    }
    // The reference's other bundle keys map onto run keys too.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.yaml");
    std::fs::write(
        &bundle,
        "admission:\n  policy: tier-shed\n  slo_priorities: {batch: 0}\n  slo_targets: {critical: 100000}\n\
         preemption:\n  policy: priority\ntenant_budgets: {alice: 0.3}\n",
    )
    .unwrap();
    let out = ok(blis(&[
        "run",
        "--model",
        MODEL,
        "--num-instances",
        "2",
        "--policy-config",
        s(&bundle),
        "--dump-config",
    ]));
    let yaml = String::from_utf8_lossy(&out.stdout);
    for line in ["admission-policy: tier-shed", "preemption-policy: priority", "batch: 0", "alice: 0.3"] {
        assert!(yaml.contains(line), "{line}: {yaml}");
    }
}

#[test]
fn flags_beat_policy_files_beat_config_files_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, "scheduler: sjf\nrouting: {policy: least-loaded}\n").unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "model: {MODEL}\nnum-instances: 2\nscheduler: priority-fcfs\nrouting-policy: always-busiest\n\
             admission-policy: token-bucket\npolicy-config: {}\n",
            s(&policy)
        ),
    )
    .unwrap();
    let dump = |extra: &[&str]| {
        let mut a = vec!["run", "--config", s(&config), "--dump-config"];
        a.extend_from_slice(extra);
        String::from_utf8(ok(blis(&a)).stdout).unwrap()
    };
    let y = dump(&[]);
    assert!(y.contains("scheduler: sjf"), "policy file over config file: {y}");
    assert!(y.contains("routing-policy: least-loaded"), "{y}");
    assert!(y.contains("admission-policy: token-bucket"), "config file over defaults: {y}");
    assert!(y.contains("max-num-seqs: 256"), "defaults: {y}");
    let y = dump(&["--scheduler", "fcfs", "--max-num-running-reqs", "9"]);
    assert!(y.contains("scheduler: fcfs") && y.contains("max-num-seqs: 9"), "flags over everything: {y}");
}

#[test]
fn sweep_rows_are_runs() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("g.yaml");
    std::fs::write(
        &grid,
        format!(
            "base: {{model: {MODEL}, workload: chatbot, rate: 40, num-requests: 80}}\n\
             axes:\n  - {{flag: num-instances, values: [1, 2]}}\n  - {{flag: max-num-running-reqs, values: [8, 64]}}\n"
        ),
    )
    .unwrap();
    let out_path = dir.path().join("rows.json");
    ok(blis(&["sweep", "--grid", s(&grid), "--output", s(&out_path), "--threads", "2"]));
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    for row in rows.as_array().unwrap() {
        let config = dir.path().join(format!("row{}.yaml", row["index"]));
        std::fs::write(&config, serde_saphyr::to_string(&row["run"]).unwrap()).unwrap();
        let run = doc(&ok(blis(&["run", "--config", s(&config), "--progress", "never"])));
        let mut cluster = metrics(run);
        let cluster = cluster.as_object_mut().unwrap();
        for key in [
            "per_class",
            "per_tenant",
            "jain_fairness_index",
            "instances",
            "trace_summary",
            "prediction_interval",
        ] {
            cluster.remove(key);
        }
        // A sweep row carries the steady-state verdict alone.
        let verdict = cluster["steady_state"]["verdict"].clone();
        cluster.insert("steady_state".into(), verdict);
        assert_eq!(&Value::Object(cluster.clone()), &row["metrics"], "row {}", row["index"]);
    }
}

#[test]
fn config_file_errors_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("model: m\nmax_num_seqs: 4\n", "line 2", "did you mean `max-num-seqs`"),
        ("model: m\nscheduler: lifo\n", "line 2", "scheduler"),
        ("model: m\ntp: -1\n", "line 2", "tp"),
        ("model: m\nrouting-scorers: [{name: nope, weight: 1}]\n", "line 2", "unknown scorer 'nope'"),
    ];
    for (i, (text, line, what)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        let out = blis(&["run", "--config", s(&path)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(s(&path)) && err.contains(line) && err.contains(what), "{text}: {err}");
    }
    // A semantic error names the key in the file that set it.
    let path = dir.path().join("sem.yaml");
    std::fs::write(&path, format!("model: {MODEL}\nmax-num-seqs: 0\n")).unwrap();
    let err = String::from_utf8_lossy(&blis(&["run", "--config", s(&path)]).stderr).to_string();
    assert!(err.contains(&format!("{}: max-num-seqs: must be at least 1", s(&path))), "{err}");
    // A flag alias is named as typed.
    let err =
        String::from_utf8_lossy(&blis(&["run", "--model", MODEL, "--max-num-running-reqs", "0"]).stderr)
            .to_string();
    assert!(err.contains("--max-num-running-reqs: must be at least 1"), "{err}");
}

#[test]
fn compat_reference_switches_the_documented_defaults() {
    let dump = |extra: &[&str]| {
        let mut a = vec!["run", "--model", MODEL, "--compat", "reference", "--dump-config"];
        a.extend_from_slice(extra);
        String::from_utf8(ok(blis(&a)).stdout).unwrap()
    };
    let y = dump(&[]);
    for line in [
        "latency-model: trained-physics",
        "async-scheduling: false",
        "arrival-process: constant",
        "compat: reference",
    ] {
        assert!(y.contains(line), "{line}: {y}");
    }
    // Flags still win.
    let y = dump(&["--latency-model", "blis-physics", "--async-scheduling", "true"]);
    assert!(y.contains("latency-model: blis-physics") && y.contains("async-scheduling: true"), "{y}");
    // The reference's KV-capacity formula (Llama-3.1-8B on one H100: 26 312 blocks).
    let run = doc(&ok(blis(&[
        "run",
        "--model",
        MODEL,
        "--compat",
        "reference",
        "--num-requests",
        "5",
        "--progress",
        "never",
    ])));
    assert_eq!(run["total_kv_blocks"], 26312);
    let blis_run = doc(&ok(blis(&["run", "--model", MODEL, "--num-requests", "5", "--progress", "never"])));
    assert_ne!(blis_run["total_kv_blocks"], 26312);
    // A policy file's priority policy has no effect in the reference, and says so.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    std::fs::write(&p, "priority: {policy: constant}\n").unwrap();
    let out = ok(blis(&[
        "run",
        "--model",
        MODEL,
        "--compat",
        "reference",
        "--policy-config",
        s(&p),
        "--num-requests",
        "5",
    ]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no effect under --compat reference"));
    assert_eq!(doc(&out)["config"]["priority-policy"], "slo-based");
}
