//! Calibration of BLIS against real vLLM runs.
//!
//! - [`measurements`]: the measurements file (experiments with config, workload and measured
//!   latencies).
//! - [`experiment`]: one experiment → the `blis run` keys of the equivalent command line →
//!   the same [`blis_config::RunConfig`] `blis run` resolves, and running it.
//! - [`metrics`]: absolute percentage errors and their aggregation (MAPE).
//! - [`fit`]: bounded Levenberg–Marquardt over the simulated errors; leave-one-model-out and
//!   leave-one-TP-out cross-validation.
//! - [`cv_errors`]: the held-out error summary behind blis-latency's error bars.
//! - [`report`]: the markdown accuracy report.
//! - [`trace`]: an observed trace against the simulator's per-request results (trace-mode
//!   `blis calibrate`).

pub mod cv_errors;
pub mod experiment;
pub mod fit;
pub mod measurements;
pub mod metrics;
pub mod parity;
pub mod report;
pub mod trace;

#[cfg(test)]
mod fuzz;

pub use experiment::{Setup, SimStats, run_all, run_experiment};
pub use measurements::{Experiment, LatencyStats, Measurements};
pub use metrics::{Metric, Summary, score};
