//! Batch formation: the one place that decides what a step computes. Running requests come
//! first (in batch order), then new ones from the wait-queue head; KV blocks are asked of the
//! cache through `allocate`/`release` only, preempting victims when they run short.

use blis_latency::{PrefillChunk, StepShape};

use super::{Instance, ReloadTiming};
use crate::lora::LoraLoading;
use crate::pd::Leg;
use crate::request::{KvLoad, LiveRequest, Phase};
use crate::slab::ReqId;

/// What the CPU tier offers a queued request.
enum CpuHit {
    None,
    /// A load was issued (or is under way): the request waits for it.
    Loading,
    /// This many blocks past the GPU prefix are brought back as the request is admitted.
    Reload(u32),
}

impl Instance {
    /// Adds a scheduled request to the step's shape.
    pub(super) fn add_to_shape(shape: &mut StepShape, r: &LiveRequest) {
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
    pub(super) fn form_batch(&mut self, now_us: u64) {
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
    pub(super) fn prefetch_head_blocks(&self) {
        if self.config.prefix_caching
            && let Some(&head) = self.waiting.front()
            && (self.running.len() as u32) < self.config.max_running_reqs
        {
            self.kv.prefetch_index_blocks(&self.requests[head].prompt_hashes);
        }
    }

    /// Admits new requests from the queue head while budget, batch room and blocks allow.
    pub(super) fn admit(&mut self, now_us: u64, mut budget: u32) {
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
            if r.kv_load.is_some_and(|l| l.ready_us > now_us) {
                pos += 1; // its blocks are still on their way from the CPU tier
                continue;
            }
            // Its LoRA adapter must be resident, or loadable into a slot no running request uses.
            let mut lora_load = false;
            if let (Some(a), Some(lora)) = (r.adapter, &self.lora)
                && !lora.resident.contains(a)
            {
                match lora.config.loading {
                    LoraLoading::HeadOfLine => break,
                    LoraLoading::StepStall if lora.resident.can_load() => lora_load = true,
                    LoraLoading::StepStall => {
                        pos += 1; // every slot serves the running batch (vLLM `max_loras`)
                        continue;
                    }
                }
            }
            let mut cached_blocks =
                if self.config.prefix_caching { self.kv.cached_prefix_blocks(&r.prompt_hashes) } else { 0 };
            // As vLLM: the last prompt token is always computed, to produce the first output.
            let whole_prompt_cached = cached_blocks * bs >= r.input_tokens;
            if whole_prompt_cached && self.config.semantics.compute_last_prompt_token {
                cached_blocks = (r.input_tokens - 1) / bs;
            }
            let mut reload = 0;
            if self.config.prefix_caching && self.config.kv_tier.is_some() {
                match self.cpu_tier_hit(id, cached_blocks, now_us) {
                    CpuHit::None => {}
                    CpuHit::Loading => {
                        pos += 1;
                        continue;
                    }
                    CpuHit::Reload(n) => reload = n,
                }
            }
            // Blocks found on this instance, in either tier.
            let cached_start = (cached_blocks + reload) * bs;
            let r = &self.requests[id];
            // A decode leg's prompt KV came from its prefill instance: all but the last prompt
            // token are present (the last is computed, producing the first output token, as
            // vLLM does on a full prefix hit). After a preemption it recomputes everything.
            let remote = match r.leg {
                Leg::Decode(_) if r.preemptions == 0 => r.input_tokens - 1,
                _ => 0,
            };
            let start = cached_start.max(remote);
            let n = self.clamp_chunk(r.input_tokens - start, budget, start);
            let r = &mut self.requests[id];
            let claim = &r.prompt_hashes[..cached_blocks as usize];
            // Reference semantics: a wholly cached prompt joins with nothing to compute.
            let nothing_to_compute = start == r.input_tokens;
            if (n == 0 && !nothing_to_compute)
                || !self.kv.allocate_with_reload(
                    &mut r.kv,
                    r.sequence.as_ref(),
                    &r.prompt_hashes,
                    claim,
                    reload,
                    start + n,
                )
            {
                break;
            }
            if reload > 0
                && let Some(tier) = &self.config.kv_tier
            {
                let totals = self.metrics.kv_tier.as_mut().expect("tier metrics");
                match tier.timing {
                    ReloadTiming::StepStall => {
                        let us = tier.load_us(reload, bs);
                        self.pending_reload_us += us;
                        totals.loads += 1;
                        totals.transfer_us += us;
                    }
                    ReloadTiming::Async => {}
                }
            }
            r.kv_load = None;
            if let (Some(a), Some(lora)) = (r.adapter, &mut self.lora) {
                let totals = self.metrics.lora.as_mut().expect("LoRA metrics");
                if lora_load {
                    if let Some(evicted) = lora.resident.insert(a) {
                        totals.adapters[evicted as usize].evictions += 1;
                    }
                    let us = lora.config.load_us(a);
                    lora.pending_stall_us += us;
                    let t = &mut totals.adapters[a as usize];
                    t.loads += 1;
                    t.load_us += us;
                    totals.peak_resident = totals.peak_resident.max(lora.resident.len());
                } else {
                    totals.warm_admissions += 1;
                }
                lora.resident.pin(a);
                r.adapter_pinned = true;
            }
            self.waiting.remove(pos);
            r.phase = Phase::Running;
            r.progress_tokens = start;
            r.new_tokens = n;
            r.cached_prompt_tokens = cached_start;
            r.scheduling_delay_us = Some(now_us.saturating_sub(r.spec.arrival_us));
            r.seq = self.next_seq;
            self.next_seq += 1;
            self.metrics.prompt_tokens_cached += u64::from(cached_start);
            if n > 0 && self.config.semantics.first_chunk_after_cached_prefix {
                Self::add_to_shape(&mut self.shape, r);
            } else if n > 0 {
                // Reference semantics: the first chunk is costed as if it started at token 0.
                self.shape.prefills.push(PrefillChunk {
                    new_tokens: n,
                    context_tokens: 0,
                    input_tokens: r.input_tokens,
                });
            }
            self.running.push(id);
            self.lock.note_admitted(id);
            budget -= n;
        }
    }

    /// What the CPU tier offers queued request `id`, whose leading `gpu_blocks` prompt blocks
    /// (already capped to what may be taken from a cache) are on the GPU.
    fn cpu_tier_hit(&mut self, id: ReqId, gpu_blocks: u32, now_us: u64) -> CpuHit {
        let tier = self.config.kv_tier.as_ref().expect("CPU tier on");
        let bs = self.config.block_size_tokens;
        let r = &self.requests[id];
        // Blocks a cache may provide: all but the one holding the last prompt token (vLLM
        // computes it to produce the first output token), or every full block (reference).
        let cap = if self.config.semantics.compute_last_prompt_token {
            (r.input_tokens - 1) / bs
        } else {
            r.input_tokens / bs
        };
        if let Some(load) = r.kv_load {
            // Arrived. vLLM holds the request's GPU prefix while it loads the rest, so what the
            // GPU evicted meanwhile still counts as present (as brought back).
            return match load.upto_blocks.min(cap).saturating_sub(gpu_blocks) {
                0 => CpuHit::None,
                n => CpuHit::Reload(n),
            };
        }
        let on_cpu =
            self.kv.cpu_prefix_blocks(&r.prompt_hashes, gpu_blocks).min(cap.saturating_sub(gpu_blocks));
        if on_cpu == 0 {
            return CpuHit::None;
        }
        match tier.timing {
            ReloadTiming::StepStall => CpuHit::Reload(on_cpu),
            ReloadTiming::Async => {
                let us = tier.load_us(on_cpu, bs);
                let start = self.kv_link_free_us.max(now_us);
                let ready_us = start + us;
                self.kv_link_free_us = ready_us;
                let totals = self.metrics.kv_tier.as_mut().expect("tier metrics");
                totals.loads += 1;
                totals.transfer_us += us;
                totals.load_wait_us += ready_us - now_us;
                self.requests[id].kv_load =
                    Some(KvLoad { ready_us, gpu_blocks, upto_blocks: gpu_blocks + on_cpu });
                CpuHit::Loading
            }
        }
    }

    /// Progress at which a decoding request leaves the batch: its last output token, or the
    /// context limit.
    pub(super) fn end_progress(&self, r: &LiveRequest) -> u32 {
        let done = r.done_at_progress();
        let mml = self.config.max_model_len;
        if mml > 0 { done.min(mml - 1) } else { done }
    }

    /// Applies the chunked-prefill threshold, the step budget and the context limit.
    pub(super) fn clamp_chunk(&self, wanted: u32, budget: u32, progress: u32) -> u32 {
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
        if r.adapter_pinned {
            r.adapter_pinned = false;
            let lora = self.lora.as_mut().expect("a pinned adapter means LoRA is on");
            lora.resident.unpin(r.adapter.expect("pinned adapter"));
        }
        self.metrics.preemptions += 1;
        self.waiting.push_front(id);
    }
}
