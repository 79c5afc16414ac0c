//! `--report FILE.html` on run, replay, sweep and plan: every chart is in the page, and the
//! page renders in a real headless Chromium. Without a Chromium the browser half is skipped
//! with a message, unless BLIS_REQUIRE_CHROMIUM=1 (as `.ci/run` sets after installing it).

mod common;

use std::path::Path;
use std::process::Command;

use common::{MODEL, blis, with_model};

/// The charts of a run page.
const RUN_CHARTS: &[&str] = &[
    "chart-ttft-cdf",
    "chart-itl-cdf",
    "chart-e2e-cdf",
    "chart-queue-depth",
    "chart-running-batch",
    "chart-kv-utilization",
    "chart-routing",
    "chart-regret",
    "chart-goodput",
    "run-config",
];

fn chromium() -> Option<String> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(name.to_string());
        }
    }
    None
}

/// The DOM Chromium built from `page` (`None`: no browser here and none required).
fn render(page: &Path) -> Option<String> {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("BLIS_REQUIRE_CHROMIUM").is_err(),
            "BLIS_REQUIRE_CHROMIUM is set but no chromium is installed"
        );
        eprintln!("skipped the headless-browser check: no chromium (apt-get install chromium)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let common = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", dir.path().display()));
    };
    let mut dump = Command::new(&browser);
    common(&mut dump);
    let out =
        dump.arg("--dump-dom").arg(format!("file://{}", page.display())).output().expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    // A screenshot: the page paints (a blank or failed render gives no PNG).
    let png = page.with_extension("png");
    let mut shot = Command::new(&browser);
    common(&mut shot);
    let out = shot
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,3000")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium screenshot failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png).expect("a screenshot was written");
    assert!(bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"), "screenshot of {} bytes", bytes.len());
    Some(dom)
}

/// Every id is in the page's text and, when a browser is here, in the rendered DOM (with
/// drawn SVG content for charts).
fn check(page: &Path, ids: &[&str]) {
    let html = std::fs::read_to_string(page).expect("the report was written");
    assert!(!html.contains("http://") || !html.contains("<script"), "the page loads nothing");
    for id in ids {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing from {}", page.display());
    }
    if let Some(dom) = render(page) {
        for id in ids {
            assert!(dom.contains(&format!("id=\"{id}\"")), "{id} missing from the rendered DOM");
        }
        assert!(dom.matches("<svg").count() >= ids.iter().filter(|i| i.starts_with("chart-")).count() / 2);
    }
}

#[test]
fn run_and_replay_reports_have_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("run.html");
    let csv = dir.path().join("ts.csv");
    let prefix = dir.path().join("trace");
    let out = blis(&with_model(&[
        "--workload",
        "chatbot",
        "--rate",
        "40",
        "--num-requests",
        "300",
        "--num-instances",
        "3",
        "--routing-policy",
        "least-loaded",
        "--trace-level",
        "decisions",
        "--summarize-trace",
        "--counterfactual-k",
        "2",
        "--slo-ttft",
        "default=200ms",
        "--report",
        page.to_str().unwrap(),
        "--timeseries-path",
        csv.to_str().unwrap(),
        "--trace-output",
        prefix.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Requests routed to each instance") && html.contains("Goodput per class"));
    check(&page, RUN_CHARTS);
    let series = std::fs::read_to_string(&csv).unwrap();
    assert!(series.starts_with("time_s,instance,queued,running,kv_used_blocks,kv_utilization,completed\n"));
    assert!(series.lines().count() > 100, "{} rows", series.lines().count());
    // Replay of the exported trace.
    let replay_page = dir.path().join("replay.html");
    let h = format!("{}.yaml", prefix.display());
    let d = format!("{}.csv", prefix.display());
    let out = blis(&[
        "replay",
        "--trace-header",
        &h,
        "--trace-data",
        &d,
        "--report",
        replay_page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The trace header carried the goodput targets: the replay measures the same SLO.
    let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(replayed["per_class"]["default"]["slo_attainment"].is_number(), "{}", replayed["per_class"]);
    assert!(std::fs::read_to_string(&h).unwrap().contains("goodput_slo_targets"));
    let ids: Vec<&str> = RUN_CHARTS.to_vec();
    check(&replay_page, &ids);
}

#[test]
fn sweep_and_plan_reports() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "base: {{model: {MODEL}, rate: 40, num-requests: 200}}\naxes:\n  - {{flag: num-instances, values: [1, 2, 4]}}\n  - {{flag: routing-policy, values: [round-robin, least-loaded]}}\n"
        ),
    )
    .unwrap();
    let page = dir.path().join("sweep.html");
    let out = blis(&["sweep", "--grid", grid.to_str().unwrap(), "--report", page.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check(
        &page,
        &[
            "chart-sweep-ttft-p99-ms",
            "chart-sweep-itl-p99-ms",
            "chart-sweep-e2e-p99-ms",
            "chart-sweep-responses-per-sec",
            "sweep-rows",
            "run-config",
        ],
    );
    let plan_page = dir.path().join("plan.html");
    let out = blis(&[
        "plan",
        "--model",
        MODEL,
        "--rate",
        "30",
        "--slo",
        "ttft_p99<=500ms",
        "--tp",
        "1",
        "--max-gpus",
        "2",
        "--seeds",
        "1",
        "--num-requests",
        "600",
        "--report",
        plan_page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check(&plan_page, &["chart-frontier", "plan-answer", "plan-candidates", "run-config"]);
}
