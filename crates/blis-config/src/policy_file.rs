//! `--policy-config FILE`: a bundle of policies in the reference simulator's format, read as one
//! layer of the run description (above a config file, below flags).
//!
//! ```yaml
//! admission:
//!   policy: tier-shed                # any --admission-policy
//!   token_bucket_capacity: 5000
//!   token_bucket_refill_rate: 800
//!   tier_shed_threshold: 8
//!   tier_shed_min_priority: 3
//!   gaie_qd_threshold: 5
//!   gaie_kv_threshold: 0.8
//!   slo_priorities: {batch: 0}       # admission priority per SLO class (GAIE convention)
//!   slo_targets: {critical: 100000}  # TTFT targets (µs) of flow-control dispatch
//! routing:
//!   policy: weighted
//!   scorers: [{name: precise-prefix-cache, weight: 2}, {name: queue-depth, weight: 1}]
//! priority: {policy: slo-based}      # constant | slo-based | inverted-slo
//! scheduler: priority-fcfs
//! preemption: {policy: priority}
//! tenant_budgets: {alice: 0.3, bob: 0.7}
//! ```
//!
//! Earlier BLIS spellings are still read: `preemption: priority` and `priority_policy: constant`.
//! The reference's autoscaling blocks (`node_pools`, `autoscaler`, `instance_lifecycle`) become
//! the keys `node-pools`, `autoscaler` and `instance-lifecycle` (see [`crate::autoscale`]).
//! `hw_config_by_gpu` describes a feature BLIS does not simulate yet; a file using it is
//! refused rather than run without it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ConfigError;
use crate::layers::{Layer, Source};
use crate::spec::RunSpec;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    #[serde(default)]
    admission: Option<Admission>,
    #[serde(default)]
    routing: Option<Routing>,
    #[serde(default)]
    priority: Option<PolicyName>,
    #[serde(default)]
    priority_policy: Option<Value>,
    #[serde(default)]
    scheduler: Option<Value>,
    #[serde(default)]
    preemption: Option<NameOrPolicy>,
    #[serde(default)]
    tenant_budgets: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    node_pools: Option<Value>,
    #[serde(default)]
    autoscaler: Option<Value>,
    #[serde(default)]
    instance_lifecycle: Option<Value>,
    #[serde(default)]
    hw_config_by_gpu: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Admission {
    #[serde(default)]
    policy: Option<Value>,
    #[serde(default)]
    token_bucket_capacity: Option<f64>,
    #[serde(default)]
    token_bucket_refill_rate: Option<f64>,
    #[serde(default)]
    tier_shed_threshold: Option<i64>,
    #[serde(default)]
    tier_shed_min_priority: Option<i32>,
    #[serde(default)]
    gaie_qd_threshold: Option<f64>,
    #[serde(default)]
    gaie_kv_threshold: Option<f64>,
    #[serde(default)]
    slo_priorities: Option<BTreeMap<String, i32>>,
    #[serde(default)]
    slo_targets: Option<BTreeMap<String, i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Routing {
    #[serde(default)]
    policy: Option<Value>,
    #[serde(default)]
    scorers: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyName {
    #[serde(default)]
    policy: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NameOrPolicy {
    Name(String),
    Policy(PolicyName),
}

/// Reads a policy file into a layer of the run description.
pub fn load(path: &Path) -> Result<Layer, ConfigError> {
    let bundle: Bundle = crate::yaml::load(path, "policy-config")?;
    translate(bundle, path)
}

/// Parses policy-file text (`path` only names it in messages).
pub fn parse(text: &str, path: &Path) -> Result<Layer, ConfigError> {
    translate(crate::yaml::parse(text, path)?, path)
}

fn translate(b: Bundle, path: &Path) -> Result<Layer, ConfigError> {
    let file = path.display();
    let unsupported = |key: &str, v: &Option<Value>| match v {
        Some(Value::Null) | None => Ok(()),
        Some(_) => Err(ConfigError::new(
            key,
            format!("{file}: {key}"),
            "per-GPU calibration overrides are not simulated by BLIS yet; remove this block",
        )),
    };
    unsupported("hw_config_by_gpu", &b.hw_config_by_gpu)?;

    let mut out = Translation::default();
    if let Some(a) = b.admission {
        out.set("admission-policy", "admission.policy", a.policy);
        out.set("token-bucket-capacity", "admission.token_bucket_capacity", a.token_bucket_capacity);
        out.set("token-bucket-refill-rate", "admission.token_bucket_refill_rate", a.token_bucket_refill_rate);
        out.set("tier-shed-threshold", "admission.tier_shed_threshold", a.tier_shed_threshold);
        out.set("tier-shed-min-priority", "admission.tier_shed_min_priority", a.tier_shed_min_priority);
        out.set("gaie-qd-threshold", "admission.gaie_qd_threshold", a.gaie_qd_threshold);
        out.set("gaie-kv-threshold", "admission.gaie_kv_threshold", a.gaie_kv_threshold);
        out.set("slo-priorities", "admission.slo_priorities", a.slo_priorities);
        out.set("slo-targets", "admission.slo_targets", a.slo_targets);
    }
    if let Some(r) = b.routing {
        out.set("routing-policy", "routing.policy", r.policy);
        out.set("routing-scorers", "routing.scorers", r.scorers);
    }
    out.set("priority-policy", "priority.policy", b.priority.and_then(|p| p.policy));
    out.set("priority-policy", "priority_policy", b.priority_policy);
    out.set("scheduler", "scheduler", b.scheduler);
    match b.preemption {
        Some(NameOrPolicy::Name(n)) => out.set("preemption-policy", "preemption", Some(n)),
        Some(NameOrPolicy::Policy(p)) => out.set("preemption-policy", "preemption.policy", p.policy),
        None => {}
    }
    out.set("tenant-budgets", "tenant_budgets", b.tenant_budgets);
    out.set("node-pools", "node_pools", b.node_pools);
    out.set("autoscaler", "autoscaler", b.autoscaler);
    out.set("instance-lifecycle", "instance_lifecycle", b.instance_lifecycle);

    // Type-check every value now, so an error names the file's key, not a flag.
    let layer =
        Layer { source: Source::PolicyFile(path.to_path_buf()), values: out.values, spelled: out.spelled };
    for (key, value) in &layer.values {
        let one: serde_json::Map<String, Value> = [(key.clone(), value.clone())].into_iter().collect();
        if let Err(e) = RunSpec::from_map(one) {
            return Err(ConfigError::new(key.clone(), layer.describe(key), e));
        }
    }
    Ok(layer)
}

#[derive(Default)]
struct Translation {
    values: serde_json::Map<String, Value>,
    spelled: BTreeMap<String, String>,
}

impl Translation {
    fn set<T: serde::Serialize>(&mut self, key: &str, spelled: &str, value: Option<T>) {
        let Some(v) = value else { return };
        let v = serde_json::to_value(v).expect("policy values serialize");
        if v.is_null() {
            return;
        }
        self.values.insert(key.to_string(), v);
        self.spelled.insert(key.to_string(), spelled.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Result<Layer, ConfigError> {
        parse(text, Path::new("p.yaml"))
    }

    #[test]
    fn the_reference_format_maps_onto_flags() {
        let l = layer(
            "admission:\n  policy: tier-shed\n  tier_shed_threshold: 8\n  tier_shed_min_priority: 4\n  \
             slo_priorities: {batch: 0}\nrouting:\n  policy: weighted\n  scorers:\n    - name: queue-depth\n      \
             weight: 2\n    - {name: load-balance, weight: 1}\npriority:\n  policy: constant\nscheduler: fcfs\n\
             preemption:\n  policy: priority\ntenant_budgets: {a: 0.5}\n",
        )
        .unwrap();
        let v = &l.values;
        assert_eq!(v["admission-policy"], "tier-shed");
        assert_eq!(v["tier-shed-threshold"], 8);
        assert_eq!(v["priority-policy"], "constant");
        assert_eq!(v["preemption-policy"], "priority");
        assert_eq!(v["routing-policy"], "weighted");
        assert_eq!(v["tenant-budgets"]["a"], 0.5);
        assert_eq!(l.describe("admission-policy"), "p.yaml: admission.policy");
        let spec = RunSpec::from_map(l.values.clone()).unwrap();
        assert_eq!(spec.routing_scorers.unwrap().to_string(), "queue-depth:2,load-balance:1");
    }

    #[test]
    fn earlier_blis_spellings_still_read() {
        let l = layer("preemption: priority\npriority_policy: slo-based\n").unwrap();
        assert_eq!(l.values["preemption-policy"], "priority");
        assert_eq!(l.values["priority-policy"], "slo-based");
    }

    #[test]
    fn errors_are_one_line_and_name_the_key() {
        let cases = [
            ("admission:\n  polcy: x\n", "polcy"),
            ("admission:\n  token_bucket_capacity: lots\n", "admission.token_bucket_capacity"),
            ("admission:\n  policy: maybe\n", "admission.policy"),
            ("routing:\n  scorers:\n    - name: nope\n      weight: 1\n", "routing.scorers"),
            ("routing:\n  scorers:\n    - name: queue-depth\n      wieght: 1\n", "routing.scorers"),
            ("scheduler: lifo\n", "scheduler"),
            ("bogus: {}\n", "bogus"),
            ("node_pools:\n  - name: a\n", "node_pools"),
            ("autoscaler: {interval_us: 5, scale_up_window: 1}\n", "autoscaler"),
            ("instance_lifecycle: {loading_delay: {mean: 1, sigma: 2}}\n", "instance_lifecycle"),
            ("hw_config_by_gpu: {H100: {}}\n", "hw_config_by_gpu"),
        ];
        for (text, key) in cases {
            let e = layer(text).err().unwrap_or_else(|| panic!("{text} parsed")).to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(key), "{text:?}: {e}");
            assert!(e.starts_with("p.yaml"), "{e}");
        }
    }
}
