//! Builds a latency model by its `--latency-model` name, applying CLI coefficient overrides.

use std::borrow::Cow;
use std::path::PathBuf;

use blis_model::{GpuSpec, ModelSpec};

use crate::LatencyModel;
use crate::blackbox::Blackbox;
use crate::coefficients::{
    CoefficientFile, PhysicsCoefficients, shipped, validate_beta_len, validate_values,
};
use crate::error::LatencyError;
use crate::roofline::Roofline;
use crate::trained_physics::TrainedPhysics;

/// Backend names `--latency-model` accepts.
pub const LATENCY_MODELS: &[&str] = &["trained-physics", "roofline", "blackbox", "blis-physics"];

/// The backend used when `--latency-model` is not given.
pub const DEFAULT_LATENCY_MODEL: &str = "trained-physics";

/// Coefficients given on the command line; each replaces the corresponding part of the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyOverrides {
    /// `--alpha-coeffs`: exactly 3 values.
    pub alpha: Option<Vec<f64>>,
    /// `--beta-coeffs`: 7..=11 values for trained-physics, 3 for blackbox.
    pub beta: Option<Vec<f64>>,
    /// `--coefficients-file`: replaces the shipped coefficient file.
    pub coefficients_file: Option<PathBuf>,
}

/// Builds the backend `name` for `model` on `gpu` at tensor parallelism `tp`.
pub fn build(
    name: &str,
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    overrides: &LatencyOverrides,
) -> Result<Box<dyn LatencyModel>, LatencyError> {
    match name {
        "trained-physics" => Ok(Box::new(build_trained_physics(model, gpu, tp, overrides)?)),
        "roofline" => Ok(Box::new(build_roofline(model, gpu, tp, overrides)?)),
        "blackbox" => Ok(Box::new(build_blackbox(model, gpu, tp, overrides)?)),
        "blis-physics" => Ok(Box::new(crate::blis_physics::build(model, gpu, tp, overrides)?)),
        _ => Err(LatencyError::UnknownModel { name: name.to_string(), accepted: LATENCY_MODELS }),
    }
}

/// Trained-physics with the coefficient file's default set, then any α/β override.
pub fn build_trained_physics(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    overrides: &LatencyOverrides,
) -> Result<TrainedPhysics, LatencyError> {
    let file = coefficient_file(overrides)?;
    let mut coeffs = file.default_set().clone();
    if let Some(alpha) = alpha_override(overrides)? {
        coeffs.alpha = alpha;
    }
    if let Some(beta) = &overrides.beta {
        validate_beta_len("--beta-coeffs", beta.len())?;
        validate_values("--beta-coeffs", beta)?;
        coeffs.beta.clone_from(beta);
    }
    TrainedPhysics::new(model, gpu, tp, &coeffs)
}

/// Roofline has no β and no coefficient file; refusing them beats silently ignoring them.
pub fn build_roofline(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    overrides: &LatencyOverrides,
) -> Result<Roofline, LatencyError> {
    if overrides.beta.is_some() || overrides.coefficients_file.is_some() {
        return Err(LatencyError::Coefficients(
            "--latency-model roofline takes only --alpha-coeffs (no --beta-coeffs or coefficients file)"
                .into(),
        ));
    }
    Roofline::new(model, gpu, tp, alpha_override(overrides)?.unwrap_or_default())
}

/// Blackbox from `--beta-coeffs` (α defaults to 0), else from the file's per-(model, GPU, TP) fits.
pub fn build_blackbox(
    model: &ModelSpec,
    gpu: &GpuSpec,
    tp: u32,
    overrides: &LatencyOverrides,
) -> Result<Blackbox, LatencyError> {
    let alpha = alpha_override(overrides)?;
    if let Some(beta) = &overrides.beta {
        let beta: [f64; 3] = beta.as_slice().try_into().map_err(|_| {
            LatencyError::Coefficients(format!(
                "--beta-coeffs needs 3 values for blackbox, got {}",
                beta.len()
            ))
        })?;
        validate_values("--beta-coeffs", &beta)?;
        return Blackbox::new(alpha.unwrap_or_default(), beta);
    }
    let file = coefficient_file(overrides)?;
    let entry = file.blackbox_for(&model.name, &gpu.name, tp).ok_or_else(|| {
        LatencyError::Coefficients(format!(
            "no blackbox coefficients for {} on {} at --tp {tp}; pass --beta-coeffs",
            model.name, gpu.name
        ))
    })?;
    Blackbox::new(alpha.unwrap_or(entry.alpha), entry.beta)
}

fn alpha_override(overrides: &LatencyOverrides) -> Result<Option<[f64; 3]>, LatencyError> {
    let Some(alpha) = &overrides.alpha else {
        return Ok(None);
    };
    let alpha: [f64; 3] = alpha.as_slice().try_into().map_err(|_| {
        LatencyError::Coefficients(format!("--alpha-coeffs needs 3 values, got {}", alpha.len()))
    })?;
    validate_values("--alpha-coeffs", &alpha)?;
    Ok(Some(alpha))
}

fn coefficient_file(overrides: &LatencyOverrides) -> Result<Cow<'static, CoefficientFile>, LatencyError> {
    match &overrides.coefficients_file {
        Some(path) => CoefficientFile::load(path).map(Cow::Owned),
        None => Ok(Cow::Borrowed(shipped())),
    }
}

/// The coefficient set trained-physics uses without overrides.
pub fn default_physics_coefficients() -> PhysicsCoefficients {
    shipped().default_set().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{h100, llama_8b};
    use crate::{PrefillChunk, StepShape};

    fn build_llama(name: &str, tp: u32, o: &LatencyOverrides) -> Result<Box<dyn LatencyModel>, LatencyError> {
        build(name, &llama_8b(), &h100(), tp, o)
    }

    fn err(name: &str, tp: u32, o: &LatencyOverrides) -> String {
        build_llama(name, tp, o).err().expect("should fail").to_string()
    }

    #[test]
    fn every_accepted_name_builds_for_llama() {
        for name in LATENCY_MODELS {
            let m = build_llama(name, 1, &LatencyOverrides::default()).unwrap();
            assert!(
                m.step_time_us(&StepShape {
                    decode_requests: 1,
                    decode_context_tokens: 512,
                    ..StepShape::default()
                }) > 1
            );
        }
    }

    #[test]
    fn unknown_name_lists_accepted() {
        assert_eq!(
            err("magic", 1, &LatencyOverrides::default()),
            "unknown --latency-model 'magic' (accepted: trained-physics, roofline, blackbox, blis-physics)"
        );
    }

    #[test]
    fn trained_physics_tp_error_names_flag() {
        assert!(err("trained-physics", 3, &LatencyOverrides::default()).starts_with("--tp 3"));
    }

    #[test]
    fn overrides_are_applied_and_checked() {
        let o = LatencyOverrides {
            alpha: Some(vec![1.0, 2.0, 3.0]),
            beta: Some(vec![0.0; 7]),
            ..Default::default()
        };
        let m = build_llama("trained-physics", 1, &o).unwrap();
        assert_eq!(
            (m.queueing_time_us(5), m.post_decode_overhead_us(), m.output_token_processing_time_us()),
            (1, 2, 3)
        );
        let chunk = PrefillChunk { new_tokens: 512, context_tokens: 0, input_tokens: 512 };
        assert_eq!(m.step_time_us(&StepShape { prefills: vec![chunk], ..StepShape::default() }), 1);

        let o = LatencyOverrides { beta: Some(vec![1.0; 5]), ..Default::default() };
        assert_eq!(
            err("trained-physics", 1, &o),
            "--beta-coeffs has 5 entries; trained-physics needs 7 to 11"
        );
        let o = LatencyOverrides { alpha: Some(vec![1.0]), ..Default::default() };
        assert_eq!(err("roofline", 1, &o), "--alpha-coeffs needs 3 values, got 1");
        let o = LatencyOverrides { beta: Some(vec![1.0; 3]), ..Default::default() };
        assert!(err("roofline", 1, &o).contains("roofline takes only --alpha-coeffs"));
    }

    #[test]
    fn blackbox_uses_table_or_override() {
        let m = build_llama("blackbox", 1, &LatencyOverrides::default()).unwrap();
        assert_eq!(m.queueing_time_us(0), 10326);
        assert!(err("blackbox", 4, &LatencyOverrides::default()).contains("pass --beta-coeffs"));
        let o = LatencyOverrides { beta: Some(vec![10.0, 1.0, 1.0]), ..Default::default() };
        let m = build_llama("blackbox", 4, &o).unwrap();
        assert_eq!(m.step_time_us(&StepShape { decode_requests: 5, ..StepShape::default() }), 15);
    }

    #[test]
    fn coefficients_file_replaces_shipped_set() {
        let dir = std::env::temp_dir().join(format!("blis-latency-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(&path, "alpha: [5, 6, 7]\nbeta: [0, 0, 0, 0, 0, 0, 42]\n").unwrap();
        let o = LatencyOverrides { coefficients_file: Some(path.clone()), ..Default::default() };
        let m = build_llama("trained-physics", 1, &o).unwrap();
        assert_eq!(m.step_time_us(&StepShape { decode_requests: 1, ..StepShape::default() }), 42);
        assert_eq!(m.queueing_time_us(0), 5);
        std::fs::write(&path, "alpha: [5, 6, 7]\nbeta: [0, 0, 0, 0, 0, 0, -1]\n").unwrap();
        let e = err("trained-physics", 1, &o);
        assert!(
            e.starts_with("coefficients file ") && e.ends_with("beta[6] = -1 must be finite and >= 0"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e = err("trained-physics", 1, &o);
        assert!(e.starts_with("cannot read coefficients file"), "{e}");
    }
}
