//! vLLM's default: evict the most recently admitted request (the tail of the running batch).

use super::PreemptionPolicy;
use crate::request::LiveRequest;
use crate::slab::{ReqId, Slab};

pub struct TailOfBatch;

impl PreemptionPolicy for TailOfBatch {
    fn victim(&self, running: &[ReqId], _requests: &Slab<LiveRequest>) -> usize {
        running.len() - 1
    }
}
