//! Error bars for blis-physics predictions: how far off a held-out prediction typically is, per
//! figure, widened when the prediction leaves the calibration envelope.
//!
//! `data/cv-errors.yaml` is written by `blis calibrate --cross-validate --cv-by model,tp
//! --cv-errors FILE`: the signed held-out errors of every experiment (leave-one-model-out and
//! leave-one-TP-out folds pooled, each fold fitted from the generic prior) and the envelope the
//! calibration covered (GPUs, TP degrees, architecture traits). [`relative_half_widths`] turns it
//! into the half-width of a 90 % interval for a (model, GPU, TP), multiplied by a factor for every
//! way the query lies outside that envelope:
//!
//! - unseen GPU × [`UNSEEN_GPU_FACTOR`] = 1.6: the spec-only checks against published A100
//!   decode figures (docs/hardware.md) are off by −7 to −18 % (≈ −15 % typical), a GPU-level bias
//!   that adds to the in-envelope error; with the shipped ITL/E2E half-width of ≈ 25 %,
//!   (25 + 15) / 25 ≈ 1.6.
//! - TP degree outside the calibrated range × [`UNSEEN_TP_FACTOR`] = 1.5 (interpolating between
//!   seen degrees is what leave-one-TP-out measures, so only extrapolation widens): more GPUs bring
//!   more all-reduce time, whose latency the H100 runs pin only at TP 2 and 4.
//! - each unseen architecture trait (MoE, MHA, GQA, MLA, FP8, …) × [`UNSEEN_TRAIT_FACTOR`] = 1.5:
//!   in leave-one-model-out, the models that alone carry a trait (Llama-4-Scout: MoE and FP8;
//!   Llama-2-7B: MHA) are predicted with 17 % E2E error against a median of 11.5 %, ≈ 1.5×
//!   (docs/accuracy.md).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use blis_model::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::error::LatencyError;

/// The shipped held-out error summary.
pub const SHIPPED_CV_ERRORS_YAML: &str = include_str!("../data/cv-errors.yaml");

/// Widening for a GPU the calibration did not include.
pub const UNSEEN_GPU_FACTOR: f64 = 1.6;
/// Widening for a TP degree outside the calibrated range.
pub const UNSEEN_TP_FACTOR: f64 = 1.5;
/// Widening per architecture trait the calibration did not include.
pub const UNSEEN_TRAIT_FACTOR: f64 = 1.5;

/// The figures error bars are given for, as named in the YAML.
pub const FIGURES: [&str; 5] = ["ttft_mean", "e2e_mean", "itl_mean", "ttft_p99", "e2e_p99"];

/// Held-out error of one figure, in percent of the measured value (+ = over-prediction).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureErrors {
    pub median_ape_pct: f64,
    pub signed_q05_pct: f64,
    pub signed_q50_pct: f64,
    pub signed_q95_pct: f64,
    /// 90th percentile of the absolute error: the half-width of a 90 % interval.
    pub half_width_90_pct: f64,
}

/// What the calibration covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub gpus: Vec<String>,
    pub tp: Vec<u32>,
    pub traits: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvErrors {
    /// Which cross-validations were pooled.
    pub source: String,
    /// Held-out predictions pooled.
    pub predictions: usize,
    pub figures: BTreeMap<String, FigureErrors>,
    pub envelope: Envelope,
}

impl CvErrors {
    /// Parses and checks a cv-errors YAML text: every figure of [`FIGURES`] present, finite,
    /// non-negative half-widths.
    pub fn from_yaml(text: &str) -> Result<Self, LatencyError> {
        let cv: Self = serde_saphyr::from_str(text).map_err(|e| {
            let msg = e.to_string();
            LatencyError::Coefficients(format!(
                "cv-errors: invalid YAML: {}",
                msg.lines().next().unwrap_or("")
            ))
        })?;
        for f in FIGURES {
            let Some(e) = cv.figures.get(f) else {
                return Err(LatencyError::Coefficients(format!("cv-errors: figure `{f}` is missing")));
            };
            if !(e.half_width_90_pct.is_finite() && e.half_width_90_pct >= 0.0) {
                return Err(LatencyError::Coefficients(format!(
                    "cv-errors: `{f}.half_width_90_pct` must be finite and >= 0, got {}",
                    e.half_width_90_pct
                )));
            }
        }
        Ok(cv)
    }
}

/// The shipped summary, parsed once.
pub fn shipped_cv_errors() -> &'static CvErrors {
    static CV: OnceLock<CvErrors> = OnceLock::new();
    CV.get_or_init(|| CvErrors::from_yaml(SHIPPED_CV_ERRORS_YAML).expect("shipped cv-errors parse"))
}

/// Architecture traits of a model that change which latency terms dominate: `dense`/`moe`,
/// the attention kind (`mha`, `gqa`, `mqa`, `mla`) and the weight format (`bf16`, `fp8`, `int4`).
pub fn architecture_traits(model: &ModelSpec) -> Vec<String> {
    let mut t = vec![if model.is_moe() { "moe" } else { "dense" }.to_string()];
    let attention = if model.mla_kv_dim > 0 {
        "mla"
    } else if model.num_kv_heads == model.num_attention_heads {
        "mha"
    } else if model.num_kv_heads == 1 {
        "mqa"
    } else {
        "gqa"
    };
    t.push(attention.into());
    let weights = if model.weight_bytes >= 2.0 {
        "bf16"
    } else if model.weight_bytes >= 1.0 {
        "fp8"
    } else {
        "int4"
    };
    t.push(weights.into());
    t
}

/// Relative half-widths (fractions, e.g. 0.05 = ±5 %) of 90 % intervals per figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HalfWidths {
    pub ttft_mean: f64,
    pub e2e_mean: f64,
    pub itl_mean: f64,
    pub ttft_p99: f64,
    pub e2e_p99: f64,
    /// The product of the widening factors applied (1 inside the envelope).
    pub widening: f64,
}

/// Half-widths of 90 % intervals for blis-physics predictions of `model` on `gpu` at `tp`: the
/// held-out errors of `cv`, widened by the module's factors for every way the query lies outside
/// `cv.envelope` (GPU name compared case-insensitively).
pub fn relative_half_widths(cv: &CvErrors, model: &ModelSpec, gpu: &str, tp: u32) -> HalfWidths {
    let env = &cv.envelope;
    let mut widening = 1.0;
    if !env.gpus.iter().any(|g| g.eq_ignore_ascii_case(gpu)) {
        widening *= UNSEEN_GPU_FACTOR;
    }
    let (lo, hi) = (env.tp.iter().min().copied().unwrap_or(1), env.tp.iter().max().copied().unwrap_or(1));
    if tp < lo || tp > hi {
        widening *= UNSEEN_TP_FACTOR;
    }
    for t in architecture_traits(model) {
        if !env.traits.contains(&t) {
            widening *= UNSEEN_TRAIT_FACTOR;
        }
    }
    let w = |f: &str| cv.figures.get(f).map_or(f64::NAN, |e| e.half_width_90_pct / 100.0 * widening);
    HalfWidths {
        ttft_mean: w("ttft_mean"),
        e2e_mean: w("e2e_mean"),
        itl_mean: w("itl_mean"),
        ttft_p99: w("ttft_p99"),
        e2e_p99: w("e2e_p99"),
        widening,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{llama_8b, mixtral};

    fn cv() -> CvErrors {
        let fig = FigureErrors {
            median_ape_pct: 3.0,
            signed_q05_pct: -6.0,
            signed_q50_pct: 0.5,
            signed_q95_pct: 7.0,
            half_width_90_pct: 8.0,
        };
        CvErrors {
            source: "test".into(),
            predictions: 30,
            figures: FIGURES.iter().map(|f| (f.to_string(), fig)).collect(),
            envelope: Envelope {
                gpus: vec!["H100".into()],
                tp: vec![1, 2, 4],
                traits: vec!["dense".into(), "gqa".into(), "bf16".into()],
            },
        }
    }

    #[test]
    fn inside_the_envelope_uses_the_held_out_errors() {
        let h = relative_half_widths(&cv(), &llama_8b(), "h100", 2);
        assert_eq!((h.widening, h.e2e_mean, h.ttft_p99), (1.0, 0.08, 0.08));
    }

    #[test]
    fn widens_outside_the_envelope() {
        let base = relative_half_widths(&cv(), &llama_8b(), "H100", 4).e2e_mean;
        let gpu = relative_half_widths(&cv(), &llama_8b(), "A100-80", 4).e2e_mean;
        let tp = relative_half_widths(&cv(), &llama_8b(), "H100", 8).e2e_mean;
        let moe = relative_half_widths(&cv(), &mixtral(), "H100", 4).e2e_mean;
        let all = relative_half_widths(&cv(), &mixtral(), "L40S", 8);
        assert!((gpu / base - UNSEEN_GPU_FACTOR).abs() < 1e-12);
        assert!((tp / base - UNSEEN_TP_FACTOR).abs() < 1e-12);
        assert!((moe / base - UNSEEN_TRAIT_FACTOR).abs() < 1e-12);
        assert!(all.e2e_mean > gpu && all.e2e_mean > tp && all.e2e_mean > moe);
    }

    #[test]
    fn traits_classify_attention_and_weights() {
        let mut m = llama_8b();
        assert_eq!(architecture_traits(&m), ["dense", "gqa", "bf16"]);
        m.num_kv_heads = m.num_attention_heads;
        m.weight_bytes = 1.0;
        assert_eq!(architecture_traits(&m), ["dense", "mha", "fp8"]);
        assert_eq!(architecture_traits(&mixtral())[0], "moe");
    }

    #[test]
    fn shipped_file_parses_and_bad_files_name_the_field() {
        let s = shipped_cv_errors();
        assert!(s.envelope.gpus.iter().any(|g| g == "H100") && s.predictions > 0);
        let text = SHIPPED_CV_ERRORS_YAML.replace("e2e_p99:", "e2e_p98:");
        assert!(CvErrors::from_yaml(&text).unwrap_err().to_string().contains("`e2e_p99` is missing"));
    }
}
