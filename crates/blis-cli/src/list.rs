//! `blis list models|gpus|policies`: what a run can name.

use clap::{Args, ValueEnum};

use crate::run::{CliResult, print_stdout};

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum)]
    pub what: ListWhat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListWhat {
    /// Model configs bundled with blis (others are fetched from the HuggingFace hub once).
    Models,
    /// The built-in GPU table (add or override with --hardware-config).
    Gpus,
    /// Every policy and model choice, with its help text.
    Policies,
}

/// `name — help` lines of a closed set.
fn values<T: ValueEnum>() -> Vec<String> {
    T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .map(|p| match p.get_help() {
            Some(h) => format!("  {:<26} {h}", p.get_name()),
            None => format!("  {}", p.get_name()),
        })
        .collect()
}

pub fn list(args: &ListArgs) -> CliResult<()> {
    let mut out = Vec::new();
    match args.what {
        ListWhat::Models => {
            out.push(
                "Bundled model configs (HuggingFace ids match case-insensitively, any organisation):"
                    .to_string(),
            );
            out.extend(blis_model::bundled_model_names().into_iter().map(|m| format!("  {m}")));
        }
        ListWhat::Gpus => {
            out.push(format!(
                "{:<12} {:>10} {:>10} {:>12} {:>9}",
                "gpu", "bf16 TF/s", "fp8 TF/s", "HBM TB/s", "mem GiB"
            ));
            for g in blis_model::builtin_gpus() {
                out.push(format!(
                    "{:<12} {:>10.0} {:>10.0} {:>12.2} {:>9.0}",
                    g.name, g.tflops_bf16, g.tflops_fp8, g.hbm_bandwidth_tbs, g.memory_gib
                ));
            }
        }
        ListWhat::Policies => {
            let sections: Vec<(&str, Vec<String>)> = vec![
                ("--routing-policy", values::<blis_sim::cluster::routing::RoutingKind>()),
                ("--routing-scorers (name:weight)", values::<blis_sim::cluster::scorer::ScorerKind>()),
                ("--admission-policy", values::<blis_sim::cluster::admission::AdmissionKind>()),
                ("--saturation-detector", values::<blis_sim::cluster::flow::SaturationDetectorKind>()),
                ("--dispatch-order", values::<blis_sim::cluster::flow::DispatchOrder>()),
                ("--fairness-policy", values::<blis_sim::cluster::flow::FairnessPolicy>()),
                ("--scheduler", values::<blis_sim::scheduler::SchedulerKind>()),
                ("--priority-policy", values::<blis_sim::priority::PriorityKind>()),
                ("--preemption-policy", values::<blis_sim::preemption::PreemptionKind>()),
                ("--latency-model", values::<blis_latency::LatencyModelKind>()),
                ("--post-hoc-detector", values::<blis_sim::saturation::DetectorKind>()),
                ("--workload", values::<blis_workload::Preset>()),
            ];
            for (flag, lines) in sections {
                out.push(format!("{flag}:"));
                out.extend(lines);
            }
        }
    }
    print_stdout(&out.join("\n"))
}
