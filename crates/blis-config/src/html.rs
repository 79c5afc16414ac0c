//! `--report FILE.html`: one self-contained page per run, sweep or plan. Charts are inline SVG
//! generated here (no script, no network: the page opens anywhere). Every chart has a stable
//! element id (`chart-ttft-cdf`, `chart-queue-depth`, …) so tests can find it in the DOM.

use std::fmt::Write as _;

use blis_sim::report::RunDoc;

const W: f64 = 640.0;
const H: f64 = 300.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 28.0;
const PAD_B: f64 = 44.0;
const COLORS: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
    "#bcbd22", "#393b79", "#ad494a",
];

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// "Nice" tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A line chart (`step`: draw as a staircase, for CDFs and sampled states).
pub fn line_chart(
    id: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    step: bool,
) -> String {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure class="chart" id="{id}"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">"#,
        esc(title)
    );
    if !x0.is_finite() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text></svg></figure>"#,
            W / 2.0,
            H / 2.0
        );
        return svg;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let sx = |x: f64| PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R);
    let sy = |y: f64| H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B);
    for t in ticks(y0, y1) {
        let y = sy(t);
        let _ = write!(
            svg,
            r##"<line x1="{PAD_L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            W - PAD_R,
            PAD_L - 4.0,
            y + 4.0,
            fmt_num(t)
        );
    }
    for t in ticks(x0, x1) {
        let x = sx(t);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{PAD_T}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            H - PAD_B,
            H - PAD_B + 14.0,
            fmt_num(t)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text><text transform="translate(14,{}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"##,
        (PAD_L + W - PAD_R) / 2.0,
        H - 8.0,
        esc(x_label),
        (PAD_T + H - PAD_B) / 2.0,
        esc(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut d = String::new();
        let mut prev: Option<(f64, f64)> = None;
        for &(x, y) in &s.points {
            match prev {
                None => {
                    let _ = write!(d, "M{:.1},{:.1}", sx(x), sy(y));
                }
                Some((_, py)) if step => {
                    let _ = write!(d, "L{:.1},{:.1}L{:.1},{:.1}", sx(x), sy(py), sx(x), sy(y));
                }
                Some(_) => {
                    let _ = write!(d, "L{:.1},{:.1}", sx(x), sy(y));
                }
            }
            prev = Some((x, y));
        }
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"><title>{}</title></path>"#,
            esc(&s.name)
        );
        if s.points.len() == 1 {
            let (x, y) = s.points[0];
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#, sx(x), sy(y));
        }
    }
    if series.len() > 1 {
        for (i, s) in series.iter().enumerate().take(12) {
            let color = COLORS[i % COLORS.len()];
            let y = PAD_T + 4.0 + 14.0 * i as f64;
            let _ = write!(
                svg,
                r#"<rect x="{}" y="{y}" width="10" height="10" fill="{color}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
                W - PAD_R - 150.0,
                W - PAD_R - 136.0,
                y + 9.0,
                esc(&s.name)
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A bar chart.
pub fn bar_chart(id: &str, title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<figure class="chart" id="{id}"><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">"#,
        esc(title)
    );
    let top = bars.iter().map(|b| b.1).fold(0.0f64, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let n = bars.len().max(1) as f64;
    let bw = (W - PAD_L - PAD_R) / n;
    let sy = |y: f64| H - PAD_B - y / top * (H - PAD_T - PAD_B);
    for t in ticks(0.0, top) {
        let _ = write!(
            svg,
            r##"<line x1="{PAD_L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            W - PAD_R,
            PAD_L - 4.0,
            sy(t) + 4.0,
            fmt_num(t),
            y = sy(t)
        );
    }
    for (i, (label, v)) in bars.iter().enumerate() {
        let x = PAD_L + bw * i as f64 + bw * 0.1;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#1f77b4"><title>{}: {}</title></rect>"##,
            sy(*v),
            bw * 0.8,
            (H - PAD_B - sy(*v)).max(0.0),
            esc(label),
            fmt_num(*v)
        );
        if bars.len() <= 32 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
                x + bw * 0.4,
                H - PAD_B + 14.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text transform="translate(14,{}) rotate(-90)" font-size="12" text-anchor="middle">{}</text></svg></figure>"#,
        (PAD_T + H - PAD_B) / 2.0,
        esc(y_label)
    );
    svg
}

/// A key → value table.
pub fn table(id: &str, rows: &[(String, String)]) -> String {
    let mut t = format!(r#"<table id="{id}">"#);
    for (k, v) in rows {
        let _ = write!(t, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    t.push_str("</table>");
    t
}

/// The page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 1.5em; border-bottom: 1px solid #ccc; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure.chart {{ margin: 0; border: 1px solid #e4e4e4; padding: 4px; }}
figcaption {{ font-weight: 600; font-size: 0.9em; padding: 2px 4px; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
.verdict-stable {{ color: #1a7f37; }} .verdict-overloaded, .verdict-too-short {{ color: #b42318; }}
pre {{ background: #f6f6f6; padding: 8px; font-size: 0.8em; overflow-x: auto; }}
</style></head><body>
<h1>{t}</h1>
{body}
<footer><p><small>Generated by blis. Self-contained: inline SVG, no scripts, no network.</small></p></footer>
</body></html>
"#,
        t = esc(title)
    )
}

/// Everything a run page needs beyond the metrics document.
pub struct RunCharts {
    /// (value ms, fraction) CDF points.
    pub ttft_cdf: Vec<(f64, f64)>,
    pub itl_cdf: Vec<(f64, f64)>,
    pub e2e_cdf: Vec<(f64, f64)>,
}

/// Per-instance series of one sampled quantity, or mean and max over instances when there
/// are many.
fn state_series(doc: &RunDoc, f: impl Fn(usize, &blis_sim::measure::StateSample) -> f64) -> Vec<Series> {
    let ts = &doc.timeseries;
    let t = |k: usize| (k as u64 * ts.interval_us) as f64 / 1e6;
    if ts.instances.len() <= 8 {
        ts.instances
            .iter()
            .enumerate()
            .map(|(i, s)| Series {
                name: format!("instance {i}"),
                points: s.iter().enumerate().map(|(k, x)| (t(k), f(i, x))).collect(),
            })
            .collect()
    } else {
        let n = ts.instances.len() as f64;
        let mean = (0..ts.len())
            .map(|k| (t(k), ts.instances.iter().enumerate().map(|(i, s)| f(i, &s[k])).sum::<f64>() / n))
            .collect();
        let max = (0..ts.len())
            .map(|k| (t(k), ts.instances.iter().enumerate().map(|(i, s)| f(i, &s[k])).fold(0.0, f64::max)))
            .collect();
        vec![
            Series { name: "mean over instances".into(), points: mean },
            Series { name: "max".into(), points: max },
        ]
    }
}

/// The body of a run's page (also embedded in plan pages).
pub fn run_body(doc: &RunDoc, charts: &RunCharts) -> String {
    let mut b = String::new();
    let c = &doc.cluster;
    let v = doc.steady_state.verdict.as_str();
    let _ = write!(
        b,
        r#"<section id="summary"><h2>Summary</h2><p>Verdict: <strong class="verdict-{v}" id="steady-verdict">{v}</strong>{}</p>"#,
        if doc.steady_state.reasons.is_empty() {
            String::new()
        } else {
            format!(" — {}", esc(&doc.steady_state.reasons.join("; ")))
        }
    );
    if let Some(slo) = &doc.slo {
        let _ = write!(
            b,
            r#"<p id="slo-verdict">SLO: <strong>{}</strong> {}</p>"#,
            if slo.met { "met" } else { "not met" },
            esc(&slo
                .objectives
                .iter()
                .map(|o| format!(
                    "{} (value {:.1} ms: {})",
                    o.objective,
                    o.value_ms,
                    if o.met { "ok" } else { "missed" }
                ))
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    let rows: Vec<(String, String)> = [
        ("completed / injected", format!("{} / {}", c.completed_requests, c.injected_requests)),
        ("responses/s (steady window)", format!("{:.2}", c.responses_per_sec)),
        ("offered req/s", format!("{:.2}", doc.steady_state.offered_rps)),
        ("TTFT mean / p99 (ms)", format!("{:.1} / {:.1}", c.ttft_mean_ms, c.ttft_p99_ms)),
        ("ITL mean / p99 (ms)", format!("{:.2} / {:.2}", c.itl_mean_ms, c.itl_p99_ms)),
        ("E2E mean / p99 (ms)", format!("{:.1} / {:.1}", c.e2e_mean_ms, c.e2e_p99_ms)),
        (
            "timed out / rejected / dropped",
            format!("{} / {} / {}", c.timed_out_requests, c.rejected_requests, c.dropped_unservable),
        ),
        ("preemptions", c.preemption_count.to_string()),
        ("simulated duration (s)", format!("{:.2}", c.vllm_estimated_duration_s)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    b.push_str(&table("summary-table", &rows));
    b.push_str("</section>");

    b.push_str(r#"<section><h2>Latency distributions</h2><div class="charts">"#);
    for (id, title, cdf) in [
        ("chart-ttft-cdf", "TTFT CDF", &charts.ttft_cdf),
        ("chart-itl-cdf", "ITL CDF (token-weighted)", &charts.itl_cdf),
        ("chart-e2e-cdf", "E2E CDF", &charts.e2e_cdf),
    ] {
        b.push_str(&line_chart(
            id,
            title,
            "ms",
            "fraction ≤",
            &[Series { name: title.into(), points: cdf.clone() }],
            true,
        ));
    }
    b.push_str("</div></section>");

    let ts = &doc.timeseries;
    let _ = write!(
        b,
        r#"<section><h2>Over simulated time</h2><p><small>Sampled every {} ms (each instance's state after the last event before each sample time).</small></p><div class="charts">"#,
        ts.interval_us as f64 / 1e3
    );
    b.push_str(&line_chart(
        "chart-queue-depth",
        "Wait queue depth per instance",
        "simulated s",
        "requests",
        &state_series(doc, |_, x| f64::from(x.queued)),
        true,
    ));
    b.push_str(&line_chart(
        "chart-running-batch",
        "Running batch per instance",
        "simulated s",
        "requests",
        &state_series(doc, |_, x| f64::from(x.running)),
        true,
    ));
    let kv = ts.total_kv_blocks.clone();
    b.push_str(&line_chart(
        "chart-kv-utilization",
        "KV cache utilization per instance",
        "simulated s",
        "fraction of blocks",
        &state_series(doc, |i, x| {
            f64::from(x.kv_used_blocks) / f64::from(kv.get(i).copied().unwrap_or(1).max(1))
        }),
        true,
    ));
    b.push_str("</div></section>");

    b.push_str(r#"<section><h2>Routing</h2><div class="charts">"#);
    match &doc.trace_summary {
        Some(t) => {
            let bars: Vec<(String, f64)> =
                t.target_distribution.iter().enumerate().map(|(i, &n)| (format!("{i}"), n as f64)).collect();
            b.push_str(&bar_chart("chart-routing", "Requests routed to each instance", "requests", &bars));
            b.push_str(&bar_chart(
                "chart-regret",
                "Routing regret (counterfactual)",
                "score",
                &[("mean".into(), t.mean_regret), ("max".into(), t.max_regret)],
            ));
        }
        None => {
            let bars: Vec<(String, f64)> = if doc.instances.is_empty() {
                vec![("0".into(), c.completed_requests as f64)]
            } else {
                doc.instances
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (format!("{i}"), m.completed_requests as f64))
                    .collect()
            };
            b.push_str(&bar_chart("chart-routing", "Completed requests per instance", "requests", &bars));
            b.push_str(r#"<p id="chart-regret"><small>Routing regret needs decision traces (--trace-level decisions --summarize-trace --counterfactual-k K).</small></p>"#);
        }
    }
    b.push_str("</div></section>");

    b.push_str(r#"<section><h2>Per-class goodput</h2><div class="charts">"#);
    let goodput: Vec<(String, f64)> =
        doc.per_class.iter().filter_map(|(k, v)| v.goodput_rps.map(|g| (k.to_string(), g))).collect();
    if goodput.is_empty() {
        b.push_str(r#"<p id="chart-goodput"><small>No goodput targets (set --slo-ttft / --slo-itl / --slo-e2e, or goodput_slo_targets in the workload spec).</small></p>"#);
    } else {
        b.push_str(&bar_chart("chart-goodput", "Goodput per class", "good requests/s", &goodput));
        let att: Vec<(String, f64)> =
            doc.per_class.iter().filter_map(|(k, v)| v.slo_attainment.map(|g| (k.to_string(), g))).collect();
        b.push_str(&bar_chart("chart-slo-attainment", "SLO attainment per class", "fraction", &att));
    }
    b.push_str("</div></section>");

    let config =
        doc.config.as_ref().map(|c| serde_json::to_string_pretty(c).unwrap_or_default()).unwrap_or_default();
    let _ =
        write!(b, r#"<section><h2>Configuration</h2><pre id="run-config">{}</pre></section>"#, esc(&config));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_carry_their_ids_and_escape_text() {
        let s = line_chart(
            "chart-x",
            "a<b",
            "x",
            "y",
            &[Series { name: "s".into(), points: vec![(0.0, 1.0), (2.0, 3.0)] }],
            true,
        );
        assert!(s.contains(r#"id="chart-x""#) && s.contains("a&lt;b") && s.contains("<path"));
        let e = line_chart("chart-e", "empty", "x", "y", &[], false);
        assert!(e.contains("no data"));
        let b = bar_chart("chart-b", "bars", "n", &[("0".into(), 3.0), ("1".into(), 5.0)]);
        assert_eq!(b.matches("<rect").count(), 2);
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }
}
