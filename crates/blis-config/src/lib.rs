//! One typed description of a BLIS run, built in one place and used by every entry point.
//!
//! - [`RunSpec`]: a run as the user describes it; the `blis run` flags and the keys of a config
//!   file are the same struct, every field optional.
//! - [`Layers`]: the layers of a description and their precedence, defaults < trace header <
//!   config file < policy file < flags ([`assemble`] builds them).
//! - [`resolve`]: layers → [`RunConfig`], everything loaded, derived, checked; errors name what
//!   the user wrote.
//! - [`RunConfig::execute`] / [`RunConfig::simulate`]: the one place a run is assembled and
//!   carried out; outputs are written atomically.
//! - [`sweep`]: grids of run descriptions; [`policy_file`]: the reference simulator's policy
//!   bundles.

pub mod autoscale;
pub mod duration;
pub mod environment;
pub mod error;
pub mod export;
pub mod html;
pub mod interval;
pub mod kv_offload;
pub mod layers;
pub mod lora;
pub mod outputs;
pub mod plan;
pub mod policy_file;
pub mod pools;
pub mod resolve;
pub mod run;
pub mod slo;
pub mod spec;
pub mod sweep;
mod yaml;

#[cfg(test)]
mod fuzz;

use std::path::Path;

pub use error::{ConfigError, RunError};
pub use layers::{Layer, Layers, Source};
pub use pools::PoolSpec;
pub use resolve::{Analysis, Catalog, Derived, Outputs, RunConfig, WorkloadPlan, resolve, resolve_workload};
pub use run::RunOutcome;
pub use spec::{ArrivalProcess, Compat, RunSpec, ScorerList, SessionMode, TraceLevel, WorkloadSpecRef};

/// The accepted names of a closed set, comma-separated (for error messages).
pub fn accepted<T: clap::ValueEnum>() -> String {
    T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name of one value of a closed set.
pub fn name_of<T: clap::ValueEnum>(v: T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// A config file (`--config FILE`): the `blis run` keys as YAML.
pub fn config_file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let spec: RunSpec = yaml::load(path, "config")?;
    let mut layer = Layer::new(Source::ConfigFile(path.to_path_buf()), &spec);
    layer.values.remove("config");
    Ok(layer)
}

/// The configuration an exported trace's header records (none for other traces).
pub fn trace_header_layer(path: &Path) -> Result<Option<Layer>, ConfigError> {
    let header = blis_workload::read_trace_header(path)
        .map_err(|e| ConfigError::new("trace-header", "--trace-header", e.to_string()))?;
    let Some(config) = header.config else { return Ok(None) };
    let serde_json::Value::Object(map) = config else {
        return Err(ConfigError::new(
            "trace-header",
            format!("{}: config", path.display()),
            "must be a mapping",
        ));
    };
    let spec = RunSpec::from_map(map)
        .map_err(|e| ConfigError::new("trace-header", format!("{}: config", path.display()), e))?;
    Ok(Some(Layer::new(Source::TraceHeader(path.to_path_buf()), &spec)))
}

/// The layers of a run: defaults < `header` < `config_file` < the policy file the config file
/// or the flags name < `flags`.
pub fn assemble(
    flags: Layer,
    config_file: Option<&Path>,
    header: Option<Layer>,
) -> Result<Layers, ConfigError> {
    let mut layers = Layers::with_defaults();
    if let Some(h) = header {
        layers.push(h);
    }
    if let Some(path) = config_file {
        layers.push(config_file_layer(path)?);
    }
    let mut probe = layers.clone();
    probe.push(flags.clone());
    if let Some(policy) = probe.policy_file() {
        layers.push(policy_file::load(&policy)?);
    }
    layers.push(flags);
    Ok(layers)
}

/// A run from a spec given as flags (sweep rows, the Python binding, tests): defaults < the
/// policy file it names < `spec`.
pub fn config_from_spec(spec: &RunSpec, catalog: &Catalog) -> Result<RunConfig, ConfigError> {
    let layers = assemble(Layer::new(Source::Flags, spec), None, None)?;
    resolve(&layers, catalog)
}
