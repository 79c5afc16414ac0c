//! Request streams: who sends what, and when.
//!
//! Every workload source (the built-in distribution, presets, workload-spec v2 files, recorded
//! traces) becomes a [`RequestSource`] that yields [`RequestSpec`]s in arrival order, lazily, so a
//! ten-million-request run never holds more than its in-flight requests in memory.
//!
//! Entry points: [`preset_spec`] / [`load_spec_file`] / [`parse_spec`] give a validated
//! [`WorkloadSpec`]; [`build_source`] turns it into a source; [`TraceSource`] replays a TraceV2
//! trace and [`write_trace`] exports one; [`compose`] merges specs; [`to_yaml`] prints one.

pub mod arrival;
pub mod compose;
pub mod error;
pub mod generator;
pub mod inference_perf;
pub mod lengths;
pub mod limits;
pub mod presets;
pub mod request;
pub mod rng;
pub mod servegen;
mod sessions;
pub mod spec;
pub mod think;
pub mod tokens;
pub mod trace;
pub mod validate;

#[cfg(test)]
mod fuzz;

pub use compose::compose;
pub use error::WorkloadError;
pub use generator::{GenerationSemantics, Overrides, SpecSource, build_source, build_source_with};
pub use limits::{MAX_REQUEST_TOKENS, MAX_TIME_US};
pub use presets::{
    LenParams, Preset, SyntheticParams, VirtualUsers, is_inference_perf_preset, preset_names, preset_spec,
};
pub use request::{Outcome, RequestMeta, RequestSource, RequestSpec, SessionRef, SloClass};
pub use spec::{WorkloadSpec, load_spec_file, parse_spec, to_yaml};
pub use think::ThinkTime;
pub use tokens::{Segment, TokenSeq};
pub use trace::{
    SessionMode, TraceHeader, TraceRecord, TraceSource, parse_trace_csv, read_trace_header,
    read_trace_records, write_trace,
};
