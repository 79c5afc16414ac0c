//! `blis observe`: the workload of `blis run`'s workload flags, sent to a real
//! OpenAI-compatible server; the responses' timings are written as a TraceV2 trace that
//! `blis replay` reads.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blis_config::outputs::PendingFile;
use blis_config::{RunSpec, WorkloadSpecRef};
use blis_workload::trace::{ServerInfo, TraceHeader, TraceNetwork, header_yaml, write_records};
use clap::Args;

use crate::run::{CliError, CliResult};

/// Flags of `blis observe`: the server, plus the workload flags of `blis run`.
#[derive(Args, Debug, Clone)]
pub struct ObserveArgs {
    /// Base URL of the OpenAI-compatible server (http://host:port); requests go to
    /// URL/v1/completions.
    #[arg(long, value_name = "URL", required = true, help_heading = "Server")]
    pub server_url: String,
    /// Bearer token sent as `Authorization: Bearer …`.
    #[arg(long, value_name = "TOKEN", help_heading = "Server")]
    pub api_key: Option<String>,
    /// Client timeout of a request without a deadline (seconds); a request with one (see
    /// --timeout) gives up at its deadline.
    #[arg(long, value_name = "S", default_value_t = 300.0, help_heading = "Server")]
    pub request_timeout: f64,
    /// Measured network round trip to the server (ms), recorded in the trace header
    /// (network.measured_rtt_ms); `blis calibrate` adds it to the simulated latencies.
    #[arg(long, value_name = "MS", allow_hyphen_values = true, help_heading = "Server")]
    pub rtt_ms: Option<f64>,
    /// Also record the arrival time of every chunk of every successful response, as the ITL
    /// CSV `blis calibrate --itl-data` reads (request_id,chunk_index,timestamp_us; µs from the
    /// start of the observation, like the trace's times).
    #[arg(long, help_heading = "Server")]
    pub record_itl: bool,
    /// Where --record-itl writes [default: the --trace-data path with .itl.csv for .csv].
    #[arg(long, value_name = "FILE", help_heading = "Server")]
    pub itl_output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub spec: RunSpec,
}

/// Most requests in flight at once when `--max-concurrency` is not given (the reference's).
const DEFAULT_MAX_CONCURRENCY: u32 = 256;

/// Run keys `blis observe` reads besides the "Workload" ones: the model name it sends, the
/// workload seed, the end of the observation, the compatibility mode's workload defaults, and
/// the warm-up count it records in the trace header.
const OTHER_KEYS: [&str; 5] = ["model", "seed", "horizon", "compat", "warmup-requests"];

/// Whether run flag `long` (of help heading `heading`) means something to `blis observe`.
pub fn accepts(long: &str, heading: Option<&str>) -> bool {
    heading == Some("Workload") || OTHER_KEYS.contains(&long)
}

/// The subcommand as shown: run flags it does not read hidden, and the trace paths described
/// as the outputs they are here.
pub fn annotate(cmd: clap::Command) -> clap::Command {
    let mut cmd = cmd;
    let ids: Vec<(String, String, Option<String>)> = cmd
        .get_arguments()
        .filter_map(|a| {
            Some((
                a.get_id().to_string(),
                a.get_long()?.to_string(),
                a.get_help_heading().map(str::to_string),
            ))
        })
        .collect();
    for (id, long, heading) in ids {
        let server = heading.as_deref() == Some("Server");
        if long == "max-concurrency" {
            // The run key is a flow-control detector's threshold; here it is the client's limit.
            cmd = cmd.mut_arg(id, |a| {
                a.help(format!(
                    "Most requests in flight at once; a request due while this many are in flight waits (its send_time_us records when it went) [default: {DEFAULT_MAX_CONCURRENCY}]"
                ))
                .value_name("N")
                .help_heading("Server")
            });
            continue;
        }
        if !server && !accepts(&long, heading.as_deref()) {
            cmd = cmd.mut_arg(id, |a| a.hide(true));
            continue;
        }
        cmd = match long.as_str() {
            "trace-header" => cmd.mut_arg(id, |a| {
                a.help("Output: the TraceV2 header YAML to write (required)").help_heading("Server")
            }),
            "workload-trace" => cmd.mut_arg(id, |a| {
                a.long("trace-data")
                    .visible_alias(None)
                    .alias("workload-trace")
                    .help("Output: the TraceV2 data CSV to write, one row per request (required)")
                    .help_heading("Server")
            }),
            "session-mode" => cmd.mut_arg(id, |a| a.hide(true)),
            "model" => cmd.mut_arg(id, |a| {
                a.help("Model name sent in every request (required)").help_heading("Server")
            }),
            "warmup-requests" => cmd.mut_arg(id, |a| {
                a.help("The requests with an id below N are warm-up: sent and recorded like the others (so a replay reproduces their load), and named in the trace header (warm_up_requests) so that blis calibrate leaves them out [default: 0]")
                    .help_heading("Server")
            }),
            "horizon" => cmd.mut_arg(id, |a| {
                a.help("Send no request arriving later than this (µs after the start, or a duration: 10s) [default: none]")
            }),
            _ => cmd,
        };
    }
    cmd
}

/// `blis observe`.
pub fn observe(args: &ObserveArgs, argv: &[String]) -> CliResult<()> {
    let mut spec = args.spec.clone();
    let header_path =
        spec.trace_header.take().ok_or("--trace-header: required (the trace header YAML to write)")?;
    let data_path =
        spec.workload_trace.take().ok_or("--trace-data: required (the trace data CSV to write)")?;
    let max_concurrency = spec.max_concurrency.take().unwrap_or(DEFAULT_MAX_CONCURRENCY);
    let warm_up_requests = spec.warmup_requests.take().unwrap_or(0);
    if let Some(ms) = args.rtt_ms
        && !(ms.is_finite() && ms >= 0.0)
    {
        return Err(format!("--rtt-ms: must be a finite number of milliseconds >= 0, got {ms}").into());
    }
    let model = spec.model.clone().ok_or("--model: required (the model name the server serves)")?;
    let headings: Vec<(String, Option<String>)> = crate::args::command()
        .find_subcommand("observe")
        .expect("observe is a subcommand")
        .get_arguments()
        .filter_map(|a| Some((a.get_long()?.to_string(), a.get_help_heading().map(str::to_string))))
        .collect();
    for key in spec.to_map().keys() {
        let heading = headings.iter().find(|(l, _)| l == key).and_then(|(_, h)| h.as_deref());
        if !accepts(key, heading) || key == "session-mode" {
            return Err(format!(
                "--{key}: not used by blis observe (it sends the workload to a real server; accepted: the workload flags, --model, --seed, --horizon, --compat, --warmup-requests)"
            )
            .into());
        }
    }
    let same = |a: &Path, b: &Path| {
        let abs = |p: &Path| {
            p.canonicalize().or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
        };
        abs(a) == abs(b)
    };
    if same(&header_path, &data_path) {
        return Err(format!("--trace-data: {} is also --trace-header", data_path.display()).into());
    }
    if let Some(WorkloadSpecRef::Path(input)) = &spec.workload_spec
        && let Some(out) = [&header_path, &data_path].into_iter().find(|out| same(input, out))
    {
        return Err(format!(
            "--workload-spec: {} is also an output of blis observe; refusing to overwrite it",
            out.display()
        )
        .into());
    }
    if let Err(e) = blis_observe::endpoint(&args.server_url) {
        return Err(format!("--server-url: {e}").into());
    }
    if max_concurrency == 0 {
        return Err("--max-concurrency: must be at least 1, got 0".into());
    }
    if !(args.request_timeout > 0.0 && args.request_timeout <= 86_400.0) {
        return Err(format!(
            "--request-timeout: must be in (0, 86400] seconds, got {}",
            args.request_timeout
        )
        .into());
    }
    let layers = blis_config::assemble(crate::args::flags_layer(&spec, argv), None, None)?;
    let (plan, seed, warnings) = blis_config::resolve_workload(&layers)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let source = plan.source()?;
    // Outputs are created before anything is sent (an unwritable path fails now) and appear
    // only when the observation is over.
    let mut header_file = PendingFile::create(&header_path, "trace-header")?;
    let mut data_file = PendingFile::create(&data_path, "trace-data")?;
    if args.itl_output.is_some() && !args.record_itl {
        return Err("--itl-output: only with --record-itl (it names where the chunk times go)".into());
    }
    let itl_path = args.record_itl.then(|| {
        args.itl_output.clone().unwrap_or_else(|| {
            let stem = data_path.to_string_lossy();
            let stem = stem.strip_suffix(".csv").unwrap_or(&stem);
            format!("{stem}.itl.csv").into()
        })
    });
    if let Some(p) = &itl_path
        && [&header_path, &data_path].into_iter().any(|out| same(p, out))
    {
        return Err(format!("--itl-output: {} is also a trace output", p.display()).into());
    }
    let itl_file = itl_path.as_ref().map(|p| PendingFile::create(p, "itl-output")).transpose()?;
    let opts = blis_observe::ObserveOptions {
        server_url: args.server_url.clone(),
        model: model.clone(),
        api_key: args.api_key.clone(),
        max_concurrency: max_concurrency as usize,
        default_timeout: Duration::from_secs_f64(args.request_timeout),
        horizon_us: spec.horizon.map(|h| h.0),
        record_chunk_times: args.record_itl,
    };
    let observed = blis_observe::observe(source, &opts).map_err(|e| CliError { message: e.0, code: 1 })?;

    let mut header = TraceHeader::generated(seed);
    header.mode = "real".into();
    header.created_at = rfc3339(observed.started_at);
    header.server = Some(ServerInfo { kind: "openai-compatible".into(), model, ..ServerInfo::default() });
    header.warm_up_requests = warm_up_requests;
    header.network = args.rtt_ms.map(|ms| TraceNetwork { measured_rtt_ms: Some(ms) });
    let io = |path: &std::path::Path, e: &dyn std::fmt::Display| CliError {
        message: format!("cannot write {}: {e}", path.display()),
        code: 1,
    };
    let yaml = header_yaml(&header).map_err(|e| io(&header_path, &e))?;
    header_file.write_all(yaml.as_bytes()).map_err(|e| io(&header_path, &e))?;
    write_records(data_file.writer(), &observed.records).map_err(|e| io(&data_path, &e))?;
    header_file.commit().map_err(|e| io(&header_path, &e))?;
    data_file.commit().map_err(|e| io(&data_path, &e))?;
    if let (Some(mut f), Some(p)) = (itl_file, itl_path.as_ref()) {
        blis_observe::write_itl_csv(f.writer(), &observed.chunk_times).map_err(|e| io(p, &e))?;
        f.commit().map_err(|e| io(p, &e))?;
    }

    if let Some(n) = observed.interrupted {
        eprintln!("interrupted: nothing more was sent; {n} requests in flight then are not in the trace");
    }
    let (sent, failed) = (observed.records.len(), observed.failed());
    let no_usage = observed.records.iter().filter(|r| r.status == "ok" && r.server_input_tokens == 0).count();
    if no_usage > 0 {
        eprintln!(
            "warning: {no_usage} responses reported no token usage (does the server support stream_options.include_usage?); their server_input_tokens is 0 and output_tokens the requested length"
        );
    }
    eprintln!(
        "observed {sent} requests ({failed} failed); trace: {} + {}",
        header_path.display(),
        data_path.display()
    );
    if sent > 0 && failed == sent {
        let first = &observed.records[0];
        return Err(CliError {
            message: format!("every request failed (first: {}: {})", first.status, first.error_message),
            code: 1,
        });
    }
    if observed.interrupted.is_some() {
        return Err(CliError { message: "interrupted".into(), code: 130 });
    }
    Ok(())
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723)), "2000-02-29T01:02:03Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_798_761_599)), "2026-12-31T23:59:59Z");
    }
}
