//! `blis plan`: the cheapest configuration meeting an SLO (the search is
//! [`blis_config::plan`]); JSON on stdout, a table on stderr.

use std::path::PathBuf;

use blis_config::RunSpec;
use blis_sim::cluster::routing::RoutingKind;
use blis_workload::Preset;
use clap::Args;

use crate::run::{CliResult, catalog, print_stdout, write_file};

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// HuggingFace model id, e.g. meta-llama/llama-3.1-8b-instruct.
    #[arg(long)]
    pub model: String,
    /// Built-in workload [default: chatbot unless --workload-spec].
    #[arg(long, value_enum)]
    pub workload: Option<Preset>,
    /// Workload-spec v2 YAML instead of a built-in workload.
    #[arg(long, value_name = "FILE")]
    pub workload_spec: Option<PathBuf>,
    /// Offered load of a built-in workload (requests/s).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Objectives, e.g. "ttft_p99<=500ms,e2e_p99<=10s" (as `blis run --slo`).
    #[arg(long, value_name = "OBJECTIVES")]
    pub slo: String,
    /// GPU types to consider, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "H100")]
    pub hardware: Vec<String>,
    /// TP degrees to consider [default: every degree vLLM accepts for the model: 1, 2, 4, 8 dividing its heads].
    #[arg(long, value_delimiter = ',')]
    pub tp: Option<Vec<u32>>,
    /// Most GPUs a configuration may use.
    #[arg(long, default_value_t = 16)]
    pub max_gpus: u32,
    /// Routing policies to compare, comma-separated [default: round-robin].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub routing_policy: Vec<RoutingKind>,
    /// $ per GPU-hour, "H100=2.5,A100-80=1.6": minimise cost instead of GPUs.
    #[arg(long, value_name = "GPU=USD,…")]
    pub gpu_cost: Option<String>,
    /// Seed replicas per configuration (a configuration meets the SLO only under every one).
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// First seed (replicas use seed, seed+1, …).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Requests per run [default: max(2000, rate × 60 s) for built-in workloads; the spec's count otherwise].
    #[arg(long)]
    pub num_requests: Option<u64>,
    /// Fraction of each run's first requests excluded as warm-up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_fraction: f64,
    /// `blis run` config file with any other keys (engine settings, policies, …).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also write the plan document to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write a self-contained HTML page with the GPUs-vs-latency frontier.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Worker threads [default: all cores]. The answer does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn plan(args: &PlanArgs) -> CliResult<()> {
    let mut base = match &args.config {
        Some(path) => {
            let layer = blis_config::config_file_layer(path)?;
            RunSpec::from_map(layer.values).map_err(|e| format!("--config: {e}"))?
        }
        None => RunSpec::default(),
    };
    base.model = Some(args.model.clone());
    if let Some(w) = &args.workload_spec {
        base.workload_spec = Some(blis_config::WorkloadSpecRef::Path(w.clone()));
    } else {
        base.workload = Some(args.workload.or(base.workload).unwrap_or(Preset::Chatbot));
    }
    if let Some(r) = args.rate {
        base.rate = Some(r);
    }
    if !(args.warmup_fraction >= 0.0 && args.warmup_fraction < 1.0) {
        return Err(format!("--warmup-fraction: must be in [0, 1), got {}", args.warmup_fraction).into());
    }
    if args.seeds == 0 {
        return Err("--seeds: must be at least 1".into());
    }
    let gpu_cost = match &args.gpu_cost {
        Some(t) => blis_config::plan::parse_costs(t).map_err(|e| format!("--gpu-cost: {e}"))?,
        None => Default::default(),
    };
    let req = blis_config::plan::PlanRequest {
        base,
        slo: args.slo.clone(),
        hardware: args.hardware.iter().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect(),
        tp: args.tp.clone(),
        routing: args.routing_policy.clone(),
        max_gpus: args.max_gpus,
        gpu_cost,
        seeds: (0..args.seeds).map(|i| args.seed.wrapping_add(i)).collect(),
        num_requests: args.num_requests,
        warmup_fraction: args.warmup_fraction,
    };
    if let Some(p) = &args.output {
        drop(blis_config::outputs::PendingFile::create(p, "output")?);
    }
    if let Some(p) = &args.report {
        drop(blis_config::outputs::PendingFile::create(p, "report")?);
    }
    let threads = match args.threads {
        Some(0) => return Err("--threads: must be at least 1".into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("--threads: cannot start {threads} threads: {e}"))?;
    let started = std::time::Instant::now();
    let doc = pool.install(|| blis_config::plan::plan(&req, &catalog()))?;
    eprint!("{}", blis_config::plan::table(&doc));
    eprintln!(
        "{} configurations simulated in {:.1} s",
        doc.candidates.len(),
        started.elapsed().as_secs_f64()
    );
    let text = serde_json::to_string_pretty(&doc).expect("plan serializes");
    if let Some(p) = &args.output {
        write_file(p, &format!("{text}\n"), "output")?;
    }
    if let Some(p) = &args.report {
        write_file(p, &blis_config::plan::page(&doc), "report")?;
    }
    print_stdout(&text)
}
