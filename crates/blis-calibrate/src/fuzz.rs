//! Structured fuzz test of the measurements file: no input panics, every error is one line,
//! and every accepted experiment satisfies `blis run`'s limits, so that its workload spec is
//! accepted too and generates. `BLIS_FUZZ_CASES=N` sets the cases (`tools/fuzz.sh`).

use blis_fuzz::{assert_one_line, config, mutated};
use proptest::prelude::*;

use crate::experiment::{WorkloadSemantics, workload_spec};
use crate::measurements::Measurements;

static FILES: &[&str] = &[include_str!("../fuzz-corpus/one-experiment.json")];

fn check(text: &str) {
    let m = match Measurements::from_json(text) {
        Ok(m) => m,
        Err(e) => return assert_one_line(&e),
    };
    for e in &m.experiments {
        assert!(e.tp >= 1 && e.block_size >= 1 && e.max_num_seqs >= 1);
        assert!(e.max_num_batched_tokens >= e.block_size);
        assert!((1..=u64::from(u32::MAX)).contains(&e.total_kv_blocks_gpu));
        assert!(e.measured_summary().fields().iter().all(|(_, v)| v.is_finite() && *v > 0.0));
        let ws = WorkloadSemantics { question_reuse: None, user_order: None };
        let Some(w) = &e.workload else { continue };
        let spec = workload_spec(w, &ws);
        blis_workload::validate::validate(&spec)
            .unwrap_or_else(|err| panic!("accepted experiment {} gives a refused workload: {err}", e.id));
        let ov = blis_workload::Overrides { num_requests: Some(50), ..Default::default() };
        let mut src = blis_workload::build_source(&spec, &ov).unwrap();
        assert!(src.next_request().is_some());
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn fuzz_measurements_json_mutations(text in mutated(FILES)) {
        check(&text);
    }

    #[test]
    fn fuzz_measurements_random_text(text in "[a-z_:{}\\[\\]\\-, \\n0-9.\"]{0,200}") {
        check(&text);
    }
}

#[test]
fn corpus_and_shipped_files_are_valid() {
    check(FILES[0]);
    check(include_str!("../data/vllm-h100-measurements.json"));
}

/// The inputs of trace-mode `blis calibrate`: sim results and ITL CSV.
mod trace_inputs {
    use blis_fuzz::{assert_one_line, config, mutated};
    use proptest::prelude::*;

    use crate::trace::{parse_itl_csv, parse_sim_results};

    static RESULTS: &[&str] = &[
        include_str!("../fuzz-corpus/sim-results-blis.json"),
        include_str!("../fuzz-corpus/sim-results-reference.json"),
    ];
    static ITL: &[&str] = &[include_str!("../fuzz-corpus/itl.csv")];

    fn check_results(text: &str) {
        match parse_sim_results(text) {
            Ok(rs) => {
                let mut ids: Vec<u64> = rs.iter().map(|r| r.request_id).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), rs.len(), "ids are unique");
                for r in &rs {
                    assert!(r.ttft_us.is_finite() && r.ttft_us >= 0.0 && r.e2e_us >= r.ttft_us, "{r:?}");
                }
            }
            Err(e) => assert_one_line(&e),
        }
    }

    fn check_itl(text: &str) {
        if let Err(e) = parse_itl_csv(text.as_bytes()) {
            assert_one_line(&e);
        }
    }

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn fuzz_sim_results_mutations(text in mutated(RESULTS)) {
            check_results(&text);
        }

        #[test]
        fn fuzz_itl_csv_mutations(text in mutated(ITL)) {
            check_itl(&text);
        }
    }

    #[test]
    fn corpus_is_valid() {
        assert_eq!(parse_sim_results(RESULTS[0]).unwrap().len(), 1);
        assert_eq!(parse_sim_results(RESULTS[1]).unwrap().len(), 2);
        assert_eq!(parse_itl_csv(ITL[0].as_bytes()).unwrap().len(), 5);
    }
}
