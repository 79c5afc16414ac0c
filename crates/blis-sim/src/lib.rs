//! The BLIS discrete-event engine: instances with vLLM-style batch formation over a paged KV
//! cache, a cluster control plane (admission, routing), and the metrics they produce.

pub mod autoscale;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod events;
pub mod fitness;
pub mod instance;
pub mod kv;
pub mod kv_cpu;
pub mod lora;
pub mod measure;
pub mod metrics;
pub mod models;
pub mod pd;
pub mod preemption;
pub mod priority;
pub mod request;
pub mod saturation;
pub mod scheduler;
pub mod semantics;
pub mod slab;
pub mod stats;
pub mod steady;
pub mod trace;

pub use config::{ClusterTiming, ExecOptions, PoolConfig, SimConfig};
pub use engine::{ClusterOptions, ControlPlane, MAX_SIM_TIME_US, Progress, SimError, SimReport, Simulation};
pub use instance::{Instance, InstanceConfig};
pub use pd::{PdConfig, PdDeciderKind, PoolRole};
pub use semantics::EngineSemantics;
pub mod report;
