//! The markdown accuracy report: a summary table of MAPEs per model, then one table per
//! experiment with measured and predicted figures.

use crate::measurements::Experiment;
use crate::metrics::{Comparison, Metric, Summary, ape, median_ape, score};

/// Predictions of one model (or of the reference simulator) for every experiment.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub name: String,
    /// Index-aligned with the experiments.
    pub rows: Vec<Comparison>,
}

impl ModelRun {
    pub fn summary(&self) -> Summary {
        score(&self.rows)
    }
}

/// The reference Go simulator's trained-physics predictions as a [`ModelRun`] (experiments
/// without them are skipped).
pub fn reference_run(experiments: &[Experiment]) -> ModelRun {
    ModelRun {
        name: "reference simulator (trained-physics)".into(),
        rows: experiments
            .iter()
            .filter_map(|e| {
                e.reference_trained_physics().map(|p| Comparison {
                    id: e.id.clone(),
                    label: e.label(),
                    predicted: p,
                    measured: e.measured_summary(),
                })
            })
            .collect(),
    }
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() { format!("{v:.1}") } else { "–".into() }
}

fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// Summary rows: one per model, MAPE per metric.
pub fn summary_rows(runs: &[ModelRun]) -> Vec<Vec<String>> {
    runs.iter()
        .map(|r| {
            let s = r.summary();
            let mut row = vec![r.name.clone(), s.experiments.to_string()];
            row.extend(Metric::ALL.iter().map(|&m| pct(s.mape(m))));
            row.push(pct(s.objective()));
            row
        })
        .collect()
}

/// Rows of one experiment's table: per metric, measured then (predicted, APE %) per model.
pub fn experiment_rows(id: &str, runs: &[ModelRun]) -> Vec<Vec<String>> {
    let found: Vec<Option<&Comparison>> = runs.iter().map(|r| r.rows.iter().find(|c| c.id == id)).collect();
    let Some(measured) = found.iter().flatten().next().map(|c| c.measured) else {
        return Vec::new();
    };
    Metric::ALL
        .iter()
        .map(|&m| {
            let meas = m.get(&measured);
            let mut row = vec![format!("{} (ms)", m.name()), num(meas)];
            for c in &found {
                match c {
                    Some(c) => {
                        let p = m.get(&c.predicted);
                        row.push(num(p));
                        row.push(pct(ape(p, meas)));
                    }
                    None => row.extend(["–".to_string(), "–".to_string()]),
                }
            }
            row
        })
        .collect()
}

/// The whole report.
pub fn render(title: &str, preamble: &str, experiments: &[Experiment], runs: &[ModelRun]) -> String {
    let mut s = format!("# {title}\n\n{preamble}\n\n## Headline: median APE (%) over the experiments\n\n");
    let mut header: Vec<String> = vec!["model".into(), "n".into()];
    header.extend(Metric::ALL.iter().map(|m| m.name().to_string()));
    let median_rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone(), r.rows.len().to_string()];
            row.extend(Metric::ALL.iter().map(|&m| pct(median_ape(&r.rows, m))));
            row
        })
        .collect();
    s.push_str(&table(&header, &median_rows));
    s.push_str(
        "\nRows named `leave-one-…-out` are held-out predictions: each experiment predicted by \
         coefficients fitted without its model (or TP degree). The others are in-sample.\n\n\
         ## MAPE (%) over the experiments\n\n",
    );
    header.push("objective".into());
    s.push_str(&table(&header, &summary_rows(runs)));
    s.push_str(
        "\n`objective` = weighted mean of the MAPEs (means ×1, p90 ×0.25, p99 ×0.1), what `--fit` \
         minimises. ITL mean is (E2E mean − TTFT mean)/(output_len − 1) for both measured and \
         simulated runs, as in the measurements file.\n\n## Mean signed error (%) (+ = over-prediction)\n\n",
    );
    let bias_rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let sm = r.summary();
            let mut row = vec![r.name.clone(), sm.experiments.to_string()];
            row.extend(Metric::ALL.iter().map(|&m| pct(sm.bias(m))));
            row.push(String::new());
            row
        })
        .collect();
    s.push_str(&table(&header, &bias_rows));
    s.push_str("\n## Per experiment\n");
    let mut eh: Vec<String> = vec!["figure".into(), "measured".into()];
    for r in runs {
        eh.push(r.name.clone());
        eh.push("err %".into());
    }
    for e in experiments {
        let workload = match (&e.workload, &e.trace) {
            (Some(w), _) => {
                let sp = &w.shared_prefix;
                let stages: Vec<String> =
                    w.stages.iter().map(|st| format!("{}×{}s", st.rate, st.duration_s)).collect();
                format!(
                    "{} ({} groups × {} users, {}+{} → {} tokens), stages {} req/s, {} requests",
                    w.preset,
                    sp.num_unique_system_prompts,
                    sp.num_users_per_system_prompt,
                    sp.system_prompt_len,
                    sp.question_len,
                    sp.output_len,
                    stages.join(", "),
                    w.num_requests
                )
            }
            (None, Some(t)) => format!("observed trace {}", t.data.display()),
            (None, None) => String::new(),
        };
        s.push_str(&format!(
            "\n### {} — {}\n\n{} on {} TP{} ({}), max_num_seqs {}, max_num_batched_tokens {}, {} KV blocks; {workload}\n\n",
            e.id,
            e.label(),
            e.model,
            e.hardware,
            e.tp,
            e.precision,
            e.max_num_seqs,
            e.max_num_batched_tokens,
            e.total_kv_blocks_gpu,
        ));
        s.push_str(&table(&eh, &experiment_rows(&e.id, runs)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurements::LatencyStats;

    fn st(v: f64) -> LatencyStats {
        LatencyStats {
            ttft_mean_ms: v,
            ttft_p90_ms: v,
            ttft_p99_ms: v,
            e2e_mean_ms: 100.0 * v,
            e2e_p90_ms: 100.0 * v,
            e2e_p99_ms: 100.0 * v,
            itl_mean_ms: v / 4.0,
        }
    }

    #[test]
    fn rows_show_measured_predicted_and_error() {
        let run = ModelRun {
            name: "m".into(),
            rows: vec![Comparison {
                id: "e1".into(),
                label: "x".into(),
                predicted: st(12.0),
                measured: st(10.0),
            }],
        };
        let rows = experiment_rows("e1", std::slice::from_ref(&run));
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[0], vec!["TTFT mean (ms)", "10.0", "12.0", "20.0"]);
        assert_eq!(rows[3], vec!["E2E mean (ms)", "1000", "1200", "20.0"]);
        assert_eq!(rows[6], vec!["ITL mean (ms)", "2.50", "3.00", "20.0"]);
        assert!(experiment_rows("nope", std::slice::from_ref(&run)).is_empty());
        let sum = summary_rows(&[run]);
        assert_eq!(sum[0][..3], ["m".to_string(), "1".into(), "20.0".into()]);
        assert_eq!(sum[0].last().unwrap(), "20.0");
    }
}
