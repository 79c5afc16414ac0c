//! Engine behaviours that `--compat reference` switches to the reference simulator's.

/// Engine behaviours in which the reference simulator differs from vLLM (and BLIS). The
/// default is BLIS's; [`EngineSemantics::REFERENCE`] is the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSemantics {
    /// vLLM (true): a prompt found whole in the prefix cache still computes its last token,
    /// which produces the first output token. Reference (false): it is admitted with nothing to
    /// compute and gets its first token at the end of the step it joins.
    pub compute_last_prompt_token: bool,
    /// When a finished request counts as done for the closed-loop client that sends its
    /// follow-up: BLIS (false) when the client sees the last token (after the output-token and
    /// post-decode overheads), the reference (true) at the end of the request's last step.
    pub follow_up_from_step_end: bool,
    /// How the step that admits a request costs its first prefill chunk: BLIS (true) after the
    /// prompt tokens found in the prefix cache, the reference (false) as if it started at token
    /// 0 (its progress index is only updated after the step is costed). Only the roofline
    /// model reads a chunk's context.
    pub first_chunk_after_cached_prefix: bool,
}

impl EngineSemantics {
    pub const BLIS: Self = Self {
        compute_last_prompt_token: true,
        follow_up_from_step_end: false,
        first_chunk_after_cached_prefix: true,
    };
    pub const REFERENCE: Self = Self {
        compute_last_prompt_token: false,
        follow_up_from_step_end: true,
        first_chunk_after_cached_prefix: false,
    };
}

impl Default for EngineSemantics {
    fn default() -> Self {
        Self::BLIS
    }
}
