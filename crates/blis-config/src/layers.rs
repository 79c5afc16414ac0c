//! Layers of a run description and how they merge: defaults < trace header < config file <
//! policy file < flags (the Python binding and sweep rows are flag-like layers). A key takes its
//! value from the highest layer that sets it, and remembers which layer that was, so an error
//! can name what the user actually wrote (`--max-num-running-reqs`, `policy.yaml:
//! admission.policy`, `run.yaml: rate`). Relative paths in files are relative to the working
//! directory, as on the command line, so a dumped configuration runs the same from there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::spec::RunSpec;

/// Where a layer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// [`RunSpec::defaults`].
    Defaults,
    /// The defaults a `--compat` mode changes ([`crate::spec::Compat::defaults`]).
    CompatDefaults(crate::spec::Compat),
    /// The configuration recorded in an exported trace's header (`blis replay`).
    TraceHeader(PathBuf),
    /// `--config FILE`.
    ConfigFile(PathBuf),
    /// `--policy-config FILE` (the reference simulator's format).
    PolicyFile(PathBuf),
    /// Command-line flags (or a caller that speaks in flags: sweep rows, Python keywords).
    Flags,
}

/// One layer: the keys it sets, and how the user spelled each of them.
#[derive(Debug, Clone)]
pub struct Layer {
    pub source: Source,
    pub values: Map<String, Value>,
    /// Key → the user's own spelling, where it differs from the key (a flag alias, a
    /// policy-file path such as `admission.policy`).
    pub spelled: BTreeMap<String, String>,
}

impl Layer {
    pub fn new(source: Source, spec: &RunSpec) -> Layer {
        Layer { source, values: spec.to_map(), spelled: BTreeMap::new() }
    }

    /// JSON has no NaN or infinity, so a non-finite number in a spec becomes `null` here: refuse
    /// it with the key that held it.
    pub fn check_finite(&self) -> Result<(), ConfigError> {
        fn has_null(v: &Value) -> bool {
            match v {
                Value::Null => true,
                Value::Array(a) => a.iter().any(has_null),
                Value::Object(m) => m.values().any(has_null),
                _ => false,
            }
        }
        match self.values.iter().find(|(_, v)| has_null(v)) {
            Some((key, _)) => {
                Err(ConfigError::new(key.clone(), self.describe(key), "must be a finite number"))
            }
            None => Ok(()),
        }
    }

    /// How key `key` of this layer reads to the user.
    pub fn describe(&self, key: &str) -> String {
        let spelled = self.spelled.get(key).map_or(key, String::as_str);
        match &self.source {
            Source::Defaults | Source::CompatDefaults(_) => format!("--{key} (default)"),
            Source::Flags => {
                if spelled.starts_with('-') {
                    spelled.to_string()
                } else {
                    format!("--{spelled}")
                }
            }
            Source::TraceHeader(p) => format!("{}: config.{spelled}", p.display()),
            Source::ConfigFile(p) | Source::PolicyFile(p) => format!("{}: {spelled}", p.display()),
        }
    }
}

/// Layers, lowest precedence first.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: Vec<Layer>,
}

impl Layers {
    /// Just the defaults.
    pub fn with_defaults() -> Layers {
        Layers { layers: vec![Layer::new(Source::Defaults, &RunSpec::defaults())] }
    }

    /// Adds a layer above every layer so far.
    pub fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
    }

    /// Every layer's values are representable (see [`Layer::check_finite`]).
    pub fn check_finite(&self) -> Result<(), ConfigError> {
        self.layers.iter().try_for_each(Layer::check_finite)
    }

    /// Adds a layer right above the defaults (below everything the user gave).
    pub fn push_lowest(&mut self, layer: Layer) {
        let at = usize::from(self.layers.first().is_some_and(|l| l.source == Source::Defaults));
        self.layers.insert(at, layer);
    }

    /// The defaults that a `--compat` mode changes, as a layer right above the defaults.
    pub fn with_compat_defaults(&self, compat: crate::spec::Compat) -> Layers {
        let mut out = self.clone();
        let defaults = compat.defaults();
        if defaults != RunSpec::default() {
            out.push_lowest(Layer::new(Source::CompatDefaults(compat), &defaults));
        }
        out
    }

    /// The merged spec: every key from the highest layer that sets it.
    pub fn merged(&self) -> Result<RunSpec, ConfigError> {
        let mut map = Map::new();
        for layer in &self.layers {
            for (k, v) in &layer.values {
                map.insert(k.clone(), v.clone());
            }
        }
        // Reorder into declaration order (serialization of the result does that anyway).
        RunSpec::from_map(map).map_err(|e| ConfigError::new("", "configuration", e))
    }

    /// The layer that set `key`, if any.
    pub fn origin(&self, key: &str) -> Option<&Layer> {
        self.layers.iter().rev().find(|l| l.values.contains_key(key))
    }

    /// How the value of `key` reads to the user (`--tp`, `run.yaml: tp`, …).
    pub fn describe(&self, key: &str) -> String {
        match self.origin(key) {
            Some(layer) => layer.describe(key),
            None => format!("--{key}"),
        }
    }

    /// Whether the user set `key` (anywhere but the defaults).
    pub fn is_explicit(&self, key: &str) -> bool {
        self.origin(key).is_some_and(|l| !matches!(l.source, Source::Defaults | Source::CompatDefaults(_)))
    }

    /// The value `key` takes when the user does not set it.
    pub fn default_value(&self, key: &str) -> Option<&Value> {
        self.layers
            .iter()
            .rev()
            .filter(|l| matches!(l.source, Source::Defaults | Source::CompatDefaults(_)))
            .find_map(|l| l.values.get(key))
    }

    /// Keys the flags set that a lower, non-default layer also set (for "overrides" notices).
    pub fn overridden_by_flags(&self, below: &Source) -> Vec<String> {
        let Some(flags) = self.layers.iter().rev().find(|l| l.source == Source::Flags) else {
            return Vec::new();
        };
        let Some(lower) = self.layers.iter().find(|l| &l.source == below) else {
            return Vec::new();
        };
        flags
            .values
            .iter()
            .filter(|(k, v)| lower.values.get(*k).is_some_and(|old| old != *v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The file of `--policy-config`, if any layer names one.
    pub fn policy_file(&self) -> Option<PathBuf> {
        let v = self.origin("policy-config")?.values.get("policy-config")?;
        v.as_str().map(PathBuf::from)
    }
}

/// Keys whose values are file paths (inputs and outputs).
pub const PATH_KEYS: &[&str] = &[
    "coefficients-file",
    "model-config-folder",
    "hardware-config",
    "workload-spec",
    "workload-trace",
    "trace-header",
    "policy-config",
    "kv-offload-config",
    "lora-config",
    "metrics-path",
    "results-path",
    "trace-output",
    "decision-trace-path",
    "report",
    "timeseries-path",
    "saturation-report",
    "saturation-config",
];
