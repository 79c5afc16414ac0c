//! `--threads N`: the thread count is execution, not semantics. The same run under 1, 2 and 3
//! threads writes byte-identical stdout and `--results-path` files, whatever the policy, fleet
//! shape, horizon or deadlines; bad counts are refused in one line.

mod common;

use std::path::Path;
use std::process::Command;

use common::{MODEL, blis, run_ok, with_model, write};
use proptest::prelude::*;

/// Runs `args` in `dir` (so that relative output paths name the same file in every run) and
/// returns stdout and the results file's bytes.
fn run_in(dir: &Path, args: &[String]) -> (Vec<u8>, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_blis")).current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "blis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let results = std::fs::read(dir.join("results.json")).unwrap();
    (out.stdout, results)
}

#[derive(Debug, Clone)]
struct Case {
    routing: &'static str,
    instances: u32,
    /// Two pools of different GPUs instead of one.
    mixed: bool,
    requests: u32,
    rate: f64,
    kv_blocks: Option<u32>,
    timeout_s: Option<f64>,
    horizon_us: Option<u64>,
    prefix_tokens: u32,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec!["round-robin", "round-robin", "least-loaded", "weighted"]),
        1u32..9,
        any::<bool>(),
        50u32..400,
        5.0f64..200.0,
        prop::option::of(60u32..400),
        prop::option::of(0.5f64..20.0),
        prop::option::of(500_000u64..20_000_000),
        prop::sample::select(vec![0u32, 64, 300]),
        any::<u64>(),
    )
        .prop_map(
            |(
                routing,
                instances,
                mixed,
                requests,
                rate,
                kv_blocks,
                timeout_s,
                horizon_us,
                prefix_tokens,
                seed,
            )| {
                Case {
                    routing,
                    instances,
                    mixed: mixed && instances >= 2,
                    requests,
                    rate,
                    kv_blocks,
                    timeout_s,
                    horizon_us,
                    prefix_tokens,
                    seed,
                }
            },
        )
}

/// The run description of a case, as a config file in `dir` plus flags.
fn args(dir: &Path, c: &Case) -> Vec<String> {
    let mut yaml = format!(
        "model: {MODEL}\nrouting-policy: {}\nworkload: distribution\nrate: {}\nnum-requests: {}\n\
         prefix-tokens: {}\nseed: {}\nresults-path: results.json\n",
        c.routing, c.rate, c.requests, c.prefix_tokens, c.seed
    );
    if c.mixed {
        let fast = c.instances / 2;
        yaml += &format!(
            "pools: [{{name: fast, hardware: H100, tp: 1, instances: {fast}}}, \
             {{name: slow, hardware: A100-80, tp: 1, instances: {}}}]\n",
            c.instances - fast
        );
    } else {
        yaml += &format!("hardware: H100\ntp: 1\nnum-instances: {}\n", c.instances);
    }
    if let Some(b) = c.kv_blocks {
        yaml += &format!("total-kv-blocks: {b}\n");
    }
    if let Some(t) = c.timeout_s {
        yaml += &format!("timeout: {t}\n");
    }
    if let Some(h) = c.horizon_us {
        yaml += &format!("horizon: {h}\n");
    }
    let config = write(dir, "run.yaml", &yaml);
    vec!["run".into(), "--config".into(), config, "--progress".into(), "never".into()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn every_thread_count_writes_the_same_bytes(c in case()) {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut outputs = Vec::new();
        for (k, dir) in dirs.iter().enumerate() {
            let mut a = args(dir.path(), &c);
            // The config file's path differs per directory; it is recorded, so use a name
            // relative to the run's directory instead.
            a[2] = "run.yaml".into();
            a.extend(["--threads".into(), (k + 1).to_string()]);
            outputs.push(run_in(dir.path(), &a));
        }
        prop_assert!(!outputs[0].0.is_empty() && !outputs[0].1.is_empty());
        for (k, o) in outputs.iter().enumerate().skip(1) {
            prop_assert!(o.0 == outputs[0].0, "stdout differs with --threads {}", k + 1);
            prop_assert!(o.1 == outputs[0].1, "--results-path differs with --threads {}", k + 1);
        }
    }
}

#[test]
fn the_thread_count_is_not_recorded_and_a_big_one_is_fine() {
    let doc = run_ok(&with_model(&[
        "--num-instances",
        "3",
        "--rate",
        "20",
        "--num-requests",
        "60",
        "--threads",
        "64",
        "--progress",
        "never",
    ]));
    assert_eq!(doc["completed_requests"], 60);
    assert!(doc["config"].get("threads").is_none(), "{}", doc["config"]);
}

#[test]
fn a_negative_or_unparsable_count_is_refused_in_one_line() {
    for bad in ["-1", "two", "1.5"] {
        let out = blis(&with_model(&["--threads", bad]));
        assert_eq!(out.status.code(), Some(2), "--threads {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--threads") && err.contains(bad), "--threads {bad}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "t.yaml", &format!("model: {MODEL}\nhardware: H100\nthreads: -2\n"));
    let out = blis(&["run", "--config", &config]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("threads") && err.trim().lines().count() == 1, "{err}");
}
