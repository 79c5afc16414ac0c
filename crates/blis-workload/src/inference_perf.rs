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
//!
//! All of the above is [`crate::GenerationSemantics::Blis`]. Under
//! [`crate::GenerationSemantics::Reference`] the section is expanded the way the reference
//! simulator does it instead (`reference_plans`): with `enable_multi_turn_chat`, G·U closed-loop
//! sessions per stage with a fresh question every round; without it, per-client arrivals.

use std::sync::Arc;

use rand::RngExt;

use crate::arrival::ArrivalProcess;
use crate::error::{Result, WorkloadError};
use crate::generator::Limits;
use crate::lengths::LengthDist;
use crate::limits::{MAX_REQUEST_TOKENS, MAX_STAGE_REQUESTS, MAX_TIME_US, max_time_text};
use crate::request::{RequestSource, RequestSpec, SloClass};
use crate::rng::{StreamRng, splitmix64, stream, stream_seed};
use crate::spec::{InferencePerfSpec, WorkloadSpec};
use crate::tokens::{Segment, TokenSeq};
use crate::validate::{
    ClientPlan, DEFAULT_SESSION_TIMEOUT_US, FirstArrival, MultiTurnPlan, PrefixPlan, prefix_source,
};

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

/// The reference simulator's expansion of an `inference_perf` section into clients
/// (`ExpandInferencePerfSpec` + `GenerateWorkload` in its `sim/workload`), for
/// [`crate::GenerationSemantics::Reference`]. Returns the plans, and `Some(output_len)` when
/// they are closed-loop sessions (see [`crate::SpecSource`]'s reference cap).
///
/// With S stages, G groups and U users per group there are S·G·U clients `prompt-g-user-u`
/// (prefixed `stage-s-` when S > 1), tenant and prefix group `prompt-g`; every request is the
/// group's system prompt followed by a fresh `question_len`-token question.
/// * `enable_multi_turn_chat` (every calibration run): each client is one closed-loop session
///   of `distribute(floor(rate·duration), G·U)[k]` rounds (the first clients get the
///   remainder), starting one exponential gap (mean G·U/rate) after its stage begins; round
///   r+1 arrives `floor(G·U/rate)` s after round r completes, regardless of the stage's end.
///   Requests time out after 300 s unless `timeout_us` says otherwise.
/// * otherwise, one stage: client k sends exactly `distribute(floor(rate·duration), G·U)[k]`
///   requests whose gaps are exponentials normalized to sum to the duration; several stages:
///   each client is a Poisson process at rate/(G·U) active only during its stage.
pub(crate) fn reference_plans(
    ip: &InferencePerfSpec,
    seed: u64,
    timeout_us: Option<Option<u64>>,
) -> Result<Vec<ClientPlan>> {
    let plan = InferencePerfPlan::compile(ip)?;
    let clients_per_stage = u64::from(plan.groups) * u64::from(plan.users_per_group);
    // Stage durations are whole seconds in the reference (`int64`); counts truncate.
    let mut stages = Vec::with_capacity(ip.stages.len());
    for (k, st) in ip.stages.iter().enumerate() {
        if st.duration.fract() != 0.0 {
            return Err(WorkloadError::at(
                format!("inference_perf.stages[{k}].duration"),
                format!("the reference semantics need whole seconds, got {}", st.duration),
            ));
        }
        let total = (st.rate * st.duration).floor() as u64;
        if total == 0 {
            return Err(WorkloadError::at(
                format!("inference_perf.stages[{k}]"),
                format!("rate {} × duration {} gives no request", st.rate, st.duration),
            ));
        }
        stages.push((st.rate, st.duration as u64 * 1_000_000, total));
    }
    let multi_stage = stages.len() > 1;
    let mut windows = Vec::with_capacity(stages.len());
    let mut start_us = 0u64;
    for &(_, duration_us, _) in &stages {
        windows.push((start_us, start_us + duration_us));
        start_us += duration_us;
    }
    let timeout = match timeout_us {
        Some(t) => t,
        None if plan.multi_turn_chat => Some(DEFAULT_SESSION_TIMEOUT_US),
        None => None,
    };
    let mut plans = Vec::new();
    for (s, &(rate, duration_us, total)) in stages.iter().enumerate() {
        let per_client_rate = rate / clients_per_stage as f64;
        let think_time_us = (clients_per_stage as f64 / rate * 1e6) as u64;
        let mut k = 0u64;
        for g in 0..plan.groups {
            let group = format!("prompt-{g}");
            let prefix = (plan.system_prompt_len > 0).then(|| PrefixPlan {
                group: Arc::from(group.as_str()),
                source: prefix_source(seed, &group),
                len: plan.system_prompt_len,
            });
            for u in 0..plan.users_per_group {
                // floor(total / n), the first total mod n clients one more.
                let share = total / clients_per_stage + u64::from(k < total % clients_per_stage);
                k += 1;
                let id = if multi_stage {
                    format!("stage-{s}-prompt-{g}-user-{u}")
                } else {
                    format!("prompt-{g}-user-{u}")
                };
                let mut client = ClientPlan::basic(
                    &id,
                    ArrivalProcess::poisson(per_client_rate),
                    LengthDist::constant(plan.question_len),
                    LengthDist::constant(plan.output_len),
                );
                client.tenant = Some(Arc::from(group.as_str()));
                client.prefix = prefix.clone();
                client.timeout_us = timeout;
                client.windows = if multi_stage { vec![windows[s]] } else { Vec::new() };
                if plan.multi_turn_chat {
                    if share == 0 {
                        continue; // a session of no rounds sends nothing
                    }
                    client.multi_turn = Some(MultiTurnPlan {
                        max_rounds: u32::try_from(share).map_err(|_| {
                            WorkloadError::at(
                                format!("inference_perf.stages[{s}]"),
                                "too many rounds per session",
                            )
                        })?,
                        think_time_us,
                        think: crate::think::ThinkTime::Constant { us: think_time_us },
                        accumulate: false,
                        single_session: true,
                        closed_loop: true,
                    });
                    client.first_arrival = FirstArrival::WindowStartPlusGap;
                } else if !multi_stage {
                    if share == 0 || duration_us < share {
                        return Err(WorkloadError::at(
                            "inference_perf.stages[0]",
                            format!(
                                "client {id} would send {share} requests in {duration_us} µs; the reference \
                                 needs 1 ≤ requests ≤ duration µs per client (raise rate or duration)"
                            ),
                        ));
                    }
                    client.normalized = Some((share, duration_us));
                }
                plans.push(client);
            }
        }
    }
    Ok(plans)
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
            model: None,
            adapter: None,
            deadline_us: self.timeout_us.map(|t| arrival_us.saturating_add(t)),
            slo_target_us: None,
            session: None,
            prefix_group: Some(group.clone()),
            meta: None,
        })
    }

    fn follows_up(&self) -> bool {
        false
    }

    fn expected_requests(&self) -> Option<u64> {
        Some(self.cap)
    }
}

/// Most clients [`expand_to_clients`] writes out.
pub const MAX_EXPANDED_CLIENTS: u64 = 100_000;

/// `blis convert inference-perf`: the `inference_perf:` section of `spec` written out as
/// clients, the way the reference simulator expands it (see [`reference_plans`]): one client per
/// (stage, group, user) with the group's system prompt as a shared prefix (`prompt-<g>`, also
/// the tenant), a constant question and output, SLO class `standard`.
///
/// * Multi-turn chat: one single session per client of `distribute(⌊rate·duration⌋, G·U)[k]`
///   rounds, `⌊G·U/rate⌋` s apart after each response, no context growth; `num_requests` is the
///   total of those rounds.
/// * Otherwise each client is a Poisson process at rate/(G·U) during its stage (a lifecycle
///   window with that `trace_rate` when there are several stages), `horizon` the end of the
///   last stage. With one stage the reference sends each client's exact share of ⌊rate·duration⌋
///   requests; a spec cannot say that, so `num_requests` caps the total at ⌊rate·duration⌋
///   instead (a note says so).
///
/// Returns the spec (validated) and notes on what the written spec cannot carry.
pub fn expand_to_clients(spec: &WorkloadSpec) -> Result<(WorkloadSpec, Vec<String>)> {
    use crate::spec::{
        ArrivalSpec, ClientSpec, DistSpec, LifecycleSpec, MultiTurnSpec, ReasoningSpec, WindowSpec,
    };
    let ip = spec
        .inference_perf
        .as_ref()
        .ok_or_else(|| WorkloadError::at("inference_perf", "the spec has no inference_perf: section"))?;
    let plan = InferencePerfPlan::compile(ip)?;
    let Some(sp) = ip.shared_prefix.as_ref() else {
        return Err(WorkloadError::at("inference_perf.shared_prefix", "required"));
    };
    let mut notes = Vec::new();
    if sp.question_reuse.is_some() || sp.user_order.is_some() {
        notes.push(
            "question_reuse and user_order are BLIS's own inference_perf semantics; the reference's \
             expansion written out has neither"
                .to_string(),
        );
    }
    let users = u64::from(plan.groups) * u64::from(plan.users_per_group);
    let multi_stage = ip.stages.len() > 1;
    if users.saturating_mul(ip.stages.len() as u64) > MAX_EXPANDED_CLIENTS {
        return Err(WorkloadError::at(
            "inference_perf",
            format!(
                "{users} users × {} stages is more than {MAX_EXPANDED_CLIENTS} clients to write out; run the spec as it is",
                ip.stages.len()
            ),
        ));
    }
    let constant =
        |v: u32| DistSpec { kind: "constant".into(), params: [("value".to_string(), f64::from(v))].into() };
    let mut clients = Vec::new();
    let (mut start_us, mut rounds_total) = (0i64, 0u64);
    for (s, st) in ip.stages.iter().enumerate() {
        if st.duration.fract() != 0.0 {
            return Err(WorkloadError::at(
                format!("inference_perf.stages[{s}].duration"),
                format!("the reference's expansion needs whole seconds, got {}", st.duration),
            ));
        }
        let total = (st.rate * st.duration).floor() as u64;
        if total == 0 {
            return Err(WorkloadError::at(
                format!("inference_perf.stages[{s}]"),
                format!("rate {} × duration {} gives no request", st.rate, st.duration),
            ));
        }
        let end_us = start_us + st.duration as i64 * 1_000_000;
        let per_client_rate = st.rate / users as f64;
        let think_time_us = (users as f64 / st.rate * 1e6) as i64;
        let mut k = 0u64;
        for g in 0..plan.groups {
            let group = format!("prompt-{g}");
            for u in 0..plan.users_per_group {
                let share = total / users + u64::from(k < total % users);
                k += 1;
                if plan.multi_turn_chat && share == 0 {
                    continue; // a session of no rounds sends nothing
                }
                let id = if multi_stage {
                    format!("stage-{s}-prompt-{g}-user-{u}")
                } else {
                    format!("prompt-{g}-user-{u}")
                };
                let mut client = ClientSpec {
                    id: Some(id),
                    tenant_id: Some(group.clone()),
                    slo_class: Some("standard".into()),
                    arrival: Some(ArrivalSpec { process: "poisson".into(), ..ArrivalSpec::default() }),
                    input_distribution: Some(constant(plan.question_len)),
                    output_distribution: Some(constant(plan.output_len)),
                    prefix_group: (plan.system_prompt_len > 0).then(|| group.clone()),
                    prefix_length: (plan.system_prompt_len > 0).then_some(i64::from(plan.system_prompt_len)),
                    ..ClientSpec::default()
                };
                if multi_stage {
                    client.rate_fraction = Some(1.0);
                    client.lifecycle = Some(LifecycleSpec {
                        windows: vec![WindowSpec {
                            start_us,
                            end_us,
                            trace_rate: Some(per_client_rate),
                            ..WindowSpec::default()
                        }],
                    });
                } else {
                    client.rate_fraction = Some(1.0 / users as f64);
                }
                if plan.multi_turn_chat {
                    rounds_total += share;
                    client.reasoning = Some(ReasoningSpec {
                        reason_ratio_distribution: Some(DistSpec {
                            kind: "constant".into(),
                            params: [("value".to_string(), 0.0)].into(),
                        }),
                        multi_turn: Some(MultiTurnSpec {
                            max_rounds: share as i64,
                            think_time_us: Some(think_time_us),
                            context_growth: None,
                            single_session: Some(true),
                        }),
                    });
                }
                clients.push(client);
            }
        }
        start_us = end_us;
    }
    let single_total = (ip.stages[0].rate * ip.stages[0].duration).floor() as i64;
    let (num_requests, horizon) = if plan.multi_turn_chat {
        (Some(rounds_total as i64), None)
    } else if multi_stage {
        (None, Some(start_us))
    } else {
        notes.push(format!(
            "the reference sends each client an exact share of the stage's {single_total} requests; \
             the written spec has Poisson clients capped at {single_total} requests in all"
        ));
        (Some(single_total), Some(start_us))
    };
    let out = WorkloadSpec {
        version: Some("2".into()),
        seed: spec.seed,
        category: Some(if plan.multi_turn_chat { "reasoning" } else { "language" }.into()),
        aggregate_rate: Some(if multi_stage { 0.0 } else { ip.stages[0].rate }),
        num_requests,
        horizon,
        clients,
        goodput_slo_targets: spec.goodput_slo_targets.clone(),
        ..WorkloadSpec::default()
    };
    crate::validate::validate(&out)?;
    Ok((out, notes))
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

    /// The reference semantics of a preset, with `enable_multi_turn_chat` as given.
    fn reference(name: &str, multi_turn: bool, ov: &Overrides) -> Box<dyn RequestSource + Send> {
        let mut spec = preset_spec(name, &SyntheticParams::default()).unwrap();
        spec.inference_perf.as_mut().unwrap().shared_prefix.as_mut().unwrap().enable_multi_turn_chat =
            multi_turn;
        crate::build_source_with(&spec, ov, crate::GenerationSemantics::Reference).unwrap()
    }

    /// Runs a closed-loop source with every request taking `service_us`, completing in arrival
    /// order; returns every request sent.
    fn drive(src: &mut dyn RequestSource, service_us: u64) -> Vec<RequestSpec> {
        let mut queue: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u64)>> = Default::default();
        let mut by_id = std::collections::HashMap::new();
        let mut next = src.next_request();
        let mut all = Vec::new();
        loop {
            let done_at = queue.peek().map(|r| r.0.0);
            match (&next, done_at) {
                (Some(r), d) if d.is_none_or(|d| r.arrival_us <= d) => {
                    let r = next.take().unwrap();
                    queue.push(std::cmp::Reverse((r.arrival_us + service_us, r.id)));
                    by_id.insert(r.id, r.clone());
                    all.push(r);
                    next = src.next_request();
                }
                (_, Some(_)) => {
                    let std::cmp::Reverse((at, id)) = queue.pop().unwrap();
                    let r = by_id.remove(&id).unwrap();
                    if let Some(f) = src.on_request_done(&r, at, crate::Outcome::Completed) {
                        queue.push(std::cmp::Reverse((f.arrival_us + service_us, f.id)));
                        by_id.insert(f.id, f.clone());
                        all.push(f);
                    }
                }
                (None, None) => return all,
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn reference_multi_turn_is_closed_loop_sessions() {
        // codegen: 11 groups × 4 users, stages 5 req/s and 10 req/s for 600 s each.
        let mut src = reference("codegen", true, &Overrides::default());
        let all = drive(src.as_mut(), 2_500_000);
        assert_eq!(all.len(), 9_000, "every round of every session");
        let mut sessions: std::collections::HashMap<u64, Vec<&RequestSpec>> = Default::default();
        for r in &all {
            sessions.entry(r.session.unwrap().session_id).or_default().push(r);
        }
        assert_eq!(sessions.len(), 88, "one session per (stage, group, user)");
        let mut rounds: Vec<usize> = Vec::new();
        for reqs in sessions.values() {
            rounds.push(reqs.len());
            let stage1 = reqs[0].client.as_deref().unwrap().starts_with("stage-1-");
            let (start, think) = if stage1 { (600_000_000, 4_400_000) } else { (0, 8_800_000) };
            assert!(reqs[0].arrival_us > start && reqs[0].arrival_us < start + 600_000_000);
            for w in reqs.windows(2) {
                // Closed loop: the next round comes G·U/rate after the previous one completed.
                assert_eq!(w[1].arrival_us, w[0].arrival_us + 2_500_000 + think);
                assert_eq!(w[1].session.unwrap().round, w[0].session.unwrap().round + 1);
            }
            // Follow-ups do not stop at the stage's end.
            if !stage1 {
                assert!(reqs.last().unwrap().arrival_us > 600_000_000);
            }
        }
        rounds.sort_unstable();
        // Stage 0: 3000 = 44·68 + 8; stage 1: 6000 = 44·136 + 16.
        assert_eq!(rounds.iter().filter(|&&n| n == 68).count(), 36);
        assert_eq!(rounds.iter().filter(|&&n| n == 69).count(), 8);
        assert_eq!(rounds.iter().filter(|&&n| n == 136).count(), 28);
        assert_eq!(rounds.iter().filter(|&&n| n == 137).count(), 16);
        for r in &all {
            assert_eq!((r.input.len(), r.output_tokens), (566, 247));
            assert_eq!(r.deadline_us, Some(r.arrival_us + 300_000_000));
            // The group's system prompt, then a question no other request shares.
            assert_eq!(r.input.segments()[0].len, 100);
            assert_eq!(r.prefix_group.as_deref(), r.tenant.as_deref());
        }
        let questions: HashSet<u64> = all.iter().map(|r| r.input.segments()[1].source).collect();
        assert_eq!(questions.len(), all.len());
        let systems: HashSet<u64> = all.iter().map(|r| r.input.segments()[0].source).collect();
        assert_eq!(systems.len(), 11);
        assert!(!src.output_reusable(&all[0]));
    }

    #[test]
    fn reference_cap_truncates_open_loop_stamps_not_follow_ups() {
        // reasoning-lite: 23 sessions of 52–53 rounds, 23 s think time. The reference stamps
        // every round open loop (round r at start + r·(23 s + 1448 µs)), keeps the first
        // `num_requests` by time and sends only their rounds 0; the sessions then run all rounds.
        let ov = Overrides { num_requests: Some(30), ..Overrides::default() };
        let mut src = reference("reasoning-lite", true, &ov);
        let all = drive(src.as_mut(), 1_000_000);
        let starts: Vec<&RequestSpec> = all.iter().filter(|r| r.session.unwrap().round == 0).collect();
        let full = drive(reference("reasoning-lite", true, &Overrides::default()).as_mut(), 1_000_000);
        let mut all_starts: Vec<u64> =
            full.iter().filter(|r| r.session.unwrap().round == 0).map(|r| r.arrival_us).collect();
        all_starts.sort_unstable();
        // Which stamps precede each start: the starts themselves and later rounds of early ones.
        let period = 23_000_000 + 1448;
        let rank = |t: u64| -> usize {
            all_starts
                .iter()
                .map(|&s| if t > s { ((t - s).div_ceil(period)).min(52) as usize } else { 0 })
                .sum()
        };
        let kept: Vec<u64> = all_starts.iter().copied().filter(|&t| rank(t) < 30).collect();
        assert!(!kept.is_empty() && kept.len() < 23, "{}", kept.len());
        let mut got: Vec<u64> = starts.iter().map(|r| r.arrival_us).collect();
        got.sort_unstable();
        assert_eq!(got, kept);
        assert!(all.len() > 30 * 10, "follow-ups are not capped: {}", all.len());
    }

    #[test]
    fn reference_single_stage_normalized_arrivals() {
        // Without multi-turn, one stage: client k sends exactly its share of floor(rate·duration)
        // requests, the last one at the end of the stage.
        let spec = crate::spec::parse_spec(
            "inference_perf:\n  shared_prefix:\n    num_unique_system_prompts: 2\n    num_users_per_system_prompt: 3\n    system_prompt_len: 32\n    question_len: 10\n    output_len: 5\n  stages: [{rate: 2.5, duration: 101}]\n",
            "ip.yaml",
        )
        .unwrap();
        let mut src =
            crate::build_source_with(&spec, &Overrides::default(), crate::GenerationSemantics::Reference)
                .unwrap();
        assert!(!src.follows_up());
        let reqs: Vec<RequestSpec> = std::iter::from_fn(|| src.next_request()).collect();
        assert_eq!(reqs.len(), 252); // floor(252.5)
        let mut per_client: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for r in &reqs {
            per_client.entry(r.client.as_deref().unwrap().to_string()).or_default().push(r.arrival_us);
            assert!(r.deadline_us.is_none() && r.session.is_none());
        }
        let counts: Vec<usize> = per_client.values().map(Vec::len).collect();
        assert_eq!(counts, vec![42; 6]);
        for times in per_client.values() {
            assert_eq!(*times.last().unwrap(), 101_000_000);
            assert!(times.windows(2).all(|w| w[0] < w[1]) && times[0] > 0);
        }
        assert!(reqs.windows(2).all(|w| w[0].arrival_us <= w[1].arrival_us));
    }

    #[test]
    fn reference_multi_stage_without_multi_turn_is_poisson_per_stage() {
        let mut src = reference("general", false, &Overrides::default());
        let reqs: Vec<RequestSpec> = std::iter::from_fn(|| src.next_request()).collect();
        let stage0 = reqs.iter().filter(|r| r.arrival_us < 600_000_000).count() as f64;
        let stage1 = reqs.len() as f64 - stage0;
        // Poisson counts around 8·600 and 20·600 (not exact, unlike BLIS's semantics).
        assert!(
            (stage0 / 4800.0 - 1.0).abs() < 0.05 && (stage1 / 12000.0 - 1.0).abs() < 0.05,
            "{stage0} {stage1}"
        );
        assert!(reqs.iter().all(|r| r.arrival_us < 1_200_000_000));
        assert!(
            reqs.iter().filter(|r| r.arrival_us < 600_000_000).all(|r| r
                .client
                .as_deref()
                .unwrap()
                .starts_with("stage-0-"))
        );
    }

    #[test]
    fn reference_semantics_errors() {
        let text = "inference_perf:\n  shared_prefix:\n    num_unique_system_prompts: 2\n    num_users_per_system_prompt: 3\n    system_prompt_len: 32\n    question_len: 10\n    output_len: 5\n  stages: [{rate: 2.5, duration: 10.5}]\n";
        let spec = crate::spec::parse_spec(text, "ip.yaml").unwrap();
        let e = crate::build_source_with(&spec, &Overrides::default(), crate::GenerationSemantics::Reference)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "inference_perf.stages[0].duration: the reference semantics need whole seconds, got 10.5"
        );
        let spec = crate::spec::parse_spec(
            &text.replace("duration: 10.5", "duration: 1").replace("rate: 2.5", "rate: 0.5"),
            "ip.yaml",
        )
        .unwrap();
        let e = crate::build_source_with(&spec, &Overrides::default(), crate::GenerationSemantics::Reference)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("gives no request"), "{e}");
        // Fewer requests than clients, without multi-turn: the reference refuses it too.
        let spec =
            crate::spec::parse_spec(&text.replace("duration: 10.5", "duration: 2"), "ip.yaml").unwrap();
        let e = crate::build_source_with(&spec, &Overrides::default(), crate::GenerationSemantics::Reference)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("would send 0 requests"), "{e}");
        assert_eq!(
            crate::GenerationSemantics::parse("reference"),
            Some(crate::GenerationSemantics::Reference)
        );
        assert_eq!(crate::GenerationSemantics::parse("nope"), None);
    }

    /// The written-out clients send what the reference expansion of the section sends.
    #[test]
    fn expanded_clients_match_the_reference_expansion() {
        for (name, multi_turn) in
            [("codegen", true), ("roleplay", true), ("codegen", false), ("roleplay", false)]
        {
            let mut spec = preset_spec(name, &SyntheticParams::default()).unwrap();
            spec.num_requests = None;
            spec.inference_perf.as_mut().unwrap().shared_prefix.as_mut().unwrap().enable_multi_turn_chat =
                multi_turn;
            let (out, notes) = expand_to_clients(&spec).unwrap();
            assert_eq!(notes.len(), usize::from(!multi_turn && name == "roleplay"), "{notes:?}");
            let text = crate::to_yaml(&out).unwrap();
            let reread = crate::parse_spec(&text, "x.yaml").unwrap();
            assert_eq!(reread, out);
            let mut written = build_source(&reread, &Overrides::default()).unwrap();
            let a = drive(written.as_mut(), 2_500_000);
            let b = drive(reference(name, multi_turn, &Overrides::default()).as_mut(), 2_500_000);
            let stages: Vec<(f64, f64)> =
                spec.inference_perf.as_ref().unwrap().stages.iter().map(|s| (s.rate, s.duration)).collect();
            if multi_turn {
                assert_eq!(a.len(), b.len(), "{name}: every round of every session");
            } else {
                // Poisson counts: within 5 % of the reference's.
                let (x, y) = (a.len() as f64, b.len() as f64);
                assert!((x / y - 1.0).abs() < 0.05, "{name}: {x} vs {y}");
            }
            // Per stage, the same prompts: system prompt + question, constant output.
            let mut start = 0.0;
            for (rate, duration) in stages {
                let in_stage = |r: &&RequestSpec| {
                    let t = r.arrival_us as f64 / 1e6;
                    t >= start && t < start + duration
                };
                let (x, y) =
                    (a.iter().filter(in_stage).count() as f64, b.iter().filter(in_stage).count() as f64);
                assert!((x / y - 1.0).abs() < 0.1, "{name} stage at {rate}/s: {x} vs {y}");
                start += duration;
            }
            assert_eq!(a[0].input.len(), b[0].input.len());
            assert_eq!(a[0].output_tokens, b[0].output_tokens);
        }
        let e = expand_to_clients(&WorkloadSpec::default()).unwrap_err().to_string();
        assert!(e.contains("no inference_perf: section"), "{e}");
    }
}
