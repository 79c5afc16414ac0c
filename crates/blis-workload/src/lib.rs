//! Request streams: who sends what, and when.
//!
//! Every workload source (the built-in distribution, presets, workload-spec v2 files, recorded
//! traces) becomes a [`RequestSource`] that yields [`RequestSpec`]s in arrival order, lazily, so a
//! ten-million-request run never holds more than its in-flight requests in memory.

pub mod request;
pub mod rng;
pub mod tokens;

pub use request::{Outcome, RequestSource, RequestSpec, SessionRef, SloClass};
pub use tokens::{Segment, TokenSeq};
