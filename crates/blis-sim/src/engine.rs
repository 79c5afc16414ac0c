//! The simulation loop: pops events in order and hands them to the control plane or to the
//! instance they belong to.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;

use blis_workload::{Outcome, RequestSource, RequestSpec, TokenSeq};
use rand_pcg::Pcg64Mcg;

use crate::cluster::admission::tenant_budget::TenantBudgets;
use crate::cluster::admission::{AdmissionPolicy, Verdict};
use crate::cluster::flow::eviction::Placement;
use crate::cluster::flow::queue::{EnqueueOutcome, Entry};
use crate::cluster::flow::{Completion, Gateway, GatewayStats, hol_blocking_events, priority_inversions};
use crate::cluster::routing::RoutingPolicy;
use crate::cluster::{InstanceSignals, PrefixBoard, PrefixOracle, RouterView, RoutingRequest, SignalBoard};
use crate::config::{ClusterTiming, ExecOptions};
use crate::events::{Event, EventQueue, PendingId};
use crate::instance::{Enqueued, Finished, Instance};
use crate::metrics::Metrics;
use crate::pd::{Leg, PdConfig, PdDeciderKind, PdReport, PdStamps, SharedLink};
use crate::request::PromptHashes;
use crate::slab::Slab;
use crate::trace::{Candidate, DecisionRecord, TraceSummary, counterfactual};

/// Latest simulated time a run may reach: the workload limit, 100 years. Anything scheduled
/// later (an absurd step time, arrival or delay) ends the run with [`SimError::TimeLimit`]
/// instead of wrapping the clock.
pub const MAX_SIM_TIME_US: u64 = blis_workload::MAX_TIME_US;

/// Why a run could not produce a report.
#[derive(Debug)]
pub enum SimError {
    /// Writing the decision trace failed.
    Io(std::io::Error),
    /// Something was scheduled past [`MAX_SIM_TIME_US`].
    TimeLimit { at_us: u64, what: &'static str },
    /// A conservation or KV-cache invariant did not hold at the end of the run (a bug).
    Invariant(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Io(e) => write!(f, "writing the decision trace failed: {e}"),
            SimError::TimeLimit { at_us, what } => write!(
                f,
                "simulated time would pass 100 years ({what} at {at_us} µs): the workload's arrival times \
                 or the latency model's step times are not plausible"
            ),
            SimError::Invariant(what) => write!(f, "invariant violated: {what}"),
        }
    }
}

impl std::error::Error for SimError {}

/// Control-plane settings of cluster mode.
pub struct ClusterOptions {
    pub timing: ClusterTiming,
    /// Record decisions (`--trace-level decisions`).
    pub trace_decisions: bool,
    pub counterfactual_k: usize,
    /// Where to write one JSON line per decision (`--trace-output`).
    pub trace_sink: Option<Box<dyn Write + Send>>,
}

/// Admission and routing for N > 1 instances.
pub struct ControlPlane {
    admission: Box<dyn AdmissionPolicy>,
    /// Per-tenant budgets, checked before the admission policy.
    budgets: Option<TenantBudgets>,
    routing: Box<dyn RoutingPolicy>,
    options: ClusterOptions,
    signals: SignalBoard,
    prefix: Option<PrefixBoard>,
    in_flight: Vec<u32>,
    rng: Pcg64Mcg,
    trace: Option<TraceSummary>,
    /// What the policies see when instances run independently: they declared they never
    /// read it, and the live instances may be behind the cluster's clock.
    idle_signals: Vec<InstanceSignals>,
    /// The gateway queue between admission and routing (`--flow-control`).
    gateway: Option<Gateway<PendingId>>,
    /// Routing of a disaggregated fleet (pools with roles).
    pd: Option<PdRouting>,
    /// Routing of a fleet serving several models.
    models: Option<crate::models::ModelRouting>,
}

/// Routing of a fleet whose pools have prefill/decode roles: every request is routed among
/// the decode-capable instances; the ones the decider splits also among the prefill-capable.
pub struct PdRouting {
    pub decider: PdDeciderKind,
    pub prefix_threshold_tokens: u32,
    pub block_size_tokens: u32,
    /// Instances of prefill / decode / shared-role pools that prefill, and that decode.
    pub prefill: Vec<usize>,
    pub decode: Vec<usize>,
    pub prefill_policy: Box<dyn RoutingPolicy>,
    pub decode_policy: Box<dyn RoutingPolicy>,
}

/// What admission and saturation detection see: the instances requests may be routed to (all of
/// them without an autoscaler; with one, not those off, loading or draining).
fn routable_signals<'a>(
    autoscale: Option<&crate::autoscale::Autoscaler>,
    signals: &'a [InstanceSignals],
) -> std::borrow::Cow<'a, [InstanceSignals]> {
    match autoscale {
        None => std::borrow::Cow::Borrowed(signals),
        Some(a) => std::borrow::Cow::Owned(a.routable().iter().map(|&i| signals[i]).collect()),
    }
}

/// A routing policy deciding among `candidates` only (it sees them as instances 0..n).
fn route_among(
    policy: &mut dyn RoutingPolicy,
    candidates: &[usize],
    request: &RoutingRequest,
    now_us: u64,
    signals: &[InstanceSignals],
    prefix: &dyn PrefixOracle,
    rng: &mut Pcg64Mcg,
) -> usize {
    struct Sub<'a> {
        inner: &'a dyn PrefixOracle,
        map: &'a [usize],
    }
    impl PrefixOracle for Sub<'_> {
        fn cached_blocks(&self, instance: usize, prompt_hashes: &[u64]) -> u32 {
            self.inner.cached_blocks(self.map[instance], prompt_hashes)
        }
    }
    let sub: Vec<InstanceSignals> = candidates.iter().map(|&i| signals[i]).collect();
    let oracle = Sub { inner: prefix, map: candidates };
    let view = RouterView { now_us, signals: &sub, prefix: &oracle };
    let k = policy.route(request, &view, rng).target;
    assert!(k < candidates.len(), "router chose candidate {k} of {}", candidates.len());
    candidates[k]
}

impl ControlPlane {
    pub fn new(
        admission: Box<dyn AdmissionPolicy>,
        budgets: Option<TenantBudgets>,
        routing: Box<dyn RoutingPolicy>,
        options: ClusterOptions,
        rng: Pcg64Mcg,
        num_instances: usize,
    ) -> Self {
        let trace = options.trace_decisions.then(|| TraceSummary::new(num_instances));
        Self {
            signals: SignalBoard::new(num_instances, options.timing.snapshot_refresh_interval_us),
            prefix: None,
            in_flight: vec![0; num_instances],
            admission,
            budgets,
            routing,
            options,
            rng,
            trace,
            idle_signals: vec![InstanceSignals::default(); num_instances],
            gateway: None,
            pd: None,
            models: None,
        }
    }

    /// Routes each request among the instances serving the model it names (a fleet of
    /// several models); a request naming none, or one no pool serves, is rejected.
    pub fn set_models(&mut self, models: crate::models::ModelRouting) {
        assert!(self.pd.is_none(), "a disaggregated fleet serves one model");
        self.models = Some(models);
    }

    /// Makes the fleet disaggregated (before the simulation is built over it).
    pub fn set_pd(&mut self, pd: PdRouting) {
        assert!(!pd.prefill.is_empty() && !pd.decode.is_empty(), "both roles need instances");
        self.pd = Some(pd);
    }

    /// Whether a decision reads prompt block hashes.
    fn needs_prompt_hashes(&self) -> bool {
        self.routing.needs_prompt_hashes()
            || self.pd.as_ref().is_some_and(|p| {
                p.decider == PdDeciderKind::PrefixThreshold
                    || p.prefill_policy.needs_prompt_hashes()
                    || p.decode_policy.needs_prompt_hashes()
            })
    }

    /// Puts a gateway queue between admission and routing: it replaces the admission policy
    /// (tenant budgets still apply first).
    pub fn with_gateway(mut self, gateway: Gateway<PendingId>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Whether no admission or routing decision can depend on the instances' state.
    /// Tenant budgets count requests in flight, which depends on when instances finish them.
    fn blind_to_instances(&self) -> bool {
        !self.admission.reads_instance_state()
            && !self.routing.reads_instance_state()
            && !self.options.trace_decisions
            && self.budgets.is_none()
            && self.gateway.is_none()
            && self.pd.is_none()
    }
}

/// Independent instances run in bursts once this many requests per instance have been routed
/// since the last burst (the bursts are what keeps one instance's structures in cache).
const BURST_REQUESTS_PER_INSTANCE: usize = 256;

/// Runs `work` on every share: the first on this thread, each other one on a scoped thread of
/// its own (none is spawned when there is a single share).
fn on_threads<S: Send>(mut shares: impl Iterator<Item = S>, work: impl Fn(S) + Sync) {
    let first = shares.next().expect("at least one share");
    std::thread::scope(|scope| {
        for share in shares {
            let work = &work;
            scope.spawn(move || work(share));
        }
        work(first);
    });
}

/// A request between its arrival and its instance's wait queue.
struct Pending {
    spec: RequestSpec,
    prompt_hashes: PromptHashes,
    /// `prompt_hashes` holds the hashes (at the block size of instance 0).
    hashed: bool,
    /// [`RequestSource::output_reusable`], asked when the source handed the request over.
    output_reusable: bool,
    /// A disaggregated request: where it goes, and how far it got.
    pd: Option<PdTrip>,
}

/// The journey of a disaggregated request.
#[derive(Debug, Clone, Copy)]
struct PdTrip {
    prefill: u32,
    decode: u32,
    /// Set once the prefill instance handed the request over.
    stamps: Option<PdStamps>,
    transfer_start_us: u64,
    solo_us: u64,
}

/// The cluster's disaggregation state: requests between their legs and the KV link.
struct PdState {
    config: PdConfig,
    /// KV bytes per token on one GPU, TP and block size of each instance.
    kv_bytes_per_token_gpu: Vec<f64>,
    tp: Vec<u32>,
    block_size: Vec<u32>,
    /// Prefill legs in instances, by request id.
    trips: HashMap<u64, PdTrip>,
    link: SharedLink,
    transfers_on_link: u64,
    decode_legs_queued: u64,
    report: PdReport,
    done_buf: Vec<u32>,
}

/// Prompt block hashes by prompt (at the block size of instance 0). Workloads resend the same
/// prompt many times (inference-perf's fixed question per user: G·U distinct prompts), and a
/// lookup of its two or three segments is much cheaper than hashing every block again. Bounded
/// (cleared when it holds too many hashes) and switched off when it rarely hits.
#[derive(Default)]
struct PromptHashMemo {
    map: HashMap<TokenSeq, PromptHashes, BuildHasherDefault<FxLikeHasher>>,
    held: usize,
    lookups: u64,
    hits: u64,
    off: bool,
}

/// Multiply-rotate hasher for the memo's small integer keys (a prompt's segments).
#[derive(Default)]
struct FxLikeHasher(u64);

impl Hasher for FxLikeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

impl PromptHashMemo {
    /// Hashes (plus key segments) held before the memo is cleared.
    const MAX_HELD: usize = 1 << 20;
    /// Lookups after which a memo hitting less than one time in eight is switched off.
    const TRIAL: u64 = 1 << 14;

    fn hashes(&mut self, input: &TokenSeq, block_size_tokens: u32) -> PromptHashes {
        if self.off {
            return input.block_hashes(block_size_tokens).into();
        }
        self.lookups += 1;
        if let Some(h) = self.map.get(input) {
            self.hits += 1;
            return h.clone();
        }
        if self.lookups >= Self::TRIAL && self.hits * 8 < self.lookups {
            self.off = true;
            self.map = HashMap::default();
            return input.block_hashes(block_size_tokens).into();
        }
        let h: PromptHashes = input.block_hashes(block_size_tokens).into();
        let size = h.len() + input.segments().len() * 2;
        if self.held + size > Self::MAX_HELD {
            self.map.clear();
            self.held = 0;
        }
        self.held += size;
        self.map.insert(input.clone(), h.clone());
        h
    }
}

/// Counters of the whole run beyond what instances count.
#[derive(Debug, Clone, Default)]
pub struct ClusterCounters {
    /// Requests that arrived (at or before the horizon).
    pub injected: u64,
    pub rejected: u64,
    /// Admission rejections per SLO class.
    pub rejected_by_class: std::collections::BTreeMap<&'static str, u64>,
    /// Requests still between arrival and a wait queue when the run ended.
    pub in_transit: u64,
    /// Disaggregated requests between their prefill and decode legs when the run ended
    /// (included in `in_transit`).
    pub in_transfer: u64,
    /// Arrival times of the first and last request, and of the first past the warm-up.
    pub first_arrival_us: Option<u64>,
    pub last_arrival_us: u64,
    pub first_measured_arrival_us: Option<u64>,
    /// Arrivals past the warm-up, in all and per goodput label.
    pub measured_arrivals: u64,
    pub injected_by_label: [u64; 6],
    /// Gateway-queue counters (flow control only).
    pub gateway: Option<GatewayStats>,
    /// Requests rejected because no pool serves the model they name (or they name none in a
    /// fleet of several models); included in `rejected`.
    pub unserved_model: u64,
}

/// Everything a run produced.
pub struct SimReport {
    pub instances: Vec<Metrics>,
    pub cluster: Metrics,
    pub counters: ClusterCounters,
    pub trace: Option<TraceSummary>,
    pub events: u64,
    /// What the run measured (warm-up, goodput targets, sampling).
    pub measurement: std::sync::Arc<crate::measure::Measurement>,
    /// Disaggregation figures (fleets whose pools have roles).
    pub pd: Option<PdReport>,
    /// Autoscaling figures (runs with an autoscaler).
    pub autoscale: Option<crate::autoscale::AutoscaleReport>,
}

impl SimReport {
    /// The invariants every run must satisfy: each request that arrived is in exactly one
    /// bucket, each KV pool is consistent, and a drained cluster holds no blocks.
    pub fn check_invariants(&self) -> Result<(), String> {
        let (m, k) = (&self.cluster, &self.counters);
        let gateway =
            k.gateway.as_ref().map_or(0, |g| g.rejected + g.shed + g.expired + g.evicted + g.depth_at_end);
        let accounted = m.completed()
            + m.still_queued
            + m.still_running
            + m.dropped_unservable
            + m.timed_out
            + k.rejected
            + k.in_transit
            + gateway;
        if k.injected != accounted {
            return Err(format!(
                "request conservation: {} requests arrived but {accounted} are accounted for ({} completed, \
                 {} queued, {} running, {} dropped, {} timed out, {} rejected, {} in transit, {gateway} left \
                 at the gateway)",
                k.injected,
                m.completed(),
                m.still_queued,
                m.still_running,
                m.dropped_unservable,
                m.timed_out,
                k.rejected,
                k.in_transit
            ));
        }
        if let Some(pd) = &self.pd {
            // Each prefill leg that finished became a transfer, finished or not.
            if pd.handoffs != m.pd_handoffs || pd.handoffs != pd.transfers_completed + k.in_transfer {
                return Err(format!(
                    "disaggregation: {} prefill legs handed over ({} counted by instances) but {} transfers \
                     completed and {} are under way",
                    pd.handoffs, m.pd_handoffs, pd.transfers_completed, k.in_transfer
                ));
            }
            if pd.transfers_started > pd.handoffs || pd.transfers_completed > pd.transfers_started {
                return Err(format!(
                    "disaggregation: {} hand-offs, {} transfers started, {} completed",
                    pd.handoffs, pd.transfers_started, pd.transfers_completed
                ));
            }
        }
        if let Some(a) = &self.autoscale {
            a.check(|i| self.instances[i].still_queued + self.instances[i].still_running)?;
        }
        for (i, instance) in self.instances.iter().enumerate() {
            if let Some(e) = &instance.kv_check {
                return Err(format!("KV cache of instance {i}: {e}"));
            }
            let drained = instance.still_queued + instance.still_running == 0;
            if drained && instance.kv_used_blocks_at_end != 0 {
                return Err(format!(
                    "KV blocks: instance {i} holds {} blocks after its last request left",
                    instance.kv_used_blocks_at_end
                ));
            }
        }
        Ok(())
    }
}

/// Progress of a running simulation, for progress displays.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub now_us: u64,
    pub finished: u64,
    pub events: u64,
}

/// An independent instance's own events, and what it hands back to the cluster after a burst.
#[derive(Default)]
struct Lane {
    local: EventQueue,
    /// Requests routed to the instance and not yet in its wait queue.
    inbox: Slab<Pending>,
    /// Requests that left the instance during the burst, settled by the cluster in order.
    out: Vec<Finished>,
    events: u64,
    last_us: u64,
    time_error: Option<SimError>,
}

/// What every lane of a burst reads.
struct LaneContext {
    before_us: Option<u64>,
    horizon_us: u64,
    /// Block size the prompt hashes are computed at (instance 0's).
    block_size0: u32,
}

/// The contiguous share of independent instances one thread runs in a burst.
struct LaneShare<'a> {
    instances: &'a mut [Instance],
    step_pending: &'a mut [bool],
    lanes: &'a mut [Lane],
    memo: &'a mut PromptHashMemo,
}

impl LaneShare<'_> {
    fn run(self, ctx: &LaneContext) {
        for ((instance, step_pending), lane) in
            self.instances.iter_mut().zip(self.step_pending).zip(self.lanes)
        {
            lane.run(ctx, instance, step_pending, self.memo);
        }
    }
}

impl Lane {
    /// Runs the instance's events before `ctx.before_us` (and not past the horizon); what
    /// leaves the instance goes to `out`. The same handling as the coupled path's instance
    /// events, less what independence rules out (gateway, disaggregation).
    fn run(
        &mut self,
        ctx: &LaneContext,
        instance: &mut Instance,
        step_pending: &mut bool,
        memo: &mut PromptHashMemo,
    ) {
        while let Some(t) = self.local.peek_time() {
            if t > ctx.horizon_us || ctx.before_us.is_some_and(|b| t >= b) {
                break;
            }
            if t > MAX_SIM_TIME_US {
                self.time_error = Some(SimError::TimeLimit { at_us: t, what: "an instance event" });
                return;
            }
            let (now_us, event) = self.local.pop().expect("peeked");
            self.events += 1;
            self.last_us = now_us;
            match event {
                Event::Queued { instance: index, pending } => {
                    let Pending { spec, prompt_hashes, hashed, output_reusable, pd } =
                        self.inbox.remove(pending);
                    debug_assert!(pd.is_none(), "a disaggregated fleet couples its instances");
                    let same_blocks = instance.kv().block_size_tokens() == ctx.block_size0;
                    let hashes = if hashed && same_blocks {
                        Some(prompt_hashes)
                    } else if same_blocks {
                        Some(memo.hashes(&spec.input, ctx.block_size0))
                    } else {
                        None
                    };
                    let deadline = spec.deadline_us;
                    let request_id = spec.id;
                    let outcome = instance.enqueue_leg(
                        now_us,
                        spec,
                        output_reusable,
                        hashes,
                        Leg::Whole,
                        &mut self.out,
                    );
                    if let Enqueued::Queued(req) = outcome {
                        if let Some(d) = deadline.filter(|&d| d <= ctx.horizon_us) {
                            self.local.push(d, Event::Timeout { instance: index, req, request_id });
                        }
                        if !*step_pending {
                            *step_pending = true;
                            self.local.push(now_us, Event::Step { instance: index });
                        }
                    }
                }
                Event::Step { instance: index } => {
                    if let Some(ready_us) = instance.kv_loads_pending_until(now_us) {
                        *step_pending = false;
                        self.local.push(ready_us, Event::KvLoaded { instance: index });
                        continue;
                    }
                    let step_us = instance.step(now_us, &mut self.out);
                    if instance.has_work() {
                        self.local.push(now_us.saturating_add(step_us), Event::Step { instance: index });
                    } else {
                        *step_pending = false;
                    }
                }
                Event::KvLoaded { instance: index } => {
                    if !*step_pending && instance.has_work() {
                        *step_pending = true;
                        self.local.push(now_us, Event::Step { instance: index });
                    }
                }
                Event::Timeout { req, request_id, .. } => {
                    if instance.holds(req, request_id) {
                        self.out.push(instance.time_out(now_us, req));
                    }
                }
                other => unreachable!("a cluster event in an instance's lane: {other:?}"),
            }
        }
    }
}

pub struct Simulation {
    /// Every event, or only the cluster's when the instances run independently.
    queue: EventQueue,
    /// Instances cannot influence each other (no decision reads their state, no arrival
    /// depends on a completion): each keeps its own events in `local` and is run in bursts,
    /// all its events before the next cluster event's time, one instance after the other.
    /// Identical results, since an instance's events keep their order (time, priority, push
    /// order) and every request routed to it before a burst's end has reached its queue.
    /// Bursts of different instances touch disjoint data, so `--threads` runs them side by side.
    independent: bool,
    /// `--threads`, at most one per instance.
    threads: usize,
    lanes: Vec<Lane>,
    /// One prompt-hash memo per burst thread (what a memo holds changes speed, never results).
    lane_memos: Vec<PromptHashMemo>,
    /// Requests routed since the last burst.
    routed_since_burst: usize,
    instances: Vec<Instance>,
    step_pending: Vec<bool>,
    source: Box<dyn RequestSource + Send>,
    control: Option<ControlPlane>,
    pending: Slab<Pending>,
    /// No event after this is simulated (`u64::MAX` without a horizon).
    horizon_us: u64,
    counters: ClusterCounters,
    finished_buf: Vec<Finished>,
    finished_total: u64,
    events: u64,
    /// Latest simulated time any event reached (for progress displays).
    progress_us: u64,
    last_arrival_us: u64,
    trace_error: Option<std::io::Error>,
    prompt_memo: PromptHashMemo,
    /// Set when something was scheduled past [`MAX_SIM_TIME_US`]; ends the run.
    time_error: Option<SimError>,
    measure: std::sync::Arc<crate::measure::Measurement>,
    pd: Option<PdState>,
    autoscale: Option<crate::autoscale::Autoscaler>,
}

impl Simulation {
    /// `control` must be `Some` when there is more than one instance; a single instance
    /// skips admission and routing entirely unless a gateway queue (flow control) feeds it.
    pub fn new(
        mut instances: Vec<Instance>,
        source: Box<dyn RequestSource + Send>,
        mut control: Option<ControlPlane>,
        horizon_us: Option<u64>,
        exec: ExecOptions,
    ) -> Self {
        assert!(control.is_some() || instances.len() == 1, "a cluster needs a control plane");
        if let Some(c) = &mut control {
            // Only policies that read prompt hashes can ask the prefix oracle anything (it
            // answers 0 for an empty hash list), so the delayed copies of every instance's
            // index, and the change logs that feed them, are kept only for those.
            let delay_us = if c.needs_prompt_hashes() { c.options.timing.cache_signal_delay_us } else { 0 };
            c.prefix = Some(PrefixBoard::new(&mut instances, delay_us));
        }
        let n = instances.len();
        let independent = exec.independent_instances
            && control.as_ref().is_some_and(ControlPlane::blind_to_instances)
            && !source.follows_up();
        Self {
            queue: EventQueue::default(),
            independent,
            threads: exec.threads.clamp(1, n),
            lanes: if independent { (0..n).map(|_| Lane::default()).collect() } else { Vec::new() },
            lane_memos: if independent {
                (0..exec.threads.clamp(1, n)).map(|_| PromptHashMemo::default()).collect()
            } else {
                Vec::new()
            },
            routed_since_burst: 0,
            instances,
            step_pending: vec![false; n],
            source,
            control,
            pending: Slab::default(),
            horizon_us: horizon_us.unwrap_or(u64::MAX),
            counters: ClusterCounters::default(),
            finished_buf: Vec::new(),
            finished_total: 0,
            events: 0,
            progress_us: 0,
            last_arrival_us: 0,
            trace_error: None,
            prompt_memo: PromptHashMemo::default(),
            time_error: None,
            measure: std::sync::Arc::new(crate::measure::Measurement::new()),
            pd: None,
            autoscale: None,
        }
    }

    /// Puts an autoscaler over the fleet (whose instances must not run independently): only
    /// its routable instances get requests; it ticks from time 0.
    pub fn set_autoscale(&mut self, autoscaler: crate::autoscale::Autoscaler) {
        assert!(self.control.is_some() && !self.independent, "autoscaling needs a coupled cluster");
        self.queue.push(0, Event::AutoscaleTick);
        self.autoscale = Some(autoscaler);
    }

    /// Disaggregation: the transfer link and, per instance, KV bytes per token on one GPU
    /// and TP (the control plane must already route with [`ControlPlane::set_pd`]).
    pub fn set_pd(
        &mut self,
        config: PdConfig,
        roles: &[Option<crate::pd::PoolRole>],
        kv_bytes_per_token_gpu: Vec<f64>,
        tp: Vec<u32>,
    ) {
        assert!(self.control.as_ref().is_some_and(|c| c.pd.is_some()), "PD routing first");
        assert!(!self.independent, "a disaggregated fleet couples its instances");
        assert!(config.bandwidth_bytes_per_us > 0.0 && config.base_latency_us >= 0.0);
        let block_size = self.instances.iter().map(|i| i.kv().block_size_tokens()).collect();
        let exact = self.instances.iter().any(Instance::exact_percentiles);
        self.pd = Some(PdState {
            config,
            kv_bytes_per_token_gpu,
            tp,
            block_size,
            trips: HashMap::new(),
            link: SharedLink::default(),
            transfers_on_link: 0,
            decode_legs_queued: 0,
            report: PdReport {
                decodes: roles.iter().map(|r| r.is_some_and(crate::pd::PoolRole::decodes)).collect(),
                transfer_duration: crate::stats::Samples::new(exact),
                transfer_queueing: crate::stats::Samples::new(exact),
                ..PdReport::default()
            },
            done_buf: Vec::new(),
        });
    }

    /// Whether the instances run independently of each other (see `independent`).
    pub fn instances_independent(&self) -> bool {
        self.independent
    }

    /// Runs to the horizon or until nothing is left to happen. The report's conservation and
    /// KV-cache invariants are checked before it is returned, in every build.
    pub fn run(mut self, mut on_progress: impl FnMut(Progress)) -> Result<SimReport, SimError> {
        self.pull_next_arrival();
        loop {
            let next_us = self.queue.peek_time().filter(|&t| t <= self.horizon_us);
            let burst_due = self.routed_since_burst >= BURST_REQUESTS_PER_INSTANCE * self.lanes.len();
            if self.independent && (next_us.is_none() || burst_due) {
                self.run_instances_before(next_us, &mut on_progress);
            }
            if self.time_error.is_some() {
                break;
            }
            let Some(now_us) = next_us else { break };
            if now_us > MAX_SIM_TIME_US {
                self.time_error = Some(SimError::TimeLimit { at_us: now_us, what: "an event" });
                break;
            }
            let (now_us, event) = self.queue.pop().expect("peeked");
            self.count_event(now_us, &mut on_progress);
            self.handle(now_us, event);
        }
        if let Some(e) = self.time_error.take() {
            return Err(e);
        }
        if let Some(e) = self.trace_error.take() {
            return Err(SimError::Io(e));
        }
        if let Some(sink) = self.control.as_mut().and_then(|c| c.options.trace_sink.as_mut()) {
            sink.flush().map_err(SimError::Io)?;
        }
        let report = self.finish();
        report.check_invariants().map_err(SimError::Invariant)?;
        Ok(report)
    }

    fn count_event(&mut self, now_us: u64, on_progress: &mut impl FnMut(Progress)) {
        self.events += 1;
        // Independent instances run behind the cluster's clock; progress shows the furthest.
        self.progress_us = self.progress_us.max(now_us);
        if self.events.is_multiple_of(1 << 16) {
            on_progress(Progress {
                now_us: self.progress_us,
                finished: self.finished_total,
                events: self.events,
            });
        }
    }

    /// Independent instances: runs each instance's events that come before `before_us` (all
    /// of them up to the horizon when `None`), then settles what left each instance, lowest
    /// index first. The instances are split into one contiguous share per thread.
    fn run_instances_before(&mut self, before_us: Option<u64>, on_progress: &mut impl FnMut(Progress)) {
        let n = self.lanes.len();
        let shares = self.lane_memos.len();
        let size = n.div_ceil(shares);
        let ctx = LaneContext {
            before_us,
            horizon_us: self.horizon_us,
            block_size0: self.instances[0].kv().block_size_tokens(),
        };
        let chunks = self
            .instances
            .chunks_mut(size)
            .zip(self.step_pending.chunks_mut(size))
            .zip(self.lanes.chunks_mut(size))
            .zip(self.lane_memos.iter_mut())
            .map(|(((instances, step_pending), lanes), memo)| LaneShare {
                instances,
                step_pending,
                lanes,
                memo,
            });
        on_threads(chunks, |share| share.run(&ctx));
        let events_before = self.events;
        for i in 0..n {
            let lane = &mut self.lanes[i];
            self.events += std::mem::take(&mut lane.events);
            self.progress_us = self.progress_us.max(lane.last_us);
            if let Some(e) = lane.time_error.take() {
                self.time_error.get_or_insert(e);
            }
            let mut out = std::mem::take(&mut lane.out);
            self.settle(i, &mut out);
            self.lanes[i].out = out;
        }
        if self.events >> 16 != events_before >> 16 {
            on_progress(Progress {
                now_us: self.progress_us,
                finished: self.finished_total,
                events: self.events,
            });
        }
        self.routed_since_burst = 0;
    }

    /// Schedules an event of instance `i` (coupled instances only: independent ones schedule
    /// their own in their lanes).
    fn push_instance_event(&mut self, i: usize, at_us: u64, event: Event) {
        debug_assert!(!self.independent, "instance {i}'s events belong to its lane");
        self.queue.push(at_us, event);
    }

    fn handle(&mut self, now_us: u64, event: Event) {
        match event {
            Event::Arrival(p) => {
                self.counters.injected += 1;
                self.count_arrival(now_us, p);
                self.pull_next_arrival();
                match &self.control {
                    None => self.send_to_instance(now_us, 0, p),
                    Some(c) => {
                        let at = now_us.saturating_add(c.options.timing.admission_latency_us);
                        self.queue.push(at, Event::Admission(p));
                    }
                }
            }
            Event::Admission(p) => self.admit(now_us, p),
            Event::GatewayExpiry { pending, seq } => self.gateway_expire(now_us, pending, seq),
            Event::GatewayTick => self.gateway_tick(now_us),
            Event::Routing(p) => self.route(now_us, p),
            Event::Queued { instance, pending } => {
                let Pending { spec, prompt_hashes, hashed, output_reusable, pd } =
                    self.pending.remove(pending);
                let i = instance as usize;
                let leg = match pd {
                    None => Leg::Whole,
                    Some(trip) => match trip.stamps {
                        None => {
                            let pd = self.pd.as_mut().expect("disaggregation is on");
                            pd.trips.insert(spec.id, trip);
                            Leg::Prefill
                        }
                        Some(stamps) => {
                            self.pd.as_mut().expect("disaggregation is on").decode_legs_queued += 1;
                            Leg::Decode(stamps)
                        }
                    },
                };
                let deadline = spec.deadline_us;
                let request_id = spec.id;
                let class = spec.slo_class;
                let mut finished = std::mem::take(&mut self.finished_buf);
                let same_blocks =
                    self.instances[i].kv().block_size_tokens() == self.instances[0].kv().block_size_tokens();
                let hashes = if hashed && same_blocks {
                    Some(prompt_hashes)
                } else if same_blocks {
                    let bs = self.instances[0].kv().block_size_tokens();
                    Some(self.prompt_memo.hashes(&spec.input, bs))
                } else {
                    None
                };
                let outcome =
                    self.instances[i].enqueue_leg(now_us, spec, output_reusable, hashes, leg, &mut finished);
                if let Enqueued::Queued(req) = outcome {
                    self.track_evictable(instance, req, request_id, class);
                    if let Some(d) = deadline.filter(|&d| d <= self.horizon_us) {
                        self.push_instance_event(i, d, Event::Timeout { instance, req, request_id });
                    }
                    if !self.step_pending[i] {
                        self.step_pending[i] = true;
                        self.push_instance_event(i, now_us, Event::Step { instance });
                    }
                }
                self.settle(i, &mut finished);
                self.finished_buf = finished;
            }
            Event::Step { instance } => {
                let i = instance as usize;
                let pending = self.instances[i].kv_loads_pending_until(now_us);
                if let Some(ready_us) = pending.or_else(|| self.instances[i].lora_load_pending_until(now_us))
                {
                    // All the instance has is requests waiting for CPU-tier loads (or a queue held
                    // behind its head's LoRA adapter load): it idles until one arrives (or a new
                    // request is queued).
                    self.step_pending[i] = false;
                    self.push_instance_event(i, ready_us, Event::KvLoaded { instance });
                    return;
                }
                let mut finished = std::mem::take(&mut self.finished_buf);
                let step_us = self.instances[i].step(now_us, &mut finished);
                // Work-conserving: a busy instance always has its next step scheduled.
                if self.instances[i].has_work() {
                    self.push_instance_event(i, now_us.saturating_add(step_us), Event::Step { instance });
                } else {
                    self.step_pending[i] = false;
                }
                self.settle(i, &mut finished);
                self.finished_buf = finished;
            }
            Event::KvLoaded { instance } => {
                let i = instance as usize;
                if !self.step_pending[i] && self.instances[i].has_work() {
                    self.step_pending[i] = true;
                    self.push_instance_event(i, now_us, Event::Step { instance });
                }
            }
            Event::Timeout { instance, req, request_id } => {
                let i = instance as usize;
                if !self.instances[i].holds(req, request_id) {
                    return; // already finished: a stale timer
                }
                let mut finished = std::mem::take(&mut self.finished_buf);
                finished.push(self.instances[i].time_out(now_us, req));
                self.settle(i, &mut finished);
                self.finished_buf = finished;
            }
            Event::AutoscaleTick => self.autoscale_tick(now_us),
            Event::AutoscaleActuate => {
                let a = self.autoscale.as_mut().expect("autoscaling");
                let in_flight = &self.control.as_ref().expect("autoscaling needs a cluster").in_flight;
                for (i, at) in a.actuate(now_us, in_flight) {
                    self.queue.push(at, Event::InstanceReady { instance: i as u32 });
                }
            }
            Event::InstanceReady { instance } => {
                self.autoscale.as_mut().expect("autoscaling").ready(now_us, instance as usize);
            }
            Event::TransferStart(p) => self.start_transfer(now_us, p),
            Event::LinkTick { generation } => self.link_tick(now_us, generation),
            Event::TransferDone(p) => self.end_transfer(now_us, p),
        }
    }

    /// A prefill leg is done: its request waits for its KV transfer, which starts when the
    /// step that computed the prompt ends.
    fn hand_off(&mut self, f: Finished) {
        let pd = self.pd.as_mut().expect("only disaggregated requests hand off");
        let mut trip = pd.trips.remove(&f.spec.id).expect("a prefill leg has its trip");
        trip.stamps = Some(PdStamps { prefill_done_us: f.at_us, transfer_done_us: 0 });
        pd.report.handoffs += 1;
        let output_reusable = self.source.output_reusable(&f.spec);
        let p = self.pending.insert(Pending {
            spec: f.spec,
            prompt_hashes: PromptHashes::default(),
            hashed: false,
            output_reusable,
            pd: Some(trip),
        });
        self.queue.push(f.at_us, Event::TransferStart(p));
    }

    fn start_transfer(&mut self, now_us: u64, p: PendingId) {
        let pd = self.pd.as_mut().expect("disaggregation is on");
        let pending = &mut self.pending[p];
        let trip = pending.pd.as_mut().expect("a transfer belongs to a disaggregated request");
        let i = trip.prefill as usize;
        // Whole blocks move (the prompt's, partial last block included).
        let tokens = pending.spec.input.len().div_ceil(pd.block_size[i]) * pd.block_size[i];
        let bytes_gpu = f64::from(tokens) * pd.kv_bytes_per_token_gpu[i];
        trip.transfer_start_us = now_us;
        trip.solo_us = pd.config.solo_us(bytes_gpu);
        let r = &mut pd.report;
        r.transfers_started += 1;
        r.transfer_bytes += (bytes_gpu * f64::from(pd.tp[i])).round() as u64;
        pd.transfers_on_link += 1;
        r.peak_concurrent_transfers = r.peak_concurrent_transfers.max(pd.transfers_on_link);
        r.depth_sum += pd.transfers_on_link;
        r.depth_samples += 1;
        if pd.config.contention && pd.config.share_fixed_at_start {
            let share = pd.config.bandwidth_bytes_per_us / pd.transfers_on_link as f64;
            let took = ((pd.config.base_latency_us + bytes_gpu / share).ceil() as u64).max(1);
            self.queue.push(now_us.saturating_add(took), Event::TransferDone(p));
        } else if pd.config.contention {
            // Each GPU's shard crosses its own link; the shards move in parallel.
            let next = pd.link.add(now_us, p, bytes_gpu, pd.config.bandwidth_bytes_per_us);
            self.queue.push(next, Event::LinkTick { generation: pd.link.generation });
        } else {
            let at = now_us.saturating_add(trip.solo_us);
            self.queue.push(at, Event::TransferDone(p));
        }
    }

    fn link_tick(&mut self, now_us: u64, generation: u64) {
        let pd = self.pd.as_mut().expect("disaggregation is on");
        if generation != pd.link.generation {
            return; // the link's schedule changed since
        }
        let mut done = std::mem::take(&mut pd.done_buf);
        let next = pd.link.tick(now_us, pd.config.bandwidth_bytes_per_us, &mut done);
        let base = pd.config.base_latency_us.ceil() as u64;
        for p in done.drain(..) {
            self.queue.push(now_us.saturating_add(base), Event::TransferDone(p));
        }
        if let Some(at) = next {
            self.queue.push(at, Event::LinkTick { generation: pd.link.generation });
        }
        pd.done_buf = done;
    }

    /// The KV is on the decode instance: the request joins its wait queue.
    fn end_transfer(&mut self, now_us: u64, p: PendingId) {
        let pd = self.pd.as_mut().expect("disaggregation is on");
        let trip = self.pending[p].pd.as_mut().expect("a transfer belongs to a disaggregated request");
        let stamps = trip.stamps.as_mut().expect("handed off");
        stamps.transfer_done_us = now_us;
        pd.transfers_on_link -= 1;
        let r = &mut pd.report;
        r.transfers_completed += 1;
        let took = now_us - trip.transfer_start_us;
        r.transfer_duration.push(took);
        r.transfer_queueing.push(took.saturating_sub(trip.solo_us));
        let decode = trip.decode;
        self.push_instance_event(decode as usize, now_us, Event::Queued { instance: decode, pending: p });
    }

    /// Reports requests that left instance `i` to the router and to their source.
    fn settle(&mut self, i: usize, finished: &mut Vec<Finished>) {
        let last_us = finished.last().map(|f| f.at_us);
        for f in finished.drain(..) {
            if let Some(c) = &mut self.control {
                c.in_flight[i] = c.in_flight[i].saturating_sub(1);
            }
            if f.handoff {
                self.hand_off(f);
                continue;
            }
            if let Some(pd) = &mut self.pd {
                pd.trips.remove(&f.spec.id);
            }
            self.finished_total += 1;
            if let Some(c) = &mut self.control {
                if let Some(b) = &mut c.budgets {
                    b.on_finished(f.spec.tenant.as_deref());
                }
                if let Some(g) = &mut c.gateway {
                    if let Some(t) = &mut g.eviction {
                        t.untrack(f.spec.id);
                        g.dispatched_sheddable.remove(&f.spec.id);
                    }
                    if let Some(done) = &mut g.completions
                        && f.outcome == Outcome::Completed
                    {
                        done.push(Completion {
                            instance: i as u32,
                            class: f.spec.slo_class as u8,
                            arrival_us: f.spec.arrival_us,
                            request_id: f.spec.id,
                            e2e_us: f.at_us.saturating_sub(f.spec.arrival_us),
                        });
                    }
                }
            }
            if let Some(next) = self.source.on_request_done(&f.spec, f.at_us, f.outcome) {
                assert!(
                    !self.independent,
                    "a source that declared it never follows up answered a completion"
                );
                self.push_arrival(next);
            }
        }
        if let (Some(a), Some(at), Some(c)) = (&mut self.autoscale, last_us, &self.control) {
            a.on_settled(at, i, c.in_flight[i]);
        }
    }

    /// Warm-up and goodput bookkeeping of an arrival.
    fn count_arrival(&mut self, now_us: u64, p: PendingId) {
        let spec = &self.pending[p].spec;
        let k = &mut self.counters;
        k.first_arrival_us.get_or_insert(now_us);
        k.last_arrival_us = k.last_arrival_us.max(now_us);
        if self.measure.measured(spec) {
            k.first_measured_arrival_us.get_or_insert(now_us);
            k.measured_arrivals += 1;
            k.injected_by_label[self.measure.label(spec)] += 1;
        }
    }

    /// Sets warm-up exclusion, goodput targets and time-series sampling (before [`Simulation::run`]).
    pub fn set_measurement(&mut self, measure: crate::measure::Measurement) {
        let measure = std::sync::Arc::new(measure);
        for instance in &mut self.instances {
            instance.set_measurement(measure.clone());
        }
        self.measure = measure;
    }

    fn pull_next_arrival(&mut self) {
        if let Some(spec) = self.source.next_request() {
            debug_assert!(spec.arrival_us >= self.last_arrival_us, "source went back in time");
            self.last_arrival_us = spec.arrival_us;
            self.push_arrival(spec);
        }
    }

    fn push_arrival(&mut self, spec: RequestSpec) {
        let at = spec.arrival_us;
        let output_reusable = self.source.output_reusable(&spec);
        let p = self.pending.insert(Pending {
            spec,
            prompt_hashes: PromptHashes::default(),
            hashed: false,
            output_reusable,
            pd: None,
        });
        self.queue.push(at, Event::Arrival(p));
    }

    /// Hands a request to an instance: it reaches the wait queue after the server's queueing
    /// delay (API server, tokenization).
    fn send_to_instance(&mut self, now_us: u64, instance: usize, p: PendingId) {
        let input = self.pending[p].spec.input.len();
        let delay = self.instances[instance].latency().queueing_time_us(input);
        let at_us = now_us.saturating_add(delay);
        self.routed_since_burst += 1;
        if self.independent {
            // The request moves to its instance's lane, whose `Queued` ids index the lane's inbox.
            let lane = &mut self.lanes[instance];
            let id = lane.inbox.insert(self.pending.remove(p));
            lane.local.push(at_us, Event::Queued { instance: instance as u32, pending: id });
        } else {
            self.push_instance_event(
                instance,
                at_us,
                Event::Queued { instance: instance as u32, pending: p },
            );
        }
    }

    fn admit(&mut self, now_us: u64, p: PendingId) {
        let c = self.control.as_mut().expect("admission runs only in cluster mode");
        if let Some(models) = &c.models
            && models.index(self.pending[p].spec.model.as_deref()).is_none()
        {
            self.reject_unserved(now_us, p);
            return;
        }
        if c.needs_prompt_hashes() && !self.pending[p].hashed {
            let bs = self.instances[0].kv().block_size_tokens();
            let hashes = self.prompt_memo.hashes(&self.pending[p].spec.input, bs);
            self.pending[p].prompt_hashes = hashes;
            self.pending[p].hashed = true;
        }
        if let Some(prefix) = &mut c.prefix {
            prefix.refresh(now_us, &mut self.instances);
        }
        let signals = if self.independent {
            c.idle_signals.as_slice()
        } else {
            c.signals.view(now_us, &self.instances, &c.in_flight)
        };
        let prefix = c.prefix.as_ref().expect("set in new").oracle(&self.instances);
        let routable = routable_signals(self.autoscale.as_ref(), signals);
        let view = RouterView { now_us, signals: &routable, prefix: &prefix };
        let pending = &self.pending[p];
        let request = RoutingRequest::of(&pending.spec, &pending.prompt_hashes);
        let over_budget = c.budgets.as_ref().and_then(|b| b.check(&request));
        let gated = c.gateway.is_some();
        let verdict = match over_budget {
            Some(reason) => Verdict::Reject(reason),
            // The gateway queue is the admission decision under flow control.
            None if gated => Verdict::Admit,
            None => c.admission.decide(&request, &view),
        };
        match verdict {
            Verdict::Admit if gated => self.gateway_enqueue(now_us, p),
            Verdict::Admit => {
                let at = now_us.saturating_add(c.options.timing.routing_latency_us);
                self.queue.push(at, Event::Routing(p));
            }
            Verdict::Reject(reason) => {
                let record = DecisionRecord::rejected(now_us, pending.spec.id, reason);
                let class = pending.spec.slo_class.as_str();
                self.trace(record);
                self.counters.rejected += 1;
                *self.counters.rejected_by_class.entry(class).or_insert(0) += 1;
                let Pending { spec, .. } = self.pending.remove(p);
                self.finished_total += 1;
                if let Some(next) = self.source.on_request_done(&spec, now_us, Outcome::Rejected) {
                    self.push_arrival(next);
                }
            }
        }
    }

    /// Rejects a request no pool's model serves (before admission, as the reference rejects
    /// it at routing: no instance is a candidate).
    fn reject_unserved(&mut self, now_us: u64, p: PendingId) {
        let id = self.pending[p].spec.id;
        self.trace(DecisionRecord::rejected(now_us, id, "no pool serves the request's model"));
        self.counters.rejected += 1;
        self.counters.unserved_model += 1;
        let Pending { spec, .. } = self.pending.remove(p);
        self.finished_total += 1;
        if let Some(next) = self.source.on_request_done(&spec, now_us, Outcome::Rejected) {
            self.push_arrival(next);
        }
    }

    fn route(&mut self, now_us: u64, p: PendingId) {
        let c = self.control.as_mut().expect("routing runs only in cluster mode");
        if let Some(prefix) = &mut c.prefix {
            prefix.refresh(now_us, &mut self.instances);
        }
        let signals = if self.independent {
            c.idle_signals.as_slice()
        } else {
            c.signals.view(now_us, &self.instances, &c.in_flight)
        };
        let prefix = c.prefix.as_ref().expect("set in new").oracle(&self.instances);
        let view = RouterView { now_us, signals, prefix: &prefix };
        let pending = &self.pending[p];
        let mut request = RoutingRequest::of(&pending.spec, &pending.prompt_hashes);
        request.adapter = pending.spec.adapter.as_deref().and_then(|a| self.instances[0].lora_index(a));
        if let Some(pdr) = &mut c.pd {
            let d = route_among(
                pdr.decode_policy.as_mut(),
                &pdr.decode,
                &request,
                now_us,
                signals,
                &prefix,
                &mut c.rng,
            );
            let split = match pdr.decider {
                PdDeciderKind::Never => false,
                PdDeciderKind::Always => true,
                PdDeciderKind::PrefixThreshold => {
                    let cached = prefix.cached_blocks(d, request.prompt_hashes) * pdr.block_size_tokens;
                    request.input_tokens.saturating_sub(cached) > pdr.prefix_threshold_tokens
                }
            };
            let target = if split {
                route_among(
                    pdr.prefill_policy.as_mut(),
                    &pdr.prefill,
                    &request,
                    now_us,
                    signals,
                    &prefix,
                    &mut c.rng,
                )
            } else {
                d
            };
            // A shared-role instance picked for both legs serves the request whole.
            let split = split && target != d;
            // Both instances hold the request from now on (as llm-d sends it to the decode
            // pod's sidecar, which calls the prefill pod).
            c.in_flight[target] += 1;
            if split {
                c.in_flight[d] += 1;
            }
            if let Some(b) = &mut c.budgets {
                b.on_routed(request.tenant);
            }
            let record =
                c.trace.is_some().then(|| DecisionRecord::routed_unscored(now_us, pending.spec.id, target));
            if let Some(record) = record {
                self.trace(record);
            }
            if split {
                self.pd.as_mut().expect("set with PD routing").report.disaggregated += 1;
                self.pending[p].pd = Some(PdTrip {
                    prefill: target as u32,
                    decode: d as u32,
                    stamps: None,
                    transfer_start_us: 0,
                    solo_us: 0,
                });
            }
            self.send_to_instance(now_us, target, p);
            return;
        }
        // Multi-model fleets (several pools) and autoscaling (one pool) exclude each other.
        if let Some(models) = &c.models {
            let k = models.index(pending.spec.model.as_deref()).expect("admission rejected unserved models");
            let target = route_among(
                c.routing.as_mut(),
                models.instances(k),
                &request,
                now_us,
                signals,
                &prefix,
                &mut c.rng,
            );
            c.in_flight[target] += 1;
            if let Some(b) = &mut c.budgets {
                b.on_routed(request.tenant);
            }
            let record =
                c.trace.is_some().then(|| DecisionRecord::routed_unscored(now_us, pending.spec.id, target));
            if let Some(record) = record {
                self.trace(record);
            }
            self.send_to_instance(now_us, target, p);
            return;
        }
        let decision = match &mut self.autoscale {
            None => c.routing.route(&request, &view, &mut c.rng),
            Some(a) => {
                let target = route_among(
                    c.routing.as_mut(),
                    a.routable(),
                    &request,
                    now_us,
                    signals,
                    &prefix,
                    &mut c.rng,
                );
                a.on_routed(target);
                crate::cluster::routing::RouteDecision { target, scores: None }
            }
        };
        let target = decision.target;
        assert!(target < self.instances.len(), "router chose instance {target} of {}", self.instances.len());
        let record = c.trace.is_some().then(|| {
            let scores = decision
                .scores
                .clone()
                .unwrap_or_else(|| signals.iter().map(|s| -(s.effective_load() as f64)).collect());
            let (candidates, regret) =
                counterfactual(&scores, target, c.options.counterfactual_k, |i, score| {
                    let s = &signals[i];
                    Candidate {
                        instance: i,
                        score,
                        queue_depth: s.queue_depth,
                        batch_size: s.batch_size,
                        in_flight: s.in_flight,
                        kv_utilization: s.kv_utilization,
                    }
                });
            DecisionRecord {
                time_us: now_us,
                request_id: pending.spec.id,
                admitted: true,
                reason: None,
                chosen: Some(target),
                chosen_score: Some(scores[target]),
                scores: decision.scores.clone(),
                candidates,
                regret,
            }
        });
        c.in_flight[target] += 1;
        if let Some(b) = &mut c.budgets {
            b.on_routed(request.tenant);
        }
        if let Some(record) = record {
            self.trace(record);
        }
        self.send_to_instance(now_us, target, p);
    }

    fn trace(&mut self, record: DecisionRecord) {
        let Some(c) = &mut self.control else { return };
        let Some(summary) = &mut c.trace else { return };
        summary.record(&record);
        if let Some(sink) = &mut c.options.trace_sink
            && self.trace_error.is_none()
        {
            let line = serde_json::to_string(&record).expect("records serialize");
            if let Err(e) = writeln!(sink, "{line}") {
                self.trace_error = Some(e);
            }
        }
    }

    fn finish(mut self) -> SimReport {
        let waiting = self.control.as_ref().and_then(|c| c.gateway.as_ref()).map_or(0, |g| g.queue.len());
        let in_lanes: usize = self.lanes.iter().map(|l| l.inbox.len()).sum();
        self.counters.in_transit = (self.pending.len() + in_lanes) as u64
            - self.queue_pending_arrivals_not_injected()
            - waiting as u64;
        self.counters.in_transfer = self
            .pending
            .values()
            .filter(|p| p.pd.is_some_and(|t| t.stamps.is_some_and(|s| s.transfer_done_us == 0)))
            .count() as u64;
        let mut cluster = Metrics::default();
        let mut instances = Vec::with_capacity(self.instances.len());
        let waits = self.control.as_ref().and_then(|c| c.gateway.as_ref()).map(|g| &g.waits_us);
        // Finalizing checks each instance's KV cache (a pass over its blocks and index): one
        // share of the instances per thread.
        let horizon_us = self.horizon_us;
        let size = self.instances.len().div_ceil(self.threads);
        on_threads(self.instances.chunks_mut(size), |share| {
            share.iter_mut().for_each(|i| i.finalize(horizon_us))
        });
        for instance in &mut self.instances {
            if let Some(waits) = waits {
                for r in &mut instance.metrics.records {
                    r.gateway_queue_delay_ms = waits.get(&r.request_id).map(|&w| w as f64 / 1000.0);
                }
            }
            cluster.merge(&instance.metrics);
            instances.push(std::mem::take(&mut instance.metrics));
        }
        if let Some(g) = self.control.as_mut().and_then(|c| c.gateway.as_mut()) {
            let mut stats = std::mem::take(&mut g.stats);
            if let Some(done) = g.completions.take() {
                stats.priority_inversions = priority_inversions(done);
            }
            let depths: Vec<f64> = instances
                .iter()
                .map(|m| {
                    let s = &m.series.samples;
                    let sum: u64 = s.iter().map(|x| u64::from(x.queued)).sum();
                    if s.is_empty() { 0.0 } else { sum as f64 / s.len() as f64 }
                })
                .collect();
            stats.hol_blocking_events = hol_blocking_events(&depths);
            stats.depth_changes(cluster.end_us.max(stats.last_change_us), waiting);
            stats.depth_at_end = waiting as u64;
            self.counters.gateway = Some(stats);
        }
        SimReport {
            instances,
            cluster,
            counters: self.counters,
            trace: self.control.and_then(|c| c.trace),
            events: self.events,
            measurement: self.measure,
            pd: self.pd.map(|p| p.report),
            autoscale: self.autoscale.map(|a| a.finish(self.progress_us)),
        }
    }

    /// An autoscaler tick: it reads the routable and loading instances, places or drains
    /// instances, and ticks again while anything is left to happen.
    fn autoscale_tick(&mut self, now_us: u64) {
        let Some(a) = &mut self.autoscale else { return };
        let instances = &self.instances;
        let read = |i: usize| {
            let kv = instances[i].kv();
            let bs = u64::from(kv.block_size_tokens());
            crate::autoscale::Reading {
                kv_total_tokens: u64::from(kv.total_blocks()) * bs,
                kv_used_tokens: u64::from(kv.used_blocks()) * bs,
                queue_depth: instances[i].queue_depth(),
            }
        };
        let in_flight = &self.control.as_ref().expect("autoscaling needs a cluster").in_flight;
        match a.tick(now_us, read, in_flight) {
            crate::autoscale::Tick::Nothing => {}
            crate::autoscale::Tick::Placed(placed) => {
                for (i, at) in placed {
                    self.queue.push(at, Event::InstanceReady { instance: i as u32 });
                }
            }
            crate::autoscale::Tick::Deferred(at) => self.queue.push(at, Event::AutoscaleActuate),
        }
        if !self.queue.is_empty() {
            let next = now_us.saturating_add(a.interval_us());
            self.queue.push(next, Event::AutoscaleTick);
        }
    }

    /// Flow control: an admitted request enters the gateway queue (or is turned away, or
    /// pushes a lower-priority one out), and dispatch is tried.
    fn gateway_enqueue(&mut self, now_us: u64, p: PendingId) {
        let c = self.control.as_mut().expect("cluster mode");
        let g = c.gateway.as_mut().expect("flow control");
        let spec = &self.pending[p].spec;
        let request_id = spec.id;
        let seq = g.next_seq;
        let entry = Entry {
            item: p,
            request_id,
            class: spec.slo_class,
            tenant: spec.tenant.clone(),
            priority: g.config.slo_priorities.admission(spec.slo_class),
            enqueued_us: now_us,
            seq: g.next_seq,
            slo_target_us: spec.slo_target_us,
        };
        g.next_seq += 1;
        g.stats.depth_changes(now_us, g.queue.len());
        let outcome = g.queue.enqueue(entry);
        g.stats.depth_now(g.queue.len());
        let ttl = g.config.request_ttl_us;
        match outcome {
            EnqueueOutcome::Rejected => {
                g.stats.rejected += 1;
                self.gateway_leave(now_us, p, Outcome::Rejected);
                return;
            }
            EnqueueOutcome::Shed(victim) => {
                g.stats.shed += 1;
                *g.stats.shed_by_class.entry(victim.class.as_str()).or_insert(0) += 1;
                self.gateway_leave(now_us, victim.item, Outcome::Rejected);
            }
            EnqueueOutcome::Enqueued => {}
        }
        if ttl > 0 && now_us.saturating_add(ttl) <= MAX_SIM_TIME_US {
            self.queue.push(now_us + ttl, Event::GatewayExpiry { pending: p, seq });
        }
        self.gateway_dispatch(now_us, true);
    }

    /// A request leaves from the gateway without reaching an instance.
    fn gateway_leave(&mut self, now_us: u64, p: PendingId, outcome: Outcome) {
        let Pending { spec, .. } = self.pending.remove(p);
        self.finished_total += 1;
        if let Some(next) = self.source.on_request_done(&spec, now_us, outcome) {
            self.push_arrival(next);
        }
    }

    /// Hands the next waiting request to the router if the saturation detector allows it (one
    /// per attempt). Saturated with a non-sheddable request waiting, it evicts one sheddable
    /// request in flight instead (`--in-flight-eviction`). Keeps a dispatch tick scheduled
    /// while requests wait (`schedule_tick`; the tick itself reschedules).
    fn gateway_dispatch(&mut self, now_us: u64, schedule_tick: bool) {
        let c = self.control.as_mut().expect("cluster mode");
        let g = c.gateway.as_mut().expect("flow control");
        if g.queue.is_empty() {
            return;
        }
        if schedule_tick && !g.tick_pending {
            g.tick_pending = true;
            self.queue.push(now_us.saturating_add(g.config.dispatch_tick_us), Event::GatewayTick);
        }
        let signals = c.signals.view(now_us, &self.instances, &c.in_flight);
        let saturation = g.detector.saturation(&routable_signals(self.autoscale.as_ref(), signals));
        assert!(saturation.is_finite(), "saturation detector returned {saturation}");
        if saturation >= 1.0
            && g.queue.has_non_sheddable_waiting()
            && let Some(victim) = g.eviction.as_mut().and_then(|t| t.pop())
        {
            self.evict(now_us, victim);
            return;
        }
        g.stats.depth_changes(now_us, g.queue.len());
        let Some(entry) = g.queue.dispatch(saturation) else { return };
        g.stats.wait_us.push(now_us - entry.enqueued_us);
        g.waits_us.insert(entry.request_id, now_us - entry.enqueued_us);
        if g.eviction.is_some() && entry.priority < 0 {
            g.dispatched_sheddable.insert(entry.request_id, now_us);
        }
        let at = now_us.saturating_add(c.options.timing.routing_latency_us);
        self.queue.push(at, Event::Routing(entry.item));
    }

    fn gateway_tick(&mut self, now_us: u64) {
        let g = self.control.as_mut().and_then(|c| c.gateway.as_mut()).expect("flow control");
        if !g.queue.is_empty() {
            self.gateway_dispatch(now_us, false);
        }
        let g = self.control.as_mut().and_then(|c| c.gateway.as_mut()).expect("flow control");
        if g.queue.is_empty() {
            g.tick_pending = false;
        } else {
            self.queue.push(now_us.saturating_add(g.config.dispatch_tick_us), Event::GatewayTick);
        }
    }

    /// `--request-ttl`: a request still waiting at the gateway expires.
    fn gateway_expire(&mut self, now_us: u64, p: PendingId, seq: u64) {
        let g = self.control.as_mut().and_then(|c| c.gateway.as_mut()).expect("flow control");
        let depth = g.queue.len();
        let Some(entry) = g.queue.remove(seq) else { return };
        debug_assert_eq!(entry.item, p);
        g.stats.depth_changes(now_us, depth);
        g.stats.expired += 1;
        *g.stats.shed_by_class.entry(entry.class.as_str()).or_insert(0) += 1;
        self.gateway_leave(now_us, p, Outcome::TimedOut);
    }

    /// Remembers a sheddable request dispatched by the gateway once it is on its instance.
    fn track_evictable(
        &mut self,
        instance: u32,
        req: crate::slab::ReqId,
        request_id: u64,
        class: blis_workload::SloClass,
    ) {
        let Some(g) = self.control.as_mut().and_then(|c| c.gateway.as_mut()) else { return };
        let Some(t) = &mut g.eviction else { return };
        if let Some(dispatched_us) = g.dispatched_sheddable.remove(&request_id) {
            let priority = g.config.slo_priorities.admission(class);
            t.track(priority, dispatched_us, Placement { instance, req, request_id });
        }
    }

    /// Ends a sheddable request on its instance to make room (`--in-flight-eviction`).
    fn evict(&mut self, now_us: u64, at: Placement) {
        let i = at.instance as usize;
        if !self.instances[i].holds(at.req, at.request_id) {
            return;
        }
        let mut finished = std::mem::take(&mut self.finished_buf);
        let f = self.instances[i].evict(now_us, at.req);
        let g = self.control.as_mut().and_then(|c| c.gateway.as_mut()).expect("flow control");
        g.stats.evicted += 1;
        *g.stats.shed_by_class.entry(f.spec.slo_class.as_str()).or_insert(0) += 1;
        finished.push(f);
        self.settle(i, &mut finished);
        self.finished_buf = finished;
    }

    /// Pending entries whose arrival lies beyond the horizon never entered the system.
    fn queue_pending_arrivals_not_injected(&mut self) -> u64 {
        let mut n = 0;
        while let Some((_, event)) = self.queue.pop() {
            if let Event::Arrival(_) = event {
                n += 1;
            }
        }
        n
    }
}
