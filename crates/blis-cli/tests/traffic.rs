//! Traffic control from the command line: closed-loop virtual users (`--concurrency`,
//! `--think-time-ms`, `--think-time-dist`).

mod common;

use std::path::Path;
use std::process::Output;

use common::{blis, run_ok, with_model};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit status 2 and one line on stderr containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let out: Output = blis(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

/// (arrival, completion) of each completed request, in µs.
fn spans(records: &Value) -> Vec<(u64, u64)> {
    records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "completed")
        .map(|r| {
            let a = (r["arrived_at_s"].as_f64().unwrap() * 1e6).round() as u64;
            let e = (r["e2e_ms"].as_f64().unwrap() * 1e3).round() as u64;
            (a, a + e)
        })
        .collect()
}

/// Most requests in flight at once (a request leaving at t and one arriving at t do not overlap).
fn max_in_flight(spans: &[(u64, u64)]) -> usize {
    let mut events: Vec<(u64, i32)> = spans.iter().flat_map(|&(a, c)| [(a, 1), (c, -1)]).collect();
    events.sort(); // departures (-1) before arrivals (+1) at the same time
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn closed_loop_users_bound_throughput_and_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    for (users, think_ms) in [(6u32, 200u64), (3, 0)] {
        let results = dir.path().join(format!("r{users}.json"));
        let (u, t) = (users.to_string(), think_ms.to_string());
        let doc = run_ok(&with_model(&[
            "--workload",
            "chatbot",
            "--concurrency",
            &u,
            "--think-time-ms",
            &t,
            "--num-requests",
            "240",
            "--results-path",
            s(&results),
        ]));
        assert_eq!(doc["completed_requests"], 240);
        let records: Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
        let spans = spans(&records);
        assert_eq!(spans.len(), 240);
        assert_eq!(max_in_flight(&spans), users as usize, "{users} users");
        // Each user completes one request per (latency + think): throughput is N / (E2E + think).
        let e2e_s = doc["e2e_mean_ms"].as_f64().unwrap() / 1e3;
        let bound = f64::from(users) / (e2e_s + think_ms as f64 / 1e3);
        let rps = doc["responses_per_sec"].as_f64().unwrap();
        assert!(rps <= bound * 1.02, "{rps} req/s above {bound}");
        assert!(rps >= bound * 0.9, "{rps} req/s well below {bound}");
        if think_ms == 0 {
            // Without think time every user always has a request in flight until its last one.
            let mut by_user_end: Vec<u64> = spans.iter().map(|s| s.1).collect();
            by_user_end.sort_unstable();
            let first_idle = by_user_end[by_user_end.len() - users as usize];
            for probe in (0..first_idle).step_by(50_000) {
                let n = spans.iter().filter(|&&(a, c)| a <= probe && probe < c).count();
                assert_eq!(n, users as usize, "at {probe} µs");
            }
        }
    }
}

#[test]
fn think_time_distributions_and_horizon_bounded_runs() {
    // A horizon alone bounds a closed-loop run; requests stop arriving at it.
    let doc = run_ok(&with_model(&[
        "--concurrency",
        "4",
        "--think-time-dist",
        "lognormal:mu=-1.5,sigma=0.5,min=50ms,max=2s",
        "--prompt-tokens",
        "200",
        "--output-tokens",
        "50",
        "--horizon",
        "20s",
    ]));
    let injected = doc["injected_requests"].as_u64().unwrap();
    assert!(injected > 40, "{injected} requests in 20 s");
    // The same run is reproducible.
    let again = run_ok(&with_model(&[
        "--concurrency",
        "4",
        "--think-time-dist",
        "lognormal:mu=-1.5,sigma=0.5,min=50ms,max=2s",
        "--prompt-tokens",
        "200",
        "--output-tokens",
        "50",
        "--horizon",
        "20s",
    ]));
    assert_eq!(common::metrics(doc), common::metrics(again));
}

#[test]
fn closed_loop_flags_refuse_conflicts_in_one_line() {
    let m = |extra: &[&'static str]| with_model(extra);
    refused(
        &m(&["--concurrency", "4", "--rate", "3", "--num-requests", "5"]),
        "mutually exclusive with --rate",
    );
    refused(&m(&["--concurrency", "4"]), "needs --num-requests or --horizon");
    refused(&m(&["--think-time-ms", "5"]), "--think-time-ms: needs --concurrency");
    refused(&m(&["--concurrency", "0", "--think-time-dist", "constant:value=1s"]), "needs --concurrency");
    refused(
        &m(&[
            "--concurrency",
            "2",
            "--num-requests",
            "5",
            "--think-time-ms",
            "1",
            "--think-time-dist",
            "constant:value=1ms",
        ]),
        "--think-time-dist: mutually exclusive with --think-time-ms",
    );
    refused(
        &m(&["--concurrency", "2", "--num-requests", "5", "--think-time-dist", "gamma:k=2"]),
        "--think-time-dist: unknown think-time distribution \"gamma\"",
    );
    refused(
        &m(&["--concurrency", "2", "--num-requests", "5", "--workload", "general"]),
        "--concurrency: not available",
    );
    refused(&m(&["--concurrency", "-1", "--num-requests", "5"]), "--concurrency");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.yaml");
    std::fs::write(&spec, "num_requests: 5\nclients:\n  - {id: a, concurrency: 2}\n").unwrap();
    refused(
        &with_model(&["--concurrency", "2", "--workload-spec", s(&spec)]),
        "set clients[].concurrency in the spec instead",
    );
}

#[test]
fn closed_loop_runs_round_trip_through_dump_config() {
    let dir = tempfile::tempdir().unwrap();
    let args = with_model(&[
        "--workload",
        "summarization",
        "--concurrency",
        "3",
        "--think-time-ms",
        "250",
        "--num-requests",
        "30",
        "--progress",
        "never",
    ]);
    let direct = blis(&args);
    assert!(direct.status.success());
    let mut dump = args.clone();
    dump.push("--dump-config");
    let yaml = blis(&dump).stdout;
    let text = String::from_utf8_lossy(&yaml);
    assert!(text.contains("concurrency: 3") && text.contains("think-time-ms: 250"), "{text}");
    assert!(!text.contains("rate:") && !text.contains("arrival-process"), "{text}");
    let file = dir.path().join("c.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let again = blis(&["run", "--config", s(&file), "--progress", "never"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(direct.stdout, again.stdout);
}

#[test]
fn a_closed_loop_run_exports_a_trace_that_replays() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("users");
    let doc = run_ok(&with_model(&[
        "--concurrency",
        "5",
        "--think-time-ms",
        "30",
        "--num-requests",
        "60",
        "--trace-output",
        s(&prefix),
    ]));
    let header = dir.path().join("users.yaml");
    let text = std::fs::read_to_string(&header).unwrap();
    assert!(!text.contains("concurrency") && !text.contains("think-time"), "{text}");
    let replayed =
        run_ok(&["replay", "--trace-header", s(&header), "--trace-data", s(&dir.path().join("users.csv"))]);
    assert_eq!(replayed["completed_requests"], doc["completed_requests"]);
    assert_eq!(replayed["e2e_mean_ms"], doc["e2e_mean_ms"]);
}

/// An overloaded run: 40 req/s on one instance that completes about 9.
fn overloaded(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = with_model(&["--rate", "40", "--num-requests", "400", "--progress", "never"])
        .into_iter()
        .map(String::from)
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run_strings(args: &[String]) -> Value {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok(&a)
}

#[test]
fn several_detectors_report_every_verdict_and_write_the_per_event_report() {
    let dir = tempfile::tempdir().unwrap();
    let one = run_strings(&overloaded(&["--detectors", "threshold"]));
    assert!(one["saturation"].get("verdicts").is_none(), "{}", one["saturation"]);
    let report = dir.path().join("sat.json");
    let all = run_strings(&overloaded(&["--detectors", "all", "--saturation-report", s(&report)]));
    let sat = &all["saturation"];
    let verdicts = sat["verdicts"].as_object().unwrap();
    assert_eq!(verdicts.keys().collect::<Vec<_>>(), ["backlog-drift", "composite", "threshold"]);
    assert_eq!(verdicts["threshold"]["verdict"], one["saturation"]["verdict"]);
    assert_eq!(verdicts["threshold"]["score"], one["saturation"]["score"]);
    // The top-level verdict is the most severe one.
    let worst = verdicts
        .values()
        .map(|v| v["verdict"].as_str().unwrap())
        .max_by_key(|v| ["STABLE", "BACKLOGGED", "OVERLOADED"].iter().position(|x| x == v))
        .unwrap();
    assert_eq!(sat["verdict"], worst);
    assert_eq!(all["config"]["post-hoc-detector"], "all");
    // The report: the final verdicts and one record per event (arrival or completion) and detector.
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for (name, v) in verdicts {
        assert_eq!(r["final"][name], v["verdict"], "{name}");
    }
    let events = 400 + all["completed_requests"].as_u64().unwrap();
    assert_eq!(r["trace"].as_array().unwrap().len() as u64, 3 * events);
    assert!(r["trace"].as_array().unwrap().iter().all(|t| t["result"]["level"].is_string()));
    // Order and repeats in the list do not matter.
    let a = run_strings(&overloaded(&["--detectors", "threshold,composite,threshold"]));
    let b = run_strings(&overloaded(&["--post-hoc-detector", "composite,threshold"]));
    assert_eq!(a, b);
    assert_eq!(a["saturation"]["verdicts"].as_object().unwrap().len(), 2);
}

#[test]
fn saturation_flags_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("sat.json");
    let m = |extra: &[&str]| overloaded(extra);
    let check = |args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&a, needle);
    };
    check(m(&["--saturation-report", s(&report)]), "--saturation-report: needs --detectors");
    check(m(&["--detectors", "composite,all"]), "cannot be combined");
    check(m(&["--detectors", "drift"]), "unknown detector \"drift\"");
    check(m(&["--detectors", ","]), "selects no detector");
    assert!(!report.exists());
    let config = dir.path().join("sat.yaml");
    std::fs::write(&config, "backlog_drift: {window_size_sec: 5}\n").unwrap();
    check(m(&["--detectors", "composite", "--saturation-config", s(&config)]), "has a backlog_drift: block");
    std::fs::write(&config, "backlog_drift: {peak_ratio: 2}\n").unwrap();
    check(m(&["--detectors", "backlog-drift", "--saturation-config", s(&config)]), "peak_ratio");
    // A tuned threshold changes the threshold verdict.
    std::fs::write(&config, "threshold: {threshold_ms: 100}\n").unwrap();
    let tuned = run_strings(&m(&["--detectors", "threshold", "--saturation-config", s(&config)]));
    assert_eq!(tuned["saturation"]["verdict"], "OVERLOADED");
    std::fs::write(&config, "threshold: {threshold_ms: 1000000}\n").unwrap();
    let lax = run_strings(&m(&["--detectors", "threshold", "--saturation-config", s(&config)]));
    assert_eq!(lax["saturation"]["verdict"], "STABLE");
    // A configured backlog-drift window is every detector's final window (as in the reference),
    // unless --saturation-final-window says otherwise.
    std::fs::write(&config, "backlog_drift: {window_size_sec: 2}\n").unwrap();
    let configured = run_strings(&m(&["--detectors", "all", "--saturation-config", s(&config)]));
    let explicit = run_strings(&m(&[
        "--detectors",
        "all",
        "--saturation-config",
        s(&config),
        "--saturation-final-window",
        "2",
    ]));
    let plain = run_strings(&m(&["--detectors", "composite"]));
    assert_eq!(configured["saturation"], explicit["saturation"]);
    assert_ne!(configured["saturation"]["verdicts"]["composite"]["score"], plain["saturation"]["score"]);
}

/// A small ServeGen directory: `n` chunks active in every period on two days.
fn servegen_dir(dir: &Path, n: usize) {
    for i in 0..n {
        let mut trace = String::from("start,rate,cv,pattern,shape,scale\n");
        for day in 0..2i64 {
            for w in [0i64, 600, 1200, 28_800, 29_400, 30_000, 50_400, 51_000, 51_600] {
                let start = day * 86_400 + w;
                trace.push_str(&format!("{start},{},1.5,Gamma,0.44,4.5\n", 0.2 + 0.1 * i as f64));
            }
        }
        std::fs::write(dir.join(format!("chunk-{i}-trace.csv")), trace).unwrap();
        let dataset =
            r#"{"0": {"input_tokens": "{100: 0.5, 400: 0.5}", "output_tokens": "{20: 0.5, 60: 0.5}"}}"#;
        std::fs::write(dir.join(format!("chunk-{i}-dataset.json")), dataset).unwrap();
    }
}

#[test]
fn convert_servegen_prints_a_spec_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sg");
    std::fs::create_dir(&data).unwrap();
    servegen_dir(&data, 6);
    let out = blis(&["convert", "servegen", "--path", s(&data), "--window-duration-seconds", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("cohorts:") && yaml.contains("morning-critical"), "{yaml}");
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, &yaml).unwrap();
    let doc = run_ok(&with_model(&["--workload-spec", s(&spec)]));
    let n = doc["injected_requests"].as_u64().unwrap();
    assert!(n > 50, "{n} requests");
    // The same as running the directory itself (`servegen_data:`) with the same settings.
    let inline = dir.path().join("inline.yaml");
    std::fs::write(
        &inline,
        format!(
            "version: \"2\"\nseed: 42\nhorizon: {}\nservegen_data: {{path: {:?}, window_duration_secs: 60, drain_timeout_secs: 180}}\n",
            (2 * (60 + 180) + 60) * 1_000_000i64,
            s(&data)
        ),
    )
    .unwrap();
    let direct = run_ok(&with_model(&["--workload-spec", s(&inline)]));
    for key in ["injected_requests", "total_input_tokens", "ttft_mean_ms"] {
        assert_eq!(doc[key], direct[key], "{key}");
    }
    // --time keeps one period; --output writes the file.
    let morning = dir.path().join("morning.yaml");
    let out =
        blis(&["convert", "servegen", "--path", s(&data), "--time", "morning", "--output", s(&morning)]);
    assert!(out.status.success() && out.stdout.is_empty());
    let text = std::fs::read_to_string(&morning).unwrap();
    assert!(text.contains("morning-") && !text.contains("midnight-"), "{text}");
    // Errors: one line, exit 2.
    refused(&["convert", "servegen", "--path", s(&dir.path().join("none"))], "--path");
    refused(&["convert", "servegen", "--path", s(dir.path())], "--path: ");
    refused(&["convert", "servegen", "--path", s(&data), "--window-duration-seconds", "0"], "must be > 0");
    refused(&["convert", "servegen", "--path", s(&data), "--time", "noon"], "--time");
}

#[test]
fn convert_inference_perf_writes_clients_that_run() {
    let dir = tempfile::tempdir().unwrap();
    let ip = dir.path().join("ip.yaml");
    std::fs::write(
        &ip,
        "version: \"2\"\nseed: 3\ninference_perf:\n  shared_prefix: {num_unique_system_prompts: 2, num_users_per_system_prompt: 3, \
         system_prompt_len: 64, question_len: 32, output_len: 16, enable_multi_turn_chat: true}\n  stages:\n    \
         - {rate: 2, duration: 20}\n    - {rate: 4, duration: 10}\n",
    )
    .unwrap();
    let out = blis(&["convert", "inference-perf", "--spec", s(&ip)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("stage-1-prompt-1-user-2"), "{yaml}");
    let spec = dir.path().join("clients.yaml");
    std::fs::write(&spec, &yaml).unwrap();
    let doc = run_ok(&with_model(&["--workload-spec", s(&spec)]));
    // Every round of every session: 2·20 + 4·10 requests, as the reference expansion sends them.
    assert_eq!(doc["injected_requests"], 80);
    let reference = run_ok(&with_model(&["--workload-spec", s(&ip), "--compat", "reference"]));
    assert_eq!(reference["injected_requests"], 80);
    std::fs::write(
        &ip,
        "version: \"2\"\naggregate_rate: 1\nnum_requests: 5\nclients:\n  - {id: a, rate_fraction: 1, \
         input_distribution: {type: constant, params: {value: 9}}, output_distribution: {type: constant, params: {value: 9}}}\n",
    )
    .unwrap();
    refused(&["convert", "inference-perf", "--spec", s(&ip)], "no inference_perf: section");
}

/// (session, round) → (request id, arrival µs) of an exported trace.
fn trace_rounds(csv: &Path) -> std::collections::BTreeMap<(String, u64), (u64, u64)> {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let (id, sid, round, arrival) =
        (col("request_id"), col("session_id"), col("round_index"), col("arrival_time_us"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[sid].to_string(), f[round].parse().unwrap()),
                (f[id].parse().unwrap(), f[arrival].parse().unwrap()),
            )
        })
        .collect()
}

#[test]
fn replay_session_mode_closed_loop_waits_for_each_response() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = d.join("mt.yaml");
    std::fs::write(
        &spec,
        "version: \"2\"\nseed: 5\naggregate_rate: 2\nnum_requests: 40\nclients:\n  - id: chat\n    rate_fraction: 1\n    \
         input_distribution: {type: constant, params: {value: 200}}\n    output_distribution: {type: constant, params: {value: 40}}\n    \
         reasoning:\n      multi_turn: {max_rounds: 4, think_time_us: 1000000, context_growth: accumulate}\n",
    )
    .unwrap();
    let recorded = d.join("rec");
    run_ok(&with_model(&["--workload-spec", s(&spec), "--trace-output", s(&recorded)]));
    let (header, data) = (d.join("rec.yaml"), d.join("rec.csv"));
    let original = trace_rounds(&data);
    let replay = |extra: &[&str], name: &str| {
        let prefix = d.join(name);
        let results = d.join(format!("{name}.json"));
        let mut args = vec![
            "replay",
            "--trace-header",
            s(&header),
            "--trace-data",
            s(&data),
            "--trace-output",
            s(&prefix),
            "--results-path",
            s(&results),
        ];
        args.extend_from_slice(extra);
        let doc = run_ok(&args);
        let records: Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
        let e2e: std::collections::HashMap<u64, u64> = records
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (r["request_id"].as_u64().unwrap(), (r["e2e_ms"].as_f64().unwrap() * 1e3).round() as u64)
            })
            .collect();
        (doc, trace_rounds(&d.join(format!("{name}.csv"))), e2e)
    };
    // Fixed (the default): every row at its recorded time.
    let (_, fixed, _) = replay(&[], "fixed");
    assert_eq!(
        fixed.values().map(|v| v.1).collect::<Vec<_>>(),
        original.values().map(|v| v.1).collect::<Vec<_>>()
    );
    // Closed loop: round r+1 leaves 3 s after round r's response.
    let (doc, closed, e2e) = replay(&["--session-mode", "closed-loop", "--think-time-ms", "3000"], "closed");
    assert_eq!(doc["injected_requests"].as_u64().unwrap() as usize, original.len());
    let mut checked = 0;
    for ((sid, round), &(id, arrival)) in &closed {
        if *round == 0 {
            assert_eq!(arrival, original[&(sid.clone(), 0)].1, "round 0 as recorded");
            continue;
        }
        let (prev_id, prev_arrival) = closed[&(sid.clone(), round - 1)];
        assert_eq!(arrival, prev_arrival + e2e[&prev_id] + 3_000_000, "{sid} round {round} (request {id})");
        checked += 1;
    }
    assert!(checked >= 20, "{checked} later rounds");
    // Without a think time flag, the recorded gaps are the think times.
    let (_, recorded_gaps, _) = replay(&["--session-mode", "closed-loop"], "gaps");
    assert_eq!(recorded_gaps.len(), original.len());
    // Think-time flags need closed-loop sessions; --session-mode needs a trace.
    let base = ["replay", "--trace-header", s(&header), "--trace-data", s(&data)];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter().chain(extra.iter()).map(|x| x.to_string()).collect()
    };
    for (args, needle) in [
        (with(&["--think-time-ms", "5"]), "--think-time-ms: needs --session-mode closed-loop"),
        (
            with(&["--session-mode", "fixed", "--think-time-dist", "constant:value=1s"]),
            "needs --session-mode closed-loop",
        ),
        (
            with(&["--session-mode", "closed-loop", "--think-time-dist", "constant:value=-1s"]),
            "--think-time-dist",
        ),
        (with(&["--session-mode", "open"]), "--session-mode"),
        (with(&["--concurrency", "3"]), "--concurrency"),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&a, needle);
    }
    refused(
        &with_model(&["--session-mode", "closed-loop"]),
        "--session-mode: applies to a replayed trace only",
    );
}
