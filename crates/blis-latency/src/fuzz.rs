//! Structured fuzz tests of coefficient files: no input panics, every error is one line, and
//! every accepted file holds only finite, non-negative coefficients of valid lengths, whose
//! sets build step-time models that answer. `BLIS_FUZZ_CASES=N` sets the cases per target.

use blis_fuzz::{assert_one_line, config, mutated};
use proptest::prelude::*;

use crate::coefficients::{
    CoefficientFile, MAX_PHYSICS_BETAS, MIN_PHYSICS_BETAS, PhysicsCoefficients, SHIPPED_COEFFICIENTS_YAML,
};
use crate::test_support::{decodes, h100, llama_8b, mixtral, prefill};
use crate::{LatencyModel, TrainedPhysics};

static FILES: &[&str] = &[SHIPPED_COEFFICIENTS_YAML, include_str!("../fuzz-corpus/single-set.yaml")];

fn check_set(set: &PhysicsCoefficients) {
    assert!(set.alpha.iter().all(|v| v.is_finite() && *v >= 0.0), "{set:?}");
    assert!((MIN_PHYSICS_BETAS..=MAX_PHYSICS_BETAS).contains(&set.beta.len()), "{set:?}");
    assert!(set.beta.iter().all(|v| v.is_finite() && *v >= 0.0), "{set:?}");
    for model in [llama_8b(), mixtral()] {
        match TrainedPhysics::new(&model, &h100(), 2, set) {
            Ok(tp) => {
                for shape in [prefill(1), prefill(8192), decodes(256, 1 << 20)] {
                    assert!(tp.step_time_us(&shape) >= 1);
                }
                let _ = tp.queueing_time_us(u32::MAX);
            }
            Err(e) => assert_one_line(&e.to_string()),
        }
    }
}

fn check_file(text: &str) {
    match CoefficientFile::from_yaml(text) {
        Ok(file) => {
            for set in file.trained_physics.values() {
                check_set(set);
            }
            let _ = file.default_set();
            for e in &file.blackbox {
                assert!(e.alpha.iter().chain(&e.beta).all(|v| v.is_finite() && *v >= 0.0), "{e:?}");
                let _ = file.blackbox_for(&e.model, &e.gpu, e.tp);
            }
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
    match PhysicsCoefficients::from_yaml(text) {
        Ok(set) => check_set(&set),
        Err(e) => assert_one_line(&e.to_string()),
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn fuzz_coefficients_yaml_mutations(text in mutated(FILES)) {
        check_file(&text);
    }

    #[test]
    fn fuzz_coefficients_random_text(text in "[a-z_:{}\\[\\]\\-, \\n0-9.e#]{0,200}") {
        check_file(&text);
    }
}

#[test]
fn corpus_files_are_valid() {
    for text in FILES {
        CoefficientFile::from_yaml(text).unwrap();
    }
}
