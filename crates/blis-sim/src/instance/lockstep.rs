//! Lockstep decode: a fast path beside batch formation, never inside it.
//!
//! In steady state every decoding request advances one token per step and shares the step's
//! ITL, so decoders need not be touched per step. The instance keeps a clock of lockstep steps
//! and the cumulative ITL; each member's state is kept here, keyed by its handle, at the clock
//! it joined; a member is visited only when something happens to it — its KV needs a block or
//! seals one (`form_due`), it completes (`done_due`), times out, or a step needs the exact
//! path. Leaving lockstep brings every member's request up to date, after which the side table
//! is meaningless. A step is taken here only when it provably equals `form_batch` +
//! `execute_and_complete` (the property tests compare both paths on every configuration).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use blis_workload::Outcome;

use super::{Finished, Instance};
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

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

/// A member's lockstep state: `progress_tokens`, `itl_sum_us` and `itl_samples` of its request
/// hold their values at lockstep clock `clock0` (cumulative lockstep ITL `itl0`); the current
/// values add the clock's advance since. `token` is unique over the instance's life (0 = not a
/// member); the due-event entries carry it to detect staleness.
#[derive(Debug, Clone, Copy, Default)]
struct Member {
    token: u64,
    clock0: u64,
    itl0: u64,
}

/// The lockstep accelerator's state (private: the instance reaches it only through the methods
/// below).
pub(super) struct Lockstep {
    active: bool,
    /// Never enter lockstep (`ExecOptions::lockstep_decode` off).
    disabled: bool,
    exact_left: u32,
    clock: u64,
    itl_cum: u64,
    members: u32,
    /// Σ progress of the members at `clock` (the step shape's decode context).
    context_sum: u64,
    /// Members past the warm-up, by class and in all (their ITL samples count).
    by_class: [u64; 5],
    measured: u64,
    next_token: u64,
    /// Member state by handle, dense, so that skipping stale entries does not touch requests.
    table: Vec<Member>,
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

impl Lockstep {
    pub(super) fn new(block_size_tokens: u32, enabled: bool) -> Self {
        Lockstep {
            active: false,
            disabled: !enabled,
            exact_left: 0,
            clock: 0,
            itl_cum: 0,
            members: 0,
            context_sum: 0,
            by_class: [0; 5],
            measured: 0,
            next_token: 0,
            table: Vec::new(),
            form_due: FormWheel::new(block_size_tokens),
            done_due: BinaryHeap::new(),
            prefilling: Vec::new(),
            prefill_buf: Vec::new(),
            scratch: Vec::new(),
            retired: Vec::new(),
            fast_steps: 0,
            fallbacks: [0; 3],
        }
    }

    /// Whether the request behind `id` is a lockstep member.
    #[inline]
    fn is_member(&self, id: ReqId) -> bool {
        self.table.get(id as usize).is_some_and(|m| m.token != 0)
    }

    /// A request was admitted into the running batch (it is prefilling).
    pub(super) fn note_admitted(&mut self, id: ReqId) {
        if self.active {
            self.prefilling.push(id);
        }
    }

    /// (steps, lockstep steps, fallbacks by cause) for diagnostics.
    pub(super) fn stats(&self) -> (u64, [u64; 3]) {
        (self.fast_steps, self.fallbacks)
    }
}

/// Brings a member's explicit progress and ITL up to lockstep clock `clock`.
#[inline]
fn sync(r: &mut LiveRequest, m: &mut Member, clock: u64, itl_cum: u64) {
    let d = clock - m.clock0;
    r.progress_tokens += d as u32;
    r.itl_samples += d as u32;
    r.itl_sum_us += itl_cum - m.itl0;
    m.clock0 = clock;
    m.itl0 = itl_cum;
}

/// Steps from a member's current progress to its next KV event: the step whose token fills its
/// last block (seal) or needs a new one. A request whose decode blocks are not hashed
/// (`sequence` is `None`) seals nothing while decoding: only the new block is an event.
#[inline]
fn steps_to_form_due(r: &LiveRequest, bs: u32) -> u32 {
    let slots = r.kv.num_blocks() as u32 * bs;
    if r.sequence.is_some() {
        (slots.max(1) - 1).saturating_sub(r.progress_tokens)
    } else {
        slots.saturating_sub(r.progress_tokens)
    }
}

/// `pop_due` for the KV events (wheel slot of `clock`).
fn pop_form_due(
    wheel: &mut FormWheel,
    clock: u64,
    table: &[Member],
    requests: &Slab<LiveRequest>,
    out: &mut Vec<(u64, ReqId)>,
) {
    out.clear();
    let slot = &mut wheel.slots[(clock & wheel.mask) as usize];
    for &(seq, token, id) in slot.iter() {
        if table.get(id as usize).is_some_and(|m| m.token == token) {
            requests.prefetch(id);
            out.push((seq, id));
        }
    }
    slot.clear();
    out.sort_unstable_by_key(|&(seq, _)| seq);
}

/// Pops the valid entries of `heap` due at or before `clock` into `out`, in batch order, and
/// prefetches their requests (which are visited next).
fn pop_due(
    heap: &mut BinaryHeap<Due>,
    clock: u64,
    table: &[Member],
    requests: &Slab<LiveRequest>,
    out: &mut Vec<(u64, ReqId)>,
) {
    out.clear();
    while let Some(&Reverse((at, seq, token, id))) = heap.peek() {
        if at > clock {
            break;
        }
        heap.pop();
        if table.get(id as usize).is_some_and(|m| m.token == token) {
            debug_assert_eq!(at, clock, "missed lockstep event");
            requests.prefetch(id);
            out.push((seq, id));
        }
    }
}

impl Instance {
    /// Forms this step's batch on the lockstep path when that equals batch formation; returns
    /// false (and has left lockstep) when the exact path must form it.
    pub(super) fn lockstep_form(&mut self, now_us: u64) -> bool {
        if !self.lock.active && !self.lock.disabled {
            if self.lock.exact_left > 0 {
                self.lock.exact_left -= 1;
            } else {
                self.enter_lockstep();
            }
        }
        if !self.lock.active {
            return false;
        }
        if self.form_fast(now_us) {
            return true;
        }
        self.leave_lockstep();
        self.lock.exact_left = EXACT_STEPS_AFTER_FALLBACK;
        false
    }

    /// Removes request `id` (about to time out) from lockstep bookkeeping.
    pub(super) fn lockstep_forget(&mut self, id: ReqId) {
        if !self.lock.active {
            return;
        }
        if self.lock.is_member(id) {
            self.unjoin(id);
        } else if let Some(k) = self.lock.prefilling.iter().position(|&p| p == id) {
            self.lock.prefilling.remove(k);
        }
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
            if let Some(m) = self.lock.table.get_mut(id as usize)
                && m.token != 0
            {
                sync(&mut self.requests[id], m, clock, itl_cum);
            }
        }
        let lock = &mut self.lock;
        lock.active = false;
        lock.members = 0;
        lock.context_sum = 0;
        lock.by_class = [0; 5];
        lock.measured = 0;
        lock.form_due.clear();
        lock.done_due.clear();
        lock.prefilling.clear();
        lock.table.fill(Member::default());
    }

    /// Makes decoding request `id` (explicit state current) a member as of the current clock.
    fn join(&mut self, id: ReqId) {
        let end = self.end_progress(&self.requests[id]);
        let bs = self.config.block_size_tokens;
        let lock = &mut self.lock;
        let r = &self.requests[id];
        debug_assert!(!r.in_prefill() && r.progress_tokens < end);
        let form = lock.clock + u64::from(steps_to_form_due(r, bs));
        lock.next_token += 1;
        if lock.table.len() <= id as usize {
            lock.table.resize(id as usize + 1, Member::default());
        }
        lock.table[id as usize] = Member { token: lock.next_token, clock0: lock.clock, itl0: lock.itl_cum };
        lock.members += 1;
        lock.context_sum += u64::from(r.progress_tokens);
        if self.measure.measured(&r.spec) {
            lock.by_class[r.spec.slo_class as usize] += 1;
            lock.measured += 1;
        }
        let done = lock.clock + u64::from(end - 1 - r.progress_tokens);
        lock.form_due.push(lock.clock, form, r.seq, lock.next_token, id);
        lock.done_due.push(Reverse((done, r.seq, lock.next_token, id)));
    }

    /// Removes member `id` (explicit state brought current).
    fn unjoin(&mut self, id: ReqId) {
        let lock = &mut self.lock;
        let r = &mut self.requests[id];
        let m = &mut lock.table[id as usize];
        sync(r, m, lock.clock, lock.itl_cum);
        *m = Member::default();
        lock.members -= 1;
        lock.context_sum -= u64::from(r.progress_tokens);
        if self.measure.measured(&r.spec) {
            lock.by_class[r.spec.slo_class as usize] -= 1;
            lock.measured -= 1;
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
        pop_form_due(&mut self.lock.form_due, clock, &self.lock.table, &self.requests, &mut due);
        self.prefetch_head_blocks();
        let bs = self.config.block_size_tokens;
        for &(_, id) in &due {
            let r = &self.requests[id];
            let progress = r.progress_tokens + (clock - self.lock.table[id as usize].clock0) as u32;
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
                let m = &mut self.lock.table[id as usize];
                sync(r, m, clock, self.lock.itl_cum);
                let token = m.token;
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
                let next = clock + 1 + u64::from(steps_to_form_due(r, bs));
                r.progress_tokens -= 1;
                self.lock.form_due.push(clock, next, r.seq, token, id);
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
    pub(super) fn execute_fast(&mut self, end_us: u64, step_us: u64, finished: &mut Vec<Finished>) {
        let otpt_us = self.latency.output_token_processing_time_us();
        let itl_us = step_us + otpt_us;
        let clock = self.lock.clock;
        let decoders = u64::from(self.lock.members);
        let measured_decoders = self.lock.measured;
        let decoders_by_class = self.lock.by_class;
        self.lock.clock += 1;
        self.lock.itl_cum += itl_us;
        self.lock.context_sum += decoders;

        let mut due = std::mem::take(&mut self.lock.scratch);
        pop_due(&mut self.lock.done_due, clock, &self.lock.table, &self.requests, &mut due);
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
        self.record_itl(itl_us, measured_decoders, &decoders_by_class);
    }
}
