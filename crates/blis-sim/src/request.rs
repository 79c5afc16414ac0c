//! A request's runtime state inside an instance.

use std::sync::Arc;

use blis_workload::{RequestSpec, TokenSeq};

use crate::kv::KvAlloc;

/// Block hashes of a prompt's full blocks. Shared: workloads resend the same prompt, and the
/// engine's memo hands out one copy to every request carrying it.
pub type PromptHashes = Arc<[u64]>;

/// A CPU-tier load issued for a queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLoad {
    /// When the blocks have arrived on the GPU.
    pub ready_us: u64,
    /// Leading prompt blocks on the GPU when the load was issued.
    pub gpu_blocks: u32,
    /// Leading prompt blocks available once loaded (GPU-resident then, plus loaded).
    pub upto_blocks: u32,
}

/// Where a request is in its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Running,
}

/// Runtime state of one request on one instance.
#[derive(Debug, Clone)]
pub struct LiveRequest {
    pub spec: RequestSpec,
    /// Prompt followed by the tokens this request will generate (their provenance), so blocks
    /// filled during decode get the same hashes a later turn replaying this response computes.
    /// Only for a request whose output some later prompt may contain
    /// ([`blis_workload::RequestSource::output_reusable`]); for any other, blocks past the
    /// prompt's full blocks can never be looked up, and are neither hashed nor indexed.
    pub sequence: Option<TokenSeq>,
    /// Hashes of the prompt's full blocks, computed once at enqueue.
    pub prompt_hashes: PromptHashes,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Tokens processed so far: prompt tokens computed plus output tokens generated (vLLM's
    /// `num_computed_tokens`).
    pub progress_tokens: u32,
    /// Tokens scheduled in the current step.
    pub new_tokens: u32,
    pub phase: Phase,
    pub kv: KvAlloc,
    /// Static scheduling priority (lower = more urgent).
    pub priority: i32,
    /// Time to first token, relative to arrival, once prefill has finished.
    pub ttft_us: Option<u64>,
    pub itl_sum_us: u64,
    pub itl_samples: u32,
    /// Delay from arrival to the (last) admission into the running batch.
    pub scheduling_delay_us: Option<u64>,
    /// Tokens of the prompt found in the prefix cache at the last admission.
    pub cached_prompt_tokens: u32,
    /// Prompt tokens actually computed (summed over re-prefills after preemption).
    pub computed_prompt_tokens: u64,
    pub preemptions: u32,
    /// Admission order into the running batch (the batch is always in `seq` order).
    pub seq: u64,
    /// First step (by count) whose batch may include this request (async scheduling).
    pub eligible_from_step: u64,
    /// Its pending or arrived CPU-tier load, until it is admitted.
    pub kv_load: Option<KvLoad>,
    /// Which part of the request this instance serves (prefill/decode disaggregation).
    pub leg: crate::pd::Leg,
    /// Its LoRA adapter (index into the instance's registry), if it names a declared one.
    pub adapter: Option<u32>,
    /// Whether it holds a pin on its adapter's resident slot (while in the running batch).
    pub adapter_pinned: bool,
}

impl LiveRequest {
    /// `prompt_hashes`: the prompt's block hashes when the caller already has them.
    pub fn new(
        spec: RequestSpec,
        block_size_tokens: u32,
        priority: i32,
        output_reusable: bool,
        prompt_hashes: Option<PromptHashes>,
    ) -> Self {
        let sequence = output_reusable.then(|| {
            let mut sequence = spec.input.clone();
            sequence.push(blis_workload::Segment {
                source: spec.output_source,
                start: 0,
                len: spec.output_tokens,
            });
            sequence
        });
        let prompt_hashes =
            prompt_hashes.unwrap_or_else(|| spec.input.block_hashes(block_size_tokens).into());
        debug_assert_eq!(prompt_hashes.len() as u32, spec.input.len() / block_size_tokens);
        Self {
            input_tokens: spec.input.len(),
            output_tokens: spec.output_tokens,
            sequence,
            prompt_hashes,
            spec,
            progress_tokens: 0,
            new_tokens: 0,
            phase: Phase::Queued,
            kv: KvAlloc::default(),
            priority,
            ttft_us: None,
            itl_sum_us: 0,
            itl_samples: 0,
            scheduling_delay_us: None,
            cached_prompt_tokens: 0,
            computed_prompt_tokens: 0,
            preemptions: 0,
            seq: 0,
            eligible_from_step: 0,
            kv_load: None,
            leg: crate::pd::Leg::Whole,
            adapter: None,
            adapter_pinned: false,
        }
    }

    pub fn in_prefill(&self) -> bool {
        self.progress_tokens < self.input_tokens
    }

    /// Progress at which the request has produced all its output tokens: the prefill step makes
    /// the first token, each decode step one more.
    pub fn done_at_progress(&self) -> u32 {
        self.input_tokens + self.output_tokens.max(1) - 1
    }
}
