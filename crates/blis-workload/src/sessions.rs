//! Multi-turn sessions: follow-up rounds generated from the previous round.
//!
//! Closed-loop (the default): only round 0 comes from the client's arrival process; when round
//! r completes at `t`, round r+1 arrives at `t + think_time` (if before the horizon). A round
//! that times out, is dropped or rejected cancels its session. Open-loop (`closed_loop: false`):
//! all rounds are stamped up front, `arrival_{r+1} = arrival_r + think_time + output_len_r` µs.
//!
//! With `context_growth: accumulate`, round r+1's prompt is round r's prompt + round r's
//! response (its `output_source` tokens) + a fresh user turn, so the whole history is a prefix
//! of the next prompt and hits the prefix cache. Otherwise a round is the shared prefix plus a
//! fresh turn. An accumulating session ends (no further round) when its next prompt would
//! exceed [`MAX_REQUEST_TOKENS`], as a real client's conversation ends when it outgrows every
//! context window. Each session draws from its own stream (seeded by the workload seed and the
//! session id), so follow-ups do not depend on the order in which sessions complete.

use std::collections::HashMap;

use rand::RngExt;

use crate::limits::MAX_REQUEST_TOKENS;
use crate::request::{RequestSpec, SessionRef};
use crate::rng::{StreamRng, seeded, splitmix64, stream_seed};
use crate::tokens::{Segment, TokenSeq};
use crate::validate::{ClientPlan, MultiTurnPlan};

/// Live sessions of one source (only sessions with a round in flight or pending are kept).
#[derive(Debug)]
pub(crate) struct SessionManager {
    base_seed: u64,
    next_session: u64,
    live: HashMap<u64, Live>,
}

#[derive(Debug)]
struct Live {
    client: usize,
    rng: StreamRng,
}

impl SessionManager {
    pub fn new(seed: u64) -> Self {
        SessionManager { base_seed: stream_seed(seed, "sessions"), next_session: 0, live: HashMap::new() }
    }

    /// Opens a session for `client`; returns its id.
    pub fn start(&mut self, client: usize) -> u64 {
        let id = self.next_session;
        self.next_session += 1;
        let rng = seeded(self.base_seed ^ splitmix64(id));
        self.live.insert(id, Live { client, rng });
        id
    }

    /// The client of a live session.
    pub fn client_of(&self, session: u64) -> Option<usize> {
        self.live.get(&session).map(|l| l.client)
    }

    pub fn end(&mut self, session: u64) {
        self.live.remove(&session);
    }

    /// A think-time draw from the session's own stream (`None` if the session is gone).
    pub fn draw_think(&mut self, session: u64, think: &crate::think::ThinkTime) -> Option<u64> {
        self.live.get_mut(&session).map(|l| think.sample(&mut l.rng))
    }

    #[cfg(test)]
    pub fn live_sessions(&self) -> usize {
        self.live.len()
    }

    /// Builds round `prev.round + 1` of `prev`'s session, arriving at `arrival_us`, or `None`
    /// (and closes the session) when `prev` was the last round or the accumulated prompt
    /// would exceed [`MAX_REQUEST_TOKENS`]. The id is left 0.
    pub fn next_round(
        &mut self,
        plan: &ClientPlan,
        mt: &MultiTurnPlan,
        prev: &RequestSpec,
        arrival_us: u64,
    ) -> Option<RequestSpec> {
        let sref = prev.session?;
        if sref.round.saturating_add(1) >= mt.max_rounds {
            self.end(sref.session_id);
            return None;
        }
        let live = self.live.get_mut(&sref.session_id)?;
        let rng = &mut live.rng;
        let turn_len = plan.input.sample(rng);
        let output_tokens = plan.output.sample(rng);
        let turn_source: u64 = rng.random();
        let output_source: u64 = rng.random();
        let (mut input, turn_len) = if mt.accumulate {
            let total = u64::from(prev.input.len()) + u64::from(prev.output_tokens) + u64::from(turn_len);
            if total > u64::from(MAX_REQUEST_TOKENS) {
                self.end(sref.session_id);
                return None;
            }
            let mut seq = prev.input.clone();
            seq.push(Segment { source: prev.output_source, start: 0, len: prev.output_tokens });
            (seq, turn_len)
        } else {
            let mut seq = TokenSeq::new();
            if let Some(p) = &plan.prefix {
                seq.push(Segment { source: p.source, start: 0, len: p.len });
            }
            // Validation keeps the prefix below the limit; the turn fills at most the rest.
            let room = MAX_REQUEST_TOKENS - seq.len();
            (seq, turn_len.min(room))
        };
        input.push(Segment { source: turn_source, start: 0, len: turn_len });
        Some(RequestSpec {
            id: 0,
            arrival_us,
            input,
            output_tokens,
            max_output_tokens: output_tokens,
            output_source,
            slo_class: prev.slo_class,
            slo_class_named: prev.slo_class_named,
            tenant: prev.tenant.clone(),
            client: prev.client.clone(),
            model: prev.model.clone(),
            adapter: prev.adapter.clone(),
            deadline_us: plan.timeout_us.map(|t| arrival_us.saturating_add(t)),
            slo_target_us: prev.slo_target_us,
            session: Some(SessionRef { session_id: sref.session_id, round: sref.round + 1 }),
            prefix_group: prev.prefix_group.clone(),
            meta: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::generator::{Overrides, SpecSource};
    use crate::request::{Outcome, RequestSource, RequestSpec};
    use crate::spec::parse_spec;
    use crate::tokens::Segment;

    fn spec(extra: &str) -> crate::spec::WorkloadSpec {
        let text = format!(
            r#"
aggregate_rate: 2
num_requests: 40
clients:
  - id: chat
    rate_fraction: 1
    prefix_group: sys
    prefix_length: 32
    input_distribution: {{type: constant, params: {{value: 20}}}}
    output_distribution: {{type: constant, params: {{value: 10}}}}
    reasoning:
      multi_turn: {{max_rounds: 3, think_time_us: 1000000, context_growth: accumulate}}
{extra}"#
        );
        parse_spec(&text, "s.yaml").unwrap()
    }

    #[test]
    fn closed_loop_rounds_accumulate_context() {
        let mut src = SpecSource::new(&spec(""), &Overrides::default()).unwrap();
        let r0 = src.next_request().unwrap();
        assert_eq!(r0.session.unwrap().round, 0);
        assert_eq!(r0.deadline_us, Some(r0.arrival_us + 300_000_000), "multi-turn default timeout");
        let r1 = src.on_request_done(&r0, 5_000_000, Outcome::Completed).unwrap();
        assert_eq!(r1.arrival_us, 6_000_000);
        assert_eq!(r1.session.unwrap().round, 1);
        assert_eq!(r1.session.unwrap().session_id, r0.session.unwrap().session_id);
        assert_eq!(r1.input.len(), 32 + 20 + 10 + 20);
        assert_eq!(&r1.input.segments()[..2], r0.input.segments());
        assert_eq!(r1.input.segments()[2], Segment { source: r0.output_source, start: 0, len: 10 });
        // Round 1's whole prompt + response prefix round 2's prompt, so its blocks are reused.
        let r2 = src.on_request_done(&r1, 9_000_000, Outcome::Completed).unwrap();
        assert_eq!(
            &r2.input.block_hashes(16)[..r1.input.len() as usize / 16],
            &r1.input.block_hashes(16)[..]
        );
        assert!(r2.id > r1.id && r1.id > r0.id);
        // max_rounds = 3: no round 3, and the session is closed.
        assert!(src.on_request_done(&r2, 10_000_000, Outcome::Completed).is_none());
        assert_eq!(src.live_sessions(), 0);
    }

    #[test]
    fn failed_round_cancels_session() {
        let mut src = SpecSource::new(&spec(""), &Overrides::default()).unwrap();
        let r0 = src.next_request().unwrap();
        assert_eq!(src.live_sessions(), 1);
        for outcome in [Outcome::TimedOut, Outcome::Dropped, Outcome::Rejected] {
            let mut s = SpecSource::new(&spec(""), &Overrides::default()).unwrap();
            let r = s.next_request().unwrap();
            assert!(s.on_request_done(&r, 1, outcome).is_none());
            assert!(s.on_request_done(&r, 2, Outcome::Completed).is_none(), "cancelled stays cancelled");
        }
        // Beyond the horizon ends the session too.
        let mut h =
            SpecSource::new(&spec(""), &Overrides { horizon_us: Some(3_000_000), ..Overrides::default() })
                .unwrap();
        let first = h.next_request().unwrap();
        assert!(h.on_request_done(&first, 2_500_000, Outcome::Completed).is_none());
        assert_eq!(h.live_sessions(), 0);
        let _ = r0;
    }

    #[test]
    fn follow_ups_do_not_depend_on_completion_order() {
        let run = |reverse: bool| {
            let mut src = SpecSource::new(&spec(""), &Overrides::default()).unwrap();
            let mut firsts: Vec<RequestSpec> = (0..3).map(|_| src.next_request().unwrap()).collect();
            if reverse {
                firsts.reverse();
            }
            let mut out: Vec<_> = firsts
                .iter()
                .map(|r| src.on_request_done(r, 50_000_000, Outcome::Completed).unwrap())
                .map(|r| (r.session.unwrap().session_id, r.input.clone(), r.output_source))
                .collect();
            out.sort_by_key(|x| x.0);
            out
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn open_loop_prestamps_rounds() {
        let mut s = spec("    closed_loop: false\n");
        s.num_requests = Some(30);
        let mut src = SpecSource::new(&s, &Overrides::default()).unwrap();
        let reqs: Vec<RequestSpec> = std::iter::from_fn(|| src.next_request()).collect();
        assert_eq!(reqs.len(), 30);
        assert!(reqs.windows(2).all(|w| w[0].arrival_us <= w[1].arrival_us));
        let sid = reqs[0].session.unwrap().session_id;
        let rounds: Vec<&RequestSpec> =
            reqs.iter().filter(|r| r.session.unwrap().session_id == sid).collect();
        assert_eq!(rounds.len(), 3);
        assert_eq!(rounds[1].arrival_us, rounds[0].arrival_us + 1_000_000 + 10);
        assert_eq!(rounds[2].input.len(), 32 + 3 * 20 + 2 * 10);
        assert!(src.on_request_done(rounds[0], 1, Outcome::Completed).is_none());
        assert!(!src.follows_up());
        let closed = SpecSource::new(&spec("    closed_loop: true\n"), &Overrides::default()).unwrap();
        assert!(closed.follows_up());
    }

    #[test]
    fn single_session_starts_once() {
        let s = spec("    closed_loop: true\n").clients[0].clone();
        let mut spec1 = spec("");
        let mut c = s;
        c.reasoning.as_mut().unwrap().multi_turn.as_mut().unwrap().single_session = Some(true);
        spec1.clients = vec![c];
        let mut src = SpecSource::new(&spec1, &Overrides::default()).unwrap();
        assert!(src.next_request().is_some());
        assert!(src.next_request().is_none());
    }
}
