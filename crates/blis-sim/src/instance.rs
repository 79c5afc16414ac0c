//! One inference server: wait queue, vLLM-V1-style batch formation, step execution.
//!
//! `step` is the single place that decides a step's batch (as vLLM's scheduler does). It asks
//! the KV cache for blocks through `KvCache::allocate`/`release` only. State changes of a step
//! apply at its start time `now`; latencies are stamped at its end `now + step_time`.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use blis_latency::{LatencyModel, PrefillChunk, StepShape};
use blis_workload::{Outcome, RequestSpec};

use crate::kv::KvCache;
use crate::metrics::{Metrics, RequestRecord};
use crate::preemption::PreemptionPolicy;
use crate::request::{LiveRequest, Phase, PromptHashes};
use crate::scheduler::Scheduler;
pub use crate::semantics::EngineSemantics;
use crate::slab::{ReqId, Slab};

/// Static configuration of an instance (vLLM engine arguments).
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// `max_num_seqs`: cap on the running batch.
    pub max_running_reqs: u32,
    /// `max_num_batched_tokens`: token budget of one step.
    pub max_scheduled_tokens: u32,
    /// Per-request prefill chunk cap; 0 = off.
    pub long_prefill_token_threshold: u32,
    /// Context limit; 0 = unlimited.
    pub max_model_len: u32,
    pub block_size_tokens: u32,
    pub total_kv_blocks: u32,
    /// Reuse cached prompt blocks across requests (vLLM `enable_prefix_caching`).
    pub prefix_caching: bool,
    /// vLLM V1 async scheduling: step k+1 is scheduled while step k runs, so a request that
    /// reaches the queue during a step can first be admitted one step later.
    pub async_scheduling: bool,
    /// Whether SLO classes give requests different priorities (`--priority-policy slo-based`).
    pub slo_priorities: bool,
    /// Keep a record per finished request (`--results-path`).
    pub record_requests: bool,
    /// Keep per-SLO-class distributions.
    pub track_classes: bool,
    /// Where the engine follows the reference simulator instead of vLLM (default: vLLM's way).
    pub semantics: EngineSemantics,
}

/// A request that left the instance.
#[derive(Debug, Clone)]
pub struct Finished {
    pub spec: RequestSpec,
    pub outcome: Outcome,
    /// When the client sees the request end ([`EngineSemantics::follow_up_from_step_end`]).
    pub at_us: u64,
}

/// What `enqueue` did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// In the wait queue under this handle.
    Queued(ReqId),
    /// Can never be served here (too long for the context or the cache).
    Dropped,
    /// Its deadline had already passed.
    TimedOut,
}

thread_local! {
    static FORCE_EXACT_STEPS: Cell<bool> = Cell::new(std::env::var_os("BLIS_EXACT_STEPS").is_some_and(|v| v != "0"));
}

/// Makes instances created afterwards on this thread always take the exact per-request step
/// (no lockstep decode). For tests comparing both paths; the environment variable
/// `BLIS_EXACT_STEPS=1` sets the default.
pub fn force_exact_steps(on: bool) {
    FORCE_EXACT_STEPS.with(|f| f.set(on));
}

/// Exact steps taken after a step that could not use the lockstep path, before trying again
/// (re-entering lockstep costs a pass over the batch).
const EXACT_STEPS_AFTER_FALLBACK: u32 = 8;

/// A due event of a lockstep member: (lockstep clock, admission seq, member token, handle).
/// Popping in heap order yields a clock's events in batch order.
type Due = Reverse<(u64, u64, u64, ReqId)>;

/// The members' KV events (`form_due`): each is due at most a block's worth of steps ahead, so
/// they sit in a timing wheel of that many slots instead of a heap — pushing is an append, and
/// a clock's slot is taken whole and sorted by admission seq (batch order). Entries are
/// (admission seq, member token, handle).
#[derive(Default)]
struct FormWheel {
    slots: Vec<Vec<(u64, u64, ReqId)>>,
    mask: u64,
}

impl FormWheel {
    fn new(block_size_tokens: u32) -> Self {
        let n = (u64::from(block_size_tokens) + 2).next_power_of_two();
        Self { slots: (0..n).map(|_| Vec::new()).collect(), mask: n - 1 }
    }

    #[inline]
    fn push(&mut self, clock: u64, at: u64, seq: u64, token: u64, id: ReqId) {
        assert!(at >= clock && at - clock <= self.mask, "KV event beyond the wheel");
        self.slots[(at & self.mask) as usize].push((seq, token, id));
    }

    fn clear(&mut self) {
        for s in &mut self.slots {
            s.clear();
        }
    }
}

/// Lockstep decode state. In steady state every decoding request advances one token per step
/// and shares the step's ITL, so decoders are not touched per step: the instance keeps a clock
/// of lockstep steps and the cumulative ITL, members keep their values at the clock they joined,
/// and a member is visited only when something happens to it — its KV needs a block or seals
/// one (`form_due`), it completes (`done_due`), times out, or a step needs the exact path.
#[derive(Default)]
struct Lockstep {
    active: bool,
    /// Never enter lockstep (tests; `BLIS_EXACT_STEPS`).
    disabled: bool,
    exact_left: u32,
    clock: u64,
    itl_cum: u64,
    members: u32,
    /// Σ progress of the members at `clock` (the step shape's decode context).
    context_sum: u64,
    by_class: [u64; 5],
    next_token: u64,
    /// `LiveRequest::lock_token` by handle (0 = not a member), dense, so that skipping stale
    /// heap entries does not touch the requests.
    tokens: Vec<u64>,
    form_due: FormWheel,
    done_due: BinaryHeap<Due>,
    /// Running requests still in prefill, in batch order.
    prefilling: Vec<ReqId>,
    prefill_buf: Vec<ReqId>,
    scratch: Vec<(u64, ReqId)>,
    retired: Vec<ReqId>,
    fast_steps: u64,
    fallbacks: [u64; 3],
}

pub struct Instance {
    pub index: usize,
    config: InstanceConfig,
    kv: KvCache,
    latency: Arc<dyn LatencyModel>,
    scheduler: Box<dyn Scheduler>,
    preemption: Box<dyn PreemptionPolicy>,
    requests: Slab<LiveRequest>,
    waiting: VecDeque<ReqId>,
    running: Vec<ReqId>,
    /// Reused buffer: the shape of the step being executed.
    shape: StepShape,
    /// Admission counter (`LiveRequest::seq`).
    next_seq: u64,
    lock: Lockstep,
    pub metrics: Metrics,
}

impl Instance {
    pub fn new(
        index: usize,
        config: InstanceConfig,
        latency: Arc<dyn LatencyModel>,
        scheduler: Box<dyn Scheduler>,
        preemption: Box<dyn PreemptionPolicy>,
    ) -> Self {
        let kv = KvCache::new(config.total_kv_blocks, config.block_size_tokens);
        let metrics = Metrics { total_kv_blocks: u64::from(config.total_kv_blocks), ..Metrics::default() };
        let form_due = FormWheel::new(config.block_size_tokens);
        Self {
            index,
            config,
            kv,
            latency,
            scheduler,
            preemption,
            requests: Slab::default(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            shape: StepShape::default(),
            next_seq: 0,
            lock: Lockstep { disabled: FORCE_EXACT_STEPS.with(Cell::get), form_due, ..Lockstep::default() },
            metrics,
        }
    }

    pub fn latency(&self) -> &dyn LatencyModel {
        self.latency.as_ref()
    }

    pub fn kv(&self) -> &KvCache {
        &self.kv
    }

    pub fn queue_depth(&self) -> u32 {
        self.waiting.len() as u32
    }

    pub fn batch_size(&self) -> u32 {
        self.running.len() as u32
    }

    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty()
    }

    /// Whether the request behind `id` is still `request_id` (handles are reused).
    pub fn holds(&self, id: ReqId, request_id: u64) -> bool {
        self.requests.get(id).is_some_and(|r| r.spec.id == request_id)
    }

    /// Applies the enqueue guards and appends the request to the wait queue. `output_reusable`:
    /// whether a later prompt may contain this request's output
    /// ([`blis_workload::RequestSource::output_reusable`]); when false, the blocks its decode
    /// fills are not hashed or indexed.
    pub fn enqueue(
        &mut self,
        now_us: u64,
        spec: RequestSpec,
        output_reusable: bool,
        finished: &mut Vec<Finished>,
    ) -> Enqueued {
        self.enqueue_hashed(now_us, spec, output_reusable, None, finished)
    }

    /// [`Instance::enqueue`] with the prompt's block hashes at this instance's block size,
    /// when the caller already computed them (the router does for prefix-aware policies).
    pub fn enqueue_hashed(
        &mut self,
        now_us: u64,
        spec: RequestSpec,
        output_reusable: bool,
        prompt_hashes: Option<PromptHashes>,
        finished: &mut Vec<Finished>,
    ) -> Enqueued {
        let input = spec.input.len();
        let budget = spec.max_output_tokens.max(spec.output_tokens);
        let mml = self.config.max_model_len;
        let bs = self.config.block_size_tokens;
        let too_long = mml > 0 && (input >= mml || input + budget > mml);
        // A request whose whole context cannot fit in the cache would preempt itself forever.
        let too_big = (input + budget).div_ceil(bs) > self.config.total_kv_blocks;
        if too_long || too_big || input == 0 {
            self.metrics.dropped_unservable += 1;
            finished.push(Finished { spec, outcome: Outcome::Dropped, at_us: now_us });
            return Enqueued::Dropped;
        }
        self.metrics.total_input_tokens += u64::from(input);
        if let Some(tenant) = &spec.tenant {
            self.metrics.by_tenant.entry(tenant.clone()).or_default().requests += 1;
        }
        if spec.deadline_us.is_some_and(|d| now_us >= d) {
            self.metrics.timed_out += 1;
            finished.push(Finished { spec, outcome: Outcome::TimedOut, at_us: now_us });
            return Enqueued::TimedOut;
        }
        self.metrics.enqueued += 1;
        let priority = if self.config.slo_priorities { spec.slo_class.vllm_priority() } else { 1 };
        let id = self.requests.insert(LiveRequest::new(spec, bs, priority, output_reusable, prompt_hashes));
        // Under async scheduling the next step's batch was fixed when the running step started.
        if self.config.async_scheduling && self.has_work() {
            self.requests[id].eligible_from_step = self.metrics.steps + 2;
        }
        self.waiting.push_back(id);
        Enqueued::Queued(id)
    }

    /// Runs one step starting at `now_us`; returns its duration. Requests that finish are
    /// appended to `finished`.
    pub fn step(&mut self, now_us: u64, finished: &mut Vec<Finished>) -> u64 {
        self.metrics.steps += 1;
        self.scheduler.order(&mut self.waiting, &self.requests);
        if let Some(&head) = self.waiting.front()
            && (self.running.len() as u32) < self.config.max_running_reqs
        {
            // The queue head is likely admitted at the end of batch formation: start fetching
            // the index slots its prefix lookups and block seals will probe.
            self.kv.prefetch_index(&self.requests[head].prompt_hashes);
        }
        if !self.lock.active && !self.lock.disabled {
            if self.lock.exact_left > 0 {
                self.lock.exact_left -= 1;
            } else {
                self.enter_lockstep();
            }
        }
        let fast = self.lock.active && self.form_fast(now_us);
        if !fast {
            if self.lock.active {
                self.leave_lockstep();
                self.lock.exact_left = EXACT_STEPS_AFTER_FALLBACK;
            }
            // Batch formation also builds the step's shape (one pass over the batch).
            self.form_batch(now_us);
        }
        let step_us = if self.shape.is_empty() { 1 } else { self.latency.step_time_us(&self.shape).max(1) };
        let end_us = now_us + step_us;
        if fast {
            self.execute_fast(end_us, step_us, finished);
        } else {
            self.execute_and_complete(end_us, step_us, finished);
        }
        self.metrics.peak_kv_blocks = self.metrics.peak_kv_blocks.max(self.kv.used_blocks());
        self.metrics.end_us = self.metrics.end_us.max(end_us);

        // A queue whose head cannot be admitted into an empty batch would spin forever; the
        // enqueue guards make this unreachable, and the assertion keeps it so.
        debug_assert!(
            !(self.running.is_empty() && !self.waiting.is_empty() && self.shape.is_empty()),
            "instance {} idles with a non-empty queue",
            self.index
        );
        step_us
    }

    /// Adds a scheduled request to the step's shape.
    fn add_to_shape(shape: &mut StepShape, r: &LiveRequest) {
        if r.in_prefill() {
            shape.prefills.push(PrefillChunk {
                new_tokens: r.new_tokens,
                context_tokens: r.progress_tokens,
                input_tokens: r.input_tokens,
            });
        } else {
            shape.decode_requests += 1;
            shape.decode_context_tokens += u64::from(r.progress_tokens);
        }
    }

    /// Decides this step's batch: running requests first, then new ones from the queue head.
    /// Fills `self.shape` with what the batch computes, in running-batch order.
    fn form_batch(&mut self, now_us: u64) {
        let mut budget = self.config.max_scheduled_tokens;
        self.shape.clear();
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let id = self.running[i];
            let r = &self.requests[id];
            let n = if r.in_prefill() {
                self.clamp_chunk(r.input_tokens - r.progress_tokens, budget, r.progress_tokens)
            } else {
                self.clamp_chunk(1, budget, r.progress_tokens)
            };
            if n == 0 {
                self.requests[id].new_tokens = 0;
                i += 1;
                continue;
            }
            let end = r.progress_tokens + n;
            if !self.allocate_or_preempt(&mut i, end, &mut budget, &mut preempted) {
                break;
            }
            let r = &mut self.requests[id];
            r.new_tokens = n;
            Self::add_to_shape(&mut self.shape, r);
            budget -= n;
            i += 1;
        }
        // Requests the budget did not reach compute nothing this step.
        for &id in &self.running[i.min(self.running.len())..] {
            self.requests[id].new_tokens = 0;
        }
        if preempted {
            // A victim may already have been added to the shape: rebuild it.
            self.shape.clear();
            for &id in &self.running {
                let r = &self.requests[id];
                if r.new_tokens > 0 {
                    Self::add_to_shape(&mut self.shape, r);
                }
            }
        }

        if !preempted {
            self.admit(now_us, budget);
        }
    }

    /// Second stage of the queue head's prefetch (the first, at the start of the step, fetched
    /// its index slots): the blocks its prefix lookup will check.
    fn prefetch_head_blocks(&self) {
        if self.config.prefix_caching
            && let Some(&head) = self.waiting.front()
            && (self.running.len() as u32) < self.config.max_running_reqs
        {
            self.kv.prefetch_index_blocks(&self.requests[head].prompt_hashes);
        }
    }

    /// Admits new requests from the queue head while budget, batch room and blocks allow.
    fn admit(&mut self, now_us: u64, mut budget: u32) {
        let bs = self.config.block_size_tokens;
        let mut pos = 0;
        while budget > 0
            && (self.running.len() as u32) < self.config.max_running_reqs
            && let Some(&id) = self.waiting.get(pos)
        {
            let r = &self.requests[id];
            if r.eligible_from_step > self.metrics.steps {
                pos += 1; // not yet visible to the scheduler (async scheduling)
                continue;
            }
            let mut cached_blocks =
                if self.config.prefix_caching { self.kv.cached_prefix_blocks(&r.prompt_hashes) } else { 0 };
            // As vLLM: the last prompt token is always computed, to produce the first output.
            let whole_prompt_cached = cached_blocks * bs >= r.input_tokens;
            if whole_prompt_cached && self.config.semantics.compute_last_prompt_token {
                cached_blocks = (r.input_tokens - 1) / bs;
            }
            let start = cached_blocks * bs;
            let n = self.clamp_chunk(r.input_tokens - start, budget, start);
            let r = &mut self.requests[id];
            let claim = &r.prompt_hashes[..cached_blocks as usize];
            // Reference semantics: a wholly cached prompt joins with nothing to compute.
            let nothing_to_compute = start == r.input_tokens;
            if (n == 0 && !nothing_to_compute)
                || !self.kv.allocate(&mut r.kv, r.sequence.as_ref(), &r.prompt_hashes, claim, start + n)
            {
                break;
            }
            self.waiting.remove(pos);
            r.phase = Phase::Running;
            r.progress_tokens = start;
            r.new_tokens = n;
            r.cached_prompt_tokens = start;
            r.scheduling_delay_us = Some(now_us.saturating_sub(r.spec.arrival_us));
            r.seq = self.next_seq;
            self.next_seq += 1;
            self.metrics.prompt_tokens_cached += u64::from(start);
            if n > 0 && self.config.semantics.first_chunk_after_cached_prefix {
                Self::add_to_shape(&mut self.shape, r);
            } else if n > 0 {
                self.shape.prefills.push(PrefillChunk {
                    new_tokens: n,
                    context_tokens: 0,
                    input_tokens: r.input_tokens,
                });
            }
            self.running.push(id);
            if self.lock.active {
                self.lock.prefilling.push(id);
            }
            budget -= n;
        }
    }

    /// Progress at which a decoding request leaves the batch: its last output token, or the
    /// context limit.
    fn end_progress(&self, r: &LiveRequest) -> u32 {
        let done = r.done_at_progress();
        let mml = self.config.max_model_len;
        if mml > 0 { done.min(mml - 1) } else { done }
    }

    /// Starts lockstep decode: every decoding request joins, prefilling ones are listed.
    fn enter_lockstep(&mut self) {
        debug_assert!(self.lock.members == 0 && self.lock.prefilling.is_empty());
        self.lock.active = true;
        for k in 0..self.running.len() {
            let id = self.running[k];
            if self.requests[id].in_prefill() {
                self.lock.prefilling.push(id);
            } else {
                self.join(id);
            }
        }
    }

    /// Ends lockstep decode: every member's explicit state is brought up to date.
    fn leave_lockstep(&mut self) {
        let (clock, itl_cum) = (self.lock.clock, self.lock.itl_cum);
        for &id in &self.running {
            let r = &mut self.requests[id];
            if r.lock_token != 0 {
                Self::sync(r, clock, itl_cum);
                r.lock_token = 0;
            }
        }
        let lock = &mut self.lock;
        lock.active = false;
        lock.members = 0;
        lock.context_sum = 0;
        lock.by_class = [0; 5];
        lock.form_due.clear();
        lock.done_due.clear();
        lock.prefilling.clear();
        lock.tokens.fill(0);
    }

    /// Brings a member's explicit progress and ITL up to lockstep clock `clock`.
    #[inline]
    fn sync(r: &mut LiveRequest, clock: u64, itl_cum: u64) {
        let d = clock - r.lock_clock0;
        r.progress_tokens += d as u32;
        r.itl_samples += d as u32;
        r.itl_sum_us += itl_cum - r.lock_itl0;
        r.lock_clock0 = clock;
        r.lock_itl0 = itl_cum;
    }

    /// Lockstep clock of a member's next KV event: the step whose token fills its last block
    /// (seal) or needs a new one. A request whose decode blocks are not hashed
    /// (`sequence` is `None`) seals nothing while decoding: only the new block is an event.
    fn next_form_due(&self, r: &LiveRequest) -> u64 {
        self.lock.clock + u64::from(Self::steps_to_form_due(r, self.config.block_size_tokens))
    }

    /// Steps from a member's current progress to its next KV event (see `next_form_due`).
    #[inline]
    fn steps_to_form_due(r: &LiveRequest, bs: u32) -> u32 {
        let slots = r.kv.num_blocks() as u32 * bs;
        if r.sequence.is_some() {
            (slots.max(1) - 1).saturating_sub(r.progress_tokens)
        } else {
            slots.saturating_sub(r.progress_tokens)
        }
    }

    /// Makes decoding request `id` (explicit state current) a member as of the current clock.
    fn join(&mut self, id: ReqId) {
        let end = self.end_progress(&self.requests[id]);
        let form = self.next_form_due(&self.requests[id]);
        let lock = &mut self.lock;
        let r = &mut self.requests[id];
        debug_assert!(!r.in_prefill() && r.progress_tokens < end);
        lock.next_token += 1;
        r.lock_token = lock.next_token;
        if lock.tokens.len() <= id as usize {
            lock.tokens.resize(id as usize + 1, 0);
        }
        lock.tokens[id as usize] = r.lock_token;
        r.lock_clock0 = lock.clock;
        r.lock_itl0 = lock.itl_cum;
        lock.members += 1;
        lock.context_sum += u64::from(r.progress_tokens);
        lock.by_class[r.spec.slo_class as usize] += 1;
        let done = lock.clock + u64::from(end - 1 - r.progress_tokens);
        lock.form_due.push(lock.clock, form, r.seq, r.lock_token, id);
        lock.done_due.push(Reverse((done, r.seq, r.lock_token, id)));
    }

    /// Removes member `id` (explicit state brought current).
    fn unjoin(&mut self, id: ReqId) {
        let r = &mut self.requests[id];
        Self::sync(r, self.lock.clock, self.lock.itl_cum);
        r.lock_token = 0;
        self.lock.tokens[id as usize] = 0;
        self.lock.members -= 1;
        self.lock.context_sum -= u64::from(r.progress_tokens);
        self.lock.by_class[r.spec.slo_class as usize] -= 1;
    }

    /// `pop_due` for the KV events (wheel slot of `clock`).
    fn pop_form_due(
        wheel: &mut FormWheel,
        clock: u64,
        tokens: &[u64],
        requests: &Slab<LiveRequest>,
        out: &mut Vec<(u64, ReqId)>,
    ) {
        out.clear();
        let slot = &mut wheel.slots[(clock & wheel.mask) as usize];
        for &(seq, token, id) in slot.iter() {
            if tokens.get(id as usize) == Some(&token) {
                debug_assert_eq!(requests[id].lock_token, token);
                requests.prefetch(id);
                out.push((seq, id));
            }
        }
        slot.clear();
        out.sort_unstable_by_key(|&(seq, _)| seq);
    }

    /// Pops the valid entries of `heap` due at or before `clock` into `out`, in batch order,
    /// and prefetches their requests (which are visited next).
    fn pop_due(
        heap: &mut BinaryHeap<Due>,
        clock: u64,
        tokens: &[u64],
        requests: &Slab<LiveRequest>,
        out: &mut Vec<(u64, ReqId)>,
    ) {
        out.clear();
        while let Some(&Reverse((at, seq, token, id))) = heap.peek() {
            if at > clock {
                break;
            }
            heap.pop();
            if tokens.get(id as usize) == Some(&token) {
                debug_assert_eq!(at, clock, "missed lockstep event");
                debug_assert_eq!(requests[id].lock_token, token);
                requests.prefetch(id);
                out.push((seq, id));
            }
        }
    }

    /// Batch formation in lockstep: valid only when it is guaranteed to equal `form_batch` —
    /// every running request gets its whole demand within the budget (so batch order cannot
    /// starve anyone) and the free blocks cover every allocation (so nobody is preempted).
    /// Returns false, having changed nothing but the due heaps, when that does not hold.
    fn form_fast(&mut self, now_us: u64) -> bool {
        let budget = self.config.max_scheduled_tokens;
        let mut demand = u64::from(self.lock.members);
        let mut blocks = 0u32;
        for &id in &self.lock.prefilling {
            let r = &self.requests[id];
            let n = self.clamp_chunk(r.input_tokens - r.progress_tokens, budget, r.progress_tokens);
            if n == 0 {
                self.lock.fallbacks[0] += 1;
                return false;
            }
            demand += u64::from(n);
            blocks += self.kv.new_blocks_needed(&r.kv, r.progress_tokens + n);
        }
        if demand > u64::from(budget) {
            self.lock.fallbacks[1] += 1;
            return false;
        }
        let clock = self.lock.clock;
        let mut due = std::mem::take(&mut self.lock.scratch);
        Self::pop_form_due(&mut self.lock.form_due, clock, &self.lock.tokens, &self.requests, &mut due);
        self.prefetch_head_blocks();
        let bs = self.config.block_size_tokens;
        for &(_, id) in &due {
            let r = &self.requests[id];
            let progress = r.progress_tokens + (clock - r.lock_clock0) as u32;
            blocks += (progress + 1).saturating_sub(r.kv.num_blocks() as u32 * bs).div_ceil(bs);
        }
        if blocks > self.kv.free_blocks() {
            self.lock.fallbacks[2] += 1;
            self.lock.scratch = due;
            return false;
        }

        // Allocate in batch order: members with a KV event, and prefilling requests.
        self.shape.clear();
        let (mut a, mut b) = (0, 0);
        while a < due.len() || b < self.lock.prefilling.len() {
            let pre = self.lock.prefilling.get(b).copied();
            let take_due = match (due.get(a), pre) {
                (Some(&(seq, _)), Some(p)) => seq < self.requests[p].seq,
                (Some(_), None) => true,
                _ => false,
            };
            if take_due {
                let id = due[a].1;
                a += 1;
                let r = &mut self.requests[id];
                Self::sync(r, clock, self.lock.itl_cum);
                r.kv.sync_tokens(r.progress_tokens, bs);
                let ok = self.kv.allocate(
                    &mut r.kv,
                    r.sequence.as_ref(),
                    &r.prompt_hashes,
                    &[],
                    r.progress_tokens + 1,
                );
                debug_assert!(ok, "lockstep allocation failed after the capacity check");
                // Next event: counted from the next step's progress.
                r.progress_tokens += 1;
                let next = clock + 1 + u64::from(Self::steps_to_form_due(r, bs));
                r.progress_tokens -= 1;
                self.lock.form_due.push(clock, next, r.seq, r.lock_token, id);
            } else {
                let id = pre.expect("checked");
                b += 1;
                let r = &self.requests[id];
                let n = self.clamp_chunk(r.input_tokens - r.progress_tokens, budget, r.progress_tokens);
                let r = &mut self.requests[id];
                let ok = self.kv.allocate(
                    &mut r.kv,
                    r.sequence.as_ref(),
                    &r.prompt_hashes,
                    &[],
                    r.progress_tokens + n,
                );
                debug_assert!(ok, "lockstep allocation failed after the capacity check");
                r.new_tokens = n;
                Self::add_to_shape(&mut self.shape, r);
            }
        }
        self.lock.scratch = due;
        self.shape.decode_requests = self.lock.members;
        self.shape.decode_context_tokens = self.lock.context_sum;
        self.admit(now_us, budget - demand as u32);
        self.lock.fast_steps += 1;
        true
    }

    /// `execute_and_complete` for a step formed by `form_fast`: advances the lockstep clock,
    /// then visits only prefilling requests and members that complete, in batch order.
    fn execute_fast(&mut self, end_us: u64, step_us: u64, finished: &mut Vec<Finished>) {
        let otpt_us = self.latency.output_token_processing_time_us();
        let itl_us = step_us + otpt_us;
        let clock = self.lock.clock;
        let decoders = u64::from(self.lock.members);
        let decoders_by_class = self.lock.by_class;
        self.lock.clock += 1;
        self.lock.itl_cum += itl_us;
        self.lock.context_sum += decoders;

        let mut due = std::mem::take(&mut self.lock.scratch);
        Self::pop_due(&mut self.lock.done_due, clock, &self.lock.tokens, &self.requests, &mut due);
        let mut retired = std::mem::take(&mut self.lock.retired);
        retired.clear();
        let prefilling = std::mem::take(&mut self.lock.prefilling);
        let mut still = std::mem::take(&mut self.lock.prefill_buf);
        still.clear();
        let (mut a, mut b) = (0, 0);
        while a < due.len() || b < prefilling.len() {
            let pre = prefilling.get(b).copied();
            let take_due = match (due.get(a), pre) {
                (Some(&(seq, _)), Some(p)) => seq < self.requests[p].seq,
                (Some(_), None) => true,
                _ => false,
            };
            let id = if take_due {
                let id = due[a].1;
                a += 1;
                self.unjoin(id);
                id
            } else {
                let id = pre.expect("checked");
                b += 1;
                let r = &mut self.requests[id];
                r.progress_tokens += r.new_tokens;
                r.computed_prompt_tokens += u64::from(r.new_tokens);
                self.metrics.prompt_tokens_computed += u64::from(r.new_tokens);
                if r.progress_tokens == r.input_tokens && r.ttft_us.is_none() {
                    r.ttft_us = Some(end_us + otpt_us - r.spec.arrival_us);
                }
                id
            };
            let r = &self.requests[id];
            let done = r.progress_tokens >= r.done_at_progress();
            let mml = self.config.max_model_len;
            let capped = !done && mml > 0 && r.progress_tokens >= mml - 1;
            debug_assert!(!take_due || done || capped, "lockstep completion at the wrong progress");
            if done || capped {
                if capped {
                    self.metrics.length_capped += 1;
                }
                let f = self.retire(id, end_us, Outcome::Completed);
                finished.push(f);
                retired.push(id);
            } else if r.in_prefill() {
                still.push(id);
            } else {
                self.join(id);
            }
        }
        if !retired.is_empty() {
            self.running.retain(|id| !retired.contains(id));
        }
        self.lock.prefilling = still;
        self.lock.prefill_buf = prefilling;
        self.lock.scratch = due;
        self.lock.retired = retired;

        self.metrics.all.itl.add(itl_us, decoders);
        if self.config.track_classes {
            for class in blis_workload::SloClass::ALL {
                let n = decoders_by_class[class as usize];
                if n > 0 {
                    self.metrics.by_class.entry(class).or_default().itl.add(itl_us, n);
                }
            }
        }
    }

    /// Applies the chunked-prefill threshold, the step budget and the context limit.
    fn clamp_chunk(&self, wanted: u32, budget: u32, progress: u32) -> u32 {
        let mut n = wanted;
        let threshold = self.config.long_prefill_token_threshold;
        if threshold > 0 && threshold < n {
            n = threshold;
        }
        n = n.min(budget);
        if self.config.max_model_len > 0 {
            n = n.min((self.config.max_model_len - 1).saturating_sub(progress));
        }
        n
    }

    /// Grows running request `running[*i]` to `end_tokens`, evicting victims while blocks are
    /// short. Returns false when the request itself was evicted (or nothing can be).
    fn allocate_or_preempt(
        &mut self,
        i: &mut usize,
        end_tokens: u32,
        budget: &mut u32,
        preempted: &mut bool,
    ) -> bool {
        let id = self.running[*i];
        loop {
            let r = &mut self.requests[id];
            if self.kv.allocate(&mut r.kv, r.sequence.as_ref(), &r.prompt_hashes, &[], end_tokens) {
                return true;
            }
            *preempted = true;
            let v = self.preemption.victim(&self.running, &self.requests);
            let victim = self.running.remove(v);
            // Only requests before `i` were scheduled this step; later ones still carry the
            // previous step's count.
            if v < *i {
                *i -= 1;
                *budget += self.requests[victim].new_tokens;
            }
            self.preempt(victim);
            if victim == id {
                return false;
            }
        }
    }

    /// Recompute-mode preemption: drop the victim's KV and send it back to the queue front.
    fn preempt(&mut self, id: ReqId) {
        let r = &mut self.requests[id];
        self.kv.release(&mut r.kv);
        r.progress_tokens = 0;
        r.new_tokens = 0;
        r.ttft_us = None;
        r.itl_sum_us = 0;
        r.itl_samples = 0;
        r.phase = Phase::Queued;
        r.preemptions += 1;
        self.metrics.preemptions += 1;
        self.waiting.push_front(id);
    }

    /// Advances every scheduled request by its tokens, stamps first tokens and ITLs, and retires
    /// requests that produced their last token (or hit the context limit). One pass.
    fn execute_and_complete(&mut self, end_us: u64, step_us: u64, finished: &mut Vec<Finished>) {
        let otpt_us = self.latency.output_token_processing_time_us();
        let itl_us = step_us + otpt_us;
        let mml = self.config.max_model_len;
        let mut decoders = 0u64;
        let mut decoders_by_class = [0u64; 5];
        let mut kept = 0;
        for k in 0..self.running.len() {
            let id = self.running[k];
            let r = &mut self.requests[id];
            if r.new_tokens == 0 && r.progress_tokens == r.input_tokens && r.ttft_us.is_none() {
                // Admitted this step with its whole prompt cached (reference semantics).
                r.ttft_us = Some(end_us + otpt_us - r.spec.arrival_us);
            } else if r.new_tokens > 0 {
                if r.in_prefill() {
                    r.progress_tokens += r.new_tokens;
                    r.computed_prompt_tokens += u64::from(r.new_tokens);
                    self.metrics.prompt_tokens_computed += u64::from(r.new_tokens);
                    if r.progress_tokens == r.input_tokens && r.ttft_us.is_none() {
                        r.ttft_us = Some(end_us + otpt_us - r.spec.arrival_us);
                    }
                } else {
                    r.progress_tokens += 1;
                    r.itl_sum_us += itl_us;
                    r.itl_samples += 1;
                    decoders += 1;
                    decoders_by_class[r.spec.slo_class as usize] += 1;
                }
            }
            let done = r.progress_tokens >= r.done_at_progress();
            let capped = !done && mml > 0 && r.progress_tokens >= mml - 1;
            if done || capped {
                if capped {
                    self.metrics.length_capped += 1;
                }
                let f = self.retire(id, end_us, Outcome::Completed);
                finished.push(f);
            } else {
                self.running[kept] = id;
                kept += 1;
            }
        }
        self.running.truncate(kept);
        self.metrics.all.itl.add(itl_us, decoders);
        if self.config.track_classes {
            for class in blis_workload::SloClass::ALL {
                let n = decoders_by_class[class as usize];
                if n > 0 {
                    self.metrics.by_class.entry(class).or_default().itl.add(itl_us, n);
                }
            }
        }
    }

    /// Removes a request, frees its blocks and records its metrics.
    fn retire(&mut self, id: ReqId, at_us: u64, outcome: Outcome) -> Finished {
        let mut r = self.requests.remove(id);
        self.kv.release(&mut r.kv);
        let completed = outcome == Outcome::Completed;
        let generated = if r.in_prefill() { 0 } else { r.progress_tokens - r.input_tokens + 1 };
        let output_tokens = if completed { generated.min(r.output_tokens.max(1)) } else { 0 };
        let e2e_us = r.ttft_us.filter(|_| completed).map(|ttft| {
            let post = if r.output_tokens > 0 { self.latency.post_decode_overhead_us() } else { 0 };
            ttft + r.itl_sum_us + post
        });
        let class_metrics = if self.config.track_classes {
            Some(self.metrics.by_class.entry(r.spec.slo_class).or_default())
        } else {
            None
        };
        for lat in std::iter::once(&mut self.metrics.all).chain(class_metrics) {
            if let Some(ttft) = r.ttft_us {
                lat.ttft.push(ttft);
            }
            if let Some(e2e) = e2e_us {
                lat.e2e.push(e2e);
                lat.completed += 1;
                lat.output_tokens += u64::from(output_tokens);
            }
            if let Some(d) = r.scheduling_delay_us {
                lat.scheduling_delay.push(d);
            }
        }
        if completed && let Some(tenant) = &r.spec.tenant {
            let t = self.metrics.by_tenant.entry(tenant.clone()).or_default();
            t.completed += 1;
            t.output_tokens += u64::from(output_tokens);
        }
        if outcome == Outcome::TimedOut {
            self.metrics.timed_out += 1;
        }
        let finished_at = match e2e_us {
            Some(e2e) => r.spec.arrival_us + e2e,
            None => at_us,
        };
        if self.config.record_requests {
            self.metrics.records.push(record(&r, self.index, e2e_us, outcome));
        }
        let at_us =
            if self.config.semantics.follow_up_from_step_end { at_us } else { finished_at.max(at_us) };
        Finished { spec: r.spec, outcome, at_us }
    }

    /// Ends a request whose deadline passed, wherever it is.
    pub fn time_out(&mut self, now_us: u64, id: ReqId) -> Finished {
        match self.requests[id].phase {
            Phase::Queued => {
                let pos = self.waiting.iter().position(|&w| w == id).expect("queued request not in queue");
                self.waiting.remove(pos);
            }
            Phase::Running => {
                if self.lock.active {
                    if self.requests[id].lock_token != 0 {
                        self.unjoin(id);
                    } else if let Some(k) = self.lock.prefilling.iter().position(|&p| p == id) {
                        self.lock.prefilling.remove(k);
                    }
                }
                let pos = self.running.iter().position(|&w| w == id).expect("running request not in batch");
                self.running.remove(pos);
            }
        }
        self.retire(id, now_us, Outcome::TimedOut)
    }

    /// Closes the books at the end of the run: what is still queued or running is counted,
    /// and first tokens already produced are recorded.
    pub fn finalize(&mut self, horizon_us: u64) {
        if std::env::var_os("BLIS_LOCK_STATS").is_some() {
            eprintln!(
                "instance {}: {} steps, {} lockstep, fallbacks (chunk, budget, kv) {:?}",
                self.index, self.metrics.steps, self.lock.fast_steps, self.lock.fallbacks
            );
        }
        self.metrics.still_queued = self.waiting.len() as u64;
        self.metrics.still_running = self.running.len() as u64;
        for &id in self.waiting.iter().chain(self.running.iter()) {
            if let Some(ttft) = self.requests[id].ttft_us {
                self.metrics.all.ttft.push(ttft);
            }
        }
        self.metrics.end_us = self.metrics.end_us.min(horizon_us);
        self.metrics.kv_hit_blocks = self.kv.hit_blocks();
        self.metrics.kv_miss_blocks = self.kv.miss_blocks();
        self.metrics.kv_used_blocks_at_end = self.kv.used_blocks();
        self.metrics.kv_check = self.kv.check_invariants().err();
    }
}

fn record(r: &LiveRequest, instance: usize, e2e_us: Option<u64>, outcome: Outcome) -> RequestRecord {
    let ms = |us: u64| us as f64 / 1000.0;
    RequestRecord {
        request_id: r.spec.id,
        arrived_at_s: r.spec.arrival_us as f64 / 1e6,
        num_prefill_tokens: r.input_tokens,
        num_decode_tokens: r.output_tokens,
        cached_prompt_tokens: r.cached_prompt_tokens,
        ttft_ms: r.ttft_us.map(ms),
        itl_ms: if r.itl_samples == 0 { 0.0 } else { ms(r.itl_sum_us) / f64::from(r.itl_samples) },
        e2e_ms: e2e_us.map(ms),
        scheduling_delay_ms: r.scheduling_delay_us.map(ms),
        slo_class: r.spec.slo_class.as_str(),
        tenant_id: r.spec.tenant.as_deref().map(str::to_owned),
        handled_by: instance,
        outcome: match outcome {
            Outcome::Completed => "completed",
            Outcome::TimedOut => "timed_out",
            Outcome::Dropped => "dropped",
            Outcome::Rejected => "rejected",
        },
        preemptions: r.preemptions,
    }
}

impl Instance {
    /// Starts logging prefix-index changes (for the router's delayed view).
    pub fn enable_index_log(&mut self) {
        self.kv.enable_index_log();
    }

    pub fn drain_index_changes(&mut self) -> Vec<crate::kv::IndexChange> {
        self.kv.drain_index_changes()
    }
}
