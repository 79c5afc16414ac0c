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
//! Arrivals end at [`MAX_TIME_US`] (100 years): a client whose next arrival falls at or after
//! it has no more requests, exactly as if the horizon were there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::RngExt;

use crate::error::{Result, WorkloadError};
use crate::limits::{MAX_REQUEST_TOKENS, MAX_TIME_US};
use crate::request::{Outcome, RequestSource, RequestSpec, SessionRef};
use crate::rng::{StreamRng, stream};
use crate::sessions::SessionManager;
use crate::spec::WorkloadSpec;
use crate::tokens::{Segment, TokenSeq};
use crate::validate::{ClientPlan, DEFAULT_SEED, FirstArrival, compile_clients};

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
            let (plans, sessions) =
                crate::inference_perf::reference_plans(ip, limits.seed, overrides.timeout_us)?;
            let source = SpecSource::from_plans(plans, limits, sessions)?;
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
    /// Next round-0 arrival (valid while the client is in the heap).
    next_us: u64,
    sessions_started: u64,
    /// [`ClientPlan::normalized`]: arrivals drawn so far, and the last order statistic in [0, 1).
    normalized_sent: u64,
    normalized_u: f64,
}

/// Arrivals a client may discard before its next activity window before the process skips
/// ahead instead (2^20: ~10 ms of drawing).
const MAX_DISCARDED_ARRIVALS: f64 = 1_048_576.0;

/// Moves `c` to its next arrival inside its windows and before the horizon; false when the
/// client has no more arrivals. Arrivals between windows are drawn and discarded, unless the
/// gap to the next window would discard more than [`MAX_DISCARDED_ARRIVALS`] of them: then
/// the process restarts at the window's start (for Poisson arrivals the same distribution;
/// for others a renewal at the start), so a window 90 years away at 10^6 req/s costs nothing.
fn advance(horizon: Option<u64>, c: &mut ClientState) -> bool {
    if c.plan.multi_turn.is_some_and(|m| m.single_session) && c.sessions_started > 0 {
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

/// A stamped open-loop follow-up round, ordered by (arrival, session, round): the order in
/// which stamping every round of each session up front, session by session, would emit them.
struct Pending(RequestSpec);

impl Pending {
    fn key(&self) -> (u64, u64, u32) {
        let s = self.0.session.expect("open-loop rounds belong to a session");
        (self.0.arrival_us, s.session_id, s.round)
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
    /// The next round of every open-loop session that has one.
    pending: BinaryHeap<Reverse<Pending>>,
    sessions: SessionManager,
    next_id: u64,
    created: u64,
    cap: Option<u64>,
    horizon: Option<u64>,
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
    /// `session_output_tokens`: `Some(output length)` when every plan is a single closed-loop
    /// session of constant output length; then, as in the reference, `num_requests` does not
    /// cap follow-up rounds but truncates the list of all rounds stamped open-loop
    /// (`arrival_{r+1} = arrival_r + think + output`), of which only the rounds 0 are sent.
    pub(crate) fn from_plans(
        plans: Vec<ClientPlan>,
        limits: Limits,
        session_output_tokens: Option<u32>,
    ) -> Result<Self> {
        let Some(output_tokens) = session_output_tokens else {
            return Ok(Self::start(plans, limits));
        };
        let mut source = Self::start(plans, Limits { cap: None, ..limits });
        source.truncate_session_starts(limits.cap.unwrap_or(u64::MAX), output_tokens);
        Ok(source)
    }

    /// Drops the sessions whose round 0 is not among the first `cap` of the open-loop stamps of
    /// every session's rounds (stable order: time, then client, then round).
    fn truncate_session_starts(&mut self, cap: u64, output_tokens: u32) {
        let horizon = self.horizon.unwrap_or(u64::MAX);
        // (start, period, rounds, end of stamping) per client that sends a round 0.
        let stamps: Vec<Option<(u64, u64, u64, u64)>> = {
            let mut starts = vec![None; self.clients.len()];
            for &Reverse((t, i)) in self.heap.iter() {
                starts[i] = Some(t);
            }
            self.clients
                .iter()
                .zip(starts)
                .map(|(c, start)| {
                    let mt = c.plan.multi_turn?;
                    let end = c.plan.windows.last().map_or(horizon, |w| w.1.min(horizon));
                    let period = (mt.think_time_us + u64::from(output_tokens)).max(1);
                    start.map(|s| (s, period, u64::from(mt.max_rounds), end))
                })
                .collect()
        };
        let preceding = |t: u64, i: usize| -> u64 {
            stamps
                .iter()
                .enumerate()
                .filter_map(|(j, st)| st.map(|st| (j, st)))
                .map(|(j, (s, p, rounds, end))| {
                    let lim = t.min(end);
                    let below = if lim > s { (lim - s).div_ceil(p).min(rounds) } else { 0 };
                    let tie = j < i && t < end && t >= s && (t - s).is_multiple_of(p) && (t - s) / p < rounds;
                    below + u64::from(tie)
                })
                .sum()
        };
        // Fewer stamps than the cap: nothing is truncated (and the quadratic count is skipped).
        let stamped: u64 = stamps.iter().flatten().map(|&(_, _, rounds, _)| rounds).sum();
        if stamped > cap {
            let kept: Vec<Reverse<(u64, usize)>> =
                self.heap.iter().copied().filter(|&Reverse((t, i))| preceding(t, i) < cap).collect();
            self.heap = kept.into_iter().collect();
        }
        self.expected = Some(
            self.heap
                .iter()
                .filter_map(|&Reverse((_, i))| {
                    self.clients[i].plan.multi_turn.map(|m| u64::from(m.max_rounds))
                })
                .sum(),
        );
    }

    fn start(plans: Vec<ClientPlan>, limits: Limits) -> Self {
        let seed = limits.seed;
        let mut source = SpecSource {
            clients: Vec::with_capacity(plans.len()),
            heap: BinaryHeap::with_capacity(plans.len()),
            pending: BinaryHeap::new(),
            sessions: SessionManager::new(seed),
            next_id: 0,
            created: 0,
            cap: limits.cap,
            expected: limits.cap,
            horizon: limits.horizon,
            accumulate_rounds: plans
                .iter()
                .filter_map(|p| p.multi_turn.filter(|m| m.accumulate).map(|m| m.max_rounds))
                .max()
                .unwrap_or(0),
        };
        for (i, plan) in plans.into_iter().enumerate() {
            let mut c = ClientState {
                plan,
                arrivals: stream(seed, &format!("client/{i}/arrivals")),
                lengths: stream(seed, &format!("client/{i}/lengths")),
                tokens: stream(seed, &format!("client/{i}/tokens")),
                next_us: 0,
                sessions_started: 0,
                normalized_sent: 0,
                normalized_u: 0.0,
            };
            if advance(source.horizon, &mut c) {
                source.heap.push(Reverse((c.next_us, i)));
            }
            source.clients.push(c);
        }
        source
    }

    #[cfg(test)]
    pub(crate) fn live_sessions(&self) -> usize {
        self.sessions.live_sessions()
    }

    fn under_cap(&self) -> bool {
        self.cap.is_none_or(|cap| self.created < cap)
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.created += 1;
        id
    }

    /// A new round-0 (or single) request of client `i` arriving at `arrival_us`.
    fn fresh_request(&mut self, i: usize, arrival_us: u64) -> RequestSpec {
        let c = &mut self.clients[i];
        let p = &c.plan;
        let prefix_len = p.prefix.as_ref().map_or(0, |g| g.len);
        // Validation keeps the prefix below the limit; the draw fills at most the rest.
        let in_len = p.input.sample(&mut c.lengths).min(MAX_REQUEST_TOKENS - prefix_len);
        let output_tokens = p.output.sample(&mut c.lengths);
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
            deadline_us: p.timeout_us.map(|t| arrival_us.saturating_add(t)),
            session: None,
            prefix_group: p.prefix.as_ref().map(|g| g.group.clone()),
        };
        if p.multi_turn.is_some() {
            c.sessions_started += 1;
            let sid = self.sessions.start(i);
            req.session = Some(SessionRef { session_id: sid, round: 0 });
        }
        req
    }

    /// Stamps the round after `prev` of an open-loop session (of client `i`), unless the
    /// session ends there: last round, beyond the horizon or the end of simulated time.
    fn stamp_next_round(&mut self, i: usize, prev: &RequestSpec) {
        let Some(mt) = self.clients[i].plan.multi_turn else {
            return;
        };
        if mt.closed_loop {
            return;
        }
        let Some(s) = prev.session else {
            return;
        };
        let at =
            prev.arrival_us.saturating_add(mt.think_time_us).saturating_add(u64::from(prev.output_tokens));
        if self.horizon.is_some_and(|h| at >= h) || at >= MAX_TIME_US {
            self.sessions.end(s.session_id);
            return;
        }
        let plan = &self.clients[i].plan;
        if let Some(next) = self.sessions.next_round(plan, &mt, prev, at) {
            self.pending.push(Reverse(Pending(next)));
        }
    }
}

impl RequestSource for SpecSource {
    fn next_request(&mut self) -> Option<RequestSpec> {
        if !self.under_cap() {
            return None;
        }
        let fresh_at = self.heap.peek().map(|Reverse((t, _))| *t);
        let pending_at = self.pending.peek().map(|Reverse(p)| p.0.arrival_us);
        let take_pending = match (fresh_at, pending_at) {
            (None, None) => return None,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(f), Some(p)) => p <= f,
        };
        if take_pending {
            let Reverse(Pending(mut req)) = self.pending.pop()?;
            let session = req.session.expect("open-loop rounds belong to a session").session_id;
            if let Some(i) = self.sessions.client_of(session) {
                self.stamp_next_round(i, &req);
            }
            req.id = self.take_id();
            return Some(req);
        }
        let Reverse((t, i)) = self.heap.pop()?;
        let mut req = self.fresh_request(i, t);
        req.id = self.take_id();
        self.stamp_next_round(i, &req);
        if advance(self.horizon, &mut self.clients[i]) {
            self.heap.push(Reverse((self.clients[i].next_us, i)));
        }
        Some(req)
    }

    fn on_request_done(
        &mut self,
        request: &RequestSpec,
        at_us: u64,
        outcome: Outcome,
    ) -> Option<RequestSpec> {
        let sref = request.session?;
        let i = self.sessions.client_of(sref.session_id)?;
        let mt = self.clients[i].plan.multi_turn?;
        if !mt.closed_loop {
            return None;
        }
        if outcome != Outcome::Completed {
            self.sessions.end(sref.session_id);
            return None;
        }
        let arrival = at_us.saturating_add(mt.think_time_us);
        if self.horizon.is_some_and(|h| arrival >= h) || arrival >= MAX_TIME_US || !self.under_cap() {
            self.sessions.end(sref.session_id);
            return None;
        }
        let plan = &self.clients[i].plan;
        let mut next = self.sessions.next_round(plan, &mt, request, arrival)?;
        next.id = self.take_id();
        Some(next)
    }

    fn expected_requests(&self) -> Option<u64> {
        self.expected
    }

    fn follows_up(&self) -> bool {
        self.clients.iter().any(|c| c.plan.multi_turn.is_some_and(|mt| mt.closed_loop))
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
            assert_eq!(r.tenant.as_deref(), Some("t1"));
            assert_eq!(r.prefix_group.as_deref(), Some("sys"));
            assert_eq!(r.input.segments()[0], chat[0].input.segments()[0]);
            assert_eq!(r.input.segments()[0].len, 80);
            assert!(r.input.len() >= 90 && r.input.len() <= 680);
            assert_eq!(r.max_output_tokens, r.output_tokens);
        }
        for r in &batch {
            assert_eq!(r.deadline_us, None);
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
