//! `blis compose --from a.yaml --from b.yaml [--output FILE]`: several client-based workload
//! specs as one (clients concatenated, absolute per-client rates preserved).

use std::path::PathBuf;

use clap::Args;

use crate::run::CliResult;

#[derive(Args, Debug, Clone)]
pub struct ComposeArgs {
    /// A workload-spec v2 file; repeat for each spec to merge (at least one).
    #[arg(long = "from", required = true, value_name = "FILE")]
    pub from: Vec<PathBuf>,
    /// Write the YAML here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn compose(args: &ComposeArgs) -> CliResult<()> {
    let specs = args
        .from
        .iter()
        .map(|p| blis_workload::load_spec_file(p).map_err(|e| format!("--from: {e}")))
        .collect::<Result<Vec<_>, String>>()?;
    let merged = blis_workload::compose(&specs).map_err(|mut e| {
        // Name the file instead of its position.
        if let Some(i) =
            e.file.as_deref().and_then(|f| f.strip_prefix("spec #")).and_then(|n| n.parse::<usize>().ok())
            && let Some(path) = args.from.get(i.wrapping_sub(1))
        {
            e.file = Some(path.display().to_string());
        }
        format!("--from: {e}")
    })?;
    let yaml = blis_workload::to_yaml(&merged).map_err(|e| e.to_string())?;
    crate::convert::write_yaml(&yaml, args.output.as_deref())
}
