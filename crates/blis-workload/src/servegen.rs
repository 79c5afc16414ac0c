//! ServeGen data directories (`servegen_data:` and `blis convert servegen`), converted as the
//! reference simulator converts them.
//!
//! A directory holds, per chunk (one client of the production trace), `chunk-<id>-trace.csv`
//! (rows `start_s, rate_rps, cv, pattern[, shape, scale_s]`, one per 10-minute window) and
//! `chunk-<id>-dataset.json` (`{"<start_s>": {"input_tokens": "{len: p, …}", "output_tokens":
//! …, "reason_ratio": …}}`, token-length PDFs as Python dict strings, usually every 6 hours).
//!
//! * Language and multimodal data become up to 15 cohorts: three simulated periods of
//!   `window_duration_secs` (default 600) separated by `drain_timeout_secs` of quiet, standing
//!   for midnight, morning and afternoon of the trace; for each period one of its three
//!   10-minute trace windows is picked at random, the chunks active in it (at that time of day
//!   on any day) are shuffled and dealt round-robin to the five SLO classes, and each
//!   (period, class) cohort gets the chunks' summed rate (averaged over days) as an absolute
//!   `spike.trace_rate`, their averaged arrival parameters (gamma unless most are Weibull) and
//!   lognormal length fits (moment fits of ln length, averaged).
//! * Reasoning data (datasets with `reason_ratio`) become five cohorts, one per SLO class, over
//!   the 10-minute window most chunks are active in, with the averaged reason-ratio PMF and
//!   single-round open-loop sessions.
//!
//! `time_window` keeps one period's cohorts; `span_start`/`span_end` (s) keep only trace rows
//! and datasets starting in that span. Randomness comes from the workload seed's own stream, so
//! picks differ from the reference's (its Go RNG) but are reproducible.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::RngExt;

use crate::error::{Result, WorkloadError};
use crate::rng::stream;
use crate::spec::{
    ArrivalSpec, CohortSpec, DistSpec, MultiTurnSpec, ReasoningSpec, ServeGenDataSpec, SpikeSpec,
};

/// Length of one ServeGen trace window (s).
const TRACE_WINDOW_S: f64 = 600.0;
const DAY_S: i64 = 86_400;
const CLASSES: [&str; 5] = ["critical", "standard", "batch", "sheddable", "background"];
/// (name, first second of the half hour) of the three periods.
const PERIODS: [(&str, i64); 3] = [("midnight", 0), ("morning", 28_800), ("afternoon", 50_400)];

/// What a ServeGen directory converts to.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub cohorts: Vec<CohortSpec>,
    /// Always 0: every cohort carries its absolute rate.
    pub aggregate_rate: f64,
    pub category: Option<String>,
}

#[derive(Debug, Clone)]
struct Row {
    start_s: f64,
    rate: f64,
    cv: f64,
    pattern: String,
    shape: f64,
    scale_s: f64,
}

/// A token-length PMF: (length, probability) pairs.
type Pmf = Vec<(i64, f64)>;

#[derive(Debug, Clone)]
struct Chunk {
    rows: Vec<Row>,
    /// Dataset start (s) → (input PDF, output PDF); empty windows left out.
    datasets: BTreeMap<i64, (Pmf, Pmf)>,
    reason_ratio: Option<Vec<(f64, f64)>>,
}

/// Loads and converts `sg.path` (relative paths are relative to the working directory).
pub fn load(sg: &ServeGenDataSpec, seed: i64) -> Result<Converted> {
    let window_s = match sg.window_duration_secs {
        None => 600,
        Some(w) if w > 0 && w <= 3_155_760_000 => w,
        Some(w) => return Err(WorkloadError::at("window_duration_secs", format!("must be > 0 s, got {w}"))),
    };
    let drain_s = match sg.drain_timeout_secs {
        None => 0,
        Some(d) if (0..=3_155_760_000).contains(&d) => d,
        Some(d) => return Err(WorkloadError::at("drain_timeout_secs", format!("must be ≥ 0 s, got {d}"))),
    };
    let period = match sg.time_window.as_deref() {
        None | Some("") => None,
        Some(p) if PERIODS.iter().any(|x| x.0 == p) => Some(p.to_string()),
        Some(p) => {
            return Err(WorkloadError::at(
                "time_window",
                format!("accepted: midnight, morning, afternoon, got {p:?}"),
            ));
        }
    };
    if let (Some(a), Some(b)) = (sg.span_start, sg.span_end)
        && b <= a
    {
        return Err(WorkloadError::at("span_end", format!("must be > span_start ({a}), got {b}")));
    }
    let span = (sg.span_start.unwrap_or(0), sg.span_end.unwrap_or(i64::MAX));
    let mut converted = convert(Path::new(&sg.path), window_s, drain_s, span, seed)?;
    if let Some(p) = period {
        if converted.category.as_deref() == Some("reasoning") {
            return Err(WorkloadError::at(
                "time_window",
                "not supported for reasoning data (it has no periods)",
            ));
        }
        converted.cohorts.retain(|c| c.id.as_deref().is_some_and(|id| id.starts_with(&format!("{p}-"))));
        if converted.cohorts.is_empty() {
            return Err(WorkloadError::at("time_window", format!("no cohort is active in the {p} period")));
        }
    }
    Ok(converted)
}

/// The workload spec `servegen_data: sg` stands for, written out (`blis convert servegen`):
/// the cohorts at absolute rates (`aggregate_rate: 0`), the category, and `seed`, which also
/// drove the conversion's random picks, and a `horizon` at the end of the last period (no
/// cohort sends after it), so the spec runs without `--num-requests` or `--horizon`. The result
/// is validated.
pub fn to_spec(sg: &ServeGenDataSpec, seed: i64) -> Result<crate::spec::WorkloadSpec> {
    let converted = load(sg, seed)?;
    let end_us = converted
        .cohorts
        .iter()
        .filter_map(|c| c.spike.as_ref().map(|s| s.start_time_us.saturating_add(s.duration_us)))
        .max();
    let spec = crate::spec::WorkloadSpec {
        horizon: end_us,
        version: Some("2".into()),
        seed: Some(seed),
        category: converted.category.or(Some("language".into())),
        aggregate_rate: Some(converted.aggregate_rate),
        cohorts: converted.cohorts,
        ..crate::spec::WorkloadSpec::default()
    };
    crate::validate::validate(&spec)?;
    Ok(spec)
}

/// Converts a directory with explicit period length, drain gap and trace span (s).
pub fn convert(dir: &Path, window_s: i64, drain_s: i64, span: (i64, i64), seed: i64) -> Result<Converted> {
    let at_path = |msg: String| WorkloadError::at("path", format!("{}: {msg}", dir.display()));
    let mut traces: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| at_path(format!("cannot read the directory: {e}")))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_prefix("chunk-")?.strip_suffix("-trace.csv")?.to_string();
            Some((id, e.path()))
        })
        .collect();
    traces.sort_by(|a, b| a.1.cmp(&b.1));
    if traces.is_empty() {
        return Err(at_path("no chunk-*-trace.csv files".into()));
    }
    let mut chunks = Vec::with_capacity(traces.len());
    for (id, trace) in &traces {
        let dataset = dir.join(format!("chunk-{id}-dataset.json"));
        chunks.push(read_chunk(trace, &dataset, span)?);
    }
    let mut rng = stream(seed as u64, "servegen");
    if chunks[0].reason_ratio.is_some() {
        return reasoning_cohorts(&chunks, window_s, &mut rng);
    }
    let mut cohorts = Vec::new();
    for (p, &(name, span_start)) in PERIODS.iter().enumerate() {
        // One of the period's three 10-minute windows, then the chunks active in it on any day.
        let window = span_start + rng.random_range(0..3i64) * TRACE_WINDOW_S as i64;
        let mut active: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.rows.iter().any(|r| r.rate > 0.0 && (r.start_s as i64).rem_euclid(DAY_S) == window))
            .collect();
        for i in (1..active.len()).rev() {
            active.swap(i, rng.random_range(0..=i));
        }
        let start_us = p as i64 * (window_s + drain_s) * 1_000_000;
        let mut classes: Vec<(&str, Vec<&Chunk>)> = CLASSES.iter().map(|c| (*c, Vec::new())).collect();
        for (i, c) in active.into_iter().enumerate() {
            classes[i % 5].1.push(c);
        }
        classes.sort_by_key(|c| c.0);
        for (class, members) in classes {
            if members.is_empty() {
                continue;
            }
            if let Some(cohort) = period_cohort(name, class, &members, window, start_us, window_s) {
                cohorts.push(cohort);
            }
        }
    }
    if cohorts.is_empty() {
        return Err(at_path("no chunk is active in any period (every rate is 0)".into()));
    }
    Ok(Converted { cohorts, aggregate_rate: 0.0, category: None })
}

/// The cohort of one (period, SLO class): summed rates, averaged arrival parameters and
/// averaged lognormal fits of the datasets at that time of day.
fn period_cohort(
    period: &str,
    class: &str,
    members: &[&Chunk],
    window: i64,
    start_us: i64,
    window_s: i64,
) -> Option<CohortSpec> {
    let at_window = |r: &&Row| (r.start_s as i64).rem_euclid(DAY_S) == window;
    let mut rate = 0.0;
    let (mut cv, mut shape, mut scale, mut n_arrival, mut weibull, mut gamma) = (0.0, 0.0, 0.0, 0.0, 0, 0);
    let mut fits = [0.0f64; 4];
    let mut n_fit = 0.0;
    for c in members {
        let rows: Vec<&Row> = c.rows.iter().filter(|r| r.rate > 0.0).filter(at_window).collect();
        if !rows.is_empty() {
            rate += rows.iter().map(|r| r.rate).sum::<f64>() / rows.len() as f64;
        }
        for r in &rows {
            match r.pattern.to_ascii_lowercase().as_str() {
                "gamma" => gamma += 1,
                "weibull" => weibull += 1,
                _ => continue,
            }
            cv += r.cv.max(0.0);
            if r.shape > 0.0 && r.scale_s > 0.0 {
                shape += r.shape;
                scale += r.scale_s * 1e6;
            }
            n_arrival += 1.0;
        }
        // Datasets at the time of day of the nearest one at or before the window.
        let Some((&nearest, _)) = c.datasets.range(..=window).next_back() else { continue };
        let day_time = nearest.rem_euclid(DAY_S);
        let mut sum = [0.0f64; 4];
        let mut k = 0.0;
        for (_, (input, output)) in c.datasets.iter().filter(|(t, _)| t.rem_euclid(DAY_S) == day_time) {
            if let (Some((mi, si)), Some((mo, so))) = (lognormal_fit(input), lognormal_fit(output)) {
                sum = [sum[0] + mi, sum[1] + si, sum[2] + mo, sum[3] + so];
                k += 1.0;
            }
        }
        if k > 0.0 {
            for (f, s) in fits.iter_mut().zip(sum) {
                *f += s / k;
            }
            n_fit += 1.0;
        }
    }
    if rate <= 0.0 {
        return None;
    }
    let lognormal = |mu: f64, sigma: f64| DistSpec {
        kind: "lognormal".into(),
        params: [("mu".to_string(), mu), ("sigma".to_string(), sigma)].into(),
    };
    let (input, output) = if n_fit > 0.0 {
        (lognormal(fits[0] / n_fit, fits[1] / n_fit), lognormal(fits[2] / n_fit, fits[3] / n_fit))
    } else {
        let gauss = |mean: f64, sd: f64| DistSpec {
            kind: "gaussian".into(),
            params: [("mean", mean), ("std_dev", sd), ("min", 1.0), ("max", 32768.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        (gauss(512.0, 128.0), gauss(128.0, 32.0))
    };
    let arrival = if n_arrival > 0.0 {
        let explicit = shape > 0.0 && scale > 0.0;
        ArrivalSpec {
            process: if weibull > gamma { "weibull" } else { "gamma" }.into(),
            cv: (cv > 0.0).then_some(cv / n_arrival),
            shape: explicit.then_some(shape / n_arrival),
            scale: explicit.then_some(scale / n_arrival),
        }
    } else {
        ArrivalSpec { process: "poisson".into(), ..ArrivalSpec::default() }
    };
    Some(CohortSpec {
        id: Some(format!("{period}-{class}")),
        population: members.len() as i64,
        slo_class: Some(class.into()),
        streaming: Some(true),
        rate_fraction: Some(1.0),
        arrival: Some(arrival),
        input_distribution: Some(input),
        output_distribution: Some(output),
        spike: Some(SpikeSpec {
            start_time_us: start_us,
            duration_us: window_s * 1_000_000,
            trace_rate: Some(rate),
        }),
        ..CohortSpec::default()
    })
}

/// Reasoning data: one cohort per SLO class over the best-covered 10-minute window.
fn reasoning_cohorts(chunks: &[Chunk], window_s: i64, rng: &mut crate::rng::StreamRng) -> Result<Converted> {
    let mut coverage: HashMap<i64, usize> = HashMap::new();
    for c in chunks {
        for r in c.rows.iter().filter(|r| r.rate > 0.0) {
            *coverage.entry((r.start_s / TRACE_WINDOW_S) as i64).or_default() += 1;
        }
    }
    let Some(best) =
        (0..DAY_S / TRACE_WINDOW_S as i64).max_by_key(|w| (coverage.get(w).copied().unwrap_or(0), -w))
    else {
        return Err(WorkloadError::at("path", "no trace window has an active chunk"));
    };
    if coverage.get(&best).copied().unwrap_or(0) == 0 {
        return Err(WorkloadError::at("path", "no trace window has an active chunk (every rate is 0)"));
    }
    let window = best * TRACE_WINDOW_S as i64;
    let with_ratio: Vec<&Chunk> = chunks.iter().filter(|c| c.reason_ratio.is_some()).collect();
    // Average reason-ratio PMF over the chunks, in whole percent.
    let mut pmf: BTreeMap<i64, f64> = BTreeMap::new();
    for c in &with_ratio {
        for &(ratio, p) in c.reason_ratio.as_deref().unwrap_or_default() {
            *pmf.entry(((ratio * 100.0) as i64).clamp(0, 100)).or_default() += p;
        }
    }
    let ratio = DistSpec {
        kind: "empirical".into(),
        params: pmf.iter().map(|(k, p)| (k.to_string(), p / with_ratio.len() as f64)).collect(),
    };
    let mut shuffled = with_ratio.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.random_range(0..=i));
    }
    let mut classes: Vec<(&str, Vec<&Chunk>)> = CLASSES.iter().map(|c| (*c, Vec::new())).collect();
    for (i, c) in shuffled.into_iter().enumerate() {
        classes[i % 5].1.push(c);
    }
    classes.sort_by_key(|c| c.0);
    let mut cohorts = Vec::new();
    for (class, members) in classes {
        let rate: f64 = members
            .iter()
            .filter_map(|c| c.rows.iter().find(|r| r.start_s as i64 == window).map(|r| r.rate))
            .sum();
        if members.is_empty() || rate <= 0.0 {
            continue;
        }
        let Some(mut cohort) = period_cohort("reasoning", class, &members, window, 0, window_s) else {
            continue;
        };
        cohort.spike =
            Some(SpikeSpec { start_time_us: 0, duration_us: window_s * 1_000_000, trace_rate: Some(rate) });
        cohort.arrival = Some(ArrivalSpec { process: "poisson".into(), ..ArrivalSpec::default() });
        cohort.closed_loop = Some(false);
        cohort.reasoning = Some(ReasoningSpec {
            reason_ratio_distribution: Some(ratio.clone()),
            multi_turn: Some(MultiTurnSpec {
                max_rounds: 1,
                think_time_us: Some(0),
                context_growth: None,
                single_session: None,
            }),
        });
        cohorts.push(cohort);
    }
    if cohorts.is_empty() {
        return Err(WorkloadError::at("path", "no reasoning cohort has a positive rate"));
    }
    Ok(Converted { cohorts, aggregate_rate: 0.0, category: Some("reasoning".into()) })
}

/// (mu, sigma) of ln(length) under `pdf` (lengths ≤ 0 and zero weights skipped).
fn lognormal_fit(pdf: &[(i64, f64)]) -> Option<(f64, f64)> {
    let (mut w, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for &(len, p) in pdf.iter().filter(|&&(len, p)| len > 0 && p > 0.0) {
        let x = (len as f64).ln();
        w += p;
        s1 += p * x;
        s2 += p * x * x;
    }
    if w <= 0.0 {
        return None;
    }
    let mu = s1 / w;
    let var = (s2 / w - mu * mu).max(0.0);
    Some((mu, var.sqrt()))
}

fn read_chunk(trace: &Path, dataset: &Path, span: (i64, i64)) -> Result<Chunk> {
    let file_err = |p: &Path, msg: String| WorkloadError::msg(msg).in_file(p.display().to_string());
    let text = std::fs::read_to_string(trace).map_err(|e| file_err(trace, format!("cannot read: {e}")))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        let num = |k: usize| cols.get(k).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite());
        // Rows that do not parse (a header, short rows) are skipped, as the reference does.
        let (Some(start_s), Some(rate), Some(cv)) = (num(0), num(1), num(2)) else { continue };
        if cols.len() < 4 {
            continue;
        }
        if rate < 0.0 || start_s < 0.0 {
            return Err(file_err(trace, format!("line {}: start and rate must be ≥ 0, got {line:?}", n + 1)));
        }
        let start = start_s as i64;
        if start < span.0 || start >= span.1 {
            continue;
        }
        rows.push(Row {
            start_s,
            rate,
            cv,
            pattern: cols[3].to_string(),
            shape: num(4).unwrap_or(0.0),
            scale_s: num(5).unwrap_or(0.0),
        });
    }
    let mut datasets = BTreeMap::new();
    let mut reason_ratio = None;
    if dataset.exists() {
        let text =
            std::fs::read_to_string(dataset).map_err(|e| file_err(dataset, format!("cannot read: {e}")))?;
        let raw: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&text)
            .map_err(|e| file_err(dataset, format!("not a ServeGen dataset: {e}")))?;
        let mut keyed: Vec<(i64, &BTreeMap<String, String>)> =
            raw.iter().filter_map(|(k, v)| k.trim().parse::<f64>().ok().map(|t| (t as i64, v))).collect();
        keyed.sort_by_key(|x| x.0);
        for (t, window) in keyed {
            if reason_ratio.is_none()
                && let Some(r) =
                    window.get("reason_ratio").filter(|r| !r.trim().is_empty() && r.trim() != "{}")
            {
                let pdf = parse_pdf(r).map_err(|e| file_err(dataset, format!("{t}.reason_ratio: {e}")))?;
                if pdf.iter().any(|&(k, _)| !(0.0..=1.0).contains(&k)) {
                    return Err(file_err(
                        dataset,
                        format!("{t}.reason_ratio: keys must be ratios in [0, 1]"),
                    ));
                }
                reason_ratio = Some(pdf);
            }
            if t >= span.1 {
                continue;
            }
            let (Some(i), Some(o)) = (window.get("input_tokens"), window.get("output_tokens")) else {
                continue;
            };
            if i.trim() == "{}" || o.trim() == "{}" || i.trim().is_empty() || o.trim().is_empty() {
                continue;
            }
            let lens = |s: &str, key: &str| -> Result<Vec<(i64, f64)>> {
                Ok(parse_pdf(s)
                    .map_err(|e| file_err(dataset, format!("{t}.{key}: {e}")))?
                    .into_iter()
                    .map(|(k, p)| (k as i64, p))
                    .collect())
            };
            datasets.insert(t, (lens(i, "input_tokens")?, lens(o, "output_tokens")?));
        }
    }
    Ok(Chunk { rows, datasets, reason_ratio })
}

/// A Python dict string `{100: 0.5, "0.3": 1e-2, }` → (key, probability) pairs.
fn parse_pdf(text: &str) -> std::result::Result<Vec<(f64, f64)>, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("expected a {{key: probability, …}} dict, got {:.40}", text.trim()))?;
    let mut out = Vec::new();
    for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(':').ok_or_else(|| format!("{pair:?} is not key: value"))?;
        let k: f64 =
            k.trim().trim_matches(['"', '\'']).parse().map_err(|_| format!("key {k:?} is not a number"))?;
        let v: f64 = v.trim().parse().map_err(|_| format!("value {v:?} is not a number"))?;
        if !(k.is_finite() && v.is_finite() && v >= 0.0) {
            return Err(format!("{pair:?}: keys must be finite and probabilities ≥ 0"));
        }
        out.push((k, v));
    }
    if out.is_empty() {
        return Err("empty dict".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small ServeGen-shaped directory: `n` chunks active at midnight and morning windows.
    pub(crate) fn write_dir(dir: &Path, n: usize, reasoning: bool) {
        for i in 0..n {
            let mut trace = String::new();
            for day in 0..2i64 {
                for w in [0i64, 600, 1200, 28_800, 29_400, 30_000, 50_400, 51_000, 51_600] {
                    let start = day * DAY_S + w;
                    trace.push_str(&format!("{start},{},{},Gamma,{},{}\n", 0.5 + i as f64, 1.5, 0.44, 4.5));
                }
            }
            std::fs::write(dir.join(format!("chunk-{i}-trace.csv")), trace).unwrap();
            let ratio = if reasoning { r#", "reason_ratio": "{0.0: 0.25, 0.9: 0.75}""# } else { "" };
            let dataset = format!(
                r#"{{"0": {{"input_tokens": "{{100: 0.5, 400: 0.5}}", "output_tokens": "{{50: 1.0}}"{ratio}}},
                   "21600": {{"input_tokens": "{{}}", "output_tokens": "{{}}"}}}}"#
            );
            std::fs::write(dir.join(format!("chunk-{i}-dataset.json")), dataset).unwrap();
        }
    }

    #[test]
    fn language_data_becomes_period_cohorts() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 7, false);
        let c = convert(dir.path(), 600, 180, (0, i64::MAX), 42).unwrap();
        assert_eq!(c.aggregate_rate, 0.0);
        // 7 chunks active in every period → 5 classes × 3 periods.
        assert_eq!(c.cohorts.len(), 15);
        let pop: i64 = c
            .cohorts
            .iter()
            .filter(|x| x.id.as_deref().unwrap().starts_with("morning-"))
            .map(|x| x.population)
            .sum();
        assert_eq!(pop, 7);
        let m = c.cohorts.iter().find(|x| x.id.as_deref() == Some("morning-batch")).unwrap();
        let spike = m.spike.as_ref().unwrap();
        assert_eq!((spike.start_time_us, spike.duration_us), (780_000_000, 600_000_000));
        let input = m.input_distribution.as_ref().unwrap();
        assert_eq!(input.kind, "lognormal");
        let mu = input.params["mu"];
        assert!((mu - ((100f64.ln() + 400f64.ln()) / 2.0)).abs() < 1e-9, "{mu}");
        assert_eq!(m.arrival.as_ref().unwrap().process, "gamma");
        assert_eq!(m.arrival.as_ref().unwrap().scale, Some(4.5e6));
        // The same seed converts the same way.
        assert_eq!(convert(dir.path(), 600, 180, (0, i64::MAX), 42).unwrap(), c);
    }

    #[test]
    fn a_written_out_directory_generates_the_same_requests() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 6, false);
        let sg = ServeGenDataSpec {
            path: dir.path().display().to_string(),
            window_duration_secs: Some(60),
            drain_timeout_secs: Some(30),
            ..ServeGenDataSpec::default()
        };
        let written = to_spec(&sg, 9).unwrap();
        let text = crate::to_yaml(&written).unwrap();
        let reread = crate::parse_spec(&text, "converted.yaml").unwrap();
        let inline = crate::spec::WorkloadSpec {
            seed: Some(9),
            horizon: written.horizon,
            servegen_data: Some(sg),
            ..crate::spec::WorkloadSpec::default()
        };
        let drain = |s: &crate::spec::WorkloadSpec| {
            let mut src = crate::build_source(s, &crate::Overrides::default()).unwrap();
            std::iter::from_fn(|| src.next_request())
                .map(|r| (r.arrival_us, r.input.len()))
                .collect::<Vec<_>>()
        };
        let (a, b) = (drain(&reread), drain(&inline));
        assert!(a.len() > 100, "{} requests", a.len());
        assert_eq!(a, b);
    }

    #[test]
    fn reasoning_data_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 5, true);
        let c = convert(dir.path(), 600, 180, (0, i64::MAX), 1).unwrap();
        assert_eq!(c.category.as_deref(), Some("reasoning"));
        assert_eq!(c.cohorts.len(), 5);
        let r = c.cohorts[0].reasoning.as_ref().unwrap();
        assert_eq!(r.reason_ratio_distribution.as_ref().unwrap().params["90"], 0.75);
        let empty = tempfile::tempdir().unwrap();
        let e = convert(empty.path(), 600, 180, (0, i64::MAX), 1).unwrap_err().to_string();
        assert!(e.contains("no chunk-*-trace.csv files"), "{e}");
        assert_eq!(parse_pdf("{1: 0.5, 2: 5e-1,}").unwrap(), vec![(1.0, 0.5), (2.0, 0.5)]);
        assert!(parse_pdf("[1, 2]").is_err());
    }
}
