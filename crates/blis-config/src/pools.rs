//! `pools:`: a fleet of several groups of instances, each with its own hardware, parallelism,
//! engine limits and step-time model. A key a pool leaves out takes the run's flat value
//! (`--hardware`, `--max-num-seqs`, …).
//!
//! ```yaml
//! pools:
//!   - {name: fast, hardware: H100, tp: 1, instances: 2}
//!   - {name: slow, hardware: A100-80, tp: 1, instances: 2, max-num-seqs: 128}
//! ```
//!
//! On the command line, one `--pool` per pool: `--pool name=fast,hardware=H100,tp=1,instances=2`
//! (coefficient lists separated by `:`, `alpha-coeffs=1500:300:2.5`).

use std::str::FromStr;

use blis_latency::LatencyModelKind;
use serde::{Deserialize, Deserializer, Serialize};

/// One pool of identical instances. Unset keys inherit the run's flat keys of the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PoolSpec {
    /// Names the pool in errors and in the metrics (`pool` of each instance, `per_pool`).
    pub name: String,
    /// Instances of the pool (at least 1).
    pub instances: u32,
    /// Prefill/decode role (`prefill`, `decode`, `both`): a fleet with roles is disaggregated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<blis_sim::PoolRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_model: Option<LatencyModelKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_coeffs: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_coeffs: Option<Vec<f64>>,
    #[serde(default, alias = "max-num-running-reqs", skip_serializing_if = "Option::is_none")]
    pub max_num_seqs: Option<u32>,
    #[serde(default, alias = "max-num-scheduled-tokens", skip_serializing_if = "Option::is_none")]
    pub max_num_batched_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_prefill_token_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_kv_blocks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_utilization: Option<f64>,
}

/// The run keys a pool may set for itself (every other key is the whole run's).
pub const POOL_KEYS: &[&str] = &[
    "hardware",
    "tp",
    "model",
    "latency-model",
    "alpha-coeffs",
    "beta-coeffs",
    "max-num-seqs",
    "max-num-batched-tokens",
    "long-prefill-token-threshold",
    "max-model-len",
    "total-kv-blocks",
    "gpu-memory-utilization",
];

impl PoolSpec {
    /// The keys this pool sets itself (run-key spelling), `name` and `instances` aside.
    pub fn keys(&self) -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(mut map) = serde_json::to_value(self).expect("a pool serializes")
        else {
            unreachable!("a struct serializes to an object")
        };
        map.remove("name");
        map.remove("instances");
        map.remove("role");
        map
    }
}

impl FromStr for PoolSpec {
    type Err = String;

    /// `name=fast,hardware=H100,tp=1,instances=2` (lists: `alpha-coeffs=1:2:3`).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut map = serde_json::Map::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "'{item}' is not key=value (e.g. name=fast,hardware=H100,tp=1,instances=2)"
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            let number = |v: &str| -> Result<serde_json::Value, String> {
                match v.parse::<u64>() {
                    Ok(n) => Ok(n.into()),
                    Err(_) => match v.parse::<f64>() {
                        Ok(x) if x.is_finite() => Ok(x.into()),
                        Ok(_) => Err(format!("{key}: must be a finite number, got {v}")),
                        Err(_) => Ok(v.into()),
                    },
                }
            };
            let json = match key {
                "name" | "role" | "hardware" | "model" | "latency-model" => value.into(),
                "alpha-coeffs" | "beta-coeffs" => {
                    let items: Result<Vec<f64>, String> = value
                        .split(':')
                        .map(|x| match x.trim().parse::<f64>() {
                            Ok(v) if v.is_finite() => Ok(v),
                            _ => Err(format!("{key}: '{x}' is not a finite number")),
                        })
                        .collect();
                    serde_json::Value::from(items?)
                }
                _ => number(value)?,
            };
            if map.insert(key.to_string(), json).is_some() {
                return Err(format!("'{key}' appears twice"));
            }
        }
        from_json(serde_json::Value::Object(map))
    }
}

/// A pool from its mapping, with serde's list of expected fields replaced by the pool keys.
fn from_json(value: serde_json::Value) -> Result<PoolSpec, String> {
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        match text.find(", expected one of") {
            Some(i) => format!(
                "{} (a pool accepts name, instances, role, {})",
                text[..i].replace('`', "'"),
                POOL_KEYS.join(", ")
            ),
            None => text.replace('`', "'"),
        }
    })
}

/// `pools`: a list whose entries are mappings (files) or `key=value,…` text (flags, sweep values).
pub(crate) fn de_pools<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<PoolSpec>>, D::Error> {
    use serde::de::Error;
    let Some(value) = Option::<serde_json::Value>::deserialize(d)? else { return Ok(None) };
    let items = match value {
        serde_json::Value::Array(items) => items,
        one @ (serde_json::Value::String(_) | serde_json::Value::Object(_)) => vec![one],
        other => return Err(D::Error::custom(format!("expected a list of pools, got {other}"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let pool = match item {
            serde_json::Value::String(text) => text.parse::<PoolSpec>(),
            serde_json::Value::Object(map) => match map.iter().find(|(_, v)| has_null(v)) {
                // JSON has no NaN or infinity: a `.nan` read from YAML arrives here as null.
                Some((key, _)) => Err(format!("{key}: must be a finite number (or left out)")),
                None => from_json(serde_json::Value::Object(map)),
            },
            other => from_json(other),
        };
        out.push(pool.map_err(|e| D::Error::custom(format!("pools[{i}]: {e}")))?);
    }
    Ok(Some(out))
}

fn has_null(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.iter().any(has_null),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_mapping_forms_agree() {
        let text: PoolSpec =
            "name=slow, hardware=A100-80, tp=2, instances=3, alpha-coeffs=1:2.5:3, gpu-memory-utilization=0.8"
                .parse()
                .unwrap();
        let yaml: PoolSpec = serde_saphyr::from_str(
            "{name: slow, hardware: A100-80, tp: 2, instances: 3, alpha-coeffs: [1, 2.5, 3], gpu-memory-utilization: 0.8}",
        )
        .unwrap();
        assert_eq!(text, yaml);
        assert_eq!(text.keys().len(), 4);
        assert_eq!(text.tp, Some(2));
    }

    #[test]
    fn text_errors_name_the_problem() {
        assert!("name=a,instances".parse::<PoolSpec>().unwrap_err().contains("key=value"));
        assert!(
            "name=a,instances=1,tpp=2"
                .parse::<PoolSpec>()
                .unwrap_err()
                .contains("unknown field 'tpp' (a pool accepts name, instances, role, hardware")
        );
        assert!("name=a".parse::<PoolSpec>().unwrap_err().contains("missing field 'instances'"));
        assert!("name=a,instances=1,name=b".parse::<PoolSpec>().unwrap_err().contains("twice"));
        assert!("name=a,instances=x".parse::<PoolSpec>().is_err());
        assert!(
            "name=a,instances=1,gpu-memory-utilization=NaN"
                .parse::<PoolSpec>()
                .unwrap_err()
                .contains("finite")
        );
        assert!("name=a,instances=1,alpha-coeffs=1:inf".parse::<PoolSpec>().unwrap_err().contains("finite"));
    }

    #[test]
    fn non_finite_values_in_files_are_refused() {
        let text = "pools: [{name: a, instances: 1, gpu-memory-utilization: .nan}]";
        assert!(serde_saphyr::from_str::<crate::RunSpec>(text).is_err());
        // Through JSON (sweep rows, Python keywords) a non-finite number arrives as null.
        let json =
            serde_json::json!({"pools": [{"name": "a", "instances": 1, "gpu-memory-utilization": null}]});
        let e = serde_json::from_value::<crate::RunSpec>(json).unwrap_err().to_string();
        assert!(e.contains("pools[0]: gpu-memory-utilization: must be a finite number"), "{e}");
        let text = "pools: [{name: a, instances: 1, alpha-coeffs: [1, .inf]}]";
        assert!(serde_saphyr::from_str::<crate::RunSpec>(text).is_err());
    }

    #[test]
    fn every_pool_key_is_a_run_key() {
        let keys = crate::RunSpec::keys();
        for k in POOL_KEYS {
            assert!(keys.iter().any(|x| x == k), "{k}");
        }
        let full: PoolSpec = serde_json::from_value(serde_json::json!({
            "name": "p", "instances": 1, "hardware": "H100", "tp": 1, "model": "m",
            "latency-model": "roofline", "alpha-coeffs": [1.0], "beta-coeffs": [1.0],
            "max-num-seqs": 1, "max-num-batched-tokens": 16, "long-prefill-token-threshold": 0,
            "max-model-len": 10, "total-kv-blocks": 10, "gpu-memory-utilization": 0.5,
        }))
        .unwrap();
        let set: Vec<String> = full.keys().keys().cloned().collect();
        assert_eq!(set.len(), POOL_KEYS.len());
        for k in POOL_KEYS {
            assert!(set.iter().any(|x| x == k), "{k}");
        }
    }
}
