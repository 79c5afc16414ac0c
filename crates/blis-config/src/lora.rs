//! LoRA adapters: `--lora-config FILE.yaml` (one top-level `lora:` block, the reference
//! simulator's format) and the `--lora-*` flags, which take precedence over the file.
//! Adapters are simulated only when the registry is non-empty and a capacity is set.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use blis_sim::lora::{LoraAdapter, LoraConfig, LoraLoading, MAX_ADAPTERS};
use serde::Deserialize;

use crate::error::ConfigError;

const KEY: &str = "lora-config";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    lora: Block,
}

/// The `lora:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub adapter_capacity: Option<i64>,
    pub load_base_latency_us: Option<f64>,
    pub load_bandwidth_bytes_us: Option<f64>,
    pub footprint_bytes_per_rank: Option<f64>,
    #[serde(default)]
    pub step_overhead_tiers: BTreeMap<i64, Tier>,
    #[serde(default)]
    pub adapters: Vec<AdapterEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub k6: Option<f64>,
    pub k7: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterEntry {
    pub id: String,
    pub rank: i64,
    #[serde(default)]
    pub base_model: Option<String>,
}

/// Reads a `--lora-config` file.
pub fn load(path: &Path) -> Result<Block, ConfigError> {
    let file: File = crate::yaml::load(path, KEY)?;
    Ok(file.lora)
}

/// Parses the text of a `--lora-config` file (the fuzz target's entry point).
pub fn parse(text: &str) -> Result<Block, String> {
    let file: File = crate::yaml::parse(text, Path::new("lora-config.yaml")).map_err(|e| e.to_string())?;
    Ok(file.lora)
}

/// The flags' values (each `None` when not given), which override the file's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub capacity: Option<i64>,
    pub load_base_latency_us: Option<f64>,
    pub load_bandwidth_bytes_us: Option<f64>,
    pub footprint_bytes_per_rank: Option<f64>,
}

/// Defaults of the cost coefficients (the reference's shipped values).
pub const DEFAULT_LOAD_BASE_LATENCY_US: f64 = 1500.0;
pub const DEFAULT_LOAD_BANDWIDTH_BYTES_US: f64 = 2.0e6;
pub const DEFAULT_FOOTPRINT_BYTES_PER_RANK: f64 = 2.0e6;
/// Longest cold load accepted (µs, about 11.6 days).
const MAX_LOAD_US: f64 = 1e12;

/// Per-step overhead (rank, k6/k7) when the file gives no `step_overhead_tiers` (the
/// reference's shipped tiers).
pub const DEFAULT_STEP_OVERHEAD_TIERS: &[(u32, f64)] = &[(8, 0.02), (16, 0.035), (32, 0.06)];

/// What the block and flags describe: `Ok(None)` when no adapter is declared or no capacity
/// set (LoRA inert). Errors are `(key, message)` with the key the user should fix.
#[allow(clippy::type_complexity)]
pub fn build(
    block: Block,
    flags: Overrides,
    loading: LoraLoading,
) -> Result<(Option<LoraConfig>, Vec<(String, String)>), (String, String)> {
    let err = |k: &str, m: String| (k.to_string(), m);
    let mut warnings = Vec::new();
    let base =
        flags.load_base_latency_us.or(block.load_base_latency_us).unwrap_or(DEFAULT_LOAD_BASE_LATENCY_US);
    let bandwidth = flags
        .load_bandwidth_bytes_us
        .or(block.load_bandwidth_bytes_us)
        .unwrap_or(DEFAULT_LOAD_BANDWIDTH_BYTES_US);
    let footprint = flags
        .footprint_bytes_per_rank
        .or(block.footprint_bytes_per_rank)
        .unwrap_or(DEFAULT_FOOTPRINT_BYTES_PER_RANK);
    let key = |flag: &str, field: &str, set_by_flag: bool| {
        if set_by_flag { format!("lora-{flag}") } else { format!("lora-config: lora.{field}") }
    };
    if !(base.is_finite() && (0.0..1e12).contains(&base)) {
        let k = key("load-base-latency-us", "load_base_latency_us", flags.load_base_latency_us.is_some());
        return Err(err(&k, format!("must be a finite number of µs in [0, 1e12), got {base}")));
    }
    if !(bandwidth.is_finite() && bandwidth > 0.0) {
        let k = key(
            "load-bandwidth-bytes-us",
            "load_bandwidth_bytes_us",
            flags.load_bandwidth_bytes_us.is_some(),
        );
        return Err(err(&k, format!("must be a finite number of bytes per µs > 0, got {bandwidth}")));
    }
    if !(footprint.is_finite() && footprint > 0.0) {
        let k = key(
            "footprint-bytes-per-rank",
            "footprint_bytes_per_rank",
            flags.footprint_bytes_per_rank.is_some(),
        );
        return Err(err(&k, format!("must be a finite number of bytes > 0, got {footprint}")));
    }
    let mut tiers = Vec::new();
    for (&rank, t) in &block.step_overhead_tiers {
        let path = format!("lora-config: lora.step_overhead_tiers.{rank}");
        let rank = u32::try_from(rank).ok().filter(|&r| r > 0).ok_or_else(|| {
            err("lora-config: lora.step_overhead_tiers", format!("rank {rank}: must be in 1..={}", u32::MAX))
        })?;
        let k6 = t.k6.unwrap_or(0.0);
        if !(k6.is_finite() && k6 >= 0.0) {
            return Err(err(&format!("{path}.k6"), format!("must be a finite number >= 0, got {k6}")));
        }
        let Some(k7) = t.k7.filter(|k| k.is_finite() && *k > 0.0) else {
            return Err(err(&format!("{path}.k7"), format!("required, a finite number > 0, got {:?}", t.k7)));
        };
        tiers.push((rank, k6 / k7));
    }
    if block.step_overhead_tiers.is_empty() {
        tiers = DEFAULT_STEP_OVERHEAD_TIERS.to_vec();
    }
    let mut adapters: Vec<LoraAdapter> = Vec::with_capacity(block.adapters.len());
    for (i, a) in block.adapters.iter().enumerate() {
        let path = format!("lora-config: lora.adapters[{i}]");
        let id = a.id.trim();
        if id.is_empty() {
            return Err(err(&format!("{path}.id"), "must not be empty".into()));
        }
        let rank = u32::try_from(a.rank).ok().filter(|&r| (1..=1 << 20).contains(&r)).ok_or_else(|| {
            err(&format!("{path}.rank"), format!("must be in 1..={}, got {}", 1 << 20, a.rank))
        })?;
        if adapters.iter().any(|x| x.name.as_ref() == id) {
            return Err(err(&format!("{path}.id"), format!("{id:?} is declared twice")));
        }
        adapters.push(LoraAdapter { name: Arc::from(id), rank });
    }
    if adapters.len() > MAX_ADAPTERS {
        return Err(err(
            "lora-config: lora.adapters",
            format!("at most {MAX_ADAPTERS} adapters, got {}", adapters.len()),
        ));
    }
    adapters.sort_by(|a, b| a.name.cmp(&b.name));
    let capacity_key = if flags.capacity.is_some() {
        "lora-adapter-capacity".to_string()
    } else {
        "lora-config: lora.adapter_capacity".to_string()
    };
    let capacity = flags.capacity.or(block.adapter_capacity);
    let capacity = match capacity {
        None if !adapters.is_empty() => {
            warnings.push((
                "lora-config".to_string(),
                "adapters declared without a capacity (--lora-adapter-capacity): LoRA is not simulated"
                    .to_string(),
            ));
            return Ok((None, warnings));
        }
        None => return Ok((None, warnings)),
        Some(c) if adapters.is_empty() => {
            warnings
                .push((capacity_key, format!("{c}: no effect without adapters declared in --lora-config")));
            return Ok((None, warnings));
        }
        Some(c) => {
            u32::try_from(c).ok().filter(|&c| (1..=MAX_ADAPTERS as u32).contains(&c)).ok_or_else(|| {
                err(
                    &capacity_key,
                    format!("must be in 1..={MAX_ADAPTERS} when adapters are declared, got {c}"),
                )
            })?
        }
    };
    // A load must end within the simulator's clock range.
    if let Some(a) = adapters.iter().find(|a| base + footprint * f64::from(a.rank) / bandwidth > MAX_LOAD_US)
    {
        let k = key(
            "footprint-bytes-per-rank",
            "footprint_bytes_per_rank",
            flags.footprint_bytes_per_rank.is_some(),
        );
        return Err(err(
            &k,
            format!(
                "adapter {:?} (rank {}) would take more than {MAX_LOAD_US:e} µs to load at {bandwidth} bytes/µs",
                a.name, a.rank
            ),
        ));
    }
    Ok((
        Some(LoraConfig {
            adapters,
            capacity,
            load_base_latency_us: base,
            load_bandwidth_bytes_per_us: bandwidth,
            footprint_bytes_per_rank: footprint,
            step_overhead_tiers: tiers,
            loading,
        }),
        warnings,
    ))
}

/// Base models the declared adapters attach to (`base_model`), by adapter id.
pub fn base_models(block: &Block) -> BTreeMap<String, String> {
    block
        .adapters
        .iter()
        .filter_map(|a| {
            Some((a.id.trim().to_string(), a.base_model.clone().filter(|m| !m.trim().is_empty())?))
        })
        .collect()
}
