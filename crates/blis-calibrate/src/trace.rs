//! Real against simulated, request by request: a TraceV2 trace recorded by `blis observe`
//! (what the server did) and the per-request results `blis replay` wrote for the same trace
//! (what the simulator predicted), matched by request id.
//!
//! The comparison follows the reference simulator's `calibrate` command so that its reports
//! read the same: client-side real latencies (TTFT = first chunk − send, E2E = last chunk −
//! send), simulated latencies shifted to the client's side by the network round trip (and,
//! with a bandwidth, the time to move 4 bytes per token each way), warm-up requests (ids below
//! the count) left out, and per metric the workload-level distribution (means, percentiles
//! and their errors) next to the request-level prediction quality (MAPE, Pearson r, bias).

use std::collections::{BTreeMap, HashMap, HashSet};

use blis_workload::trace::TraceRecord;
use serde::{Deserialize, Serialize};

/// One simulated request: server-side latencies in µs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimResult {
    pub request_id: u64,
    pub ttft_us: f64,
    pub e2e_us: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The reference simulator's `--results-path` entry.
#[derive(Deserialize)]
struct ReferenceEntry {
    request_id: u64,
    ttft_us: f64,
    e2e_us: f64,
    input_tokens: u64,
    output_tokens: u64,
}

/// A `blis run`/`blis replay` `--results-path` entry (the fields read here).
#[derive(Deserialize)]
struct BlisEntry {
    request_id: u64,
    num_prefill_tokens: u64,
    num_decode_tokens: u64,
    ttft_ms: Option<f64>,
    e2e_ms: Option<f64>,
    outcome: String,
}

/// Reads a sim-results JSON array: `blis replay --results-path` records (latencies in ms; only
/// completed requests are kept) or the reference simulator's SimResult entries (`ttft_us`,
/// `e2e_us`). Errors name the entry and what is wrong, without the file name.
pub fn parse_sim_results(text: &str) -> Result<Vec<SimResult>, String> {
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of results ({e})"))?;
    let mut out = Vec::with_capacity(entries.len());
    let mut seen = HashSet::new();
    for (i, v) in entries.into_iter().enumerate() {
        let obj = v.as_object().ok_or_else(|| format!("entry {i}: not an object"))?;
        let r = if obj.contains_key("ttft_us") {
            let e: ReferenceEntry = serde_json::from_value(v).map_err(|e| format!("entry {i}: {e}"))?;
            SimResult {
                request_id: e.request_id,
                ttft_us: e.ttft_us,
                e2e_us: e.e2e_us,
                input_tokens: e.input_tokens,
                output_tokens: e.output_tokens,
            }
        } else if obj.contains_key("ttft_ms") {
            let e: BlisEntry = serde_json::from_value(v).map_err(|e| format!("entry {i}: {e}"))?;
            let (Some(ttft), Some(e2e)) = (e.ttft_ms, e.e2e_ms) else { continue };
            if e.outcome != "completed" {
                continue;
            }
            SimResult {
                request_id: e.request_id,
                ttft_us: ttft * 1e3,
                e2e_us: e2e * 1e3,
                input_tokens: e.num_prefill_tokens,
                output_tokens: e.num_decode_tokens,
            }
        } else {
            return Err(format!(
                "entry {i}: neither a blis results record (ttft_ms) nor a SimResult (ttft_us)"
            ));
        };
        if !(r.ttft_us.is_finite() && r.e2e_us.is_finite() && r.ttft_us >= 0.0 && r.e2e_us >= r.ttft_us) {
            return Err(format!(
                "entry {i} (request {}): latencies must be finite with 0 <= ttft <= e2e, got ttft {} µs, e2e {} µs",
                r.request_id, r.ttft_us, r.e2e_us
            ));
        }
        if !seen.insert(r.request_id) {
            return Err(format!("entry {i}: request {} appears twice", r.request_id));
        }
        out.push(r);
    }
    Ok(out)
}

/// One chunk arrival of a streamed response (`blis observe`'s ITL CSV, the reference's
/// `--record-itl` format `request_id,chunk_index,timestamp_us`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ItlRecord {
    pub request_id: u64,
    pub chunk_index: u64,
    pub timestamp_us: u64,
}

/// Reads an ITL CSV (header `request_id,chunk_index,timestamp_us`).
pub fn parse_itl_csv(input: impl std::io::Read) -> Result<Vec<ItlRecord>, String> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let headers = reader.headers().map_err(|e| format!("cannot read the header row ({e})"))?.clone();
    for need in ["request_id", "chunk_index", "timestamp_us"] {
        if !headers.iter().any(|h| h == need) {
            return Err(format!("missing column {need} (expected request_id,chunk_index,timestamp_us)"));
        }
    }
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<ItlRecord>().enumerate() {
        out.push(row.map_err(|e| format!("row {}: {e}", i + 2))?);
    }
    Ok(out)
}

/// How to normalise and filter before comparing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Normalization {
    /// Requests with an id below this are warm-up and left out.
    pub warm_up_requests: u64,
    /// Added to every simulated TTFT and E2E (the server's latencies seen from the client).
    pub network_rtt_us: u64,
    /// Above 0: add the time to upload the prompt (to TTFT and E2E) and download the output
    /// (to E2E) at 4 bytes per token.
    pub bandwidth_mbps: f64,
}

/// Matched real and simulated values of one metric, in request-id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairs {
    pub real: Vec<f64>,
    pub sim: Vec<f64>,
}

impl Pairs {
    fn push(&mut self, real: f64, sim: f64) {
        self.real.push(real);
        self.sim.push(sim);
    }
}

/// The matching of a trace with simulated results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matched {
    pub ttft: Pairs,
    pub e2e: Pairs,
    pub itl: Pairs,
    pub warm_up_excluded: usize,
    pub matched: usize,
    /// Trace rows left out: no simulated result, a failed request (status other than `ok`) or
    /// times out of order.
    pub unmatched_real: usize,
    /// Simulated results with no usable trace row.
    pub unmatched_sim: usize,
    /// Matched pairs whose prompt (the server's count when it reported one) or output length
    /// differ.
    pub token_mismatches: usize,
    /// Requests whose chunk times never increase (left out of ITL).
    pub itl_dropped: usize,
}

/// Byte-per-token transfer time at `mbps` (0 without a bandwidth).
fn transfer_us(mbps: f64, tokens: u64) -> f64 {
    if mbps > 0.0 { (tokens * 4 * 8) as f64 / mbps } else { 0.0 }
}

/// Matches trace rows with simulated results by request id. With `itl`, also the mean
/// inter-chunk gap of each request's stream against the simulated (E2E − TTFT) / (output − 1).
pub fn match_requests(
    records: &[TraceRecord],
    sims: &[SimResult],
    itl: Option<&[ItlRecord]>,
    norm: &Normalization,
) -> Matched {
    let by_id: HashMap<u64, &SimResult> = sims.iter().map(|s| (s.request_id, s)).collect();
    let mut chunks: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for c in itl.unwrap_or_default() {
        chunks.entry(c.request_id).or_default().push((c.chunk_index, c.timestamp_us));
    }
    let mut rows: Vec<&TraceRecord> = records.iter().collect();
    rows.sort_by_key(|r| r.request_id);
    let mut m = Matched::default();
    let mut used = HashSet::new();
    for rec in rows {
        if rec.request_id < norm.warm_up_requests {
            m.warm_up_excluded += 1;
            continue;
        }
        let Some(sim) = by_id.get(&rec.request_id) else {
            m.unmatched_real += 1;
            continue;
        };
        let ordered =
            rec.first_chunk_time_us >= rec.send_time_us && rec.last_chunk_time_us >= rec.first_chunk_time_us;
        if rec.status != "ok" || !ordered {
            m.unmatched_real += 1;
            continue;
        }
        used.insert(rec.request_id);
        m.matched += 1;
        let real_input = if rec.server_input_tokens > 0 { rec.server_input_tokens } else { rec.input_tokens };
        if u64::from(real_input) != sim.input_tokens || u64::from(rec.output_tokens) != sim.output_tokens {
            m.token_mismatches += 1;
        }
        let rtt = norm.network_rtt_us as f64;
        let up = transfer_us(norm.bandwidth_mbps, sim.input_tokens);
        let down = transfer_us(norm.bandwidth_mbps, sim.output_tokens);
        m.ttft.push((rec.first_chunk_time_us - rec.send_time_us) as f64, sim.ttft_us + rtt + up);
        m.e2e.push((rec.last_chunk_time_us - rec.send_time_us) as f64, sim.e2e_us + rtt + up + down);
        if let Some(c) = chunks.get_mut(&rec.request_id)
            && c.len() >= 2
        {
            c.sort_unstable();
            let gaps: Vec<u64> = c.windows(2).filter(|w| w[1].1 >= w[0].1).map(|w| w[1].1 - w[0].1).collect();
            if gaps.is_empty() {
                m.itl_dropped += 1;
                continue;
            }
            let real = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
            let sim_itl = if sim.output_tokens > 1 {
                (sim.e2e_us - sim.ttft_us) / (sim.output_tokens - 1) as f64
            } else {
                0.0
            };
            m.itl.push(real, sim_itl);
        }
    }
    m.unmatched_sim = sims.iter().filter(|s| !used.contains(&s.request_id)).count();
    m
}

/// The distribution of a metric over the workload, real against simulated (µs). Errors are
/// simulated − real; percent errors are |error| / real (fractions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadLevel {
    pub real_mean: f64,
    pub sim_mean: f64,
    pub mean_error: f64,
    pub mean_percent_error: f64,
    pub real_median: f64,
    pub sim_median: f64,
    pub median_error: f64,
    pub median_percent_error: f64,
    pub real_p50: f64,
    pub sim_p50: f64,
    pub p50_error: f64,
    pub p50_percent_error: f64,
    pub real_p90: f64,
    pub sim_p90: f64,
    pub p90_error: f64,
    pub p90_percent_error: f64,
    pub real_p95: f64,
    pub sim_p95: f64,
    pub p95_error: f64,
    pub p95_percent_error: f64,
    pub real_p99: f64,
    pub sim_p99: f64,
    pub p99_error: f64,
    pub p99_percent_error: f64,
}

/// How well individual requests are predicted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestLevel {
    /// Mean of |sim − real| / real over the pairs with real > 0 (a fraction).
    pub mape: f64,
    /// Pearson correlation of real and simulated values (0 with fewer than 3 pairs or no
    /// spread).
    pub pearson_r: f64,
    /// The sign of the summed signed error: `over-predict`, `under-predict` or `neutral`.
    pub bias_direction: String,
    /// `excellent` (MAPE < 10 %, r > 0.95), `good` (< 20 %, > 0.85), `fair` (< 35 %, > 0.70)
    /// or `poor`.
    pub quality: String,
}

/// One metric's comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    pub workload_level: WorkloadLevel,
    pub request_level: RequestLevel,
    pub count: usize,
}

/// Linear interpolation between closest ranks.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let rank = p / 100.0 * (n - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            sorted[lo] + (rank - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let den = (sxx * syy).sqrt();
    if den > 0.0 { sxy / den } else { 0.0 }
}

fn quality(mape: f64, r: f64) -> &'static str {
    if mape < 0.10 && r > 0.95 {
        "excellent"
    } else if mape < 0.20 && r > 0.85 {
        "good"
    } else if mape < 0.35 && r > 0.70 {
        "fair"
    } else {
        "poor"
    }
}

/// Compares matched values; `None` without pairs.
pub fn compare(pairs: &Pairs) -> Option<MetricComparison> {
    assert_eq!(pairs.real.len(), pairs.sim.len(), "pairs are parallel");
    if pairs.real.is_empty() {
        return None;
    }
    let n = pairs.real.len() as f64;
    let sorted = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s
    };
    let (rs, ss) = (sorted(&pairs.real), sorted(&pairs.sim));
    let err = |real: f64, sim: f64| (sim - real, if real > 0.0 { (sim - real).abs() / real } else { 0.0 });
    let (real_mean, sim_mean) = (pairs.real.iter().sum::<f64>() / n, pairs.sim.iter().sum::<f64>() / n);
    let q = |p: f64| (percentile(&rs, p), percentile(&ss, p));
    let ((r50, s50), (r90, s90), (r95, s95), (r99, s99)) = (q(50.0), q(90.0), q(95.0), q(99.0));
    let (mean_error, mean_percent_error) = err(real_mean, sim_mean);
    let (p50_error, p50_percent_error) = err(r50, s50);
    let (p90_error, p90_percent_error) = err(r90, s90);
    let (p95_error, p95_percent_error) = err(r95, s95);
    let (p99_error, p99_percent_error) = err(r99, s99);
    let workload_level = WorkloadLevel {
        real_mean,
        sim_mean,
        mean_error,
        mean_percent_error,
        real_median: r50,
        sim_median: s50,
        median_error: p50_error,
        median_percent_error: p50_percent_error,
        real_p50: r50,
        sim_p50: s50,
        p50_error,
        p50_percent_error,
        real_p90: r90,
        sim_p90: s90,
        p90_error,
        p90_percent_error,
        real_p95: r95,
        sim_p95: s95,
        p95_error,
        p95_percent_error,
        real_p99: r99,
        sim_p99: s99,
        p99_error,
        p99_percent_error,
    };
    let (mut ape_sum, mut bias, mut counted) = (0.0, 0.0, 0usize);
    for (&r, &s) in pairs.real.iter().zip(&pairs.sim) {
        if r > 0.0 {
            ape_sum += (s - r).abs() / r;
            bias += s - r;
            counted += 1;
        }
    }
    let mape = if counted > 0 { ape_sum / counted as f64 } else { 0.0 };
    let pearson_r = if pairs.real.len() >= 3 { pearson(&pairs.real, &pairs.sim) } else { 0.0 };
    let bias_direction = match () {
        _ if counted == 0 => "",
        _ if bias > 0.0 => "over-predict",
        _ if bias < 0.0 => "under-predict",
        _ => "neutral",
    };
    Some(MetricComparison {
        workload_level,
        request_level: RequestLevel {
            mape,
            pearson_r,
            bias_direction: bias_direction.into(),
            quality: quality(mape, pearson_r).into(),
        },
        count: pairs.real.len(),
    })
}

/// The counts behind a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceInfo {
    /// Trace rows considered: matched + warm-up + unmatched.
    pub num_requests: usize,
    pub warm_up_excluded: usize,
    pub matched_pairs: usize,
    pub token_mismatches: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub itl_dropped: usize,
    /// Trace rows without a usable simulated counterpart (or failed on the server).
    pub unmatched_real: usize,
    /// Simulated results without a trace row.
    pub unmatched_sim: usize,
    /// The warm-up count applied (ids below it were left out).
    pub warm_up_requests: u64,
    /// The round trip added to every simulated latency (µs).
    pub network_rtt_us: u64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Which server settings of the trace header the simulation matched (kept for the
/// reference's report shape; `blis calibrate` does not compare configurations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigMatch {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defaulted: Vec<String>,
}

/// TTFT MAPE against a threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToleranceVerdict {
    pub mape: f64,
    pub threshold: f64,
    pub within: bool,
}

/// The calibration report (`--report`), field names as the reference simulator's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub trace_info: TraceInfo,
    /// `ttft`, `e2e`, and with ITL data `itl`.
    pub metrics: BTreeMap<String, MetricComparison>,
    pub config_match: ConfigMatch,
    pub known_limitations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_tolerance: Option<ToleranceVerdict>,
}

const KNOWN_LIMITATIONS: [&str; 3] = [
    "Simulated latencies come from a step-time model of the server; queueing under load is only as accurate as that model and the scheduler settings given to blis replay.",
    "The simulator does not see the server's real prefix-cache contents; prompt tokens it treats as cached may differ from the server's.",
    "Speculative decoding, chunk coalescing by the server or proxies, and client-side jitter are not simulated; they show up as ITL and E2E error.",
];

/// Builds the report; `None` when nothing matched.
pub fn report(m: &Matched, norm: &Normalization, ttft_mape_threshold: f64) -> Option<CalibrationReport> {
    if m.ttft.real.is_empty() {
        return None;
    }
    let mut metrics = BTreeMap::new();
    for (name, pairs) in [("ttft", &m.ttft), ("e2e", &m.e2e), ("itl", &m.itl)] {
        if let Some(c) = compare(pairs) {
            metrics.insert(name.to_string(), c);
        }
    }
    let ttft_tolerance = metrics.get("ttft").map(|c| ToleranceVerdict {
        mape: c.request_level.mape,
        threshold: ttft_mape_threshold,
        within: c.request_level.mape <= ttft_mape_threshold,
    });
    Some(CalibrationReport {
        trace_info: TraceInfo {
            num_requests: m.matched + m.warm_up_excluded + m.unmatched_real,
            warm_up_excluded: m.warm_up_excluded,
            matched_pairs: m.matched,
            token_mismatches: m.token_mismatches,
            itl_dropped: m.itl_dropped,
            unmatched_real: m.unmatched_real,
            unmatched_sim: m.unmatched_sim,
            warm_up_requests: norm.warm_up_requests,
            network_rtt_us: norm.network_rtt_us,
        },
        metrics,
        config_match: ConfigMatch::default(),
        known_limitations: KNOWN_LIMITATIONS.iter().map(|s| s.to_string()).collect(),
        ttft_tolerance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, send: u64, first: u64, last: u64) -> TraceRecord {
        TraceRecord {
            request_id: id,
            input_tokens: 10,
            output_tokens: 5,
            server_input_tokens: 10,
            send_time_us: send,
            first_chunk_time_us: first,
            last_chunk_time_us: last,
            num_chunks: 5,
            status: "ok".into(),
            ..TraceRecord::default()
        }
    }

    fn sim(id: u64, ttft: f64, e2e: f64) -> SimResult {
        SimResult { request_id: id, ttft_us: ttft, e2e_us: e2e, input_tokens: 10, output_tokens: 5 }
    }

    #[test]
    fn matches_by_id_excludes_warm_up_and_adds_the_round_trip() {
        let rows = vec![
            row(0, 0, 1_000, 5_000),
            row(1, 100, 4_100, 9_100),
            row(2, 200, 4_200, 9_200),
            row(3, 300, 4_300, 9_300),
            TraceRecord { status: "error".into(), ..row(4, 400, 0, 0) },
            row(5, 500, 4_500, 9_500),
        ];
        let sims = vec![
            sim(0, 1.0, 2.0),
            sim(1, 3_000.0, 8_000.0),
            sim(2, 3_000.0, 8_000.0),
            sim(3, 3_000.0, 8_000.0),
            sim(4, 1.0, 2.0),
            sim(9, 1.0, 2.0),
        ];
        let norm = Normalization { warm_up_requests: 1, network_rtt_us: 500, bandwidth_mbps: 0.0 };
        let m = match_requests(&rows, &sims, None, &norm);
        assert_eq!((m.warm_up_excluded, m.matched, m.unmatched_real, m.unmatched_sim), (1, 3, 2, 3));
        assert_eq!(m.ttft.real, vec![4_000.0; 3]);
        assert_eq!(m.ttft.sim, vec![3_500.0; 3]);
        assert_eq!(m.e2e.sim, vec![8_500.0; 3]);
        let r = report(&m, &norm, 0.15).unwrap();
        assert_eq!(r.trace_info.num_requests, 6);
        let ttft = &r.metrics["ttft"];
        assert_eq!(ttft.count, 3);
        assert!((ttft.request_level.mape - 0.125).abs() < 1e-12);
        assert_eq!(ttft.request_level.bias_direction, "under-predict");
        assert!((ttft.workload_level.mean_error + 500.0).abs() < 1e-9);
        assert!((ttft.workload_level.mean_percent_error - 0.125).abs() < 1e-12);
        assert!(r.ttft_tolerance.unwrap().within);
        assert!(!r.metrics.contains_key("itl"));
    }

    #[test]
    fn pearson_and_percentiles() {
        let pairs = Pairs { real: vec![1.0, 2.0, 3.0, 4.0], sim: vec![2.0, 4.0, 6.0, 8.0] };
        let c = compare(&pairs).unwrap();
        assert!((c.request_level.pearson_r - 1.0).abs() < 1e-12);
        assert!((c.request_level.mape - 1.0).abs() < 1e-12);
        assert_eq!(c.request_level.bias_direction, "over-predict");
        assert_eq!(c.request_level.quality, "poor");
        assert!((c.workload_level.real_p50 - 2.5).abs() < 1e-12);
        assert!((c.workload_level.real_p90 - 3.7).abs() < 1e-12);
        let anti = Pairs { real: vec![1.0, 2.0, 3.0], sim: vec![3.0, 2.0, 1.0] };
        assert!((compare(&anti).unwrap().request_level.pearson_r + 1.0).abs() < 1e-12);
        let exact = Pairs { real: vec![5.0, 6.0, 9.0], sim: vec![5.0, 6.0, 9.0] };
        let c = compare(&exact).unwrap();
        assert_eq!(
            (c.request_level.quality.as_str(), c.request_level.bias_direction.as_str()),
            ("excellent", "neutral")
        );
    }

    #[test]
    fn itl_is_the_mean_chunk_gap_against_the_simulated_decode_rate() {
        let rows = vec![row(0, 0, 1_000, 5_000)];
        let itl = [(0, 1_000), (1, 2_000), (2, 3_000), (3, 4_000), (4, 5_000)].map(|(i, t)| ItlRecord {
            request_id: 0,
            chunk_index: i,
            timestamp_us: t,
        });
        let m = match_requests(&rows, &[sim(0, 900.0, 4_900.0)], Some(&itl), &Normalization::default());
        assert_eq!(m.itl, Pairs { real: vec![1_000.0], sim: vec![1_000.0] });
        let backwards = [(0, 5_000), (1, 4_000)].map(|(i, t)| ItlRecord {
            request_id: 0,
            chunk_index: i,
            timestamp_us: t,
        });
        let m = match_requests(&rows, &[sim(0, 900.0, 4_900.0)], Some(&backwards), &Normalization::default());
        assert_eq!((m.itl.real.len(), m.itl_dropped), (0, 1));
    }

    #[test]
    fn bandwidth_adds_transfer_time() {
        let norm = Normalization { bandwidth_mbps: 1.0, ..Normalization::default() };
        let m = match_requests(&[row(0, 0, 1_000, 5_000)], &[sim(0, 100.0, 200.0)], None, &norm);
        // 10 tokens up and 5 down at 32 bits per token and 1 bit/µs.
        assert_eq!((m.ttft.sim[0], m.e2e.sim[0]), (420.0, 680.0));
    }

    #[test]
    fn reads_both_result_formats() {
        let blis = r#"[{"request_id":3,"num_prefill_tokens":10,"num_decode_tokens":5,"ttft_ms":1.5,"e2e_ms":4.25,"itl_ms":0.5,"outcome":"completed"},
                       {"request_id":4,"num_prefill_tokens":10,"num_decode_tokens":5,"ttft_ms":null,"e2e_ms":null,"itl_ms":0,"outcome":"timed_out"}]"#;
        assert_eq!(
            parse_sim_results(blis).unwrap(),
            vec![SimResult {
                request_id: 3,
                ttft_us: 1_500.0,
                e2e_us: 4_250.0,
                input_tokens: 10,
                output_tokens: 5
            }]
        );
        let reference =
            r#"[{"request_id":0,"ttft_us":4000,"e2e_us":9000,"input_tokens":10,"output_tokens":5}]"#;
        assert_eq!(parse_sim_results(reference).unwrap(), vec![sim(0, 4_000.0, 9_000.0)]);
        for (bad, says) in [
            ("{}", "not a JSON array"),
            ("[1]", "entry 0: not an object"),
            (r#"[{"request_id":0}]"#, "entry 0: neither"),
            (
                r#"[{"request_id":0,"ttft_us":5,"e2e_us":1,"input_tokens":1,"output_tokens":1}]"#,
                "0 <= ttft <= e2e",
            ),
            (
                r#"[{"request_id":0,"ttft_us":1,"e2e_us":2,"input_tokens":1,"output_tokens":1},{"request_id":0,"ttft_us":1,"e2e_us":2,"input_tokens":1,"output_tokens":1}]"#,
                "appears twice",
            ),
        ] {
            let e = parse_sim_results(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn reads_itl_csv() {
        let ok = "request_id,chunk_index,timestamp_us\n0,0,10\n0,1,25\n";
        assert_eq!(parse_itl_csv(ok.as_bytes()).unwrap().len(), 2);
        assert!(parse_itl_csv("a,b\n1,2\n".as_bytes()).unwrap_err().contains("missing column request_id"));
        assert!(
            parse_itl_csv("request_id,chunk_index,timestamp_us\n0,0,-1\n".as_bytes())
                .unwrap_err()
                .starts_with("row 2")
        );
    }
}
