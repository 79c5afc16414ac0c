//! `blis calibrate --compat reference`: BLIS under the reference simulator's semantics lands on
//! the reference's own predictions of the 15 calibration runs (mean TTFT within 10 %, mean E2E
//! and ITL within 2 %, on every run).

use std::path::Path;

use blis_calibrate::Measurements;
use blis_calibrate::parity::{ParityRow, parity, reference_setup, render_table};
use blis_config::Catalog;
use blis_latency::{LatencyModelKind, LatencyOverrides};

const MEASUREMENTS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../blis-calibrate/data/vllm-h100-measurements.json");

fn rows(latency_model: LatencyModelKind) -> Vec<ParityRow> {
    let m = Measurements::load(Path::new(MEASUREMENTS)).unwrap();
    assert_eq!(m.experiments.len(), 15);
    let cfg = reference_setup(latency_model, LatencyOverrides::default(), None, Catalog::default());
    parity(&m.experiments, &cfg).unwrap()
}

/// All 15 runs with trained-physics (the reference's default model and shipped coefficients).
#[test]
fn trained_physics_matches_the_reference_on_every_run() {
    let rows = rows(LatencyModelKind::TrainedPhysics);
    let table = render_table(&rows);
    eprintln!("{table}");
    for r in &rows {
        assert!(
            r.within_bounds(),
            "experiment {} ({}) out of bounds: {:?}\n{table}",
            r.id,
            r.label,
            r.errors_pct()
        );
    }
}

/// The CLI option prints the same table.
#[test]
fn cli_prints_the_parity_table() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blis"))
        .args(["calibrate", "--measurements", MEASUREMENTS, "--compat", "reference", "--only", "66"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("trained-physics under --compat reference"), "{stdout}");
    assert!(stdout.contains("| 66 | Qwen2.5-7B-Instruct TP1 reasoning-lite |"), "{stdout}");
    assert!(stdout.contains("1 of 1 runs within every bound"), "{stdout}");
    for (args, msg) in [
        (vec!["--compat", "vllm"], "invalid value 'vllm' for '--compat <COMPAT>'"),
        (
            vec!["--compat", "reference", "--latency-model", "blis-physics"],
            "only for trained-physics and roofline",
        ),
        (vec!["--compat", "reference", "--fit", "x.yaml"], "--compat reference: --fit cannot be combined"),
    ] {
        let mut a = vec!["calibrate", "--measurements", MEASUREMENTS, "--only", "66"];
        a.extend(args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_blis")).args(&a).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{a:?}: {err}");
    }
}

/// Roofline: its formulas equal the reference's (pinned in blis-latency), but run-level means
/// are not reproducible to 2 %: in these closed-loop workloads α = 0 and prefill steps 3–10×
/// longer than decode steps make sessions lock into synchronized groups, so the means depend on
/// which sessions happen to collide early, i.e. on the random start times. BLIS's own mean E2E
/// varies by a standard deviation of up to 9 % between seeds (docs/compat.md); the reference's
/// numbers are one draw of that process with its Go RNG. This checks the overall agreement
/// (median over the 15 runs), which a change to the roofline formulas or the engine would
/// break.
#[test]
fn roofline_agrees_in_the_median() {
    let rows = rows(LatencyModelKind::Roofline);
    let table = render_table(&rows);
    eprintln!("{table}");
    let median = |k: usize| {
        let mut e: Vec<f64> = rows.iter().map(|r| r.errors_pct()[k].abs()).collect();
        e.sort_by(f64::total_cmp);
        e[e.len() / 2]
    };
    assert!(median(0) <= 10.0, "median |TTFT error| {:.2} %\n{table}", median(0));
    assert!(median(1) <= 5.0, "median |E2E error| {:.2} %\n{table}", median(1));
    assert!(median(2) <= 5.0, "median |ITL error| {:.2} %\n{table}", median(2));
}
