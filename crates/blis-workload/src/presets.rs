//! Built-in workloads: the CLI `distribution` workload, the `defaults.yaml` presets and the
//! inference-perf family of the bench scenarios. Every one is built as a [`WorkloadSpec`], so
//! it goes through the same generator as a file and can be exported with [`crate::to_yaml`].

use std::collections::BTreeMap;

use crate::error::{Result, WorkloadError};
use crate::limits::{MAX_REQUEST_TOKENS, MAX_TIME_US, MIN_RATE_PER_S, TOKEN_LIMIT_NOTE};
use crate::spec::{
    ArrivalSpec, ClientSpec, DistSpec, InferencePerfSpec, SharedPrefixSpec, StageSpec, WorkloadSpec,
};

/// Gaussian length parameters: clamp(N(mean, std_dev), min, max).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LenParams {
    pub mean: f64,
    pub std_dev: f64,
    pub min: u32,
    pub max: u32,
}

impl LenParams {
    pub const fn new(mean: f64, std_dev: f64, min: u32, max: u32) -> Self {
        LenParams { mean, std_dev, min, max }
    }

    fn to_dist(self) -> DistSpec {
        let params: BTreeMap<String, f64> = [
            ("mean", self.mean),
            ("std_dev", self.std_dev),
            ("min", f64::from(self.min)),
            ("max", f64::from(self.max)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        DistSpec { kind: "gaussian".into(), params }
    }
}

/// CLI defaults of `--prompt-tokens*` and `--output-tokens*`.
pub const DEFAULT_PROMPT: LenParams = LenParams::new(512.0, 256.0, 2, 7000);
pub const DEFAULT_OUTPUT: LenParams = LenParams::new(512.0, 256.0, 2, 7000);
/// Default `--timeout` of synthesized workloads (300 s).
pub const DEFAULT_TIMEOUT_US: u64 = 300_000_000;

/// Inputs of the synthesized workloads (the `blis run` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticParams {
    /// `--rate`, req/s.
    pub rate: f64,
    /// `--num-requests`.
    pub num_requests: u64,
    /// Explicit `--prompt-tokens*`: required meaning for `distribution` (None = CLI defaults);
    /// for a named preset, `Some` replaces the preset's own lengths.
    pub prompt: Option<LenParams>,
    pub output: Option<LenParams>,
    /// `--prefix-tokens`: length of one shared prefix (group `shared`) on every request.
    pub prefix_tokens: u32,
    /// `--arrival-process constant` (evenly spaced) instead of the default Poisson.
    pub constant_arrivals: bool,
    pub seed: u64,
    /// `--timeout` in µs (None = no timeout).
    pub timeout_us: Option<u64>,
    /// `--concurrency`: closed-loop virtual users instead of arrivals at `rate` (`rate` and
    /// `constant_arrivals` are then unused, and `num_requests` 0 means no cap: the horizon ends
    /// the run).
    pub users: Option<VirtualUsers>,
}

/// Closed-loop virtual users of a built-in workload (`--concurrency`, `--think-time-ms`,
/// `--think-time-dist`): each user sends a request, waits for its response and a think time,
/// and sends the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualUsers {
    /// Number of users (≥ 1).
    pub concurrency: u32,
    /// The think time between a response and the user's next request, as a constant.
    pub think_time_us: u64,
    /// Or as a distribution in `--think-time-dist` syntax (replaces `think_time_us`).
    pub think_time_dist: Option<String>,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        SyntheticParams {
            rate: 1.0,
            num_requests: 100,
            prompt: None,
            output: None,
            prefix_tokens: 0,
            constant_arrivals: false,
            seed: 42,
            timeout_us: Some(DEFAULT_TIMEOUT_US),
            users: None,
        }
    }
}

/// `defaults.yaml` presets: (name, prompt, output).
const SYNTHETIC: [(&str, LenParams, LenParams); 5] = [
    ("distribution", DEFAULT_PROMPT, DEFAULT_OUTPUT),
    ("chatbot", LenParams::new(256.0, 100.0, 2, 800), LenParams::new(256.0, 100.0, 1, 1024)),
    ("contentgen", LenParams::new(1024.0, 150.0, 10, 2048), LenParams::new(1024.0, 200.0, 10, 2048)),
    ("summarization", LenParams::new(4096.0, 500.0, 100, 8192), LenParams::new(512.0, 150.0, 10, 2048)),
    ("multidoc", LenParams::new(10240.0, 1200.0, 500, 20480), LenParams::new(1536.0, 300.0, 50, 4096)),
];

/// The inference-perf family (bench/README.md): name, groups, users, system, question,
/// output, stages (rate req/s, duration s).
type IpPreset = (&'static str, i64, i64, i64, i64, i64, &'static [(f64, f64)]);
const INFERENCE_PERF: [IpPreset; 6] = [
    ("general", 9, 5, 100, 447, 248, &[(8.0, 600.0), (20.0, 600.0)]),
    ("codegen", 11, 4, 100, 466, 247, &[(5.0, 600.0), (10.0, 600.0)]),
    ("roleplay", 10, 5, 150, 600, 251, &[(6.0, 1200.0)]),
    ("reasoning", 23, 1, 100, 934, 1448, &[(4.0, 1200.0)]),
    ("general-lite", 9, 5, 100, 447, 248, &[(2.5, 600.0), (6.0, 600.0)]),
    ("reasoning-lite", 23, 1, 100, 934, 1448, &[(1.0, 1200.0)]),
];

/// `--workload`: a built-in workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Gaussian prompt and output lengths from `--prompt-tokens*` / `--output-tokens*`.
    Distribution,
    /// Short chat turns (256 → 256 tokens).
    Chatbot,
    /// Long generations (1024 → 1024 tokens).
    Contentgen,
    /// Long prompts, short outputs (4096 → 512 tokens).
    Summarization,
    /// Very long prompts (10240 → 1536 tokens).
    Multidoc,
    /// inference-perf shared prefix: 9 × 5 users, 100 + 447 → 248 tokens, 8 then 20 req/s.
    General,
    /// inference-perf: 11 × 4 users, 100 + 466 → 247 tokens, 5 then 10 req/s.
    Codegen,
    /// inference-perf: 10 × 5 users, 150 + 600 → 251 tokens, 6 req/s.
    Roleplay,
    /// inference-perf: 23 users, 100 + 934 → 1448 tokens, 4 req/s.
    Reasoning,
    /// `general` at 2.5 then 6 req/s.
    GeneralLite,
    /// `reasoning` at 1 req/s.
    ReasoningLite,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Distribution => "distribution",
            Preset::Chatbot => "chatbot",
            Preset::Contentgen => "contentgen",
            Preset::Summarization => "summarization",
            Preset::Multidoc => "multidoc",
            Preset::General => "general",
            Preset::Codegen => "codegen",
            Preset::Roleplay => "roleplay",
            Preset::Reasoning => "reasoning",
            Preset::GeneralLite => "general-lite",
            Preset::ReasoningLite => "reasoning-lite",
        }
    }

    /// Whether the preset is of the inference-perf family: its stages fix rate, count and lengths.
    pub fn is_inference_perf(self) -> bool {
        is_inference_perf_preset(self.name())
    }
}

/// Every built-in workload name.
pub fn preset_names() -> Vec<&'static str> {
    SYNTHETIC.iter().map(|p| p.0).chain(INFERENCE_PERF.iter().map(|p| p.0)).collect()
}

/// Whether `name` is an inference-perf family preset (whose stages fix rate and count, so
/// `rate`, `num_requests`, lengths and timeout of [`SyntheticParams`] do not apply).
pub fn is_inference_perf_preset(name: &str) -> bool {
    INFERENCE_PERF.iter().any(|p| p.0 == name)
}

/// The spec of built-in workload `name` (see [`preset_names`]).
pub fn preset_spec(name: &str, p: &SyntheticParams) -> Result<WorkloadSpec> {
    if let Some(&(_, groups, users, system, question, output, stages)) =
        INFERENCE_PERF.iter().find(|x| x.0 == name)
    {
        if p.users.is_some() {
            return Err(WorkloadError::at(
                "--concurrency",
                format!(
                    "not available with --workload {name} (its stages set the arrival rates); write a \
                     workload spec with clients[].concurrency instead"
                ),
            ));
        }
        let stages: Vec<StageSpec> =
            stages.iter().map(|&(rate, duration)| StageSpec { rate, duration }).collect();
        let total: f64 = stages.iter().map(|s| (s.rate * s.duration).round()).sum();
        return Ok(WorkloadSpec {
            version: Some("2".into()),
            seed: Some(p.seed as i64),
            category: Some("language".into()),
            num_requests: Some(total as i64),
            inference_perf: Some(InferencePerfSpec {
                shared_prefix: Some(SharedPrefixSpec {
                    num_unique_system_prompts: groups,
                    num_users_per_system_prompt: users,
                    system_prompt_len: system,
                    question_len: question,
                    output_len: output,
                    enable_multi_turn_chat: true,
                    question_reuse: None,
                    user_order: None,
                }),
                stages,
            }),
            ..WorkloadSpec::default()
        });
    }
    let Some(&(_, prompt, output)) = SYNTHETIC.iter().find(|x| x.0 == name) else {
        return Err(WorkloadError::at(
            "workload",
            format!("unknown preset {name:?}; accepted: {}", preset_names().join(", ")),
        ));
    };
    check_synthetic(p)?;
    let mut client = ClientSpec {
        id: Some("distribution".into()),
        rate_fraction: Some(1.0),
        arrival: Some(ArrivalSpec {
            process: if p.constant_arrivals { "constant" } else { "poisson" }.into(),
            ..ArrivalSpec::default()
        }),
        input_distribution: Some(p.prompt.unwrap_or(prompt).to_dist()),
        output_distribution: Some(p.output.unwrap_or(output).to_dist()),
        prefix_group: (p.prefix_tokens > 0).then(|| "shared".to_string()),
        prefix_length: (p.prefix_tokens > 0).then_some(i64::from(p.prefix_tokens)),
        timeout: p.timeout_us.map(|t| t as i64),
        ..ClientSpec::default()
    };
    let mut aggregate_rate = Some(p.rate);
    let mut num_requests = Some(p.num_requests as i64);
    if let Some(u) = &p.users {
        client.rate_fraction = None;
        client.arrival = None;
        client.concurrency = Some(i64::from(u.concurrency));
        match &u.think_time_dist {
            Some(d) => client.think_time_dist = Some(d.clone()),
            None => client.think_time_us = Some(u.think_time_us as i64),
        }
        aggregate_rate = None;
        num_requests = (p.num_requests > 0).then_some(p.num_requests as i64);
    }
    let spec = WorkloadSpec {
        version: Some("2".into()),
        seed: Some(p.seed as i64),
        category: Some("language".into()),
        aggregate_rate,
        num_requests,
        clients: vec![client],
        ..WorkloadSpec::default()
    };
    crate::validate::validate(&spec).map_err(|e| e.in_file(format!("preset {name}")))?;
    Ok(spec)
}

/// Checks the flag values of a synthesized workload; errors name the `blis run` flag.
fn check_synthetic(p: &SyntheticParams) -> Result<()> {
    if let Some(u) = &p.users {
        if !(1..=crate::validate::MAX_CONCURRENCY).contains(&i64::from(u.concurrency)) {
            return Err(WorkloadError::at(
                "--concurrency",
                format!(
                    "must be in 1..={} virtual users, got {}",
                    crate::validate::MAX_CONCURRENCY,
                    u.concurrency
                ),
            ));
        }
        if u.think_time_us > MAX_TIME_US {
            return Err(WorkloadError::at(
                "--think-time-ms",
                format!("must be at most 100 years, got {} ms", u.think_time_us / 1000),
            ));
        }
        if let Some(d) = &u.think_time_dist {
            crate::think::ThinkTime::parse(d).map_err(|e| WorkloadError::at("--think-time-dist", e))?;
        }
    } else {
        if !(p.rate.is_finite() && p.rate > 0.0) {
            return Err(WorkloadError::at("--rate", format!("must be > 0 req/s, got {}", p.rate)));
        }
        if p.rate < MIN_RATE_PER_S {
            return Err(WorkloadError::at("--rate", crate::validate::slow_rate_message(p.rate)));
        }
    }
    if p.prefix_tokens >= MAX_REQUEST_TOKENS {
        return Err(WorkloadError::at(
            "--prefix-tokens",
            format!(
                "must be ≤ {} tokens (the prompt also holds ≥ 1 token of its own; {TOKEN_LIMIT_NOTE}), got {}",
                MAX_REQUEST_TOKENS - 1,
                p.prefix_tokens
            ),
        ));
    }
    for (flag, len) in [("prompt-tokens", p.prompt), ("output-tokens", p.output)] {
        let Some(len) = len else { continue };
        for (suffix, v) in [("", len.mean), ("-max", f64::from(len.max))] {
            if v > f64::from(MAX_REQUEST_TOKENS) {
                return Err(WorkloadError::at(
                    format!("--{flag}{suffix}"),
                    format!(
                        "must be ≤ {MAX_REQUEST_TOKENS} tokens ({TOKEN_LIMIT_NOTE}), got {}",
                        crate::limits::num(v)
                    ),
                ));
            }
        }
    }
    if let Some(t) = p.timeout_us
        && t > MAX_TIME_US
    {
        return Err(WorkloadError::at(
            "--timeout",
            format!(
                "{} s is beyond the longest simulated time, {} s (100 years)",
                t as f64 / 1e6,
                MAX_TIME_US / 1_000_000
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_enum_matches_the_tables() {
        use clap::ValueEnum;
        let names: Vec<&str> = Preset::value_variants().iter().map(|p| p.name()).collect();
        assert_eq!(names, preset_names());
        for p in Preset::value_variants() {
            assert_eq!(p.to_possible_value().unwrap().get_name(), p.name());
        }
    }

    #[test]
    fn unknown_preset_lists_names() {
        let e = preset_spec("chatbott", &SyntheticParams::default()).unwrap_err().to_string();
        assert!(
            e.starts_with("workload: unknown preset \"chatbott\"; accepted: distribution, chatbot"),
            "{e}"
        );
        assert!(e.contains("reasoning-lite"));
    }

    #[test]
    fn synthesized_client_shape() {
        let p = SyntheticParams { prefix_tokens: 64, constant_arrivals: true, ..Default::default() };
        let s = preset_spec("summarization", &p).unwrap();
        let c = &s.clients[0];
        assert_eq!(c.id.as_deref(), Some("distribution"));
        assert_eq!(c.arrival.as_ref().unwrap().process, "constant");
        assert_eq!(c.input_distribution.as_ref().unwrap().params["mean"], 4096.0);
        assert_eq!(c.prefix_group.as_deref(), Some("shared"));
        assert_eq!(c.timeout, Some(300_000_000));
        let d = preset_spec("distribution", &SyntheticParams::default()).unwrap();
        assert_eq!(d.clients[0].arrival.as_ref().unwrap().process, "poisson");
        assert_eq!(d.clients[0].prefix_group, None);
        let e = preset_spec("chatbot", &SyntheticParams { rate: 0.0, ..Default::default() }).unwrap_err();
        assert_eq!(e.to_string(), "--rate: must be > 0 req/s, got 0");
    }

    #[test]
    fn virtual_users_replace_the_arrivals() {
        let users = VirtualUsers { concurrency: 4, think_time_us: 50_000, think_time_dist: None };
        let p = SyntheticParams { users: Some(users.clone()), num_requests: 0, ..Default::default() };
        let s = preset_spec("chatbot", &p).unwrap();
        let c = &s.clients[0];
        assert_eq!((c.concurrency, c.think_time_us, c.rate_fraction), (Some(4), Some(50_000), None));
        assert!(c.arrival.is_none() && s.aggregate_rate.is_none() && s.num_requests.is_none());
        assert_eq!(c.input_distribution.as_ref().unwrap().params["mean"], 256.0, "the preset's lengths");
        let text = crate::to_yaml(&s).unwrap();
        assert_eq!(crate::parse_spec(&text, "chatbot").unwrap(), s);
        let dist = VirtualUsers { think_time_dist: Some("constant:value=1s".into()), ..users.clone() };
        let p = SyntheticParams { users: Some(dist), num_requests: 10, ..Default::default() };
        let s = preset_spec("distribution", &p).unwrap();
        assert_eq!(s.clients[0].think_time_us, None);
        assert_eq!(s.num_requests, Some(10));
        let err = |u: VirtualUsers, name: &str| {
            preset_spec(name, &SyntheticParams { users: Some(u), ..Default::default() })
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(users.clone(), "general").starts_with("--concurrency: not available with --workload general")
        );
        let bad = VirtualUsers { think_time_dist: Some("lognormal:mu=1".into()), ..users.clone() };
        assert_eq!(err(bad, "chatbot"), "--think-time-dist: lognormal: needs sigma=NUMBER");
        assert!(
            err(VirtualUsers { concurrency: 0, ..users }, "chatbot")
                .starts_with("--concurrency: must be in 1..=")
        );
    }

    #[test]
    fn constant_arrivals_start_at_one_period() {
        let p = SyntheticParams { rate: 4.0, constant_arrivals: true, num_requests: 3, ..Default::default() };
        let s = preset_spec("distribution", &p).unwrap();
        let mut src = crate::build_source(&s, &crate::Overrides::default()).unwrap();
        let t: Vec<u64> = std::iter::from_fn(|| src.next_request()).map(|r| r.arrival_us).collect();
        assert_eq!(t, vec![250_000, 500_000, 750_000]);
    }

    #[test]
    fn presets_export_and_reload() {
        for name in preset_names() {
            let s = preset_spec(name, &SyntheticParams::default()).unwrap();
            let text = crate::to_yaml(&s).unwrap();
            assert_eq!(crate::parse_spec(&text, name).unwrap(), s, "{name}:\n{text}");
        }
    }

    /// Flag values the `blis run` hardening issue found crashing, hanging or misread.
    #[test]
    fn extreme_flags_are_refused_naming_the_flag() {
        let err = |p: SyntheticParams| preset_spec("distribution", &p).unwrap_err().to_string();
        assert_eq!(
            err(SyntheticParams { prefix_tokens: u32::MAX, ..Default::default() }),
            "--prefix-tokens: must be ≤ 16777215 tokens (the prompt also holds ≥ 1 token of its own; a request's \
             prompt and its output each hold at most 16777216 tokens, more than any model's context), got 4294967295"
        );
        assert!(
            err(SyntheticParams { prefix_tokens: 1_000_000_000, ..Default::default() })
                .starts_with("--prefix-tokens: must be ≤ 16777215")
        );
        assert_eq!(
            err(SyntheticParams { timeout_us: Some(10_000_000_000_000_000_000), ..Default::default() }),
            "--timeout: 10000000000000 s is beyond the longest simulated time, 3155760000 s (100 years)"
        );
        assert_eq!(
            err(SyntheticParams { rate: 1e-300, ..Default::default() }),
            "--rate: a rate of 1e-300 req/s, below the slowest accepted 3.1688e-10 req/s (one request per \
             100 years, the longest simulated time)"
        );
        let huge = LenParams::new(1e300, 1.0, 1, 100);
        assert!(
            err(SyntheticParams { prompt: Some(huge), ..Default::default() })
                .starts_with("--prompt-tokens: must be ≤ 16777216 tokens")
        );
        let wide = LenParams::new(100.0, 1.0, 1, u32::MAX);
        assert!(
            err(SyntheticParams { output: Some(wide), ..Default::default() })
                .starts_with("--output-tokens-max: must be ≤ 16777216")
        );
        // At the limits everything is accepted and generates.
        let p = SyntheticParams {
            prefix_tokens: MAX_REQUEST_TOKENS - 1,
            rate: MIN_RATE_PER_S,
            num_requests: 2,
            ..Default::default()
        };
        let spec = preset_spec("distribution", &p).unwrap();
        let mut src = crate::build_source(&spec, &crate::Overrides::default()).unwrap();
        while let Some(r) = src.next_request() {
            assert_eq!(r.input.len(), MAX_REQUEST_TOKENS);
            assert!(r.arrival_us < MAX_TIME_US);
        }
    }
}
