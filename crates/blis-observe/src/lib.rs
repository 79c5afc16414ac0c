//! `blis observe`: send a BLIS workload to a real OpenAI-compatible server and record what it
//! did as a TraceV2 trace, which `blis replay` (and so the simulator) reads back.
//!
//! Each request of the workload's [`RequestSource`] is sent at its arrival time (µs after the
//! observation started; open loop), or, for closed-loop sources (virtual users, multi-turn
//! sessions), when the source answers a completion with its follow-up. At most
//! `max_concurrency` requests are in flight; a request due while the limit is reached waits,
//! and its `send_time_us` records when it was really sent.
//!
//! Every request is a streamed `POST {server}/v1/completions` whose prompt is synthetic text
//! with one word per workload token ([`prompt::prompt_text`]), with `max_tokens` = `min_tokens`
//! = the request's output length so the server generates exactly that many tokens, and
//! `stream_options.include_usage` so the server reports how many tokens it saw in the prompt.
//! Failures do not stop the observation: they are rows with `status` `error` or `timeout`
//! and an `error_message`, as in the reference simulator.

pub mod client;
#[cfg(feature = "mock-server")]
pub mod mock;
pub mod prompt;
pub mod sse;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use blis_workload::request::{Outcome, RequestSource, RequestSpec};
use blis_workload::trace::TraceRecord;

/// How to reach the server and how hard to drive it.
#[derive(Debug, Clone)]
pub struct ObserveOptions {
    /// Base URL (`http://host:port`, optionally with a path prefix); `/v1/completions` is
    /// appended.
    pub server_url: String,
    /// The `model` of every request body (and the trace's `model` column).
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Most requests in flight at once (≥ 1).
    pub max_concurrency: usize,
    /// Client timeout of a request without a deadline of its own (a request with one gives up
    /// at its deadline).
    pub default_timeout: Duration,
    /// Requests arriving after this (µs after the start) are not sent.
    pub horizon_us: Option<u64>,
    /// Keep the arrival time of every chunk of every response (`--record-itl`).
    pub record_chunk_times: bool,
}

/// The result of an observation.
#[derive(Debug)]
pub struct Observation {
    /// One row per request sent, in send order; times in µs after `started_at`.
    pub records: Vec<TraceRecord>,
    /// Wall-clock time of the origin of every `*_time_us` column.
    pub started_at: SystemTime,
    /// Interrupted (Ctrl-C): how many requests were in flight then (they have no row).
    pub interrupted: Option<usize>,
    /// With [`ObserveOptions::record_chunk_times`]: per successful request (`request_id`), its
    /// chunks' arrival times (µs after `started_at`), in request-id order.
    pub chunk_times: Vec<(u64, Vec<u64>)>,
}

impl Observation {
    /// Rows whose request did not complete (`status` other than `ok`).
    pub fn failed(&self) -> usize {
        self.records.iter().filter(|r| r.status != "ok").count()
    }
}

/// A setup error (the client or runtime could not be built, the URL is unusable).
#[derive(Debug, Clone, PartialEq)]
pub struct ObserveError(pub String);

impl std::fmt::Display for ObserveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ObserveError {}

/// The completions endpoint of `server_url`, or why the URL cannot be used.
pub fn endpoint(server_url: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(server_url).map_err(|e| format!("{server_url:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{server_url:?}: accepted schemes are http and https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{server_url:?} names no host"));
    }
    let base = url.as_str().trim_end_matches('/');
    reqwest::Url::parse(&format!("{base}/v1/completions")).map_err(|e| format!("{server_url:?}: {e}"))
}

/// Sends every request of `source` to the server (see the crate documentation) and returns the
/// rows. Blocks until the last response has ended.
pub fn observe(
    source: Box<dyn RequestSource + Send>,
    opts: &ObserveOptions,
) -> Result<Observation, ObserveError> {
    if opts.max_concurrency == 0 {
        return Err(ObserveError("max-concurrency must be at least 1".into()));
    }
    let url = endpoint(&opts.server_url).map_err(ObserveError)?;
    // The ring provider (no aws-lc, no OpenSSL); an already installed one is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| ObserveError(format!("cannot build the HTTP client: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ObserveError(format!("cannot start the async runtime: {e}")))?;
    let sender = Arc::new(client::Sender::new(client, url, opts));
    Ok(runtime.block_on(drive(source, sender, opts.max_concurrency, opts.horizon_us)))
}

/// A finished request: what was sent, its row and its chunks' arrival times.
struct Done {
    request: RequestSpec,
    record: TraceRecord,
    chunk_times: Vec<u64>,
}

async fn drive(
    mut source: Box<dyn RequestSource + Send>,
    sender: Arc<client::Sender>,
    max_concurrency: usize,
    horizon_us: Option<u64>,
) -> Observation {
    let started_at = SystemTime::now();
    let t0 = Instant::now();
    let within = |r: &RequestSpec| horizon_us.is_none_or(|h| r.arrival_us <= h);
    // Sources emit in nondecreasing arrival order: the first one past the horizon ends them.
    let mut scheduled = source.next_request().filter(within);
    let mut follow_ups: Vec<RequestSpec> = Vec::new();
    let mut in_flight = tokio::task::JoinSet::<Done>::new();
    let mut records = Vec::new();
    let mut chunk_times = Vec::new();
    let mut interrupted = None;
    let mut listening = true;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        // The earliest request due: the source's next one or a follow-up.
        let earliest_follow_up = follow_ups
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| (r.arrival_us, r.id))
            .map(|(i, r)| (i, r.arrival_us));
        let next_at = match (&scheduled, earliest_follow_up) {
            (Some(s), Some((_, f))) => Some(s.arrival_us.min(f)),
            (Some(s), None) => Some(s.arrival_us),
            (None, Some((_, f))) => Some(f),
            (None, None) => None,
        };
        if next_at.is_none() && in_flight.is_empty() {
            break;
        }
        let now_us = t0.elapsed().as_micros() as u64;
        if let Some(at) = next_at
            && at <= now_us
            && in_flight.len() < max_concurrency
        {
            let request = match earliest_follow_up {
                Some((i, f)) if scheduled.as_ref().is_none_or(|s| f < s.arrival_us) => {
                    follow_ups.swap_remove(i)
                }
                _ => {
                    let r = scheduled.take().expect("due");
                    scheduled = source.next_request().filter(within);
                    r
                }
            };
            let sender = sender.clone();
            in_flight.spawn(async move {
                let (record, chunk_times) = sender.send(&request, t0).await;
                Done { request, record, chunk_times }
            });
            continue;
        }
        let wait_until =
            next_at.filter(|_| in_flight.len() < max_concurrency).map(|at| t0 + Duration::from_micros(at));
        tokio::select! {
            done = in_flight.join_next(), if !in_flight.is_empty() => {
                let Done { request, record, chunk_times: times } = match done.expect("the set is not empty") {
                    Ok(done) => done,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let outcome = match record.status.as_str() {
                    "ok" => Outcome::Completed,
                    "timeout" => Outcome::TimedOut,
                    _ => Outcome::Dropped,
                };
                let at_us = (t0.elapsed().as_micros() as u64).max(request.arrival_us);
                if let Some(next) = source.on_request_done(&request, at_us, outcome).filter(within) {
                    follow_ups.push(next);
                }
                if !times.is_empty() && record.status == "ok" {
                    chunk_times.push((record.request_id, times));
                }
                records.push(record);
            }
            _ = tokio::time::sleep_until(wait_until.unwrap_or(t0).into()), if wait_until.is_some() => {}
            // Ctrl-C: send nothing more, give up on the requests in flight, keep the rows so far.
            signal = &mut ctrl_c, if listening => {
                if signal.is_err() {
                    listening = false; // no signal handling here: run to the end
                    continue;
                }
                interrupted = Some(in_flight.len());
                in_flight.abort_all();
                break;
            }
        }
    }
    records.sort_by_key(|r: &TraceRecord| (r.send_time_us, r.request_id));
    chunk_times.sort_unstable_by_key(|(id, _)| *id);
    Observation { records, started_at, interrupted, chunk_times }
}

/// Writes chunk arrival times as the ITL CSV `blis calibrate --itl-data` reads (the
/// reference's `--record-itl` format): `request_id,chunk_index,timestamp_us`, one row per chunk.
pub fn write_itl_csv(out: impl std::io::Write, chunk_times: &[(u64, Vec<u64>)]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut w = std::io::BufWriter::new(out);
    writeln!(w, "request_id,chunk_index,timestamp_us")?;
    for (id, times) in chunk_times {
        for (i, t) in times.iter().enumerate() {
            writeln!(w, "{id},{i},{t}")?;
        }
    }
    w.flush()
}
