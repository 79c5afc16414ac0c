//! Structured fuzz tests of every workload parser and of the whole generation path.
//!
//! Inputs are the files of `fuzz-corpus/` mutated by `blis_fuzz` (byte and line edits,
//! numbers swapped for extreme values), random text, and specs built field by field from
//! valid-but-extreme values. Properties: nothing panics, every error is one line, and every
//! accepted input yields requests that satisfy the documented limits, in bounded time.
//! `BLIS_FUZZ_CASES=N` sets the cases per target (`tools/fuzz.sh`).

use std::collections::{HashSet, VecDeque};

use blis_fuzz::{assert_one_line, config, mutated};
use proptest::prelude::*;

use crate::generator::{Overrides, build_source};
use crate::limits::{MAX_REQUEST_TOKENS, MAX_TIME_US};
use crate::request::{Outcome, RequestSpec};
use crate::spec::{
    ArrivalSpec, ClientSpec, DistSpec, InferencePerfSpec, LifecycleSpec, MultiTurnSpec, ReasoningSpec,
    SharedPrefixSpec, StageSpec, WindowSpec, WorkloadSpec, parse_spec,
};
use crate::trace::{TraceSource, parse_trace_csv, parse_trace_header};

static SPECS: &[&str] = &[
    include_str!("../fuzz-corpus/spec-clients.yaml"),
    include_str!("../fuzz-corpus/spec-sessions.yaml"),
    include_str!("../fuzz-corpus/spec-inference-perf.yaml"),
];
static TRACES: &[&str] =
    &[include_str!("../fuzz-corpus/trace-plain.csv"), include_str!("../fuzz-corpus/trace-segments.csv")];
static HEADERS: &[&str] = &[include_str!("../fuzz-corpus/trace-header.yaml")];

/// Requests pulled from one accepted spec (all rounds count).
const PULL: u64 = 300;

/// Checks one generated request against the documented limits.
fn check_request(r: &RequestSpec) {
    assert!((1..=MAX_REQUEST_TOKENS).contains(&r.input.len()), "prompt of {} tokens", r.input.len());
    assert!((1..=MAX_REQUEST_TOKENS).contains(&r.output_tokens), "output of {} tokens", r.output_tokens);
    assert_eq!(r.max_output_tokens, r.output_tokens);
    assert!(r.arrival_us <= MAX_TIME_US, "arrival at {} µs", r.arrival_us);
    if let Some(d) = r.deadline_us {
        assert!(d >= r.arrival_us && d <= 2 * MAX_TIME_US, "deadline {d} for arrival {}", r.arrival_us);
    }
}

/// Requests (follow-ups included) after which [`exercise`] stops: sessions of billions of
/// closed-loop rounds are not capped by `num_requests`.
const MAX_EXERCISED: u64 = 20 * PULL;

/// Builds the source of an accepted spec and pulls up to [`PULL`] scheduled requests,
/// completing each (so closed-loop sessions and virtual users follow up) after a latency that
/// grows with its output.
fn exercise(spec: &WorkloadSpec) {
    let overrides = Overrides { num_requests: Some(PULL), ..Overrides::default() };
    let mut src = match build_source(spec, &overrides) {
        Ok(s) => s,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    let mut in_flight: VecDeque<RequestSpec> = VecDeque::new();
    let mut ids = HashSet::new();
    let mut last_fresh = 0;
    let (mut n, mut scheduled) = (0u64, 0u64);
    let users = spec.clients.iter().any(|c| c.concurrency.is_some_and(|u| u > 0));
    loop {
        let r = match src.next_request() {
            Some(r) => {
                assert!(r.arrival_us >= last_fresh, "arrivals out of order");
                last_fresh = r.arrival_us;
                scheduled += 1;
                assert!(scheduled <= PULL, "more scheduled requests than num_requests");
                r
            }
            None => {
                let Some(done) = in_flight.pop_front() else { break };
                let at = done.arrival_us + 1_000 * u64::from(done.output_tokens);
                match src.on_request_done(&done, at, Outcome::Completed) {
                    Some(f) => {
                        assert!(f.arrival_us >= at, "follow-up before its trigger");
                        f
                    }
                    None => continue,
                }
            }
        };
        check_request(&r);
        assert!(ids.insert(r.id), "duplicate id {}", r.id);
        n += 1;
        // Virtual users share num_requests with their follow-ups; session follow-ups do not.
        assert!(!users || n <= PULL, "virtual users sent more than num_requests");
        if n >= MAX_EXERCISED {
            break;
        }
        in_flight.push_back(r);
    }
}

fn parse_and_exercise(text: &str) {
    match parse_spec(text, "fuzz.yaml") {
        Ok(spec) => exercise(&spec),
        Err(e) => assert_one_line(&e.to_string()),
    }
}

fn replay(csv: &str) {
    let records = match parse_trace_csv(csv.as_bytes(), "fuzz.csv") {
        Ok(r) => r,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    let rows = records.len();
    let mut src = match TraceSource::new(records, 42, "fuzz.csv") {
        Ok(s) => s,
        Err(e) => return assert_one_line(&e.to_string()),
    };
    let mut last = 0;
    let mut n = 0;
    while let Some(r) = crate::RequestSource::next_request(&mut src) {
        check_request(&r);
        assert!(r.arrival_us >= last);
        last = r.arrival_us;
        n += 1;
    }
    assert_eq!(n, rows);
}

/// A number from the extremes of a range (both ends, just inside, just outside) or anywhere.
fn edgy_f64(lo: f64, hi: f64) -> BoxedStrategy<f64> {
    prop_oneof![
        Just(lo),
        Just(hi),
        Just(hi * 1.000_001),
        Just(lo * 0.999_999),
        Just(0.0),
        Just(-1.0),
        Just(1e300),
        Just(f64::MIN_POSITIVE),
        lo..=hi,
    ]
    .boxed()
}

fn edgy_i64(lo: i64, hi: i64) -> BoxedStrategy<i64> {
    prop_oneof![
        Just(lo),
        Just(hi),
        Just(hi.saturating_add(1)),
        Just(lo.saturating_sub(1)),
        Just(0),
        Just(i64::MAX),
        Just(i64::from(u32::MAX)),
        lo..=hi,
    ]
    .boxed()
}

fn dist() -> BoxedStrategy<DistSpec> {
    let max = f64::from(MAX_REQUEST_TOKENS);
    let p = |kvs: Vec<(&str, f64)>| kvs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    prop_oneof![
        (edgy_f64(1.0, max), edgy_f64(0.0, max), edgy_f64(1.0, max), edgy_f64(1.0, max)).prop_map(
            move |(mean, sd, a, b)| DistSpec {
                kind: "gaussian".into(),
                params: p(vec![("mean", mean), ("std_dev", sd), ("min", a.min(b)), ("max", a.max(b))]),
            }
        ),
        (edgy_f64(1.0, max), proptest::option::of(edgy_f64(1.0, max))).prop_map(move |(mean, m)| DistSpec {
            kind: "exponential".into(),
            params: p(std::iter::once(("mean", mean)).chain(m.map(|m| ("max", m))).collect()),
        }),
        (edgy_f64(-50.0, 16.6), edgy_f64(0.0, 50.0)).prop_map(move |(mu, sigma)| DistSpec {
            kind: "lognormal".into(),
            params: p(vec![("mu", mu), ("sigma", sigma)]),
        }),
        (edgy_f64(1e-3, 10.0), edgy_f64(1.0, max), edgy_f64(0.0, 1.0)).prop_map(move |(alpha, xm, w)| {
            DistSpec {
                kind: "pareto_lognormal".into(),
                params: p(vec![("alpha", alpha), ("xm", xm), ("mu", 3.0), ("sigma", 1.0), ("mix_weight", w)]),
            }
        }),
        edgy_f64(1.0, max)
            .prop_map(move |v| DistSpec { kind: "constant".into(), params: p(vec![("value", v)]) }),
        proptest::collection::btree_map(
            prop_oneof![
                Just("1".to_string()),
                Just(MAX_REQUEST_TOKENS.to_string()),
                (1u32..100_000).prop_map(|v| v.to_string())
            ],
            edgy_f64(0.0, 1e300),
            1..4
        )
        .prop_map(|params| DistSpec { kind: "empirical".into(), params }),
    ]
    .boxed()
}

fn client() -> BoxedStrategy<ClientSpec> {
    let max_time = MAX_TIME_US as i64;
    (
        (edgy_f64(1e-12, 1e12), dist(), dist()).boxed(),
        (
            proptest::option::of(edgy_i64(0, i64::from(MAX_REQUEST_TOKENS))),
            proptest::option::of(edgy_i64(0, max_time)),
        )
            .boxed(),
        proptest::option::of((
            prop_oneof![Just("poisson"), Just("gamma"), Just("weibull"), Just("constant")],
            proptest::option::of(edgy_f64(1e-3, 1e3)),
        ))
        .boxed(),
        proptest::option::of((
            edgy_i64(1, i64::from(u32::MAX)),
            edgy_i64(0, max_time),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ))
        .boxed(),
        proptest::option::of(proptest::collection::vec((edgy_i64(0, max_time), edgy_i64(1, max_time)), 1..3))
            .boxed(),
    )
        .prop_map(|((fraction, input, output), (prefix, timeout), arrival, multi_turn, windows)| ClientSpec {
            rate_fraction: Some(fraction),
            input_distribution: Some(input),
            output_distribution: Some(output),
            prefix_group: prefix.map(|_| "g".to_string()),
            prefix_length: prefix,
            timeout,
            arrival: arrival.map(|(process, cv)| ArrivalSpec {
                process: process.into(),
                cv,
                ..ArrivalSpec::default()
            }),
            closed_loop: multi_turn.map(|m| m.2),
            reasoning: multi_turn.map(|(rounds, think, _, accumulate, single)| ReasoningSpec {
                multi_turn: Some(MultiTurnSpec {
                    max_rounds: rounds,
                    think_time_us: Some(think),
                    context_growth: accumulate.then(|| "accumulate".to_string()),
                    single_session: Some(single),
                }),
                ..ReasoningSpec::default()
            }),
            lifecycle: windows.map(|w| LifecycleSpec {
                windows: w
                    .into_iter()
                    .map(|(start, len)| WindowSpec {
                        start_us: start,
                        end_us: start.saturating_add(len),
                        ..WindowSpec::default()
                    })
                    .collect(),
            }),
            ..ClientSpec::default()
        })
        .boxed()
}

fn extreme_spec() -> BoxedStrategy<WorkloadSpec> {
    let max = i64::from(MAX_REQUEST_TOKENS);
    let clients = (
        edgy_f64(1e-12, 1e9),
        proptest::collection::vec(client(), 1..4),
        proptest::option::of(edgy_i64(1, MAX_TIME_US as i64)),
    )
        .prop_map(|(rate, clients, horizon)| WorkloadSpec {
            aggregate_rate: Some(rate),
            num_requests: Some(1000),
            horizon,
            clients,
            ..WorkloadSpec::default()
        });
    let stage =
        (edgy_f64(1e-12, 1e9), edgy_f64(1e-9, 1e9)).prop_map(|(rate, duration)| StageSpec { rate, duration });
    let ip = (
        (edgy_i64(1, i64::from(u32::MAX)), edgy_i64(1, i64::from(u32::MAX))),
        (edgy_i64(0, max), edgy_i64(1, max), edgy_i64(1, max)),
        (any::<bool>(), any::<bool>()),
        proptest::collection::vec(stage, 1..4),
    )
        .prop_map(|((g, u), (system, question, output), (per_request, round_robin), stages)| {
            WorkloadSpec {
                inference_perf: Some(InferencePerfSpec {
                    shared_prefix: Some(SharedPrefixSpec {
                        num_unique_system_prompts: g,
                        num_users_per_system_prompt: u,
                        system_prompt_len: system,
                        question_len: question,
                        output_len: output,
                        enable_multi_turn_chat: false,
                        question_reuse: per_request.then(|| "per_request".to_string()),
                        user_order: round_robin.then(|| "round_robin".to_string()),
                    }),
                    stages,
                }),
                ..WorkloadSpec::default()
            }
        });
    prop_oneof![3 => clients.boxed(), 1 => ip.boxed()].boxed()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn fuzz_spec_yaml_mutations(text in mutated(SPECS)) {
        parse_and_exercise(&text);
    }

    #[test]
    fn fuzz_spec_yaml_random_text(text in "[a-z_:{}\\[\\]\\-, \\n0-9.\"#]{0,300}") {
        parse_and_exercise(&text);
    }

    #[test]
    fn fuzz_extreme_specs_generate_bounded_requests(spec in extreme_spec()) {
        match crate::validate::validate(&spec) {
            Ok(()) => exercise(&spec),
            Err(e) => assert_one_line(&e.to_string()),
        }
        // Whatever YAML prints must read back the same way.
        if let Ok(text) = crate::to_yaml(&spec) {
            parse_and_exercise(&text);
        }
    }

    #[test]
    fn fuzz_trace_csv_mutations(text in mutated(TRACES)) {
        replay(&text);
    }

    #[test]
    fn fuzz_trace_csv_random_text(text in "[a-z_0-9,;:\\n\"-]{0,300}") {
        replay(&text);
    }

    #[test]
    fn fuzz_trace_header_mutations(text in mutated(HEADERS)) {
        if let Err(e) = parse_trace_header(&text, "fuzz.yaml") {
            assert_one_line(&e.to_string());
        }
    }
}

#[test]
fn corpus_files_are_valid() {
    for text in SPECS {
        exercise(&parse_spec(text, "corpus.yaml").unwrap());
    }
    for text in TRACES {
        assert!(!parse_trace_csv(text.as_bytes(), "corpus.csv").unwrap().is_empty());
        replay(text);
    }
    parse_trace_header(HEADERS[0], "corpus.yaml").unwrap();
}
