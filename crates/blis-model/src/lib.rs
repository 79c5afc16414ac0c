//! Model architectures, GPU specifications and KV-cache capacity.
//!
//! Everything the latency models and the KV cache need to know about *what* is being served
//! (a transformer described by a HuggingFace `config.json`) and *where* (a GPU type and a
//! tensor-parallel degree). Parsing is defensive: any malformed or missing field is a
//! one-line error naming the field, never a panic.

mod gpu;
mod model;

pub use gpu::GpuSpec;
pub use model::ModelSpec;
