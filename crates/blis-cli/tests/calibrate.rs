//! `blis calibrate`: an experiment is simulated exactly as `blis run` simulates its keys, and
//! cross-validation starts where it is told.

use std::process::Command;

use blis_calibrate::Measurements;
use blis_calibrate::experiment::{Setup, run_experiment, run_spec};
use blis_latency::LatencyModelKind;

const MEASUREMENTS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../blis-calibrate/data/vllm-h100-measurements.json");

#[test]
fn an_experiment_is_the_run_its_keys_describe() {
    let m = Measurements::load(std::path::Path::new(MEASUREMENTS)).unwrap();
    // A small one (1 200 requests) and a multi-stage TP>1 one.
    for (id, model) in [("66", LatencyModelKind::TrainedPhysics), ("62", LatencyModelKind::BlisPhysics)] {
        let e = m.experiments.iter().find(|e| e.id == id).unwrap();
        let setup = Setup::new(model);
        // The experiment's keys, written as a config file and run by the command line.
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("experiment.yaml");
        std::fs::write(&config, serde_saphyr::to_string(&run_spec(e, &setup)).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_blis"))
            .args(["run", "--config", config.to_str().unwrap(), "--progress", "never"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let from_cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let tool = run_experiment(e, &setup).unwrap();
        let from_tool = serde_json::to_value(&tool.doc).unwrap();
        assert_same(&from_cli, &from_tool, &format!("experiment {id} with {}", model.name()));
        assert_eq!(tool.completed, e.workload.as_ref().unwrap().num_requests);
    }
}

/// Equal documents; numbers within 1e-12 relative (serde_json's default float parsing is not
/// exactly round-trip, so the CLI's printed numbers may differ in the last bit).
fn assert_same(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(y.abs()), "{at}: {x} != {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{at}");
            for (k, v) in x {
                assert_same(v, &y[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_same(v, w, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn cross_validation_starts_where_told() {
    let prior = concat!(env!("CARGO_MANIFEST_DIR"), "/../blis-calibrate/data/blis-physics-prior.yaml");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let calibrate = |start: &str| {
        Command::new(env!("CARGO_BIN_EXE_blis"))
            .args(["calibrate", "--measurements", MEASUREMENTS, "--only", "62,65", "--cross-validate"])
            .args(["--cv-max-evals", "1", "--cv-start", start, "--report", report.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = calibrate(prior);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains(&format!("every fold from `{prior}`")), "{text}");
    // Two models, two folds; with one evaluation each fold keeps its starting point: the prior.
    assert_eq!(text.matches("| [1000.000, 100.000, 1.000] |").count(), 2, "{text}");
    assert!(text.contains("01-ai/Yi-34B") && text.contains("mistralai/Mistral-Nemo-Instruct-2407"));

    let bad = calibrate("/nonexistent/prior.yaml");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.starts_with("error: --cv-start:") && err.trim().lines().count() == 1, "{err}");
}

#[test]
fn leave_one_tp_out_and_error_summary() {
    let prior = concat!(env!("CARGO_MANIFEST_DIR"), "/../blis-calibrate/data/blis-physics-prior.yaml");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let errors = dir.path().join("cv-errors.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(["calibrate", "--measurements", MEASUREMENTS, "--only", "62,63", "--cross-validate"])
        .args(["--cv-by", "tp", "--cv-max-evals", "1", "--cv-start", prior])
        .args(["--report", report.to_str().unwrap(), "--cv-errors", errors.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).unwrap();
    // Mistral-Nemo at TP 2 (62) and TP 1 (63): each TP degree predicted from the other.
    assert!(text.contains("leave-one-TP-out cross-validation") && text.contains("| TP2 |"), "{text}");
    let cv =
        blis_latency::uncertainty::CvErrors::from_yaml(&std::fs::read_to_string(&errors).unwrap()).unwrap();
    assert_eq!((cv.predictions, cv.envelope.tp.clone()), (2, vec![1, 2]));

    let bad = Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(["calibrate", "--measurements", MEASUREMENTS, "--cross-validate", "--cv-by", "gpu"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--cv-by: unknown grouping `gpu` (accepted: model, tp)"), "{err}");
}

#[test]
fn a_tight_prior_holds_the_fit_at_its_start() {
    let prior = concat!(env!("CARGO_MANIFEST_DIR"), "/../blis-calibrate/data/blis-physics-prior.yaml");
    let dir = tempfile::tempdir().unwrap();
    let fit = |sigma: &str| {
        let out_path = dir.path().join(format!("fit-{sigma}.yaml"));
        let out = Command::new(env!("CARGO_BIN_EXE_blis"))
            .args(["calibrate", "--measurements", MEASUREMENTS, "--only", "63", "--coefficients-file", prior])
            .args(["--fit", out_path.to_str().unwrap(), "--max-evals", "6", "--freeze", "0,1,2,5,6,7,8,9,10"])
            .args(["--prior-sigma", sigma])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(&out_path).unwrap()
    };
    // Only c_mem and c_comp move; σ = 0 is no prior, σ = 1e-9 pins them to the prior's 1.0.
    let free = fit("0");
    let pinned = fit("0,0,0,1e-9,1e-9");
    assert!(
        pinned.contains(
            "beta: [1.000000, 1.000000, 10.000000, 23.000000, 5.000000, 100.000000, 10.000000, 1.000000]"
        ),
        "{pinned}"
    );
    assert_ne!(free, pinned);

    let bad = Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(["calibrate", "--measurements", MEASUREMENTS, "--prior-sigma", "1,nan"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--prior-sigma: NaN is not a finite σ ≥ 0"), "{err}");
}

/// Trace mode: unreadable or malformed inputs and out-of-range flags are one line, exit 2.
#[test]
fn trace_mode_refuses_bad_inputs_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let header = p("t.yaml", "trace_version: \"2\"\ntime_unit: microseconds\nmode: real\n");
    let data = p(
        "t.csv",
        "request_id,input_tokens,output_tokens,server_input_tokens,arrival_time_us,send_time_us,first_chunk_time_us,last_chunk_time_us,num_chunks,status\n\
         0,10,5,10,0,10,1010,5010,5,ok\n1,10,5,10,100,110,1110,5110,5,ok\n2,10,5,10,200,210,1210,6210,5,ok\n",
    );
    let good = p(
        "r.json",
        r#"[{"request_id":0,"ttft_us":1000,"e2e_us":5000,"input_tokens":10,"output_tokens":5},
            {"request_id":1,"ttft_us":1100,"e2e_us":5000,"input_tokens":10,"output_tokens":5},
            {"request_id":2,"ttft_us":1000,"e2e_us":5500,"input_tokens":10,"output_tokens":5}]"#,
    );
    let report = dir.path().join("report.json").display().to_string();
    let run = |sim: &str, extra: &[&str]| {
        let mut args = vec![
            "calibrate",
            "--trace-header",
            &header,
            "--trace-data",
            &data,
            "--sim-results",
            sim,
            "--report",
            &report,
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_blis")).args(&args).output().unwrap()
    };
    let ok = run(&good, &[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let ttft = &rep["metrics"]["ttft"];
    // Real TTFTs are all 1000 µs; simulated 1000, 1100, 1000: MAPE 1/30, bias over.
    assert!((ttft["request_level"]["mape"].as_f64().unwrap() - 1.0 / 30.0).abs() < 1e-12, "{rep}");
    assert_eq!(ttft["request_level"]["bias_direction"], "over-predict");
    assert_eq!(rep["trace_info"]["matched_pairs"], 3);

    let not_json = p("bad.json", "request_id: 0\n");
    let no_match =
        p("other.json", r#"[{"request_id":7,"ttft_us":1,"e2e_us":2,"input_tokens":1,"output_tokens":1}]"#);
    let missing = dir.path().join("nope.json").display().to_string();
    for (sim, extra, says, code) in [
        (not_json.as_str(), &[][..], "--sim-results: ", 2),
        (missing.as_str(), &[][..], "--sim-results: cannot read", 2),
        (good.as_str(), &["--warmup-requests", "-3"][..], "--warmup-requests: must be >= 0", 2),
        (
            good.as_str(),
            &["--network-bandwidth-mbps", "NaN"][..],
            "--network-bandwidth-mbps: must be a finite",
            2,
        ),
        (good.as_str(), &["--itl-data", header.as_str()][..], "--itl-data: ", 2),
        (no_match.as_str(), &[][..], "no request to compare", 1),
    ] {
        let out = run(sim, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    // A measurements-mode flag in trace mode is refused by the parser.
    let out = run(&good, &["--latency-model", "roofline"]);
    assert_eq!(out.status.code(), Some(2));
}
