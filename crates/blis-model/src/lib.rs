//! Model architectures, GPU specifications and KV-cache capacity.
//!
//! Everything the latency models and the KV cache need to know about *what* is being served
//! (a transformer described by a HuggingFace `config.json`) and *where* (a GPU type and a
//! tensor-parallel degree). Parsing is defensive: any malformed or missing field is a
//! one-line error naming the field, never a panic.
//!
//! - [`load_model`]: `--model-config-folder` → bundled configs → disk cache → HF hub.
//! - [`gpu_by_name`], [`load_hardware_config`]: the GPU table and user overrides.
//! - [`kv_blocks`], [`max_model_len`]: per-GPU (real vLLM) KV capacity and context length.
//! - [`check_tensor_parallel`]: whether vLLM accepts a TP size for a model.

mod capacity;
mod error;
mod gpu;
mod hub;
mod model;
mod parallel;
mod parse;
mod registry;

pub use capacity::{
    ACTIVATION_RESERVE_DENSE_GIB, ACTIVATION_RESERVE_MOE_GIB, KvCapacityFormula, MAX_KV_BLOCKS,
    NON_TORCH_TP_MULTI_GIB, NON_TORCH_TP1_GIB, kv_blocks, kv_blocks_with, kv_bytes_per_token_per_gpu,
    max_model_len,
};
pub use error::ModelError;
pub use gpu::{
    GpuSpec, Interconnect, MAX_BANDWIDTH_TBS, MAX_LINK_GBS, MAX_MEMORY_GIB, MAX_TFLOPS, builtin_gpus,
    gpu_by_name, load_hardware_config, parse_hardware_config,
};
pub use hub::{DEFAULT_HF_ENDPOINT, HubOptions, load_model};
pub use model::ModelSpec;
pub use parallel::check_tensor_parallel;
pub use registry::{bundled_config, bundled_model_names, registry_key};

#[cfg(test)]
mod fuzz;
