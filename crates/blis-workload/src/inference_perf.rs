//! The `inference_perf:` section: kubernetes-sigs/inference-perf's `shared_prefix` data
//! generator under a staged Poisson load.
//!
//! Semantics (as in the calibration runs: "Arrivals are Poisson at each stage's rate; every
//! request is a shared system prompt (one per group) followed by a per-user question; prompt
//! and output lengths are constant"):
//!
//! * G = `num_unique_system_prompts` groups × U = `num_users_per_system_prompt` users. Group g
//!   has one system prompt (`system_prompt_len` tokens, prefix group `prompt-<g>`); user (g, u)
//!   has one question (`question_len` tokens) reused by every request of that user, so a
//!   user's prompt repeats and hits the prefix cache. Output is always `output_len` tokens.
//! * Each request picks its user uniformly at random (own stream); `user_order: round_robin`
//!   instead sends request i to user i mod G·U of a user list shuffled once, which is what
//!   inference-perf does (`load_lazy_data`: `prompts[data_index % len(prompts)]` over a
//!   `random.shuffle`d pool).
//! * `question_reuse` (`shared_prefix.question_reuse`): `per_user` (default) is the fixed
//!   question per user above. inference-perf's `SharedPrefixDataGenerator` pre-generates exactly
//!   G·U prompts (one question per user) at start-up and never generates another, so a
//!   user's prompt is resent verbatim.
//! * Users and groups are not materialized when there are many: up to 65 536 users their names
//!   and question sources are tabulated at start-up (and `round_robin` shuffles that table
//!   with Fisher–Yates); beyond that each request derives its user's name and sources from
//!   the seed on demand, and `round_robin` walks a keyed pseudo-random permutation of the
//!   users instead, so a declared population of 10^16 users costs no memory. `per_request` gives every request a fresh question (only
//!   the system prompt can hit the prefix cache); it does not match inference-perf and exists
//!   to test that hypothesis against the calibration runs (docs/accuracy.md).
//! * Stages run back to back; stage k sends exactly `round(rate_k · duration_k)` requests at
//!   Poisson-like times: a Poisson process at `rate_k` conditioned on that count (equivalently
//!   the reference's "normalized exponential" gaps rescaled to the stage duration), generated
//!   lazily as sequential uniform order statistics. So the `general` preset sends exactly
//!   8·600 + 20·600 = 16 800 requests in 1 200 s.
//! * `num_requests` (or `--num-requests`) caps the total; without it the total is Σ rate·duration.
//! * `enable_multi_turn_chat` is accepted and is a no-op. Real inference-perf (its
//!   `LocalUserSession`) prepends each user's growing conversation history to the next
//!   question, but the measured runs show constant prompt lengths, and the reference simulator
//!   also made the flag a no-op after its multi-turn mapping inflated prompts (its issue #481).
//!   Keeping a fixed question per user keeps the prompt length constant while still letting
//!   repeated prompts hit the prefix cache.

use std::sync::Arc;

use rand::RngExt;

use crate::error::{Result, WorkloadError};
use crate::generator::Limits;
use crate::limits::{MAX_REQUEST_TOKENS, MAX_STAGE_REQUESTS, MAX_TIME_US, max_time_text};
use crate::request::{RequestSource, RequestSpec, SloClass};
use crate::rng::{StreamRng, splitmix64, stream, stream_seed};
use crate::spec::InferencePerfSpec;
use crate::tokens::{Segment, TokenSeq};
use crate::validate::prefix_source;

/// `inference_perf.shared_prefix.question_reuse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuestionReuse {
    /// Each user has one fixed question reused by all its requests (inference-perf's fixed
    /// prompt pool); repeated prompts hit the prefix cache.
    #[default]
    PerUser,
    /// Only the system prompt is shared; each request's question is fresh (never cached).
    PerRequest,
}

/// `inference_perf.shared_prefix.user_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserOrder {
    /// Each request picks its user uniformly at random.
    #[default]
    Random,
    /// Request i goes to user i mod (G·U) of a list shuffled once (inference-perf's
    /// `data_index % len(prompts)` over its shuffled prompt pool).
    RoundRobin,
}

/// A validated `inference_perf` section.
#[derive(Debug, Clone, PartialEq)]
pub struct InferencePerfPlan {
    pub groups: u32,
    pub users_per_group: u32,
    pub system_prompt_len: u32,
    pub question_len: u32,
    pub output_len: u32,
    /// (rate req/s, duration µs, request count) per stage.
    pub stages: Vec<(f64, u64, u64)>,
    pub multi_turn_chat: bool,
    pub question_reuse: QuestionReuse,
    pub user_order: UserOrder,
}

impl InferencePerfPlan {
    pub fn compile(ip: &InferencePerfSpec) -> Result<Self> {
        let sp = ip.shared_prefix.as_ref().ok_or_else(|| {
            WorkloadError::at("inference_perf.shared_prefix", "required (the only supported data type)")
        })?;
        let path = |name: &str| format!("inference_perf.shared_prefix.{name}");
        let count = |name: &str, v: i64| -> Result<u32> {
            if v < 1 {
                Err(WorkloadError::at(path(name), format!("must be ≥ 1, got {v}")))
            } else if v > i64::from(u32::MAX) {
                Err(WorkloadError::at(path(name), format!("must be ≤ {}, got {v}", u32::MAX)))
            } else {
                Ok(v as u32)
            }
        };
        let tokens =
            |name: &str, v: i64, min: i64| crate::limits::tokens(&path(name), v, min, MAX_REQUEST_TOKENS);
        let groups = count("num_unique_system_prompts", sp.num_unique_system_prompts)?;
        let users_per_group = count("num_users_per_system_prompt", sp.num_users_per_system_prompt)?;
        let system_prompt_len = tokens("system_prompt_len", sp.system_prompt_len, 0)?;
        let question_len = tokens("question_len", sp.question_len, 1)?;
        let output_len = tokens("output_len", sp.output_len, 1)?;
        if u64::from(system_prompt_len) + u64::from(question_len) > u64::from(MAX_REQUEST_TOKENS) {
            return Err(WorkloadError::at(
                path("question_len"),
                format!(
                    "system_prompt_len + question_len = {} tokens; {}",
                    u64::from(system_prompt_len) + u64::from(question_len),
                    crate::limits::TOKEN_LIMIT_NOTE
                ),
            ));
        }
        let question_reuse = match sp.question_reuse.as_deref() {
            None | Some("per_user") => QuestionReuse::PerUser,
            Some("per_request") => QuestionReuse::PerRequest,
            Some(other) => {
                return Err(WorkloadError::at(
                    "inference_perf.shared_prefix.question_reuse",
                    format!("accepted: per_user, per_request, got {other:?}"),
                ));
            }
        };
        let user_order = match sp.user_order.as_deref() {
            None | Some("random") => UserOrder::Random,
            Some("round_robin") => UserOrder::RoundRobin,
            Some(other) => {
                return Err(WorkloadError::at(
                    "inference_perf.shared_prefix.user_order",
                    format!("accepted: random, round_robin, got {other:?}"),
                ));
            }
        };
        if ip.stages.is_empty() {
            return Err(WorkloadError::at(
                "inference_perf.stages",
                "at least one {rate, duration} stage is required",
            ));
        }
        let mut stages = Vec::with_capacity(ip.stages.len());
        let mut end_us = 0u64;
        for (k, s) in ip.stages.iter().enumerate() {
            let at = |key: &str| format!("inference_perf.stages[{k}].{key}");
            if !(s.rate.is_finite() && s.rate > 0.0) {
                return Err(WorkloadError::at(at("rate"), format!("must be > 0 req/s, got {}", s.rate)));
            }
            if !(s.duration.is_finite() && s.duration > 0.0) {
                return Err(WorkloadError::at(at("duration"), format!("must be > 0 s, got {}", s.duration)));
            }
            let duration_us = (s.duration * 1e6).round();
            if duration_us > (MAX_TIME_US - end_us) as f64 {
                return Err(WorkloadError::at(
                    at("duration"),
                    format!(
                        "the stages would end at {:.0} µs, beyond the longest simulated time, {}",
                        end_us as f64 + duration_us,
                        max_time_text()
                    ),
                ));
            }
            let requests = (s.rate * s.duration).round();
            if requests > MAX_STAGE_REQUESTS {
                return Err(WorkloadError::at(
                    at("rate"),
                    format!(
                        "rate × duration = {requests:e} requests; a stage holds at most 2^53 = {MAX_STAGE_REQUESTS} requests"
                    ),
                ));
            }
            end_us += duration_us as u64;
            stages.push((s.rate, duration_us as u64, requests as u64));
        }
        Ok(InferencePerfPlan {
            groups,
            users_per_group,
            system_prompt_len,
            question_len,
            output_len,
            stages,
            multi_turn_chat: sp.enable_multi_turn_chat,
            question_reuse,
            user_order,
        })
    }

    /// Total requests over all stages (saturating; each stage holds at most 2^53).
    pub fn total_requests(&self) -> u64 {
        self.stages.iter().fold(0u64, |acc, s| acc.saturating_add(s.2))
    }

    /// Number of users, G·U (< 2^64 since both are u32).
    pub fn population(&self) -> u64 {
        u64::from(self.groups) * u64::from(self.users_per_group)
    }
}

/// Populations up to this many users are tabulated at start-up (see the module docs).
const EAGER_POPULATION: u64 = 1 << 16;

#[derive(Clone)]
struct User {
    group: u64,
    client: Arc<str>,
    question: u64,
}

/// Who the users are: a table, or a rule that derives any user from the seed on demand.
enum Population {
    /// Groups `(name, system-prompt source)` and users in pick order (shuffled for
    /// `round_robin`).
    Table { groups: Vec<(Arc<str>, u64)>, users: Vec<User> },
    /// User `i` is group `i / U`, user `i % U`; `round_robin` request `k` goes to user
    /// `permutation(k mod G·U)`.
    Derived { seed: u64, users_per_group: u64, size: u64, permutation: Permutation },
}

fn group_of(seed: u64, g: u64) -> (Arc<str>, u64) {
    let name = format!("prompt-{g}");
    let source = prefix_source(seed, &name);
    (Arc::from(name), source)
}

fn user_of(seed: u64, g: u64, u: u64) -> User {
    User {
        group: g,
        client: Arc::from(format!("prompt-{g}-user-{u}")),
        question: splitmix64(stream_seed(seed, &format!("inference-perf/question/{g}/{u}"))),
    }
}

/// A keyed pseudo-random permutation of `0..size` (a 4-round Feistel network over the
/// smallest even number of bits covering `size`, cycle-walking back into range), so that
/// `round_robin` visits every user once per cycle without a table of them.
struct Permutation {
    size: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    fn new(size: u64, rng: &mut StreamRng) -> Self {
        let bits = (64 - size.saturating_sub(1).leading_zeros()).max(2);
        Permutation { size, half_bits: bits.div_ceil(2), keys: std::array::from_fn(|_| rng.random()) }
    }

    fn apply(&self, mut x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        loop {
            let (mut left, mut right) = (x >> self.half_bits, x & mask);
            for key in self.keys {
                let f = splitmix64(right ^ key) & mask;
                (left, right) = (right, left ^ f);
            }
            x = (left << self.half_bits) | right;
            if x < self.size {
                return x;
            }
        }
    }
}

/// Lazy source of an `inference_perf` workload.
pub struct InferencePerfSource {
    plan: InferencePerfPlan,
    arrivals: StreamRng,
    users_rng: StreamRng,
    tokens: StreamRng,
    population: Population,
    /// Base of the per-request question sources (`question_reuse: per_request`).
    request_questions: u64,
    stage: usize,
    stage_start_us: u64,
    /// Requests already sent in the current stage, and the last order statistic in [0, 1).
    in_stage: u64,
    last_u: f64,
    next_id: u64,
    cap: u64,
    horizon: Option<u64>,
    timeout_us: Option<u64>,
}

impl InferencePerfSource {
    pub(crate) fn new(plan: InferencePerfPlan, limits: Limits, timeout_us: Option<u64>) -> Self {
        Self::with_eager_limit(plan, limits, timeout_us, EAGER_POPULATION)
    }

    /// [`new`](Self::new) with the population size up to which users are tabulated (tests
    /// check that both representations give the same requests).
    fn with_eager_limit(
        plan: InferencePerfPlan,
        limits: Limits,
        timeout_us: Option<u64>,
        eager: u64,
    ) -> Self {
        let seed = limits.seed;
        let mut users_rng = stream(seed, "inference-perf/users");
        let size = plan.population();
        let population = if size <= eager {
            let groups: Vec<(Arc<str>, u64)> =
                (0..u64::from(plan.groups)).map(|g| group_of(seed, g)).collect();
            let per = u64::from(plan.users_per_group);
            let mut users: Vec<User> = (0..size).map(|i| user_of(seed, i / per, i % per)).collect();
            if plan.user_order == UserOrder::RoundRobin {
                // Fisher–Yates, once, like inference-perf's `random.shuffle` of its prompt pool.
                for i in (1..users.len()).rev() {
                    users.swap(i, users_rng.random_range(0..=i));
                }
            }
            Population::Table { groups, users }
        } else {
            // Its own stream, so that `random` picks are the same draws as with a table.
            let permutation = Permutation::new(size, &mut stream(seed, "inference-perf/user-permutation"));
            Population::Derived { seed, users_per_group: u64::from(plan.users_per_group), size, permutation }
        };
        let total = plan.total_requests();
        InferencePerfSource {
            arrivals: stream(seed, "inference-perf/arrivals"),
            users_rng,
            request_questions: stream_seed(seed, "inference-perf/request-question"),
            tokens: stream(seed, "inference-perf/tokens"),
            population,
            stage: 0,
            stage_start_us: 0,
            in_stage: 0,
            last_u: 0.0,
            next_id: 0,
            cap: limits.cap.map_or(total, |c| c.min(total)),
            horizon: limits.horizon,
            timeout_us,
            plan,
        }
    }

    /// The user of request `id` and its group `(name, system-prompt source)`.
    fn pick_user(&mut self, id: u64) -> (User, (Arc<str>, u64)) {
        let order = self.plan.user_order;
        match &self.population {
            Population::Table { groups, users } => {
                let pick = match order {
                    UserOrder::Random => self.users_rng.random_range(0..users.len()),
                    UserOrder::RoundRobin => (id % users.len() as u64) as usize,
                };
                let user = users[pick].clone();
                let group = groups[user.group as usize].clone();
                (user, group)
            }
            &Population::Derived { seed, users_per_group, size, ref permutation } => {
                let index = match order {
                    // The same draw as the table's (a usize range), so both agree.
                    UserOrder::Random => self.users_rng.random_range(0..size as usize) as u64,
                    UserOrder::RoundRobin => permutation.apply(id % size),
                };
                let (g, u) = (index / users_per_group, index % users_per_group);
                (user_of(seed, g, u), group_of(seed, g))
            }
        }
    }

    /// Next arrival time, moving across stages; `None` after the last stage.
    fn next_arrival(&mut self) -> Option<u64> {
        loop {
            let &(_, duration_us, count) = self.plan.stages.get(self.stage)?;
            if self.in_stage < count {
                // Sequential generation of sorted uniforms: the next of the remaining m points.
                let m = (count - self.in_stage) as f64;
                let v: f64 = 1.0 - self.arrivals.random::<f64>(); // (0, 1]
                self.last_u += (1.0 - self.last_u) * (1.0 - v.powf(1.0 / m));
                self.in_stage += 1;
                let offset = ((self.last_u * duration_us as f64) as u64).min(duration_us.saturating_sub(1));
                return Some(self.stage_start_us + offset);
            }
            self.stage_start_us += duration_us;
            self.stage += 1;
            self.in_stage = 0;
            self.last_u = 0.0;
        }
    }
}

impl RequestSource for InferencePerfSource {
    fn next_request(&mut self) -> Option<RequestSpec> {
        if self.next_id >= self.cap {
            return None;
        }
        let arrival_us = self.next_arrival()?;
        if self.horizon.is_some_and(|h| arrival_us >= h) {
            self.cap = self.next_id;
            return None;
        }
        let id = self.next_id;
        let (user, (group, system)) = self.pick_user(id);
        let question = match self.plan.question_reuse {
            QuestionReuse::PerUser => user.question,
            QuestionReuse::PerRequest => splitmix64(self.request_questions.wrapping_add(id)),
        };
        let mut input = TokenSeq::new();
        input.push(Segment { source: system, start: 0, len: self.plan.system_prompt_len });
        input.push(Segment { source: question, start: 0, len: self.plan.question_len });
        self.next_id += 1;
        Some(RequestSpec {
            id,
            arrival_us,
            input,
            output_tokens: self.plan.output_len,
            max_output_tokens: self.plan.output_len,
            output_source: self.tokens.random(),
            slo_class: SloClass::Standard,
            slo_class_named: false,
            tenant: Some(group.clone()),
            client: Some(user.client),
            deadline_us: self.timeout_us.map(|t| arrival_us.saturating_add(t)),
            session: None,
            prefix_group: Some(group.clone()),
        })
    }

    fn follows_up(&self) -> bool {
        false
    }

    fn expected_requests(&self) -> Option<u64> {
        Some(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{Overrides, build_source};
    use crate::presets::{SyntheticParams, preset_spec};
    use std::collections::HashSet;

    fn run(name: &str, ov: &Overrides) -> Vec<RequestSpec> {
        let spec = preset_spec(name, &SyntheticParams::default()).unwrap();
        let mut src = build_source(&spec, ov).unwrap();
        std::iter::from_fn(|| src.next_request()).collect()
    }

    #[test]
    fn general_preset_matches_bench_readme() {
        let reqs = run("general", &Overrides::default());
        assert_eq!(reqs.len(), 16_800);
        assert!(reqs.iter().all(|r| r.input.len() == 547 && r.output_tokens == 248));
        assert!(reqs.last().unwrap().arrival_us < 1_200_000_000);
        let first_stage = reqs.iter().filter(|r| r.arrival_us < 600_000_000).count();
        assert_eq!(first_stage, 4_800);
        assert!(reqs.windows(2).all(|w| w[0].arrival_us <= w[1].arrival_us && w[1].id == w[0].id + 1));
        // 9 system prompts, 45 distinct user prompts, all users used.
        let systems: HashSet<u64> = reqs.iter().map(|r| r.input.segments()[0].source).collect();
        let prompts: HashSet<&TokenSeq> = reqs.iter().map(|r| &r.input).collect();
        assert_eq!(systems.len(), 9);
        assert_eq!(prompts.len(), 45);
        assert!(reqs.iter().all(|r| r.input.segments()[0].len == 100 && r.deadline_us.is_none()));
        // Poisson-like gaps in stage 2: mean ≈ 50 ms, CV ≈ 1.
        let gaps: Vec<f64> = reqs
            .windows(2)
            .filter(|w| w[0].arrival_us >= 600_000_000)
            .map(|w| (w[1].arrival_us - w[0].arrival_us) as f64)
            .collect();
        let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - m) * (g - m)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((m / 50_000.0 - 1.0).abs() < 0.02, "mean gap {m}");
        assert!((sd / m - 1.0).abs() < 0.05, "cv {}", sd / m);
    }

    #[test]
    fn every_preset_count_and_caps() {
        for (name, n, len, out) in [
            ("codegen", 9_000, 566, 247),
            ("roleplay", 7_200, 750, 251),
            ("reasoning", 4_800, 1034, 1448),
            ("general-lite", 5_100, 547, 248),
            ("reasoning-lite", 1_200, 1034, 1448),
        ] {
            let reqs = run(name, &Overrides::default());
            assert_eq!(reqs.len(), n, "{name}");
            assert!(reqs.iter().all(|r| r.input.len() == len && r.output_tokens == out), "{name}");
        }
        assert_eq!(run("general", &Overrides { num_requests: Some(100), ..Overrides::default() }).len(), 100);
        let early = run("general", &Overrides { horizon_us: Some(60_000_000), ..Overrides::default() });
        assert!((early.len() as i64 - 480).abs() < 80, "{}", early.len());
    }

    #[test]
    fn multi_turn_flag_is_a_no_op() {
        let mut spec = preset_spec("general-lite", &SyntheticParams::default()).unwrap();
        let collect = |s: &crate::spec::WorkloadSpec| {
            let mut src = build_source(s, &Overrides::default()).unwrap();
            std::iter::from_fn(|| src.next_request()).collect::<Vec<_>>()
        };
        let a = collect(&spec);
        spec.inference_perf.as_mut().unwrap().shared_prefix.as_mut().unwrap().enable_multi_turn_chat = false;
        assert_eq!(a, collect(&spec));
    }

    #[test]
    fn question_reuse_and_user_order() {
        let base = preset_spec("general-lite", &SyntheticParams::default()).unwrap();
        let with = |reuse: Option<&str>, order: Option<&str>| {
            let mut spec = base.clone();
            let sp = spec.inference_perf.as_mut().unwrap().shared_prefix.as_mut().unwrap();
            sp.question_reuse = reuse.map(String::from);
            sp.user_order = order.map(String::from);
            let mut src = build_source(&spec, &Overrides::default()).unwrap();
            std::iter::from_fn(|| src.next_request()).collect::<Vec<_>>()
        };
        let default = with(None, None);
        assert_eq!(default, with(Some("per_user"), Some("random")));
        // per_request: every prompt distinct, system prompts still shared, same arrivals/users.
        let fresh = with(Some("per_request"), None);
        let prompts: HashSet<&TokenSeq> = fresh.iter().map(|r| &r.input).collect();
        assert_eq!(prompts.len(), fresh.len());
        let systems: HashSet<u64> = fresh.iter().map(|r| r.input.segments()[0].source).collect();
        assert_eq!(systems.len(), 9);
        assert!(
            fresh.iter().zip(&default).all(|(a, b)| a.arrival_us == b.arrival_us && a.client == b.client)
        );
        // round_robin: 45 users in a fixed shuffled cycle.
        let rr = with(None, Some("round_robin"));
        assert!(rr.iter().zip(rr.iter().skip(45)).all(|(a, b)| a.input == b.input && a.client == b.client));
        let first: HashSet<_> = rr[..45].iter().map(|r| r.client.clone()).collect();
        assert_eq!(first.len(), 45);
        let e = crate::spec::parse_spec(
            "inference_perf:\n  shared_prefix:\n    num_unique_system_prompts: 1\n    num_users_per_system_prompt: 1\n    system_prompt_len: 1\n    question_len: 1\n    output_len: 1\n    question_reuse: always\n  stages: [{rate: 1, duration: 1}]\n",
            "ip.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("question_reuse: accepted: per_user, per_request"), "{e}");
    }

    #[test]
    fn validation_errors() {
        let text = "inference_perf:\n  shared_prefix:\n    num_unique_system_prompts: 0\n    num_users_per_system_prompt: 1\n    system_prompt_len: 1\n    question_len: 1\n    output_len: 1\n  stages: [{rate: 1, duration: 1}]\n";
        let e = crate::spec::parse_spec(text, "ip.yaml").unwrap_err().to_string();
        assert_eq!(
            e,
            "ip.yaml:3: inference_perf.shared_prefix.num_unique_system_prompts: must be ≥ 1, got 0"
        );
        let text = text.replace("prompts: 0", "prompts: 2").replace("rate: 1,", "rate: -1,");
        let e = crate::spec::parse_spec(&text, "ip.yaml").unwrap_err().to_string();
        assert_eq!(e, "ip.yaml:8: inference_perf.stages[0].rate: must be > 0 req/s, got -1");
    }
}
