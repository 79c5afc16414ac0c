//! The lazy generator of a client-based workload spec.
//!
//! Each client has its own arrival process and three independent random streams (arrivals,
//! lengths, token sources) derived from the workload seed and the client's index, so changing a
//! client's length distribution never moves an arrival, and adding a client never changes
//! another client's stream. The per-client arrival streams are merged with a binary heap keyed
//! by (time, client index): memory is O(clients + live sessions), never O(requests).
//! Open-loop sessions are stamped one round ahead, not all rounds at once, so a session of
//! billions of rounds costs no more memory than one of two.
//!
//! `num_requests` (N) follows the reference simulator's definition:
//!
//! * Every rate-based client's arrivals, with every round of every session stamped open-loop
//!   (`arrival_{r+1} = arrival_r + think + output_r` µs), form one stream ordered by (time,
//!   client, session, round); only its first N entries are kept. A client starts no new session
//!   once its sessions hold 2N rounds (the reference's per-client generation cap).
//! * Kept single requests and open-loop rounds are sent as stamped. A closed-loop session whose
//!   round 0 is kept sends its later rounds on completion (`completion + think`) until
//!   `max_rounds`, the horizon, a timeout or a drop: N does not cap them, so 500 requests of
//!   5-round sessions make about 200 whole sessions, 1000 requests.
//! * Virtual users (`concurrency`) send at most N requests in all, first requests included;
//!   each user's next request leaves `think` after its previous response.
//!
//! The stamps of closed-loop rounds are only counted ("shadows"), never sent; their output
//! lengths come from a stream of their own, so they move nothing else.
//!
//! Arrivals end at [`MAX_TIME_US`] (100 years): a client whose next arrival falls at or after
//! it has no more requests, exactly as if the horizon were there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::RngExt;

use crate::error::{Result, WorkloadError};
use crate::limits::{MAX_REQUEST_TOKENS, MAX_TIME_US};
use crate::request::{Outcome, RequestMeta, RequestSource, RequestSpec, SessionRef};
use crate::rng::{StreamRng, seeded, splitmix64, stream, stream_seed};
use crate::sessions::SessionManager;
use crate::spec::WorkloadSpec;
use crate::think::ThinkTime;
use crate::tokens::{Segment, TokenSeq};
use crate::validate::{ClientPlan, DEFAULT_SEED, FirstArrival, MultiTurnPlan, compile_clients};

/// Command-line values that replace the spec's own (each only when given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub seed: Option<u64>,
    /// Cap on the total number of requests (all rounds of all sessions count).
    pub num_requests: Option<u64>,
    /// No request arrives at or after this time (µs).
    pub horizon_us: Option<u64>,
    /// Per-request timeout for every client: `Some(None)` disables timeouts,
    /// `Some(Some(us))` sets them, `None` keeps the spec's.
    pub timeout_us: Option<Option<u64>>,
}

/// Effective run limits after overrides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub seed: u64,
    pub cap: Option<u64>,
    pub horizon: Option<u64>,
}

impl Limits {
    pub fn resolve(spec: &WorkloadSpec, ov: &Overrides) -> Limits {
        Limits {
            seed: ov.seed.unwrap_or_else(|| spec.seed.map_or(DEFAULT_SEED, |s| s as u64)),
            cap: ov.num_requests.or(spec.num_requests.filter(|&n| n > 0).map(|n| n as u64)),
            horizon: ov.horizon_us.or(spec.horizon.filter(|&h| h > 0).map(|h| h as u64)),
        }
    }
}

/// How a spec is turned into requests where BLIS and the reference simulator differ (only the
/// `inference_perf` section today; client-based specs generate the same way under both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GenerationSemantics {
    /// This project's: `inference_perf` as the measured runs behaved — open-loop staged Poisson
    /// arrivals of exactly `round(rate·duration)` requests per stage, one fixed question per
    /// user (see [`crate::inference_perf`]).
    #[default]
    Blis,
    /// The reference simulator's `ExpandInferencePerfSpec`: one client per (stage, group,
    /// user); with `enable_multi_turn_chat` each client is one closed-loop session of
    /// `floor(rate·duration)/(G·U)` rounds, starting one Poisson gap into its stage and sending
    /// its next round `G·U/rate` s after the previous one completes (stage windows do not stop
    /// follow-ups); every request a fresh question behind its group's system prompt.
    Reference,
}

impl GenerationSemantics {
    /// Accepted names, for error messages.
    pub const NAMES: &'static str = "blis, reference";

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "blis" => Some(GenerationSemantics::Blis),
            "reference" => Some(GenerationSemantics::Reference),
            _ => None,
        }
    }
}

/// Builds the request source of a (validated or not) spec under BLIS's semantics.
pub fn build_source(spec: &WorkloadSpec, overrides: &Overrides) -> Result<Box<dyn RequestSource + Send>> {
    build_source_with(spec, overrides, GenerationSemantics::Blis)
}

/// [`build_source`] under the given generation semantics.
pub fn build_source_with(
    spec: &WorkloadSpec,
    overrides: &Overrides,
    semantics: GenerationSemantics,
) -> Result<Box<dyn RequestSource + Send>> {
    crate::validate::validate(spec)?;
    let limits = Limits::resolve(spec, overrides);
    if let Some(ip) = &spec.inference_perf {
        let timeout = overrides.timeout_us.flatten();
        if semantics == GenerationSemantics::Reference {
            let plans = crate::inference_perf::reference_plans(ip, limits.seed, overrides.timeout_us)?;
            let source = SpecSource::from_plans(plans, limits);
            return Ok(Box::new(OutputsNeverReplayed(source)));
        }
        let plan = crate::inference_perf::InferencePerfPlan::compile(ip)?;
        let source = crate::inference_perf::InferencePerfSource::new(plan, limits, timeout);
        return Ok(Box::new(OutputsNeverReplayed(source)));
    }
    Ok(Box::new(SpecSource::new(spec, overrides)?))
}

/// A source whose prompts never contain a generated response: inference-perf prompts are a
/// system prompt plus a question (`enable_multi_turn_chat` is a no-op). Declares every
/// request's output not reusable (see [`RequestSource::output_reusable`]); if that source ever
/// replays responses into prompts, drop this wrapper.
struct OutputsNeverReplayed<S>(S);

impl<S: RequestSource> RequestSource for OutputsNeverReplayed<S> {
    fn next_request(&mut self) -> Option<RequestSpec> {
        self.0.next_request()
    }

    fn on_request_done(
        &mut self,
        request: &RequestSpec,
        at_us: u64,
        outcome: Outcome,
    ) -> Option<RequestSpec> {
        self.0.on_request_done(request, at_us, outcome)
    }

    fn follows_up(&self) -> bool {
        self.0.follows_up()
    }

    fn expected_requests(&self) -> Option<u64> {
        self.0.expected_requests()
    }

    fn output_reusable(&self, _request: &RequestSpec) -> bool {
        false
    }
}

struct ClientState {
    plan: ClientPlan,
    arrivals: StreamRng,
    lengths: StreamRng,
    tokens: StreamRng,
    /// Reason ratios (drawn only by clients that have them).
    extra: StreamRng,
    /// Next round-0 arrival (valid while the client is in the heap).
    next_us: u64,
    sessions_started: u64,
    /// Rounds of the sessions this client started (for the per-client cap of 2N).
    rounds_planned: u64,
    /// [`ClientPlan::normalized`]: arrivals drawn so far, and the last order statistic in [0, 1).
    normalized_sent: u64,
    normalized_u: f64,
    /// [`ClientPlan::time_varying`]: where the client is in its windows.
    tv: TvCursor,
    /// End (exclusive) of the window the last arrival fell in; open-loop rounds of a session
    /// started then stop there (time-varying clients only).
    session_until_us: u64,
    /// Virtual users: how many have sent their first request.
    users_started: u32,
}

/// Position in the windows of a time-varying client: window `win`, whose `n` gaps (`k` drawn)
/// are rescaled by `scale` to span `[start, end)`; `acc` is the rescaled sum so far and `after`
/// the arrival stream once every gap of the window is drawn.
#[derive(Default)]
struct TvCursor {
    win: usize,
    open: bool,
    n: u64,
    k: u64,
    scale: f64,
    acc: u64,
    start: u64,
    end: u64,
    after: Option<StreamRng>,
}

/// Arrivals a client may discard before its next activity window before the process skips
/// ahead instead (2^20: ~10 ms of drawing).
const MAX_DISCARDED_ARRIVALS: f64 = 1_048_576.0;

/// Moves `c` to its next arrival inside its windows and before the horizon; false when the
/// client has no more arrivals. Arrivals between windows are drawn and discarded, unless the
/// gap to the next window would discard more than [`MAX_DISCARDED_ARRIVALS`] of them: then
/// the process restarts at the window's start (for Poisson arrivals the same distribution;
/// for others a renewal at the start), so a window 90 years away at 10^6 req/s costs nothing.
/// `session_cap`: the per-client cap on the rounds of started sessions (2N).
fn advance(horizon: Option<u64>, session_cap: Option<u64>, c: &mut ClientState) -> bool {
    if let Some(users) = c.plan.users {
        if c.users_started >= users.users {
            return false;
        }
        // User u starts at u·T/C, T the typical think time (the reference's stagger).
        let u = u64::from(c.users_started);
        let t = users.think.typical_us();
        c.next_us = if users.users > 1 {
            (u128::from(u) * u128::from(t) / u128::from(users.users)) as u64
        } else {
            0
        };
        c.users_started += 1;
        return horizon.is_none_or(|h| c.next_us < h);
    }
    let multi_turn = c.plan.multi_turn;
    if let (Some(cap), Some(mt)) = (session_cap, multi_turn)
        && !mt.single_session
        && c.rounds_planned >= cap
    {
        return false;
    }
    if !c.plan.time_varying.is_empty() {
        return advance_time_varying(horizon, c);
    }
    if multi_turn.is_some_and(|m| m.single_session) && c.sessions_started > 0 {
        return false;
    }
    if let Some((count, duration_us)) = c.plan.normalized {
        if c.normalized_sent >= count {
            return false;
        }
        c.normalized_sent += 1;
        // n exponential gaps scaled to sum to d: the first n−1 partial sums are the order
        // statistics of n−1 uniforms on (0, d), drawn here in sequence; the n-th ends at d.
        let left = count - c.normalized_sent;
        let at = if left == 0 {
            duration_us
        } else {
            let v: f64 = 1.0 - c.arrivals.random::<f64>(); // (0, 1]
            c.normalized_u += (1.0 - c.normalized_u) * (1.0 - v.powf(1.0 / left as f64));
            (c.normalized_u * duration_us as f64) as u64
        };
        // Every gap is at least 1 µs, as the reference floors them.
        c.next_us = at.max(c.next_us + 1);
        return horizon.is_none_or(|h| c.next_us < h);
    }
    if c.plan.first_arrival == FirstArrival::WindowStartPlusGap && c.sessions_started == 0 {
        let start = c.plan.windows.first().map_or(0, |w| w.0);
        c.next_us = start.saturating_add(c.plan.arrival.next_iat_us(&mut c.arrivals));
        return horizon.is_none_or(|h| c.next_us < h)
            && c.next_us != u64::MAX
            && (c.plan.windows.is_empty()
                || c.plan.windows.iter().any(|&(s, e)| (s..e).contains(&c.next_us)));
    }
    loop {
        c.next_us = c.next_us.saturating_add(c.plan.arrival.next_iat_us(&mut c.arrivals));
        if horizon.is_some_and(|h| c.next_us >= h) || c.next_us >= MAX_TIME_US {
            return false;
        }
        if c.plan.windows.is_empty() {
            return true;
        }
        if c.plan.windows.iter().any(|&(s, e)| (s..e).contains(&c.next_us)) {
            return true;
        }
        if c.plan.windows.iter().all(|&(_, e)| c.next_us >= e) {
            return false;
        }
        let now = c.next_us;
        if let Some(start) = c.plan.windows.iter().map(|&(s, _)| s).filter(|&s| s > now).min()
            && (start - now) as f64 > MAX_DISCARDED_ARRIVALS * c.plan.arrival.mean_us()
        {
            c.next_us = start;
        }
    }
}

/// [`advance`] of a time-varying client: in window `[s, e)` (e capped at the horizon) at rate
/// r, `n = ceil(r·(e − s))` gaps are drawn, scaled by `(e − s) / Σ gaps` (truncated to whole
/// µs, the last gap taking the remainder) and added to `s`; arrivals at or after `e` are dropped,
/// so the n-th never arrives. A single-session client starts one session per window, at the
/// first arrival.
fn advance_time_varying(horizon: Option<u64>, c: &mut ClientState) -> bool {
    let single = c.plan.multi_turn.is_some_and(|m| m.single_session);
    loop {
        let cur = &mut c.tv;
        if !cur.open {
            let Some(w) = c.plan.time_varying.get(cur.win) else { return false };
            let end = horizon.map_or(w.end_us, |h| w.end_us.min(h));
            if w.start_us >= end || w.rate <= 0.0 {
                cur.win += 1;
                continue;
            }
            let n = (w.rate * (end - w.start_us) as f64 / 1e6).ceil();
            if n.is_nan() || n < 1.0 {
                cur.win += 1;
                continue;
            }
            // At most 2^40 gaps per window (far beyond any simulable run).
            let n = n.min((1u64 << 40) as f64) as u64;
            let mut probe = c.arrivals.clone();
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.saturating_add(w.arrival.next_iat_us(&mut probe));
            }
            *cur = TvCursor {
                win: cur.win,
                open: true,
                n,
                k: 0,
                scale: if sum == 0 { 1.0 } else { (end - w.start_us) as f64 / sum as f64 },
                acc: 0,
                start: w.start_us,
                end,
                after: Some(probe),
            };
        }
        let cur = &mut c.tv;
        let w = &c.plan.time_varying[cur.win];
        let close = |cur: &mut TvCursor, arrivals: &mut StreamRng| {
            if let Some(after) = cur.after.take() {
                *arrivals = after;
            }
            cur.open = false;
            cur.win += 1;
        };
        if cur.k >= cur.n {
            close(cur, &mut c.arrivals);
            continue;
        }
        let raw = w.arrival.next_iat_us(&mut c.arrivals);
        cur.k += 1;
        let gap = if cur.k == cur.n {
            (cur.end - cur.start).saturating_sub(cur.acc)
        } else {
            (raw as f64 * cur.scale) as u64
        };
        cur.acc = cur.acc.saturating_add(gap);
        let t = cur.start.saturating_add(cur.acc);
        if t >= cur.end {
            close(cur, &mut c.arrivals);
            continue;
        }
        c.next_us = t;
        c.session_until_us = cur.end;
        if single {
            close(cur, &mut c.arrivals);
        }
        return true;
    }
}

/// A stamped follow-up round: sent (an open-loop round) or only counted (a closed-loop round's
/// open-loop stamp), ordered by (arrival, client, session, round).
struct Pending {
    at_us: u64,
    client: usize,
    session: u64,
    round: u32,
    /// Rounds of this session stamped at or after this time are not stamped at all.
    until_us: u64,
    body: Stamp,
}

enum Stamp {
    Real(Box<RequestSpec>),
    /// Output length of the counted round (its next stamp follows it).
    Shadow {
        output_tokens: u32,
    },
}

impl Pending {
    fn key(&self) -> (u64, usize, u64, u32) {
        (self.at_us, self.client, self.session, self.round)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Lazy request source of a client-based spec (see the module docs).
pub struct SpecSource {
    clients: Vec<ClientState>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    /// The next stamp of every session that has one.
    pending: BinaryHeap<Reverse<Pending>>,
    sessions: SessionManager,
    next_id: u64,
    /// Requests sent (all rounds, all users).
    created: u64,
    /// Entries of the stamped stream kept so far (see the module docs).
    stamped: u64,
    cap: Option<u64>,
    horizon: Option<u64>,
    /// Seed of the streams of shadow stamps' output lengths.
    shadow_seed: u64,
    /// Total requests when known ([`RequestSource::expected_requests`]).
    expected: Option<u64>,
    /// Largest `max_rounds` of the clients whose sessions accumulate context (0: none do):
    /// only a round before the last of such a session has its response replayed.
    accumulate_rounds: u32,
}

impl SpecSource {
    pub fn new(spec: &WorkloadSpec, overrides: &Overrides) -> Result<Self> {
        let limits = Limits::resolve(spec, overrides);
        if limits.cap.is_none() && limits.horizon.is_none() {
            return Err(WorkloadError::at(
                "num_requests",
                "the workload is unbounded: set num_requests or horizon (or --num-requests / --horizon)",
            ));
        }
        let mut plans = compile_clients(spec, limits.seed)?;
        if let Some(Some(t)) = overrides.timeout_us
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
        if let Some(t) = overrides.timeout_us {
            for p in &mut plans {
                p.timeout_us = t;
            }
        }
        Ok(Self::start(plans, limits))
    }

    /// A source over already compiled plans (the reference's inference-perf expansion).
    pub(crate) fn from_plans(plans: Vec<ClientPlan>, limits: Limits) -> Self {
        Self::start(plans, limits)
    }

    fn start(plans: Vec<ClientPlan>, limits: Limits) -> Self {
        let seed = limits.seed;
        let open_ended =
            plans.iter().any(|p| p.users.is_none() && p.multi_turn.is_some_and(|m| m.closed_loop));
        let mut source = SpecSource {
            clients: Vec::with_capacity(plans.len()),
            heap: BinaryHeap::with_capacity(plans.len()),
            pending: BinaryHeap::new(),
            sessions: SessionManager::new(seed),
            next_id: 0,
            created: 0,
            stamped: 0,
            cap: limits.cap,
            // Closed-loop sessions send an unknown number of rounds.
            expected: if open_ended { None } else { limits.cap },
            horizon: limits.horizon,
            shadow_seed: stream_seed(seed, "session-stamps"),
            accumulate_rounds: plans
                .iter()
                .filter_map(|p| p.multi_turn.filter(|m| m.accumulate).map(|m| m.max_rounds))
                .max()
                .unwrap_or(0),
        };
        let session_cap = source.session_cap();
        for (i, plan) in plans.into_iter().enumerate() {
            let mut c = ClientState {
                plan,
                arrivals: stream(seed, &format!("client/{i}/arrivals")),
                lengths: stream(seed, &format!("client/{i}/lengths")),
                tokens: stream(seed, &format!("client/{i}/tokens")),
                extra: stream(seed, &format!("client/{i}/extra")),
                next_us: 0,
                sessions_started: 0,
                rounds_planned: 0,
                normalized_sent: 0,
                normalized_u: 0.0,
                tv: TvCursor::default(),
                session_until_us: u64::MAX,
                users_started: 0,
            };
            if advance(source.horizon, session_cap, &mut c) {
                source.heap.push(Reverse((c.next_us, i)));
            }
            source.clients.push(c);
        }
        source
    }

    /// The reference's per-client cap on the rounds of a client's sessions (2N).
    fn session_cap(&self) -> Option<u64> {
        self.cap.map(|n| n.saturating_mul(2))
    }

    #[cfg(test)]
    pub(crate) fn live_sessions(&self) -> usize {
        self.sessions.live_sessions()
    }

    /// Whether the stamped stream may still keep an entry.
    fn stamps_left(&self) -> bool {
        self.cap.is_none_or(|cap| self.stamped < cap)
    }

    /// Whether virtual users may still send.
    fn users_budget_left(&self) -> bool {
        self.cap.is_none_or(|cap| self.created < cap)
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.created += 1;
        id
    }

    /// A new round-0 (or single, or a user's first) request of client `i` arriving at `arrival_us`.
    fn fresh_request(&mut self, i: usize, arrival_us: u64) -> RequestSpec {
        let c = &mut self.clients[i];
        let p = &c.plan;
        let prefix_len = p.prefix.as_ref().map_or(0, |g| g.len);
        let window = p.time_varying.get(c.tv.win.saturating_sub(usize::from(!c.tv.open)));
        let (input_dist, output_dist) = match window {
            Some(w) => (&w.input, &w.output),
            None => (&p.input, &p.output),
        };
        let mut meta = None;
        let in_len = match &p.multimodal {
            Some(mm) => {
                let [text, image, audio, video] = mm.sample(&mut c.lengths);
                let own = (u64::from(text) + u64::from(image) + u64::from(audio) + u64::from(video)).max(1);
                meta = Some(RequestMeta {
                    text_tokens: text,
                    image_tokens: image,
                    audio_tokens: audio,
                    video_tokens: video,
                    reason_ratio: 0.0,
                });
                own.min(u64::from(MAX_REQUEST_TOKENS - prefix_len)) as u32
            }
            // Validation keeps the prefix below the limit; the draw fills at most the rest.
            None => input_dist.sample(&mut c.lengths).min(MAX_REQUEST_TOKENS - prefix_len),
        };
        let output_tokens = output_dist.sample(&mut c.lengths);
        if let Some(ratio) = &p.reason_ratio {
            let m = meta.get_or_insert(RequestMeta { text_tokens: in_len, ..RequestMeta::default() });
            m.reason_ratio = ratio.sample_fraction(&mut c.extra);
        }
        let question: u64 = c.tokens.random();
        let output_source: u64 = c.tokens.random();
        let mut input = TokenSeq::new();
        if let Some(prefix) = &p.prefix {
            input.push(Segment { source: prefix.source, start: 0, len: prefix.len });
        }
        input.push(Segment { source: question, start: 0, len: in_len });
        let mut req = RequestSpec {
            id: 0,
            arrival_us,
            input,
            output_tokens,
            max_output_tokens: output_tokens,
            output_source,
            slo_class: p.slo_class,
            slo_class_named: p.slo_named,
            tenant: p.tenant.clone(),
            client: Some(p.id.clone()),
            model: p.model.clone(),
            adapter: p.adapter.clone(),
            deadline_us: p.timeout_us.map(|t| arrival_us.saturating_add(t)),
            slo_target_us: p.slo_target_us,
            session: None,
            prefix_group: p.prefix.as_ref().map(|g| g.group.clone()),
            meta: meta.map(Box::new),
        };
        if let Some(mt) = p.multi_turn.or(p.users.map(|_| user_turns())) {
            c.sessions_started += 1;
            c.rounds_planned = c.rounds_planned.saturating_add(u64::from(mt.max_rounds));
            let sid = self.sessions.start(i);
            req.session = Some(SessionRef { session_id: sid, round: 0 });
        }
        req
    }

    /// Stamps the round after (`session`, `round`), stamped at `at_us` with `output_tokens`:
    /// an open-loop round is built from `prev` and will be sent, a closed-loop round is only
    /// counted. Nothing when the session has no more rounds or the next would fall at or after
    /// `until_us`, the horizon, the end of the client's last window or of simulated time.
    #[allow(clippy::too_many_arguments)]
    fn stamp_next(
        &mut self,
        i: usize,
        session: u64,
        round: u32,
        at_us: u64,
        output_tokens: u32,
        until_us: u64,
        prev: Option<&RequestSpec>,
    ) {
        let Some(mt) = self.clients[i].plan.multi_turn else { return };
        let end_open_loop = |s: &mut Self| {
            if !mt.closed_loop {
                s.sessions.end(session);
            }
        };
        if round + 1 >= mt.max_rounds {
            return end_open_loop(self);
        }
        let at = at_us.saturating_add(mt.think_time_us).saturating_add(u64::from(output_tokens));
        let last_window_end = self.clients[i].plan.windows.iter().map(|w| w.1).max().unwrap_or(u64::MAX);
        if at >= until_us
            || at >= last_window_end
            || self.horizon.is_some_and(|h| at >= h)
            || at >= MAX_TIME_US
        {
            return end_open_loop(self);
        }
        let body = if mt.closed_loop {
            // Only needed while stamps are counted against a cap.
            if self.cap.is_none() {
                return;
            }
            let mut rng =
                seeded(self.shadow_seed ^ splitmix64(session) ^ u64::from(round + 1).rotate_left(32));
            Stamp::Shadow { output_tokens: self.clients[i].plan.output.sample(&mut rng) }
        } else {
            let Some(prev) = prev else { return };
            let plan = &self.clients[i].plan;
            match self.sessions.next_round(plan, &mt, prev, at) {
                Some(mut next) => {
                    self.sample_ratio(i, &mut next);
                    Stamp::Real(Box::new(next))
                }
                None => return,
            }
        };
        self.pending.push(Reverse(Pending {
            at_us: at,
            client: i,
            session,
            round: round + 1,
            until_us,
            body,
        }));
    }

    /// Draws a follow-up round's reason ratio when its client has one.
    fn sample_ratio(&mut self, i: usize, req: &mut RequestSpec) {
        let c = &mut self.clients[i];
        if let Some(ratio) = &c.plan.reason_ratio {
            let r = ratio.sample_fraction(&mut c.extra);
            let len = req.input.len();
            req.meta
                .get_or_insert_with(|| Box::new(RequestMeta { text_tokens: len, ..RequestMeta::default() }))
                .reason_ratio = r;
        }
    }

    /// Whether a stamp at `t` of client `i` counts (it lies in one of the client's windows;
    /// time-varying clients' rounds are bounded by their window end instead).
    fn in_windows(&self, i: usize, t: u64) -> bool {
        let p = &self.clients[i].plan;
        !p.time_varying.is_empty()
            || p.windows.is_empty()
            || p.windows.iter().any(|&(s, e)| (s..e).contains(&t))
    }
}

/// The session shape of a virtual user: endless closed-loop rounds of fresh turns.
fn user_turns() -> MultiTurnPlan {
    MultiTurnPlan {
        max_rounds: u32::MAX,
        think_time_us: 0,
        think: ThinkTime::default(),
        accumulate: false,
        single_session: true,
        closed_loop: true,
    }
}

impl RequestSource for SpecSource {
    fn next_request(&mut self) -> Option<RequestSpec> {
        loop {
            let fresh = self.heap.peek().map(|Reverse(k)| *k);
            let pending = self.pending.peek().map(|Reverse(p)| (p.at_us, p.client));
            let take_pending = match (fresh, pending) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                // At equal (time, client) the older session's stamp comes first.
                (Some(f), Some(p)) => p <= f,
            };
            if take_pending {
                let Reverse(p) = self.pending.pop()?;
                if !self.stamps_left() {
                    if let Stamp::Real(_) = p.body {
                        self.sessions.end(p.session);
                    }
                    continue;
                }
                let counts = self.in_windows(p.client, p.at_us);
                self.stamped += u64::from(counts);
                match p.body {
                    Stamp::Shadow { output_tokens } => {
                        self.stamp_next(
                            p.client,
                            p.session,
                            p.round,
                            p.at_us,
                            output_tokens,
                            p.until_us,
                            None,
                        );
                    }
                    Stamp::Real(req) => {
                        let mut req = *req;
                        self.stamp_next(
                            p.client,
                            p.session,
                            p.round,
                            p.at_us,
                            req.output_tokens,
                            p.until_us,
                            Some(&req),
                        );
                        if counts {
                            req.id = self.take_id();
                            return Some(req);
                        }
                    }
                }
                continue;
            }
            let Reverse((t, i)) = self.heap.pop()?;
            let users = self.clients[i].plan.users.is_some();
            if users {
                if !self.users_budget_left() {
                    continue;
                }
            } else if !self.stamps_left() {
                continue;
            } else {
                self.stamped += 1;
            }
            let until = self.clients[i].session_until_us;
            let mut req = self.fresh_request(i, t);
            req.id = self.take_id();
            if let Some(s) = req.session
                && !users
            {
                self.stamp_next(i, s.session_id, 0, t, req.output_tokens, until, Some(&req));
            }
            let session_cap = self.session_cap();
            if advance(self.horizon, session_cap, &mut self.clients[i]) {
                self.heap.push(Reverse((self.clients[i].next_us, i)));
            }
            return Some(req);
        }
    }

    fn on_request_done(
        &mut self,
        request: &RequestSpec,
        at_us: u64,
        outcome: Outcome,
    ) -> Option<RequestSpec> {
        let sref = request.session?;
        let i = self.sessions.client_of(sref.session_id)?;
        let (mt, think) = match (self.clients[i].plan.users, self.clients[i].plan.multi_turn) {
            (Some(u), _) => (user_turns(), u.think),
            (None, Some(mt)) if mt.closed_loop => (mt, mt.think),
            _ => return None,
        };
        // A failed round ends its session (a virtual user stops, as in the reference).
        if outcome != Outcome::Completed {
            self.sessions.end(sref.session_id);
            return None;
        }
        let users = self.clients[i].plan.users.is_some();
        if users && !self.users_budget_left() {
            self.sessions.end(sref.session_id);
            return None;
        }
        let think_us = match think {
            ThinkTime::Constant { us } => us,
            _ => self.sessions.draw_think(sref.session_id, &think)?,
        };
        let arrival = at_us.saturating_add(think_us);
        if self.horizon.is_some_and(|h| arrival >= h) || arrival >= MAX_TIME_US {
            self.sessions.end(sref.session_id);
            return None;
        }
        let plan = &self.clients[i].plan;
        let mut next = self.sessions.next_round(plan, &mt, request, arrival)?;
        self.sample_ratio(i, &mut next);
        next.id = self.take_id();
        Some(next)
    }

    fn expected_requests(&self) -> Option<u64> {
        self.expected
    }

    fn follows_up(&self) -> bool {
        self.clients
            .iter()
            .any(|c| c.plan.users.is_some() || c.plan.multi_turn.is_some_and(|mt| mt.closed_loop))
    }

    fn output_reusable(&self, request: &RequestSpec) -> bool {
        request.session.is_some_and(|s| s.round + 1 < self.accumulate_rounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;

    const SPEC: &str = r#"
version: "2"
seed: 11
aggregate_rate: 40
num_requests: 4000
clients:
  - id: chat
    tenant_id: t1
    rate_fraction: 3
    timeout: 2000000
    slo_target_us: 150000
    prefix_group: sys
    prefix_length: 80
    input_distribution: {type: gaussian, params: {mean: 300, std_dev: 50, min: 10, max: 600}}
    output_distribution: {type: exponential, params: {mean: 100}}
  - id: batch
    rate_fraction: 1
    arrival: {process: gamma, cv: 3}
    input_distribution: {type: uniform, params: {min: 100, max: 200}}
    output_distribution: {type: constant, params: {value: 7}}
"#;

    fn collect(spec: &WorkloadSpec, ov: &Overrides) -> Vec<RequestSpec> {
        let mut src = build_source(spec, ov).unwrap();
        std::iter::from_fn(|| src.next_request()).collect()
    }

    fn spec() -> WorkloadSpec {
        parse_spec(SPEC, "t.yaml").unwrap()
    }

    #[test]
    fn same_seed_same_sequence_other_seed_differs() {
        let a = collect(&spec(), &Overrides::default());
        let b = collect(&spec(), &Overrides::default());
        assert_eq!(a.len(), 4000);
        assert_eq!(a, b);
        let c = collect(&spec(), &Overrides { seed: Some(12), ..Overrides::default() });
        assert_ne!(
            a.iter().map(|r| r.arrival_us).collect::<Vec<_>>(),
            c.iter().map(|r| r.arrival_us).collect::<Vec<_>>()
        );
    }

    #[test]
    fn ids_in_arrival_order_and_fields_set() {
        let reqs = collect(&spec(), &Overrides::default());
        for (i, w) in reqs.windows(2).enumerate() {
            assert_eq!(w[0].id, i as u64);
            assert!(w[0].arrival_us <= w[1].arrival_us);
        }
        let chat: Vec<_> = reqs.iter().filter(|r| r.client.as_deref() == Some("chat")).collect();
        let batch: Vec<_> = reqs.iter().filter(|r| r.client.as_deref() == Some("batch")).collect();
        // Rate fractions 3:1.
        let share = chat.len() as f64 / reqs.len() as f64;
        assert!((share - 0.75).abs() < 0.05, "chat share {share}");
        for r in &chat {
            assert_eq!(r.deadline_us, Some(r.arrival_us + 2_000_000));
            assert_eq!(r.slo_target_us, Some(150_000));
            assert_eq!(r.tenant.as_deref(), Some("t1"));
            assert_eq!(r.prefix_group.as_deref(), Some("sys"));
            assert_eq!(r.input.segments()[0], chat[0].input.segments()[0]);
            assert_eq!(r.input.segments()[0].len, 80);
            assert!(r.input.len() >= 90 && r.input.len() <= 680);
            assert_eq!(r.max_output_tokens, r.output_tokens);
        }
        for r in &batch {
            assert_eq!((r.deadline_us, r.slo_target_us), (None, None));
            assert_eq!(r.output_tokens, 7);
            assert!(!r.slo_class_named);
            assert_eq!(r.input.segments().len(), 1);
        }
        // Fresh question per request.
        assert_ne!(chat[0].input.segments()[1].source, chat[1].input.segments()[1].source);
    }

    #[test]
    fn changing_a_length_distribution_leaves_arrivals_unchanged() {
        let base = collect(&spec(), &Overrides::default());
        let mut other = spec();
        other.clients[0].output_distribution.as_mut().unwrap().params.insert("mean".into(), 900.0);
        other.clients[1].input_distribution.as_mut().unwrap().kind = "constant".into();
        other.clients[1].input_distribution.as_mut().unwrap().params = [("value".to_string(), 5.0)].into();
        let changed = collect(&other, &Overrides::default());
        let key = |r: &RequestSpec| (r.arrival_us, r.client.clone());
        assert_eq!(base.iter().map(key).collect::<Vec<_>>(), changed.iter().map(key).collect::<Vec<_>>());
        // Client 0's input lengths are untouched too (its own length stream, drawn in order).
        let lens = |v: &[RequestSpec]| {
            v.iter()
                .filter(|r| r.client.as_deref() == Some("chat"))
                .map(|r| r.input.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(lens(&base), lens(&changed));
        assert_ne!(
            base.iter().map(|r| r.output_tokens).sum::<u32>(),
            changed.iter().map(|r| r.output_tokens).sum::<u32>()
        );
    }

    #[test]
    fn horizon_and_cap_overrides() {
        let reqs = collect(
            &spec(),
            &Overrides { horizon_us: Some(5_000_000), num_requests: Some(1_000_000), ..Overrides::default() },
        );
        assert!(reqs.iter().all(|r| r.arrival_us < 5_000_000));
        let n = reqs.len() as f64;
        assert!((n / 200.0 - 1.0).abs() < 0.3, "{n} requests in 5 s at 40 req/s");
        let reqs = collect(
            &spec(),
            &Overrides { num_requests: Some(10), timeout_us: Some(None), ..Overrides::default() },
        );
        assert_eq!(reqs.len(), 10);
        assert!(reqs.iter().all(|r| r.deadline_us.is_none()));
        let mut unbounded = spec();
        unbounded.num_requests = None;
        let e = build_source(&unbounded, &Overrides::default()).err().unwrap();
        assert!(e.to_string().contains("unbounded"), "{e}");
    }

    #[test]
    fn poisson_mean_rate_within_three_percent() {
        let p = crate::presets::SyntheticParams { rate: 25.0, num_requests: 50_000, ..Default::default() };
        let spec = crate::presets::preset_spec("chatbot", &p).unwrap();
        let reqs = collect(&spec, &Overrides::default());
        let rate = reqs.len() as f64 / (reqs.last().unwrap().arrival_us as f64 / 1e6);
        assert!((rate / 25.0 - 1.0).abs() < 0.03, "rate {rate}");
    }

    #[test]
    fn lifecycle_windows_gate_arrivals() {
        let mut s = spec();
        s.clients[1].lifecycle = Some(crate::spec::LifecycleSpec {
            windows: vec![crate::spec::WindowSpec {
                start_us: 10_000_000,
                end_us: 20_000_000,
                ..Default::default()
            }],
        });
        let reqs = collect(&s, &Overrides::default());
        let batch: Vec<_> = reqs.iter().filter(|r| r.client.as_deref() == Some("batch")).collect();
        assert!(!batch.is_empty());
        assert!(batch.iter().all(|r| (10_000_000..20_000_000).contains(&r.arrival_us)));
    }

    #[test]
    fn a_far_window_at_a_high_rate_does_not_draw_every_arrival_before_it() {
        let mut s = spec();
        s.aggregate_rate = Some(1e6);
        s.clients.remove(0);
        s.clients[0].lifecycle = Some(crate::spec::LifecycleSpec {
            windows: vec![crate::spec::WindowSpec {
                start_us: 3_000_000_000_000_000,
                end_us: 3_000_000_001_000_000,
                ..Default::default()
            }],
        });
        let t = std::time::Instant::now();
        let reqs = collect(&s, &Overrides { num_requests: Some(1000), ..Overrides::default() });
        assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
        assert_eq!(reqs.len(), 1000);
        assert!(reqs.iter().all(|r| (3_000_000_000_000_000..3_000_000_001_000_000).contains(&r.arrival_us)));
    }
}

#[cfg(test)]
mod perf {
    use super::*;

    /// `cargo test --release -p blis-workload -- --ignored --nocapture throughput`
    #[test]
    #[ignore]
    fn throughput() {
        let p = crate::presets::SyntheticParams {
            rate: 1000.0,
            num_requests: 2_000_000,
            prefix_tokens: 64,
            ..Default::default()
        };
        let spec = crate::presets::preset_spec("chatbot", &p).unwrap();
        let t = std::time::Instant::now();
        let mut src = build_source(&spec, &Overrides::default()).unwrap();
        let mut n = 0u64;
        let mut tokens = 0u64;
        while let Some(r) = src.next_request() {
            n += 1;
            tokens += u64::from(r.input.len());
        }
        let dt = t.elapsed().as_secs_f64();
        eprintln!("{n} requests ({tokens} tokens) in {dt:.3} s = {:.1} M req/s", n as f64 / dt / 1e6);
    }
}

/// The spec keys the reference defines and this module generates: sessions against
/// `num_requests`, virtual users, cohorts, per-phase rates, time-varying windows, media.
#[cfg(test)]
mod reference_semantics {
    use std::cmp::Reverse;
    use std::collections::{BTreeMap, BinaryHeap, HashMap};

    use super::*;
    use crate::spec::parse_spec;

    /// Runs `spec` against an infinitely parallel server: request r completes
    /// `1 ms + 100 µs × output` after it arrives. Returns every request in send order.
    pub(crate) fn drive(spec: &WorkloadSpec, ov: &Overrides) -> Vec<RequestSpec> {
        let mut src = build_source(spec, ov).unwrap();
        let mut done: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let mut by_id: HashMap<u64, RequestSpec> = HashMap::new();
        let mut sent = Vec::new();
        let mut next = src.next_request();
        loop {
            let arrival = next.as_ref().map(|r| r.arrival_us);
            let completion = done.peek().map(|Reverse((t, _))| *t);
            match (arrival, completion) {
                (None, None) => break,
                (Some(a), c) if c.is_none_or(|c| a <= c) => {
                    let r = next.take().unwrap();
                    done.push(Reverse((a + 1000 + 100 * u64::from(r.output_tokens), r.id)));
                    by_id.insert(r.id, r.clone());
                    sent.push(r);
                    next = src.next_request();
                }
                _ => {
                    let Reverse((t, id)) = done.pop().unwrap();
                    let r = by_id.remove(&id).unwrap();
                    if let Some(f) = src.on_request_done(&r, t, Outcome::Completed) {
                        assert!(f.arrival_us >= t);
                        done.push(Reverse((f.arrival_us + 1000 + 100 * u64::from(f.output_tokens), f.id)));
                        by_id.insert(f.id, f.clone());
                        sent.push(f);
                    }
                }
            }
        }
        sent
    }

    fn sessions(reqs: &[RequestSpec]) -> BTreeMap<u64, Vec<&RequestSpec>> {
        let mut out: BTreeMap<u64, Vec<&RequestSpec>> = BTreeMap::new();
        for r in reqs {
            if let Some(s) = r.session {
                out.entry(s.session_id).or_default().push(r);
            }
        }
        out
    }

    /// The complete example of the reference's workload-spec page.
    const COMPLETE_EXAMPLE: &str = r#"
version: "2"
seed: 42
category: reasoning
aggregate_rate: 500.0
num_requests: 500
clients:
  - id: "multi-turn-chat"
    tenant_id: "chat-users"
    slo_class: "standard"
    rate_fraction: 1.0
    streaming: true
    arrival: {process: poisson}
    input_distribution: {type: gaussian, params: {mean: 128, std_dev: 30, min: 32, max: 512}}
    output_distribution: {type: gaussian, params: {mean: 64, std_dev: 20, min: 16, max: 256}}
    reasoning:
      reason_ratio_distribution: {type: gaussian, params: {mean: 0, std_dev: 0, min: 0, max: 0}}
      multi_turn: {max_rounds: 5, think_time_us: 500000, context_growth: accumulate}
"#;

    #[test]
    fn num_requests_keeps_whole_sessions_as_the_reference_counts_them() {
        let spec = parse_spec(COMPLETE_EXAMPLE, "s.yaml").unwrap();
        let reqs = drive(&spec, &Overrides::default());
        let s = sessions(&reqs);
        // 2·500 rounds cap the client at 200 sessions, all started (2.5 ms apart) before any
        // round 1 (0.5 s later), so the first 500 stamps hold all 200 rounds 0.
        assert_eq!(s.len(), 200);
        assert!(s.values().all(|rounds| rounds.len() == 5), "every session completes");
        assert_eq!(reqs.len(), 1000);
        // Context accumulates: round r's prompt is round r−1's prompt + response + a new turn.
        for rounds in s.values() {
            for w in rounds.windows(2) {
                let (a, b) = (w[0], w[1]);
                assert_eq!(&b.input.segments()[..a.input.segments().len()], a.input.segments());
                assert!(b.input.len() >= a.input.len() + a.output_tokens + 32);
                assert!(b.arrival_us >= a.arrival_us + 1000 + 500_000);
            }
        }
        let input: u64 = reqs.iter().map(|r| u64::from(r.input.len())).sum();
        assert!((480_000..540_000).contains(&input), "{input} input tokens");
        assert!(reqs.iter().all(|r| r.meta.as_ref().is_some_and(|m| m.reason_ratio == 0.0)));
        // Open-loop: the first 500 stamps are sent as they are.
        let open = parse_spec(
            &COMPLETE_EXAMPLE.replace("    streaming: true\n", "    closed_loop: false\n"),
            "s.yaml",
        )
        .unwrap();
        let reqs = drive(&open, &Overrides::default());
        assert_eq!(reqs.len(), 500);
        assert_eq!(sessions(&reqs).len(), 200);
    }

    #[test]
    fn a_slow_session_stream_counts_later_rounds_too() {
        // Sessions 2 s apart with rounds 0.5 s apart: stamps interleave, so 100 requests keep
        // the sessions whose round 0 is among the first 100 stamps: 20 sessions (±1).
        let text = COMPLETE_EXAMPLE
            .replace("aggregate_rate: 500.0", "aggregate_rate: 0.5")
            .replace("num_requests: 500", "num_requests: 100");
        let reqs = drive(&parse_spec(&text, "s.yaml").unwrap(), &Overrides::default());
        let n = sessions(&reqs).len();
        assert!((19..=21).contains(&n), "{n} sessions");
        assert_eq!(reqs.len(), 5 * n);
    }

    const USERS: &str = r#"
num_requests: 300
clients:
  - id: users
    concurrency: 8
    think_time_us: 80000
    input_distribution: {type: constant, params: {value: 100}}
    output_distribution: {type: constant, params: {value: 20}}
"#;

    #[test]
    fn virtual_users_keep_their_requests_in_flight() {
        let spec = parse_spec(USERS, "s.yaml").unwrap();
        let reqs = drive(&spec, &Overrides::default());
        assert_eq!(reqs.len(), 300, "num_requests caps users and their follow-ups");
        let s = sessions(&reqs);
        assert_eq!(s.len(), 8);
        let starts: Vec<u64> = s.values().map(|r| r[0].arrival_us).collect();
        assert_eq!(starts, (0..8).map(|u| u * 10_000).collect::<Vec<_>>(), "staggered over one think time");
        // Each next request leaves one think time after the previous response (3 ms).
        for rounds in s.values() {
            for w in rounds.windows(2) {
                assert_eq!(w[1].arrival_us, w[0].arrival_us + 3_000 + 80_000);
                assert_eq!(w[1].input.len(), 100, "no context accumulates");
            }
        }
        assert!(reqs.iter().all(|r| r.deadline_us == Some(r.arrival_us + 300_000_000)));
        // With a think-time distribution.
        let dist = USERS.replace(
            "think_time_us: 80000",
            "think_time_dist: \"lognormal:mu=-2,sigma=0.5,min=50ms,max=1s\"",
        );
        let reqs = drive(&parse_spec(&dist, "s.yaml").unwrap(), &Overrides::default());
        assert_eq!(reqs.len(), 300);
        for rounds in sessions(&reqs).values() {
            for w in rounds.windows(2) {
                let think = w[1].arrival_us - w[0].arrival_us - 3_000;
                assert!((50_000..=1_000_000).contains(&think), "{think}");
            }
        }
        // A failed request ends its user.
        let mut src = build_source(&spec, &Overrides::default()).unwrap();
        let first = src.next_request().unwrap();
        assert!(src.on_request_done(&first, 10, Outcome::TimedOut).is_none());
        let e = parse_spec(
            &USERS.replace("    concurrency: 8\n", "    concurrency: 8\n    rate_fraction: 1\n"),
            "s.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("concurrency: and rate_fraction are mutually exclusive"), "{e}");
    }

    #[test]
    fn lifecycle_fractions_are_normalized_per_phase() {
        // The reference's two-phase example: 28 + 12 req/s, then 40 req/s.
        let text = r#"
aggregate_rate: 40
num_requests: 100000
horizon: 100000000
clients:
  - {id: summarization, rate_fraction: 0.7, lifecycle: {windows: [{start_us: 0, end_us: 50000000}]},
     input_distribution: {type: constant, params: {value: 10}}, output_distribution: {type: constant, params: {value: 10}}}
  - {id: qa, rate_fraction: 0.3, lifecycle: {windows: [{start_us: 0, end_us: 50000000}]},
     input_distribution: {type: constant, params: {value: 10}}, output_distribution: {type: constant, params: {value: 10}}}
  - {id: contentgen, rate_fraction: 1.0, lifecycle: {windows: [{start_us: 50000000, end_us: 100000000}]},
     input_distribution: {type: constant, params: {value: 10}}, output_distribution: {type: constant, params: {value: 10}}}
"#;
        let reqs = drive(&parse_spec(text, "s.yaml").unwrap(), &Overrides::default());
        let count = |id: &str| reqs.iter().filter(|r| r.client.as_deref() == Some(id)).count() as f64;
        assert!((count("summarization") / 50.0 / 28.0 - 1.0).abs() < 0.06, "{}", count("summarization"));
        assert!((count("qa") / 50.0 / 12.0 - 1.0).abs() < 0.08);
        assert!((count("contentgen") / 50.0 / 40.0 - 1.0).abs() < 0.05);
    }

    #[test]
    fn per_window_parameters_generate_window_by_window() {
        // Absolute mode: 20 req/s then 5 req/s with other lengths; ceil(r·d) gaps rescaled to
        // the window, the last landing on its end.
        let text = r#"
aggregate_rate: 0
horizon: 20000000
clients:
  - id: tv
    rate_fraction: 1
    arrival: {process: gamma, cv: 2}
    input_distribution: {type: constant, params: {value: 10}}
    output_distribution: {type: constant, params: {value: 10}}
    lifecycle:
      windows:
        - {start_us: 0, end_us: 10000000, trace_rate: 20}
        - {start_us: 10000000, end_us: 20000000, trace_rate: 5, input_distribution: {type: constant, params: {value: 77}}}
"#;
        let reqs = drive(&parse_spec(text, "s.yaml").unwrap(), &Overrides::default());
        let first: Vec<_> = reqs.iter().filter(|r| r.arrival_us < 10_000_000).collect();
        let second: Vec<_> = reqs.iter().filter(|r| r.arrival_us >= 10_000_000).collect();
        assert_eq!(first.len(), 199);
        assert_eq!(second.len(), 49);
        assert!(first.iter().all(|r| r.input.len() == 10) && second.iter().all(|r| r.input.len() == 77));
        let e = parse_spec(&text.replace(", trace_rate: 5", ""), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("windows[1].trace_rate: required when aggregate_rate is 0"), "{e}");
        let mixed = format!(
            "{text}  - {{id: plain, rate_fraction: 1, input_distribution: {{type: constant, params: {{value: 1}}}}, output_distribution: {{type: constant, params: {{value: 1}}}}}}\n"
        )
        .replace("aggregate_rate: 0", "aggregate_rate: 10");
        let e = parse_spec(&mixed, "s.yaml").unwrap_err().to_string();
        assert!(e.contains("clients[1].lifecycle: required: clients[0] has per-window parameters"), "{e}");
    }

    #[test]
    fn cohorts_expand_into_members() {
        let text = r#"
aggregate_rate: 200
num_requests: 20000
cohorts:
  - id: day
    population: 50
    slo_class: critical
    rate_fraction: 0.7
    prefix_group: ctx
    prefix_sharing: per_member
    prefix_length: 32
    input_distribution: {type: constant, params: {value: 10}}
    output_distribution: {type: constant, params: {value: 10}}
  - id: flash
    population: 20
    slo_class: standard
    rate_fraction: 0.3
    input_distribution: {type: constant, params: {value: 10}}
    output_distribution: {type: constant, params: {value: 10}}
    spike: {start_time_us: 10000000, duration_us: 5000000}
"#;
        let spec = parse_spec(text, "s.yaml").unwrap();
        let reqs = drive(&spec, &Overrides::default());
        let day: Vec<_> =
            reqs.iter().filter(|r| r.client.as_deref().is_some_and(|c| c.starts_with("day-"))).collect();
        let flash: Vec<_> =
            reqs.iter().filter(|r| r.client.as_deref().is_some_and(|c| c.starts_with("flash-"))).collect();
        let members: std::collections::HashSet<_> = day.iter().map(|r| r.client.clone()).collect();
        assert_eq!(members.len(), 50);
        assert!(flash.iter().all(|r| (10_000_000..15_000_000).contains(&r.arrival_us)));
        assert!(!flash.is_empty());
        // per_member: each member its own prefix group (and source).
        let groups: std::collections::HashSet<_> = day.iter().map(|r| r.input.segments()[0].source).collect();
        assert_eq!(groups.len(), 50);
        assert!(day.iter().all(|r| r.slo_class == crate::SloClass::Critical));
        // Both cohorts overlap during the spike: 140 req/s + 60 req/s; only "day" before it.
        let before = day.iter().filter(|r| r.arrival_us < 10_000_000).count() as f64;
        assert!((before / 10.0 / 140.0 - 1.0).abs() < 0.08, "{before}");
        let e =
            parse_spec(&text.replace("population: 20", "population: 0"), "s.yaml").unwrap_err().to_string();
        assert!(e.contains("cohorts[1].population: must be in 1..=100000, got 0"), "{e}");
    }

    #[test]
    fn diurnal_and_drain_windows() {
        let base = "aggregate_rate: 10\nhorizon: 86400000000\nnum_requests: 10000000\ncohorts:\n  - id: c\n    population: 2\n    rate_fraction: 1\n    input_distribution: {type: constant, params: {value: 1}}\n    output_distribution: {type: constant, params: {value: 1}}\n";
        let diurnal =
            parse_spec(&format!("{base}    diurnal: {{peak_hour: 14, peak_to_trough_ratio: 4}}\n"), "s.yaml")
                .unwrap();
        let plans = crate::validate::compile_clients(&diurnal, 1).unwrap();
        assert_eq!(plans[0].windows.len(), 24);
        let hour = |h: usize| (plans[0].windows[h].1 - plans[0].windows[h].0) as f64 / 3.6e9;
        assert_eq!(hour(14), 1.0);
        assert!((hour(2) - 0.25).abs() < 1e-6, "{}", hour(2));
        let drain = parse_spec(
            &format!("{base}    drain: {{start_time_us: 1000000, ramp_duration_us: 10000000}}\n"),
            "s.yaml",
        )
        .unwrap();
        let plans = crate::validate::compile_clients(&drain, 1).unwrap();
        assert_eq!(plans[0].windows.len(), 11);
        assert_eq!(plans[0].windows[0], (0, 1_000_000));
        assert_eq!(plans[0].windows[10], (10_000_000, 10_100_000));
    }

    #[test]
    fn multimodal_prompts_record_their_modalities() {
        let text = r#"
aggregate_rate: 10
num_requests: 200
clients:
  - id: vision
    rate_fraction: 1
    output_distribution: {type: constant, params: {value: 10}}
    multimodal:
      text_distribution: {type: constant, params: {value: 100}}
      image_distribution: {type: constant, params: {value: 576}}
      image_count_distribution: {type: uniform, params: {min: 1, max: 3}}
"#;
        let reqs = drive(&parse_spec(text, "s.yaml").unwrap(), &Overrides::default());
        assert_eq!(reqs.len(), 200);
        for r in &reqs {
            let m = r.meta.as_deref().unwrap();
            assert_eq!(m.text_tokens, 100);
            assert!([576, 1152, 1728].contains(&m.image_tokens));
            assert_eq!(r.input.len(), 100 + m.image_tokens);
        }
        let e = parse_spec(
            &text.replace("      image_count_distribution: {type: uniform, params: {min: 1, max: 3}}\n", ""),
            "s.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("multimodal.image_count_distribution: required with image_distribution"), "{e}");
    }
}
