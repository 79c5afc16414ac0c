//! The cluster control plane: admission, routing, and the (possibly stale) signals they read.

pub mod admission;
pub mod flow;
pub mod routing;
pub mod scorer;
mod signals;
#[cfg(test)]
pub(crate) mod test_support;

pub use signals::{InstanceSignals, PrefixBoard, SignalBoard};

use blis_workload::{RequestSpec, SloClass};

/// Answers "how many leading blocks of this prompt does instance `i` hold?" as the router
/// currently sees it (live, or as of the last cache-signal refresh).
pub trait PrefixOracle {
    fn cached_blocks(&self, instance: usize, prompt_hashes: &[u64]) -> u32;
}

/// What admission and routing may look at for one decision.
pub struct RouterView<'a> {
    pub now_us: u64,
    /// One entry per candidate instance, in index order.
    pub signals: &'a [InstanceSignals],
    pub prefix: &'a dyn PrefixOracle,
}

/// The request being decided on: what a gateway knows about it. The true output length is
/// not here (no router can know it); `max_output_tokens` is the client's declared budget.
#[derive(Debug, Clone, Copy)]
pub struct RoutingRequest<'a> {
    pub id: u64,
    pub input_tokens: u32,
    pub max_output_tokens: u32,
    pub slo_class: SloClass,
    pub tenant: Option<&'a str>,
    /// Hashes of the prompt's full KV blocks (empty unless a policy asked for them).
    pub prompt_hashes: &'a [u64],
    /// Registry index of the LoRA adapter it names (`None`: base model, or no adapters declared).
    pub adapter: Option<u32>,
}

impl<'a> RoutingRequest<'a> {
    pub fn of(spec: &'a RequestSpec, prompt_hashes: &'a [u64]) -> Self {
        RoutingRequest {
            id: spec.id,
            input_tokens: spec.input.len(),
            max_output_tokens: spec.max_output_tokens,
            slo_class: spec.slo_class,
            tenant: spec.tenant.as_deref(),
            prompt_hashes,
            adapter: None,
        }
    }
}
