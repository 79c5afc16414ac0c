//! Post-hoc saturation verdicts (`--post-hoc-detector`, outputs.md §9.5): was the system
//! keeping up with its offered load, falling behind, or overloaded?
//!
//! Events are rebuilt from the requests (arrival at the arrival time, completion at
//! arrival + E2E; a request that never completed — timed out, dropped, unfinished — is an
//! arrival only, so it stays in flight), sorted by (time, arrival before completion, request
//! id) and fed one at a time; after each event the detector emits a verdict. The final verdict
//! is the plurality of the verdicts emitted during the `final_window` that ends at the **last
//! arrival** (ties go to the most severe); the reported score is the mean score over the same
//! events.
//!
//! Two departures from the reference, both because it called overloaded runs stable: it
//! rebuilt events from completed requests only (a run where a third of the requests timed out
//! had no backlog at all), and its final window was the end of the trace, i.e. the drain after
//! the last arrival, where every backlog shrinks (backlog-drift then reported STABLE with a
//! large negative slope).
//! Every detector is O(1) per event, so ten-million-request runs are fine.
//!
//! * **composite**: `rate_deficit = max(0, 1 − completions/arrivals)`; the latency trend is
//!   `max(0, (mean 2nd half − mean 1st half)/mean 1st half)` of the completion-ordered E2Es,
//!   used only when n ≥ 20 and the four quartile means strictly increase;
//!   `score = max(rate_deficit, min(trend, 1))`; with noise floor `1/√arrivals`: STABLE if
//!   score < floor, OVERLOADED if trend > floor, else BACKLOGGED.
//! * **threshold**: mean E2E so far vs a threshold (default 5000 ms): below → STABLE with score
//!   `0.5·mean/thr`, else OVERLOADED with score `0.75 + min(0.25, (mean − thr)/thr/4)`.
//! * **backlog-drift**: in-flight requests (arrivals − completions) sampled at the end of 60 s
//!   buckets (gaps forward-filled); the score is the least-squares slope of that series
//!   (requests per bucket); with `r` = arrivals per bucket so far, STABLE if slope ≤
//!   `r/√arrivals`, BACKLOGGED if ≤ 3× that, else OVERLOADED (the reference compares the slope
//!   with `1/√arrivals` alone, which calls the ±1 jitter of a steady 10 req/s backlog a
//!   drift). Its final window is one bucket. Arrivals spanning fewer than 10 buckets get
//!   buckets of a tenth of their span (one 60 s bucket holds no slope at all).

use serde::Serialize;

use crate::metrics::RequestRecord;

/// Accepted detector names.
pub const NAMES: &[&str] = &["composite", "threshold", "backlog-drift"];

/// Default final window of composite and threshold (30 s).
pub const DEFAULT_FINAL_WINDOW_US: u64 = 30_000_000;
/// Default E2E threshold of the threshold detector (5000 ms).
pub const DEFAULT_THRESHOLD_MS: f64 = 5000.0;
/// Bucket (and final window) of the backlog-drift detector (60 s).
pub const DEFAULT_BUCKET_US: u64 = 60_000_000;

/// A saturation verdict, least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Stable,
    Backlogged,
    Overloaded,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Stable => "STABLE",
            Verdict::Backlogged => "BACKLOGGED",
            Verdict::Overloaded => "OVERLOADED",
        }
    }
}

/// A configured detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Detector {
    Composite,
    Threshold { threshold_ms: f64 },
    BacklogDrift { bucket_us: u64 },
}

/// `--post-hoc-detector`: which saturation verdict to add to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// Completion-rate deficit and E2E latency trend.
    Composite,
    /// Mean E2E against a threshold (5 s).
    Threshold,
    /// Slope of the in-flight backlog over 60 s buckets.
    BacklogDrift,
}

impl DetectorKind {
    /// The detector with its default parameters.
    pub fn detector(self) -> Detector {
        match self {
            DetectorKind::Composite => Detector::Composite,
            DetectorKind::Threshold => Detector::Threshold { threshold_ms: DEFAULT_THRESHOLD_MS },
            DetectorKind::BacklogDrift => Detector::BacklogDrift { bucket_us: DEFAULT_BUCKET_US },
        }
    }
}

/// `--detectors`: one detector, a comma list of them, or `all`. Kept in the canonical order
/// (composite, threshold, backlog-drift) without repeats, so `threshold,composite` and
/// `composite,threshold` run, report and print the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DetectorSelection {
    kinds: Vec<DetectorKind>,
    /// Written as `all` (printed back so).
    all: bool,
}

impl DetectorSelection {
    /// One detector.
    pub fn one(kind: DetectorKind) -> Self {
        DetectorSelection { kinds: vec![kind], all: false }
    }

    /// The selected detectors, in canonical order.
    pub fn kinds(&self) -> &[DetectorKind] {
        &self.kinds
    }

    /// The detectors with their default parameters.
    pub fn detectors(&self) -> Vec<Detector> {
        self.kinds.iter().map(|k| k.detector()).collect()
    }
}

impl std::str::FromStr for DetectorSelection {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        use clap::ValueEnum;
        let accepted = || format!("{}, a comma list of them, or all", NAMES.join(", "));
        if text.trim() == "all" {
            return Ok(DetectorSelection { kinds: DetectorKind::value_variants().to_vec(), all: true });
        }
        let mut kinds = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                return Err(format!(
                    "\"all\" cannot be combined with detector names (accepted: {})",
                    accepted()
                ));
            }
            let kind = DetectorKind::from_str(name, false)
                .map_err(|_| format!("unknown detector {name:?} (accepted: {})", accepted()))?;
            kinds.push(kind);
        }
        if kinds.is_empty() {
            return Err(format!("{text:?} selects no detector (accepted: {})", accepted()));
        }
        kinds.sort_by_key(|k| *k as u8);
        kinds.dedup();
        Ok(DetectorSelection { kinds, all: false })
    }
}

impl std::fmt::Display for DetectorSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.all {
            return f.write_str("all");
        }
        let names: Vec<&str> = self.kinds.iter().map(|k| k.detector().name()).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for DetectorSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for DetectorSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            List(Vec<String>),
        }
        let text = match Form::deserialize(d)? {
            Form::Text(t) => t,
            Form::List(items) => items.join(","),
        };
        text.parse().map_err(D::Error::custom)
    }
}

impl Detector {
    /// The detector called `name` (see [`NAMES`]) with default parameters.
    pub fn by_name(name: &str) -> Option<Detector> {
        Some(match name {
            "composite" => Detector::Composite,
            "threshold" => Detector::Threshold { threshold_ms: DEFAULT_THRESHOLD_MS },
            "backlog-drift" => Detector::BacklogDrift { bucket_us: DEFAULT_BUCKET_US },
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Detector::Composite => "composite",
            Detector::Threshold { .. } => "threshold",
            Detector::BacklogDrift { .. } => "backlog-drift",
        }
    }

    /// The final window used when none is given.
    pub fn default_final_window_us(&self) -> u64 {
        match self {
            Detector::BacklogDrift { bucket_us } => *bucket_us,
            _ => DEFAULT_FINAL_WINDOW_US,
        }
    }
}

/// One request; `completion_us` = [`NEVER`] when it did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub id: u64,
    pub arrival_us: u64,
    pub completion_us: u64,
}

/// `completion_us` of a request that never completed.
pub const NEVER: u64 = u64::MAX;

/// The `saturation` object of the metrics document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SaturationDoc {
    /// The detector of the verdict (the most severe one when several ran).
    pub detector: &'static str,
    pub verdict: Verdict,
    /// Mean of the detector's score over the events of the final window (see the module
    /// docs for what each detector's score means).
    pub score: f64,
    /// Every detector's verdict when several ran (`--detectors composite,threshold`, `all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<std::collections::BTreeMap<&'static str, DetectorVerdict>>,
}

/// Samples of `records` (times rebuilt from the records' s/ms fields, rounded to the µs they
/// were recorded in); requests that did not complete never leave.
pub fn samples_from_records<'a>(records: impl IntoIterator<Item = &'a RequestRecord>) -> Vec<Sample> {
    records
        .into_iter()
        .map(|r| {
            let arrival_us = (r.arrived_at_s * 1e6).round() as u64;
            let completion_us = match (r.outcome, r.e2e_ms) {
                ("completed", Some(e2e)) => arrival_us + (e2e * 1000.0).round() as u64,
                _ => NEVER,
            };
            Sample { id: r.request_id, arrival_us, completion_us }
        })
        .collect()
}

/// Runs `detector` over `samples`. `unfinished` counts requests that arrived but never
/// completed: when nothing completed at all, any such request makes the verdict OVERLOADED
/// (score 1); an empty run is STABLE (score 0).
pub fn detect(
    detector: Detector,
    samples: &[Sample],
    unfinished: u64,
    final_window_us: Option<u64>,
) -> SaturationDoc {
    detect_all(&[detector], samples, unfinished, final_window_us, None).expect("no trace is written")
}

/// Runs every detector of `detectors` over the same events. The document's top-level verdict
/// is the most severe one (the first such detector in `detectors`), and `verdicts` holds each
/// detector's when there is more than one. With `trace`, the per-event verdicts are written
/// there as the reference's saturation report: `{"final": {detector: LEVEL}, "trace":
/// [{timestamp, detector, result: {level, score, confidence, signals}}]}`, one record per
/// event and detector (in `detectors` order).
pub fn detect_all(
    detectors: &[Detector],
    samples: &[Sample],
    unfinished: u64,
    final_window_us: Option<u64>,
    mut trace: Option<&mut dyn std::io::Write>,
) -> std::io::Result<SaturationDoc> {
    assert!(!detectors.is_empty(), "at least one detector");
    // (time, 0 = arrival / 1 = completion, id, E2E)
    let mut events: Vec<(u64, u8, u64, u64)> = Vec::with_capacity(samples.len() * 2);
    for s in samples {
        events.push((s.arrival_us, 0, s.id, 0));
        if s.completion_us != NEVER {
            let completion = s.completion_us.max(s.arrival_us);
            events.push((completion, 1, s.id, completion - s.arrival_us));
        }
    }
    events.sort_unstable();
    let completed_any = samples.iter().any(|s| s.completion_us != NEVER);
    let last_arrival = samples.iter().map(|s| s.arrival_us).max().unwrap_or(0);
    let first_arrival = samples.iter().map(|s| s.arrival_us).min().unwrap_or(0);
    let tuned: Vec<Detector> = detectors
        .iter()
        .map(|&d| match d {
            Detector::BacklogDrift { bucket_us } if (last_arrival - first_arrival) < 10 * bucket_us => {
                Detector::BacklogDrift { bucket_us: ((last_arrival - first_arrival) / 10).max(1000) }
            }
            d => d,
        })
        .collect();
    let window_start: Vec<u64> = tuned
        .iter()
        .map(|d| last_arrival.saturating_sub(final_window_us.unwrap_or_else(|| d.default_final_window_us())))
        .collect();
    let mut states: Vec<State> = tuned.iter().map(|&d| State::new(d)).collect();
    let mut votes = vec![[0u64; 3]; tuned.len()];
    let mut scores = vec![(0.0f64, 0u64); tuned.len()];
    for &(time, kind, _, e2e) in &events {
        for (k, state) in states.iter_mut().enumerate() {
            let (verdict, s) = state.feed(time, kind == 1, e2e);
            if time >= window_start[k] && time <= last_arrival {
                votes[k][verdict as usize] += 1;
                scores[k].0 += s;
                scores[k].1 += 1;
            }
        }
    }
    let verdicts: Vec<DetectorVerdict> = (0..tuned.len())
        .map(|k| {
            if !completed_any {
                let (verdict, score) =
                    if unfinished > 0 { (Verdict::Overloaded, 1.0) } else { (Verdict::Stable, 0.0) };
                return DetectorVerdict { verdict, score };
            }
            let verdict = [Verdict::Overloaded, Verdict::Backlogged, Verdict::Stable]
                .into_iter()
                .max_by_key(|v| (votes[k][*v as usize], *v))
                .expect("three verdicts");
            DetectorVerdict { verdict, score: scores[k].0 / scores[k].1.max(1) as f64 }
        })
        .collect();
    if let Some(out) = trace.as_mut() {
        write_report(out, &tuned, &verdicts, &events)?;
    }
    let top =
        (0..tuned.len()).max_by_key(|&k| (verdicts[k].verdict, std::cmp::Reverse(k))).expect("non-empty");
    Ok(SaturationDoc {
        detector: tuned[top].name(),
        verdict: verdicts[top].verdict,
        score: verdicts[top].score,
        verdicts: (tuned.len() > 1)
            .then(|| tuned.iter().zip(&verdicts).map(|(d, v)| (d.name(), *v)).collect()),
    })
}

/// One detector's final verdict.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct DetectorVerdict {
    pub verdict: Verdict,
    pub score: f64,
}

/// One per-event record of the saturation report.
#[derive(Serialize)]
struct TraceRecord {
    timestamp: u64,
    detector: &'static str,
    result: EventResult,
}

#[derive(Serialize)]
struct EventResult {
    level: Verdict,
    score: f64,
    confidence: f64,
    signals: std::collections::BTreeMap<&'static str, f64>,
}

fn write_report(
    out: &mut dyn std::io::Write,
    detectors: &[Detector],
    verdicts: &[DetectorVerdict],
    events: &[(u64, u8, u64, u64)],
) -> std::io::Result<()> {
    let finals: std::collections::BTreeMap<&str, Verdict> =
        detectors.iter().zip(verdicts).map(|(d, v)| (d.name(), v.verdict)).collect();
    write!(
        out,
        "{{\"final\":{},\"trace\":[",
        serde_json::to_string(&finals).map_err(std::io::Error::other)?
    )?;
    let mut states: Vec<State> = detectors.iter().map(|&d| State::new(d)).collect();
    let mut first = true;
    for &(time, kind, _, e2e) in events {
        for state in &mut states {
            let (level, score) = state.feed(time, kind == 1, e2e);
            let (confidence, signals) = state.signals();
            let record = TraceRecord {
                timestamp: time,
                detector: state.detector.name(),
                result: EventResult { level, score, confidence, signals },
            };
            out.write_all(if first { b"\n" } else { b",\n" })?;
            first = false;
            serde_json::to_writer(&mut *out, &record).map_err(std::io::Error::other)?;
        }
    }
    out.write_all(b"\n]}\n")
}

struct State {
    detector: Detector,
    arrivals: u64,
    completions: u64,
    /// Prefix sums of completion-ordered E2Es (µs); `e2e_prefix[k]` = Σ of the first k.
    e2e_prefix: Vec<f64>,
    drift: Drift,
}

impl State {
    fn new(detector: Detector) -> Self {
        State { detector, arrivals: 0, completions: 0, e2e_prefix: vec![0.0], drift: Drift::default() }
    }

    fn feed(&mut self, time: u64, completion: bool, e2e_us: u64) -> (Verdict, f64) {
        if completion {
            self.completions += 1;
            let last = *self.e2e_prefix.last().expect("starts with 0");
            self.e2e_prefix.push(last + e2e_us as f64);
        } else {
            self.arrivals += 1;
        }
        let floor = 1.0 / (self.arrivals.max(1) as f64).sqrt();
        match self.detector {
            Detector::Composite => {
                let deficit = (1.0 - self.completions as f64 / self.arrivals.max(1) as f64).max(0.0);
                let trend = self.trend();
                let score = deficit.max(trend.min(1.0));
                let verdict = if score < floor {
                    Verdict::Stable
                } else if trend > floor {
                    Verdict::Overloaded
                } else {
                    Verdict::Backlogged
                };
                (verdict, score)
            }
            Detector::Threshold { threshold_ms } => {
                if self.completions == 0 {
                    return (Verdict::Stable, 0.0);
                }
                let mean_ms = self.e2e_prefix[self.completions as usize] / self.completions as f64 / 1000.0;
                if mean_ms < threshold_ms {
                    (Verdict::Stable, 0.5 * mean_ms / threshold_ms)
                } else {
                    (Verdict::Overloaded, 0.75 + ((mean_ms - threshold_ms) / threshold_ms / 4.0).min(0.25))
                }
            }
            Detector::BacklogDrift { bucket_us } => {
                let in_flight = self.arrivals as f64 - self.completions as f64;
                let slope = self.drift.feed(time, bucket_us.max(1), in_flight);
                let buckets = (self.drift.current + 1) as f64;
                let floor = floor * (self.arrivals as f64 / buckets).max(1.0);
                let verdict = if slope <= floor {
                    Verdict::Stable
                } else if slope <= 3.0 * floor {
                    Verdict::Backlogged
                } else {
                    Verdict::Overloaded
                };
                (verdict, slope)
            }
        }
    }

    /// (confidence, signals) after the last event, as the reference's report names them.
    fn signals(&self) -> (f64, std::collections::BTreeMap<&'static str, f64>) {
        let arrivals = self.arrivals as f64;
        let floor = 1.0 / arrivals.max(1.0).sqrt();
        let ramp = (arrivals / 20.0).min(1.0);
        let mut m = std::collections::BTreeMap::new();
        match self.detector {
            Detector::Composite => {
                let trend = self.trend();
                m.insert("rate_deficit", (1.0 - self.completions as f64 / arrivals.max(1.0)).max(0.0));
                m.insert("latency_trend_raw", self.raw_trend().min(1.0));
                m.insert("latency_trend", trend.min(1.0));
                m.insert("quartile_monotone", if self.quartiles_rise() { 1.0 } else { 0.0 });
                m.insert("noise_floor", floor);
                (ramp, m)
            }
            Detector::Threshold { threshold_ms } => {
                let n = self.completions as f64;
                if self.completions > 0 {
                    m.insert("mean_e2e", self.e2e_prefix[self.completions as usize] / n / 1000.0);
                    m.insert("threshold", threshold_ms);
                }
                (if n > 0.0 { 1.0 - 1.0 / (n + 1.0).sqrt() } else { 0.0 }, m)
            }
            Detector::BacklogDrift { .. } => {
                let buckets = (self.drift.current + 1) as f64;
                m.insert("in_flight", arrivals - self.completions as f64);
                m.insert("arrivals", arrivals);
                m.insert("completions", self.completions as f64);
                m.insert("running_slope", self.drift.last_slope);
                m.insert("noise_floor", floor * (arrivals / buckets).max(1.0));
                (ramp, m)
            }
        }
    }

    /// Relative growth of the completion-ordered E2E halves, without the quartile condition.
    fn raw_trend(&self) -> f64 {
        let n = self.completions as usize;
        if n < 2 {
            return 0.0;
        }
        let p = &self.e2e_prefix;
        let first = p[n / 2] / (n / 2) as f64;
        let second = (p[n] - p[n / 2]) / (n - n / 2) as f64;
        if first <= 0.0 { 0.0 } else { ((second - first) / first).max(0.0) }
    }

    /// Whether the four quartile means of the completion-ordered E2Es strictly increase (n ≥ 20).
    fn quartiles_rise(&self) -> bool {
        let n = self.completions as usize;
        if n < 20 {
            return false;
        }
        let p = &self.e2e_prefix;
        let q: Vec<f64> = (0..4)
            .map(|k| (p[(k + 1) * n / 4] - p[k * n / 4]) / ((k + 1) * n / 4 - k * n / 4) as f64)
            .collect();
        q.windows(2).all(|w| w[1] > w[0])
    }

    /// Relative growth of completion-ordered E2E (0 unless n ≥ 20 and quartile means rise).
    fn trend(&self) -> f64 {
        let n = self.completions as usize;
        if n < 20 {
            return 0.0;
        }
        let p = &self.e2e_prefix;
        let mean = |a: usize, b: usize| (p[b] - p[a]) / (b - a) as f64;
        let q: Vec<usize> = (0..=4).map(|k| k * n / 4).collect();
        let quartiles: Vec<f64> = q.windows(2).map(|w| mean(w[0], w[1])).collect();
        if !quartiles.windows(2).all(|w| w[1] > w[0]) {
            return 0.0;
        }
        let first = mean(0, n / 2);
        let second = mean(n / 2, n);
        if first <= 0.0 { 0.0 } else { ((second - first) / first).max(0.0) }
    }
}

/// Least-squares slope of the in-flight series sampled per bucket, maintained incrementally.
#[derive(Default)]
struct Drift {
    origin: Option<u64>,
    /// Index of the open bucket and its latest value.
    current: u64,
    value: f64,
    /// The slope returned by the last `feed`.
    last_slope: f64,
    /// Sums over closed buckets.
    n: f64,
    sx: f64,
    sy: f64,
    sxy: f64,
    sxx: f64,
}

impl Drift {
    fn feed(&mut self, time: u64, bucket_us: u64, in_flight: f64) -> f64 {
        let origin = *self.origin.get_or_insert(time);
        let bucket = (time - origin) / bucket_us;
        if bucket > self.current {
            // Close the open bucket and forward-fill the gap: buckets current..bucket carry
            // the open bucket's last value (closed-form sums, so long gaps cost nothing).
            let (a, b) = (self.current as f64, bucket as f64 - 1.0);
            let count = b - a + 1.0;
            let sum_x = (a + b) * count / 2.0;
            let sum_xx = sq_sum(b) - sq_sum(a - 1.0);
            self.n += count;
            self.sx += sum_x;
            self.sy += self.value * count;
            self.sxy += self.value * sum_x;
            self.sxx += sum_xx;
            self.current = bucket;
        }
        self.value = in_flight;
        let x = self.current as f64;
        let n = self.n + 1.0;
        let (sx, sy, sxy, sxx) =
            (self.sx + x, self.sy + in_flight, self.sxy + x * in_flight, self.sxx + x * x);
        let denom = n * sxx - sx * sx;
        self.last_slope = if n < 2.0 || denom <= 0.0 { 0.0 } else { (n * sxy - sx * sy) / denom };
        self.last_slope
    }
}

/// Σ_{x=0..=m} x² (0 for m < 0).
fn sq_sum(m: f64) -> f64 {
    if m < 0.0 { 0.0 } else { m * (m + 1.0) * (2.0 * m + 1.0) / 6.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests every `gap_us`, each taking `service(i)` µs end to end.
    fn samples(n: u64, gap_us: u64, service: impl Fn(u64) -> u64) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample { id: i, arrival_us: i * gap_us, completion_us: i * gap_us + service(i) })
            .collect()
    }

    fn all() -> [Detector; 3] {
        ["composite", "threshold", "backlog-drift"].map(|n| Detector::by_name(n).unwrap())
    }

    #[test]
    fn steady_service_is_stable_everywhere() {
        // 10 req/s for 10 minutes, 200 ms each (with a little jitter).
        let s = samples(6000, 100_000, |i| 200_000 + (i * 7919) % 50_000);
        for d in all() {
            let doc = detect(d, &s, 0, None);
            assert_eq!(doc.verdict, Verdict::Stable, "{doc:?}");
            assert_eq!(doc.detector, d.name());
        }
    }

    #[test]
    fn a_growing_queue_is_overloaded_everywhere() {
        // Arrivals every 100 ms, served one at a time every 150 ms: the queue grows without bound.
        let s: Vec<Sample> = (0..6000u64)
            .map(|i| Sample { id: i, arrival_us: i * 100_000, completion_us: (i + 1) * 150_000 })
            .collect();
        for d in all() {
            let doc = detect(d, &s, 0, None);
            assert_eq!(doc.verdict, Verdict::Overloaded, "{doc:?}");
        }
        let c = detect(Detector::Composite, &s, 0, None);
        assert!(c.score > 0.0 && c.score <= 1.0, "{c:?}");
        let b = detect(Detector::BacklogDrift { bucket_us: DEFAULT_BUCKET_US }, &s, 0, None);
        // In flight grows by 600 − 400 = 200 per 60 s bucket while arrivals last.
        assert!(b.score > 10.0, "{b:?}");
    }

    #[test]
    fn detector_selections_are_canonical() {
        let parse = |t: &str| t.parse::<DetectorSelection>();
        let a = parse("threshold, composite,threshold").unwrap();
        assert_eq!(a.kinds(), &[DetectorKind::Composite, DetectorKind::Threshold]);
        assert_eq!(a.to_string(), "composite,threshold");
        assert_eq!(parse("composite,threshold,").unwrap(), a);
        let all = parse("all").unwrap();
        assert_eq!(all.kinds().len(), 3);
        assert_eq!(all.to_string(), "all");
        assert_eq!(parse("backlog-drift").unwrap(), DetectorSelection::one(DetectorKind::BacklogDrift));
        assert_eq!(parse("backlog-drift").unwrap().to_string(), "backlog-drift");
        assert!(parse("composite,all").unwrap_err().contains("cannot be combined"));
        assert!(parse(" , ").unwrap_err().contains("selects no detector"));
        let e = parse("composite,drift").unwrap_err();
        assert_eq!(
            e,
            "unknown detector \"drift\" (accepted: composite, threshold, backlog-drift, a comma list of them, or all)"
        );
        let json: DetectorSelection = serde_json::from_str("[\"threshold\", \"composite\"]").unwrap();
        assert_eq!(json, a);
        assert_eq!(serde_json::to_string(&all).unwrap(), "\"all\"");
    }

    #[test]
    fn threshold_scores_follow_the_formula() {
        // Window 0: the verdict at the last arrival, when most requests have completed.
        let s = samples(100, 10_000_000, |_| 2_500_000); // 2500 ms each
        let doc = detect(Detector::Threshold { threshold_ms: 5000.0 }, &s, 0, Some(0));
        assert_eq!(doc.verdict, Verdict::Stable);
        assert!((doc.score - 0.25).abs() < 1e-12);
        let s = samples(100, 10_000_000, |_| 7_500_000);
        let doc = detect(Detector::Threshold { threshold_ms: 5000.0 }, &s, 0, Some(0));
        assert_eq!(doc.verdict, Verdict::Overloaded);
        assert!((doc.score - (0.75 + 0.125)).abs() < 1e-12);
        let s = samples(100, 200_000_000, |_| 100_000_000);
        assert_eq!(detect(Detector::Threshold { threshold_ms: 5000.0 }, &s, 0, Some(0)).score, 1.0);
    }

    #[test]
    fn composite_backlog_without_latency_trend() {
        // One instant burst of 400 arrivals served at a constant latency: completions lag
        // arrivals (a deficit) but E2E does not grow.
        let s: Vec<Sample> = (0..400u64)
            .map(|i| Sample { id: i, arrival_us: i * 1_000_000, completion_us: i * 1_000_000 + 40_000_000 })
            .collect();
        let doc = detect(Detector::Composite, &s, 0, Some(400_000_000));
        assert_eq!(doc.verdict, Verdict::Backlogged, "{doc:?}");
    }

    #[test]
    fn timeouts_and_the_drain_do_not_hide_a_backlog() {
        // 10 req/s for 10 minutes; served at 6 req/s; a third of the requests time out (never
        // complete); after the last arrival the completed ones drain for a long time.
        let s: Vec<Sample> = (0..6000u64)
            .map(|i| {
                let completion = if i % 3 == 2 { NEVER } else { i * 100_000 + 60_000_000 + i * 50_000 };
                Sample { id: i, arrival_us: i * 100_000, completion_us: completion }
            })
            .collect();
        for d in all() {
            let doc = detect(d, &s, 0, None);
            assert_eq!(doc.verdict, Verdict::Overloaded, "{doc:?}");
        }
        let b = detect(Detector::BacklogDrift { bucket_us: DEFAULT_BUCKET_US }, &s, 0, None);
        assert!(b.score > 0.0, "{b:?}");
    }

    #[test]
    fn empty_and_never_completed_runs() {
        for d in all() {
            let doc = detect(d, &[], 0, None);
            assert_eq!((doc.verdict, doc.score), (Verdict::Stable, 0.0));
            let doc = detect(d, &[], 5, None);
            assert_eq!((doc.verdict, doc.score), (Verdict::Overloaded, 1.0));
        }
    }

    #[test]
    fn ties_go_to_the_most_severe_and_output_is_uppercase() {
        assert_eq!(serde_json::to_string(&Verdict::Backlogged).unwrap(), "\"BACKLOGGED\"");
        assert_eq!(Verdict::Overloaded.as_str(), "OVERLOADED");
        let votes = [1u64, 0, 1];
        let v = [Verdict::Overloaded, Verdict::Backlogged, Verdict::Stable]
            .into_iter()
            .max_by_key(|v| (votes[*v as usize], *v))
            .unwrap();
        assert_eq!(v, Verdict::Overloaded);
        assert!(Detector::by_name("bogus").is_none());
    }

    #[test]
    fn drift_slope_matches_direct_least_squares_with_gaps() {
        let mut d = Drift::default();
        // Buckets of 10 µs: values 1 at bucket 0, then (gap) 4 at bucket 3, 6 at bucket 4.
        d.feed(0, 10, 1.0);
        d.feed(35, 10, 4.0);
        let slope = d.feed(41, 10, 6.0);
        // Series: [1, 1, 1, 4, 6] at x = 0..4.
        let ys = [1.0, 1.0, 1.0, 4.0, 6.0];
        let n = 5.0;
        let (sx, sy): (f64, f64) = (10.0, ys.iter().sum());
        let sxy: f64 = ys.iter().enumerate().map(|(x, y)| x as f64 * y).sum();
        let sxx = 30.0;
        let want = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        assert!((slope - want).abs() < 1e-9, "{slope} vs {want}");
    }
}
