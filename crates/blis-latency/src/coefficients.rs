//! Coefficient vectors and the YAML files that carry them.
//!
//! The shipped `data/coefficients.yaml` is compiled in, so a bare `blis run` needs no files on disk;
//! `--coefficients-file` points at a file of the same shape (or at a single `{alpha, beta}` set).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{LatencyError, one_line};

/// Text of the shipped coefficient file.
pub const SHIPPED_COEFFICIENTS_YAML: &str = include_str!("../data/coefficients.yaml");

/// Fewest and most β entries trained-physics accepts (§8.3 "with fewer coefficients").
pub const MIN_PHYSICS_BETAS: usize = 7;
pub const MAX_PHYSICS_BETAS: usize = 11;

/// One trained-physics coefficient set: `alpha = [queueing, post-decode, OTPT]` (µs) and the β
/// multipliers of the basis terms (7..=11 entries).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicsCoefficients {
    pub alpha: [f64; 3],
    pub beta: Vec<f64>,
}

impl PhysicsCoefficients {
    /// The reference simulator's bundled "iter29" set.
    pub fn reference() -> Self {
        shipped().set("reference").expect("shipped file has `reference`").clone()
    }

    /// Parses and validates a single `{alpha, beta}` YAML mapping.
    pub fn from_yaml(text: &str) -> Result<Self, LatencyError> {
        let set: Self = parse_yaml(text)?;
        set.validate("")?;
        Ok(set)
    }

    /// Checks every value is finite and ≥ 0 and β has 7..=11 entries; `context` prefixes errors.
    pub fn validate(&self, context: &str) -> Result<(), LatencyError> {
        validate_values(&format!("{context}alpha"), &self.alpha)?;
        validate_beta_len(&format!("{context}beta"), self.beta.len())?;
        validate_values(&format!("{context}beta"), &self.beta)
    }
}

/// A legacy blackbox fit for one (model, GPU, TP, vLLM version).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackboxEntry {
    pub model: String,
    pub gpu: String,
    pub tp: u32,
    pub vllm: String,
    pub alpha: [f64; 3],
    pub beta: [f64; 3],
}

/// A whole coefficient file: named trained-physics sets, the default set's name, blackbox fits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoefficientFile {
    pub default: String,
    pub trained_physics: BTreeMap<String, PhysicsCoefficients>,
    #[serde(default)]
    pub blackbox: Vec<BlackboxEntry>,
}

impl CoefficientFile {
    /// Parses and validates a coefficient file. A file holding only `alpha`/`beta` is accepted as
    /// a single trained-physics set named `file` (the default).
    pub fn from_yaml(text: &str) -> Result<Self, LatencyError> {
        let keys: BTreeMap<String, serde::de::IgnoredAny> = parse_yaml(text)?;
        let file = if keys.contains_key("alpha") || keys.contains_key("beta") {
            let set: PhysicsCoefficients = parse_yaml(text)?;
            Self {
                default: "file".into(),
                trained_physics: BTreeMap::from([("file".into(), set)]),
                blackbox: Vec::new(),
            }
        } else {
            parse_yaml(text)?
        };
        file.validate()?;
        Ok(file)
    }

    /// Reads and parses `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Self, LatencyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LatencyError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        Self::from_yaml(&text)
            .map_err(|e| LatencyError::Coefficients(format!("coefficients file {}: {e}", path.display())))
    }

    /// The set `--latency-model trained-physics` uses when no β override is given.
    pub fn default_set(&self) -> &PhysicsCoefficients {
        self.set(&self.default).expect("validated: default names a set")
    }

    /// The trained-physics set called `name`.
    pub fn set(&self, name: &str) -> Result<&PhysicsCoefficients, LatencyError> {
        self.trained_physics.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.trained_physics.keys().map(String::as_str).collect();
            LatencyError::Coefficients(format!(
                "no trained_physics coefficient set '{name}' (known: {})",
                known.join(", ")
            ))
        })
    }

    /// The blackbox fit for a model id (matched on the part after the last `/`, case-insensitive),
    /// GPU name and TP.
    pub fn blackbox_for(&self, model: &str, gpu: &str, tp: u32) -> Option<&BlackboxEntry> {
        let short = |m: &str| m.rsplit('/').next().unwrap_or(m).to_ascii_lowercase();
        self.blackbox
            .iter()
            .find(|e| e.tp == tp && e.gpu.eq_ignore_ascii_case(gpu) && short(&e.model) == short(model))
    }

    fn validate(&self) -> Result<(), LatencyError> {
        for (name, set) in &self.trained_physics {
            set.validate(&format!("trained_physics.{name}."))?;
        }
        self.set(&self.default).map_err(|e| LatencyError::Coefficients(format!("default: {e}")))?;
        for (i, entry) in self.blackbox.iter().enumerate() {
            validate_values(&format!("blackbox[{i}].alpha"), &entry.alpha)?;
            validate_values(&format!("blackbox[{i}].beta"), &entry.beta)?;
        }
        Ok(())
    }
}

/// The compiled-in coefficient file, parsed once.
pub fn shipped() -> &'static CoefficientFile {
    static FILE: OnceLock<CoefficientFile> = OnceLock::new();
    FILE.get_or_init(|| {
        CoefficientFile::from_yaml(SHIPPED_COEFFICIENTS_YAML).expect("shipped coefficients parse")
    })
}

/// Rejects non-finite or negative coefficients: a negative multiplier could make a step shorter
/// when the batch grows, which no GPU does.
pub fn validate_values(field: &str, values: &[f64]) -> Result<(), LatencyError> {
    match values.iter().position(|v| !v.is_finite() || *v < 0.0) {
        None => Ok(()),
        Some(i) => {
            Err(LatencyError::Coefficients(format!("{field}[{i}] = {} must be finite and >= 0", values[i])))
        }
    }
}

/// Rejects a β vector trained-physics cannot interpret.
pub fn validate_beta_len(field: &str, len: usize) -> Result<(), LatencyError> {
    if (MIN_PHYSICS_BETAS..=MAX_PHYSICS_BETAS).contains(&len) {
        return Ok(());
    }
    Err(LatencyError::Coefficients(format!(
        "{field} has {len} entries; trained-physics needs {MIN_PHYSICS_BETAS} to {MAX_PHYSICS_BETAS}"
    )))
}

fn parse_yaml<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, LatencyError> {
    serde_saphyr::from_str(text).map_err(|e| {
        // The first line holds position and cause; the rest is a source snippet.
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        LatencyError::Coefficients(format!("invalid YAML: {}", one_line(first)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_parses_with_reference_default() {
        let file = shipped();
        assert_eq!(file.default, "reference");
        let r = PhysicsCoefficients::reference();
        assert_eq!(r.alpha, [15563.199579, 777.3455, 45.907545]);
        assert_eq!(r.beta.len(), 11);
        assert_eq!(file.set("blis-h100").unwrap(), &r);
    }

    #[test]
    fn blackbox_lookup_matches_short_name_and_tp() {
        let e = shipped().blackbox_for("Llama-3.1-8B-Instruct", "h100", 2).unwrap();
        assert_eq!(e.beta, [6910.42, 17.6706, 2.83775]);
        assert!(shipped().blackbox_for("llama-3.1-8b-instruct", "H100", 8).is_none());
    }

    #[test]
    fn single_set_yaml_is_accepted() {
        let f = CoefficientFile::from_yaml("alpha: [1, 2, 3]\nbeta: [1, 1, 1, 1, 1, 1, 1]\n").unwrap();
        assert_eq!(f.default_set().beta.len(), 7);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = PhysicsCoefficients::from_yaml("alpha: [1, 2, 3]\nbeta: [1,1,1,1,1,1,1]\ngamma: 1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid YAML: line 3 column 1: unknown field `gamma`, expected one of alpha, beta");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = PhysicsCoefficients::from_yaml("alpha: [1, -2, 3]\nbeta: [1,1,1,1,1,1,1]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "alpha[1] = -2 must be finite and >= 0");
        let err =
            PhysicsCoefficients::from_yaml("alpha: [1, 2, 3]\nbeta: [1,1,1]\n").unwrap_err().to_string();
        assert_eq!(err, "beta has 3 entries; trained-physics needs 7 to 11");
        let err = CoefficientFile::from_yaml("default: nope\ntrained_physics: {}\n").unwrap_err().to_string();
        assert!(err.starts_with("default: no trained_physics coefficient set 'nope'"), "{err}");
    }
}
