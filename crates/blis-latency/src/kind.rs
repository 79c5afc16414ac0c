//! `--latency-model`: the registry of step-time models. The variants are the accepted names
//! and their doc comments the help text.

use blis_model::{GpuSpec, ModelSpec};
use serde::{Deserialize, Serialize};

use crate::{LatencyError, LatencyModel, LatencyOverrides};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyModelKind {
    /// This project's physical model (bandwidth, FLOPs, collectives) with global coefficients
    /// fitted to real vLLM runs.
    BlisPhysics,
    /// The reference simulator's trained-physics formulas and coefficients.
    TrainedPhysics,
    /// The reference simulator's roofline (per-GPU MFU factors).
    Roofline,
    /// The reference's legacy linear model (per model, GPU and TP fits).
    Blackbox,
}

impl LatencyModelKind {
    pub fn name(self) -> &'static str {
        match self {
            LatencyModelKind::BlisPhysics => "blis-physics",
            LatencyModelKind::TrainedPhysics => "trained-physics",
            LatencyModelKind::Roofline => "roofline",
            LatencyModelKind::Blackbox => "blackbox",
        }
    }

    /// The model for `model` on `gpu` at tensor parallelism `tp`, with any overrides.
    pub fn build(
        self,
        model: &ModelSpec,
        gpu: &GpuSpec,
        tp: u32,
        overrides: &LatencyOverrides,
    ) -> Result<Box<dyn LatencyModel>, LatencyError> {
        crate::registry::build(self.name(), model, gpu, tp, overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_kind_has_its_registry_name() {
        for kind in LatencyModelKind::value_variants() {
            let clap_name = kind.to_possible_value().unwrap().get_name().to_string();
            assert_eq!(clap_name, kind.name());
            assert!(crate::LATENCY_MODELS.contains(&kind.name()));
        }
    }
}
