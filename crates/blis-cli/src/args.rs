//! The command line: subcommands and the flags that are not part of a run description.
//! The run flags themselves are [`blis_config::RunSpec`]; their defaults come from
//! [`blis_config::RunSpec::defaults`] and are added to the help text here.

use std::path::PathBuf;

use blis_config::RunSpec;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "blis", version, about = "Discrete-event simulator of LLM inference serving clusters")]
pub struct Cli {
    /// Diagnostics on stderr at this level and above.
    #[arg(long, global = true, value_enum, default_value = "warn")]
    pub log: LogLevel,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Simulate a workload on one instance or a cluster and print metrics as JSON.
    Run(Box<RunArgs>),
    /// Replay a TraceV2 trace (header YAML + data CSV); an exported trace replays on the cluster
    /// its header records.
    Replay(Box<RunArgs>),
    /// Run a grid of `run` configurations in parallel; one result row per configuration.
    Sweep(crate::sweep::SweepArgs),
    /// Simulate measured vLLM experiments, report the error (MAPE), optionally refit coefficients;
    /// or compare an observed trace with `replay --results-path` of it, request by request.
    Calibrate(Box<crate::calibrate::CalibrateArgs>),
    /// Write a built-in workload, a ServeGen directory or an inference-perf spec as workload-spec v2 YAML.
    Convert(crate::convert::ConvertArgs),
    /// Merge workload-spec v2 files into one.
    Compose(crate::compose::ComposeArgs),
    /// The cheapest configuration meeting an SLO: `blis plan --model M --workload chatbot --rate 200 --slo "ttft_p99<=500ms" --hardware H100,A100-80`.
    Plan(Box<crate::plan::PlanArgs>),
    /// What a run can name: `blis list models|gpus|policies`.
    List(crate::list::ListArgs),
    /// Send a workload (the workload flags of `run`) to a real OpenAI-compatible server and
    /// record its timings as a TraceV2 trace for `blis replay`.
    Observe(Box<crate::observe::ObserveArgs>),
    /// Print a shell completion script: `blis completion bash > /etc/bash_completion.d/blis`,
    /// `blis completion zsh > ~/.zfunc/_blis`, `blis completion fish > ~/.config/fish/completions/blis.fish`.
    Completion(CompletionArgs),
}

/// Flags of `blis completion`.
#[derive(Args, Debug, Clone)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Flags of `blis run` and `blis replay`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub spec: RunSpec,
    /// Run the description in this YAML file (`blis run` keys); flags override it.
    #[arg(long, value_name = "FILE", help_heading = "Run")]
    pub config: Option<PathBuf>,
    /// Print the resolved run description as YAML (what `--config` reads) and exit.
    #[arg(long, help_heading = "Run")]
    pub dump_config: bool,
    /// Progress bar on stderr.
    #[arg(long, value_enum, default_value = "auto", help_heading = "Run")]
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    /// Always (a line every few seconds when stderr is not a terminal).
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// The clap command with each run flag's default appended to its help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let defaults = RunSpec::defaults().to_map();
    let annotate = |cmd: clap::Command| {
        let mut cmd = cmd;
        let ids: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| Some((a.get_id().to_string(), a.get_long()?.to_string())))
            .collect();
        for (id, long) in ids {
            if let Some(v) = defaults.get(&long) {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                cmd = cmd.mut_arg(id, |a| {
                    let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                    a.help(format!("{help} [default: {shown}]"))
                });
            }
        }
        cmd
    };
    Cli::command()
        .mut_subcommand("run", annotate)
        .mut_subcommand("replay", annotate)
        .mut_subcommand("observe", |c| crate::observe::annotate(annotate(c)))
}

/// Flag aliases a user may have typed, and the key each sets.
const ALIASES: &[(&str, &str)] = &[
    ("--max-num-running-reqs", "max-num-seqs"),
    ("--max-num-scheduled-tokens", "max-num-batched-tokens"),
    ("--trace-data", "workload-trace"),
    ("--export-workload-trace", "trace-output"),
    ("--detectors", "post-hoc-detector"),
    ("--pool", "pools"),
];

/// The flags layer of a run: the parsed flags, spelled as the user typed them.
pub fn flags_layer(spec: &RunSpec, argv: &[String]) -> blis_config::Layer {
    let mut layer = blis_config::Layer::new(blis_config::Source::Flags, spec);
    for (alias, key) in ALIASES {
        if argv.iter().any(|a| a == alias || a.starts_with(&format!("{alias}="))) {
            layer.spelled.insert((*key).to_string(), (*alias).to_string());
        }
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every run flag parses into the key of the same name, and the key reads back in a file.
    #[test]
    fn each_flag_sets_its_key() {
        let cases: &[(&[&str], &str, serde_json::Value)] = &[
            (&["--model", "m"], "model", "m".into()),
            (&["--tp", "2"], "tp", 2.into()),
            (&["--max-num-running-reqs", "8"], "max-num-seqs", 8.into()),
            (&["--max-num-seqs", "8"], "max-num-seqs", 8.into()),
            (&["--max-num-scheduled-tokens", "64"], "max-num-batched-tokens", 64.into()),
            (&["--no-prefix-caching"], "no-prefix-caching", true.into()),
            (&["--no-prefix-caching", "false"], "no-prefix-caching", false.into()),
            (&["--async-scheduling", "false"], "async-scheduling", false.into()),
            (&["--summarize-trace"], "summarize-trace", true.into()),
            (&["--scheduler", "priority-fcfs"], "scheduler", "priority-fcfs".into()),
            (
                &["--routing-scorers", "queue-depth:2,load-balance:1"],
                "routing-scorers",
                "queue-depth:2,load-balance:1".into(),
            ),
            (&["--alpha-coeffs", "1,2,3"], "alpha-coeffs", serde_json::json!([1.0, 2.0, 3.0])),
            (&["--trace-data", "d.csv"], "workload-trace", "d.csv".into()),
            (&["--export-workload-trace", "p"], "trace-output", "p".into()),
            (&["--detectors", "composite"], "post-hoc-detector", "composite".into()),
            (&["--detectors", "all"], "post-hoc-detector", "all".into()),
            (&["--detectors", "threshold,composite"], "post-hoc-detector", "composite,threshold".into()),
            (&["--saturation-report", "s.json"], "saturation-report", "s.json".into()),
            (&["--saturation-config", "s.yaml"], "saturation-config", "s.yaml".into()),
            (&["--workload", "general-lite"], "workload", "general-lite".into()),
            (&["--timeout", "-1"], "timeout", (-1.0).into()),
            (&["--concurrency", "8"], "concurrency", 8.into()),
            (&["--session-mode", "closed-loop"], "session-mode", "closed-loop".into()),
            (&["--think-time-ms", "500"], "think-time-ms", 500.into()),
            (
                &["--think-time-dist", "lognormal:mu=2.0,sigma=0.6,min=3s,max=30s"],
                "think-time-dist",
                "lognormal:mu=2.0,sigma=0.6,min=3s,max=30s".into(),
            ),
            (
                &["--pool", "name=a,instances=2", "--pools", "name=b,instances=1,tp=2"],
                "pools",
                serde_json::json!([{"name": "a", "instances": 2}, {"name": "b", "instances": 1, "tp": 2}]),
            ),
        ];
        for (flags, key, value) in cases {
            let argv: Vec<&str> = ["blis", "run"].iter().chain(flags.iter()).copied().collect();
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
            let Command::Run(args) = cli.command else { unreachable!() };
            let map = args.spec.to_map();
            assert_eq!(map.get(*key), Some(value), "{flags:?}");
            assert_eq!(map.len(), 1, "{flags:?} set {map:?}");
            let yaml = format!("{key}: {}", serde_json::to_string(value).unwrap());
            let back: RunSpec = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(back, args.spec, "{yaml}");
        }
    }

    /// Every run flag is a key of the run description with the same name (and back), except
    /// the few that only steer the command line.
    #[test]
    fn flags_and_keys_are_the_same_names() {
        let cmd = command();
        let run = cmd.find_subcommand("run").unwrap();
        let flags: Vec<String> = run.get_arguments().filter_map(|a| a.get_long().map(String::from)).collect();
        let keys = RunSpec::keys();
        let cli_only = ["config", "dump-config", "progress", "log", "help"];
        for f in &flags {
            assert!(keys.contains(f) || cli_only.contains(&f.as_str()), "--{f} is not a key");
        }
        let file_only = ["slo-priorities", "tenant-budgets"];
        for k in &keys {
            assert!(flags.contains(k) || file_only.contains(&k.as_str()), "key {k} has no flag");
            let probe = format!("{k}: null\n");
            assert!(serde_saphyr::from_str::<RunSpec>(&probe).is_ok(), "key {k} is not read from files");
        }
    }

    #[test]
    fn every_flag_with_a_default_shows_it() {
        let cmd = command();
        let run = cmd.find_subcommand("run").unwrap();
        for key in RunSpec::defaults().to_map().keys() {
            let arg = run.get_arguments().find(|a| a.get_long() == Some(key.as_str()));
            let Some(arg) = arg else { continue }; // config-file-only keys
            let help = arg.get_help().unwrap().to_string();
            assert!(help.contains("[default: "), "--{key}: {help}");
        }
    }
}
