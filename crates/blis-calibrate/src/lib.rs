//! Calibration of BLIS against real vLLM runs.
//!
//! - [`measurements`]: the measurements file (experiments with config, workload and measured
//!   latencies).
//! - [`experiment`]: one experiment → the same [`blis_sim::scenario::Scenario`] and workload that
//!   `blis run` builds from the equivalent command line, and running it.
//! - [`metrics`]: absolute percentage errors and their aggregation (MAPE).
//! - [`fit`]: bounded Levenberg–Marquardt over the simulated errors; leave-one-model-out and
//!   leave-one-TP-out cross-validation.
//! - [`cv_errors`]: the held-out error summary behind blis-latency's error bars.
//! - [`report`]: the markdown accuracy report.

pub mod cv_errors;
pub mod experiment;
pub mod fit;
pub mod measurements;
pub mod metrics;
pub mod report;

pub use experiment::{RunConfig, SimStats, run_all, run_experiment};
pub use measurements::{Experiment, LatencyStats, Measurements};
pub use metrics::{Metric, Summary, score};
