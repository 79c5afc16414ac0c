//! One inference server: wait queue, vLLM-V1-style batch formation, step execution.
//!
//! `step` orchestrates one step. [`batch`] is the single place that decides a step's batch (as
//! vLLM's scheduler does); it asks the KV cache for blocks through `KvCache::allocate`/`release`
//! only. [`complete`] executes the formed step. [`lockstep`] is a fast path beside them that
//! forms and executes steady decode steps without visiting every decoder, taken only when it
//! provably gives the same result. State changes of a step apply at its start time `now`;
//! latencies are stamped at its end `now + step_time`.

mod batch;
mod complete;
mod lockstep;

use std::collections::VecDeque;
use std::sync::Arc;

use blis_latency::{LatencyModel, StepShape};
use blis_workload::{Outcome, RequestSpec};

use crate::kv::KvCache;
pub use crate::kv_cpu::{KvTierConfig, ReloadTiming};
use crate::measure::{Measurement, Series, StateSample};
use crate::metrics::Metrics;
pub use crate::pd::Leg;
use crate::preemption::PreemptionPolicy;
use crate::priority::{PriorityKind, SloPriorities};
use crate::request::{LiveRequest, Phase, PromptHashes};
use crate::scheduler::Scheduler;
pub use crate::semantics::EngineSemantics;
use crate::slab::{ReqId, Slab};
use lockstep::Lockstep;

/// Static configuration of an instance (vLLM engine arguments).
#[derive(Debug, Clone, PartialEq)]
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
    /// How a request's SLO class sets its scheduling priority.
    pub priority: PriorityKind,
    pub slo_priorities: SloPriorities,
    /// Keep a record per finished request (`--results-path`).
    pub record_requests: bool,
    /// Keep per-SLO-class distributions.
    pub track_classes: bool,
    /// Keep every latency sample for exact percentiles instead of a sketch
    /// (`--exact-percentiles`; [`crate::stats`]).
    pub exact_percentiles: bool,
    /// Where the engine follows the reference simulator instead of vLLM (default: vLLM's way).
    pub semantics: EngineSemantics,
    /// CPU KV tier (`--kv-cpu-blocks`); `None` = GPU blocks only.
    pub kv_tier: Option<KvTierConfig>,
    /// LoRA adapters (`--lora-config`); `None` = the base model only.
    pub lora: Option<Arc<crate::lora::LoraConfig>>,
}

/// A request that left the instance.
#[derive(Debug, Clone)]
pub struct Finished {
    pub spec: RequestSpec,
    pub outcome: Outcome,
    /// When the client sees the request end ([`EngineSemantics::follow_up_from_step_end`]).
    pub at_us: u64,
    /// A prefill leg whose prompt is computed (at `at_us`): the request is not finished, its
    /// KV goes on to a decode instance.
    pub handoff: bool,
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
    /// Which requests count and against which goodput targets.
    measure: Arc<Measurement>,
    /// When the host→device link finishes the CPU-tier loads issued so far.
    kv_link_free_us: u64,
    /// CPU-tier reload time to add to the current step ([`ReloadTiming::StepStall`]).
    pending_reload_us: u64,
    /// Resident LoRA adapters and loads; `None` when the run declares none.
    lora: Option<crate::lora::LoraState>,
    pub metrics: Metrics,
}

impl Instance {
    /// `lockstep_decode`: whether steady decode steps may take the lockstep fast path (never
    /// changes results; off only to compare both paths).
    pub fn new(
        index: usize,
        config: InstanceConfig,
        latency: Arc<dyn LatencyModel>,
        scheduler: Box<dyn Scheduler>,
        preemption: Box<dyn PreemptionPolicy>,
        lockstep_decode: bool,
    ) -> Self {
        assert!(config.block_size_tokens > 0 && config.max_running_reqs > 0);
        assert!(config.max_scheduled_tokens >= config.block_size_tokens, "budget below one block");
        let mut kv = KvCache::new(config.total_kv_blocks, config.block_size_tokens);
        if let Some(tier) = &config.kv_tier {
            kv.enable_cpu_tier(tier.cpu_blocks, tier.prompt_only);
        }
        let measure = Arc::new(Measurement::new());
        let metrics = Metrics {
            total_kv_blocks: u64::from(config.total_kv_blocks),
            series: Series::new(measure.sample_interval_us),
            kv_tier: config.kv_tier.as_ref().map(|t| crate::metrics::KvTierTotals {
                cpu_blocks: u64::from(t.cpu_blocks),
                ..Default::default()
            }),
            lora: config.lora.as_ref().map(|l| crate::lora::LoraTotals {
                names: l.adapters.iter().map(|a| a.name.clone()).collect(),
                adapters: vec![
                    crate::lora::AdapterTotals {
                        ttft: crate::stats::Samples::new(config.exact_percentiles),
                        ..Default::default()
                    };
                    l.adapters.len()
                ],
                ..Default::default()
            }),
            ..Metrics::new(config.exact_percentiles)
        };
        let lora = config.lora.clone().map(crate::lora::LoraState::new);
        let lock = Lockstep::new(config.block_size_tokens, lockstep_decode);
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
            lock,
            measure,
            kv_link_free_us: 0,
            pending_reload_us: 0,
            lora,
            metrics,
        }
    }

    /// Sets warm-up exclusion, goodput targets and the sampling interval (before any request).
    pub fn set_measurement(&mut self, measure: Arc<Measurement>) {
        self.metrics.series = Series::new(measure.sample_interval_us);
        self.measure = measure;
    }

    /// Samples due before `now_us` see the state left by the previous event.
    #[inline]
    fn observe(&mut self, now_us: u64) {
        self.metrics.series.advance(now_us);
    }

    /// The state from this event on, for the time series.
    #[inline]
    fn snapshot(&mut self) {
        self.metrics.series.set(StateSample {
            queued: self.waiting.len() as u32,
            running: self.running.len() as u32,
            kv_used_blocks: self.kv.used_blocks(),
            completed: self.metrics.all.completed as u32,
        });
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
        self.enqueue_leg(now_us, spec, output_reusable, prompt_hashes, Leg::Whole, finished)
    }

    /// The narrow entry point of disaggregation: [`Instance::enqueue_hashed`] for one leg of a
    /// request. A [`Leg::Prefill`] computes the prompt and leaves as a hand-off
    /// ([`Finished::handoff`]); a [`Leg::Decode`] is admitted with its prompt's KV present
    /// (allocated on admission, not recomputed) and produces every output token.
    pub fn enqueue_leg(
        &mut self,
        now_us: u64,
        spec: RequestSpec,
        output_reusable: bool,
        prompt_hashes: Option<PromptHashes>,
        leg: Leg,
        finished: &mut Vec<Finished>,
    ) -> Enqueued {
        self.observe(now_us);
        self.metrics.completions.saw_arrival(spec.arrival_us);
        let input = u64::from(spec.input.len());
        // Token counts in u64: prompt + budget can exceed u32 for absurd requests, which are
        // then dropped as unservable instead of wrapping into small ones.
        let output = if leg == Leg::Prefill { 1 } else { spec.max_output_tokens.max(spec.output_tokens) };
        let context = input + u64::from(output);
        let mml = u64::from(self.config.max_model_len);
        let bs = u64::from(self.config.block_size_tokens);
        let too_long = mml > 0 && (input >= mml || context > mml);
        // A request whose whole context cannot fit in the cache would preempt itself forever;
        // one that needs more than u32 tokens of progress cannot be tracked.
        let too_big =
            context.div_ceil(bs) > u64::from(self.config.total_kv_blocks) || context >= u64::from(u32::MAX);
        if too_long || too_big || input == 0 {
            self.metrics.dropped_unservable += 1;
            finished.push(Finished { spec, outcome: Outcome::Dropped, at_us: now_us, handoff: false });
            return Enqueued::Dropped;
        }
        // A decode leg's prompt was counted where it was computed.
        if !matches!(leg, Leg::Decode(_)) {
            self.metrics.total_input_tokens += input;
            if let Some(tenant) = &spec.tenant {
                self.metrics.by_tenant.entry(tenant.clone()).or_default().requests += 1;
            }
        }
        if spec.deadline_us.is_some_and(|d| now_us >= d) {
            self.metrics.timed_out += 1;
            finished.push(Finished { spec, outcome: Outcome::TimedOut, at_us: now_us, handoff: false });
            return Enqueued::TimedOut;
        }
        self.metrics.enqueued += 1;
        let priority = self.config.slo_priorities.instance(self.config.priority, spec.slo_class);
        let bs = self.config.block_size_tokens;
        let mut live = LiveRequest::new(spec, bs, priority, output_reusable, prompt_hashes);
        live.leg = leg;
        if let (Some(lora), Some(name)) = (&self.lora, live.spec.adapter.as_deref()) {
            live.adapter = lora.config.index(name);
        }
        if leg == Leg::Prefill {
            live.output_tokens = 1;
        }
        let id = self.requests.insert(live);
        // Under async scheduling the next step's batch was fixed when the running step started.
        // (An instance whose queue only waits for CPU-tier loads is idle: no step is running.)
        if self.config.async_scheduling && self.has_work() && self.kv_loads_pending_until(now_us).is_none() {
            self.requests[id].eligible_from_step = self.metrics.steps + 2;
        }
        self.waiting.push_back(id);
        self.snapshot();
        Enqueued::Queued(id)
    }

    /// Runs one step starting at `now_us`; returns its duration. Requests that finish are
    /// appended to `finished`.
    pub fn step(&mut self, now_us: u64, finished: &mut Vec<Finished>) -> u64 {
        self.observe(now_us);
        self.metrics.steps += 1;
        self.scheduler.order(&mut self.waiting, &self.requests);
        if let Some(&head) = self.waiting.front()
            && (self.running.len() as u32) < self.config.max_running_reqs
        {
            // The queue head is likely admitted at the end of batch formation: start fetching
            // the index slots its prefix lookups and block seals will probe.
            self.kv.prefetch_index(&self.requests[head].prompt_hashes);
        }
        if self.lora.as_ref().is_some_and(|l| l.config.loading == crate::lora::LoraLoading::HeadOfLine) {
            self.lora_head_of_line(now_us);
        }
        let fast = self.lockstep_form(now_us);
        if !fast {
            // Batch formation also builds the step's shape (one pass over the batch).
            self.form_batch(now_us);
        }
        let mut step_us =
            if self.shape.is_empty() { 1 } else { self.latency.step_time_us(&self.shape).max(1) };
        if self.pending_reload_us > 0 {
            // Reference: CPU-tier reloads stall the step that admitted their requests.
            step_us =
                if self.shape.is_empty() { self.pending_reload_us } else { step_us + self.pending_reload_us };
            self.pending_reload_us = 0;
        }
        if let Some(lora) = &mut self.lora {
            step_us = lora_step_us(lora, step_us, self.shape.is_empty());
        }
        // Saturating: the engine refuses to schedule anything past its time limit, so an absurd
        // step time ends the run with an error instead of wrapping the clock.
        let end_us = now_us.saturating_add(step_us);
        if fast {
            self.execute_fast(end_us, step_us, finished);
        } else {
            self.execute_and_complete(end_us, step_us, finished);
        }
        self.metrics.peak_kv_blocks = self.metrics.peak_kv_blocks.max(self.kv.used_blocks());
        self.metrics.end_us = self.metrics.end_us.max(end_us);
        self.snapshot();

        // A queue whose head cannot be admitted into an empty batch would spin forever; the
        // enqueue guards make this unreachable, and the assertion keeps it so. (Under async
        // scheduling, requests queued behind a batch that ended early — a timeout or an
        // eviction — only become visible a step later: an idle step, not a spin.)
        debug_assert!(
            !(self.running.is_empty()
                && self.waiting.iter().any(|&w| self.requests[w].eligible_from_step <= self.metrics.steps)
                && self.shape.is_empty()
                && self.kv_loads_pending_until(now_us).is_none()
                && self.lora_load_pending_until(now_us).is_none()),
            "instance {} idles with a non-empty queue",
            self.index
        );
        step_us
    }

    /// When nothing runs and every queued request waits for its CPU-tier load to arrive after
    /// `now_us`: the earliest arrival (the engine wakes the instance then instead of stepping).
    pub fn kv_loads_pending_until(&self, now_us: u64) -> Option<u64> {
        if !self.running.is_empty() || self.waiting.is_empty() {
            return None;
        }
        let mut earliest = u64::MAX;
        for &id in &self.waiting {
            match self.requests[id].kv_load {
                Some(load) if load.ready_us > now_us => earliest = earliest.min(load.ready_us),
                _ => return None,
            }
        }
        Some(earliest)
    }

    /// When nothing runs and the wait-queue head waits for its LoRA adapter's load (the
    /// reference's head-of-line loading): when the load completes.
    pub fn lora_load_pending_until(&self, now_us: u64) -> Option<u64> {
        let lora = self.lora.as_ref()?;
        let (_, ready_us) = lora.loading?;
        let head = self.requests[*self.waiting.front()?].adapter?;
        (self.running.is_empty() && ready_us > now_us && !lora.resident.contains(head)).then_some(ready_us)
    }

    /// Registry index of a declared adapter, when the run declares adapters.
    pub fn lora_index(&self, name: &str) -> Option<u32> {
        self.lora.as_ref()?.config.index(name)
    }

    /// The resident LoRA adapters (registry indexes), for the router's signals.
    pub fn lora_resident_set(&self) -> impl Iterator<Item = u32> + '_ {
        self.lora.iter().flat_map(|l| l.resident.adapters())
    }

    /// Reference loading: completes a load that has finished, then starts one for the
    /// wait-queue head when its adapter is cold (evicting the least recently used idle
    /// adapter to reserve its slot).
    fn lora_head_of_line(&mut self, now_us: u64) {
        let lora = self.lora.as_mut().expect("LoRA on");
        let totals = self.metrics.lora.as_mut().expect("LoRA metrics");
        if let Some((a, ready_us)) = lora.loading
            && ready_us <= now_us
        {
            let evicted = lora.resident.insert(a);
            assert!(evicted.is_none(), "a slot was reserved when the load started");
            lora.loading = None;
            let t = &mut totals.adapters[a as usize];
            t.loads += 1;
            t.load_us += lora.config.load_us(a);
            totals.peak_resident = totals.peak_resident.max(lora.resident.len());
        }
        if lora.loading.is_some() {
            return;
        }
        let Some(a) = self.waiting.front().and_then(|&h| self.requests[h].adapter) else { return };
        if lora.resident.contains(a) {
            return;
        }
        if lora.resident.len() == lora.resident.capacity() {
            // Every slot pinned: a running request frees one when it leaves the batch.
            let Some(evicted) = lora.resident.evict_lru() else { return };
            totals.adapters[evicted as usize].evictions += 1;
        }
        lora.loading = Some((a, now_us.saturating_add(lora.config.load_us(a))));
    }

    /// Ends a request whose deadline passed, wherever it is.
    pub fn time_out(&mut self, now_us: u64, id: ReqId) -> Finished {
        self.end_early(now_us, id, Outcome::TimedOut)
    }

    /// Ends a request the gateway evicts to make room (`--in-flight-eviction`), wherever it is:
    /// its blocks are freed and it counts as neither completed nor timed out.
    pub fn evict(&mut self, now_us: u64, id: ReqId) -> Finished {
        self.end_early(now_us, id, Outcome::Rejected)
    }

    fn end_early(&mut self, now_us: u64, id: ReqId, outcome: Outcome) -> Finished {
        self.observe(now_us);
        match self.requests[id].phase {
            Phase::Queued => {
                let pos = self.waiting.iter().position(|&w| w == id).expect("queued request not in queue");
                self.waiting.remove(pos);
            }
            Phase::Running => {
                self.lockstep_forget(id);
                let pos = self.running.iter().position(|&w| w == id).expect("running request not in batch");
                self.running.remove(pos);
            }
        }
        let f = self.retire(id, now_us, outcome);
        self.snapshot();
        f
    }

    /// Whether this instance keeps exact percentile samples (`--exact-percentiles`).
    pub fn exact_percentiles(&self) -> bool {
        self.config.exact_percentiles
    }

    /// Closes the books at the end of the run: what is still queued or running is counted,
    /// and first tokens already produced are recorded.
    pub fn finalize(&mut self, horizon_us: u64) {
        let (fast_steps, fallbacks) = self.lock.stats();
        tracing::debug!(
            instance = self.index,
            steps = self.metrics.steps,
            lockstep_steps = fast_steps,
            fallbacks_chunk = fallbacks[0],
            fallbacks_budget = fallbacks[1],
            fallbacks_kv = fallbacks[2],
            "lockstep decode"
        );
        self.metrics.still_queued = self.waiting.len() as u64;
        self.metrics.still_running = self.running.len() as u64;
        for &id in self.waiting.iter().chain(self.running.iter()) {
            let r = &self.requests[id];
            if let Some(ttft) = r.ttft_us
                && self.measure.measured(&r.spec)
            {
                self.metrics.all.ttft.push(ttft);
            }
        }
        self.metrics.end_us = self.metrics.end_us.min(horizon_us);
        // The series covers the whole run, its end included.
        let end = self.metrics.end_us;
        self.observe(end.saturating_add(1));
        self.metrics.kv_hit_blocks = self.kv.hit_blocks();
        self.metrics.kv_miss_blocks = self.kv.miss_blocks();
        if let (Some(totals), Some(cpu)) = (&mut self.metrics.kv_tier, self.kv.cpu_tier()) {
            totals.cpu_hit_blocks = self.kv.reload_blocks();
            totals.offloaded_blocks = cpu.stored();
            totals.cpu_evicted_blocks = cpu.evicted();
            totals.cpu_resident_blocks = u64::from(cpu.len());
        }
        self.metrics.kv_used_blocks_at_end = self.kv.used_blocks();
        self.metrics.kv_check = self.kv.check_invariants().err();
    }

    /// Starts logging prefix-index changes (for the router's delayed view).
    pub fn enable_index_log(&mut self) {
        self.kv.enable_index_log();
    }

    pub fn drain_index_changes(&mut self) -> Vec<crate::kv::IndexChange> {
        self.kv.drain_index_changes()
    }
}

/// A step's duration with its LoRA costs: the compute overhead of the adapters its batch
/// runs, and (vLLM) the loads it performs before running.
fn lora_step_us(lora: &mut crate::lora::LoraState, step_us: u64, empty: bool) -> u64 {
    let mut us = step_us;
    if !empty {
        let factor = lora.step_factor();
        if factor != 1.0 {
            us = ((us as f64 * factor).round() as u64).max(1);
        }
    }
    let stall = std::mem::take(&mut lora.pending_stall_us);
    if stall > 0 {
        us = if empty { stall } else { us.saturating_add(stall) };
    }
    us
}
