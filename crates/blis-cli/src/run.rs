//! `blis run` and `blis replay`: flags (+ config file, policy file, trace header) → one resolved
//! run description → simulation → metrics document on stdout.

use std::io::IsTerminal;
use std::path::Path;

use blis_config::{Catalog, Layers, RunConfig, RunError, Source};

use crate::args::{ProgressMode, RunArgs};

/// An error of a command: its message and exit status.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError { message, code: 2 }
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        CliError { message: message.to_string(), code: 2 }
    }
}

impl From<blis_config::ConfigError> for CliError {
    fn from(e: blis_config::ConfigError) -> Self {
        CliError { message: e.to_string(), code: 2 }
    }
}

impl From<RunError> for CliError {
    fn from(e: RunError) -> Self {
        CliError { message: e.to_string(), code: e.exit_code() }
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// What the environment gives every run (see [`Catalog::from_env`]).
pub fn catalog() -> Catalog {
    Catalog::from_env()
}

/// `blis run`.
pub fn run(args: &RunArgs, argv: &[String]) -> CliResult<()> {
    let flags = crate::args::flags_layer(&args.spec, argv);
    let layers = blis_config::assemble(flags, args.config.as_deref(), None)?;
    execute(args, &layers)
}

/// `blis replay`: the trace is the workload, and an exported trace's header recorded the cluster
/// it ran on; flags (and a config file) override that, with a notice.
pub fn replay(args: &RunArgs, argv: &[String]) -> CliResult<()> {
    if args.spec.workload_trace.is_none() {
        return Err("--trace-data: required (the trace's data CSV)".into());
    }
    let header = match &args.spec.trace_header {
        Some(h) => blis_config::trace_header_layer(h)?,
        None => None,
    };
    let header_source = header.as_ref().map(|h| h.source.clone());
    let flags = crate::args::flags_layer(&args.spec, argv);
    let layers = blis_config::assemble(flags, args.config.as_deref(), header)?;
    if let Some(source @ Source::TraceHeader(path)) = &header_source {
        for key in layers.overridden_by_flags(source) {
            eprintln!("notice: --{key} overrides the value recorded in {}", path.display());
        }
    }
    execute(args, &layers)
}

fn execute(args: &RunArgs, layers: &Layers) -> CliResult<()> {
    let config = blis_config::resolve(layers, &catalog())?;
    if args.dump_config {
        let yaml = serde_saphyr::to_string(&config.spec)
            .map_err(|e| format!("cannot print the configuration: {e}"))?;
        return print_stdout(yaml.trim_end());
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let outcome = simulate(&config, args.progress)?;
    for w in outcome.warnings() {
        eprintln!("warning: {w}");
    }
    let text = serde_json::to_string_pretty(&outcome.doc).expect("metrics serialize");
    print_stdout(&text)
}

/// Runs with a progress display on stderr.
fn simulate(config: &RunConfig, progress: ProgressMode) -> CliResult<blis_config::RunOutcome> {
    let expected = config.expected_requests();
    let terminal = std::io::stderr().is_terminal();
    let show = match progress {
        ProgressMode::Auto => terminal,
        ProgressMode::Always => true,
        ProgressMode::Never => false,
    };
    let started = std::time::Instant::now();
    // On a terminal a live bar; elsewhere (`--progress always` into a log) a line every ~2 s.
    let bar = (show && terminal).then(|| {
        let bar = indicatif::ProgressBar::with_draw_target(expected, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} requests done · {msg}")
                .expect("static template"),
        );
        bar
    });
    let mut next_line_s = 2.0;
    let outcome = config.execute(|p| {
        let elapsed_s = started.elapsed().as_secs_f64();
        if !show || elapsed_s <= 2.0 {
            return;
        }
        let status = format!(
            "sim time {:.1} s · {:.2} M events/s",
            p.now_us as f64 / 1e6,
            p.events as f64 / elapsed_s / 1e6
        );
        if let Some(bar) = &bar {
            bar.set_position(p.finished);
            bar.set_message(status);
        } else if elapsed_s >= next_line_s {
            next_line_s = elapsed_s + 2.0;
            let total = expected.map_or(String::new(), |n| format!("/{n}"));
            eprintln!("progress: {}{total} requests done · {status}", p.finished);
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(outcome)
}

/// Writes the document to stdout; a closed pipe (`blis run … | head`) is not an error.
pub fn print_stdout(text: &str) -> CliResult<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to stdout: {e}").into())
        }
        _ => Ok(()),
    }
}

/// Writes `text` to `path` atomically (a temporary file renamed over it); `flag` names the option.
pub fn write_file(path: &Path, text: &str, flag: &str) -> CliResult<()> {
    let mut f = blis_config::outputs::PendingFile::create(path, flag)?;
    f.write_all(text.as_bytes()).map_err(|e| format!("--{flag}: cannot write {}: {e}", path.display()))?;
    blis_config::outputs::commit_all(vec![f]).map_err(|e| format!("--{flag}: {e}").into())
}
