//! `--kv-offload-config FILE.yaml`: the reference simulator's vLLM-style offload description
//! (one top-level `kv_offload:` block). BLIS simulates its CPU tier — sized in bytes, LRU,
//! prompt-only or prompt-and-decode — on the same engine as `--kv-cpu-blocks`; what it cannot
//! simulate (secondary disk/object-store tiers, ARC eviction, chunks other than one GPU block)
//! is refused with a message rather than ignored.

use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::error::ConfigError;

const KEY: &str = "kv-offload-config";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    kv_offload: Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    cpu_bytes_to_use: Option<i64>,
    block_size: Option<i64>,
    blocks_per_chunk: Option<i64>,
    tokens_per_hash: Option<i64>,
    eviction_policy: Option<String>,
    offload_prompt_only: Option<bool>,
    self_describing_kv_events: Option<bool>,
    store_threshold: Option<i64>,
    secondary_tiers: Option<Vec<IgnoredAny>>,
}

/// The CPU tier a `kv_offload:` block describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadTier {
    pub cpu_blocks: u32,
    /// Only prompt blocks are offloaded (vLLM's default), not blocks filled during decode.
    pub prompt_only: bool,
    /// `self_describing_kv_events: true`, which changes nothing here (the router reads the GPU
    /// index directly).
    pub kv_events: bool,
}

/// Reads `path`; `bytes_per_block` (KV bytes of one block per GPU) converts the byte budget,
/// `block_size` is the GPU block size in tokens.
pub fn load(path: &Path, bytes_per_block: u64, block_size: u32) -> Result<OffloadTier, ConfigError> {
    let file: File = crate::yaml::load(path, KEY)?;
    from_block(file.kv_offload, bytes_per_block, block_size)
        .map_err(|m| ConfigError::new(KEY, format!("--{KEY} {}", path.display()), format!("kv_offload.{m}")))
}

fn from_block(b: Block, bytes_per_block: u64, block_size: u32) -> Result<OffloadTier, String> {
    let bytes = b.cpu_bytes_to_use.ok_or("cpu_bytes_to_use: required (bytes of host memory for KV)")?;
    if bytes <= 0 {
        return Err(format!("cpu_bytes_to_use: must be > 0, got {bytes}"));
    }
    let blocks = bytes as u64 / bytes_per_block.max(1);
    if blocks == 0 {
        return Err(format!("cpu_bytes_to_use: {bytes} bytes hold no KV block of {bytes_per_block} bytes"));
    }
    let cpu_blocks = u32::try_from(blocks)
        .map_err(|_| format!("cpu_bytes_to_use: {blocks} blocks, more than {}", u32::MAX))?;
    if b.block_size.is_some() && b.blocks_per_chunk.is_some() {
        return Err("block_size and blocks_per_chunk: set at most one".into());
    }
    if let Some(bs) = b.block_size
        && bs != i64::from(block_size)
    {
        return Err(format!(
            "block_size: only the GPU block size ({block_size} tokens) is simulated, got {bs}"
        ));
    }
    if let Some(n) = b.blocks_per_chunk
        && n != 1
    {
        return Err(format!(
            "blocks_per_chunk: only 1 (one GPU block per offload block) is simulated, got {n}"
        ));
    }
    if let Some(t) = b.tokens_per_hash
        && t != i64::from(block_size)
    {
        return Err(format!("tokens_per_hash: only the GPU block size ({block_size}) is simulated, got {t}"));
    }
    match b.eviction_policy.as_deref() {
        None | Some("lru") => {}
        Some("arc") => return Err("eviction_policy: arc is not simulated (accepted: lru)".into()),
        Some(other) => return Err(format!("eviction_policy: unknown '{other}' (accepted: lru)")),
    }
    if let Some(t) = b.store_threshold
        && !(0..=1).contains(&t)
    {
        return Err(format!(
            "store_threshold: vLLM's tiered offloading rejects values >= 2, got {t} (accepted: 0, 1)"
        ));
    }
    if b.secondary_tiers.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(
            "secondary_tiers: disk and object-store tiers are not simulated (only the CPU tier)".into()
        );
    }
    Ok(OffloadTier {
        cpu_blocks,
        prompt_only: b.offload_prompt_only.unwrap_or(true),
        kv_events: b.self_describing_kv_events.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<OffloadTier, String> {
        let file: File = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        from_block(file.kv_offload, 2 << 20, 16)
    }

    #[test]
    fn cpu_bytes_become_blocks() {
        let t = parse("kv_offload:\n  cpu_bytes_to_use: 17179869184\n  eviction_policy: lru\n").unwrap();
        assert_eq!(t, OffloadTier { cpu_blocks: 8192, prompt_only: true, kv_events: false });
        let t = parse(
            "kv_offload:\n  cpu_bytes_to_use: 4194304\n  offload_prompt_only: false\n  block_size: 16\n",
        )
        .unwrap();
        assert_eq!((t.cpu_blocks, t.prompt_only), (2, false));
    }

    #[test]
    fn what_is_not_simulated_is_refused() {
        for (yaml, needle) in [
            ("kv_offload:\n  block_size: 16\n", "cpu_bytes_to_use: required"),
            ("kv_offload:\n  cpu_bytes_to_use: 100\n", "hold no KV block"),
            ("kv_offload:\n  cpu_bytes_to_use: 4194304\n  eviction_policy: arc\n", "arc is not simulated"),
            ("kv_offload:\n  cpu_bytes_to_use: 4194304\n  block_size: 32\n", "block_size"),
            ("kv_offload:\n  cpu_bytes_to_use: 4194304\n  blocks_per_chunk: 2\n", "blocks_per_chunk"),
            ("kv_offload:\n  cpu_bytes_to_use: 4194304\n  store_threshold: 2\n", "store_threshold"),
            (
                "kv_offload:\n  cpu_bytes_to_use: 4194304\n  secondary_tiers:\n    - {type: fs, root_dir: /x}\n",
                "secondary_tiers",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
        assert!(parse("kv_offload:\n  cpu_bytes_to_use: 4194304\n  typo: 1\n").is_err());
    }
}
