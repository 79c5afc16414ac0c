//! `blis observe` against an in-process mock OpenAI-compatible streaming server (no network
//! beyond 127.0.0.1), then `blis replay` of the trace it wrote.

mod common;

use std::path::Path;
use std::time::Duration;

use blis_observe::mock::{MockConfig, MockServer};
use blis_workload::trace::{TraceRecord, read_trace_header, read_trace_records};
use common::{MODEL, blis};

fn mock(fail_every: Option<u64>) -> MockServer {
    MockServer::start(MockConfig { chunk_delay: Duration::from_millis(1), fail_every }).expect("mock server")
}

/// Small requests: 4–32 prompt tokens, 2–8 output tokens.
const SMALL: [&str; 16] = [
    "--prompt-tokens",
    "16",
    "--prompt-tokens-stdev",
    "6",
    "--prompt-tokens-min",
    "4",
    "--prompt-tokens-max",
    "32",
    "--output-tokens",
    "5",
    "--output-tokens-stdev",
    "2",
    "--output-tokens-min",
    "2",
    "--output-tokens-max",
    "8",
];

fn observe(server: &str, dir: &Path, extra: &[&str]) -> (std::process::Output, Vec<String>) {
    let (h, d) = (dir.join("obs.yaml"), dir.join("obs.csv"));
    let mut args = vec!["observe", "--server-url", server, "--model", "mock-model"];
    args.extend_from_slice(&["--trace-header", h.to_str().unwrap(), "--trace-data", d.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let out = blis(&args);
    (out, vec![h.display().to_string(), d.display().to_string()])
}

fn ok_rows_are_consistent(rows: &[TraceRecord]) {
    for r in rows.iter().filter(|r| r.status == "ok") {
        assert!(r.send_time_us >= r.arrival_time_us, "{r:?}");
        assert!(r.first_chunk_time_us >= r.send_time_us, "{r:?}");
        assert!(r.last_chunk_time_us >= r.first_chunk_time_us, "{r:?}");
        assert_eq!(r.num_chunks, r.output_tokens, "one chunk per token: {r:?}");
        assert_eq!(r.server_input_tokens, r.input_tokens + r.prefix_length, "one word per token: {r:?}");
        assert_eq!(r.finish_reason, "length");
        assert_eq!(r.model, "mock-model");
    }
    assert!(rows.windows(2).all(|w| w[0].send_time_us <= w[1].send_time_us), "rows in send order");
}

#[test]
fn observe_open_loop_records_a_trace_that_replays() {
    let server = mock(Some(7));
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--rate", "400", "--num-requests", "20"];
    flags.extend_from_slice(&SMALL);
    let (out, paths) = observe(&server.url(), dir.path(), &flags);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("observed 20 requests (2 failed)"), "{stderr}");
    assert_eq!(server.requests(), 20);
    let header = read_trace_header(&paths[0]).unwrap();
    assert_eq!((header.mode.as_str(), header.trace_version.as_str()), ("real", "2"));
    assert_eq!(header.server.as_ref().unwrap().model, "mock-model");
    assert!(header.created_at.ends_with('Z'), "{}", header.created_at);
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 20);
    let failed: Vec<&TraceRecord> = rows.iter().filter(|r| r.status != "ok").collect();
    assert_eq!(failed.len(), 2, "the mock fails every 7th request");
    for r in &failed {
        assert_eq!(r.status, "error");
        assert!(r.error_message.starts_with("HTTP 500: "), "{}", r.error_message);
        assert!(r.error_message.contains("mock failure"), "{}", r.error_message);
        assert_eq!(r.num_chunks, 0);
    }
    ok_rows_are_consistent(&rows);
    // Arrivals follow the workload (400/s, so 20 requests take ~50 ms), not the responses.
    let last_arrival = rows.iter().map(|r| r.arrival_time_us).max().unwrap();
    assert!(last_arrival > 0 && last_arrival < 1_000_000, "{last_arrival}");

    let replay = blis(&[
        "replay",
        "--model",
        MODEL,
        "--hardware",
        "H100",
        "--tp",
        "1",
        "--trace-header",
        &paths[0],
        "--trace-data",
        &paths[1],
    ]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(doc["completed_requests"], 20, "{doc}");

    // The trace as a calibration experiment: the server's configuration from the file, the
    // workload and the measured latencies from the trace (paths relative to the file).
    let measurements = dir.path().join("m.json");
    let experiment = serde_json::json!({"experiments": [{
        "id": "obs", "model": MODEL, "hardware": "H100", "tp": 1, "max_num_seqs": 64,
        "max_num_batched_tokens": 2048, "block_size": 16, "total_kv_blocks_gpu": 5000,
        "trace": {"header": "obs.yaml", "data": "obs.csv"},
    }]});
    std::fs::write(&measurements, experiment.to_string()).unwrap();
    let report = dir.path().join("r.md");
    let cal = blis(&[
        "calibrate",
        "--measurements",
        measurements.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&cal.stdout);
    assert!(cal.status.success(), "{}", String::from_utf8_lossy(&cal.stderr));
    assert!(stdout.contains("MAPE"), "{stdout}");
    let report = std::fs::read_to_string(report).unwrap();
    assert!(report.contains("observed trace"), "{report}");
}

/// A workload spec with prefix groups: requests of one group share their leading text.
#[test]
fn observe_workload_spec_prefix_groups() {
    let server = mock(None);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("w.yaml");
    let mut text = String::from("version: \"2\"\nseed: 5\naggregate_rate: 500\nnum_requests: 10\nclients:\n");
    for g in 0..2 {
        text.push_str(&format!(
            "  - id: c{g}\n    rate_fraction: 1\n    prefix_group: g{g}\n    prefix_length: 8\n    \
             input_distribution: {{type: constant, params: {{value: 4}}}}\n    \
             output_distribution: {{type: constant, params: {{value: 3}}}}\n"
        ));
    }
    std::fs::write(&spec, text).unwrap();
    let (out, paths) = observe(&server.url(), dir.path(), &["--workload-spec", spec.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 10);
    ok_rows_are_consistent(&rows);
    assert!(rows.iter().all(|r| r.prefix_length == 8 && r.input_tokens == 4 && r.server_input_tokens == 12));
    let prompts = server.prompts();
    let mut prefixes: Vec<String> =
        prompts.iter().map(|p| p.split(' ').take(8).collect::<Vec<_>>().join(" ")).collect();
    prefixes.sort();
    prefixes.dedup();
    assert_eq!(prefixes.len(), 2, "one prompt prefix per group: {prompts:?}");
}

#[test]
fn observe_closed_loop_and_max_concurrency() {
    let server = mock(None);
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--concurrency", "3", "--num-requests", "9"];
    flags.extend_from_slice(&SMALL);
    let (out, paths) = observe(&server.url(), dir.path(), &flags);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| r.status == "ok"));
    ok_rows_are_consistent(&rows);

    // One request in flight at a time: each is sent after the previous one's last chunk.
    let mut flags = vec!["--rate", "1000", "--num-requests", "6", "--max-concurrency", "1"];
    flags.extend_from_slice(&SMALL);
    let (out, paths) = observe(&server.url(), dir.path(), &flags);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 6);
    ok_rows_are_consistent(&rows);
    for w in rows.windows(2) {
        assert!(w[1].send_time_us >= w[0].last_chunk_time_us, "{:?} then {:?}", w[0], w[1]);
    }
}

#[test]
fn observe_errors() {
    let dir = tempfile::tempdir().unwrap();
    let one_line = |out: &std::process::Output, code: i32, want: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
    };
    let (out, _) = observe("ftp://localhost:1", dir.path(), &["--num-requests", "1"]);
    one_line(&out, 2, "--server-url: \"ftp://localhost:1\": accepted schemes are http and https");
    let (out, _) = observe("not a url", dir.path(), &["--num-requests", "1"]);
    one_line(&out, 2, "--server-url: ");
    let (out, _) = observe("http://127.0.0.1:1", dir.path(), &["--num-instances", "2"]);
    one_line(&out, 2, "--num-instances: not used by blis observe");
    let (out, _) = observe("http://127.0.0.1:1", dir.path(), &["--max-concurrency", "0"]);
    one_line(&out, 2, "--max-concurrency: must be at least 1");
    let (out, _) = observe("http://127.0.0.1:1", dir.path(), &["--rtt-ms", "-1"]);
    one_line(&out, 2, "--rtt-ms: must be a finite number of milliseconds >= 0, got -1");
    let (out, _) = observe("http://127.0.0.1:1", dir.path(), &["--itl-output", "x.csv"]);
    one_line(&out, 2, "--itl-output: only with --record-itl");
    let clash = dir.path().join("obs.csv");
    let (out, _) =
        observe("http://127.0.0.1:1", dir.path(), &["--record-itl", "--itl-output", clash.to_str().unwrap()]);
    one_line(&out, 2, "--itl-output: ");
    let (out, _) = observe("http://127.0.0.1:1", dir.path(), &["--concurrency", "2", "--rate", "3"]);
    one_line(&out, 2, "--concurrency");
    let spec = dir.path().join("obs.yaml");
    std::fs::write(&spec, "version: \"2\"\n").unwrap();
    let (out, _) = observe("http://127.0.0.1:1", dir.path(), &["--workload-spec", spec.to_str().unwrap()]);
    one_line(&out, 2, "--workload-spec: ");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite it"));
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "version: \"2\"\n");
    let out = blis(&["observe", "--server-url", "http://127.0.0.1:1", "--model", "m"]);
    one_line(&out, 2, "--trace-header: required");

    // A server slower than the requests' deadline (--timeout): rows with status timeout.
    let slow =
        MockServer::start(MockConfig { chunk_delay: Duration::from_millis(200), fail_every: None }).unwrap();
    let mut flags = vec!["--rate", "1000", "--num-requests", "2", "--timeout", "0.03"];
    flags.extend_from_slice(&SMALL);
    let (out, paths) = observe(&slow.url(), dir.path(), &flags);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.status, "timeout", "{r:?}");
        assert_eq!(r.deadline_us, r.arrival_time_us + 30_000, "{r:?}");
    }

    // A refused connection: every row records the error, and the command fails (status 1).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut flags = vec!["--rate", "1000", "--num-requests", "3"];
    flags.extend_from_slice(&SMALL);
    let (out, paths) = observe(&url, dir.path(), &flags);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: every request failed (first: error: HTTP error: "), "{stderr}");
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.status == "error" && r.num_chunks == 0), "{rows:?}");
}

#[cfg(unix)]
#[test]
fn observe_ctrl_c_keeps_the_rows_so_far() {
    let server = mock(None);
    let dir = tempfile::tempdir().unwrap();
    let (h, d) = (dir.path().join("i.yaml"), dir.path().join("i.csv"));
    let mut args =
        vec!["observe", "--server-url", &*Box::leak(server.url().into_boxed_str()), "--model", "m"];
    args.extend_from_slice(&["--trace-header", h.to_str().unwrap(), "--trace-data", d.to_str().unwrap()]);
    args.extend_from_slice(&["--rate", "20", "--arrival-process", "constant", "--num-requests", "1000"]);
    args.extend_from_slice(&SMALL);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while server.requests() < 2 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: nothing more was sent"), "{stderr}");
    let rows = read_trace_records(&d).unwrap();
    assert!(!rows.is_empty() && rows.len() < 1000, "{}", rows.len());
    assert!(rows.iter().all(|r| r.status == "ok"));
    assert!(read_trace_header(&h).is_ok());
}

/// The chain of the issue: `blis observe` against the mock server records a trace (warm-up
/// count and round trip in its header), `blis replay` of it writes per-request results, and
/// `blis calibrate` compares the two request by request.
#[test]
fn observe_replay_calibrate_end_to_end() {
    let server = mock(None);
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec![
        "--rate",
        "200",
        "--num-requests",
        "24",
        "--warmup-requests",
        "4",
        "--rtt-ms",
        "0.25",
        "--record-itl",
    ];
    flags.extend_from_slice(&SMALL);
    let (out, paths) = observe(&server.url(), dir.path(), &flags);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let header = read_trace_header(&paths[0]).unwrap();
    assert_eq!(header.warm_up_requests, 4);
    assert_eq!(header.network.as_ref().and_then(|n| n.measured_rtt_ms), Some(0.25));
    let rows = read_trace_records(&paths[1]).unwrap();
    assert_eq!(rows.len(), 24, "warm-up requests are in the trace too");
    // --record-itl: one row per chunk, beside the data CSV.
    let itl = paths[1].strip_suffix(".csv").unwrap().to_string() + ".itl.csv";
    let itl_text = std::fs::read_to_string(&itl).unwrap_or_else(|e| {
        panic!(
            "{itl}: {e}: {:?}",
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>()
        )
    });
    let chunks: u32 = rows.iter().map(|r| r.num_chunks).sum();
    assert_eq!(itl_text.lines().count(), 1 + chunks as usize, "{itl_text}");
    assert!(itl_text.starts_with("request_id,chunk_index,timestamp_us\n"));

    let results = dir.path().join("results.json");
    let replay = blis(&[
        "replay",
        "--model",
        MODEL,
        "--hardware",
        "H100",
        "--tp",
        "1",
        "--trace-header",
        &paths[0],
        "--trace-data",
        &paths[1],
        "--results-path",
        results.to_str().unwrap(),
    ]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));

    let calibrate = |extra: &[&str], name: &str| -> serde_json::Value {
        let report = dir.path().join(name);
        let mut args = vec![
            "calibrate",
            "--trace-header",
            &paths[0],
            "--trace-data",
            &paths[1],
            "--sim-results",
            results.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = blis(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("matched 20 requests (4 warm-up excluded"), "{stdout}");
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
    };
    let rep = calibrate(&[], "from-header.json");
    let info = &rep["trace_info"];
    assert_eq!(info["num_requests"], 24, "{rep}");
    assert_eq!(info["warm_up_excluded"], 4);
    assert_eq!(info["matched_pairs"], 20);
    assert_eq!(info["unmatched_sim"], 4, "the warm-up requests' simulated results");
    assert_eq!(info["network_rtt_us"], 250);
    assert_eq!(info["token_mismatches"], 0, "the mock reports the prompt it was sent");
    let with_itl = calibrate(&["--itl-data", &itl], "with-itl.json");
    assert!(rep["metrics"].get("itl").is_none(), "no ITL without --itl-data");
    assert_eq!(with_itl["metrics"]["ttft"], rep["metrics"]["ttft"]);
    let rep = with_itl;
    for metric in ["ttft", "e2e", "itl"] {
        let m = &rep["metrics"][metric];
        assert_eq!(m["count"], 20, "{metric}");
        let (real, sim) = (
            m["workload_level"]["real_mean"].as_f64().unwrap(),
            m["workload_level"]["sim_mean"].as_f64().unwrap(),
        );
        assert!(real > 0.0 && sim > 0.0, "{metric}: {m}");
        let mape = m["request_level"]["mape"].as_f64().unwrap();
        assert!(mape.is_finite() && mape >= 0.0, "{metric}: {m}");
        let r = m["request_level"]["pearson_r"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&r), "{metric}: {m}");
        assert!(
            ["over-predict", "under-predict", "neutral"]
                .contains(&m["request_level"]["bias_direction"].as_str().unwrap())
        );
        assert!((m["workload_level"]["mean_error"].as_f64().unwrap() - (sim - real)).abs() < 1e-6);
    }
    assert_eq!(rep["ttft_tolerance"]["threshold"], 0.15);
    assert!(!rep["known_limitations"].as_array().unwrap().is_empty());

    // Flags override the header: no round trip lowers every simulated latency by 250 µs, and
    // no warm-up compares all 24.
    let bare = calibrate(&["--network-rtt-us", "0"], "no-rtt.json");
    for metric in ["ttft", "e2e"] {
        let with = rep["metrics"][metric]["workload_level"]["sim_mean"].as_f64().unwrap();
        let without = bare["metrics"][metric]["workload_level"]["sim_mean"].as_f64().unwrap();
        assert!((with - without - 250.0).abs() < 1e-6, "{metric}: {with} vs {without}");
        assert_eq!(
            rep["metrics"][metric]["workload_level"]["real_mean"],
            bare["metrics"][metric]["workload_level"]["real_mean"]
        );
    }
    let report = dir.path().join("all.json");
    let out = blis(&[
        "calibrate",
        "--trace-header",
        &paths[0],
        "--trace-data",
        &paths[1],
        "--sim-results",
        results.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--warmup-requests",
        "0",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(
        (all["trace_info"]["matched_pairs"].as_u64(), all["trace_info"]["warm_up_excluded"].as_u64()),
        (Some(24), Some(0))
    );
}
